"""Pure-Python twin of the compiled strategy core: slow, obviously right.

One class per compiled component, with the same constructor, methods and outputs:

* :class:`RefExchangeModel` -- hftcore.exchange.ExchangeModel (queue position,
  latencies, taker / market / intensity fills, fees, reports per account);
* :class:`RefTrader` -- hftcore.strategy.Trader (local order states, open lots
  per side, the position / rate / book / size / loss limits, kill and flatten);
* :class:`RefStrategy`, :class:`RefMarketMaker`, :class:`RefPyStrategy` --
  the strategy interface, the built-in AS/GLFT market maker and the adapter that
  runs a plain Python strategy object;
* :class:`RefReplayKernel` -- hftcore.backtest.ReplayKernel, the receive-order
  driver loop (read the module docstring of hftcore/backtest.pyx).

Everything that decides *what happens when* is mirrored step by step: the slot
allocation (a stack of free slots; arrivals and cancels are searched lowest slot
first, ties to the lower slot), the open-order list with its swap-remove (the
fill loops walk it backwards, the intensity model draws one number per exposed
order in that order), the report queue kept in time order by insertion from the
back, the ring of send times, the working lists kept in send order, and the float
expressions in the kernel's order of evaluation (``a * b * c * d`` is
``((a * b) * c) * d``), so fills, samples, intents and counters are bit-identical.

The twin mirrors the core as it is, defects included: the strict-xfail tests
(test_core_twin.py, test_exchange_model.py, test_trader.py) reproduce them on
both, so a fix of the core goes with the same fix here.

Units: prices in ticks, quantities in lots, times in ns, money in quote currency.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Iterable, Optional

import numpy as np

from hftmm.reference.book import RefL2Book
from hftmm.reference.quoting import Quoter
from hftmm.reference.volatility import EwmaVolatility, IntensityEstimator

__all__ = [
    "FILL_DTYPE", "SAMPLE_DTYPE", "INTENT_DTYPE", "REPORT_DTYPE", "Xoshiro256ss", "RefExchangeModel", "RefTrader",
    "RefStrategy", "RefMarketMaker", "RefPyStrategy", "RefReplayKernel", "Report", "build_reference",
    "reference_from_config",
]

# the numpy layouts of the core's records (the tests check they equal the compiled ones)
FILL_DTYPE = np.dtype([("exch_ts", "<i8"), ("report_ts", "<i8"), ("order_id", "<i8"), ("px", "<i8"),
                       ("qty", "<i8"), ("position", "<i8"), ("fee", "<f8"), ("cash", "<f8"), ("mid", "<f8"),
                       ("side", "<i8"), ("taker", "<i8"), ("submit_ts", "<i8")])
SAMPLE_DTYPE = np.dtype([("ts", "<i8"), ("mid", "<f8"), ("position", "<i8"), ("cash", "<f8"),
                         ("equity", "<f8"), ("fees", "<f8"), ("bid_px", "<i8"), ("ask_px", "<i8"),
                         ("sigma", "<f8"), ("reservation", "<f8")])
INTENT_DTYPE = np.dtype([("ts", "<i8"), ("kind", "<i4"), ("side", "<i4"), ("flags", "<i4"), ("_pad", "<i4"),
                         ("id", "<i8"), ("cancel_id", "<i8"), ("px", "<i8"), ("lots", "<i8")])
REPORT_DTYPE = np.dtype([("ts", "<i8"), ("id", "<i8"), ("kind", "<i4"), ("side", "<i4"), ("taker", "<i4"),
                         ("_pad", "<i4"), ("px", "<i8"), ("lots", "<i8"), ("leaves", "<i8"), ("fee", "<f8")])

INT64_MAX = (1 << 63) - 1
NO_BID = -(1 << 63)        # best bid of an empty side (the book's INT64_MIN)
NO_ASK = INT64_MAX         # best ask of an empty side
MASK64 = (1 << 64) - 1
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

# event kinds / flags (include/hftcore/types.h)
EV_DEPTH, EV_TRADE, EV_SNAPSHOT, EV_BBO, EV_BOOK_INVALID, EV_FUNDING = 1, 2, 3, 4, 5, 6
FUNDING_RATE_SCALE = 10_000_000_000
EVF_BEGIN, EVF_END = 0x01, 0x02

# hftcore.exchange
QUEUE_MODELS = {"risk_averse": 0, "power": 1, "log": 2}
FILL_MODELS = {"queue": 0, "intensity": 1}
Q_RISK_AVERSE, Q_POWER, Q_LOG = 0, 1, 2
FILL_QUEUE, FILL_INTENSITY = 0, 1
XM_FREE, XM_IN_FLIGHT, XM_OPEN, XM_DONE = 0, 1, 2, 3
ACK, FILL, CANCELED, REJECTED = 1, 2, 3, 4
XM_POST_ONLY, XM_MARKET = 1, 2

# hftcore.strategy
TR_FREE, TR_PENDING, TR_OPEN, TR_CANCELING = 0, 1, 2, 3
NEW, CANCEL, REPLACE = 1, 2, 3
(REFUSED_NONE, REFUSED_DISABLED, REFUSED_INVALID, REFUSED_RATE, REFUSED_POSITION, REFUSED_SIZE,
 REFUSED_SLOTS) = range(7)
KILL_NONE, KILL_DAILY_LOSS, KILL_DRAWDOWN, KILL_DRAWDOWN_ABS, KILL_EXTERNAL = range(5)
REFUSALS = {REFUSED_NONE: None, REFUSED_DISABLED: "disabled", REFUSED_INVALID: "book invalid",
            REFUSED_RATE: "rate limit", REFUSED_POSITION: "position limit", REFUSED_SIZE: "order size",
            REFUSED_SLOTS: "too many orders"}
KILL_REASONS = {KILL_NONE: None, KILL_DAILY_LOSS: "max_daily_loss", KILL_DRAWDOWN: "max_drawdown",
                KILL_DRAWDOWN_ABS: "max_drawdown_abs", KILL_EXTERNAL: "external"}
STATES = {TR_FREE: "done", TR_PENDING: "pending", TR_OPEN: "open", TR_CANCELING: "canceling"}
SLOT_BITS = 16
SLOT_MASK = (1 << 16) - 1

# hftcore.quoting
ROUND_EPS = 1e-6
TICK_LIMIT = 4.0e18


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncation toward zero; the core builds with cdivision)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _llround(x: float) -> int:
    """C llround: nearest integer, halves away from zero (Python's round() rounds
    halves to even). ``x - floor(x)`` is exact for doubles."""
    n = math.floor(x)
    r = x - n
    if r > 0.5 or (r == 0.5 and x >= 0):
        n += 1
    return int(n)


def _best_bid(book: RefL2Book) -> int:
    b = book.best_bid()
    return NO_BID if b is None else b


def _best_ask(book: RefL2Book) -> int:
    a = book.best_ask()
    return NO_ASK if a is None else a


class Xoshiro256ss:
    """xoshiro256** seeded by splitmix64, as include/hftcore/rng.h (uint64 arithmetic mod 2**64)."""

    def __init__(self, seed: int) -> None:
        self.s = []
        seed &= MASK64
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & MASK64
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK64

    def next(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def u01(self) -> float:
        """A double in (0, 1]: ((next >> 11) + 0.5) / 2**53."""
        return (float(self.next() >> 11) + 0.5) * (1.0 / 9007199254740992.0)


class Report:
    """xm_report_t: what the trader learns at ``ts``."""

    __slots__ = ("ts", "id", "kind", "side", "taker", "px", "lots", "leaves", "fee")

    def __init__(self, ts: int, id: int, kind: int, side: int, taker: int, px: int, lots: int, leaves: int,
                 fee: float) -> None:
        self.ts, self.id, self.kind, self.side, self.taker = ts, id, kind, side, taker
        self.px, self.lots, self.leaves, self.fee = px, lots, leaves, fee

    def row(self) -> tuple:
        return (self.ts, self.id, self.kind, self.side, self.taker, 0, self.px, self.lots, self.leaves, self.fee)

    def __repr__(self) -> str:
        return (f"Report(ts={self.ts}, id={self.id}, kind={self.kind}, side={self.side}, taker={self.taker}, "
                f"px={self.px}, lots={self.lots}, leaves={self.leaves}, fee={self.fee!r})")


# =========================================================================== exchange model


class _XOrder:
    """xm_order_t (one slot)."""

    __slots__ = ("id", "side", "state", "flags", "px", "qty", "leaves", "queue_ahead", "level_qty",
                 "traded_at_level", "arrive_ns", "cancel_ns", "submit_ns")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.id = 0
        self.side = 0
        self.state = XM_FREE
        self.flags = 0
        self.px = 0
        self.qty = 0
        self.leaves = 0
        self.queue_ahead = 0.0
        self.level_qty = 0
        self.traded_at_level = 0
        self.arrive_ns = 0
        self.cancel_ns = 0
        self.submit_ns = 0


class _XParams:
    __slots__ = ("tick_size", "lot_size", "entry_latency_ns", "cancel_latency_ns", "response_latency_ns",
                 "queue_model", "queue_power", "fill_model", "fill_A", "fill_k", "maker_fee", "taker_fee")

    def __init__(self, p: dict) -> None:
        if p["queue_model"] not in QUEUE_MODELS:
            raise ValueError(f"queue_model must be one of {sorted(QUEUE_MODELS)}, got {p['queue_model']!r}")
        if p["fill_model"] not in FILL_MODELS:
            raise ValueError(f"fill_model must be one of {sorted(FILL_MODELS)}, got {p['fill_model']!r}")
        for name in ("entry_latency_ns", "cancel_latency_ns", "response_latency_ns"):
            if p[name] < 0:
                raise ValueError(f"{name} must be >= 0, got {p[name]}")
        if not (p["tick_size"] > 0 and p["lot_size"] > 0):
            raise ValueError("tick_size and lot_size must be > 0")
        self.tick_size = float(p["tick_size"])
        self.lot_size = float(p["lot_size"])
        self.entry_latency_ns = int(p["entry_latency_ns"])
        self.cancel_latency_ns = int(p["cancel_latency_ns"])
        self.response_latency_ns = int(p["response_latency_ns"])
        self.queue_model = QUEUE_MODELS[p["queue_model"]]
        self.queue_power = float(p["queue_power"])
        self.fill_model = FILL_MODELS[p["fill_model"]]
        self.fill_A = float(p["fill_A"])
        self.fill_k = float(p["fill_k"])
        self.maker_fee = float(p["maker_fee"])
        self.taker_fee = float(p["taker_fee"])


class _Account:
    """xm_account_t."""

    def __init__(self, p: dict, seed: int) -> None:
        self.p = _XParams(p)
        self.fill_model = self.p.fill_model
        self.orders: list[_XOrder] = []      # slots (n_slots = len)
        self.free_slots: list[int] = []      # a stack
        self.open_idx: list[int] = []        # slots of the resting orders (swap-remove order)
        self.next_order_ns = INT64_MAX
        self.t_x = -INT64_MAX
        self.last_intensity_ns = 0
        self.rng = Xoshiro256ss(seed)
        self.position = 0
        self.cash = 0.0
        self.fees = 0.0
        self.reports: list[Report] = []      # time ordered (the ring, unrolled)
        self.fills: list[tuple] = []
        self.arrived = self.rejected = self.cancelled = self.fill_count = self.partial_fills = 0
        self.maker_lots = self.taker_lots = self.lifetime_sum_ns = self.lifetime_count = 0
        self.funding = 0.0
        self.fundings = 0
        self.open_bounds()

    def open_bounds(self) -> None:
        """Price range of the resting orders per side (empty: lo > hi)."""
        self.bid_lo, self.bid_hi, self.ask_lo, self.ask_hi = INT64_MAX, -INT64_MAX, INT64_MAX, -INT64_MAX
        for slot in self.open_idx:
            o = self.orders[slot]
            if o.side == 0:
                if o.px < self.bid_lo:
                    self.bid_lo = o.px
                if o.px > self.bid_hi:
                    self.bid_hi = o.px
            else:
                if o.px < self.ask_lo:
                    self.ask_lo = o.px
                if o.px > self.ask_hi:
                    self.ask_hi = o.px


class RefExchangeModel:
    """Twin of :class:`hftcore.exchange.ExchangeModel`: ``params`` one dict
    (:func:`hftcore.exchange.exchange_params`) or a list (one per account), ``seeds``
    one per account (default 1)."""

    def __init__(self, book: RefL2Book, params: Any, seeds: Optional[Iterable[int]] = None) -> None:
        plist = [params] if isinstance(params, dict) else list(params)
        if not plist:
            raise ValueError("at least one account")
        seeds = [1] * len(plist) if seeds is None else list(seeds)
        if len(seeds) != len(plist):
            raise ValueError(f"{len(plist)} accounts' parameters but {len(seeds)} seeds")
        self.book = book
        self.A = [_Account(p, s) for p, s in zip(plist, seeds)]
        self.n_accounts = len(self.A)
        self.t_x = -INT64_MAX
        self.next_arrival_ns = INT64_MAX

    # ------------------------------------------------------------ slots
    @staticmethod
    def _slot(a: _Account) -> int:
        if a.free_slots:
            return a.free_slots.pop()
        a.orders.append(_XOrder())
        return len(a.orders) - 1

    @staticmethod
    def _find(a: _Account, oid: int) -> int:
        for i, o in enumerate(a.orders):
            if o.id == oid and o.state in (XM_IN_FLIGHT, XM_OPEN):
                return i
        return -1

    @staticmethod
    def _done(a: _Account, slot: int) -> None:
        a.orders[slot].state = XM_FREE
        a.free_slots.append(slot)

    @staticmethod
    def _open_add(a: _Account, slot: int) -> None:
        px = a.orders[slot].px
        a.open_idx.append(slot)
        if a.orders[slot].side == 0:
            if px < a.bid_lo:
                a.bid_lo = px
            if px > a.bid_hi:
                a.bid_hi = px
        else:
            if px < a.ask_lo:
                a.ask_lo = px
            if px > a.ask_hi:
                a.ask_hi = px

    @staticmethod
    def _open_remove(a: _Account, slot: int) -> None:
        """Swap-remove: the last entry takes the removed one's place."""
        for i, s in enumerate(a.open_idx):
            if s == slot:
                last = a.open_idx.pop()
                if i < len(a.open_idx):
                    a.open_idx[i] = last
                a.open_bounds()
                return

    def _next_order(self, a: _Account) -> None:
        t = INT64_MAX
        for o in a.orders:
            if o.state == XM_IN_FLIGHT and o.arrive_ns < t:
                t = o.arrive_ns
            elif o.state == XM_OPEN and o.cancel_ns < t:
                t = o.cancel_ns
        a.next_order_ns = t
        self.next_arrival_ns = min(x.next_order_ns for x in self.A)

    # ------------------------------------------------------------ outputs
    @staticmethod
    def _report(a: _Account, ts: int, o: _XOrder, kind: int, px: int, lots: int, fee: float, taker: int) -> None:
        """Queue a report at ``ts`` keeping the queue in time order (inserted from the
        back: after every report with time <= ts)."""
        k = len(a.reports)
        while k > 0 and a.reports[k - 1].ts > ts:
            k -= 1
        a.reports.insert(k, Report(ts, o.id, kind, o.side, taker, px, lots, o.leaves, fee))

    def _mid(self, a: _Account) -> float:
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        return math.nan if (bb == NO_BID or ba == NO_ASK) else (float(bb) + float(ba)) * 0.5 * a.p.tick_size

    def _fill(self, a: _Account, slot: int, lots: int, taker: bool, px: int) -> None:
        o = a.orders[slot]
        notional = float(px) * a.p.tick_size * float(lots) * a.p.lot_size
        fee = notional * (a.p.taker_fee if taker else a.p.maker_fee)
        if o.side == 0:
            a.position += lots
            a.cash -= notional
        else:
            a.position -= lots
            a.cash += notional
        a.cash -= fee
        a.fees += fee
        o.leaves -= lots
        if taker:
            a.taker_lots += lots
        else:
            a.maker_lots += lots
        a.fill_count += 1
        if o.leaves > 0:
            a.partial_fills += 1
        report_ts = a.t_x + a.p.response_latency_ns
        a.fills.append((a.t_x, report_ts, o.id, px, lots, a.position, fee, a.cash, self._mid(a), o.side,
                        1 if taker else 0, o.submit_ns))
        self._report(a, report_ts, o, FILL, px, lots, fee, 1 if taker else 0)
        if o.leaves == 0:
            if o.state == XM_OPEN:
                self._open_remove(a, slot)
                a.lifetime_sum_ns += a.t_x - o.arrive_ns
                a.lifetime_count += 1
            o.state = XM_DONE
            self._done(a, slot)

    # ------------------------------------------------------------ orders in
    def submit_c(self, acct: int, oid: int, side: int, px: int, lots: int, flags: int, now: int) -> None:
        a = self.A[acct]
        slot = self._slot(a)
        o = a.orders[slot]
        o.clear()
        o.id = oid
        o.side = side
        o.state = XM_IN_FLIGHT
        o.flags = flags
        o.px = px
        o.qty = lots
        o.leaves = lots
        o.arrive_ns = now + a.p.entry_latency_ns
        o.cancel_ns = INT64_MAX
        o.submit_ns = now
        if o.arrive_ns < a.next_order_ns:
            a.next_order_ns = o.arrive_ns
            if o.arrive_ns < self.next_arrival_ns:
                self.next_arrival_ns = o.arrive_ns

    def cancel_c(self, acct: int, oid: int, now: int) -> int:
        a = self.A[acct]
        slot = self._find(a, oid)
        if slot < 0:
            return 0
        o = a.orders[slot]
        if o.cancel_ns != INT64_MAX:
            return 1
        t = now + a.p.cancel_latency_ns
        if o.state == XM_IN_FLIGHT and t < o.arrive_ns:
            t = o.arrive_ns
        o.cancel_ns = t
        if t < a.next_order_ns:
            a.next_order_ns = t
            if t < self.next_arrival_ns:
                self.next_arrival_ns = t
        return 1

    def advance(self, t: int) -> None:
        """Every account's arrivals and cancels with time <= t, in time order."""
        if t > self.t_x:
            self.t_x = t
        if t < self.next_arrival_ns:
            return
        for a in self.A:
            if a.next_order_ns <= t:
                self._arrivals(a, t)
        self._next_order(self.A[0])

    def advance_account(self, k: int, t: int) -> None:
        """Account k's arrivals and cancels with time <= t (the driver interleaves them)."""
        if self.A[k].next_order_ns <= t:
            self._arrivals(self.A[k], t)

    def _arrivals(self, a: _Account, upto: int) -> None:
        if a.t_x < self.t_x:
            a.t_x = self.t_x
        resp = a.p.response_latency_ns
        while True:
            best, tb = -1, INT64_MAX
            for i, o in enumerate(a.orders):
                if o.state == XM_IN_FLIGHT and o.arrive_ns <= upto and o.arrive_ns < tb:
                    best, tb = i, o.arrive_ns
                elif o.state == XM_OPEN and o.cancel_ns <= upto and o.cancel_ns < tb:
                    best, tb = i, o.cancel_ns
            if best < 0:
                self._next_order(a)
                return
            o = a.orders[best]
            a.t_x = tb                      # the order's own time at the exchange
            if o.state == XM_IN_FLIGHT and o.flags & XM_MARKET:
                a.arrived += 1
                self._sweep(a, best)
                if o.state == XM_IN_FLIGHT:       # the book did not hold it all: the rest expires
                    self._report(a, tb + resp, o, REJECTED, o.px, 0, 0.0, 0)
                    o.state = XM_DONE
                    self._done(a, best)
                continue
            if o.state == XM_IN_FLIGHT:
                a.arrived += 1
                bb, ba = _best_bid(self.book), _best_ask(self.book)
                if (o.side == 0 and ba != NO_ASK and o.px >= ba) or (o.side == 1 and bb != NO_BID and o.px <= bb):
                    if o.flags & XM_POST_ONLY:
                        a.rejected += 1
                        self._report(a, tb + resp, o, REJECTED, o.px, 0, 0.0, 0)
                        o.state = XM_DONE
                        self._done(a, best)
                        continue
                    self._take(a, best)     # one level at the opposite best; the rest rests
                    if o.state != XM_IN_FLIGHT:
                        continue
                o.state = XM_OPEN
                self._open_add(a, best)
                o.level_qty = self.book.qty_at(o.side, o.px)
                o.queue_ahead = float(o.level_qty)
                o.traded_at_level = 0
                self._report(a, tb + resp, o, ACK, o.px, 0, 0.0, 0)
            else:
                self._open_remove(a, best)
                a.lifetime_sum_ns += tb - o.arrive_ns
                a.lifetime_count += 1
                a.cancelled += 1
                o.state = XM_DONE
                self._report(a, tb + resp, o, CANCELED, o.px, 0, 0.0, 0)
                self._done(a, best)

    def _take(self, a: _Account, slot: int) -> None:
        o = a.orders[slot]
        opp = 1 - o.side
        lvl = _best_ask(self.book) if o.side == 0 else _best_bid(self.book)
        avail = self.book.qty_at(opp, lvl)
        f = o.leaves if o.leaves < avail else avail
        if f <= 0:
            return
        self._fill(a, slot, f, True, lvl)

    def _sweep(self, a: _Account, slot: int) -> None:
        """A market order: the opposite side's visible levels (at most 64), best first."""
        o = a.orders[slot]
        ticks, lots = self.book.levels(1 - o.side)
        levels = list(zip(ticks.tolist()[:64], lots.tolist()[:64]))
        if o.state != XM_IN_FLIGHT or o.leaves <= 0 or not levels:
            return
        for px, qty in levels:
            f = o.leaves if o.leaves < qty else qty
            if f > 0:
                self._fill(a, slot, f, True, px)
            if o.state != XM_IN_FLIGHT:
                return

    # ------------------------------------------------------------ market events
    def on_event(self, e: tuple, t_x: int) -> None:
        """``e`` = (local_ts, exch_ts, px, qty, kind, side, flags), already applied to the book."""
        _, _, px, qty, kind, side, flags = e
        if t_x > self.t_x:
            self.t_x = t_x
        if kind == EV_DEPTH:
            bb = ba = 0
            if flags & EVF_END:
                bb, ba = _best_bid(self.book), _best_ask(self.book)
            for a in self.A:
                if not a.open_idx:
                    continue
                a.t_x = self.t_x
                if a.fill_model == FILL_QUEUE:
                    if (a.bid_lo <= px <= a.bid_hi) if side == 0 else (a.ask_lo <= px <= a.ask_hi):
                        self._on_depth(a, px, qty, side)
                    if (flags & EVF_END) and ((ba != NO_ASK and ba <= a.bid_hi) or (bb != NO_BID and bb >= a.ask_lo)):
                        self._check_cross(a, bb, ba)
                elif flags & EVF_END:
                    self._intensity_fills(a, a.t_x)
        elif kind == EV_TRADE:
            for a in self.A:
                if a.open_idx and a.fill_model == FILL_QUEUE and ((side == 0 and a.bid_hi >= px)
                                                                  or (side == 1 and a.ask_lo <= px)):
                    a.t_x = self.t_x
                    self._on_trade(a, px, qty, side)
        elif kind == EV_SNAPSHOT:
            if flags & EVF_END:
                self.on_snapshot_end()

    def on_snapshot_end(self) -> None:
        for a in self.A:
            for slot in a.open_idx:
                o = a.orders[slot]
                o.level_qty = self.book.qty_at(o.side, o.px)
                o.traded_at_level = 0

    def _on_trade(self, a: _Account, px: int, qty: int, side: int) -> None:
        for j in range(len(a.open_idx) - 1, -1, -1):     # backwards: a fill swap-removes the current entry
            slot = a.open_idx[j]
            o = a.orders[slot]
            if o.side != side:
                continue
            if (o.side == 0 and o.px > px) or (o.side == 1 and o.px < px):
                self._fill(a, slot, o.leaves, False, o.px)       # traded through our price
            elif o.px == px:
                o.traded_at_level += qty
                o.queue_ahead -= float(qty)
                if o.queue_ahead < 0:
                    over = -o.queue_ahead
                    o.queue_ahead = 0.0
                    f = int(over)                                # C truncation
                    if f > o.leaves:
                        f = o.leaves
                    if f > 0:
                        self._fill(a, slot, f, False, o.px)

    @staticmethod
    def _qf(model: int, n: float, x: float) -> float:
        if x <= 0:
            return 0.0
        if model == Q_LOG:
            return math.log(1.0 + x)
        try:
            return x ** n                                        # C pow()
        except OverflowError:
            return math.inf

    def _on_depth(self, a: _Account, px: int, qty: int, side: int) -> None:
        """Queue update of our orders at the level (before the crossing check)."""
        for slot in a.open_idx:                                  # forwards: nothing is removed here
            o = a.orders[slot]
            if o.side != side or o.px != px:
                continue
            prev = o.level_qty
            o.level_qty = qty
            chg = float(prev - qty - o.traded_at_level)         # the decrease trades do not explain
            o.traded_at_level = 0
            if chg > 0 and a.p.queue_model != Q_RISK_AVERSE:
                front = o.queue_ahead
                back = float(prev) - front
                if back < 0:
                    back = 0.0
                fb = self._qf(a.p.queue_model, a.p.queue_power, back)
                ff = self._qf(a.p.queue_model, a.p.queue_power, front)
                pr = fb / (fb + ff) if fb + ff > 0 else 0.5
                est = front - (1.0 - pr) * chg
                if back - pr * chg < 0:
                    est += back - pr * chg
                if est < 0:
                    est = 0.0
                o.queue_ahead = est
            if o.queue_ahead > float(qty):
                o.queue_ahead = float(qty)

    def _check_cross(self, a: _Account, bb: int, ba: int) -> None:
        for j in range(len(a.open_idx) - 1, -1, -1):
            slot = a.open_idx[j]
            o = a.orders[slot]
            if (o.side == 0 and ba != NO_ASK and ba <= o.px) or (o.side == 1 and bb != NO_BID and bb >= o.px):
                self._fill(a, slot, o.leaves, False, o.px)

    def _intensity_fills(self, a: _Account, now: int) -> None:
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        prev = a.last_intensity_ns
        if prev == 0:
            a.last_intensity_ns = now
            return
        a.last_intensity_ns = now
        if now <= prev or bb == NO_BID or ba == NO_ASK:
            return
        mid = (float(bb) + float(ba)) * 0.5
        for j in range(len(a.open_idx) - 1, -1, -1):
            slot = a.open_idx[j]
            o = a.orders[slot]
            since = prev if prev > o.arrive_ns else o.arrive_ns
            if since >= now:
                continue
            dt = float(now - since) * 1e-9
            delta = abs(float(o.px) - mid) * a.p.tick_size
            lam = a.p.fill_A * math.exp(-a.p.fill_k * delta)
            if a.rng.u01() < 1.0 - math.exp(-lam * dt):
                self._fill(a, slot, o.leaves, False, o.px)

    # ------------------------------------------------------------ reports out
    def next_report_ts(self, acct: int) -> int:
        r = self.A[acct].reports
        return r[0].ts if r else INT64_MAX

    def pop_report(self, acct: int, upto: int) -> Optional[Report]:
        r = self.A[acct].reports
        if not r or r[0].ts > upto:
            return None
        return r.pop(0)

    def funding(self, mark_price: float, rate: float) -> None:
        if rate == 0.0 or not (mark_price > 0):
            return
        for a in self.A:
            if a.position == 0:
                continue
            paid = float(a.position) * a.p.lot_size * mark_price * rate
            a.cash -= paid
            a.funding += paid
            a.fundings += 1

    def equity(self, acct: int, mid_price: float) -> float:
        a = self.A[acct]
        return a.cash + float(a.position) * a.p.lot_size * mid_price

    # ------------------------------------------------------------ Python API (as the compiled one)
    def _acct(self, acct: int) -> _Account:
        if acct < 0 or acct >= self.n_accounts:
            raise IndexError(f"account {acct} out of range (0..{self.n_accounts - 1})")
        return self.A[acct]

    def submit(self, acct: int, oid: int, side: int, px: int, lots: int, post_only: bool = True, now: int = 0) -> None:
        a = self._acct(acct)
        if side not in (0, 1):
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        if self._find(a, oid) >= 0:
            raise ValueError(f"ExchangeModel: order id {oid} is already live on this account")
        self.submit_c(acct, oid, side, px, lots, XM_POST_ONLY if post_only else 0, now)

    def cancel(self, acct: int, oid: int, now: int = 0) -> bool:
        self._acct(acct)
        return bool(self.cancel_c(acct, oid, now))

    def apply_to_book(self, e: tuple) -> None:
        _, _, px, qty, kind, side, flags = e
        if kind == EV_DEPTH:
            self.book.apply(side, px, qty)
        elif kind == EV_SNAPSHOT:
            if flags & EVF_BEGIN:
                self.book.clear()
            self.book.apply(side, px, qty)

    def process(self, events: np.ndarray) -> None:
        """As ExchangeModel.process: per record, advance to its exchange time (a
        running maximum), apply it to the book, match it."""
        for e in _events(events):
            x = e[1] if e[1] > 0 else e[0]
            if x < self.t_x:
                x = self.t_x
            self.advance(x)
            self.apply_to_book(e)
            self.on_event(e, x)

    def take_reports(self, acct: int = 0, upto: int = INT64_MAX) -> np.ndarray:
        self._acct(acct)
        out = []
        while True:
            r = self.pop_report(acct, upto)
            if r is None:
                break
            out.append(r.row())
        return np.array(out, dtype=REPORT_DTYPE) if out else np.empty(0, dtype=REPORT_DTYPE)

    def take_fills(self, acct: int = 0) -> np.ndarray:
        a = self._acct(acct)
        out = np.array(a.fills, dtype=FILL_DTYPE) if a.fills else np.empty(0, dtype=FILL_DTYPE)
        a.fills = []
        return out

    def position(self, acct: int = 0) -> int:
        return self._acct(acct).position

    def cash(self, acct: int = 0) -> float:
        return self._acct(acct).cash

    def fees(self, acct: int = 0) -> float:
        return self._acct(acct).fees

    def open_orders(self, acct: int = 0) -> list:
        a = self._acct(acct)
        return [(a.orders[s].id, a.orders[s].side, a.orders[s].px, a.orders[s].leaves, a.orders[s].queue_ahead)
                for s in a.open_idx]

    def counters(self, acct: int = 0) -> dict:
        a = self._acct(acct)
        return {"arrived": a.arrived, "rejected": a.rejected, "cancelled": a.cancelled, "fills": a.fill_count,
                "partial_fills": a.partial_fills, "maker_lots": a.maker_lots, "taker_lots": a.taker_lots,
                "lifetime_sum_ns": a.lifetime_sum_ns, "lifetime_count": a.lifetime_count,
                "funding": a.funding, "fundings": a.fundings}


def _events(events: np.ndarray) -> list[tuple]:
    """EVENT_DTYPE records as (local_ts, exch_ts, px, qty, kind, side, flags) tuples of Python ints."""
    arr = np.asarray(events)
    if arr.dtype.names is None or arr.dtype.names[:4] != ("local_ts", "exch_ts", "px", "qty") \
            or arr.dtype.itemsize != 64:
        raise TypeError("events must be hftcore.EVENT_DTYPE records")
    return list(zip(arr["local_ts"].tolist(), arr["exch_ts"].tolist(), arr["px"].tolist(), arr["qty"].tolist(),
                    arr["kind"].tolist(), arr["side"].tolist(), arr["flags"].tolist()))


# =========================================================================== trader


class _TOrder:
    """tr_order_t."""

    __slots__ = ("id", "side", "state", "flags", "px", "qty", "filled", "created_ns")

    def __init__(self) -> None:
        self.id = 0
        self.side = 0
        self.state = TR_FREE
        self.flags = 0
        self.px = 0
        self.qty = 0
        self.filled = 0
        self.created_ns = 0


class _Limits:
    __slots__ = ("tick_size", "lot_size", "max_lots", "max_sends", "min_lots", "max_order_lots", "min_notional",
                 "max_daily_loss", "max_drawdown", "max_drawdown_abs", "capital", "flatten_on_kill", "max_notional")


class RefTrader:
    """Twin of :class:`hftcore.strategy.Trader`; ``limits``: :func:`hftcore.strategy.trader_limits`."""

    def __init__(self, limits: dict) -> None:
        L = limits
        lim = self.lim = _Limits()
        lim.tick_size = float(L["tick_size"])
        lim.lot_size = float(L["lot_size"])
        lim.max_lots = int(L.get("max_lots", 0))
        lim.max_sends = int(L.get("max_sends", 0))
        lim.min_lots = int(max(1, L.get("min_lots", 1)))
        lim.max_order_lots = int(L.get("max_order_lots", 0))
        lim.min_notional = float(L.get("min_notional", 0.0))
        lim.max_daily_loss = float(L.get("max_daily_loss", 0.0))
        lim.max_drawdown = float(L.get("max_drawdown", 0.0))
        lim.max_drawdown_abs = float(L.get("max_drawdown_abs", 0.0))
        lim.capital = float(L.get("capital", 10_000.0))
        lim.flatten_on_kill = 1 if L.get("flatten_on_kill", True) else 0
        lim.max_notional = float(L.get("max_notional", 0.0))
        if not (lim.tick_size > 0 and lim.lot_size > 0):
            raise ValueError("tick_size and lot_size must be > 0")
        if lim.max_sends > 1_000_000:
            raise ValueError("max_sends must be <= 1000000 (or <= 0: no limit)")
        self.orders: list[_TOrder] = []          # slots (n_slots = len)
        self.free_slots: list[int] = []
        self.work: list[list[int]] = [[], []]    # live, not cancelling orders per side, in send order
        self.seq = 1
        self.out: list[tuple] = []               # intents (INTENT_DTYPE rows)
        # the last max_sends send times (the ring: appended at the tail, the head dropped when full)
        self.sends: deque[int] = deque(maxlen=lim.max_sends if lim.max_sends > 0 else None)
        self.position = 0
        self.cash = 0.0
        self.fees = 0.0
        self.olots = [0, 0]
        self.book_valid = True
        self.enabled = True
        self.killed = False
        self.kill_reason = KILL_NONE
        self.kill_ns = -1
        self.last_refusal = REFUSED_NONE
        self.now = 0
        self._day = -1
        self._day_start_pnl = 0.0
        self._peak_pnl = 0.0
        self.last_pnl = math.nan
        self._marked = False
        self._inherited = 0
        self.sent = self.replaces = self.cancels = self.fills = self.rejects = self.sent_lots = 0
        self.refused_disabled = self.refused_invalid = self.refused_rate = self.refused_position = 0
        self.refused_size = self.refused_slots = 0
        self.lifetime_sum_ns = self.lifetime_count = 0
        self.funding = 0.0
        self.fundings = 0

    # ------------------------------------------------------------ bookkeeping
    def get_c(self, oid: int) -> Optional[_TOrder]:
        slot = oid & SLOT_MASK
        if oid <= 0 or slot >= len(self.orders):
            return None
        o = self.orders[slot]
        if o.id != oid or o.state == TR_FREE:
            return None
        return o

    def _work(self, side: int, slot: int) -> None:
        self.work[side].append(slot)

    def _unwork(self, side: int, slot: int) -> None:
        w = self.work[side]
        if slot in w:
            w.remove(slot)              # keeps the order of sending

    def _release(self, slot: int, now: int) -> None:
        o = self.orders[slot]
        if o.state in (TR_PENDING, TR_OPEN):
            self._unwork(o.side, slot)
        self.olots[o.side] -= o.qty - o.filled
        self.lifetime_sum_ns += now - o.created_ns
        self.lifetime_count += 1
        o.state = TR_FREE
        self.free_slots.append(slot)

    def _intent(self, ts: int, kind: int, side: int, flags: int, oid: int, cancel_id: int, px: int, lots: int) -> None:
        self.out.append((ts, kind, side, flags, 0, oid, cancel_id, px, lots))

    def _sent_now(self, now: int) -> None:
        if self.lim.max_sends <= 0:
            return
        self.sends.append(now)

    # ------------------------------------------------------------ limits
    def room_c(self, side: int) -> int:
        if self.lim.max_lots <= 0:
            return INT64_MAX
        if side == 0:
            return self.lim.max_lots - self.position - self.olots[0]
        return self.lim.max_lots + self.position - self.olots[1]

    def budget_c(self, now: int) -> int:
        m = self.lim.max_sends
        if m <= 0:
            return INT64_MAX
        return m - sum(1 for t in self.sends if t > now - NS_PER_S)

    def _admit(self, side: int, px: int, lots: int, now: int) -> int:
        m = self.lim.max_sends
        if not self.enabled:
            self.last_refusal = REFUSED_DISABLED
            self.refused_disabled += 1
            return 0
        if not self.book_valid:
            self.last_refusal = REFUSED_INVALID
            self.refused_invalid += 1
            return 0
        if m > 0 and len(self.sends) == m and self.sends[0] > now - NS_PER_S:
            self.last_refusal = REFUSED_RATE
            self.refused_rate += 1
            return 0
        room = self.room_c(side)
        if lots > room:
            lots = room
        if self.lim.max_notional > 0 and px > 0:
            nl = int(self.lim.max_notional / (float(px) * self.lim.tick_size * self.lim.lot_size))
            room = (nl - self.position - self.olots[0]) if side == 0 else (nl + self.position - self.olots[1])
            if lots > room:
                lots = room
        if lots <= 0:
            self.last_refusal = REFUSED_POSITION
            self.refused_position += 1
            return 0
        if self.lim.max_order_lots > 0 and lots > self.lim.max_order_lots:
            lots = self.lim.max_order_lots
        if lots < self.lim.min_lots or (self.lim.min_notional > 0 and float(px) * self.lim.tick_size
                                        * float(lots) * self.lim.lot_size < self.lim.min_notional):
            self.last_refusal = REFUSED_SIZE
            self.refused_size += 1
            return 0
        self.last_refusal = REFUSED_NONE
        return lots

    def _open(self, side: int, px: int, lots: int, flags: int, now: int) -> int:
        if self.free_slots:
            slot = self.free_slots.pop()
        else:
            if len(self.orders) > SLOT_MASK:
                self.last_refusal = REFUSED_SLOTS
                self.refused_slots += 1
                return 0
            self.orders.append(_TOrder())
            slot = len(self.orders) - 1
        o = self.orders[slot]
        o.id = (self.seq << SLOT_BITS) | slot
        self.seq += 1
        o.side = side
        o.state = TR_PENDING
        o.flags = flags
        o.px = px
        o.qty = lots
        o.filled = 0
        o.created_ns = now
        self.olots[side] += lots
        if not (flags & XM_MARKET):
            self._work(side, slot)
        self._sent_now(now)
        self.sent += 1
        self.sent_lots += lots
        return o.id

    def new_c(self, side: int, px: int, lots: int, flags: int, now: int) -> int:
        lots = self._admit(side, px, lots, now)
        if lots <= 0:
            return 0
        oid = self._open(side, px, lots, flags, now)
        if oid:
            self._intent(now, NEW, side, flags, oid, 0, px, lots)
        return oid

    def cancel_c(self, oid: int, now: int) -> int:
        o = self.get_c(oid)
        if o is None or o.state not in (TR_PENDING, TR_OPEN):
            return 0
        self._unwork(o.side, oid & SLOT_MASK)
        o.state = TR_CANCELING
        self.cancels += 1
        self._intent(now, CANCEL, o.side, o.flags, oid, 0, o.px, o.qty - o.filled)
        return 1

    def replace_c(self, oid: int, px: int, lots: int, now: int) -> int:
        o = self.get_c(oid)
        if o is None or o.state not in (TR_PENDING, TR_OPEN):
            return 0
        side, flags = o.side, o.flags
        lots = self._admit(side, px, lots, now)
        if lots <= 0:
            return 0
        self._unwork(side, oid & SLOT_MASK)
        o.state = TR_CANCELING
        nid = self._open(side, px, lots, flags, now)
        if nid == 0:
            o.state = TR_OPEN                   # (no slot left: nothing was done)
            self._work(side, oid & SLOT_MASK)
            return 0
        self.replaces += 1
        self.cancels += 1
        self._intent(now, REPLACE, side, flags, nid, oid, px, lots)
        return nid

    def cancel_all_c(self, now: int) -> int:
        n = 0
        for s in (0, 1):
            while self.work[s]:
                n += self.cancel_c(self.orders[self.work[s][0]].id, now)
        return n

    def n_working_c(self, side: int) -> int:
        return len(self.work[side])

    def working_c(self, side: int, i: int) -> _TOrder:
        return self.orders[self.work[side][i]]

    # ------------------------------------------------------------ reports, risk
    def on_report_c(self, r: Report) -> int:
        o = self.get_c(r.id)
        if o is None:
            return 0
        slot = r.id & SLOT_MASK
        if r.kind == ACK:
            if o.state == TR_PENDING:
                o.state = TR_OPEN
        elif r.kind == FILL:
            o.filled += r.lots
            self.olots[o.side] -= r.lots
            notional = float(r.px) * self.lim.tick_size * float(r.lots) * self.lim.lot_size
            if o.side == 0:
                self.position += r.lots
                self.cash -= notional
            else:
                self.position -= r.lots
                self.cash += notional
            self.cash -= r.fee
            self.fees += r.fee
            self.fills += 1
            if o.state == TR_PENDING:
                o.state = TR_OPEN
            if r.leaves <= 0 or o.filled >= o.qty:
                self._release(slot, r.ts)
        elif r.kind in (CANCELED, REJECTED):
            if r.kind == REJECTED:
                self.rejects += 1
            self._release(slot, r.ts)
        return 1

    def mark_c(self, now: int, mid_price: float) -> None:
        if not (mid_price > 0):
            return
        if self._inherited:
            self.cash -= float(self._inherited) * self.lim.lot_size * mid_price
            self._inherited = 0
        pnl = self.cash + float(self.position) * self.lim.lot_size * mid_price
        day = _cdiv(now, NS_PER_DAY)
        if not self._marked:
            self._marked = True
            self._day, self._day_start_pnl, self._peak_pnl = day, pnl, pnl
        elif day > self._day:
            self._day, self._day_start_pnl = day, self.last_pnl
        self.last_pnl = pnl
        if pnl > self._peak_pnl:
            self._peak_pnl = pnl
        if self.killed:
            return
        lim = self.lim
        if lim.max_daily_loss > 0 and self._day_start_pnl - pnl >= lim.max_daily_loss:
            self.kill_c(KILL_DAILY_LOSS, now)
            return
        peak_equity = lim.capital + self._peak_pnl
        if lim.max_drawdown > 0 and (peak_equity <= 0 or (self._peak_pnl - pnl) / peak_equity >= lim.max_drawdown):
            self.kill_c(KILL_DRAWDOWN, now)
            return
        if lim.max_drawdown_abs > 0 and self._peak_pnl - pnl >= lim.max_drawdown_abs:
            self.kill_c(KILL_DRAWDOWN_ABS, now)

    def kill_c(self, reason: int, now: int) -> None:
        first = not self.killed
        if first:
            self.killed = True
            self.kill_reason = reason
            self.kill_ns = now
        self.enabled = False
        self.cancel_all_c(now)
        if first and self.lim.flatten_on_kill:
            self.flatten_c(now)

    def flatten_c(self, now: int) -> int:
        lots = self.position if self.position > 0 else -self.position
        side = 1 if self.position > 0 else 0
        if lots == 0:
            return 0
        oid = self._open(side, 0, lots, XM_MARKET, now)
        if oid:
            self._intent(now, NEW, side, XM_MARKET, oid, 0, 0, lots)
        return oid

    def set_book_valid_c(self, valid: bool, now: int) -> None:
        self.book_valid = bool(valid)
        if not valid:
            self.cancel_all_c(now)

    # ------------------------------------------------------------ Python API (as the compiled one)
    def _now(self, now: Optional[int]) -> int:
        return self.now if now is None else now

    def new(self, side: int, px: int, lots: int, post_only: bool = True, now: Optional[int] = None) -> int:
        if side not in (0, 1):
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        return self.new_c(side, px, lots, XM_POST_ONLY if post_only else 0, self._now(now))

    def cancel(self, oid: int, now: Optional[int] = None) -> bool:
        return bool(self.cancel_c(oid, self._now(now)))

    def replace(self, oid: int, px: int, lots: int, now: Optional[int] = None) -> int:
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        return self.replace_c(oid, px, lots, self._now(now))

    def cancel_all(self, now: Optional[int] = None) -> int:
        return self.cancel_all_c(self._now(now))

    def working(self, side: int) -> list:
        return [(o.id, o.px, o.qty, o.filled) for o in (self.orders[s] for s in self.work[side & 1])]

    def order(self, oid: int) -> Optional[dict]:
        o = self.get_c(oid)
        if o is None:
            return None
        return {"id": o.id, "side": o.side, "state": STATES[o.state], "px": o.px, "qty": o.qty,
                "filled": o.filled, "created_ns": o.created_ns, "post_only": bool(o.flags & XM_POST_ONLY)}

    def room(self, side: int) -> int:
        return self.room_c(side & 1)

    def budget(self, now: Optional[int] = None) -> int:
        return self.budget_c(self._now(now))

    def open_lots(self, side: int) -> int:
        return self.olots[side & 1]

    def on_report(self, ts: int, oid: int, kind: int, px: int = 0, lots: int = 0, leaves: int = 0, fee: float = 0.0,
                  taker: bool = False) -> bool:
        o = self.get_c(oid)
        r = Report(ts, oid, kind, o.side if o is not None else 0, 1 if taker else 0, px, lots, leaves, float(fee))
        return bool(self.on_report_c(r))

    def take_intents(self) -> np.ndarray:
        out = np.array(self.out, dtype=INTENT_DTYPE) if self.out else np.empty(0, dtype=INTENT_DTYPE)
        self.out = []
        return out

    def mark(self, now: int, mid_price: float) -> None:
        self.mark_c(now, float(mid_price))

    def kill(self, now: Optional[int] = None, flatten: Optional[bool] = None) -> None:
        keep = self.lim.flatten_on_kill
        if flatten is not None:
            self.lim.flatten_on_kill = 1 if flatten else 0
        self.kill_c(KILL_EXTERNAL, self._now(now))
        self.lim.flatten_on_kill = keep

    def flatten(self, now: Optional[int] = None) -> int:
        return self.flatten_c(self._now(now))

    def pause(self, paused: bool, now: Optional[int] = None) -> None:
        if paused:
            self.enabled = False
            self.cancel_all_c(self._now(now))
        else:
            self.enabled = not self.killed

    def set_book_valid(self, valid: bool, now: Optional[int] = None) -> None:
        self.set_book_valid_c(valid, self._now(now))

    def inherit_position(self, lots: int) -> None:
        self.position = lots
        self._inherited = lots

    @property
    def daily_loss(self) -> float:
        return 0.0 if not self._marked else self._day_start_pnl - self.last_pnl

    @property
    def drawdown(self) -> float:
        return 0.0 if not self._marked else self._peak_pnl - self.last_pnl

    @property
    def refusal(self) -> Optional[str]:
        return REFUSALS[self.last_refusal]

    @property
    def kill_reason_name(self) -> Optional[str]:
        return KILL_REASONS[self.kill_reason]

    @property
    def limits(self) -> dict:
        L = self.lim
        return dict(tick_size=L.tick_size, lot_size=L.lot_size, max_lots=L.max_lots, max_sends=L.max_sends,
                    min_lots=L.min_lots, max_order_lots=L.max_order_lots, min_notional=L.min_notional,
                    max_daily_loss=L.max_daily_loss, max_drawdown=L.max_drawdown,
                    max_drawdown_abs=L.max_drawdown_abs, capital=L.capital, flatten_on_kill=bool(L.flatten_on_kill),
                    max_notional=L.max_notional)

    def counters(self) -> dict:
        return {"sent": self.sent, "replaces": self.replaces, "cancels": self.cancels, "fills": self.fills,
                "rejects": self.rejects, "sent_lots": self.sent_lots, "refused_disabled": self.refused_disabled,
                "refused_invalid": self.refused_invalid, "refused_rate": self.refused_rate,
                "refused_position": self.refused_position, "refused_size": self.refused_size,
                "refused_slots": self.refused_slots, "lifetime_sum_ns": self.lifetime_sum_ns,
                "lifetime_count": self.lifetime_count, "killed": bool(self.killed),
                "kill_reason": KILL_REASONS[self.kill_reason], "kill_ns": self.kill_ns,
                "funding": self.funding, "fundings": self.fundings}

    def funding_c(self, mark_price: float, rate: float) -> float:
        if self.position == 0 or rate == 0.0 or not (mark_price > 0):
            return 0.0
        paid = float(self.position) * self.lim.lot_size * mark_price * rate
        self.cash -= paid
        self.funding += paid
        self.fundings += 1
        return paid

    apply_funding = funding_c


# =========================================================================== strategies


class RefStrategy:
    """Twin of :class:`hftcore.strategy.Strategy`: every callback does nothing."""

    def __init__(self) -> None:
        self.trader: Any = None
        self.book: Any = None
        self.timer_interval_ns = 0
        self.last_sigma = math.nan
        self.last_reservation = math.nan
        self.quotes = 0

    def on_start(self, now: int) -> None:
        pass

    def on_book(self, now: int) -> None:
        pass

    def on_trade(self, now: int, side: int, px: int, qty: int) -> None:
        pass

    def on_report(self, now: int, r: Report) -> None:
        pass

    def on_book_invalid(self, now: int) -> None:
        pass

    def on_timer(self, now: int) -> None:
        pass


class RefPyStrategy(RefStrategy):
    """Twin of :class:`hftcore.strategy.PyStrategy`: runs a plain Python strategy
    object (methods on_start, on_book, on_trade, on_fill, on_order_done,
    on_book_invalid, on_timer, each optional; ``timer_interval`` [s])."""

    def __init__(self, impl: Any) -> None:
        super().__init__()
        self.impl = impl
        self.timer_interval_ns = int(round(float(getattr(impl, "timer_interval", 0.0) or 0.0) * 1e9))

    def _call(self, name: str, *args: Any) -> None:
        f = getattr(self.impl, name, None)
        if f is not None:
            f(*args)

    def on_start(self, now: int) -> None:
        self.impl.trader = self.trader
        self.impl.book = self.book
        self._call("on_start", now)

    def on_book(self, now: int) -> None:
        self._call("on_book", now)

    def on_trade(self, now: int, side: int, px: int, qty: int) -> None:
        self._call("on_trade", now, side, px, qty)

    def on_report(self, now: int, r: Report) -> None:
        if r.kind == FILL:
            self._call("on_fill", now, r.id, r.side, r.px, r.lots)
        if r.kind != ACK and (r.kind != FILL or r.leaves <= 0):
            self._call("on_order_done", now, r.id,
                       "filled" if r.kind == FILL else ("canceled" if r.kind == CANCELED else "rejected"))

    def on_book_invalid(self, now: int) -> None:
        self._call("on_book_invalid", now)

    def on_timer(self, now: int) -> None:
        self._call("on_timer", now)


class _QuoteOut:
    __slots__ = ("bid_tick", "ask_tick", "bid_ok", "ask_ok", "reservation_price", "spread", "fair_value")


def compute_quote_fv(qp: Quoter, best_bid: int, best_ask: int, fair_ticks: float, sigma: float, q: float,
                     t_ns: int) -> Optional[_QuoteOut]:
    """Twin of hftcore.quoting.compute_quote_fv (None where it returns -1): the
    quote around ``fair_ticks`` with the constants of the twin Quoter ``qp``."""
    has_bid, has_ask = best_bid != NO_BID, best_ask != NO_ASK
    if has_bid and has_ask and best_bid >= best_ask:
        return None
    if not (-TICK_LIMIT < fair_ticks < TICK_LIMIT):
        return None
    s = fair_ticks
    if not (0.0 <= sigma < math.inf) or not (-math.inf < q < math.inf):
        return None
    out = _QuoteOut()
    var = sigma * sigma
    if qp.model == "as":
        if qp.rolling:
            tau = qp.horizon_s
        else:
            rem = t_ns % qp.horizon_ns          # (C: remainder, then + T when negative -- the same)
            tau = qp.horizon_s - float(rem) * 1e-9
        skew = qp.gamma * var * tau
        r = s - q * skew * qp.inv_tick
        spread = skew + qp.as_const
        half = 0.5 * spread * qp.inv_tick
        bid_f = r - half
        ask_f = r + half
        out.reservation_price = r * qp.tick_size
    else:
        sc2 = sigma * qp.c2
        db = qp.c1 + (2.0 * q + qp.order_qty) * 0.5 * sc2
        da = qp.c1 - (2.0 * q - qp.order_qty) * 0.5 * sc2
        bid_f = s - db * qp.inv_tick
        ask_f = s + da * qp.inv_tick
        spread = db + da
        out.reservation_price = (bid_f + ask_f) * 0.5 * qp.tick_size
    out.spread = spread
    out.fair_value = s * qp.tick_size
    if ask_f - bid_f < qp.min_spread_ticks:
        c = (bid_f + ask_f) * 0.5
        bid_f = c - 0.5 * qp.min_spread_ticks
        ask_f = c + 0.5 * qp.min_spread_ticks
    if not (-TICK_LIMIT < bid_f < TICK_LIMIT and -TICK_LIMIT < ask_f < TICK_LIMIT):
        return None
    bt = math.floor(bid_f + ROUND_EPS)
    at = math.ceil(ask_f - ROUND_EPS)
    if has_ask and bt > best_ask - 1:
        bt = best_ask - 1
    if has_bid and at < best_bid + 1:
        at = best_bid + 1
    if bt >= at:
        at = bt + 1
    out.bid_tick = bt
    out.ask_tick = at
    band = qp.price_band * s
    out.bid_ok = bt >= 1 and s - float(bt) <= band and not (q + qp.order_qty - qp.max_inventory > qp.inv_eps)
    out.ask_ok = at >= 1 and float(at) - s <= band and not (-qp.max_inventory - (q - qp.order_qty) > qp.inv_eps)
    return out


class RefMarketMaker(RefStrategy):
    """Twin of :class:`hftcore.strategy.MarketMaker`; ``params``:
    :func:`hftcore.strategy.market_maker_params`."""

    def __init__(self, params: dict) -> None:
        super().__init__()
        p = params
        if p["model"] not in ("as", "glft"):
            raise ValueError(f"model must be 'as' or 'glft', got {p['model']!r}")
        if p["fair_value"] not in ("mid", "micro"):
            raise ValueError(f"fair_value must be 'mid' or 'micro', got {p['fair_value']!r}")
        self.qp = Quoter(model=p["model"], gamma=p["gamma"], k=p["k"], A=p["A"], horizon_s=p["horizon_s"],
                         rolling=bool(p["rolling"]), fair_value=p["fair_value"], tick_size=p["tick_size"],
                         min_spread=p["min_spread"], max_inventory=p["max_inventory"],
                         order_qty=p["order_lots"] * p["lot_size"], xi=p["xi"], price_band=p["price_band"])
        self.qp.horizon_ns = _llround(self.qp.horizon_s * 1e9)        # llround, as quote_params_init
        self.tick_size = float(p["tick_size"])
        self.order_lots = int(p["order_lots"])
        if self.order_lots <= 0:
            raise ValueError("order_lots must be > 0")
        self.requote_interval_ns = int(p["requote_interval_ns"])
        self.requote_threshold = int(p["requote_threshold"])
        self.min_lifetime_ns = int(p["min_lifetime_ns"])
        self.inventory_sizing = bool(p["inventory_sizing"])
        self.post_only = bool(p["post_only"])
        self.vol_half_life_s = float(p["vol_half_life_s"])
        self.estimate_intensity = bool(p["estimate_intensity"])
        self.intensity_window_s = float(p["intensity_window_s"])
        self.intensity_fit_ns = int(p["intensity_fit_ns"])
        self.vol = EwmaVolatility(self.vol_half_life_s)
        self.vol_owner = True
        self.inten: Optional[IntensityEstimator] = None
        self.inten_owner = self.estimate_intensity
        if self.estimate_intensity:
            self.inten = IntensityEstimator(self.intensity_window_s, self.tick_size, 50, 20)
            self.inten.window_ns = _llround(self.inten.window_s * 1e9)  # llround, as intensity_init
        self.last_mid_ticks = math.nan
        self.next_quote_ns = 0
        self.next_fit_ns = 0
        self.last_served = 1
        self.budget_short = 0
        self.prior_sigma = float(p.get("prior_sigma", 0.0))

    def share_estimators(self, other: "RefMarketMaker") -> bool:
        if other is self:
            return False
        shared = False
        if self.vol_owner and other.vol_owner and other.vol_half_life_s == self.vol_half_life_s:
            self.vol = other.vol
            self.vol_owner = False
            shared = True
        if (self.estimate_intensity and self.inten_owner and other.inten_owner
                and other.vol_half_life_s == self.vol_half_life_s
                and other.intensity_window_s == self.intensity_window_s
                and other.intensity_fit_ns == self.intensity_fit_ns
                and other.requote_interval_ns == self.requote_interval_ns):
            self.inten = other.inten
            self.inten_owner = False
            shared = True
        return shared

    def fair_value(self, bb: int, ba: int, bq: int, aq: int) -> float:
        """Ticks: the micro-price (bid x askQty + ask x bidQty) / (bidQty + askQty), or the mid."""
        if self.qp.fair_value == "micro" and bq >= 0 and aq >= 0:
            tot = bq + aq
            if tot > 0:
                return (float(bb) * float(aq) + float(ba) * float(bq)) / float(tot)
        return (float(bb) + float(ba)) * 0.5

    def on_book(self, now: int) -> None:
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        if bb == NO_BID or ba == NO_ASK:
            return
        mid = (float(bb) + float(ba)) * 0.5
        if mid != self.last_mid_ticks:
            self.last_mid_ticks = mid
            if self.vol_owner:
                self.vol.update(now, mid)
        if now >= self.next_quote_ns:
            self.next_quote_ns = now + self.requote_interval_ns
            self.quote(now)

    def on_trade(self, now: int, side: int, px: int, qty: int) -> None:
        if not self.inten_owner or not self.trader.book_valid:
            return
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        if bb != NO_BID and ba != NO_ASK:
            self.inten.on_trade(now, px, bb + ba)

    def size(self, side: int) -> int:
        lots, m = self.order_lots, self.trader.lim.max_lots
        if self.inventory_sizing and m > 0:
            adding = float(self.trader.position) / float(m)
            if side == 1:
                adding = -adding
            if adding > 0:
                if adding > 1.0:
                    adding = 1.0
                lots = int(float(lots) * (1.0 - adding))
                if lots < 1:
                    lots = 1
        return lots

    def quote(self, now: int) -> None:
        tr = self.trader
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        if bb == NO_BID or ba == NO_ASK or bb >= ba:
            return
        if self.vol.count < 1 and not (self.prior_sigma > 0):
            return
        if self.estimate_intensity and now >= self.next_fit_ns:
            self.next_fit_ns = now + self.intensity_fit_ns
            if self.inten_owner:
                self.inten.fit(now)
            if self.inten.ready and self.inten.k_per_tick > 0:
                try:
                    self.qp.set_intensity(self.inten.A, self.inten.k_per_tick / self.qp.tick_size)
                except ValueError:
                    pass            # the core ignores the error code: the parameters stay
        rel = self.vol.sigma if self.vol.count >= 1 else self.prior_sigma
        sigma = rel * (float(bb) + float(ba)) * 0.5 * self.qp.tick_size
        self.last_sigma = sigma
        q = float(tr.position) * tr.lim.lot_size
        out = compute_quote_fv(self.qp, bb, ba, self.fair_value(bb, ba, self.book.best_bid_qty(),
                                                                self.book.best_ask_qty()), sigma, q, now)
        if out is None:
            return
        self.quotes += 1
        self.last_reservation = out.reservation_price
        # what each side needs: 0 nothing, 1 a new order, 2 moving the working one
        need, want, dist, wid = [0, 0], [0, 0], [0, 0], [0, 0]
        n_need = 0
        for side in (0, 1):
            ok = out.bid_ok if side == 0 else out.ask_ok
            px = out.bid_tick if side == 0 else out.ask_tick
            want[side] = px
            while tr.n_working_c(side) > 1:                       # never two working orders a side
                tr.cancel_c(tr.working_c(side, 0).id, now)
            w = tr.working_c(side, 0) if tr.n_working_c(side) else None
            if not ok:
                if w is not None:
                    tr.cancel_c(w.id, now)
                continue
            if w is None:
                need[side] = 1
            else:
                dist[side] = w.px - px if w.px > px else px - w.px
                if dist[side] >= self.requote_threshold and \
                        (self.min_lifetime_ns <= 0 or now - w.created_ns >= self.min_lifetime_ns):
                    need[side] = 2
                    wid[side] = w.id
            if need[side]:
                n_need += 1
        if n_need == 0:
            return
        # the order-rate budget: when it cannot serve both, a fair share
        first = 0
        budget = tr.budget_c(now)
        if n_need == 2 and budget < 2:
            self.budget_short += 1
            if need[0] != need[1]:
                first = 0 if need[0] == 1 else 1                  # a side with nothing working first
            elif dist[0] != dist[1]:
                first = 0 if dist[0] > dist[1] else 1             # then the side further from its quote
            else:
                first = 1 - self.last_served                      # else they take turns
        for k in (0, 1):
            side = first if k == 0 else 1 - first
            if not need[side]:
                continue
            if budget <= 0:
                break                                             # keeps its working order
            budget -= 1
            if n_need == 2:
                self.last_served = side
            if need[side] == 1:
                tr.new_c(side, want[side], self.size(side), XM_POST_ONLY if self.post_only else 0, now)
            else:
                nid = tr.replace_c(wid[side], want[side], self.size(side), now)
                if nid == 0 and tr.last_refusal != REFUSED_RATE:
                    tr.cancel_c(wid[side], now)                   # it may not stay where the quote left it

    @property
    def sigma(self) -> float:
        return self.last_sigma

    @property
    def intensity(self) -> tuple[float, float]:
        return self.qp.A, self.qp.k

    @property
    def vol_observations(self) -> int:
        return self.vol.count


# =========================================================================== the driver loop


class RefReplayKernel:
    """Twin of :class:`hftcore.backtest.ReplayKernel` (same constructor and outputs).

    ``agents``: [(strategy, trader), ...] (:class:`RefStrategy` subclasses,
    :class:`RefTrader`); ``exchange``: a :class:`RefExchangeModel` over ``book``
    with one account per agent, or None (intents stay in the traders)."""

    def __init__(self, book: RefL2Book, agents: Any, exchange: Optional[RefExchangeModel] = None,
                 feed_latency_ns: int = -1, sample_interval_ns: int = NS_PER_S, record_intents: bool = False) -> None:
        agents = [(a[0], a[1]) for a in agents]
        n = len(agents)
        if n == 0:
            raise ValueError("at least one agent (strategy, trader)")
        if exchange is not None:
            if exchange.book is not book:
                raise ValueError("the exchange model must work on the kernel's book")
            if exchange.n_accounts != n:
                raise ValueError(f"the exchange model has {exchange.n_accounts} accounts for {n} agents")
        for s, t in agents:
            if s is None or t is None:
                raise TypeError("agents are (Strategy, Trader) pairs")
        self.book = book
        self.exchange = exchange
        self._agents = agents
        self.n_agents = n
        self.feed_latency_ns = int(feed_latency_ns)
        self.sample_interval_ns = int(sample_interval_ns)
        self.record = bool(record_intents)
        for s, t in agents:
            s.trader = t
            s.book = book
        self.next_sample = [INT64_MAX] * n
        self.next_timer = [INT64_MAX] * n
        self.samples: list[list[tuple]] = [[] for _ in range(n)]
        self.log: list[list[tuple]] = [[] for _ in range(n)]
        self.rlog: list[list[Any]] = [[] for _ in range(n)]
        self.t_x = -INT64_MAX
        self.t_l = -INT64_MAX
        self.started = False
        self.book_ok = True
        self.invalid_since = -1
        self.events = 0
        self.book_invalid = 0
        self.book_invalid_acc = 0

    # ------------------------------------------------------------ local items
    def _visible(self, x: int, local_ts: int) -> int:
        return local_ts if self.feed_latency_ns < 0 else x + self.feed_latency_ns

    def _start(self, e: tuple) -> None:
        x = e[1] if e[1] > 0 else e[0]
        l = self._visible(x, e[0])
        if l < x:
            l = x
        self.started = True
        for k, (s, t) in enumerate(self._agents):
            if self.sample_interval_ns > 0:
                self.next_sample[k] = (_cdiv(x, self.sample_interval_ns) + 1) * self.sample_interval_ns
            t.now = l
            s.on_start(l)
            if s.timer_interval_ns > 0:
                self.next_timer[k] = l + s.timer_interval_ns
            self._flush(k)

    def _flush(self, k: int) -> None:
        """Agent k's intents to the exchange model (and to the log)."""
        t = self._agents[k][1]
        if not t.out or self.exchange is None:
            return              # live: the Python layer drains them
        if self.record:
            self.log[k].extend(t.out)
        for it in t.out:
            ts, kind, side, flags, _, oid, cancel_id, px, lots = it
            if kind == NEW:
                self.exchange.submit_c(k, oid, side, px, lots, flags, ts)
            elif kind == CANCEL:
                self.exchange.cancel_c(k, oid, ts)
            elif kind == REPLACE:
                self.exchange.cancel_c(k, cancel_id, ts)
                self.exchange.submit_c(k, oid, side, px, lots, flags, ts)
        t.out = []

    def _sample(self, k: int, ts: int) -> None:
        s, t = self._agents[k]
        bb, ba = _best_bid(self.book), _best_ask(self.book)
        tick, lot = t.lim.tick_size, t.lim.lot_size
        mid = math.nan if (bb == NO_BID or ba == NO_ASK) else (float(bb) + float(ba)) * 0.5 * tick
        if self.exchange is not None:
            a = self.exchange.A[k]
            position, cash, fees = a.position, a.cash, a.fees
        else:
            position, cash, fees = t.position, t.cash, t.fees
        equity = cash + float(position) * lot * mid
        bid_px = t.working_c(0, t.n_working_c(0) - 1).px if t.n_working_c(0) else -1
        ask_px = t.working_c(1, t.n_working_c(1) - 1).px if t.n_working_c(1) else -1
        self.samples[k].append((ts, mid, position, cash, equity, fees, bid_px, ask_px, s.last_sigma,
                                s.last_reservation))

    def _local_until(self, upto: int, xlim: int, slim: int) -> None:
        """Every agent's reports and timers with time < upto and samples with time <
        min(upto, slim), in time order (ties: samples, reports, timers), interleaved
        with the agent's arrivals at the exchange with time < upto and <= xlim
        (first at equal times); a report made late is heard at the visible clock."""
        xm = self.exchange
        slim = min(slim, upto)
        moved = False
        for k, (s, t) in enumerate(self._agents):
            while True:
                tr_ts = xm.next_report_ts(k) if xm is not None else INT64_MAX
                ts_s = self.next_sample[k] if self.next_sample[k] < slim else INT64_MAX
                ts = ts_s
                if tr_ts < ts:
                    ts = tr_ts
                if self.next_timer[k] < ts:
                    ts = self.next_timer[k]
                if xm is not None:
                    ta = xm.A[k].next_order_ns
                    if ta <= ts and ta < upto and ta <= xlim:
                        xm.advance_account(k, ta)
                        moved = True
                        continue
                if ts >= upto:
                    break
                if ts == ts_s:
                    self._sample(k, ts)
                    self.next_sample[k] += self.sample_interval_ns
                elif ts == tr_ts:
                    r = xm.pop_report(k, ts)
                    if self.record:
                        self.rlog[k].append(r)
                    if ts < self.t_l:
                        ts = self.t_l
                    t.now = ts
                    if t.on_report_c(r):
                        s.on_report(ts, r)
                        self._flush(k)
                else:
                    t.now = ts
                    self.next_timer[k] += s.timer_interval_ns
                    s.on_timer(ts)
                    self._flush(k)
        if moved:
            xm._next_order(xm.A[0])

    # ------------------------------------------------------------ one event
    def _step(self, e: tuple) -> None:
        local_ts, exch_ts, px, qty, kind, side, flags = e
        x = exch_ts if exch_ts > 0 else local_ts
        if not self.started:
            self._start(e)
        if x < self.t_x:
            x = self.t_x
        l = self._visible(x, local_ts)
        if l < x:
            l = x
        if l < self.t_l:
            l = self.t_l
        # 0. local items and our arrivals before the exchange time; 1. our arrivals at it
        self._local_until(x, x, x)
        if self.exchange is not None:
            self.exchange.advance(x)
        self.t_x = x
        # 2. the book; 3. the exchange model's matching
        if kind == EV_DEPTH:
            self.book.apply(side, px, qty)
        elif kind == EV_SNAPSHOT:
            if flags & EVF_BEGIN:
                self.book.clear()
            self.book.apply(side, px, qty)
        if self.exchange is not None:
            self.exchange.on_event(e, x)
        # 4. reports and timers before the visible time; 5. the strategies
        self._local_until(l, x, x)
        self.t_l = l
        self.events += 1
        if kind == EV_DEPTH or kind == EV_SNAPSHOT:
            if kind == EV_SNAPSHOT and (flags & EVF_BEGIN) and not self.book_ok:
                self.book_ok = True                 # a snapshot ends an invalid stretch
                self.book_invalid_acc += l - self.invalid_since
                self.invalid_since = -1
                for _, t in self._agents:
                    t.set_book_valid_c(True, l)
            if not (flags & EVF_END) or not self.book_ok:
                return
            bb, ba = _best_bid(self.book), _best_ask(self.book)
            if bb == NO_BID or ba == NO_ASK:
                return
            mid = (float(bb) + float(ba)) * 0.5
            for k, (s, t) in enumerate(self._agents):
                t.now = l
                t.mark_c(l, mid * t.lim.tick_size)
                s.on_book(l)
                self._flush(k)
        elif kind == EV_TRADE:
            for k, (s, t) in enumerate(self._agents):
                t.now = l
                s.on_trade(l, side, px, qty)
                self._flush(k)
        elif kind == EV_FUNDING:
            mark = float(px)
            if not (mark > 0):
                bb, ba = _best_bid(self.book), _best_ask(self.book)
                if bb == NO_BID or ba == NO_ASK:
                    return
                mark = (float(bb) + float(ba)) * 0.5
            rate = float(qty) / float(FUNDING_RATE_SCALE)
            if self.exchange is not None:
                self.exchange.funding(mark * self.exchange.A[0].p.tick_size, rate)
            for _, t in self._agents:
                t.now = l
                t.funding_c(mark * t.lim.tick_size, rate)
        elif kind == EV_BOOK_INVALID:
            self.book_invalid += 1
            if self.book_ok:
                self.book_ok = False
                self.invalid_since = l
            for k, (s, t) in enumerate(self._agents):
                t.now = l
                t.set_book_valid_c(False, l)
                s.on_book_invalid(l)
                self._flush(k)

    # ------------------------------------------------------------ Python API
    def run(self, events: np.ndarray) -> int:
        ev = _events(events)
        for e in ev:
            self._step(e)
        return len(ev)

    def advance_local(self, now: int) -> None:
        if not self.started:
            return
        self._local_until(now, self.t_x, self.t_x)

    def drain(self, end_ns: int) -> None:
        if not self.started:
            return
        for k in range(self.n_agents):
            self._flush(k)
        self._local_until(end_ns + 1, end_ns, end_ns + 1)
        if self.exchange is not None:
            self.exchange.advance(end_ns)
        self._local_until(end_ns + 1, end_ns, end_ns + 1)

    def finish(self, end_ns: int) -> None:
        if not self.started:
            return
        self._local_until(end_ns + 1, end_ns, end_ns + 1)
        for k in range(self.n_agents):
            if self.sample_interval_ns > 0 and self.next_sample[k] - self.sample_interval_ns < end_ns:
                self._sample(k, end_ns)

    def _check(self, i: int) -> None:
        if i < 0 or i >= self.n_agents:
            raise IndexError(f"agent {i} out of range (0..{self.n_agents - 1})")

    def take_samples(self, i: int = 0) -> np.ndarray:
        self._check(i)
        s = self.samples[i]
        self.samples[i] = []
        return np.array(s, dtype=SAMPLE_DTYPE) if s else np.empty(0, dtype=SAMPLE_DTYPE)

    def take_fills(self, i: int = 0) -> np.ndarray:
        self._check(i)
        if self.exchange is None:
            return np.empty(0, dtype=FILL_DTYPE)
        return self.exchange.take_fills(i)

    def take_intents(self, i: int = 0) -> np.ndarray:
        self._check(i)
        s = self.log[i]
        self.log[i] = []
        return np.array(s, dtype=INTENT_DTYPE) if s else np.empty(0, dtype=INTENT_DTYPE)

    def take_reports(self, i: int = 0) -> np.ndarray:
        """The reports delivered since the last call (record_intents; REPORT_DTYPE)."""
        from hftcore.exchange import REPORT_DTYPE

        self._check(i)
        r, self.rlog[i] = self.rlog[i], []
        return np.array([(x.ts, x.id, x.kind, x.side, x.taker, 0, x.px, x.lots, x.leaves, x.fee) for x in r],
                        dtype=REPORT_DTYPE)

    def agent(self, i: int = 0) -> tuple:
        self._check(i)
        return self._agents[i]

    @property
    def book_invalid_ns(self) -> int:
        return self.book_invalid_acc + (self.t_l - self.invalid_since if self.invalid_since >= 0 else 0)

    @property
    def book_valid(self) -> bool:
        return bool(self.book_ok)

    @property
    def clock(self) -> tuple[int, int]:
        return self.t_x, self.t_l

    def counters(self, i: int = 0) -> dict:
        self._check(i)
        st, tr = self._agents[i]
        c = dict(tr.counters())
        if self.exchange is not None:
            c.update(self.exchange.counters(i))
        c.update(quotes=st.quotes, events=self.events, book_invalid=self.book_invalid,
                 book_invalid_ns=self.book_invalid_ns)
        return c


# =========================================================================== from configs


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def reference_from_config(config: Any, tick: float, lot: float, market: Optional[str] = "spot") -> tuple:
    """The three parameter dicts of one BacktestConfig, derived from its fields here
    (independently of hftmm.strategy.core, whose mapping the differential tests so
    check too): (market maker params, trader limits, exchange params)."""
    from hftcore.exchange import exchange_params
    from hftcore.strategy import market_maker_params, trader_limits

    s, r, x = config.strategy, config.risk, config.exchange
    lots = max(int(round(s.order_size / lot)), 1)
    mm = market_maker_params(
        tick, lot, lots, model=s.model, gamma=s.gamma, xi=s.xi, k=s.k, A=s.A, horizon_s=s.time_horizon,
        rolling=s.rolling_horizon, fair_value=s.fair_value, min_spread=s.min_spread,
        max_inventory=r.max_position if r.max_position > 0 else math.inf, price_band=s.price_band,
        requote_interval_ns=_ns(s.quote_refresh_interval), requote_threshold=s.requote_threshold,
        min_lifetime_ns=_ns(s.min_order_lifetime), inventory_sizing=s.inventory_sizing, post_only=s.post_only,
        vol_half_life_s=s.ewma_half_life, estimate_intensity=s.estimate_intensity,
        intensity_window_s=s.intensity_window, intensity_fit_ns=_ns(s.intensity_refit))
    limits = trader_limits(
        tick, lot, max_lots=int(math.floor(r.max_position / lot + 1e-9)) if r.max_position > 0 else 0,
        max_sends=int(math.floor(r.max_orders_per_second)) if r.max_orders_per_second is not None else 0,
        max_daily_loss=r.max_daily_loss, max_drawdown=r.max_drawdown, max_drawdown_abs=r.max_drawdown_abs or 0.0,
        capital=r.initial_capital, flatten_on_kill=r.flatten_on_kill, max_notional=r.max_notional)
    maker, taker = x.fees(market or "spot")
    xp = exchange_params(tick, lot, entry_latency_ns=_ns(x.order_latency), cancel_latency_ns=_ns(x.cancel_latency),
                         response_latency_ns=_ns(x.response_latency), queue_model=x.queue_model,
                         queue_power=x.queue_power, fill_model=x.fill_model, fill_A=x.fill_A, fill_k=x.fill_k,
                         maker_fee=maker, taker_fee=taker)
    return mm, limits, xp


def build_reference(configs: list, tick_size: str, lot_size: str, market: Optional[str] = "spot",
                    record_intents: bool = False) -> RefReplayKernel:
    """Twin of hftmm.backtesting.engine.build_kernel: one agent per config -- the
    market maker, its trader and its exchange account -- over one book; equal
    estimators shared."""
    if not configs:
        raise ValueError("at least one config")
    tick, lot = float(tick_size), float(lot_size)
    book = RefL2Book(tick, lot)
    parts = [reference_from_config(c, tick, lot, market) for c in configs]
    strategies = [RefMarketMaker(mm) for mm, _, _ in parts]
    for i, s in enumerate(strategies):
        for j in range(i):
            s.share_estimators(strategies[j])
    traders = [RefTrader(limits) for _, limits, _ in parts]
    xm = RefExchangeModel(book, [xp for _, _, xp in parts], [c.seed for c in configs])
    c0 = configs[0]
    return RefReplayKernel(book, list(zip(strategies, traders)), xm,
                           -1 if c0.feed_latency is None else _ns(c0.feed_latency), _ns(c0.sample_interval),
                           record_intents)
