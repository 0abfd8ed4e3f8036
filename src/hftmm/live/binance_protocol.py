"""Binance spot order entry without I/O: HTTP answers and WS API frames in, gateway events out.

Used by :class:`hftmm.live.binance_gateway.BinanceGateway` (the transport) and
tested on its own. An *emission* is ``(kind, client_order_id, data)``, the parts
of a :class:`~hftmm.live.gateway.GatewayEvent` but its receive time.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from hftmm.execution.signing import Signer, signed_ws_params

__all__ = [
    "Emission",
    "Redactor",
    "UserStreamProtocol",
    "answer_events",
    "decode_body",
    "is_loopback",
    "failure_events",
    "may_trade_real_funds",
    "not_sent_events",
    "rate_limit_headers",
    "retry_after_s",
    "url_host",
]

# Binance error codes (BINANCE.md section 3)
ERR_TOO_MANY_REQUESTS = -1003
ERR_UNKNOWN_STATUS = -1007
ERR_TOO_MANY_ORDERS = -1015
ERR_TIMESTAMP = -1021
ERR_CANCEL_REJECTED = -2011
ERR_NO_SUCH_ORDER = -2013

SUBSCRIBE_METHOD = "userDataStream.subscribe.signature"

REQUEST_NAMES = {"place": "place_order", "cancel": "cancel_order", "cancel_replace": "cancel_replace",
                 "query": "query_order", "cancel_all": "cancel_all", "open_orders": "open_orders",
                 "account": "account"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ----------------------------------------------------------------- secrets

class Redactor:
    """Removes the API key (all but a 4-character prefix) and signature values from
    text that is about to be logged or emitted (secrets themselves never reach text)."""

    _SIG = re.compile(r"(signature[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+", re.I)

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, text: object) -> str:
        s = str(text)
        if self._api_key:
            s = s.replace(self._api_key, self._api_key[:4] + "...")
        return self._SIG.sub(r"\1<redacted>", s)


def describe(exc: BaseException) -> str:
    """``Type: message`` of a transport exception (redact before use)."""
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# ----------------------------------------------------------------- answers (sans-I/O)

Emission = tuple[str, Optional[str], dict]   # (kind, client_order_id, data)


def err_fields(status: Optional[int], body: Any) -> dict:
    """``{"code", "msg", "http_status"}``; ``code`` 0 when the answer carries no Binance code
    (e.g. an HTML page from a proxy or the WAF)."""
    if isinstance(body, Mapping):
        try:
            code = int(body.get("code"))
        except (TypeError, ValueError):
            code = 0
        return {"code": code, "msg": str(body.get("msg", "")), "http_status": status}
    return {"code": 0, "msg": "" if body is None else str(body)[:200], "http_status": status}


def _is_unknown(status: int, body: Any) -> bool:
    """HTTP 5xx or -1007: Binance does not know whether the request executed."""
    return status >= 500 or (isinstance(body, Mapping) and body.get("code") == ERR_UNKNOWN_STATUS)


def answer_events(op: str, status: int, body: Any, cid: Optional[str] = None,
                  new_cid: Optional[str] = None) -> list[Emission]:
    """The events for one HTTP answer ``(status, decoded JSON body)`` to request ``op``
    (place, cancel, cancel_replace, query, cancel_all, open_orders, account).
    ``cid``: the order the request is about (cancel_replace: the cancelled one);
    ``new_cid``: cancel_replace's new order."""
    ok = status == 200
    if ok and not isinstance(body, list if op in ("open_orders", "cancel_all") else Mapping):
        return failure_events(op, "HTTP 200 with an undecodable body: outcome unknown", True, cid, new_cid)
    err = err_fields(status, body)
    unknown = not ok and _is_unknown(status, body)
    if op == "place":
        if ok:
            return [("new_ack", cid or body.get("clientOrderId"), dict(body))]
        if unknown:
            return [("new_unknown", cid, {"detail": f"HTTP {status}: outcome unknown", "sent": True, **err})]
        return [("new_reject", cid, err)]
    if op == "cancel":
        if ok:
            return [("cancel_ack", body.get("origClientOrderId") or cid, dict(body))]
        if unknown:
            return [("cancel_unknown", cid, {"detail": f"HTTP {status}: outcome unknown", "sent": True, **err})]
        return [("cancel_reject", cid, err)]
    if op == "cancel_replace":
        legs = isinstance(body, Mapping) and ("data" in body or "cancelResult" in body)
        if ok or status == 409 or unknown or legs:
            return [("cancel_replace", cid, {"http_status": status, "body": body,
                                             "cancel_client_order_id": cid, "new_client_order_id": new_cid})]
        return [("cancel_reject", cid, err), ("new_reject", new_cid, err)]
    if op == "query":
        if ok:
            return [("query_result", body.get("clientOrderId") or cid, dict(body))]
        if err["code"] == ERR_NO_SUCH_ORDER:
            return [("query_not_found", cid, {"code": err["code"], "msg": err["msg"]})]
        return [("error", cid, {"detail": f"query_order failed: HTTP {status}", "request": "query_order", **err})]
    if op == "cancel_all":
        if ok:
            return [("cancel_ack", o.get("origClientOrderId"), dict(o)) for o in cancelled_orders(body)]
        if err["code"] == ERR_CANCEL_REJECTED:
            return []   # no open orders
        return [("error", None, {"detail": f"cancel_all failed: HTTP {status}", "request": "cancel_all", **err})]
    if op == "open_orders":
        if ok:
            return [("open_orders", None, {"orders": list(body)})]
    elif op == "account":
        if ok:
            return [("account", cid, dict(body))]
    else:
        raise ValueError(f"unknown request {op!r}")
    name = REQUEST_NAMES[op]
    return [("error", cid if op == "account" else None,
             {"detail": f"{name} failed: HTTP {status}", "request": name, **err})]


def cancelled_orders(body: Any) -> Iterable[Mapping]:
    """Orders in a ``DELETE /api/v3/openOrders`` answer (order lists contribute their reports)."""
    for entry in body if isinstance(body, list) else ():
        if not isinstance(entry, Mapping):
            continue
        if "orderReports" in entry:
            yield from (r for r in entry["orderReports"] if isinstance(r, Mapping))
        else:
            yield entry


def failure_events(op: str, detail: str, sent: bool, cid: Optional[str] = None,
                   new_cid: Optional[str] = None) -> list[Emission]:
    """The events for a request that got no HTTP answer (``sent``: it may have arrived)."""
    data = {"detail": detail, "sent": sent}
    if op == "place":
        return [("new_unknown", cid, data)]
    if op == "cancel":
        return [("cancel_unknown", cid, data)]
    if op == "cancel_replace":
        return [("cancel_unknown", cid, dict(data)), ("new_unknown", new_cid, dict(data))]
    name = REQUEST_NAMES[op]
    return [("error", cid, {**data, "request": name})]


def not_sent_events(op: str, code: int, msg: str, http_status: Optional[int], cid: Optional[str] = None,
                    new_cid: Optional[str] = None) -> list[Emission]:
    """The events for a request the gateway refused to send (rate limits): a definite reject."""
    err = {"code": code, "msg": msg, "http_status": http_status, "sent": False}
    if op == "place":
        return [("new_reject", cid, err)]
    if op == "cancel":
        return [("cancel_reject", cid, err)]
    if op == "cancel_replace":
        return [("cancel_reject", cid, dict(err)), ("new_reject", new_cid, dict(err))]
    name = REQUEST_NAMES[op]
    return [("error", cid, {"detail": msg, "request": name, **err})]


class UserStreamProtocol:
    """Sans-I/O WS API user data subscription: request frames out, decoded frames
    in, actions back. Actions are tuples:

    ``("subscribed", subscription_id)``, ``("rejected", status, code, msg, error data)``,
    ``("event", kind, client_order_id, event)``, ``("terminated", event)``,
    ``("shutdown", event)``, ``("rate_limits", [rateLimits entries])``,
    ``("ignored", description)``.
    """

    _KINDS = {"executionReport": "execution_report", "outboundAccountPosition": "account_position",
              "balanceUpdate": "balance_update"}

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.request_id: Optional[str] = None
        self.subscription_id: Optional[int] = None

    def on_open(self) -> list[tuple]:
        """Actions as the connection opens (none: the subscription's answer says it)."""
        return []

    def subscribe_request(self, signer: Signer, timestamp_ms: int, recv_window_ms: Optional[int]) -> str:
        """The ``userDataStream.subscribe.signature`` frame (JSON text). Holds secrets' products
        (apiKey, signature): send it, never log it."""
        self.request_id = f"hftmm-sub-{next(self._ids)}"
        self.subscription_id = None
        params = signed_ws_params({}, signer, timestamp_ms, recv_window_ms)
        return json.dumps({"id": self.request_id, "method": SUBSCRIBE_METHOD, "params": params},
                          separators=(",", ":"))

    def on_message(self, msg: Any) -> list[tuple]:
        if not isinstance(msg, Mapping):
            return [("ignored", f"non-object frame {type(msg).__name__}")]
        out: list[tuple] = []
        if "id" in msg and ("status" in msg or "result" in msg or "error" in msg):
            if msg.get("rateLimits"):
                out.append(("rate_limits", list(msg["rateLimits"])))
            if msg.get("id") != self.request_id:
                out.append(("ignored", f"response to unknown request {msg.get('id')!r}"))
                return out
            status = msg.get("status")
            result = msg.get("result")
            if status == 200 and isinstance(result, Mapping) and "subscriptionId" in result:
                self.subscription_id = result["subscriptionId"]
                out.append(("subscribed", self.subscription_id))
            else:
                error = msg.get("error") if isinstance(msg.get("error"), Mapping) else {}
                data = error.get("data") if isinstance(error.get("data"), Mapping) else {}
                out.append(("rejected", status, error.get("code"), error.get("msg", ""), dict(data)))
            return out
        event = msg.get("event")
        if not isinstance(event, Mapping):
            return [("ignored", "frame without event")]
        etype = event.get("e")
        if etype == "serverShutdown":
            return [("shutdown", dict(event))]
        if etype == "eventStreamTerminated":
            return [("terminated", dict(event))]
        kind = self._KINDS.get(etype)
        if kind is None:
            return [("ignored", f"event {etype!r}")]
        cid = None
        if kind == "execution_report":
            cid = event.get("C") if event.get("x") == "CANCELED" and event.get("C") else event.get("c")
        return [("event", kind, cid, dict(event))]


def rate_limit_headers(rate_limits: Iterable[Mapping]) -> dict[str, str]:
    """WS API ``rateLimits`` entries as the equivalent ``X-MBX-*`` header dict."""
    out = {}
    for r in rate_limits:
        kind = {"REQUEST_WEIGHT": "USED-WEIGHT", "ORDERS": "ORDER-COUNT"}.get(r.get("rateLimitType"))
        interval = str(r.get("interval", ""))[:1]
        if kind and interval and "count" in r:
            out[f"X-MBX-{kind}-{r.get('intervalNum', 1)}{interval}"] = str(r["count"])
    return out


# ----------------------------------------------------------------- URLs

def url_host(url: str) -> str:
    """The lower-case host name of ``url`` ("" if none)."""
    return (urlsplit(url).hostname or "").lower()


def is_loopback(url: str) -> bool:
    host = url_host(url)
    return host in LOOPBACK or host.startswith("127.")


def may_trade_real_funds(url: str) -> bool:
    """True unless ``url`` is Binance's spot or futures testnet, demo mode or a loopback address."""
    if is_loopback(url):
        return False
    host = url_host(url)
    if host == "testnet.binance.vision" or host.endswith(".testnet.binance.vision"):
        return False
    if host.startswith("demo-") and host.endswith(".binance.com"):
        return False
    if host == "binancefuture.com" or host.endswith(".binancefuture.com"):    # the USD-M testnet
        return False
    return True


def decode_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200].decode("utf-8", "replace")


_BANNED_UNTIL = re.compile(r"until (\d{12,14})")


def retry_after_s(headers: Mapping[str, str], body: Any, server_now_ms: int) -> float:
    """Seconds to pause after 429/418: ``Retry-After`` [s], else the ban end in the message
    ("IP banned until <ms>"), else 60 s."""
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except ValueError:
                break
    if isinstance(body, Mapping):
        m = _BANNED_UNTIL.search(str(body.get("msg", "")))
        if m:
            return max(0.0, (int(m.group(1)) - server_now_ms) / 1000.0)
    return 60.0

