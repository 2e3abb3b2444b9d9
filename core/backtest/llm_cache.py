"""Model-refined agents in a backtest answer from the replies already recorded, never from a live
model: a rerun is deterministic and free.

A cached agent builds the prompt exactly as the live model agent does (``core.agents.llm_prompts``), hashes
it like the audit trail (``prompt_sha256`` of system + prompt) and looks the hash up in the main
store's ``llm_calls`` (agent calls with a reply and no error; the newest wins). A hit goes through
the model agent's own parsing and validation with the recorded text (so a bad recorded reply is
the same recorded failure it was); a miss makes that one decision on the agent's rules. Hits and
misses are counted per agent for the report.
"""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import Engine, select

from core.agents.base import AgentView, Strategy
from core.agents.llm_agent import LLMAgent
from core.agents.llm_prompts import SYSTEM
from core.ceo.rules import RiskLimits
from core.desk.llm_services import prompt_sha256
from core.llm.base import LLMReply
from core.models import AgentDecision
from core.store.tables import LLMCallRow

CALLS = LLMCallRow.__table__


class ReplyCache:
    """Recorded agent replies by prompt hash, read from a store once per run (hashes only; the
    text of a reply is fetched on a hit)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.connect() as conn:
            self.hashes = set(conn.scalars(select(CALLS.c.prompt_sha256).where(
                CALLS.c.role == "agent", CALLS.c.error.is_(None), CALLS.c.raw_reply.is_not(None))))
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    def reply(self, digest: str) -> tuple[str, str, str] | None:
        if digest not in self.hashes:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(CALLS.c.raw_reply, CALLS.c.provider, CALLS.c.model).where(
                CALLS.c.prompt_sha256 == digest, CALLS.c.role == "agent", CALLS.c.error.is_(None),
                CALLS.c.raw_reply.is_not(None)).order_by(CALLS.c.id.desc()).limit(1)).first()
        return None if row is None else (row[0], row[1], row[2])

    def note(self) -> str:
        names = sorted(set(self.hits) | set(self.misses))
        if not self.hits:
            return "agents ran on rules (no cached model reply matched a prompt)"
        parts = [f"{n}: {self.hits[n]} cached replies, {self.misses[n]} on rules" for n in names]
        return "agents ran on cached model replies where a prompt matched, rules otherwise (" + \
            "; ".join(parts) + ")"


class _Recorded:
    """An LLMProvider that returns the recorded reply loaded for the current decision (free,
    instant)."""

    provider = "cache"
    model = ""

    def __init__(self) -> None:
        self.text = ""

    def load(self, text: str, provider: str, model: str) -> None:
        self.text, self.provider, self.model = text, f"cache:{provider}"[:32], model

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        return LLMReply(text=self.text, input_tokens=0, output_tokens=0, latency_ms=0.0,
                        provider=self.provider, model=self.model)


class CachedAgent:
    """A rule strategy refined by recorded model replies where one matches, rules otherwise. The
    prompt, parsing and validation are the live model agent's own (``LLMAgent``)."""

    def __init__(self, strategy: Strategy, cache: ReplyCache, limits: RiskLimits | None = None) -> None:
        self.strategy = strategy
        self.spec = strategy.spec
        self.cache = cache
        self._recorded = _Recorded()
        self._agent = LLMAgent(strategy, self._recorded, limits=limits)

    def decide(self, view: AgentView) -> AgentDecision:
        rules = self.strategy.decide(view)
        if rules.failure is not None:
            return rules
        prompt = self._agent.prompt(view, rules)
        found = self.cache.reply(prompt_sha256(SYSTEM, prompt))
        if found is None:
            self.cache.misses[self.spec.name] += 1
            return rules
        self.cache.hits[self.spec.name] += 1
        self._recorded.load(*found)
        started = time.perf_counter()
        decision = self._agent.refine(view, rules, prompt)
        if decision.llm_call is not None:
            decision.llm_call.latency_ms = (time.perf_counter() - started) * 1000
        return decision
