"""Tests for the sans-I/O order state machine (hftmm.execution.orders)."""
from __future__ import annotations

import re
from decimal import Decimal as D

import pytest
from hypothesis import given, settings, strategies as st

from hftmm.execution import orders as om
from hftmm.execution.orders import (
    CLIENT_ID_RE, Order, OrderState as S, OrderStateError, OrderTracker,
)


class Clock:
    def __init__(self, t: int = 1_000_000_000) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def make(timeout_ns: int = 5_000_000_000) -> tuple[OrderTracker, Clock]:
    clk = Clock()
    return OrderTracker("BTCUSDT", id_prefix="mm", clock=clk, request_timeout_ns=timeout_ns), clk


def rep(o: Order, x: str, X: str, z="0", l="0", L="0", t=-1, Z=None, C="", c=None, **kw) -> dict:
    z, l, L = D(z), D(l), D(L)
    ev = {"e": "executionReport", "E": 1, "s": "BTCUSDT", "c": c or o.client_order_id, "S": o.side,
          "o": "LIMIT_MAKER", "q": str(o.qty), "p": str(o.price), "C": C, "x": x, "X": X, "r": "NONE",
          "i": o.order_id if o.order_id is not None else 42, "l": str(l), "z": str(z), "L": str(L),
          "n": "0", "N": None, "T": 1700000000000, "t": t, "m": True,
          "Z": str(Z) if Z is not None else str(z * L)}
    ev.update(kw)
    return ev


def acked(tr: OrderTracker, side="BUY", price="100", qty="1", oid=42) -> Order:
    o = tr.new_order(side, price, qty)
    tr.on_new_ack(o.client_order_id, oid)
    return o


# ------------------------------------------------------------------ ids / construction
def test_client_id_format_and_uniqueness():
    tr, _ = make()
    ids = {tr.new_order("BUY", "1", "1").client_order_id for _ in range(2000)}
    assert len(ids) == 2000
    for cid in ids:
        assert CLIENT_ID_RE.match(cid) and re.fullmatch(r"^[a-zA-Z0-9-_]{1,36}$", cid)
        assert cid.startswith("mm-")
    long = OrderTracker("X", id_prefix="a" * 16)
    for _ in range(5):
        assert len(long.new_order("SELL", "1", "1").client_order_id) <= 36
    with pytest.raises(ValueError):
        OrderTracker("X", id_prefix="bad prefix!")
    # counter is monotonic
    a, b = tr.next_client_id(), tr.next_client_id()
    assert int(b.split("-")[1]) == int(a.split("-")[1]) + 1


def test_decimal_only_and_validation():
    tr, _ = make()
    with pytest.raises(TypeError):
        tr.new_order("BUY", 100.0, "1")
    with pytest.raises(ValueError):
        tr.new_order("HOLD", "1", "1")
    with pytest.raises(ValueError):
        tr.new_order("BUY", "1", "0")
    o = tr.new_order("buy", "100.10", 2)
    assert isinstance(o.price, D) and isinstance(o.qty, D) and o.side == "BUY"
    assert o.state == S.PENDING_NEW
    p = tr.new_order_params(o)
    assert p["type"] == "LIMIT_MAKER" and p["price"] == "100.10" and p["newClientOrderId"] == o.client_order_id
    assert "timeInForce" not in p
    assert tr.new_order_params(tr.new_order("SELL", "1", "1", post_only=False))["timeInForce"] == "GTC"


# ------------------------------------------------------------------ basic lifecycle
def test_new_ack_then_partial_then_fill():
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    fills, cancel = tr.on_new_ack(o.client_order_id, 42)
    assert fills == [] and cancel is None and o.state == S.OPEN and o.order_id == 42
    f1 = tr.on_execution_report(rep(o, "TRADE", "PARTIALLY_FILLED", z="0.4", l="0.4", L="100", t=1))
    assert o.state == S.PARTIALLY_FILLED and o.filled_qty == D("0.4") and len(f1) == 1
    assert f1[0].qty == D("0.4") and f1[0].price == D("100") and f1[0].trade_id == 1 and f1[0].maker
    f2 = tr.on_execution_report(rep(o, "TRADE", "FILLED", z="1", l="0.6", L="99", t=2, Z="99.4"))
    assert o.state == S.FILLED and o.filled_qty == D("1") and f2[0].qty == D("0.6")
    assert o.cum_quote == D("99.4") and o.avg_price == D("99.4")
    assert [t.to_state for t in o.history] == [S.OPEN, S.PARTIALLY_FILLED, S.FILLED]
    assert tr.position_delta() == D("1") and tr.open_buy_qty() == 0


def test_new_report_before_ack_and_ack_after_fill():
    tr, _ = make()
    o = tr.new_order("SELL", "100", "1")
    tr.on_execution_report(rep(o, "NEW", "NEW"))
    assert o.state == S.OPEN and o.order_id == 42
    tr.on_execution_report(rep(o, "TRADE", "FILLED", z="1", l="1", L="100", t=5))
    tr.on_new_ack(o.client_order_id, 42)  # late ack: no regression
    assert o.state == S.FILLED
    assert tr.position_delta() == D("-1")


def test_post_only_rejection():
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    st_ = tr.on_reject(o.client_order_id, -2010, "Order would immediately match and take.")
    assert st_ == S.REJECTED and o.reject_reason == "post-only" and o.reject_code == -2010
    other = tr.new_order("BUY", "100", "1")
    tr.on_reject(other.client_order_id, -2010, "Account has insufficient balance for requested action.")
    assert other.reject_reason.startswith("Account has insufficient")
    assert tr.open_buy_qty() == 0


def test_reject_report_via_user_stream():
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    tr.on_execution_report(rep(o, "REJECTED", "REJECTED", r="INSUFFICIENT_BALANCE"))
    assert o.state == S.REJECTED and o.reject_reason == "INSUFFICIENT_BALANCE"


def test_reject_report_before_rest_answer_is_one_rejection():
    # cancelReplace: Binance's x=REJECTED report of the new order can overtake the 409
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    tr.on_execution_report(rep(o, "REJECTED", "REJECTED", r="NONE"))
    n = len(o.history)
    assert tr.on_reject(o.client_order_id, -2010, "Order would immediately match and take.") == S.REJECTED
    assert (o.reject_code, o.reject_reason, len(o.history)) == (-2010, "post-only", n)
    # a repeated or late answer changes nothing
    assert tr.on_reject(o.client_order_id, -2010, "again") == S.REJECTED
    assert tr.on_reject(o.client_order_id, -1007, "Timeout waiting for response") == S.REJECTED
    assert (o.reject_code, o.reject_reason, len(o.history)) == (-2010, "post-only", n)
    assert tr.open_buy_qty() == 0


def test_unknown_on_minus1007_and_5xx():
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    assert tr.on_reject(o.client_order_id, -1007, "Timeout waiting for response") == S.UNKNOWN
    o2 = tr.new_order("BUY", "100", "1")
    assert tr.on_reject(o2.client_order_id, 0, "bad gateway", http_status=502) == S.UNKNOWN
    assert set(tr.orders_to_query()) == {o, o2}
    # unknown orders still count as exposure
    assert tr.open_buy_qty() == D("2")
    # query resolves
    tr.on_query_result({"symbol": "BTCUSDT", "orderId": 7, "clientOrderId": o.client_order_id,
                        "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0"})
    assert o.state == S.OPEN and o.order_id == 7
    tr.on_query_not_found(o2.client_order_id)
    assert o2.state == S.REJECTED


def test_expired_and_trade_prevention():
    tr, _ = make()
    o = acked(tr)
    tr.on_execution_report(rep(o, "TRADE_PREVENTION", "EXPIRED"))
    assert o.state == S.EXPIRED
    o2 = acked(tr, oid=43)
    tr.on_execution_report(rep(o2, "EXPIRED", "EXPIRED", i=43))
    assert o2.state == S.EXPIRED


def test_replaced_amend_reduces_qty():
    tr, _ = make()
    o = acked(tr, qty="2")
    tr.on_execution_report(rep(o, "REPLACED", "NEW", q="1.5"))
    assert o.qty == D("1.5") and o.state == S.OPEN and tr.open_buy_qty() == D("1.5")


# ------------------------------------------------------------------ invalid transitions
def test_invalid_transitions_raise_and_do_not_corrupt():
    tr, _ = make()
    o = acked(tr)
    tr.on_execution_report(rep(o, "TRADE", "FILLED", z="1", l="1", L="100", t=1))
    before = (o.state, o.filled_qty, len(o.history))
    with pytest.raises(OrderStateError) as ei:
        tr.request_cancel(o.client_order_id)
    msg = str(ei.value)
    assert o.client_order_id in msg and "FILLED" in msg and "PENDING_CANCEL" in msg
    assert (o.state, o.filled_qty, len(o.history)) == before
    o2 = acked(tr, oid=99)
    with pytest.raises(OrderStateError):
        tr.on_reject(o2.client_order_id, -2010, "x")  # reject after ack
    assert o2.state == S.OPEN
    with pytest.raises(OrderStateError):
        o2._transition(S.PENDING_NEW, 0)
    # over-fill report
    with pytest.raises(OrderStateError):
        tr.on_execution_report(rep(o2, "TRADE", "FILLED", z="2", l="2", L="1", t=9, i=99))
    assert o2.filled_qty == 0 and o2.state == S.OPEN
    with pytest.raises(KeyError):
        tr.request_cancel("nope")


# ------------------------------------------------------------------ idempotence
def test_duplicate_and_reordered_reports_no_double_count():
    tr, _ = make()
    o = acked(tr, qty="1")
    r1 = rep(o, "TRADE", "PARTIALLY_FILLED", z="0.3", l="0.3", L="100", t=1)
    r2 = rep(o, "TRADE", "PARTIALLY_FILLED", z="0.5", l="0.2", L="101", t=2, Z="50.2")
    r3 = rep(o, "TRADE", "FILLED", z="1", l="0.5", L="102", t=3, Z="101.2")
    got = []
    for r in (r2, r1, r2, r3, r1, r3, rep(o, "NEW", "NEW")):
        got += tr.on_execution_report(r)
    assert sum(f.qty for f in got) == D("1") == o.filled_qty
    assert o.state == S.FILLED and o.cum_quote == D("101.2")
    # r2 arrived first and covered r1's qty: one fill of 0.5 at avg quote
    assert got[0].qty == D("0.5") and got[0].quote_qty == D("50.2")
    assert tr.position_delta() == D("1")


def test_decimal_exactness_three_fills():
    tr, _ = make()
    o = acked(tr, qty="0.3")
    fills = []
    for k in range(1, 4):
        fills += tr.on_execution_report(rep(o, "TRADE", "FILLED" if k == 3 else "PARTIALLY_FILLED",
                                            z=str(D("0.1") * k), l="0.1", L="100", t=k))
    assert sum(f.qty for f in fills) == D("0.3") and o.filled_qty == D("0.3")
    assert o.state == S.FILLED and o.avg_price == D("100")


# ------------------------------------------------------------------ cancel
def test_cancel_open_order():
    tr, _ = make()
    o = acked(tr)
    req = tr.request_cancel(o.client_order_id)
    assert o.state == S.PENDING_CANCEL and not req.deferred and req.params() == {"symbol": "BTCUSDT", "orderId": 42}
    assert tr.open_buy_qty() == D("1")  # still live until confirmed
    fills = tr.on_cancel_ack(o.client_order_id, {"orderId": 42, "status": "CANCELED", "executedQty": "0",
                                                "cummulativeQuoteQty": "0"})
    assert fills == [] and o.state == S.CANCELED and tr.open_buy_qty() == 0


def test_cancel_report_uses_original_client_id():
    tr, _ = make()
    o = acked(tr)
    tr.request_cancel(o.client_order_id)
    tr.on_execution_report(rep(o, "CANCELED", "CANCELED", c="cancelreq-1", C=o.client_order_id))
    assert o.state == S.CANCELED
    assert "cancelreq-1" not in tr.orders


def test_partial_fill_during_pending_cancel_then_cancel_with_fill_in_ack():
    tr, _ = make()
    o = acked(tr, qty="1")
    tr.request_cancel(o.client_order_id)
    f = tr.on_execution_report(rep(o, "TRADE", "PARTIALLY_FILLED", z="0.2", l="0.2", L="100", t=1))
    assert o.state == S.PENDING_CANCEL and f[0].qty == D("0.2")
    # cancel ack says 0.5 executed: 0.3 was missed -> synthesised fill
    f2 = tr.on_cancel_ack(o.client_order_id, {"orderId": 42, "status": "CANCELED", "executedQty": "0.5",
                                              "cummulativeQuoteQty": "50.3"})
    assert f2[0].qty == D("0.3") and f2[0].trade_id is None and f2[0].quote_qty == D("30.3")
    assert o.state == S.CANCELED and o.filled_qty == D("0.5")
    # the late TRADE report for the missed 0.3 is not double counted
    assert tr.on_execution_report(rep(o, "TRADE", "PARTIALLY_FILLED", z="0.5", l="0.3", L="101", t=2)) == []
    assert tr.position_delta() == D("0.5") and o.state == S.CANCELED


def test_cancel_while_pending_new_deferred_until_ack():
    tr, _ = make()
    o = tr.new_order("SELL", "100", "1")
    req = tr.request_cancel(o.client_order_id)
    assert req.deferred and o.state == S.PENDING_CANCEL
    assert req.params() == {"symbol": "BTCUSDT", "origClientOrderId": o.client_order_id}
    fills, send = tr.on_new_ack(o.client_order_id, 77)
    assert send is not None and not send.deferred and send.params()["orderId"] == 77
    assert o.state == S.PENDING_CANCEL
    # a second ack does not resend
    assert tr.on_new_ack(o.client_order_id, 77)[1] is None
    tr.on_cancel_ack(o.client_order_id)
    assert o.state == S.CANCELED


def test_cancel_while_pending_new_then_rejected():
    tr, _ = make()
    o = tr.new_order("BUY", "100", "1")
    tr.request_cancel(o.client_order_id)
    tr.on_reject(o.client_order_id, -2010, "Order would immediately match and take.")
    assert o.state == S.REJECTED and o.reject_reason == "post-only"


def test_cancel_reject_unknown_order_then_query():
    tr, _ = make()
    o = acked(tr, qty="1")
    tr.request_cancel(o.client_order_id)
    assert tr.on_cancel_reject(o.client_order_id, -2011, "Unknown order sent.") is True
    assert o.state == S.UNKNOWN and tr.orders_to_query() == [o]
    fills = tr.on_query_result({"symbol": "BTCUSDT", "orderId": 42, "clientOrderId": o.client_order_id,
                                "status": "FILLED", "executedQty": "1", "cummulativeQuoteQty": "100"})
    assert o.state == S.FILLED and fills[0].qty == D("1") and tr.position_delta() == D("1")


def test_cancel_reject_other_code_reverts():
    tr, _ = make()
    o = acked(tr)
    tr.on_execution_report(rep(o, "TRADE", "PARTIALLY_FILLED", z="0.5", l="0.5", L="100", t=1))
    tr.request_cancel(o.client_order_id)
    assert tr.on_cancel_reject(o.client_order_id, -1015, "Too many new orders") is False
    assert o.state == S.PARTIALLY_FILLED
    # cancel reject after the order already filled: no-op
    tr.request_cancel(o.client_order_id)
    tr.on_execution_report(rep(o, "TRADE", "FILLED", z="1", l="0.5", L="100", t=2))
    assert tr.on_cancel_reject(o.client_order_id, -2011, "Unknown order sent.") is False
    assert o.state == S.FILLED


# ------------------------------------------------------------------ timeouts
def test_timeouts():
    tr, clk = make(timeout_ns=1_000)
    a = tr.new_order("BUY", "100", "1")
    b = acked(tr, oid=5)
    c = acked(tr, oid=6)
    tr.request_cancel(b.client_order_id)
    assert tr.on_timeout_check(clk.t + 1_000) == []
    out = tr.on_timeout_check(clk.t + 1_001)
    assert set(out) == {a, b} and a.state == S.UNKNOWN and b.state == S.UNKNOWN and c.state == S.OPEN
    assert tr.on_timeout_check(clk.t + 10_000) == []  # reported once
    # late ack resolves UNKNOWN -> OPEN
    tr.on_new_ack(a.client_order_id, 9)
    assert a.state == S.OPEN


# ------------------------------------------------------------------ reconcile
def test_reconcile_open_orders():
    tr, _ = make()
    live = acked(tr, oid=1)
    missing = acked(tr, oid=2)
    partial = acked(tr, side="SELL", qty="2", oid=3)
    done = acked(tr, oid=4)
    tr.on_execution_report(rep(done, "CANCELED", "CANCELED", i=4))
    res = tr.reconcile_open_orders([
        {"symbol": "BTCUSDT", "orderId": 1, "clientOrderId": live.client_order_id, "price": "100",
         "origQty": "1", "executedQty": "0", "cummulativeQuoteQty": "0", "status": "NEW", "side": "BUY",
         "type": "LIMIT_MAKER"},
        {"symbol": "BTCUSDT", "orderId": 3, "clientOrderId": partial.client_order_id, "price": "100",
         "origQty": "2", "executedQty": "0.5", "cummulativeQuoteQty": "50", "status": "PARTIALLY_FILLED",
         "side": "SELL", "type": "LIMIT_MAKER"},
        {"symbol": "BTCUSDT", "orderId": 500, "clientOrderId": "web_abc", "price": "90",
         "origQty": "3", "executedQty": "1", "cummulativeQuoteQty": "90", "status": "PARTIALLY_FILLED",
         "side": "BUY", "type": "LIMIT"},
        {"symbol": "ETHUSDT", "orderId": 501, "clientOrderId": "other", "price": "1", "origQty": "1",
         "executedQty": "0", "status": "NEW", "side": "BUY"},
    ])
    assert [o.client_order_id for o in res.adopted] == ["web_abc"]
    adopted = tr.get("web_abc")
    assert adopted.adopted and adopted.state == S.PARTIALLY_FILLED and adopted.leaves_qty == D("2")
    assert res.to_query == [missing] and missing.state == S.UNKNOWN
    assert live.state == S.OPEN and partial.state == S.PARTIALLY_FILLED
    assert [f.qty for f in res.fills] == [D("0.5")] and tr.position_delta() == D("-0.5")
    assert "other" not in tr.orders and done.state == S.CANCELED
    assert tr.open_buy_qty() == D("1") + D("1") + D("2") and tr.open_sell_qty() == D("1.5")
    # adopted order reports are tracked by order id
    f = tr.on_execution_report({"e": "executionReport", "s": "BTCUSDT", "c": "web_abc", "S": "BUY", "q": "3",
                                "p": "90", "x": "TRADE", "X": "FILLED", "i": 500, "l": "2", "z": "3",
                                "L": "90", "Z": "270", "t": 77, "m": True, "n": "0", "T": 1})
    assert f[0].qty == D("2") and adopted.state == S.FILLED


def test_adopt_from_unknown_execution_report():
    tr, _ = make()
    ev = {"e": "executionReport", "s": "BTCUSDT", "c": "ext1", "S": "SELL", "q": "1", "p": "10",
          "x": "TRADE", "X": "PARTIALLY_FILLED", "i": 9, "l": "0.25", "z": "0.75", "L": "10", "Z": "7.5",
          "t": 3, "m": False, "n": "0", "T": 1}
    f = tr.on_execution_report(ev)
    assert f[0].qty == D("0.25") and tr.get("ext1").filled_qty == D("0.75")
    assert tr.on_execution_report({**ev, "s": "ETHUSDT", "c": "x2"}) == []


# ------------------------------------------------------------------ cancelReplace
def _cr(tr):
    old = acked(tr, oid=10)
    req, new = tr.prepare_cancel_replace(old.client_order_id, "101", "1")
    assert old.state == S.PENDING_CANCEL and new.state == S.PENDING_NEW and new.side == "BUY"
    return old, new


def test_cancel_replace_200():
    tr, _ = make()
    old, new = _cr(tr)
    out = tr.cancel_replace_result(200, {
        "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
        "cancelResponse": {"orderId": 10, "status": "CANCELED", "executedQty": "0", "cummulativeQuoteQty": "0"},
        "newOrderResponse": {"orderId": 11, "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0"}},
        old.client_order_id, new.client_order_id)
    assert out.cancel_ok and out.new_ok and old.state == S.CANCELED and new.state == S.OPEN and new.order_id == 11


def test_cancel_replace_409_cancel_ok_new_rejected():
    tr, _ = make()
    old, new = _cr(tr)
    out = tr.cancel_replace_result(409, {"code": -2021, "msg": "Order cancel-replace partially failed.", "data": {
        "cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
        "cancelResponse": {"orderId": 10, "status": "CANCELED", "executedQty": "0"},
        "newOrderResponse": {"code": -2010, "msg": "Order would immediately match and take."}}},
        old.client_order_id, new.client_order_id)
    assert out.cancel_ok is True and out.new_ok is False
    assert old.state == S.CANCELED and new.state == S.REJECTED and new.reject_reason == "post-only"


def test_cancel_replace_409_cancel_failed_new_ok():
    tr, _ = make()
    old, new = _cr(tr)
    out = tr.cancel_replace_result(409, {"code": -2021, "msg": "partially failed", "data": {
        "cancelResult": "FAILURE", "newOrderResult": "SUCCESS",
        "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
        "newOrderResponse": {"orderId": 11, "status": "NEW", "executedQty": "0"}}},
        old.client_order_id, new.client_order_id)
    assert out.cancel_ok is False and out.new_ok is True
    assert old.state == S.UNKNOWN and out.to_query == [old] and new.state == S.OPEN


def test_cancel_replace_400_and_5xx():
    tr, _ = make()
    old, new = _cr(tr)
    out = tr.cancel_replace_result(400, {"code": -2022, "msg": "Order cancel-replace failed.", "data": {
        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None}},
        old.client_order_id, new.client_order_id)
    assert out.cancel_ok is False and out.new_ok is False and new.state == S.REJECTED
    assert old.state == S.UNKNOWN
    tr2, _ = make()
    old2, new2 = _cr(tr2)
    out2 = tr2.cancel_replace_result(503, {}, old2.client_order_id, new2.client_order_id)
    assert out2.cancel_ok is None and out2.new_ok is None
    assert old2.state == S.UNKNOWN and new2.state == S.UNKNOWN and set(out2.to_query) == {old2, new2}


# ------------------------------------------------------------------ misc
def test_prune_and_exports():
    tr, _ = make()
    o = acked(tr)
    tr.on_cancel_ack(o.client_order_id)
    acked(tr, oid=50)
    assert tr.prune() == 1 and len(tr.orders) == 1
    import hftmm.execution as ex
    assert ex.OrderTracker is OrderTracker and set(om.__all__) <= set(dir(ex))


# ------------------------------------------------------------------ property test
@st.composite
def report_sequences(draw):
    qty_units = draw(st.integers(1, 20))
    cuts = sorted(draw(st.lists(st.integers(1, qty_units), min_size=0, max_size=8, unique=True)))
    # trade k brings cumulative to cuts[k]
    trades = []
    prev = 0
    for k, c in enumerate(cuts):
        trades.append(("TRADE", k + 1, c, c - prev))
        prev = c
    events = list(trades)
    extra = draw(st.lists(st.sampled_from(["NEW", "CANCELED", "DUP", "EXPIRED", "QUERY", "CANCEL_ACK"]),
                          max_size=6))
    for e in extra:
        if e == "DUP":
            if trades:
                events.append(draw(st.sampled_from(trades)))
        elif e == "QUERY":
            events.append(("QUERY", None, draw(st.sampled_from([0] + cuts)), 0))
        else:
            events.append((e, None, draw(st.sampled_from([0] + cuts)), 0))
    perm = draw(st.permutations(events))
    return qty_units, perm


@settings(max_examples=300, deadline=None)
@given(report_sequences(), st.booleans())
def test_property_reports_never_overfill_or_double_count(seq, cancel_first):
    qty_units, events = seq
    unit = D("0.1")
    tr, _ = make()
    o = tr.new_order("BUY", "100", str(qty_units * unit))
    tr.on_new_ack(o.client_order_id, 42)
    if cancel_first:
        tr.request_cancel(o.client_order_id)
    total = D(0)
    prev = D(0)
    for kind, t, cum, last in events:
        z = cum * unit
        if kind == "TRADE":
            status = "FILLED" if cum == qty_units else "PARTIALLY_FILLED"
            fills = tr.on_execution_report(rep(o, "TRADE", status, z=str(z), l=str(last * unit), L="100", t=t))
        elif kind == "QUERY":
            status = "FILLED" if cum == qty_units else ("PARTIALLY_FILLED" if cum else "NEW")
            fills = tr.on_query_result({"clientOrderId": o.client_order_id, "orderId": 42, "status": status,
                                        "executedQty": str(z), "cummulativeQuoteQty": str(z * 100)})
        elif kind == "CANCEL_ACK":
            if o.state == S.PENDING_CANCEL:
                fills = tr.on_cancel_ack(o.client_order_id, {"orderId": 42, "status": "CANCELED",
                                                             "executedQty": str(z)})
            else:
                fills = []
        else:
            status = {"NEW": "NEW", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED"}[kind]
            fills = tr.on_execution_report(rep(o, kind, status, z=str(z), L="0", C=o.client_order_id,
                                               c="x" if kind == "CANCELED" else None))
        total += sum((f.qty for f in fills), D(0))
        assert o.filled_qty <= o.qty
        assert o.filled_qty >= prev
        prev = o.filled_qty
        assert all(f.qty > 0 for f in fills)
    assert total == o.filled_qty == tr.position_delta()
    max_cum = max((c for _, _, c, _ in events), default=0)
    assert o.filled_qty == max_cum * unit
    if o.filled_qty == o.qty:
        assert o.state in (S.FILLED, S.CANCELED, S.EXPIRED)
