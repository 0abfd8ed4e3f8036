"""``hftmm data convert`` writes the book stream as Binance's sync rules apply
it: a naive replay of the store (the backtester's: a SNAPSHOT run clears and
loads the book, a DEPTH record sets its level) rebuilds the exchange book.

Checked on real captures (the rebuilt best bid/ask equal every bookTicker with
the same update id, as ``data verify`` checks the raw capture; the final book
equals BookSync's after the raw stream) and on a hand-made stream with events
before the snapshot, stale and duplicate events, a gap and a second snapshot,
split over two files."""
import gzip
import json
import os

import numpy as np
import pytest

from hftcore import (ASK, BID, EV_BBO, EV_BOOK_INVALID, EV_DEPTH, EV_SNAPSHOT, EV_TRADE, EVF_BEGIN, EVF_EMPTY, EVF_END,
                     INVALID_GAP)
from hftcore.binance import BinanceDecoder, DepthSnapshot, DepthUpdate
from hftcore.book import L2Book
from hftcore.sync import APPLIED, SYNCED, BookSync
from hftmm.captures import decoder_units, group_by_symbol, read_collector, read_cryptofeed, read_exchange_info
from hftmm.data.convert import convert
from hftmm.data.store import read_events
from hftmm.verify import verify_messages

DATA = os.path.join(os.path.dirname(__file__), "data")
CAPTURE = os.path.join(DATA, "hftbacktest-collector", "spot_btcusdt_20240808.gz")


def _store(root, sym):
    return np.concatenate(list(read_events(root, sym)))


def naive_replay(ev):
    """The backtester's book handling (hftcore.backtest _exchange_event), record
    by record; returns the book, {u: top after the message ending at u}, the
    bookTicker (u, top) pairs, and whether any DEPTH came before a SNAPSHOT."""
    book = L2Book()
    tops, bbos = {}, []
    seen_snapshot = depth_before_snapshot = False
    bid = None
    for e in ev.tolist():
        local_ts, exch_ts, px, qty, first_id, last_id, prev_id, kind, side, flags = e[:10]
        if kind == EV_DEPTH:
            depth_before_snapshot |= not seen_snapshot
            if not flags & EVF_EMPTY:
                book.apply(side, px, qty)
        elif kind == EV_SNAPSHOT:
            seen_snapshot = True
            if flags & EVF_BEGIN:
                book.clear()
            if not flags & EVF_EMPTY:
                book.apply(side, px, qty)
        elif kind == EV_BBO:
            if side == BID:
                bid = (px, qty)
            else:
                bbos.append((last_id, (bid[0], bid[1], px, qty)))
            continue
        else:
            continue
        if flags & EVF_END:
            tops[last_id] = (book.best_bid(), book.best_bid_qty(), book.best_ask(), book.best_ask_qty())
    return book, tops, bbos, depth_before_snapshot


def ticker_check(tops, bbos):
    checks = [(u, want) for u, want in bbos if u in tops]
    bad = [(u, tops[u], want) for u, want in checks if tops[u] != want]
    return len(checks), bad


def sync_book(msgs, tick, lot, market):
    """BookSync fed the raw messages in receive order (as data verify does)."""
    dec = BinanceDecoder(tick, lot)
    sync = BookSync(market=market)
    for m in msgs:
        d = dec.decode(m.payload)
        if isinstance(d, DepthUpdate):
            sync.on_depth(d)
        elif isinstance(d, DepthSnapshot):
            sync.on_snapshot(d)
    return sync


def same_book(a, b):
    return all(np.array_equal(x, y) for s in (BID, ASK) for x, y in zip(a.levels(s), b.levels(s)))


def _check_store(ev, msgs, tick, lot, market, sym):
    assert (np.diff(ev["local_ts"]) >= 0).all()
    book, tops, bbos, early = naive_replay(ev)
    assert not early
    n, bad = ticker_check(tops, bbos)
    assert not bad, bad[:3]
    rep = verify_messages(msgs, tick, lot, market=market, symbol=sym)
    assert rep.ticker_mismatches == 0
    # the store's replay checks at least what verify checks on the raw capture
    # (it also holds the top after each replayed buffered event)
    assert n >= rep.ticker_checks
    sync = sync_book(msgs, tick, lot, market)
    assert sync.ready and same_book(book, sync.book)
    return n, rep


def test_spot_capture_store_replays_to_the_exchange_book(tmp_path):
    rep = convert([CAPTURE], str(tmp_path), tick_size="0.01", lot_size="0.00000001", progress=False)
    ev = _store(str(tmp_path), "BTCUSDT")
    msgs = list(read_collector(CAPTURE, symbol="BTCUSDT"))
    n, vrep = _check_store(ev, msgs, "0.01", "0.00000001", "spot", "BTCUSDT")
    assert vrep.ticker_checks == 564 and n >= 564
    # the raw receive order replayed naively does not rebuild it: the snapshot
    # line wipes out the buffered event that belongs after it
    raw = convert([CAPTURE], str(tmp_path / "raw"), tick_size="0.01", lot_size="0.00000001", progress=False,
                  normalize=False)
    assert raw.malformed == 0
    _, rtops, rbbos, early = naive_replay(_store(str(tmp_path / "raw"), "BTCUSDT"))
    assert early
    b = rep.books["BTCUSDT"]
    assert b["applied"] == 3449 and b["dropped_old"] == 2 and b["resyncs"] == 0 and b["pending"] == 0


@pytest.mark.parametrize("market,prefix", [("spot", "BINANCE"), ("usdm", "BINANCE_FUTURES")])
def test_cryptofeed_stores_replay_to_the_exchange_book(tmp_path, market, prefix):
    ws = os.path.join(DATA, "cryptofeed", f"{prefix}.ws.1.0")
    http = os.path.join(DATA, "cryptofeed", f"{prefix}.http.0.0")
    info = read_exchange_info(os.path.join(DATA, "cryptofeed", f"{prefix}.0"))
    total = 0
    for sym, sm in group_by_symbol(read_cryptofeed(ws, http)).items():
        tick, lot = decoder_units(info, sym)
        if market == "spot":
            tick = "0.00000001"   # see test_real_data: 2021 snapshots hold off-grid levels
        out = str(tmp_path / sym)
        rep = convert([ws], out, symbol=sym, tick_size=tick, lot_size=lot, progress=False)
        assert rep.malformed == 0 and rep.books[sym]["gaps"] == 0
        n, _ = _check_store(_store(out, sym), sm, tick, lot, market, sym)
        total += n
    assert total > 0


# -- a hand-made spot stream -------------------------------------------------
T0 = 1723161600 * 10**9 + 10**9


def _depth(U, u, bids, asks):
    d = {"e": "depthUpdate", "E": T0 // 10**6, "s": "BTCUSDT", "U": U, "u": u,
         "b": [[f"{p:.2f}", f"{q:.3f}"] for p, q in bids], "a": [[f"{p:.2f}", f"{q:.3f}"] for p, q in asks]}
    return {"stream": "btcusdt@depth@100ms", "data": d}


def _snap(L, bids, asks):
    return {"lastUpdateId": L, "bids": [[f"{p:.2f}", f"{q:.3f}"] for p, q in bids],
            "asks": [[f"{p:.2f}", f"{q:.3f}"] for p, q in asks]}


def _trade(tid):
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": T0 // 10**6, "s": "BTCUSDT", "t": tid,
                                               "p": "100.00", "q": "1.000", "T": T0 // 10**6, "m": True}}


E = {k: _depth(5 * k - 4, 5 * k, [(100 - k * 0.01, k)], [(101 + k * 0.01, k)]) for k in range(1, 10)}
STREAM = [
    E[1], _trade(1), E[2], E[3],                       # before the snapshot; e1, e2 are older than it
    _snap(12, [(99.0, 5), (100 - 0.03, 7)], [(102.0, 5)]),
    E[3],                                              # duplicate of a replayed event
    E[4], _trade(2), E[4],                             # duplicate
    E[6],                                              # gap (e5 lost): resync, nothing until a snapshot
    E[7], _trade(3),
    _snap(27, [(98.0, 1)], [(103.0, 1)]),              # accepted: e6 straddles 28, e7 follows
    E[8], E[9],
]


def _lines(stream, t0=T0):
    return [b"%d %s" % (t0 + i * 10**6, json.dumps(m, separators=(",", ":")).encode())
            for i, m in enumerate(stream)]


def _expected_tops():
    """Tops of the reference BookSync fed message by message (Python API)."""
    dec = BinanceDecoder("0.01", "0.001")
    sync = BookSync(market="spot")
    tops = {}
    for line in _lines(STREAM):
        m = dec.decode(line.split(b" ", 1)[1])
        if isinstance(m, DepthUpdate):
            out = sync.on_depth(m)
        elif isinstance(m, DepthSnapshot):
            out = sync.on_snapshot(m)
        else:
            continue
        if out in (APPLIED, SYNCED):
            b = sync.book
            tops[sync.last_update_id] = (b.best_bid(), b.best_bid_qty(), b.best_ask(), b.best_ask_qty())
    return sync, tops


@pytest.mark.parametrize("split", [None, 9])
def test_hand_made_stream(tmp_path, split):
    lines = _lines(STREAM)
    parts = [lines] if split is None else [lines[:split], lines[split:]]
    paths = []
    for i, part in enumerate(parts):
        p = tmp_path / f"btcusdt_2024080{9 + i}.gz"
        p.write_bytes(gzip.compress(b"\n".join(part) + b"\n"))
        paths.append(str(p))
    rep = convert(paths, str(tmp_path / "s"), tick_size="0.01", lot_size="0.001", progress=False)
    ev = _store(str(tmp_path / "s"), "BTCUSDT")
    msg = ev[(ev["flags"] & EVF_BEGIN) != 0]
    kinds = [(int(k), int(u)) for k, u in zip(msg["kind"], msg["last_id"])]
    assert kinds == [(EV_TRADE, 1), (EV_SNAPSHOT, 12), (EV_DEPTH, 15), (EV_DEPTH, 20), (EV_TRADE, 2),
                     (EV_BOOK_INVALID, 20), (EV_TRADE, 3), (EV_SNAPSHOT, 27), (EV_DEPTH, 30), (EV_DEPTH, 35),
                     (EV_DEPTH, 40), (EV_DEPTH, 45)]
    # the gap is marked where e6 revealed it (+9 ms), with the last valid id and the reason
    bad = ev[ev["kind"] == EV_BOOK_INVALID]
    assert len(bad) == 1 and int(bad["px"][0]) == INVALID_GAP and int(bad["local_ts"][0]) == T0 + 9 * 10**6
    assert int(bad["first_id"][0]) == 20 and int(bad["qty"][0]) == 0 and bad["flags"][0] & EVF_END
    # the replayed e3 gets the snapshot's receive time; e6, e7 that of the second snapshot
    t = {u: int(x) for u, x, k in zip(msg["last_id"], msg["local_ts"], msg["kind"]) if u > 3 and k != EV_BOOK_INVALID}
    assert t[15] == t[12] == T0 + 4 * 10**6 and t[20] == T0 + 6 * 10**6
    assert t[30] == t[35] == t[27] == T0 + 12 * 10**6 and t[40] == T0 + 13 * 10**6
    assert (np.diff(ev["local_ts"]) >= 0).all()
    # exch_ts and the levels are the event's own
    e3 = ev[(ev["kind"] == EV_DEPTH) & (ev["last_id"] == 15)]
    assert list(e3["px"]) == [9997, 10103] and list(e3["qty"]) == [3000, 3000]
    assert (e3["exch_ts"] == (T0 // 10**6) * 10**6).all()

    book, tops, _, early = naive_replay(ev)
    sync, want = _expected_tops()
    assert not early and all(tops[u] == top for u, top in want.items())
    assert same_book(book, sync.book)
    b = rep.books["BTCUSDT"]
    assert (b["gaps"], b["resyncs"], b["snapshots"], b["stale_snapshots"]) == (1, 1, 2, 0)
    assert b["applied"] == 6 and b["dropped_old"] == 4
    assert b["unsynced_spans"] == 1 and b["spans"][0]["reason"] == "gap"
    assert b["spans"][0]["seconds"] == pytest.approx(0.003)      # e6 at +9 ms .. snapshot at +12 ms
    assert b["initial_wait_seconds"] == pytest.approx(0.004)
    assert b["synced"] and b["pending"] == 0

    # replayed naively, the receive order gives another book
    convert(paths, str(tmp_path / "raw"), tick_size="0.01", lot_size="0.001", progress=False, normalize=False)
    rbook, _, _, _ = naive_replay(_store(str(tmp_path / "raw"), "BTCUSDT"))
    assert not same_book(rbook, sync.book)


def test_unsynced_at_the_end_is_reported(tmp_path):
    p = tmp_path / "btcusdt_20240809.gz"
    p.write_bytes(gzip.compress(b"\n".join(_lines(STREAM[:11])) + b"\n"))
    rep = convert([str(p)], str(tmp_path / "s"), tick_size="0.01", lot_size="0.001", progress=False)
    b = rep.books["BTCUSDT"]
    assert not b["synced"] and b["pending"] == 2 and b["spans"][-1]["open"]
    assert any("not synchronised" in x for x in rep.problems)
    ev = _store(str(tmp_path / "s"), "BTCUSDT")
    assert ev["last_id"][(ev["kind"] == EV_DEPTH)].max() == 20      # nothing after the gap


def test_booksync_emit_events_python_api():
    s = BookSync(market="spot", emit_events=True)
    assert s.on_depth_arrays(1, 5, None, [100], [1], [], [], local_ts=10, exch_ts=7) == 1   # buffered
    assert s.on_depth_arrays(6, 8, None, [], [], [], [], local_ts=11, exch_ts=8) == 1
    assert s.on_snapshot_arrays(4, [99], [2], [101], [3], local_ts=20) == SYNCED
    ev = s.take_events()
    assert list(ev["kind"]) == [EV_SNAPSHOT, EV_SNAPSHOT, EV_DEPTH, EV_DEPTH]
    assert list(ev["flags"]) == [EVF_BEGIN, EVF_END, EVF_BEGIN | EVF_END, EVF_BEGIN | EVF_END | EVF_EMPTY]
    assert list(ev["local_ts"]) == [20, 20, 20, 20] and list(ev["exch_ts"]) == [0, 0, 7, 8]
    assert list(ev["last_id"]) == [4, 4, 5, 8] and len(s.take_events()) == 0
    with pytest.raises(ValueError):
        BookSync().take_events()
