"""QuoteManager: from the pricer's quote to orders on the exchange, within risk limits.

It owns the order state (:class:`~hftmm.execution.orders.OrderTracker`: pending-new,
open, partially filled, filled, pending-cancel, cancelled, rejected,
unknown-after-timeout -> query), decides when to requote and sends requests
through a :class:`~hftmm.live.gateway.Gateway`. Answers come back through
:meth:`QuoteManager.on_gateway_event`.

The quoting decision is the backtester's, step for step (see
``hftcore/backtest.pyx`` ``_local_event``/``_quote``): on every complete book
change the pricer's EWMA takes the mid if it changed; when the refresh interval
has passed, a quote is computed for the *known* position (fills reported so
far); on each side a working order is kept while its price is within
``requote_threshold`` ticks of the new quote, otherwise it is cancelled and a new
one sent; a side the quote withholds (inventory) is cancelled. On top of that,
for live trading: the risk manager can veto or shrink any new order (limits hold
with every order in flight filled), ``min_order_lifetime`` keeps an order at
least that long unless it must go, orders pass the exchange filters and the
rate limiter before they are sent, and ``inventory_sizing`` shrinks the side
that adds to the position. With those at their defaults (no lifetime, fixed
size, limits not binding) the decisions equal the backtester's.

Units: ticks and lots inside; Decimal prices/quantities on the wire; times ns
on the engine's clock (the event clock in paper trading).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Optional

from hftcore.quoting import NO_ASK, NO_BID

from hftmm.execution.filters import SymbolFilters
from hftmm.execution.orders import Fill, Order, OrderState, OrderStateError, OrderTracker
from hftmm.execution.ratelimits import RateLimiter, RateLimitBanned
from hftmm.strategy.pricer import AvellanedaStoikovPricer, QuoteParameters

if TYPE_CHECKING:  # (hftmm.live imports this module)
    from hftmm.live.gateway import GatewayEvent

log = logging.getLogger(__name__)

__all__ = ["QuoteManager", "Decision"]

SIDES = ("BUY", "SELL")


@dataclass(frozen=True)
class Decision:
    """One quoting action: ``action`` "new" or "cancel", side BUY/SELL, price [ticks],
    size [lots], at ``ts_ns`` on the engine clock."""

    ts_ns: int
    action: str
    side: str
    px: int
    lots: int
    client_order_id: str


@dataclass
class _Counters:
    quotes: int = 0
    orders_sent: int = 0
    cancels_sent: int = 0
    rejected: int = 0
    post_only_rejects: int = 0
    risk_blocked: int = 0
    filter_blocked: int = 0
    rate_limited: int = 0
    queries: int = 0
    fills: int = 0
    state_errors: int = 0
    filter_reasons: dict = field(default_factory=dict)


class QuoteManager:
    """Quotes one symbol through a gateway. See the module docstring.

    Parameters (units in brackets):
      symbol; pricer (:class:`AvellanedaStoikovPricer`; its tick_size/lot_size are
      the symbol's); risk_manager (``hftmm.strategy.RiskManager`` or None: the
      pricer's inventory limit only); params (:class:`QuoteParameters`); gateway;
      filters (:class:`SymbolFilters` from exchangeInfo, or None); rate_limiter;
      order_size [base] (None: the pricer's); requote_threshold [ticks];
      refresh_interval [s] between quote computations; min_order_lifetime [s];
      post_only (LIMIT_MAKER); inventory_sizing; clock () -> ns (the engine's);
      quote_asset: the symbol's quote asset (commissions in any other asset are
      taken as base-asset amounts and valued at the fill price).
      on_fill(fill, position_lots), on_order(order): callbacks for the state store.
    """

    def __init__(self, symbol: str, pricer: AvellanedaStoikovPricer, risk_manager: Any = None, *,
                 params: Optional[QuoteParameters] = None, gateway: Any = None,
                 filters: Optional[SymbolFilters] = None, rate_limiter: Optional[RateLimiter] = None,
                 order_size: Optional[float] = None, requote_threshold: int = 1, refresh_interval: float = 0.1,
                 min_order_lifetime: float = 0.0, post_only: bool = True, inventory_sizing: bool = False,
                 clock: Callable[[], int] = time.time_ns, id_prefix: str = "hftmm",
                 tick_size: Optional[str] = None, lot_size: Optional[str] = None, quote_asset: str = "",
                 on_fill: Optional[Callable[[Fill, int], None]] = None,
                 on_order: Optional[Callable[[Order], None]] = None) -> None:
        self.symbol = symbol.upper()
        self.pricer = pricer
        self.risk = risk_manager
        self.params = params or QuoteParameters()
        self.gateway = gateway
        self.filters = filters
        self.rate_limiter = rate_limiter
        if isinstance(requote_threshold, bool) or not isinstance(requote_threshold, int) or requote_threshold < 0:
            raise ValueError(f"requote_threshold must be an int >= 0 [ticks], got {requote_threshold!r}")
        for name, v in (("refresh_interval", refresh_interval), ("min_order_lifetime", min_order_lifetime)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 [s], got {v!r}")
        self.requote_threshold = requote_threshold
        self.refresh_interval_ns = int(round(refresh_interval * 1e9))
        self.min_order_lifetime_ns = int(round(min_order_lifetime * 1e9))
        self.post_only = bool(post_only)
        self.inventory_sizing = bool(inventory_sizing)
        self.clock = clock
        self.now = 0
        self.tick = Decimal(tick_size) if tick_size else Decimal(repr(pricer.tick_size))
        self.lot = Decimal(lot_size) if lot_size else Decimal(repr(pricer.lot_size))
        size = pricer.order_size if order_size is None else order_size
        self.order_lots = max(int(round(size / float(self.lot))), 1)
        self.tracker = OrderTracker(self.symbol, id_prefix, clock=self._clock)
        self.quote_asset = quote_asset
        #: False until the position is known (a real account: reconciled from its balances on start)
        self.position_known = True
        self._inherited_lots = 0      # an inherited position not yet marked into cash
        self.on_fill = on_fill
        self.on_order = on_order
        # state
        self.position_lots = 0          # known position (fills reported so far)
        self.cash = 0.0                 # quote currency, fees included
        self.fees = 0.0
        self.volume = 0.0               # traded quote notional
        self.realized_pnl = 0.0         # quote, average-cost, before fees
        self.avg_entry = 0.0            # average entry price of the open position
        self.next_quote_ns = 0
        self.enabled = True             # False: stopped (kill switch / shutdown)
        self.user_stream_ok = True
        self.decisions: list[Decision] = []
        self.record_decisions = False
        self.counters = _Counters()
        self.last_quote = None
        self._sent_ns: dict[str, int] = {}
        self._logged_filters: set[str] = set()

    def _clock(self) -> int:
        return self.now if self.now else self.clock()

    # ------------------------------------------------------------ market data
    def on_book_change(self, now: int, best_bid: int, best_ask: int, bid_qty: int, ask_qty: int) -> None:
        """After a complete book change (ticks, lots) at ``now`` [ns]: update the
        pricer and requote when the refresh interval has passed."""
        self.now = now
        self.pricer.on_book(now, best_bid, best_ask, bid_qty, ask_qty)
        if best_bid == NO_BID or best_ask == NO_ASK:
            return
        if now >= self.next_quote_ns:
            self.next_quote_ns = now + self.refresh_interval_ns
            self.requote(now)

    def on_trade(self, now: int, price_tick: int) -> None:
        self.now = now
        self.pricer.on_trade(now, price_tick)

    # ------------------------------------------------------------ quoting
    def working(self, side: str) -> list[Order]:
        """Orders on ``side`` that are live or on their way and not being cancelled."""
        return [o for o in self.tracker.orders.values()
                if o.side == side and not o.is_terminal and not o.cancel_requested]

    def _ticks(self, price: Decimal) -> int:
        return int(price / self.tick)

    def requote(self, now: int) -> None:
        """Compute the quote and bring the orders in line with it."""
        self.now = now
        if not self.enabled or not self.user_stream_ok or not self.position_known \
                or (self.risk is not None and not self.risk.can_quote):
            self.cancel_all_orders("not quoting")
            return
        out = self.pricer.quote_ticks(self.params, self.position_lots, now)
        if out is None:
            return
        if self._inherited_lots:
            # the inherited inventory enters the PnL at the first quotable mid
            m = self._mid_price()
            if m is not None:
                self.cash -= self._inherited_lots * float(self.lot) * float(m)
                self.avg_entry = float(m)
                self._inherited_lots = 0
        self.counters.quotes += 1
        self.last_quote = out
        for si, side in enumerate(SIDES):
            ok = out.bid_ok if si == 0 else out.ask_ok
            px = out.bid_tick if si == 0 else out.ask_tick
            w: Optional[Order] = None
            for o in self.working(side):
                if w is not None:
                    self._cancel(w, now)          # never two working orders a side
                w = o
            if not ok:
                if w is not None:
                    self._cancel(w, now)
                continue
            if w is None:
                self._new(side, px, now)
            else:
                wpx = self._ticks(w.price)
                if abs(wpx - px) >= self.requote_threshold:
                    if self.min_order_lifetime_ns and now - w.created_ns < self.min_order_lifetime_ns:
                        continue                  # too young to move
                    self._cancel(w, now)
                    self._new(side, px, now)

    def _size(self, side: str) -> int:
        lots = self.order_lots
        if self.inventory_sizing and self.pricer.max_inventory not in (0.0, math.inf):
            q = self.position_lots * float(self.lot) / self.pricer.max_inventory
            adding = q if side == "BUY" else -q
            if adding > 0:
                lots = max(int(lots * max(0.0, 1.0 - adding)), 1)
        return lots

    def _new(self, side: str, px: int, now: int) -> Optional[Order]:
        lots = self._size(side)
        price = Decimal(px) * self.tick
        qty = Decimal(lots) * self.lot
        if self.risk is not None:
            d = self.risk.check_order(side, price, qty, self.position_lots * self.lot,
                                      self.tracker.open_buy_qty(), self.tracker.open_sell_qty(), now=now)
            if not d.allowed or d.qty <= 0:
                self.counters.risk_blocked += 1
                return None
            if d.qty < qty:
                # clipped: down to a multiple of the order step (LOT_SIZE stepSize; the
                # data's lot can be finer, and an inherited position need not be on it)
                step = self.filters.step_size if self.filters is not None and self.filters.step_size > 0 \
                    else self.lot
                steps = int(Decimal(d.qty) / step)
                if steps <= 0:
                    self.counters.risk_blocked += 1
                    return None
                qty = Decimal(steps) * step
        if self.filters is not None:
            price_s, qty_s = self.filters.format_price(price), self.filters.format_qty(qty)
            bad = self.filters.check(side, price, qty, reference_price=self._mid_price())
            if bad:
                self.counters.filter_blocked += 1
                key = bad[0].split(":")[0]
                self.counters.filter_reasons[key] = self.counters.filter_reasons.get(key, 0) + 1
                if key not in self._logged_filters:
                    self._logged_filters.add(key)
                    log.warning("%s: %s quote at %s x %s refused by the exchange filters: %s", self.symbol,
                                side, price_s, qty_s, "; ".join(bad))
                return None
        if self.rate_limiter is not None:
            try:
                wait = self.rate_limiter.acquire(weight=1, orders=1, now=now / 1e9)
            except RateLimitBanned:
                wait = 1.0
            if wait > 0:
                self.counters.rate_limited += 1
                return None
        order = self.tracker.new_order(side, price, qty, post_only=self.post_only)
        params = self.tracker.new_order_params(order)
        if self.filters is not None:
            params["price"], params["quantity"] = self.filters.format_price(price), self.filters.format_qty(qty)
        if self.post_only is False:
            params.setdefault("timeInForce", "GTC")
        params["newOrderRespType"] = "RESULT"
        self.counters.orders_sent += 1
        self._sent_ns[order.client_order_id] = now
        if self.record_decisions:
            self.decisions.append(Decision(now, "new", side, px, lots, order.client_order_id))
        if self.risk is not None:
            self.risk.on_order_sent(now=now)
        self._order_changed(order)
        self.gateway.place_order(params)
        return order

    def _mid_price(self) -> Optional[Decimal]:
        bb, ba = self.pricer.best_bid, self.pricer.best_ask
        if bb == NO_BID or ba == NO_ASK:
            return None
        return (Decimal(bb) + Decimal(ba)) * self.tick / 2

    def _cancel(self, order: Order, now: int) -> None:
        if order.is_terminal or order.cancel_requested:
            return
        req = self.tracker.request_cancel(order.client_order_id)
        if req.deferred:
            # not acked yet: cancel by client id now (Binance accepts origClientOrderId)
            self.tracker.mark_cancel_sent(order.client_order_id)
        self.counters.cancels_sent += 1
        if self.record_decisions:
            self.decisions.append(Decision(now, "cancel", order.side, self._ticks(order.price),
                                           int(order.qty / self.lot), order.client_order_id))
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.acquire(weight=1, orders=0, now=now / 1e9)   # cancels always go out
            except RateLimitBanned:
                pass
        self._order_changed(order)
        self.gateway.cancel_order(req.params())

    def cancel_all_orders(self, reason: str = "") -> int:
        """Cancel every live order (kill switch, pause, shutdown). Returns how many."""
        n = 0
        for o in list(self.tracker.orders.values()):
            if not o.is_terminal and not o.cancel_requested:
                self._cancel(o, self._clock())
                n += 1
        if n:
            log.info("%s: cancelling %d open orders (%s)", self.symbol, n, reason or "requested")
        return n

    def flatten(self) -> Optional[Order]:
        """Send a MARKET order that brings the known position to zero (kill switch)."""
        lots = self.position_lots
        if lots == 0:
            return None
        side = "SELL" if lots > 0 else "BUY"
        qty = Decimal(abs(lots)) * self.lot
        order = self.tracker.new_order(side, self.tick, qty, post_only=False)   # price unused for MARKET
        params = {"symbol": self.symbol, "side": side, "type": "MARKET",
                  "quantity": self.filters.format_qty(qty) if self.filters else str(qty),
                  "newClientOrderId": order.client_order_id, "newOrderRespType": "RESULT"}
        self.counters.orders_sent += 1
        self._sent_ns[order.client_order_id] = self._clock()
        log.warning("%s: flattening %s %s at market", self.symbol, side, qty)
        self._order_changed(order)
        self.gateway.place_order(params)
        return order

    # ------------------------------------------------------------ answers
    def on_gateway_event(self, ev: GatewayEvent) -> None:
        """Apply one answer from the gateway (on the engine's thread)."""
        if ev.ts_ns:
            self.now = max(self.now, ev.ts_ns) if self.now else ev.ts_ns
        try:
            self._on_event(ev)
        except (OrderStateError, KeyError) as exc:
            self.counters.state_errors += 1
            log.error("%s: %s for %s could not be applied (%s); querying", self.symbol, ev.kind,
                      ev.client_order_id, exc)
            if ev.client_order_id and ev.client_order_id in self.tracker.orders:
                self._query(ev.client_order_id)

    def _on_event(self, ev: GatewayEvent) -> None:
        k, cid, d = ev.kind, ev.client_order_id, ev.data
        tr = self.tracker
        fills: list[Fill] = []
        order = tr.orders.get(cid) if cid else None
        if k == "execution_report":
            fills = tr.on_execution_report(d)
            order = tr.find(d.get("C") if d.get("x") == "CANCELED" and d.get("C") else d.get("c"), d.get("i"))
        elif order is None and k not in ("open_orders", "account", "user_stream", "error", "account_position",
                                         "balance_update", "query_result"):
            log.debug("%s: %s for an order we do not track (%s)", self.symbol, k, cid)
            return
        elif k == "new_ack":
            self._round_trip(cid, ev.ts_ns)
            fills, deferred = tr.on_new_ack(cid, d.get("orderId"), response=d)
            if deferred is not None:
                self.gateway.cancel_order(deferred.params())
        elif k == "new_reject":
            self._round_trip(cid, ev.ts_ns)
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
            out = tr.cancel_replace_result(int(d["http_status"]), d.get("body", {}),
                                           d["cancel_client_order_id"], d["new_client_order_id"])
            fills = out.fills
            for o in out.to_query:
                self._query(o.client_order_id)
        elif k == "query_result":
            fills = tr.on_query_result(d)
            order = tr.find(d.get("clientOrderId"), d.get("orderId"))
        elif k == "query_not_found":
            tr.on_query_not_found(cid)
        elif k == "open_orders":
            res = tr.reconcile_open_orders(d.get("orders", []))
            fills = res.fills
            for o in res.adopted:
                log.warning("%s: open order %s found on the exchange that this session did not place; "
                            "cancelling it", self.symbol, o.client_order_id)
                self._cancel(o, self._clock())
            for o in res.to_query:
                self._query(o.client_order_id)
        elif k == "user_stream":
            self.user_stream_ok = d.get("state") == "subscribed"
            if not self.user_stream_ok:
                log.warning("%s: user data stream %s: not quoting until it is back", self.symbol, d.get("state"))
        for f in fills:
            self._apply_fill(f)
        if order is not None:
            self._order_changed(order)

    def _round_trip(self, cid: Optional[str], ts: int) -> None:
        sent = self._sent_ns.pop(cid, None) if cid else None
        if sent is not None and self.risk is not None and ts >= sent:
            self.risk.on_round_trip((ts - sent) / 1e6)

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

    def inherit_position(self, lots: int) -> None:
        """Start from a position of ``lots`` held before this session (a restart):
        the limits count it at once; the PnL marks it at the first quotable mid."""
        self.position_lots = int(lots)
        self._inherited_lots = int(lots)
        self.position_known = True

    def _apply_fill(self, f: Fill) -> None:
        lots = int(f.qty / self.lot)
        side = f.side or self.tracker.orders[f.client_order_id].side
        px = float(f.price)
        notional = float(f.quote_qty) if f.quote_qty else px * float(f.qty)
        # commission in the quote asset, or in the base asset (received on a buy)
        fee = float(f.commission) if f.commission_asset in (None, "", self.quote_asset) or not self.quote_asset \
            else float(f.commission) * px
        self._realize(lots if side == "BUY" else -lots, px)
        if side == "BUY":
            self.position_lots += lots
            self.cash -= notional
        else:
            self.position_lots -= lots
            self.cash += notional
        self.cash -= fee
        self.fees += fee
        self.volume += notional
        self.counters.fills += 1
        if self.on_fill is not None:
            self.on_fill(f, self.position_lots)

    def _realize(self, signed_lots: int, px: float) -> None:
        """Average-cost accounting of a fill of ``signed_lots`` at ``px`` (before the
        position is updated): what it closes is realised against the average entry."""
        pos = self.position_lots
        if pos == 0 or (pos > 0) == (signed_lots > 0):
            new = pos + signed_lots
            self.avg_entry = (self.avg_entry * abs(pos) + px * abs(signed_lots)) / abs(new) if new else 0.0
            return
        closing = min(abs(signed_lots), abs(pos))
        direction = 1.0 if pos > 0 else -1.0
        self.realized_pnl += (px - self.avg_entry) * closing * float(self.lot) * direction
        left = pos + signed_lots
        if left == 0:
            self.avg_entry = 0.0
        elif (left > 0) != (pos > 0):
            self.avg_entry = px                       # flipped: the rest opens at this price

    def _order_changed(self, order: Order) -> None:
        if self.on_order is not None:
            self.on_order(order)

    def prune(self, keep_ns: int = 60_000_000_000) -> int:
        """Forget orders final for longer than ``keep_ns`` [ns] (late duplicate reports
        of a recently final order must still find it). Returns how many."""
        tr = self.tracker
        cutoff = self._clock() - keep_ns
        old = [cid for cid, o in tr.orders.items() if o.is_terminal and o.updated_ns < cutoff]
        for cid in old:
            o = tr.orders.pop(cid)
            self._sent_ns.pop(cid, None)
            if o.order_id is not None:
                tr._by_order_id.pop(o.order_id, None)
        return len(old)

    # ------------------------------------------------------------ views
    @property
    def position(self) -> Decimal:
        """Known position [base units]."""
        return self.position_lots * self.lot

    def equity(self, mid: Optional[float] = None) -> float:
        """Cash + position at ``mid`` [quote] (the PnL since the start, fees included)."""
        m = mid
        if m is None:
            md = self._mid_price()
            m = float(md) if md is not None else math.nan
        # an inherited position not marked yet is not a gain of this session
        return self.cash + (self.position_lots - self._inherited_lots) * float(self.lot) * m

    def open_quotes(self) -> tuple[Optional[Order], Optional[Order]]:
        """The working bid and ask orders (None where there is none)."""
        b = self.working("BUY")
        a = self.working("SELL")
        return (b[-1] if b else None, a[-1] if a else None)
