"""Your own strategy in every driver: the worked examples under examples/ -- an
imbalance-leaning AS market maker in Python (hftmm.strategy.Strategy) and in
Cython (a hftcore.strategy.MarketMaker subclass built against the installed
package) -- run in the backtester and in paper trading (offline on a real
capture, frame by frame, where paper must equal the backtest; and live on the
simulator), with the configured limits holding."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import hftcore
from hftcore.strategy import MarketMaker, PyStrategy

from hftmm.backtesting import BacktestConfig, BacktestEngine
from hftmm.config import ExchangeModelConfig, RiskConfig, TradingConfig
from hftmm.live.engine import LiveEngine, paper_kernel
from hftmm.strategy import core
from hftmm.strategy.base import load_strategy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = os.path.join(ROOT, "examples")

TRADING = TradingConfig(symbol="BTCUSDT", gamma=0.01, k=50.0, estimate_intensity=False, order_size=0.001,
                        quote_refresh_interval=0.05)
RISK = RiskConfig(max_position=0.003, max_orders_per_second=20.0, max_daily_loss=1e6, max_drawdown=1.0,
                  latency_threshold_ms=2000.0)
EXCHANGE = ExchangeModelConfig(clock_correction=False)


@pytest.fixture(scope="module")
def python_cls():
    return load_strategy(os.path.join(EXAMPLES, "imbalance_mm.py") + ":ImbalanceMM")


@pytest.fixture(scope="module")
def cython_cls(tmp_path_factory):
    pytest.importorskip("Cython")
    d = tmp_path_factory.mktemp("cy")
    for f in ("imbalance_mm.pyx", "setup.py"):
        shutil.copy(os.path.join(EXAMPLES, "cython", f), d / f)
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(hftcore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=d, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    so = [f for f in os.listdir(d) if f.startswith("imbalance_mm") and f.endswith(sysconfig.get_config_var("EXT_SUFFIX"))]
    spec = importlib.util.spec_from_file_location("imbalance_mm", d / so[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ImbalanceMM


@pytest.fixture(scope="module")
def capture(capture_store):
    path, meta, _, frames = capture_store
    return path, meta, frames


def _config(path):
    return BacktestConfig.compose(TRADING, EXCHANGE, RISK, data_path=path, start_date="2024-08-08",
                                  end_date="2024-08-08", feed_latency=None)


def _paper_offline(spec, meta, frames):
    k = paper_kernel(TRADING, RISK, EXCHANGE, meta["tick_size"], meta["lot_size"], "spot", spec)
    fills = []
    for fr in frames:
        k.run(fr)
        fills.append(k.take_fills(0))
    return k, np.concatenate(fills)


def _check_limits(fills_position_lots, lot):
    assert np.abs(fills_position_lots).max() * float(lot) <= RISK.max_position + 1e-12


@pytest.mark.parametrize("kind", ["python", "cython"])
def test_user_strategy_backtest_equals_its_paper_session(kind, python_cls, cython_cls, capture):
    cls = python_cls if kind == "python" else cython_cls
    path, meta, frames = capture
    res = BacktestEngine().run_backtest(_config(path), strategy=cls)
    assert len(res.trades) > 3 and res.counters["sent"] > 20, res.counters
    k, pf = _paper_offline(cls, meta, frames)
    strat = k.agent(0)[0]
    assert isinstance(strat, PyStrategy if kind == "python" else cls)
    np.testing.assert_array_equal(res.trades["order_id"].to_numpy(), pf["order_id"])
    np.testing.assert_array_equal(res.trades["px_ticks"].to_numpy(), pf["px"])
    np.testing.assert_array_equal(res.trades["exch_ts"].to_numpy(), pf["exch_ts"])
    _check_limits(pf["position"], meta["lot_size"])
    # the imbalance moved the fair value: the quotes differ from the built-in's
    builtin = BacktestEngine().run_backtest(_config(path))
    assert not np.array_equal(builtin.trades["px_ticks"].to_numpy()[:20], res.trades["px_ticks"].to_numpy()[:20]) \
        or len(builtin.trades) != len(res.trades)


def test_cython_subclass_with_no_lean_is_the_builtin_market_maker(cython_cls, capture):
    """alpha = 0: the fair value is the mid, so the subclass is the built-in maker
    exactly -- the override is the only difference."""
    path, meta, _ = capture
    cfg = _config(path)
    s = cython_cls(core.maker_params(cfg.strategy, cfg.risk, float(meta["tick_size"]), float(meta["lot_size"])))
    s.alpha = 0.0
    assert isinstance(s, MarketMaker)
    mine = BacktestEngine().run_backtest(cfg, strategy=s)
    builtin = BacktestEngine().run_backtest(cfg)
    assert len(mine.trades) > 3
    for col in ("order_id", "px_ticks", "exch_ts", "qty"):
        np.testing.assert_array_equal(mine.trades[col].to_numpy(), builtin.trades[col].to_numpy(), err_msg=col)
    assert mine.counters["sent"] == builtin.counters["sent"]
    assert s.imbalance != 0.0                  # it did compute its imbalance


@pytest.mark.parametrize("kind", ["python", "cython"])
def test_user_strategy_in_a_live_paper_session(kind, python_cls, cython_cls, tmp_path):
    from hftmm.simulator import ExchangeSimulator
    from hftmm.simulator.sources import SyntheticSource
    from hftmm.synthetic import SyntheticConfig

    cls = python_cls if kind == "python" else cython_cls
    src = SyntheticSource(SyntheticConfig(seed=4, book_levels=400), speed=1.0)
    with ExchangeSimulator(market="spot", source=src) as sim:
        eng = LiveEngine(TRADING, RISK, mode="paper", exchange=EXCHANGE, strategy=cls, rest_url=sim.rest_url,
                         ws_url=sim.ws_url, state_db=str(tmp_path / "s.db"), record_decisions=True)
        summary = eng.run(duration_s=4.0)
    assert summary["orders_sent"] > 3 and summary["open_orders"] == 0, summary
    assert summary["end_reason"].startswith("duration")
    f = eng.paper_fills
    if len(f):
        _check_limits(f["position"], eng.lot_s)
    from hftmm.live.state import StateReader

    sess = StateReader(str(tmp_path / "s.db")).latest_session()
    assert "ImbalanceMM" in sess["config"]["strategy"]


def test_bad_strategy_specs_are_refused_with_their_name(tmp_path):
    from hftmm.config import ConfigError

    for spec, msg in (("nocolon", "MODULE:CLASS"), ("no_such_module_xyz:X", "cannot import"),
                      (os.path.join(EXAMPLES, "imbalance_mm.py") + ":Nope", "no class Nope"),
                      ("json:JSONDecoder", "neither")):
        with pytest.raises(ConfigError, match=msg):
            load_strategy(spec)
    r = subprocess.run([sys.executable, "-m", "hftmm.cli", "backtest", "--strategy", "nope:X", "--no-progress"],
                       capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 2 and "strategy" in r.stderr and "Traceback" not in r.stderr
