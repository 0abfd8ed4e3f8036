"""``hftmm data convert`` and ``hftmm data verify`` (wired into hftmm.cli by
``add_parser``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from hftmm.data.convert import FORMATS


def add_parser(subparsers) -> None:
    """Register ``data`` (with ``convert`` and ``verify``) on an argparse subparsers object."""
    p = subparsers.add_parser("data", help="market-data files: convert to the event store, verify captures")
    sub = p.add_subparsers(dest="data_command", required=True)

    c = sub.add_parser("convert", help="raw captures / public-data CSVs -> Parquet event store")
    c.add_argument("inputs", nargs="+", metavar="INPUT")
    c.add_argument("--out", required=True, help="store root: <out>/<SYMBOL>/<YYYY-MM-DD>.parquet")
    c.add_argument("--symbol", help="symbol (default: from the data or the file name); filters multi-symbol input")
    c.add_argument("--market", choices=("spot", "usdm"), help="default: from the data (pu -> usdm)")
    c.add_argument("--format", default="auto", choices=FORMATS)
    _units(c)
    c.add_argument("--exchange-info", help="exchangeInfo JSON: units per symbol (captures.decoder_units)")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    c.add_argument("--raw", action="store_true",
                   help="write depth/snapshot records in receive order, not as the book sync applies them")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")
    c.set_defaults(func=run_convert)

    v = sub.add_parser("verify", help="replay captures through decoder + sync + book and check bookTickers")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--market", choices=("spot", "usdm"), help="default: from the data (pu -> usdm)")
    _units(v)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=run_verify)


def _units(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tick-size", help="price unit, e.g. 0.01 (default: finest decimals seen in the data)")
    p.add_argument("--lot-size", help="quantity unit, e.g. 0.00001 (default: finest decimals seen)")


def run_convert(args: argparse.Namespace) -> int:
    from hftmm.data.convert import convert

    if (args.tick_size is None) != (args.lot_size is None):
        print("error: give both --tick-size and --lot-size", file=sys.stderr)
        return 2
    try:
        rep = convert(args.inputs, args.out, fmt=args.format, symbol=args.symbol, market=args.market,
                      tick_size=args.tick_size, lot_size=args.lot_size, exchange_info=args.exchange_info,
                      progress=args.progress, normalize=not getattr(args, "raw", False))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    d = rep.as_dict()
    if args.json:
        print(json.dumps(d))
    else:
        for f in rep.files:
            print(f)
        print(f"{rep.lines} lines, {rep.messages} messages, {sum(rep.rows.values())} events, "
              f"{rep.malformed} malformed, {rep.seconds:.2f} s ({rep.lines_per_s:,.0f} lines/s)")
        for sym, b in rep.books.items():
            print(f"{sym}: book events applied {b['applied']}, dropped {b['dropped_old'] + b['buffer_dropped']}, "
                  f"not written at the end {b['pending']}, gaps {b['gaps']}, resyncs {b['resyncs']}, "
                  f"crossed {b['crossed']}, unsynced spans {b['unsynced_spans']} "
                  f"({b['unsynced_seconds']:.3f} s), initial wait {b['initial_wait_seconds']:.3f} s")
        for p in rep.problems[:10]:
            print(f"  {p}", file=sys.stderr)
    return 0 if rep.malformed == 0 and not rep.problems else 1


def run_verify(args: argparse.Namespace) -> int:
    from hftmm.data.verify_cli import format_report, verify_files

    if (args.tick_size is None) != (args.lot_size is None):
        print("error: give both --tick-size and --lot-size", file=sys.stderr)
        return 2
    res = verify_files(args.files, market=args.market, tick_size=args.tick_size, lot_size=args.lot_size)
    print(json.dumps(res) if args.json else format_report(res))
    return 0 if res["ok"] else 1


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``data`` sub-command."""
    return int(args.func(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftmm")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -c "from hftmm.cli_data import main; main([...])"``)."""
    return run(build_parser().parse_args(argv))
