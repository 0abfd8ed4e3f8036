"""Market data from Binance: the connector and the recorder."""
from hftmm.data_ingestion.connector import (ENDPOINTS, BinanceConnector, BookSnapshot, ConnectorStats,
                                            OrderBookView, depth_weight, stream_names)
from hftmm.data_ingestion.recorder import Recorder

__all__ = ["ENDPOINTS", "BinanceConnector", "BookSnapshot", "ConnectorStats", "OrderBookView", "Recorder",
           "depth_weight", "stream_names"]
