"""Test client for the exchange simulator: websocket-client connections read by
background threads, decoded with hftcore.binance, synced with hftcore.sync."""
from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

import numpy as np
import websocket

from hftcore.binance import BinanceDecoder, BookTicker, DecodeError, DepthSnapshot, DepthUpdate, Trade
from hftcore.sync import STALE_SNAPSHOT, BookSync


def http_get(url: str, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Reader:
    """One websocket-client connection drained by a thread into a queue."""

    def __init__(self, url: str, out: "queue.Queue", tag: str = "", timeout: float = 10.0, **kw) -> None:
        self.ws = websocket.create_connection(url, skip_utf8_validation=True, timeout=timeout, **kw)
        self.out = out
        self.tag = tag
        self.closed: Optional[str] = None
        self.frames = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            while True:
                op, data = self.ws.recv_data()
                if op == websocket.ABNF.OPCODE_CLOSE:
                    self.closed = "close"
                    break
                self.frames += 1
                self.out.put((self.tag, time.monotonic(), data))
        except Exception as e:  # noqa: BLE001
            self.closed = f"{type(e).__name__}: {e}"
        self.out.put((self.tag, time.monotonic(), None))

    def send(self, obj) -> None:
        self.ws.send(json.dumps(obj))

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass


class BookClient:
    """Rebuilds the simulator's book from its streams and REST snapshots."""

    def __init__(self, sim, urls: list[str], market: str = "spot", limit: Optional[int] = None) -> None:
        self.sim = sim
        self.market = market
        self.limit = limit or (5000 if market == "spot" else 1000)
        self.dec = BinanceDecoder(sim.tick_size, sim.lot_size)
        self.sync = BookSync(market=market, tick_size=sim.tick_size)
        self.q: queue.Queue = queue.Queue()
        self.readers = [Reader(u, self.q, tag=str(i)) for i, u in enumerate(urls)]
        self.tops: dict[int, tuple] = {}
        self.waiting: dict[int, list] = {}
        self.ticker_checks = 0
        self.ticker_mismatches: list = []
        self.counts = {"depth": 0, "trade": 0, "bookTicker": 0, "malformed": 0, "other": 0, "control": 0}
        self.depth_ids: list[tuple[int, int, int]] = []
        self.outcomes: list[int] = []
        self.snapshot_outcomes: list[int] = []
        self.ended = 0
        self.arrivals: list[float] = []
        self.control: list[dict] = []
        self.raw_malformed: list[bytes] = []

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def _record_top(self, u: int) -> None:
        b = self.sync.book
        top = (b.best_bid(), b.best_bid_qty(), b.best_ask(), b.best_ask_qty())
        self.tops[u] = top
        for bt in self.waiting.pop(u, ()):
            self._check(bt, top)

    def _check(self, bt: BookTicker, top: tuple) -> None:
        self.ticker_checks += 1
        want = (bt.bid_px, bt.bid_qty, bt.ask_px, bt.ask_qty)
        if want != top:
            self.ticker_mismatches.append((bt.update_id, top, want))

    def handle(self, data: bytes) -> None:
        try:
            msg = self.dec.decode(data)
        except DecodeError:
            self.counts["malformed"] += 1
            self.raw_malformed.append(data)
            return
        if isinstance(msg, DepthUpdate):
            self.counts["depth"] += 1
            self.depth_ids.append((msg.first_id, msg.last_id, msg.prev_id))
            out = self.sync.on_depth(msg)
            self.outcomes.append(out)
            if self.sync.ready and self.sync.last_update_id == msg.last_id and out != STALE_SNAPSHOT:
                self._record_top(msg.last_id)
        elif isinstance(msg, BookTicker):
            self.counts["bookTicker"] += 1
            if msg.update_id in self.tops:
                self._check(msg, self.tops[msg.update_id])
            else:
                self.waiting.setdefault(msg.update_id, []).append(msg)
        elif isinstance(msg, Trade):
            self.counts["trade"] += 1
        else:
            try:
                obj = json.loads(data)
                if "result" in obj or "error" in obj:
                    self.counts["control"] += 1
                    self.control.append(obj)
                    return
            except ValueError:
                pass
            self.counts["other"] += 1

    def pump(self, timeout: float = 0.05, until=None, deadline_s: float = 10.0) -> bool:
        """Process frames until `until()` is true (True) or nothing arrives for
        `timeout` s when until is None / the deadline passes (False)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if until is not None and until():
                return True
            try:
                tag, t, data = self.q.get(timeout=timeout if until is None else 0.05)
            except queue.Empty:
                if until is None:
                    return True
                continue
            if data is None:
                self.ended += 1
                continue
            self.arrivals.append(t)
            self.handle(data)
        return until is None

    def fetch_snapshot(self) -> int:
        path = "/api/v3/depth" if self.market == "spot" else "/fapi/v1/depth"
        status, headers, body = http_get(f"{self.sim.rest_url}{path}?symbol={self.sim.symbol}&limit={self.limit}")
        assert status == 200, (status, body[:200])
        snap = self.dec.decode(body)
        assert isinstance(snap, DepthSnapshot)
        out = self.sync.on_snapshot(snap)
        self.snapshot_outcomes.append(out)
        if self.sync.ready:
            self._record_top(self.sync.last_update_id)
        return out

    def sync_up(self, deadline_s: float = 10.0) -> None:
        """Wait for a buffered depth event, then snapshot until synced."""
        end = time.monotonic() + deadline_s
        assert self.pump(until=lambda: self.sync.buffered_events > 0, deadline_s=deadline_s)
        while not self.sync.ready and time.monotonic() < end:
            self.fetch_snapshot()
            if not self.sync.ready:
                self.pump(until=lambda: self.sync.buffered_events > 0 and self.sync.needs_snapshot,
                          deadline_s=2)
        assert self.sync.ready

    def catch_up(self, deadline_s: float = 10.0) -> bool:
        """After sim.pause(): process until the book is at the simulator's last id."""
        target = self.sim.last_update_id
        return self.pump(until=lambda: self.sync.ready and self.sync.last_update_id == target,
                         deadline_s=deadline_s)

    def book_equals_truth(self) -> bool:
        lid, bt, bq, at, aq = self.sim.ground_truth()
        b = self.sync.book
        cbt, cbq = b.levels(0)
        cat, caq = b.levels(1)
        return (self.sync.last_update_id == lid and np.array_equal(cbt, bt) and np.array_equal(cbq, bq)
                and np.array_equal(cat, at) and np.array_equal(caq, aq))
