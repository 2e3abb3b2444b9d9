"""CEO decision log: every verdict on a proposal (approve / modify / reject, the rules that fired,
the values before and after, and why), every pause, resume, rebalance and halt.

A thin page: filters map to ``core.queries.ceo_filters`` so the table, its count and the filtered
download always mean the same rows; the table is paged in SQL and the header counts are SQL
aggregates, so the page stays fast however long the log grows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import queries
from dashboard import (
    LEVERAGE,
    LOSS,
    MISSING,
    MONEY,
    NEUTRAL,
    PROFIT,
    get_runtime,
    number_column,
    pager,
    refresh_every,
    session_or_stop,
    shown_times,
    zone_name,
    zoned,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

PAGE_SIZE = 50
PAGE_KEY = "ceo_page"
ALL = "All"
VERDICT_LABEL = {"approve": "✓ approve", "modify": "✎ modify", "reject": "✕ reject"}
VERDICT_COLOR = {VERDICT_LABEL["approve"]: PROFIT, VERDICT_LABEL["modify"]: "#d97706",
                 VERDICT_LABEL["reject"]: LOSS}
KIND_LABEL = {
    "trade": "trade verdict", "pause": "pause", "resume": "resume", "rebalance": "rebalance",
    "halt": "drawdown halt", "session": "session", "execution": "execution", "reconcile": "reconcile",
    "llm_budget": "LLM budget spent",
}


def _reset_page() -> None:
    st.session_state[PAGE_KEY] = 1


def _final(before: Any, after: Any) -> float | None:
    """The value that stood after the verdict: the CEO's, else (a reject) the proposal's."""
    for value in (after, before):
        if not pd.isna(value):
            return float(value)
    return None


def _proposed(before: Any, after: Any, changed: bool, decimals: int) -> float | None:
    """The proposal's value when the CEO changed it (an approved order's margin still moves a
    little with the venue's lot size: that is no change); None otherwise."""
    if not changed or pd.isna(before) or pd.isna(after) or round(before - after, decimals) == 0:
        return None
    return float(before)


MARGIN_FIELDS = {"margin", "margin_fraction", "quantity"}
LOG_COLUMNS = {
    "Leverage": number_column("Leverage", LEVERAGE),
    "Proposed leverage": number_column("Proposed leverage", LEVERAGE,
                                       help="What the agent asked for, when the CEO changed it"),
    "Margin": number_column("Margin (USDT)", MONEY),
    "Proposed margin": number_column("Proposed margin (USDT)", MONEY,
                                     help="What the agent asked for, when the CEO changed it"),
    "Reason": st.column_config.TextColumn(width="large"),
}


def _rules(rules: str) -> str:
    return ", ".join(x for x in rules.split(",") if x) or "–"


def log_table(frame: pd.DataFrame) -> Any:
    """The page of decisions as people read it, verdicts coloured; leverage and margin are
    numbers (as decided, and as proposed when the CEO changed them)."""
    changed = [queries.changed_fields(c) for c in frame["changes"]]
    lev = list(zip(frame["proposed_leverage"], frame["final_leverage"], changed, strict=True))
    margin = list(zip(frame["proposed_margin"], frame["final_margin"], changed, strict=True))
    shown = pd.DataFrame({
        zoned("Time"): shown_times(frame["ts"]),
        "Agent": frame["agent"].fillna("Desk"),
        "Verdict": frame["verdict"].map(lambda v: VERDICT_LABEL.get(v, v) if isinstance(v, str) else "–"),
        "Reason": frame["reason"],
        "Rules fired": frame["rules"].map(_rules),
        "Symbol": frame["symbol"].fillna("–"),
        "Kind": frame["kind"].map(lambda k: KIND_LABEL.get(k, k)),
        "Leverage": [_final(b, a) for b, a, _ in lev],
        "Proposed leverage": [_proposed(b, a, "leverage" in c, 0) for b, a, c in lev],
        "Margin": [_final(b, a) for b, a, _ in margin],
        "Proposed margin": [_proposed(b, a, bool(c & MARGIN_FIELDS), 2) for b, a, c in margin],
    }).astype({"Leverage": float, "Proposed leverage": float, "Margin": float,
               "Proposed margin": float})
    return shown.style.map(lambda v: f"color: {VERDICT_COLOR.get(v, NEUTRAL)}", subset=["Verdict"])


@st.fragment(run_every=refresh_every())
def header(session_id: int) -> None:
    verdicts = queries.ceo_verdict_counts(db, session_id)
    kinds = queries.ceo_kind_counts(db, session_id)
    cols = st.columns(6)
    cols[0].metric("Approved", f"{verdicts['approve']:,}")
    cols[1].metric("Modified", f"{verdicts['modify']:,}", help="Approved after the hard rules "
                   "clamped leverage, margin or exposure.")
    cols[2].metric("Rejected", f"{verdicts['reject']:,}")
    cols[3].metric("Pauses", f"{kinds['pause']:,}", help=f"{kinds['resume']:,} resumes")
    cols[4].metric("Rebalances", f"{kinds['rebalance']:,}")
    cols[5].metric("Halts", f"{kinds['halt']:,}", help="Portfolio drawdown halts (15% below peak).")


@st.fragment(run_every=refresh_every())
def decision_log(session_id: int, filters: dict[str, Any]) -> None:
    total = queries.ceo_log_count(db, session_id, **filters)
    everything = total if not any(filters.values()) else queries.ceo_log_count(db, session_id)
    if everything == 0:
        st.info("No CEO decisions yet. Start the engine from the Session page (or run "
                "`./desk engine`): every proposal the agents make is judged and logged here.")
        return
    if total == 0:
        st.info("No decisions match these filters. Set a filter back to *All* to widen the search.")
    else:
        offset = pager(total, page_size=PAGE_SIZE, key=PAGE_KEY, noun="decisions",
                       order="newest first")
        frame = queries.ceo_log(db, session_id, **filters, limit=PAGE_SIZE, offset=offset)
        picked = st.dataframe(log_table(frame), hide_index=True, width="stretch", height=560,
                              column_config=LOG_COLUMNS, placeholder=MISSING, key="ceo_log_table",
                              on_select="rerun", selection_mode="single-row")
        rows = picked.selection.rows if picked is not None else []
        if rows:
            decision_detail(frame.iloc[rows[0]])
        else:
            st.caption("Select a row to read its reason in full, with the rules that fired and "
                       "what the CEO changed.")
    left, right = st.columns(2)
    left.download_button(
        f"Download filtered ({total:,} decisions)",
        data=lambda: queries.ceo_log_csv(db, session_id, **filters),
        file_name=f"ceo_log_session_{session_id}_filtered.csv", mime="text/csv",
        icon=":material/download:", on_click="ignore", disabled=total == 0, key="ceo_csv_filtered")
    right.download_button(
        f"Download whole log ({everything:,} decisions)",
        data=lambda: queries.ceo_log_csv(db, session_id),
        file_name=f"ceo_log_session_{session_id}.csv", mime="text/csv",
        icon=":material/download:", on_click="ignore", key="ceo_csv_all")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    return "–" if value is None else str(value)


def decision_detail(row: pd.Series) -> None:
    """One decision in full: the reason wraps, the rules and every changed value beside it."""
    who = row["agent"] if isinstance(row["agent"], str) else "Desk"
    verdict = VERDICT_LABEL.get(row["verdict"], "") if isinstance(row["verdict"], str) else ""
    symbol = f" · {row['symbol']}" if isinstance(row["symbol"], str) else ""
    with st.container(border=True):
        st.markdown(f"**{shown_times(row['ts'])} {zone_name()} · {who}{symbol} · "
                    f"{KIND_LABEL.get(row['kind'], row['kind'])}** {verdict}")
        st.markdown(str(row["reason"]))
        st.caption(f"Rules fired: {_rules(row['rules'])}")
        changes = queries.change_pairs(row["changes"])
        if changes:
            st.caption("Changed by the CEO: " + "; ".join(
                f"{field.replace('_', ' ')} {_value(before)} → {_value(after)}"
                for field, (before, after) in sorted(changes.items())))


SHARE_COLUMNS = {
    "Before": number_column("Before", "%.2f%%"), "After": number_column("After", "%.2f%%"),
    "Change": number_column("Change", "%+.2f pp", help="Percentage points of session equity"),
}


@st.fragment(run_every=refresh_every())
def allocations(session_id: int) -> None:
    events = queries.allocation_changes(db, session_id, limit=50)
    if not events:
        st.info("No pauses or rebalances yet. On the engine clock the CEO pauses an agent after a "
                "10% drawdown from its peak, 4 losses in a row or a win rate under 30% over 10 "
                "trades, and shifts free capital toward better agents once enough trades exist.")
        return
    shares = [
        {zoned("Time"): shown_times(e["ts"]), "Agent": agent, "Before": old * 100, "After": new * 100,
         "Change": (new - old) * 100}
        for e in events if e["kind"] == "rebalance"
        for agent, (old, new) in e["changes"].items()
        if isinstance(old, int | float) and isinstance(new, int | float)
    ]
    status = [
        {zoned("Time"): shown_times(e["ts"]), "Agent": e["agent"] or "Desk",
         "Change": " → ".join(e["changes"].get("status", [])) or KIND_LABEL.get(e["kind"], e["kind"]),
         "Rule": (e["rules"] or "–").replace(",", ", "), "Reason": e["reason"]}
        for e in events if e["kind"] in ("pause", "resume")
    ]
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Rebalances** — share of session equity, old → new")
        if shares:
            frame = pd.DataFrame(shares)
            st.dataframe(
                frame.style.map(lambda v: f"color: {PROFIT if v > 0 else LOSS if v < 0 else NEUTRAL}",
                                subset=["Change"]),
                hide_index=True, width="stretch", height=320, column_config=SHARE_COLUMNS,
                placeholder=MISSING)
        else:
            st.caption("No rebalance among the latest events.")
    with right:
        st.markdown("**Pauses and resumes**")
        if status:
            st.dataframe(pd.DataFrame(status), hide_index=True, width="stretch",
                         column_config={"Reason": st.column_config.TextColumn(width="large")})
        else:
            st.caption("No pause or resume among the latest events.")
    st.caption(f"The latest {len(events)} pauses, resumes and rebalances; the full history is in "
               "the log above (filter Kind).")


st.title("CEO decision log")
session = session_or_stop(
    db, "every verdict the CEO gives, every pause and every rebalance will be logged here.")

sid = int(session["id"])
st.caption(f"{session['name']} · every proposal is approved, modified or rejected under the hard "
           f"risk rules; times are the session's engine time, in {zone_name()}.")
header(sid)

st.subheader("Decisions")
f1, f2, f3, f4 = st.columns(4)
agent = f1.selectbox("Agent", [ALL, *queries.agent_names(db, sid)], key="ceo_agent", on_change=_reset_page)
verdict = f2.selectbox("Verdict", [ALL, *queries.VERDICTS], key="ceo_verdict", on_change=_reset_page,
                       format_func=lambda v: VERDICT_LABEL.get(v, v))
rule = f3.selectbox("Rule fired", [ALL, *queries.ceo_rules(db, sid)], key="ceo_rule",
                    on_change=_reset_page)
kind = f4.selectbox("Kind", [ALL, *queries.CEO_KINDS], key="ceo_kind", on_change=_reset_page,
                    format_func=lambda k: KIND_LABEL.get(k, k))
decision_log(sid, queries.ceo_filters(agent=agent, verdict=verdict, rule=rule, kind=kind))

st.subheader("Pauses and rebalances")
allocations(sid)
