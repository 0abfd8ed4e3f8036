"""Pure-Python twin of hftcore.quoting: slow, obviously right.

Same names, units and semantics as the compiled module (see the docstring of
hftcore/quoting.pyx): book prices and quotes in integer ticks, quantities in
lots, sigma in price units per sqrt(second), q / order_qty / max_inventory in
base units, k per price unit, A per second, horizon in seconds, t in ns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MODEL_AS, MODEL_GLFT = 0, 1
FAIR_MID, FAIR_MICRO = 0, 1
FLAG_BID_OK, FLAG_ASK_OK, FLAG_INVALID = 1, 2, 4
NO_BID = -(2**63)  # no bid in the book
NO_ASK = 2**63 - 1  # no ask in the book

ROUND_EPS = 1e-6  # ticks: floor(bid + eps), ceil(ask - eps)
TICK_LIMIT = 4.0e18


def _real(value, name: str) -> float:
    if value is None or isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None


@dataclass(frozen=True)
class Quote:
    bid_tick: int
    ask_tick: int
    bid_ok: bool
    ask_ok: bool
    reservation_price: float  # price units
    spread: float  # price units, model ask - bid before min-spread/rounding/clamps
    fair_value: float  # price units
    tick_size: float

    @property
    def bid_price(self) -> float:
        return self.bid_tick * self.tick_size

    @property
    def ask_price(self) -> float:
        return self.ask_tick * self.tick_size


class Quoter:
    """Avellaneda-Stoikov / GLFT quoter (twin of hftcore.quoting.Quoter)."""

    def __init__(self, model="as", gamma=0.1, k=10.0, A=5.0, horizon_s=30.0,
                 rolling=False, fair_value="mid", tick_size=0.01, min_spread=0.0,
                 max_inventory=1.0, order_qty=0.001, xi=None, price_band=0.2):
        self.price_band = _real(price_band, "price_band")
        if not (self.price_band > 0 and math.isfinite(self.price_band)):
            raise ValueError(f"price_band must be a finite fraction > 0, got {price_band!r}")
        if not isinstance(model, str) or model.lower() not in ("as", "glft"):
            raise ValueError(f"model must be 'as' or 'glft', got {model!r}")
        if not isinstance(fair_value, str) or fair_value.lower() not in ("mid", "micro"):
            raise ValueError(f"fair_value must be 'mid' or 'micro', got {fair_value!r}")
        if not isinstance(rolling, bool):
            raise ValueError(f"rolling must be a bool, got {rolling!r}")
        self.model = model.lower()
        self.fair_value = fair_value.lower()
        self.rolling = rolling
        self.gamma = _real(gamma, "gamma")
        self.xi = self.gamma if xi is None else _real(xi, "xi")
        self.order_qty = _real(order_qty, "order_qty")
        k = _real(k, "k")
        A = _real(A, "A")
        self.horizon_s = _real(horizon_s, "horizon_s")
        self.tick_size = _real(tick_size, "tick_size")
        self.min_spread = _real(min_spread, "min_spread")
        self.max_inventory = _real(max_inventory, "max_inventory")

        def pos(x):
            return x > 0.0 and math.isfinite(x)

        if not pos(self.gamma):
            raise ValueError(f"invalid gamma: {gamma!r}")
        if not (self.xi >= 0.0 and math.isfinite(self.xi)):
            raise ValueError(f"invalid xi: {xi!r}")
        if not pos(self.order_qty):
            raise ValueError(f"invalid order_qty: {order_qty!r}")
        if not pos(k):
            raise ValueError(f"invalid k: {k!r}")
        if not pos(A):
            raise ValueError(f"invalid A: {A!r}")
        if not (pos(self.horizon_s) and self.horizon_s * 1e9 >= 1.0 and self.horizon_s <= 9.0e9):
            raise ValueError(f"invalid horizon_s: {horizon_s!r}")
        if not pos(self.tick_size):
            raise ValueError(f"invalid tick_size: {tick_size!r}")
        if not (self.min_spread >= 0.0 and math.isfinite(self.min_spread)):
            raise ValueError(f"invalid min_spread: {min_spread!r}")
        if not self.max_inventory >= 0.0:
            raise ValueError(f"invalid max_inventory: {max_inventory!r}")
        self.horizon_ns = round(self.horizon_s * 1e9)
        self.set_intensity(A, k)

    def set_intensity(self, A, k) -> None:
        """Set A [1/s] and k [1/price unit] and recompute the model constants."""
        A = _real(A, "A")
        k = _real(k, "k")
        if not (k > 0.0 and math.isfinite(k)):
            raise ValueError(f"invalid k: {k!r}")
        if not (A > 0.0 and math.isfinite(A)):
            raise ValueError(f"invalid A: {A!r}")
        g, d = self.gamma, self.order_qty
        xd = self.xi * d
        # Avellaneda-Stoikov: (2/gamma) ln(1 + gamma/k)
        as_const = (2.0 / g) * math.log1p(g / k)
        # GLFT, Gueant (2017) eqs. (4.6)-(4.7)
        base = g / (2.0 * A * d * k)
        try:
            if xd == 0.0:
                c1 = 1.0 / k
                c2 = math.sqrt(base * math.e)
            else:
                c1 = math.log1p(xd / k) / xd
                c2 = math.sqrt(base * math.exp((k / xd + 1.0) * math.log1p(xd / k)))
        except OverflowError:
            c1 = c2 = math.inf
        inv_tick = 1.0 / self.tick_size
        for v in (as_const, c1, c2, inv_tick):
            if not (v > 0.0 and math.isfinite(v)):
                raise ValueError(f"k={k!r} (with gamma, xi, A, order_qty) gives non-finite model constants")
        self.A, self.k = A, k
        self.as_const, self.c1, self.c2 = as_const, c1, c2
        self.inv_tick = inv_tick
        self.min_spread_ticks = self.min_spread * inv_tick
        self.inv_eps = 1e-9 * self.order_qty

    def compute(self, best_bid: int, best_ask: int, bid_qty: int, ask_qty: int,
                sigma: float, q: float, t_ns: int) -> Quote | None:
        """The quote, or None where the kernel returns -1."""
        has_bid, has_ask = best_bid != NO_BID, best_ask != NO_ASK
        sigma, q = float(sigma), float(q)
        if not (0.0 <= sigma < math.inf) or not (-math.inf < q < math.inf):
            return None
        # fair value, ticks
        if has_bid and has_ask:
            if best_bid >= best_ask:
                return None
            s = float(best_bid + best_ask) * 0.5
            if self.fair_value == "micro":
                if bid_qty < 0 or ask_qty < 0:
                    return None
                tot = bid_qty + ask_qty
                if tot > 0:
                    s = (float(best_bid) * float(ask_qty) + float(best_ask) * float(bid_qty)) / float(tot)
        elif has_bid:
            s = float(best_bid)
        elif has_ask:
            s = float(best_ask)
        else:
            return None

        var = sigma * sigma
        if self.model == "as":
            if self.rolling:
                tau = self.horizon_s
            else:
                tau = self.horizon_s - float(t_ns % self.horizon_ns) * 1e-9  # T - (t mod T), seconds
            skew = self.gamma * var * tau  # price per base unit
            r = s - q * skew * self.inv_tick  # ticks
            spread = skew + self.as_const  # price units
            half = 0.5 * spread * self.inv_tick
            bid_f, ask_f = r - half, r + half
            reservation = r * self.tick_size
        else:
            sc2 = sigma * self.c2
            db = self.c1 + (2.0 * q + self.order_qty) * 0.5 * sc2
            da = self.c1 - (2.0 * q - self.order_qty) * 0.5 * sc2
            bid_f = s - db * self.inv_tick
            ask_f = s + da * self.inv_tick
            spread = db + da
            reservation = (bid_f + ask_f) * 0.5 * self.tick_size

        if ask_f - bid_f < self.min_spread_ticks:
            c = (bid_f + ask_f) * 0.5
            bid_f = c - 0.5 * self.min_spread_ticks
            ask_f = c + 0.5 * self.min_spread_ticks
        if not (-TICK_LIMIT < bid_f < TICK_LIMIT and -TICK_LIMIT < ask_f < TICK_LIMIT):
            return None
        bt = math.floor(bid_f + ROUND_EPS)
        at = math.ceil(ask_f - ROUND_EPS)
        if has_ask and bt > best_ask - 1:
            bt = best_ask - 1
        if has_bid and at < best_bid + 1:
            at = best_bid + 1
        if bt >= at:
            at = bt + 1
        band = self.price_band * s
        bid_ok = bt >= 1 and s - bt <= band and not (q + self.order_qty - self.max_inventory > self.inv_eps)
        ask_ok = at >= 1 and at - s <= band and not (-self.max_inventory - (q - self.order_qty) > self.inv_eps)
        return Quote(bt, at, bid_ok, ask_ok, reservation, spread, s * self.tick_size, self.tick_size)

    def quote(self, best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns) -> Quote:
        res = self.compute(best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns)
        if res is None:
            raise ValueError("invalid quote input")
        return res

    def quote_batch(self, best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns):
        """Lists (out_bid, out_ask, out_flags), same conventions as the kernel."""
        out_bid, out_ask, out_flags = [], [], []
        for row in zip(best_bid, best_ask, bid_qty, ask_qty, sigma, q, t_ns):
            bb, ba, bq, aq, sg, qq, t = row
            res = self.compute(int(bb), int(ba), int(bq), int(aq), float(sg), float(qq), int(t))
            if res is None:
                out_bid.append(0)
                out_ask.append(0)
                out_flags.append(FLAG_INVALID)
            else:
                out_bid.append(res.bid_tick)
                out_ask.append(res.ask_tick)
                out_flags.append(FLAG_BID_OK * res.bid_ok + FLAG_ASK_OK * res.ask_ok)
        return out_bid, out_ask, out_flags
