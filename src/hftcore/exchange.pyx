# cython: language_level=3
"""Exchange model: queue position, latencies, fills and fees for our orders.

The exchange side of every driver (backtest, paper trading), compiled once. It
owns no book and no clock of its own: the driver keeps the one book (``book``)
up to date and tells the model the exchange time.

* An order submitted at ``now`` reaches the exchange at ``now + entry_latency``,
  a cancel at ``now + cancel_latency``; :meth:`ExchangeModel.advance_c` processes
  every arrival and cancel with time <= t, in time order, on the book as it is
  (the driver advances to an event's exchange time before applying the event).
* On arrival a post-only order that would take is rejected; any other crossing
  order takes the opposite best level at its price (a taker fill) and rests with
  the rest. A resting order joins the back of its level: queue_ahead = the
  level's size.
* :meth:`on_event_c` runs after the driver applied a market event to the book:
  a trade at our price advances us by its size and what it takes beyond the
  queue ahead fills us (partially, the rest later); a trade through our price
  fills us completely; at the end of a depth message the opposite best on or
  through our price fills us completely. A depth decrease at our price not
  explained by trades is cancellation: the risk-averse model only lets it shrink
  the queue ahead to the new level size; the probabilistic models (hftbacktest's)
  take (1 - p) of it from the front, p = f(back) / (f(back) + f(front)),
  f(x) = x**n or log(1 + x). The level's previous quantity is the order's own
  record of it (``level_qty``), so the book may already hold the new one.
* Intensity fill model: at the end of each depth message an open order at depth
  delta (price units from the mid) fills completely with probability
  1 - exp(-A exp(-k delta) dt), dt the time since the previous such draw or the
  order's arrival, whichever is later (seeded xoshiro256**, per account).
* Fees: maker / taker fraction of the notional on every fill (negative: a rebate).

What happened reaches the trader as reports (ACK, FILL, CANCELED, REJECTED) at
the exchange time + ``response_latency``, per account in time order. Accounts
share the book and the market does not react to our orders (no market impact),
so N accounts -- N strategies of one sweep pass -- run side by side exactly as
each would alone.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport exp, fabs, log, NAN
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memset

from hftcore.book cimport BOOK_NO_ASK, BOOK_NO_BID, L2Book
from hftcore.rng cimport hft_rng_seed, hft_rng_u01
from hftcore.types cimport (HFT_EV_DEPTH, HFT_EV_SNAPSHOT, HFT_EV_TRADE, HFT_EVF_BEGIN, HFT_EVF_END,
                            hft_event_t)

import numpy as np

from hftcore.book import L2Book as _L2Book
from hftcore.types import EVENT_DTYPE

cnp.import_array()

FILL_DTYPE = np.dtype([("exch_ts", "<i8"), ("report_ts", "<i8"), ("order_id", "<i8"), ("px", "<i8"),
                       ("qty", "<i8"), ("position", "<i8"), ("fee", "<f8"), ("cash", "<f8"), ("mid", "<f8"),
                       ("side", "<i8"), ("taker", "<i8"), ("submit_ts", "<i8")])
REPORT_DTYPE = np.dtype([("ts", "<i8"), ("id", "<i8"), ("kind", "<i4"), ("side", "<i4"), ("taker", "<i4"),
                         ("_pad", "<i4"), ("px", "<i8"), ("lots", "<i8"), ("leaves", "<i8"), ("fee", "<f8")])

QUEUE_MODELS = {"risk_averse": XM_QUEUE_RISK_AVERSE, "power": XM_QUEUE_POWER, "log": XM_QUEUE_LOG}
FILL_MODELS = {"queue": XM_FILL_QUEUE, "intensity": XM_FILL_INTENSITY}
ACK = RPT_ACK
FILL = RPT_FILL
CANCELED = RPT_CANCELED
REJECTED = RPT_REJECTED
REPORT_NAMES = {RPT_ACK: "ack", RPT_FILL: "fill", RPT_CANCELED: "canceled", RPT_REJECTED: "rejected"}


cdef inline double _qf(int model, double n, double x) noexcept nogil:
    if x <= 0:
        return 0.0
    if model == XM_QUEUE_LOG:
        return log(1.0 + x)
    return x ** n


cdef int _nomem() except -1 with gil:
    raise MemoryError("ExchangeModel: out of memory")


cdef int _bad_order(int64_t oid) except -1 with gil:
    raise ValueError(f"ExchangeModel: order id {oid} is already live on this account")


def exchange_params(tick_size, lot_size, entry_latency_ns=5_000_000, cancel_latency_ns=5_000_000,
                    response_latency_ns=5_000_000, queue_model="risk_averse", queue_power=2.0,
                    fill_model="queue", fill_A=5.0, fill_k=10.0, maker_fee=0.0, taker_fee=0.0):
    """The model's parameters as a dict (units: ticks, lots, ns; fees as fractions)."""
    return dict(tick_size=float(tick_size), lot_size=float(lot_size), entry_latency_ns=int(entry_latency_ns),
                cancel_latency_ns=int(cancel_latency_ns), response_latency_ns=int(response_latency_ns),
                queue_model=queue_model, queue_power=float(queue_power), fill_model=fill_model,
                fill_A=float(fill_A), fill_k=float(fill_k), maker_fee=float(maker_fee), taker_fee=float(taker_fee))


cdef int _set_params(xm_params_t* q, dict p) except -1:
    if p["queue_model"] not in QUEUE_MODELS:
        raise ValueError(f"queue_model must be one of {sorted(QUEUE_MODELS)}, got {p['queue_model']!r}")
    if p["fill_model"] not in FILL_MODELS:
        raise ValueError(f"fill_model must be one of {sorted(FILL_MODELS)}, got {p['fill_model']!r}")
    for name in ("entry_latency_ns", "cancel_latency_ns", "response_latency_ns"):
        if p[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {p[name]}")
    if not (p["tick_size"] > 0 and p["lot_size"] > 0):
        raise ValueError("tick_size and lot_size must be > 0")
    q.tick_size = p["tick_size"]
    q.lot_size = p["lot_size"]
    q.entry_latency_ns = p["entry_latency_ns"]
    q.cancel_latency_ns = p["cancel_latency_ns"]
    q.response_latency_ns = p["response_latency_ns"]
    q.queue_model = QUEUE_MODELS[p["queue_model"]]
    q.queue_power = p["queue_power"]
    q.fill_model = FILL_MODELS[p["fill_model"]]
    q.fill_A = p["fill_A"]
    q.fill_k = p["fill_k"]
    q.maker_fee = p["maker_fee"]
    q.taker_fee = p["taker_fee"]
    return 0


@cython.final
cdef class ExchangeModel:
    """The exchange for ``n_accounts`` accounts over ``book`` (see the module doc).

    ``params``: :func:`exchange_params` (a dict: one account), or a list of them (one
    per account: the accounts of a sweep pass may differ); ``seeds``: one per
    account (the intensity model's draws; default 1). Times in ns, prices in ticks, quantities in lots.
    """

    def __cinit__(self, *args, **kwargs):
        self.A = NULL
        self.n_accounts = 0

    def __init__(self, L2Book book not None, params, seeds=None):
        cdef int i
        cdef xm_account_t* a
        plist = [params] if isinstance(params, dict) else list(params)
        if not plist:
            raise ValueError("at least one account")
        seeds = [1] * len(plist) if seeds is None else list(seeds)
        if len(seeds) != len(plist):
            raise ValueError(f"{len(plist)} accounts' parameters but {len(seeds)} seeds")
        self.book = book
        self.A = <xm_account_t*>calloc(len(plist), sizeof(xm_account_t))
        if self.A == NULL:
            raise MemoryError()
        for i, (p, seed) in enumerate(zip(plist, seeds)):
            a = &self.A[i]
            self.n_accounts = i + 1
            _set_params(&a.p, p)
            a.fill_model = a.p.fill_model
            a.cap_slots = 8
            a.orders = <xm_order_t*>calloc(a.cap_slots, sizeof(xm_order_t))
            a.open_idx = <int*>malloc(a.cap_slots * sizeof(int))
            a.free_slots = <int*>malloc(a.cap_slots * sizeof(int))
            a.rep_cap = 256
            a.reports = <xm_report_t*>malloc(a.rep_cap * sizeof(xm_report_t))
            a.cap_fills = 256
            a.fills = <xm_fill_t*>malloc(a.cap_fills * sizeof(xm_fill_t))
            if a.orders == NULL or a.open_idx == NULL or a.free_slots == NULL or a.reports == NULL \
                    or a.fills == NULL:
                raise MemoryError()
            a.next_order_ns = INT64_MAX
            a.t_x = -INT64_MAX
            hft_rng_seed(a.rng, <uint64_t>seed)
            self._open_bounds(a)
        self.t_x = -INT64_MAX
        self.next_arrival_ns = INT64_MAX
        self.min_report_ts = INT64_MAX

    def __dealloc__(self):
        cdef int i
        if self.A == NULL:
            return
        for i in range(self.n_accounts):
            free(self.A[i].orders)
            free(self.A[i].open_idx)
            free(self.A[i].free_slots)
            free(self.A[i].reports)
            free(self.A[i].fills)
        free(self.A)

    # ------------------------------------------------------------ slots
    cdef int _slot(self, xm_account_t* a) except -1 nogil:
        cdef int cap
        cdef xm_order_t* o
        cdef int* oi
        cdef int* fs
        if a.n_free:
            a.n_free -= 1
            return a.free_slots[a.n_free]
        if a.n_slots == a.cap_slots:
            cap = 2 * a.cap_slots
            o = <xm_order_t*>realloc(a.orders, cap * sizeof(xm_order_t))
            if o == NULL:
                return _nomem()
            a.orders = o
            oi = <int*>realloc(a.open_idx, cap * sizeof(int))
            if oi == NULL:
                return _nomem()
            a.open_idx = oi
            fs = <int*>realloc(a.free_slots, cap * sizeof(int))
            if fs == NULL:
                return _nomem()
            a.free_slots = fs
            a.cap_slots = cap
        a.n_slots += 1
        return a.n_slots - 1

    cdef int _find(self, xm_account_t* a, int64_t oid) noexcept nogil:
        cdef int i
        for i in range(a.n_slots):
            if a.orders[i].id == oid and (a.orders[i].state == XM_IN_FLIGHT or a.orders[i].state == XM_OPEN):
                return i
        return -1

    cdef void _done(self, xm_account_t* a, int slot) noexcept nogil:
        a.orders[slot].state = XM_FREE
        a.free_slots[a.n_free] = slot
        a.n_free += 1

    cdef inline void _open_add(self, xm_account_t* a, int slot) noexcept nogil:
        cdef int64_t px = a.orders[slot].px
        a.open_idx[a.n_open] = slot
        a.n_open += 1
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

    cdef inline void _open_remove(self, xm_account_t* a, int slot) noexcept nogil:
        cdef int i
        for i in range(a.n_open):
            if a.open_idx[i] == slot:
                a.n_open -= 1
                a.open_idx[i] = a.open_idx[a.n_open]
                self._open_bounds(a)
                return

    cdef void _open_bounds(self, xm_account_t* a) noexcept nogil:
        """Price range of the resting orders per side (a filter for the matching)."""
        cdef int i
        cdef const xm_order_t* o
        a.bid_lo = INT64_MAX
        a.bid_hi = -INT64_MAX
        a.ask_lo = INT64_MAX
        a.ask_hi = -INT64_MAX
        for i in range(a.n_open):
            o = &a.orders[a.open_idx[i]]
            if o.side == 0:
                if o.px < a.bid_lo:
                    a.bid_lo = o.px
                if o.px > a.bid_hi:
                    a.bid_hi = o.px
            else:
                if o.px < a.ask_lo:
                    a.ask_lo = o.px
                if o.px > a.ask_hi:
                    a.ask_hi = o.px

    cdef void _next_order(self, xm_account_t* a) noexcept nogil:
        cdef int i, k
        cdef int64_t t = INT64_MAX
        cdef xm_order_t* o
        for i in range(a.n_slots):
            o = &a.orders[i]
            if o.state == XM_IN_FLIGHT and o.arrive_ns < t:
                t = o.arrive_ns
            elif o.state == XM_OPEN and o.cancel_ns < t:
                t = o.cancel_ns
        a.next_order_ns = t
        t = INT64_MAX
        for k in range(self.n_accounts):
            if self.A[k].next_order_ns < t:
                t = self.A[k].next_order_ns
        self.next_arrival_ns = t

    # ------------------------------------------------------------ outputs
    cdef int _report(self, xm_account_t* a, int64_t ts, const xm_order_t* o, int kind, int64_t px,
                     int64_t lots, double fee, int taker) except -1 nogil:
        """Queue a report at ``ts``, keeping the queue in time order (reports of one
        account are made in time order but for arrivals processed late, whose
        reports may be due before ones already queued)."""
        cdef xm_report_t* r
        cdef Py_ssize_t i, j, k
        if a.rep_n == a.rep_cap:
            r = <xm_report_t*>malloc(2 * a.rep_cap * sizeof(xm_report_t))
            if r == NULL:
                return _nomem()
            for i in range(a.rep_n):
                r[i] = a.reports[(a.rep_head + i) % a.rep_cap]
            free(a.reports)
            a.reports = r
            a.rep_head = 0
            a.rep_cap *= 2
        # insertion from the back (normally at the back itself)
        k = a.rep_n
        while k > 0 and a.reports[(a.rep_head + k - 1) % a.rep_cap].ts > ts:
            a.reports[(a.rep_head + k) % a.rep_cap] = a.reports[(a.rep_head + k - 1) % a.rep_cap]
            k -= 1
        j = (a.rep_head + k) % a.rep_cap
        r = &a.reports[j]
        r.ts = ts
        r.id = o.id
        r.kind = kind
        r.side = o.side
        r.taker = taker
        r.px = px
        r.lots = lots
        r.leaves = o.leaves
        r.fee = fee
        a.rep_n += 1
        if ts < self.min_report_ts:
            self.min_report_ts = ts
        return 0

    cdef int _fill(self, xm_account_t* a, xm_order_t* o, int64_t lots, bint taker, int64_t px) except -1 nogil:
        cdef xm_fill_t* f
        cdef double notional, fee, mid
        cdef int64_t bb, ba
        cdef int slot = <int>(o - a.orders)
        if a.n_fills == a.cap_fills:
            f = <xm_fill_t*>realloc(a.fills, 2 * a.cap_fills * sizeof(xm_fill_t))
            if f == NULL:
                return _nomem()
            a.fills = f
            a.cap_fills *= 2
        notional = <double>px * a.p.tick_size * <double>lots * a.p.lot_size
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
        bb = self.book.best_bid_c()
        ba = self.book.best_ask_c()
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * a.p.tick_size
        f = &a.fills[a.n_fills]
        f.exch_ts = a.t_x
        f.report_ts = a.t_x + a.p.response_latency_ns
        f.order_id = o.id
        f.px = px
        f.qty = lots
        f.position = a.position
        f.fee = fee
        f.cash = a.cash
        f.mid = mid
        f.side = o.side
        f.taker = 1 if taker else 0
        f.submit_ts = o.submit_ns
        a.n_fills += 1
        self._report(a, f.report_ts, o, RPT_FILL, px, lots, fee, 1 if taker else 0)
        if o.leaves == 0:
            if o.state == XM_OPEN:
                self._open_remove(a, slot)
                a.lifetime_sum_ns += a.t_x - o.arrive_ns
                a.lifetime_count += 1
            o.state = XM_DONE
            self._done(a, slot)
        return 0

    # ------------------------------------------------------------ orders in
    cdef int submit_c(self, int acct, int64_t oid, int side, int64_t px, int64_t lots, int flags,
                      int64_t now) except -1 nogil:
        """A new order (``oid`` unique among the account's live orders) sent at
        ``now``: it reaches the exchange at now + entry_latency."""
        cdef xm_account_t* a = &self.A[acct]
        cdef int slot
        cdef xm_order_t* o
        slot = self._slot(a)
        o = &a.orders[slot]
        memset(o, 0, sizeof(xm_order_t))
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
        return 0

    cdef int cancel_c(self, int acct, int64_t oid, int64_t now) except -1 nogil:
        """Cancel order ``oid`` from ``now``: the request reaches the exchange at
        now + cancel_latency (an order already done by then is not affected; 0 when
        the order is not live any more, 1 when the cancel is on its way)."""
        cdef xm_account_t* a = &self.A[acct]
        cdef int slot = self._find(a, oid)
        cdef xm_order_t* o
        cdef int64_t t
        if slot < 0:
            return 0
        o = &a.orders[slot]
        if o.cancel_ns != INT64_MAX:
            return 1
        t = now + a.p.cancel_latency_ns
        if o.state == XM_IN_FLIGHT and t < o.arrive_ns:
            t = o.arrive_ns            # it cannot overtake its order
        o.cancel_ns = t
        if t < a.next_order_ns:
            a.next_order_ns = t
            if t < self.next_arrival_ns:
                self.next_arrival_ns = t
        return 1

    cdef int advance_c(self, int64_t t) except -1 nogil:
        """Every account's arrivals and cancels with time <= t, in time order."""
        cdef int k
        if t > self.t_x:
            self.t_x = t
        if t < self.next_arrival_ns:
            return 0
        for k in range(self.n_accounts):
            if self.A[k].next_order_ns <= t:
                self._arrivals(&self.A[k], t)
        self._next_order(&self.A[0])      # (recomputes next_arrival_ns over all accounts)
        return 0

    cdef int advance_account_c(self, int k, int64_t t) except -1 nogil:
        """Account k's arrivals and cancels with time <= t (accounts are independent:
        the market does not react to our orders). The driver interleaves them with
        the account's other local items; t must not pass the newest exchange time."""
        if self.A[k].next_order_ns <= t:
            self._arrivals(&self.A[k], t)
        return 0

    cdef int _arrivals(self, xm_account_t* a, int64_t upto) except -1 nogil:
        cdef int i, best
        cdef int64_t tb, bb, ba
        cdef xm_order_t* o
        if a.t_x < self.t_x:
            a.t_x = self.t_x
        while True:
            best = -1
            tb = INT64_MAX
            for i in range(a.n_slots):
                o = &a.orders[i]
                if o.state == XM_IN_FLIGHT and o.arrive_ns <= upto and o.arrive_ns < tb:
                    tb = o.arrive_ns
                    best = i
                elif o.state == XM_OPEN and o.cancel_ns <= upto and o.cancel_ns < tb:
                    tb = o.cancel_ns
                    best = i
            if best < 0:
                self._next_order(a)
                return 0
            o = &a.orders[best]
            # the order's own time at the exchange (the shared clock is the event's)
            a.t_x = tb
            if o.state == XM_IN_FLIGHT and o.flags & XM_MARKET:
                a.arrived += 1
                self._sweep(a, o)
                if o.state == XM_IN_FLIGHT:      # the book did not hold it all: the rest expires
                    self._report(a, tb + a.p.response_latency_ns, o, RPT_REJECTED, o.px, 0, 0.0, 0)
                    o.state = XM_DONE
                    self._done(a, best)
                continue
            if o.state == XM_IN_FLIGHT:
                a.arrived += 1
                bb = self.book.best_bid_c()
                ba = self.book.best_ask_c()
                if (o.side == 0 and ba != BOOK_NO_ASK and o.px >= ba) or \
                        (o.side == 1 and bb != BOOK_NO_BID and o.px <= bb):
                    if o.flags & XM_POST_ONLY:
                        a.rejected += 1
                        self._report(a, tb + a.p.response_latency_ns, o, RPT_REJECTED, o.px, 0, 0.0, 0)
                        o.state = XM_DONE
                        self._done(a, best)
                        continue
                    # takes liquidity at the opposite best (one level; the rest rests)
                    self._take(a, o)
                    if o.state != XM_IN_FLIGHT:
                        continue            # filled completely
                o.state = XM_OPEN
                self._open_add(a, best)
                o.level_qty = self.book.qty_at_c(o.side, o.px)
                o.queue_ahead = <double>o.level_qty
                o.traded_at_level = 0
                self._report(a, tb + a.p.response_latency_ns, o, RPT_ACK, o.px, 0, 0.0, 0)
            else:
                self._open_remove(a, best)
                a.lifetime_sum_ns += tb - o.arrive_ns
                a.lifetime_count += 1
                a.cancelled += 1
                o.state = XM_DONE
                self._report(a, tb + a.p.response_latency_ns, o, RPT_CANCELED, o.px, 0, 0.0, 0)
                self._done(a, best)

    cdef int _take(self, xm_account_t* a, xm_order_t* o) except -1 nogil:
        cdef int opp = 1 - o.side
        cdef int64_t lvl = self.book.best_ask_c() if o.side == 0 else self.book.best_bid_c()
        cdef int64_t avail = self.book.qty_at_c(opp, lvl)
        cdef int64_t f = o.leaves if o.leaves < avail else avail
        if f <= 0:
            return 0
        self._fill(a, o, f, True, lvl)
        return 0

    cdef int _sweep(self, xm_account_t* a, xm_order_t* o) except -1 nogil:
        """A market order: the opposite side's visible levels, best first, at their prices."""
        cdef int64_t px[64]
        cdef int64_t qty[64]
        cdef Py_ssize_t n, i
        cdef int64_t f
        cdef int opp = 1 - o.side
        while o.state == XM_IN_FLIGHT and o.leaves > 0:
            n = self.book.top_c(opp, 64, px, qty)
            if n <= 0:
                return 0
            for i in range(n):
                f = o.leaves if o.leaves < qty[i] else qty[i]
                if f > 0:
                    self._fill(a, o, f, True, px[i])
                if o.state != XM_IN_FLIGHT:
                    return 0
            if n < 64:
                return 0
            return 0       # (more than 64 levels: the rest expires)
        return 0

    # ------------------------------------------------------------ market events
    cdef int on_event_c(self, const hft_event_t* e, int64_t t_x) except -1 nogil:
        """Match every account's resting orders against a market event the book
        already shows (``t_x``: its exchange time, after :meth:`advance_c`)."""
        cdef int kind = e.kind
        cdef int k
        cdef int64_t bb, ba
        cdef xm_account_t* a
        if t_x > self.t_x:
            self.t_x = t_x
        if kind == HFT_EV_DEPTH:
            bb = ba = 0
            if e.flags & HFT_EVF_END:
                bb = self.book.best_bid_c()
                ba = self.book.best_ask_c()
            for k in range(self.n_accounts):
                a = &self.A[k]
                if a.n_open == 0:
                    continue
                a.t_x = self.t_x
                if a.fill_model == XM_FILL_QUEUE:
                    if (e.px >= a.bid_lo and e.px <= a.bid_hi) if e.side == 0 else \
                            (e.px >= a.ask_lo and e.px <= a.ask_hi):
                        self._on_depth(a, e)
                    if (e.flags & HFT_EVF_END) and ((ba != BOOK_NO_ASK and ba <= a.bid_hi)
                                                     or (bb != BOOK_NO_BID and bb >= a.ask_lo)):
                        self._check_cross(a, bb, ba)
                elif e.flags & HFT_EVF_END:
                    self._intensity_fills(a, a.t_x)
        elif kind == HFT_EV_TRADE:
            for k in range(self.n_accounts):
                a = &self.A[k]
                # only orders on the trade's side at or through its price are concerned
                if a.n_open and a.fill_model == XM_FILL_QUEUE and ((e.side == 0 and a.bid_hi >= e.px) or (e.side == 1 and a.ask_lo <= e.px)):
                    a.t_x = self.t_x
                    self._on_trade(a, e)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_END:
                self.on_snapshot_end_c()
        return 0

    cdef int on_snapshot_end_c(self) except -1 nogil:
        """A snapshot replaced the book: every resting order's level as it is now."""
        cdef int k, i
        cdef xm_order_t* o
        for k in range(self.n_accounts):
            for i in range(self.A[k].n_open):
                o = &self.A[k].orders[self.A[k].open_idx[i]]
                o.level_qty = self.book.qty_at_c(o.side, o.px)
                o.traded_at_level = 0
        return 0

    cdef int _on_trade(self, xm_account_t* a, const hft_event_t* e) except -1 nogil:
        cdef xm_order_t* o
        cdef double over
        cdef int64_t f
        cdef int j = a.n_open - 1
        while j >= 0:          # backwards: a complete fill removes the current entry
            o = &a.orders[a.open_idx[j]]
            j -= 1
            if o.side != e.side:
                continue
            if (o.side == 0 and o.px > e.px) or (o.side == 1 and o.px < e.px):
                self._fill(a, o, o.leaves, False, o.px)      # traded through our price
            elif o.px == e.px:
                o.traded_at_level += e.qty
                o.queue_ahead -= <double>e.qty
                if o.queue_ahead < 0:
                    over = -o.queue_ahead
                    o.queue_ahead = 0
                    f = <int64_t>over
                    if f > o.leaves:
                        f = o.leaves
                    if f > 0:
                        self._fill(a, o, f, False, o.px)
        return 0

    cdef int _on_depth(self, xm_account_t* a, const hft_event_t* e) except -1 nogil:
        """Queue update for our orders at the level (before the crossing check)."""
        cdef int i
        cdef xm_order_t* o
        cdef double chg, front, back, pr, est, fb, ff
        cdef int64_t prev
        for i in range(a.n_open):
            o = &a.orders[a.open_idx[i]]
            if o.side != e.side or o.px != e.px:
                continue
            prev = o.level_qty
            o.level_qty = e.qty
            chg = <double>(prev - e.qty - o.traded_at_level)
            o.traded_at_level = 0
            if chg > 0 and a.p.queue_model != XM_QUEUE_RISK_AVERSE:
                front = o.queue_ahead
                back = <double>prev - front
                if back < 0:
                    back = 0
                fb = _qf(a.p.queue_model, a.p.queue_power, back)
                ff = _qf(a.p.queue_model, a.p.queue_power, front)
                pr = fb / (fb + ff) if fb + ff > 0 else 0.5
                est = front - (1.0 - pr) * chg
                if back - pr * chg < 0:
                    est += back - pr * chg
                if est < 0:
                    est = 0
                o.queue_ahead = est
            if o.queue_ahead > <double>e.qty:
                o.queue_ahead = <double>e.qty
        return 0

    cdef int _check_cross(self, xm_account_t* a, int64_t bb, int64_t ba) except -1 nogil:
        """The opposite best (bb, ba: the book's) on or through our price fills us."""
        cdef xm_order_t* o
        cdef int j = a.n_open - 1
        while j >= 0:
            o = &a.orders[a.open_idx[j]]
            j -= 1
            if (o.side == 0 and ba != BOOK_NO_ASK and ba <= o.px) or (o.side == 1 and bb != BOOK_NO_BID and bb >= o.px):
                self._fill(a, o, o.leaves, False, o.px)
        return 0

    cdef int _intensity_fills(self, xm_account_t* a, int64_t now) except -1 nogil:
        cdef xm_order_t* o
        cdef double dt, mid, delta, lam
        cdef int64_t bb = self.book.best_bid_c(), ba = self.book.best_ask_c()
        cdef int64_t prev = a.last_intensity_ns, since
        cdef int j
        if prev == 0:
            a.last_intensity_ns = now
            return 0
        a.last_intensity_ns = now
        if now <= prev or bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        j = a.n_open - 1
        while j >= 0:
            o = &a.orders[a.open_idx[j]]
            j -= 1
            # exposed since the last draw or since the order arrived, whichever is
            # later (an order is not exposed before it rests, nor while none rests)
            since = prev if prev > o.arrive_ns else o.arrive_ns
            if since >= now:
                continue
            dt = <double>(now - since) * 1e-9
            delta = fabs(<double>o.px - mid) * a.p.tick_size
            lam = a.p.fill_A * exp(-a.p.fill_k * delta)
            if hft_rng_u01(a.rng) < 1.0 - exp(-lam * dt):
                self._fill(a, o, o.leaves, False, o.px)
        return 0

    # ------------------------------------------------------------ reports out
    cdef int64_t next_report_ts_c(self, int acct) noexcept nogil:
        cdef xm_account_t* a = &self.A[acct]
        return a.reports[a.rep_head].ts if a.rep_n else INT64_MAX

    cdef bint pop_report_c(self, int acct, int64_t upto, xm_report_t* out) noexcept nogil:
        """The oldest report with time <= upto into ``out`` (False when none)."""
        cdef xm_account_t* a = &self.A[acct]
        if a.rep_n == 0 or a.reports[a.rep_head].ts > upto:
            return False
        out[0] = a.reports[a.rep_head]
        a.rep_head = (a.rep_head + 1) % a.rep_cap
        a.rep_n -= 1
        return True

    cdef int funding_c(self, double mark_price, double rate) noexcept nogil:
        """A perpetual's funding time: every account pays position x lot x
        ``mark_price`` (price units) x ``rate`` out of its cash (longs pay a positive
        rate, shorts receive it) -- the exchange's truth, as its cash is."""
        cdef int k
        cdef double paid
        cdef xm_account_t* a
        if rate == 0.0 or not (mark_price > 0):
            return 0
        for k in range(self.n_accounts):
            a = &self.A[k]
            if a.position == 0:
                continue
            paid = <double>a.position * a.p.lot_size * mark_price * rate
            a.cash -= paid
            a.funding += paid
            a.fundings += 1
        return 0

    cdef double equity_c(self, int acct, double mid_price) noexcept nogil:
        """Cash + position marked at ``mid_price`` (price units), quote currency."""
        cdef xm_account_t* a = &self.A[acct]
        return a.cash + <double>a.position * a.p.lot_size * mid_price

    # ------------------------------------------------------------ Python API
    cdef xm_account_t* _acct(self, int acct) except NULL:
        if acct < 0 or acct >= self.n_accounts:
            raise IndexError(f"account {acct} out of range (0..{self.n_accounts - 1})")
        return &self.A[acct]

    def submit(self, int acct, int64_t oid, int side, int64_t px, int64_t lots, bint post_only=True,
               int64_t now=0):
        """A new order: id, side (0 buy / 1 sell), price [ticks], size [lots], sent at ``now`` [ns]."""
        cdef xm_account_t* a = self._acct(acct)
        if side != 0 and side != 1:
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        if self._find(a, oid) >= 0:
            _bad_order(oid)
        self.submit_c(acct, oid, side, px, lots, XM_POST_ONLY if post_only else 0, now)

    def cancel(self, int acct, int64_t oid, int64_t now=0):
        """Cancel order ``oid`` sent at ``now`` [ns]; False when it is not live any more."""
        self._acct(acct)
        return bool(self.cancel_c(acct, oid, now))

    def advance(self, int64_t t):
        """Process every arrival and cancel with exchange time <= t [ns]."""
        with nogil:
            self.advance_c(t)

    def process(self, events):
        """The exchange half of a driver, for tests and tools: for each EVENT_DTYPE
        record, advance to its exchange time (a running maximum), apply it to the
        book, match it."""
        cdef cnp.ndarray arr = np.ascontiguousarray(events)
        cdef const hft_event_t* ev
        cdef Py_ssize_t i, n
        cdef int64_t x
        if arr.dtype != EVENT_DTYPE:
            raise TypeError("events must be hftcore.EVENT_DTYPE records")
        ev = <const hft_event_t*>cnp.PyArray_DATA(arr)
        n = arr.shape[0]
        with nogil:
            for i in range(n):
                x = ev[i].exch_ts if ev[i].exch_ts > 0 else ev[i].local_ts
                if x < self.t_x:
                    x = self.t_x
                self.advance_c(x)
                if ev[i].kind == HFT_EV_DEPTH:
                    self.book.apply_c(ev[i].side, ev[i].px, ev[i].qty)
                elif ev[i].kind == HFT_EV_SNAPSHOT:
                    if ev[i].flags & HFT_EVF_BEGIN:
                        self.book.clear_c()
                    self.book.apply_c(ev[i].side, ev[i].px, ev[i].qty)
                self.on_event_c(&ev[i], x)

    def take_reports(self, int acct=0, int64_t upto=INT64_MAX):
        """Reports with time <= upto as a REPORT_DTYPE array (removed from the queue)."""
        cdef xm_account_t* a = self._acct(acct)
        cdef xm_report_t r
        out = []
        while self.pop_report_c(acct, upto, &r):
            out.append((r.ts, r.id, r.kind, r.side, r.taker, 0, r.px, r.lots, r.leaves, r.fee))
        return np.array(out, dtype=REPORT_DTYPE)

    def take_fills(self, int acct=0):
        """Fills since the last call as a FILL_DTYPE array."""
        cdef xm_account_t* a = self._acct(acct)
        cdef cnp.ndarray out = np.empty(a.n_fills, dtype=FILL_DTYPE)
        cdef Py_ssize_t i
        cdef xm_fill_t* f
        for i in range(a.n_fills):
            f = &a.fills[i]
            out[i] = (f.exch_ts, f.report_ts, f.order_id, f.px, f.qty, f.position, f.fee, f.cash, f.mid,
                      f.side, f.taker, f.submit_ts)
        a.n_fills = 0
        return out

    def position(self, int acct=0):
        """Exchange-side position, lots."""
        return self._acct(acct).position

    def cash(self, int acct=0):
        """Cash, quote currency (fees included)."""
        return self._acct(acct).cash

    def fees(self, int acct=0):
        return self._acct(acct).fees

    def open_orders(self, int acct=0):
        """(id, side, px, leaves, queue_ahead) of the resting orders."""
        cdef xm_account_t* a = self._acct(acct)
        cdef int i
        cdef xm_order_t* o
        out = []
        for i in range(a.n_open):
            o = &a.orders[a.open_idx[i]]
            out.append((o.id, o.side, o.px, o.leaves, o.queue_ahead))
        return out

    def counters(self, int acct=0):
        cdef xm_account_t* a = self._acct(acct)
        return {"arrived": a.arrived, "rejected": a.rejected, "cancelled": a.cancelled,
                "fills": a.fill_count, "partial_fills": a.partial_fills, "maker_lots": a.maker_lots,
                "taker_lots": a.taker_lots, "lifetime_sum_ns": a.lifetime_sum_ns,
                "lifetime_count": a.lifetime_count, "funding": a.funding, "fundings": a.fundings}
