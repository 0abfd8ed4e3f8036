# cython: language_level=3
"""C-level API of the synthetic market generator (hftcore.synth)."""
from libc.stdint cimport int64_t, uint64_t
from hftcore.book cimport L2Book
from hftcore.types cimport hft_event_t

cdef struct synth_rng_t:
    uint64_t s[4]

cdef struct synth_params_t:
    double tick_size          # price units per tick
    double lot_size           # base units per lot
    int64_t mid0_ticks        # starting mid, ticks
    double sigma0             # latent-price volatility, ticks per sqrt(second), in the calm regime
    double regime_kappa       # mean reversion of the log-activity regime, 1/s
    double regime_sigma       # volatility of the log-activity regime, per sqrt(s)
    double limit_rate         # limit-order arrivals per second per side (calm regime)
    double cancel_rate        # cancellations per second per side (calm regime)
    double mkt_mu             # market-order baseline intensity, 1/s (Hawkes)
    double mkt_alpha          # intensity jump per market order, 1/s
    double mkt_beta           # intensity decay rate, 1/s
    double place_decay        # geometric decay of limit placement depth, per tick
    double improve_prob       # chance a limit order improves a spread wider than 1 tick
    double size_mu            # log of the median order size, lots
    double size_sigma         # lognormal sigma of order sizes
    double mkt_size_mu        # log of the median market-order size, lots
    double mkt_size_sigma
    int64_t book_levels       # levels per side in the initial book
    double latency_ns         # mean exchange->local feed latency, ns (local_ts = exch_ts + latency)

cdef struct synth_state_t:
    synth_rng_t rng
    double t                  # seconds since start
    int64_t t0_ns             # start time, ns since epoch
    double latent             # latent fair price, ticks (float)
    double regime             # log-activity regime (0 = calm)
    double hawkes             # market-order intensity above baseline, 1/s
    int64_t next_id           # next book update id
    int64_t next_trade_id
    bint pending              # a drawn step not taken yet (it ended past the horizon)
    double pend_dt
    double pend_u
    double horizon            # market time generated up to, s


cdef class SyntheticMarket:
    cdef synth_params_t p
    cdef synth_state_t st
    cdef readonly L2Book book
    cdef readonly int64_t events_generated
    cdef int64_t _last_u          # last_id of the previous depth message
    cdef int64_t _last_local      # last local_ts written (kept monotonic)
    cdef int64_t _gen(self, hft_event_t* out, int64_t cap, double t_end) except -1 nogil
