# cython: language_level=3
# A downstream bot's module: cimports hftcore's C-level API and drives it
# without the GIL.
from libc.stdint cimport int64_t

from hftcore.book cimport L2Book
from hftcore.sync cimport BookSync, SYNC_APPLIED
from hftcore.types cimport HFT_BID, HFT_ASK, hft_event_t


def apply_and_read(L2Book book, const int64_t[::1] ticks, const int64_t[::1] lots, int side):
    """Apply levels to a side with the GIL released; return (best_bid, best_ask, crossed)."""
    cdef Py_ssize_t n = ticks.shape[0]
    cdef int64_t bb, ba
    cdef bint crossed
    with nogil:
        book.apply_levels_c(side, &ticks[0], &lots[0], n)
        bb = book.best_bid_c()
        ba = book.best_ask_c()
        crossed = book.crossed_c()
    return bb, ba, crossed


def feed(BookSync sync, int64_t U, int64_t u, const int64_t[::1] bt, const int64_t[::1] bq):
    """Feed one spot depth event (bids only) through the C-level sync API, nogil."""
    cdef int out
    cdef int64_t dummy = 0
    with nogil:
        out = sync.on_depth_c(U, u, -1, &bt[0], &bq[0], bt.shape[0], &dummy, &dummy, 0)
    return out == SYNC_APPLIED


def sides():
    return HFT_BID, HFT_ASK, sizeof(hft_event_t)
