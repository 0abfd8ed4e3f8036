"""Public market data of the simulated exchange, derived from its own market (sans-I/O).

:class:`MarketTape` records every trade and aggregate trade the simulator
publishes (ids, integer ticks and lots, trade time in ms, buyer-is-maker) and
keeps one-second buckets of them. Everything public that Binance computes from
its trades is computed from this tape, so a client can check it against the
trades it saw on the streams:

- ``trades`` / ``historicalTrades``: the recorded trades (the last
  ``max_trades``; Binance keeps more, older ids answer from the oldest kept);
- ``aggTrades``: the recorded aggregate trades;
- ``klines`` / ``uiKlines``: aggregated from the one-second buckets, one kline
  per interval from the first trade on (an interval without trades repeats the
  previous close with zero volume, as Binance's do), ``timeZone`` honoured;
- ``ticker/24hr``: the buckets of the last 86 400 s (a 1-second grid),
  ``avgPrice``: the volume-weighted price of the last 5 minutes;
- ``ticker/price`` (last trade), ``ticker/bookTicker`` (the ground-truth book).

:class:`PublicApi` validates parameters the way Binance does (error codes
-1100, -1102, -1120, -1121, -1128, -1130, -1023) and renders Binance's JSON for
spot (``/api/v3``) or USD-M (``/fapi/v1``); the same functions answer the REST
routes and the WS API methods. Times are milliseconds of the *market* clock
(the time of the last published message).
"""
from __future__ import annotations

import bisect
import calendar
import json
import re
import time
from array import array
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Optional

from hftmm.simulator.orders import ApiError, mandatory

MS_S = 1000
MS_MIN = 60 * MS_S
MS_H = 60 * MS_MIN
MS_D = 24 * MS_H
#: kline intervals per market (ms; "1M" is a calendar month)
KLINE_INTERVALS: dict[str, tuple[str, ...]] = {
    "spot": ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
    "usdm": ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"),
}
_UNIT_MS = {"s": MS_S, "m": MS_MIN, "h": MS_H, "d": MS_D, "w": 7 * MS_D}
MONDAY0_MS = 4 * MS_D          # 1970-01-05, a Monday: Binance's weekly klines open on Mondays
AVG_PRICE_MINS = 5
DIGITS_RE = re.compile(r"^[0-9]{1,20}$")
TZ_RE = re.compile(r"^([+-]?)([0-9]{1,2})(?::([0-9]{2}))?$")
E8 = Decimal("0.00000001")

# one-second bucket fields
O, H, L, C, VOL, QUOTE, N, FIRST, LAST, TBV, TBQ = range(11)


def interval_ms(iv: str) -> int:
    """Length of a fixed kline interval in ms (0 for "1M")."""
    if iv == "1M":
        return 0
    return int(iv[:-1]) * _UNIT_MS[iv[-1]]


def parse_time_zone(raw: Optional[str]) -> int:
    """Binance's ``timeZone`` (``"0"``, ``"8"``, ``"-1:00"``, ``"05:45"``; [-12:00, +14:00]) -> offset ms."""
    if raw is None or raw == "":
        return 0
    m = TZ_RE.match(raw)
    if not m:
        raise ApiError(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
    sign = -1 if m.group(1) == "-" else 1
    h, mi = int(m.group(2)), int(m.group(3) or 0)
    off = sign * (h * 60 + mi)
    if mi >= 60 or not -12 * 60 <= off <= 14 * 60:
        raise ApiError(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
    return off * MS_MIN


def bucket_open(t_ms: int, iv: str, tz_ms: int = 0) -> int:
    """Open time (ms, UTC) of the kline of interval ``iv`` holding ``t_ms`` in time zone ``tz_ms``."""
    if iv == "1M":
        y, mo = time.gmtime((t_ms + tz_ms) // 1000)[:2]
        return calendar.timegm((y, mo, 1, 0, 0, 0)) * 1000 - tz_ms
    n = interval_ms(iv)
    if iv.endswith("w"):
        return (t_ms + tz_ms - MONDAY0_MS) // n * n + MONDAY0_MS - tz_ms
    return (t_ms + tz_ms) // n * n - tz_ms


def shift_open(open_ms: int, iv: str, k: int, tz_ms: int = 0) -> int:
    """The open time ``k`` intervals after (k < 0: before) ``open_ms``."""
    if iv != "1M":
        return open_ms + k * interval_ms(iv)
    y, mo = time.gmtime((open_ms + tz_ms) // 1000)[:2]
    m0 = y * 12 + (mo - 1) + k
    return calendar.timegm((m0 // 12, m0 % 12 + 1, 1, 0, 0, 0)) * 1000 - tz_ms


def _merge(agg: Optional[list], b: list) -> list:
    """Fold one-second bucket ``b`` (later in time) into ``agg`` (None = empty)."""
    if agg is None:
        return list(b)
    if b[H] > agg[H]:
        agg[H] = b[H]
    if b[L] < agg[L]:
        agg[L] = b[L]
    agg[C] = b[C]
    agg[VOL] += b[VOL]
    agg[QUOTE] += b[QUOTE]
    agg[N] += b[N]
    agg[LAST] = b[LAST]
    agg[TBV] += b[TBV]
    agg[TBQ] += b[TBQ]
    return agg


class UnitParser:
    """Binance decimal strings -> integer units of ``step`` (truncating, as int(Decimal(s) / step)),
    without Decimal arithmetic: the hot path of recording every published trade."""

    def __init__(self, step: str) -> None:
        d = Decimal(step).normalize()
        if d <= 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        self.exp = max(-d.as_tuple().exponent, 0)
        self.mant = int(d.scaleb(self.exp))
        self._den: dict[int, tuple[int, int]] = {}

    def __call__(self, text: str) -> int:
        ip, _, fp = text.partition(".")
        k = len(fp)
        f = self._den.get(k)
        if f is None:
            f = self._den[k] = ((1, self.mant * 10 ** (k - self.exp)) if k >= self.exp
                                else (10 ** (self.exp - k), self.mant))
        return int(ip + fp) * f[0] // f[1]


class MarketTape:
    """The trades the simulator published, and their one-second and one-minute buckets.

    Prices in integer ticks, quantities in integer lots, times in ms. Published
    payloads are queued (:meth:`add_trade_payload`) and parsed in batches, at the
    latest when something reads the tape (:meth:`sync`), so publishing stays a
    list append. Memory is bounded: the last ``max_trades`` trades and aggregate
    trades, and buckets covering the last ``max_seconds`` seconds of market time.
    """

    BATCH = 4096

    def __init__(self, tick_size: str = "0.01", lot_size: str = "0.00000001", max_trades: int = 200_000,
                 max_seconds: int = 2 * 86400) -> None:
        if max_trades < 1 or max_seconds < 86400:
            raise ValueError("max_trades must be >= 1 and max_seconds >= 86400 (the 24 h ticker window)")
        self.max_trades = max_trades
        self.max_seconds = max_seconds
        self.ticks = UnitParser(tick_size)
        self.lots = UnitParser(lot_size)
        self._pending: list[tuple[bool, bytes]] = []      # (is aggTrade, payload), in publish order
        self.unreadable = 0
        # trades: id, ticks, lots, time ms; buyer-is-maker flags
        self.t_id, self.t_px, self.t_qty, self.t_time = array("q"), array("q"), array("q"), array("q")
        self.t_m = bytearray()
        # aggregate trades: id, ticks, lots, first id, last id, time ms; buyer-is-maker flags
        self.a_id, self.a_px, self.a_qty = array("q"), array("q"), array("q")
        self.a_first, self.a_last, self.a_time = array("q"), array("q"), array("q")
        self.a_m = bytearray()
        self.sec: list[int] = []          # bucket seconds, ascending
        self.bkt: list[list] = []         # [o, h, l, c, vol, quote, n, first, last, taker-buy vol, taker-buy quote]
        self.mins: list[int] = []         # the same folded per minute (minute = second // 60), ascending
        self.mbkt: list[list] = []
        self.first_trade_ms: Optional[int] = None
        self.trades_parsed = 0

    # -- published payloads ------------------------------------------------
    @property
    def trades_seen(self) -> int:
        """Trades and aggregate trades recorded so far, parsed or queued."""
        return self.trades_parsed + len(self._pending)

    def add_trade_payload(self, payload: bytes, agg: bool = False) -> None:
        """Queue a published trade (``agg``: aggTrade) payload; parsed by :meth:`sync`."""
        self._pending.append((agg, payload))
        if len(self._pending) >= self.BATCH:
            self.sync()

    def parse_trade(self, payload: bytes) -> Optional[tuple[int, int, int, int, bool]]:
        """(id, ticks, lots, time ms, buyer_maker) of a trade payload, None if unreadable."""
        try:
            t = json.loads(payload)
            return int(t["t"]), self.ticks(t["p"]), self.lots(t["q"]), int(t["T"]), bool(t["m"])
        except (ValueError, KeyError, TypeError, AttributeError):
            self.unreadable += 1
            return None

    def sync(self) -> None:
        """Parse every queued payload into the tape (one json.loads per batch)."""
        pend = self._pending
        if not pend:
            return
        self._pending = []
        try:
            objs = json.loads(b"[" + b",".join(p for _, p in pend) + b"]")
        except ValueError:
            objs = []
            for _, p in pend:
                try:
                    objs.append(json.loads(p))
                except ValueError:
                    objs.append(None)
        tk, lt = self.ticks, self.lots
        for (agg, _), t in zip(pend, objs):
            try:
                if agg:
                    self.add_agg_trade(int(t["a"]), tk(t["p"]), lt(t["q"]), int(t["f"]), int(t["l"]), int(t["T"]),
                                       bool(t["m"]))
                else:
                    self.add_trade(int(t["t"]), tk(t["p"]), lt(t["q"]), int(t["T"]), bool(t["m"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.unreadable += 1

    # -- recording ---------------------------------------------------------
    def add_trade(self, tid: int, ticks: int, lots: int, t_ms: int, buyer_maker: bool) -> None:
        self.t_id.append(tid)
        self.t_px.append(ticks)
        self.t_qty.append(lots)
        self.t_time.append(t_ms)
        self.t_m.append(1 if buyer_maker else 0)
        self.trades_parsed += 1
        if len(self.t_id) > self.max_trades + self.max_trades // 4:
            self._trim_trades()
        if self.first_trade_ms is None:
            self.first_trade_ms = t_ms
        s = t_ms // 1000
        quote = ticks * lots
        for keys, buckets, k in ((self.sec, self.bkt, s), (self.mins, self.mbkt, s // 60)):
            b = self._bucket(keys, buckets, k, ticks, tid)
            if ticks > b[H]:
                b[H] = ticks
            if ticks < b[L]:
                b[L] = ticks
            if b[LAST] <= tid:
                b[C] = ticks
            b[VOL] += lots
            b[QUOTE] += quote
            b[N] += 1
            b[FIRST] = min(b[FIRST], tid)
            b[LAST] = max(b[LAST], tid)
            if not buyer_maker:        # the buyer took: taker buy
                b[TBV] += lots
                b[TBQ] += quote
        sec = self.sec
        if sec[-1] - sec[0] > self.max_seconds + 3600:
            cut = bisect.bisect_left(sec, sec[-1] - self.max_seconds)
            del sec[:cut]
            del self.bkt[:cut]
            cut = bisect.bisect_left(self.mins, sec[0] // 60)
            del self.mins[:cut]
            del self.mbkt[:cut]

    @staticmethod
    def _bucket(keys: list[int], buckets: list[list], k: int, ticks: int, tid: int) -> list:
        """The bucket of key ``k`` (created empty at ``ticks`` if new; late keys are inserted in order)."""
        if keys and k == keys[-1]:
            return buckets[-1]
        if not keys or k > keys[-1]:
            keys.append(k)
            b = [ticks, ticks, ticks, ticks, 0, 0, 0, tid, tid, 0, 0]
            buckets.append(b)
            return b
        i = bisect.bisect_left(keys, k)
        if i < len(keys) and keys[i] == k:
            return buckets[i]
        keys.insert(i, k)
        b = [ticks, ticks, ticks, ticks, 0, 0, 0, tid, tid, 0, 0]
        buckets.insert(i, b)
        return b

    def _trim_trades(self) -> None:
        cut = len(self.t_id) - self.max_trades
        for a in (self.t_id, self.t_px, self.t_qty, self.t_time, self.t_m):
            del a[:cut]

    def add_agg_trade(self, aid: int, ticks: int, lots: int, first: int, last: int, t_ms: int,
                      buyer_maker: bool) -> None:
        for a, v in ((self.a_id, aid), (self.a_px, ticks), (self.a_qty, lots), (self.a_first, first),
                     (self.a_last, last), (self.a_time, t_ms)):
            a.append(v)
        self.a_m.append(1 if buyer_maker else 0)
        self.trades_parsed += 1
        if len(self.a_id) > self.max_trades + self.max_trades // 4:
            cut = len(self.a_id) - self.max_trades
            for a in (self.a_id, self.a_px, self.a_qty, self.a_first, self.a_last, self.a_time, self.a_m):
                del a[:cut]

    # -- queries -------------------------------------------------------------
    @property
    def last_trade(self) -> Optional[tuple[int, int, int, int, bool]]:
        """(id, ticks, lots, time ms, buyer_maker) of the last recorded trade."""
        self.sync()
        if not self.t_id:
            return None
        return self.t_id[-1], self.t_px[-1], self.t_qty[-1], self.t_time[-1], bool(self.t_m[-1])

    def trade_rows(self, lo: int, hi: int) -> list[tuple[int, int, int, int, bool]]:
        return [(self.t_id[i], self.t_px[i], self.t_qty[i], self.t_time[i], bool(self.t_m[i])) for i in range(lo, hi)]

    def _fold(self, keys: list[int], buckets: list[list], k0: int, k1: int, agg: Optional[list]) -> Optional[list]:
        for i in range(bisect.bisect_left(keys, k0), bisect.bisect_right(keys, k1)):
            agg = _merge(agg, buckets[i])
        return agg

    def aggregate(self, s0: int, s1: int) -> Optional[list]:
        """The trades of seconds s0..s1 (inclusive) folded into one bucket (None: no trades).
        Whole minutes come from the minute buckets, so a day costs about 1500 folds."""
        self.sync()
        m0, m1 = -(-s0 // 60), (s1 + 1) // 60 - 1        # whole minutes inside [s0, s1]
        if m0 > m1:
            return self._fold(self.sec, self.bkt, s0, s1, None)
        agg = self._fold(self.sec, self.bkt, s0, m0 * 60 - 1, None)
        agg = self._fold(self.mins, self.mbkt, m0, m1, agg)
        return self._fold(self.sec, self.bkt, (m1 + 1) * 60, s1, agg)

    def close_before(self, s: int) -> Optional[int]:
        """Close (ticks) of the last bucket before second ``s``."""
        i = bisect.bisect_left(self.sec, s)
        return self.bkt[i - 1][C] if i > 0 else None

    def kline(self, open_ms: int, close_ms: int, prev_close: Optional[int]) -> Optional[list]:
        """The kline [open_ms, close_ms] as a bucket (no trades: ``prev_close`` flat, or None)."""
        agg = self.aggregate(open_ms // 1000, close_ms // 1000)
        if agg is None:
            if prev_close is None:
                return None
            return [prev_close, prev_close, prev_close, prev_close, 0, 0, 0, -1, -1, 0, 0]
        return agg


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------

def _int_param(p: dict[str, str], name: str) -> Optional[int]:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    if not DIGITS_RE.match(raw):
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                   "'^[0-9]{1,20}$'.")
    return int(raw)


def _limit(p: dict[str, str], default: int, maximum: int) -> int:
    n = _int_param(p, "limit")
    if n is None:
        return default
    if n < 1:
        raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(n, maximum)


def _times(p: dict[str, str]) -> tuple[Optional[int], Optional[int]]:
    start, end = _int_param(p, "startTime"), _int_param(p, "endTime")
    if start is not None and end is not None and start > end:
        raise ApiError(400, -1023, "Start time is greater than end time.")
    return start, end


@dataclass(frozen=True)
class PublicEndpoint:
    """One public market-data request: REST path (after /api/v3 or /fapi/v1), WS
    API method (spot), markets, and its weight as a function of the parameters."""

    name: str
    rest: Optional[str]
    ws: Optional[str]
    markets: tuple[str, ...]
    weight: Callable[[str, dict[str, str]], int]


def _w(spot: int, usdm: int) -> Callable[[str, dict[str, str]], int]:
    return lambda market, p: spot if market == "spot" else usdm


def _w_symbols(spot_one: int, spot_all: int, usdm_one: int, usdm_all: int) -> Callable[[str, dict[str, str]], int]:
    def weight(market: str, p: dict[str, str]) -> int:
        one = bool(p.get("symbol")) or (bool(p.get("symbols")) and market == "spot")
        if market == "spot":
            return spot_one if one else spot_all
        return usdm_one if one else usdm_all
    return weight


def _w_24hr(market: str, p: dict[str, str]) -> int:
    if market == "usdm":
        return 1 if p.get("symbol") else 40
    if p.get("symbol"):
        return 2
    raw = p.get("symbols")
    if not raw:
        return 80
    n = raw.count(",") + 1
    return 2 if n <= 20 else 40 if n <= 100 else 80


def _w_klines(market: str, p: dict[str, str]) -> int:
    if market == "spot":
        return 2
    try:
        n = int(p.get("limit") or 500)
    except ValueError:
        return 1
    return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10


PUBLIC_ENDPOINTS: tuple[PublicEndpoint, ...] = (
    PublicEndpoint("trades", "/trades", "trades.recent", ("spot", "usdm"), _w(25, 5)),
    PublicEndpoint("historicalTrades", "/historicalTrades", "trades.historical", ("spot", "usdm"), _w(25, 20)),
    PublicEndpoint("aggTrades", "/aggTrades", "trades.aggregate", ("spot", "usdm"), _w(4, 20)),
    PublicEndpoint("klines", "/klines", "klines", ("spot", "usdm"), _w_klines),
    PublicEndpoint("uiKlines", "/uiKlines", "uiKlines", ("spot",), _w_klines),
    PublicEndpoint("avgPrice", "/avgPrice", "avgPrice", ("spot",), _w(2, 2)),
    PublicEndpoint("ticker24hr", "/ticker/24hr", "ticker.24hr", ("spot", "usdm"), _w_24hr),
    PublicEndpoint("tickerPrice", "/ticker/price", "ticker.price", ("spot", "usdm"), _w_symbols(2, 4, 1, 2)),
    PublicEndpoint("bookTicker", "/ticker/bookTicker", "ticker.book", ("spot", "usdm"), _w_symbols(2, 4, 2, 5)),
    PublicEndpoint("premiumIndex", "/premiumIndex", None, ("usdm",), _w(1, 1)),
)


def funding_time_ms(now_ms: int, interval_ms: int = 8 * MS_H) -> int:
    """Next USD-M funding time after ``now_ms`` (every 8 h: 00:00, 08:00, 16:00 UTC)."""
    return (now_ms // interval_ms + 1) * interval_ms


#: the funding rate Binance's formula gives when the premium index is 0 (mark =
#: index): the interest rate, 0.01 % per 8 h, inside the +-0.05 % clamp
BASE_FUNDING_RATE = "0.00010000"


class PublicApi:
    """Binance's public market-data answers for the simulator's one symbol.

    ``book()`` returns the ground-truth L2 book (ticks/lots), ``px``/``qty``
    format ticks/lots as Binance strings, ``now_ms()`` is the market clock and
    ``last_update_id()`` the book's update id.
    """

    def __init__(self, market: str, symbol: str, tick_size: str, lot_size: str, tape: MarketTape,
                 book: Callable[[], Any], px: Callable[[int], str], qty: Callable[[int], str],
                 now_ms: Callable[[], int], last_update_id: Callable[[], int]) -> None:
        self.market = market
        self.symbol = symbol
        self.tick = Decimal(tick_size)
        self.lot = Decimal(lot_size)
        self.tape = tape
        self._book = book
        self.px = px
        self.qty = qty
        self.now_ms = now_ms
        self.last_update_id = last_update_id
        self.unit = self.tick * self.lot           # one tick x one lot, in quote asset
        #: USD-M: a mark price set by the simulator's user (None: the book's), the funding
        #: interval [ms] and rate (a fraction, or callable(now_ms) -> fraction)
        self.mark_override: Optional[Decimal] = None
        self.funding_interval_ms = 8 * MS_H
        self.funding_rate: Any = BASE_FUNDING_RATE
        tick_dec = max(-self.tick.normalize().as_tuple().exponent, 0)
        quote_dec = max(-self.unit.normalize().as_tuple().exponent, 0)
        #: decimals of averaged prices and of quote amounts (spot: always 8, as Binance prints them)
        self.avg_dec = 8 if market == "spot" else tick_dec
        self.quote_dec = 8 if market == "spot" else quote_dec
        self.max_klines = 1000 if market == "spot" else 1500

    # -- formatting ----------------------------------------------------------
    def fquote(self, units: int) -> str:
        q = Decimal(10) ** -self.quote_dec
        return f"{(units * self.unit).quantize(q, rounding=ROUND_HALF_UP):f}"

    def fprice(self, x: Decimal, decimals: Optional[int] = None) -> str:
        q = Decimal(10) ** -(self.avg_dec if decimals is None else decimals)
        return f"{x.quantize(q, rounding=ROUND_HALF_UP):f}"

    def _vwap(self, b: list) -> Decimal:
        return Decimal(b[QUOTE]) / b[VOL] * self.tick if b[VOL] else Decimal(b[C]) * self.tick

    # -- symbol checks -------------------------------------------------------
    def check_symbol(self, p: dict[str, str], required: bool = True) -> bool:
        """True when ``symbol`` is given (and ours); -1102 / -1121 otherwise."""
        sym = p.get("symbol")
        if sym is None or sym == "":
            if required:
                raise mandatory("symbol")
            return False
        if sym != self.symbol:
            raise ApiError(400, -1121, "Invalid symbol.")
        return True

    def _one_or_many(self, p: dict[str, str]) -> Optional[bool]:
        """symbol -> True, symbols -> False, neither -> None (all symbols)."""
        if p.get("symbol") and p.get("symbols"):
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        if p.get("symbols"):
            if self.market != "spot":
                raise ApiError(400, -1104, "Not all sent parameters were read; read '0' parameter(s) but was "
                                           "sent '1'.")
            try:
                syms = json.loads(p["symbols"])
            except ValueError:
                raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'; legal range is "
                                           "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
            if not isinstance(syms, list) or not syms or not all(isinstance(s, str) for s in syms):
                raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.")
            if any(s != self.symbol for s in syms):
                raise ApiError(400, -1121, "Invalid symbol.")
            return False
        if p.get("symbol") is not None:
            self.check_symbol(p)
            return True
        return None

    # -- endpoints -----------------------------------------------------------
    def call(self, name: str, p: dict[str, str]) -> Any:
        self.tape.sync()
        return getattr(self, "ep_" + name)(p)

    def _trade_json(self, row: tuple) -> dict:
        tid, t, q, ms, m = row
        d = {"id": tid, "price": self.px(t), "qty": self.qty(q), "quoteQty": self.fquote(t * q), "time": ms,
             "isBuyerMaker": m}
        if self.market == "spot":
            d["isBestMatch"] = True
        else:
            d["isRPITrade"] = False      # the simulated book has no Retail Price Improvement orders
        return d

    def ep_trades(self, p: dict[str, str]) -> list:
        self.check_symbol(p)
        n = _limit(p, 500, 1000)
        hi = len(self.tape.t_id)
        return [self._trade_json(r) for r in self.tape.trade_rows(max(0, hi - n), hi)]

    def ep_historicalTrades(self, p: dict[str, str]) -> list:
        self.check_symbol(p)
        n = _limit(p, 500, 1000)
        from_id = _int_param(p, "fromId")
        ids = self.tape.t_id
        if from_id is None:
            lo = max(0, len(ids) - n)
        else:
            lo = bisect.bisect_left(ids, from_id)
        return [self._trade_json(r) for r in self.tape.trade_rows(lo, min(len(ids), lo + n))]

    def ep_aggTrades(self, p: dict[str, str]) -> list:
        self.check_symbol(p)
        n = _limit(p, 500, 1000)
        from_id = _int_param(p, "fromId")
        start, end = _times(p)
        tp = self.tape
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        if self.market == "usdm" and start is not None and end is not None and end - start > MS_H:
            raise ApiError(400, -1127, "More than 1 hours between startTime and endTime.")
        size = len(tp.a_id)
        if from_id is not None:
            lo = bisect.bisect_left(tp.a_id, from_id)
            hi = min(size, lo + n)
        elif start is not None:
            lo = bisect.bisect_left(tp.a_time, start)
            hi = bisect.bisect_right(tp.a_time, end) if end is not None else size
            hi = min(hi, lo + n)
        elif end is not None:
            hi = bisect.bisect_right(tp.a_time, end)
            lo = max(0, hi - n)
        else:
            hi, lo = size, max(0, size - n)
        out = []
        for i in range(lo, hi):
            d = {"a": tp.a_id[i], "p": self.px(tp.a_px[i]), "q": self.qty(tp.a_qty[i]), "f": tp.a_first[i],
                 "l": tp.a_last[i], "T": tp.a_time[i], "m": bool(tp.a_m[i])}
            if self.market == "spot":
                d["M"] = True
            out.append(d)
        return out

    def kline_rows(self, iv: str, start: Optional[int], end: Optional[int], limit: int,
                   tz_ms: int = 0) -> list[list]:
        """Klines as buckets with their open/close times: [(open, close, bucket)], oldest first."""
        tp = self.tape
        if tp.first_trade_ms is None:
            return []
        now = max(self.now_ms(), tp.t_time[-1] if tp.t_time else 0)
        first = bucket_open(max(tp.first_trade_ms, (tp.sec[0] * 1000) if tp.sec else 0), iv, tz_ms)
        current = bucket_open(now, iv, tz_ms)
        if start is not None:
            o = bucket_open(start, iv, tz_ms)
            if o < start:
                o = shift_open(o, iv, 1, tz_ms)
            o = max(o, first)
            last = current if end is None else min(current, bucket_open(end, iv, tz_ms))
        else:
            last = current if end is None else min(current, bucket_open(end, iv, tz_ms))
            o = max(first, shift_open(last, iv, -(limit - 1), tz_ms))
        rows: list = []
        prev = tp.close_before(o // 1000)
        while o <= last and len(rows) < limit:
            nxt = shift_open(o, iv, 1, tz_ms)
            b = tp.kline(o, nxt - 1, prev)
            if b is not None:
                rows.append((o, nxt - 1, b))
                prev = b[C]
            o = nxt
        return rows

    def kline_array(self, o: int, c: int, b: list) -> list:
        return [o, self.px(b[O]), self.px(b[H]), self.px(b[L]), self.px(b[C]), self.qty(b[VOL]), c,
                self.fquote(b[QUOTE]), b[N], self.qty(b[TBV]), self.fquote(b[TBQ]), "0"]

    def _klines_params(self, p: dict[str, str]) -> tuple[str, Optional[int], Optional[int], int, int]:
        self.check_symbol(p)
        iv = p.get("interval")
        if not iv:
            raise mandatory("interval")
        if iv not in KLINE_INTERVALS[self.market]:
            raise ApiError(400, -1120, "Invalid interval.")
        start, end = _times(p)
        limit = _limit(p, 500, self.max_klines)
        tz = parse_time_zone(p.get("timeZone")) if self.market == "spot" else 0
        return iv, start, end, limit, tz

    def ep_klines(self, p: dict[str, str]) -> list:
        iv, start, end, limit, tz = self._klines_params(p)
        return [self.kline_array(o, c, b) for o, c, b in self.kline_rows(iv, start, end, limit, tz)]

    def ep_uiKlines(self, p: dict[str, str]) -> list:
        return self.ep_klines(p)

    def ep_avgPrice(self, p: dict[str, str]) -> dict:
        self.check_symbol(p)
        tp = self.tape
        last = tp.last_trade
        if last is None:
            return {"mins": AVG_PRICE_MINS, "price": self.fprice(Decimal(0)), "closeTime": 0}
        now_s = max(self.now_ms(), last[3]) // 1000
        b = tp.aggregate(now_s - AVG_PRICE_MINS * 60 + 1, now_s)
        price = self._vwap(b) if b is not None else Decimal(last[1]) * self.tick
        return {"mins": AVG_PRICE_MINS, "price": self.fprice(price), "closeTime": last[3]}

    def ticker(self, mini: bool = False) -> dict:
        """24 h rolling statistics of the symbol (Binance's FULL or MINI shape)."""
        tp = self.tape
        last = tp.last_trade
        now = max(self.now_ms(), last[3] if last else 0)
        now_s = now // 1000
        b = tp.aggregate(now_s - 86400 + 1, now_s)
        zero = self.px(0)
        if b is None:
            lastp = self.px(last[1]) if last else zero
            op = hp = lp = lastp
            vol, quote, n, first, lastid = self.qty(0), self.fquote(0), 0, -1, -1
            change, pct, wavg = self.fprice(Decimal(0), None), "0.000", self.fprice(Decimal(0))
        else:
            op, hp, lp, lastp = self.px(b[O]), self.px(b[H]), self.px(b[L]), self.px(b[C])
            vol, quote, n, first, lastid = self.qty(b[VOL]), self.fquote(b[QUOTE]), b[N], b[FIRST], b[LAST]
            ch = Decimal(b[C] - b[O]) * self.tick
            change = self.px(b[C] - b[O]) if b[C] >= b[O] else "-" + self.px(b[O] - b[C])
            pct = f"{(ch / (Decimal(b[O]) * self.tick) * 100).quantize(Decimal('0.001'), ROUND_HALF_UP):f}"
            wavg = self.fprice(self._vwap(b))
        d: dict[str, Any] = {"symbol": self.symbol}
        if mini:
            d.update({"openPrice": op, "highPrice": hp, "lowPrice": lp, "lastPrice": lastp, "volume": vol,
                      "quoteVolume": quote, "openTime": now - MS_D, "closeTime": now, "firstId": first,
                      "lastId": lastid, "count": n})
            return d
        d.update({"priceChange": change, "priceChangePercent": pct, "weightedAvgPrice": wavg})
        if self.market == "spot":
            prev = tp.close_before(now_s - 86400 + 1)
            d["prevClosePrice"] = self.px(prev) if prev is not None else zero
        d.update({"lastPrice": lastp, "lastQty": self.qty(last[2]) if last else self.qty(0)})
        if self.market == "spot":
            bk = self._book()
            bb, ba = bk.best_bid(), bk.best_ask()
            d.update({"bidPrice": self.px(bb) if bb is not None else zero,
                      "bidQty": self.qty(bk.best_bid_qty()) if bb is not None else self.qty(0),
                      "askPrice": self.px(ba) if ba is not None else zero,
                      "askQty": self.qty(bk.best_ask_qty()) if ba is not None else self.qty(0)})
        d.update({"openPrice": op, "highPrice": hp, "lowPrice": lp, "volume": vol, "quoteVolume": quote,
                  "openTime": now - MS_D, "closeTime": now, "firstId": first, "lastId": lastid, "count": n})
        return d

    def ep_ticker24hr(self, p: dict[str, str]) -> Any:
        one = self._one_or_many(p)
        typ = p.get("type") or "FULL"
        if typ not in ("FULL", "MINI") or (self.market != "spot" and p.get("type") is not None):
            raise ApiError(400, -1130, "Data sent for parameter 'type' is not valid.")
        t = self.ticker(typ == "MINI")
        return t if one else [t]

    def ep_tickerPrice(self, p: dict[str, str]) -> Any:
        one = self._one_or_many(p)
        last = self.tape.last_trade
        d: dict[str, Any] = {"symbol": self.symbol, "price": self.px(last[1]) if last else self.px(0)}
        if self.market == "usdm":
            d["time"] = last[3] if last else self.now_ms()
        return d if one else [d]

    def book_ticker(self) -> dict:
        bk = self._book()
        bb, ba = bk.best_bid(), bk.best_ask()
        d: dict[str, Any] = {}
        if self.market == "usdm":
            d["lastUpdateId"] = self.last_update_id()
        d.update({"symbol": self.symbol,
                  "bidPrice": self.px(bb) if bb is not None else self.px(0),
                  "bidQty": self.qty(bk.best_bid_qty()) if bb is not None else self.qty(0),
                  "askPrice": self.px(ba) if ba is not None else self.px(0),
                  "askQty": self.qty(bk.best_ask_qty()) if ba is not None else self.qty(0)})
        if self.market == "usdm":
            d["time"] = self.now_ms()
        return d

    def ep_bookTicker(self, p: dict[str, str]) -> Any:
        one = self._one_or_many(p)
        d = self.book_ticker()
        return d if one else [d]

    def current_funding_rate(self, now_ms: int) -> str:
        """The funding rate of the next settlement, as Binance prints it (8 decimals)."""
        fr = self.funding_rate
        r = fr(now_ms) if callable(fr) else fr
        return f"{Decimal(str(r)):.8f}"

    def mark_price(self) -> Decimal:
        """USD-M mark (= index) price: the mid of the ground-truth book (last trade if one side is
        empty), unless the simulator's user set one (``mark_override``)."""
        if self.mark_override is not None:
            return self.mark_override
        bk = self._book()
        bb, ba = bk.best_bid(), bk.best_ask()
        if bb is not None and ba is not None:
            return Decimal(bb + ba) * self.tick / 2
        t = bb if bb is not None else ba
        if t is None:
            last = self.tape.last_trade
            t = last[1] if last else 0
        return Decimal(t) * self.tick

    def ep_premiumIndex(self, p: dict[str, str]) -> Any:
        one = self._one_or_many(p)
        now = self.now_ms()
        mark = self.fprice(self.mark_price(), 8)
        d = {"symbol": self.symbol, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
             "lastFundingRate": self.current_funding_rate(now), "interestRate": "0.00010000",
             "nextFundingTime": funding_time_ms(now, self.funding_interval_ms), "time": now}
        return d if one else [d]
