"""Binance symbol filters (exchangeInfo ``symbols[].filters``) with exact decimals.

Spot and USD-M futures spell some filters differently (USD-M: ``MAX_NUM_ORDERS``
``limit``, ``MIN_NOTIONAL`` ``notional``); both are read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, localcontext

__all__ = ["SymbolFilters", "to_decimal"]

_CTX = Context(prec=60)
_ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal:
    """Exact Decimal from str/int/Decimal. Floats are refused."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"exact decimal expected (str/int/Decimal), got {type(value).__name__}")
    if isinstance(value, (int, str)):
        d = Decimal(value)
        if not d.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return d
    raise TypeError(f"exact decimal expected (str/int/Decimal), got {type(value).__name__}")


def _opt(f: dict, key: str) -> Decimal | None:
    v = f.get(key)
    return None if v is None else to_decimal(str(v))


def _side(side: str) -> str:
    s = side.upper()
    if s in ("BUY", "BID", "B"):
        return "BUY"
    if s in ("SELL", "ASK", "S", "A"):
        return "SELL"
    raise ValueError(f"unknown side {side!r}")


def _fmt(d: Decimal) -> str:
    s = format(d, "f")
    return s


@dataclass(frozen=True)
class SymbolFilters:
    symbol: str
    min_price: Decimal = _ZERO
    max_price: Decimal = _ZERO
    tick_size: Decimal = _ZERO
    min_qty: Decimal = _ZERO
    max_qty: Decimal = _ZERO
    step_size: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    max_notional: Decimal = _ZERO
    notional_filter: str | None = None          # "MIN_NOTIONAL" or "NOTIONAL"
    percent_up: Decimal | None = None           # PERCENT_PRICE
    percent_down: Decimal | None = None
    bid_up: Decimal | None = None               # PERCENT_PRICE_BY_SIDE
    bid_down: Decimal | None = None
    ask_up: Decimal | None = None
    ask_down: Decimal | None = None
    max_num_orders: int | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_filters(cls, symbol: str, filters: list[dict]) -> "SymbolFilters":
        kw: dict = {"symbol": symbol, "raw": {}}
        for f in filters:
            ft = f.get("filterType")
            kw["raw"][ft] = f
            if ft == "PRICE_FILTER":
                kw.update(min_price=_opt(f, "minPrice") or _ZERO, max_price=_opt(f, "maxPrice") or _ZERO,
                          tick_size=_opt(f, "tickSize") or _ZERO)
            elif ft == "LOT_SIZE":
                kw.update(min_qty=_opt(f, "minQty") or _ZERO, max_qty=_opt(f, "maxQty") or _ZERO,
                          step_size=_opt(f, "stepSize") or _ZERO)
            elif ft == "MIN_NOTIONAL":
                if kw.get("notional_filter") != "NOTIONAL":  # NOTIONAL is the newer one; prefer it
                    # spot spells it minNotional, USD-M notional
                    kw.update(min_notional=_opt(f, "minNotional") or _opt(f, "notional") or _ZERO,
                              notional_filter=ft)
            elif ft == "NOTIONAL":
                kw.update(min_notional=_opt(f, "minNotional") or _ZERO,
                          max_notional=_opt(f, "maxNotional") or _ZERO, notional_filter=ft)
            elif ft == "PERCENT_PRICE":
                kw.update(percent_up=_opt(f, "multiplierUp"), percent_down=_opt(f, "multiplierDown"))
            elif ft == "PERCENT_PRICE_BY_SIDE":
                kw.update(bid_up=_opt(f, "bidMultiplierUp"), bid_down=_opt(f, "bidMultiplierDown"),
                          ask_up=_opt(f, "askMultiplierUp"), ask_down=_opt(f, "askMultiplierDown"))
            elif ft == "MAX_NUM_ORDERS":
                n = f.get("maxNumOrders", f.get("limit"))      # spot: maxNumOrders; USD-M: limit
                if n is None:
                    raise ValueError(f"{symbol}: MAX_NUM_ORDERS filter without maxNumOrders or limit: {f}")
                kw.update(max_num_orders=int(n))
        return cls(**kw)

    @classmethod
    def from_exchange_info(cls, info: dict, symbol: str) -> "SymbolFilters":
        want = symbol.upper()
        for s in info.get("symbols", []):
            if s.get("symbol") == want:
                return cls.from_filters(want, s.get("filters", []))
        raise KeyError(f"symbol {symbol!r} not in exchangeInfo")

    # ------------------------------------------------------------------ checks
    def check(self, side: str, price, qty, reference_price=None, open_orders: int | None = None) -> list[str]:
        """Violations as ``"FILTER: reason"`` strings; empty list = the LIMIT order passes."""
        side = _side(side)
        p, q = to_decimal(price), to_decimal(qty)
        out: list[str] = []
        with localcontext(_CTX):
            if p <= 0:
                out.append(f"PRICE_FILTER: price {p} must be > 0")
            else:
                if self.min_price and p < self.min_price:
                    out.append(f"PRICE_FILTER: price {p} < minPrice {self.min_price}")
                if self.max_price and p > self.max_price:
                    out.append(f"PRICE_FILTER: price {p} > maxPrice {self.max_price}")
                if self.tick_size and p % self.tick_size != 0:
                    out.append(f"PRICE_FILTER: price {p} is not a multiple of tickSize {self.tick_size}")
            if q <= 0:
                out.append(f"LOT_SIZE: quantity {q} must be > 0")
            else:
                if self.min_qty and q < self.min_qty:
                    out.append(f"LOT_SIZE: quantity {q} < minQty {self.min_qty}")
                if self.max_qty and q > self.max_qty:
                    out.append(f"LOT_SIZE: quantity {q} > maxQty {self.max_qty}")
                if self.step_size and q % self.step_size != 0:
                    out.append(f"LOT_SIZE: quantity {q} is not a multiple of stepSize {self.step_size}")
            notional = p * q
            nf = self.notional_filter or "NOTIONAL"
            if self.min_notional and notional < self.min_notional:
                out.append(f"{nf}: notional {_fmt(notional)} < minNotional {self.min_notional}")
            if self.max_notional and notional > self.max_notional:
                out.append(f"{nf}: notional {_fmt(notional)} > maxNotional {self.max_notional}")
            if reference_price is not None:
                ref = to_decimal(reference_price)
                if self.percent_up is not None and p > ref * self.percent_up:
                    out.append(f"PERCENT_PRICE: price {p} > {self.percent_up} x reference {ref}")
                if self.percent_down is not None and p < ref * self.percent_down:
                    out.append(f"PERCENT_PRICE: price {p} < {self.percent_down} x reference {ref}")
                up, down = (self.bid_up, self.bid_down) if side == "BUY" else (self.ask_up, self.ask_down)
                which = "bid" if side == "BUY" else "ask"
                if up is not None and p > ref * up:
                    out.append(f"PERCENT_PRICE_BY_SIDE: {which} price {p} > {which}MultiplierUp {up} x reference {ref}")
                if down is not None and p < ref * down:
                    out.append(f"PERCENT_PRICE_BY_SIDE: {which} price {p} < {which}MultiplierDown {down} x reference {ref}")
        if open_orders is not None and self.max_num_orders is not None and open_orders + 1 > self.max_num_orders:
            out.append(f"MAX_NUM_ORDERS: {open_orders} open orders, limit {self.max_num_orders}")
        return out

    # ---------------------------------------------------------------- rounding
    def round_price(self, price, side: str) -> Decimal:
        """To the tick: bids down, asks up (never more aggressive than asked)."""
        p = to_decimal(price)
        if not self.tick_size:
            return p
        rounding = ROUND_FLOOR if _side(side) == "BUY" else ROUND_CEILING
        with localcontext(_CTX):
            n = (p / self.tick_size).to_integral_value(rounding=rounding)
            return (n * self.tick_size).quantize(self._price_exp)

    def round_qty(self, qty) -> Decimal:
        """Down to the step size."""
        q = to_decimal(qty)
        if not self.step_size:
            return q
        with localcontext(_CTX):
            n = (q / self.step_size).to_integral_value(rounding=ROUND_FLOOR)
            return (n * self.step_size).quantize(self._qty_exp)

    @property
    def _price_exp(self) -> Decimal:
        return Decimal(1).scaleb(min(0, self.tick_size.normalize().as_tuple().exponent)) if self.tick_size else Decimal(1)

    @property
    def _qty_exp(self) -> Decimal:
        return Decimal(1).scaleb(min(0, self.step_size.normalize().as_tuple().exponent)) if self.step_size else Decimal(1)

    def format_price(self, price) -> str:
        """Binance string: fixed point with the tick's decimals (no exponent). Must already be on the tick."""
        p = to_decimal(price)
        if not self.tick_size:
            return _fmt(p.normalize()) if p != p.to_integral_value() else _fmt(p.to_integral_value())
        with localcontext(_CTX):
            q = p.quantize(self._price_exp)
        if q != p:
            raise ValueError(f"price {p} has more decimals than tickSize {self.tick_size}")
        return _fmt(q)

    def format_qty(self, qty) -> str:
        q0 = to_decimal(qty)
        if not self.step_size:
            return _fmt(q0.normalize()) if q0 != q0.to_integral_value() else _fmt(q0.to_integral_value())
        with localcontext(_CTX):
            q = q0.quantize(self._qty_exp)
        if q != q0:
            raise ValueError(f"quantity {q0} has more decimals than stepSize {self.step_size}")
        return _fmt(q)
