"""USD-M leverage brackets, maintenance margin, margin ratio and liquidation price
(Binance's FAQ rules), checked on the documented bracket format and by the defining
condition: at the liquidation price the margin balance equals the maintenance margin."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from hftmm.execution.margin import LeverageBrackets, effective_leverage, liquidation_price, margin_ratio

# GET /fapi/v1/leverageBracket?symbol=BTCUSDT (one object; JSON numbers), the default BTCUSDT table
BTC = {"symbol": "BTCUSDT", "brackets": [
    {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004,
     "cum": 0.0},
    {"bracket": 2, "initialLeverage": 100, "notionalCap": 250000, "notionalFloor": 50000, "maintMarginRatio": 0.005,
     "cum": 50.0},
    {"bracket": 3, "initialLeverage": 50, "notionalCap": 3000000, "notionalFloor": 250000, "maintMarginRatio": 0.01,
     "cum": 1300.0},
    {"bracket": 4, "initialLeverage": 20, "notionalCap": 20000000, "notionalFloor": 3000000,
     "maintMarginRatio": 0.025, "cum": 46300.0},
    {"bracket": 5, "initialLeverage": 10, "notionalCap": 40000000, "notionalFloor": 20000000,
     "maintMarginRatio": 0.05, "cum": 546300.0},
]}
# the documented list form (without a symbol), with the optional notionalCoef
LIST = [{"symbol": "ETHUSDT", "notionalCoef": 1.50, "brackets": [
    {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0, "maintMarginRatio": 0.0065,
     "cum": 0.0}]}, BTC]


@pytest.fixture
def btc():
    return LeverageBrackets.from_api(BTC)


def test_parse_both_shapes_and_the_cum_rule(btc):
    assert len(btc.brackets) == 5 and btc.brackets[2].mmr == D("0.01") and btc.brackets[2].cum == D("1300.0")
    assert btc.check_cum() == []          # the FAQ's 250,000 x (1% - 0.5%) + 50 = 1,300
    eth = LeverageBrackets.from_api(LIST, "ethusdt")
    assert eth.symbol == "ETHUSDT" and eth.max_leverage(D(5000)) == 75
    assert LeverageBrackets.from_api(LIST, "BTCUSDT") == btc
    with pytest.raises(KeyError):
        LeverageBrackets.from_api(LIST, "XRPUSDT")
    with pytest.raises(ValueError, match="missing"):
        LeverageBrackets.from_api({"symbol": "X", "brackets": [{"bracket": 1}]})
    with pytest.raises(ValueError, match="not at the previous cap"):
        LeverageBrackets.from_api({"symbol": "X", "brackets": [BTC["brackets"][0], BTC["brackets"][2]]})


def test_maintenance_margin_by_bracket(btc):
    assert btc.maintenance_margin(D(10000)) == D("40.000")                  # 10,000 x 0.4 %
    assert btc.maintenance_margin(D(100000)) == D("450.0")                  # 100,000 x 0.5 % - 50
    assert btc.maintenance_margin(D(1000000)) == D("8700.0")                # 1,000,000 x 1 % - 1,300
    # continuous at a bracket's edge (that is what cum is for)
    assert btc.maintenance_margin(D(50000)) == D(50000) * D("0.004")
    assert btc.max_leverage(D(40000)) == 125 and btc.max_leverage(D(60000)) == 100
    assert btc.max_notional(20) == D(20000000) and btc.max_notional(126) == 0


@pytest.mark.parametrize("size,entry,wallet", [(D("0.5"), D(60000), D(1000)), (D("-0.5"), D(60000), D(1000)),
                                               (D(20), D(60000), D(100000)), (D(-20), D(60000), D(100000)),
                                               (D("0.01"), D(50000), D(100))])
def test_liquidation_price_is_where_the_ratio_reaches_one(btc, size, entry, wallet):
    lp = liquidation_price(btc, size, entry, wallet)
    assert lp is not None and lp > 0
    # the defining condition: margin balance = maintenance margin at the liquidation price
    assert margin_ratio(btc, size, entry, lp, wallet) == pytest.approx(D(1), abs=D("1e-20"))
    # a little before it, the ratio is below 100 %; a little beyond, above
    step = lp * D("0.001")
    safer, worse = (lp + step, lp - step) if size > 0 else (lp - step, lp + step)
    assert margin_ratio(btc, size, entry, safer, wallet) < 1 < margin_ratio(btc, size, entry, worse, wallet)


def test_liquidation_price_crosses_brackets_and_special_cases(btc):
    # 20 BTC at 60,000 = 1.2 M notional (bracket 3); near its liquidation price it stays there
    lp = liquidation_price(btc, D(20), D(60000), D(100000))
    assert btc.bracket_for(20 * lp).bracket == 3
    # a long fully backed by its wallet cannot be liquidated at a positive price
    assert liquidation_price(btc, D(1), D(100), D(1000)) is None
    assert liquidation_price(btc, D(0), D(100), D(1000)) is None
    # the isolated long formula, by hand: (Q*EP - WB - cum) / (Q*(1 - MMR))
    assert liquidation_price(btc, D("0.5"), D(60000), D(1000)) == (D("0.5") * 60000 - 1000 - 0) / (D("0.5") *
                                                                                                  (1 - D("0.004")))


def test_effective_leverage():
    assert effective_leverage(D(50000), D(10000)) == 5
    assert effective_leverage(D(-50000), D(10000)) == 5
    assert effective_leverage(D(1), D(0)) == D("Infinity")
