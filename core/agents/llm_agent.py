"""A strategy refined by a language model: the rules' signal and its numbers go in, a validated
answer comes out, and the call itself goes up with the decision for the audit trail.

The model sees the agent's roster entry, equity, open positions, the rule-based proposals (as JSON
on a ``RULE_SIGNAL_JSON:`` line) and the reasoning behind them, and must answer in the fixed schema
of ``core.llm.base.LLMAnswers``. A failed call or an unusable reply becomes a recorded *failure*
with the raw text, never a silent hold. Whatever comes back is still judged by the CEO's hard rules.

Every call, good or bad, is handed up as an ``LLMCallRecord`` on the ``AgentDecision``; the engine
stores it (``core/desk/llm_services.py``) before the proposals that cite it. With a daily budget attached
(``budget``) and spent, the agent makes no call: it trades on its rules or stops proposing, as the
budget says. With ``shadow`` on, the decision also carries the rule-only twin's answer.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import ValidationError

from core.agents.base import AgentView, Strategy
from core.agents.llm_prompts import PROMPT_VERSION as PROMPT_VERSION  # prompts live there
from core.agents.llm_prompts import SCHEMA, SYSTEM, build_prompt, prompt_version
from core.ceo.rules import RiskLimits
from core.errors import LLMError
from core.llm.base import LLMAnswers, LLMProvider, LLMReply, parse_answers
from core.models import Action, AgentDecision, LLMCallRecord, Proposal


class BudgetGate(Protocol):
    """What an agent reads of the session's daily LLM budget (core/llm/budget.py)."""

    mode: str

    @property
    def exhausted(self) -> bool: ...


class LLMAgent:
    """Wraps a rule strategy; ``decide`` never raises for a model problem."""

    def __init__(self, strategy: Strategy, provider: LLMProvider, *,
                 budget: BudgetGate | None = None, shadow: bool = False,
                 limits: RiskLimits | None = None) -> None:
        self.strategy = strategy
        self.limits = limits  # the configured hard rules, quoted in the prompt
        self.provider = provider
        self.spec = strategy.spec
        self.budget = budget
        self.shadow = shadow

    def decide(self, view: AgentView) -> AgentDecision:
        rules = self.strategy.decide(view)
        decision = rules if rules.failure is not None else self.refine(view, rules)
        if self.shadow and rules.failure is None:
            decision.shadow = rules
        return decision

    def prompt(self, view: AgentView, rules: AgentDecision) -> str:
        """The prompt this agent sends for ``rules`` (versioned by ``prompt_version``)."""
        return build_prompt(self.spec, view, rules, self.limits,
                            getattr(self.strategy, "params", None))

    def refine(self, view: AgentView, rules: AgentDecision, prompt: str | None = None) -> AgentDecision:
        """Ask the model about the rules' signal (``prompt`` when already built)."""
        name = self.spec.name
        budget = self.budget
        if budget is not None and budget.exhausted:
            if budget.mode == "stop":
                return AgentDecision(agent=name, note="daily LLM budget spent: not proposing "
                                                      "until the next day")
            return AgentDecision(agent=name, proposals=list(rules.proposals),
                                 note=f"daily LLM budget spent, on rules: {rules.note}".rstrip(": "))
        prompt = prompt or self.prompt(view, rules)
        call = LLMCallRecord(role="agent", provider=self.provider.provider,
                             model=self.provider.model, prompt_version=prompt_version(self.spec),
                             system=SYSTEM, prompt=prompt)
        try:
            reply = self.provider.complete(SYSTEM, prompt, SCHEMA)
        except LLMError as exc:
            call.error = str(exc)
            return AgentDecision(agent=name, failure=f"{self.provider.provider} call failed: {exc}",
                                 llm_call=call)
        _took(call, reply)
        try:
            answers = parse_answers(reply.text)
            proposals = self._proposals(answers, view, rules)
        except (LLMError, ValidationError, ValueError) as exc:
            call.error = f"invalid model reply: {exc}"
            call.validation_errors = str(exc)
            return AgentDecision(agent=name, failure=f"invalid model reply: {exc}",
                                 raw_reply=reply.text, llm_call=call)
        call.parsed = answers.model_dump_json()
        if not proposals:
            held = "; ".join(a.reasoning for a in answers.decisions) or rules.note or "model held"
            return AgentDecision(agent=name, note=f"model held: {held}", raw_reply=reply.text,
                                 llm_call=call)
        return AgentDecision(agent=name, proposals=proposals, raw_reply=reply.text, llm_call=call)

    def _proposals(self, answers: LLMAnswers, view: AgentView, rules: AgentDecision) -> list[Proposal]:
        groups = {p.symbol: p.group for p in rules.proposals if p.group}
        # the answer schema has no trailing stop: an open the rules also proposed keeps theirs
        trails = {(p.symbol, p.action): (p.trail_callback, p.trail_activation)
                  for p in rules.proposals if p.trail_callback is not None}
        out = []
        for a in answers.decisions:
            if a.action == "hold":
                continue
            if a.symbol.upper() not in view.market.symbols:
                raise ValueError(f"unknown symbol {a.symbol!r}")
            out.append(Proposal(
                agent=self.spec.name, symbol=a.symbol, action=Action(a.action), leverage=a.leverage,
                margin_fraction=a.margin_fraction, stop_price=a.stop_price,
                take_profit=a.take_profit, confidence=a.confidence, reasoning=a.reasoning,
                ref_price=view.market.price(a.symbol.upper()), group=groups.get(a.symbol.upper()),
                trail_callback=trails.get((a.symbol.upper(), Action(a.action)), (None, None))[0],
                trail_activation=trails.get((a.symbol.upper(), Action(a.action)), (None, None))[1],
            ))
        return out


def _took(call: LLMCallRecord, reply: LLMReply) -> None:
    """Copy what the provider reports about the call into its record."""
    call.raw_reply = reply.text
    call.latency_ms = reply.latency_ms
    call.input_tokens, call.output_tokens = reply.input_tokens, reply.output_tokens
    call.attempts = getattr(reply, "attempts", 1) or 1
    call.model = getattr(reply, "model", "") or call.model
