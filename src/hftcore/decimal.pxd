# cython: language_level=3
"""C-level API of the exact decimal parser (include/hftcore/decimal.h)."""
from libc.stdint cimport int64_t, int32_t

cdef extern from "hftcore/decimal.h":
    # A tick or lot size as mantissa * 10**-exponent, e.g. "0.01000000" -> (1, 2),
    # "0.5" -> (5, 1), "10" -> (10, 0).
    ctypedef struct hft_scale_t:
        int64_t mantissa
        int32_t exponent

    int HFT_DEC_OK
    int HFT_DEC_EMPTY          # no digits
    int HFT_DEC_SYNTAX         # not a plain decimal number
    int HFT_DEC_NEGATIVE       # starts with '-'
    int HFT_DEC_OVERFLOW       # does not fit int64 units
    int HFT_DEC_NOT_MULTIPLE   # not a whole multiple of the scale
    int HFT_DEC_ZERO_SCALE     # (addition) hft_scale_from_str: a scale must be > 0

    # 0 or a negative HFT_DEC_* code; *out untouched on error
    int hft_scale_from_str(const char* s, size_t n, hft_scale_t* out) nogil
    int hft_parse_units(const char* s, size_t n, const hft_scale_t* scale, int64_t* out) nogil
    # writes the decimal text of units*scale (no trailing zeros beyond the
    # scale's exponent) into buf (NUL-terminated); returns length or -1 if cap too small
    int hft_format_units(int64_t units, const hft_scale_t* scale, char* buf, size_t cap) nogil
    const char* hft_dec_strerror(int code) nogil
