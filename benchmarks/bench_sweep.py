"""Sweep speed: 27 combinations (3 gammas x 3 horizons x 3 min spreads) on the
same synthetic data, one core. One multi-strategy pass (``run_sweep`` with a
serial executor: data generated once, one kernel pass, one row per combination)
against 27 separate ``run_backtest`` calls, each generating its data as a
user's loop would; measured in the same run. Also, beside it, the kernel alone
on pre-generated events: one 27-strategy pass against 27 single passes."""
from __future__ import annotations

import numpy as np
import pytest

from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.backtesting.engine import build_kernel, synthetic_source
from hftmm.backtesting.sweep import SerialExecutor, run_sweep

GRID = {"gamma": [0.05, 0.1, 0.5], "time_horizon": [10.0, 30.0, 120.0], "min_spread": [0.0, 0.2, 1.0]}
BASE = BacktestConfig(sample_interval=1.0)
_MEANS: dict[str, float] = {}


def _seconds(request) -> float:
    return 60.0 if request.config.getoption("benchmark_disable") else 3600.0


def _configs():
    return [BASE.replace(gamma=g, time_horizon=t, min_spread=m)
            for g in GRID["gamma"] for t in GRID["time_horizon"] for m in GRID["min_spread"]]


def _record(benchmark, key):
    if not benchmark.disabled and benchmark.stats is not None:
        _MEANS[key] = benchmark.stats.stats.min


@pytest.mark.benchmark(group="sweep")
def test_sweep_one_pass(benchmark, request):
    engine = BacktestEngine(synthetic_day_seconds=_seconds(request))
    df = benchmark.pedantic(lambda: run_sweep(engine, BASE, GRID, executor=SerialExecutor(), progress=False),
                            rounds=3, iterations=1)
    assert len(df) == 27 and (df["status"] == "ok").all() and (df["group_size"] == 27).all()
    _record(benchmark, "one_pass")


@pytest.mark.benchmark(group="sweep")
def test_sweep_27_separate_backtests(benchmark, request):
    engine = BacktestEngine(synthetic_day_seconds=_seconds(request))
    cfgs = _configs()
    res = benchmark.pedantic(lambda: [engine.run_backtest(c) for c in cfgs], rounds=3, iterations=1)
    assert len(res) == 27
    _record(benchmark, "separate")


@pytest.fixture(scope="module")
def events(request):
    chunks = list(synthetic_source(BASE, _seconds(request)).chunks)
    return np.concatenate([c.view(np.uint8) for c in chunks]).view(chunks[0].dtype)


@pytest.mark.benchmark(group="sweep-kernel")
def test_kernel_27_in_one_pass(benchmark, events):
    cfgs = _configs()
    benchmark.pedantic(lambda k: k.run(events), setup=lambda: ((build_kernel(cfgs, "0.1", "0.001"),), {}),
                       rounds=5, iterations=1)
    _record(benchmark, "kernel_multi")


@pytest.mark.benchmark(group="sweep-kernel")
def test_kernel_27_single_passes(benchmark, events):
    cfgs = _configs()

    def run():
        for c in cfgs:
            build_kernel([c], "0.1", "0.001").run(events)

    benchmark.pedantic(run, rounds=3, iterations=1)
    _record(benchmark, "kernel_single")


def test_sweep_speedup(benchmark):
    if benchmark.disabled or "one_pass" not in _MEANS or "separate" not in _MEANS:
        pytest.skip("benchmarks disabled")
    ratio = _MEANS["separate"] / _MEANS["one_pass"]
    benchmark.extra_info["speedup"] = ratio
    msg = f"\n27-combination sweep: one pass {_MEANS['one_pass']:.3f} s vs 27 backtests {_MEANS['separate']:.3f} s: " \
          f"{ratio:.1f}x"
    if "kernel_multi" in _MEANS and "kernel_single" in _MEANS:
        kr = _MEANS["kernel_single"] / _MEANS["kernel_multi"]
        benchmark.extra_info["kernel_speedup"] = kr
        msg += f"; kernel alone (events in memory): {kr:.1f}x"
    print(msg)
    assert ratio >= 4   # target 10x; conservative for a noisy machine
