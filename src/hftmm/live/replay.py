"""Paper trading offline, and the backtest that must agree with it.

:func:`paper_replay` runs the live strategy (pricer, risk and quote managers) with
the :class:`~hftmm.live.paper.PaperGateway` over recorded, normalised events --
the engine's paper mode without the network. :func:`equivalent_backtest` is the
:class:`~hftmm.backtesting.BacktestConfig` with the same strategy and exchange
model. Given the same events, both make the same quote decisions and the same
fills (``tests/test_paper_parity.py``), which is what makes a backtest a
prediction of paper (and, up to the model, live) trading.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

from hftmm.backtesting.config import BacktestConfig
from hftmm.config import RiskConfig, TradingConfig
from hftmm.live.engine import StrategyCore, build_strategy
from hftmm.live.paper import PaperConfig, PaperGateway
from hftmm.strategy.quote_manager import Decision
from hftmm.strategy.risk import RiskManager

__all__ = ["PaperReplayResult", "paper_replay", "equivalent_backtest"]


@dataclass
class PaperReplayResult:
    decisions: list[Decision]
    fills: np.ndarray            # the exchange side's fills (backtester FILL_DTYPE)
    counters: dict
    core: StrategyCore
    gateway: PaperGateway


def paper_replay(chunks: Iterable[np.ndarray], trading: TradingConfig, risk: RiskConfig, tick_size: str,
                 lot_size: str, paper: Optional[PaperConfig] = None, risk_manager: Any = "default",
                 end_ns: Optional[int] = None) -> PaperReplayResult:
    """Paper-trade normalised EVENT_DTYPE chunks (in arrival order) in ``tick_size``
    / ``lot_size`` units, with a :class:`RiskManager` on the event clock (as the
    engine; None: no risk manager). ``end_ns``: deliver what is due up to then."""
    gw = PaperGateway(trading.symbol, tick_size, lot_size, paper or PaperConfig())
    if risk_manager == "default":
        risk_manager = RiskManager(risk, clock=lambda: gw.now_ns)
    core = build_strategy(trading, risk, tick_size, lot_size, gw, risk_manager=risk_manager)
    core.qm.record_decisions = True
    gw.on_market = core.on_market
    gw.start(core.qm.on_gateway_event)
    fills = []
    last = None
    for ch in chunks:
        if len(ch):
            if risk_manager is not None:      # what the engine tells it for each message
                exch = int(ch["exch_ts"][-1])
                if exch > 0:
                    risk_manager.on_feed(exch, int(ch["local_ts"][-1]))
                risk_manager.on_book_state(True, now=int(ch["local_ts"][-1]))
            gw.feed(ch)
            last = ch
            fills.append(gw.take_fills())
    gw.feed(np.empty(0, dtype=last.dtype) if last is not None else np.empty(0), final=True)
    if end_ns is not None:
        gw.finish(end_ns)
    fills.append(gw.take_fills())
    f = np.concatenate(fills) if fills else np.empty(0)
    return PaperReplayResult(core.qm.decisions, f, gw.counters(), core, gw)


def equivalent_backtest(trading: TradingConfig, risk: RiskConfig, paper: Optional[PaperConfig] = None,
                        **fields: Any) -> BacktestConfig:
    """The backtest of the same strategy and exchange model (``fields``: dates,
    data_path, ... of the BacktestConfig)."""
    t, p = trading, paper or PaperConfig()
    return BacktestConfig(
        symbol=t.symbol, gamma=t.gamma, time_horizon=t.time_horizon, model=t.model, fair_value=t.fair_value,
        rolling_horizon=t.rolling_horizon, ewma_half_life=t.ewma_half_life, k=t.k, A=t.A,
        estimate_intensity=t.estimate_intensity, intensity_window=t.intensity_window,
        intensity_refit=t.intensity_refit, xi=t.xi, order_size=t.order_size, max_position=risk.max_position,
        max_orders_per_second=risk.max_orders_per_second,
        min_spread=t.min_spread, quote_refresh_interval=t.quote_refresh_interval,
        requote_threshold=t.requote_threshold, post_only=t.post_only, **p.backtest_fields(), **fields)
