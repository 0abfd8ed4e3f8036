# cython: language_level=3
"""Exact decimal text <-> integer units: the Python face of include/hftcore/decimal.h.

A *scale* is a tick size or a lot size ("0.01", "0.00001000", "0.5", "10").
``Scale("0.01").parse("61837.63000000") == 6183763`` ticks, and
``Scale("0.01").format(6183763) == "61837.63"``. No float is involved on the
way from the text to the integer.

Scales are built from ``str``, ``bytes``, ``decimal.Decimal`` or ``int``;
floats are refused with ``TypeError`` (a float cannot hold 0.1 exactly, so a
tick size must come as text, e.g. straight from exchangeInfo).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t

cimport numpy as cnp
import numpy as np
from decimal import Decimal

cnp.import_array()

DEC_OK = HFT_DEC_OK
DEC_EMPTY = HFT_DEC_EMPTY
DEC_SYNTAX = HFT_DEC_SYNTAX
DEC_NEGATIVE = HFT_DEC_NEGATIVE
DEC_OVERFLOW = HFT_DEC_OVERFLOW
DEC_NOT_MULTIPLE = HFT_DEC_NOT_MULTIPLE
DEC_ZERO_SCALE = HFT_DEC_ZERO_SCALE

#: code -> short name ("NOT_MULTIPLE", ...), shared with hftmm.reference.decimal
CODE_NAMES = {
    HFT_DEC_EMPTY: "EMPTY",
    HFT_DEC_SYNTAX: "SYNTAX",
    HFT_DEC_NEGATIVE: "NEGATIVE",
    HFT_DEC_OVERFLOW: "OVERFLOW",
    HFT_DEC_NOT_MULTIPLE: "NOT_MULTIPLE",
    HFT_DEC_ZERO_SCALE: "ZERO_SCALE",
}


def strerror(int code):
    """The short English message of an HFT_DEC_* code."""
    return hft_dec_strerror(code).decode("ascii")


class DecimalError(ValueError):
    """A decimal text was refused. ``code`` is the HFT_DEC_* code (negative int),
    ``name`` its short name ("NOT_MULTIPLE", ...), ``text`` the offending text."""

    def __init__(self, message, code, text=None):
        super().__init__(message)
        self.code = code
        self.name = CODE_NAMES.get(code, "UNKNOWN")
        self.text = text


cdef str _as_text(object text):
    if isinstance(text, bytes):
        return (<bytes>text).decode("utf-8", "backslashreplace")
    return str(text)


def describe_error(int code, str text, str scale_text=None):
    """The message of a DecimalError: quotes the text and says what is wrong."""
    q = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if code == HFT_DEC_NOT_MULTIPLE:
        return f"{q} is not a whole multiple of {scale_text}"
    if code == HFT_DEC_OVERFLOW:
        if scale_text is None:
            return f"{q} is out of range (mantissa beyond int64 or more than 18 decimals)"
        return f"{q} is out of the int64 range in units of {scale_text}"
    if code == HFT_DEC_EMPTY:
        return f"{q} has no digits"
    if code == HFT_DEC_NEGATIVE:
        return f"{q} is negative"
    if code == HFT_DEC_SYNTAX:
        return f"{q} is not a plain decimal number (digits with at most one '.')"
    if code == HFT_DEC_ZERO_SCALE:
        return f"{q} is zero: a scale must be greater than zero"
    return f"{q}: {strerror(code)}"


cdef object _unencodable(str text):
    """DecimalError for a str that is not UTF-8 (a lone surrogate): not a plain
    decimal (or negative, by the error precedence, when it starts with '-')."""
    code = HFT_DEC_NEGATIVE if text.startswith("-") else HFT_DEC_SYNTAX
    shown = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return DecimalError(describe_error(code, shown), code, text)


cdef inline int _text_ptr(object text, const char** p, Py_ssize_t* n) except -1:
    if type(text) is bytes:
        p[0] = PyBytes_AS_STRING(text)
        n[0] = PyBytes_GET_SIZE(text)
    elif type(text) is str:
        try:
            p[0] = PyUnicode_AsUTF8AndSize(text, n)
        except UnicodeEncodeError:
            raise _unencodable(text) from None
    elif isinstance(text, (bytes, str)):
        return _text_ptr(bytes(text) if isinstance(text, bytes) else str(text), p, n)
    else:
        raise TypeError(f"expected str or bytes, got {type(text).__name__}")
    return 0


cdef str _scale_source_text(object source):
    if isinstance(source, bool):
        raise TypeError("a scale cannot be a bool")
    if isinstance(source, float):
        raise TypeError(
            "a scale cannot be a float (not exact); pass the tick/lot size as text, e.g. '0.01'")
    if isinstance(source, (str, bytes)):
        return _as_text(source)
    if isinstance(source, Decimal):
        if not source.is_finite():
            raise DecimalError(describe_error(HFT_DEC_SYNTAX, str(source)), HFT_DEC_SYNTAX, str(source))
        return format(source, "f")
    if isinstance(source, int):
        return str(source)
    raise TypeError(f"a scale is built from str, bytes, Decimal or int, not {type(source).__name__}")


cdef class Scale:
    """A tick or lot size as ``mantissa * 10**-exponent`` (trailing zeros stripped):
    ``Scale("0.01000000")`` has mantissa 1 and exponent 2."""

    cdef hft_scale_t _s
    cdef readonly str text   # canonical text, e.g. "0.01"

    def __init__(self, source):
        cdef const char* p
        cdef Py_ssize_t n
        cdef int rc
        cdef char buf[64]
        s = _scale_source_text(source)
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError:
            raise _unencodable(s) from None
        p = PyBytes_AS_STRING(b)
        n = PyBytes_GET_SIZE(b)
        rc = hft_scale_from_str(p, <size_t>n, &self._s)
        if rc != HFT_DEC_OK:
            raise DecimalError(describe_error(rc, s), rc, s)
        rc = hft_format_units(1, &self._s, buf, sizeof(buf))
        self.text = buf[:rc].decode("ascii")

    @property
    def mantissa(self):
        """int: the scale's digits without the decimal point (> 0)."""
        return self._s.mantissa

    @property
    def exponent(self):
        """int: number of decimals (0..18)."""
        return self._s.exponent

    def __repr__(self):
        return f"Scale('{self.text}')"

    def __str__(self):
        return self.text

    def __eq__(self, other):
        if not isinstance(other, Scale):
            return NotImplemented
        return (self._s.mantissa == (<Scale>other)._s.mantissa
                and self._s.exponent == (<Scale>other)._s.exponent)

    def __hash__(self):
        return hash((self._s.mantissa, self._s.exponent))

    def __reduce__(self):
        return (Scale, (self.text,))

    def to_decimal(self):
        """The scale as a decimal.Decimal."""
        return Decimal(self.text)

    cpdef int64_t parse(self, text) except? -1:
        """Number of units in the decimal text (str or bytes); DecimalError if the
        text is not a plain non-negative decimal, overflows int64 units or is not a
        whole multiple of the scale."""
        cdef const char* p
        cdef Py_ssize_t n
        cdef int64_t out = 0
        cdef int rc
        _text_ptr(text, &p, &n)
        rc = hft_parse_units(p, <size_t>n, &self._s, &out)
        if rc != HFT_DEC_OK:
            t = _as_text(text)
            raise DecimalError(describe_error(rc, t, self.text), rc, t)
        return out

    cpdef str format(self, int64_t units):
        """Decimal text of ``units * scale`` with exactly ``exponent`` decimals."""
        cdef char buf[64]
        cdef int rc = hft_format_units(units, &self._s, buf, sizeof(buf))
        return buf[:rc].decode("ascii")

    def to_float(self, units):
        """``units * scale`` as the nearest float (for display/edges only)."""
        return (int(units) * self._s.mantissa) / (10 ** self._s.exponent)

    def parse_many(self, texts):
        """Parse a sequence of str/bytes into a new int64 numpy array of units."""
        cdef Py_ssize_t i, n = len(texts)
        cdef cnp.ndarray[cnp.int64_t, ndim=1] res = np.empty(n, dtype=np.int64)
        cdef int64_t* dst = <int64_t*>cnp.PyArray_DATA(res)
        cdef const char* p
        cdef Py_ssize_t ln
        cdef int rc
        for i in range(n):
            t = texts[i]
            _text_ptr(t, &p, &ln)
            rc = hft_parse_units(p, <size_t>ln, &self._s, &dst[i])
            if rc != HFT_DEC_OK:
                tt = _as_text(t)
                raise DecimalError(f"item {i}: " + describe_error(rc, tt, self.text), rc, tt)
        return res


cdef inline Scale _scale(object scale):
    if isinstance(scale, Scale):
        return <Scale>scale
    return Scale(scale)


def parse_units(text, scale_text):
    """Units of ``scale_text`` (a tick/lot size) in the decimal ``text``:
    ``parse_units("61837.63000000", "0.01") == 6183763``."""
    return _scale(scale_text).parse(text)


def format_units(units, scale_text):
    """Decimal text of ``units * scale_text``: ``format_units(6183763, "0.01") == "61837.63"``."""
    return _scale(scale_text).format(units)


def parse_many(texts, scale):
    """Parse a list of str/bytes decimals into a new int64 numpy array of units."""
    return _scale(scale).parse_many(texts)
