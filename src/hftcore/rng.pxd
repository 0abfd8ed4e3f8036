# cython: language_level=3
"""C-level mirror of include/hftcore/rng.h: xoshiro256** seeded by splitmix64."""
from libc.stdint cimport uint64_t

cdef extern from "hftcore/rng.h" nogil:
    void hft_rng_seed(uint64_t* s, uint64_t seed)
    uint64_t hft_rng_next(uint64_t* s)
    double hft_rng_u01(uint64_t* s)
