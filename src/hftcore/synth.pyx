# cython: language_level=3
"""Deterministic synthetic market: a BTCUSDT-like order-flow simulation.

Event-driven, continuous time, seeded (xoshiro256**), bit-identical for the same
seed and parameters. What it models:

- a latent fair price (ticks) with stochastic volatility: a log-activity regime
  follows an Ornstein-Uhlenbeck process, and both volatility and order-flow rates
  scale with exp(regime), so volatility and activity cluster together;
- a deep L2 book: limit orders arrive at a geometric distance from their own
  touch (or improve a spread wider than one tick), cancellations take part or
  all of a level, so queues deplete and refill;
- market orders as a self-exciting (Hawkes, exponential kernel) process with
  lognormal sizes that walk the book, so trades reach deeper levels with roughly
  exponentially decaying frequency (A and k of lambda(delta) = A exp(-k delta)
  can be estimated from them);
- arbitrage: when the latent price moves through the touch, aggressive orders
  sweep the stale levels (price moves are carried by trades, as on a real venue).

Output: records of ``hftcore.EVENT_DTYPE``: one SNAPSHOT message (the initial
book), then DEPTH messages (absolute quantities; each level change has its own
update id, a message covers ids [first_id, last_id] and prev_id is the previous
message's last_id, as both Binance spot U/u and USD-M pu expect) and TRADE
records (side = maker side). Prices in ticks, sizes in lots, times in ns.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport exp, floor, log, sqrt, ceil, cos, M_PI
from libc.stdint cimport int64_t, uint64_t

from hftcore.rng cimport hft_rng_seed, hft_rng_u01
from hftcore.book cimport L2Book, BOOK_NO_ASK, BOOK_NO_BID
from hftcore.types cimport (HFT_ASK, HFT_BID, HFT_EV_DEPTH, HFT_EV_SNAPSHOT, HFT_EV_TRADE,
                            HFT_EVF_BEGIN, HFT_EVF_END, HFT_NO_ID, hft_event_set, hft_event_t)

import numpy as np

from hftcore.book import L2Book as _L2Book
from hftcore.types import EVENT_DTYPE

cnp.import_array()

cdef enum:
    _MAX_SWEEP = 24            # levels one market order may walk
    _STEP_RESERVE = 4 * _MAX_SWEEP + 16   # most records one step can write


# ---------------------------------------------------------------- RNG (include/hftcore/rng.h)
cdef inline double _u01(synth_rng_t* r) noexcept nogil:
    """Uniform in (0, 1] (include/hftcore/rng.h)."""
    return hft_rng_u01(r.s)


cdef inline double _exp1(synth_rng_t* r) noexcept nogil:
    return -log(_u01(r))


cdef inline double _normal(synth_rng_t* r) noexcept nogil:
    return sqrt(-2.0 * log(_u01(r))) * cos(2.0 * M_PI * _u01(r))


cdef inline int64_t _geometric(synth_rng_t* r, double decay) noexcept nogil:
    """0, 1, 2, ... with P(d) proportional to exp(-decay * d)."""
    return <int64_t>floor(_exp1(r) / decay)


cdef inline int64_t _lognormal_lots(synth_rng_t* r, double mu, double sigma) noexcept nogil:
    cdef double x = exp(mu + sigma * _normal(r))
    if x < 1.0:
        return 1
    if x > 1e12:
        return <int64_t>1e12
    return <int64_t>x


cdef void _seed(synth_rng_t* r, uint64_t seed) noexcept nogil:
    hft_rng_seed(r.s, seed)


# ---------------------------------------------------------------- records
cdef inline int64_t _trade(synth_state_t* st, hft_event_t* out, int64_t n, int64_t ts,
                           int64_t local, int maker_side, int64_t tick, int64_t lots) noexcept nogil:
    cdef int64_t tid = st.next_trade_id
    st.next_trade_id += 1
    hft_event_set(&out[n], local, ts, tick, lots, tid, tid, HFT_NO_ID, HFT_EV_TRADE, maker_side,
                  HFT_EVF_BEGIN | HFT_EVF_END)
    return n + 1


cdef class SyntheticMarket:
    """A seeded synthetic market. ``generate(seconds)`` returns the next events.

    All rates are per second in the calm regime (activity multiplier 1); prices
    are ticks, sizes lots (see the module docstring for the defaults).
    """

    def __init__(self, uint64_t seed=1, int64_t start_ns=1_723_161_600_000_000_000,
                 double tick_size=0.1, double lot_size=0.001,
                 int64_t mid0_ticks=618_376, double sigma0=8.0,
                 double regime_kappa=1.0 / 900.0, double regime_sigma=0.02,
                 double limit_rate=40.0, double cancel_rate=36.0,
                 double mkt_mu=2.0, double mkt_alpha=1.2, double mkt_beta=2.0,
                 double place_decay=0.15, double improve_prob=0.8,
                 double size_mu=3.0, double size_sigma=1.2,
                 double mkt_size_mu=2.5, double mkt_size_sigma=1.5,
                 int64_t book_levels=2000, double latency_ns=2_000_000.0):
        if not (tick_size > 0 and lot_size > 0):
            raise ValueError("tick_size and lot_size must be > 0")
        if mid0_ticks < 10 * book_levels:
            raise ValueError("mid0_ticks too small for book_levels")
        if not (0 <= mkt_alpha < mkt_beta):
            raise ValueError("Hawkes process must be stationary: 0 <= mkt_alpha < mkt_beta")
        for name, v in (("sigma0", sigma0), ("limit_rate", limit_rate), ("cancel_rate", cancel_rate),
                        ("mkt_mu", mkt_mu), ("place_decay", place_decay), ("regime_kappa", regime_kappa)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if not (0 <= improve_prob <= 1):
            raise ValueError("improve_prob must be in [0, 1]")
        if book_levels < 10:
            raise ValueError("book_levels must be >= 10")
        self.p.tick_size = tick_size
        self.p.lot_size = lot_size
        self.p.mid0_ticks = mid0_ticks
        self.p.sigma0 = sigma0
        self.p.regime_kappa = regime_kappa
        self.p.regime_sigma = regime_sigma
        self.p.limit_rate = limit_rate
        self.p.cancel_rate = cancel_rate
        self.p.mkt_mu = mkt_mu
        self.p.mkt_alpha = mkt_alpha
        self.p.mkt_beta = mkt_beta
        self.p.place_decay = place_decay
        self.p.improve_prob = improve_prob
        self.p.size_mu = size_mu
        self.p.size_sigma = size_sigma
        self.p.mkt_size_mu = mkt_size_mu
        self.p.mkt_size_sigma = mkt_size_sigma
        self.p.book_levels = book_levels
        self.p.latency_ns = latency_ns
        _seed(&self.st.rng, seed)
        self.st.t = 0.0
        self.st.t0_ns = start_ns
        self.st.latent = mid0_ticks + 0.5
        self.st.regime = 0.0
        self.st.hawkes = 0.0
        self.st.next_id = 1_000_000
        self.st.next_trade_id = 1
        self.st.pending = False
        self.st.horizon = 0.0
        self.book = _L2Book(tick_size, lot_size)
        self._last_u = HFT_NO_ID
        self._last_local = 0
        self.events_generated = 0

    @property
    def time_s(self):
        """Seconds of market time generated so far."""
        return self.st.horizon

    @property
    def now_ns(self):
        """Current exchange time, ns since epoch."""
        return self.st.t0_ns + <int64_t>(self.st.t * 1e9)

    @property
    def last_update_id(self):
        """Update id of the last book change (a snapshot taken now carries it)."""
        return self.st.next_id - 1

    @property
    def tick_size(self):
        return self.p.tick_size

    @property
    def lot_size(self):
        return self.p.lot_size

    def initial_snapshot(self):
        """Build the initial book and return it as SNAPSHOT records (call once, first)."""
        cdef int64_t n = self.p.book_levels, i, d, tick, lots, k = 0, L
        cdef int side
        cdef cnp.ndarray arr
        cdef hft_event_t* out
        cdef int64_t ts, local
        if len(self.book) or self.events_generated:
            raise RuntimeError("initial_snapshot() must be the first call")
        arr = np.zeros(2 * n, dtype=EVENT_DTYPE)
        out = <hft_event_t*>cnp.PyArray_DATA(arr)
        ts = self.st.t0_ns
        local = ts + <int64_t>self.p.latency_ns
        self._last_local = local
        L = self.st.next_id - 1
        for side in range(2):
            d = 0
            for i in range(n):
                tick = (self.p.mid0_ticks - d) if side == 0 else (self.p.mid0_ticks + 1 + d)
                lots = _lognormal_lots(&self.st.rng, self.p.size_mu + 0.002 * i, self.p.size_sigma)
                self.book.apply_c(side, tick, lots)
                hft_event_set(&out[k], local, ts, tick, lots, L, L, HFT_NO_ID, HFT_EV_SNAPSHOT, side, 0)
                k += 1
                # deeper levels are sparser
                d += 1 + _geometric(&self.st.rng, 1.0 / (0.05 + 0.004 * i))
        out[0].flags = HFT_EVF_BEGIN
        out[k - 1].flags = HFT_EVF_END
        self._last_u = L
        self.events_generated += k
        return arr[:k]

    def generate(self, double seconds, int64_t max_events=0):
        """Events of the next `seconds` of market time (at most max_events if > 0;
        generation stops early at a message boundary). Returns an EVENT_DTYPE array."""
        cdef int64_t cap, n, total = 0
        cdef double t_end = self.st.horizon + seconds
        cdef cnp.ndarray arr
        cdef list parts = []
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if len(self.book) == 0 and self.events_generated == 0:
            raise RuntimeError("call initial_snapshot() first")
        while True:
            cap = 1 << 18
            if max_events > 0:
                if total >= max_events:
                    break
                cap = min(cap, max_events - total + _STEP_RESERVE)
            arr = np.empty(cap, dtype=EVENT_DTYPE)
            with nogil:
                n = self._gen(<hft_event_t*>cnp.PyArray_DATA(arr), cap, t_end)
            parts.append(arr[:n])
            total += n
            if n + _STEP_RESERVE <= cap:
                break          # reached the horizon (the buffer was not full)
        self.st.horizon = t_end if self.st.t <= t_end and (max_events <= 0 or total < max_events) else self.st.t
        self.events_generated += total
        if not parts:
            return np.zeros(0, dtype=EVENT_DTYPE)
        if len(parts) == 1:
            return parts[0]
        # concatenate raw bytes: numpy's field-wise copy would leave the padding undefined
        return np.concatenate([a.view(np.uint8) for a in parts]).view(EVENT_DTYPE)

    # ------------------------------------------------------------ kernel
    cdef int64_t _gen(self, hft_event_t* out, int64_t cap, double t_end) except -1 nogil:
        cdef synth_params_t* p = &self.p
        cdef synth_state_t* s = &self.st
        cdef synth_rng_t* r = &self.st.rng
        cdef int64_t n = 0, ts, local, bb, ba, tick, lots, q, remaining, fill, first_id, m0, j
        cdef int64_t ch_tick[_MAX_SWEEP * 2 + 4]
        cdef int64_t ch_qty[_MAX_SWEEP * 2 + 4]
        cdef int ch_side[_MAX_SWEEP * 2 + 4]
        cdef int nch, side, taker, i, nsweep
        cdef double act, lam_l, lam_c, lam_m, bound, dt, u, fair, sig, tilt, spread_boost
        while s.t < t_end and n + _STEP_RESERVE <= cap:
            act = exp(s.regime)
            # makers compete harder when the spread is wide
            bb = self.book.best_bid_c()
            ba = self.book.best_ask_c()
            spread_boost = 1.0
            if bb != BOOK_NO_BID and ba != BOOK_NO_ASK and ba - bb > 1:
                spread_boost = 1.0 + 0.75 * (ba - bb - 1)
                if spread_boost > 6.0:
                    spread_boost = 6.0
            lam_l = p.limit_rate * act * spread_boost
            lam_c = p.cancel_rate * act
            lam_m = p.mkt_mu * act + s.hawkes
            bound = 2.0 * lam_l + 2.0 * lam_c + lam_m
            if s.pending:
                dt = s.pend_dt
                u = s.pend_u
            else:
                dt = _exp1(r) / bound
                if dt > 0.25:
                    dt = 0.25          # keep the latent path fine-grained in quiet spells
                    u = 2.0            # no event this step
                else:
                    u = _u01(r)
            if s.t + dt > t_end:
                # keep the drawn step for the next call: chunking never changes the stream
                s.pending = True
                s.pend_dt = dt
                s.pend_u = u
                break
            s.pending = False
            s.t += dt
            # latent price and regime
            sig = p.sigma0 * act
            s.latent += sig * sqrt(dt) * _normal(r)
            s.regime += -p.regime_kappa * s.regime * dt + p.regime_sigma * sqrt(dt) * _normal(r)
            s.hawkes *= exp(-p.mkt_beta * dt)
            lam_m = p.mkt_mu * act + s.hawkes   # thinning: the bound used the pre-decay value
            ts = s.t0_ns + <int64_t>(s.t * 1e9)
            local = ts + <int64_t>(p.latency_ns * (0.5 + 0.5 * _exp1(r)))
            if local < self._last_local:
                local = self._last_local
            self._last_local = local
            nch = 0
            fair = s.latent
            bb = self.book.best_bid_c()
            ba = self.book.best_ask_c()
            # 1. arbitrage: the latent price moved through the touch
            taker = -1
            if ba != BOOK_NO_ASK and ba < fair - 0.5:
                taker = 0        # a buyer lifts stale asks up to the fair price
            elif bb != BOOK_NO_BID and bb > fair + 0.5:
                taker = 1
            if taker >= 0:
                nsweep = 0
                while nsweep < _MAX_SWEEP:
                    if taker == 0:
                        tick = self.book.best_ask_c()
                        if tick == BOOK_NO_ASK or tick >= fair - 0.5:
                            break
                        side = 1
                    else:
                        tick = self.book.best_bid_c()
                        if tick == BOOK_NO_BID or tick <= fair + 0.5:
                            break
                        side = 0
                    q = self.book.qty_at_c(side, tick)
                    n = _trade(s, out, n, ts, local, side, tick, q)
                    self.book.apply_c(side, tick, 0)
                    ch_side[nch] = side
                    ch_tick[nch] = tick
                    ch_qty[nch] = 0
                    nch += 1
                    nsweep += 1
            # 2. one order-flow event
            elif u * bound < 2.0 * lam_l:
                side = 0 if u * bound < lam_l else 1
                bb = self.book.best_bid_c()
                ba = self.book.best_ask_c()
                if bb != BOOK_NO_BID and ba != BOOK_NO_ASK and ba - bb > 1 and _u01(r) < p.improve_prob:
                    # improve the spread, close to the fair price
                    if side == 0:
                        tick = <int64_t>floor(fair - 0.5) - _geometric(r, 1.0)
                    else:
                        tick = <int64_t>ceil(fair + 0.5) + _geometric(r, 1.0)
                elif side == 0:
                    tick = (bb if bb != BOOK_NO_BID else <int64_t>floor(fair - 0.5)) - _geometric(r, p.place_decay)
                else:
                    tick = (ba if ba != BOOK_NO_ASK else <int64_t>ceil(fair + 0.5)) + _geometric(r, p.place_decay)
                # makers do not quote through the fair price
                if side == 0 and tick > fair:
                    tick = <int64_t>floor(fair)
                if side == 1 and tick < fair:
                    tick = <int64_t>ceil(fair)
                if side == 0 and ba != BOOK_NO_ASK and tick >= ba:
                    tick = ba - 1
                if side == 1 and bb != BOOK_NO_BID and tick <= bb:
                    tick = bb + 1
                if tick > 0:
                    lots = self.book.qty_at_c(side, tick) + _lognormal_lots(r, p.size_mu, p.size_sigma)
                    self.book.apply_c(side, tick, lots)
                    ch_side[0] = side
                    ch_tick[0] = tick
                    ch_qty[0] = lots
                    nch = 1
            elif u * bound < 2.0 * lam_l + 2.0 * lam_c:
                side = 0 if u * bound < 2.0 * lam_l + lam_c else 1
                tick = self.book.best_bid_c() if side == 0 else self.book.best_ask_c()
                if tick != BOOK_NO_BID and tick != BOOK_NO_ASK:
                    tick = tick - _geometric(r, p.place_decay) if side == 0 else tick + _geometric(r, p.place_decay)
                    q = self.book.qty_at_c(side, tick)
                    # never cancel the last level of a side
                    if q > 0 and self.book.count_c(side) > 1:
                        if _u01(r) < 0.5:
                            lots = 0
                        else:
                            lots = q - _lognormal_lots(r, p.size_mu, p.size_sigma)
                            if lots < 0:
                                lots = 0
                        self.book.apply_c(side, tick, lots)
                        ch_side[0] = side
                        ch_tick[0] = tick
                        ch_qty[0] = lots
                        nch = 1
            elif u * bound < 2.0 * lam_l + 2.0 * lam_c + lam_m:
                # market order: informed tilt towards the latent price
                bb = self.book.best_bid_c()
                ba = self.book.best_ask_c()
                tilt = 0.0
                if bb != BOOK_NO_BID and ba != BOOK_NO_ASK:
                    tilt = (fair - 0.5 * (bb + ba)) * 0.3
                    if tilt > 0.3:
                        tilt = 0.3
                    elif tilt < -0.3:
                        tilt = -0.3
                taker = 0 if _u01(r) < 0.5 + tilt else 1
                side = 1 - taker                 # maker side
                remaining = _lognormal_lots(r, p.mkt_size_mu, p.mkt_size_sigma)
                nsweep = 0
                while remaining > 0 and nsweep < _MAX_SWEEP and self.book.count_c(side) > 1:
                    tick = self.book.best_ask_c() if side == 1 else self.book.best_bid_c()
                    q = self.book.qty_at_c(side, tick)
                    fill = remaining if remaining < q else q
                    n = _trade(s, out, n, ts, local, side, tick, fill)
                    remaining -= fill
                    self.book.apply_c(side, tick, q - fill)
                    ch_side[nch] = side
                    ch_tick[nch] = tick
                    ch_qty[nch] = q - fill
                    nch += 1
                    nsweep += 1
                s.hawkes += p.mkt_alpha
            if nch:
                # one depth message: every level change has its own update id
                first_id = s.next_id
                m0 = n
                for i in range(nch):
                    hft_event_set(&out[n], local, ts, ch_tick[i], ch_qty[i], first_id, first_id + nch - 1,
                                  self._last_u, HFT_EV_DEPTH, ch_side[i], 0)
                    n += 1
                out[m0].flags = HFT_EVF_BEGIN
                out[n - 1].flags = out[n - 1].flags | HFT_EVF_END
                s.next_id += nch
                self._last_u = first_id + nch - 1
        return n

