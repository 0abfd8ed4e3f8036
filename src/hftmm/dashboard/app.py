"""The dashboard's entry point: ``streamlit run app.py`` (``hftmm dashboard`` does it).

The pages live in ``views/``, not ``pages/``: Streamlit lists a ``pages/``
folder beside the main script as pages of its own until ``st.navigation``
has run, and a click in that moment opens a page without this script's setup.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from hftmm.dashboard.ui import settings

HERE = Path(__file__).parent

# no page or navigation icons: Streamlit fetches their favicons from Google's
# servers, and the dashboard must not send traffic anywhere but its own host
st.set_page_config(page_title="hftmm", layout="wide")
page = st.navigation([
    st.Page(HERE / "views" / "live.py", title="Live", default=True),
    st.Page(HERE / "views" / "performance.py", title="Performance"),
    st.Page(HERE / "views" / "backtesting.py", title="Backtesting"),
    st.Page(HERE / "views" / "data.py", title="Data"),
])
cfg = settings()
with st.sidebar:
    st.caption(f"state DB: `{cfg.state_db}`  \nresults: `{cfg.results}`  \ndata: `{cfg.data}`")
page.run()
