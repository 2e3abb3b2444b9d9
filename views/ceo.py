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
from core.ui import (
    LOSS,
    NEUTRAL,
    PROFIT,
    get_runtime,
    pager,
    pct,
    refresh_every,
    session_or_stop,
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
    "llm_budget": "LLM budget spent",  # issue 5
}


def _reset_page() -> None:
    st.session_state[PAGE_KEY] = 1


def _amount(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _before_after(before: Any, after: Any, fmt: Any, unit: str, changed: bool) -> str:
    """"20x → 7x" when the CEO changed the value, the value alone when not (an approved order's
    margin still moves a little with the venue's lot size), "–" when the row has none."""
    b = None if pd.isna(before) else float(before)
    a = None if pd.isna(after) else float(after)
    if b is None and a is None:
        return "–"
    if not changed or b is None or a is None or fmt(a) == fmt(b):
        return f"{fmt(b if a is None else a)}{unit}"
    return f"{fmt(b)} → {fmt(a)}{unit}"


MARGIN_FIELDS = {"margin", "margin_fraction", "quantity"}


def log_table(frame: pd.DataFrame) -> Any:
    """The page of decisions as people read it, verdicts coloured."""
    changed = [queries.changed_fields(c) for c in frame["changes"]]
    shown = pd.DataFrame({
        "Time (UTC)": frame["ts"],
        "Agent": frame["agent"].fillna("Desk"),
        "Symbol": frame["symbol"].fillna("–"),
        "Kind": frame["kind"].map(lambda k: KIND_LABEL.get(k, k)),
        "Verdict": frame["verdict"].map(lambda v: VERDICT_LABEL.get(v, v) if isinstance(v, str) else "–"),
        "Rules fired": frame["rules"].map(lambda r: ", ".join(x for x in r.split(",") if x) or "–"),
        "Leverage": [_before_after(b, a, lambda v: f"{int(v)}x", "", "leverage" in c)
                     for b, a, c in zip(frame["proposed_leverage"], frame["final_leverage"], changed, strict=True)],
        "Margin": [_before_after(b, a, _amount, " USDT", bool(c & MARGIN_FIELDS))
                   for b, a, c in zip(frame["proposed_margin"], frame["final_margin"], changed, strict=True)],
        "Reason": frame["reason"],
    })
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
        st.dataframe(log_table(frame), hide_index=True, width="stretch", height=560,
                     column_config={"Reason": st.column_config.TextColumn(width="large")})
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


def _share(value: float | None) -> str:
    return "–" if value is None else pct(value * 100)


@st.fragment(run_every=refresh_every())
def allocations(session_id: int) -> None:
    events = queries.allocation_changes(db, session_id, limit=50)
    if not events:
        st.info("No pauses or rebalances yet. On the engine clock the CEO pauses an agent after a "
                "10% drawdown from its peak, 4 losses in a row or a win rate under 30% over 10 "
                "trades, and shifts free capital toward better agents once enough trades exist.")
        return
    shares = [
        {"Time (UTC)": e["ts"], "Agent": agent, "Before": _share(old), "After": _share(new),
         "Change": (new - old) * 100}
        for e in events if e["kind"] == "rebalance"
        for agent, (old, new) in e["changes"].items()
        if isinstance(old, int | float) and isinstance(new, int | float)
    ]
    status = [
        {"Time (UTC)": e["ts"], "Agent": e["agent"] or "Desk",
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
                frame.style.format("{:+.2f} pp", subset=["Change"])
                .map(lambda v: f"color: {PROFIT if v > 0 else LOSS if v < 0 else NEUTRAL}",
                     subset=["Change"]),
                hide_index=True, width="stretch", height=320)
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
           "risk rules; times are the session's engine time (UTC).")
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
