"""Pure-Python twin of :class:`hftcore.sync.BookSync` (same rules, outcomes, counters)."""
from __future__ import annotations

from typing import Optional, Sequence

from hftmm.reference.book import RefL2Book

APPLIED, BUFFERED, DROPPED, SYNCED, STALE_SNAPSHOT, RESYNC_GAP, RESYNC_CROSSED, RESYNC_IDS, REFUSED = range(9)


class RefBookSync:
    """Binance spot / USD-M book synchronisation over a :class:`RefL2Book`."""

    def __init__(self, book: Optional[RefL2Book] = None, market: str = "spot", max_buffer: int = 100_000,
                 max_span: int = 100_000_000, behind_limit: int = 3, snapshot_behind_limit: int = 10_000) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        self.max_span = max_span
        self.behind_limit = behind_limit
        self.snapshot_behind_limit = snapshot_behind_limit
        self.prev_book: Optional[int] = None     # the newest applied event owns (prev_book, book_id]
        self.prev_rx: Optional[int] = None       # u of the previous event received
        self.behind = 0
        self.behind_u0 = 0
        self.min_delay: Optional[int] = None      # smallest local_ts - exch_ts seen, ns
        self.snap_local = self.snap_exch = 0      # times of the loaded snapshot, ns
        self.exch_ts = 0                          # exchange time of the event being fed
        self.max_exch = 0                         # newest exchange time of an event received
        self.recent: list[int] = []               # final ids of the last 16 events received
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
                             ids_lost=0, snapshots=0, stale_snapshots=0, buffer_dropped=0, refused=0,
                             contradictions=0, late=0, messages_received=0, messages_lost=0,
                             ids_received=0, duplicates=0)

    # -- helpers
    def _account_stream(self, U: int, u: int, pu: Optional[int]) -> int:
        """Loss on the received stream (see hftcore.sync): new holes are counted,
        late events that fill a reported hole are credited back."""
        c = self.counters
        seen = self.last_seen
        if seen is None or u > seen:
            c["messages_received"] += 1
            c["ids_received"] += u - U + 1 if self.market == "spot" or pu is None else u - pu
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
                c["messages_lost"] += 1
                if len(self.missing) == 32:
                    self.missing.pop(0)
                self.missing.append([lo, hi])
            self.last_seen = u
            return lost
        a = U if self.market == "spot" else (pu + 1 if pu is not None else u)
        b = u
        i = 0
        got = 0
        while i < len(self.missing):
            lo, hi = self.missing[i]
            ov = min(b, hi) - max(a, lo) + 1
            if ov > 0:
                c["ids_lost"] -= ov
                got += ov
                if a <= lo and b >= hi:
                    c["messages_lost"] -= 1
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
                    c["messages_lost"] += 1
                else:
                    self.missing[i][1] = a - 1
            i += 1
        if got:
            c["late"] += 1
            c["messages_received"] += 1
            c["ids_received"] += got
        else:
            c["duplicates"] += 1
        return 0

    def _impossible(self, U: int, u: int, pu: Optional[int]) -> bool:
        if U < 0 or u < U or u - U > self.max_span:
            return True
        return self.market == "usdm" and pu is not None and (pu < -1 or pu >= U or u - pu > self.max_span)

    def _count_behind(self, chained: bool, u: int, limit: int) -> bool:
        if chained and self.behind:
            self.behind += 1
        else:
            self.behind = 1
            self.behind_u0 = u
        if self.behind >= limit:
            return True
        if self.behind >= 8:
            head = float(self.book_id if self.synced else self.last_seen)
            pace = max(float(u - self.behind_u0) / (self.behind - 1), 1.0)
            return self.behind + (head - float(u)) / pace > limit
        return False

    def _after_snapshot(self) -> bool:
        e = self.exch_ts
        if e <= 0:
            return False
        if self.snap_exch > 0:
            return e > self.snap_exch + 1_000_000_000
        if self.snap_local > 0 and self.min_delay is not None:
            return e + self.min_delay > self.snap_local + 1_000_000_000
        return False

    def _reanchor(self, u: int) -> None:
        self.last_seen = u
        self.missing = []
        self.behind = 0
        self.counters["contradictions"] += 1

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
                if u < L and self.prev_book is not None and u > self.prev_book:
                    return RESYNC_IDS     # ends inside the newest applied event's range
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
        lo = U if self.market == "spot" else pu + 1
        if any(lo <= e < u for e in self.recent):
            return RESYNC_IDS
        self.book.apply_levels(0, [t for t, _ in bids], [q for _, q in bids])
        self.book.apply_levels(1, [t for t, _ in asks], [q for _, q in asks])
        self.prev_book = U - 1 if self.market == "spot" else pu   # it owns (prev_book, u]
        self.book_id = u
        self.first_pending = False
        c["applied"] += 1
        if self.book.is_crossed():
            c["crossed"] += 1
            return RESYNC_CROSSED
        return APPLIED

    # -- API
    def on_depth_arrays(self, U: int, u: int, pu: Optional[int], bid_ticks: Sequence[int], bid_lots: Sequence[int],
                        ask_ticks: Sequence[int], ask_lots: Sequence[int], local_ts: int = 0, exch_ts: int = 0) -> int:
        self.exch_ts = exch_ts
        bids = list(zip(map(int, bid_ticks), map(int, bid_lots)))
        asks = list(zip(map(int, ask_ticks), map(int, ask_lots)))
        ev = (U, u, pu, bids, asks)
        c = self.counters
        if self.market == "usdm" and pu is None:
            raise ValueError("USD-M depth event without pu (previous final update id)")
        seen = self.last_seen
        overlap = seen is not None and u > seen and (U <= seen if self.market == "spot" else pu < seen)
        if overlap or self._impossible(U, u, pu):
            c["refused"] += 1
            if overlap:
                self.last_seen = None
                self.missing = []
            if self.synced:
                self._start_resync("ids")
                return RESYNC_IDS
            c["buffer_dropped"] += len(self.buffer)
            self.buffer = []
            return REFUSED
        self.max_exch = max(self.max_exch, exch_ts)
        self.recent = (self.recent + [u])[-16:]
        if local_ts > 0 and exch_ts > 0 and (self.min_delay is None or local_ts - exch_ts < self.min_delay):
            self.min_delay = local_ts - exch_ts
        lost = self._account_stream(U, u, pu)
        chained = self.prev_rx is not None and (U == self.prev_rx + 1 if self.market == "spot" else pu == self.prev_rx)
        self.prev_rx = u
        if not self.synced:
            behind = u < self.last_seen and (not self.buffer or u < self.buffer[0][0])
            reanchor = behind and self._count_behind(chained, u, self.behind_limit)
            if not behind:
                self.behind = 0
            if lost and self.buffer:
                c["buffer_dropped"] += len(self.buffer)
                self.buffer = []
            self._buffer(ev)
            if reanchor:
                k = self.behind
                c["buffer_dropped"] += len(self.buffer) - k
                self.buffer = self.buffer[-k:]
                self._reanchor(u)
            return BUFFERED
        out = self._process(*ev)
        if out == DROPPED and self.first_pending:
            if self._count_behind(chained, u, self.snapshot_behind_limit) or self._after_snapshot():
                out = RESYNC_IDS
        else:
            self.behind = 0
        if out == RESYNC_GAP:
            self._start_resync("gap")
            self._buffer(ev)
        elif out == RESYNC_IDS:
            self._start_resync("ids")
            self._reanchor(u)
            self._buffer(ev)
        elif out == RESYNC_CROSSED:
            self._start_resync("crossed")
        return out

    def on_snapshot_arrays(self, L: int, bid_ticks, bid_lots, ask_ticks, ask_lots,
                           local_ts: int = 0, exch_ts: int = 0) -> int:
        c = self.counters
        c["snapshots"] += 1
        if L < 0 or (self.last_seen is not None and L > self.last_seen and L - self.last_seen > self.max_span):
            c["refused"] += 1
            return REFUSED
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
        self.prev_book = None
        self.behind = 0
        self.snap_local = local_ts
        self.snap_exch = exch_ts if exch_ts + 1_000_000_000 >= self.max_exch else 0
        self.synced = True
        self.first_pending = True
        self.reason = None
        if self.book.is_crossed():
            c["crossed"] += 1
            self._start_resync("crossed")
            return RESYNC_CROSSED
        for i, ev in enumerate(self.buffer):
            out = self._process(*ev)
            if out == RESYNC_GAP or out == RESYNC_IDS:
                self.synced = False
                self.first_pending = False
                self.reason = "gap" if out == RESYNC_GAP else "ids"
                c["resyncs"] += 1
                if out == RESYNC_IDS:
                    self.buffer = []
                    self._reanchor(None)
                else:
                    self.buffer = self.buffer[i:]
                return out
            if out == RESYNC_CROSSED:
                self._start_resync("crossed")
                return RESYNC_CROSSED
        newest = max((ev[1] for ev in self.buffer), default=None)
        if newest is not None and newest < self.last_seen:
            self._reanchor(newest)
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
