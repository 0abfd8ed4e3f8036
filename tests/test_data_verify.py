"""hftmm data verify: real captures pass; gaps, corruption and truncation are
reported (exit non-zero) and never raise; split captures verify as one stream."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from hftmm.cli_data import build_parser, run

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _verify(capsys, *argv):
    rc = run(build_parser().parse_args(["data", "verify", *argv, "--json"]))
    return rc, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def lines():
    return gzip.open(CAPTURE).read().split(b"\n")


def test_real_capture_ok(capsys):
    rc, res = _verify(capsys, CAPTURE)
    assert rc == 0 and res["ok"]
    s = res["symbols"]["BTCUSDT"]
    assert s["market"] == "spot" and s["tick_size"] == "0.01"
    assert s["messages"] == 41249 and s["ticker_checks"] == 564 and s["ticker_mismatches"] == 0
    assert s["gaps"] == 0 and s["crossed"] == 0 and not s["unrecovered"]


def test_json_shape(capsys):
    rc, res = _verify(capsys, CAPTURE, "--tick-size", "0.01", "--lot-size", "0.00000001")
    assert set(res) == {"ok", "files", "symbols", "totals"}
    assert set(res["files"][0]) >= {"path", "lines", "malformed", "truncated", "corrupt", "errors"}
    assert set(res["totals"]) >= {"messages", "depth_updates", "gaps", "resyncs", "ticker_checks",
                                  "ticker_mismatches", "crossed", "malformed_lines", "unrecovered"}
    assert res["symbols"]["BTCUSDT"]["lot_size"] == "0.00000001"


def test_text_report(capsys):
    assert run(build_parser().parse_args(["data", "verify", CAPTURE])) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT (spot" in out and out.strip().endswith("OK")


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_cryptofeed_captures(capsys, market):
    prefix = "BINANCE" if market == "spot" else "BINANCE_FUTURES"
    ws = os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0")
    # 2021 spot snapshots hold levels off the price grid the stream uses: 1e-8 units
    extra = ["--tick-size", "0.00000001", "--lot-size", "0.00000001"] if market == "spot" else []
    rc, res = _verify(capsys, ws, *extra)
    assert rc == 0, res
    assert len(res["symbols"]) == 4 and all(s["market"] == market for s in res["symbols"].values())


def test_removed_line_is_a_gap(tmp_path, capsys, lines):
    # drop a depth update from the middle
    i = next(k for k in range(len(lines) // 2, len(lines)) if b"@depth" in lines[k])
    p = tmp_path / "btcusdt_gap.gz"
    p.write_bytes(gzip.compress(b"\n".join(lines[:i] + lines[i + 1:])))
    rc, res = _verify(capsys, str(p))
    s = res["symbols"]["BTCUSDT"]
    assert rc != 0 and not res["ok"]
    assert s["gaps"] >= 1 and s["unrecovered"]


def test_truncated_gzip_reported(tmp_path, capsys):
    data = open(CAPTURE, "rb").read()
    p = tmp_path / "btcusdt_trunc.gz"
    p.write_bytes(data[: len(data) // 2])
    rc, res = _verify(capsys, str(p))
    assert rc != 0 and res["files"][0]["truncated"]
    assert any("truncated" in e for e in res["files"][0]["errors"])
    assert res["symbols"]["BTCUSDT"]["messages"] > 1000


def test_corrupt_gzip_reported(tmp_path, capsys):
    data = bytearray(open(CAPTURE, "rb").read())
    for k in range(len(data) // 3, len(data) // 3 + 64):
        data[k] ^= 0x5A
    p = tmp_path / "btcusdt_corrupt.gz"
    p.write_bytes(bytes(data))
    rc, res = _verify(capsys, str(p))
    f = res["files"][0]
    assert rc != 0 and (f["corrupt"] or f["truncated"] or f["malformed"])


def test_garbage_and_binary_junk_lines(tmp_path, capsys, lines):
    bad = lines[:100] + [b"garbage", b"\x00\x01\xff\xfe junk", b"123 {not json"] + lines[100:]
    p = tmp_path / "btcusdt_junk.gz"
    p.write_bytes(gzip.compress(b"\n".join(bad)))
    rc, res = _verify(capsys, str(p))
    assert rc != 0
    assert res["files"][0]["malformed"] == 2 and res["symbols"]["BTCUSDT"]["malformed"] == 1


def test_not_gzip_at_all(tmp_path, capsys):
    p = tmp_path / "btcusdt_x.gz"
    p.write_bytes(b"\x1f\x8b" + os.urandom(5000))
    rc, res = _verify(capsys, str(p))
    assert rc != 0 and (res["files"][0]["corrupt"] or res["files"][0]["truncated"])


def test_two_files_continuing_each_other(tmp_path, capsys, lines):
    half = len(lines) // 2
    a, b = tmp_path / "btcusdt_part1.gz", tmp_path / "btcusdt_part2.gz"
    a.write_bytes(gzip.compress(b"\n".join(lines[:half]) + b"\n"))
    b.write_bytes(gzip.compress(b"\n".join(lines[half:])))
    rc, res = _verify(capsys, str(b), str(a))          # any order: sorted by first time
    s = res["symbols"]["BTCUSDT"]
    assert rc == 0, res
    assert s["messages"] == 41249 and s["ticker_checks"] == 564 and s["gaps"] == 0
    # the second half alone has no snapshot: never synced
    rc2, res2 = _verify(capsys, str(b))
    assert rc2 != 0 and res2["symbols"]["BTCUSDT"]["unrecovered"]


def test_subprocess(tmp_path):
    code = ("import sys; from hftmm.cli_data import main; "
            f"sys.exit(main(['data', 'verify', {CAPTURE!r}, '--json']))")
    env = dict(os.environ)  # import hftmm as this process does; run outside the source tree (cwd)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True
    p = tmp_path / "btcusdt_trunc.gz"
    p.write_bytes(open(CAPTURE, "rb").read()[:300_000])
    code = code.replace(repr(CAPTURE), repr(str(p)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize("prefix", ["BINANCE", "BINANCE_FUTURES"])
def test_cryptofeed_blank_last_line_is_not_malformed(prefix):
    # the .http logs end with a blank line: neither a line nor malformed
    from hftmm.captures import CaptureStats, read_cryptofeed

    http = os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0")
    assert open(http, "rb").read().endswith(b"\n\n")
    cs = CaptureStats()
    list(read_cryptofeed(os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0"), http, stats=cs))
    assert cs.malformed == 0 and cs.errors == []
    n = sum(1 for p in (http, http.replace(".http.0.0", ".ws.1.0")) for line in open(p, "rb") if line.strip())
    assert cs.lines == n
