"""Real Binance client libraries against ``hftmm simulate``, unpatched: binance-connector
(REST, stream and WS API clients) and ccxt (sync REST, ccxt.pro websockets), spot and
USD-M. Every answer is checked against the simulator's own market: books against its
ground truth, klines and 24 h statistics against the trades the client itself fetched,
myTrades against the account's fills. Everything on 127.0.0.1; timeouts only guard
against hangs."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest

from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.synthetic import SyntheticConfig

binance_spot = pytest.importorskip("binance.spot")
ccxt = pytest.importorskip("ccxt")
ccxtpro = pytest.importorskip("ccxt.pro")
from binance.error import ClientError  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SYM = "BTCUSDT"
KEY = "simclientkey0123456789"
SECRET = "simclient-secret-0123456789"
HANG = 20.0            # hang guard (s): never an assertion on speed


def wait_for(cond, what: str, timeout: float = HANG, step: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def make_sim(market: str, **kw) -> ExchangeSimulator:
    cfg = SyntheticConfig(seed=11, book_levels=300)
    return ExchangeSimulator(market=market, source=SyntheticSource(cfg, speed=kw.pop("speed", 5.0)), **kw)


@pytest.fixture(scope="module")
def spot():
    sim = make_sim("spot")
    sim.add_account(KEY, hmac_secret=SECRET, balances={"BTC": "2", "USDT": "500000"})
    with sim:
        wait_for(lambda: sim.tape.trades_seen > 700, "spot trades and aggTrades")
        yield sim


@pytest.fixture(scope="module")
def usdm():
    sim = make_sim("usdm")
    sim.add_api_key(KEY)
    with sim:
        wait_for(lambda: sim.tape.trades_seen > 700, "usdm trades and aggTrades")
        yield sim


class Paused:
    """Freeze the market and let every queued frame out; resume on exit."""

    def __init__(self, sim: ExchangeSimulator) -> None:
        self.sim = sim

    def __enter__(self) -> ExchangeSimulator:
        self.sim.pause()
        assert self.sim.wait_idle(HANG)
        return self.sim

    def __exit__(self, *exc) -> None:
        self.sim.resume()


# ---------------------------------------------------------------------------
# independent reference computations (Decimal, from what the client fetched)
# ---------------------------------------------------------------------------

def all_trades(get_page) -> list[dict]:
    """Every trade through ``get_page(from_id)`` (historicalTrades pages of 1000)."""
    out: list[dict] = []
    nxt = 0
    while True:
        page = get_page(nxt)
        out += page
        if len(page) < 1000:
            return out
        nxt = page[-1]["id"] + 1


def ref_klines(trades: list[dict], iv_ms: int) -> dict[int, dict]:
    """Kline buckets (open ms -> o/h/l/c/v/q/n/V/first/last) from trades."""
    k: dict[int, dict] = {}
    for t in trades:
        o = t["time"] // iv_ms * iv_ms
        p, q = Decimal(t["price"]), Decimal(t["qty"])
        b = k.get(o)
        if b is None:
            b = k[o] = {"o": p, "h": p, "l": p, "c": p, "v": Decimal(0), "q": Decimal(0), "n": 0, "V": Decimal(0),
                        "first": t["id"]}
        b["h"], b["l"], b["c"] = max(b["h"], p), min(b["l"], p), p
        b["v"] += q
        b["q"] += p * q
        b["n"] += 1
        b["last"] = t["id"]
        if not t["isBuyerMaker"]:
            b["V"] += q
    return k


def check_klines(rows: list, trades: list[dict], iv_ms: int, quote_places: str = "0.00000001") -> int:
    """Every kline row agrees with the trades (empty intervals carry the previous close). Returns rows checked."""
    ref = ref_klines(trades, iv_ms)
    first_open = min(ref)
    prev_close = None
    n = 0
    for r in rows:
        o = r[0]
        assert r[6] == o + iv_ms - 1
        if o < first_open:
            continue
        b = ref.get(o)
        if b is None:
            assert Decimal(r[1]) == Decimal(r[4]) == prev_close and Decimal(r[5]) == 0 and r[8] == 0
        else:
            assert (Decimal(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4])) == (b["o"], b["h"], b["l"], b["c"]), r
            assert Decimal(r[5]) == b["v"] and r[8] == b["n"] and Decimal(r[9]) == b["V"], r
            assert abs(Decimal(r[7]) - b["q"]) <= Decimal(quote_places), r
            prev_close = b["c"]
        n += 1
        prev_close = Decimal(r[4])
    return n


def truth_levels(sim, n: int) -> tuple[list, list]:
    """Top ``n`` levels of the ground truth as (Decimal price, Decimal qty) lists."""
    _, bt, bq, at, aq = sim.ground_truth()
    tick, lot = Decimal(sim.tick_size), Decimal(sim.lot_size)
    return ([(t * tick, q * lot) for t, q in zip(bt[:n].tolist(), bq[:n].tolist())],
            [(t * tick, q * lot) for t, q in zip(at[:n].tolist(), aq[:n].tolist())])


def on_tick(sim, price: Decimal) -> Decimal:
    tick = Decimal(sim.tick_size)
    return (price / tick).to_integral_value() * tick


def dec_levels(levels, n: int) -> list:
    return [(Decimal(str(p)), Decimal(str(q))) for p, q, *_ in levels[:n]]


# ---------------------------------------------------------------------------
# binance-connector
# ---------------------------------------------------------------------------

def test_binance_connector_public_rest(spot):
    from binance.spot import Spot

    c = Spot(base_url=spot.rest_url, timeout=10)
    with Paused(spot) as sim:
        assert abs(c.time()["serverTime"] - time.time() * 1000) < 60_000
        info = c.exchange_info(symbol=SYM)
        assert info["symbols"][0]["symbol"] == SYM and info["rateLimits"]
        L, *_ = sim.ground_truth()
        book = c.depth(SYM, limit=50)
        assert book["lastUpdateId"] == L
        tb, ta = truth_levels(sim, 50)
        assert dec_levels(book["bids"], 50) == tb and dec_levels(book["asks"], 50) == ta
        bt = c.book_ticker(SYM)
        assert (Decimal(bt["bidPrice"]), Decimal(bt["bidQty"])) == tb[0]
        assert (Decimal(bt["askPrice"]), Decimal(bt["askQty"])) == ta[0]
        trades = all_trades(lambda i: c.historical_trades(SYM, limit=1000, fromId=i))
        ids = [t["id"] for t in trades]
        assert ids == list(range(ids[0], ids[0] + len(ids))) and len(ids) >= 300
        assert c.trades(SYM, limit=20) == trades[-20:]
        assert c.ticker_price(SYM) == {"symbol": SYM, "price": trades[-1]["price"]}
        for t in trades:
            assert Decimal(t["quoteQty"]) == (Decimal(t["price"]) * Decimal(t["qty"])).quantize(Decimal("1e-8"))
        # klines and uiKlines from the same trades
        rows = c.klines(SYM, "1s", limit=1000)
        assert check_klines(rows, trades, 1000) >= 3
        assert c.ui_klines(SYM, "1s", limit=1000) == rows
        rows_m = c.klines(SYM, "1m", limit=10)
        assert check_klines(rows_m, trades, 60_000) >= 1
        start = rows[1][0]
        some = c.klines(SYM, "1s", startTime=start, endTime=start + 2000)
        assert [r[0] for r in some] == [start, start + 1000, start + 2000] or len(rows) < 4
        # 24 h statistics and the 5-minute average
        t24 = c.ticker_24hr(SYM)
        assert t24["count"] == len(trades) and t24["firstId"] == ids[0] and t24["lastId"] == ids[-1]
        assert Decimal(t24["volume"]) == sum(Decimal(t["qty"]) for t in trades)
        assert Decimal(t24["highPrice"]) == max(Decimal(t["price"]) for t in trades)
        assert Decimal(t24["lowPrice"]) == min(Decimal(t["price"]) for t in trades)
        assert (t24["openPrice"], t24["lastPrice"]) == (trades[0]["price"], trades[-1]["price"])
        assert Decimal(t24["priceChange"]) == Decimal(trades[-1]["price"]) - Decimal(trades[0]["price"])
        assert (Decimal(t24["bidPrice"]), Decimal(t24["askPrice"])) == (tb[0][0], ta[0][0])
        mini = c.ticker_24hr(SYM, type="MINI")
        assert set(mini) == {"symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume",
                             "openTime", "closeTime", "firstId", "lastId", "count"}
        avg = c.avg_price(SYM)
        now_s = max(sim.market_time_ms(), trades[-1]["time"]) // 1000
        win = [t for t in trades if t["time"] // 1000 > now_s - 300]
        vwap = sum(Decimal(t["price"]) * Decimal(t["qty"]) for t in win) / sum(Decimal(t["qty"]) for t in win)
        assert avg["mins"] == 5 and abs(Decimal(avg["price"]) - vwap) <= Decimal("1e-8")
        assert avg["closeTime"] == trades[-1]["time"]
        agg = c.agg_trades(SYM, limit=10)
        assert [a["f"] for a in agg] == ids[-10:] and all(a["p"] == t["price"] for a, t in zip(agg, trades[-10:]))
        assert c.agg_trades(SYM, fromId=agg[0]["a"], limit=3) == agg[:3]
        assert c.agg_trades(SYM, startTime=agg[-1]["T"])[-1] == agg[-1]
        assert c.ticker_24hr(symbols=[SYM]) == [t24] and c.ticker_price(symbols=[SYM]) == [c.ticker_price(SYM)]
    # Binance's error codes for bad parameters
    for call, code in ((lambda: c.klines(SYM, "7m"), -1120), (lambda: c.trades("ETHUSDT"), -1121),
                       (lambda: c.klines(SYM, "1m", startTime=5, endTime=4), -1023),
                       (lambda: c.klines(SYM, "1m", limit="x"), -1100),
                       (lambda: c.ticker_24hr(symbols=[SYM, "ETHUSDT"]), -1121),
                       (lambda: c.ticker_price(symbol="btcusdt"), -1121),
                       (lambda: c.klines(SYM, "1m", timeZone="15"), -1130)):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.status_code == 400 and ei.value.error_code == code


def test_binance_connector_signed_rest(spot):
    from binance.spot import Spot

    c = Spot(api_key=KEY, api_secret=SECRET, base_url=spot.rest_url, timeout=10)
    with Paused(spot) as sim:
        (_, _), (ask, ask_qty) = truth_levels(sim, 1)[0][0], truth_levels(sim, 1)[1][0]
        qty = min(ask_qty, Decimal("0.005"))
        before = c.account()
        r = c.new_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="IOC", quantity=str(qty), price=str(ask))
        assert r["status"] == "FILLED" and r["fills"] and Decimal(r["executedQty"]) == qty
        mine = c.my_trades(SYM, orderId=r["orderId"])
        assert [(Decimal(t["price"]), Decimal(t["qty"]), t["commission"], t["id"]) for t in mine] == \
            [(Decimal(f["price"]), Decimal(f["qty"]), f["commission"], f["tradeId"]) for f in r["fills"]]
        assert all(t["isBuyer"] and not t["isMaker"] and t["orderId"] == r["orderId"] for t in mine)
        assert c.my_trades(SYM)[-len(mine):] == mine
        assert c.my_trades(SYM, fromId=mine[0]["id"]) == mine
        after = c.account()
        b0 = {b["asset"]: Decimal(b["free"]) for b in before["balances"]}
        b1 = {b["asset"]: Decimal(b["free"]) for b in after["balances"]}
        assert b1["BTC"] - b0["BTC"] == qty - sum(Decimal(t["commission"]) for t in mine)
        assert b0["USDT"] - b1["USDT"] == sum(Decimal(t["quoteQty"]) for t in mine)
        rest = c.new_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                           price=str(on_tick(sim, ask * Decimal("0.9"))))
        assert [o["orderId"] for o in c.get_open_orders(SYM)] == [rest["orderId"]]
        assert c.get_order(SYM, orderId=rest["orderId"])["status"] == "NEW"
        assert c.cancel_order(SYM, orderId=rest["orderId"])["status"] == "CANCELED"
        with pytest.raises(ClientError) as ei:
            c.my_trades(SYM, fromId=1, startTime=1)
        assert ei.value.error_code == -1128
        # spot listenKeys were retired on 2026-02-20: Binance answers 410 Gone
        with pytest.raises(ClientError) as ei:
            c.new_listen_key()
        assert ei.value.status_code == 410


def _stream_client(url: str, msgs: list, lock: threading.Lock, **kw):
    from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

    def on_message(_, raw):
        with lock:
            msgs.append(json.loads(raw))
    return SpotWebsocketStreamClient(stream_url=url, on_message=on_message, **kw)


def test_binance_connector_streams_partial_depth_and_klines(spot):
    """depth5@100ms equals the book rebuilt from the diff stream at the same update id;
    closed 1 s klines equal the REST klines and count the trades of the trade stream."""
    from binance.spot import Spot

    msgs: list = []
    lock = threading.Lock()
    rest = Spot(base_url=spot.rest_url, timeout=10)
    spot.pause()
    try:
        assert spot.wait_idle(HANG)
        L, bt, bq, at, aq = spot.ground_truth()
        book = [dict(zip(bt.tolist(), bq.tolist())), dict(zip(at.tolist(), aq.tolist()))]
        ws = _stream_client(spot.ws_url, msgs, lock)
        ws.diff_book_depth(symbol=SYM, speed=100, id=1)
        ws.partial_book_depth(symbol=SYM, level=5, speed=100, id=2)
        ws.kline(symbol=SYM, interval="1s", id=3)
        ws.trade(symbol=SYM, id=4)
        wait_for(lambda: sum(1 for m in msgs if m.get("result", 0) is None) == 4, "4 subscribe acks")
    finally:
        spot.resume()
    try:
        wait_for(lambda: sum(1 for m in msgs if m.get("e") == "kline" and m["k"]["x"]) >= 4, "closed klines")
    finally:
        spot.pause()
    try:
        assert spot.wait_idle(HANG)
        time.sleep(0.2)
        ws.stop()
        tick, lot = Decimal(spot.tick_size), Decimal(spot.lot_size)
        applied, pending, checked = L, [], 0

        def top(n):
            b = sorted(book[0].items(), reverse=True)[:n]
            a = sorted(book[1].items())[:n]
            return [[f"{t * tick:.8f}", f"{q * lot:.8f}"] for t, q in b], [[f"{t * tick:.8f}", f"{q * lot:.8f}"]
                                                                             for t, q in a]
        for m in list(msgs):
            if "lastUpdateId" in m:
                pending.append(m)
            elif m.get("e") == "depthUpdate":
                if m["u"] <= applied:
                    continue
                assert m["U"] == applied + 1
                for side, key in ((0, "b"), (1, "a")):
                    for p, q in m[key]:
                        t, n = int(Decimal(p) / tick), int(Decimal(q) / lot)
                        if n:
                            book[side][t] = n
                        else:
                            book[side].pop(t, None)
                applied = m["u"]
            else:
                continue
            for pm in [p for p in pending if p["lastUpdateId"] <= applied]:
                assert pm["lastUpdateId"] == applied
                assert (pm["bids"], pm["asks"]) == top(5)
                pending.remove(pm)
                checked += 1
        assert checked >= 5 and not [p for p in pending if p["lastUpdateId"] < applied]
        trade_times = [m["T"] for m in msgs if m.get("e") == "trade"]
        closed = [m["k"] for m in msgs if m.get("e") == "kline" and m["k"]["x"]]
        for k in closed:
            row = rest.klines(SYM, "1s", startTime=k["t"], endTime=k["t"])[0]
            assert [row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10]] == \
                [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"]]
            if trade_times and k["t"] > trade_times[0] // 1000 * 1000:
                assert k["n"] == sum(1 for t in trade_times if k["t"] <= t <= k["T"])
    finally:
        spot.resume()


def test_binance_connector_ws_api(spot):
    from binance.websocket.spot.websocket_api import SpotWebsocketAPIClient

    answers: dict = {}
    lock = threading.Lock()

    def on_message(_, raw):
        m = json.loads(raw)
        with lock:
            answers[m.get("id")] = m
    c = SpotWebsocketAPIClient(stream_url=spot.ws_url + "/ws-api/v3", api_key=KEY, api_secret=SECRET,
                               on_message=on_message)
    try:
        with Paused(spot) as sim:
            calls = {"depth": lambda i: c.order_book(symbol=SYM, limit=20, id=i),
                     "trades": lambda i: c.recent_trades(symbol=SYM, limit=5, id=i),
                     "klines": lambda i: c.klines(symbol=SYM, interval="1s", limit=5, id=i),
                     "avg": lambda i: c.avg_price(symbol=SYM, id=i),
                     "price": lambda i: c.ticker_price(symbol=SYM, id=i),
                     "book": lambda i: c.ticker_book(symbol=SYM, id=i),
                     "mine": lambda i: c.my_trades(symbol=SYM, id=i),
                     "acct": lambda i: c.account(id=i)}
            for name, call in calls.items():
                call(name)
            c.exchange_info(symbol=SYM)       # the client sends its own id here
            wait_for(lambda: len(answers) >= len(calls) + 1, "WS API answers")
            info = next(a["result"] for k, a in answers.items() if k not in calls)
            assert all(answers[n]["status"] == 200 for n in calls), answers
            r = {n: answers[n]["result"] for n in calls}
            L, *_ = sim.ground_truth()
            tb, ta = truth_levels(sim, 20)
            assert r["depth"]["lastUpdateId"] == L and dec_levels(r["depth"]["bids"], 20) == tb
            assert dec_levels(r["depth"]["asks"], 20) == ta
            assert info["symbols"][0]["symbol"] == SYM and info["rateLimits"]
            from binance.spot import Spot
            rest = Spot(api_key=KEY, api_secret=SECRET, base_url=sim.rest_url)
            assert r["trades"] == rest.trades(SYM, limit=5)
            assert r["klines"] == rest.klines(SYM, "1s", limit=5)
            assert r["avg"] == rest.avg_price(SYM) and r["price"] == rest.ticker_price(SYM)
            assert r["book"] == rest.book_ticker(SYM)
            assert r["mine"] == rest.my_trades(SYM)
            assert {b["asset"] for b in r["acct"]["balances"]} >= {"BTC", "USDT"}
            assert "rateLimits" in answers["depth"]
    finally:
        c.stop()


# ---------------------------------------------------------------------------
# ccxt (sync REST)
# ---------------------------------------------------------------------------

def _loopback_urls(obj, sim):
    """Every URL ccxt knows, pointed at the simulator: nothing ever leaves 127.0.0.1 (unknown paths 404 there)."""
    import re
    for k, v in list(obj.items()):
        if isinstance(v, dict):
            _loopback_urls(v, sim)
        elif isinstance(v, str) and re.match(r"^(https?|wss?)://", v):
            base = sim.ws_url if v.startswith("ws") else sim.rest_url
            obj[k] = re.sub(r"^(https?|wss?)://[^/]+", base, v)


def ccxt_spot(sim, cls=None):
    ex = (cls or ccxt.binance)({"apiKey": KEY, "secret": SECRET, "timeout": 10_000, "enableRateLimit": False,
                               "options": {"fetchCurrencies": False, "fetchMargins": False,
                                           "fetchMarkets": {"types": ["spot"]}}})
    _loopback_urls(ex.urls, sim)
    for k in ("public", "private"):
        ex.urls["api"][k] = sim.rest_url + "/api/v3"
    if isinstance(ex.urls["api"].get("ws"), dict):
        ex.urls["api"]["ws"]["spot"] = sim.ws_url + "/ws"
        ex.urls["api"]["ws"]["ws-api"]["spot"] = sim.ws_url + "/ws-api/v3"
    return ex


def ccxt_usdm(sim, cls=None):
    ex = (cls or ccxt.binanceusdm)({"apiKey": KEY, "secret": SECRET, "timeout": 10_000, "enableRateLimit": False,
                                    "options": {"fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False,
                                                                   "fetchMargins": False}})
    _loopback_urls(ex.urls, sim)
    if isinstance(ex.urls["api"].get("ws"), dict):
        ex.urls["api"]["ws"]["linear"] = sim.ws_url + "/ws"
    return ex


def test_ccxt_rest_spot(spot):
    ex = ccxt_spot(spot)
    ex.load_markets()
    m = ex.market("BTC/USDT")
    assert m["id"] == SYM and m["spot"]
    with Paused(spot) as sim:
        ob = ex.fetch_order_book("BTC/USDT", limit=100)
        tb, ta = truth_levels(sim, 100)
        assert dec_levels(ob["bids"], 100) == tb and dec_levels(ob["asks"], 100) == ta
        assert ob["nonce"] == sim.ground_truth()[0]
        trades = ex.fetch_trades("BTC/USDT", limit=1000)        # ccxt reads aggTrades
        assert [int(t["id"]) for t in trades] == [t["info"]["a"] for t in trades] == sorted(int(t["id"]) for t in trades)
        raw = all_trades(lambda i: ex.publicGetHistoricalTrades({"symbol": SYM, "limit": 1000, "fromId": i}))
        by_id = {r["id"]: r for r in raw}
        for t in trades:
            r = by_id[t["info"]["f"]]
            assert (Decimal(t["info"]["p"]), t["info"]["T"]) == (Decimal(r["price"]), r["time"])
        candles = ex.fetch_ohlcv("BTC/USDT", "1s", limit=1000)
        ref = ref_klines(raw, 1000)
        full = [c for c in candles if c[0] in ref and c[0] > raw[0]["time"] // 1000 * 1000]
        assert len(full) >= 2
        for c in full:
            b = ref[c[0]]
            assert [Decimal(str(x)) for x in c[1:6]] == [b["o"], b["h"], b["l"], b["c"], b["v"]]
        tk = ex.fetch_ticker("BTC/USDT")
        assert Decimal(str(tk["last"])) == Decimal(raw[-1]["price"])
        assert Decimal(str(tk["bid"])) == tb[0][0] and Decimal(str(tk["ask"])) == ta[0][0]
        ba = ex.fetch_bids_asks(["BTC/USDT"])["BTC/USDT"]
        assert (Decimal(str(ba["bid"])), Decimal(str(ba["ask"]))) == (tb[0][0], ta[0][0])
        ask, ask_qty = ta[0]
        qty = min(ask_qty, Decimal("0.004"))
        o = ex.create_order("BTC/USDT", "limit", "buy", float(qty), float(ask), {"timeInForce": "IOC"})
        assert o["status"] == "closed" and Decimal(str(o["filled"])) == qty
        mine = ex.fetch_my_trades("BTC/USDT")
        fills = [t for t in mine if t["order"] == o["id"]]
        assert sum(Decimal(str(t["amount"])) for t in fills) == qty and all(t["side"] == "buy" for t in fills)
        assert fills == [t for t in mine if t["order"] == o["id"]]
        bal = ex.fetch_balance()
        assert bal["BTC"]["free"] > 0 and bal["USDT"]["free"] > 0
        low = ex.create_order("BTC/USDT", "limit", "buy", 0.001, float(on_tick(sim, ask * Decimal("0.9"))))
        assert [x["id"] for x in ex.fetch_open_orders("BTC/USDT")] == [low["id"]]
        assert ex.cancel_order(low["id"], "BTC/USDT")["status"] == "canceled"


def test_ccxt_rest_usdm(usdm):
    ex = ccxt_usdm(usdm)
    ex.load_markets()
    assert ex.market("BTC/USDT:USDT")["id"] == SYM
    with Paused(usdm) as sim:
        ob = ex.fetch_order_book("BTC/USDT:USDT", limit=50)
        tb, ta = truth_levels(sim, 50)
        assert dec_levels(ob["bids"], 50) == tb and dec_levels(ob["asks"], 50) == ta
        trades = ex.fetch_trades("BTC/USDT:USDT", limit=1000)     # aggTrades
        assert [int(t["id"]) for t in trades] == sorted(int(t["id"]) for t in trades) and trades
        rows = ex.fapiPublicGetKlines({"symbol": SYM, "interval": "1m", "limit": 1500})
        trades_all = all_trades(lambda i: [{**r, "id": int(r["id"]), "time": int(r["time"]),
                                            "isBuyerMaker": r["isBuyerMaker"] in (True, "true")}
                                           for r in ex.fapiPublicGetHistoricalTrades(
                                               {"symbol": SYM, "limit": 1000, "fromId": i})])
        rows = [[int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], int(r[8]), r[9], r[10], r[11]]
                for r in rows]
        assert check_klines(rows, trades_all, 60_000, quote_places="0.0000000001") >= 1
        candles = ex.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=5)
        assert [[Decimal(str(x)) for x in c[1:6]] for c in candles] == \
            [[Decimal(x) for x in r[1:6]] for r in rows[-len(candles):]]
        by_id = {t["id"]: t for t in trades_all}
        for t in trades:
            r = by_id[int(t["info"]["f"])]
            assert Decimal(t["info"]["p"]) == Decimal(r["price"]) and int(t["info"]["T"]) == r["time"]
        tk = ex.fetch_ticker("BTC/USDT:USDT")
        assert Decimal(str(tk["last"])) == Decimal(trades_all[-1]["price"])
        assert Decimal(str(tk["baseVolume"])) == sum(Decimal(t["qty"]) for t in trades_all)
        mp = ex.fetch_mark_price("BTC/USDT:USDT") if ex.has.get("fetchMarkPrice") else None
        if mp is not None:
            assert Decimal(str(mp["markPrice"])) == (tb[0][0] + ta[0][0]) / 2


# ---------------------------------------------------------------------------
# ccxt.pro (async websockets)
# ---------------------------------------------------------------------------

async def ccxt_book_is_truth(ex, sim, symbol: str, n: int = 100) -> tuple[list, list]:
    """With the market paused: once ccxt.pro has applied the last update id, its book's
    top ``n`` levels equal the ground truth. Returns the truth's (bids, asks)."""
    assert sim.wait_idle(HANG)
    L, *_ = sim.ground_truth()
    end = time.monotonic() + HANG
    while ex.orderbooks[symbol]["nonce"] != L and time.monotonic() < end:
        await asyncio.sleep(0.02)
    ob = ex.orderbooks[symbol]
    assert ob["nonce"] == L
    tb, ta = truth_levels(sim, n)
    assert dec_levels(ob["bids"], n) == tb and dec_levels(ob["asks"], n) == ta
    return tb, ta


def test_ccxt_pro_spot_book_trades_klines_orders(spot):
    async def main():
        ex = ccxt_spot(spot, ccxtpro.binance)
        try:
            await ex.load_markets()
            seen_trades: list = []
            await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), HANG)
            for _ in range(5):
                seen_trades += await asyncio.wait_for(ex.watch_trades("BTC/USDT"), HANG)
            end = time.monotonic() + HANG
            while time.monotonic() < end:
                await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT", "1s"), HANG)
                if len(ex.ohlcvs["BTC/USDT"]["1s"]) >= 3:
                    break
            ohlcv = list(ex.ohlcvs["BTC/USDT"]["1s"])
            # the book ccxt maintains equals the ground truth once the market is frozen
            spot.pause()
            try:
                tb, ta = await ccxt_book_is_truth(ex, spot, "BTC/USDT")
                ws_k = await asyncio.wait_for(ex.fetch_ohlcv_ws("BTC/USDT", "1s", limit=50), HANG)   # WS API klines
                assert ws_k == (await ex.fetch_ohlcv("BTC/USDT", "1s", limit=50))
                ws_t = await asyncio.wait_for(ex.fetch_trades_ws("BTC/USDT", limit=20), HANG)  # trades.historical
                assert [t["id"] for t in ws_t] == [str(i["id"]) for i in
                                                    await ex.publicGetTrades({"symbol": SYM, "limit": 20})]
                rest_trades = {int(t["id"]): t for t in await ex.fetch_trades("BTC/USDT", limit=1000)}
                for t in seen_trades:
                    r = rest_trades.get(int(t["id"]))
                    if r is not None:
                        assert (r["price"], r["amount"], r["side"]) == (t["price"], t["amount"], t["side"])
                assert any(int(t["id"]) in rest_trades for t in seen_trades)
                rest_k = {c[0]: c for c in await ex.fetch_ohlcv("BTC/USDT", "1s", limit=1000)}
                closed = ohlcv[:-1]
                assert closed and all(rest_k[c[0]] == c for c in closed)
                # orders over the WS API, their updates over the WS API user-data subscription
                orders_task = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
                await asyncio.sleep(0.3)
                ask, ask_qty = ta[0]
                qty = min(ask_qty, Decimal("0.003"))
                o = await asyncio.wait_for(ex.create_order_ws("BTC/USDT", "limit", "buy", float(qty), float(ask),
                                                              {"timeInForce": "IOC"}), HANG)
                assert Decimal(str(o["filled"])) == qty
                updates = await asyncio.wait_for(orders_task, HANG)
                assert any(u["id"] == o["id"] for u in updates)
                end = time.monotonic() + HANG
                while time.monotonic() < end and ex.orders.hashmap.get("BTC/USDT", {}).get(o["id"], {}).get(
                        "status") != "closed":
                    await asyncio.sleep(0.02)
                assert ex.orders.hashmap["BTC/USDT"][o["id"]]["status"] == "closed"
                mine = await asyncio.wait_for(ex.fetch_my_trades_ws("BTC/USDT"), HANG)   # WS API myTrades
                assert sum(Decimal(str(t["amount"])) for t in mine if t["order"] == o["id"]) == qty
            finally:
                spot.resume()
        finally:
            await ex.close()
    asyncio.run(main())


def test_ccxt_pro_usdm_book_klines_mark_price(usdm):
    async def main():
        ex = ccxt_usdm(usdm, ccxtpro.binanceusdm)
        try:
            await ex.load_markets()
            await asyncio.wait_for(ex.watch_order_book("BTC/USDT:USDT"), HANG)
            trades = await asyncio.wait_for(ex.watch_trades("BTC/USDT:USDT"), HANG)
            assert trades and trades[-1]["symbol"] == "BTC/USDT:USDT"
            ohlcv = await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT:USDT", "1m"), HANG)
            mark = await asyncio.wait_for(ex.watch_mark_price("BTC/USDT:USDT"), HANG) \
                if ex.has.get("watchMarkPrice") else None
            usdm.pause()
            try:
                await ccxt_book_is_truth(ex, usdm, "BTC/USDT:USDT")
                assert ohlcv and ohlcv[-1][0] % 60_000 == 0
                if mark is not None:
                    assert mark["info"]["e"] == "markPriceUpdate" and Decimal(mark["info"]["p"]) > 0
            finally:
                usdm.resume()
        finally:
            await ex.close()
    asyncio.run(main())


# ---------------------------------------------------------------------------
# protocol details clients rely on
# ---------------------------------------------------------------------------

def test_ws_api_return_rate_limits_every_method(spot):
    import websocket

    from hftmm.execution.signing import HmacSigner, signed_ws_params

    signer = HmacSigner(KEY, SECRET)
    for url, default in ((spot.ws_url + "/ws-api/v3", True), (spot.ws_url + "/ws-api/v3?returnRateLimits=false",
                                                              False)):
        ws = websocket.create_connection(url, timeout=HANG)
        try:
            def call(method, params, rid, ws=ws):
                ws.send(json.dumps({"id": rid, "method": method, "params": params}))
                while True:
                    m = json.loads(ws.recv())
                    if m.get("id") == rid:
                        return m
            for i, flag in enumerate((None, True, False)):
                extra = {} if flag is None else {"returnRateLimits": flag}
                want = default if flag is None else flag
                for method, params in (("time", {}), ("depth", {"symbol": SYM, "limit": 5}),
                                       ("klines", {"symbol": SYM, "interval": "1m", "limit": 2}),
                                       ("account.status", None), ("myTrades", {"symbol": SYM}),
                                       ("openOrders.status", {"symbol": SYM})):
                    if params is None or method in ("myTrades", "openOrders.status"):
                        params = signed_ws_params({**(params or {}), **extra}, signer, int(time.time() * 1000))
                    else:
                        params = {**params, **extra}
                    m = call(method, params, f"{method}-{i}")
                    assert m["status"] == 200, m
                    assert ("rateLimits" in m) == want, (url, method, flag, m)
            bad = call("time", {"returnRateLimits": "maybe"}, "bad")
            assert bad["status"] == 400 and bad["error"]["code"] == -1130
        finally:
            ws.close()


def test_stream_subscribe_protocol_on_ws_n(spot, usdm):
    """ccxt's /ws/<n> then SUBSCRIBE; replies, errors and the incoming limit as Binance documents them."""
    import websocket

    for sim, limit in ((spot, 5), (usdm, 10)):
        base = "/ws/3" if sim is spot else "/public/ws/0"
        ws = websocket.create_connection(sim.ws_url + base, timeout=HANG)
        try:
            def ctl(obj, ws=ws):
                ws.send(obj if isinstance(obj, str) else json.dumps(obj))
                while True:
                    m = json.loads(ws.recv())
                    if "id" in m and ("result" in m or "error" in m):
                        return m
            assert ctl({"method": "SUBSCRIBE", "params": ["btcusdt@depth5@100ms"], "id": "a1b2"}) == \
                {"result": None, "id": "a1b2"}
            assert ctl({"method": "LIST_SUBSCRIPTIONS", "id": None}) == {"result": ["btcusdt@depth5@100ms"], "id": None}
            time.sleep(1.1)
            assert ctl({"method": "SUBSCRIBE", "params": ["btcusdt@depth7"], "id": 5})["error"]["code"] == 2
            assert ctl({"method": "SUBSCRIBE", "params": [], "id": 6, "x": 1}) == \
                {"error": {"code": 2, "msg": "Invalid request: too many parameters"}, "id": 6}
            assert ctl('{"params":[], "id": 7}')["error"]["msg"].startswith("Invalid request: missing field `method`")
            time.sleep(1.1)
            assert ctl({"method": "GET_PROPERTY", "params": ["combined"], "id": 8}) == {"result": False, "id": 8}
            assert ctl("{oops")["error"]["code"] == 3
        finally:
            ws.close()
        # the incoming limit: more than `limit` messages in a second closes the connection
        ws = websocket.create_connection(sim.ws_url + base, timeout=HANG)
        try:
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
                for i in range(limit * 4):
                    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                end = time.monotonic() + HANG
                while time.monotonic() < end:
                    ws.recv()
        finally:
            ws.close()


def test_usdm_partial_depth_kline_and_mark_price_formats(usdm):
    import websocket

    ws = websocket.create_connection(usdm.ws_url + "/market/stream?streams=btcusdt@kline_1m/btcusdt@markPrice@1s",
                                     timeout=HANG)
    ws2 = websocket.create_connection(usdm.ws_url + "/public/ws/btcusdt@depth10@100ms", timeout=HANG)
    try:
        got = defaultdict(list)
        end = time.monotonic() + HANG
        while (len(got["kline"]) < 2 or len(got["mark"]) < 2) and time.monotonic() < end:
            m = json.loads(ws.recv())
            got["kline" if m["stream"].endswith("kline_1m") else "mark"].append(m["data"])
        k = got["kline"][-1]
        assert k["e"] == "kline" and set(k["k"]) == {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x",
                                                      "q", "V", "Q", "B"}
        mp = got["mark"][-1]
        assert mp["e"] == "markPriceUpdate" and mp["r"] == "0.00010000" and mp["T"] % (8 * 3600 * 1000) == 0
        parts = [json.loads(ws2.recv()) for _ in range(3)]
        for p in parts:
            assert p["e"] == "depthUpdate" and len(p["b"]) == 10 and len(p["a"]) == 10 and p["U"] <= p["u"]
        assert all(parts[i]["pu"] == parts[i - 1]["u"] for i in range(1, 3))
    finally:
        ws.close()
        ws2.close()


def test_tls_self_signed(tmp_path):
    import ssl
    import urllib.request

    import websocket

    with make_sim("spot", tls=str(tmp_path)) as sim:
        assert sim.rest_url.startswith("https://") and sim.ws_url.startswith("wss://")
        assert sim.cert_path == str(tmp_path / "hftmm-simulator-cert.pem")
        ctx = ssl.create_default_context(cafile=sim.cert_path)
        with urllib.request.urlopen(sim.rest_url + "/api/v3/ticker/bookTicker?symbol=BTCUSDT", context=ctx) as r:
            assert json.loads(r.read())["symbol"] == SYM
        ws = websocket.create_connection(sim.ws_url + "/ws/btcusdt@trade", timeout=HANG,
                                         sslopt={"ca_certs": sim.cert_path})
        try:
            assert json.loads(ws.recv())["e"] == "trade"
        finally:
            ws.close()
        with pytest.raises(urllib.error.URLError):   # untrusted without the certificate
            urllib.request.urlopen(sim.rest_url + "/api/v3/ping", context=ssl.create_default_context(), timeout=5)
        ex = ccxt_spot(sim)
        ex.validateServerSsl = sim.cert_path     # requests gets verify=<our CA>
        assert ex.fetch_order_book("BTC/USDT", limit=5)["bids"]


def test_cli_tls_prints_the_certificate(tmp_path):
    import signal
    import ssl
    import subprocess
    import tempfile
    import urllib.request

    code = ("import sys, argparse; from hftmm import cli_simulate as c; p=argparse.ArgumentParser(); "
            "s=p.add_subparsers(); c.add_parser(s); "
            f"a=p.parse_args(['simulate','--port','0','--tls','--tls-dir',{str(tmp_path)!r}]); sys.exit(a.func(a))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir())
    try:
        rest, ws, cert = (proc.stdout.readline().split() for _ in range(3))
        assert rest[0] == "REST" and rest[1].startswith("https://127.0.0.1:") and ws[1].startswith("wss://127.0.0.1:")
        assert cert[:2] == ["TLS", "certificate"] and cert[2] == str(tmp_path / "hftmm-simulator-cert.pem")
        ctx = ssl.create_default_context(cafile=cert[2])
        with urllib.request.urlopen(rest[1] + "/api/v3/ticker/price?symbol=BTCUSDT", context=ctx, timeout=HANG) as r:
            assert json.loads(r.read())["symbol"] == SYM
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_spot_ticker_mini_ticker_and_avg_price_streams_agree_with_the_trades(spot):
    """Each 24hrTicker names its last trade (L): that trade, from the trade stream of the same
    connection, has the ticker's last price and quantity; ccxt.pro's watch_ticker reads it."""
    import websocket

    ws = websocket.create_connection(spot.ws_url + "/stream?streams=btcusdt@trade/btcusdt@ticker/btcusdt@miniTicker/"
                                     "btcusdt@avgPrice", timeout=HANG)
    try:
        got = defaultdict(list)
        end = time.monotonic() + HANG
        while min(len(got[k]) for k in ("ticker", "miniTicker", "avgPrice")) < 3 and time.monotonic() < end:
            m = json.loads(ws.recv())
            got[m["stream"].split("@")[1]].append(m["data"])
        for _ in range(50):                       # the trades printed with the last ticker
            m = json.loads(ws.recv())
            got[m["stream"].split("@")[1]].append(m["data"])
    finally:
        ws.close()
    trades = {t["t"]: t for t in got["trade"]}
    checked = 0
    for tk in got["ticker"]:
        assert tk["e"] == "24hrTicker" and tk["C"] - tk["O"] == 86_400_000 and tk["n"] == tk["L"] - tk["F"] + 1
        assert Decimal(tk["l"]) <= Decimal(tk["c"]) <= Decimal(tk["h"]) and Decimal(tk["b"]) < Decimal(tk["a"])
        t = trades.get(tk["L"])
        if t is not None:
            assert (t["p"], t["q"]) == (tk["c"], tk["Q"])
            checked += 1
    assert checked >= 1
    assert all(m["e"] == "24hrMiniTicker" and set(m) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
               for m in got["miniTicker"])
    last_t = max(t["T"] for t in got["trade"])
    assert all(a["e"] == "avgPrice" and a["i"] == "5m" and a["T"] <= last_t and Decimal(a["w"]) > 0
               for a in got["avgPrice"])

    async def main():
        ex = ccxt_spot(spot, ccxtpro.binance)
        try:
            await ex.load_markets()
            tk = await asyncio.wait_for(ex.watch_ticker("BTC/USDT"), HANG)
            assert tk["symbol"] == "BTC/USDT" and tk["last"] > 0 and tk["baseVolume"] > 0
            assert tk["info"]["e"] in ("24hrTicker", "24hrMiniTicker") and tk["high"] >= tk["last"] >= tk["low"]
        finally:
            await ex.close()
    asyncio.run(main())


def test_capture_replay_serves_its_own_trades_as_klines_and_tickers():
    """A recorded capture (real Binance spot data): REST trades are the capture's trades, and klines /
    24 h statistics agree with them (binance-connector as the client)."""
    from binance.spot import Spot

    from hftmm.simulator import CaptureSource

    capture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "hftbacktest-collector",
                           "spot_btcusdt_20240808.gz")
    src = CaptureSource(capture, speed=0, symbol=SYM, tick_size="0.01", lot_size="0.00000001")
    with ExchangeSimulator(market="spot", source=src) as sim:
        wait_for(lambda: sim.exhausted, "the capture to end")
        c = Spot(base_url=sim.rest_url, timeout=10)
        trades = all_trades(lambda i: c.historical_trades(SYM, limit=1000, fromId=i))
        assert len(trades) > 100 and trades[0]["time"] // 1000 > 1723000000   # 2024-08-07..08: the capture's own
        rows = c.klines(SYM, "1m", limit=1000)
        assert check_klines(rows, trades, 60_000) >= 1
        t24 = c.ticker_24hr(SYM)
        assert t24["count"] == len(trades) and Decimal(t24["volume"]) == sum(Decimal(t["qty"]) for t in trades)
        assert c.ticker_price(SYM)["price"] == trades[-1]["price"]
