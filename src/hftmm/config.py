"""Configuration dataclasses, validated once at construction.

One way in: dataclasses built from keyword arguments, a TOML file or both, with
environment overrides ``HFTMM_<SECTION>_<FIELD>`` (e.g. ``HFTMM_TRADING_GAMMA=0.2``).
Every bad value is refused with a :class:`ConfigError` naming the field.
Secrets are never part of these configs: API keys come from the environment.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import re
import sys
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Optional

from hftmm.errors import HftmmError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(HftmmError, ValueError):
    """A configuration value is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _positive(obj: Any, name: str, allow_zero: bool = False) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{type(obj).__name__}.{name}", f"must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{type(obj).__name__}.{name}", f"must be finite and {bound}, got {value!r}")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def check_bool(owner: str, name: str, value: Any) -> None:
    """Refuse anything but True/False (``"no"``, ``"off"``, 0 are not booleans here)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name}", f"must be true or false, got {value!r}")


def check_date(owner: str, name: str, value: Any) -> _dt.date:
    """An ISO date string ``YYYY-MM-DD`` (UTC day); anything else is refused."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ConfigError(f"{owner}.{name}", f"must be a date string YYYY-MM-DD, got {value!r}")
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{owner}.{name}", f"is not a calendar date: {value!r}") from None


def check_int(owner: str, name: str, value: Any, lo: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{owner}.{name}", f"must be an integer >= {lo}, got {value!r}")


def _decimal_step(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{type(obj).__name__}.{name}", f"not a decimal number: {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise ConfigError(f"{type(obj).__name__}.{name}", f"must be > 0, got {value!r}")


@dataclass(frozen=True)
class TradingConfig:
    """What to quote and how.

    symbol: Binance symbol, e.g. ``"BTCUSDT"``.
    tick_size: PRICE_FILTER tickSize, price units.
    lot_size: LOT_SIZE stepSize, base-asset units.
    gamma: risk aversion (1 / (price unit x base unit)).
    time_horizon: T, seconds.
    min_spread: minimum quoted spread, price units.
    order_size: quote size, base-asset units.
    model: ``"as"`` (Avellaneda-Stoikov) or ``"glft"``.
    fair_value: ``"mid"`` or ``"micro"``.
    ewma_half_life: volatility EWMA half-life, seconds.
    market: ``"spot"`` (order entry is spot) or ``"usdm"`` (market data only).
    k, A: fill intensity lambda(delta) = A exp(-k delta): k per price unit, A per
      second; fitted online from trades when ``estimate_intensity`` (over
      ``intensity_window`` seconds, refitted every ``intensity_refit`` seconds).
    xi: GLFT xi (None = gamma). rolling_horizon: tau = T always (else T - t mod T).
    quote_refresh_interval: seconds between quote computations (on book changes).
    requote_threshold: ticks a working order may be off the new quote before it
      is replaced. min_order_lifetime: seconds an order rests before it may be
      replaced (0 = none). inventory_sizing: shrink the side that adds to the
      position in proportion to the inventory. post_only: LIMIT_MAKER quotes.
    inventory_baseline: testnet/live: the base-asset holding [base units] that counts
      as a flat position; the position is the account's base balance minus it,
      read from the exchange before the first quote. None: the baseline of this
      symbol's earlier session in the --state-db, else the balance at the start.
    """

    symbol: str = "BTCUSDT"
    tick_size: float = 0.01
    lot_size: float = 0.00001
    gamma: float = 0.1
    time_horizon: float = 30.0
    min_spread: float = 0.0
    order_size: float = 0.001
    model: str = "as"
    fair_value: str = "mid"
    ewma_half_life: float = 60.0
    market: str = "spot"
    k: float = 10.0
    A: float = 5.0
    estimate_intensity: bool = True
    intensity_window: float = 600.0
    intensity_refit: float = 10.0
    xi: float | None = None
    rolling_horizon: bool = False
    quote_refresh_interval: float = 0.1
    requote_threshold: int = 1
    min_order_lifetime: float = 0.0
    inventory_sizing: bool = False
    post_only: bool = True
    inventory_baseline: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.isalnum():
            raise ConfigError("TradingConfig.symbol", f"must be an alphanumeric symbol, got {self.symbol!r}")
        object.__setattr__(self, "symbol", self.symbol.upper())
        _decimal_step(self, "tick_size")
        _decimal_step(self, "lot_size")
        _positive(self, "gamma")
        _positive(self, "time_horizon")
        _positive(self, "min_spread", allow_zero=True)
        _positive(self, "order_size")
        _positive(self, "ewma_half_life")
        if self.model not in ("as", "glft"):
            raise ConfigError("TradingConfig.model", f"must be 'as' or 'glft', got {self.model!r}")
        if self.fair_value not in ("mid", "micro"):
            raise ConfigError("TradingConfig.fair_value", f"must be 'mid' or 'micro', got {self.fair_value!r}")
        if self.market not in ("spot", "usdm"):
            raise ConfigError("TradingConfig.market", f"must be 'spot' or 'usdm', got {self.market!r}")
        for name in ("k", "A", "intensity_window", "intensity_refit", "quote_refresh_interval"):
            _positive(self, name)
        _positive(self, "min_order_lifetime", allow_zero=True)
        if self.xi is not None:
            _positive(self, "xi", allow_zero=True)
        if self.inventory_baseline is not None:
            _positive(self, "inventory_baseline", allow_zero=True)
        for name in ("estimate_intensity", "rolling_horizon", "inventory_sizing", "post_only"):
            check_bool("TradingConfig", name, getattr(self, name))
        check_int("TradingConfig", "requote_threshold", self.requote_threshold)


@dataclass(frozen=True)
class RiskConfig:
    """Risk limits.

    max_position: absolute inventory limit, base-asset units.
    max_daily_loss: loss that stops trading for the day, quote currency.
    max_drawdown: peak-to-trough equity loss that stops trading, a fraction of the
      peak equity (0.05 = 5 %); equity = ``capital`` + PnL.
    max_drawdown_abs: the same limit in quote currency (None: off); both apply.
    capital: the equity the session starts with, quote currency (the base of the
      drawdown fraction).
    latency_threshold_ms: order round trip / feed age above which quoting pauses, ms.
    max_orders_per_second: our own order-rate ceiling.
    """

    max_position: float = 0.01
    max_daily_loss: float = 100.0
    max_drawdown: float = 0.05
    max_drawdown_abs: Optional[float] = None
    capital: float = 10_000.0
    latency_threshold_ms: float = 500.0
    max_orders_per_second: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name != "max_drawdown_abs" or self.max_drawdown_abs is not None:
                _positive(self, f.name)
        if self.max_drawdown > 1:
            raise ConfigError("RiskConfig.max_drawdown",
                              f"is a fraction of the peak equity (0.05 = 5 %), got {self.max_drawdown!r}; "
                              f"for a limit in quote currency use max_drawdown_abs")
        if self.max_orders_per_second < 1:
            # "no order while the last second holds max": below 1 no order could ever go
            raise ConfigError("RiskConfig.max_orders_per_second",
                              f"must be >= 1 (orders per second), got {self.max_orders_per_second!r}")


_ENV_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _coerce(cls: type, name: str, raw: Any) -> Any:
    """Coerce an environment string to the field's declared type: booleans are
    true/false or 1/0 (any case) and nothing else; numbers must parse whole."""
    ftype = {f.name: f.type for f in fields(cls)}[name]
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if ftype in ("float | None", "Optional[float]"):
            return None if text.lower() in ("", "none", "null") else float(text)
        if ftype in (float, "float"):
            return float(text)
        if ftype in (int, "int"):
            return int(text)
        if ftype in (bool, "bool"):
            if text.lower() not in _ENV_BOOLS:
                raise ConfigError(f"{cls.__name__}.{name}", f"must be true or false (or 1/0), got {raw!r}")
            return _ENV_BOOLS[text.lower()]
    except ValueError:
        raise ConfigError(f"{cls.__name__}.{name}", f"cannot parse {raw!r} as {ftype}") from None
    return raw


def _build(cls: type, section: str, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{section}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(known))})")
    merged = dict(values)
    prefix = f"HFTMM_{section.upper()}_"
    for key, raw in env.items():
        if key.startswith(prefix):
            name = key[len(prefix):].lower()
            if name not in known:
                raise ConfigError(f"{section}.{name}", f"unknown key from environment variable {key}")
            merged[name] = _coerce(cls, name, raw)
    return cls(**merged)


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as a dict. A missing or unreadable file, or a syntax error, is a
    :class:`ConfigError` naming the file (and, for syntax, the line and column)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(os.fspath(path), "no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(os.fspath(path), f"TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(os.fspath(path), f"cannot read the config file: {getattr(exc, 'strerror', None) or exc}") \
            from None


def build_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None,
                 extra_sections: tuple[str, ...] = ()) -> tuple[TradingConfig, RiskConfig]:
    """``[trading]`` and ``[risk]`` from a parsed TOML document, with the
    ``HFTMM_TRADING_*`` / ``HFTMM_RISK_*`` environment overrides, validated.
    ``extra_sections``: other tables the caller reads itself (not refused here)."""
    known = ("trading", "risk") + tuple(extra_sections)
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown section (known: {', '.join(known)})")
    for sec in ("trading", "risk"):
        if not isinstance(data.get(sec, {}), Mapping):
            raise ConfigError(sec, f"must be a table ([{sec}]), got {data[sec]!r}")
    env = os.environ if env is None else env
    trading = _build(TradingConfig, "trading", data.get("trading", {}), env)
    risk = _build(RiskConfig, "risk", data.get("risk", {}), env)
    return trading, risk


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[TradingConfig, RiskConfig]:
    """Load ``[trading]`` and ``[risk]`` from a TOML file (optional), apply
    ``HFTMM_TRADING_*`` / ``HFTMM_RISK_*`` environment overrides, validate."""
    return build_config(load_toml(path) if path is not None else {}, env)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that re-validates."""
    return dataclasses.replace(cfg, **changes)
