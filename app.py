"""The desk's dashboard entry point: ``streamlit run app.py``.

Page config, the password gate (nothing renders before it), the runtime (database and, with
ENGINE_IN_APP on, the engine inside this server), the sidebar, and the navigation. The pages are
thin readers of core.queries that send intents through core.service.
"""

from __future__ import annotations

import streamlit as st

from core.config import get_settings
from core.errors import DeskError
from dashboard import get_runtime, password_gate, sidebar

st.set_page_config(page_title="AsterDex agent desk", page_icon=":material/candlestick_chart:", layout="wide")
try:
    settings = get_settings()
except DeskError as exc:  # a bad setting: say which and why, start nothing
    st.error(f"The desk cannot start: {exc}. Fix it in .env or the environment and reload.")
    st.stop()
password_gate(settings)
try:
    runtime = get_runtime()
except DeskError as exc:  # e.g. the database cannot be opened
    st.error(f"The desk cannot start: {exc}.")
    st.stop()
sidebar(runtime)

navigation = st.navigation([
    st.Page("views/session.py", title="Session", icon=":material/dashboard:", default=True),
    st.Page("views/agents.py", title="Agents", icon=":material/smart_toy:"),
    st.Page("views/ceo.py", title="CEO log", icon=":material/gavel:"),
    st.Page("views/positions.py", title="Positions & trades", icon=":material/receipt_long:"),
    st.Page("views/market.py", title="Market", icon=":material/candlestick_chart:"),
    st.Page("views/backtest.py", title="Backtest", icon=":material/history:"),
    st.Page("views/research.py", title="Research", icon=":material/science:"),
])
navigation.run()
