# cython: language_level=3
"""C-level API of the backtest replay kernel (hftcore.backtest)."""
from libc.stdint cimport int64_t, uint64_t
from hftcore.book cimport L2Book
from hftcore.quoting cimport quote_params_t
from hftcore.volatility cimport ewma_vol_t, intensity_t

cdef enum:
    BT_MAX_ORDERS = 8
    BT_QUEUE_RISK_AVERSE = 0    # only trades at our price advance us
    BT_QUEUE_PROB_POWER = 1     # cancellations split front/back by f(x) = x**n
    BT_QUEUE_PROB_LOG = 2       # f(x) = log(1 + x)
    BT_FILL_QUEUE = 0           # fills from trades and price moves (queue position)
    BT_FILL_INTENSITY = 1       # fills at rate A exp(-k delta) (data without trades)
    # exchange-side order states
    BT_FREE = 0
    BT_IN_FLIGHT = 1
    BT_OPEN = 2
    BT_DONE = 3
    # local (strategy) view of an order
    BT_L_WORKING = 1
    BT_L_CANCELING = 2
    BT_L_GONE = 3

ctypedef struct bt_order_t:
    int64_t id
    int side                # 0 buy (bid), 1 sell (ask)
    int state               # BT_FREE / BT_IN_FLIGHT / BT_OPEN / BT_DONE (exchange side)
    int local               # BT_L_* (what the strategy believes)
    int64_t px              # ticks
    int64_t qty             # lots
    int64_t leaves          # lots
    double queue_ahead      # lots ahead of us at our price (estimate)
    int64_t traded_at_level # lots traded at our price since the level's last depth update
    int64_t arrive_ns       # exchange arrival of the new order
    int64_t cancel_ns       # exchange arrival of our cancel (INT64_MAX: none)
    int64_t submit_ns       # local submit time
    int64_t known_filled    # lots the strategy has been told are filled

ctypedef struct bt_params_t:
    double tick_size            # price units per tick
    double lot_size             # base units per lot
    int64_t order_lots          # quote size, lots
    int64_t max_lots            # position limit, lots (<= 0: none); holds with every open order filled
    int64_t max_sends           # new orders per sliding second (<= 0: no limit; the live order-rate limit)
    int64_t entry_latency_ns    # local submit -> exchange arrival
    int64_t cancel_latency_ns   # local cancel -> exchange arrival
    int64_t response_latency_ns # exchange event -> local report
    int64_t feed_latency_ns     # exchange event -> strategy sees it (< 0: the data's local_ts)
    int queue_model
    double queue_power
    int fill_model
    double maker_fee            # fraction of notional (negative = rebate)
    double taker_fee
    int post_only               # 1: crossing orders are rejected; 0: they take liquidity
    int64_t requote_interval_ns
    int64_t requote_threshold   # ticks
    int64_t sample_interval_ns
    double vol_half_life_s
    int estimate_intensity      # 1: A, k fitted online from trades
    double intensity_window_s
    int64_t intensity_fit_ns
    double fill_A               # intensity fill model (per second)
    double fill_k               # intensity fill model (per price unit)

ctypedef struct bt_fill_t:
    int64_t exch_ts
    int64_t report_ts
    int64_t order_id
    int64_t px
    int64_t qty
    int64_t position        # lots after the fill
    double fee              # quote currency
    double cash             # after the fill
    double mid              # exchange mid at the fill, price units
    int64_t side            # 0 buy, 1 sell
    int64_t taker           # 1 if the fill took liquidity
    int64_t submit_ts       # local submit time of the order

ctypedef struct bt_sample_t:
    int64_t ts
    double mid              # exchange mid, price units (NaN if a side is empty)
    int64_t position        # lots
    double cash
    double equity           # cash + position * lot * mid
    double fees
    int64_t bid_px          # our working bid, ticks (or -1)
    int64_t ask_px          # our working ask, ticks (or -1)
    double sigma            # price units per sqrt(s)
    double reservation      # price units (NaN before the first quote)

ctypedef struct bt_report_t:
    int64_t ts
    int64_t lots            # signed position change (0 for non-fill reports)
    int slot
    int kind                # 0 fill, 1 order done (filled/cancelled/rejected)

ctypedef struct bt_strat_t:
    # everything one strategy owns in a (possibly shared) replay pass; the
    # fields read for every event come first (one cache line)
    int n_open                  # orders resting at the exchange
    int fill_model              # = p.fill_model
    int open_idx[BT_MAX_ORDERS] # their slots
    int64_t next_order_ns       # earliest pending arrival/cancel at the exchange
    int64_t next_sample_ns
    Py_ssize_t rep_n
    int64_t next_quote_ns
    double last_mid_ticks
    int64_t bid_lo              # price range of the resting bids, ticks (empty: lo > hi)
    int64_t bid_hi
    int64_t ask_lo              # and asks
    int64_t ask_hi
    ewma_vol_t* volp            # own vol, or an identical one owned by another strategy
    intensity_t* intenp         # likewise
    int vol_owner
    int inten_owner
    bt_params_t p
    quote_params_t qp
    ewma_vol_t vol
    intensity_t inten
    bint inten_ok
    bt_order_t orders[BT_MAX_ORDERS]
    uint64_t rng[4]
    int64_t t_x                 # its exchange clock: the shared one or a later arrival of ours
    int64_t position            # lots (exchange truth)
    double cash
    double fees
    int64_t next_id
    int64_t last_intensity_ns
    int64_t known_position      # lots (as reported)
    int64_t next_fit_ns
    double last_sigma
    double last_reservation
    bt_fill_t* fills
    Py_ssize_t n_fills
    Py_ssize_t cap_fills
    bt_sample_t* samples
    Py_ssize_t n_samples
    Py_ssize_t cap_samples
    bt_report_t* reports
    Py_ssize_t rep_head
    Py_ssize_t rep_cap
    int64_t orders_submitted
    int64_t orders_rejected
    int64_t orders_cancelled
    int64_t cancels_sent
    int64_t fill_count
    int64_t partial_fills
    int64_t quotes
    int64_t slots_exhausted
    int64_t risk_blocked        # new orders the position limit stopped
    int64_t submitted_lots      # lots of the orders submitted
    int64_t rate_blocked        # new orders the order-rate limit stopped (also in risk_blocked)
    int64_t* sends              # ring of the last max_sends submit times, ns
    int64_t sends_head          # oldest entry when full
    int64_t sends_n
    int64_t maker_lots
    int64_t taker_lots
    int64_t lifetime_sum_ns
    int64_t lifetime_count
