# cython: language_level=3
"""C-level mirror of include/hftcore/types.h: the basic types of the core.

Prices are int64 ticks, quantities int64 lots, ids int64, times int64 ns.
"""
from libc.stdint cimport int64_t, uint8_t

cdef extern from "hftcore/types.h":
    ctypedef int64_t hft_px_t
    ctypedef int64_t hft_qty_t
    ctypedef int64_t hft_seq_t
    ctypedef int64_t hft_ts_t

    int HFT_BID
    int HFT_ASK

    int HFT_EV_DEPTH
    int HFT_EV_TRADE
    int HFT_EV_SNAPSHOT
    int HFT_EV_BBO
    int HFT_EV_BOOK_INVALID
    int HFT_EV_FUNDING
    int64_t HFT_FUNDING_RATE_SCALE
    int HFT_INVALID_GAP
    int HFT_INVALID_CROSSED
    int HFT_INVALID_RESET
    int HFT_INVALID_IDS

    int HFT_EVF_BEGIN
    int HFT_EVF_END
    int HFT_EVF_EMPTY

    int64_t HFT_NO_ID

    ctypedef struct hft_event_t:
        hft_ts_t local_ts
        hft_ts_t exch_ts
        hft_px_t px
        hft_qty_t qty
        hft_seq_t first_id
        hft_seq_t last_id
        hft_seq_t prev_id
        uint8_t kind
        uint8_t side
        uint8_t flags
        uint8_t _pad[5]


cdef inline void hft_event_set(hft_event_t* e, int64_t local_ts, int64_t exch_ts, int64_t px,
                               int64_t qty, int64_t first_id, int64_t last_id, int64_t prev_id,
                               int kind, int side, int flags) noexcept nogil:
    """Write one record (padding zeroed, so records are byte-deterministic)."""
    e.local_ts = local_ts
    e.exch_ts = exch_ts
    e.px = px
    e.qty = qty
    e.first_id = first_id
    e.last_id = last_id
    e.prev_id = prev_id
    e.kind = <uint8_t>kind
    e.side = <uint8_t>side
    e.flags = <uint8_t>flags
    e._pad[0] = 0
    e._pad[1] = 0
    e._pad[2] = 0
    e._pad[3] = 0
    e._pad[4] = 0


cdef inline Py_ssize_t hft_message_events(hft_event_t* e, int64_t local_ts, int64_t exch_ts, int kind,
                                          int64_t first_id, int64_t last_id, int64_t prev_id,
                                          const int64_t* bid_px, const int64_t* bid_qty, Py_ssize_t nb,
                                          const int64_t* ask_px, const int64_t* ask_qty,
                                          Py_ssize_t na) noexcept nogil:
    """Write the records of one depth or snapshot message into e (room for
    max(nb + na, 1)): bids then asks, BEGIN on the first and END on the last, or
    one EMPTY record when the message has no level. Returns the count written."""
    cdef Py_ssize_t i, n = nb + na
    if n == 0:
        hft_event_set(e, local_ts, exch_ts, 0, 0, first_id, last_id, prev_id, kind, 0,
                      HFT_EVF_EMPTY | HFT_EVF_BEGIN | HFT_EVF_END)
        return 1
    for i in range(nb):
        hft_event_set(&e[i], local_ts, exch_ts, bid_px[i], bid_qty[i], first_id, last_id, prev_id,
                      kind, HFT_BID, 0)
    for i in range(na):
        hft_event_set(&e[nb + i], local_ts, exch_ts, ask_px[i], ask_qty[i], first_id, last_id, prev_id,
                      kind, HFT_ASK, 0)
    e[0].flags |= HFT_EVF_BEGIN
    e[n - 1].flags |= HFT_EVF_END
    return n
