"""The LLM provider contract and the reply format every provider's answer must fit.

An agent backed by a model sends a prompt that carries its rule-based signal and the numbers behind
it, and asks for a JSON answer that matches ``LLMAnswer``. A reply that does not parse or validate is
a *failure*, recorded with the raw text, never a silent "hold" (DESIGN.md section 1.3). The Gemini
and Grok providers implement ``LLMProvider``; ``EchoProvider`` is the deterministic offline one.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import LLMError


class LLMAnswer(BaseModel):
    """The fixed schema of a model's answer for one symbol."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["open_long", "open_short", "close", "hold"]
    symbol: str
    leverage: int = Field(ge=1, le=125)
    margin_fraction: float = Field(ge=0, le=1)
    stop_price: float | None = Field(default=None, gt=0)
    take_profit: float | None = Field(default=None, gt=0)
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=2000)


class LLMAnswers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[LLMAnswer]


@dataclass(frozen=True, slots=True)
class LLMReply:
    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float


class LLMProvider(Protocol):
    provider: str
    model: str

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        """One call; raises LLMError on timeout, transport or API failure."""
        ...


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_answers(text: str) -> LLMAnswers:
    """Parse a reply into validated answers: bare JSON, fenced JSON or JSON inside prose.
    Raises LLMError (with the validation problem) when nothing valid is found."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    candidates.insert(0, text)
    problem = "empty reply" if not text.strip() else "no JSON object found"
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (ValueError, TypeError):
            continue
        try:
            return LLMAnswers.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    raise LLMError(f"invalid reply: {problem}")


class EchoProvider:
    """Deterministic offline provider: answers with the rule signal embedded in the prompt.

    It exercises the whole model path (prompt, reply, parse, validation) without a network, so
    tests and offline demos run the same code as Gemini or Grok would.
    """

    provider = "offline"
    model = "echo-rules"

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        started = time.perf_counter()
        marker = "RULE_SIGNAL_JSON:"
        at = prompt.find(marker)
        if at == -1:
            raise LLMError("offline provider: the prompt carries no rule signal")
        text = prompt[at + len(marker) :].strip().splitlines()[0]
        return LLMReply(text, len(prompt) // 4, len(text) // 4, (time.perf_counter() - started) * 1000)
