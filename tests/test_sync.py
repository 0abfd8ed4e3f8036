"""hftcore.sync.BookSync: Binance spot and USD-M procedures, hand cases and a
differential property test against the pure-Python twin."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hftcore import EV_BOOK_INVALID, INVALID_IDS
from hftcore.sync import (APPLIED, BUFFERED, DROPPED, REFUSED, RESYNC_CROSSED, RESYNC_GAP, RESYNC_IDS,
                          STALE_SNAPSHOT, SYNCED, BookSync)
from hftmm.reference.sync import RefBookSync

E = []  # no levels


def snap(sync, L, bid=100, ask=101):
    return sync.on_snapshot_arrays(L, [bid], [5], [ask], [5])


# ---------------------------------------------------------------- spot
def test_spot_buffer_then_snapshot_replays():
    s = BookSync(market="spot")
    assert s.needs_snapshot and not s.ready and s.last_reason == "initial"
    assert s.on_depth_arrays(10, 12, None, [99], [3], E, E) == BUFFERED
    assert s.on_depth_arrays(13, 15, None, [98], [4], E, E) == BUFFERED
    assert s.on_depth_arrays(16, 16, None, [100], [0], E, E) == BUFFERED
    assert s.buffered_events == 3 and s.first_buffered_id == 10
    # L = 13: drop u <= 13 (first event), then 13..15 straddles L+1 = 14
    assert snap(s, 13) == SYNCED
    assert s.ready and s.last_update_id == 16
    assert s.book.best_bid() == 98 and s.book.qty_at(0, 99) == 0
    st_ = s.stats()
    assert st_["applied"] == 2 and st_["dropped_old"] == 1 and st_["gaps"] == 0
    # live continuation
    assert s.on_depth_arrays(17, 20, None, E, E, [102], [1]) == APPLIED
    assert s.on_depth_arrays(13, 16, None, E, E, [103], [1]) == DROPPED  # old
    assert s.on_depth_arrays(17, 20, None, E, E, [102], [1]) == DROPPED  # duplicate
    assert s.last_update_id == 20


def test_spot_contiguous_first_event_u_equals_L_plus_1():
    # cryptofeed's real captures start exactly at U == L + 1
    s = BookSync(market="spot")
    s.on_depth_arrays(21, 25, None, [99], [1], E, E)
    assert snap(s, 20) == SYNCED and s.last_update_id == 25


def test_spot_stale_snapshot_refused_and_buffer_kept():
    s = BookSync(market="spot")
    s.on_depth_arrays(50, 55, None, E, E, E, E)
    assert snap(s, 40) == STALE_SNAPSHOT      # 40 + 1 < 50: ids 41..49 unseen
    assert s.needs_snapshot and s.buffered_events == 1 and s.stale_snapshots == 1
    assert snap(s, 52) == SYNCED and s.ready


def test_spot_gap_triggers_resync_and_keeps_event():
    s = BookSync(market="spot")
    snap(s, 10)
    assert s.on_depth_arrays(11, 12, None, [99], [1], E, E) == APPLIED
    assert s.on_depth_arrays(15, 16, None, [98], [1], E, E) == RESYNC_GAP
    assert not s.ready and s.last_reason == "gap"
    assert s.gaps == 1 and s.resyncs == 1 and s.ids_lost == 2   # 13, 14
    assert s.buffered_events == 1 and s.first_buffered_id == 15
    assert s.on_depth_arrays(17, 18, None, [97], [1], E, E) == BUFFERED
    assert snap(s, 16) == SYNCED and s.last_update_id == 18


def test_spot_first_event_gap_after_snapshot():
    s = BookSync(market="spot")
    snap(s, 10)   # nothing buffered: accepted
    assert s.ready
    assert s.on_depth_arrays(13, 14, None, E, E, E, E) == RESYNC_GAP
    assert s.gaps == 1 and s.ids_lost == 0   # a book gap; no stream was received before it


def test_crossed_book_resyncs():
    s = BookSync(market="spot")
    snap(s, 10)
    assert s.on_depth_arrays(11, 11, None, [101], [1], E, E) == RESYNC_CROSSED
    assert not s.ready and s.last_reason == "crossed" and s.crossed == 1
    # a crossed snapshot is refused too
    s2 = BookSync(market="spot")
    assert s2.on_snapshot_arrays(5, [101], [1], [100], [1]) == RESYNC_CROSSED


def test_snapshot_while_synced_only_if_newer():
    s = BookSync(market="spot")
    snap(s, 10)
    s.on_depth_arrays(11, 20, None, E, E, E, E)
    assert snap(s, 15) == STALE_SNAPSHOT and s.ready and s.last_update_id == 20
    assert snap(s, 30) == SYNCED and s.last_update_id == 30


def test_buffer_bounded_drops_oldest_half():
    s = BookSync(market="spot", max_buffer=10)
    for i in range(25):
        s.on_depth_arrays(10 * i + 1, 10 * i + 10, None, [100 - i], [1], E, E)
    assert s.buffered_events <= 10 and s.buffer_dropped >= 15
    assert snap(s, 10 * 20) == STALE_SNAPSHOT or s.ready


# ---------------------------------------------------------------- USD-M
def test_usdm_first_event_u_equals_L_and_pu_chain():
    s = BookSync(market="usdm")
    assert s.on_depth_arrays(100, 110, 95, [99], [1], E, E) == BUFFERED
    assert s.on_depth_arrays(111, 120, 110, [98], [1], E, E) == BUFFERED
    # drop u < L; first event U <= L <= u: with L == 110 the first event (u == 110) is kept
    assert snap(s, 110) == SYNCED
    assert s.applied == 2 and s.last_update_id == 120
    # ids are not contiguous: only pu links events
    assert s.on_depth_arrays(130, 140, 120, E, E, E, E) == APPLIED
    assert s.on_depth_arrays(150, 160, 145, E, E, E, E) == RESYNC_GAP
    assert s.ids_lost == 5


def test_usdm_drop_rule_is_strict():
    s = BookSync(market="usdm")
    s.on_depth_arrays(90, 99, 80, [90], [1], E, E)      # u < L: dropped
    s.on_depth_arrays(100, 105, 99, [91], [1], E, E)    # U <= L=100 <= u: first
    assert snap(s, 100) == SYNCED
    assert s.dropped_old == 1 and s.applied == 1


def test_usdm_requires_pu():
    s = BookSync(market="usdm")
    snap(s, 10)
    with pytest.raises(ValueError, match="pu"):
        s.on_depth_arrays(10, 12, None, E, E, E, E)


def test_usdm_stale_snapshot():
    s = BookSync(market="usdm")
    s.on_depth_arrays(100, 110, 95, E, E, E, E)
    assert snap(s, 99) == STALE_SNAPSHOT


def test_bad_market():
    with pytest.raises(ValueError, match="market"):
        BookSync(market="coinm")


# ---------------------------------------------------------------- property test
@st.composite
def streams(draw):
    market = draw(st.sampled_from(["spot", "usdm"]))
    n = draw(st.integers(1, 60))
    ops = []
    u = draw(st.integers(0, 20))
    for _ in range(n):
        kind = draw(st.sampled_from(["ev", "ev", "ev", "ev", "gap", "dup", "snap", "corrupt"]))
        if kind == "corrupt":
            # one message whose ids lie (u far ahead, or u < U); the true stream goes on from u
            U = u + 1
            last = draw(st.sampled_from([U + draw(st.integers(5, 40)), U + 10**9, U - 1]))
            pu = u if market == "usdm" else None
            ops.append(("ev", U, last, pu, [(draw(st.integers(80, 104)), 1)], []))
            continue
        if kind == "snap":
            L = u + draw(st.integers(-6, 6))
            ops.append(("snap", max(L, 0), draw(st.integers(90, 100)), draw(st.integers(101, 110))))
            continue
        if kind == "gap":
            u += draw(st.integers(1, 5))
        if kind == "dup":
            U, last = max(u - draw(st.integers(0, 3)), 0), u
        else:
            U = u + 1
            last = U + draw(st.integers(0, 3))
        pu = u if kind != "gap" else u - draw(st.integers(1, 3))
        if kind != "dup":
            u = last
        nb = draw(st.integers(0, 3))
        na = draw(st.integers(0, 3))
        bids = [(draw(st.integers(80, 104)), draw(st.integers(0, 3))) for _ in range(nb)]
        asks = [(draw(st.integers(97, 120)), draw(st.integers(0, 3))) for _ in range(na)]
        ops.append(("ev", U, last, pu, bids, asks))
    return market, ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(2, 8))
def test_matches_twin_after_every_step(stream, max_buffer):
    market, ops = stream
    s = BookSync(market=market, max_buffer=max_buffer)
    r = RefBookSync(market=market, max_buffer=max_buffer)
    for op in ops:
        if op[0] == "snap":
            _, L, b, a = op
            args = (L, [b, b - 1], [1, 2], [a, a + 1], [3, 1])
            assert s.on_snapshot_arrays(*args) == r.on_snapshot_arrays(*args)
        else:
            _, U, u, pu, bids, asks = op
            pu = pu if market == "usdm" else None
            args = (U, u, pu, [t for t, _ in bids], [q for _, q in bids], [t for t, _ in asks], [q for _, q in asks])
            assert s.on_depth_arrays(*args) == r.on_depth_arrays(*args)
        assert s.stats() == r.stats()
        assert s.ready == r.ready and s.buffered_events == r.buffered_events
        assert s.last_reason == r.last_reason
        if s.ready:
            assert s.last_update_id == r.last_update_id
            for side in (0, 1):
                t1, q1 = s.book.levels(side)
                t2, q2 = r.book.levels(side)
                np.testing.assert_array_equal(t1, t2)
                np.testing.assert_array_equal(q1, q2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(2, 8), st.booleans())
def test_emitted_records_mark_every_invalid_stretch(stream, max_buffer, resets):
    """emit_events: a consumer that trusts the book from a SNAPSHOT run until a
    BOOK_INVALID record (and ignores nothing else) is valid exactly when the sync
    is ready, and then holds exactly the sync's book -- after every step."""
    from hftcore import EV_BOOK_INVALID, EV_DEPTH, EV_SNAPSHOT, EVF_BEGIN, EVF_EMPTY, EVF_END, INVALID_CROSSED, \
        INVALID_GAP, INVALID_IDS, INVALID_RESET
    from hftcore.book import L2Book

    market, ops = stream
    s = BookSync(market=market, max_buffer=max_buffer, emit_events=True)
    book, valid = L2Book(), False
    for n, op in enumerate(ops):
        ready_before = s.ready
        if op[0] == "snap":
            _, L, b, a = op
            s.on_snapshot_arrays(L, [b, b - 1], [1, 2], [a, a + 1], [3, 1], local_ts=n)
        else:
            _, U, u, pu, bids, asks = op
            s.on_depth_arrays(U, u, pu if market == "usdm" else None, [t for t, _ in bids], [q for _, q in bids],
                              [t for t, _ in asks], [q for _, q in asks], local_ts=n)
        if resets and n % 7 == 6:
            s.reset()
        marks = 0
        for r in s.take_events().tolist():
            px, qty, kind, side, flags = r[2], r[3], r[7], r[8], r[9]
            if kind == EV_BOOK_INVALID:
                assert valid and px in (INVALID_GAP, INVALID_CROSSED, INVALID_RESET, INVALID_IDS) and flags & EVF_END
                valid, marks = False, marks + 1
                continue
            if kind == EV_DEPTH:
                assert valid, "a DEPTH record while the book is marked invalid"
            if kind == EV_SNAPSHOT and flags & EVF_BEGIN:
                book.clear()
            if not flags & EVF_EMPTY:
                book.apply(side, px, qty)
            if kind == EV_SNAPSHOT and flags & EVF_END:
                valid = True
        assert valid == s.ready
        assert marks <= 2 and (marks == 0 or ready_before or op[0] == "snap")
        if valid:
            for side in (0, 1):
                t1, q1 = s.book.levels(side)
                t2, q2 = book.levels(side)
                np.testing.assert_array_equal(t1, t2)
                np.testing.assert_array_equal(q1, q2)


# ---------------------------------------------------------------- hostile ids (issue 15)
def test_one_corrupt_u_no_longer_freezes_a_ready_book():
    """Snapshot at 100, then U=101, u=10**15: it satisfies U == last u + 1, and every
    later good event used to be dropped as old while ready stayed True."""
    s = BookSync(market="spot", emit_events=True)
    assert snap(s, 100) == SYNCED
    assert s.on_depth_arrays(101, 10**15, None, [99], [2], E, E) == RESYNC_IDS   # more ids than any message
    assert not s.ready and s.needs_snapshot and s.last_reason == "ids" and s.refused == 1
    # a moderate lie is applied (nothing can tell yet) and caught by the very next event
    s2 = BookSync(market="spot")
    snap(s2, 100)
    assert s2.on_depth_arrays(101, 5101, None, [99], [2], E, E) == APPLIED
    assert s2.on_depth_arrays(111, 120, None, [99], [3], E, E) == RESYNC_IDS
    assert not s2.ready and s2.contradictions == 1 and s2.buffered_events == 1
    # the next snapshot brings the book back on the stream
    assert s2.on_depth_arrays(121, 130, None, [98], [1], E, E) == BUFFERED
    assert s2.on_snapshot_arrays(125, [99], [3], [101], [1]) == SYNCED
    assert s2.ready and s2.last_update_id == 130 and s2.book.best_bid() == 99
    # the BOOK_INVALID record says why
    rec = s.take_events()
    assert int(rec["kind"][-1]) == EV_BOOK_INVALID and int(rec["px"][-1]) == INVALID_IDS


def test_usdm_corrupt_u_caught_by_the_pu_chain_review():
    s = BookSync(market="usdm")
    assert s.on_snapshot_arrays(100, [99], [1], [101], [1]) == SYNCED
    assert s.on_depth_arrays(90, 110, 80, [99], [2], E, E) == APPLIED
    assert s.on_depth_arrays(115, 9000, 110, [99], [2], E, E) == APPLIED       # true u: 120
    # the true next event (pu = 120) ends inside (110, 9000]: the book's id was false
    assert s.on_depth_arrays(125, 130, 120, [99], [2], E, E) == RESYNC_IDS
    assert not s.ready and s.last_reason == "ids"


def test_corrupt_first_buffered_event_does_not_make_every_snapshot_stale():
    """A gap to U=10**12 used to open the buffer, so every later snapshot was refused as
    too old, forever. A chained stream running behind it re-anchors the buffer."""
    s = BookSync(market="spot")
    snap(s, 100)
    assert s.on_depth_arrays(10**12, 10**12 + 5, None, E, E, [101], [1]) == RESYNC_GAP
    for U in range(101, 141, 10):
        assert s.on_depth_arrays(U, U + 9, None, [99], [1], E, E) == BUFFERED
    assert s.first_buffered_id == 101 and s.contradictions == 1
    assert s.on_snapshot_arrays(125, [99], [1], [101], [1]) == SYNCED and s.last_update_id == 140


def test_snapshot_far_ahead_of_the_stream():
    s = BookSync(market="spot")
    s.on_depth_arrays(95, 100, None, E, E, E, E)
    # more ids ahead than a message can carry: refused outright
    assert s.on_snapshot_arrays(100 + 10**9, [99], [1], [101], [1]) == REFUSED and not s.ready
    # a lie within reach is loaded, but a stream that stays behind it at its own pace gives it away
    assert s.on_snapshot_arrays(10**6, [99], [1], [101], [1]) == SYNCED
    outs = [s.on_depth_arrays(U, U + 4, None, E, E, E, E) for U in range(101, 151, 5)]
    assert outs[:7] == [DROPPED] * 7 and outs[7] == RESYNC_IDS and not s.ready
    # an honest early snapshot: the stream catches up in a few events
    s2 = BookSync(market="spot")
    s2.on_depth_arrays(95, 100, None, E, E, E, E)
    assert s2.on_snapshot_arrays(118, [99], [1], [101], [1]) == SYNCED
    outs = [s2.on_depth_arrays(U, U + 4, None, E, E, E, E) for U in range(101, 131, 5)]
    assert outs == [DROPPED] * 3 + [APPLIED] * 3 and s2.ready and s2.resyncs == 0


def test_impossible_and_overlapping_ids_are_refused():
    s = BookSync(market="usdm")
    assert s.on_depth_arrays(-5, 10, 1, E, E, E, E) == REFUSED            # negative
    assert s.on_depth_arrays(10, 9, 1, E, E, E, E) == REFUSED             # u < U
    assert s.on_depth_arrays(10, 12, 10, E, E, E, E) == REFUSED           # pu >= U
    assert s.on_depth_arrays(10, 12, 5, E, E, E, E) == BUFFERED
    # newer than 12 but its range (8, 20] overlaps (5, 12]: one of them lies
    assert s.on_depth_arrays(15, 20, 8, E, E, E, E) == REFUSED
    assert s.refused == 4 and s.buffered_events == 0
    sp = BookSync(market="spot")
    snap(sp, 100)
    assert sp.on_depth_arrays(101, 105, None, E, E, E, E) == APPLIED
    assert sp.on_depth_arrays(104, 110, None, E, E, E, E) == RESYNC_IDS   # overlaps [101, 105]
    assert not sp.ready and sp.refused == 1


def test_duplicates_and_replays_are_not_alarms():
    s = BookSync(market="spot")
    snap(s, 100)
    for U in range(101, 161, 10):
        assert s.on_depth_arrays(U, U + 9, None, E, E, E, E) == APPLIED
    # a replay of the last five messages, in order, then the stream goes on
    for U in range(111, 161, 10):
        assert s.on_depth_arrays(U, U + 9, None, E, E, E, E) == DROPPED
    assert s.on_depth_arrays(161, 170, None, E, E, E, E) == APPLIED
    assert s.resyncs == 0 and s.contradictions == 0 and s.refused == 0
