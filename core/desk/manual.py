"""The trader's own orders, carried out on the engine's tick: close one position at market, cancel
one resting order, flatten one agent.

Why it exists: a trader must be able to act on one position without stopping the session, and
such an order must be as safe as the engine's own. So it is queued in ``manual_orders`` and the
engine carries it out through ``Execution`` like any order of its own: the order row is committed
before the venue sees it, the fill is booked once, the close's stop and take-profit are cancelled
only after the close fills (a failed close leaves the position under its stop), and the CEO log
records it as the user's. Each queued order is marked ``working`` and committed before anything is
sent, so a crash mid-way never repeats it: the next engine finds it ``working``, marks it failed
and says the venue's state was reconciled on start.

Refusals, each with the reason in ``note``: a position that is not open, an order that is not
resting, and a position's only stop (cancelling it would leave the position naked: close the
position instead). A cancelled take-profit is cleared from its position too, so stop coverage does
not place it again.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from core.desk.context import Desk
from core.desk.protection import QTY_EPS, to_quantity
from core.store.tables import MANUAL_ORDERS, POSITIONS

KINDS = ("close", "cancel", "flatten")
USER = "user"  # the purpose and close reason of a trader's own close
LOG_KIND = "manual"  # the CEO log's kind for what a trader ordered

m = MANUAL_ORDERS.c
# Built once: the engine asks every tick (an indexed look-up that finds nothing on most ticks).
_QUEUED = (select(m.id, m.kind, m.target_id, m.status)
           .where(m.session_id == bindparam("sid"), m.status.in_(("pending", "working")))
           .order_by(m.id))


def carry_out(desk: Desk) -> int:
    """Carry out the session's queued manual orders in the order they came; returns how many."""
    rows = desk.db.connection().execute(_QUEUED, {"sid": desk.ledger.session.id}).all()
    for row in rows:
        if row.status == "working":  # an engine died while carrying it out
            _finish(desk, row.id, "failed", "interrupted by an engine restart; the venue's state "
                                            "was reconciled on start: check the position")
            continue
        desk.db.execute(update(MANUAL_ORDERS).where(m.id == row.id, m.status == "pending")
                        .values(status="working"))
        desk.commit()  # working before anything is sent: a crash never repeats it
        status, note = _ACTIONS[row.kind](desk, row.target_id)
        _finish(desk, row.id, status, note)
    return len(rows)


def _finish(desk: Desk, order_id: int, status: str, note: str) -> None:
    desk.db.execute(update(MANUAL_ORDERS).where(MANUAL_ORDERS.c.id == order_id)
                    .values(status=status, note=note, done_ms=desk.clock.now_ms()))
    desk.commit()


def _close(desk: Desk, position_id: int) -> tuple[str, str]:
    pos = next((p for p in desk.ledger.open_positions() if p.id == position_id), None)
    if pos is None or pos.quantity <= QTY_EPS:
        return "refused", f"position {position_id} is not open"
    what = f"{pos.symbol} {pos.side.value.lower()} {pos.quantity:g} (position {pos.id})"
    desk.execution.log_event(LOG_KIND, f"user closes {what} at market", agent_id=pos.agent_id,
                             symbol=pos.symbol)
    if desk.execution.close_position(pos, USER):
        return "done", f"closed {what} at market; its stop and take-profit cancelled"
    still = any(p.id == position_id for p in desk.ledger.open_positions())
    if not still:
        return "done", f"closed {what}"
    return "failed", (f"the close of {what} did not fill; the position keeps its stop (see the "
                      "CEO log for the venue's answer)")


def _cancel(desk: Desk, order_id: int) -> tuple[str, str]:
    ex = desk.execution
    info = next((i for i in ex.open_orders.values() if i.order_id == order_id), None)
    if info is None:
        return "refused", f"order {order_id} is not resting at the venue"
    pos = next((p for p in desk.ledger.open_positions() if p.id == info.position_id), None)
    if pos is not None and info.purpose == "stop_loss":
        need = to_quantity(pos.quantity, desk.exchange.filters(pos.symbol).step_size)
        others = [q for i, q in ex.resting(pos, "stop_loss") if i.order_id != order_id]
        if not any(q >= need for q in others):
            return "refused", (f"order {order_id} is the only stop of {pos.symbol} position "
                               f"{pos.id}; cancelling it would leave the position unprotected: "
                               "close the position instead")
    ex.cancel(info)
    if info.client_order_id in ex.open_orders:
        return "failed", f"the venue did not cancel order {order_id}; it is still resting"
    if pos is not None and info.purpose == "take_profit":
        pos.take_profit = None  # coverage must not place it again
        desk.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id).values(take_profit=None))
    if pos is not None and info.purpose == "trailing_stop":
        pos.trail_callback = None  # nor place the trailing stop again; the hard stop stays
        desk.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id)
                        .values(trail_callback=None))
    note = f"{info.symbol} {info.purpose.replace('_', '-')} order {order_id} cancelled by user"
    ex.log_event(LOG_KIND, note, agent_id=info.agent_id, symbol=info.symbol)
    return "done", note


def _flatten(desk: Desk, agent_id: int) -> tuple[str, str]:
    agent = desk.ledger.agents.get(agent_id)
    if agent is None:
        return "refused", f"agent {agent_id} is not in this session"
    positions = [p for p in desk.ledger.open_positions() if p.agent_id == agent_id]
    if not positions:
        return "done", f"{agent.name} holds nothing; it stays {agent.status}"
    outcomes = [_close(desk, p.id) for p in positions]
    failed = [note for status, note in outcomes if status != "done"]
    if failed:
        return "failed", f"{agent.name}: " + "; ".join(failed)
    return "done", f"{agent.name} flattened: {len(positions)} position(s) closed at market"


_ACTIONS = {"close": _close, "cancel": _cancel, "flatten": _flatten}
