"""The read model shared by the CLI and the dashboard.

Aggregates are computed in SQL and long tables are paged (``limit``/``offset``), so a page stays fast
however long the history grows. Every list the dashboard filters (CEO log, trades) has one set of
filter arguments shared by its rows, its count, its summary and its CSV, so a download holds exactly
what the table shows; ``ceo_filters``/``trade_filters`` map the pages' selections to them. CSVs are
built in chunks from a streamed query. Unrealized PnL uses the marks the engine writes with every
tick; market views read the session's feed at the session's engine time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, case, func, literal, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import NotFound
from core.lease import wall_ms
from core.models import INTERVAL_MS, ms_to_dt
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


# ---------------------------------------------------------------------- filters and paging
CEO_KINDS = ("trade", "pause", "resume", "rebalance", "halt", "session", "execution", "reconcile")
VERDICTS = ("approve", "modify", "reject")
SIDES = ("LONG", "SHORT")
CLOSE_REASONS = ("stop_loss", "take_profit", "agent", "ceo", "drawdown_halt", "session_stop",
                 "liquidation", "reconcile")
ALLOCATION_KINDS = ("rebalance", "pause", "resume")
CSV_CHUNK = 20_000
_ANY = (None, "", "All", "all")


def _chosen(value: Any) -> Any:
    """A selector's value, or None when it means "no filter" ("All", empty)."""
    return None if value in _ANY else value


def ceo_filters(*, agent: str | None = None, verdict: str | None = None, rule: str | None = None,
                kind: str | None = None) -> dict[str, str | None]:
    """The dashboard's CEO-log selections as the keyword filters every ``ceo_log*`` query takes,
    so the table, its count and both downloads always mean the same rows."""
    return {"agent": _chosen(agent), "verdict": _chosen(verdict), "rule": _chosen(rule),
            "kind": _chosen(kind)}


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def trade_filters(*, agent: str | None = None, symbol: str | None = None, side: str | None = None,
                  close_reason: str | None = None, date_from: date | None = None,
                  date_to: date | None = None) -> dict[str, Any]:
    """The trade-history selections as the keyword filters of ``trades``/``trades_count``/
    ``trades_csv``/``trade_summary``. Dates are UTC days of the close, both ends included."""
    return {
        "agent": _chosen(agent), "symbol": _chosen(symbol), "side": _chosen(side),
        "close_reason": _chosen(close_reason),
        "since_ms": day_start_ms(date_from) if date_from else None,
        "until_ms": day_start_ms(date_to + timedelta(days=1)) if date_to else None,
    }


def _agent_ids(session_id: int, name: str) -> Any:
    """Agent name → ids as a subquery, so filters use the (session, agent_id) indexes instead
    of joining every row to ``agents``."""
    return select(AgentRow.id).where(AgentRow.session_id == session_id, AgentRow.name == name)


def _stream_csv(engine: Engine, stmt: Any, to_frame: Callable[[Sequence[Any]], pd.DataFrame],
                columns: list[str]) -> str:
    """CSV of every row of ``stmt``, fetched and formatted ``CSV_CHUNK`` rows at a time."""
    out = io.StringIO()
    header = True
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CSV_CHUNK).execute(stmt)
        for part in result.partitions(CSV_CHUNK):
            to_frame(part).to_csv(out, index=False, header=header)
            header = False
    if header:
        pd.DataFrame(columns=columns).to_csv(out, index=False)
    return out.getvalue()


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


def _iso_column(ms: pd.Series) -> pd.Series:
    """``_iso`` for a whole column of epoch milliseconds (None stays None), vectorised."""
    out = pd.Series([None] * len(ms), index=ms.index, dtype=object)
    known = ms.notna()
    if known.any():
        stamps = ms[known].astype("int64").to_numpy().astype("datetime64[ms]").astype("datetime64[s]")
        out[known] = np.char.replace(np.datetime_as_string(stamps, unit="s"), "T", " ")
    return out


def _records(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    # plain tuples: pandas probes every Row object for namedtuple fields otherwise (slow)
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)


def _ceo_frame(rows: Sequence[Any]) -> pd.DataFrame:
    frame = _records(rows, ["id", "ts_ms", *CEO_COLUMNS[2:]])
    frame.insert(1, "ts", _iso_column(frame.pop("ts_ms")))
    for col in ("proposed_leverage", "final_leverage"):
        frame[col] = frame[col].astype("Int64")
    return frame[CEO_COLUMNS]


def changed_fields(changes: Any) -> set[str]:
    """The fields a CEO decision changed, from its ``changes`` JSON ({field: [before, after]});
    lets a reader tell a real modification from lot-size rounding of an approved order."""
    if not isinstance(changes, str) or not changes:
        return set()  # None, or NaN once in a DataFrame
    try:
        found = json.loads(changes)
    except ValueError:
        return set()
    return set(found) if isinstance(found, dict) else set()


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


# ---------------------------------------------------------------------- trades
def _trade_where(session_id: int, agent: str | None, symbol: str | None, side: str | None,
                 close_reason: str | None, since_ms: int | None, until_ms: int | None) -> list[Any]:
    cond: list[Any] = [PositionRow.session_id == session_id, PositionRow.status == "closed"]
    if agent:
        cond.append(PositionRow.agent_id.in_(_agent_ids(session_id, agent)))
    if symbol:
        cond.append(PositionRow.symbol == symbol)
    if side:
        cond.append(PositionRow.side == side)
    if close_reason:
        cond.append(PositionRow.close_reason == close_reason)
    if since_ms is not None:
        cond.append(PositionRow.closed_ms >= since_ms)
    if until_ms is not None:
        cond.append(PositionRow.closed_ms < until_ms)
    return cond


def _trade_select(cond: list[Any]) -> Any:
    return (
        select(PositionRow.id, PositionRow.session_id, AgentRow.name, AgentRow.strategy,
               PositionRow.symbol, PositionRow.side, PositionRow.leverage, PositionRow.exit_qty,
               PositionRow.entry_price, PositionRow.exit_price, PositionRow.margin,
               PositionRow.opened_ms, PositionRow.closed_ms, PositionRow.fees,
               PositionRow.funding, PositionRow.realized_pnl, PositionRow.close_reason)
        .join(AgentRow, AgentRow.id == PositionRow.agent_id)
        .where(*cond)
        .order_by(PositionRow.closed_ms.desc(), PositionRow.id.desc())
    )


_TRADE_RAW = ["trade_id", "session_id", "agent", "strategy", "symbol", "side", "leverage", "qty",
              "entry_price", "exit_price", "margin", "opened_ms", "closed_ms", "fees", "funding",
              "realized_pnl", "close_reason"]


def _trade_frame(rows: Sequence[Any]) -> pd.DataFrame:
    frame = _records(rows, _TRADE_RAW)
    frame["opened_at"] = _iso_column(frame["opened_ms"])
    frame["closed_at"] = _iso_column(frame["closed_ms"])
    frame["duration_s"] = (frame["closed_ms"] - frame["opened_ms"]) / 1000
    frame = frame.astype({"margin": float, "fees": float, "funding": float, "realized_pnl": float})
    frame = frame.round({"margin": 4, "fees": 6, "funding": 6, "realized_pnl": 6})
    return frame[TRADE_COLUMNS]


def trades(engine: Engine, session_id: int, *, agent: str | None = None,
           symbol: str | None = None, side: str | None = None, close_reason: str | None = None,
           since_ms: int | None = None, until_ms: int | None = None,
           limit: int | None = 500, offset: int = 0) -> pd.DataFrame:
    """Closed trades, newest first, with the columns of DESIGN.md section 8; filtered and paged
    in SQL (``since_ms`` ≤ close time < ``until_ms``)."""
    stmt = _trade_select(_trade_where(session_id, agent, symbol, side, close_reason, since_ms, until_ms))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return _trade_frame(rows)


def trades_count(engine: Engine, session_id: int, *, agent: str | None = None,
                 symbol: str | None = None, side: str | None = None, close_reason: str | None = None,
                 since_ms: int | None = None, until_ms: int | None = None) -> int:
    cond = _trade_where(session_id, agent, symbol, side, close_reason, since_ms, until_ms)
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(PositionRow).where(*cond)) or 0)


def trades_csv(engine: Engine, session_id: int, *, agent: str | None = None,
               symbol: str | None = None, side: str | None = None, close_reason: str | None = None,
               since_ms: int | None = None, until_ms: int | None = None) -> str:
    """Every matching closed trade as CSV (TRADE_COLUMNS, newest first), built in chunks."""
    stmt = _trade_select(_trade_where(session_id, agent, symbol, side, close_reason, since_ms, until_ms))
    return _stream_csv(engine, stmt, _trade_frame, TRADE_COLUMNS)


def trade_summary(engine: Engine, session_id: int, *, agent: str | None = None,
                  symbol: str | None = None, side: str | None = None, close_reason: str | None = None,
                  since_ms: int | None = None, until_ms: int | None = None) -> dict[str, Any]:
    """Totals of the filtered trades, in SQL: a win is a trade whose net PnL (realized − fees
    + funding) is positive, as in ``agent_stats``."""
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    cond = _trade_where(session_id, agent, symbol, side, close_reason, since_ms, until_ms)
    with engine.connect() as conn:
        r = conn.execute(select(
            func.count().label("trades"),
            func.coalesce(func.sum(case((net > 0, 1), else_=0)), 0).label("wins"),
            func.coalesce(func.sum(PositionRow.realized_pnl), 0.0).label("realized"),
            func.coalesce(func.sum(PositionRow.fees), 0.0).label("fees"),
            func.coalesce(func.sum(PositionRow.funding), 0.0).label("funding"),
        ).where(*cond)).one()
    n = int(r.trades or 0)
    realized, fees, funding = float(r.realized), float(r.fees), float(r.funding)
    return {
        "trades": n, "wins": int(r.wins or 0),
        "win_rate": round(int(r.wins or 0) / n, 4) if n else None,
        "realized_pnl": round(realized, 2), "fees": round(fees, 2), "funding": round(funding, 2),
        "net_pnl": round(realized - fees + funding, 2),
    }


def trade_time_range(engine: Engine, session_id: int) -> tuple[datetime, datetime] | None:
    """First and last close time of the session's trades (for date pickers), or None."""
    with engine.connect() as conn:
        lo, hi = conn.execute(
            select(func.min(PositionRow.closed_ms), func.max(PositionRow.closed_ms))
            .where(PositionRow.session_id == session_id, PositionRow.closed_ms.is_not(None))
        ).one()
    return (ms_to_dt(lo), ms_to_dt(hi)) if lo is not None else None


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
    """Orders resting at (or not yet confirmed by) the venue: NEW stops and take-profits, and
    PENDING/UNKNOWN ones the engine is still resolving. Age is in engine time."""
    with engine.connect() as conn:
        now = conn.scalar(select(SessionRow.clock_ms).where(SessionRow.id == session_id))
        rows = conn.execute(
            select(OrderRow.id, AgentRow.name.label("agent"), OrderRow.symbol, OrderRow.side,
                   OrderRow.type, OrderRow.purpose, OrderRow.quantity, OrderRow.stop_price,
                   OrderRow.reduce_only, OrderRow.status, OrderRow.created_ms)
            .outerjoin(AgentRow, AgentRow.id == OrderRow.agent_id)
            .where(OrderRow.session_id == session_id,
                   OrderRow.status.in_(("NEW", "PENDING", "UNKNOWN")))
            .order_by(OrderRow.created_ms.desc(), OrderRow.id.desc())
        ).all()
    columns = ["id", "agent", "symbol", "side", "type", "purpose", "qty", "stop_price",
               "reduce_only", "status", "created_at", "age_s"]
    return pd.DataFrame([{
        "id": r.id, "agent": r.agent, "symbol": r.symbol, "side": r.side, "type": r.type,
        "purpose": r.purpose, "qty": r.quantity, "stop_price": r.stop_price,
        "reduce_only": bool(r.reduce_only), "status": r.status, "created_at": _iso(r.created_ms),
        "age_s": max(0.0, ((now or r.created_ms) - r.created_ms) / 1000),
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


# ---------------------------------------------------------------------- market
MARKET_COLUMNS = ["symbol", "price", "change_24h_pct", "high_24h", "low_24h", "volume_24h",
                  "funding_rate", "time"]
CANDLE_COLUMNS = ["time", "open_time_ms", "open", "high", "low", "close", "volume"]
MARKER_COLUMNS = ["time", "ts_ms", "price", "side", "agent", "kind", "realized_pnl", "trade_id"]
MAX_MARKERS = 1000


def _session_feed(settings: Settings, engine: Engine, session_id: int | None) -> tuple[int, Any]:
    """The session's id and a replay feed positioned at its engine time."""
    from core.runtime import build_feed  # local: the runtime imports the whole desk
    from core.service import resolve_session

    row = resolve_session(engine, session_id)
    return row.id, build_feed(settings, row)


def market_overview(settings: Settings, engine: Engine, session_id: int | None) -> pd.DataFrame:
    """Price, 24 h change/high/low/volume and funding of the session's symbols at the session's
    engine time (replay: the recorded candles up to the engine clock; funding is None there)."""
    _, feed = _session_feed(settings, engine, session_id)
    rows = []
    for symbol in feed.symbols:
        t = feed.ticker(symbol)
        rows.append({"symbol": t.symbol, "price": t.price, "change_24h_pct": t.change_24h_pct,
                     "high_24h": t.high_24h, "low_24h": t.low_24h, "volume_24h": t.volume_24h,
                     "funding_rate": t.funding_rate, "time": _iso(t.time_ms)})
    return pd.DataFrame(rows, columns=MARKET_COLUMNS)


def market_candles(settings: Settings, engine: Engine, session_id: int | None, symbol: str,
                   interval: str = "1h", limit: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``limit`` closed candles of ``symbol`` up to engine time, and the desk's entries
    and exits on it inside the candles' time range (newest ``MAX_MARKERS`` of each), for markers.
    An exit's ``realized_pnl`` is net of fees and funding; an entry's is None."""
    sid, feed = _session_feed(settings, engine, session_id)
    raw = feed.candles(symbol, interval, limit)
    candles = pd.DataFrame({
        "time": pd.to_datetime(raw["open_time_ms"].astype("int64"), unit="ms", utc=True),
        "open_time_ms": raw["open_time_ms"].astype("int64"),
        **{c: raw[c].astype(float) for c in ("open", "high", "low", "close", "volume")},
    }, columns=CANDLE_COLUMNS)
    if candles.empty:
        return candles, pd.DataFrame(columns=MARKER_COLUMNS)
    lo = int(candles["open_time_ms"].iloc[0])
    hi = int(candles["open_time_ms"].iloc[-1]) + INTERVAL_MS[interval]
    base = [PositionRow.session_id == sid, PositionRow.symbol == symbol]
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    cols = (PositionRow.id, AgentRow.name, PositionRow.side)
    with engine.connect() as conn:
        entries = conn.execute(
            select(*cols, PositionRow.opened_ms, PositionRow.entry_price)
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(*base, PositionRow.status.in_(("open", "closed")), PositionRow.entry_price > 0,
                   PositionRow.opened_ms >= lo, PositionRow.opened_ms <= hi)
            .order_by(PositionRow.opened_ms.desc()).limit(MAX_MARKERS)
        ).all()
        exits = conn.execute(
            select(*cols, PositionRow.closed_ms, PositionRow.exit_price, net.label("pnl"))
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(*base, PositionRow.status == "closed", PositionRow.exit_price.is_not(None),
                   PositionRow.closed_ms >= lo, PositionRow.closed_ms <= hi)
            .order_by(PositionRow.closed_ms.desc()).limit(MAX_MARKERS)
        ).all()
    marks = [{"ts_ms": r.opened_ms, "price": r.entry_price, "side": r.side, "agent": r.name,
              "kind": "entry", "realized_pnl": None, "trade_id": r.id} for r in entries]
    marks += [{"ts_ms": r.closed_ms, "price": r.exit_price, "side": r.side, "agent": r.name,
               "kind": "exit", "realized_pnl": round(float(r.pnl), 2), "trade_id": r.id} for r in exits]
    frame = pd.DataFrame(marks, columns=MARKER_COLUMNS[1:])
    frame.insert(0, "time", pd.to_datetime(frame["ts_ms"].astype("int64"), unit="ms", utc=True))
    return candles, frame.sort_values("ts_ms", kind="stable").reset_index(drop=True)
