"""Market-data stream names of the simulator and the streams it renders on a timer.

:class:`StreamCatalog` parses Binance stream names (``<symbol>@<type>``) of one
market into a :class:`StreamSpec`: the canonical name, the channel and key the
simulator publishes under, and the URL routes that carry it (USD-M splits
streams between ``/public`` and ``/market``; spot serves everything on
``/ws`` and ``/stream``). Served types:

=====================  ===========================================  =========================
name                   spot                                         USD-M
=====================  ===========================================  =========================
``@depth[@<n>ms]``     1000 (default), 100                          250 (default), 500, 100, 0
``@depth<5|10|20>``    1000 (default) or ``@100ms``: lastUpdateId,  250 (default), ``@500ms``,
                       bids, asks                                   ``@100ms``: a depthUpdate
``@bookTicker``        real time                                    real time
``@trade``             real time                                    real time (both routes)
``@aggTrade``          real time                                    real time (``/market``)
``@kline_<interval>``  every 1000 ms (``1s``) / 2000 ms             every 250 ms (``/market``)
``@ticker``            every 1000 ms (24 h rolling)                 every 1000 ms (``/market``)
``@miniTicker``        every 1000 ms                                every 1000 ms (``/market``)
``@avgPrice``          every 1000 ms                                --
``@markPrice[@1s]``    --                                           every 3000 / 1000 ms
=====================  ===========================================  =========================

USD-M ``@trade`` is served on both ``/public`` and ``/market``: the project's
notes place it on ``/market``, while client libraries and 2026 reports place it
on ``/public`` (and the un-routed URLs); serving both keeps every client working.

A name for another symbol is valid but never delivers (the simulated exchange
lists one symbol). :class:`TimedRenderer` builds the payloads of the timed
streams from the ground-truth book and the :class:`~hftmm.simulator.marketdata.MarketTape`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from hftmm.simulator.marketdata import (KLINE_INTERVALS, MS_D, PublicApi, bucket_open,
                                        funding_time_ms, shift_open)
from hftmm.simulator.sources import DEFAULT_DEPTH_INTERVAL, DEPTH_INTERVALS

PARTIAL_LEVELS = (5, 10, 20)
PARTIAL_INTERVALS = {"spot": (1000, 100), "usdm": (250, 500, 100)}
KLINE_PERIOD_MS = {"spot": 2000, "usdm": 250}
TIMED_CHANNELS = ("partial", "kline", "ticker", "miniTicker", "avgPrice", "markPrice")
_NAME_RE = re.compile(r"^([a-z0-9]{2,20})@([A-Za-z0-9_@]+)$")


@dataclass(frozen=True)
class StreamSpec:
    """A parsed stream name: ``canonical`` (as listed back), ``channel`` and ``key``
    (what the simulator publishes under), ``routes`` that carry it, ``period_ms``
    for timed streams, and ``ours`` (False: another symbol, never delivered)."""

    canonical: str
    channel: str
    key: Any
    routes: frozenset
    period_ms: int = 0
    ours: bool = True


class StreamCatalog:
    """Valid stream names of one market and symbol."""

    def __init__(self, market: str, symbol: str) -> None:
        self.market = market
        self.symbol = symbol.lower()
        both = frozenset({"public", "market"})
        if market == "spot":
            self.public = self.mkt = self.both = both
        else:
            self.public, self.mkt, self.both = frozenset({"public"}), frozenset({"market"}), both

    def lookup(self, name: object) -> Optional[StreamSpec]:
        """The spec of ``name`` (case-insensitive symbol), None if it is no stream the simulator knows."""
        if not isinstance(name, str):
            return None
        sym, _, rest = name.partition("@")
        m = _NAME_RE.match(sym.lower() + "@" + rest)
        if not m:
            return None
        sym, rest = m.group(1), m.group(2)
        spec = self._parse(sym, rest)
        if spec is None:
            return None
        if sym != self.symbol:
            return StreamSpec(spec.canonical, "foreign", None, spec.routes, spec.period_ms, ours=False)
        return spec

    def _parse(self, sym: str, rest: str) -> Optional[StreamSpec]:
        mk = self.market
        parts = rest.split("@")
        kind = parts[0]
        tail = parts[1:]
        name = f"{sym}@{rest}"

        def ms_suffix() -> Optional[int]:
            if len(tail) == 1 and tail[0].endswith("ms") and tail[0][:-2].isdigit():
                return int(tail[0][:-2])
            return None

        if kind == "depth":
            if not tail:
                return StreamSpec(name, "depth", DEFAULT_DEPTH_INTERVAL[mk], self.public)
            iv = ms_suffix()
            if iv is None or iv not in DEPTH_INTERVALS[mk]:
                return None
            return StreamSpec(name, "depth", iv, self.public)
        m = re.fullmatch(r"depth(5|10|20)", kind)
        if m:
            levels = int(m.group(1))
            if not tail:
                iv = PARTIAL_INTERVALS[mk][0]
            else:
                iv = ms_suffix()
                if iv is None or iv not in PARTIAL_INTERVALS[mk]:
                    return None
            return StreamSpec(name, "partial", (levels, iv), self.public, iv)
        if tail and kind != "markPrice":
            return None
        if kind == "bookTicker":
            return StreamSpec(name, "bookTicker", None, self.public)
        if kind == "trade":
            return StreamSpec(name, "trade", None, self.both)
        if kind == "aggTrade":
            return StreamSpec(name, "aggTrade", None, self.mkt)
        if kind.startswith("kline_"):
            iv = kind[len("kline_"):]
            if iv not in KLINE_INTERVALS[mk]:
                return None
            period = 1000 if iv == "1s" else KLINE_PERIOD_MS[mk]
            return StreamSpec(name, "kline", iv, self.mkt, period)
        if kind in ("ticker", "miniTicker"):
            return StreamSpec(name, kind, None, self.mkt, 1000)
        if kind == "avgPrice" and mk == "spot":
            return StreamSpec(name, "avgPrice", None, self.mkt, 1000)
        if kind == "markPrice" and mk == "usdm":
            if not tail:
                return StreamSpec(name, "markPrice", 3000, self.mkt, 3000)
            if tail == ["1s"]:
                return StreamSpec(name, "markPrice", 1000, self.mkt, 1000)
        return None


def _levels(px, qty, ticks, lots) -> str:
    return ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in zip(ticks.tolist(), lots.tolist()))


class TimedRenderer:
    """Payloads of the timed streams (partial depth, klines, tickers, average and mark price).

    ``api`` gives the book, the tape, formatting and the ticker statistics;
    ``depth_ids`` the recent (U, u) pairs of the primary depth stream (USD-M
    partial depth carries U/u/pu as its diff stream does). Per-stream state (the
    last kline sent, the last u sent) lives here.
    """

    def __init__(self, market: str, symbol: str, api: PublicApi) -> None:
        self.market = market
        self.symbol = symbol
        self.api = api
        self._last_u: dict[Any, int] = {}
        self._kline_open: dict[str, int] = {}

    def render(self, channel: str, key: Any, now_ms: int, first_after: Callable[[Optional[int]], Optional[int]],
               last_u: int) -> list[bytes]:
        """Payloads due now for (channel, key): usually one, two when a kline just closed.
        ``first_after(u)``: U of the first primary depth message after final id ``u``."""
        self.api.tape.sync()
        return getattr(self, "_r_" + channel)(key, now_ms, first_after, last_u)

    def _r_partial(self, key: Any, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        levels, _ = key
        api = self.api
        bk = api._book()
        bt, bq, at, aq = bk.top(levels)
        bids, asks = _levels(api.px, api.qty, bt, bq), _levels(api.px, api.qty, at, aq)
        if self.market == "spot":
            return [f'{{"lastUpdateId":{last_u},"bids":[{bids}],"asks":[{asks}]}}'.encode()]
        prev = self._last_u.get(key)
        U = first_after(prev)
        if U is None:
            U = last_u
        pu = prev if prev is not None else U - 1
        self._last_u[key] = last_u
        return [(f'{{"e":"depthUpdate","E":{now_ms},"T":{now_ms},"s":"{self.symbol}","U":{U},"u":{last_u},'
                 f'"pu":{pu},"b":[{bids}],"a":[{asks}]}}').encode()]

    def _kline_payload(self, iv: str, o: int, now_ms: int, closed: bool) -> Optional[bytes]:
        api, tp = self.api, self.api.tape
        c = shift_open(o, iv, 1) - 1
        prev = tp.close_before(o // 1000)
        b = tp.kline(o, c, prev)
        if b is None:
            return None
        k = api.kline_array(o, c, b)
        return (f'{{"e":"kline","E":{now_ms},"s":"{self.symbol}","k":{{"t":{o},"T":{c},"s":"{self.symbol}",'
                f'"i":"{iv}","f":{b[7]},"L":{b[8]},"o":"{k[1]}","c":"{k[4]}","h":"{k[2]}","l":"{k[3]}",'
                f'"v":"{k[5]}","n":{b[6]},"x":{"true" if closed else "false"},"q":"{k[7]}","V":"{k[9]}",'
                f'"Q":"{k[10]}","B":"0"}}}}').encode()

    def _r_kline(self, iv: str, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        o = bucket_open(now_ms, iv)
        out = []
        prev_open = self._kline_open.get(iv)
        if prev_open is not None and prev_open < o:
            p = self._kline_payload(iv, prev_open, now_ms, True)   # the final update of the closed kline
            if p is not None:
                out.append(p)
        self._kline_open[iv] = o
        p = self._kline_payload(iv, o, now_ms, False)
        if p is not None:
            out.append(p)
        return out

    def _r_ticker(self, key: Any, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        api = self.api
        if api.tape.last_trade is None:
            return []
        t = api.ticker()
        last = api.tape.last_trade
        parts = [f'"e":"24hrTicker","E":{now_ms},"s":"{self.symbol}","p":"{t["priceChange"]}",'
                 f'"P":"{t["priceChangePercent"]}","w":"{t["weightedAvgPrice"]}"']
        if self.market == "spot":
            parts.append(f'"x":"{t["prevClosePrice"]}"')
        parts.append(f'"c":"{t["lastPrice"]}","Q":"{api.qty(last[2])}"')
        if self.market == "spot":
            parts.append(f'"b":"{t["bidPrice"]}","B":"{t["bidQty"]}","a":"{t["askPrice"]}","A":"{t["askQty"]}"')
        parts.append(f'"o":"{t["openPrice"]}","h":"{t["highPrice"]}","l":"{t["lowPrice"]}","v":"{t["volume"]}",'
                     f'"q":"{t["quoteVolume"]}","O":{now_ms - MS_D},"C":{now_ms},"F":{t["firstId"]},'
                     f'"L":{t["lastId"]},"n":{t["count"]}')
        return [("{" + ",".join(parts) + "}").encode()]

    def _r_miniTicker(self, key: Any, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        api = self.api
        if api.tape.last_trade is None:
            return []
        t = api.ticker(mini=True)
        return [(f'{{"e":"24hrMiniTicker","E":{now_ms},"s":"{self.symbol}","c":"{t["lastPrice"]}",'
                 f'"o":"{t["openPrice"]}","h":"{t["highPrice"]}","l":"{t["lowPrice"]}","v":"{t["volume"]}",'
                 f'"q":"{t["quoteVolume"]}"}}').encode()]

    def _r_avgPrice(self, key: Any, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        a = self.api.ep_avgPrice({"symbol": self.symbol})
        if not a["closeTime"]:
            return []
        return [(f'{{"e":"avgPrice","E":{now_ms},"s":"{self.symbol}","i":"{a["mins"]}m","w":"{a["price"]}",'
                 f'"T":{a["closeTime"]}}}').encode()]

    def _r_markPrice(self, key: Any, now_ms: int, first_after: Callable, last_u: int) -> list[bytes]:
        mark = self.api.fprice(self.api.mark_price(), 8)
        return [(f'{{"e":"markPriceUpdate","E":{now_ms},"s":"{self.symbol}","p":"{mark}","i":"{mark}",'
                 f'"P":"{mark}","r":"{self.api.current_funding_rate(now_ms)}",'
                 f'"T":{funding_time_ms(now_ms, self.api.funding_interval_ms)}}}').encode()]

