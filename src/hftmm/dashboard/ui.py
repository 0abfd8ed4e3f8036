"""Streamlit pieces shared by the pages: settings, number formatting, and the
run view (the Performance page's charts, reused for backtest results).

Settings come from the environment (``hftmm dashboard`` sets them):
``HFTMM_STATE_DB`` (the live state database), ``HFTMM_RESULTS`` (saved
backtests, sweeps, job folders), ``HFTMM_DATA`` (recorded and converted data).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd
import streamlit as st

from hftmm.dashboard import analytics as an
from hftmm.dashboard import figures as fg
from hftmm.dashboard.sources import RunData

ENV_STATE_DB = "HFTMM_STATE_DB"
ENV_RESULTS = "HFTMM_RESULTS"
ENV_DATA = "HFTMM_DATA"


@dataclass(frozen=True)
class Settings:
    state_db: str
    results: str
    data: str


def settings() -> Settings:
    """Paths from the environment (defaults: ./state.db, ./runs, ./data)."""
    return Settings(os.path.abspath(os.environ.get(ENV_STATE_DB, "state.db")),
                    os.path.abspath(os.environ.get(ENV_RESULTS, "runs")),
                    os.path.abspath(os.environ.get(ENV_DATA, "data")))


def fmt(x: Any, spec: str = "{:,.2f}", none: str = "–") -> str:
    """A number for display; None/NaN/inf -> ``none``."""
    if x is None:
        return none
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    return none if not math.isfinite(xf) else spec.format(xf)


def chart(fig, key: Optional[str] = None) -> None:
    """A Plotly figure at full width."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def nice_interval(duration_s: float, points: int = 300) -> float:
    """A round resampling interval (s) giving about ``points`` returns over ``duration_s``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration_s / step <= points:
            return float(step)
    return 3600.0


def run_summary(run: RunData) -> None:
    """Headline numbers of a run as metric tiles."""
    m = run.metrics
    cols = st.columns(6)
    cols[0].metric("Total PnL", fmt(m.get("total_pnl"), "{:,.4f}"))
    cols[1].metric("Sharpe", fmt(m.get("sharpe_ratio")))
    cols[2].metric("Max drawdown", fmt(m.get("max_drawdown"), "{:,.4f}"))
    cols[3].metric("Fills", fmt(m.get("total_trades", len(run.fills)), "{:,.0f}"))
    cols[4].metric("Fill rate %", fmt(m.get("fill_rate")))
    cols[5].metric("Mark-out 10s (bps)", fmt(m.get("markout_10s_bps")))


def run_view(run: RunData, key: str) -> None:
    """Equity, rolling Sharpe, drawdown, inventory, price with quotes and
    fills, and the trade analytics of one run."""
    ts, fills = run.timeseries, run.fills
    run_summary(run)
    duration = (ts["ts"].iloc[-1] - ts["ts"].iloc[0]) / 1e9 if len(ts) > 1 else 0.0
    c1, c2 = st.columns(2)
    with c1:
        chart(fg.equity_chart(ts), key=f"{key}-equity")
        chart(fg.drawdown_chart(ts), key=f"{key}-dd")
    with c2:
        opts = [1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]
        auto = nice_interval(duration)
        if auto not in opts:
            opts = sorted(set(opts) | {auto})
        a, b = st.columns(2)
        interval = a.selectbox("Sharpe return interval (s)", opts, index=opts.index(auto), key=f"{key}-rs-int")
        window = b.number_input("window (returns)", 5, 10_000, 30, key=f"{key}-rs-win")
        rs = an.rolling_sharpe(ts["ts"].to_numpy(), ts["equity"].to_numpy(float), interval, int(window)) \
            if len(ts) else None
        chart(fg.rolling_sharpe_chart(rs), key=f"{key}-rs")
        chart(fg.inventory_chart(ts), key=f"{key}-inv")
    chart(fg.price_chart(ts, fills), key=f"{key}-price")
    st.subheader("Trade analytics")
    c1, c2, c3 = st.columns(3)
    with c1:
        lv = an.fill_levels(fills["price"], fills["mid"], fills["side"], run.tick_size) if len(fills) else None
        chart(fg.fills_by_level_chart(lv), key=f"{key}-levels")
    with c2:
        mo = an.markout_curve(fills["ts"], fills["price"], fills["side"], ts["ts"], ts["mid"]) \
            if len(fills) and len(ts) else None
        chart(fg.markout_chart(mo), key=f"{key}-markouts")
    with c3:
        chart(fg.fill_latency_histogram(fills["latency_ms"] if "latency_ms" in fills else None),
              key=f"{key}-latency")
    with st.expander("Fills"):
        st.dataframe(fills.tail(500), width="stretch", hide_index=True)
    with st.expander("Metrics and config"):
        c1, c2 = st.columns(2)
        c1.json(run.metrics, expanded=False)
        c2.json(run.config, expanded=False)


def job_row(job, cancel_key: str) -> None:
    """One background job: label, progress bar, message; a cancel button while active."""
    from hftmm.dashboard import jobs

    c1, c2 = st.columns([5, 1])
    with c1:
        text = f"**{job.id}** — {job.state}" + (f" — {job.message}" if job.message and job.message != job.state else "")
        st.progress(min(max(job.fraction, 0.0), 1.0), text=text)
        if job.state in ("failed", "died") and job.error:
            st.code(job.error[-1500:], language="text")
    with c2:
        if job.active and st.button("Cancel", key=cancel_key):
            jobs.cancel(job)


def frame_or_empty(df: Optional[pd.DataFrame]) -> pd.DataFrame:
    return df if df is not None else pd.DataFrame()
