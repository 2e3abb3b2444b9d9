"""The CEO's optional LLM reviewer: after the hard rules, a model looks at each new-risk plan and may
only make it *tighter* (DESIGN.md 1.2).

``clamp_plan`` is the pure core: given the hard-rule ``OrderPlan`` and whatever the reviewer
answered, it returns a plan that is never looser: the same symbol and side, leverage no higher,
margin and quantity no larger, the stop no further from the price (and still on the loss side),
re-sized and re-checked against the venue filters (step, minimum quantity, minimum notional) so it
can never become an invalid order; or no plan at all (reject). A request that would loosen is ignored
and recorded (``llm_review_loosen_ignored``), a nonsensical number likewise
(``llm_review_invalid_ignored``). ``review_verdict`` folds the result into the CEO's verdict with
the rule ids and before/after values; ``failed_verdict`` is the fail-closed answer when the reviewer
cannot be asked or answers nonsense (``llm_review_failed``). Closes are never reviewed: reducing
risk does not wait for an opinion.

The prompt carries the hard-rule plan on a ``RULE_SIGNAL_JSON:`` line, so the offline provider
(which echoes that line) is a deterministic reviewer that approves the plan as it is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import LLMError
from core.llm.base import LLMProvider, parse_json_reply
from core.models import (
    LLMCallRecord,
    OrderPlan,
    PositionSide,
    Proposal,
    RiskVerdict,
    SymbolFilters,
    Verdict,
)

REVIEW_VERSION = "ceo-review-v1"
REVIEW_FAILED = "llm_review_failed"
LOOSEN_IGNORED = "llm_review_loosen_ignored"
INVALID_IGNORED = "llm_review_invalid_ignored"
SYSTEM = (
    "You are the risk reviewer of a supervised perpetual-futures desk. The hard risk rules already "
    "approved the plan below. You may approve it, reject it, or tighten it: lower leverage, smaller "
    "margin (USDT), or a stop closer to the price. Anything looser is ignored. Answer with JSON "
    "only, matching the schema."
)


class ReviewAnswer(BaseModel):
    """The reviewer's answer. Numbers are unbounded on purpose: ``clamp_plan`` judges them."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "tighten", "reject"]
    leverage: int | None = None
    margin: float | None = None
    stop_price: float | None = None
    reason: str = Field(default="", max_length=2000)


SCHEMA: dict[str, object] = ReviewAnswer.model_json_schema()


@dataclass(slots=True)
class Clamp:
    plan: OrderPlan | None  # None: rejected
    rules: list[str] = field(default_factory=list)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, rule: str, text: str, **changes: tuple[Any, Any]) -> None:
        if rule not in self.rules:
            self.rules.append(rule)
        self.notes.append(f"{text} [{rule}]")
        self.changes.update(changes)

    @property
    def tightened(self) -> bool:
        return any(r not in (LOOSEN_IGNORED, INVALID_IGNORED) for r in self.rules)


def _finite_positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def clamp_plan(plan: OrderPlan, answer: ReviewAnswer, filters: SymbolFilters) -> Clamp:
    """The hard-rule ``plan`` made only tighter by ``answer`` (see the module docstring)."""
    out = Clamp(plan)
    if answer.decision == "reject":
        out.plan = None
        out.note("llm_review_reject", f"reviewer rejected: {answer.reason or 'no reason given'}")
        return out
    if answer.decision == "approve":
        return out
    leverage, margin, stop = plan.leverage, plan.margin, plan.stop_price
    long = plan.side is PositionSide.LONG
    price = plan.ref_price
    if answer.leverage is not None:
        if answer.leverage < 1:
            out.note(INVALID_IGNORED, f"leverage {answer.leverage}x ignored: below 1x")
        elif answer.leverage > plan.leverage:
            out.note(LOOSEN_IGNORED, f"leverage {answer.leverage}x ignored: above {plan.leverage}x")
        elif answer.leverage < plan.leverage:
            leverage = answer.leverage
            out.note("llm_review_leverage", f"leverage {plan.leverage}x → {leverage}x",
                     leverage=(plan.leverage, leverage))
    if answer.margin is not None:
        if not _finite_positive(answer.margin):
            out.note(INVALID_IGNORED, f"margin {answer.margin} ignored: not a positive number")
        elif answer.margin > plan.margin:
            out.note(LOOSEN_IGNORED, f"margin {answer.margin:,.2f} ignored: above {plan.margin:,.2f}")
        elif answer.margin < plan.margin:
            margin = answer.margin
    if answer.stop_price is not None:
        if not _finite_positive(answer.stop_price):
            out.note(INVALID_IGNORED, f"stop {answer.stop_price} ignored: not a positive number")
        elif (answer.stop_price >= price) if long else (answer.stop_price <= price):
            out.note(INVALID_IGNORED, f"stop {answer.stop_price:.10g} ignored: not on the losing "
                                      f"side of price {price:.10g}")
        elif (answer.stop_price < plan.stop_price) if long else (answer.stop_price > plan.stop_price):
            out.note(LOOSEN_IGNORED, f"stop {answer.stop_price:.10g} ignored: wider than "
                                     f"{plan.stop_price:.10g}")
        else:
            # between the plan's stop and beyond: rounded toward the price, like the hard rules
            asked = float(filters.round_price(Decimal(repr(answer.stop_price)), up=long))
            if (asked >= price) if long else (asked <= price):
                out.note(INVALID_IGNORED, f"stop {answer.stop_price:.10g} ignored: not on the "
                                          f"losing side of price {price:.10g}")
            elif asked != plan.stop_price:
                stop = asked
                out.note("llm_review_stop", f"stop {plan.stop_price:.10g} → {stop:.10g}",
                         stop_price=(plan.stop_price, stop))
    if leverage == plan.leverage and margin == plan.margin:
        quantity = plan.quantity  # unchanged: no float round trip that could drop a step
    else:
        quantity = min(filters.round_qty(Decimal(repr(margin * leverage / price))), plan.quantity)
    if quantity <= 0 or quantity < filters.min_qty or float(quantity) * price < float(filters.min_notional):
        out.plan = None
        out.note("llm_review_min_notional",
                 f"the tightened size ({quantity} at {price:.10g}) is below the venue minimums: "
                 "rejected rather than sent invalid")
        return out
    final_margin = plan.margin if quantity == plan.quantity and leverage == plan.leverage \
        else float(quantity) * price / leverage
    if quantity < plan.quantity:
        out.note("llm_review_size", f"quantity {plan.quantity} → {quantity}, margin "
                                    f"{plan.margin:,.2f} → {final_margin:,.2f} USDT",
                 margin=(plan.margin, final_margin), quantity=(plan.quantity, quantity))
    out.plan = replace(plan, leverage=leverage, quantity=quantity, margin=final_margin,
                       stop_price=stop, stop_distance=abs(price - stop) / price)
    return out


def review_verdict(verdict: RiskVerdict, clamp: Clamp) -> RiskVerdict:
    """The CEO's verdict after the review: rejected, modified, or unchanged with a note."""
    if not clamp.rules:
        return verdict
    rules = [*verdict.rules, *clamp.rules]
    changes = dict(verdict.changes)
    for name, (before, after) in clamp.changes.items():
        changes[name] = (changes.get(name, (before, after))[0], after)
    notes = "; ".join(clamp.notes)
    if clamp.plan is None:
        return RiskVerdict(Verdict.REJECT, rules, changes, f"rejected by the LLM review: {notes}")
    kind = Verdict.MODIFY if clamp.tightened else verdict.verdict
    return RiskVerdict(kind, rules, changes, f"{verdict.reason}; LLM review: {notes}", clamp.plan)


def failed_verdict(verdict: RiskVerdict, why: str) -> RiskVerdict:
    """Fail closed: no review, no new risk."""
    return RiskVerdict(Verdict.REJECT, [*verdict.rules, REVIEW_FAILED], verdict.changes,
                       f"rejected: the LLM review failed ({why}), so no new risk [{REVIEW_FAILED}]")


def build_review_prompt(p: Proposal, plan: OrderPlan, verdict: RiskVerdict) -> str:
    hard = {"decision": "approve", "leverage": plan.leverage, "margin": round(plan.margin, 2),
            "stop_price": plan.stop_price, "reason": "the hard rules' plan"}
    return "\n".join([
        f"Agent: {p.agent}. It proposed {p.action.value} {p.symbol} at {p.leverage}x with "
        f"{p.margin_fraction:.1%} of its equity, confidence {p.confidence:.2f}: {p.reasoning}",
        f"Hard rules: {verdict.verdict.value} ({', '.join(verdict.rules) or 'no rule fired'}): "
        f"{verdict.reason}",
        f"Plan: {plan.side.value} {plan.quantity} {plan.symbol} at {plan.ref_price:.10g}, "
        f"{plan.leverage}x, margin {plan.margin:,.2f} USDT, stop {plan.stop_price:.10g} "
        f"({plan.stop_distance:.2%} away), take-profit {plan.take_profit}.",
        f"RULE_SIGNAL_JSON: {json.dumps(hard)}",
        "Answer {\"decision\": \"approve\"|\"tighten\"|\"reject\", \"leverage\", \"margin\", "
        "\"stop_price\", \"reason\"}.",
    ])


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_review(text: str) -> ReviewAnswer:
    """Bare, fenced or prose-wrapped JSON, hardened like an agent's reply (core.llm.base);
    LLMError when nothing valid is found."""
    return parse_json_reply(text, ReviewAnswer, "review")


class CEOReviewer:
    """Asks the model about one plan; never raises for a model problem."""

    def __init__(self, provider: LLMProvider | None, unavailable: str = "") -> None:
        self.provider = provider
        self.unavailable = unavailable or "no reviewer model configured"

    def review(self, p: Proposal, verdict: RiskVerdict,
               filters: SymbolFilters) -> tuple[RiskVerdict, LLMCallRecord | None]:
        plan = verdict.plan
        if plan is None or not p.opens:
            return verdict, None
        if self.provider is None:
            return failed_verdict(verdict, self.unavailable), None
        prompt = build_review_prompt(p, plan, verdict)
        call = LLMCallRecord(role="ceo_review", provider=self.provider.provider,
                             model=self.provider.model, prompt_version=REVIEW_VERSION,
                             system=SYSTEM, prompt=prompt)
        try:
            reply = self.provider.complete(SYSTEM, prompt, SCHEMA)
        except LLMError as exc:
            call.error = str(exc)
            return failed_verdict(verdict, f"call failed: {exc}"), call
        call.raw_reply, call.latency_ms = reply.text, reply.latency_ms
        call.input_tokens, call.output_tokens = reply.input_tokens, reply.output_tokens
        call.attempts = getattr(reply, "attempts", 1) or 1
        call.model = getattr(reply, "model", "") or call.model
        try:
            answer = parse_review(reply.text)
        except LLMError as exc:
            call.error = call.validation_errors = str(exc)
            return failed_verdict(verdict, str(exc)), call
        call.parsed = answer.model_dump_json()
        return review_verdict(verdict, clamp_plan(plan, answer, filters)), call
