"""N strategies in one pass of the replay kernel (ReplayKernel.multi) give, for
each strategy, byte-for-byte the results of running it alone: fills, samples,
counters and final position/cash/fees, whole or chunked, on clean and perturbed
timestamps, for a mix of models, queue/fill models, latencies, fees and seeds."""
from __future__ import annotations

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.backtest import ReplayKernel
from hftcore.synth import SyntheticMarket
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import _concat, kernel_params

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
from test_backtest_reference import CONFIGS, _perturbed, assert_same_run, replay  # noqa: E402


@pytest.fixture(scope="module")
def market():
    m = SyntheticMarket(seed=11)
    ev = _concat(m.initial_snapshot(), m.generate(240.0))
    return ev, m.tick_size, m.lot_size


def replay_multi(specs, events, chunk=None, end_ns=None):
    k = ReplayKernel.multi(specs)
    n = len(specs)
    fills = [[] for _ in range(n)]
    samples = [[] for _ in range(n)]

    def drain():
        for i in range(n):
            fills[i].append(k.take_fills(i))
            samples[i].append(k.take_samples(i))

    if chunk is None:
        k.run(events, 0, True)
    else:
        tail = np.zeros(0, dtype=EVENT_DTYPE)
        for s in range(0, len(events), chunk):
            arr = _concat(tail, events[s:s + chunk])
            i = k.run(arr, len(tail), False)
            tail = arr[i:].copy()
            drain()
        k.run(tail, len(tail), True)
    k.finish(int(events["exch_ts"][-1]) if end_ns is None else end_ns)
    drain()
    return [dict(fills=np.concatenate(fills[i]), samples=np.concatenate(samples[i]), counters=k.counters(i),
                 final=(k.position_of(i), k.cash_of(i), k.fees_of(i))) for i in range(n)]


def _specs(tick, lot, feed_latency):
    """Every reference config (with this feed latency) crossed with sweep-like
    changes of gamma, horizon, min spread, sampling and seed."""
    specs = []
    extra = [dict(), dict(gamma=0.5, time_horizon=5.0), dict(gamma=0.02, min_spread=0.3, sample_interval=0.25),
             dict(time_horizon=120.0, min_spread=1.0, ewma_half_life=10.0)]
    for j, cfg in enumerate(CONFIGS):
        for m, x in enumerate(extra):
            c = dict(cfg)
            c.update(x)
            c["feed_latency"] = feed_latency
            c.setdefault("sample_interval", 0.5)
            params, quote = kernel_params(BacktestConfig(**c), tick, lot)
            specs.append((params, quote, 3 + j + 11 * m))
    return specs


@pytest.mark.parametrize("feed_latency", [None, 0.0, 0.002])
@pytest.mark.parametrize("perturb", [False, True])
def test_multi_equals_single(market, feed_latency, perturb):
    ev, tick, lot = market
    if perturb:
        ev = _perturbed(ev)
    specs = _specs(tick, lot, feed_latency)
    multi = replay_multi(specs, ev)
    nonempty = 0
    for spec, got in zip(specs, multi):
        alone = replay(ReplayKernel, spec[0], spec[1], spec[2], ev)
        assert_same_run(alone, got)
        nonempty += len(alone["fills"]) > 0
    assert nonempty >= len(specs) // 2   # the comparison is not vacuous


@pytest.mark.parametrize("chunk", [997, 20_000])
def test_multi_chunked_equals_single_whole(market, chunk):
    ev, tick, lot = market
    specs = _specs(tick, lot, None)[::3]
    multi = replay_multi(specs, ev, chunk=chunk, end_ns=int(ev["exch_ts"][-1]) + 3 * 10**9)
    for spec, got in zip(specs, multi):
        alone = replay(ReplayKernel, spec[0], spec[1], spec[2], ev, end_ns=int(ev["exch_ts"][-1]) + 3 * 10**9)
        assert_same_run(alone, got)


def test_multi_one_strategy_is_the_single_kernel(market):
    ev, tick, lot = market
    params, quote = kernel_params(BacktestConfig(sample_interval=0.5), tick, lot)
    assert_same_run(replay(ReplayKernel, params, quote, 7, ev), replay_multi([(params, quote, 7)], ev)[0])


def test_multi_rejects_unshared_exchange_params(market):
    _, tick, lot = market
    a = kernel_params(BacktestConfig(feed_latency=None), tick, lot)
    b = kernel_params(BacktestConfig(feed_latency=0.001), tick, lot)
    with pytest.raises(ValueError, match="feed_latency_ns"):
        ReplayKernel.multi([(*a, 1), (*b, 1)])
    c = kernel_params(BacktestConfig(), tick * 2, lot)
    with pytest.raises(ValueError, match="tick_size"):
        ReplayKernel.multi([(*a, 1), (*c, 1)])
    with pytest.raises(ValueError):
        ReplayKernel.multi([])
    k = ReplayKernel.multi([(*a, 1)])
    with pytest.raises(IndexError):
        k.take_fills(1)
    assert k.n_strat == 1
