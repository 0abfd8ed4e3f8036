"""The process behind a dashboard job: ``python -m hftmm.dashboard.worker JOB_DIR``.

Reads ``JOB_DIR/job.json`` (see :mod:`hftmm.dashboard.jobs`), runs the job and
keeps ``JOB_DIR/status.json`` current:

* backtest -- ``BacktestEngine.run_backtest`` with a progress callback (the
  ``hftmm backtest`` command only draws its bar on a terminal), then
  ``BacktestResult.save(JOB_DIR)``: the same files as ``hftmm backtest --save``;
* sweep -- the ``hftmm sweep`` command itself on ``JOB_DIR/grid.toml`` with
  ``--out JOB_DIR``; progress = rows in results.parquet / combinations;
* verify -- the ``hftmm data verify --json`` command; the report (with the
  file's size and mtime, to tell when it goes stale) to the spec's ``out``.

SIGTERM ends the job as ``cancelled``.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import threading
import time
import traceback
from typing import Any

from hftmm.dashboard.jobs import JOB_FILE, STATUS_FILE, write_json_atomic


class Cancelled(Exception):
    pass


class StatusWriter:
    """Writes status.json, at most every ``min_interval_s`` for progress."""

    def __init__(self, job_dir: str, min_interval_s: float = 0.2) -> None:
        self.path = os.path.join(job_dir, STATUS_FILE)
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._lock = threading.Lock()

    def write(self, force: bool = True, **st: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.min_interval_s:
                return
            self._last = now
            write_json_atomic(self.path, st)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"not representable in TOML: {v}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"not representable in TOML: {v!r}")


def grid_toml(base: dict, grid: dict) -> str:
    """A ``hftmm sweep`` grid file: [base] (None values left out) and [grid]."""
    lines = ["[base]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in base.items() if v is not None]
    lines += ["", "[grid]"]
    lines += [f"{k} = {_toml_value(list(v))}" for k, v in grid.items()]
    return "\n".join(lines) + "\n"


def run_backtest(job_dir: str, spec: dict, status: StatusWriter) -> dict:
    from hftmm.backtesting import BacktestConfig, BacktestEngine

    config = BacktestConfig.from_dict(spec["config"])
    engine = BacktestEngine(spec.get("data_dir", "./data"), synthetic_day_seconds=spec.get("synthetic_seconds"))
    t0 = time.monotonic()

    def progress(frac: float, events: int) -> None:
        status.write(False, state="running", fraction=round(frac, 4),
                     message=f"{events:,} events, {time.monotonic() - t0:.1f} s")

    result = engine.run_backtest(config, progress=progress)
    status.write(state="running", fraction=1.0, message="saving results")
    result.save(job_dir)
    p = result.performance
    return dict(total_pnl=p.total_pnl, sharpe_ratio=p.sharpe_ratio, max_drawdown=p.max_drawdown,
                total_trades=p.total_trades, events=result.events, elapsed_s=result.elapsed_s)


def run_sweep(job_dir: str, spec: dict, status: StatusWriter) -> dict:
    import pyarrow.parquet as pq

    from hftmm import cli

    grid_path = os.path.join(job_dir, "grid.toml")
    with open(grid_path, "w") as fh:
        fh.write(grid_toml(spec["base"], spec["grid"]))
    total = max(int(spec.get("combinations", 1)), 1)
    results = os.path.join(job_dir, "results.parquet")
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.3):
            try:
                n = pq.ParquetFile(results).metadata.num_rows
            except Exception:  # noqa: BLE001 - not there yet / being replaced
                continue
            status.write(state="running", fraction=min(n / total, 1.0), message=f"{n}/{total} combinations")

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    argv = ["sweep", "--grid", grid_path, "--out", job_dir, "--no-progress", "--workers", str(spec.get("workers", 1)),
            "--data-dir", spec.get("data_dir", "./data")]
    if spec.get("synthetic_seconds"):
        argv += ["--synthetic-seconds", str(spec["synthetic_seconds"])]
    try:
        rc = cli.main(argv)
    finally:
        stop.set()
        th.join(2.0)
    if rc != 0:
        raise RuntimeError(f"hftmm sweep exited with {rc}")
    n = pq.ParquetFile(results).metadata.num_rows
    return dict(combinations=n)


def run_verify(job_dir: str, spec: dict, status: StatusWriter) -> dict:
    from hftmm import cli

    path = spec["path"]
    st = os.stat(path)
    status.write(state="running", fraction=0.0, message=f"verifying {os.path.basename(path)}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["data", "verify", path, "--json"])
    report = json.loads(buf.getvalue().strip().splitlines()[-1])
    rec = dict(path=path, size=st.st_size, mtime=st.st_mtime, ok=bool(report.get("ok")) and rc == 0,
               verified_at=time.time(), report=report)
    os.makedirs(os.path.dirname(spec["out"]), exist_ok=True)
    write_json_atomic(spec["out"], rec)
    write_json_atomic(os.path.join(job_dir, "report.json"), rec)
    return dict(ok=rec["ok"], messages=report.get("totals", {}).get("messages"))


RUNNERS = {"backtest": run_backtest, "sweep": run_sweep, "verify": run_verify}


def _summary(kind: str, r: dict) -> str:
    """The one-line message of a finished job."""
    if kind == "backtest":
        return (f"PnL {r['total_pnl']:,.4f}, {r['total_trades']:,} fills, "
                f"{r['events']:,} events in {r['elapsed_s']:.1f} s")
    if kind == "sweep":
        return f"{r['combinations']} combinations"
    return "clean" if r.get("ok") else "problems found"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m hftmm.dashboard.worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = os.path.abspath(argv[0])
    with open(os.path.join(job_dir, JOB_FILE)) as fh:
        meta = json.load(fh)
    status = StatusWriter(job_dir)

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise Cancelled()

    import signal

    signal.signal(signal.SIGTERM, on_term)
    status.write(state="running", fraction=0.0, message="started")
    try:
        result = RUNNERS[meta["kind"]](job_dir, meta.get("spec", {}), status)
    except Cancelled:
        status.write(state="cancelled", fraction=0.0, message="cancelled", finished=time.time())
        return 1
    except BaseException as e:  # noqa: BLE001 - recorded for the page
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        status.write(state="failed", fraction=0.0, message=f"{type(e).__name__}: {e}", error=tb[-4000:],
                     finished=time.time())
        return 1
    status.write(state="done", fraction=1.0, message=_summary(meta["kind"], result), result=result,
                 finished=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
