"""PaperGateway: simulated orders filled against the live feed with the backtester's model.

The exchange side of the backtester (queue position, latencies, fees, post-only
rejection, taker fills) -- the pure-Python twin
:class:`~hftmm.backtesting.reference.ReferenceReplay`, which is bit-identical to
the compiled kernel -- runs here on the events the live engine receives. The
strategy side is the live engine itself: the gateway hands it each market event
at its visible time and answers its requests with Binance-shaped
:class:`~hftmm.live.gateway.GatewayEvent`\\ s at the times the latency model
says, on the *event clock* (ns), not the wall clock. So a paper session and a
backtest of the same events with the same latency model make the same
decisions (tests check it).

Timing (as the backtester): a new order reaches the exchange ``order_latency``
after it is sent, a cancel ``cancel_latency`` after; answers and execution
reports reach the engine ``response_latency`` after the exchange acts. Market
events are seen by the exchange at their exchange time and by the engine at
their receive time (``feed_latency`` None) or exchange time + ``feed_latency``.
Because an event can only be handed to the engine once no earlier exchange
event can still arrive, the engine sees each message when the next one arrives.

Order answers: ``new_ack`` (RESULT-like body) when the order reaches the
exchange; ``new_reject`` -2010 for a post-only order that would take;
``execution_report`` TRADE for fills (X FILLED / PARTIALLY_FILLED);
``cancel_ack`` when a cancel succeeds. A cancel of an order that has already
filled gets no answer of its own: its fill reports settle it. MARKET orders
(flattening) sweep the book's visible levels at arrival; what is left expires.
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Optional

import numpy as np

from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import _concat, kernel_params
from hftmm.backtesting.reference import (DONE, IN_FLIGHT, INT64_MAX, L_CANCELING, L_GONE, L_WORKING,
                                         NO_ASK, NO_BID, OPEN, REPORT_DONE, REPORT_FILL, Event, ReferenceReplay,
                                         Report)
from hftmm.live.gateway import GatewayEvent, Sink

log = logging.getLogger(__name__)

__all__ = ["PaperConfig", "PaperGateway"]

REPORT_ACK = 2


@dataclass(frozen=True)
class PaperConfig:
    """The exchange model of paper trading (the backtester's). Units in brackets.

    feed_latency [s] (None: the receive time of each message); order_latency,
    cancel_latency, response_latency [s]; queue_model "risk_averse" | "power" |
    "log" with queue_power; fill_model "queue" | "intensity" (fill_A [1/s],
    fill_k [1/price]); maker_fee, taker_fee [fraction of notional]; seed of the
    random fill draws; balances: starting balances per asset (for account answers).
    """

    feed_latency: Optional[float] = None
    order_latency: float = 0.005
    cancel_latency: float = 0.005
    response_latency: float = 0.005
    queue_model: str = "risk_averse"
    queue_power: float = 2.0
    fill_model: str = "queue"
    fill_A: float = 5.0
    fill_k: float = 10.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0004
    seed: int = 1
    quote_asset: str = "USDT"
    base_asset: str = "BTC"

    def backtest_fields(self) -> dict[str, Any]:
        """The matching BacktestConfig fields (validated there)."""
        return {f: getattr(self, f) for f in ("feed_latency", "order_latency", "cancel_latency",
                                             "response_latency", "queue_model", "queue_power", "fill_model",
                                             "fill_A", "fill_k", "maker_fee", "taker_fee", "seed")}

    def __post_init__(self) -> None:
        BacktestConfig(**self.backtest_fields())   # refuses bad values, naming the field


class _Replay(ReferenceReplay):
    """The reference replay with the strategy side handed to the gateway's owner."""

    def __init__(self, gw: "PaperGateway", params: dict, quote: dict, seed: int) -> None:
        super().__init__(params, quote, seed)
        self.gw = gw
        self._seen_rejected = 0
        for o in self.orders:
            o.post_only = True
            o.market = False
            o.cid = ""
            o.reported = 0        # lots reported filled to the engine
            o.acked = False

    # -- strategy side: the engine
    def _local_event(self, e: Event, now: int) -> None:
        self.gw._now = now
        self.gw._on_market(e, now)

    def _deliver_reports(self, upto: int) -> None:
        while self.reports and self.reports[0].ts <= upto:
            r = self.reports.popleft()
            self.gw._now = max(self.gw._now, r.ts)
            self.gw._deliver(r)

    def _report(self, ts: int, lots: int, slot: int, kind: int) -> None:
        r = Report(ts, lots, slot, kind)
        r.why = "rejected" if self.orders_rejected != self._seen_rejected else "canceled"
        self._seen_rejected = self.orders_rejected
        self._insert(r)

    def _insert(self, r: Report) -> None:
        # reports are queued in time order (acks can be due before queued fills)
        if not self.reports or self.reports[-1].ts <= r.ts:
            self.reports.append(r)
        else:
            keys = [x.ts for x in self.reports]
            self.reports.insert(bisect.bisect_right(keys, r.ts), r)

    def _push_fill(self, slot: int, lots: int, taker: bool, px: Optional[int] = None) -> None:
        n = len(self.reports)
        super()._push_fill(slot, lots, taker, px)
        r = self.reports[n]
        r.px = self.orders[slot].px if px is None else px
        r.taker = taker
        r.fee = self.fills[-1][6]
        if n + 1 < len(self.reports):
            self.reports[n + 1].why = "filled"

    def _arrive(self, slot: int) -> None:
        if self.orders[slot].market:
            self._sweep(slot)
        else:
            super()._arrive(slot)

    def _post_only(self, o) -> bool:
        return o.post_only

    def _accepted(self, slot: int) -> None:
        self._ack(slot)

    def _ack(self, slot: int) -> None:
        r = Report(self.t_x + self.response_latency_ns, 0, slot, REPORT_ACK)
        r.why = "ack"
        self._insert(r)

    def _sweep(self, slot: int) -> None:
        """A MARKET order: take the visible levels at their prices; the rest expires."""
        o = self.orders[slot]
        self._ack(slot)
        o.state = OPEN
        self._open_add(slot)
        opp = 1 - o.side
        for px, qty in self.xbook._levels(opp):       # best first
            if o.leaves <= 0:
                break
            f = min(o.leaves, qty)
            if f > 0:
                self._push_fill(slot, f, True, px=px)
        if o.state != DONE:
            o.state = DONE
            self._open_remove(slot)
            self.orders_cancelled += 1
            r = Report(self.t_x + self.response_latency_ns, 0, slot, REPORT_DONE)
            r.why = "expired"
            self._insert(r)


class PaperGateway:
    """A simulated exchange for paper trading (see the module docstring).

    ``tick_size``/``lot_size``: the symbol's price tick and quantity step (decimal
    strings). The engine drives it with :meth:`feed` (normalised event chunks, in
    arrival order) and gets market events back through ``on_market(event, now_ns)``
    and answers through the sink.
    """

    name = "paper"

    def __init__(self, symbol: str, tick_size: str, lot_size: str, config: Optional[PaperConfig] = None,
                 balances: Optional[Mapping[str, str]] = None) -> None:
        self.symbol = symbol.upper()
        self.config = config or PaperConfig()
        self.tick = Decimal(str(tick_size))
        self.lot = Decimal(str(lot_size))
        bt = BacktestConfig(symbol=self.symbol, order_size=float(self.lot), max_position=0.0,
                            **self.config.backtest_fields())
        params, quote = kernel_params(bt, float(self.tick), float(self.lot))
        self._replay = _Replay(self, params, quote, self.config.seed)
        self._carry = np.empty(0, dtype=np.dtype((np.void, 64)))
        self._carry_set = False
        self._sink: Optional[Sink] = None
        self.on_market: Optional[Callable[[Event, int], None]] = None
        self._now = 0
        self._next_order_id = 1
        self._trade_id = 1
        self._slot_of: dict[str, int] = {}
        self._balances = {k: Decimal(str(v)) for k, v in (balances or {self.config.quote_asset: "100000",
                                                                         self.config.base_asset: "0"}).items()}
        self.requests = 0

    # ------------------------------------------------------------ Gateway protocol
    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._emit("user_stream", None, {"state": "subscribed", "detail": "paper"})
        self.reconcile(self.symbol)

    def stop(self) -> None:
        self._sink = None

    @property
    def now_ns(self) -> int:
        """The simulated clock: the visible time of the event being handled [ns]."""
        return self._now

    def place_order(self, params: Mapping[str, Any]) -> None:
        self.requests += 1
        cid = str(params.get("newClientOrderId") or f"paper-{self._next_order_id}")
        side = 0 if params["side"] == "BUY" else 1
        typ = params.get("type", "LIMIT")
        lots = self._lots(params["quantity"])
        rp = self._replay
        if lots <= 0:
            self._emit("new_reject", cid, {"code": -1013, "msg": "Filter failure: LOT_SIZE", "http_status": 400})
            return
        if typ == "MARKET":
            px = NO_ASK - 1 if side == 0 else NO_BID + 1
        else:
            px = self._ticks(params["price"])
            if px is None:
                self._emit("new_reject", cid, {"code": -1013, "msg": "Filter failure: PRICE_FILTER",
                                               "http_status": 400})
                return
        slot = rp._submit(side, px, self._now, lots)
        if slot < 0:
            self._emit("new_reject", cid, {"code": -1015, "msg": "Too many new orders (paper order slots).",
                                           "http_status": 429})
            return
        o = rp.orders[slot]
        o.post_only = typ == "LIMIT_MAKER"
        o.market = typ == "MARKET"
        o.cid = cid
        o.reported = 0
        o.acked = False
        self._slot_of[cid] = slot

    def _find(self, params: Mapping[str, Any]) -> Optional[int]:
        rp = self._replay
        if "origClientOrderId" in params:
            slot = self._slot_of.get(str(params["origClientOrderId"]))
            if slot is not None and rp.orders[slot].cid == str(params["origClientOrderId"]):
                return slot
        if "orderId" in params:
            oid = int(params["orderId"])
            for i, o in enumerate(rp.orders):
                if o.id == oid and o.cid:
                    return i
        return None

    def cancel_order(self, params: Mapping[str, Any]) -> None:
        self.requests += 1
        slot = self._find(params)
        rp = self._replay
        if slot is None or rp.orders[slot].local not in (L_WORKING, L_CANCELING):
            cid = params.get("origClientOrderId")
            self._emit("cancel_reject", cid, {"code": -2011, "msg": "Unknown order sent.", "http_status": 400})
            return
        o = rp.orders[slot]
        if o.local == L_CANCELING:
            return    # already cancelling: the exchange answers once
        rp._cancel(o, self._now)

    def cancel_replace(self, params: Mapping[str, Any]) -> None:
        """STOP_ON_FAILURE cancel + new: the cancel is sent, then the new order (the
        backtester's requote); the answers come as for the two requests."""
        cp = {"symbol": params["symbol"]}
        if "cancelOrderId" in params:
            cp["orderId"] = params["cancelOrderId"]
        if "cancelOrigClientOrderId" in params:
            cp["origClientOrderId"] = params["cancelOrigClientOrderId"]
        self.cancel_order(cp)
        new = {k: v for k, v in params.items()
               if k not in ("cancelOrderId", "cancelOrigClientOrderId", "cancelReplaceMode")}
        self.place_order(new)

    def query_order(self, params: Mapping[str, Any]) -> None:
        self.requests += 1
        slot = self._find(params)
        if slot is None:
            self._emit("query_not_found", params.get("origClientOrderId"),
                       {"code": -2013, "msg": "Order does not exist."})
            return
        self._emit("query_result", self._replay.orders[slot].cid, self._order_json(slot))

    def cancel_all(self, symbol: str) -> None:
        self.requests += 1
        for o in self._replay.orders:
            if o.cid and o.local == L_WORKING:
                self._replay._cancel(o, self._now)

    def reconcile(self, symbol: str) -> None:
        rp = self._replay
        orders = [self._order_json(i) for i, o in enumerate(rp.orders)
                  if o.cid and o.state in (IN_FLIGHT, OPEN) and o.local in (L_WORKING, L_CANCELING)]
        self._emit("open_orders", None, {"orders": [x for x in orders if x["status"] != "PENDING_NEW"]})
        self._emit("account", None, {"balances": [{"asset": a, "free": str(v), "locked": "0"}
                                                  for a, v in sorted(self._balances.items())]})

    # ------------------------------------------------------------ driving
    def feed(self, events: np.ndarray, final: bool = False) -> None:
        """Run the exchange and hand the engine what it can see, for a chunk of
        normalised events (EVENT_DTYPE, arrival order). ``final``: no more data
        (everything left is handed over)."""
        arr = _concat(self._carry, events) if self._carry_set else np.ascontiguousarray(events)
        applied = len(self._carry) if self._carry_set else 0
        i = self._replay.run(arr, applied, final)
        self._carry = arr[i:]
        self._carry_set = True

    def finish(self, end_ns: Optional[int] = None) -> None:
        """Run the exchange and deliver answers up to ``end_ns`` [ns] -- by default
        until everything sent so far is answered (the session's end). The exchange
        clock can be ahead of the engine's (it sees each message first)."""
        rp = self._replay
        if end_ns is None:
            pending = [o.arrive_ns if o.state == IN_FLIGHT else o.cancel_ns for o in rp.orders
                       if o.state == IN_FLIGHT or (o.state == OPEN and o.cancel_ns != INT64_MAX)]
            end_ns = max([self._now, rp.t_x, *pending]) + rp.response_latency_ns + 1
        rp._local_until(end_ns + 1)
        rp._deliver_reports(end_ns)

    def counters(self) -> dict:
        return self._replay.counters()

    def take_fills(self) -> np.ndarray:
        """The exchange-side fills so far (the backtester's FILL_DTYPE records)."""
        return self._replay.take_fills()

    # ------------------------------------------------------------ internals
    def _on_market(self, e: Event, now: int) -> None:
        if self.on_market is not None:
            self.on_market(e, now)

    def _lots(self, qty: Any) -> int:
        q = Decimal(str(qty)) / self.lot
        return int(q) if q == q.to_integral_value() else -1

    def _ticks(self, price: Any) -> Optional[int]:
        p = Decimal(str(price)) / self.tick
        return int(p) if p == p.to_integral_value() and p > 0 else None

    def _price(self, ticks: int) -> str:
        return str(ticks * self.tick)

    def _qty(self, lots: int) -> str:
        return str(lots * self.lot)

    def _emit(self, kind: str, cid: Optional[str], data: Mapping[str, Any]) -> None:
        if self._sink is not None:
            self._sink(GatewayEvent(kind, self._now, cid, data))

    def _status(self, slot: int) -> str:
        o = self._replay.orders[slot]
        filled = o.qty - o.leaves
        if o.state == IN_FLIGHT:
            return "PENDING_NEW"
        if o.state == OPEN:
            return "PARTIALLY_FILLED" if filled else "NEW"
        return "FILLED" if o.leaves == 0 else "CANCELED"

    def _order_json(self, slot: int) -> dict[str, Any]:
        o = self._replay.orders[slot]
        filled = o.reported
        return {"symbol": self.symbol, "orderId": o.id, "clientOrderId": o.cid,
                "price": self._price(o.px) if not o.market else "0", "origQty": self._qty(o.qty),
                "executedQty": self._qty(filled), "cummulativeQuoteQty": str(self._cum_quote(slot)),
                "status": self._status(slot) if filled == o.qty - o.leaves else "PARTIALLY_FILLED",
                "timeInForce": "GTC", "type": "MARKET" if o.market else ("LIMIT_MAKER" if o.post_only else "LIMIT"),
                "side": "BUY" if o.side == 0 else "SELL", "time": o.submit_ns // 1_000_000,
                "updateTime": self._now // 1_000_000}

    def _cum_quote(self, slot: int) -> Decimal:
        return getattr(self._replay.orders[slot], "cum_quote", Decimal(0))

    def _deliver(self, r: Report) -> None:
        """A report reaches the engine: turn it into Binance's answer."""
        rp = self._replay
        o = rp.orders[r.slot]
        cid = o.cid
        if r.kind == REPORT_ACK:
            o.acked = True
            self._emit("new_ack", cid, {"symbol": self.symbol, "orderId": o.id, "clientOrderId": cid,
                                        "transactTime": r.ts // 1_000_000, "price": self._price(o.px),
                                        "origQty": self._qty(o.qty), "executedQty": "0",
                                        "cummulativeQuoteQty": "0", "status": "NEW",
                                        "type": "MARKET" if o.market else ("LIMIT_MAKER" if o.post_only else "LIMIT"),
                                        "side": "BUY" if o.side == 0 else "SELL"})
            return
        if r.kind == REPORT_FILL:
            lots = abs(r.lots)
            o.reported += lots
            px = Decimal(r.px) * self.tick
            qty = Decimal(lots) * self.lot
            o.cum_quote = getattr(o, "cum_quote", Decimal(0)) + px * qty
            self._account_fill(o.side, px, qty, r.fee)
            done = o.reported == o.qty
            tid = self._trade_id
            self._trade_id += 1
            ev = {"e": "executionReport", "E": r.ts // 1_000_000, "s": self.symbol, "c": cid,
                  "S": "BUY" if o.side == 0 else "SELL",
                  "o": "MARKET" if o.market else ("LIMIT_MAKER" if o.post_only else "LIMIT"), "f": "GTC",
                  "q": self._qty(o.qty), "p": self._price(o.px) if not o.market else "0", "P": "0", "F": "0",
                  "g": -1, "C": "", "x": "TRADE", "X": "FILLED" if done else "PARTIALLY_FILLED", "r": "NONE",
                  "i": o.id, "l": str(qty), "z": self._qty(o.reported), "L": str(px),
                  "n": repr(float(r.fee)), "N": self.config.quote_asset, "T": r.ts // 1_000_000, "t": tid,
                  "I": tid, "w": False, "m": not r.taker, "M": True, "O": o.submit_ns // 1_000_000,
                  "Z": str(o.cum_quote), "Y": str(px * qty), "Q": "0", "W": o.arrive_ns // 1_000_000,
                  "V": "NONE", "paper_ts_ns": r.ts}
            self._emit("execution_report", cid, ev)
            return
        # done: filled (already reported with the last fill), cancelled, rejected or expired
        o.local = L_GONE
        why = getattr(r, "why", "canceled")
        if why == "filled":
            return
        if why == "rejected":
            self._emit("new_reject", cid, {"code": -2010, "msg": "Order would immediately match and take.",
                                           "http_status": 400})
            return
        body = {"symbol": self.symbol, "origClientOrderId": cid, "orderId": o.id, "clientOrderId": cid,
                "price": self._price(o.px) if not o.market else "0", "origQty": self._qty(o.qty),
                "executedQty": self._qty(o.reported), "cummulativeQuoteQty": str(self._cum_quote(r.slot)),
                "status": "EXPIRED" if why == "expired" else "CANCELED"}
        if why == "expired":
            ev = {"e": "executionReport", "E": r.ts // 1_000_000, "s": self.symbol, "c": cid,
                  "S": "BUY" if o.side == 0 else "SELL", "o": "MARKET", "x": "EXPIRED", "X": "EXPIRED",
                  "i": o.id, "l": "0", "z": self._qty(o.reported), "L": "0", "q": self._qty(o.qty),
                  "p": "0", "Z": str(self._cum_quote(r.slot)), "T": r.ts // 1_000_000, "paper_ts_ns": r.ts}
            self._emit("execution_report", cid, ev)
        else:
            self._emit("cancel_ack", cid, body)

    def _account_fill(self, side: int, px: Decimal, qty: Decimal, fee: float) -> None:
        b = self._balances
        qa, ba = self.config.quote_asset, self.config.base_asset
        sign = 1 if side == 0 else -1
        b[ba] = b.get(ba, Decimal(0)) + sign * qty
        b[qa] = b.get(qa, Decimal(0)) - sign * px * qty - Decimal(repr(float(fee)))
