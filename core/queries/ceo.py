"""The CEO log: the CEO's decisions, filtered, counted, paged and downloaded alike.

One set of filter arguments (agent, verdict, rule, kind) is shared by the rows, their count and
the CSV, so a download holds exactly what the table shows; ``ceo_filters`` maps the page's
selections to it. Also the per-verdict and per-kind tallies, the rule ids fired, and the
allocation changes (rebalances, pauses, resumes) with their parsed ``changes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, literal, select

from core.queries.common import (
    MONEY_DECIMALS,
    _agent_ids,
    _chosen,
    _iso,
    _iso_column,
    _records,
    _stream_csv,
)
from core.store.tables import AgentRow, CeoDecisionRow

CEO_COLUMNS = [
    "id", "ts", "agent", "symbol", "kind", "verdict", "rules", "reason", "proposed_leverage",
    "final_leverage", "proposed_margin", "final_margin", "changes",
]
CEO_KINDS = ("trade", "pause", "resume", "rebalance", "halt", "session", "execution", "reconcile",
             "llm_budget",  # the day's LLM budget ran out
             "coverage",  # a position's stop re-placed, with how long it was naked
             "engine",  # the engine's ticks failed for a while and now complete again
             "manual")  # a trader's own close, cancel or flatten
VERDICTS = ("approve", "modify", "reject")
ALLOCATION_KINDS = ("rebalance", "pause", "resume")


def ceo_filters(*, agent: str | None = None, verdict: str | None = None, rule: str | None = None,
                kind: str | None = None) -> dict[str, str | None]:
    """The dashboard's CEO-log selections as the keyword filters every ``ceo_log*`` query takes,
    so the table, its count and both downloads always mean the same rows."""
    return {"agent": _chosen(agent), "verdict": _chosen(verdict), "rule": _chosen(rule),
            "kind": _chosen(kind)}


# ---------------------------------------------------------------------- CEO log
def _ceo_where(session_id: int, agent: str | None, verdict: str | None, rule: str | None,
               kind: str | None) -> list[Any]:
    cond: list[Any] = [CeoDecisionRow.session_id == session_id]
    if agent:
        cond.append(CeoDecisionRow.agent_id.in_(_agent_ids(session_id, agent)))
    if verdict:
        cond.append(CeoDecisionRow.verdict == verdict)
    if kind:
        cond.append(CeoDecisionRow.kind == kind)
    if rule:  # an exact rule id inside the comma-separated list, never a substring of another
        cond.append((literal(",") + CeoDecisionRow.rules + literal(",")).contains(f",{rule},", autoescape=True))
    return cond


def _ceo_select(cond: list[Any]) -> Any:
    return (
        select(CeoDecisionRow.id, CeoDecisionRow.ts_ms, AgentRow.name.label("agent"),
               CeoDecisionRow.symbol, CeoDecisionRow.kind, CeoDecisionRow.verdict,
               CeoDecisionRow.rules, CeoDecisionRow.reason, CeoDecisionRow.proposed_leverage,
               CeoDecisionRow.final_leverage, CeoDecisionRow.proposed_margin,
               CeoDecisionRow.final_margin, CeoDecisionRow.changes)
        .outerjoin(AgentRow, AgentRow.id == CeoDecisionRow.agent_id)
        .where(*cond)
        .order_by(CeoDecisionRow.id.desc())
    )


def _ceo_frame(rows: Sequence[Any]) -> pd.DataFrame:
    frame = _records(rows, ["id", "ts_ms", *CEO_COLUMNS[2:]])
    frame.insert(1, "ts", _iso_column(frame.pop("ts_ms")))
    for col in ("proposed_leverage", "final_leverage"):
        frame[col] = frame[col].astype("Int64")
    for col in ("proposed_margin", "final_margin"):  # fractions of equity carry float noise
        frame[col] = frame[col].astype(float).round(MONEY_DECIMALS)
    return frame[CEO_COLUMNS]


def changed_fields(changes: Any) -> set[str]:
    """The fields a CEO decision changed, from its ``changes`` JSON ({field: [before, after]});
    lets a reader tell a real modification from lot-size rounding of an approved order."""
    return set(change_pairs(changes))


def change_pairs(changes: Any) -> dict[str, tuple[Any, Any]]:
    """A CEO decision's ``changes`` JSON as {field: (before, after)}; empty when there is none."""
    if not isinstance(changes, str) or not changes:
        return {}  # None, or NaN once in a DataFrame
    try:
        found = json.loads(changes)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): (v[0], v[1]) if isinstance(v, list) and len(v) == 2 else (None, v)
            for k, v in found.items()}


def ceo_log(engine: Engine, session_id: int, *, agent: str | None = None,
            verdict: str | None = None, rule: str | None = None, kind: str | None = None,
            limit: int | None = 500, offset: int = 0) -> pd.DataFrame:
    """The CEO's decisions, newest first, filtered and paged in SQL (``rule`` is one rule id)."""
    stmt = _ceo_select(_ceo_where(session_id, agent, verdict, rule, kind))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return _ceo_frame(rows)


def ceo_log_count(engine: Engine, session_id: int, *, agent: str | None = None,
                  verdict: str | None = None, rule: str | None = None, kind: str | None = None) -> int:
    """How many decisions ``ceo_log`` would return with the same filters and no limit."""
    cond = _ceo_where(session_id, agent, verdict, rule, kind)
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(CeoDecisionRow).where(*cond)) or 0)


def ceo_log_csv(engine: Engine, session_id: int, *, agent: str | None = None,
                verdict: str | None = None, rule: str | None = None, kind: str | None = None) -> str:
    """Every matching decision as CSV (CEO_COLUMNS, newest first), built in chunks."""
    stmt = _ceo_select(_ceo_where(session_id, agent, verdict, rule, kind))
    return _stream_csv(engine, stmt, _ceo_frame, CEO_COLUMNS)


def ceo_rules(engine: Engine, session_id: int) -> list[str]:
    """Every rule id the CEO has fired in this session, sorted (from the distinct rule lists)."""
    with engine.connect() as conn:
        lists = conn.scalars(
            select(CeoDecisionRow.rules).distinct()
            .where(CeoDecisionRow.session_id == session_id, CeoDecisionRow.rules != "")
        ).all()
    return sorted({r.strip() for rules in lists for r in rules.split(",") if r.strip()})


def ceo_verdict_counts(engine: Engine, session_id: int) -> dict[str, int]:
    """Trade verdicts by kind of verdict (approve / modify / reject), zero when none."""
    with engine.connect() as conn:
        found = dict(conn.execute(
            select(CeoDecisionRow.verdict, func.count())
            .where(CeoDecisionRow.session_id == session_id, CeoDecisionRow.verdict.is_not(None))
            .group_by(CeoDecisionRow.verdict)
        ).all())
    return {v: int(found.get(v, 0)) for v in VERDICTS} | {
        str(k): int(n) for k, n in found.items() if k not in VERDICTS}


def ceo_kind_counts(engine: Engine, session_id: int) -> dict[str, int]:
    """Decisions by kind (trade, pause, resume, rebalance, halt, ...), zero when none."""
    with engine.connect() as conn:
        found = dict(conn.execute(
            select(CeoDecisionRow.kind, func.count())
            .where(CeoDecisionRow.session_id == session_id).group_by(CeoDecisionRow.kind)
        ).all())
    return {k: int(found.get(k, 0)) for k in CEO_KINDS} | {
        str(k): int(n) for k, n in found.items() if k not in CEO_KINDS}


def allocation_changes(engine: Engine, session_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest rebalances, pauses and resumes with their parsed ``changes``: for a rebalance
    ``{agent name: [old share, new share]}`` (fractions of session equity), for a pause or resume
    ``{"status": [old, new]}``."""
    cond = [CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind.in_(ALLOCATION_KINDS)]
    stmt = (select(CeoDecisionRow.id, CeoDecisionRow.ts_ms, CeoDecisionRow.kind,
                   AgentRow.name.label("agent"), CeoDecisionRow.rules, CeoDecisionRow.reason,
                   CeoDecisionRow.changes)
            .outerjoin(AgentRow, AgentRow.id == CeoDecisionRow.agent_id)
            .where(*cond).order_by(CeoDecisionRow.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        try:
            changes = json.loads(r.changes) if r.changes else {}
        except ValueError:
            changes = {}
        out.append({"id": r.id, "ts": _iso(r.ts_ms), "ts_ms": r.ts_ms, "kind": r.kind,
                    "agent": r.agent, "rules": r.rules, "reason": r.reason, "changes": changes})
    return out
