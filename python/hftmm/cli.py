"""The ``hftmm`` command line. The CLI (not the library) configures logging."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence


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

    from hftmm.data_ingestion import BinanceConnector, Recorder

    stop = threading.Event()
    _install_stop_signals(stop)
    rec = Recorder(args.out, args.symbol, args.market, flush_interval_s=args.flush_interval).start()
    conn = BinanceConnector(args.symbol, market=args.market, testnet=args.testnet, rest_url=args.rest_url,
                            ws_url=args.ws_url, depth_speed_ms=args.depth_speed_ms,
                            snapshot_limit=args.snapshot_limit, on_raw=rec.write)
    conn.start()
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
    print(json.dumps({"lines": rec.lines_written, "files": rec.files, **conn.statistics()}, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftmm", description="hftmm market-making toolkit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions and build information")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("record", help="record Binance market data to crash-safe gzip files")
    p.add_argument("--symbol", default="BTCUSDT")
    p.add_argument("--market", choices=["spot", "usdm"], default="spot")
    p.add_argument("--testnet", action="store_true", help="use Binance's testnet endpoints")
    p.add_argument("--out", default="./data/raw", help="output directory")
    p.add_argument("--rest-url", default=None, help="REST base URL (default: Binance's)")
    p.add_argument("--ws-url", default=None, help="WebSocket base URL (default: Binance's)")
    p.add_argument("--depth-speed-ms", type=int, default=100)
    p.add_argument("--snapshot-limit", type=int, default=1000)
    p.add_argument("--flush-interval", type=float, default=1.0, help="seconds between gzip members")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: until Ctrl-C)")
    p.set_defaults(func=_cmd_record)

    for mod in ("hftmm.cli_simulate", "hftmm.cli_data"):
        try:
            module = __import__(mod, fromlist=["add_parser"])
        except ImportError:
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
