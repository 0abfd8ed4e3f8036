"""``hftmm sweep``: a parameter sweep from a TOML grid, locally or on a Dask cluster.

grid.toml::

    [base]                      # BacktestConfig fields shared by every run
    start_date = "2024-08-08"
    end_date = "2024-08-08"

    [grid]                      # field = [values]: every combination
    gamma = [0.05, 0.1, 0.5]
    time_horizon = [10.0, 30.0, 120.0]
    min_spread = [0.0, 0.2, 1.0]

    [random]                    # optional, instead of [grid]: seeded random search
    n = 20
    seed = 1
    gamma = {low = 0.01, high = 1.0, log = true}
    model = ["as", "glft"]      # a list: uniform choice
    requote_threshold = {low = 0, high = 3, int = true}

    [analysis]                  # optional
    heatmaps = [["gamma", "time_horizon"]]   # default: each pair of the first three parameters
    metrics = ["sharpe_ratio", "total_pnl"]  # of the heatmaps

Writes to --out: results.parquet (as jobs finish; --resume skips what is
there), ranking_<metric>.csv, sensitivity_<metric>.csv, heatmap_*.png and
best.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from typing import Any

_RANDOM_KEYS = ("n", "seed")


def add_parser(subparsers) -> None:
    from hftmm.cli_common import HelpFormatter

    p = subparsers.add_parser("sweep", help="parameter sweep (grid or random search) of the backtest",
                              formatter_class=HelpFormatter,
                              description=__doc__.split("\n", 1)[1].strip() + "\n\nCombinations sharing data "
                              "run in one replay pass. Ctrl-C stops within a couple of seconds and keeps "
                              "the finished rows (--resume continues).",
                              epilog="exit status: 0 at least one combination ran; 1 every combination "
                                     "failed (the first error is printed); 2 bad grid or options; "
                                     "130 interrupted")
    p.add_argument("--grid", required=True, metavar="GRID.toml", help="the grid file (format above)")
    p.add_argument("--out", default="sweep_out", metavar="DIR", help="output directory")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="run on this Dask scheduler (needs distributed; default: local processes)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: the CPU count)")
    p.add_argument("--group-size", type=int, default=None,
                   help="combinations per replay pass, i.e. per job (default: spread over the workers)")
    p.add_argument("--resume", action="store_true", help="continue DIR/results.parquet, skipping done combinations")
    p.add_argument("--data-dir", default="./data", help="where relative data paths are resolved")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--synthetic-seconds", type=float, default=None, help=argparse.SUPPRESS)  # tests
    p.set_defaults(func=cmd_sweep)


def load_grid(path: str) -> dict[str, Any]:
    """The grid file (format: the module doc); ConfigError naming the file when it is
    missing, not TOML, or not of this shape."""
    from hftmm.config import ConfigError, load_toml

    doc = load_toml(path)
    unknown = set(doc) - {"base", "grid", "random", "analysis"}
    if unknown:
        raise ConfigError(path, f"unknown table(s) {sorted(unknown)} (known: base, grid, random, analysis)")
    if ("grid" in doc) == ("random" in doc):
        raise ConfigError(path, "needs exactly one of [grid] and [random]")
    for name in ("base", "grid", "random", "analysis"):
        if name in doc and not isinstance(doc[name], dict):
            raise ConfigError(f"{path}: {name}", f"must be a table [{name}], got {doc[name]!r}")
    return doc


def cmd_sweep(args: argparse.Namespace) -> int:
    from hftmm.backtesting import BacktestConfig, BacktestEngine
    from hftmm.backtesting import sweep
    from hftmm.config import ConfigError

    doc = load_grid(args.grid)                     # ConfigError: one line from hftmm.cli
    base = BacktestConfig.from_dict(doc.get("base", {}))
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.parquet")
    if os.path.exists(results_path) and not args.resume:
        raise ConfigError("--out", f"{results_path} exists: pass --resume to continue it, or another --out")
    if "grid" in doc:
        kw: dict[str, Any] = dict(method="grid")
        space: Any = doc["grid"]
    else:
        r = dict(doc["random"])
        kw = dict(method="random", n_samples=int(r.get("n", 20)), seed=int(r.get("seed", 0)))
        space = {k: v for k, v in r.items() if k not in _RANDOM_KEYS}
    engine = BacktestEngine(args.data_dir, synthetic_day_seconds=args.synthetic_seconds)
    executor, client = None, None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("--scheduler", "needs dask distributed (pip install distributed)") from None
        client = Client(args.scheduler)
        executor = client.get_executor()
        if args.workers is None:   # spread the groups over the cluster's threads
            args.workers = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or None
    try:
        df = sweep.run_sweep(engine, base, space, executor=executor, results_path=results_path,
                             progress=not args.no_progress, group_size=args.group_size, workers=args.workers, **kw)
    finally:
        if client is not None:
            client.close()
    write_reports(df, args.out, doc.get("analysis", {}))
    analysis = sweep.analyze_results(df)
    c = analysis["counts"]
    print(f"{c['total']} combinations: {c['ok']} ok, {c['error']} failed -> {results_path}")
    for name, row in analysis["best_result"].items():
        if row is None:
            print(f"  best {name}: n/a")
            continue
        params = {p: row[p] for p in analysis["params"]}
        metric = dict(sweep.BEST_METRIC)[name]
        print(f"  best {name}: {metric}={_fmt(row[metric])} {json.dumps(params, default=str)}")
    if c["total"] and not c["ok"]:
        first = df[df["status"] == "error"].iloc[0]
        params = {p: first[p] for p in analysis["params"] if p in first}
        msg = " ".join(str(first["error"]).split("\n")[0].split())
        print(f"hftmm sweep: every combination failed; the first {json.dumps(params, default=str)}: {msg}",
              file=sys.stderr)
        return 1
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else str(v)


def write_reports(df, out: str, analysis_cfg: dict[str, Any]) -> dict[str, Any]:
    """Rankings, sensitivities (CSV), heatmaps (PNG) and best.json in ``out``."""
    from hftmm.backtesting import sweep

    a = sweep.analyze_results(df)
    for m, t in a["ranking"].items():
        t.to_csv(os.path.join(out, f"ranking_{m}.csv"), index=False)
    for m, t in a["sensitivity"].items():
        t.to_csv(os.path.join(out, f"sensitivity_{m}.csv"))
    with open(os.path.join(out, "best.json"), "w") as fh:
        json.dump(a["best_result"], fh, indent=2, default=lambda v: None if v != v else str(v))
    params = [p for p in a["params"] if df[p].nunique() > 1] if len(df) else []
    pairs = analysis_cfg.get("heatmaps") or list(itertools.combinations(params[:3], 2))
    metrics = analysis_cfg.get("metrics") or ["sharpe_ratio", "total_pnl"]
    ok = df[df["status"] == "ok"] if len(df) else df
    for x, y in pairs:
        for m in metrics:
            if len(ok) and m in ok and ok[m].notna().any():
                sweep.heatmap(df, m, x, y, os.path.join(out, f"heatmap_{m}_{x}_{y}.png"))
    return a
