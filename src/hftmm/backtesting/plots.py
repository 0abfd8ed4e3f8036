"""Charts of a backtest: equity, inventory and drawdown (PNG, matplotlib Agg)."""
from __future__ import annotations

import numpy as np


def plot_result(result, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = result.timeseries
    t = ts["time"].dt.tz_convert(None) if hasattr(ts["time"], "dt") else ts["time"]
    eq = ts["equity"].to_numpy()
    peak = np.maximum.accumulate(np.where(np.isfinite(eq), eq, -np.inf))
    dd = np.where(np.isfinite(eq), eq - peak, np.nan)
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 2, 1.5]})
    ax = axes[0]
    ax.plot(t, ts["pnl"], color="tab:blue", lw=1.0, label="PnL (equity - initial capital)")
    ax.set_ylabel("PnL (quote)")
    ax.legend(loc="upper left")
    ax.set_title(f"{result.config.symbol} {result.config.model.upper()} gamma={result.config.gamma} "
                 f"T={result.config.time_horizon}s -- {result.data}")
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(t, ts["mid"], color="black", lw=0.7, label="mid")
    ax.plot(t, ts["bid_quote"], color="tab:green", lw=0.5, alpha=0.7, label="our bid")
    ax.plot(t, ts["ask_quote"], color="tab:red", lw=0.5, alpha=0.7, label="our ask")
    tr = result.trades
    if len(tr):
        buys, sells = tr[tr["side"] == 0], tr[tr["side"] == 1]
        ax.scatter(buys["time"].dt.tz_convert(None), buys["price"], marker="^", s=3, alpha=0.35, color="tab:green", zorder=3)
        ax.scatter(sells["time"].dt.tz_convert(None), sells["price"], marker="v", s=3, alpha=0.35, color="tab:red", zorder=3)
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    ax.fill_between(t, ts["position_qty"], step="post", color="tab:purple", alpha=0.5)
    ax.set_ylabel("inventory (base)")
    ax.grid(alpha=0.3)
    ax = axes[3]
    ax.fill_between(t, dd, 0, color="tab:red", alpha=0.5)
    ax.set_ylabel("drawdown")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
