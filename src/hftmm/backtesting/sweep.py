"""Parameter sweeps: grid and seeded random search over BacktestConfig fields.

One replay, many strategies: combinations that share their data and the
exchange model's shared part (:data:`~hftmm.backtesting.engine.SHARED_FIELDS`)
are grouped, and each group (up to ``group_size`` combinations) is one job: one
pass of the compiled replay kernel with one strategy per combination. The market
does not react to our orders in replay, so each combination's result is exactly
what a separate backtest would give.

Jobs run on any :class:`concurrent.futures.Executor` (default: a local process
pool; ``distributed.Client(address).get_executor()`` runs them on a Dask
cluster). A job carries config dicts only: workers read the data by path (an
event store) or generate it (the synthetic market, by date).

Results: one row per combination with every swept parameter, every metric of
:func:`~hftmm.backtesting.metrics.compute_metrics`, ``status`` ("ok" or "error"),
``error``, ``elapsed_s`` (the pass's time shared equally by its combinations),
``events`` and ``group_size`` (combinations in its pass); written to Parquet (``results_path``) as jobs
finish. A sweep restarted on the same file skips the combinations already there
(key: the canonical JSON of the combination). A failing combination is recorded
with its error; the others go on.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import dataclasses
import hashlib
import itertools
import json
import math
import os
import signal
import time
import traceback
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import BacktestEngine, build_kernel, shared_key
from hftmm.backtesting.metrics import PerformanceMetrics
from hftmm.progress import Progress

METRICS = tuple(f.name for f in dataclasses.fields(PerformanceMetrics))
META_COLUMNS = ("combo_key", "status", "error", "elapsed_s", "events", "group_size", "base_hash")
#: (name, metric column, higher is better)
BEST = (("by_sharpe", "sharpe_ratio", True), ("by_pnl", "total_pnl", True),
        ("by_calmar", "calmar_ratio", True), ("by_drawdown", "max_drawdown", False))
BEST_METRIC = tuple((name, m) for name, m, _ in BEST)
DEFAULT_GROUP_SIZE = 32


# --------------------------------------------------------------------------- combinations


def combo_key(combo: dict[str, Any]) -> str:
    """Canonical JSON of a combination (the resume key)."""
    return json.dumps(combo, sort_keys=True, separators=(",", ":"), default=str)


def base_hash(base: BacktestConfig) -> str:
    return hashlib.sha1(json.dumps(base.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _py(v: Any) -> Any:
    """numpy scalars to Python (JSON keys, config values)."""
    return v.item() if isinstance(v, np.generic) else v


def grid_combinations(grid: dict[str, Sequence[Any]] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid {field: [values]} (in order, last field
    fastest), or an explicit list of combinations as is."""
    if isinstance(grid, dict):
        names = list(grid)
        for n in names:
            if isinstance(grid[n], (str, bytes)) or not isinstance(grid[n], Iterable):
                raise ValueError(f"grid[{n!r}] must be a list of values")
        values = [list(grid[n]) for n in names]
        return [dict(zip(names, map(_py, vs))) for vs in itertools.product(*values)]
    return [{k: _py(v) for k, v in c.items()} for c in grid]


def random_combinations(space: dict[str, Any], n_samples: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n_samples`` seeded draws from ``space``: per field a list (uniform
    choice), a tuple (lo, hi) (uniform float), or a dict with ``low``, ``high``
    and optional ``log`` (log-uniform) and ``int`` (integers, inclusive).
    Duplicate draws are dropped."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for _ in range(int(n_samples)):
        c: dict[str, Any] = {}
        for name, spec in space.items():
            if isinstance(spec, list):
                c[name] = _py(spec[int(rng.integers(len(spec)))])
                continue
            if isinstance(spec, tuple):
                spec = {"low": spec[0], "high": spec[1]}
            if not isinstance(spec, dict) or "low" not in spec or "high" not in spec:
                raise ValueError(f"random space {name!r}: a list, (lo, hi) or {{low, high, log, int}}")
            lo, hi = float(spec["low"]), float(spec["high"])
            if spec.get("int"):
                c[name] = int(rng.integers(int(lo), int(hi) + 1))
            elif spec.get("log"):
                c[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            else:
                c[name] = float(rng.uniform(lo, hi))
        k = combo_key(c)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


# --------------------------------------------------------------------------- jobs (run on workers)


def _error_row(combo: dict, key: str, err: BaseException | str, elapsed: float = 0.0) -> dict:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    row = dict(combo)
    row.update(combo_key=key, status="error", error=text, elapsed_s=elapsed, events=0, group_size=0)
    for m in METRICS:
        row.setdefault(m, math.nan)
    return row


def _ok_row(combo: dict, key: str, result: Any, group_size: int) -> dict:
    row = dict(combo)
    for m in METRICS:
        row[m] = getattr(result.performance, m)
    row.update(combo_key=key, status="ok", error="", elapsed_s=result.elapsed_s / group_size,
               events=result.events, group_size=group_size)
    return row


def run_job(job: dict) -> list[dict]:
    """One group: ``job`` = {"engine": {data_dir, synthetic_day_seconds},
    "combos": [{"key", "params", "config"}]} (config: BacktestConfig dicts of one
    shared key). One multi-strategy pass; one row per combination. Never raises."""
    engine = BacktestEngine(**job["engine"])
    rows: list[Optional[dict]] = [None] * len(job["combos"])
    configs, idx = [], []
    for j, c in enumerate(job["combos"]):
        try:
            cfg = BacktestConfig.from_dict(c["config"])
            # fail early and alone on what the kernel would refuse (units: the
            # config's or the synthetic market's; a store's are checked in the pass)
            build_kernel([cfg], cfg.tick_size or "0.1", cfg.lot_size or "0.001", cfg.market)
            configs.append(cfg)
            idx.append(j)
        except Exception as e:  # noqa: BLE001 - recorded in the row
            rows[j] = _error_row(c["params"], c["key"], e)
    if configs:
        t0 = time.perf_counter()
        try:
            results = engine.run_backtest_group(configs, progress=_check_stop)
            for j, r in zip(idx, results):
                rows[j] = _ok_row(job["combos"][j]["params"], job["combos"][j]["key"], r, len(configs))
        except SweepInterrupted:
            raise
        except Exception:  # noqa: BLE001 - isolate the failing combination(s): one by one
            if len(configs) == 1:
                c = job["combos"][idx[0]]
                rows[idx[0]] = _error_row(c["params"], c["key"], _short_tb(), time.perf_counter() - t0)
            else:
                for j, cfg in zip(idx, configs):
                    c = job["combos"][j]
                    t1 = time.perf_counter()
                    try:
                        rows[j] = _ok_row(c["params"], c["key"], engine.run_backtest(cfg, progress=_check_stop), 1)
                    except SweepInterrupted:
                        raise
                    except Exception:  # noqa: BLE001
                        rows[j] = _error_row(c["params"], c["key"], _short_tb(), time.perf_counter() - t1)
    return [r for r in rows if r is not None]


#: set in a sweep's worker processes: the parent's "stop now" (Ctrl-C)
_STOP: Any = None


class SweepInterrupted(Exception):
    """A job stopped because the sweep was interrupted (its rows are not recorded)."""


def _init_worker(stop: Any) -> None:
    """Worker initializer: Ctrl-C is the parent's to handle; it sets ``stop``, which
    the worker's running backtest checks at every chunk."""
    global _STOP
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STOP = stop


def _check_stop(_frac: float, _events: int) -> None:
    if _STOP is not None and _STOP.is_set():
        raise SweepInterrupted("the sweep was interrupted")


def _short_tb() -> str:
    lines = traceback.format_exc().strip().splitlines()
    return lines[-1] + ("\n" + "\n".join(lines[-6:-1]) if len(lines) > 1 else "")


class SerialExecutor(cf.Executor):
    """Runs each job in the calling thread at submit (``workers=1``, tests)."""

    _max_workers = 1

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> cf.Future:
        f: cf.Future = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - Ctrl-C propagates (it stops the sweep)
            f.set_exception(e)
        return f


# --------------------------------------------------------------------------- the sweep


def plan_jobs(engine: BacktestEngine, base_config: BacktestConfig, combos: list[dict], group_size: int
              ) -> tuple[list[dict], list[dict]]:
    """(jobs, error rows): valid combinations grouped by shared key into jobs of
    at most ``group_size``; invalid ones (ConfigError...) as error rows."""
    groups: dict[tuple, list[dict]] = {}
    errors = []
    for combo in combos:
        key = combo_key(combo)
        try:
            cfg = base_config.replace(**combo)
        except Exception as e:  # noqa: BLE001 - ConfigError, unknown field (TypeError)
            errors.append(_error_row(combo, key, e))
            continue
        groups.setdefault(shared_key(cfg), []).append(dict(key=key, params=combo, config=cfg.to_dict()))
    eng = dict(data_dir=engine.data_dir, synthetic_day_seconds=getattr(engine, "synthetic_day_seconds", None))
    jobs = []
    for members in groups.values():
        for s in range(0, len(members), group_size):
            jobs.append(dict(engine=eng, combos=members[s:s + group_size]))
    return jobs, errors


def _frame(rows: list[dict], param_names: list[str]) -> pd.DataFrame:
    cols = list(param_names) + [m for m in METRICS] + list(META_COLUMNS)
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan
    extra = [c for c in df.columns if c not in cols]
    return df[cols + extra].reset_index(drop=True)


def _write(df: pd.DataFrame, path: str) -> None:
    """Atomically (temp file + rename): an interrupted sweep leaves the last
    complete file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        df.to_parquet(tmp, index=False)
    except Exception:  # noqa: BLE001 - mixed-type parameter columns: as JSON text
        out = df.copy()
        for c in out.columns:
            if out[c].dtype == object and c not in ("status", "error", "combo_key", "base_hash"):
                out[c] = [v if isinstance(v, str) else json.dumps(_py(v)) for v in out[c]]
        out.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def load_results(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def run_sweep(engine: BacktestEngine, base_config: BacktestConfig,
              grid_or_space: dict[str, Any] | Sequence[dict[str, Any]], executor: Optional[cf.Executor] = None,
              method: str = "grid", n_samples: int = 20, seed: int = 0, results_path: Optional[str] = None,
              progress: bool = True, group_size: Optional[int] = None, workers: Optional[int] = None,
              on_rows: Optional[Callable[[list[dict]], None]] = None) -> pd.DataFrame:
    """Run a sweep; returns one row per combination (this run's and, with
    ``results_path``, those found there from an interrupted run).

    ``method``: "grid" (``grid_or_space`` = {field: [values]} or a list of
    combinations) or "random" (``n_samples`` seeded draws, see
    :func:`random_combinations`). ``executor``: any concurrent.futures.Executor
    (default a process pool of ``workers`` processes; not shut down when given).
    ``group_size``: combinations per job (one kernel pass); default: spread
    each data group over the workers, at most 32 per job."""
    if method == "grid":
        combos = grid_combinations(grid_or_space)
    elif method == "random":
        if not isinstance(grid_or_space, dict):
            raise ValueError("random search needs a space {field: spec}")
        combos = random_combinations(grid_or_space, n_samples, seed)
    else:
        raise ValueError(f"method must be 'grid' or 'random', got {method!r}")
    param_names: list[str] = []
    for c in combos:
        for k in c:
            if k not in param_names:
                param_names.append(k)
    bh = base_hash(base_config)

    done_rows: list[dict] = []
    if results_path and os.path.exists(results_path):
        prev = load_results(results_path)
        if len(prev) and "base_hash" in prev and (prev["base_hash"] != bh).any():
            raise ValueError(f"{results_path} holds results of another base config; use another file")
        done_rows = prev.to_dict("records")
        for c in prev.columns:
            if c not in param_names and c not in METRICS and c not in META_COLUMNS:
                param_names.append(c)
    done = {r["combo_key"] for r in done_rows}
    todo, seen = [], set(done)
    for c in combos:
        k = combo_key(c)
        if k not in seen:
            seen.add(k)
            todo.append(c)

    own = executor is None
    n_workers = workers or (getattr(executor, "_max_workers", None) if executor else None) or os.cpu_count() or 1
    if group_size is None:
        counts: dict[tuple, int] = {}
        for c in todo:
            try:
                k = shared_key(base_config.replace(**c))
            except Exception:  # noqa: BLE001
                continue
            counts[k] = counts.get(k, 0) + 1
        biggest = max(counts.values(), default=1)
        group_size = max(1, min(DEFAULT_GROUP_SIZE, math.ceil(biggest / n_workers)))
    jobs, errors = plan_jobs(engine, base_config, todo, int(group_size))

    rows = list(done_rows)
    bar = Progress(len(todo), f"sweep 0/{len(todo)}", "combos", enabled=progress)
    n_done = 0

    def add(new: list[dict]) -> None:
        nonlocal n_done
        for r in new:
            r["base_hash"] = bh
        rows.extend(new)
        n_done += len(new)
        if results_path:
            _write(_frame(rows, param_names), results_path)
        if on_rows:
            on_rows(new)
        bar.desc = f"sweep {n_done}/{len(todo)}"
        bar.update(len(new))

    if errors:
        add(errors)
    if jobs:
        stop = None
        if own:
            if n_workers <= 1:
                executor = SerialExecutor()
            else:
                stop = mp.get_context().Event()
                executor = cf.ProcessPoolExecutor(max_workers=n_workers, initializer=_init_worker, initargs=(stop,))
        futures: dict = {}
        try:
            for j in jobs:
                futures[executor.submit(run_job, j)] = j
            for fut in cf.as_completed(futures):
                try:
                    new = fut.result()
                except Exception as e:  # noqa: BLE001 - a lost worker, a serialisation error...
                    new = [_error_row(c["params"], c["key"], e) for c in futures[fut]["combos"]]
                add(new)
        except KeyboardInterrupt:
            # Ctrl-C: the finished rows are on disk already. Jobs in flight (each a
            # whole backtest) stop at their next chunk, waiting ones are cancelled
            if stop is not None:
                stop.set()
            for fut in futures:
                fut.cancel()
            bar.close()
            raise
        finally:
            if own:
                executor.shutdown(wait=True, cancel_futures=True)
    bar.close()
    df = _frame(rows, param_names)
    if results_path and not jobs and not errors:
        _write(df, results_path)
    return df


# --------------------------------------------------------------------------- analysis


def param_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in METRICS and c not in META_COLUMNS]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df else df


def _numeric(s: pd.Series) -> Optional[pd.Series]:
    x = pd.to_numeric(s, errors="coerce")
    return None if x.isna().all() else x.astype(float)


def analyze_results(df: pd.DataFrame, metrics: Sequence[str] = ("sharpe_ratio", "total_pnl", "calmar_ratio",
                                                                 "max_drawdown", "sortino_ratio", "return_pct"),
                    top: int = 10) -> dict[str, Any]:
    """``best_result``: {by_sharpe, by_pnl, by_calmar, by_drawdown} (each a row as
    a dict, None if no row has that metric; drawdown: smallest); ``ranking``:
    {metric: DataFrame of the ``top`` rows}; ``sensitivity``: {metric: DataFrame
    indexed by parameter with the Spearman correlation, the metric's range over
    the parameter's values and the number of values}; ``by_value``: {metric:
    {param: Series of the mean metric per parameter value}}; ``counts``."""
    ok = _ok(df)
    params = param_columns(df)
    best: dict[str, Optional[dict]] = {}
    ranking: dict[str, pd.DataFrame] = {}
    for name, m, hi in BEST:
        vals = pd.to_numeric(ok[m], errors="coerce") if m in ok else pd.Series(dtype=float)
        fin = ok[np.isfinite(vals.to_numpy(float))] if len(ok) else ok
        if len(fin) == 0:
            best[name] = None
            continue
        v = pd.to_numeric(fin[m])
        best[name] = fin.loc[v.idxmax() if hi else v.idxmin()].to_dict()
    for m in metrics:
        if m not in ok:
            continue
        hi = m != "max_drawdown"
        cols = params + [c for c in ("total_pnl", "sharpe_ratio", "calmar_ratio", "max_drawdown", "total_trades")
                         if c in ok and c != m]
        ranking[m] = ok.sort_values(m, ascending=not hi, na_position="last")[cols[:len(params)] + [m] +
                                                                               cols[len(params):]].head(top)
    sens: dict[str, pd.DataFrame] = {}
    by_value: dict[str, dict[str, pd.Series]] = {}
    for m in metrics:
        if m not in ok:
            continue
        y = pd.to_numeric(ok[m], errors="coerce")
        rows, bv = [], {}
        for p in params:
            means = y.groupby(ok[p].astype(str) if _numeric(ok[p]) is None else ok[p]).mean()
            bv[p] = means
            x = _numeric(ok[p])
            rho = math.nan
            if x is not None:
                both = pd.concat([x, y], axis=1).dropna()
                if len(both) > 2 and both.iloc[:, 0].nunique() > 1 and both.iloc[:, 1].nunique() > 1:
                    r = both.rank()
                    rho = float(np.corrcoef(r.iloc[:, 0], r.iloc[:, 1])[0, 1])
            rows.append(dict(param=p, spearman=rho, range=float(means.max() - means.min()) if len(means) else math.nan,
                             n_values=int(ok[p].nunique())))
        sens[m] = pd.DataFrame(rows).set_index("param") if rows else pd.DataFrame()
        by_value[m] = bv
    return dict(best_result=best, ranking=ranking, sensitivity=sens, by_value=by_value,
                counts=dict(total=int(len(df)), ok=int(len(ok)), error=int(len(df) - len(ok))),
                params=params)


def heatmap(df: pd.DataFrame, metric: str, x: str, y: str, path: str, agg: str = "mean") -> str:
    """A PNG heatmap of ``metric`` (aggregated by ``agg`` over the other
    parameters) over two parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = _ok(df).copy()
    ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
    table = ok.pivot_table(index=y, columns=x, values=metric, aggfunc=agg)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * max(len(table.columns), 2), 1.0 + 0.8 * max(len(table.index), 2)))
    data = table.to_numpy(dtype=float)
    im = ax.imshow(data, origin="lower", aspect="auto", cmap="RdYlGn" if metric != "max_drawdown" else "RdYlGn_r")
    ax.set_xticks(range(len(table.columns)), [f"{v:g}" if isinstance(v, float) else str(v) for v in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" if isinstance(v, float) else str(v) for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{metric} ({agg})")
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def walk_forward(engine: BacktestEngine, base_config: BacktestConfig,
                 grid: dict[str, Any] | Sequence[dict[str, Any]], periods: Sequence[tuple[str, str]],
                 metric: str = "sharpe_ratio", higher_is_better: Optional[bool] = None, **sweep_kw: Any
                 ) -> pd.DataFrame:
    """Walk-forward: sweep each period (start_date, end_date), choose the best
    combination on period i and score it on period i + 1. One row per step:
    the periods, the chosen parameters, its in-sample and out-of-sample metric,
    the best out-of-sample metric and the chosen one's out-of-sample rank (1 =
    best). ``sweep_kw`` go to :func:`run_sweep` (a ``results_path`` becomes one
    file per period, so an interrupted walk-forward resumes too)."""
    if len(periods) < 2:
        raise ValueError("walk-forward needs at least two periods")
    hi = (metric != "max_drawdown") if higher_is_better is None else higher_is_better
    sweep_kw.setdefault("progress", False)
    per = []
    results_path = sweep_kw.pop("results_path", None)
    for start, end in periods:
        kw = dict(sweep_kw)
        if results_path:   # one file per period (each has its own base config)
            stem, ext = os.path.splitext(results_path)
            kw["results_path"] = f"{stem}_{start}_{end}{ext or '.parquet'}"
        df = run_sweep(engine, base_config.replace(start_date=start, end_date=end), grid, **kw)
        ok = _ok(df).copy()
        ok[metric] = pd.to_numeric(ok[metric], errors="coerce")
        per.append(ok[np.isfinite(ok[metric].to_numpy(float))])
    params = param_columns(per[0]) if len(per[0]) else []
    out = []
    for i in range(len(periods) - 1):
        train, test = per[i], per[i + 1]
        row: dict[str, Any] = dict(train_start=periods[i][0], train_end=periods[i][1],
                                   test_start=periods[i + 1][0], test_end=periods[i + 1][1])
        if len(train) == 0:
            row.update(combo_key=None, train_metric=math.nan, test_metric=math.nan)
            out.append(row)
            continue
        b = train.loc[train[metric].idxmax() if hi else train[metric].idxmin()]
        row["combo_key"] = b["combo_key"]
        for p in params:
            row[p] = b[p]
        row["train_metric"] = float(b[metric])
        t = test[test["combo_key"] == b["combo_key"]]
        row["test_metric"] = float(t[metric].iloc[0]) if len(t) else math.nan
        row["best_test_metric"] = float(test[metric].max() if hi else test[metric].min()) if len(test) else math.nan
        ranks = test[metric].rank(ascending=not hi, method="min")
        row["test_rank"] = int(ranks[t.index[0]]) if len(t) else None
        row["n_combos"] = int(len(test))
        out.append(row)
    df = pd.DataFrame(out)
    df.attrs["metric"] = metric
    return df
