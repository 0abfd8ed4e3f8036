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
exchange-side position at the fill time. The position limit (``max_lots``) holds
even if every order not known to be done fills, as the live RiskManager's: a new
order gets at most the room the known position and the open orders (in flight,
resting or being cancelled) leave on its side, and none when there is no room.
The order-rate limit (``max_orders_per_s``) is the live one too: no new order
while the last second already holds that many.

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

Many strategies, one pass: the market does not react to our orders in replay,
so the exchange book, the strategy-visible book and the event cursors are shared
while everything a strategy owns (quote parameters, estimators, orders, fills,
positions, report queue, samples, counters, its clocks of quoting, sampling and
fitting, its random generator) lives in a ``bt_strat_t``. Before a shared event
at time T, each strategy processes its own local items with time < T (and its
order arrivals at <= T) exactly as it would alone; the event is then applied to
the shared book once and to each strategy's orders. Strategy i therefore sees the
same sequence as a single-strategy run, and its results are bit-identical.
Strategies of one pass must share tick and lot sizes and the feed latency (what
decides the shared clocks); everything else may differ.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport exp, fabs, log, NAN, isnan
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from hftcore.book cimport BOOK_NO_ASK, BOOK_NO_BID, L2Book
from hftcore.rng cimport hft_rng_seed, hft_rng_u01
from hftcore.quoting cimport compute_quote, quote_out_t, quote_params_init, quote_params_set_intensity, quote_params_t
from hftcore.types cimport (HFT_EV_BBO, HFT_EV_BOOK_INVALID, HFT_EV_DEPTH, HFT_EV_SNAPSHOT, HFT_EV_TRADE,
                            HFT_EVF_BEGIN,
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


cdef inline int64_t _xts(const hft_event_t* e) noexcept nogil:
    """An event's exchange time; unknown (<= 0, e.g. a spot REST snapshot has no
    E) is taken as its receive time."""
    return e.exch_ts if e.exch_ts > 0 else e.local_ts


cdef inline double _qf(int model, double n, double x) noexcept nogil:
    if x <= 0:
        return 0.0
    if model == BT_QUEUE_PROB_LOG:
        return log(1.0 + x)
    return x ** n


cdef inline int64_t _deadline(const bt_strat_t* s) noexcept nogil:
    """A strategy has local items before T (reports or samples with time < T, or
    order arrivals at <= T) iff its deadline < T."""
    cdef int64_t d = s.next_sample_ns
    if s.rep_n > 0 and s.reports[s.rep_head].ts < d:
        d = s.reports[s.rep_head].ts
    if s.next_order_ns != INT64_MAX and s.next_order_ns - 1 < d:
        d = s.next_order_ns - 1
    return d


@cython.final
cdef class ReplayKernel:
    """The compiled replay loop; :class:`hftmm.backtesting.BacktestEngine` drives it.

    Construct with the parameter dict built by the engine (units in
    backtest.pxd), then call :meth:`run` on consecutive event chunks and
    :meth:`finish` once; :meth:`take_fills` / :meth:`take_samples` drain the
    outputs as numpy arrays.

    ``ReplayKernel.multi([(params, quote, seed), ...])`` runs N strategies in one
    pass over the same events (shared books); the outputs take the strategy's
    index: ``take_fills(i)``, ``take_samples(i)``, ``counters(i)``.
    """
    cdef bt_strat_t* S
    cdef readonly int n_strat
    cdef bint any_inten
    cdef L2Book xbook
    cdef L2Book sbook
    cdef int64_t t_x                 # exchange clock (running max), shared
    cdef int64_t t_l                 # strategy clock (running max), shared
    cdef int64_t feed_latency_ns
    cdef int64_t next_local          # <= every strategy's deadline (see _deadline)
    cdef bint started
    cdef readonly int64_t events
    cdef readonly int64_t book_invalid        # BOOK_INVALID records seen (strategy side)
    cdef readonly int64_t book_invalid_ns     # time the strategy's book was invalid, ns
    cdef int64_t invalid_since               # -1: the book is valid

    def __cinit__(self):
        self.S = NULL
        self.n_strat = 0

    def __init__(self, dict params=None, quote=None, uint64_t seed=1, strategies=None):
        cdef int i
        if strategies is None:
            if params is None or quote is None:
                raise TypeError("ReplayKernel(params, quote, seed) or ReplayKernel.multi([...])")
            strategies = [(params, quote, seed)]
        strategies = list(strategies)
        if not strategies:
            raise ValueError("at least one strategy")
        p0 = strategies[0][0]
        for sp in strategies:
            for key in ("tick_size", "lot_size", "feed_latency_ns"):
                if sp[0][key] != p0[key]:
                    raise ValueError(f"strategies of one pass must share {key}: {sp[0][key]!r} != {p0[key]!r}")
        self.S = <bt_strat_t*>calloc(len(strategies), sizeof(bt_strat_t))
        if self.S == NULL:
            raise MemoryError()
        for i, sp in enumerate(strategies):
            self._init_strat(&self.S[i], sp[0], sp[1], sp[2] if len(sp) > 2 else 1)
            self.n_strat = i + 1
            if self.S[i].p.estimate_intensity:
                self.any_inten = True
            self._share_estimators(i)
        self.feed_latency_ns = p0["feed_latency_ns"]
        self.xbook = _L2Book(p0["tick_size"], p0["lot_size"])
        self.sbook = _L2Book(p0["tick_size"], p0["lot_size"])
        self.t_x = -INT64_MAX
        self.next_local = -INT64_MAX
        self.t_l = -INT64_MAX
        self.invalid_since = -1

    @classmethod
    def multi(cls, strategies):
        """N strategies in one pass: ``strategies`` = [(params, quote, seed), ...]."""
        return cls(strategies=strategies)

    cdef _init_strat(self, bt_strat_t* s, dict params, quote, uint64_t seed):
        cdef int i
        p = params
        s.p.tick_size = p["tick_size"]
        s.p.lot_size = p["lot_size"]
        s.p.order_lots = p["order_lots"]
        s.p.max_lots = p.get("max_lots", 0)
        s.p.max_sends = p.get("max_orders_per_s", 0)
        if s.p.max_sends > 1_000_000:
            raise ValueError("max_orders_per_s must be <= 1000000 (or <= 0: no limit)")
        if s.p.max_sends > 0:
            s.sends = <int64_t*>malloc(s.p.max_sends * sizeof(int64_t))
            if s.sends == NULL:
                raise MemoryError()
        s.p.entry_latency_ns = p["entry_latency_ns"]
        s.p.cancel_latency_ns = p["cancel_latency_ns"]
        s.p.response_latency_ns = p["response_latency_ns"]
        s.p.feed_latency_ns = p["feed_latency_ns"]
        s.p.queue_model = QUEUE_MODELS[p["queue_model"]]
        s.p.queue_power = p["queue_power"]
        s.p.fill_model = FILL_MODELS[p["fill_model"]]
        s.fill_model = s.p.fill_model
        s.p.maker_fee = p["maker_fee"]
        s.p.taker_fee = p["taker_fee"]
        s.p.post_only = 1 if p["post_only"] else 0
        s.p.requote_interval_ns = p["requote_interval_ns"]
        s.p.requote_threshold = p["requote_threshold"]
        s.p.sample_interval_ns = p["sample_interval_ns"]
        s.p.vol_half_life_s = p["vol_half_life_s"]
        s.p.estimate_intensity = 1 if p["estimate_intensity"] else 0
        s.p.intensity_window_s = p["intensity_window_s"]
        s.p.intensity_fit_ns = p["intensity_fit_ns"]
        s.p.fill_A = p["fill_A"]
        s.p.fill_k = p["fill_k"]
        if s.p.order_lots <= 0:
            raise ValueError("order_lots must be > 0")
        if s.p.sample_interval_ns <= 0:
            raise ValueError("sample_interval_ns must be > 0")
        q = quote
        if quote_params_init(&s.qp, 0 if q["model"] == "as" else 1, q["gamma"], q["xi"], q["order_qty"],
                             q["k"], q["A"], q["horizon_s"], 1 if q["rolling"] else 0,
                             0 if q["fair_value"] == "mid" else 1, q["tick_size"], q["min_spread"],
                             q["max_inventory"]) != 0:
            raise ValueError(f"invalid quoting parameters: {quote}")
        ewma_vol_init(&s.vol, s.p.vol_half_life_s)
        if s.p.estimate_intensity:
            if intensity_init(&s.inten, s.p.intensity_window_s, s.p.tick_size, 50, 20) != 0:
                raise MemoryError()
            s.inten_ok = True
        memset(s.orders, 0, sizeof(s.orders))
        hft_rng_seed(s.rng, seed)
        s.t_x = -INT64_MAX
        s.next_order_ns = INT64_MAX
        s.n_open = 0
        self._open_bounds(s)
        s.next_id = 1
        s.last_mid_ticks = NAN
        s.last_sigma = NAN
        s.last_reservation = NAN
        s.cap_fills = 1024
        s.fills = <bt_fill_t*>malloc(s.cap_fills * sizeof(bt_fill_t))
        s.cap_samples = 4096
        s.samples = <bt_sample_t*>malloc(s.cap_samples * sizeof(bt_sample_t))
        s.rep_cap = 1024
        s.reports = <bt_report_t*>malloc(s.rep_cap * sizeof(bt_report_t))
        if s.fills == NULL or s.samples == NULL or s.reports == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef int i
        if self.S == NULL:
            return
        for i in range(self.n_strat):
            free(self.S[i].fills)
            free(self.S[i].samples)
            free(self.S[i].reports)
            free(self.S[i].sends)
            if self.S[i].inten_ok:
                intensity_free(&self.S[i].inten)
        free(self.S)

    cdef _share_estimators(self, int i):
        """Estimators only see shared events, so strategies whose estimator
        parameters are equal share one (updated by its owner, the first of them):
        the volatility when the half-life is equal; the intensity estimate when,
        also, the window, the refit interval and the requote interval are (fits
        happen in the quote step, at times that depend on those only)."""
        cdef bt_strat_t* s = &self.S[i]
        cdef bt_strat_t* o
        cdef int j
        s.volp = &s.vol
        s.vol_owner = 1
        s.intenp = &s.inten
        s.inten_owner = 1 if s.p.estimate_intensity else 0
        for j in range(i):
            o = &self.S[j]
            if o.vol_owner and o.p.vol_half_life_s == s.p.vol_half_life_s:
                s.volp = &o.vol
                s.vol_owner = 0
                break
        if not s.p.estimate_intensity:
            return
        for j in range(i):
            o = &self.S[j]
            if (o.inten_owner and o.p.vol_half_life_s == s.p.vol_half_life_s
                    and o.p.intensity_window_s == s.p.intensity_window_s
                    and o.p.intensity_fit_ns == s.p.intensity_fit_ns
                    and o.p.requote_interval_ns == s.p.requote_interval_ns):
                s.intenp = &o.inten
                s.inten_owner = 0
                break

    cdef bt_strat_t* _strat(self, int i) except NULL:
        if i < 0 or i >= self.n_strat:
            raise IndexError(f"strategy {i} out of range (0..{self.n_strat - 1})")
        return &self.S[i]

    # ------------------------------------------------------------ outputs
    cdef int _push_fill(self, bt_strat_t* s, bt_order_t* o, int64_t lots, bint taker) except -1 nogil:
        cdef bt_fill_t* f
        cdef double notional, fee, mid
        cdef int64_t bb, ba
        if s.n_fills == s.cap_fills:
            f = <bt_fill_t*>realloc(s.fills, 2 * s.cap_fills * sizeof(bt_fill_t))
            if f == NULL:
                with gil:
                    raise MemoryError()
            s.fills = f
            s.cap_fills *= 2
        notional = <double>o.px * s.p.tick_size * <double>lots * s.p.lot_size
        fee = notional * (s.p.taker_fee if taker else s.p.maker_fee)
        if o.side == 0:
            s.position += lots
            s.cash -= notional
        else:
            s.position -= lots
            s.cash += notional
        s.cash -= fee
        s.fees += fee
        o.leaves -= lots
        if taker:
            s.taker_lots += lots
        else:
            s.maker_lots += lots
        s.fill_count += 1
        if o.leaves > 0:
            s.partial_fills += 1
        bb = self.xbook.best_bid_c()
        ba = self.xbook.best_ask_c()
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * s.p.tick_size
        f = &s.fills[s.n_fills]
        f.exch_ts = s.t_x
        f.report_ts = s.t_x + s.p.response_latency_ns
        f.order_id = o.id
        f.px = o.px
        f.qty = lots
        f.position = s.position
        f.fee = fee
        f.cash = s.cash
        f.mid = mid
        f.side = o.side
        f.taker = 1 if taker else 0
        f.submit_ts = o.submit_ns
        s.n_fills += 1
        self._report(s, f.report_ts, lots if o.side == 0 else -lots, <int>(o - &s.orders[0]), 0)
        if o.leaves == 0:
            o.state = BT_DONE
            self._open_remove(s, <int>(o - &s.orders[0]))
            s.lifetime_sum_ns += s.t_x - o.arrive_ns
            s.lifetime_count += 1
            self._report(s, f.report_ts, 0, <int>(o - &s.orders[0]), 1)
        return 0

    cdef int _report(self, bt_strat_t* s, int64_t ts, int64_t lots, int slot, int kind) except -1 nogil:
        cdef bt_report_t* r
        cdef Py_ssize_t i, j
        if s.rep_n == s.rep_cap:
            r = <bt_report_t*>malloc(2 * s.rep_cap * sizeof(bt_report_t))
            if r == NULL:
                with gil:
                    raise MemoryError()
            for i in range(s.rep_n):
                j = (s.rep_head + i) % s.rep_cap
                r[i] = s.reports[j]
            free(s.reports)
            s.reports = r
            s.rep_head = 0
            s.rep_cap *= 2
        j = (s.rep_head + s.rep_n) % s.rep_cap
        s.reports[j].ts = ts
        s.reports[j].lots = lots
        s.reports[j].slot = slot
        s.reports[j].kind = kind
        s.rep_n += 1
        if ts < self.next_local:
            self.next_local = ts
        return 0

    cdef int _sample(self, bt_strat_t* s, int64_t ts) except -1 nogil:
        cdef bt_sample_t* sm
        cdef int64_t bb = self.xbook.best_bid_c(), ba = self.xbook.best_ask_c()
        cdef double mid
        cdef int i
        if s.n_samples == s.cap_samples:
            sm = <bt_sample_t*>realloc(s.samples, 2 * s.cap_samples * sizeof(bt_sample_t))
            if sm == NULL:
                with gil:
                    raise MemoryError()
            s.samples = sm
            s.cap_samples *= 2
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * s.p.tick_size
        sm = &s.samples[s.n_samples]
        sm.ts = ts
        sm.mid = mid
        sm.position = s.position
        sm.cash = s.cash
        sm.equity = s.cash + <double>s.position * s.p.lot_size * mid
        sm.fees = s.fees
        sm.bid_px = -1
        sm.ask_px = -1
        for i in range(BT_MAX_ORDERS):
            if s.orders[i].local == BT_L_WORKING:
                if s.orders[i].side == 0:
                    sm.bid_px = s.orders[i].px
                else:
                    sm.ask_px = s.orders[i].px
        sm.sigma = s.last_sigma
        sm.reservation = s.last_reservation
        s.n_samples += 1
        return 0

    # ------------------------------------------------------------ exchange side
    cdef int _order_arrivals(self, bt_strat_t* s, int64_t upto) except -1 nogil:
        """Our new orders and cancels that reach the exchange at <= upto, in time order."""
        cdef int i, best
        cdef int64_t t, tb
        cdef bt_order_t* o
        cdef int64_t bb, ba
        if upto < s.next_order_ns:
            return 0
        if s.t_x < self.t_x:
            s.t_x = self.t_x      # the shared exchange clock (our arrivals may be later)
        while True:
            best = -1
            tb = INT64_MAX
            for i in range(BT_MAX_ORDERS):
                o = &s.orders[i]
                if o.state == BT_IN_FLIGHT and o.arrive_ns <= upto and o.arrive_ns < tb:
                    tb = o.arrive_ns
                    best = i
                elif o.state == BT_OPEN and o.cancel_ns <= upto and o.cancel_ns < tb:
                    tb = o.cancel_ns
                    best = i
            if best < 0:
                self._update_next_order(s, )
                return 0
            o = &s.orders[best]
            if tb > s.t_x:
                s.t_x = tb
            if o.state == BT_IN_FLIGHT:
                bb = self.xbook.best_bid_c()
                ba = self.xbook.best_ask_c()
                if (o.side == 0 and ba != BOOK_NO_ASK and o.px >= ba) or (o.side == 1 and bb != BOOK_NO_BID and o.px <= bb):
                    if s.p.post_only:
                        o.state = BT_DONE
                        s.orders_rejected += 1
                        self._report(s, s.t_x + s.p.response_latency_ns, 0, best, 1)
                        continue
                    # takes liquidity at the opposite best (one level; the rest rests)
                    o.state = BT_OPEN
                    self._open_add(s, best)
                    self._take(s, o)
                    if o.state == BT_DONE:
                        continue
                    self._open_remove(s, best)
                o.state = BT_OPEN
                self._open_add(s, best)
                o.queue_ahead = <double>self.xbook.qty_at_c(o.side, o.px)
                o.traded_at_level = 0
                if o.cancel_ns <= upto:
                    continue   # its cancel may already be due: next round handles it
            else:
                o.state = BT_DONE
                self._open_remove(s, best)
                s.lifetime_sum_ns += s.t_x - o.arrive_ns
                s.lifetime_count += 1
                s.orders_cancelled += 1
                self._report(s, s.t_x + s.p.response_latency_ns, 0, best, 1)

    cdef inline void _open_add(self, bt_strat_t* s, int slot) noexcept nogil:
        cdef int64_t px = s.orders[slot].px
        s.open_idx[s.n_open] = slot
        s.n_open += 1
        if s.orders[slot].side == 0:
            if px < s.bid_lo:
                s.bid_lo = px
            if px > s.bid_hi:
                s.bid_hi = px
        else:
            if px < s.ask_lo:
                s.ask_lo = px
            if px > s.ask_hi:
                s.ask_hi = px

    cdef inline void _open_remove(self, bt_strat_t* s, int slot) noexcept nogil:
        cdef int i
        for i in range(s.n_open):
            if s.open_idx[i] == slot:
                s.n_open -= 1
                s.open_idx[i] = s.open_idx[s.n_open]
                self._open_bounds(s)
                return

    cdef void _open_bounds(self, bt_strat_t* s) noexcept nogil:
        """Price range of the resting orders per side (a filter for the matching)."""
        cdef int i
        cdef const bt_order_t* o
        s.bid_lo = INT64_MAX
        s.bid_hi = -INT64_MAX
        s.ask_lo = INT64_MAX
        s.ask_hi = -INT64_MAX
        for i in range(s.n_open):
            o = &s.orders[s.open_idx[i]]
            if o.side == 0:
                if o.px < s.bid_lo:
                    s.bid_lo = o.px
                if o.px > s.bid_hi:
                    s.bid_hi = o.px
            else:
                if o.px < s.ask_lo:
                    s.ask_lo = o.px
                if o.px > s.ask_hi:
                    s.ask_hi = o.px

    cdef void _update_next_order(self, bt_strat_t* s) noexcept nogil:
        cdef int i
        cdef int64_t t = INT64_MAX
        cdef bt_order_t* o
        for i in range(BT_MAX_ORDERS):
            o = &s.orders[i]
            if o.state == BT_IN_FLIGHT and o.arrive_ns < t:
                t = o.arrive_ns
            elif o.state == BT_OPEN and o.cancel_ns < t:
                t = o.cancel_ns
        s.next_order_ns = t

    cdef int _take(self, bt_strat_t* s, bt_order_t* o) except -1 nogil:
        cdef int opp = 1 - o.side
        cdef int64_t lvl = self.xbook.best_ask_c() if o.side == 0 else self.xbook.best_bid_c()
        cdef int64_t avail = self.xbook.qty_at_c(opp, lvl)
        cdef int64_t f = o.leaves if o.leaves < avail else avail
        cdef int64_t px = o.px
        if f <= 0:
            return 0
        o.px = lvl
        self._push_fill(s, o, f, True)
        o.px = px
        return 0

    cdef int _on_trade_x(self, bt_strat_t* s, const hft_event_t* e) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        cdef double over
        cdef int64_t f
        cdef int j = s.n_open - 1
        while j >= 0:          # backwards: a complete fill removes the current entry
            o = &s.orders[s.open_idx[j]]
            j -= 1
            if o.side != e.side:
                continue
            if (o.side == 0 and o.px > e.px) or (o.side == 1 and o.px < e.px):
                self._push_fill(s, o, o.leaves, False)      # traded through our price
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
                        self._push_fill(s, o, f, False)
        return 0

    cdef int _on_depth_x(self, bt_strat_t* s, const hft_event_t* e, int64_t prev) except -1 nogil:
        """Queue update for our orders at the level (before the crossing check)."""
        cdef int i
        cdef bt_order_t* o
        cdef double chg, front, back, pr, est, fb, ff
        for i in range(s.n_open):
            o = &s.orders[s.open_idx[i]]
            if o.side != e.side or o.px != e.px:
                continue
            chg = <double>(prev - e.qty - o.traded_at_level)
            o.traded_at_level = 0
            if chg > 0 and s.p.queue_model != BT_QUEUE_RISK_AVERSE:
                front = o.queue_ahead
                back = <double>prev - front
                if back < 0:
                    back = 0
                fb = _qf(s.p.queue_model, s.p.queue_power, back)
                ff = _qf(s.p.queue_model, s.p.queue_power, front)
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

    cdef int _check_cross_x(self, bt_strat_t* s, int64_t bb, int64_t ba) except -1 nogil:
        """The opposite best (bb, ba: the exchange book's) on or through our price fills us."""
        cdef int i
        cdef bt_order_t* o
        cdef int j = s.n_open - 1
        while j >= 0:
            o = &s.orders[s.open_idx[j]]
            j -= 1
            if (o.side == 0 and ba != BOOK_NO_ASK and ba <= o.px) or (o.side == 1 and bb != BOOK_NO_BID and bb >= o.px):
                self._push_fill(s, o, o.leaves, False)
        return 0

    cdef int _intensity_fills(self, bt_strat_t* s, int64_t now) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        cdef double dt, mid, delta, lam
        cdef int64_t bb = self.xbook.best_bid_c(), ba = self.xbook.best_ask_c()
        cdef int64_t prev = s.last_intensity_ns, since
        if prev == 0:
            s.last_intensity_ns = now
            return 0
        s.last_intensity_ns = now
        if now <= prev or bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        cdef int j = s.n_open - 1
        while j >= 0:
            o = &s.orders[s.open_idx[j]]
            j -= 1
            # exposed since the last draw or since the order arrived, whichever is
            # later (an order is not exposed before it rests, nor while none rests)
            since = prev if prev > o.arrive_ns else o.arrive_ns
            if since >= now:
                continue
            dt = <double>(now - since) * 1e-9
            delta = fabs(<double>o.px - mid) * s.p.tick_size
            lam = s.p.fill_A * exp(-s.p.fill_k * delta)
            if hft_rng_u01(s.rng) < 1.0 - exp(-lam * dt):
                self._push_fill(s, o, o.leaves, False)
        return 0

    cdef int _exchange_event(self, const hft_event_t* e) except -1 nogil:
        """Apply an exchange event to the shared exchange book, then match each
        strategy's resting orders against it (all strategies saw their own local
        items with time < the event's already)."""
        cdef int64_t prev = 0, bb, ba
        cdef int kind = e.kind
        cdef int k, any_open = 0
        cdef bt_strat_t* s
        if kind == HFT_EV_DEPTH:
            for k in range(self.n_strat):
                if self.S[k].n_open:
                    any_open = 1
                    break
            if not any_open:
                self.xbook.apply_c(e.side, e.px, e.qty)
                return 0
            prev = self.xbook.qty_at_c(e.side, e.px)
            self.xbook.apply_c(e.side, e.px, e.qty)
            bb = self.xbook.best_bid_c()
            ba = self.xbook.best_ask_c()
            for k in range(self.n_strat):
                s = &self.S[k]
                if s.n_open == 0:
                    continue
                s.t_x = self.t_x
                if s.fill_model == BT_FILL_QUEUE:
                    # (the price ranges skip strategies with no order concerned)
                    if (e.px >= s.bid_lo and e.px <= s.bid_hi) if e.side == 0 else \
                            (e.px >= s.ask_lo and e.px <= s.ask_hi):
                        self._on_depth_x(s, e, prev)
                    if (e.flags & HFT_EVF_END) and ((ba != BOOK_NO_ASK and ba <= s.bid_hi)
                                                     or (bb != BOOK_NO_BID and bb >= s.ask_lo)):
                        self._check_cross_x(s, bb, ba)
                elif e.flags & HFT_EVF_END:
                    self._intensity_fills(s, s.t_x)
        elif kind == HFT_EV_TRADE:
            for k in range(self.n_strat):
                s = &self.S[k]
                # only orders on the trade's side at or through its price are concerned
                if s.n_open and s.fill_model == BT_FILL_QUEUE and (
                        (e.side == 0 and s.bid_hi >= e.px) or (e.side == 1 and s.ask_lo <= e.px)):
                    s.t_x = self.t_x
                    self._on_trade_x(s, e)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_BEGIN:
                self.xbook.clear_c()
            self.xbook.apply_c(e.side, e.px, e.qty)
        return 0

    # ------------------------------------------------------------ strategy side
    cdef int _deliver_reports(self, bt_strat_t* s, int64_t upto) except -1 nogil:
        cdef bt_report_t* r
        cdef bt_order_t* o
        while s.rep_n > 0:
            r = &s.reports[s.rep_head]
            if r.ts > upto:
                break
            if r.kind == 0:
                s.known_position += r.lots
                o = &s.orders[r.slot]
                o.known_filled += r.lots if r.lots > 0 else -r.lots
            else:
                o = &s.orders[r.slot]
                o.local = BT_L_GONE
            s.rep_head = (s.rep_head + 1) % s.rep_cap
            s.rep_n -= 1
        return 0

    cdef int64_t _room(self, bt_strat_t* s, int side) noexcept nogil:
        """Lots a new order on ``side`` may have so that the position limit holds even
        if every order not known to be done fills (the live RiskManager's rule)."""
        cdef int i
        cdef int64_t open_lots = 0
        cdef bt_order_t* o
        if s.p.max_lots <= 0:
            return s.p.order_lots
        for i in range(BT_MAX_ORDERS):
            o = &s.orders[i]
            if o.side == side and (o.local == BT_L_WORKING or o.local == BT_L_CANCELING):
                open_lots += o.qty - o.known_filled
        if side == 0:
            return s.p.max_lots - s.known_position - open_lots
        return s.p.max_lots + s.known_position - open_lots

    cdef int _submit(self, bt_strat_t* s, int side, int64_t px, int64_t now) except -1 nogil:
        cdef int i
        cdef bt_order_t* o
        cdef int64_t lots
        if s.p.max_sends > 0 and s.sends_n == s.p.max_sends and s.sends[s.sends_head] > now - 1_000_000_000:
            # the live RiskManager's order-rate limit: max_sends already in the last second
            s.risk_blocked += 1
            s.rate_blocked += 1
            return 0
        lots = self._room(s, side)
        if lots > s.p.order_lots:
            lots = s.p.order_lots
        if lots <= 0:
            s.risk_blocked += 1
            return 0
        for i in range(BT_MAX_ORDERS):
            o = &s.orders[i]
            if (o.state == BT_FREE or o.state == BT_DONE) and o.local != BT_L_WORKING and o.local != BT_L_CANCELING:
                o.id = s.next_id
                s.next_id += 1
                o.side = side
                o.state = BT_IN_FLIGHT
                o.local = BT_L_WORKING
                o.px = px
                o.qty = lots
                o.leaves = lots
                o.known_filled = 0
                s.submitted_lots += lots
                if s.p.max_sends > 0:
                    if s.sends_n < s.p.max_sends:
                        s.sends[(s.sends_head + s.sends_n) % s.p.max_sends] = now
                        s.sends_n += 1
                    else:
                        s.sends[s.sends_head] = now
                        s.sends_head = (s.sends_head + 1) % s.p.max_sends
                o.queue_ahead = 0
                o.traded_at_level = 0
                o.arrive_ns = now + s.p.entry_latency_ns
                if o.arrive_ns - 1 < self.next_local:
                    self.next_local = o.arrive_ns - 1
                o.cancel_ns = INT64_MAX
                o.submit_ns = now
                s.orders_submitted += 1
                if o.arrive_ns < s.next_order_ns:
                    s.next_order_ns = o.arrive_ns
                return 0
        s.slots_exhausted += 1
        return 0

    cdef int _cancel(self, bt_strat_t* s, bt_order_t* o, int64_t now) except -1 nogil:
        o.local = BT_L_CANCELING
        if o.state == BT_IN_FLIGHT or o.state == BT_OPEN:
            o.cancel_ns = now + s.p.cancel_latency_ns
            if o.cancel_ns - 1 < self.next_local:
                self.next_local = o.cancel_ns - 1
            s.cancels_sent += 1
            if o.cancel_ns < s.next_order_ns:
                s.next_order_ns = o.cancel_ns
        return 0

    cdef int _cancel_all(self, bt_strat_t* s, int64_t now) except -1 nogil:
        cdef int i
        for i in range(BT_MAX_ORDERS):
            if s.orders[i].local == BT_L_WORKING:
                self._cancel(s, &s.orders[i], now)
        return 0

    cdef int _quote(self, bt_strat_t* s, int64_t now) except -1 nogil:
        cdef int64_t bb = self.sbook.best_bid_c(), ba = self.sbook.best_ask_c()
        cdef quote_out_t out
        cdef double sigma, q
        cdef int side, i, ok
        cdef int64_t px
        cdef bt_order_t* w
        cdef bt_order_t* o
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK or bb >= ba or s.volp.count < 1:
            return 0
        if s.p.estimate_intensity and now >= s.next_fit_ns:
            s.next_fit_ns = now + s.p.intensity_fit_ns
            if s.inten_owner:
                intensity_fit(s.intenp, now)   # (sharers fit at the same times: see _init_strat)
            if s.intenp.ready and s.intenp.k_per_tick > 0:
                quote_params_set_intensity(&s.qp, s.intenp.A, s.intenp.k_per_tick / s.p.tick_size)
        sigma = ewma_vol_sigma(s.volp) * (<double>bb + <double>ba) * 0.5 * s.p.tick_size
        s.last_sigma = sigma
        q = <double>s.known_position * s.p.lot_size
        if compute_quote(&s.qp, bb, ba, self.sbook.best_bid_qty_c(), self.sbook.best_ask_qty_c(),
                         sigma, q, now, &out) != 0:
            return 0
        s.quotes += 1
        s.last_reservation = out.reservation_price
        for side in range(2):
            ok = out.bid_ok if side == 0 else out.ask_ok
            px = out.bid_tick if side == 0 else out.ask_tick
            w = NULL
            for i in range(BT_MAX_ORDERS):
                o = &s.orders[i]
                if o.local == BT_L_WORKING and o.side == side:
                    if w != NULL:
                        self._cancel(s, w, now)      # never two working orders a side
                    w = o
            if not ok:
                if w != NULL:
                    self._cancel(s, w, now)
                continue
            if w == NULL:
                self._submit(s, side, px, now)
            elif w.px - px >= s.p.requote_threshold or px - w.px >= s.p.requote_threshold:
                self._cancel(s, w, now)
                self._submit(s, side, px, now)
        return 0

    cdef int _local_event(self, const hft_event_t* e, int64_t now) except -1 nogil:
        """Apply a visible event to the shared strategy book, then let each strategy
        update its estimators and quote."""
        cdef int kind = e.kind
        cdef int64_t bb, ba
        cdef double mid
        cdef int k
        cdef bt_strat_t* s
        if kind == HFT_EV_DEPTH:
            self.sbook.apply_c(e.side, e.px, e.qty)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_BEGIN:
                self.sbook.clear_c()
                if self.invalid_since >= 0:
                    self.book_invalid_ns += now - self.invalid_since
                    self.invalid_since = -1
            self.sbook.apply_c(e.side, e.px, e.qty)
        elif kind == HFT_EV_BOOK_INVALID:
            # the book is unknown until the next snapshot (the live engine's
            # stale-book guard): forget it, cancel every working order, quote no more
            self.book_invalid += 1
            if self.invalid_since < 0:
                self.invalid_since = now
            self.sbook.clear_c()
            for k in range(self.n_strat):
                self._cancel_all(&self.S[k], now)
            return 0
        elif kind == HFT_EV_TRADE:
            if self.any_inten:
                bb = self.sbook.best_bid_c()
                ba = self.sbook.best_ask_c()
                if bb != BOOK_NO_BID and ba != BOOK_NO_ASK:
                    for k in range(self.n_strat):
                        s = &self.S[k]
                        if s.inten_owner:
                            intensity_on_trade(s.intenp, now, e.px, bb + ba)
            return 0
        else:
            return 0
        if not (e.flags & HFT_EVF_END) or self.invalid_since >= 0:
            return 0       # (an invalid book is not quoted on before the next snapshot)
        bb = self.sbook.best_bid_c()
        ba = self.sbook.best_ask_c()
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        for k in range(self.n_strat):
            s = &self.S[k]
            if mid != s.last_mid_ticks:
                s.last_mid_ticks = mid
                if s.vol_owner:
                    ewma_vol_update(s.volp, now, mid)
            if now >= s.next_quote_ns:
                s.next_quote_ns = now + s.p.requote_interval_ns
                self._quote(s, now)
        return 0

    cdef int _local_until(self, bt_strat_t* s, int64_t upto) except -1 nogil:
        """Our order arrivals/cancels at the exchange with time <= upto, reports and
        samples with time < upto, in time order (at equal times: arrivals, then the
        sample, then reports). Arrivals belong here, not just before the next
        exchange event: they make reports (rejections, cancels, taker fills) and
        taker fills move the position, which the strategy and the samples in
        between must see."""
        cdef int64_t t
        while True:
            t = INT64_MAX
            if s.rep_n > 0:
                t = s.reports[s.rep_head].ts
            if s.next_sample_ns < t:
                t = s.next_sample_ns
            if s.next_order_ns <= t and s.next_order_ns <= upto:
                self._order_arrivals(s, s.next_order_ns)   # raises next_order_ns
                continue
            if t >= upto:
                return 0
            if t == s.next_sample_ns:
                self._sample(s, t)
                s.next_sample_ns += s.p.sample_interval_ns
            else:
                self._deliver_reports(s, t)

    cdef int _catch_up(self, int64_t upto) except -1 nogil:
        """Each strategy's local items before upto (see _local_until), then the
        earliest deadline over all strategies."""
        cdef int k
        cdef int64_t d, m = INT64_MAX
        cdef bt_strat_t* s
        for k in range(self.n_strat):
            s = &self.S[k]
            d = _deadline(s)
            if d < upto:
                self._local_until(s, upto)
                d = _deadline(s)
            if d < m:
                m = d
        self.next_local = m
        return 0

    # ------------------------------------------------------------ the loop
    cdef Py_ssize_t _run(self, const hft_event_t* ev, Py_ssize_t n, Py_ssize_t i_x, bint final) except -1 nogil:
        """Process events; ev[0:i_x] were already applied on the exchange side.
        Returns the first index the strategy side has not seen (the tail to carry)."""
        cdef Py_ssize_t i_l = 0
        cdef int64_t tx, tl
        cdef const hft_event_t* e
        cdef int k
        cdef int ns = self.n_strat
        cdef bt_strat_t* s
        cdef bt_strat_t* S = self.S
        if not self.started and n > 0:
            self.started = True
            for k in range(ns):
                s = &S[k]
                s.next_sample_ns = (_xts(&ev[0]) // s.p.sample_interval_ns + 1) * s.p.sample_interval_ns
            self.next_local = -INT64_MAX   # recomputed by the first catch-up
        while True:
            # exchange time of the next exchange event (running max)
            if i_x < n:
                tx = _xts(&ev[i_x])
                if tx < self.t_x:
                    tx = self.t_x
            else:
                tx = INT64_MAX
            # visible time of the next strategy event
            if i_l < i_x:
                e = &ev[i_l]
                tl = e.local_ts if self.feed_latency_ns < 0 else _xts(e) + self.feed_latency_ns
                if tl < self.t_l:
                    tl = self.t_l
            elif i_l < n:
                tl = INT64_MAX - 1   # not applied on the exchange side yet
            else:
                tl = INT64_MAX
            if tx == INT64_MAX and (tl == INT64_MAX or not final):
                if final:
                    for k in range(ns):
                        self._deliver_reports(&S[k], INT64_MAX)   # samples after the data: finish()
                return i_l
            if tl < tx:
                if self.next_local < tl:
                    self._catch_up(tl)
                self.t_l = tl
                self._local_event(&ev[i_l], tl)
                i_l += 1
                self.events += 1
            else:
                if self.next_local < tx:
                    self._catch_up(tx)      # (arrivals at <= tx included)
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
        closing sample at end_ns itself (so the last equity includes every fill),
        for every strategy. Sampling starts at the first event: with no event there
        is nothing to sample (a range without data never samples from 1970)."""
        cdef int k
        cdef bt_strat_t* s
        if not self.started:
            return
        with nogil:
            for k in range(self.n_strat):
                s = &self.S[k]
                while s.next_sample_ns <= end_ns:
                    self._sample(s, s.next_sample_ns)
                    s.next_sample_ns += s.p.sample_interval_ns
                if s.next_sample_ns - s.p.sample_interval_ns < end_ns:
                    self._sample(s, end_ns)

    def take_fills(self, int i=0):
        """Fills of strategy i since the last call as a FILL_DTYPE array."""
        cdef bt_strat_t* s = self._strat(i)
        cdef cnp.ndarray out = np.empty(s.n_fills, dtype=FILL_DTYPE)
        if s.n_fills:
            memcpy(cnp.PyArray_DATA(out), s.fills, s.n_fills * sizeof(bt_fill_t))
        s.n_fills = 0
        return out

    def take_samples(self, int i=0):
        """Equity samples of strategy i since the last call as a SAMPLE_DTYPE array."""
        cdef bt_strat_t* s = self._strat(i)
        cdef cnp.ndarray out = np.empty(s.n_samples, dtype=SAMPLE_DTYPE)
        if s.n_samples:
            memcpy(cnp.PyArray_DATA(out), s.samples, s.n_samples * sizeof(bt_sample_t))
        s.n_samples = 0
        return out

    def counters(self, int i=0):
        """Counters of strategy i as a dict."""
        cdef bt_strat_t* s = self._strat(i)
        return dict(events=self.events, orders_submitted=s.orders_submitted,
                    orders_rejected=s.orders_rejected, orders_cancelled=s.orders_cancelled,
                    cancels_sent=s.cancels_sent, fills=s.fill_count, partial_fills=s.partial_fills,
                    quotes=s.quotes, slots_exhausted=s.slots_exhausted, risk_blocked=s.risk_blocked,
                    submitted_lots=s.submitted_lots, rate_blocked=s.rate_blocked,
                    maker_lots=s.maker_lots,
                    taker_lots=s.taker_lots, lifetime_sum_ns=s.lifetime_sum_ns,
                    lifetime_count=s.lifetime_count, book_invalid=self.book_invalid,
                    book_invalid_ns=self._invalid_ns())

    cdef int64_t _invalid_ns(self):
        # an invalid stretch still open counts up to the strategy clock
        return self.book_invalid_ns + (self.t_l - self.invalid_since if self.invalid_since >= 0 else 0)

    def position_of(self, int i):
        """Position of strategy i, lots (exchange side)."""
        return self._strat(i).position

    def cash_of(self, int i):
        return self._strat(i).cash

    def fees_of(self, int i):
        return self._strat(i).fees


    # the single-strategy counters as attributes (strategy 0), as before
    @property
    def orders_submitted(self):
        return self.S[0].orders_submitted

    @property
    def orders_rejected(self):
        return self.S[0].orders_rejected

    @property
    def orders_cancelled(self):
        return self.S[0].orders_cancelled

    @property
    def cancels_sent(self):
        return self.S[0].cancels_sent

    @property
    def fill_count(self):
        return self.S[0].fill_count

    @property
    def partial_fills(self):
        return self.S[0].partial_fills

    @property
    def quotes(self):
        return self.S[0].quotes

    @property
    def slots_exhausted(self):
        return self.S[0].slots_exhausted

    @property
    def maker_lots(self):
        return self.S[0].maker_lots

    @property
    def taker_lots(self):
        return self.S[0].taker_lots

    @property
    def lifetime_sum_ns(self):
        return self.S[0].lifetime_sum_ns

    @property
    def lifetime_count(self):
        return self.S[0].lifetime_count

    @property
    def position(self):
        """Position, lots (exchange side), strategy 0."""
        return self.S[0].position

    @property
    def cash(self):
        """Cash, quote currency, strategy 0."""
        return self.S[0].cash

    @property
    def fees(self):
        return self.S[0].fees
