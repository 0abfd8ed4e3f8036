"""The command line as a user runs it, end to end on 127.0.0.1:
``hftmm simulate`` in one process, ``hftmm record`` against it in another, then
``hftmm data verify`` and ``hftmm data convert`` on the recording and
``hftmm backtest --data`` on the converted store."""
from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import tempfile
import sys

import pytest

HFTMM = [sys.executable, "-m", "hftmm.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    # the subprocesses import hftmm exactly as this test process does (the
    # installed package, or whatever PYTHONPATH says)
    return dict(os.environ)


@pytest.fixture
def simulator():
    port = free_port()
    proc = subprocess.Popen(HFTMM + ["simulate", "--port", str(port), "--speed", "20", "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
                            cwd=tempfile.gettempdir())
    lines = [proc.stdout.readline().strip() for _ in range(2)]
    assert lines[0] == f"REST http://127.0.0.1:{port}" and lines[1] == f"WS ws://127.0.0.1:{port}", lines
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_record_verify_convert_backtest(simulator, tmp_path):
    port = simulator
    rec_dir = tmp_path / "raw"
    out = subprocess.run(HFTMM + ["record", "--symbol", "BTCUSDT", "--out", str(rec_dir), "--duration", "4",
                                  "--rest-url", f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}"],
                         capture_output=True, text=True, env=env(), cwd=str(tmp_path), timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["lines"] > 500 and summary["gaps"] == 0 and summary["ready"]
    files = sorted(glob.glob(str(rec_dir / "*.gz")))
    assert files and all(os.path.basename(f).startswith("BTCUSDT_spot_") for f in files)

    ver = subprocess.run(HFTMM + ["data", "verify", *files, "--json"], capture_output=True, text=True,
                         env=env(), cwd=str(tmp_path), timeout=60)
    assert ver.returncode == 0, ver.stdout[-2000:] + ver.stderr[-2000:]
    rep = json.loads(ver.stdout)
    text = json.dumps(rep)
    assert '"ticker_mismatches": 0' in text and '"malformed": 0' in text

    store = tmp_path / "store"
    conv = subprocess.run(HFTMM + ["data", "convert", *files, "--out", str(store), "--json"],
                          capture_output=True, text=True, env=env(), cwd=str(tmp_path), timeout=60)
    assert conv.returncode == 0, conv.stdout[-2000:] + conv.stderr[-2000:]
    day_files = glob.glob(str(store / "BTCUSDT" / "*.parquet"))
    assert day_files

    day = os.path.splitext(os.path.basename(sorted(day_files)[0]))[0]
    bt = subprocess.run(HFTMM + ["backtest", "--data", str(store), "--date", day, "--json",
                                 "--gamma", "0.1", "--time-horizon", "30"],
                        capture_output=True, text=True, env=env(), cwd=str(tmp_path), timeout=120)
    assert bt.returncode == 0, bt.stderr[-3000:]
    m = json.loads(bt.stdout)
    assert m["events"] > 500 and "sharpe_ratio" in m


def test_simulate_registers_the_env_account_for_live_testnet(tmp_path):
    """`hftmm simulate --account-from-env` and `hftmm live --testnet` read the same
    .env (an Ed25519 key: the simulator takes its public half), so a user can try the
    whole signed order path locally; no key material appears in either output."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "ed25519.pem").write_bytes(pem)
    api_key = "E" * 64
    (tmp_path / ".env").write_text(f"BINANCE_API_KEY={api_key}\nBINANCE_PRIVATE_KEY_PATH={tmp_path / 'ed25519.pem'}\n")
    clean = {k: v for k, v in env().items() if not k.startswith("BINANCE_")}
    port = free_port()
    sim = subprocess.Popen(HFTMM + ["simulate", "--port", str(port), "--speed", "1", "--seed", "5",
                                    "--account-from-env", "--balance", "BTC=0.5", "--balance", "USDT=20000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean, cwd=str(tmp_path))
    try:
        lines = [sim.stdout.readline().strip() for _ in range(3)]
        assert lines[2] == "order entry: account registered (ED25519 key from the environment)", lines
        live_env = dict(clean, HFTMM_RISK_LATENCY_THRESHOLD_MS="2000", HFTMM_TRADING_QUOTE_REFRESH_INTERVAL="0.05")
        db = str(tmp_path / "t.db")
        r = subprocess.run(HFTMM + ["live", "--testnet", "--symbol", "BTCUSDT", "--rest-url", f"http://127.0.0.1:{port}",
                                    "--ws-url", f"ws://127.0.0.1:{port}", "--duration", "4", "--no-status",
                                    "--state-db", db],
                           capture_output=True, text=True, timeout=90, env=live_env, cwd=str(tmp_path))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim_out, sim_err = sim.communicate(timeout=15)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "open_orders=0" in r.stdout, r.stdout[-2000:]
    assert sim.returncode == 0, sim_err[-2000:]
    everything = r.stdout + r.stderr + sim_out + sim_err + "".join(lines)
    assert api_key not in everything and "PRIVATE KEY" not in everything
    import sqlite3
    con = sqlite3.connect(db)
    states = {s for (s,) in con.execute("SELECT state FROM orders")}
    assert "OPEN" in states, states          # the simulator accepted signed orders
    assert con.execute("SELECT COUNT(*) FROM sessions WHERE mode = 'testnet'").fetchone()[0] == 1


def test_simulate_refuses_bad_account_options(tmp_path):
    base = HFTMM + ["simulate", "--port", "0", "--duration", "0.1"]
    clean = {k: v for k, v in env().items() if not k.startswith("BINANCE_")}
    r = subprocess.run(base + ["--account-from-env", "--env-file", str(tmp_path / "missing.env")],
                       capture_output=True, text=True, env=clean, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 1 and "BINANCE_API_KEY is not set" in r.stderr
    keyed = dict(clean, BINANCE_API_KEY="k" * 64, BINANCE_API_SECRET="s" * 64)
    r = subprocess.run(base + ["--account-from-env", "--balance", "BTC=lots"],
                       capture_output=True, text=True, env=keyed, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 2 and "--balance 'BTC=lots'" in r.stderr
    r = subprocess.run(base + ["--account-from-env", "--market", "usdm", "--funding-rate", "1.5"],
                       capture_output=True, text=True, env=keyed, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 2 and "--funding-rate '1.5'" in r.stderr
    r = subprocess.run(base + ["--account-from-env", "--maker-rate", "2"],
                       capture_output=True, text=True, env=keyed, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 1 and "--maker-rate" in r.stderr
    assert "s" * 64 not in r.stdout + r.stderr


def test_simulate_usdm_account_for_live_testnet_usdm(tmp_path):
    """The same on USD-M: `hftmm simulate --market usdm --account-from-env` serves the
    futures order API for `hftmm live --testnet --market usdm` (leverage set, GTX quotes,
    listenKey stream), which ends with nothing open."""
    api_key, secret = "U" * 64, "u" * 64
    clean = {k: v for k, v in env().items() if not k.startswith("BINANCE_")}
    keyed = dict(clean, BINANCE_API_KEY=api_key, BINANCE_API_SECRET=secret)
    port = free_port()
    sim = subprocess.Popen(HFTMM + ["simulate", "--market", "usdm", "--port", str(port), "--speed", "1", "--seed", "5",
                                    "--account-from-env", "--balance", "USDT=5000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=keyed, cwd=str(tmp_path))
    try:
        lines = [sim.stdout.readline().strip() for _ in range(3)]
        assert lines[2] == "order entry: account registered (HMAC key from the environment)", lines
        live_env = dict(keyed, HFTMM_RISK_LATENCY_THRESHOLD_MS="2000", HFTMM_TRADING_QUOTE_REFRESH_INTERVAL="0.05",
                        HFTMM_TRADING_ORDER_SIZE="0.002")
        r = subprocess.run(HFTMM + ["live", "--testnet", "--market", "usdm", "--leverage", "3", "--symbol", "BTCUSDT",
                                    "--rest-url", f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}",
                                    "--duration", "4", "--no-status"],
                           capture_output=True, text=True, timeout=90, env=live_env, cwd=str(tmp_path))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim_out, sim_err = sim.communicate(timeout=15)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "open_orders=0" in r.stdout and "orders_sent=0" not in r.stdout, r.stdout[-2000:]
    assert sim.returncode == 0, sim_err[-2000:]
    assert "marginType=CROSSED leverage=3" in r.stdout, r.stdout[-2000:]
    everything = r.stdout + r.stderr + sim_out + sim_err + "".join(lines)
    assert api_key not in everything and secret not in everything
