"""LiveEngine: the strategy core on Binance's live feed -- paper, testnet or production.

One strategy core for every driver. Each frame is decoded and synced once, by
the connector (:class:`hftmm.data_ingestion.BinanceConnector` with a
``BookSync(emit_events=True)``); the records its sync applies, and each trade
and bookTicker, go straight into the compiled driver loop
(:class:`hftcore.backtest.ReplayKernel`) on the connector's thread, so the
strategy decides in the frame that triggered it -- the same records, in the
same order, that ``hftmm data convert`` makes of the session's recording.

* ``paper``: the kernel runs the exchange model too (:class:`hftcore.exchange.
  ExchangeModel`: queue position, latencies, fees) -- the backtest's compiled
  code -- so a paper session makes exactly the decisions and fills of the
  backtest of its recording.
* ``testnet`` / ``live``: no model; the trader's intents go to Binance through
  :class:`hftmm.strategy.QuoteManager` and a
  :class:`~hftmm.live.binance_gateway.BinanceGateway`, whose answers come back as
  the trader's reports. The position is read from the account before the
  first quote (base balance minus the baseline), so a restart keeps its inventory.

Threads: the connector's (frames), the gateway's (answers) and the engine's
(timers, state, commands) share one lock; a frame's receive time is stamped
under it, so the kernel's clock follows the order things are handled.

Safety: the kill switch (signal, ``hftmm kill``, the dashboard's button, a loss
limit in the trader) cancels every order, optionally flattens (a market order),
stops quoting and records why. At the end every order is cancelled before
:meth:`LiveEngine.run` returns; the summary names any not confirmed. The state
goes to a SQLite WAL database (``--state-db``) at least once a second.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Mapping, Optional

import numpy as np

from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftcore.exchange import ACK, CANCELED, FILL, REJECTED
from hftcore.strategy import CANCEL, NEW, REPLACE

from hftmm.captures import decoder_units
from hftmm.config import ExchangeModelConfig, RiskConfig, TradingConfig
from hftmm.data_ingestion.connector import ENDPOINTS, BinanceConnector
from hftmm.errors import ConnectError, HftmmError
from hftmm.execution.filters import SymbolFilters
from hftmm.execution.orders import Fill, Order
from hftmm.execution.ratelimits import RateLimiter
from hftmm.data.funding import MarkFunding, mark_price_update
from hftmm.live.gateway import GatewayEvent
from hftmm.live.schema import MARGIN_COLUMNS
from hftmm.strategy import core
from hftmm.strategy.quote_manager import AverageCost, QuoteManager
from hftmm.strategy.risk import RiskManager

log = logging.getLogger(__name__)

#: tag of the account read the position is taken from (see _read_account_when_settled)
_POSITION_READ = "hftmm-position-read"

__all__ = ["LiveEngine", "paper_kernel", "fetch_exchange_info", "MODES"]

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


def _f(x: Any) -> Optional[float]:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _name(spec: Any) -> str:
    if spec is None:
        return "MarketMaker"
    cls = spec if isinstance(spec, type) else type(spec)
    return f"{cls.__module__}.{cls.__qualname__}"


def _lots(value: Any, step: Decimal) -> int:
    return int(Decimal(str(value)) / step) if value not in (None, "", 0) else 0


def paper_kernel(trading: TradingConfig, risk: RiskConfig, exchange: ExchangeModelConfig, tick_size: str,
                 lot_size: str, market: str = "spot", strategy: Any = None) -> ReplayKernel:
    """Paper trading's driver loop: the backtest's, built by the backtester from the
    same configs (:func:`hftmm.backtesting.engine.build_kernel`), on the real receive
    times (``feed_latency`` None), no equity samples, intents and reports kept for
    the state store. Fed frame by frame it makes exactly the decisions and fills
    of the backtest of the session's recording (with ``clock_correction`` off when
    the receive clock ran behind the exchange's)."""
    from hftmm.backtesting.config import BacktestConfig
    from hftmm.backtesting.engine import build_kernel

    bt = BacktestConfig.compose(trading, exchange, risk, feed_latency=None)
    return build_kernel([bt], tick_size, lot_size, market, record_intents=True, strategies=[strategy],
                        sample_interval_ns=0)


class LiveEngine:
    """A live or paper session of one strategy on one symbol (see the module doc).

    ``trading`` (:class:`hftmm.config.TradingConfig`), ``risk``
    (:class:`~hftmm.config.RiskConfig`), ``exchange``
    (:class:`~hftmm.config.ExchangeModelConfig`: paper's exchange model);
    ``strategy``: your own (a Python :class:`hftmm.strategy.Strategy` or a compiled
    :class:`hftcore.strategy.Strategy`, a class or an instance -- see
    :func:`hftmm.strategy.core.make_strategy`; None: the built-in market maker from
    ``trading``); ``gateway`` (testnet / live); ``rest_url`` / ``ws_url`` (default:
    Binance's for the mode); ``exchange_info`` (default: fetched); ``state_db``;
    ``status`` (a status line); ``record_dir`` (record the raw feed);
    ``connector_options``; ``publish_interval_s``; ``record_decisions``: keep every
    intent (``decisions``, for tests).
    """

    def __init__(self, trading: TradingConfig, risk: RiskConfig, *, mode: str = "paper",
                 exchange: Optional[ExchangeModelConfig] = None, strategy: Any = None, gateway: Any = None,
                 rest_url: Optional[str] = None, ws_url: Optional[str] = None,
                 exchange_info: Optional[dict] = None, state_db: Optional[str] = None,
                 status: Any = None, record_dir: Optional[str] = None,
                 connector_options: Optional[dict] = None, publish_interval_s: float = 1.0,
                 record_decisions: bool = False, paper: Optional[ExchangeModelConfig] = None,
                 alerts: Any = None, metrics_port: Optional[int] = None,
                 metrics_addr: str = "127.0.0.1", session_group: Any = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode != "paper" and gateway is None:
            raise ValueError(f"mode {mode!r} needs an order gateway")
        self.trading, self.risk_config, self.mode = trading, risk, mode
        self.exchange_config = exchange or paper or ExchangeModelConfig()
        self.market = trading.market
        default_rest, default_ws = ENDPOINTS[(self.market, mode != "live")]
        self.rest_url = (rest_url or default_rest).rstrip("/")
        self.ws_url = (ws_url or default_ws).rstrip("/")
        self._strategy_arg = strategy
        self.gateway = gateway
        self._info = exchange_info
        self.state_db = state_db
        self.status_line = status
        self.record_dir = record_dir
        self.connector_options = dict(connector_options or {})
        self.publish_interval_ns = int(publish_interval_s * 1e9)
        self.record_decisions = record_decisions
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self.end_reason = ""
        self.store = None
        self.session_id: Optional[str] = None
        self.stats = {"frames": 0, "events": 0, "gateway_events": 0, "kills": 0}
        self.unconfirmed: list[str] = []    # client ids not confirmed cancelled at the end
        self._position_read_sent = False    # the account read for the position is out
        self._position_read_at = 0.0        # not before (monotonic s; after a failed read)
        self._tagged_reads = hasattr(gateway, "read_account")
        self.decisions: list = []           # INTENT_DTYPE arrays (record_decisions)
        self.started_ns = 0
        self._last_publish_ns = 0
        self._last_local_ns = 0
        self._feed_lat_ms = float("nan")
        self._lat_base: Optional[tuple[int, int]] = None
        self._paper_orders: dict[int, tuple[int, int, int, int]] = {}   # id -> side, px, lots, filled
        self._paper_fill_log: list = []
        self._paper_cost: Any = None
        self.qm: Optional[QuoteManager] = None
        self.recorder = None
        self._alerts_arg = alerts            # an AlertConfig or an Alerter (None: no alerts)
        self.alerter: Any = None
        self._feed_seen = (0, 0)             # the connector's (resyncs, reconnects) already reported
        self._reconnect_times: list[int] = []
        self.metrics_port, self.metrics_addr = metrics_port, metrics_addr
        self.session_group = session_group   # a SessionGroup: several symbols, one state DB lock
        self.setup_done = threading.Event()  # set once the session is set up (or failed to be)
        self.metrics: Any = None             # the Prometheus exporter (metrics_port)
        self._feed_hist: Any = None
        self.futures_risk: Any = None        # USD-M testnet/live: FuturesRisk, once the brackets are known
        self._mark_funding: Any = None       # USD-M paper: funding from the markPrice stream
        self._mark: Optional[tuple[Decimal, int]] = None   # USD-M live: the stream's mark price, receive ns

    # ------------------------------------------------------------ set-up
    def _setup(self) -> None:
        t, r = self.trading, self.risk_config
        info = self._info if self._info is not None else fetch_exchange_info(self.rest_url, t.symbol, self.market)
        self.exchange_info = info
        self.filters = SymbolFilters.from_exchange_info(info, t.symbol)
        tick, lot = decoder_units(info, t.symbol)      # the market data's units (= the store's)
        self.tick_s, self.lot_s = tick, lot
        self.tick, self.lot = float(tick), float(lot)
        sym = next((s for s in info.get("symbols", []) if s.get("symbol") == t.symbol), {})
        self.base_asset, self.quote_asset = sym.get("baseAsset", ""), sym.get("quoteAsset", "")
        self.book = L2Book(tick, lot)
        if self.mode == "paper":
            if self.exchange_config.feed_latency is not None:
                log.warning("%s: exchange.feed_latency=%g ignored in paper trading (it sees the real feed)",
                            t.symbol, self.exchange_config.feed_latency)
            self.kernel = paper_kernel(t, r, self.exchange_config, tick, lot, self.market, self._strategy_arg)
            if self.market == "usdm":
                self._mark_funding = MarkFunding(t.symbol, tick)
            self.strategy, self.trader = self.kernel.agent(0)
            self._paper_cost = AverageCost(self.lot)
        else:
            self.strategy = core.make_strategy(self._strategy_arg, t, r, self.tick, self.lot)
            step = Decimal(lot)
            self.trader = core.trader(r, self.tick, self.lot,
                                      min_lots=max(1, _lots(self.filters.min_qty, step)),
                                      max_order_lots=_lots(self.filters.max_qty, step),
                                      min_notional=float(self.filters.min_notional or 0))
            # one book: the connector's sync keeps it, the kernel re-applies the same records
            # (idempotent) for the strategy's events
            self.kernel = ReplayKernel(self.book, [(self.strategy, self.trader)], None, -1, 0, False)
        self.book = self.kernel.book
        self.risk = RiskManager(r, clock=self._clock, trader=self.trader, on_kill=self._on_kill,
                                watch_book=self.mode != "paper")
        if self.mode != "paper":
            rate_limiter = getattr(self.gateway, "rate_limiter", None) or RateLimiter.from_exchange_info(info)
            if hasattr(self.gateway, "rate_limiter"):
                # one limiter: the order manager paces orders, the gateway keeps it in sync with the server
                self.gateway.rate_limiter = rate_limiter
            self.qm = QuoteManager(t.symbol, self.trader, self.gateway, filters=self.filters,
                                   rate_limiter=rate_limiter, tick_size=tick, lot_size=lot,
                                   quote_asset=self.quote_asset, risk=self.risk, clock=self._clock,
                                   id_prefix=f"hftmm{self.mode[0]}", on_fill=self._on_live_fill,
                                   on_order=self._on_order, reduce_only_market=self.market == "usdm")
            self.qm.on_report = self._report
            # a real account: no quote until the position is read from its balances
            self.risk.set_condition("position", "position not read from the account yet")
            self.risk.set_condition("user_stream", "user data stream not subscribed yet")
        if self.record_dir:
            from hftmm.data_ingestion.recorder import Recorder
            self.recorder = Recorder(self.record_dir, t.symbol, self.market).start()
            # the units of the recording: ``hftmm data convert --exchange-info`` makes the
            # store's ticks and lots the session's (else it infers them from the data)
            self.exchange_info_path = os.path.join(self.record_dir, f"exchangeInfo-{t.symbol}.json")
            tmp = self.exchange_info_path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(info, fh)
            os.replace(tmp, self.exchange_info_path)
        self.connector = BinanceConnector(t.symbol, self.market, rest_url=self.rest_url, ws_url=self.ws_url,
                                          tick_size=tick, lot_size=lot, on_raw=self._on_raw,
                                          on_sync=self._on_sync, on_trade=self._on_trade,
                                          on_book_ticker=self._on_ticker, lock=self.lock,
                                          # paper: the exchange model must see the book as it was before
                                          # each record, as in the backtest -- the kernel keeps its own
                                          book=None if self.mode == "paper" else self.book,
                                          **self.connector_options)
        if self.state_db:
            from hftmm.live.state import StateStore
            self.store = StateStore(self.state_db, group=self.session_group)
            cfg = {"trading": asdict(t), "risk": asdict(r), "mode": self.mode,
                   "exchange": asdict(self.exchange_config) if self.mode == "paper" else None,
                   "rest_url": self.rest_url, "ws_url": self.ws_url,
                   "strategy": _name(self._strategy_arg)}
            try:
                self.session_id = self.store.start_session(self.mode, t.symbol, self.market, cfg)
            except BaseException:       # SessionInUse: one session per state database
                self.store.close()
                self.store = None
                raise
        self._setup_alerts()

    def _setup_alerts(self) -> None:
        a = self._alerts_arg
        if a is None:
            return
        from hftmm.ops.alerts import Alerter

        src = {"symbol": self.trading.symbol, "mode": self.mode, "session_id": self.session_id}
        self.alerter = a if isinstance(a, Alerter) else Alerter(a, src)
        self.alerter.set_source(**src)
        signer = getattr(self.gateway, "signer", None)
        for attr in ("api_key", "secret", "_secret", "secret_key"):
            v = getattr(signer, attr, None)
            self.alerter.add_secret(v if isinstance(v, str) else None)

    def _alert(self, kind: str, text: str, **fields: Any) -> None:
        if self.alerter is not None:
            self.alerter.alert(kind, text, **fields)

    def _clock(self) -> int:
        return time.time_ns()

    # ------------------------------------------------------------ the connector's thread (under the lock)
    def _on_raw(self, local_ns: int, frame: bytes) -> None:
        if self.recorder is not None:
            self.recorder.write(local_ns, frame)
        self.stats["frames"] += 1
        self._last_local_ns = local_ns
        msg = mark_price_update(frame) if self.market == "usdm" and b"markPriceUpdate" in frame else None
        if msg is None:
            return
        if self._mark_funding is None:
            # testnet/live: the exchange's mark (what liquidates) for the margin checks
            if str(msg.get("s", "")).upper() == self.trading.symbol:
                try:
                    self._mark = (Decimal(str(msg["p"])), local_ns)
                except (KeyError, ArithmeticError, ValueError):
                    pass
        else:
            # paper: the funding settlement the markPrice stream reveals, at this frame's
            # receive time -- where data convert puts it in the recording's store
            recs = self._mark_funding.feed(local_ns, msg)
            if len(recs):
                self.stats["events"] += self.kernel.run(recs)
                self.stats["fundings"] = self.stats.get("fundings", 0) + len(recs)
                self._after(local_ns)

    def _on_sync(self, sync: Any, local_ns: int) -> None:
        # (book validity is the kernel's: the sync's BOOK_INVALID records and snapshots)
        self.risk.on_message(local_ns)
        self.stats["events"] += self.kernel.feed_sync(sync)
        self._after(local_ns)

    def _on_trade(self, trade: Any) -> None:
        # the message's own records: the same ones ``data convert`` makes of the recording
        local_ns = self._last_local_ns
        self.risk.on_message(local_ns)
        self.stats["events"] += self.kernel.run(trade.to_events(local_ns))
        self._feed_latency(trade.event_time_ns, local_ns)
        self._after(local_ns)

    def _on_ticker(self, t: Any) -> None:
        local_ns = self._last_local_ns
        self.risk.on_message(local_ns)
        self.stats["events"] += self.kernel.run(t.to_events(local_ns))
        exch = t.event_time_ns or t.transaction_time_ns
        if exch:
            self._feed_latency(exch, local_ns)
        self._after(local_ns)

    def _feed_latency(self, exch: int, local_ns: int) -> None:
        if exch <= 0:
            return
        lat = local_ns - exch
        self._feed_lat_ms = lat / 1e6
        if self._feed_hist is not None:
            self._feed_hist.observe_ms(lat / 1e6)
        # latency above the lowest of the last minute: our clock and the exchange's
        # (or a replayed capture's) need not agree
        base = self._lat_base
        if base is None or lat < base[0] or local_ns - base[1] > 60_000_000_000:
            self._lat_base = base = (lat, local_ns)
        self.risk.on_feed(exch + base[0], local_ns)

    def _after(self, now: int) -> None:
        """After the kernel took something: a kill the trader tripped itself, and
        (live) the intents out."""
        if self.trader.killed and not self.risk.killed:
            self.risk.sync_trader(now)
        if self.qm is not None:
            # a refusal the order manager reports at once may make the strategy act
            # again: a few rounds here, the rest on the next frame or timer
            for _ in range(4):
                intents = self.trader.take_intents()
                if not len(intents):
                    break
                if self.record_decisions:
                    self.decisions.append(intents)
                self.qm.send(intents)

    # ------------------------------------------------------------ the gateway's threads (testnet / live)
    def _sink(self, ev: GatewayEvent) -> None:
        with self.lock:
            self.stats["gateway_events"] += 1
            k = ev.kind
            if "position" in self.risk._extra and k in ("account", "error") and self._position_read_sent \
                    and (ev.client_order_id == _POSITION_READ or not self._tagged_reads):
                if k == "account":
                    self._reconcile_position(ev.data)
                    self._futures_account(ev.data)
                else:                               # that read failed: again after a second
                    self._position_read_sent = False
                    self._position_read_at = time.monotonic() + 1.0
            elif k in ("account", "account_position", "margin_call") and self.market == "usdm":
                self._futures_account(ev.data, kind=k)
            elif k == "user_stream":
                ok = ev.data.get("state") == "subscribed"
                self.risk.set_condition("user_stream", None if ok else
                                        f"user data stream {ev.data.get('state')}: not quoting until it is back")
            self.qm.on_gateway_event(ev)
            self._read_account_when_settled()
            self._after(ev.ts_ns or time.time_ns())

    def _futures_account(self, data: Mapping[str, Any], kind: str = "account") -> None:
        """USD-M: the account's wallet and position into the margin checks; a margin call alerts."""
        if self.market != "usdm" or self.mode == "paper":
            return
        if self.futures_risk is None:
            brackets = getattr(self.gateway, "brackets", None)
            if brackets is None:
                return
            from hftmm.live.futures_risk import FuturesRisk

            r = self.risk_config
            self.futures_risk = FuturesRisk(self.trading.symbol, brackets, r.max_margin_ratio,
                                            r.min_liquidation_distance, r.max_leverage)
        if kind == "account":
            self.futures_risk.on_account(data)
        elif kind == "account_position" and data.get("e") == "ACCOUNT_UPDATE":
            self.futures_risk.on_account_update(data)
            if data.get("m") == "FUNDING_FEE":
                self._book_funding(data)
        elif kind == "margin_call":
            log.warning("%s: MARGIN_CALL from Binance: %s", self.trading.symbol, dict(data))
            self._alert("margin_call", "Binance margin call", cross_wallet=data.get("cw"),
                        positions=data.get("p"))

    def _book_funding(self, a: Mapping[str, Any]) -> None:
        """The exchange's funding fee (``ACCOUNT_UPDATE`` reason FUNDING_FEE, ``bc`` the
        wallet's change) into the trader's cash, so the PnL and its loss limits count it."""
        if self.session_group is not None:
            # several symbols on one account: a cross FUNDING_FEE names no symbol, so no leg can
            # tell its own share (the wallet has it all; per-leg PnL leaves funding out)
            if not getattr(self, "_funding_unattributed", False):
                self._funding_unattributed = True
                log.warning("%s: USD-M funding fees not booked per symbol in a multi-symbol session "
                            "(the account's wallet has them)", self.trading.symbol)
            return
        paid = -sum(float(b.get("bc") or 0) for b in a.get("B", ()) if isinstance(b, Mapping)
                    and b.get("a") == self.quote_asset)
        pos = self.trader.position * self.lot
        if paid and pos:
            self.trader.apply_funding(1.0, paid / pos)    # position x 1 x (paid / position) = paid
            log.info("%s: funding %+.8f %s paid on a position of %g", self.trading.symbol, paid,
                     self.quote_asset, pos)

    #: [ns] a markPrice update older than this is not used (the mid stands in)
    MARK_MAX_AGE_NS = 5_000_000_000

    def _check_margin(self, now: int) -> None:
        """USD-M: the margin limits at the exchange's mark price (markPrice@1s; the book's
        mid when the stream is older than MARK_MAX_AGE_NS) -- kill or pause (every tick)."""
        fr = self.futures_risk
        if fr is None or not fr.known or self.risk.killed:
            return
        if self._mark is not None and now - self._mark[1] <= self.MARK_MAX_AGE_NS:
            mark = self._mark[0]
        else:
            bb, ba = self.book.best_bid(), self.book.best_ask()
            if bb is None or ba is None:
                return
            mark = Decimal(bb + ba) / 2 * Decimal(str(self.tick_s))
        verdict, why = fr.check(mark)
        if verdict == "kill":
            log.error("%s: %s", self.trading.symbol, why)
            self.risk.kill(why, flatten=self.risk_config.flatten_on_kill, source="margin", now=now)
            self.kernel.flush()
        self.risk.set_condition("leverage", why if verdict == "pause" else None, now=now)

    def _read_account_when_settled(self) -> None:
        """The position comes from an account read *sent* after the open orders were
        seen and every order of an earlier session is final -- not from the reconcile's
        read, sent alongside the open orders' -- so none of their fills can be missing
        from it, nor counted twice."""
        if self._position_read_sent or "position" not in self.risk._extra or not self.qm.open_orders_seen \
                or self.qm.adopted_open or time.monotonic() < self._position_read_at:
            return
        self._position_read_sent = True
        log.info("%s: reading the account for the position (the open orders are settled)", self.trading.symbol)
        if self._tagged_reads:
            self.gateway.read_account(_POSITION_READ)
        else:
            self.gateway.reconcile(self.trading.symbol)

    def _report(self, ts: int, tid: int, kind: int, px: int = 0, lots: int = 0, leaves: int = 0, fee: float = 0.0,
                taker: bool = False) -> bool:
        """The order manager's reports into the kernel (the trader applies them, the
        strategy hears of them)."""
        return self.kernel.report(0, ts, tid, kind, px, lots, leaves, fee, taker)

    def _reconcile_position(self, account: dict) -> None:
        """The first account read of a real session. Spot (``GET /api/v3/account``):
        position = base balance (free + locked) minus the baseline -- configured, else
        this symbol's earlier session's in the state DB, else the balance now -- so a
        restart (kill -9 included) keeps the inventory, and with it the position limit.
        USD-M (``GET /fapi/v3/account``): the symbol's one-way ``positionAmt`` itself."""
        base = self.base_asset
        if self.market == "usdm":
            row = next((p for p in account.get("positions", []) if p.get("symbol") == self.trading.symbol
                        and p.get("positionSide", "BOTH") == "BOTH"), None)
            held = Decimal(str(row.get("positionAmt", "0"))) if row else Decimal(0)
            baseline, source = Decimal(0), "nothing: a USD-M position is positionAmt"
        else:
            row = next((b for b in account.get("balances", []) if b.get("asset") == base), None)
            held = Decimal(str(row.get("free", "0"))) + Decimal(str(row.get("locked", "0"))) if row else Decimal(0)
            baseline, source = self._baseline(held)
        lot = Decimal(self.lot_s)
        lots = int((held - baseline) / lot)
        self.trader.inherit_position(lots)
        self.qm.position_known = True     # fills of orders it did not place count from now on
        self.risk.set_condition("position", None)
        log.info("%s: position %s %s from the account (%s %s held, baseline %s from %s)", self.trading.symbol,
                 lots * lot, base, held, base, baseline, source)

    def _baseline(self, held: Decimal) -> tuple[Decimal, str]:
        """Spot: the base holding that counts as flat, and where it came from."""
        key = f"inventory_baseline:{self.mode}:{self.trading.symbol}:{self.base_asset}"
        if self.trading.inventory_baseline is not None:
            baseline, source = Decimal(repr(self.trading.inventory_baseline)), "the configured inventory_baseline"
        elif self.store is not None and self.store.get_meta(key) is not None:
            baseline, source = Decimal(self.store.get_meta(key)), f"the earlier session's (state DB {self.state_db})"
        else:
            baseline, source = held, "the balance now (no earlier session in a state DB)"
        if self.store is not None and self.store.get_meta(key) is None:
            self.store.set_meta(key, str(baseline))
        return baseline, source

    # ------------------------------------------------------------ control (any thread)
    def request_kill(self, reason: str, flatten: bool = False, source: str = "manual") -> None:
        """The kill switch: cancel all, optionally flatten, stop quoting."""
        with self.lock:
            self.risk.kill(reason, flatten=flatten, source=source)
            self.kernel.flush()
            self._after(time.time_ns())

    def set_cap(self, lots: int) -> None:
        """A portfolio's cap on |position| with every order filled [lots] (-1: none): the
        trader refuses what would cross it; working orders that would are cancelled."""
        from hftmm.strategy.portfolio import apply_cap

        with self.lock:
            now = time.time_ns()
            if apply_cap(self.trader, lots, now):
                self.kernel.flush()
                self._after(now)

    def _on_kill(self, reason: str, flatten: bool) -> None:
        self.stats["kills"] += 1
        log.warning("%s: KILL SWITCH: %s -- cancelling all orders%s", self.trading.symbol, reason,
                    " and flattening" if flatten else "")
        if self.qm is not None:
            self.qm.cancel_all_orders(f"kill switch: {reason}")

    def stop(self, reason: str = "stopped") -> None:
        """Thread-safe: finish the session (cancel everything, then return from run)."""
        self.end_reason = self.end_reason or reason
        self._stop.set()

    # ------------------------------------------------------------ the loop
    def run(self, duration_s: Optional[float] = None) -> dict:
        """Run until ``duration_s`` [s] passes or :meth:`stop` is called; then cancel
        every order and return a summary."""
        try:
            self._setup()
        finally:
            self.setup_done.set()
        if self.metrics_port is not None:
            from hftmm.ops.metrics import MetricsExporter

            self.metrics = MetricsExporter(self, self.metrics_port, self.metrics_addr)
            self._feed_hist = self.metrics.feed_latency
            self.risk.on_rtt = self.metrics.order_rtt.observe_ms
        self.started_ns = time.time_ns()
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        try:
            if self.gateway is not None:
                self.gateway.start(self._sink)
            self.connector.start()     # ConnectError when the endpoints cannot be reached
            log.info("%s: %s session started (market data %s)", self.trading.symbol, self.mode, self.ws_url)
            self._alert("session_start", f"{self.mode} session started on {self.market} "
                                         f"(session {self.session_id or '-'})")
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    self.end_reason = self.end_reason or f"duration {duration_s:g} s reached"
                    break
                self._stop.wait(0.02)
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

    def _timers(self) -> None:
        now = time.time_ns()
        with self.lock:
            self.kernel.advance_local(now)       # reports and timers due without a frame
            if self.mode != "paper":
                # (a status condition: the kernel already keeps the trader off an invalid book;
                # paper leaves it out so that it decides exactly as the backtest of its recording)
                self.risk.on_book_state(self.connector.sync is not None and self.connector.sync.ready
                                        and self.kernel.book_valid, now=now)
            if self.qm is not None:
                self.qm.check_timeouts(now)
                self._read_account_when_settled()   # (also after a failed read, with no event to come)
                self._check_margin(now)
            self._after(now)
            self._events(now)
            if now - self._last_publish_ns >= self.publish_interval_ns:
                self._last_publish_ns = now
                self._publish(now)
                if self.qm is not None:
                    self.qm.prune()              # the tracker stays small in long sessions

    def _events(self, now: int) -> None:
        """Risk events and the feed's resyncs/reconnects since the last call: into the
        state store's risk_events and out as alerts (checked every timer tick, 20 ms)."""
        for ts, kind, detail in self.risk.take_events():
            if self.store is not None:
                self.store.record_risk_event(kind, detail, ts_ns=ts)
            if kind == "kill":
                self._alert("kill", f"kill switch: {detail}", position=self._position(), pnl=self._pnl())
            elif kind == "pause" and detail.startswith("feed stale"):
                self._alert("feed_down", f"market data down, quoting paused: {detail}")
            elif kind == "pause" and detail not in ("no market data yet", "session ending"):
                self._alert("risk_pause", f"quoting paused: {detail}")   # (start and end are not news)
            elif kind == "resume" and "no market data yet" not in detail and "session ending" not in detail:
                self._alert("risk_resume", f"quoting resumed ({detail})")
        cst = self.connector.stats
        resyncs, reconnects = cst.resyncs, getattr(cst, "reconnects", 0)
        seen_rs, seen_rc = self._feed_seen
        if resyncs > seen_rs:
            detail = f"book resynced ({resyncs - seen_rs} new, {resyncs} in the session; gaps {cst.gaps})"
            if self.store is not None:
                self.store.record_risk_event("resync", detail, ts_ns=now)
            self._alert("feed_resync", detail, resyncs=resyncs, gaps=cst.gaps)
        if reconnects > seen_rc:
            if self.store is not None:
                self.store.record_risk_event("reconnect", f"feed reconnected ({reconnects} in the session)",
                                             ts_ns=now)
            self._reconnect_times = [t for t in self._reconnect_times if now - t < 60_000_000_000]
            self._reconnect_times += [now] * (reconnects - seen_rc)
            storm = self.alerter.config.reconnect_storm if self.alerter is not None else 0
            if storm and len(self._reconnect_times) >= storm:
                self._alert("reconnect_storm", f"{len(self._reconnect_times)} feed reconnects within 60 s",
                            reconnects=reconnects)
        self._feed_seen = (resyncs, reconnects)

    def _position(self) -> float:
        return self.trader.position * self.lot

    def _poll_commands(self) -> None:
        if self.store is None:
            return
        for cmd in self.store.pending_commands():
            cid, name, args = cmd.id, cmd.command, cmd.args or {}
            if name == "kill":
                self.request_kill(str(args.get("reason", "operator")), bool(args.get("flatten", False)), "command")
            elif name == "resume":
                self.risk.reset_kill()
                self._record_risk("resume", "operator (a killed trader stays stopped: start a new session)")
            elif name == "stop":
                self.stop("operator stop")
            self.store.mark_consumed(cid)      # acted on: what hftmm kill waits for

    def _record_risk(self, kind: str, detail: str) -> None:
        if self.store is not None:
            self.store.record_risk_event(kind, detail)

    # ------------------------------------------------------------ state
    def _mid(self) -> Optional[float]:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            return None
        return (bb + ba) * 0.5 * self.tick

    _last_mid: Optional[float] = None

    def _pnl(self) -> float:
        """Cash + position marked at the mid -- the last valid one while the book resyncs."""
        m = self._mid() if self.kernel.book_valid else None
        if m is not None:
            self._last_mid = m
        m = m if m is not None else self._last_mid
        if m is None:
            return self.trader.cash
        return self.trader.cash + self.trader.position * self.lot * m

    def status(self) -> dict[str, Any]:
        """What the status line and the state store show (price units)."""
        bb, ba = self.book.best_bid(), self.book.best_ask()
        mid = self._mid()
        w_bid, w_ask = self.trader.working(0), self.trader.working(1)
        risk = self.risk.publish_fields()
        cst = self.connector.stats
        now = time.time_ns()
        pnl = self._pnl()
        st = self.strategy
        A, k = st.intensity if hasattr(st, "intensity") else (None, None)
        xm = self.kernel.exchange
        fills = self.trader.fills
        return {
            "symbol": self.trading.symbol, "mode": self.mode,
            "mid": mid, "best_bid": None if bb is None else bb * self.tick,
            "best_ask": None if ba is None else ba * self.tick,
            "spread": None if bb is None or ba is None else (ba - bb) * self.tick,
            "bid_quote": w_bid[-1][1] * self.tick if w_bid else None,
            "ask_quote": w_ask[-1][1] * self.tick if w_ask else None,
            "bid_qty": (w_bid[-1][2] - w_bid[-1][3]) * self.lot if w_bid else None,
            "ask_qty": (w_ask[-1][2] - w_ask[-1][3]) * self.lot if w_ask else None,
            "position": self.trader.position * self.lot, "cash": self.trader.cash,
            "equity": pnl, "pnl": pnl,
            "realized_pnl": self.qm.realized_pnl if self.qm is not None else self._paper_cost.realized_pnl,
            "fees": self.trader.fees,
            "sigma": _f(st.last_sigma), "reservation": _f(st.last_reservation), "k": _f(k), "A": _f(A),
            "risk_state": str(risk.get("risk_state")), "kill_reason": risk.get("kill_reason"),
            "open_orders": (len(self.qm.active_orders()) if self.qm is not None
                            else len(xm.open_orders(0)) if xm is not None else 0),
            "orders_sent": self.trader.sent, "fills": fills,
            "order_rtt_ms": _f(risk.get("order_rtt_ms")),
            "feed_age_ms": None if not self._last_local_ns else (now - self._last_local_ns) / 1e6,
            "feed_latency_ms": _f(self._feed_lat_ms),
            "messages": cst.messages, "trades": cst.trades, "trade_volume": None,
            "gaps": cst.gaps, "resyncs": cst.resyncs, "reconnects": getattr(cst, "reconnects", 0),
            "malformed": cst.malformed,
            "synced": int(bool(self.connector.sync is not None and self.connector.sync.ready)),
            "messages_lost": cst.messages_lost, "messages_expected": cst.messages_lost + cst.messages_received,
            "ids_lost": cst.ids_lost, "ids_expected": cst.ids_lost + cst.ids_received,
            "feeds_up": self.connector.feeds_up(),
            "feed_duplicates": cst.feed_duplicates,
            **self._margin_status(),
        }

    def _margin_status(self) -> dict[str, Optional[float]]:
        """USD-M testnet/live: the last margin evaluation (None elsewhere)."""
        last = self.futures_risk.last if self.futures_risk is not None else None
        if last is None:
            return dict.fromkeys(MARGIN_COLUMNS)
        return {"margin_ratio": _f(last.margin_ratio), "effective_leverage": _f(last.leverage),
                "liquidation_price": None if last.liquidation_price is None else _f(last.liquidation_price),
                "wallet_balance": _f(last.wallet)}

    def _publish(self, now: int) -> None:
        st = self.status()
        if self.status_line is not None:
            self.status_line.update(st)
        self._record_paper_activity()
        self._events(now)
        if self.store is not None:
            self._poll_commands()
            from hftmm.live.schema import STATUS_COLUMNS
            bids, asks = self._top_levels(20)
            self.store.publish({k: st[k] for k in STATUS_COLUMNS}, bids, asks)

    def _record_paper_activity(self) -> None:
        """Paper: the kernel's intents, reports and fills since the last call into the
        decisions (``record_decisions``) and the state store's orders and fills --
        drained every publish, so nothing grows in a long session."""
        k = self.kernel
        if k.exchange is None:
            return
        intents, reports, fills = k.take_intents(0), k.take_reports(0), k.take_fills(0)
        if self.record_decisions:
            if len(intents):
                self.decisions.append(intents)
            if len(fills):
                self._paper_fill_log.append(fills)
        for f in fills:
            self._paper_cost.fill(int(f["qty"]) if f["side"] == 0 else -int(f["qty"]), float(f["px"]) * self.tick)
        if self.store is None:
            self._paper_orders.clear()
            return
        po = self._paper_orders
        for it in intents:
            kind, oid = int(it["kind"]), int(it["id"])
            if kind in (NEW, REPLACE):
                po[oid] = (int(it["side"]), int(it["px"]), int(it["lots"]), 0)
                self._paper_order(int(it["ts"]), oid, "PENDING_NEW", "")
            if kind in (CANCEL, REPLACE):
                cid = oid if kind == CANCEL else int(it["cancel_id"])
                if cid in po:
                    self._paper_order(int(it["ts"]), cid, "PENDING_CANCEL", "replaced" if kind == REPLACE else "")
        for r in reports:
            kind, oid = int(r["kind"]), int(r["id"])
            if oid not in po:
                continue
            if kind == FILL:
                side, px, lots, filled = po[oid]
                po[oid] = (side, px, lots, filled + int(r["lots"]))
                state = "FILLED" if int(r["leaves"]) == 0 else "PARTIALLY_FILLED"
            else:
                state = {ACK: "NEW", CANCELED: "CANCELED", REJECTED: "REJECTED"}[kind]
            self._paper_order(int(r["ts"]), oid, state, "post-only" if kind == REJECTED else "")
            if state in ("FILLED", "CANCELED", "REJECTED"):
                del po[oid]
        for f in fills:
            side = "BUY" if f["side"] == 0 else "SELL"
            self.store.record_fill(
                ts_ns=int(f["report_ts"]), client_order_id=f"paper-{int(f['order_id'])}", order_id=int(f["order_id"]),
                side=side, price=float(f["px"]) * self.tick, qty=float(f["qty"]) * self.lot, fee=float(f["fee"]),
                fee_asset=self.quote_asset, maker=not bool(f["taker"]), position=float(f["position"]) * self.lot,
                mid=_f(f["mid"]), latency_ms=(int(f["exch_ts"]) - int(f["submit_ts"])) / 1e6)

    def _paper_order(self, ts: int, oid: int, state: str, reason: str) -> None:
        side, px, lots, filled = self._paper_orders[oid]
        self.store.record_order(ts_ns=ts, client_order_id=f"paper-{oid}", order_id=oid,
                                side="BUY" if side == 0 else "SELL", price=px * self.tick, qty=lots * self.lot,
                                filled_qty=filled * self.lot, state=state, reason=reason)

    def _top_levels(self, n: int) -> tuple[list, list]:
        bt, bq, at, aq = self.book.top(n)
        return ([(float(t) * self.tick, float(q) * self.lot) for t, q in zip(bt, bq)],
                [(float(t) * self.tick, float(q) * self.lot) for t, q in zip(at, aq)])

    def _on_live_fill(self, fill: Fill, position_lots: int) -> None:
        if self.store is not None:
            o = self.qm.tracker.orders.get(fill.client_order_id)
            sent = o.created_ns if o is not None else None
            now = time.time_ns()
            self.store.record_fill(
                ts_ns=now, client_order_id=fill.client_order_id,
                order_id=None if o is None else o.order_id, trade_id=fill.trade_id,
                side=fill.side or (o.side if o else ""), price=float(fill.price), qty=float(fill.qty),
                fee=float(fill.commission), fee_asset=fill.commission_asset, maker=bool(fill.maker),
                position=position_lots * self.lot, mid=self._mid(),
                latency_ms=None if sent is None else (now - sent) / 1e6)

    def _on_order(self, o: Order) -> None:
        if self.store is not None:
            self.store.record_order(
                ts_ns=time.time_ns(), client_order_id=o.client_order_id, order_id=o.order_id, side=o.side,
                price=float(o.price), qty=float(o.qty), filled_qty=float(o.filled_qty), state=o.state.value,
                reason=o.history[-1].reason if o.history else "")

    # ------------------------------------------------------------ shutdown
    def _await_cancels(self, wait_s: float = 10.0, retry_s: float = 1.0, max_pause_s: float = 70.0) -> None:
        """Wait [s] for every order to be confirmed cancelled. A cancel the exchange
        refused (or the gateway could not send during Binance's Retry-After pause)
        is sent again every ``retry_s``; a pause (not a ban) extends the wait to its
        end plus a few seconds, up to ``max_pause_s``."""
        start = time.monotonic()
        deadline, next_retry = start + wait_s, start + retry_s
        limiter = getattr(self.gateway, "rate_limiter", None)
        while self.qm.active_orders():
            now = time.monotonic()
            if limiter is not None and not limiter.is_banned():
                pause = limiter.pause_remaining()
                if pause > 0:
                    deadline = max(deadline, min(start + max_pause_s, now + pause + 5.0))
            if now >= deadline:
                break
            if now >= next_retry:
                next_retry = now + retry_s
                with self.lock:
                    self.qm.cancel_all_orders("shutdown: cancel again")
            time.sleep(0.05)

    def _shutdown(self) -> None:
        """Stop quoting, cancel everything and wait for the answers, close down."""
        log.info("%s: shutting down (%s): cancelling all orders", self.trading.symbol, self.end_reason or "end")
        try:
            self.connector.stop()
        except Exception:  # pragma: no cover - best effort
            log.exception("connector stop failed")
        if not hasattr(self, "kernel"):
            return
        with self.lock:
            self.risk.set_condition("shutdown", "session ending")     # cancels every order, sends nothing new
            self.kernel.flush()
            self._after(time.time_ns())
            if self.kernel.exchange is not None:
                # paper: every cancel reaches the model, every answer comes back
                t_x, t_l = self.kernel.clock
                self.kernel.drain(max(t_x, t_l) + 10_000_000_000)
            else:
                self.qm.cancel_all_orders("shutdown")
        if self.qm is not None:
            self._await_cancels()
            left = self.qm.active_orders()
            self.unconfirmed = [o.client_order_id for o in left]
            if left:
                log.error("%s: %d orders not confirmed cancelled at shutdown: %s", self.trading.symbol, len(left),
                          ", ".join(self.unconfirmed))
        try:
            if self.gateway is not None:
                self.gateway.stop()
        finally:
            if self.recorder is not None:
                self.recorder.stop()
            with self.lock:
                self._publish(time.time_ns())
            if self.status_line is not None and hasattr(self.status_line, "close"):
                self.status_line.close()
            if self.store is not None:
                self.store.end_session(self.end_reason or "end")
                self.store.close()
            if self.alerter is not None:
                c = self.trader.counters()
                left = self.unconfirmed
                self.alerter.alert(
                    "session_end", f"session ended: {self.end_reason or 'end'}; position {self._position():.8g}, "
                    f"PnL {self._pnl():.2f}, {c['fills']} fills"
                    + (f"; {len(left)} orders NOT confirmed cancelled: {', '.join(left)}" if left else ""),
                    severity="critical" if left or self.risk.killed else "info",
                    position=self._position(), pnl=self._pnl(), fills=c["fills"], unconfirmed=list(left))
                self.alerter.close()
            if self.metrics is not None:
                self.metrics.close()

    @property
    def paper_fills(self) -> np.ndarray:
        """Paper: the exchange model's fills so far (FILL_DTYPE; kept with ``record_decisions``)."""
        from hftcore.exchange import FILL_DTYPE

        return np.concatenate(self._paper_fill_log) if self._paper_fill_log else np.empty(0, FILL_DTYPE)

    def summary(self) -> dict[str, Any]:
        st = self.status()
        c = self.trader.counters()
        return {"mode": self.mode, "symbol": self.trading.symbol, "end_reason": self.end_reason,
                "frames": self.stats["frames"], "events": self.stats["events"], "quotes": self.strategy.quotes,
                "orders_sent": c["sent"], "cancels_sent": c["cancels"], "fills": c["fills"],
                "rejected": c["rejects"], "risk_blocked": c["refused_position"] + c["refused_rate"],
                "filter_blocked": self.qm.counters.filter_blocked if self.qm is not None else 0,
                "position": st["position"], "pnl": st["pnl"], "fees": st["fees"],
                "open_orders": st["open_orders"], "unconfirmed_orders": list(self.unconfirmed),
                "session_id": self.session_id, **self._futures_summary()}

    def _futures_summary(self) -> dict[str, Any]:
        """USD-M testnet/live: the account's settings and the last margin figures."""
        if self.market != "usdm":
            return {}
        if self.mode == "paper":
            return {"fundings": self.stats.get("fundings", 0), "funding": round(float(self.trader.funding), 8)}
        out: dict[str, Any] = {k: v for k, v in getattr(self.gateway, "settings", {}).items()
                               if k in ("leverage", "marginType")}
        m = self._margin_status()
        if m["margin_ratio"] is not None:
            out["margin_ratio"] = round(m["margin_ratio"], 6)
            out["effective_leverage"] = round(m["effective_leverage"], 4)
        return out
