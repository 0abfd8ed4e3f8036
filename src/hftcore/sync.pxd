# cython: language_level=3
"""C-level API of the sans-I/O Binance book synchroniser (hftcore.sync).

Depth events go in (update ids U, u, pu and level arrays in ticks/lots), the
outcome of each comes out; the REST snapshot is fetched by the caller when
``needs_snapshot`` is true. Spot and USD-M rules as Binance documents them.
"""
from libc.stdint cimport int64_t
from hftcore.book cimport L2Book
from hftcore.types cimport hft_event_t

cdef enum:
    SYNC_SPOT = 0
    SYNC_USDM = 1

# outcomes of on_depth / on_snapshot
cdef enum:
    SYNC_APPLIED = 0          # event applied to the book
    SYNC_BUFFERED = 1         # waiting for a snapshot: event kept for replay
    SYNC_DROPPED = 2          # event older than the book (u <= book id): ignored
    SYNC_SYNCED = 3           # snapshot accepted, buffered events replayed, book ready
    SYNC_STALE_SNAPSHOT = 4   # snapshot refused (too old for the buffer, or older than the book)
    SYNC_RESYNC_GAP = 5       # update ids missing: book not usable, snapshot needed
    SYNC_RESYNC_CROSSED = 6   # best bid >= best ask after an event: snapshot needed
    SYNC_RESYNC_IDS = 7       # the stream contradicts the book's update id: snapshot needed
    SYNC_REFUSED = 8          # impossible update ids (u < U, pu >= U, negative, span > max_span): ignored

cdef struct sync_buf_ev_t:
    int64_t first_id      # U
    int64_t last_id       # u
    int64_t prev_id       # pu (HFT_NO_ID on spot)
    Py_ssize_t nb
    Py_ssize_t na
    Py_ssize_t off        # pool offset of [bid_px nb][bid_qty nb][ask_px na][ask_qty na]
    int64_t local_ts      # times given with the event (for the applied-event output)
    int64_t exch_ts


# growable output of event records (the applied-event output of BookSync, and
# the normalised stream of EventNormalizer)
cdef struct sync_out_t:
    hft_event_t* ev
    Py_ssize_t n
    Py_ssize_t cap

cdef int sync_out_reserve(sync_out_t* o, Py_ssize_t k) except -1 nogil


# message-loss accounting of one received depth stream (BookSync's, and each
# redundant connection's): holes in the chain of update ids, credited back when a
# late message fills them
cdef struct stream_loss_t:
    int64_t last_seen       # final id of the newest event received (HFT_NO_ID: none)
    int64_t miss_lo[32]     # update-id ranges reported lost (the newest 32)
    int64_t miss_hi[32]
    int miss_n
    int64_t ids_lost        # update ids missing from the stream
    int64_t ids_received    # update ids the received messages carry
    int64_t msgs_lost       # holes in the chain: each is at least one message
    int64_t msgs_received   # distinct messages (duplicates not counted)
    int64_t duplicates      # messages received again (nothing new)
    int64_t late            # messages that arrived after a later one and filled a hole

cdef void stream_loss_init(stream_loss_t* s) noexcept nogil
cdef int64_t stream_loss_account(stream_loss_t* s, bint spot, int64_t first_id, int64_t last_id,
                                 int64_t prev_id) noexcept nogil


cdef class StreamLoss:
    cdef stream_loss_t s
    cdef readonly bint spot


cdef class BookSync:
    cdef readonly L2Book book
    cdef readonly int market
    cdef readonly Py_ssize_t max_buffer
    cdef bint _synced
    cdef bint _first_pending
    cdef int64_t _book_id
    cdef stream_loss_t _loss    # the received stream: newest id (last_seen) and its losses
    cdef int64_t _prev_book     # the newest applied event owns ids (_prev_book, book id] (HFT_NO_ID: none)
    cdef int64_t _prev_rx       # final id of the previous event received (HFT_NO_ID: none)
    cdef int _behind            # received events in a row, each chained to the one before, all behind the head
    cdef int64_t _behind_u0     # u of the first event of that run
    cdef int64_t _min_delay     # smallest local_ts - exch_ts of an event (INT64_MAX: unknown), ns
    cdef int64_t _snap_local    # local / exchange time of the loaded snapshot (0: unknown), ns
    cdef int64_t _snap_exch
    cdef int64_t _max_exch      # newest exchange time of an event received, ns
    # final ids of the last 16 events received: an event applied must not own an id
    # where one of them ended (messages partition the ids)
    cdef int64_t _rx_last[16]
    cdef int _rx_n
    cdef int _rx_i
    cdef readonly int64_t max_span
    cdef readonly int behind_limit
    cdef readonly int snapshot_behind_limit
    cdef int _reason
    cdef sync_buf_ev_t* _ev
    cdef Py_ssize_t _ev_n
    cdef Py_ssize_t _ev_cap
    cdef int64_t* _pool
    cdef Py_ssize_t _pool_n
    cdef Py_ssize_t _pool_cap
    # counters
    cdef readonly int64_t applied
    cdef readonly int64_t dropped_old
    cdef readonly int64_t buffered
    cdef readonly int64_t gaps
    cdef readonly int64_t crossed
    cdef readonly int64_t resyncs
    cdef readonly int64_t snapshots
    cdef readonly int64_t stale_snapshots
    cdef readonly int64_t buffer_dropped
    cdef readonly int64_t refused         # events with impossible update ids, ignored
    cdef readonly int64_t contradictions  # times the stream contradicted the book's / buffer's update id
    # applied-event output (off unless enabled): every change made to the book,
    # as EVENT_DTYPE records -- a SNAPSHOT run per loaded snapshot, the DEPTH
    # records of each applied event, in application order
    cdef sync_out_t* _out           # NULL = off, else &_outbuf
    cdef sync_out_t _outbuf
    cdef int64_t _in_local_ts       # times of the event being fed (set by the caller
    cdef int64_t _in_exch_ts        # before on_depth_c / on_snapshot_c; 0 otherwise)
    cdef int64_t _ts_floor          # replayed events: local_ts = max(own, snapshot's)

    cdef int on_depth_c(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                        const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                        const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil
    cdef int on_snapshot_c(self, int64_t last_update_id,
                           const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                           const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil
    cdef int _process(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                      const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                      const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na,
                      int64_t local_ts, int64_t exch_ts) except -1 nogil
    cdef int _buffer(self, int64_t first_id, int64_t last_id, int64_t prev_id,
                     const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                     const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na,
                     int64_t local_ts, int64_t exch_ts) except -1 nogil
    cdef int _emit(self, int kind, int64_t local_ts, int64_t exch_ts,
                   int64_t first_id, int64_t last_id, int64_t prev_id,
                   const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                   const int64_t* ask_px, const int64_t* ask_qty, Py_ssize_t na) except -1 nogil
    cdef void _start_resync(self, int reason) noexcept nogil
    cdef int _emit_invalid(self, int reason) except -1 nogil
    cdef int64_t _account_stream(self, int64_t first_id, int64_t last_id, int64_t prev_id) noexcept nogil
    cdef bint _impossible(self, int64_t first_id, int64_t last_id, int64_t prev_id) noexcept nogil
    cdef void _reanchor(self, int64_t last_id) noexcept nogil
    cdef void _keep_from(self, Py_ssize_t i) noexcept nogil
    cdef bint _count_behind(self, bint chained, int64_t last_id, int limit) noexcept nogil
    cdef bint _after_snapshot(self) noexcept nogil


cdef struct norm_span_t:
    int64_t start_ts        # local_ts of the event that invalidated the book
    int64_t end_ts          # local_ts of the snapshot that restored it (or the last event seen)
    int reason              # SYNC_RESYNC_GAP / SYNC_RESYNC_CROSSED / -1 initial


cdef class EventNormalizer:
    cdef readonly BookSync sync
    cdef int64_t* _lv               # level scratch: [bid px][bid qty][ask px][ask qty]
    cdef Py_ssize_t _lv_cap
    cdef bint _seen_book            # a depth/snapshot record was seen
    cdef bint _open                 # an unsynced span is open
    cdef norm_span_t _cur
    cdef norm_span_t _spans[64]     # the first 64 spans, for the report
    cdef readonly int64_t spans
    cdef readonly int64_t unsynced_ns
    cdef readonly int64_t initial_wait_ns
    cdef int64_t _last_ts
    cdef readonly int64_t depth_in
    cdef readonly int64_t snapshots_in
    cdef readonly int64_t passed
    cdef readonly int64_t records_out
    cdef int feed_c(self, const hft_event_t* ev, Py_ssize_t n) except -1 nogil
    cdef void _close_span(self) noexcept nogil
