"""Agent cards: one card per strategy agent with its figures (DESIGN.md section 4 metrics), its
status and why, and Pause / Resume buttons that send intents through ``core.service``.

A thin page: it reads ``core.queries.agent_stats`` (aggregated in SQL) and never opens the store.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import queries, service
from dashboard import (
    GROSS_HELP,
    act_in_callback,
    colored,
    current_session,
    duration,
    get_runtime,
    pct,
    refresh_every,
    show_outcome,
    usd,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

COLUMNS = 2
STRATEGY_NOTES = {
    "arbitrage": "**Statistical pair trading, not risk-free.** It bets that the spread between "
                 "two correlated perps (e.g. ETH vs BTC) reverts to normal; spreads can keep "
                 "widening and both legs can lose.",
}
BADGE = {
    "active": ("Active — trading", "green", ":material/play_circle:"),
    "paused": ("Paused — no new trades, stops stay", "orange", ":material/pause_circle:"),
    "stopped": ("Stopped", "gray", ":material/stop_circle:"),
}


def _change(session_id: int, agent_key: str, action: str) -> None:
    """Button callback: runs before the page redraws, so the card shows the new status (or the
    refusal, e.g. the CEO paused the agent meanwhile) straight away."""
    act_in_callback(service.change_agent, db, session_id, agent_key, action)


def _fraction(value: float | None) -> str:
    return "–" if value is None else pct(value * 100)


def _money(value: float, *, signed: bool = False) -> str:
    value = round(value, 2) + 0.0  # no "-0.00"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _cells(rows: list[list[tuple[str, str]]]) -> None:
    """A compact grid of label / value pairs."""
    for row in rows:
        for col, (label, value) in zip(st.columns(len(row)), row, strict=True):
            col.caption(label)
            col.markdown(f"**{value}**")


# --- LLM calls, failure rate, cost and the rules-only twin on each card -----------------
def llm_lines(a: dict[str, Any], llm: dict[str, Any] | None) -> None:
    """Is the LLM paying for itself? Calls, failure rate and cost next to PnL, and the shadow
    baseline (the agent's rule-only twin, traded virtually) when it runs."""
    if not llm:
        return
    if llm["llm_calls"]:
        rate = llm["failure_rate"] or 0.0
        st.markdown(
            f"**LLM:** {llm['llm_calls']:,} calls · failure rate {pct(rate * 100)} "
            f"({llm['llm_call_failures']:,} failed) · cost {usd(llm['llm_cost_usd'])} · "
            f"PnL after LLM cost {colored(usd(a['pnl'] - llm['llm_cost_usd'], signed=True), a['pnl'])}",
            help="Failure rate: calls that failed or whose reply was invalid (recorded as "
                 "failures, never as a hold). Cost is estimated from tokens × LLM_PRICES.")
    if "shadow_pnl" in llm:
        edge = a["pnl"] - llm["shadow_pnl"]
        st.markdown(
            f"**Rules-only twin (shadow):** PnL {colored(usd(llm['shadow_pnl'], signed=True), llm['shadow_pnl'])} "
            f"over {llm['shadow_trades']:,} closed + {llm['shadow_open']} open virtual trades · "
            f"LLM edge {colored(usd(edge, signed=True), edge)}",
            help="The agent's rules alone, on the same market, sized by the same hard rules and "
                 "filled in a virtual paper book (slippage and fees, never sent).")


def card(agent: dict[str, Any], session_id: int, can_act: bool,
         llm: dict[str, Any] | None = None) -> None:
    a = agent
    with st.container(border=True, height="stretch"):
        head, button = st.columns([3, 1], vertical_alignment="center")
        head.markdown(f"#### {a['name']}")
        if can_act and a["status"] == "active":
            button.button("Pause", key=f"pause_{a['key']}", icon=":material/pause:",
                          width="stretch", on_click=_change,
                          args=(session_id, a["key"], "pause"),
                          help=f"Pause {a['name']}: no new trades; its open positions keep "
                               "their stops.")
        elif can_act and a["status"] == "paused":
            button.button("Resume", key=f"resume_{a['key']}", icon=":material/play_arrow:",
                          type="primary", width="stretch", on_click=_change,
                          args=(session_id, a["key"], "resume"),
                          help=f"Let {a['name']} trade again with a fresh record.")
        st.caption(f"{a['strategy'].capitalize()} · model: {a['model']} · "
                   f"{a['risk_level']} risk · max {a['max_leverage']}x leverage")
        label, color, icon = BADGE.get(a["status"], (a["status"], "gray", None))
        st.badge(label, color=color, icon=icon)  # type: ignore[arg-type]
        if a["status"] != "active":
            st.caption(f"Why: {a['pause_reason'] or 'no reason recorded'}")

        st.markdown(f"### {colored(usd(a['pnl'], signed=True), a['pnl'])} "
                    f"{colored('(' + pct(a['pnl_pct'], signed=True) + ')', a['pnl_pct'])}",
                    help="Total PnL in USDT, and the agent's time-weighted return: each period "
                         "between the CEO's rebalances counts by its own growth, so moving "
                         "capital in or out never moves the %; only trades do")
        st.caption(f"Gross {_money(a['realized_pnl'], signed=True)} "
                   f"· unrealized {_money(a['unrealized_pnl'], signed=True)} "
                   f"· fees paid {_money(a['fees'])} "
                   f"· funding {_money(a['funding'], signed=True)} USDT",
                   help=f"{GROSS_HELP} Total PnL = gross + unrealized − fees + funding.")
        _cells([
            [("Capital (USDT)", _money(a["capital"])), ("Equity (USDT)", _money(a["equity"])),
             ("Allocation", f"{pct(a['allocation_pct'])} of desk")],
            [("Win rate", _fraction(a["win_rate"]) if a["trades"] else "– (no trades yet)"),
             ("Closed trades", f"{a['trades']:,}"),
             ("Avg trade duration", duration(a["avg_duration_s"]))],
            [("Open positions", f"{a['open_positions']}"),
             ("Capital utilization", _fraction(a["utilization"])),
             ("Fees paid (USDT)", _money(a["fees"]))],
        ])
        llm_lines(a, llm)
        if a["llm_failures"]:
            st.warning(f"{a['llm_failures']:,} LLM call failures recorded — see the CEO log.")
        note = STRATEGY_NOTES.get(a["key"])
        if note:
            st.warning(note, icon=":material/info:")


def cards(session_id: int, shown_status: str) -> None:
    now = current_session(db)
    if now is None or (now["id"], now["status"]) != (session_id, shown_status):
        st.rerun(scope="app")  # a new session or a new status: redraw the whole page
    show_outcome()
    can_act = shown_status not in ("stopped", "stopping")
    agents = queries.agent_stats(db, session_id)
    llm = queries.agent_llm_stats(db, session_id)
    if not agents:
        st.info("This session has no agents.")
        return
    for start in range(0, len(agents), COLUMNS):
        cols = st.columns(COLUMNS, gap="medium")
        for col, agent in zip(cols, agents[start:start + COLUMNS], strict=False):
            with col:
                card(agent, session_id, can_act, llm.get(agent["id"]))


st.title("Agents")
session = current_session(db)
if session is None:
    st.info("No session yet — create one on the Session page to see the five agents trade.",
            icon=":material/waving_hand:")
    st.page_link("views/session.py", label="Go to the Session page", icon=":material/arrow_forward:")
else:
    can_act = session["status"] not in ("stopped", "stopping")
    st.caption(f"**{session['name']}** ({session['status']}) · five strategy agents "
               "propose trades; the CEO approves, modifies or rejects each one under hard risk "
               "rules and pauses agents that underperform.")
    if session["status"] == "halted":
        st.error("Session halted at the portfolio drawdown limit: every position was closed and "
                 "the agents were stopped. Acknowledge the halt on the Session page to let them "
                 "trade again.", icon=":material/report:")
        st.page_link("views/session.py", label="Go to the Session page",
                     icon=":material/arrow_forward:")
    if not can_act:
        st.info(f"Session {session['status']}: these are its final figures. Agents cannot be "
                "paused or resumed; create a new session on the Session page.")
    live = st.fragment(run_every=refresh_every())(cards)
    live(session["id"], session["status"])
