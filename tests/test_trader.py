"""hftcore.strategy.Trader and MarketMaker on hand-made sequences, each on the
compiled core and on its twin (tests/reference/replay.py) with the expected
intents stated by hand: the order-rate ring (a replace counts one, a cancel
none), the position-limit room with orders in flight, reports, the kill switch
and loss limits, and the market maker's fair share of a binding rate budget (a
side with nothing working first, then the side further from its quote, ties
alternate; a rate-refused replace keeps the old order, a position-refused one
cancels it)."""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

from hftcore import EVENT_DTYPE, EV_DEPTH, EV_SNAPSHOT, EVF_BEGIN, EVF_END
from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftcore.exchange import ACK, CANCELED, FILL, REJECTED, ExchangeModel, exchange_params
from hftcore.strategy import CANCEL, NEW, REPLACE, MarketMaker, Trader, market_maker_params, trader_limits
from hftmm.reference.book import RefL2Book

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import replay as ref  # noqa: E402

MS = 1_000_000
S = 1_000_000_000
T0 = 1_000 * S
TICK, LOT = 0.5, 0.01
TRADERS = {"kernel": Trader, "twin": ref.RefTrader}
MARKET = 2   # XM_MARKET


@pytest.fixture(params=list(TRADERS))
def impl(request):
    return request.param


def trader(impl, **kw):
    return TRADERS[impl](trader_limits(TICK, LOT, **kw))


def intents(t) -> list[tuple]:
    """(ms after T0, kind, side, id, cancel_id, px, lots, flags) of the intents since the last call."""
    return [((int(i["ts"]) - T0) / MS, int(i["kind"]), int(i["side"]), int(i["id"]), int(i["cancel_id"]),
             int(i["px"]), int(i["lots"]), int(i["flags"])) for i in t.take_intents()]


def test_order_rate_ring_counts_new_orders_and_replaces_not_cancels(impl):
    t = trader(impl, max_sends=3)
    a = t.new(0, 100, 1, now=T0)
    b = t.new(1, 110, 1, now=T0 + 100 * MS)
    assert t.budget(T0 + 150 * MS) == 1
    c = t.new(1, 111, 1, now=T0 + 200 * MS)
    assert a and b and c and t.budget(T0 + 300 * MS) == 0
    assert t.new(0, 99, 1, now=T0 + 500 * MS) == 0 and t.refusal == "rate limit"
    assert t.cancel(c, now=T0 + 500 * MS) and t.budget(T0 + 500 * MS) == 0      # a cancel is no order
    # the first send leaves the window exactly one second later
    assert t.budget(T0 + S - 1) == 0 and t.budget(T0 + S) == 1
    d = t.new(0, 98, 1, now=T0 + S)
    assert d and t.budget(T0 + S + 50 * MS) == 0
    # a replace refused by the rate: nothing is done, the old order keeps working
    assert t.replace(a, 101, 1, now=T0 + S + 50 * MS) == 0 and t.refusal == "rate limit"
    assert t.working(0) == [(a, 100, 1, 0), (d, 98, 1, 0)] and t.order(a)["state"] == "pending"
    # one order more once the second send has left the window: a replace counts one
    assert t.budget(T0 + S + 100 * MS) == 1
    e = t.replace(a, 101, 1, now=T0 + S + 100 * MS)
    assert e and t.budget(T0 + S + 100 * MS) == 0 and t.order(a)["state"] == "canceling"
    assert t.working(0) == [(d, 98, 1, 0), (e, 101, 1, 0)]
    assert intents(t) == [(0, NEW, 0, a, 0, 100, 1, 1), (100, NEW, 1, b, 0, 110, 1, 1), (200, NEW, 1, c, 0, 111, 1, 1),
                          (500, CANCEL, 1, c, 0, 111, 1, 1), (1000, NEW, 0, d, 0, 98, 1, 1),
                          (1100, REPLACE, 0, e, a, 101, 1, 1)]
    cnt = t.counters()
    assert (cnt["sent"], cnt["replaces"], cnt["cancels"], cnt["refused_rate"]) == (5, 1, 2, 2)


def test_position_room_holds_with_every_order_in_flight_filled(impl):
    t = trader(impl, max_lots=10)
    a = t.new(0, 100, 6, now=T0)
    assert t.room(0) == 4 and t.room(1) == 10 and t.open_lots(0) == 6
    b = t.new(0, 99, 6, now=T0)                     # cut to the room left
    assert t.order(b)["qty"] == 4 and t.room(0) == 0
    assert t.new(0, 98, 1, now=T0) == 0 and t.refusal == "position limit"
    # fills make the position; the room does not change (an open lot became a held one)
    assert t.on_report(T0 + 5 * MS, a, FILL, 100, 4, 2, 0.0)
    assert t.position == 4 and t.open_lots(0) == 6 and t.room(0) == 0
    assert t.room(1) == 14                          # selling may go to -10 from +4
    assert t.order(a)["state"] == "open"            # a fill acknowledges a pending order
    # the cancelled order's lots come back
    assert t.cancel(b, now=T0 + 6 * MS) and t.room(0) == 0          # still in flight: still counted
    assert t.on_report(T0 + 8 * MS, b, CANCELED, 99, 0, 4)
    assert t.room(0) == 4 and t.open_lots(0) == 2
    s = t.new(1, 105, 20, now=T0 + 9 * MS)
    assert t.order(s)["qty"] == 14
    # a replace counts its own order's lots until the cancel is known: with no room left
    # it is refused by the position limit and changes nothing
    assert t.replace(s, 106, 14, now=T0 + 10 * MS) == 0 and t.refusal == "position limit"
    assert t.order(s)["state"] == "pending" and t.working(1) == [(s, 105, 14, 0)]


def test_reports_update_the_known_state(impl):
    t = trader(impl)
    a = t.new(1, 100, 5, now=T0)
    assert t.on_report(T0 + MS, a, ACK) and t.order(a)["state"] == "open"
    assert t.on_report(T0 + 2 * MS, a, FILL, 100, 2, 3, 0.001, True)
    assert t.position == -2 and t.cash == 100 * TICK * 2 * LOT - 0.001 and t.fees == 0.001
    assert t.cancel(a, now=T0 + 3 * MS) and t.working(1) == []
    # the cancel raced a fill and lost: the fill of the rest settles the order
    assert t.on_report(T0 + 4 * MS, a, FILL, 100, 3, 0, 0.0)
    assert t.order(a) is None and t.position == -5 and t.open_lots(1) == 0
    assert not t.on_report(T0 + 5 * MS, a, CANCELED)            # (unknown id: ignored)
    b = t.new(0, 90, 1, now=T0 + 6 * MS)
    assert t.on_report(T0 + 7 * MS, b, REJECTED) and t.order(b) is None
    c = t.counters()
    assert (c["fills"], c["rejects"], c["lifetime_count"], c["lifetime_sum_ns"]) == (2, 1, 2, 4 * MS + MS)


def test_size_and_notional_bounds(impl):
    t = TRADERS[impl](trader_limits(TICK, LOT, min_lots=3, max_order_lots=5, min_notional=2.0))
    assert t.new(0, 100, 2, now=T0) == 0 and t.refusal == "order size"
    a = t.new(0, 100, 9, now=T0)                    # cut to 5; 100 x 0.5 x 5 x 0.01 = 2.5 >= 2
    assert t.order(a)["qty"] == 5
    assert t.new(0, 70, 5, now=T0) == 0 and t.refusal == "order size"     # 1.75 < 2


def test_notional_limit_holds_with_every_order_filled_at_the_new_orders_price(impl):
    """max_notional [quote]: |position + open lots of the side| x the order's price at most it."""
    t = TRADERS[impl](trader_limits(TICK, LOT, max_notional=4.0))
    # at 100 ticks a lot is 100 x TICK x LOT quote: 4.0 of notional is int(4 / that) lots
    nl = int(4.0 / (100.0 * TICK * LOT))
    a = t.new(0, 100, nl + 7, now=T0)
    assert t.order(a)["qty"] == nl                                # cut to the notional room
    assert t.new(0, 100, 1, now=T0) == 0 and t.refusal == "position limit"
    assert t.on_report(T0 + MS, a, FILL, 100, nl, 0, 0.0) and t.position == nl
    b = t.new(1, 100, 3 * nl, now=T0 + 2 * MS)                    # selling may go to -nl from +nl
    assert t.order(b)["qty"] == 2 * nl
    assert t.counters()["refused_position"] == 1


def test_book_invalid_and_pause(impl):
    t = trader(impl)
    a = t.new(0, 100, 1, now=T0)
    t.set_book_valid(False, now=T0 + MS)
    assert t.order(a)["state"] == "canceling" and t.new(0, 100, 1, now=T0 + MS) == 0
    assert t.refusal == "book invalid"
    t.set_book_valid(True, now=T0 + 2 * MS)
    t.pause(True, now=T0 + 2 * MS)
    assert t.new(0, 100, 1, now=T0 + 2 * MS) == 0 and t.refusal == "disabled"
    t.pause(False, now=T0 + 3 * MS)
    assert t.new(0, 100, 1, now=T0 + 3 * MS)


def test_loss_limits_trip_the_kill_switch_and_flatten(impl):
    t = trader(impl, max_daily_loss=1.0, capital=100.0)
    a = t.new(0, 100, 200, post_only=False, now=T0)
    assert t.on_report(T0 + MS, a, FILL, 100, 200, 0, 0.0)         # bought 200 lots at 50.0: cash -100
    b = t.new(1, 120, 5, now=T0 + MS)
    t.take_intents()
    t.mark(T0 + 2 * MS, 50.0)                                     # PnL 0
    assert not t.killed and t.last_pnl == 0.0
    t.mark(T0 + 3 * MS, 49.75)                                    # PnL -0.5
    assert not t.killed
    t.mark(T0 + 4 * MS, 49.5)                                     # PnL -1.0: the day's loss limit
    assert t.killed and t.kill_reason_name == "max_daily_loss" and not t.enabled
    got = intents(t)
    assert got[0] == (4, CANCEL, 1, b, 0, 120, 5, 1)                # the quote cancelled, and a market
    assert len(got) == 2 and got[1][:3] == (4, NEW, 1) and got[1][4:] == (0, 0, 200, MARKET)   # sell of 200
    assert t.new(0, 90, 1, now=T0 + 5 * MS) == 0 and t.refusal == "disabled"
    t.kill(now=T0 + 6 * MS)                                       # sticky: no second flatten
    t.pause(False)
    assert t.killed and not t.enabled and [i for i in intents(t) if i[1] == NEW] == []


def test_daily_loss_counts_from_the_day_start_and_drawdown_from_the_peak(impl):
    day = 86_400 * S
    t = trader(impl, max_daily_loss=1.0, max_drawdown=0.05, capital=100.0, flatten_on_kill=False)
    a = t.new(0, 100, 200, post_only=False, now=day)
    t.on_report(day + MS, a, FILL, 100, 200, 0, 0.0)
    t.take_intents()
    t.mark(day + 2 * MS, 50.0)          # PnL 0
    t.mark(day + 3 * MS, 49.75)         # -0.5
    t.mark(2 * day, 49.75)              # a new UTC day starts at the last PnL (-0.5)
    t.mark(2 * day + MS, 49.5)          # -1.0: 0.5 lost today, not 1.0
    assert not t.killed
    t.mark(2 * day + 2 * MS, 52.0)      # peak PnL +4: peak equity 104
    t.mark(2 * day + 3 * MS, 50.0)      # 0: drawdown 4/104 < 5 %
    assert not t.killed
    t.mark(2 * day + 4 * MS, 49.3)      # -1.4: drawdown 5.4/104 > 5 %, the day's loss 0.9 < 1
    assert t.killed and t.kill_reason_name == "max_drawdown" and t.take_intents()["kind"].tolist() == []


# --------------------------------------------------------------------------- the market maker's budget share

BOOK_TICK = 1.0
#: quotes at the mid -/+ 5 ticks (rounded outward): min_spread 10 price units, a
#: risk aversion and an intensity that make the model's own spread and skew ~1e-6
MM = dict(order_lots=1, gamma=1e-9, k=1e6, A=1.0, min_spread=10.0, requote_interval_ns=10 * MS, requote_threshold=1,
          estimate_intensity=False, vol_half_life_s=60.0)


def _events(*msgs) -> np.ndarray:
    """(ms after T0, kind, [(side, px, qty), ...]): one message each (BEGIN..END), received 1 ms later."""
    rows = []
    for t, kind, levels in msgs:
        for i, (side, px, qty) in enumerate(levels):
            fl = (EVF_BEGIN if i == 0 else 0) | (EVF_END if i == len(levels) - 1 else 0)
            rows.append((T0 + t * MS + MS, T0 + t * MS, px, qty, 0, 0, 0, kind, side, fl))
    a = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, r in enumerate(rows):
        a[i] = r
    return a


def _mm_kernel(impl, limits: dict, xm_kw: dict | None = None, mm_kw: dict | None = None):
    xp = exchange_params(BOOK_TICK, 1.0, **{**dict(entry_latency_ns=MS, cancel_latency_ns=MS, response_latency_ns=MS),
                                             **(xm_kw or {})})
    mp = market_maker_params(BOOK_TICK, 1.0, **{**MM, **(mm_kw or {})})
    lim = trader_limits(BOOK_TICK, 1.0, **limits)
    if impl == "kernel":
        book = L2Book(BOOK_TICK, 1.0)
        return ReplayKernel(book, [(MarketMaker(mp), Trader(lim))], ExchangeModel(book, xp), -1, 0, True)
    book = RefL2Book(BOOK_TICK, 1.0)
    return ref.RefReplayKernel(book, [(ref.RefMarketMaker(mp), ref.RefTrader(lim))], ref.RefExchangeModel(book, xp),
                               -1, 0, True)


FAIR_SHARE = _events(
    (0, EV_SNAPSHOT, [(0, 1000, 5), (1, 1002, 5)]),                     # mid 1001: the volatility's first mid
    (20, EV_DEPTH, [(1, 1002, 0), (1, 1003, 5)]),                        # 1001.5: quotes 996 / 1007
    (500, EV_DEPTH, [(0, 1000, 6)]),                                     # the same mid; no budget
    (1100, EV_DEPTH, [(0, 1000, 0), (0, 1002, 5), (1, 1003, 0), (1, 1005, 5)]),   # 1003.5: 998 / 1009
    (2200, EV_DEPTH, [(0, 1002, 0), (0, 1003, 5), (1, 1005, 0), (1, 1006, 5)]),   # 1004.5: 999 / 1010
    (3300, EV_DEPTH, [(0, 1003, 0), (0, 1004, 5)]),                      # 1005: 1000 / 1010
    (4400, EV_DEPTH, [(1, 1006, 0), (1, 1007, 5)]),                      # 1005.5: 1000 / 1011
)


@pytest.mark.parametrize("name", ["kernel", "twin"])
def test_market_maker_shares_a_binding_rate_budget_fairly(name):
    """One order a second: the first quote (both sides empty, a tie) goes to the bid
    (the ask was served last by convention); with the bid working and the ask empty,
    the ask first although the bid is off by 2 ticks; with both working, the side
    further from its quote (bid 3 ticks vs ask 1); at equal distances they take
    turns (ask, then bid). A side without budget keeps its order: no cancel at all."""
    k = _mm_kernel(name, dict(max_sends=1))
    k.run(FAIR_SHARE)
    k.finish(T0 + 5 * S)
    it = k.take_intents(0)
    got = [((int(i["ts"]) - T0) // MS, int(i["kind"]), int(i["side"]), int(i["px"])) for i in it]
    assert got == [(21, NEW, 0, 996), (1101, NEW, 1, 1009), (2201, REPLACE, 0, 999), (3301, REPLACE, 1, 1010),
                   (4401, REPLACE, 0, 1000)]
    ids = [int(i["id"]) for i in it]
    assert [int(i["cancel_id"]) for i in it[2:]] == [ids[0], ids[1], ids[2]]
    mm, tr = k.agent(0)
    assert mm.budget_short == 5 and tr.counters()["refused_rate"] == 0 and tr.counters()["cancels"] == 3
    assert [w[1] for w in tr.working(0)] == [1000] and [w[1] for w in tr.working(1)] == [1010]


@pytest.mark.parametrize("name", ["kernel", "twin"])
def test_market_maker_cancels_when_the_position_limit_refuses_a_replace(name):
    """max_lots = the order size: a replace would have the old and the new order open
    at once, so the limit refuses it and the old order is cancelled (not left where the
    quote no longer is); once the cancel is known, a new order goes out."""
    k = _mm_kernel(name, dict(max_lots=1))
    k.run(FAIR_SHARE[:4])                                     # the first two messages
    k.run(_events((100, EV_DEPTH, [(0, 1000, 0), (0, 1001, 5)]),          # mid 1002: 997 / 1007
                  (200, EV_DEPTH, [(0, 1001, 6)])))
    k.finish(T0 + S)
    got = [((int(i["ts"]) - T0) // MS, int(i["kind"]), int(i["side"]), int(i["px"])) for i in k.take_intents(0)]
    assert got == [(21, NEW, 0, 996), (21, NEW, 1, 1007), (101, CANCEL, 0, 996), (201, NEW, 0, 997)]
    c = k.counters(0)
    assert c["refused_position"] == 1 and c["replaces"] == 0


def test_fair_share_kernel_equals_twin():
    out = []
    for name in ("kernel", "twin"):
        k = _mm_kernel(name, dict(max_sends=1, max_lots=3), dict(maker_fee=0.001))
        k.run(FAIR_SHARE)
        k.finish(T0 + 5 * S)
        out.append((k.take_intents(0).tobytes(), k.take_fills(0).tobytes(), k.counters(0)))
    assert out[0] == out[1]


@pytest.mark.parametrize("name", ["kernel", "twin"])
def test_the_flatten_of_a_kill_is_not_a_working_quote(name):
    """A kill while the market maker quotes: its quotes are cancelled and a market
    order closes the position; at the next quote, while that order is still on its
    way (entry latency 20 ms), the market maker sees it as its working ask (price 0),
    tries to move it, is refused (disabled) and cancels it."""
    k = _mm_kernel(name, dict(flatten_on_kill=True), dict(entry_latency_ns=20 * MS), dict(requote_interval_ns=MS))
    k.run(FAIR_SHARE[:4])
    mm, tr = k.agent(0)
    tr.inherit_position(3)
    tr.kill()                                               # the operator's kill switch
    k.run(_events((25, EV_DEPTH, [(0, 1000, 0), (0, 1001, 5)])))
    it = k.take_intents(0)
    [flat] = [int(i["id"]) for i in it if i["flags"] & MARKET and i["kind"] == NEW]
    assert [w[0] for w in tr.working(1)] != [flat]          # the flatten is no quote ...
    assert not any(int(i["kind"]) == CANCEL and int(i["id"]) == flat for i in it)   # ... nor cancelled by one


def test_cancel_all_leaves_the_flatten_alone(impl):
    t = trader(impl)
    t.inherit_position(4)
    t.kill(now=T0)
    [flat] = intents(t)
    assert flat[1] == NEW and flat[7] == MARKET
    t.set_book_valid(False, now=T0 + MS)                     # (or pause, or a second kill)
    assert intents(t) == [] and t.working(1) == []


def test_twin_trader_api_matches(impl):
    t = trader(impl)
    assert t.limits == Trader(trader_limits(TICK, LOT)).limits
    assert t.refusal is None and t.kill_reason_name is None and math.isnan(t.last_pnl)
    assert t.budget(T0) == 2**63 - 1 and t.room(0) == 2**63 - 1
