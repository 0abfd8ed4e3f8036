"""RFC 6455 as implemented by hftmm.simulator.websocket: framing units, and a
raw-socket client against the simulator (handshake, masking, fragmentation,
ping/pong, close handshake), plus websocket-client interop."""
import asyncio
import base64
import json
import os
import socket
import struct
import time

import pytest
import websocket

from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.simulator.websocket import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                                       MessageAssembler, ProtocolError, accept_key, apply_mask, encode_frame, parse_close, read_frame)
from hftmm.synthetic import SyntheticConfig


class RawClient:
    """A minimal hand-written WebSocket client on a plain socket."""

    def __init__(self, port: int, path: str, key: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.key = base64.b64encode(key or os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.status = int(self.head.split()[1])

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True, masked: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=os.urandom(4) if masked else None))

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("EOF")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout: float = 5.0):
        self.sock.settimeout(timeout)
        b0, b1 = self._read(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n)

    def recv_until(self, want_op: int, timeout: float = 5.0, pred=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            fin, op, data = self.recv_frame(timeout)
            if op == want_op and (pred is None or pred(data)):
                return data
        raise TimeoutError(want_op)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------

def _read(data: bytes, **kw):
    async def go():
        r = asyncio.StreamReader()
        r.feed_data(data)
        r.feed_eof()
        return await read_frame(r, **{"max_size": 1 << 20, **kw})
    return asyncio.run(go())


def test_accept_key_rfc_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_mask_roundtrip_and_rfc_example():
    # RFC 6455 5.7: a masked "Hello"
    frame = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert encode_frame(OP_TEXT, b"Hello", mask=bytes([0x37, 0xFA, 0x21, 0x3D])) == frame
    assert _read(frame) == (True, OP_TEXT, b"Hello")
    assert encode_frame(OP_TEXT, b"Hello") == bytes([0x81, 0x05]) + b"Hello"
    m = os.urandom(4)
    for n in (0, 1, 3, 4, 5, 1000):
        d = os.urandom(n)
        assert apply_mask(apply_mask(d, m), m) == d


@pytest.mark.parametrize("n,hdr", [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_payload_lengths(n, hdr):
    d = os.urandom(n)
    f = encode_frame(OP_BINARY, d)
    assert len(f) == hdr + n
    assert _read(f, require_mask=False) == (True, OP_BINARY, d)
    fm = encode_frame(OP_BINARY, d, mask=b"abcd")
    assert len(fm) == hdr + 4 + n and _read(fm) == (True, OP_BINARY, d)


def test_protocol_errors():
    with pytest.raises(ProtocolError):
        _read(encode_frame(OP_TEXT, b"x"))                       # client frame not masked
    with pytest.raises(ProtocolError):
        _read(encode_frame(OP_PING, b"x", fin=False, mask=b"abcd"))
    with pytest.raises(ProtocolError):
        _read(encode_frame(OP_PING, b"x" * 126, mask=b"abcd"))
    with pytest.raises(ProtocolError):
        _read(encode_frame(0x3, b"x", mask=b"abcd"))
    with pytest.raises(ProtocolError):
        _read(encode_frame(OP_TEXT, b"x", mask=b"abcd", rsv=4))
    with pytest.raises(ProtocolError) as e:
        _read(encode_frame(OP_TEXT, b"x" * 100, mask=b"abcd"), max_size=10)
    assert e.value.code == 1009
    assert parse_close(b"") == (1005, "")
    assert parse_close(struct.pack("!H", 1000) + b"bye") == (1000, "bye")
    for bad in (b"\x03", struct.pack("!H", 999), struct.pack("!H", 1005), struct.pack("!H", 1000) + b"\xff"):
        with pytest.raises(ProtocolError):
            parse_close(bad)


def test_assembler_fragments_with_interleaved_control():
    a = MessageAssembler(100)
    assert a.feed(False, OP_TEXT, b"ab") is None
    assert a.feed(True, OP_PING, b"p") == (OP_PING, b"p")
    assert a.feed(False, OP_CONT, b"cd") is None
    assert a.feed(True, OP_CONT, b"ef") == (OP_TEXT, b"abcdef")
    with pytest.raises(ProtocolError):
        a.feed(True, OP_CONT, b"x")
    a.feed(False, OP_BINARY, b"1")
    with pytest.raises(ProtocolError):
        a.feed(True, OP_TEXT, b"2")
    b = MessageAssembler(5)
    b.feed(False, OP_TEXT, b"abc")
    with pytest.raises(ProtocolError):
        b.feed(True, OP_CONT, b"def")


# ---------------------------------------------------------------------------
# against the server
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim():
    s = ExchangeSimulator(market="usdm", source=SyntheticSource(SyntheticConfig(seed=2), speed=1.0))
    with s:
        yield s


def test_handshake_and_raw_frames(sim):
    c = RawClient(sim.port, "/public/ws")
    try:
        assert c.status == 101
        assert f"Sec-WebSocket-Accept: {accept_key(c.key)}" in c.head
        # a SUBSCRIBE fragmented in three frames, a ping in the middle
        msg = json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7}).encode()
        c.send(OP_TEXT, msg[:10], fin=False)
        c.send(OP_PING, b"hello")
        c.send(OP_CONT, msg[10:20], fin=False)
        c.send(OP_CONT, msg[20:], fin=True)
        assert c.recv_until(OP_PONG) == b"hello"
        assert json.loads(c.recv_until(OP_TEXT, pred=lambda d: b'"id"' in d)) == {"result": None, "id": 7}
        assert json.loads(c.recv_until(OP_TEXT))["e"] == "bookTicker"
        time.sleep(1.0)
        # a 64-bit length message (not JSON): an error reply, connection kept
        c.send(OP_TEXT, b"x" * 70000)
        err = json.loads(c.recv_until(OP_TEXT, pred=lambda d: b'"error"' in d))
        assert err["error"]["code"] == 3
        # close handshake: the server echoes the code
        c.send(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
        data = c.recv_until(OP_CLOSE)
        assert struct.unpack("!H", data[:2])[0] == 1000
        with pytest.raises((ConnectionError, socket.timeout)):
            while True:
                c.recv_frame(timeout=2)
    finally:
        c.close()


def test_unmasked_client_frame_is_protocol_error(sim):
    c = RawClient(sim.port, "/public/ws")
    try:
        c.send(OP_TEXT, b'{"method":"LIST_SUBSCRIPTIONS","id":1}', masked=False)
        data = c.recv_until(OP_CLOSE)
        assert struct.unpack("!H", data[:2])[0] == 1002
    finally:
        c.close()


def test_invalid_utf8_closes_1007(sim):
    c = RawClient(sim.port, "/public/ws")
    try:
        c.send(OP_TEXT, b"\xff\xfe")
        assert struct.unpack("!H", c.recv_until(OP_CLOSE)[:2])[0] == 1007
    finally:
        c.close()


def test_bad_handshakes(sim):
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    s.sendall(b"GET /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert s.recv(1000).startswith(b"HTTP/1.1 426")
    s.close()
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    s.sendall(b"GET /public/ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(1000).startswith(b"HTTP/1.1 400")
    s.close()


def test_websocket_client_interop(sim):
    ws = websocket.create_connection(sim.ws_url + "/public/stream?streams=btcusdt@depth@100ms",
                                     skip_utf8_validation=True, timeout=5)
    try:
        obj = json.loads(ws.recv())
        assert obj["stream"] == "btcusdt@depth@100ms" and obj["data"]["e"] == "depthUpdate"
        ws.ping(b"abc")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_PONG:
                assert data == b"abc"
                break
        else:
            pytest.fail("no pong")
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        while True:
            m = json.loads(ws.recv())
            if "id" in m:
                assert m == {"result": ["btcusdt@depth@100ms"], "id": 1}
                break
        ws.close(status=1000)
    finally:
        ws.shutdown()
