# cython: language_level=3
"""Binance market-data message decoder: JSON frame -> typed message, in one pass.

``BinanceDecoder("0.01", "0.00001").decode(frame)`` returns a DepthUpdate,
DepthSnapshot, Trade, BookTicker or UnknownEvent. Prices are int64 ticks and
quantities int64 lots of the decoder's tick/lot size (exact: no float on the way
from the decimal string to the integer); ids as sent; times int64 ns since the
epoch. A malformed frame raises DecodeError (offset and field attached); nothing
else escapes and nothing is half-built.

The JSON scanner is hand-written C-level Cython over ``const char*``: it accepts
any insignificant whitespace, keys in any order and unknown keys with any JSON
value (skipped, fully validated). Known fields are dispatched on their JSON
type ("a" is an array in depth, an integer in aggTrade and a string in
bookTicker). Level arrays ("b", "a", "bids", "asks") are decoded straight into
decoder-owned scratch during the scan, and validated whenever present; scalar
fields are converted only when the detected message type uses them, so an
unmodelled event ("kline", "markPriceUpdate", ...) never fails on a field it
merely shares a name with.
"""
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memset

cimport numpy as cnp
from hftcore.decimal cimport (
    HFT_DEC_EMPTY,
    HFT_DEC_NEGATIVE,
    HFT_DEC_NOT_MULTIPLE,
    HFT_DEC_OK,
    HFT_DEC_OVERFLOW,
    HFT_DEC_SYNTAX,
    hft_dec_strerror,
    hft_format_units,
    hft_parse_units,
    hft_scale_from_str,
)
from hftcore.types cimport (
    hft_event_set,
    hft_message_events,
    HFT_ASK,
    HFT_BID,
    HFT_EV_BBO,
    HFT_EV_DEPTH,
    HFT_EV_SNAPSHOT,
    HFT_EV_TRADE,
    HFT_EVF_BEGIN,
    HFT_EVF_EMPTY,
    HFT_EVF_END,
    HFT_NO_ID,
    hft_event_t,
)

import json

import numpy as np

from hftcore.types import EVENT_DTYPE

cnp.import_array()

cdef extern from "hftcore/decimal.h":
    unsigned hft_dec__ctz64(uint64_t x) nogil
    int hft_dec__little_endian() nogil
    # one-pass shortcut for a plain decimal followed by '"' (1 = parsed, 0 = use
    # the string scan + hft_parse_units, which define every result)
    int hft_parse_units_quoted(const char* s, size_t avail, const hft_scale_t* scale,
                               int64_t* out, size_t* len) nogil


class DecodeError(ValueError):
    """A frame could not be decoded. ``offset`` is the byte offset in the frame
    where the problem was found, ``field`` the JSON key concerned (or None)."""

    def __init__(self, message, offset=0, field=None):
        super().__init__(message)
        self.offset = offset
        self.field = field


# ----------------------------------------------------------------- scanner state
cdef enum:
    T_NONE = 0
    T_INT = 1      # a JSON integer within int64 (value in .i)
    T_NUM = 2      # any other JSON number (fraction, exponent, beyond int64)
    T_STR = 3
    T_TRUE = 4
    T_FALSE = 5
    T_NULL = 6
    T_OBJ = 7
    T_ARR = 8

cdef enum:
    F_e = 0
    F_E
    F_T
    F_s
    F_U
    F_u
    F_pu
    F_b
    F_a
    F_B
    F_A
    F_t
    F_p
    F_q
    F_f
    F_l
    F_m
    F_X
    F_lastUpdateId
    F_bids
    F_asks
    F_stream
    F_data
    F_COUNT

FIELD_NAMES = ("e", "E", "T", "s", "U", "u", "pu", "b", "a", "B", "A", "t", "p", "q",
               "f", "l", "m", "X", "lastUpdateId", "bids", "asks", "stream", "data")

cdef enum:
    E_NONE = 0
    E_TRUNC         # unexpected end of frame
    E_SYNTAX        # invalid JSON (msg tells)
    E_TRAILING
    E_NOT_OBJECT
    E_DEPTH
    E_TYPE          # wrong JSON type for a known field (msg: expected ...)
    E_MISSING
    E_LEVEL         # bad level shape
    E_DECIMAL       # price/qty decimal error (dec_code, level, which)
    E_INT           # not an int64 integer
    E_TIME          # time beyond int64 ns
    E_NOMEM

cdef enum:
    MAX_DEPTH = 128
    SCRATCH_INIT = 64

cdef struct Fld:
    const char* v        # first byte of the value
    const char* s        # string content (tag T_STR)
    Py_ssize_t n         # string content length
    int64_t i            # integer value (tag T_INT)
    int tag
    bint esc             # string holds escapes

cdef struct Obj:
    uint32_t present     # bit per field id
    const char* start    # its '{'
    Py_ssize_t lv_start[2]
    Py_ssize_t lv_n[2]
    Fld f[<int>F_COUNT]

cdef struct Ctx:
    const char* base
    const char* end
    const hft_scale_t* px_scale
    const hft_scale_t* qty_scale
    _Scratch* scr
    int depth
    bint has_inner
    # error
    int err
    const char* err_at
    const char* err_msg  # static text
    int err_field        # field id, -1 none
    int err_dec
    Py_ssize_t err_level
    int err_which        # 0 price, 1 qty
    const char* err_vs
    Py_ssize_t err_vn


cdef inline const char* _fail(Ctx* c, int kind, const char* at, const char* msg, int field) noexcept nogil:
    c.err = kind
    c.err_at = at
    c.err_msg = msg
    c.err_field = field
    return NULL


cdef inline bint _is_ws(char ch) noexcept nogil:
    return ch == c' ' or ch == c'\n' or ch == c'\r' or ch == c'\t'


cdef inline const char* _ws(const char* p, const char* end) noexcept nogil:
    while p < end and <unsigned char>p[0] <= 32 and _is_ws(p[0]):
        p += 1
    return p


cdef inline const char* _after(const char* p, const char* end, char ch) noexcept nogil:
    """Past the next ch when only whitespace precedes it, else NULL."""
    if p < end and p[0] == ch:
        return p + 1
    p = _ws(p, end)
    if p < end and p[0] == ch:
        return p + 1
    return NULL


cdef inline uint64_t _special_mask(uint64_t v) noexcept nogil:
    # per byte: '"', '\\' or a control char (< 0x20); exact for the lowest byte
    cdef uint64_t ones = 0x0101010101010101ULL
    cdef uint64_t high = 0x8080808080808080ULL
    cdef uint64_t q = v ^ 0x2222222222222222ULL
    cdef uint64_t b = v ^ 0x5C5C5C5C5C5C5C5CULL
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & high


cdef inline bint _is_hex(char ch) noexcept nogil:
    return (c'0' <= ch <= c'9') or (c'a' <= ch <= c'f') or (c'A' <= ch <= c'F')


cdef const char* _str_end(Ctx* c, const char* p, bint* esc) noexcept nogil:
    """p: first byte of string content. Returns the closing quote, or NULL."""
    cdef const char* end = c.end
    cdef uint64_t v, m
    cdef unsigned char ch
    cdef bint le = hft_dec__little_endian()
    while True:
        if le and p + 8 <= end:
            memcpy(&v, p, 8)
            m = _special_mask(v)
            if m == 0:
                p += 8
                continue
            p += hft_dec__ctz64(m) >> 3
        elif p >= end:
            return _fail(c, E_TRUNC, end, "unterminated string", -1)
        ch = <unsigned char>p[0]
        if ch == c'"':
            return p
        if ch == c'\\':
            esc[0] = True
            if p + 1 >= end:
                return _fail(c, E_TRUNC, end, "unterminated string", -1)
            ch = <unsigned char>p[1]
            if ch == c'u':
                if p + 6 > end:
                    return _fail(c, E_TRUNC, end, "unterminated string", -1)
                if not (_is_hex(p[2]) and _is_hex(p[3]) and _is_hex(p[4]) and _is_hex(p[5])):
                    return _fail(c, E_SYNTAX, p, "invalid \\u escape in string", -1)
                p += 6
            elif (ch == c'"' or ch == c'\\' or ch == c'/' or ch == c'b' or ch == c'f'
                  or ch == c'n' or ch == c'r' or ch == c't'):
                p += 2
            else:
                return _fail(c, E_SYNTAX, p, "invalid escape in string", -1)
            continue
        if ch < 0x20:
            return _fail(c, E_SYNTAX, p, "control character in string", -1)
        p += 1


cdef inline const char* _str_end_fast(Ctx* c, const char* p, bint* esc) noexcept nogil:
    """_str_end with the first 16 bytes inlined (short strings: prices, keys)."""
    cdef uint64_t v, m
    if hft_dec__little_endian() and p + 16 <= c.end:
        memcpy(&v, p, 8)
        m = _special_mask(v)
        if m == 0:
            memcpy(&v, p + 8, 8)
            m = _special_mask(v)
            if m == 0:
                return _str_end(c, p + 16, esc)
            p += 8
        p += hft_dec__ctz64(m) >> 3
        if p[0] == c'"':
            return p
    return _str_end(c, p, esc)


cdef const char* _number(Ctx* c, const char* p, int64_t* ival, int* tag) noexcept nogil:
    """A JSON number at p; sets tag T_INT (value in ival) or T_NUM."""
    cdef const char* end = c.end
    cdef const char* start = p
    cdef const char* digits
    cdef bint neg = False, over = False, is_int = True
    cdef uint64_t acc = 0, d
    cdef uint64_t lim
    if p[0] == c'-':
        neg = True
        p += 1
    lim = (<uint64_t>INT64_MAX) + (1 if neg else 0)
    digits = p
    if p >= end:
        return _fail(c, E_TRUNC, end, "unexpected end of frame in a number", -1)
    if p[0] == c'0':
        p += 1
    elif c'1' <= p[0] <= c'9':
        while p < end and c'0' <= p[0] <= c'9':
            p += 1
        if p - digits <= 18:
            # up to 18 digits cannot overflow int64 (ids, ms/us times)
            while digits < p:
                acc = acc * 10 + <uint64_t>(digits[0] - c'0')
                digits += 1
        else:
            while digits < p:
                d = <uint64_t>(digits[0] - c'0')
                if acc > (lim - d) // 10:
                    over = True
                else:
                    acc = acc * 10 + d
                digits += 1
    else:
        return _fail(c, E_SYNTAX, p, "invalid number", -1)
    if p < end and p[0] == c'.':
        p += 1
        is_int = False
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame in a number", -1)
        if not (c'0' <= p[0] <= c'9'):
            return _fail(c, E_SYNTAX, p, "invalid number: digit expected after '.'", -1)
        while p < end and c'0' <= p[0] <= c'9':
            p += 1
    if p < end and (p[0] == c'e' or p[0] == c'E'):
        p += 1
        is_int = False
        if p < end and (p[0] == c'+' or p[0] == c'-'):
            p += 1
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame in a number", -1)
        if not (c'0' <= p[0] <= c'9'):
            return _fail(c, E_SYNTAX, p, "invalid number: digit expected in exponent", -1)
        while p < end and c'0' <= p[0] <= c'9':
            p += 1
    if is_int and not over:
        tag[0] = T_INT
        ival[0] = <int64_t>(0 - acc) if neg else <int64_t>acc
    else:
        tag[0] = T_NUM
    return p


cdef inline const char* _literal(Ctx* c, const char* p, const char* word, Py_ssize_t n) noexcept nogil:
    if c.end - p < n:
        if memcmp(p, word, <size_t>(c.end - p)) == 0:
            return _fail(c, E_TRUNC, c.end, "unexpected end of frame in a literal", -1)
        return _fail(c, E_SYNTAX, p, "invalid literal", -1)
    if memcmp(p, word, <size_t>n) != 0:
        return _fail(c, E_SYNTAX, p, "invalid literal", -1)
    return p + n


cdef const char* _skip_container(Ctx* c, const char* p) noexcept nogil:
    """p at '{' or '['; skips the whole container."""
    cdef const char* end = c.end
    cdef bint obj = p[0] == c'{'
    cdef char close = c'}' if obj else c']'
    cdef bint esc = False
    c.depth += 1
    if c.depth > MAX_DEPTH:
        return _fail(c, E_DEPTH, p, "nesting too deep", -1)
    p = _ws(p + 1, end)
    if p >= end:
        return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
    if p[0] == close:
        c.depth -= 1
        return p + 1
    while True:
        if obj:
            if p[0] != c'"':
                return _fail(c, E_SYNTAX, p, "expected a string key", -1)
            p = _str_end(c, p + 1, &esc)
            if p == NULL:
                return NULL
            p = _ws(p + 1, end)
            if p >= end:
                return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
            if p[0] != c':':
                return _fail(c, E_SYNTAX, p, "expected ':'", -1)
            p = _ws(p + 1, end)
            if p >= end:
                return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
        p = _skip_value(c, p)
        if p == NULL:
            return NULL
        p = _ws(p, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
        if p[0] == c',':
            p = _ws(p + 1, end)
            if p >= end:
                return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
            continue
        if p[0] == close:
            c.depth -= 1
            return p + 1
        return _fail(c, E_SYNTAX, p, "expected ',' or '}'" if obj else "expected ',' or ']'", -1)


cdef const char* _skip_value(Ctx* c, const char* p) noexcept nogil:
    """p at the first byte of a value (p < end)."""
    cdef char ch = p[0]
    cdef bint esc = False
    cdef int64_t iv
    cdef int tag
    if ch == c'"':
        p = _str_end(c, p + 1, &esc)
        return p + 1 if p != NULL else NULL
    if ch == c'{' or ch == c'[':
        return _skip_container(c, p)
    if ch == c't':
        return _literal(c, p, "true", 4)
    if ch == c'f':
        return _literal(c, p, "false", 5)
    if ch == c'n':
        return _literal(c, p, "null", 4)
    if ch == c'-' or (c'0' <= ch <= c'9'):
        return _number(c, p, &iv, &tag)
    return _fail(c, E_SYNTAX, p, "expected a JSON value", -1)


cdef inline int _key_id(const char* k, Py_ssize_t n) noexcept nogil:
    cdef char c0
    if n == 1:
        c0 = k[0]
        if c0 == c'e': return F_e
        if c0 == c'E': return F_E
        if c0 == c'T': return F_T
        if c0 == c's': return F_s
        if c0 == c'U': return F_U
        if c0 == c'u': return F_u
        if c0 == c'b': return F_b
        if c0 == c'a': return F_a
        if c0 == c'B': return F_B
        if c0 == c'A': return F_A
        if c0 == c't': return F_t
        if c0 == c'p': return F_p
        if c0 == c'q': return F_q
        if c0 == c'f': return F_f
        if c0 == c'l': return F_l
        if c0 == c'm': return F_m
        if c0 == c'X': return F_X
        return -1
    if n == 2:
        return F_pu if (k[0] == c'p' and k[1] == c'u') else -1
    if n == 4:
        if memcmp(k, "bids", 4) == 0: return F_bids
        if memcmp(k, "asks", 4) == 0: return F_asks
        if memcmp(k, "data", 4) == 0: return F_data
        return -1
    if n == 6:
        return F_stream if memcmp(k, "stream", 6) == 0 else -1
    if n == 12:
        return F_lastUpdateId if memcmp(k, "lastUpdateId", 12) == 0 else -1
    return -1


cdef bint _grow(_Scratch* s, int side) noexcept nogil:
    cdef Py_ssize_t cap = s.cap[side] * 2 if s.cap[side] else SCRATCH_INIT
    cdef int64_t* a = <int64_t*>realloc(s.px[side], <size_t>cap * sizeof(int64_t))
    if a == NULL:
        return False
    s.px[side] = a
    a = <int64_t*>realloc(s.qty[side], <size_t>cap * sizeof(int64_t))
    if a == NULL:
        return False
    s.qty[side] = a
    s.cap[side] = cap
    return True


cdef inline const char* _dec_fail(Ctx* c, int rc, const char* s, const char* e, int field,
                                  Py_ssize_t level, int which) noexcept nogil:
    c.err_dec = rc
    c.err_level = level
    c.err_which = which
    c.err_vs = s
    c.err_vn = e - s
    return _fail(c, E_DECIMAL, s - 1, "", field)


cdef inline const char* _level_fail(Ctx* c, const char* p, int field, Py_ssize_t level,
                                    const char* msg) noexcept nogil:
    c.err_level = level
    if p >= c.end:
        return _fail(c, E_TRUNC, c.end, "unexpected end of frame in a level", field)
    return _fail(c, E_LEVEL, p, msg, field)


cdef const char* _string_end(Ctx* c, const char* s, int field) noexcept nogil:
    """s: first byte of a string's content. Returns its closing quote, or NULL
    (error set, attributed to field). The out-of-line path of _levels."""
    cdef bint esc = False
    cdef const char* e = _str_end_fast(c, s, &esc)
    if e == NULL:
        c.err_field = field
    return e


cdef const char* _levels(Ctx* c, const char* p, Obj* o, int side, int field) noexcept nogil:
    """p at '[' of [[px, qty], ...]; appends the levels to the scratch side."""
    cdef const char* end = c.end
    cdef _Scratch* scr = c.scr
    cdef const char* s1
    cdef const char* e1
    cdef const char* s2
    cdef const char* e2
    cdef const char* q
    cdef Py_ssize_t start = scr.n[side], k
    cdef int64_t px = 0, qty = 0
    cdef bint px_ok, qty_ok
    cdef size_t n
    cdef int rc
    p = _ws(p + 1, end)
    if p >= end:
        return _fail(c, E_TRUNC, end, "unexpected end of frame", field)
    if p[0] != c']':
        while True:
            k = scr.n[side]
            if p[0] != c'[':
                return _level_fail(c, p, field, k - start, "a level must be a [price, qty] array")
            # compact `["px","qty"]` is checked byte by byte; anything else
            # (whitespace) goes through _after
            if p + 1 < end and p[1] == c'"':
                s1 = p + 2
            else:
                s1 = _after(p + 1, end, c'"')
                if s1 == NULL:
                    return _level_fail(c, _ws(p + 1, end), field, k - start,
                                       "a level must hold two strings [price, qty]")
            # a plain decimal (the usual case) is converted while its end is
            # found; anything else is converted below, after the level's
            # structure is checked (the error precedence of a separate scan)
            px_ok = hft_parse_units_quoted(s1, <size_t>(end - s1), c.px_scale, &px, &n)
            if px_ok:
                e1 = s1 + n
            else:
                e1 = _string_end(c, s1, field)
                if e1 == NULL:
                    return NULL
            if e1 + 2 < end and e1[1] == c',' and e1[2] == c'"':
                s2 = e1 + 3
            else:
                q = _after(e1 + 1, end, c',')
                if q != NULL:
                    q = _after(q, end, c'"')
                if q == NULL:
                    p = _ws(e1 + 1, end)
                    if p < end and p[0] == c',':
                        p = _ws(p + 1, end)
                    return _level_fail(c, p, field, k - start, "a level must hold two strings [price, qty]")
                s2 = q
            qty_ok = hft_parse_units_quoted(s2, <size_t>(end - s2), c.qty_scale, &qty, &n)
            if qty_ok:
                e2 = s2 + n
            else:
                e2 = _string_end(c, s2, field)
                if e2 == NULL:
                    return NULL
            q = _after(e2 + 1, end, c']')
            if q == NULL:
                return _level_fail(c, _ws(e2 + 1, end), field, k - start,
                                   "a level must be a 2-element array [price, qty]")
            if k == scr.cap[side]:
                if not _grow(scr, side):
                    return _fail(c, E_NOMEM, q, "out of memory", field)
            if not px_ok:
                rc = hft_parse_units(s1, <size_t>(e1 - s1), c.px_scale, &px)
                if rc != HFT_DEC_OK:
                    return _dec_fail(c, rc, s1, e1, field, k - start, 0)
            if not qty_ok:
                rc = hft_parse_units(s2, <size_t>(e2 - s2), c.qty_scale, &qty)
                if rc != HFT_DEC_OK:
                    return _dec_fail(c, rc, s2, e2, field, k - start, 1)
            scr.px[side][k] = px
            scr.qty[side][k] = qty
            scr.n[side] = k + 1
            p = q
            if p + 1 < end and p[0] == c',' and p[1] == c'[':
                p += 1
                continue
            p = _ws(p, end)
            if p >= end:
                return _fail(c, E_TRUNC, end, "unexpected end of frame", field)
            if p[0] == c',':
                p = _ws(p + 1, end)
                if p >= end:
                    return _fail(c, E_TRUNC, end, "unexpected end of frame", field)
                continue
            if p[0] == c']':
                break
            return _fail(c, E_SYNTAX, p, "expected ',' or ']'", field)
    o.lv_start[side] = start
    o.lv_n[side] = scr.n[side] - start
    return p + 1


cdef const char* _object(Ctx* c, const char* p, Obj* o, Obj* inner) noexcept nogil:
    """p at '{'. Records the known fields into o; with inner != NULL (top level),
    an object-valued "data" is scanned into inner."""
    cdef const char* end = c.end
    cdef const char* ks
    cdef const char* q
    cdef bint esc
    cdef int fid, tag
    cdef char ch
    cdef Fld* f
    o.present = 0
    o.start = p
    o.lv_n[0] = 0
    o.lv_n[1] = 0
    c.depth += 1
    p = _ws(p + 1, end)
    if p >= end:
        return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
    if p[0] == c'}':
        c.depth -= 1
        return p + 1
    while True:
        if p[0] != c'"':
            return _fail(c, E_SYNTAX, p, "expected a string key", -1)
        esc = False
        ks = p + 1
        q = _str_end_fast(c, ks, &esc)
        if q == NULL:
            return NULL
        fid = -1 if esc else _key_id(ks, q - ks)
        p = _ws(q + 1, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", fid)
        if p[0] != c':':
            return _fail(c, E_SYNTAX, p, "expected ':'", fid)
        p = _ws(p + 1, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", fid)
        ch = p[0]
        if fid < 0:
            q = _skip_value(c, p)
        else:
            f = &o.f[fid]
            f.v = p
            if ch == c'"':
                esc = False
                q = _str_end_fast(c, p + 1, &esc)
                if q != NULL:
                    f.tag = T_STR
                    f.s = p + 1
                    f.n = q - (p + 1)
                    f.esc = esc
                    q += 1
            elif ch == c'[':
                if fid == F_b or fid == F_bids:
                    q = _levels(c, p, o, 0, fid)
                elif fid == F_a or fid == F_asks:
                    q = _levels(c, p, o, 1, fid)
                else:
                    q = _skip_container(c, p)
                f.tag = T_ARR
            elif ch == c'{':
                if fid == F_data and inner != NULL:
                    q = _object(c, p, inner, NULL)
                    c.has_inner = q != NULL
                else:
                    q = _skip_container(c, p)
                f.tag = T_OBJ
            elif ch == c'-' or (c'0' <= ch <= c'9'):
                q = _number(c, p, &f.i, &tag)
                f.tag = tag
            elif ch == c't':
                q = _literal(c, p, "true", 4)
                f.tag = T_TRUE
            elif ch == c'f':
                q = _literal(c, p, "false", 5)
                f.tag = T_FALSE
            elif ch == c'n':
                q = _literal(c, p, "null", 4)
                f.tag = T_NULL
            else:
                q = _fail(c, E_SYNTAX, p, "expected a JSON value", fid)
            if q != NULL:
                o.present |= (<uint32_t>1) << fid
        if q == NULL:
            if c.err_field < 0:
                c.err_field = fid
            return NULL
        p = _ws(q, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
        if p[0] == c',':
            p = _ws(p + 1, end)
            if p >= end:
                return _fail(c, E_TRUNC, end, "unexpected end of frame", -1)
            continue
        if p[0] == c'}':
            c.depth -= 1
            return p + 1
        return _fail(c, E_SYNTAX, p, "expected ',' or '}'", -1)


cdef bint _scan(Ctx* c, Obj* top, Obj* inner) noexcept nogil:
    cdef const char* p = _ws(c.base, c.end)
    if p >= c.end:
        _fail(c, E_TRUNC, c.end, "empty frame", -1)
        return False
    if p[0] != c'{':
        _fail(c, E_NOT_OBJECT, p, "top level is not a JSON object", -1)
        return False
    p = _object(c, p, top, inner)
    if p == NULL:
        return False
    p = _ws(p, c.end)
    if p != c.end:
        _fail(c, E_TRAILING, p, "trailing data after the JSON object", -1)
        return False
    return True


# ----------------------------------------------------------------- messages
cdef str _type_name(int tag):
    if tag == T_INT or tag == T_NUM:
        return "a number"
    if tag == T_STR:
        return "a string"
    if tag == T_TRUE or tag == T_FALSE:
        return "a boolean"
    if tag == T_NULL:
        return "null"
    if tag == T_OBJ:
        return "an object"
    return "an array"


cdef class Message:
    """Base of every decoded message: ``stream`` (combined-stream name or None)
    and ``symbol`` (the "s" field or None)."""

    def to_events(self, local_ts_ns=0):
        """This message as hftcore.EVENT_DTYPE records (none for this type)."""
        return np.zeros(0, dtype=EVENT_DTYPE)

    def to_dict(self):
        return {"stream": self.stream, "symbol": self.symbol}


cdef inline object _i64_array(const int64_t* src, Py_ssize_t n):
    cdef cnp.npy_intp dims = n
    cdef cnp.ndarray a = cnp.PyArray_EMPTY(1, &dims, cnp.NPY_INT64, 0)
    if n:
        memcpy(cnp.PyArray_DATA(a), src, <size_t>n * sizeof(int64_t))
    return a


cdef inline object _pairs(const int64_t* px, const int64_t* qty, Py_ssize_t n):
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = 2
    cdef cnp.ndarray a = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64, 0)
    cdef int64_t* d = <int64_t*>cnp.PyArray_DATA(a)
    cdef Py_ssize_t i
    for i in range(n):
        d[2 * i] = px[i]
        d[2 * i + 1] = qty[i]
    return a


cdef object _events(Py_ssize_t n):
    cdef cnp.ndarray a = np.empty(n, dtype=EVENT_DTYPE)
    return a


cdef class _Levels(Message):
    """Bid and ask levels (message order) in one block: ticks and lots."""

    def __dealloc__(self):
        free(self._block)
        self._block = NULL

    @property
    def bid_ticks(self):
        """New int64 array: bid prices in ticks."""
        return _i64_array(self.bid_px, self.n_bids)

    @property
    def bid_lots(self):
        """New int64 array: bid quantities in lots (0 = delete)."""
        return _i64_array(self.bid_qty, self.n_bids)

    @property
    def ask_ticks(self):
        """New int64 array: ask prices in ticks."""
        return _i64_array(self.ask_px, self.n_asks)

    @property
    def ask_lots(self):
        """New int64 array: ask quantities in lots (0 = delete)."""
        return _i64_array(self.ask_qty, self.n_asks)

    @property
    def bids(self):
        """New (n, 2) int64 array of [ticks, lots]."""
        return _pairs(self.bid_px, self.bid_qty, self.n_bids)

    @property
    def asks(self):
        """New (n, 2) int64 array of [ticks, lots]."""
        return _pairs(self.ask_px, self.ask_qty, self.n_asks)

    def _level_lists(self):
        cdef Py_ssize_t i
        return ([(self.bid_px[i], self.bid_qty[i]) for i in range(self.n_bids)],
                [(self.ask_px[i], self.ask_qty[i]) for i in range(self.n_asks)])


cdef object _level_events(_Levels self, int64_t local_ts, int64_t exch_ts, int kind,
                   int64_t first_id, int64_t last_id, int64_t prev_id):
    cdef Py_ssize_t nb = self.n_bids, na = self.n_asks, n = nb + na
    cdef cnp.ndarray a = _events(n if n else 1)
    hft_message_events(<hft_event_t*>cnp.PyArray_DATA(a), local_ts, exch_ts, kind, first_id, last_id,
                       prev_id, self.bid_px, self.bid_qty, nb, self.ask_px, self.ask_qty, na)
    return a


def _opt_id(int64_t v):
    return None if v == HFT_NO_ID else v


cdef class DepthUpdate(_Levels):
    """"e": "depthUpdate" (spot, USD-M). first_id U, last_id u, prev_id pu
    (HFT_NO_ID on spot), event_time_ns E, transaction_time_ns T (0 if absent)."""

    def to_events(self, local_ts_ns=0):
        """DEPTH records, bids then asks; BEGIN/END flags; EMPTY when no level."""
        return _level_events(self, local_ts_ns, self.event_time_ns, HFT_EV_DEPTH,
                                  self.first_id, self.last_id, self.prev_id)

    def to_dict(self):
        bids, asks = self._level_lists()
        return {"stream": self.stream, "symbol": self.symbol, "first_id": self.first_id,
                "last_id": self.last_id, "prev_id": self.prev_id,
                "event_time_ns": self.event_time_ns,
                "transaction_time_ns": self.transaction_time_ns, "bids": bids, "asks": asks}

    def __repr__(self):
        return (f"DepthUpdate(symbol={self.symbol!r}, stream={self.stream!r}, U={self.first_id}, "
                f"u={self.last_id}, pu={_opt_id(self.prev_id)}, E_ns={self.event_time_ns}, "
                f"T_ns={self.transaction_time_ns}, n_bids={self.n_bids}, n_asks={self.n_asks})")


cdef class DepthSnapshot(_Levels):
    """REST depth / spot partial depth: last_update_id, E and T in ns (0 if absent)."""

    def to_events(self, local_ts_ns=0):
        """SNAPSHOT records (first_id = last_id = lastUpdateId), bids then asks."""
        cdef int64_t ts = self.event_time_ns if self.event_time_ns else self.transaction_time_ns
        return _level_events(self, local_ts_ns, ts, HFT_EV_SNAPSHOT, self.last_update_id,
                                  self.last_update_id, HFT_NO_ID)

    def to_dict(self):
        bids, asks = self._level_lists()
        return {"stream": self.stream, "symbol": self.symbol,
                "last_update_id": self.last_update_id, "event_time_ns": self.event_time_ns,
                "transaction_time_ns": self.transaction_time_ns, "bids": bids, "asks": asks}

    def __repr__(self):
        return (f"DepthSnapshot(symbol={self.symbol!r}, stream={self.stream!r}, "
                f"lastUpdateId={self.last_update_id}, E_ns={self.event_time_ns}, "
                f"n_bids={self.n_bids}, n_asks={self.n_asks})")


cdef class Trade(Message):
    """trade / aggTrade: price ticks, qty lots, trade_time_ns T, event_time_ns E;
    side is the maker side (HFT_BID when the buyer was the maker)."""

    def to_events(self, local_ts_ns=0):
        """One TRADE record (first/last trade id, exch_ts = trade time)."""
        cdef cnp.ndarray a = _events(1)
        hft_event_set(<hft_event_t*>cnp.PyArray_DATA(a), local_ts_ns, self.trade_time_ns, self.price,
            self.qty, self.first_trade_id, self.last_trade_id, HFT_NO_ID, HFT_EV_TRADE, self.side,
            HFT_EVF_BEGIN | HFT_EVF_END)
        return a

    def to_dict(self):
        return {"stream": self.stream, "symbol": self.symbol, "is_aggregate": self.is_aggregate,
                "trade_id": self.trade_id, "first_trade_id": self.first_trade_id,
                "last_trade_id": self.last_trade_id, "price": self.price, "qty": self.qty,
                "trade_time_ns": self.trade_time_ns, "event_time_ns": self.event_time_ns,
                "buyer_is_maker": self.buyer_is_maker, "side": self.side,
                "trade_type": self.trade_type}

    def __repr__(self):
        return (f"Trade(symbol={self.symbol!r}, stream={self.stream!r}, "
                f"{'aggTrade' if self.is_aggregate else 'trade'} id={self.trade_id} "
                f"[{self.first_trade_id}..{self.last_trade_id}], price={self.price}, qty={self.qty}, "
                f"T_ns={self.trade_time_ns}, buyer_is_maker={self.buyer_is_maker})")


cdef class BookTicker(Message):
    """bookTicker: update_id u, best bid/ask in ticks and lots, E/T in ns (0 if absent)."""

    def to_events(self, local_ts_ns=0):
        """Two BBO records, bid then ask (first_id = last_id = u)."""
        cdef cnp.ndarray a = _events(2)
        cdef hft_event_t* e = <hft_event_t*>cnp.PyArray_DATA(a)
        cdef int64_t ts = self.event_time_ns if self.event_time_ns else self.transaction_time_ns
        hft_event_set(&e[0], local_ts_ns, ts, self.bid_px, self.bid_qty, self.update_id, self.update_id,
            HFT_NO_ID, HFT_EV_BBO, HFT_BID, HFT_EVF_BEGIN)
        hft_event_set(&e[1], local_ts_ns, ts, self.ask_px, self.ask_qty, self.update_id, self.update_id,
            HFT_NO_ID, HFT_EV_BBO, HFT_ASK, HFT_EVF_END)
        return a

    def to_dict(self):
        return {"stream": self.stream, "symbol": self.symbol, "update_id": self.update_id,
                "bid_px": self.bid_px, "bid_qty": self.bid_qty, "ask_px": self.ask_px,
                "ask_qty": self.ask_qty, "event_time_ns": self.event_time_ns,
                "transaction_time_ns": self.transaction_time_ns}

    def __repr__(self):
        return (f"BookTicker(symbol={self.symbol!r}, stream={self.stream!r}, u={self.update_id}, "
                f"bid={self.bid_px}x{self.bid_qty}, ask={self.ask_px}x{self.ask_qty}, "
                f"E_ns={self.event_time_ns})")


cdef class UnknownEvent(Message):
    """A well-formed object the decoder does not model: event_type is its "e"
    (or "" when it has none; payload_keys then lists its top-level keys)."""

    def to_dict(self):
        return {"stream": self.stream, "symbol": self.symbol, "event_type": self.event_type,
                "payload_keys": self.payload_keys}

    def __repr__(self):
        return (f"UnknownEvent(event_type={self.event_type!r}, symbol={self.symbol!r}, "
                f"stream={self.stream!r}, payload_keys={self.payload_keys!r})")


# ----------------------------------------------------------------- decoder
cdef str _span_text(const char* s, Py_ssize_t n, bint esc):
    """Text of a JSON string's content (escapes decoded when present)."""
    if not esc:
        return PyUnicode_DecodeUTF8(s, n, "replace")
    raw = PyBytes_FromStringAndSize(s - 1, n + 2)
    try:
        return json.loads(raw)
    except ValueError:
        return PyUnicode_DecodeUTF8(s, n, "replace")


cdef class BinanceDecoder:
    """Decoder of Binance spot / USD-M market-data frames for one instrument.

    ``tick_size`` and ``lot_size`` are the PRICE_FILTER tickSize and LOT_SIZE
    stepSize as text (e.g. "0.01000000"); ``time_unit`` is "ms" (default) or
    "us" (streams opened with ``timeUnit=MICROSECOND``). Times come out in ns.
    """

    def __cinit__(self):
        memset(&self._scr, 0, sizeof(_Scratch))

    def __init__(self, tick_size, lot_size, time_unit="ms"):
        from hftcore.decimal import Scale
        px = Scale(tick_size)
        qty = Scale(lot_size)
        if time_unit == "ms":
            self._time_mult = 1000000
        elif time_unit == "us":
            self._time_mult = 1000
        else:
            raise ValueError(f'time_unit must be "ms" or "us", not {time_unit!r}')
        self._px_scale.mantissa = px.mantissa
        self._px_scale.exponent = px.exponent
        self._qty_scale.mantissa = qty.mantissa
        self._qty_scale.exponent = qty.exponent
        self.tick_size = tick_size if isinstance(tick_size, str) else str(px)
        self.lot_size = lot_size if isinstance(lot_size, str) else str(qty)
        self.time_unit = time_unit
        cdef int side
        for side in range(2):
            if self._scr.cap[side] == 0 and not _grow(&self._scr, side):
                raise MemoryError()

    def __dealloc__(self):
        cdef int side
        for side in range(2):
            free(self._scr.px[side])
            free(self._scr.qty[side])
            self._scr.px[side] = NULL
            self._scr.qty[side] = NULL

    def __repr__(self):
        return (f"BinanceDecoder(tick_size={self.tick_size!r}, lot_size={self.lot_size!r}, "
                f"time_unit={self.time_unit!r})")

    def decode(self, frame):
        """Decode one frame (bytes, bytearray, memoryview or str) into a Message.
        Raises DecodeError on malformed input."""
        cdef Py_ssize_t n
        cdef const char* p
        cdef Py_buffer view
        if type(frame) is bytes:
            return self.decode_c(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame))
        if type(frame) is str:
            p = PyUnicode_AsUTF8AndSize(frame, &n)
            return self.decode_c(p, n)
        if type(frame) is bytearray:
            return self.decode_c(PyByteArray_AS_STRING(frame), PyByteArray_GET_SIZE(frame))
        if isinstance(frame, str):
            return self.decode(str(frame))
        PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        try:
            return self.decode_c(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def decode_lines(self, buf, fmt="collector", out=None, *, bint final=False, symbol=None,
                     Py_ssize_t line_offset=0, Py_ssize_t max_errors=10):
        """Decode a buffer of ``<ns> <json>`` lines (the collector format) straight
        into hftcore.EVENT_DTYPE records, exactly as ``decode(json).to_events(ns)``
        would give them, without creating message objects.

        Returns ``(events, stats)``. ``events`` is a new array, or a view of the
        start of ``out`` (an EVENT_DTYPE array to fill; decoding stops before the
        first line whose records do not fit). Malformed lines are counted and
        skipped, never raised: ``stats["errors"]`` holds ``(line number, message)``
        of the first ``max_errors`` (line numbers count from ``line_offset + 1``).
        A last line without its newline is left for the next call unless
        ``final``; ``stats["consumed"]`` is the number of bytes used, so the
        caller carries ``buf[consumed:]`` over. ``symbol`` (e.g. "BTCUSDT")
        keeps only the lines of that symbol (by the combined-stream name, else
        the "s" field; lines naming no symbol, such as REST snapshots, are
        kept) and counts the others in ``stats["skipped"]``.

        The scan runs without the GIL (other threads -- zlib, a Parquet writer
        -- keep going): lines are decoded in C into the record buffer, format
        errors collected in a C buffer; a line the C path does not accept (a
        malformed frame, an escaped "e") is decoded with the GIL by the
        message path, which gives its error. Do not use one decoder from two
        threads at once (its level scratch is shared).
        """
        if fmt != "collector":
            raise ValueError(f'unknown line format {fmt!r} (only "collector": <ns> <json>)')
        cdef Py_buffer view
        cdef _EvBuf eb
        cdef cnp.ndarray arr
        cdef cnp.ndarray res
        cdef bytes sym_b = None
        if symbol:
            sym_b = symbol.upper().encode("ascii") if isinstance(symbol, str) else bytes(symbol).upper()
        memset(&eb, 0, sizeof(_EvBuf))
        if out is not None:
            arr = out
            if arr.dtype != EVENT_DTYPE or not arr.flags.c_contiguous or not arr.flags.writeable:
                raise ValueError("out must be a writeable, C-contiguous hftcore.EVENT_DTYPE array")
            eb.ev = <hft_event_t*>cnp.PyArray_DATA(arr)
            eb.cap = arr.shape[0]
            eb.fixed = True
        PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
        try:
            stats = _decode_lines(self, <const char*>view.buf, view.len, &eb, final, sym_b,
                                  line_offset, max_errors)
            if out is not None:
                res = out[:eb.n]
            else:
                res = _events(eb.n)
                if eb.n:
                    memcpy(cnp.PyArray_DATA(res), eb.ev, <size_t>eb.n * sizeof(hft_event_t))
        finally:
            PyBuffer_Release(&view)
            if not eb.fixed:
                free(eb.ev)
        return res, stats

    # -------------------------------------------------------------- decode
    cdef object decode_c(self, const char* data, Py_ssize_t n):
        cdef Ctx c
        cdef Obj top
        cdef Obj inner
        cdef Obj* o
        cdef Fld* fe
        cdef object stream = None
        c.base = data
        c.end = data + n
        c.px_scale = &self._px_scale
        c.qty_scale = &self._qty_scale
        c.scr = &self._scr
        c.depth = 0
        c.has_inner = False
        c.err = E_NONE
        c.err_field = -1
        c.err_level = -1
        self._scr.n[0] = 0
        self._scr.n[1] = 0
        inner.present = 0
        if not _scan(&c, &top, &inner):
            return _error(self, &c)
        o = &top
        if (c.has_inner and (top.present >> F_stream) & 1 and top.f[F_stream].tag == T_STR
                and top.f[F_data].tag == T_OBJ):
            o = &inner
            stream = _stream(self, &top.f[F_stream])
        if (o.present >> F_e) & 1:
            fe = &o.f[F_e]
            if fe.tag != T_STR:
                _field_error(self, &c, o, F_e, "expected a string, got " + _type_name(fe.tag))
            if not fe.esc:
                if fe.n == 11 and memcmp(fe.s, "depthUpdate", 11) == 0:
                    return _depth(self, &c, o, stream)
                if fe.n == 5 and memcmp(fe.s, "trade", 5) == 0:
                    return _trade(self, &c, o, stream, False)
                if fe.n == 8 and memcmp(fe.s, "aggTrade", 8) == 0:
                    return _trade(self, &c, o, stream, True)
                if fe.n == 10 and memcmp(fe.s, "bookTicker", 10) == 0:
                    return _bbo(self, &c, o, stream)
                et = PyUnicode_DecodeUTF8(fe.s, fe.n, "replace")
            else:
                et = _span_text(fe.s, fe.n, True)
                if et == "depthUpdate":
                    return _depth(self, &c, o, stream)
                if et == "trade":
                    return _trade(self, &c, o, stream, False)
                if et == "aggTrade":
                    return _trade(self, &c, o, stream, True)
                if et == "bookTicker":
                    return _bbo(self, &c, o, stream)
            return _unknown(self, &c, o, stream, et, False)
        if (o.present >> F_lastUpdateId) & 1 and (o.present & ((1 << F_bids) | (1 << F_asks))):
            return _snapshot(self, &c, o, stream)
        if (o.present & ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))
                == ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))):
            return _bbo(self, &c, o, stream)
        return _unknown(self, &c, o, stream, "", True)


# ----------------------------------------------------------------- decoder helpers
# -------------------------------------------------------------- errors
cdef object _error(BinanceDecoder self, Ctx* c):
    cdef Py_ssize_t off = c.err_at - c.base
    field = FIELD_NAMES[c.err_field] if c.err_field >= 0 else None
    if c.err == E_NOMEM:
        raise MemoryError("decoding a Binance frame")
    if c.err == E_DECIMAL:
        val = _span_text(c.err_vs, c.err_vn, False)
        rc = c.err_dec
        if c.err_level >= 0 and c.err_field in (F_b, F_a, F_bids, F_asks):
            what = f'field "{field}" level {c.err_level} {"price" if c.err_which == 0 else "qty"}'
        else:
            what = f'field "{field}"'
        unit = "tick" if c.err_which == 0 else "lot"
        size = self.tick_size if c.err_which == 0 else self.lot_size
        if rc == HFT_DEC_NOT_MULTIPLE:
            cause = f"not a whole multiple of {unit} {size}"
        elif rc == HFT_DEC_OVERFLOW:
            cause = f"out of the int64 range in {unit}s of {size}"
        else:
            cause = hft_dec_strerror(rc).decode("ascii")
        msg = f'{what} "{val}": {cause}'
    else:
        msg = c.err_msg.decode("utf-8")
        if c.err == E_LEVEL or (c.err == E_TRUNC and c.err_field in (F_b, F_a, F_bids, F_asks)
                                and c.err_level >= 0):
            msg = f'field "{field}" level {c.err_level}: {msg}'
        elif field is not None:
            msg = f'field "{field}": {msg}'
    raise DecodeError(f"{msg} (at byte {off})", off, field)

cdef object _field_error(BinanceDecoder self, Ctx* c, Obj* o, int fid, str msg):
    cdef const char* at = o.f[fid].v if (o.present >> fid) & 1 else o.start
    cdef Py_ssize_t off = at - c.base
    field = FIELD_NAMES[fid]
    raise DecodeError(f'field "{field}": {msg} (at byte {off})', off, field)

cdef inline bint _has(BinanceDecoder self, Obj* o, int fid):
    return (o.present >> fid) & 1

cdef int64_t _int(BinanceDecoder self, Ctx* c, Obj* o, int fid, const char* kind) except? -1:
    cdef Fld* f = &o.f[fid]
    if not (o.present >> fid) & 1:
        _field_error(self, c, o, fid, f"missing required field for {kind.decode()}")
    if f.tag == T_INT:
        return f.i
    if f.tag == T_NUM:
        _field_error(self, c, o, fid, "expected an int64 integer, got " +
                          _span_text(f.v, _num_len(f.v, c.end), False))
    _field_error(self, c, o, fid, "expected an integer, got " + _type_name(f.tag))

cdef int64_t _time(BinanceDecoder self, Ctx* c, Obj* o, int fid, const char* kind) except? -1:
    cdef int64_t v = _int(self, c, o, fid, kind)
    cdef int64_t m = self._time_mult
    if v > INT64_MAX // m or v < INT64_MIN // m:
        _field_error(self, c, o, fid, f"time {v} is out of the int64 nanosecond range")
    return v * m

cdef int64_t _opt_time(BinanceDecoder self, Ctx* c, Obj* o, int fid, const char* kind) except? -1:
    if not (o.present >> fid) & 1:
        return 0
    return _time(self, c, o, fid, kind)

cdef int64_t _units(BinanceDecoder self, Ctx* c, Obj* o, int fid, bint is_px, const char* kind) except? -1:
    cdef Fld* f = &o.f[fid]
    cdef int64_t out = 0
    cdef int rc
    if not (o.present >> fid) & 1:
        _field_error(self, c, o, fid, f"missing required field for {kind.decode()}")
    if f.tag != T_STR:
        _field_error(self, c, o, fid, "expected a decimal string, got " + _type_name(f.tag))
    rc = hft_parse_units(f.s, <size_t>f.n, &self._px_scale if is_px else &self._qty_scale, &out)
    if rc != HFT_DEC_OK:
        c.err = E_DECIMAL
        c.err_at = f.v
        c.err_field = fid
        c.err_dec = rc
        c.err_level = -1
        c.err_which = 0 if is_px else 1
        c.err_vs = f.s
        c.err_vn = f.n
        _error(self, c)
    return out

cdef bint _bool(BinanceDecoder self, Ctx* c, Obj* o, int fid, const char* kind) except -1:
    cdef Fld* f = &o.f[fid]
    if not (o.present >> fid) & 1:
        _field_error(self, c, o, fid, f"missing required field for {kind.decode()}")
    if f.tag == T_TRUE:
        return 1
    if f.tag == T_FALSE:
        return 0
    _field_error(self, c, o, fid, "expected a boolean, got " + _type_name(f.tag))

cdef object _opt_str(BinanceDecoder self, Ctx* c, Obj* o, int fid):
    cdef Fld* f = &o.f[fid]
    if not (o.present >> fid) & 1:
        return None
    if f.tag != T_STR:
        _field_error(self, c, o, fid, "expected a string, got " + _type_name(f.tag))
    return _span_text(f.s, f.n, f.esc)

cdef object _symbol(BinanceDecoder self, Ctx* c, Obj* o, bint strict):
    cdef Fld* f = &o.f[F_s]
    cdef bytes b
    if not (o.present >> F_s) & 1:
        return None
    if f.tag != T_STR:
        if strict:
            _field_error(self, c, o, F_s, "expected a string, got " + _type_name(f.tag))
        return None
    if f.esc:
        return _span_text(f.s, f.n, True)
    b = self._sym_b
    if b is not None and PyBytes_GET_SIZE(b) == f.n and memcmp(PyBytes_AS_STRING(b), f.s, <size_t>f.n) == 0:
        return self._sym_s
    self._sym_b = PyBytes_FromStringAndSize(f.s, f.n)
    self._sym_s = PyUnicode_DecodeUTF8(f.s, f.n, "replace")
    return self._sym_s

cdef object _stream(BinanceDecoder self, Fld* f):
    cdef bytes b
    if f.esc:
        return _span_text(f.s, f.n, True)
    b = self._stream_b
    if b is not None and PyBytes_GET_SIZE(b) == f.n and memcmp(PyBytes_AS_STRING(b), f.s, <size_t>f.n) == 0:
        return self._stream_s
    self._stream_b = PyBytes_FromStringAndSize(f.s, f.n)
    self._stream_s = PyUnicode_DecodeUTF8(f.s, f.n, "replace")
    return self._stream_s

cdef tuple _keys(BinanceDecoder self, Ctx* c, Obj* o):
    """Top-level keys of the (already validated) object at o.start."""
    cdef const char* p = _ws(o.start + 1, c.end)
    cdef const char* q
    cdef bint esc
    keys = []
    if p < c.end and p[0] == c'}':
        return ()
    while p != NULL and p < c.end and p[0] == c'"':
        esc = False
        q = _str_end(c, p + 1, &esc)
        if q == NULL:
            break
        keys.append(_span_text(p + 1, q - p - 1, esc))
        p = _ws(q + 1, c.end)
        p = _ws(p + 1, c.end)   # ':'
        p = _skip_value(c, p)
        if p == NULL:
            break
        p = _ws(p, c.end)
        if p >= c.end or p[0] != c',':
            break
        p = _ws(p + 1, c.end)
    return tuple(dict.fromkeys(keys))

cdef object _unknown(BinanceDecoder self, Ctx* c, Obj* o, object stream, str event_type, bint keys):
    cdef UnknownEvent m = UnknownEvent.__new__(UnknownEvent)
    m.stream = stream
    m.symbol = _symbol(self, c, o, False)
    m.event_type = event_type
    m.payload_keys = _keys(self, c, o) if keys else ()
    return m

cdef int _levels_field(BinanceDecoder self, Ctx* c, Obj* o, int fid, int side, const char* kind) except -1:
    cdef Fld* f = &o.f[fid]
    if not (o.present >> fid) & 1:
        _field_error(self, c, o, fid, f"missing required field for {kind.decode()}")
    if f.tag != T_ARR:
        _field_error(self, c, o, fid, "expected an array of [price, qty] levels, got " +
                          _type_name(f.tag))
    return 0

cdef int _fill(BinanceDecoder self, _Levels m, Obj* o) except -1:
    cdef Py_ssize_t nb = o.lv_n[0], na = o.lv_n[1]
    cdef Py_ssize_t sb = o.lv_start[0], sa = o.lv_start[1]
    cdef int64_t* blk
    cdef _Scratch* s = &self._scr
    m.n_bids = nb
    m.n_asks = na
    if nb + na == 0:
        return 0
    blk = <int64_t*>malloc(<size_t>(2 * (nb + na)) * sizeof(int64_t))
    if blk == NULL:
        raise MemoryError()
    m._block = blk
    m.bid_px = blk
    m.bid_qty = blk + nb
    m.ask_px = blk + 2 * nb
    m.ask_qty = blk + 2 * nb + na
    if nb:
        memcpy(m.bid_px, s.px[0] + sb, <size_t>nb * sizeof(int64_t))
        memcpy(m.bid_qty, s.qty[0] + sb, <size_t>nb * sizeof(int64_t))
    if na:
        memcpy(m.ask_px, s.px[1] + sa, <size_t>na * sizeof(int64_t))
        memcpy(m.ask_qty, s.qty[1] + sa, <size_t>na * sizeof(int64_t))
    return 0

cdef object _depth(BinanceDecoder self, Ctx* c, Obj* o, object stream):
    cdef const char* kind = "depthUpdate"
    cdef int64_t U = _int(self, c, o, F_U, kind)
    cdef int64_t u = _int(self, c, o, F_u, kind)
    cdef int64_t pu = _int(self, c, o, F_pu, kind) if (o.present >> F_pu) & 1 else HFT_NO_ID
    cdef int64_t E = _time(self, c, o, F_E, kind)
    cdef int64_t T = _opt_time(self, c, o, F_T, kind)
    _levels_field(self, c, o, F_b, 0, kind)
    _levels_field(self, c, o, F_a, 1, kind)
    sym = _symbol(self, c, o, True)
    cdef DepthUpdate m = DepthUpdate.__new__(DepthUpdate)
    _fill(self, m, o)
    m.stream = stream
    m.symbol = sym
    m.first_id = U
    m.last_id = u
    m.prev_id = pu
    m.event_time_ns = E
    m.transaction_time_ns = T
    return m

cdef object _snapshot(BinanceDecoder self, Ctx* c, Obj* o, object stream):
    cdef const char* kind = "a depth snapshot"
    cdef int64_t L = _int(self, c, o, F_lastUpdateId, kind)
    cdef int64_t E = _opt_time(self, c, o, F_E, kind)
    cdef int64_t T = _opt_time(self, c, o, F_T, kind)
    _levels_field(self, c, o, F_bids, 0, kind)
    _levels_field(self, c, o, F_asks, 1, kind)
    sym = _symbol(self, c, o, True)
    cdef DepthSnapshot m = DepthSnapshot.__new__(DepthSnapshot)
    _fill(self, m, o)
    m.stream = stream
    m.symbol = sym
    m.last_update_id = L
    m.event_time_ns = E
    m.transaction_time_ns = T
    return m

cdef object _trade(BinanceDecoder self, Ctx* c, Obj* o, object stream, bint agg):
    cdef const char* kind = "aggTrade" if agg else "trade"
    cdef int64_t tid = _int(self, c, o, F_a if agg else F_t, kind)
    cdef int64_t first = _int(self, c, o, F_f, kind) if agg else tid
    cdef int64_t last = _int(self, c, o, F_l, kind) if agg else tid
    cdef int64_t px = _units(self, c, o, F_p, True, kind)
    cdef int64_t qty = _units(self, c, o, F_q, False, kind)
    cdef int64_t T = _time(self, c, o, F_T, kind)
    cdef int64_t E = _time(self, c, o, F_E, kind)
    cdef bint maker = _bool(self, c, o, F_m, kind)
    X = _opt_str(self, c, o, F_X)
    sym = _symbol(self, c, o, True)
    cdef Trade m = Trade.__new__(Trade)
    m.stream = stream
    m.symbol = sym
    m.is_aggregate = agg
    m.trade_id = tid
    m.first_trade_id = first
    m.last_trade_id = last
    m.price = px
    m.qty = qty
    m.trade_time_ns = T
    m.event_time_ns = E
    m.buyer_is_maker = maker
    m.side = HFT_BID if maker else HFT_ASK
    m.trade_type = X
    return m

cdef object _bbo(BinanceDecoder self, Ctx* c, Obj* o, object stream):
    cdef const char* kind = "bookTicker"
    cdef int64_t u = _int(self, c, o, F_u, kind)
    cdef int64_t bp = _units(self, c, o, F_b, True, kind)
    cdef int64_t bq = _units(self, c, o, F_B, False, kind)
    cdef int64_t ap = _units(self, c, o, F_a, True, kind)
    cdef int64_t aq = _units(self, c, o, F_A, False, kind)
    cdef int64_t E = _opt_time(self, c, o, F_E, kind)
    cdef int64_t T = _opt_time(self, c, o, F_T, kind)
    sym = _symbol(self, c, o, True)
    cdef BookTicker m = BookTicker.__new__(BookTicker)
    m.stream = stream
    m.symbol = sym
    m.update_id = u
    m.bid_px = bp
    m.bid_qty = bq
    m.ask_px = ap
    m.ask_qty = aq
    m.event_time_ns = E
    m.transaction_time_ns = T
    return m


cdef Py_ssize_t _num_len(const char* p, const char* end) noexcept nogil:
    cdef const char* q = p
    while q < end and (c'0' <= q[0] <= c'9' or q[0] == c'-' or q[0] == c'+' or q[0] == c'.'
                       or q[0] == c'e' or q[0] == c'E'):
        q += 1
    return q - p



# ----------------------------------------------------------------- batch decoding
# decode_lines: lines -> event records without message objects. The emitters
# below mirror _depth/_snapshot/_trade/_bbo + to_events field by field (same
# validation through the same helpers, same records); tests/test_decode_lines.py
# checks them against decode(...).to_events(...) on real captures and fuzz.

cdef struct _EvBuf:
    hft_event_t* ev
    Py_ssize_t n
    Py_ssize_t cap
    bint fixed          # caller's array: never grown


cdef bint _reserve(_EvBuf* b, Py_ssize_t k) noexcept nogil:
    """Room for k more records; False when a fixed buffer is full or out of memory."""
    cdef Py_ssize_t cap
    cdef hft_event_t* ev
    if b.n + k <= b.cap:
        return True
    if b.fixed:
        return False
    cap = b.cap * 2 if b.cap else 4096
    while cap < b.n + k:
        cap *= 2
    ev = <hft_event_t*>realloc(b.ev, <size_t>cap * sizeof(hft_event_t))
    if ev == NULL:
        return False
    b.ev = ev
    b.cap = cap
    return True


cdef inline Py_ssize_t _level_records(BinanceDecoder self, Obj* o, int64_t local_ts, int64_t exch_ts,
                                      int kind, int64_t first_id, int64_t last_id, int64_t prev_id,
                                      _EvBuf* b) except -1:
    cdef Py_ssize_t nb = o.lv_n[0], na = o.lv_n[1], n = nb + na
    cdef const int64_t* bpx = self._scr.px[0] + o.lv_start[0]
    cdef const int64_t* bqty = self._scr.qty[0] + o.lv_start[0]
    cdef const int64_t* apx = self._scr.px[1] + o.lv_start[1]
    cdef const int64_t* aqty = self._scr.qty[1] + o.lv_start[1]
    if not _reserve(b, n if n else 1):
        if b.fixed:
            return -2
        raise MemoryError()
    n = hft_message_events(b.ev + b.n, local_ts, exch_ts, kind, first_id, last_id, prev_id,
                           bpx, bqty, nb, apx, aqty, na)
    b.n += n
    return n


cdef int _check_symbol(BinanceDecoder self, Ctx* c, Obj* o) except -1:
    # what _symbol(..., strict=True) validates
    if (o.present >> F_s) & 1 and o.f[F_s].tag != T_STR:
        _field_error(self, c, o, F_s, "expected a string, got " + _type_name(o.f[F_s].tag))
    return 0


cdef Py_ssize_t _emit_depth(BinanceDecoder self, Ctx* c, Obj* o, int64_t ts, _EvBuf* b) except -1:
    cdef const char* kind = "depthUpdate"
    cdef int64_t U = _int(self, c, o, F_U, kind)
    cdef int64_t u = _int(self, c, o, F_u, kind)
    cdef int64_t pu = _int(self, c, o, F_pu, kind) if (o.present >> F_pu) & 1 else HFT_NO_ID
    cdef int64_t E = _time(self, c, o, F_E, kind)
    _opt_time(self, c, o, F_T, kind)
    _levels_field(self, c, o, F_b, 0, kind)
    _levels_field(self, c, o, F_a, 1, kind)
    _check_symbol(self, c, o)
    return _level_records(self, o, ts, E, HFT_EV_DEPTH, U, u, pu, b)


cdef Py_ssize_t _emit_snapshot(BinanceDecoder self, Ctx* c, Obj* o, int64_t ts, _EvBuf* b) except -1:
    cdef const char* kind = "a depth snapshot"
    cdef int64_t L = _int(self, c, o, F_lastUpdateId, kind)
    cdef int64_t E = _opt_time(self, c, o, F_E, kind)
    cdef int64_t T = _opt_time(self, c, o, F_T, kind)
    _levels_field(self, c, o, F_bids, 0, kind)
    _levels_field(self, c, o, F_asks, 1, kind)
    _check_symbol(self, c, o)
    return _level_records(self, o, ts, E if E else T, HFT_EV_SNAPSHOT, L, L, HFT_NO_ID, b)


cdef Py_ssize_t _emit_trade(BinanceDecoder self, Ctx* c, Obj* o, bint agg, int64_t ts,
                            _EvBuf* b) except -1:
    cdef const char* kind = "aggTrade" if agg else "trade"
    cdef int64_t tid = _int(self, c, o, F_a if agg else F_t, kind)
    cdef int64_t first = _int(self, c, o, F_f, kind) if agg else tid
    cdef int64_t last = _int(self, c, o, F_l, kind) if agg else tid
    cdef int64_t px = _units(self, c, o, F_p, True, kind)
    cdef int64_t qty = _units(self, c, o, F_q, False, kind)
    cdef int64_t T = _time(self, c, o, F_T, kind)
    _time(self, c, o, F_E, kind)
    cdef bint maker = _bool(self, c, o, F_m, kind)
    if (o.present >> F_X) & 1 and o.f[F_X].tag != T_STR:
        _field_error(self, c, o, F_X, "expected a string, got " + _type_name(o.f[F_X].tag))
    _check_symbol(self, c, o)
    if not _reserve(b, 1):
        if b.fixed:
            return -2
        raise MemoryError()
    hft_event_set(b.ev + b.n, ts, T, px, qty, first, last, HFT_NO_ID, HFT_EV_TRADE,
        HFT_BID if maker else HFT_ASK, HFT_EVF_BEGIN | HFT_EVF_END)
    b.n += 1
    return 1


cdef Py_ssize_t _emit_bbo(BinanceDecoder self, Ctx* c, Obj* o, int64_t ts, _EvBuf* b) except -1:
    cdef const char* kind = "bookTicker"
    cdef int64_t u = _int(self, c, o, F_u, kind)
    cdef int64_t bp = _units(self, c, o, F_b, True, kind)
    cdef int64_t bq = _units(self, c, o, F_B, False, kind)
    cdef int64_t ap = _units(self, c, o, F_a, True, kind)
    cdef int64_t aq = _units(self, c, o, F_A, False, kind)
    cdef int64_t E = _opt_time(self, c, o, F_E, kind)
    cdef int64_t T = _opt_time(self, c, o, F_T, kind)
    cdef int64_t xt = E if E else T
    _check_symbol(self, c, o)
    if not _reserve(b, 2):
        if b.fixed:
            return -2
        raise MemoryError()
    hft_event_set(b.ev + b.n, ts, xt, bp, bq, u, u, HFT_NO_ID, HFT_EV_BBO, HFT_BID, HFT_EVF_BEGIN)
    hft_event_set(b.ev + b.n + 1, ts, xt, ap, aq, u, u, HFT_NO_ID, HFT_EV_BBO, HFT_ASK, HFT_EVF_END)
    b.n += 2
    return 2


cdef enum:
    K_DEPTH = 0
    K_SNAPSHOT
    K_TRADE
    K_BBO
    K_OTHER
    K_COUNT


cdef Py_ssize_t _emit_frame(BinanceDecoder self, const char* data, Py_ssize_t n, int64_t ts,
                            _EvBuf* b, const char* sym, Py_ssize_t sym_n, int* kind) except -1:
    """One frame -> records appended to b (the dispatch of decode_c). Returns
    the number of records, -2 when a fixed buffer is full, -3 when the frame is
    of another symbol; raises DecodeError when malformed."""
    cdef Ctx c
    cdef Obj top
    cdef Obj inner
    cdef Obj* o
    cdef Fld* fe
    cdef Fld* fs
    cdef Py_ssize_t i, k
    c.base = data
    c.end = data + n
    c.px_scale = &self._px_scale
    c.qty_scale = &self._qty_scale
    c.scr = &self._scr
    c.depth = 0
    c.has_inner = False
    c.err = E_NONE
    c.err_field = -1
    c.err_level = -1
    self._scr.n[0] = 0
    self._scr.n[1] = 0
    inner.present = 0
    if not _scan(&c, &top, &inner):
        _error(self, &c)
    o = &top
    if (c.has_inner and (top.present >> F_stream) & 1 and top.f[F_stream].tag == T_STR
            and top.f[F_data].tag == T_OBJ):
        o = &inner
    if sym != NULL:
        # the combined-stream name "<sym>@...", else "s"
        fs = NULL
        if o == &inner:
            fs = &top.f[F_stream]
            k = 0
            while k < fs.n and fs.s[k] != c'@':
                k += 1
        elif (o.present >> F_s) & 1 and o.f[F_s].tag == T_STR:
            fs = &o.f[F_s]
            k = fs.n
        if fs != NULL:
            if k != sym_n:
                return -3
            for i in range(k):
                if (fs.s[i] & ~0x20) != (sym[i] & ~0x20):
                    return -3
    if (o.present >> F_e) & 1:
        fe = &o.f[F_e]
        if fe.tag != T_STR:
            _field_error(self, &c, o, F_e, "expected a string, got " + _type_name(fe.tag))
        if not fe.esc:
            if fe.n == 11 and memcmp(fe.s, "depthUpdate", 11) == 0:
                kind[0] = K_DEPTH
                return _emit_depth(self, &c, o, ts, b)
            if fe.n == 5 and memcmp(fe.s, "trade", 5) == 0:
                kind[0] = K_TRADE
                return _emit_trade(self, &c, o, False, ts, b)
            if fe.n == 8 and memcmp(fe.s, "aggTrade", 8) == 0:
                kind[0] = K_TRADE
                return _emit_trade(self, &c, o, True, ts, b)
            if fe.n == 10 and memcmp(fe.s, "bookTicker", 10) == 0:
                kind[0] = K_BBO
                return _emit_bbo(self, &c, o, ts, b)
        else:
            et = _span_text(fe.s, fe.n, True)
            if et == "depthUpdate":
                kind[0] = K_DEPTH
                return _emit_depth(self, &c, o, ts, b)
            if et == "trade" or et == "aggTrade":
                kind[0] = K_TRADE
                return _emit_trade(self, &c, o, et == "aggTrade", ts, b)
            if et == "bookTicker":
                kind[0] = K_BBO
                return _emit_bbo(self, &c, o, ts, b)
        kind[0] = K_OTHER
        return 0
    if (o.present >> F_lastUpdateId) & 1 and (o.present & ((1 << F_bids) | (1 << F_asks))):
        kind[0] = K_SNAPSHOT
        return _emit_snapshot(self, &c, o, ts, b)
    if (o.present & ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))
            == ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))):
        kind[0] = K_BBO
        return _emit_bbo(self, &c, o, ts, b)
    kind[0] = K_OTHER
    return 0


# ---------------------------------------------------------- the GIL-free fast path
# decode_lines scans lines and emits records without the GIL through the
# helpers below: the same checks as the emitters above, answering "ok" or "let
# the slow path decide". A line the fast path does not accept (any malformed
# frame, an escaped "e") stops the scan; it is decoded with the GIL by
# _emit_frame, which raises the DecodeError with its message, and the scan
# resumes. So the records and the errors are the slow path's, byte for byte.

cdef struct _DecCfg:
    _Scratch* scr
    const hft_scale_t* px_scale
    const hft_scale_t* qty_scale
    int64_t time_mult
    int64_t time_max        # INT64_MAX // time_mult
    int64_t time_min        # INT64_MIN // time_mult (floor)

cdef enum:
    R_FULL = -2             # the caller's fixed array is full
    R_OTHER_SYMBOL = -3
    R_SLOW = -4             # decode this line with the GIL
    R_NOMEM = -5


cdef inline bint _f_int(Obj* o, int fid, int64_t* out) noexcept nogil:
    if not (o.present >> fid) & 1 or o.f[fid].tag != T_INT:
        return False
    out[0] = o.f[fid].i
    return True

cdef inline bint _f_time(_DecCfg* d, Obj* o, int fid, int64_t* out) noexcept nogil:
    cdef int64_t v
    if not _f_int(o, fid, &v) or v > d.time_max or v < d.time_min:
        return False
    out[0] = v * d.time_mult
    return True

cdef inline bint _f_opt_time(_DecCfg* d, Obj* o, int fid, int64_t* out) noexcept nogil:
    if not (o.present >> fid) & 1:
        out[0] = 0
        return True
    return _f_time(d, o, fid, out)

cdef inline bint _f_units(Obj* o, int fid, const hft_scale_t* scale, int64_t* out) noexcept nogil:
    cdef Fld* f = &o.f[fid]
    if not (o.present >> fid) & 1 or f.tag != T_STR:
        return False
    return hft_parse_units(f.s, <size_t>f.n, scale, out) == HFT_DEC_OK

cdef inline bint _f_bool(Obj* o, int fid, bint* out) noexcept nogil:
    if not (o.present >> fid) & 1:
        return False
    if o.f[fid].tag == T_TRUE:
        out[0] = True
        return True
    if o.f[fid].tag == T_FALSE:
        out[0] = False
        return True
    return False

cdef inline bint _f_array(Obj* o, int fid) noexcept nogil:
    return (o.present >> fid) & 1 and o.f[fid].tag == T_ARR

cdef inline bint _f_opt_str(Obj* o, int fid) noexcept nogil:
    return not (o.present >> fid) & 1 or o.f[fid].tag == T_STR


cdef Py_ssize_t _records_c(_DecCfg* d, Obj* o, int64_t local_ts, int64_t exch_ts, int kind,
                           int64_t first_id, int64_t last_id, int64_t prev_id, _EvBuf* b) noexcept nogil:
    """_level_records without the GIL."""
    cdef Py_ssize_t nb = o.lv_n[0], na = o.lv_n[1], n = nb + na
    cdef const int64_t* bpx = d.scr.px[0] + o.lv_start[0]
    cdef const int64_t* bqty = d.scr.qty[0] + o.lv_start[0]
    cdef const int64_t* apx = d.scr.px[1] + o.lv_start[1]
    cdef const int64_t* aqty = d.scr.qty[1] + o.lv_start[1]
    if not _reserve(b, n if n else 1):
        return R_FULL if b.fixed else R_NOMEM
    n = hft_message_events(b.ev + b.n, local_ts, exch_ts, kind, first_id, last_id, prev_id,
                           bpx, bqty, nb, apx, aqty, na)
    b.n += n
    return n


cdef Py_ssize_t _emit_frame_c(_DecCfg* d, const char* data, Py_ssize_t n, int64_t ts, _EvBuf* b,
                              const char* sym, Py_ssize_t sym_n, int* kind) noexcept nogil:
    """_emit_frame without the GIL: records appended, or R_* (R_SLOW when the
    frame is not accepted here: the slow path decides and reports)."""
    cdef Ctx c
    cdef Obj top
    cdef Obj inner
    cdef Obj* o
    cdef Fld* fe
    cdef Fld* fs
    cdef Py_ssize_t i, k
    cdef int64_t U, u, pu, E, T, L, tid, first, last, px, qty, bp, bq, ap, aq
    cdef bint maker, agg
    c.base = data
    c.end = data + n
    c.px_scale = d.px_scale
    c.qty_scale = d.qty_scale
    c.scr = d.scr
    c.depth = 0
    c.has_inner = False
    c.err = E_NONE
    c.err_field = -1
    c.err_level = -1
    d.scr.n[0] = 0
    d.scr.n[1] = 0
    inner.present = 0
    if not _scan(&c, &top, &inner):
        return R_SLOW
    o = &top
    if (c.has_inner and (top.present >> F_stream) & 1 and top.f[F_stream].tag == T_STR
            and top.f[F_data].tag == T_OBJ):
        o = &inner
    if sym != NULL:
        fs = NULL
        if o == &inner:
            fs = &top.f[F_stream]
            k = 0
            while k < fs.n and fs.s[k] != c'@':
                k += 1
        elif (o.present >> F_s) & 1 and o.f[F_s].tag == T_STR:
            fs = &o.f[F_s]
            k = fs.n
        if fs != NULL:
            if k != sym_n:
                return R_OTHER_SYMBOL
            for i in range(k):
                if (fs.s[i] & ~0x20) != (sym[i] & ~0x20):
                    return R_OTHER_SYMBOL
    if (o.present >> F_e) & 1:
        fe = &o.f[F_e]
        if fe.tag != T_STR or fe.esc:
            return R_SLOW
        if fe.n == 11 and memcmp(fe.s, "depthUpdate", 11) == 0:
            kind[0] = K_DEPTH
            pu = HFT_NO_ID
            if not (_f_int(o, F_U, &U) and _f_int(o, F_u, &u)
                    and (not (o.present >> F_pu) & 1 or _f_int(o, F_pu, &pu))
                    and _f_time(d, o, F_E, &E) and _f_opt_time(d, o, F_T, &T)
                    and _f_array(o, F_b) and _f_array(o, F_a) and _f_opt_str(o, F_s)):
                return R_SLOW
            return _records_c(d, o, ts, E, HFT_EV_DEPTH, U, u, pu, b)
        agg = fe.n == 8 and memcmp(fe.s, "aggTrade", 8) == 0
        if agg or (fe.n == 5 and memcmp(fe.s, "trade", 5) == 0):
            kind[0] = K_TRADE
            if not _f_int(o, F_a if agg else F_t, &tid):
                return R_SLOW
            first = last = tid
            if agg and not (_f_int(o, F_f, &first) and _f_int(o, F_l, &last)):
                return R_SLOW
            if not (_f_units(o, F_p, d.px_scale, &px) and _f_units(o, F_q, d.qty_scale, &qty)
                    and _f_time(d, o, F_T, &T) and _f_time(d, o, F_E, &E) and _f_bool(o, F_m, &maker)
                    and _f_opt_str(o, F_X) and _f_opt_str(o, F_s)):
                return R_SLOW
            if not _reserve(b, 1):
                return R_FULL if b.fixed else R_NOMEM
            hft_event_set(b.ev + b.n, ts, T, px, qty, first, last, HFT_NO_ID, HFT_EV_TRADE,
                HFT_BID if maker else HFT_ASK, HFT_EVF_BEGIN | HFT_EVF_END)
            b.n += 1
            return 1
        if fe.n == 10 and memcmp(fe.s, "bookTicker", 10) == 0:
            kind[0] = K_BBO
            return _bbo_c(d, o, ts, b)
        kind[0] = K_OTHER
        return 0
    if (o.present >> F_lastUpdateId) & 1 and (o.present & ((1 << F_bids) | (1 << F_asks))):
        kind[0] = K_SNAPSHOT
        if not (_f_int(o, F_lastUpdateId, &L) and _f_opt_time(d, o, F_E, &E) and _f_opt_time(d, o, F_T, &T)
                and _f_array(o, F_bids) and _f_array(o, F_asks) and _f_opt_str(o, F_s)):
            return R_SLOW
        return _records_c(d, o, ts, E if E else T, HFT_EV_SNAPSHOT, L, L, HFT_NO_ID, b)
    if (o.present & ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))
            == ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))):
        kind[0] = K_BBO
        return _bbo_c(d, o, ts, b)
    kind[0] = K_OTHER
    return 0


cdef Py_ssize_t _bbo_c(_DecCfg* d, Obj* o, int64_t ts, _EvBuf* b) noexcept nogil:
    cdef int64_t u, bp, bq, ap, aq, E, T, xt
    if not (_f_int(o, F_u, &u) and _f_units(o, F_b, d.px_scale, &bp) and _f_units(o, F_B, d.qty_scale, &bq)
            and _f_units(o, F_a, d.px_scale, &ap) and _f_units(o, F_A, d.qty_scale, &aq)
            and _f_opt_time(d, o, F_E, &E) and _f_opt_time(d, o, F_T, &T) and _f_opt_str(o, F_s)):
        return R_SLOW
    xt = E if E else T
    if not _reserve(b, 2):
        return R_FULL if b.fixed else R_NOMEM
    hft_event_set(b.ev + b.n, ts, xt, bp, bq, u, u, HFT_NO_ID, HFT_EV_BBO, HFT_BID, HFT_EVF_BEGIN)
    hft_event_set(b.ev + b.n + 1, ts, xt, ap, aq, u, u, HFT_NO_ID, HFT_EV_BBO, HFT_ASK, HFT_EVF_END)
    b.n += 2
    return 2


cdef enum:
    S_DONE = 0              # end of the buffer (or an unfinished last line)
    S_SLOW = 1              # the line at .p needs the slow path (frame/fend/ts/eol set)
    S_FULL = 2
    S_NOMEM = 3

cdef struct _LineScan:
    const char* p           # next line
    Py_ssize_t lineno
    Py_ssize_t messages
    Py_ssize_t malformed
    Py_ssize_t skipped
    Py_ssize_t empty
    Py_ssize_t counts[<int>K_COUNT]
    int stop
    const char* frame       # S_SLOW: the line's frame, its end, receive time, end of line
    const char* fend
    const char* eol
    int64_t ts
    Py_ssize_t* err_line    # line numbers of "not <ns> <json>" lines, in order
    Py_ssize_t err_n
    Py_ssize_t err_cap


cdef void _scan_lines(_DecCfg* d, _LineScan* st, const char* end, _EvBuf* b, bint final,
                      const char* sym, Py_ssize_t sym_n) noexcept nogil:
    cdef const char* p = st.p
    cdef const char* eol
    cdef const char* q
    cdef const char* frame
    cdef const char* fend
    cdef Py_ssize_t nrec
    cdef uint64_t ts
    cdef int kind
    st.stop = S_DONE
    while p < end:
        eol = <const char*>memchr(p, c'\n', <size_t>(end - p))
        if eol == NULL:
            if not final:
                break
            eol = end
        st.lineno += 1
        fend = eol
        if fend > p and (fend - 1)[0] == c'\r':
            fend -= 1
        if fend == p:
            st.empty += 1
            p = eol + 1 if eol < end else end
            continue
        # "<ns> <json>"
        q = p
        ts = 0
        while q < fend and c'0' <= q[0] <= c'9' and q - p < 19:
            ts = ts * 10 + <uint64_t>(q[0] - c'0')
            q += 1
        if q == p or q >= fend or q[0] != c' ':
            st.malformed += 1
            if st.err_n < st.err_cap:
                st.err_line[st.err_n] = st.lineno
                st.err_n += 1
            p = eol + 1 if eol < end else end
            continue
        frame = q + 1
        kind = K_OTHER
        nrec = _emit_frame_c(d, frame, fend - frame, <int64_t>ts, b, sym, sym_n, &kind)
        if nrec >= 0:
            st.messages += 1
            st.counts[kind] += 1
        elif nrec == R_OTHER_SYMBOL:
            st.skipped += 1
        elif nrec == R_SLOW:
            st.stop = S_SLOW
            st.frame = frame
            st.fend = fend
            st.eol = eol
            st.ts = <int64_t>ts
            break
        elif nrec == R_FULL:
            st.lineno -= 1          # stop before this line
            st.stop = S_FULL
            break
        else:
            st.lineno -= 1
            st.stop = S_NOMEM
            break
        p = eol + 1 if eol < end else end
    st.p = p


cdef dict _decode_lines(BinanceDecoder self, const char* data, Py_ssize_t size, _EvBuf* b,
                        bint final, bytes sym_b, Py_ssize_t line_offset, Py_ssize_t max_errors):
    """The line loop runs without the GIL (_scan_lines); it stops at a line
    only the slow path handles, which is decoded here with the GIL."""
    cdef const char* end = data + size
    cdef const char* sym = NULL
    cdef Py_ssize_t sym_n = 0, nrec, i
    cdef _DecCfg d
    cdef _LineScan st
    cdef int kind
    cdef bint full = False
    errors = []
    if sym_b is not None:
        sym = PyBytes_AS_STRING(sym_b)
        sym_n = PyBytes_GET_SIZE(sym_b)
    d.scr = &self._scr
    d.px_scale = &self._px_scale
    d.qty_scale = &self._qty_scale
    d.time_mult = self._time_mult
    d.time_max = INT64_MAX // self._time_mult
    d.time_min = INT64_MIN // self._time_mult
    memset(&st, 0, sizeof(_LineScan))
    st.p = data
    st.lineno = line_offset
    if max_errors > 0:
        st.err_line = <Py_ssize_t*>malloc(<size_t>max_errors * sizeof(Py_ssize_t))
        if st.err_line == NULL:
            raise MemoryError()
    try:
        while True:
            st.err_cap = max(0, max_errors - len(errors))
            with nogil:
                _scan_lines(&d, &st, end, b, final, sym, sym_n)
            # format errors found by the scan come before the line it stopped at
            for i in range(st.err_n):
                errors.append((st.err_line[i], "not '<ns> <json>'"))
            st.err_n = 0
            if st.stop == S_NOMEM:
                raise MemoryError()
            if st.stop == S_FULL:
                full = True
                break
            if st.stop != S_SLOW:
                break
            nrec = -1
            kind = K_OTHER
            try:
                nrec = _emit_frame(self, st.frame, st.fend - st.frame, st.ts, b, sym, sym_n, &kind)
            except DecodeError as exc:
                st.malformed += 1
                if len(errors) < max_errors:
                    errors.append((st.lineno, str(exc)))
            if nrec == -2:          # the caller's array is full: stop before this line
                st.lineno -= 1
                full = True
                break
            if nrec == -3:
                st.skipped += 1
            elif nrec >= 0:
                st.messages += 1
                st.counts[kind] += 1
            st.p = st.eol + 1 if st.eol < end else end
    finally:
        free(st.err_line)
    return {"lines": st.lineno - line_offset, "messages": st.messages, "events": b.n,
            "malformed": st.malformed, "errors": errors, "skipped": st.skipped, "empty": st.empty,
            "consumed": st.p - data, "full": full,
            "depth": st.counts[K_DEPTH], "snapshot": st.counts[K_SNAPSHOT], "trade": st.counts[K_TRADE],
            "book_ticker": st.counts[K_BBO], "other": st.counts[K_OTHER]}
