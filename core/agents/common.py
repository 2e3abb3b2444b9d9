"""What the five rule-based agents share, so each strategy module holds only its own rule.

Three things live here and nowhere else:

* **wording** — ``num`` and ``pct`` format the indicator values that every reasoning and every
  abstention note quotes, so notes read the same across agents;
* **sizing policy** — an agent's *desired* leverage and margin fraction from its confidence. Agents
  are aggressive on purpose: the CEO's hard rules, not the agents, cut leverage to what the
  5%-of-margin stop allows and margin to the 30% cap;
* **the decision loop** — ``RuleStrategy`` runs the exit rule on every held symbol, then the entry
  rule on every symbol the agent may still open (not held by it, not owned elsewhere, within the
  two-position limit), keeps the strongest entries and explains every abstention per symbol.

Everything in the hot path is a float lookup on ``Features``; nothing here touches pandas, because a
one-year replay calls ``decide`` about a hundred thousand times.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar, cast

from core.agents.base import AgentSpec, AgentView, HeldPosition, MarketView
from core.agents.params import StrategyParams
from core.errors import InvalidParams
from core.indicators import Features
from core.models import (
    TRAILING_CALLBACK_MAX,
    TRAILING_CALLBACK_MIN,
    Action,
    AgentDecision,
    PositionSide,
    Proposal,
)

MAX_OPEN_POSITIONS = 2  # DESIGN.md section 4: at most two open positions per agent
MIN_CONFIDENCE = 0.30
MAX_CONFIDENCE = 0.95
MARGIN_BASE = 0.10  # margin fraction = base + slope x confidence: 0.175 .. 0.34, above the CEO's
MARGIN_PER_CONFIDENCE = 0.25  # 30% cap when confident, so the CEO's modify path gets exercised
EXIT_CONFIDENCE = 0.8


# ------------------------------------------------------------------------------------------ wording


def num(x: float, digits: int | None = None) -> str:
    """A readable number: thousands separators, decimals that suit the magnitude."""
    if not math.isfinite(x):
        return "n/a"
    if digits is not None:
        return f"{x:,.{digits}f}"
    size = abs(x)
    if size >= 1000:
        return f"{x:,.1f}"
    if size >= 10:
        return f"{x:.2f}"
    if size >= 1:
        return f"{x:.3f}"
    return f"{x:.4g}"


def pct(fraction: float, digits: int = 2) -> str:
    """A signed percentage from a fraction: 0.0123 -> '+1.23%'."""
    return f"{fraction * 100:+.{digits}f}%" if math.isfinite(fraction) else "n/a"


def side_word(side: PositionSide) -> str:
    return "long" if side is PositionSide.LONG else "short"


def levels_text(stop: float, take_profit: float | None) -> str:
    """The bracket of an entry, for its reasoning."""
    tp = f", take-profit {num(take_profit)}" if take_profit is not None else ""
    return f"stop {num(stop)}{tp}"


# ------------------------------------------------------------------------------------ sizing policy


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def confidence(x: float) -> float:
    """Clamp a raw signal strength into the band agents report (never 0, never certain)."""
    return clip(x, MIN_CONFIDENCE, MAX_CONFIDENCE) if math.isfinite(x) else MIN_CONFIDENCE


def desired_leverage(spec: AgentSpec, conf: float) -> int:
    """The leverage an aggressive agent asks for: its cap scaled by confidence, at least 1x."""
    return int(clip(round(spec.max_leverage * conf), 1, spec.max_leverage))


def margin_fraction(conf: float) -> float:
    return round(MARGIN_BASE + MARGIN_PER_CONFIDENCE * conf, 4)


def bracket(
    side: PositionSide, price: float, stop_distance: float, tp_distance: float | None = None
) -> tuple[float, float | None]:
    """Stop and take-profit at absolute distances from ``price``, on the correct side of it."""
    stop = price - side.sign * stop_distance
    tp = price + side.sign * tp_distance if tp_distance is not None else None
    return stop, tp


def trailing_stop(side: PositionSide, price: float, atr: float, callback_atr: float | None,
                  activation_atr: float | None) -> tuple[float | None, float | None]:
    """A trailing stop ``callback_atr`` ATRs wide (as a fraction of price, kept inside the venue's
    0.1-5 % range), armed once the price is ``activation_atr`` ATRs in profit (None: armed at
    once); (None, None) without one."""
    if callback_atr is None or atr <= 0 or price <= 0:
        return None, None
    activation = None if activation_atr is None else price + side.sign * activation_atr * atr
    callback = clip(callback_atr * atr / price, TRAILING_CALLBACK_MIN, TRAILING_CALLBACK_MAX)
    return callback, activation


def trailing_text(callback: float | None, activation: float | None, callback_atr: float | None,
                  activation_atr: float | None) -> str:
    """The trailing stop in the words of a reasoning line (empty without one)."""
    if callback is None or callback_atr is None:
        return ""
    armed = ("armed at once" if activation is None or activation_atr is None
             else f"armed at {num(activation)} ({activation_atr:g}×ATR14 in profit)")
    return f" Trailing stop {callback:.2%} ({callback_atr:g}×ATR14), {armed}."


def on_correct_side(
    side: PositionSide, price: float, stop: float, take_profit: float | None
) -> bool:
    """Stop strictly beyond price against the position (and positive); TP, if any, in its favour."""
    if not (math.isfinite(stop) and stop > 0 and side.sign * (price - stop) > 0):
        return False
    return take_profit is None or (take_profit > 0 and side.sign * (take_profit - price) > 0)


# ------------------------------------------------------------------------------------- proposals


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry signal before sizing: what the rule saw and where it wants the bracket."""

    symbol: str
    side: PositionSide
    confidence: float
    price: float
    stop_price: float
    take_profit: float | None
    reasoning: str
    trail_callback: float | None = None  # a trailing stop beside the hard stop (fraction)
    trail_activation: float | None = None  # the price that arms it (None: at once)


def open_proposal(
    spec: AgentSpec,
    entry: Entry,
    *,
    margin: float | None = None,
    group: str | None = None,
) -> Proposal:
    action = Action.OPEN_LONG if entry.side is PositionSide.LONG else Action.OPEN_SHORT
    return Proposal(
        agent=spec.name,
        symbol=entry.symbol,
        action=action,
        leverage=desired_leverage(spec, entry.confidence),
        margin_fraction=margin if margin is not None else margin_fraction(entry.confidence),
        stop_price=entry.stop_price,
        take_profit=entry.take_profit,
        confidence=entry.confidence,
        reasoning=entry.reasoning,
        ref_price=entry.price,
        group=group,
        trail_callback=entry.trail_callback,
        trail_activation=entry.trail_activation,
    )


def close_proposal(
    spec: AgentSpec, view: AgentView, position: HeldPosition, reasoning: str
) -> Proposal:
    return Proposal(
        agent=spec.name,
        symbol=position.symbol,
        action=Action.CLOSE,
        confidence=EXIT_CONFIDENCE,
        reasoning=reasoning,
        ref_price=view.market.price(position.symbol),
        group=position.group,
    )


# ---------------------------------------------------------------------------------------- reading


def ready_features(
    market: MarketView, symbol: str, interval: str, names: tuple[str, ...]
) -> Features | str:
    """The latest closed bar's features, or a 'warming up' note naming what is missing."""
    f = market.features(symbol, interval)
    if f is None:
        return f"{symbol}: warming up (no closed {interval} bar yet)"
    if f.ready(*names):
        return f
    missing = ", ".join(n for n in names if not math.isfinite(f[n]))
    return f"{symbol}: warming up ({interval} {missing} not ready)"


def free_slots(view: AgentView) -> int:
    return MAX_OPEN_POSITIONS - len(view.positions)


def may_open(view: AgentView, symbol: str) -> bool:
    """Not already ours and not owned by another agent (one owner per symbol)."""
    return symbol not in view.positions and symbol not in view.owned_elsewhere


def decision(spec: AgentSpec, proposals: list[Proposal], notes: list[str]) -> AgentDecision:
    return AgentDecision(agent=spec.name, proposals=proposals, note="; ".join(notes))


# ---------------------------------------------------------------------------------- decision loop


P = TypeVar("P", bound=StrategyParams)


def checked_params(model: type[P], params: StrategyParams | None) -> P:
    """``params`` when it is the strategy's own model, its defaults when None; a strategy handed
    another strategy's parameters is refused rather than run on the wrong thresholds."""
    if params is None:
        return model()
    if not isinstance(params, model):
        raise InvalidParams(f"{model.__name__} expected, got {type(params).__name__}",
                            parameter=model.strategy_key, value=type(params).__name__,
                            bound=model.__name__)
    return params


class RuleStrategy(ABC, Generic[P]):
    """A single-symbol rule agent: exits for what it holds, then the best entries that fit.

    Subclasses name their parameter model (``params_model``) and read every threshold from
    ``self.params``; they implement ``entry`` (an ``Entry`` or a note with the numbers that said no) and
    ``exit`` (a CLOSE proposal or a note saying why the position stays).
    """

    max_new_per_decision: ClassVar[int] = MAX_OPEN_POSITIONS
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, spec: AgentSpec, params: StrategyParams | None = None) -> None:
        self.spec = spec
        self.params: P = cast(P, checked_params(type(self).params_model, params))

    @abstractmethod
    def entry(self, view: AgentView, symbol: str) -> Entry | str: ...

    @abstractmethod
    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str: ...

    def decide(self, view: AgentView) -> AgentDecision:
        proposals: list[Proposal] = []
        notes: list[str] = []
        for position in view.positions.values():
            outcome = self.exit(view, position)
            if isinstance(outcome, Proposal):
                proposals.append(outcome)
            else:
                notes.append(outcome)
        slots = min(free_slots(view), self.max_new_per_decision)
        if slots <= 0:
            notes.append(
                f"{len(view.positions)} of {MAX_OPEN_POSITIONS} positions open, no new entry"
            )
            return decision(self.spec, proposals, notes)
        entries = self._entries(view, notes)
        entries.sort(key=lambda e: e.confidence, reverse=True)
        proposals.extend(open_proposal(self.spec, e) for e in entries[:slots])
        notes.extend(
            f"{e.symbol}: {side_word(e.side)} signal (confidence {e.confidence:.2f}) skipped, "
            f"only {slots} new position(s) allowed"
            for e in entries[slots:]
        )
        return decision(self.spec, proposals, notes)

    def _entries(self, view: AgentView, notes: list[str]) -> list[Entry]:
        found: list[Entry] = []
        for symbol in view.market.symbols:
            if symbol in view.positions:
                continue
            if symbol in view.owned_elsewhere:
                notes.append(f"{symbol}: held by another agent")
                continue
            signal = self.entry(view, symbol)
            if isinstance(signal, str):
                notes.append(signal)
            elif on_correct_side(signal.side, signal.price, signal.stop_price, signal.take_profit):
                found.append(signal)
            else:
                notes.append(
                    f"{signal.symbol}: {side_word(signal.side)} signal dropped, "
                    f"{levels_text(signal.stop_price, signal.take_profit)} not beyond price "
                    f"{num(signal.price)}"
                )
        return found
