"""Helpers for tests that run the whole desk on a real database."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Engine, func, select

from core import service
from core.config import Settings
from core.desk.scheduler import EngineDriver
from core.exchanges.paper_store import PaperOrder, PaperPosition, PaperTrade
from core.store.tables import FillRow, OrderRow, PositionRow, ProposalRow


def run_ticks(engine: Engine, settings: Settings, ticks: int, session_id: int | None = None) -> int:
    driver = EngineDriver(settings, engine, session_id=session_id)
    try:
        return driver.run_ticks(ticks)
    finally:
        driver.stop()


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def fingerprint(engine: Engine, session_id: int) -> dict[str, Any]:
    """What a golden replay must reproduce exactly: every trade and the final books."""
    with engine.connect() as conn:
        trades = conn.execute(
            select(PositionRow.agent_id, PositionRow.symbol, PositionRow.side, PositionRow.leverage,
                   PositionRow.exit_qty, PositionRow.entry_price, PositionRow.exit_price,
                   PositionRow.realized_pnl, PositionRow.fees, PositionRow.funding,
                   PositionRow.opened_ms, PositionRow.closed_ms, PositionRow.close_reason)
            .where(PositionRow.session_id == session_id, PositionRow.status == "closed")
            .order_by(PositionRow.id)
        ).all()
    rows = [[r[0], r[1], r[2], r[3], round(r[4], 9), round(r[5], 6), round(r[6], 6),
             round(r[7], 6), round(r[8], 6), round(r[9], 6), r[10], r[11], r[12]] for r in trades]
    status = service_status(engine, session_id)
    return {
        "trades": len(rows),
        "trades_sha": hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16],
        "equity": round(status["session"]["equity"], 2),
        "verdicts": status["session"]["verdicts"],
    }


def service_status(engine: Engine, session_id: int) -> dict[str, Any]:
    from core import queries

    return queries.session_status(engine, session_id)


def venue_matches_store(engine: Engine, session_id: int) -> list[str]:
    """Differences between the desk's books and the paper venue's (empty when consistent)."""
    account = f"session-{session_id}"
    problems: list[str] = []
    with engine.connect() as conn:
        venue_trades = set(conn.scalars(select(PaperTrade.trade_id).where(PaperTrade.account_id == account)))
        desk_fills = list(conn.scalars(select(FillRow.trade_id).where(FillRow.session_id == session_id)))
        venue_orders = set(conn.scalars(select(PaperOrder.client_order_id).where(PaperOrder.account_id == account)))
        desk_orders = dict(conn.execute(
            select(OrderRow.client_order_id, OrderRow.status).where(OrderRow.session_id == session_id)).all())
        venue_pos = {r.symbol: float(r.amount) for r in conn.execute(
            select(PaperPosition.symbol, PaperPosition.amount).where(PaperPosition.account_id == account))}
        desk_pos = {r.symbol: r.quantity * (1 if r.side == "LONG" else -1) for r in conn.execute(
            select(PositionRow.symbol, PositionRow.side, PositionRow.quantity)
            .where(PositionRow.session_id == session_id, PositionRow.status == "open"))}
        resting: dict[str, list[tuple[str, float]]] = {}
        for r in conn.execute(select(PaperOrder.symbol, PaperOrder.side, PaperOrder.quantity,
                       PaperOrder.executed_qty).where(
                PaperOrder.account_id == account, PaperOrder.status == "NEW",
                PaperOrder.type == "STOP_MARKET", PaperOrder.reduce_only.is_(True))):
            resting.setdefault(r.symbol, []).append((r.side, float(r.quantity - r.executed_qty)))
    if len(desk_fills) != len(set(desk_fills)):
        problems.append("a fill was booked twice")
    if set(desk_fills) != venue_trades:
        problems.append(f"fills differ: venue-only {sorted(venue_trades - set(desk_fills))[:5]}, "
                        f"desk-only {sorted(set(desk_fills) - venue_trades)[:5]}")
    unknown = [c for c in venue_orders if c not in desk_orders]
    if unknown:
        problems.append(f"venue has orders the desk never wrote: {unknown[:5]}")
    for cid, status in desk_orders.items():
        if status in ("PENDING", "UNKNOWN"):
            problems.append(f"order {cid} left {status}")
    if {s: round(q, 9) for s, q in venue_pos.items()} != {s: round(q, 9) for s, q in desk_pos.items()}:
        problems.append(f"positions differ: venue {venue_pos} desk {desk_pos}")
    naked = set(desk_pos) - set(resting)
    if naked:
        problems.append(f"open positions without a resting stop: {sorted(naked)}")
    for symbol, qty in desk_pos.items():
        closing_side = "SELL" if qty > 0 else "BUY"
        cover = max((q for side, q in resting.get(symbol, []) if side == closing_side), default=0.0)
        if symbol in resting and cover + 1e-9 < abs(qty):
            problems.append(f"{symbol}: the largest stop covers {cover} of a {abs(qty)} position")
    return problems


def proposals_between(engine: Engine, session_id: int, start_ms: int, end_ms: int) -> int:
    return count(engine, ProposalRow, ProposalRow.session_id == session_id,
                 ProposalRow.tick_ms > start_ms, ProposalRow.tick_ms <= end_ms)


def create(engine: Engine, settings: Settings, **kw: Any) -> int:
    return service.create_session(engine, settings, **kw).id
