"""Data: recorded captures and converted event-store files with their verify status."""
from __future__ import annotations

import os

import streamlit as st

from hftmm.dashboard import jobs
from hftmm.dashboard import sources as src
from hftmm.dashboard.ui import job_row, settings

cfg = settings()
verify_dir = os.path.join(cfg.results, "verify")
st.title("Data")
st.caption(f"data folder {cfg.data} · verify reports in {verify_dir}")

tables = src.list_data(cfg.data, verify_dir)
raw, store = tables["raw"], tables["store"]

st.subheader("Recorded captures")
if not len(raw):
    st.info("No captures (`hftmm record --out DIR` writes `<SYMBOL>_<market>_<YYYYmmdd_HH>.gz`).")
else:
    counts = raw["status"].value_counts().to_dict()
    st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()))
    st.dataframe(raw.drop(columns=["path"]), width="stretch", hide_index=True,
                 column_config={"size_mb": st.column_config.NumberColumn("size MB", format="%.2f")})
    c1, c2 = st.columns([3, 1])
    pick = c1.selectbox("Verify a file", range(len(raw)), format_func=lambda i: raw.iloc[i]["file"], key="data-pick")
    if c2.button("Verify", key="data-verify-one"):
        jobs.start_verify(cfg.results, raw.iloc[pick]["path"])
    todo = raw[raw["status"].isin(["not verified", "stale"])]
    if len(todo) and st.button(f"Verify the {len(todo)} unverified or stale", key="data-verify-all"):
        for p in todo["path"]:
            jobs.start_verify(cfg.results, p)
    rec = src.read_verify(verify_dir, raw.iloc[pick]["path"])
    if rec is not None:
        with st.expander(f"Verify report of {raw.iloc[pick]['file']}"):
            st.json(rec.get("report", {}), expanded=False)


@st.fragment(run_every=1.0)
def verify_jobs() -> None:
    js = jobs.list_jobs(cfg.results, "verify")[:10]
    if not js:
        st.caption("No verify jobs yet.")
    active = {j.id for j in js if j.active}
    before = st.session_state.get("data-active", set())
    st.session_state["data-active"] = active
    for j in js:
        job_row(j, cancel_key=f"cancel-{j.id}")
    if before - active:
        src.clear_caches()
        st.rerun(scope="app")


with st.expander("Verify jobs", expanded=True):
    verify_jobs()

st.subheader("Event store (converted)")
if not len(store):
    st.info("No event-store files (`hftmm data convert CAPTURES --out DIR`).")
else:
    st.dataframe(store.drop(columns=["path"]), width="stretch", hide_index=True,
                 column_config={"size_mb": st.column_config.NumberColumn("size MB", format="%.2f"),
                                "rows": st.column_config.NumberColumn("events", format="%d")})
    st.caption("status: from the verify reports of the captures each file was converted from.")
