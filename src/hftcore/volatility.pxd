# cython: language_level=3
"""C-level API of hftcore.volatility: EWMA volatility and order-arrival intensity.

Units
-----
* times: int64 nanoseconds since the Unix epoch;
* EWMA variance: per second of squared log-return (``r*r/dt``, dt in seconds);
  sigma = sqrt(variance) in log-return units per sqrt(second);
* intensity depths: half-tick units inside (``|2*price_ticks - mid_x2|``);
  A in trades per second, k per tick (``k_per_tick``) -- divide by the tick
  size in price units for k per price unit.

Everything here is ``noexcept nogil``; the replay kernel can ``cimport`` it.
"""
from libc.stdint cimport int64_t, int32_t
from libc.math cimport log, exp, expm1, sqrt, isfinite


ctypedef struct ewma_vol_t:
    double half_life_s   # half-life of the weights, seconds (> 0)
    double decay_rate    # ln 2 / half_life_s, per second
    double var           # EWMA of r*r/dt: variance rate of log returns, per second
    double ref_mid       # reference mid (price units or ticks -- any positive scale)
    int64_t ref_t        # time of the reference mid, ns
    int64_t count        # number of returns folded into var
    int has_ref          # a reference observation exists


cdef inline void ewma_vol_init(ewma_vol_t* s, double half_life_s) noexcept nogil:
    """Reset ``s`` with the given half-life (seconds, > 0; not checked here)."""
    s.half_life_s = half_life_s
    s.decay_rate = 0.6931471805599453 / half_life_s
    s.var = 0.0
    s.ref_mid = 0.0
    s.ref_t = 0
    s.count = 0
    s.has_ref = 0


cdef inline void ewma_vol_update(ewma_vol_t* s, int64_t t_ns, double mid) noexcept nogil:
    """Fold the observation (t_ns [ns], mid [>0, any price scale]) into ``s``.

    The first valid observation only sets the reference. Then, with
    dt = (t_ns - ref_t)/1e9 s > 0, r = ln(mid/ref_mid), x = r*r/dt [1/s],
    alpha = 1 - exp(-ln2*dt/half_life_s): var = (1-alpha)*var + alpha*x (the
    first return sets var = x), and (t_ns, mid) becomes the reference.
    dt <= 0 leaves everything untouched (the reference does not move, so the
    next return spans the whole interval). A non-finite or non-positive mid is
    ignored.
    """
    cdef double dt, r, x, alpha
    if not (mid > 0.0 and isfinite(mid)):
        return
    if not s.has_ref:
        s.ref_mid = mid
        s.ref_t = t_ns
        s.has_ref = 1
        return
    if t_ns <= s.ref_t:
        return
    dt = <double>(t_ns - s.ref_t) / 1e9
    r = log(mid / s.ref_mid)
    x = r * r / dt
    if s.count == 0:
        s.var = x
    else:
        alpha = -expm1(-s.decay_rate * dt)
        s.var = (1.0 - alpha) * s.var + alpha * x
    s.count += 1
    s.ref_mid = mid
    s.ref_t = t_ns


cdef inline double ewma_vol_sigma(const ewma_vol_t* s) noexcept nogil:
    """sigma of log returns per sqrt(second); 0 before the first return."""
    return sqrt(s.var) if s.count > 0 else 0.0


cdef void ewma_volatility_kernel(const int64_t* t_ns, const double* mid, Py_ssize_t n,
                                 double half_life_s, double* out) noexcept nogil


ctypedef struct intensity_t:
    int64_t window_ns    # rolling window, ns
    double window_s      # the same in seconds (rates are counts / window_s)
    double tick_size     # price units per tick
    int32_t max_bucket   # depth cap in half ticks (2 * max_depth_ticks)
    int64_t min_trades   # trades needed in the window before a fit is ready
    # ring buffer of the trades in the window, oldest at head
    int64_t* ring_t      # trade times, ns
    int32_t* ring_d      # trade depth buckets, half ticks (capped at max_bucket)
    int64_t cap          # allocated slots
    int64_t head         # index of the oldest trade
    int64_t size         # trades in the window
    int64_t* hist        # hist[j] = trades in the window at depth bucket j (j <= max_bucket)
    # result of the last fit
    double A             # trades per second at depth 0 (NaN when not ready)
    double k_per_tick    # decay per tick (NaN when not ready)
    int ready            # the last fit succeeded


cdef int intensity_init(intensity_t* s, double window_s, double tick_size,
                        int32_t max_depth_ticks, int64_t min_trades) noexcept nogil
cdef void intensity_free(intensity_t* s) noexcept nogil
cdef void intensity_expire(intensity_t* s, int64_t now_ns) noexcept nogil
cdef int intensity_on_trade(intensity_t* s, int64_t t_ns, int64_t price_ticks,
                            int64_t mid_x2) noexcept nogil
cdef int intensity_fit(intensity_t* s, int64_t now_ns) noexcept nogil


cdef class EwmaVolatility:
    cdef ewma_vol_t s


cdef class IntensityEstimator:
    cdef intensity_t s
