"""``hftmm.simulator``: a Binance-compatible exchange simulator on 127.0.0.1.

One port serves REST (``/api/v3/...`` spot, ``/fapi/v1/...`` USD-M) and
WebSocket market-data streams (RFC 6455 implemented here on asyncio streams),
driven by a seeded synthetic market or a recorded capture, with seeded fault
injection, and signed order entry against that book (accounts via
``sim.add_account``): spot over REST and the WS API, USD-M over ``/fapi`` REST with
positions, leverage, margin, funding and liquidation and the listenKey user data
stream (:mod:`hftmm.simulator.futures`). The exchange's book as published
(``ground_truth()``) is exact, so a client's rebuilt book can be compared with it.
Public market data (trades, klines, tickers, average and mark price; REST, WS API
and timed streams) is computed from the trades it published
(:mod:`hftmm.simulator.marketdata`, :mod:`hftmm.simulator.streams`); ``tls=True``
serves HTTPS/WSS with a self-signed certificate (:mod:`hftmm.simulator.tls`).
Real client libraries (binance-connector, binance-sdk-spot, ccxt / ccxt.pro) work
against it unpatched (``tests/test_sim_clients*.py``).

    from hftmm.simulator import ExchangeSimulator, SyntheticSource
    from hftmm.synthetic import SyntheticConfig

    with ExchangeSimulator(market="spot", source=SyntheticSource(SyntheticConfig(seed=1), speed=0)) as sim:
        print(sim.rest_url, sim.ws_url)
"""
from hftmm.simulator.faults import DEFAULT_RATES, KINDS, Fault, FaultConfig
from hftmm.simulator.futures import FuturesLimits
from hftmm.simulator.marketdata import MarketTape, PublicApi
from hftmm.simulator.server import ExchangeSimulator, MarketStreamHandler, Route, WsConnection, WsHandler
from hftmm.simulator.sources import CaptureSource, Msg, Source, SyntheticSource
from hftmm.simulator.trading import ORDER_FAULT_KINDS, OrderFaults, SpotLimits

__all__ = [
    "ExchangeSimulator", "SyntheticSource", "CaptureSource", "FaultConfig", "Fault", "DEFAULT_RATES", "KINDS",
    "Source", "Msg", "Route", "WsHandler", "WsConnection", "MarketStreamHandler", "SpotLimits", "OrderFaults",
    "ORDER_FAULT_KINDS", "MarketTape", "PublicApi", "FuturesLimits",
]
