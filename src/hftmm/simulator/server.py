"""The exchange simulator: one asyncio loop in a background thread, one port
serving Binance-shaped REST and WebSocket market-data streams on 127.0.0.1, and
(spot) signed order entry over REST and the WS API (``/ws-api/v3``) with
user-data streams: see :mod:`hftmm.simulator.orders` (matching, accounts),
:mod:`hftmm.simulator.trading` (auth, limits, faults) and
:mod:`hftmm.simulator.wsapi`.

Extending it: HTTP routes live in ``ExchangeSimulator.http_routes``
(``(method, path) -> Route(handler, weight)``; a handler takes a
:class:`~hftmm.simulator.http.Request` and returns a
:class:`~hftmm.simulator.http.Response`, or a coroutine of one), WebSocket
endpoints in ``ws_routes`` (path -> factory ``(sim, request, rest_of_path) ->
WsHandler``); a :class:`WsHandler` gets ``on_open``/``on_text``/``on_binary``/
``on_close`` for its :class:`WsConnection`, which does the RFC 6455 work
(framing, ping/pong, lifetime, incoming rate limit, send queue).
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import re
import threading
import time
from typing import Any, Awaitable, Callable, Optional, Union

import numpy as np

from hftmm.simulator import faults as _faults
from hftmm.simulator.faults import CONNECTION_KINDS, ConnectionFaults, FaultConfig, RestFaults
from hftmm.simulator.http import BadRequest, DropConnection, Request, Response, read_request
from hftmm.simulator.marketdata import PUBLIC_ENDPOINTS, MarketTape, PublicApi, PublicEndpoint
from hftmm.simulator.orders import ApiError
from hftmm.simulator.rest import (EXCHANGE_INFO_WEIGHT, SPOT_DEPTH_DEFAULT, SPOT_DEPTH_MAX, USDM_DEPTH_DEFAULT,
                                  USDM_DEPTH_LIMITS, WEIGHT_LIMIT, depth_weight, exchange_info,
                                  render_snapshot)
from hftmm.simulator.trading import IpLimits, SpotLimits
from hftmm.simulator.sources import DEPTH_INTERVALS, Msg, Source
from hftmm.simulator.streams import TIMED_CHANNELS, StreamCatalog, StreamSpec, TimedRenderer
from hftmm.simulator.websocket import (CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_NORMAL, CLOSE_POLICY,
                                       CLOSE_UNSUPPORTED, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
                                       MessageAssembler, ProtocolError, accept_key, encode_close, encode_frame,
                                       parse_close, read_frame)

log = logging.getLogger(__name__)

#: Binance's connection rules per market (BINANCE.md, "Connection rules")
PING_INTERVAL_S = {"spot": 20.0, "usdm": 180.0}
PONG_TIMEOUT_S = {"spot": 60.0, "usdm": 600.0}
INCOMING_RATE = {"spot": 5, "usdm": 10}
MAX_STREAMS = {"spot": 1024, "usdm": 200}
MAX_LIFETIME_S = 24 * 3600.0

QUEUE_HIGH = 2048          # speed 0: the engine waits while a queue is above this
QUEUE_LOW = 512            # ... until it is back below this
QUEUE_MAX = 200_000        # speed > 0: a connection this far behind is dropped (slow consumer)
SNAPSHOT_HISTORY_EVERY_NS = 1_000_000_000
SNAPSHOT_HISTORY_LEN = 30
MAX_WS_MESSAGE = 1 << 20


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def valid_request_id(rid: object) -> bool:
    """Binance's stream request ``id``: a 64-bit signed integer, an alphanumeric
    string of at most 36 characters (hyphens allowed: Binance's own SDK sends
    UUIDs), or null."""
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(2 ** 63) <= rid < 2 ** 63
    return isinstance(rid, str) and re.fullmatch(r"[A-Za-z0-9_-]{0,36}", rid) is not None


# ---------------------------------------------------------------------------
# WebSocket connection and handlers
# ---------------------------------------------------------------------------

class WsHandler:
    """Behaviour of one WebSocket connection (subclass per endpoint)."""

    conn: "WsConnection"
    #: close the connection past ``sim.incoming_rate`` messages a second (market streams)
    rate_limited = True

    def on_open(self, conn: "WsConnection") -> None:
        self.conn = conn

    def on_text(self, conn: "WsConnection", data: bytes) -> None:
        pass

    def on_binary(self, conn: "WsConnection", data: bytes) -> None:
        conn.close_soon(CLOSE_UNSUPPORTED, "binary messages are not supported")

    def on_close(self, conn: "WsConnection") -> None:
        pass


class WsConnection:
    """One server-side WebSocket: reader loop, writer task with a bounded
    send queue, pings, pong timeout, lifetime, incoming-message rate limit."""

    def __init__(self, sim: "ExchangeSimulator", reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: WsHandler, index: int, path: str, endpoint: int = 0) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.index = index
        self.path = path
        self.queue: collections.deque = collections.deque()
        self.closing = False
        self.close_sent = False
        self.closed = False
        self.close_reason = ""
        self.hold_until = 0.0      # delay fault: writer pauses until then (loop time)
        self.silent_until = 0.0    # silent fault: nothing is sent until then
        self._wake = asyncio.Event()
        self._low = asyncio.Event()
        self._low.set()
        self._close_received = asyncio.Event()
        self._incoming: collections.deque = collections.deque()
        self._pings: dict[bytes, float] = {}
        self.endpoint = endpoint   # which listening port accepted it (0: the main one)
        self.faults: Optional[ConnectionFaults] = (ConnectionFaults(sim.faults, index, endpoint)
                                                   if sim.faults is not None else None)
        self._tasks: list[asyncio.Task] = []
        self.loop = asyncio.get_running_loop()

    # -- state -----------------------------------------------------------
    @property
    def silent(self) -> bool:
        return self.silent_until > 0 and self.loop.time() < self.silent_until

    def idle(self) -> bool:
        if self.closed:
            return True
        tr = self.writer.transport
        return (not self.queue and self.hold_until <= self.loop.time()
                and (tr is None or tr.is_closing() or tr.get_write_buffer_size() == 0))

    # -- sending ----------------------------------------------------------
    def push(self, frame: bytes, channel: str) -> None:
        """Queue one data frame (sent in order by the writer task)."""
        if self.closing:
            return
        q = self.queue
        q.append((frame, channel))
        if len(q) == 1:
            self._wake.set()
        if len(q) > QUEUE_HIGH:
            self._low.clear()
            if len(q) > QUEUE_MAX and self.sim.source.speed > 0:
                self.sim._count("disconnects", "slow_consumer")
                self.close_soon(CLOSE_POLICY, "slow consumer")

    def send_now(self, opcode: int, payload: bytes, channel: str = "control") -> None:
        """Write a frame now, ahead of the queue (control replies, pings)."""
        if self.closing or self.silent:
            return
        tr = self.writer.transport
        if tr is None or tr.is_closing():
            return
        try:
            self.writer.write(encode_frame(opcode, payload))
        except Exception:  # transport gone
            return
        self.sim._count("sent", channel)

    async def wait_low(self) -> None:
        while len(self.queue) > QUEUE_HIGH and not self.closing:
            self._low.clear()
            await self._low.wait()

    async def _writer_loop(self) -> None:
        q = self.queue
        w = self.writer
        sent = self.sim._stats["sent"]
        loop = self.loop
        try:
            while not self.closing:
                if not q:
                    self._low.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                now = loop.time()
                if self.hold_until > now:
                    await asyncio.sleep(self.hold_until - now)
                    continue
                tr = w.transport
                if tr is None or tr.is_closing():
                    break
                batch = []
                silent = self.silent_until > 0 and now < self.silent_until
                while q and len(batch) < 512:
                    frame, ch = q.popleft()
                    if silent:
                        self.sim._count("faults_effect", "silenced_messages")
                        continue
                    batch.append(frame)
                    sent[ch] = sent.get(ch, 0) + 1
                if batch and not self.closing:
                    w.write(b"".join(batch))   # one syscall for many frames
                if len(q) <= QUEUE_LOW:
                    self._low.set()
                await w.drain()
        except (ConnectionError, RuntimeError):
            pass
        except asyncio.CancelledError:
            raise
        finally:
            self._low.set()

    # -- closing ----------------------------------------------------------
    def close_soon(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if not self.close_sent:
            self._spawn(self.close(code, reason))

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "", wait_s: float = 2.0) -> None:
        """Close handshake: send a close frame, wait for the peer's, close TCP."""
        if self.close_sent or self.closed:
            return
        self.close_sent = True
        self.closing = True
        self.close_reason = self.close_reason or reason
        self.queue.clear()
        self._low.set()
        self._wake.set()
        try:
            self.writer.write(encode_close(code, reason))
            self.sim._count("sent", "close")
        except Exception:
            pass
        try:
            await asyncio.wait_for(self._close_received.wait(), wait_s)
        except asyncio.TimeoutError:
            pass
        self.writer.close()

    def abort(self, reason: str = "abort") -> None:
        """Drop TCP without a close frame."""
        self.closing = True
        self.close_reason = self.close_reason or reason
        self.queue.clear()
        self._low.set()
        self._wake.set()
        tr = self.writer.transport
        if tr is not None:
            tr.abort()

    def _spawn(self, coro: Awaitable) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.append(t)

    # -- faults acting on the whole connection ------------------------------
    def apply_connection_fault(self, kind: str, params: dict) -> None:
        now = self.loop.time()
        if kind == "drop_connection":
            self.sim._count("disconnects", "fault_drop")
            self.abort("fault: drop_connection")
        elif kind == "delay":
            self.hold_until = max(self.hold_until, now + float(params.get("ms", 300.0)) / 1000.0)
        elif kind == "silent":
            self.silent_until = max(self.silent_until, now + float(params.get("seconds", 3.0)))
        elif kind == "server_shutdown":
            if self.closing:
                return
            payload = f'{{"e":"serverShutdown","E":{_now_ms()}}}'.encode()
            if getattr(self.handler, "combined", False):
                payload = b'{"stream":"serverShutdown","data":' + payload + b"}"
            self.push(encode_frame(OP_TEXT, payload), "serverShutdown")

            async def later() -> None:
                await asyncio.sleep(float(params.get("after_s", 1.0)))
                self.sim._count("disconnects", "server_shutdown")
                await self.close(CLOSE_GOING_AWAY, "server shutdown")
            self._spawn(later())

    # -- tasks -------------------------------------------------------------
    async def _pinger(self, interval: float, timeout: float) -> None:
        loop = self.loop
        step = max(0.01, min(interval, timeout, 1.0) / 4)
        next_ping = loop.time() + interval
        while not self.closing:
            await asyncio.sleep(step)
            now = loop.time()
            if self._pings and not self.silent and now - min(self._pings.values()) > timeout:
                self.sim._count("disconnects", "pong_timeout")
                await self.close(CLOSE_POLICY, "pong timeout")
                return
            if now >= next_ping:
                next_ping = now + interval
                if self.silent:
                    continue
                payload = str(_now_ms()).encode()
                if payload in self._pings:
                    payload += b"." + str(len(self._pings)).encode()
                self._pings[payload] = now
                self.send_now(OP_PING, payload, "ping")

    async def _lifetime(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self.closing:
            self.sim._count("disconnects", "lifetime")
            await self.close(CLOSE_GOING_AWAY, "max connection lifetime reached")

    def _on_pong(self, data: bytes) -> None:
        t = self._pings.get(data)
        if t is None:
            return  # unsolicited pong: allowed, does not keep the connection alive
        for k in [k for k, v in self._pings.items() if v <= t]:
            del self._pings[k]

    def _rate_ok(self) -> bool:
        now = self.loop.time()
        dq = self._incoming
        dq.append(now)
        while dq and now - dq[0] > 1.0:
            dq.popleft()
        return len(dq) <= self.sim.incoming_rate

    async def run(self) -> None:
        sim = self.sim
        self._tasks.append(asyncio.ensure_future(self._writer_loop()))
        self._tasks.append(asyncio.ensure_future(self._pinger(sim.ping_interval_s, sim.pong_timeout_s)))
        if sim.max_lifetime_s:
            self._tasks.append(asyncio.ensure_future(self._lifetime(sim.max_lifetime_s)))
        asm = MessageAssembler(MAX_WS_MESSAGE)
        try:
            self.handler.on_open(self)
            while True:
                fin, op, data = await read_frame(self.reader, MAX_WS_MESSAGE)
                m = asm.feed(fin, op, data)
                if m is None:
                    continue
                op, data = m
                if op == OP_CLOSE:
                    code, reason = parse_close(data)
                    self._close_received.set()
                    if not self.close_sent:
                        self.close_sent = True
                        self.closing = True
                        self.close_reason = self.close_reason or f"client close {code}"
                        try:
                            self.writer.write(encode_close(None if code == 1005 else code, ""))
                        except Exception:
                            pass
                    break
                if self.closing and self.close_sent:
                    continue  # draining until the peer's close frame
                sim._count("received", {OP_TEXT: "text", OP_BINARY: "binary", OP_PING: "ping",
                                        OP_PONG: "pong"}[op])
                if self.handler.rate_limited and not self._rate_ok():
                    sim._count("disconnects", "rate_limit")
                    self._spawn(self.close(CLOSE_POLICY, "too many messages"))
                    continue
                if op == OP_TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("invalid UTF-8 in a text message", CLOSE_INVALID_DATA) from None
                    self.handler.on_text(self, data)
                elif op == OP_BINARY:
                    self.handler.on_binary(self, data)
                elif op == OP_PING:
                    self.send_now(OP_PONG, data, "pong")
                elif op == OP_PONG:
                    self._on_pong(data)
        except ProtocolError as e:
            sim._count("disconnects", "protocol_error")
            await self.close(e.code, str(e)[:120], wait_s=0.5)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close_reason = self.close_reason or "peer gone"
        except asyncio.CancelledError:
            raise
        finally:
            self.closing = True
            self.closed = True
            self._low.set()
            self._wake.set()
            try:
                self.handler.on_close(self)
            except Exception:  # pragma: no cover
                log.exception("on_close")
            for t in self._tasks:
                if not t.done() and t is not asyncio.current_task():
                    t.cancel()
            try:
                self.writer.close()
            except Exception:
                pass
            sim._conn_closed(self)


class MarketStreamHandler(WsHandler):
    """Market-data streams: raw (``/ws/...``) or combined (``/stream...``)
    frames, live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY
    combined / GET_PROPERTY with Binance's replies and error messages, and the
    per-connection faults.

    As on Binance, any path under ``/ws/`` or ``/stream`` opens a connection:
    names in the URL that are no stream are ignored (ccxt opens ``/ws/0`` and
    SUBSCRIBEs). A valid name the simulator does not deliver on this connection
    (another symbol, or a USD-M stream of the other route) is subscribed and
    listed but never delivers, which is what Binance does (counted in
    ``stats()["control_messages"]["silent_subscription"]``)."""

    METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

    def __init__(self, sim: "ExchangeSimulator", combined: bool, routes: tuple[str, ...],
                 streams: list[str]) -> None:
        self.sim = sim
        self.combined = combined
        self.routes = routes
        self.initial = streams
        self.subscriptions: dict[str, Optional[StreamSpec]] = {}   # canonical -> spec (None: silent), in order
        self._held: Optional[tuple[bytes, str, str]] = None        # reorder: (frame, channel, stream)

    def on_open(self, conn: WsConnection) -> None:
        self.conn = conn
        for name in self.initial:
            spec = self.sim.catalog.lookup(name)
            if spec is None:
                self.sim._count("control", "ignored_url_stream")
                continue
            if len(self.subscriptions) < self.sim.max_streams:
                self._subscribe(spec)

    def on_close(self, conn: WsConnection) -> None:
        for name in list(self.subscriptions):
            self._unsubscribe(name)

    def _subscribe(self, spec: StreamSpec) -> None:
        if spec.canonical in self.subscriptions:
            return
        if not spec.ours or not (spec.routes & set(self.routes)):
            self.subscriptions[spec.canonical] = None
            self.sim._count("control", "silent_subscription")
            log.info("stream %s is not delivered on %s (Binance acknowledges it and sends nothing)",
                     spec.canonical, self.conn.path)
            return
        self.subscriptions[spec.canonical] = spec
        self.sim._add_subscriber(self, spec)

    def _unsubscribe(self, canonical: str) -> None:
        if canonical not in self.subscriptions:
            return
        spec = self.subscriptions.pop(canonical)
        if spec is not None:
            self.sim._remove_subscriber(self, spec)

    def _reply(self, obj: dict) -> None:
        self.conn.send_now(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, code: int, msg: str, rid: Any = None) -> None:
        self.sim._count("control", "error")
        self._reply({"error": {"code": code, "msg": msg}, "id": rid})

    def on_text(self, conn: WsConnection, data: bytes) -> None:
        text = data.decode("utf-8")
        try:
            req = json.loads(text)
        except json.JSONDecodeError as e:
            return self._error(3, f"Invalid JSON: expected value at line {e.lineno} column {e.colno}")
        if not isinstance(req, dict):
            return self._error(3, f"Invalid JSON: invalid type: expected struct at line 1 column {len(text)}")
        rid = req.get("id")
        if not valid_request_id(rid):
            return self._error(2, "Invalid request: request ID must be an unsigned integer", None)
        if any(k not in ("method", "params", "id") for k in req):
            return self._error(2, "Invalid request: too many parameters", rid)
        method = req.get("method")
        if not isinstance(method, str):
            return self._error(2, f"Invalid request: missing field `method` at line 1 column {len(text)}", rid)
        if method not in self.METHODS:
            col = text.find(json.dumps(method)) + len(json.dumps(method)) if json.dumps(method) in text else len(text)
            return self._error(2, f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, "
                                  "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` "
                                  f"at line 1 column {col}", rid)
        params = req.get("params", [])
        if not isinstance(params, list):
            return self._error(2, "Invalid request: invalid type: expected a sequence", rid)
        self.sim._count("control", method)
        catalog = self.sim.catalog
        if method == "SUBSCRIBE" or method == "UNSUBSCRIBE":
            specs = [catalog.lookup(p) for p in params]
            for p, spec in zip(params, specs):
                if spec is None:
                    if not isinstance(p, str):
                        return self._error(2, "Invalid request: invalid type: expected a string", rid)
                    return self._error(2, f"Invalid request: invalid stream name {p!r}", rid)
            if method == "SUBSCRIBE":
                new = {s.canonical for s in specs} - set(self.subscriptions)
                if len(self.subscriptions) + len(new) > self.sim.max_streams:
                    return self._error(2, f"Invalid request: too many streams (max {self.sim.max_streams})", rid)
                for spec in specs:
                    self._subscribe(spec)
            else:
                for spec in specs:
                    self._unsubscribe(spec.canonical)
            return self._reply({"result": None, "id": rid})
        if method == "LIST_SUBSCRIPTIONS":
            return self._reply({"result": list(self.subscriptions), "id": rid})
        if method == "SET_PROPERTY":
            if not params or not isinstance(params[0], str):
                return self._error(2, "Invalid request: property name must be a string", rid)
            if params[0] != "combined":
                return self._error(0, "Unknown property", rid)
            if len(params) != 2 or not isinstance(params[1], bool):
                return self._error(1, "Invalid value type: expected Boolean", rid)
            self.combined = params[1]
            return self._reply({"result": None, "id": rid})
        # GET_PROPERTY
        if not params or not isinstance(params[0], str):
            return self._error(2, "Invalid request: property name must be a string", rid)
        if params != ["combined"]:
            return self._error(0, "Unknown property", rid)
        return self._reply({"result": self.combined, "id": rid})

    # -- data path (called by the engine, in the loop thread) --------------
    def deliver(self, msg: Msg, frame: bytes, stream: str) -> None:
        conn = self.conn
        if conn.closing:
            return
        f = conn.faults
        ch = msg.channel
        if f is None:
            conn.push(frame, ch)
            return
        acts = f.decide(ch == "depth")
        held = self._held
        if not acts:
            conn.push(frame, ch)
            if held is not None and ch == "depth" and held[2] == stream:
                conn.push(held[0], held[1])
                self._held = None
            return
        sim = self.sim
        frames = [frame]
        extra: list[bytes] = []
        skipped = False
        for a in acts:
            k = a.kind
            sim._fault(k, conn.index, f.count)
            if k in CONNECTION_KINDS:
                conn.apply_connection_fault(k, a.params)
                if conn.closing:
                    return
            elif k == "skip":
                frames = []
                sim._count("faults_effect", "update_ids_skipped", msg.u - msg.pu)
                skipped = True
            elif k == "duplicate":
                frames = frames + frames if frames else [frame, frame]
            elif k == "reorder":
                if self._held is None and frames:
                    self._held = (frames[0], ch, stream)   # goes out after the next depth message
                    frames = frames[1:]
            elif k == "malformed":
                extra.append(self._malformed(a.params.get("variant"), msg, frame, stream))
        if skipped and not frames and ch == "depth" and (self._held is None or self._held[0] is not frame):
            sim._skipped.append((conn.index, msg.U, msg.u, msg.pu))   # withheld for good (ground truth)
        for fr in frames:
            conn.push(fr, ch)
        for fr in extra:
            conn.push(fr, "malformed")
        if held is not None and self._held is held and ch == "depth" and held[2] == stream and frames:
            conn.push(held[0], held[1])
            self._held = None

    def _malformed(self, variant: Optional[str], msg: Msg, frame: bytes, stream: str) -> bytes:
        if variant is None:
            variant = "truncated"
        sim = self.sim
        sim._count("faults_effect", f"malformed_{variant}")
        if variant == "garbage":
            body = b"<html><body>502 Bad Gateway</body></html> \x7f{{not json"
        elif variant == "bad_price":
            u = msg.u if msg.channel == "depth" else sim._last_update_id
            sym = sim.symbol
            if sim.market == "spot":
                body = (f'{{"e":"depthUpdate","E":{_now_ms()},"s":"{sym}","U":{u},"u":{u},'
                        f'"b":[["abc","1.00000000"]],"a":[]}}').encode()
            else:
                body = (f'{{"e":"depthUpdate","E":{_now_ms()},"T":{_now_ms()},"s":"{sym}","U":{u},"u":{u},'
                        f'"pu":{u},"b":[["abc","1.000"]],"a":[]}}').encode()
            if self.combined:
                body = b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"
        else:  # truncated
            payload = msg.payload
            if self.combined:
                payload = b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
            body = payload[: max(1, len(payload) // 2)]
        return encode_frame(OP_TEXT, body)


# ---------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------

class UserStreamHandler(MarketStreamHandler):
    """A USD-M listenKey stream (``/private/ws?listenKey=``, ``/ws/<listenKey>``): the
    account's user-data events, raw (``/ws``) or as ``{"stream": listenKey, "data": ...}``
    (``/stream``); control messages are answered as on any stream connection."""

    def __init__(self, sim: "ExchangeSimulator", combined: bool, routes: tuple[str, ...], listen_key: str) -> None:
        super().__init__(sim, combined, routes, [])
        self.listen_key = listen_key

    @property
    def subs(self) -> dict[int, str]:
        key = self.sim._listen_keys.get(self.listen_key)
        return {0: key} if key else {}

    def on_open(self, conn: WsConnection) -> None:
        super().on_open(conn)
        self.sim._user_handlers.add(self)

    def on_close(self, conn: WsConnection) -> None:
        super().on_close(conn)
        self.sim._user_handlers.discard(self)

    def send_event(self, event: dict) -> None:
        body = event if not self.combined else {"stream": self.listen_key, "data": event}
        self.conn.push(encode_frame(OP_TEXT, json.dumps(body, separators=(",", ":")).encode()), "user_data")

    def deliver_event(self, api_key: str, event: dict) -> None:
        if self.sim._listen_keys.get(self.listen_key) == api_key:
            self.send_event(event)

    def terminate(self, api_key: Optional[str] = None) -> int:
        """USD-M has no eventStreamTerminated: expire the key instead."""
        if api_key is None or self.sim._listen_keys.get(self.listen_key) == api_key:
            self.sim._end_listen_key(self.listen_key, expired=True)
            return 1
        return 0


class Route:
    """An HTTP route: handler(request) -> Response (or awaitable); weight: int
    or callable(request) -> int (REQUEST_WEIGHT counted before the handler)."""

    __slots__ = ("handler", "weight")

    def __init__(self, handler: Callable[[Request], Union[Response, Awaitable[Response]]],
                 weight: Union[int, Callable[[Request], int]] = 1) -> None:
        self.handler = handler
        self.weight = weight


class _HttpError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class ExchangeSimulator:
    """A Binance-compatible exchange on 127.0.0.1 (see the package docstring).

    ``depth_interval_ms`` selects the *primary* depth stream: the one whose
    published state ``ground_truth()`` and ``last_update_id`` describe (spot:
    100 or 1000; USD-M: 0, 100, 250 or 500). Every standard interval is served
    under its own name with its real cadence (spot ``@depth`` = 1000 ms,
    ``@depth@100ms``; USD-M ``@depth`` = 250 ms, ``@depth@500ms``,
    ``@depth@100ms``, ``@depth@0ms``); a non-primary interval starts being
    rendered when first subscribed.

    USD-M order entry: :mod:`hftmm.simulator.futures` (``limits``: :class:`FuturesLimits`;
    ``funding_interval_s`` / ``funding_rate``, ``listen_key_validity_s``,
    ``leverage_brackets`` (the ``GET /fapi/v1/leverageBracket`` body; default Binance's
    BTCUSDT table), ``margin_call_ratio``; :meth:`set_mark_price`, :meth:`settle_funding`).
    Spot order entry (see the module docstring): ``limits`` (:class:`SpotLimits`)
    are enforced and listed in exchangeInfo; ``order_fault_seed`` and
    ``order_fault_rates`` (kind -> probability per order request) drive random
    order-entry faults (:mod:`hftmm.simulator.trading`). Accounts come from
    :meth:`add_account`.

    Public market data (``trades``, ``aggTrades``, ``klines``, tickers,
    ``avgPrice``...; :mod:`hftmm.simulator.marketdata`) is computed from the
    trades the simulator published (``tape``, at most ``max_trades`` kept).
    ``tls``: True serves HTTPS/WSS with a self-signed certificate for
    127.0.0.1/localhost generated into a temporary folder (``cert_path``), a
    folder path writes it there; clients trust ``cert_path``.
    """

    def __init__(self, market: str = "spot", source: Optional[Source] = None,
                 faults: Optional[FaultConfig] = None, host: str = "127.0.0.1", port: int = 0,
                 depth_interval_ms: int = 100, ping_interval_s: Optional[float] = None,
                 pong_timeout_s: Optional[float] = None, max_lifetime_s: Optional[float] = MAX_LIFETIME_S,
                 incoming_rate: Optional[int] = None, max_streams: Optional[int] = None,
                 limits: Optional[SpotLimits] = None, order_fault_seed: int = 0,
                 order_fault_rates: Optional[dict[str, float]] = None, tls: Union[bool, str] = False,
                 max_trades: int = 200_000, extra_ports: int = 0, funding_interval_s: float = 8 * 3600.0,
                 funding_rate: Any = None, listen_key_validity_s: float = 3600.0,
                 leverage_brackets: Optional[dict] = None, margin_call_ratio: Any = "0.8") -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        if not ipaddress.ip_address(host if host != "localhost" else "127.0.0.1").is_loopback:
            raise ValueError(f"the simulator only listens on loopback addresses, not {host!r}")
        if depth_interval_ms not in DEPTH_INTERVALS[market]:
            raise ValueError(f"depth_interval_ms must be one of {DEPTH_INTERVALS[market]} for {market}")
        if source is None:
            from hftmm.simulator.sources import SyntheticSource
            source = SyntheticSource()
        self.market = market
        self.source = source
        self.faults = faults
        self.host = host
        self.port = port
        if not 0 <= extra_ports <= 8:
            raise ValueError(f"extra_ports must be in [0, 8], got {extra_ports}")
        self.extra_ports = extra_ports
        #: listening ports: [main, extra...] (each serves everything; connections
        #: remember which one accepted them, FaultConfig.endpoints picks by it)
        self.ports: list[int] = []
        #: depth messages withheld by skip faults: (connection index, U, u, pu)
        self._skipped: collections.deque = collections.deque(maxlen=1_000_000)
        self._depth_first: Optional[tuple[int, int, int]] = None   # (U, u, pu) of the first depth published
        self._depth_count = 0
        self.depth_interval_ms = depth_interval_ms
        self.ping_interval_s = float(ping_interval_s if ping_interval_s is not None else PING_INTERVAL_S[market])
        self.pong_timeout_s = float(pong_timeout_s if pong_timeout_s is not None else PONG_TIMEOUT_S[market])
        self.max_lifetime_s = max_lifetime_s
        self.incoming_rate = int(incoming_rate if incoming_rate is not None else INCOMING_RATE[market])
        self.max_streams = int(max_streams if max_streams is not None else MAX_STREAMS[market])
        self.symbol = source.symbol.upper()
        self.tick_size: str = source.tick_size
        self.lot_size: str = source.lot_size
        self.catalog = StreamCatalog(market, self.symbol)
        self.tape = MarketTape(self.tick_size, self.lot_size, max_trades=max_trades)
        self._market_ns = 0
        self.public = PublicApi(market, self.symbol, self.tick_size, self.lot_size, self.tape,
                                lambda: self.source.book, lambda t: self.source.px(t), lambda q: self.source.qty(q),
                                self.market_time_ms, lambda: self._last_update_id)
        self.public.funding_interval_ms = int(funding_interval_s * 1000)
        if funding_rate is not None:         # a fraction, or callable(now_ms) -> fraction
            self.public.funding_rate = funding_rate
        self._timed_render = TimedRenderer(market, self.symbol, self.public)
        self._timed: dict[tuple[str, Any], list] = {}      # (channel, key) -> [next due ns, period ns]
        self._timed_due = 0
        self._depth_ids: collections.deque = collections.deque(maxlen=4096)   # (U, u) of the primary depth
        self.tls = tls
        self.cert_path: Optional[str] = None
        self.key_path: Optional[str] = None
        self._listen_keys: dict[str, str] = {}             # USD-M listenKey -> api key
        self._listen_deadline: dict[str, float] = {}       # USD-M listenKey -> expiry (monotonic s)
        self.listen_key_validity_s = float(listen_key_validity_s)
        if funding_interval_s <= 0:
            raise ValueError(f"funding_interval_s must be > 0, got {funding_interval_s}")
        self.funding_interval_s = float(funding_interval_s)
        self._leverage_brackets = leverage_brackets
        self._margin_call_ratio = margin_call_ratio
        self.funding_log: list[tuple[int, str, dict]] = []   # (time ms, rate, api key -> paid)
        self._usdm_keys: set[str] = set()
        self._lock = threading.Lock()
        self._paused = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._started = threading.Event()
        self._start_error: Optional[BaseException] = None
        self._stopped = False
        self._conns: dict[int, WsConnection] = {}
        self._n_conns = 0
        self._http_writers: set = set()
        self._subs: dict[tuple[str, Optional[int]], dict[str, set[MarketStreamHandler]]] = {}
        self._last_update_id = 0
        self._history: collections.deque = collections.deque(maxlen=SNAPSHOT_HISTORY_LEN)
        self._last_hist_ts = 0
        self._t0 = 0.0
        if limits is None:
            from hftmm.simulator.futures import FuturesLimits
            limits = SpotLimits(request_weight_1m=WEIGHT_LIMIT[market]) if market == "spot" else FuturesLimits()
        self.limits = limits
        self._ip = (IpLimits(self.limits.request_weight_1m, self.limits.raw_requests_5m) if market == "spot"
                    else IpLimits(WEIGHT_LIMIT[market]))
        self._order_fault_args = (order_fault_seed, order_fault_rates)
        self.trading = None
        self._user_handlers: set = set()
        self._user_log: dict[str, list[dict]] = {}
        self._rest_faults = RestFaults(faults) if faults is not None else None
        self._fault_log: list[tuple] = []
        self._stats: dict[str, dict] = {k: {} for k in (
            "sent", "received", "published", "faults", "faults_effect", "disconnects", "rest_requests",
            "rest_status", "control")}
        self.exhausted = False
        self.http_routes: dict[tuple[str, str], Route] = {}
        self.ws_routes: dict[str, Callable[["ExchangeSimulator", Request, str], WsHandler]] = {}
        self._install_routes()

    # ------------------------------------------------------------------
    # routes
    # ------------------------------------------------------------------
    def _install_routes(self) -> None:
        if self.market == "spot":
            p = "/api/v3"
            ws = {"/ws": ("public", "market"), "/stream": ("public", "market")}
        else:
            p = "/fapi/v1"
            ws = {"/ws": ("public",), "/stream": ("public",),
                  "/public/ws": ("public",), "/public/stream": ("public",),
                  "/market/ws": ("market",), "/market/stream": ("market",),
                  "/private/ws": ("private",), "/private/stream": ("private",)}
        self.http_routes[("GET", f"{p}/depth")] = Route(self._rest_depth, self._depth_weight)
        self.http_routes[("GET", f"{p}/exchangeInfo")] = Route(self._rest_exchange_info,
                                                              EXCHANGE_INFO_WEIGHT[self.market])
        self.http_routes[("GET", f"{p}/time")] = Route(lambda req: Response.json({"serverTime": _now_ms()}), 1)
        self.http_routes[("GET", f"{p}/ping")] = Route(lambda req: Response.json({}), 1)
        for ep in PUBLIC_ENDPOINTS:
            if self.market in ep.markets and ep.rest is not None:
                self.http_routes[("GET", p + ep.rest)] = Route(self._public_handler(ep.name),
                                                                self._public_weight(ep))
        for path, routes in ws.items():
            self.ws_routes[path] = self._stream_factory(path.endswith("/stream"), routes)
        if self.market == "spot":
            self._install_trading()
            for method in ("POST", "PUT", "DELETE"):
                self.http_routes[(method, "/api/v3/userDataStream")] = Route(self._rest_gone, 1)
        else:
            v2 = self.http_routes[("GET", "/fapi/v1/ticker/price")]
            self.http_routes[("GET", "/fapi/v2/ticker/price")] = Route(v2.handler, v2.weight)   # same answer
            self.http_routes[("POST", "/fapi/v1/listenKey")] = Route(self._listen_key, 1)
            self.http_routes[("PUT", "/fapi/v1/listenKey")] = Route(self._listen_key, 1)
            self.http_routes[("DELETE", "/fapi/v1/listenKey")] = Route(self._listen_key, 1)
            self._install_futures_trading()

    def _public_handler(self, name: str) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            if name == "historicalTrades" and self.market == "usdm":    # MARKET_DATA: an API key, no signature
                key = req.headers.get("x-mbx-apikey", "")
                if not key:
                    return Response.error(401, -2014, "API-key format invalid.")
                if key not in self._usdm_keys:
                    return Response.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            try:
                return Response.json(self.public.call(name, req.query))
            except ApiError as e:
                return Response.json(e.body(), e.status, e.headers)
        return handler

    def _public_weight(self, ep: PublicEndpoint) -> Callable[[Request], int]:
        return lambda req: ep.weight(self.market, req.query)

    @staticmethod
    def _rest_gone(req: Request) -> Response:
        """Spot listenKey endpoints: Binance removed them on 2026-02-20 and answers 410 Gone (an HTML page)."""
        body = (b"<html>\r\n<head><title>410 Gone</title></head>\r\n<body>\r\n"
                b"<center><h1>410 Gone</h1></center>\r\n</body>\r\n</html>\r\n")
        return Response(410, body, {"Content-Type": "text/html"})

    def _listen_key(self, req: Request) -> Response:
        """USD-M ``/fapi/v1/listenKey`` (USER_STREAM: API key only). POST returns the
        account's key (the same one while it is valid), PUT extends it, DELETE closes it.
        The key's stream (``/private/ws?listenKey=`` or ``/ws/<listenKey>``) carries the
        account's ``ORDER_TRADE_UPDATE`` / ``ACCOUNT_UPDATE`` / ``MARGIN_CALL`` events; a key
        not extended within ``listen_key_validity_s`` expires (``listenKeyExpired``, the
        stream closes)."""
        api_key = req.headers.get("x-mbx-apikey", "")
        if not api_key:
            return Response.error(400, -2014, "API-key format invalid.")
        if api_key not in self._usdm_keys:
            return Response.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        current = next((k for k, v in self._listen_keys.items() if v == api_key), None)
        if req.method == "POST":
            if current is None:
                import secrets
                current = secrets.token_urlsafe(48).replace("-", "a").replace("_", "b")[:64]
                self._listen_keys[current] = api_key
            self._listen_deadline[current] = time.monotonic() + self.listen_key_validity_s
            return Response.json({"listenKey": current})
        if current is None:
            return Response.error(400, -1125, "This listenKey does not exist.")
        if req.method == "DELETE":
            self._end_listen_key(current, expired=False)
            return Response.json({})
        self._listen_deadline[current] = time.monotonic() + self.listen_key_validity_s
        return Response.json({"listenKey": current})

    def _end_listen_key(self, key: str, expired: bool) -> None:
        """Close a listenKey's streams (``listenKeyExpired`` first when it expired)."""
        self._listen_keys.pop(key, None)
        self._listen_deadline.pop(key, None)
        for h in list(self._user_handlers):
            if getattr(h, "listen_key", None) == key:
                if expired:
                    h.send_event({"e": "listenKeyExpired", "E": _now_ms(), "listenKey": key})
                    self._count("control", "listen_key_expired")
                h.conn.close_soon(CLOSE_NORMAL, "listenKey expired" if expired else "listenKey closed")
                self._user_handlers.discard(h)

    def add_api_key(self, api_key: str) -> None:
        """USD-M: register an API key for ``/fapi/v1/listenKey`` and ``historicalTrades``
        (MARKET_DATA) only; a trading account comes from :meth:`add_account`."""
        if self.market != "usdm":
            raise RuntimeError("add_api_key is for market='usdm'; spot accounts come from add_account")
        self._usdm_keys.add(api_key)

    def _install_trading(self) -> None:
        from hftmm.execution.filters import SymbolFilters
        from hftmm.simulator import wsapi
        from hftmm.simulator.orders import OrderEngine
        from hftmm.simulator.trading import ENDPOINTS, OrderFaults, TradingApi

        info = self._exchange_info_body(0)["symbols"][0]
        engine = OrderEngine(self.symbol, info["baseAsset"], info["quoteAsset"], self.tick_size, self.lot_size,
                             SymbolFilters.from_filters(self.symbol, info["filters"]), lambda: self.source.book,
                             lambda t: self.source.px(t), lambda q: self.source.qty(q),
                             info["defaultSelfTradePreventionMode"], info["allowedSelfTradePreventionModes"])
        self.trading = TradingApi(engine, self.limits, self._ip, _now_ms)
        self.trading.faults = OrderFaults(*self._order_fault_args)
        for ep in ENDPOINTS.values():
            if ep.rest is not None:
                handler, weight = self.trading.rest_route(ep, self.flush_user_events)
                self.http_routes[ep.rest] = Route(handler, weight)
        self.ws_routes[wsapi.PATH] = wsapi.factory

    def _install_futures_trading(self) -> None:
        from hftmm.execution.filters import SymbolFilters
        from hftmm.execution.margin import LeverageBrackets
        from hftmm.simulator.futures import DEFAULT_BRACKETS, USDM_ENDPOINTS, FuturesApi, FuturesEngine
        from hftmm.simulator.trading import OrderFaults

        info = self._exchange_info_body(0)["symbols"][0]
        brackets = LeverageBrackets.from_api(self._leverage_brackets or {**DEFAULT_BRACKETS, "symbol": self.symbol})
        engine = FuturesEngine(self.symbol, info["baseAsset"], info["quoteAsset"], self.tick_size, self.lot_size,
                               SymbolFilters.from_filters(self.symbol, info["filters"]), lambda: self.source.book,
                               lambda t: self.source.px(t), lambda q: self.source.qty(q),
                               self._mark_price, brackets, info.get("liquidationFee", "0.0125"),
                               self._margin_call_ratio)
        self.trading = FuturesApi(engine, self.limits, self._ip, _now_ms)
        self.trading.faults = OrderFaults(*self._order_fault_args)
        for ep in USDM_ENDPOINTS.values():
            handler, weight = self.trading.rest_route(ep, self.flush_user_events)
            self.http_routes[ep.rest] = Route(handler, weight)

    def _mark_price(self):
        """The mark price [quote] (the book's mid; the last trade without a two-sided book)."""
        bk = self.source.book
        if bk.best_bid() is None and bk.best_ask() is None and not self.tape.last_trade:
            return None
        return self.public.mark_price()

    def _stream_factory(self, combined: bool, routes: tuple[str, ...]):
        def factory(sim: "ExchangeSimulator", req: Request, rest: str) -> WsHandler:
            if "private" in routes:
                key = req.query.get("listenKey") or rest
                if key not in sim._listen_keys:
                    raise _HttpError(Response.error(400, -1125, "This listenKey does not exist."))
                return UserStreamHandler(sim, combined, routes, key)
            if combined:
                raw = req.query.get("streams", "")
                names = [s for s in raw.split("/") if s]
            else:
                names = [s for s in rest.split("/") if s] if rest else []
            if len(names) > sim.max_streams:
                raise _HttpError(Response.error(400, 2, f"Invalid request: too many streams "
                                                        f"(max {sim.max_streams})"))
            return MarketStreamHandler(sim, combined, routes, names)
        return factory

    # ------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------
    def start(self, paused: bool = False) -> "ExchangeSimulator":
        """Start the loop thread; returns once listening. ``paused``: the market
        clock starts stopped (call ``resume()``), e.g. to connect clients first."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._paused = paused
        self._thread = threading.Thread(target=self._thread_main, name="hftmm-simulator", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("simulator did not start")
        if self._start_error is not None:
            self._thread.join(5)
            raise RuntimeError(f"simulator failed to start: {self._start_error}") from self._start_error
        return self

    def __enter__(self) -> "ExchangeSimulator":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def rest_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    @property
    def ws_urls(self) -> list[str]:
        """Stream base URLs of every listening port (the main one first)."""
        return [f"{'wss' if self.tls else 'ws'}://{self.host}:{p}" for p in self.ports]

    def depth_published(self) -> tuple[int, Optional[tuple[int, int, int]]]:
        """(depth messages published on the primary depth stream, (U, u, pu) of the first)."""
        return self._depth_count, self._depth_first

    def skipped_depth(self) -> list[tuple[int, int, int, int]]:
        """Depth messages withheld by skip faults, in order: (connection index, U, u, pu)."""
        return list(self._skipped)

    def connection_endpoints(self) -> dict[int, int]:
        """Open WebSocket connections: index -> endpoint (listening port number in ``ports``)."""
        return {i: c.endpoint for i, c in list(self._conns.items())}

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # pragma: no cover
            if not self._started.is_set():
                self._start_error = e
                self._started.set()
            else:
                log.exception("simulator loop crashed")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self) -> None:
        try:
            self.source.open(self.market, self.depth_interval_ms)
            self._last_update_id = self.source.last_update_id
            self._stop_event = asyncio.Event()
            ssl_ctx = None
            if self.tls:
                from hftmm.simulator.tls import make_self_signed, server_context
                self.cert_path, self.key_path = make_self_signed(self.tls if isinstance(self.tls, str) else None)
                ssl_ctx = server_context(self.cert_path, self.key_path)
            server = await asyncio.start_server(self._on_client, self.host, self.port, limit=1 << 16,
                                                reuse_address=True, ssl=ssl_ctx)
            self.port = server.sockets[0].getsockname()[1]
            self._server = server
            self.ports = [self.port]
            self._extra_servers = []
            for _ in range(self.extra_ports):
                extra = await asyncio.start_server(self._on_client, self.host, 0, limit=1 << 16,
                                                   reuse_address=True, ssl=ssl_ctx)
                self._extra_servers.append(extra)
                self.ports.append(extra.sockets[0].getsockname()[1])
        except BaseException as e:
            self._start_error = e
            self._started.set()
            return
        self._t0 = time.monotonic()
        engine = asyncio.ensure_future(self._engine())
        scheduler = asyncio.ensure_future(self._scheduler())
        clock = asyncio.ensure_future(self._futures_clock())
        self._started.set()
        await self._stop_event.wait()
        self._stopping = True
        server.close()
        for extra in self._extra_servers:
            extra.close()
        for t in (engine, scheduler, clock):
            t.cancel()
        for conn in list(self._conns.values()):
            try:
                conn.closing = True
                conn.writer.write(encode_close(CLOSE_GOING_AWAY, "simulator stopping"))
            except Exception:
                pass
            conn.abort("stop")
        for w in list(self._http_writers):
            w.close()
        await asyncio.sleep(0.05)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except (asyncio.TimeoutError, Exception):
            pass

    def stop(self) -> None:
        """Close everything and join the thread (idempotent)."""
        if self._stopped or self._thread is None:
            self._stopped = True
            return
        self._stopped = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: getattr(self, "_stop_event", None) and self._stop_event.set())
            except RuntimeError:
                pass
        self._thread.join(10)

    # ------------------------------------------------------------------
    # market clock
    # ------------------------------------------------------------------
    def pause(self) -> None:
        """Stop the market clock; returns once nothing more is being published
        (frames already queued still go out: see wait_idle)."""
        self._paused = True
        with self._lock:
            pass

    def resume(self) -> None:
        self._paused = False

    def calm(self) -> None:
        """Stop injecting faults from now on: random and scripted, on every open
        connection, on new connections and on REST (a test's clean final window)."""
        self.faults = None
        self._rest_faults = None
        for conn in list(self._conns.values()):
            conn.faults = None

    @property
    def paused(self) -> bool:
        return self._paused

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every connection's send queue and socket buffer is empty
        (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.idle() for c in list(self._conns.values())):
                time.sleep(0.01)  # one more look: the writer may be between steps
                if all(c.idle() for c in list(self._conns.values())):
                    return True
            time.sleep(0.005)
        return False

    @property
    def last_update_id(self) -> int:
        """Update id of the last change published on the primary depth stream."""
        return self._last_update_id

    def ground_truth(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(last_update_id, bid_ticks, bid_lots, ask_ticks, ask_lots): a consistent
        copy of the exchange's full book as published (best first)."""
        with self._lock:
            book = self.source.book
            bt, bq = book.levels(0)
            at, aq = book.levels(1)
            return (self._last_update_id, np.array(bt, dtype=np.int64), np.array(bq, dtype=np.int64),
                    np.array(at, dtype=np.int64), np.array(aq, dtype=np.int64))

    async def _engine(self) -> None:
        src = self.source
        speed = src.speed
        loop = asyncio.get_running_loop()
        origin_wall: Optional[float] = None
        origin_ts = 0
        n = 0
        try:
            while not self._stopping:
                while self._paused and not self._stopping:
                    await asyncio.sleep(0.002)
                batch = src.next_batch()
                if batch is None:
                    self.exhausted = True
                    log.info("source exhausted")
                    return
                if not batch:
                    await asyncio.sleep(0)
                    continue
                for msg in batch:
                    while True:
                        if self._paused:
                            t_pause = loop.time()
                            while self._paused and not self._stopping:
                                await asyncio.sleep(0.002)
                            if origin_wall is not None:
                                origin_wall += loop.time() - t_pause
                            continue
                        if self._stopping:
                            return
                        if speed > 0:
                            if origin_wall is None:
                                origin_wall, origin_ts = loop.time(), msg.ts
                            delay = origin_wall + (msg.ts - origin_ts) / 1e9 / speed - loop.time()
                            if delay > 0.0005:
                                await asyncio.sleep(min(delay, 0.05))
                                continue
                        with self._lock:
                            if self._paused:
                                continue
                            self._publish(msg)
                        break
                    n += 1
                    if speed == 0 and n % 32 == 0:
                        for conn in list(self._conns.values()):
                            if len(conn.queue) > QUEUE_HIGH:
                                await conn.wait_low()
                        await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover
            log.exception("engine crashed")
            raise

    def _publish(self, msg: Msg) -> None:
        """Advance the ground truth and fan the message out (caller holds the lock)."""
        src = self.source
        if msg.truth:
            src.apply(msg)
            self._last_update_id = src.last_update_id
            if self.trading is not None and self.trading.engine.has_resting():
                self.trading.engine.on_book(_now_ms())
                self.flush_user_events()
            if msg.ts - self._last_hist_ts >= SNAPSHOT_HISTORY_EVERY_NS:
                self._last_hist_ts = msg.ts
                top = src.book.top(SPOT_DEPTH_MAX)
                self._history.append((msg.ts, self._last_update_id, tuple(np.array(a) for a in top)))
            self._depth_ids.append((msg.U, msg.u))
            if self._depth_first is None:
                self._depth_first = (msg.U, msg.u, msg.pu)
            self._depth_count += 1
        elif msg.channel == "trade":
            if self.trading is not None and self.trading.engine.has_resting():
                t = self.tape.parse_trade(msg.payload)     # our resting orders see the print now
                self.tape.sync()
                if t is not None:
                    self.tape.add_trade(*t)
                    self.trading.engine.on_trade(t[1], t[2], t[4], _now_ms())
                    self.flush_user_events()
            else:
                self.tape.add_trade_payload(msg.payload)
        elif msg.channel == "aggTrade":
            self.tape.add_trade_payload(msg.payload, agg=True)
        if msg.ts > self._market_ns:
            self._market_ns = msg.ts
        if self._timed and msg.ts >= self._timed_due:
            self._emit_timed(msg.ts)
        pub = self._stats["published"]
        key = msg.channel if msg.channel != "depth" else f"depth@{msg.interval}ms"
        pub[key] = pub.get(key, 0) + 1
        entry = self._subs.get((msg.channel, msg.interval))
        if entry:
            self._fan_out(msg, entry)

    def _fan_out(self, msg: Msg, entry: dict) -> None:
        payload = msg.payload
        for name, handlers in entry.items():
            if not handlers:
                continue
            raw = comb = None
            for h in list(handlers):
                if h.combined:
                    if comb is None:
                        comb = encode_frame(OP_TEXT, b'{"stream":"' + name.encode() + b'","data":' + payload + b"}")
                    h.deliver(msg, comb, name)
                else:
                    if raw is None:
                        raw = encode_frame(OP_TEXT, payload)
                    h.deliver(msg, raw, name)

    def market_time_ms(self) -> int:
        """The market clock (ms): time of the last published message (wall clock before the first)."""
        return self._market_ns // 1_000_000 if self._market_ns else _now_ms()

    def _first_depth_after(self, u: Optional[int]) -> Optional[int]:
        """U of the first recent primary depth message with final id > ``u`` (None: of the last one)."""
        ids = self._depth_ids
        if not ids:
            return None
        if u is None:
            return ids[-1][0]
        first = None
        for U, uu in reversed(ids):
            if uu <= u:
                break
            first = U
        return first

    def _emit_timed(self, ts: int) -> None:
        """Send the timed streams (partial depth, klines, tickers, mark price) that are due at market time ``ts``."""
        now_ms = ts // 1_000_000
        due = None
        for (ch, key), state in list(self._timed.items()):
            entry = self._subs.get((ch, key))
            if not entry or not any(entry.values()):
                del self._timed[(ch, key)]
                continue
            if ts >= state[0]:
                period = state[1]
                state[0] = (ts // period + 1) * period
                for payload in self._timed_render.render(ch, key, now_ms, self._first_depth_after,
                                                         self._last_update_id):
                    self._fan_out(Msg(ts, ch, payload), entry)
            due = state[0] if due is None else min(due, state[0])
        self._timed_due = due if due is not None else 0

    def _add_subscriber(self, h: MarketStreamHandler, spec: StreamSpec) -> None:
        ch, key = spec.channel, spec.key
        if ch == "depth" and key is not None:
            self.source.ensure_interval(key)
        self._subs.setdefault((ch, key), {}).setdefault(spec.canonical, set()).add(h)
        if ch in TIMED_CHANNELS and (ch, key) not in self._timed:
            period = spec.period_ms * 1_000_000
            self._timed[(ch, key)] = [0, period]     # due at the next published message
            self._timed_due = 0

    def _remove_subscriber(self, h: MarketStreamHandler, spec: StreamSpec) -> None:
        s = self._subs.get((spec.channel, spec.key), {}).get(spec.canonical)
        if s is not None:
            s.discard(h)

    # ------------------------------------------------------------------
    # faults, stats
    # ------------------------------------------------------------------
    def _count(self, group: str, key: str, n: int = 1) -> None:
        d = self._stats[group]
        d[key] = d.get(key, 0) + n

    def _fault(self, kind: str, conn_index: Optional[int], msg_no: Optional[int] = None) -> None:
        self._count("faults", kind)
        self._fault_log.append((conn_index, msg_no, kind))

    def fault_log(self) -> list[tuple]:
        """Faults injected so far, in order: (connection index or None for REST,
        message number on that connection (REST: request number; None when
        timed), kind)."""
        return list(self._fault_log)

    async def _scheduler(self) -> None:
        """Scripted faults with at_time_s."""
        if self.faults is None:
            return
        timed = sorted((f for f in self.faults.script if f.at_time_s is not None), key=lambda f: f.at_time_s)
        for f in timed:
            delay = self._t0 + f.at_time_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if f.kind in _faults.REST_KINDS:
                self._rest_faults.add(f)
                continue
            for conn in list(self._conns.values()):
                if f.connection is not None and conn.index != f.connection:
                    continue
                eps = self.faults.endpoints
                if f.connection is None and eps is not None and conn.endpoint not in eps:
                    continue
                if conn.closing or not isinstance(conn.handler, MarketStreamHandler):
                    continue
                if f.kind in CONNECTION_KINDS:
                    self._fault(f.kind, conn.index)
                    conn.apply_connection_fault(f.kind, dict(f.params))
                elif conn.faults is not None:
                    conn.faults.add(f)

    async def _futures_clock(self) -> None:
        """USD-M: funding at every multiple of ``funding_interval_s`` (epoch-aligned: 00:00,
        08:00, 16:00 UTC by default) and listenKey expiry."""
        if self.market != "usdm":
            return
        period_ms = int(self.funding_interval_s * 1000)
        next_ms = (_now_ms() // period_ms + 1) * period_ms
        while not self._stopping:
            now = _now_ms()
            if now >= next_ms:
                with self._lock:
                    self.settle_funding(now_ms=next_ms)
                next_ms += period_ms
            mono = time.monotonic()
            for key, deadline in list(self._listen_deadline.items()):
                if mono >= deadline:
                    self._end_listen_key(key, expired=True)
            await asyncio.sleep(max(0.001, min(0.05, (next_ms - _now_ms()) / 1000)))

    def settle_funding(self, rate: Any = None, now_ms: Optional[int] = None) -> dict:
        """USD-M: pay funding now (the clock does it at each funding time): ``rate`` a
        fraction (default: the configured ``funding_rate``, as premiumIndex and markPrice show it).
        Returns api key -> amount paid [quote] (Decimal; < 0 received)."""
        from decimal import Decimal

        tr = self._need_trading()
        now = _now_ms() if now_ms is None else now_ms
        if rate is None:
            rate = self.public.current_funding_rate(now)
        paid = tr.engine.settle_funding(Decimal(str(rate)), now)
        self.funding_log.append((now, str(rate), paid))
        self._count("control", "funding")
        self._call_in_loop(self.flush_user_events)
        return paid

    def set_mark_price(self, price: Any) -> None:
        """USD-M: fix the mark price (a decimal string; None: the book's mid again) and
        check every account's margin at it at once (a forced liquidation scenario)."""
        from decimal import Decimal

        self.public.mark_override = None if price is None else Decimal(str(price))
        tr = self._need_trading()

        def act() -> None:
            tr.engine.check_margin(_now_ms())
            self.flush_user_events()
        self._call_in_loop(act)

    def account(self, api_key: str) -> dict:
        """USD-M: the ``GET /fapi/v3/account`` body of an account (tests)."""
        eng = self._need_trading().engine
        with eng.lock:
            return eng.account_info(eng.accounts[api_key], _now_ms(), version=3)

    def positions(self, api_key: str) -> list[dict]:
        """USD-M: the ``GET /fapi/v2/positionRisk`` rows of an account (tests)."""
        eng = self._need_trading().engine
        with eng.lock:
            return eng.position_risk(eng.accounts[api_key], {}, 2)

    def stats(self) -> dict:
        s = {k: dict(v) for k, v in self._stats.items()}
        eff = s.pop("faults_effect")
        return {
            "connections_accepted": self._n_conns,
            "connections_open": sum(1 for c in list(self._conns.values()) if not c.closed),
            "messages_sent": s["sent"],
            "messages_received": s["received"],
            "messages_published": s["published"],
            "faults": s["faults"],
            "update_ids_skipped": eff.get("update_ids_skipped", 0),
            "fault_effects": eff,
            "disconnects": s["disconnects"],
            "rest_requests": s["rest_requests"],
            "rest_status": s["rest_status"],
            "rest_weight_used_1m": self._ip.used_weight(),
            "control_messages": s["control"],
            "last_update_id": self._last_update_id,
            "source_exhausted": self.exhausted,
            "trading": self._trading_stats(),
        }

    def _conn_closed(self, conn: WsConnection) -> None:
        self._conns.pop(conn.index, None)

    # ------------------------------------------------------------------
    # networking
    # ------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._http_writers.add(writer)
        try:
            while not self._stopping:
                try:
                    req = await asyncio.wait_for(read_request(reader, peer), 120.0)
                except BadRequest as e:
                    writer.write(Response.error(400, -1100, f"Bad request: {e}").encode(False))
                    await writer.drain()
                    return
                except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                    return
                if req is None:
                    return
                if req.is_websocket() or self._ws_route(req.path) is not None:
                    self._http_writers.discard(writer)
                    await self._upgrade(req, reader, writer)
                    return
                try:
                    resp = await self._dispatch(req)
                except DropConnection:
                    return
                keep = req.keep_alive
                writer.write(resp.encode(keep, head_only=req.method == "HEAD"))
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._http_writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    def _ws_route(self, path: str) -> Optional[tuple[Callable, str]]:
        path = path.rstrip("/") or "/"
        for prefix, factory in self.ws_routes.items():
            if path == prefix:
                return factory, ""
            if path.startswith(prefix + "/"):
                return factory, path[len(prefix) + 1:]
        return None

    async def _upgrade(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def refuse(resp: Response) -> None:
            writer.write(resp.encode(False))
            self._count("disconnects", "handshake_refused")

        route = self._ws_route(req.path)
        try:
            if route is None:
                raise _HttpError(Response.error(404, -1000, f"Not found: {req.path}"))
            if req.method != "GET":
                raise _HttpError(Response.error(405, -1000, "WebSocket handshake must be a GET"))
            if not req.is_websocket():
                raise _HttpError(Response.error(400, -1000, "Expected a WebSocket upgrade"))
            if req.headers.get("sec-websocket-version", "") != "13":
                raise _HttpError(Response(426, b"", {"Sec-WebSocket-Version": "13"}))
            key = req.headers.get("sec-websocket-key", "")
            if not key:
                raise _HttpError(Response.error(400, -1000, "Missing Sec-WebSocket-Key"))
            factory, rest = route
            handler = factory(self, req, rest)
        except _HttpError as e:
            refuse(e.response)
            try:
                await writer.drain()
            finally:
                writer.close()
            return
        writer.write((
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode("ascii"))
        index = self._n_conns
        self._n_conns += 1
        sockname = writer.get_extra_info("sockname")
        port = sockname[1] if sockname else self.port
        endpoint = self.ports.index(port) if port in self.ports else 0
        conn = WsConnection(self, reader, writer, handler, index, req.path, endpoint)
        self._conns[index] = conn
        await conn.run()

    async def _dispatch(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        self._count("rest_requests", path)
        route = self.http_routes.get((req.method if req.method != "HEAD" else "GET", path))
        if route is None:
            if any(p == path for _, p in self.http_routes):
                resp = Response.error(405, -1000, f"Method {req.method} is not allowed on {path}")
            else:
                resp = Response.error(404, -1000, f"Path {path}, Method {req.method} is invalid")
            self._count("rest_status", str(resp.status))
            return resp
        try:
            weight = route.weight(req) if callable(route.weight) else int(route.weight)
        except _HttpError as e:
            weight = 1
            err: Optional[Response] = e.response
        else:
            err = None
        over = self._ip.charge(weight)
        used = self._ip.used_weight()
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if self.market == "spot":
            headers["X-MBX-USED-WEIGHT"] = str(used)
        resp: Response
        if err is not None:
            resp = err
        elif over is not None:
            self._count("disconnects", "rest_weight_limit")
            resp = Response.error(over.status, over.code, over.msg, over.headers)
        else:
            action = self._rest_faults.decide(path.endswith("/depth")) if self._rest_faults else None
            if action is not None and action.kind == "rest_error":
                self._fault("rest_error", None, self._rest_faults.count)
                resp = self._rest_error(action.params)
            else:
                stale = None
                if action is not None and action.kind == "stale_snapshot":
                    self._fault("stale_snapshot", None, self._rest_faults.count)
                    stale = action.params
                try:
                    if stale is not None:
                        resp = self._rest_depth(req, stale=stale)
                    else:
                        r = route.handler(req)
                        resp = await r if asyncio.iscoroutine(r) else r
                except _HttpError as e:
                    resp = e.response
                except DropConnection:
                    self._count("rest_status", "dropped")
                    raise
                except Exception as e:  # pragma: no cover
                    log.exception("REST handler %s", path)
                    resp = Response.error(500, -1001, f"Internal error: {e}")
        resp.headers.update(headers)
        self._count("rest_status", str(resp.status))
        return resp

    def _rest_error(self, params: dict) -> Response:
        status = params.get("status") or 429
        if status == 429:
            return Response.error(429, -1003, "Too many requests; please use the websocket for live updates "
                                              "to avoid polling the API.",
                                  {"Retry-After": str(int(params.get("retry_after", 1)))})
        if status == 503:
            return Response.error(503, -1008, "Server is currently overloaded with other requests. "
                                              "Please try again in a few minutes.")
        return Response.error(int(status), -1001, "Internal error; unable to process your request. "
                                                  "Please try again.")

    # -- REST handlers ---------------------------------------------------
    def _depth_limit(self, p: dict[str, str]) -> int:
        raw = p.get("limit")
        if raw is None or raw == "":
            return SPOT_DEPTH_DEFAULT if self.market == "spot" else USDM_DEPTH_DEFAULT
        if not re.fullmatch(r"[0-9]{1,20}", raw):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is "
                                       "'^[0-9]{1,20}$'.")
        n = int(raw)
        if self.market == "spot":
            if n < 1:
                raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
            return min(n, SPOT_DEPTH_MAX)
        if n not in USDM_DEPTH_LIMITS:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        return n

    def depth_weight(self, p: dict[str, str]) -> int:
        """REQUEST_WEIGHT of a depth request (REST or WS API ``depth``)."""
        try:
            return depth_weight(self.market, self._depth_limit(p))
        except ApiError:
            return 1

    def _depth_weight(self, req: Request) -> int:
        return self.depth_weight(req.query)

    def depth_body(self, p: dict[str, str], stale: Optional[dict] = None) -> bytes:
        """The depth snapshot JSON of the ground truth (``stale``: a stale_snapshot fault's params).
        ApiError on bad parameters."""
        self.public.check_symbol(p)
        limit = self._depth_limit(p)
        src = self.source
        if stale is not None and self._history:
            age_ns = int(float(stale.get("age_s", 3.0)) * 1e9)
            now_ts = self._history[-1][0] if self._last_hist_ts else 0
            pick = self._history[0]
            for ent in reversed(self._history):
                if now_ts - ent[0] >= age_ns:
                    pick = ent
                    break
            self._count("faults_effect", "stale_snapshot_age_ids", self._last_update_id - pick[1])
            _, lid, levels = pick
        else:
            lid = self._last_update_id
            levels = src.book.top(limit)
        # E / T on the stream's clock (the market's: a source replayed faster or slower
        # than real time moves it at its own pace), as the exchange stamps both
        return render_snapshot(self.market, lid, levels, src.px, src.qty, self.market_time_ms(), limit)

    def _rest_depth(self, req: Request, stale: Optional[dict] = None) -> Response:
        try:
            return Response.json(self.depth_body(req.query, stale))
        except ApiError as e:
            return Response.json(e.body(), e.status, e.headers)

    def _exchange_info_body(self, now_ms: int) -> dict:
        rl = self.limits.rate_limits() if self.market == "spot" else None
        return exchange_info(self.market, self.symbol, self.tick_size, self.lot_size, now_ms, rl)

    def exchange_info_result(self, p: dict[str, str]) -> dict:
        """exchangeInfo (REST and WS API): ``symbol`` or ``symbols`` must name ours (-1121)."""
        if p.get("symbol") is not None or p.get("symbols") is not None:
            self.public._one_or_many(p)
        return self._exchange_info_body(_now_ms())

    def _rest_exchange_info(self, req: Request) -> Response:
        try:
            return Response.json(self.exchange_info_result(req.query))
        except ApiError as e:
            return Response.json(e.body(), e.status, e.headers)

    # ------------------------------------------------------------------
    # order entry: accounts, user data, faults, test helpers
    # ------------------------------------------------------------------
    def _need_trading(self):
        if self.trading is None:  # pragma: no cover - both markets have order entry
            raise RuntimeError("no order entry")
        return self.trading

    def add_account(self, api_key: str, *, hmac_secret: Optional[str] = None,
                    ed25519_public_pem: Optional[bytes] = None, rsa_public_pem: Optional[bytes] = None,
                    balances: Optional[dict[str, object]] = None, maker_rate: object = None,
                    taker_rate: object = None) -> None:
        """Register an API key (exactly one of an HMAC secret or an Ed25519 / RSA
        public key PEM) with its account: ``balances`` asset -> free amount (spot
        default 1 BTC-like base and 100000 quote; USD-M: the margin asset's wallet,
        default 10000), commission rates as fractions (default Binance's regular
        tier: spot 0.1 % / 0.1 %, USD-M 0.02 % / 0.05 %)."""
        from hftmm.simulator.trading import make_key

        tr = self._need_trading()
        key = make_key(api_key, hmac_secret, ed25519_public_pem, rsa_public_pem)
        eng = tr.engine
        if self.market == "usdm":
            from hftmm.simulator.futures import USDM_MAKER, USDM_TAKER
            default_maker, default_taker = USDM_MAKER, USDM_TAKER
            if balances is None:
                balances = {eng.quote: "10000"}
            self._usdm_keys.add(api_key)
        else:
            default_maker = default_taker = "0.001"
            if balances is None:
                balances = {eng.base: "1", eng.quote: "100000"}
        with eng.lock:
            eng.add_account(api_key, balances, default_maker if maker_rate is None else maker_rate,
                            default_taker if taker_rate is None else taker_rate)
            tr.keys[api_key] = key

    def orders_of(self, api_key: str) -> list[dict]:
        """Every order of the account (``GET /api/v3/order`` bodies), by orderId."""
        eng = self._need_trading().engine
        with eng.lock:
            acct = eng.accounts[api_key]
            return [eng.query_result(o) for _, o in sorted(acct.orders.items())]

    def balances(self, api_key: str) -> dict[str, tuple[str, str]]:
        """asset -> (free, locked) as Binance strings."""
        eng = self._need_trading().engine
        with eng.lock:
            return {a: (f"{f:.8f}", f"{lk:.8f}") for a, (f, lk) in eng.accounts[api_key].balances.items()}

    def order_events(self, api_key: str) -> list[dict]:
        """Every user-data event the account produced so far (executionReport,
        outboundAccountPosition), in order, whether or not a stream was subscribed."""
        eng = self._need_trading().engine
        with eng.lock:
            return list(self._user_log.get(api_key, []))

    def inject_order_fault(self, kind: str, count: int = 1, **params: object) -> None:
        """Apply ``kind`` to the next ``count`` order requests (kinds and params:
        :mod:`hftmm.simulator.trading`)."""
        tr = self._need_trading()
        with tr.engine.lock:
            tr.faults.add(kind, count, **params)

    def inject_trade(self, price: str, qty: str, buyer_maker: bool) -> None:
        """Show the resting orders a market trade (as if printed on the trade
        stream, without publishing it): ``price``/``qty`` decimal strings."""
        from decimal import Decimal

        tr = self._need_trading()
        ticks = int(Decimal(price) / Decimal(self.tick_size))
        lots = int(Decimal(qty) / Decimal(self.lot_size))
        self._call_in_loop(lambda: (tr.engine.on_trade(ticks, lots, buyer_maker, _now_ms()),
                                    self.flush_user_events()))

    def close_user_streams(self, api_key: Optional[str] = None, abrupt: bool = True) -> int:
        """Fault: close the WS API connections with user-data subscriptions of
        ``api_key`` (all when None): TCP dropped (``abrupt``) or a close frame."""
        def act() -> int:
            n = 0
            for h in list(self._user_handlers):
                if api_key is None or api_key in h.subs.values():
                    n += 1
                    self._count("faults", "close_user_stream")
                    if abrupt:
                        h.conn.abort("fault: close_user_stream")
                    else:
                        h.conn.close_soon(CLOSE_GOING_AWAY, "fault: close_user_stream")
            return n
        return self._call_in_loop(act)

    def terminate_user_streams(self, api_key: Optional[str] = None) -> int:
        """Fault: send ``eventStreamTerminated`` on the user-data subscriptions of
        ``api_key`` (all when None) and end them. Returns the number ended."""
        def act() -> int:
            n = sum(h.terminate(api_key) for h in list(self._user_handlers))
            self._count("faults", "event_stream_terminated")
            return n
        return self._call_in_loop(act)

    def _call_in_loop(self, fn: Callable[[], object], timeout: float = 10.0):
        """Run ``fn`` in the loop thread and return its result (directly if the
        simulator is not running)."""
        loop = self._loop
        if loop is None or loop.is_closed() or threading.current_thread() is self._thread:
            return fn()
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # pragma: no cover
                fut.set_exception(e)
        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def flush_user_events(self) -> None:
        """Deliver the engine's pending user-data events (loop thread)."""
        tr = self.trading
        if tr is None:
            return
        events = tr.engine.take_events()
        if not events:
            return
        with tr.engine.lock:
            for key, ev in events:
                self._user_log.setdefault(key, []).append(ev)
        for key, ev in events:
            self._count("sent", "user_" + ev["e"])
            for h in list(self._user_handlers):
                if not h.conn.closing:
                    h.deliver_event(key, ev)

    def _trading_stats(self) -> dict:
        tr = self.trading
        if tr is None:
            return {}
        with tr.engine.lock:
            return {"engine": dict(tr.engine.stats), "requests": dict(tr.stats["requests"]),
                    "errors": dict(tr.stats["errors"]), "order_faults": dict(tr.stats["faults"]),
                    "accounts": len(tr.engine.accounts), "resting_orders": len(tr.engine._open),
                    "user_stream_handlers": len(self._user_handlers)}
