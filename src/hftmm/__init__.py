"""hftmm -- an Avellaneda-Stoikov / GLFT market maker for Binance.

The pure-Python layers (connectivity, simulator, strategy wiring, backtesting,
CLI) on top of the compiled core :mod:`hftcore`.
"""
from __future__ import annotations

from hftmm.config import ConfigError, RiskConfig, TradingConfig, load_config

__version__ = "0.1.0"

__all__ = ["ConfigError", "RiskConfig", "TradingConfig", "load_config", "__version__"]
