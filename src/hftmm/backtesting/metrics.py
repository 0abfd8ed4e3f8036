"""Performance metrics of a market-making run, from its fills and equity samples.

Conventions (documented because they change the numbers):

* Equity = initial capital + cash + position x mid (mark to the exchange mid);
  PnL figures are in quote currency. Gross PnL excludes fees (and funding), net includes them.
* Realised PnL uses average cost: a fill that reduces the position realises
  (price - average cost) x size; the rest is unrealised at the last mid.
* Sharpe, Sortino and Calmar use equity resampled every ``metrics_interval``
  seconds (default 60 s), simple returns on equity, annualised for a 24/7
  market: periods per year = 365 x 86400 / interval. Sortino's downside
  deviation is the root mean square of negative returns. Calmar = annualised
  return / max drawdown (as a fraction of peak equity).
* Max drawdown: largest peak-to-trough fall of equity (quote currency and
  fraction), with its duration from the peak to the recovery (or the end).
* Round trips: fills matched first-in first-out; each closed lot counts as a
  trade with PnL (exit - entry) x size minus its share of fees. Win rate =
  profitable closed trades / closed trades; average trade = mean closed PnL.
* Fill rate = filled quantity / submitted quantity; quote hit rate = orders
  with at least one fill / orders submitted; quote lifetime = mean time an order
  was live at the exchange (arrival to fill, cancel or rejection).
* Spread capture: for each maker fill, (mid - price) for buys and (price - mid)
  for sells at the fill time, in price units (mean) and quote currency (total).
* Adverse selection: mark-outs at 1 s, 10 s, 60 s: (mid(t + h) - price) x side
  (+1 buy, -1 sell), in price units and basis points of the price; mid(t + h)
  is the first equity sample at or after t + h.
* Inventory: time-weighted mean of |position| and of position (base units,
  from the samples); turnover = traded volume / time-weighted mean |position|.
* PnL split: gross PnL = spread + inventory, exactly. Spread = sum over all fills
  of (mid at the fill - price) x signed size (what each fill earned against the
  mid; a taker fill's is negative); inventory = the rest, i.e. sum of signed size
  x (last mid - mid at the fill): holding the position while the mid moved.
  Net PnL = spread + inventory - fees - funding (USD-M perpetuals: what the
  position paid at the funding times, position x mark x rate; < 0 received).
* Adverse selection at h: mean over fills of (mid at the fill - mid(t + h)) x
  side, in bps of the price -- the part of the fill's edge the market took back
  within h (= spread capture - mark-out; our orders do not move the modelled
  market, so this is the whole of the market impact a backtest can show).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.0 * 86400.0
MARKOUT_HORIZONS_S = (1, 10, 60)


@dataclass(frozen=True)
class PerformanceMetrics:
    total_pnl: float
    gross_pnl: float
    realized_pnl: float
    unrealized_pnl: float
    total_fees: float
    return_pct: float
    sharpe_ratio: float
    sortino_ratio: float
    calmar_ratio: float
    max_drawdown: float
    max_drawdown_pct: float
    max_drawdown_duration_s: float
    total_trades: int
    round_trips: int
    win_rate: float
    avg_trade_pnl: float
    fill_rate: float
    quote_hit_rate: float
    avg_fill_latency_ms: float
    avg_quote_lifetime_s: float
    spread_capture: float
    spread_capture_total: float
    time_weighted_inventory: float
    time_weighted_abs_inventory: float
    inventory_turnover: float
    traded_volume: float
    markout_1s: float
    markout_10s: float
    markout_60s: float
    markout_1s_bps: float
    markout_10s_bps: float
    markout_60s_bps: float
    adverse_1s_bps: float
    adverse_10s_bps: float
    adverse_60s_bps: float
    pnl_spread: float
    pnl_inventory: float
    final_position: float
    duration_s: float
    metrics_interval_s: float
    total_funding: float = 0.0      # USD-M funding paid (quote; < 0: received)
    # USD-M margin along the equity samples (NaN on spot / without brackets): the highest
    # maintenance margin / equity, and the first time [s from the start] it reached the
    # live kill limit (RiskConfig.max_margin_ratio) and 1.0 (Binance liquidates)
    max_margin_ratio: float = math.nan
    margin_limit_at_s: float = math.nan
    liquidation_at_s: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def equity_stats(ts_ns: np.ndarray, equity: np.ndarray, interval_s: float) -> dict[str, float]:
    """Sharpe, Sortino, Calmar and drawdown from an equity curve sampled at ts_ns."""
    out = dict(sharpe_ratio=math.nan, sortino_ratio=math.nan, calmar_ratio=math.nan, max_drawdown=0.0,
               max_drawdown_pct=0.0, max_drawdown_duration_s=0.0)
    ok = np.isfinite(equity)
    ts_ns, equity = ts_ns[ok], equity[ok]
    if len(equity) < 2:
        return out
    # drawdown on the full-resolution curve
    peak = np.maximum.accumulate(equity)
    dd = peak - equity
    i = int(np.argmax(dd))
    out["max_drawdown"] = float(dd[i])
    out["max_drawdown_pct"] = float(dd[i] / peak[i]) if peak[i] > 0 else math.nan
    if dd[i] > 0:
        start = int(np.flatnonzero(equity[: i + 1] == peak[i])[-1])
        rec = np.flatnonzero(equity[i:] >= peak[i])
        end = i + int(rec[0]) if len(rec) else len(equity) - 1
        out["max_drawdown_duration_s"] = (ts_ns[end] - ts_ns[start]) / 1e9
    # returns on a regular grid
    step = int(interval_s * 1e9)
    grid = np.arange(ts_ns[0], ts_ns[-1] + 1, step)
    if len(grid) < 3:
        return out
    idx = np.searchsorted(ts_ns, grid, side="right") - 1
    eq = equity[idx]
    rets = np.diff(eq) / eq[:-1]
    rets = rets[np.isfinite(rets)]
    if len(rets) < 2:
        return out
    n_per_year = SECONDS_PER_YEAR / interval_s
    mean = float(np.mean(rets))
    sd = float(np.std(rets, ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    out["sharpe_ratio"] = mean / sd * math.sqrt(n_per_year) if sd > 0 else math.nan
    out["sortino_ratio"] = mean / downside * math.sqrt(n_per_year) if downside > 0 else math.nan
    years = (ts_ns[-1] - ts_ns[0]) / 1e9 / SECONDS_PER_YEAR
    total_ret = eq[-1] / eq[0] - 1.0
    ann = (1.0 + total_ret) ** (1.0 / years) - 1.0 if years > 0 and total_ret > -1 else math.nan
    if out["max_drawdown_pct"] and out["max_drawdown_pct"] > 0 and math.isfinite(ann):
        out["calmar_ratio"] = ann / out["max_drawdown_pct"]
    return out


def fifo_round_trips(side: np.ndarray, px: np.ndarray, qty: np.ndarray, fee: np.ndarray) -> np.ndarray:
    """PnL of each closed lot-chunk, FIFO (prices and quantities already in price/base units)."""
    book: deque = deque()   # open chunks: [signed qty, price, fee per unit]
    closed: list[float] = []
    for s, p, q, f in zip(side.tolist(), px.tolist(), qty.tolist(), fee.tolist()):
        sign = 1.0 if s == 0 else -1.0
        fee_unit = f / q if q else 0.0
        remaining = q
        while remaining > 1e-15 and book and (book[0][0] > 0) != (sign > 0):
            chunk = book[0]
            take = min(remaining, abs(chunk[0]))
            entry_sign = 1.0 if chunk[0] > 0 else -1.0
            pnl = (p - chunk[1]) * take * entry_sign - (chunk[2] + fee_unit) * take
            closed.append(pnl)
            chunk[0] -= take * entry_sign
            remaining -= take
            if abs(chunk[0]) <= 1e-15:
                book.popleft()
        if remaining > 1e-15:
            book.append([sign * remaining, p, fee_unit])
    return np.asarray(closed, dtype=np.float64)


def compute_metrics(fills: pd.DataFrame, samples: pd.DataFrame, counters: dict, initial_capital: float,
                    metrics_interval_s: float = 60.0) -> PerformanceMetrics:
    """All metrics of a run. ``fills``/``samples``: the result frames (price units)."""
    n = len(fills)
    # columns as numpy arrays once (pandas indexing per use dominated sweeps)
    f_side = fills["side"].to_numpy() if n else np.zeros(0, np.int64)
    f_px = fills["price"].to_numpy(np.float64) if n else np.zeros(0)
    f_qty = fills["qty"].to_numpy(np.float64) if n else np.zeros(0)
    f_fee = fills["fee"].to_numpy(np.float64) if n else np.zeros(0)
    f_ts = fills["exch_ts"].to_numpy(np.int64) if n else np.zeros(0, np.int64)
    f_mid = fills["mid"].to_numpy(np.float64) if n else np.zeros(0)
    f_taker = fills["taker"].to_numpy() if n else np.zeros(0, np.int64)
    f_submit = fills["submit_ts"].to_numpy(np.int64) if n else np.zeros(0, np.int64)
    f_oid = fills["order_id"].to_numpy() if n else np.zeros(0, np.int64)
    m = len(samples)
    ts = samples["ts"].to_numpy(np.int64) if m else np.zeros(0, np.int64)
    equity = samples["equity"].to_numpy(np.float64) if m else np.zeros(0)
    mids = samples["mid"].to_numpy(np.float64) if m else np.zeros(0)
    s_pos = samples["position_qty"].to_numpy(np.float64) if m else np.zeros(0)
    final_equity = float(equity[-1]) if m else initial_capital
    total_pnl = final_equity - initial_capital
    fees_total = float(f_fee.sum())
    # average-cost realised PnL
    pos = 0.0
    cost = 0.0
    realized = 0.0
    for s_, p, q, f in zip(f_side.tolist(), f_px.tolist(), f_qty.tolist(), f_fee.tolist()):
        signed = q if s_ == 0 else -q
        if pos == 0 or (pos > 0) == (signed > 0):
            cost = (cost * abs(pos) + p * q) / (abs(pos) + q)
            pos += signed
        else:
            close = min(q, abs(pos))
            realized += (p - cost) * close * (1.0 if pos > 0 else -1.0)
            pos += signed
            if abs(pos) < 1e-15:
                pos, cost = 0.0, 0.0
            elif (pos > 0) == (signed > 0):   # flipped: the rest opens at this price
                cost = p
        realized -= f
    finite = np.isfinite(mids)
    last_mid = float(mids[finite][-1]) if finite.any() else math.nan
    unrealized = pos * (last_mid - cost) if pos and math.isfinite(last_mid) else 0.0
    st = equity_stats(ts, equity, metrics_interval_s)
    trips = fifo_round_trips(f_side, f_px, f_qty, f_fee) if n else np.zeros(0)
    submitted = counters.get("orders_submitted", 0)
    submitted_qty = counters.get("submitted_qty", 0.0)
    filled_qty = float(f_qty.sum())
    orders_filled = int(len(np.unique(f_oid))) if n else 0
    maker = f_taker == 0
    if maker.any():
        edge = np.where(f_side[maker] == 0, f_mid[maker] - f_px[maker], f_px[maker] - f_mid[maker])
        spread_capture = float(np.nanmean(edge))
        spread_total = float(np.nansum(edge * f_qty[maker]))
    else:
        spread_capture, spread_total = math.nan, 0.0
    marks: dict[int, tuple[float, float]] = {}
    adverse: dict[int, float] = {}
    sign_all = np.where(f_side == 0, 1.0, -1.0)
    for h in MARKOUT_HORIZONS_S:
        if n and m:
            j = np.searchsorted(ts, f_ts + h * 1_000_000_000, side="left")
            ok = j < m
            if ok.any():
                p = f_px[ok]
                mo = (mids[j[ok]] - p) * sign_all[ok]
                marks[h] = (float(np.nanmean(mo)), float(np.nanmean(mo / p * 1e4)))
                adv = (f_mid[ok] - mids[j[ok]]) * sign_all[ok] / p * 1e4
                adverse[h] = float(np.nanmean(adv)) if np.isfinite(adv).any() else math.nan
                continue
        marks[h] = (math.nan, math.nan)
        adverse[h] = math.nan
    # gross PnL = spread (each fill against its mid) + inventory (the rest), exactly
    funding = float(counters.get("funding", 0.0))
    gross = total_pnl + fees_total + funding
    if n:
        edge_all = np.where(np.isfinite(f_mid), (f_mid - f_px) * sign_all * f_qty, 0.0)
        pnl_spread = float(np.sum(edge_all))
    else:
        pnl_spread = 0.0
    pnl_inventory = gross - pnl_spread
    if m > 1:
        w = np.diff(ts).astype(np.float64)
        p_ = s_pos[:-1]
        twi = float(np.sum(p_ * w) / np.sum(w))
        twa = float(np.sum(np.abs(p_) * w) / np.sum(w))
        duration = (ts[-1] - ts[0]) / 1e9
    else:
        twi = twa = 0.0
        duration = 0.0
    lat = (f_ts - f_submit).astype(np.float64) / 1e6
    life_n = counters.get("lifetime_count", 0)
    return PerformanceMetrics(
        total_pnl=total_pnl,
        gross_pnl=gross,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        total_fees=fees_total,
        return_pct=_ratio(total_pnl, initial_capital) * 100.0,
        sharpe_ratio=st["sharpe_ratio"],
        sortino_ratio=st["sortino_ratio"],
        calmar_ratio=st["calmar_ratio"],
        max_drawdown=st["max_drawdown"],
        max_drawdown_pct=st["max_drawdown_pct"] * 100.0 if math.isfinite(st["max_drawdown_pct"]) else math.nan,
        max_drawdown_duration_s=st["max_drawdown_duration_s"],
        total_trades=n,
        round_trips=len(trips),
        win_rate=float(np.mean(trips > 0)) * 100.0 if len(trips) else math.nan,
        avg_trade_pnl=float(np.mean(trips)) if len(trips) else math.nan,
        fill_rate=_ratio(filled_qty, submitted_qty) * 100.0,
        quote_hit_rate=_ratio(orders_filled, submitted) * 100.0,
        avg_fill_latency_ms=float(np.mean(lat)) if len(lat) else math.nan,
        avg_quote_lifetime_s=counters.get("lifetime_sum_ns", 0) / life_n / 1e9 if life_n else math.nan,
        spread_capture=spread_capture,
        spread_capture_total=spread_total,
        time_weighted_inventory=twi,
        time_weighted_abs_inventory=twa,
        inventory_turnover=_ratio(filled_qty, twa),
        traded_volume=filled_qty,
        markout_1s=marks[1][0], markout_10s=marks[10][0], markout_60s=marks[60][0],
        markout_1s_bps=marks[1][1], markout_10s_bps=marks[10][1], markout_60s_bps=marks[60][1],
        adverse_1s_bps=adverse[1], adverse_10s_bps=adverse[10], adverse_60s_bps=adverse[60],
        pnl_spread=pnl_spread, pnl_inventory=pnl_inventory,
        final_position=float(s_pos[-1]) if m else 0.0,
        duration_s=duration,
        metrics_interval_s=metrics_interval_s,
        total_funding=funding,
    )
