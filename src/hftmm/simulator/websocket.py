"""RFC 6455 WebSocket framing on asyncio streams (server side, plus the client
masking helpers the tests use). No third-party library.

Server frames are never masked and never fragmented; client frames must be
masked (an unmasked client frame is a protocol error, close 1002). Fragmented
client messages are reassembled, with control frames allowed in between.
Payload lengths use the 7-bit, 16-bit (126) or 64-bit (127) encodings.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from typing import Optional

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
DATA_OPCODES = (OP_TEXT, OP_BINARY)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011


class ProtocolError(Exception):
    """A peer violated RFC 6455; ``code`` is the close status to answer with."""

    def __init__(self, msg: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(msg)
        self.code = code


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()).decode("ascii")


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the 4-byte `mask` (its own inverse)."""
    n = len(data)
    if n == 0:
        return b""
    reps = (n + 3) // 4
    m = int.from_bytes((mask * reps)[:n], "little")
    return (int.from_bytes(data, "little") ^ m).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: Optional[bytes] = None,
                 rsv: int = 0) -> bytes:
    """One frame. ``mask``: 4 bytes (client frames) or None (server frames)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0x0F)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is not None:
        if len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        return head + mask + apply_mask(payload, mask)
    return head + payload


def encode_close(code: Optional[int] = CLOSE_NORMAL, reason: str = "", mask: Optional[bytes] = None) -> bytes:
    """A close frame (no status when code is None)."""
    body = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return encode_frame(OP_CLOSE, body, mask=mask)


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A masked frame as a client sends it (random mask)."""
    return encode_frame(opcode, payload, fin=fin, mask=os.urandom(4))


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame's payload; (1005, "") when empty."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError("close payload of 1 byte")
    code = struct.unpack("!H", payload[:2])[0]
    if code < 1000 or code in (1004, 1005, 1006, 1015) or 1016 <= code < 3000 or code >= 5000:
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not UTF-8", CLOSE_INVALID_DATA) from None
    return code, reason


async def read_frame(reader: asyncio.StreamReader, max_size: int, require_mask: bool = True
                     ) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame. Raises
    asyncio.IncompleteReadError at EOF and ProtocolError on violations."""
    b0, b1 = await reader.readexactly(2)
    fin = bool(b0 & 0x80)
    if b0 & 0x70:
        raise ProtocolError("reserved bits set (no extension negotiated)")
    opcode = b0 & 0x0F
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    if opcode in CONTROL_OPCODES:
        if not fin:
            raise ProtocolError("fragmented control frame")
        if n > 125:
            raise ProtocolError("control frame payload > 125 bytes")
    elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
        if n >> 63:
            raise ProtocolError("64-bit length with the top bit set")
    if require_mask and not masked:
        raise ProtocolError("client frame not masked")
    if n > max_size:
        raise ProtocolError(f"frame of {n} bytes > {max_size}", CLOSE_TOO_BIG)
    mask = await reader.readexactly(4) if masked else None
    data = await reader.readexactly(n) if n else b""
    if mask is not None:
        data = apply_mask(data, mask)
    return fin, opcode, data


class MessageAssembler:
    """Reassembles fragmented data messages; control frames pass through.

    ``feed(fin, opcode, payload)`` returns ``(opcode, payload)`` for a complete
    message or control frame, or None while a fragmented message is incomplete.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._op: Optional[int] = None
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, fin: bool, opcode: int, payload: bytes) -> Optional[tuple[int, bytes]]:
        if opcode in CONTROL_OPCODES:
            return opcode, payload
        if opcode == OP_CONT:
            if self._op is None:
                raise ProtocolError("continuation frame without a message in progress")
        else:
            if self._op is not None:
                raise ProtocolError("new data frame inside a fragmented message")
            if fin:
                return opcode, payload
            self._op = opcode
            self._parts = []
            self._size = 0
        self._parts.append(payload)
        self._size += len(payload)
        if self._size > self.max_size:
            raise ProtocolError(f"message of more than {self.max_size} bytes", CLOSE_TOO_BIG)
        if not fin:
            return None
        op, data = self._op, b"".join(self._parts)
        self._op, self._parts, self._size = None, [], 0
        return op, data
