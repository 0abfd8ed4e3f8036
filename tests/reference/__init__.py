"""Pure-Python twins of the compiled core, for tests only (slow, obviously right).

:mod:`reference.replay` mirrors hftcore.exchange (ExchangeModel), hftcore.strategy
(Trader, Strategy, MarketMaker, PyStrategy) and hftcore.backtest (ReplayKernel)
step by step, so the differential tests (tests/test_core_twin.py) can demand
bit-identical fills, samples, intents and counters.
"""
