"""Avellaneda-Stoikov and GLFT quoting: hand-computed values, post-processing, twins."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hftcore import quoting as Q
from hftcore.quoting import NO_ASK, NO_BID, Quoter
from hftmm.reference import quoting as R

S = 1_000_000_000  # ns per second
BOTH = [Quoter, R.Quoter]


def approx(x, rel=1e-12):
    return pytest.approx(x, rel=rel, abs=1e-12)


# ------------------------------------------------------------ Avellaneda-Stoikov


@pytest.mark.parametrize("cls", BOTH)
def test_as_hand_values(cls):
    # s = 100 (book 99.99 / 100.01, tick 0.01), q = 2, gamma = 0.1, sigma = 2, tau = T = 30 s
    # (a bid 30 % below the mid: past the default sanity band, which is tested on its own)
    qt = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, rolling=True, tick_size=0.01,
             max_inventory=10.0, price_band=1.0)
    res = qt.quote(9999, 10001, 1, 1, 2.0, 2.0, 0)
    # r = s - q*gamma*sigma^2*tau = 100 - 2*0.1*4*30 = 100 - 24 = 76
    #   (sigma instead of sigma^2 would give 100 - 2*0.1*2*30 = 88)
    assert res.reservation_price == approx(76.0)
    assert res.reservation_price != approx(88.0)
    # spread = gamma*sigma^2*tau + (2/gamma) ln(1 + gamma/k) = 0.1*4*30 + 20 ln(1 + 0.1/1.5)
    #        = 12 + 20 ln(16/15) = 12 + 1.2907704227514235 = 13.290770422751423
    assert res.spread == approx(12.0 + 20.0 * math.log(16.0 / 15.0))
    assert res.spread == approx(13.290770422751423)
    # (1/gamma) ln(...) instead of (2/gamma) would give 12.645; sigma instead of sigma^2: 7.29
    assert res.spread != approx(12.0 + 10.0 * math.log(16.0 / 15.0))
    assert res.fair_value == approx(100.0)
    # bid = r - spread/2 = 76 - 6.6453852 = 69.3546148 -> rounded down: 69.35 (6935 ticks)
    assert res.bid_tick == 6935 and res.bid_ok
    # ask = r + spread/2 = 82.6453852 -> would be 8265 ticks, but post-only: ask >= best bid + 1
    assert res.ask_tick == 10000 and res.ask_ok
    assert res.bid_price == pytest.approx(69.35) and res.ask_price == pytest.approx(100.0)


@pytest.mark.parametrize("cls", BOTH)
def test_as_inventory_enters_linearly_with_gamma_sigma2_tau(cls):
    # sigma = 0.5, gamma = 0.1, T = 30: gamma*sigma^2*tau = 0.1*0.25*30 = 0.75 price units per unit q
    qt = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, rolling=True, tick_size=0.01,
             max_inventory=100.0)
    rs = {q: qt.quote(9999, 10001, 5, 5, 0.5, q, 0) for q in (-2.0, -1.0, 0.0, 1.0, 2.0, 0.5)}
    for q, res in rs.items():
        # r = s - q * 0.75  (not s - q*0.1*0.5*30 = s - 1.5q with sigma; not halved)
        assert res.reservation_price == approx(100.0 - 0.75 * q)
        # the spread does not depend on q: 0.75 + 20 ln(16/15) = 2.0407704227514235
        assert res.spread == approx(0.75 + 20.0 * math.log(16.0 / 15.0))
    assert rs[1.0].reservation_price - rs[0.0].reservation_price == approx(-0.75)
    assert rs[2.0].reservation_price - rs[0.0].reservation_price == approx(-1.5)
    # q = 0: bid = 100 - 1.0203852 = 98.9796148 -> 98.97; ask = 101.0203852 -> 101.03
    assert (rs[0.0].bid_tick, rs[0.0].ask_tick) == (9897, 10103)
    # q = 1: r = 99.25: bid = 98.2296148 -> 98.22; ask = 100.2703852 -> 100.28
    assert (rs[1.0].bid_tick, rs[1.0].ask_tick) == (9822, 10028)
    # q = -1: r = 100.75: bid = 99.7296148 -> 99.72; ask = 101.7703852 -> 101.78
    assert (rs[-1.0].bid_tick, rs[-1.0].ask_tick) == (9972, 10178)


@pytest.mark.parametrize("cls", BOTH)
def test_as_finite_horizon_tau(cls):
    # finite horizon T = 30 s restarting every 30 s: tau = T - (t mod T)
    qt = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, rolling=False, tick_size=0.01,
             max_inventory=100.0)
    sigma, q = 0.5, 1.0  # r = 100 - q*0.1*0.25*tau = 100 - 0.025*tau

    def tau_of(t_ns):
        return (100.0 - qt.quote(9999, 10001, 1, 1, sigma, q, t_ns).reservation_price) / 0.025

    assert tau_of(0) == approx(30.0)  # start of a period: tau = T
    assert tau_of(10 * S + S // 2) == approx(19.5)  # 10.5 s into it
    assert tau_of(1_699_999_980 * S + 10 * S + S // 2) == approx(19.5, rel=1e-9)  # 30 | 1_699_999_980
    assert tau_of(1_700_000_000 * S) == approx(10.0, rel=1e-9)  # 1.7e9 mod 30 = 20
    assert tau_of(59 * S) == approx(1.0)
    assert tau_of(60 * S) == approx(30.0)  # restarts
    assert tau_of(-1 * S) == approx(1.0)  # t mod T is taken in [0, T) for negative t too
    # spread = 0.1*0.25*tau + 20 ln(16/15)
    assert qt.quote(9999, 10001, 1, 1, sigma, q, 20 * S).spread == approx(
        0.1 * 0.25 * 10.0 + 20.0 * math.log(16.0 / 15.0))
    # rolling: tau = T at every t
    qr = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, rolling=True, tick_size=0.01,
             max_inventory=100.0)
    for t in (0, 10 * S + S // 2, 59 * S):
        assert qr.quote(9999, 10001, 1, 1, sigma, q, t).reservation_price == approx(100.0 - 0.75)


# --------------------------------------------------------------------------- GLFT


@pytest.mark.parametrize("cls", BOTH)
def test_glft_hand_values(cls):
    # gamma = xi = 0.1, Delta = order_qty = 1, k = 1.5, A = 140, sigma = 2, q = 3, s = 100
    qt = cls(model="glft", gamma=0.1, xi=0.1, order_qty=1.0, k=1.5, A=140.0, tick_size=0.01,
             max_inventory=10.0)
    # xi*Delta/k = 1/15
    # c1 = (1/(xi*Delta)) ln(1 + xi*Delta/k) = 10 ln(16/15) = 0.6453852113757117
    c1 = 10.0 * math.log(16.0 / 15.0)
    assert c1 == approx(0.6453852113757117)
    # c2 = sqrt( gamma/(2*A*Delta*k) * (1 + xi*Delta/k)^(k/(xi*Delta) + 1) )
    #    = sqrt( 0.1/420 * (16/15)^16 ) = sqrt(0.1/420 * 2.8084039655764466) = 0.025858608060982998
    c2 = math.sqrt(0.1 / 420.0 * (16.0 / 15.0) ** 16)
    assert c2 == approx(0.025858608060982998)
    assert qt.c1 == approx(c1) and qt.c2 == approx(c2)
    res = qt.quote(9999, 10001, 1, 1, 2.0, 3.0, 0)
    # delta_b = c1 + (2q + Delta)/2 * sigma * c2 = c1 + 7/2 * 2 * c2 = c1 + 7 c2 = 0.8263954678026
    # delta_a = c1 - (2q - Delta)/2 * sigma * c2 = c1 - 5/2 * 2 * c2 = c1 - 5 c2 = 0.5160921710708
    db, da = c1 + 7.0 * c2, c1 - 5.0 * c2
    # bid = 100 - 0.8263955 = 99.1736045 -> 99.17; ask = 100 + 0.5160922 = 100.5160922 -> 100.52
    assert (res.bid_tick, res.ask_tick) == (9917, 10052)
    assert res.spread == approx(db + da)  # = 2 c1 + Delta*sigma*c2
    assert res.spread == approx(2 * c1 + 1.0 * 2.0 * c2)
    assert res.reservation_price == approx(100.0 + (da - db) / 2.0)  # midpoint of bid and ask
    assert res.reservation_price == approx(100.0 - 3.0 * 2.0 * c2)  # = s - q * skew, skew = sigma*c2
    # hftbacktest form: half spread = c1 + Delta/2 sigma c2, skew = sigma c2
    half, skew = c1 + 0.5 * 2.0 * c2, 2.0 * c2
    assert db == approx(half + skew * 3.0) and da == approx(half - skew * 3.0)


@pytest.mark.parametrize("cls", BOTH)
def test_glft_xi_zero_limit(cls):
    # xi = 0: c1 = 1/k, c2 = sqrt(gamma*e/(2*A*Delta*k)) = sqrt(0.1*e/420)
    qt = cls(model="glft", gamma=0.1, xi=0.0, order_qty=1.0, k=1.5, A=140.0, tick_size=0.01,
             max_inventory=10.0)
    assert qt.c1 == approx(1.0 / 1.5)
    assert qt.c2 == approx(math.sqrt(0.1 * math.e / 420.0))
    res = qt.quote(9999, 10001, 1, 1, 2.0, 3.0, 0)
    # bid = 100 - (2/3 + 7*0.0254403) = 99.1552511 -> 99.15; ask = 100 + 2/3 - 5*0.0254403 -> 100.54
    assert (res.bid_tick, res.ask_tick) == (9915, 10054)
    # xi -> 0 is continuous
    q2 = cls(model="glft", gamma=0.1, xi=1e-12, order_qty=1.0, k=1.5, A=140.0)
    assert q2.c1 == approx(qt.c1, rel=1e-9) and q2.c2 == approx(qt.c2, rel=1e-9)


@pytest.mark.parametrize("cls", BOTH)
def test_glft_ignores_horizon_and_xi_defaults_to_gamma(cls):
    a = cls(model="glft", gamma=0.3, k=2.0, A=50.0, order_qty=0.5, horizon_s=5.0)
    b = cls(model="glft", gamma=0.3, xi=0.3, k=2.0, A=50.0, order_qty=0.5, horizon_s=500.0,
            rolling=True)
    for t in (0, 3 * S, 77 * S):
        ra = a.quote(9999, 10001, 1, 1, 0.7, 0.5, t)
        rb = b.quote(9999, 10001, 1, 1, 0.7, 0.5, 0)
        assert (ra.bid_tick, ra.ask_tick, ra.spread) == (rb.bid_tick, rb.ask_tick, rb.spread)


# ----------------------------------------------------------------- fair value


@pytest.mark.parametrize("cls", BOTH)
def test_micro_price_fair_value(cls):
    qt = cls(fair_value="micro", tick_size=1.0, max_inventory=10.0)
    # micro = (bb*askQty + ba*bidQty)/(bidQty + askQty) = (100*1 + 102*3)/4 = 101.5 ticks
    assert qt.quote(100, 102, 3, 1, 0.0, 0.0, 0).fair_value == approx(101.5)
    assert qt.quote(100, 102, 1, 3, 0.0, 0.0, 0).fair_value == approx(100.5)
    assert qt.quote(100, 102, 0, 0, 0.0, 0.0, 0).fair_value == approx(101.0)  # falls back to mid
    assert qt.quote(100, 102, 5, 0, 0.0, 0.0, 0).fair_value == approx(102.0)
    with pytest.raises(ValueError):
        qt.quote(100, 102, -1, 3, 0.0, 0.0, 0)
    mid = cls(fair_value="mid", tick_size=1.0)
    assert mid.quote(100, 102, 3, 1, 0.0, 0.0, 0).fair_value == approx(101.0)
    # a half-tick mid is exact: (100 + 101)/2 = 100.5 ticks -> 50.25 with tick 0.5
    assert cls(tick_size=0.5).quote(100, 101, 1, 1, 0.0, 0.0, 0).fair_value == approx(50.25)


# ------------------------------------------------------- rounding, spread, clamps


def _flat(cls, tick, min_spread, **kw):
    """A quoter whose model spread is ~2e-7 price units (k huge, sigma = 0), so the
    min spread and the rounding decide the quote."""
    return cls(model="as", gamma=1e-3, k=1e7, tick_size=tick, min_spread=min_spread,
               max_inventory=10.0, **kw)


@pytest.mark.parametrize("cls", BOTH)
def test_rounding_direction_and_min_spread(cls):
    qt = _flat(cls, 1.0, 3.0)
    # s = 100, min spread 3 -> 98.5 / 101.5: bid rounds DOWN to 98, ask UP to 102
    r = qt.quote(99, 101, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (98, 102)
    # exact multiples stay put: min spread 4 -> 98 / 102
    r = _flat(cls, 1.0, 4.0).quote(99, 101, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (98, 102)
    # negative prices round in the same directions: s = -100 -> -101.5 / -98.5 -> -102 / -98
    r = qt.quote(-101, -99, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (-102, -98)
    # min spread widens symmetrically around the centre, which is r (shifted by inventory):
    # AS with sigma = 0 has r = s, so use GLFT-free check: centre stays at the fair value
    r = _flat(cls, 1.0, 10.0).quote(99, 101, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (95, 105)


@pytest.mark.parametrize("cls", BOTH)
def test_floating_noise_keeps_tick_multiples(cls):
    # 0.14 / 0.01 is 14.000000000000002 in floating point: without the guard the
    # bid 9993 (= 10000 - 7) would floor to 9992 and the ask ceil to 10008
    assert 0.14 * (1.0 / 0.01) != 14.0
    r = _flat(cls, 0.01, 0.14).quote(9999, 10001, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (9993, 10007)


@pytest.mark.parametrize("cls", BOTH)
def test_min_spread_centre_is_the_model_centre(cls):
    # AS: sigma = 1, gamma = 0.1, tau = 30, q = 1 -> r = 100 - 3 = 97 (tick 0.01)
    # model spread = 3 + (2/0.1) ln(1 + 0.1/1e7) ~ 3.0000002 < min spread 5 -> 94.5 / 99.5
    qt = cls(model="as", gamma=0.1, k=1e7, horizon_s=30.0, rolling=True, tick_size=0.01,
             min_spread=5.0, max_inventory=10.0)
    r = qt.quote(9000, 11000, 1, 1, 1.0, 1.0, 0)  # s = 100, a wide book: no post-only clamp
    assert r.reservation_price == approx(97.0)
    assert (r.bid_tick, r.ask_tick) == (9450, 9950)


@pytest.mark.parametrize("cls", BOTH)
def test_post_only_clamps(cls):
    qt = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, rolling=True, tick_size=0.01,
             max_inventory=100.0)
    # long 20: r = 100 - 20*0.1*0.25*30 = 85 -> ask 86.02 would cross the bid: ask = bb + 1
    r = qt.quote(9999, 10001, 1, 1, 0.5, 20.0, 0)
    assert r.ask_tick == 10000 and r.bid_tick == math.floor((85.0 - 1.0203852113757117) * 100)
    # short 20: r = 115 -> bid 113.98 would cross the ask: bid = ba - 1
    r = qt.quote(9999, 10001, 1, 1, 0.5, -20.0, 0)
    assert r.bid_tick == 10000 and r.ask_tick == math.ceil((115.0 + 1.0203852113757117) * 100)
    # absent ask: the bid is not clamped and the fair value is the bid
    r = qt.quote(9999, NO_ASK, 1, 0, 0.5, -20.0, 0)
    assert r.fair_value == approx(99.99)
    assert r.bid_tick == math.floor((99.99 + 15.0 - 1.0203852113757117) * 100 + 1e-6)
    # absent bid: ask not clamped
    r = qt.quote(NO_BID, 10001, 0, 1, 0.5, 20.0, 0)
    assert r.fair_value == approx(100.01)
    assert r.ask_tick == math.ceil((100.01 - 15.0 + 1.0203852113757117) * 100 - 1e-6)
    assert (Q.NO_BID, Q.NO_ASK) == (-(2**63), 2**63 - 1) == (R.NO_BID, R.NO_ASK)


@pytest.mark.parametrize("cls", BOTH)
def test_bid_always_below_ask(cls):
    # model spread 2e-7 ticks around s = 100: both round to 100 -> ask moved to 101
    qt = cls(model="as", gamma=1e-3, k=1e7, tick_size=1.0, max_inventory=10.0)
    r = qt.quote(99, 101, 1, 1, 0.0, 0.0, 0)
    assert (r.bid_tick, r.ask_tick) == (100, 101)


@pytest.mark.parametrize("cls", BOTH)
def test_inventory_withholding(cls):
    qt = cls(model="as", max_inventory=1.0, order_qty=0.5, tick_size=0.01)

    def sides(q):
        r = qt.quote(9999, 10001, 1, 1, 0.01, q, 0)
        return r.bid_ok, r.ask_ok

    assert sides(0.0) == (True, True)
    assert sides(0.5) == (True, True)  # 0.5 + 0.5 = 1 is not > 1
    assert sides(0.6) == (False, True)  # buying 0.5 more would exceed +1: bid withheld
    assert sides(-0.5) == (True, True)
    assert sides(-0.6) == (True, False)  # selling 0.5 more would exceed -1: ask withheld
    assert sides(5.0) == (False, True)
    # floating noise does not withhold at the limit: 0.2 + 0.1 = 0.30000000000000004
    q3 = cls(model="as", max_inventory=0.3, order_qty=0.1)
    r = q3.quote(9999, 10001, 1, 1, 0.01, 0.2, 0)
    assert r.bid_ok and r.ask_ok
    r = q3.quote(9999, 10001, 1, 1, 0.01, -0.2, 0)
    assert r.bid_ok and r.ask_ok
    # max_inventory = 0 with order_qty > 0 never quotes; inf never withholds
    r = cls(max_inventory=0.0).quote(9999, 10001, 1, 1, 0.01, 0.0, 0)
    assert (r.bid_ok, r.ask_ok) == (False, False)
    r = cls(max_inventory=math.inf).quote(9999, 10001, 1, 1, 0.01, 1e3, 0)
    assert (r.bid_ok, r.ask_ok) == (True, True)


@pytest.mark.parametrize("cls", BOTH)
def test_price_band_never_posts_a_price_at_or_below_zero(cls):
    """A volatility estimate blown up (two mid updates a microsecond apart) gives a
    huge spread: the bid would be negative. No side outside the band is OK."""
    qt = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, tick_size=0.01, max_inventory=10.0)
    r = qt.quote(9999, 10001, 1, 1, 500.0, 0.0, 0)
    assert r.bid_tick <= 0 and not r.bid_ok
    assert not r.ask_ok                              # 100 % above the fair value
    # inside the band (default 20 % of the fair value) both sides are posted
    r = qt.quote(9999, 10001, 1, 1, 2.0, 0.0, 0)
    assert r.bid_ok and r.ask_ok and 8000 <= r.bid_tick < r.ask_tick <= 12000
    # a tighter band withholds a side 5 % away
    r = cls(model="as", gamma=0.1, k=1.5, horizon_s=30.0, tick_size=0.01, max_inventory=10.0,
            price_band=0.01).quote(9999, 10001, 1, 1, 2.0, 0.0, 0)
    assert not r.bid_ok and not r.ask_ok
    with pytest.raises(ValueError, match="price_band"):
        cls(price_band=0.0)


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize(
    "args",
    [
        (9999, 10001, 1, 1, float("nan"), 0.0, 0),  # NaN sigma
        (9999, 10001, 1, 1, -0.1, 0.0, 0),  # negative sigma
        (9999, 10001, 1, 1, float("inf"), 0.0, 0),
        (9999, 10001, 1, 1, 0.1, float("nan"), 0),  # NaN inventory
        (9999, 10001, 1, 1, 0.1, float("inf"), 0),
        (10001, 10001, 1, 1, 0.1, 0.0, 0),  # locked book
        (10002, 10001, 1, 1, 0.1, 0.0, 0),  # crossed book
        (NO_BID, NO_ASK, 1, 1, 0.1, 0.0, 0),  # empty book
        (9999, 10001, 1, 1, 1e300, 0.0, 0),  # quote beyond int64 ticks
    ],
)
def test_invalid_quote_input(cls, args):
    with pytest.raises(ValueError):
        cls().quote(*args)


PARAMS_BAD = [
    ("model", "xyz"), ("model", 1), ("gamma", 0.0), ("gamma", -1.0), ("gamma", float("nan")),
    ("gamma", "0.1"), ("k", 0.0), ("k", float("inf")), ("A", 0.0), ("A", -5.0),
    ("horizon_s", 0.0), ("horizon_s", float("nan")), ("rolling", 1), ("rolling", "yes"),
    ("fair_value", "vwap"), ("tick_size", 0.0), ("tick_size", -0.01), ("min_spread", -1.0),
    ("min_spread", float("inf")), ("max_inventory", -1.0), ("max_inventory", float("nan")),
    ("order_qty", 0.0), ("order_qty", None), ("xi", -0.1), ("xi", float("nan")),
]


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("name, value", PARAMS_BAD)
def test_parameter_validation_names_the_parameter(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


@pytest.mark.parametrize("cls", BOTH)
def test_set_intensity(cls):
    qt = cls(model="glft", gamma=0.2, A=10.0, k=2.0)
    qt.set_intensity(50.0, 4.0)
    fresh = cls(model="glft", gamma=0.2, A=50.0, k=4.0)
    assert (qt.A, qt.k) == (50.0, 4.0)
    assert qt.c1 == fresh.c1 and qt.c2 == fresh.c2
    a = qt.quote(9999, 10001, 1, 1, 0.3, 0.002, 0)
    b = fresh.quote(9999, 10001, 1, 1, 0.3, 0.002, 0)
    assert (a.bid_tick, a.ask_tick, a.spread) == (b.bid_tick, b.ask_tick, b.spread)
    with pytest.raises(ValueError, match="k"):
        qt.set_intensity(1.0, 0.0)
    with pytest.raises(ValueError, match="A"):
        qt.set_intensity(float("nan"), 1.0)
    assert (qt.A, qt.k) == (50.0, 4.0)  # unchanged after a failed update
    ast = cls(model="as", gamma=0.1, k=1.5)
    ast.set_intensity(1.0, 3.0)
    assert ast.quote(9999, 10001, 1, 1, 0.0, 0.0, 0).spread == approx(20.0 * math.log1p(0.1 / 3.0))


def test_quote_object():
    r = Quoter().quote(9999, 10001, 1, 1, 0.01, 0.0, 0)
    assert isinstance(r, Q.Quote)
    with pytest.raises(AttributeError):
        r.bid_tick = 5
    assert r.bid_price == r.bid_tick * 0.01 and r.ask_price == r.ask_tick * 0.01
    assert "Quote(" in repr(r) and "Quoter(" in repr(Quoter())


# --------------------------------------------------------------- twins, batch

params = st.fixed_dictionaries({
    "model": st.sampled_from(["as", "glft"]),
    "gamma": st.floats(1e-4, 10.0),
    "k": st.floats(0.01, 1e4),
    "A": st.floats(0.1, 1e4),
    "horizon_s": st.floats(1e-3, 1e5),
    "rolling": st.booleans(),
    "fair_value": st.sampled_from(["mid", "micro"]),
    "tick_size": st.sampled_from([1e-5, 0.01, 0.1, 0.5, 1.0]),
    "min_spread": st.floats(0.0, 10.0),
    "max_inventory": st.one_of(st.floats(0.0, 100.0), st.just(math.inf)),
    "order_qty": st.floats(1e-4, 10.0),
    "xi": st.one_of(st.none(), st.floats(0.0, 10.0)),
})

rows = st.tuples(
    st.one_of(st.integers(-10**6, 10**9), st.just(NO_BID)),  # best bid
    st.one_of(st.integers(-5, 200), st.just(None)),  # ask - bid (None: no ask)
    st.integers(-1, 10**6), st.integers(0, 10**6),  # qty lots
    st.one_of(st.floats(0.0, 100.0), st.sampled_from([float("nan"), -1.0])),  # sigma
    st.floats(-200.0, 200.0),  # q
    st.integers(-10**18, 10**19 - 1),  # t_ns
)


def _row(r):
    bb, gap, bq, aq, sg, q, t = r
    ba = NO_ASK if gap is None else (bb + gap if bb != NO_BID else 10**6 + gap)
    return bb, ba, bq, aq, sg, q, min(t, 2**63 - 1)


def _make(kw):
    try:
        c = Quoter(**kw)
    except ValueError:
        with pytest.raises(ValueError):
            R.Quoter(**kw)
        return None, None
    return c, R.Quoter(**kw)


@settings(max_examples=500, deadline=None)
@given(params, st.lists(rows, min_size=1, max_size=20))
def test_quote_matches_twin(kw, rs):
    c, p = _make(kw)
    assume(c is not None)
    assert c.c1 == p.c1 and c.c2 == p.c2 and c.as_const == p.as_const
    for r in rs:
        args = _row(r)
        want = p.compute(*args)
        if want is None:
            with pytest.raises(ValueError):
                c.quote(*args)
            continue
        got = c.quote(*args)
        assert (got.bid_tick, got.ask_tick, got.bid_ok, got.ask_ok) == \
            (want.bid_tick, want.ask_tick, want.bid_ok, want.ask_ok), args
        assert got.reservation_price == approx(want.reservation_price, rel=1e-12)
        assert got.spread == approx(want.spread, rel=1e-12)
        assert got.fair_value == approx(want.fair_value, rel=1e-12)
        # invariants
        assert got.bid_tick < got.ask_tick
        bb, ba = args[0], args[1]
        if ba != NO_ASK:
            assert got.bid_tick <= ba - 1
        if bb != NO_BID:
            assert got.ask_tick >= bb + 1


@settings(max_examples=200, deadline=None)
@given(params, st.lists(rows, min_size=0, max_size=40))
def test_batch_equals_scalar_and_twin(kw, rs):
    c, p = _make(kw)
    assume(c is not None)
    cols = list(zip(*[_row(r) for r in rs])) if rs else [[]] * 7
    bb, ba, bq, aq = (np.array(x, dtype=np.int64) for x in cols[:4])
    sg, q = (np.array(x, dtype=np.float64) for x in cols[4:6])
    t = np.array(cols[6], dtype=np.int64)
    ob, oa, of = c.quote_batch(bb, ba, bq, aq, sg, q, t)
    assert ob.dtype == np.int64 and of.dtype == np.uint8 and len(ob) == len(rs)
    pb, pa, pf = p.quote_batch(bb, ba, bq, aq, sg, q, t)
    assert ob.tolist() == pb and oa.tolist() == pa and of.tolist() == pf
    for i in range(len(rs)):
        args = (int(bb[i]), int(ba[i]), int(bq[i]), int(aq[i]), float(sg[i]), float(q[i]), int(t[i]))
        try:
            s = c.quote(*args)
        except ValueError:
            assert of[i] == Q.FLAG_INVALID and ob[i] == 0 and oa[i] == 0
            continue
        assert (ob[i], oa[i]) == (s.bid_tick, s.ask_tick)
        assert of[i] == Q.FLAG_BID_OK * s.bid_ok + Q.FLAG_ASK_OK * s.ask_ok


def test_batch_preallocated_outputs_and_checks():
    qt = Quoter(model="glft")
    n = 1000
    rng = np.random.default_rng(0)
    bb = 10_000 + rng.integers(-50, 50, n)
    ba = bb + rng.integers(1, 4, n)
    bq = rng.integers(0, 100, n)
    aq = rng.integers(0, 100, n)
    sg = rng.uniform(0, 0.1, n)
    q = rng.uniform(-1.5, 1.5, n)
    t = np.arange(n, dtype=np.int64) * 1_000_000
    ob, oa, of = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint8)
    res = qt.quote_batch(bb, ba, bq, aq, sg, q, t, ob, oa, of)
    assert res[0] is ob and res[1] is oa and res[2] is of
    assert np.all(ob < oa) and np.all(ob <= ba - 1) and np.all(oa >= bb + 1)
    assert np.any(of == Q.FLAG_ASK_OK) and np.any(of == Q.FLAG_BID_OK)  # limits hit both ways
    with pytest.raises(ValueError):
        qt.quote_batch(bb, ba[:-1], bq, aq, sg, q, t)
    with pytest.raises(ValueError):
        qt.quote_batch(bb, ba, bq, aq, sg, q, t, out_bid=np.empty(n - 1, np.int64))
    # strided (non-contiguous) views are accepted
    ob2, _, _ = qt.quote_batch(bb[::2], ba[::2], bq[::2], aq[::2], sg[::2], q[::2], t[::2])
    assert ob2.tolist() == ob[::2].tolist()
