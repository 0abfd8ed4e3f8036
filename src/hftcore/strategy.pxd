# cython: language_level=3
"""C-level API of the strategy core (hftcore.strategy): the trader (orders and the
pre-trade limits), the strategy interface and the built-in market maker.

Units: prices in ticks, quantities in lots, times in ns, money in quote currency.
Sans-I/O: reports go in (``Trader.on_report_c``), intents come out (the
trader's intent buffer, drained by the driver).
"""
from libc.stdint cimport int64_t
from hftcore.book cimport L2Book
from hftcore.exchange cimport xm_report_t
from hftcore.quoting cimport quote_out_t, quote_params_t
from hftcore.volatility cimport ewma_vol_t, intensity_t

cdef enum:
    # the trader's view of an order
    TR_FREE = 0
    TR_PENDING = 1          # sent, not acknowledged
    TR_OPEN = 2             # resting (acknowledged)
    TR_CANCELING = 3        # cancel (or replace) sent
    # intents
    INTENT_NEW = 1
    INTENT_CANCEL = 2
    INTENT_REPLACE = 3      # cancel ``cancel_id`` and send ``id`` (Binance's cancelReplace: one order)
    # why an order was not sent (Trader.last_refusal)
    REFUSED_NONE = 0
    REFUSED_DISABLED = 1    # stopped: kill switch, loss limit, pause, no position yet
    REFUSED_INVALID = 2     # the book is not valid (gap, crossed, resync)
    REFUSED_RATE = 3        # max_orders_per_second already sent in the last second
    REFUSED_POSITION = 4    # no room under max_position with every open order filled
    REFUSED_SIZE = 5        # below the minimum order size or notional
    REFUSED_SLOTS = 6       # too many live orders
    # kill reasons (Trader.kill_reason)
    KILL_NONE = 0
    KILL_DAILY_LOSS = 1
    KILL_DRAWDOWN = 2
    KILL_DRAWDOWN_ABS = 3
    KILL_EXTERNAL = 4       # the operator, a signal, the live risk manager

ctypedef struct tr_order_t:
    int64_t id              # (sequence << 16) | slot
    int side                # 0 buy, 1 sell
    int state               # TR_*
    int flags               # XM_POST_ONLY
    int64_t px              # ticks
    int64_t qty             # lots
    int64_t filled          # lots reported filled
    int64_t created_ns      # when it was sent

ctypedef struct intent_t:
    int64_t ts
    int kind                # INTENT_*
    int side
    int flags
    int _pad
    int64_t id              # the new order (NEW, REPLACE) or the cancelled one (CANCEL)
    int64_t cancel_id       # REPLACE: the order it replaces
    int64_t px
    int64_t lots

ctypedef struct tr_limits_t:
    int64_t max_lots            # |position| limit with every open order filled (<= 0: none)
    int64_t max_sends           # new orders (and replaces) per sliding second (<= 0: none)
    int64_t min_lots            # smallest order (LOT_SIZE minQty), lots
    int64_t max_order_lots      # largest order (LOT_SIZE maxQty), lots (<= 0: none)
    double min_notional         # price x quantity at least this, quote (0: none)
    double max_daily_loss       # quote (<= 0: none); the day is the UTC day
    double max_drawdown         # fraction of the peak equity (capital + peak PnL) (<= 0: none)
    double max_drawdown_abs     # quote (<= 0: none)
    double capital              # the starting equity the drawdown fraction is measured on, quote
    int flatten_on_kill         # 1: a kill also closes the known position with a market order
    double tick_size            # price units per tick
    double lot_size             # base units per lot
    double max_notional         # |position| x price limit with every open order filled, quote (<= 0: none)


cdef class Trader:
    cdef tr_limits_t lim
    cdef tr_order_t* orders
    cdef int n_slots
    cdef int cap_slots
    cdef int* free_slots
    cdef int n_free
    cdef int* work[2]               # live, not cancelling orders per side (slots)
    cdef int n_work[2]
    cdef int cap_work[2]
    cdef int64_t seq
    cdef intent_t* out
    cdef Py_ssize_t n_out
    cdef Py_ssize_t cap_out
    cdef int64_t* sends             # ring of the last max_sends send times
    cdef int64_t sends_head
    cdef int64_t sends_n
    cdef readonly int64_t position  # known (reported) position, lots
    cdef readonly double cash       # known cash, quote (fees included)
    cdef readonly double fees
    cdef readonly double funding    # funding paid so far, quote (< 0: received)
    cdef readonly int64_t fundings  # funding payments applied (times with a position)
    cdef int64_t olots[2]           # lots of orders not known done, per side
    cdef readonly bint book_valid
    cdef readonly bint enabled      # False: no new order (disabled / killed / paused)
    cdef readonly bint killed
    cdef readonly int kill_reason
    cdef readonly int64_t kill_ns   # when the kill switch tripped, ns on the driver's clock (-1: never)
    cdef readonly int last_refusal
    cdef public int64_t now         # the driver's clock at the current event, ns (for Python strategies)
    cdef public int64_t cap_lots    # a portfolio's cap on |position| with every order filled, lots (-1: none)
    # loss limits
    cdef int64_t _day
    cdef double _day_start_pnl
    cdef double _peak_pnl
    cdef readonly double last_pnl
    cdef bint _marked
    cdef int64_t _inherited         # an inherited position not marked into cash yet, lots
    # counters
    cdef readonly int64_t sent
    cdef readonly int64_t replaces
    cdef readonly int64_t cancels
    cdef readonly int64_t fills
    cdef readonly int64_t rejects
    cdef readonly int64_t sent_lots
    cdef readonly int64_t refused_disabled
    cdef readonly int64_t refused_invalid
    cdef readonly int64_t refused_rate
    cdef readonly int64_t refused_position
    cdef readonly int64_t refused_size
    cdef readonly int64_t refused_slots
    cdef readonly int64_t lifetime_sum_ns   # from send to known done, of the orders done
    cdef readonly int64_t lifetime_count

    cdef int64_t new_c(self, int side, int64_t px, int64_t lots, int flags, int64_t now) except -1 nogil
    cdef int cancel_c(self, int64_t oid, int64_t now) except -1 nogil
    cdef int64_t replace_c(self, int64_t oid, int64_t px, int64_t lots, int64_t now) except -1 nogil
    cdef int cancel_all_c(self, int64_t now) except -1 nogil
    cdef int on_report_c(self, const xm_report_t* r) except -1 nogil
    cdef int foreign_fill_c(self, int side, int64_t px, int64_t lots, double fee) except -1 nogil
    cdef void _book_fill(self, int side, int64_t px, int64_t lots, double fee) noexcept nogil
    cdef double funding_c(self, double mark_price, double rate) noexcept nogil
    cdef int mark_c(self, int64_t now, double mid_price) except -1 nogil
    cdef int kill_c(self, int reason, int64_t now) except -1 nogil
    cdef int64_t flatten_c(self, int64_t now) except -1 nogil
    cdef int set_book_valid_c(self, bint valid, int64_t now) except -1 nogil
    cdef int64_t room_c(self, int side) noexcept nogil
    cdef int64_t budget_c(self, int64_t now) noexcept nogil
    cdef int n_working_c(self, int side) noexcept nogil
    cdef tr_order_t* working_c(self, int side, int i) noexcept nogil
    cdef tr_order_t* get_c(self, int64_t oid) noexcept nogil
    cdef int64_t _admit(self, int side, int64_t px, int64_t lots, int64_t now, bint replacing) noexcept nogil
    cdef int64_t _open(self, int side, int64_t px, int64_t lots, int flags, int64_t now) except -1 nogil
    cdef int _intent(self, int64_t ts, int kind, int side, int flags, int64_t oid, int64_t cancel_id,
                     int64_t px, int64_t lots) except -1 nogil
    cdef void _sent_now(self, int64_t now) noexcept nogil
    cdef void _unwork(self, int side, int slot) noexcept nogil
    cdef int _work(self, int side, int slot) except -1 nogil
    cdef void _release(self, int slot, int64_t now) noexcept nogil


cdef class Strategy:
    cdef public Trader trader
    cdef public L2Book book
    cdef public int64_t timer_interval_ns   # on_timer every this many ns (0: never)
    cdef public double last_sigma            # for the results' samples (NaN: none)
    cdef public double last_reservation
    cdef readonly int64_t quotes             # quote computations (the built-in market maker)
    cdef int on_start_c(self, int64_t now) except -1 nogil
    cdef int on_book_c(self, int64_t now) except -1 nogil
    cdef int on_trade_c(self, int64_t now, int side, int64_t px, int64_t qty) except -1 nogil
    cdef int on_report_c(self, int64_t now, const xm_report_t* r) except -1 nogil
    cdef int on_book_invalid_c(self, int64_t now) except -1 nogil
    cdef int on_timer_c(self, int64_t now) except -1 nogil


cdef class MarketMaker(Strategy):
    cdef quote_params_t qp
    cdef readonly int64_t order_lots
    cdef readonly int64_t requote_interval_ns
    cdef readonly int64_t requote_threshold   # ticks
    cdef readonly int64_t min_lifetime_ns
    cdef readonly bint inventory_sizing
    cdef readonly bint post_only
    cdef readonly bint estimate_intensity
    cdef readonly double vol_half_life_s
    cdef readonly double intensity_window_s
    cdef readonly int64_t intensity_fit_ns
    cdef ewma_vol_t vol
    cdef ewma_vol_t* volp
    cdef bint vol_owner
    cdef readonly double prior_sigma   # relative volatility per sqrt(s) before the EWMA has a return (0: no quote)
    cdef intensity_t inten
    cdef intensity_t* intenp
    cdef bint inten_owner
    cdef bint inten_ok
    cdef double last_mid_ticks
    cdef int64_t next_quote_ns
    cdef int64_t next_fit_ns
    cdef int last_served               # the side that last got the order budget when it was short
    cdef readonly int64_t budget_short # quote steps where the rate budget could not serve both sides
    cdef double fair_value_c(self, int64_t bb, int64_t ba, int64_t bq, int64_t aq) noexcept nogil
    cdef int quote_c(self, int64_t now) except -1 nogil
    cdef int compute_c(self, int64_t now, quote_out_t* out) except -1 nogil
    cdef int64_t size_c(self, int side) noexcept nogil


cdef class PyStrategy(Strategy):
    cdef public object impl
