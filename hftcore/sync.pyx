# cython: language_level=3
"""Sans-I/O Binance local-order-book synchronisation.

Binance's documented procedures ("How to manage a local order book correctly"):

Spot: buffer the stream, fetch a snapshot (lastUpdateId L). A snapshot with
L + 1 < U of the first buffered event is too old: fetch again. Drop events with
u <= L; the first remaining event must satisfy U <= L + 1 <= u. After that an
event with U > book id + 1 is a gap: discard the book and restart. Each applied
event sets the book id to its u.

USD-M futures: drop events with u < L; the first event must satisfy
U <= L <= u; after that every event's pu must equal the previous event's u,
otherwise re-initialise. (Futures ids are not contiguous: only pu links them.)

Here: events that arrive while no valid book exists are buffered (never lost)
and replayed when a snapshot is accepted; a gap, a stale snapshot or a crossed
book yields an outcome naming the reason and the book is flagged not ready
until a new snapshot is accepted. Nothing here does I/O: the caller fetches the
snapshot when :attr:`BookSync.needs_snapshot` is true.

Counters: applied, dropped_old, buffered, gaps (discontinuities that broke a
valid book), crossed, resyncs, ids_lost (update ids missing from the received
stream, counted on arrival whether the book was valid or buffering: the
message-loss figure; spot: U - last u - 1, USD-M: pu - last u), snapshots,
stale_snapshots, buffer_dropped (buffered events discarded: before an internal
gap of the buffer, or beyond max_buffer), late (events that arrived after a later
one and filled a hole already reported: credited back from ids_lost).
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memmove

from hftcore.binance cimport DepthSnapshot, DepthUpdate
from hftcore.book cimport L2Book
from hftcore.types cimport HFT_NO_ID

import numpy as np

from hftcore.book import L2Book as _L2Book

cnp.import_array()

SPOT = SYNC_SPOT
USDM = SYNC_USDM

APPLIED = SYNC_APPLIED
BUFFERED = SYNC_BUFFERED
DROPPED = SYNC_DROPPED
SYNCED = SYNC_SYNCED
STALE_SNAPSHOT = SYNC_STALE_SNAPSHOT
RESYNC_GAP = SYNC_RESYNC_GAP
RESYNC_CROSSED = SYNC_RESYNC_CROSSED

#: outcome code -> name
OUTCOME_NAMES = {
    SYNC_APPLIED: "applied",
    SYNC_BUFFERED: "buffered",
    SYNC_DROPPED: "dropped",
    SYNC_SYNCED: "synced",
    SYNC_STALE_SNAPSHOT: "stale_snapshot",
    SYNC_RESYNC_GAP: "resync_gap",
    SYNC_RESYNC_CROSSED: "resync_crossed",
}

cdef dict _REASONS = {
    0: None,
    SYNC_RESYNC_GAP: "gap",
    SYNC_RESYNC_CROSSED: "crossed",
    -1: "initial",
}


cdef inline bint _fast_i64(object x) noexcept:
    return (cnp.PyArray_CheckExact(x)
            and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_INT64
            and cnp.PyArray_NDIM(<cnp.ndarray>x) == 1
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>x))


cdef object _i64(object x, str name):
    if _fast_i64(x):
        return x
    a = np.asarray(x)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers (ticks/lots), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return np.ascontiguousarray(a, dtype=np.int64)


cdef inline const int64_t* _p(object a) noexcept:
    return <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t _n(object a) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, 0)


cdef int _raise_nomem() except -1 with gil:
    raise MemoryError("BookSync: out of memory while buffering")


cdef int _raise_no_pu() except -1 with gil:
    raise ValueError("USD-M depth event without pu (previous final update id)")


@cython.final
cdef class BookSync:
    """Binance book synchroniser feeding an :class:`hftcore.book.L2Book`.

    Parameters
    ----------
    book : the book to maintain (a new ``L2Book(tick_size)`` if None).
    market : ``"spot"`` or ``"usdm"`` (USD-M futures; COIN-M follows the same rules).
    max_buffer : most events kept while waiting for a snapshot; when exceeded
        the oldest half is dropped (counted in ``buffer_dropped``), which only
        means the next snapshot must be newer.
    tick_size : used only when ``book`` is None.
    """

    def __cinit__(self, *args, **kwargs):
        self._ev = NULL
        self._pool = NULL
        self._ev_n = self._ev_cap = 0
        self._pool_n = self._pool_cap = 0

    def __init__(self, L2Book book=None, market="spot", Py_ssize_t max_buffer=100_000,
                 tick_size=1.0):
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        if max_buffer < 2:
            raise ValueError(f"max_buffer must be >= 2, got {max_buffer}")
        self.book = book if book is not None else _L2Book(tick_size)
        self.market = SYNC_SPOT if market == "spot" else SYNC_USDM
        self.max_buffer = max_buffer
        self._synced = False
        self._first_pending = False
        self._book_id = HFT_NO_ID
        self._last_seen = HFT_NO_ID
        self._miss_n = 0
        self._reason = -1

    def __dealloc__(self):
        free(self._ev)
        free(self._pool)

    # ------------------------------------------------------------------
    # C-level core
    # ------------------------------------------------------------------

    cdef int64_t _account_stream(self, int64_t first_id, int64_t last_id, int64_t prev_id) noexcept nogil:
        """Message-loss accounting on the received stream, whatever the book's state
        (snapshots do not hide losses): ids between the newest event received and
        this one are lost (spot: U - last u - 1; USD-M: pu - last u); an older event
        that falls in a range reported lost was late, not lost, and is credited back.
        Returns the ids newly reported lost."""
        cdef int64_t seen = self._last_seen, lost = 0, lo, hi, a, b, ov
        cdef int i
        if seen == HFT_NO_ID:
            self._last_seen = last_id
            return 0
        if last_id > seen:
            if self.market == SYNC_SPOT:
                lo, hi = seen + 1, first_id - 1
            else:
                lo, hi = seen + 1, prev_id if prev_id != HFT_NO_ID else seen
            if hi >= lo:
                lost = hi - lo + 1
                self.ids_lost += lost
                if self._miss_n == 32:          # forget the oldest range
                    for i in range(31):
                        self._miss_lo[i] = self._miss_lo[i + 1]
                        self._miss_hi[i] = self._miss_hi[i + 1]
                    self._miss_n = 31
                self._miss_lo[self._miss_n] = lo
                self._miss_hi[self._miss_n] = hi
                self._miss_n += 1
            self._last_seen = last_id
            return lost
        # an older event: a duplicate, or a late one filling a reported hole
        a = first_id if self.market == SYNC_SPOT else (prev_id + 1 if prev_id != HFT_NO_ID else last_id)
        b = last_id
        i = 0
        while i < self._miss_n:
            lo = self._miss_lo[i]
            hi = self._miss_hi[i]
            ov = (b if b < hi else hi) - (a if a > lo else lo) + 1
            if ov > 0:
                self.ids_lost -= ov
                self.late += 1
                if a <= lo and b >= hi:           # the whole hole arrived: forget it
                    self._miss_n -= 1
                    self._miss_lo[i] = self._miss_lo[self._miss_n]
                    self._miss_hi[i] = self._miss_hi[self._miss_n]
                    continue
                if a <= lo:
                    self._miss_lo[i] = b + 1
                elif b >= hi:
                    self._miss_hi[i] = a - 1
                elif self._miss_n < 32:           # the middle arrived: split
                    self._miss_lo[self._miss_n] = b + 1
                    self._miss_hi[self._miss_n] = hi
                    self._miss_hi[i] = a - 1
                    self._miss_n += 1
                else:
                    self._miss_hi[i] = a - 1
            i += 1
        return 0

    cdef void _start_resync(self, int reason) noexcept nogil:
        self._synced = False
        self._first_pending = False
        self._reason = reason
        self.resyncs += 1
        self._ev_n = 0
        self._pool_n = 0

    cdef int _buffer(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                     const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                     const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        cdef Py_ssize_t need = 2 * (nb + na), cap, i, keep_from, shift
        cdef sync_buf_ev_t* ev
        cdef int64_t* pool
        cdef int64_t* dst
        if self._ev_n >= self.max_buffer:
            # drop the oldest half; the snapshot then has to be newer
            keep_from = self._ev_n // 2
            shift = self._ev[keep_from].off
            memmove(self._ev, self._ev + keep_from, (self._ev_n - keep_from) * sizeof(sync_buf_ev_t))
            self._ev_n -= keep_from
            for i in range(self._ev_n):
                self._ev[i].off -= shift
            memmove(self._pool, self._pool + shift, (self._pool_n - shift) * sizeof(int64_t))
            self._pool_n -= shift
            self.buffer_dropped += keep_from
        if self._ev_n == self._ev_cap:
            cap = self._ev_cap * 2 if self._ev_cap else 64
            ev = <sync_buf_ev_t*>realloc(self._ev, cap * sizeof(sync_buf_ev_t))
            if ev == NULL:
                return _raise_nomem()
            self._ev = ev
            self._ev_cap = cap
        if self._pool_n + need > self._pool_cap:
            cap = self._pool_cap * 2 if self._pool_cap else 4096
            while cap < self._pool_n + need:
                cap *= 2
            pool = <int64_t*>realloc(self._pool, cap * sizeof(int64_t))
            if pool == NULL:
                return _raise_nomem()
            self._pool = pool
            self._pool_cap = cap
        ev = &self._ev[self._ev_n]
        ev.first_id = first_id
        ev.last_id = last_id
        ev.prev_id = prev_id
        ev.nb = nb
        ev.na = na
        ev.off = self._pool_n
        dst = self._pool + self._pool_n
        if nb:
            memcpy(dst, bid_px, nb * sizeof(int64_t))
            memcpy(dst + nb, bid_qty, nb * sizeof(int64_t))
        if na:
            memcpy(dst + 2 * nb, ask_px, na * sizeof(int64_t))
            memcpy(dst + 2 * nb + na, ask_qty, na * sizeof(int64_t))
        self._pool_n += need
        self._ev_n += 1
        self.buffered += 1
        return 0

    cdef int _process(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                      const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                      const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        """One event against a valid book (never touches the buffer)."""
        cdef int64_t L = self._book_id
        cdef bint gap = False
        if self.market == SYNC_USDM and prev_id == HFT_NO_ID:
            return _raise_no_pu()
        if self._first_pending:
            # the first event after the snapshot L must straddle it
            if self.market == SYNC_SPOT:
                if last_id <= L:
                    self.dropped_old += 1
                    return SYNC_DROPPED
                if first_id > L + 1:
                    gap = True
            else:
                if last_id < L:
                    self.dropped_old += 1
                    return SYNC_DROPPED
                if first_id > L:
                    gap = True
        else:
            if last_id <= L:
                # already in the book (duplicate or out of order)
                self.dropped_old += 1
                return SYNC_DROPPED
            if self.market == SYNC_SPOT:
                if first_id > L + 1:
                    gap = True
            elif prev_id != L:
                gap = True
        if gap:
            self.gaps += 1
            return SYNC_RESYNC_GAP
        if nb:
            self.book.apply_levels_c(0, bid_px, bid_qty, nb)
        if na:
            self.book.apply_levels_c(1, ask_px, ask_qty, na)
        self._book_id = last_id
        self._first_pending = False
        self.applied += 1
        if self.book.crossed_c():
            self.crossed += 1
            return SYNC_RESYNC_CROSSED
        return SYNC_APPLIED

    cdef int on_depth_c(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                        const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                        const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        cdef int out
        cdef int64_t lost = self._account_stream(first_id, last_id, prev_id)
        if not self._synced:
            if lost and self._ev_n:
                # events before a gap can never be replayed: drop them, so the
                # next snapshot is judged against the stream after the gap
                self.buffer_dropped += self._ev_n
                self._ev_n = 0
                self._pool_n = 0
            self._buffer(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na)
            return SYNC_BUFFERED
        out = self._process(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na)
        if out == SYNC_RESYNC_GAP:
            self._start_resync(SYNC_RESYNC_GAP)
            # the event after the gap opens the new buffer: nothing is lost
            self._buffer(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na)
        elif out == SYNC_RESYNC_CROSSED:
            self._start_resync(SYNC_RESYNC_CROSSED)
        return out

    cdef int on_snapshot_c(self, int64_t last_update_id,
                           const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                           const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        cdef int64_t L = last_update_id, first_u
        cdef Py_ssize_t i, j, shift
        cdef sync_buf_ev_t* e
        cdef const int64_t* p
        cdef int out
        self.snapshots += 1
        if self._synced:
            # a refresh while synced: only a snapshot newer than the book replaces it
            if L <= self._book_id:
                self.stale_snapshots += 1
                return SYNC_STALE_SNAPSHOT
        elif self._ev_n > 0:
            first_u = self._ev[0].first_id
            # too old: the buffered stream starts after the snapshot's end
            if (self.market == SYNC_SPOT and L + 1 < first_u) or (self.market == SYNC_USDM and L < first_u):
                self.stale_snapshots += 1
                return SYNC_STALE_SNAPSHOT
        self.book.load_side_c(0, bid_px, bid_qty, nb)
        self.book.load_side_c(1, ask_px, ask_qty, na)
        self._book_id = L
        self._synced = True
        self._first_pending = True
        self._reason = 0
        if self.book.crossed_c():
            self.crossed += 1
            self._start_resync(SYNC_RESYNC_CROSSED)
            return SYNC_RESYNC_CROSSED
        # replay the buffer
        for i in range(self._ev_n):
            e = &self._ev[i]
            p = self._pool + e.off
            out = self._process(e.first_id, e.last_id, e.prev_id,
                                p, p + e.nb, e.nb, p + 2 * e.nb, p + 2 * e.nb + e.na, e.na)
            if out == SYNC_RESYNC_GAP:
                # keep this event and everything after it as the new buffer
                self._synced = False
                self._first_pending = False
                self._reason = SYNC_RESYNC_GAP
                self.resyncs += 1
                shift = e.off
                memmove(self._ev, self._ev + i, (self._ev_n - i) * sizeof(sync_buf_ev_t))
                self._ev_n -= i
                for j in range(self._ev_n):
                    self._ev[j].off -= shift
                memmove(self._pool, self._pool + shift, (self._pool_n - shift) * sizeof(int64_t))
                self._pool_n -= shift
                return SYNC_RESYNC_GAP
            if out == SYNC_RESYNC_CROSSED:
                self._start_resync(SYNC_RESYNC_CROSSED)
                return SYNC_RESYNC_CROSSED
        self._ev_n = 0
        self._pool_n = 0
        return SYNC_SYNCED

    # ------------------------------------------------------------------
    # Python API
    # ------------------------------------------------------------------

    def on_depth(self, DepthUpdate msg not None):
        """Feed one decoded depthUpdate; returns the outcome code (see OUTCOME_NAMES)."""
        return self.on_depth_c(msg.first_id, msg.last_id, msg.prev_id,
                               msg.bid_px, msg.bid_qty, msg.n_bids,
                               msg.ask_px, msg.ask_qty, msg.n_asks)

    def on_depth_arrays(self, int64_t first_id, int64_t last_id, prev_id,
                        bid_ticks, bid_lots, ask_ticks, ask_lots):
        """Feed one depth event from arrays: U, u, pu (None on spot), int64 ticks/lots."""
        cdef int64_t pu = HFT_NO_ID if prev_id is None else <int64_t>prev_id
        bt = _i64(bid_ticks, "bid_ticks")
        bq = _i64(bid_lots, "bid_lots")
        at = _i64(ask_ticks, "ask_ticks")
        aq = _i64(ask_lots, "ask_lots")
        if _n(bt) != _n(bq) or _n(at) != _n(aq):
            raise ValueError("ticks and lots differ in length")
        return self.on_depth_c(first_id, last_id, pu, _p(bt), _p(bq), _n(bt),
                               _p(at), _p(aq), _n(at))

    def on_snapshot(self, DepthSnapshot snap not None):
        """Feed a decoded REST depth snapshot; returns the outcome code."""
        return self.on_snapshot_c(snap.last_update_id, snap.bid_px, snap.bid_qty, snap.n_bids,
                                  snap.ask_px, snap.ask_qty, snap.n_asks)

    def on_snapshot_arrays(self, int64_t last_update_id, bid_ticks, bid_lots,
                           ask_ticks, ask_lots):
        """Feed a snapshot from arrays: lastUpdateId and int64 ticks/lots."""
        bt = _i64(bid_ticks, "bid_ticks")
        bq = _i64(bid_lots, "bid_lots")
        at = _i64(ask_ticks, "ask_ticks")
        aq = _i64(ask_lots, "ask_lots")
        if _n(bt) != _n(bq) or _n(at) != _n(aq):
            raise ValueError("ticks and lots differ in length")
        return self.on_snapshot_c(last_update_id, _p(bt), _p(bq), _n(bt), _p(at), _p(aq), _n(at))

    def reset(self):
        """Forget the book and the buffer (e.g. after a reconnect); counters are kept."""
        self._synced = False
        self._first_pending = False
        self._book_id = HFT_NO_ID
        self._last_seen = HFT_NO_ID
        self._miss_n = 0
        self._reason = -1
        self._ev_n = 0
        self._pool_n = 0
        self.book.clear_c()

    @property
    def ready(self):
        """True when the book equals the exchange's book as of ``last_update_id``."""
        return self._synced

    @property
    def needs_snapshot(self):
        """True while waiting for a (new) REST snapshot."""
        return not self._synced

    @property
    def state(self):
        """'synced' or 'awaiting_snapshot'."""
        return "synced" if self._synced else "awaiting_snapshot"

    @property
    def last_reason(self):
        """Why the book was last invalidated: 'gap', 'crossed', 'initial', or None."""
        return _REASONS.get(self._reason)

    @property
    def last_update_id(self):
        """The book id (last applied u, or the snapshot's lastUpdateId); None before a snapshot."""
        return None if self._book_id == HFT_NO_ID else self._book_id

    @property
    def buffered_events(self):
        """Events currently held for replay."""
        return self._ev_n

    @property
    def first_buffered_id(self):
        """U of the first buffered event, or None."""
        return self._ev[0].first_id if self._ev_n else None

    def stats(self):
        """Counters as a dict."""
        return {
            "applied": self.applied,
            "dropped_old": self.dropped_old,
            "buffered": self.buffered,
            "gaps": self.gaps,
            "crossed": self.crossed,
            "resyncs": self.resyncs,
            "ids_lost": self.ids_lost,
            "snapshots": self.snapshots,
            "stale_snapshots": self.stale_snapshots,
            "buffer_dropped": self.buffer_dropped,
            "late": self.late,
        }

    def __repr__(self):
        return (f"BookSync(market={'spot' if self.market == SYNC_SPOT else 'usdm'}, "
                f"state={self.state}, last_update_id={self.last_update_id}, "
                f"applied={self.applied}, gaps={self.gaps}, resyncs={self.resyncs})")
