"""Binance market-data connector: WebSocket streams + REST snapshots -> a synced book.

Spot and USD-M futures. The protocol logic is the compiled, sans-I/O core
(:mod:`hftcore.binance` decoder, :mod:`hftcore.sync` BookSync,
:mod:`hftcore.book` L2Book); this module only moves bytes:

- one I/O thread per WebSocket connection (websocket-client, UTF-8 validation off;
  it answers the server's pings itself). Spot uses one combined-stream
  connection; USD-M routes depth/bookTicker (``/public``) and trades
  (``/market``) to two connections, as Binance does since 2026;
- redundant feeds: ``feeds`` (default 2) parallel copies of those connections,
  optionally to different endpoints (spot: the :9443 and :443 stream hosts, or
  the market-data-only host), merged by update id -- the first arrival wins,
  duplicates are dropped (trades by trade id, bookTickers by update id). A hole
  in one feed waits (at most ``merge_wait_s``) for another feed to fill it; the
  book resyncs only when every live feed has passed the hole without it;
- loss figures that mean what they say: messages lost / messages expected and
  update ids lost / ids expected, separately (:func:`hftcore.sync.loss_figures`),
  for the merged stream and for each feed;
- a snapshot thread fetches ``/api/v3/depth`` or ``/fapi/v1/depth`` when the sync
  asks for one, while the I/O thread keeps buffering, so nothing is lost; the
  REST weight of the request is checked against the budget from the server's
  ``X-MBX-USED-WEIGHT-1M`` header, 429/418 answers are backed off per ``Retry-After``;
- reconnects with exponential backoff and jitter, within Binance's 300
  connection attempts per 5 minutes; a watchdog reconnects a connection that
  delivers nothing for ``watchdog_s``; connections are renewed before Binance's
  24 h limit; ``serverShutdown`` triggers an immediate reconnect. The sync state
  survives a reconnect: if the new stream continues the old one, no snapshot is
  needed, otherwise the gap is detected, counted and resynced.

Prices inside are ticks of the decoder's price unit and quantities lots of its
quantity unit; :class:`BookSnapshot` converts to price units at the edge.
"""
from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import websocket

from hftcore.binance import BinanceDecoder, BookTicker, DecodeError, DepthSnapshot, DepthUpdate, Trade, UnknownEvent
from hftcore.book import L2Book
from hftcore.sync import RESYNC_OUTCOMES, STALE_SNAPSHOT, BookSync, StreamLoss, loss_figures

from hftmm.captures import decoder_units
from hftmm.errors import ConnectError
from hftmm.net import close_websocket, jittered_backoff

log = logging.getLogger(__name__)

#: Binance's production and testnet endpoints (every one can be overridden).
ENDPOINTS = {
    ("spot", False): ("https://api.binance.com", "wss://stream.binance.com:9443"),
    ("spot", True): ("https://testnet.binance.vision", "wss://stream.testnet.binance.vision"),
    ("usdm", False): ("https://fapi.binance.com", "wss://fstream.binance.com"),
    ("usdm", True): ("https://testnet.binancefuture.com", "wss://fstream.binancefuture.com"),
}
_REST_PATHS = {
    "spot": {"depth": "/api/v3/depth", "info": "/api/v3/exchangeInfo"},
    "usdm": {"depth": "/fapi/v1/depth", "info": "/fapi/v1/exchangeInfo"},
}
_SPOT_LIMIT_WEIGHT = ((100, 5), (500, 25), (1000, 50), (5000, 250))
_USDM_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_USDM_LIMIT_WEIGHT = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
_MAX_ATTEMPTS_PER_5MIN = 300
#: spot production stream hosts redundant feeds use by default, in turn (BINANCE.md
#: "Connection rules"; wss://data-stream.binance.vision serves market data only)
SPOT_STREAM_HOSTS = ("wss://stream.binance.com:9443", "wss://stream.binance.com:443")
_MAX_FEEDS = 8


def depth_weight(market: str, limit: int) -> int:
    """REST weight of a depth snapshot of `limit` levels (BINANCE.md table)."""
    if market == "spot":
        for top, w in _SPOT_LIMIT_WEIGHT:
            if limit <= top:
                return w
        return 250
    return _USDM_LIMIT_WEIGHT.get(limit, 20)


def stream_names(symbol: str, market: str, depth_speed_ms: int, trade_stream: str) -> tuple[list[str], list[str]]:
    """(book streams, trade streams) for a symbol, lower-case as Binance expects."""
    s = symbol.lower()
    if market == "spot":
        depth = {100: f"{s}@depth@100ms", 1000: f"{s}@depth"}
    else:
        depth = {0: f"{s}@depth@0ms", 100: f"{s}@depth@100ms", 250: f"{s}@depth", 500: f"{s}@depth@500ms"}
    if depth_speed_ms not in depth:
        raise ValueError(f"depth_speed_ms must be one of {sorted(depth)} on {market}, got {depth_speed_ms}")
    if trade_stream not in ("trade", "aggTrade"):
        raise ValueError(f"trade_stream must be 'trade' or 'aggTrade', got {trade_stream!r}")
    return [depth[depth_speed_ms], f"{s}@bookTicker"], [f"{s}@{trade_stream}"]


@dataclass(frozen=True)
class BookSnapshot:
    """An immutable top-N view of the book.

    Ticks/lots are in the connector's price/quantity units (``tick_size``,
    ``lot_size``); ``bids``/``asks`` give (n, 2) float arrays in price and base
    units. ``update_id`` is the book's last applied update id; times in ns.
    """

    symbol: str
    ready: bool
    update_id: Optional[int]
    exch_time_ns: int
    local_time_ns: int
    tick_size: float
    lot_size: float
    bid_ticks: np.ndarray
    bid_lots: np.ndarray
    ask_ticks: np.ndarray
    ask_lots: np.ndarray

    @property
    def bids(self) -> np.ndarray:
        return np.column_stack([self.bid_ticks * self.tick_size, self.bid_lots * self.lot_size])

    @property
    def asks(self) -> np.ndarray:
        return np.column_stack([self.ask_ticks * self.tick_size, self.ask_lots * self.lot_size])

    @property
    def best_bid(self) -> Optional[float]:
        return float(self.bid_ticks[0]) * self.tick_size if len(self.bid_ticks) else None

    @property
    def best_ask(self) -> Optional[float]:
        return float(self.ask_ticks[0]) * self.tick_size if len(self.ask_ticks) else None

    @property
    def mid(self) -> Optional[float]:
        if not len(self.bid_ticks) or not len(self.ask_ticks):
            return None
        return (float(self.bid_ticks[0]) + float(self.ask_ticks[0])) * 0.5 * self.tick_size

    @property
    def spread(self) -> Optional[float]:
        if not len(self.bid_ticks) or not len(self.ask_ticks):
            return None
        return float(self.ask_ticks[0] - self.bid_ticks[0]) * self.tick_size


class OrderBookView:
    """Thread-safe access to the connector's live book."""

    def __init__(self, connector: "BinanceConnector") -> None:
        self._c = connector

    def get_snapshot(self, depth: int = 20) -> BookSnapshot:
        """Copy of the top `depth` levels per side, with the update id and times."""
        c = self._c
        with c._lock:
            bt, bq, at, aq = c.book.top(depth)
            ready = c.ready
            uid = c.sync.last_update_id
            exch, local = c._last_exch_ns, c._last_local_ns
        for a in (bt, bq, at, aq):
            a.setflags(write=False)
        return BookSnapshot(c.symbol, ready, uid, exch, local, c.tick_size, c.lot_size, bt, bq, at, aq)

    @property
    def ready(self) -> bool:
        return self._c.ready


@dataclass
class ConnectorStats:
    """Counters of one connector (all monotonic)."""

    messages: int = 0
    bytes: int = 0
    depth_updates: int = 0
    trades: int = 0
    book_tickers: int = 0
    other: int = 0
    malformed: int = 0
    applied: int = 0
    dropped_old: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    ids_lost: int = 0
    snapshots: int = 0
    stale_snapshots: int = 0
    #: depth events with impossible or overlapping update ids (refused), and times the
    #: stream contradicted the book's update id (the book was resynced)
    refused: int = 0
    contradictions: int = 0
    snapshot_errors: int = 0
    reconnects: int = 0
    watchdog_reconnects: int = 0
    server_shutdowns: int = 0
    lifetime_renewals: int = 0
    ticker_checks: int = 0
    ticker_mismatches: int = 0
    #: loss of the (merged) depth stream: distinct messages received, holes in the
    #: chain (each at least one message), update ids received; duplicates reached
    #: the sync again (a feed's own repeats)
    messages_received: int = 0
    messages_lost: int = 0
    ids_received: int = 0
    duplicates: int = 0
    #: redundant feeds: frames dropped because another feed delivered them first;
    #: holes that waited for another feed, were filled by one, or were passed on
    #: to the book (no live feed had the message)
    feed_duplicates: int = 0
    feed_holds: int = 0
    feed_fills: int = 0
    feed_unfilled: int = 0
    malformed_examples: list[str] = field(default_factory=list)


class _Conn:
    """One WebSocket connection and its I/O thread."""

    def __init__(self, name: str, url: str, feed: int = 0, market: str = "spot") -> None:
        self.name = name
        self.url = url
        self.feed = feed
        #: this connection's own view of the depth stream (its losses, whatever the merge)
        self.loss = StreamLoss(market)
        self.newest = -1          # final id of the newest depth message it delivered
        self.progress_at = 0.0    # when `newest` last grew (monotonic s)
        self.frames = 0           # data frames received
        self.first = 0            # frames it delivered before any other feed
        self.duplicates = 0       # frames another feed had delivered first
        self.ws: Optional[websocket.WebSocket] = None
        self.thread: Optional[threading.Thread] = None
        self.connected = threading.Event()
        self.opened_at = 0.0
        self.last_data = 0.0
        self.force_reconnect = threading.Event()
        self.reason = ""


class BinanceConnector:
    """Live market data for one symbol: a synced L2 book and trades.

    Parameters (units in brackets):
      symbol: e.g. "BTCUSDT"; market: "spot" or "usdm"; testnet: use Binance's testnet URLs.
      rest_url / ws_url: override the base URLs (e.g. the simulator's).
      tick_size / lot_size: price and quantity units (str); fetched from exchangeInfo when None.
      depth_speed_ms: diff-depth speed (spot 100 or 1000; USD-M 0, 100, 250, 500).
      trade_stream: "trade" or "aggTrade". snapshot_limit: REST snapshot levels.
      watchdog_s [s]: reconnect when a connection delivers nothing -- no data and no
        ping (Binance pings every 20 s on spot, 3 min on USD-M) -- for this long.
      max_lifetime_s [s]: renew connections before Binance's 24 h limit.
      backoff_initial_s / backoff_max_s [s]: reconnect backoff (exponential, jittered).
      on_book(book, msg): called on the I/O thread after each depth update applied to a ready book.
      on_trade(trade): called for each trade (Trade, prices in ticks).
      on_book_ticker(ticker): called for each bookTicker.
      on_raw(local_ns, frame): every frame and REST snapshot body as received (the recorder).
      on_sync(sync, local_ns): with ``emit_events``, after every change the sync made
        (depth applied, snapshot loaded, book invalid): ``sync`` holds the records
        (``BookSync(emit_events=True)``) for the caller to consume -- the live engine
        feeds them to its strategy core, decoded and synced once.
      lock: held from a frame's receive time stamp to the end of its processing (the
        hooks included), so times are monotonic in the order frames are handled.
      book: the L2Book to keep (in the market data's units), shared with a driver that
        applies the same records to it (live trading's one book); default: its own.
      trade_watchdog_s [s]: watchdog of a trades-only connection (quiet markets trade rarely).
      feeds: parallel connections per stream set (redundant market data, merged by update id).
      ws_urls: stream base URLs the feeds use in turn (default: ``ws_url`` for all; on spot
        production :data:`SPOT_STREAM_HOSTS`).
      merge_wait_s [s]: how long a hole in one feed waits for a live feed that has not
        reached it and stands still, before the book is told (and resyncs); a feed still
        moving towards the hole is waited for up to ``watchdog_s``; no wait when every
        live feed has passed the hole.
      mark_price_stream: USD-M: also ``<symbol>@markPrice@1s`` on the trades connection
        (its frames reach ``on_raw`` only: the recording's and paper trading's funding).
    """

    def __init__(self, symbol: str, market: str = "spot", testnet: bool = False, *,
                 rest_url: Optional[str] = None, ws_url: Optional[str] = None,
                 tick_size: Optional[str] = None, lot_size: Optional[str] = None,
                 depth_speed_ms: int = 100, trade_stream: str = "trade", snapshot_limit: int = 1000,
                 watchdog_s: float = 10.0, max_lifetime_s: float = 23.5 * 3600,
                 backoff_initial_s: float = 0.25, backoff_max_s: float = 30.0,
                 request_timeout_s: float = 10.0, weight_limit_per_min: int = 6000,
                 routed_usdm: bool = True,
                 on_book: Optional[Callable[[L2Book, DepthUpdate], None]] = None,
                 on_trade: Optional[Callable[[Trade], None]] = None,
                 on_book_ticker: Optional[Callable[[BookTicker], None]] = None,
                 on_raw: Optional[Callable[[int, bytes], None]] = None,
                 trade_watchdog_s: float = 300.0,
                 on_sync: Optional[Callable[[BookSync, int], None]] = None,
                 lock: Optional[Any] = None, book: Optional[L2Book] = None,
                 feeds: int = 2, ws_urls: Optional[Sequence[str]] = None, merge_wait_s: float = 0.5,
                 mark_price_stream: bool = True) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        if not symbol or not symbol.isalnum():
            raise ValueError(f"symbol must be alphanumeric, got {symbol!r}")
        if market == "spot" and not 1 <= snapshot_limit <= 5000:
            raise ValueError(f"snapshot_limit must be in [1, 5000] on spot, got {snapshot_limit}")
        if market == "usdm" and snapshot_limit not in _USDM_LIMITS:
            raise ValueError(f"snapshot_limit must be one of {_USDM_LIMITS} on USD-M, got {snapshot_limit}")
        if not isinstance(feeds, int) or not 1 <= feeds <= _MAX_FEEDS:
            raise ValueError(f"feeds must be an integer in [1, {_MAX_FEEDS}], got {feeds!r}")
        if not merge_wait_s >= 0:
            raise ValueError(f"merge_wait_s must be >= 0 s, got {merge_wait_s}")
        if ws_urls is not None and (not ws_urls or not all(isinstance(u, str) and u.startswith(("ws://", "wss://"))
                                                             for u in ws_urls)):
            raise ValueError(f"ws_urls must be a non-empty list of ws:// or wss:// URLs, got {ws_urls!r}")
        for name, v in (("watchdog_s", watchdog_s), ("max_lifetime_s", max_lifetime_s),
                        ("backoff_initial_s", backoff_initial_s), ("backoff_max_s", backoff_max_s)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        self.symbol = symbol.upper()
        self.market = market
        default_rest, default_ws = ENDPOINTS[(market, bool(testnet))]
        self.rest_url = (rest_url or default_rest).rstrip("/")
        self.ws_url = (ws_url or default_ws).rstrip("/")
        if ws_urls is not None:
            urls = [u.rstrip("/") for u in ws_urls]
        elif ws_url is None and market == "spot" and not testnet:
            urls = list(SPOT_STREAM_HOSTS)
        else:
            urls = [self.ws_url]
        self.feeds = feeds
        self.feed_urls = [urls[i % len(urls)] for i in range(feeds)]
        self.merge_wait_s = merge_wait_s
        self.book_streams, self.trade_streams = stream_names(self.symbol, market, depth_speed_ms, trade_stream)
        if market == "usdm" and mark_price_stream:
            # mark price and funding (rate, next funding time): recorded, and paper trading's funding
            self.trade_streams.append(f"{self.symbol.lower()}@markPrice@1s")
        self.snapshot_limit = snapshot_limit
        self.watchdog_s = watchdog_s
        self.max_lifetime_s = max_lifetime_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.weight_limit_per_min = weight_limit_per_min
        self.routed_usdm = routed_usdm
        self.on_book = on_book
        self.on_trade = on_trade
        self.on_book_ticker = on_book_ticker
        self.on_raw = on_raw
        self.on_sync = on_sync
        self.trade_watchdog_s = trade_watchdog_s
        self._units = (tick_size, lot_size)
        self._given_book = book
        self.tick_size = float(tick_size) if tick_size else 0.0
        self.lot_size = float(lot_size) if lot_size else 0.0
        self.decoder: Optional[BinanceDecoder] = None
        self.book: Optional[L2Book] = None
        self.sync: Optional[BookSync] = None
        self.stats = ConnectorStats()
        self._latency_ms: deque[float] = deque(maxlen=20_000)
        self._lock = lock if lock is not None else threading.RLock()
        # feeds > 1: the I/O threads of all feeds take turns (one merged stream)
        self._frame_lock = lock if lock is not None else (self._lock if feeds > 1 else contextlib.nullcontext())
        self._stop = threading.Event()
        self._snap_request = threading.Event()
        self._snap_thread: Optional[threading.Thread] = None
        self._snap_lock = threading.Lock()
        self._pending_snapshot: Optional[tuple[DepthSnapshot, bytes]] = None   # (snapshot, its body)
        self._snap_wanted = False        # a snapshot is requested or in flight (one at a time)
        self._conns: list[_Conn] = []
        self._attempts: deque[float] = deque()
        self._attempt_lock = threading.Lock()
        self._used_weight = 0
        self._weight_minute = 0
        self._banned_until = 0.0
        self._last_exch_ns = 0
        self._last_local_ns = 0
        self._tickers: dict[int, BookTicker] = {}
        # the merge of redundant feeds (under _lock)
        self._m_last: Optional[int] = None          # final id of the newest depth message passed on
        self._m_recent = _Recent(8192)              # final ids of depth messages passed on
        self._m_held: list[tuple] = []              # (msg, data, conn): behind a hole, waiting
        self._m_held_since = 0.0
        self._m_trades = _Recent(8192)
        self._m_tickers = _Recent(8192)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "BinanceConnector":
        """Fetch units if needed, open the streams and start syncing (non-blocking)."""
        if self._conns:
            raise RuntimeError("connector already started")
        tick, lot = self._units
        if not tick or not lot:
            info = self._rest_json_retry(_REST_PATHS[self.market]["info"], {"symbol": self.symbol})
            t2, l2 = decoder_units(info, self.symbol)
            tick, lot = tick or t2, lot or l2
        self.tick_size, self.lot_size = float(tick), float(lot)
        self.decoder = BinanceDecoder(tick, lot)
        gb = self._given_book
        if gb is not None and (abs(gb.tick_size - float(tick)) > 1e-15 or abs(gb.lot_size - float(lot)) > 1e-15):
            raise ValueError(f"book= has units {gb.tick_size}/{gb.lot_size}, the market data {tick}/{lot}")
        self.book = gb if gb is not None else L2Book(tick, lot)
        self.sync = BookSync(self.book, market=self.market, emit_events=self.on_sync is not None)
        self._stop.clear()
        for feed, base in enumerate(self.feed_urls):
            if self.market == "spot" or not self.routed_usdm:
                urls = [("book+trades", self._stream_url(base, "", self.book_streams + self.trade_streams))]
            else:
                urls = [("book", self._stream_url(base, "/public", self.book_streams)),
                        ("trades", self._stream_url(base, "/market", self.trade_streams))]
            for name, url in urls:
                if self.feeds > 1:
                    name = f"{name}#{feed}"
                conn = _Conn(name, url, feed, self.market)
                conn.thread = threading.Thread(target=self._run_conn, args=(conn,), name=f"hftmm-ws-{name}",
                                               daemon=True)
                self._conns.append(conn)
        self._snap_thread = threading.Thread(target=self._run_snapshots, name="hftmm-snapshot", daemon=True)
        self._snap_thread.start()
        for conn in self._conns:
            conn.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connections and join the threads (idempotent)."""
        self._stop.set()
        self._snap_request.set()
        for conn in self._conns:
            self._close_ws(conn)
        for conn in self._conns:
            if conn.thread is not None and conn.thread is not threading.current_thread():
                conn.thread.join(timeout)
        if self._snap_thread is not None and self._snap_thread is not threading.current_thread():
            self._snap_thread.join(timeout)
        self._conns = []

    def __enter__(self) -> "BinanceConnector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until the book is synced (True) or the timeout passes (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready:
                return True
            time.sleep(0.005)
        return self.ready

    # ------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        """True when a book feed is connected and the book equals the exchange's book
        (as of its update id)."""
        if self.sync is None or not self.sync.ready:
            return False
        book = [c for c in self._conns if "book" in c.name]
        return not book or any(c.connected.is_set() for c in book)     # (stopped: as it ended)

    def get_order_book(self) -> OrderBookView:
        """The live book (``.get_snapshot(depth)`` gives an immutable copy)."""
        if self.book is None:
            raise RuntimeError("connector not started")
        return OrderBookView(self)

    def latency_percentiles(self, qs=(50, 90, 99, 99.9)) -> dict[str, float]:
        """Exchange-event-time to local-receive latency percentiles, ms (last 20k messages)."""
        if not self._latency_ms:
            return {}
        arr = np.fromiter(self._latency_ms, dtype=np.float64)
        return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}

    def statistics(self) -> dict:
        """Counters, latency percentiles and the loss figures.

        ``message_loss_rate`` is messages lost / messages expected and
        ``id_loss_rate`` update ids lost / ids expected, of the merged depth stream
        (what the book saw); ``feeds`` gives each connection's own figures (what it
        lost, whatever the others delivered). A message is lost when its hole is
        seen: messages lost at the very end of a session are not known yet."""
        d = {k: v for k, v in self.stats.__dict__.items() if k != "malformed_examples"}
        d["ready"] = self.ready
        d["latency_ms"] = self.latency_percentiles()
        d.update(loss_figures(d))
        d["feeds"] = self.feed_statistics()
        return d

    def feeds_up(self) -> int:
        """Book feeds (connections carrying depth) connected now."""
        return sum(1 for c in list(self._conns) if "book" in c.name and c.connected.is_set())

    def feed_statistics(self) -> list[dict]:
        """Per connection: name, feed, URL, connected, frames, the frames it was first
        or second with, and its own loss counters and figures."""
        out = []
        for c in list(self._conns):
            f = c.loss.stats()
            f.update(loss_figures(f))
            f.update(name=c.name, feed=c.feed, url=c.url.split("?")[0], connected=c.connected.is_set(),
                     frames=c.frames, first=c.first, feed_duplicates=c.duplicates)
            out.append(f)
        return out

    # ------------------------------------------------------------ I/O thread
    def _stream_url(self, base: str, prefix: str, streams: list[str]) -> str:
        return f"{base}{prefix}/stream?streams={'/'.join(streams)}"

    def _close_ws(self, conn: _Conn) -> None:
        close_websocket(conn.ws)

    def _wait_attempt_slot(self) -> None:
        """Binance allows 300 connection attempts per 5 minutes per IP."""
        while not self._stop.is_set():
            with self._attempt_lock:
                now = time.monotonic()
                while self._attempts and now - self._attempts[0] > 300.0:
                    self._attempts.popleft()
                if len(self._attempts) < _MAX_ATTEMPTS_PER_5MIN:
                    self._attempts.append(now)
                    return
                wait = 300.0 - (now - self._attempts[0])
            self._stop.wait(min(wait, 1.0))

    def _run_conn(self, conn: _Conn) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._wait_attempt_slot()
            if self._stop.is_set():
                break
            try:
                ws = websocket.create_connection(
                    conn.url, timeout=self.request_timeout_s, skip_utf8_validation=True,
                    sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
            except Exception as exc:  # noqa: BLE001 -- any connect failure means retry
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("%s %s: connect failed (%s); retry in %.2fs", self.symbol, conn.name, exc, delay)
                self._stop.wait(delay)
                continue
            conn.ws = ws
            conn.opened_at = conn.last_data = time.monotonic()
            conn.force_reconnect.clear()
            conn.connected.set()
            log.info("%s %s: connected", self.symbol, conn.name)
            healthy = self._read_loop(conn, ws)
            conn.connected.clear()
            self._close_ws(conn)
            conn.ws = None
            if self._m_held:
                with self._frame_lock:      # a hole no longer waits for this feed
                    self._merge_release()
            if self._stop.is_set():
                break
            self.stats.reconnects += 1
            attempt = 0 if healthy else attempt + 1
            delay = 0.0 if conn.reason in ("lifetime", "serverShutdown") else self._backoff(attempt)
            log.warning("%s %s: disconnected (%s); reconnecting in %.2fs", self.symbol, conn.name, conn.reason, delay)
            if delay:
                self._stop.wait(delay)

    def _backoff(self, attempt: int) -> float:
        return jittered_backoff(attempt, self.backoff_initial_s, self.backoff_max_s)

    def _read_loop(self, conn: _Conn, ws: websocket.WebSocket) -> bool:
        """Receive until the connection ends; True if it was healthy for a while."""
        ws.settimeout(min(0.25, self.watchdog_s / 4))
        is_book = "book" in conn.name
        watchdog = self.watchdog_s if is_book else max(self.watchdog_s, self.trade_watchdog_s)
        conn.reason = "closed"
        while not self._stop.is_set():
            if conn.force_reconnect.is_set():
                conn.reason = "serverShutdown"
                break
            try:
                op, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                if now - conn.last_data > watchdog:
                    self.stats.watchdog_reconnects += 1
                    conn.reason = "watchdog"
                    break
                if now - conn.opened_at > self.max_lifetime_s:
                    self.stats.lifetime_renewals += 1
                    conn.reason = "lifetime"
                    break
                if is_book:
                    with self._frame_lock:
                        if self._m_held:
                            self._merge_release()
                        self._maybe_apply_snapshot()
                continue
            except (websocket.WebSocketConnectionClosedException, OSError, ValueError) as exc:
                conn.reason = f"error: {exc.__class__.__name__}"
                break
            except websocket.WebSocketException as exc:
                conn.reason = f"protocol error: {exc}"
                break
            if op == websocket.ABNF.OPCODE_CLOSE:
                conn.reason = "close frame"
                break
            conn.last_data = time.monotonic()
            if op == websocket.ABNF.OPCODE_PING or op == websocket.ABNF.OPCODE_PONG:
                continue     # answered by websocket-client; proves the connection is alive
            with self._frame_lock:
                local_ns = time.time_ns()
                self._on_frame(data, local_ns, is_book, conn)
                if is_book:
                    self._maybe_apply_snapshot()
            if conn.last_data - conn.opened_at > self.max_lifetime_s:
                self.stats.lifetime_renewals += 1
                conn.reason = "lifetime"
                break
        return time.monotonic() - conn.opened_at > 60.0

    def _on_frame(self, data: bytes, local_ns: int, is_book: bool, conn: _Conn) -> None:
        st = self.stats
        st.messages += 1
        st.bytes += len(data)
        conn.frames += 1
        merged = self.feeds > 1
        if self.on_raw is not None and not merged:
            self.on_raw(local_ns, data)
        try:
            msg = self.decoder.decode(data)
        except DecodeError as exc:
            st.malformed += 1
            if len(st.malformed_examples) < 20:
                st.malformed_examples.append(f"{conn.name}: {exc}")
            log.debug("%s: malformed frame skipped: %s", self.symbol, exc)
            if merged and self.on_raw is not None:
                self.on_raw(local_ns, data)         # recorded, as it is counted: once per arrival
            return
        if merged:
            self._merge(msg, data, local_ns, conn)
            return
        self._handle(msg, data, local_ns, conn)

    # -- the merge of redundant feeds (holding the frame lock)
    def _merge(self, msg: Any, data: bytes, local_ns: int, conn: _Conn) -> None:
        if isinstance(msg, DepthUpdate):
            u = msg.last_id
            conn.loss.add(msg.first_id, u, msg.prev_id)
            if u > conn.newest:
                conn.newest = u
                conn.progress_at = time.monotonic()
            last = self._m_last
            if u in self._m_recent or (last is not None and u <= last and u < self._m_recent.oldest):
                self._feed_duplicate(conn)
                return
            if self._m_held or (last is not None and u > last and self._hole_before(msg, last)):
                if not self._m_held:
                    self.stats.feed_holds += 1
                    self._m_held_since = time.monotonic()
                self._m_held.append((msg, data, conn))
                self._merge_release()
                return
            self._pass_depth(msg, data, local_ns, conn)
            return
        if isinstance(msg, Trade):
            if msg.trade_id in self._m_trades:
                self._feed_duplicate(conn)
                return
            self._m_trades.add(msg.trade_id)
        elif isinstance(msg, BookTicker):
            if msg.update_id in self._m_tickers:
                self._feed_duplicate(conn)
                return
            self._m_tickers.add(msg.update_id)
        conn.first += 1
        if self.on_raw is not None:
            self.on_raw(local_ns, data)
        self._handle(msg, data, local_ns, conn)

    def _feed_duplicate(self, conn: _Conn) -> None:
        conn.duplicates += 1
        self.stats.feed_duplicates += 1

    def _hole_before(self, msg: DepthUpdate, last: int) -> bool:
        """True when update ids are missing between `last` and `msg`."""
        return msg.first_id > last + 1 if self.market == "spot" else msg.prev_id > last

    def _pass_depth(self, msg: DepthUpdate, data: bytes, local_ns: int, conn: _Conn) -> None:
        """Hand one depth message of the merged stream to the book."""
        conn.first += 1
        u = msg.last_id
        self._m_recent.add(u)
        contradictions = self.sync.contradictions
        if self.on_raw is not None:
            self.on_raw(local_ns, data)
        self._handle(msg, data, local_ns, conn)
        if self._m_last is None or u > self._m_last or self.sync.contradictions != contradictions:
            self._m_last = u        # (the stream re-anchored: the merge follows it)

    def _merge_release(self) -> None:
        """Pass on the held messages that now follow the merged stream; and all of
        them once every live book feed has passed the hole without filling it,
        the wait is over, or too much is held."""
        held = self._m_held
        held.sort(key=lambda h: h[0].last_id)
        progressed = False
        while held:
            msg, data, conn = held[0]
            u, last = msg.last_id, self._m_last
            if u in self._m_recent:
                held.pop(0)
                self._feed_duplicate(conn)
                continue
            newer = last is None or u > last
            if newer and last is not None and self._hole_before(msg, last):
                break
            held.pop(0)
            self._pass_depth(msg, data, time.time_ns(), conn)     # (an older one: late, the sync judges)
            progressed = progressed or newer
        if not held:
            if progressed:
                self.stats.feed_fills += 1
            return
        if progressed:
            self._m_held_since = time.monotonic()      # a new hole
        last = self._m_last
        now = time.monotonic()
        lagging = [c for c in self._conns if "book" in c.name and c.connected.is_set()
                   and last is not None and c.newest <= last]
        if lagging and len(held) <= 50_000:
            # a live feed that has not reached the hole yet may still bring it: wait
            # while it moves (a slow consumer's backlog), at most the watchdog time;
            # a feed that stands still for merge_wait_s is not waited for
            waited = now - self._m_held_since
            moving = any(now - c.progress_at < self.merge_wait_s for c in lagging)
            if waited < self.watchdog_s and (moving or waited < self.merge_wait_s):
                return
        # no live feed has the missing message: the book learns of the hole now
        self.stats.feed_unfilled += 1
        self._m_held = []
        for msg, data, conn in held:
            if msg.last_id in self._m_recent:
                self._feed_duplicate(conn)
            else:
                self._pass_depth(msg, data, time.time_ns(), conn)

    def _handle(self, msg: Any, data: bytes, local_ns: int, conn: _Conn) -> None:
        st = self.stats
        if isinstance(msg, DepthUpdate):
            st.depth_updates += 1
            self._latency(msg.event_time_ns, local_ns)
            with self._lock:
                out = self.sync.on_depth(msg, local_ns)
                if self.on_sync is not None:
                    self.on_sync(self.sync, local_ns)
                self._last_exch_ns = msg.event_time_ns
                self._last_local_ns = local_ns
                self._copy_sync_counters()
            if out in RESYNC_OUTCOMES:
                log.warning("%s: book resync needed (%s) at u=%d", self.symbol, self.sync.last_reason, msg.last_id)
            if self.sync.needs_snapshot:
                self._want_snapshot()
            elif self.sync.last_update_id == msg.last_id:
                self._check_ticker(msg.last_id)
                if self.on_book is not None:
                    self.on_book(self.book, msg)
        elif isinstance(msg, Trade):
            st.trades += 1
            self._latency(msg.event_time_ns, local_ns)
            if self.on_trade is not None:
                self.on_trade(msg)
        elif isinstance(msg, BookTicker):
            st.book_tickers += 1
            if msg.event_time_ns:
                self._latency(msg.event_time_ns, local_ns)
            self._on_ticker(msg)
            if self.on_book_ticker is not None:
                self.on_book_ticker(msg)
        elif isinstance(msg, UnknownEvent):
            st.other += 1
            if msg.event_type == "serverShutdown":
                st.server_shutdowns += 1
                conn.force_reconnect.set()
        else:
            st.other += 1

    def _latency(self, exch_ns: int, local_ns: int) -> None:
        if exch_ns:
            self._latency_ms.append((local_ns - exch_ns) / 1e6)

    def _copy_sync_counters(self) -> None:
        s, st = self.sync, self.stats
        st.applied, st.dropped_old, st.gaps = s.applied, s.dropped_old, s.gaps
        st.resyncs, st.crossed, st.ids_lost = s.resyncs, s.crossed, s.ids_lost
        st.stale_snapshots = s.stale_snapshots
        st.refused, st.contradictions = s.refused, s.contradictions
        st.messages_received, st.messages_lost = s.messages_received, s.messages_lost
        st.ids_received = s.ids_received
        st.duplicates = s.duplicates

    # bookTicker cross-check: a bookTicker carrying the book's update id must
    # show exactly the book's best levels (zero silent divergence)
    def _on_ticker(self, t: BookTicker) -> None:
        sync = self.sync
        if sync.ready and sync.last_update_id == t.update_id:
            self._compare_ticker(t)
        elif sync.last_update_id is None or t.update_id > sync.last_update_id:
            if len(self._tickers) > 10_000:
                self._tickers.clear()
            self._tickers[t.update_id] = t

    def _check_ticker(self, u: int) -> None:
        if self._tickers:
            t = self._tickers.pop(u, None)
            if t is not None:
                self._compare_ticker(t)
            if len(self._tickers) > 64:
                for k in [k for k in self._tickers if k < u]:
                    del self._tickers[k]

    def _compare_ticker(self, t: BookTicker) -> None:
        b = self.book
        self.stats.ticker_checks += 1
        if (b.best_bid(), b.best_bid_qty(), b.best_ask(), b.best_ask_qty()) != (t.bid_px, t.bid_qty, t.ask_px, t.ask_qty):
            self.stats.ticker_mismatches += 1
            log.error("%s: book diverges from bookTicker at u=%d: book %s/%s vs ticker %s/%s -- resyncing",
                      self.symbol, t.update_id, b.best_bid(), b.best_ask(), t.bid_px, t.ask_px)
            with self._lock:
                self.sync.reset()
                if self.on_sync is not None:
                    self.on_sync(self.sync, time.time_ns())
            self._want_snapshot()

    # ------------------------------------------------------------ snapshots
    def _want_snapshot(self) -> None:
        if not self._snap_wanted:
            self._snap_wanted = True
            self._snap_request.set()

    def _maybe_apply_snapshot(self) -> None:
        if self._pending_snapshot is None:
            return
        with self._snap_lock:
            pending, self._pending_snapshot = self._pending_snapshot, None
        if pending is None:
            return
        snap, body = pending
        # the snapshot enters the stream here, between frames, at this time -- for the
        # sync, the hooks and the recording alike (a recording replays as it ran)
        snap_local_ns = time.time_ns()
        if self.on_raw is not None:
            self.on_raw(snap_local_ns, body)
        with self._lock:
            out = self.sync.on_snapshot(snap, snap_local_ns)
            if self.on_sync is not None:
                self.on_sync(self.sync, snap_local_ns)
            self.stats.snapshots += 1
            self._copy_sync_counters()
        self._snap_wanted = False
        if out == STALE_SNAPSHOT or self.sync.needs_snapshot:
            log.info("%s: snapshot %d not usable (%s); fetching again", self.symbol, snap.last_update_id,
                     "stale" if out == STALE_SNAPSHOT else self.sync.last_reason)
            self._want_snapshot()
        else:
            log.info("%s: book synced at u=%s", self.symbol, self.sync.last_update_id)

    def _run_snapshots(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._snap_request.wait(0.5)
            if self._stop.is_set():
                break
            if not self._snap_request.is_set():
                continue
            self._snap_request.clear()
            # Binance: open the stream and buffer first; fetch once an event is buffered
            while not self._stop.is_set() and (self.sync.buffered_events == 0 and not self.sync.ready):
                self._stop.wait(0.01)
            if self._stop.is_set() or self.sync.ready:
                self._snap_wanted = False
                continue
            try:
                snap, body = self._fetch_snapshot()
            except Exception as exc:  # noqa: BLE001 -- network and HTTP errors: retry with backoff
                failures += 1
                self.stats.snapshot_errors += 1
                delay = self._backoff(failures)
                log.warning("%s: snapshot failed (%s); retry in %.2fs", self.symbol, exc, delay)
                self._stop.wait(delay)
                self._snap_request.set()
                continue
            failures = 0
            with self._snap_lock:
                self._pending_snapshot = (snap, body)

    def _fetch_snapshot(self) -> DepthSnapshot:
        weight = depth_weight(self.market, self.snapshot_limit)
        self._respect_weight(weight)
        body = self._rest_get(_REST_PATHS[self.market]["depth"], {"symbol": self.symbol, "limit": self.snapshot_limit})
        snap = self.decoder.decode(body)
        if not isinstance(snap, DepthSnapshot):
            raise ValueError(f"depth endpoint returned {type(snap).__name__}, not a snapshot")
        return snap, body

    def _respect_weight(self, weight: int) -> None:
        now = time.time()
        if now < self._banned_until:
            self._stop.wait(self._banned_until - now)
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._used_weight = minute, 0
        if self._used_weight + weight > self.weight_limit_per_min:
            wait = 60.0 - (time.time() % 60.0) + 0.05
            log.warning("%s: REST weight budget reached (%d/%d); waiting %.1fs", self.symbol,
                        self._used_weight, self.weight_limit_per_min, wait)
            self._stop.wait(wait)

    def _rest_get(self, path: str, params: dict) -> bytes:
        url = f"{self.rest_url}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, headers={"User-Agent": "hftmm"})
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
                used = resp.headers.get("X-MBX-USED-WEIGHT-1M") or resp.headers.get("X-MBX-USED-WEIGHT-1m")
                if used is not None and used.isdigit():
                    self._used_weight = int(used)
                    self._weight_minute = int(time.time() // 60)
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (418, 429):
                retry = exc.headers.get("Retry-After")
                wait = float(retry) if retry and retry.replace(".", "", 1).isdigit() else 60.0
                self._banned_until = time.time() + wait
                log.warning("%s: HTTP %d from %s; backing off %.0fs", self.symbol, exc.code, path, wait)
            raise

    def _rest_json(self, path: str, params: dict) -> dict:
        return json.loads(self._rest_get(path, params))

    def _rest_json_retry(self, path: str, params: dict, attempts: int = 6) -> dict:
        """GET with retries on transient failures (5xx, 429/418 with their
        Retry-After, network errors); 4xx other than those is final. The final
        failure is a :class:`ConnectError` naming the URL and the reason."""
        url = f"{self.rest_url}{path}"
        for attempt in range(attempts):
            try:
                return self._rest_json(path, params)
            except urllib.error.HTTPError as exc:
                if (exc.code < 500 and exc.code not in (418, 429)) or attempt == attempts - 1:
                    raise ConnectError(f"GET {url}: HTTP {exc.code} {_http_body(exc)}") from None
                wait = max(self._banned_until - time.time(), self._backoff(attempt))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if attempt == attempts - 1:
                    reason = getattr(exc, "reason", None) or exc
                    raise ConnectError(f"GET {url}: {reason} (after {attempts} attempts; is anything "
                                       f"listening there?)") from None
                wait = self._backoff(attempt)
            log.warning("%s: %s failed (attempt %d); retrying in %.2fs", self.symbol, path, attempt + 1, wait)
            time.sleep(wait)
        raise RuntimeError("unreachable")


class _Recent:
    """The newest `n` ids seen, for membership tests (the merge's duplicate check)."""

    __slots__ = ("_set", "_q", "_n")

    def __init__(self, n: int) -> None:
        self._set: set[int] = set()
        self._q: deque[int] = deque()
        self._n = n

    def add(self, x: int) -> None:
        if x in self._set:
            return
        self._set.add(x)
        self._q.append(x)
        if len(self._q) > self._n:
            self._set.discard(self._q.popleft())

    def __contains__(self, x: int) -> bool:
        return x in self._set

    @property
    def oldest(self) -> int:
        """The first id of the window remembered (-1 when none): an id below it is
        older than the memory (ids arrive nearly in order)."""
        return self._q[0] if self._q else -1


def _http_body(exc: "urllib.error.HTTPError") -> str:
    """An HTTP error's body (Binance's {"code","msg"}), on one line, at most 300 characters."""
    try:
        body = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only a detail of the message
        body = ""
    return " ".join(body.split())[:300] or str(exc.reason)
