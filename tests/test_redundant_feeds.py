"""Redundant market data: two feeds, one per simulator endpoint, merged by update id.

Faults on one endpoint must cost nothing (0 messages and 0 ids lost, 0 resyncs,
the book equal to the ground truth); with message faults on both endpoints every
message withheld from both feeds is a detected hole and the loss figures equal
the simulator's independent count exactly.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

from hftcore.sync import StreamLoss, loss_figures
from hftmm.data_ingestion import BinanceConnector
from hftmm.simulator import ExchangeSimulator, Fault, FaultConfig, SyntheticSource
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # (--import-mode=importlib)
from test_connector import assert_book_equals_ground_truth, caught_up, quiesce  # noqa: E402


def _sim(market, seed, faults, speed=20.0):
    src = SyntheticSource(SyntheticConfig(seed=seed, book_levels=400), speed=speed)
    return ExchangeSimulator(market=market, source=src, faults=faults, ping_interval_s=0.5, pong_timeout_s=3.0,
                             extra_ports=1).start(paused=True)


def _conn(sim, market, **kw):
    return BinanceConnector("BTCUSDT", market=market, rest_url=sim.rest_url, ws_urls=sim.ws_urls, feeds=2,
                            watchdog_s=1.5, trade_watchdog_s=1.5, backoff_initial_s=0.02, backoff_max_s=0.2,
                            request_timeout_s=3.0, **kw).start()


def _run(sim, conn, seconds):
    end = time.monotonic() + 30
    while not all(c.connected.is_set() for c in conn._conns) and time.monotonic() < end:
        time.sleep(0.01)
    assert all(c.connected.is_set() for c in conn._conns)
    sim.resume()
    assert conn.wait_ready(60.0), conn.statistics()
    time.sleep(seconds)
    sim.pause()
    assert sim.wait_idle(10.0)
    assert caught_up(conn, sim), conn.statistics()
    quiesce(conn)


def _expected(sim, market):
    """(messages, update ids) the simulator published on the depth stream."""
    n, (U, _u, pu) = sim.depth_published()
    return n, sim.last_update_id - (U - 1 if market == "spot" else pu)


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_faults_on_one_feed_lose_nothing(market):
    rates = {"skip": 5e-3, "duplicate": 3e-3, "reorder": 2e-3, "malformed": 2e-3, "delay": 1e-3}
    script = [Fault("drop_connection", at_time_s=0.6), Fault("silent", at_time_s=1.4, seconds=1.0),
              Fault("server_shutdown", at_time_s=2.8, after_s=0.05)]
    sim = _sim(market, 5, FaultConfig(seed=5, rates=rates, script=script, endpoints=(0,)))
    conn = _conn(sim, market)
    try:
        _run(sim, conn, 4.0)
        assert_book_equals_ground_truth(conn, sim)
        st = conn.statistics()
        n, ids = _expected(sim, market)
        assert st["resyncs"] == 0 and st["gaps"] == 0 and st["snapshots"] == 1, st
        assert st["messages_lost"] == 0 and st["ids_lost"] == 0
        assert st["messages_expected"] == n and st["ids_expected"] == ids
        assert st["message_loss_rate"] == 0.0 and st["id_loss_rate"] == 0.0
        assert st["ticker_mismatches"] == 0
        # the faulty endpoint's feed did lose messages (and reconnected); the merge hid it
        ss = sim.stats()
        assert ss["faults"].get("skip", 0) > 0 and st["reconnects"] >= 1
        faulty = [f for f in st["feeds"] if f["feed"] == 0 and "book" in f["name"]][0]
        clean = [f for f in st["feeds"] if f["feed"] == 1 and "book" in f["name"]][0]
        assert faulty["messages_lost"] > 0 and faulty["ids_lost"] > 0 and faulty["message_loss_rate"] > 0
        assert clean["messages_lost"] == 0 and clean["messages_expected"] == n
        assert st["feed_unfilled"] == 0 and st["feed_duplicates"] > 0
    finally:
        conn.stop()
        sim.stop()


def _truth_lost(sim, market):
    """Depth messages withheld from both connections (skip faults): holes (runs of
    adjacent messages) and the update ids they carried."""
    by_conn: dict[int, set] = {}
    msgs = {}
    for idx, U, u, pu in sim.skipped_depth():
        by_conn.setdefault(idx, set()).add(u)
        msgs[u] = (U, pu)
    sets = list(by_conn.values())
    both = sorted(set.intersection(*sets)) if len(sets) >= 2 else []
    holes, ids, prev = 0, 0, None
    for u in both:
        U, pu = msgs[u]
        ids += u - U + 1 if market == "spot" else u - pu
        start = U if market == "spot" else pu + 1
        if prev is None or start != prev + 1:
            holes += 1
        prev = u
    return holes, ids, len(both)


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_faults_on_both_feeds_detected_and_counted_exactly(market):
    rates = {"skip": 0.02, "duplicate": 5e-3, "malformed": 2e-3}
    # (the first messages are spared: a client cannot know of messages before its first)
    sim = _sim(market, 11, FaultConfig(seed=11, rates=rates, after_message=50))
    conn = _conn(sim, market)
    try:
        _run(sim, conn, 3.0)
        assert_book_equals_ground_truth(conn, sim)
        st = conn.statistics()
        n, ids = _expected(sim, market)
        holes, ids_lost, lost = _truth_lost(sim, market)
        assert holes > 0, "the scenario must withhold some message from both feeds"
        assert (st["messages_lost"], st["ids_lost"], st["messages_received"]) == (holes, ids_lost, n - lost)
        assert st["ids_expected"] == ids
        # adjacent lost messages are one hole: the message figure is then a lower bound
        assert st["messages_expected"] == st["messages_received"] + holes <= n
        assert st["resyncs"] >= 1 and st["feed_unfilled"] >= 1
        assert st["ticker_mismatches"] == 0
    finally:
        conn.stop()
        sim.stop()


def test_single_feed_is_unchanged_path():
    sim = _sim("spot", 3, None)
    conn = BinanceConnector("BTCUSDT", rest_url=sim.rest_url, ws_url=sim.ws_url, feeds=1, watchdog_s=1.5).start()
    try:
        _run(sim, conn, 0.5)
        st = conn.statistics()
        assert [c.name for c in conn._conns] == ["book+trades"] and st["feed_duplicates"] == 0
        assert st["messages_expected"] == sim.depth_published()[0] and st["messages_lost"] == 0
    finally:
        conn.stop()
        sim.stop()


def test_feed_configuration():
    assert BinanceConnector("BTCUSDT").feed_urls == ["wss://stream.binance.com:9443", "wss://stream.binance.com:443"]
    c = BinanceConnector("BTCUSDT", feeds=3, ws_urls=["wss://data-stream.binance.vision"])
    assert c.feed_urls == ["wss://data-stream.binance.vision"] * 3
    assert BinanceConnector("BTCUSDT", market="usdm").feed_urls == ["wss://fstream.binance.com"] * 2
    for bad in ({"feeds": 0}, {"feeds": 9}, {"merge_wait_s": -1}, {"ws_urls": []}, {"ws_urls": ["http://x"]}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BinanceConnector("BTCUSDT", **bad)


def test_stream_loss_figures():
    s = StreamLoss("spot")
    s.add(1, 10)
    s.add(11, 20)
    s.add(31, 40)                 # 21..30 missing: one hole, 10 ids
    s.add(11, 20)                 # a duplicate
    assert (s.stats()["messages_lost"], s.stats()["ids_lost"], s.stats()["duplicates"]) == (1, 10, 1)
    s.add(41, 50)
    s.add(61, 70)                 # 51..60 missing
    s.add(51, 55)                 # part of it arrives late: the hole remains (>= 1 message)
    d = s.stats()
    assert (d["messages_lost"], d["ids_lost"], d["late"], d["messages_received"]) == (2, 15, 1, 6)
    s.add(21, 30)                 # the first hole is filled
    d = s.stats()
    assert (d["messages_lost"], d["ids_lost"], d["ids_received"]) == (1, 5, 65)
    f = loss_figures(d)
    assert f["messages_expected"] == 8 and f["message_loss_rate"] == pytest.approx(1 / 8)
    assert f["ids_expected"] == 70 and f["id_loss_rate"] == pytest.approx(5 / 70)
    u = StreamLoss("usdm")        # USD-M: the pu chain; ids are shared by all symbols
    u.add(100, 150, 99)
    u.add(170, 200, 160)          # pu 160 != 150: a hole (151..160)
    u.add(201, 260, 200)
    d = u.stats()
    assert (d["messages_lost"], d["messages_received"], d["ids_lost"], d["ids_received"]) == (1, 3, 10, 51 + 40 + 60)
    with pytest.raises(ValueError, match="pu"):
        u.add(1, 2)
    assert loss_figures({}) == {"messages_expected": 0, "message_loss_rate": 0.0, "ids_expected": 0,
                                "id_loss_rate": 0.0}
