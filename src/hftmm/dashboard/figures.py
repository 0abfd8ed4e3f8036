"""Plotly figures of the dashboard: pure functions, data in, ``go.Figure`` out.

No Streamlit and no I/O here: each function takes plain data (DataFrames with
a ``time`` column of UTC datetimes, ``[[price, qty], ...]`` levels, arrays),
and returns a figure; empty or missing input gives a figure with a "no data"
annotation, never an exception. Long series are thinned to ``max_points``
rows before drawing (the browser renders SVG). Units are in the axis titles.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hftmm.dashboard import analytics as an

BID = "#2ca02c"
ASK = "#d62728"
MID = "#444444"
ACCENT = "#1f77b4"
PURPLE = "#9467bd"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_POINTS = 3000
_MARGIN = dict(l=10, r=10, t=40, b=10)


def _layout(fig: go.Figure, title: str, height: int = 320, hovermode: object = "x unified",
            legend_below: bool = False, **kw) -> go.Figure:
    """Title top left, legend top right (or below the plot: long legends)."""
    legend = dict(orientation="h", yanchor="top", y=-0.16, xanchor="left", x=0.0) if legend_below else \
        dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0)
    margin = dict(_MARGIN, b=10 + (40 if legend_below else 0))
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=14)), height=height, margin=margin,
                      legend=legend, hovermode=hovermode, **kw)
    return fig


def no_data(title: str, message: str = "no data", height: int = 320) -> go.Figure:
    """An empty figure with ``message`` in the middle."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=16, color="#888"),
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height, hovermode=False)


def is_no_data(fig: go.Figure) -> bool:
    """True for a :func:`no_data` figure."""
    return not fig.data and any(a.text and "no data" in a.text for a in fig.layout.annotations)


def _has(df: Optional[pd.DataFrame], *cols: str) -> bool:
    return df is not None and len(df) > 0 and all(c in df.columns and df[c].notna().any() for c in cols)


# --------------------------------------------------------------------------- live


def depth_chart(bids: Sequence[Sequence[float]], asks: Sequence[Sequence[float]],
                quotes: Optional[tuple[Optional[float], Optional[float]]] = None,
                title: str = "Order book depth") -> go.Figure:
    """Cumulative bid and ask quantity (base units) against price; ``quotes``
    (our bid, our ask) as dashed lines."""
    bp, bc, ap, ac = an.cumulative_depth(bids, asks)
    if not len(bp) and not len(ap):
        return no_data(title)
    fig = go.Figure()
    if len(bp):   # ascending x; depth at x counts bids at prices >= x
        fig.add_trace(go.Scatter(x=bp[::-1], y=bc[::-1], name="bids", mode="lines", line_shape="vh",
                                 fill="tozeroy", line=dict(color=BID), fillcolor="rgba(44,160,44,0.3)"))
    if len(ap):
        fig.add_trace(go.Scatter(x=ap, y=ac, name="asks", mode="lines", line_shape="hv",
                                 fill="tozeroy", line=dict(color=ASK), fillcolor="rgba(214,39,40,0.3)"))
    if len(bp) and len(ap):
        fig.add_vline(x=(bp[0] + ap[0]) / 2, line=dict(color=MID, dash="dot", width=1))
    for px, color, name in zip(quotes or (), (BID, ASK), ("our bid", "our ask")):
        if px is not None and np.isfinite(px):
            fig.add_vline(x=px, line=dict(color=color, dash="dash", width=2),
                          annotation_text=name, annotation_position="top")
    fig.update_xaxes(title_text="price")
    fig.update_yaxes(title_text="cumulative qty (base)")
    return _layout(fig, title, hovermode="closest")


def price_chart(status: Optional[pd.DataFrame], fills: Optional[pd.DataFrame] = None,
                title: str = "Mid, our quotes and fills", max_points: int = MAX_POINTS) -> go.Figure:
    """Mid (and best bid/ask when given) with our bid/ask quotes as steps and
    fills as triangles. ``status``: time, mid[, best_bid, best_ask, bid_quote,
    ask_quote]; ``fills``: time, price, side."""
    if not _has(status, "time", "mid"):
        return no_data(title)
    s = an.downsample(status, max_points)
    fig = go.Figure()
    for col, name, color, dash in (("best_bid", "best bid", BID, "dot"), ("best_ask", "best ask", ASK, "dot")):
        if _has(s, col):
            fig.add_trace(go.Scatter(x=s["time"], y=s[col], name=name, mode="lines",
                                     line=dict(color=color, width=1, dash=dash), opacity=0.5))
    fig.add_trace(go.Scatter(x=s["time"], y=s["mid"], name="mid", mode="lines", line=dict(color=MID, width=1.5)))
    for col, name, color in (("bid_quote", "our bid", BID), ("ask_quote", "our ask", ASK)):
        if _has(s, col):
            fig.add_trace(go.Scatter(x=s["time"], y=s[col], name=name, mode="lines", line_shape="hv",
                                     line=dict(color=color, width=2)))
    if _has(fills, "time", "price", "side"):
        f = an.downsample(fills, max_points)
        sgn = an.side_sign(f["side"])
        for sel, name, color, symbol in ((sgn > 0, "buy fills", BID, "triangle-up"),
                                         (sgn < 0, "sell fills", ASK, "triangle-down")):
            if sel.any():
                ff = f[sel]
                fig.add_trace(go.Scatter(x=ff["time"], y=ff["price"], name=name, mode="markers",
                                         marker=dict(color=color, symbol=symbol, size=9,
                                                     line=dict(color="white", width=1))))
    fig.update_yaxes(title_text="price")
    return _layout(fig, title, 420, legend_below=True)


def indicators_chart(status: Optional[pd.DataFrame], title: str = "Spread, volatility and trade activity",
                     max_points: int = MAX_POINTS) -> go.Figure:
    """Three stacked panels over time: spread (price units), sigma (price per
    sqrt(s)), market trades per second. ``status``: time, spread, sigma, trade_rate
    (any missing column leaves its panel empty)."""
    if not _has(status, "time"):
        return no_data(title)
    s = an.downsample(status, max_points)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("spread (price)", "sigma (price/√s)", "market trades / s"))
    for row, (col, color) in enumerate((("spread", ACCENT), ("sigma", PURPLE), ("trade_rate", "#ff7f0e")), 1):
        if col in s.columns:
            fig.add_trace(go.Scatter(x=s["time"], y=s[col], name=col, mode="lines", line=dict(color=color, width=1.3),
                                     showlegend=False), row=row, col=1)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, 420)


def latency_chart(status: Optional[pd.DataFrame], title: str = "Feed and order latency",
                  max_points: int = MAX_POINTS) -> go.Figure:
    """Feed latency, feed age and order round trip (ms) over time."""
    cols = [c for c in ("feed_latency_ms", "feed_age_ms", "order_rtt_ms") if _has(status, c)]
    if not _has(status, "time") or not cols:
        return no_data(title)
    s = an.downsample(status, max_points)
    fig = go.Figure()
    for c, color in zip(cols, (ACCENT, "#7f7f7f", "#ff7f0e")):
        fig.add_trace(go.Scatter(x=s["time"], y=s[c], name=c.replace("_ms", ""), mode="lines",
                                 line=dict(color=color, width=1.3)))
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    return _layout(fig, title, 280)


def vol_heatmap(table: Optional[pd.DataFrame], title: str = "Realised volatility",
                x_title: str = "horizon (s)", y_title: str = "time", colorbar: str = "ann. vol %") -> go.Figure:
    """A heatmap of a table (rows -> y, columns -> x), e.g.
    :func:`analytics.realized_vol_grid` (time bucket x horizon) or
    :func:`analytics.vol_by_time_of_day` (day x time of day)."""
    if table is None or table.size == 0 or not np.isfinite(table.to_numpy(dtype=float)).any():
        return no_data(title)
    y = table.index
    if isinstance(y, pd.DatetimeIndex):
        y = y.strftime("%Y-%m-%d %H:%M:%S")
    x = [f"{c:g}" if isinstance(c, (int, float, np.floating)) else str(c) for c in table.columns]
    z = table.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(z=z, x=x, y=[str(v) for v in y], colorscale="Viridis",
                               colorbar=dict(title=dict(text=colorbar, side="right")),
                               hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{z:.3g}}<extra></extra>"))
    fig.update_xaxes(title_text=x_title, type="category")
    fig.update_yaxes(title_text=y_title, type="category", autorange="reversed")
    return _layout(fig, title, 340, hovermode="closest")


# --------------------------------------------------------------------------- performance


def equity_chart(ts: Optional[pd.DataFrame], title: str = "Equity (PnL)", max_points: int = MAX_POINTS
                 ) -> go.Figure:
    """PnL (quote currency) over time. ``ts``: time and pnl (or equity)."""
    col = "pnl" if _has(ts, "time", "pnl") else "equity" if _has(ts, "time", "equity") else None
    if col is None:
        return no_data(title)
    s = an.downsample(ts, max_points)
    fig = go.Figure(go.Scatter(x=s["time"], y=s[col], name=col, mode="lines", line=dict(color=ACCENT, width=1.5),
                               fill="tozeroy" if col == "pnl" else None, fillcolor="rgba(31,119,180,0.12)"))
    fig.update_yaxes(title_text=f"{col} (quote)")
    return _layout(fig, title)


def rolling_sharpe_chart(rs: Optional[pd.DataFrame], title: str = "Rolling Sharpe (annualised)",
                         max_points: int = MAX_POINTS) -> go.Figure:
    """``rs``: ts (ns) and sharpe, from :func:`analytics.rolling_sharpe`."""
    if not _has(rs, "ts", "sharpe"):
        return no_data(title, "no data (run shorter than one window)")
    s = an.downsample(rs, max_points)
    fig = go.Figure(go.Scatter(x=pd.to_datetime(s["ts"], unit="ns", utc=True), y=s["sharpe"], name="Sharpe",
                               mode="lines", line=dict(color=PURPLE, width=1.5)))
    fig.add_hline(y=0, line=dict(color="#888", width=1))
    fig.update_yaxes(title_text="Sharpe")
    return _layout(fig, title)


def drawdown_chart(ts: Optional[pd.DataFrame], title: str = "Drawdown", max_points: int = MAX_POINTS) -> go.Figure:
    """Equity minus its running peak (quote currency, <= 0)."""
    if not _has(ts, "time", "equity"):
        return no_data(title)
    dd = an.drawdown(ts["equity"].to_numpy(float))
    s = an.downsample(pd.DataFrame({"time": ts["time"].to_numpy(), "dd": dd}), max_points)
    fig = go.Figure(go.Scatter(x=s["time"], y=s["dd"], name="drawdown", mode="lines", fill="tozeroy",
                               line=dict(color=ASK, width=1), fillcolor="rgba(214,39,40,0.3)"))
    fig.update_yaxes(title_text="drawdown (quote)")
    return _layout(fig, title)


def inventory_chart(ts: Optional[pd.DataFrame], title: str = "Inventory", max_points: int = MAX_POINTS
                    ) -> go.Figure:
    """Position (base units) over time, as steps."""
    if not _has(ts, "time", "position"):
        return no_data(title)
    s = an.downsample(ts, max_points)
    fig = go.Figure(go.Scatter(x=s["time"], y=s["position"], name="position", mode="lines", line_shape="hv",
                               fill="tozeroy", line=dict(color=PURPLE, width=1), fillcolor="rgba(148,103,189,0.3)"))
    fig.update_yaxes(title_text="position (base)")
    return _layout(fig, title)


def fills_by_level_chart(levels: Optional[pd.DataFrame], title: str = "Fills by side and level") -> go.Figure:
    """Grouped bars: fills per distance from the mid (ticks) and side; from
    :func:`analytics.fill_levels`."""
    if not _has(levels, "side", "level_ticks", "fills"):
        return no_data(title)
    fig = go.Figure()
    for side, color in (("buy", BID), ("sell", ASK)):
        d = levels[levels["side"] == side].sort_values("level_ticks")
        if len(d):
            fig.add_trace(go.Bar(x=d["level_ticks"], y=d["fills"], name=side, marker_color=color))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="distance from mid at fill (ticks, + = passive side)")
    fig.update_yaxes(title_text="fills")
    return _layout(fig, title, hovermode="closest")


def markout_chart(markouts: Optional[pd.DataFrame], title: str = "Mark-outs") -> go.Figure:
    """Mean mark-out (bps, + = the mid moved our way) against horizon, per side;
    from :func:`analytics.markout_curve`."""
    if not _has(markouts, "horizon_s", "side", "markout_bps"):
        return no_data(title)
    fig = go.Figure()
    for side, color in (("buy", BID), ("sell", ASK), ("all", MID)):
        d = markouts[markouts["side"] == side].sort_values("horizon_s")
        if len(d):
            fig.add_trace(go.Scatter(x=d["horizon_s"], y=d["markout_bps"], name=side, mode="lines+markers",
                                     line=dict(color=color, width=2.5 if side == "all" else 1.5)))
    fig.add_hline(y=0, line=dict(color="#888", width=1))
    hs = sorted(markouts["horizon_s"].unique())
    fig.update_xaxes(title_text="horizon (s)", type="log", tickvals=hs, ticktext=[f"{h:g}" for h in hs])
    fig.update_yaxes(title_text="mark-out (bps)")
    return _layout(fig, title, hovermode="closest")


def fill_latency_histogram(latency_ms: Optional[Sequence[float]], title: str = "Fill latency",
                           nbins: int = 40) -> go.Figure:
    """Histogram of order submission -> fill times (ms)."""
    x = np.asarray([] if latency_ms is None else latency_ms, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return no_data(title)
    fig = go.Figure(go.Histogram(x=x, nbinsx=nbins, marker_color=ACCENT, name="fills"))
    fig.add_vline(x=float(np.median(x)), line=dict(color=MID, dash="dash"),
                  annotation_text=f"median {np.median(x):.3g} ms", annotation_position="top right")
    fig.update_xaxes(title_text="submit -> fill (ms)")
    fig.update_yaxes(title_text="fills")
    return _layout(fig, title, hovermode="closest")


# --------------------------------------------------------------------------- backtesting


def sweep_heatmap(results: Optional[pd.DataFrame], metric: str, x: str, y: str, agg: str = "mean",
                  title: Optional[str] = None) -> go.Figure:
    """``metric`` of a sweep's ok rows aggregated (``agg``) over the other
    parameters, on a grid of parameters ``x`` and ``y``; cells annotated."""
    title = title or f"{metric} ({agg}) by {x} x {y}"
    if results is None or not len(results) or any(c not in results.columns for c in (metric, x, y)):
        return no_data(title)
    ok = results[results["status"] == "ok"] if "status" in results.columns else results
    ok = ok.assign(**{metric: pd.to_numeric(ok[metric], errors="coerce")})
    table = ok.pivot_table(index=y, columns=x, values=metric, aggfunc=agg) if len(ok) else pd.DataFrame()
    if table.size == 0 or not np.isfinite(table.to_numpy(dtype=float)).any():
        return no_data(title)
    z = table.to_numpy(dtype=float)
    lab = lambda v: f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v)  # noqa: E731
    text = [[("" if not np.isfinite(v) else f"{v:.3g}") for v in row] for row in z]
    scale = "RdYlGn_r" if metric in ("max_drawdown", "max_drawdown_pct") else "RdYlGn"
    fig = go.Figure(go.Heatmap(z=z, x=[lab(v) for v in table.columns], y=[lab(v) for v in table.index],
                               text=text, texttemplate="%{text}", colorscale=scale,
                               colorbar=dict(title=dict(text=metric, side="right")),
                               hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{metric} %{{z:.4g}}<extra></extra>"))
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    return _layout(fig, title, 360, hovermode="closest")


def run_comparison_chart(runs: Mapping[str, pd.DataFrame], title: str = "Runs compared",
                         max_points: int = MAX_POINTS) -> go.Figure:
    """PnL (top) and drawdown (bottom) of several runs over time, one colour
    each. ``runs``: name -> DataFrame with time, pnl, equity."""
    runs = {k: v for k, v in runs.items() if _has(v, "time", "pnl")}
    if not runs:
        return no_data(title)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35],
                        subplot_titles=("PnL (quote)", "drawdown (quote)"))
    for i, (name, ts) in enumerate(runs.items()):
        s = an.downsample(ts, max_points)
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=s["time"], y=s["pnl"], name=name, mode="lines", legendgroup=name,
                                 line=dict(color=color, width=1.5)), row=1, col=1)
        eq = s["equity"] if "equity" in s.columns else s["pnl"]
        fig.add_trace(go.Scatter(x=s["time"], y=an.drawdown(eq.to_numpy(float)), name=name, mode="lines",
                                 legendgroup=name, showlegend=False, line=dict(color=color, width=1)), row=2, col=1)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, 460)


def metrics_bar_chart(table: Optional[pd.DataFrame], metrics: Sequence[str], title: str = "Metrics by run"
                      ) -> go.Figure:
    """One small bar panel per metric, one bar (colour) per run (``table``:
    index = run name, columns include ``metrics``)."""
    metrics = [m for m in metrics if table is not None and m in table.columns]
    if table is None or not len(table) or not metrics:
        return no_data(title)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.06)
    for i, run in enumerate(table.index):
        for j, m in enumerate(metrics, 1):
            fig.add_trace(go.Bar(x=[str(run)], y=[pd.to_numeric(table.loc[run, m], errors="coerce")], name=str(run),
                                 legendgroup=str(run), showlegend=j == 1, marker_color=PALETTE[i % len(PALETTE)]),
                          row=1, col=j)
    fig.update_xaxes(showticklabels=False)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, 280, hovermode="closest")
