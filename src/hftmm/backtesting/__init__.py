"""Backtesting: the compiled replay kernel driven over event stores or the synthetic market."""
from hftmm.backtesting.config import BacktestConfig
from hftmm.backtesting.engine import BacktestEngine, BacktestResult, EventSource
from hftmm.backtesting.metrics import PerformanceMetrics, compute_metrics
from hftmm.backtesting.sweep import analyze_results, heatmap, run_sweep, walk_forward

__all__ = ["BacktestConfig", "BacktestEngine", "BacktestResult", "EventSource", "PerformanceMetrics",
           "analyze_results", "compute_metrics", "heatmap", "run_sweep", "walk_forward"]
