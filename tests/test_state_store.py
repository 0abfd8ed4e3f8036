"""Tests for the live state store (hftmm.live.state)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from hftmm.execution.orders import OrderState
from hftmm.live.schema import LOSS_COLUMNS, MARGIN_COLUMNS, SCHEMA_VERSION, STATUS_COLUMNS
from hftmm.live.state import (
    BOOK_DEPTH, StatePublisher, StateReader, StateStore, StateStoreError, sanitize_config, send_command,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def status(**kw) -> dict:
    base = dict(position=0.0, cash=1000.0, risk_state="ok", open_orders=2, orders_sent=5, fills=1, synced=True,
                mid=50000.05, best_bid=50000.0, best_ask=50000.1, spread=0.1)
    base.update(kw)
    return base


@pytest.fixture
def store(tmp_path):
    clk = Clock()
    st = StateStore(tmp_path / "state.db", clock=clk)
    st.clock_ = clk  # type: ignore[attr-defined]
    st.start_session("paper", "BTCUSDT", "spot", {"trading": {"gamma": 0.1}})
    yield st
    st.close()


def test_schema_wal_and_version(tmp_path):
    path = tmp_path / "s.db"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StateStoreError, match="schema_version 999"):
        StateStore(path)


def test_version_1_database_is_migrated(tmp_path):
    """A state DB written before the loss (v2) and USD-M margin (v3) columns existed gains
    them; its rows stay."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old = [c for c in STATUS_COLUMNS if c not in LOSS_COLUMNS + MARGIN_COLUMNS]
    conn.execute(f"CREATE TABLE status (ts_ns INTEGER NOT NULL, session_id TEXT NOT NULL, {', '.join(old)})")
    conn.execute("INSERT INTO status (ts_ns, session_id, position, gaps) VALUES (1, 'old', 0.5, 3)")
    conn.commit()
    conn.close()
    st = StateStore(path, clock=Clock())
    st.start_session("paper", "BTCUSDT", "spot", {})
    st.publish(status(messages_lost=2, messages_expected=1000, ids_lost=40, ids_expected=52_000, feeds_up=2,
                      margin_ratio=0.125))
    st.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    rows = conn.execute("SELECT session_id, gaps, messages_lost, ids_expected, feeds_up, margin_ratio FROM status "
                        "ORDER BY ts_ns").fetchall()
    assert rows[0] == ("old", 3, None, None, None, None) and rows[1][2:] == (2, 52_000, 2, 0.125)


def test_round_trip_through_reader(store, tmp_path):
    clk = store.clock_
    bids = [(50000.0 - i * 0.1, 0.5) for i in range(30)]
    asks = [(D("50000.1") + i, D("0.25")) for i in range(3)]
    store.publish(status(position=D("0.003"), pnl=1.23, fees=0.02, kill_reason=None), bids, asks)
    clk.t += S
    store.publish(status(position=0.004, synced=False), bids[:1], [])
    store.record_order("mm-1-abc", "BUY", D("50000.0"), D("0.001"), D("0"), OrderState.OPEN, order_id=42)
    store.record_fill("mm-1-abc", "BUY", 50000.0, 0.001, 0.00001, 0.004, order_id=42, trade_id=7,
                      fee_asset="BNB", maker=True, mid=50000.05, latency_ms=3.5)
    store.record_risk_event("kill", "manual: test")
    store.end_session("stopped")

    with StateReader(tmp_path / "state.db") as rd:
        sess = rd.latest_session()
        assert sess["session_id"] == store.session_id and sess["mode"] == "paper"
        assert sess["config"] == {"trading": {"gamma": 0.1}} and sess["end_reason"] == "stopped"
        assert len(rd.sessions()) == 1
        last = rd.latest_status(store.session_id)
        assert last["ts_ns"] == T0 + S and last["position"] == 0.004 and last["synced"] == 0
        hist = rd.status_history(store.session_id)
        assert list(hist["ts_ns"]) == [T0, T0 + S]
        assert hist["position"].iloc[0] == pytest.approx(0.003) and hist["pnl"].iloc[0] == 1.23
        assert set(STATUS_COLUMNS) <= set(hist.columns)
        assert len(rd.status_history(since_ns=T0 + 1)) == 1
        book = rd.latest_book()
        assert book == {"ts_ns": T0 + S, "bids": [(50000.0, 0.5)], "asks": []}
        first = json.loads(sqlite3.connect(tmp_path / "state.db").execute(
            "SELECT bids_json FROM book ORDER BY ts_ns").fetchone()[0])
        assert len(first) == BOOK_DEPTH and first[0] == [50000.0, 0.5]
        orders = rd.orders()
        assert orders["state"].tolist() == ["OPEN"] and orders["order_id"].iloc[0] == 42
        fills = rd.fills(store.session_id)
        assert fills[["trade_id", "maker", "fee_asset"]].iloc[0].tolist() == [7, 1, "BNB"]
        ev = rd.risk_events()
        assert ev["kind"].tolist() == ["kill"]
        assert rd.latest_status("no-such-session") is None


def test_unknown_and_missing_status_keys(store):
    with pytest.raises(StateStoreError, match="unknown status key 'midd'"):
        store.publish(status(midd=1.0), [], [])
    bad = status()
    del bad["cash"]
    with pytest.raises(StateStoreError, match="missing required key 'cash'"):
        store.publish(bad, [], [])
    with pytest.raises(StateStoreError, match="bids\\[0\\]"):
        store.publish(status(), [(1.0, 2.0, 3.0)], [])
    with pytest.raises(StateStoreError, match="mid"):
        store.publish(status(mid=object()), [], [])
    # nothing half-written
    assert store._db().execute("SELECT COUNT(*) FROM status").fetchone()[0] == 0
    assert store._db().execute("SELECT COUNT(*) FROM book").fetchone()[0] == 0


def test_nan_and_numpy_values(store, tmp_path):
    np = pytest.importorskip("numpy")
    store.publish(status(mid=float("nan"), open_orders=np.int64(3), sigma=np.float64(0.5)), [], [])
    row = StateReader(tmp_path / "state.db").latest_status()
    assert row["mid"] is None and row["open_orders"] == 3 and row["sigma"] == 0.5


def test_no_session_is_an_error(tmp_path):
    st = StateStore(tmp_path / "x.db")
    with pytest.raises(StateStoreError, match="start_session"):
        st.publish(status(), [], [])
    with pytest.raises(StateStoreError, match="start_session"):
        st.record_fill("a", "BUY", 1, 1, 0, 1)
    st.close()
    with pytest.raises(StateStoreError, match="closed"):
        st.start_session("paper", "BTCUSDT", "spot", {})


def test_config_secrets_are_dropped(tmp_path):
    cfg = {"trading": {"symbol": "BTCUSDT", "gamma": D("0.1")},
           "api_key": "AKIAXXXX", "API-SECRET": "s3cr3t",
           "gateway": {"private_key_path": "/k.pem", "password": "pw", "url": "wss://x",
                       "nested": [{"listen_token": "tok", "ok": 1}]},
           "apiKey": "camel", "signature": "sig"}
    st = StateStore(tmp_path / "c.db")
    st.start_session("live", "BTCUSDT", "spot", cfg)
    raw = st._db().execute("SELECT config_json FROM sessions").fetchone()[0]
    st.close()
    for secret in ("AKIAXXXX", "s3cr3t", "/k.pem", "pw\"", "tok", "camel", "sig"):
        assert secret not in raw
    assert json.loads(raw) == {"trading": {"symbol": "BTCUSDT", "gamma": "0.1"},
                               "gateway": {"url": "wss://x", "nested": [{"ok": 1}]}}
    assert sanitize_config({"max_position": 1.0, "token_bucket": 5}) == {"max_position": 1.0}


def test_commands_round_trip(store, tmp_path):
    path = tmp_path / "state.db"
    clk = store.clock_
    # an unaddressed command from before this session started is stale
    old = send_command(path, "kill", {"reason": "yesterday"}, clock=lambda: T0 - S)
    cid = send_command(path, "kill", {"reason": "operator", "flatten": True, "api_key": "x"},
                       clock=lambda: T0 + 1)
    other = send_command(path, "resume", session_id="someone-else", clock=lambda: T0 + 2)
    mine = send_command(path, "resume", session_id=store.session_id, clock=lambda: T0 + 3)
    pending = store.pending_commands()
    assert [c.id for c in pending] == [cid, mine]
    assert pending[0].command == "kill" and pending[0].args == {"reason": "operator", "flatten": True}
    clk.t += 5
    store.mark_consumed(cid)
    assert [c.id for c in store.pending_commands()] == [mine]
    cmds = StateReader(path).commands()
    assert cmds.set_index("id").loc[cid, "consumed_ns"] == T0 + 5
    assert set(cmds["id"]) == {old, cid, mine}
    assert other not in set(cmds["id"])
    with pytest.raises(StateStoreError, match="unknown command 'explode'"):
        send_command(path, "explode")
    with pytest.raises(StateStoreError, match="cannot open"):
        send_command(tmp_path / "missing.db", "kill")
    assert not (tmp_path / "missing.db").exists()


def test_prune_keeps_recent_rows(store, tmp_path):
    for h in range(30):
        store.publish(status(), [], [], ts_ns=T0 + h * 3600 * S)
    store.record_fill("a", "SELL", 1, 1, 0, -1, ts_ns=T0)
    deleted = store.prune(keep_s=24 * 3600, now_ns=T0 + 29 * 3600 * S)
    assert deleted == 2 * 5  # hours 0..4 (< cutoff at hour 5), status and book
    rd = StateReader(tmp_path / "state.db")
    assert rd.status_history()["ts_ns"].min() == T0 + 5 * 3600 * S
    assert len(rd.fills()) == 1  # fills are never pruned


def test_publisher_rate_and_pruning(store):
    pub = StatePublisher(store, interval_s=1.0, keep_s=10, prune_every_s=5)
    calls = []

    def build():
        calls.append(1)
        return status(), [(1.0, 1.0)], [(2.0, 1.0)]

    published = [pub.maybe_publish(T0 + int(i * 0.25 * S), build) for i in range(80)]  # 20 s at 4 Hz
    assert sum(published) == 20 and len(calls) == 20 and pub.published == 20
    rows = store._db().execute("SELECT MIN(ts_ns), COUNT(*) FROM status").fetchone()
    assert rows[0] >= T0 + 5 * S  # pruned to about the last 10 s (+ one prune period)
    with pytest.raises(ValueError):
        StatePublisher(store, interval_s=0)


def test_concurrent_reader_while_writing(store, tmp_path):
    path = tmp_path / "state.db"
    errors: list = []
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        try:
            rd = StateReader(path, busy_timeout_ms=50)
            while not stop.is_set():
                row = rd.latest_status(store.session_id)
                if row is not None:
                    seen.append(row["orders_sent"])
                    assert len(rd.status_history(store.session_id)) >= row["orders_sent"]
            rd.close()
        except Exception as e:  # pragma: no cover - the failure itself
            errors.append(e)

    th = threading.Thread(target=read)
    th.start()
    t_start = time.perf_counter()
    for i in range(1, 301):
        store.publish(status(orders_sent=i), [(1.0, 1.0)], [], ts_ns=T0 + i)
        store.record_fill("c", "BUY", 1.0, 1.0, 0.0, float(i), ts_ns=T0 + i)
    elapsed = time.perf_counter() - t_start
    stop.set()
    th.join(10)
    assert not errors
    assert seen and seen == sorted(seen) and max(seen) <= 300
    assert elapsed < 10


def test_reader_is_read_only(store, tmp_path):
    rd = StateReader(tmp_path / "state.db")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        rd._conn.execute("DELETE FROM status")
    with pytest.raises(StateStoreError):
        StateReader(tmp_path / "nope.db")


def test_reader_after_writer_closed(tmp_path):
    path = tmp_path / "closed.db"
    st = StateStore(path)
    st.start_session("paper", "BTCUSDT", "spot", {})
    st.publish(status(), [], [])
    st.close()
    st.close()  # idempotent
    assert StateReader(path).latest_status()["risk_state"] == "ok"


_WRITER = r"""
import sys
from hftmm.live.state import StateStore
st = StateStore(sys.argv[1])
sid = st.start_session("paper", "BTCUSDT", "spot", {})
print("session", sid, flush=True)
i = 0
while True:
    i += 1
    st.record_fill("kill9", "BUY", 100.0, 0.001, 0.0, i * 0.001, trade_id=i)
    print(i, flush=True)
"""


def test_committed_fills_survive_kill_9(tmp_path):
    path = tmp_path / "k.db"
    env = dict(os.environ)        # the same hftmm as the test (installed, or PYTHONPATH in a work tree)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                            env=env, text=True, cwd=str(tmp_path))   # not the source tree's hftcore
    reported: list[int] = []
    try:
        sid = proc.stdout.readline().split()[1]
        deadline = time.monotonic() + 20
        while len(reported) < 300 and time.monotonic() < deadline:
            reported.append(int(proc.stdout.readline()))
    finally:
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(10)
    reported += [int(x) for x in rest.split()]
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) >= 300
    fills = StateReader(path).fills(sid)
    stored = set(fills["trade_id"])
    assert set(reported) <= stored
    assert stored <= set(range(1, max(reported) + 2))  # at most one committed but not yet printed


# ---------------------------------------------------------------- one session per database
def test_one_running_session_per_database(tmp_path):
    from hftmm.live.state import SessionInUse, lock_path, running_session

    path = tmp_path / "one.db"
    a, b = StateStore(path), StateStore(path)
    assert running_session(path) is None
    sid = a.start_session("paper", "BTCUSDT", "spot", {"api_key": "k-secret", "trading": {}})
    who = running_session(path)
    assert who["session_id"] == sid and who["pid"] == os.getpid() and who["symbol"] == "BTCUSDT"
    with pytest.raises(SessionInUse, match=f"in use by running session {sid} .paper BTCUSDT, pid {os.getpid()}"):
        b.start_session("live", "BTCUSDT", "spot", {})
    assert b.session_id is None and len(StateReader(path).sessions()) == 1   # the refused one left no row
    assert "k-secret" not in lock_path(path).read_text()
    a.end_session("stopped")                    # ending releases the lock: the next session may start
    assert running_session(path) is None
    sid2 = b.start_session("live", "BTCUSDT", "spot", {})
    assert running_session(path)["session_id"] == sid2
    b.close()                                   # so does closing without an end
    assert running_session(path) is None
    a.close()


def test_a_dead_process_releases_its_session(tmp_path):
    """kill -9 of the session's process: the lock goes with it; the session row stays
    without an end (the dashboard shows it as died)."""
    from hftmm.live.state import running_session

    path = tmp_path / "dead.db"
    code = ("import sys, time\nfrom hftmm.live.state import StateStore\n"
            "s = StateStore(sys.argv[1]); s.start_session('paper', 'ETHUSDT', 'spot', {})\n"
            "print('started', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "started"
        who = running_session(path)
        assert who["pid"] == p.pid and who["symbol"] == "ETHUSDT"
        with pytest.raises(StateStoreError, match="in use by running session"):
            StateStore(path).start_session("paper", "ETHUSDT", "spot", {})
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert running_session(path) is None
    rows = StateReader(path).sessions()
    assert len(rows) == 1 and rows["ended_ns"].isna().all()
    s = StateStore(path)
    s.start_session("paper", "ETHUSDT", "spot", {})
    s.close()


def test_session_group_one_lock_for_several_symbols(tmp_path):
    """Several symbols in one process: a session per symbol under one lock; the lock
    file names them all, a second process's session is refused, the dashboard marks
    every one running, and the lock goes with the group."""
    from hftmm.dashboard.sources import live_sessions
    from hftmm.live.state import SessionGroup, SessionInUse, running_session

    path = tmp_path / "multi.db"
    StateStore(path).close()                     # (the schema)
    group = SessionGroup(path)
    stores = [StateStore(path, group=group) for _ in range(2)]
    sids = [st.start_session("paper", sym, "spot", {}) for st, sym in zip(stores, ("BTCUSDT", "ETHUSDT"))]
    who = running_session(path)
    assert who["sessions"] == sids and who["session_id"] == sids[0] and who["symbol"] == "BTCUSDT,ETHUSDT"
    assert who["pid"] == os.getpid()
    other = StateStore(path)
    with pytest.raises(SessionInUse, match=sids[0]):
        other.start_session("paper", "SOLUSDT", "spot", {})
    other.close()
    df = live_sessions.__wrapped__(str(path)) if hasattr(live_sessions, "__wrapped__") else live_sessions(str(path))
    assert set(df.loc[df["running"], "session_id"]) == set(sids)
    for st in stores:
        st.end_session("test over")
        st.close()
    assert running_session(path) is not None      # the group still holds the lock
    group.release()
    assert running_session(path) is None


def _open_at_once(db: str, n: int) -> tuple[list, list]:
    start, errors, stores = threading.Barrier(n), [], []

    def open_one():
        start.wait()
        try:
            stores.append(StateStore(db))
        except Exception as exc:  # noqa: BLE001 -- collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return stores, errors


def test_many_stores_open_one_new_database_at_once(tmp_path):
    """Several symbols' engines open one new state database at the same moment: each
    set-up waits for the other (the switch to WAL failed 'database is locked' once in CI)."""
    for round_ in range(10):
        stores, errors = _open_at_once(str(tmp_path / f"new{round_}.db"), 8)
        assert errors == [] and len(stores) == 8, errors
        for st in stores:
            st.close()
