"""What every ``hftmm`` sub-command shares: the help formatter and one-line errors."""
from __future__ import annotations

import argparse
import sys
import textwrap


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default. No "(default: None)" / "(default:
    False)": such an option says in its help what happens when it is not given.
    Descriptions and epilogs are wrapped paragraph by paragraph; a paragraph whose
    lines are indented (an example, a file format) is printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if lines and all(ln.startswith(" ") or not ln.strip() for ln in lines):
                out.append("\n".join(indent + ln for ln in lines))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or (action.default is False and action.nargs == 0) \
                or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def fail(prog: str, exc: BaseException) -> int:
    """Print ``<prog>: <message>`` to stderr; exit status 2 (the command could not run)."""
    print(f"{prog}: {one_line(exc)}", file=sys.stderr)
    return 2


def add_feed_arguments(p) -> None:
    """--feeds / --ws-urls: redundant market-data connections (BinanceConnector)."""
    p.add_argument("--feeds", type=int, default=2, metavar="N",
                   help="parallel market-data connections, merged by update id")
    p.add_argument("--ws-urls", default=None, metavar="URL,URL",
                   help="stream base URLs the feeds use in turn (default: --ws-url, or on spot production "
                        "wss://stream.binance.com:9443 and :443)")


def feed_options(args) -> dict:
    """Connector keyword arguments from --feeds / --ws-urls."""
    out: dict = {"feeds": args.feeds}
    if args.ws_urls:
        out["ws_urls"] = [u.strip() for u in args.ws_urls.split(",") if u.strip()]
    return out
