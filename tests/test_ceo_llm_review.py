"""The CEO's LLM reviewer may only tighten: the clamp as a hypothesis property (whatever the reviewer
says, the final plan is never looser than the hard rules' plan, and always a valid order), its
recorded rule ids, and the fail-closed policy on a real desk (a failed review rejects new risk,
closes still go through)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.ceo.model_reviewer import (
    LOOSEN_IGNORED,
    REVIEW_FAILED,
    CEOReviewer,
    ReviewAnswer,
    clamp_plan,
    review_verdict,
)
from core.ceo.rules import RiskContext, RiskLimits, evaluate
from core.desk.engine import run_cycle
from core.desk.runtime import build_desk
from core.errors import LLMError
from core.exchanges.symbols import default_filters
from core.llm.base import LLMReply
from core.models import Action, Proposal, RiskLevel, RiskVerdict, Verdict
from core.store.db import open_database
from core.store.tables import CEO_DECISIONS, LLM_CALLS, PROPOSALS
from tests.conftest import make_settings
from tests.desk_helpers import create

FILTERS = default_filters(("BTCUSDT", "ETHUSDT", "SOLUSDT"))


def hard_plan(symbol: str, price: float, long: bool, leverage: int, fraction: float,
              stop_pct: float) -> RiskVerdict:
    stop = price * (1 - stop_pct) if long else price * (1 + stop_pct)
    p = Proposal(agent="A", symbol=symbol, action=Action.OPEN_LONG if long else Action.OPEN_SHORT,
                 leverage=leverage, margin_fraction=fraction, stop_price=stop, reasoning="x",
                 ref_price=price)
    ctx = RiskContext(
        session_status="running", agent_status="active", agent_equity=20_000.0,
        agent_free_margin=20_000.0, agent_open_symbols=frozenset(), risk_level=RiskLevel.HIGH,
        agent_max_leverage=20, symbol_owner=None, filters=FILTERS[symbol], price=price,
        account_available=100_000.0, session_equity=100_000.0, gross_notional=0.0)
    return evaluate(p, ctx, RiskLimits())


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(min_value=0.0, max_value=200_000.0))
answers = st.builds(
    ReviewAnswer,
    decision=st.sampled_from(["approve", "tighten", "reject"]),
    leverage=st.one_of(st.none(), st.integers(min_value=-5, max_value=200)),
    margin=numbers, stop_price=numbers, reason=st.text(max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
       price=st.floats(min_value=50, max_value=120_000), long=st.booleans(),
       leverage=st.integers(1, 20), fraction=st.floats(0.01, 0.3),
       stop_pct=st.floats(0.001, 0.05), answer=answers)
def test_whatever_the_reviewer_says_the_plan_never_gets_looser(
        symbol: str, price: float, long: bool, leverage: int, fraction: float, stop_pct: float,
        answer: ReviewAnswer) -> None:
    verdict = hard_plan(symbol, price, long, leverage, fraction, stop_pct)
    if verdict.plan is None:
        return
    plan, f = verdict.plan, FILTERS[symbol]
    clamp = clamp_plan(plan, answer, f)
    final = review_verdict(verdict, clamp)
    assert final.rules[: len(verdict.rules)] == verdict.rules
    if final.plan is None:
        assert final.verdict is Verdict.REJECT
        return
    new = final.plan
    assert (new.symbol, new.side, new.ref_price, new.take_profit) == (
        plan.symbol, plan.side, plan.ref_price, plan.take_profit)
    assert 1 <= new.leverage <= plan.leverage
    assert new.quantity <= plan.quantity
    assert new.margin <= plan.margin * (1 + 1e-9)
    assert new.notional <= plan.notional * (1 + 1e-9)
    d = plan.side.sign
    assert d * new.stop_price >= d * plan.stop_price  # at least as tight
    assert d * new.stop_price < d * new.ref_price  # still on the loss side
    assert new.stop_distance * new.leverage <= 0.05 + 1e-12  # the 5%-of-margin rule still holds
    assert new.quantity % f.step_size == 0 and new.quantity >= f.min_qty
    assert float(new.quantity) * new.ref_price >= float(f.min_notional)
    assert math.isclose(new.stop_distance, abs(new.ref_price - new.stop_price) / new.ref_price)


def test_tightening_is_applied_and_loosening_is_ignored_and_recorded() -> None:
    verdict = hard_plan("BTCUSDT", 100_000.0, True, 10, 0.2, 0.004)
    plan = verdict.plan
    assert plan is not None and verdict.verdict is Verdict.APPROVE
    tighter = review_verdict(verdict, clamp_plan(plan, ReviewAnswer(
        decision="tighten", leverage=5, stop_price=plan.stop_price + 50, reason="choppy"), FILTERS["BTCUSDT"]))
    assert tighter.verdict is Verdict.MODIFY and tighter.plan is not None
    assert {"llm_review_leverage", "llm_review_stop", "llm_review_size"} <= set(tighter.rules)
    assert tighter.plan.leverage == 5 and tighter.plan.quantity == plan.quantity / 2
    assert tighter.changes["leverage"] == (10, 5)
    looser = review_verdict(verdict, clamp_plan(plan, ReviewAnswer(
        decision="tighten", leverage=20, margin=plan.margin * 3, stop_price=plan.stop_price - 500),
        FILTERS["BTCUSDT"]))
    assert looser.verdict is Verdict.APPROVE and looser.plan == plan
    assert looser.rules == [LOOSEN_IGNORED] and looser.reason.count(f"[{LOOSEN_IGNORED}]") == 3
    rejected = review_verdict(verdict, clamp_plan(plan, ReviewAnswer(decision="reject", reason="news"),
                                                  FILTERS["BTCUSDT"]))
    assert rejected.verdict is Verdict.REJECT and rejected.plan is None
    assert "llm_review_reject" in rejected.rules and "news" in rejected.reason


def test_a_tightened_plan_below_the_venue_minimum_is_rejected_not_sent() -> None:
    verdict = hard_plan("BTCUSDT", 100_000.0, True, 10, 0.2, 0.004)
    assert verdict.plan is not None
    out = review_verdict(verdict, clamp_plan(verdict.plan, ReviewAnswer(decision="tighten", margin=0.5),
                                             FILTERS["BTCUSDT"]))
    assert out.verdict is Verdict.REJECT and "llm_review_min_notional" in out.rules


class Reviewer:
    provider, model = "scripted", "reviewer-test"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        if isinstance(self.reply, Exception):
            raise self.reply
        return LLMReply(self.reply, 100, 20, 5.0)


def test_a_failed_or_nonsense_review_rejects_new_risk() -> None:
    verdict = hard_plan("ETHUSDT", 4_000.0, False, 5, 0.2, 0.005)
    p = Proposal(agent="A", symbol="ETHUSDT", action=Action.OPEN_SHORT, leverage=5,
                 margin_fraction=0.2, stop_price=4020.0, reasoning="x", ref_price=4000.0)
    for reply in (LLMError("HTTP 500 after 3 attempts"), "not json", '{"decision": "maybe"}'):
        out, call = CEOReviewer(Reviewer(reply)).review(p, verdict, FILTERS["ETHUSDT"])
        assert out.verdict is Verdict.REJECT and out.rules[-1] == REVIEW_FAILED and out.plan is None
        assert call is not None and call.error and call.role == "ceo_review"
    out, call = CEOReviewer(None, "no API key").review(p, verdict, FILTERS["ETHUSDT"])
    assert out.rules[-1] == REVIEW_FAILED and "no API key" in out.reason and call is None
    close = Proposal(agent="A", symbol="ETHUSDT", action=Action.CLOSE, reasoning="x", ref_price=4000.0)
    approve = RiskVerdict(Verdict.APPROVE, [], {}, "close approved")
    assert CEOReviewer(Reviewer(LLMError("down"))).review(close, approve, FILTERS["ETHUSDT"]) == (approve, None)


def test_on_the_desk_a_failing_reviewer_blocks_opens_but_not_closes(sqlite_url: str) -> None:
    settings_ = make_settings(database_url=sqlite_url, replay_start="2025-10-08",
                              ceo_llm_review=True, ceo_llm_provider="offline")
    engine = open_database(sqlite_url)
    sid = create(engine, settings_)
    desk = build_desk(settings_, engine, sid, lease=None)
    assert desk.llm is not None and desk.llm.reviewer is not None
    for _ in range(150):  # the offline reviewer approves the hard-rule plans: positions open
        run_cycle(desk)
    switch_ms = desk.ledger.session.clock_ms
    desk.llm.reviewer.provider = Reviewer(LLMError("HTTP 503 after 3 attempts"))
    for _ in range(350):
        run_cycle(desk)
    desk.db.close()
    with engine.connect() as conn:
        after = conn.execute(
            select(PROPOSALS.c.action, CEO_DECISIONS.c.verdict, CEO_DECISIONS.c.rules,
                   CEO_DECISIONS.c.llm_call_id)
            .join(PROPOSALS, PROPOSALS.c.id == CEO_DECISIONS.c.proposal_id)
            .where(CEO_DECISIONS.c.ts_ms > switch_ms)).all()
        before = conn.execute(
            select(CEO_DECISIONS.c.llm_call_id, CEO_DECISIONS.c.verdict)
            .where(CEO_DECISIONS.c.ts_ms <= switch_ms, CEO_DECISIONS.c.llm_call_id.is_not(None))).all()
        failed_calls = conn.execute(select(LLM_CALLS.c.error).where(
            LLM_CALLS.c.role == "ceo_review", LLM_CALLS.c.agent_id.is_(None),
            LLM_CALLS.c.error.is_not(None))).all()
    assert before and all(v in ("approve", "modify") for _, v in before)
    opens = [r for r in after if r.action in ("open_long", "open_short")]
    closes = [r for r in after if r.action == "close"]
    assert opens and all(r.verdict == "reject" for r in opens)
    assert any(REVIEW_FAILED in r.rules and r.llm_call_id is not None for r in opens)
    assert closes and all(r.verdict == "approve" for r in closes)
    assert failed_calls and all("503" in r.error for r in failed_calls)


class ByPrompt:
    """Rejects plans on ETHUSDT, approves the rest."""

    provider, model = "scripted", "reviewer-test"

    def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
        reject = "ETHUSDT" in prompt.splitlines()[0]
        return LLMReply('{"decision": "%s", "reason": "spread too wide"}'
                        % ("reject" if reject else "approve"), 50, 10, 3.0)


def test_one_reviewed_leg_rejected_rejects_the_pair_and_a_spent_budget_skips_or_blocks(
        sqlite_url: str) -> None:
    settings_ = make_settings(database_url=sqlite_url, ceo_llm_review=True, ceo_llm_provider="offline")
    engine = open_database(sqlite_url)
    desk = build_desk(settings_, engine, create(engine, settings_), lease=None)
    assert desk.llm is not None and desk.llm.reviewer is not None
    desk.llm.reviewer.provider = ByPrompt()
    agent = next(iter(desk.ledger.agents.values()))
    legs = [hard_plan("BTCUSDT", 100_000.0, True, 5, 0.1, 0.005),
            hard_plan("ETHUSDT", 4_000.0, False, 5, 0.1, 0.005)]
    props = [Proposal(agent="A", symbol=s, action=a, leverage=5, margin_fraction=0.1,
                      stop_price=stop, reasoning="pair", ref_price=price, group="g1")
             for s, a, stop, price in (("BTCUSDT", Action.OPEN_LONG, 99_500.0, 100_000.0),
                                       ("ETHUSDT", Action.OPEN_SHORT, 4_020.0, 4_000.0))]
    out = desk.llm.review(desk, agent, props, legs)
    (btc, btc_call), (eth, eth_call) = out
    assert btc.verdict is eth.verdict is Verdict.REJECT and btc.plan is eth.plan is None
    assert btc.rules[-1] == "pair_leg_rejected" and "llm_review_reject" in eth.rules
    assert btc_call is not None and eth_call is not None and btc_call is not eth_call
    desk.llm.budget.spent = desk.llm.budget.daily_usd  # the day's budget is spent
    (skipped, none), = desk.llm.review(desk, agent, props[:1], legs[:1])
    assert none is None and skipped.plan == legs[0].plan and skipped.rules[-1] == "llm_review_skipped_budget"
    desk.llm.budget.mode = "stop"
    (blocked, _), = desk.llm.review(desk, agent, props[:1], legs[:1])
    assert blocked.verdict is Verdict.REJECT and blocked.rules[-1] == REVIEW_FAILED
    desk.db.close()
