"""The paper venue's books: position and order records and the pure rules over them.

Kept apart from core/exchanges/paper.py (the venue's behaviour and persistence) so the money maths
of one-way netting, isolated margin and liquidation prices reads on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.engine import RowMapping

from core.errors import OrderRejected, ReduceOnlyRejected
from core.exchanges.paper_store import quantize as _q
from core.models import Bar, Fill, OrderResult, OrderSide, OrderStatus, OrderType, SymbolFilters

ZERO = Decimal(0)
LIQUIDATION_PREFIX = "autoclose-"
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


@dataclass(frozen=True, slots=True)
class BookPosition:
    amount: Decimal  # signed
    entry_price: Decimal
    leverage: int
    isolated_margin: Decimal
    liq: Decimal
    liq_f: float  # float copy for the per-bar checks

    @property
    def sign(self) -> int:
        return 1 if self.amount > 0 else -1


def make_position(
    amount: Decimal, entry: Decimal, leverage: int, margin: Decimal, mmr: Decimal
) -> BookPosition:
    """A position with its liquidation price: where the margin left equals mmr × entry notional.
    With margin = notional / lev this is entry × (1 ∓ 1/lev ± mmr)."""
    sign = 1 if amount > 0 else -1
    liq = _q(max(entry - sign * (margin / abs(amount) - mmr * entry), ZERO))
    return BookPosition(amount, entry, leverage, margin, liq, float(liq))


def next_position(
    pos: BookPosition | None, delta: Decimal, price: Decimal, leverage: int, mmr: Decimal
) -> tuple[BookPosition | None, Decimal]:
    """The position after a fill of signed ``delta`` at ``price``, and the PnL it realizes.
    A reduction releases margin pro rata; an increase (or the rest of a flip) averages the entry
    and adds notional / leverage of margin."""
    amount, entry, margin = (
        (pos.amount, pos.entry_price, pos.isolated_margin) if pos else (ZERO, ZERO, ZERO)
    )
    lev = pos.leverage if pos else leverage
    realized = ZERO
    if amount * delta < 0:
        closed = min(abs(delta), abs(amount))
        sign = 1 if amount > 0 else -1
        realized = _q(closed * (price - entry) * sign)
        margin = _q(margin * (abs(amount) - closed) / abs(amount))
        amount -= sign * closed
        delta += sign * closed
    if delta != 0:
        entry = _q((abs(amount) * entry + abs(delta) * price) / (abs(amount) + abs(delta)))
        margin = _q(margin + abs(delta) * price / leverage)
        amount += delta
        lev = leverage
    if amount == 0:
        return None, realized
    return make_position(amount, entry, lev, margin, mmr), realized


def increases(before: BookPosition | None, after: BookPosition | None) -> bool:
    if after is None:
        return False
    return before is None or before.sign != after.sign or abs(after.amount) > abs(before.amount)


@dataclass(frozen=True, slots=True)
class BookOrder:
    seq: int
    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    stop_price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    executed_qty: Decimal
    avg_price: Decimal
    created_ms: int
    updated_ms: int
    level: float = field(default=0.0, compare=False)  # float stop price for the per-bar checks
    # TRAILING_STOP_MARKET: callback in percent, activation price, and the best price since it
    # armed (None: not armed yet); ``stop_price`` is then its current trigger
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    trail_extreme: Decimal | None = None

    def result(self, fills: tuple[Fill, ...] = ()) -> OrderResult:
        return OrderResult(
            client_order_id=self.client_order_id,
            exchange_order_id=self.exchange_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            status=self.status,
            quantity=self.quantity,
            executed_qty=self.executed_qty,
            avg_price=self.avg_price,
            stop_price=self.stop_price,
            reduce_only=self.reduce_only,
            fills=fills,
            callback_rate=self.callback_rate,
            activation_price=self.activation_price,
        )

    def touches(self, bar: Bar) -> bool:
        """Whether the bar's range reaches this resting order's trigger."""
        stop_like = self.type is OrderType.STOP_MARKET
        if (self.side is OrderSide.SELL) == stop_like:
            return bar.low <= self.level
        return bar.high >= self.level


def would_trigger(kind: OrderType, side: OrderSide, stop: Decimal, last: Decimal) -> bool:
    if (side is OrderSide.SELL) == (kind is OrderType.STOP_MARKET):
        return last <= stop
    return last >= stop


def check_client_id(client_order_id: str) -> None:
    if len(client_order_id) > 36:
        raise OrderRejected("Client order id length should not be more than 36 chars.", code=-4015)
    if not _CLIENT_ID.match(client_order_id) or client_order_id.startswith(LIQUIDATION_PREFIX):
        raise OrderRejected(f"Illegal client order id {client_order_id!r}.", code=-1102)


def check_quantity(rules: SymbolFilters, qty: Decimal) -> None:
    if qty <= 0:
        raise OrderRejected("Quantity less than or equal to zero.", code=-4003)
    if qty < rules.min_qty:
        raise OrderRejected(f"Quantity less than min quantity {rules.min_qty}.", code=-4004)
    if qty > rules.max_qty:
        raise OrderRejected(f"Quantity greater than max quantity {rules.max_qty}.", code=-4005)
    if rules.round_qty(qty) != qty:
        raise OrderRejected(f"Quantity not increased by step size {rules.step_size}.", code=-4023)


def reduce_only_qty(pos: BookPosition | None, side: OrderSide, qty: Decimal) -> Decimal:
    """A reduce-only order must face an open position; its size is capped to the position."""
    if pos is None or (side is OrderSide.BUY) == (pos.sign > 0):
        raise ReduceOnlyRejected("ReduceOnly Order is rejected.")
    return min(qty, abs(pos.amount))


def order_from_row(row: RowMapping) -> BookOrder:
    values = {k: v for k, v in row.items() if k != "account_id"}
    values["side"] = OrderSide(values["side"])
    values["type"] = OrderType(values["type"])
    values["status"] = OrderStatus(values["status"])
    stop = values["stop_price"]
    return BookOrder(**values, level=float(stop) if stop is not None else 0.0)

