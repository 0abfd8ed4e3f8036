"""Readers for recorded Binance traffic.

Each reader yields :class:`RawMessage` records -- local receive time (ns), a
routing key (the combined-stream name, or ``"<SYMBOL>@rest"`` for a REST depth
snapshot) and the raw JSON bytes -- in file order, without decoding them, so
the caller picks the decoder (tick and lot size) per symbol.

Formats:
- hftbacktest collector (and ``hftmm record``): gzip text, ``<ns> <json>`` a line;
- cryptofeed sample data: ``.ws`` (first line ``<url> <-> <ts>``, then
  ``<ts>: <json>``) and ``.http`` (``<url> -> <ts>: <json>``), merged by time.

Corrupt or truncated input never raises from the iterators: bad lines are
counted in ``CaptureStats`` and skipped; a truncated gzip member ends the file.

Memory is bounded whatever the input (a gzip bomb expands ~1000:1): files are
read in chunks, never whole, and a line longer than :data:`MAX_LINE_BYTES`
(16 MiB; the largest Binance message, a 5000-level depth snapshot, is ~300 KB)
is counted as malformed and skipped as it streams past, without being held.
Skipping it loses nothing valid: no Binance message is that long, and every
line after it is still read.
"""
from __future__ import annotations

import gzip
import heapq
import json
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Optional
from urllib.parse import parse_qs, urlparse

from hftmm.errors import DataError

log = logging.getLogger(__name__)

_STREAM_RE = re.compile(rb'^\s*\{\s*"stream"\s*:\s*"([^"]{1,200})"')

#: longest line any capture reader accepts [bytes]; a longer one is malformed
MAX_LINE_BYTES = 16 << 20
#: bytes read (or decompressed) at a time by the readers
READ_BYTES = 256 << 10
#: an exchangeInfo JSON larger than this is refused [bytes] (Binance spot's is ~20 MB at most)
MAX_EXCHANGE_INFO_BYTES = 256 << 20


class RawMessage(NamedTuple):
    local_ns: int       # local receive time, ns since epoch
    key: str            # stream name (e.g. "btcusdt@depth@100ms") or "<SYMBOL>@rest"
    payload: bytes      # raw JSON frame


@dataclass
class CaptureStats:
    lines: int = 0
    malformed: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)

    def bad(self, where: str, why: str) -> None:
        self.malformed += 1
        if len(self.errors) < 20:
            self.errors.append(f"{where}: {why}")


def stream_symbol(key: str) -> str:
    """Upper-case symbol of a routing key ("btcusdt@depth@100ms" -> "BTCUSDT")."""
    return key.split("@", 1)[0].upper()


def _key_of(payload: bytes, default: str) -> str:
    m = _STREAM_RE.match(payload)
    return m.group(1).decode("ascii", "replace") if m else default


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[Optional[bytes]]:
    """The lines of a byte stream given in chunks, without their ``\\n`` (a last
    line without one included). A line longer than ``max_line`` bytes is yielded
    once as ``None`` (count it as malformed) and its bytes are dropped as they
    arrive: memory stays below ``max_line`` plus one chunk."""
    parts: list[bytes] = []     # the unfinished line, in pieces
    size = 0
    skipping = False            # inside an over-long line (already reported)
    for chunk in chunks:
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk = chunk[nl + 1:]
            skipping = False
        if b"\n" not in chunk:
            if chunk:
                size += len(chunk)
                if size > max_line:
                    yield None
                    parts, size, skipping = [], 0, True
                else:
                    parts.append(chunk)
            continue
        lines: list = chunk.split(b"\n")
        last = lines.pop()
        if parts:
            lines[0] = None if size + len(lines[0]) > max_line else b"".join(parts) + lines[0]
            parts, size = [], 0
        for line in lines:
            yield None if line is not None and len(line) > max_line else line
        if last:
            if len(last) > max_line:
                yield None
                skipping = True
            else:
                parts, size = [last], len(last)
    if parts:
        yield b"".join(parts)


def _file_chunks(fh: BinaryIO, stats: "CaptureStats", where: str) -> Iterator[bytes]:
    """``fh.read`` in READ_BYTES pieces; a truncated or corrupt gzip ends it (in stats)."""
    try:
        while True:
            chunk = fh.read(READ_BYTES)
            if not chunk:
                return
            yield chunk
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        stats.truncated = True
        stats.bad(where, f"truncated or corrupt gzip: {exc}")


def _file_lines(fh: BinaryIO, path: str, stats: "CaptureStats") -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a file in bounded memory; an over-long line is
    counted (a line, malformed) and skipped."""
    for lineno, line in enumerate(split_lines(_file_chunks(fh, stats, path)), 1):
        if line is None:
            stats.lines += 1
            stats.bad(f"{path}:{lineno}", f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        yield lineno, line


def read_collector(path: str, symbol: str = "", stats: Optional[CaptureStats] = None) -> Iterator[RawMessage]:
    """Lines of a collector-format gzip capture (``<ns> <json>``).

    Plain (unwrapped) payloads such as the REST snapshot get key ``"<symbol>@rest"``
    when ``symbol`` is given (else ``"@rest"``)."""
    stats = stats if stats is not None else CaptureStats()
    rest_key = f"{symbol.upper()}@rest"
    try:
        with gzip.open(path, "rb") as fh:
            for lineno, line in _file_lines(fh, path, stats):
                stats.lines += 1
                line = line.rstrip(b"\r")
                if not line:
                    continue
                ts, sep, payload = line.partition(b" ")
                if not sep or not ts.isdigit() or not payload.startswith(b"{"):
                    stats.bad(f"{path}:{lineno}", "not '<ns> <json>'")
                    continue
                yield RawMessage(int(ts), _key_of(payload, rest_key), payload)
    except OSError as exc:  # not a gzip file at all
        stats.truncated = True
        stats.bad(path, f"unreadable: {exc}")


def _cf_ts(text: bytes) -> int:
    return int(Decimal(text.decode("ascii").strip()) * 1_000_000_000)


def _cf_ws(path: str, stats: CaptureStats, symbol: Optional[str]) -> Iterator[RawMessage]:
    with open(path, "rb") as fh:
        for lineno, line in _file_lines(fh, path, stats):
            if not line.strip():
                continue  # blank (e.g. the trailing newline): not a line, not malformed
            stats.lines += 1
            if lineno == 1 and b" <-> " in line:
                continue  # the connection URL
            ts, sep, payload = line.rstrip(b"\r").partition(b": ")
            try:
                t = _cf_ts(ts)
            except Exception:
                stats.bad(f"{path}:{lineno}", "bad timestamp")
                continue
            if not sep:
                stats.bad(f"{path}:{lineno}", "no payload")
                continue
            key = _key_of(payload, "@ws")
            if symbol is None or stream_symbol(key) == symbol:
                yield RawMessage(t, key, payload)


def _cf_http(path: str, stats: CaptureStats, symbol: Optional[str]) -> Iterator[RawMessage]:
    with open(path, "rb") as fh:
        for lineno, line in _file_lines(fh, path, stats):
            if not line.strip():
                continue  # the .http logs end with a blank line
            stats.lines += 1
            url, sep, rest = line.rstrip(b"\r").partition(b" -> ")
            ts, sep2, payload = rest.partition(b": ")
            if not sep or not sep2:
                stats.bad(f"{path}:{lineno}", "not '<url> -> <ts>: <json>'")
                continue
            try:
                t = _cf_ts(ts)
            except Exception:
                stats.bad(f"{path}:{lineno}", "bad timestamp")
                continue
            q = parse_qs(urlparse(url.decode("ascii", "replace")).query)
            sym = q.get("symbol", [""])[0].upper()
            if symbol is None or sym == symbol:
                yield RawMessage(t, f"{sym}@rest", payload)


def read_cryptofeed(ws_path: str, http_path: Optional[str] = None,
                    stats: Optional[CaptureStats] = None, symbol: Optional[str] = None) -> Iterator[RawMessage]:
    """cryptofeed's sample format: the websocket log merged by receive time with
    the REST snapshots of the matching ``.http`` log. Both logs are streamed
    (each is in the order cryptofeed wrote it; equal times: the websocket line
    first), so memory does not grow with the file. ``symbol`` (e.g. "BTCUSDT")
    keeps only that symbol's messages (``stream_symbol`` of the key; "" for
    unwrapped websocket payloads)."""
    stats = stats if stats is not None else CaptureStats()
    sym = symbol.upper() if symbol is not None else None
    ws = _cf_ws(ws_path, stats, sym)
    if not http_path:
        yield from ws
        return
    yield from heapq.merge(ws, _cf_http(http_path, stats, sym), key=lambda m: m.local_ns)


def symbol_samples(messages: Iterable[RawMessage], max_messages: int = 5000,
                   max_bytes: int = 4 << 20) -> dict[str, bytes]:
    """{symbol: the first payloads of that symbol joined by newlines} (at most
    ``max_messages`` messages and about ``max_bytes`` bytes each: bounded), in
    order of first appearance; consumes ``messages``. What ``infer_units`` and
    ``detect_market`` read."""
    parts: dict[str, list[bytes]] = {}
    sizes: dict[str, int] = {}
    for m in messages:
        sym = stream_symbol(m.key)
        got = parts.setdefault(sym, [])
        if len(got) < max_messages and sizes.get(sym, 0) < max_bytes:
            got.append(m.payload)
            sizes[sym] = sizes.get(sym, 0) + len(m.payload) + 1
    return {s: b"\n".join(p) for s, p in parts.items()}


def read_exchange_info(path: str) -> dict:
    """An exchangeInfo JSON, plain or in cryptofeed's ``<url> -> <ts>: <json>`` form."""
    try:
        size = os.path.getsize(path)
        if size > MAX_EXCHANGE_INFO_BYTES:
            raise DataError(f"{path}: {size} bytes is not an exchangeInfo JSON (limit {MAX_EXCHANGE_INFO_BYTES})")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the exchangeInfo: {exc.strerror or exc}") from exc
    start = data.find(b"{")
    if start < 0:
        raise DataError(f"{path}: no JSON object")
    try:
        obj, _ = json.JSONDecoder().raw_decode(data[start:].decode("utf-8"))
    except ValueError as exc:   # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{path}: not an exchangeInfo JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not an exchangeInfo JSON object")
    return obj


def symbol_filters(exchange_info: dict) -> dict[str, tuple[str, str]]:
    """{symbol: (tickSize, stepSize)} from exchangeInfo's PRICE_FILTER and LOT_SIZE."""
    out: dict[str, tuple[str, str]] = {}
    for sym in exchange_info.get("symbols", []):
        tick = step = None
        for f in sym.get("filters", []):
            if f.get("filterType") == "PRICE_FILTER":
                tick = f.get("tickSize")
            elif f.get("filterType") == "LOT_SIZE":
                step = f.get("stepSize")
        if tick and step:
            out[sym["symbol"]] = (tick, step)
    return out


def _unit(decimals: int) -> str:
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


def decoder_units(exchange_info: dict, symbol: str, strict: bool = False) -> tuple[str, str]:
    """(price unit, quantity unit) to decode a symbol's market data with.

    ``strict``: PRICE_FILTER tickSize and LOT_SIZE stepSize -- right for our own
    orders, but real market data does not always sit on that grid: depth levels
    aggregate orders (BTCUSDT 2024: qty "25.42618900" with stepSize 0.00001) and
    snapshots keep deep orders placed before a tick-size change (CTKUSDT 2021:
    "0.50579" with tickSize 0.001). Otherwise (the default): prices in tickSize on
    spot and ``10**-pricePrecision`` on futures, quantities in
    ``10**-baseAssetPrecision`` (spot) or ``10**-quantityPrecision`` (futures).
    """
    for sym in exchange_info.get("symbols", []):
        if sym.get("symbol") != symbol:
            continue
        tick, step = symbol_filters({"symbols": [sym]})[symbol]
        if strict:
            return tick, step
        price = _unit(int(sym["pricePrecision"])) if "pricePrecision" in sym else tick
        if "baseAssetPrecision" in sym:
            qty = _unit(int(sym["baseAssetPrecision"]))
        elif "quantityPrecision" in sym:
            qty = _unit(int(sym["quantityPrecision"]))
        else:
            qty = step
        return price, qty
    raise DataError(f"symbol {symbol!r} is not in the exchangeInfo ({len(exchange_info.get('symbols') or [])} symbols there)")


def group_by_symbol(messages: Iterable[RawMessage]) -> dict[str, list[RawMessage]]:
    """Split a multi-symbol capture by symbol, keeping order."""
    out: dict[str, list[RawMessage]] = {}
    for m in messages:
        out.setdefault(stream_symbol(m.key), []).append(m)
    return out
