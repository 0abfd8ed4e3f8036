"""The dashboard's pages under Streamlit's AppTest (no browser), on fixture
data: a state database filled the way the engine fills it, real saved
backtests (a few minutes of the synthetic market), a small sweep and a data
folder with a real capture and its converted store file. Also the readers,
the background jobs and the ``hftmm dashboard`` command line."""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import time

import pandas as pd
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
import dashboard_fixtures as fx  # noqa: E402

from hftmm.dashboard import jobs  # noqa: E402
from hftmm.dashboard import sources as src  # noqa: E402
from hftmm.live.schema import SCHEMA  # noqa: E402

import hftmm.dashboard  # noqa: E402

DASH = os.path.dirname(os.path.abspath(hftmm.dashboard.__file__))
VIEWS = os.path.join(DASH, "views")
TIMEOUT = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The files the pages read (created once for the module)."""
    root = tmp_path_factory.mktemp("dash")
    db = str(root / "state.db")
    eng = fx.FakeEngine(db, history_s=600)
    results = root / "runs"
    fx.saved_backtest(str(results / "backtests" / "as-g0.1"), seconds=600)
    fx.saved_backtest(str(results / "backtests" / "as-g0.5"), seconds=600, gamma=0.5)
    fx.small_sweep(str(results / "sweeps" / "grid"))
    data = fx.data_folder(str(root / "data"))
    yield dict(root=root, db=db, results=str(results), data=data, engine=eng)
    eng.close()


@pytest.fixture
def env(world, monkeypatch):
    monkeypatch.setenv("HFTMM_STATE_DB", world["db"])
    monkeypatch.setenv("HFTMM_RESULTS", world["results"])
    monkeypatch.setenv("HFTMM_DATA", world["data"])
    src.clear_caches()
    yield world
    src.clear_caches()


def page(name: str) -> AppTest:
    return AppTest.from_file(os.path.join(VIEWS, name), default_timeout=TIMEOUT)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts(at)]


def metric_labels(at: AppTest) -> list[str]:
    return [m.label for m in at.metric]


# --------------------------------------------------------------------------- pages


def test_app_navigation_runs_the_live_page(env):
    at = ok(AppTest.from_file(os.path.join(DASH, "app.py"), default_timeout=TIMEOUT).run())
    assert at.title[0].value == "Live"
    assert "Order book depth" in titles(at)


def test_live_page(env):
    at = ok(page("live.py").run())
    assert {"Order book depth", "Mid, our quotes and fills", "Spread, volatility and trade activity",
            "Feed and order latency"} <= set(titles(at))
    assert any(t.startswith("Realised volatility") for t in titles(at))
    labels = metric_labels(at)
    for name in ("Mid", "Position (base)", "PnL (quote)", "Gaps", "Resyncs", "Feed latency ms", "Order RTT ms",
                 "Messages lost", "Update ids lost", "Feeds up"):
        assert name in labels
    mid = next(m for m in at.metric if m.label == "Mid").value
    assert abs(float(mid.replace(",", "")) - env["engine"].mid) < 1e-6
    assert any("risk ok" in m.value for m in at.markdown)
    # the other heatmap mode
    at.radio(key="live-vol-mode").set_value("time of day × day").run()
    ok(at)
    assert "Realised volatility by time of day (1 min returns)" in titles(at)


def test_kill_button_writes_the_command_and_the_engine_takes_it(env):
    at = ok(page("live.py").run())
    at.button(key="kill").click().run()
    ok(at)
    con = sqlite3.connect(env["db"])
    rows = con.execute("SELECT command, args_json, session_id, consumed_ns FROM commands ORDER BY id").fetchall()
    assert rows[-1][:3] == ("kill", json.dumps({"reason": "dashboard", "flatten": False}), env["engine"].sid)
    assert rows[-1][3] is None
    assert any("kill command #" in c.value for c in at.caption)
    env["engine"].step()                     # the engine consumes it at its next publish
    src.clear_caches()
    at.run()
    ok(at)
    assert any("KILLED" in m.value for m in at.markdown)
    cmds = at.dataframe[0].value
    assert cmds.iloc[0]["command"] == "kill" and cmds.iloc[0]["state"] == "consumed"
    at.button(key="resume").click().run()
    env["engine"].step()
    assert con.execute("SELECT command FROM commands ORDER BY id DESC LIMIT 1").fetchone()[0] == "resume"
    con.close()


def test_an_ended_session_is_not_shown_as_running(tmp_path, monkeypatch):
    """Once its process ends the session, the page says so (not "risk ok") and offers no
    kill button (no process would act on it)."""
    db = str(tmp_path / "ended.db")
    eng = fx.FakeEngine(db, history_s=30)
    monkeypatch.setenv("HFTMM_STATE_DB", db)
    src.clear_caches()
    at = ok(page("live.py").run())
    assert any("risk ok" in m.value for m in at.markdown) and "kill" in [b.key for b in at.button]
    eng.store.end_session("stopped")
    eng.close()
    src.clear_caches()
    at = ok(page("live.py").run())
    assert not any("risk ok" in m.value for m in at.markdown)
    assert any("session ended" in m.value for m in at.markdown)
    assert "kill" not in [b.key for b in at.button]
    assert any("· ended" in o for o in at.selectbox(key="live-session").options)


def test_live_page_without_a_database_or_a_session(tmp_path, monkeypatch):
    monkeypatch.setenv("HFTMM_STATE_DB", str(tmp_path / "missing.db"))
    monkeypatch.setenv("HFTMM_RESULTS", str(tmp_path / "runs"))
    at = ok(page("live.py").run())
    assert "no state database" in at.info[0].value and not charts(at)
    con = sqlite3.connect(tmp_path / "empty.db")
    con.executescript(SCHEMA)
    con.close()
    monkeypatch.setenv("HFTMM_STATE_DB", str(tmp_path / "empty.db"))
    at = ok(page("live.py").run())
    assert "No session" in at.info[0].value
    at = ok(page("performance.py").run())
    assert "Nothing to show yet" in at.info[0].value


PERF_TITLES = {"Equity (PnL)", "Drawdown", "Rolling Sharpe (annualised)", "Inventory", "Mid, our quotes and fills",
               "Fills by side and level", "Mark-outs", "Fill latency"}


def test_performance_page_backtest_and_live(env):
    at = ok(page("performance.py").run())
    at.radio(key="perf-source").set_value("Saved backtest").run()
    ok(at)
    assert PERF_TITLES <= set(titles(at))
    names = at.selectbox(key="perf-backtest").options
    assert set(names) == {"backtests/as-g0.1", "backtests/as-g0.5"}
    assert float(next(m for m in at.metric if m.label == "Fills").value.replace(",", "")) > 10
    at.radio(key="perf-source").set_value("Live session").run()
    ok(at)
    assert PERF_TITLES <= set(titles(at))
    # a live session has a rolling Sharpe with the automatic interval (600 s: 2 s returns)
    rs = next(c for c in charts(at) if "Rolling Sharpe" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    assert json.loads(rs.proto.spec)["data"], "rolling Sharpe has no trace"


def test_backtesting_page_runs_a_backtest_in_the_background(env):
    at = ok(page("backtesting.py").run())
    assert PERF_TITLES <= set(titles(at))          # the newest saved result is shown
    before = {j.id for j in jobs.list_jobs(env["results"], "backtest")}
    at.number_input(key="bt-gamma").set_value(0.2)
    next(b for b in at.button if b.label == "Run backtest").click()
    at.run()
    ok(at)
    new = [j for j in jobs.list_jobs(env["results"], "backtest") if j.id not in before]
    assert len(new) == 1 and new[0].spec["config"]["gamma"] == 0.2 and new[0].spec["synthetic_seconds"] == 600.0
    done = jobs.wait(new[0], 60)
    assert done.state == "done", (done.message, done.error)
    assert done.result["total_trades"] > 0
    src.clear_caches()
    at.run()
    ok(at)
    sel = at.selectbox(key="bt-result")
    assert new[0].id in sel.options[sel.index]          # the run started here is selected
    assert any(new[0].id in p.proto.text and "done" in p.proto.text for p in at.get("progress"))
    assert PERF_TITLES <= set(titles(at))


def test_backtesting_page_grid_search_and_compare(env):
    at = ok(page("backtesting.py").run())
    at.radio(key="bt-section").set_value("Grid search").run()
    ok(at)
    assert len(at.dataframe) >= 1
    ranking = at.dataframe[0].value
    assert len(ranking) == 6 and list(ranking.columns[:3]) == ["gamma", "time_horizon", "sharpe_ratio"]
    s = ranking["sharpe_ratio"].to_numpy()
    assert (s[:-1] >= s[1:]).all()
    assert {"sharpe_ratio (mean) by gamma x time_horizon", "total_pnl (mean) by gamma x time_horizon"} <= set(titles(at))
    at.radio(key="bt-section").set_value("Compare runs").run()
    ok(at)
    assert {"Runs compared", "Metrics by run"} <= set(titles(at))
    spec = json.loads(next(c for c in charts(at) if "Runs compared" in c.proto.spec).proto.spec)
    assert {t["name"] for t in spec["data"]} >= {"backtests/as-g0.1", "backtests/as-g0.5"}


def test_backtesting_page_starts_a_sweep(env):
    at = ok(page("backtesting.py").run())
    at.radio(key="bt-section").set_value("Grid search").run()
    at.text_input(key="sw-grid-gamma").set_value("0.1, 0.3")
    at.text_input(key="sw-grid-time_horizon").set_value("20")
    next(b for b in at.button if b.label == "Run grid search").click()
    at.run()
    ok(at)
    job = jobs.list_jobs(env["results"], "sweep")[0]
    assert job.spec["grid"] == {"gamma": [0.1, 0.3], "time_horizon": [20.0]} and job.spec["combinations"] == 2
    done = jobs.wait(job, 90)
    assert done.state == "done", (done.message, done.error)
    res = pd.read_parquet(os.path.join(done.dir, "results.parquet"))
    assert len(res) == 2 and (res["status"] == "ok").all()
    assert os.path.exists(os.path.join(done.dir, "best.json"))     # hftmm sweep's reports


def test_data_page_and_verify(env):
    at = ok(page("data.py").run())
    raw, store = at.dataframe[0].value, at.dataframe[1].value
    assert list(raw["file"]) == ["raw/BTCUSDT_spot_20240808_23.gz"] and raw["status"][0] == "not verified"
    assert list(store["file"]) == ["store/BTCUSDT/2024-08-08.parquet"] and store["rows"][0] > 100_000
    assert store["status"][0] == "sources not verified"
    at.button(key="data-verify-one").click().run()
    ok(at)
    job = jobs.list_jobs(env["results"], "verify")[0]
    assert jobs.wait(job, 60).state == "done"
    src.clear_caches()
    at.run()
    ok(at)
    raw, store = at.dataframe[0].value, at.dataframe[1].value
    assert raw["status"][0] == "ok" and raw["messages"][0] > 40_000 and raw["gaps"][0] == 0
    assert store["status"][0] == "sources ok"


# --------------------------------------------------------------------------- readers, jobs, CLI


def test_sources_read_only_and_runs(env):
    sess = src.live_sessions(env["db"])
    assert list(sess["session_id"]) == [env["engine"].sid] and sess["mode"][0] == "paper"
    st = src.live_status(env["db"], env["engine"].sid, 60.0)
    assert 100 <= len(st) <= 125 and st["ts_ns"].is_monotonic_increasing
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        src.connect_ro(env["db"]).execute("DELETE FROM status")
    run = src.live_run(env["db"], env["engine"].sid)
    assert run.tick_size == pytest.approx(0.1) and len(run.fills) > 0 and set(run.fills["side"]) <= {"buy", "sell"}
    bt = src.load_backtest(os.path.join(env["results"], "backtests", "as-g0.1"))
    assert bt.tick_size == pytest.approx(0.1) and len(bt.timeseries) == 600
    assert (bt.fills["latency_ms"] > 0).all()
    with pytest.raises(src.StateDBError):
        src.live_sessions(str(env["root"] / "nope.db"))
    with pytest.raises(ValueError):
        src.send_command(env["db"], "rm -rf", {})


def test_ttl_cache():
    calls = []

    @src.ttl_cache(0.2)
    def f(x):
        calls.append(x)
        return x * 2

    assert f(1) == 2 and f(1) == 2 and calls == [1]
    time.sleep(0.25)
    assert f(1) == 2 and calls == [1, 1]
    f.cache_clear()
    f(1)
    assert calls == [1, 1, 1]


def test_jobs_failed_cancelled_and_died(tmp_path):
    res = str(tmp_path)
    # a config the worker cannot run (no event store there): recorded as failed
    j = jobs.start_backtest(res, {"data_path": str(tmp_path / "nothing")}, data_dir=res)
    j = jobs.wait(j, 60)
    assert j.state == "failed" and "DataError" in j.message and "no such file or folder" in j.message
    # a long one, cancelled
    j = jobs.start_backtest(res, {"gamma": 0.1}, synthetic_seconds=None)
    t_end = time.monotonic() + 30
    while jobs.load(j.dir).state != "running" and time.monotonic() < t_end:
        time.sleep(0.05)
    assert jobs.cancel(jobs.load(j.dir))
    assert jobs.wait(j, 30).state == "cancelled"
    # running in status.json, but no process: died
    d = os.path.join(res, "backtests", "ghost")
    os.makedirs(d)
    jobs.write_json_atomic(os.path.join(d, jobs.JOB_FILE), dict(id="ghost", kind="backtest", spec={}, pid=2 ** 22 + 7,
                                                                started=time.time()))
    jobs.write_json_atomic(os.path.join(d, jobs.STATUS_FILE), dict(state="running", fraction=0.5))
    assert jobs.load(d).state == "died"
    assert [x.state for x in jobs.list_jobs(res, "backtest")] == ["died", "cancelled", "failed"]   # by name, newest first
    # a reader between job.json's first write (no pid yet) and its second: starting, not died
    d = os.path.join(res, "backtests", "young")
    os.makedirs(d)
    jobs.write_json_atomic(os.path.join(d, jobs.JOB_FILE), dict(id="young", kind="backtest", spec={}, pid=None,
                                                                started=time.time()))
    jobs.write_json_atomic(os.path.join(d, jobs.STATUS_FILE), dict(state="starting", fraction=0.0))
    assert jobs.load(d).state == "starting" and jobs.load(d).active
    jobs.write_json_atomic(os.path.join(d, jobs.JOB_FILE), dict(id="young", kind="backtest", spec={}, pid=None,
                                                                started=time.time() - jobs.START_GRACE_S - 1))
    assert jobs.load(d).state == "died" and "never started" in jobs.load(d).error


def test_grid_form_parsing():
    from hftmm.dashboard.forms import parse_values
    from hftmm.dashboard.worker import grid_toml

    assert parse_values("gamma", "0.05, 0.1,0.5") == [0.05, 0.1, 0.5]
    assert parse_values("requote_threshold", "0, 2") == [0, 2]
    with pytest.raises(ValueError, match="not a number"):
        parse_values("gamma", "0.1, abc")
    with pytest.raises(ValueError):
        parse_values("gamma", "-1")
    with pytest.raises(ValueError, match="not a BacktestConfig field"):
        parse_values("nope", "1")
    text = grid_toml({"start_date": "2024-08-08", "data_path": None, "post_only": True}, {"gamma": [0.1, 0.2]})
    from hftmm.cli_sweep import load_grid

    p = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"grid-{os.getpid()}.toml")
    with open(p, "w") as fh:
        fh.write(text)
    try:
        doc = load_grid(p)
    finally:
        os.unlink(p)
    assert doc == {"base": {"start_date": "2024-08-08", "post_only": True}, "grid": {"gamma": [0.1, 0.2]}}


def test_dashboard_command_line():
    from hftmm.cli import build_parser
    from hftmm.cli_dashboard import streamlit_command

    args = build_parser().parse_args(["dashboard", "--port", "8642", "--state-db", "x.db"])
    cmd = streamlit_command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith(os.path.join("dashboard", "app.py"))
    opts = dict(zip(cmd[5::2], cmd[6::2]))
    assert opts["--server.headless"] == "true" and opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8642" and opts["--browser.gatherUsageStats"] == "false"
    assert opts["--server.fileWatcherType"] == "none"
    assert args.results == "runs" and args.data == "data"
