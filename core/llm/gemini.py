"""Gemini behind the ``LLMProvider`` contract, through the google-genai SDK.

Structured output is asked for the way Gemini defines it: ``response_mime_type`` JSON plus the
answer's JSON schema (``response_json_schema``), so a well-behaved model returns bare JSON; the
desk still validates every reply with pydantic. ``GEMINI_BASE_URL`` overrides the endpoint through
the SDK's ``http_options`` (a proxy, a regional endpoint or a test server). Tokens come from
``usage_metadata``; thinking tokens are billed as output, so they count in ``output_tokens``.
A blocked prompt or a candidate without text is returned as an empty reply with its finish reason:
the agent then records it as a failure with that reason, never as a hold.
"""

from __future__ import annotations

import time

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from core.llm.base import LLMReply
from core.llm.retry import (
    CallFailed,
    RetryPolicy,
    call_with_retries,
    http_failure,
    transport_failure,
)

API_VERSION = "v1beta"  # structured output with a JSON schema is served there


class GeminiProvider:
    provider = "gemini"

    def __init__(
        self,
        api_key: str,
        model: str,
        *,
        policy: RetryPolicy,
        base_url: str | None = None,
        temperature: float | None = None,
    ) -> None:
        self.model = model
        self._key = api_key
        self._policy = policy
        self._temperature = temperature
        options = types.HttpOptions(
            base_url=base_url or None,
            api_version=API_VERSION,
            timeout=max(1, round(policy.timeout_s * 1000)),  # milliseconds; no SDK retries
        )
        self._client = genai.Client(api_key=api_key, vertexai=False, http_options=options)

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        config = types.GenerateContentConfig(
            system_instruction=system,
            response_mime_type="application/json",
            response_json_schema=schema,
            temperature=self._temperature,
        )
        started = time.perf_counter()

        def attempt() -> types.GenerateContentResponse:
            return self._client.models.generate_content(model=self.model, contents=prompt, config=config)

        response, attempts = call_with_retries(
            attempt, self._classify, self._policy, label=f"gemini {self.model}", secret=self._key
        )
        latency = (time.perf_counter() - started) * 1000
        usage = response.usage_metadata
        input_tokens = (usage.prompt_token_count or 0) if usage else 0
        output_tokens = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        return LLMReply(
            text=_text(response), input_tokens=input_tokens, output_tokens=output_tokens,
            latency_ms=latency, attempts=attempts, provider=self.provider, model=self.model,
            finish_reason=_finish_reason(response), structured="json_schema",
        )

    def _classify(self, exc: Exception) -> CallFailed:
        if isinstance(exc, genai_errors.APIError):
            status = exc.code if isinstance(exc.code, int) else 0
            headers = getattr(exc.response, "headers", None)
            return http_failure(status, f"{exc.status or ''} {exc.message or ''}".strip(), headers)
        found = transport_failure(exc, self._policy.timeout_s)
        if found is not None:
            return found
        return CallFailed(f"{type(exc).__name__}: {exc}", retryable=False)


def _text(response: types.GenerateContentResponse) -> str:
    """The text parts of the first candidate (not ``response.text``, which warns on other parts)."""
    if not response.candidates:
        return ""
    content = response.candidates[0].content
    parts = content.parts if content and content.parts else []
    return "".join(p.text for p in parts if p.text and not p.thought)


def _finish_reason(response: types.GenerateContentResponse) -> str | None:
    if response.candidates:
        reason = response.candidates[0].finish_reason
        return str(getattr(reason, "value", reason)) if reason is not None else None
    feedback = response.prompt_feedback
    if feedback and feedback.block_reason:
        return f"BLOCKED_{getattr(feedback.block_reason, 'value', feedback.block_reason)}"
    return "NO_CANDIDATES"
