"""The connector's per-message CPU on top of websocket-client's own receive,
through a real WebSocket on 127.0.0.1: a server thread sends N combined-stream
20-levels-per-side depthUpdate frames (ids contiguous) as fast as it can; the
client thread receives them with websocket-client (UTF-8 validation off) and

* baseline: only receives (``recv_data``),
* path: receives and runs the connector's path: decode -> BookSync -> L2Book.

Figure: (path CPU - baseline CPU) / N, the client thread's CPU time
(``time.thread_time``), both measured in the same run. Target <= 3 us/message.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time

import numpy as np
import pytest
import websocket

from hftcore.binance import BinanceDecoder
from hftcore.sync import BookSync
from hftmm.simulator.websocket import encode_frame

N = 30_000
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def make_frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    frames = []
    u = 1_000_000
    for _ in range(n):
        U, u = u + 1, u + 40
        # most levels near the touch; sides never cross (bids below, asks above a fixed mid)
        mid = 6_183_763
        ob = np.sort(rng.choice(60, 20, replace=False))
        oa = np.sort(rng.choice(60, 20, replace=False))
        bids = ",".join(f'["{(mid - 1 - k) // 100}.{(mid - 1 - k) % 100:02d}000000","{rng.integers(1, 99999) / 1e5:.8f}"]'
                        for k in ob.tolist())
        asks = ",".join(f'["{(mid + 1 + k) // 100}.{(mid + 1 + k) % 100:02d}000000","{rng.integers(1, 99999) / 1e5:.8f}"]'
                        for k in oa.tolist())
        payload = (f'{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1723161255208,'
                   f'"s":"BTCUSDT","U":{U},"u":{u},"b":[{bids}],"a":[{asks}]}}}}').encode()
        frames.append(encode_frame(0x1, payload))
    return frames


def listener() -> tuple[socket.socket, int]:
    """A listening socket on 127.0.0.1 and its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv, srv.getsockname()[1]


def accept_websocket(srv: socket.socket) -> socket.socket:
    """Accept one client on ``srv`` and answer its WebSocket upgrade (RFC 6455)."""
    conn, _ = srv.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        req += conn.recv(4096)
    key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
    acc = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    return conn


def serve(frames: list[bytes]) -> tuple[int, threading.Thread]:
    srv, port = listener()

    def run():
        conn = accept_websocket(srv)
        conn.sendall(b"".join(frames))
        time.sleep(0.5)
        conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def client_cpu(frames: list[bytes], work: bool) -> float:
    port, t = serve(frames)
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/stream", skip_utf8_validation=True)
    dec = BinanceDecoder("0.01", "0.00000001")
    sync = BookSync(market="spot", tick_size="0.01")
    sync.on_snapshot_arrays(1_000_000, [6_183_700], [1], [6_183_800], [1])
    recv = ws.recv_data
    decode, on_depth = dec.decode, sync.on_depth
    c0 = time.thread_time()
    for _ in range(len(frames)):
        op, data = recv()
        if work:
            on_depth(decode(data))
    cpu = time.thread_time() - c0
    ws.close()
    t.join(5)
    if work:
        assert sync.ready and sync.applied == len(frames) and sync.gaps == 0
    return cpu


@pytest.fixture(scope="module")
def frames(request):
    return make_frames(N if not request.config.getoption("benchmark_disable") else 500)


@pytest.mark.benchmark(group="connector-path")
def test_connector_path_cpu_per_message(benchmark, frames):
    def measure():
        base = min(client_cpu(frames, False) for _ in range(3))
        path = min(client_cpu(frames, True) for _ in range(3))
        return base, path

    base, path = benchmark.pedantic(measure, rounds=1, iterations=1)
    per_msg_us = (path - base) / len(frames) * 1e6
    benchmark.extra_info.update(baseline_us=base / len(frames) * 1e6, path_us=path / len(frames) * 1e6,
                                added_us=per_msg_us)
    print(f"\nwebsocket-client recv: {base / len(frames) * 1e6:.2f} us/msg; with decode+sync+book: "
          f"{path / len(frames) * 1e6:.2f} us/msg; added: {per_msg_us:.2f} us/msg")
    if not benchmark.disabled:
        assert per_msg_us < 6.0   # target 3 us; room for a noisy machine


def _connector(feeds: int):
    """A BinanceConnector set up as start() would, without sockets (two book feeds
    when ``feeds`` is 2), its book synced at the frames' first id."""
    from hftcore.book import L2Book
    from hftmm.data_ingestion.connector import BinanceConnector, _Conn

    c = BinanceConnector("BTCUSDT", rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1", tick_size="0.01",
                         lot_size="0.00000001", feeds=feeds)
    c.decoder = BinanceDecoder("0.01", "0.00000001")
    c.book = L2Book("0.01", "0.00000001")
    c.sync = BookSync(c.book, market="spot")
    c.sync.on_snapshot_arrays(1_000_000, [6_183_700], [1], [6_183_800], [1])
    c._conns = [_Conn(f"book+trades#{i}", "ws://127.0.0.1:1", i) for i in range(feeds)]
    for k in c._conns:
        k.connected.set()
    return c


@pytest.mark.benchmark(group="connector-merge")
def test_redundant_feed_merge_cpu_per_message(benchmark, frames):
    """The connector's frame handling (``_on_frame``: decode, sync, book, hooks) with one
    feed against two feeds each delivering every frame (the second copy a duplicate the
    merge drops): what redundancy costs per message, both measured in the same run."""
    payloads = [f[2:] if f[1] < 126 else f[4:] for f in frames]       # (text frames, unmasked)

    def one(feeds: int) -> float:
        c = _connector(feeds)
        k = c._conns
        on = c._on_frame
        t0 = time.thread_time()
        if feeds == 1:
            for p in payloads:
                on(p, 1, True, k[0])
        else:
            for p in payloads:
                on(p, 1, True, k[0])
                on(p, 1, True, k[1])
        cpu = time.thread_time() - t0
        assert c.sync.applied == len(payloads) and c.stats.messages_lost == 0
        if feeds == 2:
            assert c.stats.feed_duplicates == len(payloads)
        return cpu

    def measure():
        return min(one(1) for _ in range(3)), min(one(2) for _ in range(3))

    single, merged = benchmark.pedantic(measure, rounds=1, iterations=1)
    n = len(payloads)
    benchmark.extra_info.update(single_us=single / n * 1e6, merged_us=merged / n * 1e6)
    print(f"\none feed: {single / n * 1e6:.2f} us/msg; two feeds merged (every frame twice): {merged / n * 1e6:.2f} "
          f"us/msg; redundancy adds {(merged - single) / n * 1e6:.2f} us/msg (load {os.getloadavg()[0]:.2f})")
    if not benchmark.disabled:
        assert merged - single < 6e-6 * n     # the merge and the duplicate's decode: a few us
