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

from hftmm.execution.orders import OrderState, OrderTracker
from hftmm.execution.ratelimits import RateLimitBanned, RateLimiter
from hftmm.execution.signing import (Ed25519Signer, HmacSigner, RsaSigner, rest_payload, signed_query,
                                     ws_payload)
from hftmm.live.binance_gateway import (PRODUCTION_REST_URL, PRODUCTION_WS_API_URL, TESTNET_REST_URL,
                                        TESTNET_WS_API_URL, BinanceGateway, GatewayError, UserStreamProtocol,
                                        _Request, _retry_after_s, answer_events, may_trade_real_funds,
                                        rate_limit_headers)
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
