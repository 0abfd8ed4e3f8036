"""USD-M futures margin: leverage brackets, maintenance margin, margin ratio and
liquidation price (one-way mode), as Binance computes them.

From ``GET /fapi/v1/leverageBracket`` (a list, or one object when asked with a
``symbol``): each bracket has ``notionalFloor``/``notionalCap`` [quote],
``initialLeverage`` (the most allowed), ``maintMarginRatio`` (MMR) and ``cum``
(the maintenance amount). Binance's rules (USD-M FAQ "How to calculate
liquidation price"):

- maintenance margin = notional x MMR - cum, notional = |size| x mark price,
  with the bracket of that notional; cum_n = floor_n x (MMR_n - MMR_(n-1)) + cum_(n-1);
- margin balance = wallet balance + unrealised PnL; margin ratio = maintenance
  margin / margin balance; the position is liquidated at a ratio of 100 %;
- liquidation price of a one-way position (Q = |size|, EP = entry, WB = the wallet
  balance backing it: isolated -- its isolated wallet; cross -- crossWalletBalance
  minus the other positions' maintenance margin plus their unrealised PnL):
  long ``(Q*EP - WB - cum) / (Q*(1 - MMR))``, short ``(Q*EP + WB + cum) / (Q*(1 + MMR))``,
  recomputed with the bracket the notional at that price falls in.

Prices and balances are exact decimals (``Decimal``) in quote units; sizes in
base units (signed: > 0 long).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Optional

import numpy as np

__all__ = ["Bracket", "LeverageBrackets", "margin_ratio", "liquidation_price", "effective_leverage",
           "margin_ratio_path", "DEFAULT_BTCUSDT_BRACKETS"]

#: ``GET /fapi/v1/leverageBracket?symbol=BTCUSDT`` (Binance's documented BTCUSDT table)
DEFAULT_BTCUSDT_BRACKETS = {"symbol": "BTCUSDT", "brackets": [
    {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
     "maintMarginRatio": 0.004, "cum": 0.0},
    {"bracket": 2, "initialLeverage": 100, "notionalCap": 250000, "notionalFloor": 50000,
     "maintMarginRatio": 0.005, "cum": 50.0},
    {"bracket": 3, "initialLeverage": 50, "notionalCap": 3000000, "notionalFloor": 250000,
     "maintMarginRatio": 0.01, "cum": 1300.0},
    {"bracket": 4, "initialLeverage": 20, "notionalCap": 20000000, "notionalFloor": 3000000,
     "maintMarginRatio": 0.025, "cum": 46300.0},
    {"bracket": 5, "initialLeverage": 10, "notionalCap": 40000000, "notionalFloor": 20000000,
     "maintMarginRatio": 0.05, "cum": 546300.0},
]}


def _d(v: Any, what: str) -> Decimal:
    if isinstance(v, float):
        v = repr(v)               # the API sends JSON numbers: take them as written
    try:
        d = Decimal(str(v))
    except Exception:  # noqa: BLE001
        raise ValueError(f"leverage bracket: {what} {v!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"leverage bracket: {what} {v!r} is not finite")
    return d


@dataclass(frozen=True)
class Bracket:
    bracket: int
    initial_leverage: int
    floor: Decimal        # notionalFloor [quote]
    cap: Decimal          # notionalCap [quote]
    mmr: Decimal          # maintMarginRatio
    cum: Decimal          # maintenance amount [quote]


@dataclass(frozen=True)
class LeverageBrackets:
    symbol: str
    brackets: tuple[Bracket, ...]

    @classmethod
    def from_api(cls, body: Any, symbol: Optional[str] = None) -> "LeverageBrackets":
        """From ``GET /fapi/v1/leverageBracket``'s body (a list of symbols, or one)."""
        items = body if isinstance(body, list) else [body]
        want = symbol.upper() if symbol else None
        for it in items:
            if not isinstance(it, Mapping) or "brackets" not in it:
                raise ValueError(f"leverage bracket: expected {{'symbol', 'brackets': [...]}}, got {it!r:.200}")
            if want is not None and str(it.get("symbol", "")).upper() != want:
                continue
            out = []
            for b in it["brackets"]:
                missing = [k for k in ("bracket", "initialLeverage", "notionalCap", "notionalFloor",
                                       "maintMarginRatio", "cum") if k not in b]
                if missing:
                    raise ValueError(f"leverage bracket of {it.get('symbol')}: missing {missing}")
                out.append(Bracket(int(b["bracket"]), int(b["initialLeverage"]), _d(b["notionalFloor"], "notionalFloor"),
                                   _d(b["notionalCap"], "notionalCap"), _d(b["maintMarginRatio"], "maintMarginRatio"),
                                   _d(b["cum"], "cum")))
            out.sort(key=lambda x: x.floor)
            if not out:
                raise ValueError(f"leverage bracket of {it.get('symbol')}: no brackets")
            for a, b in zip(out, out[1:]):
                if b.floor != a.cap:
                    raise ValueError(f"leverage bracket of {it.get('symbol')}: bracket {b.bracket} starts at "
                                     f"{b.floor}, not at the previous cap {a.cap}")
            return cls(str(it.get("symbol", want or "")).upper(), tuple(out))
        raise KeyError(f"symbol {symbol!r} not in the leverage brackets")

    def bracket_for(self, notional: Decimal) -> Bracket:
        """The bracket a position of ``notional`` [quote, >= 0] is in (above the last cap: the last)."""
        n = abs(Decimal(notional))
        for b in self.brackets:
            if n < b.cap:
                return b
        return self.brackets[-1]

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        """notional x MMR - cum [quote], with the bracket of ``notional``."""
        n = abs(Decimal(notional))
        b = self.bracket_for(n)
        return n * b.mmr - b.cum

    def max_leverage(self, notional: Decimal) -> int:
        """The most initial leverage a position of ``notional`` [quote] may have."""
        return self.bracket_for(notional).initial_leverage

    def max_notional(self, leverage: int) -> Decimal:
        """The largest position notional [quote] allowed at ``leverage``."""
        caps = [b.cap for b in self.brackets if b.initial_leverage >= leverage]
        return max(caps) if caps else Decimal(0)

    def check_cum(self) -> list[str]:
        """Brackets whose cum is not floor x (MMR - previous MMR) + previous cum (Binance's rule)."""
        bad = []
        prev: Optional[Bracket] = None
        for b in self.brackets:
            want = Decimal(0) if prev is None else b.floor * (b.mmr - prev.mmr) + prev.cum
            if b.cum != want:
                bad.append(f"bracket {b.bracket}: cum {b.cum}, expected {want}")
            prev = b
        return bad


def margin_ratio(brackets: LeverageBrackets, size: Decimal, entry_price: Decimal, mark_price: Decimal,
                 wallet_balance: Decimal) -> Decimal:
    """Maintenance margin / margin balance (1 = liquidation; a balance <= 0 gives infinity)."""
    size, ep, mp = Decimal(size), Decimal(entry_price), Decimal(mark_price)
    mm = brackets.maintenance_margin(abs(size) * mp)
    balance = Decimal(wallet_balance) + size * (mp - ep)
    if balance <= 0:
        return Decimal("Infinity")
    return mm / balance


def liquidation_price(brackets: LeverageBrackets, size: Decimal, entry_price: Decimal,
                      wallet_balance: Decimal) -> Optional[Decimal]:
    """The mark price at which the one-way position of ``size`` [base, signed] entered
    at ``entry_price`` is liquidated, backed by ``wallet_balance`` [quote] (see the
    module doc for isolated vs cross). None: flat, or no positive price (a long that
    cannot be liquidated: the balance covers it all)."""
    q, ep, wb = abs(Decimal(size)), Decimal(entry_price), Decimal(wallet_balance)
    if q == 0:
        return None
    long = Decimal(size) > 0
    b = brackets.bracket_for(q * ep)
    lp = None
    for _ in range(len(brackets.brackets) + 1):
        if long:
            lp = (q * ep - wb - b.cum) / (q * (1 - b.mmr))
        else:
            lp = (q * ep + wb + b.cum) / (q * (1 + b.mmr))
        nb = brackets.bracket_for(q * max(lp, Decimal(0)))
        if nb == b:
            break
        b = nb
    return lp if lp is not None and lp > 0 else None


def effective_leverage(notional: Decimal, equity: Decimal) -> Decimal:
    """|notional| / equity (infinity when equity <= 0)."""
    e = Decimal(equity)
    return abs(Decimal(notional)) / e if e > 0 else Decimal("Infinity")



def margin_ratio_path(brackets: LeverageBrackets, size: np.ndarray, mark: np.ndarray,
                      margin_balance: np.ndarray) -> np.ndarray:
    """The margin ratio along a path (floats; a backtest's equity samples): maintenance
    margin of |size| x mark with each sample's bracket / the margin balance (cross:
    wallet + unrealised PnL = the equity). Infinity where the balance is <= 0, 0 flat."""
    size, mark, bal = (np.asarray(a, dtype=np.float64) for a in (size, mark, margin_balance))
    notional = np.abs(size) * mark
    caps = np.array([float(b.cap) for b in brackets.brackets])
    idx = np.minimum(np.searchsorted(caps, notional, side="right"), len(caps) - 1)
    mmr = np.array([float(b.mmr) for b in brackets.brackets])[idx]
    cum = np.array([float(b.cum) for b in brackets.brackets])[idx]
    mm = np.where(notional > 0, notional * mmr - cum, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bal > 0, mm / bal, np.inf)
    return np.where(notional > 0, ratio, 0.0)
