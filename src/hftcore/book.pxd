# cython: language_level=3
"""C-level API of the integer-tick L2 order book (hftcore.book).

Prices are int64 ticks, quantities int64 lots. Each side keeps a dense window
of ``window`` ticks (a power of two, circular: slot = tick & (window-1), the
window start 64-aligned) with an occupancy bitmap, so updates near the touch
and best-price reads are O(1); levels outside the window live in an
open-addressing hash table, so updates anywhere stay exact. The best price of
a non-empty side is always inside its window.

Empty sides: best bid is ``BOOK_NO_BID`` (INT64_MIN), best ask ``BOOK_NO_ASK``
(INT64_MAX), so ``best_bid >= best_ask`` (crossed) is false when a side is empty.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t

cdef enum:
    BOOK_SIDE_BID = 0
    BOOK_SIDE_ASK = 1

cdef extern from *:
    """
    #include <stdint.h>
    #define HFT_BOOK_NO_BID INT64_MIN
    #define HFT_BOOK_NO_ASK INT64_MAX
    #define HFT_BOOK_MAX_TICK ((int64_t)1 << 60)
    """
    int64_t BOOK_NO_BID "HFT_BOOK_NO_BID"
    int64_t BOOK_NO_ASK "HFT_BOOK_NO_ASK"
    int64_t BOOK_MAX_TICK "HFT_BOOK_MAX_TICK"


cdef struct book_side_t:
    int64_t* qty        # window slots: lots at tick (slot = tick & mask), 0 = empty
    uint64_t* bits      # occupancy bitmap, one bit per slot
    int64_t lo          # the window covers ticks [lo, lo + window); lo % 64 == 0
    bint anchored       # lo is meaningful (side has held a level since clear)
    int64_t best        # best tick, or BOOK_NO_BID / BOOK_NO_ASK when empty
    int64_t n_window    # occupied slots in the window
    # overflow: ticks outside the window (linear probing, key -1 = empty slot)
    int64_t* hkeys
    int64_t* hvals
    int64_t hcap        # power of two
    int64_t hcount


# The four int64 arrays of one message from Python arguments: int64
# C-contiguous 1-d numpy arrays as they are, anything else converted (integers
# only: floats are refused, never truncated); ticks and lots of a side must have
# equal lengths. Returns (bid_ticks, bid_lots, ask_ticks, ask_lots).
cdef tuple message_arrays(object bid_ticks, object bid_lots, object ask_ticks, object ask_lots)


@cython.final
cdef class L2Book:
    cdef book_side_t _side[2]
    cdef int64_t _window
    cdef int64_t _mask
    cdef int64_t _nwords
    cdef readonly double tick_size      # price units per tick (for float outputs only)
    cdef readonly double lot_size       # base units per lot (for float outputs only)
    cdef readonly int64_t recenters     # how often a window moved (diagnostic)

    # --- internals ---
    cdef bint _in_window(self, const book_side_t* s, int64_t tick) noexcept nogil
    cdef int64_t _ideal_lo(self, int side, int64_t best) noexcept nogil
    cdef void _win_set(self, book_side_t* s, int64_t tick, int64_t lots) noexcept nogil
    cdef int64_t _scan_down(self, const book_side_t* s, int64_t x) noexcept nogil
    cdef int64_t _scan_up(self, const book_side_t* s, int64_t x) noexcept nogil
    cdef int _recenter(self, book_side_t* s, int64_t new_lo) except -1 nogil
    cdef int _refresh_best(self, int side, int64_t removed) except -1 nogil
    cdef void _clear_side(self, book_side_t* s, int side) noexcept nogil

    # --- C-level API (no GIL needed; errors return -1 with an exception set) ---
    cdef int apply_c(self, int side, int64_t tick, int64_t lots) except -1 nogil
    cdef int apply_levels_c(self, int side, const int64_t* ticks, const int64_t* lots,
                            Py_ssize_t n) except -1 nogil
    cdef int load_side_c(self, int side, const int64_t* ticks, const int64_t* lots,
                         Py_ssize_t n) except -1 nogil
    cdef void clear_c(self) noexcept nogil
    cdef int64_t qty_at_c(self, int side, int64_t tick) noexcept nogil
    cdef Py_ssize_t top_c(self, int side, Py_ssize_t n, int64_t* ticks,
                          int64_t* lots) noexcept nogil
    cdef Py_ssize_t count_c(self, int side) noexcept nogil

    cdef inline int64_t best_bid_c(self) noexcept nogil:
        return self._side[0].best

    cdef inline int64_t best_ask_c(self) noexcept nogil:
        return self._side[1].best

    cdef inline int64_t best_bid_qty_c(self) noexcept nogil:
        if self._side[0].n_window == 0:
            return 0
        return self._side[0].qty[self._side[0].best & self._mask]

    cdef inline int64_t best_ask_qty_c(self) noexcept nogil:
        if self._side[1].n_window == 0:
            return 0
        return self._side[1].qty[self._side[1].best & self._mask]

    cdef inline bint crossed_c(self) noexcept nogil:
        return self._side[0].best >= self._side[1].best
