"""Raw-input helpers shared by ``hftmm data convert`` and ``verify``: chunked
gzip reading that survives corrupt files (with bounded output: a gzip bomb
never expands into memory), format and symbol detection, and the inference of
decoding units from the data."""
from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Optional, Sequence

from hftmm.captures import MAX_LINE_BYTES
from hftmm.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 4 << 20
#: most decompressed bytes one chunk of iter_chunks holds (typical captures
#: expand 8-12x, so 256 KB of gzip -- convert's read size -- stays below it)
MAX_CHUNK_OUT = 8 << 20
#: bytes the CSV reader parses at a time; a longer row is refused
CSV_BLOCK = 16 << 20

_STREAM_SYM = re.compile(rb'"stream"\s*:\s*"([A-Za-z0-9_]+)@')
_S_SYM = re.compile(rb'"s"\s*:\s*"([A-Za-z0-9_]+)"')
_LEVEL = re.compile(rb'\[\s*"(\d+(?:\.\d*)?)"\s*,\s*"(\d+(?:\.\d*)?)"\s*\]')
_PX_FIELD = re.compile(rb'"[pba]"\s*:\s*"(\d+(?:\.\d*)?)"')
_QTY_FIELD = re.compile(rb'"[qBA]"\s*:\s*"(\d+(?:\.\d*)?)"')


@dataclass
class ReadStats:
    """Per input file: bytes read, and what went wrong (never raised)."""
    path: str
    bytes_in: int = 0
    bytes_out: int = 0
    truncated: bool = False
    corrupt: bool = False
    errors: list[str] = field(default_factory=list)

    def problem(self, why: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"{self.path}: {why}")


def iter_chunks(path: str, stats: ReadStats, chunk: int = CHUNK, max_out: int = MAX_CHUNK_OUT) -> Iterator[bytes]:
    """Decompressed chunks of a gzip file (multi-member; a plain file is passed
    through), each at most ``max_out`` bytes whatever the compression ratio. A
    truncated or corrupt gzip ends the stream and is recorded in stats, never
    raised. zlib.decompressobj over big reads: no per-line cost."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        stats.corrupt = True
        stats.problem(f"unreadable: {exc}")
        return
    with fh:
        head = fh.read(2)
        fh.seek(0)
        if head != GZIP_MAGIC:
            while True:
                raw = fh.read(chunk)
                if not raw:
                    return
                stats.bytes_in += len(raw)
                stats.bytes_out += len(raw)
                yield raw
        d = zlib.decompressobj(31)
        in_member = False
        while True:
            raw = fh.read(chunk)
            if not raw:
                break
            stats.bytes_in += len(raw)
            more = False     # the last call filled max_out: zlib may hold more output
            while raw or more:
                if not in_member and raw.strip(b"\x00") == b"":
                    break    # zero padding after the last member
                in_member = True
                try:
                    out = d.decompress(raw, max_out)
                except zlib.error as exc:
                    stats.corrupt = True
                    stats.problem(f"corrupt gzip data after {stats.bytes_out} bytes: {exc}")
                    return
                if out:
                    stats.bytes_out += len(out)
                    yield out
                if d.eof:
                    raw, more = d.unused_data, False
                    d = zlib.decompressobj(31)
                    in_member = False
                else:
                    raw, more = d.unconsumed_tail, len(out) == max_out
        if in_member:
            try:
                out = d.flush()
            except zlib.error:
                out = b""
            if out:
                stats.bytes_out += len(out)
                yield out
            stats.truncated = True
            stats.problem(f"truncated gzip (ends mid-member after {stats.bytes_out} bytes)")


def check_inputs(paths: Sequence[str]) -> None:
    """DataError naming the first input that is missing, not a file or unreadable."""
    if not paths:
        raise DataError("no input files given")
    for path in paths:
        if not os.path.exists(path):
            raise DataError(f"{path}: no such file")
        if not os.path.isfile(path):
            raise DataError(f"{path}: not a file (give the capture files, e.g. {os.path.join(path, '*.gz')})")
        if not os.access(path, os.R_OK):
            raise DataError(f"{path}: not readable (permission denied)")


def head_bytes(path: str, limit: int = CHUNK) -> bytes:
    """The first ``limit`` decompressed bytes (zip: its first member)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            with zf.open(zf.namelist()[0]) as fh:
                return fh.read(limit)
    out = b""
    st = ReadStats(path)
    for c in iter_chunks(path, st, chunk=64 << 10):
        out += c
        if len(out) >= limit:
            break
    return out[:limit]


def open_text_binary(path: str) -> BinaryIO:
    """A binary stream of a CSV: plain, .gz or the first member of a .zip."""
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        return zf.open([n for n in zf.namelist() if not n.endswith("/")][0])
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        import gzip
        return gzip.open(path, "rb")
    return open(path, "rb")


def symbols_in(data: bytes) -> list[str]:
    """Symbols named in raw JSON lines (stream names, else "s"), first seen first."""
    seen: dict[str, None] = {}
    for m in _STREAM_SYM.finditer(data):
        seen.setdefault(m.group(1).decode().upper(), None)
    if not seen:
        for m in _S_SYM.finditer(data):
            seen.setdefault(m.group(1).decode().upper(), None)
    return list(seen)


def _decimals(text: bytes) -> int:
    if b"." not in text:
        return 0
    return len(text.split(b".", 1)[1].rstrip(b"0"))


def unit_of(decimals: int) -> str:
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


def infer_units(data: bytes) -> tuple[str, str]:
    """(price unit, quantity unit) from raw JSON: ``10**-d`` where d is the
    largest number of significant decimals (trailing zeros stripped) seen in
    prices and in quantities of ``data`` (depth levels, trade p/q, bookTicker
    b/a/B/A). Give the head of a capture (the first few thousand lines and its
    snapshot); a later value with more decimals is then reported as malformed,
    so pass the units explicitly when in doubt."""
    pd = qd = 0
    for m in _LEVEL.finditer(data):
        pd = max(pd, _decimals(m.group(1)))
        qd = max(qd, _decimals(m.group(2)))
    for m in _PX_FIELD.finditer(data):
        pd = max(pd, _decimals(m.group(1)))
    for m in _QTY_FIELD.finditer(data):
        qd = max(qd, _decimals(m.group(1)))
    return unit_of(min(pd, 18)), unit_of(min(qd, 18))


def detect_market(data: bytes) -> str:
    """"usdm" when depth updates carry ``pu``, else "spot"."""
    return "usdm" if re.search(rb'"pu"\s*:', data) else "spot"


def is_collector(head: bytes) -> bool:
    line = head.split(b"\n", 1)[0]
    ts, sep, rest = line.partition(b" ")
    return bool(sep) and ts.isdigit() and rest.lstrip().startswith(b"{")


def cryptofeed_http_for(ws_path: str) -> Optional[str]:
    """The ``.http`` log beside a cryptofeed ``.ws`` log (same prefix), if any."""
    d, name = os.path.split(ws_path)
    prefix = name.split(".ws.", 1)[0]
    cands = sorted(f for f in os.listdir(d or ".") if f.startswith(prefix + ".http."))
    return os.path.join(d, cands[0]) if cands else None


def read_all(path: str) -> bytes:
    with open_text_binary(path) as fh:
        return fh.read()


__all__ = ["MAX_LINE_BYTES", "MAX_CHUNK_OUT", "CSV_BLOCK", "ReadStats", "check_inputs", "iter_chunks",
           "head_bytes", "open_text_binary", "symbols_in", "infer_units", "unit_of", "detect_market", "is_collector",
           "cryptofeed_http_for", "read_all", "io"]
