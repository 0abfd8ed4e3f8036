# cython: language_level=3
"""The driver loop of backtests and paper trading: events in, strategies and the
exchange model stepped in one order, compiled.

One rule for every driver. Events come in RECEIVE order (the event store is
written in it; a paper session gets them frame by frame). For each event e,
with x its exchange time (``exch_ts``, or ``local_ts`` when unknown; a running
maximum) and l its visible time (``local_ts``, or x + ``feed_latency``; a
running maximum, never before x):

0. each agent's items with time < x, in time order: its orders and cancels
   reaching the exchange, equity samples, reports from the exchange model (the
   trader applies them, then the strategy hears of them), timers;
1. the exchange model processes our orders and cancels that reach it at <= x;
2. e is applied to the one book (depth, snapshot);
3. the exchange model matches e against the resting orders (fills, queues);
4. reports and timers with time < l (arrivals and samples wait for a newer
   exchange time: a sample at t has every fill before t);
5. every strategy sees e at l -- after a complete book change ``on_book``, a
   trade ``on_trade``, a BOOK_INVALID record ``on_book_invalid`` (its trader
   cancels everything and sends nothing until the next snapshot) -- and what it
   decides goes to the exchange model at l (new orders arrive at l + the entry
   latency, cancels at l + the cancel latency).

Ties at equal times: arrivals, samples, reports, timers. The exchange side never
runs ahead of the newest exchange time received, so nothing needs the next
event: a chunk of any size -- one frame in a live paper session -- gives the
same result, and a paper session, deciding in the frame that triggered it,
makes exactly the decisions and fills of the backtest of its recording.

Several agents (strategies with their traders and exchange accounts) share one
pass: the book and the event cursor are shared, the market does not react to
our orders, so each agent's results are those of a run alone. Without an
exchange model (live trading) the intents stay in the traders for the Python
layer to send, and reports come back through the traders.
"""
cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.math cimport NAN
from libc.stdint cimport int64_t, INT64_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

from hftcore.backtest cimport bt_sample_t
from hftcore.book cimport BOOK_NO_ASK, BOOK_NO_BID, L2Book
from hftcore.exchange cimport ExchangeModel, xm_report_t
from hftcore.strategy cimport (INTENT_CANCEL, INTENT_NEW, INTENT_REPLACE, Strategy, Trader, intent_t,
                               tr_order_t)
from hftcore.sync cimport BookSync
from hftcore.types cimport (HFT_EV_BOOK_INVALID, HFT_EV_DEPTH, HFT_EV_FUNDING, HFT_FUNDING_RATE_SCALE, HFT_EV_SNAPSHOT, HFT_EV_TRADE, HFT_EVF_BEGIN,
                            HFT_EVF_END, HFT_NO_ID, hft_event_set, hft_event_t)

import numpy as np

from hftcore.exchange import FILL_DTYPE, REPORT_DTYPE  # noqa: F401  (re-exported: the results' records)
from hftcore.strategy import INTENT_DTYPE
from hftcore.types import EVENT_DTYPE

cnp.import_array()

SAMPLE_DTYPE = np.dtype([("ts", "<i8"), ("mid", "<f8"), ("position", "<i8"), ("cash", "<f8"),
                         ("equity", "<f8"), ("fees", "<f8"), ("bid_px", "<i8"), ("ask_px", "<i8"),
                         ("sigma", "<f8"), ("reservation", "<f8")])


cdef int _nomem() except -1 with gil:
    raise MemoryError("ReplayKernel: out of memory")


cdef inline int64_t _xts(const hft_event_t* e) noexcept nogil:
    """An event's exchange time; unknown (<= 0: a spot REST snapshot has no E) is
    taken as its receive time."""
    return e.exch_ts if e.exch_ts > 0 else e.local_ts


@cython.final
cdef class ReplayKernel:
    """The driver loop (see the module doc) over one book.

    ``agents``: [(strategy, trader), ...] (:class:`hftcore.strategy.Strategy`,
    :class:`hftcore.strategy.Trader`); agent i trades on exchange account i.
    ``exchange``: an :class:`hftcore.exchange.ExchangeModel` over ``book`` with one
    account per agent, or None (live trading: intents stay in the traders).
    ``feed_latency_ns`` (< 0: the events' own receive times), ``sample_interval_ns``
    (<= 0: no equity samples), ``record_intents``: keep every intent and report
    (:meth:`take_intents`, :meth:`take_reports`: paper sessions' order log, tests).
    """
    cdef readonly L2Book book
    cdef readonly ExchangeModel exchange
    cdef list _agents
    cdef PyObject** S
    cdef PyObject** T
    cdef readonly int n_agents
    cdef int64_t feed_latency_ns
    cdef int64_t sample_interval_ns
    cdef int64_t* next_sample
    cdef int64_t* next_timer
    cdef bt_sample_t** samples
    cdef Py_ssize_t* n_samples
    cdef Py_ssize_t* cap_samples
    cdef bint record
    cdef intent_t** log
    cdef Py_ssize_t* n_log
    cdef Py_ssize_t* cap_log
    cdef xm_report_t** rlog
    cdef Py_ssize_t* n_rlog
    cdef Py_ssize_t* cap_rlog
    cdef int64_t t_x
    cdef int64_t t_l
    cdef int64_t next_own            # min over agents of the next sample / timer
    cdef readonly bint started
    cdef bint book_ok                # False from a BOOK_INVALID record to the next snapshot
    cdef int64_t invalid_since
    cdef readonly int64_t events
    cdef readonly int64_t book_invalid
    cdef int64_t book_invalid_acc

    def __cinit__(self, *args, **kwargs):
        self.S = NULL
        self.T = NULL
        self.next_sample = NULL
        self.next_timer = NULL
        self.samples = NULL
        self.n_samples = NULL
        self.cap_samples = NULL
        self.log = NULL
        self.n_log = NULL
        self.cap_log = NULL
        self.rlog = NULL
        self.n_rlog = NULL
        self.cap_rlog = NULL
        self.n_agents = 0

    def __init__(self, L2Book book not None, agents, ExchangeModel exchange=None, int64_t feed_latency_ns=-1,
                 int64_t sample_interval_ns=1_000_000_000, bint record_intents=False):
        cdef int k, n
        cdef Strategy s
        cdef Trader t
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
        self.feed_latency_ns = feed_latency_ns
        self.sample_interval_ns = sample_interval_ns
        self.record = record_intents
        self.S = <PyObject**>malloc(n * sizeof(PyObject*))
        self.T = <PyObject**>malloc(n * sizeof(PyObject*))
        self.next_sample = <int64_t*>malloc(n * sizeof(int64_t))
        self.next_timer = <int64_t*>malloc(n * sizeof(int64_t))
        self.samples = <bt_sample_t**>malloc(n * sizeof(bt_sample_t*))
        self.n_samples = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.cap_samples = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.log = <intent_t**>malloc(n * sizeof(intent_t*))
        self.n_log = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.cap_log = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.rlog = <xm_report_t**>malloc(n * sizeof(xm_report_t*))
        self.n_rlog = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.cap_rlog = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        if self.rlog == NULL or self.n_rlog == NULL or self.cap_rlog == NULL:
            raise MemoryError()
        if self.S == NULL or self.T == NULL or self.next_sample == NULL or self.next_timer == NULL \
                or self.samples == NULL or self.n_samples == NULL or self.cap_samples == NULL \
                or self.log == NULL or self.n_log == NULL or self.cap_log == NULL:
            raise MemoryError()
        for k in range(n):
            self.samples[k] = NULL
            self.log[k] = NULL
            self.rlog[k] = NULL
            self.n_rlog[k] = 0
            self.cap_rlog[k] = 0
        self.n_agents = n
        for k, (s, t) in enumerate(agents):
            s.trader = t
            s.book = book
            self.S[k] = <PyObject*>s
            self.T[k] = <PyObject*>t
            self.next_sample[k] = INT64_MAX
            self.next_timer[k] = INT64_MAX
            self.n_samples[k] = 0
            self.cap_samples[k] = 1024
            self.samples[k] = <bt_sample_t*>malloc(1024 * sizeof(bt_sample_t))
            self.n_log[k] = 0
            self.cap_log[k] = 0
            if self.samples[k] == NULL:
                raise MemoryError()
        self.t_x = -INT64_MAX
        self.t_l = -INT64_MAX
        self.next_own = INT64_MAX
        self.book_ok = True
        self.invalid_since = -1

    def __dealloc__(self):
        cdef int k
        if self.samples != NULL:
            for k in range(self.n_agents):
                free(self.samples[k])
        if self.log != NULL:
            for k in range(self.n_agents):
                free(self.log[k])
        if self.rlog != NULL:
            for k in range(self.n_agents):
                free(self.rlog[k])
        free(self.rlog)
        free(self.n_rlog)
        free(self.cap_rlog)
        free(self.S)
        free(self.T)
        free(self.next_sample)
        free(self.next_timer)
        free(self.samples)
        free(self.n_samples)
        free(self.cap_samples)
        free(self.log)
        free(self.n_log)
        free(self.cap_log)

    # ------------------------------------------------------------ local items
    cdef int _start(self, const hft_event_t* e) except -1 nogil:
        cdef int k
        cdef int64_t x = _xts(e), l
        l = e.local_ts if self.feed_latency_ns < 0 else x + self.feed_latency_ns
        if l < x:
            l = x
        self.started = True
        for k in range(self.n_agents):
            if self.sample_interval_ns > 0:
                self.next_sample[k] = (x // self.sample_interval_ns + 1) * self.sample_interval_ns
            (<Trader>self.T[k]).now = l
            (<Strategy>self.S[k]).on_start_c(l)
            if (<Strategy>self.S[k]).timer_interval_ns > 0:
                self.next_timer[k] = l + (<Strategy>self.S[k]).timer_interval_ns
            self._flush(k)
        self._own_min()
        return 0

    cdef void _own_min(self) noexcept nogil:
        cdef int k
        cdef int64_t m = INT64_MAX
        for k in range(self.n_agents):
            if self.next_sample[k] < m:
                m = self.next_sample[k]
            if self.next_timer[k] < m:
                m = self.next_timer[k]
        self.next_own = m

    cdef inline int64_t _next_local(self) noexcept nogil:
        cdef int64_t m = self.next_own
        if self.exchange is not None and self.exchange.min_report_ts < m:
            m = self.exchange.min_report_ts
        return m

    cdef int _flush(self, int k) except -1 nogil:
        """Agent k's intents to the exchange model (and to the log)."""
        cdef PyObject* tp = self.T[k]
        cdef Py_ssize_t i, n_out = (<Trader>tp).n_out
        cdef intent_t* it
        cdef intent_t* lg
        cdef intent_t* out = (<Trader>tp).out
        if n_out == 0 or self.exchange is None:
            return 0            # live: the Python layer drains them (Trader.take_intents)
        if self.record:
            if self.n_log[k] + n_out > self.cap_log[k]:
                i = 2 * (self.n_log[k] + n_out)
                lg = <intent_t*>realloc(self.log[k], i * sizeof(intent_t))
                if lg == NULL:
                    return _nomem()
                self.log[k] = lg
                self.cap_log[k] = i
            for i in range(n_out):
                self.log[k][self.n_log[k] + i] = out[i]
            self.n_log[k] += n_out
        for i in range(n_out):
            it = &out[i]
            if it.kind == INTENT_NEW:
                self.exchange.submit_c(k, it.id, it.side, it.px, it.lots, it.flags, it.ts)
            elif it.kind == INTENT_CANCEL:
                self.exchange.cancel_c(k, it.id, it.ts)
            elif it.kind == INTENT_REPLACE:
                self.exchange.cancel_c(k, it.cancel_id, it.ts)
                self.exchange.submit_c(k, it.id, it.side, it.px, it.lots, it.flags, it.ts)
        (<Trader>tp).n_out = 0
        return 0

    cdef int _log_report(self, int k, const xm_report_t* r) except -1 nogil:
        cdef xm_report_t* lg
        cdef Py_ssize_t c
        if self.n_rlog[k] == self.cap_rlog[k]:
            c = 2 * self.cap_rlog[k] + 64
            lg = <xm_report_t*>realloc(self.rlog[k], c * sizeof(xm_report_t))
            if lg == NULL:
                return _nomem()
            self.rlog[k] = lg
            self.cap_rlog[k] = c
        self.rlog[k][self.n_rlog[k]] = r[0]
        self.n_rlog[k] += 1
        return 0

    cdef int _sample(self, int k, int64_t ts) except -1 nogil:
        cdef bt_sample_t* sm
        cdef int64_t bb = self.book.best_bid_c(), ba = self.book.best_ask_c()
        cdef double mid
        cdef PyObject* tp = self.T[k]
        cdef PyObject* sp = self.S[k]
        cdef double tick = (<Trader>tp).lim.tick_size, lot = (<Trader>tp).lim.lot_size
        if self.n_samples[k] == self.cap_samples[k]:
            sm = <bt_sample_t*>realloc(self.samples[k], 2 * self.cap_samples[k] * sizeof(bt_sample_t))
            if sm == NULL:
                return _nomem()
            self.samples[k] = sm
            self.cap_samples[k] *= 2
        mid = NAN if (bb == BOOK_NO_BID or ba == BOOK_NO_ASK) else (<double>bb + <double>ba) * 0.5 * tick
        sm = &self.samples[k][self.n_samples[k]]
        sm.ts = ts
        sm.mid = mid
        if self.exchange is not None:
            sm.position = self.exchange.A[k].position
            sm.cash = self.exchange.A[k].cash
            sm.fees = self.exchange.A[k].fees
        else:
            sm.position = (<Trader>tp).position
            sm.cash = (<Trader>tp).cash
            sm.fees = (<Trader>tp).fees
        sm.equity = sm.cash + <double>sm.position * lot * mid
        sm.bid_px = (<Trader>tp).working_c(0, (<Trader>tp).n_work[0] - 1).px if (<Trader>tp).n_work[0] else -1
        sm.ask_px = (<Trader>tp).working_c(1, (<Trader>tp).n_work[1] - 1).px if (<Trader>tp).n_work[1] else -1
        sm.sigma = (<Strategy>sp).last_sigma
        sm.reservation = (<Strategy>sp).last_reservation
        self.n_samples[k] += 1
        return 0

    cdef int _local_until(self, int64_t upto, int64_t xlim, int64_t slim) except -1 nogil:
        """Every agent's reports and timers with time < upto and equity samples with
        time < min(upto, slim), in time order (ties: samples, reports, timers),
        interleaved with the agent's order arrivals and cancels at the exchange with
        time < upto and <= xlim, which come first at equal times. xlim is the newest
        exchange time (the model never runs ahead of the market data); samples are
        on the exchange clock too (slim = the newest exchange time: a sample at t has
        every fill before t), reports and timers on the local one."""
        cdef int k
        cdef int64_t t, tr_ts, ta, ts_s, m = INT64_MAX
        cdef xm_report_t r
        cdef PyObject* tp
        cdef PyObject* sp
        cdef bint has_xm = self.exchange is not None, moved = False
        if slim > upto:
            slim = upto
        for k in range(self.n_agents):
            tp = self.T[k]
            sp = self.S[k]
            while True:
                tr_ts = self.exchange.next_report_ts_c(k) if has_xm else INT64_MAX
                ts_s = self.next_sample[k] if self.next_sample[k] < slim else INT64_MAX
                t = ts_s
                if tr_ts < t:
                    t = tr_ts
                if self.next_timer[k] < t:
                    t = self.next_timer[k]
                if has_xm:
                    ta = self.exchange.A[k].next_order_ns
                    if ta <= t and ta < upto and ta <= xlim:
                        self.exchange.advance_account_c(k, ta)
                        moved = True
                        continue
                if t >= upto:
                    break
                if t == ts_s:
                    self._sample(k, t)
                    self.next_sample[k] += self.sample_interval_ns
                elif t == tr_ts:
                    self.exchange.pop_report_c(k, t, &r)
                    if self.record:
                        self._log_report(k, &r)
                    # a report made late (its order reached the exchange model only at the
                    # next market event) is heard now, not in the past: the clock is monotone
                    if t < self.t_l:
                        t = self.t_l
                    (<Trader>tp).now = t
                    if (<Trader>tp).on_report_c(&r):
                        (<Strategy>sp).on_report_c(t, &r)
                        self._flush(k)
                else:
                    (<Trader>tp).now = t
                    self.next_timer[k] += (<Strategy>sp).timer_interval_ns
                    (<Strategy>sp).on_timer_c(t)
                    self._flush(k)
            if has_xm and self.exchange.next_report_ts_c(k) < m:
                m = self.exchange.next_report_ts_c(k)
        if has_xm:
            self.exchange.min_report_ts = m
            if moved:
                self.exchange._next_order(&self.exchange.A[0])   # (the min over the accounts again)
        self._own_min()
        return 0

    # ------------------------------------------------------------ one event
    cdef int _step(self, const hft_event_t* e) except -1 nogil:
        cdef int64_t x = _xts(e), l, m
        cdef int kind = e.kind, k
        cdef int64_t bb, ba
        cdef double mid, mark
        cdef PyObject* tp
        cdef bint has_xm = self.exchange is not None
        if not self.started:
            self._start(e)
        if x < self.t_x:
            x = self.t_x
        l = e.local_ts if self.feed_latency_ns < 0 else x + self.feed_latency_ns
        if l < x:
            l = x
        if l < self.t_l:
            l = self.t_l
        # 0. local items and our arrivals before the exchange time; 1. our arrivals at it
        m = self._next_local()
        if has_xm and self.exchange.next_arrival_ns < m:
            m = self.exchange.next_arrival_ns
        if m < x:
            self._local_until(x, x, x)
        if has_xm and self.exchange.next_arrival_ns <= x:
            self.exchange.advance_c(x)
        self.t_x = x
        # 2. the book; 3. the exchange model's matching
        if kind == HFT_EV_DEPTH:
            self.book.apply_c(e.side, e.px, e.qty)
        elif kind == HFT_EV_SNAPSHOT:
            if e.flags & HFT_EVF_BEGIN:
                self.book.clear_c()
            self.book.apply_c(e.side, e.px, e.qty)
        if has_xm:
            self.exchange.on_event_c(e, x)
        # 4. local items before the visible time; 5. the strategies
        if self._next_local() < l:
            self._local_until(l, x, x)
        self.t_l = l
        self.events += 1
        if kind == HFT_EV_DEPTH or kind == HFT_EV_SNAPSHOT:
            if kind == HFT_EV_SNAPSHOT and (e.flags & HFT_EVF_BEGIN) and not self.book_ok:
                # a snapshot ends an invalid stretch
                self.book_ok = True
                self.book_invalid_acc += l - self.invalid_since
                self.invalid_since = -1
                for k in range(self.n_agents):
                    (<Trader>self.T[k]).set_book_valid_c(True, l)
            if not (e.flags & HFT_EVF_END) or not self.book_ok:
                return 0
            bb = self.book.best_bid_c()
            ba = self.book.best_ask_c()
            if bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
                return 0
            mid = (<double>bb + <double>ba) * 0.5
            for k in range(self.n_agents):
                tp = self.T[k]
                (<Trader>tp).now = l
                (<Trader>tp).mark_c(l, mid * (<Trader>tp).lim.tick_size)
                (<Strategy>self.S[k]).on_book_c(l)
                self._flush(k)
        elif kind == HFT_EV_TRADE:
            for k in range(self.n_agents):
                (<Trader>self.T[k]).now = l
                (<Strategy>self.S[k]).on_trade_c(l, e.side, e.px, e.qty)
                self._flush(k)
        elif kind == HFT_EV_FUNDING:
            # a perpetual's funding time: every trader pays position x mark x rate (the
            # mark price of the record, or the book's mid where the record has none)
            mark = <double>e.px
            if not (mark > 0):
                bb = self.book.best_bid_c()
                ba = self.book.best_ask_c()
                if bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
                    return 0
                mark = (<double>bb + <double>ba) * 0.5
            # the exchange's accounts pay at the funding time with their true position;
            # each trader's own books take it in at once (Binance's ACCOUNT_UPDATE, FUNDING_FEE)
            if has_xm:
                self.exchange.funding_c(mark * self.exchange.A[0].p.tick_size,
                                        <double>e.qty / <double>HFT_FUNDING_RATE_SCALE)
            for k in range(self.n_agents):
                tp = self.T[k]
                (<Trader>tp).now = l
                (<Trader>tp).funding_c(mark * (<Trader>tp).lim.tick_size,
                                       <double>e.qty / <double>HFT_FUNDING_RATE_SCALE)
        elif kind == HFT_EV_BOOK_INVALID:
            # the book is unknown until the next snapshot (gap, crossed, reset): every
            # trader cancels its orders and sends nothing new; they may fill until
            # their cancels arrive
            self.book_invalid += 1
            if self.book_ok:
                self.book_ok = False
                self.invalid_since = l
            for k in range(self.n_agents):
                tp = self.T[k]
                (<Trader>tp).now = l
                (<Trader>tp).set_book_valid_c(False, l)
                (<Strategy>self.S[k]).on_book_invalid_c(l)
                self._flush(k)
        return 0

    cdef int step_c(self, const hft_event_t* ev, Py_ssize_t n) except -1 nogil:
        cdef Py_ssize_t i
        for i in range(n):
            self._step(&ev[i])
        return 0

    # ------------------------------------------------------------ Python API
    def run(self, events):
        """Process EVENT_DTYPE records (in receive order; any chunking)."""
        cdef cnp.ndarray arr = np.ascontiguousarray(events)
        cdef const hft_event_t* ev
        cdef Py_ssize_t n
        if arr.dtype != EVENT_DTYPE:
            raise TypeError("events must be hftcore.EVENT_DTYPE records")
        ev = <const hft_event_t*>cnp.PyArray_DATA(arr)
        n = arr.shape[0]
        with nogil:
            self.step_c(ev, n)
        return n

    def feed_sync(self, BookSync sync not None):
        """The records a ``BookSync(emit_events=True)`` made since the last call (the
        live path: what the connector's sync applied, decoded and synced once),
        consumed in place; returns how many."""
        cdef Py_ssize_t n = sync._outbuf.n
        if n == 0:
            return 0
        with nogil:
            self.step_c(sync._outbuf.ev, n)
        sync._outbuf.n = 0
        return n

    def feed_event(self, int64_t local_ts, int64_t exch_ts, int kind, int side, int64_t px, int64_t qty,
                   int64_t first_id=0, int64_t last_id=0, prev_id=None,
                   int flags=HFT_EVF_BEGIN | HFT_EVF_END):
        """One event record from its fields (the live path's trades and bookTickers)."""
        cdef hft_event_t e
        hft_event_set(&e, local_ts, exch_ts, px, qty, first_id, last_id,
                      HFT_NO_ID if prev_id is None else <int64_t>prev_id, kind, side, flags)
        with nogil:
            self._step(&e)

    def report(self, int i, int64_t ts, int64_t oid, int kind, int64_t px=0, int64_t lots=0, int64_t leaves=0,
               double fee=0.0, bint taker=False):
        """A report from outside (live trading: the gateway's answer) for agent i: the
        trader applies it, the strategy hears of it; returns whether it was applied."""
        cdef xm_report_t r
        cdef PyObject* tp
        cdef PyObject* sp
        cdef int applied
        self._check(i)
        tp = self.T[i]
        sp = self.S[i]
        r.ts, r.id, r.kind, r.px, r.lots, r.leaves, r.fee = ts, oid, kind, px, lots, leaves, fee
        r.taker = 1 if taker else 0
        r.side = 0
        o = (<Trader>tp).order(oid)
        if o is not None:
            r.side = o["side"]
        if self.record:
            self._log_report(i, &r)
        (<Trader>tp).now = ts
        applied = (<Trader>tp).on_report_c(&r)
        if applied:
            (<Strategy>sp).on_report_c(ts, &r)
            self._flush(i)
        return bool(applied)

    def flush(self):
        """Every agent's pending intents to the exchange model (after a kill or a pause
        from outside the loop)."""
        cdef int k
        for k in range(self.n_agents):
            self._flush(k)

    def drain(self, int64_t end_ns):
        """The end of a session without more market data: every order and cancel in
        flight reaches the exchange model, every report and timer due up to
        ``end_ns`` [ns] is delivered."""
        cdef int k
        if not self.started:
            return
        with nogil:
            for k in range(self.n_agents):
                self._flush(k)
            self._local_until(end_ns + 1, end_ns, end_ns + 1)
            if self.exchange is not None:
                self.exchange.advance_c(end_ns)
            self._local_until(end_ns + 1, end_ns, end_ns + 1)

    def advance_local(self, int64_t now):
        """Local items (reports, timers, samples) due before ``now`` [ns] without a
        market event (a quiet market in a live session)."""
        if not self.started:
            return
        with nogil:
            if self._next_local() < now:
                self._local_until(now, self.t_x, self.t_x)

    def finish(self, int64_t end_ns):
        """After the last event: the local items due up to ``end_ns`` [ns] and a
        closing sample at end_ns itself (so the last equity includes every fill).
        Nothing is sampled before the first event: a range without data has none."""
        cdef int k
        if not self.started:
            return
        with nogil:
            self._local_until(end_ns + 1, end_ns, end_ns + 1)
            for k in range(self.n_agents):
                if self.sample_interval_ns > 0 and self.next_sample[k] - self.sample_interval_ns < end_ns:
                    self._sample(k, end_ns)

    def take_samples(self, int i=0):
        """Equity samples of agent i since the last call (SAMPLE_DTYPE)."""
        cdef cnp.ndarray out
        cdef Py_ssize_t n
        self._check(i)
        n = self.n_samples[i]
        out = np.empty(n, dtype=SAMPLE_DTYPE)
        if n:
            np.copyto(out, np.frombuffer((<char*>self.samples[i])[:n * sizeof(bt_sample_t)], dtype=SAMPLE_DTYPE))
        self.n_samples[i] = 0
        return out

    def take_fills(self, int i=0):
        """Fills of agent i since the last call (FILL_DTYPE; empty without an exchange model)."""
        self._check(i)
        if self.exchange is None:
            return np.empty(0, dtype=FILL_DTYPE)
        return self.exchange.take_fills(i)

    def take_intents(self, int i=0):
        """Agent i's intents since the last call (record_intents; INTENT_DTYPE; with an
        exchange model -- live trading drains the trader itself)."""
        cdef cnp.ndarray out
        cdef Py_ssize_t n
        self._check(i)
        n = self.n_log[i]
        out = np.empty(n, dtype=INTENT_DTYPE)
        if n:
            np.copyto(out, np.frombuffer((<char*>self.log[i])[:n * sizeof(intent_t)], dtype=INTENT_DTYPE))
        self.n_log[i] = 0
        return out

    def take_reports(self, int i=0):
        """Agent i's reports since the last call, as delivered (record_intents;
        hftcore.exchange.REPORT_DTYPE)."""
        cdef Py_ssize_t n, j
        cdef xm_report_t* r
        self._check(i)
        n = self.n_rlog[i]
        out = np.empty(n, dtype=REPORT_DTYPE)
        for j in range(n):
            r = &self.rlog[i][j]
            out[j] = (r.ts, r.id, r.kind, r.side, r.taker, 0, r.px, r.lots, r.leaves, r.fee)
        self.n_rlog[i] = 0
        return out

    cdef int _check(self, int i) except -1:
        if i < 0 or i >= self.n_agents:
            raise IndexError(f"agent {i} out of range (0..{self.n_agents - 1})")
        return 0

    def agent(self, int i=0):
        """(strategy, trader) of agent i."""
        self._check(i)
        return self._agents[i]

    @property
    def book_invalid_ns(self):
        """Time the book was invalid, ns (a stretch still open counts up to the last event)."""
        return self.book_invalid_acc + (self.t_l - self.invalid_since if self.invalid_since >= 0 else 0)

    @property
    def book_valid(self):
        return bool(self.book_ok)

    @property
    def clock(self):
        """(exchange clock, visible clock) of the last event, ns."""
        return self.t_x, self.t_l

    def counters(self, int i=0):
        """Agent i's counters: the trader's, the exchange account's, the strategy's
        quotes, and the pass's (events, invalid book)."""
        cdef Strategy st
        cdef Trader tr
        self._check(i)
        st, tr = self._agents[i]
        c = dict(tr.counters())
        if self.exchange is not None:
            c.update(self.exchange.counters(i))
        c.update(quotes=st.quotes, events=self.events, book_invalid=self.book_invalid,
                 book_invalid_ns=self.book_invalid_ns)
        return c
