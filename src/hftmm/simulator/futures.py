"""USD-M perpetual order entry of the exchange simulator (sans-I/O): positions,
leverage, margin, funding and liquidation, with Binance's answers and events.

:class:`FuturesEngine` is the spot :class:`~hftmm.simulator.orders.OrderEngine`
(the same matching: queue ahead, trades through, the opposite side reaching a
resting order; our orders never enter the book) with a USD-M account instead
of spot balances:

- one wallet in the margin asset (USDT); commission in it at the account's
  maker/taker rate (Binance's regular tier: 0.02 % / 0.05 %);
- positions per ``positionSide``: ``BOTH`` in one-way mode, ``LONG``/``SHORT``
  in hedge mode (``POST /fapi/v1/positionSide/dual``); entry price = the
  size-weighted average of the opening fills; closing fills realise
  (price - entry) x closed size, signed by the position;
- ``CROSSED`` or ``ISOLATED`` margin (``POST /fapi/v1/marginType``): an isolated
  position holds the initial margin of its opening fills (notional / leverage)
  in its own wallet and can lose at most that;
- a new order that adds exposure needs margin: open-order initial margin (one
  side nets against the opposite position; the larger side counts, as Binance
  does in one-way mode) plus the positions' initial margin must not exceed the
  margin balance (wallet + unrealised PnL at the mark price) -- else -2019; the
  position and the same side's orders may not exceed the leverage bracket's cap
  -- else -2027;
- maintenance margin from the leverage brackets
  (:class:`~hftmm.execution.margin.LeverageBrackets`), the margin ratio =
  maintenance margin / margin balance, checked on every book and trade update:
  ``MARGIN_CALL`` at ``margin_call_ratio``, liquidation at 100 % (every open
  order cancelled, the position closed at the mark price by an ``autoclose-``
  order, the liquidation clearance fee charged at ``liquidationFee`` of the
  notional, never more than what is left; the insurance fund covers a balance
  below zero);
- funding (:meth:`FuturesEngine.settle_funding`): mark x size x rate, longs pay a
  positive rate; ``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE`` and an income row;
- reduce-only orders (one-way) and the closing side of hedge mode never add
  exposure: a fill is capped at the position, the rest expires when it is flat.

Answers follow Binance's USD-M formats (order, cancel, account v2/v3,
positionRisk v2/v3, balance, income, userTrades, leverage, marginType,
positionSide/dual) and error codes (-2019, -2022, -2027, -4003, -4014, -4023,
-4016/-4024 PERCENT_PRICE, -4164 MIN_NOTIONAL, -5022 GTX would take, -4061,
-4046/-4047/-4048, -4059/-4067/-4068, -4028, -2011/-2013, -4116). Not
simulated (refused with -1106 naming the parameter): conditional orders (the
algo order API), ``priceMatch``, ``closePosition``, GTD.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Iterable, Optional, Union

from hftmm.execution.filters import SymbolFilters
from hftmm.execution.margin import DEFAULT_BTCUSDT_BRACKETS, LeverageBrackets
from hftmm.simulator.orders import (
    EIGHT, ZERO, Account, ApiError, OrderEngine, SimOrder, _Fill, mandatory, q8,
)
from hftmm.simulator.trading import Endpoint, TradingApi

__all__ = ["FuturesEngine", "FuturesAccount", "FuturesApi", "Position", "FuturesLimits", "DEFAULT_BRACKETS",
           "USDM_ENDPOINTS", "USDM_MAKER", "USDM_TAKER"]

USDM_MAKER, USDM_TAKER = "0.0002", "0.0005"
USDM_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
DEFAULT_BRACKETS = DEFAULT_BTCUSDT_BRACKETS
NOT_SIMULATED = ("stopPrice", "closePosition", "activationPrice", "callbackRate", "priceMatch",
                 "goodTillDate", "workingType", "priceProtect")
CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")


@dataclass(frozen=True)
class FuturesLimits:
    """USD-M limits enforced and listed in exchangeInfo (Binance's published values)."""

    request_weight_1m: int = 2400
    orders_10s: int = 300
    orders_1m: int = 1200

    def rate_limits(self) -> list[dict]:
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": self.request_weight_1m},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": self.orders_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": self.orders_10s},
        ]

    def order_windows(self) -> list[tuple[int, int, str, str]]:
        return [(10, self.orders_10s, "10 SECOND", "10S"), (60, self.orders_1m, "1 MINUTE", "1M")]


@dataclass
class Position:
    """One position: size in lots (signed: > 0 long), entry and break-even prices
    [quote], isolated wallet [quote], accumulated realised PnL [quote]."""

    side: str                       # BOTH | LONG | SHORT
    amt: int = 0
    entry: Decimal = ZERO
    iw: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO            # commission paid on the open size (break-even price)
    update_time: int = 0


@dataclass
class FuturesAccount(Account):
    """A USD-M account: wallet balance [USDT], leverage, margin type, position mode."""

    wallet: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "CROSSED"
    dual: bool = False
    positions: dict[str, Position] = field(default_factory=dict)
    income: list[dict] = field(default_factory=list)
    margin_call: bool = False
    changed: bool = False           # a fill or funding changed the balance/position since the last event


@dataclass
class FuturesOrder(SimOrder):
    reduce_only: bool = False
    position_side: str = "BOTH"


def _bool(raw: Optional[str], name: str) -> bool:
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")
    return raw.lower() == "true"


def _num(x: Decimal) -> str:
    """A decimal as Binance prints USD-M amounts (8 places)."""
    return f"{q8(x):.8f}"


class FuturesEngine(OrderEngine):
    """Orders, positions and margin of every USD-M account on one perpetual.

    ``mark()``: the mark price [quote] (None before the book has a price);
    ``brackets``: the symbol's leverage brackets; ``liquidation_fee``: the
    clearance fee rate (exchangeInfo ``liquidationFee``); ``margin_call_ratio``:
    the margin ratio at which ``MARGIN_CALL`` is pushed."""

    def __init__(self, symbol: str, base: str, quote: str, tick_size: str, lot_size: str,
                 filters: SymbolFilters, book: Callable[[], Any], px: Callable[[int], str],
                 qty: Callable[[int], str], mark: Callable[[], Optional[Decimal]],
                 brackets: Optional[LeverageBrackets] = None, liquidation_fee: Any = "0.0125",
                 margin_call_ratio: Any = "0.8", default_leverage: int = 20) -> None:
        super().__init__(symbol, base, quote, tick_size, lot_size, filters, book, px, qty,
                         default_stp="NONE", allowed_stp=("EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"))
        self.mark = mark
        self.brackets = brackets or LeverageBrackets.from_api({**DEFAULT_BRACKETS, "symbol": symbol})
        self.liquidation_fee = Decimal(str(liquidation_fee))
        self.margin_call_ratio = Decimal(str(margin_call_ratio))
        self.default_leverage = int(default_leverage)

    # ------------------------------------------------------------------ accounts
    def add_account(self, api_key: str, balances: dict[str, Any], maker_rate: Any = USDM_MAKER,
                    taker_rate: Any = USDM_TAKER) -> FuturesAccount:
        with self.lock:
            if api_key in self.accounts:
                raise ValueError(f"account {api_key[:4]}... exists")
            wallet = q8(Decimal(str(balances.get(self.quote, 0))))
            acct = FuturesAccount(api_key, {self.quote: [wallet, ZERO]}, Decimal(str(maker_rate)),
                                  Decimal(str(taker_rate)), wallet=wallet, leverage=self.default_leverage)
            acct.positions["BOTH"] = Position("BOTH")
            self.accounts[api_key] = acct
            return acct

    def position(self, acct: FuturesAccount, side: str = "BOTH") -> Position:
        return acct.positions.setdefault(side, Position(side))

    def _mark(self) -> Decimal:
        m = self.mark()
        return Decimal(m) if m is not None else ZERO

    # ------------------------------------------------------------------ margin arithmetic
    def _lots_dec(self, lots: int) -> Decimal:
        return lots * self.lot

    def upnl(self, p: Position, mark: Optional[Decimal] = None) -> Decimal:
        m = self._mark() if mark is None else mark
        return self._lots_dec(p.amt) * (m - p.entry) if p.amt else ZERO

    def maint_margin(self, p: Position, mark: Optional[Decimal] = None) -> Decimal:
        m = self._mark() if mark is None else mark
        return self.brackets.maintenance_margin(abs(self._lots_dec(p.amt)) * m) if p.amt else ZERO

    def cross_wallet(self, acct: FuturesAccount) -> Decimal:
        return acct.wallet - sum((p.iw for p in acct.positions.values()), ZERO)

    def _order_im(self, acct: FuturesAccount, extra: Optional[FuturesOrder] = None,
                  ps: Optional[str] = None) -> Decimal:
        """Initial margin of the open orders (with ``extra`` as if resting) of one
        position side (all sides: None): each side's order quantity beyond the
        opposite position, the larger side counted (one-way netting)."""
        orders = [o for o in acct.open_orders() if isinstance(o, FuturesOrder)]
        if extra is not None:
            orders.append(extra)
        total = ZERO
        for side in (acct.positions if ps is None else [ps]):
            pos = acct.positions.get(side) or Position(side)
            mine = [o for o in orders if o.position_side == side and not self._closing(o)]
            need = []
            for s, opposite in (("BUY", max(-pos.amt, 0)), ("SELL", max(pos.amt, 0))):
                rows = sorted((o for o in mine if o.side == s), key=lambda o: o.price if s == "SELL" else -o.price)
                left, notional = opposite, ZERO
                for o in rows:
                    n = o.leaves if o.type != "MARKET" else o.qty
                    covered = min(left, n)
                    left -= covered
                    px = o.price * self.tick if o.price else self._mark()
                    notional += (n - covered) * self.lot * px
                need.append(notional)
            total += max(need) / acct.leverage
        return total

    def position_im(self, acct: FuturesAccount, mark: Optional[Decimal] = None) -> Decimal:
        m = self._mark() if mark is None else mark
        return sum((abs(self._lots_dec(p.amt)) * m / acct.leverage for p in acct.positions.values()), ZERO)

    def available(self, acct: FuturesAccount, extra: Optional[FuturesOrder] = None) -> Decimal:
        """Margin available for new orders [quote]: cross wallet + cross unrealised PnL
        - initial margin of the cross positions and of every open order."""
        mark = self._mark()
        cross = [p for p in acct.positions.values() if acct.margin_type == "CROSSED"]
        bal = self.cross_wallet(acct) + sum((self.upnl(p, mark) for p in cross), ZERO)
        pos_im = sum((abs(self._lots_dec(p.amt)) * mark / acct.leverage for p in cross), ZERO)
        return bal - pos_im - self._order_im(acct, extra)

    def margin_ratio(self, acct: FuturesAccount, mark: Optional[Decimal] = None) -> Decimal:
        """Maintenance margin / margin balance of the cross positions (isolated: the
        worst isolated position's); 0 when flat, infinity at a balance <= 0."""
        m = self._mark() if mark is None else mark
        live = [p for p in acct.positions.values() if p.amt]
        if not live:
            return ZERO
        if acct.margin_type == "ISOLATED":
            worst = ZERO
            for p in live:
                bal = p.iw + self.upnl(p, m)
                worst = max(worst, Decimal("Infinity") if bal <= 0 else self.maint_margin(p, m) / bal)
            return worst
        bal = self.cross_wallet(acct) + sum((self.upnl(p, m) for p in live), ZERO)
        mm = sum((self.maint_margin(p, m) for p in live), ZERO)
        return Decimal("Infinity") if bal <= 0 else mm / bal

    # ------------------------------------------------------------------ parsing
    def _closing(self, o: FuturesOrder) -> bool:
        """Never adds exposure: reduce-only, or hedge mode's closing side."""
        return o.reduce_only or (o.position_side == "LONG" and o.side == "SELL") or \
            (o.position_side == "SHORT" and o.side == "BUY")

    def _units_usdm(self, raw: str, name: str, step: Decimal, code: int, msg: str) -> int:
        n = self._decimal(raw, name) / step
        if n != n.to_integral_value():
            raise ApiError(400, code, msg)
        return int(n)

    def parse_new(self, acct: Account, p: dict[str, str], prefix: str = "") -> SimOrder:
        """Validate ``POST /fapi/v1/order`` parameters and filters (nothing executes)."""
        assert isinstance(acct, FuturesAccount)
        for k in NOT_SIMULATED:
            if p.get(k) is not None:
                raise ApiError(400, -1106, f"Parameter '{k}' sent when not required.")
        side, typ = self._side_type(p)
        if typ in CONDITIONAL:
            raise ApiError(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order "
                                       "API endpoints instead.")
        if typ not in ("LIMIT", "MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        ps = p.get("positionSide") or "BOTH"
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise ApiError(400, -1130, "Data sent for parameter 'positionSide' is not valid.")
        if (ps == "BOTH") == acct.dual:
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        if acct.dual and p.get("reduceOnly") is not None:
            raise ApiError(400, -1106, "Parameter 'reduceonly' sent when not required.")
        reduce_only = _bool(p.get("reduceOnly"), "reduceOnly")
        tif = p.get("timeInForce")
        if typ == "LIMIT":
            if not tif:
                raise mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise ApiError(400, -1115, "Invalid timeInForce.")
            if not p.get("price"):
                raise mandatory("price")
            price = self._units_usdm(p["price"], "price", self.tick, -4014, "Price not increased by tick size.")
            if price <= 0:
                raise ApiError(400, -4013, "Price less than min price.")
        else:
            if p.get("price") is not None:
                raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
            if tif is not None:
                raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
            price = 0
        if not p.get("quantity"):
            raise mandatory("quantity")
        lots = self._units_usdm(p["quantity"], "quantity", self.lot, -4023, "Quantity not increased by step size.")
        if lots <= 0:
            raise ApiError(400, -4003, "Quantity less than or equal to zero.")
        resp = p.get("newOrderRespType") or "ACK"
        if resp not in ("ACK", "RESULT"):
            raise ApiError(400, -1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        stp = p.get("selfTradePreventionMode") or self.default_stp
        if stp not in self.allowed_stp:
            raise ApiError(400, -1130, "Data sent for parameter 'selfTradePreventionMode' is not valid.")
        cid = p.get("newClientOrderId")
        if cid is not None and not USDM_CLIENT_ID.match(cid):
            raise ApiError(400, -4015, "Client order id is not valid.")
        self._check_usdm_filters(acct, side, typ, price, lots, reduce_only)
        self._seq += 1
        o = FuturesOrder(0, cid or "", side, typ, tif or "GTC", price, lots, 0, stp, resp, self._seq)
        o.reduce_only, o.position_side = reduce_only, ps
        if self._closing(o):
            pos = acct.positions.get(ps) or Position(ps)
            if (side == "BUY" and pos.amt >= 0) or (side == "SELL" and pos.amt <= 0):
                raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        return o

    def _check_usdm_filters(self, acct: Account, side: str, typ: str, price: int, lots: int,
                            reduce_only: bool) -> None:
        raw = self.filters.raw
        qty = lots * self.lot
        ls = raw.get("MARKET_LOT_SIZE" if typ == "MARKET" else "LOT_SIZE") or raw.get("LOT_SIZE") or {}
        if ls.get("minQty") and qty < Decimal(ls["minQty"]):
            raise ApiError(400, -4004, "Quantity less than min quantity.")
        if ls.get("maxQty") and Decimal(ls["maxQty"]) and qty > Decimal(ls["maxQty"]):
            raise ApiError(400, -4005, "Quantity greater than max quantity.")
        mark = self._mark()
        if typ == "LIMIT":
            px = price * self.tick
            pf = raw.get("PRICE_FILTER") or {}
            if pf.get("minPrice") and Decimal(pf["minPrice"]) and px < Decimal(pf["minPrice"]):
                raise ApiError(400, -4013, "Price less than min price.")
            if pf.get("maxPrice") and Decimal(pf["maxPrice"]) and px > Decimal(pf["maxPrice"]):
                raise ApiError(400, -4016, f"Limit price can't be higher than {pf['maxPrice']}.")
            pp = raw.get("PERCENT_PRICE")
            if pp and mark > 0:
                up, down = mark * Decimal(pp["multiplierUp"]), mark * Decimal(pp["multiplierDown"])
                if side == "BUY" and px > up:
                    raise ApiError(400, -4016, f"Limit price can't be higher than {self._fmt_px(up)}.")
                if side == "SELL" and px < down:
                    raise ApiError(400, -4024, f"Limit price can't be lower than {self._fmt_px(down)}.")
        else:
            best = self.book.best_ask() if side == "BUY" else self.book.best_bid()
            px = best * self.tick if best is not None else mark
        mn = raw.get("MIN_NOTIONAL") or {}
        floor = mn.get("notional") or mn.get("minNotional")
        if floor and not reduce_only and px * qty < Decimal(floor):
            raise ApiError(400, -4164, f"Order's notional must be no smaller than {Decimal(floor).normalize():f} "
                                       "(unless you choose reduce only).")
        mo = raw.get("MAX_NUM_ORDERS") or {}
        cap = mo.get("limit") or mo.get("maxNumOrders")
        if cap and len(acct.open_orders()) >= int(cap):
            raise ApiError(400, -2025, "Reach max open order limit.")

    def _fmt_px(self, x: Decimal) -> str:
        return f"{x.quantize(self.tick):f}"

    # ------------------------------------------------------------------ hooks of the matching
    @staticmethod
    def _post_only(o: SimOrder) -> bool:
        return o.tif == "GTX"

    @staticmethod
    def _post_only_error() -> ApiError:
        return ApiError(400, -5022, "Due to the order could not be executed as maker, the Post Only order will be "
                                    "rejected. The order will not be recorded in the order history")

    @staticmethod
    def _duplicate_error() -> ApiError:
        return ApiError(400, -4116, "ClientOrderId is duplicated.")

    def _reserve(self, acct: Account, o: SimOrder, takes: list[tuple[int, int]]) -> None:
        """Margin check of a new order that adds exposure (-2019 / -2027)."""
        assert isinstance(acct, FuturesAccount) and isinstance(o, FuturesOrder)
        if self._closing(o):
            return
        before = self._order_im(acct)
        after = self._order_im(acct, o)
        if after > before and self.available(acct, o) < 0:
            self._count("rejected_margin")
            raise ApiError(400, -2019, "Margin is insufficient.")
        pos = acct.positions.get(o.position_side) or Position(o.position_side)
        same = [x for x in acct.open_orders() if isinstance(x, FuturesOrder) and x.side == o.side
                and x.position_side == o.position_side]
        signed = (1 if o.side == "BUY" else -1)
        exposure = abs(pos.amt + signed * (sum(x.leaves for x in same) + o.qty))
        px = o.price * self.tick if o.price else self._mark()
        if exposure * self.lot * px > self.brackets.max_notional(acct.leverage):
            self._count("rejected_max_position")
            raise ApiError(400, -2027, "Exceeded the maximum allowable position at current leverage.")

    def _release(self, acct: Account, o: SimOrder) -> None:
        o.locked = ZERO             # margin is computed from the open orders, nothing is locked

    def has_resting(self) -> bool:
        """Resting orders or open positions (the margin check needs every update)."""
        return bool(self._open) or any(p.amt for a in self.accounts.values()
                                       for p in getattr(a, "positions", {}).values())

    def _room(self, acct: FuturesAccount, o: FuturesOrder) -> int:
        """Lots a closing order may still fill: the position on the side it reduces."""
        amt = self.position(acct, o.position_side).amt
        return max(amt, 0) if o.side == "SELL" else max(-amt, 0)

    def _fill(self, acct: Account, o: SimOrder, price: int, lots: int, maker: bool, now_ms: int) -> _Fill:
        assert isinstance(acct, FuturesAccount) and isinstance(o, FuturesOrder)
        if not o.is_open:                    # expired by an earlier fill of the same sweep
            return _Fill(price, 0, maker)
        if self._closing(o):
            lots = min(lots, self._room(acct, o))
            if lots <= 0:
                self._finish(acct, o, "EXPIRED", "EXPIRED", now_ms)
                return _Fill(price, 0, maker)
        fill = super()._fill(acct, o, price, lots, maker, now_ms)
        self._expire_reduce_only(acct, now_ms)
        return fill

    def _expire_reduce_only(self, acct: FuturesAccount, now_ms: int) -> None:
        """Binance cancels reduce-only orders the position no longer backs (flat, or
        flipped to the order's own side)."""
        for x in list(acct.open_orders()):
            if isinstance(x, FuturesOrder) and self._closing(x) and not self._room(acct, x):
                self._finish(acct, x, "EXPIRED", "EXPIRED", now_ms)

    def _settle(self, acct: Account, o: SimOrder, price: int, lots: int, maker: bool,
                now_ms: int) -> tuple[Decimal, Decimal, str, Decimal]:
        assert isinstance(acct, FuturesAccount) and isinstance(o, FuturesOrder)
        px = price * self.tick
        quote_amt = q8(px * lots * self.lot)
        rate = acct.maker_rate if maker else acct.taker_rate
        comm = q8(quote_amt * rate)
        realized = self._apply(acct, self.position(acct, o.position_side), lots if o.side == "BUY" else -lots,
                               px, comm, now_ms)
        acct.wallet += realized - comm
        acct.balances[self.quote][0] = acct.wallet
        if realized:
            self._income(acct, "REALIZED_PNL", realized, now_ms, trade_id=self._next_trade_id)
        if comm:
            self._income(acct, "COMMISSION", -comm, now_ms, trade_id=self._next_trade_id)
        acct.changed = True
        return quote_amt, comm, self.quote, realized

    def _apply(self, acct: FuturesAccount, pos: Position, signed: int, px: Decimal, comm: Decimal,
               now_ms: int) -> Decimal:
        """Add a fill of ``signed`` lots at ``px`` to ``pos``; the realised PnL [quote]."""
        old, new = pos.amt, pos.amt + signed
        realized = ZERO
        iso = acct.margin_type == "ISOLATED"
        if old == 0 or (old > 0) == (signed > 0):
            pos.entry = (abs(old) * pos.entry + abs(signed) * px) / abs(new)
            pos.fees += comm
            if iso:
                pos.iw += abs(signed) * self.lot * px / acct.leverage
        else:
            closed = min(abs(signed), abs(old))
            realized = closed * self.lot * (px - pos.entry) * (1 if old > 0 else -1)
            share = Decimal(closed) / abs(old)
            pos.fees -= pos.fees * share
            if iso:
                pos.iw -= pos.iw * share
            if abs(signed) > abs(old):           # flipped: the rest opens at px
                pos.entry, pos.fees = px, comm
                if iso:
                    pos.iw = (abs(signed) - abs(old)) * self.lot * px / acct.leverage
            elif new == 0:
                pos.entry, pos.fees = ZERO, ZERO
                if iso:
                    pos.iw = ZERO
        pos.amt = new
        pos.realized += realized
        pos.update_time = now_ms
        return q8(realized)

    def _income(self, acct: FuturesAccount, kind: str, amount: Decimal, now_ms: int, trade_id: Any = "",
                info: str = "") -> None:
        acct.income.append({"symbol": self.symbol, "incomeType": kind, "income": _num(amount), "asset": self.quote,
                            "info": info or kind, "time": now_ms, "tranId": 9_000_000_000 + len(acct.income),
                            "tradeId": str(trade_id) if trade_id != "" else ""})

    # ------------------------------------------------------------------ market events: margin
    def on_trade(self, price: int, lots: int, buyer_maker: bool, now_ms: int) -> None:
        with self.lock:
            super().on_trade(price, lots, buyer_maker, now_ms)
            self.check_margin(now_ms)

    def on_book(self, now_ms: int) -> None:
        with self.lock:
            super().on_book(now_ms)
            self.check_margin(now_ms)

    def check_margin(self, now_ms: int) -> None:
        """Margin calls and liquidations at the current mark price."""
        mark = self.mark()
        if mark is None:
            return
        mark = Decimal(mark)
        for acct in list(self.accounts.values()):
            assert isinstance(acct, FuturesAccount)
            if not any(p.amt for p in acct.positions.values()):
                acct.margin_call = False
                continue
            if acct.margin_type == "ISOLATED":
                # each isolated position stands alone: only the one that breaches goes
                for p in [p for p in acct.positions.values() if p.amt]:
                    bal = p.iw + self.upnl(p, mark)
                    if bal <= 0 or self.maint_margin(p, mark) / bal >= 1:
                        self.liquidate(acct, mark, now_ms, only=p.side)
                if not any(p.amt for p in acct.positions.values()):
                    continue
            ratio = self.margin_ratio(acct, mark)
            if ratio >= 1:
                self.liquidate(acct, mark, now_ms)
            elif ratio >= self.margin_call_ratio:
                if not acct.margin_call:
                    acct.margin_call = True
                    self._margin_call(acct, mark, now_ms)
            else:
                acct.margin_call = False

    def _margin_call(self, acct: FuturesAccount, mark: Decimal, now_ms: int) -> None:
        self._count("margin_calls")
        rows = [{"s": self.symbol, "ps": p.side, "pa": self.qty_signed(p.amt),
                 "mt": acct.margin_type, "iw": _num(p.iw), "mp": _num(mark), "up": _num(self.upnl(p, mark)),
                 "mm": _num(self.maint_margin(p, mark))} for p in acct.positions.values() if p.amt]
        self.events.append((acct.api_key, {"e": "MARGIN_CALL", "E": now_ms, "cw": _num(self.cross_wallet(acct)),
                                           "p": rows}))

    def liquidate(self, acct: FuturesAccount, mark: Decimal, now_ms: int, only: Optional[str] = None) -> None:
        """Cancel every open order (isolated: ``only`` that position side's), then close
        every position (``only``: that one) at ``mark`` by an
        ``autoclose-`` order (type LIQUIDATION, execution CALCULATED) with the
        clearance fee; the loss never exceeds what backs the position (its isolated
        wallet, or the cross wallet): the insurance fund takes the rest."""
        self._count("liquidations")
        for o in sorted(acct.open_orders(), key=lambda o: o.order_id):
            if only is None or getattr(o, "position_side", "BOTH") == only:
                self._finish(acct, o, "CANCELED", "CANCELED", now_ms)
        for pos in list(acct.positions.values()):
            if not pos.amt or (only is not None and pos.side != only):
                continue
            lots, side = abs(pos.amt), "SELL" if pos.amt > 0 else "BUY"
            px_ticks = int((mark / self.tick).to_integral_value())
            self._seq += 1
            o = FuturesOrder(self._next_order_id, f"autoclose-{now_ms}", side, "LIQUIDATION", "IOC", px_ticks,
                             lots, now_ms, "NONE", "RESULT", self._seq, position_side=pos.side)
            self._next_order_id += 1
            acct.orders[o.order_id] = o
            # what backs the position: its isolated wallet, or the whole cross wallet; a loss
            # beyond it is the insurance fund's
            backing = pos.iw if acct.margin_type == "ISOLATED" else acct.wallet
            realized = self._apply(acct, pos, lots if side == "BUY" else -lots, px_ticks * self.tick, ZERO, now_ms)
            realized = max(realized, -backing)
            notional = q8(px_ticks * self.tick * lots * self.lot)
            fee = min(q8(notional * self.liquidation_fee), max(ZERO, backing + realized))
            acct.wallet += realized - fee
            acct.balances[self.quote][0] = acct.wallet
            tid = self._next_trade_id
            self._next_trade_id += 1
            self._income(acct, "REALIZED_PNL", realized, now_ms, trade_id=tid)
            if fee:
                self._income(acct, "INSURANCE_CLEAR", -fee, now_ms, info="LIQUIDATION")
            o.executed, o.cum_quote, o.status, o.update_time = lots, notional, "FILLED", now_ms
            fill = _Fill(px_ticks, lots, False, tid, notional, ZERO, self.quote, realized)
            acct.trades.append(self._trade_row(o, fill, now_ms))
            self._report(acct, o, "CALCULATED", now_ms, fill)
        acct.changed = True
        acct.margin_call = False
        self._position(acct, now_ms)

    def settle_funding(self, rate: Any, now_ms: int, mark: Optional[Decimal] = None) -> dict[str, Decimal]:
        """Pay funding at ``rate`` (a fraction): each position pays mark x size x rate,
        rounded half-even to 8 decimals (longs pay a positive rate, shorts receive it). Returns api key -> amount
        paid [quote] (negative: received)."""
        r = Decimal(str(rate))
        out: dict[str, Decimal] = {}
        with self.lock:
            m = Decimal(mark) if mark is not None else self._mark()
            for acct in self.accounts.values():
                assert isinstance(acct, FuturesAccount)
                paid = ZERO
                for pos in acct.positions.values():
                    if not pos.amt:
                        continue
                    fee = (self._lots_dec(pos.amt) * m * r).quantize(EIGHT, ROUND_HALF_EVEN)
                    paid += fee
                    if acct.margin_type == "ISOLATED":
                        pos.iw -= fee
                if not paid and not any(p.amt for p in acct.positions.values()):
                    continue
                acct.wallet -= paid
                acct.balances[self.quote][0] = acct.wallet
                self._income(acct, "FUNDING_FEE", -paid, now_ms)
                out[acct.api_key] = paid
                self._account_update(acct, now_ms, "FUNDING_FEE", -paid,
                                     positions=acct.margin_type == "ISOLATED")
            self._count("funding_settlements")
            self.check_margin(now_ms)
        return out

    # ------------------------------------------------------------------ settings
    def set_leverage(self, acct: FuturesAccount, p: dict[str, str]) -> dict:
        self.check_symbol(p)
        raw = p.get("leverage")
        if not raw:
            raise mandatory("leverage")
        if not raw.isdigit():
            raise ApiError(400, -1100, "Illegal characters found in parameter 'leverage'; legal range is "
                                       "'^[0-9]{1,20}$'.")
        lev = int(raw)
        top = max(b.initial_leverage for b in self.brackets.brackets)
        if not 1 <= lev <= top:
            raise ApiError(400, -4028, f"Leverage {lev} is not valid")
        cap = self.brackets.max_notional(lev)
        mark = self._mark()
        if any(abs(self._lots_dec(x.amt)) * mark > cap for x in acct.positions.values()):
            raise ApiError(400, -2027, "Exceeded the maximum allowable position at current leverage.")
        acct.leverage = lev
        return {"leverage": lev, "maxNotionalValue": f"{cap.normalize():f}", "symbol": self.symbol}

    def set_margin_type(self, acct: FuturesAccount, p: dict[str, str]) -> dict:
        self.check_symbol(p)
        mt = p.get("marginType")
        if not mt:
            raise mandatory("marginType")
        mt = mt.upper()
        if mt not in ("ISOLATED", "CROSSED"):
            raise ApiError(400, -1130, "Data sent for parameter 'marginType' is not valid.")
        self._may_change(acct, mt == acct.margin_type, "Margin type", (-4046, -4047, -4048))
        acct.margin_type = mt
        return {"code": 200, "msg": "success"}

    @staticmethod
    def _may_change(acct: FuturesAccount, same: bool, what: str, codes: tuple[int, int, int]) -> None:
        """Binance's rules for a margin type / position mode change: not to the same, not
        with open orders, not with a position."""
        if same:
            raise ApiError(400, codes[0], f"No need to change {what.lower()}.")
        if acct.open_orders():
            raise ApiError(400, codes[1], f"{what} cannot be changed if there exists open orders.")
        if any(x.amt for x in acct.positions.values()):
            raise ApiError(400, codes[2], f"{what} cannot be changed if there exists position.")

    def set_dual(self, acct: FuturesAccount, p: dict[str, str]) -> dict:
        raw = p.get("dualSidePosition")
        if raw is None:
            raise mandatory("dualSidePosition")
        dual = _bool(raw, "dualSidePosition")
        self._may_change(acct, dual == acct.dual, "Position side", (-4059, -4067, -4068))
        acct.dual = dual
        acct.positions = {s: Position(s) for s in (("LONG", "SHORT") if dual else ("BOTH",))}
        return {"code": 200, "msg": "success"}

    # ------------------------------------------------------------------ batches
    def batch_new(self, acct: FuturesAccount, p: dict[str, str], now_ms: int) -> list[dict]:
        """``POST /fapi/v1/batchOrders``: up to 5 orders, each answered on its own
        (an order body or ``{"code", "msg"}``), in the order given."""
        items = _json_list(p, "batchOrders", 5)
        out: list[dict] = []
        for it in items:
            if not isinstance(it, dict):
                out.append({"code": -1130, "msg": "Data sent for parameter 'batchOrders' is not valid."})
                continue
            q = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in it.items()}
            try:
                out.append(self.new_order(acct, self.parse_new(acct, q), now_ms))
            except ApiError as e:
                out.append({"code": e.code, "msg": e.msg})
        return out

    def batch_cancel(self, acct: FuturesAccount, p: dict[str, str], now_ms: int) -> list[dict]:
        """``DELETE /fapi/v1/batchOrders``: ``orderIdList`` or ``origClientOrderIdList`` (max 10)."""
        self.check_symbol(p)
        if p.get("orderIdList"):
            ids = [("orderId", str(x)) for x in _json_list(p, "orderIdList", 10)]
        elif p.get("origClientOrderIdList"):
            ids = [("origClientOrderId", str(x)) for x in _json_list(p, "origClientOrderIdList", 10)]
        else:
            raise ApiError(400, -1102, "Param 'origClientOrderIdList' or 'orderIdList' must be sent, but both "
                                       "were empty/null!")
        out: list[dict] = []
        for k, v in ids:
            try:
                out.append(self.cancel(acct, {"symbol": self.symbol, k: v}, now_ms))
            except ApiError as e:
                out.append({"code": e.code, "msg": e.msg})
        return out

    def cancel_all(self, acct: Account, p: dict[str, str], now_ms: int) -> dict:  # type: ignore[override]
        """``DELETE /fapi/v1/allOpenOrders``: success even with nothing open."""
        self.check_symbol(p)
        for o in sorted(acct.open_orders(), key=lambda o: o.order_id):
            self._finish(acct, o, "CANCELED", "CANCELED", now_ms)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ------------------------------------------------------------------ JSON answers
    def qty_signed(self, lots: int) -> str:
        return ("-" if lots < 0 else "") + self.qty(abs(lots))

    def _avg(self, o: SimOrder) -> str:
        if not o.executed:
            return "0.00"
        return f"{(o.cum_quote / (o.executed * self.lot)).quantize(Decimal('0.00001')):f}"

    def query_result(self, o: SimOrder) -> dict:
        """``GET /fapi/v1/order`` body."""
        assert isinstance(o, FuturesOrder)
        return {"avgPrice": self._avg(o), "clientOrderId": o.client_id, "cumQuote": _num(o.cum_quote),
                "executedQty": self.qty(o.executed), "orderId": o.order_id, "origQty": self.qty(o.qty),
                "origType": o.type, "price": self.px(o.price), "reduceOnly": o.reduce_only, "side": o.side,
                "positionSide": o.position_side, "status": o.status, "stopPrice": "0", "closePosition": False,
                "symbol": self.symbol, "time": o.time, "timeInForce": o.tif, "type": o.type,
                "updateTime": o.update_time, "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "priceMatch": "NONE", "selfTradePreventionMode": o.stp, "goodTillDate": 0}

    def order_result(self, o: SimOrder, now_ms: int, resp_type: str, fills: Iterable[_Fill] = ()) -> dict:
        d = self.query_result(o)
        d.pop("time")
        d["cumQty"] = self.qty(o.executed)
        if resp_type == "ACK" and o.status != "NEW":
            # ACK answers the accepted order; its fills come on the user data stream
            d.update({"status": "NEW", "executedQty": self.qty(0), "cumQty": self.qty(0),
                      "cumQuote": _num(ZERO), "avgPrice": "0.00"})
        return d

    def cancel_result(self, o: SimOrder, now_ms: int, new_cid: str) -> dict:
        d = self.query_result(o)
        d.pop("time")
        d["cumQty"] = self.qty(o.executed)
        return d

    def _trade_row(self, o: SimOrder, f: _Fill, now_ms: int) -> dict:
        """One ``GET /fapi/v1/userTrades`` row."""
        assert isinstance(o, FuturesOrder)
        return {"buyer": o.side == "BUY", "commission": _num(f.commission), "commissionAsset": self.quote,
                "id": f.trade_id, "maker": f.maker, "orderId": o.order_id, "price": self.px(f.price),
                "qty": self.qty(f.lots), "quoteQty": _num(f.quote), "realizedPnl": _num(f.realized),
                "side": o.side, "positionSide": o.position_side, "symbol": self.symbol, "time": now_ms}

    def _position_row(self, acct: FuturesAccount, pos: Position, mark: Decimal, version: int) -> dict:
        from hftmm.execution.margin import liquidation_price

        size = self._lots_dec(pos.amt)
        notional = size * mark
        lp = None
        if pos.amt:
            if acct.margin_type == "ISOLATED":
                wb = pos.iw
            else:
                others = [x for x in acct.positions.values() if x is not pos and x.amt]
                wb = self.cross_wallet(acct) - sum((self.maint_margin(x, mark) - self.upnl(x, mark)
                                                   for x in others), ZERO)
            lp = liquidation_price(self.brackets, size, pos.entry, wb)
        im = abs(notional) / acct.leverage
        row = {"symbol": self.symbol, "positionSide": pos.side, "positionAmt": self.qty_signed(pos.amt),
               "entryPrice": _num(pos.entry), "breakEvenPrice": _num(self._break_even(pos)),
               "markPrice": _num(mark), "unRealizedProfit": _num(self.upnl(pos, mark)),
               "liquidationPrice": _num(lp or ZERO), "isolatedMargin": _num(pos.iw + self.upnl(pos, mark)
                                                                            if acct.margin_type == "ISOLATED"
                                                                            else ZERO),
               "notional": _num(notional), "isolatedWallet": _num(pos.iw), "updateTime": pos.update_time}
        if version == 2:
            row.update({"leverage": str(acct.leverage), "maxNotionalValue":
                        f"{self.brackets.max_notional(acct.leverage).normalize():f}",
                        "marginType": acct.margin_type.lower().replace("crossed", "cross"),
                        "isAutoAddMargin": "false"})
        else:
            orders_im = self._order_im(acct, ps=pos.side)
            row.update({"marginAsset": self.quote, "initialMargin": _num(im + orders_im),
                        "maintMargin": _num(self.maint_margin(pos, mark)), "positionInitialMargin": _num(im),
                        "openOrderInitialMargin": _num(orders_im), "adl": 0,
                        "bidNotional": _num(self._side_notional(acct, "BUY", pos.side)),
                        "askNotional": _num(self._side_notional(acct, "SELL", pos.side))})
        return row

    def _break_even(self, pos: Position) -> Decimal:
        if not pos.amt:
            return ZERO
        per = pos.fees / abs(self._lots_dec(pos.amt))
        return pos.entry + per if pos.amt > 0 else pos.entry - per

    def _side_notional(self, acct: FuturesAccount, side: str, ps: Optional[str] = None) -> Decimal:
        return sum((o.leaves * self.lot * o.price * self.tick for o in acct.open_orders()
                    if o.side == side and (ps is None or getattr(o, "position_side", "BOTH") == ps)), ZERO)

    def position_risk(self, acct: FuturesAccount, p: dict[str, str], version: int = 2) -> list[dict]:
        """``GET /fapi/v2|v3/positionRisk`` (v3 lists positions with a size or orders only)."""
        if p.get("symbol") is not None:
            self.check_symbol(p)
        mark = self._mark()
        rows = []
        for pos in acct.positions.values():
            if version == 3 and not pos.amt and not any(getattr(o, "position_side", "") == pos.side
                                                        for o in acct.open_orders()):
                continue
            rows.append(self._position_row(acct, pos, mark, version))
        return rows

    def account_info(self, acct: Account, now_ms: int, omit_zero: bool = False, version: int = 2) -> dict:
        """``GET /fapi/v2|v3/account``."""
        assert isinstance(acct, FuturesAccount)
        mark = self._mark()
        live = list(acct.positions.values())
        upnl = sum((self.upnl(x, mark) for x in live), ZERO)
        cross_up = upnl if acct.margin_type == "CROSSED" else ZERO
        pos_im = self.position_im(acct, mark)
        ord_im = self._order_im(acct)
        mm = sum((self.maint_margin(x, mark) for x in live), ZERO)
        avail = self.available(acct)
        cw = self.cross_wallet(acct)
        asset = {"asset": self.quote, "walletBalance": _num(acct.wallet), "unrealizedProfit": _num(upnl),
                 "marginBalance": _num(acct.wallet + upnl), "maintMargin": _num(mm),
                 "initialMargin": _num(pos_im + ord_im), "positionInitialMargin": _num(pos_im),
                 "openOrderInitialMargin": _num(ord_im), "crossWalletBalance": _num(cw),
                 "crossUnPnl": _num(cross_up), "availableBalance": _num(avail),
                 "maxWithdrawAmount": _num(max(ZERO, min(avail, cw))), "updateTime": acct.update_time or now_ms}
        if version == 2:
            asset["marginAvailable"] = True
        totals = {"totalInitialMargin": _num(pos_im + ord_im), "totalMaintMargin": _num(mm),
                  "totalWalletBalance": _num(acct.wallet), "totalUnrealizedProfit": _num(upnl),
                  "totalMarginBalance": _num(acct.wallet + upnl), "totalPositionInitialMargin": _num(pos_im),
                  "totalOpenOrderInitialMargin": _num(ord_im), "totalCrossWalletBalance": _num(cw),
                  "totalCrossUnPnl": _num(cross_up), "availableBalance": _num(avail),
                  "maxWithdrawAmount": _num(max(ZERO, min(avail, cw)))}
        positions = []
        for x in live:
            im = abs(self._lots_dec(x.amt)) * mark / acct.leverage
            row = {"symbol": self.symbol, "positionSide": x.side, "positionAmt": self.qty_signed(x.amt),
                   "unrealizedProfit": _num(self.upnl(x, mark)), "isolatedMargin": _num(x.iw),
                   "notional": _num(self._lots_dec(x.amt) * mark), "isolatedWallet": _num(x.iw),
                   "initialMargin": _num(im), "maintMargin": _num(self.maint_margin(x, mark)),
                   "updateTime": x.update_time}
            if version == 2:
                row.update({"leverage": str(acct.leverage), "entryPrice": _num(x.entry),
                            "breakEvenPrice": _num(self._break_even(x)),
                            "maxNotional": f"{self.brackets.max_notional(acct.leverage).normalize():f}",
                            "positionInitialMargin": _num(im), "openOrderInitialMargin": _num(ZERO),
                            "isolated": acct.margin_type == "ISOLATED",
                            "bidNotional": _num(self._side_notional(acct, "BUY", x.side)),
                            "askNotional": _num(self._side_notional(acct, "SELL", x.side))})
            if version == 3 and not x.amt:
                continue
            positions.append(row)
        out: dict[str, Any] = {**totals, "assets": [asset], "positions": positions}
        if version == 2:
            out = {"feeTier": 0, "feeBurn": False, "canDeposit": True, "canWithdraw": True, "canTrade": True,
                   "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1, **out}
        return out

    def balance(self, acct: FuturesAccount, now_ms: int) -> list[dict]:
        """``GET /fapi/v2|v3/balance``."""
        a = self.account_info(acct, now_ms, version=3)["assets"][0]
        return [{"accountAlias": "SgsR", "asset": self.quote, "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": a["updateTime"]}]

    def income_history(self, acct: FuturesAccount, p: dict[str, str]) -> list[dict]:
        """``GET /fapi/v1/income``: ``incomeType``, ``startTime``/``endTime``, ``limit`` (default 100, max 1000)."""
        rows = acct.income
        kind = p.get("incomeType")
        if kind:
            rows = [r for r in rows if r["incomeType"] == kind]
        if p.get("symbol"):
            self.check_symbol(p)
        for k, cmp in (("startTime", lambda t, v: t >= v), ("endTime", lambda t, v: t <= v)):
            if p.get(k):
                if not p[k].isdigit():
                    raise ApiError(400, -1100, f"Illegal characters found in parameter '{k}'.")
                v = int(p[k])
                rows = [r for r in rows if cmp(r["time"], v)]
        n = int(p["limit"]) if p.get("limit", "").isdigit() else 100
        return rows[:max(1, min(n, 1000))]

    def commission_rate(self, acct: FuturesAccount, p: dict[str, str]) -> dict:
        self.check_symbol(p)
        return {"symbol": self.symbol, "makerCommissionRate": f"{acct.maker_rate:f}",
                "takerCommissionRate": f"{acct.taker_rate:f}"}

    # ------------------------------------------------------------------ user-data events
    def _report(self, acct: Account, o: SimOrder, x: str, now_ms: int, fill: Optional[_Fill] = None,
                cancel_client_id: str = "", reject: str = "NONE") -> None:
        """``ORDER_TRADE_UPDATE`` (the order keeps its client id on cancel, unlike spot)."""
        assert isinstance(o, FuturesOrder)
        self.events.append((acct.api_key, {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": {
            "s": self.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.tif, "q": self.qty(o.qty),
            "p": self.px(o.price), "ap": self._avg(o), "sp": "0", "x": x, "X": o.status, "i": o.order_id,
            "l": self.qty(fill.lots if fill else 0), "z": self.qty(o.executed),
            "L": self.px(fill.price) if fill else "0", "N": self.quote,
            "n": _num(fill.commission) if fill else "0", "T": now_ms, "t": fill.trade_id if fill else 0,
            "b": _num(self._side_notional(acct, "BUY")), "a": _num(self._side_notional(acct, "SELL")),
            "m": fill.maker if fill else False, "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.type,
            "ps": o.position_side, "cp": False, "rp": _num(fill.realized) if fill else "0", "pP": False,
            "si": 0, "ss": 0, "V": o.stp, "pm": "NONE", "gtd": 0, "er": "0"}}))

    def _reject_report(self, acct: Account, o: SimOrder, now_ms: int, msg: str) -> None:  # pragma: no cover
        raise AssertionError("USD-M has no cancelReplace")

    def _position(self, acct: Account, now_ms: int) -> None:
        """``ACCOUNT_UPDATE`` (reason ORDER) after fills changed the balance or position."""
        assert isinstance(acct, FuturesAccount)
        if acct.changed:
            acct.changed = False
            self._account_update(acct, now_ms, "ORDER", ZERO)

    def _account_update(self, acct: FuturesAccount, now_ms: int, reason: str, change: Decimal,
                        positions: bool = True) -> None:
        mark = self._mark()
        bal = [{"a": self.quote, "wb": _num(acct.wallet), "cw": _num(self.cross_wallet(acct)), "bc": _num(change)}]
        a: dict[str, Any] = {"m": reason, "B": bal, "P": []}
        if positions:
            a["P"] = [{"s": self.symbol, "pa": self.qty_signed(x.amt), "ep": _num(x.entry),
                       "bep": _num(self._break_even(x)), "cr": _num(x.realized), "up": _num(self.upnl(x, mark)),
                       "mt": "isolated" if acct.margin_type == "ISOLATED" else "cross", "iw": _num(x.iw),
                       "ps": x.side} for x in acct.positions.values()]
        self.events.append((acct.api_key, {"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": a}))


def _json_list(p: dict[str, str], name: str, most: int) -> list:
    raw = p.get(name)
    if not raw:
        raise mandatory(name)
    try:
        items = json.loads(raw)
    except ValueError:
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.") from None
    if not isinstance(items, list) or not items:
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")
    if len(items) > most:
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid: at most {most}.")
    return items



# ---------------------------------------------------------------------------
# signed USD-M endpoints
# ---------------------------------------------------------------------------

def _endpoints() -> dict[str, Endpoint]:
    new = frozenset({"symbol", "side", "positionSide", "type", "timeInForce", "quantity", "reduceOnly", "price",
                     "newClientOrderId", "newOrderRespType", "selfTradePreventionMode", *NOT_SIMULATED})
    ident = frozenset({"symbol", "orderId", "origClientOrderId"})
    sym = frozenset({"symbol"})
    eps = (
        Endpoint("order.place", ("POST", "/fapi/v1/order"), 0, new, orders=1, state_changing=True),
        Endpoint("order.batch", ("POST", "/fapi/v1/batchOrders"), 5, frozenset({"batchOrders"}), orders=1,
                 state_changing=True),
        Endpoint("order.cancel", ("DELETE", "/fapi/v1/order"), 1, ident, state_changing=True),
        Endpoint("order.cancelBatch", ("DELETE", "/fapi/v1/batchOrders"), 1,
                 frozenset({"symbol", "orderIdList", "origClientOrderIdList"}), state_changing=True),
        Endpoint("openOrders.cancelAll", ("DELETE", "/fapi/v1/allOpenOrders"), 1, sym, state_changing=True),
        Endpoint("order.status", ("GET", "/fapi/v1/order"), 1, ident),
        Endpoint("openOrders.status", ("GET", "/fapi/v1/openOrders"), 1, sym, weight_no_symbol=40),
        Endpoint("account.v2", ("GET", "/fapi/v2/account"), 5, frozenset()),
        Endpoint("account.v3", ("GET", "/fapi/v3/account"), 5, frozenset()),
        Endpoint("balance.v2", ("GET", "/fapi/v2/balance"), 5, frozenset()),
        Endpoint("balance.v3", ("GET", "/fapi/v3/balance"), 5, frozenset()),
        Endpoint("positionRisk.v2", ("GET", "/fapi/v2/positionRisk"), 5, sym),
        Endpoint("positionRisk.v3", ("GET", "/fapi/v3/positionRisk"), 5, sym),
        Endpoint("leverage", ("POST", "/fapi/v1/leverage"), 1, frozenset({"symbol", "leverage"})),
        Endpoint("marginType", ("POST", "/fapi/v1/marginType"), 1, frozenset({"symbol", "marginType"})),
        Endpoint("positionSide.set", ("POST", "/fapi/v1/positionSide/dual"), 1, frozenset({"dualSidePosition"})),
        Endpoint("positionSide.get", ("GET", "/fapi/v1/positionSide/dual"), 30, frozenset()),
        Endpoint("income", ("GET", "/fapi/v1/income"), 30,
                 frozenset({"symbol", "incomeType", "startTime", "endTime", "page", "limit"})),
        Endpoint("leverageBracket", ("GET", "/fapi/v1/leverageBracket"), 1, sym),
        Endpoint("userTrades", ("GET", "/fapi/v1/userTrades"), 5,
                 frozenset({"symbol", "orderId", "startTime", "endTime", "fromId", "limit"})),
        Endpoint("commissionRate", ("GET", "/fapi/v1/commissionRate"), 20, sym),
    )
    return {e.name: e for e in eps}



USDM_ENDPOINTS = _endpoints()


class FuturesApi(TradingApi):
    """The signed USD-M endpoints (:data:`USDM_ENDPOINTS`) around a :class:`FuturesEngine`."""

    def order_units(self, ep: Endpoint, params: dict[str, str]) -> Union[int, tuple[int, ...]]:
        if ep.name == "order.batch":       # Binance: 5 on the 10 s count, 1 on the minute's
            return (5, 1)
        return ep.orders

    def _execute(self, ep: Endpoint, acct: Any, p: dict[str, str], parsed: Any = None) -> tuple[int, Any]:
        eng = self.engine
        assert isinstance(eng, FuturesEngine)
        now, name = self.now_ms(), ep.name
        if name == "order.place":
            return 200, eng.new_order(acct, parsed if parsed is not None else eng.parse_new(acct, p), now)
        if name == "order.batch":
            return 200, eng.batch_new(acct, p, now)
        if name == "order.cancel":
            return 200, eng.cancel(acct, p, now)
        if name == "order.cancelBatch":
            return 200, eng.batch_cancel(acct, p, now)
        if name == "openOrders.cancelAll":
            return 200, eng.cancel_all(acct, p, now)
        if name == "order.status":
            eng.check_symbol(p)
            return 200, eng.query_result(eng.find(acct, p))
        if name == "openOrders.status":
            return 200, eng.open_orders(acct, p)
        if name.startswith("account."):
            return 200, eng.account_info(acct, now, version=int(name[-1]))
        if name.startswith("balance."):
            return 200, eng.balance(acct, now)
        if name.startswith("positionRisk."):
            return 200, eng.position_risk(acct, p, int(name[-1]))
        if name == "leverage":
            return 200, eng.set_leverage(acct, p)
        if name == "marginType":
            return 200, eng.set_margin_type(acct, p)
        if name == "positionSide.set":
            return 200, eng.set_dual(acct, p)
        if name == "positionSide.get":
            return 200, {"dualSidePosition": acct.dual}
        if name == "income":
            return 200, eng.income_history(acct, p)
        if name == "leverageBracket":
            body = {"symbol": eng.symbol, "brackets": [
                {"bracket": b.bracket, "initialLeverage": b.initial_leverage, "notionalCap": int(b.cap),
                 "notionalFloor": int(b.floor), "maintMarginRatio": float(b.mmr), "cum": float(b.cum)}
                for b in eng.brackets.brackets]}
            return 200, body if p.get("symbol") else [body]
        if name == "userTrades":
            return 200, eng.my_trades(acct, p)
        if name == "commissionRate":
            return 200, eng.commission_rate(acct, p)
        raise ApiError(400, -1000, f"unknown method {name}")  # pragma: no cover

