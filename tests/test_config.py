"""Config dataclasses: validated at construction, errors name the field; TOML and
environment overrides; the console script runs."""
import json

import pytest

from hftmm import ConfigError, RiskConfig, TradingConfig, load_config
from hftmm.cli import main


def test_defaults_are_valid():
    t = TradingConfig()
    r = RiskConfig()
    assert t.symbol == "BTCUSDT" and t.gamma > 0 and r.max_position > 0


@pytest.mark.parametrize("field,value", [
    ("gamma", 0), ("gamma", -1.0), ("gamma", float("nan")), ("time_horizon", 0),
    ("tick_size", 0), ("tick_size", "abc"), ("min_spread", -0.01), ("model", "hummingbot"),
    ("fair_value", "last"), ("symbol", "BTC/USDT"), ("order_size", True),
])
def test_bad_trading_values_name_the_field(field, value):
    with pytest.raises(ConfigError) as exc:
        TradingConfig(**{field: value})
    assert exc.value.field == f"TradingConfig.{field}"
    assert field in str(exc.value)


def test_bad_risk_value():
    with pytest.raises(ConfigError, match="RiskConfig.max_drawdown"):
        RiskConfig(max_drawdown=-5)


def test_load_toml_with_env_override(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[trading]\nsymbol = "ethusdt"\ngamma = 0.3\n[risk]\nmax_position = 2.0\n')
    t, r = load_config(p, env={"HFTMM_TRADING_GAMMA": "0.5", "HFTMM_RISK_MAX_DAILY_LOSS": "50"})
    assert t.symbol == "ETHUSDT" and t.gamma == 0.5
    assert r.max_position == 2.0 and r.max_daily_loss == 50.0


def test_load_refuses_unknown_keys(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[trading]\ngamma = 0.3\ngama = 1\n')
    with pytest.raises(ConfigError, match="trading.gama"):
        load_config(p, env={})
    with pytest.raises(ConfigError, match="risk.foo"):
        load_config(None, env={"HFTMM_RISK_FOO": "1"})
    with pytest.raises(ConfigError, match="TradingConfig.gamma"):
        load_config(None, env={"HFTMM_TRADING_GAMMA": "fast"})


def test_cli_info(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["event_record_bytes"] == 64


# ---------------------------------------------------------------- strict parsing (issue 15)
@pytest.mark.parametrize("raw", ["ture", "yes", "on", "no", "off", "2", ""])
def test_env_booleans_are_true_false_or_1_0_only(raw):
    with pytest.raises(ConfigError, match="TradingConfig.post_only") as ei:
        load_config(env={"HFTMM_TRADING_POST_ONLY": raw})
    assert repr(raw) in str(ei.value)


@pytest.mark.parametrize("raw,want", [("true", True), ("TRUE", True), ("1", True), ("false", False),
                                      ("False", False), ("0", False), (" 0 ", False)])
def test_env_booleans_accepted(raw, want):
    trading, _ = load_config(env={"HFTMM_TRADING_POST_ONLY": raw})
    assert trading.post_only is want


@pytest.mark.parametrize("field,value", [("post_only", "no"), ("clock_correction", "off"),
                                         ("rolling_horizon", 1), ("estimate_intensity", "true")])
def test_backtest_booleans_are_booleans(field, value):
    from hftmm.backtesting import BacktestConfig

    with pytest.raises(ConfigError, match=f"BacktestConfig.{field}") as ei:
        BacktestConfig(**{field: value})
    assert repr(value) in str(ei.value)


@pytest.mark.parametrize("value", [20240808, "20240808", "2024-8-8", "2024-02-30", None, 2024.0])
def test_backtest_dates_are_iso_strings(value):
    from hftmm.backtesting import BacktestConfig

    with pytest.raises(ConfigError, match="BacktestConfig.start_date") as ei:
        BacktestConfig(start_date=value)
    assert repr(value) in str(ei.value)


def test_risk_max_drawdown_is_a_fraction_with_an_absolute_variant():
    from hftmm.strategy import core

    assert RiskConfig().max_drawdown == 0.05 and RiskConfig().max_drawdown_abs is None
    with pytest.raises(ConfigError, match="max_drawdown_abs"):
        RiskConfig(max_drawdown=200.0)              # an amount where a fraction is meant
    # the trader (the one copy of the limits) takes the fraction of the peak equity
    risk = RiskConfig(initial_capital=10_000.0, max_drawdown=0.05, max_daily_loss=1e9, max_position=10.0)
    tr = core.trader(risk, 0.01, 0.001)
    b = tr.new(0, 1000_00, 10_000, now=0)           # 10 BTC at 1,000.00
    tr.on_report(0, b, 2, 1000_00, 10_000, 0)
    tr.mark(0, 1000.0)
    tr.mark(1, 1010.0)                              # +100: peak equity 10,100
    tr.mark(2, 1010.0 - 0.049 * 10_100 / 10)
    assert not tr.killed
    tr.mark(3, 1010.0 - 0.0501 * 10_100 / 10)
    assert tr.killed and tr.kill_reason_name == "max_drawdown"
    risk = RiskConfig(max_drawdown_abs=50.0, max_daily_loss=1e9, max_drawdown=1.0, max_position=10.0)
    tr = core.trader(risk, 0.01, 0.001)
    b = tr.new(0, 1000_00, 10_000, now=0)
    tr.on_report(0, b, 2, 1000_00, 10_000, 0)
    tr.mark(0, 1000.0)
    tr.mark(1, 995.1)
    assert not tr.killed
    tr.mark(2, 995.0)
    assert tr.killed and tr.kill_reason_name == "max_drawdown_abs"


def test_seed_api_defaults():
    from hftmm.strategy import AvellanedaStoikovPricer, QuoteParameters, RiskManager

    rm = RiskManager()                              # default RiskConfig
    assert rm.config == RiskConfig() and rm.state in ("ok", "paused")
    p = AvellanedaStoikovPricer(tick_size=0.01, ewma_alpha=0.2, max_inventory=10.0)
    p.update_market(midprice=50000.0)
    q = p.compute_quotes(QuoteParameters(gamma=0.1, T=30.0))
    assert q is not None and q.bid_ok and q.ask_ok and 0 < q.bid_price < 50000.0 < q.ask_price
    assert q.sigma == pytest.approx(p.prior_sigma * 50000.0)
    # closely spaced updates blow the EWMA up: never a negative (or far) price marked OK
    for i, m in enumerate((50000.0, 50500.0, 49500.0, 51000.0)):
        p.update_market(midprice=m, timestamp_ns=1_000 + i)
    q = p.compute_quotes(QuoteParameters(gamma=0.1, T=30.0))
    assert q is not None
    for ok, price in ((q.bid_ok, q.bid_price), (q.ask_ok, q.ask_price)):
        assert not ok or (0 < price and abs(price - q.fair_value) <= 0.2 * q.fair_value)
    assert not q.bid_ok or q.bid_price > 0
