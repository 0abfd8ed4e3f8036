"""BinanceGateway against local fakes of Binance's REST API and WS API (127.0.0.1).

Unit level: the signed wire format (Binance's HMAC vector, HMAC/Ed25519/RSA
recomputed with hftmm.execution.signing), answers -> events (acks, rejects,
unknown outcomes, cancelReplace 200/400/409), rate-limit headers, 429/418,
time-outs and lost connections (never a retried order), the WS API user data
subscription, reconnect -> resubscribe -> reconcile, and that no secret leaks.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from hftmm.execution.orders import OrderState, OrderStateError, OrderTracker
from hftmm.execution.ratelimits import RateLimitBanned, RateLimiter
from hftmm.execution.signing import (Ed25519Signer, HmacSigner, RsaSigner, rest_payload, signed_query,
                                     ws_payload)
from hftmm.live.binance_gateway import (PRODUCTION_REST_URL, PRODUCTION_WS_API_URL, TESTNET_REST_URL,
                                        TESTNET_WS_API_URL, BinanceGateway, GatewayError, _Request)
from hftmm.live.binance_protocol import (UserStreamProtocol, answer_events, may_trade_real_funds,
                                         rate_limit_headers, retry_after_s)
from hftmm.live.gateway import EVENT_KINDS, GatewayEvent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_binance import FakeRest, FakeWsApi  # noqa: E402

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
VECTOR = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
          ("quantity", "1"), ("price", "0.1")]
VECTOR_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


# --------------------------------------------------------------------------- helpers

class Events:
    """A thread-safe sink that can wait for events."""

    def __init__(self) -> None:
        self.items: list[GatewayEvent] = []
        self.cond = threading.Condition()

    def __call__(self, ev: GatewayEvent) -> None:
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def kinds(self) -> list[str]:
        with self.cond:
            return [e.kind for e in self.items]

    def of(self, kind: str) -> list[GatewayEvent]:
        with self.cond:
            return [e for e in self.items if e.kind == kind]

    def wait(self, pred, timeout: float = 5.0) -> list[GatewayEvent]:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                if pred(self.items):
                    return list(self.items)
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; events: {[(e.kind, e.client_order_id) for e in self.items]}")
                self.cond.wait(left)

    def wait_kind(self, kind: str, n: int = 1, timeout: float = 5.0) -> list[GatewayEvent]:
        self.wait(lambda items: sum(e.kind == kind for e in items) >= n, timeout)
        return self.of(kind)


def until(pred, timeout: float = 5.0) -> None:
    """Poll ``pred`` (for conditions no event announces)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def hmac_verify(params: dict) -> bool:
    return params.get("apiKey") == API_KEY and params.get("signature") == HmacSigner(API_KEY, SECRET).sign(
        ws_payload(params))


@pytest.fixture
def rest():
    f = FakeRest()
    yield f
    f.close()


@pytest.fixture
def wsapi():
    f = FakeWsApi(hmac_verify)
    yield f
    f.close()


GW_FAST = dict(request_timeout_s=0.6, watchdog_s=1.0, ping_interval_s=0.3, backoff_initial_s=0.02,
               backoff_max_s=0.1)


@pytest.fixture
def make_gw(rest, wsapi):
    made = []

    def make(signer=None, start=True, **kw):
        gw = BinanceGateway("BTCUSDT", signer or HmacSigner(API_KEY, SECRET), rest_url=rest.url,
                            ws_api_url=wsapi.url, **{**GW_FAST, **kw})
        ev = Events()
        made.append(gw)
        if start:
            gw.start(ev)
            assert gw.wait_subscribed(5.0)
            ev.wait_kind("account")    # the first reconcile is done
            ev.wait_kind("open_orders")
        return gw, ev

    yield make
    for gw in made:
        gw.stop(timeout=3.0)


def place_params(cid: str, **kw) -> dict:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01000000",
            "price": "50000.00", "newClientOrderId": cid, **kw}


def order_body(cid: str, oid: int, status: str = "NEW", executed: str = "0.00000000", **kw) -> dict:
    return {"symbol": "BTCUSDT", "orderId": oid, "orderListId": -1, "clientOrderId": cid,
            "transactTime": 1700000000000, "price": "50000.00", "origQty": "0.01000000",
            "executedQty": executed, "cummulativeQuoteQty": "0.00000000", "status": status,
            "timeInForce": "GTC", "type": "LIMIT_MAKER", "side": "BUY", "fills": [], **kw}


def verify_rest_signature(rec, signer_kind: str, key) -> None:
    """The signature covers exactly the query before ``&signature=``."""
    payload, sig = rec.query.rsplit("&signature=", 1)
    if signer_kind == "HMAC":
        assert sig == HmacSigner(API_KEY, SECRET).sign(payload)
    elif signer_kind == "ED25519":
        assert "%" in sig or "+" not in sig and "/" not in sig and "=" not in sig   # percent-encoded
        key.public_key().verify(base64.b64decode(unquote(sig)), payload.encode())
    else:
        key.public_key().verify(base64.b64decode(unquote(sig)), payload.encode(), padding.PKCS1v15(),
                                hashes.SHA256())


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# --------------------------------------------------------------------------- construction

def test_presets_and_the_production_guard():
    s = HmacSigner(API_KEY, SECRET)
    gw = BinanceGateway.testnet("btcusdt", s)
    assert (gw.rest_url, gw.ws_api_url, gw.symbol) == (TESTNET_REST_URL, TESTNET_WS_API_URL, "BTCUSDT")
    with pytest.raises(ValueError, match="real funds"):
        BinanceGateway("BTCUSDT", s, rest_url=PRODUCTION_REST_URL, ws_api_url=PRODUCTION_WS_API_URL)
    with pytest.raises(ValueError, match="real funds"):
        BinanceGateway.production("BTCUSDT", s, allow_production=False)
    with pytest.raises(ValueError, match="real funds"):   # mixing is caught too
        BinanceGateway("BTCUSDT", s, rest_url=TESTNET_REST_URL, ws_api_url=PRODUCTION_WS_API_URL)
    prod = BinanceGateway.production("BTCUSDT", s, allow_production=True)
    assert prod.rest_url == "https://api.binance.com"
    with pytest.raises(ValueError, match="unencrypted"):
        BinanceGateway("BTCUSDT", s, rest_url="http://testnet.binance.vision", ws_api_url=TESTNET_WS_API_URL)
    assert BinanceGateway("BTCUSDT", s, rest_url="https://testnet.binance.vision/api/",
                          ws_api_url=TESTNET_WS_API_URL).rest_url == TESTNET_REST_URL
    assert not may_trade_real_funds("http://127.0.0.1:8080")
    assert not may_trade_real_funds("wss://demo-ws-api.binance.com/ws-api/v3")
    assert may_trade_real_funds("https://api1.binance.com") and may_trade_real_funds("https://example.org")
    for bad in ({"recv_window_ms": 60001}, {"workers": 0}, {"watchdog_s": 0}, {"new_order_resp_type": "X"}):
        with pytest.raises(ValueError):
            BinanceGateway.testnet("BTCUSDT", s, **bad)
    with pytest.raises(RuntimeError, match="not started"):
        gw.place_order(place_params("a"))


def test_start_fails_cleanly_when_the_server_is_down():
    s = HmacSigner(API_KEY, SECRET)
    gw = BinanceGateway("BTCUSDT", s, rest_url="http://127.0.0.1:9", ws_api_url="ws://127.0.0.1:9/ws-api/v3",
                        request_timeout_s=0.5)
    with pytest.raises(GatewayError) as ei:
        gw.start(Events())
    assert API_KEY not in str(ei.value) and SECRET not in str(ei.value)


# --------------------------------------------------------------------------- signing on the wire

def test_binance_hmac_vector_on_the_wire(rest):
    """Binance's published example goes out byte for byte (timestamp pinned)."""
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body("x", 1)))
    gw = BinanceGateway("LTCBTC", HmacSigner(API_KEY, SECRET), rest_url=rest.url,
                        ws_api_url="ws://127.0.0.1:9/ws-api/v3")
    gw._sink = Events()
    gw.server_clock.now_ms = lambda local_ms=None: 1499827319559
    gw._execute(_Request("place", dict(VECTOR), cid="x"))
    rec = rest.seen("POST", "/api/v3/order")[0]
    assert rec.query == rest_payload(VECTOR) + "&recvWindow=5000&timestamp=1499827319559&signature=" + VECTOR_SIG
    assert rec.headers["X-MBX-APIKEY"] == API_KEY
    assert gw._sink.kinds() == ["new_ack"]
    gw._close_conns()


@pytest.mark.parametrize("kind", ["HMAC", "ED25519", "RSA"])
def test_signed_requests(make_gw, rest, wsapi, kind):
    """REST: X-MBX-APIKEY, recvWindow, timestamp, signature last, the signature over the
    query as sent (base64 ones percent-encoded); WS API: signature over the sorted params."""
    key = None
    if kind == "HMAC":
        signer = HmacSigner(API_KEY, SECRET)
    elif kind == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
        signer = Ed25519Signer(API_KEY, _pem(key))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer = RsaSigner(API_KEY, _pem(key))
    if key is not None:
        def verify_ws(params):
            sig, data = base64.b64decode(params["signature"]), ws_payload(params).encode()
            if kind == "ED25519":
                key.public_key().verify(sig, data)
            else:
                key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
            return params["apiKey"] == API_KEY
        wsapi.verify = verify_ws
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body(r.params["newClientOrderId"], 7)))
    gw, ev = make_gw(signer=signer)
    sub = wsapi.requests[0]
    assert sub["method"] == "userDataStream.subscribe.signature"
    assert sorted(sub["params"]) == ["apiKey", "recvWindow", "signature", "timestamp"]
    gw.place_order(place_params("c-1", price="50000.10"))
    ev.wait_kind("new_ack")
    rec = rest.seen("POST", "/api/v3/order")[0]
    assert rec.headers["X-MBX-APIKEY"] == API_KEY
    names = [kv.split("=", 1)[0] for kv in rec.query.split("&")]
    assert names[-3:] == ["recvWindow", "timestamp", "signature"]
    assert rec.params["recvWindow"] == "5000" and rec.params["newOrderRespType"] == "FULL"
    ts = int(rec.params["timestamp"])
    assert abs(ts - time.time() * 1000) < 2000
    verify_rest_signature(rec, kind, key)
    # hftmm.execution.signing gives the same query for the same params and timestamp
    # (HMAC, Ed25519 and PKCS#1 v1.5 signatures are all deterministic)
    params = [tuple(kv.split("=", 1)) for kv in rec.query.split("&")[:-3]]
    assert signed_query([(k, unquote(v)) for k, v in params], signer, ts, 5000) == rec.query
    for r in rest.seen("GET", "/api/v3/account") + rest.seen("GET", "/api/v3/openOrders"):
        verify_rest_signature(r, kind, key)
    assert "signature" not in rest.seen("GET", "/api/v3/time")[0].query


# --------------------------------------------------------------------------- answers -> events

def test_acks_queries_cancels_and_reconcile(make_gw, rest):
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body(r.params["newClientOrderId"], 101)))
    cancels = []

    def cancel(r):
        cancels.append(r)
        if len(cancels) > 1:
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        cid = rest.seen("POST", "/api/v3/order")[0].params["newClientOrderId"]
        return 200, {**order_body(cid, 101, "CANCELED"), "origClientOrderId": cid, "clientOrderId": "cancel-xyz"}
    rest.route("DELETE", "/api/v3/order", cancel)

    def query(r):
        if r.params.get("origClientOrderId") == "ghost":
            return 400, {"code": -2013, "msg": "Order does not exist."}
        cid = rest.seen("POST", "/api/v3/order")[0].params["newClientOrderId"]
        return 200, order_body(cid, 101, "CANCELED")
    rest.route("GET", "/api/v3/order", query)
    gw, ev = make_gw()
    tracker = OrderTracker("BTCUSDT")
    order = tracker.new_order("BUY", "50000.00", "0.01")
    gw.place_order(tracker.new_order_params(order))
    ack = ev.wait_kind("new_ack")[0]
    assert ack.client_order_id == order.client_order_id and ack.data["orderId"] == 101
    tracker.on_new_ack(ack.client_order_id, ack.data["orderId"], response=ack.data)
    assert order.state == OrderState.OPEN
    cancel = tracker.request_cancel(order.client_order_id)
    assert cancel.params() == {"symbol": "BTCUSDT", "orderId": 101}
    gw.cancel_order(cancel.params())
    cack = ev.wait_kind("cancel_ack")[0]
    assert cack.client_order_id == order.client_order_id
    tracker.on_cancel_ack(cack.client_order_id, cack.data)
    assert order.state == OrderState.CANCELED
    gw.cancel_order({"symbol": "BTCUSDT", "orderId": 101})   # by orderId only: the gateway names the order
    crej = ev.wait_kind("cancel_reject")[0]
    assert crej.client_order_id == order.client_order_id and crej.data["code"] == -2011
    gw.query_order({"symbol": "BTCUSDT", "orderId": 101})
    gw.query_order({"symbol": "BTCUSDT", "origClientOrderId": "ghost"})
    ev.wait_kind("query_result")
    nf = ev.wait_kind("query_not_found")[0]
    assert nf.client_order_id == "ghost" and nf.data["code"] == -2013
    assert ev.of("query_result")[0].client_order_id == order.client_order_id
    # reconcile on demand
    rest.route("GET", "/api/v3/openOrders", lambda r: (200, [order_body("adopt-1", 555)]))
    gw.reconcile("BTCUSDT")
    oo = ev.wait_kind("open_orders", 2)[-1]
    assert oo.data["orders"][0]["clientOrderId"] == "adopt-1"
    acct = ev.wait_kind("account", 2)[-1]
    assert acct.data["balances"][0]["asset"] == "BTC"
    assert rest.seen("GET", "/api/v3/account")[-1].params["omitZeroBalances"] == "true"
    assert all(e.kind in EVENT_KINDS for e in ev.items)


def test_cancel_all(make_gw, rest):
    answers = [(200, [{**order_body("a", 1, "CANCELED"), "origClientOrderId": "a"},
                      {**order_body("b", 2, "CANCELED"), "origClientOrderId": "b"},
                      {"orderListId": 9, "contingencyType": "OCO", "orderReports": [
                          {**order_body("c", 3, "CANCELED"), "origClientOrderId": "c"}]}]),
               (400, {"code": -2011, "msg": "Unknown order sent."})]
    rest.route("DELETE", "/api/v3/openOrders", lambda r: answers.pop(0))
    gw, ev = make_gw()
    gw.cancel_all("BTCUSDT")
    acks = ev.wait_kind("cancel_ack", 3)
    assert [e.client_order_id for e in acks] == ["a", "b", "c"]
    gw.cancel_all("BTCUSDT")                  # -2011: nothing open, nothing reported
    until(lambda: len(rest.seen("DELETE", "/api/v3/openOrders")) == 2)
    time.sleep(0.1)
    assert len(ev.of("cancel_ack")) == 3 and not ev.of("error")


def test_rejects_unknowns_and_5xx(make_gw, rest):
    answers = {"r": (400, {"code": -2010, "msg": "Order would immediately match and take."}),
               "u5": (503, {"code": -1001, "msg": "Internal error; unable to process your request."}),
               "u7": (400, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
               "html": (502, b"<html>bad gateway</html>")}
    rest.route("POST", "/api/v3/order", lambda r: answers[r.params["newClientOrderId"]])
    rest.route("DELETE", "/api/v3/order", lambda r: (500, {"code": -1001, "msg": "Internal error"}))
    gw, ev = make_gw()
    tracker = OrderTracker("BTCUSDT")
    for cid in answers:
        gw.place_order(place_params(cid))
    gw.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "x"})
    ev.wait(lambda items: sum(e.kind in ("new_reject", "new_unknown") for e in items) == 4)
    rej = ev.of("new_reject")
    assert [(e.client_order_id, e.data["code"], e.data["http_status"]) for e in rej] == [("r", -2010, 400)]
    unk = {e.client_order_id: e.data for e in ev.of("new_unknown")}
    assert unk["u5"]["http_status"] == 503 and unk["u5"]["sent"] is True
    assert unk["u7"]["code"] == -1007 and unk["html"]["http_status"] == 502
    cu = ev.wait_kind("cancel_unknown")[0]
    assert cu.client_order_id == "x" and cu.data["http_status"] == 500
    # the data fits the order state machine
    o = tracker.new_order("BUY", "1", "1")
    tracker.on_reject(o.client_order_id, rej[0].data["code"], rej[0].data["msg"], rej[0].data["http_status"])
    assert o.state == OrderState.REJECTED and o.reject_reason == "post-only"
    o2 = tracker.new_order("BUY", "1", "1")
    tracker.on_reject(o2.client_order_id, unk["u5"]["code"], unk["u5"]["msg"], unk["u5"]["http_status"])
    assert o2.state == OrderState.UNKNOWN


def test_timeout_and_lost_connection_are_unknown_and_orders_are_never_retried(make_gw, rest):
    def order(r):
        return {"slow": ("sleep", 1.2), "drop": ("drop",)}[r.params["newClientOrderId"]]
    rest.route("POST", "/api/v3/order", order)
    reads = []

    def flaky_query(r):
        reads.append(r)
        return ("drop",) if len(reads) == 1 else (200, order_body("q", 5))
    rest.route("GET", "/api/v3/order", flaky_query)
    gw, ev = make_gw()
    t0 = time.monotonic()
    gw.place_order(place_params("slow"))
    gw.place_order(place_params("drop"))
    unk = {e.client_order_id: e for e in ev.wait_kind("new_unknown", 2)}
    assert time.monotonic() - t0 < 3.0
    assert "no answer" in unk["slow"].data["detail"] and unk["slow"].data["sent"] is True
    assert "connection lost" in unk["drop"].data["detail"] and unk["drop"].data["sent"] is True
    time.sleep(0.3)
    assert len(rest.seen("POST", "/api/v3/order")) == 2      # each order sent exactly once
    gw.query_order({"symbol": "BTCUSDT", "origClientOrderId": "q"})
    assert ev.wait_kind("query_result")[0].client_order_id == "q"
    assert len(reads) == 2                                    # a read is repeated


def test_connect_failure_is_unknown_but_not_sent(make_gw, rest):
    gw, ev = make_gw()
    rest.close()                                  # nobody listens any more
    gw._close_conns()
    gw.place_order(place_params("n"))
    gw.cancel_replace({"symbol": "BTCUSDT", "cancelOrigClientOrderId": "old", "newClientOrderId": "new",
                       "side": "BUY", "type": "LIMIT_MAKER", "quantity": "1", "price": "1"})
    ev.wait(lambda items: len([e for e in items if e.kind.endswith("_unknown")]) == 3)
    for e in ev.of("new_unknown") + ev.of("cancel_unknown"):
        assert e.data["sent"] is False and "connect failed" in e.data["detail"]
    assert {e.client_order_id for e in ev.of("new_unknown")} == {"n", "new"}
    assert [e.client_order_id for e in ev.of("cancel_unknown")] == ["old"]


CR_PARAMS = {"symbol": "BTCUSDT", "cancelOrigClientOrderId": "old", "side": "BUY", "type": "LIMIT_MAKER",
             "quantity": "0.01000000", "price": "50001.00"}


def test_cancel_replace_answers(make_gw, rest):
    ok_body = {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
               "cancelResponse": {**order_body("old", 1, "CANCELED"), "origClientOrderId": "old"},
               "newOrderResponse": order_body("n200", 2)}
    b400 = {"code": -2022, "msg": "Order cancel-replace failed.",
            "data": {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                     "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None}}
    b409 = {"code": -2021, "msg": "Order cancel-replace partially failed.",
            "data": {"cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
                     "cancelResponse": {**order_body("old", 1, "CANCELED"), "origClientOrderId": "old"},
                     "newOrderResponse": {"code": -2010, "msg": "Order would immediately match and take."}}}
    answers = {"n200": (200, ok_body), "n400": (400, b400), "n409": (409, b409),
               "n503": (503, {"code": -1001, "msg": "Internal error"}),
               "n1021": (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}),
               "nslow": ("sleep", 1.2)}
    rest.route("POST", "/api/v3/order/cancelReplace", lambda r: answers[r.params["newClientOrderId"]])
    gw, ev = make_gw()
    gw.resync_min_interval_s = 0.0
    times_before = len(rest.seen("GET", "/api/v3/time"))
    for new in answers:
        gw.cancel_replace({**CR_PARAMS, "newClientOrderId": new})
    crs = {e.data["new_client_order_id"]: e for e in ev.wait_kind("cancel_replace", 4)}
    assert {k: v.data["http_status"] for k, v in crs.items()} == {"n200": 200, "n400": 400, "n409": 409,
                                                                  "n503": 503}
    assert crs["n400"].data["body"] == b400 and crs["n409"].data["body"] == b409
    assert all(e.client_order_id == "old" and e.data["cancel_client_order_id"] == "old" for e in crs.values())
    rec = rest.seen("POST", "/api/v3/order/cancelReplace")[0]
    assert rec.params["cancelReplaceMode"] == "STOP_ON_FAILURE" and rec.params["newOrderRespType"] == "FULL"
    # -1021: neither leg attempted -> cancel_reject + new_reject, and the clock is resynced
    ev.wait(lambda items: any(e.kind == "new_reject" and e.client_order_id == "n1021" for e in items))
    assert [e.data["code"] for e in ev.of("cancel_reject")] == [-1021]
    assert len(rest.seen("GET", "/api/v3/time")) > times_before
    # no answer: both legs unknown
    ev.wait(lambda items: any(e.kind == "new_unknown" and e.client_order_id == "nslow" for e in items))
    assert [e.client_order_id for e in ev.wait_kind("cancel_unknown")] == ["old"]
    # the bodies fit the order state machine
    for new, status in (("n409", 409), ("n400", 400)):
        tr = OrderTracker("BTCUSDT")
        old = tr.new_order("BUY", "50000.00", "0.01")
        tr.orders["old"] = tr.orders.pop(old.client_order_id)
        old.client_order_id = "old"
        tr.on_new_ack("old", 1)
        _, nw = tr.prepare_cancel_replace("old", "50001.00", "0.01")
        tr.orders[new] = tr.orders.pop(nw.client_order_id)
        nw.client_order_id = new
        out = tr.cancel_replace_result(status, crs[new].data["body"], "old", new)
        if status == 409:
            assert (out.cancel_ok, out.new_ok) == (True, False) and old.state == OrderState.CANCELED
        else:
            assert (out.cancel_ok, out.new_ok) == (False, False) and nw.state == OrderState.REJECTED


# --------------------------------------------------------------------------- rate limits

def test_rate_limit_headers_update_the_shared_limiter(make_gw, rest):
    limiter = RateLimiter.from_exchange_info({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}]})
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body("h", 1),
                                                   {"X-MBX-USED-WEIGHT-1M": "1234", "X-MBX-ORDER-COUNT-10S": "7"}))
    gw, ev = make_gw(rate_limiter=limiter)
    assert gw.rate_limiter is limiter and gw.exchange_info is None     # given: exchangeInfo not fetched
    assert not rest.seen("GET", "/api/v3/exchangeInfo")
    gw.place_order(place_params("h"))
    ev.wait_kind("new_ack")
    usage = limiter.usage()
    assert usage["REQUEST_WEIGHT 1 MINUTE"][0] >= 1234 and usage["ORDERS 10 SECOND"][0] == 7


def test_limits_loaded_from_exchange_info(make_gw, rest):
    gw, ev = make_gw()
    assert rest.seen("GET", "/api/v3/exchangeInfo")[0].params == {"symbol": "BTCUSDT"}
    assert {(lim.kind, lim.interval, lim.interval_num, lim.limit) for lim in gw.rate_limiter.limits} >= {
        ("REQUEST_WEIGHT", "MINUTE", 1, 6000), ("ORDERS", "SECOND", 10, 100)}


def test_order_pacing_by_the_caller_or_the_gateway(make_gw, rest):
    """Default: the caller (QuoteManager) acquires order requests from the shared limiter,
    the gateway does not count them twice; reads are always counted here."""
    limiter = RateLimiter.from_exchange_info({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}]})
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body(r.params["newClientOrderId"], 1)))
    gw, ev = make_gw(start=False)
    gw.rate_limiter = limiter                                  # shared before start, as LiveEngine does
    gw.start(ev)
    ev.wait_kind("account")
    ev.wait_kind("open_orders")
    assert not rest.seen("GET", "/api/v3/exchangeInfo")
    with pytest.raises(RuntimeError):
        gw.rate_limiter = limiter
    before = limiter.usage()
    assert before["REQUEST_WEIGHT 1 MINUTE"][0] >= 26        # openOrders 6 + account 20
    gw.place_order(place_params("p"))
    ev.wait_kind("new_ack")
    after = limiter.usage()
    assert after["ORDERS 10 SECOND"][0] == 0 and after["REQUEST_WEIGHT 1 MINUTE"] == before["REQUEST_WEIGHT 1 MINUTE"]


def test_local_order_budget_refuses_without_sending(make_gw, rest):
    limiter = RateLimiter.from_exchange_info({"rateLimits": [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 2}]})
    rest.route("POST", "/api/v3/order", lambda r: (200, order_body(r.params["newClientOrderId"], 1)))
    gw, ev = make_gw(rate_limiter=limiter, workers=1, pace_orders=True)
    for i in range(3):
        gw.place_order(place_params(f"b{i}"))
    ev.wait(lambda items: sum(e.kind in ("new_ack", "new_reject") for e in items) == 3)
    rej = ev.of("new_reject")
    # the third is refused unless the 10 s window happened to roll between them
    if rej:
        assert rej[0].data["code"] == -1015 and rej[0].data["sent"] is False
        assert len(rest.seen("POST", "/api/v3/order")) == 2


def test_429_pauses_and_reports_the_code(make_gw, rest):
    rest.route("POST", "/api/v3/order", lambda r: (429, {"code": -1003, "msg": "Too much request weight used"},
                                                   {"Retry-After": "3"}))
    gw, ev = make_gw()
    gw.place_order(place_params("a"))
    r1 = ev.wait_kind("new_reject")[0]
    assert (r1.data["code"], r1.data["http_status"]) == (-1003, 429)
    assert gw.rate_limiter.paused_until > time.time() + 2
    gw.place_order(place_params("b"))            # within Retry-After: refused, not sent
    r2 = ev.wait_kind("new_reject", 2)[1]
    assert r2.client_order_id == "b" and r2.data["sent"] is False and r2.data["http_status"] == 429
    assert r2.data["code"] == -1003
    assert len(rest.seen("POST", "/api/v3/order")) == 1
    n_reads = len(rest.seen("GET", "/api/v3/openOrders"))
    gw.reconcile("BTCUSDT")                       # reads wait for the pause to end
    time.sleep(0.3)
    assert len(rest.seen("GET", "/api/v3/openOrders")) == n_reads


def test_429_for_the_order_count_still_lets_cancels_out(make_gw, rest):
    """-1015 is the account's order count: new orders wait out Retry-After, but cancels
    (which do not count) still go -- a session must be able to take its quotes down."""
    rest.route("POST", "/api/v3/order", lambda r: (429, {"code": -1015, "msg": "Too many new orders; current "
                                                   "limit is 100 orders per 10 SECOND."}, {"Retry-After": "5"}))
    rest.route("DELETE", "/api/v3/order", lambda r: (200, order_body("old", 7, status="CANCELED")))
    gw, ev = make_gw()
    gw.place_order(place_params("a"))
    assert ev.wait_kind("new_reject")[0].data["code"] == -1015
    gw.place_order(place_params("b"))                  # refused locally, not sent
    r2 = ev.wait_kind("new_reject", 2)[1]
    assert r2.data["sent"] is False and r2.data["code"] == -1015 and r2.data["http_status"] == 429
    gw.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "old"})
    assert ev.wait_kind("cancel_ack")[0].client_order_id == "old"
    assert len(rest.seen("POST", "/api/v3/order")) == 1 and len(rest.seen("DELETE", "/api/v3/order")) == 1
    n_reads = len(rest.seen("GET", "/api/v3/openOrders"))
    gw.reconcile("BTCUSDT")                            # reads are not held either
    ev.wait_kind("open_orders", n_reads + 1)
    assert gw.rate_limiter.pending_orders == 0         # every order request answered: none in flight


def test_order_count_in_flight_is_counted_until_the_answer(make_gw, rest):
    """The limiter counts an order request from acquire to its answer: the server's
    X-MBX-ORDER-COUNT-10S in one answer (1: it has seen one order) does not erase
    another still in flight. Taking the header as is let the next orders past the
    limit (HTTP 429 -1015 in a restart test)."""
    gate = threading.Event()

    def route(r):
        cid = r.params["newClientOrderId"]
        if cid == "b":
            gate.wait(0.4)            # held by the server (the gateway's timeout is 0.6 s)
        return 200, order_body(cid, 1 if cid == "a" else 2), {"X-MBX-ORDER-COUNT-10S": "1" if cid == "a" else "2"}

    rest.route("POST", "/api/v3/order", route)
    limiter = RateLimiter.from_exchange_info({"rateLimits": [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}]})
    gw, ev = make_gw(rate_limiter=limiter, pace_orders=True)
    if time.time() % 10 > 8.5:        # not across a 10 s window: its count starts again
        time.sleep(10 - time.time() % 10 + 0.05)
    gw.place_order(place_params("b"))
    time.sleep(0.05)
    gw.place_order(place_params("a"))
    assert ev.wait_kind("new_ack")[0].client_order_id == "a"
    assert limiter.pending_orders == 1
    assert limiter.usage()["ORDERS 10 SECOND"][0] == 2      # the server's 1 + "b" in flight
    gate.set()
    ev.wait_kind("new_ack", 2)
    assert limiter.pending_orders == 0 and limiter.usage()["ORDERS 10 SECOND"][0] == 2


def test_418_ban_stops_everything(make_gw, rest):
    ban_end_ms = int(time.time() * 1000) + 120_000
    rest.route("POST", "/api/v3/order", lambda r: (418, {"code": -1003,
                                                         "msg": f"Way too much request weight used; IP banned until "
                                                                f"{ban_end_ms}."}))
    gw, ev = make_gw()
    gw.place_order(place_params("a"))
    r = ev.wait_kind("new_reject")[0]
    assert r.data["http_status"] == 418
    assert gw.banned and gw.rate_limiter.paused_until > time.time() + 100
    with pytest.raises(RateLimitBanned):
        gw.check_banned()
    n_reads = len(rest.seen("GET"))
    gw.place_order(place_params("b"))          # refused with the ban's status, never sent
    gw.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "a"})
    gw.reconcile("BTCUSDT")                     # reads wait for the ban to end
    r2 = ev.wait_kind("new_reject", 2)[1]
    c2 = ev.wait_kind("cancel_reject")[0]
    for e in (r2, c2):
        assert (e.data["http_status"], e.data["code"], e.data["sent"]) == (418, -1003, False)
    time.sleep(0.2)
    assert len(rest.seen("POST", "/api/v3/order")) == 1 and not rest.seen("DELETE")
    assert len(rest.seen("GET")) == n_reads


def test_retry_after_parsing():
    assert retry_after_s({"Retry-After": "7"}, None, 0) == 7.0
    assert retry_after_s({}, {"code": -1003, "msg": "IP banned until 1700000060000."}, 1700000000000) == 60.0
    assert retry_after_s({}, {"code": -1003, "msg": "?"}, 0) == 60.0
    assert rate_limit_headers([{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 6000, "count": 70},
                               {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                                "limit": 50, "count": 3}]) == {"X-MBX-USED-WEIGHT-1M": "70",
                                                               "X-MBX-ORDER-COUNT-10S": "3"}


# --------------------------------------------------------------------------- user data stream

def exec_report(c: str, x: str = "NEW", X: str = "NEW", C: str = "", i: int = 1, **kw) -> dict:
    return {"e": "executionReport", "E": 1700000000001, "s": "BTCUSDT", "c": c, "S": "BUY", "o": "LIMIT_MAKER",
            "f": "GTC", "q": "0.01000000", "p": "50000.00", "C": C, "x": x, "X": X, "r": "NONE", "i": i,
            "l": "0.00000000", "z": "0.00000000", "L": "0.00000000", "n": "0", "N": None,
            "T": 1700000000000, "t": -1, "w": True, "m": False, "Z": "0.00000000", "Y": "0.00000000", **kw}


def test_user_stream_subscribes_then_reconciles_and_delivers_events(make_gw, rest, wsapi):
    gw, ev = make_gw()
    kinds = ev.kinds()
    assert kinds[0] == "user_stream" and ev.items[0].data["state"] == "subscribed"
    assert set(kinds[1:3]) == {"open_orders", "account"}
    # subscribe first, then reconcile: the snapshot is read after the subscription was answered
    assert rest.seen("GET", "/api/v3/openOrders")[0].at > wsapi.subscribed_at[0]
    assert wsapi.paths == ["/ws-api/v3"]
    assert gw.rate_limiter.usage()["REQUEST_WEIGHT 1 MINUTE"][0] >= 12   # rateLimits of the WS answer
    wsapi.push(exec_report("o-1", i=42))
    wsapi.push(exec_report("cxl-9", x="CANCELED", X="CANCELED", C="o-1", i=42))
    wsapi.push({"e": "outboundAccountPosition", "E": 1, "u": 1, "B": [{"a": "BTC", "f": "1", "l": "0"}]})
    wsapi.push({"e": "balanceUpdate", "E": 2, "a": "USDT", "d": "10.0", "T": 2})
    wsapi.push({"e": "listStatus", "E": 3})                 # not ours: ignored
    ev.wait_kind("balance_update")
    er = ev.of("execution_report")
    assert [e.client_order_id for e in er] == ["o-1", "o-1"] and er[1].data["x"] == "CANCELED"
    assert ev.of("account_position")[0].data["B"][0]["a"] == "BTC"
    assert ev.of("balance_update")[0].client_order_id is None
    # reports fit the tracker; the gateway learned orderId 42 -> o-1 for cancels by orderId
    assert gw._cid_of({"orderId": 42}, "origClientOrderId", "orderId") == "o-1"


def _wait_resubscribed(ev, n: int, timeout: float = 5.0) -> None:
    ev.wait(lambda items: sum(e.kind == "user_stream" and e.data["state"] == "subscribed" for e in items) >= n
            and sum(e.kind == "account" for e in items) >= n
            and sum(e.kind == "open_orders" for e in items) >= n, timeout)


def _stream_order(ev) -> list[str]:
    """Kinds after the first subscription, user_stream events by state."""
    out = []
    for e in ev.items:
        if e.kind == "user_stream":
            out.append(e.data["state"])
        elif e.kind in ("open_orders", "account"):
            out.append("reconcile")
    return out


def test_reconnect_resubscribes_then_reconciles(make_gw, rest, wsapi):
    gw, ev = make_gw()
    wsapi.current.drop()                                   # the connection dies
    _wait_resubscribed(ev, 2)
    wsapi.current.send({"event": {"e": "serverShutdown", "E": 5}})   # WS API form: no subscriptionId
    _wait_resubscribed(ev, 3)
    wsapi.push({"e": "eventStreamTerminated", "E": 6})
    _wait_resubscribed(ev, 4)
    order = _stream_order(ev)
    assert order[:4] == ["subscribed", "reconcile", "reconcile", "disconnected"]
    # every (re)subscription is followed by its reconcile (both answers before the next subscription)
    subs = [i for i, state in enumerate(order) if state == "subscribed"] + [len(order)]
    for a, b in zip(subs, subs[1:]):
        assert order[a + 1:b].count("reconcile") == 2
    # ... and the reconcile reads went out after the subscription was answered
    for sub_at, read in zip(wsapi.subscribed_at, rest.seen("GET", "/api/v3/openOrders")):
        assert read.at > sub_at
    assert "terminated" in order
    details = [e.data["detail"] for e in ev.of("user_stream") if e.data["state"] == "disconnected"]
    assert "connection lost" in details[0] or "close" in details[0]
    assert details[1:] == ["serverShutdown", "eventStreamTerminated"]
    assert len(rest.seen("GET", "/api/v3/openOrders")) == 4 and len(wsapi.requests) == 4
    # every subscription is signed afresh (new timestamp, new id)
    assert len({r["params"]["timestamp"] + r["id"] for r in wsapi.requests}) == 4
    assert gw.subscriptions == 4 and gw.reconnects == 3


def test_watchdog_lifetime_and_rejected_subscription(make_gw, rest, wsapi):
    gw, ev = make_gw(watchdog_s=0.6, ping_interval_s=0.2)
    wsapi.current.silent = True                            # no pongs, no data: the watchdog fires
    _wait_resubscribed(ev, 2)
    assert any("watchdog" in e.data["detail"] for e in ev.of("user_stream") if e.data["state"] == "disconnected")
    gw.max_lifetime_s = 0.4                                # the 24 h limit, shortened
    _wait_resubscribed(ev, 3)
    gw.max_lifetime_s = 3600.0
    assert any(e.data["detail"] == "lifetime" for e in ev.of("user_stream"))
    wsapi.reject = (400, -1022, "Signature for this request is not valid.")
    wsapi.current.drop()
    ev.wait(lambda items: any(e.kind == "user_stream" and "rejected" in e.data.get("detail", "")
                              for e in items))
    assert not gw.subscribed
    wsapi.reject = None                                    # recovers with backoff
    _wait_resubscribed(ev, 4)


def test_subscription_rate_limited_pauses_the_gateway(make_gw, rest, wsapi):
    gw, ev = make_gw()
    retry_at = int(time.time() * 1000) + 1000
    wsapi.reject = (429, -1003, "Too many requests.", {"serverTime": retry_at - 1000, "retryAfter": retry_at})
    wsapi.current.drop()
    ev.wait(lambda items: any(e.kind == "user_stream" and "status 429" in e.data.get("detail", "")
                              for e in items))
    assert gw.rate_limiter.paused_until > time.time() + 0.5
    n = len(wsapi.requests)
    wsapi.reject = None
    time.sleep(0.4)
    assert len(wsapi.requests) == n                # no reconnect during the pause
    _wait_resubscribed(ev, 2, timeout=5.0)
    assert time.time() * 1000 >= retry_at - 50


def test_subscription_without_answer_times_out(make_gw, rest, wsapi):
    wsapi.answer = False
    gw, ev = make_gw(start=False)
    gw.start(ev)
    ev.wait(lambda items: any(e.kind == "user_stream" and "no answer" in e.data["detail"] for e in items))
    wsapi.answer = True
    assert gw.wait_subscribed(5.0)


def test_user_stream_protocol_unit():
    p = UserStreamProtocol()
    frame = json.loads(p.subscribe_request(HmacSigner(API_KEY, SECRET), 1645423376532, 5000))
    assert frame["method"] == "userDataStream.subscribe.signature"
    assert hmac_verify(frame["params"]) and frame["params"]["timestamp"] == "1645423376532"
    assert p.on_message({"id": "other", "status": 200, "result": {"subscriptionId": 3}})[0][0] == "ignored"
    assert p.on_message({"id": frame["id"], "status": 200, "result": {"subscriptionId": 3}}) == [("subscribed", 3)]
    assert p.on_message({"id": frame["id"], "status": 400, "error": {"code": -1022, "msg": "bad"}}) == [
        ("rejected", 400, -1022, "bad", {})]
    assert p.on_message({"subscriptionId": 3, "event": exec_report("a")})[0][:3] == ("event", "execution_report", "a")
    assert p.on_message({"subscriptionId": 3, "event": exec_report("b", x="CANCELED", X="CANCELED", C="a")}
                        )[0][2] == "a"
    assert p.on_message({"event": {"e": "serverShutdown"}})[0][0] == "shutdown"
    assert p.on_message({"subscriptionId": 3, "event": {"e": "eventStreamTerminated"}})[0][0] == "terminated"
    assert p.on_message([1])[0][0] == "ignored"


def test_answer_events_unit():
    assert answer_events("place", 200, order_body("a", 1))[0][:2] == ("new_ack", "a")
    assert answer_events("place", 200, None)[0][0] == "new_unknown"         # garbled 200: unknown
    assert answer_events("cancel", 400, {"code": -2011, "msg": "Unknown order sent."}, "a") == [
        ("cancel_reject", "a", {"code": -2011, "msg": "Unknown order sent.", "http_status": 400})]
    assert answer_events("query", 500, {"code": -1001, "msg": "x"}, "a")[0][0] == "error"
    assert answer_events("open_orders", 200, [])[0] == ("open_orders", None, {"orders": []})
    with pytest.raises(ValueError):
        answer_events("nope", 200, {})


# --------------------------------------------------------------------------- stop, secrets

def test_stop_answers_queued_requests_as_unknown(make_gw, rest):
    rest.route("POST", "/api/v3/order", lambda r: ("sleep", 0.5) if r.params["newClientOrderId"] == "busy"
               else (200, order_body(r.params["newClientOrderId"], 1)))
    gw, ev = make_gw(workers=1)
    gw.place_order(place_params("busy"))
    until(lambda: rest.seen("POST", "/api/v3/order"))
    gw.place_order(place_params("q1"))
    gw.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "q2"})
    gw.stop()
    unk = {e.client_order_id: e.data for e in ev.of("new_unknown") + ev.of("cancel_unknown")}
    assert unk["q1"]["sent"] is False and unk["q2"]["sent"] is False
    assert unk["busy"]["sent"] is True                       # the one in flight timed out
    assert len(rest.seen("POST", "/api/v3/order")) == 1
    assert ev.of("user_stream")[-1].data["state"] == "subscribed"   # no reconnect noise after stop
    assert not [t for t in threading.enumerate() if t.name.startswith("hftmm-bgw")]
    with pytest.raises(RuntimeError):
        gw.place_order(place_params("late"))


def test_secrets_never_leak(rest, wsapi, caplog):
    """Every error path, with all logging captured at DEBUG: neither the secret, the
    private key, a signature nor the full API key appears anywhere."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = _pem(key)
    ed_key = "EdKey" + "x" * 59
    signers = [HmacSigner(API_KEY, SECRET), Ed25519Signer(ed_key, pem)]

    def verify_any(params):
        if params["apiKey"] == API_KEY:
            return hmac_verify(params)
        key.public_key().verify(base64.b64decode(params["signature"]), ws_payload(params).encode())
        return True
    wsapi.verify = verify_any
    answers = iter([(400, {"code": -1022, "msg": "Signature for this request is not valid."}),
                    (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
                    (503, b"oops"), ("sleep", 0.8), ("drop",),
                    (429, {"code": -1003, "msg": "too much"}, {"Retry-After": "0"}),
                    (400, {"code": -1021, "msg": "Timestamp outside recvWindow"})] * 4)
    rest.route("POST", "/api/v3/order", lambda r: next(answers))
    rest.route("POST", "/api/v3/order/cancelReplace", lambda r: next(answers))
    rest.route("GET", "/api/v3/order", lambda r: next(answers))
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    for signer in signers:
        gw = BinanceGateway("BTCUSDT", signer, rest_url=rest.url, ws_api_url=wsapi.url, **GW_FAST)
        texts += [repr(gw), str(gw), repr(signer)]
        ev = Events()

        def bad_sink(e, ev=ev):
            ev(e)
            if e.kind == "account":
                raise RuntimeError("sink bug")   # a failing sink is logged, not fatal
        gw.start(bad_sink)
        assert gw.wait_subscribed(5.0)
        for i in range(7):
            gw.place_order(place_params(f"s{i}"))
        ev.wait(lambda items: sum(e.kind.startswith("new_") for e in items) >= 7, timeout=10)
        gw.cancel_replace({**CR_PARAMS, "newClientOrderId": "crx"})
        gw.query_order({"symbol": "BTCUSDT", "origClientOrderId": "s1"})
        wsapi.reject = (400, -1022, "Signature for this request is not valid.")
        wsapi.current.drop()
        ev.wait(lambda items: any(e.kind == "user_stream" and "rejected" in e.data.get("detail", "")
                                  for e in items))
        wsapi.reject = None
        assert gw.wait_subscribed(5.0)
        until(lambda: len(ev.of("account")) >= 2)  # noqa: B023
        with pytest.raises(TypeError) as ei:
            gw.place_order({**place_params("f"), "price": 1.5})
        texts.append(str(ei.value))
        gw.stop()
        for e in ev.items:
            texts.append(repr(e))
            texts.append(json.dumps(e.data, default=str))
        with pytest.raises(TypeError):
            import pickle
            pickle.dumps(gw)
    bad = BinanceGateway("BTCUSDT", signers[0], rest_url="http://127.0.0.1:9", ws_api_url=wsapi.url,
                         request_timeout_s=0.3)
    with pytest.raises(GatewayError) as ei:
        bad.start(Events())
    texts.append(str(ei.value))
    texts += [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    blob = "\n".join(texts)
    assert "sink bug" in blob and "RuntimeError" in blob           # the capture did see the error paths
    assert "no answer" in blob and "-1022" in blob
    sigs = [r.params["signature"] for r in rest.requests if "signature" in r.params]
    sigs += [r["params"]["signature"] for r in wsapi.requests]
    assert len(sigs) > 20
    forbidden = [SECRET, API_KEY, ed_key, pem.decode(), *pem.decode().splitlines()[1:-1], *sigs,
                 *(unquote(s) for s in sigs)]
    for secret in forbidden:
        assert secret not in blob
    assert API_KEY[:4] in blob or ed_key[:4] in blob                 # a prefix at most


# --------------------------------------------------------------------------- end to end: the simulator

from decimal import Decimal  # noqa: E402

from hftmm.simulator import ExchangeSimulator, SyntheticSource  # noqa: E402
from hftmm.synthetic import SyntheticConfig  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    s = ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=11), speed=1.0))
    s.start(paused=True)            # a still market: only injected trades fill
    yield s
    s.stop()


_accounts = iter(range(1, 1000))


@pytest.fixture
def sim_gw(sim):
    """A started gateway on the simulator with a fresh account, and a tracker fed by its events."""
    made = []

    def make(kind: str = "HMAC", **kw):
        key = f"bgwacct{next(_accounts)}"
        balances = {"BTC": "1", "USDT": "100000"}
        if kind == "HMAC":
            secret = f"secret{key}"
            sim.add_account(key, hmac_secret=secret, balances=balances)
            signer = HmacSigner(key, secret)
        else:
            pk = ed25519.Ed25519PrivateKey.generate() if kind == "ED25519" else \
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = pk.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
            sim.add_account(key, balances=balances, **{f"{kind.lower()}_public_pem": pub})
            signer = (Ed25519Signer if kind == "ED25519" else RsaSigner)(key, _pem(pk))
        gw = BinanceGateway("BTCUSDT", signer, rest_url=sim.rest_url, ws_api_url=f"{sim.ws_url}/ws-api/v3",
                            **{**GW_FAST, "request_timeout_s": 1.0, **kw})
        ev = Events()
        made.append(gw)
        gw.start(ev)
        assert gw.wait_subscribed(5.0)
        ev.wait_kind("account")
        ev.wait_kind("open_orders")
        return gw, ev, key

    yield make
    for gw in made:
        gw.stop(timeout=3.0)


def sim_top(sim) -> tuple[Decimal, Decimal]:
    _, bt, _, at, _ = sim.ground_truth()
    tick = Decimal(sim.tick_size)
    return bt[0] * tick, at[0] * tick


def apply(tr: OrderTracker, ev: GatewayEvent) -> None:
    """Feed one event to the order state machine the way QuoteManager does."""
    k, cid, d = ev.kind, ev.client_order_id, ev.data
    if k == "execution_report":
        tr.on_execution_report(d)
    elif k == "open_orders":
        tr.reconcile_open_orders(d["orders"])
    elif k == "query_result":
        tr.on_query_result(d)
    elif cid not in tr.orders:
        return
    elif k == "new_ack":
        tr.on_new_ack(cid, d["orderId"], response=d)
    elif k == "new_reject":
        tr.on_reject(cid, d["code"], d["msg"], d["http_status"])
    elif k in ("new_unknown", "cancel_unknown"):
        tr.on_request_unknown(cid, d["detail"])
    elif k == "cancel_ack":
        tr.on_cancel_ack(cid, d)
    elif k == "cancel_reject":
        tr.on_cancel_reject(cid, d["code"], d["msg"], d["http_status"])
    elif k == "cancel_replace":
        tr.cancel_replace_result(d["http_status"], d["body"], d["cancel_client_order_id"], d["new_client_order_id"])
    elif k == "query_not_found":
        tr.on_query_not_found(cid)


class Driver:
    """Applies every event to a tracker in order, from the test thread."""

    def __init__(self, ev: Events, tr: OrderTracker) -> None:
        self.ev, self.tr, self.done = ev, tr, 0
        self.state_errors: list[str] = []

    def pump(self) -> None:
        with self.ev.cond:
            items = self.ev.items[self.done:]
            self.done += len(items)
        for e in items:
            try:
                apply(self.tr, e)
            except OrderStateError as exc:
                # as QuoteManager: logged, not fatal; none is expected
                self.state_errors.append(str(exc))

    def until(self, pred, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while True:
            self.pump()
            if pred():
                return
            if time.monotonic() > end:
                raise AssertionError(f"not reached; events {[(e.kind, e.client_order_id) for e in self.ev.items]}")
            time.sleep(0.01)


def test_e2e_place_fill_cancel_replace_cancel_all(sim, sim_gw):
    gw, ev, key = sim_gw()
    tr = OrderTracker("BTCUSDT", id_prefix="e2e")
    drv = Driver(ev, tr)
    bid, ask = sim_top(sim)
    acct = ev.of("account")[0].data
    assert {b["asset"] for b in acct["balances"]} == {"BTC", "USDT"}
    # a post-only bid below the best bid rests; one at the ask is rejected (-2010)
    o1 = tr.new_order("BUY", bid - 1, "0.05")
    gw.place_order(tr.new_order_params(o1))
    bad = tr.new_order("BUY", ask, "0.01")
    gw.place_order(tr.new_order_params(bad))
    drv.until(lambda: o1.state == OrderState.OPEN and bad.state == OrderState.REJECTED)
    assert bad.reject_reason == "post-only" and ev.of("new_reject")[0].data["code"] == -2010
    assert any(e.data["x"] == "NEW" and e.client_order_id == o1.client_order_id for e in ev.of("execution_report"))
    # a trade through our price fills part of it: the report arrives over the WS API
    sim.inject_trade(str(bid - 2), "0.02", buyer_maker=True)
    drv.until(lambda: o1.filled_qty == Decimal("0.02"))
    assert o1.state == OrderState.PARTIALLY_FILLED and tr.fills[-1].trade_id is not None
    assert ev.wait_kind("account_position", 2)[-1].data["e"] == "outboundAccountPosition"
    # cancelReplace (200): the rest of o1 is cancelled, o2 placed
    req, o2 = tr.prepare_cancel_replace(o1.client_order_id, bid - 2, "0.03")
    gw.cancel_replace({"symbol": "BTCUSDT", "cancelOrderId": o1.order_id, "side": "BUY", "type": "LIMIT_MAKER",
                       "quantity": "0.03", "price": str(bid - 2), "newClientOrderId": o2.client_order_id})
    drv.until(lambda: o1.state == OrderState.CANCELED and o2.state == OrderState.OPEN)
    cr = ev.of("cancel_replace")[0]
    assert cr.data["http_status"] == 200 and cr.client_order_id == o1.client_order_id   # named via orderId
    # cancelReplace 409: the cancel succeeds, the post-only replacement would take -> rejected
    _, o3 = tr.prepare_cancel_replace(o2.client_order_id, ask + 1, "0.01", side="BUY")
    gw.cancel_replace({"symbol": "BTCUSDT", "cancelOrigClientOrderId": o2.client_order_id, "side": "BUY",
                       "type": "LIMIT_MAKER", "quantity": "0.01", "price": str(ask + 1),
                       "newClientOrderId": o3.client_order_id})
    drv.until(lambda: o2.state == OrderState.CANCELED and o3.state == OrderState.REJECTED)
    assert ev.of("cancel_replace")[1].data["http_status"] == 409
    # cancelReplace 400: the order to cancel is gone, the new one is not attempted
    stale = tr.new_order("BUY", bid - 3, "0.01")
    gw.cancel_replace({"symbol": "BTCUSDT", "cancelOrigClientOrderId": o2.client_order_id, "side": "BUY",
                       "type": "LIMIT_MAKER", "quantity": "0.01", "price": str(bid - 3),
                       "newClientOrderId": stale.client_order_id})
    c400 = ev.wait_kind("cancel_replace", 3)[2]
    assert c400.data["http_status"] == 400 and c400.data["body"]["data"]["newOrderResult"] == "NOT_ATTEMPTED"
    # plain cancel, then cancel_all for the rest
    o5, o6 = tr.new_order("SELL", ask + 5, "0.01"), tr.new_order("SELL", ask + 6, "0.01")
    for o in (o5, o6):
        gw.place_order(tr.new_order_params(o))
    drv.until(lambda: o5.state == o6.state == OrderState.OPEN)
    gw.cancel_order(tr.request_cancel(o5.client_order_id).params())
    drv.until(lambda: o5.state == OrderState.CANCELED)
    gw.cancel_all("BTCUSDT")
    drv.until(lambda: o6.state == OrderState.CANCELED)
    assert [e.client_order_id for e in ev.of("cancel_ack")][-1] == o6.client_order_id
    # the tracker agrees with the exchange on every order it placed
    exch = {o["clientOrderId"]: o for o in sim.orders_of(key)}
    for o in (o1, o2, o5, o6):
        assert exch[o.client_order_id]["status"] == o.state.value
        assert Decimal(exch[o.client_order_id]["executedQty"]) == o.filled_qty
    assert not tr.active_orders() or all(o.state == OrderState.REJECTED for o in tr.active_orders())
    # the x=REJECTED report of a cancelReplace's new order may come before the 409
    # answer: the tracker takes both, in either order, without a state error
    assert drv.state_errors == []


def test_e2e_user_stream_dropped_and_terminated_then_reconciled(sim, sim_gw):
    gw, ev, key = sim_gw()
    tr = OrderTracker("BTCUSDT", id_prefix="e2e")
    drv = Driver(ev, tr)
    bid, _ = sim_top(sim)
    o = tr.new_order("BUY", bid - Decimal("0.5"), "0.04")
    gw.place_order(tr.new_order_params(o))
    drv.until(lambda: o.state == OrderState.OPEN)
    subs = len([e for e in ev.of("user_stream") if e.data["state"] == "subscribed"])
    # the simulator drops the WS API connection; a fill happens while nobody listens
    assert sim.close_user_streams(key) == 1
    ev.wait(lambda items: any(e.kind == "user_stream" and e.data["state"] == "disconnected" for e in items))
    sim.inject_trade(str(bid - 1), "0.01", buyer_maker=True)
    # resubscribed, then reconciled: openOrders shows the fill the stream missed
    drv.until(lambda: o.filled_qty == Decimal("0.01"), timeout=8)
    states = [e.data["state"] for e in ev.of("user_stream")]
    assert states[subs:subs + 2] == ["disconnected", "subscribed"]
    assert o.state == OrderState.PARTIALLY_FILLED and tr.fills[-1].trade_id is None   # learned from the snapshot
    n_open = len(ev.of("open_orders"))
    # eventStreamTerminated: a fresh subscription and another reconcile
    assert sim.terminate_user_streams(key) == 1
    ev.wait(lambda items: sum(e.kind == "open_orders" for e in items) > n_open and
            [e.data["state"] for e in items if e.kind == "user_stream"][-1] == "subscribed")
    assert "terminated" in [e.data["state"] for e in ev.of("user_stream")]
    # reports flow on the new subscription
    sim.inject_trade(str(bid - 1), "0.01", buyer_maker=True)
    drv.until(lambda: o.filled_qty == Decimal("0.02"))
    assert tr.fills[-1].trade_id is not None
    assert Decimal(sim.orders_of(key)[0]["executedQty"]) == o.filled_qty


def test_e2e_unknown_outcomes_are_resolved_by_queries(sim, sim_gw):
    gw, ev, key = sim_gw(request_timeout_s=0.5)
    tr = OrderTracker("BTCUSDT", id_prefix="e2e")
    drv = Driver(ev, tr)
    bid, _ = sim_top(sim)
    faults = [("drop_answer", {"hold_s": 2.0}), ("error_after", {}), ("timeout_after", {}), ("unavailable", {})]
    orders = []
    for i, (kind, params) in enumerate(faults):
        sim.inject_order_fault(kind, **params)
        o = tr.new_order("BUY", bid - 2 - i, "0.01")
        orders.append(o)
        gw.place_order(tr.new_order_params(o))
        drv.until(lambda: o.state == OrderState.UNKNOWN or o.state == OrderState.OPEN, timeout=5)  # noqa: B023
        drv.until(lambda: len(ev.of("new_unknown")) == i + 1)  # noqa: B023
    unk = {e.client_order_id: e.data for e in ev.of("new_unknown")}
    assert "no answer" in unk[orders[0].client_order_id]["detail"]
    assert unk[orders[1].client_order_id]["http_status"] == 500
    assert unk[orders[2].client_order_id]["code"] == -1007
    assert unk[orders[3].client_order_id]["http_status"] == 503
    # each order was sent once; the engine queries what it does not know
    for o in orders:
        gw.query_order({"symbol": "BTCUSDT", "origClientOrderId": o.client_order_id})
    drv.until(lambda: all(o.state != OrderState.UNKNOWN for o in orders))
    assert [o.state for o in orders] == [OrderState.OPEN] * 3 + [OrderState.REJECTED]   # 503 -1008: not executed
    assert ev.of("query_not_found")[0].client_order_id == orders[3].client_order_id
    assert len([x for x in sim.orders_of(key)]) == 3
    # a cancel whose answer is lost: unknown, then the query says CANCELED
    sim.inject_order_fault("drop_answer", hold_s=2.0)
    gw.cancel_order(tr.request_cancel(orders[0].client_order_id).params())
    cu = ev.wait_kind("cancel_unknown")[0]
    assert cu.client_order_id == orders[0].client_order_id and cu.data["sent"] is True
    gw.query_order({"symbol": "BTCUSDT", "orderId": orders[0].order_id})
    drv.until(lambda: orders[0].state == OrderState.CANCELED)   # (the report may have told it first)
    gw.cancel_all("BTCUSDT")
    drv.until(lambda: all(o.is_terminal for o in orders))


@pytest.mark.parametrize("kind", ["ED25519", "RSA"])
def test_e2e_asymmetric_keys(sim, sim_gw, kind):
    """Base64 signatures (percent-encoded in REST, plain in the WS API) verify on the simulator."""
    gw, ev, key = sim_gw(kind)
    tr = OrderTracker("BTCUSDT", id_prefix="e2e")
    drv = Driver(ev, tr)
    bid, _ = sim_top(sim)
    o = tr.new_order("BUY", bid - 4, "0.01")
    gw.place_order(tr.new_order_params(o))
    drv.until(lambda: o.state == OrderState.OPEN and any(e.kind == "execution_report" for e in ev.items))
    gw.cancel_order(tr.request_cancel(o.client_order_id).params())
    drv.until(lambda: o.state == OrderState.CANCELED)
    assert not ev.of("new_reject") and not ev.of("error")
