"""Signed spot trading endpoints of the simulator, shared by REST and the WS API.

- :class:`SpotLimits`: the rate limits the simulator enforces and advertises in
  exchangeInfo (REQUEST_WEIGHT and RAW_REQUESTS per IP, ORDERS per account).
- :class:`IpLimits`, :class:`OrderCounter`: fixed, epoch-aligned windows.
- :func:`verify_signature`: HMAC-SHA256 (hex, case ignored), Ed25519 and RSA
  PKCS#1 v1.5 SHA-256 (base64) over the payload the transport built (REST: query
  string + body as sent; WS API: sorted ``k=v`` without encoding).
- :class:`OrderFaults`: order-entry faults for client tests (see the kinds below).
- :class:`TradingApi`: authentication, timestamp window, parameter checks,
  weights, order counts and faults around :class:`~hftmm.simulator.orders.OrderEngine`.
  ``handle(...)`` returns a :class:`Reply`; the REST adapter (:meth:`TradingApi.rest`)
  and the WS API handler (``wsapi.py``) turn it into their own frames.

Order-entry fault kinds (each applies to the next order request: order.place,
order.cancel, order.cancelReplace, openOrders.cancelAll, REST or WS API):

``drop_answer``     execute, then never answer (REST: hold the connection ``hold_s``
                    seconds, default 30, then close it; WS API: no response frame)
``error_after``     execute, then answer HTTP ``status`` (default 500) -1001
``timeout_after``   execute, then answer -1007 (HTTP ``status``, default 503)
``unavailable``     do not execute; answer 503 -1008
``delay``           execute now, answer after ``ms`` (default 1000)
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable, Optional, Union
from urllib.parse import parse_qsl, unquote

from hftmm.simulator.http import DropConnection, Request, Response
from hftmm.simulator.orders import ApiError, OrderEngine, mandatory

log = logging.getLogger(__name__)

ORDER_FAULT_KINDS = ("drop_answer", "error_after", "timeout_after", "unavailable", "delay")
ORDER_FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "drop_answer": {"hold_s": 30.0},
    "error_after": {"status": 500},
    "timeout_after": {"status": 503},
    "unavailable": {},
    "delay": {"ms": 1000.0},
}
API_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
RECV_WINDOW_DEFAULT = 5000
RECV_WINDOW_MAX = 60000


@dataclass(frozen=True)
class SpotLimits:
    """Limits enforced by the simulator and listed in exchangeInfo ``rateLimits``
    (defaults: Binance's published spot values)."""

    request_weight_1m: int = 6000
    orders_10s: int = 100
    orders_1d: int = 200_000
    raw_requests_5m: int = 61_000

    def rate_limits(self) -> list[dict]:
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.request_weight_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": self.orders_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": self.orders_1d},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": self.raw_requests_5m},
        ]

    def order_windows(self) -> list[tuple[int, int, str, str]]:
        """(seconds, limit, the -1015 message's window, the X-MBX-ORDER-COUNT header suffix)."""
        return [(10, self.orders_10s, "10 SECOND", "10S"), (86400, self.orders_1d, "1 DAY", "1D")]


class _Window:
    """A counter over fixed windows of ``seconds`` aligned to the epoch."""

    __slots__ = ("seconds", "start", "used")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = -1.0
        self.used = 0

    def roll(self, now: float) -> int:
        start = (now // self.seconds) * self.seconds
        if start != self.start:
            self.start, self.used = start, 0
        return self.used

    def retry_after(self, now: float) -> int:
        return max(1, int(self.start + self.seconds - now + 0.999))


class IpLimits:
    """REQUEST_WEIGHT per minute and RAW_REQUESTS per 5 minutes (one IP: the simulator)."""

    def __init__(self, weight_limit: int, raw_limit: Optional[int] = None) -> None:
        self.weight_limit = weight_limit
        self.raw_limit = raw_limit
        self.weight = _Window(60.0)
        self.raw = _Window(300.0)

    def charge(self, weight: int, now: Optional[float] = None) -> Optional[ApiError]:
        """Count one request of ``weight``; the 429 error if a limit is now exceeded."""
        now = time.time() if now is None else now
        self.weight.roll(now)
        self.raw.roll(now)
        self.weight.used += weight
        self.raw.used += 1
        if self.weight.used > self.weight_limit:
            return ApiError(429, -1003, f"Too many requests; current limit of IP is {self.weight_limit} "
                                        "requests per minute.",
                            headers={"Retry-After": str(self.weight.retry_after(now))})
        if self.raw_limit is not None and self.raw.used > self.raw_limit:
            return ApiError(429, -1003, f"Too many requests; current limit of IP is {self.raw_limit} "
                                        "requests per 5 MINUTE.",
                            headers={"Retry-After": str(self.raw.retry_after(now))})
        return None

    def used_weight(self, now: Optional[float] = None) -> int:
        return self.weight.roll(time.time() if now is None else now)


class OrderCounter:
    """Order count of one account over the limits' windows (spot: 10 s and 1 day
    of unfilled orders; USD-M: 10 s and 1 minute)."""

    def __init__(self, limits: Any) -> None:
        self.limits = limits
        self.windows = [(_Window(float(sec)), limit, label) for sec, limit, label, _ in limits.order_windows()]

    def counts(self, now: float) -> tuple[int, ...]:
        return tuple(w.roll(now) for w, _, _ in self.windows)

    def take(self, now: float, n: Union[int, tuple[int, ...]] = 1) -> None:
        """Count ``n`` new orders (or one count per window), or raise 429 -1015 (nothing counted)."""
        ns = n if isinstance(n, tuple) else (n,) * len(self.windows)
        for (w, limit, label), c, k in zip(self.windows, self.counts(now), ns):
            if c + k > limit:
                raise ApiError(429, -1015, f"Too many new orders; current limit is {limit} orders per {label}.",
                               headers={"Retry-After": str(w.retry_after(now))})
        for (w, _, _), k in zip(self.windows, ns):
            w.used += k


# ---------------------------------------------------------------------------
# keys and signatures
# ---------------------------------------------------------------------------

@dataclass
class ApiKey:
    """A registered key: ``kind`` HMAC | ED25519 | RSA, and its verification material."""

    api_key: str
    kind: str
    secret: Optional[bytes] = None
    public_key: Any = None


def make_key(api_key: str, hmac_secret: Optional[str] = None, ed25519_public_pem: Optional[bytes] = None,
             rsa_public_pem: Optional[bytes] = None) -> ApiKey:
    given = [x is not None for x in (hmac_secret, ed25519_public_pem, rsa_public_pem)]
    if sum(given) != 1:
        raise ValueError("give exactly one of hmac_secret, ed25519_public_pem, rsa_public_pem")
    if not API_KEY_RE.match(api_key):
        raise ValueError("api_key must be 1-128 ASCII letters and digits")
    if hmac_secret is not None:
        return ApiKey(api_key, "HMAC", secret=hmac_secret.encode())
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pem = ed25519_public_pem if ed25519_public_pem is not None else rsa_public_pem
    key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if ed25519_public_pem is not None:
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("ed25519_public_pem is not an Ed25519 public key")
        return ApiKey(api_key, "ED25519", public_key=key)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("rsa_public_pem is not an RSA public key")
    return ApiKey(api_key, "RSA", public_key=key)


def verify_signature(key: ApiKey, payload: str, signature: str) -> bool:
    """Binance's check of ``signature`` over ``payload`` (UTF-8)."""
    data = payload.encode("utf-8")
    if key.kind == "HMAC":
        want = hmac.new(key.secret or b"", data, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, signature.lower())
    try:
        sig = base64.b64decode(signature, validate=True)
    except (ValueError, TypeError):
        return False
    from cryptography.exceptions import InvalidSignature
    try:
        if key.kind == "ED25519":
            key.public_key.verify(sig, data)
        else:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            key.public_key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def strip_signature(raw: str) -> tuple[str, Optional[str]]:
    """A raw ``a=1&signature=..`` string without its signature pair, and the
    (percent-decoded) signature if there was one."""
    if "signature=" not in raw:
        return raw, None
    keep, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = unquote(part[len("signature="):])
        else:
            keep.append(part)
    return "&".join(keep), sig


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------

class OrderFaults:
    """Order-entry faults: scripted (:meth:`add`: the next ``count`` order
    requests) and random (``rates``: kind -> probability per order request,
    drawn from ``random.Random(seed)``). Scripted faults go first."""

    def __init__(self, seed: int = 0, rates: Optional[dict[str, float]] = None) -> None:
        rates = dict(rates or {})
        for k, v in rates.items():
            if k not in ORDER_FAULT_KINDS:
                raise ValueError(f"unknown order fault kind {k!r}; one of {ORDER_FAULT_KINDS}")
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"rate of {k} must be in [0, 1]")
        if sum(rates.values()) > 1.0:
            raise ValueError("order fault rates sum to more than 1")
        self.rng = random.Random(seed)
        self.rates = rates
        self.pending: list[tuple[str, dict]] = []
        self.count = 0

    def add(self, kind: str, count: int = 1, **params: Any) -> None:
        if kind not in ORDER_FAULT_KINDS:
            raise ValueError(f"unknown order fault kind {kind!r}; one of {ORDER_FAULT_KINDS}")
        self.pending.extend([(kind, {**ORDER_FAULT_DEFAULTS[kind], **params})] * int(count))

    def decide(self) -> Optional[tuple[str, dict]]:
        self.count += 1
        if self.pending:
            return self.pending.pop(0)
        if self.rates:
            u, acc = self.rng.random(), 0.0
            for kind, r in self.rates.items():
                acc += r
                if u < acc:
                    return kind, dict(ORDER_FAULT_DEFAULTS[kind])
        return None


# ---------------------------------------------------------------------------
# endpoints
# ---------------------------------------------------------------------------

_NEW = frozenset({"symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price",
                  "newClientOrderId", "newOrderRespType", "selfTradePreventionMode", "strategyId",
                  "strategyType", "stopPrice", "trailingDelta", "icebergQty", "pegPriceType", "pegOffsetValue",
                  "pegOffsetType"})
_CANCEL = frozenset({"symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"})


@dataclass(frozen=True)
class Endpoint:
    """One signed spot method: WS API name, REST route, weight, unfilled-order count."""

    name: str
    rest: Optional[tuple[str, str]]
    weight: int
    params: frozenset
    orders: int = 0
    state_changing: bool = False
    weight_no_symbol: Optional[int] = None


ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (
    Endpoint("order.place", ("POST", "/api/v3/order"), 1, _NEW, orders=1, state_changing=True),
    Endpoint("order.test", ("POST", "/api/v3/order/test"), 1, _NEW | {"computeCommissionRates"}),
    Endpoint("order.cancel", ("DELETE", "/api/v3/order"), 1, _CANCEL, state_changing=True),
    Endpoint("order.cancelReplace", ("POST", "/api/v3/order/cancelReplace"), 1,
             _NEW | {"cancelReplaceMode", "cancelOrderId", "cancelOrigClientOrderId", "cancelNewClientOrderId",
                     "cancelRestrictions", "orderRateLimitExceededMode"}, orders=1, state_changing=True),
    Endpoint("order.status", ("GET", "/api/v3/order"), 4, frozenset({"symbol", "orderId", "origClientOrderId"})),
    Endpoint("openOrders.status", ("GET", "/api/v3/openOrders"), 6, frozenset({"symbol"}), weight_no_symbol=80),
    Endpoint("openOrders.cancelAll", ("DELETE", "/api/v3/openOrders"), 1, frozenset({"symbol"}),
             state_changing=True),
    Endpoint("account.status", ("GET", "/api/v3/account"), 20, frozenset({"omitZeroBalances"})),
    Endpoint("myTrades", ("GET", "/api/v3/myTrades"), 20,
             frozenset({"symbol", "orderId", "startTime", "endTime", "fromId", "limit"})),
)}
SECURITY_PARAMS = frozenset({"timestamp", "recvWindow", "signature", "apiKey"})


@dataclass
class Reply:
    """One answer: HTTP-like ``status``, JSON ``body`` (result or error), extra
    headers, the account's order counts, and a fault to apply on the way out."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    order_counts: Optional[tuple[int, ...]] = None
    fault: Optional[tuple[str, dict]] = None
    weight: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200


class TradingApi:
    """Request handling around the :class:`OrderEngine` (runs in the simulator's loop thread)."""

    def __init__(self, engine: OrderEngine, limits: SpotLimits, ip_limits: IpLimits,
                 now_ms: Callable[[], int]) -> None:
        self.engine = engine
        self.limits = limits
        self.ip = ip_limits
        self.now_ms = now_ms
        self.keys: dict[str, ApiKey] = {}
        self.counters: dict[str, OrderCounter] = {}
        self.faults = OrderFaults()
        self.stats: dict[str, dict[str, int]] = {"requests": {}, "errors": {}, "faults": {}}

    def _count(self, group: str, key: str) -> None:
        d = self.stats[group]
        d[key] = d.get(key, 0) + 1

    # ------------------------------------------------------------------ auth
    def authenticate(self, api_key: Optional[str], params: dict[str, str], payload: Optional[str],
                     signature: Optional[str], session_key: Optional[str] = None) -> str:
        """The account's API key of a signed request, or ApiError (-2014 / -2015 /
        -1102 / -1022 / -1021). ``session_key``: an authenticated WS API session
        (then no signature is needed, only the timestamp)."""
        if session_key is not None and not api_key and signature is None:
            self.check_timestamp(params)
            return session_key
        if not api_key or not API_KEY_RE.match(api_key):
            raise ApiError(401, -2014, "API-key format invalid.")
        key = self.keys.get(api_key)
        if key is None:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if not params.get("timestamp"):
            raise mandatory("timestamp")
        if not signature:
            raise mandatory("signature")
        if payload is None or not verify_signature(key, payload, signature):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        self.check_timestamp(params)
        return api_key

    def check_timestamp(self, params: dict[str, str]) -> None:
        """Binance's window: timestamp < serverTime + 1000 and serverTime -
        timestamp <= recvWindow (ms; timestamps above 1e13 are microseconds)."""
        raw = params.get("timestamp")
        if not raw:
            raise mandatory("timestamp")
        if not raw.isdigit():
            raise ApiError(400, -1100, "Illegal characters found in parameter 'timestamp'; legal range is "
                                       "'^[0-9]{1,20}$'.")
        ts = Decimal(raw)
        if ts > 10 ** 13:
            ts = ts / 1000
        rw_raw = params.get("recvWindow")
        rw = Decimal(RECV_WINDOW_DEFAULT)
        if rw_raw is not None:
            try:
                rw = Decimal(rw_raw)
            except InvalidOperation:
                raise ApiError(400, -1100, "Illegal characters found in parameter 'recvWindow'.") from None
            if not rw.is_finite() or rw <= 0 or rw.as_tuple().exponent < -3:
                raise ApiError(400, -1100, "Illegal characters found in parameter 'recvWindow'.")
            if rw > RECV_WINDOW_MAX:
                raise ApiError(400, -1102, f"'recvWindow' contains unexpected value. Cannot be greater than "
                                           f"'{RECV_WINDOW_MAX}'.")
        now = self.now_ms()
        if ts >= now + 1000:
            raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > rw:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ requests
    def weight(self, ep: Endpoint, params: dict[str, str]) -> int:
        if ep.weight_no_symbol is not None and not params.get("symbol"):
            return ep.weight_no_symbol
        if ep.name == "order.test" and params.get("computeCommissionRates") == "true":
            return 20
        if ep.name == "myTrades" and params.get("orderId"):
            return 5
        return ep.weight

    def order_units(self, ep: Endpoint, params: dict[str, str]) -> Union[int, tuple[int, ...]]:
        """How many orders a request counts (spot: the endpoint's)."""
        return ep.orders

    def handle(self, ep: Endpoint, params: dict[str, str], api_key: Optional[str], payload: Optional[str],
               signature: Optional[str], session_key: Optional[str] = None,
               transport_params: frozenset = frozenset()) -> Reply:
        """One signed request, weight already charged by the transport. ``transport_params``:
        parameters the transport reads itself (WS API ``returnRateLimits``), signed like the others."""
        self._count("requests", ep.name)
        counts: Optional[tuple[int, ...]] = None
        fault: Optional[tuple[str, dict]] = None
        try:
            key = self.authenticate(api_key, params, payload, signature, session_key)
            extra = [k for k in params if k not in ep.params and k not in SECURITY_PARAMS
                     and k not in transport_params]
            if extra:
                raise ApiError(400, -1104, f"Not all sent parameters were read; read '{len(params) - len(extra)}' "
                                           f"parameter(s) but was sent '{len(params)}'.")
            eng = self.engine
            with eng.lock:
                acct = eng.accounts[key]
                parsed = None
                if ep.orders:
                    ctr = self.counters.setdefault(key, OrderCounter(self.limits))
                    now_s = time.time()
                    if ep.name == "order.place":
                        parsed = eng.parse_new(acct, params)  # filters before counting
                    try:
                        ctr.take(now_s, self.order_units(ep, params))
                    finally:
                        counts = ctr.counts(now_s)
                fault = self.faults.decide() if ep.state_changing else None
                if fault is not None:
                    self._count("faults", fault[0])
                    if fault[0] == "unavailable":
                        raise ApiError(503, -1008, "Server is currently overloaded with other requests. "
                                                   "Please try again in a few minutes.")
                status, body = self._execute(ep, acct, params, parsed)
            reply = Reply(status, body, order_counts=counts)
        except ApiError as e:
            self._count("errors", str(e.code))
            reply = Reply(e.status, e.body(), dict(e.headers), order_counts=counts)
        reply.fault = fault
        if fault is not None and fault[0] == "error_after":
            reply.status, reply.body = int(fault[1]["status"]), {
                "code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
        elif fault is not None and fault[0] == "timeout_after":
            reply.status, reply.body = int(fault[1]["status"]), {
                "code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                                      "execution status unknown."}
        return reply

    # ------------------------------------------------------------------ REST
    def rest_route(self, ep: Endpoint, after: Callable[[], None]) -> tuple[Callable, Callable]:
        """(handler, weight) of ``ep``'s REST route. The signature payload is the
        query string plus the form body exactly as sent, without the signature
        pair; ``X-MBX-APIKEY`` names the key. ``after()`` runs once the request
        executed (the simulator pushes user-data events there)."""
        def weight(req: Request) -> int:
            return self.weight(ep, req.query)

        def handler(req: Request) -> Union[Response, Awaitable[Response]]:
            names = [k for k, _ in parse_qsl(req.query_string, keep_blank_values=True)]
            if len(names) != len(set(names)):
                return Response.error(400, -1101, "Duplicate values for a parameter detected.")
            query, sig_q = strip_signature(req.query_string)
            body = ""
            if req.body and "application/x-www-form-urlencoded" in req.headers.get("content-type", ""):
                body = req.body.decode("utf-8", "replace")
            body, sig_b = strip_signature(body)
            params = {k: v for k, v in req.query.items() if k != "signature"}
            if "signature" in req.query:
                params["signature"] = req.query["signature"]
            with self.engine.lock:
                reply = self.handle(ep, params, req.headers.get("x-mbx-apikey"), query + body, sig_q or sig_b)
            after()
            resp = Response.json(reply.body, reply.status, {**reply.headers, **self.order_count_headers(reply)})
            fault = reply.fault
            if fault is not None and fault[0] == "drop_answer":
                return _drop(float(fault[1]["hold_s"]))
            if fault is not None and fault[0] == "delay":
                return _later(float(fault[1]["ms"]) / 1000.0, resp)
            return resp
        return handler, weight


    def _execute(self, ep: Endpoint, acct, p: dict[str, str], parsed=None) -> tuple[int, Any]:
        eng, now = self.engine, self.now_ms()
        name = ep.name
        if name == "order.place":
            return 200, eng.new_order(acct, parsed if parsed is not None else eng.parse_new(acct, p), now)
        if name == "order.test":
            eng.parse_new(acct, p)
            if p.get("computeCommissionRates") == "true":
                rates = {"maker": f"{acct.maker_rate:.8f}", "taker": f"{acct.taker_rate:.8f}"}
                zero = {"maker": "0.00000000", "taker": "0.00000000"}
                return 200, {"standardCommissionForOrder": rates, "specialCommissionForOrder": zero,
                             "taxCommissionForOrder": zero,
                             "discount": {"enabledForAccount": False, "enabledForSymbol": False,
                                          "discountAsset": "BNB", "discount": "0.00000000"}}
            return 200, {}
        if name == "order.cancel":
            return 200, eng.cancel(acct, p, now)
        if name == "order.cancelReplace":
            return eng.cancel_replace(acct, p, now)
        if name == "order.status":
            eng.check_symbol(p)
            return 200, eng.query_result(eng.find(acct, p))
        if name == "openOrders.status":
            return 200, eng.open_orders(acct, p)
        if name == "openOrders.cancelAll":
            return 200, eng.cancel_all(acct, p, now)
        if name == "account.status":
            return 200, eng.account_info(acct, now, p.get("omitZeroBalances") == "true")
        if name == "myTrades":
            return 200, eng.my_trades(acct, p)
        raise ApiError(400, -1000, f"unknown method {name}")  # pragma: no cover

    def order_count_headers(self, reply: Reply) -> dict[str, str]:
        if reply.order_counts is None:
            return {}
        return {f"X-MBX-ORDER-COUNT-{w[3]}": str(c)
                for w, c in zip(self.limits.order_windows(), reply.order_counts)}

    def rate_limits(self, reply: Reply, weight_used: int) -> list[dict]:
        """The WS API ``rateLimits`` array of a reply."""
        out = []
        if reply.order_counts is not None:
            out += [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": self.limits.orders_10s, "count": reply.order_counts[0]},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                     "limit": self.limits.orders_1d, "count": reply.order_counts[1]}]
        out.append({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                    "limit": self.limits.request_weight_1m, "count": weight_used})
        return out


async def _drop(hold_s: float) -> Response:
    await asyncio.sleep(hold_s)
    raise DropConnection("order fault: drop_answer")


async def _later(delay_s: float, resp: Response) -> Response:
    await asyncio.sleep(delay_s)
    return resp
