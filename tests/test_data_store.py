"""The event store's promises: a conversion that fails (a full disk) leaves the
previous files and no partial one; local_ts never goes back in a file (refused
when writing and when reading, naming the file and the row); unreadable files
and missing folders are DataErrors naming the path; available_dates /
available_symbols answer from names and footers."""
import gzip
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hftcore import EV_TRADE, EVENT_DTYPE, EVF_BEGIN, EVF_END
from hftmm.cli_data import build_parser, run
from hftmm.data import store
from hftmm.data.convert import convert
from hftmm.data.store import EventWriter, available_dates, available_symbols, read_events, read_metadata
from hftmm.errors import DataError

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
UNITS = dict(tick_size="0.01", lot_size="0.00000001", progress=False)
DAY9 = 1723161600 * 10**9      # 2024-08-09 00:00 UTC


def _all(path, symbol=None, **kw):
    chunks = list(read_events(path, symbol, **kw))
    return np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)


def trades(ts, first_id=1):
    ev = np.zeros(len(ts), EVENT_DTYPE)
    ev["local_ts"] = ev["exch_ts"] = ts
    ev["px"], ev["qty"], ev["kind"], ev["flags"] = 100, 1, EV_TRADE, EVF_BEGIN | EVF_END
    ev["first_id"] = ev["last_id"] = np.arange(first_id, first_id + len(ts))
    return ev


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    convert([CAPTURE], str(out), **UNITS)
    return str(out)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


# -- writing: full disk ------------------------------------------------------------
FULL = r"""
import resource, signal, sys
sys.path[:0] = {path!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # EFBIG, as a full disk
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
from hftmm.cli_data import main
sys.exit(main(["data", "convert", {capture!r}, "--out", {out!r}, "--tick-size", "0.01",
               "--lot-size", "0.00000001", "--no-progress"]))
"""


@pytest.mark.parametrize("existing", [False, True])
def test_convert_on_a_full_disk_leaves_no_partial_file(tmp_path, existing):
    """The Parquet writer fails part-way (RLIMIT_FSIZE): exit 2 with one line
    naming the file; no temporary file is left and a previous store file is
    untouched (today: a truncated file that crashes later backtests)."""
    out = tmp_path / "store"
    day = out / "BTCUSDT" / "2024-08-08.parquet"
    if existing:
        convert([CAPTURE], str(out), **UNITS)
        before = day.read_bytes()
    r = subprocess.run([sys.executable, "-c", FULL.format(path=sys.path, limit=300_000, capture=CAPTURE, out=str(out))],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("hftmm data:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr[-3000:]
    assert str(day) in errors[0] and "cannot write" in errors[0] and "File too large" in errors[0]
    if existing:
        assert _files(out) == ["BTCUSDT/2024-08-08.parquet"] and day.read_bytes() == before
        assert len(_all(str(out), "BTCUSDT")) == 191910
    else:
        assert [f for f in _files(out) if f.endswith((".parquet", ".tmp"))] == []


def test_writer_leaving_with_an_error_deletes_its_files(tmp_path):
    with pytest.raises(RuntimeError):
        with EventWriter(str(tmp_path), "X", "1", "1", row_group_rows=2) as w:
            w.write(trades([DAY9, DAY9 + 1, DAY9 + 2]))       # a row group is on disk (temporary)
            assert any(f.endswith(".tmp") for f in _files(tmp_path))
            raise RuntimeError("interrupted")
    assert [f for f in _files(tmp_path) if f.endswith((".parquet", ".tmp"))] == []


def test_files_appear_only_when_the_run_completes(tmp_path):
    w = EventWriter(str(tmp_path), "X", "1", "1", row_group_rows=2)
    w.write(trades([DAY9 - 1, DAY9, DAY9 + 1]))               # two days
    w.finish()
    assert [f for f in _files(tmp_path) if f.endswith(".parquet")] == []   # complete, not yet renamed
    assert w.commit() == [str(tmp_path / "X" / "2024-08-08.parquet"), str(tmp_path / "X" / "2024-08-09.parquet")]
    assert _files(tmp_path) == ["X/2024-08-08.parquet", "X/2024-08-09.parquet"]
    assert list(_all(str(tmp_path), "X")["first_id"]) == [1, 2, 3]


# -- local_ts order ------------------------------------------------------------------
def test_writer_refuses_local_ts_going_back(tmp_path):
    w = EventWriter(str(tmp_path), "X", "1", "1")
    w.write(trades([DAY9 + 10, DAY9 + 20]))
    with pytest.raises(DataError, match=r"X/2024-08-09.parquet: local_ts goes back at row 3: "
                                        + str(DAY9 + 25) + " after " + str(DAY9 + 30)):
        w.write(trades([DAY9 + 30, DAY9 + 25]))
    with pytest.raises(DataError, match=r"2024-08-09.parquet: local_ts goes back at row 2"):
        w.write(trades([DAY9 + 5]))                           # before the day file's last row
    w.abort()
    # equal times are in order; and another day's file may come later in the run
    with EventWriter(str(tmp_path / "ok"), "X", "1", "1") as w:
        w.write(trades([DAY9 + 10, DAY9 + 10]))
        w.write(trades([DAY9 - 10]))                          # 2024-08-08: its own file
    assert available_dates(str(tmp_path / "ok")) == ["2024-08-08", "2024-08-09"]


def test_convert_refuses_a_capture_with_times_going_back(tmp_path, capsys):
    lines = [ln for ln in gzip.open(CAPTURE).read().split(b"\n") if ln]
    src = tmp_path / "btcusdt_reversed.gz"
    src.write_bytes(gzip.compress(b"\n".join(lines[::-1]) + b"\n"))
    with pytest.raises(DataError) as e:
        convert([str(src)], str(tmp_path / "s"), normalize=False, **UNITS)
    msg = str(e.value)
    assert msg.startswith(f"{src}: ") and "BTCUSDT/2024-08-08.parquet: local_ts goes back at row" in msg
    assert "\n" not in msg and not (tmp_path / "s" / "BTCUSDT" / "2024-08-08.parquet").exists()
    rc = run(build_parser().parse_args(["data", "convert", str(src), "--out", str(tmp_path / "s"), "--tick-size",
                                        "0.01", "--lot-size", "0.00000001", "--no-progress"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"hftmm data: {msg}"]
    assert [f for f in _files(tmp_path / "s") if f.endswith((".parquet", ".tmp"))] == []


def test_convert_refuses_a_csv_with_times_going_back(tmp_path):
    p = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    p.write_text("3720186041,61837.64000000,0.01000000,618.37640000,1723161255209,False,True\n"
                 "3720186040,61837.63000000,0.00100000,61.83763000,1723161255208,True,True\n")
    with pytest.raises(DataError, match=r"BTCUSDT-trades-2024-08-08.csv: .*local_ts goes back at row 1"):
        convert([str(p)], str(tmp_path / "s"), **UNITS)


def _rewrite(path, ev, like=None):
    """Write ``ev`` to ``path`` with the metadata of the store file ``like`` (default:
    ``path`` itself), as a user's tool rewriting a store file would."""
    meta = pq.read_schema(like or path).metadata
    pq.write_table(store.to_table(ev).replace_schema_metadata(meta), path)


def test_read_refuses_a_store_with_reversed_times(tmp_path, real_store):
    """A store whose rows were reversed backtested to 0 trades with exit 0:
    read_events names the file and the first row where local_ts goes back."""
    ev = _all(real_store, "BTCUSDT")
    path = str(tmp_path / "BTCUSDT" / "2024-08-08.parquet")
    os.makedirs(os.path.dirname(path))
    src = os.path.join(real_store, "BTCUSDT", "2024-08-08.parquet")
    _rewrite(path, ev[::-1].copy(), like=src)
    with pytest.raises(DataError) as e:
        _all(str(tmp_path), "BTCUSDT")
    first = int(np.flatnonzero(np.diff(ev[::-1]["local_ts"]) < 0)[0]) + 1
    assert str(e.value).startswith(f"{path}: local_ts goes back at row {first}: ")
    # one swapped pair deep in the file, found across batch boundaries
    bad = ev.copy()
    k = int(np.flatnonzero(np.diff(ev["local_ts"]) > 0)[-5])
    bad[[k, k + 1]] = bad[[k + 1, k]]
    _rewrite(path, bad, like=src)
    with pytest.raises(DataError, match=rf"2024-08-08.parquet: local_ts goes back at row {k + 1}: "):
        _all(str(tmp_path), "BTCUSDT", batch_rows=1000)
    # a range that does not touch the file's bad row still reads the whole file: refused too
    with pytest.raises(DataError):
        _all(str(tmp_path), "BTCUSDT", end=int(ev["local_ts"][10]))


def test_read_refuses_a_day_file_earlier_than_the_one_before(tmp_path):
    with EventWriter(str(tmp_path), "X", "1", "1") as w:
        w.write(trades([DAY9 - 10, DAY9 + 10]))
    later = str(tmp_path / "X" / "2024-08-09.parquet")
    _rewrite(later, trades([DAY9 - 20]))       # day 9's file holds a time of day 8
    with pytest.raises(DataError, match=r"2024-08-09.parquet: local_ts goes back at row 0, earlier than the last "
                                        r"row of .*2024-08-08.parquet"):
        _all(str(tmp_path), "X")


def test_real_captures_convert_and_read_cleanly(tmp_path):
    """Every real capture converts, and its store reads back with local_ts in
    order. exch_ts is not in order in real data (and is not required to be):
    streams interleave in receive order, spot snapshots and bookTickers carry none."""
    inputs = [CAPTURE, os.path.join(DATA, "cryptofeed", "BINANCE.ws.1.0"),
              os.path.join(DATA, "cryptofeed", "BINANCE_FUTURES.ws.1.0")]
    exch_back = 0
    for i, src in enumerate(inputs):
        out = str(tmp_path / str(i))
        rep = convert([src], out, tick_size="0.00000001", lot_size="0.00000001", progress=False)
        assert rep.malformed == 0 and rep.files
        for sym in available_symbols(out):
            ev = _all(out, sym)
            assert len(ev) == rep.rows[sym] and (np.diff(ev["local_ts"]) >= 0).all()
            x = ev["exch_ts"][ev["exch_ts"] > 0]
            exch_back += int((np.diff(x) < 0).sum())
    assert exch_back > 0


# -- unreadable, missing, empty ----------------------------------------------------
def test_corrupt_parquet_files_are_named(tmp_path, real_store):
    root = tmp_path / "s"
    (root / "BTCUSDT").mkdir(parents=True)
    good = open(os.path.join(real_store, "BTCUSDT", "2024-08-08.parquet"), "rb").read()
    p = root / "BTCUSDT" / "2024-08-08.parquet"
    for blob, why in [(good[: len(good) // 2], "not a readable Parquet file"),
                      (b"PAR1" + os.urandom(1000), "not a readable Parquet file"),
                      (b"", "not a readable Parquet file")]:
        p.write_bytes(blob)
        for f in (lambda: _all(str(root), "BTCUSDT"), lambda: read_metadata(str(p)),
                  lambda: store.store_metadata(str(root), "BTCUSDT"),
                  lambda: store.min_feed_latency(str(root), "BTCUSDT")):
            with pytest.raises(DataError, match=why) as e:
                f()
            assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    # a row group damaged in the middle: found when read
    data = bytearray(good)
    for k in range(len(data) // 2, len(data) // 2 + 2000):
        data[k] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not a readable Parquet file") as e:
        _all(str(root), "BTCUSDT")
    assert str(e.value).startswith(str(p))
    # a Parquet file of other columns
    pq.write_table(pa.table({"ts": [1, 2]}), str(p))
    with pytest.raises(DataError, match=r"not an hftmm event store file: columns local_ts \(missing\)"):
        _all(str(root), "BTCUSDT")


def test_missing_store_folder(tmp_path):
    missing = str(tmp_path / "nothing")
    for f in (lambda: list(read_events(missing, "BTCUSDT")), lambda: store.store_metadata(missing, "BTCUSDT"),
              lambda: available_dates(missing, "BTCUSDT"), lambda: available_symbols(missing),
              lambda: store.min_feed_latency(missing, "BTCUSDT")):
        with pytest.raises(DataError, match=rf"^{missing}: no such file or folder"):
            f()


def test_no_files_in_range_gives_no_chunks(real_store, tmp_path):
    assert list(read_events(real_store, "BTCUSDT", "2024-08-10", "2024-08-11")) == []
    assert list(read_events(real_store, "ETHUSDT")) == []
    (tmp_path / "empty").mkdir()
    assert list(read_events(str(tmp_path / "empty"), "BTCUSDT")) == []
    with pytest.raises(DataError, match=r"no event store files for ETHUSDT \(symbols: BTCUSDT\)"):
        store.store_metadata(real_store, "ETHUSDT")


# -- what a store holds ------------------------------------------------------------
def test_available_dates_and_symbols(tmp_path, monkeypatch):
    root = str(tmp_path / "s")
    convert([os.path.join(DATA, "cryptofeed", "BINANCE.ws.1.0")], root, tick_size="0.00000001",
            lot_size="0.00000001", progress=False)
    spot = available_symbols(root)
    assert len(spot) == 4
    with EventWriter(root, "BTCUSDT", "0.01", "0.001") as w:
        w.write(trades([DAY9 - 5, DAY9 + 5, DAY9 + 86_400 * 10**9 * 2]))
    # names and footers only: no row is read
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: pytest.fail("rows read"))
    assert available_symbols(root) == sorted(spot + ["BTCUSDT"])
    assert available_dates(root, "BTCUSDT") == ["2024-08-08", "2024-08-09", "2024-08-11"]
    assert available_dates(root, "btcusdt") == ["2024-08-08", "2024-08-09", "2024-08-11"]
    assert available_dates(root, spot[0]) == ["2021-10-12"]
    assert available_dates(root) == ["2021-10-12", "2024-08-08", "2024-08-09", "2024-08-11"]
    assert available_dates(root, "NOSUCH") == []
    # one file, whatever its name: its metadata says the day (or the row-group statistics)
    one = str(tmp_path / "btc.parquet")
    os.rename(os.path.join(root, "BTCUSDT", "2024-08-11.parquet"), one)
    assert available_dates(one) == ["2024-08-11"] and available_symbols(one) == ["BTCUSDT"]
    pq.write_table(store.to_table(trades([DAY9 - 5, DAY9 + 5])), one)   # no hftmm metadata
    assert available_dates(one) == ["2024-08-08", "2024-08-09"] and available_symbols(one) == [""]
    # a flat folder of one symbol's day files
    flat = tmp_path / "flat"
    flat.mkdir()
    os.rename(os.path.join(root, "BTCUSDT", "2024-08-09.parquet"), flat / "2024-08-09.parquet")
    assert available_symbols(str(flat)) == ["BTCUSDT"] and available_dates(str(flat), "BTCUSDT") == ["2024-08-09"]
    assert available_dates(str(flat), "ETHUSDT") == []
    monkeypatch.undo()
    assert list(read_events(str(flat), "ETHUSDT")) == []       # another symbol's flat files are not read
    assert len(_all(str(flat), "BTCUSDT")) == 1


# -- inputs and help -----------------------------------------------------------------
def test_convert_and_verify_missing_inputs(tmp_path, capsys):
    missing = str(tmp_path / "nope.gz")
    with pytest.raises(DataError, match=rf"^{missing}: no such file$"):
        convert([CAPTURE, missing], str(tmp_path / "s"), **UNITS)
    assert not (tmp_path / "s").exists()                       # checked before anything is written
    with pytest.raises(DataError, match=rf"^{tmp_path}: not a file"):
        convert([str(tmp_path)], str(tmp_path / "s"), **UNITS)
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    with pytest.raises(DataError, match=rf"^{junk}: unknown input format; pass --format"):
        convert([str(junk)], str(tmp_path / "s"), **UNITS)
    for cmd in (["convert", missing, "--out", str(tmp_path / "s")], ["verify", missing], ["verify", str(tmp_path)]):
        rc = run(build_parser().parse_args(["data", *cmd]))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("hftmm data: ") and cmd[1] in err[0], err


def test_help_documents_every_option(capsys):
    import argparse

    parser = build_parser()
    data = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["data"]
    subs = next(a for a in data._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("convert", "verify"):
        p = subs[name]
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help, (name, a.dest)
            if a.default not in (None, False):
                assert "(default: " in p.formatter_class(prog="x")._get_help_string(a), (name, a.dest)
            elif a.option_strings and not a.required:
                assert "default" in a.help, (name, a.dest)     # says what happens when not given
        with pytest.raises(SystemExit):
            parser.parse_args(["data", name, "--help"])
        text = capsys.readouterr().out
        assert "(default: None)" not in text and "exit status" in text
    assert "(default: auto)" in subs["convert"].format_help()


def test_backtest_on_a_reversed_store_fails_naming_the_file(tmp_path, real_store):
    """The reproducer: a backtest of the reversed store ran to 0 trades with exit
    0; now the read stops it with the DataError naming the file."""
    from hftmm.backtesting import BacktestConfig, BacktestEngine

    ev = _all(real_store, "BTCUSDT")
    path = str(tmp_path / "BTCUSDT" / "2024-08-08.parquet")
    os.makedirs(os.path.dirname(path))
    _rewrite(path, ev[::-1].copy(), like=os.path.join(real_store, "BTCUSDT", "2024-08-08.parquet"))
    cfg = BacktestConfig(data_path=str(tmp_path), start_date="2024-08-08", end_date="2024-08-08")
    with pytest.raises(DataError, match=rf"^{path}: local_ts goes back at row "):
        BacktestEngine().run_backtest(cfg)
