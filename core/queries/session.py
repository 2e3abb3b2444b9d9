"""The session's state as the CLI and the Session/Agents pages show it.

Session list and status, per-agent figures (DESIGN.md section 4 metrics, aggregated in SQL),
resting orders, open positions marked at the engine's last marks, the equity curve thinned in
SQL, and the cheap name/symbol lists the pages' filters need. Everything here is a whole-session
view; the long, filtered histories live in ``ceo`` and ``trades``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import Session

from core.desk.context import ACTIVE_SESSION
from core.desk.lease import wall_ms
from core.errors import NotFound
from core.queries.common import _iso, _marks
from core.store.tables import (
    AgentRow,
    CeoDecisionRow,
    EngineLeaseRow,
    EquitySnapshotRow,
    ExternalSignalRow,
    FillRow,
    ManualOrderRow,
    OrderRow,
    PositionRow,
    SessionRow,
)

_SESSION_COLUMNS = (SessionRow.id, SessionRow.name, SessionRow.status, SessionRow.mode,
                    SessionRow.initial_capital, SessionRow.created_ms)


def list_sessions(engine: Engine, *, include_backtests: bool = False, limit: int | None = None,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Sessions newest first; ``limit``/``offset`` page the list (the dashboard's picker)."""
    stmt = select(*_SESSION_COLUMNS).order_by(SessionRow.id.desc()).offset(offset).limit(limit)
    if not include_backtests:  # backtest runs are browsed on the Backtest page
        stmt = stmt.where(SessionRow.mode != "backtest")
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [dict(r._mapping) for r in rows]


def desk_session(engine: Engine, session_id: int) -> dict[str, Any] | None:
    """The paper or live session ``session_id`` as ``list_sessions`` shows it, or None when it
    does not exist (deleted, or a link to a backtest, which the Backtest page shows)."""
    stmt = select(*_SESSION_COLUMNS).where(SessionRow.id == session_id, SessionRow.mode != "backtest")
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def latest_session(engine: Engine) -> dict[str, Any] | None:
    """The session the dashboard shows unless told otherwise: the active paper or live session
    (the desk runs at most one), else the most recent; None before the first session."""
    stmt = (select(*_SESSION_COLUMNS).where(SessionRow.mode != "backtest")
            .order_by(case((SessionRow.status.in_(ACTIVE_SESSION), 0), else_=1), SessionRow.id.desc())
            .limit(1))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


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
            "pnl_pct": round(time_weighted_return(a, equity) * 100, 3),
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


def session_summary(engine: Engine, session_id: int) -> dict[str, Any]:
    """The session row with its equity, PnL, drawdown and heartbeat: cheap enough for every
    refresh of the sidebar and headers (no scan of the trade or decision history)."""
    with Session(engine) as db:
        s = db.get(SessionRow, session_id)
    if s is None:
        raise NotFound(f"no session {session_id}")
    marks = _marks(s.marks)
    with engine.connect() as conn:
        heartbeat = conn.scalar(select(EngineLeaseRow.heartbeat_ms).where(EngineLeaseRow.session_id == session_id))
        books = conn.execute(
            select(func.sum(AgentRow.capital), func.sum(AgentRow.realized_pnl),
                   func.sum(AgentRow.fees), func.sum(AgentRow.funding))
            .where(AgentRow.session_id == session_id)
        ).one()
        held = conn.execute(
            select(PositionRow.symbol, PositionRow.side, PositionRow.quantity, PositionRow.entry_price)
            .where(PositionRow.session_id == session_id, PositionRow.status == "open")
        ).all()
    unrealized = sum((marks.get(p.symbol, p.entry_price) - p.entry_price) * p.quantity
                     * (1 if p.side == "LONG" else -1) for p in held)
    capital, gross, fees, funding = (float(v or 0.0) for v in books)
    equity = capital + gross - fees + funding + unrealized
    peak = max(s.peak_equity, equity)
    return {
        "id": s.id, "name": s.name, "status": s.status, "status_reason": s.status_reason,
        "mode": s.mode, "market_source": s.market_source, "symbols": s.symbols.split(","),
        "initial_capital": s.initial_capital, "equity": round(equity, 2),
        "total_pnl": round(equity - s.initial_capital, 2),
        "total_pnl_pct": round((equity / s.initial_capital - 1) * 100, 3),
        # total PnL = gross (closed trades, on price) − fees + funding + unrealized (open, at marks)
        "realized_pnl": round(gross, 2), "fees": round(fees, 2), "funding": round(funding, 2),
        "unrealized_pnl": round(unrealized, 2),
        "drawdown_pct": round(max(0.0, (peak - equity) / peak) * 100, 3) if peak > 0 else 0.0,
        "max_drawdown_pct": round(s.max_drawdown_pct * 100, 3),
        "peak_equity": round(peak, 2),
        "engine_time": _iso(s.clock_ms), "ticks": s.ticks, "open_positions": len(held),
        "heartbeat_age_s": _age_s(heartbeat),
        "tick_age_s": _age_s(s.tick_wall_ms),  # the heartbeat beats on while ticks fail
        "last_error": s.last_error,
        "failing_for_s": _age_s(s.error_since_ms),  # None unless ticks fail since then
        "feed_status": s.feed_status,  # live: websocket or REST polling (and fills: stream or polling)
    }


ENGINE_STALE_S = 60.0  # no heartbeat (or no completed tick) for this long: the engine is not trading


def engine_health(summary: dict[str, Any]) -> tuple[str, str]:
    """(level, sentence) about the engine of a ``session_summary``, for the sidebar, the Session
    page and the CLI alike. Levels: ok, starting, failing, stalled, down, stopped."""
    beat, tick = summary["heartbeat_age_s"], summary["tick_age_s"]
    if summary["status"] == "stopped":
        return "stopped", "Session stopped."
    if summary["failing_for_s"] is not None:
        last = f"; last completed tick {tick:,.0f} s ago" if tick is not None else ""
        return "failing", (f"Engine ticks are failing (for {summary['failing_for_s']:,.0f} s{last}): "
                           f"{summary['last_error']}")
    if beat is None or beat > ENGINE_STALE_S:
        if summary["status"] == "created":
            return "starting", ("Waiting for the engine to start the session. If this lasts, start "
                                "it with `./desk engine` or set ENGINE_IN_APP=true.")
        return "down", ("Engine not running: no heartbeat. Start it with `./desk engine` "
                        "or set ENGINE_IN_APP=true.")
    if tick is None:
        return "starting", "Engine started; no tick has completed yet."
    if tick > ENGINE_STALE_S:
        return "stalled", f"Engine running, but no tick has completed for {tick:,.0f} s."
    return "ok", f"Engine time {summary['engine_time']} UTC · last tick {tick:.0f} s ago"


def _age_s(wall: int | None) -> float | None:
    return round((wall_ms() - wall) / 1000, 1) if wall else None


def session_status(engine: Engine, session_id: int) -> dict[str, Any]:
    """The session and its agents, as ``session status --json`` prints them."""
    summary = session_summary(engine, session_id)
    agents = agent_stats(engine, session_id)
    with engine.connect() as conn:
        # verdict is set on trade decisions only, so the (session_id, verdict) index answers alone
        verdicts = dict(conn.execute(
            select(CeoDecisionRow.verdict, func.count())
            .where(CeoDecisionRow.session_id == session_id, CeoDecisionRow.verdict.is_not(None))
            .group_by(CeoDecisionRow.verdict)
        ).all())
        orders = conn.scalar(select(func.count(OrderRow.id)).where(OrderRow.session_id == session_id))
        fills = conn.scalar(select(func.count(FillRow.id)).where(FillRow.session_id == session_id))
    summary.update(
        closed_trades=sum(a["trades"] for a in agents), orders=orders, fills=fills,
        verdicts={v: verdicts.get(v, 0) for v in ("approve", "modify", "reject")},
    )
    return {"session": summary, "agents": agents}


def agent_names(engine: Engine, session_id: int) -> list[str]:
    """The session's agent names in roster order (cheap; for filters)."""
    with engine.connect() as conn:
        return list(conn.scalars(select(AgentRow.name).where(AgentRow.session_id == session_id)
                                 .order_by(AgentRow.id)))


def session_symbols(engine: Engine, session_id: int) -> list[str]:
    with engine.connect() as conn:
        raw = conn.scalar(select(SessionRow.symbols).where(SessionRow.id == session_id))
    return raw.split(",") if raw else []


def open_orders(engine: Engine, session_id: int) -> pd.DataFrame:
    """Orders resting at (or not yet confirmed by) the venue: NEW stops, trailing stops (with
    their callback in percent and activation price) and take-profits, and PENDING/UNKNOWN ones
    the engine is still resolving. Age is in engine time."""
    with engine.connect() as conn:
        now = conn.scalar(select(SessionRow.clock_ms).where(SessionRow.id == session_id))
        rows = conn.execute(
            select(OrderRow.id, AgentRow.name.label("agent"), OrderRow.symbol, OrderRow.side,
                   OrderRow.type, OrderRow.purpose, OrderRow.quantity, OrderRow.stop_price,
                   OrderRow.reduce_only, OrderRow.status, OrderRow.created_ms,
                   OrderRow.callback_rate, OrderRow.activation_price)
            .outerjoin(AgentRow, AgentRow.id == OrderRow.agent_id)
            .where(OrderRow.session_id == session_id,
                   OrderRow.status.in_(("NEW", "PENDING", "UNKNOWN")))
            .order_by(OrderRow.created_ms.desc(), OrderRow.id.desc())
        ).all()
    columns = ["id", "agent", "symbol", "side", "type", "purpose", "qty", "stop_price",
               "reduce_only", "status", "created_at", "age_s", "callback_pct", "activation_price"]
    return pd.DataFrame([{
        "id": r.id, "agent": r.agent, "symbol": r.symbol, "side": r.side, "type": r.type,
        "purpose": r.purpose, "qty": r.quantity, "stop_price": r.stop_price,
        "reduce_only": bool(r.reduce_only), "status": r.status, "created_at": _iso(r.created_ms),
        "age_s": max(0.0, ((now or r.created_ms) - r.created_ms) / 1000),
        "callback_pct": r.callback_rate, "activation_price": r.activation_price,
    } for r in rows], columns=columns)


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
            "id": pos.id, "agent": agent, "symbol": pos.symbol, "side": pos.side,
            "qty": pos.quantity,
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
    frame["drawdown_pct"] *= 100  # percent, like session_status (snapshots store a fraction)
    frame["ts"] = pd.to_datetime(frame["ts_ms"], unit="ms", utc=True)
    return frame


def resolve_session(engine: Engine, session_id: int | None) -> SessionRow:
    """The named session, or the latest one; NotFound with a hint otherwise."""
    stmt = select(SessionRow)
    if session_id is not None:
        stmt = stmt.where(SessionRow.id == session_id)
    else:  # the latest desk session; a backtest is only ever named explicitly
        stmt = stmt.where(SessionRow.mode != "backtest").order_by(SessionRow.id.desc()).limit(1)
    with Session(engine, expire_on_commit=False) as db:
        row = db.scalars(stmt).first()
    if row is None:
        if session_id is not None:
            raise NotFound(f"no session {session_id}")
        raise NotFound("no session yet: create one with `python -m core session create`")
    return row


def time_weighted_return(agent: Any, equity: float) -> float:
    """An agent's return as a fraction, time-weighted: each period between capital transfers
    counts by its own growth, so a rebalance moves capital but never the percentage (PnL over
    the capital allocated now would jump at every rebalance)."""
    base = agent.return_base if agent.return_base is not None else agent.initial_capital
    return agent.return_index * equity / base - 1 if base > 0 else 0.0


MANUAL_COLUMNS = ["id", "kind", "target_id", "status", "note", "created_at", "done_at"]


def manual_order(engine: Engine, order_id: int) -> dict[str, Any]:
    """One trader's order (close, cancel, flatten) and how it ended; NotFound if there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(ManualOrderRow).where(ManualOrderRow.id == order_id)).first()
    if row is None:
        raise NotFound(f"no manual order {order_id}")
    return _manual_record(row)


def manual_orders(engine: Engine, session_id: int, limit: int = 20) -> pd.DataFrame:
    """The session's newest manual orders, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(ManualOrderRow).where(ManualOrderRow.session_id == session_id)
                            .order_by(ManualOrderRow.id.desc()).limit(limit)).all()
    return pd.DataFrame([_manual_record(r) for r in rows], columns=["session_id", *MANUAL_COLUMNS])


def _manual_record(row: Any) -> dict[str, Any]:
    return {"id": row.id, "session_id": row.session_id, "kind": row.kind,
            "target_id": row.target_id, "status": row.status, "note": row.note,
            "created_at": _iso(row.created_ms), "done_at": _iso(row.done_ms)}


SIGNAL_COLUMNS = ["id", "symbol", "side", "status", "verdict", "decision_id", "outcome",
                  "leverage", "margin_fraction", "stop_price", "take_profit", "confidence",
                  "note", "source", "received_at", "done_at"]


def external_signal(engine: Engine, signal_id: int) -> dict[str, Any]:
    """One external signal and how the CEO judged it; NotFound if there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(ExternalSignalRow).where(ExternalSignalRow.id == signal_id)).first()
    if row is None:
        raise NotFound(f"no signal {signal_id}")
    return _signal_record(row)


def external_signals(engine: Engine, session_id: int, limit: int = 50) -> pd.DataFrame:
    """The session's newest external signals, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(ExternalSignalRow)
                            .where(ExternalSignalRow.session_id == session_id)
                            .order_by(ExternalSignalRow.id.desc()).limit(limit)).all()
    return pd.DataFrame([_signal_record(r) for r in rows], columns=["session_id", *SIGNAL_COLUMNS])


def _signal_record(row: Any) -> dict[str, Any]:
    return {"id": row.id, "session_id": row.session_id, "symbol": row.symbol, "side": row.side,
            "status": row.status, "verdict": row.verdict, "decision_id": row.decision_id,
            "outcome": row.outcome, "leverage": row.leverage,
            "margin_fraction": row.margin_fraction, "stop_price": row.stop_price,
            "take_profit": row.take_profit, "confidence": row.confidence, "note": row.note,
            "source": row.source, "received_at": _iso(row.received_ms),
            "done_at": _iso(row.done_ms)}
