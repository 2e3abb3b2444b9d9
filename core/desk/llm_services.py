"""The audit trail of model calls, and the desk's LLM services the engine calls into.

``charge`` prices an ``LLMCallRecord`` (``LLM_PRICES``) and charges the day's budget as soon as the
call returns; ``write_call`` stores it in ``llm_calls`` with ``prompt_sha256`` (of system + prompt, so
a backtest can look a reply up) and returns its id. The engine makes every model call of a tick
(agents, then the reviewer) before it writes anything, so no database write lock is held while a
model thinks; then it stores an agent's call *before* the proposals that cite it
(``proposals.llm_call_id``), and a reviewer's call before the CEO decision it shaped
(``ceo_decisions.llm_call_id``). With ``positions.decision_id`` and ``orders/fills.position_id``
that makes the chain from any trade back to its prompt and raw reply.

``LLMServices`` bundles what a desk with model-backed agents (or the CEO's reviewer) needs on top of
the rules: the daily budget, the reviewer, the shadow book. ``build_llm_services`` returns None for a
rule-only desk, so the engine's hot path stays exactly as it was (no rows, no cost, no hooks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import insert

from core.agents.llm_agent import LLMAgent
from core.alerts import events as alerts
from core.ceo.model_reviewer import REVIEW_FAILED, CEOReviewer, failed_verdict
from core.ceo.rules import RiskLimits
from core.desk.parts import DeskParts
from core.desk.shadow import ShadowBook
from core.llm.budget import BUDGET_KIND, LLMBudget
from core.llm.cost import estimate_cost
from core.models import AgentDecision, LLMCallRecord, MarketStep, Proposal, RiskVerdict, Verdict
from core.store.tables import LLM_CALLS

if TYPE_CHECKING:
    from core.agents.base import Strategy
    from core.config import Settings
    from core.desk.ledger import AgentLedger
    from core.llm.base import LLMProvider

log = logging.getLogger(__name__)


class Desk(DeskParts, Protocol):  # what these services use of ``core.desk.context.Desk``
    llm: LLMServices | None
BUDGET_SKIPPED = "llm_review_skipped_budget"


def prompt_sha256(system: str, prompt: str) -> str:
    return hashlib.sha256(f"{system}\n\n{prompt}".encode()).hexdigest()


def charge(desk: Desk, call: LLMCallRecord) -> None:
    """Price the call (``LLM_PRICES``) and charge it to the day's budget at once, so a later call
    in the same tick already sees a spent budget."""
    call.cost_usd = estimate_cost(call.model, call.input_tokens, call.output_tokens,
                                  desk.settings.llm_prices)
    services = desk.llm
    if services is not None and services.budget is not None:
        services.budget.charge(call.cost_usd)


def write_call(desk: Desk, agent_id: int | None, tick_ms: int, call: LLMCallRecord) -> int:
    """Write an already charged call; returns its id."""
    return int(desk.db.execute(insert(LLM_CALLS).values(
        session_id=desk.ledger.session.id, agent_id=agent_id, tick_ms=tick_ms, role=call.role,
        provider=call.provider[:32], model=call.model[:96], prompt_version=call.prompt_version[:32],
        system=call.system, prompt=call.prompt, prompt_sha256=prompt_sha256(call.system, call.prompt),
        raw_reply=call.raw_reply, parsed=call.parsed, error=call.error,
        validation_errors=call.validation_errors, latency_ms=call.latency_ms,
        input_tokens=call.input_tokens, output_tokens=call.output_tokens,
        cost_usd=call.cost_usd, attempts=call.attempts,
    )).inserted_primary_key[0])


def store_call(desk: Desk, agent_id: int | None, tick_ms: int, call: LLMCallRecord) -> int:
    """Price, charge and write one call; returns its id."""
    charge(desk, call)
    return write_call(desk, agent_id, tick_ms, call)


@dataclass(slots=True)
class LLMServices:
    budget: LLMBudget
    reviewer: CEOReviewer | None = None
    shadow: ShadowBook | None = None

    # ------------------------------------------------------------------ engine hooks
    def on_market(self, desk: Desk, step: MarketStep) -> None:
        """After the venue processed the tick's bars: the twins' stops and take-profits."""
        if self.shadow is not None:
            self.shadow.on_market(desk, step)

    def before_agents(self, desk: Desk, tick_ms: int) -> None:
        self.budget.sync(desk.db.connection(), desk.ledger.session.id, tick_ms)

    def after_agents(self, desk: Desk, decisions: Sequence[AgentDecision],
                     prices: dict[str, float], tick_ms: int) -> None:
        """Log a spent budget once per day; book the rule twins' proposals in the shadow book."""
        if self.budget.exhausted and not self.budget.logged:
            note = self.budget.exhaustion_note()
            decision_id = desk.execution.log_event(BUDGET_KIND, note)
            if desk.execution.alerts:  # none in a backtest
                alerts.llm_budget_spent(desk.db.connection(), session_id=desk.ledger.session.id,
                                        decision_id=decision_id, ts_ms=tick_ms, note=note)
            log.warning("session %s: %s", desk.ledger.session.id, note)
            self.budget.logged = True
        if self.shadow is None:
            return
        by_name = {a.name: a for a in desk.ledger.agents.values()}
        for decision in decisions:
            if decision.shadow is not None and decision.agent in by_name:
                self.shadow.decide(desk, by_name[decision.agent], decision.shadow, prices, tick_ms)

    def review(self, desk: Desk, agent: AgentLedger, proposals: Sequence[Proposal],
               verdicts: Sequence[RiskVerdict]) -> list[tuple[RiskVerdict, LLMCallRecord | None]]:
        """The reviewer's pass over one proposal or one multi-leg trade: each new-risk plan may
        only get tighter; if one leg ends rejected, no leg of the trade opens. Writes nothing (the
        engine calls this before it opens the tick's write transaction); each call is charged to
        the budget and handed back for the engine to store with the CEO decision it shaped."""
        out: list[tuple[RiskVerdict, LLMCallRecord | None]] = []
        for p, v in zip(proposals, verdicts, strict=True):
            if self.reviewer is None or v.plan is None or not p.opens:
                out.append((v, None))
            elif self.budget.exhausted:
                out.append((_budget_spent(v, self.budget.mode), None))
            else:
                reviewed, call = self.reviewer.review(p, v, desk.exchange.filters(p.symbol))
                if call is not None:
                    charge(desk, call)
                out.append((reviewed, call))
        if len(out) > 1 and any(v.verdict is Verdict.REJECT for v, _ in out):
            out = [(_leg_rejected(v) if p.opens and v.verdict is not Verdict.REJECT else v, cid)
                   for p, (v, cid) in zip(proposals, out, strict=True)]
        return out


def _budget_spent(v: RiskVerdict, mode: str) -> RiskVerdict:
    if mode == "stop":
        return failed_verdict(v, "the daily LLM budget is spent")
    return RiskVerdict(v.verdict, [*v.rules, BUDGET_SKIPPED], v.changes,
                       f"{v.reason}; LLM review skipped: the daily budget is spent [{BUDGET_SKIPPED}]",
                       v.plan)


def _leg_rejected(v: RiskVerdict) -> RiskVerdict:
    return RiskVerdict(Verdict.REJECT, [*v.rules, "pair_leg_rejected"], v.changes,
                       "rejected: another leg was rejected by the LLM review, so neither leg opens "
                       "[pair_leg_rejected]")


def reviewer_provider(settings: Settings) -> tuple[LLMProvider | None, str]:
    """The CEO reviewer's model per ``CEO_LLM_PROVIDER``, or None and why it is unavailable."""
    from core.llm.providers import build_provider

    provider = build_provider(settings.ceo_llm_provider, settings)
    if provider is None:
        return None, f"no API key for the {settings.ceo_llm_provider} reviewer"
    return provider, ""


def build_llm_services(settings: Settings, strategies: Sequence[Strategy]) -> LLMServices | None:
    """Attach the budget (and the shadow twin) to every model-backed agent; None when the desk
    runs on rules only and no reviewer is asked for."""
    agents = [s for s in strategies if isinstance(s, LLMAgent)]
    if not agents and not settings.ceo_llm_review:
        return None
    budget = LLMBudget(settings.llm_daily_budget_usd, settings.llm_budget_exhausted)
    for agent in agents:
        agent.budget = budget
        agent.shadow = settings.shadow_baseline
    reviewer = None
    if settings.ceo_llm_review:
        provider, why = reviewer_provider(settings)
        reviewer = CEOReviewer(provider, why)
    shadow = None
    if settings.shadow_baseline and agents:
        shadow = ShadowBook(settings.paper_taker_fee, settings.paper_slippage_bps,
                            RiskLimits.from_settings(settings))
    return LLMServices(budget=budget, reviewer=reviewer, shadow=shadow)


__all__ = ["REVIEW_FAILED", "LLMServices", "build_llm_services", "charge", "prompt_sha256",
           "store_call", "write_call"]
