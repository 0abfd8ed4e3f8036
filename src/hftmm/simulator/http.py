"""Minimal HTTP/1.1 on asyncio streams: request parsing and responses."""
from __future__ import annotations

import asyncio
import email.utils
import json
from typing import Optional
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024

REASONS = {
    101: "Switching Protocols", 200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 418: "I'm a teapot", 426: "Upgrade Required",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(Exception):
    pass


class DropConnection(Exception):
    """Raised by a route handler: close the connection without answering."""


class Request:
    """A parsed request. ``query``/``form``: first value per name; ``params``:
    query then form-body parameters in order (for signature checks later)."""

    __slots__ = ("method", "target", "path", "query_string", "query", "params", "headers", "body", "version",
                 "peer")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str], body: bytes,
                 peer: object = None) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.peer = peer
        parts = urlsplit(target)
        self.path = unquote(parts.path) or "/"
        self.query_string = parts.query
        self.params: list[tuple[str, str]] = parse_qsl(parts.query, keep_blank_values=True)
        ctype = headers.get("content-type", "")
        if body and "application/x-www-form-urlencoded" in ctype:
            self.params += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        self.query: dict[str, str] = {}
        for k, v in self.params:
            self.query.setdefault(k, v)

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def is_websocket(self) -> bool:
        return ("websocket" in self.headers.get("upgrade", "").lower()
                and "upgrade" in self.headers.get("connection", "").lower())


class Response:
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int = 200, body: bytes = b"", headers: Optional[dict[str, str]] = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}

    @classmethod
    def json(cls, obj: object, status: int = 200, headers: Optional[dict[str, str]] = None) -> "Response":
        body = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
        h = {"Content-Type": "application/json;charset=UTF-8"}
        if headers:
            h.update(headers)
        return cls(status, body, h)

    @classmethod
    def error(cls, status: int, code: int, msg: str, headers: Optional[dict[str, str]] = None) -> "Response":
        """Binance's error shape ``{"code":-1121,"msg":"Invalid symbol."}``."""
        return cls.json({"code": code, "msg": msg}, status, headers)

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}"]
        h = {"Date": email.utils.formatdate(usegmt=True), "Server": "hftmm-simulator",
             **self.headers, "Content-Length": str(len(self.body)),
             "Connection": "keep-alive" if keep_alive else "close"}
        lines += [f"{k}: {v}" for k, v in h.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


async def read_request(reader: asyncio.StreamReader, peer: object = None) -> Optional[Request]:
    """The next request on a connection, None at a clean EOF; BadRequest if malformed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest("incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest("bad encoding") from None
    lines = text.split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = b""
    if "transfer-encoding" in headers and "chunked" in headers["transfer-encoding"].lower():
        raise BadRequest("chunked request bodies are not supported")
    if "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad Content-Length")
        body = await reader.readexactly(n) if n else b""
    return Request(method.upper(), target, version, headers, body, peer)
