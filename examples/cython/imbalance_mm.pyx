# cython: language_level=3
"""The imbalance market maker of examples/imbalance_mm.py at full speed: a Cython
subclass of the built-in :class:`hftcore.strategy.MarketMaker` that only replaces
its fair value. Everything else -- EWMA sigma, online A/k, AS/GLFT quotes, the
requote rules, the fair share of the order-rate budget, the trader's limits -- is
the compiled market maker's, from the same StrategyConfig fields.

Build against the installed wheel (``python setup.py build_ext --inplace`` here),
then::

    hftmm backtest --strategy imbalance_mm:ImbalanceMM
    hftmm live --paper --strategy imbalance_mm:ImbalanceMM

(with this directory on PYTHONPATH). The drivers make it as
``ImbalanceMM(maker_params(...))`` (a MarketMaker subclass without ``from_config``).
"""
from libc.stdint cimport int64_t

from hftcore.strategy cimport MarketMaker

cdef enum:
    MAX_LEVELS = 64


cdef class ImbalanceMM(MarketMaker):
    """Fair value (ticks) = mid + alpha x I x half-spread, I = (bid lots - ask lots) /
    (bid lots + ask lots) over the top ``levels`` levels a side (set them after
    construction: ``mm.alpha``, ``mm.levels``)."""
    cdef public double alpha
    cdef public int levels
    cdef readonly double imbalance

    def __init__(self, dict params not None):
        super().__init__(params)
        self.alpha = 0.5
        self.levels = 5

    cdef double fair_value_c(self, int64_t bb, int64_t ba, int64_t bq, int64_t aq) noexcept nogil:
        cdef int64_t ticks[MAX_LEVELS]
        cdef int64_t lots[MAX_LEVELS]
        cdef Py_ssize_t i, n
        cdef double b = 0.0, a = 0.0
        cdef int m = self.levels if 0 < self.levels <= MAX_LEVELS else MAX_LEVELS
        n = self.book.top_c(0, m, ticks, lots)
        for i in range(n):
            b += <double>lots[i]
        n = self.book.top_c(1, m, ticks, lots)
        for i in range(n):
            a += <double>lots[i]
        self.imbalance = (b - a) / (b + a) if b + a > 0 else 0.0
        return (<double>bb + <double>ba) * 0.5 + self.alpha * self.imbalance * 0.5 * <double>(ba - bb)
