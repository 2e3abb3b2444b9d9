"""The Gemini and OpenAI-compatible (Grok) providers, through the real google-genai and openai SDKs
against loopback servers that speak their protocols (tests/fake_llm_servers.py): structured output
requested, tokens read, 429/5xx/timeouts retried then failed, other 4xx not retried, keys never in a
message, and every reply ending as a valid proposal or a recorded failure, up to a real engine tick.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import count

import pytest
from sqlalchemy import select

from core.agents.base import AgentView
from core.agents.llm_agent import LLMAgent
from core.agents.llm_prompts import PROMPT_VERSION, SCHEMA, SYSTEM, render
from core.agents.strategies import build_strategies
from core.ceo.rules import RiskLimits
from core.config import PROJECT_ROOT, Settings
from core.desk.engine import run_cycle
from core.desk.runtime import build_agents, build_desk
from core.errors import LLMError
from core.llm import retry
from core.llm.base import EchoProvider, LLMProvider
from core.llm.cost import estimate_cost
from core.llm.gemini import GeminiProvider
from core.llm.openai_compat import OpenAICompatProvider
from core.llm.providers import build_providers, model_label
from core.llm.retry import RetryPolicy
from core.models import Action
from core.store.db import open_database
from core.store.tables import AGENTS, PROPOSALS
from tests.conftest import make_settings
from tests.desk_helpers import create
from tests.fake_llm_servers import FakeLLMServer, Request, Step, echo_rule_signal
from tests.fake_market import FakeMarket, real_frames

FAST = RetryPolicy(timeout_s=1.0, max_retries=2, backoff_s=0.0)
SLOW_REPLY = 3.0  # seconds: far past FAST's timeout


@pytest.fixture(scope="module")
def market() -> FakeMarket:
    return FakeMarket(real_frames(), 0)


@pytest.fixture(params=["gemini", "openai"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(request.param) as fake:
        yield fake


def provider_for(server: FakeLLMServer, policy: RetryPolicy = FAST, key: str | None = None) -> LLMProvider:
    key = server.api_key if key is None else key
    if server.protocol == "gemini":
        return GeminiProvider(key, "gemini-test", policy=policy, base_url=server.url, temperature=0.2)
    return OpenAICompatProvider(key, "grok-test", policy=policy, base_url=server.url, temperature=0.2)


def view(market: FakeMarket) -> AgentView:
    t = int(market.close_times()[2000])
    return AgentView(now_ms=t, market=market.at(t), equity=20_000.0)


def answer(**over: object) -> dict[str, object]:
    a: dict[str, object] = {
        "action": "open_long", "symbol": "BTCUSDT", "leverage": 5, "margin_fraction": 0.2,
        "stop_price": 1.0, "take_profit": None, "confidence": 0.6, "reasoning": "breakout holds",
    }
    a.update(over)
    return a


GOOD = json.dumps({"decisions": [answer()]})


# ------------------------------------------------------------------------------ protocol level


def test_well_formed_call_sends_schema_key_and_reads_tokens(server: FakeLLMServer) -> None:
    server.script(Step(text=GOOD))
    reply = provider_for(server).complete(SYSTEM, "decide now", SCHEMA)
    assert reply.text == GOOD and reply.attempts == 1 and reply.latency_ms > 0
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    (req,) = server.requests
    if server.protocol == "gemini":
        assert re.fullmatch(r"/v1beta/models/gemini-test:generateContent", req.path)
        assert req.headers["x-goog-api-key"] == server.api_key
        config = req.body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"] == SCHEMA
        assert req.body["systemInstruction"]["parts"][0]["text"] == SYSTEM
        assert (reply.provider, reply.finish_reason, reply.structured) == ("gemini", "STOP", "json_schema")
        assert reply.output_tokens == len(GOOD) // 4 + 7  # thinking tokens are billed as output
    else:
        assert req.path == "/v1/chat/completions"
        assert req.headers["authorization"] == f"Bearer {server.api_key}"
        fmt = req.body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
        assert req.body["messages"][0] == {"role": "system", "content": SYSTEM}
        assert (reply.provider, reply.finish_reason, reply.structured) == (
            "openai-compatible", "stop", "json_schema")
    assert "$ref" not in json.dumps(SCHEMA)  # inlined: some servers reject references


def test_a_server_that_refuses_json_schema_is_served_with_json_object() -> None:
    with FakeLLMServer("openai", reject_json_schema=True) as fake:
        provider = provider_for(fake)
        first = provider.complete(SYSTEM, "RULE_SIGNAL_JSON: " + GOOD, SCHEMA)
        second = provider.complete(SYSTEM, "RULE_SIGNAL_JSON: " + GOOD, SCHEMA)
    assert first.text == GOOD and first.structured == "json_object"
    assert "refused json_schema (HTTP 400" in first.notes
    assert second.structured == "json_object" and second.notes == ""
    kinds = [r.body["response_format"]["type"] for r in fake.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_429_and_500_are_retried_with_back_off(server: FakeLLMServer) -> None:
    server.script(Step(status=429), Step(status=503), Step(text=GOOD))
    reply = provider_for(server).complete(SYSTEM, "x", SCHEMA)
    assert reply.text == GOOD and reply.attempts == 3 and len(server.requests) == 3


def test_back_off_doubles_and_honours_retry_after_within_the_ceiling(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)
    policy = RetryPolicy(timeout_s=2.0, max_retries=4, backoff_s=0.2, max_backoff_s=3.0)
    server.script(Step(status=500), Step(status=500), Step(status=429, retry_after="2"),
                  Step(status=429, retry_after="60"), Step(text=GOOD))
    reply = provider_for(server, policy).complete(SYSTEM, "x", SCHEMA)
    assert reply.attempts == 5 and len(waits) == 4
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.4  # doubling, with jitter
    assert waits[2] == 2.0 and waits[3] == 3.0  # the server's wish, capped by our ceiling


@pytest.mark.parametrize("status", [429, 500])
def test_persistent_errors_fail_after_the_bounded_attempts(server: FakeLLMServer, status: int) -> None:
    server.script(*[Step(status=status)] * 5)
    with pytest.raises(LLMError, match=rf"HTTP {status}.*\(3 attempts\)"):
        provider_for(server).complete(SYSTEM, "x", SCHEMA)
    assert len(server.requests) == 3


def test_timeouts_are_retried_then_fail(server: FakeLLMServer) -> None:
    server.script(*[Step(text=GOOD, delay=SLOW_REPLY)] * 3)
    with pytest.raises(LLMError, match=r"timed out after 1 s \(3 attempts\)"):
        provider_for(server).complete(SYSTEM, "x", SCHEMA)


@pytest.mark.parametrize("usage", [{}, {"prompt_tokens": 5}])
def test_a_compatible_server_without_token_counts_still_costs_something(usage: dict) -> None:
    with FakeLLMServer("openai") as server:
        server.script(Step(text=GOOD, usage=usage))
        reply = provider_for(server).complete(SYSTEM, "x" * 400, SCHEMA)
    assert reply.text == GOOD and reply.output_tokens == (len(GOOD) + 3) // 4
    assert reply.input_tokens == (5 if usage else (len(SYSTEM) + 3) // 4 + 100)
    assert "no token counts" in reply.notes
    assert estimate_cost("grok-4-fast-non-reasoning", reply.input_tokens, reply.output_tokens,
                         {"grok-4-fast-non-reasoning": (0.2, 0.5)}) > 0


def test_a_timeout_then_an_answer_succeeds(server: FakeLLMServer) -> None:
    server.script(Step(text=GOOD, delay=SLOW_REPLY), Step(text=GOOD))
    reply = provider_for(server).complete(SYSTEM, "x", SCHEMA)
    assert reply.text == GOOD and reply.attempts == 2


def test_other_4xx_is_not_retried_and_the_key_is_never_repeated(server: FakeLLMServer) -> None:
    wrong = "sk-live-DO-NOT-PRINT-4242"
    with pytest.raises(LLMError) as caught:
        provider_for(server, key=wrong).complete(SYSTEM, "x", SCHEMA)
    message = str(caught.value)
    assert "HTTP 401" in message and "(1 attempt)" in message
    assert wrong not in message and "***" in message  # the fake server echoes the key it got
    assert len(server.requests) == 1


def test_no_candidate_is_an_empty_reply_with_its_reason(server: FakeLLMServer) -> None:
    server.script(Step(text=None))
    reply = provider_for(server).complete(SYSTEM, "x", SCHEMA)
    assert reply.text == ""
    assert reply.finish_reason == ("BLOCKED_SAFETY" if server.protocol == "gemini" else "stop")


def test_an_unreachable_server_is_an_llm_error() -> None:
    with FakeLLMServer("openai") as fake:
        url = fake.url
    provider = OpenAICompatProvider("k", "m", policy=RetryPolicy(0.3, 1, 0.0), base_url=url)
    with pytest.raises(LLMError, match=r"connection failed.*\(2 attempts\)"):
        provider.complete(SYSTEM, "x", SCHEMA)


# ------------------------------------------------------------------------------- agent level

WRAPPED = [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"Here is my decision:\n{GOOD}\nGood luck.",
]
BAD = [
    ("", "empty reply"),
    ("I would rather not say.", "no JSON"),
    (json.dumps({"decisions": [answer(leverage="lots")]}), "leverage"),
    (json.dumps({"decisions": [answer(confidence=[0.5])]}), "confidence"),
    (json.dumps({"decisions": [{"action": "open_long", "symbol": "BTCUSDT"}]}), "Field required"),
    (json.dumps({"decisions": [answer(margin_fraction=3.0)]}), "margin_fraction"),
    (json.dumps({"decisions": [answer(leverage=500)]}), "leverage"),
    (json.dumps({"decisions": [answer(symbol="DOGEUSDT")]}), "unknown symbol"),
    (json.dumps({"decisions": [answer(action="yolo")]}), "action"),
    ('{"decisions": [', "no JSON"),  # cut off at the output limit
]


@pytest.mark.parametrize("text", WRAPPED)
def test_well_formed_or_wrapped_replies_become_proposals(
    server: FakeLLMServer, market: FakeMarket, text: str
) -> None:
    server.script(Step(text=text))
    decision = LLMAgent(build_strategies()[0], provider_for(server)).decide(view(market))
    assert decision.failure is None
    (p,) = decision.proposals
    assert (p.symbol, p.action, p.leverage, p.margin_fraction) == ("BTCUSDT", Action.OPEN_LONG, 5, 0.2)
    assert p.ref_price > 0 and decision.raw_reply == text


@pytest.mark.parametrize(("text", "problem"), BAD)
def test_bad_replies_are_recorded_failures_with_the_raw_text(
    server: FakeLLMServer, market: FakeMarket, text: str, problem: str
) -> None:
    server.script(Step(text=text))
    decision = LLMAgent(build_strategies()[0], provider_for(server)).decide(view(market))
    assert decision.proposals == [] and decision.failure is not None
    assert problem in decision.failure and decision.raw_reply == text


@pytest.mark.parametrize("steps", [
    [Step(status=429)] * 3,
    [Step(status=500)] * 3,
    [Step(text=GOOD, delay=SLOW_REPLY)] * 3,
    [Step(status=400, message="bad request")],
])
def test_failed_calls_are_recorded_failures_not_holds(
    server: FakeLLMServer, market: FakeMarket, steps: list[Step]
) -> None:
    server.script(*steps)
    decision = LLMAgent(build_strategies()[0], provider_for(server)).decide(view(market))
    assert decision.proposals == [] and decision.note == ""
    assert decision.failure is not None and "call failed" in decision.failure


def test_a_model_that_agrees_trades_like_the_rules(server: FakeLLMServer, market: FakeMarket) -> None:
    samples = [int(t) for t in market.close_times()[400::400]]
    provider = provider_for(server)
    opened = 0
    for strategy in build_strategies():
        for t in samples:
            v = AgentView(now_ms=t, market=market.at(t), equity=20_000.0)
            rules = strategy.decide(v)
            model = LLMAgent(strategy, provider).decide(v)
            assert model.failure is None
            assert [p.model_dump() for p in model.proposals] == [p.model_dump() for p in rules.proposals]
            opened += len(model.proposals)
    assert opened > 0


# ------------------------------------------------------------------------------------ prompts

READS = {  # a value each strategy's rule reads, and the timeframe it reads it on
    "trend": ("4h", "adx_14"), "momentum": ("1h", "vol_sma_20"), "mean_reversion": ("1h", "zscore_20"),
    "scalper": ("15m", "rsi_7_prev"),
}


def test_each_strategy_prompt_carries_its_indicators_limits_signal_and_version(market: FakeMarket) -> None:
    t = int(market.close_times()[2000])
    versions = set()
    for strategy in build_strategies():
        v = AgentView(now_ms=t, market=market.at(t), equity=20_000.0)
        rules = strategy.decide(v)
        prompt = render(strategy.spec, v, rules, RiskLimits(max_margin_fraction=0.25))
        lines = dict(line.split(": ", 1) for line in prompt.user.splitlines() if ": " in line)
        values = json.loads(lines["Indicators (latest closed bars)"])  # strict JSON: no NaN
        signal = json.loads(lines["RULE_SIGNAL_JSON"])
        assert len(signal["decisions"]) == len(rules.proposals)
        assert prompt.version.startswith(PROMPT_VERSION + "/") and prompt.schema == SCHEMA
        versions.add(prompt.version)
        assert "margin at most 25% of equity" in prompt.user and "at most 5% of margin" in prompt.user
        stop_pct = 5 / strategy.spec.max_leverage
        assert f"at {strategy.spec.max_leverage}x the stop sits within {stop_pct:.2f}% of price" in prompt.user
        if strategy.spec.key == "arbitrage":
            spread = values["log_spreads"]["BTCUSDT/ETHUSDT"]
            assert set(spread) == {"z", "mean", "std"} and "BTCUSDT/ETHUSDT" in rules.note
        else:
            interval, name = READS[strategy.spec.key]
            features = v.market.features("BTCUSDT", interval)
            assert features is not None
            expected = features.prev("rsi_7") if name.endswith("_prev") else features[name]
            assert values["BTCUSDT"][interval][name] == pytest.approx(expected, rel=1e-5)
    assert len(versions) == 5


# ------------------------------------------------------------------------------------ factory


def keyed(**over: object) -> Settings:
    return make_settings(**{"agent_llm": "auto", "gemini_api_key": "g-key", "xai_api_key": "x-key",
                            **over})


def test_auto_without_keys_is_the_rules() -> None:
    settings = make_settings(agent_llm="auto")
    agents = build_agents(settings)
    assert not any(isinstance(a, LLMAgent) for a in agents)
    assert {model_label(settings, a.spec) for a in agents} == {"rules (no key)"}


def test_auto_puts_each_agent_on_its_roster_model_where_a_key_exists() -> None:
    settings = keyed(xai_api_key=None)
    agents = {a.spec.key: a for a in build_agents(settings)}
    gemini = [k for k, a in agents.items() if a.spec.model == "gemini"]
    grok = [k for k, a in agents.items() if a.spec.model == "grok"]
    assert gemini and grok
    for k in gemini:
        agent = agents[k]
        assert isinstance(agent, LLMAgent) and isinstance(agent.provider, GeminiProvider)
        assert model_label(settings, agent.spec) == "Gemini (gemini-2.5-flash)"
    for k in grok:
        assert not isinstance(agents[k], LLMAgent)
        assert model_label(settings, agents[k].spec) == "rules (no key)"


def test_grok_on_xai_or_on_a_local_openai_compatible_server() -> None:
    specs = [s.spec for s in build_strategies()]
    grok = next(s for s in specs if s.model == "grok")
    xai = keyed()
    provider = build_providers(xai, specs)[grok.key]
    assert isinstance(provider, OpenAICompatProvider) and provider.provider == "grok"
    assert model_label(xai, grok) == "Grok (grok-4-fast-non-reasoning)"
    local = keyed(xai_base_url="http://127.0.0.1:11434/v1", xai_model="qwen3:8b")
    provider = build_providers(local, specs)[grok.key]
    assert isinstance(provider, OpenAICompatProvider) and provider.provider == "openai-compatible"
    assert model_label(local, grok) == "OpenAI-compatible (qwen3:8b @ 127.0.0.1)"


def test_none_and_offline_modes() -> None:
    specs = [s.spec for s in build_strategies()]
    off = keyed(agent_llm="none")
    assert set(build_providers(off, specs).values()) == {None}
    assert model_label(off, specs[0]) == "rules (LLM off)"
    echo = keyed(agent_llm="offline")
    assert all(isinstance(p, EchoProvider) for p in build_providers(echo, specs).values())
    assert model_label(echo, specs[0]) == "offline (echo-rules)"


def test_keys_stay_secret_and_every_provider_setting_is_documented() -> None:
    settings = keyed(gemini_api_key="g-SECRET-1", xai_api_key="x-SECRET-2")
    shown = repr(settings) + str(settings.model_dump())
    assert "g-SECRET-1" not in shown and "x-SECRET-2" not in shown
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in ("AGENT_LLM", "GEMINI_API_KEY", "GEMINI_MODEL", "GEMINI_BASE_URL", "XAI_API_KEY",
                 "XAI_BASE_URL", "XAI_MODEL", "LLM_TIMEOUT_SECONDS", "LLM_MAX_RETRIES",
                 "LLM_RETRY_BACKOFF_SECONDS", "LLM_TEMPERATURE"):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name


# -------------------------------------------------------------------------------- engine tick


def misbehaving() -> object:
    """A model that cycles through every way a reply can go wrong, and sometimes agrees."""
    n = count()
    bad = [Step(text=t) for t, _ in BAD] + [Step(status=500), Step(status=429), Step(text=None),
                                            Step(text=GOOD, delay=SLOW_REPLY)]

    def behaviour(request: Request) -> Step:
        i = next(n)
        return echo_rule_signal(request) if i % 3 == 0 else bad[i % len(bad)]
    return behaviour


def test_engine_ticks_with_llm_agents_on_the_fake_servers(sqlite_url: str) -> None:
    with FakeLLMServer("gemini") as gemini, FakeLLMServer("openai") as grok:
        grok.default = misbehaving()  # type: ignore[assignment]
        settings = make_settings(
            database_url=sqlite_url, replay_start="2025-09-01", bars_per_tick=4, agent_llm="auto",
            gemini_api_key=gemini.api_key, gemini_base_url=gemini.url,
            xai_api_key=grok.api_key, xai_base_url=grok.url,
            llm_timeout_seconds=1.0, llm_max_retries=1, llm_retry_backoff_seconds=0.0,
        )
        engine = open_database(sqlite_url)
        session_id = create(engine, settings)
        desk = build_desk(settings, engine, session_id, lease=None)
        assert desk.concurrent_agents
        for _ in range(12):
            run_cycle(desk)  # no exception may escape a tick
        desk.db.close()
        calls = (len(gemini.requests), len(grok.requests))
    with engine.connect() as conn:
        rows = conn.execute(select(PROPOSALS.c.kind, PROPOSALS.c.error, PROPOSALS.c.raw_reply,
                                   AGENTS.c.key, AGENTS.c.model)
                            .join(AGENTS, AGENTS.c.id == PROPOSALS.c.agent_id)).all()
    assert calls[0] >= 12 * 3 and calls[1] >= 12 * 2
    models = {r.key: r.model for r in rows}
    assert models["trend"] == "Gemini (gemini-2.5-flash)"
    assert models["momentum"] == "OpenAI-compatible (grok-4-fast-non-reasoning @ 127.0.0.1)"
    on_gemini = [r for r in rows if r.key in ("trend", "mean_reversion", "arbitrage")]
    assert on_gemini and all(r.kind != "failure" for r in on_gemini)
    on_grok = [r for r in rows if r.key in ("momentum", "scalper")]
    failures = [r for r in on_grok if r.kind == "failure"]
    assert failures and any(r.kind != "failure" for r in on_grok)
    assert all(r.error for r in failures)
    assert any("invalid model reply" in r.error and r.raw_reply is not None for r in failures)
    assert any("call failed" in r.error for r in failures)
