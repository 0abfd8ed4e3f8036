# cython: language_level=3
"""C-level API of the Binance message decoder (hftcore.binance).

Every decoded message is a new, immutable object. Prices are int64 ticks and
quantities int64 lots of the decoder's instrument; times are int64 ns since the
epoch (HFT_NO_ID / 0 when a field is absent, see each class).
"""
from libc.stdint cimport int64_t
from hftcore.decimal cimport hft_scale_t


# (private) a key of an object the decoder reads, kept for the duplicate-key
# check when the object holds many unknown (or escaped) keys
cdef struct _KeySpan:
    const char* s          # raw string content in the frame
    Py_ssize_t n
    bint esc               # holds escapes
    const char* d          # decoded text (set by the check)
    Py_ssize_t dn


# (private) decoder-owned growable scratch for the frame being decoded: the
# levels (side 0 = bids, 1 = asks), unescaped text, unknown keys
cdef struct _Scratch:
    int64_t* px[2]
    int64_t* qty[2]
    Py_ssize_t n[2]
    Py_ssize_t cap[2]
    char* text
    Py_ssize_t text_cap
    _KeySpan* keys
    Py_ssize_t nkeys
    Py_ssize_t keys_cap


# (private) what the GIL-free decoding needs of a decoder
cdef struct _DecCfg:
    _Scratch* scr
    hft_scale_t px_scale
    hft_scale_t qty_scale
    int64_t time_mult      # 1_000_000 for ms, 1_000 for us
    int64_t time_max       # INT64_MAX // time_mult


cdef class Message:
    cdef readonly object stream        # str: the combined-stream name, or None
    cdef readonly object symbol        # str: the "s" field, or None


cdef class _Levels(Message):
    # one malloc'd block holding the four arrays; freed in __dealloc__
    cdef int64_t* _block
    cdef int64_t* bid_px               # ticks, as in the message order
    cdef int64_t* bid_qty              # lots (0 = delete)
    cdef int64_t* ask_px
    cdef int64_t* ask_qty
    cdef readonly Py_ssize_t n_bids
    cdef readonly Py_ssize_t n_asks


cdef class DepthUpdate(_Levels):
    # "e": "depthUpdate" (spot and USD-M; USD-M partial depth streams too)
    cdef readonly int64_t first_id          # U
    cdef readonly int64_t last_id           # u
    cdef readonly int64_t prev_id           # pu (USD-M), HFT_NO_ID on spot
    cdef readonly int64_t event_time_ns     # E
    cdef readonly int64_t transaction_time_ns  # T (USD-M), 0 when absent


cdef class DepthSnapshot(_Levels):
    # REST /api/v3/depth, /fapi/v1/depth, and spot partial-depth streams
    cdef readonly int64_t last_update_id    # lastUpdateId
    cdef readonly int64_t event_time_ns     # E (futures REST), 0 when absent
    cdef readonly int64_t transaction_time_ns  # T (futures REST), 0 when absent


cdef class Trade(Message):
    # "e": "trade" and "e": "aggTrade" (is_aggregate tells which)
    cdef readonly bint is_aggregate
    cdef readonly int64_t trade_id          # t (trade) or a (aggTrade)
    cdef readonly int64_t first_trade_id    # f (aggTrade); = trade_id for trade
    cdef readonly int64_t last_trade_id     # l (aggTrade); = trade_id for trade
    cdef readonly int64_t price             # p, ticks
    cdef readonly int64_t qty               # q, lots
    cdef readonly int64_t trade_time_ns     # T
    cdef readonly int64_t event_time_ns     # E
    cdef readonly bint buyer_is_maker       # m
    cdef readonly int side                  # maker side: HFT_BID if m else HFT_ASK
    cdef readonly object trade_type         # X (USD-M trade stream), or None


cdef class BookTicker(Message):
    # "<sym>@bookTicker": spot (no e/E/T) and USD-M ("e": "bookTicker")
    cdef readonly int64_t update_id         # u
    cdef readonly int64_t bid_px            # b, ticks
    cdef readonly int64_t bid_qty           # B, lots
    cdef readonly int64_t ask_px            # a, ticks
    cdef readonly int64_t ask_qty           # A, lots
    cdef readonly int64_t event_time_ns     # E, 0 when absent
    cdef readonly int64_t transaction_time_ns  # T, 0 when absent


cdef class UnknownEvent(Message):
    # a well-formed JSON object the decoder does not model: its "e" (event
    # type, e.g. "serverShutdown", "kline"), or "" for replies such as
    # {"result": null, "id": 1} (then `payload_keys` tells what it held)
    cdef readonly object event_type
    cdef readonly tuple payload_keys


cdef class BinanceDecoder:
    cdef readonly object tick_size          # str, as given
    cdef readonly object lot_size           # str, as given
    cdef object decode_c(self, const char* data, Py_ssize_t n)
    # (private) scales, time unit and scratch; last symbol/stream bytes -> str caches
    cdef _DecCfg _cfg
    cdef _Scratch _scr
    cdef readonly object time_unit          # "ms" or "us"
    cdef bytes _sym_b
    cdef str _sym_s
    cdef bytes _stream_b
    cdef str _stream_s
