"""BacktestConfig: every knob of a backtest, validated when the config is built."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from hftmm.config import ConfigError, check_bool, check_date, check_int

_MODELS = ("as", "glft")
_FAIR = ("mid", "micro")
_QUEUE = ("risk_averse", "power", "log")
_FILL = ("queue", "intensity")


def _num(name: str, v: Any, lo: float = -math.inf, lo_open: bool = False, hi: float = math.inf) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"BacktestConfig.{name}", f"must be a finite number, got {v!r}")
    if v < lo or (lo_open and v == lo) or v > hi:
        rng = f"{'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi != math.inf else "")
        raise ConfigError(f"BacktestConfig.{name}", f"must be {rng}, got {v!r}")


@dataclass(frozen=True)
class BacktestConfig:
    """A backtest: data, strategy and exchange model. Units in brackets.

    Data: ``start_date``/``end_date`` (UTC "YYYY-MM-DD", inclusive), ``symbol``;
    ``data_path`` an event store (``hftmm data convert`` output) or None for the
    bundled synthetic market on those dates; ``tick_size``/``lot_size`` [price /
    base units per tick / lot] (taken from the store or the synthetic market when
    None).

    Strategy: ``model`` "as" (Avellaneda-Stoikov) or "glft"; ``gamma`` [1/(price x
    base)]; ``time_horizon`` T [s] (``rolling_horizon``: tau = T always, else
    tau = T - t mod T); ``fair_value`` "mid" or "micro"; ``ewma_half_life`` [s];
    ``k`` [1/price] and ``A`` [1/s] fixed, or fitted online from trades when
    ``estimate_intensity``; ``order_size`` [base]; ``max_position`` [base] (held even if every open or
    in-flight order filled, as the live RiskManager holds it; 0: none);
    ``min_spread`` [price]; ``quote_refresh_interval`` [s]; ``requote_threshold``
    [ticks]; ``max_orders_per_second`` refuses a new order while the last second
    already holds that many, as the live RiskManager does (same default, 10;
    None: no limit).

    Exchange: ``feed_latency``, ``order_latency`` (entry), ``cancel_latency``,
    ``response_latency`` [s] (feed_latency None: the data's own receive times);
    ``clock_correction``: when the data's receive clock was behind the
    exchange's (some ``local_ts - exch_ts`` < 0, which would let the strategy see
    events before they happen), shift ``local_ts`` so the smallest feed latency
    becomes ``min_feed_latency`` [s];
    ``queue_model`` "risk_averse" | "power" | "log" with ``queue_power``;
    ``fill_model`` "queue" or "intensity" (with ``fill_A``, ``fill_k``, for data
    without trades); ``maker_fee``/``taker_fee`` [fraction of notional; negative =
    rebate]; ``post_only`` (crossing orders rejected).

    Output: ``initial_capital`` [quote]; ``sample_interval`` [s] of the equity
    curve; ``seed`` of the random fill draws.
    """

    start_date: str = "2024-08-08"
    end_date: str = "2024-08-08"
    symbol: str = "BTCUSDT"
    gamma: float = 0.1
    time_horizon: float = 30.0
    initial_capital: float = 10_000.0
    model: str = "as"
    fair_value: str = "mid"
    rolling_horizon: bool = False
    ewma_half_life: float = 60.0
    k: float = 10.0
    A: float = 5.0
    estimate_intensity: bool = True
    intensity_window: float = 600.0
    intensity_refit: float = 10.0
    xi: Optional[float] = None
    order_size: float = 0.001
    max_position: float = 0.01
    min_spread: float = 0.0
    quote_refresh_interval: float = 0.1
    requote_threshold: int = 1
    max_orders_per_second: Optional[float] = 10.0
    feed_latency: Optional[float] = None
    clock_correction: bool = True
    min_feed_latency: float = 0.001
    order_latency: float = 0.005
    cancel_latency: float = 0.005
    response_latency: float = 0.005
    queue_model: str = "risk_averse"
    queue_power: float = 2.0
    fill_model: str = "queue"
    fill_A: float = 5.0
    fill_k: float = 10.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0004
    post_only: bool = True
    data_path: Optional[str] = None
    tick_size: Optional[str] = None
    lot_size: Optional[str] = None
    sample_interval: float = 1.0
    seed: int = 1

    def __post_init__(self) -> None:
        d0 = check_date("BacktestConfig", "start_date", self.start_date)
        d1 = check_date("BacktestConfig", "end_date", self.end_date)
        for name in ("rolling_horizon", "estimate_intensity", "clock_correction", "post_only"):
            check_bool("BacktestConfig", name, getattr(self, name))
        for name in ("symbol", "model", "fair_value", "queue_model", "fill_model"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"BacktestConfig.{name}", f"must be a string, got {getattr(self, name)!r}")
        if self.data_path is not None and not isinstance(self.data_path, str):
            raise ConfigError("BacktestConfig.data_path", f"must be a folder path string or None, got {self.data_path!r}")
        if d1 < d0:
            raise ConfigError("BacktestConfig.end_date", f"{self.end_date} is before start_date {self.start_date}")
        if not isinstance(self.symbol, str) or not self.symbol.isalnum():
            raise ConfigError("BacktestConfig.symbol", f"must be alphanumeric, got {self.symbol!r}")
        for name, allowed in (("model", _MODELS), ("fair_value", _FAIR), ("queue_model", _QUEUE),
                              ("fill_model", _FILL)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"BacktestConfig.{name}", f"must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("gamma", "time_horizon", "ewma_half_life", "k", "A", "intensity_window", "intensity_refit",
                     "order_size", "quote_refresh_interval", "sample_interval", "queue_power", "fill_A", "fill_k"):
            _num(name, getattr(self, name), 0.0, lo_open=True)
        for name in ("initial_capital", "max_position", "min_spread", "order_latency", "cancel_latency",
                     "response_latency", "min_feed_latency"):
            _num(name, getattr(self, name), 0.0)
        for name in ("maker_fee", "taker_fee"):
            _num(name, getattr(self, name), -0.01, hi=0.01)
        if self.feed_latency is not None:
            _num("feed_latency", self.feed_latency, 0.0)
        if self.max_orders_per_second is not None:
            _num("max_orders_per_second", self.max_orders_per_second, 1.0, hi=1e6)
        if self.xi is not None:
            _num("xi", self.xi, 0.0)
        check_int("BacktestConfig", "requote_threshold", self.requote_threshold)
        check_int("BacktestConfig", "seed", self.seed)
        for name in ("tick_size", "lot_size"):
            v = getattr(self, name)
            if v is not None:
                try:
                    ok = Decimal(str(v)) > 0
                except InvalidOperation:
                    ok = False
                if not ok:
                    raise ConfigError(f"BacktestConfig.{name}", f"must be a positive decimal, got {v!r}")
        if self.max_position < self.order_size and self.max_position != 0:
            raise ConfigError("BacktestConfig.max_position",
                              f"{self.max_position} is below order_size {self.order_size}: no quote could be posted")

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
