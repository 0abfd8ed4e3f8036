"""Shared pieces of the benchmarks (pytest-benchmark).

``bench_*.py`` files are collected through ``python_files`` in pyproject.toml
(``pytest benchmarks``). Each kernel is measured beside its pure-Python twin in
the same run; ratio checks run only when benchmarks are enabled (under
``--benchmark-disable`` every body runs once as a smoke test and the ratios are
skipped).

Two helpers: ``bench_record``/``bench_ratio`` (best-of-rounds ns per item) and
``ratios`` (mean seconds per item with ``assert_faster``).
"""
from __future__ import annotations

import pytest

_RESULTS: dict[str, float] = {}


@pytest.fixture
def bench_record():
    """record(benchmark, key, items): store min ns per item of a finished benchmark."""

    def record(benchmark, key: str, items: int) -> None:
        if benchmark.disabled or benchmark.stats is None:
            return
        ns = benchmark.stats.stats.min / items * 1e9
        benchmark.extra_info["ns_per_item"] = round(ns, 3)
        _RESULTS[key] = ns

    return record


@pytest.fixture
def bench_ratio():
    """ratio(a, b): ns_per_item[a] / ns_per_item[b] from this run, or None."""

    def ratio(num: str, den: str) -> float | None:
        if num in _RESULTS and den in _RESULTS:
            return _RESULTS[num] / _RESULTS[den]
        return None

    return ratio


class Ratios:
    """Per-item means of the benchmarks of this session, for ratio checks."""

    def __init__(self) -> None:
        self.means: dict[str, float] = {}

    def record(self, benchmark, key: str, per: int = 1):
        """Store the mean seconds per item under ``key`` (ns per item also goes
        to extra_info); None when benchmarks are disabled."""
        if benchmark.disabled or benchmark.stats is None:
            return None
        per_item = benchmark.stats.stats.mean / per
        benchmark.extra_info["ns_per_item"] = round(per_item * 1e9, 2)
        self.means[key] = per_item
        return per_item

    def assert_faster(self, fast_key: str, slow_key: str, min_ratio: float) -> None:
        """Assert mean(slow)/mean(fast) >= min_ratio when both ran enabled this session."""
        if fast_key not in self.means or slow_key not in self.means:
            return  # disabled (smoke run) or the pair was not selected together
        ratio = self.means[slow_key] / self.means[fast_key]
        assert ratio >= min_ratio, f"{fast_key} only {ratio:.1f}x faster than {slow_key}"


@pytest.fixture(scope="session")
def ratios() -> Ratios:
    return Ratios()


@pytest.fixture
def bench_results() -> dict[str, float]:
    """ns per item recorded by bench_record in this run."""
    return _RESULTS
