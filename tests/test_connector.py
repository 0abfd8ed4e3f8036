"""BinanceConnector against the Binance-compatible simulator on 127.0.0.1.

After every scenario the connector's book must equal the simulator's ground
truth exactly (every level of both sides), the bookTicker cross-check must never
have found a divergence (zero silent divergence), and message loss must be
accounted for: in scenarios whose only loss is injected skips, the update ids the
connector counts as lost are exactly those the simulator skipped.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from hftmm.data_ingestion import BinanceConnector, depth_weight, stream_names
from hftmm.simulator import ExchangeSimulator, Fault, FaultConfig, SyntheticSource
from hftmm.synthetic import SyntheticConfig

#: fault scenarios (seeds) to run: "N" (0..N-1) or "A:B"; the suite runs 40 (every fault
#: family on both markets, every scripted fault), CI 200
_SCN = os.environ.get("HFTMM_FAULT_SCENARIOS", "40")
SCENARIOS = range(*map(int, _SCN.split(":"))) if ":" in _SCN else range(int(_SCN))


def make_sim(market="spot", seed=1, faults=None, speed=0.0, levels=400):
    sim = ExchangeSimulator(market=market, source=SyntheticSource(SyntheticConfig(seed=seed, book_levels=levels),
                                                                  speed=speed),
                            faults=faults, ping_interval_s=0.5, pong_timeout_s=3.0)
    return sim.start(paused=True)


def make_conn(sim, market="spot", **kw):
    kw = {"watchdog_s": 1.0, "trade_watchdog_s": 1.0, "backoff_initial_s": 0.02, "backoff_max_s": 0.2, "request_timeout_s": 3.0, **kw}
    return BinanceConnector("BTCUSDT", market=market, rest_url=sim.rest_url, ws_url=sim.ws_url, **kw)


def caught_up(conn, sim, timeout=300.0) -> bool:
    """Wait until the connector's book is ready at the simulator's last update id
    (``timeout`` only guards against a hang: on a loaded machine catching up a long
    backlog takes as long as it takes; the assertion is on the state reached).

    A client whose last messages were lost cannot know it is behind until the
    next message arrives, so when it does not catch up on a paused market the
    market runs on briefly, fault-free (``sim.calm()``), and is paused again."""
    sim.calm()
    end = time.monotonic() + timeout
    nudge = time.monotonic() + 1.0
    while time.monotonic() < end:
        if conn.ready and conn.sync.last_update_id == sim.last_update_id:
            return True
        if time.monotonic() > nudge:
            sim.resume()
            time.sleep(0.1)
            sim.pause()
            sim.wait_idle(5.0)
            nudge = time.monotonic() + 1.0
        time.sleep(0.005)
    return False


def quiesce(conn, quiet_s=0.15, timeout=5.0) -> None:
    """Wait until no frame has arrived for quiet_s (trades and extra frames queued
    after the last depth message are counted too)."""
    end = time.monotonic() + timeout
    last, since = conn.stats.messages, time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.02)
        if conn.stats.messages != last:
            last, since = conn.stats.messages, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def assert_book_equals_ground_truth(conn, sim):
    lid, bt, bq, at, aq = sim.ground_truth()
    ratio = round(float(sim.lot_size) / conn.lot_size)
    assert conn.tick_size == pytest.approx(float(sim.tick_size))
    with conn._lock:
        assert conn.sync.last_update_id == lid
        cb, cbq = conn.book.levels(0)
        ca, caq = conn.book.levels(1)
    np.testing.assert_array_equal(cb, bt)
    np.testing.assert_array_equal(ca, at)
    np.testing.assert_array_equal(cbq, bq * ratio)
    np.testing.assert_array_equal(caq, aq * ratio)


def stream_for(sim, conn, seconds):
    sim.resume()
    assert conn.wait_ready(60.0), conn.statistics()
    time.sleep(seconds)
    sim.pause()
    assert sim.wait_idle(10.0)


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_syncs_and_equals_ground_truth(market):
    sim = make_sim(market)
    conn = make_conn(sim, market, on_book=lambda b, m: None).start()
    try:
        stream_for(sim, conn, 0.6)
        assert caught_up(conn, sim)
        assert_book_equals_ground_truth(conn, sim)
        st = conn.statistics()
        assert st["gaps"] == 0 and st["resyncs"] == 0 and st["malformed"] == 0
        assert st["ticker_checks"] > 50 and st["ticker_mismatches"] == 0
        assert st["trades"] > 0 and st["snapshots"] == 1
        assert set(st["latency_ms"]) == {"p50", "p90", "p99", "p99.9"}
        snap = conn.get_order_book().get_snapshot(5)
        assert snap.ready and snap.update_id == sim.last_update_id and len(snap.bid_ticks) == 5
        assert snap.best_bid < snap.best_ask and snap.spread > 0 and not snap.bid_ticks.flags.writeable
        assert snap.bids.shape == (5, 2)
        if market == "usdm":
            assert [c.name for c in conn._conns] == ["book#0", "trades#0", "book#1", "trades#1"]
            assert "/public/stream?" in conn._conns[0].url and "/market/stream?" in conn._conns[1].url
        # two feeds by default, merged: every message once, nothing lost
        assert st["feed_duplicates"] > 0 and st["messages_lost"] == 0 and st["message_loss_rate"] == 0.0
        assert st["messages_expected"] == st["messages_received"] > 0
        assert [f["feed"] for f in st["feeds"]][:2] in ([0, 0], [0, 1])
    finally:
        conn.stop()
        sim.stop()


def test_callbacks_and_trades():
    sim = make_sim()
    books, trades, tickers = [], [], []
    conn = make_conn(sim, on_book=lambda b, m: books.append(m.last_id), on_trade=trades.append,
                     on_book_ticker=tickers.append).start()
    try:
        stream_for(sim, conn, 0.3)
        assert caught_up(conn, sim)
        assert books and books == sorted(books) and trades and tickers
        assert books[-1] == sim.last_update_id
    finally:
        conn.stop()
        sim.stop()


def test_configuration_is_validated():
    with pytest.raises(ValueError, match="market"):
        BinanceConnector("BTCUSDT", market="coinm")
    with pytest.raises(ValueError, match="snapshot_limit"):
        BinanceConnector("BTCUSDT", market="usdm", snapshot_limit=5000)
    with pytest.raises(ValueError, match="depth_speed_ms"):
        BinanceConnector("BTCUSDT", market="spot", depth_speed_ms=250)
    with pytest.raises(ValueError, match="symbol"):
        BinanceConnector("BTC/USDT")
    assert depth_weight("spot", 100) == 5 and depth_weight("spot", 1000) == 50 and depth_weight("spot", 5000) == 250
    assert depth_weight("usdm", 1000) == 20 and depth_weight("usdm", 50) == 2
    assert stream_names("BTCUSDT", "usdm", 0, "aggTrade") == (["btcusdt@depth@0ms", "btcusdt@bookTicker"],
                                                                ["btcusdt@aggTrade"])
    c = BinanceConnector("ethusdt", market="usdm", testnet=True)
    assert c.rest_url == "https://testnet.binancefuture.com" and c.ws_url == "wss://fstream.binancefuture.com"
    c = BinanceConnector("ETHUSDT")
    assert c.rest_url == "https://api.binance.com" and c.ws_url == "wss://stream.binance.com:9443"


# ---------------------------------------------------------------- fault scenarios
def recount_loss(frames, conn, market) -> int:
    """Update ids missing from the depth stream as received (independent of the
    connector's sync): ids between the first message and the newest one that no
    message received carried (late ones fill their hole; duplicates count once)."""
    from hftcore.binance import BinanceDecoder, DecodeError, DepthUpdate

    dec = BinanceDecoder(*conn._units) if all(conn._units) else conn.decoder
    start, newest, got = None, None, set()
    for data in frames:
        try:
            m = dec.decode(data)
        except DecodeError:
            continue
        if not isinstance(m, DepthUpdate):
            continue
        lo = m.first_id if market == "spot" else m.prev_id + 1
        if start is None:
            start = lo
        if lo >= start:
            got.update(range(lo, m.last_id + 1))
        newest = m.last_id if newest is None else max(newest, m.last_id)
    return 0 if start is None else (newest - start + 1) - len(got)


def scenario(seed: int):
    """(market, FaultConfig, kind) for a seed; four families of faults."""
    kind = seed % 4
    market = "usdm" if seed % 8 >= 4 else "spot"
    if kind == 0:      # lost / doubled / broken messages, no reconnects: exact loss accounting
        rates = {"skip": 2e-3, "duplicate": 2e-3, "malformed": 1e-3}
        return market, FaultConfig(seed=seed, rates=rates), kind
    if kind == 1:      # out of order and late
        rates = {"reorder": 1e-3, "delay": 3e-4, "duplicate": 1e-3}
        return market, FaultConfig(seed=seed, rates=rates), kind
    if kind == 2:      # the connection itself: dropped, silent, shut down
        script = [Fault(("drop_connection", "silent", "server_shutdown")[seed % 3], at_message=300 + 37 * (seed % 11),
                        connection=0,
                        **({"seconds": 1.5} if seed % 3 == 1 else {"after_s": 0.05} if seed % 3 == 2 else {}))]
        return market, FaultConfig(seed=seed, rates={"skip": 5e-4}, script=script), kind
    # REST: stale snapshots and errors while resyncing after gaps
    rates = {"skip": 2e-3, "stale_snapshot": 0.5, "rest_error": 0.3}
    script = [Fault("rest_error", at_message=2, status=503)]
    return market, FaultConfig(seed=seed, rates=rates, script=script), kind


@pytest.mark.parametrize("seed", SCENARIOS)
def test_fault_scenario(seed):
    market, faults, kind = scenario(seed)
    sim = make_sim(market, seed=seed, faults=faults)
    frames = []
    conn = make_conn(sim, market, on_raw=lambda ns, data: frames.append(data)).start()
    try:
        stream_for(sim, conn, 0.25 if kind != 2 else 0.8)
        assert caught_up(conn, sim), (conn.statistics(), sim.stats()["faults"])
        quiesce(conn)
        assert_book_equals_ground_truth(conn, sim)
        st = conn.statistics()
        ss = sim.stats()
        assert st["ticker_mismatches"] == 0
        assert st["resyncs"] >= (1 if st["gaps"] else 0)
        if kind == 0:
            # no connection fault was injected: a reconnect only where the simulator
            # dropped a connection it found too slow (a pong timeout or a slow consumer:
            # a feed thread starved on a loaded machine; seen once in CI)
            load_drops = sum(n for why, n in ss.get("disconnects", {}).items()
                             if why in ("pong_timeout", "slow_consumer"))
            assert st["reconnects"] <= load_drops, (st["reconnects"], ss.get("disconnects"))
            # every update id missing from what arrived is counted, nothing more;
            # and nothing is reported lost that the simulator did not remove
            assert st["ids_lost"] == recount_loss(frames, conn, market)
            assert st["ids_lost"] <= ss["update_ids_skipped"]
            assert st["malformed"] == ss["faults"].get("malformed", 0)
        if kind == 2:
            # a dropped or shut-down connection must be reopened; a silent one only
            # if the connector ran dry for its watchdog time (it may still be
            # draining frames sent before the silence)
            forced = sum(ss["faults"].get(k, 0) for k in ("drop_connection", "server_shutdown"))
            assert st["reconnects"] >= (1 if forced else 0)
    finally:
        conn.stop()
        sim.stop()


def test_soak_100k_messages_with_random_faults():
    rates = {"skip": 3e-4, "duplicate": 3e-4, "reorder": 2e-4, "malformed": 2e-4, "delay": 3e-5,
             "drop_connection": 1e-5, "stale_snapshot": 0.3, "rest_error": 0.1}
    sim = make_sim("spot", seed=99, faults=FaultConfig(seed=99, rates=rates))
    # a long run grows the book beyond 1000 levels: a resync must see all of it
    # (levels deeper than a snapshot are unknown on Binance too)
    conn = make_conn(sim, snapshot_limit=5000).start()
    try:
        sim.resume()
        assert conn.wait_ready(60.0)
        hang_guard = time.monotonic() + 1800.0
        while conn.stats.messages < 100_000 and time.monotonic() < hang_guard:
            time.sleep(0.05)
        sim.pause()
        assert sim.wait_idle(60.0)
        assert conn.stats.messages >= 100_000
        assert caught_up(conn, sim)
        assert_book_equals_ground_truth(conn, sim)
        st = conn.statistics()
        # how many bookTickers carry a depth frame's final u depends on how the
        # simulator's windows fall and on the machine's load (16 to 1600 were seen
        # here): the cross-check must have run, and never disagreed
        assert st["ticker_mismatches"] == 0 and st["ticker_checks"] > 0
        assert st["gaps"] > 0 and st["resyncs"] >= 1 and st["malformed"] > 0
    finally:
        conn.stop()
        sim.stop()
