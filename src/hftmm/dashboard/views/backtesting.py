"""Backtesting: run a backtest or a grid search in the background, watch its
progress, look at the results, compare runs side by side."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from hftmm.dashboard import figures as fg
from hftmm.dashboard import jobs
from hftmm.dashboard import sources as src
from hftmm.dashboard.forms import GRID_PARAMS, LENGTHS, parse_values
from hftmm.dashboard.ui import chart, fmt, job_row, run_view, settings

cfg = settings()
st.title("Backtesting")
section = st.radio("Section", ["Backtest", "Grid search", "Compare runs"], horizontal=True, key="bt-section",
                   label_visibility="collapsed")


def common_inputs(prefix: str) -> tuple[dict, float | None]:
    """Data and length inputs shared by both forms: (config fields, synthetic seconds)."""
    c1, c2, c3 = st.columns(3)
    date = c1.date_input("Day (UTC)", pd.Timestamp("2024-08-08").date(), key=f"{prefix}-date")
    length = c2.selectbox("Replay", list(LENGTHS), index=0, key=f"{prefix}-length",
                          help="Synthetic market: only the day's first part (quicker).")
    store = c3.text_input("Event store (empty: synthetic market)", "", key=f"{prefix}-store",
                          help=f"A folder written by `hftmm data convert`, e.g. {os.path.join(cfg.data, 'store')}")
    fields = dict(start_date=date.isoformat(), end_date=date.isoformat())
    if store.strip():
        fields["data_path"] = store.strip()
    return fields, LENGTHS[length]


def pick_result(table: pd.DataFrame, label: str, key: str, chosen_key: str, describe) -> str | None:
    """A select box over result folders (``table``: path, ...), preselecting
    the one started last from this session; the chosen path (None: no rows)."""
    if not len(table):
        return None
    paths = list(table["path"])
    chosen = st.session_state.get(chosen_key)
    i = st.selectbox(label, range(len(table)), index=paths.index(chosen) if chosen in paths else 0,
                     format_func=lambda i: describe(table.iloc[i]), key=key)
    return paths[i]


@st.fragment(run_every=1.0)
def job_list(kind: str) -> None:
    """The jobs of one kind with progress; a full rerun when one finishes (to show it)."""
    js = jobs.list_jobs(cfg.results, kind)[:8]
    if not js:
        st.caption("No runs started from the dashboard yet.")
        return
    key = f"active-{kind}"
    before = st.session_state.get(key, set())
    now = {j.id for j in js if j.active}
    st.session_state[key] = now
    for j in js:
        job_row(j, cancel_key=f"cancel-{j.id}")
    if before - now:
        src.clear_caches()
        st.rerun(scope="app")


if section == "Backtest":
    with st.form("bt-form"):
        st.markdown("**Strategy and exchange model**")
        fields, seconds = common_inputs("bt")
        c = st.columns(4)
        model = c[0].selectbox("Model", ["as", "glft"], key="bt-model")
        gamma = c[1].number_input("gamma (risk aversion)", 0.0001, 100.0, 0.1, format="%.4f", key="bt-gamma")
        horizon = c[2].number_input("T horizon (s)", 0.1, 86400.0, 30.0, key="bt-T")
        min_spread = c[3].number_input("min spread (price)", 0.0, 1e6, 0.0, key="bt-minspread")
        c = st.columns(4)
        order_size = c[0].number_input("order size (base)", 0.0001, 1e6, 0.001, format="%.4f", key="bt-size")
        max_pos = c[1].number_input("max position (base)", 0.0, 1e6, 0.01, format="%.4f", key="bt-maxpos")
        queue = c[2].selectbox("queue model", ["risk_averse", "power", "log"], key="bt-queue")
        fill = c[3].selectbox("fill model", ["queue", "intensity"], key="bt-fill")
        c = st.columns(4)
        fair = c[0].selectbox("fair value", ["mid", "micro"], key="bt-fair")
        maker_fee = c[1].number_input("maker fee", -0.01, 0.01, 0.0, format="%.5f", key="bt-maker")
        taker_fee = c[2].number_input("taker fee", -0.01, 0.01, 0.0004, format="%.5f", key="bt-taker")
        seed = c[3].number_input("seed", 0, 2**31 - 1, 1, key="bt-seed")
        submitted = st.form_submit_button("Run backtest", type="primary")
    if submitted:
        fields.update(model=model, gamma=float(gamma), time_horizon=float(horizon), min_spread=float(min_spread),
                      order_size=float(order_size), max_position=float(max_pos), queue_model=queue,
                      fill_model=fill, fair_value=fair, maker_fee=float(maker_fee), taker_fee=float(taker_fee),
                      seed=int(seed))
        try:
            job = jobs.start_backtest(cfg.results, fields, seconds, data_dir=cfg.data)
            st.session_state["bt-selected"] = job.dir
            st.toast(f"backtest {job.id} started")
        except Exception as e:  # noqa: BLE001 - a ConfigError names the field
            st.error(f"cannot start: {e}")
    st.subheader("Runs")
    job_list("backtest")
    st.subheader("Results")
    path = pick_result(src.list_backtests(cfg.results), "Run", "bt-result", "bt-selected", lambda r: r["name"])
    if path is None:
        st.info("No finished backtest yet.")
    else:
        run_view(src.load_backtest(path), key="bt")

elif section == "Grid search":
    with st.form("sw-form"):
        st.markdown("**Base configuration**")
        base, seconds = common_inputs("sw")
        c = st.columns(3)
        base["model"] = c[0].selectbox("Model", ["as", "glft"], key="sw-model")
        base["queue_model"] = c[1].selectbox("queue model", ["risk_averse", "power", "log"], key="sw-queue")
        workers = c[2].number_input("worker processes", 1, max(os.cpu_count() or 1, 1), 1, key="sw-workers")
        st.markdown("**Grid** (comma-separated values; leave a row empty to skip it)")
        grid_text = {}
        for name, default in GRID_PARAMS.items():
            grid_text[name] = st.text_input(name, default, key=f"sw-grid-{name}")
        submitted = st.form_submit_button("Run grid search", type="primary")
    if submitted:
        try:
            grid = {k: parse_values(k, v) for k, v in grid_text.items() if v.strip()}
            if not grid:
                raise ValueError("give values for at least one parameter")
            job = jobs.start_sweep(cfg.results, base, grid, seconds, int(workers), data_dir=cfg.data)
            st.session_state["sw-selected"] = job.dir
            st.toast(f"sweep {job.id} started ({job.spec['combinations']} combinations)")
        except Exception as e:  # noqa: BLE001
            st.error(f"cannot start: {e}")
    st.subheader("Sweeps")
    job_list("sweep")
    st.subheader("Results")
    path = pick_result(src.list_sweeps(cfg.results), "Sweep", "sw-result", "sw-selected",
                       lambda r: f"{r['name']} ({r['rows']} rows)")
    if path is None:
        st.info("No sweep results yet.")
    else:
        df = src.load_sweep(path)
        from hftmm.backtesting.sweep import analyze_results

        a = analyze_results(df)
        cnt = a["counts"]
        st.caption(f"{cnt['total']} combinations: {cnt['ok']} ok, {cnt['error']} failed")
        params = [p for p in a["params"] if df[p].nunique() > 1] or a["params"]
        metric = st.selectbox("Rank by", list(a["ranking"]) or ["sharpe_ratio"], key="sw-metric")
        st.dataframe(a["ranking"].get(metric, pd.DataFrame()), width="stretch", hide_index=True)
        if len(params) >= 2:
            c = st.columns(3)
            x = c[0].selectbox("x", params, index=0, key="sw-x")
            y = c[1].selectbox("y", [p for p in params if p != x], index=0, key="sw-y")
            agg = c[2].selectbox("aggregate over the other parameters", ["mean", "max", "min"], key="sw-agg")
            c1, c2 = st.columns(2)
            with c1:
                chart(fg.sweep_heatmap(df, metric, x, y, agg), key="sw-heat-1")
            with c2:
                other = "total_pnl" if metric != "total_pnl" else "sharpe_ratio"
                chart(fg.sweep_heatmap(df, other, x, y, agg), key="sw-heat-2")
        elif params:
            by = a["by_value"].get(metric, {}).get(params[0])
            if by is not None:
                st.bar_chart(by)
        with st.expander("Sensitivity (Spearman correlation, range of the mean per value)"):
            st.dataframe(a["sensitivity"].get(metric, pd.DataFrame()), width="stretch")
        errors = df[df["status"] != "ok"] if "status" in df else df.iloc[:0]
        if len(errors):
            with st.expander(f"{len(errors)} failed combinations"):
                st.dataframe(errors[a["params"] + ["error"]], width="stretch", hide_index=True)

else:
    bts = src.list_backtests(cfg.results)
    if len(bts) < 1:
        st.info("No saved backtests to compare yet.")
        st.stop()
    names = list(bts["name"])
    chosen = st.multiselect("Runs", names, default=names[: min(3, len(names))], key="cmp-runs")
    runs = {n: src.load_backtest(bts.loc[bts["name"] == n, "path"].iloc[0]) for n in chosen}
    chart(fg.run_comparison_chart({n: r.timeseries for n, r in runs.items()}), key="cmp-chart")
    if runs:
        metrics = ["total_pnl", "sharpe_ratio", "max_drawdown", "total_trades", "fill_rate", "markout_10s_bps",
                   "time_weighted_abs_inventory"]
        table = pd.DataFrame({n: {m: r.metrics.get(m) for m in metrics} for n, r in runs.items()}).T
        chart(fg.metrics_bar_chart(table, metrics[:5]), key="cmp-bars")
        st.dataframe(table.map(lambda v: fmt(v, "{:,.4g}")), width="stretch")
        cfgs = pd.DataFrame({n: r.config for n, r in runs.items()})
        diff = cfgs[cfgs.astype(str).nunique(axis=1) > 1] if len(cfgs.columns) > 1 else cfgs
        st.markdown("**Config differences**" if len(cfgs.columns) > 1 else "**Config**")
        st.dataframe(diff.astype(str), width="stretch")
