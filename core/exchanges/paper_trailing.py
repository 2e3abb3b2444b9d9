"""The paper venue's trailing stops: a ``TRAILING_STOP_MARKET`` order walked through one bar.

The venue's rule (AsterDex futures docs, New Order): a SELL trailing stop arms once the highest
price since it was placed reaches ``activationPrice`` (without one, it is armed at the last price
when placed) and fires when the price falls to that highest price × (1 − callbackRate); a BUY
mirrors it on the lowest price. This module walks one bar the way the venue's stops are walked
(core/exchanges/paper_bars.py): pessimistically, open → adverse extreme → favourable extreme →
close. So:

1. the open first moves the best price (and may arm the order); an open already through the trigger
   set by earlier bars fills at the open (a gap);
2. the adverse extreme is tested against that trigger, *before* the bar's favourable extreme can
   raise it, and fills at the trigger;
3. the favourable extreme then arms the order (activation first) or raises the best price;
4. the retreat to the close is tested against the raised trigger, and fills at that trigger.

An order that does not fire leaves the bar with its new best price and trigger; the venue stores
them (``trail_extreme`` and ``stop_price``) so a restart trails on from where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from core.exchanges.paper_book import BookOrder
from core.exchanges.paper_store import quantize as _q
from core.models import Bar, OrderSide

HUNDRED = Decimal(100)


def direction(order: BookOrder) -> int:
    """+1 for a SELL trail (it protects a long: best price is the highest), −1 for a BUY."""
    return 1 if order.side is OrderSide.SELL else -1


def trigger(extreme: Decimal, rate: Decimal, d: int) -> Decimal:
    """Where a trail whose best price is ``extreme`` fires: extreme × (1 ∓ rate %)."""
    return _q(extreme * (1 - d * rate / HUNDRED))


def trailing_at(order: BookOrder, extreme: Decimal | None) -> BookOrder:
    """The order with a new best price (None: not armed yet) and the trigger it implies."""
    if extreme is None:
        return replace(order, trail_extreme=None, stop_price=None, level=0.0)
    assert order.callback_rate is not None
    stop = trigger(extreme, order.callback_rate, direction(order))
    return replace(order, trail_extreme=extreme, stop_price=stop, level=float(stop))


@dataclass(slots=True)
class TrailWalk:
    """What one bar does to one trailing order: where it fires (at most one of the three) and,
    otherwise, its state after the bar."""

    at_open: BookOrder | None = None  # the open gapped through the trigger: fills at the open
    adverse: BookOrder | None = None  # the adverse extreme reached the trigger: fills there
    after_peak: BookOrder | None = None  # the retreat to the close reached the raised trigger
    state: BookOrder | None = None  # not fired: the order as it leaves the bar


def _better(d: int, price: Decimal, extreme: Decimal | None, activation: Decimal | None) -> bool:
    """Whether ``price`` arms the order (not armed yet) or improves its best price."""
    if extreme is None:
        return activation is not None and d * price >= d * activation
    return d * price > d * extreme


def walk(order: BookOrder, bar: Bar) -> TrailWalk:
    """Walk one bar (see the module docstring) for one resting trailing order."""
    d = direction(order)
    o, hi, lo, c = (Decimal(repr(x)) for x in (bar.open, bar.high, bar.low, bar.close))
    adverse, favourable = (lo, hi) if d > 0 else (hi, lo)
    current = order
    if _better(d, o, current.trail_extreme, current.activation_price):
        current = trailing_at(current, o)
    stop = current.stop_price
    if stop is not None and current.trail_extreme is not None:
        if d * o <= d * stop:
            return TrailWalk(at_open=current)
        if d * adverse <= d * stop:
            return TrailWalk(adverse=current)
    if _better(d, favourable, current.trail_extreme, current.activation_price):
        current = trailing_at(current, favourable)
        stop = current.stop_price
        assert stop is not None
        if d * c <= d * stop:
            return TrailWalk(after_peak=current)
    return TrailWalk(state=current)


def may_change(order: BookOrder, bar: Bar) -> bool:
    """Cheap float test: can this bar arm, raise or fire the trailing order?"""
    d = direction(order)
    favourable, adverse = (bar.high, bar.low) if d > 0 else (bar.low, bar.high)
    if order.trail_extreme is None:
        return order.activation_price is not None and d * favourable >= d * float(
            order.activation_price)
    return d * favourable > d * float(order.trail_extreme) or d * adverse <= d * order.level
