"""USD-M margin risk of a live session: margin ratio, distance to liquidation and
effective leverage from the account's own figures, checked at every timer tick.

Sans-I/O. The account comes in as Binance sends it -- ``GET /fapi/v3/account``
(``totalWalletBalance``, ``positions[].positionAmt / entryPrice``) and the
``ACCOUNT_UPDATE`` events' ``B`` (``wb``) and ``P`` (``pa``, ``ep``, ``mt``, ``iw``)
-- and the arithmetic is :mod:`hftmm.execution.margin`'s (Binance's rules, one
copy). The mark price is the caller's (the live engine passes the book's mid).

:meth:`FuturesRisk.check` returns what the limits of a
:class:`~hftmm.config.RiskConfig` say: ``("kill", why)`` at ``max_margin_ratio``
or nearer to the liquidation price than ``min_liquidation_distance``,
``("pause", why)`` above ``max_leverage``, else ``(None, "")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Optional

from hftmm.execution.margin import LeverageBrackets, effective_leverage, liquidation_price, margin_ratio

__all__ = ["FuturesRisk", "MarginState"]


@dataclass(frozen=True)
class MarginState:
    """One evaluation [quote units; ratios as fractions]."""

    size: Decimal
    entry: Decimal
    mark: Decimal
    wallet: Decimal
    equity: Decimal
    margin_ratio: Decimal
    leverage: Decimal
    liquidation_price: Optional[Decimal]
    liquidation_distance: Optional[Decimal]    # |mark - liquidation price| / mark


def _d(v: Any) -> Optional[Decimal]:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return d if d.is_finite() else None


class FuturesRisk:
    """The margin limits of one one-way USD-M position (see the module docstring)."""

    def __init__(self, symbol: str, brackets: LeverageBrackets, max_margin_ratio: float = 0.5,
                 min_liquidation_distance: Optional[float] = 0.05, max_leverage: Optional[float] = 5.0) -> None:
        self.symbol = symbol.upper()
        self.brackets = brackets
        self.max_margin_ratio = Decimal(repr(max_margin_ratio))
        self.min_distance = None if min_liquidation_distance is None else Decimal(repr(min_liquidation_distance))
        self.max_leverage = None if max_leverage is None else Decimal(repr(max_leverage))
        self.wallet: Optional[Decimal] = None     # the wallet backing the position (cross: the USDT wallet)
        self.size = Decimal(0)                    # [base, signed]
        self.entry = Decimal(0)
        self.isolated = False
        self.updates = 0
        self.stale = 0                            # account snapshots older than an event applied
        self._event_ms = 0                        # time of the newest ACCOUNT_UPDATE applied
        self.last: Optional[MarginState] = None

    @property
    def known(self) -> bool:
        return self.wallet is not None

    def on_account(self, body: Mapping[str, Any]) -> None:
        """A ``GET /fapi/v3/account`` (or v2) body. v3 positions carry no entry price: it is
        (notional - unrealizedProfit) / positionAmt. A snapshot whose newest ``updateTime``
        is older than an ``ACCOUNT_UPDATE`` already applied is stale and ignored."""
        times = [int(x.get("updateTime") or 0) for x in (*body.get("assets", ()), *body.get("positions", ()))
                 if isinstance(x, Mapping)]
        if self._event_ms and times and max(times) < self._event_ms:
            self.stale += 1
            return
        wb = _d(body.get("totalWalletBalance"))
        if wb is None:
            assets = [a for a in body.get("assets", ()) if isinstance(a, Mapping) and a.get("asset") == "USDT"]
            wb = _d(assets[0].get("walletBalance")) if assets else None
        if wb is None:
            return
        self.wallet = wb
        self.size, self.entry, self.isolated = Decimal(0), Decimal(0), False
        for p in body.get("positions", ()):
            if isinstance(p, Mapping) and p.get("symbol") == self.symbol and p.get("positionSide", "BOTH") == "BOTH":
                self.size = _d(p.get("positionAmt")) or Decimal(0)
                entry = _d(p.get("entryPrice"))
                if entry is None and self.size:
                    notional, upnl = _d(p.get("notional")), _d(p.get("unrealizedProfit"))
                    entry = (notional - upnl) / self.size if notional is not None and upnl is not None else None
                self.entry = entry or Decimal(0)
                iw = _d(p.get("isolatedWallet")) or Decimal(0)
                if p.get("isolated") or iw > 0:
                    self.isolated, self.wallet = True, iw
        self.updates += 1

    def on_account_update(self, a: Mapping[str, Any]) -> None:
        """An ``ACCOUNT_UPDATE`` event's ``a`` object (``B``, ``P``; the gateway adds its ``T``)."""
        t = a.get("T") or a.get("E")
        if isinstance(t, int):
            self._event_ms = max(self._event_ms, t)
        for b in a.get("B", ()):
            if isinstance(b, Mapping) and b.get("a") == "USDT" and not self.isolated:
                wb = _d(b.get("wb"))
                if wb is not None:
                    self.wallet = wb
        for p in a.get("P", ()):
            if isinstance(p, Mapping) and p.get("s") == self.symbol and p.get("ps", "BOTH") == "BOTH":
                self.size = _d(p.get("pa")) or Decimal(0)
                self.entry = _d(p.get("ep")) or Decimal(0)
                self.isolated = p.get("mt") == "isolated"
                if self.isolated:
                    self.wallet = _d(p.get("iw")) or Decimal(0)
        self.updates += 1

    def state(self, mark: Decimal) -> Optional[MarginState]:
        if self.wallet is None or not mark or mark <= 0:
            return None
        m = Decimal(mark)
        ratio = margin_ratio(self.brackets, self.size, self.entry, m, self.wallet) if self.size else Decimal(0)
        equity = self.wallet + self.size * (m - self.entry)
        lev = effective_leverage(self.size * m, equity) if self.size else Decimal(0)
        lp = liquidation_price(self.brackets, self.size, self.entry, self.wallet) if self.size else None
        dist = abs(m - lp) / m if lp is not None else None
        self.last = MarginState(self.size, self.entry, m, self.wallet, equity, ratio, lev, lp, dist)
        return self.last

    def check(self, mark: Decimal) -> tuple[Optional[str], str]:
        st = self.state(mark)
        if st is None or not st.size:
            return None, ""
        if self.max_margin_ratio > 0 and st.margin_ratio >= self.max_margin_ratio:
            return "kill", (f"margin ratio {float(st.margin_ratio):.1%} >= max_margin_ratio "
                            f"{float(self.max_margin_ratio):.1%} (position {st.size} at mark {st.mark}, "
                            f"liquidation price {st.liquidation_price})")
        if self.min_distance is not None and st.liquidation_distance is not None \
                and st.liquidation_distance < self.min_distance:
            return "kill", (f"liquidation price {st.liquidation_price:.2f} within "
                            f"{float(st.liquidation_distance):.2%} of the mark {st.mark} "
                            f"(min_liquidation_distance {float(self.min_distance):.2%})")
        if self.max_leverage is not None and st.leverage > self.max_leverage:
            return "pause", (f"effective leverage {float(st.leverage):.2f}x > max_leverage "
                             f"{float(self.max_leverage):g}x")
        return None, ""
