"""EWMA volatility and order-arrival intensity: hand values, twins, synthetic data."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hftcore.volatility import EwmaVolatility, IntensityEstimator, ewma_volatility
from hftmm.reference import volatility as ref

S = 1_000_000_000  # ns per second


def close(a, b, rel=1e-9, abs_=1e-300):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# --------------------------------------------------------------------------- EWMA


@pytest.mark.parametrize("cls", [EwmaVolatility, ref.EwmaVolatility])
def test_ewma_hand_values(cls):
    ev = cls(2.0)  # half-life 2 s
    assert not ev.ready and ev.sigma == 0.0 and ev.variance == 0.0 and ev.count == 0
    assert ev.last_time_ns is None

    ev.update(0, 100.0)  # reference only
    assert not ev.ready and ev.sigma == 0.0 and ev.last_time_ns == 0

    ev.update(1 * S, 101.0)  # dt = 1 s, r = ln(1.01): the first return sets var = r^2/dt
    r1 = math.log(101.0 / 100.0)
    assert ev.ready and ev.count == 1
    assert close(ev.variance, r1 * r1 / 1.0)
    assert close(ev.sigma, abs(r1))
    assert close(ev.sigma_price, abs(r1) * 101.0)  # price units per sqrt(s)

    ev.update(1 * S, 500.0)  # dt = 0: ignored, the reference (1 s, 101) stays
    ev.update(S // 2, 500.0)  # dt < 0: ignored too
    assert ev.count == 1 and ev.last_time_ns == S and ev.last_mid == 101.0

    ev.update(3 * S, 100.0)  # dt = 2 s measured from the 1 s reference
    r2 = math.log(100.0 / 101.0)
    x2 = r2 * r2 / 2.0
    alpha = 1.0 - math.exp(-math.log(2.0) * 2.0 / 2.0)  # dt = one half-life -> 1/2
    assert close(alpha, 0.5)
    assert close(ev.variance, 0.5 * r1 * r1 + 0.5 * x2)
    assert ev.count == 2 and ev.last_time_ns == 3 * S

    ev.update(4 * S, 0.0)  # invalid mids are ignored
    ev.update(4 * S, float("nan"))
    ev.update(4 * S, -5.0)
    assert ev.count == 2 and ev.last_time_ns == 3 * S

    ev.reset()
    assert not ev.ready and ev.count == 0 and ev.sigma == 0.0 and ev.last_time_ns is None


@pytest.mark.parametrize("cls", [EwmaVolatility, ref.EwmaVolatility])
def test_ewma_half_life_weight(cls):
    """After exactly one half-life the old estimate keeps weight 1/2; after two, 1/4."""
    hl = 10.0
    ev = cls(hl)
    ev.update(0, 100.0)
    ev.update(S, 100.0 * math.exp(0.01))  # var = 1e-4 / 1 s
    v0 = ev.variance
    assert close(v0, 1e-4)
    ev.update(S + 10 * S, 100.0 * math.exp(0.01))  # r = 0 after one half-life
    assert close(ev.variance, 0.5 * v0)
    ev.update(S + 30 * S, 100.0 * math.exp(0.01))  # two more half-lives
    assert close(ev.variance, 0.125 * v0)


@pytest.mark.parametrize("cls", [EwmaVolatility, ref.EwmaVolatility])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_ewma_rejects_bad_half_life(cls, bad):
    with pytest.raises(ValueError, match="half_life_s"):
        cls(bad)


def test_ewma_gbm_convergence():
    """GBM with sigma = 0.5 per sqrt(s) sampled at irregular times: estimate within 5%."""
    rng = np.random.default_rng(7)
    n = 200_000
    sigma = 0.5
    dt = rng.exponential(0.05, n)  # seconds
    t_ns = np.cumsum(np.maximum(1, (dt * 1e9).astype(np.int64)))
    dts = np.diff(t_ns, prepend=0) / 1e9
    logp = np.log(100.0) + np.cumsum(sigma * np.sqrt(dts) * rng.standard_normal(n) - 0.5 * sigma**2 * dts)
    mid = np.exp(logp)
    out = ewma_volatility(t_ns, mid, 300.0)
    assert out[0] == 0.0 and out[1] > 0.0
    assert abs(out[-1] / sigma - 1.0) < 0.05
    # and along the way, once warmed up (several half-lives)
    assert np.all(np.abs(out[n // 2:] / sigma - 1.0) < 0.1)
    # the twin agrees
    tw = ref.ewma_volatility(t_ns[-5000:].tolist(), mid[-5000:].tolist(), 300.0)
    np.testing.assert_allclose(ewma_volatility(t_ns[-5000:], mid[-5000:], 300.0), tw, rtol=1e-9)


def test_ewma_batch_equals_scalar_and_checks():
    t = np.array([0, S, S, 3 * S, 2 * S, 5 * S], dtype=np.int64)
    m = np.array([100.0, 101.0, 99.0, 100.5, 50.0, 100.0])
    out = ewma_volatility(t, m, 4.0)
    ev = EwmaVolatility(4.0)
    for i in range(len(t)):
        ev.update(int(t[i]), float(m[i]))
        assert out[i] == ev.sigma
    assert ewma_volatility(np.empty(0, np.int64), np.empty(0), 1.0).shape == (0,)
    with pytest.raises(ValueError):
        ewma_volatility(t, m[:-1], 4.0)
    with pytest.raises(ValueError, match="half_life_s"):
        ewma_volatility(t, m, 0.0)


obs = st.lists(
    st.tuples(
        st.integers(-2 * S, 5 * S),  # time step, may be <= 0
        st.one_of(st.floats(0.5, 200.0), st.sampled_from([0.0, -1.0, float("nan")])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.01, 1000.0), obs)
def test_ewma_matches_twin_every_step(hl, steps):
    c, p = EwmaVolatility(hl), ref.EwmaVolatility(hl)
    t = 1_700_000_000 * S
    ts, ms = [], []
    for dt, m in steps:
        t += dt
        c.update(t, m)
        p.update(t, m)
        ts.append(t)
        ms.append(m)
        assert c.count == p.count and c.ready == p.ready
        assert c.last_time_ns == p.last_time_ns
        assert close(c.variance, p.variance) and close(c.sigma, p.sigma)
        assert close(c.sigma_price, p.sigma_price)
    if ts:
        np.testing.assert_allclose(
            ewma_volatility(np.array(ts, np.int64), np.array(ms), hl),
            ref.ewma_volatility(ts, ms, hl), rtol=1e-9, atol=0)


# --------------------------------------------------------------------- intensity


@pytest.mark.parametrize("cls", [IntensityEstimator, ref.IntensityEstimator])
def test_intensity_hand_values(cls):
    est = cls(window_s=10.0, tick_size=0.01, max_depth_ticks=50, min_trades=5)
    # book 10000 / 10001 -> mid_x2 = 20001 (mid 10000.5 ticks, exact)
    mx2 = 20001
    t = 100 * S
    for p in (10001, 10000, 10001, 10000):  # depth 0.5 tick (half-tick bucket 1)
        est.on_trade(t, p, mx2)
    for p in (10002, 9999):  # depth 1.5 ticks (bucket 3)
        est.on_trade(t, p, mx2)
    est.on_trade(t, 10003, mx2)  # depth 2.5 ticks (bucket 5)
    assert est.count == 7
    A, k = est.fit(t)
    # levels (ticks): 0.5 -> 7 trades at depth >= 0.5, 1.5 -> 3, 2.5 -> 1; rates per s over 10 s
    xs = [0.5, 1.5, 2.5]
    ys = [math.log(0.7), math.log(0.3), math.log(0.1)]
    # OLS with x-bar = 1.5 and deviations (-1, 0, 1): slope = (y3 - y1)/2
    slope = (ys[2] - ys[0]) / 2.0
    intercept = sum(ys) / 3.0 - slope * 1.5
    assert est.ready
    assert close(est.k_per_tick, -slope, rel=1e-12)  # = ln(7)/2 = 0.97296 per tick
    assert close(est.k_per_tick, math.log(7.0) / 2.0, rel=1e-12)
    assert close(k, math.log(7.0) / 2.0 / 0.01, rel=1e-12)  # per price unit
    assert close(est.k, k) and close(est.A, A)
    assert close(A, math.exp(intercept), rel=1e-12)  # per second at depth 0
    assert xs  # (documentation of the levels above)


@pytest.mark.parametrize("cls", [IntensityEstimator, ref.IntensityEstimator])
def test_intensity_readiness(cls):
    est = cls(window_s=60.0, tick_size=0.1, max_depth_ticks=5, min_trades=3)
    assert not est.ready and math.isnan(est.A) and math.isnan(est.k)
    est.on_trade(0, 1001, 2000)  # depth 1 tick
    est.on_trade(0, 999, 2000)  # depth 1 tick
    est.fit(0)
    assert not est.ready  # 2 < min_trades
    est.on_trade(0, 1001, 2000)
    A, k = est.fit(0)
    assert not est.ready and math.isnan(A) and math.isnan(k)  # only one level
    est.on_trade(0, 1003, 2000)  # depth 3 ticks -> second level
    A, k = est.fit(0)
    assert est.ready and k > 0 and A > 0
    # depth 10000 ticks is capped at 5 ticks (bucket 10) but still counts at every level
    est.on_trade(0, 1000 + 10000, 2000)
    hist = list(est.histogram())
    assert hist[10] == 1 and hist[2] == 3 and hist[6] == 1 and sum(hist) == 5


@pytest.mark.parametrize("cls", [IntensityEstimator, ref.IntensityEstimator])
def test_intensity_window_expiry(cls):
    est = cls(window_s=10.0, tick_size=0.01, max_depth_ticks=10, min_trades=1)
    for i in range(10):  # one trade per second at t = 0..9 s
        est.on_trade(i * S, 10000 + 1 + (i % 3), 20000)
    assert est.count == 10
    est.fit(10 * S)  # cutoff 0 s: a trade exactly window_s old is kept
    assert est.count == 10
    est.fit(15 * S)  # cutoff 5 s: trades at 0..4 s expire
    assert est.count == 5
    est.on_trade(18 * S, 10001, 20000)  # on_trade expires too (cutoff 8 s)
    assert est.count == 3
    est.fit(100 * S)
    assert est.count == 0 and not est.ready and sum(est.histogram()) == 0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(window_s=0.0, tick_size=0.01), "window_s"),
        (dict(window_s=float("nan"), tick_size=0.01), "window_s"),
        (dict(window_s=1.0, tick_size=0.0), "tick_size"),
        (dict(window_s=1.0, tick_size=0.01, max_depth_ticks=0), "max_depth_ticks"),
        (dict(window_s=1.0, tick_size=0.01, max_depth_ticks=2.5), "max_depth_ticks"),
        (dict(window_s=1.0, tick_size=0.01, min_trades=-1), "min_trades"),
    ],
)
@pytest.mark.parametrize("cls", [IntensityEstimator, ref.IntensityEstimator])
def test_intensity_validation(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def _synthetic_trades(rng, A, k_per_tick, window_s, t0):
    """Poisson(A) trades over window_s whose depth D (ticks) ~ Exp(k_per_tick).

    The depth is floored to the half-tick grid and the mid parity is chosen so
    the trade sits exactly at that half-tick depth: then the number of trades at
    depth >= j/2 ticks is exactly the number with D >= j/2, whose mean is
    A * window_s * exp(-k_per_tick * j/2) -- the model, with no discretisation bias.
    """
    n = rng.poisson(A * window_s)
    t = np.sort(rng.uniform(0, window_s, n))
    d2 = np.floor(2.0 * rng.exponential(1.0 / k_per_tick, n)).astype(np.int64)
    side = rng.choice([-1, 1], n)
    mid_x2 = 2 * 50_000 + (d2 & 1)
    price = (mid_x2 + side * d2) // 2
    assert np.all(np.abs(2 * price - mid_x2) == d2)
    return t0 + (t * 1e9).astype(np.int64), price, mid_x2


@pytest.mark.parametrize("cls", [IntensityEstimator, ref.IntensityEstimator])
def test_intensity_recovers_known_A_k(cls):
    rng = np.random.default_rng(11)
    A, k, tick = 2.0, 40.0, 0.01  # 2 trades/s, k = 40 per price unit = 0.4 per tick
    window = 3600.0
    t0 = 1_700_000_000 * S
    t, p, m = _synthetic_trades(rng, A, k * tick, window, t0)
    # cap at 10 ticks: the cap bucket holds every trade >= 10 ticks, so the
    # deepest level is still an exact tail count (about 7200 * e^-4 = 132 trades)
    est = cls(window_s=window, tick_size=tick, max_depth_ticks=10, min_trades=100)
    for i in range(len(t)):
        est.on_trade(int(t[i]), int(p[i]), int(m[i]))
    A_hat, k_hat = est.fit(t0 + int(window * 1e9))
    assert est.ready
    assert abs(k_hat / k - 1.0) < 0.05, k_hat
    assert abs(A_hat / A - 1.0) < 0.10, A_hat
    assert close(est.k_per_tick, k_hat * tick)
    # one window later everything has expired
    est.fit(t0 + int(2.5 * window * 1e9))
    assert est.count == 0 and not est.ready


def test_intensity_recovers_with_deep_cap():
    """With a deep cap the sparse tail adds noise, but the fit stays close."""
    rng = np.random.default_rng(3)
    A, k, tick = 5.0, 3.0, 0.1  # 0.3 per tick
    t, p, m = _synthetic_trades(rng, A, k * tick, 3600.0, 0)
    est = IntensityEstimator(3600.0, tick, max_depth_ticks=50, min_trades=20)
    for i in range(len(t)):
        est.on_trade(int(t[i]), int(p[i]), int(m[i]))
    A_hat, k_hat = est.fit(int(3600 * S))
    assert est.ready
    assert abs(k_hat / k - 1.0) < 0.2 and abs(A_hat / A - 1.0) < 0.3


ops = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(0, 3 * S), st.integers(-40, 40), st.integers(0, 1)),
        st.tuples(st.just("fit"), st.integers(0, 3 * S), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.5, 20.0), st.sampled_from([0.01, 0.5, 1.0]), st.integers(1, 8),
       st.integers(0, 6), ops)
def test_intensity_matches_twin_every_step(window, tick, max_depth, min_trades, steps):
    c = IntensityEstimator(window, tick, max_depth, min_trades)
    p = ref.IntensityEstimator(window, tick, max_depth, min_trades)
    t = 1_700_000_000 * S
    for kind, dt, off, odd in steps:
        t += dt
        mid_x2 = 2 * 1000 + odd
        if kind == "trade":
            c.on_trade(t, 1000 + off, mid_x2)
            p.on_trade(t, 1000 + off, mid_x2)
        else:
            ra = c.fit(t)
            rb = p.fit(t)
            assert close(ra[0], rb[0]) and close(ra[1], rb[1])
        assert c.count == p.count
        assert list(c.histogram()) == p.histogram()
        assert c.ready == p.ready
        assert close(c.A, p.A) and close(c.k, p.k) and close(c.k_per_tick, p.k_per_tick)


def test_intensity_ring_buffer_grows_and_wraps():
    est = IntensityEstimator(window_s=1.0, tick_size=1.0, max_depth_ticks=4, min_trades=1)
    tw = ref.IntensityEstimator(window_s=1.0, tick_size=1.0, max_depth_ticks=4, min_trades=1)
    t = 0
    for i in range(5000):  # bursts larger than the initial capacity, with expiry in between
        t += (S // 1000) if (i // 700) % 2 == 0 else S // 3
        est.on_trade(t, 100 + (i % 5), 200)
        tw.on_trade(t, 100 + (i % 5), 200)
        assert est.count == tw.count
    assert list(est.histogram()) == tw.histogram()
    assert close(est.fit(t)[1], tw.fit(t)[1])


def test_intensity_rejects_out_of_range_prices():
    est = IntensityEstimator(1.0, 1.0)
    with pytest.raises(ValueError):
        est.on_trade(0, 2**62, 0)
