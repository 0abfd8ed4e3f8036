"""AvellanedaStoikovPricer: market state in, optimal quotes out.

A thin, stateful wrapper over the compiled core (:mod:`hftcore.volatility`,
:mod:`hftcore.quoting`): the same kernels, with the same float expressions, as
the backtester's replay loop, so a live engine that feeds it the same events
makes the same quotes as a backtest.

Two ways to feed it:

* the engine's way, in integer ticks/lots with event times:
  :meth:`~AvellanedaStoikovPricer.on_book` after every book change,
  :meth:`~AvellanedaStoikovPricer.on_trade` for every market trade, and
  :meth:`~AvellanedaStoikovPricer.quote_ticks` for a quote;
* the convenience way, in price units: ``update_market(midprice=...)`` or
  ``update_market(best_bid=..., best_ask=...)`` and ``compute_quotes(QuoteParameters(...))``.

Units: prices in price units at this edge (ticks inside); sigma in price units
per sqrt(second); inventory and sizes in base-asset units; times in ns.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

from hftcore.quoting import NO_ASK, NO_BID, Quoter
from hftcore.volatility import EwmaVolatility, IntensityEstimator

__all__ = ["QuoteParameters", "Quote", "AvellanedaStoikovPricer"]


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

    Parameters (units in brackets):
      tick_size [price]; lot_size [base] (quantities of the book are lots of it);
      max_inventory [base]: a side is withheld when filling it would pass this;
      ewma_half_life [s] of the squared-return EWMA -- or ``ewma_alpha``, the
      weight of the newest observation (converted to a half-life from the
      observation interval seen so far; the first observations use 1 s);
      order_size [base]; k [1/price], A [1/s]: fill-intensity parameters, fitted
      online from trades when ``estimate_intensity`` (window [s], refit [s]);
      prior_sigma [fraction of the price per sqrt(second); default 1e-4, about 56 %
      a year]: the volatility :meth:`compute_quotes` assumes until the EWMA has
      seen a return (one ``update_market`` gives a quote, not None).
    """

    def __init__(self, tick_size: float = 0.01, ewma_alpha: Optional[float] = None, max_inventory: float = 10.0,
                 *, ewma_half_life: Optional[float] = None, lot_size: float = 1e-5, order_size: float = 0.001,
                 k: float = 10.0, A: float = 5.0, estimate_intensity: bool = False,
                 intensity_window: float = 600.0, intensity_refit: float = 10.0,
                 prior_sigma: float = 1e-4) -> None:
        self.tick_size = _finite_pos("tick_size", tick_size)
        self.prior_sigma = _finite_pos("prior_sigma", prior_sigma)
        self.lot_size = _finite_pos("lot_size", lot_size)
        self.max_inventory = float(max_inventory) if max_inventory == math.inf \
            else _finite_pos("max_inventory", max_inventory, zero_ok=True)
        self.order_size = _finite_pos("order_size", order_size)
        self.k = _finite_pos("k", k)
        self.A = _finite_pos("A", A)
        if ewma_alpha is not None and ewma_half_life is not None:
            raise ValueError("give ewma_alpha or ewma_half_life, not both")
        self.ewma_alpha: Optional[float] = None
        if ewma_alpha is not None:
            if isinstance(ewma_alpha, bool) or not 0.0 < float(ewma_alpha) <= 1.0:
                raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha!r}")
            self.ewma_alpha = float(ewma_alpha)
            # a half-life of ln(0.5)/ln(1-alpha) observations, at 1 s apart until
            # the observation interval is known (alpha = 1: the shortest useful)
            n = math.log(0.5) / math.log(1.0 - self.ewma_alpha) if self.ewma_alpha < 1.0 else 0.5
            self._alpha_obs = n
            half_life = n * 1.0
        else:
            half_life = _finite_pos("ewma_half_life", 60.0 if ewma_half_life is None else ewma_half_life)
        self.vol = EwmaVolatility(half_life)
        self.estimate_intensity = bool(estimate_intensity)
        self.intensity_refit_ns = int(round(_finite_pos("intensity_refit", intensity_refit) * 1e9))
        self.intensity: Optional[IntensityEstimator] = None
        if self.estimate_intensity:
            self.intensity = IntensityEstimator(_finite_pos("intensity_window", intensity_window),
                                                self.tick_size, 50, 20)
        self._next_fit_ns = 0
        self._quoters: dict[tuple, Quoter] = {}
        # book top (ticks, lots) and the last mid (ticks) the EWMA saw
        self.best_bid = NO_BID
        self.best_ask = NO_ASK
        self.bid_qty = 0
        self.ask_qty = 0
        self.last_mid_ticks = math.nan
        self.last_update_ns = 0
        self.last_quote: Optional[Quote] = None
        self._obs = 0
        self._first_ns = 0

    # ------------------------------------------------------------ market data
    def on_book(self, now_ns: int, best_bid: int, best_ask: int, bid_qty: int = 0, ask_qty: int = 0) -> None:
        """The book top after a complete book change, in ticks/lots, at ``now_ns``.
        The EWMA takes the mid whenever it changed (as the backtester does)."""
        self.best_bid, self.best_ask, self.bid_qty, self.ask_qty = best_bid, best_ask, bid_qty, ask_qty
        self.last_update_ns = now_ns
        if best_bid == NO_BID or best_ask == NO_ASK:
            return
        mid = (float(best_bid) + float(best_ask)) * 0.5
        if mid != self.last_mid_ticks:
            self.last_mid_ticks = mid
            if self.ewma_alpha is not None:
                self._retune_alpha(now_ns)
            self.vol.update(now_ns, mid)

    def _retune_alpha(self, now_ns: int) -> None:
        """ewma_alpha mode: keep the half-life at ln(0.5)/ln(1-alpha) observations
        of the mean interval seen so far."""
        self._obs += 1
        if self._obs == 1:
            self._first_ns = now_ns
            return
        if self._obs % 64 != 2:
            return
        mean_dt = (now_ns - self._first_ns) / 1e9 / (self._obs - 1)
        if mean_dt > 0:
            hl = self._alpha_obs * mean_dt
            if abs(hl - self.vol.half_life_s) > 1e-3 * hl:
                # rebuilding keeps nothing: reseed with the last observation
                last_t, last_mid = self.vol.last_time_ns, self.vol.last_mid
                self.vol = EwmaVolatility(hl)
                if last_t is not None and last_mid is not None:
                    self.vol.update(last_t, last_mid)

    def on_trade(self, now_ns: int, price_tick: int) -> None:
        """A market trade at ``price_tick`` [ticks] (feeds the intensity fit)."""
        if self.intensity is not None and self.best_bid != NO_BID and self.best_ask != NO_ASK:
            self.intensity.on_trade(now_ns, price_tick, self.best_bid + self.best_ask)

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
        """Volatility in price units per sqrt(second) at the current mid (0 before two observations)."""
        if self.best_bid == NO_BID or self.best_ask == NO_ASK:
            return math.nan
        return self.vol.sigma * (float(self.best_bid) + float(self.best_ask)) * 0.5 * self.tick_size

    def quoter(self, params: QuoteParameters) -> Quoter:
        """The compiled quoter for these parameters (cached)."""
        size = self.order_size if params.order_size is None else params.order_size
        key = (params.model, params.gamma, params.T, params.rolling, params.fair_value, params.min_spread,
               size, params.xi, params.k, params.A)
        q = self._quoters.get(key)
        if q is None:
            if len(self._quoters) > 64:
                self._quoters.clear()
            q = Quoter(model=params.model, gamma=params.gamma, k=params.k or self.k, A=params.A or self.A,
                       horizon_s=params.T, rolling=params.rolling, fair_value=params.fair_value,
                       tick_size=self.tick_size, min_spread=params.min_spread,
                       max_inventory=self.max_inventory, order_qty=size,
                       xi=params.gamma if params.xi is None else params.xi)
            self._quoters[key] = q
        return q

    def refit_intensity(self, now_ns: int, quoter: Quoter) -> None:
        """Refit A and k from recent trades when due (every ``intensity_refit``)."""
        if self.intensity is None or now_ns < self._next_fit_ns:
            return
        self._next_fit_ns = now_ns + self.intensity_refit_ns
        self.intensity.fit(now_ns)
        if self.intensity.ready and self.intensity.k_per_tick > 0:
            try:
                quoter.set_intensity(self.intensity.A, self.intensity.k_per_tick / self.tick_size)
            except ValueError:
                pass   # a degenerate fit: parameters unchanged (as the backtester)

    def quote_ticks(self, params: QuoteParameters, position_lots: int, now_ns: int, prior: bool = False):
        """The compiled quote (:class:`hftcore.quoting.Quote`, ticks) for an inventory of
        ``position_lots``, or None when there is no valid quote (empty, crossed or
        locked book; no volatility observation yet, unless ``prior``: then
        ``prior_sigma``). The same steps, in the same order, as the backtester's quoting."""
        bb, ba = self.best_bid, self.best_ask
        if bb == NO_BID or ba == NO_ASK or bb >= ba or (self.vol.count < 1 and not prior):
            return None
        quoter = self.quoter(params)
        self.refit_intensity(now_ns, quoter)
        rel = self.vol.sigma if self.vol.count >= 1 else self.prior_sigma
        sigma = rel * (float(bb) + float(ba)) * 0.5 * self.tick_size
        q = float(position_lots) * self.lot_size
        try:
            return quoter.quote(bb, ba, self.bid_qty, self.ask_qty, sigma, q, now_ns)
        except ValueError:
            return None

    def compute_quotes(self, params: QuoteParameters, inventory: float = 0.0,
                       now_ns: Optional[int] = None) -> Optional[Quote]:
        """A :class:`Quote` in price units for ``inventory`` [base], or None when
        there is no book (before ``update_market``). Until the EWMA has a return the
        volatility is ``prior_sigma``. A side is OK only when it may be posted: inside
        the inventory limit, priced above 0 and within 20 % of the fair value (the
        quoter's price band; a blown-up volatility estimate never posts a negative bid)."""
        now = self.last_update_ns if now_ns is None else int(now_ns)
        lots = int(round(float(inventory) / self.lot_size))
        out = self.quote_ticks(params, lots, now, prior=True)
        if out is None:
            return None
        size = self.order_size if params.order_size is None else params.order_size
        sigma = self.sigma if self.vol.count >= 1 else self.prior_sigma * out.fair_value
        q = Quote(bid_price=out.bid_tick * self.tick_size, ask_price=out.ask_tick * self.tick_size,
                  bid_tick=out.bid_tick, ask_tick=out.ask_tick, bid_size=size, ask_size=size,
                  bid_ok=out.bid_ok, ask_ok=out.ask_ok, reservation_price=out.reservation_price,
                  spread=out.spread, fair_value=out.fair_value, sigma=sigma, timestamp_ns=now)
        self.last_quote = q
        return q
