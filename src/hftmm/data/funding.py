"""USD-M perpetual funding: Binance's funding-rate history as core events.

A perpetual's position pays ``position x mark price x funding rate`` at each
funding time (longs pay a positive rate, shorts receive it). The replay kernel
applies ``hftcore.EV_FUNDING`` records (px = mark price in ticks, 0 = unknown: the
book's mid at that moment; qty = the rate in units of ``hftcore.FUNDING_RATE_SCALE``)
to every trader's cash; this module makes them from:

- Binance public data, ``data.binance.vision`` ``futures/um/monthly/fundingRate``
  CSVs (a header; ``calc_time`` [ms], ``funding_interval_hours``,
  ``last_funding_rate``) -- no mark price: the book's mid is used;
- ``GET /fapi/v1/fundingRate`` JSON (``[{"symbol", "fundingTime" [ms],
  "fundingRate", "markPrice"}, ...]``; ``markPrice`` may be empty for old rows);
- either of those inside a ``.zip`` as downloaded;
- the ``<symbol>@markPrice[@1s]`` stream a USD-M session records
  (:class:`MarkFunding`): each ``markPriceUpdate`` names the next funding time
  ``T``, its rate ``r`` and the mark ``p``; the first update at or after ``T``
  reveals the settlement (rate and mark of the last update before it), stamped
  with that update's receive time -- so paper trading (live) and the backtest of
  its recording apply it at the same point of the event stream.

Rates are read as exact decimals (Binance sends 8 decimals), so the payment is
exactly rate x notional.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from decimal import Decimal, InvalidOperation
from typing import Iterable, Iterator, NamedTuple, Optional

import numpy as np

from hftcore import EV_FUNDING, EVENT_DTYPE, EVF_BEGIN, EVF_EMPTY, EVF_END, FUNDING_RATE_SCALE, NO_ID

__all__ = ["FundingRow", "read_funding", "funding_events", "with_funding", "MarkFunding", "FundingMerger",
           "mark_price_update"]

_MS = 1_000_000
_FILE_SYMBOL = re.compile(r"^([A-Za-z0-9]+)-fundingRate-", re.I)


class FundingRow(NamedTuple):
    time_ms: int                     # funding time, ms since the epoch
    rate: Decimal
    mark_price: Optional[Decimal]    # None: unknown (the book's mid stands in)


def _dec(value: object, what: str, where: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{where}: {what} {value!r} is not finite")
    return d


def _rows_from_text(text: str, where: str, symbol: Optional[str]) -> list[FundingRow]:
    s = text.lstrip()
    out: list[FundingRow] = []
    if s.startswith("["):
        for i, r in enumerate(json.loads(s)):
            at = f"{where} item {i}"
            if symbol is not None and r.get("symbol", symbol).upper() != symbol.upper():
                continue
            if "fundingTime" not in r or "fundingRate" not in r:
                raise ValueError(f"{at}: needs fundingTime and fundingRate, got {sorted(r)}")
            mp = r.get("markPrice")
            mark = _dec(mp, "markPrice", at) if mp not in (None, "") else None
            out.append(FundingRow(int(r["fundingTime"]), _dec(r["fundingRate"], "fundingRate", at),
                                  mark if mark is not None and mark > 0 else None))
        return out
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return out
    cols = [h.strip().lower() for h in header]
    if "calc_time" in cols and "last_funding_rate" in cols:
        it, ir, im = cols.index("calc_time"), cols.index("last_funding_rate"), None
    elif "fundingtime" in cols and "fundingrate" in cols:
        it, ir = cols.index("fundingtime"), cols.index("fundingrate")
        im = cols.index("markprice") if "markprice" in cols else None
    else:
        raise ValueError(f"{where}: not a Binance funding-rate file (header {header!r}; expected "
                         "calc_time,funding_interval_hours,last_funding_rate)")
    for n, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        at = f"{where} line {n}"
        try:
            t = int(row[it])
        except (ValueError, IndexError):
            raise ValueError(f"{at}: bad funding time {row!r}") from None
        mark = None
        if im is not None and im < len(row) and row[im].strip():
            mark = _dec(row[im], "markPrice", at)
        out.append(FundingRow(t, _dec(row[ir], "funding rate", at), mark if mark is not None and mark > 0 else None))
    return out


def read_funding(paths: str | Iterable[str], symbol: Optional[str] = None) -> list[FundingRow]:
    """Funding rows from CSV / JSON / ZIP files (or folders of them), sorted by time,
    one per funding time (a time given twice must have one rate)."""
    if isinstance(paths, str):
        paths = [paths]
    files: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p)
                            if f.lower().endswith((".csv", ".json", ".zip")))
        elif os.path.exists(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"funding file not found: {p}")
    rows: dict[int, FundingRow] = {}
    if symbol is not None:
        # data.binance.vision names its files <SYMBOL>-fundingRate-<month>: skip other symbols'
        files = [f for f in files if not _FILE_SYMBOL.match(os.path.basename(f))
                 or _FILE_SYMBOL.match(os.path.basename(f)).group(1).upper() == symbol.upper()]
    for f in files:
        if f.lower().endswith(".zip"):
            with zipfile.ZipFile(f) as z:
                texts = [(f"{f}:{n}", z.read(n).decode("utf-8-sig")) for n in z.namelist()
                         if n.lower().endswith((".csv", ".json"))]
        else:
            with open(f, encoding="utf-8-sig") as fh:
                texts = [(f, fh.read())]
        for where, text in texts:
            for r in _rows_from_text(text, where, symbol):
                old = rows.get(r.time_ms)
                if old is not None and old.rate != r.rate:
                    raise ValueError(f"{where}: funding time {r.time_ms} given twice with rates {old.rate} "
                                     f"and {r.rate}")
                if old is None or (old.mark_price is None and r.mark_price is not None):
                    rows[r.time_ms] = r
    return [rows[t] for t in sorted(rows)]


def funding_events(rows: Iterable[FundingRow], tick_size: str) -> np.ndarray:
    """``EV_FUNDING`` records (EVENT_DTYPE) at each row's time: px = mark price in
    ticks (0: unknown), qty = rate x FUNDING_RATE_SCALE (exact)."""
    rows = list(rows)
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    tick = Decimal(str(tick_size))
    scale = Decimal(FUNDING_RATE_SCALE)
    for i, r in enumerate(rows):
        q = r.rate * scale
        if q != q.to_integral_value():
            raise ValueError(f"funding rate {r.rate} at {r.time_ms} has more than "
                             f"{len(str(FUNDING_RATE_SCALE)) - 1} decimals")
        ts = r.time_ms * _MS
        out[i] = (ts, ts, int((r.mark_price / tick).to_integral_value()) if r.mark_price is not None else 0,
                  int(q), r.time_ms, r.time_ms, NO_ID, EV_FUNDING, 0, EVF_BEGIN | EVF_END | EVF_EMPTY)
    return out


class FundingMerger:
    """Funding records merged into a stream of event chunks by receive time
    (``local_ts``): a record goes before the first event at or after its time;
    records before the first event (no position yet) are dropped, those after the
    last stay pending (:meth:`pending`: the data has ended before them)."""

    def __init__(self, funding: Optional[np.ndarray] = None) -> None:
        self._f = np.zeros(0, dtype=EVENT_DTYPE)
        self._first = True
        if funding is not None and len(funding):
            self.add(funding)

    def add(self, funding: np.ndarray) -> None:
        self._f = np.sort(np.concatenate([self._f, funding]).astype(EVENT_DTYPE), order="local_ts", kind="stable")

    @property
    def pending(self) -> int:
        return len(self._f)

    def merge(self, chunk: np.ndarray) -> np.ndarray:
        if not len(chunk):
            return chunk
        f = self._f
        if len(f) and (chunk["kind"] == EV_FUNDING).any():
            raise ValueError("the events already carry funding records (from a recorded markPrice stream): "
                             "leave out the funding files")
        if self._first:
            self._first = False
            f = f[int(np.searchsorted(f["local_ts"], int(chunk["local_ts"][0]), side="left")):]
        if not len(f):
            self._f = f
            return chunk
        k = int(np.searchsorted(f["local_ts"], int(chunk["local_ts"][-1]), side="right"))
        self._f = f[k:]
        if k == 0:
            return chunk
        part = f[:k]
        at = np.searchsorted(chunk["local_ts"], part["local_ts"], side="left")
        return np.insert(chunk, at, part)


def with_funding(chunks: Iterable[np.ndarray], funding: np.ndarray) -> Iterator[np.ndarray]:
    """The chunks with the funding records merged in by receive time (``local_ts``):
    a record goes before the first event at or after its time; records before the
    first event (no position yet) or after the last (the data has ended) are dropped."""
    m = FundingMerger(funding)
    for chunk in chunks:
        yield m.merge(chunk)


_MARK_KEY = b"markPriceUpdate"


def mark_price_update(frame: bytes | str) -> Optional[dict]:
    """The ``markPriceUpdate`` event of a raw frame (raw or combined-stream), else None."""
    raw = frame.encode() if isinstance(frame, str) else frame
    if _MARK_KEY not in raw:
        return None
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if isinstance(msg, dict) and isinstance(msg.get("data"), dict):
        msg = msg["data"]
    return msg if isinstance(msg, dict) and msg.get("e") == "markPriceUpdate" else None


class MarkFunding:
    """Funding settlements from the markPrice stream of one symbol (see the module
    docstring). :meth:`feed` returns the EV_FUNDING record(s) a message reveals,
    stamped ``local_ts`` = its receive time, ``exch_ts`` = the funding time."""

    def __init__(self, symbol: str, tick_size: str) -> None:
        self.symbol = symbol.upper()
        self.tick_size = str(tick_size)
        self._next: Optional[tuple[int, Decimal, Decimal]] = None    # (T ms, rate, mark of the last update)
        self._last_e = -1                    # newest event time taken (a second feed's copies are older)
        self._settled = -1                   # the last funding time settled
        self.settlements = 0
        self.bad = 0

    def feed(self, local_ns: int, msg: dict) -> np.ndarray:
        if str(msg.get("s", self.symbol)).upper() != self.symbol:
            return np.zeros(0, dtype=EVENT_DTYPE)
        try:
            e_ms, t_ms = int(msg["E"]), int(msg["T"])
            rate, mark = Decimal(str(msg["r"])), Decimal(str(msg["p"]))
            if not (rate.is_finite() and mark.is_finite()) or mark <= 0:
                raise ValueError
        except (KeyError, TypeError, ValueError, InvalidOperation):
            self.bad += 1
            return np.zeros(0, dtype=EVENT_DTYPE)
        out = np.zeros(0, dtype=EVENT_DTYPE)
        if e_ms <= self._last_e:             # the other feed's copy, or an older update
            return out
        self._last_e = e_ms
        nxt = self._next
        if nxt is not None and e_ms >= nxt[0] and nxt[0] > self._settled:
            out = funding_events([FundingRow(nxt[0], nxt[1], nxt[2])], self.tick_size)
            out["local_ts"] = local_ns
            self._settled = nxt[0]
            self.settlements += 1
        if t_ms > self._settled:             # (an update naming a time already settled is stale)
            self._next = (t_ms, rate, mark)
        return out
