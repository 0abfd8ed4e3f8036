"""Spot order entry of the exchange simulator, end to end over REST and the WS API
on 127.0.0.1, signed with ``hftmm.execution.signing``."""
from __future__ import annotations

import itertools
import os
import socket
import sys
import time
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from hftmm.execution.filters import SymbolFilters
from hftmm.execution.ratelimits import RateLimiter
from hftmm.execution.signing import Ed25519Signer, HmacSigner, RsaSigner, signed_ws_params
from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.simulator.orders import REPORT_KEYS
from hftmm.simulator.trading import SpotLimits
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(__file__))
from sim_trading_client import WsApi, now_ms, rest  # noqa: E402

SYM = "BTCUSDT"
TICK = Decimal("0.10")
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
WS_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
_names = itertools.count(1)


def make_sim(paused: bool = True, speed: float = 1.0, **kw) -> ExchangeSimulator:
    sim = ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=7), speed=speed), **kw)
    return sim.start(paused=paused)


@pytest.fixture(scope="module")
def sim():
    s = make_sim()
    yield s
    s.stop()


def account(sim, balances=None) -> HmacSigner:
    key = f"acct{next(_names)}"
    secret = f"secret-{key}"
    sim.add_account(key, hmac_secret=secret, balances=balances)
    return HmacSigner(key, secret)


def top(sim) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(best bid, its qty, best ask, its qty) of the simulated book, as decimals."""
    _, bt, bq, at, aq = sim.ground_truth()
    lot = Decimal(sim.lot_size)
    return bt[0] * TICK, bq[0] * lot, at[0] * TICK, aq[0] * lot


def place(sim, signer, timeout: float = 5.0, **p):
    return rest(sim, "POST", "/api/v3/order", {"symbol": SYM, **p}, signer, timeout=timeout)


# ---------------------------------------------------------------------------
# exchangeInfo, signatures, authentication
# ---------------------------------------------------------------------------

def test_exchange_info_lists_enforced_limits_filters_and_flags():
    limits = SpotLimits(request_weight_1m=1234, orders_10s=7, orders_1d=99, raw_requests_5m=5000)
    with make_sim(limits=limits) as s:
        status, _, info = rest(s, "GET", "/api/v3/exchangeInfo")
        assert status == 200
        assert info["rateLimits"] == limits.rate_limits()
        assert {(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in info["rateLimits"]} == {
            ("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1),
            ("RAW_REQUESTS", "MINUTE", 5)}
        sym = info["symbols"][0]
        types = {f["filterType"] for f in sym["filters"]}
        assert {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL", "PERCENT_PRICE_BY_SIDE", "MAX_NUM_ORDERS"} <= types
        assert sym["cancelReplaceAllowed"] is True and "LIMIT_MAKER" in sym["orderTypes"]
        flt = SymbolFilters.from_exchange_info(info, SYM)
        assert flt.tick_size == TICK and flt.max_num_orders == 200
        # the client's limiter understands them
        rl = RateLimiter.from_exchange_info(info)
        assert rl.usage()["ORDERS 10 SECOND"] == (0, 7)


def test_binance_hmac_vectors_verify_and_tampering_is_refused(sim):
    sim.add_account("vectorkey", hmac_secret=SECRET)
    vector_q = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
                "&timestamp=1499827319559")
    sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    tr = sim.trading
    real_now = tr.now_ms
    tr.now_ms = lambda: 1499827319559 + 100
    try:
        # the vector verifies: the request gets past the signature to the symbol check
        st, _, body = rest(sim, "POST", "/api/v3/order", raw_query=f"{vector_q}&signature={sig}",
                           api_key="vectorkey")
        assert (st, body["code"]) == (400, -1121)
        # upper-case hex is accepted too; the same bytes in the body verify as well
        st, _, body = rest(sim, "POST", "/api/v3/order", raw_query=f"{vector_q}&signature={sig.upper()}",
                           api_key="vectorkey")
        assert body["code"] == -1121
        st, _, body = rest(sim, "POST", "/api/v3/order", raw_query=f"{vector_q}&signature={sig}",
                           api_key="vectorkey", in_body=True)
        assert body["code"] == -1121
        tampered = vector_q.replace("quantity=1", "quantity=2")
        st, _, body = rest(sim, "POST", "/api/v3/order", raw_query=f"{tampered}&signature={sig}",
                           api_key="vectorkey")
        assert (st, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
        # WS API vector (params sorted, not encoded)
        sim.add_account(WS_API_KEY, hmac_secret=SECRET)
        tr.now_ms = lambda: 1645423376532 + 50
        ws = WsApi(sim)
        params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100, "timestamp": 1645423376532,
                  "apiKey": WS_API_KEY,
                  "signature": "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"}
        ans = ws.call("order.test", params)
        assert ans["status"] == 200 and ans["result"] == {}
        ans = ws.call("order.test", {**params, "quantity": "0.02000000"})
        assert ans["status"] == 400 and ans["error"]["code"] == -1022
        ws.close()
    finally:
        tr.now_ms = real_now


def test_auth_failures(sim):
    s = account(sim)
    p = {"symbol": SYM, "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01", "price": str(top(sim)[0] - 50)}
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, api_key="")
    assert (st, b["code"], b["msg"]) == (401, -2014, "API-key format invalid.")
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, api_key="nosuchkey")
    assert (st, b["code"]) == (401, -2015)
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, api_key="bad key!")
    assert b["code"] == -2014
    st, _, b = rest(sim, "POST", "/api/v3/order", raw_query="symbol=BTCUSDT&timestamp=1", api_key=s.api_key)
    assert (st, b["code"]) == (400, -1102) and "'signature'" in b["msg"]
    st, _, b = rest(sim, "POST", "/api/v3/order", p, HmacSigner(s.api_key, "wrong"))
    assert b["code"] == -1022
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, ts=now_ms() - 6000)
    assert (st, b) == (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, ts=now_ms() - 6000, recv_window=60000)
    assert st == 200
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, ts=now_ms() + 1500)
    assert b["code"] == -1021 and "ahead" in b["msg"]
    st, _, b = rest(sim, "POST", "/api/v3/order", p, s, ts=now_ms() * 1000)  # microseconds
    assert st == 200
    q = f"symbol={SYM}&timestamp={now_ms()}&recvWindow=70000"
    st, _, b = rest(sim, "GET", "/api/v3/openOrders", raw_query=f"{q}&signature={s.sign(q)}", api_key=s.api_key)
    assert b["code"] == -1102 and "60000" in b["msg"]
    st, _, b = rest(sim, "GET", "/api/v3/openOrders", {"symbol": SYM, "bogus": "1"}, s)
    assert b["code"] == -1104
    q = f"symbol={SYM}&symbol={SYM}&timestamp={now_ms()}"
    st, _, b = rest(sim, "GET", "/api/v3/openOrders", raw_query=f"{q}&signature={s.sign(q)}", api_key=s.api_key)
    assert b["code"] == -1101
    st, _, b = rest(sim, "POST", "/api/v3/order", {**p, "symbol": "ETHUSDT"}, s)
    assert b == {"code": -1121, "msg": "Invalid symbol."}


def _pem_pair(key) -> tuple[bytes, bytes]:
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


def test_ed25519_and_rsa_keys_rest_ws_and_session_logon(sim):
    ed_priv, ed_pub = _pem_pair(ed25519.Ed25519PrivateKey.generate())
    rsa_priv, rsa_pub = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    sim.add_account("edkey1", ed25519_public_pem=ed_pub)
    sim.add_account("rsakey1", rsa_public_pem=rsa_pub)
    ed, rs = Ed25519Signer("edkey1", ed_priv), RsaSigner("rsakey1", rsa_priv)
    for signer in (ed, rs):
        st, _, b = rest(sim, "GET", "/api/v3/account", {}, signer)
        assert st == 200 and b["accountType"] == "SPOT"
        st, _, b = rest(sim, "GET", "/api/v3/account", {"omitZeroBalances": "true"}, signer, in_body=False)
        assert st == 200
    ws = WsApi(sim)
    assert ws.call("account.status", {}, rs)["status"] == 200
    # session.logon: Ed25519 only; afterwards requests carry only a timestamp
    assert ws.call("session.logon", {}, rs)["status"] == 400
    ans = ws.call("session.logon", {}, ed)
    assert ans["status"] == 200 and ans["result"]["apiKey"] == "edkey1"
    bid = top(sim)[0]
    ans = ws.call("order.place", {"symbol": SYM, "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.001",
                                  "price": str(bid - 10), "timestamp": now_ms()})
    assert ans["status"] == 200, ans
    ans = ws.call("userDataStream.subscribe")
    assert ans["status"] == 200 and ans["result"] == {"subscriptionId": 0}
    ans = ws.call("order.cancel", {"symbol": SYM, "orderId": ans and sim.orders_of("edkey1")[0]["orderId"],
                                   "timestamp": now_ms()})
    assert ans["status"] == 200 and ans["result"]["status"] == "CANCELED"
    ev = ws.next_event()
    assert ev["subscriptionId"] == 0 and ev["event"]["x"] == "CANCELED"
    ans = ws.call("order.cancel", {"symbol": SYM, "orderId": 1, "timestamp": now_ms() - 10000})
    assert ans["error"]["code"] == -1021
    ws.close()


# ---------------------------------------------------------------------------
# new orders, filters, matching
# ---------------------------------------------------------------------------

RESULT_KEYS = ["symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty",
               "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
               "side", "workingTime", "selfTradePreventionMode"]


def test_new_order_response_types_and_post_only(sim):
    s = account(sim)
    bid, _, ask, _ = top(sim)
    base = {"side": "BUY", "quantity": "0.01", "price": str(bid - 1)}
    st, _, b = place(sim, s, type="LIMIT_MAKER", newOrderRespType="ACK", newClientOrderId="mm-1", **base)
    assert st == 200 and list(b) == ["symbol", "orderId", "orderListId", "clientOrderId", "transactTime"]
    assert b["clientOrderId"] == "mm-1" and b["orderListId"] == -1
    st, _, b = place(sim, s, type="LIMIT", timeInForce="GTC", newOrderRespType="RESULT", **base)
    assert list(b) == RESULT_KEYS and b["status"] == "NEW" and b["timeInForce"] == "GTC"
    st, _, b = place(sim, s, type="LIMIT", timeInForce="GTC", **base)  # LIMIT defaults to FULL
    assert list(b) == RESULT_KEYS[:-1] + ["fills", "selfTradePreventionMode"] and b["fills"] == []
    st, _, b = place(sim, s, type="LIMIT_MAKER", newClientOrderId="mm-1", **base)
    assert (st, b) == (400, {"code": -2010, "msg": "Duplicate order sent."})
    st, _, b = place(sim, s, type="LIMIT_MAKER", side="BUY", quantity="0.01", price=str(ask))
    assert (st, b) == (400, {"code": -2010, "msg": "Order would immediately match and take."})
    st, _, b = place(sim, s, type="LIMIT_MAKER", side="SELL", quantity="0.01", price=str(bid))
    assert b["code"] == -2010
    st, _, b = rest(sim, "POST", "/api/v3/order/test", {"symbol": SYM, "type": "LIMIT_MAKER", **base}, s)
    assert (st, b) == (200, {})
    st, _, b = rest(sim, "POST", "/api/v3/order/test",
                    {"symbol": SYM, "type": "LIMIT_MAKER", "computeCommissionRates": "true", **base}, s)
    assert b["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
    assert len([o for o in sim.orders_of(s.api_key)]) == 3


@pytest.mark.parametrize("params,msg", [
    ({"price": "61000.05"}, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.0005"}, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.001", "price": "1000.0"}, "Filter failure: NOTIONAL"),
    ({"price": "990000.0", "side": "SELL", "quantity": "0.001"}, "Filter failure: PERCENT_PRICE_BY_SIDE"),
])
def test_filters(sim, params, msg):
    s = account(sim)
    p = {"side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01", "price": "1000.0", **params}
    st, _, b = place(sim, s, **p)
    assert (st, b) == (400, {"code": -1013, "msg": msg})


def test_parameter_errors(sim):
    s = account(sim)
    st, _, b = place(sim, s, side="BUY", type="LIMIT", quantity="0.01", price="1000.0")
    assert b == {"code": -1102, "msg": "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."}
    assert place(sim, s, side="BUY", type="MARKET", quantity="0.01", price="1.0")[2]["code"] == -1106
    assert place(sim, s, side="UP", type="MARKET", quantity="0.01")[2]["code"] == -1117
    assert place(sim, s, side="BUY", type="STOP_LOSS", quantity="0.01")[2] == {
        "code": -2010, "msg": "Stop loss orders are not supported for this symbol."}
    assert place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price="1e3")[2]["code"] == -1100


def test_insufficient_balance_locks_and_releases(sim):
    s = account(sim, balances={"BTC": "0.01", "USDT": "1000"})
    bid, _, ask, _ = top(sim)
    st, _, b = place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.02", price=str(bid - 100))
    assert b == {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    assert place(sim, s, side="SELL", type="LIMIT_MAKER", quantity="0.02", price=str(ask + 100))[2]["code"] == -2010
    st, _, b = place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price="50000.0")
    assert st == 200
    assert sim.balances(s.api_key)["USDT"] == ("500.00000000", "500.00000000")
    st, _, b = place(sim, s, side="SELL", type="LIMIT_MAKER", quantity="0.01", price=str(ask + 100))
    assert sim.balances(s.api_key)["BTC"] == ("0.00000000", "0.01000000")
    st, _, c = rest(sim, "DELETE", "/api/v3/openOrders", {"symbol": SYM}, s)
    assert st == 200 and [x["status"] for x in c] == ["CANCELED", "CANCELED"]
    assert sim.balances(s.api_key) == {"BTC": ("0.01000000", "0.00000000"), "USDT": ("1000.00000000", "0.00000000")}
    st, _, c = rest(sim, "DELETE", "/api/v3/openOrders", {"symbol": SYM}, s)
    assert (st, c) == (400, {"code": -2011, "msg": "Unknown order sent."})


def test_market_ioc_fok_take_the_book_levels(sim):
    s = account(sim)
    _, bt, bq, at, aq = sim.ground_truth()
    lot = Decimal(sim.lot_size)
    two = (aq[0] + aq[1]) * lot
    st, _, b = place(sim, s, side="BUY", type="MARKET", quantity=str(two))
    assert b["status"] == "FILLED" and [(f["price"], f["qty"]) for f in b["fills"]] == [
        (f"{at[0] * TICK:.8f}", f"{aq[0] * lot:.8f}"), (f"{at[1] * TICK:.8f}", f"{aq[1] * lot:.8f}")]
    assert b["fills"][0]["commissionAsset"] == "BTC"
    assert Decimal(b["cummulativeQuoteQty"]) == (at[0] * aq[0] + at[1] * aq[1]) * TICK * lot
    # IOC at the best bid for more than is there: partial, rest expires
    st, _, b = place(sim, s, side="SELL", type="LIMIT", timeInForce="IOC", quantity=str((bq[0] + 5) * lot),
                     price=str(bt[0] * TICK))
    assert b["status"] == "EXPIRED" and Decimal(b["executedQty"]) == bq[0] * lot
    assert b["fills"][0]["commissionAsset"] == "USDT"
    # FOK that cannot fill entirely: nothing executes
    st, _, b = place(sim, s, side="SELL", type="LIMIT", timeInForce="FOK", quantity=str((bq[0] + 5) * lot),
                     price=str(bt[0] * TICK))
    assert b["status"] == "EXPIRED" and b["executedQty"] == "0.00000000" and b["fills"] == []
    # marketable GTC limit: takes, then rests the remainder
    st, _, b = place(sim, s, side="BUY", type="LIMIT", timeInForce="GTC", quantity=str((aq[0] + 3) * lot),
                     price=str(at[0] * TICK))
    assert b["status"] == "PARTIALLY_FILLED" and Decimal(b["executedQty"]) == aq[0] * lot
    assert sim.orders_of(s.api_key)[-1]["status"] == "PARTIALLY_FILLED"


def test_query_cancel_open_orders_account(sim):
    s = account(sim)
    bid = top(sim)[0]
    ids = []
    for i in range(3):
        st, _, b = place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(bid - 5 - i),
                         newClientOrderId=f"q-{i}")
        ids.append(b["orderId"])
    st, _, b = rest(sim, "GET", "/api/v3/order", {"symbol": SYM, "orderId": ids[0]}, s)
    assert st == 200 and b["clientOrderId"] == "q-0" and b["status"] == "NEW" and b["isWorking"] is True
    st, _, b2 = rest(sim, "GET", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "q-0"}, s)
    assert b2 == b
    st, _, b = rest(sim, "GET", "/api/v3/order", {"symbol": SYM, "orderId": 999999}, s)
    assert (st, b) == (400, {"code": -2013, "msg": "Order does not exist."})
    st, h, b = rest(sim, "GET", "/api/v3/openOrders", {"symbol": SYM}, s)
    assert [o["orderId"] for o in b] == ids and "x-mbx-used-weight-1m" in h
    st, _, b = rest(sim, "DELETE", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "q-1",
                                                     "newClientOrderId": "cxl-1"}, s)
    assert st == 200 and b["status"] == "CANCELED" and b["origClientOrderId"] == "q-1"
    assert b["clientOrderId"] == "cxl-1" and b["orderId"] == ids[1]
    st, _, b = rest(sim, "DELETE", "/api/v3/order", {"symbol": SYM, "orderId": ids[1]}, s)
    assert (st, b) == (400, {"code": -2011, "msg": "Unknown order sent."})
    st, _, b = rest(sim, "DELETE", "/api/v3/order", {"symbol": SYM}, s)
    assert b["code"] == -1102
    st, _, b = rest(sim, "DELETE", "/api/v3/order", {"symbol": SYM, "orderId": ids[0],
                                                     "cancelRestrictions": "ONLY_PARTIALLY_FILLED"}, s)
    assert b == {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
    st, _, acct = rest(sim, "GET", "/api/v3/account", {}, s)
    usdt = next(x for x in acct["balances"] if x["asset"] == "USDT")
    locked = sum(Decimal("0.01") * (bid - 5 - i) for i in (0, 2))
    assert Decimal(usdt["locked"]) == locked and Decimal(usdt["free"]) == 100000 - locked
    assert acct["commissionRates"]["maker"] == "0.00100000" and acct["makerCommission"] == 10


def test_cancel_replace_200_400_409(sim):
    s = account(sim)
    bid, _, ask, _ = top(sim)
    st, _, b = place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(bid - 3),
                     newClientOrderId="cr-old")
    new = {"symbol": SYM, "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.02", "price": str(bid - 2)}
    st, h, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "cr-old",
                     "newClientOrderId": "cr-new"}, s)
    assert st == 200 and b["cancelResult"] == "SUCCESS" and b["newOrderResult"] == "SUCCESS"
    assert b["cancelResponse"]["origClientOrderId"] == "cr-old" and b["cancelResponse"]["status"] == "CANCELED"
    assert b["newOrderResponse"]["clientOrderId"] == "cr-new" and "x-mbx-order-count-10s" in h
    # cancel fails, STOP_ON_FAILURE: 400, new order not attempted
    st, _, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "cr-old"}, s)
    assert st == 400 and b == {"code": -2022, "msg": "Order cancel-replace failed.", "data": {
        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None}}
    # cancel fails, ALLOW_FAILURE: the new order is placed: 409
    st, _, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "cancelReplaceMode": "ALLOW_FAILURE", "cancelOrderId": 987654321,
                     "newClientOrderId": "cr-third"}, s)
    assert st == 409 and b["code"] == -2021 and b["msg"] == "Order cancel-replace partially failed."
    assert b["data"]["cancelResult"] == "FAILURE" and b["data"]["newOrderResult"] == "SUCCESS"
    # cancel succeeds, new order would take: 409 with the rejection, and a REJECTED report
    st, _, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "price": str(ask), "cancelReplaceMode": "STOP_ON_FAILURE",
                     "cancelOrigClientOrderId": "cr-new", "newClientOrderId": "cr-taker"}, s)
    assert st == 409 and b["data"]["cancelResult"] == "SUCCESS" and b["data"]["newOrderResult"] == "FAILURE"
    assert b["data"]["newOrderResponse"] == {"code": -2010, "msg": "Order would immediately match and take."}
    rej = [e for e in sim.order_events(s.api_key) if e.get("x") == "REJECTED"]
    assert rej and rej[-1]["c"] == "cr-taker" and rej[-1]["X"] == "REJECTED"
    # both fail: 400 -2022
    st, _, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "price": str(ask), "cancelReplaceMode": "ALLOW_FAILURE", "cancelOrderId": 1}, s)
    assert st == 400 and b["code"] == -2022 and b["data"]["newOrderResult"] == "FAILURE"
    # a filter failure of the new leg: plain error, nothing cancelled
    st, _, b = rest(sim, "POST", "/api/v3/order/cancelReplace",
                    {**new, "quantity": "0.0001", "cancelReplaceMode": "ALLOW_FAILURE",
                     "cancelOrigClientOrderId": "cr-third"}, s)
    assert (st, b) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert [o["status"] for o in sim.orders_of(s.api_key) if o["clientOrderId"] == "cr-third"] == ["NEW"]


# ---------------------------------------------------------------------------
# rate limits
# ---------------------------------------------------------------------------

def test_order_count_and_weight_limits():
    with make_sim(limits=SpotLimits(request_weight_1m=60, orders_10s=3, raw_requests_5m=1000)) as s:
        s.add_account("lim", hmac_secret="x")
        sg = HmacSigner("lim", "x")
        bid = top(s)[0]
        counts = []
        for i in range(3):
            st, h, b = place(s, sg, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(bid - 1 - i))
            assert st == 200
            counts.append(int(h["x-mbx-order-count-10s"]))
            assert int(h["x-mbx-order-count-1d"]) == counts[-1]
        if counts != [1, 2, 3]:
            pytest.skip("crossed a 10 s window boundary")
        st, h, b = place(s, sg, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(bid - 9))
        assert (st, b) == (429, {"code": -1015, "msg": "Too many new orders; current limit is 3 orders per 10 SECOND."})
        assert "retry-after" in h
        ws = WsApi(s)
        ans = ws.call("order.place", {"symbol": SYM, "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01",
                                      "price": str(bid - 9)}, sg)
        assert ans["status"] == 429 and ans["error"]["code"] == -1015
        kinds = [(r["rateLimitType"], r["interval"]) for r in ans["rateLimits"]]
        assert kinds == [("ORDERS", "SECOND"), ("ORDERS", "DAY"), ("REQUEST_WEIGHT", "MINUTE")]
        # weight: account.status costs 20; the 60 per minute run out
        codes = [rest(s, "GET", "/api/v3/account", {}, sg)[0] for _ in range(4)]
        st, h, b = rest(s, "GET", "/api/v3/account", {}, sg)
        if time.time() % 60 > 2:
            assert 429 in codes and st == 429 and b["code"] == -1003
            assert int(h["x-mbx-used-weight-1m"]) > 60
        ws.close()


# ---------------------------------------------------------------------------
# user data over the WS API
# ---------------------------------------------------------------------------

def _check_reports(events: list[dict], balances0: dict, balances1: dict) -> None:
    """sum(l) == z per order; balances move by the trades minus commission."""
    reports = [e for e in events if e["e"] == "executionReport" and e["x"] != "REJECTED"]
    per: dict[int, Decimal] = {}
    d_base = d_quote = Decimal(0)
    for e in reports:
        assert tuple(e) == REPORT_KEYS
        if e["x"] == "TRADE":
            l, y, n = Decimal(e["l"]), Decimal(e["Y"]), Decimal(e["n"])
            per[e["i"]] = per.get(e["i"], Decimal(0)) + l
            assert Decimal(e["z"]) == per[e["i"]]
            assert y == l * Decimal(e["L"])
            d_base += l if e["S"] == "BUY" else -l
            d_quote += y if e["S"] == "SELL" else -y
            if e["N"] == "BTC":
                d_base -= n
            else:
                d_quote -= n
        else:
            assert Decimal(e["z"]) == per.get(e["i"], Decimal(0))
    tot = lambda b, a: Decimal(b[a][0]) + Decimal(b[a][1])  # noqa: E731
    assert tot(balances1, "BTC") - tot(balances0, "BTC") == d_base
    assert tot(balances1, "USDT") - tot(balances0, "USDT") == d_quote


def test_user_data_stream_reports_place_fill_cancel(sim):
    s = account(sim)
    b0 = sim.balances(s.api_key)
    ws = WsApi(sim)
    ans = ws.call("userDataStream.subscribe.signature", {}, s)
    assert ans["status"] == 200 and ans["result"] == {"subscriptionId": 0}
    assert any(r["rateLimitType"] == "REQUEST_WEIGHT" for r in ans["rateLimits"])
    ws2 = WsApi(sim, query="returnRateLimits=false")
    ans = ws2.call("userDataStream.subscribe.signature", {}, s)
    assert "rateLimits" not in ans and ans["result"]["subscriptionId"] == 0
    bid, bid_qty, ask, _ = top(sim)
    # REST-placed order: reports reach both WS API connections
    st, _, b = place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.05", price=str(bid),
                     newClientOrderId="ud-1")
    ev = ws.next_event()["event"]
    assert tuple(ev) == REPORT_KEYS and (ev["x"], ev["X"], ev["c"], ev["C"]) == ("NEW", "NEW", "ud-1", "")
    assert ev["w"] is True and ev["t"] == -1 and ev["i"] == b["orderId"]
    pos = ws.next_event()["event"]
    assert pos["e"] == "outboundAccountPosition" and {x["a"] for x in pos["B"]} == {"BTC", "USDT"}
    assert ws2.next_event()["event"]["x"] == "NEW"
    # WS-placed order
    ans = ws.call("order.place", {"symbol": SYM, "side": "SELL", "type": "LIMIT_MAKER", "quantity": "0.02",
                                  "price": str(ask + 1), "newClientOrderId": "ud-2"}, s)
    assert ans["status"] == 200 and ans["result"]["clientOrderId"] == "ud-2"
    assert [r["rateLimitType"] for r in ans["rateLimits"]] == ["ORDERS", "ORDERS", "REQUEST_WEIGHT"]
    # the queue ahead of ud-1 is the displayed bid quantity: a trade of that size fills nothing
    sim.inject_trade(str(bid), str(bid_qty), buyer_maker=True)
    sim.inject_trade(str(bid), "0.02", buyer_maker=True)   # now 0.02 reaches us
    sim.inject_trade(str(bid), "0.01", buyer_maker=False)  # wrong side: nothing
    sim.inject_trade(str(bid - 1), "0.01", buyer_maker=True)  # through our price: fills 0.01
    trades = [e for e in (x["event"] for x in ws.drain_events()) if e.get("x") == "TRADE"]
    assert [(t["l"], t["X"], t["m"]) for t in trades] == [("0.02000000", "PARTIALLY_FILLED", True),
                                                          ("0.01000000", "PARTIALLY_FILLED", True)]
    assert trades[-1]["z"] == "0.03000000" and trades[-1]["L"] == f"{bid:.8f}" and trades[-1]["N"] == "BTC"
    ans = ws.call("order.status", {"symbol": SYM, "origClientOrderId": "ud-1"}, s)
    assert ans["result"]["executedQty"] == "0.03000000" and ans["result"]["status"] == "PARTIALLY_FILLED"
    ans = ws.call("openOrders.status", {"symbol": SYM}, s)
    assert [o["clientOrderId"] for o in ans["result"]] == ["ud-1", "ud-2"]
    # cancel via WS: C is the original id, c the cancel's
    ans = ws.call("order.cancel", {"symbol": SYM, "origClientOrderId": "ud-1", "newClientOrderId": "ud-1x"}, s)
    assert ans["result"]["status"] == "CANCELED" and ans["result"]["executedQty"] == "0.03000000"
    ev = next(e for e in (x["event"] for x in ws.drain_events()) if e["e"] == "executionReport")
    assert (ev["x"], ev["X"], ev["c"], ev["C"], ev["z"], ev["w"]) == ("CANCELED", "CANCELED", "ud-1x", "ud-1",
                                                                     "0.03000000", False)
    ans = ws.call("order.cancelReplace", {"symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE",
                                          "cancelOrigClientOrderId": "ud-2", "side": "SELL",
                                          "type": "LIMIT_MAKER", "quantity": "0.01", "price": str(ask + 2)}, s)
    assert ans["status"] == 200 and ans["result"]["newOrderResult"] == "SUCCESS"
    sim.inject_trade(str(ask + 3), "0.5", buyer_maker=False)  # through the ask: fills it all
    ans = ws.call("openOrders.cancelAll", {"symbol": SYM}, s)
    assert ans["status"] == 400 and ans["error"]["code"] == -2011
    ans = ws.call("account.status", {}, s)
    assert ans["status"] == 200
    events = sim.order_events(s.api_key)
    _check_reports(events, b0, sim.balances(s.api_key))
    assert sim.balances(s.api_key)["BTC"][1] == "0.00000000" and sim.balances(s.api_key)["USDT"][1] == "0.00000000"
    assert ws.call("userDataStream.unsubscribe", {"subscriptionId": 0})["result"] == {}
    assert ws.call("userDataStream.unsubscribe", {"subscriptionId": 5})["status"] == 400
    assert ws.call("ping")["result"] == {} and "serverTime" in ws.call("time")["result"]
    assert ws.call("no.such.method")["status"] == 400
    ws.close()
    ws2.close()


def test_resting_orders_fill_as_the_live_market_moves():
    """At real-time speed the synthetic market trades through quotes at the touch."""
    with make_sim(paused=False, speed=4.0) as s:
        sg = account(s, balances={"BTC": "5", "USDT": "500000"})
        b0 = s.balances(sg.api_key)
        ws = WsApi(s)
        assert ws.call("userDataStream.subscribe.signature", {}, sg)["status"] == 200
        deadline = time.monotonic() + 20
        filled = set()
        while time.monotonic() < deadline and len(filled) < 2:
            bid, _, ask, _ = top(s)
            for side, px in (("BUY", bid), ("SELL", ask)):
                if side not in filled:
                    place(s, sg, side=side, type="LIMIT_MAKER", quantity="0.002", price=str(px))
            time.sleep(1.5)
            for o in s.orders_of(sg.api_key):
                if Decimal(o["executedQty"]) > 0:
                    filled.add(o["side"])
            rest(s, "DELETE", "/api/v3/openOrders", {"symbol": SYM}, sg)
        assert filled, "no resting order filled in 20 s of market"
        s.pause()
        time.sleep(0.2)
        _check_reports(s.order_events(sg.api_key), b0, s.balances(sg.api_key))
        got = ws.drain_events()
        assert len(got) == len(s.order_events(sg.api_key))
        assert s.stats()["trading"]["engine"]["trades"] >= 1
        ws.close()


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------

def test_faults_answers_lost_errors_and_delays(sim):
    s = account(sim)
    bid = top(sim)[0]
    p = {"side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01"}
    before = dict(sim.stats()["trading"]["order_faults"])
    sim.inject_order_fault("drop_answer", hold_s=3)
    with pytest.raises((socket.timeout, TimeoutError, OSError)):
        place(sim, s, price=str(bid - 1), newClientOrderId="f-drop", timeout=0.5, **p)
    st, _, b = rest(sim, "GET", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "f-drop"}, s)
    assert st == 200 and b["status"] == "NEW"  # executed although unanswered
    sim.inject_order_fault("error_after")
    st, _, b = place(sim, s, price=str(bid - 2), newClientOrderId="f-500", **p)
    assert st == 500 and b["code"] == -1001
    sim.inject_order_fault("timeout_after")
    st, _, b = place(sim, s, price=str(bid - 3), newClientOrderId="f-1007", **p)
    assert st == 503 and b["code"] == -1007
    sim.inject_order_fault("unavailable")
    st, _, b = place(sim, s, price=str(bid - 4), newClientOrderId="f-503", **p)
    assert st == 503 and b["code"] == -1008
    st, _, b = rest(sim, "GET", "/api/v3/order", {"symbol": SYM, "origClientOrderId": "f-503"}, s)
    assert b["code"] == -2013
    assert {o["clientOrderId"] for o in sim.orders_of(s.api_key)} == {"f-drop", "f-500", "f-1007"}
    sim.inject_order_fault("delay", ms=400)
    t0 = time.monotonic()
    st, _, b = place(sim, s, price=str(bid - 5), **p)
    assert st == 200 and time.monotonic() - t0 >= 0.38
    # the same over the WS API: a dropped answer, then a delayed one
    ws = WsApi(sim)
    sim.inject_order_fault("drop_answer")
    rid = ws.send("order.place", signed_ws_params({"symbol": SYM, "price": str(bid - 6), **p,
                                                   "newClientOrderId": "f-ws"}, s, now_ms()))
    assert ws.wait(rid, timeout=0.5) is None
    assert ws.call("order.status", {"symbol": SYM, "origClientOrderId": "f-ws"}, s)["status"] == 200
    after = sim.stats()["trading"]["order_faults"]
    for k in ("drop_answer", "error_after", "timeout_after", "unavailable", "delay"):
        assert after.get(k, 0) > before.get(k, 0)
    ws.close()


def test_faults_user_stream_closed_and_terminated(sim):
    s = account(sim)
    ws = WsApi(sim)
    assert ws.call("userDataStream.subscribe.signature", {}, s)["status"] == 200
    assert sim.close_user_streams(s.api_key) == 1
    deadline = time.monotonic() + 5
    while ws.closed is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ws.closed is not None
    # resubscribe on a new connection and reconcile: the events flow again
    ws = WsApi(sim)
    assert ws.call("userDataStream.subscribe.signature", {}, s)["status"] == 200
    place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(top(sim)[0] - 1))
    assert ws.next_event()["event"]["x"] == "NEW"
    assert sim.terminate_user_streams(s.api_key) == 1
    ev = [x for x in ws.drain_events() if x["event"]["e"] == "eventStreamTerminated"]
    assert ev and ev[0]["subscriptionId"] == 0
    place(sim, s, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(top(sim)[0] - 2))
    assert ws.drain_events() == []  # the subscription is gone
    assert sim.stats()["trading"]["user_stream_handlers"] >= 0
    ws.close()


def test_random_order_faults_are_seeded():
    from hftmm.simulator.trading import OrderFaults
    seqs = []
    for _ in range(2):
        f = OrderFaults(seed=5, rates={"error_after": 0.2, "delay": 0.1})
        seqs.append([f.decide() for _ in range(50)])
    assert seqs[0] == seqs[1] and any(seqs[0])
    with pytest.raises(ValueError):
        OrderFaults(rates={"nope": 0.1})
