"""Binance decoder throughput: hftcore.binance vs orjson+float vs the json twin.

Run: PYTHONPATH=.:python python -m pytest benchmarks/bench_decoder.py --benchmark-only
"""
import json
import random

import numpy as np
import orjson
import pytest

from hftcore.binance import BinanceDecoder
from hftmm.reference.binance import BinanceDecoder as TwinDecoder

GROUP = "decoder"


def _depth_frame(levels=20, seed=1):
    """Realistic spot depthUpdate, 20 levels per side, combined-stream envelope."""
    rnd = random.Random(seed)
    mid = 6183763
    bids = [[f"{(mid - i * rnd.randint(1, 9)) / 100:.8f}", f"{rnd.randint(0, 400000) / 1e5:.8f}"]
            for i in range(levels)]
    asks = [[f"{(mid + 1 + i * rnd.randint(1, 9)) / 100:.8f}", f"{rnd.randint(0, 400000) / 1e5:.8f}"]
            for i in range(levels)]
    data = {"e": "depthUpdate", "E": 1723161255208, "s": "BTCUSDT", "U": 50093239189,
            "u": 50093239202, "b": bids, "a": asks}
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data},
                      separators=(",", ":")).encode()


FRAME = _depth_frame()
DEC = BinanceDecoder("0.01", "0.00001")
TWIN = TwinDecoder("0.01", "0.00001")
_results = {}


def _orjson_float(frame):
    msg = orjson.loads(frame)
    d = msg["data"]
    bids = [(float(p), float(q)) for p, q in d["b"]]
    asks = [(float(p), float(q)) for p, q in d["a"]]
    return d["U"], d["u"], bids, asks


def _materialise(frame):
    m = DEC.decode(frame)
    return m.bids, m.asks


def _run(benchmark, fn, arg, iterations):
    """Timer overhead (~50-100 ns per call of perf_counter) is amortised over
    `iterations` calls per round; under --benchmark-disable: one plain call."""
    if benchmark.disabled:
        return benchmark(fn, arg)
    return benchmark.pedantic(fn, args=(arg,), iterations=iterations,
                              rounds=max(20, 20000 // iterations), warmup_rounds=2)


def _record(benchmark, name):
    if not benchmark.disabled and benchmark.stats is not None:
        _results[name] = benchmark.stats.stats.median


def test_frame_is_realistic():
    m = DEC.decode(FRAME)
    assert (m.n_bids, m.n_asks) == (20, 20) and m.stream == "btcusdt@depth@100ms"
    assert 900 < len(FRAME) < 1600
    # C, orjson+float and twin agree on the numbers
    _, _, bids, _ = _orjson_float(FRAME)
    assert np.array_equal(m.bid_ticks, np.round(np.array([b[0] for b in bids]) * 100).astype(np.int64))
    assert [tuple(x) for x in m.bids.tolist()] == TWIN.decode(FRAME).bids


@pytest.mark.benchmark(group=GROUP)
def test_hftcore_decode(benchmark):
    benchmark.extra_info["frame_bytes"] = len(FRAME)
    m = _run(benchmark, DEC.decode, FRAME, 100)
    assert m.n_bids == 20
    _record(benchmark, "hftcore")


@pytest.mark.benchmark(group=GROUP)
def test_hftcore_decode_to_numpy(benchmark):
    bids, asks = _run(benchmark, _materialise, FRAME, 100)
    assert bids.shape == (20, 2)
    _record(benchmark, "hftcore+numpy")


@pytest.mark.benchmark(group=GROUP)
def test_orjson_float_baseline(benchmark):
    r = _run(benchmark, _orjson_float, FRAME, 10)
    assert len(r[2]) == 20
    _record(benchmark, "orjson+float")


@pytest.mark.benchmark(group=GROUP)
def test_python_twin(benchmark):
    m = _run(benchmark, TWIN.decode, FRAME, 1)
    assert len(m.bids) == 20
    _record(benchmark, "twin")


@pytest.mark.benchmark(group=GROUP)
def test_ratio(benchmark):
    """Runs last: hftcore must beat orjson+float by a conservative margin."""
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    if benchmark.disabled or "hftcore" not in _results or "orjson+float" not in _results:
        pytest.skip("benchmarks disabled (smoke-test run)")
    ratio = _results["orjson+float"] / _results["hftcore"]
    print("\nmedian ns/frame: " + ", ".join(f"{k}={v * 1e9:.0f}" for k, v in _results.items())
          + f"; orjson+float / hftcore = {ratio:.1f}x")
    assert ratio >= 5.0
