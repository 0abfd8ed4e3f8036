"""The Binance USD-M futures gateway: signed ``/fapi`` REST, user data over a listenKey stream.

:class:`BinanceFuturesGateway` is the spot :class:`~hftmm.live.binance_gateway.BinanceGateway`
(the same request queue, signing, server clock, rate limiting, 429/418 pauses,
unknown outcomes and reconnects) with the USD-M endpoints and user stream:

- **Orders**: ``POST /fapi/v1/order`` (a post-only quote, ``LIMIT_MAKER`` in the
  engine's spot vocabulary, goes out as ``LIMIT`` + ``timeInForce=GTX``;
  ``newOrderRespType`` RESULT), ``DELETE /fapi/v1/order``, ``GET /fapi/v1/order``,
  ``DELETE /fapi/v1/allOpenOrders`` (its cancels arrive on the stream),
  ``GET /fapi/v1/openOrders``, ``GET /fapi/v3/account``. USD-M has no
  cancel-replace: the engine cancels and places (``supports_cancel_replace``).
- **Set-up** at :meth:`start`, before any order: one-way position mode required
  (``GET /fapi/v1/positionSide/dual``; hedge mode is refused with the fix), the
  margin type (``POST /fapi/v1/marginType``, -4046 "no need to change" is fine) and
  the leverage (``POST /fapi/v1/leverage``) as configured, and the leverage
  brackets (``GET /fapi/v1/leverageBracket``) for the risk checks (:attr:`brackets`).
- **User data**: ``POST /fapi/v1/listenKey`` (API key only), then the stream
  ``{ws_url}/private/ws?listenKey=`` (``user_stream_path``); ``PUT`` keepalive every
  ``keepalive_s`` (Binance: a key lives 60 min unless extended); ``listenKeyExpired``,
  a failed keepalive, a watchdog and the 24 h limit reconnect with a fresh key, and
  every connection is followed by a reconcile (open orders and the account), as on spot.
- **Translation** into the engine's (spot) event vocabulary, so one order state
  machine (:class:`~hftmm.execution.orders.OrderTracker`) serves both markets:
  ``ORDER_TRADE_UPDATE`` -> ``execution_report`` (``l``/``L``/``z``, ``n``/``N``,
  ``t``, ``m``, cumulative quote ``Z`` summed from the fills; the liquidation's
  ``CALCULATED`` execution is a ``TRADE``), order bodies get ``cummulativeQuoteQty``
  from ``cumQuote``; -5022 (GTX would take) is the engine's post-only reject;
  ``ACCOUNT_UPDATE`` -> ``account_position`` (its ``a`` object, with ``m`` the reason,
  e.g. ``FUNDING_FEE``), ``MARGIN_CALL`` -> ``margin_call``.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Optional
from urllib.parse import quote

import websocket

from hftmm.execution.margin import LeverageBrackets
from hftmm.execution.orders import ERR_NEW_ORDER_REJECTED
from hftmm.execution.signing import Signer
from hftmm.live.binance_gateway import BinanceGateway, GatewayError, _Endpoint, _Lost
from hftmm.live.binance_protocol import Emission, answer_events, decode_body, describe, err_fields

__all__ = ["BinanceFuturesGateway", "FuturesUserStreamProtocol", "translate_order_update", "translate_order_body",
           "USDM_TESTNET_REST_URL", "USDM_TESTNET_WS_URL", "USDM_PRODUCTION_REST_URL", "USDM_PRODUCTION_WS_URL",
           "ERR_GTX_REJECTED"]

log = logging.getLogger(__name__)

USDM_TESTNET_REST_URL = "https://testnet.binancefuture.com"
USDM_TESTNET_WS_URL = "wss://fstream.binancefuture.com"
USDM_PRODUCTION_REST_URL = "https://fapi.binance.com"
USDM_PRODUCTION_WS_URL = "wss://fstream.binance.com"
ERR_GTX_REJECTED = -5022
ERR_NO_NEED_MARGIN_TYPE = -4046
ERR_NO_SUCH_LISTEN_KEY = -1125

# Weights from the USD-M REST docs (a new order: 0 IP weight, 1 on each order count).
_FAPI = {
    "place": _Endpoint("POST", "/fapi/v1/order", 0, 1),
    "cancel": _Endpoint("DELETE", "/fapi/v1/order", 1),
    "query": _Endpoint("GET", "/fapi/v1/order", 1),
    "cancel_all": _Endpoint("DELETE", "/fapi/v1/allOpenOrders", 1),
    "open_orders": _Endpoint("GET", "/fapi/v1/openOrders", 1),
    "account": _Endpoint("GET", "/fapi/v3/account", 5),
}


def translate_order_body(body: Mapping[str, Any]) -> dict:
    """A USD-M order body (new / cancel / query) in the spot fields the order tracker reads."""
    d = dict(body)
    if "cumQuote" in d:
        d.setdefault("cummulativeQuoteQty", d["cumQuote"])
    if d.get("timeInForce") == "GTX" and d.get("type") == "LIMIT":
        d["type"] = "LIMIT_MAKER"
    if "updateTime" in d:
        d.setdefault("transactTime", d["updateTime"])
    return d


def _num(v: Any) -> Decimal:
    """A decimal field; ValueError naming it when it is not one (the frame is skipped)."""
    try:
        d = Decimal(str(v if v is not None else "0") or "0")
    except InvalidOperation:
        raise ValueError(f"not a number: {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {v!r}")
    return d


def translate_order_update(event: Mapping[str, Any], cum_quote: Optional[Decimal] = None) -> dict:
    """``ORDER_TRADE_UPDATE`` -> an ``executionReport``-shaped dict. ``cum_quote``: the
    order's cumulative quote before this event (None: from ``ap`` x ``z``)."""
    o = event["o"]
    x = o.get("x")
    if x == "CALCULATED":                      # the liquidation's execution: a fill
        x = "TRADE"
    elif x == "AMENDMENT":                     # a modified order: quantity (and price) changed
        x = "REPLACED"
    last_q, last_p = _num(o.get("l")), _num(o.get("L"))
    trade = x == "TRADE" and last_q > 0
    y = last_q * last_p if trade else Decimal(0)
    if cum_quote is None:                      # an order this stream has not seen fill: from ap x z
        z_total = _num(o.get("z")) * _num(o.get("ap"))
    else:
        z_total = cum_quote + y
    typ = o.get("o")
    if typ == "LIMIT" and o.get("f") == "GTX":
        typ = "LIMIT_MAKER"
    return {"e": "executionReport", "E": event.get("E"), "s": o.get("s"), "c": o.get("c"), "S": o.get("S"),
            "o": typ, "f": o.get("f"), "q": o.get("q"), "p": o.get("p"), "x": x, "X": o.get("X"), "r": "NONE",
            "i": o.get("i"), "l": o.get("l", "0"), "z": o.get("z", "0"), "L": o.get("L", "0"),
            "n": o.get("n", "0") if trade else "0", "N": o.get("N"), "T": o.get("T", event.get("T")),
            "t": o.get("t") if trade else -1, "m": bool(o.get("m")), "Z": f"{z_total:f}", "Y": f"{y:f}",
            "R": bool(o.get("R")), "ps": o.get("ps", "BOTH"), "rp": o.get("rp", "0")}


class FuturesUserStreamProtocol:
    """Sans-I/O listenKey stream: frames in (raw, or ``{"stream", "data"}`` combined),
    the gateway's actions out (see :class:`~hftmm.live.binance_protocol.UserStreamProtocol`).
    The connection itself is the subscription: ``subscribed`` comes at once."""

    _MAX_ORDERS = 10_000

    def __init__(self, listen_key: str, cum: Optional[OrderedDict] = None) -> None:
        self.listen_key = listen_key
        # orderId -> cumulative quote of the fills seen (the gateway's, kept across connections)
        self._cum: OrderedDict[Any, Decimal] = cum if cum is not None else OrderedDict()

    def subscribe_request(self, signer: Signer, timestamp_ms: int, recv_window_ms: Optional[int]) -> None:
        return None

    def on_open(self) -> list[tuple]:
        return [("subscribed", f"listenKey {self.listen_key[:4]}...", "listenKey stream")]

    def on_message(self, msg: Any) -> list[tuple]:
        if isinstance(msg, Mapping) and "data" in msg and "stream" in msg:
            msg = msg["data"]
        if not isinstance(msg, Mapping):
            return [("ignored", f"non-object frame {type(msg).__name__}")]
        etype = msg.get("e")
        if etype == "ORDER_TRADE_UPDATE" and isinstance(msg.get("o"), Mapping):
            o = msg["o"]
            oid = o.get("i")
            try:
                report = translate_order_update(msg, self._cum.get(oid) if o.get("x") != "NEW" else Decimal(0))
            except (ValueError, TypeError) as exc:
                return [("skipped", f"ORDER_TRADE_UPDATE of order {oid} skipped: {exc}")]
            self._cum[oid] = Decimal(report["Z"])
            self._cum.move_to_end(oid)
            if o.get("X") in ("FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"):
                self._cum.pop(oid, None)
            while len(self._cum) > self._MAX_ORDERS:
                self._cum.popitem(last=False)
            return [("event", "execution_report", o.get("c"), report)]
        if etype == "ACCOUNT_UPDATE" and isinstance(msg.get("a"), Mapping):
            return [("event", "account_position", None, {"e": "ACCOUNT_UPDATE", "E": msg.get("E"),
                                                         "T": msg.get("T"), **msg["a"]})]
        if etype == "MARGIN_CALL":
            return [("event", "margin_call", None, dict(msg))]
        if etype == "listenKeyExpired":
            return [("terminated", dict(msg), "listenKeyExpired")]
        return [("ignored", f"event {etype!r}")]


class BinanceFuturesGateway(BinanceGateway):
    """Binance USD-M futures gateway for one perpetual (see the module docstring).

    Parameters beyond :class:`~hftmm.live.binance_gateway.BinanceGateway`'s:
      ws_url: the futures stream base (e.g. :data:`USDM_TESTNET_WS_URL`); the user stream is
        ``ws_url + user_stream_path`` with ``{key}`` the listenKey.
      leverage: set at start (1..125; None: leave the account's).
      margin_type: ``"CROSSED"`` or ``"ISOLATED"`` set at start (None: leave it).
      keepalive_s [s]: ``PUT /fapi/v1/listenKey`` period (Binance: < 60 min; default 30 min).
    """

    name = "binance-usdm"
    ENDPOINTS = _FAPI
    TIME_PATH, INFO_PATH = "/fapi/v1/time", "/fapi/v1/exchangeInfo"
    supports_cancel_replace = False

    def __init__(self, symbol: str, signer: Signer, *, rest_url: str, ws_url: str,
                 user_stream_path: str = "/private/ws?listenKey={key}", leverage: Optional[int] = None,
                 margin_type: Optional[str] = None, keepalive_s: float = 1800.0,
                 new_order_resp_type: str = "RESULT", **kw: Any) -> None:
        if new_order_resp_type not in ("ACK", "RESULT"):
            raise ValueError(f"USD-M newOrderRespType is ACK or RESULT, got {new_order_resp_type!r}")
        if leverage is not None and not 1 <= int(leverage) <= 125:
            raise ValueError(f"leverage must be in [1, 125], got {leverage}")
        if margin_type is not None and margin_type not in ("CROSSED", "ISOLATED"):
            raise ValueError(f"margin_type must be CROSSED or ISOLATED, got {margin_type!r}")
        if not 0 < keepalive_s < 3600:
            raise ValueError(f"keepalive_s must be in (0, 3600) (a listenKey lives 60 min), got {keepalive_s}")
        if "{key}" not in user_stream_path:
            raise ValueError("user_stream_path must contain {key}")
        super().__init__(symbol, signer, rest_url=rest_url, ws_api_url=ws_url.rstrip("/") + "/ws",
                         new_order_resp_type="RESULT", **kw)
        self.new_order_resp_type = new_order_resp_type
        self.ws_url = ws_url.rstrip("/")
        self.user_stream_path = user_stream_path
        self.leverage = None if leverage is None else int(leverage)
        self.margin_type = margin_type
        self.keepalive_s = float(keepalive_s)
        self.brackets: Optional[LeverageBrackets] = None
        self.settings: dict[str, Any] = {}      # what start() found and set (leverage, marginType, ...)
        self._listen_key: Optional[str] = None
        self._cum_quotes: OrderedDict = OrderedDict()    # kept across user-stream connections
        self._next_keepalive = 0.0
        self.keepalives = 0

    # ------------------------------------------------------------ presets
    @classmethod
    def testnet(cls, symbol: str, signer: Signer, **kw: Any) -> "BinanceFuturesGateway":
        """Binance USD-M futures testnet (``testnet.binancefuture.com``, ``fstream.binancefuture.com``)."""
        return cls(symbol, signer, rest_url=USDM_TESTNET_REST_URL, ws_url=USDM_TESTNET_WS_URL, **kw)

    @classmethod
    def production(cls, symbol: str, signer: Signer, *, allow_production: bool,
                   **kw: Any) -> "BinanceFuturesGateway":
        """Binance USD-M production: real funds; ``allow_production`` must be True."""
        return cls(symbol, signer, rest_url=USDM_PRODUCTION_REST_URL, ws_url=USDM_PRODUCTION_WS_URL,
                   allow_production=allow_production, **kw)

    # ------------------------------------------------------------ lifecycle
    def start(self, sink: Any) -> None:
        """As spot's, then the account's set-up (one-way mode, margin type, leverage,
        brackets) before the user stream opens. Raises :class:`GatewayError`."""
        self._sink = sink
        try:
            for _ in range(3):
                self._sync_time()
            self._setup_account()
        except (_Lost, ValueError, KeyError, TypeError) as exc:
            self._close_conns()
            raise GatewayError(self._redact(f"{self.symbol}: USD-M set-up failed: {exc}")) from None
        super().start(sink)

    def _call(self, method: str, path: str, params: Mapping[str, Any]) -> tuple[int, Any]:
        status, headers, raw = self._signed(method, path, params)
        body = decode_body(raw)
        self._after_answer(status, headers, body)
        return status, body

    def _setup_account(self) -> None:
        st, body = self._call("GET", "/fapi/v1/positionSide/dual", {})
        if st != 200:
            raise ValueError(f"GET /fapi/v1/positionSide/dual: HTTP {st} {err_fields(st, body)}")
        if body.get("dualSidePosition"):
            raise ValueError("the account is in hedge mode (dualSidePosition=true); hftmm quotes in one-way mode: "
                             "POST /fapi/v1/positionSide/dual dualSidePosition=false (no open orders or "
                             "positions), or switch it in the web interface")
        self.settings["dualSidePosition"] = False
        if self.margin_type is not None:
            st, body = self._call("POST", "/fapi/v1/marginType", {"symbol": self.symbol,
                                                                  "marginType": self.margin_type})
            code = body.get("code") if isinstance(body, Mapping) else None
            if st != 200 and code != ERR_NO_NEED_MARGIN_TYPE:
                raise ValueError(f"POST /fapi/v1/marginType {self.margin_type}: HTTP {st} {err_fields(st, body)}")
            self.settings["marginType"] = self.margin_type
        if self.leverage is not None:
            st, body = self._call("POST", "/fapi/v1/leverage", {"symbol": self.symbol,
                                                                "leverage": str(self.leverage)})
            if st != 200:
                raise ValueError(f"POST /fapi/v1/leverage {self.leverage}: HTTP {st} {err_fields(st, body)}")
            self.settings["leverage"] = int(body.get("leverage", self.leverage))
            self.settings["maxNotionalValue"] = body.get("maxNotionalValue")
        st, body = self._call("GET", "/fapi/v1/leverageBracket", {"symbol": self.symbol})
        if st != 200:
            raise ValueError(f"GET /fapi/v1/leverageBracket: HTTP {st} {err_fields(st, body)}")
        self.brackets = LeverageBrackets.from_api(body, self.symbol)
        log.info("%s: USD-M account set up: one-way mode, %s", self.symbol,
                 ", ".join(f"{k} {v}" for k, v in self.settings.items() if k != "dualSidePosition") or "as it was")

    # ------------------------------------------------------------ requests
    def place_order(self, params: Mapping[str, Any]) -> None:
        """``POST /fapi/v1/order``; ``LIMIT_MAKER`` is sent as ``LIMIT`` + ``GTX``."""
        p = dict(params)
        if p.get("type") == "LIMIT_MAKER":
            p["type"], p["timeInForce"] = "LIMIT", "GTX"
        if p.get("newOrderRespType") == "FULL":
            p["newOrderRespType"] = "RESULT"
        super().place_order(p)

    def cancel_replace(self, params: Mapping[str, Any]) -> None:
        raise NotImplementedError("USD-M has no cancel-replace: cancel, then place (supports_cancel_replace)")

    def read_account(self, tag: Optional[str] = None) -> None:
        """``GET /fapi/v3/account`` -> ``account`` (``client_order_id`` = ``tag``)."""
        self._submit(self._req("account", {}, cid=tag))

    def _answer_events(self, op: str, status: int, body: Any, cid: Optional[str],
                       new_cid: Optional[str]) -> list[Emission]:
        if status == 200 and isinstance(body, Mapping):
            if op in ("place", "query"):
                body = translate_order_body(body)
            elif op == "cancel":
                body = {**translate_order_body(body), "origClientOrderId": body.get("clientOrderId")}
            elif op == "cancel_all":
                body = []            # {"code": 200, "msg": ...}: the cancels come as ORDER_TRADE_UPDATE
        elif status == 200 and op == "open_orders" and isinstance(body, list):
            body = [translate_order_body(o) if isinstance(o, Mapping) else o for o in body]
        elif isinstance(body, Mapping) and body.get("code") == ERR_GTX_REJECTED and op == "place":
            # GTX would take: the engine's post-only reject (spot: -2010 "would immediately match")
            body = {"code": ERR_NEW_ORDER_REJECTED,
                    "msg": f"Order would immediately match and take. ({ERR_GTX_REJECTED}: {body.get('msg', '')})"}
        return answer_events(op, status, body, cid, new_cid)

    # ------------------------------------------------------------ user stream: listenKey
    def _listen_key_call(self, method: str) -> tuple[int, Any]:
        """``/fapi/v1/listenKey`` (USER_STREAM: the API key, no signature)."""
        headers = {"X-MBX-APIKEY": self._signer.api_key, "User-Agent": "hftmm", "Accept": "application/json"}
        status, hdrs, raw = self._http(method, "/fapi/v1/listenKey", headers)
        body = decode_body(raw)
        self._after_answer(status, hdrs, body)
        return status, body

    def _open_user_ws(self) -> websocket.WebSocket:
        try:
            status, body = self._listen_key_call("POST")
        except _Lost as lost:
            raise ConnectionError(f"POST /fapi/v1/listenKey: {lost.detail}") from None
        if status != 200 or not isinstance(body, Mapping) or not body.get("listenKey"):
            raise ConnectionError(f"POST /fapi/v1/listenKey: HTTP {status} {err_fields(status, body)}")
        key = str(body["listenKey"])
        self._listen_key = key
        self._next_keepalive = time.monotonic() + self.keepalive_s
        url = self.ws_url + self.user_stream_path.format(key=quote(key, safe=""))
        return self._connect_ws(url)

    def _user_protocol(self) -> FuturesUserStreamProtocol:
        return FuturesUserStreamProtocol(self._listen_key or "", self._cum_quotes)

    def _user_tick(self) -> Optional[str]:
        """``PUT /fapi/v1/listenKey`` when due; a key Binance no longer knows ends the session."""
        if time.monotonic() < self._next_keepalive:
            return None
        self._next_keepalive = time.monotonic() + self.keepalive_s
        try:
            status, body = self._listen_key_call("PUT")
        except _Lost as lost:
            log.warning("%s: listenKey keepalive failed (%s); retry in 60 s", self.symbol, self._redact(lost.detail))
            self._next_keepalive = time.monotonic() + min(60.0, self.keepalive_s)
            return None
        if status == 200:
            self.keepalives += 1
            return None
        code = body.get("code") if isinstance(body, Mapping) else None
        if code == ERR_NO_SUCH_LISTEN_KEY:
            return "listenKey no longer exists (keepalive -1125)"
        log.warning("%s: listenKey keepalive: HTTP %s %s", self.symbol, status,
                    self._redact(describe(err_fields(status, body))))
        self._next_keepalive = time.monotonic() + min(60.0, self.keepalive_s)
        return None

    def stop(self, timeout: Optional[float] = None) -> None:
        """As spot's; the listenKey is closed (``DELETE``) when the session ends."""
        key, self._listen_key = self._listen_key, None
        super().stop(timeout)
        if key:
            try:
                self._listen_key_call("DELETE")
            except Exception as exc:  # noqa: BLE001 -- best effort: it expires in 60 min anyway
                log.debug("%s: listenKey close failed: %s", self.symbol, self._redact(describe(exc)))
            self._close_thread_conn()
