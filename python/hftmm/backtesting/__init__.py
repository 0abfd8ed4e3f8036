"""Backtesting: the compiled replay kernel driven over event stores or the synthetic market."""
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import BacktestEngine, BacktestResult, EventSource
from hftmm.backtesting.metrics import PerformanceMetrics, compute_metrics

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "EventSource", "PerformanceMetrics",
           "compute_metrics"]
