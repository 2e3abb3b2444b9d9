"""The CEO's hard rules: one hand-computed test per rule id, and hypothesis properties that no
approved plan ever breaks a cap, whatever the proposal and the context."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.agents.roster import RISK_LEVERAGE_CAP
from core.ceo.rules import RiskContext, RiskLimits, evaluate, evaluate_group, with_open
from core.config import load_settings
from core.models import Action, OrderPlan, PositionSide, Proposal, RiskLevel, SymbolFilters, Verdict

AGENT = "TrendMaster Alpha"
OTHER = "Momentum Hunter"
LIMITS = RiskLimits()
BTC = SymbolFilters(
    symbol="BTCUSDT",
    tick_size=Decimal("0.1"),
    step_size=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    max_qty=Decimal("1000"),
    min_notional=Decimal("5"),
    max_leverage=125,
    maint_margin_rate=Decimal("0.004"),
)
ETH = replace(
    BTC,
    symbol="ETHUSDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.01"),
    min_qty=Decimal("0.01"),
)


def ctx(**over: Any) -> RiskContext:
    base: dict[str, Any] = {
        "session_status": "running",
        "agent_status": "active",
        "agent_equity": 10_000.0,
        "agent_free_margin": 10_000.0,
        "agent_open_symbols": frozenset(),
        "risk_level": RiskLevel.MEDIUM,
        "agent_max_leverage": 10,
        "symbol_owner": None,
        "filters": BTC,
        "price": 100_000.0,
        "account_available": 100_000.0,
        "session_equity": 100_000.0,
        "gross_notional": 0.0,
    }
    return RiskContext(**{**base, **over})


def prop(**over: Any) -> Proposal:
    base: dict[str, Any] = {
        "agent": AGENT,
        "symbol": "BTCUSDT",
        "action": Action.OPEN_LONG,
        "leverage": 5,
        "margin_fraction": 0.2,
        "stop_price": 99_500.0,
        "take_profit": 103_000.0,
        "reasoning": "test",
        "ref_price": 100_000.0,
    }
    return Proposal(**{**base, **over})


# --------------------------------------------------------------------------------------------------
# Approve, and the plan it carries


def test_clean_proposal_is_approved_with_exact_plan() -> None:
    v = evaluate(prop(), ctx(), LIMITS)
    assert v.verdict is Verdict.APPROVE
    assert v.rules == [] and v.changes == {}
    assert v.reason.startswith("approved: LONG BTCUSDT 5x, margin 2,000.00")
    plan = v.plan
    assert plan is not None
    # margin 0.2 × 10,000 = 2,000; notional 10,000 at 100,000 → 0.1 BTC
    assert plan.quantity == Decimal("0.100")
    assert plan.margin == pytest.approx(2_000.0)
    assert plan.side is PositionSide.LONG and plan.leverage == 5
    assert plan.stop_price == 99_500.0 and plan.stop_distance == pytest.approx(0.005)
    assert plan.take_profit == 103_000.0 and plan.ref_price == 100_000.0


def test_quantity_rounds_down_and_margin_is_recomputed() -> None:
    # 0.2345 × 10,000 × 5 / 100,000 = 0.11725 BTC → 0.117; margin = 0.117 × 100,000 / 5 = 2,340
    v = evaluate(prop(margin_fraction=0.2345), ctx(), LIMITS)
    assert v.verdict is Verdict.APPROVE and v.plan is not None
    assert v.plan.quantity == Decimal("0.117")
    assert v.plan.margin == pytest.approx(2_340.0)


def test_stop_and_take_profit_round_to_tick_safely() -> None:
    long = evaluate(prop(stop_price=99_123.45, take_profit=101_234.56), ctx(), LIMITS)
    assert long.plan is not None
    assert long.plan.stop_price == 99_123.5  # toward the price: tighter
    assert long.plan.take_profit == 101_234.6  # away from the price
    short = evaluate(
        prop(action=Action.OPEN_SHORT, stop_price=100_876.55, take_profit=98_765.43), ctx(), LIMITS
    )
    assert short.plan is not None and short.plan.side is PositionSide.SHORT
    assert short.plan.stop_price == 100_876.5
    assert short.plan.take_profit == 98_765.4
    assert short.plan.stop_distance == pytest.approx(876.5 / 100_000)


# --------------------------------------------------------------------------------------------------
# Status, closes, holds


@pytest.mark.parametrize(
    ("over", "rule"),
    [
        ({"session_status": "paused"}, "session_status"),
        ({"agent_status": "paused"}, "agent_status"),
        ({"agent_status": "stopped"}, "agent_status"),
        ({"session_status": "halted"}, "session_status"),
    ],
)
def test_no_new_risk_unless_running_and_active(over: dict[str, str], rule: str) -> None:
    v = evaluate(prop(), ctx(**over), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == [rule] and v.plan is None
    assert rule in v.reason


def test_close_is_approved_when_held_even_if_paused() -> None:
    held = ctx(
        session_status="paused",
        agent_status="paused",
        agent_open_symbols=frozenset({"BTCUSDT"}),
        symbol_owner=AGENT,
    )
    v = evaluate(prop(action=Action.CLOSE, stop_price=None), held, LIMITS)
    assert v.verdict is Verdict.APPROVE and v.plan is None
    assert v.reason == "close approved: risk-reducing"


def test_close_without_position_is_rejected() -> None:
    v = evaluate(prop(action=Action.CLOSE), ctx(symbol_owner=OTHER), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["no_position"]


def test_hold_is_not_a_trade() -> None:
    v = evaluate(prop(action=Action.HOLD), ctx(), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["not_a_trade"]


# --------------------------------------------------------------------------------------------------
# invalid_proposal and take_profit_side


@pytest.mark.parametrize(
    ("p_over", "c_over"),
    [
        ({"stop_price": None}, {}),
        ({"stop_price": 100_500.0}, {}),  # long stop above price
        ({"action": Action.OPEN_SHORT, "stop_price": 99_500.0}, {}),  # short stop below price
        ({"stop_price": 99_999.99}, {}),  # rounds up onto the price at tick 0.1
        ({"margin_fraction": 0.0}, {}),
        ({"stop_price": math.inf}, {}),
        ({}, {"price": math.nan}),
        ({}, {"price": 0.0}),
        ({}, {"agent_equity": math.inf}),
    ],
)
def test_invalid_proposal_is_rejected(p_over: dict[str, Any], c_over: dict[str, Any]) -> None:
    v = evaluate(prop(**p_over), ctx(**c_over), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules[-1] == "invalid_proposal" and v.plan is None


def test_wrong_side_stop_is_never_flipped() -> None:
    v = evaluate(prop(action=Action.OPEN_SHORT, stop_price=99_000.0), ctx(), LIMITS)
    assert v.verdict is Verdict.REJECT and "short stop 99000" in v.reason


@pytest.mark.parametrize(
    ("action", "stop", "tp"),
    [(Action.OPEN_LONG, 99_500.0, 97_000.0), (Action.OPEN_SHORT, 100_500.0, 100_000.0)],
)
def test_wrong_side_take_profit_is_dropped(action: Action, stop: float, tp: float) -> None:
    v = evaluate(prop(action=action, stop_price=stop, take_profit=tp), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["take_profit_side"]
    assert v.changes == {"take_profit": (tp, None)}
    assert v.plan is not None and v.plan.take_profit is None


# --------------------------------------------------------------------------------------------------
# Ownership and position count


def test_symbol_held_by_another_agent_is_rejected() -> None:
    v = evaluate(prop(), ctx(symbol_owner=OTHER), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["symbol_owner"] and OTHER in v.reason


def test_no_adding_to_own_position() -> None:
    v = evaluate(prop(), ctx(symbol_owner=AGENT, agent_open_symbols=frozenset({"BTCUSDT"})), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["already_open"]


def test_max_positions() -> None:
    v = evaluate(prop(), ctx(agent_open_symbols=frozenset({"ETHUSDT", "SOLUSDT"})), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["max_positions"]
    assert "ETHUSDT, SOLUSDT" in v.reason


# --------------------------------------------------------------------------------------------------
# Leverage and stop width


def test_leverage_capped_by_symbol_maximum() -> None:
    # high risk 20x, agent 20x, symbol 10x → 10x; stop 0.2% × 10 = 2% of margin is fine
    c = ctx(risk_level=RiskLevel.HIGH, agent_max_leverage=20, filters=replace(BTC, max_leverage=10))
    v = evaluate(prop(leverage=20, stop_price=99_800.0), c, LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["leverage_cap"]
    assert v.changes == {"leverage": (20, 10)}
    assert v.plan is not None and v.plan.leverage == 10
    assert "leverage 20x → 10x" in v.reason


def test_leverage_capped_by_risk_level_and_agent() -> None:
    v = evaluate(
        prop(leverage=8, stop_price=99_800.0),
        ctx(risk_level=RiskLevel.LOW, agent_max_leverage=6),
        LIMITS,
    )
    assert v.changes == {"leverage": (8, 5)}
    v = evaluate(prop(leverage=8, stop_price=99_800.0), ctx(agent_max_leverage=3), LIMITS)
    assert v.changes == {"leverage": (8, 3)}


def test_stop_width_lowers_leverage_with_readable_reason() -> None:
    # stop 0.71% away: 0.05 / 0.0071 = 7.04 → 7x
    c = ctx(risk_level=RiskLevel.HIGH, agent_max_leverage=20)
    v = evaluate(prop(leverage=20, stop_price=99_290.0), c, LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["stop_width"]
    assert v.changes == {"leverage": (20, 7)}
    assert "leverage 20x → 7x: stop 0.71% away allows at most 7x for a 5% margin loss" in v.reason
    assert v.plan is not None and v.plan.stop_price == 99_290.0


def test_leverage_cap_then_stop_width_records_first_before_and_last_after() -> None:
    # medium cap 10x; stop 1.25% → floor(0.05 / 0.0125) = 4x
    v = evaluate(prop(leverage=20, stop_price=98_750.0), ctx(), LIMITS)
    assert v.rules == ["leverage_cap", "stop_width"]
    assert v.changes == {"leverage": (20, 4)}
    assert v.plan is not None and v.plan.leverage == 4


def test_stop_width_holds_exactly_at_the_float_boundary() -> None:
    # pct / d computes to exactly 5.0, but 5 × d is one ulp above pct: 4x is the honest answer
    limits = RiskLimits(stop_loss_margin_pct=0.039990000000000143)
    v = evaluate(prop(leverage=10, stop_price=99_200.2), ctx(), limits)
    assert v.changes == {"leverage": (10, 4)}
    assert v.plan is not None
    assert v.plan.stop_distance * v.plan.leverage <= limits.stop_loss_margin_pct


def test_stop_too_wide_even_at_1x_is_rejected() -> None:
    v = evaluate(prop(leverage=1, stop_price=94_000.0), ctx(), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["stop_width"]
    assert "even at 1x" in v.reason


# --------------------------------------------------------------------------------------------------
# Margin, free margin, account, gross exposure


def test_margin_cap() -> None:
    v = evaluate(prop(margin_fraction=0.5), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["margin_cap"]
    assert v.changes["margin_fraction"] == (0.5, 0.3)
    assert v.changes["margin"] == pytest.approx((5_000.0, 3_000.0))
    assert v.plan is not None and v.plan.margin == pytest.approx(3_000.0)


def test_agent_free_margin_shrinks_then_rejects() -> None:
    v = evaluate(prop(), ctx(agent_free_margin=1_000.0), LIMITS)
    assert v.rules == ["agent_free_margin"] and v.changes["margin"] == pytest.approx((2_000, 1_000))
    assert v.plan is not None and v.plan.quantity == Decimal("0.050")
    v = evaluate(prop(), ctx(agent_free_margin=1_990.0), LIMITS)
    # 1,990 × 5 / 100,000 = 0.0995 → 0.099 BTC → margin 0.099 × 100,000 / 5 = 1,980
    assert v.changes["margin"] == pytest.approx((2_000, 1_980))
    v = evaluate(prop(), ctx(agent_free_margin=0.0), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["agent_free_margin"]


def test_account_margin_shrinks_then_rejects() -> None:
    v = evaluate(prop(), ctx(account_available=500.0), LIMITS)
    assert v.rules == ["account_margin"] and v.plan is not None
    assert v.plan.margin == pytest.approx(500.0)
    v = evaluate(prop(), ctx(account_available=-1.0), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["account_margin"]


def test_gross_exposure_shrinks_then_rejects() -> None:
    # cap 3 × 100,000 = 300,000; 295,000 open → 5,000 room; 5x → margin 1,000
    v = evaluate(prop(), ctx(gross_notional=295_000.0), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["gross_exposure"]
    assert v.changes["margin"] == pytest.approx((2_000.0, 1_000.0))
    assert v.plan is not None and v.plan.notional == pytest.approx(5_000.0)
    v = evaluate(prop(), ctx(gross_notional=300_000.0), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["gross_exposure"]


def test_a_stop_out_must_fit_the_room_above_the_drawdown_halt() -> None:
    # 5x, stop 0.5% away, fills cost 0.06%: a stop-out loses 0.5% + 0.06% × 2.005 of notional
    rate = 0.005 + 0.0006 * 2.005
    full = evaluate(prop(), ctx(halt_headroom=10_000.0), LIMITS)  # 10,000 notional: room enough
    assert full.verdict is Verdict.APPROVE and full.plan is not None
    assert full.plan.loss_at_stop == pytest.approx(10_000.0 * rate)
    v = evaluate(prop(), ctx(halt_headroom=31.0), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["halt_headroom"]
    assert v.changes["margin"][0] == pytest.approx(2_000.0)
    assert v.plan is not None and v.plan.loss_at_stop <= 31.0
    assert v.plan.notional == pytest.approx(4_900.0)  # 31 / rate = 4,997.58 → 0.049 BTC
    assert "31.00 left above the session's drawdown halt" in v.reason
    for room in (0.0, -5.0):  # nothing left (earlier trades of the tick took it)
        v = evaluate(prop(), ctx(halt_headroom=room), LIMITS)
        assert v.verdict is Verdict.REJECT and v.rules == ["halt_headroom"]
    v = evaluate(prop(), ctx(halt_headroom=0.02), LIMITS)  # fits less than one step
    assert v.verdict is Verdict.REJECT and v.rules == ["halt_headroom", "lot_size"]
    # a pair's second leg sees what the first reserved
    after = with_open(ctx(halt_headroom=100.0), full.plan)
    assert after.halt_headroom == pytest.approx(100.0 - 10_000.0 * rate)


def test_a_price_too_big_for_the_ticks_is_an_invalid_proposal_not_a_crash() -> None:
    coarse = replace(BTC, tick_size=Decimal("100"))  # 1e30 / 100 needs more than 28 digits
    for wild in ({"take_profit": 1e30}, {"action": Action.OPEN_SHORT, "stop_price": 1e30,
                                         "take_profit": None}):
        v = evaluate(prop(**wild), ctx(filters=coarse), LIMITS)
        assert v.verdict is Verdict.REJECT and v.rules == ["invalid_proposal"], v.reason
        assert "is not a price in BTCUSDT's ticks of 100" in v.reason


def test_margin_changes_compound_across_rules() -> None:
    v = evaluate(prop(margin_fraction=0.6), ctx(agent_free_margin=2_500.0), LIMITS)
    assert v.rules == ["margin_cap", "agent_free_margin"]
    assert v.changes["margin"] == pytest.approx((6_000.0, 2_500.0))


# --------------------------------------------------------------------------------------------------
# Lot size and minimum notional


def test_quantity_below_step_is_rejected() -> None:
    # 0.01 × 100 × 5 / 100,000 = 0.00005 BTC → 0 steps
    v = evaluate(prop(margin_fraction=0.01), ctx(agent_equity=100.0), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["lot_size"]


def test_below_min_notional_is_rejected() -> None:
    # margin 30 × 5 = 150 → 0.0015 → 0.001 BTC = 100 USDT < 150
    filters = replace(BTC, min_notional=Decimal("150"))
    v = evaluate(prop(margin_fraction=0.003), ctx(filters=filters), LIMITS)
    assert v.verdict is Verdict.REJECT and v.rules == ["min_notional"]


def test_quantity_clamped_to_venue_maximum() -> None:
    v = evaluate(prop(), ctx(filters=replace(BTC, max_qty=Decimal("0.05"))), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["lot_size"]
    assert v.plan is not None and v.plan.quantity == Decimal("0.050")
    assert v.changes["quantity"] == (Decimal("0.100"), Decimal("0.050"))


def test_all_three_verdicts_occur() -> None:
    verdicts = {
        evaluate(prop(), ctx(), LIMITS).verdict,
        evaluate(prop(margin_fraction=0.9), ctx(), LIMITS).verdict,
        evaluate(prop(), ctx(session_status="paused"), LIMITS).verdict,
    }
    assert verdicts == {Verdict.APPROVE, Verdict.MODIFY, Verdict.REJECT}


def test_filters_for_another_symbol_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="ETHUSDT"):
        evaluate(prop(), ctx(filters=ETH), LIMITS)


def test_limits_from_settings() -> None:
    s = load_settings(
        max_margin_fraction=0.2,
        max_open_positions_per_agent=3,
        stop_loss_margin_pct=0.04,
        gross_exposure_cap=2.0,
        paper_taker_fee=0.0005,
        paper_slippage_bps=3.0,
    )
    assert RiskLimits.from_settings(s) == RiskLimits(0.2, 3, 0.04, 2.0, 0.0005 + 3.0 / 10_000)


# --------------------------------------------------------------------------------------------------
# Groups


def eth_leg(**over: Any) -> Proposal:
    return prop(
        symbol="ETHUSDT",
        action=Action.OPEN_SHORT,
        stop_price=3_015.0,
        take_profit=None,
        ref_price=3_000.0,
        **over,
    )


def eth_ctx(**over: Any) -> RiskContext:
    return ctx(filters=ETH, price=3_000.0, **over)


def test_group_both_legs_approved_and_second_counts_first() -> None:
    verdicts = evaluate_group(
        [prop(), eth_leg()],
        [ctx(agent_free_margin=3_000.0), eth_ctx(agent_free_margin=3_000.0)],
        LIMITS,
    )
    assert [v.verdict for v in verdicts] == [Verdict.APPROVE, Verdict.MODIFY]
    # the BTC leg used 2,000 of 3,000 free margin, so the ETH leg fits in 1,000:
    # 1,000 × 5 / 3,000 = 1.667 ETH → 1.66 → margin 1.66 × 3,000 / 5 = 996
    assert verdicts[1].rules == ["agent_free_margin"]
    assert verdicts[1].changes == {"margin": pytest.approx((2_000.0, 996.0))}
    assert verdicts[1].plan is not None and verdicts[1].plan.margin == pytest.approx(996.0)


def test_group_rejects_every_leg_when_one_is_rejected() -> None:
    verdicts = evaluate_group([prop(), eth_leg()], [ctx(), eth_ctx(symbol_owner=OTHER)], LIMITS)
    assert all(v.verdict is Verdict.REJECT and v.plan is None for v in verdicts)
    assert verdicts[0].rules == ["pair_leg_rejected"]
    assert "ETHUSDT leg was rejected (symbol_owner)" in verdicts[0].reason
    assert verdicts[1].rules == ["symbol_owner"]


def test_group_second_leg_counts_the_first_position() -> None:
    held = frozenset({"SOLUSDT"})
    verdicts = evaluate_group(
        [prop(), eth_leg()],
        [ctx(agent_open_symbols=held), eth_ctx(agent_open_symbols=held)],
        LIMITS,
    )
    assert verdicts[1].rules == ["max_positions"]
    assert verdicts[0].rules == ["pair_leg_rejected"]


def test_group_of_several_agents_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate_group([prop(), eth_leg(agent=OTHER)], [ctx(), eth_ctx()], LIMITS)


def test_with_open_counts_the_plan() -> None:
    plan = evaluate(prop(), ctx(), LIMITS).plan
    assert plan is not None
    after = with_open(ctx(), plan)
    assert after.agent_open_symbols == {"BTCUSDT"} and after.symbol_owner == AGENT
    assert after.agent_free_margin == pytest.approx(8_000.0)
    assert after.account_available == pytest.approx(98_000.0)
    assert after.gross_notional == pytest.approx(10_000.0)
    assert with_open(eth_ctx(), plan).symbol_owner is None


# --------------------------------------------------------------------------------------------------
# Properties: no approved plan ever breaks a cap

EPS = 1e-9
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


@st.composite
def filters_for(draw: st.DrawFn, symbol: str, price: float) -> SymbolFilters:
    """Filters in proportion to the price, as on a real venue (tick ≈ 0.001%-1% of the price)."""
    magnitude = math.floor(math.log10(price))
    step = Decimal(1).scaleb(draw(st.integers(-3, 1)) - magnitude)
    return SymbolFilters(
        symbol=symbol,
        tick_size=Decimal(1).scaleb(magnitude - draw(st.integers(2, 5))),
        step_size=step,
        min_qty=step * draw(st.integers(1, 5)),
        max_qty=step * Decimal(10) ** draw(st.integers(3, 9)),
        min_notional=Decimal(draw(st.sampled_from(["0", "5", "100"]))),
        max_leverage=draw(st.sampled_from([1, 5, 20, 50, 125])),
        maint_margin_rate=Decimal("0.005"),
    )


def mostly(usual: Any, *rare: Any) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, otherwise one of ``rare`` (so most cases reach the sizing)."""
    return st.sampled_from([usual] * 9 * len(rare) + list(rare))


@st.composite
def proposals(draw: st.DrawFn, symbol: str, price: float) -> Proposal:
    action = draw(mostly(Action.OPEN_LONG, Action.OPEN_SHORT, Action.CLOSE))
    if draw(st.booleans()) and action is Action.OPEN_LONG:
        action = Action.OPEN_SHORT
    sign = 1 if action is Action.OPEN_LONG else -1
    # mostly plausible stops (0.01%-3% away), sometimes wide or on the wrong side
    plausible = st.floats(0.0001, 0.03)
    stop_move = draw(st.one_of(plausible, plausible, plausible, st.floats(-0.02, 0.3)))
    tp_move = draw(st.floats(-0.05, 0.5))
    return Proposal(
        agent=AGENT,
        symbol=symbol,
        action=action,
        leverage=draw(st.integers(1, 125)),
        margin_fraction=draw(st.floats(0.0005, 1.0)),
        stop_price=draw(mostly(price * (1 - sign * stop_move), None)),
        take_profit=draw(st.sampled_from([price * (1 + sign * tp_move), None])),
        reasoning="generated",
        ref_price=price,
    )


@st.composite
def contexts(draw: st.DrawFn, filters: SymbolFilters, price: float) -> RiskContext:
    equity = draw(st.one_of(st.floats(100.0, 1e6), st.floats(0.0, 1e6)))
    session_equity = draw(st.floats(1.0, 5e6))
    return RiskContext(
        session_status=draw(mostly("running", "paused", "halted")),
        agent_status=draw(mostly("active", "paused", "stopped")),
        agent_equity=equity,
        agent_free_margin=draw(
            st.one_of(st.floats(0.05, 1.0).map(lambda f: f * equity), st.floats(-1_000.0, 1e6))
        ),
        agent_open_symbols=draw(st.frozensets(st.sampled_from(SYMBOLS), max_size=3)),
        risk_level=draw(st.sampled_from(list(RiskLevel))),
        agent_max_leverage=draw(st.integers(1, 25)),
        symbol_owner=draw(mostly(None, AGENT, OTHER)),
        filters=filters,
        price=price,
        account_available=draw(st.floats(-100.0, 2e6)),
        session_equity=session_equity,
        gross_notional=draw(st.floats(0.0, 6.0)) * session_equity,
        halt_headroom=draw(st.one_of(st.just(math.inf), st.floats(-1_000.0, 1e6))),
    )


prices = st.floats(0.01, 200_000.0)
limits_st = st.builds(
    RiskLimits,
    max_margin_fraction=st.floats(0.05, 1.0),
    max_open_positions=st.integers(1, 4),
    stop_loss_margin_pct=st.floats(0.01, 0.2),
    gross_exposure_cap=st.floats(0.5, 5.0),
    fill_cost_rate=st.floats(0.0, 0.002),
)


def assert_caps(p: Proposal, c: RiskContext, limits: RiskLimits, plan: OrderPlan) -> None:
    f = c.filters
    assert c.session_status == "running" and c.agent_status == "active"
    assert c.symbol_owner is None and p.symbol not in c.agent_open_symbols
    assert len(c.agent_open_symbols) < limits.max_open_positions
    assert (
        1
        <= plan.leverage
        <= min(RISK_LEVERAGE_CAP[c.risk_level], c.agent_max_leverage, f.max_leverage)
    )
    tol = EPS * max(1.0, plan.margin)
    assert plan.margin <= limits.max_margin_fraction * c.agent_equity + tol
    assert plan.margin <= c.agent_free_margin + tol
    assert plan.margin <= c.account_available + tol
    assert plan.margin == pytest.approx(float(plan.quantity) * c.price / plan.leverage)
    distance = abs(c.price - plan.stop_price) / c.price
    assert distance == plan.stop_distance
    assert distance * plan.leverage <= limits.stop_loss_margin_pct  # exact: rounding went tighter
    if plan.side is PositionSide.LONG:
        assert plan.stop_price < c.price
        assert plan.take_profit is None or plan.take_profit > c.price
    else:
        assert plan.stop_price > c.price
        assert plan.take_profit is None or 0 < plan.take_profit < c.price
    assert Decimal(repr(plan.stop_price)) % f.tick_size == 0
    assert plan.quantity % f.step_size == 0
    assert f.min_qty <= plan.quantity <= f.max_qty
    assert plan.notional >= float(f.min_notional)
    exposure = (c.gross_notional + plan.notional) / c.session_equity
    assert exposure <= limits.gross_exposure_cap * (1 + EPS)
    stop_out = plan.notional * (distance + limits.fill_cost_rate * (2 + distance))
    assert plan.loss_at_stop == pytest.approx(stop_out)
    assert plan.loss_at_stop <= c.halt_headroom * (1 + EPS)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Proposal, RiskContext, RiskLimits]:
    price = draw(prices)
    filters = draw(filters_for("BTCUSDT", price))
    return draw(proposals("BTCUSDT", price)), draw(contexts(filters, price)), draw(limits_st)


@st.composite
def sizing_cases(
    draw: st.DrawFn, symbol: str = "BTCUSDT"
) -> tuple[Proposal, RiskContext, RiskLimits]:
    """Cases past the gates (running, active, free symbol, a stop on the right side, some room):
    they exercise the sizing rules, which fully random cases rarely reach. Every range is drawn
    so that even its boundary values leave room, as hypothesis favours boundaries."""
    price = draw(prices)
    equity = draw(st.floats(1_000.0, 1e6))
    session_equity = equity * draw(st.floats(1.0, 20.0))
    cap = draw(st.floats(1.0, 5.0))
    c = RiskContext(
        session_status="running",
        agent_status="active",
        agent_equity=equity,
        agent_free_margin=equity * draw(st.floats(0.1, 1.0)),
        agent_open_symbols=draw(st.frozensets(st.sampled_from(SYMBOLS[1:]), max_size=1)),
        risk_level=draw(st.sampled_from(list(RiskLevel))),
        agent_max_leverage=draw(st.integers(1, 25)),
        symbol_owner=None,
        filters=draw(filters_for(symbol, price)),
        price=price,
        account_available=equity * draw(st.floats(0.1, 10.0)),
        session_equity=session_equity,
        gross_notional=session_equity * cap * draw(st.floats(0.0, 0.99)),
        halt_headroom=draw(st.one_of(st.just(math.inf), st.floats(0.01, 1.0).map(
            lambda f: f * equity))),
    )
    sign = draw(st.sampled_from([1, -1]))
    p = draw(proposals(symbol, price)).model_copy(
        update={
            "action": Action.OPEN_LONG if sign == 1 else Action.OPEN_SHORT,
            "stop_price": price * (1 - sign * draw(st.floats(0.002, 0.03))),
        }
    )
    limits = RiskLimits(
        max_margin_fraction=draw(st.floats(0.05, 1.0)),
        max_open_positions=draw(st.integers(2, 4)),
        stop_loss_margin_pct=draw(st.floats(0.03, 0.2)),
        gross_exposure_cap=cap,
        fill_cost_rate=draw(st.floats(0.0, 0.002)),
    )
    return p, c, limits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(cases(), sizing_cases()))
def test_no_approved_plan_breaks_a_cap(case: tuple[Proposal, RiskContext, RiskLimits]) -> None:
    p, c, limits = case
    v = evaluate(p, c, limits)
    assert v.rules == list(dict.fromkeys(v.rules))  # each rule fires once
    if v.verdict is Verdict.REJECT:
        assert v.plan is None and v.rules
        return
    if p.action is Action.CLOSE:
        assert v.plan is None and (p.symbol in c.agent_open_symbols or c.symbol_owner == AGENT)
        return
    assert v.plan is not None
    assert (v.verdict is Verdict.MODIFY) == bool(v.rules)
    assert_caps(p, c, limits, v.plan)


@st.composite
def pair_cases(
    draw: st.DrawFn,
) -> tuple[list[Proposal], list[RiskContext], RiskLimits]:
    """Two opening legs of one agent; both contexts describe the ledger before the pair trades."""
    first, before, limits = draw(sizing_cases("BTCUSDT"))
    second, other, _ = draw(sizing_cases("SOLUSDT"))
    second_ctx = replace(
        before, filters=other.filters, price=other.price, symbol_owner=draw(mostly(None, OTHER))
    )
    return [first, second], [before, second_ctx], limits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_cases())
def test_pair_never_breaks_a_cap_together(
    case: tuple[list[Proposal], list[RiskContext], RiskLimits],
) -> None:
    legs, ctxs, limits = case
    verdicts = evaluate_group(legs, ctxs, limits)
    rejected = [v.verdict is Verdict.REJECT for v in verdicts]
    assert all(rejected) or not any(rejected)
    if any(rejected):
        return
    plans = [v.plan for v in verdicts]
    assert plans[0] is not None and plans[1] is not None
    shared = ctxs[0]
    assert len(shared.agent_open_symbols) + 2 <= limits.max_open_positions
    margin = plans[0].margin + plans[1].margin
    tol = EPS * max(1.0, margin)
    assert margin <= shared.agent_free_margin + tol
    assert margin <= shared.account_available + tol
    gross = shared.gross_notional + plans[0].notional + plans[1].notional
    assert gross / shared.session_equity <= limits.gross_exposure_cap * (1 + EPS)
    assert plans[0].loss_at_stop + plans[1].loss_at_stop <= shared.halt_headroom * (1 + EPS)
    assert_caps(legs[1], with_open(ctxs[1], plans[0]), limits, plans[1])
