"""Volatility: batch EWMA kernel and scalar updates, beside the pure-Python twin."""
import numpy as np
import pytest

from hftcore.volatility import EwmaVolatility, IntensityEstimator, ewma_volatility
from hftmm.reference import volatility as ref

N_BATCH = 1_000_000
N_TWIN = 20_000


def _series(n, seed=2):
    rng = np.random.default_rng(seed)
    t = 1_700_000_000 * 10**9 + np.cumsum(rng.integers(0, 10**8, n))
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, n)))
    return t, mid


@pytest.mark.benchmark(group="volatility")
def test_ewma_batch_twin(benchmark, ratios):
    t, mid = _series(N_TWIN)
    tl, ml = t.tolist(), mid.tolist()
    out = benchmark(ref.ewma_volatility, tl, ml, 60.0)
    assert len(out) == N_TWIN
    ratios.record(benchmark, "ewma_batch_twin", N_TWIN)


@pytest.mark.benchmark(group="volatility")
def test_ewma_batch(benchmark, ratios):
    t, mid = _series(N_BATCH)
    out = benchmark(ewma_volatility, t, mid, 60.0)
    np.testing.assert_allclose(out[:2000], ref.ewma_volatility(t[:2000].tolist(), mid[:2000].tolist(), 60.0),
                               rtol=1e-9)
    ratios.record(benchmark, "ewma_batch", N_BATCH)
    ratios.assert_faster("ewma_batch", "ewma_batch_twin", 10.0)


@pytest.mark.benchmark(group="volatility")
def test_ewma_scalar_update(benchmark, ratios):
    ev = EwmaVolatility(60.0)
    state = {"t": 1_700_000_000 * 10**9}

    def step():
        state["t"] += 1000
        ev.update(state["t"], 100.0)

    benchmark(step)
    ratios.record(benchmark, "ewma_scalar")


@pytest.mark.benchmark(group="volatility")
def test_intensity_on_trade_and_fit(benchmark, ratios):
    rng = np.random.default_rng(5)
    n = 100_000
    t = (1_700_000_000 * 10**9 + np.cumsum(rng.integers(1, 10**7, n))).tolist()
    d = rng.integers(0, 40, n).tolist()

    def run():
        est = IntensityEstimator(60.0, 0.01, 20, 20)
        on_trade = est.on_trade
        for i in range(n):
            on_trade(t[i], 100_000 + d[i], 200_001)
        return est.fit(t[-1])

    A, k = benchmark(run)
    assert k > 0
    ratios.record(benchmark, "intensity_on_trade", n)
