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
from dataclasses import dataclass, field, fields
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


def _check(obj: Any, rules: Mapping[str, tuple]) -> None:
    """Validate ``obj``'s fields by ``rules``: name -> ("num", lo, lo_open[, hi]) |
    ("optnum", lo, lo_open[, hi]) (None allowed) | ("int", lo) | ("bool",) |
    ("choice", values). Refusals are ConfigErrors naming ``Class.field``."""
    owner = type(obj).__name__
    for name, rule in rules.items():
        v = getattr(obj, name)
        kind = rule[0]
        if kind == "bool":
            check_bool(owner, name, v)
        elif kind == "int":
            check_int(owner, name, v, rule[1])
        elif kind == "choice":
            if not isinstance(v, str) or v not in rule[1]:
                raise ConfigError(f"{owner}.{name}", f"must be one of {', '.join(map(repr, rule[1]))}, got {v!r}")
        elif kind in ("num", "optnum"):
            if v is None and kind == "optnum":
                continue
            lo, lo_open = rule[1], rule[2]
            hi = rule[3] if len(rule) > 3 else math.inf
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{owner}.{name}", f"must be a finite number, got {v!r}")
            if v < lo or (lo_open and v == lo) or v > hi:
                rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi != math.inf else "")
                raise ConfigError(f"{owner}.{name}", f"must be {rng}, got {v!r}")


#: Binance's regular-tier (VIP 0) commissions without BNB discount, maker / taker,
#: as fractions of the notional (spot 0.1 % / 0.1 %; USD-M 0.02 % / 0.05 %)
BINANCE_FEES = {"spot": (0.001, 0.001), "usdm": (0.0002, 0.0005)}


@dataclass(frozen=True)
class StrategyConfig:
    """The market maker's knobs -- the same names, defaults and meaning in
    backtests, paper and live trading. Units in brackets.

    model: ``"as"`` (Avellaneda-Stoikov) or ``"glft"``; gamma: risk aversion
    [1/(price x base)]; time_horizon: T [s] (rolling_horizon: tau = T always, else
    T - t mod T); xi: GLFT xi (None = gamma); fair_value: ``"mid"`` or ``"micro"``;
    ewma_half_life [s] of the volatility; k [1/price] and A [1/s] of the fill
    intensity A exp(-k delta), fitted online from trades when estimate_intensity
    (over intensity_window [s], refitted every intensity_refit [s]); order_size
    [base]; min_spread [price]; quote_refresh_interval [s] between quote
    computations; requote_threshold [ticks] a working order may be off its quote
    before it moves; min_order_lifetime [s] an order rests before it may move;
    inventory_sizing: shrink the side that adds to the position in proportion to
    it; post_only: post-only (LIMIT_MAKER / GTX) quotes; price_band [fraction]: a
    side further than this from the fair value (or priced <= 0) is not posted.
    """

    model: str = "as"
    gamma: float = 0.1
    time_horizon: float = 30.0
    rolling_horizon: bool = False
    xi: Optional[float] = None
    fair_value: str = "mid"
    ewma_half_life: float = 60.0
    k: float = 10.0
    A: float = 5.0
    estimate_intensity: bool = True
    intensity_window: float = 600.0
    intensity_refit: float = 10.0
    order_size: float = 0.001
    min_spread: float = 0.0
    quote_refresh_interval: float = 0.1
    requote_threshold: int = 1
    min_order_lifetime: float = 0.0
    inventory_sizing: bool = False
    post_only: bool = True
    price_band: float = 0.2

    _RULES = {
        "model": ("choice", ("as", "glft")), "gamma": ("num", 0.0, True), "time_horizon": ("num", 0.0, True),
        "rolling_horizon": ("bool",), "xi": ("optnum", 0.0, False), "fair_value": ("choice", ("mid", "micro")),
        "ewma_half_life": ("num", 0.0, True), "k": ("num", 0.0, True), "A": ("num", 0.0, True),
        "estimate_intensity": ("bool",), "intensity_window": ("num", 0.0, True),
        "intensity_refit": ("num", 0.0, True), "order_size": ("num", 0.0, True), "min_spread": ("num", 0.0, False),
        "quote_refresh_interval": ("num", 0.0, True), "requote_threshold": ("int", 0),
        "min_order_lifetime": ("num", 0.0, False), "inventory_sizing": ("bool",), "post_only": ("bool",),
        "price_band": ("num", 0.0, True),
    }

    def __post_init__(self) -> None:
        _check(self, StrategyConfig._RULES)


@dataclass(frozen=True)
class TradingConfig(StrategyConfig):
    """A live or paper session: the strategy's knobs (:class:`StrategyConfig`) and
    what to trade.

    symbol: Binance symbol, e.g. ``"BTCUSDT"``; market: ``"spot"`` or ``"usdm"``;
    tick_size / lot_size [price / base units] (the exchange's from exchangeInfo
    win when they differ); inventory_baseline [base units]: testnet/live: the
    base-asset holding that counts as a flat position; the position is the
    account's base balance minus it, read from the exchange before the first
    quote. None: the baseline of this symbol's earlier session in the
    --state-db, else the balance at the start (USD-M: the position is the
    account's ``positionAmt``, no baseline). USD-M testnet/live: leverage [x]
    and margin_type (``"CROSSED"`` / ``"ISOLATED"``) are set on the account at
    the start (None: leave the account's).
    """

    symbol: str = "BTCUSDT"
    market: str = "spot"
    tick_size: float = 0.01
    lot_size: float = 0.00001
    inventory_baseline: Optional[float] = None
    leverage: Optional[int] = 5
    margin_type: Optional[str] = "CROSSED"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.symbol, str) or not self.symbol.isalnum():
            raise ConfigError("TradingConfig.symbol", f"must be an alphanumeric symbol, got {self.symbol!r}")
        object.__setattr__(self, "symbol", self.symbol.upper())
        _decimal_step(self, "tick_size")
        _decimal_step(self, "lot_size")
        _check(self, {"market": ("choice", ("spot", "usdm")), "inventory_baseline": ("optnum", 0.0, False)})
        if self.leverage is not None:
            check_int("TradingConfig", "leverage", self.leverage, 1)
            if self.leverage > 125:
                raise ConfigError("TradingConfig.leverage", f"must be <= 125 (Binance's most), got {self.leverage!r}")
        if self.margin_type is not None:
            _check(self, {"margin_type": ("choice", ("CROSSED", "ISOLATED"))})

    @property
    def strategy(self) -> StrategyConfig:
        """The strategy's knobs alone."""
        return StrategyConfig(**{f.name: getattr(self, f.name) for f in fields(StrategyConfig)})


@dataclass(frozen=True)
class ExchangeModelConfig:
    """The exchange model of backtests and paper trading. Units in brackets.

    feed_latency [s]: exchange event to visibility (None: each message's receive
    time); clock_correction: when the receive clock ran behind the exchange's
    (some local_ts < exch_ts), shift it so the fastest message took
    min_feed_latency [s]; order_latency (entry), cancel_latency,
    response_latency [s]; queue_model ``"risk_averse"`` | ``"power"`` | ``"log"``
    with queue_power; fill_model ``"queue"`` (fills from the data's trades) or
    ``"intensity"`` (A exp(-k delta) draws: fill_A [1/s], fill_k [1/price]);
    maker_fee / taker_fee [fraction of notional; negative: a rebate; None:
    Binance's regular tier for the market -- spot 0.1 % / 0.1 %, USD-M 0.02 % /
    0.05 %]; seed of the random fill draws.
    """

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
    maker_fee: Optional[float] = None
    taker_fee: Optional[float] = None
    seed: int = 1

    _RULES = {
        "feed_latency": ("optnum", 0.0, False), "clock_correction": ("bool",), "min_feed_latency": ("num", 0.0, False),
        "order_latency": ("num", 0.0, False), "cancel_latency": ("num", 0.0, False),
        "response_latency": ("num", 0.0, False), "queue_model": ("choice", ("risk_averse", "power", "log")),
        "queue_power": ("num", 0.0, True), "fill_model": ("choice", ("queue", "intensity")),
        "fill_A": ("num", 0.0, True), "fill_k": ("num", 0.0, True), "maker_fee": ("optnum", -0.01, False, 0.01),
        "taker_fee": ("optnum", -0.01, False, 0.01), "seed": ("int", 0),
    }

    def __post_init__(self) -> None:
        _check(self, ExchangeModelConfig._RULES)

    def fees(self, market: str = "spot") -> tuple[float, float]:
        """(maker, taker) fractions: the configured ones, else Binance's regular tier."""
        d_maker, d_taker = BINANCE_FEES.get(market or "spot", BINANCE_FEES["spot"])
        return (d_maker if self.maker_fee is None else float(self.maker_fee),
                d_taker if self.taker_fee is None else float(self.taker_fee))


#: paper trading's exchange model is the backtester's (the old name)
PaperConfig = ExchangeModelConfig


@dataclass(frozen=True)
class RiskConfig:
    """Risk limits, the same in backtests, paper and live trading. Units in brackets.

    max_position [base]: |inventory| limit, held with every open and in-flight
    order filled (0: none); max_orders_per_second: new orders (a replace counts
    one, a cancel none) per sliding second (None: no limit); max_daily_loss [quote]: the loss that
    stops trading for the UTC day (0: none); max_drawdown [fraction of the peak
    equity, initial_capital + PnL: 0.05 = 5 %] and max_drawdown_abs [quote; None:
    off]: both trip the kill switch; flatten_on_kill: a kill also closes the
    position with a market order; initial_capital [quote]; latency_threshold_ms
    [ms]: live only -- order round trip or feed age above which quoting pauses.
    max_notional [quote; 0: none]: |position| x price limit held like max_position,
    with every open and in-flight order filled, at the new order's price.
    USD-M testnet/live (from the account, the leverage brackets and the mid as the
    mark): max_margin_ratio [fraction; maintenance margin / margin balance, Binance
    liquidates at 1.0; 0: off] trips the kill switch (cancel all, reduce-only
    flatten with flatten_on_kill); min_liquidation_distance [fraction of the mark;
    None: off]: a liquidation price nearer than this trips it too; max_leverage
    [x; effective = |position notional| / equity; None: off]: above it quoting
    pauses until the position or the equity brings it back.
    """

    max_position: float = 0.01
    max_orders_per_second: Optional[float] = 10.0
    max_daily_loss: float = 100.0
    max_drawdown: float = 0.05
    max_drawdown_abs: Optional[float] = None
    initial_capital: float = 10_000.0
    flatten_on_kill: bool = True
    latency_threshold_ms: float = 500.0
    max_notional: float = 0.0
    max_margin_ratio: float = 0.5
    max_leverage: Optional[float] = 5.0
    min_liquidation_distance: Optional[float] = 0.05

    _RULES = {
        "max_position": ("num", 0.0, False), "max_orders_per_second": ("optnum", 1.0, False, 1e6),
        "max_daily_loss": ("num", 0.0, False), "max_drawdown": ("num", 0.0, False),
        "max_drawdown_abs": ("optnum", 0.0, True), "initial_capital": ("num", 0.0, True),
        "flatten_on_kill": ("bool",),
        "latency_threshold_ms": ("num", 0.0, True),
        "max_notional": ("num", 0.0, False),
        "max_margin_ratio": ("num", 0.0, False, 1.0), "max_leverage": ("optnum", 0.0, True, 125.0),
        "min_liquidation_distance": ("optnum", 0.0, False, 1.0),
    }

    def __post_init__(self) -> None:
        _check(self, RiskConfig._RULES)
        if self.max_drawdown > 1:
            raise ConfigError("RiskConfig.max_drawdown",
                              f"is a fraction of the peak equity (0.05 = 5 %), got {self.max_drawdown!r}; "
                              f"for a limit in quote currency use max_drawdown_abs")


_URL_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go (:mod:`hftmm.ops.alerts`); no destination: no alerts. Units in brackets.

    webhook_url: a generic JSON webhook; slack_webhook_url: a Slack-compatible
    incoming webhook; telegram_bot_token + telegram_chat_id: the Telegram Bot API at
    telegram_api_url (keep the token in the environment, ``HFTMM_ALERTS_TELEGRAM_BOT_TOKEN``;
    it is never stored, logged or shown); min_interval_s [s]: at most one alert per kind
    in this interval (kill and session end always go); timeout_s [s]: per HTTP request;
    reconnect_storm: this many reconnects within 60 s raise an alert (0: off).
    """

    webhook_url: Optional[str] = None
    slack_webhook_url: Optional[str] = field(default=None, repr=False)
    telegram_bot_token: Optional[str] = field(default=None, repr=False)
    telegram_chat_id: Optional[str] = None
    telegram_api_url: str = "https://api.telegram.org"
    min_interval_s: float = 60.0
    timeout_s: float = 5.0
    reconnect_storm: int = 5

    def __post_init__(self) -> None:
        _check(self, {"min_interval_s": ("num", 0.0, False), "timeout_s": ("num", 0.0, True),
                      "reconnect_storm": ("int", 0)})
        for name in ("webhook_url", "slack_webhook_url", "telegram_api_url"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.startswith(_URL_SCHEMES)):
                # (a Slack webhook URL is a credential: not echoed)
                shown = repr(v) if name != "slack_webhook_url" else "a value (not shown: it is a credential)"
                raise ConfigError(f"AlertConfig.{name}", f"must be an http:// or https:// URL, got {shown}")
        for name in ("telegram_bot_token", "telegram_chat_id"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (str, int)) or isinstance(v, bool) or not str(v).strip()):
                raise ConfigError(f"AlertConfig.{name}", "must be a non-empty string"
                                  + ("" if name.endswith("token") else f", got {v!r}"))
        if bool(self.telegram_bot_token) != bool(self.telegram_chat_id):
            raise ConfigError("AlertConfig.telegram_chat_id" if self.telegram_bot_token
                              else "AlertConfig.telegram_bot_token",
                              "Telegram alerts need both telegram_bot_token and telegram_chat_id")
        if self.telegram_chat_id is not None:
            object.__setattr__(self, "telegram_chat_id", str(self.telegram_chat_id))

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.slack_webhook_url or self.telegram_bot_token)


@dataclass(frozen=True)
class PortfolioConfig:
    """Limits over every symbol of one engine (:class:`hftmm.live.portfolio.PortfolioEngine`),
    on top of each symbol's own RiskConfig. Units in brackets.

    max_total_notional [quote]: sum over symbols of |position| x mid, held before a
    fill: each symbol may hold, with its working orders filled, its position plus an
    equal share of the room left under the limit (orders that would
    cross it are refused or cancelled); reported as binding while there is less room
    than one order per symbol, lifted when ``1 - resume_fraction`` of the limit more
    is free (None: no limit). max_total_daily_loss [quote]: the loss of all symbols together
    (PnL since the session started, fees included) that trips the kill switch of
    every symbol (None: the per-symbol ``max_daily_loss``; 0: none).
    """

    max_total_notional: Optional[float] = None
    max_total_daily_loss: Optional[float] = None
    resume_fraction: float = 0.9

    def __post_init__(self) -> None:
        _check(self, {"max_total_notional": ("optnum", 0.0, True), "max_total_daily_loss": ("optnum", 0.0, False),
                      "resume_fraction": ("num", 0.0, True, 1.0)})


def build_portfolio_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> PortfolioConfig:
    """``[portfolio]`` with ``HFTMM_PORTFOLIO_*`` environment overrides."""
    values = data.get("portfolio", {}) or {}
    if not isinstance(values, Mapping):
        raise ConfigError("portfolio", f"must be a table ([portfolio]), got {values!r}")
    return _build(PortfolioConfig, "portfolio", values, os.environ if env is None else env)


def build_alert_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AlertConfig:
    """``[alerts]`` with ``HFTMM_ALERTS_*`` environment overrides (the bot token belongs there)."""
    values = data.get("alerts", {}) or {}
    if not isinstance(values, Mapping):
        raise ConfigError("alerts", f"must be a table ([alerts]), got {values!r}")
    return _build(AlertConfig, "alerts", values, os.environ if env is None else env)


def field_names(*classes: type) -> tuple[str, ...]:
    """The dataclass fields of ``classes``, in order (their one set of names)."""
    return tuple(f.name for cls in classes for f in fields(cls))


def subset(cls: type, source: Any, **overrides: Any) -> Any:
    """An instance of ``cls`` from the same-named attributes of ``source``."""
    return cls(**{f.name: overrides.get(f.name, getattr(source, f.name)) for f in fields(cls)})


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


def build_exchange_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ExchangeModelConfig:
    """``[exchange]`` (paper trading's and backtests' exchange model; ``[paper]`` is
    accepted as its old name, not both) with ``HFTMM_EXCHANGE_*`` overrides."""
    if "exchange" in data and "paper" in data:
        raise ConfigError("paper", "give the exchange model once: [exchange] ([paper] is its old name)")
    sec = "paper" if "paper" in data else "exchange"
    values = data.get(sec, {}) or {}
    if not isinstance(values, Mapping):
        raise ConfigError(sec, f"must be a table ([{sec}]), got {values!r}")
    return _build(ExchangeModelConfig, sec, values, os.environ if env is None else env)


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
