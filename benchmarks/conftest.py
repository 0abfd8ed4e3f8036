"""Shared fixtures for benchmarks: per-item figures and same-run ratios.

``bench_record(benchmark, key, items)`` stores ns per item of a finished
benchmark; ``bench_ratio(a, b)`` gives a/b from this run (None when either is
missing, e.g. under ``--benchmark-disable``, where each body runs once as a
smoke test).
"""
from __future__ import annotations

import pytest

_RESULTS: dict[str, float] = {}


@pytest.fixture
def bench_record():
    def record(benchmark, key: str, items: int) -> None:
        if benchmark.disabled or benchmark.stats is None:
            return
        ns = benchmark.stats.stats.min / items * 1e9
        benchmark.extra_info["ns_per_item"] = round(ns, 3)
        _RESULTS[key] = ns

    return record


@pytest.fixture
def bench_ratio():
    def ratio(num: str, den: str) -> float | None:
        if num in _RESULTS and den in _RESULTS:
            return _RESULTS[num] / _RESULTS[den]
        return None

    return ratio


@pytest.fixture
def bench_results() -> dict[str, float]:
    return _RESULTS
