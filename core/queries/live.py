"""Live views: the venue's own account (balance, positions, resting orders) for a live session.

Why it exists: on a live session the dashboard must show the money where it really is, not only
the desk's books. These reads ask AsterDex directly (signed, a few request weight each) through
the same client the engine uses, and never raise: a venue that cannot be reached comes back as
``error`` with a readable line, so a page shows a warning rather than a traceback. Secrets never
appear in what is returned. An answer is reused for ``ACCOUNT_MAX_AGE_S`` per session and venue,
so the Session and Positions pages refreshing side by side ask the venue once (failures are
not kept: the next refresh asks again).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from core.config import Settings
from core.errors import DeskError

POSITION_COLUMNS = ["symbol", "amount", "entry_price", "mark_price", "unrealized_pnl",
                    "liquidation_price", "leverage", "isolated_margin"]
ORDER_COLUMNS = ["symbol", "client_order_id", "type", "side", "quantity", "stop_price", "status"]
ACCOUNT_MAX_AGE_S = 10.0

_answers: dict[tuple[str, str, int], tuple[float, dict[str, Any]]] = {}
_answers_lock = threading.Lock()


def venue_account(settings: Settings, engine: Engine, session_id: int | None) -> dict[str, Any]:
    """``{"mode", "wallet_balance", "available_balance", "unrealized_pnl", "positions",
    "orders", "error"}`` for a live session; ``mode`` alone (and nothing asked of the venue) for a
    paper one."""
    from core.desk.live_runtime import make_client  # local: the client is only needed for live
    from core.queries.session import resolve_session

    row = resolve_session(engine, session_id)
    out: dict[str, Any] = {"mode": row.mode, "error": None, "positions": pd.DataFrame(columns=POSITION_COLUMNS),
                           "orders": pd.DataFrame(columns=ORDER_COLUMNS)}
    if row.mode != "live":
        return out
    key = (str(engine.url), settings.asterdex_base_url, row.id)
    with _answers_lock:
        kept = _answers.get(key)
    if kept is not None and time.monotonic() - kept[0] < ACCOUNT_MAX_AGE_S:
        return kept[1]
    try:
        client = make_client(settings)
    except DeskError as exc:
        return {**out, "error": str(exc)}
    try:
        balance = client.account().summary
        positions = client.positions()
        orders = client.open_orders()
    except DeskError as exc:
        return {**out, "error": f"AsterDex did not answer: {exc}"}
    finally:
        client.close()
    out.update(
        wallet_balance=float(balance.wallet_balance),
        available_balance=float(balance.available_balance),
        unrealized_pnl=float(balance.unrealized_pnl),
        positions=pd.DataFrame([{
            "symbol": p.symbol, "amount": float(p.amount), "entry_price": float(p.entry_price),
            "mark_price": float(p.mark_price), "unrealized_pnl": float(p.unrealized_pnl),
            "liquidation_price": float(p.liquidation_price), "leverage": p.leverage,
            "isolated_margin": float(p.isolated_margin)} for p in positions], columns=POSITION_COLUMNS),
        orders=pd.DataFrame([{
            "symbol": o.symbol, "client_order_id": o.client_order_id, "type": o.type.value,
            "side": o.side.value, "quantity": float(o.quantity),
            "stop_price": float(o.stop_price) if o.stop_price is not None else None,
            "status": o.status.value} for o in orders], columns=ORDER_COLUMNS),
    )
    with _answers_lock:
        _answers[key] = (time.monotonic(), out)
    return out
