"""The exchange contract: what the engine needs from a venue, paper or live.

The paper simulator and the AsterDex client both implement ``Exchange``; the same contract tests run
against both. Every mutating call may raise ``OrderRejected`` (the venue said no, nothing happened),
``UnknownOrderStatus`` (ask with ``get_order`` before doing anything else) or ``ExchangeUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.models import (
    AccountBalance,
    ExchangeEvents,
    ExchangePosition,
    Fill,
    MarketStep,
    OrderRequest,
    OrderResult,
    SymbolFilters,
)

# Client order ids of the orders a venue-side loss guard sends (core/exchanges/paper_guard.py).
LOSS_GUARD_PREFIX = "lossguard-"


class Exchange(Protocol):
    name: str

    def filters(self, symbol: str) -> SymbolFilters:
        """The symbol's tick/step/min-notional/max-leverage rules."""
        ...

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set the symbol's leverage for new orders; returns what the venue applied."""
        ...

    def place_order(self, request: OrderRequest) -> OrderResult:
        """Send an order. A market order comes back FILLED with its fills; a stop comes back NEW.
        Re-sending a client order id the venue already knows is refused, never executed twice."""
        ...

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The venue's view of an order, or None if it never received it."""
        ...

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """Cancel a resting order; None if unknown, the final state if it already finished."""
        ...

    def cancel_all(self, symbol: str) -> int:
        """Cancel every resting order on a symbol; returns how many were cancelled."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...

    def positions(self) -> list[ExchangePosition]:
        """Non-zero positions, marked at the latest price."""
        ...

    def balance(self) -> AccountBalance: ...

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        """The account's fills on ``symbol`` at or after ``since_ms`` (user trades), oldest first;
        reconciliation books any it has not seen."""
        ...

    def arm_loss_guard(self, max_loss: Decimal | None) -> None:
        """For the next sync: close every position as soon as the account has lost ``max_loss``
        from its equity at the current prices (the drawdown halt, acted on where it is reached;
        ``ExchangeEvents.loss_guard`` reports it). None disarms. The paper venue walks each bar for
        it; a real venue has no account-level stop, so there it does nothing and the engine's
        per-tick drawdown check is the halt."""
        ...

    def sync(self, step: MarketStep) -> ExchangeEvents:
        """Catch up with the market: the paper simulator processes the step's bars (triggers,
        liquidations, funding); a live client collects what the venue did since the last sync."""
        ...


@runtime_checkable
class PushesEvents(Protocol):
    """A venue that learns of fills between syncs (AsterDex's user data stream): ``wake`` is
    called when something waits to be booked, so the engine syncs at once instead of at its next
    interval. The paper venue has nothing to push and does not implement it."""

    def wake_on_events(self, wake: Callable[[], None] | None) -> None: ...
