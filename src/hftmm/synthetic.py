"""The synthetic BTCUSDT-like market: event arrays and Binance-format messages.

:class:`hftcore.synth.SyntheticMarket` is the compiled, seeded generator; this
module gives it a configuration dataclass, day-sized generation in chunks, and
:class:`BinanceRenderer`, which turns event records into exactly what Binance
sends (spot or USD-M): diff-depth messages aggregated over 100 ms (or real
time), trades, aggTrades and bookTickers, plus REST depth snapshots.

Units: prices in ticks and sizes in lots inside; the renderer writes decimal
strings with the instrument's tick and step sizes.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Iterator, Optional

import numpy as np

from hftcore import EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVF_END
from hftcore.book import L2Book
from hftcore.synth import SyntheticMarket

DAY_S = 86_400.0


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic market (rates per second in the calm regime,
    prices in ticks, sizes in lots). The defaults are the bundled dataset."""

    symbol: str = "BTCUSDT"
    seed: int = 20240808
    tick_size: str = "0.10"
    lot_size: str = "0.001"
    mid0_ticks: int = 618_376
    sigma0: float = 8.0
    regime_kappa: float = 1.0 / 900.0
    regime_sigma: float = 0.02
    limit_rate: float = 40.0
    cancel_rate: float = 36.0
    mkt_mu: float = 2.0
    mkt_alpha: float = 1.2
    mkt_beta: float = 2.0
    place_decay: float = 0.15
    improve_prob: float = 0.8
    size_mu: float = 3.0
    size_sigma: float = 1.2
    mkt_size_mu: float = 2.5
    mkt_size_sigma: float = 1.5
    book_levels: int = 2000
    latency_ns: float = 2_000_000.0

    def market(self, start_ns: int) -> SyntheticMarket:
        kw = {f.name: getattr(self, f.name) for f in fields(self)
              if f.name not in ("symbol", "seed", "tick_size", "lot_size")}
        return SyntheticMarket(seed=self.seed, start_ns=start_ns, tick_size=float(self.tick_size),
                               lot_size=float(self.lot_size), **kw)


def day_start_ns(date: str | _dt.date) -> int:
    """00:00 UTC of a date ("YYYY-MM-DD"), ns since epoch."""
    if isinstance(date, str):
        date = _dt.date.fromisoformat(date)
    return int(_dt.datetime(date.year, date.month, date.day, tzinfo=_dt.timezone.utc).timestamp()) * 1_000_000_000


def generate(config: SyntheticConfig = SyntheticConfig(), start_ns: int = 0, seconds: float = DAY_S,
             chunk_seconds: float = 600.0) -> Iterator[np.ndarray]:
    """Event chunks (EVENT_DTYPE) of `seconds` of synthetic market from `start_ns`:
    the first chunk is the initial snapshot. Memory stays bounded by the chunk size."""
    if start_ns == 0:
        start_ns = day_start_ns("2024-08-08")
    mkt = config.market(start_ns)
    yield mkt.initial_snapshot()
    done = 0.0
    while done < seconds:
        step = min(chunk_seconds, seconds - done)
        yield mkt.generate(step)
        done += step


def generate_day(date: str = "2024-08-08", config: Optional[SyntheticConfig] = None,
                 seconds: float = DAY_S) -> Iterator[np.ndarray]:
    """The synthetic market for one UTC day, in chunks. Each day has its own seed
    (the config's seed mixed with the date), so consecutive days differ.
    ``seconds``: only the day's first seconds (tests, benchmarks)."""
    config = config or SyntheticConfig()
    start = day_start_ns(date)
    seed = (config.seed * 1_000_003 + start // 86_400_000_000_000) & 0xFFFFFFFFFFFF
    cfg = SyntheticConfig(**{**{f.name: getattr(config, f.name) for f in fields(config)}, "seed": seed})
    return generate(cfg, start, seconds)


# ---------------------------------------------------------------------------
# Binance formats
# ---------------------------------------------------------------------------

class DecimalFormatter:
    """Integer units -> Binance decimal strings for one tick/step size."""

    def __init__(self, step: str, min_decimals: int = 0) -> None:
        d = Decimal(step).normalize()
        sign, digits, exp = d.as_tuple()
        if d <= 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        self.exponent = max(-exp, 0)
        self.mantissa = int(d.scaleb(self.exponent))
        self.decimals = max(self.exponent, min_decimals)
        self._pad = "0" * (self.decimals - self.exponent)
        self._pow = 10 ** self.exponent

    def __call__(self, units: int) -> str:
        v = int(units) * self.mantissa
        if self.exponent == 0:
            return f"{v}." + self._pad if self.decimals else str(v)
        return f"{v // self._pow}.{v % self._pow:0{self.exponent}d}{self._pad}"


@dataclass
class _Pending:
    first_id: int = -1
    last_id: int = -1
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    T: int = 0


class BinanceRenderer:
    """Event records -> Binance stream payloads, keeping the ground-truth book.

    ``feed(events)`` returns a list of ``(exch_ts_ns, channel, payload_bytes)`` in
    time order, where channel is ``"depth"``, ``"trade"``, ``"aggTrade"`` or
    ``"bookTicker"`` (the caller builds stream names such as
    ``btcusdt@depth@100ms``). Depth changes are aggregated over
    ``depth_interval_ms`` of exchange time (0 = one message per exchange
    message); spot messages carry U/u, USD-M ones also E/T/pu.
    """

    def __init__(self, symbol: str = "BTCUSDT", tick_size: str = "0.10", lot_size: str = "0.001",
                 market: str = "spot", depth_interval_ms: int = 100) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
        self.symbol = symbol.upper()
        self.market = market
        self.interval_ns = int(depth_interval_ms) * 1_000_000
        spot = market == "spot"
        self.px = DecimalFormatter(tick_size, 8 if spot else 0)
        self.qty = DecimalFormatter(lot_size, 8 if spot else 0)
        self.book = L2Book(tick_size, lot_size)
        self.last_update_id = 0          # id of the last change in the book
        self.last_emitted_u: Optional[int] = None
        self._pending = _Pending()
        self._window_end: Optional[int] = None
        self._top: tuple = (None, 0, None, 0)
        self._agg_id = 0
        self._trade_time_last = 0

    # -- snapshots -----------------------------------------------------------
    def snapshot(self, limit: int = 1000, now_ns: int = 0) -> bytes:
        """REST depth snapshot of the current book (``/api/v3/depth`` or ``/fapi/v1/depth``)."""
        bt, bq, at, aq = self.book.top(limit)
        px, qty = self.px, self.qty
        bids = ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in zip(bt.tolist(), bq.tolist()))
        asks = ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in zip(at.tolist(), aq.tolist()))
        if self.market == "spot":
            return f'{{"lastUpdateId":{self.last_update_id},"bids":[{bids}],"asks":[{asks}]}}'.encode()
        ms = now_ns // 1_000_000
        return (f'{{"lastUpdateId":{self.last_update_id},"E":{ms},"T":{ms},'
                f'"bids":[{bids}],"asks":[{asks}]}}').encode()

    # -- stream --------------------------------------------------------------
    def feed(self, events: np.ndarray) -> list[tuple[int, str, bytes]]:
        out: list[tuple[int, str, bytes]] = []
        kind = events["kind"].tolist()
        ts = events["exch_ts"].tolist()
        side = events["side"].tolist()
        px = events["px"].tolist()
        qty = events["qty"].tolist()
        fid = events["first_id"].tolist()
        lid = events["last_id"].tolist()
        flags = events["flags"].tolist()
        book = self.book
        p = self._pending
        for i in range(len(kind)):
            t = ts[i]
            if self._window_end is not None and t >= self._window_end and p.first_id >= 0:
                out.append(self._flush_depth(self._window_end))
                p = self._pending
            k = kind[i]
            if k == EV_DEPTH:
                book.apply(side[i], px[i], qty[i])
                if p.first_id < 0:
                    p.first_id = fid[i]
                    if self.interval_ns:
                        self._window_end = (t // self.interval_ns + 1) * self.interval_ns
                p.last_id = lid[i]
                p.T = t
                (p.bids if side[i] == 0 else p.asks)[px[i]] = qty[i]
                self.last_update_id = lid[i]
                if flags[i] & EVF_END:
                    top = (book.best_bid(), book.best_bid_qty(), book.best_ask(), book.best_ask_qty())
                    if top != self._top and top[0] is not None and top[2] is not None:
                        self._top = top
                        out.append((t, "bookTicker", self._book_ticker(t)))
                    if not self.interval_ns:
                        out.append(self._flush_depth(t))
                        p = self._pending
            elif k == EV_SNAPSHOT:
                if flags[i] & 1:  # BEGIN: a new snapshot replaces the book
                    book.clear()
                book.apply(side[i], px[i], qty[i])
                self.last_update_id = lid[i]
            elif k == EV_TRADE:
                out.append((t, "trade", self._trade(t, fid[i], px[i], qty[i], side[i])))
                out.append((t, "aggTrade", self._agg_trade(t, fid[i], px[i], qty[i], side[i])))
        return out

    def flush(self, now_ns: int) -> list[tuple[int, str, bytes]]:
        """Emit the pending depth window if it has ended by `now_ns`."""
        if self._pending.first_id >= 0 and (self._window_end is None or now_ns >= self._window_end):
            return [self._flush_depth(self._window_end or now_ns)]
        return []

    def _levels(self, d: dict) -> str:
        px, qty = self.px, self.qty
        return ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in d.items())

    def _flush_depth(self, t_end: int) -> tuple[int, str, bytes]:
        p = self._pending
        E = t_end // 1_000_000
        sym = self.symbol
        if self.market == "spot":
            payload = (f'{{"e":"depthUpdate","E":{E},"s":"{sym}","U":{p.first_id},"u":{p.last_id},'
                       f'"b":[{self._levels(p.bids)}],"a":[{self._levels(p.asks)}]}}')
        else:
            pu = self.last_emitted_u if self.last_emitted_u is not None else p.first_id - 1
            payload = (f'{{"e":"depthUpdate","E":{E},"T":{p.T // 1_000_000},"s":"{sym}","U":{p.first_id},'
                       f'"u":{p.last_id},"pu":{pu},"b":[{self._levels(p.bids)}],"a":[{self._levels(p.asks)}]}}')
        self.last_emitted_u = p.last_id
        self._pending = _Pending()
        self._window_end = None
        return (t_end, "depth", payload.encode())

    def _book_ticker(self, t: int) -> bytes:
        bb, bq, ba, aq = self._top
        px, qty = self.px, self.qty
        if self.market == "spot":
            return (f'{{"u":{self.last_update_id},"s":"{self.symbol}","b":"{px(bb)}","B":"{qty(bq)}",'
                    f'"a":"{px(ba)}","A":"{qty(aq)}"}}').encode()
        ms = t // 1_000_000
        return (f'{{"e":"bookTicker","u":{self.last_update_id},"s":"{self.symbol}","b":"{px(bb)}",'
                f'"B":"{qty(bq)}","a":"{px(ba)}","A":"{qty(aq)}","T":{ms},"E":{ms}}}').encode()

    def _trade(self, t: int, tid: int, price: int, lots: int, maker_side: int) -> bytes:
        ms = t // 1_000_000
        m = "true" if maker_side == 0 else "false"   # maker on the bid = buyer is maker
        if self.market == "spot":
            return (f'{{"e":"trade","E":{ms},"s":"{self.symbol}","t":{tid},"p":"{self.px(price)}",'
                    f'"q":"{self.qty(lots)}","T":{ms},"m":{m},"M":true}}').encode()
        return (f'{{"e":"trade","E":{ms},"T":{ms},"s":"{self.symbol}","t":{tid},"p":"{self.px(price)}",'
                f'"q":"{self.qty(lots)}","X":"MARKET","m":{m}}}').encode()

    def _agg_trade(self, t: int, tid: int, price: int, lots: int, maker_side: int) -> bytes:
        self._agg_id += 1
        ms = t // 1_000_000
        m = "true" if maker_side == 0 else "false"
        tail = ',"M":true' if self.market == "spot" else ""
        return (f'{{"e":"aggTrade","E":{ms},"s":"{self.symbol}","a":{self._agg_id},"p":"{self.px(price)}",'
                f'"q":"{self.qty(lots)}","f":{tid},"l":{tid},"T":{ms},"m":{m}{tail}}}').encode()
