"""Live: the running session from the state database, refreshed every second."""
from __future__ import annotations

import time
from typing import Any, Optional

import pandas as pd
import streamlit as st

from hftmm.dashboard import analytics as an
from hftmm.dashboard import figures as fg
from hftmm.dashboard import sources as src
from hftmm.dashboard.ui import chart, fmt, nice_interval, settings

REFRESH_S = 1.0
KILL_ARGS = {"reason": "dashboard", "flatten": False}

cfg = settings()
st.title("Live")
try:
    sessions = src.live_sessions(cfg.state_db)
except src.StateDBError as e:
    st.info(f"{e}. The engine (`hftmm live --state-db ...`) writes it; this page shows it once it exists.")
    st.stop()
if not len(sessions):
    st.info(f"No session in {cfg.state_db} yet.")
    st.stop()



def _state(r) -> str:
    """running (its process holds the database's lock) / ended / died (no end recorded)."""
    return "running" if r.running else ("ended" if pd.notna(r.ended_ns) else "died (no end recorded)")


labels = [f"{r.session_id[:12]} · {r.mode} {r.symbol} · {r.started:%Y-%m-%d %H:%M:%S} · {_state(r)}"
          for r in sessions.itertuples()]
states = [_state(r) for r in sessions.itertuples()]
running_at = [i for i, s in enumerate(states) if s == "running"]
c1, c2 = st.columns([3, 1])
choice = c1.selectbox("Session", range(len(sessions)), format_func=lambda i: labels[i], key="live-session",
                      index=running_at[0] if running_at else 0)
window_min = c2.selectbox("Window", [1, 5, 15, 60, 240], index=1, format_func=lambda m: f"{m} min", key="live-window")
sid = str(sessions.iloc[choice]["session_id"])
sid_state = states[choice]
window_s = 60.0 * window_min


#: metric tiles, rows of (label, status column, format)
POSITION_TILES = ((("Mid", "mid", "{:,.2f}"), ("Spread", "spread", "{:,.4g}"),
                   ("Position (base)", "position", "{:,.6g}"), ("PnL (quote)", "pnl", "{:,.4f}")),
                  (("Realised PnL", "realized_pnl", "{:,.4f}"), ("Sigma (price/√s)", "sigma", "{:,.4g}"),
                   ("Open orders", "open_orders", "{:,.0f}"), ("Fills", "fills", "{:,.0f}")))
FEED_TILES = ((("Gaps", "gaps", "{:,.0f}"), ("Resyncs", "resyncs", "{:,.0f}"),
               ("Reconnects", "reconnects", "{:,.0f}"), ("Malformed", "malformed", "{:,.0f}")),
              (("Feed latency ms", "feed_latency_ms", "{:,.1f}"), ("Feed age ms", "feed_age_ms", "{:,.0f}"),
               ("Order RTT ms", "order_rtt_ms", "{:,.1f}"), ("Messages", "messages", "{:,.0f}")),
              (("Messages lost", "message_loss", "{}"), ("Update ids lost", "id_loss", "{}"),
               ("Feeds up", "feeds_up", "{:,.0f}"), ("Feed duplicates", "feed_duplicates", "{:,.0f}")))
#: USD-M (testnet/live): shown when the session published margin figures
MARGIN_TILES = ((("Margin ratio", "margin_ratio", "{:.2%}"), ("Effective leverage", "effective_leverage", "{:.2f}x"),
                 ("Liquidation price", "liquidation_price", "{:,.2f}"), ("Wallet (quote)", "wallet_balance",
                                                                          "{:,.2f}")),)


def loss_text(lost: Any, expected: Any) -> Optional[str]:
    """'lost / expected (rate)' of a loss figure, or None when not published."""
    if lost is None or expected is None or lost != lost or expected != expected:
        return None
    lost, expected = int(lost), int(expected)
    rate = lost / expected if expected else 0.0
    return f"{lost:,} / {expected:,} ({rate:.3%})"


def tiles(row: dict, spec: tuple) -> None:
    """Rows of metric tiles from one status row."""
    for line in spec:
        for col, (label, key, form) in zip(st.columns(len(line)), line):
            col.metric(label, fmt(row.get(key), form))


@st.fragment(run_every=REFRESH_S)
def live_panel() -> None:
    """Book, prices, indicators, position/risk and feed health (every second)."""
    try:
        last = src.live_latest_status(cfg.state_db, sid)
        status = src.live_status(cfg.state_db, sid, window_s)
        book = src.live_book(cfg.state_db, sid)
        fills = src.live_fills(cfg.state_db, sid, window_s)
    except src.StateDBError as e:
        st.warning(str(e))
        return
    if last is None:
        st.info("The session has not published yet.")
        return
    age = time.time() - last["ts_ns"] / 1e9
    risk = last.get("risk_state") or "?"
    badge = {"ok": ":green-badge[risk ok]", "paused": ":orange-badge[risk paused]",
             "killed": ":red-badge[KILLED]"}.get(risk, f":gray-badge[{risk}]")
    if sid_state != "running":       # an ended session's last risk state is history, not "ok now"
        badge = f":gray-badge[session {sid_state}] (last risk state: {risk})"
    synced = ":green-badge[book synced]" if last.get("synced") else ":red-badge[book not synced]"
    st.markdown(f"{badge} {synced} &nbsp; last publish {age:,.1f} s ago"
                + (f" &nbsp; kill reason: `{last['kill_reason']}`" if last.get("kill_reason") else ""))
    tiles(last, POSITION_TILES)
    c1, c2 = st.columns([2, 3])
    with c1:
        quotes = (last.get("bid_quote"), last.get("ask_quote"))
        chart(fg.depth_chart(book["bids"] if book else [], book["asks"] if book else [], quotes), key="live-depth")
        if book:
            st.caption(f"book at {pd.Timestamp(book['ts_ns'], unit='ns', tz='UTC'):%H:%M:%S.%f} UTC")
    with c2:
        chart(fg.price_chart(status, fills), key="live-price")
    c1, c2 = st.columns(2)
    with c1:
        chart(fg.indicators_chart(status), key="live-indicators")
    with c2:
        st.markdown("**Feed health**")
        last = dict(last, message_loss=loss_text(last.get("messages_lost"), last.get("messages_expected")),
                    id_loss=loss_text(last.get("ids_lost"), last.get("ids_expected")))
        tiles(last, FEED_TILES)
        if last.get("margin_ratio") is not None and last.get("margin_ratio") == last.get("margin_ratio"):
            st.markdown("**Margin (USD-M)**")
            tiles(last, MARGIN_TILES)
        chart(fg.latency_chart(status), key="live-latency")


@st.fragment(run_every=10.0)
def vol_panel() -> None:
    """The volatility heatmap (recomputed every 10 s)."""
    mode = st.radio("Volatility heatmap", ["time bucket × horizon", "time of day × day"], horizontal=True,
                    key="live-vol-mode")
    try:
        if mode.startswith("time bucket"):
            status = src.live_status(cfg.state_db, sid, window_s)
            bucket = max(10.0, nice_interval(window_s, points=20))
            table = an.realized_vol_grid(status["ts_ns"], status["mid"], bucket, (1, 2, 5, 10, 30))
            chart(fg.vol_heatmap(table, f"Realised volatility, {bucket:g} s buckets", "return horizon (s)",
                                 "bucket start (UTC)"), key="live-vol")
        else:
            status = src.live_status(cfg.state_db, sid, None)
            table = an.vol_by_time_of_day(status["ts_ns"], status["mid"], 60, 60.0)
            chart(fg.vol_heatmap(table, "Realised volatility by time of day (1 min returns)", "hour (UTC)", "day"),
                  key="live-vol")
    except src.StateDBError as e:
        st.warning(str(e))


@st.fragment(run_every=2.0)
def activity_panel() -> None:
    """Kill switch, commands, risk events and recent orders/fills."""
    c1, c2 = st.columns([1, 3])
    with c1:
        st.markdown("**Kill switch**")
        if sid_state != "running":
            st.caption(f"This session is {sid_state}: no process would act on a command.")
        elif st.button("KILL: cancel all and stop quoting", type="primary", key="kill"):
            try:
                cid = src.send_command(cfg.state_db, "kill", KILL_ARGS, sid)
                st.session_state["live-last-command"] = f"kill command #{cid} sent"
            except Exception as e:  # noqa: BLE001 - shown to the operator
                st.session_state["live-last-command"] = f"kill failed: {e}"
        if sid_state == "running" and st.button("Resume quoting", key="resume"):
            try:
                cid = src.send_command(cfg.state_db, "resume", {}, sid)
                st.session_state["live-last-command"] = f"resume command #{cid} sent"
            except Exception as e:  # noqa: BLE001
                st.session_state["live-last-command"] = f"resume failed: {e}"
        if st.session_state.get("live-last-command"):
            st.caption(st.session_state["live-last-command"])
    with c2:
        try:
            cmds = src.live_table(cfg.state_db, "commands", limit=10)
            events = src.live_table(cfg.state_db, "risk_events", sid, limit=50)
            orders = src.live_table(cfg.state_db, "orders", sid, limit=50)
            fills = src.live_fills(cfg.state_db, sid, window_s)
        except src.StateDBError as e:
            st.warning(str(e))
            return
        t1, t2, t3, t4 = st.tabs(["Commands", "Risk events", "Orders", "Fills"])
        if len(cmds):
            cmds = cmds.assign(state=cmds["consumed_ns"].map(lambda v: "pending" if pd.isna(v) else "consumed"))
        t1.dataframe(cmds, width="stretch", hide_index=True)
        t2.dataframe(events, width="stretch", hide_index=True)
        t3.dataframe(orders, width="stretch", hide_index=True)
        t4.dataframe(fills.iloc[::-1].head(100), width="stretch", hide_index=True)


live_panel()
vol_panel()
activity_panel()
