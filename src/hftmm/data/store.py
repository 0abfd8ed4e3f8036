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
"""
from __future__ import annotations

import datetime as _dt
import glob
import json
import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hftcore import EVENT_DTYPE
from hftcore.types import events_from_columns
from hftcore.types import event_columns

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


def read_metadata(path: str) -> dict:
    """The ``hftmm.*`` metadata of one store file (JSON values decoded)."""
    # the footer's key/values: the schema's, plus those added at close (feed_latency_min_ns)
    raw = pq.read_metadata(path).metadata or {}
    out = {}
    for k, v in raw.items():
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
    spans midnight (UTC, by local_ts) is split. Files are replaced, not
    appended to across runs. Use as a context manager or call close().
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
        self._pending: dict[int, list[np.ndarray]] = {}
        self._pending_rows: dict[int, int] = {}
        self._min_latency: dict[int, int] = {}

    def path_for(self, day_index: int) -> str:
        return os.path.join(self.root, self.symbol, day_of(day_index * DAY_NS) + ".parquet")

    def write(self, events: np.ndarray) -> None:
        if len(events) == 0:
            return
        if events.dtype != EVENT_DTYPE:
            if events.dtype.names != EVENT_DTYPE.names:
                raise TypeError("events must be hftcore.EVENT_DTYPE records")
            events = events.astype(EVENT_DTYPE)  # e.g. np.concatenate packed the padding away
        days = events["local_ts"] // DAY_NS
        d0, d1 = int(days[0]), int(days[-1])
        if d0 == d1 and (len(events) < 3 or (days.min() == d0 and days.max() == d0)):
            self._add(d0, events)
            return
        # split at day boundaries (keeps the order inside each day)
        for d in np.unique(days):
            self._add(int(d), events[days == d])

    def _add(self, day: int, events: np.ndarray) -> None:
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
        if w is None:
            path = self.path_for(day)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            meta = dict(self.meta, day=day_of(day * DAY_NS))
            # dictionary encoding only where it pays (kind/side/flags): on the
            # int64 columns it doubles the write time and grows the file
            w = pq.ParquetWriter(path, SCHEMA.with_metadata(_encode_meta(meta)),
                                 compression=self.compression, use_dictionary=["kind", "side", "flags"],
                                 column_encoding=_DELTA)
            self._writers[day] = w
            self.paths.append(path)
        w.write_table(to_table(ev), row_group_size=max(len(ev), 1))
        self.rows += len(ev)
        self._min_latency[day] = _lower(self._min_latency.get(day), _min_latency(ev["local_ts"], ev["exch_ts"]))

    def close(self) -> list[str]:
        for day in list(self._pending):
            self._flush(day)
        for day, w in self._writers.items():
            if self._min_latency.get(day) is not None:
                # smallest local_ts - exch_ts of the file [ns] (< 0: receive clock behind)
                w.add_key_value_metadata(_encode_meta({"feed_latency_min_ns": str(self._min_latency[day])}))
            w.close()
        self._writers.clear()
        return sorted(self.paths)

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def store_files(path_or_dir: str, symbol: Optional[str] = None) -> list[str]:
    """Store files of a symbol: a file, ``<dir>/<SYMBOL>/*.parquet`` or ``<dir>/*.parquet``."""
    if os.path.isfile(path_or_dir):
        return [path_or_dir]
    if symbol:
        files = glob.glob(os.path.join(path_or_dir, symbol.upper(), "*.parquet"))
        if files:
            return sorted(files)
    files = glob.glob(os.path.join(path_or_dir, "*.parquet"))
    if not files and not symbol:
        files = glob.glob(os.path.join(path_or_dir, "*", "*.parquet"))
    return sorted(files)


def _files_in(path_or_dir: str, symbol: Optional[str], lo: Optional[int], hi: Optional[int]) -> list[str]:
    """Store files that may hold local_ts in [lo, hi) (day files outside are skipped)."""
    out = []
    for path in store_files(path_or_dir, symbol):
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            d = _dt.datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc)
            d_ns = int(d.timestamp()) * 1_000_000_000
            if (hi is not None and d_ns >= hi) or (lo is not None and d_ns + DAY_NS <= lo):
                continue
        except ValueError:
            pass
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
    ``start <= local_ts < end`` (ns, datetime, date or ISO text; UTC when naive)."""
    lo, hi = _as_ns(start), _as_ns(end)
    for path in _files_in(path_or_dir, symbol, lo, hi):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_rows):
            ev = from_batch(batch)
            keep = _in_range(ev["local_ts"], lo, hi)
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
        pf = pq.ParquetFile(path)
        kv = pf.metadata.metadata or {}
        key = (META_PREFIX + "feed_latency_min_ns").encode()
        if key in kv:
            # written at convert time over the whole file: a part of it can only be
            # larger, so the correction is at worst conservative
            best = _lower(best, int(kv[key]))
            continue
        for batch in pf.iter_batches(batch_size=1 << 20, columns=["local_ts", "exch_ts"]):
            local = batch.column(0).to_numpy()
            exch = batch.column(1).to_numpy()
            rng = _in_range(local, lo, hi)
            best = _lower(best, _min_latency(local, exch, rng))
    return best


def store_metadata(path_or_dir: str, symbol: Optional[str] = None) -> dict:
    """Metadata (symbol, market, tick_size, lot_size, ...) of a symbol's store."""
    files = store_files(path_or_dir, symbol)
    if not files:
        raise FileNotFoundError(f"no event store files for {symbol or 'any symbol'} under {path_or_dir}")
    return read_metadata(files[0])
