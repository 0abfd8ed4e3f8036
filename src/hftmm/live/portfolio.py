"""PortfolioEngine: several symbols in one process, with limits over all of them.

Each symbol is a :class:`~hftmm.live.engine.LiveEngine` -- its own connector
(redundant feeds), the one strategy core, its own trader with the per-symbol
limits of its RiskConfig -- so every symbol decides exactly as it would alone.
On top:

* one state database: one session per symbol (its own status, book, orders and
  fills rows) under one lock (:class:`~hftmm.live.state.SessionGroup`), so a
  second process on the same ``--state-db`` is refused as for one symbol, and
  ``hftmm kill`` / the dashboard see every symbol's session;
* one kill switch for all: any symbol's kill (its own loss limit, ``hftmm kill``,
  the dashboard, a signal) kills every symbol;
* portfolio limits (:class:`~hftmm.config.PortfolioConfig`), checked every
  ``check_interval_s`` (20 ms) by :class:`hftmm.strategy.portfolio.PortfolioRules`
  -- the decision backtests make too: the total notional is held before a fill
  (each symbol's trader gets a cap on its position: its share of the room under
  the limit), the total daily loss kills every symbol.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Optional, Sequence, Union

from hftmm.config import ExchangeModelConfig, PortfolioConfig, RiskConfig, TradingConfig
from hftmm.live.engine import LiveEngine
from hftmm.strategy.portfolio import LegState, PortfolioRules, check_symbols, leg_state

log = logging.getLogger(__name__)

__all__ = ["PortfolioEngine"]

_PerSymbol = Union[None, str, Mapping[str, Any]]


def _for(value: Any, symbol: str) -> Any:
    """A per-symbol option: a mapping symbol -> value, or one value for all."""
    if isinstance(value, Mapping) and not isinstance(value, (RiskConfig, ExchangeModelConfig)):
        return value.get(symbol)
    return value


class PortfolioEngine:
    """Several symbols, one process, one state DB, one kill switch, portfolio limits.

    ``tradings``: one TradingConfig per symbol (distinct symbols, one market).
    ``risk``: a RiskConfig for all, or a mapping symbol -> RiskConfig (per-symbol limits).
    ``portfolio``: the limits over all symbols (default: PortfolioConfig()).
    ``gateways`` (testnet / live): symbol -> order gateway. ``rest_url`` / ``ws_url`` /
    ``exchange_info`` / ``strategy``: one for all or a mapping per symbol. The other
    options are :class:`LiveEngine`'s, for every symbol. Units: quote currency for
    notional and PnL, seconds for times.
    """

    def __init__(self, tradings: Sequence[TradingConfig], risk: Union[RiskConfig, Mapping[str, RiskConfig]],
                 portfolio: Optional[PortfolioConfig] = None, *, mode: str = "paper",
                 gateways: Optional[Mapping[str, Any]] = None, state_db: Optional[str] = None,
                 rest_url: _PerSymbol = None, ws_url: _PerSymbol = None, exchange_info: Any = None,
                 strategy: Any = None, exchange: Optional[ExchangeModelConfig] = None, alerts: Any = None,
                 record_dir: Optional[str] = None, connector_options: Optional[dict] = None,
                 publish_interval_s: float = 1.0, record_decisions: bool = False,
                 check_interval_s: float = 0.02) -> None:
        tradings = list(tradings)
        symbols = [t.symbol for t in tradings]
        check_symbols(symbols)
        if len({t.market for t in tradings}) != 1:
            raise ValueError("every symbol of a portfolio must be on one market")
        if not check_interval_s > 0:
            raise ValueError(f"check_interval_s must be > 0 s, got {check_interval_s}")
        self.symbols = symbols
        self.mode = mode
        self.portfolio = portfolio or PortfolioConfig()
        self.state_db = state_db
        self.check_interval_s = check_interval_s
        risks = {s: (_for(risk, s) or (risk if isinstance(risk, RiskConfig) else None)) for s in symbols}
        missing = [s for s, r in risks.items() if r is None]
        if missing:
            raise ValueError(f"no RiskConfig for {', '.join(missing)}")
        self.risks: dict[str, RiskConfig] = risks
        gw = dict(gateways or {})
        self.legs: list[LiveEngine] = [
            LiveEngine(t, risks[t.symbol], mode=mode, gateway=gw.get(t.symbol), exchange=exchange,
                       strategy=_for(strategy, t.symbol), rest_url=_for(rest_url, t.symbol),
                       ws_url=_for(ws_url, t.symbol), exchange_info=_for(exchange_info, t.symbol),
                       state_db=state_db, record_dir=record_dir, connector_options=connector_options,
                       publish_interval_s=publish_interval_s, record_decisions=record_decisions, alerts=alerts)
            for t in tradings]
        self.by_symbol = {leg.trading.symbol: leg for leg in self.legs}
        self._alerts_arg = alerts
        self.alerter: Any = None
        self._stop = threading.Event()
        self.end_reason = ""
        self.errors: list[tuple[str, BaseException]] = []
        self.rules = PortfolioRules(self.portfolio, min(r.max_daily_loss for r in risks.values()))
        self.events: list[tuple[int, str, str]] = []     # (ts_ns, kind, detail): the portfolio's own
        self.group: Any = None

    @property
    def killed_reason(self) -> Optional[str]:
        return self.rules.killed_reason

    @property
    def bound(self) -> bool:
        """True while the notional limit binds (less headroom than one order per symbol)."""
        return self.rules.bound

    # ------------------------------------------------------------ control (any thread)
    def request_kill(self, reason: str, flatten: Optional[bool] = None, source: str = "manual") -> None:
        """The kill switch of every symbol."""
        self._kill_all(reason, flatten, source)

    def stop(self, reason: str = "stopped") -> None:
        self.end_reason = self.end_reason or reason
        self._stop.set()

    # ------------------------------------------------------------ figures
    def leg_states(self) -> list[LegState]:
        """Every symbol now (marked at its last valid mid)."""
        out = []
        for leg in self.legs:
            if not hasattr(leg, "kernel"):
                continue
            with leg.lock:
                pnl = leg._pnl()
                out.append(leg_state(leg.trading.symbol, leg.trader, leg.lot, leg._last_mid, leg.trading.order_size,
                                     pnl, bool(leg.risk.killed), leg.risk.kill_reason))
        return out

    def totals(self) -> dict[str, float]:
        """PnL, notional and worst-case notional (working orders filled) [quote], summed."""
        legs = self.leg_states()
        return {"pnl": sum(x.pnl for x in legs), "notional": sum(x.notional for x in legs),
                "worst_notional": sum(x.worst_notional for x in legs)}

    # ------------------------------------------------------------ the loop
    def run(self, duration_s: Optional[float] = None) -> dict[str, Any]:
        """Run every symbol until ``duration_s`` [s] passes, :meth:`stop` is called or a
        symbol fails; then end every session (orders cancelled) and return a summary."""
        from hftmm.live.state import SessionGroup

        if self.state_db:
            self.group = SessionGroup(self.state_db)      # SessionInUse: another process runs on it
        for leg in self.legs:
            leg.session_group = self.group
        self._setup_alerts()
        threads = [threading.Thread(target=self._run_leg, args=(leg,), name=f"hftmm-{leg.trading.symbol}",
                                    daemon=True) for leg in self.legs]
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        try:
            for th in threads:
                th.start()
            for leg in self.legs:
                while not leg.setup_done.wait(0.05) and not self.errors:
                    pass
            self._alert("session_start", f"{self.mode} portfolio session started: {', '.join(self.symbols)}")
            while not self._stop.is_set() and not self.errors:
                if deadline is not None and time.monotonic() >= deadline:
                    self.end_reason = self.end_reason or f"duration {duration_s:g} s reached"
                    break
                if any(not th.is_alive() for th in threads):
                    self.end_reason = self.end_reason or "a symbol's session ended"
                    break
                self._stop.wait(self.check_interval_s)
                self.check()
        finally:
            if self.errors:
                sym, exc = self.errors[0]
                self.end_reason = self.end_reason or f"error in {sym}: {exc}"
            for leg in self.legs:
                leg.stop(self.end_reason or "portfolio stopped")
            for th in threads:
                th.join(60.0)
            if self.group is not None:
                self.group.release()
            self._end_alert()
        if self.errors:
            raise self.errors[0][1]
        return self.summary()

    def _run_leg(self, leg: LiveEngine) -> None:
        try:
            leg.summary_at_end = leg.run(None)
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which raises it
            self.errors.append((leg.trading.symbol, exc))
            self._stop.set()

    def check(self) -> None:
        """One round of the portfolio rules (every ``check_interval_s``)."""
        for kind, what in self.rules.step(self.leg_states(), time.time_ns()):
            if kind == "kill":
                self._kill_all(what, None, "portfolio")
            elif kind == "caps":
                for leg in self.legs:
                    if hasattr(leg, "kernel") and leg.trading.symbol in what:
                        leg.set_cap(what[leg.trading.symbol])
            else:                        # bound / lifted: reported
                ev = "portfolio_limit" if kind == "bound" else "portfolio_resume"
                self._event(ev, what)
                for leg in self.legs:
                    leg._record_risk(ev, what)
                log.warning("portfolio: %s", what)
                if kind == "bound":
                    self._alert("portfolio_limit", what)

    def _kill_all(self, reason: str, flatten: Optional[bool], source: str) -> None:
        if self.rules.killed_reason is None:
            self.rules.killed_reason = reason
        self._event("kill", reason)
        log.warning("portfolio: KILL every symbol: %s", reason)
        self._alert("kill", f"portfolio kill switch ({', '.join(self.symbols)}): {reason}")
        for leg in self.legs:
            risk = getattr(leg, "risk", None)
            if risk is None or risk.killed:
                continue
            fl = self.risks[leg.trading.symbol].flatten_on_kill if flatten is None else flatten
            leg.request_kill(f"portfolio: {reason}", flatten=fl, source=source)

    def _event(self, kind: str, detail: str) -> None:
        self.events.append((time.time_ns(), kind, detail))

    # ------------------------------------------------------------ alerts
    def _setup_alerts(self) -> None:
        a = self._alerts_arg
        if a is None:
            return
        from hftmm.ops.alerts import Alerter

        self.alerter = Alerter(a, {"symbol": ",".join(self.symbols), "mode": self.mode, "session_id": "portfolio"})

    def _alert(self, kind: str, text: str) -> None:
        if self.alerter is not None:
            self.alerter.alert(kind, text)

    def _end_alert(self) -> None:
        if self.alerter is None:
            return
        try:
            t = self.totals()
            self.alerter.alert("session_end", f"portfolio session ended: {self.end_reason or 'end'}; PnL "
                                              f"{t['pnl']:.2f}, notional {t['notional']:.2f}",
                               severity="critical" if self.killed_reason else "info")
        finally:
            self.alerter.close()

    def summary(self) -> dict[str, Any]:
        legs = {leg.trading.symbol: getattr(leg, "summary_at_end", None) or leg.summary() for leg in self.legs}
        t = self.totals()
        return {"mode": self.mode, "symbols": list(self.symbols), "end_reason": self.end_reason,
                "pnl": t["pnl"], "notional": t["notional"], "max_notional": self.rules.max_notional,
                "killed": self.killed_reason, "portfolio_events": [(k, d) for _, k, d in self.events],
                "legs": legs, "session_ids": [leg.session_id for leg in self.legs]}
