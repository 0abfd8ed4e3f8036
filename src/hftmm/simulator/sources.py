"""Market sources for the simulator: what happens on the exchange.

A source produces batches of :class:`Msg` in time order and owns the ground
truth: the exchange book *as published* (it advances only when the engine
publishes a depth message of the primary depth stream, via ``apply(msg)``).

- :class:`SyntheticSource`: the seeded synthetic market (``hftcore.synth``)
  rendered by :class:`hftmm.synthetic.BinanceRenderer`, one renderer per depth
  interval that has subscribers (created lazily from the primary's book).
- :class:`CaptureSource`: replays a recorded capture; the ground truth is the
  capture's depth stream run through ``BookSync`` from its REST snapshot, and
  nothing is published before that book is synced.
"""
from __future__ import annotations

import heapq
import logging
import time
from typing import Iterable, Iterator, Optional, Union


from hftcore.binance import BinanceDecoder, DecodeError, DepthSnapshot, DepthUpdate
from hftcore.book import L2Book
from hftcore.sync import BookSync

from hftmm.captures import RawMessage, read_collector
from hftmm.synthetic import BinanceRenderer, DecimalFormatter, SyntheticConfig

log = logging.getLogger(__name__)

CHANNELS = ("depth", "trade", "aggTrade", "bookTicker")
#: depth intervals (ms) each market serves; 0 = one message per exchange message
DEPTH_INTERVALS = {"spot": (100, 1000), "usdm": (0, 100, 250, 500)}
DEFAULT_DEPTH_INTERVAL = {"spot": 1000, "usdm": 250}


class Msg:
    """One market-data message: exchange (or capture) time ns, channel,
    depth interval (ms, depth only), raw JSON payload; depth messages also
    carry U, u, pu (spot: pu = U - 1) and ``truth`` (applies to the ground truth)."""

    __slots__ = ("ts", "channel", "interval", "payload", "U", "u", "pu", "truth", "data")

    def __init__(self, ts: int, channel: str, payload: bytes, interval: Optional[int] = None,
                 U: int = 0, u: int = 0, pu: int = 0, truth: bool = False, data: object = None) -> None:
        self.ts = ts
        self.channel = channel
        self.interval = interval
        self.payload = payload
        self.U = U
        self.u = u
        self.pu = pu
        self.truth = truth
        self.data = data

    def __repr__(self) -> str:
        return f"Msg({self.ts}, {self.channel}, {self.interval}, {self.payload[:60]!r})"


class Source:
    """Interface of a market source (see the module docstring)."""

    symbol: str
    tick_size: str
    lot_size: str
    speed: float
    book: L2Book               # ground truth (published state)
    last_update_id: int
    px: DecimalFormatter
    qty: DecimalFormatter

    def open(self, market: str, depth_interval_ms: int) -> None:
        raise NotImplementedError

    def has_interval(self, interval: int) -> bool:
        raise NotImplementedError

    def ensure_interval(self, interval: int) -> None:
        """Start producing the depth stream of this interval (if possible)."""

    def next_batch(self) -> Optional[list[Msg]]:
        """The next messages in time order ([] = nothing yet), None when exhausted."""
        raise NotImplementedError

    def apply(self, msg: Msg) -> None:
        """Publish-time hook: advance the ground truth with a ``truth`` depth message."""
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        return True


class _Renderer(BinanceRenderer):
    """BinanceRenderer that also records the levels of each depth message it emits."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.flushed: list[tuple] = []

    def _flush_depth(self, t_end: int):
        p = self._pending
        pu = self.last_emitted_u if self.last_emitted_u is not None else p.first_id - 1
        self.flushed.append((p.first_id, p.last_id, pu, p.bids, p.asks))
        return super()._flush_depth(t_end)


class SyntheticSource(Source):
    """The seeded synthetic market.

    ``speed``: 1.0 = real time, X = X times real time, 0 = as fast as the
    slowest client drains. ``start_ns``: exchange time of the start (default:
    now, so ``E`` is close to the wall clock at speed 1).
    """

    def __init__(self, config: Optional[SyntheticConfig] = None, speed: float = 1.0,
                 start_ns: Optional[int] = None, chunk_s: Optional[float] = None) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        config = SyntheticConfig() if config is None else config
        self.config = config
        self.speed = float(speed)
        self.start_ns = start_ns
        self.symbol = config.symbol.upper()
        self.tick_size = config.tick_size
        self.lot_size = config.lot_size
        self.chunk_s = chunk_s if chunk_s is not None else (2.0 if speed == 0 else max(0.1, 0.2 * speed))
        self._renderers: dict[int, _Renderer] = {}
        self.market = ""

    def open(self, market: str, depth_interval_ms: int) -> None:
        self.market = market
        self.primary = int(depth_interval_ms)
        start = self.start_ns if self.start_ns is not None else time.time_ns()
        self.start_ns = start
        self._mkt = self.config.market(start)
        r = self._new_renderer(self.primary)
        r.feed(self._mkt.initial_snapshot())
        r.flushed.clear()
        self._renderers = {self.primary: r}
        self.px, self.qty = r.px, r.qty
        self.book = L2Book(self.tick_size, self.lot_size)
        bt, bq = r.book.levels(0)
        at, aq = r.book.levels(1)
        self.book.load_snapshot(bt, bq, at, aq)
        self.last_update_id = r.last_update_id

    def _new_renderer(self, interval: int) -> _Renderer:
        return _Renderer(self.symbol, self.tick_size, self.lot_size, self.market, interval)

    def has_interval(self, interval: int) -> bool:
        return interval in DEPTH_INTERVALS[self.market]

    def ensure_interval(self, interval: int) -> None:
        if interval in self._renderers or not self.has_interval(interval):
            return
        p = self._renderers[self.primary]
        r = self._new_renderer(interval)
        bt, bq = p.book.levels(0)
        at, aq = p.book.levels(1)
        r.book.load_snapshot(bt, bq, at, aq)
        r.last_update_id = p.last_update_id
        r.last_emitted_u = p.last_update_id
        r._top = p._top
        self._renderers[interval] = r

    def next_batch(self) -> Optional[list[Msg]]:
        ev = self._mkt.generate(self.chunk_s)
        horizon = self._mkt.now_ns
        streams = []
        for iv, r in self._renderers.items():
            out = r.feed(ev)
            out += r.flush(horizon)
            infos = iter(r.flushed)
            msgs = []
            primary = iv == self.primary
            for ts, ch, payload in out:
                if ch == "depth":
                    U, u, pu, b, a = next(infos)
                    msgs.append(Msg(ts, "depth", payload, iv, U, u, pu, primary, (b, a) if primary else None))
                elif primary:
                    msgs.append(Msg(ts, ch, payload))
            r.flushed.clear()
            streams.append(msgs)
        if len(streams) == 1:
            return streams[0]
        return list(heapq.merge(*streams, key=lambda m: m.ts))

    def apply(self, msg: Msg) -> None:
        bids, asks = msg.data
        book = self.book
        for t, q in bids.items():
            book.apply(0, t, q)
        for t, q in asks.items():
            book.apply(1, t, q)
        self.last_update_id = msg.u


def _stream_of(key: str) -> tuple[str, Optional[int]]:
    """("depth", interval) / ("trade", None) ... of a capture routing key."""
    parts = key.split("@")
    kind = parts[1] if len(parts) > 1 else ""
    if kind == "depth":
        iv = None
        if len(parts) > 2 and parts[2].endswith("ms") and parts[2][:-2].isdigit():
            iv = int(parts[2][:-2])
        return "depth", iv
    for ch in ("trade", "aggTrade", "bookTicker"):
        if kind.lower() == ch.lower():
            return ch, None
    return "", None


def _inner_payload(payload: bytes) -> bytes:
    """The ``data`` object of a combined-stream frame, byte for byte."""
    if not payload.startswith(b'{"stream"'):
        return payload
    i = payload.find(b'"data":')
    j = payload.rfind(b"}")
    if i < 0 or j < 0:
        return payload
    return payload[i + 7:j].strip()


class CaptureSource(Source):
    """Replays a recorded capture (collector gzip paths, or RawMessage iterables).

    Every message is decoded (``BinanceDecoder(tick_size, lot_size)``); the
    depth stream and the capture's REST snapshots drive a ``BookSync`` whose
    book is the ground truth. Nothing is published until it is synced; from
    then on the capture's depth/trade/aggTrade/bookTicker payloads go out byte
    for byte under their stream names (REST snapshots in the capture are not
    replayed: our REST answers come from the ground truth). Pacing uses the
    capture's receive times scaled by ``speed``; payload timestamps are left
    as recorded.
    """

    def __init__(self, paths_or_messages: Union[str, Iterable[str], Iterable[RawMessage]], speed: float = 0.0,
                 symbol: str = "BTCUSDT", tick_size: str = "0.01", lot_size: str = "0.00000001",
                 batch: int = 2000) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = float(speed)
        self.symbol = symbol.upper()
        self.tick_size = tick_size
        self.lot_size = lot_size
        self._input = paths_or_messages
        self._batch = batch
        self.decode_errors = 0
        self.skipped_unsynced = 0
        self.exhausted = False

    def _iter(self) -> Iterator[RawMessage]:
        src = self._input
        if isinstance(src, str):
            src = [src]
        for item in src:
            if isinstance(item, str):
                yield from read_collector(item, symbol=self.symbol)
            else:
                yield item

    def open(self, market: str, depth_interval_ms: int) -> None:
        self.market = market
        self.primary_interval = depth_interval_ms
        spot = market == "spot"
        self.px = DecimalFormatter(self.tick_size, 8 if spot else 0)
        self.qty = DecimalFormatter(self.lot_size, 8 if spot else 0)
        self.dec = BinanceDecoder(self.tick_size, self.lot_size)
        self.sync = BookSync(market=market, tick_size=self.tick_size)
        self.book = self.sync.book
        self.last_update_id = 0
        self._it = self._iter()
        self._depth_key: Optional[str] = None
        self._intervals: set[int] = set()
        self._synced = False

    @property
    def ready(self) -> bool:
        return self._synced

    def has_interval(self, interval: int) -> bool:
        return interval in DEPTH_INTERVALS[self.market]

    def next_batch(self) -> Optional[list[Msg]]:
        if self.exhausted:
            return None
        out: list[Msg] = []
        sym = self.symbol.lower()
        n = 0
        for raw in self._it:
            n += 1
            key = raw.key
            if key.endswith("@rest"):
                channel, iv = "snapshot", None
            else:
                if key.split("@", 1)[0].lower() != sym:
                    continue
                channel, iv = _stream_of(key)
                if not channel:
                    continue
            payload = _inner_payload(raw.payload)
            try:
                msg = self.dec.decode(payload)
            except DecodeError:
                self.decode_errors += 1
                continue
            if channel == "depth":
                if iv is None:
                    iv = DEFAULT_DEPTH_INTERVAL[self.market]
                if self._depth_key is None:
                    self._depth_key = key
                if key != self._depth_key:
                    # a second depth stream: published as is after sync
                    if self._synced and isinstance(msg, DepthUpdate):
                        out.append(Msg(raw.local_ns, "depth", payload, iv, msg.first_id, msg.last_id,
                                       self._pu(msg)))
                    continue
                if not isinstance(msg, DepthUpdate):
                    continue
                if not self._synced:
                    self.sync.on_depth(msg)
                    self._check_synced()
                    self.skipped_unsynced += 1
                    continue
                self._intervals.add(iv)
                out.append(Msg(raw.local_ns, "depth", payload, iv, msg.first_id, msg.last_id, self._pu(msg),
                               True, msg))
            elif channel == "snapshot":
                if isinstance(msg, DepthSnapshot) and not self._synced:
                    self.sync.on_snapshot(msg)
                    self._check_synced()
                continue
            else:
                if not self._synced:
                    self.skipped_unsynced += 1
                    continue
                out.append(Msg(raw.local_ns, channel, payload))
            if n >= self._batch:
                break
        else:
            self.exhausted = True
        return out

    def _pu(self, msg: DepthUpdate) -> int:
        return msg.prev_id if self.market == "usdm" else msg.first_id - 1

    def _check_synced(self) -> None:
        if self.sync.ready:
            self._synced = True
            self.last_update_id = self.sync.last_update_id

    def apply(self, msg: Msg) -> None:
        self.sync.on_depth(msg.data)
        if self.sync.ready:
            self.last_update_id = self.sync.last_update_id
        else:
            log.warning("capture: ground truth lost sync at u=%d (%s)", msg.u, self.sync.last_reason)
            self._synced = False
