"""Paper trading = backtest, offline, on a real capture: the kernel a paper session
runs (:func:`hftmm.live.engine.paper_kernel`), fed one message at a time as the
connector does, makes byte for byte the decisions and fills of
:meth:`BacktestEngine.run_backtest` over the same events (the store ``data
convert`` makes of the capture), for random strategy / exchange / risk configs.
(The live end-to-end version, over the network and a recording, is in
test_live_engine.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.backtesting.engine import build_kernel
from hftmm.config import ExchangeModelConfig, RiskConfig, TradingConfig
from hftmm.live.engine import paper_kernel

@pytest.fixture(scope="module")
def capture(capture_store):
    return capture_store


CONFIGS = st.fixed_dictionaries({
    "model": st.sampled_from(["as", "glft"]),
    "fair_value": st.sampled_from(["mid", "micro"]),
    "gamma": st.sampled_from([0.001, 0.01, 0.1]),
    "time_horizon": st.sampled_from([1.0, 30.0]),
    "k": st.sampled_from([5.0, 50.0]),
    "estimate_intensity": st.booleans(),
    "order_size": st.sampled_from([0.0005, 0.002]),
    "quote_refresh_interval": st.sampled_from([0.01, 0.1]),
    "requote_threshold": st.sampled_from([0, 2]),
    "post_only": st.booleans(),
    "max_position": st.sampled_from([0.002, 0.01]),
    "max_orders_per_second": st.sampled_from([None, 10.0]),
    "order_latency": st.sampled_from([0.0, 0.003, 0.02]),
    "cancel_latency": st.sampled_from([0.001, 0.01]),
    "response_latency": st.sampled_from([0.0, 0.004]),
    "queue_model": st.sampled_from(["risk_averse", "power", "log"]),
    "fill_model": st.sampled_from(["queue", "intensity"]),
    "maker_fee": st.sampled_from([None, -0.0001]),
    "seed": st.integers(1, 1000),
})

_T = {f for f in TradingConfig.__dataclass_fields__}
_R = {f for f in RiskConfig.__dataclass_fields__}
_X = {f for f in ExchangeModelConfig.__dataclass_fields__}


def _parts(c: dict):
    trading = TradingConfig(symbol="BTCUSDT", **{k: v for k, v in c.items() if k in _T})
    risk = RiskConfig(max_daily_loss=1e6, max_drawdown=1.0, **{k: v for k, v in c.items() if k in _R})
    exchange = ExchangeModelConfig(fill_A=20.0, fill_k=0.5, clock_correction=False,
                                   **{k: v for k, v in c.items() if k in _X})
    return trading, risk, exchange


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=CONFIGS)
def test_paper_frame_by_frame_makes_the_backtests_decisions_and_fills(capture, c):
    path, meta, ev, frames = capture
    trading, risk, exchange = _parts(c)
    tick, lot = meta["tick_size"], meta["lot_size"]
    paper = paper_kernel(trading, risk, exchange, tick, lot, "spot")
    intents, fills = [], []
    for fr in frames:                      # what LiveEngine does for each frame
        paper.run(fr)
        intents.append(paper.take_intents(0))
        fills.append(paper.take_fills(0))
    p_intents, p_fills = np.concatenate(intents), np.concatenate(fills)
    # the backtest of the same configs over the store
    bt = BacktestConfig.compose(trading, exchange, risk, data_path=path, start_date="2024-08-08",
                                end_date="2024-08-08", feed_latency=None)
    res = BacktestEngine().run_backtest(bt)
    t = res.trades
    assert len(t) == len(p_fills)
    for col, name in (("exch_ts", "exch_ts"), ("report_ts", "report_ts"), ("order_id", "order_id"),
                      ("px_ticks", "px"), ("side", "side"), ("taker", "taker"), ("submit_ts", "submit_ts")):
        np.testing.assert_array_equal(t[col].to_numpy(), p_fills[name], err_msg=col)
    np.testing.assert_array_equal(t["fee"].to_numpy(), p_fills["fee"])
    # every decision, at the same times (the backtest's own kernel, recording)
    k = build_kernel([bt], tick, lot, "spot", record_intents=True)
    k.run(ev)
    assert k.take_intents(0).tobytes() == p_intents.tobytes()
    assert res.counters["quotes"] == paper.counters(0)["quotes"]
    assert res.counters["sent"] >= 1


def test_the_parity_is_not_vacuous(capture):
    """A config with fills and every kind of decision, on the real capture."""
    path, meta, ev, frames = capture
    trading, risk, exchange = _parts(dict(gamma=0.001, k=50.0, estimate_intensity=False, order_size=0.001,
                                          max_position=0.01, quote_refresh_interval=0.01,
                                          max_orders_per_second=20.0, fill_model="queue"))
    paper = paper_kernel(trading, risk, exchange, meta["tick_size"], meta["lot_size"], "spot")
    for fr in frames:
        paper.run(fr)
    it, f = paper.take_intents(0), paper.take_fills(0)
    kinds = set(int(x) for x in it["kind"])
    assert len(f) >= 5 and kinds >= {1, 2} and len(it) > 100, (len(f), kinds, len(it))
    # the rate limit held in every one-second window (new orders and replaces)
    sends = np.sort(it["ts"][it["kind"] != 2])
    j = np.searchsorted(sends, sends - 1_000_000_000, side="right")
    assert int(np.max(np.arange(len(sends)) - j + 1)) <= 20
    # and the position limit with every order in flight
    assert np.abs(f["position"]).max() * float(meta["lot_size"]) <= 0.01 + 1e-12
