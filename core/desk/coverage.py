"""Stop coverage: every open position rests under a reduce-only stop for its whole quantity.

Why it exists: a position without its exchange-resident stop is the one state a desk must never sit
in unnoticed (the field lesson: a partial close cancelled the stop and the rest stayed naked for
minutes). ``ensure_covered`` runs after every fill the venue reports, after a partial entry, after
a restart (from ``reconcile``) and on every tick while something is known to be naked. For each
open position it counts the resting stops (NEW or PARTIALLY_FILLED at the venue, by the store's
last answer) and their unfilled quantity; when they do not cover the position it places a new stop
over the whole quantity first and only then cancels the undersized ones, so there is never a
moment with less cover than before. The take-profit, when the position has one, is kept whole the
same way, and so is the trailing stop. A stop the venue refuses (e.g. the price is already past it) closes the position at
market. How long the position was naked is added to ``positions.naked_ms`` and written to the CEO
log as ``kind="coverage"``; when the moment cover was lost is not known (a stop cancelled at the
venue while the engine was down) the duration is an upper bound, counted from the last tick that
saw the position covered.

Promises: never more than one new stop per position per call; never cancels a stop before its
replacement rests; every repair or failure to repair is in the CEO log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from core.alerts import events as alerts
from core.desk.ledger import OpenPosition
from core.desk.protection import QTY_EPS, OrderInfo, Protection, to_quantity
from core.models import OrderStatus
from core.store.tables import ORDERS, POSITIONS

RESTING = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)


class Coverage(Protection):
    """Stop coverage for ``Execution``, which provides what is declared here."""

    if TYPE_CHECKING:
        open_orders: dict[str, OrderInfo]

        def cancel(self, info: OrderInfo) -> None: ...

    def resting(self, pos: OpenPosition, purpose: str) -> list[tuple[OrderInfo, Decimal]]:
        """The position's resting orders of one purpose with the quantity each still covers."""
        infos = {i.order_id: i for i in self.open_orders.values()
                 if i.position_id == pos.id and i.purpose == purpose}
        if not infos:
            return []
        step = self.exchange.filters(pos.symbol).step_size
        rows = self.db.execute(
            select(ORDERS.c.id, ORDERS.c.quantity, ORDERS.c.executed_qty, ORDERS.c.status)
            .where(ORDERS.c.id.in_(list(infos)))
        ).all()
        return [(infos[r.id], to_quantity(max(0.0, r.quantity - (r.executed_qty or 0.0)), step))
                for r in rows if r.status in RESTING]

    def _naked_start(self, pos: OpenPosition) -> int:
        """When cover may have been lost, at the earliest: the last tick that saw the position
        covered (the session clock before this tick), or its opening if it opened since."""
        return max(pos.opened_ms, min(self.ledger.session.clock_ms, self._now_ms()))

    def ensure_covered(self, positions: Iterable[OpenPosition] | None = None,
                       *, since_ms: int | None = None) -> list[str]:
        """Re-cover what lacks a whole stop (and take-profit); returns what was done, also logged."""
        notes: list[str] = []
        targets = list(self.ledger.open_positions() if positions is None else positions)
        for pos in targets:
            if pos.quantity <= QTY_EPS or pos.symbol not in self.ledger.agents[pos.agent_id].positions:
                continue
            need = to_quantity(pos.quantity, self.exchange.filters(pos.symbol).step_size)
            stops = self.resting(pos, "stop_loss")
            if not any(qty >= need for _, qty in stops):
                notes.append(self._recover_stop(pos, need, stops, since_ms))
            elif pos.id in self.naked:
                notes.append(self._clear_naked(pos, "a resting stop covers it again"))
            if pos.symbol in self.ledger.agents[pos.agent_id].positions:
                if pos.trail_callback is not None:
                    self._recover_exit(pos, need, "trailing_stop", self.place_trailing, notes)
                if pos.take_profit is not None:
                    self._recover_exit(pos, need, "take_profit", self.place_take_profit, notes)
        self.commit()
        return notes

    def _recover_exit(self, pos: OpenPosition, need: Decimal, purpose: str,
                      place: Callable[[OpenPosition], object], notes: list[str]) -> None:
        """Re-place a trailing stop or take-profit that no longer covers ``need``; the old
        orders are cancelled only once the new one rests."""
        resting = self.resting(pos, purpose)
        if not any(qty >= need for _, qty in resting) and place(pos) is not None:
            for info, _ in resting:
                self.cancel(info)
            notes.append(f"{pos.symbol}: {purpose.replace('_', ' ').replace('take profit', 'take-profit')} "
                         f"re-placed over {need}")
            self.log_event("coverage", notes[-1], agent_id=pos.agent_id, symbol=pos.symbol)

    def cover_naked(self) -> list[str]:
        """The per-tick check: re-cover the positions known to be naked (cheap when none are)."""
        if not self.naked:
            return []
        return self.ensure_covered([p for p in self.ledger.open_positions() if p.id in self.naked])

    def _recover_stop(self, pos: OpenPosition, need: Decimal,
                      old: list[tuple[OrderInfo, Decimal]], since_ms: int | None) -> str:
        start = self.naked.get(pos.id)
        if start is None:
            start = since_ms if since_ms is not None else self._naked_start(pos)
            self.mark_naked(pos, start)
        covered = sum((q for _, q in old), Decimal(0))
        level = Decimal(repr(pos.stop_price)) if pos.stop_price else None
        placed = self.place_stop(pos, level)
        if placed is not None:
            for info, _ in old:  # the replacement rests: the undersized stops can go
                self.cancel(info)
            return self._clear_naked(pos, f"stop re-placed over the whole {need} "
                                f"(resting stops covered {covered})")
        if self.last_refused:
            note = (f"{pos.symbol}: stop over {need} refused by the venue; closing the position "
                    "rather than leaving it naked")
            self._alert_naked(self.log_event("coverage", note, agent_id=pos.agent_id,
                                             symbol=pos.symbol), note)
            if self.close_position(pos, "ceo"):
                self._clear_naked(pos, "closed", log=False)
            return note
        note = f"{pos.symbol}: still without a stop over {need}; retrying next tick"
        self._alert_naked(self.log_event("coverage", note, agent_id=pos.agent_id,
                                         symbol=pos.symbol), note)
        return note

    def _clear_naked(self, pos: OpenPosition, what: str, *, log: bool = True) -> str:
        start = self.naked.pop(pos.id, None)
        duration = max(0, self._now_ms() - start) if start is not None else 0
        self.db.execute(
            update(POSITIONS).where(POSITIONS.c.id == pos.id)
            .values(naked_since_ms=None, naked_ms=POSITIONS.c.naked_ms + duration)
        )
        note = f"{pos.symbol}: {what}; naked for {duration / 1000:.1f} s"
        if log:
            self._alert_naked(self.log_event("coverage", note, agent_id=pos.agent_id,
                                             symbol=pos.symbol,
                                             changes={"naked_ms": [None, duration]}), note)
        return note

    def _alert_naked(self, decision_id: int, note: str) -> None:
        """The outbox row of a naked position's repair (or failure to repair), with its CEO log
        row's id as the event id."""
        if self.alerts:
            alerts.position_naked(self.db.connection(), session_id=self.ledger.session.id,
                                  decision_id=decision_id, ts_ms=self._now_ms(), note=note)
