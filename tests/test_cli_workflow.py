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
import time

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
