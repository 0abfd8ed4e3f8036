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

A book must never call itself valid while it no longer follows the stream, so
update ids are also checked against what an honest stream can send:

- an event with impossible ids (negative, u < U, USD-M pu >= U, or spanning more
  than ``max_span`` ids in one message), or one newer than the newest message
  received that overlaps its ids, is refused (counter ``refused``); a valid book
  that misses it is invalidated (reason "ids") and resynced;
- messages partition the id sequence, so once an event owning [U, u] (USD-M (pu, u]) has been
  applied, an event that ends strictly inside the ids it owns contradicts it: the
  book's id was false (one corrupt id would otherwise freeze a "ready" book, every
  later event dropped as old) -- invalidated, resynced (``contradictions``); so
  does an event about to be applied that owns an id where one of the last 16
  events received ended (a late message whose false u straddles the snapshot);
- a live stream that keeps running behind the head means the head's id was
  false: resync / re-anchor the buffer on the stream (``contradictions``). Behind
  a just-loaded snapshot, a slow consumer's backlog is normal however long, so it
  takes an event produced more than 1 s after the snapshot (exchange times on
  USD-M; on spot the snapshot's receive time against the event's exchange time
  plus the smallest feed delay seen) that is still older than the snapshot, or a
  chained run whose own pace would need more than ``snapshot_behind_limit``
  messages to reach it; behind the newest buffered event (and below the buffer),
  ``behind_limit`` chained events;
- a snapshot more than ``max_span`` ids ahead of the stream, or with a negative
  id, is refused.

Counters: applied, dropped_old, buffered, gaps (discontinuities that broke a
valid book), crossed, resyncs, snapshots, stale_snapshots, buffer_dropped
(buffered events discarded: before an internal gap of the buffer, or beyond
max_buffer), refused, contradictions; and the loss of the received stream,
counted on arrival whether the book was valid or buffering (snapshots do not
hide losses; :class:`StreamLoss` applies the same rule to a stream without a
book): ids_lost / ids_received (update ids missing from / carried by the stream;
spot: U - last u - 1 and u - U + 1, USD-M: pu - last u and u - pu -- USD-M ids
are shared by all symbols, so there the message chain is the figure that
counts), messages_lost / messages_received (holes in the chain, each at least
one message / distinct messages), late (events that arrived after a later one
and filled a hole already reported: credited back) and duplicates.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memmove, memset

from hftcore.binance cimport DepthSnapshot, DepthUpdate
from hftcore.book cimport L2Book, message_arrays
from hftcore.types cimport (HFT_ASK, HFT_BID, HFT_EV_BOOK_INVALID, HFT_EV_DEPTH, HFT_EV_SNAPSHOT, HFT_EVF_BEGIN, HFT_EVF_EMPTY,
                            HFT_EVF_END, HFT_NO_ID, hft_event_t,
                            hft_message_events,
                            HFT_INVALID_CROSSED, HFT_INVALID_GAP, HFT_INVALID_IDS, HFT_INVALID_RESET, hft_event_set)

import numpy as np

from hftcore.book import L2Book as _L2Book
from hftcore.types import EVENT_DTYPE

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
RESYNC_IDS = SYNC_RESYNC_IDS
REFUSED = SYNC_REFUSED
#: the outcomes after which a valid book is gone and a snapshot is needed
RESYNC_OUTCOMES = frozenset((SYNC_RESYNC_GAP, SYNC_RESYNC_CROSSED, SYNC_RESYNC_IDS))

#: outcome code -> name
OUTCOME_NAMES = {
    SYNC_APPLIED: "applied",
    SYNC_BUFFERED: "buffered",
    SYNC_DROPPED: "dropped",
    SYNC_SYNCED: "synced",
    SYNC_STALE_SNAPSHOT: "stale_snapshot",
    SYNC_RESYNC_GAP: "resync_gap",
    SYNC_RESYNC_CROSSED: "resync_crossed",
    SYNC_RESYNC_IDS: "resync_ids",
    SYNC_REFUSED: "refused",
}

cdef dict _REASONS = {
    0: None,
    SYNC_RESYNC_GAP: "gap",
    SYNC_RESYNC_CROSSED: "crossed",
    SYNC_RESYNC_IDS: "ids",
    -1: "initial",
}


cdef inline const int64_t* _p(object a) noexcept:
    return <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t _n(object a) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, 0)


cdef int _raise_nomem() except -1 with gil:
    raise MemoryError("BookSync: out of memory while buffering")


cdef int _raise_no_pu() except -1 with gil:
    raise ValueError("USD-M depth event without pu (previous final update id)")


cdef int sync_out_reserve(sync_out_t* o, Py_ssize_t k) except -1 nogil:
    """Room for k more records in o (grown by doubling)."""
    cdef Py_ssize_t cap
    cdef hft_event_t* ev
    if o.n + k <= o.cap:
        return 0
    cap = o.cap * 2 if o.cap else 4096
    while cap < o.n + k:
        cap *= 2
    ev = <hft_event_t*>realloc(o.ev, <size_t>cap * sizeof(hft_event_t))
    if ev == NULL:
        return _raise_nomem()
    o.ev = ev
    o.cap = cap
    return 0


cdef object _take(sync_out_t* o):
    cdef cnp.ndarray a = np.empty(o.n, dtype=EVENT_DTYPE)
    if o.n:
        memcpy(cnp.PyArray_DATA(a), o.ev, <size_t>o.n * sizeof(hft_event_t))
    o.n = 0
    return a


@cython.final
cdef void stream_loss_init(stream_loss_t* s) noexcept nogil:
    memset(s, 0, sizeof(stream_loss_t))
    s.last_seen = HFT_NO_ID


cdef int64_t stream_loss_account(stream_loss_t* s, bint spot, int64_t first_id, int64_t last_id,
                                 int64_t prev_id) noexcept nogil:
    """Message-loss accounting on a received stream, whatever the book's state
    (snapshots do not hide losses): ids between the newest event received and
    this one are lost (spot: U - last u - 1; USD-M: pu - last u) and the hole is
    at least one message; an older event that falls in a range reported lost was
    late, not lost, and is credited back (a hole it fills entirely is gone; one it
    splits is two holes). Returns the ids newly reported lost."""
    cdef int64_t seen = s.last_seen, lost = 0, lo, hi, a, b, ov, got = 0
    cdef int i
    cdef bint filled = False
    if seen == HFT_NO_ID or last_id > seen:
        s.msgs_received += 1
        s.ids_received += (last_id - first_id + 1 if spot or prev_id == HFT_NO_ID
                           else last_id - prev_id)
    if seen == HFT_NO_ID:
        s.last_seen = last_id
        return 0
    if last_id > seen:
        if spot:
            lo, hi = seen + 1, first_id - 1
        else:
            lo, hi = seen + 1, prev_id if prev_id != HFT_NO_ID else seen
        if hi >= lo:
            lost = hi - lo + 1
            s.ids_lost += lost
            s.msgs_lost += 1
            if s.miss_n == 32:          # forget the oldest range (it stays counted)
                for i in range(31):
                    s.miss_lo[i] = s.miss_lo[i + 1]
                    s.miss_hi[i] = s.miss_hi[i + 1]
                s.miss_n = 31
            s.miss_lo[s.miss_n] = lo
            s.miss_hi[s.miss_n] = hi
            s.miss_n += 1
        s.last_seen = last_id
        return lost
    # an older event: a duplicate, or a late one filling a reported hole
    a = first_id if spot else (prev_id + 1 if prev_id != HFT_NO_ID else last_id)
    b = last_id
    i = 0
    while i < s.miss_n:
        lo = s.miss_lo[i]
        hi = s.miss_hi[i]
        ov = (b if b < hi else hi) - (a if a > lo else lo) + 1
        if ov > 0:
            s.ids_lost -= ov
            got += ov
            filled = True
            if a <= lo and b >= hi:           # the whole hole arrived: forget it
                s.msgs_lost -= 1
                s.miss_n -= 1
                s.miss_lo[i] = s.miss_lo[s.miss_n]
                s.miss_hi[i] = s.miss_hi[s.miss_n]
                continue
            if a <= lo:
                s.miss_lo[i] = b + 1
            elif b >= hi:
                s.miss_hi[i] = a - 1
            elif s.miss_n < 32:           # the middle arrived: split
                s.miss_lo[s.miss_n] = b + 1
                s.miss_hi[s.miss_n] = hi
                s.miss_hi[i] = a - 1
                s.miss_n += 1
                s.msgs_lost += 1
            else:
                s.miss_hi[i] = a - 1
        i += 1
    if filled:
        s.late += 1
        s.msgs_received += 1
        s.ids_received += got
    else:
        s.duplicates += 1
    return 0


cdef class StreamLoss:
    """Message-loss accounting of one received depth stream (the same rule as
    :class:`BookSync`'s counters), for a stream that does not keep a book -- e.g.
    each connection of a redundant feed. Feed every depth message's ids in arrival
    order: ``add(U, u, pu)`` (``pu`` -1 / omitted on spot)."""

    def __init__(self, market="spot"):
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        self.spot = market == "spot"
        stream_loss_init(&self.s)

    def add(self, int64_t first_id, int64_t last_id, int64_t prev_id=HFT_NO_ID):
        """Account one message; returns the update ids newly reported lost."""
        if not self.spot and prev_id == HFT_NO_ID:
            raise ValueError("USD-M messages need pu (prev_id)")
        return stream_loss_account(&self.s, self.spot, first_id, last_id, prev_id)

    def restart(self):
        """Forget the stream's position (counters are kept): the next message opens
        a new window, nothing before it is counted lost."""
        self.s.last_seen = HFT_NO_ID
        self.s.miss_n = 0

    @property
    def last_seen(self):
        return None if self.s.last_seen == HFT_NO_ID else self.s.last_seen

    def stats(self):
        """Counters as a dict (see :func:`loss_figures` for the rates)."""
        return _loss_dict(&self.s)


cdef dict _loss_dict(stream_loss_t* s):
    return {"messages_received": s.msgs_received, "messages_lost": s.msgs_lost,
            "ids_received": s.ids_received, "ids_lost": s.ids_lost,
            "duplicates": s.duplicates, "late": s.late}


def loss_figures(dict c):
    """The two loss figures from a dict of loss counters (``messages_lost``,
    ``messages_received``, ``ids_lost``, ``ids_received``): messages lost /
    messages expected and update ids lost / ids expected (0.0 when nothing was
    expected). ``messages_lost`` counts holes in the chain, each at least one
    message: exact unless consecutive messages are lost (then a lower bound, and
    ``ids_lost`` says how much is missing)."""
    ml, mr = c.get("messages_lost", 0), c.get("messages_received", 0)
    il, ir = c.get("ids_lost", 0), c.get("ids_received", 0)
    return {"messages_expected": ml + mr, "message_loss_rate": ml / (ml + mr) if ml + mr else 0.0,
            "ids_expected": il + ir, "id_loss_rate": il / (il + ir) if il + ir else 0.0}


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
    max_span : most update ids one message may cover (u - U, USD-M also u - pu);
        real messages cover tens of thousands at most, so the default (1e8)
        refuses only impossible ones.
    behind_limit : chained events in a row running behind the buffer's newest
        event (and below the buffer) before its id is taken as false.
    snapshot_behind_limit : most messages a stream behind a just-loaded snapshot
        may need, at its own pace, to reach it (see the module doc).
    emit_events : keep every change made to the book as EVENT_DTYPE records,
        collected by :meth:`take_events`: a SNAPSHOT run (BEGIN..END,
        first_id = last_id = lastUpdateId) for each snapshot loaded, then the
        DEPTH records of each event applied, in application order (buffered
        events replayed after a snapshot come right after it). Replaying them
        naively (a SNAPSHOT run clears and loads, a DEPTH record sets a level)
        rebuilds exactly this book. A BOOK_INVALID record marks where a valid
        book stopped being valid (gap, crossed, :meth:`reset`). Records carry the times given with the
        event (``local_ts``/``exch_ts`` arguments, or the record times fed to
        :class:`EventNormalizer`); a replayed event earlier than its snapshot
        gets the snapshot's ``local_ts``, so ``local_ts`` never decreases.
        :meth:`reset` clears the book without a record.
    """

    def __cinit__(self, *args, **kwargs):
        self._ev = NULL
        self._pool = NULL
        self._ev_n = self._ev_cap = 0
        self._pool_n = self._pool_cap = 0
        self._out = NULL
        memset(&self._outbuf, 0, sizeof(sync_out_t))
        self._in_local_ts = self._in_exch_ts = 0
        self._ts_floor = INT64_MIN

    def __init__(self, L2Book book=None, market="spot", Py_ssize_t max_buffer=100_000,
                 tick_size=1.0, bint emit_events=False, int64_t max_span=100_000_000,
                 int behind_limit=3, int snapshot_behind_limit=10_000):
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        if max_buffer < 2:
            raise ValueError(f"max_buffer must be >= 2, got {max_buffer}")
        if max_span < 1:
            raise ValueError(f"max_span must be >= 1 update id, got {max_span}")
        if behind_limit < 2 or snapshot_behind_limit < 2:
            raise ValueError(f"behind_limit and snapshot_behind_limit must be >= 2 events, "
                             f"got {behind_limit}, {snapshot_behind_limit}")
        self.max_span = max_span
        self.behind_limit = behind_limit
        self.snapshot_behind_limit = snapshot_behind_limit
        self.book = book if book is not None else _L2Book(tick_size)
        self.market = SYNC_SPOT if market == "spot" else SYNC_USDM
        self.max_buffer = max_buffer
        self._synced = False
        self._first_pending = False
        self._book_id = HFT_NO_ID
        stream_loss_init(&self._loss)
        self._prev_book = HFT_NO_ID
        self._prev_rx = HFT_NO_ID
        self._behind = 0
        self._min_delay = INT64_MAX
        self._snap_local = self._snap_exch = self._max_exch = 0
        self._rx_n = self._rx_i = 0
        self._reason = -1
        self._out = &self._outbuf if emit_events else NULL

    def __dealloc__(self):
        free(self._ev)
        free(self._pool)
        free(self._outbuf.ev)

    # ------------------------------------------------------------------
    # C-level core
    # ------------------------------------------------------------------

    cdef int64_t _account_stream(self, int64_t first_id, int64_t last_id, int64_t prev_id) noexcept nogil:
        return stream_loss_account(&self._loss, self.market == SYNC_SPOT, first_id, last_id, prev_id)

    cdef void _start_resync(self, int reason) noexcept nogil:
        self._synced = False
        self._first_pending = False
        self._reason = reason
        self.resyncs += 1
        self._ev_n = 0
        self._pool_n = 0

    cdef bint _impossible(self, int64_t first_id, int64_t last_id, int64_t prev_id) noexcept nogil:
        """Ids no honest message carries: negative, u < U, more than max_span ids in
        one message; USD-M: pu >= U (pu is the previous message's u) or pu < -1."""
        if first_id < 0 or last_id < first_id or last_id - first_id > self.max_span:
            return True
        if self.market == SYNC_USDM and (prev_id < -1 or prev_id >= first_id or last_id - prev_id > self.max_span):
            return True
        return False

    cdef void _reanchor(self, int64_t last_id) noexcept nogil:
        """The head (the book's or the buffer's newest id) was false: the stream's
        position is last_id; the loss accounting restarts there."""
        self._loss.last_seen = last_id
        self._loss.miss_n = 0
        self._behind = 0
        self.contradictions += 1

    cdef bint _count_behind(self, bint chained, int64_t last_id, int limit) noexcept nogil:
        """One more event of a chained run behind the head (the book id, or the
        newest id seen); True when the run says the head is false: `limit` events
        long, or (from 8 events on) the run's own pace of ids per message would
        need more than `limit` messages in all to reach the head."""
        cdef double pace, head
        if chained and self._behind > 0:
            self._behind += 1
        else:
            self._behind = 1
            self._behind_u0 = last_id
        if self._behind >= limit:
            return True
        if self._behind >= 8:
            head = <double>(self._book_id if self._synced else self._loss.last_seen)
            pace = <double>(last_id - self._behind_u0) / (self._behind - 1)
            if pace < 1.0:
                pace = 1.0
            return self._behind + (head - <double>last_id) / pace > limit
        return False

    cdef bint _after_snapshot(self) noexcept nogil:
        """The event being fed was produced more than 1 s after the loaded snapshot."""
        cdef int64_t e = self._in_exch_ts
        if e <= 0:
            return False
        if self._snap_exch > 0:
            return e > self._snap_exch + 1_000_000_000
        if self._snap_local > 0 and self._min_delay != INT64_MAX:
            return e + self._min_delay > self._snap_local + 1_000_000_000
        return False

    cdef void _keep_from(self, Py_ssize_t i) noexcept nogil:
        """Drop the buffered events before index i (not counted here)."""
        cdef Py_ssize_t j, shift
        if i <= 0:
            return
        if i >= self._ev_n:
            self._ev_n = 0
            self._pool_n = 0
            return
        shift = self._ev[i].off
        memmove(self._ev, self._ev + i, (self._ev_n - i) * sizeof(sync_buf_ev_t))
        self._ev_n -= i
        for j in range(self._ev_n):
            self._ev[j].off -= shift
        memmove(self._pool, self._pool + shift, (self._pool_n - shift) * sizeof(int64_t))
        self._pool_n -= shift

    cdef int _emit_invalid(self, int reason) except -1 nogil:
        """One BOOK_INVALID record into the output (the book, valid until now, is
        not any more): px = reason (HFT_INVALID_*), ids = the last valid update id,
        times those of the message that revealed it."""
        cdef sync_out_t* o = self._out
        cdef int64_t ts = self._in_local_ts
        if o == NULL or not self._synced:
            return 0
        if ts < self._ts_floor:
            ts = self._ts_floor
        sync_out_reserve(o, 1)
        hft_event_set(o.ev + o.n, ts, self._in_exch_ts, reason, 0, self._book_id, self._book_id, HFT_NO_ID,
                      HFT_EV_BOOK_INVALID, 0, HFT_EVF_BEGIN | HFT_EVF_END | HFT_EVF_EMPTY)
        o.n += 1
        return 0

    cdef int _emit(self, int kind, int64_t local_ts, int64_t exch_ts,
                   int64_t first_id, int64_t last_id, int64_t prev_id,
                   const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                   const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        """Records of one book change into the output (as the decoder lays out a
        message: bids then asks, BEGIN/END flags, one EMPTY record when no level)."""
        cdef sync_out_t* o = self._out
        cdef Py_ssize_t n = nb + na
        if local_ts < self._ts_floor:
            local_ts = self._ts_floor
        sync_out_reserve(o, n if n else 1)
        o.n += hft_message_events(o.ev + o.n, local_ts, exch_ts, kind, first_id, last_id, prev_id,
                                  bid_px, bid_qty, nb, ask_px, ask_qty, na)
        return 0

    cdef int _buffer(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                     const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                     const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na,
                     int64_t local_ts, int64_t exch_ts) except -1 nogil:
        cdef Py_ssize_t need = 2 * (nb + na), cap, keep_from
        cdef sync_buf_ev_t* ev
        cdef int64_t* pool
        cdef int64_t* dst
        if self._ev_n >= self.max_buffer:
            # drop the oldest half; the snapshot then has to be newer
            keep_from = self._ev_n // 2
            self._keep_from(keep_from)
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
        ev.local_ts = local_ts
        ev.exch_ts = exch_ts
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
                      const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na,
                      int64_t local_ts, int64_t exch_ts) except -1 nogil:
        """One event against a valid book (never touches the buffer)."""
        cdef int64_t L = self._book_id, lo
        cdef bint gap = False
        cdef int k
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
                if last_id < L and self._prev_book != HFT_NO_ID and last_id > self._prev_book:
                    # ends strictly inside the ids the newest applied event owns (spot [U, L],
                    # USD-M (pu, L]): messages partition the ids, so that event's ids were false
                    return SYNC_RESYNC_IDS
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
        # an event received lately ended inside the ids this one owns: one of them lies
        lo = first_id if self.market == SYNC_SPOT else prev_id + 1
        for k in range(self._rx_n):
            if lo <= self._rx_last[k] < last_id:
                return SYNC_RESYNC_IDS
        if nb:
            self.book.apply_levels_c(0, bid_px, bid_qty, nb)
        if na:
            self.book.apply_levels_c(1, ask_px, ask_qty, na)
        if self._out != NULL:
            self._emit(HFT_EV_DEPTH, local_ts, exch_ts, first_id, last_id, prev_id,
                       bid_px, bid_qty, nb, ask_px, ask_qty, na)
        # the ids this event owns: spot [U, u], USD-M (pu, u]
        self._prev_book = first_id - 1 if self.market == SYNC_SPOT else prev_id
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
        cdef int64_t lost
        cdef bint chained, behind, reanchor, overlap
        if self.market == SYNC_USDM and prev_id == HFT_NO_ID:
            return _raise_no_pu()
        overlap = (self._loss.last_seen != HFT_NO_ID and last_id > self._loss.last_seen
                   and (first_id <= self._loss.last_seen if self.market == SYNC_SPOT else prev_id < self._loss.last_seen))
        if overlap or self._impossible(first_id, last_id, prev_id):
            # impossible ids, or newer than the newest message received yet overlapping
            # its ids (messages partition the ids: one of the two lies, so the stream's
            # position is unknown until the next event); using this one could rebuild
            # a wrong book, so it is refused
            self.refused += 1
            if overlap:
                self._loss.last_seen = HFT_NO_ID
                self._loss.miss_n = 0
            if self._synced:
                # the book misses this message: it no longer follows the stream
                self._emit_invalid(HFT_INVALID_IDS)
                self._start_resync(SYNC_RESYNC_IDS)
                return SYNC_RESYNC_IDS
            if self._ev_n:
                # a message is missing from the buffer: what came before cannot be replayed
                self.buffer_dropped += self._ev_n
                self._ev_n = 0
                self._pool_n = 0
            return SYNC_REFUSED
        if self._in_exch_ts > self._max_exch:
            self._max_exch = self._in_exch_ts
        if self._in_local_ts > 0 and self._in_exch_ts > 0 and self._in_local_ts - self._in_exch_ts < self._min_delay:
            self._min_delay = self._in_local_ts - self._in_exch_ts
        self._rx_last[self._rx_i] = last_id
        self._rx_i = (self._rx_i + 1) & 15
        if self._rx_n < 16:
            self._rx_n += 1
        lost = self._account_stream(first_id, last_id, prev_id)
        chained = self._prev_rx != HFT_NO_ID and (
            first_id == self._prev_rx + 1 if self.market == SYNC_SPOT else prev_id == self._prev_rx)
        self._prev_rx = last_id
        if not self._synced:
            # behind the newest event received and below everything buffered: not a
            # duplicate of a buffered event; a chained run of these is a live stream
            # running behind a false head
            behind = last_id < self._loss.last_seen and (self._ev_n == 0 or last_id < self._ev[0].first_id)
            reanchor = behind and self._count_behind(chained, last_id, self.behind_limit)
            if not behind:
                self._behind = 0
            if lost and self._ev_n:
                # events before a gap can never be replayed: drop them, so the
                # next snapshot is judged against the stream after the gap
                self.buffer_dropped += self._ev_n
                self._ev_n = 0
                self._pool_n = 0
            self._buffer(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na,
                         self._in_local_ts, self._in_exch_ts)
            if reanchor:
                # keep the run (the stream as it really is), forget the false head
                out = self._behind
                self.buffer_dropped += self._ev_n - out
                self._keep_from(self._ev_n - out)
                self._reanchor(last_id)
            return SYNC_BUFFERED
        out = self._process(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na,
                            self._in_local_ts, self._in_exch_ts)
        if out == SYNC_DROPPED and self._first_pending:
            # older than the snapshot just loaded: normal for a few events, not for a stream
            if self._count_behind(chained, last_id, self.snapshot_behind_limit) or self._after_snapshot():
                out = SYNC_RESYNC_IDS
        else:
            self._behind = 0
        if out == SYNC_RESYNC_GAP:
            self._emit_invalid(HFT_INVALID_GAP)
            self._start_resync(SYNC_RESYNC_GAP)
            # the event after the gap opens the new buffer: nothing is lost
            self._buffer(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na,
                         self._in_local_ts, self._in_exch_ts)
        elif out == SYNC_RESYNC_IDS:
            self._emit_invalid(HFT_INVALID_IDS)
            self._start_resync(SYNC_RESYNC_IDS)
            self._reanchor(last_id)
            self._buffer(first_id, last_id, prev_id, bid_px, bid_qty, nb, ask_px, ask_qty, na,
                         self._in_local_ts, self._in_exch_ts)
        elif out == SYNC_RESYNC_CROSSED:
            self._emit_invalid(HFT_INVALID_CROSSED)
            self._start_resync(SYNC_RESYNC_CROSSED)
        return out

    cdef int on_snapshot_c(self, int64_t last_update_id,
                           const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                           const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil:
        cdef int64_t L = last_update_id, first_u, newest
        cdef Py_ssize_t i
        cdef sync_buf_ev_t* e
        cdef const int64_t* p
        cdef int out
        self.snapshots += 1
        if L < 0 or (self._loss.last_seen != HFT_NO_ID and L > self._loss.last_seen and L - self._loss.last_seen > self.max_span):
            # a negative id, or further ahead of the stream than any message could carry it
            self.refused += 1
            return SYNC_REFUSED
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
        if self._out != NULL:
            self._emit(HFT_EV_SNAPSHOT, self._in_local_ts, self._in_exch_ts, L, L, HFT_NO_ID,
                       bid_px, bid_qty, nb, ask_px, ask_qty, na)
        self._book_id = L
        self._prev_book = HFT_NO_ID
        self._behind = 0
        self._snap_local = self._in_local_ts
        # a snapshot stamped before events already received has no usable exchange time
        self._snap_exch = self._in_exch_ts if self._in_exch_ts + 1_000_000_000 >= self._max_exch else 0
        self._synced = True
        self._first_pending = True
        self._reason = 0
        if self.book.crossed_c():
            self.crossed += 1
            self._emit_invalid(HFT_INVALID_CROSSED)
            self._start_resync(SYNC_RESYNC_CROSSED)
            return SYNC_RESYNC_CROSSED
        # replay the buffer (records no earlier than the snapshot's local time)
        self._ts_floor = self._in_local_ts
        for i in range(self._ev_n):
            e = &self._ev[i]
            p = self._pool + e.off
            out = self._process(e.first_id, e.last_id, e.prev_id,
                                p, p + e.nb, e.nb, p + 2 * e.nb, p + 2 * e.nb + e.na, e.na,
                                e.local_ts, e.exch_ts)
            if out == SYNC_RESYNC_GAP or out == SYNC_RESYNC_IDS:
                # keep this event and everything after it as the new buffer
                self._emit_invalid(HFT_INVALID_GAP if out == SYNC_RESYNC_GAP else HFT_INVALID_IDS)
                self._ts_floor = INT64_MIN
                self._synced = False
                self._first_pending = False
                self._reason = out
                self.resyncs += 1
                if out == SYNC_RESYNC_IDS:
                    # buffered messages contradict each other: which one lies is unknown,
                    # so keep none of them and let the stream re-establish its position
                    self._keep_from(self._ev_n)
                    self._reanchor(HFT_NO_ID)
                else:
                    self._keep_from(i)
                return out
            if out == SYNC_RESYNC_CROSSED:
                self._emit_invalid(HFT_INVALID_CROSSED)
                self._ts_floor = INT64_MIN
                self._start_resync(SYNC_RESYNC_CROSSED)
                return SYNC_RESYNC_CROSSED
        self._ts_floor = INT64_MIN
        # the stream's position is the newest buffered event: a newer id seen before
        # came from a message that is gone (refused, or dropped with a false id)
        newest = HFT_NO_ID
        for i in range(self._ev_n):
            if self._ev[i].last_id > newest:
                newest = self._ev[i].last_id
        if newest != HFT_NO_ID and newest < self._loss.last_seen:
            self._reanchor(newest)
        self._ev_n = 0
        self._pool_n = 0
        return SYNC_SYNCED

    # ------------------------------------------------------------------
    # Python API
    # ------------------------------------------------------------------

    def on_depth(self, DepthUpdate msg not None, int64_t local_ts=0):
        """Feed one decoded depthUpdate; returns the outcome code (see OUTCOME_NAMES).
        ``local_ts`` (its receive time) only matters to ``emit_events``."""
        self._in_local_ts = local_ts
        # exchange time: T (USD-M: the matching engine's) where present, else E -- as to_events
        self._in_exch_ts = msg.transaction_time_ns if msg.transaction_time_ns else msg.event_time_ns
        return self.on_depth_c(msg.first_id, msg.last_id, msg.prev_id,
                               msg.bid_px, msg.bid_qty, msg.n_bids,
                               msg.ask_px, msg.ask_qty, msg.n_asks)

    def on_depth_arrays(self, int64_t first_id, int64_t last_id, prev_id,
                        bid_ticks, bid_lots, ask_ticks, ask_lots, int64_t local_ts=0, int64_t exch_ts=0):
        """Feed one depth event from arrays: U, u, pu (None on spot), int64 ticks/lots;
        the times only matter to ``emit_events``."""
        cdef int64_t pu = HFT_NO_ID if prev_id is None else <int64_t>prev_id
        bt, bq, at, aq = message_arrays(bid_ticks, bid_lots, ask_ticks, ask_lots)
        self._in_local_ts = local_ts
        self._in_exch_ts = exch_ts
        return self.on_depth_c(first_id, last_id, pu, _p(bt), _p(bq), _n(bt),
                               _p(at), _p(aq), _n(at))

    def on_snapshot(self, DepthSnapshot snap not None, int64_t local_ts=0):
        """Feed a decoded REST depth snapshot; returns the outcome code."""
        self._in_local_ts = local_ts
        self._in_exch_ts = snap.transaction_time_ns if snap.transaction_time_ns else snap.event_time_ns
        return self.on_snapshot_c(snap.last_update_id, snap.bid_px, snap.bid_qty, snap.n_bids,
                                  snap.ask_px, snap.ask_qty, snap.n_asks)

    def on_snapshot_arrays(self, int64_t last_update_id, bid_ticks, bid_lots,
                           ask_ticks, ask_lots, int64_t local_ts=0, int64_t exch_ts=0):
        """Feed a snapshot from arrays: lastUpdateId and int64 ticks/lots."""
        bt, bq, at, aq = message_arrays(bid_ticks, bid_lots, ask_ticks, ask_lots)
        self._in_local_ts = local_ts
        self._in_exch_ts = exch_ts
        return self.on_snapshot_c(last_update_id, _p(bt), _p(bq), _n(bt), _p(at), _p(aq), _n(at))

    def reset(self):
        """Forget the book and the buffer (e.g. after a reconnect); counters are kept.
        With ``emit_events``, a valid book's end is marked by a BOOK_INVALID record."""
        self._emit_invalid(HFT_INVALID_RESET)
        self._synced = False
        self._first_pending = False
        self._book_id = HFT_NO_ID
        self._loss.last_seen = HFT_NO_ID
        self._prev_book = HFT_NO_ID
        self._prev_rx = HFT_NO_ID
        self._behind = 0
        self._min_delay = INT64_MAX
        self._snap_local = self._snap_exch = self._max_exch = 0
        self._rx_n = self._rx_i = 0
        self._loss.miss_n = 0
        self._reason = -1
        self._ev_n = 0
        self._pool_n = 0
        self.book.clear_c()

    def take_events(self):
        """The records emitted since the last call (``emit_events``), as an
        EVENT_DTYPE array; the output is emptied."""
        if self._out == NULL:
            raise ValueError("BookSync was created without emit_events=True")
        return _take(self._out)

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
        """Why the book was last invalidated: 'gap', 'crossed', 'ids' (the stream
        contradicted its update id), 'initial', or None."""
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
            "ids_lost": self._loss.ids_lost,
            "snapshots": self.snapshots,
            "stale_snapshots": self.stale_snapshots,
            "buffer_dropped": self.buffer_dropped,
            "refused": self.refused,
            "contradictions": self.contradictions,
            "late": self._loss.late,
            "messages_received": self._loss.msgs_received,
            "messages_lost": self._loss.msgs_lost,
            "ids_received": self._loss.ids_received,
            "duplicates": self._loss.duplicates,
        }

    @property
    def ids_lost(self):
        """Update ids missing from the received stream (see the module docstring)."""
        return self._loss.ids_lost

    @property
    def late(self):
        """Messages that arrived after a later one and filled a reported hole."""
        return self._loss.late

    @property
    def messages_lost(self):
        """Holes in the received chain of messages (each at least one message)."""
        return self._loss.msgs_lost

    @property
    def messages_received(self):
        """Distinct depth messages received (duplicates not counted)."""
        return self._loss.msgs_received

    @property
    def duplicates(self):
        """Depth messages received again (nothing new in them)."""
        return self._loss.duplicates

    @property
    def ids_received(self):
        """Update ids carried by the messages received (spot u-U+1, USD-M u-pu)."""
        return self._loss.ids_received

    def loss_stats(self):
        """Loss counters and the two figures (:func:`loss_figures`)."""
        d = _loss_dict(&self._loss)
        d.update(loss_figures(d))
        return d

    def __repr__(self):
        return (f"BookSync(market={'spot' if self.market == SYNC_SPOT else 'usdm'}, "
                f"state={self.state}, last_update_id={self.last_update_id}, "
                f"applied={self.applied}, gaps={self.gaps}, resyncs={self.resyncs})")


cdef dict _SPAN_REASONS = {SYNC_RESYNC_GAP: "gap", SYNC_RESYNC_CROSSED: "crossed", SYNC_RESYNC_IDS: "ids",
                           -1: "initial"}


@cython.final
cdef class EventNormalizer:
    """One symbol's decoded event records -> the stream as the book sync applies it.

    ``feed(records)`` takes EVENT_DTYPE records in receive order (whole messages:
    BEGIN..END runs, as ``BinanceDecoder.decode_lines`` or ``to_events`` give
    them) and returns the normalised records:

    - DEPTH and SNAPSHOT messages go through a :class:`BookSync` (Binance's
      rules, spot or USD-M); out come exactly the changes it makes to its book
      (see ``BookSync(emit_events=True)``): a SNAPSHOT run when a snapshot is
      loaded, then the DEPTH records of every event applied, in application
      order -- buffered events replayed after the snapshot follow it, with the
      snapshot's ``local_ts`` when theirs is earlier. What the sync drops
      (u <= book id: old or duplicate; events before the snapshot) is not
      written, and while the book is invalid (before the first snapshot, after
      a gap or a crossed book) nothing is written until a snapshot is accepted.
      Where a valid book becomes invalid, one BOOK_INVALID record (px = reason
      ``INVALID_GAP`` / ``INVALID_CROSSED``) says so: a replay must not trust
      the book from there until the next SNAPSHOT run.
      A naive replay of the output (SNAPSHOT run: clear and load; DEPTH record:
      set the level) therefore rebuilds the synchronised book exactly.
    - every other record (trades, bookTickers) passes through in receive order.

    State (the sync, its buffer) persists across calls: feed a capture split in
    files or chunks call by call. Runs in C without the GIL.
    """

    def __cinit__(self, *args, **kwargs):
        self._lv = NULL
        self._lv_cap = 0

    def __init__(self, market="spot", Py_ssize_t max_buffer=100_000, tick_size=1.0):
        self.sync = BookSync(market=market, max_buffer=max_buffer, tick_size=tick_size, emit_events=True)
        self._last_ts = INT64_MIN

    def __dealloc__(self):
        free(self._lv)

    cdef int feed_c(self, const hft_event_t* ev, Py_ssize_t n) except -1 nogil:
        cdef sync_out_t* out = &self.sync._outbuf
        cdef Py_ssize_t i = 0, j, k, nb, na, m
        cdef int kind
        cdef int64_t* lv
        cdef bint was, now
        while i < n:
            kind = ev[i].kind
            if kind != HFT_EV_DEPTH and kind != HFT_EV_SNAPSHOT:
                j = i + 1
                while j < n and ev[j].kind != HFT_EV_DEPTH and ev[j].kind != HFT_EV_SNAPSHOT:
                    j += 1
                sync_out_reserve(out, j - i)
                memcpy(out.ev + out.n, ev + i, <size_t>(j - i) * sizeof(hft_event_t))
                out.n += j - i
                self.passed += j - i
                self._last_ts = ev[j - 1].local_ts
                i = j
                continue
            # one message: ev[i..j]
            j = i
            while (j + 1 < n and not (ev[j].flags & HFT_EVF_END) and ev[j + 1].kind == kind
                   and not (ev[j + 1].flags & HFT_EVF_BEGIN)):
                j += 1
            m = j - i + 1
            if 4 * m > self._lv_cap:
                lv = <int64_t*>realloc(self._lv, <size_t>(8 * m) * sizeof(int64_t))
                if lv == NULL:
                    return _raise_nomem()
                self._lv = lv
                self._lv_cap = 8 * m
            lv = self._lv
            # [bid px m][bid qty m][ask px m][ask qty m]
            nb = na = 0
            if not (ev[i].flags & HFT_EVF_EMPTY):
                for k in range(i, j + 1):
                    if ev[k].side == HFT_BID:
                        lv[nb] = ev[k].px
                        lv[m + nb] = ev[k].qty
                        nb += 1
                    else:
                        lv[2 * m + na] = ev[k].px
                        lv[3 * m + na] = ev[k].qty
                        na += 1
            was = self.sync._synced
            self.sync._in_local_ts = ev[i].local_ts
            self.sync._in_exch_ts = ev[i].exch_ts
            if kind == HFT_EV_DEPTH:
                self.depth_in += 1
                self.sync.on_depth_c(ev[i].first_id, ev[i].last_id, ev[i].prev_id,
                             lv, lv + m, nb, lv + 2 * m, lv + 3 * m, na)
            else:
                self.snapshots_in += 1
                self.sync.on_snapshot_c(ev[i].first_id, lv, lv + m, nb, lv + 2 * m, lv + 3 * m, na)
            now = self.sync._synced
            if not self._seen_book:
                self._seen_book = True
                if not now:
                    self._open = True
                    self._cur.start_ts = ev[i].local_ts
                    self._cur.reason = -1
            elif was and not now:
                self._open = True
                self._cur.start_ts = ev[i].local_ts
                self._cur.reason = self.sync._reason
            if self._open and now:
                self._open = False
                self._cur.end_ts = ev[i].local_ts
                self._close_span()
            self._last_ts = ev[j].local_ts
            i = j + 1
        return 0

    cdef void _close_span(self) noexcept nogil:
        cdef int64_t d = self._cur.end_ts - self._cur.start_ts
        if self._cur.reason == -1:
            self.initial_wait_ns += d
            return
        if self.spans < 64:
            self._spans[self.spans] = self._cur
        self.spans += 1
        self.unsynced_ns += d

    def feed(self, events):
        """Normalise a chunk of EVENT_DTYPE records (see the class doc); returns a new array."""
        cdef cnp.ndarray a = np.ascontiguousarray(events)
        cdef Py_ssize_t n
        cdef const hft_event_t* p
        if a.dtype != EVENT_DTYPE:
            if a.dtype.names != EVENT_DTYPE.names:
                raise TypeError("events must be hftcore.EVENT_DTYPE records")
            a = np.ascontiguousarray(a.astype(EVENT_DTYPE))
        n = a.shape[0]
        p = <const hft_event_t*>cnp.PyArray_DATA(a)
        self.sync._outbuf.n = 0
        with nogil:
            self.feed_c(p, n)
        res = _take(&self.sync._outbuf)
        self.records_out += len(res)
        return res

    @property
    def synced(self):
        return self.sync._synced

    def stats(self):
        """Counters of the run so far: the sync's (applied, dropped_old, buffered,
        buffer_dropped, gaps, crossed, resyncs, snapshots, stale_snapshots, ...),
        depth/snapshot messages in, records passed through and written, events
        still buffered (never written unless a snapshot follows), and the
        unsynced spans (after a gap or crossed book, until the next accepted
        snapshot; one still open ends at the last record seen)."""
        cdef int64_t i
        cdef norm_span_t sp
        d = self.sync.stats()
        spans = []
        for i in range(min(self.spans, 64)):
            sp = self._spans[i]
            spans.append({"start_ns": sp.start_ts, "end_ns": sp.end_ts, "seconds": (sp.end_ts - sp.start_ts) / 1e9,
                          "reason": _SPAN_REASONS.get(sp.reason), "open": False})
        unsynced_ns, n_spans, initial = self.unsynced_ns, self.spans, self.initial_wait_ns
        if self._open:
            end = self._last_ts
            if self._cur.reason == -1:
                initial += end - self._cur.start_ts
            else:
                n_spans += 1
                unsynced_ns += end - self._cur.start_ts
                spans.append({"start_ns": self._cur.start_ts, "end_ns": end,
                              "seconds": (end - self._cur.start_ts) / 1e9,
                              "reason": _SPAN_REASONS.get(self._cur.reason), "open": True})
        d.update({"depth_in": self.depth_in, "snapshots_in": self.snapshots_in, "passed": self.passed,
                  "records_out": self.records_out, "pending": self.sync._ev_n,
                  "synced": bool(self.sync._synced), "never_synced": self._seen_book and self._open
                  and self._cur.reason == -1,
                  "unsynced_spans": n_spans, "unsynced_seconds": unsynced_ns / 1e9,
                  "initial_wait_seconds": initial / 1e9, "spans": spans})
        return d
