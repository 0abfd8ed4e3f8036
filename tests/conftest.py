"""Fixtures shared by several test modules."""
from __future__ import annotations

import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURE = os.path.join(HERE, "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz")


@pytest.fixture(scope="session")
def capture_store(tmp_path_factory):
    """The real spot capture (tests/data/hftbacktest-collector) through ``data convert``:
    (store path, its metadata, its events, the events split into the messages they
    arrived as -- a message's records end with the END flag)."""
    from hftcore import EVENT_DTYPE, EVF_END
    from hftmm.data import store
    from hftmm.data.convert import convert

    out = str(tmp_path_factory.mktemp("capture") / "store")
    convert([CAPTURE], out)
    meta = store.store_metadata(out, "BTCUSDT")
    ev = np.ascontiguousarray(np.concatenate(list(store.read_events(out, "BTCUSDT"))).astype(EVENT_DTYPE))
    ends = np.flatnonzero(ev["flags"] & EVF_END) + 1
    frames = np.split(ev, ends[:-1] if len(ends) and ends[-1] == len(ev) else ends)
    return out, meta, ev, frames
