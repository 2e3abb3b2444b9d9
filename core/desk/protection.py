"""Protective orders: the reduce-only stop (and trailing stop and take-profit) every open position
rests under.

Why it exists: kept apart from core/desk/execution.py (orders, fills, booking) so the rules that keep
a position covered read on their own. ``Protection`` is a mixin of ``Execution`` and works through
its ``submit``, ``close_position`` and store. It promises: the stop covers the whole position at
the level its stop distance gives (rounded so it never triggers later than asked), long stops
below and short stops above the entry; a stop the venue *refuses* closes the position at once; a
stop whose fate is *unknown* (timeout, 503, not found afterwards) is tried once more at once and
otherwise marks the position naked, so the next tick covers it (core/desk/coverage.py).

A trailing stop (``TRAILING_STOP_MARKET``, reduce-only, the whole position) rests *beside* the hard
stop, after it, never instead of it: its callback goes to the venue in percent, rounded down to
0.1 (a tighter trail, never a wider one), and its activation price rounded toward the entry (armed
no later than asked). One the venue refuses is dropped and said so in the CEO log; the hard stop
still covers the position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.desk.ledger import Ledger, OpenPosition
from core.exchanges.base import Exchange
from core.models import OrderRequest, OrderResult, OrderType, PositionSide
from core.store.tables import POSITIONS

CALLBACK_STEP = Decimal("0.1")  # the venue's callbackRate, in percent: 0.1 .. 5
MIN_CALLBACK = Decimal("0.1")
MAX_CALLBACK = Decimal("5")

QTY_EPS = 1e-12


@dataclass(slots=True)
class OrderInfo:
    order_id: int
    client_order_id: str
    position_id: int | None
    agent_id: int | None
    purpose: str
    symbol: str


def to_quantity(qty: float, step: Decimal) -> Decimal:
    """A booked float quantity back to an exact multiple of the step size."""
    return Decimal(repr(qty)).quantize(step)


class Protection:
    """Stop and take-profit placement for ``Execution``, which provides what is declared here."""

    if TYPE_CHECKING:
        db: Session
        ledger: Ledger
        exchange: Exchange
        commit: Callable[[], None]
        naked: dict[int, int]
        last_refused: bool
        _now_ms: Callable[[], int]

        def _client_id(self, position_id: int, purpose: str) -> str: ...

        def submit(self, request: OrderRequest, *, agent_id: int | None,
                   position_id: int | None, purpose: str) -> OrderResult | None: ...

        def close_position(self, pos: OpenPosition, reason: str) -> bool: ...

        alerts: bool

        def log_event(self, kind: str, reason: str, *, agent_id: int | None = None,
                      symbol: str | None = None, changes: dict | None = None) -> int: ...

        def cover_naked(self) -> list[str]: ...

    def protect(self, pos: OpenPosition) -> None:
        """Rest a reduce-only stop over the whole position (and the take-profit, if any). A
        position whose stop the venue refuses is closed at once rather than left naked; one whose
        stop met an unknown fate is marked naked and covered again on the next tick."""
        placed = self.place_stop(pos)
        if placed is None and not self.last_refused and pos.quantity > QTY_EPS:
            self.mark_naked(pos, self._now_ms())
            placed = self.place_stop(pos)  # its fate was unknown and it is not resting: once more
            if placed is not None:
                self.cover_naked()  # logs how long it was naked
        if placed is None:
            if self.last_refused:
                self.log_event("execution", f"{pos.symbol}: stop refused by the venue; closing the "
                               "position rather than leaving it unprotected",
                               agent_id=pos.agent_id, symbol=pos.symbol)
                self.close_position(pos, "ceo")
            else:
                self.mark_naked(pos, self._now_ms())
            return
        if pos.symbol not in self.ledger.agents[pos.agent_id].positions:
            return
        if pos.trail_callback is not None:
            self.place_trailing(pos)
        if pos.take_profit is None or pos.symbol not in self.ledger.agents[pos.agent_id].positions:
            return
        self.place_take_profit(pos)

    def stop_level(self, pos: OpenPosition) -> Decimal:
        filters = self.exchange.filters(pos.symbol)
        entry = Decimal(repr(pos.entry_price))
        distance = Decimal(repr(pos.stop_distance))
        if pos.side is PositionSide.LONG:
            return filters.round_price(entry * (1 - distance), up=True)
        return filters.round_price(entry * (1 + distance), up=False)

    def place_stop(self, pos: OpenPosition, stop: Decimal | None = None) -> OrderResult | None:
        """A reduce-only stop-market (mark-price trigger at the venue) over the whole position."""
        filters = self.exchange.filters(pos.symbol)
        stop = self.stop_level(pos) if stop is None else stop
        stop_req = OrderRequest(
            client_order_id=self._client_id(pos.id, "stop_loss"), symbol=pos.symbol,
            side=pos.side.exit_order_side, type=OrderType.STOP_MARKET,
            quantity=to_quantity(pos.quantity, filters.step_size), stop_price=stop,
            reduce_only=True,
        )
        placed = self.submit(stop_req, agent_id=pos.agent_id, position_id=pos.id, purpose="stop_loss")
        if placed is not None:
            pos.stop_price = float(stop)
            self.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id)
                            .values(stop_price=pos.stop_price))
        return placed

    def trailing_request(self, pos: OpenPosition) -> OrderRequest | None:
        """The reduce-only trailing stop over the whole position, in the venue's units."""
        if pos.trail_callback is None:
            return None
        filters = self.exchange.filters(pos.symbol)
        rate = (Decimal(repr(pos.trail_callback)) * 100).quantize(CALLBACK_STEP, ROUND_DOWN)
        rate = min(max(rate, MIN_CALLBACK), MAX_CALLBACK)
        activation = None
        if pos.trail_activation is not None:
            activation = filters.round_price(Decimal(repr(pos.trail_activation)),
                                             up=pos.side is PositionSide.SHORT)
        return OrderRequest(
            client_order_id=self._client_id(pos.id, "trailing_stop"), symbol=pos.symbol,
            side=pos.side.exit_order_side, type=OrderType.TRAILING_STOP_MARKET,
            quantity=to_quantity(pos.quantity, filters.step_size), reduce_only=True,
            callback_rate=rate, activation_price=activation,
        )

    def place_trailing(self, pos: OpenPosition) -> OrderResult | None:
        """Rest the trailing stop beside the hard stop; a refusal drops it (logged), the hard stop
        stays."""
        request = self.trailing_request(pos)
        if request is None:
            return None
        placed = self.submit(request, agent_id=pos.agent_id, position_id=pos.id,
                             purpose="trailing_stop")
        if placed is None and self.last_refused:
            self.log_event("execution", f"{pos.symbol}: trailing stop ({request.callback_rate}% "
                           f"callback) refused by the venue; the hard stop still covers the "
                           "position", agent_id=pos.agent_id, symbol=pos.symbol)
            pos.trail_callback = None
            self.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id)
                            .values(trail_callback=None))
        return placed

    def place_take_profit(self, pos: OpenPosition) -> OrderResult | None:
        if pos.take_profit is None:
            return None
        filters = self.exchange.filters(pos.symbol)
        entry = Decimal(repr(pos.entry_price))
        tp = filters.round_price(Decimal(repr(pos.take_profit)), up=pos.side is PositionSide.SHORT)
        placed = None
        if (tp - entry) * pos.side.sign <= 0:
            pos.take_profit = None
        else:
            tp_req = OrderRequest(
                client_order_id=self._client_id(pos.id, "take_profit"), symbol=pos.symbol,
                side=pos.side.exit_order_side, type=OrderType.TAKE_PROFIT_MARKET,
                quantity=to_quantity(pos.quantity, filters.step_size), stop_price=tp,
                reduce_only=True,
            )
            placed = self.submit(tp_req, agent_id=pos.agent_id, position_id=pos.id,
                                 purpose="take_profit")
            if placed is None and self.last_refused:
                pos.take_profit = None
            elif placed is not None:
                pos.take_profit = float(tp)
        self.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id).values(take_profit=pos.take_profit))
        return placed

    def mark_naked(self, pos: OpenPosition, since_ms: int) -> None:
        """Remember (in memory and the store) that ``pos`` lacks its stop since ``since_ms``."""
        if pos.id in self.naked:
            return
        self.naked[pos.id] = since_ms
        self.db.execute(update(POSITIONS).where(POSITIONS.c.id == pos.id)
                        .values(naked_since_ms=since_ms))
        self.commit()

