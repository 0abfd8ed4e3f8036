"""The compiled strategy core (hftcore.exchange / strategy / backtest) against its
pure-Python twin (tests/reference/replay.py): bit-identical fills, samples,
intents, counters and final states over randomised configurations on synthetic,
perturbed and gapped data and on a real Binance capture; chunking invariance of
the compiled driver loop; a multi-agent pass equal to each agent alone; a plain
Python strategy through PyStrategy equal to the same object in the twin."""
from __future__ import annotations

import functools
import math
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hftcore import EVENT_DTYPE, EV_BOOK_INVALID, EV_DEPTH, EV_SNAPSHOT, EVF_BEGIN, EVF_END, INVALID_GAP
from hftcore.backtest import FILL_DTYPE, SAMPLE_DTYPE, ReplayKernel
from hftcore.book import L2Book
from hftcore.exchange import REPORT_DTYPE, ExchangeModel
from hftcore.strategy import INTENT_DTYPE, MarketMaker, PyStrategy, Trader
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import build_kernel
from hftmm.reference.book import RefL2Book
from hftmm.synthetic import SyntheticConfig, day_start_ns, generate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import replay as ref  # noqa: E402

MS = 1_000_000
S = 1_000_000_000
TICK, LOT = "0.10", "0.001"           # the synthetic market's units
CAPTURE = os.path.join(os.path.dirname(__file__), "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz")
#: hypothesis examples per randomised test (more: HFTMM_TWIN_EXAMPLES=1000)
EXAMPLES = int(os.environ.get("HFTMM_TWIN_EXAMPLES", "120"))


# --------------------------------------------------------------------------- data


def _cat(chunks) -> np.ndarray:
    chunks = [c for c in chunks if len(c)]
    return np.concatenate(chunks, dtype=EVENT_DTYPE) if chunks else np.zeros(0, EVENT_DTYPE)


@functools.lru_cache(maxsize=16)
def _synthetic(seed: int, seconds: float) -> np.ndarray:
    return _cat(generate(SyntheticConfig(seed=seed), day_start_ns("2024-08-08"), seconds))


def synthetic(seed: int = 1, seconds: float = 6.0) -> np.ndarray:
    """The synthetic market's first ``seconds`` (initial snapshot included)."""
    return _synthetic(seed, seconds).copy()


def perturbed(ev: np.ndarray, seed: int) -> np.ndarray:
    """Exchange times out of order and receive times before exchange times (the
    running-max clocks), some exchange times unknown (0: the receive time is used)."""
    rng = np.random.default_rng(seed)
    out = ev.copy()
    out["exch_ts"] += rng.integers(-3 * MS, 3 * MS, len(out))
    out["local_ts"] += rng.integers(-4 * MS, 2 * MS, len(out))
    out["exch_ts"][rng.random(len(out)) < 0.01] = 0
    return out


def gapped(ev: np.ndarray, seed: int, n_gaps: int = 3, keep_depth: bool = False) -> np.ndarray:
    """Gaps as the normalised store marks them: a BOOK_INVALID record where a depth
    message was lost, no depth record (unless ``keep_depth``: every other) until a
    REST snapshot of the true book (unknown exchange time, top 150 levels a side);
    trades go on in between."""
    rng = np.random.default_rng(seed)
    starts = np.flatnonzero((ev["kind"] == EV_DEPTH) & ((ev["flags"] & EVF_BEGIN) != 0))
    starts = starts[starts > len(ev) // 10]
    if len(starts) < 2 * n_gaps:
        return ev.copy()
    picks = sorted(rng.choice(starts, size=n_gaps, replace=False).tolist())
    book = RefL2Book()
    out: list[tuple] = []
    gap_end = -1
    i = 0
    while i < len(ev):
        r = ev[i]
        kind, flags = int(r["kind"]), int(r["flags"])
        if picks and i == picks[0] and gap_end < i:
            picks.pop(0)
            out.append((int(r["local_ts"]), int(r["exch_ts"]), INVALID_GAP, 0, 0, 0, 0, EV_BOOK_INVALID, 0, EVF_END))
            gap_end = i + int(rng.integers(5, 60))
        if gap_end >= 0 and i >= gap_end and (flags & EVF_BEGIN):
            # the snapshot of the book as it is (the lost messages included)
            lv = [(0, t, q) for t, q in list(reversed(book.bids.items()))[:150]] + \
                 [(1, t, q) for t, q in list(book.asks.items())[:150]]
            for j, (side, t, q) in enumerate(lv):
                fl = (EVF_BEGIN if j == 0 else 0) | (EVF_END if j == len(lv) - 1 else 0)
                out.append((int(r["local_ts"]), 0, t, q, 0, 0, 0, EV_SNAPSHOT, side, fl))
            gap_end = -1
        in_gap = gap_end >= 0
        if kind == EV_DEPTH:
            book.apply(int(r["side"]), int(r["px"]), int(r["qty"]))
        elif kind == EV_SNAPSHOT:
            if flags & EVF_BEGIN:
                book.clear()
            book.apply(int(r["side"]), int(r["px"]), int(r["qty"]))
        if not in_gap or kind != EV_DEPTH or (keep_depth and i % 2 == 0):
            out.append(tuple(int(x) for x in r.tolist()))
        i += 1
    a = np.zeros(len(out), dtype=EVENT_DTYPE)
    for name, col in zip(EVENT_DTYPE.names, zip(*out)):
        a[name] = col
    return a


# --------------------------------------------------------------------------- running and comparing


def assert_same(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    """Equal structured arrays, byte for byte (NaN payloads and -0.0 would show);
    on a difference, the first differing row and field."""
    assert a.dtype == b.dtype, what
    if a.tobytes() == b.tobytes():
        return
    n = min(len(a), len(b))
    for i in range(n):
        if a[i].tobytes() != b[i].tobytes():
            diff = [f for f in a.dtype.names if a[i][f].tobytes() != b[i][f].tobytes()]
            raise AssertionError(f"{what}: row {i} of {len(a)}/{len(b)} differs in {diff}: {a[i]} != {b[i]}")
    raise AssertionError(f"{what}: {len(a)} rows != {len(b)} rows")


def _same_value(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):
        return len(x) == len(y) and all(_same_value(p, q) for p, q in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same_value(x[k], y[k]) for k in x)
    return x == y and type(x) is type(y) or (isinstance(x, (int, bool)) and isinstance(y, (int, bool)) and x == y)


def state(k, i: int) -> dict:
    """Everything observable of agent i after a run (the same API on kernel and twin)."""
    s, t = k.agent(i)
    out = dict(
        trader=dict(position=t.position, cash=t.cash, fees=t.fees, enabled=bool(t.enabled), killed=bool(t.killed),
                    kill_reason=t.kill_reason_name, refusal=t.refusal, last_pnl=t.last_pnl,
                    book_valid=bool(t.book_valid), working=(t.working(0), t.working(1)),
                    open_lots=(t.open_lots(0), t.open_lots(1)), room=(t.room(0), t.room(1)),
                    counters=t.counters(), limits=t.limits),
        strategy=dict(quotes=s.quotes, sigma=s.last_sigma, reservation=s.last_reservation,
                      timer=s.timer_interval_ns),
        kernel=dict(clock=k.clock, book_valid=k.book_valid, book_invalid_ns=k.book_invalid_ns, events=k.events,
                    book_invalid=k.book_invalid),
        book=(k.book.best_bid(), k.book.best_ask(), k.book.best_bid_qty(), k.book.best_ask_qty(), len(k.book)),
    )
    if isinstance(s, (MarketMaker, ref.RefMarketMaker)):
        out["strategy"].update(budget_short=s.budget_short, intensity=s.intensity,
                               vol_observations=s.vol_observations)
    if k.exchange is not None:
        x = k.exchange
        out["exchange"] = dict(position=x.position(i), cash=x.cash(i), fees=x.fees(i), open=x.open_orders(i),
                               counters=x.counters(i))
    return out


def drive(k, chunks, end_ns: int) -> list[dict]:
    """Run like BacktestEngine.run_backtest_group: chunk by chunk, draining the
    outputs after each; then finish(end_ns)."""
    n = k.n_agents
    fills = [[] for _ in range(n)]
    samples = [[] for _ in range(n)]
    intents = [[] for _ in range(n)]

    def drain():
        for j in range(n):
            fills[j].append(k.take_fills(j))
            samples[j].append(k.take_samples(j))
            intents[j].append(k.take_intents(j))

    for c in chunks:
        if len(c):
            k.run(c)
            drain()
    k.finish(end_ns)
    drain()
    return [dict(fills=np.concatenate(fills[j]), samples=np.concatenate(samples[j]),
                 intents=np.concatenate(intents[j]), counters=k.counters(j), state=state(k, j)) for j in range(n)]


def assert_same_run(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for j, (x, y) in enumerate(zip(a, b)):
        assert_same(x["fills"], y["fills"], f"agent {j} fills")
        assert_same(x["samples"], y["samples"], f"agent {j} samples")
        assert_same(x["intents"], y["intents"], f"agent {j} intents")
        assert x["counters"] == y["counters"], {c: (x["counters"][c], y["counters"].get(c)) for c in x["counters"]
                                                if x["counters"][c] != y["counters"].get(c)}
        for part in x["state"]:
            assert _same_value(x["state"][part], y["state"][part]), (j, part, x["state"][part], y["state"][part])


def check_invariants(res: dict, cfg: BacktestConfig, lot: float, tick: float) -> None:
    """What holds whatever the configuration (after finish far enough for every report)."""
    f, s, it = res["fills"], res["samples"], res["intents"]
    funded = res["counters"].get("fundings", 0) > 0     # funding moves the cash between fills
    pos, cash = 0, 0.0
    for row in f:
        notional = float(row["px"]) * tick * float(row["qty"]) * lot
        if row["side"] == 0:
            pos, cash = pos + int(row["qty"]), cash - notional
        else:
            pos, cash = pos - int(row["qty"]), cash + notional
        cash -= float(row["fee"])
        assert row["position"] == pos and (funded or row["cash"] == cash)
    assert np.all(f["report_ts"] - f["exch_ts"] == round(cfg.response_latency * 1e9))
    eq = s["cash"] + s["position"].astype(np.float64) * lot * s["mid"]
    assert np.array_equal(eq, s["equity"], equal_nan=True)
    assert np.all(np.diff(s["ts"]) > 0)
    c = res["counters"]
    st_ = res["state"]
    assert c["sent"] == int(np.sum((it["kind"] == ref.NEW) | (it["kind"] == ref.REPLACE)))
    assert c["replaces"] == int(np.sum(it["kind"] == ref.REPLACE))
    assert c["sent_lots"] == int(it["lots"][(it["kind"] == ref.NEW) | (it["kind"] == ref.REPLACE)].sum())
    # the rate limit: never more than max_orders_per_second orders in a sliding second (the
    # flatten of a kill, a market order, is exempt)
    sends = np.sort(it["ts"][((it["kind"] == ref.NEW) | (it["kind"] == ref.REPLACE)) & ((it["flags"] & ref.XM_MARKET) == 0)])
    m = int(cfg.max_orders_per_second) if cfg.max_orders_per_second else 0
    if m and len(sends) > m:
        assert np.all(sends[m:] - sends[:-m] >= S), "more than max_orders_per_second in a second"
    if cfg.cancel_latency >= cfg.order_latency:
        # every report delivered: the trader knows what the exchange did (a cancel cannot
        # overtake its order: test_exchange_model)
        assert st_["trader"]["position"] == st_["exchange"]["position"]
        assert st_["trader"]["cash"] == st_["exchange"]["cash"]
        assert st_["trader"]["fees"] == st_["exchange"]["fees"]
        # the position limit, with every order in flight filled, held at every fill
        ml = st_["trader"]["limits"]["max_lots"]
        if ml > 0 and not st_["trader"]["killed"]:
            assert np.all(np.abs(f["position"]) <= ml)


def run_both(configs, chunks, tick=TICK, lot=LOT, market="spot", end_ns=None):
    chunks = [c for c in chunks if len(c)]
    end = int(max(int(c["exch_ts"].max()) for c in chunks)) + 2 * S if end_ns is None else end_ns
    a = drive(build_kernel(configs, tick, lot, market, record_intents=True), chunks, end)
    b = drive(ref.build_reference(configs, tick, lot, market, record_intents=True), chunks, end)
    assert_same_run(a, b)
    return a


def cfg(**kw) -> BacktestConfig:
    kw.setdefault("sample_interval", 0.25)
    return BacktestConfig(**kw)


# --------------------------------------------------------------------------- the twin's own pieces


def test_records_and_parameters_are_the_cores():
    assert ref.FILL_DTYPE == FILL_DTYPE and ref.SAMPLE_DTYPE == SAMPLE_DTYPE
    assert ref.INTENT_DTYPE == INTENT_DTYPE and ref.REPORT_DTYPE == REPORT_DTYPE
    # xoshiro256** seeded by splitmix64(0): its first state word is splitmix64's first output
    assert ref.Xoshiro256ss(0).s[0] == 0xE220A8397B1DCDAF
    # the twin's mapping of a config equals the one the engine builds
    c = cfg(max_position=0.007, max_orders_per_second=3.9, max_drawdown_abs=12.5, flatten_on_kill=False)
    k = build_kernel([c], TICK, LOT, "spot")
    _, limits, _ = ref.reference_from_config(c, 0.1, 0.001, "spot")
    assert k.agent(0)[1].limits == ref.RefTrader(limits).limits
    assert k.agent(0)[1].limits["max_lots"] == 7 and k.agent(0)[1].limits["max_sends"] == 3


# --------------------------------------------------------------------------- fixed configurations: every feature fires

FEATURES = {
    # name: (config, data variant, what must have happened)
    "default": (dict(), "plain", lambda c, r: c["fills"] > 0 and c["quotes"] > 0),
    "rate_binding": (dict(max_orders_per_second=2, quote_refresh_interval=0.02, requote_threshold=0),
                     "plain", lambda c, r: r["state"]["strategy"]["budget_short"] > 0),
    "position_binding": (dict(max_position=0.001, quote_refresh_interval=0.02, requote_threshold=0, post_only=False),
                         "plain", lambda c, r: c["refused_position"] > 0),
    "kill_flatten": (dict(max_daily_loss=0.02, post_only=False, maker_fee=0.001, taker_fee=0.002, order_size=0.003,
                          max_position=0.01), "plain",
                     lambda c, r: c["killed"] and bool(np.any(r["intents"]["flags"] == ref.XM_MARKET))),
    "drawdown_kill": (dict(max_drawdown=1e-6, max_daily_loss=0.0, initial_capital=1000.0, maker_fee=0.0005),
                      "plain", lambda c, r: c["kill_reason"] == "max_drawdown"),
    "post_only_rejects": (dict(order_latency=0.05, response_latency=0.0, quote_refresh_interval=0.01,
                               requote_threshold=0), "plain", lambda c, r: c["rejected"] > 0),
    "taker": (dict(post_only=False, order_latency=0.04, quote_refresh_interval=0.01, requote_threshold=0,
                   taker_fee=0.0004, maker_fee=-0.0001), "plain", lambda c, r: c["taker_lots"] > 0),
    "intensity": (dict(fill_model="intensity", fill_A=40.0, fill_k=0.5, estimate_intensity=False,
                       inventory_sizing=True, order_size=0.004), "plain", lambda c, r: c["fills"] > 0),
    "queue_power_partials": (dict(queue_model="power", queue_power=3.0, order_size=0.05, max_position=0.2,
                                  model="glft", fair_value="micro"), "plain", lambda c, r: c["fills"] > 0),
    "zero_latencies": (dict(order_latency=0.0, cancel_latency=0.0, response_latency=0.0, feed_latency=0.0,
                            queue_model="log"), "perturbed", lambda c, r: c["fills"] > 0),
    "gapped": (dict(quote_refresh_interval=0.02), "gapped", lambda c, r: c["book_invalid"] > 0
               and c["refused_invalid"] >= 0 and c["book_invalid_ns"] > 0),
    "gapped_depth_kept": (dict(post_only=False, min_order_lifetime=0.2, requote_threshold=2, rolling_horizon=True),
                          "gapped_depth", lambda c, r: c["book_invalid"] > 0),
    "funding": (dict(max_position=0.01), "funding", lambda c, r: c["fundings"] > 2 and c["funding"] != 0.0),
    "notional_binding": (dict(max_position=0.0, max_notional=100.0, quote_refresh_interval=0.02, requote_threshold=0,
                              post_only=False), "plain", lambda c, r: c["refused_position"] > 0),
}


def _data(variant: str, seed: int = 1, seconds: float = 8.0) -> np.ndarray:
    ev = synthetic(seed, seconds)
    if variant == "perturbed":
        return perturbed(ev, seed)
    if variant == "gapped":
        return gapped(ev, seed, 3)
    if variant == "gapped_depth":
        return gapped(perturbed(ev, seed), seed, 3, keep_depth=True)
    if variant == "funding":
        return with_funding_every(ev, 0.5)
    return ev


def with_funding_every(ev: np.ndarray, every_s: float) -> np.ndarray:
    """USD-M funding records every ``every_s`` [s] of the data: rates of both signs,
    half with a mark price (a tick above the first mid), half without (the book's mid)."""
    from decimal import Decimal

    from hftmm.data.funding import FundingRow, funding_events, with_funding

    t0, t1 = int(ev["local_ts"][0]), int(ev["local_ts"][-1])
    rows, mark = [], Decimal(int(ev["px"][len(ev) // 2])) * Decimal(TICK)
    for i, t in enumerate(range(t0 + int(every_s * 1e9), t1, int(every_s * 1e9))):
        rate = Decimal(("0.0005", "-0.0003", "0.00012345")[i % 3])
        rows.append(FundingRow(t // 1_000_000, rate, mark if i % 2 else None))
    [out] = list(with_funding([ev], funding_events(rows, TICK)))
    return out


@pytest.mark.parametrize("name", list(FEATURES))
def test_twin_equals_kernel_on_each_feature(name):
    kw, variant, fired = FEATURES[name]
    c = cfg(**kw)
    [r] = run_both([c], [_data(variant)])
    assert fired(r["counters"], r), (name, r["counters"])
    check_invariants(r, c, 0.001, 0.1)


# --------------------------------------------------------------------------- the whole config space, randomised


def _configs():
    order_size = st.sampled_from([0.001, 0.002, 0.005, 0.05])
    return st.fixed_dictionaries(dict(
        model=st.sampled_from(["as", "glft"]),
        gamma=st.sampled_from([0.01, 0.1, 1.0, 5.0]),
        time_horizon=st.sampled_from([1.0, 30.0]),
        rolling_horizon=st.booleans(),
        xi=st.sampled_from([None, 0.0, 0.5]),
        fair_value=st.sampled_from(["mid", "micro"]),
        ewma_half_life=st.sampled_from([1.0, 60.0]),
        k=st.sampled_from([0.5, 10.0]),
        A=st.sampled_from([1.0, 5.0, 140.0]),
        estimate_intensity=st.booleans(),
        intensity_window=st.sampled_from([2.0, 600.0]),
        intensity_refit=st.sampled_from([0.5, 10.0]),
        order_size=order_size,
        min_spread=st.sampled_from([0.0, 0.5, 3.0]),
        quote_refresh_interval=st.sampled_from([0.005, 0.03, 0.1, 0.4]),
        requote_threshold=st.integers(0, 3),
        min_order_lifetime=st.sampled_from([0.0, 0.0, 0.05, 0.5]),
        inventory_sizing=st.booleans(),
        post_only=st.booleans(),
        price_band=st.sampled_from([0.2, 0.2, 0.2, 2e-5]),
        feed_latency=st.sampled_from([None, None, 0.0, 0.002, 0.02]),
        order_latency=st.sampled_from([0.0, 0.001, 0.005, 0.03]),
        cancel_latency=st.sampled_from([0.0, 0.001, 0.005, 0.03]),
        response_latency=st.sampled_from([0.0, 0.001, 0.005, 0.03]),
        queue_model=st.sampled_from(["risk_averse", "power", "log"]),
        queue_power=st.sampled_from([0.5, 2.0, 3.0]),
        fill_model=st.sampled_from(["queue", "queue", "intensity"]),
        fill_A=st.sampled_from([5.0, 50.0]),
        fill_k=st.sampled_from([0.3, 10.0]),
        maker_fee=st.sampled_from([None, 0.0, -0.0001, 0.001]),
        taker_fee=st.sampled_from([None, 0.0, 0.0005, -0.00005]),
        seed=st.integers(0, 2**32),
        max_position=st.sampled_from([0.0, 1.0, 2.0, 5.0]),        # x order_size (1: binding)
        max_orders_per_second=st.sampled_from([None, 1.0, 2.0, 3.0, 4.0, 10.0]),
        max_daily_loss=st.sampled_from([0.0, 0.0, 0.01, 0.3, 100.0]),
        max_drawdown=st.sampled_from([0.0, 0.0, 1e-6, 0.05]),
        max_drawdown_abs=st.sampled_from([None, None, 0.02]),
        max_notional=st.sampled_from([0.0, 0.0, 70.0, 300.0]),     # quote (a lot is ~ 62 at the synthetic mid)
        initial_capital=st.sampled_from([10.0, 10_000.0]),
        flatten_on_kill=st.booleans(),
        sample_interval=st.sampled_from([0.05, 0.5, 1.0]),
    ))


def _make(d: dict) -> BacktestConfig:
    d = dict(d)
    d["max_position"] = d["max_position"] * d["order_size"]
    return BacktestConfig(**d)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=_configs(), data_seed=st.integers(1, 4), variant=st.sampled_from(["plain", "perturbed", "gapped",
                                                                            "gapped_depth"]))
def test_twin_equals_kernel_randomised(d, data_seed, variant):
    c = _make(d)
    [r] = run_both([c], [_data(variant, data_seed, 5.0)])
    check_invariants(r, c, 0.001, 0.1)


SHARED = ("feed_latency", "sample_interval")


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=st.lists(_configs(), min_size=2, max_size=4), data_seed=st.integers(1, 4),
       variant=st.sampled_from(["plain", "gapped_depth"]), copy_estimators=st.booleans())
def test_multi_agent_randomised(ds, data_seed, variant, copy_estimators):
    """A pass of 2-4 random strategies (the shared fields of the first) equals each
    strategy alone, and the twin's pass; with ``copy_estimators`` the estimator knobs
    are the first's, so the volatility and intensity estimates are shared."""
    first = ds[0]
    est = ("ewma_half_life", "intensity_window", "intensity_refit", "quote_refresh_interval")
    ds = [{**d, **{f: first[f] for f in SHARED}, **({f: first[f] for f in est} if copy_estimators else {})}
          for d in ds]
    configs = [_make(d) for d in ds]
    ev = _data(variant, data_seed, 4.0)
    end = int(ev["exch_ts"].max()) + 2 * S
    multi = run_both(configs, [ev])
    for i, c in enumerate(configs):
        alone = drive(build_kernel([c], TICK, LOT, "spot", record_intents=True), [ev], end)
        for key in ("fills", "samples", "intents"):
            assert_same(multi[i][key], alone[0][key], f"agent {i} {key}")
        assert multi[i]["counters"] == alone[0]["counters"]
        for part in ("trader", "exchange", "strategy"):
            assert _same_value(multi[i]["state"][part], alone[0]["state"][part]), (i, part)


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=_configs(), data_seed=st.integers(1, 4), variant=st.sampled_from(["perturbed", "gapped_depth"]),
       cuts=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_chunking_invariance_randomised(d, data_seed, variant, cuts):
    c = _make(d)
    ev = _data(variant, data_seed, 4.0)
    end = int(ev["exch_ts"].max()) + S

    def run(chunks):
        return drive(build_kernel([c], TICK, LOT, "spot", record_intents=True), chunks, end)

    idx = sorted({int(x * len(ev)) for x in cuts})
    assert_same_run(run([ev]), run(np.split(ev, idx)))


# --------------------------------------------------------------------------- a real capture


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """The real spot capture through ``hftmm data convert`` and the engine's event
    source (receive clock corrected as a backtest does)."""
    from hftmm.backtesting.engine import store_source
    from hftmm.data.convert import convert

    d = str(tmp_path_factory.mktemp("capture"))
    convert([CAPTURE], d, tick_size="0.01", lot_size="0.00000001", progress=False)
    src = store_source(cfg(data_path=d))
    ev = _cat(src.chunks)
    return d, ev, src


@pytest.mark.parametrize("kw", [
    dict(order_size=0.0001, max_position=0.001, quote_refresh_interval=0.05),
    dict(order_size=0.0002, model="glft", fair_value="micro", queue_model="log", post_only=False,
         max_orders_per_second=3, quote_refresh_interval=0.02, requote_threshold=0, feed_latency=0.002,
         max_position=0.0004, inventory_sizing=True, maker_fee=-0.0001),
    dict(order_size=0.0005, fill_model="intensity", fill_A=2.0, fill_k=0.2, queue_model="power",
         max_orders_per_second=1, min_order_lifetime=0.5, max_daily_loss=0.5, cancel_latency=0.001,
         order_latency=0.001, response_latency=0.02),
], ids=["as", "glft_taker_rate", "intensity_kill"])
def test_twin_equals_kernel_on_the_real_capture(capture, kw):
    d, ev, src = capture
    c = cfg(data_path=d, sample_interval=0.1, **kw)
    [r] = run_both([c], [ev], src.tick_size, src.lot_size, src.market)
    assert r["counters"]["events"] == len(ev) and r["counters"]["quotes"] > 100 and r["counters"]["sent"] > 10
    check_invariants(r, c, float(src.lot_size), float(src.tick_size))


# --------------------------------------------------------------------------- chunking invariance (compiled)


@pytest.mark.parametrize("name", ["rate_binding", "kill_flatten", "gapped_depth_kept", "zero_latencies"])
def test_chunking_invariance(name):
    kw, variant, _ = FEATURES[name]
    c = cfg(**kw)
    ev = _data(variant, seed=2, seconds=5.0)
    end = int(ev["exch_ts"].max()) + S

    def run(chunks):
        return drive(build_kernel([c], TICK, LOT, "spot", record_intents=True), chunks, end)

    whole = run([ev])
    rng = np.random.default_rng(len(name))
    cuts = np.sort(rng.choice(np.arange(1, len(ev)), size=60, replace=False))
    assert_same_run(whole, run(np.split(ev, cuts)))
    assert_same_run(whole, run([ev[i:i + 1] for i in range(len(ev))]))
    assert whole[0]["counters"]["sent"] > 0
    # a paper session: one frame at a time, and in between the local items due before
    # the next frame's exchange time (a quiet market's reports and timers), kernel and twin
    for make in (build_kernel, ref.build_reference):
        k = make([c], TICK, LOT, "spot", record_intents=True)
        for i in range(len(ev)):
            k.run(ev[i:i + 1])
            if i + 1 < len(ev):
                k.advance_local(int(ev["exch_ts"][i + 1]) or int(ev["local_ts"][i + 1]))
        assert_same_run(whole, drive(k, [], end))


# --------------------------------------------------------------------------- several agents in one pass


def test_multi_agent_pass_equals_each_alone():
    base = dict(sample_interval=0.25, feed_latency=0.002)
    configs = [
        cfg(**base),
        cfg(**base, gamma=0.5, max_orders_per_second=2, quote_refresh_interval=0.02),          # shares both
        cfg(**base, model="glft", fair_value="micro", queue_model="power", post_only=False),  # shares both
        cfg(**base, ewma_half_life=5.0, fill_model="intensity", fill_A=30.0, fill_k=0.5),     # shares nothing
        cfg(**base, quote_refresh_interval=0.05, max_daily_loss=0.02, maker_fee=0.001, seed=9),  # vol only
    ]
    ev = gapped(perturbed(synthetic(4, 6.0), 4), 4, 2)
    end = int(ev["exch_ts"].max()) + S
    # which agents share agent 0's estimators (build_kernel shares the same way)
    from hftmm.strategy import core

    mms = [core.market_maker(c.strategy, c.risk, 0.1, 0.001) for c in configs]
    assert [mms[i].share_estimators(mms[0]) for i in range(1, len(configs))] == [True, True, False, True]
    k = build_kernel(configs, TICK, LOT, "spot", record_intents=True)
    multi = drive(k, [ev], end)
    for i, c in enumerate(configs):
        alone = drive(build_kernel([c], TICK, LOT, "spot", record_intents=True), [ev], end)
        for key in ("fills", "samples", "intents"):
            assert_same(multi[i][key], alone[0][key], f"agent {i} {key}")
        assert multi[i]["counters"] == alone[0]["counters"]
        for part in ("trader", "exchange", "strategy"):
            assert _same_value(multi[i]["state"][part], alone[0]["state"][part]), (i, part)
    assert sum(m["counters"]["fills"] for m in multi) > 0 and multi[4]["counters"]["killed"]
    # the twin's multi-agent pass is the kernel's
    assert_same_run(multi, drive(ref.build_reference(configs, TICK, LOT, "spot", record_intents=True), [ev], end))


# --------------------------------------------------------------------------- a Python strategy


class ImbalanceMaker:
    """A user strategy written against the Python API only: quotes one order a side
    around the mid shifted by the top-of-book imbalance, sized by the room the
    position limit leaves; moves by replace (cancels when the position limit
    refuses); every ``timer_interval`` it checks its inventory and, past a time,
    trips the kill switch with a flatten. Logs everything it sees."""

    timer_interval = 0.25

    def __init__(self, lots: int, edge: int, post_only: bool, kill_after_ns: int) -> None:
        self.lots, self.edge, self.post_only, self.kill_after_ns = lots, edge, post_only, kill_after_ns
        self.log: list[tuple] = []
        self.t0 = None

    def on_start(self, now):
        self.t0 = now
        self.log.append(("start", now, self.trader.position, self.trader.budget()))

    def on_book(self, now):
        b, t = self.book, self.trader
        bb, ba = b.best_bid(), b.best_ask()
        if bb is None or ba is None or bb >= ba:
            return
        imb = b.imbalance(3)
        fair = b.mid_ticks() + 0.5 * imb
        want = (math.floor(fair - self.edge), math.ceil(fair + self.edge))
        self.log.append(("book", now, bb, ba, b.best_bid_qty(), b.best_ask_qty(), imb, t.position, t.budget(),
                         t.room(0), t.room(1), t.open_lots(0), t.open_lots(1), b.microprice(), len(b)))
        for side in (0, 1):
            lots = min(self.lots, t.room(side))
            w = t.working(side)
            if not w:
                if lots > 0:
                    self.log.append(("new", now, side, t.new(side, want[side], lots, self.post_only), t.refusal))
            elif w[-1][1] != want[side]:
                nid = t.replace(w[-1][0], want[side], max(lots, 1))
                self.log.append(("replace", now, side, nid, t.refusal))
                if nid == 0 and t.refusal == "position limit":
                    t.cancel(w[-1][0])

    def on_trade(self, now, side, px, qty):
        self.log.append(("trade", now, side, px, qty))

    def on_fill(self, now, oid, side, px, lots):
        self.log.append(("fill", now, oid, side, px, lots, self.trader.position, self.trader.cash))

    def on_order_done(self, now, oid, kind):
        self.log.append(("done", now, oid, kind, self.trader.order(oid)))

    def on_book_invalid(self, now):
        self.log.append(("invalid", now, self.trader.book_valid, self.trader.working(0), self.trader.working(1)))

    def on_timer(self, now):
        t = self.trader
        self.log.append(("timer", now, t.position, t.enabled, t.killed))
        if abs(t.position) > 3 * self.lots:
            t.pause(True)
            t.flatten()
        elif not t.enabled and not t.killed:
            t.pause(False)
        if now - self.t0 > self.kill_after_ns and not t.killed:
            t.kill()


@pytest.mark.parametrize("post_only", [True, False])
def test_python_strategy_through_pystrategy_equals_the_twin(post_only):
    c = cfg(max_position=0.004, max_orders_per_second=4, post_only=post_only, order_latency=0.003,
            queue_model="power")
    ev = gapped(synthetic(5, 6.0), 5, 2, keep_depth=True)
    end = int(ev["exch_ts"].max()) + S
    mm, limits, xp = ref.reference_from_config(c, 0.1, 0.001, "spot")

    def kernel():
        impl = ImbalanceMaker(2, 3, post_only, 4 * S)
        book = L2Book(TICK, LOT)
        xm = ExchangeModel(book, [xp], [c.seed])
        return ReplayKernel(book, [(PyStrategy(impl), Trader(limits))], xm, -1, 250 * MS, True), impl

    def twin():
        impl = ImbalanceMaker(2, 3, post_only, 4 * S)
        book = RefL2Book(0.1, 0.001)
        xm = ref.RefExchangeModel(book, [xp], [c.seed])
        return ref.RefReplayKernel(book, [(ref.RefPyStrategy(impl), ref.RefTrader(limits))], xm, -1, 250 * MS,
                                   True), impl

    (ka, ia), (kb, ib) = kernel(), twin()
    a, b = drive(ka, [ev], end), drive(kb, [ev], end)
    assert_same_run(a, b)
    assert len(ia.log) == len(ib.log)
    for x, y in zip(ia.log, ib.log):
        assert _same_value(list(x), list(y)), (x, y)
    kinds = {e[0] for e in ia.log}
    assert {"start", "book", "trade", "fill", "done", "timer", "invalid", "new", "replace"} <= kinds
    assert a[0]["counters"]["killed"] and a[0]["counters"]["kill_reason"] == "external"


# --------------------------------------------------------------------------- core bugs (minimal reproducers)


@pytest.mark.parametrize("impl", ["kernel", "twin"])
def test_recorded_intents_without_an_exchange_model_are_left_to_the_driver(impl):
    """Live trading (no exchange model): the intents stay in the trader for the Python
    layer to send (and record) -- the kernel does not log them (it once logged the
    same NEW at every flush until it was drained)."""

    class OneBid:
        def on_book(self, now):
            if not self.trader.working(0):
                self.trader.new(0, self.book.best_bid(), 1)

    ev = np.zeros(4, dtype=EVENT_DTYPE)
    for i, (t, kind, side, px, qty, fl) in enumerate([(0, EV_SNAPSHOT, 0, 100, 10, EVF_BEGIN),
                                                      (0, EV_SNAPSHOT, 1, 101, 2, EVF_END),
                                                      (1, EV_DEPTH, 0, 100, 9, EVF_BEGIN | EVF_END),
                                                      (2, EV_DEPTH, 0, 100, 8, EVF_BEGIN | EVF_END)]):
        ev[i] = (S + t * MS + MS, S + t * MS, px, qty, 0, 0, 0, kind, side, fl)
    limits = {"tick_size": 0.5, "lot_size": 0.01}
    if impl == "kernel":
        tr = Trader(limits)
        k = ReplayKernel(L2Book(0.5, 0.01), [(PyStrategy(OneBid()), tr)], None, -1, 0, True)
    else:
        tr = ref.RefTrader(limits)
        k = ref.RefReplayKernel(RefL2Book(0.5, 0.01), [(ref.RefPyStrategy(OneBid()), tr)], None, -1, 0, True)
    k.run(ev)
    assert len(tr.take_intents()) == 1          # one NEW was decided (the live driver sends and records it) ...
    assert len(k.take_intents(0)) == 0          # ... not the kernel
