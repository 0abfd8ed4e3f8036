"""The replay kernel (hftcore.backtest.ReplayKernel) against its pure-Python twin
(hftmm.backtesting.reference.ReferenceReplay): bit-identical results on synthetic
data for many parameter sets, chunking independence, determinism, accounting
identities, and hand-made event sequences for fills, fees, queue position,
post-only and latencies."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.backtest import FILL_DTYPE, SAMPLE_DTYPE, ReplayKernel
from hftcore.synth import SyntheticMarket
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import _concat, kernel_params
from hftmm.backtesting import reference as refmod
from hftmm.backtesting.reference import ReferenceReplay

IMPLS = [ReplayKernel, ReferenceReplay]
MS = 1_000_000
S = 1_000_000_000


# --------------------------------------------------------------------------- helpers


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    """Exact equality of two structured arrays, field by field (NaN == NaN), and
    byte for byte (so -0.0 / NaN payloads would show too)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    for name in a.dtype.names:
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name
    assert a.tobytes() == b.tobytes()


def replay(cls, params, quote, seed, events, chunk=None, end_ns=None):
    """Run like BacktestEngine.run_backtest: chunks with the carried tail."""
    k = cls(params, quote, seed)
    fills, samples = [], []
    if chunk is None:
        k.run(events, 0, True)
    else:
        tail = np.zeros(0, dtype=EVENT_DTYPE)
        for s in range(0, len(events), chunk):
            arr = _concat(tail, events[s:s + chunk])
            i = k.run(arr, len(tail), False)
            tail = arr[i:].copy()
            fills.append(k.take_fills())
            samples.append(k.take_samples())
        k.run(tail, len(tail), True)
    k.finish(int(events["exch_ts"][-1]) if end_ns is None else end_ns)
    fills.append(k.take_fills())
    samples.append(k.take_samples())
    return dict(fills=np.concatenate(fills), samples=np.concatenate(samples), counters=k.counters(),
                final=(k.position, k.cash, k.fees))


def assert_same_run(a: dict, b: dict) -> None:
    assert_same(a["fills"], b["fills"])
    assert_same(a["samples"], b["samples"])
    assert a["counters"] == b["counters"]
    assert a["final"] == b["final"]
    assert all(type(x) is type(y) for x, y in zip(a["final"], b["final"]))


def check_accounting(r: dict, lot: float, tick: float) -> None:
    f, s = r["fills"], r["samples"]
    # fills: position and cash are the running sums of the fills, in order
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
        assert row["report_ts"] >= row["exch_ts"]
        cum_pos.append(pos)
        cum_cash.append(cash)
    assert np.all(np.diff(f["exch_ts"]) >= 0)
    # samples: equity = cash + position * lot * mid, exactly (NaN when the mid is)
    eq = s["cash"] + s["position"].astype(np.float64) * lot * s["mid"]
    assert np.array_equal(eq, s["equity"], equal_nan=True)
    assert np.all(np.diff(s["ts"]) > 0)
    # samples see the fills up to their time: the fills with exch_ts < ts, plus
    # possibly those at exch_ts == ts (order arrivals at ts come before a sample
    # at ts, exchange events at ts after it)
    lo = np.searchsorted(f["exch_ts"], s["ts"], side="left")
    hi = np.searchsorted(f["exch_ts"], s["ts"], side="right")
    cum_pos, cum_cash = np.array(cum_pos), np.array(cum_cash)
    for j in range(len(s)):
        ks = [k for k in range(lo[j], hi[j] + 1) if cum_pos[k] == s["position"][j] and cum_cash[k] == s["cash"][j]]
        assert ks, f"sample {j} at {s['ts'][j]} matches no prefix of the fills"
    fees = np.cumsum(f["fee"])
    assert r["final"][0] == pos and r["final"][1] == cash
    assert math.isclose(r["final"][2], float(fees[-1]) if len(fees) else 0.0, rel_tol=1e-12, abs_tol=1e-12)


# --------------------------------------------------------------------------- synthetic data


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


CONFIGS = [
    dict(),  # AS, mid, risk-averse, queue fills, post-only, feed latency from the data, intensity fitted online
    dict(model="glft", fair_value="micro", queue_model="power", queue_power=2.0, order_size=0.003),
    dict(model="glft", queue_model="power", queue_power=3.0, feed_latency=0.002, order_size=0.004,
         estimate_intensity=False, maker_fee=-0.0001),
    dict(queue_model="log", post_only=False, feed_latency=0.003, taker_fee=0.0005, maker_fee=-0.00005,
         order_size=0.005, quote_refresh_interval=0.02, requote_threshold=0, max_position=0.02),
    dict(fair_value="micro", rolling_horizon=True, fill_model="intensity", estimate_intensity=False,
         fill_A=50.0, fill_k=1.0),
    dict(model="glft", fill_model="intensity", fill_A=20.0, fill_k=0.5, post_only=False, feed_latency=0.0),
    dict(order_latency=0.0, response_latency=0.0, cancel_latency=0.02, estimate_intensity=False),
    dict(order_latency=0.05, response_latency=0.03, cancel_latency=0.001, max_position=0.002,
         quote_refresh_interval=0.01, requote_threshold=0, post_only=False, maker_fee=-0.0001, taker_fee=0.0004),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_kernel_equals_reference(market, cfg):
    ev, tick, lot = market
    params, quote = kernel_params(BacktestConfig(sample_interval=0.5, **cfg), tick, lot)
    a = replay(ReplayKernel, params, quote, 7, ev)
    b = replay(ReferenceReplay, params, quote, 7, ev)
    assert_same_run(a, b)
    assert a["counters"]["fills"] > 0 and a["counters"]["quotes"] > 0
    for r in (a, b):
        check_accounting(r, lot, tick)


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[4]], ids=["power", "taker", "intensity"])
def test_chunking_independence(market, cfg):
    ev, tick, lot = market
    ev = _perturbed(ev[: len(ev) // 2])
    params, quote = kernel_params(BacktestConfig(**cfg), tick, lot)
    whole = replay(ReplayKernel, params, quote, 5, ev)
    assert whole["counters"]["fills"] > 0
    for chunk in (1, 777, 10_000):
        assert_same_run(whole, replay(ReplayKernel, params, quote, 5, ev, chunk=chunk))
    ref_whole = replay(ReferenceReplay, params, quote, 5, ev)
    assert_same_run(whole, ref_whole)
    assert_same_run(ref_whole, replay(ReferenceReplay, params, quote, 5, ev, chunk=1000))


def test_determinism_and_seed(market):
    ev, tick, lot = market
    ev = ev[: len(ev) // 3]
    params, quote = kernel_params(BacktestConfig(**CONFIGS[4]), tick, lot)
    for cls in IMPLS:
        a = replay(cls, params, quote, 42, ev)
        b = replay(cls, params, quote, 42, ev)
        assert a["fills"].tobytes() == b["fills"].tobytes()
        assert a["samples"].tobytes() == b["samples"].tobytes()
        assert a["counters"] == b["counters"]
        c = replay(cls, params, quote, 43, ev)  # random fills: another seed, other fills
        assert c["fills"].tobytes() != a["fills"].tobytes()


def test_dtypes_and_rng():
    assert refmod.FILL_DTYPE == FILL_DTYPE and refmod.SAMPLE_DTYPE == SAMPLE_DTYPE
    # xoshiro256** seeded with splitmix64(0): the reference generator's published first output
    r = refmod.Xoshiro256ss(0)
    assert r.s[0] == 0xE220A8397B1DCDAF  # splitmix64(0), first output
    u = [r.u01() for _ in range(1000)]
    assert all(0.0 < x <= 1.0 for x in u) and 0.45 < sum(u) / len(u) < 0.55


# --------------------------------------------------------------------------- hand-made sequences

T0 = 1000 * S
TICK, LOT = 0.5, 0.01
LOTS = 5
BID_PX, ASK_PX = 10000, 10001
T_QUOTE = T0 + S + 1 * MS           # the strategy sees the book at T0+1s (feed latency 1 ms) and quotes
T_ARRIVE = T_QUOTE + 10 * MS        # entry latency 10 ms
RESP = 20 * MS


def events(rows) -> np.ndarray:
    """rows: (exch_ts, kind, side, px, qty, flags); local_ts = exch_ts + 1 ms."""
    a = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (t, kind, side, px, qty, flags) in enumerate(rows):
        a[i] = (t + MS, t, px, qty, 0, 0, 0, kind, side, flags)
    return a


D, TR, SN = 1, 2, 3      # depth, trade, snapshot
B, E, BE = 1, 2, 3       # flags: begin, end, both


def base_rows():
    """A book 10000/10001 (10 lots a level); a mid move at T0+0.5s and back at
    T0+1s gives the volatility estimate its first return, then the strategy
    quotes (bid 10000, ask 10001: the model spread is far below a tick)."""
    snap = [(T0, SN, 0, 10000 - i, 10, B if i == 0 else 0) for i in range(3)]
    snap += [(T0, SN, 1, 10001 + i, 10, E if i == 2 else 0) for i in range(3)]
    return snap + [(T0 + S // 2, D, 1, 10001, 0, BE), (T0 + S, D, 1, 10001, 10, BE)]


def hand_params(**kw):
    p = dict(tick_size=TICK, lot_size=LOT, order_lots=LOTS, entry_latency_ns=10 * MS, cancel_latency_ns=10 * MS,
             response_latency_ns=RESP, feed_latency_ns=MS, queue_model="risk_averse", queue_power=2.0,
             fill_model="queue", maker_fee=-0.0001, taker_fee=0.0004, post_only=True, requote_interval_ns=S,
             requote_threshold=1000, sample_interval_ns=MS, vol_half_life_s=60.0, estimate_intensity=False,
             intensity_window_s=600.0, intensity_fit_ns=10 * S, fill_A=1.0, fill_k=1.0)
    p.update(kw)
    q = dict(model="as", gamma=1e-6, xi=1e-6, order_qty=LOTS * LOT, k=1e6, A=1.0, horizon_s=30.0, rolling=False,
             fair_value="mid", tick_size=TICK, min_spread=0.0, max_inventory=float("inf"))
    return p, q


def run_hand(rows, **kw):
    """Run both implementations on hand-made rows, check they agree, return the kernel's result."""
    ev = events(base_rows() + rows)
    p, q = hand_params(**kw)
    res = [replay(cls, p, q, 1, ev, end_ns=int(ev["exch_ts"][-1]) + 100 * MS) for cls in IMPLS]
    assert_same_run(*res)
    check_accounting(res[0], LOT, TICK)
    return res[0]


def sample_at(r, t):
    s = r["samples"]
    i = np.searchsorted(s["ts"], t)
    assert s["ts"][i] == t
    return s[i]


def test_hand_quote_placement():
    r = run_hand([(T0 + 2 * S - MS, D, 0, 9998, 11, BE)])
    c = r["counters"]
    assert c["quotes"] == 1 and c["orders_submitted"] == 2 and not r["fills"].size
    # the strategy's working orders show from the quote time on
    assert sample_at(r, T_QUOTE - MS)["bid_px"] == -1
    assert sample_at(r, T_QUOTE)["bid_px"] == BID_PX       # (the strategy's event comes before a sample at its time)
    assert (sample_at(r, T_QUOTE + MS)["bid_px"], sample_at(r, T_QUOTE + MS)["ask_px"]) == (BID_PX, ASK_PX)


@pytest.mark.parametrize("cls", IMPLS)
def test_partial_fills_maker_rebate_and_taker_fee(cls):
    """Taker take at arrival (post_only off), then maker fills in pieces; state after each."""
    maker, taker = -0.0001, 0.0004
    rows = [
        # before our bid arrives: the bid level empties and an ask of 3 lots appears at our bid price
        (T0 + S + 5 * MS, D, 0, BID_PX, 0, B), (T0 + S + 5 * MS, D, 1, BID_PX, 3, E),
        # after the arrival (it took the 3 lots): that ask is gone, our 2 lots rest at the front of the bid level
        (T0 + S + 15 * MS, D, 1, BID_PX, 0, BE),
        (T0 + S + 20 * MS, TR, 0, BID_PX, 1, BE),
        (T0 + S + 30 * MS, TR, 0, BID_PX, 4, BE),
        (T0 + S + 40 * MS, TR, 0, BID_PX, 4, BE),
    ]
    ev = events(base_rows() + rows)
    p, q = hand_params(post_only=False, maker_fee=maker, taker_fee=taker)
    k = cls(p, q, 1)
    n0 = len(base_rows())
    cuts = [n0 + 2, n0 + 3, n0 + 4, n0 + 5, n0 + 6]
    expected = []      # (position, cash, fees) after each cut
    pos, cash, fees = 0, 0.0, 0.0

    def fill(side, px, lots, fee_rate):
        nonlocal pos, cash, fees
        notional = float(px) * TICK * float(lots) * LOT
        fee = notional * fee_rate
        pos += lots if side == 0 else -lots
        cash += -notional if side == 0 else notional
        cash -= fee
        fees += fee

    # arrival at T_ARRIVE: happens when the next exchange event (T0+1.015 s) is processed
    expected.append((pos, cash, fees))                     # after the crossing ask appeared: nothing yet
    fill(0, BID_PX, 3, taker)
    expected.append((pos, cash, fees))                     # taker: 3 lots at the ask (= our price)
    fill(0, BID_PX, 1, maker)
    expected.append((pos, cash, fees))                     # maker: 1 lot (nothing ahead of us)
    fill(0, BID_PX, 1, maker)
    expected.append((pos, cash, fees))                     # maker: the last lot (4 traded, 1 left)
    expected.append((pos, cash, fees))                     # done: later trades do not fill
    assert expected[1][0] == 3 and math.isclose(expected[1][1], -150.06) and math.isclose(expected[1][2], 0.06)
    assert expected[3][0] == 5 and math.isclose(expected[3][1], -250.0 - 0.06 + 0.01, abs_tol=1e-9)
    assert math.isclose(expected[3][2], 0.06 - 0.01, abs_tol=1e-12)
    tail = np.zeros(0, dtype=EVENT_DTYPE)
    start = 0
    for cut, exp in zip(cuts, expected):
        arr = _concat(tail, ev[start:cut])
        i = k.run(arr, len(tail), False)
        tail = arr[i:].copy()
        start = cut
        assert (k.position, k.cash, k.fees) == exp
    k.run(tail, len(tail), True)
    f = k.take_fills()
    assert list(f["qty"]) == [3, 1, 1] and list(f["taker"]) == [1, 0, 0] and list(f["px"]) == [BID_PX] * 3
    assert f["exch_ts"][0] == T_ARRIVE and list(f["position"]) == [3, 4, 5]
    assert list(f["report_ts"] - f["exch_ts"]) == [RESP] * 3
    c = k.counters()
    assert c["partial_fills"] == 2 and c["taker_lots"] == 3 and c["maker_lots"] == 2 and c["fills"] == 3


@pytest.mark.parametrize("cls", IMPLS)
def test_partial_fills_from_queue(cls):
    """Trades at our price: the first 10 lots are the queue ahead, the rest fills us piece by piece."""
    rows = [(T0 + S + 20 * MS, TR, 0, BID_PX, 12, BE), (T0 + S + 30 * MS, TR, 0, BID_PX, 1, BE),
            (T0 + S + 40 * MS, TR, 0, BID_PX, 4, BE)]
    ev = events(base_rows() + rows)
    p, q = hand_params()
    n0 = len(base_rows())
    k = cls(p, q, 1)
    tail = np.zeros(0, dtype=EVENT_DTYPE)
    start, pos, cash, fees = 0, 0, 0.0, 0.0
    for cut, lots in ((n0, 0), (n0 + 1, 2), (n0 + 2, 1), (n0 + 3, 2)):
        arr = _concat(tail, ev[start:cut])
        i = k.run(arr, len(tail), False)
        tail, start = arr[i:].copy(), cut
        if lots:
            notional = float(BID_PX) * TICK * float(lots) * LOT
            fee = notional * -0.0001
            pos, cash, fees = pos + lots, cash - notional - fee, fees + fee
        assert (k.position, k.cash, k.fees) == (pos, cash, fees)
    assert k.position == 5 and k.fees < 0    # rebate: negative fees, cash above -notional
    assert math.isclose(k.cash, -250.0 + 0.025, abs_tol=1e-9)
    assert k.counters()["partial_fills"] == 2


def test_queue_risk_averse_cancellations_behind_do_not_advance():
    rows = [(T0 + S + 20 * MS, D, 0, BID_PX, 15, BE),     # 5 lots join behind us
            (T0 + S + 30 * MS, D, 0, BID_PX, 12, BE),     # 3 lots cancelled: risk-averse assumes behind us
            (T0 + S + 40 * MS, TR, 0, BID_PX, 10, BE),    # exactly the 10 ahead of us trade: no fill
            (T0 + S + 50 * MS, TR, 0, BID_PX, 1, BE)]     # now we are first: 1 lot
    r = run_hand(rows)
    assert list(r["fills"]["qty"]) == [1] and r["fills"]["exch_ts"][0] == T0 + S + 50 * MS


def test_queue_risk_averse_level_shrink_advances():
    rows = [(T0 + S + 20 * MS, D, 0, BID_PX, 4, BE),      # the level shrinks below our queue position (10)
            (T0 + S + 30 * MS, TR, 0, BID_PX, 6, BE)]     # 4 ahead, then 2 fill us
    r = run_hand(rows)
    assert list(r["fills"]["qty"]) == [2]


@pytest.mark.parametrize("model,power", [("power", 2.0), ("power", 3.0), ("log", 2.0)])
def test_queue_probabilistic(model, power):
    rows = [(T0 + S + 20 * MS, D, 0, BID_PX, 15, BE),
            (T0 + S + 30 * MS, D, 0, BID_PX, 12, BE),
            (T0 + S + 40 * MS, TR, 0, BID_PX, 10, BE)]
    r = run_hand(rows, queue_model=model, queue_power=power)
    # by hand: front 10, back 15 - 10 = 5, 3 cancelled; p = f(back) / (f(back) + f(front))
    f = (lambda x: math.log(1.0 + x)) if model == "log" else (lambda x: x ** power)
    pr = f(5.0) / (f(5.0) + f(10.0))
    est = 10.0 - (1.0 - pr) * 3.0
    want = int(10 - est)
    assert want >= 1
    assert list(r["fills"]["qty"]) == [want]


def test_trade_through_fills_completely():
    rows = [(T0 + S + 20 * MS, TR, 0, BID_PX - 1, 1, BE)]  # a 1-lot sell below our bid
    r = run_hand(rows)
    f = r["fills"]
    assert list(f["qty"]) == [LOTS] and f["px"][0] == BID_PX and f["taker"][0] == 0
    assert r["final"][0] == LOTS


def test_trade_before_arrival_does_not_fill_and_report_latency():
    rows = [(T0 + S + 5 * MS, TR, 0, BID_PX, 15, BE),       # before our bid reaches the exchange: no effect
            (T0 + S + 20 * MS, TR, 0, BID_PX, 15, BE),      # after: 10 ahead, then all 5 of ours
            (T0 + S + 200 * MS, D, 0, 9990, 1, BE)]         # (data go on: samples inside the replay)
    r = run_hand(rows)
    f = r["fills"]
    assert list(f["qty"]) == [LOTS] and f["exch_ts"][0] == T0 + S + 20 * MS
    assert f["report_ts"][0] == T0 + S + 20 * MS + RESP and f["submit_ts"][0] == T_QUOTE
    # the exchange position moves at the fill; the strategy's order is working until the report
    assert sample_at(r, T0 + S + 19 * MS)["position"] == 0
    assert sample_at(r, T0 + S + 20 * MS)["position"] == LOTS  # (an exchange event comes before a sample at its time)
    assert sample_at(r, T0 + S + 20 * MS + RESP)["bid_px"] == BID_PX
    assert sample_at(r, T0 + S + 21 * MS + RESP)["bid_px"] == -1
    assert r["counters"]["lifetime_sum_ns"] == (T0 + S + 20 * MS) - T_ARRIVE


def test_opposite_best_onto_our_price_fills():
    rows = [(T0 + S + 20 * MS, D, 0, BID_PX, 0, B),          # the bid level goes,
            (T0 + S + 20 * MS, D, 1, BID_PX, 3, E)]          # an ask appears at our bid price
    r = run_hand(rows)
    f = r["fills"]
    assert list(f["qty"]) == [LOTS] and f["px"][0] == BID_PX and f["side"][0] == 0 and f["taker"][0] == 0


def test_post_only_rejection_and_its_report_time():
    # the ask moves onto our bid price before the bid arrives; nothing else happens at the exchange
    # until T0+1.5 s: the rejection is still known to the strategy at arrival + response latency
    rows = [(T0 + S + 5 * MS, D, 0, BID_PX, 0, B), (T0 + S + 5 * MS, D, 1, BID_PX, 3, E),
            (T0 + S + 500 * MS, D, 0, 9990, 1, BE)]
    r = run_hand(rows)
    c = r["counters"]
    assert c["orders_rejected"] == 1 and c["fills"] == 0 and not r["fills"].size
    assert sample_at(r, T_ARRIVE + RESP)["bid_px"] == BID_PX
    assert sample_at(r, T_ARRIVE + RESP + MS)["bid_px"] == -1
    assert sample_at(r, T_ARRIVE + RESP + MS)["ask_px"] == ASK_PX


def test_crossing_order_without_post_only_takes_at_arrival():
    rows = [(T0 + S + 5 * MS, D, 0, BID_PX, 0, B), (T0 + S + 5 * MS, D, 1, BID_PX, 3, E),
            (T0 + S + 500 * MS, D, 1, BID_PX, 0, BE)]
    r = run_hand(rows, post_only=False)
    f = r["fills"]
    assert list(f["qty"]) == [3] and f["taker"][0] == 1 and f["exch_ts"][0] == T_ARRIVE
    # the taker fill counts from its time on, not from the next exchange event
    assert sample_at(r, T_ARRIVE)["position"] == 3          # (arrivals come before a sample at their time)
    assert sample_at(r, T_ARRIVE - MS)["position"] == 0
    assert math.isclose(r["final"][2], 150.0 * 0.0004, rel_tol=1e-12)


def test_order_only_live_after_entry_latency():
    # with a long entry latency the trade-through lands before the arrival: no fill;
    # a later one fills.
    rows = [(T0 + S + 30 * MS, TR, 0, BID_PX - 1, 1, BE), (T0 + S + 80 * MS, TR, 0, BID_PX - 1, 1, BE)]
    r = run_hand(rows, entry_latency_ns=50 * MS)
    assert list(r["fills"]["exch_ts"]) == [T0 + S + 80 * MS]
    assert r["fills"]["exch_ts"][0] - r["fills"]["submit_ts"][0] >= 50 * MS


def test_intensity_exposure_starts_at_arrival():
    """Intensity fills: an order is exposed from its arrival on, not over time when
    no order rested. With A = 10/s at any depth (k = 0): the first orders rest
    0.6 s before the next draw (p = 1 - exp(-6)), the second ones 1 ms (p = 1 - exp(-0.01))."""
    rows = [(T0 + S + 11 * MS, D, 0, 9990, 1, BE),          # at the arrival: starts the intensity clock
            (T0 + S + 611 * MS, D, 0, 9990, 2, BE),         # 0.6 s of exposure: both fill (seed 1)
            (T0 + 2 * S, D, 0, 9990, 3, BE),                # the strategy requotes at T0+2.001 s
            (T0 + 2 * S + 12 * MS, D, 0, 9990, 4, BE),      # 1 ms after the new arrivals: no fill
            (T0 + 3 * S, D, 0, 9990, 5, BE)]                # ~1 s of exposure: fills
    r = run_hand(rows, fill_model="intensity", fill_A=10.0, fill_k=0.0)
    f = r["fills"]
    assert list(f["exch_ts"]) == [T0 + S + 611 * MS] * 2 + [T0 + 3 * S] * 2
    assert r["counters"]["orders_submitted"] == 4


# --------------------------------------------------------------------------- an invalid book (gap marker)

INV = 5   # EV_BOOK_INVALID


def test_book_invalid_cancels_quotes_until_the_next_snapshot():
    """A BOOK_INVALID record (the store's mark of a gap) cancels the working orders
    at once and stops quoting until the next snapshot; our orders stay live at the
    exchange until the cancels arrive, so a trade in between still fills them."""
    from hftcore import EV_BOOK_INVALID, INVALID_GAP
    assert EV_BOOK_INVALID == INV
    snap = [(T0 + 4 * S, SN, 0, 10000 - i, 10, B if i == 0 else 0) for i in range(3)]
    snap += [(T0 + 4 * S, SN, 1, 10001 + i, 10, E if i == 2 else 0) for i in range(3)]
    rows = [(T0 + 2 * S, INV, 0, INVALID_GAP, 0, BE | 4),
            (T0 + 2 * S + 5 * MS, TR, 0, BID_PX - 1, 1, BE),      # before the cancel lands: fills our bid
            (T0 + 2 * S + 500 * MS, TR, 1, ASK_PX + 1, 1, BE),    # after: the ask is gone, no fill
            (T0 + 3 * S, D, 0, 9999, 4, BE),                      # (depth while invalid: no quote)
            *snap,                                                # resync: quoting resumes
            (T0 + 5 * S, D, 0, 9990, 1, BE)]
    r = run_hand(rows)
    c = r["counters"]
    f = r["fills"]
    assert list(f["qty"]) == [LOTS] and f["side"][0] == 0 and f["exch_ts"][0] == T0 + 2 * S + 5 * MS
    assert c["cancels_sent"] == 2 and c["orders_cancelled"] == 1
    assert c["book_invalid"] == 1 and c["book_invalid_ns"] == 2 * S
    # nothing is working from the marker's visible time to the snapshot's
    for t in (T0 + 2 * S + MS, T0 + 3 * S + 2 * MS, T0 + 4 * S):
        s = sample_at(r, t)
        assert s["bid_px"] == -1 and s["ask_px"] == -1, t
    assert c["orders_submitted"] == 4                           # two before, two after the snapshot
    s = sample_at(r, T0 + 4 * S + 2 * MS)
    assert s["bid_px"] != -1 and s["ask_px"] != -1


def _with_gaps(ev: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, int]:
    """The synthetic stream as `data convert` would store it after n gaps: at a
    message boundary a BOOK_INVALID record, then no depth until a SNAPSHOT run of
    the exchange's book some seconds later. Returns (events, invalid ns)."""
    from hftcore import EV_BOOK_INVALID, EV_DEPTH, EV_SNAPSHOT, EVF_BEGIN, EVF_EMPTY, EVF_END, INVALID_GAP
    from hftcore.book import L2Book

    rng = np.random.default_rng(seed)
    ends = np.flatnonzero((ev["kind"] == EV_DEPTH) & ((ev["flags"] & EVF_END) != 0))
    starts = np.sort(rng.choice(ends[len(ends) // 10:-len(ends) // 10], n, replace=False))
    book = L2Book(1.0, 1.0)
    out, i, total = [], 0, 0
    for a in starts:
        b = int(np.searchsorted(ev["exch_ts"], ev["exch_ts"][a] + int(rng.integers(1, 5)) * S))
        for part in (ev[i:a + 1],):
            out.append(part)
            for r in part[np.isin(part["kind"], (EV_DEPTH, EV_SNAPSHOT))].tolist():
                if r[7] == EV_SNAPSHOT and r[9] & EVF_BEGIN:
                    book.clear()
                book.apply(r[8], r[2], r[3])
        mark = np.zeros(1, dtype=EVENT_DTYPE)
        mark[0] = (ev["local_ts"][a], ev["exch_ts"][a], INVALID_GAP, 0, 0, 0, 0, EV_BOOK_INVALID, 0,
                   EVF_BEGIN | EVF_END | EVF_EMPTY)
        out.append(mark)
        gap = ev[a + 1:b]
        out.append(gap[gap["kind"] != EV_DEPTH])                 # trades go on
        for r in gap[gap["kind"] == EV_DEPTH].tolist():
            book.apply(r[8], r[2], r[3])
        levels = [(s, t, q) for s in (0, 1) for t, q in zip(*book.levels(s))]
        snap = np.zeros(len(levels), dtype=EVENT_DTYPE)
        for j, (s, t, q) in enumerate(levels):
            snap[j] = (ev["local_ts"][b], ev["exch_ts"][b], t, q, 0, 0, 0, EV_SNAPSHOT, s,
                       (EVF_BEGIN if j == 0 else 0) | (EVF_END if j == len(levels) - 1 else 0))
        out.append(snap)
        total += int(ev["local_ts"][b] - ev["local_ts"][a])
        i = b
    out.append(ev[i:])
    return np.concatenate(out).astype(EVENT_DTYPE), total


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3], CONFIGS[4], CONFIGS[7]], ids=["as", "taker", "intensity",
                                                                                    "latency"])
def test_kernel_equals_reference_with_gaps(market, cfg):
    ev, tick, lot = market
    gapped, invalid_ns = _with_gaps(ev, 6, 1)
    params, quote = kernel_params(BacktestConfig(sample_interval=0.5, **cfg), tick, lot)
    a = replay(ReplayKernel, params, quote, 7, gapped)
    b = replay(ReferenceReplay, params, quote, 7, gapped)
    assert_same_run(a, b)
    assert_same_run(a, replay(ReplayKernel, params, quote, 7, gapped, chunk=5000))
    c = a["counters"]
    assert c["book_invalid"] == 6 and c["fills"] > 0
    if params["feed_latency_ns"] < 0:                           # visible at the receive times
        assert c["book_invalid_ns"] == invalid_ns
    for r in (a, b):
        check_accounting(r, lot, tick)
    # and it matters: the same data without the markers (quoting on a stale book) differ
    stale = replay(ReplayKernel, params, quote, 7, gapped[gapped["kind"] != 5])
    # (no depth arrives in the gaps: the difference is the quotes left standing there)
    assert (stale["counters"]["cancels_sent"], stale["fills"].tobytes()) != (c["cancels_sent"], a["fills"].tobytes())


# --------------------------------------------------------------------------- the order-rate limit

class _SendLog(ReferenceReplay):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.sent = []

    def _submit(self, side, px, now, lots=None):
        i = super()._submit(side, px, now, lots)
        if i >= 0:
            self.sent.append(now)
        return i


@pytest.mark.parametrize("rate", [2, 5])
def test_order_rate_limit_as_live(market, rate):
    """max_orders_per_second: no new order while the last second holds that many
    (the live RiskManager's rule); the kernel equals its twin, and the limit binds."""
    ev, tick, lot = market
    ev = ev[: len(ev) // 2]
    cfg = BacktestConfig(sample_interval=0.5, quote_refresh_interval=0.02, requote_threshold=0,
                         max_orders_per_second=float(rate) + 0.5)
    params, quote = kernel_params(cfg, tick, lot)
    assert params["max_orders_per_s"] == rate
    a = replay(ReplayKernel, params, quote, 7, ev)
    b = replay(_SendLog, params, quote, 7, ev)
    assert_same_run(a, b)
    assert_same_run(a, replay(ReplayKernel, params, quote, 7, ev, chunk=3000))
    c = a["counters"]
    assert c["rate_blocked"] > 10 and c["risk_blocked"] >= c["rate_blocked"]
    free = replay(ReplayKernel, kernel_params(cfg.replace(max_orders_per_second=None), tick, lot)[0], quote, 7, ev)
    assert free["counters"]["rate_blocked"] == 0 and free["counters"]["orders_submitted"] > c["orders_submitted"]


def test_order_rate_limit_window_is_sliding(market):
    ev, tick, lot = market
    ev = ev[: len(ev) // 4]
    cfg = BacktestConfig(quote_refresh_interval=0.02, requote_threshold=0, max_orders_per_second=3.0)
    params, quote = kernel_params(cfg, tick, lot)
    k = _SendLog(params, quote, 7)
    k.run(ev, 0, True)
    sent = np.array(k.sent, dtype=np.int64)
    assert len(sent) > 50 and k.rate_blocked > 0
    # the 4th-next send is always more than a second later
    assert (sent[3:] - sent[:-3] >= 1_000_000_000).all()
    assert ((sent[3:] - sent[:-3]) < 1_100_000_000).any()     # and the limit is reached, not just kept
