"""Tests for the pre-trade risk manager (hftmm.strategy.risk)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, settings, strategies as st

from hftmm.config import RiskConfig
from hftmm.strategy.risk import NS_PER_S, RiskDecision, RiskManager, to_decimal

MS = 1_000_000
T0 = int(datetime(2024, 3, 1, 12, tzinfo=timezone.utc).timestamp()) * NS_PER_S


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> int:
        self.t += int(seconds * NS_PER_S)
        return self.t


def ready(**cfg: float) -> tuple[RiskManager, Clock, list]:
    """A manager whose book is synced and feed fresh (state ok)."""
    clk = Clock()
    kills: list = []
    base = dict(max_position=0.01, max_daily_loss=100.0, max_drawdown_abs=200.0,
                latency_threshold_ms=500.0, max_orders_per_second=10.0)
    base.update(cfg)
    rm = RiskManager(RiskConfig(**base), clock=clk, on_kill=lambda r, f: kills.append((r, f)))
    rm.on_book_state(True)
    rm.on_feed(clk.t - 1 * MS, clk.t)
    assert rm.state == "ok" and rm.can_quote
    rm.take_events()
    return rm, clk, kills


def check(rm: RiskManager, side: str, qty, pos=0, ob=0, osell=0, **kw) -> RiskDecision:
    return rm.check_order(side, 50000, qty, pos, ob, osell, **kw)


# ---------------------------------------------------------------- position limit
def test_buy_limit_counts_open_buys():
    rm, _, _ = ready()
    assert rm.allowed_qty("BUY", D("0.004"), D("0.003"), D("0.002"), 0) == D("0.004")
    assert rm.allowed_qty("BUY", D("0.006"), D("0.003"), D("0.002"), 0) == D("0.005")
    assert rm.allowed_qty("BUY", D("0.001"), D("0.005"), D("0.005"), 0) == 0
    # open sells do not make room for buys (they might never fill)
    assert rm.allowed_qty("BUY", D("0.001"), D("0.01"), 0, D("0.01")) == 0


def test_sell_limit_counts_open_sells():
    rm, _, _ = ready()
    assert rm.allowed_qty("SELL", D("0.01"), 0, 0, 0) == D("0.01")
    assert rm.allowed_qty("SELL", D("0.01"), D("-0.003"), 0, D("0.002")) == D("0.005")
    assert rm.allowed_qty("sell", D("0.001"), D("-0.01"), 0, 0) == 0


def test_floats_and_decimals_compare_exactly():
    rm, _, _ = ready(max_position=0.3)
    # 0.1 + 0.2 > 0.3 in binary floats; exact in Decimal via the shortest repr
    assert rm.allowed_qty("BUY", 0.1, 0.2, 0.0, 0.0) == D("0.1")
    assert rm.allowed_qty("BUY", D("0.1"), 0.1, 0.1, 0) == D("0.1")
    assert to_decimal(0.001) == D("0.001")
    with pytest.raises(ValueError):
        to_decimal(float("nan"))
    with pytest.raises(TypeError):
        to_decimal(True)


def test_reducing_orders_pass_when_over_the_limit():
    rm, _, _ = ready()
    # long 0.05 (five times the limit, e.g. the limit was lowered): buys refused, sells pass
    assert rm.allowed_qty("BUY", D("0.001"), D("0.05"), 0, 0) == 0
    assert rm.allowed_qty("SELL", D("0.05"), D("0.05"), 0, 0) == D("0.05")
    d = check(rm, "SELL", D("0.02"), pos=D("0.05"))
    assert d == RiskDecision(True, D("0.02"), "")


def test_check_order_clips_and_rounds_to_lot():
    clk = Clock()
    rm = RiskManager(RiskConfig(max_position=0.01), clock=clk, lot_size="0.001")
    rm.on_book_state(True)
    rm.on_feed(clk.t, clk.t)
    d = rm.check_order("BUY", 100, D("0.005"), D("0.0065"), 0, 0)
    assert d.allowed and d.qty == D("0.003") and d.reason.startswith("position limit: clipped")
    d = rm.check_order("BUY", 100, D("0.005"), D("0.01"), 0, 0)
    assert not d.allowed and d.qty == 0 and d.reason.startswith("position limit")
    assert rm.refusals["position"] == 1


def test_bad_arguments_raise():
    rm, _, _ = ready()
    with pytest.raises(ValueError, match="side"):
        check(rm, "HOLD", 1)
    with pytest.raises(ValueError, match="qty"):
        check(rm, "BUY", 0)
    with pytest.raises(ValueError, match="price"):
        rm.check_order("BUY", 0, 1, 0, 0, 0)
    with pytest.raises(TypeError):
        RiskManager({"max_position": 1})  # type: ignore[arg-type]


@st.composite
def scenario(draw):
    lot = D("0.001")
    max_lots = draw(st.integers(1, 20))
    start = draw(st.integers(-max_lots, max_lots))
    ops = draw(st.lists(st.one_of(
        st.tuples(st.just("send"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 25), st.booleans()),
        st.tuples(st.just("fill"), st.integers(0, 50), st.integers(1, 25)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("wait"), st.integers(1, 1500)),
    ), max_size=80))
    return lot, max_lots, start, ops


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_in_flight_orders_never_breach_the_limit(sc):
    """Every order goes through check_order; the exchange fills any open order (any part)
    at any time: the realised |position| never exceeds max_position."""
    lot, max_lots, start, ops = sc
    max_pos = lot * max_lots
    clk = Clock()
    rm = RiskManager(RiskConfig(max_position=float(max_pos), max_orders_per_second=5), clock=clk)
    rm.on_book_state(True)
    position = lot * start
    open_orders: list[list] = []  # [side, leaves]

    def open_qty(side: str) -> D:
        return sum((o[1] for o in open_orders if o[0] == side), D(0))

    for op in ops:
        rm.on_feed(clk.t, clk.t)
        if op[0] == "send":
            _, side, lots, as_float = op
            qty = lot * lots
            pos_arg = float(position) if as_float else position
            d = rm.check_order(side, 100, float(qty) if as_float else qty, pos_arg,
                               open_qty("BUY"), open_qty("SELL"))
            if d.allowed:
                assert 0 < d.qty <= qty
                rm.on_order_sent()
                open_orders.append([side, d.qty])
        elif op[0] == "fill" and open_orders:
            o = open_orders[op[1] % len(open_orders)]
            q = min(o[1], lot * op[2])
            position += q if o[0] == "BUY" else -q
            o[1] -= q
            if o[1] == 0:
                open_orders.remove(o)
        elif op[0] == "cancel" and open_orders:
            open_orders.pop(op[1] % len(open_orders))
        elif op[0] == "wait":
            clk.advance(op[1] / 1000)
        assert abs(position) <= max_pos
        # the worst case stays inside too
        assert position + open_qty("BUY") <= max_pos
        assert position - open_qty("SELL") >= -max_pos


# ---------------------------------------------------------------- daily loss, drawdown
def test_daily_loss_kills_and_resets_at_midnight_utc():
    clk = Clock(int(datetime(2024, 3, 1, 23, 59, tzinfo=timezone.utc).timestamp()) * NS_PER_S)
    kills: list = []
    rm = RiskManager(RiskConfig(max_daily_loss=100, max_drawdown_abs=1000), clock=clk,
                     on_kill=lambda r, f: kills.append(r))
    rm.on_equity(0.0)
    rm.on_equity(-90.0)
    assert rm.daily_loss == 90 and not rm.killed
    clk.advance(120)  # 00:01 UTC the next day: the day starts at -90
    rm.on_equity(-95.0)
    assert rm.daily_loss == pytest.approx(5.0)
    assert any(k == "day_reset" for _, k, _ in rm.take_events())
    rm.on_equity(-185.0)
    assert not rm.killed  # 95 lost today
    rm.on_equity(-190.0)
    assert rm.killed and rm.state == "killed"
    assert "daily loss 100.00" in rm.kill_reason and rm.kill_source == "risk"
    assert kills == [rm.kill_reason]
    # sticky across the next midnight
    clk.advance(86_400)
    rm.on_equity(-190.0)
    assert rm.killed


def test_drawdown_from_the_peak():
    rm, clk, kills = ready(max_daily_loss=1e9, max_drawdown_abs=50)
    for pnl in (0, 30, 80, 40):
        rm.on_equity(pnl)
    assert rm.drawdown == 40 and not rm.killed
    rm.on_equity(31)
    assert not rm.killed
    rm.on_equity(30)
    assert rm.killed and "drawdown 50.00" in rm.kill_reason
    assert len(kills) == 1 and kills[0][1] is False


def test_reset_kill_rebases_limits():
    rm, clk, kills = ready(max_drawdown_abs=50)
    rm.on_equity(0)
    rm.on_equity(-60)
    assert rm.killed
    assert rm.reset_kill()
    assert not rm.killed and rm.state == "ok" and rm.drawdown == 0 and rm.daily_loss == 0
    rm.on_equity(-100)
    assert not rm.killed  # only 40 from the new peak
    rm.on_equity(-110)
    assert rm.killed and len(kills) == 2
    assert not RiskManager(RiskConfig()).reset_kill()


def test_non_finite_pnl_ignored():
    rm, _, _ = ready()
    rm.on_equity(float("nan"))
    rm.on_equity(float("-inf"))
    assert not rm.killed and rm.daily_loss == 0


# ---------------------------------------------------------------- order rate
def test_rate_window_slides():
    rm, clk, _ = ready(max_orders_per_second=3)
    for _ in range(3):
        assert check(rm, "BUY", D("0.001")).allowed
        rm.on_order_sent()
        clk.advance(0.1)
    d = check(rm, "BUY", D("0.001"))
    assert not d.allowed and d.reason.startswith("rate limit")
    assert check(rm, "SELL", D("0.001")).reason.startswith("rate limit")
    assert rm.rate_refusals == 2 and rm.state == "ok"  # a refusal, not a pause or kill
    assert sum(k == "rate_limit" for _, k, _ in rm.take_events()) == 1
    clk.advance(0.71)  # the first send (t=0) leaves the 1 s window at t=1.0
    rm.on_feed(clk.t, clk.t)
    assert rm.orders_in_window() == 2
    assert check(rm, "BUY", D("0.001")).allowed
    assert rm.status()["rate_refusals"] == 2


# ---------------------------------------------------------------- latency, feed, book
def test_round_trip_latency_pauses_and_resumes():
    rm, clk, _ = ready(latency_threshold_ms=100)
    rm.on_round_trip(20)
    assert rm.can_quote
    rm.on_round_trip(400)
    assert rm.state == "paused" and "order rtt" in rm.reasons[0]
    d = check(rm, "BUY", D("0.001"))
    assert not d.allowed and d.reason.startswith("paused")
    # the 400 ms sample stays in the 2 s window until t+3 s; healthy from then on,
    # quoting resumes resume_after_s (5 s) later
    for _ in range(7):
        clk.advance(1)
        rm.on_feed(clk.t - MS, clk.t)
        rm.on_round_trip(10)
        assert rm.state == "paused"
    clk.advance(1)
    rm.on_feed(clk.t - MS, clk.t)
    rm.on_round_trip(10)
    assert rm.state == "ok"
    kinds = [k for _, k, _ in rm.take_events()]
    assert kinds == ["pause", "resume"]


def test_feed_latency_p90_pauses():
    rm, clk, _ = ready(latency_threshold_ms=100)
    for i in range(20):  # one slow message in twenty: p90 stays healthy
        clk.advance(0.01)
        rm.on_feed(clk.t - (300 if i == 15 else 5) * MS, clk.t)
    assert rm.can_quote
    for _ in range(5):
        clk.advance(0.01)
        rm.on_feed(clk.t - 300 * MS, clk.t)
    assert rm.state == "paused" and "feed latency" in rm.reasons[0]
    st_ = rm.status()
    assert st_["feed_latency_ms"] == 300 and st_["feed_latency_p90_ms"] == 300


def test_pause_without_new_samples_clears_after_window_and_resume():
    """No orders while paused means no new round trips: old samples age out."""
    rm, clk, _ = ready(latency_threshold_ms=100)
    rm.on_round_trip(1000)
    assert rm.state == "paused"
    for _ in range(7):
        clk.advance(1)
        rm.on_feed(clk.t, clk.t)
        assert rm.state == "paused"
    clk.advance(1)
    rm.on_feed(clk.t, clk.t)
    assert rm.state == "ok"


def test_stale_feed_and_unsynced_book():
    clk = Clock()
    rm = RiskManager(RiskConfig(latency_threshold_ms=100), clock=clk)
    assert rm.state == "paused"
    assert set(rm.reasons) == {"book not synced", "no market data yet"}
    rm.on_feed(clk.t, clk.t)
    rm.on_book_state(True)
    assert rm.state == "ok"
    clk.advance(0.4)  # default stale threshold: 4 x 100 ms
    assert rm.can_quote
    clk.advance(0.001)
    assert rm.state == "paused" and rm.reasons[0].startswith("feed stale")
    rm.on_feed(clk.t, clk.t)
    assert rm.can_quote
    rm.on_book_state(False)
    assert not rm.can_quote and rm.reasons == ["book not synced"]
    assert check(rm, "BUY", 1).reason == "paused: book not synced"
    rm.on_book_state(True)
    assert rm.can_quote
    kinds = [k for _, k, _ in rm.take_events()]
    assert kinds == ["resume", "resume", "pause", "resume", "pause", "resume"]
    assert rm.take_events() == []


def test_feed_stale_ms_override():
    clk = Clock()
    rm = RiskManager(RiskConfig(latency_threshold_ms=100), clock=clk, feed_stale_ms=2000)
    rm.on_book_state(True)
    rm.on_feed(clk.t, clk.t)
    clk.advance(1.9)
    assert rm.can_quote
    clk.advance(0.2)
    assert not rm.can_quote


# ---------------------------------------------------------------- kill switch
def test_kill_is_sticky_and_idempotent():
    rm, clk, kills = ready()
    assert rm.kill("operator", source="dashboard")
    assert not rm.kill("again")
    assert kills == [("operator", False)]
    assert rm.state == "killed" and not rm.can_quote
    assert rm.kill_reason == "operator" and rm.kill_source == "dashboard" and rm.kill_ts_ns == clk.t
    assert not check(rm, "BUY", D("0.001")).allowed
    assert check(rm, "BUY", D("0.001")).reason == "killed: operator"
    # a later request to flatten is honoured once
    assert rm.kill("flatten now", flatten=True, source="cli")
    assert not rm.kill("flatten again", flatten=True)
    assert kills == [("operator", False), ("flatten now", True)]
    st_ = rm.status()
    assert st_["risk_state"] == "killed" and st_["kill_reason"] == "operator" and st_["kill_flatten"]
    assert rm.publish_fields()["risk_state"] == "killed"
    clk.advance(10)
    assert rm.state == "killed"  # no time-based recovery
    kinds = [k for _, k, _ in rm.take_events()]
    assert kinds.count("kill") == 2


def test_reduce_only_orders_pass_while_killed():
    rm, _, _ = ready()
    rm.kill("stop", flatten=True)
    d = check(rm, "SELL", D("0.01"), pos=D("0.004"), reduce_only=True)
    assert d.allowed and d.qty == D("0.004")
    d = check(rm, "SELL", D("0.01"), pos=D("0.004"), osell=D("0.004"), reduce_only=True)
    assert not d.allowed  # already being flattened
    d = check(rm, "BUY", D("0.01"), pos=D("0.004"), reduce_only=True)
    assert not d.allowed


def test_kill_callback_sees_killed_state():
    seen = []
    rm = RiskManager(RiskConfig(), clock=Clock())
    rm.on_kill = lambda r, f: seen.append(rm.state)
    rm.kill("x", source="signal")
    assert seen == ["killed"]


def test_status_keys_match_the_state_schema():
    from hftmm.live.schema import STATUS_COLUMNS

    rm, _, _ = ready()
    assert set(rm.publish_fields()) <= set(STATUS_COLUMNS)
