"""A new user's first hour with the CLI: every mistake gets one line naming it, no
traceback, a non-zero exit; help says units and defaults; a range without data fails
at once instead of sampling since 1970; Ctrl-C ends a sweep and keeps its rows."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from hftmm.cli import build_parser

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURE = os.path.join(HERE, "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz")


def hftmm(*args: str, cwd=None, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process (timeout: a hang guard only)."""
    return subprocess.run([sys.executable, "-m", "hftmm.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess, prog: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errs = [ln for ln in lines if ln.startswith(f"{prog}: ")]
    assert len(errs) == 1, lines
    return errs[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "store"
    r = hftmm("data", "convert", CAPTURE, "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- configuration files
def test_missing_config_file(tmp_path):
    line = one_line_error(hftmm("backtest", "--config", str(tmp_path / "nope.toml")), "hftmm backtest")
    assert "nope.toml: no such config file" in line
    line = one_line_error(hftmm("live", "--config", str(tmp_path / "nope.toml")), "hftmm live")
    assert "nope.toml: no such config file" in line


def test_toml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('gamma = 0.1\nsymbol = "BTCUSDT\nseed = 3\n')
    line = one_line_error(hftmm("backtest", "--config", str(bad)), "hftmm backtest")
    assert "bad.toml: TOML syntax error" in line and "line 2" in line
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\ngamma = [0.1,, 0.2]\n")
    line = one_line_error(hftmm("sweep", "--grid", str(grid), "--out", str(tmp_path / "o")), "hftmm sweep")
    assert "grid.toml: TOML syntax error" in line and "line" in line


def test_bad_value_names_the_field(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[backtest]\npost_only = "no"\n')
    line = one_line_error(hftmm("backtest", "--config", str(cfg)), "hftmm backtest")
    assert "BacktestConfig.post_only" in line and "'no'" in line
    env = {**os.environ, "HFTMM_TRADING_POST_ONLY": "ture"}
    r = subprocess.run([sys.executable, "-m", "hftmm.cli", "live", "--duration", "1"], capture_output=True,
                       text=True, env=env, timeout=120)
    line = one_line_error(r, "hftmm live")
    assert "TradingConfig.post_only" in line and "'ture'" in line


# ---------------------------------------------------------------- data
def test_missing_data_folder(tmp_path):
    line = one_line_error(hftmm("backtest", "--data", str(tmp_path / "nowhere"), "--no-progress"),
                          "hftmm backtest")
    assert "nowhere" in line


def test_date_without_data_fails_at_once_in_bounded_memory(store, tmp_path):
    """Used to write one sample per second since 1970 (22 GB, OOM-killed)."""
    code = ("import sys\nfrom hftmm.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print('VMHWM_KB', hwm, file=sys.stderr)\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code, "backtest", "--data", store, "--date", "2024-08-09",
                        "--no-progress"], capture_output=True, text=True, timeout=120)
    kb = int(next(ln.split()[1] for ln in r.stderr.splitlines() if ln.startswith("VMHWM_KB")))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hftmm backtest: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-3000:]
    assert f"no data for BTCUSDT on 2024-08-09 in {store} (available: 2024-08-08)" in lines[0]
    assert kb < 200 * 1024, f"peak memory {kb / 1024:.0f} MB"
    # a range that overlaps the data runs on the days that have it
    r = hftmm("backtest", "--data", store, "--start-date", "2024-08-07", "--end-date", "2024-08-09", "--json",
              "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["events"] > 0


def test_kernel_without_events_samples_nothing():
    from hftmm.backtesting import BacktestConfig
    from hftmm.backtesting.engine import build_kernel

    k = build_kernel([BacktestConfig()], "0.01", "0.00001")
    k.finish(1_723_075_200_000_000_000)         # 2024-08-08, 54 years of seconds after 1970
    assert len(k.take_samples()) == 0


def test_corrupt_parquet_names_the_file(store, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(store, bad)
    f = next(os.path.join(d, n) for d, _, ns in os.walk(bad) for n in ns if n.endswith(".parquet"))
    with open(f, "r+b") as fh:
        fh.seek(os.path.getsize(f) // 2)
        fh.write(b"\0" * 4096)
        fh.seek(-12, os.SEEK_END)
        fh.write(b"garbagegarba")
    line = one_line_error(hftmm("backtest", "--data", str(bad), "--no-progress"), "hftmm backtest")
    assert os.path.basename(f) in line


# ---------------------------------------------------------------- endpoints
def test_record_and_live_with_nothing_listening(tmp_path):
    port = free_port()
    url = f"127.0.0.1:{port}"
    line = one_line_error(hftmm("record", "--rest-url", f"http://{url}", "--ws-url", f"ws://{url}",
                                "--out", str(tmp_path / "raw"), "--duration", "3"), "hftmm record")
    assert url in line and "listening" in line
    line = one_line_error(hftmm("live", "--paper", "--rest-url", f"http://{url}", "--ws-url", f"ws://{url}",
                                "--duration", "3", "--no-status"), "hftmm live")
    assert url in line and "listening" in line


# ---------------------------------------------------------------- sweeps
def _grid(tmp_path, body: str) -> str:
    g = tmp_path / "grid.toml"
    g.write_text(body)
    return str(g)


def test_sweep_where_every_combination_failed_exits_non_zero(tmp_path):
    grid = _grid(tmp_path, '[base]\nstart_date = "2024-08-08"\nend_date = "2024-08-08"\n'
                           "[grid]\ngamma = [-1.0, -2.0]\n")
    r = hftmm("sweep", "--grid", grid, "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress",
              "--synthetic-seconds", "5")
    assert r.returncode == 1, r.stderr[-2000:]
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("hftmm sweep: every combination failed")]
    assert len(errs) == 1 and "BacktestConfig.gamma" in errs[0] and '"gamma": -1.0' in errs[0], r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_a_sweep_and_keeps_the_finished_rows(tmp_path):
    out = tmp_path / "out"
    grid = _grid(tmp_path, '[base]\nstart_date = "2024-08-08"\nend_date = "2024-08-08"\n'
                           "[grid]\ngamma = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]\n"
                           'queue_model = ["risk_averse", "power"]\n')
    # one combination per job, two workers, each job long enough (2 h of synthetic market) that the
    # sweep is far from done when the first rows appear, even on a loaded machine
    proc = subprocess.Popen([sys.executable, "-m", "hftmm.cli", "sweep", "--grid", grid, "--out", str(out),
                             "--workers", "2", "--group-size", "1", "--no-progress", "--synthetic-seconds", "7200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as at a terminal: a suite started in the background (nohup, &)
                            # has SIGINT ignored, and a child would inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.parquet"
    guard = time.monotonic() + 600
    while not results.exists() and proc.poll() is None and time.monotonic() < guard:
        time.sleep(0.05)
    assert results.exists() and proc.poll() is None, "the first rows were written while it ran"
    workers = _children(proc.pid)
    assert workers
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    stop_s = time.monotonic() - t0
    print(f"sweep stopped {stop_s:.2f} s after SIGINT")
    assert proc.returncode == 130 and "hftmm sweep: interrupted" in err and "Traceback" not in err, err[-3000:]
    rows = pq.read_table(results).to_pandas()
    assert 1 <= len(rows) < 16 and (rows["status"] == "ok").all()
    # the workers were ended, not waited for: none is left, and no later row appeared
    assert not [p for p in workers if os.path.exists(f"/proc/{p}")]
    assert len(pq.read_table(results)) == len(rows)
    # --resume runs only what is missing
    r = hftmm("sweep", "--grid", grid, "--out", str(out), "--resume", "--workers", "1", "--no-progress",
              "--synthetic-seconds", "60")
    assert r.returncode == 0 and len(pq.read_table(results)) == 16, r.stderr[-2000:]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------- help and version
def _parsers(parser: argparse.ArgumentParser, path=("hftmm",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_option_has_help_with_its_default():
    seen = 0
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            seen += 1
            name = action.option_strings[-1] if action.option_strings else action.dest
            assert action.help and action.help.strip(), f"{' '.join(path)} {name}: no help"
            shown = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, list)
            if shown:
                assert f"(default: {action.default})" in " ".join(text.split()), f"{' '.join(path)} {name}"
    assert seen > 80


def test_version_and_sweep_grid_format_in_help():
    import hftmm

    r = hftmm_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hftmm {hftmm.__version__}"
    text = build_parser()._subparsers._group_actions[0].choices["sweep"].format_help()
    for part in ("[base]", "[grid]", "[random]", "[analysis]", "gamma = [0.05, 0.1, 0.5]"):
        assert part in text


def hftmm_cli(*args):
    return subprocess.run([sys.executable, "-m", "hftmm.cli", *args], capture_output=True, text=True, timeout=60)
