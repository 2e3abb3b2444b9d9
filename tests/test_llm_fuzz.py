"""Arbitrary model replies through the parser, the agent and the CEO's hard rules.

Whatever a model says (free text, broken or truncated JSON, answer-shaped JSON with wrong types,
NaN, infinities, negative or absurd numbers, unknown symbols, extra keys), ``parse_answers`` raises
nothing but ``LLMError``, ``LLMAgent.decide`` never raises and ends as proposals or a recorded
failure, and no plan the CEO approves breaks a hard rule (the invariants of tests/test_risk.py).
A smaller run sends the replies through the real SDKs and the loopback servers as well.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.agents.base import AgentView
from core.agents.llm_agent import LLMAgent
from core.agents.strategies import build_strategies
from core.ceo.rules import evaluate
from core.errors import LLMError
from core.llm.base import LLMReply, parse_answers
from core.llm.gemini import GeminiProvider
from core.llm.openai_compat import OpenAICompatProvider
from core.llm.retry import RetryPolicy
from core.models import Action, AgentDecision, Verdict
from tests.fake_llm_servers import FakeLLMServer, Step
from tests.fake_market import FakeMarket, real_frames
from tests.test_risk import assert_caps, contexts, filters_for, limits_st

ACTIONS = ["open_long", "open_short", "close", "hold"]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "btcusdt", "DOGEUSDT", ""]


@cache
def market_at() -> tuple[FakeMarket, int]:
    market = FakeMarket(real_frames(), 0)
    return market, int(market.close_times()[2000])


def agent_view() -> AgentView:
    market, t = market_at()
    return AgentView(now_ms=t, market=market.at(t), equity=20_000.0)


class Scripted:
    provider = "scripted"
    model = "fuzz"

    def __init__(self, text: str) -> None:
        self.text = text

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        return LLMReply(self.text, 1, 1, 0.1)


junk = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                 st.floats(allow_nan=True, allow_infinity=True))
ratio = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 0.3, 0.05]))


def prices() -> dict[str, float]:
    view = agent_view()
    return {s: view.market.price(s) for s in view.market.symbols}


@st.composite
def answer_like(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible answer at today's prices, then up to three fields broken, dropped or absurd."""
    symbol = draw(st.sampled_from(sorted(prices())))
    price = prices()[symbol]
    action = draw(st.sampled_from(ACTIONS))
    sign = -1 if action == "open_short" else 1
    out: dict[str, Any] = {
        "action": action,
        "symbol": symbol,
        "leverage": draw(st.integers(1, 25)),
        "margin_fraction": draw(st.floats(0.001, 0.5)),
        "stop_price": price * (1 - sign * draw(st.floats(0.0005, 0.02))),
        "take_profit": draw(st.one_of(st.none(), st.floats(0.001, 0.2).map(lambda f: price * (1 + sign * f)))),
        "confidence": draw(st.floats(0, 1)),
        "reasoning": draw(st.text(min_size=1, max_size=40)),
    }
    broken: dict[str, st.SearchStrategy[Any]] = {
        "action": st.one_of(st.sampled_from(ACTIONS), junk),
        "symbol": st.one_of(st.sampled_from(SYMBOLS), junk),
        "leverage": st.one_of(st.integers(-3, 200), junk),
        "margin_fraction": st.one_of(ratio, junk),
        "stop_price": st.one_of(st.floats(0.5, 1.5).map(lambda f: price * f), st.none(), junk),
        "take_profit": st.one_of(st.floats(0.5, 1.5).map(lambda f: price * f), junk),
        "confidence": st.one_of(ratio, junk),
        "reasoning": st.one_of(st.just(""), st.text(min_size=1990, max_size=2010), junk),
    }
    damaged = max(0, draw(st.integers(0, 6)) - 3)  # intact more often than not
    for name in draw(st.lists(st.sampled_from(sorted(broken)), min_size=damaged, max_size=damaged,
                              unique=True)):
        if draw(st.booleans()):
            out[name] = draw(broken[name])
        else:
            del out[name]
    if not draw(st.integers(0, 9)):
        out[draw(st.text(max_size=6))] = draw(junk)
    return out


@st.composite
def replies(draw: st.DrawFn) -> str:
    body = {"decisions": draw(st.lists(answer_like(), max_size=3))}
    if not draw(st.integers(0, 19)):
        body = draw(st.one_of(junk, st.dictionaries(st.text(max_size=5), junk, max_size=3)))
    text = json.dumps(body)
    wrap = draw(st.sampled_from(["bare"] * 5 + ["fence", "prose", "cut"]))
    if wrap == "fence":
        text = f"```json\n{text}\n```"
    elif wrap == "prose":
        text = f"{draw(st.text(max_size=20))} {text} {draw(st.text(max_size=20))}"
    elif wrap == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text


any_reply = st.one_of(st.text(), replies(), replies())


def judge_everything(decision: AgentDecision, data: st.DataObject) -> int:
    """Send each proposal to the CEO under drawn contexts and limits; check every approval."""
    approved = 0
    for p in decision.proposals:
        assert p.symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
        assert math.isfinite(p.ref_price) and p.ref_price > 0
        c = data.draw(contexts(data.draw(filters_for(p.symbol, p.ref_price)), p.ref_price))
        if data.draw(st.booleans()):  # half the time past the gates, so the sizing rules run
            c = replace(c, session_status="running", agent_status="active", symbol_owner=None,
                        agent_open_symbols=frozenset(), agent_free_margin=abs(c.agent_free_margin),
                        account_available=abs(c.account_available), gross_notional=0.0)
        limits = data.draw(limits_st)
        v = evaluate(p, c, limits)
        if v.verdict is Verdict.REJECT or p.action is Action.CLOSE:
            assert v.plan is None
            continue
        assert v.plan is not None
        assert_caps(p, c, limits, v.plan)
        approved += 1
    return approved


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_reply, data=st.data())
def test_any_reply_ends_as_proposals_or_a_failure_and_no_approval_breaks_a_cap(
    text: str, data: st.DataObject
) -> None:
    with contextlib.suppress(LLMError):  # the only exception it may raise
        parse_answers(text)
    decision = LLMAgent(build_strategies()[0], Scripted(text)).decide(agent_view())
    if decision.failure is not None:
        assert decision.proposals == [] and decision.raw_reply == text
        return
    judge_everything(decision, data)


def test_the_generator_reaches_approved_plans() -> None:
    """The property above is only meaningful if some fuzzed replies get through to sizing."""
    approved = 0

    @settings(max_examples=1000, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(text=replies(), data=st.data())
    def run(text: str, data: st.DataObject) -> None:
        nonlocal approved
        decision = LLMAgent(build_strategies()[0], Scripted(text)).decide(agent_view())
        approved += judge_everything(decision, data)

    run()
    assert approved > 0


@pytest.fixture(scope="module")
def sdk_agents() -> Iterator[list[tuple[FakeLLMServer, LLMAgent]]]:
    policy = RetryPolicy(timeout_s=5.0, max_retries=0, backoff_s=0.0)
    with FakeLLMServer("gemini") as gemini, FakeLLMServer("openai") as openai:
        yield [
            (gemini, LLMAgent(build_strategies()[0],
                              GeminiProvider(gemini.api_key, "g", policy=policy, base_url=gemini.url))),
            (openai, LLMAgent(build_strategies()[0],
                              OpenAICompatProvider(openai.api_key, "o", policy=policy, base_url=openai.url))),
        ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_reply, data=st.data())
def test_any_reply_through_the_real_sdks(
    sdk_agents: list[tuple[FakeLLMServer, LLMAgent]], text: str, data: st.DataObject
) -> None:
    for server, agent in sdk_agents:
        server.script(Step(text=text))
        decision = agent.decide(agent_view())
        assert decision.raw_reply == text  # the SDK delivered the text unchanged
        if decision.failure is None:
            judge_everything(decision, data)
        else:
            assert decision.proposals == []


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # nesting past the recursion limit
    '{"decisions": [' + '{"a": ' * 3000 + "1" + "}" * 3000 + "]}",
    '{"decisions": [{"leverage": ' + "9" * 5000 + "}]}",  # past int's digit limit
    '{"decisions": [{"action": "open_long", "symbol": "BTCUSDT", "leverage": 5, "margin_fraction": '
    '0.1, "stop_price": Infinity, "confidence": 0.5, "reasoning": "x"}]}',  # JSON extensions
    '{"decisions": [{"action": "open_long", "symbol": "BTCUSDT", "leverage": 5, "margin_fraction": '
    '0.1, "stop_price": 1.0, "confidence": NaN, "reasoning": "x"}]}',
    "\ufeff\x00" + "x" * 1_000_000,
])
def test_pathological_replies_are_failures(text: str) -> None:
    with pytest.raises(LLMError):
        parse_answers(text)
    decision = LLMAgent(build_strategies()[0], Scripted(text)).decide(agent_view())
    assert decision.failure is not None and decision.proposals == []
