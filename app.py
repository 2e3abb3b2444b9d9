"""The desk's dashboard entry point: ``streamlit run app.py``.

A thin reader: it shows the latest session through core.queries and sends intents through
core.service. With ENGINE_IN_APP on (the default) the engine runs inside this server process.
"""

from __future__ import annotations

import streamlit as st

from core import queries, service
from core.errors import DeskError
from core.ui import get_runtime, pct, usd

st.set_page_config(page_title="AsterDex agent desk", page_icon="📈", layout="wide")
runtime = get_runtime()
db, settings = runtime.db, runtime.settings


def _run(action, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        outcome = action(*args)
        st.toast(f"Done: {getattr(outcome, 'status', outcome)}")
    except DeskError as exc:
        st.error(str(exc))


st.title("Agentic trading desk")
sessions = queries.list_sessions(db)
active = [s for s in sessions if s["status"] not in ("stopped",)]

with st.sidebar:
    st.caption("Mode: **PAPER** (simulated venue, replayed real market data)")
    if runtime.driver is None:
        st.warning("The engine is not running in this app (ENGINE_IN_APP=false): "
                   "start it with `python -m core engine`.")

if not active:
    st.info("No session yet — create one to let the five agents trade.")
    with st.form("create"):
        capital = st.number_input("Capital (USDT)", min_value=100.0, value=settings.default_capital,
                                  step=1000.0)
        symbols = st.multiselect("Symbols", settings.symbol_list, default=list(settings.symbol_list))
        if st.form_submit_button("Create session", type="primary"):
            _run(lambda: service.create_session(db, settings, capital=capital, symbols=symbols))
            st.rerun()
else:
    session_id = active[0]["id"]

    @st.fragment(run_every=5)
    def live() -> None:
        status = queries.session_status(db, session_id)
        s = status["session"]
        beat = s["heartbeat_age_s"]
        st.subheader(f"{s['name']} · {s['status']} · engine time {s['engine_time']} UTC")
        st.caption(f"last tick {beat:.0f} s ago" if beat is not None else "⚠️ engine not running")
        c = st.columns(5)
        c[0].metric("Equity", usd(s["equity"]))
        c[1].metric("Total PnL", usd(s["total_pnl"], signed=True), pct(s["total_pnl_pct"], signed=True))
        c[2].metric("Drawdown", pct(s["drawdown_pct"]), f"max {pct(s['max_drawdown_pct'])}",
                    delta_color="off")
        c[3].metric("Open positions", s["open_positions"])
        v = s["verdicts"]
        c[4].metric("CEO verdicts", f"{v['approve']} / {v['modify']} / {v['reject']}",
                    "approve / modify / reject", delta_color="off")
        if s["last_error"]:
            st.warning(f"Engine: {s['last_error']}")
        st.dataframe(status["agents"], hide_index=True, use_container_width=True,
                     column_order=["name", "strategy", "status", "capital", "equity", "pnl",
                                   "pnl_pct", "win_rate", "trades", "open_positions",
                                   "utilization", "fees", "pause_reason"])
        st.markdown("**CEO log**")
        st.dataframe(queries.ceo_log(db, session_id, limit=20), hide_index=True,
                     use_container_width=True)

    live()
    b = st.columns(4)
    if b[0].button("Pause"):
        _run(service.change_session, db, session_id, "pause")
    if b[1].button("Resume"):
        _run(service.change_session, db, session_id, "resume")
    if b[2].button("Stop (closes every position)", type="primary"):
        _run(service.stop_session, db, settings, session_id)
