"""Pure numeric helpers behind the dashboard's charts (numpy/pandas, no I/O).

Conventions: times are ns since the epoch (int64), prices in price units,
quantities in base units; sides are +1 (buy) / -1 (sell). Ratios follow
:mod:`hftmm.backtesting.metrics` (simple returns on equity, annualised for a
24/7 market).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.0 * 86400.0
NS = 1_000_000_000


def side_sign(side: Sequence) -> np.ndarray:
    """+1 for buys, -1 for sells, from 0/1 codes, "buy"/"sell" or "BUY"/"SELL"."""
    s = pd.Series(side)
    if s.dtype.kind in "iuf":
        return np.where(s.to_numpy() == 0, 1.0, -1.0)
    low = s.astype(str).str.lower()
    return np.where(low.str.startswith("b") | (low == "0"), 1.0, -1.0)


def downsample(df: pd.DataFrame, max_points: int = 3000) -> pd.DataFrame:
    """Every k-th row (plus the last) so that at most ``max_points`` remain;
    the browser draws SVG, so long series are thinned before plotting."""
    n = len(df)
    if n <= max_points or max_points <= 0:
        return df
    step = int(math.ceil(n / max_points))
    idx = np.arange(0, n, step)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return df.iloc[idx]


def cumulative_depth(bids: Sequence[Sequence[float]], asks: Sequence[Sequence[float]]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bid prices descending, cumulative bid qty, ask prices ascending, cumulative
    ask qty) from ``[[price, qty], ...]`` levels in any order; cumulative
    quantities grow away from the touch."""
    b = np.asarray(bids, dtype=float).reshape(-1, 2) if len(bids) else np.zeros((0, 2))
    a = np.asarray(asks, dtype=float).reshape(-1, 2) if len(asks) else np.zeros((0, 2))
    b = b[np.argsort(-b[:, 0], kind="stable")]
    a = a[np.argsort(a[:, 0], kind="stable")]
    return b[:, 0], np.cumsum(b[:, 1]), a[:, 0], np.cumsum(a[:, 1])


def drawdown(equity: Sequence[float]) -> np.ndarray:
    """Equity minus its running peak (<= 0; NaN where equity is NaN), quote units."""
    eq = np.asarray(equity, dtype=float)
    peak = np.fmax.accumulate(np.where(np.isfinite(eq), eq, np.nan)) if len(eq) else eq
    return np.where(np.isfinite(eq), eq - peak, np.nan)


def resample_last(ts_ns: np.ndarray, values: np.ndarray, interval_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The last value at or before each point of a regular grid (``interval_s``
    apart, from the first time): (grid ns, values)."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if len(ts_ns) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    step = max(int(interval_s * NS), 1)
    grid = np.arange(ts_ns[0], ts_ns[-1] + 1, step, dtype=np.int64)
    idx = np.searchsorted(ts_ns, grid, side="right") - 1
    return grid, values[idx]


def rolling_sharpe(ts_ns: Sequence[int], equity: Sequence[float], interval_s: float = 60.0,
                   window: int = 30) -> pd.DataFrame:
    """Annualised Sharpe ratio over a rolling window of ``window`` periods of
    ``interval_s``: mean / standard deviation of the equity changes per period,
    times sqrt(periods per year). Equity changes rather than returns, so that
    an equity counted from zero (a live session's PnL) works too; with capital
    behind it, equity changes / equity = returns up to the equity's small
    relative variation. Columns ``ts`` (ns, end of window) and ``sharpe``; the
    first ``window - 1`` periods have no value (dropped)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    eq = np.asarray(equity, dtype=float)
    ok = np.isfinite(eq)
    ts, eq = ts[ok], eq[ok]
    grid, e = resample_last(ts, eq, interval_s)
    if len(e) < window + 1 or window < 2:
        return pd.DataFrame({"ts": np.zeros(0, np.int64), "sharpe": np.zeros(0)})
    r = pd.Series(np.diff(e))
    mean = r.rolling(window).mean()
    sd = r.rolling(window).std(ddof=1)
    sharpe = (mean / sd.where(sd > 0)) * math.sqrt(SECONDS_PER_YEAR / interval_s)
    out = pd.DataFrame({"ts": grid[1:], "sharpe": sharpe.to_numpy()})
    return out.iloc[window - 1:].reset_index(drop=True)


def markout_curve(fill_ts: Sequence[int], fill_px: Sequence[float], fill_side: Sequence,
                  mid_ts: Sequence[int], mid: Sequence[float],
                  horizons_s: Sequence[float] = (0.1, 0.5, 1, 2, 5, 10, 30, 60)) -> pd.DataFrame:
    """Mean mark-out per horizon and side: (mid(t + h) - price) x side in basis
    points of the price, mid(t + h) the first mid at or after t + h (fills
    whose horizon runs past the data are left out). Rows: horizon_s, side
    ("buy", "sell", "all"), markout_bps, n."""
    f_ts = np.asarray(fill_ts, dtype=np.int64)
    f_px = np.asarray(fill_px, dtype=float)
    sgn = side_sign(fill_side) if len(f_ts) else np.zeros(0)
    m_ts = np.asarray(mid_ts, dtype=np.int64)
    m = np.asarray(mid, dtype=float)
    ok = np.isfinite(m)
    m_ts, m = m_ts[ok], m[ok]
    rows = []
    if len(f_ts) and len(m_ts):
        for h in horizons_s:
            j = np.searchsorted(m_ts, f_ts + int(h * NS), side="left")
            valid = j < len(m_ts)
            mo = np.full(len(f_ts), np.nan)
            mo[valid] = (m[j[valid]] - f_px[valid]) * sgn[valid] / f_px[valid] * 1e4
            for name, sel in (("buy", sgn > 0), ("sell", sgn < 0), ("all", np.ones(len(f_ts), bool))):
                v = mo[sel & valid]
                rows.append(dict(horizon_s=float(h), side=name, markout_bps=float(np.mean(v)) if len(v) else np.nan,
                                 n=int(len(v))))
    return pd.DataFrame(rows, columns=["horizon_s", "side", "markout_bps", "n"])


def infer_tick(prices: Sequence[float]) -> Optional[float]:
    """The price grid's step guessed from the smallest gap between distinct
    prices (rounded to 10 significant digits); None with fewer than 2 prices."""
    p = np.unique(np.round(np.asarray(prices, dtype=float), 10))
    p = p[np.isfinite(p)]
    if len(p) < 2:
        return None
    gap = float(np.min(np.diff(p)))
    return float(f"{gap:.10g}") if gap > 0 else None


def fill_levels(fill_px: Sequence[float], fill_mid: Sequence[float], fill_side: Sequence,
                tick: Optional[float] = None) -> pd.DataFrame:
    """Fills counted by side and distance from the mid at the fill, in ticks
    (half-tick resolution; positive = on our side of the mid, i.e. a buy below
    / a sell above). Rows: side, level_ticks, fills."""
    px = np.asarray(fill_px, dtype=float)
    mid = np.asarray(fill_mid, dtype=float)
    if not len(px):
        return pd.DataFrame(columns=["side", "level_ticks", "fills"])
    sgn = side_sign(fill_side)
    tick = tick or infer_tick(np.concatenate([px, mid[np.isfinite(mid)]])) or 1.0
    lvl = np.round((mid - px) * sgn / tick * 2.0) / 2.0
    df = pd.DataFrame({"side": np.where(sgn > 0, "buy", "sell"), "level_ticks": lvl})
    df = df[np.isfinite(df["level_ticks"])]
    return df.groupby(["side", "level_ticks"]).size().rename("fills").reset_index()


def trade_rate(ts_ns: Sequence[int], cumulative: Sequence[float]) -> np.ndarray:
    """Per-second rate of a cumulative counter (e.g. market trades seen): the
    first difference over the time step; NaN for the first row and resets."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    c = np.asarray(cumulative, dtype=float)
    out = np.full(len(ts), np.nan)
    if len(ts) > 1:
        dt = np.diff(ts) / NS
        dc = np.diff(c)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where((dt > 0) & (dc >= 0), dc / dt, np.nan)
        out[1:] = r
    return out


def realized_vol_grid(ts_ns: Sequence[int], mid: Sequence[float], bucket_s: float = 60.0,
                      horizons_s: Sequence[float] = (1, 5, 15, 60)) -> pd.DataFrame:
    """Realised volatility per time bucket and return horizon: the mid on a 1 s
    grid (sub-second horizons on a finer one), log returns over each horizon
    (overlapping) inside each bucket, their RMS scaled to annualised percent.
    Index: bucket start (UTC datetime); columns: horizon in s. Equal values
    across horizons = a random walk; a higher short-horizon value = bid-ask
    bounce / noise."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    m = np.asarray(mid, dtype=float)
    ok = np.isfinite(m) & (m > 0)
    ts, m = ts[ok], m[ok]
    horizons = [float(h) for h in horizons_s]
    if len(ts) < 3 or not horizons:
        return pd.DataFrame(columns=horizons)
    base = min(1.0, min(horizons))
    grid, g = resample_last(ts, m, base)
    lg = np.log(g)
    bucket = ((grid - grid[0]) // int(bucket_s * NS)).astype(np.int64)
    out = {}
    for h in horizons:
        k = max(int(round(h / base)), 1)
        if len(lg) <= k:
            out[h] = pd.Series(dtype=float)
            continue
        r = lg[k:] - lg[:-k]
        b = bucket[k:]
        s = pd.Series(r * r).groupby(b).mean()
        out[h] = np.sqrt(s / h * SECONDS_PER_YEAR) * 100.0
    df = pd.DataFrame(out)
    df.index = pd.to_datetime(grid[0] + df.index.to_numpy() * int(bucket_s * NS), unit="ns", utc=True)
    df.index.name = "bucket"
    return df


def vol_by_time_of_day(ts_ns: Sequence[int], mid: Sequence[float], bucket_minutes: int = 60,
                       return_s: float = 60.0) -> pd.DataFrame:
    """Realised volatility (annualised %, from ``return_s`` log returns of the
    mid) by UTC day (rows, "YYYY-MM-DD") and time of day (columns, bucket start
    "HH:MM")."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    m = np.asarray(mid, dtype=float)
    ok = np.isfinite(m) & (m > 0)
    ts, m = ts[ok], m[ok]
    if len(ts) < 3:
        return pd.DataFrame()
    grid, g = resample_last(ts, m, return_s)
    if len(g) < 2:
        return pd.DataFrame()
    r = np.diff(np.log(g))
    t = pd.to_datetime(grid[1:], unit="ns", utc=True)
    minutes = (t.hour * 60 + t.minute) // bucket_minutes * bucket_minutes
    df = pd.DataFrame({"day": t.strftime("%Y-%m-%d"),
                       "tod": [f"{mm // 60:02d}:{mm % 60:02d}" for mm in minutes], "r2": r * r})
    table = df.pivot_table(index="day", columns="tod", values="r2", aggfunc="mean")
    return np.sqrt(table / return_s * SECONDS_PER_YEAR) * 100.0
