"""BacktestConfig: a backtest's data and output, plus the strategy, exchange model
and risk limits -- the fields of :class:`hftmm.config.StrategyConfig`,
:class:`~hftmm.config.ExchangeModelConfig` and :class:`~hftmm.config.RiskConfig`
under their own names and defaults (defined there, once), so every knob of a
live session is backtestable and sweepable."""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from hftmm.config import (ConfigError, ExchangeModelConfig, RiskConfig, StrategyConfig, TradingConfig, _check,
                          check_date, subset)

_COMPONENTS = (StrategyConfig, ExchangeModelConfig, RiskConfig)


def _data_fields() -> list[tuple[str, Any, Any]]:
    return [
        ("start_date", "str", dataclasses.field(default="2024-08-08")),
        ("end_date", "str", dataclasses.field(default="2024-08-08")),
        ("symbol", "str", dataclasses.field(default="BTCUSDT")),
        ("data_path", "Optional[str]", dataclasses.field(default=None)),
        ("market", "Optional[str]", dataclasses.field(default=None)),
        ("tick_size", "Optional[str]", dataclasses.field(default=None)),
        ("lot_size", "Optional[str]", dataclasses.field(default=None)),
        ("sample_interval", "float", dataclasses.field(default=1.0)),
        ("funding_path", "Optional[str]", dataclasses.field(default=None)),
        ("leverage_brackets", "Optional[str]", dataclasses.field(default=None)),
    ]


def _component_fields() -> list[tuple[str, Any, Any]]:
    out = []
    for cls in _COMPONENTS:
        for f in fields(cls):
            out.append((f.name, f.type, dataclasses.field(default=f.default)))
    return out


class _BacktestConfigMethods:
    """A backtest: data, strategy, exchange model and risk. Units in brackets.

    Data: ``start_date``/``end_date`` (UTC "YYYY-MM-DD", inclusive), ``symbol``;
    ``data_path`` an event store (``hftmm data convert`` output) or None for the
    bundled synthetic market on those dates; ``market`` "spot" or "usdm" (None:
    the store's; the synthetic market is spot) -- it decides the default fees;
    ``tick_size``/``lot_size`` [price / base units per tick / lot] (the store's or
    the synthetic market's when None); ``sample_interval`` [s] of the equity curve;
    ``funding_path``: USD-M funding-rate history (Binance's fundingRate CSVs or
    ``GET /fapi/v1/fundingRate`` JSON, a file or a folder; see
    :mod:`hftmm.data.funding`): the position pays position x mark x rate at each
    funding time (None: no funding is charged, and the summary says so);
    ``leverage_brackets``: USD-M, a ``GET /fapi/v1/leverageBracket`` JSON file for the
    margin check of the summary (None: Binance's BTCUSDT table for BTCUSDT).

    Strategy (:class:`hftmm.config.StrategyConfig`): model, gamma, time_horizon,
    rolling_horizon, xi, fair_value, ewma_half_life, k, A, estimate_intensity,
    intensity_window, intensity_refit, order_size, min_spread,
    quote_refresh_interval, requote_threshold, min_order_lifetime,
    inventory_sizing, post_only, price_band.

    Exchange model (:class:`hftmm.config.ExchangeModelConfig`): feed_latency,
    clock_correction, min_feed_latency, order_latency, cancel_latency,
    response_latency, queue_model, queue_power, fill_model, fill_A, fill_k,
    maker_fee, taker_fee (None: Binance's regular tier for the market), seed.

    Risk (:class:`hftmm.config.RiskConfig`): max_position, max_orders_per_second,
    max_daily_loss, max_drawdown, max_drawdown_abs, initial_capital (the live
    limits, applied to the backtest as they would be live).
    """

    def __post_init__(self) -> None:
        d0 = check_date("BacktestConfig", "start_date", self.start_date)
        d1 = check_date("BacktestConfig", "end_date", self.end_date)
        if d1 < d0:
            raise ConfigError("BacktestConfig.end_date", f"{self.end_date} is before start_date {self.start_date}")
        if not isinstance(self.symbol, str) or not self.symbol.isalnum():
            raise ConfigError("BacktestConfig.symbol", f"must be alphanumeric, got {self.symbol!r}")
        if self.data_path is not None and not isinstance(self.data_path, str):
            raise ConfigError("BacktestConfig.data_path", f"must be a folder path string or None, got {self.data_path!r}")
        if self.market is not None:
            _check(self, {"market": ("choice", ("spot", "usdm"))})
        if self.funding_path is not None:
            if not isinstance(self.funding_path, str) or not self.funding_path:
                raise ConfigError("BacktestConfig.funding_path", f"must be a file or folder path, got "
                                                                 f"{self.funding_path!r}")
            if self.market == "spot":
                raise ConfigError("BacktestConfig.funding_path", "funding applies to USD-M perpetuals "
                                                                 "(market 'usdm'), not spot")
        if self.leverage_brackets is not None and (not isinstance(self.leverage_brackets, str)
                                                   or not self.leverage_brackets):
            raise ConfigError("BacktestConfig.leverage_brackets", f"must be a JSON file path, got "
                                                                  f"{self.leverage_brackets!r}")
        _check(self, {"sample_interval": ("num", 0.0, True)})
        for name in ("tick_size", "lot_size"):
            v = getattr(self, name)
            if v is not None:
                try:
                    ok = not isinstance(v, bool) and Decimal(str(v)) > 0
                except InvalidOperation:
                    ok = False
                if not ok:
                    raise ConfigError(f"BacktestConfig.{name}", f"must be a positive decimal, got {v!r}")
        # the components validate their own fields; errors name the backtest's field
        for cls in _COMPONENTS:
            try:
                subset(cls, self)
            except ConfigError as exc:
                name = exc.field.split(".", 1)[-1]
                raise ConfigError(f"BacktestConfig.{name}", str(exc).split(": ", 1)[-1]) from None
        if self.max_position and self.max_position < self.order_size:
            raise ConfigError("BacktestConfig.max_position",
                              f"{self.max_position} is below order_size {self.order_size}: no quote could be posted")

    # -- the parts
    @property
    def strategy(self) -> StrategyConfig:
        return subset(StrategyConfig, self)

    @property
    def exchange(self) -> ExchangeModelConfig:
        return subset(ExchangeModelConfig, self)

    @property
    def risk(self) -> RiskConfig:
        return subset(RiskConfig, self)

    @classmethod
    def compose(cls, strategy: Optional[StrategyConfig] = None, exchange: Optional[ExchangeModelConfig] = None,
                risk: Optional[RiskConfig] = None, **data: Any) -> "BacktestConfig":
        """The backtest of a strategy (a StrategyConfig or a live TradingConfig, whose
        symbol and market are taken too), an exchange model and risk limits; ``data``:
        the data fields (dates, data_path, ...)."""
        d: dict[str, Any] = {}
        for part, kind in ((strategy, StrategyConfig), (exchange, ExchangeModelConfig), (risk, RiskConfig)):
            if part is not None:
                d.update({f.name: getattr(part, f.name) for f in fields(kind)})
        if isinstance(strategy, TradingConfig):
            d.setdefault("symbol", strategy.symbol)
            d.setdefault("market", strategy.market)
        d.update(data)
        return cls(**d)

    def replace(self, **changes: Any) -> "BacktestConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BacktestConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"BacktestConfig.{sorted(unknown)[0]}", "unknown field")
        return cls(**d)

    def dates(self) -> list[str]:
        d0 = _dt.date.fromisoformat(self.start_date)
        d1 = _dt.date.fromisoformat(self.end_date)
        return [(d0 + _dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]

    def fees(self) -> tuple[float, float]:
        """(maker, taker) fractions in use (the configured ones, else the market's)."""
        return self.exchange.fees(self.market or "spot")


BacktestConfig = dataclass(frozen=True)(type("BacktestConfig", (_BacktestConfigMethods,), {
    "__annotations__": {name: typ for name, typ, _ in _data_fields() + _component_fields()},
    **{name: fld for name, _, fld in _data_fields() + _component_fields()},
    "__module__": __name__,
    "__doc__": _BacktestConfigMethods.__doc__,
}))
BacktestConfig.__qualname__ = "BacktestConfig"
