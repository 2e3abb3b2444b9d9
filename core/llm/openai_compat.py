"""Grok, and any OpenAI-compatible chat server, behind the ``LLMProvider`` contract.

xAI serves Grok with the OpenAI chat-completions protocol, so the openai SDK with xAI's base URL
(``XAI_BASE_URL``, default https://api.x.ai/v1) is the client; pointing the base URL at a local
server (llama.cpp, vLLM, Ollama's ``/v1``) runs the same agents on a local model.

Structured output is asked for with ``response_format: json_schema``. Some servers refuse it; a
400/422 whose message names the response format or schema is then retried at once with
``json_object`` (the prompt carries the schema too), and the provider keeps using ``json_object`` from then on. The
call that switched says so in ``LLMReply.notes``, every later one in ``LLMReply.structured``.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion

from core.llm.base import LLMReply
from core.llm.retry import (
    CallFailed,
    RetryPolicy,
    call_with_retries,
    http_failure,
    mask,
    transport_failure,
)

log = logging.getLogger(__name__)
XAI_BASE_URL = "https://api.x.ai/v1"
SCHEMA_NAME = "agent_decisions"
REFUSED_SCHEMA_STATUS = frozenset({400, 422})
REFUSAL = re.compile(r"response_format|json_schema|schema|structured", re.IGNORECASE)


def estimated_tokens(text: str) -> int:
    """A rough token count for a server that reports none (about 4 characters a token)."""
    return (len(text) + 3) // 4


class OpenAICompatProvider:
    def __init__(
        self,
        api_key: str,
        model: str,
        *,
        policy: RetryPolicy,
        base_url: str = XAI_BASE_URL,
        temperature: float | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.provider = "grok" if urlsplit(base_url).hostname == "api.x.ai" else "openai-compatible"
        self._key = api_key
        self._policy = policy
        self._temperature = temperature
        self._mode = "json_schema"  # until the server refuses it, then json_object for good
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=policy.timeout_s, max_retries=0
        )

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        started = time.perf_counter()
        notes: list[str] = []
        used: list[str] = []

        def attempt() -> ChatCompletion:
            mode = self._mode
            used.append(mode)
            try:
                return self._create(messages, mode, schema)
            except openai.APIStatusError as exc:
                if mode != "json_schema" or not _refuses_schema(exc):
                    raise
                reason = mask(f"HTTP {exc.status_code}: {_message(exc)}", self._key)
                self._mode = "json_object"
                log.warning("%s %s refused json_schema (%s); using json_object", self.provider,
                            self.model, reason)
                notes.append(f"server refused json_schema ({reason}); fell back to json_object")
                used.append("json_object")
                return self._create(messages, "json_object", schema)

        response, attempts = call_with_retries(
            attempt, self._classify, self._policy, label=f"{self.provider} {self.model}",
            secret=self._key,
        )
        latency = (time.perf_counter() - started) * 1000
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        finish = choice.finish_reason if choice else "NO_CHOICES"
        if choice is not None and choice.message.refusal:
            notes.append(f"model refused: {mask(choice.message.refusal, self._key)}")
        usage = response.usage
        input_tokens = getattr(usage, "prompt_tokens", None)
        output_tokens = getattr(usage, "completion_tokens", None)
        if not isinstance(input_tokens, int) or not isinstance(output_tokens, int):
            # some compatible servers omit the counts: estimate so the budget still counts the call
            notes.append("the server reported no token counts; estimated at 4 characters a token")
            if not isinstance(input_tokens, int):
                input_tokens = estimated_tokens(system) + estimated_tokens(prompt)
            if not isinstance(output_tokens, int):
                output_tokens = estimated_tokens(text)
        return LLMReply(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=latency, attempts=attempts, provider=self.provider, model=self.model,
            finish_reason=finish, structured=used[-1], notes="; ".join(notes),
        )

    def _create(self, messages: list[dict[str, str]], mode: str, schema: dict[str, object]) -> ChatCompletion:
        if mode == "json_schema":
            response_format: dict[str, object] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": False},
            }
        else:
            response_format = {"type": "json_object"}
        extra = {} if self._temperature is None else {"temperature": self._temperature}
        return self._client.chat.completions.create(
            model=self.model, messages=messages, response_format=response_format,  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        )

    def _classify(self, exc: Exception) -> CallFailed:
        if isinstance(exc, openai.APITimeoutError):
            return CallFailed(f"timed out after {self._policy.timeout_s:g} s", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            return CallFailed(f"connection failed ({_message(exc)})", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            return http_failure(exc.status_code, _message(exc), exc.response.headers)
        found = transport_failure(exc, self._policy.timeout_s)
        if found is not None:
            return found
        return CallFailed(f"{type(exc).__name__}: {exc}", retryable=False)


def _refuses_schema(exc: openai.APIStatusError) -> bool:
    """A 400/422 that names the structured-output request (not any bad request)."""
    return exc.status_code in REFUSED_SCHEMA_STATUS and bool(REFUSAL.search(_message(exc)))


def _message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return exc.message
