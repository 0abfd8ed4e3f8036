"""Performance: equity, rolling Sharpe, drawdown, inventory and trade analytics
of a live session or any saved backtest."""
from __future__ import annotations

import streamlit as st

from hftmm.dashboard import sources as src
from hftmm.dashboard.ui import run_view, settings

cfg = settings()
st.title("Performance")

backtests = src.list_backtests(cfg.results)
try:
    sessions = src.live_sessions(cfg.state_db)
except src.StateDBError:
    sessions = None
options = []
if sessions is not None and len(sessions):
    options.append("Live session")
if len(backtests):
    options.append("Saved backtest")
if not options:
    st.info(f"Nothing to show yet: no live session in {cfg.state_db} and no saved backtest under {cfg.results} "
            "(run one from the Backtesting page or with `hftmm backtest --save DIR`).")
    st.stop()

kind = st.radio("Source", options, horizontal=True, key="perf-source")
if kind == "Live session":
    i = st.selectbox("Session", range(len(sessions)), key="perf-session",
                     format_func=lambda i: f"{sessions.iloc[i]['session_id'][:12]} · {sessions.iloc[i]['mode']} "
                                           f"{sessions.iloc[i]['symbol']} · {sessions.iloc[i]['started']:%Y-%m-%d %H:%M}")
    run = src.live_run(cfg.state_db, str(sessions.iloc[i]["session_id"]))
    if st.button("Refresh", key="perf-refresh"):
        src.clear_caches()
else:
    i = st.selectbox("Backtest", range(len(backtests)), key="perf-backtest",
                     format_func=lambda i: backtests.iloc[i]["name"])
    run = src.load_backtest(backtests.iloc[i]["path"])
    st.caption(f"{run.path} · {run.metrics.get('data', '')}")
if not len(run.timeseries):
    st.info("This run has no samples yet.")
    st.stop()
run_view(run, key="perf")
