"""AvellanedaStoikovPricer: market state in, optimal quotes out -- the core's market maker
as a calculator.

A thin convenience wrapper over the compiled strategy core
(:class:`hftcore.strategy.MarketMaker`): the same estimators and the same quote
computation a backtest and a live session run, without the orders. Feed it
``update_market(midprice=...)`` or ``update_market(best_bid=..., best_ask=...)``
(price units) and ``on_trade`` (ticks), ask ``compute_quotes(QuoteParameters(...))``.

Units: prices in price units at this edge (ticks inside); sigma in price units
per sqrt(second); inventory and sizes in base-asset units; times in ns.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

from hftcore.book import L2Book
from hftcore.strategy import MarketMaker, Trader, market_maker_params, trader_limits

__all__ = ["QuoteParameters", "Quote", "AvellanedaStoikovPricer"]

_NEVER = 1 << 62     # a requote interval that never comes: these market makers only compute


def _finite_pos(name: str, v: float, zero_ok: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
            or (v == 0 and not zero_ok):
        raise ValueError(f"{name} must be a finite number {'>=' if zero_ok else '>'} 0, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class QuoteParameters:
    """Strategy parameters of one quote computation.

    gamma: risk aversion [1/(price x base)]; T: horizon [s] (tau = T - t mod T, or
    T when ``rolling``); min_spread [price]; order_size [base] (None: the
    pricer's); model "as" or "glft"; xi (GLFT) [1/(price x base)], None = gamma;
    fair_value "mid" or "micro"; k [1/price] and A [1/s]: None = the pricer's
    (fitted online when it estimates intensity).
    """

    gamma: float = 0.1
    T: float = 30.0
    min_spread: float = 0.0
    order_size: Optional[float] = None
    model: str = "as"
    rolling: bool = False
    xi: Optional[float] = None
    fair_value: str = "mid"
    k: Optional[float] = None
    A: Optional[float] = None

    def __post_init__(self) -> None:
        _finite_pos("gamma", self.gamma)
        _finite_pos("T", self.T)
        _finite_pos("min_spread", self.min_spread, zero_ok=True)
        if self.order_size is not None:
            _finite_pos("order_size", self.order_size)
        if self.xi is not None:
            _finite_pos("xi", self.xi, zero_ok=True)
        for name in ("k", "A"):
            if getattr(self, name) is not None:
                _finite_pos(name, getattr(self, name))
        if self.model not in ("as", "glft"):
            raise ValueError(f"model must be 'as' or 'glft', got {self.model!r}")
        if self.fair_value not in ("mid", "micro"):
            raise ValueError(f"fair_value must be 'mid' or 'micro', got {self.fair_value!r}")


@dataclass(frozen=True)
class Quote:
    """A two-sided quote. Prices in price units and ticks; sizes in base units.
    ``bid_ok``/``ask_ok`` False: that side must not be quoted (inventory limit)."""

    bid_price: float
    ask_price: float
    bid_tick: int
    ask_tick: int
    bid_size: float
    ask_size: float
    bid_ok: bool
    ask_ok: bool
    reservation_price: float
    spread: float
    fair_value: float
    sigma: float
    timestamp_ns: int


class AvellanedaStoikovPricer:
    """Avellaneda-Stoikov / GLFT quotes with EWMA volatility and online intensity.

    Parameters (units in brackets): tick_size [price]; lot_size [base];
    max_inventory [base]: a side is withheld when filling it would pass this;
    ewma_half_life [s] of the squared-return EWMA -- or ``ewma_alpha``, the weight
    of each observation taken as one second apart (half-life ln 0.5 / ln(1 - alpha)
    seconds); order_size [base]; k [1/price], A [1/s]: the fill intensity, fitted
    online from trades when ``estimate_intensity`` (window [s], refit [s]);
    prior_sigma [fraction of the price per sqrt(second); default 1e-4, about 56 %
    a year]: the volatility assumed until the EWMA has a return (one
    ``update_market`` gives a quote, not None).
    """

    def __init__(self, tick_size: float = 0.01, ewma_alpha: Optional[float] = None, max_inventory: float = 10.0,
                 *, ewma_half_life: Optional[float] = None, lot_size: float = 1e-5, order_size: float = 0.001,
                 k: float = 10.0, A: float = 5.0, estimate_intensity: bool = False,
                 intensity_window: float = 600.0, intensity_refit: float = 10.0,
                 prior_sigma: float = 1e-4) -> None:
        self.tick_size = _finite_pos("tick_size", tick_size)
        self.lot_size = _finite_pos("lot_size", lot_size)
        self.max_inventory = float(max_inventory) if max_inventory == math.inf \
            else _finite_pos("max_inventory", max_inventory, zero_ok=True)
        self.order_size = _finite_pos("order_size", order_size)
        self.k = _finite_pos("k", k)
        self.A = _finite_pos("A", A)
        self.prior_sigma = _finite_pos("prior_sigma", prior_sigma)
        if ewma_alpha is not None and ewma_half_life is not None:
            raise ValueError("give ewma_alpha or ewma_half_life, not both")
        if ewma_alpha is not None:
            if isinstance(ewma_alpha, bool) or not 0.0 < float(ewma_alpha) <= 1.0:
                raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha!r}")
            a = float(ewma_alpha)
            half_life = math.log(0.5) / math.log(1.0 - a) if a < 1.0 else 0.5
        else:
            half_life = _finite_pos("ewma_half_life", 60.0 if ewma_half_life is None else ewma_half_life)
        self.ewma_half_life = half_life
        self.estimate_intensity = bool(estimate_intensity)
        self.intensity_window = _finite_pos("intensity_window", intensity_window)
        self.intensity_refit = _finite_pos("intensity_refit", intensity_refit)
        self.book = L2Book(repr(self.tick_size), repr(self.lot_size))
        self.trader = Trader(trader_limits(self.tick_size, self.lot_size))
        # the estimator: every quoting MarketMaker shares its volatility and intensity
        self._est = self._maker(QuoteParameters())
        self._makers: dict[tuple, MarketMaker] = {}
        self.last_update_ns = 0
        self.last_quote: Optional[Quote] = None

    def _maker(self, params: "QuoteParameters") -> MarketMaker:
        size = self.order_size if params.order_size is None else params.order_size
        mm = MarketMaker(market_maker_params(
            self.tick_size, self.lot_size, max(int(round(size / self.lot_size)), 1), model=params.model,
            gamma=params.gamma, xi=params.xi, k=params.k or self.k, A=params.A or self.A, horizon_s=params.T,
            rolling=params.rolling, fair_value=params.fair_value, min_spread=params.min_spread,
            max_inventory=self.max_inventory, requote_interval_ns=_NEVER, vol_half_life_s=self.ewma_half_life,
            estimate_intensity=self.estimate_intensity, intensity_window_s=self.intensity_window,
            intensity_fit_ns=int(round(self.intensity_refit * 1e9)), prior_sigma=self.prior_sigma))
        mm.book = self.book
        mm.trader = self.trader
        if getattr(self, "_est", None) is not None:
            mm.share_estimators(self._est)
        return mm

    # ------------------------------------------------------------ market data
    def on_book(self, now_ns: int, best_bid: int, best_ask: int, bid_qty: int = 0, ask_qty: int = 0) -> None:
        """The book top in ticks/lots at ``now_ns`` (the EWMA takes the mid when it changed)."""
        b = self.book
        b.clear()
        if best_bid is not None:
            b.apply(0, int(best_bid), max(int(bid_qty), 1))
        if best_ask is not None:
            b.apply(1, int(best_ask), max(int(ask_qty), 1))
        self.last_update_ns = now_ns
        self._est.on_book(now_ns)

    def on_trade(self, now_ns: int, price_tick: int) -> None:
        """A market trade at ``price_tick`` [ticks] (feeds the intensity fit)."""
        self._est.on_trade(now_ns, 0, int(price_tick), 1)

    def update_market(self, midprice: Optional[float] = None, *, best_bid: Optional[float] = None,
                      best_ask: Optional[float] = None, bid_qty: float = 0.0, ask_qty: float = 0.0,
                      timestamp_ns: Optional[int] = None) -> None:
        """Convenience feed in price units. With only ``midprice`` the book top is
        taken one tick either side of it (its mid is exactly ``midprice`` when that
        is on the half-tick grid). ``timestamp_ns`` defaults to the wall clock."""
        now = time.time_ns() if timestamp_ns is None else int(timestamp_ns)
        if midprice is not None:
            if best_bid is not None or best_ask is not None:
                raise ValueError("give midprice or best_bid/best_ask, not both")
            if not (isinstance(midprice, (int, float)) and math.isfinite(midprice) and midprice > 0):
                raise ValueError(f"midprice must be a finite price > 0, got {midprice!r}")
            m2 = int(round(2.0 * midprice / self.tick_size))   # mid in half ticks
            bb, ba = (m2 - 2) // 2, (m2 + 3) // 2
        else:
            if best_bid is None or best_ask is None:
                raise ValueError("update_market needs midprice or both best_bid and best_ask")
            bb, ba = int(round(best_bid / self.tick_size)), int(round(best_ask / self.tick_size))
            if bb >= ba:
                raise ValueError(f"crossed or locked book: best_bid={best_bid}, best_ask={best_ask}")
        self.on_book(now, bb, ba, int(round(bid_qty / self.lot_size)), int(round(ask_qty / self.lot_size)))

    # ------------------------------------------------------------ quoting
    @property
    def sigma(self) -> float:
        """Volatility in price units per sqrt(second) at the last quote (NaN before one)."""
        return self.last_quote.sigma if self.last_quote is not None else math.nan

    def compute_quotes(self, params: QuoteParameters, inventory: float = 0.0,
                       now_ns: Optional[int] = None) -> Optional[Quote]:
        """A :class:`Quote` in price units for ``inventory`` [base], or None when
        there is no book (before ``update_market``). Until the EWMA has a return the
        volatility is ``prior_sigma``. A side is OK only when it may be posted: inside
        the inventory limit, priced above 0 and within 20 % of the fair value (the
        quoter's price band; a blown-up volatility estimate never posts a negative bid)."""
        now = self.last_update_ns if now_ns is None else int(now_ns)
        key = (params.model, params.gamma, params.T, params.rolling, params.fair_value, params.min_spread,
               params.order_size, params.xi, params.k, params.A)
        mm = self._makers.get(key)
        if mm is None:
            if len(self._makers) > 64:
                self._makers.clear()
            mm = self._makers[key] = self._maker(params)
        self.trader.inherit_position(int(round(float(inventory) / self.lot_size)))
        out = mm.compute(now)
        if out is None:
            return None
        bt, at, bok, aok, reservation, spread, fair, sigma = out
        size = self.order_size if params.order_size is None else params.order_size
        q = Quote(bid_price=bt * self.tick_size, ask_price=at * self.tick_size, bid_tick=bt, ask_tick=at,
                  bid_size=size, ask_size=size, bid_ok=bok, ask_ok=aok, reservation_price=reservation,
                  spread=spread, fair_value=fair, sigma=sigma, timestamp_ns=now)
        self.last_quote = q
        return q
