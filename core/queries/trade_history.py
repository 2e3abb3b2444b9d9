"""Trade history: closed positions, filtered, counted, summed, paged and downloaded alike.

One set of filter arguments (agent, symbol, side, close reason, close-time range) is shared by
the rows, their count, their summary and the CSV, so a download holds exactly what the table
shows; ``trade_filters`` maps the page's selections (UTC days) to it. Columns follow DESIGN.md
section 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, case, func, select

from core.models import ms_to_dt
from core.queries.common import (
    _agent_ids,
    _chosen,
    _iso_column,
    _records,
    _significant,
    _stream_csv,
)
from core.store.tables import AgentRow, PositionRow

TRADE_COLUMNS = [
    "trade_id", "session_id", "agent", "strategy", "symbol", "side", "leverage", "qty",
    "entry_price", "exit_price", "margin", "opened_at", "closed_at", "duration_s", "fees",
    "funding", "realized_pnl", "close_reason", "net_pnl",
]  # realized_pnl is gross (price PnL before fees and funding); net_pnl = realized_pnl − fees + funding
SIDES = ("LONG", "SHORT")
CLOSE_REASONS = ("stop_loss", "take_profit", "agent", "ceo", "drawdown_halt", "session_stop",
                 "liquidation", "reconcile", "user", "trailing_stop")


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
    frame["net_pnl"] = (frame["realized_pnl"] - frame["fees"] + frame["funding"]).round(6)
    for col in ("qty", "entry_price", "exit_price"):  # fill averages and sums carry float noise
        frame[col] = _significant(frame[col])
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
