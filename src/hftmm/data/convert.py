"""``hftmm data convert``: raw captures and public-data CSVs -> the event store.

Inputs (``--format auto`` tells them apart by name and content):

- ``collector``: gzip (or plain) text, ``<local ns> <json>`` a line -- ours
  (``hftmm record``) and hftbacktest's. Decoded in C by
  ``BinanceDecoder.decode_lines`` straight into event records (no message
  objects) from big zlib chunks; a multi-symbol file is split by symbol.
- ``cryptofeed``: its ``.ws`` log plus the ``.http`` log beside it (REST
  snapshots), split by symbol.
- ``binance-trades`` / ``binance-aggtrades`` / ``binance-bookticker``:
  data.binance.vision CSVs (plain, .zip or .gz). Spot files have no header (and
  us timestamps from 2025 on), USD-M ones have one; both are detected, and
  times are taken as ms, us or ns by magnitude. No local time exists there:
  ``local_ts`` = the exchange time.
- ``tardis``: Tardis ``incremental_book_L2`` (a run of is_snapshot=true rows is
  one SNAPSHOT message; other rows sharing a local_timestamp are one DEPTH
  message; no update ids: NO_ID) and ``trades`` CSVs (us timestamps).

Normalisation (raw JSON captures: collector and cryptofeed; on by default,
``normalize=False`` / ``--raw`` writes the receive order as decoded): the
store holds each symbol's book stream *as Binance's sync rules apply it*, so a
naive replay (the backtester's: a SNAPSHOT run clears the book and loads it, a
DEPTH record sets its level) rebuilds the exchange book exactly. The decoded
records of a symbol go through ``hftcore.sync.EventNormalizer`` (a C-level
``BookSync``, state kept across chunks and input files):

- a SNAPSHOT run (BEGIN..END, first_id = last_id = lastUpdateId) is written
  when a snapshot is accepted (loaded), then the DEPTH records of every event
  the sync applies, in application order. Events buffered before the snapshot
  and replayed after it follow it; their ``local_ts`` is raised to the
  snapshot's (``exch_ts`` is kept), so ``local_ts`` never decreases;
- what the sync drops is not written (u <= book id: old or duplicate events,
  events before the snapshot), and while the book is not valid (before the
  first snapshot, after a gap or a crossed book) nothing is written until the
  next accepted snapshot. Where a valid book becomes invalid, a BOOK_INVALID
  record (``hftcore.EV_BOOK_INVALID``; px = ``INVALID_GAP`` or
  ``INVALID_CROSSED``) marks it: the backtester cancels its quotes there and
  quotes again only after the next snapshot. Events still buffered at the end are not written.
  The report's ``books`` tells per symbol: applied, dropped_old,
  buffer_dropped, pending, gaps, resyncs, crossed, stale snapshots, and the
  unsynced spans (count, seconds, the first 64 listed), the initial wait;
- trades, bookTickers and other records pass through in receive order.

Records are otherwise exactly what ``Message.to_events`` gives for raw JSON. Units: the
``--tick-size/--lot-size`` given, else ``--exchange-info``
(``captures.decoder_units``), else inferred from the data
(``sources.infer_units``: the finest decimals seen in the first 4 MB).

Bad input: a missing input, an unknown format or a symbol that cannot be told
raise ``DataError`` naming the file before anything is written. Lines that do
not decode are counted (``malformed``) and skipped; so is a line longer than
``captures.MAX_LINE_BYTES`` (16 MiB, far above any Binance message): skipped
as it streams past, so nothing valid is lost and memory stays bounded however
large or compressed the input (a gzip bomb). A CSV row that long, a Tardis
message of more than ``MAX_MESSAGE_ROWS`` rows, or CSV text that does not parse
raise ``DataError`` naming the file. Receive times (``local_ts``) must not go
back within a day file (the store's order, see ``hftmm.data.store``): an input
whose times do raises ``DataError`` naming the input and the row. Whatever
fails, nothing is left half-written: the store files of a run are written
under temporary names and renamed only when the whole run succeeded.
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from hftcore import (ASK, BID, EV_BBO, EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVENT_DTYPE, EVF_BEGIN, EVF_END,
                     NO_ID)
from hftcore.binance import BinanceDecoder, DecodeError
from hftcore.decimal import Scale
from hftcore.sync import EventNormalizer

from hftmm.captures import (MAX_LINE_BYTES, CaptureStats, decoder_units, read_cryptofeed, read_exchange_info,
                            symbol_samples)
from hftmm.data import sources
from hftmm.data.funding import FundingMerger, MarkFunding, mark_price_update
from hftmm.data.store import EventWriter
from hftmm.errors import DataError
from hftmm.progress import Progress
from hftmm.threads import read_ahead

FORMATS = ("auto", "collector", "cryptofeed", "binance-trades", "binance-aggtrades",
           "binance-bookticker", "tardis")

_SPOT_TRADES = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]
_SPOT_AGG = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
             "is_buyer_maker", "is_best_match"]
_BOOKTICKER = ["update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty",
               "transaction_time", "event_time"]
READ_CHUNK = 256 << 10   # compressed bytes read at a time
#: most rows one Tardis book message (a snapshot run, or updates sharing a
#: local_timestamp) may have; Binance snapshots have at most 2 x 5000 levels
MAX_MESSAGE_ROWS = 1 << 20
_WRITE_RECORDS = 1 << 16  # cryptofeed: records decoded before a write
_SYM_IN_NAME = re.compile(r"^([A-Z0-9]{2,})-(?:trades|aggTrades|bookTicker)-")


@dataclass
class ConvertReport:
    inputs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    lines: int = 0
    messages: int = 0
    malformed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    books: dict[str, dict] = field(default_factory=dict)   # symbol -> EventNormalizer.stats()
    fundings: dict[str, int] = field(default_factory=dict)  # symbol -> funding settlements (markPrice stream)

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"inputs": self.inputs, "files": self.files, "rows": self.rows,
                "units": {k: list(v) for k, v in self.units.items()}, "lines": self.lines,
                "messages": self.messages, "malformed": self.malformed, "skipped": self.skipped,
                "problems": self.problems, "seconds": round(self.seconds, 3),
                "lines_per_s": round(self.lines_per_s), "books": self.books, "fundings": self.fundings}


class _RecordedFunding:
    """The funding settlements of a collector file's markPrice lines (USD-M), merged into
    the converted events at their receive times (as paper trading applies them)."""

    def __init__(self, symbol: str, tick_size: str) -> None:
        self.mf = MarkFunding(symbol, tick_size)
        self.merger = FundingMerger()

    def scan(self, buf: bytes, end: int) -> None:
        """The ``<ns> <frame>`` lines of ``buf[:end]`` that carry a markPriceUpdate."""
        i = buf.find(b"markPriceUpdate", 0, end)
        while i >= 0:
            start = buf.rfind(b"\n", 0, i) + 1
            stop = buf.find(b"\n", i, end)
            stop = end if stop < 0 else stop
            ns, _, frame = buf[start:stop].partition(b" ")
            msg = mark_price_update(frame)
            if msg is not None and ns.isdigit():
                recs = self.mf.feed(int(ns), msg)
                if len(recs):
                    self.merger.add(recs)
            i = buf.find(b"markPriceUpdate", stop, end)


class Converter:
    """One conversion run: writers and units per symbol, shared by all inputs
    (a file that continues the previous one appends to the same day files)."""

    def __init__(self, out: str, symbol: Optional[str] = None, market: Optional[str] = None,
                 tick_size: Optional[str] = None, lot_size: Optional[str] = None,
                 exchange_info: Optional[str] = None, progress: Optional[bool] = None,
                 row_group_rows: Optional[int] = None, normalize: bool = True) -> None:
        if (tick_size is None) != (lot_size is None):
            raise ValueError("give both --tick-size and --lot-size, or neither")
        self.out = out
        self.symbol = symbol.upper() if symbol else None
        self.market = market
        self.tick_size, self.lot_size = tick_size, lot_size
        self.info = read_exchange_info(exchange_info) if exchange_info else None
        self.progress = progress
        self.row_group_rows = row_group_rows
        self.writers: dict[str, EventWriter] = {}
        self.normalize = normalize
        self.norms: dict[str, EventNormalizer] = {}
        self._recorded_funding: dict[str, _RecordedFunding] = {}
        self.report = ConvertReport()

    # -- units and writers ---------------------------------------------------
    def units(self, symbol: str, infer) -> tuple[str, str]:
        if symbol in self.report.units:
            return self.report.units[symbol]
        if self.tick_size is not None:
            u = (self.tick_size, self.lot_size)
        elif self.info is not None:
            u = decoder_units(self.info, symbol)
        else:
            u = infer()
        self.report.units[symbol] = u
        return u

    def writer(self, symbol: str, market: str, units: tuple[str, str], source: str) -> EventWriter:
        w = self.writers.get(symbol)
        if w is None:
            kw = {"row_group_rows": self.row_group_rows} if self.row_group_rows else {}
            w = EventWriter(self.out, symbol, units[0], units[1], market=self.market or market,
                            sources=[], **kw)
            self.writers[symbol] = w
        if os.path.basename(source) not in w.meta["sources"]:
            w.meta["sources"].append(os.path.basename(source))
        return w

    def normalizer(self, symbol: str, market: str, units: tuple[str, str]) -> Optional[EventNormalizer]:
        """The symbol's book normaliser (one per symbol for the whole run), or None."""
        if not self.normalize:
            return None
        nz = self.norms.get(symbol)
        if nz is None:
            nz = self.norms[symbol] = EventNormalizer(self.market or market or "spot", tick_size=float(units[0]))
        return nz

    def close(self) -> ConvertReport:
        """Complete every store file, then rename them all into place (nothing is
        renamed unless all were written)."""
        for sym, nz in self.norms.items():
            st = nz.stats()
            self.report.books[sym] = st
            if st["depth_in"] and not st["synced"]:
                why = "never synchronised (no usable snapshot)" if st["never_synced"] else "book not synchronised"
                self.report.problems.append(f"{sym}: {why} at the end; {st['pending']} buffered events not written")
        try:
            for w in self.writers.values():
                w.finish()
        except BaseException:
            self.abort()
            raise
        for sym, w in self.writers.items():
            self.report.files += w.commit()
            self.report.rows[sym] = w.rows
        return self.report

    def abort(self) -> None:
        """Delete the files of this run not yet committed (the store keeps its previous files)."""
        for w in self.writers.values():
            w.abort()

    # -- inputs ----------------------------------------------------------------
    def convert(self, path: str, fmt: str = "auto") -> None:
        self.report.inputs.append(path)
        if fmt == "auto":
            fmt = detect_format(path)
        if fmt == "collector":
            self.collector(path)
        elif fmt == "cryptofeed":
            self.cryptofeed(path)
        elif fmt in ("binance-trades", "binance-aggtrades", "binance-bookticker"):
            self.binance_csv(path, fmt)
        elif fmt == "tardis":
            self.tardis(path)
        else:
            raise DataError(f"{path}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")

    def collector(self, path: str) -> None:
        head = sources.head_bytes(path, 1 << 20)
        syms = [self.symbol] if self.symbol else (sources.symbols_in(head) or [_symbol_from_name(path)])
        syms = [s for s in syms if s]
        if not syms:
            raise DataError(f"{path}: cannot tell the symbol; pass --symbol")
        market = self.market or sources.detect_market(head)
        total = os.path.getsize(path)
        for sym in syms:
            units = self.units(sym, lambda: sources.infer_units(head))
            dec = BinanceDecoder(*units)
            w = self.writer(sym, market, units, path)
            nz = self.normalizer(sym, market, units)
            filt = sym if (len(syms) > 1 or self.symbol) else None
            st = sources.ReadStats(path)
            bar = Progress(total, f"{os.path.basename(path)} {sym}", unit="B", enabled=self.progress)
            # USD-M: funding settlements from the recorded markPrice stream, merged in by receive time
            funding = self._funding(sym, units[0]) if market == "usdm" else None
            tail, lines = b"", 0
            skipping = False     # inside a line longer than MAX_LINE_BYTES (counted)
            first_pass = sym == syms[0]
            # three stages on the cores: zlib (reader thread), decoding and
            # normalising (here) and Parquet writing (writer thread) all
            # release the GIL for their work; 256 KB of gzip (~2.5 MB of text)
            # a chunk keeps the stages overlapping
            with ThreadPoolExecutor(1) as wpool:
                pending: deque = deque()
                for chunk in read_ahead(sources.iter_chunks(path, st, chunk=READ_CHUNK), depth=4):
                    if skipping:
                        nl = chunk.find(b"\n")
                        if nl < 0:
                            continue
                        chunk, skipping = chunk[nl + 1:], False
                    if tail:
                        nl = chunk.find(b"\n")
                        if nl >= 0 and len(tail) + nl > MAX_LINE_BYTES:
                            lines += 1
                            self._overlong(path, lines, first_pass)
                            tail, chunk = b"", chunk[nl + 1:]
                    buf = tail + chunk if tail else chunk
                    ev, s = dec.decode_lines(buf, symbol=filt, line_offset=lines)
                    self._count(s, path)
                    lines += s["lines"]
                    if funding is not None:
                        funding.scan(buf, s["consumed"])
                    tail = buf[s["consumed"]:]
                    if len(tail) > MAX_LINE_BYTES:
                        lines += 1
                        self._overlong(path, lines, first_pass)
                        tail, skipping = b"", True
                    if nz is not None:
                        ev = nz.feed(ev)
                    if funding is not None:
                        ev = funding.merger.merge(ev)
                    pending.append(wpool.submit(w.write, ev))
                    while len(pending) > 4 or (pending and pending[0].done()):
                        pending.popleft().result()
                    bar.moveto(st.bytes_in, lines, "lines")
                if tail:
                    ev, s = dec.decode_lines(tail, symbol=filt, line_offset=lines, final=True)
                    self._count(s, path)
                    lines += s["lines"]
                    if funding is not None:
                        funding.scan(tail, len(tail))
                    if nz is not None:
                        ev = nz.feed(ev)
                    if funding is not None:
                        ev = funding.merger.merge(ev)
                    pending.append(wpool.submit(w.write, ev))
                while pending:
                    pending.popleft().result()
            bar.moveto(st.bytes_in, lines, "lines")
            bar.close()
            self.report.problems += st.errors
            if len(syms) > 1 and sym != syms[0]:
                self.report.lines -= lines   # count each line once
            if funding is not None and funding.mf.settlements:
                self.report.fundings[sym] = funding.mf.settlements
        return None

    def _funding(self, symbol: str, tick_size: str) -> "_RecordedFunding":
        """One per symbol for the whole run: a settlement whose last update is in one hourly
        file and whose revealing update opens the next is not lost."""
        rf = self._recorded_funding.get(symbol)
        if rf is None:
            rf = self._recorded_funding[symbol] = _RecordedFunding(symbol, tick_size)
        return rf

    def _overlong(self, path: str, lineno: int, count: bool) -> None:
        """A line longer than MAX_LINE_BYTES: one line, malformed, skipped."""
        self.report.lines += 1
        if count:
            self.report.malformed += 1
            self._problem(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES} bytes (skipped)")

    def _problem(self, text: str) -> None:
        if len(self.report.problems) < 50:
            self.report.problems.append(text)

    def _count(self, s: dict, path: str) -> None:
        self.report.lines += s["lines"]
        self.report.messages += s["messages"]
        self.report.malformed += s["malformed"]
        self.report.skipped += s["skipped"]
        for lineno, msg in s["errors"]:
            self._problem(f"{path}:{lineno}: {msg}")

    def cryptofeed(self, path: str) -> None:
        """A cryptofeed .ws log (+ its .http log): one pass for the symbols and
        their heads, then one streamed pass per symbol (bounded memory)."""
        http = sources.cryptofeed_http_for(path)
        cs = CaptureStats()
        samples = symbol_samples(read_cryptofeed(path, http, stats=cs))
        self.report.lines += cs.lines
        self.report.malformed += cs.malformed
        for e in cs.errors:
            self._problem(e)
        for sym, sample in samples.items():
            if not sym or (self.symbol and sym != self.symbol):
                continue
            units = self.units(sym, lambda: sources.infer_units(sample))  # noqa: B023 (called at once)
            dec = BinanceDecoder(*units)
            market = self.market or sources.detect_market(sample)
            w = self.writer(sym, market, units, path)
            nz = self.normalizer(sym, market, units)
            if http and os.path.basename(http) not in w.meta["sources"]:
                w.meta["sources"].append(os.path.basename(http))
            out: list[np.ndarray] = []
            n = 0
            for m in read_cryptofeed(path, http, symbol=sym):
                try:
                    ev = dec.decode(m.payload).to_events(m.local_ns)
                except DecodeError as exc:
                    self.report.malformed += 1
                    self._problem(f"{path}: t={m.local_ns} {m.key}: {exc}")
                    continue
                self.report.messages += 1
                if len(ev):
                    out.append(ev)
                    n += len(ev)
                if n >= _WRITE_RECORDS:
                    self._write(w, nz, out)
                    out, n = [], 0
            self._write(w, nz, out)

    @staticmethod
    def _write(w: EventWriter, nz: Optional[EventNormalizer], chunks: list) -> None:
        if chunks:
            ev = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
            w.write(nz.feed(ev) if nz is not None else ev)

    # -- CSVs ------------------------------------------------------------------
    def _csv_batches(self, path: str, names: Optional[list[str]], header: bool, string_cols: Sequence[str]):
        """Arrow batches of a CSV (streamed, CSV_BLOCK bytes at a time); DataError
        naming the file for text that does not parse or a row longer than a block."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        ro = pcsv.ReadOptions(column_names=None if header else names, autogenerate_column_names=False,
                              block_size=sources.CSV_BLOCK, use_threads=False)
        co = pcsv.ConvertOptions(column_types={c: pa.string() for c in string_cols},
                                 strings_can_be_null=False)
        fh = sources.open_text_binary(path)
        rows = 0
        try:
            try:
                reader = pcsv.open_csv(fh, read_options=ro, convert_options=co)
            except (pa.ArrowException, OSError, EOFError) as exc:
                raise _csv_error(path, rows, exc) from exc
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError, EOFError) as exc:
                    raise _csv_error(path, rows, exc) from exc
                rows += batch.num_rows
                yield batch
        finally:
            fh.close()

    def binance_csv(self, path: str, fmt: str) -> None:
        head = sources.head_bytes(path, 1 << 16)
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        header = bool(first) and not first.split(",")[0].strip().lstrip("-").isdigit()
        ncol = len(first.split(","))
        names = None
        if not header:
            names = {"binance-trades": _SPOT_TRADES[:ncol], "binance-aggtrades": _SPOT_AGG[:ncol],
                     "binance-bookticker": _BOOKTICKER[:ncol]}[fmt]
        sym = self.symbol or _symbol_from_name(path)
        if not sym:
            raise DataError(f"{path}: cannot tell the symbol; pass --symbol")
        market = self.market or ("usdm" if header else "spot")
        if fmt == "binance-bookticker":
            px_cols, qty_cols = ["best_bid_price", "best_ask_price"], ["best_bid_qty", "best_ask_qty"]
        else:
            px_cols, qty_cols = ["price"], ["quantity" if fmt == "binance-aggtrades" else "qty"]
        w = None
        for batch in self._csv_batches(path, names, header, px_cols + qty_cols):
            cols = {n: batch.column(n) for n in batch.schema.names}
            if fmt == "binance-aggtrades" and "quantity" not in cols and "qty" in cols:
                qty_cols = ["qty"]
            if w is None:
                units = self.units(sym, lambda: (_finest(cols, px_cols), _finest(cols, qty_cols)))  # noqa: B023
                w = self.writer(sym, market, units, path)
                px_scale, qty_scale = Scale(units[0]), Scale(units[1])
            n = batch.num_rows
            self.report.lines += n
            self.report.messages += n
            if fmt == "binance-bookticker":
                t = _times_ns(cols["event_time"])
                ev = np.zeros(2 * n, EVENT_DTYPE)
                u = _ints(cols["update_id"])
                for side, pc, qc in ((BID, "best_bid_price", "best_bid_qty"), (ASK, "best_ask_price", "best_ask_qty")):
                    sl = ev[side::2]
                    sl["px"] = px_scale.parse_many(cols[pc].to_pylist())
                    sl["qty"] = qty_scale.parse_many(cols[qc].to_pylist())
                    sl["side"] = side
                    sl["flags"] = EVF_BEGIN if side == BID else EVF_END
                ev["local_ts"] = ev["exch_ts"] = np.repeat(t, 2)
                ev["first_id"] = ev["last_id"] = np.repeat(u, 2)
                ev["prev_id"] = NO_ID
                ev["kind"] = EV_BBO
            else:
                ev = np.zeros(n, EVENT_DTYPE)
                tcol = "time" if "time" in cols else "transact_time"
                t = _times_ns(cols[tcol])
                ev["local_ts"] = ev["exch_ts"] = t
                ev["px"] = px_scale.parse_many(cols[px_cols[0]].to_pylist())
                ev["qty"] = qty_scale.parse_many(cols[qty_cols[0]].to_pylist())
                if fmt == "binance-aggtrades":
                    ev["first_id"] = _ints(cols["first_trade_id"])
                    ev["last_id"] = _ints(cols["last_trade_id"])
                else:
                    ev["first_id"] = ev["last_id"] = _ints(cols["id"])
                ev["prev_id"] = NO_ID
                ev["kind"] = EV_TRADE
                ev["side"] = np.where(_bools(cols["is_buyer_maker"]), BID, ASK)
                ev["flags"] = EVF_BEGIN | EVF_END
            w.write(ev)

    def tardis(self, path: str) -> None:
        head = sources.head_bytes(path, 1 << 16).split(b"\n", 1)[0].decode().strip().split(",")
        book = "is_snapshot" in head
        if not book and "id" not in head:
            raise DataError(f"{path}: not a Tardis incremental_book_L2 or trades CSV")
        carry: dict[str, Optional[np.ndarray]] = {}
        state: dict[str, tuple] = {}
        for batch in self._csv_batches(path, None, True, ["price", "amount", "symbol", "id"] if not book
                                       else ["price", "amount", "symbol"]):
            cols = {n: batch.column(n) for n in batch.schema.names}
            symcol = np.array(cols["symbol"].to_pylist(), dtype=object)
            self.report.lines += batch.num_rows
            for sym in dict.fromkeys(symcol.tolist()):
                s = str(sym).upper()
                if self.symbol and s != self.symbol:
                    continue
                rows = np.flatnonzero(symcol == sym)
                sub = {k: v.take(rows) for k, v in cols.items()}
                if s not in state:
                    units = self.units(s, lambda: (_finest(sub, ["price"]), _finest(sub, ["amount"])))  # noqa: B023
                    state[s] = (Scale(units[0]), Scale(units[1]),
                                self.writer(s, self.market or "", units, path))
                pxs, qs, w = state[s]
                ev = np.zeros(len(rows), EVENT_DTYPE)
                ev["local_ts"] = _ints(sub["local_timestamp"]) * 1000
                ev["exch_ts"] = _ints(sub["timestamp"]) * 1000
                ev["px"] = pxs.parse_many(sub["price"].to_pylist())
                ev["qty"] = qs.parse_many(sub["amount"].to_pylist())
                ev["prev_id"] = NO_ID
                side = np.array([x.lower() for x in sub["side"].to_pylist()])
                if book:
                    ev["first_id"] = ev["last_id"] = NO_ID
                    ev["side"] = np.where(side == "bid", BID, ASK)
                    snap = _bools(sub["is_snapshot"])
                    ev["kind"] = np.where(snap, EV_SNAPSHOT, EV_DEPTH)
                    prev = carry.get(s)
                    if prev is not None:
                        ev = np.concatenate([prev, ev])
                    ready, carry[s] = _tardis_messages(ev)
                    if carry[s] is not None and len(carry[s]) > MAX_MESSAGE_ROWS:
                        raise DataError(f"{path}: a {s} book message of more than {MAX_MESSAGE_ROWS} rows "
                                        f"(from local_timestamp {int(carry[s]['local_ts'][0]) // 1000}): "
                                        "not a Tardis incremental_book_L2 file")
                    self.report.messages += int(np.count_nonzero(ready["flags"] & EVF_BEGIN))
                    w.write(ready)
                else:
                    ids = sub["id"].to_pylist()
                    ev["first_id"] = ev["last_id"] = [int(x) if str(x).isdigit() else NO_ID for x in ids]
                    ev["kind"] = EV_TRADE
                    # Tardis side = taker side: a buy hits the ask (the maker)
                    ev["side"] = np.where(side == "sell", BID, ASK)
                    ev["flags"] = EVF_BEGIN | EVF_END
                    self.report.messages += len(ev)
                    w.write(ev)
        for s, rest in carry.items():
            if rest is not None and len(rest):
                rest = rest.copy()
                rest["flags"][-1] |= EVF_END
                self.report.messages += 1
                state[s][2].write(rest)


def _tardis_messages(ev: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """BEGIN/END flags on Tardis book rows: a run of snapshot rows is one
    message; update rows sharing a local time are one message. The last
    (possibly unfinished) message is carried over to the next batch."""
    n = len(ev)
    if n == 0:
        return ev, None
    snap = ev["kind"] == EV_SNAPSHOT
    start = np.ones(n, bool)
    start[1:] = (snap[1:] != snap[:-1]) | (~snap[1:] & (ev["local_ts"][1:] != ev["local_ts"][:-1]))
    ev["flags"] = np.where(start, EVF_BEGIN, 0)
    end = np.zeros(n, bool)
    end[:-1] = start[1:]
    ev["flags"] |= np.where(end, EVF_END, 0).astype(np.uint8)
    last = int(np.flatnonzero(start)[-1])
    return ev[:last], ev[last:].copy()


def _ints(col) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_integer(col.type):
        col = pc.cast(col, pa.int64())
    return col.to_numpy(zero_copy_only=False).astype(np.int64)


def _bools(col) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(col.type):
        return col.to_numpy(zero_copy_only=False).astype(bool)
    return pc.equal(pc.utf8_lower(pc.cast(col, pa.string())), "true").to_numpy(zero_copy_only=False)


def _times_ns(col) -> np.ndarray:
    """Epoch times in ms, us or ns (by magnitude, per value) -> ns."""
    t = _ints(col)
    return np.where(t < 10**14, t * 1_000_000, np.where(t < 10**17, t * 1000, t))


def _finest(cols: dict, names: Iterable[str]) -> str:
    d = 0
    for n in names:
        if n not in cols:
            continue
        for x in cols[n].to_pylist()[:20000]:
            if "." in x:
                d = max(d, len(x.split(".", 1)[1].rstrip("0")))
    return sources.unit_of(d)


def _symbol_from_name(path: str) -> Optional[str]:
    name = os.path.basename(path)
    m = _SYM_IN_NAME.match(name)
    if m:
        return m.group(1)
    m = re.match(r"^(?:spot_|usdm_|futures_)?([a-zA-Z0-9]+?)_\d{8}", name)
    return m.group(1).upper() if m else None


def detect_format(path: str) -> str:
    name = os.path.basename(path)
    if ".ws." in name or name.endswith(".ws"):
        return "cryptofeed"
    head = sources.head_bytes(path, 1 << 16)
    if sources.is_collector(head):
        return "collector"
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
    cols = first.split(",")
    if first.startswith("exchange,symbol,timestamp,local_timestamp"):
        return "tardis"
    if cols[0] == "update_id" or "bookticker" in name.lower():
        return "binance-bookticker"
    if cols[0] == "agg_trade_id" or "aggtrades" in name.lower():
        return "binance-aggtrades"
    if cols[0] == "id" or "trades" in name.lower():
        return "binance-trades"
    if cols[0].isdigit():
        return {7: "binance-trades", 8: "binance-aggtrades"}.get(len(cols), "binance-trades")
    raise DataError(f"{path}: unknown input format; pass --format (one of {', '.join(FORMATS[1:])})")


def _csv_error(path: str, rows: int, exc: BaseException) -> DataError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "straddl" in text:
        text = f"a row longer than {sources.CSV_BLOCK >> 20} MiB (not a market-data row)"
    return DataError(f"{path}: CSV after row {rows}: {text}")


def convert(inputs: Sequence[str], out: str, fmt: str = "auto", **kw) -> ConvertReport:
    """Convert the inputs (in order) into the store at ``out``; .http files of
    cryptofeed are picked up beside their .ws logs. Raises DataError naming the
    file when an input is missing or unusable, its receive times go back, or a
    store file cannot be written; then no store file is replaced or left partial."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    sources.check_inputs(inputs)
    t0 = time.perf_counter()
    conv = Converter(out, **kw)
    try:
        for path in inputs:
            if ".http." in os.path.basename(path):
                continue
            try:
                conv.convert(path, fmt)
            except DataError as exc:
                if str(exc).startswith(path):
                    raise
                raise DataError(f"{path}: {exc}") from exc
        rep = conv.close()
    except BaseException:
        conv.abort()
        raise
    rep.seconds = time.perf_counter() - t0
    return rep
