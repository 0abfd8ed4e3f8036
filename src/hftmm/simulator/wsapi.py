"""The spot WebSocket API (``/ws-api/v3``) of the simulator.

Requests ``{"id", "method", "params"}``; answers ``{"id", "status", "result",
"rateLimits"}`` or ``{"id", "status", "error": {"code", "msg"[, "data"]},
"rateLimits"}``. ``rateLimits`` is left out when the request's params carry
``"returnRateLimits": false``, or when the URL has ``returnRateLimits=false``
and the request does not ask for it with ``true``; every method accepts the
parameter, and a signed request signs it like any other. Methods: ``ping``,
``time``, ``exchangeInfo``, ``depth``, ``trades.recent``, ``trades.historical``,
``trades.aggregate``, ``klines``, ``uiKlines``, ``avgPrice``, ``ticker.24hr``,
``ticker.price``, ``ticker.book`` (:mod:`hftmm.simulator.marketdata`),
``session.logon`` (Ed25519 keys only), ``session.status``, ``session.logout``,
the signed methods of :mod:`hftmm.simulator.trading` (orders, ``account.status``,
``myTrades``), ``userDataStream.subscribe`` (after logon),
``userDataStream.subscribe.signature`` (any key type),
``userDataStream.unsubscribe`` and ``session.subscriptions``. The listenKey
methods (``userDataStream.start/ping/stop``) were removed by Binance on
2026-02-20 and are unknown methods here too. User-data events
go out as ``{"subscriptionId": N, "event": {...}}`` to every subscription of the
account, on every connection. Parameter values are signed as sent: JSON numbers
keep their text (``parse_float=str``), booleans become ``true``/``false``.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Optional

from hftmm.simulator.marketdata import PUBLIC_ENDPOINTS
from hftmm.simulator.orders import ApiError
from hftmm.simulator.trading import ENDPOINTS, Reply
from hftmm.simulator.websocket import OP_TEXT, encode_frame

if TYPE_CHECKING:  # pragma: no cover
    from hftmm.simulator.http import Request
    from hftmm.simulator.server import ExchangeSimulator, WsConnection

from hftmm.simulator.server import WsHandler

log = logging.getLogger(__name__)

PATH = "/ws-api/v3"
CONNECTION_WEIGHT = 2
#: weights of the methods answered here (the order methods carry their own)
SESSION_WEIGHTS = {"ping": 1, "time": 1, "session.logon": 2, "session.status": 2, "session.logout": 2,
                   "userDataStream.subscribe": 2, "userDataStream.subscribe.signature": 2,
                   "userDataStream.unsubscribe": 2, "session.subscriptions": 2}
PUBLIC_METHODS = {ep.ws: ep for ep in PUBLIC_ENDPOINTS if ep.ws is not None and "spot" in ep.markets}
TRANSPORT_PARAMS = frozenset({"returnRateLimits"})
MAX_SUBSCRIPTIONS = 1000
MAX_SUBSCRIPTIONS_LIFETIME = 65535


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


class WsApiHandler(WsHandler):
    """One WS API connection: its session key and user-data subscriptions."""

    rate_limited = False  # the WS API counts request weight, not messages per second

    def __init__(self, sim: "ExchangeSimulator", return_rate_limits: bool = True) -> None:
        self.sim = sim
        self.return_rate_limits = return_rate_limits
        self.session_key: Optional[str] = None
        self.authorized_since: Optional[int] = None
        self.connected_since = sim.trading.now_ms()
        self.subs: dict[int, str] = {}      # subscriptionId -> api key
        self.next_sub = 0

    # -- lifecycle ---------------------------------------------------------
    def on_open(self, conn: "WsConnection") -> None:
        self.conn = conn
        self.sim._ip.charge(CONNECTION_WEIGHT)

    def on_close(self, conn: "WsConnection") -> None:
        self.sim._user_handlers.discard(self)
        self.subs.clear()

    # -- sending -----------------------------------------------------------
    def send(self, obj: dict, channel: str = "wsapi") -> None:
        self.conn.push(encode_frame(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode()), channel)

    def _answer(self, rid: Any, reply: Reply, rate_limits: Optional[bool] = None) -> dict:
        msg: dict[str, Any] = {"id": rid, "status": reply.status}
        if reply.ok:
            msg["result"] = reply.body
        else:
            msg["error"] = reply.body
        if self.return_rate_limits if rate_limits is None else rate_limits:
            msg["rateLimits"] = self.sim.trading.rate_limits(reply, self.sim._ip.used_weight())
        return msg

    def deliver_event(self, api_key: str, event: dict) -> None:
        for sid, key in list(self.subs.items()):
            if key == api_key:
                self.send({"subscriptionId": sid, "event": event}, "user_data")

    def terminate(self, api_key: Optional[str] = None) -> int:
        """Send ``eventStreamTerminated`` on the subscriptions of ``api_key`` (all
        when None) and end them. Returns how many."""
        n = 0
        for sid, key in list(self.subs.items()):
            if api_key is None or key == api_key:
                self.send({"subscriptionId": sid, "event": {"e": "eventStreamTerminated",
                                                            "E": self.sim.trading.now_ms()}}, "user_data")
                del self.subs[sid]
                n += 1
        if not self.subs:
            self.sim._user_handlers.discard(self)
        return n

    # -- requests ----------------------------------------------------------
    def on_text(self, conn: "WsConnection", data: bytes) -> None:
        sim = self.sim
        try:
            req = json.loads(data, parse_float=str)
        except ValueError:
            return self.send({"id": None, "status": 400, "error": {"code": -1135, "msg": "Invalid JSON Request"}})
        if not isinstance(req, dict):
            return self.send({"id": None, "status": 400, "error": {"code": -1135, "msg": "Invalid JSON Request"}})
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params", {})
        if not isinstance(method, str) or not isinstance(params, dict) or not (
                rid is None or isinstance(rid, (int, str)) and not isinstance(rid, bool)):
            return self.send({"id": rid if isinstance(rid, (int, str)) else None, "status": 400,
                              "error": {"code": -1135, "msg": "Invalid JSON Request"}})
        p = {str(k): _as_text(v) for k, v in params.items()}
        rrl_raw = p.get("returnRateLimits")
        rrl: Optional[bool] = None if rrl_raw is None else rrl_raw == "true"
        ep = ENDPOINTS.get(method)
        weight = ep and sim.trading.weight(ep, p) or self._public_weight(method, p) or SESSION_WEIGHTS.get(method, 1)
        over = sim._ip.charge(weight)
        sim._count("control", f"wsapi:{method}")
        if over is not None:
            return self.send(self._answer(rid, Reply(over.status, over.body()), rrl))
        if rrl_raw is not None and rrl_raw not in ("true", "false"):
            return self.send(self._answer(rid, Reply(400, {"code": -1130, "msg": "Data sent for parameter "
                                                                                   "'returnRateLimits' is not valid."})))
        if ep is not None:
            with sim.trading.engine.lock:
                reply = sim.trading.handle(ep, p, p.get("apiKey"), self._payload(p), p.get("signature"),
                                           self.session_key, TRANSPORT_PARAMS)
            self._reply_with_fault(rid, reply, rrl)
            sim.flush_user_events()
            return
        q = {k: v for k, v in p.items() if k not in TRANSPORT_PARAMS}
        try:
            if method in PUBLIC_METHODS:
                result = sim.public.call(PUBLIC_METHODS[method].name, q)
            elif method == "depth":
                result = json.loads(sim.depth_body(q))
            elif method == "exchangeInfo":
                result = sim.exchange_info_result(q)
            else:
                result = self._session_method(method, p)
            reply = Reply(200, result)
        except ApiError as e:
            reply = Reply(e.status, e.body())
        self.send(self._answer(rid, reply, rrl))

    def _public_weight(self, method: str, p: dict[str, str]) -> int:
        if method in PUBLIC_METHODS:
            return PUBLIC_METHODS[method].weight("spot", p)
        if method == "depth":
            return self.sim.depth_weight(p)
        if method == "exchangeInfo":
            return 20
        return 0

    @staticmethod
    def _payload(p: dict[str, str]) -> Optional[str]:
        if "signature" not in p:
            return None
        return "&".join(f"{k}={v}" for k, v in sorted(p.items()) if k != "signature")

    def _reply_with_fault(self, rid: Any, reply: Reply, rate_limits: Optional[bool] = None) -> None:
        fault = reply.fault
        if fault is not None and fault[0] == "drop_answer":
            return
        msg = self._answer(rid, reply, rate_limits)
        if fault is not None and fault[0] == "delay":
            self.conn.loop.call_later(float(fault[1]["ms"]) / 1000.0, self.send, msg)
            return
        self.send(msg)

    def _session_method(self, method: str, p: dict[str, str]) -> Any:
        sim, tr = self.sim, self.sim.trading
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": tr.now_ms()}
        if method == "session.logon":
            key = tr.authenticate(p.get("apiKey"), p, self._payload(p), p.get("signature"))
            if tr.keys[key].kind != "ED25519":
                raise ApiError(400, -1002, "Only Ed25519 API keys are supported for session.logon.")
            self.session_key, self.authorized_since = key, tr.now_ms()
            return self._session_status()
        if method == "session.status":
            return self._session_status()
        if method == "session.logout":
            self.session_key = self.authorized_since = None
            return self._session_status()
        if method == "session.subscriptions":
            return [{"subscriptionId": sid} for sid in self.subs]
        if method in ("userDataStream.subscribe", "userDataStream.subscribe.signature"):
            if method == "userDataStream.subscribe":
                if self.session_key is None:
                    raise ApiError(400, -1002, "You are not authorized to execute this request.")
                key = self.session_key
            else:
                key = tr.authenticate(p.get("apiKey"), p, self._payload(p), p.get("signature"))
            if len(self.subs) >= MAX_SUBSCRIPTIONS or self.next_sub >= MAX_SUBSCRIPTIONS_LIFETIME:
                raise ApiError(400, -1191, "Too many subscriptions.")
            sid = self.next_sub
            self.next_sub += 1
            self.subs[sid] = key
            sim._user_handlers.add(self)
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe":
            raw = p.get("subscriptionId")
            if raw is None or raw == "":
                self.subs.clear()
            else:
                if not raw.isdigit() or int(raw) not in self.subs:
                    raise ApiError(400, -1130, "Data sent for parameter 'subscriptionId' is not valid.")
                del self.subs[int(raw)]
            if not self.subs:
                sim._user_handlers.discard(self)
            return {}
        raise ApiError(400, -1020, "This operation is not supported.")

    def _session_status(self) -> dict:
        tr = self.sim.trading
        return {"apiKey": self.session_key, "authorizedSince": self.authorized_since,
                "connectedSince": self.connected_since, "returnRateLimits": self.return_rate_limits,
                "serverTime": tr.now_ms(), "userDataStream": bool(self.subs)}


def factory(sim: "ExchangeSimulator", req: "Request", rest: str) -> WsHandler:
    """``ws_routes`` factory for ``/ws-api/v3`` (query: ``returnRateLimits``)."""
    if rest:
        from hftmm.simulator.server import _HttpError
        from hftmm.simulator.http import Response
        raise _HttpError(Response.error(404, -1000, f"Not found: {req.path}"))
    return WsApiHandler(sim, req.query.get("returnRateLimits", "true") != "false")
