"""The pre-trade limits (hftcore.strategy.Trader: one copy for backtest, paper and
live) and the live session's supervisor (hftmm.strategy.risk.RiskManager)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from hftcore.exchange import ACK, CANCELED, FILL, REJECTED
from hftcore.strategy import CANCEL, NEW, Trader, trader_limits

from hftmm.config import RiskConfig
from hftmm.strategy import core
from hftmm.strategy.risk import NS_PER_S, RiskManager

MS = 1_000_000
T0 = int(datetime(2024, 3, 1, 12, tzinfo=timezone.utc).timestamp()) * NS_PER_S
TICK, LOT = 0.01, 0.001           # price units per tick, base units per lot


def trader(**lim) -> Trader:
    base = dict(max_lots=10, max_sends=0, max_daily_loss=0.0, max_drawdown=0.0, capital=10_000.0)
    base.update(lim)
    return Trader(trader_limits(TICK, LOT, **base))


def fill(t: Trader, oid: int, lots: int, ts: int = T0, px: int | None = None, fee: float = 0.0) -> None:
    o = t.order(oid)
    assert t.on_report(ts, oid, FILL, o["px"] if px is None else px, lots, o["qty"] - o["filled"] - lots, fee)


# ---------------------------------------------------------------- position limit
def test_buy_room_counts_open_buys_and_not_open_sells():
    t = trader(max_lots=10)
    assert t.new(0, 5000, 4, now=T0) and t.new(0, 4999, 3, now=T0)
    assert t.room(0) == 3 and t.open_lots(0) == 7
    # a larger order is clipped to the room left, then nothing fits
    b = t.new(0, 4998, 9, now=T0)
    assert t.order(b)["qty"] == 3
    assert t.new(0, 4997, 1, now=T0) == 0 and t.refusal == "position limit"
    # open sells do not make room for buys (they might never fill)
    assert t.new(1, 5010, 10, now=T0)
    assert t.new(0, 4990, 1, now=T0) == 0
    # a fill moves lots from open to position; a cancel frees them
    fill(t, b, 3)
    assert t.position == 3 and t.open_lots(0) == 7 and t.room(0) == 0
    assert t.room(1) == 10 + 3 - 10
    assert t.on_report(T0, t.working(0)[0][0], CANCELED)
    assert t.room(0) == 4


def test_reducing_orders_pass_over_the_limit():
    t = trader(max_lots=5)
    t.inherit_position(8)                         # held before the session, above the limit
    assert t.new(0, 5000, 1, now=T0) == 0 and t.refusal == "position limit"
    s = t.new(1, 5001, 8, now=T0)
    assert s and t.order(s)["qty"] == 8          # a sell may take it down through 0 to -5
    assert t.room(1) == 5 + 8 - 8


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell", "fill", "cancel", "reject", "replace"]),
                          st.integers(1, 7), st.integers(0, 50)), max_size=80))
def test_no_sequence_of_orders_and_reports_can_breach_the_position_limit(ops):
    """Whatever the strategy sends and whatever the exchange answers, the position
    stays within the limit: every order not known done is counted as filled."""
    lim = 6
    t = trader(max_lots=lim)
    live: dict[int, list[int]] = {}          # id -> [side, qty, filled]
    for op, lots, pick in ops:
        if op in ("buy", "sell"):
            oid = t.new(0 if op == "buy" else 1, 5000, lots, now=T0)
            if oid:
                live[oid] = [0 if op == "buy" else 1, t.order(oid)["qty"], 0]
        elif live:
            oid = sorted(live)[pick % len(live)]
            side, qty, filled = live[oid]
            if op == "fill":
                n = min(lots, qty - filled)
                t.on_report(T0, oid, FILL, 5000, n, qty - filled - n)
                live[oid][2] += n
                if live[oid][2] >= qty:
                    del live[oid]
            elif op == "cancel":
                t.cancel(oid, now=T0)
                if pick % 2:                  # the exchange confirms (else it may still fill)
                    t.on_report(T0, oid, CANCELED)
                    del live[oid]
            elif op == "reject":
                t.on_report(T0, oid, REJECTED)
                del live[oid]
            elif op == "replace":
                nid = t.replace(oid, 4999, lots, now=T0)
                if nid:
                    live[nid] = [side, t.order(nid)["qty"], 0]
        assert t.position + t.open_lots(0) <= lim
        assert t.position - t.open_lots(1) >= -lim
        # the worst case is reachable: fill everything open
        assert abs(t.position) <= lim


# ---------------------------------------------------------------- order rate
def test_rate_window_slides_and_a_replace_counts_as_one_order():
    t = trader(max_sends=3)
    a = t.new(0, 5000, 1, now=T0)
    b = t.new(1, 5010, 1, now=T0 + 100 * MS)
    assert a and b and t.budget(now=T0 + 100 * MS) == 1
    assert t.cancel(a, now=T0 + 150 * MS)               # cancels do not count
    r = t.replace(b, 5011, 1, now=T0 + 200 * MS)        # one request: one order
    assert r and t.budget(now=T0 + 200 * MS) == 0
    assert t.new(0, 5000, 1, now=T0 + 300 * MS) == 0 and t.refusal == "rate limit"
    assert t.replace(r, 5012, 1, now=T0 + 300 * MS) == 0 and t.refusal == "rate limit"
    # nothing was done by the refused replace: the order is still working
    assert t.working(1)[0][0] == r
    # a second after the first send, one slot is free again
    assert t.budget(now=T0 + NS_PER_S + 1) == 1
    assert t.new(0, 5000, 1, now=T0 + NS_PER_S + 1)
    assert t.counters()["refused_rate"] == 2


# ---------------------------------------------------------------- sizes
def test_order_size_limits():
    t = Trader(trader_limits(TICK, LOT, min_lots=2, max_order_lots=5, min_notional=5.0))
    assert t.new(0, 5000, 1, now=T0) == 0 and t.refusal == "order size"
    oid = t.new(0, 5_000_000, 9, now=T0)
    assert t.order(oid)["qty"] == 5                     # clipped to the largest order
    # 2 lots x 0.001 x 2000 ticks x 0.01 = 0.04 < 5.0 notional
    assert t.new(0, 2000, 2, now=T0) == 0 and t.refusal == "order size"
    with pytest.raises(ValueError, match="lots"):
        t.new(0, 5000, 0)
    with pytest.raises(ValueError, match="side"):
        t.new(2, 5000, 1)


# ---------------------------------------------------------------- reports
def test_fills_update_position_cash_and_fees_and_unknown_reports_are_ignored():
    t = trader()
    b = t.new(0, 5000, 4, now=T0)
    assert t.on_report(T0, b, ACK) and t.order(b)["state"] == "open"
    fill(t, b, 1, fee=0.01)
    fill(t, b, 3, px=4999, fee=0.02)
    assert t.order(b) is None                           # done on its last fill
    assert t.position == 4
    assert t.cash == pytest.approx(-(5000 * 1 + 4999 * 3) * TICK * LOT - 0.03)
    assert t.fees == pytest.approx(0.03)
    assert not t.on_report(T0, b, FILL, 5000, 1, 0)     # a late duplicate: unknown now
    assert not t.on_report(T0, 12345, ACK)
    assert t.position == 4


# ---------------------------------------------------------------- loss limits, kill
def test_daily_loss_kills_cancels_and_flattens():
    t = trader(max_daily_loss=1.0)
    b = t.new(0, 5_000_000, 10, now=T0)
    fill(t, b, 10)
    t.mark(T0, 50_000.0)
    s = t.new(1, 5100, 5, now=T0)
    t.take_intents()
    t.mark(T0 + 1, 49_910.0)                              # 0.01 BTC x -90: a loss of 0.9
    assert not t.killed and t.daily_loss == pytest.approx(0.9)
    t.mark(T0 + 2, 49_890.0)                              # 1.1 >= 1.0
    assert t.killed and t.kill_reason_name == "max_daily_loss" and not t.enabled
    out = t.take_intents()
    assert [int(k) for k in out["kind"]] == [CANCEL, NEW]
    assert int(out["id"][0]) == s
    assert int(out["side"][1]) == 1 and int(out["lots"][1]) == 10 and int(out["flags"][1]) & 2  # market sell
    assert t.new(0, 4000, 1, now=T0 + 3) == 0 and t.refusal == "disabled"
    t.pause(False, now=T0 + 4)                         # a kill is sticky
    assert not t.enabled


def test_daily_loss_restarts_at_midnight_utc():
    t = trader(max_daily_loss=1.0)
    day = 86_400 * NS_PER_S
    t0 = (T0 // day) * day + day - NS_PER_S            # one second before midnight
    b = t.new(0, 5_000_000, 10, now=t0)
    fill(t, b, 10, ts=t0)
    t.mark(t0, 50_000.0)
    t.mark(t0 + 1, 49_940.0)                              # 0.6 today
    t.mark(t0 + 2 * NS_PER_S, 49_940.0)                   # a new day starts from here
    t.mark(t0 + 3 * NS_PER_S, 49_880.0)                   # 0.6 more: 1.2 from the start, 0.6 today
    assert not t.killed and t.daily_loss == pytest.approx(0.6)


def test_drawdown_fraction_and_absolute_from_the_peak():
    t = trader(max_drawdown=0.0001, capital=10_000.0)   # 1.0 of 10,000
    b = t.new(0, 5_000_000, 10, now=T0)
    fill(t, b, 10)
    t.mark(T0, 50_000.0)
    t.mark(T0 + 1, 50_050.0)                                # peak +0.5 (equity 10,000.5)
    t.mark(T0 + 2, 49_960.0)                              # 0.9 below the peak
    assert not t.killed and t.drawdown == pytest.approx(0.9)
    t.mark(T0 + 3, 49_945.0)                              # 1.05 / 10,000.5 >= 0.0001
    assert t.killed and t.kill_reason_name == "max_drawdown"
    u = Trader(trader_limits(TICK, LOT, max_lots=10, max_drawdown_abs=0.5, flatten_on_kill=False))
    b = u.new(0, 5_000_000, 10, now=T0)
    fill(u, b, 10)
    u.mark(T0, 50_000.0)
    u.mark(T0 + 1, 49_950.0)
    u.take_intents()
    assert u.killed and u.kill_reason_name == "max_drawdown_abs"
    assert not len(u.take_intents())                    # no flattening when not asked


def test_inherited_position_is_no_gain_or_loss():
    t = trader(max_daily_loss=1.0)
    t.inherit_position(10)
    t.mark(T0, 50_000.0)
    assert t.last_pnl == pytest.approx(0.0)
    t.mark(T0 + 1, 50_005.0)
    assert t.last_pnl == pytest.approx(0.05)             # 0.01 BTC x +5


def test_external_kill_and_flatten_later():
    t = trader()
    b = t.new(0, 5000, 3, now=T0)
    fill(t, b, 3)
    t.take_intents()
    t.kill(now=T0, flatten=False)
    assert t.killed and t.kill_reason_name == "external"
    assert not len(t.take_intents())
    oid = t.flatten(now=T0 + 1)
    out = t.take_intents()
    assert oid and int(out["kind"][0]) == NEW and int(out["side"][0]) == 1 and int(out["lots"][0]) == 3


def test_book_invalid_cancels_everything_and_refuses_until_valid():
    t = trader()
    a, b = t.new(0, 5000, 1, now=T0), t.new(1, 5010, 1, now=T0)
    t.take_intents()
    t.set_book_valid(False, now=T0 + 1)
    out = t.take_intents()
    assert sorted(int(x) for x in out["id"]) == sorted([a, b]) and set(out["kind"]) == {CANCEL}
    assert t.new(0, 5000, 1, now=T0 + 2) == 0 and t.refusal == "book invalid"
    t.set_book_valid(True, now=T0 + 3)
    assert t.new(0, 5000, 1, now=T0 + 3)


def test_config_to_trader_limits():
    r = RiskConfig(max_position=0.0105, max_orders_per_second=7.9, max_daily_loss=50.0, max_drawdown=0.02,
                   max_drawdown_abs=30.0, initial_capital=5000.0, flatten_on_kill=False)
    lim = core.trader(r, TICK, LOT).limits
    assert lim["max_lots"] == 10 and lim["max_sends"] == 7          # floors: never more than configured
    assert lim["max_daily_loss"] == 50.0 and lim["max_drawdown"] == 0.02 and lim["max_drawdown_abs"] == 30.0
    assert lim["capital"] == 5000.0 and lim["flatten_on_kill"] is False
    assert core.trader(RiskConfig(max_orders_per_second=None), TICK, LOT).limits["max_sends"] == 0


# ---------------------------------------------------------------- the live supervisor
class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> int:
        self.t += int(seconds * NS_PER_S)
        return self.t


def ready(**cfg) -> tuple[RiskManager, Clock, list, Trader]:
    """A manager bound to a trader, book synced and feed fresh (state ok)."""
    clk = Clock()
    kills: list = []
    base = dict(max_position=0.01, latency_threshold_ms=500.0, max_orders_per_second=10.0)
    base.update(cfg)
    risk = RiskConfig(**base)
    tr = core.trader(risk, TICK, LOT)
    rm = RiskManager(risk, clock=clk, trader=tr, on_kill=lambda r, f: kills.append((r, f)))
    assert rm.state == "paused" and not tr.enabled                 # nothing known yet
    rm.on_book_state(True)
    rm.on_feed(clk.t - 1 * MS, clk.t)
    assert rm.state == "ok" and rm.can_quote and tr.enabled
    rm.take_events()
    return rm, clk, kills, tr


def test_round_trip_latency_pauses_the_trader_and_resumes():
    rm, clk, _, tr = ready()
    oid = tr.new(0, 5000, 1, now=clk.t)
    tr.take_intents()
    for _ in range(10):
        rm.on_round_trip(900.0)
    assert rm.state == "paused" and "order rtt" in rm.reasons[0]
    assert not tr.enabled and tr.order(oid)["state"] == "canceling"
    assert int(tr.take_intents()["kind"][0]) == CANCEL
    # healthy again: resumes after resume_after_s (5 s) of good measurements
    clk.advance(3.0)
    for _ in range(10):
        rm.on_round_trip(5.0)
        rm.on_feed(clk.t - MS, clk.t)
    assert rm.state == "paused"
    clk.advance(5.5)
    rm.on_feed(clk.t - MS, clk.t)
    assert rm.state == "ok" and tr.enabled
    ev = rm.take_events()
    assert ev[0][1] == "pause" and "order rtt" in ev[0][2]
    assert ev[-1][1] == "resume" and "order rtt" in ev[-1][2]


def test_feed_latency_p90_and_stale_feed_pause():
    rm, clk, _, tr = ready()
    for i in range(10):
        rm.on_feed(clk.t - (800 if i == 9 else 10) * MS, clk.t)
    assert rm.state == "ok"                                         # p90 of 11: one slow one is not enough
    for _ in range(5):
        rm.on_feed(clk.t - 800 * MS, clk.t)
    assert rm.state == "paused" and "feed latency" in rm.reasons[0]
    rm2, clk2, _, _ = ready()
    clk2.advance(2.1)                                               # 4 x 500 ms without a message
    assert rm2.state_at() == "paused" and "stale" in rm2.reasons[0]
    rm2.on_message(clk2.t)
    assert rm2.state_at() == "ok"


def test_book_condition_can_be_left_to_the_driver():
    clk = Clock()
    tr = core.trader(RiskConfig(), TICK, LOT)
    rm = RiskManager(RiskConfig(), clock=clk, trader=tr, watch_book=False)
    rm.on_message(clk.t)                                            # paper: the first message enables it
    assert rm.state == "ok" and tr.enabled
    rm.on_book_state(False)
    assert rm.state == "ok"


def test_external_conditions():
    rm, _, _, tr = ready()
    rm.set_condition("user_stream", "user data stream down")
    assert rm.state == "paused" and rm.reasons == ["user data stream down"] and not tr.enabled
    rm.set_condition("user_stream", None)
    assert rm.state == "ok" and tr.enabled


def test_kill_is_sticky_idempotent_and_kills_the_trader():
    rm, clk, kills, tr = ready()
    b = tr.new(0, 5000, 2, now=clk.t)
    tr.on_report(clk.t, b, FILL, 5000, 2, 0)
    tr.take_intents()
    assert rm.kill("operator", flatten=False, source="command")
    assert not rm.kill("again")
    assert rm.state == "killed" and tr.killed and kills == [("operator", False)]
    assert not len(tr.take_intents())
    # asking to flatten after the kill sends the market order once
    assert rm.kill("close it", flatten=True)
    out = tr.take_intents()
    assert len(out) == 1 and int(out["side"][0]) == 1 and int(out["lots"][0]) == 2
    assert kills[-1] == ("close it", True)
    assert rm.reset_kill() and rm.state == "ok"
    assert tr.killed and not tr.enabled                             # the trader stays killed
    ev = [e[1] for e in rm.take_events()]
    assert ev.count("kill") == 2 and "kill_reset" in ev


def test_a_loss_limit_the_trader_trips_is_reported_once():
    rm, clk, kills, tr = ready(max_daily_loss=0.5)
    b = tr.new(0, 5000, 10, now=clk.t)
    tr.on_report(clk.t, b, FILL, 5000, 10, 0)
    tr.mark(clk.t, 50_000.0)
    tr.mark(clk.t + 1, 49_900.0)
    assert tr.killed and not rm.killed
    assert rm.sync_trader() and not rm.sync_trader()
    assert rm.state == "killed" and "daily loss 1.00 >= max_daily_loss 0.5" in rm.kill_reason
    assert kills == [(rm.kill_reason, True)]


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        RiskManager({"max_position": 1})
    for kw in ({"feed_stale_ms": 0}, {"resume_after_s": float("nan")}, {"latency_window_s": -1}):
        with pytest.raises(ValueError):
            RiskManager(RiskConfig(), **kw)


def test_status_keys_match_the_state_schema():
    from hftmm.live.schema import STATUS_COLUMNS

    rm, _, _, tr = ready()
    st = rm.status()
    assert set(RiskManager.PUBLISH_KEYS) <= set(STATUS_COLUMNS)
    assert st["risk_state"] == "ok" and st["orders_sent"] == 0 and st["daily_loss"] == 0.0
    assert set(rm.publish_fields()) == set(RiskManager.PUBLISH_KEYS)
