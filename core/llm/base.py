"""The LLM provider contract and the reply format every provider's answer must fit.

An agent backed by a model sends a prompt that carries its rule-based signal and the numbers behind
it (``core/agents/llm_prompts.py``), and asks for a JSON answer that matches ``LLMAnswers``. A reply that
does not parse or validate is a *failure*, recorded with the raw text, never a silent "hold"
(DESIGN.md section 1.3).

The contract every provider keeps (Gemini ``core/llm/gemini.py``, OpenAI-compatible / Grok
``core/llm/openai_compat.py``, the offline ``EchoProvider``; built by ``core/llm/providers.py``):

* ``complete(system, prompt, schema)`` makes one logical call: each HTTP attempt has a timeout,
  429 / 5xx / timeouts / connection errors are retried with back-off a bounded number of times,
  other 4xx are not (``core/llm/retry.py``);
* it returns an ``LLMReply`` whatever the text is (even empty: judging the text is
  ``parse_answers``'s job), or raises ``LLMError`` and nothing else, with a readable message that
  never contains the API key;
* ``LLMReply`` keeps ``text``, ``input_tokens``, ``output_tokens`` (billed output: thinking tokens
  included) and ``latency_ms`` (all attempts, back-off included), and adds with defaults
  ``attempts``, ``provider``, ``model``, ``finish_reason``, ``structured`` (the structured-output
  mode that served the call: ``json_schema``, ``json_object`` or ``none``) and ``notes`` (e.g. a
  server that refused ``json_schema`` and was served with ``json_object``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import LLMError


class LLMAnswer(BaseModel):
    """The fixed schema of a model's answer for one symbol (numbers finite: no NaN, no Infinity)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    attempts: int = 1
    provider: str = ""
    model: str = ""
    finish_reason: str | None = None
    structured: str = "none"
    notes: str = ""


class LLMProvider(Protocol):
    provider: str
    model: str

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        """One call; raises LLMError on timeout, transport or API failure."""
        ...


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_BRACKET = re.compile(r"[\[\]{}]")
MAX_REPLY_CHARS = 200_000  # an answer is a few kB; anything near this is not one
MAX_DEPTH = 32  # an answer nests 3 deep; deep nesting can overflow the C JSON parser's stack


def _too_deep(candidate: str) -> bool:
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", candidate)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


_Reply = TypeVar("_Reply", bound=BaseModel)


def parse_json_reply(text: str, model: type[_Reply], what: str = "reply") -> _Reply:
    """Parse a model's reply into ``model``: bare JSON, fenced JSON or JSON inside prose.
    Raises LLMError (with the validation problem) when nothing valid is found, and nothing else
    whatever the text: an oversized or absurdly nested reply is refused before parsing."""
    if len(text) > MAX_REPLY_CHARS:
        raise LLMError(f"invalid {what}: {len(text):,} characters, more than {MAX_REPLY_CHARS:,}")
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    candidates.insert(0, text)
    problem = "empty reply" if not text.strip() else "no JSON object found"
    for candidate in candidates:
        if _too_deep(candidate):
            problem = f"JSON nested more than {MAX_DEPTH} deep"
            continue
        try:
            data = json.loads(candidate)
        except (ValueError, TypeError, RecursionError):
            continue
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    raise LLMError(f"invalid {what}: {problem}")


def parse_answers(text: str) -> LLMAnswers:
    """An agent's reply as validated answers (see ``parse_json_reply``)."""
    return parse_json_reply(text, LLMAnswers)


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
        return LLMReply(text, len(prompt) // 4, len(text) // 4, (time.perf_counter() - started) * 1000,
                        provider=self.provider, model=self.model, finish_reason="STOP")
