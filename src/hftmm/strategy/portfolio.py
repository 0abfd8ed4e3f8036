"""Portfolio limits over several symbols: the one decision, for live, paper and backtests.

Each symbol keeps its own strategy core and per-symbol limits; these rules look at
all of them together (:class:`~hftmm.config.PortfolioConfig`):

* total notional (sum of |position| x mid, quote), held *before* a fill: every
  check gives each symbol a cap on its position with every working order filled
  (``Trader.cap_lots``) -- its position plus an equal share of the room left
  under the limit (the caps add up to the limit, and orders in flight do not
  move them) -- so the trader's pre-trade check keeps the sum under the limit
  between checks; a symbol over its cap (prices moved, or a fill took another
  symbol's share) has the orders that would cross it cancelled. The limit is
  reported as binding while the room is less than one more order per symbol,
  lifted once it is ``1 - resume_fraction`` of the limit more than that;
* total daily loss (all symbols' PnL since the start of the UTC day, fees
  included): kills every symbol;
* one kill switch: a symbol killed by anything kills every other.

The drivers (:class:`hftmm.live.portfolio.PortfolioEngine`,
:meth:`hftmm.backtesting.BacktestEngine.run_portfolio_backtest`) feed
:class:`LegState` snapshots to :meth:`PortfolioRules.step` and carry out the actions.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
import math
from typing import Any, Optional, Sequence

from hftmm.config import PortfolioConfig

__all__ = ["LegState", "PortfolioRules", "apply_cap", "check_symbols", "leg_state", "violating_sides"]


def check_symbols(symbols: Sequence[str]) -> None:
    """A portfolio: at least one symbol, each once."""
    if not symbols:
        raise ValueError("a portfolio needs at least one symbol")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols must be distinct, got {list(symbols)}")


@dataclass(frozen=True)
class LegState:
    """One symbol now. Quote currency; ``notional`` = |position| x mid,
    ``worst_notional`` with every working order on the adding side filled
    (``worst_lots`` of ``lot`` base units), ``order_notional`` one more order."""

    symbol: str
    pnl: float
    notional: float
    worst_notional: float
    order_notional: float
    mid: Optional[float]
    lot: float
    worst_lots: int
    killed: bool = False
    kill_reason: Optional[str] = None


def leg_state(symbol: str, trader, lot: float, mid: Optional[float], order_size: float, pnl: float,
              killed: bool = False, kill_reason: Optional[str] = None) -> LegState:
    """A LegState from a trader (positions in lots of ``lot`` base units) and the mid
    [quote per base] (None: no valid mid yet -- no exposure counted)."""
    pos = trader.position
    worst = max(abs(pos + trader.open_lots(0)), abs(pos - trader.open_lots(1)))
    if mid is None:
        return LegState(symbol, pnl, 0.0, 0.0, 0.0, None, lot, worst, killed, kill_reason)
    return LegState(symbol, pnl, abs(pos) * lot * mid, worst * lot * mid, order_size * mid, mid, lot, worst,
                    killed, kill_reason)


def violating_sides(trader, cap_lots: int) -> list[int]:
    """Sides whose working orders, filled, would take |position| over ``cap_lots``."""
    pos = trader.position
    out = []
    if pos + trader.open_lots(0) > cap_lots:
        out.append(0)
    if trader.open_lots(1) - pos > cap_lots:
        out.append(1)
    return out


def apply_cap(trader, lots: int, now: int) -> bool:
    """Set ``trader``'s cap on |position| with every order filled [lots] and cancel
    the working orders of a side that would cross it; True when something was
    cancelled (the driver then flushes the trader's intents)."""
    trader.cap_lots = int(lots)
    if lots < 0:
        return False
    sides = violating_sides(trader, int(lots))
    for side in sides:
        for oid, _px, _lots, _filled in trader.working(side):
            trader.cancel(oid, now)
    return bool(sides)


class PortfolioRules:
    """The portfolio's state and decisions. ``default_daily_loss`` [quote]: the total
    daily loss limit when the config gives none (the per-symbol limit)."""

    def __init__(self, config: PortfolioConfig, default_daily_loss: float = 0.0) -> None:
        self.config = config
        limit = config.max_total_daily_loss
        self.daily_loss_limit = default_daily_loss if limit is None else limit
        self.bound = False
        self.killed_reason: Optional[str] = None
        self.max_notional = 0.0
        self.binds = 0
        self._day: Optional[_dt.date] = None
        self._day_start_pnl = 0.0
        self.last: dict[str, float] = {}

    def step(self, legs: Sequence[LegState], now_ns: int) -> list[tuple[str, Any]]:
        """Actions now: ``("kill", reason)`` (every symbol), ``("caps", {symbol: lots})``
        (each symbol's cap on |position| with its orders filled), and the reports
        ``("bound", reason)`` / ``("lifted", reason)``. ``now_ns``: the driver's clock."""
        out: list[tuple[str, Any]] = []
        pnl = sum(x.pnl for x in legs)
        notional = sum(x.notional for x in legs)
        worst = sum(x.worst_notional for x in legs)
        self.last = {"pnl": pnl, "notional": notional, "worst_notional": worst}
        self.max_notional = max(self.max_notional, notional)
        if self.killed_reason is not None:
            return out
        dead = next((x for x in legs if x.killed), None)
        if dead is not None:
            return self._kill(out, f"{dead.symbol} killed: {dead.kill_reason}")
        day = _dt.datetime.fromtimestamp(now_ns / 1e9, _dt.timezone.utc).date()
        if self._day != day:
            self._day_start_pnl = pnl if self._day is not None else 0.0
            self._day = day
        loss = self._day_start_pnl - pnl
        if self.daily_loss_limit > 0 and loss >= self.daily_loss_limit:
            return self._kill(out, f"portfolio daily loss {loss:.2f} >= {self.daily_loss_limit:.2f} (all symbols)")
        cap = self.config.max_total_notional
        if cap is None or not legs:
            return out
        headroom = cap - notional        # (positions only: orders in flight do not move the caps)
        share = headroom / len(legs)
        caps = {}
        for x in legs:
            if x.mid is None or not x.mid > 0:
                caps[x.symbol] = 0          # no price yet: nothing that adds
            else:
                caps[x.symbol] = max(0, int(math.floor((x.notional + share) / (x.mid * x.lot) + 1e-9)))
        out.append(("caps", caps))
        one_each = sum(x.order_notional for x in legs)
        self.last.update(headroom=headroom)
        if not self.bound and headroom < one_each:
            self.bound = True
            self.binds += 1
            out.append(("bound", f"portfolio notional limit {cap:.2f} binds (now {notional:.2f}, "
                                 f"{worst:.2f} with the working orders filled): orders that would add are "
                                 f"capped"))
        elif self.bound and headroom >= one_each + (1.0 - self.config.resume_fraction) * cap:
            self.bound = False
            out.append(("lifted", f"portfolio notional {notional:.2f}: room again under the limit {cap:.2f}"))
        return out

    def _kill(self, out: list, reason: str) -> list[tuple[str, Any]]:
        self.killed_reason = reason
        out.append(("kill", reason))
        return out
