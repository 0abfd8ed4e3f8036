"""Hostile input to the capture readers, ``data verify`` and ``data convert``:
gzip bombs (a line of hundreds of MiB from a file of a few hundred KB), lines
over the 16 MiB limit, bookTicker-only captures. Memory stays bounded (peak RSS
measured in a subprocess: a memory bound, not a time bound), the over-long line
is one malformed line, and every valid line around it is still read. (Peak
RSS is the child's VmHWM: its ru_maxrss would include the parent's, Linux
keeps it across exec.)"""
import gzip
import json
import os
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest

from hftmm.captures import MAX_LINE_BYTES, CaptureStats, RawMessage, read_collector, read_cryptofeed, split_lines
from hftmm.cli_data import build_parser, run
from hftmm.data.convert import convert
from hftmm.data.store import read_events
from hftmm.errors import DataError
from hftmm.verify import verify_messages

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
BOMB_MIB = 320          # expands from ~330 KB; today's readers held it whole (and copies)
RSS_LIMIT_MB = 300
UNITS = ["--tick-size", "0.01", "--lot-size", "0.00000001"]


@pytest.fixture(scope="module")
def lines():
    return gzip.open(CAPTURE).read().split(b"\n")


def write_bomb(path, before: bytes, n_bytes: int, after: bytes = b"", fill: bytes = b"a") -> None:
    """gzip of ``before + <n_bytes of fill> + after``, compressed as a stream
    (1 MiB at a time: never held), ~1000:1."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = fill * (1 << 20)
    with open(path, "wb") as fh:
        fh.write(comp.compress(before))
        for _ in range(n_bytes >> 20):
            fh.write(comp.compress(block))
        fh.write(comp.compress(fill * (n_bytes & ((1 << 20) - 1))))
        fh.write(comp.compress(after))
        fh.write(comp.flush())


BOMB_PREFIX = b'1723161500000000000 {"stream":"btcusdt@trade","data":{"e":"trade","x":"'


@pytest.fixture(scope="module")
def bomb(tmp_path_factory, lines):
    """The real capture with a 320 MiB line (no JSON end) after its first half."""
    half = len(lines) // 2
    p = tmp_path_factory.mktemp("bomb") / "btcusdt_bomb.gz"
    write_bomb(p, b"\n".join(lines[:half]) + b"\n" + BOMB_PREFIX, BOMB_MIB << 20, b"\n" + b"\n".join(lines[half:]))
    assert os.path.getsize(p) < 2_000_000
    return str(p), half + 1


PEAK = """
def peak_kb():
    # VmHWM: the peak RSS of this process image. ru_maxrss is not: Linux keeps
    # it across execve, so a child of a big pytest process reports the parent's.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""


def run_peak(argv, cwd):
    """``hftmm <argv>`` in a fresh process: (exit status, stdout, stderr, peak RSS in MB)."""
    code = (PEAK + "import sys\n"
            "from hftmm.cli_data import main\n"
            f"rc = main({argv!r})\n"
            "sys.stdout.flush()\n"
            "print('MAXRSS', peak_kb(), file=sys.stderr)\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(cwd), timeout=300)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("MAXRSS"), r.stderr[-3000:]
    return r.returncode, r.stdout, r.stderr, int(last.split()[1]) / 1024


def test_verify_gzip_bomb_bounded_memory(bomb, tmp_path):
    path, bad_line = bomb
    rc, out, err, peak = run_peak(["data", "verify", path, "--json"], tmp_path)
    assert peak < RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"
    res = json.loads(out)
    f = res["files"][0]
    assert rc == 1 and not res["ok"]
    assert f["malformed"] == 1 and f["lines"] == 41250
    assert any(e.startswith(f"{path}:{bad_line}: line longer than") for e in f["errors"]), f["errors"]
    s = res["symbols"]["BTCUSDT"]
    # every real line around it is read, and the book checks are those of the clean capture
    assert s["messages"] == 41249 and s["malformed"] == 0
    assert s["ticker_checks"] == 564 and s["ticker_mismatches"] == 0 and s["gaps"] == 0


def test_convert_gzip_bomb_bounded_memory(bomb, tmp_path):
    path, bad_line = bomb
    rc, out, err, peak = run_peak(["data", "convert", path, "--out", str(tmp_path / "s"), *UNITS, "--json"], tmp_path)
    assert peak < RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"
    rep = json.loads(out)
    assert rc == 1      # written, with a problem to report
    assert rep["malformed"] == 1 and rep["lines"] == 41250
    assert f"{path}:{bad_line}: line longer than {MAX_LINE_BYTES} bytes (skipped)" in rep["problems"]
    # the store is the clean capture's: nothing valid lost
    assert rep["rows"]["BTCUSDT"] == 191910 and rep["books"]["BTCUSDT"]["applied"] == 3449


def test_csv_gzip_bomb_refused_with_bounded_memory(tmp_path):
    """A data.binance.vision trades CSV with a 320 MiB row: refused (a CSV row
    cannot be skipped safely), naming the file; memory bounded; nothing written."""
    p = tmp_path / "BTCUSDT-trades-2024-08-08.csv.gz"
    good = (b"3720186040,61837.63000000,0.00100000,61.83763000,1723161255208,True,True\n"
            b"3720186041,61837.64000000,0.01000000,618.37640000,1723161255209,False,True\n")
    write_bomb(p, good + b"3720186042,", BOMB_MIB << 20, b",1,1,1723161255210,True,True\n", fill=b"9")
    rc, out, err, peak = run_peak(["data", "convert", str(p), "--out", str(tmp_path / "s"), "--format",
                                   "binance-trades", *UNITS], tmp_path)
    assert peak < RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"
    msg = [ln for ln in err.splitlines() if ln.startswith("hftmm data:")]
    assert rc == 2 and len(msg) == 1, err[-2000:]
    assert str(p) in msg[0] and "longer than 16 MiB" in msg[0]
    assert not os.path.exists(tmp_path / "s" / "BTCUSDT") or os.listdir(tmp_path / "s" / "BTCUSDT") == []


# -- the limit itself (16 MiB lines: cheap to build) --------------------------------
def _collector_with(tmp_path, lines, n_long, at, newline=True):
    """The capture's first lines with a line of n_long bytes inserted at index ``at``."""
    p = tmp_path / f"btcusdt_{n_long}_{at}.gz"
    long_line = BOMB_PREFIX + b"a" * (n_long - len(BOMB_PREFIX))
    body = lines[:at] + [long_line] + lines[at:]
    p.write_bytes(gzip.compress(b"\n".join(body) + (b"\n" if newline else b""), 1))
    return str(p)


@pytest.mark.parametrize("n,over", [(MAX_LINE_BYTES, False), (MAX_LINE_BYTES + 1, True)])
def test_line_limit_is_exact(tmp_path, capsys, lines, n, over):
    good = [ln for ln in lines[:2000] if ln]
    path = _collector_with(tmp_path, good, n, 1000)
    what = "longer than" if over else "unterminated string"   # at the limit: read, then malformed JSON
    rc = run(build_parser().parse_args(["data", "verify", path, *UNITS, "--json"]))
    res = json.loads(capsys.readouterr().out)
    f, s = res["files"][0], res["symbols"]["BTCUSDT"]
    assert rc == 1 and f["lines"] == 2001
    assert (f["malformed"], s["malformed"], s["messages"]) == ((1, 0, 2000) if over else (0, 1, 2001))
    rep = convert([path], str(tmp_path / "s"), tick_size="0.01", lot_size="0.00000001", progress=False)
    assert rep.malformed == 1 and rep.lines == 2001
    assert any(p.startswith(f"{path}:1001:") and what in p for p in rep.problems), rep.problems
    clean = convert([_collector_with(tmp_path, good, 0, 0)], str(tmp_path / "c"), tick_size="0.01",
                    lot_size="0.00000001", progress=False)   # a 0-byte "line" is the prefix: malformed too
    assert rep.rows == clean.rows


def test_overlong_last_line_without_newline(tmp_path, capsys, lines):
    """The gzip-bomb shape: the file ends inside the over-long line."""
    good = [ln for ln in lines[:3000] if ln]
    path = _collector_with(tmp_path, good, MAX_LINE_BYTES + 5, len(good), newline=False)
    rc = run(build_parser().parse_args(["data", "verify", path, *UNITS, "--json"]))
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["files"][0]["malformed"] == 1 and res["symbols"]["BTCUSDT"]["messages"] == 3000
    rep = convert([path], str(tmp_path / "s"), tick_size="0.01", lot_size="0.00000001", progress=False)
    direct = convert([_collector_with(tmp_path, good, 0, 0)], str(tmp_path / "d"), tick_size="0.01",
                     lot_size="0.00000001", progress=False)
    assert rep.malformed == 1 and rep.lines == 3001 and rep.rows == direct.rows
    st = CaptureStats()
    msgs = list(read_collector(path, "BTCUSDT", stats=st))
    assert len(msgs) == 3000 and st.malformed == 1 and "longer than" in st.errors[0]


def test_cryptofeed_overlong_line(tmp_path):
    """cryptofeed logs are plain text: an over-long .ws line is one malformed
    line; the messages around it are read and converted as without it."""
    ws = os.path.join(DATA, "cryptofeed", "BINANCE_FUTURES.ws.1.0")
    http = os.path.join(DATA, "cryptofeed", "BINANCE_FUTURES.http.0.0")
    src = open(ws, "rb").read().split(b"\n")
    mid = len(src) // 2
    bad = tmp_path / "BINANCE_FUTURES.ws.1.0"
    with open(bad, "wb") as fh:
        fh.write(b"\n".join(src[:mid]) + b"\n1626992741.9: " + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
        fh.write(b"\n".join(src[mid:]))
    os.symlink(http, tmp_path / "BINANCE_FUTURES.http.0.0")
    st = CaptureStats()
    got = [(m.local_ns, m.payload) for m in read_cryptofeed(str(bad), str(tmp_path / "BINANCE_FUTURES.http.0.0"), stats=st)]
    want = [(m.local_ns, m.payload) for m in read_cryptofeed(ws, http)]
    assert got == want and st.malformed == 1 and f"{bad}:{mid + 1}" in st.errors[0]
    rep = convert([str(bad)], str(tmp_path / "s"), tick_size="0.00000001", lot_size="0.00000001", progress=False)
    ref = convert([ws], str(tmp_path / "r"), tick_size="0.00000001", lot_size="0.00000001", progress=False)
    assert rep.malformed == 1 and rep.rows == ref.rows and ref.malformed == 0
    for sym in ref.rows:
        a = np.concatenate(list(read_events(str(tmp_path / "s"), sym)))
        b = np.concatenate(list(read_events(str(tmp_path / "r"), sym)))
        assert np.array_equal(a, b), sym


def test_split_lines_any_chunking():
    """The bounded splitter gives what bytes.split gives (an over-long line as
    one None), whatever the chunk boundaries."""
    import random
    rnd = random.Random(3)
    for _ in range(2000):
        data = bytes(rnd.choice(b"ab\n") for _ in range(rnd.randint(0, 50)))
        limit = rnd.randint(0, 7)
        chunks, i = [], 0
        while i < len(data):
            k = rnd.randint(0, 5)
            chunks.append(data[i:i + k])
            i += k
        want = data.split(b"\n")
        if want[-1] == b"":
            want.pop()
        assert list(split_lines(chunks, limit)) == [None if len(x) > limit else x for x in want]


# -- bounded verification state ------------------------------------------------------
def _book_tickers(n, start_u=1000):
    for i in range(n):
        yield RawMessage(1723161600000000000 + i, "btcusdt@bookTicker",
                         b'{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"61837.63000000",'
                         b'"B":"1.00000000","a":"61837.64000000","A":"2.00000000"}}' % (start_u + i))


def test_bookticker_only_capture_bounded_state():
    """bookTickers with no depth event to check them against: the replay keeps
    at most ``history`` of them waiting (today: all of them, 3.2 GB for 1 GiB)."""
    tracemalloc.start()
    try:
        rep = verify_messages(_book_tickers(50_000), "0.01", "0.00000001", symbol="BTCUSDT", history=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.book_tickers == 50_000 and rep.ticker_checks == 0 and rep.malformed == 0
    assert peak < 5_000_000, f"{peak / 1e6:.1f} MB traced"    # 50k waiting bookTickers: ~47 MB


def test_bookticker_before_its_depth_event_is_still_checked(lines):
    """Bounded waiting keeps what can still be compared: the real capture's
    checks (bookTickers often arrive before the depth event with their id) hold
    even with a small history."""
    msgs = list(read_collector(CAPTURE, symbol="BTCUSDT"))
    rep = verify_messages(msgs, "0.01", "0.00000001", symbol="BTCUSDT", history=200)
    assert rep.ticker_checks == 564 and rep.ticker_mismatches == 0


def test_history_must_be_positive():
    with pytest.raises(ValueError):
        verify_messages([], "0.01", "0.01", history=0)


def test_tardis_message_longer_than_the_bound_refused(tmp_path, monkeypatch):
    import hftmm.data.convert as conv

    monkeypatch.setattr(conv, "MAX_MESSAGE_ROWS", 2)
    p = tmp_path / "binance_incremental_book_L2_2024-08-09_BTCUSDT.csv"
    p.write_text("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
                 + "".join(f"binance,BTCUSDT,1723161600000000,1723161600001000,true,ask,6183{i}.64,1.5\n"
                           for i in range(5)))
    with pytest.raises(DataError, match=r"binance_incremental_book_L2_2024-08-09_BTCUSDT.csv: a BTCUSDT book "
                                        r"message of more than 2 rows"):
        convert([str(p)], str(tmp_path / "s"), tick_size="0.01", lot_size="0.1", progress=False)
    assert not (tmp_path / "s" / "BTCUSDT").exists() or not os.listdir(tmp_path / "s" / "BTCUSDT")
