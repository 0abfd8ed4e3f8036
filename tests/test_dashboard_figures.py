"""The dashboard's pure parts: analytics and Plotly figure functions, on
realistic and on empty inputs (no Streamlit, no browser)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")

from hftmm.dashboard import analytics as an  # noqa: E402
from hftmm.dashboard import figures as fg  # noqa: E402

NS = 1_000_000_000
T0 = 1_723_075_200 * NS   # 2024-08-08 00:00 UTC


def _series(n: int = 1200, dt_s: float = 1.0, seed: int = 1) -> pd.DataFrame:
    """A run's time series: random-walk mid (tick 0.1), quotes around it, a
    stepwise position and an equity with drift."""
    rng = np.random.default_rng(seed)
    ts = T0 + (np.arange(n) * dt_s * NS).astype(np.int64)
    mid = 61_800 + np.round(np.cumsum(rng.normal(0, 0.5, n)) / 0.05) * 0.05
    pos = np.round(np.cumsum(rng.choice([-0.001, 0, 0.001], n, p=[0.1, 0.8, 0.1])), 3)
    pnl = np.cumsum(rng.normal(0.001, 0.01, n))
    return pd.DataFrame({"time": pd.to_datetime(ts, unit="ns", utc=True), "ts": ts, "mid": mid,
                         "best_bid": mid - 0.05, "best_ask": mid + 0.05, "bid_quote": mid - 0.5,
                         "ask_quote": mid + 0.5, "equity": 10_000 + pnl, "pnl": pnl, "position": pos,
                         "spread": 0.1 + rng.integers(0, 3, n) * 0.1, "sigma": np.abs(rng.normal(1, 0.1, n)),
                         "trade_rate": rng.poisson(20, n).astype(float),
                         "feed_latency_ms": rng.gamma(3, 3, n), "order_rtt_ms": rng.gamma(4, 2, n)})


def _fills(ts: pd.DataFrame, n: int = 200, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ts), n, replace=False))
    side = rng.choice(["buy", "sell"], n)
    mid = ts["mid"].to_numpy()[idx]
    lvl = rng.integers(0, 6, n) + 0.5
    price = np.where(side == "buy", mid - lvl * 0.1, mid + lvl * 0.1)
    t = ts["ts"].to_numpy()[idx] + 1000
    return pd.DataFrame({"time": pd.to_datetime(t, unit="ns", utc=True), "ts": t, "side": side, "price": price,
                         "qty": 0.001, "fee": 0.0, "mid": mid, "latency_ms": rng.gamma(3, 4, n), "maker": True})


EMPTY = pd.DataFrame()


# --------------------------------------------------------------------------- analytics


def test_cumulative_depth_is_monotone_away_from_the_touch():
    rng = np.random.default_rng(3)
    bids = [[61_800 - 0.1 * i, float(q)] for i, q in enumerate(rng.uniform(0.01, 2, 20))]
    asks = [[61_800.1 + 0.1 * i, float(q)] for i, q in enumerate(rng.uniform(0.01, 2, 20))]
    rng.shuffle(bids)   # any order in, sorted out
    bp, bc, ap, ac = an.cumulative_depth(bids, asks)
    assert np.all(np.diff(bp) < 0) and np.all(np.diff(ap) > 0)
    assert np.all(np.diff(bc) > 0) and np.all(np.diff(ac) > 0)
    assert bc[-1] == pytest.approx(sum(q for _, q in bids)) and ac[0] == pytest.approx(asks[0][1])
    assert bp[0] == pytest.approx(61_800) and ap[0] == pytest.approx(61_800.1)
    e = an.cumulative_depth([], [])
    assert all(len(x) == 0 for x in e)


def test_drawdown_is_never_positive_and_zero_at_new_peaks():
    eq = np.array([100, 101, 99, 98, 102, np.nan, 101, 103.0])
    dd = an.drawdown(eq)
    assert np.nanmax(dd) <= 0 and np.isnan(dd[5])
    np.testing.assert_allclose(dd[[0, 1, 2, 3, 4, 6, 7]], [0, 0, -2, -3, 0, -1, 0])
    assert len(an.drawdown([])) == 0


def test_rolling_sharpe_window_and_value():
    ts = _series(3600)
    rs = an.rolling_sharpe(ts["ts"], ts["equity"], interval_s=60.0, window=10)
    # 3600 samples 1 s apart -> 60 one-minute grid points, 59 changes; the first value after 10 of them
    assert len(rs) == 59 - 10 + 1
    assert rs["ts"].iloc[0] == ts["ts"].iloc[0] + 10 * 60 * NS
    # the last window by hand: mean / sd of the last 10 one-minute changes, annualised
    grid = ts["equity"].to_numpy()[::60]
    d = np.diff(grid)[-10:]
    assert rs["sharpe"].iloc[-1] == pytest.approx(d.mean() / d.std(ddof=1) * math.sqrt(365 * 86400 / 60))
    assert len(an.rolling_sharpe([], [], 60, 10)) == 0
    assert len(an.rolling_sharpe(ts["ts"][:300], ts["equity"][:300], 60.0, 10)) == 0   # shorter than a window


def test_markouts_by_hand():
    mid_ts = T0 + np.arange(0, 100) * NS
    mid = 100.0 + np.arange(100) * 0.01            # rises 0.01 per second
    f_ts = np.array([T0 + 10 * NS, T0 + 20 * NS])
    mo = an.markout_curve(f_ts, [100.1, 100.2], ["buy", "SELL"], mid_ts, mid, horizons_s=(1, 10, 200))
    buy10 = mo[(mo.side == "buy") & (mo.horizon_s == 10)].iloc[0]
    assert buy10["markout_bps"] == pytest.approx((100.2 - 100.1) / 100.1 * 1e4) and buy10["n"] == 1
    sell1 = mo[(mo.side == "sell") & (mo.horizon_s == 1)].iloc[0]
    assert sell1["markout_bps"] == pytest.approx(-(100.21 - 100.2) / 100.2 * 1e4)
    assert mo[mo.horizon_s == 200]["n"].sum() == 0          # past the end of the data: left out
    assert len(an.markout_curve([], [], [], mid_ts, mid)) == 0


def test_fill_levels_and_tick_inference():
    assert an.infer_tick([61_800.0, 61_800.1, 61_800.3]) == pytest.approx(0.1)
    assert an.infer_tick([1.0]) is None
    lv = an.fill_levels([99.9, 99.7, 100.2, 100.1], [100.0, 100.0, 100.0, 100.0], [0, 0, 1, "SELL"], tick=0.1)
    got = {(r.side, r.level_ticks): r.fills for r in lv.itertuples()}
    assert got == {("buy", 1.0): 1, ("buy", 3.0): 1, ("sell", 2.0): 1, ("sell", 1.0): 1}
    assert len(an.fill_levels([], [], [])) == 0


def test_trade_rate_and_vol_grids():
    ts = T0 + np.arange(5) * NS // 2
    r = an.trade_rate(ts, [0, 10, 20, 15, 25])
    assert math.isnan(r[0]) and r[1] == pytest.approx(20) and math.isnan(r[3]) and r[4] == pytest.approx(20)
    s = _series(1800)
    g = an.realized_vol_grid(s["ts"], s["mid"], bucket_s=300, horizons_s=(1, 5, 30))
    assert list(g.columns) == [1.0, 5.0, 30.0] and len(g) == 6
    assert (g.to_numpy() > 0).all()
    # a random walk: about equal volatility at every horizon
    assert g.mean().max() / g.mean().min() < 1.6
    tod = an.vol_by_time_of_day(_series(3 * 3600, dt_s=10.0)["ts"], _series(3 * 3600, dt_s=10.0)["mid"], 60, 60.0)
    assert list(tod.index) == ["2024-08-08", "2024-08-09"] or list(tod.index) == ["2024-08-08"]
    assert len(tod.columns) >= 3 and tod.columns[0] == "00:00"
    assert an.realized_vol_grid([], []).empty and an.vol_by_time_of_day([], []).empty


def test_downsample_keeps_the_ends():
    df = pd.DataFrame({"a": np.arange(10_001)})
    d = an.downsample(df, 1000)
    assert len(d) <= 1001 and d["a"].iloc[0] == 0 and d["a"].iloc[-1] == 10_000
    assert an.downsample(df.head(5), 1000) is not None and len(an.downsample(df.head(5), 1000)) == 5


# --------------------------------------------------------------------------- figures


def test_depth_chart():
    bids = [[100.0 - 0.1 * i, 1.0] for i in range(10)]
    asks = [[100.1 + 0.1 * i, 2.0] for i in range(10)]
    fig = fg.depth_chart(bids, asks, quotes=(99.5, 100.6))
    assert [t.name for t in fig.data] == ["bids", "asks"]
    b, a = fig.data
    assert list(b.x) == sorted(b.x) and list(b.y)[-1] == pytest.approx(1.0) and list(b.y)[0] == pytest.approx(10.0)
    assert list(a.y) == pytest.approx(list(np.arange(1, 11) * 2.0))
    assert len(fig.layout.shapes) == 3     # mid and our two quotes
    assert fg.is_no_data(fg.depth_chart([], []))


def test_price_chart_traces():
    ts = _series(600)
    fills = _fills(ts, 40)
    fig = fg.price_chart(ts, fills)
    names = [t.name for t in fig.data]
    assert names == ["best bid", "best ask", "mid", "our bid", "our ask", "buy fills", "sell fills"]
    n_buy = int((fills["side"] == "buy").sum())
    assert len(fig.data[5].x) == n_buy and len(fig.data[6].x) == len(fills) - n_buy
    assert fig.data[3].line.shape == "hv"
    # only a mid: one trace; no data: the annotation
    assert len(fg.price_chart(ts[["time", "mid"]]).data) == 1
    assert fg.is_no_data(fg.price_chart(EMPTY)) and fg.is_no_data(fg.price_chart(None))


def test_long_series_are_thinned():
    ts = _series(20_000)
    fig = fg.price_chart(ts, max_points=2000)
    assert all(len(t.x) <= 2001 for t in fig.data)
    assert pd.Timestamp(fig.data[2].x[-1]) == ts["time"].iloc[-1].tz_convert(None)


def test_indicator_latency_and_vol_figures():
    ts = _series(300)
    fig = fg.indicators_chart(ts)
    assert [t.name for t in fig.data] == ["spread", "sigma", "trade_rate"]
    assert {t.yaxis for t in fig.data} == {"y", "y2", "y3"}
    assert fg.is_no_data(fg.indicators_chart(EMPTY))
    lat = fg.latency_chart(ts)
    assert [t.name for t in lat.data] == ["feed_latency", "order_rtt"]
    assert fg.is_no_data(fg.latency_chart(ts[["time", "mid"]]))
    grid = an.realized_vol_grid(ts["ts"], ts["mid"], 60, (1, 5))
    hm = fg.vol_heatmap(grid)
    assert hm.data[0].type == "heatmap" and np.asarray(hm.data[0].z).shape == (5, 2)
    assert list(hm.data[0].x) == ["1", "5"]
    assert fg.is_no_data(fg.vol_heatmap(pd.DataFrame())) and fg.is_no_data(fg.vol_heatmap(None))


def test_performance_figures():
    ts = _series(1200)
    fills = _fills(ts)
    eq = fg.equity_chart(ts)
    assert eq.data[0].name == "pnl" and list(eq.data[0].y) == pytest.approx(list(ts["pnl"]))
    dd = fg.drawdown_chart(ts)
    y = np.asarray(dd.data[0].y, dtype=float)
    assert np.nanmax(y) <= 0 and np.nanmin(y) < 0
    inv = fg.inventory_chart(ts)
    assert inv.data[0].line.shape == "hv" and list(inv.data[0].y) == list(ts["position"])
    rs = fg.rolling_sharpe_chart(an.rolling_sharpe(ts["ts"], ts["equity"], 10.0, 20))
    assert len(rs.data[0].x) == 119 - 20 + 1
    lv = fg.fills_by_level_chart(an.fill_levels(fills["price"], fills["mid"], fills["side"], 0.1))
    assert [t.name for t in lv.data] == ["buy", "sell"]
    assert sum(sum(t.y) for t in lv.data) == len(fills)
    mo = fg.markout_chart(an.markout_curve(fills["ts"], fills["price"], fills["side"], ts["ts"], ts["mid"]))
    assert [t.name for t in mo.data] == ["buy", "sell", "all"] and mo.layout.xaxis.type == "log"
    hist = fg.fill_latency_histogram(fills["latency_ms"])
    assert hist.data[0].type == "histogram" and len(hist.data[0].x) == len(fills)
    for f in (fg.equity_chart(EMPTY), fg.drawdown_chart(EMPTY), fg.inventory_chart(None),
              fg.rolling_sharpe_chart(an.rolling_sharpe([], [])), fg.fills_by_level_chart(an.fill_levels([], [], [])),
              fg.markout_chart(an.markout_curve([], [], [], [], [])), fg.fill_latency_histogram([]),
              fg.fill_latency_histogram([np.nan])):
        assert fg.is_no_data(f), f.layout.title.text


def test_sweep_heatmap_and_comparisons():
    rows = []
    for g in (0.05, 0.1, 0.5):
        for t in (10.0, 30.0):
            for s in (0.0, 0.2):
                rows.append(dict(gamma=g, time_horizon=t, min_spread=s, sharpe_ratio=g * 10 + t + s, status="ok"))
    rows.append(dict(gamma=0.05, time_horizon=10.0, min_spread=1.0, sharpe_ratio=1e9, status="error"))
    df = pd.DataFrame(rows)
    fig = fg.sweep_heatmap(df, "sharpe_ratio", "gamma", "time_horizon")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (2, 3) and list(fig.data[0].x) == ["0.05", "0.1", "0.5"]
    assert z[0, 0] == pytest.approx(0.5 + 10 + 0.1)     # mean over min_spread; the error row left out
    assert fg.sweep_heatmap(df, "sharpe_ratio", "gamma", "time_horizon", agg="max").data[0].z[1][2] == \
        pytest.approx(5 + 30 + 0.2)
    assert fg.is_no_data(fg.sweep_heatmap(EMPTY, "sharpe_ratio", "gamma", "time_horizon"))
    assert fg.is_no_data(fg.sweep_heatmap(df, "nope", "gamma", "time_horizon"))
    runs = {"a": _series(300, seed=1), "b": _series(400, seed=2)}
    cmp_ = fg.run_comparison_chart(runs)
    assert [t.name for t in cmp_.data] == ["a", "a", "b", "b"]
    assert np.nanmax(np.asarray(cmp_.data[1].y, float)) <= 0
    assert fg.is_no_data(fg.run_comparison_chart({})) and fg.is_no_data(fg.run_comparison_chart({"x": EMPTY}))
    table = pd.DataFrame({"total_pnl": [1.0, -2.0], "sharpe_ratio": [3.0, 4.0]}, index=["a", "b"])
    bars = fg.metrics_bar_chart(table, ["total_pnl", "sharpe_ratio", "missing"])
    assert len(bars.data) == 4 and [t.name for t in bars.data if t.showlegend] == ["a", "b"]
    assert fg.is_no_data(fg.metrics_bar_chart(EMPTY, ["total_pnl"]))
