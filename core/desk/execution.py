"""Orders and their consequences: nothing lost, nothing doubled, no position left naked.

Every order is written to the store and committed *before* it is sent, under a deterministic client
order id derived from the position (and so from the CEO decision) that caused it. A venue answer is
booked in the same place whatever its origin: a market fill we asked for, a stop the venue
triggered, a liquidation, funding. Fills are booked once per venue trade id. After an entry fills,
a reduce-only stop (and the trailing stop and take-profit, if any) covers the whole position
(core/desk/protection.py);
if the venue refuses the stop the position is closed at once, and one whose stop met an unknown
fate is covered again on the next tick (core/desk/coverage.py, which also re-checks coverage after
every fill the venue reports). ``reconcile`` runs before the first tick after a start and
settles anything a crash left open by asking the venue, never by sending again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from core.alerts import events as alerts
from core.desk.client_ids import client_order_id, install_prefix
from core.desk.coverage import Coverage
from core.desk.ledger import AgentLedger, Ledger, OpenPosition
from core.desk.protection import QTY_EPS, OrderInfo, to_quantity
from core.errors import ExchangeError, ExchangeUnavailable, OrderRejected, UnknownOrderStatus
from core.exchanges.base import LOSS_GUARD_PREFIX, Exchange
from core.models import (
    ExchangeEvents,
    Fill,
    FundingPayment,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from core.store.tables import (
    AGENTS,
    CEO_DECISIONS,
    FILLS,
    FUNDING,
    ORDERS,
    POSITIONS,
)

log = logging.getLogger(__name__)

PROTECTIVE = ("stop_loss", "take_profit", "trailing_stop")
UNKNOWN_GIVE_UP_MS = 5 * 60_000  # an order the venue still does not know after this never reached it
CLOSE_REASONS = ("agent", "ceo", "drawdown_halt", "session_stop", "liquidation", "reconcile",
                 "user")
OPEN_STATUSES = ("PENDING", "UNKNOWN", OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)
_SUFFIX = {"entry": "e", "stop_loss": "s", "take_profit": "t", "trailing_stop": "r"}

# The statements of the order path, built once: building one per call costs more than running it.
_ORDERS_OF_KIND = select(func.count()).select_from(ORDERS).where(
    ORDERS.c.position_id == bindparam("pid"),
    ORDERS.c.purpose.in_(bindparam("purposes", expanding=True)))
_MARK_ORDER = update(ORDERS).where(ORDERS.c.id == bindparam("oid")).values(
    status=bindparam("v_status"), error=bindparam("v_error"), updated_ms=bindparam("v_now"))
_ORDER_RESULT = update(ORDERS).where(ORDERS.c.id == bindparam("oid")).values(
    status=bindparam("v_status"), exchange_order_id=bindparam("v_exchange_id"),
    executed_qty=bindparam("v_executed"), avg_price=bindparam("v_avg"), updated_ms=bindparam("v_now"))
_FILL_BOOKED = select(FILLS.c.id).where(FILLS.c.session_id == bindparam("sid"),
                                        FILLS.c.trade_id == bindparam("trade_id"))
_ORDER_OF_FILL = select(ORDERS.c.position_id, ORDERS.c.purpose).where(
    ORDERS.c.client_order_id == bindparam("cid"))
_POSITION_COLUMNS = ("quantity", "entry_price", "margin", "status", "realized_pnl", "fees",
                     "exit_qty", "exit_price", "liquidation_price")
_FILLED_POSITION = update(POSITIONS).where(POSITIONS.c.id == bindparam("pid")).values(
    {c: bindparam(f"v_{c}") for c in _POSITION_COLUMNS})
_CLOSED_POSITION = update(POSITIONS).where(POSITIONS.c.id == bindparam("pid")).values(
    {c: bindparam(f"v_{c}") for c in (*_POSITION_COLUMNS, "closed_ms", "close_reason")})
_SAVE_AGENT = update(AGENTS).where(AGENTS.c.id == bindparam("aid")).values(
    realized_pnl=bindparam("v_realized"), fees=bindparam("v_fees"), funding=bindparam("v_funding"))
_FUNDING_BOOKED = select(FUNDING.c.id).where(FUNDING.c.session_id == bindparam("sid"),
                                             FUNDING.c.payment_id == bindparam("payment_id"))
_POSITION_FUNDING = update(POSITIONS).where(POSITIONS.c.id == bindparam("pid")).values(
    funding=bindparam("v_funding"))


class Execution(Coverage):
    """Sends orders and books everything the venue reports for one session."""

    def __init__(
        self,
        db: Session,
        ledger: Ledger,
        exchange: Exchange,
        *,
        commit: Callable[[], None],
        now_ms: Callable[[], int],
        alerts: bool = True,
    ) -> None:
        self.db = db
        # write the outbox rows of trades, stops and repairs (off in a backtest's private store,
        # whose run alerts once, when it finishes)
        self.alerts = alerts
        self.ledger = ledger
        self.exchange = exchange
        self.commit = commit
        self._now_ms = now_ms
        self.session_id = ledger.session.id
        self.open_orders: dict[str, OrderInfo] = {}
        rows = db.execute(
            select(ORDERS.c.id, ORDERS.c.client_order_id, ORDERS.c.position_id,
                   ORDERS.c.agent_id, ORDERS.c.purpose, ORDERS.c.symbol)
            .where(ORDERS.c.session_id == self.session_id, ORDERS.c.status.in_(OPEN_STATUSES))
        )
        for r in rows:
            self.open_orders[r.client_order_id] = OrderInfo(*r)
        self.prefix = install_prefix(db)
        # positions known to lack a resting stop over their whole quantity: id -> naked since (ms)
        self.naked: dict[int, int] = dict(db.execute(
            select(POSITIONS.c.id, POSITIONS.c.naked_since_ms).where(
                POSITIONS.c.session_id == self.session_id, POSITIONS.c.status == "open",
                POSITIONS.c.naked_since_ms.is_not(None))
        ).all())
        self.last_refused = False  # did the latest submit() end in a venue refusal?
        # orders whose placement answer was lost and the venue does not know (yet): client order
        # id -> since when (ms); asked again every tick, never re-sent (a restart's reconcile
        # settles what is left)
        self.unknown: dict[str, int] = {}

    # ------------------------------------------------------------------ sending
    def _client_id(self, position_id: int, purpose: str) -> str:
        if purpose == "entry":
            return client_order_id(self.prefix, self.session_id, position_id, "e", None)
        tag = _SUFFIX.get(purpose, "x")
        purposes = PROTECTIVE if tag in ("s", "t", "r") else CLOSE_REASONS
        n = self.db.connection().scalar(_ORDERS_OF_KIND, {
            "pid": position_id, "purposes": [p for p in purposes if _SUFFIX.get(p, "x") == tag]})
        return client_order_id(self.prefix, self.session_id, position_id, tag, n)

    def submit(
        self,
        request: OrderRequest,
        *,
        agent_id: int | None,
        position_id: int | None,
        purpose: str,
    ) -> OrderResult | None:
        """Write the order, commit, send it, book the answer. None when the venue refused it
        (``last_refused``) or its fate could not be learned."""
        self.last_refused = False
        now = self._now_ms()
        order_id = self.db.connection().execute(insert(ORDERS), {
            "session_id": self.session_id, "agent_id": agent_id, "position_id": position_id,
            "client_order_id": request.client_order_id, "symbol": request.symbol,
            "side": request.side.value, "type": request.type.value, "purpose": purpose,
            "quantity": float(request.quantity),
            "stop_price": float(request.stop_price) if request.stop_price is not None else None,
            "reduce_only": request.reduce_only, "status": "PENDING", "created_ms": now,
            "updated_ms": now,
            "callback_rate": _maybe_float(request.callback_rate),
            "activation_price": _maybe_float(request.activation_price),
        }).inserted_primary_key[0]
        info = OrderInfo(order_id, request.client_order_id, position_id, agent_id, purpose,
                         request.symbol)
        self.open_orders[request.client_order_id] = info
        # Written before sent, and no write transaction stays open across the venue call (the
        # paper venue may share the SQLite file): a crash from here on is settled by reconcile().
        self.commit()
        try:
            result = self.exchange.place_order(request)
        except OrderRejected as exc:
            self.finish(info, "REJECTED", error=f"{exc} (code {exc.code})")
            self.commit()
            self.last_refused = True
            return None
        except UnknownOrderStatus as exc:
            result = self._resolve_unknown(info, str(exc))
            if result is None:
                return None
        except ExchangeUnavailable as exc:
            # The venue said nothing was done; keep it UNKNOWN so reconcile asks before anything.
            self._mark(info, "UNKNOWN", error=str(exc))
            self.commit()
            raise
        self.apply_result(info, result)
        self.commit()
        return result

    def _resolve_unknown(self, info: OrderInfo, error: str) -> OrderResult | None:
        self._mark(info, "UNKNOWN", error=error)
        self.commit()
        try:
            found = self.exchange.get_order(info.symbol, info.client_order_id)
        except ExchangeError as exc:
            log.warning("order %s status unknown and query failed: %s", info.client_order_id, exc)
            return None
        if found is None:  # it may still surface (a 503 can execute late): ask again each tick
            self._mark(info, "UNKNOWN", error=f"{error}; not known to the venue yet: asked again "
                                              "every tick, never re-sent")
            self.unknown.setdefault(info.client_order_id, self._now_ms())
            self.commit()
        return found

    def settle_unknown(self) -> None:
        """Ask the venue again about the orders whose fate is unknown: a late one is booked (an
        entry then gets its stop); one still unknown after ``UNKNOWN_GIVE_UP_MS`` is expired."""
        now = self._now_ms()
        for cid, since in list(self.unknown.items()):
            info = self.open_orders.get(cid)
            if info is None:  # settled meanwhile (a fill reported it, a cancel, a stop)
                del self.unknown[cid]
                continue
            try:
                found = self.exchange.get_order(info.symbol, cid)
            except ExchangeError as exc:
                log.warning("order %s still unknown: %s", cid, exc)
                continue
            if found is not None:
                del self.unknown[cid]
                self.apply_result(info, found)
                self.log_event("execution", f"{info.symbol} order {cid} surfaced at the venue as "
                               f"{found.status.value} after its answer was lost; booked",
                               agent_id=info.agent_id, symbol=info.symbol)
                self.ensure_covered([p for p in self.ledger.open_positions()
                                      if p.id == info.position_id])
            elif now - since >= UNKNOWN_GIVE_UP_MS:
                del self.unknown[cid]
                self.finish(info, "EXPIRED", error="the venue never knew it; not re-sent")
            self.commit()

    def _mark(self, info: OrderInfo, status: str, *, error: str | None = None) -> None:
        self.db.connection().execute(_MARK_ORDER, {
            "oid": info.order_id, "v_status": status, "v_error": error, "v_now": self._now_ms()})

    def finish(self, info: OrderInfo, status: str, *, error: str | None = None) -> None:
        self._mark(info, status, error=error)
        self.open_orders.pop(info.client_order_id, None)
        if info.purpose == "entry" and info.position_id is not None:
            self.fail_opening(info.position_id, error or status)

    def apply_result(self, info: OrderInfo, result: OrderResult) -> None:
        """Book the venue's view of one of our orders: status, then any fills not yet booked."""
        self.db.connection().execute(_ORDER_RESULT, {
            "oid": info.order_id, "v_status": result.status.value,
            "v_exchange_id": result.exchange_order_id, "v_executed": float(result.executed_qty),
            "v_avg": float(result.avg_price) if result.executed_qty else None,
            "v_now": self._now_ms(),
        })
        for fill in result.fills:
            self.book_fill(fill)
        if info.purpose == "entry" and result.status is OrderStatus.FILLED:
            self._alert_opened(info)
        if result.status.final:
            self.open_orders.pop(info.client_order_id, None)
            if result.status is not OrderStatus.FILLED and info.purpose == "entry":
                self.fail_opening(info.position_id, f"entry {result.status.value.lower()}")

    # ------------------------------------------------------------------ booking
    def _already_booked(self, trade_id: str) -> bool:
        return self.db.connection().scalar(
            _FILL_BOOKED, {"sid": self.session_id, "trade_id": trade_id}) is not None

    def _position_for_fill(self, fill: Fill) -> tuple[OpenPosition | None, str]:
        info = self.open_orders.get(fill.client_order_id)
        if info is None:
            row = self.db.connection().execute(
                _ORDER_OF_FILL, {"cid": fill.client_order_id}).first()
            purpose = row.purpose if row else _venue_purpose(fill)
            position_id = row.position_id if row else None
        else:
            purpose, position_id = info.purpose, info.position_id
        owner = self.ledger.owner_of(fill.symbol)
        pos = owner.positions.get(fill.symbol) if owner else None
        if pos is not None and position_id is not None and pos.id != position_id:
            log.error("fill %s belongs to position %s, not the open %s", fill.trade_id, position_id, pos.id)
            return None, purpose
        return pos, purpose

    def book_fill(self, fill: Fill) -> int | None:
        """Book one venue fill, once per trade id; returns the id of the desk position it moved
        (None when it was booked before or has no owner)."""
        if self._already_booked(fill.trade_id):
            return None
        pos, purpose = self._position_for_fill(fill)
        agent = self.ledger.agents[pos.agent_id] if pos else None
        self.db.connection().execute(insert(FILLS), {
            "session_id": self.session_id, "agent_id": agent.id if agent else None,
            "position_id": pos.id if pos else None, "trade_id": fill.trade_id,
            "client_order_id": fill.client_order_id, "symbol": fill.symbol,
            "side": fill.side.value, "quantity": float(fill.quantity), "price": float(fill.price),
            "fee": float(fill.fee), "realized_pnl": float(fill.realized_pnl),
            "liquidation": fill.liquidation, "ts_ms": fill.ts_ms,
        })
        if pos is None or agent is None:
            self.log_event("reconcile", f"fill {fill.trade_id} on {fill.symbol} has no open desk "
                           "position; booked without an owner", symbol=fill.symbol)
            return None
        qty, price = float(fill.quantity), float(fill.price)
        fee, pnl = float(fill.fee), float(fill.realized_pnl)
        increases = (fill.side is OrderSide.BUY) == (pos.side is PositionSide.LONG)
        # sizes add on the venue's step grid: float sums leave dust that would keep a position
        # "open" after a full close (e.g. 21731.9 + 8373.2 = 30105.100000000002)
        held = to_quantity(pos.quantity, self.exchange.filters(pos.symbol).step_size)
        if increases:
            new_qty = float(held + fill.quantity)
            pos.entry_price = (pos.entry_price * pos.quantity + price * qty) / new_qty
            pos.quantity = new_qty
            pos.margin = pos.entry_price * new_qty / pos.leverage
            pos.status = "open"
        else:
            pos.quantity = max(0.0, float(held - fill.quantity))
            pos.exit_qty += qty
            pos.exit_value += price * qty
            pos.realized_pnl += pnl
        pos.fees += fee
        agent.realized_pnl += pnl
        agent.fees += fee
        closed = not increases and pos.quantity <= QTY_EPS
        values: dict[str, object] = {
            "quantity": pos.quantity, "entry_price": pos.entry_price, "margin": pos.margin,
            "status": "closed" if closed else pos.status, "realized_pnl": pos.realized_pnl,
            "fees": pos.fees, "exit_qty": pos.exit_qty,
            "exit_price": pos.exit_value / pos.exit_qty if pos.exit_qty else None,
            "liquidation_price": self._liquidation_price(pos) if increases else None,
        }
        if closed:
            values.update(closed_ms=fill.ts_ms, close_reason=_close_reason(purpose, fill))
        self.db.connection().execute(_CLOSED_POSITION if closed else _FILLED_POSITION,
                                     {"pid": pos.id, **{f"v_{k}": v for k, v in values.items()}})
        self._save_agent(agent)
        if closed:
            if self.alerts:
                alerts.trade_closed(
                    self.db.connection(), session_id=self.session_id, position_id=pos.id,
                    ts_ms=fill.ts_ms, agent=agent.name, symbol=pos.symbol, side=pos.side.value,
                    quantity=pos.exit_qty, entry=pos.entry_price,
                    exit_price=values["exit_price"],  # type: ignore[arg-type]
                    gross=pos.realized_pnl, fees=pos.fees, funding=pos.funding,
                    reason=str(values["close_reason"]))
            self.after_close(agent, pos)
        return pos.id

    def _alert_opened(self, info: OrderInfo) -> None:
        """The outbox row of a position whose entry filled (once: its event id is the position)."""
        if not self.alerts or info.agent_id is None:
            return
        agent = self.ledger.agents.get(info.agent_id)
        pos = next((p for p in agent.positions.values() if p.id == info.position_id), None) \
            if agent is not None else None
        if agent is None or pos is None or pos.quantity <= QTY_EPS:
            return
        alerts.trade_opened(
            self.db.connection(), session_id=self.session_id, position_id=pos.id,
            ts_ms=self._now_ms(), agent=agent.name, symbol=pos.symbol, side=pos.side.value,
            quantity=pos.quantity, price=pos.entry_price, leverage=pos.leverage,
            margin=pos.margin, stop=pos.stop_price)

    def _liquidation_price(self, pos: OpenPosition) -> float:
        mmr = float(self.exchange.filters(pos.symbol).maint_margin_rate)
        if pos.side is PositionSide.LONG:
            return pos.entry_price * (1 - 1 / pos.leverage + mmr)
        return pos.entry_price * (1 + 1 / pos.leverage - mmr)

    def after_close(self, agent: AgentLedger, pos: OpenPosition) -> None:
        agent.positions.pop(pos.symbol, None)
        net = pos.realized_pnl - pos.fees + pos.funding
        agent.recent_results.append(net)
        agent.recent_returns.append(net / pos.margin if pos.margin else 0.0)
        for info in [i for i in self.open_orders.values() if i.position_id == pos.id]:
            self.cancel(info)

    def cancel(self, info: OrderInfo) -> None:
        self.commit()  # never call the venue inside an open write transaction
        try:
            result = self.exchange.cancel_order(info.symbol, info.client_order_id)
        except ExchangeError as exc:
            log.warning("cancel %s failed: %s", info.client_order_id, exc)
            return
        if result is None:
            self.finish(info, "CANCELED", error="unknown to the venue")
        else:
            self.apply_result(info, result)

    def book_funding(self, payment: FundingPayment) -> None:
        exists = self.db.connection().scalar(
            _FUNDING_BOOKED, {"sid": self.session_id, "payment_id": payment.payment_id})
        if exists is not None:
            return
        owner = self.ledger.owner_of(payment.symbol)
        pos = owner.positions.get(payment.symbol) if owner else None
        amount = float(payment.amount)
        self.db.connection().execute(insert(FUNDING), {
            "session_id": self.session_id, "agent_id": owner.id if owner else None,
            "position_id": pos.id if pos else None, "payment_id": payment.payment_id,
            "symbol": payment.symbol, "amount": amount, "rate": payment.rate,
            "ts_ms": payment.ts_ms,
        })
        if owner is None or pos is None:
            return
        owner.funding += amount
        pos.funding += amount
        self.db.connection().execute(_POSITION_FUNDING, {"pid": pos.id, "v_funding": pos.funding})
        self._save_agent(owner)

    def book_events(self, events: ExchangeEvents) -> None:
        """Book what the venue did on its own since the last sync (stops, take-profits,
        liquidations, expiries, funding), in time order."""
        for payment in events.funding:
            self.book_funding(payment)
        touched: set[int] = set()
        for fill in events.fills:
            if (position_id := self.book_fill(fill)) is not None:
                touched.add(position_id)
        for update_ in events.order_updates:
            info = self.open_orders.get(update_.order.client_order_id)
            if info is not None:
                self.apply_result(info, update_.order)
                if info.position_id is not None and info.purpose in PROTECTIVE:
                    touched.add(info.position_id)
        if touched:
                self.ensure_covered([p for p in self.ledger.open_positions() if p.id in touched])

    def _save_agent(self, agent: AgentLedger) -> None:
        self.db.connection().execute(_SAVE_AGENT, {
            "aid": agent.id, "v_realized": agent.realized_pnl, "v_fees": agent.fees,
            "v_funding": agent.funding})

    def fail_opening(self, position_id: int | None, reason: str) -> None:
        if position_id is None:
            return
        for agent in self.ledger.agents.values():
            for symbol, pos in list(agent.positions.items()):
                if pos.id == position_id and pos.quantity <= QTY_EPS:
                    del agent.positions[symbol]
                    self.db.execute(
                        update(POSITIONS).where(POSITIONS.c.id == position_id)
                        .values(status="failed", close_reason="not_filled", closed_ms=self._now_ms())
                    )
                    self.log_event("execution", f"{agent.name} {symbol}: entry not filled ({reason})",
                                   agent_id=agent.id, symbol=symbol)

    def log_event(self, kind: str, reason: str, *, agent_id: int | None = None,
                  symbol: str | None = None, changes: dict | None = None) -> int:
        """Write one CEO log row; returns its id (the event id of an alert that tells it)."""
        return int(self.db.connection().execute(insert(CEO_DECISIONS), {
            "session_id": self.session_id, "agent_id": agent_id, "ts_ms": self._now_ms(),
            "kind": kind, "symbol": symbol, "rules": "", "reason": reason,
            "changes": json.dumps(changes) if changes else None,
        }).inserted_primary_key[0])

    # ------------------------------------------------------------------ positions
    def open_position(self, pos: OpenPosition, quantity: Decimal) -> None:
        """Send the entry of a position the CEO approved (its row is already committed)."""
        agent_id = pos.agent_id
        self.commit()  # never call the venue inside an open write transaction
        try:
            self.exchange.set_leverage(pos.symbol, pos.leverage)
        except ExchangeError as exc:
            self.fail_opening(pos.id, f"leverage refused: {exc}")
            self.commit()
            return
        request = OrderRequest(
            client_order_id=self._client_id(pos.id, "entry"), symbol=pos.symbol,
            side=pos.side.entry_order_side, type=OrderType.MARKET, quantity=quantity,
        )
        result = self.submit(request, agent_id=agent_id, position_id=pos.id, purpose="entry")
        if result is not None and pos.quantity > QTY_EPS:
            self.protect(pos)

    def close_position(self, pos: OpenPosition, reason: str) -> bool:
        """Market-close a whole position (reduce-only). The protective orders are cancelled only
        after the close fills, so a failed close leaves the stop in place."""
        if pos.quantity <= QTY_EPS:
            return True
        filters = self.exchange.filters(pos.symbol)
        request = OrderRequest(
            client_order_id=self._client_id(pos.id, reason), symbol=pos.symbol,
            side=pos.side.exit_order_side, type=OrderType.MARKET,
            quantity=to_quantity(pos.quantity, filters.step_size), reduce_only=True,
        )
        result = self.submit(request, agent_id=pos.agent_id, position_id=pos.id, purpose=reason)
        return result is not None and result.status is OrderStatus.FILLED

    def cancel_orders_of_closed(self) -> None:
        """Cancel every resting order except those protecting a position still held: a close the
        venue refused must leave the position under its stop."""
        held = {p.id for p in self.ledger.open_positions() if p.quantity > QTY_EPS}
        for info in list(self.open_orders.values()):
            if info.position_id not in held:
                self.cancel(info)


def _maybe_float(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _venue_purpose(fill: Fill) -> str:
    """Why the venue traded on its own, for a fill of an order the desk did not send."""
    if fill.liquidation:
        return "liquidation"
    if fill.client_order_id.startswith(LOSS_GUARD_PREFIX):
        return "drawdown_halt"
    return "reconcile"


def _close_reason(purpose: str, fill: Fill) -> str:
    if fill.liquidation:
        return "liquidation"
    return purpose if purpose in PROTECTIVE or purpose in CLOSE_REASONS else "reconcile"
