"""hftmm data convert: every input format into the Parquet event store and back."""
import gzip
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from hftcore import ASK, BID, EV_BBO, EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVENT_DTYPE, EVF_BEGIN, EVF_END, NO_ID
from hftcore.binance import BinanceDecoder
from hftcore.sync import EventNormalizer
from hftmm.captures import group_by_symbol, read_cryptofeed
from hftmm.cli_data import build_parser, run
from hftmm.data.convert import convert, detect_format
from hftmm.data.store import SCHEMA, EventWriter, read_events, read_metadata

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _all(path, symbol=None, **kw):
    chunks = list(read_events(path, symbol, **kw))
    assert all(c.dtype == EVENT_DTYPE for c in chunks)
    return np.concatenate(chunks, dtype=EVENT_DTYPE) if chunks else np.zeros(0, EVENT_DTYPE)


def _normalised(ev, market="spot"):
    return EventNormalizer(market).feed(ev)


def test_collector_round_trip_equals_direct_decoding(tmp_path):
    # --raw: the receive order, exactly as decoded
    rep = convert([CAPTURE], str(tmp_path), tick_size="0.01", lot_size="0.00000001", progress=False,
                  normalize=False)
    assert rep.malformed == 0 and rep.lines == 41249
    direct, _ = BinanceDecoder("0.01", "0.00000001").decode_lines(gzip.open(CAPTURE).read(), final=True)
    back = _all(str(tmp_path), "BTCUSDT")
    assert np.array_equal(back, direct)
    [path] = rep.files
    assert path.endswith(os.path.join("BTCUSDT", "2024-08-08.parquet"))
    meta = read_metadata(path)
    assert meta["symbol"] == "BTCUSDT" and meta["market"] == "spot"
    assert meta["tick_size"] == "0.01" and meta["lot_size"] == "0.00000001"
    assert meta["sources"] == ["spot_btcusdt_20240808.gz"] and meta["hftmm_version"]
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_collector_normalised_equals_normalised_direct_decoding(tmp_path):
    rep = convert([CAPTURE], str(tmp_path), tick_size="0.01", lot_size="0.00000001", progress=False)
    direct, _ = BinanceDecoder("0.01", "0.00000001").decode_lines(gzip.open(CAPTURE).read(), final=True)
    assert np.array_equal(_all(str(tmp_path), "BTCUSDT"), _normalised(direct))
    b = rep.books["BTCUSDT"]
    # 3 events buffered before the snapshot: 2 older than it (dropped), 1 replayed
    assert b["applied"] == 3449 and b["dropped_old"] == 2 and b["gaps"] == 0 and b["unsynced_spans"] == 0
    assert b["synced"] and b["pending"] == 0


def test_units_inferred_from_data(tmp_path):
    rep = convert([CAPTURE], str(tmp_path), progress=False)
    assert rep.malformed == 0 and rep.units["BTCUSDT"][0] == "0.01"


def test_read_events_bounded_chunks_and_time_filter(tmp_path):
    convert([CAPTURE], str(tmp_path), tick_size="0.01", lot_size="0.00000001", progress=False)
    whole = _all(str(tmp_path), "BTCUSDT")
    chunks = list(read_events(str(tmp_path), "BTCUSDT", batch_rows=10_000))
    assert max(len(c) for c in chunks) <= 10_000 and sum(map(len, chunks)) == len(whole)
    mid = int(whole["local_ts"][len(whole) // 2])
    part = _all(str(tmp_path), "BTCUSDT", start=mid)
    assert len(part) and (part["local_ts"] >= mid).all()
    assert len(part) == int((whole["local_ts"] >= mid).sum())
    assert len(_all(str(tmp_path), "BTCUSDT", end="2024-08-08")) == 0


@pytest.mark.parametrize("prefix", ["BINANCE", "BINANCE_FUTURES"])
def test_cryptofeed_split_by_symbol(tmp_path, prefix):
    ws = os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0")
    assert detect_format(ws) == "cryptofeed"
    rep = convert([ws], str(tmp_path), tick_size="0.00000001", lot_size="0.00000001", progress=False)
    assert rep.malformed == 0 and len(rep.files) == 4
    raw = convert([ws], str(tmp_path / "raw"), tick_size="0.00000001", lot_size="0.00000001", progress=False,
                  normalize=False)
    assert raw.malformed == 0 and len(raw.files) == 4
    market = "usdm" if prefix == "BINANCE_FUTURES" else "spot"
    msgs = read_cryptofeed(ws, os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0"))
    for sym, sm in group_by_symbol(msgs).items():
        dec = BinanceDecoder("0.00000001", "0.00000001")
        ref = np.concatenate([dec.decode(m.payload).to_events(m.local_ns) for m in sm])
        assert np.array_equal(_all(str(tmp_path / "raw"), sym), ref), sym
        assert np.array_equal(_all(str(tmp_path), sym), _normalised(ref, market)), sym
        assert rep.books[sym]["synced"] and rep.books[sym]["gaps"] == 0
        meta = read_metadata(rep.files[[os.path.basename(os.path.dirname(f)) for f in rep.files].index(sym)])
        assert meta["market"] == ("usdm" if prefix == "BINANCE_FUTURES" else "spot")
        assert len(meta["sources"]) == 2


def _trade_line(ns, tid, price="100.00"):
    return (b'%d {"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"%s",'
            b'"q":"1.000","T":%d,"m":true}}\n' % (ns, ns // 10**6, tid, price.encode(), ns // 10**6))


def test_one_file_per_day_split_at_midnight(tmp_path):
    midnight = 1723161600 * 10**9  # 2024-08-09 00:00 UTC
    src = tmp_path / "btcusdt_20240808.gz"
    with gzip.open(src, "wb") as fh:
        for i, dt in enumerate([-2, -1, 0, 1, 2]):
            fh.write(_trade_line(midnight + dt * 10**9, i + 1))
    rep = convert([str(src)], str(tmp_path / "store"), tick_size="0.01", lot_size="0.001", progress=False)
    names = [os.path.basename(f) for f in rep.files]
    assert names == ["2024-08-08.parquet", "2024-08-09.parquet"]
    assert pq.read_table(rep.files[0]).num_rows == 2 and pq.read_table(rep.files[1]).num_rows == 3
    assert read_metadata(rep.files[1])["day"] == "2024-08-09"
    back = _all(str(tmp_path / "store"), "BTCUSDT")
    assert list(back["first_id"]) == [1, 2, 3, 4, 5]


def test_files_continuing_each_other_append(tmp_path):
    lines = gzip.open(CAPTURE).read().split(b"\n")
    half = len(lines) // 2
    a, b = tmp_path / "btcusdt_a.gz", tmp_path / "btcusdt_b.gz"
    a.write_bytes(gzip.compress(b"\n".join(lines[:half]) + b"\n"))
    b.write_bytes(gzip.compress(b"\n".join(lines[half:])))
    rep = convert([str(a), str(b)], str(tmp_path / "s"), tick_size="0.01", lot_size="0.00000001",
                  progress=False)
    direct, _ = BinanceDecoder("0.01", "0.00000001").decode_lines(gzip.open(CAPTURE).read(), final=True)
    # one book sync across the files: the same as the whole capture in one go
    assert np.array_equal(_all(str(tmp_path / "s"), "BTCUSDT"), _normalised(direct))
    assert read_metadata(rep.files[0])["sources"] == ["btcusdt_a.gz", "btcusdt_b.gz"]


# -- data.binance.vision CSVs (hand-written, in the documented formats) -----
SPOT_TRADES = ("3720186040,61837.63000000,0.00100000,61.83763000,1723161255208,True,True\n"
               "3720186041,61837.64000000,0.01000000,618.37640000,1723161255209,False,True\n")
SPOT_TRADES_US = ("4510000000,94000.01000000,0.00200000,188.00002000,1735689600123456,False,True\n")
UM_TRADES = ("id,price,qty,quote_qty,time,is_buyer_maker\n"
             "5150000000,61800.10,0.005,309.0005,1723161255208,true\n")
SPOT_AGG = ("3100000000,61837.63000000,0.00100000,3720186040,3720186042,1723161255208,True,True\n")
UM_AGG = ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
          "2300000000,61800.10,0.005,5150000000,5150000003,1723161255208,false\n")
UM_BOOKTICKER = ("update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n"
                 "4800000000001,61800.10,1.234,61800.20,0.500,1711843200000,1711843200001\n")


def _write(path, text, kind="plain"):
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(os.path.basename(path)[:-4] + ".csv", text)
    else:
        path.write_text(text)
    return str(path)


def test_binance_spot_trades_no_header_ms_and_us(tmp_path):
    p = _write(tmp_path / "BTCUSDT-trades-2024-08-08.zip", SPOT_TRADES, "zip")
    q = _write(tmp_path / "BTCUSDT-trades-2025-01-01.csv", SPOT_TRADES_US)
    assert detect_format(p) == detect_format(q) == "binance-trades"
    rep = convert([p, q], str(tmp_path / "s"), tick_size="0.01", lot_size="0.00001", progress=False)
    ev = _all(str(tmp_path / "s"), "BTCUSDT")
    assert rep.units["BTCUSDT"] == ("0.01", "0.00001") and len(rep.files) == 2
    assert list(ev["px"]) == [6183763, 6183764, 9400001] and list(ev["qty"]) == [100, 1000, 200]
    assert list(ev["exch_ts"]) == [1723161255208 * 10**6, 1723161255209 * 10**6, 1735689600123456 * 1000]
    assert (ev["local_ts"] == ev["exch_ts"]).all() and (ev["kind"] == EV_TRADE).all()
    assert list(ev["side"]) == [BID, ASK, ASK] and list(ev["first_id"]) == [3720186040, 3720186041, 4510000000]
    assert (ev["last_id"] == ev["first_id"]).all() and (ev["prev_id"] == NO_ID).all()
    assert (ev["flags"] == EVF_BEGIN | EVF_END).all()
    assert read_metadata(rep.files[0])["market"] == "spot"


def test_binance_usdm_trades_with_header(tmp_path):
    p = _write(tmp_path / "BTCUSDT-trades-2024-08-08.csv", UM_TRADES)
    rep = convert([p], str(tmp_path / "s"), progress=False)
    ev = _all(str(tmp_path / "s"), "BTCUSDT")
    assert rep.units["BTCUSDT"] == ("0.1", "0.001")
    assert list(ev["px"]) == [618001] and list(ev["qty"]) == [5] and list(ev["side"]) == [BID]
    assert read_metadata(rep.files[0])["market"] == "usdm"


@pytest.mark.parametrize("text,first,last,side", [(SPOT_AGG, 3720186040, 3720186042, BID),
                                                  (UM_AGG, 5150000000, 5150000003, ASK)])
def test_binance_aggtrades(tmp_path, text, first, last, side):
    p = _write(tmp_path / "BTCUSDT-aggTrades-2024-08-08.csv", text)
    assert detect_format(p) == "binance-aggtrades"
    convert([p], str(tmp_path / "s"), tick_size="0.01", lot_size="0.001", progress=False)
    ev = _all(str(tmp_path / "s"), "BTCUSDT")
    assert (list(ev["first_id"]), list(ev["last_id"]), list(ev["side"])) == ([first], [last], [side])
    assert ev["exch_ts"][0] == 1723161255208 * 10**6


def test_binance_usdm_bookticker(tmp_path):
    p = _write(tmp_path / "BTCUSDT-bookTicker-2024-03-31.csv", UM_BOOKTICKER)
    assert detect_format(p) == "binance-bookticker"
    convert([p], str(tmp_path / "s"), tick_size="0.1", lot_size="0.001", progress=False)
    ev = _all(str(tmp_path / "s"), "BTCUSDT")
    assert list(ev["kind"]) == [EV_BBO, EV_BBO] and list(ev["side"]) == [BID, ASK]
    assert list(ev["px"]) == [618001, 618002] and list(ev["qty"]) == [1234, 500]
    assert list(ev["flags"]) == [EVF_BEGIN, EVF_END] and (ev["first_id"] == 4800000000001).all()
    assert (ev["exch_ts"] == 1711843200001 * 10**6).all()  # E, as to_events


# -- Tardis ------------------------------------------------------------------
TARDIS_BOOK = """exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount
binance,BTCUSDT,1723161600000000,1723161600001000,true,ask,61837.64,1.5
binance,BTCUSDT,1723161600000000,1723161600001000,true,ask,61837.70,0.2
binance,BTCUSDT,1723161600000000,1723161600001000,true,bid,61837.63,2.0
binance,BTCUSDT,1723161600100000,1723161600101000,false,bid,61837.63,0
binance,BTCUSDT,1723161600100000,1723161600101000,false,bid,61837.60,0.7
binance,BTCUSDT,1723161600200000,1723161600201000,false,ask,61837.64,1.0
"""
TARDIS_TRADES = """exchange,symbol,timestamp,local_timestamp,id,side,price,amount
binance,BTCUSDT,1723161600000000,1723161600001000,3720186040,buy,61837.64,0.01
binance,BTCUSDT,1723161600100000,1723161600101000,3720186041,sell,61837.63,0.5
"""


def test_tardis_book_and_trades(tmp_path):
    b = _write(tmp_path / "binance_incremental_book_L2_2024-08-09_BTCUSDT.csv", TARDIS_BOOK)
    t = _write(tmp_path / "binance_trades_2024-08-09_BTCUSDT.csv", TARDIS_TRADES)
    assert detect_format(b) == detect_format(t) == "tardis"
    convert([b], str(tmp_path / "book"), tick_size="0.01", lot_size="0.1", progress=False)
    ev = _all(str(tmp_path / "book"), "BTCUSDT")
    assert list(ev["kind"]) == [EV_SNAPSHOT] * 3 + [EV_DEPTH] * 3
    assert list(ev["flags"]) == [EVF_BEGIN, 0, EVF_END, EVF_BEGIN, EVF_END, EVF_BEGIN | EVF_END]
    assert list(ev["side"]) == [ASK, ASK, BID, BID, BID, ASK]
    assert list(ev["px"][:2]) == [6183764, 6183770] and list(ev["qty"][:3]) == [15, 2, 20]
    assert ev["local_ts"][0] == 1723161600001000 * 1000 and ev["exch_ts"][3] == 1723161600100000 * 1000
    assert (ev["first_id"] == NO_ID).all()
    convert([t], str(tmp_path / "trades"), tick_size="0.01", lot_size="0.01", progress=False)
    tr = _all(str(tmp_path / "trades"), "BTCUSDT")
    assert list(tr["side"]) == [ASK, BID] and list(tr["first_id"]) == [3720186040, 3720186041]
    assert list(tr["qty"]) == [1, 50]


# -- CLI -----------------------------------------------------------------------
def test_cli_convert_via_add_parser(tmp_path, capsys):
    args = build_parser().parse_args(["data", "convert", CAPTURE, "--out", str(tmp_path), "--tick-size", "0.01",
                                      "--lot-size", "0.00000001", "--json", "--no-progress"])
    assert run(args) == 0
    rep = json.loads(capsys.readouterr().out)
    # 191927 records decoded; 2 depth events (17 records) older than the snapshot are not written
    assert rep["lines"] == 41249 and rep["rows"]["BTCUSDT"] == 191910 and len(rep["files"]) == 1
    assert rep["books"]["BTCUSDT"]["applied"] == 3449


def test_cli_convert_subprocess(tmp_path):
    code = ("import sys; from hftmm.cli_data import main; "
            f"sys.exit(main(['data', 'convert', {CAPTURE!r}, '--out', {str(tmp_path)!r}, '--json']))")
    env = dict(os.environ)  # import hftmm as this process does; run outside the source tree (cwd)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["malformed"] == 0


def test_duckdb_reads_the_store(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    convert([CAPTURE], str(tmp_path), tick_size="0.01", lot_size="0.00000001", progress=False)
    n = duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/*/*.parquet')").fetchone()[0]
    assert n == 191910


def test_writer_rejects_other_dtypes(tmp_path):
    with EventWriter(str(tmp_path), "X", "1", "1") as w:
        with pytest.raises(TypeError):
            w.write(np.zeros(3, np.int64))


def test_gap_in_a_real_capture_is_marked_and_the_backtest_stops_quoting(tmp_path):
    """The real spot capture with one depthUpdate lost (a gap) and a REST snapshot
    of the true book taken later (as a collector does after a gap): the store marks
    the gap with a BOOK_INVALID record, and a backtest on it cancels its quotes there,
    sends nothing until the snapshot, then quotes again."""
    from hftcore import EV_BOOK_INVALID, INVALID_GAP
    from hftcore.binance import DepthSnapshot, DepthUpdate
    from hftcore.sync import BookSync
    from hftmm.backtesting import BacktestConfig, BacktestEngine

    lines = gzip.open(CAPTURE).read().split(b"\n")
    depth = [i for i, ln in enumerate(lines) if b"depthUpdate" in ln]
    lost, resync = depth[len(depth) * 2 // 5], depth[len(depth) * 3 // 5]
    # the exchange's book just before `resync`, from the complete capture
    dec, sync = BinanceDecoder("0.01", "0.00000001"), BookSync(market="spot")
    for ln in lines[:resync]:
        if not ln:
            continue
        m = dec.decode(ln.split(b" ", 1)[1])
        if isinstance(m, DepthUpdate):
            sync.on_depth(m)
        elif isinstance(m, DepthSnapshot):
            sync.on_snapshot(m)
    assert sync.ready

    def side(s):
        t, q = sync.book.levels(s)
        return [[f"{x / 100:.8f}", f"{y / 1e8:.8f}"] for x, y in zip(t.tolist(), q.tolist())]

    snap_ts = int(lines[resync].split(b" ", 1)[0]) - 1
    snap = json.dumps({"lastUpdateId": sync.last_update_id, "bids": side(0), "asks": side(1)},
                      separators=(",", ":")).encode()
    gapped = lines[:lost] + lines[lost + 1:resync] + [b"%d %s" % (snap_ts, snap)] + lines[resync:]
    src = tmp_path / "btcusdt_20240808.gz"
    src.write_bytes(gzip.compress(b"\n".join(gapped)))
    store = tmp_path / "store"
    rep = convert([str(src)], str(store), tick_size="0.01", lot_size="0.00000001", progress=False)
    b = rep.books["BTCUSDT"]
    assert b["gaps"] == 1 and b["unsynced_spans"] == 1 and b["synced"]
    ev = _all(str(store), "BTCUSDT")
    [k] = np.flatnonzero(ev["kind"] == EV_BOOK_INVALID)
    mark_ts = int(ev["local_ts"][k])
    assert int(ev["px"][k]) == INVALID_GAP and mark_ts == int(lines[lost + 1].split(b" ", 1)[0])
    after = ev[k + 1:]
    assert not (after["kind"][: np.argmax(after["kind"] == EV_SNAPSHOT)] == EV_DEPTH).any()

    cfg = BacktestConfig(data_path=str(store), start_date="2024-08-08", end_date="2024-08-08",
                         order_latency=0.005, cancel_latency=0.005, response_latency=0.005,
                         quote_refresh_interval=0.05, gamma=0.05, sample_interval=0.1)
    res = BacktestEngine().run_backtest(cfg)
    c = res.counters
    # this capture's receive clock is 1.27 s behind Binance's: corrected, so that
    # the fastest message took min_feed_latency (1 ms)
    lowest = int((ev["local_ts"] - ev["exch_ts"])[ev["exch_ts"] > 0].min())
    assert lowest < -10**9 and c["clock_shift_ns"] == -lowest + 10**6
    assert "Receive Clock Corrected: local_ts +1,27" in res.summary()
    shift = c["clock_shift_ns"]
    assert c["book_invalid"] == 1 and c["orders_submitted"] > 10
    assert c["book_invalid_ns"] == snap_ts - mark_ts           # visible at the (corrected) receive times
    assert "Book Invalid (not quoting): 1 times" in res.summary()
    # no quote works from the mark (plus the cancel latency) to the snapshot; then quoting resumes
    ts = res.timeseries
    inside = ts[(ts["ts"] > mark_ts + shift + 5 * 10**6) & (ts["ts"] < snap_ts + shift)]
    assert len(inside) > 5 and inside["bid_quote"].isna().all() and inside["ask_quote"].isna().all()
    later = ts[ts["ts"] > snap_ts + shift + 10**9]
    assert later["bid_quote"].notna().any()
