"""BacktestEngine end to end on the synthetic market: config validation, determinism,
chunking independence, the accounting identity, metrics consistency, outputs, CLI."""
import json
import math

import numpy as np
import pytest

from hftcore.synth import SyntheticMarket
from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.backtesting.engine import EventSource
from hftmm.cli import main
from hftmm.config import ConfigError


def source(seconds=900.0, seed=5, chunk_s=60.0):
    m = SyntheticMarket(seed=seed, start_ns=1_723_075_200_000_000_000)

    def chunks():
        yield m.initial_snapshot()
        done = 0.0
        while done < seconds:
            step = min(chunk_s, seconds - done)
            yield m.generate(step)
            done += step

    return EventSource(chunks(), "0.10", "0.001", (m.now_ns, m.now_ns + int(seconds * 1e9)), "synthetic test")





@pytest.mark.parametrize("field,value", [
    ("gamma", 0.0), ("time_horizon", -1.0), ("model", "hb"), ("fair_value", "last"),
    ("queue_model", "fifo"), ("fill_model", "magic"), ("order_size", 0.0), ("maker_fee", 0.5),
    ("start_date", "2024-13-01"), ("requote_threshold", -1), ("seed", -3), ("tick_size", "abc"),
    ("feed_latency", -0.1), ("k", float("nan")), ("min_feed_latency", -0.001),
])
def test_invalid_config_refused_with_field(field, value):
    with pytest.raises(ConfigError) as exc:
        BacktestConfig(**{field: value})
    assert exc.value.field == f"BacktestConfig.{field}"


def test_end_before_start_and_unknown_field():
    with pytest.raises(ConfigError, match="end_date"):
        BacktestConfig(start_date="2024-08-09", end_date="2024-08-08")
    with pytest.raises(ConfigError, match="gama"):
        BacktestConfig.from_dict({"gama": 1})


def test_deterministic_and_chunking_independent():
    cfg = BacktestConfig(queue_model="power", seed=3)
    eng = BacktestEngine()
    a = eng.run_backtest(cfg, source=source(chunk_s=60.0))
    b = eng.run_backtest(cfg, source=source(chunk_s=60.0))
    c = eng.run_backtest(cfg, source=source(chunk_s=7.0))
    assert len(a.trades) > 10
    for other in (b, c):
        assert a.trades.equals(other.trades)
        assert a.timeseries.equals(other.timeseries)
        assert a.counters == other.counters


def test_accounting_identity_and_metrics_consistency():
    r = BacktestEngine().run_backtest(BacktestConfig(maker_fee=-0.0001), source=source())
    ts, tr = r.timeseries, r.trades
    ok = np.isfinite(ts["mid"])
    # equity = cash + inventory x mid at every sample
    np.testing.assert_allclose(ts["equity"][ok], ts["cash"][ok] + ts["position_qty"][ok] * ts["mid"][ok],
                               rtol=0, atol=1e-6)
    # the samples' cash and position are the fills' cumulative sums up to then
    for _, s in ts.iloc[:: max(len(ts) // 50, 1)].iterrows():
        done = tr[tr["exch_ts"] <= s["ts"]]
        signed = np.where(done["side"] == 0, done["qty"], -done["qty"])
        assert s["position_qty"] == pytest.approx(signed.sum(), abs=1e-12)
        cash = (np.where(done["side"] == 0, -1.0, 1.0) * done["price"] * done["qty"]).sum() - done["fee"].sum()
        assert s["cash"] - r.config.initial_capital == pytest.approx(cash, abs=1e-6)
    p = r.performance
    assert p.total_pnl == pytest.approx(p.realized_pnl + p.unrealized_pnl, abs=1e-6)
    assert p.total_fees < 0                       # a rebate
    assert p.gross_pnl == pytest.approx(p.total_pnl + p.total_fees)
    assert p.total_trades == len(tr) and 0 <= p.fill_rate <= 100 and 0 < p.quote_hit_rate <= 100
    assert p.avg_fill_latency_ms >= r.config.order_latency * 1e3
    assert abs(p.final_position) <= r.config.max_position + r.config.order_size + 1e-12


def test_glft_and_latency_change_results():
    base = BacktestEngine().run_backtest(BacktestConfig(), source=source())
    glft = BacktestEngine().run_backtest(BacktestConfig(model="glft", estimate_intensity=False), source=source())
    slow = BacktestEngine().run_backtest(BacktestConfig(order_latency=0.5, cancel_latency=0.5), source=source())
    assert not base.trades.equals(glft.trades) and not base.trades.equals(slow.trades)
    assert slow.performance.avg_fill_latency_ms > base.performance.avg_fill_latency_ms


def test_save_plot_summary(tmp_path):
    r = BacktestEngine().run_backtest(BacktestConfig(), source=source(seconds=300))
    assert r.save(str(tmp_path / "run")) == str(tmp_path / "run")
    for f in ("config.json", "metrics.json", "trades.parquet", "timeseries.parquet"):
        assert (tmp_path / "run" / f).stat().st_size > 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "sharpe_ratio" in m and m["events"] == r.events
    png = r.plot(str(tmp_path / "chart.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    s = r.summary()
    assert s.startswith("Performance Summary:") and "├── Total PnL: $" in s and s.splitlines()[-1].startswith("└── Fill Rate:")


def test_cli_main_job_json(capsys, tmp_path):
    rc = main(["backtest", "--json", "--no-progress", "--plot", str(tmp_path / "c.png")])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert m["events"] > 10_000_000 and math.isfinite(m["total_pnl"])
    assert (tmp_path / "c.png").exists()
    assert main(["backtest", "--gamma", "0"]) == 2


def test_unknown_exchange_time_is_receive_time():
    # a spot REST snapshot has no E: converted stores carry exch_ts = 0 on it;
    # the run must not sample from 1970 (and must equal a run where it is known)
    m = SyntheticMarket(seed=5, start_ns=1_723_075_200_000_000_000)
    snap = m.initial_snapshot()
    ev = m.generate(120.0)
    snap0 = snap.copy()
    snap0["exch_ts"] = 0
    snap1 = snap.copy()
    snap1["exch_ts"] = snap1["local_ts"]
    out = []
    for s in (snap0, snap1):
        src = EventSource(iter([s, ev]), "0.10", "0.001", (m.now_ns - 120 * 10**9, m.now_ns), "t")
        out.append(BacktestEngine().run_backtest(BacktestConfig(), source=src))
    assert len(out[0].timeseries) < 200 and out[0].timeseries["ts"].iloc[0] > 10**18
    assert out[0].trades.equals(out[1].trades) and out[0].timeseries.equals(out[1].timeseries)


def test_receive_clock_behind_the_exchange_is_corrected(tmp_path):
    """A recording whose receive clock ran 2 s behind the exchange's (local_ts <
    exch_ts) would let the strategy see every event 2 s before it happens. The
    engine shifts local_ts so the fastest message takes min_feed_latency: with the
    original smallest latency, the run equals the run on the true clock."""
    from hftmm.data.store import EventWriter, min_feed_latency

    t0 = 1_723_075_200_000_000_000 + 3600 * 10**9
    m = SyntheticMarket(seed=5, start_ns=t0)
    ev = np.concatenate([m.initial_snapshot(), m.generate(300.0)])
    has = ev["exch_ts"] > 0
    lowest = int((ev["local_ts"] - ev["exch_ts"])[has].min())
    assert 0 < lowest < 10**8
    behind = ev.copy()
    behind["local_ts"] -= 2 * 10**9
    for name, data in (("true", ev), ("behind", behind)):
        with EventWriter(str(tmp_path / name), "BTCUSDT", "0.10", "0.001", "usdm") as w:
            w.write(data)
    assert min_feed_latency(str(tmp_path / "behind"), "BTCUSDT") == lowest - 2 * 10**9
    cfg = BacktestConfig(start_date="2024-08-08", end_date="2024-08-08", min_feed_latency=lowest / 1e9)
    eng = BacktestEngine()
    a = eng.run_backtest(cfg.replace(data_path=str(tmp_path / "true")))
    b = eng.run_backtest(cfg.replace(data_path=str(tmp_path / "behind")))
    assert a.counters["clock_shift_ns"] == 0 and b.counters["clock_shift_ns"] == 2 * 10**9
    assert len(a.trades) > 10
    assert a.trades.equals(b.trades) and a.timeseries.equals(b.timeseries)
    assert {k: v for k, v in a.counters.items() if k != "clock_shift_ns"} == \
           {k: v for k, v in b.counters.items() if k != "clock_shift_ns"}
    assert "Receive Clock Corrected: local_ts +2,000.000 ms" in b.summary()
    assert "Receive Clock" not in a.summary()
    # uncorrected, the strategy trades on the future
    c = eng.run_backtest(cfg.replace(data_path=str(tmp_path / "behind"), clock_correction=False))
    assert c.counters["clock_shift_ns"] == 0 and not c.trades.equals(a.trades)
