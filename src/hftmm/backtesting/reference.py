"""Pure-Python twin of :class:`hftcore.backtest.ReplayKernel`: slow, obviously right.

The same loop as the compiled kernel (read the module docstring of
``hftcore/backtest.pyx`` for the semantics), written for clarity: a list of
:class:`Order` objects, two :class:`~hftmm.reference.book.RefL2Book` books, the
pure-Python twins of the quoting, volatility and intensity kernels, a deque of
reports. Everything that decides *what happens when* is mirrored step by step:

* the merge of the exchange clock and the strategy clock (both running maxima)
  and its tie rules;
* the eight order slots and the order in which they are searched (lowest slot
  first), and the list of open orders with its swap-remove (the fill loops walk
  it backwards, and the intensity model draws one random number per open order
  in that order);
* the float expressions in the kernel's order of evaluation (``a * b * c * d``
  is ``((a * b) * c) * d``), so fills, samples and counters are bit-identical;
* the xoshiro256** generator seeded by splitmix64.

Tests (``tests/test_backtest_reference.py``) check that the kernel and this
twin give identical fills, samples, counters and final state.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hftmm.reference.book import RefL2Book
from hftmm.reference.quoting import Quoter
from hftmm.reference.volatility import EwmaVolatility, IntensityEstimator

# the numpy layouts of the kernel's records (tests check they equal the kernel's)
FILL_DTYPE = np.dtype([("exch_ts", "<i8"), ("report_ts", "<i8"), ("order_id", "<i8"), ("px", "<i8"),
                       ("qty", "<i8"), ("position", "<i8"), ("fee", "<f8"), ("cash", "<f8"), ("mid", "<f8"),
                       ("side", "<i8"), ("taker", "<i8"), ("submit_ts", "<i8")])
SAMPLE_DTYPE = np.dtype([("ts", "<i8"), ("mid", "<f8"), ("position", "<i8"), ("cash", "<f8"),
                         ("equity", "<f8"), ("fees", "<f8"), ("bid_px", "<i8"), ("ask_px", "<i8"),
                         ("sigma", "<f8"), ("reservation", "<f8")])

INT64_MAX = (1 << 63) - 1
NO_BID = -(1 << 63)        # best bid of an empty side (the book's INT64_MIN)
NO_ASK = INT64_MAX         # best ask of an empty side
MASK64 = (1 << 64) - 1

# event kinds / flags (include/hftcore/types.h)
EV_DEPTH, EV_TRADE, EV_SNAPSHOT, EV_BBO, EV_BOOK_INVALID = 1, 2, 3, 4, 5
EVF_BEGIN, EVF_END = 0x01, 0x02

MAX_ORDERS = 8
QUEUE_MODELS = {"risk_averse": 0, "power": 1, "log": 2}
FILL_MODELS = {"queue": 0, "intensity": 1}
Q_RISK_AVERSE, Q_POWER, Q_LOG = 0, 1, 2
FILL_QUEUE, FILL_INTENSITY = 0, 1

# exchange-side order states
FREE, IN_FLIGHT, OPEN, DONE = 0, 1, 2, 3
# the strategy's view of an order (0: never used)
L_WORKING, L_CANCELING, L_GONE = 1, 2, 3

REPORT_FILL, REPORT_DONE = 0, 1


def _llround(x: float) -> int:
    """C llround: nearest integer, halves away from zero (Python's round() is
    banker's rounding). ``x - floor(x)`` is exact for doubles."""
    n = math.floor(x)
    r = x - n
    if r > 0.5 or (r == 0.5 and x >= 0):
        n += 1
    return int(n)


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncation toward zero; the kernel builds with cdivision)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class Xoshiro256ss:
    """xoshiro256** seeded with splitmix64, as the kernel (uint64 arithmetic mod 2**64)."""

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

    def u01(self) -> float:
        """A double in (0, 1]: ((result >> 11) + 0.5) / 2**53. (The + 0.5 rounds
        to 2**53 for the largest 53-bit value, so 1.0 is possible; harmless: a
        draw of 1.0 never fills.)"""
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return (float(result >> 11) + 0.5) * (1.0 / 9007199254740992.0)


@dataclass
class Order:
    """One order slot (bt_order_t)."""

    id: int = 0
    side: int = 0                 # 0 buy (bid), 1 sell (ask)
    state: int = FREE             # exchange side: FREE / IN_FLIGHT / OPEN / DONE
    local: int = 0                # strategy side: 0 (never used) / L_WORKING / L_CANCELING / L_GONE
    px: int = 0                   # ticks
    qty: int = 0                  # lots
    leaves: int = 0               # lots
    queue_ahead: float = 0.0      # lots ahead of us at our price (estimate)
    traded_at_level: int = 0      # lots traded at our price since the level's last depth update
    arrive_ns: int = 0            # exchange arrival of the new order
    cancel_ns: int = 0            # exchange arrival of our cancel (INT64_MAX: none)
    submit_ns: int = 0            # local submit time
    known_filled: int = 0         # lots the strategy has been told are filled


@dataclass
class Event:
    """One EVENT_DTYPE record (the fields the loop uses)."""

    local_ts: int
    exch_ts: int
    px: int
    qty: int
    kind: int
    side: int
    flags: int


@dataclass
class Report:
    """Something the exchange tells the strategy at ``ts``: a fill (signed lots)
    or that the order in ``slot`` is done (filled, cancelled or rejected)."""

    ts: int
    lots: int
    slot: int
    kind: int


class ReferenceReplay:
    """Same constructor, methods and outputs as :class:`hftcore.backtest.ReplayKernel`."""

    def __init__(self, params: dict, quote: dict, seed: int = 1) -> None:
        p = params
        self.tick_size = float(p["tick_size"])
        self.lot_size = float(p["lot_size"])
        self.order_lots = int(p["order_lots"])
        self.max_lots = int(p.get("max_lots", 0))   # <= 0: no position limit
        self.max_sends = int(p.get("max_orders_per_s", 0))   # <= 0: no order-rate limit
        self.sends: deque[int] = deque()             # submit times of the last second, ns
        self.entry_latency_ns = int(p["entry_latency_ns"])
        self.cancel_latency_ns = int(p["cancel_latency_ns"])
        self.response_latency_ns = int(p["response_latency_ns"])
        self.feed_latency_ns = int(p["feed_latency_ns"])       # < 0: the data's local_ts
        self.queue_model = QUEUE_MODELS[p["queue_model"]]
        self.queue_power = float(p["queue_power"])
        self.fill_model = FILL_MODELS[p["fill_model"]]
        self.maker_fee = float(p["maker_fee"])
        self.taker_fee = float(p["taker_fee"])
        self.post_only = bool(p["post_only"])
        self.requote_interval_ns = int(p["requote_interval_ns"])
        self.requote_threshold = int(p["requote_threshold"])
        self.sample_interval_ns = int(p["sample_interval_ns"])
        self.estimate_intensity = bool(p["estimate_intensity"])
        self.intensity_fit_ns = int(p["intensity_fit_ns"])
        self.fill_A = float(p["fill_A"])
        self.fill_k = float(p["fill_k"])
        if self.order_lots <= 0:
            raise ValueError("order_lots must be > 0")
        q = quote
        # the kernel maps anything but "as" to GLFT and anything but "mid" to micro
        self.quoter = Quoter(model="as" if q["model"] == "as" else "glft", gamma=q["gamma"], k=q["k"], A=q["A"],
                             horizon_s=q["horizon_s"], rolling=bool(q["rolling"]),
                             fair_value="mid" if q["fair_value"] == "mid" else "micro",
                             tick_size=q["tick_size"], min_spread=q["min_spread"],
                             max_inventory=q["max_inventory"], order_qty=q["order_qty"], xi=q["xi"])
        self.quoter.horizon_ns = _llround(self.quoter.horizon_s * 1e9)   # llround, as quote_params_init
        self.vol = EwmaVolatility(float(p["vol_half_life_s"]))
        self.inten: Optional[IntensityEstimator] = None
        if self.estimate_intensity:
            self.inten = IntensityEstimator(float(p["intensity_window_s"]), self.tick_size, 50, 20)
            self.inten.window_ns = _llround(self.inten.window_s * 1e9)     # llround, as intensity_init
        self.xbook = RefL2Book(self.tick_size, self.lot_size)   # the exchange's book
        self.sbook = RefL2Book(self.tick_size, self.lot_size)   # the strategy's book
        self.orders = [Order() for _ in range(MAX_ORDERS)]
        self.open_idx: list[int] = []     # slots of the orders resting at the exchange (swap-remove order)
        self.rng = Xoshiro256ss(seed)
        # exchange side
        self.t_x = -INT64_MAX             # exchange clock (running max)
        self.t_l = -INT64_MAX             # strategy clock (running max)
        self.position = 0                 # lots (exchange truth)
        self.cash = 0.0
        self.fees = 0.0
        self.next_id = 1
        self.last_intensity_ns = 0
        self.next_order_ns = INT64_MAX    # earliest pending arrival/cancel (a lower bound)
        # strategy side
        self.known_position = 0           # lots, as reported
        self.next_quote_ns = 0
        self.next_fit_ns = 0
        self.next_sample_ns = 0
        self.last_mid_ticks = math.nan
        self.last_sigma = math.nan
        self.last_reservation = math.nan
        self.started = False
        # outputs
        self.fills: list[tuple] = []
        self.samples: list[tuple] = []
        self.reports: deque[Report] = deque()
        # counters
        self.events = 0
        self.orders_submitted = 0
        self.orders_rejected = 0
        self.orders_cancelled = 0
        self.cancels_sent = 0
        self.fill_count = 0
        self.partial_fills = 0
        self.quotes = 0
        self.slots_exhausted = 0
        self.risk_blocked = 0
        self.rate_blocked = 0
        self.book_invalid = 0          # BOOK_INVALID records seen (strategy side)
        self.book_invalid_ns = 0       # closed stretches of an invalid book, ns
        self.invalid_since = -1        # -1: the book is valid
        self.submitted_lots = 0
        self.maker_lots = 0
        self.taker_lots = 0
        self.lifetime_sum_ns = 0
        self.lifetime_count = 0

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _best_bid(book: RefL2Book) -> int:
        b = book.best_bid()
        return NO_BID if b is None else b

    @staticmethod
    def _best_ask(book: RefL2Book) -> int:
        a = book.best_ask()
        return NO_ASK if a is None else a

    def _mid_price(self) -> float:
        """Exchange mid in price units, NaN if a side is empty."""
        bb, ba = self._best_bid(self.xbook), self._best_ask(self.xbook)
        if bb == NO_BID or ba == NO_ASK:
            return math.nan
        return (float(bb) + float(ba)) * 0.5 * self.tick_size

    def _open_add(self, slot: int) -> None:
        self.open_idx.append(slot)

    def _open_remove(self, slot: int) -> None:
        """Swap-remove: the last entry takes the removed one's place (the kernel's
        order of open orders decides the order of fills and random draws)."""
        for i, s in enumerate(self.open_idx):
            if s == slot:
                last = self.open_idx.pop()
                if i < len(self.open_idx):
                    self.open_idx[i] = last
                return

    # ------------------------------------------------------------ outputs
    def _push_fill(self, slot: int, lots: int, taker: bool, px: Optional[int] = None) -> None:
        """A fill of ``lots`` of the order in ``slot`` at the exchange clock; ``px``
        overrides the order's price (a taker fill at the opposite best)."""
        o = self.orders[slot]
        fill_px = o.px if px is None else px
        notional = float(fill_px) * self.tick_size * float(lots) * self.lot_size
        fee = notional * (self.taker_fee if taker else self.maker_fee)
        if o.side == 0:
            self.position += lots
            self.cash -= notional
        else:
            self.position -= lots
            self.cash += notional
        self.cash -= fee
        self.fees += fee
        o.leaves -= lots
        if taker:
            self.taker_lots += lots
        else:
            self.maker_lots += lots
        self.fill_count += 1
        if o.leaves > 0:
            self.partial_fills += 1
        report_ts = self.t_x + self.response_latency_ns
        self.fills.append((self.t_x, report_ts, o.id, fill_px, lots, self.position, fee, self.cash,
                           self._mid_price(), o.side, 1 if taker else 0, o.submit_ns))
        self.reports.append(Report(report_ts, lots if o.side == 0 else -lots, slot, REPORT_FILL))
        if o.leaves == 0:
            o.state = DONE
            self._open_remove(slot)
            self.lifetime_sum_ns += self.t_x - o.arrive_ns
            self.lifetime_count += 1
            self.reports.append(Report(report_ts, 0, slot, REPORT_DONE))

    def _report(self, ts: int, lots: int, slot: int, kind: int) -> None:
        self.reports.append(Report(ts, lots, slot, kind))

    def _sample(self, ts: int) -> None:
        mid = self._mid_price()
        bid_px = ask_px = -1
        for o in self.orders:             # slot order: the last working order of a side wins
            if o.local == L_WORKING:
                if o.side == 0:
                    bid_px = o.px
                else:
                    ask_px = o.px
        equity = self.cash + float(self.position) * self.lot_size * mid
        self.samples.append((ts, mid, self.position, self.cash, equity, self.fees, bid_px, ask_px,
                             self.last_sigma, self.last_reservation))

    # ------------------------------------------------------------ exchange side
    def _order_arrivals(self, upto: int) -> None:
        """Our new orders and cancels that reach the exchange at <= upto, in time
        order (ties: the lowest slot first)."""
        if upto < self.next_order_ns:
            return
        while True:
            best, tb = -1, INT64_MAX
            for i, o in enumerate(self.orders):
                if o.state == IN_FLIGHT and o.arrive_ns <= upto and o.arrive_ns < tb:
                    best, tb = i, o.arrive_ns
                elif o.state == OPEN and o.cancel_ns <= upto and o.cancel_ns < tb:
                    best, tb = i, o.cancel_ns
            if best < 0:
                self._update_next_order()
                return
            o = self.orders[best]
            if tb > self.t_x:
                self.t_x = tb
            if o.state == IN_FLIGHT:
                self._arrive(best)
            else:
                o.state = DONE
                self._open_remove(best)
                self.lifetime_sum_ns += self.t_x - o.arrive_ns
                self.lifetime_count += 1
                self.orders_cancelled += 1
                self._report(self.t_x + self.response_latency_ns, 0, best, REPORT_DONE)

    def _arrive(self, slot: int) -> None:
        """A new order reaches the exchange (at t_x): rejected if post-only and
        crossing, else it takes what crosses and the rest joins the back of its level."""
        o = self.orders[slot]
        bb, ba = self._best_bid(self.xbook), self._best_ask(self.xbook)
        crosses = (o.side == 0 and ba != NO_ASK and o.px >= ba) or \
                  (o.side == 1 and bb != NO_BID and o.px <= bb)
        if crosses:
            if self._post_only(o):
                o.state = DONE
                self.orders_rejected += 1
                self._report(self.t_x + self.response_latency_ns, 0, slot, REPORT_DONE)
                return
            self._accepted(slot)
            # takes liquidity at the opposite best (one level; the rest rests)
            o.state = OPEN
            self._open_add(slot)
            self._take(slot)
            if o.state == DONE:
                return
            # the remainder rests: it goes to the back of the open list
            self._open_remove(slot)
        else:
            self._accepted(slot)
        o.state = OPEN
        self._open_add(slot)
        o.queue_ahead = float(self.xbook.qty_at(o.side, o.px))   # joins the back of its level
        o.traded_at_level = 0
        # (if its cancel is already due, the next round of _order_arrivals handles it)

    def _post_only(self, o: Order) -> bool:
        """Whether a crossing order is rejected (hook: per order in paper trading)."""
        return self.post_only

    def _accepted(self, slot: int) -> None:
        """Hook: a new order was accepted by the exchange (paper trading answers it)."""

    def _update_next_order(self) -> None:
        t = INT64_MAX
        for o in self.orders:
            if o.state == IN_FLIGHT and o.arrive_ns < t:
                t = o.arrive_ns
            elif o.state == OPEN and o.cancel_ns < t:
                t = o.cancel_ns
        self.next_order_ns = t

    def _take(self, slot: int) -> None:
        """Fill what the opposite best level holds, at its price, as taker. (The
        exchange book is data: our take does not remove the level.)"""
        o = self.orders[slot]
        opp = 1 - o.side
        lvl = self._best_ask(self.xbook) if o.side == 0 else self._best_bid(self.xbook)
        avail = self.xbook.qty_at(opp, lvl)
        f = o.leaves if o.leaves < avail else avail
        if f <= 0:
            return
        self._push_fill(slot, f, True, px=lvl)

    def _on_trade_x(self, e: Event) -> None:
        # backwards over the open list: a complete fill swap-removes the current entry
        for j in range(len(self.open_idx) - 1, -1, -1):
            slot = self.open_idx[j]
            o = self.orders[slot]
            if o.side != e.side:          # e.side: the side of the resting (maker) order hit
                continue
            if (o.side == 0 and o.px > e.px) or (o.side == 1 and o.px < e.px):
                self._push_fill(slot, o.leaves, False)     # traded through our price
            elif o.px == e.px:
                o.traded_at_level += e.qty
                o.queue_ahead -= float(e.qty)
                if o.queue_ahead < 0:
                    over = -o.queue_ahead
                    o.queue_ahead = 0.0
                    f = int(over)         # truncation: fractional lots of the estimate are lost
                    if f > o.leaves:
                        f = o.leaves
                    if f > 0:
                        self._push_fill(slot, f, False)

    def _qf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        if self.queue_model == Q_LOG:
            return math.log(1.0 + x)
        try:
            return x ** self.queue_power   # C pow()
        except OverflowError:
            return math.inf

    def _on_depth_x(self, e: Event, prev: int) -> None:
        """Queue update for our orders at the level (before the crossing check)."""
        for slot in self.open_idx:        # forwards: nothing is removed here
            o = self.orders[slot]
            if o.side != e.side or o.px != e.px:
                continue
            # the decrease not explained by trades since the last depth update
            chg = float(prev - e.qty - o.traded_at_level)
            o.traded_at_level = 0
            if chg > 0 and self.queue_model != Q_RISK_AVERSE:
                front = o.queue_ahead
                back = float(prev) - front
                if back < 0:
                    back = 0.0
                fb = self._qf(back)
                ff = self._qf(front)
                pr = fb / (fb + ff) if fb + ff > 0 else 0.5
                est = front - (1.0 - pr) * chg
                if back - pr * chg < 0:
                    est += back - pr * chg
                if est < 0:
                    est = 0.0
                o.queue_ahead = est
            # risk-averse (and every model): the queue ahead never exceeds the level
            if o.queue_ahead > float(e.qty):
                o.queue_ahead = float(e.qty)

    def _check_cross_x(self) -> None:
        """The opposite best on or through our price fills us (as maker, at our price)."""
        bb, ba = self._best_bid(self.xbook), self._best_ask(self.xbook)
        for j in range(len(self.open_idx) - 1, -1, -1):
            slot = self.open_idx[j]
            o = self.orders[slot]
            if (o.side == 0 and ba != NO_ASK and ba <= o.px) or (o.side == 1 and bb != NO_BID and bb >= o.px):
                self._push_fill(slot, o.leaves, False)

    def _intensity_fills(self, now: int) -> None:
        bb, ba = self._best_bid(self.xbook), self._best_ask(self.xbook)
        prev = self.last_intensity_ns
        self.last_intensity_ns = now
        if prev == 0:                     # the first call only starts the clock
            return
        if now <= prev or bb == NO_BID or ba == NO_ASK:
            return
        mid = (float(bb) + float(ba)) * 0.5
        for j in range(len(self.open_idx) - 1, -1, -1):   # one draw per exposed order, in this order
            slot = self.open_idx[j]
            o = self.orders[slot]
            # exposed since the previous draw or since it arrived, whichever is later
            since = max(prev, o.arrive_ns)
            if since >= now:
                continue                  # no exposure: no draw
            dt = float(now - since) * 1e-9
            delta = abs(float(o.px) - mid) * self.tick_size
            lam = self.fill_A * math.exp(-self.fill_k * delta)
            if self.rng.u01() < 1.0 - math.exp(-lam * dt):
                self._push_fill(slot, o.leaves, False)

    def _exchange_event(self, e: Event) -> None:
        if e.kind == EV_DEPTH:
            if not self.open_idx:
                self.xbook.apply(e.side, e.px, e.qty)
                return
            prev = self.xbook.qty_at(e.side, e.px)
            self.xbook.apply(e.side, e.px, e.qty)
            if self.fill_model == FILL_QUEUE:
                self._on_depth_x(e, prev)
                if e.flags & EVF_END:
                    self._check_cross_x()
            elif e.flags & EVF_END:
                self._intensity_fills(self.t_x)
        elif e.kind == EV_TRADE:
            if self.open_idx and self.fill_model == FILL_QUEUE:
                self._on_trade_x(e)
        elif e.kind == EV_SNAPSHOT:
            if e.flags & EVF_BEGIN:
                self.xbook.clear()
            self.xbook.apply(e.side, e.px, e.qty)
        # EV_BBO, EV_BOOK_INVALID: nothing changes at the exchange

    # ------------------------------------------------------------ strategy side
    def _deliver_reports(self, upto: int) -> None:
        while self.reports and self.reports[0].ts <= upto:
            r = self.reports.popleft()
            if r.kind == REPORT_FILL:
                self.known_position += r.lots
                self.orders[r.slot].known_filled += abs(r.lots)
            else:
                self.orders[r.slot].local = L_GONE

    def _room(self, side: int) -> int:
        """Lots a new order on ``side`` may have so that the position limit holds even
        if every order not known to be done fills (the live RiskManager's rule)."""
        if self.max_lots <= 0:
            return self.order_lots
        open_lots = sum(o.qty - o.known_filled for o in self.orders
                        if o.side == side and o.local in (L_WORKING, L_CANCELING))
        if side == 0:
            return self.max_lots - self.known_position - open_lots
        return self.max_lots + self.known_position - open_lots

    def _submit(self, side: int, px: int, now: int, lots: Optional[int] = None) -> int:
        """A new order in the first free slot whose end the strategy knows, of
        ``lots`` (default: order_lots, cut to what the position limit leaves);
        returns the slot, or -1 (none free, or a limit leaves nothing). With
        ``lots`` given (the paper gateway: the live risk manager decided), neither
        the position nor the order-rate limit is applied here."""
        limits = lots is None
        if limits:
            sends = self.sends
            while sends and sends[0] <= now - 1_000_000_000:
                sends.popleft()
            if self.max_sends > 0 and len(sends) >= self.max_sends:
                self.risk_blocked += 1
                self.rate_blocked += 1
                return -1
            lots = min(self.order_lots, self._room(side))
            if lots <= 0:
                self.risk_blocked += 1
                return -1
        for i, o in enumerate(self.orders):
            if o.state in (FREE, DONE) and o.local not in (L_WORKING, L_CANCELING):
                o.id = self.next_id
                self.next_id += 1
                o.side = side
                o.state = IN_FLIGHT
                o.local = L_WORKING
                o.px = px
                o.qty = lots
                o.leaves = lots
                o.known_filled = 0
                self.submitted_lots += lots
                o.queue_ahead = 0.0
                o.traded_at_level = 0
                o.arrive_ns = now + self.entry_latency_ns
                o.cancel_ns = INT64_MAX
                o.submit_ns = now
                self.orders_submitted += 1
                if limits and self.max_sends > 0:
                    self.sends.append(now)
                if o.arrive_ns < self.next_order_ns:
                    self.next_order_ns = o.arrive_ns
                return i
        self.slots_exhausted += 1
        return -1

    def _cancel(self, o: Order, now: int) -> None:
        o.local = L_CANCELING
        if o.state in (IN_FLIGHT, OPEN):
            o.cancel_ns = now + self.cancel_latency_ns
            self.cancels_sent += 1
            # (for an order still in flight this lowers next_order_ns below its
            # arrival: harmless, _order_arrivals recomputes it)
            if o.cancel_ns < self.next_order_ns:
                self.next_order_ns = o.cancel_ns

    def _quote(self, now: int) -> None:
        bb, ba = self._best_bid(self.sbook), self._best_ask(self.sbook)
        if bb == NO_BID or ba == NO_ASK or bb >= ba or self.vol.count < 1:
            return
        if self.inten is not None and now >= self.next_fit_ns:
            self.next_fit_ns = now + self.intensity_fit_ns
            self.inten.fit(now)
            if self.inten.ready and self.inten.k_per_tick > 0:
                try:
                    self.quoter.set_intensity(self.inten.A, self.inten.k_per_tick / self.tick_size)
                except ValueError:
                    pass          # the kernel ignores the error code: parameters unchanged
        sigma = self.vol.sigma * (float(bb) + float(ba)) * 0.5 * self.tick_size
        self.last_sigma = sigma   # recorded even when the quote below fails
        q = float(self.known_position) * self.lot_size
        out = self.quoter.compute(bb, ba, self.sbook.best_bid_qty(), self.sbook.best_ask_qty(), sigma, q, now)
        if out is None:
            return
        self.quotes += 1
        self.last_reservation = out.reservation_price
        for side in (0, 1):
            ok = out.bid_ok if side == 0 else out.ask_ok
            px = out.bid_tick if side == 0 else out.ask_tick
            w: Optional[Order] = None
            for o in self.orders:
                if o.local == L_WORKING and o.side == side:
                    if w is not None:
                        self._cancel(w, now)      # never two working orders a side
                    w = o
            if not ok:
                if w is not None:
                    self._cancel(w, now)
                continue
            if w is None:
                self._submit(side, px, now)
            elif w.px - px >= self.requote_threshold or px - w.px >= self.requote_threshold:
                self._cancel(w, now)              # cancel + new, not atomic
                self._submit(side, px, now)

    def _local_event(self, e: Event, now: int) -> None:
        if e.kind == EV_DEPTH:
            self.sbook.apply(e.side, e.px, e.qty)
        elif e.kind == EV_SNAPSHOT:
            if e.flags & EVF_BEGIN:
                self.sbook.clear()
                if self.invalid_since >= 0:
                    self.book_invalid_ns += now - self.invalid_since
                    self.invalid_since = -1
            self.sbook.apply(e.side, e.px, e.qty)
        elif e.kind == EV_BOOK_INVALID:
            # unknown book until the next snapshot: cancel everything, quote no more
            self.book_invalid += 1
            if self.invalid_since < 0:
                self.invalid_since = now
            self.sbook.clear()
            for o in self.orders:
                if o.local == L_WORKING:
                    self._cancel(o, now)
            return
        elif e.kind == EV_TRADE:
            if self.inten is not None:
                bb, ba = self._best_bid(self.sbook), self._best_ask(self.sbook)
                if bb != NO_BID and ba != NO_ASK:
                    self.inten.on_trade(now, e.px, bb + ba)
            return
        else:
            return
        if not (e.flags & EVF_END) or self.invalid_since >= 0:
            return                        # no quoting on an invalid book before the next snapshot
        bb, ba = self._best_bid(self.sbook), self._best_ask(self.sbook)
        if bb == NO_BID or ba == NO_ASK:
            return
        mid = (float(bb) + float(ba)) * 0.5
        if mid != self.last_mid_ticks:    # (also when the book is crossed)
            self.last_mid_ticks = mid
            self.vol.update(now, mid)
        if now >= self.next_quote_ns:
            self.next_quote_ns = now + self.requote_interval_ns   # advanced even if no quote results
            self._quote(now)

    def _local_until(self, upto: int) -> None:
        """Everything on the way to ``upto``, in time order: our order arrivals and
        cancels at the exchange with time <= upto, reports and samples with time <
        upto. At equal times: arrivals, then the sample, then reports. (Arrivals
        make reports and taker fills, which the strategy and the samples in
        between must see.)"""
        while True:
            t = self.reports[0].ts if self.reports else INT64_MAX
            if self.next_sample_ns < t:
                t = self.next_sample_ns
            if self.next_order_ns <= t and self.next_order_ns <= upto:
                # next_order_ns is a lower bound: this processes what is due at it
                # (possibly nothing) and raises it to the next pending time
                self._order_arrivals(self.next_order_ns)
                continue
            if t >= upto:
                return
            if t == self.next_sample_ns:
                self._sample(t)
                self.next_sample_ns += self.sample_interval_ns
            else:
                self._deliver_reports(t)

    # ------------------------------------------------------------ the loop
    def _visible_ts(self, e: Event) -> int:
        return e.local_ts if self.feed_latency_ns < 0 else e.exch_ts + self.feed_latency_ns

    def run(self, events, applied: int = 0, final: bool = False) -> int:
        """Process an EVENT_DTYPE array whose first ``applied`` events the exchange
        side has already seen; returns the index of the first event the strategy
        has not seen (carry ``events[i:]`` into the next call)."""
        arr = np.asarray(events)
        if arr.dtype.names is None or arr.dtype.names[:4] != ("local_ts", "exch_ts", "px", "qty") \
                or arr.dtype.itemsize != 64:
            raise TypeError("events must be hftcore.EVENT_DTYPE records")
        n = len(arr)
        if not 0 <= applied <= n:
            raise ValueError("applied out of range")
        # EVENT_DTYPE field order: local_ts, exch_ts, px, qty, first_id, last_id, prev_id, kind, side, flags
        # an unknown exchange time (<= 0, e.g. a spot REST snapshot) is the receive time
        ev = [Event(r[0], r[1] if r[1] > 0 else r[0], r[2], r[3], r[7], r[8], r[9]) for r in arr.tolist()]
        i_x = applied       # next event for the exchange side
        i_l = 0             # next event for the strategy side (always <= i_x)
        if not self.started and n > 0:
            self.started = True
            self.next_sample_ns = (_cdiv(ev[0].exch_ts, self.sample_interval_ns) + 1) * self.sample_interval_ns
        while True:
            # exchange time of the next exchange event (running max)
            if i_x < n:
                tx = max(ev[i_x].exch_ts, self.t_x)
            else:
                tx = INT64_MAX
            # visible time of the next strategy event (running max); an event the
            # exchange has not applied yet cannot be seen
            if i_l < i_x:
                tl = max(self._visible_ts(ev[i_l]), self.t_l)
            elif i_l < n:
                tl = INT64_MAX - 1
            else:
                tl = INT64_MAX
            if tx == INT64_MAX and (tl == INT64_MAX or not final):
                if final:
                    self._deliver_reports(INT64_MAX)   # samples after the data: finish()
                return i_l
            if tl < tx:
                # a strategy event (ties go to the exchange event)
                self._local_until(tl)
                self.t_l = tl
                self._local_event(ev[i_l], tl)
                i_l += 1
                self.events += 1
            else:
                self._local_until(tx)     # (includes our arrivals at <= tx)
                self.t_x = tx
                self._exchange_event(ev[i_x])
                i_x += 1

    def finish(self, end_ns: int) -> None:
        """Record the samples due up to end_ns after the last event, and a closing
        sample at end_ns itself (so the last equity includes every fill); nothing
        before the first event."""
        if not self.started:
            return
        while self.next_sample_ns <= end_ns:
            self._sample(self.next_sample_ns)
            self.next_sample_ns += self.sample_interval_ns
        if self.next_sample_ns - self.sample_interval_ns < end_ns:
            self._sample(end_ns)

    def take_fills(self) -> np.ndarray:
        out = np.array(self.fills, dtype=FILL_DTYPE) if self.fills else np.empty(0, dtype=FILL_DTYPE)
        self.fills = []
        return out

    def take_samples(self) -> np.ndarray:
        out = np.array(self.samples, dtype=SAMPLE_DTYPE) if self.samples else np.empty(0, dtype=SAMPLE_DTYPE)
        self.samples = []
        return out

    def counters(self) -> dict:
        return dict(events=self.events, orders_submitted=self.orders_submitted,
                    orders_rejected=self.orders_rejected, orders_cancelled=self.orders_cancelled,
                    cancels_sent=self.cancels_sent, fills=self.fill_count, partial_fills=self.partial_fills,
                    quotes=self.quotes, slots_exhausted=self.slots_exhausted, risk_blocked=self.risk_blocked,
                    submitted_lots=self.submitted_lots, rate_blocked=self.rate_blocked,
                    maker_lots=self.maker_lots,
                    taker_lots=self.taker_lots, lifetime_sum_ns=self.lifetime_sum_ns,
                    lifetime_count=self.lifetime_count, book_invalid=self.book_invalid,
                    book_invalid_ns=self.book_invalid_ns + (self.t_l - self.invalid_since
                                                            if self.invalid_since >= 0 else 0))
