"""An earlier session's open orders at start (a restart after ``kill -9``): the engine
quotes only once they are final, and takes its position from an account read made
after that, so a leftover fill is counted exactly once; fills of orders it did not
place count from then on. Driven by a scripted gateway: each answer arrives exactly
when the test says."""
from __future__ import annotations

import time
from typing import Any, Mapping

from hftmm.config import RiskConfig, TradingConfig
from hftmm.live.engine import LiveEngine
from hftmm.live.gateway import GatewayEvent
from hftmm.simulator.rest import exchange_info

class ScriptedGateway:
    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self, sink: Any) -> None:
        self.sink = sink

    def stop(self) -> None:
        pass

    def place_order(self, params: Mapping[str, Any]) -> None:
        self.calls.append(("place", dict(params)))

    def cancel_order(self, params: Mapping[str, Any]) -> None:
        self.calls.append(("cancel", dict(params)))

    def cancel_replace(self, params: Mapping[str, Any]) -> None:
        self.calls.append(("cancel_replace", dict(params)))

    def query_order(self, params: Mapping[str, Any]) -> None:
        self.calls.append(("query", dict(params)))

    def cancel_all(self, symbol: str) -> None:
        self.calls.append(("cancel_all", symbol))

    def reconcile(self, symbol: str) -> None:
        self.calls.append(("reconcile", symbol))

    def read_account(self, tag: str | None = None) -> None:
        self.calls.append(("read_account", tag))

    def read_tag(self) -> str:
        tags = [p for k, p in self.calls if k == "read_account"]
        assert len(tags) == 1 and tags[0]
        return tags[0]

    def kinds(self) -> list[str]:
        return [c[0] for c in self.calls]

def ev(kind: str, cid: str | None = None, **data: Any) -> GatewayEvent:
    return GatewayEvent(kind, time.time_ns(), cid, data)

def account(btc: str) -> dict:
    return {"updateTime": int(time.time() * 1000), "accountType": "SPOT",
            "balances": [{"asset": "BTC", "free": btc, "locked": "0.00000000"},
                         {"asset": "USDT", "free": "100000.00000000", "locked": "0.00000000"}]}

def open_order(cid: str, oid: int, side: str, qty: str, price: str = "50000.00") -> dict:
    now = int(time.time() * 1000)
    return {"symbol": "BTCUSDT", "orderId": oid, "orderListId": -1, "clientOrderId": cid, "price": price,
            "origQty": qty, "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "status": "NEW",
            "timeInForce": "GTC", "type": "LIMIT_MAKER", "side": side, "stopPrice": "0.00000000",
            "icebergQty": "0.00000000", "time": now, "updateTime": now, "isWorking": True,
            "workingTime": now, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE"}

def report(cid: str, oid: int, side: str, x: str, X: str, qty: str, last: str, cum: str, t: int,
           price: str = "50000.00") -> dict:
    T = int(time.time() * 1000)
    return {"e": "executionReport", "E": T, "s": "BTCUSDT", "c": cid, "S": side, "o": "LIMIT_MAKER", "f": "GTC",
            "q": qty, "p": price, "C": "", "x": x, "X": X, "r": "NONE", "i": oid, "l": last, "z": cum,
            "L": price if float(last) else "0.00000000", "n": "0", "N": None, "T": T, "t": t, "w": X == "NEW",
            "m": True, "Z": "0.00000000", "Y": "0.00000000", "O": T}

def make_engine() -> tuple[LiveEngine, ScriptedGateway]:
    gw = ScriptedGateway()
    info = exchange_info("spot", "BTCUSDT", "0.01", "0.00001", int(time.time() * 1000))
    eng = LiveEngine(TradingConfig(symbol="BTCUSDT", inventory_baseline=1.0), RiskConfig(max_position=0.003),
                     mode="testnet", gateway=gw, exchange_info=info)
    eng._setup()
    return eng, gw

def test_leftover_order_fills_before_its_cancel_and_is_counted_once():
    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    # the account answer can come before the open orders: too early for the position
    eng._sink(ev("account", **account("1.00100000")))
    assert "position" in eng.risk._extra and eng.trader.position == 0
    eng._sink(ev("open_orders", orders=[open_order("old-bid", 11, "BUY", "0.00200000")]))
    assert any(k == "cancel" and p.get("orderId") == 11 for k, p in gw.calls)
    assert "adopted" in eng.risk._extra and not eng.risk.can_quote
    assert "read_account" not in gw.kinds()          # the old bid can still fill
    # it fills 0.001 before the cancel lands: the next account read holds that fill
    eng._sink(ev("execution_report", "old-bid",
                 **report("old-bid", 11, "BUY", "TRADE", "PARTIALLY_FILLED", "0.00200000", "0.00100000",
                          "0.00100000", 7)))
    assert eng.trader.position == 0 and "position" in eng.risk._extra
    eng._sink(ev("cancel_ack", "old-bid", symbol="BTCUSDT", origClientOrderId="old-bid", orderId=11,
                 clientOrderId="x1", price="50000.00", origQty="0.00200000", executedQty="0.00100000",
                 cummulativeQuoteQty="50.00000000", status="CANCELED", timeInForce="GTC", type="LIMIT_MAKER",
                 side="BUY"))
    assert "adopted" not in eng.risk._extra
    assert gw.kinds().count("read_account") == 1      # now nothing of the old session can fill
    eng._sink(ev("account", **account("1.00100000")))  # a reconcile's read, sent before: not taken
    assert "position" in eng.risk._extra
    eng._sink(ev("account", gw.read_tag(), **account("1.00200000")))  # 1.001 + the leftover fill
    assert "position" not in eng.risk._extra
    assert eng.trader.position == round(0.002 / eng.lot)   # counted once (the report was not added on top)
    # from now on a fill of an order this session did not place moves the position
    eng._sink(ev("execution_report", "manual-1",
                 **report("manual-1", 12, "SELL", "NEW", "NEW", "0.00050000", "0.00000000", "0.00000000", -1)))
    eng._sink(ev("execution_report", "manual-1",
                 **report("manual-1", 12, "SELL", "TRADE", "FILLED", "0.00050000", "0.00050000", "0.00050000",
                          8)))
    assert eng.trader.position == round(0.0015 / eng.lot)
    # the same report again (a duplicate delivery) changes nothing
    eng._sink(ev("execution_report", "manual-1",
                 **report("manual-1", 12, "SELL", "TRADE", "FILLED", "0.00050000", "0.00050000", "0.00050000",
                          8)))
    assert eng.trader.position == round(0.0015 / eng.lot)

def test_no_leftover_orders_reads_the_position_from_a_read_sent_after_the_open_orders():
    """The reconcile's account read went out beside the open orders' read: the exchange
    may have served it first, before a fill the open-orders read no longer showed."""
    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    eng._sink(ev("open_orders", orders=[]))
    tag = gw.read_tag()
    eng._sink(ev("account", **account("1.00040000")))           # the reconcile's: arrived later, still not taken
    assert "position" in eng.risk._extra
    eng._sink(ev("error", tag, detail="GET /api/v3/account failed: HTTP 500", request="account"))
    eng.qm.check_timeouts(time.time_ns())
    eng._read_account_when_settled()
    assert gw.kinds().count("read_account") == 1                # again only after a second
    eng._position_read_at = 0.0
    eng._read_account_when_settled()
    assert gw.kinds().count("read_account") == 2
    eng._sink(ev("account", tag, **account("1.00050000")))
    assert "position" not in eng.risk._extra and eng.trader.position == round(0.0005 / eng.lot)


def test_an_earlier_order_first_seen_in_a_report_is_cancelled_too():
    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    # its fill report comes before the open-orders answer
    eng._sink(ev("execution_report", "old-bid",
                 **report("old-bid", 31, "BUY", "TRADE", "PARTIALLY_FILLED", "0.00200000", "0.00100000",
                          "0.00100000", 9)))
    eng._sink(ev("open_orders", orders=[{**open_order("old-bid", 31, "BUY", "0.00200000"),
                                         "executedQty": "0.00100000", "status": "PARTIALLY_FILLED"}]))
    assert any(k == "cancel" and p.get("orderId") == 31 for k, p in gw.calls)
    assert "adopted" in eng.risk._extra and "read_account" not in gw.kinds()


def test_a_lost_cancel_answer_then_a_query_saying_open_lets_the_cancel_go_again():
    """cancel_unknown -> query: still NEW -> the adopted order is cancelled again (its
    cancel flags used to stay set: no resend, no quote, the order left at shutdown)."""
    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    eng._sink(ev("open_orders", orders=[open_order("old-ask", 41, "SELL", "0.00100000")]))
    eng._sink(ev("cancel_unknown", "old-ask", detail="no answer", sent=True))
    assert "query" in gw.kinds()
    eng._sink(ev("query_result", "old-ask", **open_order("old-ask", 41, "SELL", "0.00100000")))
    o = eng.qm.tracker.orders["old-ask"]
    assert not o.is_terminal and not o.cancel_requested
    eng.qm.check_timeouts(time.time_ns() + 2_000_000_000)
    assert gw.kinds().count("cancel") == 2

def test_leftover_cancel_refused_during_a_pause_is_sent_again():
    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    eng._sink(ev("open_orders", orders=[open_order("old-ask", 21, "SELL", "0.00100000")]))
    assert gw.kinds().count("cancel") == 1
    sent_ns = eng.qm._adopted["old-ask"]
    eng._sink(ev("cancel_reject", "old-ask", code=-1003, msg="not sent: Retry-After pause (HTTP 429); 3.0 s to wait",
                 http_status=429, sent=False))
    assert "adopted" in eng.risk._extra
    now = sent_ns
    eng.qm.check_timeouts(now + 500_000_000)
    assert gw.kinds().count("cancel") == 1             # at most once a second
    eng.qm.check_timeouts(now + 1_500_000_000)
    assert gw.kinds().count("cancel") == 2


def test_shutdown_sends_a_refused_cancel_again_until_it_is_confirmed():
    """At the end a cancel refused during Binance's 429 pause is sent again (it used
    to be sent once, and the order was left on the exchange)."""
    import threading

    eng, gw = make_engine()
    eng._sink(ev("user_stream", state="subscribed", subscription_id=0))
    eng._sink(ev("open_orders", orders=[open_order("old-ask", 21, "SELL", "0.00100000")]))
    eng._sink(ev("cancel_reject", "old-ask", code=-1003, msg="not sent: Retry-After pause (HTTP 429); 1.0 s to wait",
                 http_status=429, sent=False))
    done = threading.Event()
    t = threading.Thread(target=lambda: (eng._await_cancels(wait_s=20.0, retry_s=0.1), done.set()), daemon=True)
    t.start()
    end = time.monotonic() + 10
    while gw.kinds().count("cancel") < 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert gw.kinds().count("cancel") == 2 and not done.is_set()
    eng._sink(ev("cancel_ack", "old-ask", symbol="BTCUSDT", origClientOrderId="old-ask", orderId=21,
                 clientOrderId="x2", price="50000.00", origQty="0.00100000", executedQty="0.00000000",
                 cummulativeQuoteQty="0.00000000", status="CANCELED", timeInForce="GTC", type="LIMIT_MAKER",
                 side="SELL"))
    assert done.wait(10) and not eng.qm.active_orders()
