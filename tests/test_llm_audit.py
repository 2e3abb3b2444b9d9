"""The LLM audit trail: every call stored (good, failed or invalid) and chained to the trades it
led to; cost per call from the price table; the daily budget and its fallback; and the rule-only
desk untouched (no rows, no services)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from core import queries
from core.agents.llm_agent import LLMAgent
from core.agents.strategies import build_strategies
from core.config import DEFAULT_PRICES
from core.desk.engine import run_cycle
from core.desk.llm_services import build_llm_services
from core.desk.runtime import build_desk
from core.errors import LLMError
from core.llm.base import EchoProvider, LLMReply
from core.llm.budget import DAY_MS
from core.llm.cost import estimate_cost, price_of
from core.store.db import open_database
from core.store.tables import CEO_DECISIONS, LLM_CALLS, POSITIONS, PROPOSALS
from tests.conftest import make_settings
from tests.desk_helpers import count, create, fingerprint, run_ticks
from tests.test_desk import GOLDEN, GOLDEN_START


class Priced(EchoProvider):
    """The offline echo (so it trades like the rules) billed as a real model with many tokens."""

    provider = "scripted"
    model = "gemini-2.5-pro"

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        reply = super().complete(system, prompt, schema)
        return LLMReply(reply.text, 1_000_000, 100_000, 2.0, attempts=2, model=self.model)


class Scripted:
    provider, model = "scripted", "test-model"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        if isinstance(self.reply, Exception):
            raise self.reply
        return LLMReply(self.reply, 10, 5, 1.0)


def test_cost_is_tokens_times_the_models_price_and_unknown_models_pay_the_most() -> None:
    assert estimate_cost("gemini-2.5-flash", 1_000_000, 1_000_000, DEFAULT_PRICES) == 0.30 + 2.50
    assert estimate_cost("gemini-2.5-pro", 2_000, 1_000, DEFAULT_PRICES) == pytest.approx(
        (2_000 * 1.25 + 1_000 * 10.0) / 1e6)
    assert estimate_cost("echo-rules", 10**9, 10**9, DEFAULT_PRICES) == 0.0
    assert price_of("some-new-model", DEFAULT_PRICES) == max(DEFAULT_PRICES.values(), key=sum)
    assert price_of("x", {}) == (0.0, 0.0)


def test_a_rule_only_desk_makes_no_llm_rows_and_has_no_services(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start=GOLDEN_START)
    assert build_llm_services(settings, build_strategies()) is None
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    run_ticks(engine, settings, 120)
    assert count(engine, LLM_CALLS) == 0
    assert count(engine, PROPOSALS, PROPOSALS.c.llm_call_id.is_not(None)) == 0
    assert queries.agent_llm_stats(engine, sid) == {}
    assert queries.session_llm(engine, sid, 10.0)["calls"] == 0


def test_the_audit_chain_leads_from_every_trade_back_to_its_prompt_and_reply(db_url: str) -> None:
    settings = make_settings(database_url=db_url, replay_start=GOLDEN_START, agent_llm="offline")
    engine = open_database(db_url)
    sid = create(engine, settings)
    run_ticks(engine, settings, 300)
    with engine.connect() as conn:
        trade_ids = list(conn.scalars(select(POSITIONS.c.id).where(
            POSITIONS.c.session_id == sid, POSITIONS.c.status == "closed").order_by(POSITIONS.c.id)))
        unlinked = conn.scalar(select(func.count()).select_from(PROPOSALS).where(
            PROPOSALS.c.session_id == sid, PROPOSALS.c.llm_call_id.is_(None)))
    assert len(trade_ids) >= 5 and unlinked == 0  # every decision went through a stored call
    for trade_id in trade_ids:
        chain = queries.trade_chain(engine, sid, trade_id)
        assert chain is not None
        pos, decision, proposal, call = (chain["position"], chain["decision"], chain["proposal"],
                                         chain["llm_call"])
        assert not chain["fills"].empty and set(chain["fills"]["client_order_id"]) <= set(
            chain["orders"]["client_order_id"])
        assert decision["verdict"] in ("approve", "modify") and proposal["symbol"] == pos["symbol"]
        assert decision["final_leverage"] == pos["leverage"]
        assert (call["role"], call["provider"], call["model"]) == ("agent", "offline", "echo-rules")
        assert call["prompt_version"].startswith("agent-")
        assert call["error"] is None and call["validation_errors"] is None
        assert call["prompt_sha256"] == hashlib.sha256(
            f"{call['system']}\n\n{call['prompt']}".encode()).hexdigest()
        signal = call["prompt"].split("RULE_SIGNAL_JSON: ", 1)[1].splitlines()[0]
        assert call["raw_reply"] == signal and call["parsed"] == json.loads(signal)
        asked = [d for d in call["parsed"]["decisions"] if d["symbol"] == proposal["symbol"]]
        assert asked and asked[0]["leverage"] == proposal["leverage"]
        assert asked[0]["action"] == proposal["action"] and call["input_tokens"] > 0
    assert queries.trade_chain(engine, sid, 10**9) is None
    engine.dispose()


def test_failed_calls_and_invalid_replies_are_stored_rows_and_show_as_a_failure_rate(
        sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start="2025-09-01")
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    desk = build_desk(settings, engine, sid, lease=None)
    broken = "Sure! {\"decisions\": [{\"action\": \"open_long\"}]}"
    desk.strategies["trend"] = LLMAgent(desk.strategies["trend"], Scripted(broken))
    desk.strategies["momentum"] = LLMAgent(desk.strategies["momentum"], Scripted(LLMError("HTTP 429")))
    desk.concurrent_agents = True
    for _ in range(40):
        run_cycle(desk)
    desk.db.close()
    with engine.connect() as conn:
        rows = conn.execute(
            select(PROPOSALS.c.kind, PROPOSALS.c.raw_reply, LLM_CALLS.c.raw_reply.label("call_raw"),
                   LLM_CALLS.c.error, LLM_CALLS.c.validation_errors, LLM_CALLS.c.agent_id)
            .join(LLM_CALLS, LLM_CALLS.c.id == PROPOSALS.c.llm_call_id)).all()
    stats = queries.agent_llm_stats(engine, sid)
    agents = {a["key"]: a["id"] for a in queries.agent_stats(engine, sid)}
    trend = [r for r in rows if r.agent_id == agents["trend"]]
    momentum = [r for r in rows if r.agent_id == agents["momentum"]]
    assert trend and all(r.kind == "failure" and r.call_raw == broken == r.raw_reply for r in trend)
    assert all("invalid model reply" in r.error and "Field required" in r.validation_errors
               for r in trend)
    assert momentum and all(r.call_raw is None and "429" in r.error for r in momentum)
    for key, n in (("trend", len(trend)), ("momentum", len(momentum))):
        assert stats[agents[key]]["llm_calls"] == stats[agents[key]]["llm_call_failures"] == n
        assert stats[agents[key]]["failure_rate"] == 1.0
    assert agents["scalper"] not in stats  # a rule agent makes no calls


def _priced_agents(settings: Any, params: Any = None) -> list:
    return [LLMAgent(s, Priced()) for s in build_strategies(params=params)]


def _calls_by_day(engine: Engine, sid: int) -> dict[int, set[int]]:
    with engine.connect() as conn:
        ticks = conn.execute(select(LLM_CALLS.c.tick_ms).where(LLM_CALLS.c.session_id == sid)).all()
    days: dict[int, set[int]] = {}
    for (t,) in ticks:
        days.setdefault(t // DAY_MS, set()).add(t)
    return days


def test_a_spent_budget_falls_back_to_the_rules_and_is_logged_once_a_day(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.desk.runtime.build_agents", _priced_agents)
    settings = make_settings(database_url=sqlite_url, replay_start=GOLDEN_START,
                             llm_daily_budget_usd=1.0, llm_budget_exhausted="rules")
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    assert run_ticks(engine, settings, 600) == 600
    assert fingerprint(engine, sid) == GOLDEN  # on its rules, the desk trades exactly the same
    days = _calls_by_day(engine, sid)
    assert len(days) >= 6 and all(len(ticks) == 1 for ticks in days.values())  # first tick spends it
    with engine.connect() as conn:
        logged = Counter(t // DAY_MS for t in conn.scalars(select(CEO_DECISIONS.c.ts_ms).where(
            CEO_DECISIONS.c.kind == "llm_budget")))
        costs = conn.execute(select(LLM_CALLS.c.cost_usd, LLM_CALLS.c.attempts)).all()
    assert logged == Counter(dict.fromkeys(days, 1))
    assert all(c == pytest.approx(1.25 + 1.0) and a == 2 for c, a in costs)
    info = queries.session_llm(engine, sid, 1.0)
    assert info["budget_exhausted"] and info["budget_left_usd"] == 0.0
    assert info["cost_usd"] == pytest.approx(len(costs) * 2.25)


def test_with_stop_a_spent_budget_stops_proposals_and_a_restart_remembers_the_spend(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.desk.runtime.build_agents", _priced_agents)
    settings = make_settings(database_url=sqlite_url, replay_start=GOLDEN_START,
                             llm_daily_budget_usd=1.0, llm_budget_exhausted="stop")
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    for _ in range(3):  # three engine restarts within the first day
        run_ticks(engine, settings, 20)
    days = _calls_by_day(engine, sid)
    assert len(days) == 1 and len(next(iter(days.values()))) == 1
    with engine.connect() as conn:
        first_call = min(next(iter(days.values())))
        later = conn.execute(select(PROPOSALS.c.kind, PROPOSALS.c.reasoning).where(
            PROPOSALS.c.tick_ms > first_call)).all()
        logs = conn.scalar(select(func.count()).select_from(CEO_DECISIONS).where(
            CEO_DECISIONS.c.kind == "llm_budget"))
    assert later and all(r.kind == "abstain" and "budget spent" in r.reasoning for r in later)
    assert logs == 1
