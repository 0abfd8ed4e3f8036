"""hftcore.exchange.ExchangeModel on tiny hand-made event sequences, every case run
on the compiled model and on its twin (tests/reference/replay.py) with the
expected reports stated by hand: queue position through trades, a trade through
our price, crossing at the end of a depth message, post-only rejection, a taker
fill at the opposite best, a cancel racing a fill, market orders sweeping levels,
the probabilistic queue models, intensity fills, several accounts over one book."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from hftcore import EVENT_DTYPE, EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVF_BEGIN, EVF_END
from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftcore.exchange import ACK, CANCELED, FILL, REJECTED, ExchangeModel, exchange_params
from hftcore.strategy import PyStrategy, Trader, trader_limits
from hftmm.reference.book import RefL2Book

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import replay as ref  # noqa: E402

MS = 1_000_000
T0 = 1_000 * 1_000_000_000
TICK, LOT = 0.5, 0.01
BE = EVF_BEGIN | EVF_END
IMPLS = {"kernel": (L2Book, ExchangeModel), "twin": (RefL2Book, ref.RefExchangeModel)}


def events(*rows) -> np.ndarray:
    """(ms after T0, kind, side, px, qty, flags) -> EVENT_DTYPE (received 1 ms later)."""
    a = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (t, kind, side, px, qty, flags) in enumerate(rows):
        a[i] = (T0 + t * MS + MS, T0 + t * MS, px, qty, 0, 0, 0, kind, side, flags)
    return a


def snapshot(t, bids, asks):
    lv = [(0, p, q) for p, q in bids] + [(1, p, q) for p, q in asks]
    return events(*[(t, EV_SNAPSHOT, s, p, q, (EVF_BEGIN if i == 0 else 0) | (EVF_END if i == len(lv) - 1 else 0))
                    for i, (s, p, q) in enumerate(lv)])


BOOK = snapshot(0, [(100, 10), (99, 5)], [(101, 4), (102, 6)])


def model(impl, **kw):
    book_cls, xm_cls = IMPLS[impl]
    p = dict(entry_latency_ns=MS, cancel_latency_ns=MS, response_latency_ns=2 * MS, maker_fee=0.001,
             taker_fee=0.002)
    p.update(kw)
    book = book_cls(TICK, LOT)
    xm = xm_cls(book, exchange_params(TICK, LOT, **p))
    xm.process(BOOK)
    return xm


def reports(xm) -> list[tuple]:
    """(ms after T0, id, kind, px, lots, leaves, taker) of the reports due."""
    return [(round((int(r["ts"]) - T0) / MS, 6), int(r["id"]), int(r["kind"]), int(r["px"]), int(r["lots"]),
             int(r["leaves"]), int(r["taker"])) for r in xm.take_reports(0)]


def fee(px, lots, rate):
    return px * TICK * lots * LOT * rate


@pytest.fixture(params=list(IMPLS))
def impl(request):
    return request.param


def test_queue_position_advances_through_trades(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)                    # reaches the exchange at +2 ms
    xm.process(events((5, EV_TRADE, 0, 100, 8, BE)))            # 10 ahead of us: 2 left
    assert [o[4] for o in xm.open_orders(0)] == [2.0]
    xm.process(events((6, EV_TRADE, 0, 100, 4, BE)))            # 2 ahead, 4 traded: 2 of ours
    xm.process(events((7, EV_TRADE, 0, 100, 1, BE)))            # the last one
    assert reports(xm) == [(4, 1, ACK, 100, 0, 3, 0), (8, 1, FILL, 100, 2, 1, 0), (9, 1, FILL, 100, 1, 0, 0)]
    assert xm.position(0) == 3 and xm.open_orders(0) == []
    assert xm.cash(0) == -(100 * TICK * 2 * LOT) - fee(100, 2, 0.001) - (100 * TICK * 1 * LOT) - fee(100, 1, 0.001)
    c = xm.counters(0)
    assert (c["fills"], c["partial_fills"], c["maker_lots"], c["taker_lots"]) == (2, 1, 3, 0)
    assert (c["lifetime_count"], c["lifetime_sum_ns"]) == (1, 5 * MS)   # rested from +2 ms to +7 ms


def test_trade_through_our_price_fills_everything(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_TRADE, 0, 99, 1, BE)))             # a sell took out 100 and traded at 99
    assert reports(xm) == [(4, 1, ACK, 100, 0, 3, 0), (7, 1, FILL, 100, 3, 0, 0)]
    # a trade on the other side, or above our bid, does nothing
    xm.submit(0, 2, 0, 99, 2, True, T0 + 10 * MS)
    xm.process(events((15, EV_TRADE, 1, 99, 50, BE), (16, EV_TRADE, 0, 100, 50, BE)))
    assert reports(xm) == [(13, 2, ACK, 99, 0, 2, 0)]


def test_crossing_fills_at_the_end_of_a_depth_message(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 1, 100, 2, EVF_BEGIN)))     # an ask at our bid, the message not over
    assert reports(xm) == [(4, 1, ACK, 100, 0, 3, 0)]
    xm.process(events((5, EV_DEPTH, 1, 101, 0, EVF_END)))       # the message is complete: crossed
    assert reports(xm) == [(7, 1, FILL, 100, 3, 0, 0)]          # filled as maker, at our price


def test_post_only_order_that_would_take_is_rejected(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 101, 3, True, T0 + MS)                   # at the best ask
    xm.submit(0, 2, 1, 100, 3, True, T0 + MS)                   # at the best bid
    xm.process(events((5, EV_DEPTH, 0, 98, 1, BE)))
    assert reports(xm) == [(4, 1, REJECTED, 101, 0, 3, 0), (4, 2, REJECTED, 100, 0, 3, 0)]
    assert xm.counters(0)["rejected"] == 2 and xm.position(0) == 0


def test_taker_fill_at_the_opposite_best_and_the_rest_rests(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 102, 7, False, T0 + MS)                  # crosses 101 (4 lots) and 102 (6 lots)
    xm.process(events((5, EV_DEPTH, 0, 98, 1, EVF_BEGIN)))      # (not the end of a message)
    # one level taken at its price as taker; the rest rests at 102, acknowledged after the fill
    assert reports(xm) == [(4, 1, FILL, 101, 4, 3, 1), (4, 1, ACK, 102, 0, 3, 0)]
    assert xm.fees(0) == fee(101, 4, 0.002)
    xm.process(events((5, EV_DEPTH, 0, 97, 1, EVF_END)))        # end of message: the ask (101) is through us
    assert reports(xm) == [(7, 1, FILL, 102, 3, 0, 0)]
    c = xm.counters(0)
    assert (c["taker_lots"], c["maker_lots"], c["partial_fills"]) == (4, 3, 1)


def test_cancel_racing_a_fill(impl):
    # the fill wins: the cancel reaches the exchange after the order is done, and does nothing
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 0, 98, 1, BE)))
    assert xm.cancel(0, 1, T0 + 10 * MS)                        # reaches it at +11 ms
    xm.process(events((10, EV_TRADE, 0, 99, 1, BE), (12, EV_DEPTH, 0, 98, 2, BE)))
    assert reports(xm) == [(4, 1, ACK, 100, 0, 3, 0), (12, 1, FILL, 100, 3, 0, 0)]
    assert xm.counters(0)["cancelled"] == 0 and not xm.cancel(0, 1, T0 + 13 * MS)
    # the cancel wins: the order is gone before the trade
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 0, 98, 1, BE)))
    xm.cancel(0, 1, T0 + 10 * MS)
    xm.process(events((12, EV_TRADE, 0, 99, 1, BE)))
    assert reports(xm) == [(4, 1, ACK, 100, 0, 3, 0), (13, 1, CANCELED, 100, 0, 3, 0)]
    c = xm.counters(0)
    assert c["cancelled"] == 1 and c["fills"] == 0 and c["lifetime_sum_ns"] == 9 * MS


def test_snapshot_end_refreshes_the_level_and_depth_shrinks_the_queue(impl):
    xm = model(impl)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 0, 100, 7, BE)))            # 3 left the level: the queue is <= 7
    assert xm.open_orders(0)[0][4] == 7.0
    xm.process(snapshot(10, [(100, 30)], [(101, 4)]))           # a new book: the level is 30 now
    xm.process(events((12, EV_DEPTH, 0, 100, 20, BE)))          # 10 cancelled (risk-averse: the queue stays)
    assert xm.open_orders(0)[0][4] == 7.0
    xm.process(events((13, EV_DEPTH, 0, 100, 5, BE)))
    assert xm.open_orders(0)[0][4] == 5.0


@pytest.mark.parametrize("qm,expected", [
    # level 30 (16 ahead of us, 14 behind); 4 traded; the level goes 30 -> 22: 4 cancelled,
    # p = f(back) / (f(back) + f(front)) of them behind us
    ("risk_averse", 16.0),
    ("power", 16 - 4 * 16 ** 2 / (14 ** 2 + 16 ** 2)),
    ("log", None),
])
def test_probabilistic_queue_models(impl, qm, expected):
    import math

    if expected is None:
        expected = 16 - 4 * math.log(17) / (math.log(15) + math.log(17))
    xm = model(impl, queue_model=qm, queue_power=2.0)
    xm.process(events((1, EV_DEPTH, 0, 100, 20, BE)))
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)                    # joins behind 20
    xm.process(events((3, EV_DEPTH, 0, 100, 30, BE)))            # 10 join behind us
    xm.process(events((4, EV_TRADE, 0, 100, 4, BE)))             # 20 -> 16 ahead
    assert xm.open_orders(0)[0][4] == 16.0
    xm.process(events((5, EV_DEPTH, 0, 100, 22, BE)))
    assert xm.open_orders(0)[0][4] == pytest.approx(expected, rel=1e-12)


def test_fractional_queue_estimate_fills_only_whole_lots(impl):
    xm = model(impl, queue_model="power", queue_power=2.0)
    xm.process(events((1, EV_DEPTH, 0, 100, 20, BE)))
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((3, EV_DEPTH, 0, 100, 30, BE), (4, EV_TRADE, 0, 100, 4, BE), (5, EV_DEPTH, 0, 100, 22, BE)))
    q = xm.open_orders(0)[0][4]
    assert 13 < q < 14
    xm.process(events((6, EV_TRADE, 0, 100, 14, BE)))           # 0.27 lots beyond the estimate: no whole lot
    xm.process(events((7, EV_TRADE, 0, 100, 1, BE)))            # now one
    assert [r[2:6] for r in reports(xm)] == [(ACK, 100, 0, 3), (FILL, 100, 1, 2)]


def test_intensity_fill_model(impl):
    # A so large that the probability of a fill is 1 (to the last bit): the first end of a
    # depth message only starts the clock, the next fills
    xm = model(impl, fill_model="intensity", fill_A=1e12, fill_k=1.0)
    xm.submit(0, 1, 0, 99, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 0, 98, 1, BE)))
    assert [r[2] for r in reports(xm)] == [ACK]
    xm.process(events((6, EV_DEPTH, 0, 98, 2, BE)))
    assert reports(xm) == [(8, 1, FILL, 99, 3, 0, 0)]
    # and so small that it never fills; trades and crossings do not fill in this model
    xm = model(impl, fill_model="intensity", fill_A=1e-12, fill_k=1.0)
    xm.submit(0, 1, 0, 100, 3, True, T0 + MS)
    xm.process(events((5, EV_DEPTH, 0, 98, 1, BE), (6, EV_TRADE, 0, 99, 5, BE), (7, EV_DEPTH, 1, 100, 3, BE)))
    assert [r[2] for r in reports(xm)] == [ACK] and xm.position(0) == 0


def test_latencies_and_zero_latency(impl):
    xm = model(impl, entry_latency_ns=0, cancel_latency_ns=0, response_latency_ns=0)
    xm.submit(0, 1, 1, 103, 2, True, T0 + 3 * MS)
    xm.process(events((3, EV_DEPTH, 1, 103, 1, BE)))            # arrives at +3 ms, before the event at +3 ms
    assert reports(xm) == [(3, 1, ACK, 103, 0, 2, 0)]
    assert xm.open_orders(0)[0][4] == 0.0                       # first at 103: the lot added after is behind us
    xm = model(impl, entry_latency_ns=7 * MS, response_latency_ns=3 * MS)
    xm.submit(0, 1, 1, 103, 2, True, T0 + 3 * MS)
    xm.process(events((9, EV_DEPTH, 1, 103, 1, BE)))
    assert reports(xm) == []                                    # in flight until +10 ms
    xm.process(events((10, EV_DEPTH, 1, 103, 4, BE)))
    assert reports(xm) == [(13, 1, ACK, 103, 0, 2, 0)]


def test_accounts_share_the_book_and_are_independent(impl):
    book_cls, xm_cls = IMPLS[impl]
    p0 = exchange_params(TICK, LOT, entry_latency_ns=MS, response_latency_ns=MS)
    p1 = exchange_params(TICK, LOT, entry_latency_ns=4 * MS, response_latency_ns=2 * MS, maker_fee=-0.0001,
                         queue_model="log")
    flow = events((5, EV_TRADE, 0, 100, 6, BE), (6, EV_TRADE, 0, 100, 6, BE), (8, EV_DEPTH, 1, 100, 1, BE))

    def run(params):
        xm = xm_cls(book_cls(TICK, LOT), params)
        xm.process(BOOK)
        for a in range(xm.n_accounts):
            xm.submit(a, 7, 0, 100, 3, True, T0 + MS)
        xm.process(flow)
        return [(xm.take_reports(a).tobytes(), xm.take_fills(a).tobytes(), xm.counters(a)) for a in range(xm.n_accounts)]

    both = run([p0, p1])
    assert both == run(p0) + run(p1)
    assert both[0] != both[1]


def test_market_order_sweeps_the_visible_levels():
    """A flatten (a market order of the trader's kill switch) takes the levels best
    first at their prices; what the book does not hold expires (REJECTED)."""

    class Flatten:
        def __init__(self, lots):
            self.lots = lots

        def on_book(self, now):
            if not self.trader.killed:
                self.trader.inherit_position(self.lots)
                self.trader.kill()

    out = {}
    for name, (book_cls, xm_cls) in IMPLS.items():
        for lots in (-7, -15, 13):
            book = book_cls(TICK, LOT)
            xm = xm_cls(book, exchange_params(TICK, LOT, entry_latency_ns=MS, response_latency_ns=MS, taker_fee=0.002))
            tr = (Trader if name == "kernel" else ref.RefTrader)(trader_limits(TICK, LOT))
            st = (PyStrategy if name == "kernel" else ref.RefPyStrategy)(Flatten(lots))
            k = (ReplayKernel if name == "kernel" else ref.RefReplayKernel)(book, [(st, tr)], xm, -1, 0, True)
            k.run(BOOK)
            k.run(events((5, EV_DEPTH, 0, 90, 1, BE)))
            k.finish(T0 + 10 * MS)
            f = k.take_fills(0)
            out[name, lots] = (f.tobytes(), k.take_intents(0).tobytes(), k.counters(0), tr.position)
            got = [(int(r["px"]), int(r["qty"]), int(r["taker"])) for r in f]
            if lots == -7:      # buy 7: 4 at 101, 3 at 102
                assert got == [(101, 4, 1), (102, 3, 1)] and tr.position == 0 and k.counters(0)["rejects"] == 0
            elif lots == -15:   # buy 15: 4 + 6, the other 5 expire
                assert got == [(101, 4, 1), (102, 6, 1)] and tr.position == -5 and k.counters(0)["rejects"] == 1
            else:               # sell 13: 10 at 100, 3 at 99 (it arrives before the record at +5 ms)
                assert got == [(100, 10, 1), (99, 3, 1)] and tr.position == 0
            assert k.counters(0)["killed"] and k.counters(0)["kill_reason"] == "external"
    for lots in (-7, -15, 13):
        assert out["kernel", lots] == out["twin", lots]


def test_a_cancel_that_overtakes_its_order_is_not_reported_before_the_order(impl):
    """Entry latency 10 ms, cancel latency 1 ms: a crossing (not post-only) order sent
    at +1 ms reaches the exchange at +11 ms, takes 2 lots and rests; its cancel, sent at
    +2 ms, reached the exchange at +3 ms -- before the order. The model cancels the
    resting order at +3 ms: the CANCELED report (+4 ms) is queued before the order's
    own FILL and ACK (+12 ms), the lifetime counted is -8 ms, and a Trader that
    applies the reports in order releases the order on CANCELED and ignores its FILL
    (unknown id): its known position (0) is not the exchange's (2). (The twin mirrors
    the core as it is: fix both.)"""
    book_cls, xm_cls = IMPLS[impl]
    xm = xm_cls(book_cls(TICK, LOT), exchange_params(TICK, LOT, entry_latency_ns=10 * MS, cancel_latency_ns=MS,
                                                     response_latency_ns=MS))
    xm.process(snapshot(0, [(100, 10)], [(101, 2)]))
    xm.submit(0, 7, 0, 101, 5, False, T0 + MS)
    xm.cancel(0, 7, T0 + 2 * MS)
    xm.process(events((20, EV_DEPTH, 0, 100, 10, BE)))
    kinds = [int(r["kind"]) for r in xm.take_reports(0)]
    assert xm.counters(0)["lifetime_sum_ns"] >= 0
    assert kinds == [FILL, ACK, CANCELED]
