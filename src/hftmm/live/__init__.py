"""Live and paper trading: gateways, the engine, its state store."""
from hftmm.live.engine import LiveEngine
from hftmm.live.paper import PaperConfig, PaperGateway

__all__ = ["LiveEngine", "PaperConfig", "PaperGateway"]
