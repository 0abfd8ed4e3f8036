"""The ``hftmm`` command line. The CLI (not the library) configures logging."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import threading


def _cmd_info(args: argparse.Namespace) -> int:
    import hftcore
    import hftmm

    info = {
        "hftmm": hftmm.__version__,
        "hftcore": hftcore.__version__,
        "include": hftcore.get_include(),
        "event_record_bytes": hftcore.EVENT_DTYPE.itemsize,
    }
    print(json.dumps(info, indent=2))
    return 0


def _install_stop_signals(stop: "threading.Event") -> None:
    import signal

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _cmd_record(args: argparse.Namespace) -> int:
    import threading
    import time

    from hftmm.cli_common import feed_options
    from hftmm.data_ingestion import BinanceConnector, Recorder

    stop = threading.Event()
    _install_stop_signals(stop)
    conn = BinanceConnector(args.symbol, market=args.market, testnet=args.testnet, rest_url=args.rest_url,
                            ws_url=args.ws_url, depth_speed_ms=args.depth_speed_ms,
                            snapshot_limit=args.snapshot_limit, **feed_options(args))
    rec = Recorder(args.out, args.symbol, args.market, flush_interval_s=args.flush_interval)
    conn.on_raw = rec.write
    conn.start()          # exchangeInfo first: a URL with nothing behind it fails here (ConnectError)
    rec.start()
    print(f"recording {conn.symbol} ({args.market}) to {args.out}", file=sys.stderr, flush=True)
    t_end = time.monotonic() + args.duration if args.duration else None
    try:
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            stop.wait(1.0)
            st = conn.stats
            print(f"\rmsgs {st.messages}  applied {st.applied}  gaps {st.gaps}  resyncs {st.resyncs}  "
                  f"malformed {st.malformed}  reconnects {st.reconnects}  lines {rec.lines_written}",
                  end="", file=sys.stderr, flush=True)
    finally:
        conn.stop()
        rec.stop()
        print(file=sys.stderr)
    rs = rec.stats()
    print(json.dumps({"lines": rec.lines_written, "files": rec.files, **rs, **conn.statistics()}, default=str))
    if rs.get("lines_lost"):
        print(f"hftmm record: {rs['lines_lost']} lines were lost to write errors ({rs.get('write_errors')} "
              f"errors; see the log)", file=sys.stderr)
        return 1
    return 0


#: BacktestConfig fields the ``backtest`` command sets from options of the same name
_BACKTEST_OPTIONS = ("start_date", "end_date", "symbol", "market", "gamma", "time_horizon", "model", "fair_value",
                     "k", "A", "order_size", "max_position", "min_spread", "quote_refresh_interval",
                     "requote_threshold", "min_order_lifetime", "queue_model", "fill_model", "seed",
                     "feed_latency", "min_feed_latency", "order_latency", "cancel_latency", "response_latency",
                     "maker_fee", "taker_fee", "max_orders_per_second", "max_daily_loss", "max_drawdown",
                     "funding_path", "leverage_brackets")


def _cmd_backtest(args: argparse.Namespace) -> int:
    from hftmm.backtesting import BacktestConfig, BacktestEngine
    from hftmm.config import load_toml

    fields: dict = {}
    data: dict = {}
    if args.config:
        data = load_toml(args.config)
        fields.update(data.get("backtest", {k: v for k, v in data.items() if k != "portfolio"}))
    for name in _BACKTEST_OPTIONS:
        v = getattr(args, name)
        if v is not None:
            fields[name] = v
    if args.no_clock_correction:
        fields["clock_correction"] = False
    if args.inventory_sizing:
        fields["inventory_sizing"] = True
    if args.no_intensity_fit:
        fields["estimate_intensity"] = False
    for item in args.set or ():
        name, value = _field_value(item)
        fields[name] = value
    if args.date:
        fields["start_date"] = fields["end_date"] = args.date
    if args.data:
        fields["data_path"] = args.data
    symbols = [x.strip().upper() for x in str(fields.get("symbol") or "").split(",") if x.strip()]
    if len(symbols) > 1:
        return _portfolio_backtest(args, data, fields, symbols)
    config = BacktestConfig.from_dict(fields)
    show = not args.json and not args.no_progress
    if show:
        print(f"Backtesting {config.model.upper()} (gamma={config.gamma}, T={config.time_horizon}s) on "
              f"{config.data_path or 'the synthetic ' + config.symbol + ' market'}, "
              f"{config.start_date}..{config.end_date}", file=sys.stderr)
    strategy = None
    if args.strategy:
        from hftmm.strategy.base import load_strategy

        strategy = load_strategy(args.strategy)
    result = BacktestEngine(args.data_dir, args.synthetic_seconds).run_backtest(config, progress=show,
                                                                                strategy=strategy)
    if args.save:
        result.save(args.save)
    if args.plot:
        result.plot(args.plot)
    if args.json:
        print(json.dumps(result.metrics_dict(), indent=2, default=float))
    else:
        print(result.summary())
        print(f"({result.events:,} events in {result.elapsed_s:.1f} s, "
              f"{result.events / max(result.elapsed_s, 1e-9) / 1e6:.1f}M events/s)", file=sys.stderr)
        if args.plot:
            print(f"charts: {args.plot}", file=sys.stderr)
    return 0


def _portfolio_backtest(args: argparse.Namespace, data: dict, fields: dict, symbols: list[str]) -> int:
    """``hftmm backtest --symbol A,B``: the symbols together under the portfolio limits."""
    import dataclasses

    from hftmm.backtesting import BacktestConfig, BacktestEngine
    from hftmm.config import build_portfolio_config

    portfolio = build_portfolio_config(data)
    over = {k: v for k, v in (("max_total_notional", args.max_total_notional),
                              ("max_total_daily_loss", args.max_total_daily_loss)) if v is not None}
    if over:
        portfolio = dataclasses.replace(portfolio, **over)
    configs = [BacktestConfig.from_dict({**fields, "symbol": s}) for s in symbols]
    show = not args.json and not args.no_progress
    if args.strategy:
        from hftmm.strategy.base import load_strategy

        strategies = [load_strategy(args.strategy) for _ in symbols]
    else:
        strategies = None
    res = BacktestEngine(args.data_dir, args.synthetic_seconds).run_portfolio_backtest(configs, portfolio,
                                                                                       progress=show,
                                                               strategies=strategies)
    if args.save:
        import os

        for sym, r in res.results.items():
            r.save(os.path.join(args.save, sym))
        res.portfolio.to_parquet(os.path.join(args.save, "portfolio.parquet"), index=False)
    if args.plot:
        res.plot(args.plot)
    if args.json:
        print(json.dumps({"total_pnl": res.total_pnl, "max_notional": res.max_notional, "killed": res.killed,
                          "events": [(str(t), k, r) for t, k, r in res.events],
                          "symbols": {s: r.metrics_dict() for s, r in res.results.items()}}, indent=2, default=float))
    else:
        for sym, r in res.results.items():
            print(f"{sym}:\n{r.summary()}")
        print(res.summary())
        if args.plot:
            print(f"charts: {args.plot}", file=sys.stderr)
    return 0


def _field_value(item: str) -> tuple[str, object]:
    """``--set FIELD=VALUE``: a BacktestConfig field and its value (TOML syntax:
    numbers, true/false, "strings"; a bare word is a string)."""
    import tomllib

    from hftmm.backtesting import BacktestConfig
    from hftmm.config import ConfigError

    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError("--set", f"expected FIELD=VALUE, got {item!r}")
    if name not in BacktestConfig.__dataclass_fields__:
        raise ConfigError(f"BacktestConfig.{name}", "unknown field (see hftmm backtest --help)")
    try:
        return name, tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return name, raw.strip()


def _config_default(name: str) -> str:
    from hftmm.backtesting import BacktestConfig

    v = BacktestConfig.__dataclass_fields__[name].default
    return "none" if v is None else str(v)


def build_parser() -> argparse.ArgumentParser:
    import hftmm
    from hftmm.cli_common import HelpFormatter, add_feed_arguments

    parser = argparse.ArgumentParser(prog="hftmm", description="hftmm market-making toolkit: record, convert and "
                                     "verify Binance market data, backtest and sweep the Avellaneda-Stoikov / GLFT "
                                     "market maker, trade it (paper, testnet, live), simulate Binance, dashboard.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"hftmm {hftmm.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="versions and build information", formatter_class=HelpFormatter)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("record", help="record Binance market data to crash-safe gzip files",
                       formatter_class=HelpFormatter,
                       description="Record the depth, bookTicker and trade streams (and the REST snapshots) "
                                   "in the hftbacktest collector format: <ns> <json> lines, one gzip member a "
                                   "flush interval, hourly files. Exit status 1 when lines were lost to write "
                                   "errors, 2 when the endpoints cannot be reached.")
    p.add_argument("--symbol", default="BTCUSDT", help="Binance symbol")
    p.add_argument("--market", choices=["spot", "usdm"], default="spot", help="spot or USD-M futures")
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument("--out", default="./data/raw", help="output directory")
    p.add_argument("--rest-url", default=None, help="REST base URL (default: Binance's for the market)")
    p.add_argument("--ws-url", default=None, help="WebSocket base URL (default: Binance's for the market)")
    p.add_argument("--depth-speed-ms", type=int, default=100, help="diff-depth stream interval, ms")
    p.add_argument("--snapshot-limit", type=int, default=1000, help="levels per side of the REST snapshot")
    add_feed_arguments(p)
    p.add_argument("--flush-interval", type=float, default=1.0,
                   help="seconds between gzip members (at most this much is lost to kill -9)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("backtest", help="backtest the market maker (default: AS on one synthetic day)",
                       formatter_class=HelpFormatter,
                       description="Replay an event store (or the bundled synthetic market) through the "
                                   "compiled exchange model with the market maker, and print the performance "
                                   "summary. Options override the --config file's values; unset ones keep "
                                   "BacktestConfig's defaults, shown below.")
    p.add_argument("--config", metavar="FILE.toml",
                   help="TOML with BacktestConfig fields (top level or a [backtest] table)")
    p.add_argument("--data", metavar="DIR",
                   help="event store directory (hftmm data convert); default: the synthetic market")
    p.add_argument("--data-dir", default="./data", help="where a relative --data path is looked up")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="one UTC day (sets start and end)")
    p.add_argument("--synthetic-seconds", type=float, default=None, help=argparse.SUPPRESS)  # tests
    p.add_argument("--start-date", dest="start_date", metavar="YYYY-MM-DD",
                   help=f"first UTC day (default {_config_default('start_date')})")
    p.add_argument("--end-date", dest="end_date", metavar="YYYY-MM-DD",
                   help=f"last UTC day, inclusive (default {_config_default('end_date')})")
    p.add_argument("--symbol", help=f"symbol, or several comma-separated: one backtest of them together under "
                                    f"the [portfolio] limits (default {_config_default('symbol')})")
    p.add_argument("--max-total-notional", type=float, default=None, metavar="QUOTE",
                   help="several symbols: the portfolio's notional limit (sum of |position| x mid)")
    p.add_argument("--max-total-daily-loss", type=float, default=None, metavar="QUOTE",
                   help="several symbols: the loss of all symbols together that kills every one "
                        "(default: the per-symbol max_daily_loss)")
    p.add_argument("--gamma", type=float,
                   help=f"risk aversion, 1/(price x base) (default {_config_default('gamma')})")
    p.add_argument("--time-horizon", dest="time_horizon", type=float,
                   help=f"horizon T, seconds (default {_config_default('time_horizon')})")
    p.add_argument("--model", choices=["as", "glft"], help=f"quoting model (default {_config_default('model')})")
    p.add_argument("--fair-value", dest="fair_value", choices=["mid", "micro"],
                   help=f"fair value the quotes centre on (default {_config_default('fair_value')})")
    p.add_argument("--market", choices=["spot", "usdm"],
                   help="the data's market: decides the default fees (default: the store's; synthetic: spot)")
    p.add_argument("--funding", dest="funding_path", metavar="FILE|DIR",
                   help="USD-M: funding-rate history (Binance's fundingRate CSV/ZIP from data.binance.vision, or "
                        "GET /fapi/v1/fundingRate JSON); the position pays position x mark x rate at each "
                        "funding time (default: none)")
    p.add_argument("--leverage-brackets", dest="leverage_brackets", metavar="FILE.json",
                   help="USD-M: GET /fapi/v1/leverageBracket JSON for the summary's margin check (default: "
                        "Binance's BTCUSDT table for BTCUSDT, else none)")
    p.add_argument("--k", type=float, help=f"fill intensity decay, 1/price (default {_config_default('k')})")
    p.add_argument("--A", type=float, help=f"fill intensity at the touch, 1/s (default {_config_default('A')})")
    p.add_argument("--no-intensity-fit", action="store_true",
                   help="keep --k/--A fixed instead of fitting them online from the trades")
    p.add_argument("--order-size", dest="order_size", type=float,
                   help=f"quote size, base units (default {_config_default('order_size')})")
    p.add_argument("--max-position", dest="max_position", type=float,
                   help=f"position limit with every order in flight filled, base units; 0: none "
                        f"(default {_config_default('max_position')})")
    p.add_argument("--min-spread", dest="min_spread", type=float,
                   help=f"minimum quoted spread, price units (default {_config_default('min_spread')})")
    p.add_argument("--quote-refresh-interval", dest="quote_refresh_interval", type=float,
                   help=f"seconds between requotes (default {_config_default('quote_refresh_interval')})")
    p.add_argument("--requote-threshold", dest="requote_threshold", type=int,
                   help=f"ticks a quote must move before its order is moved "
                        f"(default {_config_default('requote_threshold')})")
    p.add_argument("--min-order-lifetime", dest="min_order_lifetime", type=float,
                   help=f"seconds an order rests before it may be moved "
                        f"(default {_config_default('min_order_lifetime')})")
    p.add_argument("--inventory-sizing", action="store_true",
                   help="shrink the side that adds to the position as it nears max_position")
    p.add_argument("--queue-model", dest="queue_model", choices=["risk_averse", "power", "log"],
                   help=f"queue position model (default {_config_default('queue_model')})")
    p.add_argument("--fill-model", dest="fill_model", choices=["queue", "intensity"],
                   help=f"queue: fills from the data's trades; intensity: A exp(-k delta) draws "
                        f"(default {_config_default('fill_model')})")
    p.add_argument("--seed", type=int, help=f"seed of the random fill draws (default {_config_default('seed')})")
    p.add_argument("--max-orders-per-second", dest="max_orders_per_second", type=float,
                   help=f"new orders per sliding second, as the live risk manager "
                        f"(default {_config_default('max_orders_per_second')})")
    p.add_argument("--feed-latency", dest="feed_latency", type=float,
                   help="seconds from exchange time to visibility (default: the data's receive times)")
    p.add_argument("--min-feed-latency", dest="min_feed_latency", type=float,
                   help=f"seconds the fastest message takes after the receive-clock correction "
                        f"(default {_config_default('min_feed_latency')})")
    p.add_argument("--no-clock-correction", action="store_true",
                   help="use the data's receive times even where they precede the exchange's")
    p.add_argument("--order-latency", dest="order_latency", type=float,
                   help=f"seconds from decision to the order at the exchange "
                        f"(default {_config_default('order_latency')})")
    p.add_argument("--cancel-latency", dest="cancel_latency", type=float,
                   help=f"seconds from decision to the cancel at the exchange "
                        f"(default {_config_default('cancel_latency')})")
    p.add_argument("--response-latency", dest="response_latency", type=float,
                   help=f"seconds from the exchange to our knowing (default {_config_default('response_latency')})")
    p.add_argument("--maker-fee", dest="maker_fee", type=float,
                   help="maker fee, fraction of notional, negative = rebate (default: Binance's regular "
                        "tier for the market: spot 0.001, usdm 0.0002)")
    p.add_argument("--taker-fee", dest="taker_fee", type=float,
                   help="taker fee, fraction of notional (default: Binance's regular tier for the market: "
                        "spot 0.001, usdm 0.0005)")
    p.add_argument("--max-daily-loss", dest="max_daily_loss", type=float,
                   help=f"kill switch at this loss from the day's start, quote currency; 0: none "
                        f"(default {_config_default('max_daily_loss')})")
    p.add_argument("--max-drawdown", dest="max_drawdown", type=float,
                   help=f"kill switch at this fraction of the peak equity; 0: none "
                        f"(default {_config_default('max_drawdown')})")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="any other BacktestConfig field (repeatable; TOML values, e.g. --set xi=0.05 "
                        "--set post_only=false)")
    p.add_argument("--strategy", metavar="MODULE:CLASS",
                   help="your own strategy instead of the built-in market maker (see README, "
                        "\"Write your own strategy\")")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="write equity, inventory and drawdown charts")
    p.add_argument("--save", metavar="DIR", help="write config, metrics, trades and timeseries")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_backtest)

    from hftmm import cli_data, cli_live, cli_simulate, cli_sweep

    cli_live.add_parser(sub)
    cli_simulate.add_parser(sub)
    cli_data.add_parser(sub)
    cli_sweep.add_parser(sub)
    from hftmm import cli_dashboard

    cli_dashboard.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hftmm.cli_common import fail
    from hftmm.errors import HftmmError

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prog = f"hftmm {args.command}"
    try:
        return int(args.func(args))
    except HftmmError as exc:
        # a problem the user can act on: one line, no traceback
        return fail(prog, exc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
