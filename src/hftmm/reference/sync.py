"""Pure-Python twin of :class:`hftcore.sync.BookSync` (same rules, outcomes, counters)."""
from __future__ import annotations

from typing import Optional, Sequence

from hftmm.reference.book import RefL2Book

APPLIED, BUFFERED, DROPPED, SYNCED, STALE_SNAPSHOT, RESYNC_GAP, RESYNC_CROSSED = range(7)


class RefBookSync:
    """Binance spot / USD-M book synchronisation over a :class:`RefL2Book`."""

    def __init__(self, book: Optional[RefL2Book] = None, market: str = "spot", max_buffer: int = 100_000) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        self.book = book if book is not None else RefL2Book()
        self.market = market
        self.max_buffer = max_buffer
        self.synced = False
        self.first_pending = False
        self.book_id: Optional[int] = None
        self.last_seen: Optional[int] = None
        self.missing: list[list[int]] = []
        self.reason: Optional[str] = "initial"
        self.buffer: list[tuple] = []
        self.counters = dict(applied=0, dropped_old=0, buffered=0, gaps=0, crossed=0, resyncs=0,
                             ids_lost=0, snapshots=0, stale_snapshots=0, buffer_dropped=0, late=0)

    # -- helpers
    def _account_stream(self, U: int, u: int, pu: Optional[int]) -> int:
        """Loss on the received stream (see hftcore.sync): new holes are counted,
        late events that fill a reported hole are credited back."""
        c = self.counters
        seen = self.last_seen
        if seen is None:
            self.last_seen = u
            return 0
        if u > seen:
            lo = seen + 1
            hi = U - 1 if self.market == "spot" else (pu if pu is not None else seen)
            lost = 0
            if hi >= lo:
                lost = hi - lo + 1
                c["ids_lost"] += lost
                if len(self.missing) == 32:
                    self.missing.pop(0)
                self.missing.append([lo, hi])
            self.last_seen = u
            return lost
        a = U if self.market == "spot" else (pu + 1 if pu is not None else u)
        b = u
        i = 0
        while i < len(self.missing):
            lo, hi = self.missing[i]
            ov = min(b, hi) - max(a, lo) + 1
            if ov > 0:
                c["ids_lost"] -= ov
                c["late"] += 1
                if a <= lo and b >= hi:
                    last = self.missing.pop()
                    if i < len(self.missing):
                        self.missing[i] = last
                    continue
                if a <= lo:
                    self.missing[i][0] = b + 1
                elif b >= hi:
                    self.missing[i][1] = a - 1
                elif len(self.missing) < 32:
                    self.missing.append([b + 1, hi])
                    self.missing[i][1] = a - 1
                else:
                    self.missing[i][1] = a - 1
            i += 1
        return 0

    def _start_resync(self, reason: str) -> None:
        self.synced = False
        self.first_pending = False
        self.reason = reason
        self.counters["resyncs"] += 1
        self.buffer = []

    def _buffer(self, ev: tuple) -> None:
        if len(self.buffer) >= self.max_buffer:
            drop = len(self.buffer) // 2
            self.buffer = self.buffer[drop:]
            self.counters["buffer_dropped"] += drop
        self.buffer.append(ev)
        self.counters["buffered"] += 1

    def _process(self, U: int, u: int, pu: Optional[int], bids, asks) -> int:
        c = self.counters
        L = self.book_id
        if self.market == "usdm" and pu is None:
            raise ValueError("USD-M depth event without pu (previous final update id)")
        gap = False
        if self.first_pending:
            if self.market == "spot":
                if u <= L:
                    c["dropped_old"] += 1
                    return DROPPED
                if U > L + 1:
                    gap = True
            else:
                if u < L:
                    c["dropped_old"] += 1
                    return DROPPED
                if U > L:
                    gap = True
        else:
            if u <= L:
                c["dropped_old"] += 1
                return DROPPED
            if self.market == "spot":
                if U > L + 1:
                    gap = True
            elif pu != L:
                gap = True
        if gap:
            c["gaps"] += 1
            return RESYNC_GAP
        self.book.apply_levels(0, [t for t, _ in bids], [q for _, q in bids])
        self.book.apply_levels(1, [t for t, _ in asks], [q for _, q in asks])
        self.book_id = u
        self.first_pending = False
        c["applied"] += 1
        if self.book.is_crossed():
            c["crossed"] += 1
            return RESYNC_CROSSED
        return APPLIED

    # -- API
    def on_depth_arrays(self, U: int, u: int, pu: Optional[int], bid_ticks: Sequence[int], bid_lots: Sequence[int],
                        ask_ticks: Sequence[int], ask_lots: Sequence[int]) -> int:
        bids = list(zip(map(int, bid_ticks), map(int, bid_lots)))
        asks = list(zip(map(int, ask_ticks), map(int, ask_lots)))
        ev = (U, u, pu, bids, asks)
        lost = self._account_stream(U, u, pu)
        if not self.synced:
            if lost and self.buffer:
                self.counters["buffer_dropped"] += len(self.buffer)
                self.buffer = []
            self._buffer(ev)
            return BUFFERED
        out = self._process(*ev)
        if out == RESYNC_GAP:
            self._start_resync("gap")
            self._buffer(ev)
        elif out == RESYNC_CROSSED:
            self._start_resync("crossed")
        return out

    def on_snapshot_arrays(self, L: int, bid_ticks, bid_lots, ask_ticks, ask_lots) -> int:
        c = self.counters
        c["snapshots"] += 1
        if self.synced:
            if L <= self.book_id:
                c["stale_snapshots"] += 1
                return STALE_SNAPSHOT
        elif self.buffer:
            first_u = self.buffer[0][0]
            if (self.market == "spot" and L + 1 < first_u) or (self.market == "usdm" and L < first_u):
                c["stale_snapshots"] += 1
                return STALE_SNAPSHOT
        self.book.load_snapshot(bid_ticks, bid_lots, ask_ticks, ask_lots)
        self.book_id = L
        self.synced = True
        self.first_pending = True
        self.reason = None
        if self.book.is_crossed():
            c["crossed"] += 1
            self._start_resync("crossed")
            return RESYNC_CROSSED
        for i, ev in enumerate(self.buffer):
            out = self._process(*ev)
            if out == RESYNC_GAP:
                self.synced = False
                self.first_pending = False
                self.reason = "gap"
                c["resyncs"] += 1
                self.buffer = self.buffer[i:]
                return RESYNC_GAP
            if out == RESYNC_CROSSED:
                self._start_resync("crossed")
                return RESYNC_CROSSED
        self.buffer = []
        return SYNCED

    @property
    def ready(self) -> bool:
        return self.synced

    @property
    def last_update_id(self) -> Optional[int]:
        return self.book_id

    @property
    def last_reason(self) -> Optional[str]:
        return self.reason

    @property
    def buffered_events(self) -> int:
        return len(self.buffer)

    def stats(self) -> dict:
        return dict(self.counters)
