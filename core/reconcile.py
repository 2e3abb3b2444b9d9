"""Recovery after a crash or an error that left state unknown: the venue's truth wins.

Runs before the first tick after every start. Orders the store holds as unsent, unknown or resting
are asked of the venue by client order id (never re-sent); fills the desk missed (a stop triggered
or a liquidation while the engine was down) are booked from the venue's trade records; positions
the venue no longer holds are closed in the store; each open position must end with a resting stop.
Everything that changed is returned and written to the CEO log.
"""

from __future__ import annotations

from sqlalchemy import select, update

from core.errors import ExchangeError
from core.execution import OPEN_STATUSES, QTY_EPS, Execution
from core.ledger import OpenPosition
from core.store.tables import ORDERS, POSITIONS


def reconcile(ex: Execution) -> list[str]:
    """Settle what a crash or an error left unknown, from the venue's truth; returns what
    changed (also written to the CEO log)."""
    changes: list[str] = []
    statuses = dict(ex.db.execute(
        select(ORDERS.c.client_order_id, ORDERS.c.status)
        .where(ORDERS.c.session_id == ex.session_id, ORDERS.c.status.in_(OPEN_STATUSES))
    ).all())
    # unsent and unknown orders first: a fill found later may close their position
    ordered = sorted(ex.open_orders.values(),
                     key=lambda i: statuses.get(i.client_order_id) not in ("PENDING", "UNKNOWN"))
    for info in ordered:
        if info.client_order_id not in ex.open_orders:
            continue  # settled meanwhile (e.g. cancelled when its position closed)
        status = statuses.get(info.client_order_id)
        try:
            found = ex.exchange.get_order(info.symbol, info.client_order_id)
        except ExchangeError as exc:
            changes.append(f"{info.symbol} order {info.client_order_id}: still unknown ({exc})")
            continue
        if found is None:
            if status in ("PENDING", "UNKNOWN"):
                ex.finish(info, "EXPIRED", error="never reached the venue before a restart; not re-sent")
                changes.append(f"{info.symbol} order {info.client_order_id} never reached the "
                               "venue: expired, not re-sent")
            else:
                ex.finish(info, "CANCELED", error="no longer known to the venue")
                changes.append(f"{info.symbol} order {info.client_order_id} unknown to the venue: "
                               "cancelled")
            continue
        if found.status.value != status or found.fills:
            before = len(changes)
            ex.apply_result(info, found)
            if found.status.value != status:
                changes.append(f"{info.symbol} {info.purpose.replace('_', ' ')} order "
                               f"{info.client_order_id}: {status} → {found.status.value} at the "
                               "venue; booked")
            if len(changes) == before and found.fills:
                changes.append(f"{info.symbol} order {info.client_order_id}: fills checked")
    changes += _reconcile_positions(ex)
    for text in changes:  # every note starts with its symbol
        symbol = text.split(" ", 1)[0].rstrip(":")
        ex.log_event("reconcile", text, symbol=symbol if symbol.isalnum() else None)
    ex.commit()
    return changes


def _reconcile_positions(ex: Execution) -> list[str]:
    changes: list[str] = []
    venue = {p.symbol: p for p in ex.exchange.positions()}
    for pos in ex.ledger.open_positions():
        if pos.status == "opening" and pos.quantity <= QTY_EPS:
            ex.fail_opening(pos.id, "entry never filled before a restart")
            changes.append(f"{pos.symbol}: entry never filled; position dropped")
            continue
        if pos.symbol not in venue:
            for fill in ex.exchange.fills_since(pos.symbol, pos.opened_ms):
                ex.book_fill(fill)
            if pos.symbol in ex.ledger.agents[pos.agent_id].positions:
                changes.append(f"{pos.symbol}: flat at the venue but open in the store; "
                               "closed at the last price with no fill found")
                _force_close(ex, pos)
            else:
                changes.append(f"{pos.symbol}: closed at the venue while the engine was down; booked")
    for symbol, vp in venue.items():
        if ex.ledger.owner_of(symbol) is None:
            changes.append(f"{symbol}: the venue holds {vp.amount} that no agent owns; "
                           "left untouched, close it on the venue or adopt it")
    for pos in ex.ledger.open_positions():
        if pos.quantity > QTY_EPS and not any(
            i.position_id == pos.id and i.purpose == "stop_loss" for i in ex.open_orders.values()
        ):
            changes.append(f"{pos.symbol}: no resting stop; placing one")
            ex.protect(pos)
    return changes


def _force_close(ex: Execution, pos: OpenPosition) -> None:
    agent = ex.ledger.agents[pos.agent_id]
    ex.db.execute(
        update(POSITIONS).where(POSITIONS.c.id == pos.id)
        .values(status="closed", closed_ms=ex._now_ms(), close_reason="reconcile", quantity=0.0)
    )
    pos.quantity = 0.0
    ex.after_close(agent, pos)
