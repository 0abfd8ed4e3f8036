# cython: language_level=3
"""C-level API of hftcore.quoting: Avellaneda-Stoikov and GLFT quotes.

Units
-----
* book prices (best_bid, best_ask) and output quotes: int64 ticks;
* book quantities: int64 lots (only their ratio matters, for the micro-price);
* sigma: price units per sqrt(second) (sigma**2 per second);
* q, order_qty, max_inventory: base-asset units (signed inventory q);
* gamma, xi: per (price unit x base unit); k: per price unit; A: per second;
* horizon_s: seconds; t_ns: ns since the epoch;
* reservation price, spread, fair value in quote_out_t: price units.

An absent side of the book is passed as QUOTE_NO_BID (INT64_MIN) for the bid
and QUOTE_NO_ASK (INT64_MAX) for the ask.
"""
from libc.stdint cimport int64_t, uint8_t


cdef enum:
    QUOTE_MODEL_AS = 0      # Avellaneda & Stoikov (2008)
    QUOTE_MODEL_GLFT = 1    # Gueant, Lehalle & Fernandez-Tapia (2013), Gueant (2017)
    QUOTE_FAIR_MID = 0      # (bid + ask) / 2
    QUOTE_FAIR_MICRO = 1    # (bid*askQty + ask*bidQty) / (bidQty + askQty)
    QUOTE_FLAG_BID_OK = 1   # out_flags bits of the batch kernel
    QUOTE_FLAG_ASK_OK = 2
    QUOTE_FLAG_INVALID = 4  # compute_quote returned -1: no quote on either side

cdef extern from *:
    """
    #include <stdint.h>
    #define HFT_QUOTE_NO_BID INT64_MIN
    #define HFT_QUOTE_NO_ASK INT64_MAX
    """
    int64_t QUOTE_NO_BID "HFT_QUOTE_NO_BID"   # = INT64_MIN: no bid in the book
    int64_t QUOTE_NO_ASK "HFT_QUOTE_NO_ASK"   # = INT64_MAX: no ask in the book


ctypedef struct quote_params_t:
    int model             # QUOTE_MODEL_AS / QUOTE_MODEL_GLFT
    double gamma          # risk aversion, 1/(price unit * base unit), > 0
    double xi             # GLFT xi (same unit as gamma), >= 0; default gamma
    double order_qty      # order size Delta, base units, > 0
    double k              # intensity decay, per price unit, > 0
    double A              # intensity at depth 0, per second, > 0
    double horizon_s      # T, seconds, > 0 (AS only)
    int64_t horizon_ns    # T in ns (rounded), >= 1
    int rolling           # AS: 1 -> tau = T always; 0 -> tau = T - (t mod T)
    int fair_value        # QUOTE_FAIR_MID / QUOTE_FAIR_MICRO
    double tick_size      # price units per tick, > 0
    double min_spread     # minimal ask - bid before rounding, price units, >= 0
    double max_inventory  # |q| bound, base units, >= 0 (inf = no bound)
    double price_band     # a side priced <= 0 or more than price_band x fair value away from
                          # the fair value is withheld (fraction, > 0; default 0.2)
    # precomputed
    double inv_tick           # 1 / tick_size, ticks per price unit
    double min_spread_ticks   # min_spread * inv_tick
    double as_const           # AS: (2/gamma) ln(1 + gamma/k), price units
    double glft_c1            # GLFT c1 = ln(1 + xi*Delta/k)/(xi*Delta) (1/k if xi = 0), price units
    double glft_c2            # GLFT c2, sqrt(second)/base unit (sigma*c2*q is price units)
    double inv_eps            # inventory-limit tolerance, 1e-9 * order_qty


ctypedef struct quote_out_t:
    int64_t bid_tick          # bid price, ticks (meaningful only when bid_ok)
    int64_t ask_tick          # ask price, ticks (meaningful only when ask_ok)
    int bid_ok                # 1: post the bid; 0: withheld (inventory limit or error)
    int ask_ok                # 1: post the ask; 0: withheld
    double reservation_price  # AS: r; GLFT: midpoint of the model bid and ask; price units
    double spread             # model ask - bid before min-spread/rounding/clamps, price units
    double fair_value         # s (mid or micro-price), price units


cdef int quote_params_init(quote_params_t* p, int model, double gamma, double xi,
                           double order_qty, double k, double A, double horizon_s,
                           int rolling, int fair_value, double tick_size,
                           double min_spread, double max_inventory) noexcept nogil
cdef int quote_params_set_intensity(quote_params_t* p, double A, double k) noexcept nogil
cdef int compute_quote(const quote_params_t* p, int64_t best_bid, int64_t best_ask,
                       int64_t bid_qty_lots, int64_t ask_qty_lots, double sigma, double q,
                       int64_t t_ns, quote_out_t* out) noexcept nogil
cdef int compute_quote_fv(const quote_params_t* p, int64_t best_bid, int64_t best_ask, double fair_ticks,
                          double sigma, double q, int64_t t_ns, quote_out_t* out) noexcept nogil
cdef Py_ssize_t quote_batch_kernel(const quote_params_t* p, Py_ssize_t n,
                                   const int64_t* best_bid, const int64_t* best_ask,
                                   const int64_t* bid_qty, const int64_t* ask_qty,
                                   const double* sigma, const double* q,
                                   const int64_t* t_ns, int64_t* out_bid,
                                   int64_t* out_ask, uint8_t* out_flags) noexcept nogil


cdef class Quote:
    cdef readonly int64_t bid_tick
    cdef readonly int64_t ask_tick
    cdef readonly bint bid_ok
    cdef readonly bint ask_ok
    cdef readonly double reservation_price
    cdef readonly double spread
    cdef readonly double fair_value
    cdef readonly double tick_size


cdef class Quoter:
    cdef quote_params_t p
