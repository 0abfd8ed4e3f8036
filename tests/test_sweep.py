"""Parameter sweeps (hftmm.backtesting.sweep): grid and random search, grouped
multi-strategy passes equal to separate backtests, resume, failing combinations,
analysis, heatmaps, walk-forward, executors (serial, process pool, Dask) and the
``hftmm sweep`` command. Short synthetic spans keep it fast."""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os

import numpy as np
import pandas as pd
import pytest

from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.backtesting import engine as engine_mod
from hftmm.backtesting import sweep
from hftmm.backtesting.sweep import METRICS, SerialExecutor, combo_key

SECONDS = 300.0   # of each synthetic day
BASE = BacktestConfig(sample_interval=1.0)
GRID = {"gamma": [0.05, 0.5], "time_horizon": [10.0, 120.0], "min_spread": [0.0, 0.5]}


@pytest.fixture(scope="module")
def engine():
    return BacktestEngine(synthetic_day_seconds=SECONDS)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_grid_sweep_one_row_per_combination(engine):
    df = engine.run_parameter_sweep(BASE, GRID, executor=SerialExecutor(), progress=False)
    assert len(df) == 8 and (df["status"] == "ok").all()
    for c in list(GRID) + list(METRICS) + ["status", "error", "elapsed_s", "combo_key", "group_size"]:
        assert c in df.columns, c
    assert set(map(tuple, df[list(GRID)].to_numpy().tolist())) == {
        (g, t, m) for g in GRID["gamma"] for t in GRID["time_horizon"] for m in GRID["min_spread"]}
    assert (df["group_size"] == 8).all()          # one pass for all of them
    assert df["total_trades"].max() > 0
    assert df["total_pnl"].nunique() > 1           # the parameters matter


MIXED = [
    dict(gamma=0.05), dict(gamma=0.5, time_horizon=5.0), dict(model="glft", min_spread=0.3),
    dict(queue_model="power", order_size=0.002, seed=9), dict(fill_model="intensity", estimate_intensity=False,
                                                              fill_A=20.0, fill_k=0.5, seed=4),
    dict(post_only=False, taker_fee=0.0005, maker_fee=-0.0001, quote_refresh_interval=0.05),
    dict(feed_latency=0.002), dict(feed_latency=0.002, gamma=0.2, order_latency=0.02),   # a second group
    dict(order_latency=0.0, response_latency=0.0, cancel_latency=0.02, ewma_half_life=10.0),
]


def test_sweep_equals_one_by_one(engine):
    """Each combination's row of a grouped (multi-strategy) sweep is exactly the
    result of its own run_backtest."""
    df = engine.run_parameter_sweep(BASE, MIXED, executor=SerialExecutor(), progress=False)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert sorted(df["group_size"].unique()) == [2, 7]        # two feed latencies: two passes
    for combo in MIXED:
        row = df[df["combo_key"] == combo_key(combo)].iloc[0]
        alone = engine.run_backtest(BASE.replace(**combo)).performance
        for m in METRICS:
            assert same(getattr(alone, m), row[m]), (combo, m, getattr(alone, m), row[m])


def test_group_results_identical_to_separate_runs(engine):
    """run_backtest_group gives byte-identical trades and equity curves."""
    cfgs = [BASE.replace(**c) for c in MIXED if "feed_latency" not in c]
    group = engine.run_backtest_group(cfgs)
    for cfg, g in zip(cfgs, group):
        alone = engine.run_backtest(cfg)
        pd.testing.assert_frame_equal(alone.trades, g.trades, check_exact=True)
        pd.testing.assert_frame_equal(alone.timeseries, g.timeseries, check_exact=True)
        assert alone.counters == g.counters and alone.events == g.events
        assert all(same(getattr(alone.performance, m), getattr(g.performance, m)) for m in METRICS)
    with pytest.raises(ValueError, match="share"):
        engine.run_backtest_group([BASE, BASE.replace(feed_latency=0.001)])


def test_random_search_is_seeded(engine):
    space = {"gamma": {"low": 0.01, "high": 1.0, "log": True}, "time_horizon": (5.0, 60.0),
             "model": ["as", "glft"], "requote_threshold": {"low": 0, "high": 3, "int": True}}
    a = sweep.random_combinations(space, 6, seed=3)
    assert a == sweep.random_combinations(space, 6, seed=3)
    assert a != sweep.random_combinations(space, 6, seed=4)
    for c in a:
        assert 0.01 <= c["gamma"] <= 1.0 and 5.0 <= c["time_horizon"] <= 60.0
        assert c["model"] in ("as", "glft") and c["requote_threshold"] in (0, 1, 2, 3)
    df = engine.run_parameter_sweep(BASE, space, executor=SerialExecutor(), method="random", n_samples=6, seed=3,
                                    progress=False)
    assert len(df) == len(a) and (df["status"] == "ok").all()
    assert set(df["combo_key"]) == {combo_key(c) for c in a}


def test_resume_skips_done_combinations(engine, tmp_path):
    path = str(tmp_path / "results.parquet")
    first = {"gamma": [0.05, 0.5], "time_horizon": [10.0]}
    ran: list[dict] = []
    df1 = sweep.run_sweep(engine, BASE, first, executor=SerialExecutor(), results_path=path, progress=False,
                          on_rows=ran.extend)
    assert len(df1) == 2 and len(ran) == 2 and os.path.exists(path)
    # an "interrupted" bigger sweep: the first two are in the file
    ran.clear()
    full = {"gamma": [0.05, 0.5], "time_horizon": [10.0, 120.0]}
    df2 = sweep.run_sweep(engine, BASE, full, executor=SerialExecutor(), results_path=path, progress=False,
                          on_rows=ran.extend)
    assert len(ran) == 2 and {r["time_horizon"] for r in ran} == {120.0}
    assert len(df2) == 4 and len(pd.read_parquet(path)) == 4
    ran.clear()
    df3 = sweep.run_sweep(engine, BASE, full, executor=SerialExecutor(), results_path=path, progress=False,
                          on_rows=ran.extend)
    assert ran == [] and len(df3) == 4
    # the resumed rows are the same as a fresh run's
    fresh = sweep.run_sweep(engine, BASE, full, executor=SerialExecutor(), progress=False)
    a = df3.set_index("combo_key").sort_index()
    b = fresh.set_index("combo_key").sort_index()
    assert np.array_equal(a["total_pnl"].to_numpy(float), b["total_pnl"].to_numpy(float), equal_nan=True)
    with pytest.raises(ValueError, match="another base config"):
        sweep.run_sweep(engine, BASE.replace(maker_fee=-0.0001), full, executor=SerialExecutor(), results_path=path,
                        progress=False)


def test_failing_combination_is_recorded(engine, tmp_path, monkeypatch):
    grid = {"gamma": [0.1, -1.0, 0.3], "bogus_field": [1]}
    df = sweep.run_sweep(engine, BASE, {"gamma": [0.1, -1.0, 0.3]}, executor=SerialExecutor(), progress=False,
                         results_path=str(tmp_path / "r.parquet"))
    assert sorted(df["status"]) == ["error", "ok", "ok"]
    bad = df[df["status"] == "error"].iloc[0]
    assert bad["gamma"] == -1.0 and "gamma" in bad["error"] and math.isnan(bad["total_pnl"])
    df = sweep.run_sweep(engine, BASE, grid, executor=SerialExecutor(), progress=False)
    assert (df["status"] == "error").all()       # unknown field: every combination fails, recorded
    # an exception inside the run: only that combination fails (the pass is retried one by one)
    real = engine_mod.compute_metrics

    def flaky(trades, ts, counters, capital, *a, **k):
        if counters["orders_submitted"] == flaky.bad:
            raise RuntimeError("boom")
        return real(trades, ts, counters, capital, *a, **k)

    probe = engine.run_backtest(BASE.replace(gamma=0.3)).counters["orders_submitted"]
    flaky.bad = probe
    monkeypatch.setattr(engine_mod, "compute_metrics", flaky)
    df = sweep.run_sweep(engine, BASE, {"gamma": [0.1, 0.3]}, executor=SerialExecutor(), progress=False)
    st = dict(zip(df["gamma"], df["status"]))
    assert st == {0.1: "ok", 0.3: "error"}
    assert "boom" in df[df["gamma"] == 0.3]["error"].iloc[0]


def test_analysis_and_heatmap(engine, tmp_path):
    df = engine.run_parameter_sweep(BASE, GRID, executor=SerialExecutor(), progress=False)
    df = pd.concat([df, sweep._frame([sweep._error_row({"gamma": 9.0}, "x", "ValueError: no")], list(GRID))],
                   ignore_index=True)
    a = engine.analyze_results(df)
    assert set(a["best_result"]) == {"by_sharpe", "by_pnl", "by_calmar", "by_drawdown"}
    ok = df[df["status"] == "ok"]
    assert a["best_result"]["by_pnl"]["total_pnl"] == ok["total_pnl"].max()
    assert a["best_result"]["by_drawdown"]["max_drawdown"] == ok["max_drawdown"].min()
    assert a["best_result"]["by_sharpe"]["sharpe_ratio"] == ok["sharpe_ratio"].max()
    assert a["counts"] == {"total": 9, "ok": 8, "error": 1}
    r = a["ranking"]["total_pnl"]
    assert list(r["total_pnl"]) == sorted(ok["total_pnl"], reverse=True)[:len(r)]
    s = a["sensitivity"]["total_pnl"]
    assert set(s.index) == set(GRID) and s["spearman"].between(-1, 1).all()
    assert list(a["by_value"]["total_pnl"]["gamma"].index) == GRID["gamma"]
    png = sweep.heatmap(df, "total_pnl", "gamma", "time_horizon", str(tmp_path / "h.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_walk_forward(engine, tmp_path):
    periods = [("2024-08-08", "2024-08-08"), ("2024-08-09", "2024-08-09"), ("2024-08-10", "2024-08-10")]
    wf = sweep.walk_forward(engine, BASE, {"gamma": [0.05, 0.5], "min_spread": [0.0, 0.5]}, periods,
                            metric="total_pnl", executor=SerialExecutor(), results_path=str(tmp_path / "wf.parquet"))
    assert len(list(tmp_path.glob("wf_*.parquet"))) == 3
    assert len(wf) == 2
    assert list(wf["train_start"]) == ["2024-08-08", "2024-08-09"]
    assert list(wf["test_start"]) == ["2024-08-09", "2024-08-10"]
    for c in ("gamma", "min_spread", "train_metric", "test_metric", "best_test_metric", "test_rank"):
        assert c in wf.columns
    assert (wf["test_metric"] <= wf["best_test_metric"]).all() and wf["test_rank"].between(1, 4).all()


def test_process_pool_executor_same_rows(engine):
    serial = engine.run_parameter_sweep(BASE, GRID, executor=SerialExecutor(), progress=False)
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        pooled = engine.run_parameter_sweep(BASE, GRID, executor=ex, progress=False, group_size=3)
    assert sorted(pooled["group_size"].unique()) == [2, 3]
    a = serial.set_index("combo_key").sort_index()
    b = pooled.set_index("combo_key").sort_index()
    for m in METRICS:
        assert np.array_equal(a[m].to_numpy(float), b[m].to_numpy(float), equal_nan=True), m


def test_dask_local_cluster(engine, tmp_path):
    distributed = pytest.importorskip("distributed")
    from hftmm import cli_sweep

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                                  processes=True) as cluster, distributed.Client(cluster) as client:
        df = engine.run_parameter_sweep(BASE, GRID, executor=client.get_executor(), progress=False, group_size=4)
        # the command line on the same scheduler
        grid = tmp_path / "grid.toml"
        grid.write_text('[grid]\ngamma = [0.05, 0.5]\nmin_spread = [0.0, 0.5]\n')
        parser = argparse.ArgumentParser()
        cli_sweep.add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["sweep", "--grid", str(grid), "--out", str(tmp_path / "o"), "--no-progress",
                                  "--scheduler", cluster.scheduler_address, "--synthetic-seconds", "120"])
        assert args.func(args) == 0
        res = pd.read_parquet(tmp_path / "o" / "results.parquet")
        assert len(res) == 4 and (res["status"] == "ok").all() and (res["group_size"] == 2).all()
    serial = engine.run_parameter_sweep(BASE, GRID, executor=SerialExecutor(), progress=False)
    assert (df["status"] == "ok").all() and len(df) == 8
    a = df.set_index("combo_key").sort_index()
    b = serial.set_index("combo_key").sort_index()
    assert np.array_equal(a["total_pnl"].to_numpy(float), b["total_pnl"].to_numpy(float), equal_nan=True)


def test_cli_sweep(tmp_path, capsys):
    from hftmm import cli_sweep

    grid = tmp_path / "grid.toml"
    grid.write_text('[base]\nsample_interval = 1.0\n\n[grid]\ngamma = [0.05, 0.5]\ntime_horizon = [10.0, 120.0]\n'
                    'min_spread = [0.0, 0.5]\n')
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_sweep.add_parser(sub)
    out = tmp_path / "out"
    argv = ["sweep", "--grid", str(grid), "--out", str(out), "--workers", "1", "--no-progress",
            "--synthetic-seconds", "120"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    files = set(os.listdir(out))
    assert {"results.parquet", "ranking_total_pnl.csv", "sensitivity_total_pnl.csv", "best.json"} <= files
    assert any(f.startswith("heatmap_total_pnl_gamma_time_horizon") for f in files)
    assert "8 combinations: 8 ok" in capsys.readouterr().out
    args = parser.parse_args(argv)
    from hftmm.config import ConfigError

    with pytest.raises(ConfigError, match="pass --resume"):   # exists: needs --resume
        args.func(args)
    args = parser.parse_args(argv + ["--resume"])
    assert args.func(args) == 0
    assert len(pd.read_parquet(out / "results.parquet")) == 8
    rnd = tmp_path / "rnd.toml"
    rnd.write_text('[random]\nn = 4\nseed = 2\ngamma = {low = 0.01, high = 1.0, log = true}\n'
                   'model = ["as", "glft"]\n')
    args = parser.parse_args(["sweep", "--grid", str(rnd), "--out", str(tmp_path / "o2"), "--workers", "1",
                              "--no-progress", "--synthetic-seconds", "120"])
    assert args.func(args) == 0
    assert len(pd.read_parquet(tmp_path / "o2" / "results.parquet")) == 4
