"""Sans-I/O order state machine for Binance spot (see /work/shared/BINANCE.md section 3).

Nothing here performs I/O: callers send the requests and feed the answers
(REST/WS-API responses, ``executionReport`` events, query results) back in.

Quantities and prices are always :class:`decimal.Decimal`; floats are refused.

Fill accounting is idempotent: an order's ``filled_qty`` only ever follows the
exchange's cumulative filled quantity (``z`` / ``executedQty``), so duplicate or
reordered reports never double count. Every increase of ``filled_qty`` is
returned exactly once as a :class:`Fill` (the sum of returned fills equals
``filled_qty`` for orders created locally). When the increase is learned from a
non-TRADE source (a cancel answer, a query, a CANCELED report), the fill is
synthesised with ``trade_id=None`` and price derived from the cumulative quote.
"""
from __future__ import annotations

import enum
import re
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Optional

__all__ = [
    "OrderState",
    "OrderStateError",
    "Order",
    "Fill",
    "Transition",
    "CancelRequest",
    "ReconcileResult",
    "CancelReplaceOutcome",
    "OrderTracker",
    "CLIENT_ID_RE",
    "TERMINAL_STATES",
    "LIVE_STATES",
]

CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")

# Binance error codes (BINANCE.md section 3)
ERR_TIMEOUT_UNKNOWN = -1007
ERR_NEW_ORDER_REJECTED = -2010
ERR_CANCEL_REJECTED = -2011
ERR_NO_SUCH_ORDER = -2013


class OrderState(enum.Enum):
    PENDING_NEW = "PENDING_NEW"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # timeout / 5xx / -1007: must be queried


S = OrderState
TERMINAL_STATES = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
LIVE_STATES = frozenset({S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL})

_ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    S.PENDING_NEW: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                              S.REJECTED, S.EXPIRED, S.UNKNOWN}),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.UNKNOWN}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED,
                                   S.UNKNOWN}),
    S.PENDING_CANCEL: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED,
                                 S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.REJECTED,
                          S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

# exchange status string -> local state
_STATUS_MAP = {
    "NEW": S.OPEN,
    "PENDING_NEW": S.PENDING_NEW,
    "PARTIALLY_FILLED": S.PARTIALLY_FILLED,
    "FILLED": S.FILLED,
    "CANCELED": S.CANCELED,
    "PENDING_CANCEL": S.PENDING_CANCEL,
    "REJECTED": S.REJECTED,
    "EXPIRED": S.EXPIRED,
    "EXPIRED_IN_MATCH": S.EXPIRED,
}

# progress rank used to drop stale (out-of-order) exchange status updates
_RANK = {S.PENDING_NEW: 0, S.UNKNOWN: 0, S.OPEN: 1, S.PENDING_CANCEL: 2, S.PARTIALLY_FILLED: 2,
         S.FILLED: 3, S.CANCELED: 3, S.REJECTED: 3, S.EXPIRED: 3}


class OrderStateError(Exception):
    """An invalid transition or inconsistent report. State is left untouched."""

    def __init__(self, client_order_id: str, from_state: Optional[OrderState],
                 to_state: Optional[OrderState], detail: str = "") -> None:
        self.client_order_id = client_order_id
        self.from_state = from_state
        self.to_state = to_state
        f = from_state.name if from_state else "?"
        t = to_state.name if to_state else "?"
        msg = f"order {client_order_id}: invalid transition {f} -> {t}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


def _dec(value: Any, name: str = "value") -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise TypeError(f"{name} must be Decimal/str/int, not float ({value!r})")
    if isinstance(value, (int, str)):
        return Decimal(value)
    raise TypeError(f"{name}: cannot convert {type(value).__name__} to Decimal")


def _opt_dec(value: Any) -> Optional[Decimal]:
    if value is None or value == "":
        return None
    return _dec(value)


@dataclass(frozen=True)
class Fill:
    client_order_id: str
    trade_id: Optional[int]
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: Optional[str]
    maker: Optional[bool]
    time_ns: int
    side: str = ""


@dataclass(frozen=True)
class Transition:
    time_ns: int
    from_state: OrderState
    to_state: OrderState
    reason: str


@dataclass(eq=False)  # identity semantics: hashable, usable in sets
class Order:
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    post_only: bool = True
    order_id: Optional[int] = None
    state: OrderState = OrderState.PENDING_NEW
    filled_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    created_ns: int = 0
    updated_ns: int = 0
    reject_code: Optional[int] = None
    reject_reason: Optional[str] = None
    history: list[Transition] = field(default_factory=list)
    trade_ids: set[int] = field(default_factory=set)
    cancel_requested: bool = False  # a cancel is wanted (maybe deferred until ack)
    cancel_sent: bool = False  # the cancel request may be sent / was sent
    state_before_cancel: Optional[OrderState] = None
    adopted: bool = False  # discovered on the exchange, not created here

    @property
    def avg_price(self) -> Optional[Decimal]:
        if self.filled_qty == 0:
            return None
        return self.cum_quote / self.filled_qty

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def _transition(self, to: OrderState, now: int, reason: str = "") -> None:
        if to == self.state and to != S.PARTIALLY_FILLED:
            return  # idempotent
        if to not in _ALLOWED[self.state]:
            raise OrderStateError(self.client_order_id, self.state, to, reason)
        if to != self.state:
            self.history.append(Transition(now, self.state, to, reason))
        self.state = to
        self.updated_ns = now


@dataclass(frozen=True)
class CancelRequest:
    """What to send for a cancel. ``deferred``: the order is not acked yet; send it
    once :meth:`OrderTracker.on_new_ack` returns it, or now by origClientOrderId."""
    client_order_id: str
    symbol: str
    order_id: Optional[int]
    deferred: bool

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"symbol": self.symbol}
        if self.order_id is not None:
            p["orderId"] = self.order_id
        else:
            p["origClientOrderId"] = self.client_order_id
        return p


@dataclass
class ReconcileResult:
    adopted: list[Order] = field(default_factory=list)
    to_query: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)


@dataclass
class CancelReplaceOutcome:
    cancel_ok: Optional[bool]  # None = unknown
    new_ok: Optional[bool]  # None = unknown / not attempted
    fills: list[Fill] = field(default_factory=list)
    to_query: list[Order] = field(default_factory=list)


class OrderTracker:
    """Tracks one symbol's orders. All inputs are plain dicts / values."""

    def __init__(self, symbol: str, id_prefix: str = "hftmm",
                 clock: Callable[[], int] = time.time_ns,
                 request_timeout_ns: int = 10_000_000_000) -> None:
        if not re.fullmatch(r"[a-zA-Z0-9\-_]{1,16}", id_prefix):
            raise ValueError(f"id_prefix must match [a-zA-Z0-9-_]{{1,16}}: {id_prefix!r}")
        self.symbol = symbol
        self.id_prefix = id_prefix
        self.clock = clock
        self.request_timeout_ns = request_timeout_ns
        self.orders: dict[str, Order] = {}
        self._by_order_id: dict[int, str] = {}
        self._counter = 0
        self.fills: list[Fill] = []

    # ------------------------------------------------------------ lookup
    def get(self, client_order_id: str) -> Order:
        try:
            return self.orders[client_order_id]
        except KeyError:
            raise KeyError(f"unknown client order id {client_order_id!r}") from None

    def find(self, client_order_id: Optional[str] = None, order_id: Optional[int] = None) -> Optional[Order]:
        if client_order_id and client_order_id in self.orders:
            return self.orders[client_order_id]
        if order_id is not None and order_id in self._by_order_id:
            return self.orders[self._by_order_id[order_id]]
        return None

    def _set_order_id(self, order: Order, order_id: Any) -> None:
        if order_id is None:
            return
        oid = int(order_id)
        if order.order_id is not None and order.order_id != oid:
            raise OrderStateError(order.client_order_id, order.state, order.state,
                                  f"orderId mismatch {order.order_id} != {oid}")
        order.order_id = oid
        self._by_order_id[oid] = order.client_order_id

    # ------------------------------------------------------------ new
    def next_client_id(self) -> str:
        self._counter += 1
        cid = f"{self.id_prefix}-{self._counter}-{secrets.token_hex(3)}"
        if not CLIENT_ID_RE.match(cid):
            raise ValueError(f"client id {cid!r} exceeds Binance's format")
        return cid

    def new_order(self, side: str, price: Any, qty: Any, post_only: bool = True) -> Order:
        side = side.upper()
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, got {side!r}")
        p, q = _dec(price, "price"), _dec(qty, "qty")
        if p <= 0 or q <= 0:
            raise ValueError(f"price and qty must be positive (price={p}, qty={q})")
        now = self.clock()
        order = Order(self.next_client_id(), self.symbol, side, p, q, post_only=post_only,
                      created_ns=now, updated_ns=now)
        self.orders[order.client_order_id] = order
        return order

    def new_order_params(self, order: Order) -> dict[str, Any]:
        """Parameters for POST /api/v3/order or order.place (without timestamp/signature)."""
        p: dict[str, Any] = {"symbol": order.symbol, "side": order.side,
                             "type": "LIMIT_MAKER" if order.post_only else "LIMIT",
                             "quantity": str(order.qty), "price": str(order.price),
                             "newClientOrderId": order.client_order_id}
        if not order.post_only:
            p["timeInForce"] = "GTC"
        return p

    def on_new_ack(self, client_id: str, order_id: Any, transact_time_ns: Optional[int] = None,
                   response: Optional[Mapping[str, Any]] = None) -> tuple[list[Fill], Optional[CancelRequest]]:
        """A successful new-order answer. ``response`` (RESULT/FULL body) is applied as
        a query result. Returns (fills, cancel to send now if one was deferred)."""
        order = self.get(client_id)
        now = transact_time_ns if transact_time_ns is not None else self.clock()
        self._set_order_id(order, order_id)
        fills: list[Fill] = []
        if order.state in (S.PENDING_NEW, S.UNKNOWN):
            order._transition(S.OPEN, now, "new ack")
        elif order.state == S.PENDING_CANCEL:
            order.updated_ns = now
        if response is not None:
            fills = self._apply_snapshot(order, response, now, "new ack")
        deferred = None
        if order.cancel_requested and not order.cancel_sent and not order.is_terminal:
            order.cancel_sent = True
            order.updated_ns = now  # cancel timeout runs from here
            deferred = CancelRequest(order.client_order_id, order.symbol, order.order_id, False)
        return fills, deferred

    def on_reject(self, client_id: str, code: int, msg: str = "",
                  http_status: Optional[int] = None) -> OrderState:
        """A failed new-order answer. -1007 / HTTP 5xx mean *unknown*, not rejected."""
        order = self.get(client_id)
        now = self.clock()
        if code == ERR_TIMEOUT_UNKNOWN or (http_status is not None and http_status >= 500):
            if not order.is_terminal:
                order._transition(S.UNKNOWN, now, f"new order status unknown ({code} {msg})")
            return order.state
        reason = msg or f"code {code}"
        if code == ERR_NEW_ORDER_REJECTED and "immediately match" in msg.lower():
            reason = "post-only"
        if order.state == S.REJECTED:
            # the user stream's x=REJECTED report came first (Binance sends it for a
            # cancelReplace's new order before the 409 answer): same outcome, and the
            # REST answer adds the error code the report lacks
            if order.reject_code is None:
                order.reject_code, order.reject_reason = code, reason
            return order.state
        if order.state not in (S.PENDING_NEW, S.UNKNOWN, S.PENDING_CANCEL):
            raise OrderStateError(client_id, order.state, S.REJECTED, f"reject {code} after ack")
        if order.state == S.PENDING_CANCEL and order.order_id is not None:
            raise OrderStateError(client_id, order.state, S.REJECTED, f"reject {code} after ack")
        order._transition(S.REJECTED, now, reason)
        order.reject_code, order.reject_reason = code, reason
        return order.state

    def on_request_unknown(self, client_id: str, detail: str = "timeout") -> None:
        """Transport timeout / lost answer: the order must be queried."""
        order = self.get(client_id)
        if not order.is_terminal:
            order._transition(S.UNKNOWN, self.clock(), detail)

    # ------------------------------------------------------------ cancel
    def request_cancel(self, client_id: str) -> CancelRequest:
        order = self.get(client_id)
        now = self.clock()
        if order.is_terminal:
            raise OrderStateError(client_id, order.state, S.PENDING_CANCEL, "order already final")
        if order.state != S.PENDING_CANCEL:
            prev = order.state
            order._transition(S.PENDING_CANCEL, now, "cancel requested")
            order.state_before_cancel = prev
        order.cancel_requested = True
        deferred = order.order_id is None and order.state_before_cancel == S.PENDING_NEW
        if not deferred:
            order.cancel_sent = True
        return CancelRequest(client_id, order.symbol, order.order_id, deferred)

    def mark_cancel_sent(self, client_id: str) -> None:
        """The caller chose to send a deferred cancel now by origClientOrderId."""
        order = self.get(client_id)
        order.cancel_sent = True
        order.updated_ns = self.clock()

    def on_cancel_ack(self, client_id: str, response: Optional[Mapping[str, Any]] = None) -> list[Fill]:
        """Successful cancel answer (body has status, executedQty, cummulativeQuoteQty)."""
        order = self.get(client_id)
        now = self.clock()
        fills: list[Fill] = []
        if response is not None:
            self._set_order_id(order, response.get("orderId"))
            fills = self._apply_snapshot(order, {**response, "status": response.get("status", "CANCELED")},
                                         now, "cancel ack")
        if not order.is_terminal:
            order._transition(S.CANCELED, now, "cancel ack")
        return fills

    def on_cancel_reject(self, client_id: str, code: int, msg: str = "",
                         http_status: Optional[int] = None) -> bool:
        """Failed cancel. Returns True if the order must now be queried (UNKNOWN)."""
        order = self.get(client_id)
        now = self.clock()
        if order.is_terminal:
            return False  # a report already told us the outcome
        unknown = (code in (ERR_CANCEL_REJECTED, ERR_NO_SUCH_ORDER, ERR_TIMEOUT_UNKNOWN)
                   or (http_status is not None and http_status >= 500))
        order.cancel_requested = order.cancel_sent = False
        if unknown:
            # unknown order: it may have filled (or never existed) -> ask the exchange
            order._transition(S.UNKNOWN, now, f"cancel rejected {code} {msg}".strip())
            return True
        back = order.state_before_cancel or S.OPEN
        if back == S.PENDING_NEW:
            back = S.OPEN if order.order_id is not None else S.UNKNOWN
        if order.state == S.PENDING_CANCEL:
            if back == S.PARTIALLY_FILLED or (back == S.OPEN and order.filled_qty > 0):
                back = S.PARTIALLY_FILLED
            order._transition(back, now, f"cancel rejected {code} {msg}".strip())
        return order.state == S.UNKNOWN

    # ------------------------------------------------------------ timeouts
    def on_timeout_check(self, now: Optional[int] = None) -> list[Order]:
        now = self.clock() if now is None else now
        out = []
        for order in self.orders.values():
            if order.state in (S.PENDING_NEW, S.PENDING_CANCEL):
                if now - order.updated_ns > self.request_timeout_ns:
                    order._transition(S.UNKNOWN, now, f"{order.state.name} timed out")
                    out.append(order)
        return out

    def orders_to_query(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state == S.UNKNOWN]

    # ------------------------------------------------------------ fills
    def _record_fill(self, order: Order, new_z: Decimal, new_Z: Optional[Decimal], now: int,
                     trade_id: Optional[int] = None, last_qty: Optional[Decimal] = None,
                     last_price: Optional[Decimal] = None, last_quote: Optional[Decimal] = None,
                     commission: Decimal = Decimal(0), commission_asset: Optional[str] = None,
                     maker: Optional[bool] = None) -> Optional[Fill]:
        """Advance filled_qty to the exchange cumulative ``new_z``; returns the new Fill."""
        if new_z > order.qty:
            raise OrderStateError(order.client_order_id, order.state, order.state,
                                  f"cumulative filled {new_z} exceeds qty {order.qty}")
        delta = new_z - order.filled_qty
        if delta <= 0:
            return None
        if last_qty is not None and delta == last_qty and last_price is not None:
            price = last_price
            quote = last_quote if last_quote is not None else last_qty * last_price
        elif new_Z is not None and new_Z > order.cum_quote:
            quote = new_Z - order.cum_quote
            price = quote / delta
        else:
            price = last_price if last_price is not None else order.price
            quote = delta * price
        fill = Fill(order.client_order_id, trade_id, price, delta, quote,
                    commission if delta == last_qty else Decimal(0),
                    commission_asset if delta == last_qty else None,
                    maker, now, order.side)
        order.filled_qty = new_z
        order.cum_quote = new_Z if new_Z is not None and new_Z > order.cum_quote else order.cum_quote + quote
        if trade_id is not None:
            order.trade_ids.add(trade_id)
        self.fills.append(fill)
        return fill

    def _merge_state(self, order: Order, target: OrderState, now: int, reason: str,
                     authoritative: bool = False) -> None:
        """Move to ``target`` unless it is stale (out-of-order report)."""
        cur = order.state
        if cur in TERMINAL_STATES:
            return  # final states never move; later stale reports are ignored
        if target == S.PENDING_NEW:
            return
        if target in (S.OPEN, S.PARTIALLY_FILLED):
            if order.filled_qty >= order.qty:
                target = S.FILLED
            elif order.filled_qty > 0:
                target = S.PARTIALLY_FILLED
        if cur == S.PENDING_CANCEL and target in (S.OPEN, S.PARTIALLY_FILLED) and not authoritative:
            return  # still waiting for the cancel
        if not authoritative and cur != S.UNKNOWN and _RANK[target] < _RANK[cur]:
            return
        if cur in (S.PENDING_CANCEL, S.UNKNOWN) and target in (S.OPEN, S.PARTIALLY_FILLED):
            # (UNKNOWN: e.g. a cancel whose answer was lost, and a query says it is still open:
            # the cancel did not happen and may be sent again)
            order.cancel_requested = order.cancel_sent = False
        order._transition(target, now, reason)

    def _apply_snapshot(self, order: Order, js: Mapping[str, Any], now: int, reason: str) -> list[Fill]:
        """Apply a REST order object (query / new FULL / cancel answer)."""
        fills: list[Fill] = []
        if "orderId" in js:
            self._set_order_id(order, js["orderId"])
        z = _opt_dec(js.get("executedQty"))
        Z = _opt_dec(js.get("cummulativeQuoteQty"))
        if js.get("fills"):  # FULL response: individual trades
            for f in js["fills"]:
                q, p = _dec(f["qty"]), _dec(f["price"])
                fl = self._record_fill(order, order.filled_qty + q, None, now, f.get("tradeId"), q, p, q * p,
                                       _dec(f.get("commission", "0")), f.get("commissionAsset"), None)
                if fl:
                    fills.append(fl)
        if z is not None:
            fl = self._record_fill(order, z, Z, now)
            if fl:
                fills.append(fl)
        status = js.get("status")
        if status in _STATUS_MAP:
            self._merge_state(order, _STATUS_MAP[status], now, reason, authoritative=(reason == "query"))
        return fills

    # ------------------------------------------------------------ executionReport
    def on_execution_report(self, event: Mapping[str, Any]) -> list[Fill]:
        if event.get("e", "executionReport") != "executionReport":
            return []
        if event.get("s", self.symbol) != self.symbol:
            return []
        x = event.get("x")
        X = event.get("X")
        cid = event.get("c")
        if x == "CANCELED" and event.get("C"):
            cid = event["C"]  # c is the cancel request's id, C the original
        order_id = event.get("i")
        order = self.find(cid, order_id)
        now = int(event["T"]) * 1_000_000 if event.get("T") is not None else self.clock()
        l_ = _opt_dec(event.get("l"))
        z = _opt_dec(event.get("z"))
        if order is None:
            order = self._adopt_from_report(event, cid, x, l_, z, now)
            if order is None:
                return []
        self._set_order_id(order, order_id)
        trade_id = event.get("t")
        trade_id = int(trade_id) if trade_id is not None and int(trade_id) >= 0 else None
        fills: list[Fill] = []
        if x == "TRADE" and trade_id is not None and trade_id in order.trade_ids:
            return []  # duplicate trade
        if x == "REPLACED" and event.get("q") is not None:  # amend keep priority (qty reduced)
            new_q = _dec(event["q"])
            if new_q < order.filled_qty:
                raise OrderStateError(order.client_order_id, order.state, order.state,
                                      f"amended qty {new_q} below filled {order.filled_qty}")
            order.qty = new_q
        if z is not None:
            fl = self._record_fill(order, z, _opt_dec(event.get("Z")), now,
                                   trade_id if x == "TRADE" else None, l_, _opt_dec(event.get("L")),
                                   _opt_dec(event.get("Y")), _dec(event.get("n") or "0"),
                                   event.get("N"), event.get("m"))
            if fl:
                fills.append(fl)
        if X in _STATUS_MAP:
            target = _STATUS_MAP[X]
            if x == "REJECTED" or target == S.REJECTED:
                if order.state in (S.PENDING_NEW, S.UNKNOWN) or (
                        order.state == S.PENDING_CANCEL and order.order_id is None):
                    r = event.get("r") or "rejected"
                    order.reject_reason, order.reject_code = r, None
                    order._transition(S.REJECTED, now, r)
            else:
                self._merge_state(order, target, now, f"report x={x} X={X}")
        return fills

    def _adopt_from_report(self, event: Mapping[str, Any], cid: Optional[str], x: Any,
                           l_: Optional[Decimal], z: Optional[Decimal], now: int) -> Optional[Order]:
        if not cid or event.get("S") not in ("BUY", "SELL") or event.get("q") is None:
            return None
        base = z or Decimal(0)
        if x == "TRADE" and l_ is not None:
            base -= l_  # the fill in this report is new to us
        quote = _opt_dec(event.get("Z")) or Decimal(0)
        if x == "TRADE" and base >= 0:
            quote -= _opt_dec(event.get("Y")) or (l_ or Decimal(0)) * (_opt_dec(event.get("L")) or Decimal(0))
        order = Order(cid, self.symbol, event["S"], _dec(event.get("p", "0")), _dec(event["q"]),
                      post_only=event.get("o") == "LIMIT_MAKER", state=S.OPEN,
                      filled_qty=max(base, Decimal(0)), cum_quote=max(quote, Decimal(0)),
                      created_ns=now, updated_ns=now, adopted=True)
        self.orders[cid] = order
        return order

    # ------------------------------------------------------------ queries / reconcile
    def on_query_result(self, order_json: Mapping[str, Any]) -> list[Fill]:
        """Reconcile with a REST GET /api/v3/order answer (authoritative)."""
        order = self.find(order_json.get("clientOrderId"), order_json.get("orderId"))
        if order is None:
            raise KeyError(f"query result for unknown order {order_json.get('clientOrderId')!r}")
        return self._apply_snapshot(order, order_json, self.clock(), "query")

    def on_query_not_found(self, client_id: str) -> None:
        """GET /api/v3/order answered -2013: the order never reached the book."""
        order = self.get(client_id)
        if order.is_terminal:
            return
        if order.filled_qty > 0:
            raise OrderStateError(client_id, order.state, S.REJECTED, "not found but has fills")
        order._transition(S.REJECTED, self.clock(), "not found on exchange")
        order.reject_code, order.reject_reason = ERR_NO_SUCH_ORDER, "not found on exchange"

    def reconcile_open_orders(self, open_orders_json: Iterable[Mapping[str, Any]]) -> ReconcileResult:
        """On start/reconnect, with GET /api/v3/openOrders. Unknown exchange orders are
        adopted (prior fills are not reported as Fills); local live orders absent from the
        exchange become UNKNOWN and are returned to be queried."""
        res = ReconcileResult()
        now = self.clock()
        seen: set[str] = set()
        for js in open_orders_json:
            if js.get("symbol", self.symbol) != self.symbol:
                continue
            order = self.find(js.get("clientOrderId"), js.get("orderId"))
            if order is None:
                cid = js["clientOrderId"]
                order = Order(cid, self.symbol, js["side"], _dec(js["price"]), _dec(js["origQty"]),
                              post_only=js.get("type") == "LIMIT_MAKER", state=S.OPEN,
                              filled_qty=_dec(js.get("executedQty", "0")),
                              cum_quote=_dec(js.get("cummulativeQuoteQty", "0")),
                              created_ns=now, updated_ns=now, adopted=True)
                self.orders[cid] = order
                self._set_order_id(order, js.get("orderId"))
                if order.filled_qty > 0:
                    order._transition(S.PARTIALLY_FILLED, now, "adopted")
                res.adopted.append(order)
            else:
                if order.is_terminal:
                    # exchange still has it open: our terminal state came from a stale view
                    raise OrderStateError(order.client_order_id, order.state, S.OPEN,
                                          "exchange lists a locally final order as open")
                res.fills.extend(self._apply_snapshot(order, js, now, "query"))
            seen.add(order.client_order_id)
        for order in self.orders.values():
            if order.client_order_id in seen or order.is_terminal:
                continue
            if order.state != S.UNKNOWN:
                order._transition(S.UNKNOWN, now, "missing from open orders")
            res.to_query.append(order)
        return res

    # ------------------------------------------------------------ cancel-replace
    def prepare_cancel_replace(self, cancel_client_id: str, price: Any, qty: Any,
                               side: Optional[str] = None,
                               post_only: Optional[bool] = None) -> tuple[CancelRequest, Order]:
        old = self.get(cancel_client_id)
        req = self.request_cancel(cancel_client_id)
        new = self.new_order(side or old.side, price, qty, old.post_only if post_only is None else post_only)
        return req, new

    def cancel_replace_result(self, status_code: int, body: Mapping[str, Any],
                              cancel_client_id: str, new_client_id: str) -> CancelReplaceOutcome:
        """Apply a cancelReplace answer: 200 both OK, 400 cancel failed / new not attempted
        (STOP_ON_FAILURE), 409 partial success, 5xx / -1007 unknown."""
        old, new = self.get(cancel_client_id), self.get(new_client_id)
        out = CancelReplaceOutcome(None, None)
        if status_code >= 500 or body.get("code") == ERR_TIMEOUT_UNKNOWN:
            for o in (old, new):
                if not o.is_terminal:
                    o._transition(S.UNKNOWN, self.clock(), f"cancelReplace HTTP {status_code}")
                    out.to_query.append(o)
            return out
        data = body if status_code == 200 else body.get("data", {})
        cres, nres = data.get("cancelResult"), data.get("newOrderResult")
        cresp = data.get("cancelResponse") or {}
        nresp = data.get("newOrderResponse") or {}
        if cres == "SUCCESS":
            out.cancel_ok = True
            out.fills.extend(self.on_cancel_ack(cancel_client_id, cresp))
        elif cres == "FAILURE":
            out.cancel_ok = False
            if self.on_cancel_reject(cancel_client_id, int(cresp.get("code", 0)), cresp.get("msg", "")):
                out.to_query.append(old)
        if nres == "SUCCESS":
            out.new_ok = True
            fills, _ = self.on_new_ack(new_client_id, nresp.get("orderId"), response=nresp)
            out.fills.extend(fills)
        elif nres == "FAILURE":
            out.new_ok = False
            self.on_reject(new_client_id, int(nresp.get("code", 0)), nresp.get("msg", ""))
            if new.state == S.UNKNOWN:
                out.to_query.append(new)
        elif nres == "NOT_ATTEMPTED" or cres is None and nres is None:
            out.new_ok = False
            if not new.is_terminal:
                new._transition(S.REJECTED, self.clock(), "cancelReplace: new order not attempted")
                new.reject_reason = "not attempted"
                new.reject_code = body.get("code")
        return out

    # ------------------------------------------------------------ exposure
    def _open_qty(self, side: str) -> Decimal:
        total = Decimal(0)
        for o in self.orders.values():
            if o.side == side and not o.is_terminal:
                total += o.leaves_qty
        return total

    def open_buy_qty(self) -> Decimal:
        """Leaves of live, pending and unknown buy orders (conservative)."""
        return self._open_qty("BUY")

    def open_sell_qty(self) -> Decimal:
        return self._open_qty("SELL")

    def position_delta(self) -> Decimal:
        """Signed base-asset change from the fills observed by this tracker."""
        total = Decimal(0)
        for f in self.fills:
            total += f.qty if f.side == "BUY" else -f.qty
        return total

    def active_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.is_terminal]

    def prune(self) -> int:
        """Forget terminal orders (keeps memory bounded). Returns the number removed."""
        dead = [cid for cid, o in self.orders.items() if o.is_terminal]
        for cid in dead:
            o = self.orders.pop(cid)
            if o.order_id is not None:
                self._by_order_id.pop(o.order_id, None)
        return len(dead)
