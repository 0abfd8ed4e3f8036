# cython: language_level=3
"""C-level API of the exchange model (hftcore.exchange): where our orders meet the market.

Units: prices in ticks, quantities in lots, times in ns, money in quote currency.
The model owns no book: the driver applies each market event to the one book
(``book``) and then calls :meth:`ExchangeModel.on_event_c`; orders reach the
exchange through :meth:`submit_c` / :meth:`cancel_c` and are processed when the
exchange clock passes their arrival (:meth:`advance_c`). What the exchange does
comes back as reports, per account, in time order.
"""
from libc.stdint cimport int64_t, uint64_t
from hftcore.book cimport L2Book
from hftcore.types cimport hft_event_t

cdef enum:
    XM_QUEUE_RISK_AVERSE = 0    # only trades at our price advance us
    XM_QUEUE_POWER = 1          # cancellations split front/back by f(x) = x**n
    XM_QUEUE_LOG = 2            # f(x) = log(1 + x)
    XM_FILL_QUEUE = 0           # fills from trades and price moves (queue position)
    XM_FILL_INTENSITY = 1       # fills at rate A exp(-k delta) (data without trades)
    # order states at the exchange
    XM_FREE = 0
    XM_IN_FLIGHT = 1
    XM_OPEN = 2
    XM_DONE = 3
    # report kinds
    RPT_ACK = 1                 # the order rests at the exchange
    RPT_FILL = 2                # lots filled at px (leaves after it; fee; taker)
    RPT_CANCELED = 3            # cancelled by our request (leaves cancelled)
    RPT_REJECTED = 4            # refused: a post-only order that would take, or refused before sending
    # order flags
    XM_POST_ONLY = 1
    XM_MARKET = 2               # takes the visible levels at their prices on arrival; the rest expires

ctypedef struct xm_params_t:
    double tick_size            # price units per tick
    double lot_size             # base units per lot
    int64_t entry_latency_ns    # local submit -> exchange arrival
    int64_t cancel_latency_ns   # local cancel -> exchange arrival
    int64_t response_latency_ns # exchange event -> local report
    int queue_model
    double queue_power
    int fill_model
    double fill_A               # intensity fill model, per second
    double fill_k               # intensity fill model, per price unit
    double maker_fee            # fraction of notional (negative = rebate)
    double taker_fee

ctypedef struct xm_order_t:
    int64_t id                  # the trader's order id
    int side                    # 0 buy (bid), 1 sell (ask)
    int state                   # XM_FREE / XM_IN_FLIGHT / XM_OPEN / XM_DONE
    int flags                   # XM_POST_ONLY
    int64_t px                  # ticks
    int64_t qty                 # lots
    int64_t leaves              # lots
    double queue_ahead          # lots ahead of us at our price (estimate)
    int64_t level_qty           # the level's quantity as last seen (its previous quantity at a depth record)
    int64_t traded_at_level     # lots traded at our price since the level's last depth record
    int64_t arrive_ns           # exchange arrival of the new order
    int64_t cancel_ns           # exchange arrival of our cancel (INT64_MAX: none)
    int64_t submit_ns           # local submit time

ctypedef struct xm_report_t:
    int64_t ts                  # when the trader learns it (exchange time + response latency), ns
    int64_t id                  # order id
    int kind                    # RPT_*
    int side
    int taker                   # 1: the fill took liquidity
    int64_t px                  # fill price, ticks (order price otherwise)
    int64_t lots                # filled lots (FILL), else 0
    int64_t leaves              # lots left after it
    double fee                  # quote currency (FILL)

ctypedef struct xm_fill_t:      # the results' record of a fill (FILL_DTYPE)
    int64_t exch_ts
    int64_t report_ts
    int64_t order_id
    int64_t px
    int64_t qty
    int64_t position            # lots after the fill (exchange truth)
    double fee
    double cash
    double mid                  # exchange mid at the fill, price units
    int64_t side
    int64_t taker
    int64_t submit_ts

ctypedef struct xm_account_t:
    # read for every event first
    int n_open                  # orders resting at the exchange
    int fill_model              # = p.fill_model
    int64_t next_order_ns       # earliest pending arrival / cancel (INT64_MAX: none)
    int64_t bid_lo              # price range of the resting bids / asks, ticks (empty: lo > hi)
    int64_t bid_hi
    int64_t ask_lo
    int64_t ask_hi
    int* open_idx               # slots of the resting orders
    xm_order_t* orders          # slots (growable)
    int n_slots
    int cap_slots
    int* free_slots             # free slot stack
    int n_free
    int64_t t_x                 # its exchange clock (the shared one, or a later arrival of ours)
    int64_t last_intensity_ns
    uint64_t rng[4]
    # exchange truth
    int64_t position            # lots
    double cash
    double fees
    double funding              # USD-M funding paid (quote; < 0: received)
    int64_t fundings            # funding times with a position
    # reports (a time-ordered ring) and the fills record
    xm_report_t* reports
    Py_ssize_t rep_head
    Py_ssize_t rep_n
    Py_ssize_t rep_cap
    xm_fill_t* fills
    Py_ssize_t n_fills
    Py_ssize_t cap_fills
    xm_params_t p               # its exchange model (accounts of one pass may differ)
    # counters
    int64_t arrived
    int64_t rejected
    int64_t cancelled
    int64_t fill_count
    int64_t partial_fills
    int64_t maker_lots
    int64_t taker_lots
    int64_t lifetime_sum_ns
    int64_t lifetime_count


cdef class ExchangeModel:
    cdef readonly L2Book book
    cdef xm_account_t* A
    cdef readonly int n_accounts
    cdef int64_t t_x                       # the exchange clock (running max of what it processed)
    cdef readonly int64_t next_arrival_ns  # min over accounts of next_order_ns
    cdef public int64_t min_report_ts       # <= every account's earliest report (the driver refreshes it)

    cdef int submit_c(self, int acct, int64_t oid, int side, int64_t px, int64_t lots, int flags,
                      int64_t now) except -1 nogil
    cdef int cancel_c(self, int acct, int64_t oid, int64_t now) except -1 nogil
    cdef int advance_c(self, int64_t t) except -1 nogil
    cdef int advance_account_c(self, int k, int64_t t) except -1 nogil
    cdef int on_event_c(self, const hft_event_t* e, int64_t t_x) except -1 nogil
    cdef int on_snapshot_end_c(self) except -1 nogil
    cdef int64_t next_report_ts_c(self, int acct) noexcept nogil
    cdef bint pop_report_c(self, int acct, int64_t upto, xm_report_t* out) noexcept nogil
    cdef double equity_c(self, int acct, double mid_price) noexcept nogil
    cdef int funding_c(self, double mark_price, double rate) noexcept nogil

    cdef int _arrivals(self, xm_account_t* a, int64_t upto) except -1 nogil
    cdef int _report(self, xm_account_t* a, int64_t ts, const xm_order_t* o, int kind, int64_t px,
                     int64_t lots, double fee, int taker) except -1 nogil
    cdef int _fill(self, xm_account_t* a, xm_order_t* o, int64_t lots, bint taker, int64_t px) except -1 nogil
    cdef int _take(self, xm_account_t* a, xm_order_t* o) except -1 nogil
    cdef int _sweep(self, xm_account_t* a, xm_order_t* o) except -1 nogil
    cdef int _on_trade(self, xm_account_t* a, const hft_event_t* e) except -1 nogil
    cdef int _on_depth(self, xm_account_t* a, const hft_event_t* e) except -1 nogil
    cdef int _check_cross(self, xm_account_t* a, int64_t bb, int64_t ba) except -1 nogil
    cdef int _intensity_fills(self, xm_account_t* a, int64_t now) except -1 nogil
    cdef int _slot(self, xm_account_t* a) except -1 nogil
    cdef int _find(self, xm_account_t* a, int64_t oid) noexcept nogil
    cdef void _open_add(self, xm_account_t* a, int slot) noexcept nogil
    cdef void _open_remove(self, xm_account_t* a, int slot) noexcept nogil
    cdef void _open_bounds(self, xm_account_t* a) noexcept nogil
    cdef void _done(self, xm_account_t* a, int slot) noexcept nogil
    cdef void _next_order(self, xm_account_t* a) noexcept nogil
    cdef xm_account_t* _acct(self, int acct) except NULL
