"""``hftmm simulate``: run the Binance-compatible exchange simulator on loopback."""
from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Optional, Sequence


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(subparsers) -> None:
    from hftmm.cli_common import HelpFormatter

    p = subparsers.add_parser("simulate", formatter_class=HelpFormatter,
                              help="run the Binance-compatible exchange simulator (loopback only)",
                              description="Serve Binance-shaped REST and WebSocket market data from a "
                                          "synthetic market or a recorded capture, with optional faults.")
    p.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot", help="spot or USD-M futures formats")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--capture", nargs="+", metavar="FILE", help="replay collector-format gzip capture(s)")
    src.add_argument("--synthetic", action="store_true", help="the seeded synthetic market (default)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="market speed: 1 = real time, X = X times, 0 = as fast as possible")
    p.add_argument("--faults", type=int, metavar="SEED", default=None,
                   help="inject random faults at the default rates with this seed")
    p.add_argument("--seed", type=int, default=None, help="synthetic market seed (default: the synthetic market's)")
    p.add_argument("--symbol", default="BTCUSDT", help="capture symbol")
    p.add_argument("--tick-size", default="0.01", help="capture price unit (price per tick)")
    p.add_argument("--lot-size", default="0.00000001", help="capture quantity unit (base units per lot)")
    p.add_argument("--depth-interval-ms", type=int, default=None,
                   help="primary depth interval (spot 100|1000, usdm 0|100|250|500; default 100)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--tls", action="store_true",
                   help="serve https:// and wss:// with a self-signed certificate for 127.0.0.1/localhost "
                        "(generated at start; its path is printed: give it to clients as their CA)")
    p.add_argument("--tls-dir", default=None, metavar="DIR",
                   help="write the TLS certificate and key into DIR (implies --tls; default: a new temporary folder)")
    acct = p.add_argument_group("order entry (spot and USD-M)",
                                "register the account `hftmm live --testnet` will sign for, so the whole "
                                "order path runs against this simulator")
    acct.add_argument("--account-from-env", action="store_true",
                      help="register the API key in BINANCE_API_KEY with BINANCE_API_SECRET (HMAC) or the "
                           "public half of BINANCE_PRIVATE_KEY_PATH (Ed25519/RSA), from the environment or "
                           "--env-file")
    acct.add_argument("--env-file", default=".env", help="credentials file")
    acct.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                      help="free balance of the account (repeatable; default spot: 1 base and 100000 quote "
                           "asset; USD-M: USDT=10000, the futures wallet)")
    acct.add_argument("--maker-rate", default=None,
                      help="maker commission as a fraction of notional (default: Binance's regular tier, "
                           "spot 0.001, USD-M 0.0002)")
    acct.add_argument("--taker-rate", default=None,
                      help="taker commission as a fraction of notional (default: spot 0.001, USD-M 0.0005)")
    fut = p.add_argument_group("USD-M funding")
    fut.add_argument("--funding-interval", type=float, default=8 * 3600.0, metavar="S",
                     help="seconds between funding settlements, aligned to the epoch (28800: 00/08/16 UTC)")
    fut.add_argument("--funding-rate", default="0.0001",
                     help="funding rate per settlement as a fraction (longs pay a positive rate)")
    p.set_defaults(func=run)


def _parse_balances(items: Sequence[str]) -> Optional[dict[str, str]]:
    """``["BTC=1", "USDT=5000"]`` -> {"BTC": "1", "USDT": "5000"}; ValueError naming the bad item."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        asset, sep, amount = item.partition("=")
        asset = asset.strip().upper()
        try:
            ok = bool(sep) and asset.isalnum() and Decimal(amount.strip()) >= 0
        except InvalidOperation:
            ok = False
        if not ok:
            raise ValueError(f"--balance {item!r}: expected ASSET=AMOUNT with a non-negative decimal amount")
        out[asset] = amount.strip()
    return out


def _register_account(sim, args: argparse.Namespace) -> str:
    """Add the account of the environment's credentials; returns its key type (never the key)."""
    from hftmm.execution.signing import HmacSigner, load_credentials
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    signer = load_credentials(dotenv_path=args.env_file)
    for name in ("maker_rate", "taker_rate"):
        if getattr(args, name) is None:
            continue
        try:
            rate = Decimal(getattr(args, name))
        except InvalidOperation:
            rate = Decimal(-1)
        if not 0 <= rate < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a fraction in [0, 1)")
    kw: dict = {"balances": _parse_balances(args.balance), "maker_rate": args.maker_rate,
                "taker_rate": args.taker_rate}
    if isinstance(signer, HmacSigner):
        kw["hmac_secret"] = signer._secret.decode()
    else:
        pem = signer.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        kw["ed25519_public_pem" if signer.key_type == "ED25519" else "rsa_public_pem"] = pem
    sim.add_account(signer.api_key, **kw)
    return signer.key_type


def run(args: argparse.Namespace) -> int:
    from hftmm.simulator import CaptureSource, ExchangeSimulator, FaultConfig, SyntheticSource
    from hftmm.synthetic import SyntheticConfig

    if not _loopback(args.host):
        print(f"refusing to listen on {args.host!r}: only loopback addresses are allowed", file=sys.stderr)
        return 2
    if args.speed < 0:
        print("--speed must be >= 0", file=sys.stderr)
        return 2
    if args.capture:
        source = CaptureSource(args.capture, speed=args.speed, symbol=args.symbol, tick_size=args.tick_size,
                               lot_size=args.lot_size)
    else:
        cfg = SyntheticConfig() if args.seed is None else SyntheticConfig(seed=args.seed)
        source = SyntheticSource(cfg, speed=args.speed)
    faults = FaultConfig.default(args.faults) if args.faults is not None else None
    interval = args.depth_interval_ms if args.depth_interval_ms is not None else 100
    try:
        funding_rate = Decimal(args.funding_rate)
        if not funding_rate.is_finite() or abs(funding_rate) >= 1 or args.funding_interval <= 0:
            raise InvalidOperation
    except InvalidOperation:
        print(f"simulate: --funding-rate {args.funding_rate!r} must be a fraction in (-1, 1) and "
              f"--funding-interval > 0", file=sys.stderr)
        return 2
    try:
        _parse_balances(args.balance)
    except ValueError as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    try:
        tls = args.tls_dir or args.tls
        sim = ExchangeSimulator(market=args.market, source=source, faults=faults, host=args.host, port=args.port,
                                depth_interval_ms=interval, tls=tls, funding_interval_s=args.funding_interval,
                                funding_rate=str(funding_rate))
        account = _register_account(sim, args) if args.account_from_env else None
        sim.start()
    except (ValueError, RuntimeError, OSError) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"REST {sim.rest_url}", flush=True)
        print(f"WS {sim.ws_url}", flush=True)
        if sim.cert_path:
            print(f"TLS certificate {sim.cert_path} (self-signed for 127.0.0.1 and localhost: trust it as a CA, "
                  "e.g. SSL_CERT_FILE or requests' verify=)", flush=True)
        if account is not None:
            print(f"order entry: account registered ({account} key from the environment)", flush=True)
        deadline = time.monotonic() + args.duration if args.duration is not None else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.2)
    finally:
        sim.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
