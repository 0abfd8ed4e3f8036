"""Local fakes of Binance's REST API and WS API for gateway tests (127.0.0.1 only).

``FakeRest``: a threaded HTTP/1.1 server (keep-alive) that records every request
and answers from per-route handlers; a handler returns ``(status, body)`` or
``(status, body, headers)``, or one of the actions ``("sleep", seconds)`` (answer
nothing for that long, then close) and ``("drop",)`` (close without answering).

``FakeWsApi``: a minimal RFC 6455 server speaking the WS API user data subscription
(``userDataStream.subscribe.signature``): it checks the signature with a verifier
callback, answers with a ``subscriptionId``, then lets the test push events, drop
the connection or go silent.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

from hftmm.simulator.websocket import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, accept_key, apply_mask, encode_frame

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


class Recorded:
    """One request as the server saw it."""

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str]) -> None:
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.params = dict(parse_qsl(query, keep_blank_values=True))
        self.at = time.monotonic()

    def __repr__(self) -> str:
        return f"Recorded({self.method} {self.path})"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        fake: FakeRest = self.server.fake  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        rec = Recorded(self.command, path, query, {k: v for k, v in self.headers.items()})
        with fake.lock:
            fake.requests.append(rec)
            handler = fake.routes.get((self.command, path))
        out = handler(rec) if handler else (404, {"code": -1, "msg": f"no route {self.command} {path}"})
        if out[0] == "drop":
            self.close_connection = True
            return
        if out[0] == "sleep":
            time.sleep(out[1])
            self.close_connection = True
            return
        status, body = out[0], out[1]
        headers = dict(out[2]) if len(out) > 2 else {}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in {**fake.extra_headers, **headers}.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_DELETE = do_PUT = _serve


class FakeRest:
    """Binance-shaped REST on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.extra_headers: dict[str, str] = {}
        self.server_time_offset_ms = 0
        self.routes: dict[tuple[str, str], Callable[[Recorded], tuple]] = {
            ("GET", "/api/v3/time"): lambda r: (200, {"serverTime": int(time.time() * 1000) +
                                                      self.server_time_offset_ms}),
            ("GET", "/api/v3/exchangeInfo"): lambda r: (200, {"timezone": "UTC", "rateLimits": RATE_LIMITS,
                                                              "symbols": []}),
            ("GET", "/api/v3/openOrders"): lambda r: (200, []),
            ("GET", "/api/v3/account"): lambda r: (200, {"canTrade": True, "balances": [
                {"asset": "BTC", "free": "1.00000000", "locked": "0.00000000"}]}),
        }
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, handler: Callable[[Recorded], tuple]) -> None:
        with self.lock:
            self.routes[(method, path)] = handler

    def seen(self, method: Optional[str] = None, path: Optional[str] = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or r.path == path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- WS API

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = _recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if b1 & 0x80 else b""
    payload = _recv_exact(sock, n)
    return b0 & 0x0F, apply_mask(payload, mask) if mask else payload


class WsConn:
    """One accepted WS API connection (server side)."""

    def __init__(self, fake: "FakeWsApi", sock: socket.socket) -> None:
        self.fake, self.sock = fake, sock
        self.lock = threading.Lock()
        self.subscription_id: Optional[int] = None
        self.closed = threading.Event()
        self.silent = False   # stop answering pings and sending anything
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, obj: Any) -> None:
        data = json.dumps(obj).encode()
        with self.lock:
            try:
                self.sock.sendall(encode_frame(OP_TEXT, data))
            except OSError:
                self.closed.set()

    def drop(self) -> None:
        """Abort the TCP connection (no close frame)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.closed.set()

    def _handshake(self) -> None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            raw += chunk
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        self.fake.paths.append(head[0].split(" ")[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        key = headers["sec-websocket-key"]
        self.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode())

    def _run(self) -> None:
        try:
            self._handshake()
            while True:
                op, payload = _read_frame(self.sock)
                if op == OP_CLOSE:
                    with self.lock:
                        self.sock.sendall(encode_frame(OP_CLOSE, payload[:2]))
                    break
                if op == OP_PING:
                    if not self.silent:
                        with self.lock:
                            self.sock.sendall(encode_frame(OP_PONG, payload))
                    continue
                if op == OP_TEXT:
                    self.fake._on_request(self, json.loads(payload))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            try:
                self.sock.close()
            except OSError:
                pass


class FakeWsApi:
    """WS API user data subscription on 127.0.0.1 (see the module docstring).

    ``verify(params) -> bool`` checks a subscription's signature; ``reject`` makes the
    next subscriptions fail with that ``(status, code, msg)``."""

    def __init__(self, verify: Callable[[dict], bool]) -> None:
        self.verify = verify
        self.reject: Optional[tuple[int, int, str]] = None
        self.answer = True          # False: never answer the subscription
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.conns: list[WsConn] = []
        self.subscribed_at: list[float] = []
        self._next_sub = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.sock.getsockname()[1]}/ws-api/v3"

    def _accept(self) -> None:
        while not self._stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.append(WsConn(self, s))

    def _on_request(self, conn: WsConn, msg: dict) -> None:
        with self.lock:
            self.requests.append(msg)
        if msg.get("method") != "userDataStream.subscribe.signature" or not self.answer:
            return
        params = msg.get("params", {})
        if self.reject is not None:
            status, code, text = self.reject
            conn.send({"id": msg["id"], "status": status, "error": {"code": code, "msg": text}})
            return
        if not self.verify(params):
            conn.send({"id": msg["id"], "status": 400,
                       "error": {"code": -1022, "msg": "Signature for this request is not valid."}})
            return
        with self.lock:
            sub = self._next_sub
            self._next_sub += 1
            self.subscribed_at.append(time.monotonic())
        conn.subscription_id = sub
        conn.send({"id": msg["id"], "status": 200, "result": {"subscriptionId": sub},
                   "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                   "limit": 6000, "count": 12}]})

    @property
    def current(self) -> Optional[WsConn]:
        with self.lock:
            live = [c for c in self.conns if not c.closed.is_set() and c.subscription_id is not None]
        return live[-1] if live else None

    def push(self, event: dict) -> None:
        """Send a user data event on the newest subscribed connection."""
        conn = self.current
        assert conn is not None, "no subscribed connection"
        conn.send({"subscriptionId": conn.subscription_id, "event": event})

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.drop()
