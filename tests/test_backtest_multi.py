"""The driver loop (hftcore.backtest.ReplayKernel) over synthetic data:

* no look-ahead: a run in chunks of any size -- down to one record, as a paper
  session feeds it -- gives byte for byte the results of one whole run (fills,
  equity samples, intents, reports, counters);
* N strategies in one pass give, each, byte for byte the results of running it
  alone (a sweep's pass), for a mix of models, queue / fill models, latencies,
  fees and seeds, on clean and perturbed timestamps;
* the accounting identities hold (position and cash are the sums of the fills;
  equity = cash + position x mid; samples see exactly the fills before them).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from hftcore.exchange import FILL
from hftcore.strategy import NEW, REPLACE
from hftcore.synth import SyntheticMarket
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import _concat, build_kernel

MS = 1_000_000
S = 1_000_000_000

CONFIGS = [
    dict(),  # AS, mid, risk-averse, queue fills, post-only, feed latency from the data, intensity fitted online
    dict(model="glft", fair_value="micro", queue_model="power", queue_power=2.0, order_size=0.003),
    dict(model="glft", queue_model="power", queue_power=3.0, order_size=0.004, estimate_intensity=False,
         maker_fee=-0.0001),
    dict(queue_model="log", post_only=False, taker_fee=0.0005, maker_fee=-0.00005, order_size=0.005,
         quote_refresh_interval=0.02, requote_threshold=0, max_position=0.02),
    dict(fair_value="micro", rolling_horizon=True, fill_model="intensity", estimate_intensity=False,
         fill_A=50.0, fill_k=1.0),
    dict(model="glft", fill_model="intensity", fill_A=20.0, fill_k=0.5, post_only=False),
    dict(order_latency=0.0, response_latency=0.0, cancel_latency=0.02, estimate_intensity=False),
    dict(order_latency=0.05, response_latency=0.03, cancel_latency=0.001, max_position=0.002,
         quote_refresh_interval=0.01, requote_threshold=0, post_only=False, maker_fee=-0.0001, taker_fee=0.0004,
         max_orders_per_second=20.0),
]
BASE = dict(max_daily_loss=1e9, max_drawdown=1.0, sample_interval=0.5)


def configs(feed_latency=None, extra=({},)) -> list[BacktestConfig]:
    out = []
    for j, c in enumerate(CONFIGS):
        for m, x in enumerate(extra):
            out.append(BacktestConfig(**{**BASE, **c, **x, "feed_latency": feed_latency, "seed": 3 + j + 11 * m}))
    return out


@pytest.fixture(scope="module")
def market():
    m = SyntheticMarket(seed=11)
    ev = _concat(m.initial_snapshot(), m.generate(240.0))
    return ev, m.tick_size, m.lot_size


def _perturbed(ev: np.ndarray) -> np.ndarray:
    """Timestamps out of order and receive times before exchange times: exercises
    the running-max clocks."""
    rng = np.random.default_rng(3)
    out = ev.copy()
    out["exch_ts"] += rng.integers(-3 * MS, 3 * MS, len(out))
    out["local_ts"] += rng.integers(-4 * MS, 2 * MS, len(out))
    return out


def run(cfgs, events, tick, lot, chunks=None, end_ns=None) -> list[dict]:
    """One pass of the driver loop over ``events`` (``chunks``: their sizes, cycled)."""
    k = build_kernel(cfgs, tick, lot, "spot", record_intents=True)
    n = len(cfgs)
    got = [dict(fills=[], samples=[], intents=[], reports=[]) for _ in range(n)]

    def drain():
        for i in range(n):
            got[i]["fills"].append(k.take_fills(i))
            got[i]["samples"].append(k.take_samples(i))
            got[i]["intents"].append(k.take_intents(i))
            got[i]["reports"].append(k.take_reports(i))

    if chunks is None:
        k.run(events)
    else:
        s, j = 0, 0
        while s < len(events):
            c = chunks[j % len(chunks)]
            k.run(events[s:s + c])
            s += c
            j += 1
            drain()
    end = int(events["exch_ts"].max()) if end_ns is None else end_ns
    k.finish(end)
    drain()
    out = []
    for i in range(n):
        r = {name: np.concatenate(v) for name, v in got[i].items()}
        c = k.counters(i)
        r["counters"] = c
        r["end"] = max(end, k.clock[1] - 1)        # (reports before the last visible time were delivered too)
        strat, trader = k.agent(i)
        r["final"] = (k.exchange.position(i), k.exchange.cash(i), k.exchange.fees(i))
        r["known"] = (trader.position, trader.cash, trader.fees)
        out.append(r)
    return out


def assert_same(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    """Exact equality of two structured arrays, byte for byte (NaN payloads too)."""
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert a.tobytes() == b.tobytes(), what


def assert_same_run(a: dict, b: dict) -> None:
    for name in ("fills", "samples", "intents", "reports"):
        assert_same(a[name], b[name], name)
    assert a["counters"] == b["counters"]
    assert a["final"] == b["final"] and a["known"] == b["known"]


def check_accounting(r: dict, tick: float, lot: float) -> None:
    f, s = r["fills"], r["samples"]
    pos, cash = 0, 0.0
    cum_pos, cum_cash = [0], [0.0]
    for row in f:
        notional = float(row["px"]) * tick * float(row["qty"]) * lot
        if row["side"] == 0:
            pos += int(row["qty"])
            cash -= notional
        else:
            pos -= int(row["qty"])
            cash += notional
        cash -= float(row["fee"])
        assert row["position"] == pos and row["cash"] == cash
        assert row["report_ts"] >= row["exch_ts"] >= row["submit_ts"]
        cum_pos.append(pos)
        cum_cash.append(cash)
    assert np.all(np.diff(f["exch_ts"]) >= 0)
    eq = s["cash"] + s["position"].astype(np.float64) * lot * s["mid"]
    assert np.array_equal(eq, s["equity"], equal_nan=True)
    assert np.all(np.diff(s["ts"]) > 0)
    # a sample at ts has the fills with exch_ts < ts and possibly those at ts
    lo = np.searchsorted(f["exch_ts"], s["ts"], side="left")
    hi = np.searchsorted(f["exch_ts"], s["ts"], side="right")
    cum_pos, cum_cash = np.array(cum_pos), np.array(cum_cash)
    for j in range(len(s)):
        assert any(cum_pos[k] == s["position"][j] and cum_cash[k] == s["cash"][j] for k in range(lo[j], hi[j] + 1)), j
    assert r["final"][0] == pos and r["final"][1] == cash
    assert math.isclose(r["final"][2], float(np.sum(f["fee"])), rel_tol=1e-12, abs_tol=1e-12)
    # every fill reaches the trader, in order, unless its report is due after the end
    fr = r["reports"][r["reports"]["kind"] == FILL]
    due = f[f["report_ts"] <= r["end"]]
    assert len(fr) == len(due) and np.array_equal(fr["lots"], due["qty"]) and np.array_equal(fr["ts"], due["report_ts"])
    assert r["known"][0] == int(np.sum(np.where(due["side"] == 0, due["qty"], -due["qty"])))


@pytest.mark.parametrize("feed_latency", [None, 0.002])
@pytest.mark.parametrize("perturb", [False, True])
def test_multi_equals_single(market, feed_latency, perturb):
    ev, tick, lot = market
    if perturb:
        ev = _perturbed(ev)
    cfgs = configs(feed_latency, extra=({}, dict(gamma=0.5, time_horizon=5.0),
                                        dict(gamma=0.02, min_spread=0.3)))
    multi = run(cfgs, ev, tick, lot)
    nonempty = 0
    for c, got in zip(cfgs, multi):
        alone = run([c], ev, tick, lot)[0]
        assert_same_run(alone, got)
        check_accounting(got, float(tick), float(lot))
        nonempty += len(alone["fills"]) > 0
    assert nonempty >= len(cfgs) // 2           # the comparison is not vacuous


@pytest.mark.parametrize("chunks", [[1], [997], [20_000], [1, 7, 300, 2, 5000]])
def test_any_chunking_equals_one_run(market, chunks):
    """No look-ahead: the same results whatever the chunks (one record each: a
    paper session deciding in the frame that triggered it)."""
    ev, tick, lot = market
    if chunks == [1]:
        ev = ev[:60_000]
    cfgs = configs(None)[::2]
    end = int(ev["exch_ts"].max()) + 3 * S
    whole = run(cfgs, ev, tick, lot, end_ns=end)
    parts = run(cfgs, ev, tick, lot, chunks=chunks, end_ns=end)
    for a, b in zip(whole, parts):
        assert_same_run(a, b)
    assert sum(len(r["fills"]) for r in whole) > 0


def test_results_depend_on_the_seed_only_where_a_model_is_random(market):
    ev, tick, lot = market
    ev = ev[:80_000]
    det = BacktestConfig(**BASE)                                             # risk-averse queue: no randomness
    rnd = BacktestConfig(**{**BASE, "fill_model": "intensity", "estimate_intensity": False,
                            "fill_A": 50.0, "fill_k": 1.0})
    a, b = run([det], ev, tick, lot)[0], run([det.replace(seed=99)], ev, tick, lot)[0]
    assert_same(a["fills"], b["fills"])
    x, y = run([rnd], ev, tick, lot)[0], run([rnd.replace(seed=99)], ev, tick, lot)[0]
    assert len(x["fills"]) and x["fills"].tobytes() != y["fills"].tobytes()
    assert_same(x["fills"], run([rnd], ev, tick, lot)[0]["fills"])          # and deterministic


def test_rate_limit_holds_in_every_one_second_window(market):
    ev, tick, lot = market
    c = BacktestConfig(**{**BASE, "max_orders_per_second": 5.0, "quote_refresh_interval": 0.001,
                          "requote_threshold": 0, "min_order_lifetime": 0.0})
    r = run([c], ev, tick, lot)[0]
    it = r["intents"]
    sends = np.sort(it["ts"][(it["kind"] == NEW) | (it["kind"] == REPLACE)])   # a replace is one order
    assert len(sends) > 100
    # at most 5 sends in any window (t - 1 s, t]
    j = np.searchsorted(sends, sends - S, side="right")
    assert int(np.max(np.arange(len(sends)) - j + 1)) == 5            # binding, never exceeded
    # the market maker spends the budget itself: the trader had nothing to refuse
    assert r["counters"]["refused_rate"] == 0


def test_build_kernel_refuses_unshared_data_fields(market):
    _, tick, lot = market
    with pytest.raises(ValueError, match="share"):
        build_kernel([BacktestConfig(feed_latency=None), BacktestConfig(feed_latency=0.001)], tick, lot)
    with pytest.raises(ValueError):
        build_kernel([], tick, lot)
    k = build_kernel([BacktestConfig()], tick, lot)
    with pytest.raises(IndexError):
        k.take_fills(1)
    assert k.n_agents == 1
