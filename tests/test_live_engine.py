"""End to end on 127.0.0.1: `hftmm live --paper` against the simulator.

* a paper session on the simulator replaying a real capture makes exactly the
  quote decisions and fills that a backtest of the session's recording makes
  with the same latency model (the recording goes through `data convert`);
* the state store gets status at >= 1 Hz, orders and fills; the kill switch
  (a command in the store) cancels everything and stops quoting; the session
  ends with no open order.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.request
from decimal import Decimal
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftmm.backtesting import BacktestConfig
from hftmm.config import AlertConfig, ExchangeModelConfig, RiskConfig, TradingConfig
from hftmm.data import store
from hftmm.data.convert import convert
from hftmm.live.engine import LiveEngine
from hftmm.live.state import StateReader
from hftmm.simulator import ExchangeSimulator
from hftmm.simulator.sources import CaptureSource, SyntheticSource
from hftmm.synthetic import SyntheticConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)       # (--import-mode=importlib)
from alert_sink import AlertSink  # noqa: E402
CAPTURE = os.path.join(HERE, "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz")


def test_paper_session_on_a_replayed_capture_equals_its_backtest(tmp_path):
    src = CaptureSource(CAPTURE, speed=25.0, symbol="BTCUSDT", tick_size="0.01", lot_size="0.00000001")
    # tight quotes (k large, no intensity fit) so that the session gets fills
    # (a replay at 25x speed also measures 25x the variance per second: short horizon)
    trading = TradingConfig(symbol="BTCUSDT", gamma=0.001, time_horizon=1.0, order_size=0.001,
                            quote_refresh_interval=0.05, estimate_intensity=False, k=50.0)
    risk = RiskConfig(max_position=1.0, max_daily_loss=1e6, max_drawdown=1.0, latency_threshold_ms=2000.0,
                      max_orders_per_second=1000.0)
    # the intensity fill model fills within seconds (the queue model is covered offline,
    # in test_paper_parity, where a session can be long)
    exchange = ExchangeModelConfig(order_latency=0.004, cancel_latency=0.004, response_latency=0.003,
                                   fill_model="intensity", fill_A=5.0, fill_k=0.3)
    rec = tmp_path / "raw"
    with ExchangeSimulator(market="spot", source=src) as sim:
        eng = LiveEngine(trading, risk, mode="paper", exchange=exchange, rest_url=sim.rest_url, ws_url=sim.ws_url,
                         state_db=str(tmp_path / "state.db"), record_dir=str(rec), record_decisions=True)
        summary = eng.run(duration_s=8.0)
    assert summary["frames"] > 500 and summary["orders_sent"] > 10, summary
    assert summary["open_orders"] == 0
    paper_intents = np.concatenate(eng.decisions)
    # the backtest of the recording, through data convert, built from the same configs
    out = tmp_path / "store"
    info = eng.exchange_info_path
    convert(sorted(str(p) for p in rec.iterdir() if str(p) != info), str(out), exchange_info=info)
    meta = store.store_metadata(str(out), "BTCUSDT")
    assert meta["tick_size"] == eng.tick_s and meta["lot_size"] == eng.lot_s   # (the session's units)
    day = meta["day"] if "day" in meta else store.available_dates(str(out), "BTCUSDT")[0]
    bt = BacktestConfig.compose(trading, exchange, risk, data_path=str(out), start_date=day, end_date=day,
                                feed_latency=None, clock_correction=False)
    k = _backtest_kernel(bt, str(out), meta)
    assert_same_decisions(paper_intents, eng.paper_fills, k.take_intents(0), k.take_fills(0), summary)
    pf = eng.paper_fills
    # the state store has the session's orders and fills
    rd = StateReader(str(tmp_path / "state.db"))
    orders = rd.orders()
    assert set(orders["state"]) >= {"PENDING_NEW", "NEW", "CANCELED"}
    assert len(rd.fills()) == len(pf)


def assert_same_decisions(paper_intents, pf, bt_intents, bt_fills, summary) -> None:
    """The backtest of a session's recording made the session's decisions and fills,
    byte for byte. The session stops at its duration (its last frames may not be in
    the recording yet, and the end cancels everything): the backtest's decisions are
    a prefix of the session's, up to its last few."""
    n = len(bt_intents)
    assert n > 10
    m = min(n, len(paper_intents))
    assert paper_intents[:m].tobytes() == bt_intents[:m].tobytes()
    assert m >= n - 4 and m >= len(paper_intents) - 40, (n, len(paper_intents))
    m = min(len(pf), len(bt_fills))
    assert m > 0 and abs(len(pf) - len(bt_fills)) <= 2, (len(pf), len(bt_fills), summary)
    assert pf[:m].tobytes() == bt_fills[:m].tobytes()


def _backtest_kernel(bt, path, meta):
    """The backtest's own kernel (the one ``run_backtest`` builds), over the store."""
    from hftmm.backtesting.engine import build_kernel

    k = build_kernel([bt], meta["tick_size"], meta["lot_size"], meta.get("market") or "spot", record_intents=True)
    for ch in store.read_events(path, "BTCUSDT"):
        k.run(np.ascontiguousarray(ch).astype(EVENT_DTYPE))
    return k


def _synthetic_sim(speed=1.0, seed=3):
    return ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=seed, book_levels=400),
                                                                   speed=speed))


def test_state_store_kill_switch_and_clean_end(tmp_path, capsys):
    """The kill switch through ``hftmm kill`` (which names the session it stopped and
    fails when none runs); one session per state database (a second one is refused)."""
    from hftmm.cli import main
    from hftmm.live.state import SessionInUse, running_session

    db = str(tmp_path / "live.db")
    trading = TradingConfig(symbol="BTCUSDT", gamma=0.05, order_size=0.001, quote_refresh_interval=0.05,
                            estimate_intensity=False, k=0.5)
    risk = RiskConfig(max_position=0.005, latency_threshold_ms=2000.0, max_orders_per_second=100.0)
    sink = AlertSink()
    alerts = AlertConfig(webhook_url=sink.url + "/hook", telegram_bot_token="999:TOKEN-never-shown",
                         telegram_chat_id="5", telegram_api_url=sink.url + "/tg")
    with _synthetic_sim() as sim:
        eng = LiveEngine(trading, risk, mode="paper", rest_url=sim.rest_url, ws_url=sim.ws_url, state_db=db,
                         alerts=alerts, metrics_port=0)
        th = threading.Thread(target=eng.run, kwargs={"duration_s": 7.0})
        th.start()
        time.sleep(4.0)
        # Prometheus: the scrape parses, the figures are the engine's
        from prometheus_client.parser import text_string_to_metric_families
        with urllib.request.urlopen(eng.metrics.url, timeout=10) as r:
            fam = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
        one = {n: fam[n].samples[0] for n in ("hftmm_feed_messages", "hftmm_orders_sent", "hftmm_position")}
        assert one["hftmm_feed_messages"].value > 10 and one["hftmm_orders_sent"].value > 5
        assert one["hftmm_position"].labels == {"symbol": "BTCUSDT", "mode": "paper"}
        lat = {s.labels["le"]: s.value for s in fam["hftmm_feed_latency_seconds"].samples
               if s.name.endswith("_bucket")}
        assert lat["+Inf"] > 10 and {s.labels["hftmm_risk_state"]: s.value
                                     for s in fam["hftmm_risk_state"].samples}["ok"] == 1
        assert fam["hftmm_session_info"].samples[0].labels["session_id"] == eng.session_id
        # loss figures of the two merged feeds; every metric the sample Grafana dashboard plots exists
        assert fam["hftmm_feeds_up"].samples[0].value == 2
        assert fam["hftmm_feed_messages_expected"].samples[0].value > 10
        assert fam["hftmm_feed_messages_lost"].samples[0].value == 0
        grafana = json.loads((Path(__file__).resolve().parents[1] / "examples" / "grafana" / "hftmm.json").read_text())
        exprs = [t["expr"] for p in grafana["panels"] for t in p["targets"]]
        names = {re.sub(r"_(total|bucket)$", "", n) for e in exprs for n in re.findall(r"hftmm_[a-z_]+", e)}
        served = set(fam) | {n + "_info" for n in fam}
        assert len(names) >= 15 and names <= served, names - served
        who = running_session(db)
        assert who["session_id"] == eng.session_id and who["pid"] == os.getpid() and who["mode"] == "paper"
        with pytest.raises(SessionInUse, match=f"in use by running session {eng.session_id}"):
            LiveEngine(trading, risk, mode="paper", rest_url=sim.rest_url, ws_url=sim.ws_url,
                       state_db=db).run(duration_s=1.0)
        sent_before = eng.trader.sent
        capsys.readouterr()
        assert main(["kill", "--state-db", db, "--reason", "test"]) == 0    # waits for the acknowledgement
        out = capsys.readouterr().out
        assert f"killed session {eng.session_id} (paper BTCUSDT, pid {os.getpid()})" in out, out
        time.sleep(1.0)
        sent_after_kill = eng.trader.sent
        th.join(20)
    assert not th.is_alive()
    assert running_session(db) is None
    # alerts: start, the kill, the end -- to both destinations, no key material
    reqs = sink.wait(lambda r: sum(1 for _, p, b in r if p == "/hook" and b["kind"] == "session_end"))
    sink.close()
    hooks = [b for _, p, b in reqs if p == "/hook"]
    assert [b["kind"] for b in hooks] == ["session_start", "kill", "session_end"], hooks
    assert "test" in hooks[1]["text"] and hooks[1]["severity"] == "critical"
    assert hooks[2]["session_id"] == eng.session_id and hooks[2]["fields"]["unconfirmed"] == []
    assert sum(p.startswith("/tg/bot") for _, p, _ in reqs) == 3
    assert all("TOKEN-never-shown" not in json.dumps(b) for _, _, b in reqs)
    assert main(["kill", "--state-db", db]) == 1
    err = capsys.readouterr().err
    assert "no session is running" in err and f"latest session {eng.session_id}" in err and "ended" in err, err
    assert sent_before > 5
    rd = StateReader(db)
    st = rd.status_history()
    assert len(st) >= 5                                   # >= 1 Hz over 7 s
    ts = st["ts_ns"].to_numpy()
    assert np.max(np.diff(ts)) < 1.6e9
    assert (st["synced"] == 1).any() and st["mid"].notna().any()
    last = rd.latest_status()
    assert last["risk_state"] == "killed" and "test" in (last["kill_reason"] or "")
    assert last["open_orders"] == 0
    assert last["realized_pnl"] is not None and last["k"] == 0.5 and last["A"] == 5.0
    ev = rd.risk_events()
    assert (ev["kind"] == "kill").any()
    orders = rd.orders()
    assert len(orders) > 5 and set(orders["state"]) >= {"PENDING_NEW", "CANCELED"}
    # after the kill: nothing new (the kill is taken within one publish interval)
    assert sent_after_kill - sent_before <= 40
    assert eng.trader.sent == sent_after_kill
    book = rd.latest_book()
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    sess = rd.latest_session()
    assert sess["ended_ns"] and sess["end_reason"]
    # never more than max_position, even with orders in flight
    fills = rd.fills()
    if len(fills):
        assert fills["position"].abs().max() <= 0.005 + 1e-12


def test_cli_live_paper_duration(tmp_path):
    db = str(tmp_path / "cli.db")
    with _synthetic_sim(seed=5) as sim:
        env = dict(os.environ, HFTMM_RISK_LATENCY_THRESHOLD_MS="2000")
        r = subprocess.run([sys.executable, "-m", "hftmm.cli", "live", "--paper", "--symbol", "BTCUSDT",
                            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--duration", "3",
                            "--state-db", db, "--no-status"], capture_output=True, text=True, timeout=60,
                           env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "end_reason=duration 3 s reached" in r.stdout
    assert "open_orders=0" in r.stdout
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM status").fetchone()[0] >= 2


def test_testnet_mode_end_to_end_on_the_simulator(tmp_path):
    """`hftmm live --testnet` against the simulator's order API: signed REST orders,
    executionReports over the WS API user-data stream, a clean end with nothing open."""
    key, secret = "k" * 64, "s" * 64
    db = str(tmp_path / "t.db")
    with _synthetic_sim(seed=9) as sim:
        sim.add_account(key, hmac_secret=secret, balances={"BTC": "1", "USDT": "100000"})
        env = dict(os.environ, BINANCE_API_KEY=key, BINANCE_API_SECRET=secret,
                   HFTMM_RISK_LATENCY_THRESHOLD_MS="2000", HFTMM_TRADING_QUOTE_REFRESH_INTERVAL="0.05")
        r = subprocess.run([sys.executable, "-m", "hftmm.cli", "live", "--testnet", "--symbol", "BTCUSDT",
                            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--duration", "5",
                            "--state-db", db, "--no-status", "--env-file", str(tmp_path / "none.env")],
                           capture_output=True, text=True, timeout=90, env=env, cwd=str(tmp_path))
        open_left = [o for o in sim.orders_of(key) if o.get("status") in ("NEW", "PARTIALLY_FILLED")] \
            if hasattr(sim, "orders_of") else []
    assert r.returncode == 0, r.stderr[-3000:]
    assert secret not in r.stdout + r.stderr and key not in r.stdout + r.stderr
    assert "open_orders=0" in r.stdout, r.stdout
    assert not open_left
    rd = StateReader(db)
    orders = rd.orders()
    assert len(orders) > 3 and (orders["state"] == "OPEN").any(), orders.tail()
    assert rd.latest_session()["mode"] == "testnet"


def test_position_limit_holds_across_a_kill_9_restart(tmp_path):
    """`kill -9` of `hftmm live --testnet`, then a restart with the same key and state DB:
    the new session reads its position from the account's balance (minus the first
    session's baseline) before its first quote, so the account stays inside
    max_position of where it started; used to restart from 0 (0.004 vs a 0.003 limit)."""
    key, secret = "r" * 64, "t" * 64
    db = str(tmp_path / "r.db")
    max_pos = Decimal("0.003")
    with _synthetic_sim(seed=11) as sim:
        sim.add_account(key, hmac_secret=secret, balances={"BTC": "1", "USDT": "100000"})
        env = dict(os.environ, BINANCE_API_KEY=key, BINANCE_API_SECRET=secret,
                   HFTMM_RISK_LATENCY_THRESHOLD_MS="2000", HFTMM_TRADING_QUOTE_REFRESH_INTERVAL="0.05",
                   HFTMM_RISK_MAX_POSITION=str(max_pos), HFTMM_RISK_MAX_ORDERS_PER_SECOND="50")
        cmd = [sys.executable, "-m", "hftmm.cli", "-v", "live", "--testnet", "--symbol", "BTCUSDT",
               "--rest-url", sim.rest_url, "--ws-url", sim.ws_url, "--state-db", db, "--no-status",
               "--env-file", str(tmp_path / "none.env")]

        def btc() -> Decimal:
            free, locked = sim.balances(key)["BTC"]
            return Decimal(free) + Decimal(locked)

        first = subprocess.Popen(cmd + ["--duration", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env, cwd=str(tmp_path))
        guard = time.monotonic() + 120
        while btc() == Decimal(1) and time.monotonic() < guard and first.poll() is None:
            time.sleep(0.05)
        time.sleep(1.0)
        first.kill()                         # kill -9: no cancel, no end of session
        first.wait(30)
        held_after_kill = btc() - 1
        assert held_after_kill != 0, ("the first session traded", first.stderr.read()[-3000:])
        r = subprocess.run(cmd + ["--duration", "6"], capture_output=True, text=True, timeout=120, env=env,
                           cwd=str(tmp_path))
        final = btc() - 1
    assert r.returncode == 0, r.stderr[-3000:]
    assert "from the earlier session's (state DB" in r.stderr and "baseline 1" in r.stderr, r.stderr[-3000:]
    assert abs(final) <= max_pos, (held_after_kill, final)
    rd = StateReader(db)
    sessions = rd.sessions()
    assert len(sessions) == 2
    second = sessions.sort_values("started_ns").iloc[-1]["session_id"]
    st = rd.status_history(second)
    # the second session's position was the account's from its first published row on
    assert st["position"].abs().max() <= float(max_pos) + 1e-12
    fills = rd.fills(second)
    if len(fills):
        assert fills["position"].abs().max() <= float(max_pos) + 1e-12
