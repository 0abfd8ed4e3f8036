"""Live and paper trading: the engine, the Binance gateway, the state store."""
from hftmm.live.engine import LiveEngine

__all__ = ["LiveEngine"]
