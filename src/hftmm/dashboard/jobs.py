"""Background jobs started from the dashboard: backtests, sweeps, verifies.

Each job is a folder and a detached process (its own session, so a page
reload, a closed tab or a restarted dashboard does not stop it):

* ``job.json`` -- kind, id, spec, command, pid, start time (written at start);
* ``status.json`` -- state (``running`` / ``done`` / ``failed`` /
  ``cancelled``), fraction done (0..1), a message, the end time and, for a
  backtest, its headline metrics; the worker (:mod:`hftmm.dashboard.worker`)
  rewrites it atomically as it goes and the pages poll it;
* ``worker.log`` -- the process's stdout and stderr;
* the results: a backtest's folder is ``BacktestResult.save``'s (config.json,
  metrics.json, trades.parquet, timeseries.parquet); a sweep's is ``hftmm
  sweep --out``'s (grid.toml, results.parquet, rankings, heatmaps, best.json);
  a verify's ``report.json`` goes to the verify folder the Data page reads.

A job whose status says running but whose process is gone is reported as
``died``. Folders: ``<results>/backtests/<id>``, ``<results>/sweeps/<id>``,
``<results>/verify/`` (reports) and ``<results>/verify/jobs/<id>``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

KINDS = {"backtest": "backtests", "sweep": "sweeps", "verify": os.path.join("verify", "jobs")}
JOB_FILE = "job.json"
STATUS_FILE = "status.json"
LOG_FILE = "worker.log"

#: seconds a job may show no pid (its process being started) before it counts as died
START_GRACE_S = 30.0
_procs: dict[int, subprocess.Popen] = {}   # started here: reaped when polled (no zombies)


@dataclass
class Job:
    """A job as its folder describes it (see the module doc)."""

    id: str
    kind: str
    dir: str
    spec: dict = field(default_factory=dict)
    pid: Optional[int] = None
    started: float = 0.0               # s since the epoch
    state: str = "starting"
    fraction: float = 0.0
    message: str = ""
    finished: Optional[float] = None
    result: dict = field(default_factory=dict)
    error: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def label(self) -> str:
        return f"{self.id} [{self.state}]"


def write_json_atomic(path: str, obj: Any) -> None:
    """Write JSON to a temp file and rename it over ``path`` (readers never see half a file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(v: Any) -> Any:
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def new_id(name: str = "") -> str:
    """``YYYYmmdd-HHMMSS[-name]-xxxx`` (sortable by start time, unique)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40].strip("-")
    return "-".join(p for p in (stamp, safe, secrets.token_hex(2)) if p)


def _pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    p = _procs.get(pid)
    if p is not None:
        if p.poll() is None:
            return True
        _procs.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie (not ours to reap) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def start(kind: str, results_root: str, spec: dict, name: str = "", env: Optional[dict] = None) -> Job:
    """Create the job's folder and start its worker process; returns at once."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    jid = new_id(name)
    d = os.path.abspath(os.path.join(results_root, KINDS[kind], jid))
    os.makedirs(d, exist_ok=False)
    cmd = [sys.executable, "-m", "hftmm.dashboard.worker", d]
    job = Job(jid, kind, d, spec, started=time.time())
    write_json_atomic(os.path.join(d, JOB_FILE), dict(id=jid, kind=kind, spec=spec, cmd=cmd, pid=None,
                                                      started=job.started))
    write_json_atomic(os.path.join(d, STATUS_FILE), dict(state="starting", fraction=0.0, message="starting"))
    with open(os.path.join(d, LOG_FILE), "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d,
                                env=env or dict(os.environ), start_new_session=True)
    _procs[proc.pid] = proc
    job.pid = proc.pid
    meta = _read_json(os.path.join(d, JOB_FILE)) or {}
    meta["pid"] = proc.pid
    write_json_atomic(os.path.join(d, JOB_FILE), meta)
    return job


def start_backtest(results_root: str, config: dict, synthetic_seconds: Optional[float] = None,
                   data_dir: str = "./data", name: str = "") -> Job:
    """A backtest of ``config`` (BacktestConfig fields); ``synthetic_seconds``:
    only the first seconds of each synthetic day (None: whole days)."""
    from hftmm.backtesting import BacktestConfig

    BacktestConfig.from_dict(config)   # ConfigError now, not in the worker
    return start("backtest", results_root, dict(config=config, synthetic_seconds=synthetic_seconds,
                                                data_dir=os.path.abspath(data_dir)),
                 name or f"{config.get('model', 'as')}-g{config.get('gamma', '')}-T{config.get('time_horizon', '')}")


def start_sweep(results_root: str, base: dict, grid: dict, synthetic_seconds: Optional[float] = None,
                workers: int = 1, data_dir: str = "./data", name: str = "sweep") -> Job:
    """A grid sweep (``hftmm sweep``) of ``grid`` {field: [values]} over ``base``."""
    from hftmm.backtesting import BacktestConfig

    BacktestConfig.from_dict(base)
    n = 1
    for v in grid.values():
        n *= max(len(v), 1)
    return start("sweep", results_root, dict(base=base, grid=grid, synthetic_seconds=synthetic_seconds,
                                             workers=int(workers), data_dir=os.path.abspath(data_dir),
                                             combinations=n), name)


def start_verify(results_root: str, path: str) -> Job:
    """``hftmm data verify`` of one capture; the report lands in ``<results>/verify``."""
    from hftmm.dashboard.sources import verify_key

    out = os.path.join(os.path.abspath(results_root), "verify")
    return start("verify", results_root, dict(path=os.path.abspath(path), out=os.path.join(out, verify_key(path))),
                 os.path.basename(path))


def load(job_dir: str) -> Optional[Job]:
    """The job of a folder with its current state (None if it is not a job)."""
    meta = _read_json(os.path.join(job_dir, JOB_FILE))
    if meta is None:
        return None
    st = _read_json(os.path.join(job_dir, STATUS_FILE)) or {}
    job = Job(meta.get("id", os.path.basename(job_dir)), meta.get("kind", ""), job_dir, meta.get("spec", {}),
              meta.get("pid"), float(meta.get("started", 0.0)), st.get("state", "starting"),
              float(st.get("fraction", 0.0) or 0.0), st.get("message", ""), st.get("finished"),
              st.get("result", {}) or {}, st.get("error", ""))
    if job.active and job.pid is None:
        # job.json is written before the process starts, and again with its pid:
        # a reader in between sees no pid yet -- starting, unless that lasts
        if time.time() - job.started > START_GRACE_S:
            job.state, job.error = "died", job.error or "the worker process was never started"
        return job
    if job.active and not _pid_alive(job.pid):
        # it may have finished between the two reads
        st = _read_json(os.path.join(job_dir, STATUS_FILE)) or {}
        if st.get("state", "running") in ("starting", "running"):
            job.state = "died"
            job.error = job.error or _log_tail(job_dir)
        else:
            job.state, job.fraction = st["state"], float(st.get("fraction", 1.0) or 0.0)
            job.result, job.error, job.finished = st.get("result", {}) or {}, st.get("error", ""), st.get("finished")
    return job


def _log_tail(job_dir: str, n: int = 2000) -> str:
    try:
        with open(os.path.join(job_dir, LOG_FILE), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - n, 0))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def list_jobs(results_root: str, kind: str) -> list[Job]:
    """The jobs of one kind, newest first."""
    base = os.path.join(results_root, KINDS[kind])
    try:
        names = sorted(os.listdir(base), reverse=True)
    except OSError:
        return []
    out = []
    for n in names:
        j = load(os.path.join(base, n))
        if j is not None:
            out.append(j)
    return out


def cancel(job: Job) -> bool:
    """SIGTERM the job's process group (the worker records ``cancelled``)."""
    if not job.active or not _pid_alive(job.pid):
        return False
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait(job: Job, timeout_s: float = 60.0, poll_s: float = 0.1) -> Job:
    """Poll until the job is no longer active (tests, scripts); the last state."""
    t_end = time.monotonic() + timeout_s
    cur = load(job.dir) or job
    while cur.active and time.monotonic() < t_end:
        time.sleep(poll_s)
        cur = load(job.dir) or cur
    return cur
