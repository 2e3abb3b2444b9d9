"""Session control: create a paper or live session (live asks for an explicit confirmation),
pause / resume / stop it, acknowledge a drawdown halt, and watch the portfolio (KPIs, allocation,
equity and drawdown over engine time; on a live session also the AsterDex account's real balance
and positions); the alerts section shows the targets (masked), the deliveries that failed and a
button that sends a test alert.

A thin page: it reads through ``core.queries`` and sends intents through ``core.service`` via
``dashboard.run_action``, so a refused intent shows as one readable message, never a traceback.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import queries, service
from core.errors import DeskError
from core.models import MAX_CAPITAL
from dashboard import (
    ACTIVE,
    LOSS,
    MISSING,
    MONEY,
    SIGNED_MONEY,
    act_in_callback,
    chart_times,
    colored,
    current_session,
    engine_status,
    follow_latest_session,
    get_runtime,
    number_column,
    pct,
    pnl_color,
    refresh_every,
    run_action,
    show_outcome,
    shown_times,
    usd,
    zone_name,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

CONFIRM_STOP = "session_confirm_stop"
PREVIOUS_SHOWN = 20
EQUITY_LINE = "#4c8dff"
BADGE = {
    "created": ("Created — waiting for the engine", "blue", ":material/schedule:"),
    "running": ("Running", "green", ":material/play_circle:"),
    "paused": ("Paused — no new trades", "orange", ":material/pause_circle:"),
    "halted": ("Halted — drawdown limit", "red", ":material/report:"),
    "stopping": ("Stopping — closing positions", "orange", ":material/hourglass_top:"),
    "stopped": ("Stopped", "gray", ":material/stop_circle:"),
}
CHART_LAYOUT: dict[str, Any] = {
    "height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "x unified",
    "showlegend": False,
}


# ---------------------------------------------------------------------- no active session
def create_form() -> None:
    st.subheader("Create session")
    st.caption("Five strategy agents trade under the CEO's hard risk rules; the capital is split "
               "between them by the roster's shares and rebalanced by results.")
    # outside the form, so choosing Live shows its confirmation at once (a form defers every change)
    mode = st.radio("Mode", ["paper", "live"], index=0, horizontal=True, key="session_mode",
                    format_func={"paper": "Paper (simulated venue)",
                                 "live": "Live (AsterDex, real money)"}.get)
    with st.form("create_session", enter_to_submit=False):
        left, right = st.columns(2)
        capital = left.text_input(
            "Capital (USDT)", value=f"{settings.default_capital:,.2f}", max_chars=40,
            key="session_capital",
            help=f"Paper money for the whole desk, from 100 USDT (so every agent can meet the "
                 f"venue's minimum order size) to {MAX_CAPITAL:,.0f}.")
        name = right.text_input("Name (optional)", placeholder="e.g. Paper desk — September",
                                max_chars=120, key="session_name")
        symbols = st.multiselect("Symbols", list(settings.symbol_list),
                                 default=list(settings.symbol_list),
                                 help="Perpetuals the agents may trade.")
        whole = confirmed = False
        if mode == "live":  # live: real orders need an explicit confirmation
            st.caption("Live sends real orders to AsterDex with the keys in .env: the capital is "
                       "the account's available balance, or the smaller amount above.")
            whole = st.checkbox("Live: use the account's whole available balance", value=True)
            confirmed = st.checkbox("I understand that a live session trades real money on "
                                    "AsterDex", key="session_confirm_live")
        submitted = st.form_submit_button("Create session", type="primary")
    if submitted:
        if not symbols:
            st.error("Choose at least one symbol.")
            return
        if mode == "live" and not confirmed:
            st.error("Tick the confirmation to create a live session: it trades real money.")
            return
        try:
            amount = None if mode == "live" and whole else service.read_capital(capital)
        except DeskError as exc:
            st.error(f"Nothing created: {exc}.")
            return
        if run_action(service.create_session, db, settings, capital=amount,
                      symbols=list(symbols), mode=mode or "paper", name=name.strip() or None,
                      done="Session created — the engine starts trading on its next tick"):
            follow_latest_session()  # show the new session, whatever was chosen in the sidebar
            st.rerun()


def previous_sessions(sessions: list[dict[str, Any]]) -> None:
    if not sessions:
        return
    st.subheader("Previous sessions")
    rows = []
    for s in sessions:
        figures = queries.session_status(db, s["id"])["session"]
        rows.append({
            "Session": s["name"], "Status": s["status"].capitalize(), "Mode": s["mode"].upper(),
            f"Started (engine time, {zone_name()})": str(shown_times(
                pd.to_datetime(s["created_ms"], unit="ms", utc=True)
                .strftime("%Y-%m-%d %H:%M:%S")))[:16],
            "Capital (USDT)": s["initial_capital"], "Final equity (USDT)": figures["equity"],
            "PnL (USDT)": figures["total_pnl"], "PnL (%)": figures["total_pnl_pct"],
            "Closed trades": figures["closed_trades"],
        })
    frame = pd.DataFrame(rows)
    styled = frame.style.map(lambda v: f"color: {pnl_color(v)}", subset=["PnL (USDT)", "PnL (%)"])
    st.dataframe(styled, hide_index=True, width="stretch", placeholder=MISSING, column_config={
        "Capital (USDT)": number_column("Capital (USDT)", MONEY),
        "Final equity (USDT)": number_column("Final equity (USDT)", MONEY),
        "PnL (USDT)": number_column("PnL (USDT)", SIGNED_MONEY),
        "PnL (%)": number_column("PnL (%)", "%+.2f%%"),
        "Closed trades": number_column("Closed trades", "%,d")})


# ---------------------------------------------------------------------- controls
def _request_stop() -> None:
    st.session_state[CONFIRM_STOP] = True


def _forget_stop() -> None:
    st.session_state.pop(CONFIRM_STOP, None)


def _change(session_id: int, action: str, done: str) -> None:
    """Button callback: runs before the page redraws, so the page shows the new status at once
    (and a refusal, e.g. the engine halted the session meanwhile, as a readable message)."""
    act_in_callback(service.change_session, db, session_id, action, done=done)


@st.dialog("Stop the session?", on_dismiss=_forget_stop)
def confirm_stop(session_id: int, name: str) -> None:
    st.markdown(f"Stopping **{name}** cancels every open order and closes every position "
                "**at market** (slippage and taker fees apply). The agents stop trading and the "
                "session cannot be restarted; you can create a new one afterwards.")
    yes, no = st.columns(2)
    if yes.button("Stop and close everything", type="primary", width="stretch") and run_action(
            service.stop_session, db, settings, session_id):
        _forget_stop()
        st.rerun()
    if no.button("Cancel", width="stretch"):
        _forget_stop()
        st.rerun()


def controls(s: dict[str, Any]) -> None:
    show_outcome()
    status, sid = s["status"], s["id"]
    if status == "halted":
        halt = queries.ceo_log(db, sid, kind="halt", limit=1)
        reason = str(halt["reason"].iloc[0]) if not halt.empty else (s["status_reason"] or "drawdown halt")
        reason = reason[:1].upper() + reason[1:].rstrip(".")
        st.error(
            f"**Trading halted — the portfolio drawdown limit was hit.** {reason}.\n\n"
            "No agent trades until you acknowledge. Acknowledging resets the drawdown peak to the "
            "current equity and reactivates the agents the halt stopped (agents you or the CEO "
            "paused stay paused).", icon=":material/report:")
    elif status == "stopping":
        st.info("Stop requested: the engine is cancelling every order and closing every position "
                "at market. This page updates when it is done.", icon=":material/hourglass_top:")
    elif status == "created":
        st.info("Session created: the engine starts trading on its next tick.", icon=":material/schedule:")
    elif status == "paused":
        st.warning("Session paused: no new trades. The market goes on (a replay keeps stepping "
                   "through its bars) and open positions keep their stops.", icon=":material/pause:")

    with st.container(horizontal=True):
        if status == "running":
            st.button("Pause", icon=":material/pause:", on_click=_change,
                      args=(sid, "pause", "Session paused: no new trades, stops stay"),
                      help="No new trades; open positions keep their stops.")
        elif status == "paused":
            st.button("Resume", icon=":material/play_arrow:", type="primary", on_click=_change,
                      args=(sid, "resume", "Session resumed"))
        elif status == "halted":
            st.button("Acknowledge halt and resume", icon=":material/task_alt:", type="primary",
                      on_click=_change,
                      args=(sid, "resume", "Halt acknowledged: peak reset, agents reactivated"))
        if status not in ("stopped", "stopping"):
            st.button("Stop", icon=":material/stop:", on_click=_request_stop,
                      help="Cancel every order and close every position at market (asks first).")
    if st.session_state.get(CONFIRM_STOP):
        if status in ("stopped", "stopping"):
            _forget_stop()
        else:
            confirm_stop(sid, s["name"])


# ---------------------------------------------------------------------- live figures
def _money(value: float, *, signed: bool = False) -> str:
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def kpis(s: dict[str, Any], curve: pd.DataFrame) -> None:
    spark = curve["equity"].round(2).tolist()[-200:] if len(curve) > 1 else None
    row = st.columns(4)
    row[0].metric("Equity (USDT)", _money(s["equity"]), pct(s["total_pnl_pct"], signed=True),
                  chart_data=spark, chart_type="area", border=True, height="stretch",
                  help=f"Started with {usd(s['initial_capital'])}; the line is equity over "
                       "engine time.")
    row[1].metric("Total PnL (USDT)", colored(_money(s["total_pnl"], signed=True), s["total_pnl"]),
                  pct(s["total_pnl_pct"], signed=True), border=True, height="stretch",
                  help="Gross PnL of closed trades (before fees and funding) − fees paid ± "
                       "funding + unrealized PnL at the latest marks; the line below splits it")
    limit = settings.drawdown_halt_pct * 100
    row[2].metric("Drawdown from peak", pct(s["drawdown_pct"]),
                  f"halt at {limit:.0f}%", delta_color="off", delta_arrow="off", border=True,
                  height="stretch",
                  help=f"Peak equity {usd(s['peak_equity'])}. At {limit:.0f}% below the peak the "
                       "CEO halts the session and closes everything.")
    row[3].metric("Max drawdown", pct(s["max_drawdown_pct"]), "worst since the start",
                  delta_color="off", delta_arrow="off", border=True, height="stretch")
    row = st.columns([1, 1, 2])
    row[0].metric("Open positions", f"{s['open_positions']}", border=True, height="stretch")
    row[1].metric("Closed trades", f"{s['closed_trades']:,}", border=True, height="stretch",
                  help=f"{s['orders']:,} orders, {s['fills']:,} fills")
    v = s["verdicts"]
    row[2].metric("CEO verdicts on proposals", f"{v['approve'] + v['modify'] + v['reject']:,}",
                  f"{v['approve']:,} approved · {v['modify']:,} modified · "
                  f"{v['reject']:,} rejected",
                  delta_color="off", delta_arrow="off", border=True, height="stretch",
                  help="Every proposal is approved, modified (e.g. leverage lowered to fit the "
                       "stop rule) or rejected under the hard risk rules.")
    st.caption(pnl_split(s))


def pnl_split(s: dict[str, Any]) -> str:
    """Total PnL in the parts a trader reconciles with the trade history, at the engine time
    the figures are from (the sidebar refreshes on its own, so it can be a tick apart)."""
    if "realized_pnl" not in s:
        return ""
    return (f"Total PnL {_money(s['total_pnl'], signed=True)} = gross "
            f"{_money(s['realized_pnl'], signed=True)} on closed trades − fees paid "
            f"{_money(s['fees'])} + funding {_money(s['funding'], signed=True)} + unrealized "
            f"{_money(s['unrealized_pnl'], signed=True)} on open positions (USDT) · as of engine "
            f"time {shown_times(s['engine_time'])} {zone_name()}")


def allocation_chart(agents: list[dict[str, Any]]) -> None:
    if not agents:
        return
    names = [a["name"] for a in agents]
    fig = go.Figure(go.Pie(
        labels=names, values=[max(a["allocation_pct"], 0.0) for a in agents], hole=0.55,
        sort=False, textinfo="percent", texttemplate="%{value:.1f}%",
        customdata=[[usd(a["equity"]), usd(a["pnl"], signed=True)] for a in agents],
        hovertemplate="<b>%{label}</b><br>%{value:.2f}% of equity<br>equity %{customdata[0]}"
                      "<br>PnL %{customdata[1]}<extra></extra>",
    ))
    fig.update_layout(title="Allocation (share of equity)", height=300,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "v", "x": 1.0, "y": 0.5})
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def equity_charts(s: dict[str, Any], curve: pd.DataFrame) -> None:
    if curve.empty:
        st.info("Equity snapshots appear after the first engine hour.", icon=":material/show_chart:")
        return
    fig = go.Figure(go.Scatter(
        x=chart_times(curve["ts"]), y=curve["equity"], mode="lines", line={"color": EQUITY_LINE, "width": 2},
        hovertemplate="%{y:,.2f} USDT<extra></extra>", name="Equity"))
    fig.add_hline(y=s["initial_capital"], line_dash="dot", line_color="#8a8f98",
                  annotation_text="initial capital", annotation_position="top left")
    fig.update_layout(title="Equity", xaxis_title=f"Engine time ({zone_name()})",
                      yaxis_title="Equity (USDT)", yaxis_tickformat=",.0f", **CHART_LAYOUT)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def drawdown_chart(curve: pd.DataFrame) -> None:
    if curve.empty:
        return
    limit = settings.drawdown_halt_pct * 100
    dd = -curve["drawdown_pct"]  # percent, drawn below zero
    fig = go.Figure(go.Scatter(
        x=chart_times(curve["ts"]), y=dd, mode="lines", fill="tozeroy", line={"color": LOSS, "width": 1.5},
        hovertemplate="%{y:.2f}%<extra></extra>", name="Drawdown"))
    fig.add_hline(y=-limit, line_dash="dash", line_color=LOSS,
                  annotation_text=f"halt at −{limit:.0f}%", annotation_position="bottom left")
    fig.update_layout(title="Drawdown from peak", xaxis_title=f"Engine time ({zone_name()})",
                      yaxis_title="Drawdown (%)", yaxis_ticksuffix="%",
                      yaxis_range=[-(limit * 1.15), 0.5], **CHART_LAYOUT)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


# --- LLM cost and the daily budget next to PnL ------------------------------------------
def llm_panel(session_id: int, s: dict[str, Any]) -> None:
    llm = queries.session_llm(db, session_id, settings.llm_daily_budget_usd)
    if not llm["calls"]:
        st.caption("LLM: no model calls in this session (agents on their rules): no LLM cost.")
        return
    row = st.columns(4)
    row[0].metric("LLM cost (USD)", f"{llm['cost_usd']:,.4f}", f"{llm['calls']:,} calls",
                  delta_color="off", delta_arrow="off", border=True, height="stretch",
                  help="Estimated from tokens × LLM_PRICES; the CEO reviewer's calls included "
                       f"({llm['review_calls']:,} calls, {llm['review_cost_usd']:,.4f} USD).")
    after = s["total_pnl"] - llm["cost_usd"]
    row[1].metric("PnL after LLM cost", colored(_money(after, signed=True), after),
                  "is the LLM paying for itself?", delta_color="off", delta_arrow="off",
                  border=True, height="stretch")
    budget = llm["daily_budget_usd"]
    row[2].metric(f"LLM budget today ({llm['engine_day']})",
                  f"{llm['cost_today_usd']:,.4f} / {budget:,.2f}",
                  f"{llm['budget_left_usd']:,.4f} USD left", delta_color="off", delta_arrow="off",
                  border=True, height="stretch", help="Per engine-clock day (UTC): LLM_DAILY_BUDGET_USD")
    failures = llm["failures"]
    row[3].metric("LLM failures", f"{failures:,}",
                  pct(failures / llm["calls"] * 100) + " of calls", delta_color="off",
                  delta_arrow="off", border=True, height="stretch",
                  help="Failed calls and invalid replies: recorded as failures, never as a hold.")
    if llm["budget_exhausted"]:
        then = ("agents trade on their rules" if settings.llm_budget_exhausted == "rules"
                else "agents stop proposing")
        st.warning(f"Daily LLM budget spent at {llm['exhausted_at']} (engine time): {then} until "
                   "the next day; open positions keep their stops.", icon=":material/savings:")


def venue_panel(session_id: int) -> None:
    """A live session's AsterDex account: its real balance and positions."""
    account = queries.venue_account(settings, db, session_id)
    st.subheader("AsterDex account")
    if account["error"]:
        st.warning(account["error"])
        return
    a, b, c = st.columns(3)
    a.metric("Wallet balance", usd(account["wallet_balance"]))
    b.metric("Available", usd(account["available_balance"]))
    c.metric("Unrealized PnL", usd(account["unrealized_pnl"]))
    if account["positions"].empty:
        st.caption("No open positions on the exchange.")
    else:
        st.dataframe(account["positions"], hide_index=True, width="stretch", placeholder=MISSING)


# --- alerts: where they go, and what failed to get there ----------------------------------
ALERT_TEST = "session_alert_test"


def _send_test_alerts() -> None:
    """Button callback: one test message per target; the results show under the button."""
    try:
        st.session_state[ALERT_TEST] = [
            (r.target, r.service, r.error, r.seconds) for r in service.send_test_alerts(settings)]
    except DeskError as exc:
        st.session_state[ALERT_TEST] = str(exc)


def alerts_panel(session_id: int) -> None:
    """The alert targets (masked), this session's alert tally, the deliveries failing or waiting
    for a retry, and a button that sends a test alert to every target."""
    targets = queries.alert_targets(settings)
    problems = queries.recent_alerts(db, session_id=session_id, limit=10, problems_only=True)
    failing = sum(1 for a in problems if a["status"] == "failed")
    title = "Alerts" + (f" — {len(problems)} with a failed delivery" if problems else "")
    with st.expander(title, expanded=bool(problems or targets["error"]),
                     icon=":material/notifications:"):
        if targets["error"]:
            st.error(f"ALERT_URLS is not usable: {targets['error']}. Alerts wait in the outbox "
                     "until it is fixed.")
        elif not targets["targets"]:
            st.caption("No alert targets: set ALERT_URLS in .env (see .env.example) to get halts, "
                       "stops, trades and engine trouble on your phone or by email.")
        else:
            st.caption("Targets: " + "; ".join(
                f"**{t['target']}** ({t['min_severity']} and worse, {t['kinds']})"
                for t in targets["targets"]))
        counts = queries.alert_counts(db, session_id=session_id)
        st.caption(f"This session's alerts: {counts['sent']:,} sent · {counts['routed']:,} "
                   f"waiting for a target · {counts['failed']:,} failed · {counts['muted']:,} "
                   f"muted · {counts['pending']:,} not yet sent"
                   + (f" · {counts['expired']:,} expired" if counts["expired"] else ""))
        if problems:
            (st.error if failing else st.warning)(
                f"{failing} alert(s) could not be delivered; {len(problems) - failing} wait for a "
                "retry. `./desk alerts --problems` lists them all.")
            st.dataframe(pd.DataFrame([{
                "Written (UTC)": a["created_at"], "Kind": a["kind"], "Alert": a["title"],
                "Deliveries": queries.delivery_summary(a)} for a in problems]),
                hide_index=True, width="stretch")
        if targets["targets"]:
            st.button("Send test alert", icon=":material/send:", on_click=_send_test_alerts,
                      help="Sends a test message to every target and shows how each went.")
        shown = st.session_state.pop(ALERT_TEST, None)
        if isinstance(shown, str):
            st.error(shown)
        for target, service_name, error, seconds in shown or []:
            if error is None:
                st.success(f"Test alert sent to {target} ({service_name}) in {seconds:.1f} s")
            else:
                st.error(f"Test alert to {target} ({service_name}) failed: {error}")


def header_line(session_id: int) -> None:
    s = queries.session_summary(db, session_id)
    label, color, icon = BADGE.get(s["status"], (s["status"], "gray", None))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.badge(label, color=color, icon=icon)  # type: ignore[arg-type]
        st.caption(f"{s['mode'].upper()} · engine time {shown_times(s['engine_time']) or '–'} "
                   f"{zone_name()} · "
                   f"{', '.join(s['symbols'])} · started with {usd(s['initial_capital'])}"
                   + (f" · market data: {s['feed_status']}" if s.get("feed_status") else ""))


def ended_view(session_id: int) -> None:
    """A stopped session (the last one, or one chosen in the sidebar): its final figures, with
    nothing left to control."""
    status = queries.session_status(db, session_id)
    s = status["session"]
    latest = queries.latest_session(db)
    then = (f"The desk is trading **{latest['name']}**: choose it in the sidebar."
            if latest is not None and latest["status"] in ACTIVE else "Create a new one below.")
    st.info(f"Session **{s['name']}** is {s['status']}: final equity {usd(s['equity'])} "
            f"({pct(s['total_pnl_pct'], signed=True)}). {then}", icon=":material/flag:")
    st.caption("This session has ended: it can no longer be paused, resumed or stopped. "
               "Its final figures:")
    curve = queries.equity_curve(db, session_id)
    kpis(s, curve)
    charts(s, status["agents"], curve)
    alerts_panel(session_id)


def charts(s: dict[str, Any], agents: list[dict[str, Any]], curve: pd.DataFrame) -> None:
    """Equity beside the allocation, the drawdown under them."""
    left, right = st.columns([2, 1])
    with left:
        equity_charts(s, curve)
    with right:
        allocation_chart(agents)
    drawdown_chart(curve)


def live_view(session_id: int, shown_status: str) -> None:
    status = queries.session_status(db, session_id)
    s = status["session"]
    if s["status"] != shown_status:
        st.rerun(scope="app")  # the engine changed the status: redraw the controls too
    engine_status(s, only_trouble=True)
    curve = queries.equity_curve(db, session_id)
    kpis(s, curve)
    llm_panel(session_id, s)
    if s["mode"] == "live":  # live: the money where it really is
        venue_panel(session_id)
    charts(s, status["agents"], curve)


# ---------------------------------------------------------------------- page
session = current_session(db)
if session is None or session["status"] not in ACTIVE:
    st.title("Session")
    if session is None:
        st.info("No session yet — create one below to let the five agents trade.", icon=":material/waving_hand:")
    else:
        ended_view(session["id"])
    create_form()
    previous_sessions(queries.list_sessions(db, limit=PREVIOUS_SHOWN))
else:
    st.title(session["name"])
    st.fragment(run_every=refresh_every())(header_line)(session["id"])
    controls(queries.session_summary(db, session["id"]))
    live = st.fragment(run_every=refresh_every())(live_view)
    live(session["id"], session["status"])
    st.fragment(run_every=refresh_every())(alerts_panel)(session["id"])
