"""The compiled strategy core, built from the configuration: the same objects, from
the same fields, for every driver (backtest, paper, live).

:func:`market_maker` (the built-in :class:`hftcore.strategy.MarketMaker`),
:func:`trader` (:class:`hftcore.strategy.Trader`: orders and the pre-trade
limits) and :func:`exchange_params` (the :class:`hftcore.exchange.ExchangeModel`
of backtests and paper trading). Units at this edge: the configs' (price, base,
seconds); the core's: ticks, lots, ns.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from hftcore.exchange import exchange_params as _exchange_params
from hftcore.strategy import MarketMaker, Trader, market_maker_params, trader_limits

from hftmm.config import ExchangeModelConfig, RiskConfig, StrategyConfig

__all__ = ["market_maker", "maker_params", "make_strategy", "trader", "exchange_params", "order_lots", "ns"]


def ns(seconds: float) -> int:
    """Seconds -> integer nanoseconds."""
    return int(round(seconds * 1e9))


def order_lots(strategy: StrategyConfig, lot: float) -> int:
    """The quote size in whole lots (at least one)."""
    return max(int(round(strategy.order_size / lot)), 1)


def market_maker(strategy: StrategyConfig, risk: RiskConfig, tick: float, lot: float) -> MarketMaker:
    """The built-in market maker for prices in ``tick`` and quantities in ``lot`` units."""
    return MarketMaker(maker_params(strategy, risk, tick, lot))


def maker_params(strategy: StrategyConfig, risk: RiskConfig, tick: float, lot: float) -> dict:
    """:func:`hftcore.strategy.market_maker_params` from the configs (a
    :class:`~hftcore.strategy.MarketMaker` subclass is made as ``cls(maker_params(...))``)."""
    s = strategy
    return market_maker_params(
        tick, lot, order_lots(s, lot), model=s.model, gamma=s.gamma, xi=s.xi, k=s.k, A=s.A,
        horizon_s=s.time_horizon, rolling=s.rolling_horizon, fair_value=s.fair_value, min_spread=s.min_spread,
        max_inventory=risk.max_position if risk.max_position > 0 else math.inf, price_band=s.price_band,
        requote_interval_ns=ns(s.quote_refresh_interval), requote_threshold=s.requote_threshold,
        min_lifetime_ns=ns(s.min_order_lifetime), inventory_sizing=s.inventory_sizing, post_only=s.post_only,
        vol_half_life_s=s.ewma_half_life, estimate_intensity=s.estimate_intensity,
        intensity_window_s=s.intensity_window, intensity_fit_ns=ns(s.intensity_refit))


def trader(risk: RiskConfig, tick: float, lot: float, *, min_lots: int = 1, max_order_lots: int = 0,
           min_notional: float = 0.0) -> Trader:
    """The trader with the risk limits (and, live, the exchange's order size and
    notional filters: ``min_lots``, ``max_order_lots``, ``min_notional`` [quote])."""
    r = risk
    return Trader(trader_limits(
        tick, lot, max_lots=int(math.floor(r.max_position / lot + 1e-9)) if r.max_position > 0 else 0,
        max_sends=int(math.floor(r.max_orders_per_second)) if r.max_orders_per_second is not None else 0,
        min_lots=min_lots, max_order_lots=max_order_lots, min_notional=min_notional,
        max_daily_loss=r.max_daily_loss, max_drawdown=r.max_drawdown, max_drawdown_abs=r.max_drawdown_abs or 0.0,
        capital=r.initial_capital, flatten_on_kill=r.flatten_on_kill, max_notional=r.max_notional))


def exchange_params(exchange: ExchangeModelConfig, tick: float, lot: float, market: Optional[str] = "spot") -> dict:
    """The exchange model's parameters (fees: the configured ones, else Binance's for ``market``)."""
    x = exchange
    maker, taker = x.fees(market or "spot")
    return _exchange_params(tick, lot, entry_latency_ns=ns(x.order_latency), cancel_latency_ns=ns(x.cancel_latency),
                            response_latency_ns=ns(x.response_latency), queue_model=x.queue_model,
                            queue_power=x.queue_power, fill_model=x.fill_model, fill_A=x.fill_A, fill_k=x.fill_k,
                            maker_fee=maker, taker_fee=taker)


def make_strategy(spec: Any, strategy: StrategyConfig, risk: RiskConfig, tick: float, lot: float) -> Any:
    """The strategy object a driver runs: ``spec`` None -> the built-in market maker;
    a class -> ``spec.from_config(strategy, risk, tick, lot)`` if it has one, a
    :class:`~hftcore.strategy.MarketMaker` subclass -> ``spec(maker_params(...))``,
    else ``spec()``; an instance -> itself. Python strategies come wrapped in
    :class:`hftcore.strategy.PyStrategy`."""
    from hftcore.strategy import PyStrategy, Strategy as CoreStrategy

    if spec is None:
        return market_maker(strategy, risk, tick, lot)
    if isinstance(spec, type):
        if hasattr(spec, "from_config"):
            obj = spec.from_config(strategy, risk, tick, lot)
        elif issubclass(spec, MarketMaker):
            obj = spec(maker_params(strategy, risk, tick, lot))
        else:
            obj = spec()
    else:
        obj = spec
    return obj if isinstance(obj, CoreStrategy) else PyStrategy(obj)

