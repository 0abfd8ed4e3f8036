from decimal import Decimal
from pathlib import Path

import pytest

from hftmm.captures import read_exchange_info
from hftmm.execution import SymbolFilters

DATA = Path(__file__).parent / "data"
SPOT_2021 = DATA / "cryptofeed" / "BINANCE.0"
NAUTILUS = DATA / "nautilus-samples" / "http_spot_market_exchange_info.json"


@pytest.fixture(scope="module")
def btc():
    return SymbolFilters.from_exchange_info(read_exchange_info(str(SPOT_2021)), "BTCUSDT")


def test_parse_2021_spot(btc):
    assert btc.tick_size == Decimal("0.01") and btc.min_price == Decimal("0.01")
    assert btc.max_price == Decimal("1000000")
    assert btc.step_size == Decimal("0.00001") and btc.min_qty == Decimal("0.00001")
    assert btc.max_qty == Decimal("9000")
    assert btc.notional_filter == "MIN_NOTIONAL" and btc.min_notional == Decimal("10")
    assert btc.percent_up == Decimal("5") and btc.percent_down == Decimal("0.2")
    assert btc.max_num_orders == 200
    assert isinstance(btc.tick_size, Decimal)


def test_parse_nautilus_sample():
    info = read_exchange_info(str(NAUTILUS))
    eth = SymbolFilters.from_exchange_info(info, "ethusdt")
    assert eth.symbol == "ETHUSDT" and eth.tick_size > 0 and eth.step_size > 0
    assert eth.min_notional > 0
    with pytest.raises(KeyError):
        SymbolFilters.from_exchange_info(info, "NOPE")


def test_check_ok_and_violations(btc):
    assert btc.check("BUY", "56000.01", "0.001") == []
    assert btc.check("SELL", Decimal("56000.00"), Decimal("0.00100")) == []
    v = btc.check("BUY", "56000.005", "0.000015")
    names = [x.split(":")[0] for x in v]
    assert names == ["PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"]
    assert "tickSize 0.01" in v[0] and "stepSize" in v[1] and "minNotional" in v[2]
    assert btc.check("BUY", "0.001", "1")[0].startswith("PRICE_FILTER: price 0.001 < minPrice")
    assert any("maxQty" in x for x in btc.check("SELL", "100", "9000.1"))
    assert btc.check("BUY", "0", "1")[0] == "PRICE_FILTER: price 0 must be > 0"
    # exactly the minimum notional passes
    assert btc.check("BUY", "10000", "0.001") == []
    assert btc.check("BUY", "9999.99", "0.001") == ["MIN_NOTIONAL: notional 9.99999 < minNotional 10.00000000"]


def test_percent_price_and_max_orders(btc):
    assert btc.check("BUY", "50000", "0.01", reference_price="50000") == []
    v = btc.check("SELL", "260000", "0.01", reference_price="50000")
    assert v and v[0].startswith("PERCENT_PRICE:")
    v = btc.check("BUY", "9999.99", "0.01", reference_price="50000")
    assert v and v[0].startswith("PERCENT_PRICE:")
    assert btc.check("BUY", "50000", "0.01", open_orders=199) == []
    assert btc.check("BUY", "50000", "0.01", open_orders=200)[0].startswith("MAX_NUM_ORDERS")


def test_notional_and_percent_by_side_current_format():
    f = SymbolFilters.from_filters("BTCUSDT", [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
        {"filterType": "MIN_NOTIONAL", "minNotional": "1.00000000", "applyToMarket": True, "avgPriceMins": 5},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
    ])
    assert f.notional_filter == "NOTIONAL" and f.min_notional == 5 and f.max_notional == 9000000
    assert f.check("BUY", "50000", "0.0001") == []  # exactly minNotional
    assert f.check("BUY", "40000", "0.0001")[0].startswith("NOTIONAL: notional 4.0000 < minNotional")
    assert f.check("BUY", "100000", "100")[0].startswith("NOTIONAL: notional 10000000 > maxNotional")
    assert f.check("BUY", "260000", "0.01", reference_price="50000")[0].startswith(
        "PERCENT_PRICE_BY_SIDE: bid price 260000 > bidMultiplierUp")
    assert f.check("SELL", "9000", "0.01", reference_price="50000")[0].startswith(
        "PERCENT_PRICE_BY_SIDE: ask price 9000 < askMultiplierDown")


def test_rounding_and_format(btc):
    assert btc.round_price("56000.019", "BUY") == Decimal("56000.01")
    assert btc.round_price("56000.011", "SELL") == Decimal("56000.02")
    assert btc.round_price("56000.01", "ask") == Decimal("56000.01")
    assert btc.round_price("56000.01", "bid") == Decimal("56000.01")
    assert btc.round_qty("0.123456789") == Decimal("0.12345")
    assert btc.round_qty("0.000009") == Decimal("0")
    assert btc.format_price(btc.round_price("56000.1", "BUY")) == "56000.10"
    assert btc.format_qty(Decimal("1")) == "1.00000"
    assert btc.format_qty("0.00100000") == "0.00100"
    assert btc.format_price(Decimal("1E+5")) == "100000.00"
    with pytest.raises(ValueError):
        btc.format_price("1.001")
    with pytest.raises(TypeError):
        btc.round_price(0.1, "BUY")
    with pytest.raises(TypeError):
        btc.check("BUY", 1.5, "1")
    with pytest.raises(ValueError):
        btc.round_price("1", "LONG")


def test_all_2021_symbols_parse_and_round_trip():
    info = read_exchange_info(str(SPOT_2021))
    n = 0
    for s in info["symbols"]:
        f = SymbolFilters.from_exchange_info(info, s["symbol"])
        if not (f.tick_size and f.step_size):
            continue
        p = f.round_price(f.min_price * 7 + f.tick_size / 3, "SELL")
        q = f.round_qty(f.min_qty * 3 + f.step_size / 2)
        assert p % f.tick_size == 0 and q % f.step_size == 0
        assert Decimal(f.format_price(p)) == p and Decimal(f.format_qty(q)) == q
        n += 1
    assert n > 1000


USDM_2021 = DATA / "cryptofeed" / "BINANCE_FUTURES.0"


def test_parse_real_usdm_exchange_info():
    """USD-M spells MAX_NUM_ORDERS ``limit`` and MIN_NOTIONAL ``notional`` (was KeyError 'maxNumOrders')."""
    info = read_exchange_info(str(USDM_2021))
    btc = SymbolFilters.from_exchange_info(info, "BTCUSDT")
    assert btc.tick_size == Decimal("0.01") and btc.min_price == Decimal("556.72")
    assert btc.step_size == Decimal("0.001") and btc.min_qty == Decimal("0.001") and btc.max_qty == Decimal("1000")
    assert btc.max_num_orders == 200
    assert btc.notional_filter == "MIN_NOTIONAL" and btc.min_notional == Decimal("5")
    assert btc.percent_up == Decimal("1.1500") and btc.percent_down == Decimal("0.8500")
    assert btc.check("BUY", "40000.00", "0.001") == []
    assert btc.check("BUY", "4000.00", "0.001") == ["MIN_NOTIONAL: notional 4.00000 < minNotional 5"]
    n = 0
    for s in info["symbols"]:
        f = SymbolFilters.from_exchange_info(info, s["symbol"])
        assert f.tick_size > 0 and f.step_size > 0 and f.max_num_orders and f.min_notional > 0
        n += 1
    assert n > 100


def test_max_num_orders_without_a_count_is_named():
    with pytest.raises(ValueError, match="MAX_NUM_ORDERS"):
        SymbolFilters.from_filters("X", [{"filterType": "MAX_NUM_ORDERS"}])
