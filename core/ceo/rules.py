"""The CEO's hard rules: judge one proposal (or one two-leg trade) and size it, with no I/O.

This is where "the LLM proposes, code disposes" (DESIGN.md 1.2 and 4) is enforced. ``evaluate`` turns
an agent's ``Proposal`` plus a ``RiskContext`` (ledger, venue and session numbers gathered by the
caller) into a ``RiskVerdict``: approve, modify (clamped down) or reject, with every rule id that
fired, the before/after values, a one-line reason and, for opens, a sized ``OrderPlan``.

Promises, whatever the proposal says: an approved plan's leverage is within the risk level's cap,
the agent's cap and the symbol's maximum; a loss at the stop is at most ``stop_loss_margin_pct`` of
margin (leverage is lowered, the stop is never widened, and it is rounded to the tick *toward* the
price); margin is within the per-trade fraction, the agent's free margin and the account's available
balance; gross exposure stays under its cap; a stop-out, with the estimated fees and slippage of
both fills, would not by itself take the session past its drawdown halt (the headroom left above
the halt, less what the tick's earlier approvals reserved); the quantity is a whole number of steps
at or above the venue minimums (rounded down, so rounding never breaks a cap). No new risk opens
in a session that is not running or for an agent that is not active, nobody opens a symbol another
agent holds, nobody adds to a position and nobody holds more than ``max_open_positions``. Rules
only ever tighten.

Rules run in a fixed order and a rejection stops the evaluation (later rules would size a trade that
will not happen). Rule ids: session_status, agent_status, no_position, not_a_trade,
invalid_proposal, take_profit_side, trailing_callback, trailing_activation, symbol_owner,
already_open, max_positions, leverage_cap, stop_width, trailing_width, margin_cap, agent_free_margin, account_margin, gross_exposure, halt_headroom, lot_size,
min_notional and, for groups, pair_leg_rejected. A trailing stop's rules live in
core/ceo/trailing.py.

It is called thousands of times per backtest, so it builds plain dataclasses only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from core.ceo.trailing import fit_leverage, initial_distance, judge_trailing
from core.models import (
    RISK_LEVERAGE_CAP,
    Action,
    OrderPlan,
    PositionSide,
    Proposal,
    RiskLevel,
    RiskVerdict,
    SymbolFilters,
    Verdict,
)

if TYPE_CHECKING:
    from core.config import Settings

RUNNING = "running"
ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The configurable hard limits (DESIGN.md section 4 defaults)."""

    max_margin_fraction: float = 0.30
    max_open_positions: int = 2
    stop_loss_margin_pct: float = 0.05
    gross_exposure_cap: float = 3.0
    fill_cost_rate: float = 0.0006  # one fill's fee and slippage per USDT of notional (estimate)

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        return cls(
            max_margin_fraction=settings.max_margin_fraction,
            max_open_positions=settings.max_open_positions_per_agent,
            stop_loss_margin_pct=settings.stop_loss_margin_pct,
            gross_exposure_cap=settings.gross_exposure_cap,
            fill_cost_rate=settings.paper_taker_fee + settings.paper_slippage_bps / 10_000,
        )


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the rules need to know about the agent, the symbol, the account and the session now."""

    session_status: str  # 'running' allows new risk; anything else does not
    agent_status: str  # 'active' allows new risk; 'paused'/'stopped' do not
    agent_equity: float  # capital + realized − fees ± funding + unrealized
    agent_free_margin: float  # agent equity minus margin locked in its open positions
    agent_open_symbols: frozenset[str]
    risk_level: RiskLevel
    agent_max_leverage: int
    symbol_owner: str | None  # agent holding this symbol now (None if nobody)
    filters: SymbolFilters
    price: float  # current price used for sizing
    account_available: float  # exchange available balance
    session_equity: float
    gross_notional: float  # sum of |notional| of all open positions in the session
    # session equity minus the equity at which the drawdown halt fires (inf: no halt)
    halt_headroom: float = math.inf


class _Veto(Exception):
    """Raised by a rule that rejects; ``evaluate`` turns it into a reject verdict."""

    def __init__(self, rule: str, note: str) -> None:
        super().__init__(note)
        self.rule = rule
        self.note = note


@dataclass(slots=True)
class _Trail:
    """The rules that fired so far, their notes and the first-before / last-after values."""

    rules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def record(self, rule: str, note: str, **changes: tuple[Any, Any]) -> None:
        self.rules.append(rule)
        self.notes.append(f"{note} [{rule}]")
        for name, (before, after) in changes.items():
            self.changes[name] = (self.changes.get(name, (before, after))[0], after)

    def settle(self, name: str, after: Any) -> None:
        """Update a recorded value's final figure (e.g. margin after quantity rounding)."""
        if name in self.changes:
            self.changes[name] = (self.changes[name][0], after)


# --------------------------------------------------------------------------------------------------
# Public API


def evaluate(proposal: Proposal, ctx: RiskContext, limits: RiskLimits) -> RiskVerdict:
    """Judge one proposal under the hard rules; see the module docstring for what is promised."""
    if ctx.filters.symbol != proposal.symbol:
        raise ValueError(f"context filters are for {ctx.filters.symbol}, not {proposal.symbol}")
    trail = _Trail()
    try:
        if proposal.action is Action.CLOSE:
            return _judge_close(proposal, ctx)
        if proposal.action is Action.HOLD:
            raise _Veto("not_a_trade", "a hold is not a trade")
        plan = _size_open(proposal, ctx, limits, trail)
    except _Veto as veto:
        return RiskVerdict(
            Verdict.REJECT,
            [*trail.rules, veto.rule],
            trail.changes,
            f"rejected: {veto.note} [{veto.rule}]",
        )
    if trail.rules:
        return RiskVerdict(Verdict.MODIFY, trail.rules, trail.changes, "; ".join(trail.notes), plan)
    return RiskVerdict(Verdict.APPROVE, [], {}, _approval_note(plan, ctx), plan)


def evaluate_group(
    proposals: Sequence[Proposal], contexts: Sequence[RiskContext], limits: RiskLimits
) -> list[RiskVerdict]:
    """Judge the legs of one agent's multi-leg trade: both legs open or neither does.

    ``contexts[i]`` describes leg ``i``'s symbol *before the group trades* (all built from the same
    ledger state). Each leg is then judged with the earlier approved legs already counted
    (``with_open``): open symbols, free margin, available balance and gross notional. A caller that
    already counted them only makes the check stricter, never looser. If any leg is rejected, every
    other opening leg is rejected too with ``pair_leg_rejected``; a close leg is never held back
    (it only reduces risk).
    """
    if len(proposals) != len(contexts):
        raise ValueError("evaluate_group needs one context per proposal")
    if len({p.agent for p in proposals}) > 1:
        raise ValueError("a group is one agent's trade; got legs from several agents")
    verdicts: list[RiskVerdict] = []
    opened: list[OrderPlan] = []
    for proposal, ctx in zip(proposals, contexts, strict=True):
        for plan in opened:
            ctx = with_open(ctx, plan)
        verdict = evaluate(proposal, ctx, limits)
        verdicts.append(verdict)
        if verdict.plan is not None:
            opened.append(verdict.plan)
    blocker = next((i for i, v in enumerate(verdicts) if v.verdict is Verdict.REJECT), None)
    if blocker is None:
        return verdicts
    return [
        _pair_rejected(v, proposals[blocker].symbol, verdicts[blocker])
        if v.verdict is not Verdict.REJECT and proposals[i].opens
        else v
        for i, v in enumerate(verdicts)
    ]


def with_open(ctx: RiskContext, plan: OrderPlan) -> RiskContext:
    """The context as it will be once ``plan`` (same agent) is open."""
    return replace(
        ctx,
        agent_open_symbols=ctx.agent_open_symbols | {plan.symbol},
        agent_free_margin=ctx.agent_free_margin - plan.margin,
        account_available=ctx.account_available - plan.margin,
        gross_notional=ctx.gross_notional + plan.notional,
        halt_headroom=ctx.halt_headroom - plan.loss_at_stop,
        symbol_owner=plan.agent if plan.symbol == ctx.filters.symbol else ctx.symbol_owner,
    )


# --------------------------------------------------------------------------------------------------
# Closes and groups


def _judge_close(proposal: Proposal, ctx: RiskContext) -> RiskVerdict:
    if proposal.symbol in ctx.agent_open_symbols or ctx.symbol_owner == proposal.agent:
        return RiskVerdict(Verdict.APPROVE, [], {}, "close approved: risk-reducing")
    raise _Veto("no_position", f"{proposal.agent} holds no {proposal.symbol} position to close")


def _pair_rejected(verdict: RiskVerdict, other_symbol: str, other: RiskVerdict) -> RiskVerdict:
    why = other.rules[-1] if other.rules else "reject"
    return RiskVerdict(
        Verdict.REJECT,
        [*verdict.rules, "pair_leg_rejected"],
        verdict.changes,
        f"rejected: the {other_symbol} leg was rejected ({why}), so neither leg opens "
        "[pair_leg_rejected]",
    )


# --------------------------------------------------------------------------------------------------
# Opens: the rules in order


def _size_open(
    proposal: Proposal, ctx: RiskContext, limits: RiskLimits, trail: _Trail
) -> OrderPlan:
    side = PositionSide.LONG if proposal.action is Action.OPEN_LONG else PositionSide.SHORT
    _check_status(ctx)
    stop, take_profit = _check_prices(proposal, ctx, side, trail)
    trailing = judge_trailing(proposal.trail_callback, proposal.trail_activation, ctx.price,
                              long=side is PositionSide.LONG, filters=ctx.filters)
    for rule, note, changes in trailing.notes:
        trail.record(rule, note, **changes)
    _check_ownership(proposal, ctx, limits)
    distance = abs(ctx.price - stop) / ctx.price
    leverage = _cap_leverage(proposal.leverage, ctx, trail)
    leverage = _fit_stop(leverage, distance, limits.stop_loss_margin_pct, trail)
    if trailing.callback is not None:
        leverage = _fit_trailing(leverage, initial_distance(
            ctx.price, trailing.callback, trailing.activation, long=side is PositionSide.LONG),
            limits.stop_loss_margin_pct, trail)
    margin = _size_margin(proposal.margin_fraction, leverage, ctx, limits, trail)
    loss_rate = _stop_out_rate(distance, limits)
    margin = _fit_headroom(margin, leverage, loss_rate, ctx, trail)
    quantity = _quantity(margin, leverage, ctx, trail)
    margin = float(quantity) * ctx.price / leverage
    trail.settle("margin", margin)
    return OrderPlan(
        agent=proposal.agent,
        symbol=proposal.symbol,
        side=side,
        leverage=leverage,
        quantity=quantity,
        margin=margin,
        ref_price=ctx.price,
        stop_distance=distance,
        stop_price=stop,
        take_profit=take_profit,
        loss_at_stop=float(quantity) * ctx.price * loss_rate,
        trail_callback=trailing.callback,
        trail_activation=trailing.activation,
    )


def _check_status(ctx: RiskContext) -> None:
    if ctx.session_status != RUNNING:
        raise _Veto(
            "session_status", f"session is {ctx.session_status!r}; new positions need 'running'"
        )
    if ctx.agent_status != ACTIVE:
        raise _Veto("agent_status", f"agent is {ctx.agent_status!r}; new positions need 'active'")


def _check_prices(
    proposal: Proposal, ctx: RiskContext, side: PositionSide, trail: _Trail
) -> tuple[float, float | None]:
    """Validate the numbers and the stop (rule invalid_proposal); round stop and take-profit."""
    _check_finite(proposal, ctx)
    price = ctx.price
    if price <= 0:
        raise _Veto("invalid_proposal", f"price {price} is not positive")
    if proposal.margin_fraction <= 0:
        raise _Veto(
            "invalid_proposal", f"margin fraction {proposal.margin_fraction} is not positive"
        )
    if proposal.stop_price is None:
        raise _Veto("invalid_proposal", "no stop-loss: every position needs one")
    long = side is PositionSide.LONG
    # Toward the price: a tighter stop, never a wider one.
    stop = _to_tick(proposal.stop_price, ctx.filters, up=long)
    if not _beyond(stop, price, above=not long):
        where = "below" if long else "above"
        raise _Veto(
            "invalid_proposal",
            f"{side.value.lower()} stop {proposal.stop_price:.10g} (tick-rounded {stop:.10g}) is not "
            f"{where} price {price:.10g}",
        )
    return stop, _take_profit(proposal.take_profit, price, long, ctx.filters, trail)


def _check_finite(proposal: Proposal, ctx: RiskContext) -> None:
    numbers = {
        "margin_fraction": proposal.margin_fraction,
        "stop_price": proposal.stop_price,
        "take_profit": proposal.take_profit,
        "trail_activation": proposal.trail_activation,
        "price": ctx.price,
        "agent_equity": ctx.agent_equity,
        "agent_free_margin": ctx.agent_free_margin,
        "account_available": ctx.account_available,
        "session_equity": ctx.session_equity,
        "gross_notional": ctx.gross_notional,
    }
    for name, value in numbers.items():
        if value is not None and not math.isfinite(value):
            raise _Veto("invalid_proposal", f"{name} is {value}")


def _take_profit(
    take_profit: float | None, price: float, long: bool, filters: SymbolFilters, trail: _Trail
) -> float | None:
    """Round away from the price (so it can never land on or past it); drop it if on the loss side.

    A take-profit is optional, so a wrong one is dropped rather than rejecting the trade.
    """
    if take_profit is None:
        return None
    rounded = _to_tick(take_profit, filters, up=long)
    if rounded > 0 and _beyond(rounded, price, above=long):
        return rounded
    where = "above" if long else "below"
    trail.record(
        "take_profit_side",
        f"take-profit {take_profit:.10g} dropped: not {where} price {price:.10g}",
        take_profit=(take_profit, None),
    )
    return None


def _check_ownership(proposal: Proposal, ctx: RiskContext, limits: RiskLimits) -> None:
    owner = ctx.symbol_owner
    if owner is not None and owner != proposal.agent:
        raise _Veto("symbol_owner", f"{proposal.symbol} is held by {owner}; one owner per symbol")
    if owner == proposal.agent or proposal.symbol in ctx.agent_open_symbols:
        raise _Veto("already_open", f"{proposal.agent} already holds {proposal.symbol}; no adding")
    held = len(ctx.agent_open_symbols)
    if held >= limits.max_open_positions:
        symbols = ", ".join(sorted(ctx.agent_open_symbols))
        raise _Veto(
            "max_positions",
            f"{proposal.agent} holds {held} positions ({symbols}); at most "
            f"{limits.max_open_positions} per agent",
        )


def _cap_leverage(leverage: int, ctx: RiskContext, trail: _Trail) -> int:
    level_cap = RISK_LEVERAGE_CAP[ctx.risk_level]
    cap = min(level_cap, ctx.agent_max_leverage, ctx.filters.max_leverage)
    why = (
        f"{ctx.risk_level.value} risk {level_cap}x, agent {ctx.agent_max_leverage}x, "
        f"{ctx.filters.symbol} max {ctx.filters.max_leverage}x"
    )
    if cap < 1:
        raise _Veto("leverage_cap", f"no leverage allowed ({why})")
    if leverage <= cap:
        return leverage
    trail.record(
        "leverage_cap",
        f"leverage {leverage}x → {cap}x: cap is {cap}x ({why})",
        leverage=(leverage, cap),
    )
    return cap


def _fit_stop(leverage: int, distance: float, pct: float, trail: _Trail) -> int:
    """Lower leverage until a loss at the stop is at most ``pct`` of margin (DESIGN.md 4)."""
    if distance * leverage <= pct:
        return leverage
    allowed = math.floor(pct / distance)
    while allowed >= 1 and distance * allowed > pct:  # guard float rounding at the boundary
        allowed -= 1
    if allowed < 1:
        raise _Veto(
            "stop_width",
            f"stop {distance:.2%} away is too wide even at 1x for a {pct:.0%} margin loss",
        )
    trail.record(
        "stop_width",
        f"leverage {leverage}x → {allowed}x: stop {distance:.2%} away allows at most {allowed}x "
        f"for a {pct:.0%} margin loss",
        leverage=(leverage, allowed),
    )
    return allowed


def _fit_trailing(leverage: int, distance: float, pct: float, trail: _Trail) -> int:
    """The stop rule on the trailing stop's initial distance: leverage lowered, never widened."""
    allowed = fit_leverage(leverage, distance, pct)
    if allowed == leverage:
        return leverage
    if allowed < 1:
        raise _Veto("trailing_width", f"trailing stop first triggers {distance:.2%} away: too wide "
                    f"even at 1x for a {pct:.0%} margin loss")
    trail.record(
        "trailing_width",
        f"leverage {leverage}x → {allowed}x: the trailing stop first triggers {distance:.2%} away, "
        f"which allows at most {allowed}x for a {pct:.0%} margin loss",
        leverage=(leverage, allowed),
    )
    return allowed


def _size_margin(
    fraction: float, leverage: int, ctx: RiskContext, limits: RiskLimits, trail: _Trail
) -> float:
    cap = limits.max_margin_fraction
    if fraction > cap:
        trail.record(
            "margin_cap",
            f"margin {fraction:.1%} → {cap:.1%} of agent equity: per-trade cap is {cap:.0%}",
            margin_fraction=(fraction, cap),
            margin=(fraction * ctx.agent_equity, cap * ctx.agent_equity),
        )
        fraction = cap
    margin = fraction * ctx.agent_equity
    if margin <= 0:
        raise _Veto("agent_free_margin", f"agent equity {ctx.agent_equity:,.2f} leaves no margin")
    margin = _fit_margin(
        margin, ctx.agent_free_margin, "agent_free_margin", "agent free margin", trail
    )
    margin = _fit_margin(
        margin, ctx.account_available, "account_margin", "account available", trail
    )
    room = limits.gross_exposure_cap * ctx.session_equity - ctx.gross_notional
    return _fit_exposure(margin, leverage, room, ctx, limits, trail)


def _fit_margin(margin: float, limit: float, rule: str, label: str, trail: _Trail) -> float:
    if margin <= limit:
        return margin
    if limit <= 0:
        raise _Veto(rule, f"{label} is {limit:,.2f} USDT; nothing left for margin")
    trail.record(
        rule,
        f"margin {margin:,.2f} → {limit:,.2f} USDT: {label} is {limit:,.2f}",
        margin=(margin, limit),
    )
    return limit


def _fit_exposure(
    margin: float,
    leverage: int,
    room: float,
    ctx: RiskContext,
    limits: RiskLimits,
    trail: _Trail,
) -> float:
    if margin * leverage <= room:
        return margin
    cap = limits.gross_exposure_cap
    gross = (
        f"gross exposure {ctx.gross_notional:,.2f} of a {cap:.10g}x cap "
        f"on {ctx.session_equity:,.2f}"
    )
    if room <= 0:
        raise _Veto("gross_exposure", f"no room: {gross}")
    fitted = room / leverage
    trail.record(
        "gross_exposure",
        f"margin {margin:,.2f} → {fitted:,.2f} USDT: notional {margin * leverage:,.2f} exceeds "
        f"the {room:,.2f} left ({gross})",
        margin=(margin, fitted),
    )
    return fitted


def _stop_out_rate(distance: float, limits: RiskLimits) -> float:
    """A stop-out's loss per USDT of notional: the move to the stop, the entry fill's costs and
    the exit fill's (on a notional up to ``1 + distance`` times the entry's)."""
    return distance + limits.fill_cost_rate * (2 + distance)


def _fit_headroom(margin: float, leverage: int, loss_rate: float, ctx: RiskContext,
                  trail: _Trail) -> float:
    """Shrink the trade until its stop-out cannot by itself breach the drawdown halt; with no
    headroom left, nothing opens (the entry fee alone would cross it)."""
    room = ctx.halt_headroom
    loss = margin * leverage * loss_rate
    if loss <= room:
        return margin
    if room <= 0:
        raise _Veto("halt_headroom", f"nothing is left above the session's drawdown halt "
                    f"({room:,.2f} USDT with this tick's earlier trades); no new risk")
    fitted = room / (leverage * loss_rate)
    trail.record(
        "halt_headroom",
        f"margin {margin:,.2f} → {fitted:,.2f} USDT: a stop-out would cost {loss:,.2f} with fees, "
        f"more than the {room:,.2f} left above the session's drawdown halt",
        margin=(margin, fitted),
    )
    return fitted


def _quantity(margin: float, leverage: int, ctx: RiskContext, trail: _Trail) -> Decimal:
    """Round down to the step (so no cap above is broken), clamp to the maximum, check minimums."""
    filters = ctx.filters
    # repr(): 0.15 BTC must stay 0.15, not drop a step to 0.149 because its binary value is 0.1499…
    # (so the caps hold to float precision, the tolerance of every float check here anyway).
    quantity = filters.round_qty(Decimal(repr(margin * leverage / ctx.price)))
    if quantity > filters.max_qty:
        capped = filters.round_qty(filters.max_qty)
        trail.record(
            "lot_size",
            f"quantity {quantity} → {capped}: venue maximum",
            quantity=(quantity, capped),
        )
        quantity = capped
    if quantity <= 0 or quantity < filters.min_qty:
        raise _Veto(
            "lot_size",
            f"quantity {quantity} (margin {margin:,.2f} × {leverage}x at {ctx.price:.10g}) is below "
            f"the minimum {filters.min_qty}",
        )
    notional = float(quantity) * ctx.price
    if notional < float(filters.min_notional):
        raise _Veto(
            "min_notional",
            f"notional {notional:,.2f} is below the venue minimum {filters.min_notional}",
        )
    return quantity


# --------------------------------------------------------------------------------------------------
# Small helpers


def _to_tick(price: float, filters: SymbolFilters, *, up: bool) -> float:
    # repr() gives the shortest decimal for the float, so 99.95 stays 99.95 rather than its binary
    # expansion, which could round one tick further than the agent meant.
    try:
        return float(filters.round_price(Decimal(repr(price)), up=up))
    except InvalidOperation:  # e.g. 1e30: more digits than a price in ticks can carry
        raise _Veto("invalid_proposal", f"price {price:.10g} is not a price in "
                    f"{filters.symbol}'s ticks of {filters.tick_size}") from None


def _beyond(level: float, price: float, *, above: bool) -> bool:
    """Strictly above (or below) the price: a level equal to the price is on neither side."""
    return level > price if above else level < price


def _approval_note(plan: OrderPlan, ctx: RiskContext) -> str:
    share = plan.margin / ctx.agent_equity
    return (
        f"approved: {plan.side.value} {plan.symbol} {plan.leverage}x, margin {plan.margin:,.2f} "
        f"USDT ({share:.1%} of agent equity), stop {plan.stop_distance:.2%} away "
        f"({plan.stop_distance * plan.leverage:.1%} of margin)"
        + ("" if plan.trail_callback is None else
           f", trailing stop {plan.trail_callback:.2%}"
           + ("" if plan.trail_activation is None else
              f" from {plan.trail_activation:.10g}"))
    )
