"""The dashboard in a real browser: Debian's chromium (headless, driven by
Playwright) against ``hftmm dashboard`` fed by a paper session
(``hftmm live --paper``) on the exchange simulator, all on 127.0.0.1.

Every page renders its Plotly charts with no page error and no console error,
the live book changes over time, a backtest started from the Backtesting page
completes, and the kill button stops the real engine. Screenshots go to
``tests/artifacts/dashboard/`` (git-ignored); their paths are printed.

The browser resolves no host name but 127.0.0.1 (``--host-resolver-rules``),
and the test fails if the page asked for anything else.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is missing (pip install playwright)")
pytest.importorskip("streamlit")

from playwright.sync_api import sync_playwright  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
import dashboard_fixtures as fx  # noqa: E402

from hftmm.dashboard import jobs  # noqa: E402
from hftmm.simulator import ExchangeSimulator  # noqa: E402
from hftmm.simulator.sources import SyntheticSource  # noqa: E402
from hftmm.synthetic import SyntheticConfig  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, "artifacts", "dashboard")
HFTMM = [sys.executable, "-m", "hftmm.cli"]
SESSION_S = 150          # the paper session outlives the test; stopped at teardown

# tight quotes and the intensity fill model: fills within seconds
LIVE_TOML = """
[trading]
symbol = "BTCUSDT"
gamma = 0.05
order_size = 0.001
quote_refresh_interval = 0.05
estimate_intensity = false
k = 0.5

[risk]
max_position = 0.005
latency_threshold_ms = 2000.0
max_orders_per_second = 100.0

[paper]
fill_model = "intensity"
fill_A = 5.0
fill_k = 0.3
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout_s: float, what: str, poll_s: float = 0.2):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        v = cond()
        if v:
            return v
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _status_rows(db: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM status WHERE synced = 1").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Simulator (in process) + ``hftmm live --paper`` + ``hftmm dashboard``."""
    root = tmp_path_factory.mktemp("browser")
    db = str(root / "state.db")
    results = root / "runs"
    data = fx.data_folder(str(root / "data"))
    (root / "live.toml").write_text(LIVE_TOML)
    env = dict(os.environ, HFTMM_RISK_LATENCY_THRESHOLD_MS="2000")
    sim = ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=3, book_levels=400), speed=1.0))
    sim.start()
    live_log = open(root / "live.log", "w")
    live = subprocess.Popen(HFTMM + ["live", "--paper", "--config", str(root / "live.toml"), "--rest-url", sim.rest_url,
                                     "--ws-url", sim.ws_url, "--duration", str(SESSION_S), "--state-db", db,
                                     "--no-status"], stdout=live_log, stderr=subprocess.STDOUT, env=env, cwd=str(root))
    port = free_port()
    dash_log = open(root / "dashboard.log", "w")
    dash = subprocess.Popen(HFTMM + ["dashboard", "--state-db", db, "--results", str(results), "--data", data,
                                     "--port", str(port), "--host", "127.0.0.1"],
                            stdout=dash_log, stderr=subprocess.STDOUT, env=env, cwd=str(root))
    try:
        _wait(lambda: _status_rows(db) >= 2 or live.poll() is not None, 60, "the paper session's first publishes")
        assert live.poll() is None, (root / "live.log").read_text()[-3000:]

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    return r.read() == b"ok"
            except OSError:
                return dash.poll() is not None
        _wait(healthy, 60, "the dashboard")
        assert dash.poll() is None, (root / "dashboard.log").read_text()[-3000:]
        yield dict(url=f"http://127.0.0.1:{port}/", db=db, results=str(results), root=root, live=live)
    finally:
        dash.send_signal(signal.SIGTERM)
        live.send_signal(signal.SIGINT)           # a clean end: every order cancelled
        for p in (dash, live):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        sim.stop()
        live_log.close()
        dash_log.close()


def _charts(page) -> list[dict]:
    """Title (without the markup Streamlit's theme adds) and trace data of every Plotly chart on the
    page (``_fullData``: arrays decoded; ``data`` holds numpy arrays as base64 objects)."""
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(g => ({
        title: ((g.layout && g.layout.title && g.layout.title.text) || '').replace(/<[^>]+>/g, ''),
        traces: (g._fullData || []).map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])}))}))""")


def _shot(page, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    return path


def _goto(page, name: str, min_charts: int, titles: set[str]) -> list[dict]:
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name).first.wait_for(timeout=30_000)

    seen: list = []

    def ready():
        c = _charts(page)
        seen[:] = [x["title"] for x in c]
        return (c,) if len(c) >= min_charts and titles <= set(seen) else None
    try:
        return _wait(ready, 45, f"the charts of {name}", 0.5)[0]
    except AssertionError as e:
        raise AssertionError(f"{e}; charts seen: {seen}") from None


def test_dashboard_in_a_browser(stack):
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 3200})
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("request", lambda r: foreign.append(r.url)
                    if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
            page.goto(stack["url"])
            page.get_by_role("link", name="Live", exact=True).wait_for(timeout=30_000)

            # Live: every chart, and the book moves
            live_titles = {"Order book depth", "Mid, our quotes and fills", "Spread, volatility and trade activity",
                           "Feed and order latency"}
            first = _goto(page, "Live", 5, live_titles)
            depth0 = next(c for c in first if c["title"] == "Order book depth")
            assert [t["name"] for t in depth0["traces"]] == ["bids", "asks"] and depth0["traces"][0]["x"]
            _shot(page, "live")

            def book_changed():
                now = next((c for c in _charts(page) if c["title"] == "Order book depth"), None)
                return now is not None and now["traces"] and now["traces"] != depth0["traces"]
            _wait(book_changed, 15, "the live book to change")
            price = next(c for c in _charts(page) if c["title"] == "Mid, our quotes and fills")
            assert {"mid", "our bid", "our ask"} <= {t["name"] for t in price["traces"]}

            # Performance (the live session)
            perf = _goto(page, "Performance", 8, {"Equity (PnL)", "Drawdown", "Inventory", "Mark-outs"})
            assert len(perf) >= 8
            _shot(page, "performance")

            # Backtesting: start a backtest from the form, watch it complete
            _goto(page, "Backtesting", 0, set())
            page.get_by_role("button", name="Run backtest").click()
            _wait(lambda: jobs.list_jobs(stack["results"], "backtest"), 15, "the backtest job")
            job = jobs.list_jobs(stack["results"], "backtest")[0]
            done = jobs.wait(job, 90)
            assert done.state == "done", (done.message, done.error)
            page.get_by_text(f"{job.id}").first.wait_for(timeout=30_000)
            _wait(lambda: page.get_by_text("— done — PnL").count() > 0, 30, "the page to show the run done")
            charts = _wait(lambda: (lambda c: c if {"Equity (PnL)", "Fill latency"} <= {x["title"] for x in c}
                                    else None)(_charts(page)), 45, "the backtest's charts", 0.5)
            eq = next(c for c in charts if c["title"] == "Equity (PnL)")
            assert len(eq["traces"][0]["x"]) > 100
            _shot(page, "backtesting")

            # Data: the capture and its store file, in tables
            page.get_by_role("link", name="Data", exact=True).click()
            page.get_by_role("heading", name="Data").first.wait_for(timeout=30_000)
            _wait(lambda: page.locator('[data-testid="stDataFrame"]').count() >= 2, 30, "the data tables")
            page.get_by_role("button", name="Verify", exact=True).click()
            _wait(lambda: page.get_by_text("— done — clean").count() > 0, 60, "the capture's verify")
            _wait(lambda: page.get_by_text("ok: 1").count() > 0, 30, "the verify status in the table")
            _shot(page, "data")

            # the kill switch, consumed by the real engine
            _goto(page, "Live", 5, live_titles)
            page.get_by_role("button", name="KILL: cancel all and stop quoting").click()

            def killed():
                con = sqlite3.connect(f"file:{stack['db']}?mode=ro", uri=True)
                try:
                    cmd = con.execute("SELECT command, args_json, consumed_ns FROM commands ORDER BY id DESC LIMIT 1"
                                      ).fetchone()
                    st = con.execute("SELECT risk_state, kill_reason FROM status ORDER BY ts_ns DESC LIMIT 1").fetchone()
                finally:
                    con.close()
                return cmd is not None and cmd[2] is not None and st[0] == "killed" and (cmd, st)
            cmd, st = _wait(killed, 20, "the engine to take the kill command")
            assert cmd[0] == "kill" and json.loads(cmd[1]) == {"reason": "dashboard", "flatten": False}
            assert "dashboard" in (st[1] or "")
            _wait(lambda: page.get_by_text("KILLED").count() > 0, 15, "the page to show KILLED")
            _shot(page, "live-killed")
        finally:
            browser.close()
    assert stack["live"].poll() is None, "the paper session ended early"
    assert not errors, errors[:10]
    assert not foreign, foreign[:10]
