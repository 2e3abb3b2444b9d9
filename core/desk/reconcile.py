"""Recovery after a crash or an error that left state unknown: the venue's truth wins.

Runs before the first tick after every start. Orders the store holds as unsent, unknown or resting
are asked of the venue by client order id (never re-sent); fills the desk missed (a stop triggered
or a liquidation while the engine was down) are booked from the venue's trade records; positions
the venue no longer holds are closed in the store, a size the venue holds differently is adopted,
a position no agent owns on one of the session's symbols is closed (elsewhere left alone), resting
orders of this install the store holds finished are cancelled; each open position ends with a
resting stop over its whole quantity (core/desk/coverage.py). Everything that changed is returned and
written to the CEO log (and, live, to the alerts outbox as one alert). It runs before the first tick of every engine start and again after any
tick error (the driver rebuilds the desk from the store), so an error that left state unknown is
settled by the venue's truth before anything else is sent.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from core.alerts import events as alerts
from core.desk.client_ids import is_ours
from core.desk.execution import OPEN_STATUSES, QTY_EPS, Execution
from core.desk.ledger import OpenPosition
from core.errors import ExchangeError
from core.models import ExchangePosition, OrderRequest, OrderSide, OrderType
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
    first: int | None = None
    for text in changes:  # every note starts with its symbol
        symbol = text.split(" ", 1)[0].rstrip(":")
        decision_id = ex.log_event(
            "reconcile", text,
            symbol=symbol if symbol in ex.ledger.session.symbols or symbol.isupper() else None)
        first = decision_id if first is None else first
    if first is not None and ex.alerts and ex.ledger.session.mode == "live":
        alerts.reconciled(ex.db.connection(), session_id=ex.session_id, first_decision_id=first,
                          ts_ms=ex._now_ms(), changes=changes)
    ex.commit()
    return changes + ex.ensure_covered()  # coverage writes its own CEO log entries


def _reconcile_positions(ex: Execution) -> list[str]:
    changes: list[str] = []
    venue = {p.symbol: p for p in ex.exchange.positions()}
    for pos in ex.ledger.open_positions():
        if pos.status == "opening" and pos.quantity <= QTY_EPS and pos.symbol not in venue:
            ex.fail_opening(pos.id, "entry never filled before a restart")
            changes.append(f"{pos.symbol}: entry never filled; position dropped")
            continue
        held = venue.get(pos.symbol)
        if held is None or _signed(pos) != float(held.amount):
            for fill in ex.exchange.fills_since(pos.symbol, pos.opened_ms):
                ex.book_fill(fill)
        if pos.symbol not in ex.ledger.agents[pos.agent_id].positions:
            changes.append(f"{pos.symbol}: closed at the venue while the engine was down; booked")
            continue
        if held is None:
            changes.append(f"{pos.symbol}: flat at the venue but open in the store; "
                           "closed at the last price with no fill found")
            _force_close(ex, pos)
        elif abs(_signed(pos) - float(held.amount)) > QTY_EPS:
            changes.append(_adopt_amount(ex, pos, held))
    changes += _foreign_positions(ex, venue)
    changes += _orphan_orders(ex)
    return changes


def _signed(pos: OpenPosition) -> float:
    return pos.quantity * pos.side.sign


def _adopt_amount(ex: Execution, pos: OpenPosition, held: ExchangePosition) -> str:
    """The venue holds a different size than the books even after its trades were booked: its
    size and entry win (the missing fills are older than the venue keeps, or were never ours)."""
    before = _signed(pos)
    amount = float(held.amount)
    if amount * pos.side.sign <= 0:
        _force_close(ex, pos)
        return (f"{pos.symbol}: the venue holds {held.amount} against the desk's {before:g}; "
                "the desk position is closed in the store and the venue's left to the check below")
    pos.quantity = abs(amount)
    pos.entry_price = float(held.entry_price) or pos.entry_price
    pos.margin = pos.entry_price * pos.quantity / pos.leverage
    pos.status = "open"
    ex.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id).values(
        quantity=pos.quantity, entry_price=pos.entry_price, margin=pos.margin, status="open"))
    return (f"{pos.symbol}: store held {before:g}, the venue {held.amount}; adopted the venue's "
            f"size at entry {pos.entry_price:g}")


def _foreign_positions(ex: Execution, venue: dict[str, ExchangePosition]) -> list[str]:
    """A venue position no desk position explains. On a symbol this session trades it would net
    with the agents' trades and break the one-owner rule, so it is closed (reduce-only market,
    written before sent like every order); elsewhere it is the user's business and left alone."""
    changes: list[str] = []
    for symbol, held in venue.items():
        if ex.ledger.owner_of(symbol) is not None or held.amount == 0:
            continue
        if symbol not in ex.ledger.session.symbols:
            changes.append(f"{symbol}: the venue holds {held.amount} outside this session's "
                           "symbols; left untouched")
            continue
        filters = ex.exchange.filters(symbol)
        qty = filters.round_qty(abs(held.amount))
        n = ex.db.scalar(select(func.count()).select_from(ORDERS).where(
            ORDERS.c.session_id == ex.session_id, ORDERS.c.purpose == "reconcile"))
        side = OrderSide.SELL if held.amount > 0 else OrderSide.BUY
        request = OrderRequest(
            client_order_id=f"{ex.prefix}-s{ex.session_id}r{n}", symbol=symbol, side=side,
            type=OrderType.MARKET, quantity=qty, reduce_only=True,
        )
        result = ex.submit(request, agent_id=None, position_id=None, purpose="reconcile")
        outcome = "closed at market" if result is not None else "could not be closed (see orders)"
        changes.append(f"{symbol}: the venue holds {held.amount} that no agent owns "
                       f"(entry {held.entry_price}); {outcome}")
        for order in ex.exchange.open_orders(symbol):
            if order.client_order_id not in ex.open_orders and order.reduce_only:
                ex.exchange.cancel_order(symbol, order.client_order_id)
    return changes


def _orphan_orders(ex: Execution) -> list[str]:
    """Resting venue orders the store does not hold as open: ours (by the install prefix) are
    cancelled, anyone else's are reported and left alone."""
    changes: list[str] = []
    try:
        resting = ex.exchange.open_orders()
    except ExchangeError as exc:
        return [f"open orders could not be listed ({exc})"]
    for order in resting:
        if order.client_order_id in ex.open_orders:
            continue
        if is_ours(ex.prefix, order.client_order_id):
            ex.exchange.cancel_order(order.symbol, order.client_order_id)
            changes.append(f"{order.symbol} order {order.client_order_id} rests at the venue but "
                           "the store holds it finished: cancelled")
        else:
            changes.append(f"{order.symbol} order {order.client_order_id} at the venue is not the "
                           "desk's; left untouched")
    return changes


def _force_close(ex: Execution, pos: OpenPosition) -> None:
    agent = ex.ledger.agents[pos.agent_id]
    ex.db.execute(
        update(POSITIONS).where(POSITIONS.c.id == pos.id)
        .values(status="closed", closed_ms=ex._now_ms(), close_reason="reconcile", quantity=0.0)
    )
    pos.quantity = 0.0
    ex.after_close(agent, pos)
