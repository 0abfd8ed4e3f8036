/*
 * hftcore/decimal.h -- exact decimal text <-> integer units (ticks, lots).
 *
 * Header-only C99. No floating point anywhere: a decimal string such as
 * "61837.63000000" is turned into an integer count of scale units (ticks for a
 * tick size of "0.01": 6183763) by integer arithmetic only, and back.
 *
 * A scale (tick size, lot size) is mantissa * 10^-exponent with the trailing
 * fractional zeros stripped: "0.01000000" -> {1, 2}, "0.5" -> {5, 1},
 * "10" -> {10, 0}, "0.00001000" -> {1, 5}. 0 <= exponent <= 18.
 *
 * Accepted number syntax (hft_parse_units): ASCII digits, at most one '.',
 * at least one digit overall ("5", "5.", ".5", "0005.50" are fine, any number
 * of leading and trailing zeros). Nothing else: no sign (not even "-0" or
 * "+1"), no exponent ("1e5"), no spaces, no "_" -- a plain decimal, the form
 * Binance sends. Every accepted text gives exactly decimal.Decimal(text) /
 * scale, whatever its length; every value whose exact quotient is a whole
 * number within int64 parses (the quotient, not value * 10^exponent, is what
 * must fit: "2036854775808" in units of 0.00000025 is 8147419103232000000).
 * Error precedence, first match wins:
 *   empty string                                   HFT_DEC_EMPTY
 *   leading '-' (also "-0")                        HFT_DEC_NEGATIVE
 *   any other char outside [0-9.], or a 2nd '.'    HFT_DEC_SYNTAX
 *   no digit at all (".")                          HFT_DEC_EMPTY
 *   a nonzero digit beyond the scale's decimals    HFT_DEC_NOT_MULTIPLE
 *   floor(value / scale) > INT64_MAX               HFT_DEC_OVERFLOW
 *   value / scale not a whole number               HFT_DEC_NOT_MULTIPLE
 * On error *out is left untouched.
 */
#ifndef HFTCORE_DECIMAL_H
#define HFTCORE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hft_scale {
    int64_t mantissa; /* > 0 */
    int32_t exponent; /* 0..18 */
} hft_scale_t;

#define HFT_DEC_OK            0
#define HFT_DEC_EMPTY        (-1) /* no digits */
#define HFT_DEC_SYNTAX       (-2) /* not a plain decimal number */
#define HFT_DEC_NEGATIVE     (-3) /* starts with '-' */
#define HFT_DEC_OVERFLOW     (-4) /* does not fit int64 units */
#define HFT_DEC_NOT_MULTIPLE (-5) /* not a whole multiple of the scale */
#define HFT_DEC_ZERO_SCALE   (-6) /* a scale must be > 0 (hft_scale_from_str) */

#define HFT_DEC__MAX_EXPONENT 18

static const uint64_t hft_dec__pow10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
    1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
    1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
    1000000000000000000ULL, 10000000000000000000ULL};

#define HFT_DEC__ONES  0x0101010101010101ULL
#define HFT_DEC__ZEROS 0x3030303030303030ULL /* "00000000" */

static inline uint64_t hft_dec__load8(const char* p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Little-endian host? (the SWAR fast paths assume the first char is the low byte) */
static inline int hft_dec__little_endian(void)
{
    const uint16_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}

/* Per byte of v (ASCII): a nonzero byte in the result marks a non-digit. The
 * lowest marked byte is always exact (carries only move to higher bytes). */
static inline uint64_t hft_dec__nondigit_mask(uint64_t v)
{
    uint64_t x = v ^ HFT_DEC__ZEROS; /* digits -> 0x00..0x09 */
    return (x & 0xF0F0F0F0F0F0F0F0ULL) | ((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL);
}

static inline unsigned hft_dec__ctz64(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned n = 0;
    while (!(x & 1u)) { x >>= 1; n++; }
    return n;
#endif
}

/* Value of 8 ASCII digits, the first char in the low byte (zero bytes count as 0). */
static inline uint64_t hft_dec__swar8(uint64_t v)
{
    v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
    return ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

#if defined(__GNUC__) || defined(__clang__)
#define HFT_DEC__NOINLINE __attribute__((noinline))
#define HFT_DEC__INLINE inline __attribute__((always_inline))
#else
#define HFT_DEC__NOINLINE
#define HFT_DEC__INLINE inline
#endif

/* ---------------------------------------------------------------------- */
/* Exact, simple reference path: defines every result. Kept out of line so */
/* that the fast path inlines into hot loops.                              */
/* ---------------------------------------------------------------------- */

/* Digit i of N, the integer digits of s followed by exactly e fraction digits
 * (missing ones are 0); dot is the index of the '.' (n when there is none). */
static inline unsigned hft_dec__digit(const char* s, size_t n, size_t dot, size_t i)
{
    size_t j = i < dot ? i : i + 1;
    return j < n ? (unsigned)(s[j] - '0') : 0u;
}

/* N / m digit by digit (long division, no N in a machine word), for the case
 * where N itself is beyond INT64_MAX but its quotient by the mantissa m > 1
 * may fit: the remainder r < m <= INT64_MAX, so r * 10 + d < 2^67 is kept as
 * two words and the quotient digit (0..9) found by subtraction. */
static HFT_DEC__NOINLINE int hft_dec__parse_div(const char* s, size_t n, size_t dot, size_t nd, uint64_t m,
                                                int64_t* out)
{
    uint64_t q = 0, r = 0;
    size_t i;
    for (i = 0; i < nd; i++) {
        unsigned d = hft_dec__digit(s, n, dot, i), qd = 0;
        /* t = r * 10 + d = (r << 3) + (r << 1) + d, as hi:lo */
        uint64_t a = r << 3, b = r << 1, lo = a + b, hi = (r >> 61) + (r >> 63);
        hi += lo < a;
        lo += d;
        hi += lo < d;
        while (hi != 0 || lo >= m) { /* at most 9 rounds: t < 10 * m */
            hi -= lo < m;
            lo -= m;
            qd++;
        }
        r = lo;
        if (q > ((uint64_t)INT64_MAX - qd) / 10) return HFT_DEC_OVERFLOW;
        q = q * 10 + qd;
    }
    if (r) return HFT_DEC_NOT_MULTIPLE;
    *out = (int64_t)q;
    return HFT_DEC_OK;
}

static HFT_DEC__NOINLINE int hft_dec__parse_slow(const char* s, size_t n, const hft_scale_t* scale, int64_t* out)
{
    size_t i, dot = n, ndigits = 0, nd;
    int32_t e = scale->exponent;
    uint64_t acc = 0;
    const uint64_t lim = (uint64_t)INT64_MAX;

    if (n == 0) return HFT_DEC_EMPTY;
    if (s[0] == '-') return HFT_DEC_NEGATIVE;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9') ndigits++;
        else if (c == '.' && dot == n) dot = i;
        else return HFT_DEC_SYNTAX;
    }
    if (ndigits == 0) return HFT_DEC_EMPTY;
    /* digits beyond the scale's decimals must all be '0' */
    if (dot < n) {
        for (i = dot + 1 + (size_t)e; i < n; i++)
            if (s[i] != '0') return HFT_DEC_NOT_MULTIPLE;
    }
    /* N = integer digits followed by exactly e fractional digits; units = N / mantissa */
    nd = dot + (size_t)e;
    for (i = 0; i < nd; i++) {
        unsigned d = hft_dec__digit(s, n, dot, i);
        if (acc > (lim - d) / 10) {
            /* N is beyond int64: only the quotient has to fit */
            if (scale->mantissa == 1) return HFT_DEC_OVERFLOW;
            return hft_dec__parse_div(s, n, dot, nd, (uint64_t)scale->mantissa, out);
        }
        acc = acc * 10 + d;
    }
    if (scale->mantissa != 1) {
        uint64_t m = (uint64_t)scale->mantissa;
        if (acc % m) return HFT_DEC_NOT_MULTIPLE;
        acc /= m;
    }
    *out = (int64_t)acc;
    return HFT_DEC_OK;
}

/*
 * Parse the decimal text s[0..n) into a count of scale units. 0 or HFT_DEC_*.
 *
 * Fast path (little-endian hosts): 8..24 chars, 1..7 integer digits, a '.',
 * the scale's e <= 8 decimals present, the rest of the fraction all '0' --
 * e.g. "61837.63000000", "0.32329000". When the integer and scale digits fit
 * the first 8 bytes (the Binance case) one SWAR conversion yields the result. Everything else (and every error) goes
 * through the simple exact path above, which defines the results.
 */
static HFT_DEC__INLINE int hft_parse_units(const char* s, size_t n, const hft_scale_t* scale, int64_t* out)
{
    if (n >= 8 && n <= 24 && hft_dec__little_endian()) {
        const int32_t e = scale->exponent;
        uint64_t v = hft_dec__load8(s);
        uint64_t nd = hft_dec__nondigit_mask(v);
        if (nd != 0) {
            size_t k = hft_dec__ctz64(nd) >> 3; /* integer digits */
            size_t fl = n - k - 1;              /* fraction length */
            if (k >= 1 && s[k] == '.' && k + 1 + (size_t)e <= 8 && (size_t)e <= fl) {
                /* integer and scale digits all inside the first 8 bytes, e.g.
                 * "61837.63|000000" or "0.32329|000": glue them into one word and
                 * convert once: N = int digits followed by the e scale digits */
                size_t D = k + (size_t)e, t = fl - (size_t)e;
                uint64_t w = v & ((1ULL << (8 * k)) - 1);
                uint64_t N;
                if (e > 0) w |= ((v >> (8 * (k + 1))) & ((1ULL << (8 * e)) - 1)) << (8 * k);
                w <<= 8 * (8 - D);
                if ((hft_dec__nondigit_mask(w) >> (8 * (8 - D))) == 0) {
                    int ok = 1;
                    if (t) {
                        /* the tail s[k+1+e..n) must be all '0' */
                        const char* tail = s + k + 1 + e;
                        while (t > 8) {
                            if (hft_dec__load8(tail) != HFT_DEC__ZEROS) { ok = 0; break; }
                            tail += 8;
                            t -= 8;
                        }
                        if (ok) {
                            uint64_t z = hft_dec__load8(s + n - 8) ^ HFT_DEC__ZEROS;
                            if (t < 8) z >>= 8 * (8 - t);
                            if (z) ok = 0;
                        }
                    }
                    if (ok) {
                        N = hft_dec__swar8(w);
                        if (scale->mantissa != 1) {
                            uint64_t m = (uint64_t)scale->mantissa;
                            if (N % m) return HFT_DEC_NOT_MULTIPLE;
                            N /= m;
                        }
                        *out = (int64_t)N;
                        return HFT_DEC_OK;
                    }
                }
            } else if (k >= 1 && s[k] == '.' && e <= 8 && (size_t)e <= fl) {
                uint64_t ipart = hft_dec__swar8(v << (8 * (8 - k)));
                uint64_t fpart = 0;
                size_t t = fl - (size_t)e;      /* tail that must be all '0' */
                const char* tail = s + k + 1 + e;
                int ok = 1;
                if (e > 0) {
                    const char* f = s + k + 1; /* first fraction digit */
                    if (fl >= 8) {
                        /* 8 bytes from the first fraction digit: the low e bytes */
                        uint64_t w = hft_dec__load8(f);
                        unsigned keep = (unsigned)(8 * (8 - e));
                        if (keep == 0) {
                            if (hft_dec__nondigit_mask(w)) ok = 0;
                            else fpart = hft_dec__swar8(w);
                        } else {
                            w <<= keep; /* drop the bytes after the e digits */
                            if (hft_dec__nondigit_mask(w) >> keep) ok = 0;
                            else fpart = hft_dec__swar8(w);
                        }
                    } else if (k + 1 + (size_t)e >= 8) {
                        /* 8 bytes ending at the last scale digit */
                        uint64_t w = hft_dec__load8(tail - 8);
                        unsigned drop = (unsigned)(8 * (8 - e));
                        if (drop == 0) {
                            if (hft_dec__nondigit_mask(w)) ok = 0;
                            else fpart = hft_dec__swar8(w);
                        } else {
                            if (hft_dec__nondigit_mask(w) >> drop) ok = 0;
                            else fpart = hft_dec__swar8((w >> drop) << drop);
                        }
                    } else {
                        size_t j;
                        for (j = 0; j < (size_t)e; j++) {
                            unsigned d = (unsigned)(f[j] - '0');
                            if (d > 9) { ok = 0; break; }
                            fpart = fpart * 10 + d;
                        }
                    }
                }
                if (ok && t) {
                    /* the tail must be all '0'; the string end is >= 8 bytes from s */
                    while (t > 8) {
                        if (hft_dec__load8(tail) != HFT_DEC__ZEROS) { ok = 0; break; }
                        tail += 8;
                        t -= 8;
                    }
                    if (ok) {
                        uint64_t w = hft_dec__load8(s + n - 8) ^ HFT_DEC__ZEROS;
                        if (t < 8) w >>= 8 * (8 - t);
                        if (w) ok = 0;
                    }
                }
                if (ok) {
                    /* ipart < 1e7, e <= 8: no overflow possible */
                    uint64_t N = ipart * hft_dec__pow10[e] + fpart;
                    if (scale->mantissa != 1) {
                        uint64_t m = (uint64_t)scale->mantissa;
                        if (N % m) return HFT_DEC_NOT_MULTIPLE;
                        N /= m;
                    }
                    *out = (int64_t)N;
                    return HFT_DEC_OK;
                }
            }
        }
    }
    return hft_dec__parse_slow(s, n, scale, out);
}

/* Mask of the n lowest bytes (0 <= n <= 8). */
static inline uint64_t hft_dec__low_bytes(size_t n)
{
    return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* Per byte of v: 0x80 marks a '"' byte; exact for the lowest marked byte. */
static inline uint64_t hft_dec__quote_mask(uint64_t v)
{
    uint64_t x = v ^ 0x2222222222222222ULL; /* '"' -> 0x00 */
    return (x - HFT_DEC__ONES) & ~x & 0x8080808080808080ULL;
}

/*
 * Shortcut for a decimal inside a JSON string, finding its end and its value in
 * one pass: s is the first byte after the opening quote and at least `avail`
 * bytes are readable from s (24 are needed).
 *
 * When s holds 1..7 integer digits, a '.', fraction digits and then the closing
 * '"' within its first 16 bytes (e.g. `61837.63000000"`), the scale has e <= 8
 * decimals and the value is a valid count of scale units, it stores the value
 * in *out and the offset of the closing quote in *len, and returns 1.
 * Otherwise it returns 0 and writes nothing: the caller then finds the end of
 * the string and calls hft_parse_units, which defines every result (including
 * every error). So this function never changes a result; it only saves the
 * separate scans.
 *
 * The end of the string is found from two independent 8-byte loads, so that a
 * scanner stepping from string to string waits only for that short chain; the
 * checks and the digit conversion are off it.
 */
static HFT_DEC__INLINE int hft_parse_units_quoted(const char* s, size_t avail, const hft_scale_t* scale,
                                                  int64_t* out, size_t* len)
{
    const int32_t e = scale->exponent;
    uint64_t v0, fw, N;
    size_t n, k, fl, d;

    if (avail < 24 || e > 8 || !hft_dec__little_endian()) return 0;
#if defined(__SSE2__)
    {
        /* bit i of each mask tells about byte s[i], i < 16 */
        const __m128i x = _mm_loadu_si128((const __m128i*)s);
        const unsigned quote = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
        /* digit iff (byte - '0') < 10 unsigned, via a signed compare after ^0x80 */
        const __m128i y = _mm_xor_si128(_mm_sub_epi8(x, _mm_set1_epi8('0')), _mm_set1_epi8((char)0x80));
        const unsigned digit = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(y, _mm_set1_epi8((char)(0x80 + 10))));
        unsigned before, nondigit;
        if (quote == 0) return 0;
        n = hft_dec__ctz64(quote);              /* the first '"' */
        before = (1u << n) - 1;
        nondigit = ~digit & before;             /* must be exactly the '.' */
        if (nondigit == 0) return 0;
        k = hft_dec__ctz64(nondigit);           /* integer digits */
        if (k == 0 || k > 7 || nondigit != (1u << k) || s[k] != '.') return 0;
    }
    v0 = hft_dec__load8(s);
#else
    {
        uint64_t v1, q0, q1, nd0;
        v0 = hft_dec__load8(s);
        v1 = hft_dec__load8(s + 8);
        q0 = hft_dec__quote_mask(v0);
        q1 = hft_dec__quote_mask(v1);
        if (q0) n = hft_dec__ctz64(q0) >> 3;    /* the first '"' */
        else if (q1) n = 8 + (hft_dec__ctz64(q1) >> 3);
        else return 0;
        /* [0, n) = 1..7 digits, '.', digits. The non-digit mask flags every
         * non-digit byte (and possibly a byte right after one: conservative). */
        nd0 = hft_dec__nondigit_mask(v0);
        if (nd0 == 0) return 0;
        k = hft_dec__ctz64(nd0) >> 3;           /* integer digits */
        if (k == 0 || k >= n || s[k] != '.') return 0;
        nd0 &= ~(0xFFULL << (8 * k));           /* the '.' itself */
        if (nd0 & hft_dec__low_bytes(n)) return 0;
        if (n > 8 && (hft_dec__nondigit_mask(v1) & hft_dec__low_bytes(n - 8))) return 0;
    }
#endif
    fl = n - k - 1;                             /* fraction digits, 0..14 */
    fw = hft_dec__load8(s + k + 1);             /* its first 8 bytes */
    /* fraction digits past the e that count must be '0' */
    if ((fw ^ HFT_DEC__ZEROS) & hft_dec__low_bytes(fl < 8 ? fl : 8) & ~hft_dec__low_bytes((size_t)e)) return 0;
    if (fl > 8 && ((hft_dec__load8(s + k + 9) ^ HFT_DEC__ZEROS) & hft_dec__low_bytes(fl - 8))) return 0;
    d = (size_t)e < fl ? (size_t)e : fl;        /* fraction digits that count */
    if (k + d <= 8) {
        /* integer digits and the d counting fraction digits glued into one
         * word ("61837.63" -> "6183763"): one SWAR conversion */
        uint64_t w = (v0 & hft_dec__low_bytes(k)) | ((fw & hft_dec__low_bytes(d)) << (8 * k));
        N = hft_dec__swar8(w << (8 * (8 - k - d)));
    } else {
        uint64_t ipart = hft_dec__swar8(v0 << (8 * (8 - k)));
        uint64_t fpart = hft_dec__swar8(fw << (8 * (8 - d))); /* d >= 2 here */
        N = ipart * hft_dec__pow10[d] + fpart;                /* < 1e15 */
    }
    N *= hft_dec__pow10[(size_t)e - d];         /* fraction shorter than e */
    if (scale->mantissa != 1) {
        uint64_t m = (uint64_t)scale->mantissa;
        if (N % m) return 0;
        N /= m;
    }
    *out = (int64_t)N;
    *len = n;
    return 1;
}

/*
 * Parse a positive tick/lot size such as "0.01000000" into a scale.
 * Errors: the hft_parse_units syntax codes, HFT_DEC_ZERO_SCALE for a zero,
 * HFT_DEC_OVERFLOW when the mantissa does not fit int64 or more than 18
 * decimals remain after stripping trailing zeros.
 */
static inline int hft_scale_from_str(const char* s, size_t n, hft_scale_t* out)
{
    size_t i, dot = n, ndigits = 0, last;
    int32_t e = 0;
    uint64_t acc = 0;
    const uint64_t lim = (uint64_t)INT64_MAX;

    if (n == 0) return HFT_DEC_EMPTY;
    if (s[0] == '-') return HFT_DEC_NEGATIVE;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9') ndigits++;
        else if (c == '.' && dot == n) dot = i;
        else return HFT_DEC_SYNTAX;
    }
    if (ndigits == 0) return HFT_DEC_EMPTY;
    /* strip trailing fractional zeros (and a trailing '.') */
    last = n;
    if (dot < n) {
        while (last > dot + 1 && s[last - 1] == '0') last--;
        if (last == dot + 1) last = dot;
    }
    if (dot < last) {
        size_t fd = last - dot - 1;
        if (fd > HFT_DEC__MAX_EXPONENT) return HFT_DEC_OVERFLOW;
        e = (int32_t)fd;
    }
    for (i = 0; i < last; i++) {
        unsigned d;
        if (i == dot) continue;
        d = (unsigned)(s[i] - '0');
        if (acc > (lim - d) / 10) return HFT_DEC_OVERFLOW;
        acc = acc * 10 + d;
    }
    if (acc == 0) return HFT_DEC_ZERO_SCALE;
    out->mantissa = (int64_t)acc;
    out->exponent = e;
    return HFT_DEC_OK;
}

/*
 * Write the decimal text of units * scale into buf (NUL-terminated): a '-' for
 * negatives, at least one integer digit, and exactly `exponent` decimals
 * (none when exponent == 0). (6183763, 0.01) -> "61837.63", (201, 0.5) ->
 * "100.5", (12, 10) -> "120". Returns the length, or -1 if cap is too small.
 */
static inline int hft_format_units(int64_t units, const hft_scale_t* scale, char* buf, size_t cap)
{
    /* decimal digits of |units| * mantissa, least significant first */
    unsigned char prod[48];
    size_t nprod = 0, len, pos, i;
    int neg = units < 0;
    int32_t e = scale->exponent;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    uint64_t m = scale->mantissa > 0 ? (uint64_t)scale->mantissa : 1u;

    if (e < 0) e = 0;
    if (e > HFT_DEC__MAX_EXPONENT) e = HFT_DEC__MAX_EXPONENT;
    if (m == 1 || u <= UINT64_MAX / m) {
        uint64_t x = u * m;
        do { prod[nprod++] = (unsigned char)(x % 10); x /= 10; } while (x);
    } else {
        /* schoolbook product of the two digit strings */
        unsigned char du[20], dm[20];
        unsigned acc[48];
        size_t nu = 0, nm = 0, j;
        uint64_t x;
        for (x = u; x; x /= 10) du[nu++] = (unsigned char)(x % 10);
        for (x = m; x; x /= 10) dm[nm++] = (unsigned char)(x % 10);
        memset(acc, 0, sizeof acc);
        for (i = 0; i < nu; i++)
            for (j = 0; j < nm; j++) acc[i + j] += (unsigned)du[i] * dm[j];
        nprod = nu + nm;
        for (i = 0; i + 1 < nprod; i++) { acc[i + 1] += acc[i] / 10; acc[i] %= 10; }
        for (i = 0; i < nprod; i++) prod[i] = (unsigned char)acc[i];
        while (nprod > 1 && prod[nprod - 1] == 0) nprod--;
    }
    /* pad so that there is at least one integer digit */
    while (nprod < (size_t)e + 1) prod[nprod++] = 0;
    len = (size_t)neg + nprod + (e > 0 ? 1u : 0u);
    if (len + 1 > cap) return -1;
    pos = 0;
    if (neg) buf[pos++] = '-';
    for (i = nprod; i > 0; i--) {
        if (e > 0 && i == (size_t)e) buf[pos++] = '.';
        buf[pos++] = (char)('0' + prod[i - 1]);
    }
    buf[pos] = '\0';
    return (int)pos;
}

static inline const char* hft_dec_strerror(int code)
{
    switch (code) {
    case HFT_DEC_OK: return "ok";
    case HFT_DEC_EMPTY: return "no digits";
    case HFT_DEC_SYNTAX: return "not a plain decimal number";
    case HFT_DEC_NEGATIVE: return "negative";
    case HFT_DEC_OVERFLOW: return "out of the int64 range";
    case HFT_DEC_NOT_MULTIPLE: return "not a whole multiple of the scale";
    case HFT_DEC_ZERO_SCALE: return "a scale must be greater than zero";
    default: return "unknown decimal error";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* HFTCORE_DECIMAL_H */
