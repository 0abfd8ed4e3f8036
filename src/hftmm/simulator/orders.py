"""Spot order matching and accounts of the exchange simulator (sans-I/O).

:class:`OrderEngine` takes parsed requests (Binance parameter dicts of strings)
and market events in, and gives Binance JSON answers and user-data events out;
it does no I/O and keeps no clock of its own (callers pass ``now_ms``).

Model (see also the simulator package docstring):

- Prices are integer ticks and quantities integer lots inside; balances and
  quote amounts are :class:`~decimal.Decimal` quantized to 8 decimals.
- Our orders never enter the simulated book (the market does not see them) and
  never match each other. A marketable order takes the current book levels of
  the opposite side at their prices, up to their quantities (each order sees the
  book as published: market impact is not modelled).
- A resting order joins behind the displayed quantity at its price (``queue
  ahead``, in lots) plus our own earlier orders there. A market trade printing
  at our price consumes the queue ahead first, then fills us; a trade through our
  price fills us by its quantity; a level decrease shrinks the queue ahead to at
  most the new displayed quantity; an opposite best price at or through ours
  fills us against those levels (at our price, as maker).
- Commission is charged in the received asset at the account's maker/taker rate.
- Funds are locked at placement (buys: price x quantity of the quote asset;
  sells: the quantity of the base asset) and released on fills, cancel, expiry.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Optional

from hftmm.execution.filters import SymbolFilters

log = logging.getLogger(__name__)

EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)
CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")
UNSUPPORTED_TYPES = {
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
#: executionReport keys, in Binance's order (user-data-stream.md)
REPORT_KEYS = ("e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i", "l", "z",
               "L", "n", "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q", "W", "V")


class ApiError(Exception):
    """A Binance error answer: HTTP ``status``, ``{"code", "msg"}`` and, for
    cancelReplace, ``data``."""

    def __init__(self, status: int, code: int, msg: str, data: Optional[dict] = None,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.data = data
        self.headers = headers or {}

    def body(self) -> dict:
        b: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            b["data"] = self.data
        return b


def mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> ApiError:
    return ApiError(400, -1106, f"Parameter '{name}' sent when not required.")


def rejected(msg: str) -> ApiError:
    return ApiError(400, -2010, msg)


def unknown_order() -> ApiError:
    return ApiError(400, -2011, "Unknown order sent.")


def q8(x: Decimal) -> Decimal:
    return x.quantize(EIGHT, rounding=ROUND_DOWN)


def f8(x: Decimal) -> str:
    return f"{x.quantize(EIGHT):f}"


@dataclass
class Account:
    """One simulated spot account: balances ``asset -> [free, locked]``,
    commission rates (fractions, e.g. 0.001), its orders by id."""

    api_key: str
    balances: dict[str, list[Decimal]]
    maker_rate: Decimal = Decimal("0.001")
    taker_rate: Decimal = Decimal("0.001")
    orders: dict[int, "SimOrder"] = field(default_factory=dict)
    by_client_id: dict[str, int] = field(default_factory=dict)   # latest order per client id
    update_time: int = 0
    trades: list[dict] = field(default_factory=list)             # own fills (myTrades rows), by trade id

    def bal(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [ZERO, ZERO])

    def open_orders(self) -> list["SimOrder"]:
        return [o for o in self.orders.values() if o.status in OPEN_STATUSES]


@dataclass
class SimOrder:
    """One order: price in ticks (0 for MARKET), quantities in lots, times in ms."""

    order_id: int
    client_id: str
    side: str
    type: str
    tif: str
    price: int
    qty: int
    time: int
    stp: str
    resp_type: str
    seq: int
    executed: int = 0
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    queue_ahead: int = 0
    locked: Decimal = ZERO          # still locked for this order (quote for buys, base for sells)
    strategy_id: Optional[int] = None
    strategy_type: Optional[int] = None

    @property
    def leaves(self) -> int:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class _Fill:
    price: int
    lots: int
    maker: bool
    trade_id: int = 0
    quote: Decimal = ZERO
    commission: Decimal = ZERO
    asset: str = ""
    realized: Decimal = ZERO        # USD-M: realised PnL of the fill [quote]


class OrderEngine:
    """Orders and balances of every account for one spot symbol.

    ``book()`` returns the simulated exchange book (an ``L2Book``: ticks/lots,
    side 0 = bids, 1 = asks); ``px``/``qty`` format ticks/lots as Binance strings. ``events`` collects ``(api_key, event)`` pairs for the
    user-data streams; the caller drains it with :meth:`take_events`. All public
    methods take the engine's lock, so test threads may read while the
    simulator's loop thread trades.
    """

    def __init__(self, symbol: str, base: str, quote: str, tick_size: str, lot_size: str,
                 filters: SymbolFilters, book: Callable[[], Any], px: Callable[[int], str],
                 qty: Callable[[int], str],
                 default_stp: str = "EXPIRE_MAKER", allowed_stp: Iterable[str] = STP_MODES) -> None:
        self.symbol = symbol
        self.base = base
        self.quote = quote
        self.tick = Decimal(tick_size)
        self.lot = Decimal(lot_size)
        self.filters = filters
        self._book = book
        self.px = px
        self.qty = qty
        self.default_stp = default_stp
        self.allowed_stp = frozenset(allowed_stp) | {"NONE"}
        self.accounts: dict[str, Account] = {}
        self.events: list[tuple[str, dict]] = []
        self.lock = threading.RLock()
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_exec_id = 1
        self._seq = 0
        self._auto_id = 0
        self.stats: dict[str, int] = {}
        self._open: dict[int, tuple[Account, SimOrder]] = {}    # resting orders by id

    @property
    def book(self) -> Any:
        return self._book()

    # ------------------------------------------------------------------ accounts
    def add_account(self, api_key: str, balances: dict[str, Any], maker_rate: Any = "0.001",
                    taker_rate: Any = "0.001") -> Account:
        with self.lock:
            if api_key in self.accounts:
                raise ValueError(f"account {api_key[:4]}... exists")
            bal = {a: [q8(Decimal(str(v))), ZERO] for a, v in balances.items()}
            for a in (self.base, self.quote):
                bal.setdefault(a, [ZERO, ZERO])
            acct = Account(api_key, bal, Decimal(str(maker_rate)), Decimal(str(taker_rate)))
            self.accounts[api_key] = acct
            return acct

    def take_events(self) -> list[tuple[str, dict]]:
        with self.lock:
            ev, self.events = self.events, []
            return ev

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    # ------------------------------------------------------------------ parsing
    def _units(self, raw: str, name: str, step: Decimal, filter_name: str) -> int:
        """A decimal parameter in whole steps (ticks or lots); off-step -> -1013 ``filter_name``."""
        n = self._decimal(raw, name) / step
        if n != n.to_integral_value():
            raise ApiError(400, -1013, f"Filter failure: {filter_name}")
        return int(n)

    @staticmethod
    def _decimal(raw: str, name: str) -> Decimal:
        if not DECIMAL_RE.match(raw):
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                       "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the regex guards this
            raise mandatory(name) from None

    def _client_id(self, raw: Optional[str], name: str) -> Optional[str]:
        if raw is None:
            return None
        if not CLIENT_ID_RE.match(raw):
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                       "'^[a-zA-Z0-9-_]{1,36}$'.")
        return raw

    def _auto_client_id(self) -> str:
        self._auto_id += 1
        return f"sim{self._auto_id:019d}"

    def check_symbol(self, p: dict[str, str]) -> None:
        sym = p.get("symbol")
        if not sym:
            raise mandatory("symbol")
        if sym != self.symbol:
            raise ApiError(400, -1121, "Invalid symbol.")

    def reference_price(self) -> Optional[Decimal]:
        """Mid price of the book (stands in for the ``avgPriceMins`` average)."""
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            t = bb if bb is not None else ba
            return None if t is None else t * self.tick
        return (bb + ba) * self.tick / 2

    def _side_type(self, p: dict[str, str]) -> tuple[str, str]:
        """symbol, side and type of a new order present and valid (the type's value is the caller's)."""
        self.check_symbol(p)
        side = p.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        typ = p.get("type")
        if not typ:
            raise mandatory("type")
        return side, typ

    def parse_new(self, acct: Account, p: dict[str, str], prefix: str = "") -> SimOrder:
        """Validate new-order parameters and filters (nothing executes). Raises ApiError."""
        side, typ = self._side_type(p)
        if typ in UNSUPPORTED_TYPES:
            raise rejected(UNSUPPORTED_TYPES[typ])
        if typ not in ORDER_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        tif = p.get("timeInForce")
        price_raw, qty_raw = p.get("price"), p.get("quantity")
        if typ == "LIMIT":
            if not tif:
                raise mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise ApiError(400, -1115, "Invalid timeInForce.")
        elif tif is not None:
            raise not_required("timeInForce")
        if typ == "MARKET":
            if price_raw is not None:
                raise not_required("price")
            if p.get("quoteOrderQty") is not None:
                raise rejected("Quote order qty market orders are not support for this symbol.")
            price = 0
        else:
            if not price_raw:
                raise mandatory("price")
            price = self._units(price_raw, "price", self.tick, "PRICE_FILTER")
        if not qty_raw:
            raise mandatory("quantity")
        lots = self._units(qty_raw, "quantity", self.lot, "LOT_SIZE")
        for k in ("icebergQty", "stopPrice", "trailingDelta", "pegPriceType"):
            if p.get(k) is not None:
                raise ApiError(400, -1013, {"icebergQty": "Iceberg orders are not supported for this symbol.",
                                            "pegPriceType": "Pegged orders are not supported for this symbol."}
                               .get(k, f"Parameter '{k}' sent when not required."))
        resp = p.get("newOrderRespType") or ("FULL" if typ in ("LIMIT", "MARKET") else "ACK")
        if resp not in ("ACK", "RESULT", "FULL"):
            raise ApiError(400, -1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        stp = p.get("selfTradePreventionMode") or self.default_stp
        if stp not in STP_MODES:
            raise ApiError(400, -1130, "Data sent for parameter 'selfTradePreventionMode' is not valid.")
        if stp not in self.allowed_stp:
            raise rejected("This symbol does not allow the specified self-trade prevention mode.")
        cid = self._client_id(p.get("newClientOrderId"), "newClientOrderId")
        strategy_id = strategy_type = None
        if p.get("strategyId") is not None:
            if not p["strategyId"].isdigit():
                raise ApiError(400, -1100, "Illegal characters found in parameter 'strategyId'.")
            strategy_id = int(p["strategyId"])
        if p.get("strategyType") is not None:
            if not p["strategyType"].isdigit():
                raise ApiError(400, -1100, "Illegal characters found in parameter 'strategyType'.")
            strategy_type = int(p["strategyType"])
            if strategy_type < 1_000_000:
                raise ApiError(400, -1134, "strategyType was less than 1000000.")
        self._check_filters(acct, side, typ, price, lots)
        self._seq += 1
        o = SimOrder(0, cid or "", side, typ, tif or "GTC", price, lots, 0, stp, resp, self._seq)
        o.strategy_id, o.strategy_type = strategy_id, strategy_type
        return o

    def _check_filters(self, acct: Account, side: str, typ: str, price: int, lots: int) -> None:
        f = self.filters
        ref = self.reference_price()
        if typ == "MARKET":
            best = self.book.best_ask() if side == "BUY" else self.book.best_bid()
            at = (best if best is not None else 1) * self.tick
            bad = [v for v in f.check(side, at, lots * self.lot)
                   if v.startswith(("LOT_SIZE", "NOTIONAL", "MIN_NOTIONAL")) and "> maxNotional" not in v]
            mls = f.raw.get("MARKET_LOT_SIZE")
            if mls and Decimal(mls.get("maxQty", "0")) and lots * self.lot > Decimal(mls["maxQty"]):
                bad.insert(0, "MARKET_LOT_SIZE")
        else:
            bad = f.check(side, price * self.tick, lots * self.lot, reference_price=ref,
                          open_orders=len(acct.open_orders()))
        if bad:
            name = bad[0].split(":", 1)[0]
            raise ApiError(400, -1013, f"Filter failure: {name}")

    # ------------------------------------------------------------------ new orders
    def new_order(self, acct: Account, o: SimOrder, now_ms: int) -> dict:
        """Execute a parsed order (from :meth:`parse_new`); the answer body as
        selected by ``newOrderRespType``. Raises ApiError (-2010) on rejection."""
        if not o.client_id:
            o.client_id = self._auto_client_id()
        prev = acct.by_client_id.get(o.client_id)
        if prev is not None and acct.orders[prev].is_open:
            raise self._duplicate_error()
        book_side = 1 if o.side == "BUY" else 0
        best = self.book.best_ask() if o.side == "BUY" else self.book.best_bid()
        crosses = best is not None and (o.type == "MARKET" or (best <= o.price if o.side == "BUY"
                                                                 else best >= o.price))
        if crosses and self._post_only(o):
            self._count("rejected_post_only")
            raise self._post_only_error()
        takes: list[tuple[int, int]] = []
        if crosses:
            ticks, lots = self.book.levels(book_side)
            left = o.qty
            for t, q in zip(ticks.tolist(), lots.tolist()):
                if o.type != "MARKET" and (t > o.price if o.side == "BUY" else t < o.price):
                    break
                take = min(left, q)
                takes.append((t, take))
                left -= take
                if not left:
                    break
        self._reserve(acct, o, takes)
        o.order_id = self._next_order_id
        self._next_order_id += 1
        o.time = o.update_time = o.working_time = now_ms
        acct.orders[o.order_id] = o
        acct.by_client_id[o.client_id] = o.order_id
        acct.update_time = now_ms
        self._count("orders_placed")
        self._report(acct, o, "NEW", now_ms)
        fok_short = o.tif == "FOK" and sum(n for _, n in takes) < o.qty
        fills: list[_Fill] = []
        if not fok_short:
            for t, n in takes:
                fills.append(self._fill(acct, o, t, n, False, now_ms))
        if o.is_open and (o.type == "MARKET" or o.tif in ("IOC", "FOK")):
            self._finish(acct, o, "EXPIRED", "EXPIRED", now_ms)
        elif o.is_open:
            o.queue_ahead = self._queue_ahead(o)
            self._open[o.order_id] = (acct, o)
        self._position(acct, now_ms)
        return self.order_result(o, now_ms, o.resp_type, fills)

    @staticmethod
    def _duplicate_error() -> ApiError:
        return rejected("Duplicate order sent.")

    @staticmethod
    def _post_only(o: SimOrder) -> bool:
        return o.type == "LIMIT_MAKER"

    @staticmethod
    def _post_only_error() -> ApiError:
        return rejected("Order would immediately match and take.")

    def _reserve(self, acct: Account, o: SimOrder, takes: list[tuple[int, int]]) -> None:
        """Check and lock the funds of a new order (``takes``: the (ticks, lots) it will
        take at once); ApiError (-2010 insufficient balance) if short."""
        base_b, quote_b = acct.bal(self.base), acct.bal(self.quote)
        if o.side == "BUY":
            if o.type == "MARKET":
                need = sum((q8(t * self.tick * n * self.lot) for t, n in takes), ZERO)
            else:
                need = q8(o.price * self.tick * o.qty * self.lot)
            if need > quote_b[0]:
                self._count("rejected_balance")
                raise rejected("Account has insufficient balance for requested action.")
            if o.type != "MARKET":
                quote_b[0] -= need
                quote_b[1] += need
                o.locked = need
        else:
            need = o.qty * self.lot
            if need > base_b[0]:
                self._count("rejected_balance")
                raise rejected("Account has insufficient balance for requested action.")
            base_b[0] -= need
            base_b[1] += need
            o.locked = need

    def _queue_ahead(self, o: SimOrder) -> int:
        """Lots ahead of a joining order: the displayed quantity plus our earlier orders there."""
        ahead = self.book.qty_at(0 if o.side == "BUY" else 1, o.price)
        for _, x in self._open.values():
            if x.side == o.side and x.price == o.price and x.seq < o.seq:
                ahead += x.leaves
        return ahead

    # ------------------------------------------------------------------ fills
    def _fill(self, acct: Account, o: SimOrder, price: int, lots: int, maker: bool, now_ms: int) -> _Fill:
        quote_amt, comm, asset, realized = self._settle(acct, o, price, lots, maker, now_ms)
        o.executed += lots
        o.cum_quote += quote_amt
        o.update_time = now_ms
        acct.update_time = now_ms
        tid = self._next_trade_id
        self._next_trade_id += 1
        self._count("trades")
        fill = _Fill(price, lots, maker, tid, quote_amt, comm, asset, realized)
        acct.trades.append(self._trade_row(o, fill, now_ms))
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        if o.status == "FILLED":
            self._release(acct, o)
            self._open.pop(o.order_id, None)
        self._report(acct, o, "TRADE", now_ms, fill)
        return fill

    def _trade_row(self, o: SimOrder, f: _Fill, now_ms: int) -> dict:
        """One ``myTrades`` row."""
        return {"symbol": self.symbol, "id": f.trade_id, "orderId": o.order_id, "orderListId": -1,
                "price": self.px(f.price), "qty": self.qty(f.lots), "quoteQty": f8(f.quote),
                "commission": f8(f.commission), "commissionAsset": f.asset, "time": now_ms,
                "isBuyer": o.side == "BUY", "isMaker": f.maker, "isBestMatch": True}

    def _settle(self, acct: Account, o: SimOrder, price: int, lots: int, maker: bool,
                now_ms: int) -> tuple[Decimal, Decimal, str, Decimal]:
        """Move the funds of one fill; (quote amount, commission, commission asset,
        realised PnL: 0 on spot)."""
        base_amt = lots * self.lot
        quote_amt = q8(price * self.tick * base_amt)
        rate = acct.maker_rate if maker else acct.taker_rate
        base_b, quote_b = acct.bal(self.base), acct.bal(self.quote)
        if o.side == "BUY":
            if o.type == "MARKET":
                quote_b[0] -= quote_amt
            else:
                release = min(o.locked, q8(o.price * self.tick * base_amt))
                o.locked -= release
                quote_b[1] -= release
                quote_b[0] += release - quote_amt
            comm, asset = q8(base_amt * rate), self.base
            base_b[0] += base_amt - comm
        else:
            o.locked -= base_amt
            base_b[1] -= base_amt
            comm, asset = q8(quote_amt * rate), self.quote
            quote_b[0] += quote_amt - comm
        return quote_amt, comm, asset, ZERO

    def _release(self, acct: Account, o: SimOrder) -> None:
        if o.locked:
            b = acct.bal(self.quote if o.side == "BUY" else self.base)
            b[1] -= o.locked
            b[0] += o.locked
            o.locked = ZERO

    def _finish(self, acct: Account, o: SimOrder, status: str, x: str, now_ms: int,
                cancel_client_id: str = "") -> None:
        o.status = status
        o.update_time = now_ms
        acct.update_time = now_ms
        self._release(acct, o)
        self._open.pop(o.order_id, None)
        self._count({"CANCELED": "orders_canceled", "EXPIRED": "orders_expired"}.get(status, status))
        self._report(acct, o, x, now_ms, cancel_client_id=cancel_client_id)

    # ------------------------------------------------------------------ market events
    def has_resting(self) -> bool:
        return bool(self._open)

    def _resting(self, side: str) -> list[tuple[Account, SimOrder]]:
        out = [(a, o) for a, o in self._open.values() if o.side == side]
        out.sort(key=lambda ao: (-ao[1].price if side == "BUY" else ao[1].price, ao[1].seq))
        return out

    def on_trade(self, price: int, lots: int, buyer_maker: bool, now_ms: int) -> None:
        """A market trade printed (price in ticks, quantity in lots; ``buyer_maker``:
        the seller was the aggressor, so the trade hit bids)."""
        with self.lock:
            side = "BUY" if buyer_maker else "SELL"
            touched: dict[str, Account] = {}
            budget = lots
            for acct, o in self._resting(side):
                through = o.price > price if side == "BUY" else o.price < price
                if through:
                    n = min(o.leaves, budget)
                    budget -= n
                elif o.price == price:
                    n = max(0, min(o.leaves, lots - o.queue_ahead))
                    o.queue_ahead = max(0, o.queue_ahead - lots)
                else:
                    continue
                if n > 0:
                    self._fill(acct, o, o.price, n, True, now_ms)
                    touched[acct.api_key] = acct
            for acct in touched.values():
                self._position(acct, now_ms)

    def on_book(self, now_ms: int) -> None:
        """The book changed: shrink queues to the displayed quantity, and fill
        resting orders that the opposite side now reaches."""
        with self.lock:
            book = self.book
            touched: dict[str, Account] = {}
            for side, book_side, opp in (("BUY", 0, 1), ("SELL", 1, 0)):
                resting = self._resting(side)
                if not resting:
                    continue
                best = book.best_ask() if side == "BUY" else book.best_bid()
                avail: Optional[list[list[int]]] = None
                for acct, o in resting:
                    o.queue_ahead = min(o.queue_ahead, book.qty_at(book_side, o.price))
                    if best is None or (best > o.price if side == "BUY" else best < o.price):
                        continue
                    if avail is None:
                        ticks, lots = book.levels(opp)
                        avail = [[t, q] for t, q in zip(ticks.tolist(), lots.tolist())]
                    for lv in avail:
                        if (lv[0] > o.price if side == "BUY" else lv[0] < o.price) or not o.is_open:
                            break
                        n = min(lv[1], o.leaves)
                        if n > 0:
                            lv[1] -= n
                            self._fill(acct, o, o.price, n, True, now_ms)
                            touched[acct.api_key] = acct
            for acct in touched.values():
                self._position(acct, now_ms)

    # ------------------------------------------------------------------ lookups
    def find(self, acct: Account, p: dict[str, str], id_key: str = "orderId",
             cid_key: str = "origClientOrderId") -> SimOrder:
        """The order named by orderId and/or origClientOrderId (ApiError -2013 if none)."""
        oid_raw, cid = p.get(id_key), p.get(cid_key)
        if not oid_raw and not cid:
            raise ApiError(400, -1102, f"Param '{cid_key}' or '{id_key}' must be sent, but both were empty/null!")
        o: Optional[SimOrder] = None
        if oid_raw:
            if not oid_raw.isdigit():
                raise ApiError(400, -1100, f"Illegal characters found in parameter '{id_key}'; legal range is "
                                           "'^[0-9]{1,20}$'.")
            o = acct.orders.get(int(oid_raw))
            if o is not None and cid and o.client_id != cid:
                o = None
        else:
            oid = acct.by_client_id.get(cid or "")
            o = acct.orders.get(oid) if oid is not None else None
        if o is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return o

    # ------------------------------------------------------------------ cancels
    def cancel(self, acct: Account, p: dict[str, str], now_ms: int, id_key: str = "orderId",
               cid_key: str = "origClientOrderId", new_cid_key: str = "newClientOrderId") -> dict:
        """Cancel one order; the cancel answer. ApiError -2011 if it is not open."""
        self.check_symbol(p)
        restr = p.get("cancelRestrictions")
        if restr is not None and restr not in ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
            raise ApiError(400, -1145, "Invalid cancelRestrictions")
        new_cid = self._client_id(p.get(new_cid_key), new_cid_key) or self._auto_client_id()
        try:
            o = self.find(acct, p, id_key, cid_key)
        except ApiError as e:
            if e.code == -2013:
                raise unknown_order() from None
            raise
        if not o.is_open:
            raise unknown_order()
        if (restr == "ONLY_NEW" and o.status != "NEW") or (restr == "ONLY_PARTIALLY_FILLED"
                                                            and o.status != "PARTIALLY_FILLED"):
            raise ApiError(400, -2011, "Order was not canceled due to cancel restrictions.")
        self._finish(acct, o, "CANCELED", "CANCELED", now_ms, cancel_client_id=new_cid)
        self._position(acct, now_ms)
        return self.cancel_result(o, now_ms, new_cid)

    def cancel_all(self, acct: Account, p: dict[str, str], now_ms: int) -> list[dict]:
        self.check_symbol(p)
        live = sorted(acct.open_orders(), key=lambda o: o.order_id)
        if not live:
            raise unknown_order()
        out = []
        for o in live:
            cid = self._auto_client_id()
            self._finish(acct, o, "CANCELED", "CANCELED", now_ms, cancel_client_id=cid)
            out.append(self.cancel_result(o, now_ms, cid))
        self._position(acct, now_ms)
        return out

    def cancel_replace(self, acct: Account, p: dict[str, str], now_ms: int) -> tuple[int, dict]:
        """``(HTTP status, body)`` per the cancelReplace table: 200 both legs OK,
        400 -2022 (cancel failed: new leg not attempted or failed too), 409 -2021
        (one leg failed). Parameter and filter errors raise ApiError before
        anything executes."""
        self.check_symbol(p)
        mode = p.get("cancelReplaceMode")
        if not mode:
            raise mandatory("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ApiError(400, -1130, "Data sent for parameter 'cancelReplaceMode' is not valid.")
        if not p.get("cancelOrderId") and not p.get("cancelOrigClientOrderId"):
            raise ApiError(400, -1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, "
                                       "but both were empty/null!")
        new = self.parse_new(acct, p)
        try:
            cancel_resp: dict = self.cancel(acct, p, now_ms, "cancelOrderId", "cancelOrigClientOrderId",
                                            "cancelNewClientOrderId")
            cancel_ok = True
        except ApiError as e:
            if e.code not in (-2011, -2013, -1145):
                raise
            cancel_resp, cancel_ok = {"code": e.code, "msg": e.msg}, False
        if not cancel_ok and mode == "STOP_ON_FAILURE":
            data = {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED", "cancelResponse": cancel_resp,
                    "newOrderResponse": None}
            return 400, {"code": -2022, "msg": "Order cancel-replace failed.", "data": data}
        try:
            new_resp: dict = self.new_order(acct, new, now_ms)
            new_ok = True
        except ApiError as e:
            new_resp, new_ok = {"code": e.code, "msg": e.msg}, False
            if cancel_ok:
                self._reject_report(acct, new, now_ms, e.msg)
        data = {"cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
                "newOrderResult": "SUCCESS" if new_ok else "FAILURE",
                "cancelResponse": cancel_resp, "newOrderResponse": new_resp}
        if cancel_ok and new_ok:
            return 200, data
        if not cancel_ok and not new_ok:
            return 400, {"code": -2022, "msg": "Order cancel-replace failed.", "data": data}
        return 409, {"code": -2021, "msg": "Order cancel-replace partially failed.", "data": data}

    # ------------------------------------------------------------------ JSON
    def _common(self, o: SimOrder) -> dict:
        return {"price": self.px(o.price), "origQty": self.qty(o.qty), "executedQty": self.qty(o.executed),
                "origQuoteOrderQty": "0.00000000", "cummulativeQuoteQty": f8(o.cum_quote), "status": o.status,
                "timeInForce": o.tif, "type": o.type, "side": o.side}

    def _strategy(self, o: SimOrder, d: dict) -> dict:
        if o.strategy_id is not None:
            d["strategyId"] = o.strategy_id
        if o.strategy_type is not None:
            d["strategyType"] = o.strategy_type
        return d

    def order_result(self, o: SimOrder, now_ms: int, resp_type: str, fills: Iterable[_Fill] = ()) -> dict:
        d: dict[str, Any] = {"symbol": self.symbol, "orderId": o.order_id, "orderListId": -1,
                             "clientOrderId": o.client_id, "transactTime": now_ms}
        if resp_type == "ACK":
            return d
        d.update(self._common(o))
        d["workingTime"] = o.working_time
        if resp_type == "FULL":
            d["fills"] = [{"price": self.px(f.price), "qty": self.qty(f.lots), "commission": f8(f.commission),
                           "commissionAsset": f.asset, "tradeId": f.trade_id} for f in fills]
        d["selfTradePreventionMode"] = o.stp
        return self._strategy(o, d)

    def cancel_result(self, o: SimOrder, now_ms: int, new_cid: str) -> dict:
        d = {"symbol": self.symbol, "origClientOrderId": o.client_id, "orderId": o.order_id, "orderListId": -1,
             "clientOrderId": new_cid, "transactTime": now_ms, **self._common(o)}
        d["selfTradePreventionMode"] = o.stp
        return self._strategy(o, d)

    def query_result(self, o: SimOrder) -> dict:
        """``GET /api/v3/order`` / ``order.status`` body."""
        d: dict[str, Any] = {"symbol": self.symbol, "orderId": o.order_id, "orderListId": -1,
                             "clientOrderId": o.client_id, **self._common(o)}
        d.pop("origQuoteOrderQty")
        d.update({"stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": o.time,
                  "updateTime": o.update_time, "isWorking": o.working_time >= 0, "workingTime": o.working_time,
                  "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": o.stp})
        return self._strategy(o, d)

    def open_orders(self, acct: Account, p: dict[str, str]) -> list[dict]:
        if p.get("symbol") is not None:
            self.check_symbol(p)
        return [self.query_result(o) for o in sorted(acct.open_orders(), key=lambda o: o.order_id)]

    def my_trades(self, acct: Account, p: dict[str, str]) -> list[dict]:
        """``GET /api/v3/myTrades`` / ``myTrades``: the account's fills, oldest first.
        Supported parameter sets as Binance's: symbol [+ orderId [+ fromId]] | [+ fromId] |
        [+ startTime] [+ endTime] (at most 24 h apart); limit default 500, max 1000."""
        self.check_symbol(p)

        def num(name: str) -> Optional[int]:
            raw = p.get(name)
            if raw is None or raw == "":
                return None
            if not raw.isdigit():
                raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                           "'^[0-9]{1,20}$'.")
            return int(raw)
        oid, from_id, start, end, limit = (num(k) for k in ("orderId", "fromId", "startTime", "endTime", "limit"))
        given = {k for k, v in (("orderId", oid), ("fromId", from_id), ("startTime", start), ("endTime", end))
                 if v is not None}
        if given not in ({*()}, {"orderId"}, {"orderId", "fromId"}, {"fromId"}, {"startTime"}, {"endTime"},
                         {"startTime", "endTime"}):
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None:
            if start > end:
                raise ApiError(400, -1023, "Start time is greater than end time.")
            if end - start > 24 * 3600 * 1000:
                raise ApiError(400, -1127, "More than 24 hours between startTime and endTime.")
        n = 500 if limit is None else limit
        if n < 1:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        n = min(n, 1000)
        rows = acct.trades
        if oid is not None:
            rows = [r for r in rows if r["orderId"] == oid]
        if from_id is not None:
            return [r for r in rows if r["id"] >= from_id][:n]
        if start is not None:
            rows = [r for r in rows if r["time"] >= start and (end is None or r["time"] <= end)]
            return rows[:n]
        if end is not None:
            rows = [r for r in rows if r["time"] <= end]
        return rows[-n:]

    def account_info(self, acct: Account, now_ms: int, omit_zero: bool = False) -> dict:
        bps = lambda r: int(r * 10000)  # noqa: E731 - commission in basis points (Binance's integer fields)
        bals = [{"asset": a, "free": f8(f), "locked": f8(l)} for a, (f, l) in sorted(acct.balances.items())
                if not (omit_zero and not f and not l)]
        return {"makerCommission": bps(acct.maker_rate), "takerCommission": bps(acct.taker_rate),
                "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": f8(acct.maker_rate), "taker": f8(acct.taker_rate),
                                    "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": acct.update_time or now_ms, "accountType": "SPOT", "balances": bals,
                "permissions": ["SPOT"], "uid": 100000000 + list(self.accounts).index(acct.api_key)}

    # ------------------------------------------------------------------ user-data events
    def _report(self, acct: Account, o: SimOrder, x: str, now_ms: int, fill: Optional[_Fill] = None,
                cancel_client_id: str = "", reject: str = "NONE") -> None:
        eid = self._next_exec_id
        self._next_exec_id += 1
        ev = {"e": "executionReport", "E": now_ms, "s": self.symbol,
              "c": cancel_client_id if x == "CANCELED" else o.client_id, "S": o.side, "o": o.type, "f": o.tif,
              "q": self.qty(o.qty), "p": self.px(o.price), "P": "0.00000000", "F": "0.00000000", "g": -1,
              "C": o.client_id if x == "CANCELED" else "", "x": x, "X": o.status, "r": reject, "i": o.order_id,
              "l": self.qty(fill.lots) if fill else self.qty(0), "z": self.qty(o.executed),
              "L": self.px(fill.price) if fill else self.px(0),
              "n": f8(fill.commission) if fill else "0", "N": fill.asset if fill else None,
              "T": now_ms, "t": fill.trade_id if fill else -1, "I": eid, "w": o.is_open,
              "m": fill.maker if fill else False, "M": False, "O": o.time, "Z": f8(o.cum_quote),
              "Y": f8(fill.quote) if fill else "0.00000000", "Q": "0.00000000", "W": o.working_time,
              "V": o.stp}
        if o.strategy_id is not None:
            ev["j"] = o.strategy_id
        if o.strategy_type is not None:
            ev["J"] = o.strategy_type
        self.events.append((acct.api_key, ev))

    def _reject_report(self, acct: Account, o: SimOrder, now_ms: int, msg: str) -> None:
        """cancelReplace: the cancel succeeded but the new order was rejected."""
        if not o.client_id:
            o.client_id = self._auto_client_id()
        o.order_id, o.status, o.time, o.working_time = -1, "REJECTED", now_ms, -1
        self._report(acct, o, "REJECTED", now_ms, reject=msg)

    def _position(self, acct: Account, now_ms: int) -> None:
        bals = [{"a": a, "f": f8(b[0]), "l": f8(b[1])} for a, b in sorted(acct.balances.items())
                if a in (self.base, self.quote)]
        self.events.append((acct.api_key, {"e": "outboundAccountPosition", "E": now_ms, "u": acct.update_time,
                                           "B": bals}))
