"""Backtests over several symbols at once, with the portfolio limits of live trading.

Each symbol replays its own data through its own compiled kernel (its strategy
core, trader and exchange account, exactly as :meth:`BacktestEngine.run_backtest`
builds them). The symbols advance together in steps of ``check_interval_s`` of
the data's receive clock; after each step the portfolio rules
(:class:`hftmm.strategy.portfolio.PortfolioRules`, the decision paper and live
trading make) see every symbol and act: each symbol's cap on its position under
the notional limit, every symbol killed at the total daily loss or when one of
them is killed. With no
portfolio limit binding, each symbol's result equals its own single backtest.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.metrics import compute_metrics
from hftmm.config import PortfolioConfig
from hftmm.progress import Progress
from hftmm.strategy.portfolio import PortfolioRules, apply_cap, check_symbols, leg_state

__all__ = ["PortfolioBacktestResult", "run_portfolio_backtest"]


class PortfolioBacktestResult:
    """``results``: symbol -> BacktestResult; ``portfolio``: one row per check
    (time, pnl [quote], notional [quote], bound: the limit binds); ``events``: the portfolio's
    actions (time, kind, reason)."""

    def __init__(self, results: dict, portfolio: pd.DataFrame, events: list, config: PortfolioConfig,
                 max_notional: float, killed: Optional[str], elapsed_s: float) -> None:
        self.results, self.portfolio, self.events, self.config = results, portfolio, events, config
        self.max_notional, self.killed, self.elapsed_s = max_notional, killed, elapsed_s

    @property
    def total_pnl(self) -> float:
        return float(sum(r.performance.total_pnl for r in self.results.values()))

    def summary(self) -> str:
        cap = self.config.max_total_notional
        binds = sum(1 for _, k, _ in self.events if k == "bound")
        bound_s = 0.0
        if len(self.portfolio) > 1:
            dt = np.diff(self.portfolio["ts"].to_numpy()) / 1e9
            bound_s = float((dt * self.portfolio["bound"].to_numpy()[:-1]).sum())
        lines = ["Portfolio Summary:",
                 f"├── Symbols: {', '.join(self.results)}",
                 f"├── Total PnL: ${self.total_pnl:,.2f} ("
                 + ", ".join(f"{s} ${r.performance.total_pnl:,.2f}" for s, r in self.results.items()) + ")",
                 f"├── Total Fills: {sum(r.performance.total_trades for r in self.results.values()):,}",
                 f"├── Max Total Notional: ${self.max_notional:,.2f}"
                 + (f" (limit ${cap:,.2f}; bound {binds} times, {bound_s:,.1f} s)" if cap else ""),
                 f"└── Kill Switch: {self.killed or 'not tripped'}"]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Per-symbol and total PnL, and the total notional against its limit, to a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
        for sym, r in self.results.items():
            ts = r.timeseries
            if len(ts):
                ax1.plot(ts["time"], ts["pnl"], lw=0.8, label=sym)
        p = self.portfolio
        if len(p):
            t = pd.to_datetime(p["ts"], unit="ns", utc=True)
            ax1.plot(t, p["pnl"], lw=1.4, color="black", label="total")
            ax2.plot(t, p["notional"], lw=0.9, label="total notional")
            if self.config.max_total_notional:
                ax2.axhline(self.config.max_total_notional, color="red", ls="--", lw=1, label="limit")
        ax1.set_ylabel("PnL [quote]")
        ax1.legend(loc="best", fontsize=8)
        ax2.set_ylabel("notional [quote]")
        ax2.legend(loc="best", fontsize=8)
        fig.suptitle("Portfolio backtest: " + ", ".join(self.results))
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


class _Leg:
    def __init__(self, engine: Any, config: BacktestConfig, strategy: Any) -> None:
        from hftmm.backtesting.engine import build_kernel, funded

        self.config = config
        self.src = funded(engine._source(config), config)
        self.market = config.market or self.src.market
        self.kernel = build_kernel([config], self.src.tick_size, self.src.lot_size, self.market,
                                   strategies=[strategy])
        self.strategy, self.trader = self.kernel.agent(0)
        self.tick, self.lot = float(self.src.tick_size), float(self.src.lot_size)
        self.chunks = iter(self.src.chunks)
        self.chunk: Optional[np.ndarray] = None
        self.pos = 0
        self.events = 0
        self.last_ts = self.src.span_ns[0]
        self.fills: list = []
        self.samples: list = []
        self.last_mid: Optional[float] = None

    def head(self) -> Optional[int]:
        """Receive time of the next event (None: the data is over)."""
        while self.chunk is None or self.pos >= len(self.chunk):
            if self.chunk is not None:
                self.drain()
            nxt = next(self.chunks, None)
            if nxt is None:
                self.chunk = None
                return None
            self.chunk, self.pos = nxt, 0
        return int(self.chunk["local_ts"][self.pos])

    def run_until(self, t_end: int) -> None:
        """Replay every event received before ``t_end`` [ns]."""
        while self.head() is not None and int(self.chunk["local_ts"][self.pos]) < t_end:
            c = self.chunk
            j = self.pos + int(np.searchsorted(c["local_ts"][self.pos:], t_end, side="left"))
            part = c[self.pos:j]
            self.kernel.run(part)
            self.events += len(part)
            self.last_ts = int(part["exch_ts"][-1])
            self.pos = j

    def mid(self) -> Optional[float]:
        b = self.kernel.book
        bb, ba = b.best_bid(), b.best_ask()
        if bb is not None and ba is not None and self.kernel.book_valid:
            self.last_mid = (bb + ba) * 0.5 * self.tick
        return self.last_mid

    def state(self):
        m = self.mid()
        tr = self.trader
        pnl = tr.cash + (tr.position * self.lot * m if m is not None else 0.0)
        return leg_state(self.config.symbol, tr, self.lot, m, self.config.order_size, pnl, bool(tr.killed),
                         tr.kill_reason_name if tr.killed else None)

    def now(self) -> int:
        return int(self.kernel.clock[1])

    def set_cap(self, lots: int) -> None:
        if apply_cap(self.trader, lots, self.now()):
            self.kernel.flush()

    def kill(self) -> None:
        if not self.trader.killed:
            self.trader.kill(self.now(), self.config.flatten_on_kill)
            self.kernel.flush()

    def drain(self) -> None:
        self.fills.append(self.kernel.take_fills(0))
        self.samples.append(self.kernel.take_samples(0))


def run_portfolio_backtest(engine: Any, configs: Sequence[BacktestConfig], portfolio: Optional[PortfolioConfig] = None,
                           progress: bool | Callable[[float, int], None] = False, check_interval_s: float = 0.1,
                           strategies: Optional[Sequence[Any]] = None) -> PortfolioBacktestResult:
    """Backtest several symbols at once (one config per symbol) under ``portfolio``
    limits, the rules checked every ``check_interval_s`` [s] of the data's clock.
    ``strategies``: per config, your own strategy or None (the built-in one)."""
    from hftmm.backtesting.engine import BacktestResult, fills_frame, samples_frame

    configs = list(configs)
    check_symbols([c.symbol for c in configs])
    if not check_interval_s > 0:
        raise ValueError(f"check_interval_s must be > 0 s, got {check_interval_s}")
    portfolio = portfolio or PortfolioConfig()
    specs = list(strategies) if strategies is not None else [None] * len(configs)
    legs = [_Leg(engine, c, sp) for c, sp in zip(configs, specs)]
    rules = PortfolioRules(portfolio, min(c.risk.max_daily_loss for c in configs))
    step = int(check_interval_s * 1e9)
    t_start = min(leg.src.span_ns[0] for leg in legs)
    t_stop = max(leg.src.span_ns[1] for leg in legs)
    bar = Progress(1.0, "portfolio backtest", "events", enabled=progress is True)
    rows_ts: list[int] = []
    rows_pnl: list[float] = []
    rows_notional: list[float] = []
    rows_ro: list[bool] = []
    events: list[tuple[pd.Timestamp, str, str]] = []
    t0 = time.perf_counter()
    n_events = 0
    while True:
        heads = [h for h in (leg.head() for leg in legs) if h is not None]
        if not heads:
            break
        t_end = (min(heads) // step + 1) * step
        for leg in legs:
            leg.run_until(t_end)
        for kind, what in rules.step([leg.state() for leg in legs], t_end):
            if kind == "caps":
                for leg in legs:
                    leg.set_cap(what[leg.config.symbol])
                continue
            events.append((pd.Timestamp(t_end, unit="ns", tz="UTC"), kind, what))
            if kind == "kill":
                for leg in legs:
                    leg.kill()
        last = rules.last
        rows_ts.append(t_end)
        rows_pnl.append(last["pnl"])
        rows_notional.append(last["notional"])
        rows_ro.append(rules.bound)
        total = sum(leg.events for leg in legs)
        if total - n_events > 200_000 or progress is not False:
            frac = min(max((t_end - t_start) / max(t_stop - t_start, 1), 0.0), 1.0)
            bar.done = frac
            bar.update(0.0, count=total - n_events, count_unit="events")
            if callable(progress):
                progress(frac, total)
            n_events = total
    elapsed = time.perf_counter() - t0
    bar.done = 1.0
    bar.close()
    results = {}
    for leg in legs:
        leg.kernel.finish(leg.last_ts)
        leg.drain()
        c = leg.config
        trades = fills_frame(np.concatenate(leg.fills), leg.tick, leg.lot)
        ts = samples_frame(np.concatenate(leg.samples), leg.tick, leg.lot, c.initial_capital)
        counters = leg.kernel.counters(0)
        counters["orders_submitted"] = counters["sent"]
        counters["rate_blocked"] = counters["refused_rate"]
        counters["submitted_qty"] = counters["sent_lots"] * leg.lot
        counters["clock_shift_ns"] = leg.src.clock_shift_ns
        counters["maker_fee"], counters["taker_fee"] = c.exchange.fees(leg.market)
        counters["market"] = leg.market
        perf = compute_metrics(trades, ts, counters, c.initial_capital)
        results[c.symbol] = BacktestResult(c, perf, trades, ts, counters, leg.events, elapsed, leg.src.description)
    frame = pd.DataFrame({"ts": np.asarray(rows_ts, dtype=np.int64), "pnl": rows_pnl, "notional": rows_notional,
                          "bound": rows_ro})
    frame["time"] = pd.to_datetime(frame["ts"], unit="ns", utc=True)
    mx = float(frame["notional"].max()) if len(frame) else 0.0
    return PortfolioBacktestResult(results, frame, events, portfolio, mx if math.isfinite(mx) else 0.0,
                                   rules.killed_reason, elapsed)
