"""Reference twin of hftcore.binance: a ``json.loads``-based Binance decoder
producing plain dataclasses with the same field names and units (prices in
ticks, quantities in lots, times in ns, ids as sent). Slow, obviously right:
the JSON is json.loads's and the decimals are decimal.Decimal's (through
hftmm.reference.decimal), so it serves as the oracle of the fuzz suite.

The rules are the compiled decoder's:

* the text is strict UTF-8 (bytes that are not, or a str holding a lone
  surrogate, are refused); json.loads reads it, with NaN/Infinity refused and
  the nesting depth at most 128 (top-level object = 1);
* a key twice in the top-level object, or in the "data" payload of a
  combined-stream frame, is refused (json.loads would keep the last);
* combined-stream wrapper ``{"stream": str, "data": {...}}`` -> the payload is
  ``data`` and ``stream`` is set; otherwise the frame itself is the payload;
* classification: "e" == depthUpdate / trade / aggTrade / bookTicker, any other
  "e" -> UnknownEvent(e); no "e": lastUpdateId with bids or asks -> snapshot;
  u, b, B, a, A -> book ticker; otherwise UnknownEvent("") with the keys;
* each kind reads exactly its documented keys, in a fixed order (the first
  failing one is reported); every other key is ignored (also "bids" in a
  depthUpdate, "b" in a snapshot); ids and times are non-negative int64.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hftmm.reference import decimal as rdec

NO_ID = -(2**63)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
BID, ASK = 0, 1

MAX_DEPTH = 128


class DecodeError(ValueError):
    """Malformed frame; ``field`` is the JSON key concerned (or None); the twin
    does not know byte offsets (``offset`` is None)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.offset = None


@dataclass
class DepthUpdate:
    stream: str | None
    symbol: str | None
    first_id: int
    last_id: int
    prev_id: int
    event_time_ns: int
    transaction_time_ns: int
    bids: list = field(default_factory=list)  # [(ticks, lots), ...]
    asks: list = field(default_factory=list)


@dataclass
class DepthSnapshot:
    stream: str | None
    symbol: str | None
    last_update_id: int
    event_time_ns: int
    transaction_time_ns: int
    bids: list = field(default_factory=list)
    asks: list = field(default_factory=list)


@dataclass
class Trade:
    stream: str | None
    symbol: str | None
    is_aggregate: bool
    trade_id: int
    first_trade_id: int
    last_trade_id: int
    price: int
    qty: int
    trade_time_ns: int
    event_time_ns: int
    buyer_is_maker: bool
    side: int
    trade_type: str | None


@dataclass
class BookTicker:
    stream: str | None
    symbol: str | None
    update_id: int
    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int
    event_time_ns: int
    transaction_time_ns: int


@dataclass
class UnknownEvent:
    stream: str | None
    symbol: str | None
    event_type: str
    payload_keys: tuple


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float, _BigNumber)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "an object"
    return "an array"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


class _BigNumber:
    """A JSON integer too long for int() (Python's digit limit); never an int64."""


def _parse_int(text: str) -> Any:
    return int(text) if len(text) <= 40 else _BigNumber()


class _Obj(dict):
    """A JSON object as json.loads builds it (the last value of a repeated key,
    as json.loads; only an object the decoder does not read may repeat one),
    with ``dup``: the first key seen twice (document order), or None."""

    __slots__ = ("dup",)


def _pairs(pairs: list) -> _Obj:
    o = _Obj(pairs)
    o.dup = None
    if len(o) != len(pairs):
        seen: set = set()
        for k, _ in pairs:
            if k in seen:
                o.dup = k
                break
            seen.add(k)
    return o


def _too_deep(text: str) -> bool:
    """Does the (valid JSON) text nest containers deeper than MAX_DEPTH?"""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


_JSON = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_reject_constant, parse_int=_parse_int)


def loads_strict(frame: bytes | bytearray | memoryview | str) -> Any:
    """json.loads of the frame's strict UTF-8 text (objects as _Obj); DecodeError
    (field None) for anything json.loads or the UTF-8 codec refuses, and for
    nesting beyond MAX_DEPTH."""
    try:
        if isinstance(frame, str):
            frame.encode("utf-8")        # a lone surrogate is not UTF-8
            text = frame
        else:
            text = bytes(frame).decode("utf-8")
    except UnicodeError as e:
        raise DecodeError(f"invalid UTF-8: {e}") from None
    try:
        top = _JSON.decode(text)
    except (ValueError, RecursionError) as e:
        raise DecodeError(f"invalid JSON: {e}") from None
    if _too_deep(text):
        raise DecodeError("nesting too deep")
    return top


class BinanceDecoder:
    """Same constructor and ``decode`` as hftcore.binance.BinanceDecoder."""

    def __init__(self, tick_size: str, lot_size: str, time_unit: str = "ms") -> None:
        if time_unit not in ("ms", "us"):
            raise ValueError(f'time_unit must be "ms" or "us", not {time_unit!r}')
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.px_scale = rdec.Scale.from_str(tick_size)
        self.qty_scale = rdec.Scale.from_str(lot_size)
        self.time_mult = 1_000_000 if time_unit == "ms" else 1_000

    # ------------------------------------------------------------ helpers
    def _levels(self, key: str, levels: list) -> list:
        out = []
        for i, lvl in enumerate(levels):
            if not (isinstance(lvl, list) and len(lvl) == 2
                    and isinstance(lvl[0], str) and isinstance(lvl[1], str)):
                raise DecodeError(f'field "{key}" level {i}: bad level shape {lvl!r}', key)
            out.append((self._units(key, lvl[0], True, i), self._units(key, lvl[1], False, i)))
        return out

    def _units(self, key: str, text: Any, is_px: bool, level: int | None = None) -> int:
        if not isinstance(text, str):
            raise DecodeError(f'field "{key}": expected a decimal string, got {_type_name(text)}', key)
        try:
            return rdec.parse_units(text, self.px_scale if is_px else self.qty_scale)
        except rdec.DecimalError as e:
            where = f" level {level}" if level is not None else ""
            raise DecodeError(f'field "{key}"{where}: {e}', key) from None

    @staticmethod
    def _req(obj: dict, key: str, kind: str) -> Any:
        if key not in obj:
            raise DecodeError(f'field "{key}": missing required field for {kind}', key)
        return obj[key]

    def _int(self, obj: dict, key: str, kind: str) -> int:
        """A required non-negative int64 (an id, or a time before scaling)."""
        v = self._req(obj, key, kind)
        if isinstance(v, bool) or not isinstance(v, (int, float, _BigNumber)):
            raise DecodeError(f'field "{key}": expected an integer, got {_type_name(v)}', key)
        if not isinstance(v, int) or not (INT64_MIN <= v <= INT64_MAX):
            raise DecodeError(f'field "{key}": expected an int64 integer', key)
        if v < 0:
            raise DecodeError(f'field "{key}": expected a non-negative integer, got {v}', key)
        return v

    def _time(self, obj: dict, key: str, kind: str) -> int:
        ns = self._int(obj, key, kind) * self.time_mult
        if not (INT64_MIN <= ns <= INT64_MAX):
            raise DecodeError(f'field "{key}": time out of the int64 nanosecond range', key)
        return ns

    def _opt_time(self, obj: dict, key: str, kind: str) -> int:
        return self._time(obj, key, kind) if key in obj else 0

    @staticmethod
    def _symbol(obj: dict, strict: bool) -> str | None:
        s = obj.get("s")
        if s is None and "s" not in obj:
            return None
        if not isinstance(s, str):
            if strict:
                raise DecodeError(f'field "s": expected a string, got {_type_name(s)}', "s")
            return None
        return s

    def _level_field(self, obj: dict, key: str, kind: str) -> list:
        v = self._req(obj, key, kind)
        if not isinstance(v, list):
            raise DecodeError(
                f'field "{key}": expected an array of [price, qty] levels, got {_type_name(v)}', key)
        return self._levels(key, v)

    # ------------------------------------------------------------ decode
    def decode(self, frame: bytes | bytearray | memoryview | str):
        top = loads_strict(frame)
        if not isinstance(top, dict):
            raise DecodeError("top level is not a JSON object")
        if top.dup is not None:
            raise DecodeError(f"duplicate key {json.dumps(top.dup)}", top.dup)
        stream = None
        obj = top
        if isinstance(top.get("stream"), str) and isinstance(top.get("data"), dict):
            obj, stream = top["data"], top["stream"]
            if obj.dup is not None:
                raise DecodeError(f"duplicate key {json.dumps(obj.dup)}", obj.dup)

        if "e" in obj:
            e = obj["e"]
            if not isinstance(e, str):
                raise DecodeError(f'field "e": expected a string, got {_type_name(e)}', "e")
            if e == "depthUpdate":
                return self._depth(obj, stream)
            if e in ("trade", "aggTrade"):
                return self._trade(obj, stream, e == "aggTrade")
            if e == "bookTicker":
                return self._bbo(obj, stream)
            return UnknownEvent(stream, self._symbol(obj, False), e, ())
        if "lastUpdateId" in obj and ("bids" in obj or "asks" in obj):
            return self._snapshot(obj, stream)
        if all(k in obj for k in ("u", "b", "B", "a", "A")):
            return self._bbo(obj, stream)
        return UnknownEvent(stream, self._symbol(obj, False), "", tuple(obj.keys()))

    def _depth(self, obj: dict, stream: str | None) -> DepthUpdate:
        # e E T s U u pu b a
        kind = "depthUpdate"
        U = self._int(obj, "U", kind)
        u = self._int(obj, "u", kind)
        pu = self._int(obj, "pu", kind) if "pu" in obj else NO_ID
        E = self._time(obj, "E", kind)
        T = self._opt_time(obj, "T", kind)
        bids = self._level_field(obj, "b", kind)
        asks = self._level_field(obj, "a", kind)
        return DepthUpdate(stream, self._symbol(obj, True), U, u, pu, E, T, bids, asks)

    def _snapshot(self, obj: dict, stream: str | None) -> DepthSnapshot:
        # lastUpdateId E T bids asks (no "s": symbol None)
        kind = "a depth snapshot"
        L = self._int(obj, "lastUpdateId", kind)
        E = self._opt_time(obj, "E", kind)
        T = self._opt_time(obj, "T", kind)
        bids = self._level_field(obj, "bids", kind)
        asks = self._level_field(obj, "asks", kind)
        return DepthSnapshot(stream, None, L, E, T, bids, asks)

    def _trade(self, obj: dict, stream: str | None, agg: bool) -> Trade:
        kind = "aggTrade" if agg else "trade"
        tid = self._int(obj, "a" if agg else "t", kind)
        first = self._int(obj, "f", kind) if agg else tid
        last = self._int(obj, "l", kind) if agg else tid
        px = self._units("p", self._req(obj, "p", kind), True)
        qty = self._units("q", self._req(obj, "q", kind), False)
        T = self._time(obj, "T", kind)
        E = self._time(obj, "E", kind)
        m = self._req(obj, "m", kind)
        if not isinstance(m, bool):
            raise DecodeError(f'field "m": expected a boolean, got {_type_name(m)}', "m")
        X = obj.get("X") if not agg else None    # trade only
        if not agg and "X" in obj and not isinstance(X, str):
            raise DecodeError(f'field "X": expected a string, got {_type_name(X)}', "X")
        sym = self._symbol(obj, True)
        return Trade(stream, sym, agg, tid, first, last, px, qty, T, E, m,
                     BID if m else ASK, X)

    def _bbo(self, obj: dict, stream: str | None) -> BookTicker:
        kind = "bookTicker"
        u = self._int(obj, "u", kind)
        bp = self._units("b", self._req(obj, "b", kind), True)
        bq = self._units("B", self._req(obj, "B", kind), False)
        ap = self._units("a", self._req(obj, "a", kind), True)
        aq = self._units("A", self._req(obj, "A", kind), False)
        E = self._opt_time(obj, "E", kind)
        T = self._opt_time(obj, "T", kind)
        return BookTicker(stream, self._symbol(obj, True), u, bp, bq, ap, aq, E, T)
