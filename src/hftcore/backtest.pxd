# cython: language_level=3
"""C-level API of the driver loop (hftcore.backtest): the equity sample record.
The loop itself is :class:`hftcore.backtest.ReplayKernel`; its parts are
hftcore.exchange (the exchange model) and hftcore.strategy (traders, strategies)."""
from libc.stdint cimport int64_t

ctypedef struct bt_sample_t:
    int64_t ts
    double mid              # book mid, price units (NaN if a side is empty)
    int64_t position        # lots (exchange truth; the trader's without an exchange model)
    double cash
    double equity           # cash + position * lot * mid
    double fees
    int64_t bid_px          # our working bid, ticks (or -1)
    int64_t ask_px          # our working ask, ticks (or -1)
    double sigma            # price units per sqrt(s)
    double reservation      # price units (NaN before the first quote)
