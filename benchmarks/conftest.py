"""Shared pieces of the benchmarks (pytest-benchmark).

``bench_*.py`` files are collected here (``pytest benchmarks``). Each kernel is
measured beside its pure-Python twin; the second benchmark of a pair asserts a
conservative speed ratio, but only when benchmarks are enabled (under
``--benchmark-disable`` every body runs once as a smoke test and the ratios
are skipped).
"""
import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


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
