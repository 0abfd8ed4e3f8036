"""hftcore.book.L2Book: hand cases and a differential property test against
the SortedDict twin, compared after every operation."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hftcore.book import ASK, BID, L2Book
from hftmm.reference.book import RefL2Book


def assert_same(book, ref):
    assert book.best_bid() == ref.best_bid()
    assert book.best_ask() == ref.best_ask()
    assert book.best_bid_qty() == ref.best_bid_qty()
    assert book.best_ask_qty() == ref.best_ask_qty()
    assert book.bid_levels == ref.bid_levels
    assert book.ask_levels == ref.ask_levels
    assert book.is_crossed() == ref.is_crossed()
    for side in (BID, ASK):
        t1, q1 = book.levels(side)
        t2, q2 = ref.levels(side)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(q1, q2)
    m1, m2 = book.mid(), ref.mid()
    assert (math.isnan(m1) and math.isnan(m2)) or m1 == m2
    p1, p2 = book.microprice(), ref.microprice()
    assert (math.isnan(p1) and math.isnan(p2)) or p1 == pytest.approx(p2, rel=1e-12)


def test_empty_book():
    b = L2Book(tick_size="0.01")
    assert b.best_bid() is None and b.best_ask() is None
    assert b.best_bid_qty() == 0 and math.isnan(b.mid())
    assert not b.is_crossed() and len(b) == 0
    assert [len(x) for x in b.top(5)] == [0, 0, 0, 0]


def test_basic_updates_and_reads():
    b = L2Book(tick_size=0.01)
    b.apply_levels(BID, [100, 99, 98], [5, 6, 7])
    b.apply_levels(ASK, np.array([101, 103], dtype=np.int64), np.array([2, 8], dtype=np.int64))
    assert (b.best_bid(), b.best_ask()) == (100, 101)
    assert (b.best_bid_qty(), b.best_ask_qty()) == (5, 2)
    assert b.mid() == pytest.approx(1.005)
    assert b.mid_ticks() == 100.5
    # micro-price = (bid*askQty + ask*bidQty)/(bidQty+askQty)
    assert b.microprice() == pytest.approx((100 * 2 + 101 * 5) / 7 * 0.01)
    assert b.imbalance(1) == pytest.approx((5 - 2) / 7)
    assert b.imbalance(3) == pytest.approx((18 - 10) / 28)
    bt, bq, at, aq = b.top(2)
    assert bt.tolist() == [100, 99] and bq.tolist() == [5, 6]
    assert at.tolist() == [101, 103] and aq.tolist() == [2, 8]
    # delete best bid: next best found
    b.apply(BID, 100, 0)
    assert b.best_bid() == 99
    # deleting an unknown level is normal
    b.apply(BID, 12345, 0)
    b.apply(ASK, 1, 0)
    assert b.bid_levels == 2
    # crossed detection
    b.apply(BID, 101, 1)
    assert b.is_crossed()
    b.clear()
    assert len(b) == 0 and b.best_bid() is None


def test_bad_input_changes_nothing():
    b = L2Book()
    b.apply_levels(BID, [10, 9], [1, 1])
    with pytest.raises(ValueError, match="negative quantity"):
        b.apply_levels(BID, [11, 8], [1, -1])
    assert b.best_bid() == 10 and b.bid_levels == 2   # nothing half-applied
    with pytest.raises(ValueError, match="side"):
        b.apply(2, 1, 1)
    with pytest.raises(ValueError, match="tick"):
        b.apply(BID, -5, 1)
    with pytest.raises(TypeError, match="integers"):
        b.apply_levels(BID, np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="length"):
        b.apply_levels(BID, [1, 2], [1])
    with pytest.raises(ValueError, match="window"):
        L2Book(window=1000)


def test_far_levels_beyond_window_stay_exact():
    # a 5000-level snapshot spread over 600k ticks with a small window
    rng = np.random.default_rng(1)
    b = L2Book(window=1024)
    r = RefL2Book()
    bid_ticks = 6_000_000 - np.unique(rng.integers(0, 600_000, 5000))
    ask_ticks = 6_000_001 + np.unique(rng.integers(0, 600_000, 5000))
    bl = rng.integers(1, 1000, len(bid_ticks))
    al = rng.integers(1, 1000, len(ask_ticks))
    b.load_snapshot(bid_ticks, bl, ask_ticks, al)
    r.load_snapshot(bid_ticks, bl, ask_ticks, al)
    assert_same(b, r)
    # updates deep in the book and beyond the snapshot's range
    for _ in range(3000):
        side = int(rng.integers(0, 2))
        base = 6_000_000 if side == BID else 6_000_001
        off = int(rng.integers(0, 800_000))
        tick = base - off if side == BID else base + off
        lots = int(rng.integers(0, 3)) * int(rng.integers(1, 100))
        b.apply(side, tick, lots)
        r.apply(side, tick, lots)
    assert_same(b, r)
    # wipe the touch: the best must come from deep levels
    for side in (BID, ASK):
        t, _ = r.levels(side)
        for tick in t[: len(t) - 3]:
            b.apply(side, int(tick), 0)
            r.apply(side, int(tick), 0)
            assert b.best_bid() == r.best_bid() and b.best_ask() == r.best_ask()
    assert_same(b, r)
    assert b.recenters > 0


def test_price_walks_far_away_and_back():
    b = L2Book(window=256)
    r = RefL2Book()
    mid = 1_000_000
    rng = np.random.default_rng(7)
    for _ in range(4000):
        mid += int(rng.integers(-40, 41))
        for side, sign in ((BID, -1), (ASK, 1)):
            ticks = mid + sign * (1 + rng.integers(0, 30, 4))
            lots = rng.integers(0, 5, 4)
            b.apply_levels(side, ticks, lots)
            r.apply_levels(side, ticks, lots)
        assert b.best_bid() == r.best_bid() and b.best_ask() == r.best_ask()
        assert b.best_bid_qty() == r.best_bid_qty() and b.best_ask_qty() == r.best_ask_qty()
    assert_same(b, r)


ops = st.lists(
    st.tuples(
        st.sampled_from(["apply", "levels", "snapshot", "clear", "top"]),
        st.integers(0, 1),
        st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 4)), min_size=0, max_size=8),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, window=st.sampled_from([64, 128, 1024]))
def test_matches_sorteddict_twin_after_every_step(ops, window):
    b = L2Book(tick_size=0.5, window=window)
    r = RefL2Book(tick_size=0.5)
    for op, side, levels in ops:
        ticks = [t for t, _ in levels]
        lots = [q for _, q in levels]
        if op == "apply" and levels:
            b.apply(side, ticks[0], lots[0])
            r.apply(side, ticks[0], lots[0])
        elif op == "levels":
            b.apply_levels(side, ticks, lots)
            r.apply_levels(side, ticks, lots)
        elif op == "snapshot":
            half = len(levels) // 2
            args = (ticks[:half], [q + 1 for q in lots[:half]], ticks[half:], [q + 1 for q in lots[half:]])
            # a snapshot has one entry per price: keep the last
            b.load_snapshot(*args)
            r.load_snapshot(*args)
        elif op == "clear":
            b.clear()
            r.clear()
        elif op == "top":
            for x, y in zip(b.top(3), r.top(3)):
                np.testing.assert_array_equal(x, y)
            assert b.imbalance(3) == pytest.approx(r.imbalance(3), nan_ok=True)
        assert_same(b, r)
