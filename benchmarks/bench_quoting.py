"""Quoting: scalar Quoter.quote from Python and the batch kernel, each beside the twin."""
import numpy as np
import pytest

from hftcore.quoting import Quoter
from hftmm.reference import quoting as R

N_BATCH = 1_000_000
N_TWIN = 10_000
KW = dict(model="glft", gamma=0.05, k=2.0, A=100.0, tick_size=0.01, max_inventory=1.0,
          order_qty=0.01, min_spread=0.02)
KW_AS = dict(model="as", gamma=0.05, k=2.0, horizon_s=30.0, rolling=False, tick_size=0.01,
             max_inventory=1.0, order_qty=0.01)
ARGS = (1_000_000, 1_000_002, 35, 12, 0.8, 0.1, 1_700_000_000_123_456_789)


def _inputs(n, seed=1):
    rng = np.random.default_rng(seed)
    bb = 1_000_000 + np.cumsum(rng.integers(-2, 3, n))
    ba = bb + rng.integers(1, 4, n)
    bq = rng.integers(0, 1000, n)
    aq = rng.integers(0, 1000, n)
    sg = rng.uniform(0.1, 2.0, n)
    q = rng.uniform(-1.2, 1.2, n)
    t = 1_700_000_000 * 10**9 + np.cumsum(rng.integers(1, 10**8, n))
    return bb, ba, bq, aq, sg, q, t


@pytest.mark.benchmark(group="quoting")
def test_quote_scalar_twin(benchmark, ratios):
    qt = R.Quoter(**KW)
    res = benchmark(qt.quote, *ARGS)
    assert res.bid_tick < res.ask_tick
    ratios.record(benchmark, "quote_scalar_twin")


@pytest.mark.benchmark(group="quoting")
def test_quote_scalar(benchmark, ratios):
    qt = Quoter(**KW)
    res = benchmark(qt.quote, *ARGS)
    ref = R.Quoter(**KW).quote(*ARGS)
    assert (res.bid_tick, res.ask_tick) == (ref.bid_tick, ref.ask_tick)
    ratios.record(benchmark, "quote_scalar")
    ratios.assert_faster("quote_scalar", "quote_scalar_twin", 5.0)


@pytest.mark.benchmark(group="quoting")
def test_quote_scalar_as(benchmark, ratios):
    qt = Quoter(**KW_AS)
    res = benchmark(qt.quote, *ARGS)
    assert res.bid_tick < res.ask_tick
    ratios.record(benchmark, "quote_scalar_as")


@pytest.mark.benchmark(group="quoting")
def test_quote_batch_twin(benchmark, ratios):
    qt = R.Quoter(**KW)
    cols = [c.tolist() for c in _inputs(N_TWIN)]
    out = benchmark(qt.quote_batch, *cols)
    assert len(out[0]) == N_TWIN
    ratios.record(benchmark, "quote_batch_twin", N_TWIN)


@pytest.mark.benchmark(group="quoting")
def test_quote_batch(benchmark, ratios):
    qt = Quoter(**KW)
    cols = _inputs(N_BATCH)
    outs = (np.empty(N_BATCH, np.int64), np.empty(N_BATCH, np.int64), np.empty(N_BATCH, np.uint8))
    ob, oa, of = benchmark(qt.quote_batch, *cols, *outs)
    small = [c[:1000] for c in cols]
    pb, pa, pf = R.Quoter(**KW).quote_batch(*[c.tolist() for c in small])
    assert ob[:1000].tolist() == pb and oa[:1000].tolist() == pa and of[:1000].tolist() == pf
    ratios.record(benchmark, "quote_batch", N_BATCH)
    ratios.assert_faster("quote_batch", "quote_batch_twin", 50.0)


@pytest.mark.benchmark(group="quoting")
def test_quote_batch_as_finite_horizon(benchmark, ratios):
    qt = Quoter(**KW_AS)
    cols = _inputs(N_BATCH)
    outs = (np.empty(N_BATCH, np.int64), np.empty(N_BATCH, np.int64), np.empty(N_BATCH, np.uint8))
    ob, oa, _ = benchmark(qt.quote_batch, *cols, *outs)
    assert np.all(ob < oa)
    ratios.record(benchmark, "quote_batch_as", N_BATCH)
