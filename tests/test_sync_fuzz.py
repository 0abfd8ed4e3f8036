"""BookSync against adversarial streams and the exchange's true book (tests/sync_fuzz.py):
whenever it says ready its book is the true book, it recovers once the faults stop,
and on fault-free streams it agrees step by step with a client written from
Binance's documented procedure alone. CI runs 100k sequences (.ci/run); the
suite runs a bounded share, seeded, so a failure names its seed."""
from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
import sync_fuzz  # noqa: E402


def test_adversarial_sequences_keep_the_book_true_and_recover():
    tot = sync_fuzz.run_many(4000, seed0=0)
    assert tot["sequences"] == 4000
    # the run did what it says: faults injected, snapshots served, the book checked while ready
    assert tot["faults"] > 10_000 and tot["snapshots"] > 10_000 and tot["ready_checks"] > 100_000


def test_fault_free_sequences_match_the_documented_procedure():
    tot = sync_fuzz.run_many(1500, seed0=10**6, faults=False)
    assert tot["faults"] == 0 and tot["unverifiable"] == 0 and tot["ready_checks"] > 40_000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**63 - 1), st.integers(1, 30), st.floats(0.05, 0.9))
def test_any_seed_fault_rate_and_length(seed, n_faulty, rate):
    sync_fuzz.run_sequence(seed, n_faulty=n_faulty, fault_rate=rate)
