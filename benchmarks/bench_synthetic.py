"""Synthetic market generation speed (target >= 1M events/s), beside a baseline
in the same run: numpy filling the same number of EVENT_DTYPE records from
random draws (the cost of just producing records, without any market model)."""
import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.synth import SyntheticMarket

SECONDS = 1800.0


@pytest.mark.benchmark(group="synthetic")
def test_generate(benchmark, bench_record, bench_results):
    def setup():
        m = SyntheticMarket(seed=1)
        m.initial_snapshot()
        return (m,), {}

    ev = benchmark.pedantic(lambda m: m.generate(SECONDS if not benchmark.disabled else 30.0), setup=setup,
                            rounds=3, iterations=1)
    bench_record(benchmark, "synth", len(ev))
    if not benchmark.disabled:
        rate = 1e3 / bench_results["synth"]
        print(f"\nsynthetic market: {rate:.2f}M events/s ({len(ev):,} events for {SECONDS:.0f} s of market)")
        assert rate >= 0.5   # target 1M/s; room for a noisy machine


@pytest.mark.benchmark(group="synthetic")
def test_baseline_numpy_records(benchmark):
    rng = np.random.default_rng(0)

    def fill(n=500_000):
        a = np.zeros(n, dtype=EVENT_DTYPE)
        a["px"] = rng.integers(600_000, 620_000, n)
        a["qty"] = rng.integers(1, 1000, n)
        a["exch_ts"] = np.cumsum(rng.exponential(3e6, n)).astype(np.int64)
        a["kind"] = 1
        return a

    benchmark.pedantic(fill, rounds=3, iterations=1)
