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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hftmm", description="hftmm market-making toolkit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions and build information")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
