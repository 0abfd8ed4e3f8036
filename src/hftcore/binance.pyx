# cython: language_level=3
"""Binance market-data message decoder: JSON frame -> typed message, in one pass.

``BinanceDecoder("0.01", "0.00001").decode(frame)`` returns a DepthUpdate,
DepthSnapshot, Trade, BookTicker or UnknownEvent. Prices are int64 ticks and
quantities int64 lots of the decoder's tick/lot size (exact: no float on the way
from the decimal string to the integer); ids as sent; times int64 ns since the
epoch. A malformed frame raises DecodeError (offset and field attached); nothing
else escapes and nothing is half-built.

The rule: every frame is either decoded exactly as ``json.loads`` (on its strict
UTF-8 text) plus ``decimal.Decimal`` read it, or refused with a DecodeError. The
refusals beyond invalid JSON are the decoder's documented policy: invalid UTF-8
(also encoded surrogates, and lone surrogates in a str frame); nesting deeper
than 128; a key twice in an object the message is read from (the top level and
the "data" payload: json.loads would silently keep the last one); and, for the
fields a message reads, a wrong JSON type, a negative or non-int64 id or time,
or a price/quantity that is not a plain decimal (digits, one '.') on the
instrument's grid within int64.

The JSON scanner is hand-written C-level Cython over ``const char*``: it accepts
any insignificant whitespace, keys in any order and escaped keys (``"\\u0061"``
is "a"), and skips unknown keys with any JSON value (fully validated). Each
message kind reads exactly its documented keys (depthUpdate: e E T s U u pu b a;
snapshot: lastUpdateId E T bids asks; trade: e E s t p q T m X; aggTrade: e E s
a p q f l T m; bookTicker: e u E T s b B a A); every other key is ignored, so a
stray "bids" in a depthUpdate or "b" in a snapshot changes nothing. Level arrays
("b", "a", "bids", "asks") are decoded straight into decoder-owned scratch during
the scan; one that is not [[price, qty], ...] is only an error for a message
that reads it.

Classification, field validation and the records of ``decode_lines`` are one
GIL-free routine (``_read`` / ``_records``) shared by ``decode`` and
``decode_lines``; only the Python objects and the error text need the GIL.
"""
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memchr, memcmp, memcpy, memset

cimport numpy as cnp
from hftcore.decimal cimport (
    HFT_DEC_NOT_MULTIPLE,
    HFT_DEC_OK,
    HFT_DEC_OVERFLOW,
    hft_dec_strerror,
    hft_parse_units,
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

# level arrays: one slot per key, so "b" and "bids" never share one
cdef enum:
    LK_b = 0        # bids of a depthUpdate (side 0)
    LK_a = 1        # asks of a depthUpdate (side 1)
    LK_bids = 2     # bids of a snapshot (side 0)
    LK_asks = 3     # asks of a snapshot (side 1)

cdef enum:
    E_NONE = 0
    E_TRUNC         # unexpected end of frame
    E_SYNTAX        # invalid JSON (msg tells)
    E_TRAILING
    E_NOT_OBJECT
    E_DEPTH
    E_UTF8          # invalid UTF-8 in a string
    E_DUP           # a key twice in an object the message is read from
    E_TYPE          # wrong JSON type for a field (msg: expected ...; err_tag: got)
    E_MISSING       # (err_kind: the message kind)
    E_LEVEL         # bad level shape
    E_DECIMAL       # price/qty decimal error (dec_code, level, which)
    E_INT           # a number that is not an int64 integer
    E_NEG           # a negative id or time
    E_TIME          # time beyond int64 ns (err_ival)
    E_NOMEM

cdef enum:
    MAX_DEPTH = 128
    SCRATCH_INIT = 64
    UNK_INLINE = 8          # unknown keys checked for duplicates inline
    FID_UNKNOWN = -1
    FID_NOMEM = -2
    DEC_NOMEM = -100        # _parse_dec: out of memory

cdef struct Fld:
    const char* v        # first byte of the value
    const char* s        # string content (tag T_STR)
    Py_ssize_t n         # string content length
    int64_t i            # integer value (tag T_INT)
    int tag
    bint esc             # string holds escapes
    bint bad             # an array that is not [[price, qty], ...] (error re-made when read)

cdef struct Obj:
    uint32_t present     # bit per field id
    const char* start    # its '{'
    Py_ssize_t lv_start[4]   # per LK_*: first level in the scratch side, count
    Py_ssize_t lv_n[4]
    # the first key that repeats (document order of its second occurrence)
    const char* dup_at   # its opening quote, NULL if none
    int dup_fid          # its field id, FID_UNKNOWN for other keys
    const char* dup_s
    Py_ssize_t dup_n
    bint dup_esc
    # unknown keys: the first UNK_INLINE (unescaped) inline, else all in scr.keys
    int n_unk
    Py_ssize_t spill_base    # -1, or the first of this object's keys in scr.keys
    const char* unk_s[<int>UNK_INLINE]
    Py_ssize_t unk_n[<int>UNK_INLINE]
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
    const char* err_vs   # E_DECIMAL: the value; E_DUP: the key
    Py_ssize_t err_vn
    bint err_vesc
    int err_tag          # E_TYPE: the JSON type found
    const char* err_kind # E_MISSING: the message kind
    int64_t err_ival     # E_TIME: the value


cdef inline const char* _fail(Ctx* c, int kind, const char* at, const char* msg, int field) noexcept nogil:
    c.err = kind
    c.err_at = at
    c.err_msg = msg
    c.err_field = field
    return NULL


cdef inline void _clear_err(Ctx* c) noexcept nogil:
    c.err = E_NONE
    c.err_field = -1
    c.err_level = -1


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
    # per byte: '"', '\\', a control char (< 0x20) or a non-ASCII byte (>= 0x80,
    # checked as UTF-8); exact for the lowest byte
    cdef uint64_t ones = 0x0101010101010101ULL
    cdef uint64_t high = 0x8080808080808080ULL
    cdef uint64_t q = v ^ 0x2222222222222222ULL
    cdef uint64_t b = v ^ 0x5C5C5C5C5C5C5C5CULL
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v) | v) & high


cdef inline bint _is_hex(char ch) noexcept nogil:
    return (c'0' <= ch <= c'9') or (c'a' <= ch <= c'f') or (c'A' <= ch <= c'F')


cdef inline Py_ssize_t _utf8_seq(const char* p, const char* end) noexcept nogil:
    """Length of the well-formed UTF-8 sequence at p (p[0] >= 0x80), 0 if there
    is none: no continuation byte first, no overlong form, no surrogate
    (U+D800..DFFF), nothing above U+10FFFF, nothing cut by the end."""
    cdef unsigned char c0 = <unsigned char>p[0], c1
    cdef unsigned char lo = 0x80, hi = 0xBF
    cdef Py_ssize_t n, k
    if c0 < 0xC2:
        return 0
    if c0 < 0xE0:
        n = 2
    elif c0 < 0xF0:
        n = 3
        if c0 == 0xE0:
            lo = 0xA0
        elif c0 == 0xED:
            hi = 0x9F
    elif c0 < 0xF5:
        n = 4
        if c0 == 0xF0:
            lo = 0x90
        elif c0 == 0xF4:
            hi = 0x8F
    else:
        return 0
    if end - p < n:
        return 0
    c1 = <unsigned char>p[1]
    if c1 < lo or c1 > hi:
        return 0
    for k in range(2, n):
        if (<unsigned char>p[k] & 0xC0) != 0x80:
            return 0
    return n


cdef const char* _str_end(Ctx* c, const char* p, bint* esc) noexcept nogil:
    """p: first byte of string content. Returns the closing quote, or NULL."""
    cdef const char* end = c.end
    cdef uint64_t v, m
    cdef unsigned char ch
    cdef Py_ssize_t k
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
        if ch >= 0x80:
            k = _utf8_seq(p, end)
            if k == 0:
                return _fail(c, E_UTF8, p, "invalid UTF-8 in a string", -1)
            p += k
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


cdef inline unsigned _hex4(const char* p) noexcept nogil:
    cdef unsigned v = 0, d
    cdef int k
    cdef char ch
    for k in range(4):
        ch = p[k]
        if ch <= c'9':
            d = <unsigned>(ch - c'0')
        elif ch <= c'F':
            d = <unsigned>(ch - c'A' + 10)
        else:
            d = <unsigned>(ch - c'a' + 10)
        v = (v << 4) | d
    return v


cdef Py_ssize_t _unescape(const char* s, Py_ssize_t n, char* out) noexcept nogil:
    """The text of a validated JSON string's content s[0..n) into out (room for
    n bytes: never longer), as UTF-8 -- the str json.loads gives, encoded; a
    lone escaped surrogate becomes its 3-byte form, so equal texts give equal
    bytes. Returns the length."""
    cdef Py_ssize_t i = 0, o = 0
    cdef unsigned cp, lo
    cdef char ch
    while i < n:
        ch = s[i]
        if ch != c'\\':
            out[o] = ch
            o += 1
            i += 1
            continue
        ch = s[i + 1]
        if ch != c'u':
            if ch == c'b':
                ch = c'\b'
            elif ch == c'f':
                ch = c'\f'
            elif ch == c'n':
                ch = c'\n'
            elif ch == c'r':
                ch = c'\r'
            elif ch == c't':
                ch = c'\t'
            out[o] = ch          # '"', '\\', '/' stand for themselves
            o += 1
            i += 2
            continue
        cp = _hex4(s + i + 2)
        i += 6
        if 0xD800 <= cp <= 0xDBFF and i + 6 <= n and s[i] == c'\\' and s[i + 1] == c'u':
            lo = _hex4(s + i + 2)
            if 0xDC00 <= lo <= 0xDFFF:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                i += 6
        if cp < 0x80:
            out[o] = <char>cp
            o += 1
        elif cp < 0x800:
            out[o] = <char>(0xC0 | (cp >> 6))
            out[o + 1] = <char>(0x80 | (cp & 0x3F))
            o += 2
        elif cp < 0x10000:
            out[o] = <char>(0xE0 | (cp >> 12))
            out[o + 1] = <char>(0x80 | ((cp >> 6) & 0x3F))
            out[o + 2] = <char>(0x80 | (cp & 0x3F))
            o += 3
        else:
            out[o] = <char>(0xF0 | (cp >> 18))
            out[o + 1] = <char>(0x80 | ((cp >> 12) & 0x3F))
            out[o + 2] = <char>(0x80 | ((cp >> 6) & 0x3F))
            out[o + 3] = <char>(0x80 | (cp & 0x3F))
            o += 4
    return o


cdef char* _text_room(_Scratch* s, Py_ssize_t n) noexcept nogil:
    """The scratch text buffer with room for n bytes (NULL: out of memory)."""
    cdef Py_ssize_t cap
    cdef char* t
    if n <= s.text_cap:
        return s.text
    cap = s.text_cap * 2 if s.text_cap else 256
    while cap < n:
        cap *= 2
    t = <char*>realloc(s.text, <size_t>cap)
    if t == NULL:
        return NULL
    s.text = t
    s.text_cap = cap
    return t


cdef const char* _number(Ctx* c, const char* p, int64_t* ival, int* tag) noexcept nogil:
    """A JSON number at p; sets tag T_INT (value in ival) or T_NUM."""
    cdef const char* end = c.end
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
    """p at '{' or '['; skips the whole container (validated; its keys are not
    read, so not checked for duplicates)."""
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
        return FID_UNKNOWN
    if n == 2:
        return F_pu if (k[0] == c'p' and k[1] == c'u') else FID_UNKNOWN
    if n == 4:
        if memcmp(k, "bids", 4) == 0: return F_bids
        if memcmp(k, "asks", 4) == 0: return F_asks
        if memcmp(k, "data", 4) == 0: return F_data
        return FID_UNKNOWN
    if n == 6:
        return F_stream if memcmp(k, "stream", 6) == 0 else FID_UNKNOWN
    if n == 12:
        return F_lastUpdateId if memcmp(k, "lastUpdateId", 12) == 0 else FID_UNKNOWN
    return FID_UNKNOWN


cdef int _key_id_esc(Ctx* c, const char* k, Py_ssize_t n) noexcept nogil:
    """_key_id of an escaped key, by the text it spells ("\\u0061" is "a")."""
    cdef char* buf
    if n > 6 * 12:
        return FID_UNKNOWN      # spells more than 12 bytes: no known key is longer
    buf = _text_room(c.scr, n)
    if buf == NULL:
        return FID_NOMEM
    return _key_id(buf, _unescape(k, n, buf))


cdef inline int _level_key(int fid) noexcept nogil:
    if fid == F_b:
        return LK_b
    if fid == F_a:
        return LK_a
    if fid == F_bids:
        return LK_bids
    if fid == F_asks:
        return LK_asks
    return -1


# ------------------------------------------------------------ duplicate keys
cdef inline void _note_dup(Obj* o, const char* at, int fid, const char* s, Py_ssize_t n, bint esc) noexcept nogil:
    if o.dup_at == NULL or at < o.dup_at:
        o.dup_at = at
        o.dup_fid = fid
        o.dup_s = s
        o.dup_n = n
        o.dup_esc = esc


cdef bint _push_key(_Scratch* s, const char* k, Py_ssize_t n, bint esc) noexcept nogil:
    cdef Py_ssize_t cap
    cdef _KeySpan* a
    if s.nkeys == s.keys_cap:
        cap = s.keys_cap * 2 if s.keys_cap else 64
        a = <_KeySpan*>realloc(s.keys, <size_t>cap * sizeof(_KeySpan))
        if a == NULL:
            return False
        s.keys = a
        s.keys_cap = cap
    s.keys[s.nkeys].s = k
    s.keys[s.nkeys].n = n
    s.keys[s.nkeys].esc = esc
    s.nkeys += 1
    return True


cdef bint _unknown_key(Ctx* c, Obj* o, const char* s, Py_ssize_t n, bint esc) noexcept nogil:
    """Remember an unknown key for the duplicate check (False: out of memory)."""
    cdef int i
    if o.spill_base < 0:
        if not esc and o.n_unk < UNK_INLINE:
            for i in range(o.n_unk):
                if o.unk_n[i] == n and memcmp(o.unk_s[i], s, <size_t>n) == 0:
                    _note_dup(o, s - 1, FID_UNKNOWN, s, n, False)
                    return True
            o.unk_s[o.n_unk] = s
            o.unk_n[o.n_unk] = n
            o.n_unk += 1
            return True
        # many or escaped keys: all go to the scratch list, sorted at the '}'
        o.spill_base = c.scr.nkeys
        for i in range(o.n_unk):
            if not _push_key(c.scr, o.unk_s[i], o.unk_n[i], False):
                return False
    return _push_key(c.scr, s, n, esc)


cdef int _key_cmp(const void* x, const void* y) noexcept nogil:
    cdef const _KeySpan* a = <const _KeySpan*>x
    cdef const _KeySpan* b = <const _KeySpan*>y
    cdef Py_ssize_t n = a.dn if a.dn < b.dn else b.dn
    cdef int r = memcmp(a.d, b.d, <size_t>n) if n else 0
    if r:
        return r
    if a.dn != b.dn:
        return -1 if a.dn < b.dn else 1
    return -1 if a.s < b.s else (1 if a.s > b.s else 0)


cdef bint _spill_check(Ctx* c, Obj* o) noexcept nogil:
    """Duplicates among the object's spilled unknown keys, by their decoded
    text (sort: O(n log n) for any number of keys). False: out of memory."""
    cdef _Scratch* s = c.scr
    cdef Py_ssize_t base = o.spill_base, n = s.nkeys - base, i, total = 0, off = 0
    cdef _KeySpan* k = s.keys + base
    cdef char* buf = NULL
    for i in range(n):
        if k[i].esc:
            total += k[i].n
    if total:
        buf = _text_room(s, total)
        if buf == NULL:
            return False
    for i in range(n):
        if k[i].esc:
            k[i].d = buf + off
            k[i].dn = _unescape(k[i].s, k[i].n, buf + off)
            off += k[i].dn
        else:
            k[i].d = k[i].s
            k[i].dn = k[i].n
    qsort(k, <size_t>n, sizeof(_KeySpan), _key_cmp)
    for i in range(1, n):
        # the second occurrence of each repeated text (sorted by position within it)
        if (k[i].dn == k[i - 1].dn and memcmp(k[i].d, k[i - 1].d, <size_t>k[i].dn) == 0
                and (i == 1 or k[i - 1].dn != k[i - 2].dn
                     or memcmp(k[i - 1].d, k[i - 2].d, <size_t>k[i].dn) != 0)):
            _note_dup(o, k[i].s - 1, FID_UNKNOWN, k[i].s, k[i].n, k[i].esc)
    s.nkeys = base
    return True


# ------------------------------------------------------------ levels
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


cdef int _parse_dec(Ctx* c, const char* s, Py_ssize_t n, bint esc, const hft_scale_t* scale,
                    int64_t* out) noexcept nogil:
    """hft_parse_units of a JSON string's text (escapes decoded first; out of
    line: the hot callers parse unescaped text themselves)."""
    cdef char* buf
    if not esc:
        return hft_parse_units(s, <size_t>n, scale, out)
    buf = _text_room(c.scr, n)
    if buf == NULL:
        return DEC_NOMEM
    return hft_parse_units(buf, <size_t>_unescape(s, n, buf), scale, out)


cdef inline const char* _dec_fail(Ctx* c, int rc, const char* s, const char* e, bint esc, int field,
                                  Py_ssize_t level, int which) noexcept nogil:
    if rc == DEC_NOMEM:
        return _fail(c, E_NOMEM, s, "out of memory", field)
    c.err_dec = rc
    c.err_level = level
    c.err_which = which
    c.err_vs = s
    c.err_vn = e - s
    c.err_vesc = esc
    return _fail(c, E_DECIMAL, s - 1, "", field)


cdef inline const char* _level_fail(Ctx* c, const char* p, int field, Py_ssize_t level,
                                    const char* msg) noexcept nogil:
    c.err_level = level
    if p >= c.end:
        return _fail(c, E_TRUNC, c.end, "unexpected end of frame in a level", field)
    return _fail(c, E_LEVEL, p, msg, field)


cdef const char* _string_end(Ctx* c, const char* s, int field, bint* esc) noexcept nogil:
    """s: first byte of a string's content. Returns its closing quote, or NULL
    (error set, attributed to field). The out-of-line path of _levels."""
    cdef const char* e = _str_end_fast(c, s, esc)
    if e == NULL:
        c.err_field = field
    return e


cdef const char* _levels(Ctx* c, const char* p, Obj* o, int lk, int field) noexcept nogil:
    """p at '[' of [[px, qty], ...]; appends the levels to the scratch side of
    level key lk and records them as o.lv_*[lk]. E_LEVEL / E_DECIMAL: valid JSON
    maybe, but not levels (the caller decides); other errors: invalid JSON."""
    cdef const char* end = c.end
    cdef _Scratch* scr = c.scr
    cdef int side = lk & 1
    cdef const char* s1
    cdef const char* e1
    cdef const char* s2
    cdef const char* e2
    cdef const char* q
    cdef Py_ssize_t start = scr.n[side], k
    cdef int64_t px = 0, qty = 0
    cdef bint px_ok, qty_ok, esc1 = False, esc2 = False
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
                esc1 = False
                e1 = _string_end(c, s1, field, &esc1)
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
                esc2 = False
                e2 = _string_end(c, s2, field, &esc2)
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
                rc = _parse_dec(c, s1, e1 - s1, esc1, c.px_scale, &px)
                if rc != HFT_DEC_OK:
                    return _dec_fail(c, rc, s1, e1, esc1, field, k - start, 0)
            if not qty_ok:
                rc = _parse_dec(c, s2, e2 - s2, esc2, c.qty_scale, &qty)
                if rc != HFT_DEC_OK:
                    return _dec_fail(c, rc, s2, e2, esc2, field, k - start, 1)
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
    o.lv_start[lk] = start
    o.lv_n[lk] = scr.n[side] - start
    return p + 1


# ------------------------------------------------------------ objects
cdef const char* _object(Ctx* c, const char* p, Obj* o, Obj* inner) noexcept nogil:
    """p at '{'. Records the known fields into o (the first occurrence of a
    repeated key; the repeat is noted in o.dup_*); with inner != NULL (top
    level), an object-valued "data" is scanned into inner."""
    cdef const char* end = c.end
    cdef const char* ks
    cdef const char* q
    cdef Py_ssize_t kn, s0
    cdef bint esc
    cdef int fid, tag, lk, attr
    cdef char ch
    cdef Fld* f
    o.present = 0
    o.start = p
    memset(o.lv_start, 0, sizeof(o.lv_start))
    memset(o.lv_n, 0, sizeof(o.lv_n))
    o.dup_at = NULL
    o.n_unk = 0
    o.spill_base = -1
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
        kn = q - ks
        fid = _key_id_esc(c, ks, kn) if esc else _key_id(ks, kn)
        if fid == FID_NOMEM:
            return _fail(c, E_NOMEM, ks, "out of memory", -1)
        attr = fid
        p = _ws(q + 1, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", attr)
        if p[0] != c':':
            return _fail(c, E_SYNTAX, p, "expected ':'", attr)
        p = _ws(p + 1, end)
        if p >= end:
            return _fail(c, E_TRUNC, end, "unexpected end of frame", attr)
        ch = p[0]
        if fid >= 0 and (o.present >> fid) & 1:
            _note_dup(o, ks - 1, fid, ks, kn, esc)
            q = _skip_value(c, p)
        elif fid < 0:
            if not _unknown_key(c, o, ks, kn, esc):
                return _fail(c, E_NOMEM, ks, "out of memory", -1)
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
                f.bad = False       # (read only for arrays)
                lk = _level_key(fid)
                if lk >= 0:
                    s0 = c.scr.n[lk & 1]
                    q = _levels(c, p, o, lk, fid)
                    if q == NULL and (c.err == E_LEVEL or c.err == E_DECIMAL):
                        # valid JSON, maybe, but not levels: only an error for a
                        # message that reads this key (then made again)
                        c.scr.n[lk & 1] = s0
                        _clear_err(c)
                        q = _skip_container(c, p)
                        f.bad = q != NULL
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
                c.err_field = attr
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
            if o.spill_base >= 0 and not _spill_check(c, o):
                return _fail(c, E_NOMEM, p, "out of memory", -1)
            return p + 1
        return _fail(c, E_SYNTAX, p, "expected ',' or '}'", -1)


cdef inline void _ctx_init(Ctx* c, _DecCfg* d, const char* data, Py_ssize_t n) noexcept nogil:
    c.base = data
    c.end = data + n
    c.px_scale = &d.px_scale
    c.qty_scale = &d.qty_scale
    c.scr = d.scr
    c.depth = 0
    c.has_inner = False
    c.err = E_NONE
    c.err_at = data
    c.err_msg = ""
    c.err_field = -1
    c.err_level = -1
    d.scr.n[0] = 0
    d.scr.n[1] = 0
    d.scr.nkeys = 0


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


# ----------------------------------------------------------------- reading a message
# One GIL-free routine for both decode() and decode_lines(): which message the
# payload is, and its fields, checked and converted, into a Msg.

cdef enum:
    K_DEPTH = 0
    K_SNAPSHOT
    K_TRADE
    K_BBO
    K_OTHER
    K_COUNT

cdef struct Msg:
    Obj* o               # the payload: the frame, or its "data"
    bint wrapped         # combined-stream {"stream": ..., "data": {...}}
    int kind             # K_*
    bint agg             # aggTrade
    int lk_bid           # LK_* of the levels read
    int lk_ask
    int64_t U
    int64_t u
    int64_t pu
    int64_t L
    int64_t tid
    int64_t first
    int64_t last
    int64_t px
    int64_t qty
    int64_t bp
    int64_t bq
    int64_t ap
    int64_t aq
    int64_t E
    int64_t T
    bint maker


cdef inline bint _ferr(Ctx* c, Obj* o, int fid, int err, const char* msg) noexcept nogil:
    c.err = err
    c.err_field = fid
    c.err_msg = msg
    if (o.present >> fid) & 1:
        c.err_at = o.f[fid].v
        c.err_tag = o.f[fid].tag
    else:
        c.err_at = o.start
        c.err_tag = T_NONE
    return False


cdef inline bint _need(Ctx* c, Obj* o, int fid, const char* kind) noexcept nogil:
    if (o.present >> fid) & 1:
        return True
    c.err_kind = kind
    return _ferr(c, o, fid, E_MISSING, "missing required field for ")


cdef inline bint _g_id(Ctx* c, Obj* o, int fid, const char* kind, int64_t* out) noexcept nogil:
    """A required non-negative int64 (an id, or a time before scaling)."""
    cdef Fld* f = &o.f[fid]
    if not _need(c, o, fid, kind):
        return False
    if f.tag == T_INT:
        if f.i >= 0:
            out[0] = f.i
            return True
        return _ferr(c, o, fid, E_NEG, "expected a non-negative integer")
    if f.tag == T_NUM:
        return _ferr(c, o, fid, E_INT, "expected an int64 integer")
    return _ferr(c, o, fid, E_TYPE, "expected an integer")


cdef inline bint _g_time(Ctx* c, const _DecCfg* d, Obj* o, int fid, const char* kind, int64_t* out) noexcept nogil:
    cdef int64_t v
    if not _g_id(c, o, fid, kind, &v):
        return False
    if v > d.time_max:
        c.err_ival = v
        return _ferr(c, o, fid, E_TIME, "")
    out[0] = v * d.time_mult
    return True


cdef inline bint _g_opt_time(Ctx* c, const _DecCfg* d, Obj* o, int fid, const char* kind, int64_t* out) noexcept nogil:
    if not (o.present >> fid) & 1:
        out[0] = 0
        return True
    return _g_time(c, d, o, fid, kind, out)


cdef bint _units_fail(Ctx* c, Obj* o, int fid, int which, int rc) noexcept nogil:
    cdef Fld* f = &o.f[fid]
    if rc == DEC_NOMEM:
        return _ferr(c, o, fid, E_NOMEM, "out of memory")
    c.err = E_DECIMAL
    c.err_at = f.v
    c.err_field = fid
    c.err_dec = rc
    c.err_level = -1
    c.err_which = which
    c.err_vs = f.s
    c.err_vn = f.n
    c.err_vesc = f.esc
    return False


cdef inline bint _g_units(Ctx* c, Obj* o, int fid, const hft_scale_t* scale, int which, const char* kind,
                          int64_t* out) noexcept nogil:
    """A required decimal string in ticks (scale c.px_scale, which 0) or lots
    (c.qty_scale, which 1)."""
    cdef Fld* f = &o.f[fid]
    cdef int rc
    if not (o.present >> fid) & 1 or f.tag != T_STR:
        if not _need(c, o, fid, kind):
            return False
        return _ferr(c, o, fid, E_TYPE, "expected a decimal string")
    if f.esc:
        rc = _parse_dec(c, f.s, f.n, True, scale, out)
    else:
        rc = hft_parse_units(f.s, <size_t>f.n, scale, out)
    if rc == HFT_DEC_OK:
        return True
    return _units_fail(c, o, fid, which, rc)


cdef inline bint _g_bool(Ctx* c, Obj* o, int fid, const char* kind, bint* out) noexcept nogil:
    if not _need(c, o, fid, kind):
        return False
    if o.f[fid].tag == T_TRUE:
        out[0] = True
        return True
    if o.f[fid].tag == T_FALSE:
        out[0] = False
        return True
    return _ferr(c, o, fid, E_TYPE, "expected a boolean")


cdef inline bint _g_opt_str(Ctx* c, Obj* o, int fid) noexcept nogil:
    if not (o.present >> fid) & 1 or o.f[fid].tag == T_STR:
        return True
    return _ferr(c, o, fid, E_TYPE, "expected a string")


cdef bint _g_levels(Ctx* c, Obj* o, int fid, const char* kind) noexcept nogil:
    cdef Fld* f = &o.f[fid]
    if not _need(c, o, fid, kind):
        return False
    if f.tag != T_ARR:
        return _ferr(c, o, fid, E_TYPE, "expected an array of [price, qty] levels")
    if f.bad:
        # not [[price, qty], ...]: scanned again for its error
        if _levels(c, f.v, o, _level_key(fid), fid) == NULL:
            return False
        return _ferr(c, o, fid, E_LEVEL, "not an array of [price, qty] levels")
    return True


cdef int _payload(Ctx* c, Obj* top, Obj* inner, Msg* m) noexcept nogil:
    """Which object holds the message; a key twice in an object read is an
    error (the top level first, then the payload). 0, or -1 with c.err set."""
    cdef Obj* o = top
    m.o = top
    m.wrapped = False
    if top.dup_at == NULL:
        if (c.has_inner and (top.present >> F_stream) & 1 and top.f[F_stream].tag == T_STR
                and top.f[F_data].tag == T_OBJ):
            m.o = inner
            m.wrapped = True
            if inner.dup_at == NULL:
                return 0
            o = inner
        else:
            return 0
    c.err = E_DUP
    c.err_at = o.dup_at
    c.err_field = o.dup_fid
    c.err_msg = "duplicate key"
    c.err_vs = o.dup_s
    c.err_vn = o.dup_n
    c.err_vesc = o.dup_esc
    return -1


cdef int _read(Ctx* c, const _DecCfg* d, Msg* m) noexcept nogil:
    """Classify the payload and read exactly the fields of its kind into m.
    0, or -1 with c.err set (the first failing field, in the order below)."""
    cdef Obj* o = m.o
    cdef Fld* fe
    cdef const char* s
    cdef const char* kind
    cdef char* buf
    cdef Py_ssize_t n
    m.kind = K_OTHER
    m.agg = False
    if (o.present >> F_e) & 1:
        fe = &o.f[F_e]
        if fe.tag != T_STR:
            _ferr(c, o, F_e, E_TYPE, "expected a string")
            return -1
        s = fe.s
        n = fe.n
        if fe.esc:
            if n > 6 * 11:
                return 0            # spells more than 11 bytes: no modelled type
            buf = _text_room(c.scr, n)
            if buf == NULL:
                _ferr(c, o, F_e, E_NOMEM, "out of memory")
                return -1
            n = _unescape(s, n, buf)
            s = buf
        if n == 11 and memcmp(s, "depthUpdate", 11) == 0:
            m.kind = K_DEPTH
        elif n == 5 and memcmp(s, "trade", 5) == 0:
            m.kind = K_TRADE
        elif n == 8 and memcmp(s, "aggTrade", 8) == 0:
            m.kind = K_TRADE
            m.agg = True
        elif n == 10 and memcmp(s, "bookTicker", 10) == 0:
            m.kind = K_BBO
        else:
            return 0
    elif (o.present >> F_lastUpdateId) & 1 and (o.present & ((1 << F_bids) | (1 << F_asks))):
        m.kind = K_SNAPSHOT
    elif (o.present & ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))
            == ((1 << F_u) | (1 << F_b) | (1 << F_B) | (1 << F_a) | (1 << F_A))):
        m.kind = K_BBO
    else:
        return 0
    if m.kind == K_DEPTH:
        # e E T s U u pu b a (spot: no T, pu)
        kind = "depthUpdate"
        m.pu = HFT_NO_ID
        if not (_g_id(c, o, F_U, kind, &m.U) and _g_id(c, o, F_u, kind, &m.u)
                and (not (o.present >> F_pu) & 1 or _g_id(c, o, F_pu, kind, &m.pu))
                and _g_time(c, d, o, F_E, kind, &m.E) and _g_opt_time(c, d, o, F_T, kind, &m.T)
                and _g_levels(c, o, F_b, kind) and _g_levels(c, o, F_a, kind) and _g_opt_str(c, o, F_s)):
            return -1
        m.lk_bid = LK_b
        m.lk_ask = LK_a
    elif m.kind == K_SNAPSHOT:
        # lastUpdateId E T bids asks (REST; E, T on futures)
        kind = "a depth snapshot"
        if not (_g_id(c, o, F_lastUpdateId, kind, &m.L) and _g_opt_time(c, d, o, F_E, kind, &m.E)
                and _g_opt_time(c, d, o, F_T, kind, &m.T)
                and _g_levels(c, o, F_bids, kind) and _g_levels(c, o, F_asks, kind)):
            return -1
        m.lk_bid = LK_bids
        m.lk_ask = LK_asks
    elif m.kind == K_TRADE:
        # trade: e E s t p q T m X; aggTrade: e E s a p q f l T m
        kind = "aggTrade" if m.agg else "trade"
        if not _g_id(c, o, F_a if m.agg else F_t, kind, &m.tid):
            return -1
        m.first = m.tid
        m.last = m.tid
        if m.agg and not (_g_id(c, o, F_f, kind, &m.first) and _g_id(c, o, F_l, kind, &m.last)):
            return -1
        if not (_g_units(c, o, F_p, c.px_scale, 0, kind, &m.px) and _g_units(c, o, F_q, c.qty_scale, 1, kind, &m.qty)
                and _g_time(c, d, o, F_T, kind, &m.T) and _g_time(c, d, o, F_E, kind, &m.E)
                and _g_bool(c, o, F_m, kind, &m.maker)
                and (m.agg or _g_opt_str(c, o, F_X)) and _g_opt_str(c, o, F_s)):
            return -1
    else:
        # bookTicker: e u E T s b B a A (spot: no e, E, T)
        kind = "bookTicker"
        if not (_g_id(c, o, F_u, kind, &m.u) and _g_units(c, o, F_b, c.px_scale, 0, kind, &m.bp)
                and _g_units(c, o, F_B, c.qty_scale, 1, kind, &m.bq) and _g_units(c, o, F_a, c.px_scale, 0, kind, &m.ap)
                and _g_units(c, o, F_A, c.qty_scale, 1, kind, &m.aq) and _g_opt_time(c, d, o, F_E, kind, &m.E)
                and _g_opt_time(c, d, o, F_T, kind, &m.T) and _g_opt_str(c, o, F_s)):
            return -1
    return 0


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
        """DEPTH records, bids then asks; BEGIN/END flags; EMPTY when no level. exch_ts: T
        (USD-M: the matching engine's time) where present, else E."""
        cdef int64_t ts = self.transaction_time_ns if self.transaction_time_ns else self.event_time_ns
        return _level_events(self, local_ts_ns, ts, HFT_EV_DEPTH,
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
        """SNAPSHOT records (first_id = last_id = lastUpdateId), bids then asks; exch_ts: T where
        present, else E."""
        cdef int64_t ts = self.transaction_time_ns if self.transaction_time_ns else self.event_time_ns
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
        """Two BBO records, bid then ask (first_id = last_id = u); exch_ts: T where present, else E."""
        cdef cnp.ndarray a = _events(2)
        cdef hft_event_t* e = <hft_event_t*>cnp.PyArray_DATA(a)
        cdef int64_t ts = self.transaction_time_ns if self.transaction_time_ns else self.event_time_ns
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
    """Text of a JSON string's content (escapes decoded when present), exactly
    as json.loads gives it (the content is validated: escapes, UTF-8)."""
    if not esc:
        return PyUnicode_DecodeUTF8(s, n, "replace")
    raw = PyBytes_FromStringAndSize(s - 1, n + 2)
    try:
        return json.loads(raw)
    except ValueError:
        return PyUnicode_DecodeUTF8(s, n, "replace")


cdef str _shown(str text, Py_ssize_t limit=64):
    """text for an error message: at most `limit` characters."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _surrogate_error(str frame, exc):
    """DecodeError for a str frame that is not encodable as UTF-8 (a lone
    surrogate); the offset counts the UTF-8 bytes before it."""
    start = exc.start
    off = len(frame[:start].encode("utf-8"))
    return DecodeError(f"invalid UTF-8: a str frame holding the lone surrogate U+{ord(frame[start]):04X} "
                       f"(at byte {off})", off, None)


cdef class BinanceDecoder:
    """Decoder of Binance spot / USD-M market-data frames for one instrument.

    ``tick_size`` and ``lot_size`` are the PRICE_FILTER tickSize and LOT_SIZE
    stepSize as text (e.g. "0.01000000"); ``time_unit`` is "ms" (default) or
    "us" (streams opened with ``timeUnit=MICROSECOND``). Times come out in ns.
    """

    def __cinit__(self):
        memset(&self._scr, 0, sizeof(_Scratch))
        memset(&self._cfg, 0, sizeof(_DecCfg))
        self._cfg.scr = &self._scr

    def __init__(self, tick_size, lot_size, time_unit="ms"):
        from hftcore.decimal import Scale
        px = Scale(tick_size)
        qty = Scale(lot_size)
        if time_unit == "ms":
            self._cfg.time_mult = 1000000
        elif time_unit == "us":
            self._cfg.time_mult = 1000
        else:
            raise ValueError(f'time_unit must be "ms" or "us", not {time_unit!r}')
        self._cfg.time_max = INT64_MAX // self._cfg.time_mult
        self._cfg.px_scale.mantissa = px.mantissa
        self._cfg.px_scale.exponent = px.exponent
        self._cfg.qty_scale.mantissa = qty.mantissa
        self._cfg.qty_scale.exponent = qty.exponent
        self.tick_size = tick_size if isinstance(tick_size, str) else str(px)
        self.lot_size = lot_size if isinstance(lot_size, str) else str(qty)
        self.time_unit = time_unit
        cdef int side
        for side in range(2):
            if self._scr.cap[side] == 0 and not _grow(&self._scr, side):
                raise MemoryError()
        if _text_room(&self._scr, 256) == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef int side
        for side in range(2):
            free(self._scr.px[side])
            free(self._scr.qty[side])
            self._scr.px[side] = NULL
            self._scr.qty[side] = NULL
        free(self._scr.text)
        self._scr.text = NULL
        free(self._scr.keys)
        self._scr.keys = NULL

    def __repr__(self):
        return (f"BinanceDecoder(tick_size={self.tick_size!r}, lot_size={self.lot_size!r}, "
                f"time_unit={self.time_unit!r})")

    def decode(self, frame):
        """Decode one frame (bytes, bytearray, memoryview or str) into a Message.
        Raises DecodeError on malformed input (also invalid UTF-8 in bytes, or a
        lone surrogate in a str)."""
        cdef Py_ssize_t n = 0
        cdef const char* p = NULL
        cdef Py_buffer view
        if type(frame) is bytes:
            return self.decode_c(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame))
        if type(frame) is str:
            try:
                p = PyUnicode_AsUTF8AndSize(frame, &n)
            except UnicodeEncodeError as exc:
                raise _surrogate_error(frame, exc) from None
            return self.decode_c(p, n)
        if type(frame) is bytearray:
            return self.decode_c(PyByteArray_AS_STRING(frame), PyByteArray_GET_SIZE(frame))
        if isinstance(frame, str):
            return self.decode(str(frame))
        if isinstance(frame, memoryview) and not frame.c_contiguous:
            return self.decode(frame.tobytes())     # a strided view: its bytes, in order
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
        first line whose records do not fit). Malformed lines (also a receive
        time beyond int64 ns) are counted and skipped, never raised:
        ``stats["errors"]`` holds ``(line number, message)`` of the first
        ``max_errors`` (line numbers count from ``line_offset + 1``; the message
        is the DecodeError's). A last line without its newline is left for the
        next call unless ``final``; ``stats["consumed"]`` is the number of bytes
        used, so the caller carries ``buf[consumed:]`` over. ``symbol`` (e.g.
        "BTCUSDT") keeps only the lines of that symbol (by the combined-stream
        name, else the "s" field; lines naming no symbol, such as REST
        snapshots, are kept) and counts the others in ``stats["skipped"]``.

        The scan runs without the GIL (other threads -- zlib, a Parquet writer
        -- keep going), through the same reading routine as ``decode``; it
        stops only at a malformed frame, whose message is made with the GIL.
        Do not use one decoder from two threads at once (its scratch is shared).
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
        cdef Msg m
        _ctx_init(&c, &self._cfg, data, n)
        if not _scan(&c, &top, &inner) or _payload(&c, &top, &inner, &m) < 0 or _read(&c, &self._cfg, &m) < 0:
            return _raise(self, &c)
        stream = _stream(self, &top.f[F_stream]) if m.wrapped else None
        if m.kind == K_DEPTH:
            return _depth(self, &m, stream)
        if m.kind == K_SNAPSHOT:
            return _snapshot(self, &m, stream)
        if m.kind == K_TRADE:
            return _trade(self, &m, stream)
        if m.kind == K_BBO:
            return _bbo(self, &m, stream)
        return _unknown(self, &c, m.o, stream)


# ----------------------------------------------------------------- decoder helpers
# -------------------------------------------------------------- errors
cdef tuple _error_info(BinanceDecoder self, Ctx* c):
    """(message, offset, field) of the error in c; MemoryError for E_NOMEM."""
    cdef Py_ssize_t off = c.err_at - c.base
    cdef int e = c.err
    field = FIELD_NAMES[c.err_field] if c.err_field >= 0 else None
    if e == E_NOMEM:
        raise MemoryError("decoding a Binance frame")
    if e == E_DECIMAL:
        val = _shown(_span_text(c.err_vs, c.err_vn, False))
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
    elif e == E_DUP:
        key = _span_text(c.err_vs, c.err_vn, c.err_vesc)
        if field is None:
            field = key
        msg = f"duplicate key {_shown(json.dumps(key))}: a key may appear only once in an object"
    elif e == E_MISSING:
        msg = f'field "{field}": missing required field for {c.err_kind.decode()}'
    elif e == E_TYPE:
        msg = f'field "{field}": {c.err_msg.decode()}, got {_type_name(c.err_tag)}'
    elif e == E_INT or e == E_NEG:
        num = _shown(_span_text(c.err_at, _num_len(c.err_at, c.end), False), 40)
        msg = f'field "{field}": {c.err_msg.decode()}, got {num}'
    elif e == E_TIME:
        msg = f'field "{field}": time {c.err_ival} is out of the int64 nanosecond range'
    else:
        msg = c.err_msg.decode("utf-8")
        if e == E_LEVEL or (e == E_TRUNC and c.err_field in (F_b, F_a, F_bids, F_asks)
                            and c.err_level >= 0):
            msg = f'field "{field}" level {c.err_level}: {msg}'
        elif field is not None:
            msg = f'field "{field}": {msg}'
    return (f"{msg} (at byte {off})", off, field)


cdef object _raise(BinanceDecoder self, Ctx* c):
    msg, off, field = _error_info(self, c)
    raise DecodeError(msg, off, field)


cdef Py_ssize_t _num_len(const char* p, const char* end) noexcept nogil:
    cdef const char* q = p
    while q < end and (c'0' <= q[0] <= c'9' or q[0] == c'-' or q[0] == c'+' or q[0] == c'.'
                       or q[0] == c'e' or q[0] == c'E'):
        q += 1
    return q - p


# -------------------------------------------------------------- objects
cdef object _symbol(BinanceDecoder self, Obj* o):
    """The "s" string (checked by _read), cached by its bytes; None if absent."""
    cdef Fld* f = &o.f[F_s]
    cdef bytes b
    if not (o.present >> F_s) & 1 or f.tag != T_STR:
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

cdef tuple _keys(Ctx* c, Obj* o):
    """Top-level keys of the (already validated, duplicate-free) object at o.start."""
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
    return tuple(keys)

cdef object _unknown(BinanceDecoder self, Ctx* c, Obj* o, object stream):
    cdef UnknownEvent m = UnknownEvent.__new__(UnknownEvent)
    cdef Fld* fe = &o.f[F_e]
    m.stream = stream
    m.symbol = _symbol(self, o)
    if (o.present >> F_e) & 1:
        m.event_type = _span_text(fe.s, fe.n, fe.esc)   # a string (checked by _read)
        m.payload_keys = ()
    else:
        m.event_type = ""
        m.payload_keys = _keys(c, o)
    return m

cdef int _fill(BinanceDecoder self, _Levels m, Msg* g) except -1:
    cdef Obj* o = g.o
    cdef Py_ssize_t nb = o.lv_n[g.lk_bid], na = o.lv_n[g.lk_ask]
    cdef Py_ssize_t sb = o.lv_start[g.lk_bid], sa = o.lv_start[g.lk_ask]
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

cdef object _depth(BinanceDecoder self, Msg* g, object stream):
    cdef DepthUpdate m = DepthUpdate.__new__(DepthUpdate)
    _fill(self, m, g)
    m.stream = stream
    m.symbol = _symbol(self, g.o)
    m.first_id = g.U
    m.last_id = g.u
    m.prev_id = g.pu
    m.event_time_ns = g.E
    m.transaction_time_ns = g.T
    return m

cdef object _snapshot(BinanceDecoder self, Msg* g, object stream):
    # a snapshot has no "s" (REST, spot partial depth): symbol None
    cdef DepthSnapshot m = DepthSnapshot.__new__(DepthSnapshot)
    _fill(self, m, g)
    m.stream = stream
    m.symbol = None
    m.last_update_id = g.L
    m.event_time_ns = g.E
    m.transaction_time_ns = g.T
    return m

cdef object _trade(BinanceDecoder self, Msg* g, object stream):
    cdef Trade m = Trade.__new__(Trade)
    cdef Fld* fx = &g.o.f[F_X]
    m.stream = stream
    m.symbol = _symbol(self, g.o)
    m.is_aggregate = g.agg
    m.trade_id = g.tid
    m.first_trade_id = g.first
    m.last_trade_id = g.last
    m.price = g.px
    m.qty = g.qty
    m.trade_time_ns = g.T
    m.event_time_ns = g.E
    m.buyer_is_maker = g.maker
    m.side = HFT_BID if g.maker else HFT_ASK
    m.trade_type = (_span_text(fx.s, fx.n, fx.esc)
                    if not g.agg and (g.o.present >> F_X) & 1 else None)
    return m

cdef object _bbo(BinanceDecoder self, Msg* g, object stream):
    cdef BookTicker m = BookTicker.__new__(BookTicker)
    m.stream = stream
    m.symbol = _symbol(self, g.o)
    m.update_id = g.u
    m.bid_px = g.bp
    m.bid_qty = g.bq
    m.ask_px = g.ap
    m.ask_qty = g.aq
    m.event_time_ns = g.E
    m.transaction_time_ns = g.T
    return m


# ----------------------------------------------------------------- batch decoding
# decode_lines: lines -> event records without message objects or the GIL,
# through the same _scan / _payload / _read as decode(); the records are those
# of to_events (_records), which tests/test_decode_lines.py checks on real
# captures and the fuzz suite (tests/fuzz) on mutated ones.

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


cdef enum:
    R_FULL = -2             # the caller's fixed array is full
    R_OTHER_SYMBOL = -3
    R_ERROR = -4            # malformed frame (the Ctx tells)
    R_NOMEM = -5


cdef Py_ssize_t _records(const _DecCfg* d, Msg* m, int64_t ts, _EvBuf* b) noexcept nogil:
    """The records of a read message (as its to_events(ts)), appended to b:
    their number, or R_FULL / R_NOMEM."""
    cdef Obj* o = m.o
    cdef Py_ssize_t nb, na, n
    cdef int64_t ts2
    if m.kind == K_DEPTH or m.kind == K_SNAPSHOT:
        nb = o.lv_n[m.lk_bid]
        na = o.lv_n[m.lk_ask]
        n = nb + na
        if not _reserve(b, n if n else 1):
            return R_FULL if b.fixed else R_NOMEM
        if m.kind == K_DEPTH:
            n = hft_message_events(b.ev + b.n, ts, m.T if m.T else m.E, HFT_EV_DEPTH, m.U, m.u, m.pu,
                                   d.scr.px[0] + o.lv_start[m.lk_bid], d.scr.qty[0] + o.lv_start[m.lk_bid], nb,
                                   d.scr.px[1] + o.lv_start[m.lk_ask], d.scr.qty[1] + o.lv_start[m.lk_ask], na)
        else:
            n = hft_message_events(b.ev + b.n, ts, m.T if m.T else m.E, HFT_EV_SNAPSHOT, m.L, m.L, HFT_NO_ID,
                                   d.scr.px[0] + o.lv_start[m.lk_bid], d.scr.qty[0] + o.lv_start[m.lk_bid], nb,
                                   d.scr.px[1] + o.lv_start[m.lk_ask], d.scr.qty[1] + o.lv_start[m.lk_ask], na)
        b.n += n
        return n
    if m.kind == K_TRADE:
        if not _reserve(b, 1):
            return R_FULL if b.fixed else R_NOMEM
        hft_event_set(b.ev + b.n, ts, m.T, m.px, m.qty, m.first, m.last, HFT_NO_ID, HFT_EV_TRADE,
            HFT_BID if m.maker else HFT_ASK, HFT_EVF_BEGIN | HFT_EVF_END)
        b.n += 1
        return 1
    if m.kind == K_BBO:
        if not _reserve(b, 2):
            return R_FULL if b.fixed else R_NOMEM
        ts2 = m.T if m.T else m.E      # (USD-M: the matching engine's time)
        hft_event_set(b.ev + b.n, ts, ts2, m.bp, m.bq, m.u, m.u, HFT_NO_ID, HFT_EV_BBO, HFT_BID, HFT_EVF_BEGIN)
        hft_event_set(b.ev + b.n + 1, ts, ts2, m.ap, m.aq, m.u, m.u, HFT_NO_ID, HFT_EV_BBO, HFT_ASK, HFT_EVF_END)
        b.n += 2
        return 2
    return 0


cdef inline char _lower(char ch) noexcept nogil:
    return <char>(ch + 32) if c'A' <= ch <= c'Z' else ch


cdef int _sym_match(Ctx* c, Obj* top, Msg* m, const char* sym, Py_ssize_t sym_n) noexcept nogil:
    """Is the line of symbol sym (ASCII, any case)? By the stream name before
    '@' when wrapped, else by a string "s"; 1 also when it names none. 1 yes,
    0 no, -1 out of memory."""
    cdef Fld* fs
    cdef const char* s
    cdef char* buf
    cdef Py_ssize_t n, k
    if m.wrapped:
        fs = &top.f[F_stream]
    elif (m.o.present >> F_s) & 1 and m.o.f[F_s].tag == T_STR:
        fs = &m.o.f[F_s]
    else:
        return 1
    s = fs.s
    n = fs.n
    if fs.esc:
        buf = _text_room(c.scr, n)
        if buf == NULL:
            return -1
        n = _unescape(s, n, buf)
        s = buf
    if m.wrapped:
        k = 0
        while k < n and s[k] != c'@':
            k += 1
        n = k
    if n != sym_n:
        return 0
    for k in range(n):
        if _lower(s[k]) != _lower(sym[k]):
            return 0
    return 1


cdef Py_ssize_t _line_frame(_DecCfg* d, const char* data, Py_ssize_t n, int64_t ts, _EvBuf* b,
                            const char* sym, Py_ssize_t sym_n, int* kind, Ctx* c) noexcept nogil:
    """One frame -> records appended to b: their number, or R_* (R_ERROR: c
    holds the error)."""
    cdef Obj top
    cdef Obj inner
    cdef Msg m
    cdef int r
    _ctx_init(c, d, data, n)
    if not _scan(c, &top, &inner) or _payload(c, &top, &inner, &m) < 0:
        return R_ERROR
    if sym != NULL:
        r = _sym_match(c, &top, &m, sym, sym_n)
        if r == 0:
            return R_OTHER_SYMBOL
        if r < 0:
            return R_NOMEM
    if _read(c, d, &m) < 0:
        return R_ERROR
    kind[0] = m.kind
    return _records(d, &m, ts, b)


cdef enum:
    S_DONE = 0              # end of the buffer (or an unfinished last line)
    S_ERROR = 1             # the line ending at .eol is malformed (.ctx tells)
    S_FULL = 2
    S_NOMEM = 3

cdef enum:
    LINE_FORMAT = 0         # not "<ns> <json>"
    LINE_TS_RANGE = 1       # receive time beyond int64 ns

cdef struct _LineScan:
    const char* p           # next line
    Py_ssize_t lineno
    Py_ssize_t messages
    Py_ssize_t malformed
    Py_ssize_t skipped
    Py_ssize_t empty
    Py_ssize_t counts[<int>K_COUNT]
    int stop
    const char* eol         # S_ERROR: end of the malformed line
    Ctx ctx                 # S_ERROR: its error
    Py_ssize_t* err_line    # line numbers of lines that are not "<ns> <json>", in order
    int* err_code           # their LINE_* reason
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
    cdef int kind, bad
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
        # "<ns> <json>": at most 19 digits (they fit uint64), then <= INT64_MAX
        q = p
        ts = 0
        while q < fend and c'0' <= q[0] <= c'9' and q - p < 19:
            ts = ts * 10 + <uint64_t>(q[0] - c'0')
            q += 1
        bad = -1
        if q == p or q >= fend or q[0] != c' ':
            bad = LINE_FORMAT
        elif ts > <uint64_t>INT64_MAX:
            bad = LINE_TS_RANGE
        if bad >= 0:
            st.malformed += 1
            if st.err_n < st.err_cap:
                st.err_line[st.err_n] = st.lineno
                st.err_code[st.err_n] = bad
                st.err_n += 1
            p = eol + 1 if eol < end else end
            continue
        frame = q + 1
        kind = K_OTHER
        nrec = _line_frame(d, frame, fend - frame, <int64_t>ts, b, sym, sym_n, &kind, &st.ctx)
        if nrec >= 0:
            st.messages += 1
            st.counts[kind] += 1
        elif nrec == R_OTHER_SYMBOL:
            st.skipped += 1
        elif nrec == R_ERROR:
            st.stop = S_ERROR
            st.eol = eol
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
    """The line loop runs without the GIL (_scan_lines); it stops at a malformed
    frame, whose message is made here with the GIL, and goes on."""
    cdef const char* end = data + size
    cdef const char* sym = NULL
    cdef Py_ssize_t sym_n = 0, i
    cdef _LineScan st
    cdef bint full = False
    errors = []
    if sym_b is not None:
        sym = PyBytes_AS_STRING(sym_b)
        sym_n = PyBytes_GET_SIZE(sym_b)
    memset(&st, 0, sizeof(_LineScan))
    st.p = data
    st.lineno = line_offset
    if max_errors > 0:
        st.err_line = <Py_ssize_t*>malloc(<size_t>max_errors * sizeof(Py_ssize_t))
        st.err_code = <int*>malloc(<size_t>max_errors * sizeof(int))
        if st.err_line == NULL or st.err_code == NULL:
            free(st.err_line)
            free(st.err_code)
            raise MemoryError()
    try:
        while True:
            st.err_cap = max(0, max_errors - len(errors))
            with nogil:
                _scan_lines(&self._cfg, &st, end, b, final, sym, sym_n)
            # format errors found by the scan come before the line it stopped at
            for i in range(st.err_n):
                errors.append((st.err_line[i], "not '<ns> <json>'" if st.err_code[i] == LINE_FORMAT
                               else "receive time beyond the int64 nanosecond range"))
            st.err_n = 0
            if st.stop == S_NOMEM:
                raise MemoryError()
            if st.stop == S_FULL:
                full = True
                break
            if st.stop != S_ERROR:
                break
            msg = _error_info(self, &st.ctx)[0]      # MemoryError for E_NOMEM
            st.malformed += 1
            if len(errors) < max_errors:
                errors.append((st.lineno, msg))
            st.p = st.eol + 1 if st.eol < end else end
    finally:
        free(st.err_line)
        free(st.err_code)
    return {"lines": st.lineno - line_offset, "messages": st.messages, "events": b.n,
            "malformed": st.malformed, "errors": errors, "skipped": st.skipped, "empty": st.empty,
            "consumed": st.p - data, "full": full,
            "depth": st.counts[K_DEPTH], "snapshot": st.counts[K_SNAPSHOT], "trade": st.counts[K_TRADE],
            "book_ticker": st.counts[K_BBO], "other": st.counts[K_OTHER]}
