"""Which model serves which agent: settings and the roster in, providers (or None) out.

``AGENT_LLM`` decides: ``none`` — every agent on its rules; ``offline`` — every agent through the
model path with the deterministic ``EchoProvider``; ``auto`` — each agent on its roster model
(Gemini or Grok) when that model's key is set, and on its rules otherwise, which the UI labels
"rules (no key)". With no keys at all, ``auto`` is exactly ``none``.

One client per model kind is shared by the agents that use it (the SDK clients are thread-safe and
share a connection pool). Nothing here touches the network: clients connect on their first call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol
from urllib.parse import urlsplit

from core.config import Settings
from core.llm.base import EchoProvider, LLMProvider
from core.llm.retry import RetryPolicy

ModelKind = Literal["gemini", "grok", "offline"]
NO_KEY = "rules (no key)"


class ModelBacked(Protocol):
    """An agent as the providers see it (``core.agents.base.AgentSpec`` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def model(self) -> str: ...


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        timeout_s=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        backoff_s=settings.llm_retry_backoff_seconds,
    )


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return getter().strip() if callable(getter) else ""


def has_key(kind: str, settings: Settings) -> bool:
    if kind == "gemini":
        return bool(_secret(settings.gemini_api_key))
    if kind == "grok":
        return bool(_secret(settings.xai_api_key))
    return kind == "offline"


def build_provider(kind: ModelKind | str, settings: Settings) -> LLMProvider | None:
    """A provider for a model kind, or None when its key is not set (or the kind is unknown).
    Also what a reviewer (the CEO's LLM review) uses to get its model."""
    if kind == "offline":
        return EchoProvider()
    if not has_key(kind, settings):
        return None
    policy = retry_policy(settings)
    # the SDKs load only for a model the desk will call: a backtest or a CLI command never pays
    # their start-up (about 1.5 s of CPU)
    if kind == "gemini":
        from core.llm.gemini import GeminiProvider

        return GeminiProvider(
            _secret(settings.gemini_api_key), settings.gemini_model, policy=policy,
            base_url=settings.gemini_base_url or None, temperature=settings.llm_temperature,
        )
    from core.llm.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        _secret(settings.xai_api_key), settings.xai_model, policy=policy,
        base_url=settings.xai_base_url, temperature=settings.llm_temperature,
    )


def build_providers(settings: Settings, specs: Iterable[ModelBacked]) -> dict[str, LLMProvider | None]:
    """Each agent's provider by ``spec.key`` (None: the agent runs on its rules)."""
    specs = list(specs)
    if settings.agent_llm == "none":
        return {s.key: None for s in specs}
    if settings.agent_llm == "offline":
        echo = EchoProvider()
        return {s.key: echo for s in specs}
    shared: dict[str, LLMProvider | None] = {}
    out: dict[str, LLMProvider | None] = {}
    for spec in specs:
        if spec.model not in shared:
            shared[spec.model] = build_provider(spec.model, settings)
        out[spec.key] = shared[spec.model]
    return out


def model_label(settings: Settings, spec: ModelBacked) -> str:
    """What the UI shows as an agent's model: the model that decides, or why the rules do."""
    mode = settings.agent_llm
    if mode == "offline":
        return "offline (echo-rules)"
    if not has_key(spec.model, settings):
        return NO_KEY
    if mode == "none":
        return "rules (LLM off)"
    if spec.model == "gemini":
        return f"Gemini ({settings.gemini_model})"
    host = urlsplit(settings.xai_base_url).hostname or settings.xai_base_url
    if host == "api.x.ai":
        return f"Grok ({settings.xai_model})"
    return f"OpenAI-compatible ({settings.xai_model} @ {host})"
