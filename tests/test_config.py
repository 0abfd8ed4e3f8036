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
