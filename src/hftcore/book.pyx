# cython: language_level=3
"""Integer-tick L2 order book.

Prices are int64 ticks, quantities int64 lots; floats (price units) only come
out of :meth:`L2Book.mid`, :meth:`L2Book.microprice` and friends, converted
with the book's ``tick_size``.

Layout (see book.pxd): per side a dense circular window of ``window`` ticks
with an occupancy bitmap holds the levels near the touch (O(1) update, O(1)
best price and size, next-best found by a bitmap scan); levels outside the
window go to an open-addressing hash table, so an update anywhere -- a deep
level of a 5000-level snapshot or beyond it -- is exact. The window follows
the touch (it is moved when a new best lands outside it, or when the best drifts
into the far eighth of it); :attr:`L2Book.recenters` counts the moves.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memset

import numpy as np

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    static inline int hft_clz64(uint64_t x) { return __builtin_clzll(x); }
    static inline int hft_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    static inline uint64_t hft_hash64(int64_t k) {
        uint64_t x = (uint64_t)k * 0x9E3779B97F4A7C15ULL;
        return x ^ (x >> 31);
    }
    static int hft_cmp_i64_asc(const void* a, const void* b) {
        int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
        return (x > y) - (x < y);
    }
    static int hft_cmp_i64_desc(const void* a, const void* b) {
        int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
        return (x < y) - (x > y);
    }
    """
    int hft_clz64(uint64_t x) noexcept nogil
    int hft_ctz64(uint64_t x) noexcept nogil
    uint64_t hft_hash64(int64_t k) noexcept nogil
    int hft_cmp_i64_asc(const void* a, const void* b) noexcept nogil
    int hft_cmp_i64_desc(const void* a, const void* b) noexcept nogil

#: Book side constants (also in hftcore: BID = 0, ASK = 1).
BID = BOOK_SIDE_BID
ASK = BOOK_SIDE_ASK
#: Largest tick accepted (exclusive): 2**60.
MAX_TICK = BOOK_MAX_TICK

cdef enum:
    _EMPTY = -1          # hash key of an empty slot (ticks are >= 0)
    _HASH_MIN_CAP = 64


# --------------------------------------------------------------------------
# overflow hash (ticks outside the window): linear probing, backward-shift
# deletion, load factor <= 1/2
# --------------------------------------------------------------------------

cdef inline int64_t _h_find(const book_side_t* s, int64_t key) noexcept nogil:
    """Slot index holding key, or -1."""
    cdef int64_t i, m
    if s.hcount == 0:
        return -1
    m = s.hcap - 1
    i = <int64_t>(hft_hash64(key) & <uint64_t>m)
    while s.hkeys[i] != _EMPTY:
        if s.hkeys[i] == key:
            return i
        i = (i + 1) & m
    return -1


cdef int _h_alloc(book_side_t* s, int64_t cap) noexcept nogil:
    """Replace the table by an empty one of `cap` slots. -1 on OOM (table kept)."""
    cdef int64_t* k = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef int64_t* v = <int64_t*>malloc(cap * sizeof(int64_t))
    if k == NULL or v == NULL:
        free(k)
        free(v)
        return -1
    memset(k, 0xFF, cap * sizeof(int64_t))   # all keys = -1 = _EMPTY
    free(s.hkeys)
    free(s.hvals)
    s.hkeys = k
    s.hvals = v
    s.hcap = cap
    s.hcount = 0
    return 0


cdef inline void _h_insert_new(book_side_t* s, int64_t key, int64_t val) noexcept nogil:
    """Insert a key known to be absent; capacity must suffice."""
    cdef int64_t m = s.hcap - 1
    cdef int64_t i = <int64_t>(hft_hash64(key) & <uint64_t>m)
    while s.hkeys[i] != _EMPTY:
        i = (i + 1) & m
    s.hkeys[i] = key
    s.hvals[i] = val
    s.hcount += 1


cdef int _h_reserve(book_side_t* s, int64_t need) noexcept nogil:
    """Make room for `need` entries at load <= 1/2, keeping the content. -1 on OOM."""
    cdef int64_t cap, i, oldcap
    cdef int64_t* oldk
    cdef int64_t* oldv
    if need * 2 <= s.hcap:
        return 0
    cap = s.hcap if s.hcap > 0 else _HASH_MIN_CAP
    while need * 2 > cap:
        cap *= 2
    oldk = s.hkeys
    oldv = s.hvals
    oldcap = s.hcap
    s.hkeys = NULL
    s.hvals = NULL
    if _h_alloc(s, cap) != 0:
        s.hkeys = oldk
        s.hvals = oldv
        return -1
    for i in range(oldcap):
        if oldk[i] != _EMPTY:
            _h_insert_new(s, oldk[i], oldv[i])
    free(oldk)
    free(oldv)
    return 0


cdef int _h_put(book_side_t* s, int64_t key, int64_t val) noexcept nogil:
    """Insert or replace. -1 on OOM (nothing changed)."""
    cdef int64_t i = _h_find(s, key)
    if i >= 0:
        s.hvals[i] = val
        return 0
    if _h_reserve(s, s.hcount + 1) != 0:
        return -1
    _h_insert_new(s, key, val)
    return 0


cdef void _h_del(book_side_t* s, int64_t key) noexcept nogil:
    """Remove key if present (backward-shift deletion keeps probe chains intact)."""
    cdef int64_t i = _h_find(s, key)
    cdef int64_t j, home, m
    if i < 0:
        return
    m = s.hcap - 1
    j = i
    while True:
        j = (j + 1) & m
        if s.hkeys[j] == _EMPTY:
            break
        home = <int64_t>(hft_hash64(s.hkeys[j]) & <uint64_t>m)
        # the entry at j may move to the hole at i unless its home lies
        # cyclically in (i, j]
        if i <= j:
            if i < home <= j:
                continue
        else:
            if home > i or home <= j:
                continue
        s.hkeys[i] = s.hkeys[j]
        s.hvals[i] = s.hvals[j]
        i = j
    s.hkeys[i] = _EMPTY
    s.hcount -= 1


# --------------------------------------------------------------------------
# array arguments: a raw pointer from an int64 C-contiguous numpy array, or a
# converted copy (refusing non-integer data rather than truncating it)
# --------------------------------------------------------------------------

cdef inline object _as_i64(object x, str name):
    cdef cnp.ndarray a
    if cnp.PyArray_CheckExact(x):
        a = <cnp.ndarray>x
        if (cnp.PyArray_TYPE(a) == cnp.NPY_INT64 and cnp.PyArray_NDIM(a) == 1
                and cnp.PyArray_ISCARRAY_RO(a)):
            return x
    a = np.asarray(x)
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "O" and a.size == 0) and a.size:
        raise TypeError(f"{name} must be integers (ticks/lots), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(x)}")
    return np.ascontiguousarray(a, dtype=np.int64)


cdef inline bint _fast_i64(object x) noexcept:
    return (cnp.PyArray_CheckExact(x)
            and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_INT64
            and cnp.PyArray_NDIM(<cnp.ndarray>x) == 1
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>x))


cdef tuple message_arrays(object bid_ticks, object bid_lots, object ask_ticks, object ask_lots):
    cdef object bt = _as_i64(bid_ticks, "bid_ticks")
    cdef object bq = _as_i64(bid_lots, "bid_lots")
    cdef object at = _as_i64(ask_ticks, "ask_ticks")
    cdef object aq = _as_i64(ask_lots, "ask_lots")
    if _len(bt) != _len(bq) or _len(at) != _len(aq):
        raise ValueError("ticks and lots differ in length")
    return bt, bq, at, aq


cdef inline const int64_t* _ptr(object a) noexcept:
    return <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t _len(object a) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, 0)


cdef int _raise_level(int side, int64_t tick, int64_t lots) except -1 with gil:
    if side != 0 and side != 1:
        raise ValueError(f"side must be BID (0) or ASK (1), got {side}")
    if lots < 0:
        raise ValueError(f"negative quantity {lots} lots at tick {tick}")
    raise ValueError(f"tick {tick} out of range [0, 2**60)")


cdef int _raise_nomem() except -1 with gil:
    raise MemoryError("L2Book: out of memory")


cdef inline int _apply(L2Book self, int side, int64_t tick, int64_t lots) except -1 nogil:
    """Set one validated level: the window path inline, the rest out of line."""
    cdef book_side_t* s = &self._side[side]
    cdef int64_t slot
    if s.anchored and <uint64_t>(tick - s.lo) < <uint64_t>self._window:
        slot = tick & self._mask
        if lots != 0:
            if s.qty[slot] == 0:
                s.bits[slot >> 6] |= (<uint64_t>1) << (slot & 63)
                s.n_window += 1
                if side == 0:
                    if tick > s.best:
                        s.best = tick
                elif tick < s.best:
                    s.best = tick
            s.qty[slot] = lots
        elif s.qty[slot] != 0:
            s.qty[slot] = 0
            s.bits[slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
            s.n_window -= 1
            if tick == s.best:
                return self._refresh_best(side, tick)
        return 0
    return _apply_outside(self, s, side, tick, lots)


cdef int _apply_outside(L2Book self, book_side_t* s, int side, int64_t tick,
                        int64_t lots) except -1 nogil:
    """A level outside the window (or the first level of an empty side)."""
    if lots == 0:
        _h_del(s, tick)
        return 0
    if (side == 0 and tick > s.best) or (side == 1 and tick < s.best):
        # a new best outside the window (or the first level): move the window
        if s.n_window == 0 and s.hcount == 0:
            s.lo = self._ideal_lo(side, tick)
            s.anchored = True
        else:
            self._recenter(s, self._ideal_lo(side, tick))
        self._win_set(s, tick, lots)
        s.best = tick
        return 0
    if _h_put(s, tick, lots) != 0:
        return _raise_nomem()
    return 0


cdef class L2Book:
    """Integer-tick L2 order book.

    Parameters
    ----------
    tick_size : price units per tick (str, Decimal or float); used only to
        convert tick outputs to price units (mid, microprice, ...).
    lot_size : base units per lot; used only by float outputs in base units.
    window : ticks held densely per side around the touch (power of two,
        >= 64; default 65536). Levels beyond it are kept exactly in a hash.

    ``apply(side, tick, lots)`` sets the absolute quantity of one level (0
    deletes; deleting an unknown level is a no-op). ``apply_levels`` does a
    whole side of one message in one call.
    """

    def __cinit__(self, tick_size=1.0, lot_size=1.0, int64_t window=65536):
        cdef int i
        if window < 64 or window > (1 << 26) or (window & (window - 1)) != 0:
            raise ValueError(f"window must be a power of two in [64, 2**26], got {window}")
        self._window = window
        self._mask = window - 1
        self._nwords = window // 64
        for i in range(2):
            self._side[i].qty = <int64_t*>calloc(window, sizeof(int64_t))
            self._side[i].bits = <uint64_t*>calloc(self._nwords, sizeof(uint64_t))
            self._side[i].hkeys = NULL
            self._side[i].hvals = NULL
            self._side[i].hcap = 0
            self._side[i].hcount = 0
            self._side[i].n_window = 0
            self._side[i].lo = 0
            self._side[i].anchored = False
            if self._side[i].qty == NULL or self._side[i].bits == NULL:
                raise MemoryError()
        self._side[0].best = BOOK_NO_BID
        self._side[1].best = BOOK_NO_ASK
        self.recenters = 0

    def __init__(self, tick_size=1.0, lot_size=1.0, int64_t window=65536):
        self.tick_size = _positive_float(tick_size, "tick_size")
        self.lot_size = _positive_float(lot_size, "lot_size")

    def __dealloc__(self):
        cdef int i
        for i in range(2):
            free(self._side[i].qty)
            free(self._side[i].bits)
            free(self._side[i].hkeys)
            free(self._side[i].hvals)

    # ------------------------------------------------------------------
    # window helpers
    # ------------------------------------------------------------------

    cdef bint _in_window(self, const book_side_t* s, int64_t tick) noexcept nogil:
        return s.anchored and <uint64_t>(tick - s.lo) < <uint64_t>self._window

    cdef int64_t _ideal_lo(self, int side, int64_t best) noexcept nogil:
        # bids: best at 3/4 of the window (room above for a rising bid);
        # asks: best at 1/4. Bitwise & floors to a multiple of 64 for negatives too.
        cdef int64_t lo
        if side == 0:
            lo = (best - (self._window - self._window // 4)) & ~(<int64_t>63)
        else:
            lo = (best - self._window // 4) & ~(<int64_t>63)
        while best >= lo + self._window:   # alignment must not push best out
            lo += 64
        return lo

    cdef void _win_set(self, book_side_t* s, int64_t tick, int64_t lots) noexcept nogil:
        cdef int64_t slot = tick & self._mask
        if s.qty[slot] == 0:
            s.bits[slot >> 6] |= (<uint64_t>1) << (slot & 63)
            s.n_window += 1
        s.qty[slot] = lots

    cdef int64_t _scan_down(self, const book_side_t* s, int64_t x) noexcept nogil:
        """Highest occupied tick in [lo, x], or -1."""
        cdef int64_t slot, b
        cdef uint64_t m
        if s.n_window == 0:
            return -1
        if x >= s.lo + self._window:
            x = s.lo + self._window - 1
        while x >= s.lo:
            slot = x & self._mask
            b = slot & 63
            m = s.bits[slot >> 6] & (((<uint64_t>2) << b) - 1)
            if m:
                return x - b + (63 - hft_clz64(m))
            x -= b + 1
        return -1

    cdef int64_t _scan_up(self, const book_side_t* s, int64_t x) noexcept nogil:
        """Lowest occupied tick in [x, lo + window), or -1."""
        cdef int64_t slot, b, end
        cdef uint64_t m
        if s.n_window == 0:
            return -1
        if x < s.lo:
            x = s.lo
        end = s.lo + self._window
        while x < end:
            slot = x & self._mask
            b = slot & 63
            m = s.bits[slot >> 6] & ((~(<uint64_t>0)) << b)
            if m:
                return x - b + hft_ctz64(m)
            x += 64 - b
        return -1

    cdef int _recenter(self, book_side_t* s, int64_t new_lo) except -1 nogil:
        """Move the window to start at new_lo (64-aligned): levels leaving it go
        to the hash, hash levels inside it come in."""
        cdef int64_t w, slot, tick, old_lo = s.lo, i, oldcap
        cdef uint64_t word
        cdef int64_t* oldk
        cdef int64_t* oldv
        cdef int64_t n_out = 0
        if s.anchored and s.n_window > 0 and new_lo != old_lo:
            # count leavers first so the hash can be sized before anything moves
            for w in range(self._nwords):
                word = s.bits[w]
                while word:
                    slot = w * 64 + hft_ctz64(word)
                    word &= word - 1
                    tick = old_lo + ((slot - old_lo) & self._mask)
                    if <uint64_t>(tick - new_lo) >= <uint64_t>self._window:
                        n_out += 1
            if n_out and _h_reserve(s, s.hcount + n_out) != 0:
                return _raise_nomem()
            for w in range(self._nwords):
                word = s.bits[w]
                while word:
                    slot = w * 64 + hft_ctz64(word)
                    word &= word - 1
                    tick = old_lo + ((slot - old_lo) & self._mask)
                    if <uint64_t>(tick - new_lo) >= <uint64_t>self._window:
                        _h_insert_new(s, tick, s.qty[slot])
                        s.qty[slot] = 0
                        s.bits[w] &= ~((<uint64_t>1) << (slot & 63))
                        s.n_window -= 1
        s.lo = new_lo
        s.anchored = True
        if s.hcount > 0:
            # rebuild the table without the keys that now fall in the window
            oldk = s.hkeys
            oldv = s.hvals
            oldcap = s.hcap
            s.hkeys = NULL
            s.hvals = NULL
            s.hcap = 0
            if _h_alloc(s, oldcap) != 0:
                s.hkeys = oldk
                s.hvals = oldv
                s.hcap = oldcap
                return _raise_nomem()
            for i in range(oldcap):
                tick = oldk[i]
                if tick == _EMPTY:
                    continue
                if <uint64_t>(tick - new_lo) < <uint64_t>self._window:
                    self._win_set(s, tick, oldv[i])
                else:
                    _h_insert_new(s, tick, oldv[i])
            free(oldk)
            free(oldv)
        self.recenters += 1
        return 0

    cdef int _refresh_best(self, int side, int64_t removed) except -1 nogil:
        """The best level `removed` was deleted: find the next one."""
        cdef book_side_t* s = &self._side[side]
        cdef int64_t nb, i, k
        if side == 0:
            nb = self._scan_down(s, removed - 1)
        else:
            nb = self._scan_up(s, removed + 1)
        if nb >= 0:
            s.best = nb
            # keep the touch away from the window's far edge
            if s.hcount > 0:
                if side == 0 and nb < s.lo + self._window // 8:
                    self._recenter(s, self._ideal_lo(0, nb))
                elif side == 1 and nb >= s.lo + self._window - self._window // 8:
                    self._recenter(s, self._ideal_lo(1, nb))
            return 0
        if s.hcount == 0:
            s.best = BOOK_NO_BID if side == 0 else BOOK_NO_ASK
            return 0
        # window empty, deeper levels exist: the best one is the extreme hash key
        nb = -1 if side == 0 else BOOK_NO_ASK
        for i in range(s.hcap):
            k = s.hkeys[i]
            if k != _EMPTY:
                if (side == 0 and k > nb) or (side == 1 and k < nb):
                    nb = k
        self._recenter(s, self._ideal_lo(side, nb))
        s.best = nb
        return 0

    # ------------------------------------------------------------------
    # C-level API
    # ------------------------------------------------------------------

    cdef int apply_c(self, int side, int64_t tick, int64_t lots) except -1 nogil:
        if (side != 0 and side != 1) or lots < 0 or tick < 0 or tick >= BOOK_MAX_TICK:
            return _raise_level(side, tick, lots)
        return _apply(self, side, tick, lots)

    cdef int apply_levels_c(self, int side, const int64_t* ticks, const int64_t* lots,
                            Py_ssize_t n) except -1 nogil:
        cdef Py_ssize_t i
        cdef uint64_t bad = 0
        # validate the whole batch first: nothing is half-applied
        if side != 0 and side != 1:
            return _raise_level(side, 0, 0)
        for i in range(n):
            bad |= <uint64_t>lots[i] | <uint64_t>ticks[i] | <uint64_t>(BOOK_MAX_TICK - 1 - ticks[i])
        if bad >> 63:
            for i in range(n):
                if lots[i] < 0 or ticks[i] < 0 or ticks[i] >= BOOK_MAX_TICK:
                    return _raise_level(side, ticks[i], lots[i])
        for i in range(n):
            if _apply(self, side, ticks[i], lots[i]) < 0:
                return -1
        return 0

    cdef int load_side_c(self, int side, const int64_t* ticks, const int64_t* lots,
                         Py_ssize_t n) except -1 nogil:
        """Replace one side by the given levels (a snapshot side)."""
        cdef Py_ssize_t i
        cdef int64_t best
        cdef book_side_t* s
        if side != 0 and side != 1:
            return _raise_level(side, 0, 0)
        for i in range(n):
            if lots[i] < 0 or ticks[i] < 0 or ticks[i] >= BOOK_MAX_TICK:
                return _raise_level(side, ticks[i], lots[i])
        s = &self._side[side]
        self._clear_side(s, side)
        best = -1 if side == 0 else BOOK_NO_ASK
        for i in range(n):
            if lots[i] > 0 and ((side == 0 and ticks[i] > best) or (side == 1 and ticks[i] < best)):
                best = ticks[i]
        if best >= 0 and best != BOOK_NO_ASK:
            s.lo = self._ideal_lo(side, best)
            s.anchored = True
        for i in range(n):
            self.apply_c(side, ticks[i], lots[i])
        return 0

    cdef void _clear_side(self, book_side_t* s, int side) noexcept nogil:
        cdef int64_t w, slot
        cdef uint64_t word
        if s.n_window:
            for w in range(self._nwords):
                word = s.bits[w]
                while word:
                    slot = w * 64 + hft_ctz64(word)
                    word &= word - 1
                    s.qty[slot] = 0
                s.bits[w] = 0
        s.n_window = 0
        if s.hcount:
            memset(s.hkeys, 0xFF, s.hcap * sizeof(int64_t))
            s.hcount = 0
        s.anchored = False
        s.lo = 0
        s.best = BOOK_NO_BID if side == 0 else BOOK_NO_ASK

    cdef void clear_c(self) noexcept nogil:
        self._clear_side(&self._side[0], 0)
        self._clear_side(&self._side[1], 1)

    cdef int64_t qty_at_c(self, int side, int64_t tick) noexcept nogil:
        cdef const book_side_t* s = &self._side[side]
        cdef int64_t i
        if self._in_window(s, tick):
            return s.qty[tick & self._mask]
        i = _h_find(s, tick)
        return s.hvals[i] if i >= 0 else 0

    cdef Py_ssize_t count_c(self, int side) noexcept nogil:
        return self._side[side].n_window + self._side[side].hcount

    cdef Py_ssize_t top_c(self, int side, Py_ssize_t n, int64_t* ticks,
                          int64_t* lots) noexcept nogil:
        """Best n levels of a side into ticks/lots (best first); returns the count.
        Returns -1 if a temporary allocation fails."""
        cdef const book_side_t* s = &self._side[side]
        cdef Py_ssize_t got = 0, i, nh
        cdef int64_t x
        cdef int64_t* keys
        if n <= 0:
            return 0
        x = s.best
        while got < n and s.n_window > 0:
            x = self._scan_down(s, x) if side == 0 else self._scan_up(s, x)
            if x < 0:
                break
            ticks[got] = x
            lots[got] = s.qty[x & self._mask]
            got += 1
            x = x - 1 if side == 0 else x + 1
        if got < n and s.hcount > 0:
            # hash levels are all beyond the window (worse than any window level)
            keys = <int64_t*>malloc(s.hcount * sizeof(int64_t))
            if keys == NULL:
                return -1
            nh = 0
            for i in range(s.hcap):
                if s.hkeys[i] != _EMPTY:
                    keys[nh] = s.hkeys[i]
                    nh += 1
            qsort(keys, nh, sizeof(int64_t), hft_cmp_i64_desc if side == 0 else hft_cmp_i64_asc)
            i = 0
            while got < n and i < nh:
                ticks[got] = keys[i]
                lots[got] = s.hvals[_h_find(s, keys[i])]
                got += 1
                i += 1
            free(keys)
        return got

    # ------------------------------------------------------------------
    # Python API
    # ------------------------------------------------------------------

    def apply(self, int side, int64_t tick, int64_t lots):
        """Set the absolute quantity (lots) at `tick` on `side`; 0 deletes."""
        self.apply_c(side, tick, lots)

    def apply_levels(self, int side, ticks, lots):
        """Apply all levels of one side of one message: int64 ticks and lots
        (lots 0 deletes). Validated first, so a bad level changes nothing."""
        cdef object t = ticks
        cdef object q = lots
        if not (_fast_i64(t) and _fast_i64(q)):
            t = _as_i64(ticks, "ticks")
            q = _as_i64(lots, "lots")
        cdef Py_ssize_t n = _len(t)
        if _len(q) != n:
            raise ValueError(f"ticks and lots differ in length ({n} != {_len(q)})")
        self.apply_levels_c(side, _ptr(t), _ptr(q), n)

    def apply_message(self, bid_ticks, bid_lots, ask_ticks, ask_lots):
        """Both sides of one depth message in one call (bids first)."""
        bt, bq, at, aq = message_arrays(bid_ticks, bid_lots, ask_ticks, ask_lots)
        _validate(bt, bq, 0)
        _validate(at, aq, 1)
        self.apply_levels_c(0, _ptr(bt), _ptr(bq), _len(bt))
        self.apply_levels_c(1, _ptr(at), _ptr(aq), _len(at))

    def load_snapshot(self, bid_ticks, bid_lots, ask_ticks, ask_lots):
        """Replace the whole book by a snapshot (levels with 0 lots are skipped)."""
        bt, bq, at, aq = message_arrays(bid_ticks, bid_lots, ask_ticks, ask_lots)
        _validate(bt, bq, 0)
        _validate(at, aq, 1)
        self.load_side_c(0, _ptr(bt), _ptr(bq), _len(bt))
        self.load_side_c(1, _ptr(at), _ptr(aq), _len(at))

    def clear(self):
        """Remove every level."""
        self.clear_c()

    def best_bid(self):
        """Best bid in ticks, or None when there is no bid."""
        cdef int64_t b = self._side[0].best
        return None if b == BOOK_NO_BID else b

    def best_ask(self):
        """Best ask in ticks, or None when there is no ask."""
        cdef int64_t a = self._side[1].best
        return None if a == BOOK_NO_ASK else a

    def best_bid_qty(self):
        """Lots at the best bid (0 when empty)."""
        return self.best_bid_qty_c()

    def best_ask_qty(self):
        """Lots at the best ask (0 when empty)."""
        return self.best_ask_qty_c()

    def qty_at(self, int side, int64_t tick):
        """Lots at `tick` on `side` (0 when no level)."""
        if side != 0 and side != 1:
            raise ValueError(f"side must be BID (0) or ASK (1), got {side}")
        return self.qty_at_c(side, tick)

    def mid(self):
        """Mid price in price units ((bid + ask) / 2 * tick_size); NaN if a side is empty."""
        cdef int64_t b = self._side[0].best, a = self._side[1].best
        if b == BOOK_NO_BID or a == BOOK_NO_ASK:
            return float("nan")
        return (<double>b + <double>a) * 0.5 * self.tick_size

    def mid_ticks(self):
        """Mid in ticks as a float (may end in .5); NaN if a side is empty."""
        cdef int64_t b = self._side[0].best, a = self._side[1].best
        if b == BOOK_NO_BID or a == BOOK_NO_ASK:
            return float("nan")
        return (<double>b + <double>a) * 0.5

    def microprice(self):
        """Micro-price in price units: (bid*askQty + ask*bidQty) / (bidQty + askQty)
        * tick_size; NaN if a side is empty."""
        cdef int64_t b = self._side[0].best, a = self._side[1].best
        cdef double bq, aq
        if b == BOOK_NO_BID or a == BOOK_NO_ASK:
            return float("nan")
        bq = <double>self.best_bid_qty_c()
        aq = <double>self.best_ask_qty_c()
        return (<double>b * aq + <double>a * bq) / (bq + aq) * self.tick_size

    def imbalance(self, Py_ssize_t n=1):
        """Depth imbalance over the best n levels per side, in [-1, 1]:
        (sum bid lots - sum ask lots) / (sum bid lots + sum ask lots); NaN if both empty."""
        cdef double sb = 0.0, sa = 0.0
        cdef Py_ssize_t i, got
        cdef int64_t[::1] t, q
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        t = np.empty(n, dtype=np.int64)
        q = np.empty(n, dtype=np.int64)
        got = self.top_c(0, n, &t[0], &q[0])
        if got < 0:
            raise MemoryError()
        for i in range(got):
            sb += q[i]
        got = self.top_c(1, n, &t[0], &q[0])
        if got < 0:
            raise MemoryError()
        for i in range(got):
            sa += q[i]
        if sb + sa == 0.0:
            return float("nan")
        return (sb - sa) / (sb + sa)

    def is_crossed(self):
        """True when best bid >= best ask (both sides present)."""
        return self.crossed_c()

    def top(self, Py_ssize_t n=10):
        """The best n levels: (bid_ticks, bid_lots, ask_ticks, ask_lots) as int64
        arrays, best first (bids descending, asks ascending)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out = []
        for side in (0, 1):
            t = np.empty(n, dtype=np.int64)
            q = np.empty(n, dtype=np.int64)
            got = self.top_c(side, n, <int64_t*>cnp.PyArray_DATA(t), <int64_t*>cnp.PyArray_DATA(q))
            if got < 0:
                raise MemoryError()
            out.append(t[:got].copy())
            out.append(q[:got].copy())
        return tuple(out)

    def levels(self, int side):
        """Every level of a side, best first: (ticks, lots) int64 arrays."""
        if side != 0 and side != 1:
            raise ValueError(f"side must be BID (0) or ASK (1), got {side}")
        n = self.count_c(side)
        t = np.empty(n, dtype=np.int64)
        q = np.empty(n, dtype=np.int64)
        if n and self.top_c(side, n, <int64_t*>cnp.PyArray_DATA(t), <int64_t*>cnp.PyArray_DATA(q)) < 0:
            raise MemoryError()
        return t, q

    @property
    def bid_levels(self):
        """Number of bid levels."""
        return self.count_c(0)

    @property
    def ask_levels(self):
        """Number of ask levels."""
        return self.count_c(1)

    @property
    def window(self):
        """Ticks held densely per side."""
        return self._window

    def __len__(self):
        return self.count_c(0) + self.count_c(1)

    def __repr__(self):
        return (f"L2Book(best_bid={self.best_bid()}, best_ask={self.best_ask()}, "
                f"bid_levels={self.bid_levels}, ask_levels={self.ask_levels}, "
                f"tick_size={self.tick_size})")


cdef int _validate(object t, object q, int side) except -1:
    cdef const int64_t* tp = _ptr(t)
    cdef const int64_t* qp = _ptr(q)
    cdef Py_ssize_t i
    for i in range(_len(t)):
        if qp[i] < 0 or tp[i] < 0 or tp[i] >= BOOK_MAX_TICK:
            _raise_level(side, tp[i], qp[i])
    return 0


cdef double _positive_float(object x, str name) except -1.0:
    try:
        v = float(str(x)) if not isinstance(x, float) else x
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {x!r}") from None
    if not (v > 0.0) or v == float("inf"):
        raise ValueError(f"{name} must be a positive number, got {x!r}")
    return v
