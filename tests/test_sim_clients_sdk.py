"""Binance's official Python SDK (binance-sdk-spot: typed pydantic models for every REST,
WS API and stream answer) against the simulator, unpatched. Its models keep fields they
do not know in ``additional_properties``: every answer must leave that empty (field
names as Binance's schema has them), and the values must be the simulator's market."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

pytest.importorskip("binance_sdk_spot")

from binance_sdk_spot.spot import (ConfigurationRestAPI, ConfigurationWebSocketAPI,  # noqa: E402
                                   ConfigurationWebSocketStreams, Spot)

from hftmm.simulator import ExchangeSimulator, SyntheticSource  # noqa: E402
from hftmm.synthetic import SyntheticConfig  # noqa: E402

SYM = "BTCUSDT"
KEY, SECRET = "sdkkey0123456789", "sdk-secret-0123456789"
HANG = 20.0


def unknown_fields(obj, path="") -> list[str]:
    """Paths of non-empty ``additional_properties`` anywhere in a pydantic answer."""
    from pydantic import BaseModel

    out: list[str] = []
    if isinstance(obj, BaseModel):
        extra = getattr(obj, "additional_properties", None)
        if extra:
            out.append(f"{path or type(obj).__name__}: {sorted(extra)}")
        inner = getattr(obj, "actual_instance", None)
        if inner is not None:
            out += unknown_fields(inner, path)
        for name in type(obj).model_fields:
            if name not in ("additional_properties", "actual_instance"):
                out += unknown_fields(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            out += unknown_fields(x, f"{path}[{i}]")
    return out


@pytest.fixture(scope="module")
def sim():
    s = ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=5, book_levels=300), speed=5.0))
    s.add_account(KEY, hmac_secret=SECRET, balances={"BTC": "1", "USDT": "200000"})
    with s:
        end = time.monotonic() + HANG
        while s.tape.trades_seen < 400 and time.monotonic() < end:
            time.sleep(0.02)
        yield s


def test_sdk_rest_models_and_values(sim):
    from binance_sdk_spot.rest_api.models import KlinesIntervalEnum, NewOrderSideEnum, NewOrderTypeEnum
    from binance_sdk_spot.rest_api.models import NewOrderTimeInForceEnum

    r = Spot(config_rest_api=ConfigurationRestAPI(api_key=KEY, api_secret=SECRET, base_path=sim.rest_url,
                                                  timeout=10_000)).rest_api
    sim.pause()
    try:
        assert sim.wait_idle(HANG)
        L, bt, bq, at, aq = sim.ground_truth()
        tick, lot = Decimal(sim.tick_size), Decimal(sim.lot_size)
        answers = {
            "depth": r.depth(SYM, 20).data(), "trades": r.get_trades(SYM, 50).data(),
            "hist": r.historical_trades(SYM, 50).data(), "agg": r.agg_trades(SYM, limit=50).data(),
            "klines": r.klines(SYM, KlinesIntervalEnum["INTERVAL_1s"].value, limit=20).data(),
            "ui": r.ui_klines(SYM, KlinesIntervalEnum["INTERVAL_1s"].value, limit=20).data(),
            "t24": r.ticker24hr(symbol=SYM).data(), "price": r.ticker_price(symbol=SYM).data(),
            "book": r.ticker_book_ticker(symbol=SYM).data(), "avg": r.avg_price(SYM).data(),
            "info": r.exchange_info(symbol=SYM).data(), "acct": r.get_account().data(),
        }
        o = r.new_order(SYM, NewOrderSideEnum["BUY"].value, NewOrderTypeEnum["LIMIT"].value,
                        time_in_force=NewOrderTimeInForceEnum["IOC"].value, quantity=float(min(aq[0] * lot,
                                                                                                Decimal("0.002"))),
                        price=float(at[0] * tick)).data()
        answers["order"] = o
        answers["mine"] = r.my_trades(SYM).data()
        for name, a in answers.items():
            assert unknown_fields(a) == [], name
        d = answers["depth"]
        assert d.last_update_id == L
        assert [[Decimal(p), Decimal(q)] for p, q in d.bids] == [[t * tick, n * lot] for t, n in zip(bt[:20], bq[:20])]
        assert answers["trades"] == answers["hist"] or [t.id for t in answers["trades"]] == [t.id for t in answers["hist"]]
        assert [a.f for a in answers["agg"]] == [t.id for t in answers["trades"]]
        assert answers["klines"] == answers["ui"] and sum(k[8] for k in answers["klines"]) > 0
        t24 = answers["t24"].actual_instance
        assert t24.last_price == answers["price"].actual_instance.price == answers["trades"][-1].price
        bk = answers["book"].actual_instance
        assert (Decimal(bk.bid_price), Decimal(bk.ask_price)) == (bt[0] * tick, at[0] * tick)
        assert answers["avg"].mins == 5 and answers["avg"].close_time == answers["trades"][-1].time
        assert answers["info"].symbols[0].symbol == SYM
        assert o.status == "FILLED" and [f.trade_id for f in o.fills] == [t.id for t in answers["mine"]][-len(o.fills):]
    finally:
        sim.resume()


def test_sdk_streams_and_ws_api(sim):
    from binance_sdk_spot.websocket_streams.models import (KlineIntervalEnum, PartialBookDepthLevelsEnum,
                                                           PartialBookDepthUpdateSpeedEnum)

    async def main():
        c = Spot(config_ws_streams=ConfigurationWebSocketStreams(stream_url=sim.ws_url),
                 config_ws_api=ConfigurationWebSocketAPI(api_key=KEY, api_secret=SECRET,
                                                         stream_url=sim.ws_url + "/ws-api/v3"))
        got: dict[str, list] = {"kline": [], "depth": [], "trade": [], "user": []}
        conn = await c.websocket_streams.create_connection()       # SUBSCRIBEs with UUID request ids
        try:
            (await conn.kline(symbol="btcusdt", interval=KlineIntervalEnum["INTERVAL_1s"].value)).on(
                "message", got["kline"].append)
            (await conn.partial_book_depth(symbol="btcusdt", levels=PartialBookDepthLevelsEnum["LEVELS_10"].value,
                                           update_speed=PartialBookDepthUpdateSpeedEnum["UPDATE_SPEED_100ms"].value)
             ).on("message", got["depth"].append)
            (await conn.trade(symbol="btcusdt")).on("message", got["trade"].append)
            end = time.monotonic() + HANG
            while time.monotonic() < end and not all(len(got[k]) >= 3 for k in ("kline", "depth", "trade")):
                await asyncio.sleep(0.05)
            assert all(len(got[k]) >= 3 for k in ("kline", "depth", "trade")), {k: len(v) for k, v in got.items()}
            for k in ("kline", "depth", "trade"):
                assert unknown_fields(got[k]) == [], k
            assert all(len(d.bids) == 10 and len(d.asks) == 10 for d in got["depth"])
            assert all(t.s == SYM and Decimal(t.q) > 0 for t in got["trade"])
        finally:
            await conn.close_connection()
        api = await c.websocket_api.create_connection()
        try:
            sub = await api.user_data_stream_subscribe_signature()
            sub.stream.on("message", got["user"].append)
            sim.pause()
            try:
                assert sim.wait_idle(HANG)
                L, bt, bq, at, aq = sim.ground_truth()
                depth = (await api.depth(symbol=SYM, limit=10)).data()
                assert depth.result.last_update_id == L and depth.status == 200
                assert unknown_fields(depth.result) == []
                tick, lot = Decimal(sim.tick_size), Decimal(sim.lot_size)
                assert [(Decimal(a[0]), Decimal(a[1])) for a in depth.result.asks] == \
                    [(t * tick, n * lot) for t, n in zip(at[:10], aq[:10])]
                price = float(bt[0] * tick * Decimal("0.95") // tick * tick)
                placed = (await api.order_place(symbol=SYM, side="BUY", type="LIMIT", time_in_force="GTC",
                                                quantity=0.001, price=price)).data()
                assert placed.result.status == "NEW"
                await api.order_cancel(symbol=SYM, order_id=placed.result.order_id)
                end = time.monotonic() + HANG
                while time.monotonic() < end and sum(1 for u in got["user"] if _event(u) == "ExecutionReport") < 2:
                    await asyncio.sleep(0.05)
                reports = [u.actual_instance for u in got["user"] if _event(u) == "ExecutionReport"]
                assert [(u.x, u.X, u.i) for u in reports[:2]] == [("NEW", "NEW", placed.result.order_id),
                                                                  ("CANCELED", "CANCELED", placed.result.order_id)]
                assert unknown_fields(got["user"]) == []   # executionReport / outboundAccountPosition fields
                mine = (await api.my_trades(symbol=SYM)).data()
                assert mine.status == 200 and unknown_fields(mine.result) == []
            finally:
                sim.resume()
        finally:
            await api.close_connection()
    asyncio.run(main())


def _event(u) -> str:
    """The model name of a user-data event (ExecutionReport, OutboundAccountPosition, ...)."""
    return type(getattr(u, "actual_instance", u)).__name__
