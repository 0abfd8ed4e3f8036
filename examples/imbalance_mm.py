"""An Avellaneda-Stoikov market maker whose fair value leans with the order-book
imbalance -- written in Python against hftmm's strategy interface.

The same class runs in every driver::

    hftmm backtest --strategy examples/imbalance_mm.py:ImbalanceMM
    hftmm live --paper --strategy examples/imbalance_mm.py:ImbalanceMM
    hftmm live --testnet --strategy examples/imbalance_mm.py:ImbalanceMM

or from Python: ``BacktestEngine().run_backtest(config, strategy=ImbalanceMM)``.
The trader it acts through holds the configured limits (position with every
open order filled, order rate, book validity, loss limits) whatever it asks.

Fair value (ticks) = mid + alpha x I x half-spread, with the imbalance
I = (bid lots - ask lots) / (bid lots + ask lots) over the top ``levels`` levels
of each side: in [-1, 1], positive when buyers queue up. Quotes come from the
compiled Quoter around that fair value (``Quoter.quote_at``); sigma from an EWMA
of mid returns. Python callbacks cost a few microseconds per event; the Cython
version of the same idea (examples/cython/imbalance_mm.pyx) runs at the
built-in market maker's speed.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from hftcore.quoting import Quoter
from hftcore.volatility import EwmaVolatility

from hftmm.strategy import Strategy


class ImbalanceMM(Strategy):
    """Units: prices in ticks, sizes in lots, times in ns (see hftmm.strategy.Strategy).

    ``alpha``: how far (in half-spreads) the fair value leans at full imbalance;
    ``levels``: book levels per side in the imbalance; the rest as the built-in
    market maker's StrategyConfig fields (gamma, k, A, horizon [s], order size
    [lots], requote interval [s] and threshold [ticks], EWMA half-life [s])."""

    def __init__(self, alpha: float = 0.5, levels: int = 5, gamma: float = 0.1, k: float = 10.0, A: float = 5.0,
                 horizon_s: float = 30.0, order_lots: int = 1, max_inventory: float = 0.01,
                 requote_interval_s: float = 0.1, requote_threshold: int = 1, vol_half_life_s: float = 60.0,
                 prior_sigma: float = 2e-5) -> None:
        self.alpha, self.levels = float(alpha), int(levels)
        self.params = dict(gamma=gamma, k=k, A=A, horizon_s=horizon_s, max_inventory=max_inventory)
        self.order_lots = int(order_lots)
        self.requote_ns = int(requote_interval_s * 1e9)
        self.threshold = int(requote_threshold)
        self.vol = EwmaVolatility(vol_half_life_s)
        self.prior_sigma = prior_sigma
        self.next_quote = 0
        self.quoter: Any = None
        self.imbalance = 0.0

    @classmethod
    def from_config(cls, strategy: Any, risk: Any, tick: float, lot: float) -> "ImbalanceMM":
        """The drivers' constructor: the StrategyConfig / RiskConfig knobs, in the
        market's units (``tick`` price units per tick, ``lot`` base units per lot)."""
        return cls(gamma=strategy.gamma, k=strategy.k, A=strategy.A, horizon_s=strategy.time_horizon,
                   order_lots=max(1, round(strategy.order_size / lot)),
                   max_inventory=risk.max_position if risk.max_position > 0 else math.inf,
                   requote_interval_s=strategy.quote_refresh_interval,
                   requote_threshold=strategy.requote_threshold, vol_half_life_s=strategy.ewma_half_life)

    def on_start(self, now: int) -> None:
        self.quoter = Quoter(model="as", tick_size=self.tick_size, order_qty=self.order_lots * self.lot_size,
                             **self.params)

    def on_book(self, now: int) -> None:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None or bb >= ba:
            return
        mid = 0.5 * (bb + ba)
        self.vol.update(now, mid * self.tick_size)
        if now < self.next_quote:
            return
        self.next_quote = now + self.requote_ns
        _, bq, _, aq = self.book.top(self.levels)
        b, a = float(np.sum(bq)), float(np.sum(aq))
        self.imbalance = (b - a) / (b + a) if b + a > 0 else 0.0
        fair = mid + self.alpha * self.imbalance * 0.5 * (ba - bb)
        rel = self.vol.sigma if self.vol.count >= 1 else self.prior_sigma
        sigma = rel * mid * self.tick_size                     # price units per sqrt(s)
        q = self.quoter.quote_at(fair, bb, ba, sigma, self.position * self.lot_size, now)
        self.quote(q.bid_tick if q.bid_ok else None, q.ask_tick if q.ask_ok else None, self.order_lots,
                   self.threshold)


__all__ = ["ImbalanceMM"]
