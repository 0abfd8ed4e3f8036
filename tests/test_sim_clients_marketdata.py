"""The simulator's public market data without sockets (hftmm.simulator.marketdata): kline
buckets and time zones, the one-second/one-minute tape against a brute-force fold,
bounded memory, parameter errors, and the USD-M listenKey life cycle."""
from __future__ import annotations

import calendar
import json
import random
import urllib.error
import urllib.request

import pytest

from hftmm.simulator.marketdata import (MS_D, MS_H, MarketTape, PublicApi, bucket_open, parse_time_zone,
                                        shift_open)
from hftmm.simulator.orders import ApiError
from hftmm.synthetic import DecimalFormatter


def ms(y, mo, d, h=0, mi=0, s=0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000


def test_bucket_open_weeks_months_and_time_zones():
    t = ms(2024, 8, 8, 13, 47, 5) + 123            # a Thursday
    assert bucket_open(t, "1s") == t - 123 and bucket_open(t, "1m") == ms(2024, 8, 8, 13, 47)
    assert bucket_open(t, "4h") == ms(2024, 8, 8, 12) and bucket_open(t, "3d") % (3 * MS_D) == 0
    assert bucket_open(t, "1w") == ms(2024, 8, 5)   # Monday 00:00 UTC
    assert bucket_open(t, "1M") == ms(2024, 8, 1)
    assert shift_open(ms(2024, 12, 1), "1M", 1) == ms(2025, 1, 1) and shift_open(ms(2024, 3, 1), "1M", -2) == ms(2024, 1, 1)
    tz = parse_time_zone("8")
    assert tz == 8 * MS_H and bucket_open(t, "1d", tz) == ms(2024, 8, 8) - 8 * MS_H   # 21:47 in UTC+8: same day
    assert bucket_open(ms(2024, 8, 8, 17), "1d", tz) == ms(2024, 8, 9) - 8 * MS_H     # 01:00 next day in UTC+8
    assert parse_time_zone("-1:00") == -MS_H and parse_time_zone("05:45") == (5 * 60 + 45) * 60_000
    assert parse_time_zone("+14:00") == 14 * MS_H and bucket_open(t, "1M", parse_time_zone("-12")) == ms(2024, 8, 1) + 12 * MS_H
    for bad in ("15", "-12:30", "8:60", "x", "1:2"):
        with pytest.raises(ApiError) as ei:
            parse_time_zone(bad)
        assert ei.value.code == -1130, bad


def _brute(trades, s0, s1):
    sel = [t for t in trades if s0 <= t[3] // 1000 <= s1]
    if not sel:
        return None
    px = [t[1] for t in sel]
    return [px[0], max(px), min(px), px[-1], sum(t[2] for t in sel), sum(t[1] * t[2] for t in sel), len(sel),
            sel[0][0], sel[-1][0], sum(t[2] for t in sel if not t[4]), sum(t[1] * t[2] for t in sel if not t[4])]


def test_tape_folds_equal_a_brute_force_fold_and_memory_is_bounded():
    rng = random.Random(3)
    tape = MarketTape(max_trades=500, max_seconds=86400)
    trades, t = [], ms(2024, 1, 1)
    for i in range(1, 3001):
        t += rng.choice((0, 3, 250, 1000, 17_000, 61_000))
        tr = (i, rng.randint(900, 1100), rng.randint(1, 50), t, rng.random() < 0.5)
        trades.append(tr)
        tape.add_trade(*tr)
    s_first, s_last = trades[0][3] // 1000, trades[-1][3] // 1000
    for _ in range(300):
        a = rng.randint(s_first - 100, s_last + 100)
        b = a + rng.choice((0, 1, 59, 60, 61, 119, 3600, 7 * 3600, 86400))
        assert tape.aggregate(a, b) == _brute(trades, a, b), (a, b)
    assert len(tape.t_id) <= 500 * 1.25 and list(tape.t_id)[-1] == 3000
    # one-second buckets never cover more than max_seconds (+1 h of slack) of market time
    for i in range(3001, 3100):
        t += 3600_000
        tape.add_trade(i, 1000, 1, t, True)
    assert tape.sec[-1] - tape.sec[0] <= 86400 + 3600 and tape.mins[0] >= tape.sec[0] // 60


class _Book:
    def best_bid(self):
        return 999

    def best_ask(self):
        return 1001

    def best_bid_qty(self):
        return 5

    def best_ask_qty(self):
        return 7


def _api(market="spot"):
    tape = MarketTape()
    px = DecimalFormatter("0.01", 8 if market == "spot" else 0)
    qty = DecimalFormatter("0.001", 8 if market == "spot" else 0)
    t0 = ms(2024, 8, 8, 10)
    for i in range(1, 121):                     # one trade every 30 s for an hour
        tape.add_trade(i, 1000 + i % 7, 10 + i % 3, t0 + i * 30_000, i % 2 == 0)
    now = t0 + 121 * 30_000
    return PublicApi(market, "BTCUSDT", "0.01", "0.001", tape, _Book, px, qty, lambda: now, lambda: 42), t0, now


def test_klines_params_ranges_and_empty_intervals():
    api, t0, now = _api()
    rows = api.ep_klines({"symbol": "BTCUSDT", "interval": "1m", "limit": "1000"})
    assert rows[0][0] == bucket_open(t0 + 30_000, "1m") and rows[-1][0] == bucket_open(now, "1m")
    assert all(b[0] - a[0] == 60_000 for a, b in zip(rows, rows[1:]))           # no gaps
    assert sum(r[8] for r in rows) == 120 and all(r[8] in (0, 1, 2) for r in rows)
    last5 = api.ep_klines({"symbol": "BTCUSDT", "interval": "1m", "limit": "5"})
    assert last5 == rows[-5:]
    mid = rows[10][0]
    assert api.ep_klines({"symbol": "BTCUSDT", "interval": "1m", "startTime": str(mid - 1), "limit": "2"}) == rows[10:12]
    assert api.ep_klines({"symbol": "BTCUSDT", "interval": "1m", "endTime": str(mid), "limit": "3"}) == rows[8:11]
    assert api.ep_klines({"symbol": "BTCUSDT", "interval": "1h", "timeZone": "05:45"})[0][0] % MS_H == 15 * 60_000
    for p, code in (({"interval": "1m"}, -1102), ({"symbol": "ETHUSDT", "interval": "1m"}, -1121),
                    ({"symbol": "BTCUSDT"}, -1102), ({"symbol": "BTCUSDT", "interval": "2m"}, -1120),
                    ({"symbol": "BTCUSDT", "interval": "1m", "limit": "-1"}, -1100),
                    ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
                    ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "9", "endTime": "8"}, -1023)):
        with pytest.raises(ApiError) as ei:
            api.ep_klines(p)
        assert ei.value.code == code, p
    usdm, _, _ = _api("usdm")
    with pytest.raises(ApiError) as ei:
        usdm.ep_klines({"symbol": "BTCUSDT", "interval": "1s"})            # USD-M has no 1s klines
    assert ei.value.code == -1120


def test_ticker_shapes_spot_and_usdm():
    api, t0, now = _api()
    t = api.ep_ticker24hr({"symbol": "BTCUSDT"})
    assert list(t) == ["symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice",
                       "lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice",
                       "lowPrice", "volume", "quoteVolume", "openTime", "closeTime", "firstId", "lastId", "count"]
    assert t["count"] == 120 and (t["firstId"], t["lastId"]) == (1, 120) and t["bidPrice"] == "9.99000000"
    assert t["closeTime"] - t["openTime"] == MS_D and t["closeTime"] == now
    u, _, _ = _api("usdm")
    tu = u.ep_ticker24hr({"symbol": "BTCUSDT"})
    assert "bidPrice" not in tu and "prevClosePrice" not in tu and tu["lastPrice"] == "10.01"
    assert u.ep_bookTicker({"symbol": "BTCUSDT"})["lastUpdateId"] == 42
    assert u.ep_tickerPrice({"symbol": "BTCUSDT"})["time"] == now - 30_000     # the last trade
    assert json.dumps(u.ep_premiumIndex({})[0]["markPrice"]) == '"10.00000000"'


def test_usdm_listen_key_life_cycle():
    from hftmm.simulator import ExchangeSimulator, SyntheticSource
    from hftmm.synthetic import SyntheticConfig
    import websocket

    with ExchangeSimulator(market="usdm", source=SyntheticSource(SyntheticConfig(seed=2), speed=1.0)) as sim:
        sim.add_api_key("usdmkey1")

        def call(method, key="usdmkey1"):
            req = urllib.request.Request(sim.rest_url + "/fapi/v1/listenKey", method=method,
                                         headers={"X-MBX-APIKEY": key} if key else {})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        st, a = call("POST")
        assert st == 200 and len(a["listenKey"]) == 64
        assert call("POST") == (200, a) and call("PUT") == (200, a)       # the same key while it is valid
        ws = websocket.create_connection(sim.ws_url + "/private/ws?listenKey=" + a["listenKey"], timeout=10)
        ws.close()
        assert call("POST", key="")[1]["code"] == -2014 and call("POST", key="other")[1]["code"] == -2015
        assert call("DELETE") == (200, {})
        assert call("PUT") == (400, {"code": -1125, "msg": "This listenKey does not exist."})
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(sim.ws_url + "/private/ws?listenKey=" + a["listenKey"], timeout=10)
        for v in ("v1", "v2"):     # USD-M serves the price ticker under both versions
            with urllib.request.urlopen(f"{sim.rest_url}/fapi/{v}/ticker/price?symbol=BTCUSDT", timeout=10) as r:
                assert set(json.loads(r.read())) == {"symbol", "price", "time"}


def test_unit_parser_and_queued_payloads_match_direct_recording():
    from decimal import Decimal

    from hftmm.simulator.marketdata import UnitParser

    rng = random.Random(9)
    for step in ("0.01", "0.10", "0.001", "0.00000001", "1", "5", "0.5", "0.00025"):
        parse = UnitParser(step)
        for _ in range(300):
            s = f"{rng.randint(0, 10 ** 6)}.{rng.randint(0, 10 ** 8):08d}"[: rng.randint(1, 17)].rstrip(".")
            assert parse(s) == int(Decimal(s) / Decimal(step)), (step, s)
    direct, queued = MarketTape("0.01", "0.001"), MarketTape("0.01", "0.001")
    for i in range(1, 5000):
        p, q, t, m = f"{1000 + i % 13}.{i % 100:02d}", f"0.{i % 997:03d}", 1_700_000_000_000 + i * 137, i % 3 == 0
        direct.add_trade(i, int(Decimal(p) / Decimal("0.01")), int(Decimal(q) / Decimal("0.001")), t, m)
        queued.add_trade_payload(json.dumps({"e": "trade", "t": i, "p": p, "q": q, "T": t,
                                             "m": m, "M": True}).encode())
        queued.add_trade_payload(json.dumps({"e": "aggTrade", "a": i, "p": p, "q": q, "f": i, "l": i, "T": t,
                                             "m": m}).encode(), agg=True)
    queued.add_trade_payload(b'{"e":"trade","t":"x"}')        # unreadable: counted, skipped
    assert queued.trades_seen == 2 * 4999 + 1
    queued.sync()
    assert queued.unreadable == 1 and list(queued.t_id) == list(direct.t_id) and queued.bkt == direct.bkt
    assert list(queued.a_first) == list(direct.t_id) and queued.mbkt == direct.mbkt
