"""USD-M order entry of the exchange simulator, end to end over signed REST and the
listenKey user data stream on 127.0.0.1: positions, commission, realised PnL,
margin and leverage limits, GTX, reduce-only, hedge mode, isolated margin,
funding, margin calls and liquidation, batch orders and the order-count limits.

Every amount is checked exactly (Decimal) against the arithmetic it must equal."""
from __future__ import annotations

import itertools
import json
import os
import queue
import sys
import time
import urllib.request
from decimal import Decimal as D

import pytest

from hftmm.execution.margin import LeverageBrackets, liquidation_price
from hftmm.execution.signing import HmacSigner
from hftmm.simulator import ExchangeSimulator, SyntheticSource
from hftmm.simulator.futures import DEFAULT_BRACKETS, FuturesLimits
from hftmm.synthetic import SyntheticConfig

sys.path.insert(0, os.path.dirname(__file__))
from sim_client import Reader  # noqa: E402
from sim_trading_client import rest  # noqa: E402

SYM = "BTCUSDT"
TICK, LOT = D("0.10"), D("0.001")
MAKER, TAKER = D("0.0002"), D("0.0005")
_names = itertools.count(1)


def make_sim(**kw) -> ExchangeSimulator:
    sim = ExchangeSimulator(market="usdm", source=SyntheticSource(SyntheticConfig(seed=7)), **kw)
    return sim.start(paused=True)


@pytest.fixture(scope="module")
def sim():
    s = make_sim()
    yield s
    s.stop()


def account(sim, wallet: str = "10000") -> HmacSigner:
    key = f"fut{next(_names)}"
    sim.add_account(key, hmac_secret=f"secret-{key}", balances={"USDT": wallet})
    return HmacSigner(key, f"secret-{key}")


def top(sim) -> tuple[D, D]:
    _, bt, _, at, _ = sim.ground_truth()
    return D(int(bt[0])) * TICK, D(int(at[0])) * TICK


def call(sim, signer, method, path, **p):
    return rest(sim, method, path, p, signer)


def order(sim, signer, **p):
    return rest(sim, "POST", "/fapi/v1/order", {"symbol": SYM, **p}, signer)


def acct(sim, signer) -> dict:
    st, _, b = rest(sim, "GET", "/fapi/v3/account", {}, signer)
    assert st == 200
    return b


def pos(sim, signer, side: str = "BOTH") -> dict:
    st, _, rows = rest(sim, "GET", "/fapi/v2/positionRisk", {"symbol": SYM}, signer)
    assert st == 200
    return next(r for r in rows if r["positionSide"] == side)


class UserStream:
    """A listenKey stream: POST /fapi/v1/listenKey, then ``/private/ws?listenKey=``."""

    def __init__(self, sim, signer) -> None:
        req = urllib.request.Request(sim.rest_url + "/fapi/v1/listenKey", method="POST",
                                     headers={"X-MBX-APIKEY": signer.api_key})
        with urllib.request.urlopen(req, timeout=5) as r:
            self.key = json.loads(r.read())["listenKey"]
        self.q: queue.Queue = queue.Queue()
        self.reader = Reader(sim.ws_url + "/private/ws?listenKey=" + self.key, self.q)

    def events(self, n: int = 0, timeout: float = 10.0, until=None) -> list[dict]:
        """``n`` events, or the events up to the first ``until(event)`` is true for."""
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while n == 0 or len(out) < n:
            try:
                _, _, data = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if data is None:
                break
            out.append(json.loads(data))
            if until is not None and until(out[-1]):
                break
        return out

    def close(self) -> None:
        self.reader.close()


def wallet(sim, signer) -> D:
    return D(acct(sim, signer)["totalWalletBalance"])


# ---------------------------------------------------------------------------

def test_exchange_info_limits_and_order_count_headers():
    with make_sim(limits=FuturesLimits(orders_10s=3, orders_1m=50)) as s:
        s_ = account(s)
        bid, _ = top(s)
        for i in range(3):
            st, h, b = order(s, s_, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002",
                             price=str(bid - i * TICK))
            assert st == 200 and h["x-mbx-order-count-10s"] == str(i + 1) and h["x-mbx-order-count-1m"] == str(i + 1)
        st, h, b = order(s, s_, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002", price=str(bid))
        assert (st, b["code"]) == (429, -1015) and "300" not in b["msg"] and "3 orders per 10 SECOND" in b["msg"]
        assert int(h["retry-after"]) >= 1
    with make_sim() as s:
        with urllib.request.urlopen(f"{s.rest_url}/fapi/v1/exchangeInfo", timeout=5) as r:
            info = json.loads(r.read())
        limits = {(x["rateLimitType"], x["interval"], x["intervalNum"]): x["limit"] for x in info["rateLimits"]}
        assert limits == {("REQUEST_WEIGHT", "MINUTE", 1): 2400, ("ORDERS", "MINUTE", 1): 1200,
                          ("ORDERS", "SECOND", 10): 300}


def test_gtx_rests_or_is_rejected_unrecorded(sim):
    s = account(sim)
    bid, ask = top(sim)
    st, _, b = order(sim, s, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002", price=str(bid),
                     newClientOrderId="gtx-ok")
    assert st == 200 and b["status"] == "NEW" and b["timeInForce"] == "GTX" and b["positionSide"] == "BOTH"
    st, _, b = order(sim, s, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002", price=str(ask),
                     newClientOrderId="gtx-take")
    assert (st, b["code"]) == (400, -5022)
    st, _, b = call(sim, s, "GET", "/fapi/v1/order", symbol=SYM, origClientOrderId="gtx-take")
    assert (st, b["code"]) == (400, -2013)          # "will not be recorded in the order history"
    st, _, b = call(sim, s, "DELETE", "/fapi/v1/allOpenOrders", symbol=SYM)
    assert st == 200 and b == {"code": 200, "msg": "The operation of cancel all open order is done."}
    st, _, b = call(sim, s, "GET", "/fapi/v1/openOrders", symbol=SYM)
    assert b == []


def test_taker_buy_then_maker_sell_commission_and_realised_pnl_exact(sim):
    s = account(sim)
    us = UserStream(sim, s)
    try:
        bid, ask = top(sim)
        st, _, b = order(sim, s, side="BUY", type="MARKET", quantity="0.010", newOrderRespType="RESULT")
        assert st == 200 and b["status"] == "FILLED" and D(b["avgPrice"]) == ask
        fee1 = (ask * D("0.010") * TAKER).quantize(D("1e-8"))
        p = pos(sim, s)
        assert D(p["positionAmt"]) == D("0.010") and D(p["entryPrice"]) == ask
        # a resting sell two ticks above the ask, filled by a market trade through it
        sell_px = ask + 2 * TICK
        st, _, b = order(sim, s, side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.010", price=str(sell_px))
        assert st == 200
        sim.inject_trade(str(sell_px + TICK), "1", buyer_maker=False)
        fee2 = (sell_px * D("0.010") * MAKER).quantize(D("1e-8"))
        realised = (sell_px - ask) * D("0.010")
        assert D(pos(sim, s)["positionAmt"]) == 0
        assert wallet(sim, s) == D("10000") - fee1 - fee2 + realised
        ev = us.events(6)
        kinds = [(e["e"], e.get("o", {}).get("x"), e.get("a", {}).get("m")) for e in ev]
        assert kinds == [("ORDER_TRADE_UPDATE", "NEW", None), ("ORDER_TRADE_UPDATE", "TRADE", None),
                         ("ACCOUNT_UPDATE", None, "ORDER"), ("ORDER_TRADE_UPDATE", "NEW", None),
                         ("ORDER_TRADE_UPDATE", "TRADE", None), ("ACCOUNT_UPDATE", None, "ORDER")]
        t1, t2, last = ev[1]["o"], ev[4]["o"], ev[5]["a"]
        assert (D(t1["n"]), t1["N"], t1["m"]) == (fee1, "USDT", False)
        assert (D(t2["n"]), t2["m"], D(t2["rp"])) == (fee2, True, realised)
        assert D(last["B"][0]["wb"]) == D("10000") - fee1 - fee2 + realised
        assert last["P"][0]["pa"] == "0.000" and D(last["P"][0]["cr"]) == realised
        st, _, rows = call(sim, s, "GET", "/fapi/v1/income", incomeType="REALIZED_PNL")
        assert [D(r["income"]) for r in rows] == [realised]
        st, _, trades = call(sim, s, "GET", "/fapi/v1/userTrades", symbol=SYM)
        assert [(t["side"], t["maker"], D(t["realizedPnl"])) for t in trades] == [("BUY", False, 0),
                                                                                ("SELL", True, realised)]
    finally:
        us.close()


def test_margin_and_leverage_limits(sim):
    s = account(sim, "1000")
    bid, _ = top(sim)
    st, _, b = call(sim, s, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="126")
    assert (st, b["code"]) == (400, -4028)
    st, _, b = call(sim, s, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="5")
    assert st == 200 and b["leverage"] == 5
    # 5x on 1000 USDT: 5000 of notional; 0.080 at ~61.8k = ~4950 fits, 0.081 more does not
    st, _, b = order(sim, s, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.080", price=str(bid))
    assert st == 200
    st, _, b = order(sim, s, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002", price=str(bid))
    assert (st, b["code"], b["msg"]) == (400, -2019, "Margin is insufficient.")
    # the opposite side nets against nothing but the larger side counts: a sell of the same size fits
    st, _, b = order(sim, s, side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.080", price=str(bid + 50 * TICK))
    assert st == 200
    a = acct(sim, s)
    assert D(a["totalOpenOrderInitialMargin"]) == (D("0.080") * (bid + 50 * TICK) / 5)
    # notional under MIN_NOTIONAL (100) is refused unless reduce-only
    st, _, b = order(sim, s, side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.001",
                     price=str(bid + 50 * TICK))
    assert (st, b["code"]) == (400, -4164) and "no smaller than 100" in b["msg"]
    # leverage 125: the first bracket's 50,000 cap binds before the margin does
    big = account(sim, "1000000")
    assert call(sim, big, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="125")[0] == 200
    st, _, b = order(sim, big, side="BUY", type="LIMIT", timeInForce="GTX", quantity="1", price=str(bid))
    assert (st, b["code"]) == (400, -2027)
    call(sim, s, "DELETE", "/fapi/v1/allOpenOrders", symbol=SYM)


def test_reduce_only(sim):
    s = account(sim)
    bid, ask = top(sim)
    st, _, b = order(sim, s, side="SELL", type="MARKET", quantity="0.005", reduceOnly="true")
    assert (st, b["code"]) == (400, -2022)
    assert order(sim, s, side="BUY", type="MARKET", quantity="0.005")[0] == 200
    # reduce-only for more than the position: fills the position only, the rest expires;
    # a small reduce-only order is allowed under MIN_NOTIONAL
    st, _, b = order(sim, s, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.009", price=str(ask + TICK),
                     reduceOnly="true", newClientOrderId="ro")
    assert st == 200 and b["reduceOnly"] is True
    st, _, b2 = order(sim, s, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.001",
                      price=str(ask + 5 * TICK), reduceOnly="true", newClientOrderId="ro-small")
    assert st == 200
    sim.inject_trade(str(ask + 2 * TICK), "1", buyer_maker=False)
    st, _, q = call(sim, s, "GET", "/fapi/v1/order", symbol=SYM, origClientOrderId="ro")
    assert (q["status"], q["executedQty"]) == ("EXPIRED", "0.005")
    st, _, q = call(sim, s, "GET", "/fapi/v1/order", symbol=SYM, origClientOrderId="ro-small")
    assert q["status"] == "EXPIRED"           # flat: no position backs it any more
    assert D(pos(sim, s)["positionAmt"]) == 0
    # a position flipped to the order's own side no longer backs it either: it never adds exposure
    assert order(sim, s, side="BUY", type="MARKET", quantity="0.005")[0] == 200
    assert order(sim, s, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.005", price=str(ask + TICK),
                 reduceOnly="true", newClientOrderId="ro-flip")[0] == 200
    assert order(sim, s, side="SELL", type="MARKET", quantity="0.010")[0] == 200
    st, _, q = call(sim, s, "GET", "/fapi/v1/order", symbol=SYM, origClientOrderId="ro-flip")
    assert (q["status"], q["executedQty"]) == ("EXPIRED", "0.000")
    sim.inject_trade(str(ask + 2 * TICK), "1", buyer_maker=False)
    assert D(pos(sim, s)["positionAmt"]) == D("-0.005")


def test_hedge_mode_positions_and_parameter_rules(sim):
    s = account(sim)
    st, _, b = call(sim, s, "POST", "/fapi/v1/positionSide/dual", dualSidePosition="false")
    assert (st, b["code"]) == (400, -4059)
    assert call(sim, s, "POST", "/fapi/v1/positionSide/dual", dualSidePosition="true")[2] == \
        {"code": 200, "msg": "success"}
    assert call(sim, s, "GET", "/fapi/v1/positionSide/dual")[2] == {"dualSidePosition": True}
    st, _, b = order(sim, s, side="BUY", type="MARKET", quantity="0.004")
    assert (st, b["code"]) == (400, -4061)
    st, _, b = order(sim, s, side="BUY", type="MARKET", quantity="0.004", positionSide="LONG", reduceOnly="true")
    assert (st, b["code"]) == (400, -1106)
    assert order(sim, s, side="BUY", type="MARKET", quantity="0.004", positionSide="LONG")[0] == 200
    assert order(sim, s, side="SELL", type="MARKET", quantity="0.003", positionSide="SHORT")[0] == 200
    assert D(pos(sim, s, "LONG")["positionAmt"]) == D("0.004")
    assert D(pos(sim, s, "SHORT")["positionAmt"]) == D("-0.003")
    # closing the long is SELL LONG (never more than the long)
    st, _, b = order(sim, s, side="SELL", type="MARKET", quantity="0.004", positionSide="LONG")
    assert st == 200 and D(pos(sim, s, "LONG")["positionAmt"]) == 0
    st, _, b = call(sim, s, "POST", "/fapi/v1/positionSide/dual", dualSidePosition="false")
    assert (st, b["code"]) == (400, -4068)       # the short is still open


def test_margin_type(sim):
    s = account(sim)
    st, _, b = call(sim, s, "POST", "/fapi/v1/marginType", symbol=SYM, marginType="CROSSED")
    assert (st, b["code"]) == (400, -4046)
    assert call(sim, s, "POST", "/fapi/v1/marginType", symbol=SYM, marginType="ISOLATED")[0] == 200
    assert call(sim, s, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="10")[0] == 200
    st, _, b = order(sim, s, side="BUY", type="MARKET", quantity="0.010", newOrderRespType="RESULT")
    p = pos(sim, s)
    assert p["marginType"] == "isolated" and D(p["isolatedWallet"]) == D("0.010") * D(b["avgPrice"]) / 10
    st, _, b = call(sim, s, "POST", "/fapi/v1/marginType", symbol=SYM, marginType="CROSSED")
    assert (st, b["code"]) == (400, -4048)


def test_funding_exact_long_pays_short_receives(sim):
    long_, short = account(sim), account(sim)
    assert order(sim, long_, side="BUY", type="MARKET", quantity="0.020")[0] == 200
    assert order(sim, short, side="SELL", type="MARKET", quantity="0.030")[0] == 200
    us = UserStream(sim, long_)
    try:
        w_long, w_short = wallet(sim, long_), wallet(sim, short)
        mark = D(pos(sim, long_)["markPrice"])
        paid = sim.settle_funding("0.00037")
        rate = D("0.00037")
        assert paid[long_.api_key] == (D("0.020") * mark * rate).quantize(D("1e-8"))
        assert wallet(sim, long_) == w_long - (D("0.020") * mark * rate).quantize(D("1e-8"))
        assert wallet(sim, short) == w_short + (D("0.030") * mark * rate).quantize(D("1e-8"))
        ev = us.events(1)[0]
        assert ev["e"] == "ACCOUNT_UPDATE" and ev["a"]["m"] == "FUNDING_FEE" and ev["a"]["P"] == []
        assert D(ev["a"]["B"][0]["bc"]) == -(D("0.020") * mark * rate).quantize(D("1e-8"))
        st, _, rows = call(sim, short, "GET", "/fapi/v1/income", incomeType="FUNDING_FEE")
        assert [D(r["income"]) for r in rows] == [(D("0.030") * mark * rate).quantize(D("1e-8"))]
    finally:
        us.close()


def test_funding_clock_and_premium_index():
    with make_sim(funding_interval_s=0.5, funding_rate="-0.0002") as s:
        a = account(s)
        assert order(s, a, side="BUY", type="MARKET", quantity="0.010")[0] == 200
        with urllib.request.urlopen(f"{s.rest_url}/fapi/v1/premiumIndex?symbol={SYM}", timeout=5) as r:
            pi = json.loads(r.read())
        assert pi["lastFundingRate"] == "-0.00020000" and pi["nextFundingTime"] % 500 == 0
        deadline = time.monotonic() + 20
        while not any(a.api_key in paid for _, _, paid in s.funding_log) and time.monotonic() < deadline:
            time.sleep(0.05)
        t, rate, paid = next(x for x in s.funding_log if a.api_key in x[2])
        assert t % 500 == 0 and rate.startswith("-0.0002") and paid[a.api_key] < 0     # a long receives


def test_liquidation_at_the_liquidation_price_and_margin_call():
    with make_sim(margin_call_ratio="0.5") as s:
        a = account(s, "1000")
        us = UserStream(s, a)
        try:
            assert call(s, a, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="20")[0] == 200
            st, _, b = order(s, a, side="BUY", type="MARKET", quantity="0.300", newOrderRespType="RESULT")
            assert st == 200
            bid, _ = top(s)
            assert order(s, a, side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.002",
                         price=str(bid - 100 * TICK))[0] == 200
            p = pos(s, a)
            lp = D(p["liquidationPrice"])
            w = wallet(s, a)
            brackets = LeverageBrackets.from_api(DEFAULT_BRACKETS)
            # the entry is printed to 8 decimals: the same price within what that rounding moves it
            assert abs(lp - liquidation_price(brackets, D("0.300"), D(p["entryPrice"]), w)) < D("1e-6")
            above = (lp / TICK).to_integral_value(rounding="ROUND_CEILING") * TICK + TICK
            s.set_mark_price(str(above))
            assert D(pos(s, a)["positionAmt"]) == D("0.300")          # still open one tick above
            s.set_mark_price(str(above - 2 * TICK))
            assert D(pos(s, a)["positionAmt"]) == 0
            ev = us.events(until=lambda e: e["e"] == "ACCOUNT_UPDATE" and e["a"]["P"][0]["pa"] == "0.000")
            names = [e["e"] for e in ev]
            assert "MARGIN_CALL" in names
            liq = [e["o"] for e in ev if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CALCULATED"]
            assert len(liq) == 1 and liq[0]["c"].startswith("autoclose-") and liq[0]["o"] == "LIQUIDATION"
            assert liq[0]["S"] == "SELL" and liq[0]["z"] == "0.300"
            cancelled = [e["o"] for e in ev if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CANCELED"]
            assert len(cancelled) == 1                      # the resting buy went first
            assert wallet(s, a) >= 0
            st, _, rows = call(s, a, "GET", "/fapi/v1/income", incomeType="INSURANCE_CLEAR")
            assert len(rows) == 1 and D(rows[0]["income"]) < 0
            assert s.stats()["trading"]["engine"]["liquidations"] == 1
        finally:
            us.close()
            s.set_mark_price(None)


def test_isolated_liquidation_loses_only_the_isolated_wallet():
    with make_sim() as s:
        a = account(s, "5000")
        call(s, a, "POST", "/fapi/v1/marginType", symbol=SYM, marginType="ISOLATED")
        call(s, a, "POST", "/fapi/v1/leverage", symbol=SYM, leverage="10")
        st, _, b = order(s, a, side="SELL", type="MARKET", quantity="0.050", newOrderRespType="RESULT")
        iw = D(pos(s, a)["isolatedWallet"])
        before = wallet(s, a)
        s.set_mark_price(str(D(b["avgPrice"]) * D("1.5")))
        assert D(pos(s, a)["positionAmt"]) == 0
        assert wallet(s, a) == before - iw          # the isolated wallet, and not a cent of the rest
        s.set_mark_price(None)


def test_batch_orders_each_answered_and_counted(sim):
    s = account(sim)
    bid, _ = top(sim)
    batch = [{"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.002",
              "price": str(bid - i * TICK), "newClientOrderId": f"b{i}"} for i in range(2)]
    batch.append({"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.002",
                  "price": str(bid + D("0.05"))})
    st, h, b = call(sim, s, "POST", "/fapi/v1/batchOrders", batchOrders=json.dumps(batch))
    assert st == 200 and [x.get("status") for x in b[:2]] == ["NEW", "NEW"] and b[2]["code"] == -4014
    st, _, b = call(sim, s, "DELETE", "/fapi/v1/batchOrders", symbol=SYM, origClientOrderIdList='["b0","b1","zz"]')
    assert [x.get("status", x.get("code")) for x in b] == ["CANCELED", "CANCELED", -2011]
    st, _, b = call(sim, s, "POST", "/fapi/v1/batchOrders", batchOrders=json.dumps(batch * 2))
    assert (st, b["code"]) == (400, -1130)


def test_listen_key_expires_unless_kept_alive():
    with make_sim(listen_key_validity_s=1.0) as s:
        a = account(s)
        us = UserStream(s, a)
        ev = us.events(1, timeout=15)
        assert ev and ev[0]["e"] == "listenKeyExpired" and ev[0]["listenKey"] == us.key
        us.close()
        # kept alive by PUT: no expiry over three validity periods
        us = UserStream(s, a)
        for _ in range(6):
            time.sleep(0.4)
            req = urllib.request.Request(s.rest_url + "/fapi/v1/listenKey", method="PUT",
                                         headers={"X-MBX-APIKEY": a.api_key})
            with urllib.request.urlopen(req, timeout=5) as r:
                assert json.loads(r.read())["listenKey"] == us.key
        assert us.q.empty() and us.reader.closed is None
        us.close()
