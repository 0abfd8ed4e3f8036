"""Fixture data for the dashboard tests: a live state database written
through the engine's own :class:`hftmm.live.state.StateStore`, a saved
backtest, a sweep and a data folder.

:class:`FakeEngine` is a deterministic, fast stand-in for a paper session (the
AppTest tests need minutes of history in a second; the browser test runs the
real ``hftmm live --paper`` on the simulator): a random-walk market (tick
0.1), a 20-level book, an Avellaneda-Stoikov-like pair of quotes around a
reservation price, fills when the walk crosses a quote, the counters the
engine publishes (feed and order latencies, messages, trades, gaps/resyncs),
and the ``kill``/``resume`` commands consumed at the next publish.
"""
from __future__ import annotations

import math
import os
import time
from typing import Optional

import numpy as np

from hftmm.live.state import StateStore

NS = 1_000_000_000


class FakeEngine:
    """Publishes a realistic session into a state DB, one publish per :meth:`step`;
    ``history_s``: first publish that many seconds of history (every ``dt_s``)."""

    def __init__(self, path: str, seed: int = 7, symbol: str = "BTCUSDT", tick: float = 0.1,
                 mid: float = 61_800.0, history_s: float = 0.0, dt_s: float = 0.5) -> None:
        self.path = path
        self.rng = np.random.default_rng(seed)
        self.tick = tick
        self.mid = mid
        self.store = StateStore(path)
        cfg = dict(mode="paper", trading=dict(symbol=symbol, tick_size=tick, lot_size=0.001, gamma=0.1,
                                              time_horizon=30.0, order_size=0.001))
        now = time.time_ns()
        self.sid = self.store.start_session("paper", symbol, "spot", cfg, ts_ns=now - int(history_s * NS))
        self.position = self.cash = self.realized = self.volume = 0.0
        self.sigma = 0.8
        self.fills = self.orders_sent = self.messages = self.trades = self.gaps = 0
        self.risk_state = "ok"
        self.kill_reason: Optional[str] = None
        for i in range(int(history_s / dt_s)):
            self.step(now - int(history_s * NS) + int(i * dt_s * NS), dt_s)

    def step(self, ts_ns: Optional[int] = None, dt_s: float = 0.5) -> int:
        """Advance the market by ``dt_s`` and publish at ``ts_ns`` (default now)."""
        ts = int(ts_ns if ts_ns is not None else time.time_ns())
        r = self.rng
        old = self.mid
        self.mid = round((self.mid + r.normal(0, self.sigma * math.sqrt(dt_s))) / self.tick) * self.tick
        self.sigma = 0.97 * self.sigma + 0.03 * abs(self.mid - old) / math.sqrt(dt_s) + 0.01
        half = self.tick * (0.5 if r.random() < 0.8 else 0.5 + int(r.integers(1, 4)))
        best_bid, best_ask = self.mid - half, self.mid + half
        self._commands(ts)
        reservation = self.mid - self.position * 0.1 * self.sigma ** 2 * 30.0 * 100
        q_half = max(self.tick, 0.75 * self.sigma)
        quoting = self.risk_state == "ok"
        bid_q = ask_q = None
        if quoting:
            bid_q = min(math.floor((reservation - q_half) / self.tick) * self.tick, best_bid)
            ask_q = max(math.ceil((reservation + q_half) / self.tick) * self.tick, best_ask)
        lo, hi = min(old, self.mid) - half, max(old, self.mid) + half
        new_trades = int(r.poisson(20 * dt_s))
        self.trades += new_trades
        self.volume += float(r.exponential(0.01, new_trades).sum())
        self.messages += int(r.poisson(40 * dt_s)) + new_trades
        if quoting:
            self.orders_sent += 2
            for side, px, hit in (("BUY", bid_q, lo <= bid_q), ("SELL", ask_q, hi >= ask_q)):
                if hit and r.random() < 0.25:
                    self._fill(ts, side, px, 0.001)
        if r.random() < 0.01:
            self.gaps += 1
            self.store.record_risk_event("resync", "gap in the depth stream", ts_ns=ts)
        equity = self.cash + self.position * self.mid
        status = dict(mid=self.mid, best_bid=best_bid, best_ask=best_ask, spread=best_ask - best_bid,
                      bid_quote=bid_q, ask_quote=ask_q, bid_qty=0.001 if quoting else None,
                      ask_qty=0.001 if quoting else None, position=self.position, cash=self.cash, equity=equity,
                      pnl=equity, realized_pnl=self.realized, fees=0.0, sigma=self.sigma, reservation=reservation,
                      k=1.5, A=5.0, risk_state=self.risk_state, kill_reason=self.kill_reason,
                      open_orders=2 if quoting else 0, orders_sent=self.orders_sent, fills=self.fills,
                      order_rtt_ms=float(r.gamma(4, 2.0)), feed_age_ms=float(r.gamma(2, 15.0)),
                      feed_latency_ms=float(r.gamma(3, 3.0)), messages=self.messages, trades=self.trades,
                      trade_volume=self.volume, gaps=self.gaps, resyncs=self.gaps, reconnects=0, malformed=0,
                      synced=1)
        bids = [(best_bid - i * self.tick, float(r.exponential(0.4)) + 0.001) for i in range(20)]
        asks = [(best_ask + i * self.tick, float(r.exponential(0.4)) + 0.001) for i in range(20)]
        return self.store.publish(status, bids, asks, ts_ns=ts)

    def _fill(self, ts: int, side: str, px: float, qty: float) -> None:
        sign = 1.0 if side == "BUY" else -1.0
        if abs(self.position + sign * qty) > 0.0105:
            return
        if self.position and (self.position > 0) != (sign > 0):
            self.realized += (px - self.mid) * -sign * qty
        self.position = round(self.position + sign * qty, 6)
        self.cash -= sign * px * qty
        self.fills += 1
        coid = f"hftmm-{self.orders_sent}-{side[0]}"
        self.store.record_order(coid, side, px, qty, qty, "FILLED", order_id=self.orders_sent, ts_ns=ts)
        self.store.record_fill(coid, side, px, qty, 0.0, self.position, order_id=self.orders_sent,
                               trade_id=self.fills, fee_asset="USDT", maker=True, mid=self.mid,
                               latency_ms=float(self.rng.gamma(3, 4.0)), ts_ns=ts)

    def _commands(self, ts: int) -> None:
        for c in self.store.pending_commands():
            if c.command == "kill":
                self.risk_state, self.kill_reason = "killed", str(c.args.get("reason", "operator"))
                self.store.record_risk_event("kill", f"kill switch: {self.kill_reason}", ts_ns=ts)
            elif c.command == "resume":
                self.risk_state, self.kill_reason = "ok", None
            self.store.mark_consumed(c.id, ts_ns=ts)

    def close(self) -> None:
        self.store.close()


def saved_backtest(directory: str, seconds: float = 600.0, **config) -> str:
    """A real short backtest (the synthetic market's first ``seconds``) saved to ``directory``."""
    from hftmm.backtesting import BacktestConfig, BacktestEngine

    result = BacktestEngine(synthetic_day_seconds=seconds).run_backtest(BacktestConfig(**config))
    return result.save(directory)


def small_sweep(directory: str, seconds: float = 300.0) -> str:
    """A 3 x 2 grid sweep (gamma x time_horizon) on the synthetic market, as ``hftmm sweep`` writes it."""
    from hftmm.backtesting import BacktestConfig, BacktestEngine
    from hftmm.backtesting.sweep import run_sweep
    from hftmm.cli_sweep import write_reports

    os.makedirs(directory, exist_ok=True)
    df = run_sweep(BacktestEngine(synthetic_day_seconds=seconds), BacktestConfig(),
                   {"gamma": [0.05, 0.1, 0.5], "time_horizon": [10.0, 30.0]},
                   results_path=os.path.join(directory, "results.parquet"), progress=False, workers=1)
    write_reports(df, directory, {})
    return directory


def data_folder(directory: str) -> str:
    """``raw/`` with the bundled collector capture and ``store/`` converted from it."""
    import shutil

    from hftmm.data.convert import convert

    here = os.path.dirname(os.path.abspath(__file__))
    raw = os.path.join(directory, "raw")
    os.makedirs(raw, exist_ok=True)
    dst = os.path.join(raw, "BTCUSDT_spot_20240808_23.gz")
    shutil.copy(os.path.join(here, "data", "hftbacktest-collector", "spot_btcusdt_20240808.gz"), dst)
    convert([dst], os.path.join(directory, "store"), progress=False)
    return directory
