"""L2 book: a synthetic BTCUSDT-like stream -- a 1000-level snapshot, then 1M
level updates in 50k messages (10 per side, ~90% within 20 ticks of the touch),
one apply_levels call per side per message and a best bid/ask/mid read after
each message. Figure: ns per level update, beside the SortedDict twin."""
from __future__ import annotations

import numpy as np
import pytest

from hftcore.book import ASK, BID, L2Book
from hftmm.reference.book import RefL2Book

N_MSG = 50_000
PER_SIDE = 10
N_LEVELS = N_MSG * PER_SIDE * 2


def make_stream(n_msg: int = N_MSG, seed: int = 42):
    """(snapshot, messages): messages are (bid_ticks, bid_lots, ask_ticks, ask_lots)
    int64 arrays, allocated in stream order as a live decoder would produce them."""
    rng = np.random.default_rng(seed)
    mid0 = 6_183_763  # 61837.63 at tick 0.01
    snap_b = mid0 - 1 - np.arange(1000, dtype=np.int64)
    snap_a = mid0 + 1 + np.arange(1000, dtype=np.int64)
    snap = (snap_b, rng.integers(1, 100_000, 1000), snap_a, rng.integers(1, 100_000, 1000))
    k = 2 * PER_SIDE
    mid = mid0 + np.cumsum(rng.integers(-2, 3, n_msg))[:, None]
    near = rng.random((n_msg, k)) < 0.9
    off = np.where(near, rng.integers(0, 20, (n_msg, k)), rng.integers(20, 1000, (n_msg, k)))
    lots = rng.integers(1, 100_000, (n_msg, k)) * (rng.random((n_msg, k)) < 0.7)
    bt = (mid - 1 - off[:, :PER_SIDE]).astype(np.int64)
    at = (mid + 1 + off[:, PER_SIDE:]).astype(np.int64)
    bl = lots[:, :PER_SIDE].astype(np.int64)
    al = lots[:, PER_SIDE:].astype(np.int64)
    msgs = [(bt[i].copy(), bl[i].copy(), at[i].copy(), al[i].copy()) for i in range(n_msg)]
    return snap, msgs


@pytest.fixture(scope="module")
def stream():
    return make_stream()


def replay(book, msgs):
    apply_levels = book.apply_levels
    best_bid, best_ask, mid = book.best_bid, book.best_ask, book.mid
    for bt, bl, at, al in msgs:
        apply_levels(BID, bt, bl)
        apply_levels(ASK, at, al)
        best_bid()
        best_ask()
        mid()


@pytest.mark.benchmark(group="book")
def test_book_l2book(benchmark, stream, bench_record):
    snap, msgs = stream

    def setup():
        b = L2Book(tick_size="0.01")
        b.load_snapshot(*snap)
        return (b, msgs), {}

    benchmark.pedantic(replay, setup=setup, rounds=7, iterations=1)
    bench_record(benchmark, "book", N_LEVELS)


@pytest.mark.benchmark(group="book")
def test_book_sorteddict_twin(benchmark, stream, bench_record):
    snap, msgs = stream
    sub = msgs[:5000]  # the twin is slow: a tenth of the stream, same shape

    def setup():
        b = RefL2Book(tick_size=0.01)
        b.load_snapshot(*snap)
        return (b, sub), {}

    benchmark.pedantic(replay, setup=setup, rounds=3, iterations=1)
    bench_record(benchmark, "book_twin", len(sub) * PER_SIDE * 2)


def test_book_ratio(benchmark, bench_ratio):
    r = bench_ratio("book_twin", "book")
    if benchmark.disabled or r is None:
        pytest.skip("benchmarks disabled")
    benchmark.extra_info["speedup_vs_twin"] = r
    print(f"\nL2Book vs SortedDict twin: {r:.1f}x")
    assert r >= 30
