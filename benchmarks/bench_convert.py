"""``hftmm data convert`` throughput on raw JSON captures, end to end (gzip read
+ decode + Parquet write), beside a baseline (gzip line iteration + json.loads
per line, no conversion or write at all) in the same run.

The input is a synthetic collector-format capture (``<ns> <json>`` lines,
gzip): ``hftmm.synthetic`` events rendered by ``BinanceRenderer`` as combined
streams (depth@100ms, bookTicker, trade, aggTrade) plus one REST snapshot. Made
once per session in a temp dir.

Run: PYTHONPATH=.:python python -m pytest benchmarks/bench_convert.py --benchmark-only -s
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile

import pytest

from hftmm.synthetic import BinanceRenderer, SyntheticConfig, generate

GROUP = "convert"
SECONDS = float(os.environ.get("HFTMM_BENCH_CONVERT_SECONDS", "1800"))
_results: dict[str, float] = {}


@pytest.fixture(scope="module")
def capture(request):
    # a short capture when benchmarks are disabled (CI smoke run)
    seconds = 60.0 if request.config.getoption("benchmark_disable", False) else SECONDS
    d = tempfile.mkdtemp(prefix="hftmm-bench-convert-")
    path = os.path.join(d, "btcusdt_20240808.gz")
    cfg = SyntheticConfig()
    r = BinanceRenderer(cfg.symbol, cfg.tick_size, cfg.lot_size, market="spot")
    sym = cfg.symbol.lower()
    n = 0
    with gzip.open(path, "wb", compresslevel=6) as fh:
        for i, ev in enumerate(generate(cfg, seconds=seconds)):
            msgs = r.feed(ev)
            if i == 0:
                t0 = int(ev["exch_ts"][0]) if len(ev) else 0
                fh.write(b"%d %s\n" % (t0 + 1, r.snapshot(1000)))
                n += 1
            lines = []
            for t, ch, payload in msgs:
                stream = f"{sym}@depth@100ms" if ch == "depth" else f"{sym}@{ch}"
                lines.append(b'%d {"stream":"%s","data":%s}\n' % (t + 3_000_000, stream.encode(), payload))
            fh.write(b"".join(lines))
            n += len(lines)
    yield path, n
    shutil.rmtree(d, ignore_errors=True)


def _baseline(path):
    n = 0
    with gzip.open(path, "rb") as fh:
        for line in fh:
            ts, _, js = line.partition(b" ")
            json.loads(js)
            n += 1
    return n


def _convert(path, out):
    from hftmm.data.convert import convert

    shutil.rmtree(out, ignore_errors=True)
    return convert([path], out, tick_size="0.1", lot_size="0.001", progress=False)


@pytest.mark.benchmark(group=GROUP)
def test_convert_collector(benchmark, capture, tmp_path):
    path, n = capture
    rep = benchmark.pedantic(_convert, args=(path, str(tmp_path / "store")), rounds=3, iterations=1)
    assert rep.malformed == 0 and rep.lines == n
    if not benchmark.disabled:
        _results["convert"] = n / benchmark.stats.stats.median
        benchmark.extra_info["lines"] = n
        benchmark.extra_info["lines_per_s"] = round(_results["convert"])


@pytest.mark.benchmark(group=GROUP)
def test_json_loads_baseline(benchmark, capture):
    path, n = capture
    assert benchmark.pedantic(_baseline, args=(path,), rounds=3, iterations=1) == n
    if not benchmark.disabled:
        _results["json.loads"] = n / benchmark.stats.stats.median
        benchmark.extra_info["lines_per_s"] = round(_results["json.loads"])


@pytest.mark.benchmark(group=GROUP)
def test_throughput(benchmark, capture):
    """Runs last. The target is >= 1M lines/s end to end (with the book
    normalisation). CPU per 303k lines: zlib ~0.10 s (reader thread), decode
    ~0.11 s + normalise ~0.01 s (this thread), Arrow ~0.01 s + Parquet/zstd
    ~0.12 s (writer thread), each releasing the GIL, so the stages overlap on
    2 cores: ~1.3M lines/s on an idle 2-core machine, ~0.9M when another
    process holds a core. Only a conservative margin over the baseline is
    asserted; the 1M figure is printed."""
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    if benchmark.disabled or len(_results) < 2:
        pytest.skip("benchmarks disabled (smoke-test run)")
    print(f"\nlines/s: convert={_results['convert']:,.0f}, json.loads baseline={_results['json.loads']:,.0f} "
          f"({_results['convert'] / _results['json.loads']:.1f}x) on {capture[1]:,} lines, "
          f"{os.path.getsize(capture[0]) / 1e6:.1f} MB gzip")
    print(f"target 1M lines/s: {'met' if _results['convert'] >= 1_000_000 else 'NOT met'}")
    assert _results["convert"] >= 2 * _results["json.loads"]
