"""The event record: numpy's EVENT_DTYPE equals the C struct byte for byte."""
import numpy as np
import pytest

import hftcore
from hftcore import types


def test_event_dtype_matches_c_layout():
    layout = types.event_layout()
    dt = hftcore.EVENT_DTYPE
    assert dt.itemsize == layout["itemsize"] == 64
    for name in dt.names:
        assert dt.fields[name][1] == layout[name], name


def test_scalar_types_are_int64():
    sizes = types.type_sizes()
    assert sizes == {"hft_px_t": 8, "hft_qty_t": 8, "hft_seq_t": 8, "hft_ts_t": 8}
    for name in ("local_ts", "exch_ts", "px", "qty", "first_id", "last_id", "prev_id"):
        assert hftcore.EVENT_DTYPE.fields[name][0] == np.dtype("<i8")
    for name in ("kind", "side", "flags"):
        assert hftcore.EVENT_DTYPE.fields[name][0] == np.dtype("u1")


def test_constants():
    assert (hftcore.BID, hftcore.ASK) == (0, 1)
    assert len({hftcore.EV_DEPTH, hftcore.EV_TRADE, hftcore.EV_SNAPSHOT, hftcore.EV_BBO}) == 4
    assert hftcore.NO_ID == np.iinfo(np.int64).min


def test_records_round_trip_through_bytes():
    a = np.zeros(3, dtype=hftcore.EVENT_DTYPE)
    a["px"] = [1, 2, 3]
    a["kind"] = hftcore.EV_DEPTH
    b = np.frombuffer(a.tobytes(), dtype=hftcore.EVENT_DTYPE)
    assert (b["px"] == [1, 2, 3]).all() and len(a.tobytes()) == 192


def test_event_columns_split_in_one_pass():
    import numpy as np

    from hftcore.types import EVENT_DTYPE, event_columns

    ev = np.zeros(5, EVENT_DTYPE)
    for k, name in enumerate(EVENT_DTYPE.names):
        ev[name] = np.arange(5) + 10 * k
    cols = event_columns(ev)
    assert len(cols) == 10
    for name, col in zip(EVENT_DTYPE.names, cols):
        assert col.dtype == ev.dtype[name] and col.flags.c_contiguous and np.array_equal(col, ev[name])
    assert all(len(c) == 0 for c in event_columns(ev[:0]))
    assert np.array_equal(event_columns(ev[::2])[0], ev["local_ts"][::2])


def test_columns_round_trip():
    from hftcore.types import event_columns, events_from_columns

    rng = np.random.default_rng(0)
    a = np.zeros(1000, dtype=hftcore.EVENT_DTYPE)
    for name in ("local_ts", "exch_ts", "px", "qty", "first_id", "last_id", "prev_id"):
        a[name] = rng.integers(-2**62, 2**62, len(a))
    for name in ("kind", "side", "flags"):
        a[name] = rng.integers(0, 256, len(a))
    cols = event_columns(a)
    assert len(cols) == 10 and all(len(c) == 1000 for c in cols)
    assert events_from_columns(cols).tobytes() == a.tobytes()
    assert len(events_from_columns([np.zeros(0, np.int64)] * 7 + [np.zeros(0, np.uint8)] * 3)) == 0
    with pytest.raises(ValueError):
        events_from_columns(cols[:9])
