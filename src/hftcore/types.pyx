# cython: language_level=3
"""Basic types of the core and the numpy mirror of the event record.

``EVENT_DTYPE`` matches ``hft_event_t`` of ``include/hftcore/types.h`` byte for
byte (64 bytes; prices in ticks, quantities in lots, ids as sent, times in ns).
"""
from hftcore.types cimport *
from libc.stdint cimport int64_t, uint8_t

import numpy as np

BID = HFT_BID
ASK = HFT_ASK

EV_DEPTH = HFT_EV_DEPTH
EV_TRADE = HFT_EV_TRADE
EV_SNAPSHOT = HFT_EV_SNAPSHOT
EV_BBO = HFT_EV_BBO
EV_BOOK_INVALID = HFT_EV_BOOK_INVALID
EV_FUNDING = HFT_EV_FUNDING
FUNDING_RATE_SCALE = HFT_FUNDING_RATE_SCALE
INVALID_GAP = HFT_INVALID_GAP
INVALID_CROSSED = HFT_INVALID_CROSSED
INVALID_RESET = HFT_INVALID_RESET
INVALID_IDS = HFT_INVALID_IDS

EVF_BEGIN = HFT_EVF_BEGIN
EVF_END = HFT_EVF_END
EVF_EMPTY = HFT_EVF_EMPTY

NO_ID = HFT_NO_ID

#: numpy dtype of one market event (see include/hftcore/types.h).
EVENT_DTYPE = np.dtype({
    "names": ["local_ts", "exch_ts", "px", "qty", "first_id", "last_id",
              "prev_id", "kind", "side", "flags"],
    "formats": ["<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "u1", "u1", "u1"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 57, 58],
    "itemsize": 64,
})


def event_layout():
    """The C layout of ``hft_event_t`` as ``{"itemsize": n, field: offset, ...}``
    (taken from the compiler, for tests pinning ``EVENT_DTYPE``)."""
    cdef hft_event_t ev
    cdef char* base = <char*>&ev
    return {
        "itemsize": sizeof(hft_event_t),
        "local_ts": <char*>&ev.local_ts - base,
        "exch_ts": <char*>&ev.exch_ts - base,
        "px": <char*>&ev.px - base,
        "qty": <char*>&ev.qty - base,
        "first_id": <char*>&ev.first_id - base,
        "last_id": <char*>&ev.last_id - base,
        "prev_id": <char*>&ev.prev_id - base,
        "kind": <char*>&ev.kind - base,
        "side": <char*>&ev.side - base,
        "flags": <char*>&ev.flags - base,
    }


def type_sizes():
    """Sizes in bytes of the scalar types (price, qty, seq, ts)."""
    return {
        "hft_px_t": sizeof(hft_px_t),
        "hft_qty_t": sizeof(hft_qty_t),
        "hft_seq_t": sizeof(hft_seq_t),
        "hft_ts_t": sizeof(hft_ts_t),
    }


cdef void _split(const hft_event_t* ev, Py_ssize_t n, int64_t** c8, uint8_t** c1) noexcept nogil:
    cdef Py_ssize_t i
    cdef const hft_event_t* e
    for i in range(n):
        e = &ev[i]
        c8[0][i] = e.local_ts
        c8[1][i] = e.exch_ts
        c8[2][i] = e.px
        c8[3][i] = e.qty
        c8[4][i] = e.first_id
        c8[5][i] = e.last_id
        c8[6][i] = e.prev_id
        c1[0][i] = e.kind
        c1[1][i] = e.side
        c1[2][i] = e.flags


def event_columns(events):
    """EVENT_DTYPE records -> the 10 fields as new contiguous arrays (int64 x 7,
    uint8 x 3, in EVENT_DTYPE order), in one pass without the GIL: the
    column layout Arrow/Parquet take, at a fraction of the cost of ten
    strided copies."""
    ev = np.ascontiguousarray(events)
    if ev.dtype != EVENT_DTYPE:
        raise TypeError("events must be hftcore.EVENT_DTYPE records")
    cdef Py_ssize_t n = ev.shape[0], k
    cols = [np.empty(n, np.int64) for _ in range(7)] + [np.empty(n, np.uint8) for _ in range(3)]
    cdef int64_t* c8[7]
    cdef uint8_t* c1[3]
    cdef const unsigned char[::1] raw = ev.view(np.uint8).reshape(-1) if n else np.zeros(0, np.uint8)
    cdef int64_t[::1] v8
    cdef uint8_t[::1] v1
    if n == 0:
        return tuple(cols)
    for k in range(7):
        v8 = cols[k]
        c8[k] = &v8[0]
    for k in range(3):
        v1 = cols[7 + k]
        c1[k] = &v1[0]
    with nogil:
        _split(<const hft_event_t*>&raw[0], n, c8, c1)
    return tuple(cols)


cdef void _join(hft_event_t* out, Py_ssize_t n, const int64_t** c8, const uint8_t** c1) noexcept nogil:
    cdef Py_ssize_t i
    cdef hft_event_t* e
    for i in range(n):
        e = &out[i]
        e.local_ts = c8[0][i]
        e.exch_ts = c8[1][i]
        e.px = c8[2][i]
        e.qty = c8[3][i]
        e.first_id = c8[4][i]
        e.last_id = c8[5][i]
        e.prev_id = c8[6][i]
        e.kind = c1[0][i]
        e.side = c1[1][i]
        e.flags = c1[2][i]
        e._pad[0] = 0
        e._pad[1] = 0
        e._pad[2] = 0
        e._pad[3] = 0
        e._pad[4] = 0


def events_from_columns(columns):
    """The inverse of :func:`event_columns`: 10 column arrays (int64 x 7, uint8
    x 3, in EVENT_DTYPE order, equal lengths) -> EVENT_DTYPE records, in one pass
    without the GIL (padding bytes zeroed, so the result is deterministic)."""
    cols = list(columns)
    if len(cols) != 10:
        raise ValueError(f"expected 10 columns, got {len(cols)}")
    cdef Py_ssize_t n = len(cols[0]), k
    conv = []
    for k in range(10):
        a = np.ascontiguousarray(cols[k], dtype=np.int64 if k < 7 else np.uint8)
        if a.ndim != 1 or a.shape[0] != n:
            raise ValueError("columns must be one-dimensional and of equal length")
        conv.append(a)
    out = np.empty(n, EVENT_DTYPE)
    if n == 0:
        return out
    cdef const int64_t* c8[7]
    cdef const uint8_t* c1[3]
    cdef const int64_t[::1] v8
    cdef const uint8_t[::1] v1
    cdef unsigned char[::1] raw = out.view(np.uint8).reshape(-1)
    for k in range(7):
        v8 = conv[k]
        c8[k] = &v8[0]
    for k in range(3):
        v1 = conv[7 + k]
        c1[k] = &v1[0]
    with nogil:
        _join(<hft_event_t*>&raw[0], n, c8, c1)
    return out
