"""``hftmm dashboard``: the Streamlit dashboard (wired into hftmm.cli by ``add_parser``)."""
from __future__ import annotations

import argparse
import os
import sys


def add_parser(subparsers) -> None:
    """Register ``dashboard`` on an argparse subparsers object."""
    from hftmm.cli_common import HelpFormatter

    p = subparsers.add_parser("dashboard", help="the Streamlit dashboard (live view, performance, backtesting, data)",
                              formatter_class=HelpFormatter,
                              description="Serve the dashboard on http://HOST:PORT (needs the dashboard extra: "
                                          "pip install 'hftmm[dashboard]').")
    p.add_argument("--state-db", default="state.db", help="the live engine's state database")
    p.add_argument("--results", default="runs", help="saved backtests, sweeps and dashboard jobs")
    p.add_argument("--data", default="data", help="recorded and converted market data")
    p.add_argument("--port", type=int, default=8501, help="TCP port")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.set_defaults(func=cmd_dashboard)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line (headless, no usage stats, no file watcher)."""
    app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard", "app.py")
    return [sys.executable, "-m", "streamlit", "run", app,
            "--server.headless", "true", "--server.address", args.host, "--server.port", str(args.port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer"]


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        import plotly  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as e:
        print(f"error: {e.name} is missing: pip install 'hftmm[dashboard]'", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.update(HFTMM_STATE_DB=os.path.abspath(args.state_db), HFTMM_RESULTS=os.path.abspath(args.results),
               HFTMM_DATA=os.path.abspath(args.data))
    os.makedirs(env["HFTMM_RESULTS"], exist_ok=True)
    print(f"hftmm dashboard on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    cmd = streamlit_command(args)
    # become streamlit (signals reach the server; nothing left behind)
    os.execve(cmd[0], cmd, env)
    return 0  # pragma: no cover - execve does not return
