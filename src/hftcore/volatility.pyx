# cython: language_level=3
"""EWMA volatility of mid-price log returns and order-arrival intensity.

Units: times are int64 ns since the epoch; ``EwmaVolatility`` works on log
returns, so mids may be given in price units or in ticks (the ratio is the
same); variance is per second, sigma per sqrt(second). ``IntensityEstimator``
takes prices in ticks and returns A in trades per second and k per price unit
(``k_per_tick`` per tick). The C-level API is declared in ``volatility.pxd``.
"""
from libc.stdint cimport int64_t, int32_t, INT64_MAX
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from libc.math cimport log, exp, sqrt, isfinite, llround, NAN

import math

import numpy as np


# ---------------------------------------------------------------------------
# EWMA volatility
# ---------------------------------------------------------------------------

cdef void ewma_volatility_kernel(const int64_t* t_ns, const double* mid, Py_ssize_t n,
                                 double half_life_s, double* out) noexcept nogil:
    """out[i] = sigma (log units per sqrt(s)) after observation i; 0 before ready."""
    cdef ewma_vol_t s
    cdef Py_ssize_t i
    ewma_vol_init(&s, half_life_s)
    for i in range(n):
        ewma_vol_update(&s, t_ns[i], mid[i])
        out[i] = ewma_vol_sigma(&s)


cdef double _check_half_life(object half_life_s) except -1.0:
    cdef double h = half_life_s
    if not (h > 0.0 and isfinite(h)):
        raise ValueError(f"half_life_s must be a finite number > 0, got {half_life_s!r}")
    return h


cdef class EwmaVolatility:
    """Time-aware EWMA of squared log mid returns over irregular event times.

    ``EwmaVolatility(half_life_s)``: half_life_s in seconds (> 0): data one
    half-life old carries half the weight of fresh data.

    ``update(t_ns, mid)``: t_ns in ns since the epoch, mid > 0 in price units
    or ticks (log returns are scale free). With dt = (t - t_ref)/1e9 seconds,
    r = ln(mid/mid_ref): x = r*r/dt, alpha = 1 - exp(-ln2*dt/half_life_s),
    variance = (1-alpha)*variance + alpha*x (the first return sets it to x).
    Observations with dt <= 0 are skipped and do not move the reference; a
    non-finite or non-positive mid is ignored.
    """

    def __cinit__(self, half_life_s):
        ewma_vol_init(&self.s, _check_half_life(half_life_s))

    def update(self, int64_t t_ns, double mid):
        """Fold in one observation: t_ns [ns since epoch], mid [> 0, price units or ticks]."""
        ewma_vol_update(&self.s, t_ns, mid)

    def reset(self):
        """Forget every observation (the half-life is kept)."""
        ewma_vol_init(&self.s, self.s.half_life_s)

    @property
    def half_life_s(self):
        """Half-life of the weights, seconds."""
        return self.s.half_life_s

    @property
    def variance(self):
        """Variance rate of log returns, per second (0 before ready)."""
        return self.s.var if self.s.count > 0 else 0.0

    @property
    def sigma(self):
        """Volatility of log returns per sqrt(second) (0 before ready)."""
        return ewma_vol_sigma(&self.s)

    @property
    def sigma_price(self):
        """sigma x the reference (last accepted) mid: mid units per sqrt(second).

        Price units when mids were given in price units (ticks when in ticks);
        this is the sigma the quoting models take.
        """
        return ewma_vol_sigma(&self.s) * self.s.ref_mid

    @property
    def count(self):
        """Number of returns folded into the estimate."""
        return self.s.count

    @property
    def ready(self):
        """True once at least one return has been folded in."""
        return self.s.count > 0

    @property
    def last_time_ns(self):
        """Time of the reference (last accepted) observation, ns; None before any."""
        return self.s.ref_t if self.s.has_ref else None

    @property
    def last_mid(self):
        """Reference (last accepted) mid, in the units given; None before any."""
        return self.s.ref_mid if self.s.has_ref else None

    def __repr__(self):
        return (f"EwmaVolatility(half_life_s={self.s.half_life_s!r}, "
                f"sigma={self.sigma!r}, count={self.s.count})")


def ewma_volatility(t_ns, mid, half_life_s):
    """Batch EWMA: sigma (log units per sqrt(s)) after each observation, 0 before ready.

    t_ns: int64 ns since epoch; mid: float64 mids (> 0, price units or ticks);
    half_life_s: seconds. Same semantics as ``EwmaVolatility.update``.
    Inputs are converted with ``np.ascontiguousarray`` (no copy when already
    contiguous int64/float64). Returns a new float64 array of len(t_ns).
    """
    cdef double h = _check_half_life(half_life_s)
    cdef const int64_t[::1] t = np.ascontiguousarray(t_ns, dtype=np.int64)
    cdef const double[::1] m = np.ascontiguousarray(mid, dtype=np.float64)
    cdef Py_ssize_t n = t.shape[0]
    if m.shape[0] != n:
        raise ValueError(f"t_ns and mid differ in length ({n} != {m.shape[0]})")
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    if n:
        with nogil:
            ewma_volatility_kernel(&t[0], &m[0], n, h, &o[0])
    return out


# ---------------------------------------------------------------------------
# Order-arrival intensity  lambda(delta) = A exp(-k delta)
# ---------------------------------------------------------------------------

cdef enum:
    _INITIAL_CAP = 256
# |price_ticks| and |mid_x2| at or beyond 2**61 are rejected (keeps 2*price exact)
cdef int64_t _PRICE_LIMIT = (<int64_t>1) << 61


cdef int intensity_init(intensity_t* s, double window_s, double tick_size,
                        int32_t max_depth_ticks, int64_t min_trades) noexcept nogil:
    """Initialise ``s`` (arguments must be valid). 0, or -1 when out of memory."""
    s.window_s = window_s
    s.window_ns = llround(window_s * 1e9)
    s.tick_size = tick_size
    s.max_bucket = 2 * max_depth_ticks
    s.min_trades = min_trades
    s.cap = _INITIAL_CAP
    s.head = 0
    s.size = 0
    s.A = NAN
    s.k_per_tick = NAN
    s.ready = 0
    s.ring_t = <int64_t*>malloc(s.cap * sizeof(int64_t))
    s.ring_d = <int32_t*>malloc(s.cap * sizeof(int32_t))
    s.hist = <int64_t*>calloc(s.max_bucket + 1, sizeof(int64_t))
    if s.ring_t == NULL or s.ring_d == NULL or s.hist == NULL:
        intensity_free(s)
        return -1
    return 0


cdef void intensity_free(intensity_t* s) noexcept nogil:
    """Release the buffers of ``s`` (idempotent)."""
    free(s.ring_t)
    free(s.ring_d)
    free(s.hist)
    s.ring_t = NULL
    s.ring_d = NULL
    s.hist = NULL
    s.cap = 0
    s.size = 0
    s.head = 0


cdef void intensity_expire(intensity_t* s, int64_t now_ns) noexcept nogil:
    """Drop trades older than the window: t < now_ns - window_ns (FIFO order)."""
    cdef int64_t cutoff = now_ns - s.window_ns
    while s.size > 0 and s.ring_t[s.head] < cutoff:
        s.hist[s.ring_d[s.head]] -= 1
        s.head += 1
        if s.head == s.cap:
            s.head = 0
        s.size -= 1


cdef int _intensity_grow(intensity_t* s) noexcept nogil:
    cdef int64_t new_cap = s.cap * 2
    cdef int64_t* nt = <int64_t*>malloc(new_cap * sizeof(int64_t))
    cdef int32_t* nd = <int32_t*>malloc(new_cap * sizeof(int32_t))
    cdef int64_t first
    if nt == NULL or nd == NULL:
        free(nt)
        free(nd)
        return -1
    # unroll the ring so the oldest trade lands at index 0
    first = s.cap - s.head
    if first > s.size:
        first = s.size
    memcpy(nt, s.ring_t + s.head, first * sizeof(int64_t))
    memcpy(nd, s.ring_d + s.head, first * sizeof(int32_t))
    memcpy(nt + first, s.ring_t, (s.size - first) * sizeof(int64_t))
    memcpy(nd + first, s.ring_d, (s.size - first) * sizeof(int32_t))
    free(s.ring_t)
    free(s.ring_d)
    s.ring_t = nt
    s.ring_d = nd
    s.cap = new_cap
    s.head = 0
    return 0


cdef int intensity_on_trade(intensity_t* s, int64_t t_ns, int64_t price_ticks,
                            int64_t mid_x2) noexcept nogil:
    """Record a trade at price_ticks [ticks] when the book's bid+ask was mid_x2 [ticks].

    Expires the window at t_ns first. The depth bucket is
    |2*price_ticks - mid_x2| in half ticks, capped at 2*max_depth_ticks.
    Returns 0, -1 when out of memory, -2 when a price is out of range
    (|price_ticks| or |mid_x2| >= 2**61).
    """
    cdef int64_t d2
    cdef int64_t tail
    if not (-_PRICE_LIMIT < price_ticks < _PRICE_LIMIT and -_PRICE_LIMIT < mid_x2 < _PRICE_LIMIT):
        return -2
    intensity_expire(s, t_ns)
    if s.size == s.cap:
        if _intensity_grow(s) != 0:
            return -1
    d2 = 2 * price_ticks - mid_x2
    if d2 < 0:
        d2 = -d2
    if d2 > s.max_bucket:
        d2 = s.max_bucket
    tail = s.head + s.size
    if tail >= s.cap:
        tail -= s.cap
    s.ring_t[tail] = t_ns
    s.ring_d[tail] = <int32_t>d2
    s.size += 1
    s.hist[d2] += 1
    return 0


cdef int intensity_fit(intensity_t* s, int64_t now_ns) noexcept nogil:
    """Expire at now_ns, then fit ln lambda_j = ln A - k*delta_j by OLS.

    Levels are the distinct occupied depth buckets j (half ticks, <= cap),
    delta_j = j/2 ticks, lambda_j = (trades with bucket >= j)/window_s [1/s].
    Sums run from the deepest bucket down. Sets A [1/s], k_per_tick [1/tick]
    and ready (>= min_trades trades, >= 2 levels, finite k > 0); when not
    ready A and k_per_tick are NaN. Returns ready.
    """
    cdef int64_t cum = 0
    cdef int32_t j
    cdef double n = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
    cdef double x, y, den, slope, intercept
    intensity_expire(s, now_ns)
    s.ready = 0
    s.A = NAN
    s.k_per_tick = NAN
    if s.size < s.min_trades:
        return 0
    j = s.max_bucket
    while j >= 0:
        if s.hist[j] > 0:
            cum += s.hist[j]
            x = 0.5 * j
            y = log(<double>cum / s.window_s)
            n += 1.0
            sx += x
            sy += y
            sxx += x * x
            sxy += x * y
        j -= 1
    if n < 2.0:
        return 0
    den = n * sxx - sx * sx
    if not den > 0.0:
        return 0
    slope = (n * sxy - sx * sy) / den
    intercept = (sy - slope * sx) / n
    if not (-slope > 0.0 and isfinite(slope) and isfinite(intercept)):
        return 0
    s.k_per_tick = -slope
    s.A = exp(intercept)
    s.ready = 1
    return 1


cdef class IntensityEstimator:
    """Online fit of the order-arrival intensity lambda(delta) = A exp(-k delta).

    ``IntensityEstimator(window_s, tick_size, max_depth_ticks=50, min_trades=20)``
      window_s: rolling window, seconds (> 0); tick_size: price units per tick
      (> 0); max_depth_ticks: depth cap in ticks (deeper trades count in the
      cap bucket); min_trades: trades needed in the window for a fit.

    ``on_trade(t_ns, price_ticks, mid_x2)``: a trade at ``price_ticks`` [ticks]
    at t_ns [ns]; mid_x2 = best_bid_ticks + best_ask_ticks (twice the mid, so
    half-tick mids are exact). Its depth |2*price_ticks - mid_x2|/2 ticks is
    kept in half-tick buckets. Trades are expected in non-decreasing time
    (expiry is first-in first-out).

    ``fit(now_ns)``: drops trades older than window_s before now_ns, then fits
    ln lambda_j = ln A - k delta_j by ordinary least squares over the distinct
    occupied depth buckets delta_j, with lambda_j = (# trades at depth >=
    delta_j) / window_s per second. A is trades per second at depth 0, k is per
    price unit (k_per_tick / tick_size). Returns (A, k); NaN when not ready.
    """

    def __cinit__(self, window_s, tick_size, max_depth_ticks=50, min_trades=20):
        cdef double w = window_s
        cdef double ts = tick_size
        if not (w > 0.0 and isfinite(w) and w * 1e9 < 9.0e18):
            raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
        if not (ts > 0.0 and isfinite(ts)):
            raise ValueError(f"tick_size must be a finite number > 0, got {tick_size!r}")
        if isinstance(max_depth_ticks, bool) or not isinstance(max_depth_ticks, int) \
                or not 1 <= max_depth_ticks <= 1_000_000:
            raise ValueError(f"max_depth_ticks must be an int in [1, 1000000], got {max_depth_ticks!r}")
        if isinstance(min_trades, bool) or not isinstance(min_trades, int) \
                or not 0 <= min_trades <= INT64_MAX:
            raise ValueError(f"min_trades must be an int >= 0, got {min_trades!r}")
        if intensity_init(&self.s, w, ts, <int32_t>max_depth_ticks, <int64_t>min_trades) != 0:
            raise MemoryError()

    def __dealloc__(self):
        intensity_free(&self.s)

    def on_trade(self, int64_t t_ns, int64_t price_ticks, int64_t mid_x2):
        """Record a trade: t_ns [ns], price_ticks [ticks], mid_x2 = bid+ask [ticks]."""
        cdef int rc = intensity_on_trade(&self.s, t_ns, price_ticks, mid_x2)
        if rc == -1:
            raise MemoryError()
        if rc == -2:
            raise ValueError("price_ticks/mid_x2 out of range (|x| >= 2**61)")

    def expire(self, int64_t now_ns):
        """Drop trades older than the window before now_ns [ns]."""
        intensity_expire(&self.s, now_ns)

    def fit(self, int64_t now_ns):
        """Expire at now_ns [ns] and refit; returns (A [1/s], k [1/price unit])."""
        intensity_fit(&self.s, now_ns)
        return (self.s.A, self.s.k_per_tick / self.s.tick_size)

    @property
    def A(self):
        """Arrival rate at depth 0, trades per second (NaN when not ready)."""
        return self.s.A

    @property
    def k(self):
        """Decay per price unit, k_per_tick / tick_size (NaN when not ready)."""
        return self.s.k_per_tick / self.s.tick_size

    @property
    def k_per_tick(self):
        """Decay per tick (NaN when not ready)."""
        return self.s.k_per_tick

    @property
    def count(self):
        """Trades currently in the window (as of the last expiry)."""
        return self.s.size

    @property
    def ready(self):
        """The last fit succeeded (>= min_trades, >= 2 levels, k > 0)."""
        return bool(self.s.ready)

    @property
    def window_s(self):
        return self.s.window_s

    @property
    def tick_size(self):
        return self.s.tick_size

    @property
    def max_depth_ticks(self):
        return self.s.max_bucket // 2

    @property
    def min_trades(self):
        return self.s.min_trades

    def histogram(self):
        """Trades in the window per depth bucket (index j = depth in half ticks)."""
        return np.array([self.s.hist[j] for j in range(self.s.max_bucket + 1)], dtype=np.int64)

    def __repr__(self):
        return (f"IntensityEstimator(window_s={self.s.window_s!r}, A={self.s.A!r}, "
                f"k={self.k!r}, count={self.s.size}, ready={bool(self.s.ready)})")
