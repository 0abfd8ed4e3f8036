/*
 * hftcore/rng.h -- the core's deterministic random numbers: xoshiro256** (Blackman
 * and Vigna) seeded by splitmix64. One generator for the synthetic market and the
 * backtester's random fill draws, so the same seed gives the same stream in both
 * and in the pure-Python twin (hftmm.backtesting.reference.Xoshiro256ss).
 */
#ifndef HFTCORE_RNG_H
#define HFTCORE_RNG_H

#include <stdint.h>

static inline uint64_t hft_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* state s[0..3] from one 64-bit seed (splitmix64 outputs) */
static inline void hft_rng_seed(uint64_t *s, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        s[i] = z ^ (z >> 31);
    }
}

/* next 64 random bits */
static inline uint64_t hft_rng_next(uint64_t *s) {
    const uint64_t result = hft_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = hft_rotl(s[3], 45);
    return result;
}

/* uniform in (0, 1]: the top 53 bits plus a half, over 2^53 (never 0; the
 * largest value rounds to 1.0) */
static inline double hft_rng_u01(uint64_t *s) {
    return ((double)(hft_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

#endif /* HFTCORE_RNG_H */
