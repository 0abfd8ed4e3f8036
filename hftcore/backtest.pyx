# cython: language_level=3
"""Backtest replay kernel: one compiled loop over normalised events.

Two clocks run over the same event array, merged by time:

* the **exchange side** applies each event at its exchange time (a running
  maximum of ``exch_ts``) to the exchange book, and matches our resting orders;
* the **strategy side** sees each event at its visible time (the data's
  ``local_ts``, or ``exch_ts + feed_latency`` when a feed latency is set; a
  running maximum, never before the exchange applied it) on its own book, keeps
  the EWMA volatility and the intensity estimate, and quotes.

Merge order: everything happens in time order. Before an exchange event at time
T, everything local with a time < T happens (visible events, fill reports, equity
samples) and our orders that reach the exchange at <= T (arrivals, cancels), each
in time order with the others, then the event itself. Ties therefore favour the
exchange: at equal times, order arrivals first, then exchange events, then the
strategy's visible events, then samples, then reports. The rule is the same
whatever the chunking, so results do not depend on chunk sizes, and the same
data, parameters and seed give bit-identical results.

Orders: the strategy quotes (AS or GLFT, hftcore.quoting) at most every
``requote_interval`` and only moves an order when the desired price differs by
``requote_threshold`` ticks or more (cancel + new, not atomic: the old order can
still fill until its cancel arrives). A new order reaches the exchange after the
entry latency; post-only orders that would cross are rejected. Fills are known to
the strategy (its inventory) only after the response latency; PnL uses the
exchange-side position at the fill time.

Queue position (fill_model = queue): a new order joins the back of its level
(queue_ahead = the level's size on arrival). A trade at our price advances us by
its size; what it takes beyond the queue ahead fills us (partially, the rest
later). A trade through our price (a worse price for the aggressor) fills us
completely, and so does the opposite best moving onto or through our price.
A depth decrease at our price not explained by trades is cancellation: the
risk-averse model only lets it shrink the queue ahead to the new level size;
the probabilistic models (hftbacktest's) take (1 - p) of it from the front, with
p = f(back) / (f(back) + f(front)), f(x) = x**n or log(1 + x).

Intensity fill model (fill_model = intensity): at each exchange event an open
order at depth delta (price units from the exchange mid) fills completely with
probability 1 - exp(-A exp(-k delta) dt), dt the time since the previous such
event or since the order arrived, whichever is later (seeded xoshiro256**).
"""
cimport cython
cimport numpy as cnp
from libc.math cimport exp, fabs, log, NAN, isnan
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from hftcore.book cimport BOOK_NO_ASK, BOOK_NO_BID, L2Book
from hftcore.quoting cimport compute_quote, quote_out_t, quote_params_init, quote_params_set_intensity, quote_params_t
from hftcore.types cimport (HFT_EV_BBO, HFT_EV_DEPTH, HFT_EV_SNAPSHOT, HFT_EV_TRADE, HFT_EVF_BEGIN,
                            HFT_EVF_END, hft_event_t)
from hftcore.volatility cimport (ewma_vol_init, ewma_vol_sigma, ewma_vol_t, ewma_vol_update, intensity_fit,
                                 intensity_free, intensity_init, intensity_on_trade, intensity_t)

import numpy as np

from hftcore.book import L2Book as _L2Book
from hftcore.types import EVENT_DTYPE

cnp.import_array()

FILL_DTYPE = np.dtype([("exch_ts", "<i8"), ("report_ts", "<i8"), ("order_id", "<i8"), ("px", "<i8"),
                       ("qty", "<i8"), ("position", "<i8"), ("fee", "<f8"), ("cash", "<f8"), ("mid", "<f8"),
                       ("side", "<i8"), ("taker", "<i8"), ("submit_ts", "<i8")])
SAMPLE_DTYPE = np.dtype([("ts", "<i8"), ("mid", "<f8"), ("position", "<i8"), ("cash", "<f8"),
                         ("equity", "<f8"), ("fees", "<f8"), ("bid_px", "<i8"), ("ask_px", "<i8"),
                         ("sigma", "<f8"), ("reservation", "<f8")])

QUEUE_MODELS = {"risk_averse": BT_QUEUE_RISK_AVERSE, "power": BT_QUEUE_PROB_POWER, "log": BT_QUEUE_PROB_LOG}
FILL_MODELS = {"queue": BT_FILL_QUEUE, "intensity": BT_FILL_INTENSITY}


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline double _u01(uint64_t* s) noexcept nogil:
    cdef uint64_t result = _rotl(s[1] * 5, 7) * 9
    cdef uint64_t t = s[1] << 17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return ((result >> 11) + 0.5) * (1.0 / 9007199254740992.0)


cdef inline double _qf(int model, double n, double x) noexcept nogil:
    if x <= 0:
        return 0.0
    if model == BT_QUEUE_PROB_LOG:
        return log(1.0 + x)
    return x ** n


@cython.final
cdef class ReplayKernel:
    """The compiled replay loop; :class:`hftmm.backtesting.BacktestEngine` drives it.

    Construct with the parameter dict built by the engine (units in
    backtest.pxd), then call :meth:`run` on consecutive event chunks and
    :meth:`finish` once; :meth:`take_fills` / :meth:`take_samples` drain the
    outputs as numpy arrays.
    """
    cdef bt_params_t p
    cdef quote_params_t qp
    cdef ewma_vol_t vol
    cdef intensity_t inten
    cdef bint inten_ok
    cdef L2Book xbook
    cdef L2Book sbook
    cdef bt_order_t orders[BT_MAX_ORDERS]
    cdef uint64_t rng[4]
    # exchange-side state
    cdef int64_t t_x                 # exchange clock (running max)
    cdef int64_t t_l                 # strategy clock (running max)
    cdef int64_t position            # lots (exchange truth)
    cdef double cash
    cdef double fees
    cdef int64_t next_id
    cdef int64_t last_intensity_ns
    # strategy-side state
    cdef int64_t known_position      # lots (as reported)
    cdef int64_t next_quote_ns
    cdef int64_t next_fit_ns
    cdef int64_t next_sample_ns
    cdef double last_mid_ticks
    cdef double last_sigma
    cdef double last_reservation
    cdef bint started
    # outputs
    cdef bt_fill_t* fills
    cdef Py_ssize_t n_fills, cap_fills
    cdef bt_sample_t* samples
    cdef Py_ssize_t n_samples, cap_samples
    cdef bt_report_t* reports
    cdef Py_ssize_t rep_head, rep_n, rep_cap
    # counters
    cdef readonly int64_t events
    cdef readonly int64_t orders_submitted
    cdef readonly int64_t orders_rejected
    cdef readonly int64_t orders_cancelled
    cdef readonly int64_t cancels_sent
    cdef readonly int64_t fill_count
    cdef readonly int64_t partial_fills
    cdef readonly int64_t quotes
    cdef readonly int64_t slots_exhausted
    cdef readonly int64_t maker_lots
    cdef readonly int64_t taker_lots
    cdef readonly int64_t lifetime_sum_ns
    cdef readonly int64_t lifetime_count
    cdef int64_t next_order_ns       # earliest pending arrival/cancel at the exchange
    cdef int n_open                  # orders resting at the exchange
    cdef int open_idx[BT_MAX_ORDERS] # their slots

    def __cinit__(self):
        self.fills = NULL
        self.samples = NULL
        self.reports = NULL
        self.inten_ok = False

    def __init__(self, dict params, quote: dict, uint64_t seed=1):
        cdef int i
        cdef uint64_t z
        p = params
        self.p.tick_size = p["tick_size"]
        self.p.lot_size = p["lot_size"]
        self.p.order_lots = p["order_lots"]
        self.p.entry_latency_ns = p["entry_latency_ns"]
        self.p.cancel_latency_ns = p["cancel_latency_ns"]
        self.p.response_latency_ns = p["response_latency_ns"]
        self.p.feed_latency_ns = p["feed_latency_ns"]
        self.p.queue_model = QUEUE_MODELS[p["queue_model"]]
        self.p.queue_power = p["queue_power"]
        self.p.fill_model = FILL_MODELS[p["fill_model"]]
        self.p.maker_fee = p["maker_fee"]
        self.p.taker_fee = p["taker_fee"]
        self.p.post_only = 1 if p["post_only"] else 0
        self.p.requote_interval_ns = p["requote_interval_ns"]
        self.p.requote_threshold = p["requote_threshold"]
        self.p.sample_interval_ns = p["sample_interval_ns"]
        self.p.vol_half_life_s = p["vol_half_life_s"]
        self.p.estimate_intensity = 1 if p["estimate_intensity"] else 0
        self.p.intensity_window_s = p["intensity_window_s"]
        self.p.intensity_fit_ns = p["intensity_fit_ns"]
        self.p.fill_A = p["fill_A"]
        self.p.fill_k = p["fill_k"]
        if self.p.order_lots <= 0:
            raise ValueError("order_lots must be > 0")
        q = quote
        if quote_params_init(&self.qp, 0 if q["model"] == "as" else 1, q["gamma"], q["xi"], q["order_qty"],
                             q["k"], q["A"], q["horizon_s"], 1 if q["rolling"] else 0,
                             0 if q["fair_value"] == "mid" else 1, q["tick_size"], q["min_spread"],
                             q["max_inventory"]) != 0:
            raise ValueError(f"invalid quoting parameters: {quote}")
        ewma_vol_init(&self.vol, self.p.vol_half_life_s)
        if self.p.estimate_intensity:
            if intensity_init(&self.inten, self.p.intensity_window_s, self.p.tick_size, 50, 20) != 0:
                raise MemoryError()
            self.inten_ok = True
        self.xbook = _L2Book(self.p.tick_size, self.p.lot_size)
        self.sbook = _L2Book(self.p.tick_size, self.p.lot_size)
        memset(self.orders, 0, sizeof(self.orders))
        for i in range(4):  # splitmix64
            seed += 0x9E3779B97F4A7C15ULL
            z = seed
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
            self.rng[i] = z ^ (z >> 31)
        self.t_x = -INT64_MAX
        self.t_l = -INT64_MAX
        self.next_order_ns = INT64_MAX
        self.n_open = 0
        self.next_id = 1
        self.last_mid_ticks = NAN
        self.last_sigma = NAN
        self.last_reservation = NAN
        self.cap_fills = 1024
        self.fills = <bt_fill_t*>malloc(self.cap_fills * sizeof(bt_fill_t))
        self.cap_samples = 4096
        self.samples = <bt_sample_t*>malloc(self.cap_samples * sizeof(bt_sample_t))
        self.rep_cap = 1024
        self.reports = <bt_report_t*>malloc(self.rep_cap * sizeof(bt_report_t))
        if self.fills == NULL or self.samples == NULL or self.reports == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.fills)
        free(self.samples)
        free(self.reports)
        if self.inten_ok:
            intensity_free(&self.inten)

    # ------------------------------------------------------------ outputs
    cdef int _push_fill(self, bt_order_t* o, int64_t lots, bint taker) except -1 nogil:
        cdef bt_fill_t* f
        cdef double notional, fee, mid
        cdef int64_t bb, ba
        if self.n_fills == self.cap_fills:
            f = <bt_fill_t*>realloc(self.fills, 2 * self.cap_fills * sizeof(bt_fill_t))
            if f == NULL:
                with gil:
                    raise MemoryError()
            self.fills = f
            self.cap_fills *= 2
        notional = <double>o.px * self.p.tick_size * <double>lots * self.p.lot_size
        fee = notional * (self.p.taker_fee if taker else self.p.maker_fee)
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
        bb = self.xbook.best_bid_c()
        ba = self.xbook.best_ask_c()
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * self.p.tick_size
        f = &self.fills[self.n_fills]
        f.exch_ts = self.t_x
        f.report_ts = self.t_x + self.p.response_latency_ns
        f.order_id = o.id
        f.px = o.px
        f.qty = lots
        f.position = self.position
        f.fee = fee
        f.cash = self.cash
        f.mid = mid
        f.side = o.side
        f.taker = 1 if taker else 0
        f.submit_ts = o.submit_ns
        self.n_fills += 1
        self._report(f.report_ts, lots if o.side == 0 else -lots, <int>(o - &self.orders[0]), 0)
        if o.leaves == 0:
            o.state = BT_DONE
            self._open_remove(<int>(o - &self.orders[0]))
            self.lifetime_sum_ns += self.t_x - o.arrive_ns
            self.lifetime_count += 1
            self._report(f.report_ts, 0, <int>(o - &self.orders[0]), 1)
        return 0

    cdef int _report(self, int64_t ts, int64_t lots, int slot, int kind) except -1 nogil:
        cdef bt_report_t* r
        cdef Py_ssize_t i, j
        if self.rep_n == self.rep_cap:
            r = <bt_report_t*>malloc(2 * self.rep_cap * sizeof(bt_report_t))
            if r == NULL:
                with gil:
                    raise MemoryError()
            for i in range(self.rep_n):
                j = (self.rep_head + i) % self.rep_cap
                r[i] = self.reports[j]
            free(self.reports)
            self.reports = r
            self.rep_head = 0
            self.rep_cap *= 2
        j = (self.rep_head + self.rep_n) % self.rep_cap
        self.reports[j].ts = ts
        self.reports[j].lots = lots
        self.reports[j].slot = slot
        self.reports[j].kind = kind
        self.rep_n += 1
        return 0

    cdef int _sample(self, int64_t ts) except -1 nogil:
        cdef bt_sample_t* s
        cdef int64_t bb = self.xbook.best_bid_c(), ba = self.xbook.best_ask_c()
        cdef double mid
        cdef int i
        if self.n_samples == self.cap_samples:
            s = <bt_sample_t*>realloc(self.samples, 2 * self.cap_samples * sizeof(bt_sample_t))
            if s == NULL:
                with gil:
                    raise MemoryError()
            self.samples = s
            self.cap_samples *= 2
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * self.p.tick_size
        s = &self.samples[self.n_samples]
        s.ts = ts
        s.mid = mid
        s.position = self.position
        s.cash = self.cash
        s.equity = self.cash + <double>self.position * self.p.lot_size * mid
        s.fees = self.fees
        s.bid_px = -1
        s.ask_px = -1
        for i in range(BT_MAX_ORDERS):
            if self.orders[i].local == BT_L_WORKING:
                if self.orders[i].side == 0:
                    s.bid_px = self.orders[i].px
                else:
                    s.ask_px = self.orders[i].px
        s.sigma = self.last_sigma
        s.reservation = self.last_reservation
        self.n_samples += 1
        return 0

    # ------------------------------------------------------------ exchange side
    cdef int _order_arrivals(self, int64_t upto) except -1 nogil:
        """Our new orders and cancels that reach the exchange at <= upto, in time order."""
        cdef int i, best
        cdef int64_t t, tb
        cdef bt_order_t* o
        cdef int64_t bb, ba
        if upto < self.next_order_ns:
            return 0
        while True:
            best = -1
            tb = INT64_MAX
            for i in range(BT_MAX_ORDERS):
                o = &self.orders[i]
                if o.state == BT_IN_FLIGHT and o.arrive_ns <= upto and o.arrive_ns < tb:
                    tb = o.arrive_ns
                    best = i
                elif o.state == BT_OPEN and o.cancel_ns <= upto and o.cancel_ns < tb:
                    tb = o.cancel_ns
                    best = i
            if best < 0:
                self._update_next_order()
                return 0
            o = &self.orders[best]
            if tb > self.t_x:
                self.t_x = tb
            if o.state == BT_IN_FLIGHT:
                bb = self.xbook.best_bid_c()
                ba = self.xbook.best_ask_c()
                if (o.side == 0 and ba != BOOK_NO_ASK and o.px >= ba) or (o.side == 1 and bb != BOOK_NO_BID and o.px <= bb):
                    if self.p.post_only:
                        o.state = BT_DONE
                        self.orders_rejected += 1
                        self._report(self.t_x + self.p.response_latency_ns, 0, best, 1)
                        continue
                    # takes liquidity at the opposite best (one level; the rest rests)
                    o.state = BT_OPEN
                    self._open_add(best)
                    self._take(o)
                    if o.state == BT_DONE:
                        continue
                    self._open_remove(best)
                o.state = BT_OPEN
                self._open_add(best)
                o.queue_ahead = <double>self.xbook.qty_at_c(o.side, o.px)
                o.traded_at_level = 0
                if o.cancel_ns <= upto:
                    continue   # its cancel may already be due: next round handles it
            else:
                o.state = BT_DONE
                self._open_remove(best)
                self.lifetime_sum_ns += self.t_x - o.arrive_ns
                self.lifetime_count += 1
                self.orders_cancelled += 1
                self._report(self.t_x + self.p.response_latency_ns, 0, best, 1)

    cdef inline void _open_add(self, int slot) noexcept nogil:
        self.open_idx[self.n_open] = slot
        self.n_open += 1

    cdef inline void _open_remove(self, int slot) noexcept nogil:
        cdef int i
        for i in range(self.n_open):
            if self.open_idx[i] == slot:
                self.n_open -= 1
                self.open_idx[i] = self.open_idx[self.n_open]
                return

    cdef void _update_next_order(self) noexcept nogil:
        cdef int i
        cdef int64_t t = INT64_MAX
        cdef bt_order_t* o
        for i in range(BT_MAX_ORDERS):
            o = &self.orders[i]
            if o.state == BT_IN_FLIGHT and o.arrive_ns < t:
                t = o.arrive_ns
            elif o.state == BT_OPEN and o.cancel_ns < t:
                t = o.cancel_ns
        self.next_order_ns = t

    cdef int _take(self, bt_order_t* o) except -1 nogil:
        cdef int opp = 1 - o.side
        cdef int64_t lvl = self.xbook.best_ask_c() if o.side == 0 else self.xbook.best_bid_c()
        cdef int64_t avail = self.xbook.qty_at_c(opp, lvl)
        cdef int64_t f = o.leaves if o.leaves < avail else avail
        cdef int64_t px = o.px
        if f <= 0:
            return 0
        o.px = lvl
        self._push_fill(o, f, True)
        o.px = px
        return 0

    cdef int _on_trade_x(self, const hft_event_t* e) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        cdef double over
        cdef int64_t f
        cdef int j = self.n_open - 1
        while j >= 0:          # backwards: a complete fill removes the current entry
            o = &self.orders[self.open_idx[j]]
            j -= 1
            if o.side != e.side:
                continue
            if (o.side == 0 and o.px > e.px) or (o.side == 1 and o.px < e.px):
                self._push_fill(o, o.leaves, False)      # traded through our price
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
                        self._push_fill(o, f, False)
        return 0

    cdef int _on_depth_x(self, const hft_event_t* e, int64_t prev) except -1 nogil:
        """Queue update for our orders at the level (before the crossing check)."""
        cdef int i
        cdef bt_order_t* o
        cdef double chg, front, back, pr, est, fb, ff
        for i in range(self.n_open):
            o = &self.orders[self.open_idx[i]]
            if o.side != e.side or o.px != e.px:
                continue
            chg = <double>(prev - e.qty - o.traded_at_level)
            o.traded_at_level = 0
            if chg > 0 and self.p.queue_model != BT_QUEUE_RISK_AVERSE:
                front = o.queue_ahead
                back = <double>prev - front
                if back < 0:
                    back = 0
                fb = _qf(self.p.queue_model, self.p.queue_power, back)
                ff = _qf(self.p.queue_model, self.p.queue_power, front)
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

    cdef int _check_cross_x(self) except -1 nogil:
        """The opposite best on or through our price fills us."""
        cdef int i
        cdef bt_order_t* o
        cdef int64_t bb = self.xbook.best_bid_c(), ba = self.xbook.best_ask_c()
        cdef int j = self.n_open - 1
        while j >= 0:
            o = &self.orders[self.open_idx[j]]
            j -= 1
            if (o.side == 0 and ba != BOOK_NO_ASK and ba <= o.px) or (o.side == 1 and bb != BOOK_NO_BID and bb >= o.px):
                self._push_fill(o, o.leaves, False)
        return 0

    cdef int _intensity_fills(self, int64_t now) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        cdef double dt, mid, delta, lam
        cdef int64_t bb = self.xbook.best_bid_c(), ba = self.xbook.best_ask_c()
        cdef int64_t prev = self.last_intensity_ns, since
        if prev == 0:
            self.last_intensity_ns = now
            return 0
        self.last_intensity_ns = now
        if now <= prev or bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        cdef int j = self.n_open - 1
        while j >= 0:
            o = &self.orders[self.open_idx[j]]
            j -= 1
            # exposed since the last draw or since the order arrived, whichever is
            # later (an order is not exposed before it rests, nor while none rests)
            since = prev if prev > o.arrive_ns else o.arrive_ns
            if since >= now:
                continue
            dt = <double>(now - since) * 1e-9
            delta = fabs(<double>o.px - mid) * self.p.tick_size
            lam = self.p.fill_A * exp(-self.p.fill_k * delta)
            if _u01(self.rng) < 1.0 - exp(-lam * dt):
                self._push_fill(o, o.leaves, False)
        return 0

    cdef int _exchange_event(self, const hft_event_t* e) except -1 nogil:
        cdef int64_t prev
        cdef int kind = e.kind
        if kind == HFT_EV_DEPTH:
            if self.n_open == 0:
                self.xbook.apply_c(e.side, e.px, e.qty)
                return 0
            prev = self.xbook.qty_at_c(e.side, e.px)
            self.xbook.apply_c(e.side, e.px, e.qty)
            if self.p.fill_model == BT_FILL_QUEUE:
                self._on_depth_x(e, prev)
                if e.flags & HFT_EVF_END:
                    self._check_cross_x()
            elif e.flags & HFT_EVF_END:
                self._intensity_fills(self.t_x)
        elif kind == HFT_EV_TRADE:
            if self.n_open and self.p.fill_model == BT_FILL_QUEUE:
                self._on_trade_x(e)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_BEGIN:
                self.xbook.clear_c()
            self.xbook.apply_c(e.side, e.px, e.qty)
        return 0

    # ------------------------------------------------------------ strategy side
    cdef int _deliver_reports(self, int64_t upto) except -1 nogil:
        cdef bt_report_t* r
        cdef bt_order_t* o
        while self.rep_n > 0:
            r = &self.reports[self.rep_head]
            if r.ts > upto:
                break
            if r.kind == 0:
                self.known_position += r.lots
            else:
                o = &self.orders[r.slot]
                o.local = BT_L_GONE
            self.rep_head = (self.rep_head + 1) % self.rep_cap
            self.rep_n -= 1
        return 0

    cdef int _submit(self, int side, int64_t px, int64_t now) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        for i in range(BT_MAX_ORDERS):
            o = &self.orders[i]
            if (o.state == BT_FREE or o.state == BT_DONE) and o.local != BT_L_WORKING and o.local != BT_L_CANCELING:
                o.id = self.next_id
                self.next_id += 1
                o.side = side
                o.state = BT_IN_FLIGHT
                o.local = BT_L_WORKING
                o.px = px
                o.qty = self.p.order_lots
                o.leaves = self.p.order_lots
                o.queue_ahead = 0
                o.traded_at_level = 0
                o.arrive_ns = now + self.p.entry_latency_ns
                o.cancel_ns = INT64_MAX
                o.submit_ns = now
                self.orders_submitted += 1
                if o.arrive_ns < self.next_order_ns:
                    self.next_order_ns = o.arrive_ns
                return 0
        self.slots_exhausted += 1
        return 0

    cdef int _cancel(self, bt_order_t* o, int64_t now) except -1 nogil:
        o.local = BT_L_CANCELING
        if o.state == BT_IN_FLIGHT or o.state == BT_OPEN:
            o.cancel_ns = now + self.p.cancel_latency_ns
            self.cancels_sent += 1
            if o.cancel_ns < self.next_order_ns:
                self.next_order_ns = o.cancel_ns
        return 0

    cdef int _quote(self, int64_t now) except -1 nogil:
        cdef int64_t bb = self.sbook.best_bid_c(), ba = self.sbook.best_ask_c()
        cdef quote_out_t out
        cdef double sigma, q
        cdef int side, i, ok
        cdef int64_t px
        cdef bt_order_t* w
        cdef bt_order_t* o
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK or bb >= ba or self.vol.count < 1:
            return 0
        if self.p.estimate_intensity and now >= self.next_fit_ns:
            self.next_fit_ns = now + self.p.intensity_fit_ns
            intensity_fit(&self.inten, now)
            if self.inten.ready and self.inten.k_per_tick > 0:
                quote_params_set_intensity(&self.qp, self.inten.A, self.inten.k_per_tick / self.p.tick_size)
        sigma = ewma_vol_sigma(&self.vol) * (<double>bb + <double>ba) * 0.5 * self.p.tick_size
        self.last_sigma = sigma
        q = <double>self.known_position * self.p.lot_size
        if compute_quote(&self.qp, bb, ba, self.sbook.best_bid_qty_c(), self.sbook.best_ask_qty_c(),
                         sigma, q, now, &out) != 0:
            return 0
        self.quotes += 1
        self.last_reservation = out.reservation_price
        for side in range(2):
            ok = out.bid_ok if side == 0 else out.ask_ok
            px = out.bid_tick if side == 0 else out.ask_tick
            w = NULL
            for i in range(BT_MAX_ORDERS):
                o = &self.orders[i]
                if o.local == BT_L_WORKING and o.side == side:
                    if w != NULL:
                        self._cancel(w, now)      # never two working orders a side
                    w = o
            if not ok:
                if w != NULL:
                    self._cancel(w, now)
                continue
            if w == NULL:
                self._submit(side, px, now)
            elif w.px - px >= self.p.requote_threshold or px - w.px >= self.p.requote_threshold:
                self._cancel(w, now)
                self._submit(side, px, now)
        return 0

    cdef int _local_event(self, const hft_event_t* e, int64_t now) except -1 nogil:
        cdef int kind = e.kind
        cdef int64_t bb, ba
        cdef double mid
        if kind == HFT_EV_DEPTH:
            self.sbook.apply_c(e.side, e.px, e.qty)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_BEGIN:
                self.sbook.clear_c()
            self.sbook.apply_c(e.side, e.px, e.qty)
        elif kind == HFT_EV_TRADE:
            if self.p.estimate_intensity:
                bb = self.sbook.best_bid_c()
                ba = self.sbook.best_ask_c()
                if bb != BOOK_NO_BID and ba != BOOK_NO_ASK:
                    intensity_on_trade(&self.inten, now, e.px, bb + ba)
            return 0
        else:
            return 0
        if not (e.flags & HFT_EVF_END):
            return 0
        bb = self.sbook.best_bid_c()
        ba = self.sbook.best_ask_c()
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        if mid != self.last_mid_ticks:
            self.last_mid_ticks = mid
            ewma_vol_update(&self.vol, now, mid)
        if now >= self.next_quote_ns:
            self.next_quote_ns = now + self.p.requote_interval_ns
            self._quote(now)
        return 0

    cdef int _local_until(self, int64_t upto) except -1 nogil:
        """Our order arrivals/cancels at the exchange with time <= upto, reports and
        samples with time < upto, in time order (at equal times: arrivals, then the
        sample, then reports). Arrivals belong here, not just before the next
        exchange event: they make reports (rejections, cancels, taker fills) and
        taker fills move the position, which the strategy and the samples in
        between must see."""
        cdef int64_t t
        while True:
            t = INT64_MAX
            if self.rep_n > 0:
                t = self.reports[self.rep_head].ts
            if self.next_sample_ns < t:
                t = self.next_sample_ns
            if self.next_order_ns <= t and self.next_order_ns <= upto:
                self._order_arrivals(self.next_order_ns)   # raises next_order_ns
                continue
            if t >= upto:
                return 0
            if t == self.next_sample_ns:
                self._sample(t)
                self.next_sample_ns += self.p.sample_interval_ns
            else:
                self._deliver_reports(t)

    # ------------------------------------------------------------ the loop
    cdef Py_ssize_t _run(self, const hft_event_t* ev, Py_ssize_t n, Py_ssize_t i_x, bint final) except -1 nogil:
        """Process events; ev[0:i_x] were already applied on the exchange side.
        Returns the first index the strategy side has not seen (the tail to carry)."""
        cdef Py_ssize_t i_l = 0
        cdef int64_t tx, tl
        cdef const hft_event_t* e
        if not self.started and n > 0:
            self.started = True
            self.next_sample_ns = (ev[0].exch_ts // self.p.sample_interval_ns + 1) * self.p.sample_interval_ns
        while True:
            # exchange time of the next exchange event (running max)
            if i_x < n:
                tx = ev[i_x].exch_ts
                if tx < self.t_x:
                    tx = self.t_x
            else:
                tx = INT64_MAX
            # visible time of the next strategy event
            if i_l < i_x:
                e = &ev[i_l]
                tl = e.local_ts if self.p.feed_latency_ns < 0 else e.exch_ts + self.p.feed_latency_ns
                if tl < self.t_l:
                    tl = self.t_l
            elif i_l < n:
                tl = INT64_MAX - 1   # not applied on the exchange side yet
            else:
                tl = INT64_MAX
            if tx == INT64_MAX and (tl == INT64_MAX or not final):
                if final:
                    self._deliver_reports(INT64_MAX)   # samples after the data: finish()
                return i_l
            if tl < tx:
                if self.rep_n > 0 or self.next_sample_ns < tl or self.next_order_ns <= tl:
                    self._local_until(tl)
                self.t_l = tl
                self._local_event(&ev[i_l], tl)
                i_l += 1
                self.events += 1
            else:
                if self.rep_n > 0 or self.next_sample_ns < tx or self.next_order_ns <= tx:
                    self._local_until(tx)      # (arrivals at <= tx included)
                self.t_x = tx
                self._exchange_event(&ev[i_x])
                i_x += 1

    def run(self, events, Py_ssize_t applied=0, bint final=False):
        """Process an EVENT_DTYPE array whose first `applied` events the exchange
        side has already seen (the carried tail). Returns the index of the first
        event the strategy has not seen yet: carry ``events[i:]`` into the next
        call (with ``applied=len(events) - i``), or pass ``final=True`` last."""
        cdef cnp.ndarray arr = np.ascontiguousarray(events)
        cdef Py_ssize_t n = arr.shape[0], out
        if arr.dtype != EVENT_DTYPE:
            raise TypeError("events must be hftcore.EVENT_DTYPE records")
        if not 0 <= applied <= n:
            raise ValueError("applied out of range")
        with nogil:
            out = self._run(<const hft_event_t*>cnp.PyArray_DATA(arr), n, applied, final)
        return out

    def finish(self, int64_t end_ns):
        """Record the samples due up to end_ns (ns) after the last event, and a
        closing sample at end_ns itself (so the last equity includes every fill)."""
        with nogil:
            while self.next_sample_ns <= end_ns:
                self._sample(self.next_sample_ns)
                self.next_sample_ns += self.p.sample_interval_ns
            if self.next_sample_ns - self.p.sample_interval_ns < end_ns:
                self._sample(end_ns)

    def take_fills(self):
        """Fills since the last call as a FILL_DTYPE array."""
        cdef cnp.ndarray out = np.empty(self.n_fills, dtype=FILL_DTYPE)
        if self.n_fills:
            memcpy(cnp.PyArray_DATA(out), self.fills, self.n_fills * sizeof(bt_fill_t))
        self.n_fills = 0
        return out

    def take_samples(self):
        """Equity samples since the last call as a SAMPLE_DTYPE array."""
        cdef cnp.ndarray out = np.empty(self.n_samples, dtype=SAMPLE_DTYPE)
        if self.n_samples:
            memcpy(cnp.PyArray_DATA(out), self.samples, self.n_samples * sizeof(bt_sample_t))
        self.n_samples = 0
        return out

    def counters(self):
        """Counters of the run as a dict."""
        return dict(events=self.events, orders_submitted=self.orders_submitted,
                    orders_rejected=self.orders_rejected, orders_cancelled=self.orders_cancelled,
                    cancels_sent=self.cancels_sent, fills=self.fill_count, partial_fills=self.partial_fills,
                    quotes=self.quotes, slots_exhausted=self.slots_exhausted, maker_lots=self.maker_lots,
                    taker_lots=self.taker_lots, lifetime_sum_ns=self.lifetime_sum_ns,
                    lifetime_count=self.lifetime_count)

    @property
    def position(self):
        """Position, lots (exchange side)."""
        return self.position

    @property
    def cash(self):
        """Cash, quote currency."""
        return self.cash

    @property
    def fees(self):
        return self.fees
