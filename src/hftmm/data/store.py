"""The event store: Parquet (zstd) files of ``hftcore.EVENT_DTYPE`` records.

Layout: ``<root>/<SYMBOL>/<YYYY-MM-DD>.parquet``, one file per symbol and UTC
day of ``local_ts``. The Arrow schema mirrors EVENT_DTYPE field by field
(local_ts, exch_ts, px, qty, first_id, last_id, prev_id: int64; kind, side,
flags: uint8), so DuckDB, pandas or polars read the files as they are. The
file-level key/value metadata (keys ``hftmm.*``) tells the units: ``tick_size``
and ``lot_size`` are the decimal sizes of one price tick and one quantity lot
the integers are counted in; plus symbol, market, source files, the hftmm
version and ``feed_latency_min_ns``, the smallest ``local_ts - exch_ts`` of the
file (negative when the receive clock was behind the exchange's).

Order: within a file, ``local_ts`` never decreases. It is the clock the
backtester's strategy side runs on (a running maximum: a step back would freeze
it) and what files and ``read_events`` ranges are cut by. ``exch_ts`` is not
monotonic and need not be: streams interleave in receive order (a trade's time
can precede the depth event received before it; spot REST snapshots carry no
exchange time, 0), and the kernel takes its running maximum. ``EventWriter``
refuses a chunk whose ``local_ts`` goes back, and ``read_events`` refuses a file
where it does, with a ``DataError`` naming the file and the first such row.

Durability: a file is written under a hidden temporary name in its folder
(``.<day>.parquet.<pid>.<n>.tmp``), fsynced, and renamed over the final name
only when every file of the run is complete: a failed or interrupted
conversion (a full disk) leaves the previous files as they were and no partial
ones. Unreadable files (truncated, not Parquet, other columns) raise
``DataError`` naming the file.
"""
from __future__ import annotations

import datetime as _dt
import glob
import itertools
import json
import logging
import os
import re
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftcore import EVENT_DTYPE
from hftcore.types import event_columns, events_from_columns

from hftmm.errors import DataError

log = logging.getLogger(__name__)

FIELDS = [("local_ts", pa.int64()), ("exch_ts", pa.int64()), ("px", pa.int64()), ("qty", pa.int64()),
          ("first_id", pa.int64()), ("last_id", pa.int64()), ("prev_id", pa.int64()),
          ("kind", pa.uint8()), ("side", pa.uint8()), ("flags", pa.uint8())]
SCHEMA = pa.schema([pa.field(n, t, nullable=False) for n, t in FIELDS])
#: int64 columns are DELTA_BINARY_PACKED (times and ids grow slowly, prices stay
#: near each other): smaller files and about 3x faster to read than PLAIN
_DELTA = {n: "DELTA_BINARY_PACKED" for n, t in FIELDS if t == pa.int64()}
assert [n for n, _ in FIELDS] == list(EVENT_DTYPE.names)

DAY_NS = 86_400 * 1_000_000_000
META_PREFIX = "hftmm."
ROW_GROUP_ROWS = 1 << 17
_DAY_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.parquet$")
_TMP_SEQ = itertools.count()


def day_of(ts_ns: int) -> str:
    """UTC date (YYYY-MM-DD) of a time in ns."""
    return _dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, _dt.timezone.utc).strftime("%Y-%m-%d")


def to_table(events: np.ndarray, metadata: Optional[dict] = None) -> pa.Table:
    """EVENT_DTYPE records -> an Arrow table of SCHEMA (the columns split in one
    C pass without the GIL, ``hftcore.types.event_columns``)."""
    n = len(events)
    if events.dtype != EVENT_DTYPE:
        events = events.astype(EVENT_DTYPE)
    cols = [pa.Array.from_buffers(typ, n, [None, pa.py_buffer(col)])
            for (name, typ), col in zip(FIELDS, event_columns(events))]
    schema = SCHEMA.with_metadata(metadata) if metadata else SCHEMA
    return pa.Table.from_arrays(cols, schema=schema)


def from_batch(batch: Union[pa.RecordBatch, pa.Table]) -> np.ndarray:
    """An Arrow batch of SCHEMA -> EVENT_DTYPE records."""
    if not batch.num_rows:
        return np.zeros(0, EVENT_DTYPE)
    # zero-copy views of Arrow's buffers, joined into records in one C pass
    return events_from_columns([batch.column(name).to_numpy(zero_copy_only=False) for name, _ in FIELDS])


def _encode_meta(meta: dict) -> dict:
    return {f"{META_PREFIX}{k}": (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()}


def _unreadable(path: str, exc: BaseException) -> DataError:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0] if str(exc) else ""
    return DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {why})")


def _open(path: str) -> pq.ParquetFile:
    """The Parquet file at ``path``; DataError naming it when it cannot be opened."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def _check_schema(path: str, pf: pq.ParquetFile) -> None:
    """DataError unless the file has the store's columns and types."""
    got = {f.name: f.type for f in pf.schema_arrow}
    bad = [f"{n} ({got[n]} is not {t})" if n in got else f"{n} (missing)" for n, t in FIELDS if got.get(n) != t]
    if bad:
        raise DataError(f"{path}: not an hftmm event store file: columns {', '.join(bad)}")


def read_metadata(path: str) -> dict:
    """The ``hftmm.*`` metadata of one store file (JSON values decoded)."""
    # the footer's key/values: the schema's, plus those added at close (feed_latency_min_ns)
    return _decode_meta(_open(path).metadata.metadata)


def _decode_meta(raw: Optional[dict]) -> dict:
    out = {}
    for k, v in (raw or {}).items():
        k = k.decode()
        if k.startswith(META_PREFIX):
            v = v.decode()
            try:
                out[k[len(META_PREFIX):]] = json.loads(v) if v[:1] in "[{" else v
            except ValueError:
                out[k[len(META_PREFIX):]] = v
    return out


class EventWriter:
    """Appends EVENT_DTYPE chunks of one symbol to ``<root>/<SYMBOL>/<day>.parquet``.

    Chunks are buffered into row groups of ``row_group_rows``; a chunk that
    spans midnight (UTC, by local_ts) is split. ``local_ts`` must not decrease
    within a chunk nor from a day file's last row to the next chunk of that
    day: DataError (naming the file and the row) otherwise. Files are written
    under temporary names and replace the final ones at :meth:`close` (not
    appended to across runs); :meth:`abort` (or leaving the ``with`` block by an
    exception) deletes them and keeps the previous files. A failed write (a
    full disk) raises DataError naming the file. ``close`` is
    :meth:`finish` (complete and fsync every file) then :meth:`commit` (rename):
    a caller with several writers finishes them all before committing any.
    """

    def __init__(self, root: str, symbol: str, tick_size: str, lot_size: str, market: str = "",
                 sources: Sequence[str] = (), extra: Optional[dict] = None,
                 row_group_rows: int = ROW_GROUP_ROWS, compression: str = "zstd") -> None:
        import hftmm

        self.root = root
        self.symbol = symbol.upper()
        self.meta = {"symbol": self.symbol, "market": market, "tick_size": str(tick_size),
                     "lot_size": str(lot_size), "sources": list(sources),
                     "hftmm_version": hftmm.__version__, "schema": "hftcore.EVENT_DTYPE"}
        if extra:
            self.meta.update(extra)
        self.row_group_rows = row_group_rows
        self.compression = compression
        self.rows = 0
        self.paths: list[str] = []
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._tmp: dict[int, str] = {}           # day -> temporary file, until committed
        self._pending: dict[int, list[np.ndarray]] = {}
        self._pending_rows: dict[int, int] = {}
        self._min_latency: dict[int, int] = {}
        self._last_ts: dict[int, int] = {}       # day -> local_ts of its last row so far
        self._day_rows: dict[int, int] = {}      # day -> rows given so far (written or pending)
        self._finished = False

    def path_for(self, day_index: int) -> str:
        return os.path.join(self.root, self.symbol, day_of(day_index * DAY_NS) + ".parquet")

    def write(self, events: np.ndarray) -> None:
        if len(events) == 0:
            return
        if self._finished:
            raise ValueError("EventWriter.write after finish/close/abort")
        if events.dtype != EVENT_DTYPE:
            if events.dtype.names != EVENT_DTYPE.names:
                raise TypeError("events must be hftcore.EVENT_DTYPE records")
            events = events.astype(EVENT_DTYPE)  # e.g. np.concatenate packed the padding away
        ts = events["local_ts"]
        days = ts // DAY_NS
        back = np.flatnonzero(ts[1:] < ts[:-1])
        if len(back):
            i = int(back[0]) + 1
            d = int(days[i])
            self._refuse(d, int(np.count_nonzero(days[:i] == d)), int(ts[i - 1]), int(ts[i]))
        d0, d1 = int(days[0]), int(days[-1])
        if d0 == d1:
            self._add(d0, events)
            return
        # split at day boundaries (keeps the order inside each day; the chunk is sorted)
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        for part in np.split(events, cuts):
            self._add(int(part["local_ts"][0] // DAY_NS), part)

    def _refuse(self, day: int, i: int, prev: int, cur: int) -> None:
        """DataError: row i of this chunk's part of ``day`` goes back from prev to cur."""
        row = self._day_rows.get(day, 0) + i
        raise DataError(f"{self.path_for(day)}: local_ts goes back at row {row}: {cur} after {prev} "
                        f"({(prev - cur) / 1e9:.6f} s earlier); the store needs receive times in order")

    def _add(self, day: int, events: np.ndarray) -> None:
        first = int(events["local_ts"][0])
        last = self._last_ts.get(day)
        if last is not None and first < last:
            self._refuse(day, 0, last, first)
        self._last_ts[day] = int(events["local_ts"][-1])
        self._day_rows[day] = self._day_rows.get(day, 0) + len(events)
        self._pending.setdefault(day, []).append(events)
        n = self._pending_rows.get(day, 0) + len(events)
        self._pending_rows[day] = n
        if n >= self.row_group_rows:
            self._flush(day)

    def _flush(self, day: int) -> None:
        chunks = self._pending.pop(day, [])
        self._pending_rows.pop(day, None)
        if not chunks:
            return
        ev = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        w = self._writers.get(day)
        path = self.path_for(day)
        try:
            if w is None:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = os.path.join(os.path.dirname(path),
                                   f".{os.path.basename(path)}.{os.getpid()}.{next(_TMP_SEQ)}.tmp")
                self._tmp[day] = tmp
                meta = dict(self.meta, day=day_of(day * DAY_NS))
                # dictionary encoding only where it pays (kind/side/flags): on the
                # int64 columns it doubles the write time and grows the file
                w = pq.ParquetWriter(tmp, SCHEMA.with_metadata(_encode_meta(meta)),
                                     compression=self.compression, use_dictionary=["kind", "side", "flags"],
                                     column_encoding=_DELTA)
                self._writers[day] = w
                self.paths.append(path)
            w.write_table(to_table(ev), row_group_size=max(len(ev), 1))
        except OSError as exc:
            raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        self.rows += len(ev)
        self._min_latency[day] = _lower(self._min_latency.get(day), _min_latency(ev["local_ts"], ev["exch_ts"]))

    def finish(self) -> None:
        """Write what is buffered and complete every file (footer, fsync) under its
        temporary name. DataError when that fails (the temporary files are deleted)."""
        if self._finished:
            return
        try:
            for day in list(self._pending):
                self._flush(day)
            for day, w in self._writers.items():
                if self._min_latency.get(day) is not None:
                    # smallest local_ts - exch_ts of the file [ns] (< 0: receive clock behind)
                    w.add_key_value_metadata(_encode_meta({"feed_latency_min_ns": str(self._min_latency[day])}))
                try:
                    w.close()
                    _fsync_path(self._tmp[day])
                except OSError as exc:
                    raise DataError(f"{self.path_for(day)}: cannot write: {exc.strerror or exc}") from exc
        except BaseException:
            self.abort()
            raise
        self._writers.clear()
        self._finished = True

    def commit(self) -> list[str]:
        """Rename the finished files over their final names (fsyncing the folders);
        returns the final paths, sorted."""
        self.finish()
        dirs = set()
        for day, tmp in sorted(self._tmp.items()):
            path = self.path_for(day)
            try:
                os.replace(tmp, path)
            except OSError as exc:
                self.abort()
                raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from exc
            dirs.add(os.path.dirname(path))
        self._tmp.clear()
        for d in dirs:
            _fsync_dir(d)
        return sorted(self.paths)

    def close(self) -> list[str]:
        """finish() then commit(): the store files written, sorted."""
        return self.commit()

    def abort(self) -> None:
        """Give up: close and delete the temporary files; the final names keep
        whatever they held before. Never raises for a file it cannot delete."""
        for w in self._writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
        self._writers.clear()
        for tmp in self._tmp.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%s: cannot delete a temporary file: %s", tmp, exc)
        self._tmp.clear()
        self._pending.clear()
        self._pending_rows.clear()
        self.paths = []
        self._finished = True

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    """fsync a folder (the renames in it); skipped where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _as_ns(t) -> Optional[int]:
    if t is None:
        return None
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, str):
        t = _dt.datetime.fromisoformat(t)
    if isinstance(t, _dt.date) and not isinstance(t, _dt.datetime):
        t = _dt.datetime(t.year, t.month, t.day)
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(round(t.timestamp() * 1_000_000)) * 1000


def _exists(path_or_dir: str) -> None:
    if not os.path.exists(path_or_dir):
        raise DataError(f"{path_or_dir}: no such file or folder (an event store: hftmm data convert --out)")


def _flat_symbol(path: str) -> str:
    """The symbol a store file says it holds ("" when it does not say)."""
    return str(read_metadata(path).get("symbol", "")).upper()


def store_files(path_or_dir: str, symbol: Optional[str] = None) -> list[str]:
    """Store files of a symbol: a file (as it is), ``<dir>/<SYMBOL>/*.parquet``,
    else the ``<dir>/*.parquet`` files holding that symbol (by their metadata; a
    file naming none counts as any); without a symbol, ``<dir>/*.parquet`` else
    ``<dir>/*/*.parquet``. DataError when ``path_or_dir`` does not exist; an
    existing store without such files gives []."""
    _exists(path_or_dir)
    if os.path.isfile(path_or_dir):
        return [path_or_dir]
    files = sorted(glob.glob(os.path.join(path_or_dir, "*.parquet")))
    if symbol:
        own = glob.glob(os.path.join(path_or_dir, symbol.upper(), "*.parquet"))
        if own:
            return sorted(own)
        return [f for f in files if _flat_symbol(f) in ("", symbol.upper())]
    if not files:
        files = sorted(glob.glob(os.path.join(path_or_dir, "*", "*.parquet")))
    return files


def _symbol_files(path_or_dir: str) -> dict[str, list[str]]:
    """{symbol: its store files} of a store (folder or one file), from names and,
    for files not in a symbol folder, their footers."""
    _exists(path_or_dir)
    out: dict[str, list[str]] = {}
    if os.path.isfile(path_or_dir):
        flat = [path_or_dir]
    else:
        flat = sorted(glob.glob(os.path.join(path_or_dir, "*.parquet")))
        for f in sorted(glob.glob(os.path.join(path_or_dir, "*", "*.parquet"))):
            out.setdefault(os.path.basename(os.path.dirname(f)).upper(), []).append(f)
    for f in flat:
        out.setdefault(_flat_symbol(f), []).append(f)
    return out


def _file_days(path: str) -> list[str]:
    """UTC days (ISO) a store file holds events of: from its name
    (``YYYY-MM-DD.parquet``), else its ``day`` metadata, else the row-group
    statistics of ``local_ts``; nothing is read but the footer."""
    m = _DAY_NAME.match(os.path.basename(path))
    if m:
        return [m.group(1)]
    pf = _open(path)
    day = _decode_meta(pf.metadata.metadata).get("day")
    if isinstance(day, str) and _DAY_NAME.match(day + ".parquet"):
        return [day]
    lo = hi = None
    md = pf.metadata
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    if "local_ts" not in names:
        return []
    col = names.index("local_ts")
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        if rg.num_rows == 0:
            continue
        st = rg.column(col).statistics
        if st is None or not st.has_min_max:
            raise DataError(f"{path}: no local_ts statistics to tell its days; name it YYYY-MM-DD.parquet")
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    if lo is None:
        return []
    return [day_of(d * DAY_NS) for d in range(int(lo) // DAY_NS, int(hi) // DAY_NS + 1)]


def available_symbols(path_or_dir: str) -> list[str]:
    """The symbols a store (folder, or one file) has files for, sorted (a file
    whose metadata names no symbol gives ""). DataError when it does not exist."""
    return sorted(s for s, files in _symbol_files(path_or_dir).items() if files)


def available_dates(path_or_dir: str, symbol: Optional[str] = None) -> list[str]:
    """The UTC days (ISO ``YYYY-MM-DD``, sorted) a store has events for: of
    ``symbol`` when given, else of any symbol. Cheap: from file names (footers
    only for files not named by their day); rows are not read. DataError when
    the store does not exist."""
    groups = _symbol_files(path_or_dir)
    if symbol:
        files = groups.get(symbol.upper(), []) + groups.get("", [])
    else:
        files = [f for fs in groups.values() for f in fs]
    return sorted({d for f in files for d in _file_days(f)})


def _files_in(path_or_dir: str, symbol: Optional[str], lo: Optional[int], hi: Optional[int]) -> list[str]:
    """Store files that may hold local_ts in [lo, hi) (day files outside are skipped)."""
    out = []
    for path in store_files(path_or_dir, symbol):
        m = _DAY_NAME.match(os.path.basename(path))
        if m:
            d = _dt.datetime.strptime(m.group(1), "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc)
            d_ns = int(d.timestamp()) * 1_000_000_000
            if (hi is not None and d_ns >= hi) or (lo is not None and d_ns + DAY_NS <= lo):
                continue
        out.append(path)
    return out


def _in_range(ts: np.ndarray, lo: Optional[int], hi: Optional[int]) -> Optional[np.ndarray]:
    """Mask of lo <= ts < hi, or None when every row is in."""
    if lo is None and hi is None:
        return None
    keep = np.ones(len(ts), bool)
    if lo is not None:
        keep &= ts >= lo
    if hi is not None:
        keep &= ts < hi
    return None if keep.all() else keep


def _min_latency(local: np.ndarray, exch: np.ndarray, keep: Optional[np.ndarray] = None) -> Optional[int]:
    """Smallest local - exch [ns] over the rows with an exchange time (and ``keep``); None if none."""
    has = exch > 0
    if keep is not None:
        has &= keep
    return int((local[has] - exch[has]).min()) if has.any() else None


def _lower(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return b if a is None else a if b is None else min(a, b)


def read_events(path_or_dir: str, symbol: Optional[str] = None, start=None, end=None,
                batch_rows: int = 1 << 18) -> Iterator[np.ndarray]:
    """EVENT_DTYPE chunks (at most ``batch_rows`` each, streamed row group by
    row group: bounded memory) of the store files of ``symbol`` with
    ``start <= local_ts < end`` (ns, datetime, date or ISO text; UTC when naive).

    No file in the range: no chunks (see :func:`available_dates`). DataError,
    naming the file, when the store does not exist, a file is not a readable
    store file, or ``local_ts`` goes back (the first such row; checked on every
    row read, and from one day file of a folder to the next)."""
    lo, hi = _as_ns(start), _as_ns(end)
    last: Optional[tuple[str, int]] = None       # (file, local_ts of its last row) in this folder
    for path in _files_in(path_or_dir, symbol, lo, hi):
        pf = _open(path)
        _check_schema(path, pf)
        if last is not None and os.path.dirname(last[0]) != os.path.dirname(path):
            last = None
        row = 0
        batches = pf.iter_batches(batch_size=batch_rows)
        while True:
            try:
                batch = next(batches, None)
            except (OSError, pa.ArrowException) as exc:
                raise _unreadable(path, exc) from exc
            if batch is None:
                break
            ev = from_batch(batch)
            if not len(ev):
                continue
            ts = ev["local_ts"]
            if last is not None and ts[0] < last[1]:
                where = f"row {row}" if last[0] == path else f"row 0, earlier than the last row of {last[0]}"
                raise DataError(f"{path}: local_ts goes back at {where}: {int(ts[0])} after {last[1]}; "
                                "the store needs receive times in order (re-run hftmm data convert)")
            back = np.flatnonzero(ts[1:] < ts[:-1])
            if len(back):
                i = int(back[0]) + 1
                raise DataError(f"{path}: local_ts goes back at row {row + i}: {int(ts[i])} after "
                                f"{int(ts[i - 1])}; the store needs receive times in order (re-run hftmm data convert)")
            last = (path, int(ts[-1]))
            row += len(ev)
            keep = _in_range(ts, lo, hi)
            if keep is not None:
                ev = ev[keep]
            if len(ev):
                yield ev


def min_feed_latency(path_or_dir: str, symbol: Optional[str] = None, start=None, end=None) -> Optional[int]:
    """The smallest ``local_ts - exch_ts`` [ns] over the records with an exchange
    time (``exch_ts > 0``) and ``start <= local_ts < end``; None if there is none.
    Negative means the receive clock was behind the exchange's. Taken from the
    file's ``feed_latency_min_ns`` metadata (written by :class:`EventWriter`),
    else computed from the two time columns, streamed."""
    lo, hi = _as_ns(start), _as_ns(end)
    best: Optional[int] = None
    for path in _files_in(path_or_dir, symbol, lo, hi):
        pf = _open(path)
        _check_schema(path, pf)
        kv = pf.metadata.metadata or {}
        key = (META_PREFIX + "feed_latency_min_ns").encode()
        if key in kv:
            # written at convert time over the whole file: a part of it can only be
            # larger, so the correction is at worst conservative
            best = _lower(best, int(kv[key]))
            continue
        try:
            for batch in pf.iter_batches(batch_size=1 << 20, columns=["local_ts", "exch_ts"]):
                local = batch.column(0).to_numpy()
                exch = batch.column(1).to_numpy()
                rng = _in_range(local, lo, hi)
                best = _lower(best, _min_latency(local, exch, rng))
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(path, exc) from exc
    return best


def store_metadata(path_or_dir: str, symbol: Optional[str] = None) -> dict:
    """Metadata (symbol, market, tick_size, lot_size, ...) of a symbol's store.
    DataError when the store does not exist or has no file of the symbol."""
    files = store_files(path_or_dir, symbol)
    if not files:
        have = ", ".join(available_symbols(path_or_dir)) or "none"
        raise DataError(f"{path_or_dir}: no event store files for {symbol or 'any symbol'} (symbols: {have})")
    return read_metadata(files[0])
