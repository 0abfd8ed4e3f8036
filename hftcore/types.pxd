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
