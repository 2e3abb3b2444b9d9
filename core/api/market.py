"""``/api/agentic/market``: prices of a session's symbols, its account and its positions.

``./desk market --json`` plus what the Session and Positions pages show beside it: each symbol's
price, 24 h change, high, low, volume and funding at the session's engine time
(``queries.market_overview``), the desk's account (equity and its parts) and its open positions
and resting orders from the store, and for a live session what AsterDex itself reports
(``queries.venue_account``: balance, positions, orders, or the error if it cannot be reached).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core import queries, service
from core.api.encoding import plain, records
from core.api.state import Desk, SessionParam

router = APIRouter(prefix="/api/agentic", tags=["market"])
ACCOUNT_KEYS = ("initial_capital", "equity", "total_pnl", "total_pnl_pct", "realized_pnl", "fees",
                "funding", "unrealized_pnl", "drawdown_pct", "open_positions")


@router.get("/market", summary="Prices, the account and its open positions")
def market(desk: Desk, session: SessionParam = None) -> dict[str, Any]:
    row = service.resolve_session(desk.engine, session)
    summary = queries.session_summary(desk.engine, row.id)
    venue = (plain(queries.venue_account(desk.settings, desk.engine, row.id))
             if row.mode == "live" else None)
    return {
        "session": row.id, "mode": row.mode, "market_source": row.market_source,
        "engine_time": summary["engine_time"],
        "prices": records(queries.market_overview(desk.settings, desk.engine, row.id)),
        "account": plain({k: summary[k] for k in ACCOUNT_KEYS}),
        "positions": records(queries.open_positions(desk.engine, row.id)),
        "orders": records(queries.open_orders(desk.engine, row.id)),
        "venue": venue,
    }
