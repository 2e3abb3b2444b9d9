"""The model path of an agent: prompt, reply, parsing, validation, and failures that are recorded,
never disguised as a hold. The offline provider must trade exactly like the rules."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.agents.base import AgentView
from core.agents.llm_agent import LLMAgent, build_prompt
from core.agents.strategies import build_strategies
from core.desk.engine import run_cycle
from core.desk.runtime import build_desk
from core.errors import LLMError
from core.llm.base import EchoProvider, LLMReply
from core.store.db import open_database
from core.store.tables import AGENTS, PROPOSALS
from tests.conftest import make_settings
from tests.desk_helpers import create, fingerprint, run_ticks
from tests.fake_market import FakeMarket, real_frames
from tests.test_desk import GOLDEN, GOLDEN_START


class Scripted:
    """A provider that answers with a fixed text (or raises), like a model that misbehaves."""

    provider = "scripted"
    model = "test"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        self.prompts.append(prompt)
        if isinstance(self.reply, Exception):
            raise self.reply
        return LLMReply(self.reply, 10, 10, 1.0)


@pytest.fixture(scope="module")
def market() -> FakeMarket:
    return FakeMarket(real_frames(), 0)


def _view(market: FakeMarket, t: int) -> AgentView:
    return AgentView(now_ms=t, market=market.at(t), equity=20_000.0)


def test_the_offline_provider_trades_exactly_like_the_rules(market: FakeMarket) -> None:
    samples = [int(t) for t in market.close_times()[400::97]]
    opened = 0
    for strategy in build_strategies():
        agent = LLMAgent(strategy, EchoProvider())
        for t in samples:
            rules = strategy.decide(_view(market, t))
            model = agent.decide(_view(market, t))
            assert model.failure is None
            assert [p.model_dump() for p in model.proposals] == [p.model_dump() for p in rules.proposals]
            if not rules.proposals:
                assert model.note.startswith("model held")
            opened += len(model.proposals)
    assert opened > 0


def _answer(**over: object) -> dict[str, object]:
    answer: dict[str, object] = {
        "action": "open_long", "symbol": "BTCUSDT", "leverage": 5, "margin_fraction": 0.2,
        "stop_price": 1.0, "take_profit": None, "confidence": 0.6, "reasoning": "breakout holds",
    }
    answer.update(over)
    return answer


GOOD = json.dumps({"decisions": [_answer()]})


@pytest.mark.parametrize("text", [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"Here is my decision:\n{GOOD}\nGood luck.",
])
def test_well_formed_fenced_or_prose_wrapped_replies_become_proposals(market: FakeMarket, text: str) -> None:
    t = int(market.close_times()[2000])
    decision = LLMAgent(build_strategies()[0], Scripted(text)).decide(_view(market, t))
    assert decision.failure is None
    (p,) = decision.proposals
    assert p.symbol == "BTCUSDT" and p.leverage == 5 and p.ref_price > 0


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty reply"),
    ("I would rather not say.", "no JSON"),
    (json.dumps({"decisions": [_answer(leverage="lots")]}), "leverage"),
    (json.dumps({"decisions": [{"action": "open_long", "symbol": "BTCUSDT"}]}), "Field required"),
    (json.dumps({"decisions": [_answer(margin_fraction=3.0)]}), "margin_fraction"),
    (json.dumps({"decisions": [_answer(action="yolo")]}), "action"),
    (json.dumps({"decisions": [_answer(symbol="DOGEUSDT")]}), "unknown symbol"),
    (json.dumps({"decisions": [_answer(stop_price=-5)]}), "stop_price"),
])
def test_bad_replies_are_failures_with_the_raw_text(market: FakeMarket, text: str, problem: str) -> None:
    t = int(market.close_times()[2000])
    decision = LLMAgent(build_strategies()[0], Scripted(text)).decide(_view(market, t))
    assert decision.proposals == [] and decision.failure is not None
    assert problem in decision.failure
    assert decision.raw_reply == text


def test_a_failed_call_is_a_failure_not_a_hold(market: FakeMarket) -> None:
    t = int(market.close_times()[2000])
    decision = LLMAgent(build_strategies()[0], Scripted(LLMError("timeout after 30 s"))).decide(
        _view(market, t))
    assert decision.failure == "scripted call failed: timeout after 30 s"
    assert decision.note == ""


def test_the_prompt_carries_the_signal_positions_and_limits(market: FakeMarket) -> None:
    t = int(market.close_times()[2000])
    strategy = build_strategies()[0]
    prompt = build_prompt(strategy.spec, _view(market, t), strategy.decide(_view(market, t)))
    assert "TrendMaster Alpha" in prompt and "max leverage 10x" in prompt
    assert "RULE_SIGNAL_JSON: {\"decisions\"" in prompt and "Equity: 20000.00 USDT" in prompt


def test_offline_model_path_reproduces_the_golden_replay(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start=GOLDEN_START, agent_llm="offline")
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    assert run_ticks(engine, settings, 600) == 600
    assert fingerprint(engine, session_id) == GOLDEN


def test_the_engine_records_model_failures_and_keeps_trading(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start="2025-09-01")
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    desk = build_desk(settings, engine, session_id, lease=None)
    broken = "Sure! {\"decisions\": [{\"action\": \"open_long\"}]}"
    desk.strategies["trend"] = LLMAgent(desk.strategies["trend"], Scripted(broken))
    desk.strategies["momentum"] = LLMAgent(desk.strategies["momentum"], Scripted(LLMError("429")))
    desk.concurrent_agents = True
    for _ in range(40):
        run_cycle(desk)
    desk.db.close()
    with engine.connect() as conn:
        rows = conn.execute(select(PROPOSALS.c.kind, PROPOSALS.c.error, PROPOSALS.c.raw_reply,
                                   AGENTS.c.key).join(AGENTS, AGENTS.c.id == PROPOSALS.c.agent_id)).all()
        failures = dict(conn.execute(select(AGENTS.c.key, AGENTS.c.llm_failures)).all())
    trend = [r for r in rows if r.key == "trend"]
    assert trend and all(r.kind == "failure" and r.raw_reply == broken for r in trend)
    assert all(r.kind == "failure" and "429" in r.error for r in rows if r.key == "momentum")
    assert failures["trend"] == len(trend) and failures["momentum"] > 0
    assert any(r.kind in ("proposal", "abstain") for r in rows if r.key == "mean_reversion")
