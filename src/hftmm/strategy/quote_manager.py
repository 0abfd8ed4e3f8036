"""QuoteManager: between the compiled trader and a live gateway.

The quoting decision and every pre-trade limit are the core's
(:class:`hftcore.strategy.MarketMaker`, :class:`hftcore.strategy.Trader`), the
same code a backtest runs. For testnet and production trading this class turns
the trader's intents into Binance requests and the gateway's answers back into
the trader's reports:

* NEW -> ``POST /api/v3/order`` (LIMIT_MAKER when post-only, else LIMIT GTC;
  MARKET for the kill switch's flattening), CANCEL -> ``DELETE``, REPLACE ->
  ``cancelReplace`` (STOP_ON_FAILURE: one request, counted as one order);
  prices and quantities formatted by the exchange filters. A request the
  filters or the exchange's rate limits refuse is never sent: the trader gets
  a REJECTED report at once.
* The order state machine (:class:`hftmm.execution.orders.OrderTracker`) applies
  the answers -- acks, execution reports, cancel acks, rejects, 409s, unknown
  outcomes (queried) -- and each change reaches the trader once: ACK when the
  order is live, FILL per fill (ticks, lots, fee in the quote asset), CANCELED /
  REJECTED when it is done.

Open quantity is the trader's (O(1) per side); the tracker only maps ids, so
the work per frame does not grow with the orders a long session has seen
(final orders are forgotten after a minute).

Units: ticks and lots with the trader; Decimal prices/quantities on the wire;
times ns on the engine's clock.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from hftcore.exchange import ACK, CANCELED, FILL, REJECTED
from hftcore.strategy import CANCEL, NEW, REPLACE

from hftmm.execution.filters import SymbolFilters
from hftmm.execution.orders import Fill, Order, OrderState, OrderStateError, OrderTracker
from hftmm.execution.ratelimits import RateLimitBanned, RateLimiter

if TYPE_CHECKING:  # (hftmm.live imports this module)
    from hftmm.live.gateway import GatewayEvent

log = logging.getLogger(__name__)

__all__ = ["QuoteManager", "Decision", "AverageCost"]

_XM_POST_ONLY = 1
_XM_MARKET = 2
_SIDES = ("BUY", "SELL")


@dataclass(frozen=True)
class Decision:
    """One request sent: ``action`` "new", "cancel" or "replace", side BUY/SELL,
    price [ticks], size [lots], at ``ts_ns`` on the engine clock."""

    ts_ns: int
    action: str
    side: str
    px: int
    lots: int
    client_order_id: str


@dataclass
class _Counters:
    orders_sent: int = 0
    cancels_sent: int = 0
    replaces_sent: int = 0
    rejected: int = 0
    post_only_rejects: int = 0
    filter_blocked: int = 0
    rate_limited: int = 0
    queries: int = 0
    fills: int = 0
    state_errors: int = 0
    filter_reasons: dict = field(default_factory=dict)


class AverageCost:
    """Average-cost realised PnL of a stream of fills (price units, quote
    currency, before fees): what the status line and the dashboard show."""

    def __init__(self, lot_size: float) -> None:
        self.lot = float(lot_size)
        self.position = 0          # lots
        self.avg_entry = 0.0       # price units
        self.realized_pnl = 0.0

    def fill(self, signed_lots: int, px: float) -> None:
        pos = self.position
        if pos == 0 or (pos > 0) == (signed_lots > 0):
            new = pos + signed_lots
            self.avg_entry = (self.avg_entry * abs(pos) + px * abs(signed_lots)) / abs(new) if new else 0.0
        else:
            closing = min(abs(signed_lots), abs(pos))
            self.realized_pnl += (px - self.avg_entry) * closing * self.lot * (1.0 if pos > 0 else -1.0)
            left = pos + signed_lots
            if left == 0:
                self.avg_entry = 0.0
            elif (left > 0) != (pos > 0):
                self.avg_entry = px
        self.position = pos + signed_lots


class QuoteManager:
    """Sends one symbol's trader intents through a gateway (see the module doc).

    ``trader``: :class:`hftcore.strategy.Trader`; ``gateway``: a
    :class:`hftmm.live.gateway.Gateway`; ``filters`` / ``rate_limiter`` from
    exchangeInfo; ``tick_size`` / ``lot_size``: the units of the trader's ticks and
    lots (decimal strings); ``quote_asset``: commissions in another asset are
    valued at the fill price; ``risk``: a :class:`hftmm.strategy.RiskManager` that
    gets the order round trips; ``clock`` () -> ns; ``on_fill(fill, position_lots)``,
    ``on_order(order)``: callbacks (the state store).
    """

    def __init__(self, symbol: str, trader: Any, gateway: Any, *, filters: Optional[SymbolFilters] = None,
                 rate_limiter: Optional[RateLimiter] = None, tick_size: str, lot_size: str, quote_asset: str = "",
                 risk: Any = None, clock: Callable[[], int] = time.time_ns, id_prefix: str = "hftmm",
                 on_fill: Optional[Callable[[Fill, int], None]] = None,
                 on_order: Optional[Callable[[Order], None]] = None, reduce_only_market: bool = False) -> None:
        self.symbol = symbol.upper()
        self.reduce_only_market = reduce_only_market   # USD-M: a market order that reduces the position
                                                       # goes out reduceOnly (a flatten never flips it)
        self.trader = trader
        self.gateway = gateway
        self.filters = filters
        self.rate_limiter = rate_limiter
        self.tick = Decimal(str(tick_size))
        self.lot = Decimal(str(lot_size))
        self.quote_asset = quote_asset
        self.risk = risk
        self.clock = clock
        self.tracker = OrderTracker(self.symbol, id_prefix, clock=clock)
        self.on_fill = on_fill
        self.on_order = on_order
        #: where the reports go, (ts, id, kind, px, lots, leaves, fee, taker): the trader's
        #: own ``on_report`` -- or the driver's (``ReplayKernel.report``: the trader applies
        #: it and the strategy hears of it)
        self.on_report: Callable[..., Any] = trader.on_report
        self.counters = _Counters()
        self.decisions: list[Decision] = []
        self.record_decisions = False
        self._cid: dict[int, str] = {}          # trader id -> client order id
        self._tid: dict[str, int] = {}          # client order id -> trader id
        self._acked: set[str] = set()
        self._final: set[str] = set()
        self._sent_ns: dict[str, int] = {}
        self._logged_filters: set[str] = set()
        self.volume = 0.0                       # traded quote notional
        self._cost = AverageCost(float(self.lot))
        #: True once the position was read from the account (the engine reads it after the
        #: open orders, with every order of an earlier session final): from then on fills of
        #: orders the trader did not place move its position; before, they are in that read
        self.position_known = False
        self.open_orders_seen = False           # the first open-orders snapshot was applied
        self._adopted: dict[str, int] = {}      # an earlier session's open orders -> last cancel sent, ns

    # ------------------------------------------------------------ intents out
    def send(self, intents: np.ndarray) -> None:
        """Send the trader's intents (``Trader.take_intents()``) in order."""
        for it in intents:
            kind, tid, side = int(it["kind"]), int(it["id"]), _SIDES[int(it["side"])]
            ts, px, lots, flags = int(it["ts"]), int(it["px"]), int(it["lots"]), int(it["flags"])
            if kind == NEW:
                self._new(tid, side, px, lots, flags, ts)
            elif kind == CANCEL:
                self._cancel(tid, ts)
            elif kind == REPLACE:
                self._replace(int(it["cancel_id"]), tid, side, px, lots, flags, ts)

    def _refuse(self, tid: int, ts: int, why: str) -> None:
        """Not sent: the trader learns at once."""
        self.on_report(ts, tid, REJECTED)
        log.debug("%s: order %d not sent: %s", self.symbol, tid, why)

    def _check(self, tid: int, side: str, price: Decimal, qty: Decimal, market: bool, ts: int) -> bool:
        if self.filters is not None and not market:      # (the flattening market order is not filtered)
            bad = self.filters.check(side, price, qty, reference_price=self._mid_price())
            if bad:
                self.counters.filter_blocked += 1
                key = bad[0].split(":")[0]
                self.counters.filter_reasons[key] = self.counters.filter_reasons.get(key, 0) + 1
                if key not in self._logged_filters:
                    self._logged_filters.add(key)
                    log.warning("%s: %s order at %s x %s refused by the exchange filters: %s", self.symbol, side,
                                price, qty, "; ".join(bad))
                self._refuse(tid, ts, "filters")
                return False
        if self.rate_limiter is not None:
            try:
                wait = self.rate_limiter.acquire(weight=1, orders=1, now=ts / 1e9)
            except RateLimitBanned:
                wait = 1.0
            if wait > 0:
                self.counters.rate_limited += 1
                self._refuse(tid, ts, "exchange rate limit")
                return False
        return True

    def _params(self, order: Order, market: bool) -> dict[str, Any]:
        p = self.tracker.new_order_params(order)
        if market:
            p = {"symbol": self.symbol, "side": order.side, "type": "MARKET",
                 "quantity": self.filters.format_qty(order.qty) if self.filters else str(order.qty),
                 "newClientOrderId": order.client_order_id}
            pos = self.trader.position
            if self.reduce_only_market and ((order.side == "SELL" and pos > 0) or (order.side == "BUY" and pos < 0)):
                p["reduceOnly"] = "true"
        elif self.filters is not None:
            p["price"], p["quantity"] = self.filters.format_price(order.price), self.filters.format_qty(order.qty)
        if not market and not order.post_only:
            p.setdefault("timeInForce", "GTC")
        p["newOrderRespType"] = "RESULT"
        return p

    def _new(self, tid: int, side: str, px: int, lots: int, flags: int, ts: int) -> None:
        market = bool(flags & _XM_MARKET)
        price = Decimal(px) * self.tick if not market else self.tick
        qty = Decimal(lots) * self.lot
        if not self._check(tid, side, price, qty, market, ts):
            return
        order = self.tracker.new_order(side, price, qty, post_only=bool(flags & _XM_POST_ONLY))
        self._map(tid, order.client_order_id)
        params = self._params(order, market)
        self.counters.orders_sent += 1
        self._sent_ns[order.client_order_id] = ts
        if market:
            log.warning("%s: flattening: %s %s at market", self.symbol, side, qty)
        if self.record_decisions:
            self.decisions.append(Decision(ts, "new", side, px, lots, order.client_order_id))
        self._order_changed(order)
        self._send_counted(self.gateway.place_order, params)

    def _send_counted(self, send: Callable[[dict], None], params: dict) -> None:
        """Send a request whose order count :meth:`_check` acquired; if it cannot even be
        handed over (the gateway stopped), that count is not in flight."""
        try:
            send(params)
        except BaseException:
            if self.rate_limiter is not None:
                self.rate_limiter.settle(1)
            raise

    def _cancel(self, tid: int, ts: int) -> None:
        cid = self._cid.get(tid)
        if cid is None or cid not in self.tracker.orders:
            return
        order = self.tracker.orders[cid]
        if order.is_terminal or order.cancel_requested:
            return
        req = self.tracker.request_cancel(cid)
        if req.deferred:
            # not acked yet: cancel by client id now (Binance accepts origClientOrderId)
            self.tracker.mark_cancel_sent(cid)
        self.counters.cancels_sent += 1
        if self.record_decisions:
            self.decisions.append(Decision(ts, "cancel", order.side, int(order.price / self.tick),
                                           int(order.qty / self.lot), cid))
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.acquire(weight=1, orders=0, now=ts / 1e9)   # cancels always go out
            except RateLimitBanned:
                pass
        self._order_changed(order)
        self.gateway.cancel_order(req.params())

    def _replace(self, old_tid: int, tid: int, side: str, px: int, lots: int, flags: int, ts: int) -> None:
        old_cid = self._cid.get(old_tid)
        old = self.tracker.orders.get(old_cid) if old_cid else None
        if old is None or old.is_terminal or old.cancel_requested or old.order_id is None \
                or not getattr(self.gateway, "supports_cancel_replace", hasattr(self.gateway, "cancel_replace")):
            # nothing to replace on the wire (not acked yet, or gone): a cancel and a new order
            self._cancel(old_tid, ts)
            self._new(tid, side, px, lots, flags, ts)
            return
        price, qty = Decimal(px) * self.tick, Decimal(lots) * self.lot
        if not self._check(tid, side, price, qty, False, ts):
            self._cancel(old_tid, ts)      # the trader moved on: the old order may not stay
            return
        req, new = self.tracker.prepare_cancel_replace(old_cid, price, qty, post_only=bool(flags & _XM_POST_ONLY))
        self._map(tid, new.client_order_id)
        p = self._params(new, False)
        p.pop("symbol", None)
        params = {"symbol": self.symbol, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": old.order_id,
                  **p}
        self.counters.replaces_sent += 1
        self.counters.orders_sent += 1
        self._sent_ns[new.client_order_id] = ts
        if self.record_decisions:
            self.decisions.append(Decision(ts, "replace", side, px, lots, new.client_order_id))
        self._order_changed(old)
        self._order_changed(new)
        self._send_counted(self.gateway.cancel_replace, params)

    def _map(self, tid: int, cid: str) -> None:
        self._cid[tid] = cid
        self._tid[cid] = tid

    # ------------------------------------------------------------ answers in
    def on_gateway_event(self, ev: "GatewayEvent") -> None:
        """Apply one answer from the gateway; the trader hears of what changed."""
        try:
            self._on_event(ev)
        except (OrderStateError, KeyError) as exc:
            self.counters.state_errors += 1
            log.error("%s: %s for %s could not be applied (%s); querying", self.symbol, ev.kind,
                      ev.client_order_id, exc)
            if ev.client_order_id and ev.client_order_id in self.tracker.orders:
                self._query(ev.client_order_id)

    def _on_event(self, ev: "GatewayEvent") -> None:
        k, cid, d = ev.kind, ev.client_order_id, ev.data
        tr = self.tracker
        ts = ev.ts_ns or self.clock()
        fills: list[Fill] = []
        touched: list[Order] = []
        order = tr.orders.get(cid) if cid else None
        if k == "execution_report":
            fills = tr.on_execution_report(d)
            order = tr.find(d.get("C") if d.get("x") == "CANCELED" and d.get("C") else d.get("c"), d.get("i"))
        elif order is None and k not in ("open_orders", "account", "user_stream", "error", "account_position",
                                         "balance_update", "query_result", "cancel_replace"):
            log.debug("%s: %s for an order we do not track (%s)", self.symbol, k, cid)
            return
        elif k == "new_ack":
            self._round_trip(cid, ts)
            fills, deferred = tr.on_new_ack(cid, d.get("orderId"), response=d)
            if deferred is not None:
                self.gateway.cancel_order(deferred.params())
        elif k == "new_reject":
            self._round_trip(cid, ts)
            state = tr.on_reject(cid, int(d.get("code", 0)), str(d.get("msg", "")), d.get("http_status"))
            if state == OrderState.UNKNOWN:
                self._query(cid)
            else:
                self.counters.rejected += 1
                if order is not None and order.reject_reason == "post-only":
                    self.counters.post_only_rejects += 1
        elif k in ("new_unknown", "cancel_unknown"):
            tr.on_request_unknown(cid, str(d.get("detail", k)))
            self._query(cid)
        elif k == "cancel_ack":
            fills = tr.on_cancel_ack(cid, d)
        elif k == "cancel_reject":
            if tr.on_cancel_reject(cid, int(d.get("code", 0)), str(d.get("msg", "")), d.get("http_status")):
                self._query(cid)
        elif k == "cancel_replace":
            old_cid, new_cid = d["cancel_client_order_id"], d["new_client_order_id"]
            self._round_trip(new_cid, ts)
            out = tr.cancel_replace_result(int(d["http_status"]), d.get("body", {}), old_cid, new_cid)
            fills = out.fills
            for o in out.to_query:
                self._query(o.client_order_id)
            touched = [o for o in (tr.orders.get(old_cid), tr.orders.get(new_cid)) if o is not None]
        elif k == "query_result":
            fills = tr.on_query_result(d)
            order = tr.find(d.get("clientOrderId"), d.get("orderId"))
        elif k == "query_not_found":
            tr.on_query_not_found(cid)
        elif k == "open_orders":
            res = tr.reconcile_open_orders(d.get("orders", []))
            fills = res.fills
            self.open_orders_seen = True
            # every live order the trader did not place: the snapshot's new ones, and any a
            # report made known before it (an earlier session's order that traded first)
            for o in [o for o in tr.orders.values() if not o.is_terminal and o.client_order_id not in self._tid
                      and o.client_order_id not in self._adopted]:
                log.warning("%s: open order %s found on the exchange that this session did not place; "
                            "cancelling it", self.symbol, o.client_order_id)
                self._cancel_foreign(o, ts)
            for o in res.to_query:
                self._query(o.client_order_id)
        for f in fills:
            self._apply_fill(f, ts)
            o = tr.orders.get(f.client_order_id)
            if o is not None and o not in touched:
                touched.append(o)
        if order is not None and order not in touched:
            touched.append(order)
        for o in touched:
            self._sync(o, ts)
            self._order_changed(o)
        self._adopted_state()

    def _cancel_foreign(self, o: Order, ts: int) -> None:
        """Cancel an order the trader did not place (unless a cancel is out) and hold quoting until it is final."""
        self._adopted[o.client_order_id] = ts
        if not o.cancel_requested:
            req = self.tracker.request_cancel(o.client_order_id)
            self.gateway.cancel_order(req.params())

    def _adopted_state(self) -> None:
        """No quote while an earlier session's order may still fill: the trader does
        not count it, so both could fill past max_position (a risk condition)."""
        if not self._adopted and (self.risk is None or "adopted" not in self.risk._extra):
            return                                   # (every event: nothing to do)
        for cid in [c for c in self._adopted if c not in self.tracker.orders or self.tracker.orders[c].is_terminal]:
            del self._adopted[cid]
        if self.risk is not None:
            self.risk.set_condition("adopted", None if not self._adopted else
                                    f"{len(self._adopted)} open orders of an earlier session: cancelling them first")

    def _sync(self, o: Order, ts: int) -> None:
        """The trader hears once that the order is live, and once that it is done."""
        cid = o.client_order_id
        tid = self._tid.get(cid)
        if tid is None:
            return
        if cid not in self._acked and o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED,
                                                  OrderState.PENDING_CANCEL):
            self._acked.add(cid)
            self.on_report(ts, tid, ACK, int(o.price / self.tick), 0, int(o.leaves_qty / self.lot))
        if o.is_terminal and cid not in self._final:
            self._final.add(cid)
            if o.state == OrderState.REJECTED:
                self.on_report(ts, tid, REJECTED)
            elif o.state != OrderState.FILLED:
                self.on_report(ts, tid, CANCELED, int(o.price / self.tick), 0,
                                      int(o.leaves_qty / self.lot))

    def _apply_fill(self, f: Fill, ts: int) -> None:
        o = self.tracker.orders.get(f.client_order_id)
        tid = self._tid.get(f.client_order_id)
        side = f.side or (o.side if o else "")
        px = float(f.price)
        notional = float(f.quote_qty) if f.quote_qty else px * float(f.qty)
        fee = self._fee(f)
        lots = int(f.qty / self.lot)
        self.volume += notional
        self._cost.fill(lots if side == "BUY" else -lots, px)
        self.counters.fills += 1
        if tid is not None:
            leaves = int(o.leaves_qty / self.lot) if o is not None else 0
            self.on_report(ts, tid, FILL, int(f.price / self.tick), lots, leaves, fee,
                                  not bool(f.maker) if f.maker is not None else False)
        elif self.position_known:
            log.warning("%s: fill of %s (not this session's order): %s %s at %s; the position counts it",
                        self.symbol, f.client_order_id, side, f.qty, f.price)
            self.trader.foreign_fill(0 if side == "BUY" else 1, int(f.price / self.tick), lots, fee)
        if self.on_fill is not None:
            self.on_fill(f, self.trader.position)

    def _fee(self, f: Fill) -> float:
        """The commission in the quote asset (one paid in the base asset, received on a buy, at the fill price)."""
        if f.commission_asset in (None, "", self.quote_asset) or not self.quote_asset:
            return float(f.commission)
        return float(f.commission) * float(f.price)

    @property
    def adopted_open(self) -> int:
        """Orders of an earlier session not known final yet (being cancelled)."""
        return len(self._adopted)

    @property
    def realized_pnl(self) -> float:
        """Average-cost realised PnL of this session's fills, before fees (quote)."""
        return self._cost.realized_pnl

    @property
    def avg_entry(self) -> float:
        return self._cost.avg_entry

    def _round_trip(self, cid: Optional[str], ts: int) -> None:
        sent = self._sent_ns.pop(cid, None) if cid else None
        if sent is not None and self.risk is not None and ts >= sent:
            self.risk.on_round_trip((ts - sent) / 1e6, now=ts)

    def _query(self, cid: str) -> None:
        o = self.tracker.orders.get(cid)
        if o is None:
            return
        self.counters.queries += 1
        p: dict[str, Any] = {"symbol": self.symbol}
        if o.order_id is not None:
            p["orderId"] = o.order_id
        else:
            p["origClientOrderId"] = cid
        self.gateway.query_order(p)

    def check_timeouts(self, now: int) -> None:
        """Requests unanswered for too long become UNKNOWN: query them. An earlier
        session's order whose cancel was refused (e.g. not sent during a 429 pause)
        is cancelled again, at most once a second."""
        for o in self.tracker.on_timeout_check(now):
            self._query(o.client_order_id)
        for cid, sent in list(self._adopted.items()):
            o = self.tracker.orders.get(cid)
            if o is not None and not o.is_terminal and not o.cancel_requested and now - sent >= 1_000_000_000:
                self.counters.cancels_sent += 1
                self._cancel_foreign(o, now)
        if self._adopted:
            self._adopted_state()

    def _mid_price(self) -> Optional[Decimal]:
        return self.reference_price

    #: the mid the filters' percent-price checks use (the engine sets it, price units)
    reference_price: Optional[Decimal] = None

    def _order_changed(self, order: Order) -> None:
        if self.on_order is not None:
            self.on_order(order)

    # ------------------------------------------------------------ housekeeping
    def cancel_all_orders(self, reason: str = "") -> int:
        """Cancel every live order the tracker knows (shutdown: including any the
        trader does not, e.g. adopted ones). Returns how many."""
        n = 0
        for o in list(self.tracker.orders.values()):
            if not o.is_terminal and not o.cancel_requested:
                req = self.tracker.request_cancel(o.client_order_id)
                if req.deferred:
                    self.tracker.mark_cancel_sent(o.client_order_id)
                self.counters.cancels_sent += 1
                self._order_changed(o)
                self.gateway.cancel_order(req.params())
                n += 1
        if n:
            log.info("%s: cancelling %d open orders (%s)", self.symbol, n, reason or "requested")
        return n

    def prune(self, keep_ns: int = 60_000_000_000) -> int:
        """Forget orders final for longer than ``keep_ns`` (late duplicate reports of
        a recently final order must still find it). Returns how many."""
        tr = self.tracker
        cutoff = self.clock() - keep_ns
        old = [cid for cid, o in tr.orders.items() if o.is_terminal and o.updated_ns < cutoff]
        for cid in old:
            o = tr.orders.pop(cid)
            self._sent_ns.pop(cid, None)
            self._acked.discard(cid)
            self._final.discard(cid)
            tid = self._tid.pop(cid, None)
            if tid is not None:
                self._cid.pop(tid, None)
            if o.order_id is not None:
                tr._by_order_id.pop(o.order_id, None)
        return len(old)

    def active_orders(self) -> list[Order]:
        return self.tracker.active_orders()

    def open_quotes(self) -> tuple[Optional[Order], Optional[Order]]:
        """The newest working bid and ask (None where there is none)."""
        out: list[Optional[Order]] = [None, None]
        for si in (0, 1):
            w = self.trader.working(si)
            if w:
                cid = self._cid.get(w[-1][0])
                out[si] = self.tracker.orders.get(cid) if cid else None
        return out[0], out[1]
