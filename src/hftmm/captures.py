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
"""
from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Iterator, NamedTuple, Optional
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)

_STREAM_RE = re.compile(rb'^\s*\{\s*"stream"\s*:\s*"([^"]{1,200})"')


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


def read_collector(path: str, symbol: str = "", stats: Optional[CaptureStats] = None) -> Iterator[RawMessage]:
    """Lines of a collector-format gzip capture (``<ns> <json>``).

    Plain (unwrapped) payloads such as the REST snapshot get key ``"<symbol>@rest"``
    when ``symbol`` is given (else ``"@rest"``)."""
    stats = stats if stats is not None else CaptureStats()
    rest_key = f"{symbol.upper()}@rest"
    try:
        with gzip.open(path, "rb") as fh:
            for lineno, line in enumerate(_safe_lines(fh, stats), 1):
                stats.lines += 1
                line = line.rstrip(b"\r\n")
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


def _safe_lines(fh, stats: CaptureStats) -> Iterator[bytes]:
    try:
        yield from fh
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        stats.truncated = True
        stats.bad(getattr(fh, "name", "?"), f"truncated or corrupt gzip: {exc}")


def _cf_ts(text: bytes) -> int:
    return int(Decimal(text.decode("ascii").strip()) * 1_000_000_000)


def read_cryptofeed(ws_path: str, http_path: Optional[str] = None,
                    stats: Optional[CaptureStats] = None) -> Iterator[RawMessage]:
    """cryptofeed's sample format: the websocket log merged by receive time with
    the REST snapshots of the matching ``.http`` log."""
    stats = stats if stats is not None else CaptureStats()
    msgs: list[RawMessage] = []
    with open(ws_path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue  # blank (e.g. the trailing newline): not a line, not malformed
            stats.lines += 1
            if lineno == 1 and b" <-> " in line:
                continue  # the connection URL
            ts, sep, payload = line.rstrip(b"\r\n").partition(b": ")
            try:
                t = _cf_ts(ts)
            except Exception:
                stats.bad(f"{ws_path}:{lineno}", "bad timestamp")
                continue
            if not sep:
                stats.bad(f"{ws_path}:{lineno}", "no payload")
                continue
            msgs.append(RawMessage(t, _key_of(payload, "@ws"), payload))
    if http_path:
        with open(http_path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue  # the .http logs end with a blank line
                stats.lines += 1
                url, sep, rest = line.rstrip(b"\r\n").partition(b" -> ")
                ts, sep2, payload = rest.partition(b": ")
                if not sep or not sep2:
                    stats.bad(f"{http_path}:{lineno}", "not '<url> -> <ts>: <json>'")
                    continue
                q = parse_qs(urlparse(url.decode("ascii", "replace")).query)
                sym = q.get("symbol", [""])[0].upper()
                msgs.append(RawMessage(_cf_ts(ts), f"{sym}@rest", payload))
    msgs.sort(key=lambda m: m.local_ns)  # stable: equal times keep file order
    yield from msgs


def read_exchange_info(path: str) -> dict:
    """An exchangeInfo JSON, plain or in cryptofeed's ``<url> -> <ts>: <json>`` form."""
    with open(path, "rb") as fh:
        data = fh.read()
    start = data.find(b"{")
    if start < 0:
        raise ValueError(f"{path}: no JSON object")
    obj, _ = json.JSONDecoder().raw_decode(data[start:].decode("utf-8"))
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
    raise KeyError(f"symbol {symbol!r} not in exchangeInfo")


def group_by_symbol(messages: Iterable[RawMessage]) -> dict[str, list[RawMessage]]:
    """Split a multi-symbol capture by symbol, keeping order."""
    out: dict[str, list[RawMessage]] = {}
    for m in messages:
        out.setdefault(stream_symbol(m.key), []).append(m)
    return out
