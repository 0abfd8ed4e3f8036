"""The Binance spot gateway: signed REST order entry, user data over the WS API.

:class:`BinanceGateway` implements :class:`hftmm.live.gateway.Gateway` against
Binance spot (testnet first; see /work/shared/BINANCE.md section 3):

- **Requests** (``place_order``, ``cancel_order``, ``cancel_replace``,
  ``query_order``, ``cancel_all``, ``reconcile``) return at once; a small pool of
  worker threads sends them as signed REST calls (``X-MBX-APIKEY``, ``timestamp``
  from a :class:`~hftmm.execution.signing.ServerClock` synced from
  ``GET /api/v3/time`` at start and again after -1021, ``recvWindow``,
  ``signature`` last) over kept-alive HTTP connections, one per worker.
  Requests may run concurrently (the engine sends a cancel only after the new
  order's ack, which :class:`~hftmm.execution.orders.OrderTracker` arranges).
- **Answers** become :class:`~hftmm.live.gateway.GatewayEvent` s (table below).
  An order request is **never retried**: a retried POST may place twice. When
  the outcome is unknown (no answer, connection lost, HTTP 5xx, -1007) the
  gateway says so and the engine queries the order.
- **Rate limits**: every response's ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*``
  headers update the shared :class:`~hftmm.execution.ratelimits.RateLimiter`
  (built from exchangeInfo ``rateLimits`` at start when none is given). Reads
  (GET) and ``cancel_all`` take their weight from it before they go out and
  wait (queued, not blocking a worker) when it says so. Order requests are
  paced by the caller, which acquires from the same limiter before calling
  (:class:`~hftmm.strategy.quote_manager.QuoteManager` does; ``pace_orders=True``
  makes the gateway do it instead); the limiter counts order requests in
  flight until their answer is in. After HTTP 429 nothing is sent until
  ``Retry-After`` has passed (after 429 -1015, the account's order count, only
  new orders and cancel-replaces wait: cancels still go out), after 418
  nothing until the ban ends: an order
  request meanwhile is answered ``new_reject`` / ``cancel_reject`` with
  ``"sent": False`` and the code and status (-1003/-1015, 429/418; -1015 or
  -1003 with status None for the local budget when ``pace_orders``), a read
  waits for the end. The request methods never raise for limits; ask
  :meth:`BinanceGateway.check_banned` (raises
  :class:`~hftmm.execution.ratelimits.RateLimitBanned`) or ``banned``.
- **User data** comes over the WS API (one websocket-client I/O thread):
  ``userDataStream.subscribe.signature`` (apiKey, timestamp, recvWindow,
  signature over the sorted params), then ``{"subscriptionId", "event"}``
  frames. A watchdog (no frame, not even a ping or pong, for ``watchdog_s``),
  ``eventStreamTerminated``, ``serverShutdown`` and the 24 h connection limit
  (renewed after ``max_lifetime_s``) all lead to a reconnect with exponential
  backoff and jitter. After every (re)subscription the gateway emits
  ``user_stream`` ``subscribed`` and *then* reconciles (``GET openOrders`` and
  ``GET account``), so no report can fall between the snapshot and the stream.

Events emitted (``client_order_id`` in brackets):

=====================  ===========================================================================
``new_ack``            200 to ``POST /api/v3/order`` (FULL body unless the engine chose) [new id]
``new_reject``         4xx ``{"code", "msg", "http_status"}``; ``"sent": False`` when never sent
``new_unknown``        ``{"detail", "sent"}`` on no answer / lost connection (``sent`` False: the
                       connection failed before sending); with ``code``/``msg``/``http_status`` on
                       HTTP 5xx and -1007
``cancel_ack``         200 to ``DELETE /api/v3/order`` (body) [the cancelled order's id]; also one
                       per order of a ``cancel_all`` answer
``cancel_reject``      as ``new_reject``; ``cancel_unknown`` as ``new_unknown``
``cancel_replace``     ``{"http_status", "body", "cancel_client_order_id", "new_client_order_id"}``
                       for 200, 409, any answer with ``data`` (400 -2021/-2022), 5xx and -1007.
                       A plain 4xx error (neither leg attempted: bad params, -1021, 429 ...)
                       is reported as ``cancel_reject`` (old) + ``new_reject`` (new), and no
                       answer at all as ``cancel_unknown`` (old) + ``new_unknown`` (new)
``query_result``       200 to ``GET /api/v3/order``; ``query_not_found`` on -2013
``open_orders``        ``{"orders": [...]}``; ``account``: the ``GET /api/v3/account`` body
``execution_report``   ``executionReport`` [``C`` for cancels, else ``c``]
``account_position``   ``outboundAccountPosition``; ``balance_update``: ``balanceUpdate``
``user_stream``        ``{"state": "subscribed", "subscription_id"}`` after each subscription,
                       ``{"state": "terminated"}`` on ``eventStreamTerminated``,
                       ``{"state": "disconnected", "detail"}`` whenever a connection ends
``error``              ``{"detail", "request", ...}``: a read or ``cancel_all`` that failed
=====================  ===========================================================================

Secrets never leave this module: no log line, exception, repr or event holds
the secret, the private key, a signature or the full API key (logs show at most
a 4-character key prefix; anything from outside is passed through a redactor).
The gateway's own time-outs use ``time.monotonic``; ``clock`` (wall seconds) is
for the server-time offset, the rate-limit windows and event stamps.
"""
from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import math
import socket
import ssl
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import urlencode, urlsplit

import websocket

from hftmm.execution.ratelimits import RateLimiter
from hftmm.execution.signing import ServerClock, Signer, signed_query
from hftmm.live.binance_protocol import (ERR_TIMESTAMP, ERR_TOO_MANY_ORDERS, ERR_TOO_MANY_REQUESTS, Emission,
                                         Redactor, UserStreamProtocol, answer_events, decode_body, describe,
                                         err_fields, failure_events, is_loopback, may_trade_real_funds,
                                         not_sent_events, rate_limit_headers, retry_after_s, url_host)
from hftmm.live.gateway import GatewayEvent, Sink
from hftmm.net import close_websocket, jittered_backoff

__all__ = [
    "BinanceGateway",
    "GatewayError",
    "TESTNET_REST_URL",
    "TESTNET_WS_API_URL",
    "PRODUCTION_REST_URL",
    "PRODUCTION_WS_API_URL",
]

log = logging.getLogger(__name__)

TESTNET_REST_URL = "https://testnet.binance.vision"
TESTNET_WS_API_URL = "wss://ws-api.testnet.binance.vision/ws-api/v3"
PRODUCTION_REST_URL = "https://api.binance.com"
PRODUCTION_WS_API_URL = "wss://ws-api.binance.com:443/ws-api/v3"


class GatewayError(RuntimeError):
    """The gateway could not start (server time or exchangeInfo unreachable)."""


@dataclass(frozen=True)
class _Endpoint:
    method: str
    path: str
    weight: int        # REQUEST_WEIGHT
    orders: int = 0    # unfilled-order count


# Weights from rest-api.md (openOrders with a symbol: 6; account: 20; order query: 4).
_ENDPOINTS = {
    "place": _Endpoint("POST", "/api/v3/order", 1, 1),
    "cancel": _Endpoint("DELETE", "/api/v3/order", 1),
    "cancel_replace": _Endpoint("POST", "/api/v3/order/cancelReplace", 1, 1),
    "query": _Endpoint("GET", "/api/v3/order", 4),
    "cancel_all": _Endpoint("DELETE", "/api/v3/openOrders", 1),
    "open_orders": _Endpoint("GET", "/api/v3/openOrders", 6),
    "account": _Endpoint("GET", "/api/v3/account", 20),
}
_TIME_PATH = "/api/v3/time"            # unsigned, weight 1 (counted through the answer's headers)
_INFO_PATH = "/api/v3/exchangeInfo"    # unsigned, weight 20
_RESERVED = ("timestamp", "recvWindow", "signature")
_PACED_BY_CALLER = ("place", "cancel", "cancel_replace")   # see pace_orders


# ----------------------------------------------------------------- request queue

@dataclass(eq=False)
class _Request:
    op: str
    params: dict
    cid: Optional[str] = None
    new_cid: Optional[str] = None
    attempt: int = 0
    counted: bool = False   # its order count was acquired from the limiter (by the caller or here)
    settled: bool = False   # ... and is no longer pending there
    table: Mapping[str, _Endpoint] = field(default_factory=lambda: _ENDPOINTS)   # the gateway's endpoints

    @property
    def endpoint(self) -> _Endpoint:
        return self.table[self.op]

    @property
    def is_read(self) -> bool:
        return self.endpoint.method == "GET"

    def key(self) -> tuple:
        return (self.op, self.cid, tuple(sorted((k, str(v)) for k, v in self.params.items())))


class _DelayQueue:
    """FIFO of requests with due times (monotonic s); ``get`` blocks until one is due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Request]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._reads: set[tuple] = set()   # pending GETs, to drop duplicates

    def put(self, req: _Request, delay_s: float = 0.0, dedupe: bool = False) -> bool:
        with self._cond:
            if self._closed:
                return False
            if dedupe:
                key = req.key()
                if key in self._reads:
                    return True
                self._reads.add(key)
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), req))
            self._cond.notify()
            return True

    def get(self) -> Optional[_Request]:
        with self._cond:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        req = heapq.heappop(self._heap)[2]
                        if req.is_read:
                            self._reads.discard(req.key())
                        return req
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def close(self) -> list[_Request]:
        """Stop handing out requests; returns those never handed out (in order)."""
        with self._cond:
            self._closed = True
            left = [r for _, _, r in sorted(self._heap, key=lambda e: (e[0], e[1]))]
            self._heap.clear()
            self._reads.clear()
            self._cond.notify_all()
            return left

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)


class _Lost(Exception):
    """No HTTP answer. ``sent``: the request may have reached the server."""

    def __init__(self, detail: str, sent: bool, stale: bool = False) -> None:
        super().__init__(detail)
        self.detail, self.sent, self.stale = detail, sent, stale


# ----------------------------------------------------------------- the gateway


class BinanceGateway:
    """Binance spot gateway for one symbol (see the module docstring).

    Parameters (units in brackets):
      symbol: e.g. "BTCUSDT" (default ``symbol`` of every request).
      signer: an HMAC, Ed25519 or RSA :class:`~hftmm.execution.signing.Signer`.
      rest_url: REST base, e.g. :data:`TESTNET_REST_URL` (paths ``/api/v3/...`` are appended).
      ws_api_url: WS API URL, e.g. :data:`TESTNET_WS_API_URL`.
      rate_limiter: shared limiter; None: built from exchangeInfo ``rateLimits`` at start.
      recv_window_ms [ms]: ``recvWindow`` of signed requests (1..60000).
      request_timeout_s [s]: socket timeout of a request; no answer by then = unknown.
      workers: REST worker threads (each with its own kept-alive connection).
      allow_production: must be True for any URL that may trade real funds
        (anything but the spot testnet, demo mode and loopback addresses).
      clock: wall clock [s] for the server-time offset, rate-limit windows and event stamps.
      watchdog_s [s]: reconnect the user stream after this long without any frame.
      ping_interval_s [s]: our own ping on the user stream (its pong feeds the watchdog).
      max_lifetime_s [s]: renew the WS API connection before Binance's 24 h limit.
      backoff_initial_s / backoff_max_s [s]: reconnect backoff (exponential, jittered).
      max_rate_wait_s [s]: longest rate-limit wait before an order request is refused.
      pace_orders: acquire order requests' weight and order count from the limiter here
        (False: the caller does, as QuoteManager; the 429/418 pause applies either way).
      keepalive_idle_s [s]: reopen an HTTP connection idle longer than this (the server
        may have closed it; an order sent on a dead connection would be "unknown").
      new_order_resp_type: ``newOrderRespType`` added when the engine gives none (FULL: fills
        and commissions in the answer).
    """

    name = "binance"
    resync_min_interval_s = 1.0   # [s] at most one -1021 clock resync per this interval
    #: the market's REST endpoints, server time and exchangeInfo paths (USD-M: its subclass)
    ENDPOINTS: Mapping[str, _Endpoint] = _ENDPOINTS
    TIME_PATH, INFO_PATH = _TIME_PATH, _INFO_PATH
    supports_cancel_replace = True      # spot's POST /api/v3/order/cancelReplace

    def __init__(self, symbol: str, signer: Signer, *, rest_url: str, ws_api_url: str,
                 rate_limiter: Optional[RateLimiter] = None, recv_window_ms: int = 5000,
                 request_timeout_s: float = 10.0, workers: int = 2, allow_production: bool = False,
                 clock: Callable[[], float] = time.time, watchdog_s: float = 50.0,
                 ping_interval_s: float = 20.0, max_lifetime_s: float = 23.5 * 3600,
                 backoff_initial_s: float = 0.25, backoff_max_s: float = 30.0,
                 max_rate_wait_s: float = 1.0, keepalive_idle_s: float = 30.0,
                 new_order_resp_type: str = "FULL", pace_orders: bool = False) -> None:
        if not symbol or not symbol.isalnum():
            raise ValueError(f"symbol must be alphanumeric, got {symbol!r}")
        if not isinstance(signer, Signer):
            raise TypeError(f"signer must be a Signer, got {type(signer).__name__}")
        if not 0 < int(recv_window_ms) <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        for name, v in (("request_timeout_s", request_timeout_s), ("watchdog_s", watchdog_s),
                        ("ping_interval_s", ping_interval_s), ("max_lifetime_s", max_lifetime_s),
                        ("backoff_initial_s", backoff_initial_s), ("backoff_max_s", backoff_max_s),
                        ("keepalive_idle_s", keepalive_idle_s)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if new_order_resp_type not in ("ACK", "RESULT", "FULL"):
            raise ValueError(f"new_order_resp_type must be ACK, RESULT or FULL, got {new_order_resp_type!r}")
        rest_url = rest_url.rstrip("/")
        if rest_url.endswith("/api"):
            rest_url = rest_url[:-4]
        rest = urlsplit(rest_url)
        ws = urlsplit(ws_api_url)
        if rest.scheme not in ("http", "https") or not rest.hostname:
            raise ValueError(f"rest_url must be an http(s) URL, got {rest_url!r}")
        if ws.scheme not in ("ws", "wss") or not ws.hostname:
            raise ValueError(f"ws_api_url must be a ws(s) URL, got {ws_api_url!r}")
        for url, scheme in ((rest_url, rest.scheme), (ws_api_url, ws.scheme)):
            if scheme in ("http", "ws") and not is_loopback(url):
                raise ValueError(f"{url_host(url)}: refusing to send the API key unencrypted (use https/wss)")
        for url in (rest_url, ws_api_url):
            if may_trade_real_funds(url) and not allow_production:
                raise ValueError(f"{url_host(url)} may trade real funds: pass allow_production=True to confirm "
                                 "(or use BinanceGateway.testnet)")
        self.symbol = symbol.upper()
        self.rest_url = rest_url
        self.ws_api_url = ws_api_url
        self.recv_window_ms = int(recv_window_ms)
        self.request_timeout_s = float(request_timeout_s)
        self.workers = int(workers)
        self.watchdog_s = float(watchdog_s)
        self.ping_interval_s = float(ping_interval_s)
        self.max_lifetime_s = float(max_lifetime_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_rate_wait_s = float(max_rate_wait_s)
        self.keepalive_idle_s = float(keepalive_idle_s)
        self.new_order_resp_type = new_order_resp_type
        self.pace_orders = bool(pace_orders)
        self.exchange_info: Optional[dict] = None
        self._signer = signer
        self._redact = Redactor(signer.api_key)
        self._clock = clock
        self._server_clock = ServerClock(local_ms=lambda: self._clock() * 1000.0)
        self._limiter = rate_limiter
        self._limiter_lock = threading.Lock()
        self._last_429_code = ERR_TOO_MANY_REQUESTS
        self._ws_retry_at = 0.0   # monotonic [s]: no user-stream reconnect before this
        self._time_lock = threading.Lock()
        self._last_time_sync = -math.inf
        self._rest_scheme, self._rest_host, self._rest_port = rest.scheme, rest.hostname, rest.port
        self._ssl = ssl.create_default_context() if rest.scheme == "https" else None
        self._sink: Optional[Sink] = None
        self._queue = _DelayQueue()
        self._threads: list[threading.Thread] = []
        self._ws_thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._started = False
        self._tls = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._conns_lock = threading.Lock()
        self._ids: OrderedDict[int, str] = OrderedDict()   # orderId -> clientOrderId
        self._ids_lock = threading.Lock()
        self._ws: Optional[websocket.WebSocket] = None
        self._subscribed = threading.Event()
        self.subscriptions = 0   # successful subscriptions so far
        self.reconnects = 0      # user-stream connections that ended while running

    # ------------------------------------------------------------ presets
    @classmethod
    def testnet(cls, symbol: str, signer: Signer, **kw: Any) -> "BinanceGateway":
        """Binance spot testnet (``https://testnet.binance.vision``, its WS API)."""
        return cls(symbol, signer, rest_url=TESTNET_REST_URL, ws_api_url=TESTNET_WS_API_URL, **kw)

    @classmethod
    def production(cls, symbol: str, signer: Signer, *, allow_production: bool, **kw: Any) -> "BinanceGateway":
        """Binance spot production: real funds. ``allow_production`` must be True (the CLI
        asks the user first)."""
        return cls(symbol, signer, rest_url=PRODUCTION_REST_URL, ws_api_url=PRODUCTION_WS_API_URL,
                   allow_production=allow_production, **kw)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.symbol!r}, rest={url_host(self.rest_url)!r}, "
                f"ws_api={url_host(self.ws_api_url)!r}, signer={self._signer!r})")

    __str__ = __repr__

    def __reduce__(self):  # holds a signer: no pickling
        raise TypeError(f"{type(self).__name__} cannot be pickled")

    # ------------------------------------------------------------ lifecycle
    def start(self, sink: Sink) -> None:
        """Sync the server clock, load rate limits (unless given), start the REST workers
        and the user stream (which subscribes, then reconciles). Blocks only for the
        REST calls at start; raises :class:`GatewayError` if they fail."""
        if self._started:
            raise RuntimeError("gateway already started")
        self._sink = sink
        self._stop.clear()
        self._queue = _DelayQueue()
        try:
            for _ in range(3):   # the sample with the shortest round trip wins
                self._sync_time()
            if self._limiter is None:
                self.exchange_info = self._public_json(self.INFO_PATH, {"symbol": self.symbol})
                self._limiter = RateLimiter.from_exchange_info(self.exchange_info, clock=self._clock)
        except (_Lost, ValueError, KeyError, TypeError) as exc:
            self._close_conns()
            raise GatewayError(self._redact(f"{self.symbol}: start failed: {exc}")) from None
        self._started = True
        for i in range(self.workers):
            t = threading.Thread(target=self._run_worker, name=f"hftmm-bgw-rest-{i}", daemon=True)
            self._threads.append(t)
            t.start()
        self._ws_thread = threading.Thread(target=self._run_user_stream, name="hftmm-bgw-ws", daemon=True)
        self._ws_thread.start()
        log.info("%s: gateway started (REST %s, WS API %s, key %s...)", self.symbol, url_host(self.rest_url),
                 url_host(self.ws_api_url), self._signer.api_key[:4])

    def stop(self, timeout: Optional[float] = None) -> None:
        """Close the user stream and the REST connections and join the threads.
        Requests still queued are answered as unknown (``"sent": False``);
        requests in flight get their answer (or time out) first."""
        if not self._started:
            return
        self._stop.set()
        self._close_ws()
        left = self._queue.close()
        join_s = self.request_timeout_s + 2.0 if timeout is None else timeout
        end = time.monotonic() + join_s
        for t in [*self._threads, self._ws_thread]:
            if t is not None and t is not threading.current_thread():
                t.join(max(0.0, end - time.monotonic()))
        for req in left:
            self._settle(req)
            for kind, cid, data in failure_events(req.op, "gateway stopped before sending", False,
                                                  req.cid, req.new_cid):
                if kind != "error":
                    self._emit(kind, cid, data)
        self._close_conns()
        self._started = False
        self._threads.clear()
        log.info("%s: gateway stopped", self.symbol)

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the user stream is subscribed (True) or ``timeout`` [s] passes."""
        return self._subscribed.wait(timeout)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def rate_limiter(self) -> Optional[RateLimiter]:
        """The limiter in use (the given one, or the one built from exchangeInfo at start):
        pass it to the caller that paces orders."""
        return self._limiter

    @rate_limiter.setter
    def rate_limiter(self, limiter: RateLimiter) -> None:
        """Share the caller's limiter (before :meth:`start`; exchangeInfo is then not fetched)."""
        if self._started:
            raise RuntimeError("set the rate limiter before start()")
        if not isinstance(limiter, RateLimiter):
            raise TypeError(f"rate_limiter must be a RateLimiter, got {type(limiter).__name__}")
        self._limiter = limiter

    @property
    def banned(self) -> bool:
        """True while an HTTP 418 ban lasts."""
        lim = self._limiter
        if lim is None:
            return False
        with self._limiter_lock:
            return lim.is_banned()

    def check_banned(self) -> None:
        """Raise :class:`~hftmm.execution.ratelimits.RateLimitBanned` while a 418 ban lasts."""
        lim = self._limiter
        if lim is not None:
            with self._limiter_lock:
                lim.check_banned()

    @property
    def server_clock(self) -> ServerClock:
        return self._server_clock

    # ------------------------------------------------------------ requests
    def place_order(self, params: Mapping[str, Any]) -> None:
        """``POST /api/v3/order``; ``newClientOrderId`` is required (events are keyed by it)."""
        p = self._params(params)
        cid = p.get("newClientOrderId")
        if not cid:
            raise ValueError("place_order needs newClientOrderId")
        p.setdefault("newOrderRespType", self.new_order_resp_type)
        self._submit(self._req("place", p, cid=str(cid)))

    def cancel_order(self, params: Mapping[str, Any]) -> None:
        """``DELETE /api/v3/order`` by ``orderId`` (fastest) or ``origClientOrderId``."""
        p = self._params(params)
        if "orderId" not in p and "origClientOrderId" not in p:
            raise ValueError("cancel_order needs orderId or origClientOrderId")
        self._submit(self._req("cancel", p, cid=self._cid_of(p, "origClientOrderId", "orderId")))

    def cancel_replace(self, params: Mapping[str, Any]) -> None:
        """``POST /api/v3/order/cancelReplace`` (STOP_ON_FAILURE unless given)."""
        p = self._params(params)
        if "cancelOrderId" not in p and "cancelOrigClientOrderId" not in p:
            raise ValueError("cancel_replace needs cancelOrderId or cancelOrigClientOrderId")
        new_cid = p.get("newClientOrderId")
        if not new_cid:
            raise ValueError("cancel_replace needs newClientOrderId")
        p.setdefault("cancelReplaceMode", "STOP_ON_FAILURE")
        p.setdefault("newOrderRespType", self.new_order_resp_type)
        self._submit(self._req("cancel_replace", p, cid=self._cid_of(p, "cancelOrigClientOrderId", "cancelOrderId"),
                              new_cid=str(new_cid)))

    def query_order(self, params: Mapping[str, Any]) -> None:
        """``GET /api/v3/order`` -> ``query_result`` / ``query_not_found``."""
        p = self._params(params)
        if "orderId" not in p and "origClientOrderId" not in p:
            raise ValueError("query_order needs orderId or origClientOrderId")
        self._submit(self._req("query", p, cid=self._cid_of(p, "origClientOrderId", "orderId")))

    def cancel_all(self, symbol: str) -> None:
        """``DELETE /api/v3/openOrders``: one ``cancel_ack`` per cancelled order; none if there
        were none (-2011)."""
        self._submit(self._req("cancel_all", self._params({"symbol": symbol})))

    def reconcile(self, symbol: str) -> None:
        """``GET /api/v3/openOrders`` and ``GET /api/v3/account`` -> ``open_orders``, ``account``."""
        self._submit(self._req("open_orders", self._params({"symbol": symbol})))
        self.read_account()

    def read_account(self, tag: Optional[str] = None) -> None:
        """``GET /api/v3/account`` -> ``account`` (its ``client_order_id`` is ``tag``: the
        caller can tell the answer to this read from the reconciles' reads)."""
        self._submit(self._req("account", {"omitZeroBalances": "true"}, cid=tag))

    def _params(self, params: Mapping[str, Any]) -> dict:
        p = dict(params)
        for name in _RESERVED:
            if name in p:
                raise ValueError(f"{name!r} is added by the gateway; do not pass it")
        for k, v in p.items():
            if isinstance(v, float):
                raise TypeError(f"parameter {k!r} is a float; pass str or Decimal")
        p.setdefault("symbol", self.symbol)
        return p

    def _cid_of(self, p: Mapping[str, Any], cid_name: str, oid_name: str) -> Optional[str]:
        if p.get(cid_name):
            return str(p[cid_name])
        try:
            oid = int(p[oid_name])
        except (KeyError, TypeError, ValueError):
            return None
        with self._ids_lock:
            return self._ids.get(oid)

    def _learn(self, order_id: Any, cid: Any) -> None:
        """Remember orderId -> clientOrderId (cancels and queries by orderId name the order)."""
        if order_id is None or not cid:
            return
        try:
            oid = int(order_id)
        except (TypeError, ValueError):
            return
        with self._ids_lock:
            self._ids[oid] = str(cid)
            self._ids.move_to_end(oid)
            while len(self._ids) > 20_000:
                self._ids.popitem(last=False)

    def _req(self, op: str, params: dict, **kw: Any) -> _Request:
        return _Request(op, params, table=self.ENDPOINTS, **kw)

    def _submit(self, req: _Request) -> None:
        if not self._started:
            raise RuntimeError("gateway not started")
        # paced by the caller: it acquired the order count before calling (settled when answered)
        req.counted = req.op in _PACED_BY_CALLER and not self.pace_orders and bool(req.endpoint.orders)
        if not self._queue.put(req, dedupe=req.is_read):
            raise RuntimeError("gateway stopped")

    # ------------------------------------------------------------ events
    def _now_ns(self) -> int:
        return time.time_ns() if self._clock is time.time else int(self._clock() * 1e9)

    def _emit(self, kind: str, cid: Optional[str], data: Mapping[str, Any]) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink(GatewayEvent(kind, self._now_ns(), cid, data))
        except Exception as exc:  # noqa: BLE001 -- a failing sink must not kill the I/O threads
            log.error("%s: event sink raised on %s: %s", self.symbol, kind, self._redact(describe(exc)))

    def _emit_all(self, emissions: Iterable[Emission]) -> None:
        for kind, cid, data in emissions:
            if kind in ("new_ack", "query_result", "cancel_ack"):
                self._learn(data.get("orderId"), data.get("clientOrderId") if kind != "cancel_ack"
                            else data.get("origClientOrderId"))
            elif kind == "open_orders":
                for o in data.get("orders", ()):
                    if isinstance(o, Mapping):
                        self._learn(o.get("orderId"), o.get("clientOrderId"))
            elif kind == "cancel_replace":
                body = data.get("body")
                if isinstance(body, Mapping):
                    nresp = (body if data.get("http_status") == 200 else body.get("data") or {})
                    nresp = nresp.get("newOrderResponse") if isinstance(nresp, Mapping) else None
                    if isinstance(nresp, Mapping):
                        self._learn(nresp.get("orderId"), nresp.get("clientOrderId"))
            if kind in ("new_reject", "cancel_reject", "new_unknown", "cancel_unknown", "error"):
                data = {k: (self._redact(v) if isinstance(v, str) else v) for k, v in data.items()}
                # rejects are routine for a market maker (post-only); unknown outcomes are not
                level = logging.INFO if kind.endswith("_reject") else logging.WARNING
                log.log(level, "%s: %s %s: %s", self.symbol, kind, cid or "-", data)
            self._emit(kind, cid, data)

    # ------------------------------------------------------------ REST workers
    def _run_worker(self) -> None:
        try:
            while True:
                req = self._queue.get()
                if req is None:
                    break
                try:
                    self._execute(req)
                except Exception:  # noqa: BLE001 -- a bug must not kill the worker or leak secrets
                    text = self._redact("".join(traceback.format_exc()))
                    log.error("%s: %s failed unexpectedly:\n%s", self.symbol, req.op, text)
                    self._settle(req)
                    self._emit_all(failure_events(req.op, "internal error (see log)", True, req.cid, req.new_cid))
        finally:
            self._close_thread_conn()

    def _requeue(self, req: _Request, delay_s: float) -> None:
        """Run ``req`` again after ``delay_s`` [s]; once stopped, answer it as never sent."""
        if not self._queue.put(req, delay_s=delay_s, dedupe=req.is_read):
            self._settle(req)
            self._emit_all([e for e in failure_events(req.op, "gateway stopped before sending", False,
                                                      req.cid, req.new_cid) if e[0] != "error"])

    def _admit(self, req: _Request) -> bool:
        """Ask the rate limiter. True: send now. False: postponed or refused (answered)."""
        lim = self._limiter
        if lim is None:
            return True
        ep = req.endpoint
        detail = ""
        with self._limiter_lock:
            now = self._clock()
            if req.op in _PACED_BY_CALLER and not self.pace_orders:
                wait = lim.pause_remaining(bool(ep.orders), now)   # only Binance's 429/418 pause
            else:
                try:
                    wait = lim.acquire(ep.weight, ep.orders, now)
                except ValueError as exc:   # a single request above a whole limit
                    wait, detail = math.inf, str(exc)
                if wait <= 0 and ep.orders:
                    req.counted = True
            banned = lim.is_banned(now)
            orders_paused = bool(ep.orders) and now < lim.orders_paused_until
            paused = now < lim.paused_until or orders_paused
        if wait <= 0:
            return True
        if wait <= self.max_rate_wait_s or (req.is_read and not math.isinf(wait)):
            self._requeue(req, wait)
            return False
        if banned:
            code, status, why = ERR_TOO_MANY_REQUESTS, 418, "IP banned (HTTP 418)"
        elif paused:
            code = self._last_429_code if now < lim.paused_until else ERR_TOO_MANY_ORDERS
            status, why = 429, "Retry-After pause (HTTP 429)"
        else:
            code = ERR_TOO_MANY_ORDERS if ep.orders else ERR_TOO_MANY_REQUESTS
            status, why = None, detail or "local rate limit"
        msg = f"not sent: {why}; {wait:.1f} s to wait" if not math.isinf(wait) else f"not sent: {why}"
        self._settle(req)
        self._emit_all(not_sent_events(req.op, code, msg, status, req.cid, req.new_cid))
        return False

    def _execute(self, req: _Request) -> None:
        if not self._admit(req):
            return
        ep = req.endpoint
        try:
            status, headers, raw = self._signed(ep.method, ep.path, req.params, retry_stale=req.is_read)
        except _Lost as lost:
            if req.is_read and req.attempt < 2 and not self._stop.is_set():
                req.attempt += 1   # reads are safe to repeat
                self._requeue(req, self._backoff(req.attempt))
                return
            self._settle(req)
            self._emit_all(failure_events(req.op, self._redact(lost.detail), lost.sent, req.cid, req.new_cid))
            return
        body = decode_body(raw)
        self._settle(req)                  # before its headers: they count this request
        self._after_answer(status, headers, body)
        if req.is_read and (status >= 500 or status in (418, 429)) and req.attempt < 2 \
                and not self._stop.is_set():
            req.attempt += 1   # after the limiter's pause (see _admit) or a short backoff
            self._requeue(req, self._backoff(req.attempt))
            return
        self._emit_all(self._answer_events(req.op, status, body, req.cid, req.new_cid))

    def _answer_events(self, op: str, status: int, body: Any, cid: Optional[str],
                       new_cid: Optional[str]) -> list[Emission]:
        """The events of one HTTP answer (the USD-M gateway translates its bodies first)."""
        return answer_events(op, status, body, cid, new_cid)

    def _settle(self, req: _Request) -> None:
        """The request's order count is no longer in flight (see ``RateLimiter.settle``)."""
        if req.settled or not req.counted or self._limiter is None:
            return
        req.settled = True
        with self._limiter_lock:
            self._limiter.settle(req.endpoint.orders)

    def _after_answer(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        """Rate-limit headers, 429/418 pauses, -1021 clock resync."""
        lim = self._limiter
        if lim is not None:
            with self._limiter_lock:
                lim.update_from_headers(headers)
        code = body.get("code") if isinstance(body, Mapping) else None
        if status in (418, 429):
            self._pause(status, code, retry_after_s(headers, body, self._server_clock.now_ms()))
        elif code == ERR_TIMESTAMP:
            self._resync_clock()

    def _pause(self, status: int, code: Any, retry_s: float) -> None:
        """HTTP 429 / 418 (REST or WS API): nothing is sent for ``retry_s`` [s]; after
        429 -1015 (the account's order count) only new orders and cancel-replaces wait."""
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = None
        orders_only = status == 429 and code == ERR_TOO_MANY_ORDERS
        lim = self._limiter
        if lim is not None:
            with self._limiter_lock:
                if status == 418:
                    lim.on_418(retry_s)
                else:
                    lim.on_429(retry_s, code=code)
        if orders_only:
            log.warning("%s: HTTP 429 (-1015, order count); no new orders for %.1f s (cancels still go out)",
                        self.symbol, retry_s)
            return
        if code is not None:
            self._last_429_code = code
        self._ws_retry_at = max(self._ws_retry_at, time.monotonic() + retry_s)
        log.warning("%s: HTTP %d (%s); sending nothing for %.1f s", self.symbol, status, code, retry_s)

    def _resync_clock(self) -> None:
        """After -1021: one new server-time sample (at most one per ``resync_min_interval_s``)."""
        log.warning("%s: -1021 (timestamp outside recvWindow); resyncing the server clock", self.symbol)
        try:
            self._sync_time(min_interval_s=self.resync_min_interval_s)
        except (_Lost, KeyError, TypeError, ValueError) as exc:
            log.warning("%s: clock resync failed: %s", self.symbol, self._redact(exc))

    # ------------------------------------------------------------ HTTP
    def _new_conn(self) -> http.client.HTTPConnection:
        if self._rest_scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._rest_host, self._rest_port, timeout=self.request_timeout_s, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self._rest_host, self._rest_port, timeout=self.request_timeout_s)
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _thread_conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._tls, "conn", None)
        if conn is None:
            conn = self._tls.conn = self._new_conn()
            self._tls.last_used = 0.0
        elif conn.sock is not None and time.monotonic() - self._tls.last_used > self.keepalive_idle_s:
            conn.close()   # may have been closed by the server: reopen before sending
        return conn

    def _close_thread_conn(self) -> None:
        conn = getattr(self._tls, "conn", None)
        if conn is not None:
            conn.close()
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self._tls.conn = None

    def _close_conns(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 -- closing a broken connection
                pass

    def _http(self, method: str, target: str, headers: Mapping[str, str]) -> tuple[int, dict, bytes]:
        """One exchange on this thread's connection. Raises :class:`_Lost`."""
        conn = self._thread_conn()
        fresh = conn.sock is None
        if fresh:
            try:
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _Lost(f"connect failed: {describe(exc)}", sent=False) from None
        try:
            conn.request(method, target, headers=dict(headers))
            resp = conn.getresponse()
            raw = resp.read()
        except (socket.timeout, TimeoutError) as exc:
            conn.close()
            raise _Lost(f"no answer within {self.request_timeout_s:g} s ({describe(exc)})", sent=True) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            stale = not fresh and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                   BrokenPipeError))
            raise _Lost(f"connection lost: {describe(exc)}", sent=True, stale=stale) from None
        self._tls.last_used = time.monotonic()
        if resp.will_close:
            conn.close()
        return resp.status, dict(resp.getheaders()), raw

    def _signed(self, method: str, path: str, params: Mapping[str, Any],
                retry_stale: bool = False) -> tuple[int, dict, bytes]:
        headers = {"X-MBX-APIKEY": self._signer.api_key, "User-Agent": "hftmm", "Accept": "application/json"}
        for attempt in (0, 1):
            query = signed_query(params, self._signer, self._server_clock.now_ms(), self.recv_window_ms)
            try:
                return self._http(method, f"{path}?{query}", headers)
            except _Lost as lost:
                if not (retry_stale and lost.stale and attempt == 0):
                    raise
        raise AssertionError("unreachable")

    def _public_json(self, path: str, params: Mapping[str, Any]) -> Any:
        target = f"{path}?{urlencode(params)}" if params else path
        status, headers, raw = self._http("GET", target, {"User-Agent": "hftmm", "Accept": "application/json"})
        body = decode_body(raw)
        self._after_answer(status, headers, body)
        if status != 200:
            err = err_fields(status, body)
            raise _Lost(f"GET {path}: HTTP {status} {err['code']} {err['msg']}", sent=True)
        return body

    def _sync_time(self, min_interval_s: float = 0.0) -> None:
        """One ``GET /api/v3/time`` sample into the server clock."""
        with self._time_lock:
            if time.monotonic() - self._last_time_sync < min_interval_s:
                return
            sent = self._clock() * 1000.0
            body = self._public_json(self.TIME_PATH, {})
            recv = self._clock() * 1000.0
            self._server_clock.update(float(body["serverTime"]), sent, max(sent, recv))
            self._last_time_sync = time.monotonic()
        log.debug("%s: server clock offset %.1f ms (rtt %.1f ms)", self.symbol, self._server_clock.offset_ms,
                  self._server_clock.rtt_ms or 0.0)

    def _backoff(self, attempt: int) -> float:
        return jittered_backoff(attempt, self.backoff_initial_s, self.backoff_max_s)

    # ------------------------------------------------------------ user data stream
    def _close_ws(self) -> None:
        close_websocket(self._ws)

    def _run_user_stream(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                ws = self._open_user_ws()
            except Exception as exc:  # noqa: BLE001 -- any connect failure means retry
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("%s: user stream connect failed (%s); retry in %.2f s", self.symbol,
                            self._redact(describe(exc)), delay)
                self._stop.wait(delay)
                continue
            self._ws = ws
            reason, healthy, immediate = self._user_session(ws)
            self._subscribed.clear()
            self._close_ws()
            self._ws = None
            if self._stop.is_set():
                break
            self.reconnects += 1
            self._emit("user_stream", None, {"state": "disconnected", "detail": reason})
            attempt = 0 if healthy else attempt + 1
            delay = 0.0 if immediate else self._backoff(attempt)
            delay = max(delay, self._ws_retry_at - time.monotonic())   # a 429/418 pause
            log.warning("%s: user stream ended (%s); reconnecting in %.2f s", self.symbol, reason, delay)
            if delay:
                self._stop.wait(delay)

    def _open_user_ws(self) -> websocket.WebSocket:
        """Connect the user data stream (spot: the WS API)."""
        return self._connect_ws(self.ws_api_url)

    def _connect_ws(self, url: str) -> websocket.WebSocket:
        return websocket.create_connection(url, timeout=self.request_timeout_s, skip_utf8_validation=True,
                                           enable_multithread=True,
                                           sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))

    def _user_protocol(self) -> Any:
        """The sans-I/O user stream protocol (spot: WS API ``userDataStream.subscribe.signature``)."""
        return UserStreamProtocol()

    def _user_tick(self) -> Optional[str]:
        """Called in the user stream's loop; a reason string ends the session (USD-M: keepalive)."""
        return None

    def _user_session(self, ws: websocket.WebSocket) -> tuple[str, bool, bool]:
        """Subscribe and read until the connection ends.
        Returns (reason, healthy: subscribed for over a minute, reconnect immediately)."""
        proto = self._user_protocol()
        opened = last_rx = last_ping = time.monotonic()
        self._session_subscribed_at: Optional[float] = None
        try:
            first = proto.subscribe_request(self._signer, self._server_clock.now_ms(), self.recv_window_ms)
            if first is not None:
                ws.send(first)
            ws.settimeout(min(0.25, self.watchdog_s / 4))
        except Exception as exc:  # noqa: BLE001
            return f"subscribe not sent: {self._redact(describe(exc))}", False, False

        def healthy() -> bool:
            at = self._session_subscribed_at
            return at is not None and time.monotonic() - at > 60.0

        for action in proto.on_open():
            ended = self._user_action(action)
            if ended is not None:
                return ended[0], ended[1], ended[1]
        while not self._stop.is_set():
            now = time.monotonic()
            if self._session_subscribed_at is None and now - opened > self.request_timeout_s:
                return "no answer to the subscription", False, False
            if now - opened > self.max_lifetime_s:
                return "lifetime", True, True
            if now - last_ping > self.ping_interval_s:
                try:
                    ws.ping()
                except Exception as exc:  # noqa: BLE001
                    return f"ping failed: {self._redact(describe(exc))}", healthy(), False
                last_ping = now
            if self._session_subscribed_at is not None:
                ended_by = self._user_tick()
                if ended_by:
                    return ended_by, healthy(), True
            try:
                op, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                if time.monotonic() - last_rx > self.watchdog_s:
                    return f"watchdog: silent for {self.watchdog_s:g} s", healthy(), False
                continue
            except Exception as exc:  # noqa: BLE001 -- closed, reset, protocol error
                return f"connection lost: {self._redact(describe(exc))}", healthy(), False
            last_rx = time.monotonic()
            if op == websocket.ABNF.OPCODE_CLOSE:
                return "close frame", healthy(), False
            if op != websocket.ABNF.OPCODE_TEXT:
                continue   # ping (answered by websocket-client), pong, binary
            try:
                msg = json.loads(data)
            except ValueError:
                log.warning("%s: user stream: undecodable frame skipped", self.symbol)
                continue
            try:
                actions = proto.on_message(msg)
            except Exception as exc:  # noqa: BLE001 -- one bad frame must not end the stream's thread
                log.warning("%s: user stream: frame skipped (%s)", self.symbol, self._redact(describe(exc)))
                continue
            for action in actions:
                ended = self._user_action(action)
                if ended is not None:
                    return ended[0], ended[1], ended[1]
        return "stopped", healthy(), False

    def _user_action(self, action: tuple) -> Optional[tuple[str, bool]]:
        """Apply one protocol action; (reason, healthy and reconnect at once) when it ends
        the session (a rejected subscription: not healthy, back off)."""
        kind = action[0]
        if kind == "event":
            _, ekind, cid, event = action
            if ekind == "execution_report":
                self._learn(event.get("i"), cid)
            self._emit(ekind, cid, event)
        elif kind == "subscribed":
            self._session_subscribed_at = time.monotonic()
            self.subscriptions += 1
            self._subscribed.set()
            detail = action[2] if len(action) > 2 else "userDataStream.subscribe.signature"
            log.info("%s: user stream subscribed (%s)", self.symbol, self._redact(f"{detail} {action[1]}"))
            self._emit("user_stream", None, {"state": "subscribed", "subscription_id": action[1],
                                             "detail": detail})
            self._reconcile_internal()
        elif kind == "rejected":
            _, status, code, emsg, data = action
            if code == ERR_TIMESTAMP:
                self._resync_clock()
            elif status in (418, 429):
                # WS API: error.data.retryAfter is the end of the pause (ms since the epoch)
                retry_s = 60.0
                if isinstance(data.get("retryAfter"), int):
                    retry_s = max(0.0, (data["retryAfter"] - self._server_clock.now_ms()) / 1000.0)
                self._pause(status, code, retry_s)
            return self._redact(f"subscription rejected: status {status} code {code} {emsg}"), False
        elif kind == "terminated":
            detail = action[2] if len(action) > 2 else "eventStreamTerminated"
            self._emit("user_stream", None, {"state": "terminated", "detail": detail})
            return detail, True
        elif kind == "shutdown":
            return "serverShutdown", True
        elif kind == "rate_limits":
            if self._limiter is not None:
                with self._limiter_lock:
                    self._limiter.update_from_headers(rate_limit_headers(action[1]))
        elif kind == "skipped":
            log.warning("%s: user stream: %s", self.symbol, self._redact(action[1]))
        else:
            log.debug("%s: user stream: %s", self.symbol, self._redact(action[1]))
        return None

    def _reconcile_internal(self) -> None:
        try:
            self.reconcile(self.symbol)   # reads wait out a 429/418 pause in the queue
        except RuntimeError as exc:       # stopping
            log.debug("%s: reconcile not queued: %s", self.symbol, exc)

