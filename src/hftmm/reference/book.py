"""Pure-Python twin of :class:`hftcore.book.L2Book` on sortedcontainers.

Same API and semantics (ticks and lots in, ticks and lots out; floats in price
units only from mid/microprice/imbalance). Slow and obviously right.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np
from sortedcontainers import SortedDict

BID = 0
ASK = 1
MAX_TICK = 1 << 60


class RefL2Book:
    """L2 book as two SortedDicts tick -> lots."""

    def __init__(self, tick_size: float = 1.0, lot_size: float = 1.0) -> None:
        self.tick_size = float(tick_size)
        self.lot_size = float(lot_size)
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def _side(self, side: int) -> SortedDict:
        if side == BID:
            return self.bids
        if side == ASK:
            return self.asks
        raise ValueError(f"side must be BID (0) or ASK (1), got {side}")

    @staticmethod
    def _check(tick: int, lots: int) -> None:
        if lots < 0:
            raise ValueError(f"negative quantity {lots} lots at tick {tick}")
        if not 0 <= tick < MAX_TICK:
            raise ValueError(f"tick {tick} out of range [0, 2**60)")

    def apply(self, side: int, tick: int, lots: int) -> None:
        book = self._side(side)
        self._check(int(tick), int(lots))
        if lots == 0:
            book.pop(int(tick), None)
        else:
            book[int(tick)] = int(lots)

    def apply_levels(self, side: int, ticks: Iterable[int], lots: Iterable[int]) -> None:
        ticks, lots = list(ticks), list(lots)
        if len(ticks) != len(lots):
            raise ValueError("ticks and lots differ in length")
        self._side(side)
        for t, q in zip(ticks, lots):
            self._check(int(t), int(q))
        for t, q in zip(ticks, lots):
            self.apply(side, t, q)

    def apply_message(self, bid_ticks, bid_lots, ask_ticks, ask_lots) -> None:
        self.apply_levels(BID, bid_ticks, bid_lots)
        self.apply_levels(ASK, ask_ticks, ask_lots)

    def load_snapshot(self, bid_ticks, bid_lots, ask_ticks, ask_lots) -> None:
        for t, q in zip(list(bid_ticks) + list(ask_ticks), list(bid_lots) + list(ask_lots)):
            self._check(int(t), int(q))
        self.clear()
        self.apply_levels(BID, bid_ticks, bid_lots)
        self.apply_levels(ASK, ask_ticks, ask_lots)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def best_bid(self) -> Optional[int]:
        return self.bids.peekitem(-1)[0] if self.bids else None

    def best_ask(self) -> Optional[int]:
        return self.asks.peekitem(0)[0] if self.asks else None

    def best_bid_qty(self) -> int:
        return self.bids.peekitem(-1)[1] if self.bids else 0

    def best_ask_qty(self) -> int:
        return self.asks.peekitem(0)[1] if self.asks else 0

    def qty_at(self, side: int, tick: int) -> int:
        return self._side(side).get(tick, 0)

    def mid(self) -> float:
        if not self.bids or not self.asks:
            return math.nan
        return (self.best_bid() + self.best_ask()) * 0.5 * self.tick_size

    def mid_ticks(self) -> float:
        if not self.bids or not self.asks:
            return math.nan
        return (self.best_bid() + self.best_ask()) * 0.5

    def microprice(self) -> float:
        if not self.bids or not self.asks:
            return math.nan
        b, bq = self.bids.peekitem(-1)
        a, aq = self.asks.peekitem(0)
        return (b * aq + a * bq) / (bq + aq) * self.tick_size

    def imbalance(self, n: int = 1) -> float:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        sb = float(sum(q for _, q in self._levels(BID)[:n]))
        sa = float(sum(q for _, q in self._levels(ASK)[:n]))
        return math.nan if sb + sa == 0 else (sb - sa) / (sb + sa)

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and self.best_bid() >= self.best_ask())

    def _levels(self, side: int) -> list[tuple[int, int]]:
        if side == BID:
            return list(reversed(self.bids.items()))
        return list(self.asks.items())

    def top(self, n: int = 10):
        out = []
        for side in (BID, ASK):
            lv = self._levels(side)[:n]
            out.append(np.array([t for t, _ in lv], dtype=np.int64))
            out.append(np.array([q for _, q in lv], dtype=np.int64))
        return tuple(out)

    def levels(self, side: int):
        lv = self._levels(side)
        return (np.array([t for t, _ in lv], dtype=np.int64), np.array([q for _, q in lv], dtype=np.int64))

    @property
    def bid_levels(self) -> int:
        return len(self.bids)

    @property
    def ask_levels(self) -> int:
        return len(self.asks)

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
