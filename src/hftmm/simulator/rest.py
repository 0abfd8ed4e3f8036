"""REST payloads of the simulated exchange: exchangeInfo, depth snapshots, weights."""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

import numpy as np

SPOT_DEPTH_MAX = 5000
SPOT_DEPTH_DEFAULT = 100
USDM_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
USDM_DEPTH_DEFAULT = 500

#: REQUEST_WEIGHT per minute (Binance's published values at the time of writing)
WEIGHT_LIMIT = {"spot": 6000, "usdm": 2400}
EXCHANGE_INFO_WEIGHT = {"spot": 20, "usdm": 1}


def depth_weight(market: str, limit: int) -> int:
    """Weight of a depth request per BINANCE.md."""
    if market == "spot":
        if limit <= 100:
            return 5
        if limit <= 500:
            return 25
        if limit <= 1000:
            return 50
        return 250
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def _fmt8(x: str) -> str:
    return f"{Decimal(x):.8f}"


def _plain(x: str) -> str:
    d = Decimal(x).normalize()
    return format(d, "f")


def _precision(step: str) -> int:
    return max(-Decimal(step).normalize().as_tuple().exponent, 0)


def exchange_info(market: str, symbol: str, tick_size: str, lot_size: str, server_time_ms: int,
                  rate_limits: Optional[list[dict]] = None) -> dict:
    """A realistic exchangeInfo with one symbol (shapes as in the 2024-2025 API).
    Spot: ``rate_limits`` (default Binance's values) and the order types and
    flags the simulator's order entry supports (LIMIT, LIMIT_MAKER, MARKET; cancelReplace)."""
    sym = symbol.upper()
    quote = next((q for q in ("FDUSD", "USDT", "USDC", "BUSD", "BTC", "ETH", "BNB") if sym.endswith(q)
                  and len(sym) > len(q)), sym[-3:])
    base = sym[:-len(quote)]
    if market == "spot":
        return {
            "timezone": "UTC",
            "serverTime": server_time_ms,
            "rateLimits": rate_limits if rate_limits is not None else [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": WEIGHT_LIMIT["spot"]},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [{
                "symbol": sym, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
                "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False, "cancelReplaceAllowed": True,
                "amendAllowed": False, "pegInstructionsAllowed": False,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": True,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": _fmt8(tick_size), "maxPrice": "1000000.00000000",
                     "tickSize": _fmt8(tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": _fmt8(lot_size), "maxQty": "9000.00000000",
                     "stepSize": _fmt8(lot_size)},
                    {"filterType": "ICEBERG_PARTS", "limit": 10},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
                     "stepSize": "0.00000000"},
                    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
                     "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
                    {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                     "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
            }],
        }
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": WEIGHT_LIMIT["usdm"]},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": quote, "marginAvailable": True, "autoAssetExchange": "-10000"},
                   {"asset": base, "marginAvailable": True, "autoAssetExchange": "-0.00100000"}],
        "symbols": [{
            "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": quote, "marginAsset": quote,
            "pricePrecision": _precision(tick_size), "quantityPrecision": _precision(lot_size),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
            "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _plain(tick_size), "maxPrice": "4529764",
                 "tickSize": _plain(tick_size)},
                {"filterType": "LOT_SIZE", "stepSize": _plain(lot_size), "maxQty": "1000",
                 "minQty": _plain(lot_size)},
                {"filterType": "MARKET_LOT_SIZE", "stepSize": _plain(lot_size), "maxQty": "120",
                 "minQty": _plain(lot_size)},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": "100"},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }],
    }


def render_snapshot(market: str, last_update_id: int, levels: tuple, px, qty, now_ms: int,
                    limit: Optional[int] = None) -> bytes:
    """REST depth JSON from (bid_ticks, bid_lots, ask_ticks, ask_lots), best first."""
    bt, bq, at, aq = levels
    if limit is not None:
        bt, bq, at, aq = bt[:limit], bq[:limit], at[:limit], aq[:limit]
    bids = ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in zip(np.asarray(bt).tolist(), np.asarray(bq).tolist()))
    asks = ",".join(f'["{px(t)}","{qty(q)}"]' for t, q in zip(np.asarray(at).tolist(), np.asarray(aq).tolist()))
    if market == "spot":
        return f'{{"lastUpdateId":{last_update_id},"bids":[{bids}],"asks":[{asks}]}}'.encode()
    return (f'{{"lastUpdateId":{last_update_id},"E":{now_ms},"T":{now_ms},'
            f'"bids":[{bids}],"asks":[{asks}]}}').encode()
