# cython: language_level=3
"""Basic types of the core and the numpy mirror of the event record.

``EVENT_DTYPE`` matches ``hft_event_t`` of ``include/hftcore/types.h`` byte for
byte (64 bytes; prices in ticks, quantities in lots, ids as sent, times in ns).
"""
from hftcore.types cimport *

import numpy as np

BID = HFT_BID
ASK = HFT_ASK

EV_DEPTH = HFT_EV_DEPTH
EV_TRADE = HFT_EV_TRADE
EV_SNAPSHOT = HFT_EV_SNAPSHOT
EV_BBO = HFT_EV_BBO

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
