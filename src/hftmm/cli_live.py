"""``hftmm live``: run the market maker (paper by default), and ``hftmm kill``.

::

    hftmm live --symbol BTCUSDT                       # paper trading on Binance's live feed
    hftmm live --symbol BTCUSDT --testnet             # real orders on the spot testnet
    hftmm live --symbol BTCUSDT --live                # production: asks for confirmation
    hftmm live --paper --rest-url http://127.0.0.1:8765 --ws-url ws://127.0.0.1:8765 --duration 60
    hftmm kill --state-db live.db --reason "manual" [--flatten]

``--config FILE`` reads ``[trading]``, ``[risk]``, ``[exchange]`` (paper's exchange model)
and ``[alerts]`` (webhook / Slack / Telegram destinations, :class:`hftmm.config.AlertConfig`)
from TOML; ``HFTMM_TRADING_*`` / ``HFTMM_RISK_*`` / ``HFTMM_ALERTS_*`` environment variables
override (the Telegram bot token belongs in ``HFTMM_ALERTS_TELEGRAM_BOT_TOKEN``).
Credentials (testnet/live) come from the environment or ``.env``: see
``.env.example``. SIGINT/SIGTERM end the session cleanly (every order cancelled);
SIGUSR1 triggers the kill switch and keeps the session running.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger("hftmm.cli")

PROD_CONFIRM = "I UNDERSTAND"


def add_parser(sub: Any) -> None:
    from hftmm.cli_common import HelpFormatter, add_feed_arguments

    p = sub.add_parser("live", help="run the market maker: paper (default), Binance testnet or production",
                       formatter_class=HelpFormatter,
                       description="Run the market maker on Binance's live feed: paper fills (default), or "
                                   "real orders on the spot or USD-M testnet or production. SIGINT/SIGTERM/--duration "
                                   "end the session with every order cancelled; SIGUSR1 trips the kill switch.",
                       epilog="exit status: 0 clean end; 1 orders not confirmed cancelled at the end (named "
                              "on stderr); 2 the session could not start (configuration, credentials, "
                              "endpoints unreachable)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--paper", dest="mode", action="store_const", const="paper",
                      help="simulated fills against the live feed (default)")
    mode.add_argument("--testnet", dest="mode", action="store_const", const="testnet",
                      help="real orders on Binance's testnet (spot, or USD-M with --market usdm)")
    mode.add_argument("--live", dest="mode", action="store_const", const="live",
                      help="real orders on Binance production (asks for confirmation)")
    p.set_defaults(mode="paper")
    p.add_argument("--symbol", default=None,
                   help="symbol, or several comma-separated (BTCUSDT,ETHUSDT: one engine, one state DB, one "
                        "kill switch, the [portfolio] limits over all; default: the config's, BTCUSDT)")
    p.add_argument("--market", choices=("spot", "usdm"), default=None,
                   help="spot or USD-M perpetual futures (default: the config's, spot)")
    p.add_argument("--leverage", type=int, default=None, metavar="X",
                   help="USD-M testnet/live: leverage set on the account at the start (default: the config's, 5)")
    p.add_argument("--margin-type", choices=("CROSSED", "ISOLATED"), default=None,
                   help="USD-M testnet/live: margin type set at the start (default: the config's, CROSSED)")
    p.add_argument("--max-total-notional", type=float, default=None, metavar="QUOTE",
                   help="several symbols: the portfolio's notional limit (sum of |position| x mid); "
                        "overrides [portfolio] max_total_notional")
    p.add_argument("--max-total-daily-loss", type=float, default=None, metavar="QUOTE",
                   help="several symbols: the loss of all symbols together that kills every one; overrides "
                        "[portfolio] max_total_daily_loss (default: the per-symbol max_daily_loss)")
    p.add_argument("--config", metavar="FILE.toml",
                   help="TOML with [trading], [risk], [exchange] (paper's exchange model) and [alerts] sections "
                        "(HFTMM_TRADING_* / HFTMM_RISK_* / HFTMM_EXCHANGE_* environment variables override)")
    p.add_argument("--strategy", metavar="MODULE:CLASS",
                   help="your own strategy instead of the built-in market maker: a Python "
                        "hftmm.strategy.Strategy or a compiled hftcore.strategy.Strategy subclass, "
                        "made as CLASS() or CLASS.from_config(trading, risk, tick_size, lot_size)")
    p.add_argument("--rest-url", help="REST base URL (default: Binance's for the mode)")
    p.add_argument("--ws-url", help="market-data WebSocket base URL (default: Binance's)")
    p.add_argument("--ws-api-url", help="WebSocket API URL for user data (default: Binance's; "
                                        "with --rest-url: derived from --ws-url)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop cleanly after this many seconds (0: until Ctrl-C)")
    p.add_argument("--state-db", default=None, metavar="FILE.db",
                   help="SQLite state store for the dashboard and hftmm kill (default: none)")
    p.add_argument("--record", metavar="DIR", help="also record the raw feed (for data convert / backtest)")
    p.add_argument("--env-file", default=".env", help="credentials file (testnet/live)")
    p.add_argument("--yes-i-mean-production", action="store_true",
                   help=f"skip the interactive confirmation of --live (else type {PROD_CONFIRM!r})")
    p.add_argument("--no-status", action="store_true", help="no terminal status line")
    add_feed_arguments(p)
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on this port (/metrics; needs hftmm[monitoring]; default: off)")
    p.add_argument("--metrics-addr", default="127.0.0.1",
                   help="address of the metrics endpoint (0.0.0.0 exposes it beyond this machine)")
    p.set_defaults(func=_cmd_live)

    k = sub.add_parser("kill", help="kill switch of a running session (through its state store)",
                       formatter_class=HelpFormatter,
                       description="Ask the session writing --state-db to trip its kill switch: cancel "
                                   "every order, optionally flatten, stop quoting.")
    k.add_argument("--state-db", required=True, metavar="FILE.db", help="the session's state store")
    k.add_argument("--reason", default="operator", help="recorded with the kill")
    k.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the session to acknowledge the kill (it polls at each publish, 1 Hz)")
    k.add_argument("--flatten", action="store_true", help="also close the position at market")
    k.set_defaults(func=_cmd_kill)


def _load(args: argparse.Namespace):
    import dataclasses

    from hftmm.config import (build_alert_config, build_config, build_exchange_config, build_portfolio_config,
                              load_toml)

    data = load_toml(args.config) if args.config else {}
    trading, risk = build_config(data, extra_sections=("exchange", "paper", "alerts", "portfolio"))
    exchange = build_exchange_config(data)
    alerts = build_alert_config(data)
    portfolio = build_portfolio_config(data)
    over = {k: v for k, v in (("max_total_notional", args.max_total_notional),
                              ("max_total_daily_loss", args.max_total_daily_loss)) if v is not None}
    if over:
        portfolio = dataclasses.replace(portfolio, **over)
    over_t = {k: v for k, v in (("market", getattr(args, "market", None)), ("leverage", getattr(args, "leverage", None)),
                                ("margin_type", getattr(args, "margin_type", None))) if v is not None}
    if over_t:
        trading = dataclasses.replace(trading, **over_t)      # validated again: ConfigError names the field
    symbols = [s.strip().upper() for s in args.symbol.split(",") if s.strip()] if args.symbol else [trading.symbol]
    tradings = [dataclasses.replace(trading, symbol=s) for s in symbols]
    return tradings, risk, exchange, alerts, portfolio


def _ws_api_url(args: argparse.Namespace) -> str:
    if args.ws_api_url:
        return args.ws_api_url
    if args.ws_url:
        return args.ws_url.rstrip("/") + "/ws-api/v3"
    from hftmm.live.binance_gateway import PRODUCTION_WS_API_URL, TESTNET_WS_API_URL
    return TESTNET_WS_API_URL if args.mode == "testnet" else PRODUCTION_WS_API_URL


def _cmd_live(args: argparse.Namespace) -> int:
    from hftmm.cli_common import feed_options
    from hftmm.live.engine import LiveEngine
    from hftmm.live.status import StatusLine

    from hftmm.strategy.base import load_strategy

    tradings, risk, exchange, alerts, portfolio = _load(args)      # ConfigError: one line from hftmm.cli
    strategy = load_strategy(args.strategy) if args.strategy else None
    if len(tradings) > 1:
        return _run_portfolio(args, tradings, risk, exchange, alerts, portfolio, strategy)
    trading = tradings[0]
    gateway = None
    if args.mode in ("testnet", "live"):
        if not _confirm_production(args, trading.symbol):
            return 2
        gateway = _gateway(args, trading.symbol, trading)
        if gateway is None:
            return 2
    status = None if args.no_status else StatusLine()
    engine = LiveEngine(trading, risk, mode=args.mode, gateway=gateway, exchange=exchange, strategy=strategy,
                        rest_url=args.rest_url,
                        ws_url=args.ws_url, state_db=args.state_db, status=status, record_dir=args.record,
                        alerts=alerts if alerts.enabled else None, metrics_port=args.metrics_port,
                        metrics_addr=args.metrics_addr, connector_options=feed_options(args))
    _install_signals(engine)
    summary = engine.run(args.duration or None)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    left = summary.get("unconfirmed_orders") or []
    if left:
        print(f"hftmm live: WARNING: {len(left)} orders were NOT confirmed cancelled at the end -- check them "
              f"on the exchange now: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


def _install_signals(engine: Any) -> None:
    """SIGINT/SIGTERM end the session (orders cancelled); SIGUSR1 trips the kill switch."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: engine.stop("interrupted (SIGINT)"))
        signal.signal(signal.SIGTERM, lambda *_: engine.stop("terminated (SIGTERM)"))
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, lambda *_: engine.request_kill("SIGUSR1", source="signal"))


def _confirm_production(args: argparse.Namespace, what: str) -> bool:
    if args.mode != "live" or args.yes_i_mean_production:
        return True
    print(f"hftmm live --live trades REAL funds on Binance production ({what}).\n"
          f"Type {PROD_CONFIRM!r} to continue: ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip() != PROD_CONFIRM:
        print("not confirmed; nothing was sent", file=sys.stderr)
        return False
    return True


def _gateway(args: argparse.Namespace, symbol: str, trading: Any = None) -> Any:
    """The order gateway of a testnet / live session (None: no credentials, said on stderr)."""
    from hftmm.execution.signing import CredentialsError, load_credentials
    from hftmm.live.binance_gateway import PRODUCTION_REST_URL, TESTNET_REST_URL, BinanceGateway

    try:
        signer = load_credentials(dotenv_path=args.env_file)
    except CredentialsError as exc:
        print(f"hftmm live: {exc}", file=sys.stderr)
        return None
    if trading is not None and trading.market == "usdm":
        from hftmm.live import futures_gateway as fg

        test = args.mode == "testnet"
        return fg.BinanceFuturesGateway(
            symbol, signer, rest_url=args.rest_url or (fg.USDM_TESTNET_REST_URL if test else fg.USDM_PRODUCTION_REST_URL),
            ws_url=args.ws_url or (fg.USDM_TESTNET_WS_URL if test else fg.USDM_PRODUCTION_WS_URL),
            leverage=trading.leverage, margin_type=trading.margin_type, allow_production=args.mode == "live")
    preset = TESTNET_REST_URL if args.mode == "testnet" else PRODUCTION_REST_URL
    return BinanceGateway(symbol, signer, rest_url=args.rest_url or preset, ws_api_url=_ws_api_url(args),
                          allow_production=args.mode == "live")


def _run_portfolio(args: argparse.Namespace, tradings: list, risk: Any, exchange: Any, alerts: Any,
                   portfolio: Any, strategy: Any) -> int:
    """Several symbols: one PortfolioEngine (one state DB, one kill switch, portfolio limits)."""
    from hftmm.cli_common import feed_options
    from hftmm.live.portfolio import PortfolioEngine

    symbols = ", ".join(t.symbol for t in tradings)
    if args.metrics_port is not None:
        print("hftmm live: --metrics-port serves one symbol's session; run several symbols without it "
              "(the state DB and the dashboard show every symbol)", file=sys.stderr)
        return 2
    gateways = {}
    if args.mode in ("testnet", "live"):
        if not _confirm_production(args, symbols):
            return 2
        for t in tradings:
            gw = _gateway(args, t.symbol, t)
            if gw is None:
                return 2
            gateways[t.symbol] = gw
    engine = PortfolioEngine(tradings, risk, portfolio, mode=args.mode, gateways=gateways, exchange=exchange,
                             strategy=strategy, rest_url=args.rest_url, ws_url=args.ws_url, state_db=args.state_db,
                             record_dir=args.record, alerts=alerts if alerts.enabled else None,
                             connector_options=feed_options(args))
    _install_signals(engine)
    summary = engine.run(args.duration or None)
    print(" ".join(f"{k}={summary[k]}" for k in ("mode", "symbols", "end_reason", "pnl", "notional", "max_notional",
                                                  "killed")))
    code = 0
    for sym, leg in summary["legs"].items():
        print(f"{sym}: " + " ".join(f"{k}={v}" for k, v in leg.items() if k != "unconfirmed_orders"))
        left = leg.get("unconfirmed_orders") or []
        if left:
            print(f"hftmm live: WARNING: {sym}: {len(left)} orders were NOT confirmed cancelled at the end -- "
                  f"check them on the exchange now: {', '.join(left)}", file=sys.stderr)
            code = 1
    return code


def _cmd_kill(args: argparse.Namespace) -> int:
    """Send ``kill`` to the session running on --state-db and wait until it has acted on it."""
    from hftmm.live.state import StateReader, StateStoreError, running_session, send_command

    try:
        who = running_session(args.state_db)
        if who is None:
            with StateReader(args.state_db) as r:
                last = r.latest_session()
            tail = ""
            if last is not None:
                ended = "ended: " + str(last["end_reason"]) if last["ended_ns"] is not None else \
                    "no end recorded: its process died"
                tail = f" (latest session {last['session_id']}, {last['mode']} {last['symbol']}, {ended})"
            print(f"hftmm kill: no session is running on {args.state_db}{tail}; nothing was killed",
                  file=sys.stderr)
            return 1
        sid = who["session_id"]
        cid = send_command(args.state_db, "kill", {"reason": args.reason, "flatten": bool(args.flatten)},
                           session_id=sid)
        deadline = time.monotonic() + args.timeout
        with StateReader(args.state_db) as r:
            while (done := r.command_consumed(cid)) is None and time.monotonic() < deadline:
                if running_session(args.state_db) is None:
                    break
                time.sleep(0.1)
            done = r.command_consumed(cid)
    except (StateStoreError, OSError) as exc:
        print(f"hftmm kill: {exc}", file=sys.stderr)
        return 2
    desc = f"session {sid} ({who.get('mode')} {who.get('symbol')}, pid {who.get('pid')})"
    if done is None:
        print(f"hftmm kill: {desc} did not acknowledge kill command {cid} within {args.timeout:g} s "
              f"-- check it (SIGUSR1 to its pid trips the kill switch too)", file=sys.stderr)
        return 1
    print(f"killed {desc}: its kill switch tripped (command {cid}, reason {args.reason!r}"
          f"{', flatten' if args.flatten else ''})")
    return 0
