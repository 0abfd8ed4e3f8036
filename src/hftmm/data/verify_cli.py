"""``hftmm data verify``: replay captures through the real decoder, BookSync and
L2Book (``hftmm.verify.verify_messages``) and report.

Collector files (gzip ``<ns> <json>``) of the same symbol are ordered by their
first receive time and fed as one stream, so a capture split across files is
checked across the boundary. cryptofeed ``.ws`` logs are read with the
``.http`` log beside them. Corrupt input is reported, never raised: a gzip
truncated mid-member or corrupt ends that file (``truncated``/``corrupt``),
lines that are not ``<ns> <json>``, longer than ``captures.MAX_LINE_BYTES``
(16 MiB) or that do not decode count as malformed. A missing input is not
corrupt input: it raises ``DataError`` naming the path, before anything runs.

Memory is bounded whatever the size or compression ratio of the input: files
are streamed in chunks (decompressed output capped per chunk), a cryptofeed log
is read once for its symbols and their heads and then once per symbol, and the
replay keeps bounded state (``verify.verify_messages``).

Units: ``--tick-size/--lot-size`` when given, else inferred per symbol from
the head of its first file (the finest decimals seen in prices and in
quantities, see ``sources.infer_units``). Market: ``--market``, else from the
data (``pu`` in depth updates -> usdm).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

from hftmm.captures import MAX_LINE_BYTES, CaptureStats, RawMessage, read_cryptofeed, split_lines, symbol_samples
from hftmm.data import sources
from hftmm.verify import verify_messages


@dataclass
class FileCheck:
    path: str
    lines: int = 0
    malformed: int = 0
    truncated: bool = False
    corrupt: bool = False
    errors: list[str] = field(default_factory=list)


def _collector_messages(path: str, symbol: str, fc: FileCheck) -> Iterator[RawMessage]:
    """Lines of a collector capture, robust to any corruption (see module doc),
    streamed in bounded memory (``captures.split_lines``)."""
    st = sources.ReadStats(path)
    rest_key = f"{symbol}@rest"
    for lineno, line in enumerate(split_lines(sources.iter_chunks(path, st)), 1):
        if line is None:
            fc.lines += 1
            fc.malformed += 1
            if len(fc.errors) < 10:
                fc.errors.append(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES} bytes (skipped)")
            continue
        line = line.rstrip(b"\r")
        if not line:
            continue
        fc.lines += 1
        ts, sep, payload = line.partition(b" ")
        if not sep or not ts.isdigit() or len(ts) > 19 or not payload.lstrip().startswith(b"{"):
            fc.malformed += 1
            if len(fc.errors) < 10:
                fc.errors.append(f"{path}:{lineno}: not '<ns> <json>'")
            continue
        key = rest_key
        m = sources._STREAM_SYM.search(payload[:200])
        if m:
            q = payload.find(b'"stream"')
            e = payload.find(b'"', payload.find(b":", q) + 2)
            key = payload[payload.find(b'"', payload.find(b":", q)) + 1:e].decode("ascii", "replace")
        yield RawMessage(int(ts), key, payload)
    fc.truncated, fc.corrupt = st.truncated, st.corrupt
    fc.errors += st.errors


def _first_ts(path: str) -> int:
    head = sources.head_bytes(path, 1 << 16).split(b"\n", 1)[0].split(b" ", 1)[0]
    return int(head) if head.isdigit() else 0


def verify_files(paths: Sequence[str], market: Optional[str] = None, tick_size: Optional[str] = None,
                 lot_size: Optional[str] = None) -> dict:
    """Verify the captures; a JSON-able dict with ``ok``, per-file and per-symbol parts.
    Raises DataError when an input does not exist or is a folder."""
    sources.check_inputs(paths)
    files: list[FileCheck] = []
    streams: dict[str, list] = {}        # symbol -> message iterators, in order
    heads: dict[str, bytes] = {}
    collector: dict[str, list[str]] = {}
    for path in paths:
        name = os.path.basename(path)
        if ".http." in name:
            continue
        if ".ws." in name or name.endswith(".ws"):
            fc = FileCheck(path)
            files.append(fc)
            cs = CaptureStats()
            http = sources.cryptofeed_http_for(path)
            try:
                # one pass for the symbols and their heads; then one streamed pass per symbol
                samples = symbol_samples(read_cryptofeed(path, http, stats=cs))
            except OSError as exc:
                fc.corrupt = True
                fc.errors.append(f"{path}: {exc}")
                continue
            fc.lines, fc.malformed, fc.truncated = cs.lines, cs.malformed, cs.truncated
            fc.errors = cs.errors[:10]
            for sym, sample in samples.items():
                streams.setdefault(sym, []).append(read_cryptofeed(path, http, symbol=sym))
                heads.setdefault(sym, sample)
            continue
        head = sources.head_bytes(path)
        syms = sources.symbols_in(head) or [""]
        collector.setdefault(syms[0], []).append(path)
        heads.setdefault(syms[0], head)
    for sym, group in collector.items():
        for path in sorted(group, key=_first_ts):
            fc = FileCheck(path)
            files.append(fc)
            streams.setdefault(sym, []).append(_collector_messages(path, sym, fc))

    symbols = {}
    for sym, its in streams.items():
        if tick_size and lot_size:
            units = (tick_size, lot_size)
        else:
            units = sources.infer_units(heads.get(sym, b""))
        rep = verify_messages(itertools.chain(*its), units[0], units[1], market=market, symbol=sym)
        d = rep.as_dict()
        d["tick_size"], d["lot_size"] = units
        symbols[sym] = d
    file_dicts = [vars(f) for f in files]
    bad_files = any(f.malformed or f.truncated or f.corrupt for f in files)
    ok = bool(symbols) and all(s["ok"] for s in symbols.values()) and not bad_files
    return {"ok": ok, "files": file_dicts, "symbols": symbols,
            "totals": {k: sum(s[k] for s in symbols.values())
                       for k in ("messages", "depth_updates", "snapshots", "trades", "book_tickers", "gaps",
                                 "resyncs", "crossed", "ticker_checks", "ticker_mismatches", "malformed",
                                 "messages_lost", "messages_expected", "ids_lost", "ids_expected")}
            | {"malformed_lines": sum(f.malformed for f in files),
               "unrecovered": sum(1 for s in symbols.values() if s["unrecovered"])}}


def format_report(res: dict) -> str:
    out = []
    for f in res["files"]:
        flags = [w for w in ("truncated", "corrupt") if f[w]]
        out.append(f"file {f['path']}: {f['lines']} lines, {f['malformed']} malformed"
                   + (f" [{', '.join(flags)}]" if flags else ""))
        out += [f"  {e}" for e in f["errors"][:5]]
    for sym, s in res["symbols"].items():
        out.append(f"{sym or '?'} ({s['market'] or '?'}, tick {s['tick_size']}, lot {s['lot_size']}): "
                   f"{s['messages']} messages, {s['depth_updates']} depth updates, {s['snapshots']} snapshots, "
                   f"{s['trades']} trades, {s['book_tickers']} bookTickers")
        out.append(f"  gaps {s['gaps']}, resyncs {s['resyncs']}, crossed {s['crossed']}, "
                   f"bookTicker checks {s['ticker_checks']}, mismatches {s['ticker_mismatches']}, "
                   f"malformed {s['malformed']}, unrecovered {s['unrecovered']}")
        out.append(f"  loss: messages {s['messages_lost']:,} / {s['messages_expected']:,} expected "
                   f"({s['message_loss_rate']:.4%}), update ids {s['ids_lost']:,} / {s['ids_expected']:,} "
                   f"({s['id_loss_rate']:.4%})")
        out += [f"  {e}" for e in (s["mismatch_examples"][:3] + s["malformed_examples"][:3])]
    out.append("OK" if res["ok"] else "FAILED")
    return "\n".join(out)
