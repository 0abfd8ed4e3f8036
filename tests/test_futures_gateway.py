"""BinanceFuturesGateway against the simulator's USD-M order API on 127.0.0.1: the
account set-up (one-way mode, margin type, leverage, brackets), GTX quotes in the
engine's spot vocabulary, fills and cancels from ORDER_TRADE_UPDATE translated for the
one order tracker, -5022 as a post-only reject, ACCOUNT_UPDATE / MARGIN_CALL, the
listenKey keepalive, expiry and reconnect with a reconcile after each connection."""
from __future__ import annotations

import os
import sys
import time
from decimal import Decimal as D

import pytest

from hftmm.execution.orders import OrderState, OrderTracker
from hftmm.execution.signing import HmacSigner
from hftmm.live.binance_gateway import GatewayError
from hftmm.live.binance_protocol import may_trade_real_funds
from hftmm.live.futures_gateway import (USDM_TESTNET_REST_URL, USDM_TESTNET_WS_URL, BinanceFuturesGateway,
                                        FuturesUserStreamProtocol, translate_order_update)
from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_binance_gateway import Events  # noqa: E402

SYM = "BTCUSDT"
TICK = D("0.10")


def make_sim(**kw) -> ExchangeSimulator:
    return ExchangeSimulator(market="usdm", source=SyntheticSource(SyntheticConfig(seed=11)), **kw).start(paused=True)


def gateway(sim, key="gw1", wallet="10000", **kw) -> tuple[BinanceFuturesGateway, Events]:
    sim.add_account(key, hmac_secret="s-" + key, balances={"USDT": wallet})
    gw = BinanceFuturesGateway(SYM, HmacSigner(key, "s-" + key), rest_url=sim.rest_url, ws_url=sim.ws_url,
                               backoff_initial_s=0.05, **kw)
    ev = Events()
    gw.start(ev)
    ev.wait_kind("account")
    ev.wait_kind("open_orders")
    return gw, ev


def top(sim):
    _, bt, _, at, _ = sim.ground_truth()
    return D(int(bt[0])) * TICK, D(int(at[0])) * TICK


def test_urls_and_translation_units():
    assert not may_trade_real_funds(USDM_TESTNET_REST_URL) and not may_trade_real_funds(USDM_TESTNET_WS_URL)
    assert may_trade_real_funds("https://fapi.binance.com")
    with pytest.raises(ValueError, match="real funds"):
        BinanceFuturesGateway(SYM, HmacSigner("k", "s"), rest_url="https://fapi.binance.com",
                              ws_url="wss://fstream.binance.com")
    ev = {"e": "ORDER_TRADE_UPDATE", "E": 5, "T": 4, "o": {
        "s": SYM, "c": "q1", "S": "SELL", "o": "LIMIT", "f": "GTX", "q": "0.010", "p": "100.0", "ap": "100.0",
        "x": "TRADE", "X": "PARTIALLY_FILLED", "i": 7, "l": "0.004", "z": "0.004", "L": "100.0", "N": "USDT",
        "n": "0.00008000", "T": 4, "t": 99, "m": True, "R": False, "ps": "BOTH", "rp": "0.1"}}
    r = translate_order_update(ev, D(0))
    assert (r["e"], r["o"], r["x"], r["t"], r["Z"], r["Y"], r["n"]) == (
        "executionReport", "LIMIT_MAKER", "TRADE", 99, "0.4000", "0.4000", "0.00008000")
    proto = FuturesUserStreamProtocol("abcdefgh")
    assert proto.subscribe_request(None, 0, None) is None and proto.on_open()[0][0] == "subscribed"
    first = proto.on_message({"stream": "abcdefgh", "data": ev})[0][3]
    ev["o"].update(l="0.006", z="0.010", L="101.0", X="FILLED", t=100)
    second = proto.on_message(ev)[0][3]
    assert D(first["Z"]) == D("0.4") and D(second["Z"]) == D("0.4") + D("0.006") * D("101.0")
    liq = {**ev, "o": {**ev["o"], "x": "CALCULATED", "c": "autoclose-1"}}
    assert proto.on_message(liq)[0][3]["x"] == "TRADE"
    assert proto.on_message({"e": "listenKeyExpired", "E": 1, "listenKey": "abcdefgh"})[0][0] == "terminated"
    assert proto.on_message({"e": "MARGIN_CALL", "cw": "1", "p": []})[0][1] == "margin_call"
    # a broken number skips the frame (and says so) instead of ending the stream's thread
    bad = {**ev, "o": {**ev["o"], "L": "not-a-price"}}
    assert proto.on_message(bad)[0][0] == "skipped"
    # a new connection's protocol keeps the cumulative quote of an order seen before
    cum = proto._cum
    again = FuturesUserStreamProtocol("newkey", cum)
    ev["o"].update(x="TRADE", X="PARTIALLY_FILLED", l="0.001", z="0.005", L="102.0", t=101, i=8)
    first8 = again.on_message(ev)[0][3]          # unknown order 8: Z from ap x z
    assert D(first8["Z"]) == D("0.005") * D("100.0")


def test_setup_quote_fill_cancel_through_the_one_tracker():
    with make_sim() as sim:
        gw, ev = gateway(sim, leverage=5, margin_type="CROSSED")
        try:
            assert gw.settings["leverage"] == 5 and gw.settings["dualSidePosition"] is False
            assert gw.brackets is not None and gw.brackets.max_leverage(D(10000)) == 125
            assert ev.of("user_stream")[0].data["state"] == "subscribed"
            assert ev.of("open_orders")[0].data["orders"] == []
            assert ev.of("account")[0].data["totalWalletBalance"] == "10000.00000000"
            tr = OrderTracker(SYM, id_prefix="t")
            bid, ask = top(sim)
            o = tr.new_order("SELL", ask + TICK, D("0.010"), post_only=True)
            params = tr.new_order_params(o)
            assert params["type"] == "LIMIT_MAKER"
            gw.place_order(params)
            ack = ev.wait_kind("new_ack")[0]
            assert ack.data["type"] == "LIMIT_MAKER" and ack.data["timeInForce"] == "GTX"
            tr.on_new_ack(o.client_order_id, ack.data["orderId"], response=ack.data)
            # a trade through our price fills it, maker, at our price
            sim.inject_trade(str(ask + 2 * TICK), "0.004", buyer_maker=False)
            rep = ev.wait(lambda it: any(e.kind == "execution_report" and e.data["x"] == "TRADE" for e in it))
            fills = [f for e in rep if e.kind == "execution_report" for f in tr.on_execution_report(e.data)]
            assert [(f.qty, f.price, f.maker) for f in fills] == [(D("0.004"), ask + TICK, True)]
            assert fills[0].commission == (D("0.004") * (ask + TICK) * D("0.0002")).quantize(D("1e-8"))
            acc = ev.wait_kind("account_position")[0].data
            assert acc["m"] == "ORDER" and acc["P"][0]["pa"] == "-0.004"
            gw.cancel_order({"symbol": SYM, "orderId": ack.data["orderId"]})
            cx = ev.wait_kind("cancel_ack")[0]
            assert cx.client_order_id == o.client_order_id
            tr.on_cancel_ack(o.client_order_id, cx.data)
            assert tr.get(o.client_order_id).state == OrderState.CANCELED
            assert tr.get(o.client_order_id).filled_qty == D("0.004")
            # GTX that would take: the engine's post-only reject
            o2 = tr.new_order("BUY", ask, D("0.010"), post_only=True)
            gw.place_order(tr.new_order_params(o2))
            rj = ev.wait_kind("new_reject")[0]
            assert rj.data["code"] == -2010 and "-5022" in rj.data["msg"]
            assert tr.on_reject(o2.client_order_id, rj.data["code"], rj.data["msg"]) == OrderState.REJECTED
            assert tr.get(o2.client_order_id).reject_reason == "post-only"
            # cancel all: the cancels arrive on the stream
            for i in range(2):
                o3 = tr.new_order("BUY", bid - (i + 1) * TICK, D("0.002"), post_only=True)
                gw.place_order(tr.new_order_params(o3))
            ev.wait_kind("new_ack", 3)
            gw.cancel_all(SYM)
            ev.wait(lambda it: sum(e.kind == "execution_report" and e.data["x"] == "CANCELED" for e in it) == 3)
            assert sim.orders_of("gw1")[-1]["status"] == "CANCELED"
        finally:
            gw.stop()


def test_hedge_mode_is_refused_with_the_fix():
    with make_sim() as sim:
        sim.add_account("h1", hmac_secret="s")
        eng = sim.trading.engine
        eng.set_dual(eng.accounts["h1"], {"dualSidePosition": "true"})
        gw = BinanceFuturesGateway(SYM, HmacSigner("h1", "s"), rest_url=sim.rest_url, ws_url=sim.ws_url)
        with pytest.raises(GatewayError, match="hedge mode.*dualSidePosition=false"):
            gw.start(Events())


def test_listen_key_keepalive_expiry_and_reconnect_with_reconcile():
    with make_sim(listen_key_validity_s=1.5) as sim:
        gw, ev = gateway(sim, key="gw2", keepalive_s=0.4)
        try:
            # kept alive: over three validity periods without an expiry
            deadline = time.monotonic() + 60
            while gw.keepalives < 12 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gw.keepalives >= 12
            assert gw.subscriptions == 1 and not ev.of("user_stream")[1:]
        finally:
            gw.stop()
        gw, ev = gateway(sim, key="gw3", keepalive_s=3000)
        try:
            # not kept alive: Binance expires the key; the gateway takes a new one and reconciles
            ev.wait(lambda it: gw.subscriptions >= 2, timeout=30)
            states = [e.data["state"] for e in ev.of("user_stream")]
            assert states[:3] == ["subscribed", "terminated", "disconnected"] and states[3] == "subscribed"
            ev.wait_kind("open_orders", 2)
        finally:
            gw.stop()


def test_margin_call_and_funding_reach_the_sink():
    with make_sim(margin_call_ratio="0.2") as sim:
        gw, ev = gateway(sim, key="gw4", wallet="500", leverage=20)
        try:
            gw.place_order({"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.120",
                            "newClientOrderId": "m1"})
            ev.wait_kind("new_ack")
            sim.settle_funding("0.0001")
            fund = ev.wait(lambda it: any(e.kind == "account_position" and e.data["m"] == "FUNDING_FEE"
                                          for e in it))
            assert any(e.kind == "account_position" and D(e.data["B"][0]["bc"]) < 0 for e in fund)
            mark = D(sim.positions("gw4")[0]["markPrice"])
            sim.set_mark_price(str((mark * D("0.95")).quantize(TICK)))
            mc = ev.wait_kind("margin_call")[0].data
            assert mc["p"][0]["pa"] == "0.120"
        finally:
            sim.set_mark_price(None)
            gw.stop()
