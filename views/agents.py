"""Agent cards: one card per strategy agent with its figures (DESIGN.md section 4 metrics), its
status and why, and Pause / Resume buttons that send intents through ``core.service``; then each
agent's parameters (what the session on screen runs with, and what the strategy file sets for new
sessions, with meaning, default and what is accepted) and an editor that saves to the strategy
file through ``service.save_strategy_params`` (validated by the same models as the file).

A thin page: it reads ``core.queries`` (aggregated in SQL) and never opens the store or the file.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import queries, service
from core.errors import DeskError
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


# --- parameters: what the session runs with, what the strategy file sets for new sessions -----
SAVED = "agent_params_saved"
PARAMS_COLUMNS: dict[str, Any] = {
    "param": st.column_config.TextColumn("Parameter"),
    "session": st.column_config.TextColumn("This session", help="Stored when the session was "
                                           "created; it never changes while the session runs"),
    "value": st.column_config.TextColumn("New sessions", help="What the strategy file sets now"),
    "default": st.column_config.TextColumn("Default"),
    "bounds": st.column_config.TextColumn("Accepts"),
    "description": st.column_config.TextColumn("Meaning"),
}


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _clean(value: Any) -> Any:
    """A widget's float without binary noise (0.39999999999999997 → 0.4)."""
    return float(f"{value:.10g}") if isinstance(value, float) else value


def _input(row: dict[str, Any], key: str) -> Any:
    label, help_ = row["param"], f"{row['description']}; {row['bounds']}; default {_text(row['default'])}"
    if row["kind"] == "choice":
        return st.selectbox(label, row["choices"], index=row["choices"].index(row["value"]),
                            key=key, help=help_)
    if row["kind"] == "int":
        return st.number_input(label, min_value=row["min"], max_value=row["max"],
                               value=row["value"], step=1, key=key, help=help_)
    step = (row["search"] or {}).get("step") or 0.01
    return st.number_input(label, min_value=float(row["min"]), max_value=float(row["max"]),
                           value=float(row["value"]), step=float(step), format="%.4f", key=key,
                           help=help_)


def _editor(rows: list[dict[str, Any]], key: str, file_name: str) -> None:
    with st.form(f"params_form_{key}", border=False):
        cols = st.columns(3)
        given = {}
        for i, row in enumerate(rows):
            with cols[i % 3]:
                given[row["name"]] = _input(row, f"param_{row['name']}")
        saved = st.form_submit_button(f"Save to {file_name} for new sessions",
                                      icon=":material/save:", type="primary")
    if saved:
        changed = {name: _clean(v) for name, v in given.items()
                   if _clean(v) != next(r["value"] for r in rows if r["name"] == name)}
        try:
            st.session_state[SAVED] = service.save_strategy_params(settings, changed)
        except DeskError as exc:
            st.error(f"Not saved: {exc}", icon=":material/error:")
            return
        st.rerun()


def parameters(session: dict[str, Any] | None) -> None:
    st.subheader("Parameters")
    file_name = settings.strategies_file.name
    try:
        configured = queries.strategy_file_params(settings)
    except DeskError as exc:
        st.error(f"The strategy file cannot be used, so new sessions and backtests are refused "
                 f"until it is fixed: {exc}", icon=":material/error:")
        return
    running = queries.session_params(db, session["id"]) if session is not None else None
    st.caption(
        (f"**This session** shows what {session['name']} runs with: stored when it was created, "
         "never changed while it runs. " if session is not None else "")
        + f"**New sessions** shows what {file_name} sets: new sessions and backtests start on it. "
        f"Saving an edit rewrites {file_name} (every value with its comment) and applies to new "
        "sessions only, never to a running one.")
    saved = st.session_state.pop(SAVED, None)
    if saved:
        st.success(saved, icon=":material/check_circle:")
    rows = queries.parameter_rows(configured, running=running)
    agents = list(dict.fromkeys((r["agent"], r["agent_name"]) for r in rows))
    tabs = st.tabs([name for _, name in agents] + ["Roster"])
    for (key, _), tab in zip(agents, tabs, strict=False):
        with tab:
            mine = [r for r in rows if r["agent"] == key and r["group"] == "strategy"]
            _table(mine, running is not None)
            if st.toggle("Edit for new sessions", key=f"edit_params_{key}"):
                _editor(mine, key, file_name)
    with tabs[-1]:
        roster = [{**r, "param": f"{r['agent_name']}: {r['param']}"} for r in rows
                  if r["group"] == "roster"]
        _table(roster, running is not None)
        st.caption("The five capital shares must sum to 1; the risk level caps leverage (low 5x, "
                   "medium 10x, high 20x); the model is used only when its key is set.")
        if st.toggle("Edit for new sessions", key="edit_params_roster"):
            _editor(roster, "roster", file_name)


def _table(rows: list[dict[str, Any]], with_session: bool) -> None:
    shown = [{k: _text(r[k]) if k in ("session", "value", "default") else r[k]
              for k in PARAMS_COLUMNS if k in r} for r in rows]
    columns = {k: v for k, v in PARAMS_COLUMNS.items() if with_session or k != "session"}
    st.dataframe(shown, hide_index=True, width="stretch", column_config=columns,
                 column_order=list(columns))


st.title("Agents")
session = current_session(db)
if session is None:
    st.info("No session yet — create one on the Session page to see the five agents trade.",
            icon=":material/waving_hand:")
    st.page_link("views/session.py", label="Go to the Session page", icon=":material/arrow_forward:")
    parameters(None)
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
    parameters(session)
