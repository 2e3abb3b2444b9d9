"""The CEO's hard rules for a trailing stop a proposal asks for, with no I/O.

A trailing stop rests *beside* the hard stop (core/ceo/rules.py keeps that one untouched), so it can
only close a position earlier than the hard stop would. It still obeys the desk's rules: its
callback is bounded to what the venue accepts (``TRAILING_STOP_MARKET`` takes a ``callbackRate``
of 0.1-5 %), its activation price must lie on the profit side of the price (the venue refuses one
already passed with -2021), and the 5%-of-margin stop rule applies to its *initial distance*: the
loss from the price to where it would first trigger, ``activation × (1 − callback)`` for a long
(``price × (1 − callback)`` when it is armed at once). A wider initial distance lowers leverage,
exactly as a wide hard stop does; nothing is ever widened.

Rule ids: trailing_callback (bounded to the venue's range), trailing_activation (dropped: on the
wrong side of the price, or not a number) and trailing_width (leverage lowered to fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from core.models import TRAILING_CALLBACK_MAX as MAX_CALLBACK
from core.models import TRAILING_CALLBACK_MIN as MIN_CALLBACK
from core.models import SymbolFilters


@dataclass(slots=True)
class TrailingFit:
    """The trailing stop as the rules leave it, and the rule notes that changed it."""

    callback: float | None
    activation: float | None
    notes: list[tuple[str, str, dict[str, tuple[Any, Any]]]] = field(default_factory=list)


def judge_trailing(callback: float | None, activation: float | None, price: float, *,
                   long: bool, filters: SymbolFilters) -> TrailingFit:
    """Bound the callback to the venue's range and check the activation's side and tick."""
    fit = TrailingFit(None, None)
    if callback is None:
        if activation is not None:
            fit.notes.append(("trailing_activation", f"activation {activation:.10g} dropped: no "
                              "trailing callback was asked for", {"trail_activation":
                                                                  (activation, None)}))
        return fit
    bounded = min(max(callback, MIN_CALLBACK), MAX_CALLBACK)
    if bounded != callback:
        fit.notes.append(("trailing_callback", f"trailing callback {callback:.3%} → {bounded:.1%}: "
                          f"the venue takes {MIN_CALLBACK:.1%}–{MAX_CALLBACK:.0%}",
                          {"trail_callback": (callback, bounded)}))
    fit.callback = bounded
    if activation is None:
        return fit
    rounded = _toward_price(activation, filters, long=long)
    if rounded is not None and (rounded > price if long else rounded < price):
        fit.activation = rounded
        return fit
    where = "above" if long else "below"
    fit.notes.append(("trailing_activation", f"trailing activation {activation:.10g} dropped: "
                      f"not {where} price {price:.10g}, so the trail is armed at once",
                      {"trail_activation": (activation, None)}))
    return fit


def initial_distance(price: float, callback: float, activation: float | None, *,
                     long: bool) -> float:
    """The loss, as a fraction of ``price``, from the price to the trail's first trigger."""
    if activation is None:  # exactly the callback (price × (1 − c) would carry float error)
        return callback
    start = activation
    trigger = start * (1 - callback) if long else start * (1 + callback)
    return max(0.0, (price - trigger) / price if long else (trigger - price) / price)


def fit_leverage(leverage: int, distance: float, pct: float) -> int:
    """The highest leverage at or below ``leverage`` whose loss at ``distance`` is at most ``pct``
    of margin; 0 when even 1x is too much."""
    if distance * leverage <= pct:
        return leverage
    allowed = math.floor(pct / distance)
    while allowed >= 1 and distance * allowed > pct:  # float rounding at the boundary
        allowed -= 1
    return max(allowed, 0)


def _toward_price(level: float, filters: SymbolFilters, *, long: bool) -> float | None:
    """The activation on the tick grid, rounded toward the price (it arms no later than asked)."""
    if not math.isfinite(level):
        return None
    try:
        return float(filters.round_price(Decimal(repr(level)), up=not long))
    except InvalidOperation:
        return None
