"""LiveEngine: connector -> pricer -> risk -> quote manager -> gateway, event-driven.

One engine thread does everything that decides: it takes the frames the
connector receives (WebSocket frames and REST snapshots, exactly as a recording
stores them), decodes and normalises them with the same code as ``hftmm data
convert`` (so a recording of the session backtests to the same events), keeps
its book, feeds the pricer and the quote manager, and applies the gateway's
answers. Other threads only queue things for it.

Modes: ``paper`` (the :class:`~hftmm.live.paper.PaperGateway` fills our orders
against the feed with the backtester's queue and latency model, on the event
clock), ``testnet`` and ``live`` (a :class:`~hftmm.live.binance_gateway.BinanceGateway`;
the engine's clock is the receive time of each message).

Safety: the kill switch (signal, ``hftmm kill``, the dashboard's button, or a
risk breach) cancels every open order, optionally flattens, stops quoting and
records why. At the end (``duration_s`` or :meth:`LiveEngine.stop`) every order
is cancelled before the engine returns. The state (book top, quotes, orders,
position, PnL, risk, latencies, feed health) goes to a SQLite WAL database at
least once a second; fills and orders are written as they happen.
"""
from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
import logging
import math
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from typing import Any, Callable, Optional

import numpy as np

from hftcore.binance import BinanceDecoder
from hftcore.book import L2Book
from hftcore.quoting import NO_ASK, NO_BID
from hftcore.sync import EventNormalizer

from hftmm.backtesting.reference import (EV_BOOK_INVALID, EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVF_BEGIN, EVF_END,
                                         Event)
from hftmm.captures import decoder_units
from hftmm.config import RiskConfig, TradingConfig
from hftmm.errors import ConnectError, HftmmError
from hftmm.data_ingestion.connector import ENDPOINTS, BinanceConnector
from hftmm.execution.filters import SymbolFilters
from hftmm.execution.orders import Fill, Order
from hftmm.execution.ratelimits import RateLimiter
from hftmm.live.gateway import GatewayEvent
from hftmm.live.paper import PaperConfig, PaperGateway
from hftmm.strategy.pricer import AvellanedaStoikovPricer, QuoteParameters
from hftmm.strategy.quote_manager import QuoteManager

log = logging.getLogger(__name__)

__all__ = ["LiveEngine", "StrategyCore", "build_strategy", "fetch_exchange_info", "quote_parameters"]

MODES = ("paper", "testnet", "live")


def fetch_exchange_info(rest_url: str, symbol: str, market: str = "spot", timeout_s: float = 10.0) -> dict:
    """``GET /api/v3/exchangeInfo?symbol=`` (``/fapi/v1`` on USD-M). A URL that
    cannot be reached or answers an error is a :class:`ConnectError` naming it."""
    path = "/api/v3/exchangeInfo" if market == "spot" else "/fapi/v1/exchangeInfo"
    url = f"{rest_url.rstrip('/')}{path}?{urllib.parse.urlencode({'symbol': symbol.upper()})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
        raise ConnectError(f"GET {url}: HTTP {exc.code} {body or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectError(f"GET {url}: {getattr(exc, 'reason', None) or exc} (is anything listening there?)") \
            from None
    except ValueError as exc:
        raise ConnectError(f"GET {url}: the answer is not JSON ({exc})") from None


def quote_parameters(trading: TradingConfig) -> QuoteParameters:
    return QuoteParameters(gamma=trading.gamma, T=trading.time_horizon, min_spread=trading.min_spread,
                           model=trading.model, rolling=trading.rolling_horizon, xi=trading.xi,
                           fair_value=trading.fair_value)


def _f(x: Any) -> Optional[float]:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def build_strategy(trading: TradingConfig, risk: RiskConfig, tick_size: str, lot_size: str, gateway: Any, *,
                   risk_manager: Any = None, filters: Optional[SymbolFilters] = None,
                   rate_limiter: Optional[RateLimiter] = None, on_fill: Optional[Callable] = None,
                   on_order: Optional[Callable] = None, id_prefix: str = "hftmm",
                   quote_asset: str = "") -> "StrategyCore":
    """Pricer, quote manager and book for a symbol whose market data come in
    ``tick_size``/``lot_size`` units -- built the way the backtester builds its
    strategy from the same settings (``hftmm.backtesting.engine.kernel_params``):
    order size in whole lots, the pricer's inventory limit = ``risk.max_position``."""
    t = trading
    lot = float(lot_size)
    order_lots = max(int(round(t.order_size / lot)), 1)
    order_qty = order_lots * lot
    pricer = AvellanedaStoikovPricer(
        tick_size=float(tick_size), max_inventory=risk.max_position if risk.max_position > 0 else math.inf,
        ewma_half_life=t.ewma_half_life, lot_size=lot, order_size=order_qty, k=t.k, A=t.A,
        estimate_intensity=t.estimate_intensity, intensity_window=t.intensity_window,
        intensity_refit=t.intensity_refit)
    qm = QuoteManager(t.symbol, pricer, risk_manager, params=quote_parameters(t), gateway=gateway,
                      filters=filters, rate_limiter=rate_limiter, order_size=order_qty,
                      requote_threshold=t.requote_threshold, refresh_interval=t.quote_refresh_interval,
                      min_order_lifetime=t.min_order_lifetime, post_only=t.post_only,
                      inventory_sizing=t.inventory_sizing, tick_size=tick_size, lot_size=lot_size,
                      quote_asset=quote_asset, on_fill=on_fill, on_order=on_order, id_prefix=id_prefix)
    return StrategyCore(qm, tick_size, lot_size)


class StrategyCore:
    """The strategy side: its own book from the normalised events, the quote
    manager (with its pricer) on top. ``on_market(event, now_ns)`` is the
    backtester's ``_local_event``, step for step."""

    def __init__(self, qm: QuoteManager, tick_size: str, lot_size: str) -> None:
        self.qm = qm
        self.book = L2Book(tick_size, lot_size)
        self.lot = float(lot_size)
        self.trades = 0
        self.trade_volume = 0.0
        self.book_invalid = 0
        self.book_valid = True            # False from a BOOK_INVALID record to the next snapshot

    def on_market(self, e: Event, now: int) -> None:
        """A market event at its visible time ``now`` [ns]."""
        book = self.book
        if e.kind == EV_DEPTH:
            book.apply(e.side, e.px, e.qty)
        elif e.kind == EV_SNAPSHOT:
            if e.flags & EVF_BEGIN:
                book.clear()
                self.book_valid = True
            book.apply(e.side, e.px, e.qty)
        elif e.kind == EV_TRADE:
            self.trades += 1
            self.trade_volume += e.qty * self.lot
            self.qm.on_trade(now, e.px)
            return
        elif e.kind == EV_BOOK_INVALID:
            # the book is unknown until the next snapshot (gap, crossed, reset):
            # as the backtester, forget it and cancel every working order now
            self.book_invalid += 1
            self.book_valid = False
            book.clear()
            self.qm.pricer.on_book(now, NO_BID, NO_ASK)     # no top: trades feed no intensity fit
            self.qm.now = now
            self.qm.cancel_all_orders("book invalid")
            return
        else:
            return
        if not (e.flags & EVF_END) or not self.book_valid:
            return
        bb, ba = book.best_bid(), book.best_ask()
        self.qm.on_book_change(now, NO_BID if bb is None else bb, NO_ASK if ba is None else ba,
                               book.best_bid_qty(), book.best_ask_qty())

    def on_records(self, out: np.ndarray) -> None:
        """Normalised EVENT_DTYPE records, each seen at its receive time (live trading)."""
        for r in out.tolist():
            self.on_market(Event(r[0], r[1] if r[1] > 0 else r[0], r[2], r[3], r[7], r[8], r[9]), r[0])


class LiveEngine:
    """Runs the market maker for one symbol. Units in brackets.

    trading, risk: the configs (``TradingConfig``, ``RiskConfig``); mode "paper" |
    "testnet" | "live"; gateway: the order gateway for testnet/live (paper builds
    its own from ``paper``: :class:`PaperConfig`); rest_url / ws_url: market data
    endpoints (default: Binance's for the mode); exchange_info: skip fetching it;
    state_db: path of the SQLite state store (None: no store); status: a
    ``StatusLine`` (or None); record_dir: also record the raw feed there (the
    recorder's format, for ``hftmm data convert`` and a backtest of the session);
    connector_options: extra :class:`BinanceConnector` arguments.
    """

    def __init__(self, trading: TradingConfig, risk: RiskConfig, *, mode: str = "paper",
                 gateway: Any = None, paper: Optional[PaperConfig] = None,
                 rest_url: Optional[str] = None, ws_url: Optional[str] = None,
                 exchange_info: Optional[dict] = None, state_db: Optional[str] = None,
                 status: Any = None, record_dir: Optional[str] = None,
                 connector_options: Optional[dict] = None, risk_manager: Any = None,
                 publish_interval_s: float = 1.0, record_decisions: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode != "paper" and gateway is None:
            raise ValueError(f"mode {mode!r} needs an order gateway")
        self.trading, self.risk_config, self.mode = trading, risk, mode
        self.market = trading.market
        default_rest, default_ws = ENDPOINTS[(self.market, mode != "live")]
        self.rest_url = (rest_url or default_rest).rstrip("/")
        self.ws_url = (ws_url or default_ws).rstrip("/")
        self.paper_config = paper or PaperConfig()
        self._gateway_arg = gateway
        self._info = exchange_info
        self.state_db = state_db
        self.status_line = status
        self.record_dir = record_dir
        self.connector_options = dict(connector_options or {})
        self.publish_interval_ns = int(publish_interval_s * 1e9)
        self.unconfirmed: list[str] = []    # client ids not confirmed cancelled at the end
        self._risk_arg = risk_manager
        self.record_decisions = record_decisions
        self._q: "queue.Queue[tuple]" = queue.Queue()
        self._stop = threading.Event()
        self.end_reason = ""
        self.store = None
        self.session_id: Optional[str] = None
        self.stats = {"frames": 0, "events": 0, "malformed": 0, "gateway_events": 0, "kills": 0}
        self.started_ns = 0
        self._last_publish_ns = 0
        self._last_timer_ns = 0
        self._last_local_ns = 0
        self._last_exch_ns = 0
        self._feed_lat_ms = float("nan")
        self._lat_base: Optional[tuple[int, int]] = None

    # ------------------------------------------------------------ set-up
    def _setup(self) -> None:
        t = self.trading
        info = self._info if self._info is not None else fetch_exchange_info(self.rest_url, t.symbol, self.market)
        self.exchange_info = info
        self.filters = SymbolFilters.from_exchange_info(info, t.symbol)
        tick, lot = decoder_units(info, t.symbol)      # the market data's units (= the store's)
        self.tick_s, self.lot_s = tick, lot
        self.tick, self.lot = float(tick), float(lot)
        strict_tick, strict_lot = decoder_units(info, t.symbol, strict=True)
        if abs(float(strict_tick) - t.tick_size) > 1e-12 or abs(float(strict_lot) - t.lot_size) > 1e-12:
            log.info("%s: the exchange's tickSize %s / stepSize %s are used (config says %s / %s)", t.symbol,
                     strict_tick, strict_lot, t.tick_size, t.lot_size)
        self.risk = self._risk_arg if self._risk_arg is not None else self._make_risk()
        sym = next((s for s in info.get("symbols", []) if s.get("symbol") == t.symbol), {})
        base_asset, quote_asset = sym.get("baseAsset", ""), sym.get("quoteAsset", "")
        if self.mode == "paper":
            if base_asset and quote_asset:
                self.paper_config = dataclasses.replace(self.paper_config, base_asset=base_asset,
                                                        quote_asset=quote_asset)
            self.gateway = PaperGateway(t.symbol, tick, lot, self.paper_config)
            rate_limiter = None          # the simulated exchange has none
        else:
            self.gateway = self._gateway_arg
            rate_limiter = getattr(self.gateway, "rate_limiter", None) or RateLimiter.from_exchange_info(info)
            if hasattr(self.gateway, "rate_limiter"):
                # one limiter: the QuoteManager paces orders, the gateway keeps it in sync with the server
                self.gateway.rate_limiter = rate_limiter
        self.core = build_strategy(t, self.risk_config, tick, lot, self.gateway, risk_manager=self.risk,
                                   filters=self.filters, rate_limiter=rate_limiter, on_fill=self._on_fill,
                                   on_order=self._on_order, id_prefix=f"hftmm{self.mode[0]}",
                                   quote_asset=quote_asset)
        self.qm = self.core.qm
        self.qm.record_decisions = self.record_decisions
        self.base_asset = base_asset
        self.position_baseline: Optional[Decimal] = None
        if self.mode != "paper":
            # a real account: no quote until the position is read from its balances
            self.qm.position_known = False
        self.pricer = self.qm.pricer
        self.book = self.core.book
        if self.mode == "paper":
            self.gateway.on_market = self.core.on_market
        self.decoder = BinanceDecoder(tick, lot)
        self.normalizer = EventNormalizer(self.market, tick_size=self.tick)
        self.recorder = None
        if self.record_dir:
            from hftmm.data_ingestion.recorder import Recorder
            self.recorder = Recorder(self.record_dir, t.symbol, self.market).start()
        self.connector = BinanceConnector(t.symbol, self.market, rest_url=self.rest_url, ws_url=self.ws_url,
                                          tick_size=tick, lot_size=lot, on_raw=self._on_raw,
                                          **self.connector_options)
        if self.state_db:
            from hftmm.live.state import StateStore
            self.store = StateStore(self.state_db)
            cfg = {"trading": asdict(t), "risk": asdict(self.risk_config), "mode": self.mode,
                   "paper": asdict(self.paper_config) if self.mode == "paper" else None,
                   "rest_url": self.rest_url, "ws_url": self.ws_url}
            self.session_id = self.store.start_session(self.mode, t.symbol, self.market, cfg)

    def _reconcile_position(self, account: dict) -> None:
        """The first ``GET /api/v3/account`` of a real session: position = base balance
        (free + locked) minus the baseline -- configured, else this symbol's earlier
        session's in the state DB, else the balance now -- so a restart (kill -9
        included) keeps the inventory, and with it the position limit."""
        base = self.base_asset
        row = next((b for b in account.get("balances", []) if b.get("asset") == base), None)
        held = Decimal(str(row.get("free", "0"))) + Decimal(str(row.get("locked", "0"))) if row else Decimal(0)
        key = f"inventory_baseline:{self.mode}:{self.trading.symbol}:{base}"
        if self.trading.inventory_baseline is not None:
            baseline, source = Decimal(repr(self.trading.inventory_baseline)), "the configured inventory_baseline"
        elif self.store is not None and self.store.get_meta(key) is not None:
            baseline, source = Decimal(self.store.get_meta(key)), f"the earlier session's (state DB {self.state_db})"
        else:
            baseline, source = held, "the balance now (no earlier session in a state DB)"
        if self.store is not None and self.store.get_meta(key) is None:
            self.store.set_meta(key, str(baseline))
        self.position_baseline = baseline
        lot = Decimal(self.lot_s)
        lots = int((held - baseline) / lot)
        self.qm.inherit_position(lots)
        log.info("%s: position %s %s from the account (%s %s held, baseline %s from %s)", self.trading.symbol,
                 lots * lot, base, held, base, baseline, source)

    def _make_risk(self):
        from hftmm.strategy.risk import RiskManager
        return RiskManager(self.risk_config, clock=self._clock, on_kill=self._on_risk_kill)

    def _clock(self) -> int:
        """The engine's clock [ns]: the event clock in paper trading, else the wall clock."""
        gw = getattr(self, "gateway", None)
        if self.mode == "paper" and gw is not None and gw.now_ns:
            return gw.now_ns
        return time.time_ns()

    # ------------------------------------------------------------ threads -> engine
    def _on_raw(self, local_ns: int, frame: bytes) -> None:
        """Connector thread: a frame or a REST snapshot body, as received."""
        if self.recorder is not None:
            self.recorder.write(local_ns, frame)
        self._q.put(("raw", local_ns, frame))

    def _sink(self, ev: GatewayEvent) -> None:
        """Gateway threads (testnet/live)."""
        self._q.put(("gw", ev))

    def request_kill(self, reason: str, flatten: bool = False, source: str = "manual") -> None:
        """Thread-safe kill switch: cancel all, optionally flatten, stop quoting."""
        self._q.put(("kill", reason, flatten, source))

    def stop(self, reason: str = "stopped") -> None:
        """Thread-safe: finish the session (cancel everything, then return from run)."""
        self.end_reason = self.end_reason or reason
        self._stop.set()
        self._q.put(("wake",))

    # ------------------------------------------------------------ the loop
    def run(self, duration_s: Optional[float] = None) -> dict:
        """Run until ``duration_s`` [s] passes, :meth:`stop` is called or the input
        ends; then cancel every order and return a summary."""
        self._setup()
        self.started_ns = time.time_ns()
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        try:
            self.gateway.start(self.qm.on_gateway_event if self.mode == "paper" else self._sink)
            self.connector.start()     # ConnectError when the endpoints cannot be reached
            log.info("%s: %s session started (market data %s)", self.trading.symbol, self.mode, self.ws_url)
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    self.end_reason = self.end_reason or f"duration {duration_s:g} s reached"
                    break
                try:
                    item = self._q.get(timeout=0.05)
                except queue.Empty:
                    item = None
                if item is not None:
                    self._handle(item)
                    # drain what is queued before the timers
                    for _ in range(1000):
                        try:
                            self._handle(self._q.get_nowait())
                        except queue.Empty:
                            break
                self._timers()
        except HftmmError as exc:
            self.end_reason = f"error: {exc}"
            raise
        except Exception as exc:
            self.end_reason = f"error: {type(exc).__name__}: {exc}"
            log.exception("%s: engine stopped by an error", self.trading.symbol)
            raise
        finally:
            self._shutdown()
        return self.summary()

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "raw":
            self._on_frame(item[1], item[2])
        elif kind == "gw":
            self.stats["gateway_events"] += 1
            if item[1].kind == "account" and not self.qm.position_known:
                self._reconcile_position(item[1].data)
            self.qm.on_gateway_event(item[1])
        elif kind == "kill":
            self._kill(item[1], item[2], item[3])

    def _on_frame(self, local_ns: int, frame: bytes) -> None:
        self.stats["frames"] += 1
        line = b"%d " % local_ns + frame.strip() + b"\n"
        ev, st = self.decoder.decode_lines(line, final=True)
        if st["malformed"]:
            self.stats["malformed"] += st["malformed"]
            log.debug("%s: malformed frame skipped: %s", self.trading.symbol, st["errors"][:1])
            return
        if not len(ev):
            return
        out = self.normalizer.feed(ev)
        self._last_local_ns = local_ns
        exch = int(ev["exch_ts"][-1])
        if exch > 0:
            self._last_exch_ns = exch
            lat = local_ns - exch
            self._feed_lat_ms = lat / 1e6
            # latency above the lowest of the last minute: our clock and the
            # exchange's (or a replayed capture's) need not agree
            base = self._lat_base
            if base is None or lat < base[0] or local_ns - base[1] > 60_000_000_000:
                self._lat_base = base = (lat, local_ns)
            if self.risk is not None:
                self.risk.on_feed(exch + base[0], local_ns)
        if self.risk is not None:
            self.risk.on_book_state(self.normalizer.synced, now=self._clock())
        if not len(out):
            return
        self.stats["events"] += len(out)
        if self.mode == "paper":
            self.gateway.feed(out)
        else:
            self.core.on_records(out)

    # ------------------------------------------------------------ timers, kill, state
    def _timers(self) -> None:
        now = time.time_ns()
        if now - self._last_timer_ns < 50_000_000:
            return
        self._last_timer_ns = now
        synced = self.normalizer.synced
        if self.risk is not None:
            self.risk.on_book_state(synced, now=self._clock())
        if self.risk is not None and getattr(self.risk, "state", "") == "killed" \
                and self.qm.enabled:
            self._kill(self.risk.kill_reason or "risk", False, "risk")
        if self.mode != "paper":
            for o in self.qm.tracker.on_timeout_check(now):
                self.qm._query(o.client_order_id)
        if self.risk is not None:
            self.risk.on_equity(self._pnl(), now=self._clock())
        if now - self._last_publish_ns >= self.publish_interval_ns:
            self._last_publish_ns = now
            self._publish(now)
            self.qm.prune()                   # the tracker stays small in long sessions

    def _on_risk_kill(self, reason: str, flatten: bool) -> None:
        # called by the risk manager (on the engine thread): act at once
        self._kill(reason, flatten, "risk", from_risk=True)

    def _kill(self, reason: str, flatten: bool, source: str, from_risk: bool = False) -> None:
        if not self.qm.enabled and not flatten:
            return
        self.stats["kills"] += 1
        log.warning("%s: KILL SWITCH (%s): %s -- cancelling all orders%s", self.trading.symbol, source, reason,
                    " and flattening" if flatten else "")
        if self.risk is not None and not from_risk and getattr(self.risk, "state", "") != "killed":
            self.risk.kill(reason, flatten=flatten, source=source)   # calls back with from_risk=True
            return
        self.qm.enabled = False
        self.qm.cancel_all_orders(f"kill switch: {reason}")
        if self.mode != "paper":
            self.gateway.cancel_all(self.trading.symbol)
        if flatten:
            self.qm.flatten()
        self._record_risk("kill", f"{source}: {reason}" + (" (flatten)" if flatten else ""))

    def _record_risk(self, kind: str, detail: str) -> None:
        if self.store is not None:
            self.store.record_risk_event(kind, detail)

    def _drain_risk_events(self) -> None:
        if self.store is None or self.risk is None or not hasattr(self.risk, "take_events"):
            return
        for _ts, kind, detail in self.risk.take_events():
            self.store.record_risk_event(kind, detail)

    def _poll_commands(self) -> None:
        if self.store is None:
            return
        for cmd in self.store.pending_commands():
            cid, name, args = cmd.id, cmd.command, cmd.args or {}
            self.store.mark_consumed(cid)
            if name == "kill":
                self._kill(str(args.get("reason", "operator")), bool(args.get("flatten", False)), "command")
            elif name == "resume" and self.risk is not None and hasattr(self.risk, "reset_kill"):
                self.risk.reset_kill()
                self.qm.enabled = True
                self._record_risk("resume", "operator")
            elif name == "stop":
                self.stop("operator stop")

    def _mid(self) -> Optional[float]:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            return None
        return (bb + ba) * 0.5 * self.tick

    def _pnl(self) -> float:
        m = self._mid()
        return self.qm.equity(m) if m is not None else self.qm.cash

    def status(self) -> dict[str, Any]:
        """What the status line and the state store show (price units)."""
        bb, ba = self.book.best_bid(), self.book.best_ask()
        mid = self._mid()
        bid_o, ask_o = self.qm.open_quotes()
        risk = self.risk.publish_fields() if self.risk is not None and hasattr(self.risk, "publish_fields") else {}
        cst = self.connector.stats
        q = self.qm.last_quote
        now = time.time_ns()
        pnl = self._pnl()
        inten = self.pricer.intensity
        # the intensity in use: fitted when the fit is ready, else the configured one
        k, A = (inten.k, inten.A) if inten is not None and inten.ready else (self.pricer.k, self.pricer.A)
        return {
            "symbol": self.trading.symbol, "mode": self.mode,
            "mid": mid, "best_bid": None if bb is None else bb * self.tick,
            "best_ask": None if ba is None else ba * self.tick,
            "spread": None if bb is None or ba is None else (ba - bb) * self.tick,
            "bid_quote": None if bid_o is None else float(bid_o.price),
            "ask_quote": None if ask_o is None else float(ask_o.price),
            "bid_qty": None if bid_o is None else float(bid_o.qty),
            "ask_qty": None if ask_o is None else float(ask_o.qty),
            "position": float(self.qm.position), "cash": self.qm.cash,
            "equity": pnl, "pnl": pnl, "realized_pnl": self.qm.realized_pnl, "fees": self.qm.fees,
            "sigma": _f(self.pricer.sigma), "reservation": None if q is None else _f(q.reservation_price),
            "k": _f(k), "A": _f(A),
            "risk_state": str(risk.get("risk_state", "ok" if self.qm.enabled else "killed")),
            "kill_reason": risk.get("kill_reason"),
            "open_orders": len(self.qm.tracker.active_orders()), "orders_sent": self.qm.counters.orders_sent,
            "fills": self.qm.counters.fills,
            "order_rtt_ms": _f(risk.get("order_rtt_ms")),
            "feed_age_ms": None if not self._last_local_ns else (now - self._last_local_ns) / 1e6,
            "feed_latency_ms": _f(self._feed_lat_ms),
            "messages": cst.messages, "trades": self.core.trades, "trade_volume": self.core.trade_volume,
            "gaps": cst.gaps, "resyncs": cst.resyncs, "reconnects": getattr(cst, "reconnects", 0),
            "malformed": self.stats["malformed"] + cst.malformed, "synced": int(self.normalizer.synced),
        }

    def _publish(self, now: int) -> None:
        st = self.status()
        if self.status_line is not None:
            self.status_line.update(st)
        self._drain_risk_events()
        self._poll_commands()
        if self.store is not None:
            from hftmm.live.schema import STATUS_COLUMNS
            bids, asks = self._top_levels(20)
            self.store.publish({k: st[k] for k in STATUS_COLUMNS}, bids, asks)

    def _top_levels(self, n: int) -> tuple[list, list]:
        bt, bq, at, aq = self.book.top(n)
        return ([(float(t) * self.tick, float(q) * self.lot) for t, q in zip(bt, bq)],
                [(float(t) * self.tick, float(q) * self.lot) for t, q in zip(at, aq)])

    def _on_fill(self, fill: Fill, position_lots: int) -> None:
        if self.store is not None:
            o = self.qm.tracker.orders.get(fill.client_order_id)
            sent = o.created_ns if o is not None else None
            self.store.record_fill(
                ts_ns=self._clock(), client_order_id=fill.client_order_id,
                order_id=None if o is None else o.order_id, trade_id=fill.trade_id,
                side=fill.side or (o.side if o else ""), price=float(fill.price), qty=float(fill.qty),
                fee=float(fill.commission), fee_asset=fill.commission_asset, maker=bool(fill.maker),
                position=position_lots * self.lot, mid=self._mid(),
                latency_ms=None if sent is None else (self._clock() - sent) / 1e6)

    def _on_order(self, o: Order) -> None:
        if self.store is not None:
            self.store.record_order(
                ts_ns=self._clock(), client_order_id=o.client_order_id, order_id=o.order_id, side=o.side,
                price=float(o.price), qty=float(o.qty), filled_qty=float(o.filled_qty), state=o.state.value,
                reason=o.history[-1].reason if o.history else "")

    # ------------------------------------------------------------ shutdown
    def _shutdown(self) -> None:
        """Stop quoting, cancel everything and wait for the answers, close down."""
        log.info("%s: shutting down (%s): cancelling all orders", self.trading.symbol, self.end_reason or "end")
        try:
            self.connector.stop()
        except Exception:  # pragma: no cover - best effort
            log.exception("connector stop failed")
        self.qm.record_decisions = False          # what follows is the shutdown, not the strategy
        self.qm.enabled = False
        self.qm.cancel_all_orders("shutdown")
        if self.mode == "paper":
            # the answers are due within the latency model; drain the queue and deliver them
            while True:
                try:
                    self._handle(self._q.get_nowait())
                except queue.Empty:
                    break
            self.gateway.finish()
        else:
            self.gateway.cancel_all(self.trading.symbol)
            deadline = time.monotonic() + 10.0
            while self.qm.tracker.active_orders() and time.monotonic() < deadline:
                try:
                    self._handle(self._q.get(timeout=0.1))
                except queue.Empty:
                    pass
            left = self.qm.tracker.active_orders()
            self.unconfirmed = [o.client_order_id for o in left]
            if left:
                log.error("%s: %d orders not confirmed cancelled at shutdown: %s", self.trading.symbol, len(left),
                          ", ".join(self.unconfirmed))
        try:
            self.gateway.stop()
        finally:
            if self.recorder is not None:
                self.recorder.stop()
            st_now = time.time_ns()
            self._publish(st_now)
            if self.status_line is not None and hasattr(self.status_line, "close"):
                self.status_line.close()
            if self.store is not None:
                self.store.end_session(self.end_reason or "end")
                self.store.close()

    def summary(self) -> dict[str, Any]:
        st = self.status()
        c = self.qm.counters
        return {"mode": self.mode, "symbol": self.trading.symbol, "end_reason": self.end_reason,
                "frames": self.stats["frames"], "events": self.stats["events"], "quotes": c.quotes,
                "orders_sent": c.orders_sent, "cancels_sent": c.cancels_sent, "fills": c.fills,
                "rejected": c.rejected, "risk_blocked": c.risk_blocked, "filter_blocked": c.filter_blocked,
                "position": st["position"], "pnl": st["pnl"], "fees": st["fees"],
                "open_orders": st["open_orders"], "unconfirmed_orders": list(self.unconfirmed),
                "session_id": self.session_id}
