"""A strategy refined by a language model: the rules' signal and its numbers go in, a validated
answer comes out.

The model sees the agent's roster entry, equity, open positions, the rule-based proposals (as JSON
on a ``RULE_SIGNAL_JSON:`` line) and the reasoning behind them, and must answer in the fixed schema
of ``core.llm.base.LLMAnswers``. A failed call or an unusable reply becomes a recorded *failure*
with the raw text, never a silent hold. Whatever comes back is still judged by the CEO's hard rules.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from core.agents.base import AgentSpec, AgentView, Strategy
from core.errors import LLMError
from core.llm.base import LLMAnswer, LLMAnswers, LLMProvider, parse_answers
from core.models import Action, AgentDecision, Proposal

PROMPT_VERSION = "agent-v1"
SYSTEM = (
    "You are a perpetual-futures trading agent on a supervised desk. Refine the rule-based signal "
    "you are given; you may keep it, change its numbers, or hold. A CEO enforces hard risk limits "
    "on whatever you answer. Answer with JSON only, matching the schema."
)
SCHEMA: dict[str, object] = LLMAnswers.model_json_schema()


def build_prompt(spec: AgentSpec, view: AgentView, rules: AgentDecision) -> str:
    signal = {"decisions": [_answer(p).model_dump() for p in rules.proposals]}
    positions = [
        {"symbol": p.symbol, "side": p.side.value, "entry": p.entry_price, "stop": p.stop_price,
         "take_profit": p.take_profit, "leverage": p.leverage}
        for p in view.positions.values()
    ]
    prices = {s: view.market.price(s) for s in view.market.symbols}
    return "\n".join([
        f"Agent: {spec.name} ({spec.strategy}), risk {spec.risk_level.value}, "
        f"max leverage {spec.max_leverage}x.",
        f"Equity: {view.equity:.2f} USDT. Prices: {json.dumps(prices)}.",
        f"Open positions: {json.dumps(positions)}. Symbols held by other agents: "
        f"{sorted(view.owned_elsewhere)}.",
        f"Rule-based view: {rules.note or 'see the proposals'}",
        f"RULE_SIGNAL_JSON: {json.dumps(signal)}",
        "Answer {\"decisions\": [...]} with one entry per trade you want (none to hold).",
    ])


def _answer(p: Proposal) -> LLMAnswer:
    return LLMAnswer(
        action=p.action.value, symbol=p.symbol, leverage=p.leverage,
        margin_fraction=p.margin_fraction, stop_price=p.stop_price, take_profit=p.take_profit,
        confidence=p.confidence, reasoning=p.reasoning,
    )


class LLMAgent:
    """Wraps a rule strategy; ``decide`` never raises for a model problem."""

    def __init__(self, strategy: Strategy, provider: LLMProvider) -> None:
        self.strategy = strategy
        self.provider = provider
        self.spec = strategy.spec

    def decide(self, view: AgentView) -> AgentDecision:
        rules = self.strategy.decide(view)
        if rules.failure is not None:
            return rules
        name = self.spec.name
        try:
            reply = self.provider.complete(SYSTEM, build_prompt(self.spec, view, rules), SCHEMA)
        except LLMError as exc:
            return AgentDecision(agent=name, failure=f"{self.provider.provider} call failed: {exc}")
        try:
            answers = parse_answers(reply.text)
            proposals = self._proposals(answers, view, rules)
        except (LLMError, ValidationError, ValueError) as exc:
            return AgentDecision(agent=name, failure=f"invalid model reply: {exc}", raw_reply=reply.text)
        if not proposals:
            held = "; ".join(a.reasoning for a in answers.decisions) or rules.note or "model held"
            return AgentDecision(agent=name, note=f"model held: {held}", raw_reply=reply.text)
        return AgentDecision(agent=name, proposals=proposals, raw_reply=reply.text)

    def _proposals(self, answers: LLMAnswers, view: AgentView, rules: AgentDecision) -> list[Proposal]:
        groups = {p.symbol: p.group for p in rules.proposals if p.group}
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
            ))
        return out
