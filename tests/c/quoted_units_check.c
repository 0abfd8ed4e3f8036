/* Differential check of hft_parse_units_quoted against hft_parse_units: for
 * random and edge-case strings, whenever the shortcut accepts, the exact path
 * must accept with the same value and the closing quote must be the first '"'.
 * Built twice by tests/test_decimal_quoted.py: as is (SSE2 on x86-64) and with
 * -U__SSE2__ (the portable SWAR path). Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hftcore/decimal.h"

static unsigned long long rng = 88172645463325252ULL;
static unsigned rnd(unsigned n) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned)(rng % n); }

int main(void)
{
    static const char alphabet[] = "0123456789012345678900000.\"\\ -e+x";
    static const char* scales[] = {"0.01", "0.00001", "0.00000001", "1", "10", "0.5", "0.25", "0.001", "0.1", "5"};
    long accepted = 0, i;
    for (i = 0; i < 3000000; i++) {
        char buf[40];
        hft_scale_t sc = {1, 0};
        int64_t a = -1, b = -1;
        size_t len = 0, j, n = 1 + rnd(20);
        const char* sz = scales[rnd(sizeof scales / sizeof *scales)];
        hft_scale_from_str(sz, strlen(sz), &sc);
        for (j = 0; j < sizeof buf; j++) buf[j] = alphabet[rnd(sizeof alphabet - 1)];
        if (rnd(2)) { /* mostly well-formed numbers */
            size_t k = 1 + rnd(8), fl = rnd(16);
            for (j = 0; j < k; j++) buf[j] = (char)('0' + rnd(10));
            buf[k] = '.';
            for (j = 0; j < fl; j++) buf[k + 1 + j] = rnd(3) ? '0' : (char)('0' + rnd(10));
            buf[k + 1 + fl] = '"';
            n = k + 1 + fl;
        }
        if (hft_parse_units_quoted(buf, sizeof buf, &sc, &a, &len)) {
            const char* q = memchr(buf, '"', sizeof buf);
            accepted++;
            if (q == NULL || (size_t)(q - buf) != len) { printf("bad len %.*s\n", 30, buf); return 1; }
            if (hft_parse_units(buf, len, &sc, &b) != HFT_DEC_OK || a != b) {
                printf("mismatch %.*s scale %s: %lld vs %lld\n", (int)len, buf, sz, (long long)a, (long long)b);
                return 1;
            }
        } else {
            /* a well-formed, valid number the shortcut refused is allowed, but
             * the common Binance shapes must be taken */
            (void)n;
        }
    }
    {   /* the shapes Binance prints must take the shortcut */
        static const char* must[] = {"61837.63000000\"", "0.32329000\"", "3.14159\"", "0.50579\"", "12.\"", "1234567.12345678\""};
        hft_scale_t sc = {1, 0};
        size_t m;
        hft_scale_from_str("0.00001", 7, &sc);
        for (m = 0; m < sizeof must / sizeof *must; m++) {
            char buf[40];
            int64_t a;
            size_t len;
            memset(buf, ' ', sizeof buf);
            memcpy(buf, must[m], strlen(must[m]));
            if (!hft_parse_units_quoted(buf, sizeof buf, &sc, &a, &len) && m != 5) { printf("refused %s\n", must[m]); return 1; }
        }
    }
    printf("ok %ld accepted\n", accepted);
    return accepted > 100000 ? 0 : 1;
}
