"""hftmm.simulator: REST, streams rebuilt into the exact ground truth (spot and
USD-M), control messages, connection rules, every fault kind, determinism,
capture replay and the CLI. Everything on 127.0.0.1."""
import argparse
import json
import os
import signal
import subprocess
import tempfile
import sys
import time

import numpy as np
import pytest

from hftcore.sync import RESYNC_GAP, STALE_SNAPSHOT, SYNCED
from hftmm.captures import decoder_units, symbol_filters
from hftmm.simulator import CaptureSource, ExchangeSimulator, Fault, FaultConfig, SyntheticSource
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim_client import BookClient, Reader, http_get  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURE = os.path.join(HERE, "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz")
ROOT = os.path.dirname(HERE)
SPOT_STREAMS = "/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


def make_sim(market="spot", speed=0.0, seed=1, faults=None, start_ns=None, book_levels=2000, **kw):
    cfg = SyntheticConfig(seed=seed, book_levels=book_levels)
    return ExchangeSimulator(market=market, source=SyntheticSource(cfg, speed=speed, start_ns=start_ns),
                             faults=faults, **kw)


@pytest.fixture(scope="module")
def spot_sim():
    with make_sim("spot", speed=5.0) as sim:
        yield sim


@pytest.fixture(scope="module")
def usdm_sim():
    with make_sim("usdm", speed=5.0) as sim:
        yield sim


# ---------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------

def test_rest_spot(spot_sim):
    url = spot_sim.rest_url
    st, h, body = http_get(f"{url}/api/v3/depth?symbol=BTCUSDT")
    d = json.loads(body)
    assert st == 200 and set(d) == {"lastUpdateId", "bids", "asks"}
    assert len(d["bids"]) == 100 and len(d["asks"]) == 100 and h["X-MBX-USED-WEIGHT-1M"]
    w0 = int(h["X-MBX-USED-WEIGHT-1M"])
    for limit, weight, n in ((5, 5, 5), (101, 25, 101), (1000, 50, 1000), (5000, 250, None), (9999, 250, None)):
        st, h, body = http_get(f"{url}/api/v3/depth?symbol=BTCUSDT&limit={limit}")
        d = json.loads(body)
        assert st == 200
        w1 = int(h["X-MBX-USED-WEIGHT-1M"])
        assert w1 - w0 == weight, (limit, w1 - w0)
        w0 = w1
        if n:
            assert len(d["bids"]) == n
        assert len(d["bids"]) <= 5000
        assert float(d["bids"][0][0]) < float(d["asks"][0][0])
    for q, status, code in (("", 400, -1102), ("?symbol=ETHUSDT", 400, -1121), ("?symbol=btcusdt", 400, -1121),
                            ("?symbol=BTCUSDT&limit=abc", 400, -1100), ("?symbol=BTCUSDT&limit=0", 400, -1130)):
        st, h, body = http_get(f"{url}/api/v3/depth{q}")
        assert st == status and json.loads(body)["code"] == code, (q, body)
    st, _, body = http_get(f"{url}/api/v3/nothing")
    assert st == 404 and "code" in json.loads(body)
    st, _, body = http_get(f"{url}/fapi/v1/depth?symbol=BTCUSDT")
    assert st == 404
    st, _, body = http_get(f"{url}/api/v3/time")
    assert st == 200 and abs(json.loads(body)["serverTime"] - time.time() * 1000) < 5000
    assert http_get(f"{url}/api/v3/ping")[2] == b"{}"
    st, h, body = http_get(f"{url}/api/v3/exchangeInfo")
    info = json.loads(body)
    assert st == 200 and {r["rateLimitType"] for r in info["rateLimits"]} >= {"REQUEST_WEIGHT", "ORDERS"}
    assert symbol_filters(info) == {"BTCUSDT": ("0.10000000", "0.00100000")}
    assert decoder_units(info, "BTCUSDT") == ("0.10000000", "0.00000001")
    sym = info["symbols"][0]
    assert sym["baseAsset"] == "BTC" and sym["quoteAsset"] == "USDT" and sym["baseAssetPrecision"] == 8
    assert any(f["filterType"] == "NOTIONAL" for f in sym["filters"])


def test_rest_keep_alive(spot_sim):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", spot_sim.port, timeout=5)
    for _ in range(3):
        c.request("GET", "/api/v3/ping")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"{}"
    c.close()


def test_rest_usdm(usdm_sim):
    url = usdm_sim.rest_url
    st, h, body = http_get(f"{url}/fapi/v1/depth?symbol=BTCUSDT")
    d = json.loads(body)
    assert st == 200 and {"lastUpdateId", "E", "T", "bids", "asks"} <= set(d)
    assert len(d["bids"]) == 500
    w0 = int(h["X-MBX-USED-WEIGHT-1M"])
    for limit, weight in ((5, 2), (50, 2), (100, 5), (500, 10), (1000, 20)):
        st, h, body = http_get(f"{url}/fapi/v1/depth?symbol=BTCUSDT&limit={limit}")
        assert st == 200 and len(json.loads(body)["asks"]) == limit
        w1 = int(h["X-MBX-USED-WEIGHT-1M"])
        assert w1 - w0 == weight
        w0 = w1
    st, _, body = http_get(f"{url}/fapi/v1/depth?symbol=BTCUSDT&limit=7")
    assert st == 400 and json.loads(body)["code"] == -1130
    assert http_get(f"{url}/api/v3/depth?symbol=BTCUSDT")[0] == 404
    info = json.loads(http_get(f"{url}/fapi/v1/exchangeInfo")[2])
    assert info["futuresType"] == "U_MARGINED"
    assert symbol_filters(info) == {"BTCUSDT": ("0.1", "0.001")}
    assert info["symbols"][0]["pricePrecision"] == 1 and info["symbols"][0]["quantityPrecision"] == 3
    assert json.loads(http_get(f"{url}/fapi/v1/time")[2])["serverTime"] > 0


# ---------------------------------------------------------------------------
# streams -> exact book
# ---------------------------------------------------------------------------

def _rebuild(sim, urls, market, n_depth=300, deadline=20.0):
    c = BookClient(sim, urls, market)
    try:
        c.sync_up()
        assert c.pump(until=lambda: c.sync.applied >= n_depth, deadline_s=deadline)
        sim.pause()
        assert sim.wait_idle(10)
        assert c.catch_up(10), (c.sync.last_update_id, sim.last_update_id)
        assert c.book_equals_truth()
        assert c.sync.gaps == 0 and c.sync.ids_lost == 0 and c.sync.crossed == 0
        assert c.ticker_checks > 10 and not c.ticker_mismatches, c.ticker_mismatches[:3]
        return c
    finally:
        sim.resume()
        c.close()


def test_spot_stream_rebuilds_ground_truth():
    with make_sim("spot", speed=0.0) as sim:
        c = _rebuild(sim, [sim.ws_url + SPOT_STREAMS], "spot", n_depth=2000)
        assert c.counts["trade"] > 100 and c.counts["malformed"] == 0
        ids = c.depth_ids
        assert all(ids[i][0] == ids[i - 1][1] + 1 for i in range(1, len(ids)))  # contiguous spot ids
        st = sim.stats()
        assert st["connections_accepted"] == 1 and st["messages_sent"]["depth"] >= 2000
        assert st["messages_sent"]["bookTicker"] > 0 and st["rest_requests"]["/api/v3/depth"] >= 1


def test_usdm_public_and_market_rebuild_ground_truth():
    # USD-M snapshots stop at 1000 levels: a book of 400 levels a side fits whole
    with make_sim("usdm", speed=0.0, book_levels=400) as sim:
        urls = [sim.ws_url + "/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker",
                sim.ws_url + "/market/stream?streams=btcusdt@trade/btcusdt@aggTrade"]
        c = _rebuild(sim, urls, "usdm", n_depth=1000)
        ids = c.depth_ids
        assert all(ids[i][2] == ids[i - 1][1] for i in range(1, len(ids)))        # pu chain
        assert c.counts["trade"] > 50


def test_usdm_depth_0ms_and_default_interval(usdm_sim):
    q = __import__("queue").Queue()
    r = Reader(usdm_sim.ws_url + "/public/stream?streams=btcusdt@depth@0ms/btcusdt@depth", q)
    try:
        seen = {}
        end = time.monotonic() + 5
        while time.monotonic() < end and len(seen.get("btcusdt@depth", [])) < 3:
            _, t, data = q.get(timeout=5)
            obj = json.loads(data)
            seen.setdefault(obj["stream"], []).append((t, obj["data"]))
        fast, slow = seen["btcusdt@depth@0ms"], seen["btcusdt@depth"]
        assert len(fast) > 3 * len(slow)
        # @depth: 250 ms windows of exchange time
        Es = [d["E"] for _, d in slow]
        assert all(e % 250 == 0 for e in Es)
        # the pu chain holds on each stream separately
        assert all(fast[i][1]["pu"] == fast[i - 1][1]["u"] for i in range(1, len(fast)))
    finally:
        r.close()


def test_raw_stream_and_routes(usdm_sim, spot_sim):
    import queue
    import websocket
    q = queue.Queue()
    r = Reader(spot_sim.ws_url + "/ws/btcusdt@depth@100ms", q)
    try:
        _, _, data = q.get(timeout=5)
        obj = json.loads(data)
        assert obj["e"] == "depthUpdate" and "stream" not in obj
    finally:
        r.close()
    # as on Binance, every path under /ws/ and /stream opens: names that are no stream are ignored
    # (ccxt opens /ws/0), valid names not delivered on this route/symbol are listed but silent
    cases = ((usdm_sim, "/market/ws/btcusdt@depth", ["btcusdt@depth"]),
             (usdm_sim, "/ws/btcusdt@aggTrade", ["btcusdt@aggTrade"]),
             (usdm_sim, "/public/stream?streams=btcusdt@aggTrade", ["btcusdt@aggTrade"]),
             (spot_sim, "/ws/btcusdt@depth@0ms", []), (spot_sim, "/ws/ethusdt@trade", ["ethusdt@trade"]),
             (spot_sim, "/stream?streams=btcusdt@nothing", []), (spot_sim, "/ws/0", []), (spot_sim, "/stream", []))
    for sim, path, listed in cases:
        silent0 = sim.stats()["control_messages"].get("silent_subscription", 0)
        ws = websocket.create_connection(sim.ws_url + path, timeout=5)
        try:
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
            assert json.loads(ws.recv()) == {"result": listed, "id": 7}, path   # nothing else arrived first
        finally:
            ws.close()
        assert sim.stats()["control_messages"].get("silent_subscription", 0) - silent0 == len(listed), path
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(spot_sim.ws_url + "/nowhere", timeout=5)
    assert ei.value.status_code == 404


# ---------------------------------------------------------------------------
# control messages and connection rules
# ---------------------------------------------------------------------------

def _wait_control(c: BookClient, n: int, deadline=5.0):
    assert c.pump(until=lambda: len(c.control) >= n, deadline_s=deadline), c.control
    return c.control[n - 1]


def test_subscribe_unsubscribe_list(spot_sim):
    c = BookClient(spot_sim, [spot_sim.ws_url + "/ws"], "spot")
    ws = c.readers[0]
    try:
        ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 1})
        assert _wait_control(c, 1) == {"result": None, "id": 1}
        assert c.pump(until=lambda: c.counts["trade"] > 0 and c.counts["bookTicker"] > 0, deadline_s=10)
        ws.send({"method": "LIST_SUBSCRIPTIONS", "id": "abc"})
        assert _wait_control(c, 2) == {"result": ["btcusdt@trade", "btcusdt@bookTicker"], "id": "abc"}
        ws.send({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 3})
        assert _wait_control(c, 3) == {"result": None, "id": 3}
        time.sleep(0.25)
        ws.send({"method": "LIST_SUBSCRIPTIONS", "id": 4})
        assert _wait_control(c, 4) == {"result": ["btcusdt@trade"], "id": 4}
        time.sleep(1.0)
        ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 5})
        err = _wait_control(c, 5)
        assert err["id"] == 5 and err["error"]["code"] == 2
        ws.send({"method": "FROB", "params": [], "id": 6})
        assert _wait_control(c, 6)["error"]["code"] == 2
        time.sleep(1.0)
        ws.ws.send("{not json")
        err = _wait_control(c, 7)
        assert err["error"]["code"] == 3 and err["id"] is None
        ws.send({"method": "LIST_SUBSCRIPTIONS", "id": -1})     # ids are signed 64-bit integers
        assert _wait_control(c, 8) == {"result": ["btcusdt@trade"], "id": -1}
        time.sleep(1.0)
        ws.send({"method": "LIST_SUBSCRIPTIONS", "id": 2 ** 63})
        assert _wait_control(c, 9) == {"error": {"code": 2, "msg": "Invalid request: request ID must be an "
                                                                   "unsigned integer"}, "id": None}
        assert ws.closed is None
    finally:
        c.close()


def test_max_streams():
    with make_sim("spot", speed=1.0, max_streams=2) as sim:
        c = BookClient(sim, [sim.ws_url + "/ws/btcusdt@trade"], "spot")
        try:
            c.readers[0].send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                               "id": 1})
            assert "error" in _wait_control(c, 1)
        finally:
            c.close()


def test_incoming_rate_limit_disconnects(spot_sim):
    c = BookClient(spot_sim, [spot_sim.ws_url + "/ws"], "spot")
    try:
        for i in range(8):
            try:
                c.readers[0].send({"method": "LIST_SUBSCRIPTIONS", "id": i})
            except Exception:  # noqa: BLE001
                break
        c.readers[0].t.join(5)
        assert c.readers[0].closed is not None
        assert len(c.control) <= 5
        assert spot_sim.stats()["disconnects"].get("rate_limit", 0) >= 1
    finally:
        c.close()


def test_ping_pong_timeout_and_lifetime():
    import socket
    from hftmm.simulator.websocket import OP_CLOSE, OP_PING
    sys.path.insert(0, HERE)
    from test_websocket_protocol import RawClient
    with make_sim("spot", speed=1.0, ping_interval_s=0.3, pong_timeout_s=0.8, max_lifetime_s=2.5) as sim:
        # websocket-client answers pings: survives the pong timeout, then the lifetime ends it
        import queue
        q = queue.Queue()
        ok = Reader(sim.ws_url + "/ws/btcusdt@trade", q)
        # a client that never answers pings is closed after the timeout
        raw = RawClient(sim.port, "/ws/btcusdt@bookTicker")
        t0 = time.monotonic()
        pings, close = 0, None
        while time.monotonic() - t0 < 5 and close is None:
            try:
                fin, op, data = raw.recv_frame(timeout=3)
            except (socket.timeout, ConnectionError):
                break
            if op == OP_PING:
                pings += 1
                assert data.isdigit() or b"." in data
            elif op == OP_CLOSE:
                close = (data[:2], time.monotonic() - t0)
        assert pings >= 2 and close is not None and int.from_bytes(close[0], "big") == 1008
        assert 0.8 <= close[1] < 2.5
        assert ok.closed is None
        ok.t.join(5)
        assert ok.closed == "close"       # lifetime (2.5 s): a close frame
        st = sim.stats()["disconnects"]
        assert st["pong_timeout"] == 1 and st["lifetime"] == 1
        raw.close()


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------

def _fault_sim(script, speed=5.0, seed=3, rates=None, **kw):
    return make_sim("spot", speed=speed, faults=FaultConfig(seed=seed, rates=rates or {}, script=script), **kw)


def test_fault_skip_gap_with_right_ids_lost():
    with _fault_sim([Fault("skip", at_message=40, connection=0)]) as sim:
        c = BookClient(sim, [sim.ws_url + "/ws/btcusdt@depth@100ms"], "spot")
        try:
            c.sync_up()
            assert c.pump(until=lambda: c.sync.gaps >= 1, deadline_s=10)
            skipped = sim.stats()["update_ids_skipped"]
            assert sim.stats()["faults"] == {"skip": 1} and skipped > 0
            assert c.sync.ids_lost == skipped and RESYNC_GAP in c.outcomes
            c.sync_up()                       # the client recovers with a new snapshot
            sim.pause()
            assert sim.wait_idle(5) and c.catch_up(5) and c.book_equals_truth()
        finally:
            sim.resume()
            c.close()


def test_fault_duplicate_reorder_malformed_lose_nothing():
    script = [Fault("duplicate", at_message=20, connection=0), Fault("reorder", at_message=30, connection=0),
              Fault("malformed", at_message=35, connection=0, variant="truncated"),
              Fault("malformed", at_message=36, connection=0, variant="garbage"),
              Fault("malformed", at_message=37, connection=0, variant="bad_price")]
    with _fault_sim(script) as sim:
        c = BookClient(sim, [sim.ws_url + "/stream?streams=btcusdt@depth@100ms"], "spot")
        try:
            c.sync_up()
            assert c.pump(until=lambda: c.counts["depth"] >= 50, deadline_s=10)
            ids = [u for _, u, _ in c.depth_ids]
            dup = [i for i in range(1, len(ids)) if ids[i] == ids[i - 1]]
            back = [i for i in range(1, len(ids)) if ids[i] < ids[i - 1]]
            assert len(dup) == 1 and len(back) == 1
            assert c.counts["malformed"] == 3 and c.sync.dropped_old >= 1
            assert sim.stats()["faults"] == {"duplicate": 1, "reorder": 1, "malformed": 3}
            assert any(b'"abc"' in m for m in c.raw_malformed)
            # every message reached the client (the reordered one came one message late)
            got = sorted(set(c.depth_ids))
            assert all(b[0] == a[1] + 1 for a, b in zip(got, got[1:]))
        finally:
            c.close()


def test_fault_delay_and_silent_timing():
    script = [Fault("delay", at_time_s=1.0, connection=0, ms=600),
              Fault("silent", at_time_s=2.5, connection=0, seconds=1.0)]
    with _fault_sim(script, speed=1.0) as sim:
        c = BookClient(sim, [sim.ws_url + SPOT_STREAMS], "spot")
        try:
            c.sync_up()
            c.pump(until=lambda: False, deadline_s=4.5)
            t = np.array(c.arrivals)
            gaps = np.diff(t)
            big = gaps[gaps > 0.45]
            assert len(big) >= 2, gaps.max()
            assert any(0.5 < g < 0.9 for g in big)          # the delay: held, then a burst
            assert any(0.9 < g < 1.4 for g in big)          # the silence
            st = sim.stats()
            assert st["faults"] == {"delay": 1, "silent": 1}
            assert st["fault_effects"]["silenced_messages"] > 0
            assert c.sync.ids_lost > 0                      # silence loses messages, delay does not
        finally:
            c.close()


def test_fault_drop_and_server_shutdown():
    script = [Fault("drop_connection", at_message=10, connection=0),
              Fault("server_shutdown", at_message=10, connection=1, after_s=0.3)]
    with _fault_sim(script, speed=5.0) as sim:
        import queue
        q0, q1 = queue.Queue(), queue.Queue()
        a = Reader(sim.ws_url + "/ws/btcusdt@bookTicker", q0)
        time.sleep(0.05)
        b = Reader(sim.ws_url + "/stream?streams=btcusdt@bookTicker", q1)
        a.t.join(10)
        b.t.join(10)
        assert a.closed is not None and a.closed != "close"     # no close frame
        assert b.closed == "close"
        msgs = []
        while not q1.empty():
            d = q1.get()[2]
            if d is not None:
                msgs.append(json.loads(d))
        assert any(m.get("data", {}).get("e") == "serverShutdown" for m in msgs)
        assert sim.stats()["faults"] == {"drop_connection": 1, "server_shutdown": 1}


def test_fault_stale_snapshot_refused_then_sync():
    with _fault_sim([Fault("stale_snapshot", at_message=1, age_s=3.0)], speed=5.0) as sim:
        time.sleep(1.5)            # 7.5 s of exchange time: a snapshot history to pick from
        c = BookClient(sim, [sim.ws_url + SPOT_STREAMS], "spot")
        try:
            assert c.pump(until=lambda: c.sync.buffered_events > 0, deadline_s=5)
            assert c.fetch_snapshot() == STALE_SNAPSHOT and not c.sync.ready
            assert c.fetch_snapshot() == SYNCED and c.sync.ready
            assert sim.stats()["faults"] == {"stale_snapshot": 1}
        finally:
            c.close()


def test_fault_rest_error():
    script = [Fault("rest_error", at_message=1, status=429, retry_after=7), Fault("rest_error", at_message=2,
                                                                                  status=503)]
    with _fault_sim(script, speed=1.0) as sim:
        st, h, body = http_get(sim.rest_url + "/api/v3/depth?symbol=BTCUSDT")
        assert st == 429 and h["Retry-After"] == "7" and json.loads(body)["code"] == -1003
        st, h, body = http_get(sim.rest_url + "/api/v3/exchangeInfo")
        assert st == 503 and "code" in json.loads(body)
        assert http_get(sim.rest_url + "/api/v3/depth?symbol=BTCUSDT")[0] == 200
        assert sim.stats()["faults"] == {"rest_error": 2}


def _random_fault_run(seed):
    rates = {"skip": 0.02, "duplicate": 0.02, "reorder": 0.02, "malformed": 0.02}
    sim = make_sim("spot", speed=0.0, faults=FaultConfig(seed=seed, rates=rates), start_ns=1_723_161_600 * 10**9)
    sim.start(paused=True)
    try:
        c = BookClient(sim, [sim.ws_url + SPOT_STREAMS], "spot")
        time.sleep(0.1)
        sim.resume()
        assert c.pump(until=lambda: sum(c.counts.values()) >= 1500, deadline_s=20)
        sim.pause()
        log = [e for e in sim.fault_log() if e[1] <= 1000]
        ids = c.depth_ids[:200]
        c.close()
        return log, ids, dict(sim.stats()["faults"])
    finally:
        sim.stop()


def test_random_faults_deterministic():
    a, ids_a, fa = _random_fault_run(11)
    b, ids_b, _ = _random_fault_run(11)
    c, _, _ = _random_fault_run(12)
    assert len(a) > 20 and set(fa) == {"skip", "duplicate", "reorder", "malformed"}
    assert a == b and ids_a == ids_b
    assert a != c


# ---------------------------------------------------------------------------
# capture replay, CLI
# ---------------------------------------------------------------------------

def test_capture_source_rebuilds_ground_truth():
    src = CaptureSource(CAPTURE, speed=0, symbol="BTCUSDT", tick_size="0.01", lot_size="0.00000001")
    sim = ExchangeSimulator(market="spot", source=src)
    sim.start(paused=True)
    try:
        c = BookClient(sim, [sim.ws_url + SPOT_STREAMS], "spot")
        time.sleep(0.1)
        sim.resume()
        c.sync_up()
        end = time.monotonic() + 30
        while not sim.exhausted and time.monotonic() < end:
            c.pump(until=lambda: False, deadline_s=0.2)
        assert sim.exhausted
        assert sim.wait_idle(10) and c.catch_up(10)
        assert c.book_equals_truth()
        assert c.sync.gaps == 0 and c.counts["depth"] > 3000 and c.counts["trade"] > 100
        assert c.ticker_checks > 400 and not c.ticker_mismatches
        assert sim.last_update_id > 50093239218
        c.close()
    finally:
        sim.stop()


def test_cli_add_parser_and_subprocess():
    from hftmm import cli_simulate
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    cli_simulate.add_parser(sub)
    a = p.parse_args(["simulate", "--port", "0", "--market", "usdm", "--speed", "2", "--faults", "5"])
    assert a.port == 0 and a.market == "usdm" and a.speed == 2.0 and a.faults == 5 and a.func
    assert cli_simulate.run(p.parse_args(["simulate", "--port", "0", "--host", "8.8.8.8"])) != 0
    code = ("import sys; sys.argv=['x']; import argparse; from hftmm import cli_simulate as c; "
            "p=argparse.ArgumentParser(); s=p.add_subparsers(); c.add_parser(s); "
            "a=p.parse_args(['simulate','--port','0','--speed','3']); sys.exit(a.func(a))")
    env = dict(os.environ)  # import hftmm as this process does; run outside the source tree (cwd)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True, cwd=tempfile.gettempdir())
    try:
        rest = proc.stdout.readline().split()
        ws = proc.stdout.readline().split()
        assert rest[0] == "REST" and rest[1].startswith("http://127.0.0.1:")
        assert ws[0] == "WS" and ws[1].startswith("ws://127.0.0.1:")
        st, _, body = http_get(rest[1] + "/api/v3/depth?symbol=BTCUSDT&limit=5")
        assert st == 200 and len(json.loads(body)["bids"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
