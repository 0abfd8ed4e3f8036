"""Fixture data for the dashboard tests: a live state database filled the way
the engine fills it (:mod:`hftmm.live.schema`), a saved backtest, a sweep and
a data folder.

:class:`FakeEngine` stands in for a paper session until ``hftmm live`` exists:
a random-walk market (tick 0.1), a 20-level book, an Avellaneda-Stoikov-like
pair of quotes around a reservation price, fills when the walk crosses a
quote, and the counters the engine publishes (feed and order latencies,
messages, trades, gaps/resyncs). It writes with its own connection in WAL mode
(like the engine's StateStore) and consumes ``kill``/``resume`` commands.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import uuid
from typing import Optional

import numpy as np

from hftmm.live.schema import SCHEMA, SCHEMA_VERSION, STATUS_COLUMNS

NS = 1_000_000_000


class FakeEngine:
    """Writes a realistic session into a state DB, one publish per :meth:`step`."""

    def __init__(self, path: str, seed: int = 7, symbol: str = "BTCUSDT", tick: float = 0.1,
                 mid: float = 61_800.0) -> None:
        self.path = path
        self.rng = np.random.default_rng(seed)
        self.tick = tick
        self.mid = mid
        self.con = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.executescript(SCHEMA)
        self.con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.sid = uuid.uuid4().hex
        self.started_ns = time.time_ns()
        cfg = dict(symbol=symbol, tick_size=tick, lot_size=0.001, gamma=0.1, time_horizon=30.0, order_size=0.001)
        self.con.execute("INSERT INTO sessions (session_id, started_ns, mode, symbol, market, config_json) "
                         "VALUES (?, ?, 'paper', ?, 'spot', ?)", (self.sid, self.started_ns, symbol, json.dumps(cfg)))
        self.position = 0.0
        self.cash = 0.0
        self.fees = 0.0
        self.realized = 0.0
        self.sigma = 0.8
        self.fills = 0
        self.orders_sent = 0
        self.messages = 0
        self.trades = 0
        self.volume = 0.0
        self.gaps = 0
        self.resyncs = 0
        self.risk_state = "ok"
        self.kill_reason: Optional[str] = None
        self.last_ns = self.started_ns
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ one publish
    def step(self, ts_ns: Optional[int] = None, dt_s: float = 0.5) -> int:
        """Advance the market by ``dt_s`` and publish at ``ts_ns`` (default now)."""
        with self.lock:
            ts = int(ts_ns if ts_ns is not None else time.time_ns())
            r = self.rng
            old = self.mid
            self.mid = round((self.mid + r.normal(0, self.sigma * math.sqrt(dt_s))) / self.tick) * self.tick
            self.sigma = 0.97 * self.sigma + 0.03 * abs(self.mid - old) / math.sqrt(dt_s) + 0.01
            half = self.tick * (0.5 if r.random() < 0.8 else 0.5 + int(r.integers(1, 4)))
            best_bid, best_ask = self.mid - half, self.mid + half
            self._commands(ts)
            reservation = self.mid - self.position * 0.1 * self.sigma ** 2 * 30.0 * 100
            q_half = max(self.tick, 0.5 * self.sigma * 1.5)
            quoting = self.risk_state == "ok"
            bid_q = math.floor((reservation - q_half) / self.tick) * self.tick if quoting else None
            ask_q = math.ceil((reservation + q_half) / self.tick) * self.tick if quoting else None
            if bid_q is not None:
                bid_q, ask_q = min(bid_q, best_bid), max(ask_q, best_ask)
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
                self.resyncs += 1
                self.con.execute("INSERT INTO risk_events (ts_ns, session_id, kind, detail) VALUES (?, ?, ?, ?)",
                                 (ts, self.sid, "resync", json.dumps({"reason": "gap"})))
            equity = self.cash + self.position * self.mid
            row = dict(mid=self.mid, best_bid=best_bid, best_ask=best_ask, spread=best_ask - best_bid,
                       bid_quote=bid_q, ask_quote=ask_q, bid_qty=0.001 if quoting else None,
                       ask_qty=0.001 if quoting else None, position=self.position, cash=self.cash, equity=equity,
                       pnl=equity, realized_pnl=self.realized, fees=self.fees, sigma=self.sigma,
                       reservation=reservation, k=1.5, A=5.0, risk_state=self.risk_state,
                       kill_reason=self.kill_reason, open_orders=2 if quoting else 0, orders_sent=self.orders_sent,
                       fills=self.fills, order_rtt_ms=float(r.gamma(4, 2.0)), feed_age_ms=float(r.gamma(2, 15.0)),
                       feed_latency_ms=float(r.gamma(3, 3.0)), messages=self.messages, trades=self.trades,
                       trade_volume=self.volume, gaps=self.gaps, resyncs=self.resyncs, reconnects=0, malformed=0,
                       synced=1)
            cols = ("ts_ns", "session_id") + STATUS_COLUMNS
            vals = (ts, self.sid) + tuple(row[c] for c in STATUS_COLUMNS)
            bids = [[round(best_bid - i * self.tick, 2), round(float(r.exponential(0.4)) + 0.001, 3)]
                    for i in range(20)]
            asks = [[round(best_ask + i * self.tick, 2), round(float(r.exponential(0.4)) + 0.001, 3)]
                    for i in range(20)]
            self.con.execute("BEGIN")
            self.con.execute(f"INSERT INTO status ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals)
            self.con.execute("INSERT INTO book (ts_ns, session_id, bids_json, asks_json) VALUES (?, ?, ?, ?)",
                             (ts, self.sid, json.dumps(bids), json.dumps(asks)))
            self.con.execute("COMMIT")
            self.last_ns = ts
            return ts

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
        lat = float(self.rng.gamma(3, 4.0))
        self.con.execute("INSERT INTO orders (ts_ns, session_id, client_order_id, order_id, side, price, qty, "
                         "filled_qty, state, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'filled', NULL)",
                         (ts, self.sid, coid, self.orders_sent, side, px, qty, qty))
        self.con.execute("INSERT INTO fills (ts_ns, session_id, client_order_id, order_id, trade_id, side, price, "
                         "qty, fee, fee_asset, maker, position, mid, latency_ms) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, 0.0, 'USDT', 1, ?, ?, ?)",
                         (ts, self.sid, coid, self.orders_sent, self.fills, side, px, qty, self.position, self.mid, lat))

    def _commands(self, ts: int) -> None:
        rows = self.con.execute("SELECT id, command, args_json FROM commands WHERE consumed_ns IS NULL AND "
                                "(session_id IS NULL OR session_id = ?) ORDER BY id", (self.sid,)).fetchall()
        for cid, cmd, args in rows:
            if cmd == "kill":
                self.risk_state = "killed"
                self.kill_reason = json.loads(args or "{}").get("reason", "operator")
                self.con.execute("INSERT INTO risk_events (ts_ns, session_id, kind, detail) VALUES (?, ?, 'kill', ?)",
                                 (ts, self.sid, args))
            elif cmd == "resume":
                self.risk_state, self.kill_reason = "ok", None
            self.con.execute("UPDATE commands SET consumed_ns = ? WHERE id = ?", (ts, cid))

    def history(self, seconds: float, dt_s: float = 0.5) -> None:
        """Publish ``seconds`` of history ending now (as if the engine had run)."""
        n = int(seconds / dt_s)
        now = time.time_ns()
        t0 = now - int(seconds * NS)
        self.con.execute("UPDATE sessions SET started_ns = ? WHERE session_id = ?", (t0, self.sid))
        for i in range(n):
            self.step(t0 + int(i * dt_s * NS), dt_s)

    def close(self) -> None:
        self.con.close()


class FeederThread(threading.Thread):
    """Calls ``engine.step()`` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, engine: FakeEngine, interval_s: float = 0.5) -> None:
        super().__init__(name="dashboard-feeder", daemon=True)
        self.engine, self.interval_s = engine, interval_s
        self._stop_ev = threading.Event()

    def run(self) -> None:
        while not self._stop_ev.wait(self.interval_s):
            self.engine.step(dt_s=self.interval_s)

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(5.0)


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
