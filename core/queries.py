"""The read model shared by the CLI and the dashboard.

Aggregates are computed in SQL and long tables are paged (``limit``/``offset``), so a page stays fast
however long the history grows. Unrealized PnL uses the marks the engine writes with every tick.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.lease import wall_ms
from core.models import ms_to_dt
from core.store.tables import (
    AgentRow,
    CeoDecisionRow,
    EngineLeaseRow,
    EquitySnapshotRow,
    FillRow,
    OrderRow,
    PositionRow,
    SessionRow,
)

TRADE_COLUMNS = [
    "trade_id", "session_id", "agent", "strategy", "symbol", "side", "leverage", "qty",
    "entry_price", "exit_price", "margin", "opened_at", "closed_at", "duration_s", "fees",
    "funding", "realized_pnl", "close_reason",
]
CEO_COLUMNS = [
    "id", "ts", "agent", "symbol", "kind", "verdict", "rules", "reason", "proposed_leverage",
    "final_leverage", "proposed_margin", "final_margin", "changes",
]


def _iso(ms: int | None) -> str | None:
    return ms_to_dt(ms).strftime("%Y-%m-%d %H:%M:%S") if ms is not None else None


def list_sessions(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(SessionRow.id, SessionRow.name, SessionRow.status, SessionRow.mode,
                   SessionRow.initial_capital, SessionRow.created_ms).order_by(SessionRow.id.desc())
        ).all()
    return [dict(r._mapping) for r in rows]


def _marks(raw: str | None) -> dict[str, float]:
    return json.loads(raw) if raw else {}


def agent_stats(engine: Engine, session_id: int) -> list[dict[str, Any]]:
    """Per-agent figures (DESIGN.md section 4 metrics), aggregated in SQL."""
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    closed = PositionRow.status == "closed"
    with engine.connect() as conn:
        marks = _marks(conn.scalar(select(SessionRow.marks).where(SessionRow.id == session_id)))
        agg = {
            r.agent_id: r for r in conn.execute(
                select(
                    PositionRow.agent_id,
                    func.sum(case((closed, 1), else_=0)).label("trades"),
                    func.sum(case((and_(closed, net > 0), 1), else_=0)).label("wins"),
                    func.avg(case((closed, PositionRow.closed_ms - PositionRow.opened_ms))).label("avg_ms"),
                ).where(PositionRow.session_id == session_id).group_by(PositionRow.agent_id)
            )
        }
        open_rows = conn.execute(
            select(PositionRow.agent_id, PositionRow.symbol, PositionRow.side, PositionRow.quantity,
                   PositionRow.entry_price, PositionRow.margin)
            .where(PositionRow.session_id == session_id, PositionRow.status == "open")
        ).all()
    with Session(engine) as db:
        agents = db.scalars(
            select(AgentRow).where(AgentRow.session_id == session_id).order_by(AgentRow.id)
        ).all()
    out = []
    for a in agents:
        mine = [p for p in open_rows if p.agent_id == a.id]
        unrealized = sum(
            (marks.get(p.symbol, p.entry_price) - p.entry_price) * p.quantity * (1 if p.side == "LONG" else -1)
            for p in mine
        )
        margin = sum(p.margin for p in mine)
        equity = a.capital + a.realized_pnl - a.fees + a.funding + unrealized
        pnl = a.realized_pnl - a.fees + a.funding + unrealized
        stats = agg.get(a.id)
        trades = int(stats.trades or 0) if stats else 0
        wins = int(stats.wins or 0) if stats else 0
        out.append({
            "id": a.id, "key": a.key, "name": a.name, "strategy": a.strategy, "model": a.model,
            "risk_level": a.risk_level, "max_leverage": a.max_leverage, "status": a.status,
            "pause_reason": a.pause_reason, "capital": round(a.capital, 2),
            "equity": round(equity, 2), "pnl": round(pnl, 2),
            "pnl_pct": round(pnl / a.capital * 100, 3) if a.capital else 0.0,
            "realized_pnl": round(a.realized_pnl, 2), "unrealized_pnl": round(unrealized, 2),
            "fees": round(a.fees, 2), "funding": round(a.funding, 2),
            "win_rate": round(wins / trades, 4) if trades else None, "trades": trades,
            "open_positions": len(mine),
            "avg_duration_s": round(float(stats.avg_ms) / 1000, 1) if stats and stats.avg_ms else None,
            "utilization": round(margin / equity, 4) if equity > 0 else 0.0,
            "margin_in_use": round(margin, 2), "llm_failures": a.llm_failures,
        })
    total_equity = sum(a["equity"] for a in out) or 1.0
    for a in out:
        a["allocation_pct"] = round(a["equity"] / total_equity * 100, 2)
    return out


def session_status(engine: Engine, session_id: int) -> dict[str, Any]:
    """The session and its agents, as ``session status --json`` prints them."""
    agents = agent_stats(engine, session_id)
    with Session(engine) as db:
        s = db.get(SessionRow, session_id)
    if s is None:
        raise NotFound(f"no session {session_id}")
    with engine.connect() as conn:
        heartbeat = conn.scalar(select(EngineLeaseRow.heartbeat_ms).where(EngineLeaseRow.session_id == session_id))
        verdicts = dict(conn.execute(
            select(CeoDecisionRow.verdict, func.count())
            .where(CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "trade")
            .group_by(CeoDecisionRow.verdict)
        ).all())
        counts = conn.execute(
            select(
                func.count(OrderRow.id).label("orders"),
            ).where(OrderRow.session_id == session_id)
        ).one()
        fills = conn.scalar(select(func.count(FillRow.id)).where(FillRow.session_id == session_id))
    equity = sum(a["equity"] for a in agents)
    peak = max(s.peak_equity, equity)
    return {
        "session": {
            "id": s.id, "name": s.name, "status": s.status, "status_reason": s.status_reason,
            "mode": s.mode, "market_source": s.market_source, "symbols": s.symbols.split(","),
            "initial_capital": s.initial_capital, "equity": round(equity, 2),
            "total_pnl": round(equity - s.initial_capital, 2),
            "total_pnl_pct": round((equity / s.initial_capital - 1) * 100, 3),
            "drawdown_pct": round(max(0.0, (peak - equity) / peak) * 100, 3) if peak > 0 else 0.0,
            "max_drawdown_pct": round(s.max_drawdown_pct * 100, 3),
            "peak_equity": round(peak, 2),
            "engine_time": _iso(s.clock_ms), "ticks": s.ticks,
            "open_positions": sum(a["open_positions"] for a in agents),
            "closed_trades": sum(a["trades"] for a in agents),
            "orders": counts.orders, "fills": fills,
            "verdicts": {v: verdicts.get(v, 0) for v in ("approve", "modify", "reject")},
            "heartbeat_age_s": round((wall_ms() - heartbeat) / 1000, 1) if heartbeat else None,
            "last_error": s.last_error,
        },
        "agents": agents,
    }


def ceo_log(engine: Engine, session_id: int, *, agent: str | None = None,
            verdict: str | None = None, rule: str | None = None, kind: str | None = None,
            limit: int | None = 500, offset: int = 0) -> pd.DataFrame:
    """The CEO's decisions, newest first, filtered and paged in SQL."""
    stmt = (
        select(CeoDecisionRow.id, CeoDecisionRow.ts_ms, AgentRow.name.label("agent"),
               CeoDecisionRow.symbol, CeoDecisionRow.kind, CeoDecisionRow.verdict,
               CeoDecisionRow.rules, CeoDecisionRow.reason, CeoDecisionRow.proposed_leverage,
               CeoDecisionRow.final_leverage, CeoDecisionRow.proposed_margin,
               CeoDecisionRow.final_margin, CeoDecisionRow.changes)
        .outerjoin(AgentRow, AgentRow.id == CeoDecisionRow.agent_id)
        .where(CeoDecisionRow.session_id == session_id)
        .order_by(CeoDecisionRow.id.desc())
    )
    if agent:
        stmt = stmt.where(AgentRow.name == agent)
    if verdict:
        stmt = stmt.where(CeoDecisionRow.verdict == verdict)
    if kind:
        stmt = stmt.where(CeoDecisionRow.kind == kind)
    if rule:
        stmt = stmt.where(CeoDecisionRow.rules.contains(rule))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["id", "ts_ms", *CEO_COLUMNS[2:]])
    frame.insert(1, "ts", [_iso(int(t)) for t in frame.pop("ts_ms")])
    return frame[CEO_COLUMNS]


def trades(engine: Engine, session_id: int, *, agent: str | None = None,
           symbol: str | None = None, limit: int | None = 500, offset: int = 0) -> pd.DataFrame:
    """Closed trades, newest first, with the columns of DESIGN.md section 8."""
    stmt = (
        select(PositionRow.id, PositionRow.session_id, AgentRow.name, AgentRow.strategy,
               PositionRow.symbol, PositionRow.side, PositionRow.leverage, PositionRow.exit_qty,
               PositionRow.entry_price, PositionRow.exit_price, PositionRow.margin,
               PositionRow.opened_ms, PositionRow.closed_ms, PositionRow.fees,
               PositionRow.funding, PositionRow.realized_pnl, PositionRow.close_reason)
        .join(AgentRow, AgentRow.id == PositionRow.agent_id)
        .where(PositionRow.session_id == session_id, PositionRow.status == "closed")
        .order_by(PositionRow.closed_ms.desc(), PositionRow.id.desc())
    )
    if agent:
        stmt = stmt.where(AgentRow.name == agent)
    if symbol:
        stmt = stmt.where(PositionRow.symbol == symbol)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    records = [{
        "trade_id": r.id, "session_id": r.session_id, "agent": r.name, "strategy": r.strategy,
        "symbol": r.symbol, "side": r.side, "leverage": r.leverage, "qty": r.exit_qty,
        "entry_price": r.entry_price, "exit_price": r.exit_price, "margin": round(r.margin, 4),
        "opened_at": _iso(r.opened_ms), "closed_at": _iso(r.closed_ms),
        "duration_s": (r.closed_ms - r.opened_ms) / 1000, "fees": round(r.fees, 6),
        "funding": round(r.funding, 6), "realized_pnl": round(r.realized_pnl, 6),
        "close_reason": r.close_reason,
    } for r in rows]
    return pd.DataFrame(records, columns=TRADE_COLUMNS)


def open_positions(engine: Engine, session_id: int) -> pd.DataFrame:
    with Session(engine) as db:
        marks = _marks(db.scalar(select(SessionRow.marks).where(SessionRow.id == session_id)))
        rows = db.execute(
            select(PositionRow, AgentRow.name.label("agent"))
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(PositionRow.session_id == session_id, PositionRow.status == "open")
            .order_by(PositionRow.opened_ms)
        ).all()
    records = []
    for pos, agent in rows:
        mark = marks.get(pos.symbol, pos.entry_price)
        sign = 1 if pos.side == "LONG" else -1
        records.append({
            "agent": agent, "symbol": pos.symbol, "side": pos.side, "qty": pos.quantity,
            "entry_price": pos.entry_price, "mark_price": mark, "leverage": pos.leverage,
            "margin": round(pos.margin, 2),
            "unrealized_pnl": round((mark - pos.entry_price) * pos.quantity * sign, 2),
            "stop_price": pos.stop_price, "take_profit": pos.take_profit,
            "liquidation_price": pos.liquidation_price, "opened_at": _iso(pos.opened_ms),
        })
    return pd.DataFrame(records)


def equity_curve(engine: Engine, session_id: int, agent_id: int | None = None,
                 max_points: int = 2000) -> pd.DataFrame:
    """Equity and drawdown over engine time, thinned in SQL to at most ``max_points`` rows."""
    cond = [EquitySnapshotRow.session_id == session_id,
            EquitySnapshotRow.agent_id.is_(None) if agent_id is None else EquitySnapshotRow.agent_id == agent_id]
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(EquitySnapshotRow).where(*cond)) or 0
        every = max(1, -(-n // max_points))
        numbered = select(EquitySnapshotRow.ts_ms, EquitySnapshotRow.equity,
                          EquitySnapshotRow.drawdown_pct,
                          func.row_number().over(order_by=EquitySnapshotRow.ts_ms).label("rn")
                          ).where(*cond).subquery()
        rows = conn.execute(
            select(numbered.c.ts_ms, numbered.c.equity, numbered.c.drawdown_pct)
            .where((numbered.c.rn - 1) % every == 0).order_by(numbered.c.ts_ms)
        ).all()
    frame = pd.DataFrame(rows, columns=["ts_ms", "equity", "drawdown_pct"])
    frame["ts"] = pd.to_datetime(frame["ts_ms"], unit="ms", utc=True)
    return frame
