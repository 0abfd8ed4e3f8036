# cython: language_level=3
"""Optimal market-making quotes: Avellaneda-Stoikov (2008) and GLFT (2013/2017).

Units: book prices and quotes in int64 ticks, book quantities in int64 lots,
sigma in price units per sqrt(second), inventory q / order size / inventory
limit in base-asset units, k per price unit, A per second, gamma and xi per
(price unit x base unit), horizon in seconds, t_ns in ns since the epoch. The
C-level API (``quote_params_t``, ``quote_out_t``, ``compute_quote``) is
declared in ``quoting.pxd``.

Formulas
--------
Avellaneda & Stoikov, "High-frequency trading in a limit order book",
Quantitative Finance 8(3), 2008, eqs. (29)-(30) with tau = T - t:

    r      = s - q * gamma * sigma**2 * tau
    spread = gamma * sigma**2 * tau + (2/gamma) * ln(1 + gamma/k)
    bid    = r - spread/2,   ask = r + spread/2

Gueant, Lehalle & Fernandez-Tapia, "Dealing with the inventory risk: a solution
to the market making problem", Math. Fin. Econ. 7(4), 2013, in the closed-form
asymptotic approximation of O. Gueant, "Optimal market making", Applied
Mathematical Finance 24(2), 2017 (arXiv:1605.01862), eqs. (4.6)-(4.7), as used in
hftbacktest's tutorial "GLFT Market Making Model and Grid Trading"; Delta =
order_qty, xi = xi:

    c1 = ln(1 + xi*Delta/k) / (xi*Delta)                      (xi = 0: 1/k)
    c2 = sqrt( gamma/(2*A*Delta*k) * (1 + xi*Delta/k)**(k/(xi*Delta) + 1) )
                                                              (xi = 0: sqrt(gamma*e/(2*A*Delta*k)))
    delta_b(q) = c1 + (2q + Delta)/2 * sigma * c2,   bid = s - delta_b
    delta_a(q) = c1 - (2q - Delta)/2 * sigma * c2,   ask = s + delta_a

GLFT is an infinite-horizon (asymptotic) result: it ignores horizon_s/rolling.

Post-processing, in this order (all in tick units):
  1. minimum spread: if ask - bid < min_spread, both are moved to
     centre -/+ min_spread/2 with centre = (bid + ask)/2;
  2. rounding: bid_tick = floor(bid + 1e-6), ask_tick = ceil(ask - 1e-6).
     The 1e-6-tick guard absorbs floating noise (the ULP of a price of 1e7
     ticks is ~2e-9) so a price on a tick multiple stays on it; quotes are
     never moved by more than 1e-6 tick toward the book;
  3. post-only: bid_tick <= best_ask - 1 and ask_tick >= best_bid + 1 (each
     skipped when that side of the book is absent);
  4. if bid_tick >= ask_tick (only possible from rounding guard), ask_tick =
     bid_tick + 1;
  5. inventory: the bid is withheld when q + order_qty > max_inventory, the ask
     when q - order_qty < -max_inventory (tolerance 1e-9 * order_qty).
"""
cimport cython
from libc.stdint cimport int64_t, uint8_t
from libc.math cimport log, log1p, exp, sqrt, floor, ceil, isfinite, isnan, llround, INFINITY

import numpy as np

MODEL_AS = QUOTE_MODEL_AS
MODEL_GLFT = QUOTE_MODEL_GLFT
FAIR_MID = QUOTE_FAIR_MID
FAIR_MICRO = QUOTE_FAIR_MICRO
FLAG_BID_OK = QUOTE_FLAG_BID_OK
FLAG_ASK_OK = QUOTE_FLAG_ASK_OK
FLAG_INVALID = QUOTE_FLAG_INVALID
NO_BID = QUOTE_NO_BID
NO_ASK = QUOTE_NO_ASK

# floor/ceil guard, ticks (see the module docstring)
cdef double ROUND_EPS = 1e-6
# quotes whose tick value is beyond +-LIMIT are rejected (int64 conversion safety)
cdef double TICK_LIMIT = 4.0e18

# error codes of quote_params_init / quote_params_set_intensity -> parameter
_PARAM_NAMES = {
    -1: "model", -2: "gamma", -3: "xi", -4: "order_qty", -5: "k", -6: "A",
    -7: "horizon_s", -8: "rolling", -9: "fair_value", -10: "tick_size",
    -11: "min_spread", -12: "max_inventory",
    -13: "k",  # (gamma, xi, k, A, order_qty) give non-finite model constants
}


cdef inline bint _pos(double x) noexcept nogil:
    return x > 0.0 and isfinite(x)


cdef int _constants(quote_params_t* p) noexcept nogil:
    """Recompute the precomputed constants of ``p``; 0, or -13 if not finite."""
    cdef double xd = p.xi * p.order_qty
    cdef double base = p.gamma / (2.0 * p.A * p.order_qty * p.k)
    p.inv_tick = 1.0 / p.tick_size
    p.min_spread_ticks = p.min_spread * p.inv_tick
    p.inv_eps = 1e-9 * p.order_qty
    p.as_const = (2.0 / p.gamma) * log1p(p.gamma / p.k)
    if xd == 0.0:
        p.glft_c1 = 1.0 / p.k
        p.glft_c2 = sqrt(base * 2.718281828459045)
    else:
        p.glft_c1 = log1p(xd / p.k) / xd
        # (1 + xd/k)**(k/xd + 1), via log1p for accuracy when xd/k is small
        p.glft_c2 = sqrt(base * exp((p.k / xd + 1.0) * log1p(xd / p.k)))
    if not (_pos(p.as_const) and _pos(p.glft_c1) and _pos(p.glft_c2) and _pos(p.inv_tick)):
        return -13
    return 0


cdef int quote_params_init(quote_params_t* p, int model, double gamma, double xi,
                           double order_qty, double k, double A, double horizon_s,
                           int rolling, int fair_value, double tick_size,
                           double min_spread, double max_inventory) noexcept nogil:
    """Validate and store the parameters (units in quoting.pxd), precompute constants.

    Returns 0, or a negative code naming the first invalid parameter:
    -1 model, -2 gamma (finite > 0), -3 xi (finite >= 0), -4 order_qty (finite > 0),
    -5 k (finite > 0), -6 A (finite > 0), -7 horizon_s (finite > 0, 1 ns .. 9e9 s),
    -8 rolling (0/1), -9 fair_value, -10 tick_size (finite > 0), -11 min_spread
    (finite >= 0), -12 max_inventory (>= 0, inf allowed), -13 non-finite constants.
    ``p`` is left unchanged on error.
    """
    cdef quote_params_t t
    if model != QUOTE_MODEL_AS and model != QUOTE_MODEL_GLFT:
        return -1
    if not _pos(gamma):
        return -2
    if not (xi >= 0.0 and isfinite(xi)):
        return -3
    if not _pos(order_qty):
        return -4
    if not _pos(k):
        return -5
    if not _pos(A):
        return -6
    if not (_pos(horizon_s) and horizon_s * 1e9 >= 1.0 and horizon_s <= 9.0e9):
        return -7
    if rolling != 0 and rolling != 1:
        return -8
    if fair_value != QUOTE_FAIR_MID and fair_value != QUOTE_FAIR_MICRO:
        return -9
    if not _pos(tick_size):
        return -10
    if not (min_spread >= 0.0 and isfinite(min_spread)):
        return -11
    if not (max_inventory >= 0.0):
        return -12
    t.model = model
    t.gamma = gamma
    t.xi = xi
    t.order_qty = order_qty
    t.k = k
    t.A = A
    t.horizon_s = horizon_s
    t.horizon_ns = llround(horizon_s * 1e9)
    t.rolling = rolling
    t.fair_value = fair_value
    t.tick_size = tick_size
    t.min_spread = min_spread
    t.max_inventory = max_inventory
    t.price_band = 0.2
    if _constants(&t) != 0:
        return -13
    p[0] = t
    return 0


cdef int quote_params_set_intensity(quote_params_t* p, double A, double k) noexcept nogil:
    """Set A [1/s] and k [1/price unit] and recompute the constants.

    0, or -5 (bad k), -6 (bad A), -13 (non-finite constants); ``p`` unchanged on error.
    """
    cdef quote_params_t t
    if not _pos(k):
        return -5
    if not _pos(A):
        return -6
    t = p[0]
    t.A = A
    t.k = k
    if _constants(&t) != 0:
        return -13
    p[0] = t
    return 0


cdef inline int64_t _floor_i64(double x) noexcept nogil:
    """floor(x) as int64 for |x| < 2**63 (no libm call: baseline x86-64 has no
    SSE4.1 roundsd). trunc(x) is exact in int64 and back in double."""
    cdef int64_t i = <int64_t>x
    return i - (<double>i > x)


cdef inline int64_t _ceil_i64(double x) noexcept nogil:
    """ceil(x) as int64 for |x| < 2**63."""
    cdef int64_t i = <int64_t>x
    return i + (<double>i < x)


@cython.cdivision(True)
cdef int compute_quote(const quote_params_t* p, int64_t best_bid, int64_t best_ask,
                       int64_t bid_qty_lots, int64_t ask_qty_lots, double sigma, double q,
                       int64_t t_ns, quote_out_t* out) noexcept nogil:
    """One quote (see _quote_at); the horizon position is t_ns mod T."""
    return _quote_at(p, best_bid, best_ask, bid_qty_lots, ask_qty_lots, sigma, q, t_ns, -1, out)


cdef inline int _quote_at(const quote_params_t* p, int64_t best_bid, int64_t best_ask,
                          int64_t bid_qty_lots, int64_t ask_qty_lots, double sigma, double q,
                          int64_t t_ns, int64_t rem_known, quote_out_t* out) noexcept nogil:
    """One quote from the book top, sigma, inventory and time (units in quoting.pxd).

    best_bid/best_ask [ticks] (QUOTE_NO_BID / QUOTE_NO_ASK when a side is
    absent: the fair value is then the present side's price and the post-only
    clamp for the absent side is skipped), bid/ask_qty_lots [lots, >= 0; used by
    the micro-price only], sigma [price units/sqrt(s), >= 0], q [base units],
    t_ns [ns] (finite-horizon AS only: tau = T - (t mod T) seconds).

    Returns 0, or -1 (out->bid_ok = out->ask_ok = 0, other fields unspecified)
    when: sigma is NaN/inf/negative; q is NaN/inf; both book sides are absent;
    the book is locked or crossed (best_bid >= best_ask); a quantity is
    negative (micro-price); or a quote falls beyond +-4e18 ticks.
    """
    cdef bint has_bid = best_bid != QUOTE_NO_BID
    cdef bint has_ask = best_ask != QUOTE_NO_ASK
    cdef double s
    cdef int64_t tot
    out.bid_ok = 0
    out.ask_ok = 0
    # fair value s, in ticks
    if has_bid and has_ask:
        if best_bid >= best_ask:
            return -1
        s = <double>(best_bid + best_ask) * 0.5
        if p.fair_value == QUOTE_FAIR_MICRO:
            if bid_qty_lots < 0 or ask_qty_lots < 0:
                return -1
            tot = bid_qty_lots + ask_qty_lots
            if tot > 0:
                s = (<double>best_bid * <double>ask_qty_lots
                     + <double>best_ask * <double>bid_qty_lots) / <double>tot
    elif has_bid:
        s = <double>best_bid
    elif has_ask:
        s = <double>best_ask
    else:
        return -1
    return _quote_from(p, best_bid, best_ask, s, sigma, q, t_ns, rem_known, out)


cdef int compute_quote_fv(const quote_params_t* p, int64_t best_bid, int64_t best_ask, double fair_ticks,
                          double sigma, double q, int64_t t_ns, quote_out_t* out) noexcept nogil:
    """One quote around a fair value the caller chose (``fair_ticks``, ticks; e.g. a
    strategy's own estimate), with the book top for the post-only clamps. Returns
    0, or -1 as :func:`compute_quote` (and for a fair value that is not finite)."""
    out.bid_ok = 0
    out.ask_ok = 0
    if best_bid != QUOTE_NO_BID and best_ask != QUOTE_NO_ASK and best_bid >= best_ask:
        return -1
    if not (fair_ticks > -TICK_LIMIT and fair_ticks < TICK_LIMIT):
        return -1
    return _quote_from(p, best_bid, best_ask, fair_ticks, sigma, q, t_ns, -1, out)


cdef inline int _quote_from(const quote_params_t* p, int64_t best_bid, int64_t best_ask, double s,
                            double sigma, double q, int64_t t_ns, int64_t rem_known,
                            quote_out_t* out) noexcept nogil:
    """The quote around fair value s [ticks] (the model, the minimum spread, tick
    rounding, the post-only clamps against the book top, the price band, the
    inventory limit)."""
    cdef bint has_bid = best_bid != QUOTE_NO_BID
    cdef bint has_ask = best_ask != QUOTE_NO_ASK
    cdef double var, tau, skew, r, spread, half, bid_f, ask_f, sc2, db, da, c, band
    cdef int64_t rem, bt, at
    if not (sigma >= 0.0 and sigma < INFINITY) or not (q > -INFINITY and q < INFINITY):
        return -1

    var = sigma * sigma  # price units**2 per second
    if p.model == QUOTE_MODEL_AS:
        if p.rolling:
            tau = p.horizon_s
        else:
            if rem_known >= 0:
                rem = rem_known          # t_ns mod T, known by the caller
            else:
                rem = t_ns % p.horizon_ns
                if rem < 0:
                    rem += p.horizon_ns
            tau = p.horizon_s - <double>rem * 1e-9  # seconds (multiply: no divsd latency)
        skew = p.gamma * var * tau                 # price units per base unit
        r = s - q * skew * p.inv_tick              # ticks
        spread = skew + p.as_const                 # price units
        half = 0.5 * spread * p.inv_tick           # ticks
        bid_f = r - half
        ask_f = r + half
        out.reservation_price = r * p.tick_size
    else:
        sc2 = sigma * p.glft_c2                    # price units per base unit
        db = p.glft_c1 + (2.0 * q + p.order_qty) * 0.5 * sc2   # price units
        da = p.glft_c1 - (2.0 * q - p.order_qty) * 0.5 * sc2
        bid_f = s - db * p.inv_tick
        ask_f = s + da * p.inv_tick
        spread = db + da
        out.reservation_price = (bid_f + ask_f) * 0.5 * p.tick_size
    out.spread = spread
    out.fair_value = s * p.tick_size

    if ask_f - bid_f < p.min_spread_ticks:
        c = (bid_f + ask_f) * 0.5
        bid_f = c - 0.5 * p.min_spread_ticks
        ask_f = c + 0.5 * p.min_spread_ticks
    # also rejects NaN
    if not (bid_f > -TICK_LIMIT and bid_f < TICK_LIMIT and ask_f > -TICK_LIMIT and ask_f < TICK_LIMIT):
        return -1
    bt = _floor_i64(bid_f + ROUND_EPS)
    at = _ceil_i64(ask_f - ROUND_EPS)
    if has_ask and bt > best_ask - 1:
        bt = best_ask - 1
    if has_bid and at < best_bid + 1:
        at = best_bid + 1
    if bt >= at:
        at = bt + 1
    out.bid_tick = bt
    out.ask_tick = at
    # sanity band: never a price <= 0, never further than price_band x s from s (a
    # volatility estimate blown up by two updates a microsecond apart must not post)
    band = p.price_band * s
    out.bid_ok = bt >= 1 and s - <double>bt <= band and not (q + p.order_qty - p.max_inventory > p.inv_eps)
    out.ask_ok = at >= 1 and <double>at - s <= band and not (-p.max_inventory - (q - p.order_qty) > p.inv_eps)
    return 0


cdef Py_ssize_t quote_batch_kernel(const quote_params_t* p, Py_ssize_t n,
                                   const int64_t* best_bid, const int64_t* best_ask,
                                   const int64_t* bid_qty, const int64_t* ask_qty,
                                   const double* sigma, const double* q,
                                   const int64_t* t_ns, int64_t* out_bid,
                                   int64_t* out_ask, uint8_t* out_flags) noexcept nogil:
    """compute_quote over n rows of contiguous arrays.

    out_flags[i] = QUOTE_FLAG_BID_OK | QUOTE_FLAG_ASK_OK bits, or
    QUOTE_FLAG_INVALID (with out_bid/out_ask = 0) when compute_quote failed.
    Outputs must not overlap the inputs. Returns the number of invalid rows.
    """
    # a local copy of the parameters: the uint8 stores below may alias *p, a
    # local whose address never escapes cannot be aliased, so its fields stay
    # in registers
    cdef quote_params_t lp = p[0]
    cdef Py_ssize_t i, bad = 0
    cdef quote_out_t o
    # the horizon window [w0, w0 + T) of the previous row: rows in time order
    # need no 64-bit division (t mod T = t - w0 while t stays in the window)
    cdef int64_t w0 = 1, w1 = 0, t, rem
    for i in range(n):
        t = t_ns[i]
        if t >= w0 and t < w1:
            rem = t - w0
        else:
            rem = t % lp.horizon_ns
            if rem < 0:
                rem += lp.horizon_ns
            w0 = t - rem
            w1 = w0 + lp.horizon_ns
        if _quote_at(&lp, best_bid[i], best_ask[i], bid_qty[i], ask_qty[i],
                     sigma[i], q[i], t, rem, &o) == 0:
            out_bid[i] = o.bid_tick
            out_ask[i] = o.ask_tick
            out_flags[i] = <uint8_t>(o.bid_ok * QUOTE_FLAG_BID_OK + o.ask_ok * QUOTE_FLAG_ASK_OK)
        else:
            out_bid[i] = 0
            out_ask[i] = 0
            out_flags[i] = QUOTE_FLAG_INVALID
            bad += 1
    return bad


@cython.freelist(64)
@cython.final
cdef class Quote:
    """One quote. Ticks: bid_tick, ask_tick; price units: reservation_price,
    spread (model ask - bid before min-spread, rounding and clamps), fair_value,
    bid_price, ask_price. bid_ok/ask_ok: post that side (False when withheld by
    the inventory limit)."""

    @property
    def bid_price(self):
        """bid_tick * tick_size, price units."""
        return self.bid_tick * self.tick_size

    @property
    def ask_price(self):
        """ask_tick * tick_size, price units."""
        return self.ask_tick * self.tick_size

    def __repr__(self):
        return (f"Quote(bid_tick={self.bid_tick}, ask_tick={self.ask_tick}, "
                f"bid_ok={self.bid_ok}, ask_ok={self.ask_ok}, "
                f"reservation_price={self.reservation_price!r}, spread={self.spread!r}, "
                f"fair_value={self.fair_value!r})")


cdef double _num(object value, str name) except? -1.0:
    """float(value), or ValueError naming the parameter (bools, strings, None refused)."""
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None


cdef _raise_param(int code, dict given):
    name = _PARAM_NAMES.get(code, "?")
    if code == -13:
        raise ValueError(
            "k (with gamma, xi, A and order_qty) gives non-finite model constants: "
            f"{given!r}")
    raise ValueError(f"invalid {name}: {given.get(name)!r}")


cdef Quote _quote_obj(const quote_out_t* o, double tick_size):
    cdef Quote res = Quote.__new__(Quote)
    res.bid_tick = o.bid_tick
    res.ask_tick = o.ask_tick
    res.bid_ok = o.bid_ok
    res.ask_ok = o.ask_ok
    res.reservation_price = o.reservation_price
    res.spread = o.spread
    res.fair_value = o.fair_value
    res.tick_size = tick_size
    return res


@cython.final
cdef class Quoter:
    """Avellaneda-Stoikov / GLFT quoter (formulas and post-processing: module docstring).

    Quoter(model="as" | "glft", gamma [1/(price*base)] = 0.1, k [1/price] = 1.5,
           A [1/s] = 140.0, horizon_s [s] = 30.0, rolling = False,
           fair_value = "mid" | "micro", tick_size [price] = 0.01,
           min_spread [price] = 0.0, max_inventory [base] = 1.0,
           order_qty [base] = 0.001, xi [1/(price*base)] = None -> gamma,
           price_band [fraction] = 0.2: a side priced <= 0 or further than
           price_band x fair value from the fair value is withheld)

    Every argument is validated (ValueError naming the parameter).
    """

    def __init__(self, model="as", gamma=0.1, k=10.0, A=5.0, horizon_s=30.0,
                 rolling=False, fair_value="mid", tick_size=0.01, min_spread=0.0,
                 max_inventory=1.0, order_qty=0.001, xi=None, price_band=0.2):
        given = dict(model=model, gamma=gamma, k=k, A=A, horizon_s=horizon_s,
                     rolling=rolling, fair_value=fair_value, tick_size=tick_size,
                     min_spread=min_spread, max_inventory=max_inventory,
                     order_qty=order_qty, xi=xi)
        cdef double band = _num(price_band, "price_band")
        if not (band > 0.0 and isfinite(band)):
            raise ValueError(f"price_band must be a finite fraction > 0, got {price_band!r}")
        models = {"as": QUOTE_MODEL_AS, "glft": QUOTE_MODEL_GLFT}
        fairs = {"mid": QUOTE_FAIR_MID, "micro": QUOTE_FAIR_MICRO}
        if not isinstance(model, str) or model.lower() not in models:
            raise ValueError(f"model must be 'as' or 'glft', got {model!r}")
        if not isinstance(fair_value, str) or fair_value.lower() not in fairs:
            raise ValueError(f"fair_value must be 'mid' or 'micro', got {fair_value!r}")
        if not isinstance(rolling, (bool, np.bool_)):
            raise ValueError(f"rolling must be a bool, got {rolling!r}")
        cdef double g = _num(gamma, "gamma")
        cdef double x = g if xi is None else _num(xi, "xi")
        cdef int rc = quote_params_init(
            &self.p, models[model.lower()], g, x,
            _num(order_qty, "order_qty"), _num(k, "k"), _num(A, "A"),
            _num(horizon_s, "horizon_s"), 1 if rolling else 0, fairs[fair_value.lower()],
            _num(tick_size, "tick_size"), _num(min_spread, "min_spread"),
            _num(max_inventory, "max_inventory"))
        if rc != 0:
            _raise_param(rc, given)
        self.p.price_band = band

    def set_intensity(self, A, k):
        """Set A [trades/s] and k [1/price unit] (e.g. from IntensityEstimator.fit)."""
        cdef int rc = quote_params_set_intensity(&self.p, _num(A, "A"), _num(k, "k"))
        if rc != 0:
            _raise_param(rc, dict(A=A, k=k))

    def quote(self, int64_t best_bid, int64_t best_ask, int64_t bid_qty, int64_t ask_qty,
              double sigma, double q, int64_t t_ns):
        """Quote for: best_bid/best_ask [ticks; NO_BID/NO_ASK if absent], bid_qty/ask_qty
        [lots], sigma [price units/sqrt(s)], q [base units], t_ns [ns]. ValueError on
        invalid input (see compute_quote)."""
        cdef quote_out_t o
        if compute_quote(&self.p, best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns, &o) != 0:
            raise ValueError(
                f"invalid quote input: best_bid={best_bid}, best_ask={best_ask}, "
                f"bid_qty={bid_qty}, ask_qty={ask_qty}, sigma={sigma!r}, q={q!r}")
        return _quote_obj(&o, self.p.tick_size)

    def quote_at(self, double fair_ticks, int64_t best_bid, int64_t best_ask, double sigma, double q,
                 int64_t t_ns):
        """Quote around a fair value of your own (``fair_ticks``, ticks; e.g. an
        order-book-imbalance estimate), with the book top [ticks; NO_BID/NO_ASK if
        absent] for the post-only clamps; other arguments as :meth:`quote`."""
        cdef quote_out_t o
        if compute_quote_fv(&self.p, best_bid, best_ask, fair_ticks, sigma, q, t_ns, &o) != 0:
            raise ValueError(f"invalid quote input: fair={fair_ticks!r}, best_bid={best_bid}, "
                             f"best_ask={best_ask}, sigma={sigma!r}, q={q!r}")
        return _quote_obj(&o, self.p.tick_size)

    def quote_batch(self, best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns,
                    out_bid=None, out_ask=None, out_flags=None):
        """Vectorised ``quote`` over equal-length arrays: best_bid, best_ask [ticks],
        bid_qty, ask_qty [lots] and t_ns [ns] as int64; sigma [price units/sqrt(s)]
        and q [base units] as float64 (inputs are passed through
        ``np.ascontiguousarray``: no copy when already contiguous of that dtype).

        Returns (out_bid int64 [ticks], out_ask int64 [ticks], out_flags uint8),
        allocated unless given (given outputs must be contiguous, of those
        dtypes and that length). out_flags bits: FLAG_BID_OK=1, FLAG_ASK_OK=2,
        FLAG_INVALID=4 (invalid rows never raise; their ticks are 0).
        """
        cdef const int64_t[::1] bb = np.ascontiguousarray(best_bid, dtype=np.int64)
        cdef const int64_t[::1] ba = np.ascontiguousarray(best_ask, dtype=np.int64)
        cdef const int64_t[::1] bq = np.ascontiguousarray(bid_qty, dtype=np.int64)
        cdef const int64_t[::1] aq = np.ascontiguousarray(ask_qty, dtype=np.int64)
        cdef const double[::1] sg = np.ascontiguousarray(sigma, dtype=np.float64)
        cdef const double[::1] qq = np.ascontiguousarray(q, dtype=np.float64)
        cdef const int64_t[::1] tt = np.ascontiguousarray(t_ns, dtype=np.int64)
        cdef Py_ssize_t n = bb.shape[0]
        for name, v in (("best_ask", ba), ("bid_qty", bq), ("ask_qty", aq),
                        ("sigma", sg), ("q", qq), ("t_ns", tt)):
            if v.shape[0] != n:
                raise ValueError(f"{name} has length {v.shape[0]}, expected {n}")
        if out_bid is None:
            out_bid = np.empty(n, dtype=np.int64)
        if out_ask is None:
            out_ask = np.empty(n, dtype=np.int64)
        if out_flags is None:
            out_flags = np.empty(n, dtype=np.uint8)
        cdef int64_t[::1] ob = out_bid
        cdef int64_t[::1] oa = out_ask
        cdef uint8_t[::1] of = out_flags
        if ob.shape[0] != n or oa.shape[0] != n or of.shape[0] != n:
            raise ValueError(f"output arrays must have length {n}")
        if n:
            with nogil:
                quote_batch_kernel(&self.p, n, &bb[0], &ba[0], &bq[0], &aq[0], &sg[0],
                                   &qq[0], &tt[0], &ob[0], &oa[0], &of[0])
        return out_bid, out_ask, out_flags

    # read-only views of the parameters
    @property
    def model(self):
        return "as" if self.p.model == QUOTE_MODEL_AS else "glft"

    @property
    def fair_value(self):
        return "mid" if self.p.fair_value == QUOTE_FAIR_MID else "micro"

    @property
    def gamma(self):
        return self.p.gamma

    @property
    def xi(self):
        return self.p.xi

    @property
    def k(self):
        """Intensity decay, per price unit."""
        return self.p.k

    @property
    def A(self):
        """Intensity at depth 0, per second."""
        return self.p.A

    @property
    def horizon_s(self):
        return self.p.horizon_s

    @property
    def rolling(self):
        return bool(self.p.rolling)

    @property
    def tick_size(self):
        return self.p.tick_size

    @property
    def min_spread(self):
        return self.p.min_spread

    @property
    def max_inventory(self):
        return self.p.max_inventory

    @property
    def order_qty(self):
        return self.p.order_qty

    @property
    def as_const(self):
        """(2/gamma) ln(1 + gamma/k), price units."""
        return self.p.as_const

    @property
    def c1(self):
        """GLFT c1, price units."""
        return self.p.glft_c1

    @property
    def c2(self):
        """GLFT c2, sqrt(second) per base unit."""
        return self.p.glft_c2

    def __repr__(self):
        return (f"Quoter(model={self.model!r}, gamma={self.p.gamma!r}, k={self.p.k!r}, "
                f"A={self.p.A!r}, horizon_s={self.p.horizon_s!r}, rolling={self.rolling}, "
                f"fair_value={self.fair_value!r}, tick_size={self.p.tick_size!r}, "
                f"min_spread={self.p.min_spread!r}, max_inventory={self.p.max_inventory!r}, "
                f"order_qty={self.p.order_qty!r}, xi={self.p.xi!r})")
