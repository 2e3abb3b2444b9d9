"""Per-agent equity curves: each agent's equity over engine time, from the snapshots the engine
writes for every agent beside the portfolio's, thinned in SQL.

An agent's equity is its allocated capital plus its realized PnL, fees, funding and unrealized
PnL, so a rebalance moves it without a trade: the times of the session's rebalances come with
the curves, for the chart to mark, so a step there is read as capital moved and not as a result.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, or_, select

from core.store.tables import AgentRow, CeoDecisionRow, EquitySnapshotRow

AGENT_EQUITY_COLUMNS = ["agent", "agent_key", "ts_ms", "ts", "equity", "unrealized", "margin_used"]


def agent_equity_curves(engine: Engine, session_id: int, agents: list[str] | None = None,
                        max_points: int = 1000) -> dict[str, Any]:
    """``curves``: one row per kept snapshot per agent (AGENT_EQUITY_COLUMNS, in time order, at
    most about ``max_points`` per agent, the first and the latest always kept); ``rebalances``:
    the engine times (ms) of the session's rebalances. ``agents`` narrows to those names."""
    s = EquitySnapshotRow
    cond: list[Any] = [s.session_id == session_id, s.agent_id.is_not(None)]
    if agents is not None:
        ids = select(AgentRow.id).where(AgentRow.session_id == session_id, AgentRow.name.in_(agents))
        cond.append(s.agent_id.in_(ids))
    numbered = select(
        s.agent_id, s.ts_ms, s.equity, s.unrealized, s.margin_used,
        func.row_number().over(partition_by=s.agent_id, order_by=(s.ts_ms, s.id)).label("rn"),
        func.count().over(partition_by=s.agent_id).label("n"),
    ).where(*cond).subquery()
    with engine.connect() as conn:
        most = conn.scalar(select(func.max(numbered.c.n))) or 0
        every = max(1, -(-int(most) // max(1, max_points)))
        rows = conn.execute(
            select(AgentRow.name, AgentRow.key, numbered.c.ts_ms, numbered.c.equity,
                   numbered.c.unrealized, numbered.c.margin_used)
            .join(AgentRow, AgentRow.id == numbered.c.agent_id)
            .where(or_((numbered.c.rn - 1) % every == 0, numbered.c.rn == numbered.c.n))
            .order_by(numbered.c.ts_ms, AgentRow.id)).all()
        rebalances = list(conn.scalars(
            select(CeoDecisionRow.ts_ms).where(CeoDecisionRow.session_id == session_id,
                                               CeoDecisionRow.kind == "rebalance")
            .order_by(CeoDecisionRow.ts_ms)))
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["agent", "agent_key", "ts_ms", "equity", "unrealized", "margin_used"])
    frame.insert(3, "ts", pd.to_datetime(frame["ts_ms"].astype("int64"), unit="ms", utc=True))
    return {"curves": frame[AGENT_EQUITY_COLUMNS], "rebalances": [int(t) for t in rebalances]}
