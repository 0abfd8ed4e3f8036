"""BacktestEngine: streams events through the compiled replay kernel.

Data come in chunks (the synthetic market generates them; an event store is
read by row groups), so memory does not grow with the data's length. The kernel
carries a short tail of events between chunks (those the strategy has not seen
yet), which keeps results independent of the chunk size.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pandas as pd

from hftcore import EVENT_DTYPE
from hftcore.backtest import ReplayKernel
from hftcore.book import L2Book
from hftcore.exchange import ExchangeModel

from hftmm.backtesting.config import BacktestConfig
from hftmm.config import ConfigError
from hftmm.backtesting.metrics import PerformanceMetrics, compute_metrics
from hftmm.errors import DataError
from hftmm.progress import Progress
from hftmm.strategy import core
from hftmm.threads import read_ahead
from hftmm.synthetic import DAY_S, SyntheticConfig, day_start_ns, generate_day

log = logging.getLogger(__name__)


def _concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a):
        return np.ascontiguousarray(b)
    return np.concatenate([np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)]).view(EVENT_DTYPE)


@dataclass
class EventSource:
    """Chunks of events plus their units; ``span_ns`` = (start, end) for progress."""

    chunks: Iterator[np.ndarray]
    tick_size: str
    lot_size: str
    span_ns: tuple[int, int]
    description: str
    #: added to every local_ts (the receive clock's correction; see BacktestConfig.clock_correction)
    clock_shift_ns: int = 0
    #: "spot" or "usdm" (the data's; decides the default fees)
    market: str = "spot"


def synthetic_source(config: BacktestConfig, day_seconds: Optional[float] = None) -> EventSource:
    """The synthetic market on the config's dates. ``day_seconds``: only each
    day's first seconds (a hook for tests and benchmarks; None = whole days)."""
    syn = SyntheticConfig(symbol=config.symbol)
    dates = config.dates()
    secs = DAY_S if day_seconds is None else float(day_seconds)

    def chunks() -> Iterator[np.ndarray]:
        for d in dates:
            yield from generate_day(d, syn, secs)

    start = day_start_ns(dates[0])
    # the span (progress) assumes consecutive whole days unless shortened
    span = int(DAY_S * 1e9) * len(dates) if day_seconds is None else int(secs * 1e9) + \
        int(DAY_S * 1e9) * (len(dates) - 1)
    return EventSource(chunks(), syn.tick_size, syn.lot_size, (start, start + span),
                       f"synthetic {config.symbol} {dates[0]}..{dates[-1]}")


def funded(src: EventSource, config: BacktestConfig) -> EventSource:
    """``src`` with the config's USD-M funding times merged in (``hftcore.EV_FUNDING``
    records; see :mod:`hftmm.data.funding`), or ``src`` itself without a ``funding_path``."""
    if config.funding_path is None:
        return src
    market = config.market or src.market
    if market != "usdm":
        raise ConfigError("BacktestConfig.funding_path", f"funding applies to USD-M perpetuals; the data is {market}")
    from hftmm.data.funding import funding_events, read_funding, with_funding

    rows = read_funding(config.funding_path, config.symbol)
    if not rows:
        raise ConfigError("BacktestConfig.funding_path", f"no funding rows for {config.symbol} in "
                                                         f"{config.funding_path}")
    t0, t1 = src.span_ns
    inside = [r for r in rows if t0 <= r.time_ms * 1_000_000 <= t1]
    log.info("%s: %d funding times in the data's span (of %d in %s)", config.symbol, len(inside), len(rows),
             config.funding_path)
    # only the data's own span: an earlier record would start the replay (its clock,
    # samples and timers) weeks before the first event of a monthly file
    return dataclasses.replace(src, chunks=with_funding(src.chunks, funding_events(inside, src.tick_size)),
                               description=f"{src.description} + funding {config.funding_path}")


def store_source(config: BacktestConfig) -> EventSource:
    from hftmm.data import store  # the event store (hftmm data convert)

    meta = store.store_metadata(config.data_path, config.symbol)
    have = store.available_dates(config.data_path, config.symbol)
    wanted = config.dates()
    missing = [d for d in wanted if d not in set(have)]
    if len(missing) == len(wanted):
        when = wanted[0] if len(wanted) == 1 else f"{wanted[0]}..{wanted[-1]}"
        raise DataError(f"no data for {config.symbol} on {when} in {config.data_path} "
                        f"(available: {_date_ranges(have) or 'none'})")
    if missing:
        log.warning("%s %s: no data on %d of the %d days (%s); backtesting the others", config.data_path,
                    config.symbol, len(missing), len(wanted), _date_ranges(missing))
    tick = config.tick_size or meta["tick_size"]
    lot = config.lot_size or meta["lot_size"]
    start = day_start_ns(config.start_date)
    end = day_start_ns(config.end_date) + int(DAY_S * 1e9)
    shift = 0
    if config.clock_correction:
        lowest = store.min_feed_latency(config.data_path, config.symbol, start, end)
        if lowest is not None and lowest < 0:
            shift = -lowest + round(config.min_feed_latency * 1e9)
            log.warning("%s %s: the receive clock was %.3f ms behind the exchange's (local_ts < exch_ts): "
                        "local_ts shifted by %+.3f ms so the smallest feed latency is %g ms "
                        "(BacktestConfig.clock_correction)", config.data_path, config.symbol, -lowest / 1e6,
                        shift / 1e6, config.min_feed_latency * 1e3)
    events = store.read_events(config.data_path, config.symbol, start, end)
    if shift:
        events = _shifted(events, shift)
    return EventSource(read_ahead(events), str(tick), str(lot), (start, end), f"{config.data_path} {config.symbol}",
                       shift, meta.get("market") or "spot")


def _date_ranges(days: list[str]) -> str:
    """ISO days as compact ranges: "2024-08-08..2024-08-10, 2024-08-12"."""
    import datetime as dt

    out: list[str] = []
    run: list[dt.date] = []
    for d in sorted(dt.date.fromisoformat(x) for x in days):
        if run and (d - run[-1]).days == 1:
            run.append(d)
            continue
        if run:
            out.append(run[0].isoformat() if len(run) == 1 else f"{run[0]}..{run[-1]}")
        run = [d]
    if run:
        out.append(run[0].isoformat() if len(run) == 1 else f"{run[0]}..{run[-1]}")
    return ", ".join(out)


def _shifted(chunks: Iterator[np.ndarray], shift_ns: int) -> Iterator[np.ndarray]:
    for c in chunks:
        if not c.flags.writeable:
            c = c.copy()
        c["local_ts"] += shift_ns
        yield c


@dataclass
class BacktestResult:
    """What a backtest produced. ``trades``: one row per fill; ``timeseries``: one
    row per equity sample; prices in price units, quantities in base units."""

    config: BacktestConfig
    performance: PerformanceMetrics
    trades: pd.DataFrame
    timeseries: pd.DataFrame
    counters: dict
    events: int
    elapsed_s: float
    data: str = ""

    def _margin_text(self) -> str:
        p, lim = self.performance, self.config.max_margin_ratio
        if not math.isfinite(p.max_margin_ratio):
            return f"n/a (no leverage brackets for {self.config.symbol}: --leverage-brackets FILE.json)"
        text = f"max ratio {100 * p.max_margin_ratio:.2f}% (maintenance margin / equity)"
        if math.isfinite(p.liquidation_at_s):
            text += (f"; Binance would have LIQUIDATED the account at {p.liquidation_at_s:,.0f} s: "
                     "the PnL after that is not real")
        elif math.isfinite(p.margin_limit_at_s):
            text += (f"; the live max_margin_ratio {100 * lim:.0f}% would have killed the session at "
                     f"{p.margin_limit_at_s:,.0f} s")
        else:
            text += f"; never at the live limit ({100 * lim:.0f}%)" if lim > 0 else ""
        return text

    def summary(self) -> str:
        p = self.performance

        def f(x: float, fmt: str = "{:,.2f}") -> str:
            return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)

        c = self.counters
        maker, taker = c.get("maker_fee"), c.get("taker_fee")
        max_pos = self.config.max_position
        rows = [
            ("Total PnL", "$" + f(p.total_pnl)),
            ("PnL Split: Spread + Inventory - Fees", f"${f(p.pnl_spread)} + ${f(p.pnl_inventory)} - "
                                                      f"${f(p.total_fees)}")
             if not c.get("fundings") and c.get("market") != "usdm" else
             ("PnL Split: Spread + Inventory - Fees - Funding",
              f"${f(p.pnl_spread)} + ${f(p.pnl_inventory)} - ${f(p.total_fees)} - ${f(p.total_funding)}"
              + ("" if c.get("funding_source") else " (no funding data given)")),
            ("Fees (maker / taker)", ("n/a" if maker is None else
                                      f"{100 * maker:.4g}% / {100 * taker:.4g}%"
                                      + (" (Binance regular tier, " + str(c.get("market")) + ")"
                                         if self.config.maker_fee is None and self.config.taker_fee is None
                                         else ""))),
            *([("Margin (USD-M, cross)", self._margin_text())] if c.get("market") == "usdm" else []),
            ("Return", f(p.return_pct, "{:.4f}") + "%"),
            ("Sharpe Ratio", f(p.sharpe_ratio)),
            ("Sortino Ratio", f(p.sortino_ratio)),
            ("Calmar Ratio", f(p.calmar_ratio)),
            ("Max Drawdown", f"${f(p.max_drawdown)} ({f(p.max_drawdown_pct, '{:.4f}')}%, "
                             f"{f(p.max_drawdown_duration_s, '{:,.0f}')} s)"),
            ("Total Trades", f"{p.total_trades:,}"),
            ("Win Rate (round trips)", f(p.win_rate) + "%"),
            ("Avg Trade PnL", "$" + f(p.avg_trade_pnl, "{:,.4f}")),
            ("Spread Capture", f(p.spread_capture, "{:.4f}") + " per unit"),
            ("Mark-out 1s/10s/60s (bps)", f"{f(p.markout_1s_bps)} / {f(p.markout_10s_bps)} / {f(p.markout_60s_bps)}"),
            ("Adverse Selection 1s/10s/60s (bps)",
             f"{f(p.adverse_1s_bps)} / {f(p.adverse_10s_bps)} / {f(p.adverse_60s_bps)}"),
            ("Time-weighted Inventory (signed / |.|)",
             f"{f(p.time_weighted_inventory, '{:.6f}')} / {f(p.time_weighted_abs_inventory, '{:.6f}')}"
             + (f" ({f(100 * p.time_weighted_inventory / max_pos, '{:+.1f}')}% of max_position)"
                if max_pos else "")),
            ("Inventory Turnover", f(p.inventory_turnover)),
            ("Avg Fill Latency", f(p.avg_fill_latency_ms) + " ms"),
            ("Avg Quote Lifetime", f(p.avg_quote_lifetime_s, "{:.3f}") + " s"),
            ("Quote Hit Rate", f(p.quote_hit_rate) + "%"),
            ("Fill Rate", f(p.fill_rate) + "%"),
        ]
        # what shaped the run beyond the strategy (data validity, limits, clock): before the last row
        extra: list[tuple[str, str]] = []
        bad = int(self.counters.get("book_invalid", 0) or 0)
        if bad:
            # the data's book was unknown (gaps, crossed books): quotes cancelled there
            extra.append(("Book Invalid (not quoting)",
                         f"{bad:,} times, {self.counters.get('book_invalid_ns', 0) / 1e9:,.1f} s"))
        limited = int(self.counters.get("rate_blocked", 0) or 0)
        if limited:
            extra.append(("Orders Refused by the Rate Limit", f"{limited:,}"))
        if c.get("killed"):
            when = int(c.get("kill_ns", -1))
            at = pd.Timestamp(when, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC") if when >= 0 else "?"
            extra.append(("Kill Switch", f"{c.get('kill_reason')} at {at}: orders cancelled"
                          + (", position flattened" if self.config.flatten_on_kill else "")
                          + ", no trading after"))
        shift = int(self.counters.get("clock_shift_ns", 0) or 0)
        if shift:
            extra.append(("Receive Clock Corrected", f"local_ts {shift / 1e6:+,.3f} ms (it was behind the exchange)"))
        rows[-1:-1] = extra
        lines = ["Performance Summary:"]
        for i, (k, v) in enumerate(rows):
            lines.append(f"{'└──' if i == len(rows) - 1 else '├──'} {k}: {v}")
        return "\n".join(lines)

    def metrics_dict(self) -> dict[str, Any]:
        d = self.performance.to_dict()
        d.update(events=self.events, elapsed_s=self.elapsed_s, events_per_s=self.events / max(self.elapsed_s, 1e-9),
                 counters=self.counters, data=self.data)
        return d

    def save(self, directory: str) -> str:
        """Write config.json, metrics.json, trades.parquet and timeseries.parquet."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as fh:
            json.dump(self.config.to_dict(), fh, indent=2)
        with open(os.path.join(directory, "metrics.json"), "w") as fh:
            json.dump(self.metrics_dict(), fh, indent=2, default=float)
        self.trades.to_parquet(os.path.join(directory, "trades.parquet"), index=False)
        self.timeseries.to_parquet(os.path.join(directory, "timeseries.parquet"), index=False)
        return directory

    def plot(self, path: str) -> str:
        """Equity, inventory and drawdown charts to a PNG."""
        from hftmm.backtesting.plots import plot_result

        return plot_result(self, path)


class BacktestEngine:
    """Runs backtests. ``data_dir``: where event stores live (a relative
    ``BacktestConfig.data_path`` is resolved against it). ``synthetic_day_seconds``:
    replay only each synthetic day's first seconds (a hook for tests and
    benchmarks; None = whole days)."""

    def __init__(self, data_dir: str = "./data", synthetic_day_seconds: Optional[float] = None) -> None:
        self.data_dir = data_dir
        self.synthetic_day_seconds = synthetic_day_seconds

    def _source(self, config: BacktestConfig) -> EventSource:
        if config.data_path is None:
            return synthetic_source(config, self.synthetic_day_seconds)
        path = config.data_path
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(self.data_dir, path)
        return store_source(config.replace(data_path=path))

    def run_backtest(self, config: BacktestConfig, progress: bool | Callable[[float, int], None] = False,
                     source: Optional[EventSource] = None, strategy: Any = None) -> BacktestResult:
        """Run one backtest. ``progress``: True for a bar on stderr, or a callable
        ``f(fraction_done, events)``. ``strategy``: your own instead of the built-in
        market maker (a Python :class:`hftmm.strategy.Strategy` or a compiled
        :class:`hftcore.strategy.Strategy`; a class or an instance, see
        :func:`hftmm.strategy.core.make_strategy`) -- the same object ``hftmm live``
        runs; the config's risk limits and exchange model apply to it."""
        return self.run_backtest_group([config], progress, source, [strategy])[0]

    def run_backtest_group(self, configs: list[BacktestConfig],
                           progress: bool | Callable[[float, int], None] = False,
                           source: Optional[EventSource] = None,
                           strategies: Optional[list[Any]] = None) -> list[BacktestResult]:
        """Several backtests in one pass of the replay kernel (one replay, many
        strategies): the configs must share their data and the exchange model's
        shared part (see :func:`shared_key`); each gets exactly the result a
        separate :meth:`run_backtest` would give (``elapsed_s`` is the pass's).
        ``strategies``: per config, your own strategy or None (the built-in one)."""
        if not configs:
            return []
        keys = {shared_key(c) for c in configs}
        if len(keys) > 1:
            raise ValueError(f"configs of one pass must share {SHARED_FIELDS}; got {len(keys)} distinct")
        src = funded(source or self._source(configs[0]), configs[0])
        market = configs[0].market or src.market
        kernel = build_kernel(configs, src.tick_size, src.lot_size, market, strategies=strategies)
        lot = float(src.lot_size)
        tick = float(src.tick_size)
        n = len(configs)
        bar = Progress(1.0, "backtest", "events", enabled=progress is True)
        t_start, t_end = src.span_ns
        span = max(t_end - t_start, 1)
        fills: list[list[np.ndarray]] = [[] for _ in range(n)]
        samples: list[list[np.ndarray]] = [[] for _ in range(n)]

        def drain() -> None:
            for j in range(n):
                fills[j].append(kernel.take_fills(j))
                samples[j].append(kernel.take_samples(j))

        events = 0
        last_ts = t_start
        t0 = time.perf_counter()
        for chunk in src.chunks:
            if not len(chunk):
                continue
            kernel.run(chunk)
            events += len(chunk)
            last_ts = int(chunk["exch_ts"][-1])
            drain()
            frac = min(max((last_ts - t_start) / span, 0.0), 1.0)
            bar.done = frac
            bar.update(0.0, count=len(chunk), count_unit="events")
            if callable(progress):
                progress(frac, events)
        kernel.finish(last_ts)
        drain()
        elapsed = time.perf_counter() - t0
        bar.done = 1.0
        bar.close()
        out = []
        for j, config in enumerate(configs):
            trades = fills_frame(np.concatenate(fills[j]), tick, lot)
            ts = samples_frame(np.concatenate(samples[j]), tick, lot, config.initial_capital)
            counters = kernel.counters(j)
            counters["orders_submitted"] = counters["sent"]
            counters["rate_blocked"] = counters["refused_rate"]
            counters["submitted_qty"] = counters["sent_lots"] * lot
            counters["clock_shift_ns"] = src.clock_shift_ns
            counters["maker_fee"], counters["taker_fee"] = config.exchange.fees(market)
            counters["market"] = market
            counters["funding_source"] = config.funding_path
            perf = compute_metrics(trades, ts, counters, config.initial_capital)
            if market == "usdm":
                perf = dataclasses.replace(perf, **margin_check(config, ts))
            out.append(BacktestResult(config, perf, trades, ts, counters, events, elapsed, src.description))
        return out

    def run_portfolio_backtest(self, configs: list[BacktestConfig], portfolio: Any = None,
                               progress: bool | Callable[[float, int], None] = False, check_interval_s: float = 0.1,
                               strategies: Optional[list[Any]] = None) -> Any:
        """Several symbols at once (one config per symbol) under the portfolio limits of
        live trading (a :class:`hftmm.config.PortfolioConfig`), checked every
        ``check_interval_s`` [s] of the data's clock; see :mod:`hftmm.backtesting.portfolio`.
        Returns a :class:`~hftmm.backtesting.portfolio.PortfolioBacktestResult`."""
        from hftmm.backtesting.portfolio import run_portfolio_backtest

        return run_portfolio_backtest(self, configs, portfolio, progress, check_interval_s, strategies)

    def run_parameter_sweep(self, base_config: BacktestConfig, grid: Any, executor: Any = None,
                            **kw: Any) -> pd.DataFrame:
        """Grid (or ``method="random"``) search over BacktestConfig fields; one row
        per combination. See :func:`hftmm.backtesting.sweep.run_sweep`."""
        from hftmm.backtesting.sweep import run_sweep

        return run_sweep(self, base_config, grid, executor=executor, **kw)

    def analyze_results(self, results: pd.DataFrame) -> dict[str, Any]:
        """Best combinations, rankings and sensitivities of a sweep's results. See
        :func:`hftmm.backtesting.sweep.analyze_results`."""
        from hftmm.backtesting.sweep import analyze_results

        return analyze_results(results)


#: BacktestConfig fields strategies of one replay pass must share: the data, and
#: what decides the shared clocks and the equity samples.
SHARED_FIELDS = ("start_date", "end_date", "symbol", "data_path", "market", "tick_size", "lot_size", "feed_latency",
                 "clock_correction", "min_feed_latency", "sample_interval", "funding_path")


def shared_key(config: BacktestConfig) -> tuple:
    """Configs with equal keys can run in one multi-strategy pass."""
    return tuple(getattr(config, f) for f in SHARED_FIELDS)


def build_kernel(configs: list[BacktestConfig], tick_size: str, lot_size: str, market: Optional[str] = "spot",
                 record_intents: bool = False, strategies: Optional[list[Any]] = None,
                 sample_interval_ns: Optional[int] = None) -> ReplayKernel:
    """The driver loop with one agent per config -- the built-in market maker (or
    ``strategies[i]``, see :func:`hftmm.strategy.core.make_strategy`), its trader
    and its exchange account -- over one book in ``tick_size``/``lot_size`` units
    (decimal strings). The built-in market makers share their estimators (a
    sweep's strategies see the same events). The configs must share
    :data:`SHARED_FIELDS`. ``sample_interval_ns``: instead of the configs' (0:
    no equity samples -- a paper session). Paper trading builds its kernel here
    too (:class:`hftmm.live.LiveEngine`): one construction for both."""
    if not configs:
        raise ValueError("at least one config")
    if len({shared_key(c) for c in configs}) > 1:
        raise ValueError(f"configs of one pass must share {SHARED_FIELDS}")
    specs = list(strategies) if strategies is not None else [None] * len(configs)
    if len(specs) != len(configs):
        raise ValueError(f"{len(specs)} strategies for {len(configs)} configs")
    tick, lot = float(tick_size), float(lot_size)
    book = L2Book(tick_size, lot_size)
    agents = [core.make_strategy(sp, c.strategy, c.risk, tick, lot) for sp, c in zip(specs, configs)]
    builtin = [a for a, sp in zip(agents, specs) if sp is None]
    for i, s in enumerate(builtin):
        for j in range(i):
            s.share_estimators(builtin[j])
    strategies = agents
    traders = [core.trader(c.risk, tick, lot) for c in configs]
    xm = ExchangeModel(book, [core.exchange_params(c.exchange, tick, lot, market) for c in configs],
                       [c.seed for c in configs])
    c0 = configs[0]
    return ReplayKernel(book, list(zip(strategies, traders)), xm,
                        -1 if c0.feed_latency is None else core.ns(c0.feed_latency),
                        core.ns(c0.sample_interval) if sample_interval_ns is None else sample_interval_ns,
                        record_intents)


def fills_frame(f: np.ndarray, tick: float, lot: float) -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.to_datetime(f["exch_ts"], unit="ns", utc=True),
        "exch_ts": f["exch_ts"],
        "report_ts": f["report_ts"],
        "submit_ts": f["submit_ts"],
        "order_id": f["order_id"],
        "side": f["side"],
        "side_name": np.where(f["side"] == 0, "buy", "sell"),
        "price": f["px"] * tick,
        "px_ticks": f["px"],
        "qty": f["qty"] * lot,
        "fee": f["fee"],
        "position_qty": f["position"] * lot,
        "cash": f["cash"],
        "mid": f["mid"],
        "taker": f["taker"],
    })


def margin_check(config: BacktestConfig, ts: pd.DataFrame) -> dict[str, float]:
    """USD-M: the margin ratio along the equity samples (cross: maintenance margin of the
    position at the mid / equity; the exchange model does not liquidate, so the summary
    says where Binance would have, and where the live margin limit would have killed)."""
    from hftmm.execution.margin import DEFAULT_BTCUSDT_BRACKETS, LeverageBrackets, margin_ratio_path

    if config.leverage_brackets is not None:
        try:
            with open(config.leverage_brackets) as fh:
                body = json.load(fh)
            brackets = LeverageBrackets.from_api(body, config.symbol)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError("BacktestConfig.leverage_brackets", f"{config.leverage_brackets}: {exc}") from None
    elif config.symbol == "BTCUSDT":
        brackets = LeverageBrackets.from_api(DEFAULT_BTCUSDT_BRACKETS)
    else:
        return {}
    if not len(ts):
        return {"max_margin_ratio": 0.0}
    ratio = margin_ratio_path(brackets, ts["position_qty"].to_numpy(), ts["mid"].to_numpy(),
                              ts["equity"].to_numpy())
    ratio = np.where(np.isfinite(ts["mid"].to_numpy()), ratio, 0.0)
    t = (ts["ts"].to_numpy(np.int64) - int(ts["ts"].iloc[0])) / 1e9

    def first(limit: float) -> float:
        hit = np.flatnonzero(ratio >= limit) if limit > 0 else np.zeros(0, np.int64)
        return float(t[hit[0]]) if len(hit) else math.nan
    return {"max_margin_ratio": float(ratio.max()), "margin_limit_at_s": first(config.max_margin_ratio),
            "liquidation_at_s": first(1.0)}


def samples_frame(s: np.ndarray, tick: float, lot: float, initial_capital: float) -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.to_datetime(s["ts"], unit="ns", utc=True),
        "ts": s["ts"],
        "mid": s["mid"],
        "position_qty": s["position"] * lot,
        "cash": s["cash"] + initial_capital,
        "equity": s["equity"] + initial_capital,
        "pnl": s["equity"],
        "fees": s["fees"],
        "bid_quote": np.where(s["bid_px"] >= 0, s["bid_px"] * tick, np.nan),
        "ask_quote": np.where(s["ask_px"] >= 0, s["ask_px"] * tick, np.nan),
        "sigma": s["sigma"],
        "reservation_price": s["reservation"],
    })
