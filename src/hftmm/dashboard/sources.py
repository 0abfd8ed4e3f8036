"""What the dashboard reads: the live state database, saved backtests, sweep
results and data folders. Read only (the one write is :func:`send_command`),
cheap, and cached for a short time so a page refreshing every second does
not re-read what has not changed; nothing here computes a backtest.

The live state database (:mod:`hftmm.live.schema`) is opened read-only
(``file:...?mode=ro``) on every read, so the engine's WAL writer is never
blocked and a missing or half-created file is reported, not created.

A *run* (:class:`RunData`) is what the Performance page draws, whether it
comes from a live session or a saved backtest folder: ``timeseries`` (time,
ts [ns], mid, equity, pnl [quote], position [base], bid_quote, ask_quote,
sigma) and ``fills`` (time, ts [ns], side "buy"/"sell", price, qty, fee, mid,
latency_ms, maker).
"""
from __future__ import annotations

import functools
import glob
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from hftmm.live.state import running_session

#: TTLs (s): the live DB changes every publish (>= 1 Hz), folders rarely
LIVE_TTL_S = 0.5
FILES_TTL_S = 3.0


def ttl_cache(ttl_s: float, maxsize: int = 64) -> Callable:
    """Memoise a function of hashable arguments for ``ttl_s`` seconds (thread
    safe; the cached value is shared, callers must not mutate it).
    ``f.cache_clear()`` empties it."""

    def deco(fn: Callable) -> Callable:
        lock = threading.Lock()
        store: dict[Any, tuple[float, Any]] = {}

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            key = (args, tuple(sorted(kw.items())))
            now = time.monotonic()
            with lock:
                hit = store.get(key)
                if hit is not None and now - hit[0] < ttl_s:
                    return hit[1]
            value = fn(*args, **kw)
            with lock:
                if len(store) >= maxsize:
                    for k, _ in sorted(store.items(), key=lambda kv: kv[1][0])[: maxsize // 4 + 1]:
                        store.pop(k, None)
                store[key] = (time.monotonic(), value)
            return value

        wrapper.cache_clear = store.clear  # type: ignore[attr-defined]
        return wrapper

    return deco


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _time_col(ns: pd.Series) -> pd.Series:
    return pd.to_datetime(ns.astype("int64"), unit="ns", utc=True)


# --------------------------------------------------------------------------- live state DB


class StateDBError(RuntimeError):
    """The state database is missing or unreadable (message says which)."""


def connect_ro(db_path: str, timeout_s: float = 2.0) -> sqlite3.Connection:
    """A read-only connection (``mode=ro`` URI); StateDBError when the file is missing."""
    if not db_path or not os.path.exists(db_path):
        raise StateDBError(f"no state database at {db_path!r} (start the engine with --state-db)")
    uri = "file:" + os.path.abspath(db_path).replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
        con.execute("PRAGMA query_only = 1")
    except sqlite3.Error as e:
        raise StateDBError(f"cannot open {db_path}: {e}") from e
    return con


def _query(db_path: str, sql: str, params: tuple = ()) -> pd.DataFrame:
    con = connect_ro(db_path)
    try:
        return pd.read_sql_query(sql, con, params=params)
    except (sqlite3.Error, pd.errors.DatabaseError) as e:
        raise StateDBError(f"{db_path}: {e}") from e
    finally:
        con.close()


@ttl_cache(LIVE_TTL_S)
def live_sessions(db_path: str) -> pd.DataFrame:
    """Sessions, newest first, with their last publish time (``last_ns``) and
    ``started``/``last`` as datetimes."""
    df = _query(db_path, """
        SELECT s.*, (SELECT MAX(ts_ns) FROM status t WHERE t.session_id = s.session_id) AS last_ns
        FROM sessions s ORDER BY s.started_ns DESC""")
    if len(df):
        df["started"] = _time_col(df["started_ns"])
        df["last"] = pd.to_datetime(df["last_ns"], unit="ns", utc=True)
        who = running_session(db_path)
        df["running"] = df["session_id"].isin((who or {}).get("sessions") or [])
    return df


def _since(window_s: Optional[float]) -> str:
    """SQL for "ts_ns >= the session's newest status time minus the window"
    (a window relative to the data, so the cache key does not change every call)."""
    if window_s is None:
        return ""
    return (f" AND ts_ns >= (SELECT COALESCE(MAX(ts_ns), 0) FROM status WHERE session_id = ?1) - "
            f"{int(window_s * 1e9)}")


@ttl_cache(LIVE_TTL_S)
def live_status(db_path: str, session_id: str, window_s: Optional[float] = None, max_rows: int = 200_000
                ) -> pd.DataFrame:
    """Status rows of a session (oldest first): the last ``window_s`` seconds
    of it (None: all), at most the newest ``max_rows``; adds ``time`` and
    ``trade_rate`` (market trades/s)."""
    from hftmm.dashboard.analytics import trade_rate

    df = _query(db_path, f"""SELECT * FROM (SELECT * FROM status WHERE session_id = ?1{_since(window_s)}
                             ORDER BY ts_ns DESC LIMIT ?2) ORDER BY ts_ns""", (session_id, int(max_rows)))
    df["time"] = _time_col(df["ts_ns"]) if len(df) else pd.Series(dtype="datetime64[ns, UTC]")
    df["trade_rate"] = trade_rate(df["ts_ns"].to_numpy(np.int64), df["trades"].to_numpy(float)) if len(df) else []
    return df


@ttl_cache(LIVE_TTL_S)
def live_latest_status(db_path: str, session_id: str) -> Optional[dict]:
    """The newest status row as a dict (None before the first publish)."""
    df = _query(db_path, "SELECT * FROM status WHERE session_id = ? ORDER BY ts_ns DESC LIMIT 1", (session_id,))
    return None if not len(df) else {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                     for k, v in df.iloc[0].to_dict().items()}


@ttl_cache(LIVE_TTL_S)
def live_book(db_path: str, session_id: str) -> Optional[dict]:
    """The newest book: {ts_ns, bids, asks} with ``[[price, qty], ...]`` best first."""
    df = _query(db_path, "SELECT ts_ns, bids_json, asks_json FROM book WHERE session_id = ? ORDER BY ts_ns DESC "
                         "LIMIT 1", (session_id,))
    if not len(df):
        return None
    r = df.iloc[0]
    return {"ts_ns": int(r["ts_ns"]), "bids": json.loads(r["bids_json"]), "asks": json.loads(r["asks_json"])}


@ttl_cache(LIVE_TTL_S)
def live_fills(db_path: str, session_id: str, window_s: Optional[float] = None) -> pd.DataFrame:
    """Fills of a session (oldest first; the last ``window_s`` seconds, None:
    all) in the RunData fill columns plus the schema's own (client_order_id,
    position, ...)."""
    df = _query(db_path, f"SELECT * FROM fills WHERE session_id = ?1{_since(window_s)} ORDER BY ts_ns",
                (session_id,))
    df["ts"] = df["ts_ns"].astype("int64") if len(df) else pd.Series(dtype="int64")
    df["time"] = _time_col(df["ts_ns"]) if len(df) else pd.Series(dtype="datetime64[ns, UTC]")
    df["side"] = df["side"].astype(str).str.lower()
    df["maker"] = df["maker"].astype(bool)
    return df


@ttl_cache(LIVE_TTL_S)
def live_table(db_path: str, table: str, session_id: Optional[str] = None, limit: int = 50) -> pd.DataFrame:
    """The newest ``limit`` rows of ``orders``, ``risk_events`` or ``commands``
    (newest first), with ``time``."""
    if table not in ("orders", "risk_events", "commands"):
        raise ValueError(f"not a log table: {table}")
    where, params = ("WHERE session_id = ?", (session_id,)) if session_id and table != "commands" else ("", ())
    order = "id DESC" if table == "commands" else "ts_ns DESC"
    df = _query(db_path, f"SELECT * FROM {table} {where} ORDER BY {order} LIMIT ?", params + (int(limit),))
    if len(df):
        df.insert(0, "time", _time_col(df["ts_ns"]))
    return df


def send_command(db_path: str, command: str, args: Optional[dict] = None, session_id: Optional[str] = None) -> int:
    """Append an operator command (``kill``, ``resume``) for the engine to
    consume (:func:`hftmm.live.state.send_command`); returns its id. The one
    write the dashboard makes. ValueError for an unknown command,
    StateDBError when the database is missing."""
    from hftmm.live.state import COMMANDS, StateStoreError
    from hftmm.live.state import send_command as _send

    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    if not os.path.exists(db_path):
        raise StateDBError(f"no state database at {db_path!r}")
    try:
        return _send(db_path, command, args or {}, session_id)
    except StateStoreError as e:
        raise StateDBError(str(e)) from e


# --------------------------------------------------------------------------- runs (performance page)


@dataclass
class RunData:
    """One run for the Performance page (see the module doc for the columns)."""

    name: str
    kind: str                      # "backtest" | "live"
    timeseries: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    tick_size: Optional[float] = None
    path: str = ""


TS_COLUMNS = ("time", "ts", "mid", "equity", "pnl", "position", "bid_quote", "ask_quote", "sigma")
FILL_COLUMNS = ("time", "ts", "side", "price", "qty", "fee", "mid", "latency_ms", "maker")


def _is_backtest_dir(d: str) -> bool:
    return os.path.isfile(os.path.join(d, "metrics.json")) and os.path.isfile(os.path.join(d, "timeseries.parquet"))


@ttl_cache(FILES_TTL_S)
def list_backtests(root: str, max_depth: int = 3) -> pd.DataFrame:
    """Saved backtest folders (``BacktestResult.save``: metrics.json and
    timeseries.parquet) under ``root`` up to ``max_depth`` levels; newest first.
    Columns: name (path relative to root), path, modified, and key metrics."""
    rows = []
    if root and os.path.isdir(root):
        root_depth = os.path.abspath(root).rstrip(os.sep).count(os.sep)
        for d, dirs, files in os.walk(root):
            if os.path.abspath(d).count(os.sep) - root_depth >= max_depth:
                dirs[:] = []
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            if "metrics.json" in files and "timeseries.parquet" in files:
                try:
                    with open(os.path.join(d, "metrics.json")) as fh:
                        m = json.load(fh)
                except (OSError, ValueError):
                    continue
                rows.append(dict(name=os.path.relpath(d, root), path=d,
                                 modified=pd.Timestamp(_mtime(os.path.join(d, "metrics.json")), unit="s", tz="UTC"),
                                 total_pnl=m.get("total_pnl"), sharpe_ratio=m.get("sharpe_ratio"),
                                 max_drawdown=m.get("max_drawdown"), total_trades=m.get("total_trades"),
                                 data=m.get("data", "")))
    df = pd.DataFrame(rows, columns=["name", "path", "modified", "total_pnl", "sharpe_ratio", "max_drawdown",
                                     "total_trades", "data"])
    return df.sort_values("modified", ascending=False).reset_index(drop=True)


@ttl_cache(FILES_TTL_S, maxsize=16)
def _load_backtest(path: str, mtime: float) -> RunData:  # noqa: ARG001 - mtime: cache key
    with open(os.path.join(path, "metrics.json")) as fh:
        metrics = json.load(fh)
    config: dict = {}
    if os.path.exists(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json")) as fh:
            config = json.load(fh)
    ts = pd.read_parquet(os.path.join(path, "timeseries.parquet"))
    cap = float(config.get("initial_capital", 0.0) or 0.0)
    out = pd.DataFrame({
        "time": _time_col(ts["ts"]) if len(ts) else pd.Series(dtype="datetime64[ns, UTC]"),
        "ts": ts["ts"].astype("int64"),
        "mid": ts["mid"],
        "equity": ts["equity"],
        "pnl": ts["pnl"] if "pnl" in ts else ts["equity"] - cap,
        "position": ts["position_qty"],
        "bid_quote": ts.get("bid_quote"),
        "ask_quote": ts.get("ask_quote"),
        "sigma": ts.get("sigma"),
    })
    tr_path = os.path.join(path, "trades.parquet")
    tr = pd.read_parquet(tr_path) if os.path.exists(tr_path) else pd.DataFrame()
    if len(tr):
        fills = pd.DataFrame({
            "time": _time_col(tr["exch_ts"]), "ts": tr["exch_ts"].astype("int64"),
            "side": np.where(tr["side"] == 0, "buy", "sell"), "price": tr["price"], "qty": tr["qty"],
            "fee": tr["fee"], "mid": tr["mid"], "latency_ms": (tr["exch_ts"] - tr["submit_ts"]) / 1e6,
            "maker": tr["taker"] == 0})
    else:
        fills = pd.DataFrame({c: [] for c in FILL_COLUMNS})
    tick = config.get("tick_size")
    if tick is None and not config.get("data_path"):
        from hftmm.synthetic import SyntheticConfig

        tick = SyntheticConfig().tick_size
    return RunData(os.path.basename(os.path.normpath(path)), "backtest", out, fills, metrics, config,
                   float(tick) if tick else None, path)


def load_backtest(path: str) -> RunData:
    """A saved backtest folder as a run (cached until its metrics.json changes)."""
    return _load_backtest(os.path.abspath(path), _mtime(os.path.join(path, "metrics.json")))


def live_run(db_path: str, session_id: str) -> RunData:
    """A live session as a run: the status history and the fills."""
    st = live_status(db_path, session_id)
    fills = live_fills(db_path, session_id)
    sess = live_sessions(db_path)
    row = sess[sess["session_id"] == session_id]
    config = {}
    if len(row):
        try:
            config = json.loads(row.iloc[0]["config_json"])
        except (TypeError, ValueError):
            config = {}
    if len(st):
        eq = st["equity"].where(st["equity"].notna(), st["cash"] + st["position"] * st["mid"])
        pnl = st["pnl"].where(st["pnl"].notna(), eq - eq.iloc[0])
        ts = pd.DataFrame({"time": st["time"], "ts": st["ts_ns"].astype("int64"), "mid": st["mid"], "equity": eq,
                           "pnl": pnl, "position": st["position"], "bid_quote": st["bid_quote"],
                           "ask_quote": st["ask_quote"], "sigma": st["sigma"]})
    else:
        ts = pd.DataFrame({c: [] for c in TS_COLUMNS})
    f = fills[[c for c in FILL_COLUMNS if c in fills.columns]] if len(fills) else pd.DataFrame({c: [] for c in FILL_COLUMNS})
    metrics: dict = {}
    if len(st):
        from hftmm.dashboard.analytics import drawdown

        last = st.iloc[-1]
        dd = drawdown(ts["equity"].to_numpy(float))
        metrics = {"total_pnl": last["pnl"], "realized_pnl": last["realized_pnl"], "total_fees": last["fees"],
                   "total_trades": int(len(fills)), "final_position": last["position"],
                   "max_drawdown": abs(float(np.nanmin(dd))) if np.isfinite(dd).any() else None,
                   "duration_s": (int(last["ts_ns"]) - int(st["ts_ns"].iloc[0])) / 1e9}
    # the book's levels are one tick apart at best; the config's tick as a fallback
    from hftmm.dashboard.analytics import infer_tick

    book = live_book(db_path, session_id)
    tick = infer_tick([lv[0] for lv in (book["bids"] + book["asks"])]) if book else None
    tick = tick or config.get("tick_size") or (config.get("trading") or {}).get("tick_size")
    return RunData(f"live {session_id}", "live", ts, f, metrics, config, float(tick) if tick else None, db_path)


# --------------------------------------------------------------------------- sweeps


@ttl_cache(FILES_TTL_S)
def list_sweeps(root: str, max_depth: int = 3) -> pd.DataFrame:
    """Sweep folders (with results.parquet) under ``root``: name, path, modified, rows."""
    rows = []
    if root and os.path.isdir(root):
        paths = [q for k in range(max_depth + 1) for q in glob.glob(os.path.join(root, *(["*"] * k), "results.parquet"))]
        for p in sorted(paths):
            d = os.path.dirname(p)
            try:
                import pyarrow.parquet as pq

                n = pq.ParquetFile(p).metadata.num_rows
            except Exception:  # noqa: BLE001 - a file being replaced
                n = None
            rows.append(dict(name=os.path.relpath(d, root), path=d,
                             modified=pd.Timestamp(_mtime(p), unit="s", tz="UTC"), rows=n))
    df = pd.DataFrame(rows, columns=["name", "path", "modified", "rows"])
    return df.drop_duplicates("path").sort_values("modified", ascending=False).reset_index(drop=True)


@ttl_cache(FILES_TTL_S, maxsize=16)
def _load_sweep(path: str, mtime: float) -> pd.DataFrame:  # noqa: ARG001
    from hftmm.backtesting.sweep import load_results

    return load_results(os.path.join(path, "results.parquet"))


def load_sweep(path: str) -> pd.DataFrame:
    """A sweep's results (one row per combination), cached until the file changes."""
    return _load_sweep(os.path.abspath(path), _mtime(os.path.join(path, "results.parquet")))


def sweep_params(df: pd.DataFrame) -> list[str]:
    """The swept parameters (columns that are neither metrics nor bookkeeping)."""
    from hftmm.backtesting.sweep import param_columns

    return param_columns(df)


# --------------------------------------------------------------------------- data folders


def _is_capture(name: str) -> bool:
    """A recorded capture: a gzip collector file or a cryptofeed ``.ws`` log."""
    return name.endswith(".gz") or name.endswith(".ws") or ".ws." in name


def _resolve_source(src_path: str, data_dir: str, raw_paths: dict[str, str]) -> str:
    """A store file's recorded source (as given to convert: often a bare name)
    as a path: itself if it exists, else the capture of that name found in the
    data folder, else joined to the data folder."""
    if os.path.isabs(src_path) and os.path.exists(src_path):
        return src_path
    return raw_paths.get(os.path.basename(src_path), os.path.join(data_dir, src_path))


def verify_key(path: str) -> str:
    """The file name (in the verify folder) of a capture's verify report."""
    return hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16] + ".json"


def read_verify(verify_dir: str, path: str) -> Optional[dict]:
    """The stored verify report of ``path`` ({path, size, mtime, ok, report, ...})
    with ``stale`` set when the file changed since; None when never verified."""
    p = os.path.join(verify_dir, verify_key(path))
    try:
        with open(p) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    try:
        st = os.stat(path)
        rec["stale"] = st.st_size != rec.get("size") or abs(st.st_mtime - rec.get("mtime", 0)) > 1e-3
    except OSError:
        rec["stale"] = True
    return rec


def _verify_status(rec: Optional[dict]) -> str:
    if rec is None:
        return "not verified"
    if rec.get("error"):
        return "error"
    if rec.get("stale"):
        return "stale"
    return "ok" if rec.get("ok") else "failed"


RAW_COLUMNS = ["file", "path", "size_mb", "modified", "symbol", "status", "messages", "gaps", "resyncs",
               "malformed", "verified"]
STORE_COLUMNS = ["file", "path", "size_mb", "modified", "symbol", "day", "rows", "tick_size", "lot_size", "market",
                 "status", "sources", "problem"]


def _raw_row(p: str, data_dir: str, verify_dir: str, st: os.stat_result) -> dict:
    rec = read_verify(verify_dir, p)
    tot = ((rec or {}).get("report") or {}).get("totals", {})
    name = os.path.basename(p)
    return dict(file=os.path.relpath(p, data_dir), path=p, size_mb=st.st_size / 1e6,
                modified=pd.Timestamp(st.st_mtime, unit="s", tz="UTC"),
                symbol=name.split("_")[0] if "_" in name else "", status=_verify_status(rec),
                messages=tot.get("messages"), gaps=tot.get("gaps"), resyncs=tot.get("resyncs"),
                malformed=tot.get("malformed"),
                verified=pd.Timestamp(rec["verified_at"], unit="s", tz="UTC") if rec and rec.get("verified_at") else None)


def _store_row(p: str, data_dir: str, verify_dir: str, st: os.stat_result, raw_paths: dict[str, str]
               ) -> Optional[dict]:
    import pyarrow.parquet as pq

    from hftmm.data import store

    try:
        meta = store.read_metadata(p)
        if meta.get("schema") != "hftcore.EVENT_DTYPE" and "tick_size" not in meta:
            return None   # not an event-store file (e.g. a sweep's results)
        n, problem = pq.ParquetFile(p).metadata.num_rows, ""
    except Exception as e:  # noqa: BLE001 - a corrupt file is shown as such
        meta, n, problem = {}, None, f"unreadable: {e}"
    sources = [x for x in (meta.get("sources") or []) if isinstance(x, str)]
    st_src = [_verify_status(read_verify(verify_dir, _resolve_source(x, data_dir, raw_paths))) for x in sources]
    if problem:
        status = "unreadable"
    elif not st_src:
        status = "no sources recorded"
    elif all(x == "ok" for x in st_src):
        status = "sources ok"
    elif any(x in ("failed", "error") for x in st_src):
        status = "source failed"
    else:
        status = "sources not verified"
    return dict(file=os.path.relpath(p, data_dir), path=p, size_mb=st.st_size / 1e6,
                modified=pd.Timestamp(st.st_mtime, unit="s", tz="UTC"), symbol=meta.get("symbol", ""),
                day=meta.get("day", os.path.splitext(os.path.basename(p))[0]), rows=n,
                tick_size=meta.get("tick_size"), lot_size=meta.get("lot_size"), market=meta.get("market"),
                status=status, sources=len(sources), problem=problem)


@ttl_cache(FILES_TTL_S)
def list_data(data_dir: str, verify_dir: str) -> dict[str, pd.DataFrame]:
    """{"raw": recorded captures (gzip collector files, cryptofeed .ws logs)
    with size, modified, symbol and verify status ("ok", "failed", "error",
    "stale", "not verified") and summary; "store": converted event-store
    Parquet files with symbol, day, rows, units, number of sources and a
    status from their sources' verify reports}."""
    found: list[str] = []
    if data_dir and os.path.isdir(data_dir):
        for d, dirs, files in os.walk(data_dir):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            found += [os.path.join(d, f) for f in sorted(files)]
    raw_paths = {os.path.basename(p): p for p in found if _is_capture(os.path.basename(p))}
    raw_rows, store_rows = [], []
    for p in found:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if _is_capture(os.path.basename(p)):
            raw_rows.append(_raw_row(p, data_dir, verify_dir, st))
        elif p.endswith(".parquet"):
            row = _store_row(p, data_dir, verify_dir, st, raw_paths)
            if row is not None:
                store_rows.append(row)
    return {"raw": pd.DataFrame(raw_rows, columns=RAW_COLUMNS), "store": pd.DataFrame(store_rows, columns=STORE_COLUMNS)}


def clear_caches() -> None:
    """Forget every cached read (tests; the pages' "refresh" button)."""
    for fn in (live_sessions, live_status, live_latest_status, live_book, live_fills, live_table, list_backtests,
               _load_backtest, list_sweeps, _load_sweep, list_data):
        fn.cache_clear()
