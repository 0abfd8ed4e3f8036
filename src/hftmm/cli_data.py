"""``hftmm data convert`` and ``hftmm data verify`` (wired into hftmm.cli by
``add_parser``).

Exit status: 0 clean, 1 when the input had problems (malformed lines, gaps,
bookTicker mismatches, an unsynchronised book at the end), 2 when the command
could not run (a missing input, unusable data, a store file that cannot be
written: ``hftmm.errors.HftmmError``), with its message as one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from hftmm.captures import MAX_LINE_BYTES
from hftmm.data.convert import FORMATS
from hftmm.cli_common import HelpFormatter, fail
from hftmm.errors import HftmmError


def add_parser(subparsers) -> None:
    """Register ``data`` (with ``convert`` and ``verify``) on an argparse subparsers object."""
    p = subparsers.add_parser("data", help="market-data files: convert to the event store, verify captures",
                              description="Market-data files: convert captures and CSVs to the Parquet event "
                                          "store, verify captures against Binance's book rules.",
                              formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="data_command", required=True)

    c = sub.add_parser("convert", help="raw captures / public-data CSVs -> Parquet event store",
                       formatter_class=HelpFormatter,
                       description="Convert raw captures (hftmm record / hftbacktest collector gzip, cryptofeed "
                                   "logs) and public-data CSVs (data.binance.vision, Tardis) into the event "
                                   "store <out>/<SYMBOL>/<YYYY-MM-DD>.parquet. Files are written under "
                                   "temporary names and replace existing ones only when the whole run "
                                   f"succeeded. Lines longer than {MAX_LINE_BYTES >> 20} MiB are counted as "
                                   "malformed and skipped.",
                       epilog="exit status: 0 clean; 1 malformed lines or an unsynchronised book (the "
                              "store is written); 2 nothing written (missing input, unusable data, write error)")
    c.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="capture or CSV files, in time order (plain, .gz or .zip); a cryptofeed .ws log "
                        "brings the .http log beside it")
    c.add_argument("--out", required=True, metavar="DIR", help="store root folder: <out>/<SYMBOL>/<YYYY-MM-DD>.parquet")
    c.add_argument("--symbol", help="symbol, e.g. BTCUSDT; filters multi-symbol input "
                                    "(default: from the data or the file name)")
    c.add_argument("--market", choices=("spot", "usdm"),
                   help="market of the data (default: from the data: pu in depth updates -> usdm)")
    c.add_argument("--format", default="auto", choices=FORMATS,
                   help="input format; auto tells them apart by name and content")
    _units(c)
    c.add_argument("--exchange-info", metavar="FILE",
                   help="exchangeInfo JSON giving the units per symbol (default: --tick-size/--lot-size, "
                        "else inferred from the data)")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    c.add_argument("--raw", action="store_true",
                   help="write depth/snapshot records in receive order, not as the book sync applies them "
                        "(default: as the sync applies them)")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object "
                                                       "(default: a text summary)")
    c.set_defaults(func=run_convert)

    v = sub.add_parser("verify", help="replay captures through decoder + sync + book and check bookTickers",
                       formatter_class=HelpFormatter,
                       description="Replay captures through the decoder, the book sync and the book, and "
                                   "check the rebuilt best bid/ask against every bookTicker carrying the same "
                                   "update id. Collector files of a symbol are checked as one stream in order "
                                   f"of their first receive time. Lines longer than {MAX_LINE_BYTES >> 20} MiB "
                                   "are counted as malformed.",
                       epilog="exit status: 0 OK; 1 problems found (malformed lines, gaps not recovered, "
                              "mismatches, corrupt or truncated files); 2 could not run (missing input)")
    v.add_argument("files", nargs="+", metavar="FILE",
                   help="collector gzip captures and/or cryptofeed .ws logs (the .http log beside is read)")
    v.add_argument("--market", choices=("spot", "usdm"),
                   help="market of the data (default: from the data: pu in depth updates -> usdm)")
    _units(v)
    v.add_argument("--json", action="store_true", help="print one JSON object (default: a text report)")
    v.set_defaults(func=run_verify)


def _units(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tick-size", metavar="PRICE",
                   help="price unit, a decimal in quote currency, e.g. 0.01; give with --lot-size "
                        "(default: the finest decimals seen in the data)")
    p.add_argument("--lot-size", metavar="QTY",
                   help="quantity unit, a decimal in base currency, e.g. 0.00001; give with --tick-size "
                        "(default: the finest decimals seen in the data)")


def _error(exc: BaseException) -> int:
    return fail("hftmm data", exc)


def run_convert(args: argparse.Namespace) -> int:
    from hftmm.data.convert import convert

    if (args.tick_size is None) != (args.lot_size is None):
        print("hftmm data: give both --tick-size and --lot-size", file=sys.stderr)
        return 2
    try:
        rep = convert(args.inputs, args.out, fmt=args.format, symbol=args.symbol, market=args.market,
                      tick_size=args.tick_size, lot_size=args.lot_size, exchange_info=args.exchange_info,
                      progress=args.progress, normalize=not getattr(args, "raw", False))
    except (HftmmError, OSError, ValueError) as exc:
        return _error(exc)
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
        print("hftmm data: give both --tick-size and --lot-size", file=sys.stderr)
        return 2
    try:
        res = verify_files(args.files, market=args.market, tick_size=args.tick_size, lot_size=args.lot_size)
    except (HftmmError, OSError) as exc:
        return _error(exc)
    print(json.dumps(res) if args.json else format_report(res))
    return 0 if res["ok"] else 1


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``data`` sub-command."""
    return int(args.func(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftmm", formatter_class=HelpFormatter)
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -c "from hftmm.cli_data import main; main([...])"``)."""
    return run(build_parser().parse_args(argv))
