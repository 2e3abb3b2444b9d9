"""The CEO's hard rules on a trailing stop a proposal asks for (core/ceo/trailing.py): the venue's
callback range, the activation's side, and the 5%-of-margin rule on the trail's initial distance,
with the hard stop kept beside it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ceo.rules import evaluate
from core.ceo.trailing import initial_distance
from core.models import Action, RiskLevel, Verdict
from tests.test_risk import LIMITS, ctx, prop


def test_a_trailing_stop_inside_the_rules_is_approved_beside_the_hard_stop() -> None:
    # 5x: the stop 0.5% away loses 2.5% of margin; a 0.8% trail armed at once loses 4%
    v = evaluate(prop(trail_callback=0.008), ctx(), LIMITS)
    assert v.verdict is Verdict.APPROVE and v.rules == []
    assert v.plan is not None and v.plan.stop_price == 99_500.0 and v.plan.leverage == 5
    assert v.plan.trail_callback == 0.008 and v.plan.trail_activation is None
    assert "trailing stop 0.80%" in v.reason


def test_the_stop_rule_lowers_leverage_for_the_trail_initial_distance() -> None:
    # the hard stop 0.5% away allows 10x; a 1.5% trail armed at once allows floor(5/1.5) = 3x
    v = evaluate(prop(leverage=10, trail_callback=0.015), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["trailing_width"]
    assert v.changes == {"leverage": (10, 3)}
    assert ("leverage 10x → 3x: the trailing stop first triggers 1.50% away, which allows at "
            "most 3x for a 5% margin loss") in v.reason
    assert v.plan is not None and v.plan.leverage == 3 and v.plan.stop_price == 99_500.0


def test_an_activation_in_profit_shortens_the_initial_distance() -> None:
    # armed at 101,000 with a 1.5% callback: first trigger 99,485 = 0.515% below 100,000 → 9x at
    # most; asked 10x at medium risk
    v = evaluate(prop(leverage=10, trail_callback=0.015, trail_activation=101_000.0), ctx(), LIMITS)
    assert v.rules == ["trailing_width"] and v.changes == {"leverage": (10, 9)}
    assert v.plan is not None and v.plan.trail_activation == 101_000.0
    # armed at 102,000: first trigger 100,470, above the price: no loss, no change
    v = evaluate(prop(leverage=10, trail_callback=0.015, trail_activation=102_000.0), ctx(), LIMITS)
    assert v.verdict is Verdict.APPROVE and v.plan is not None and v.plan.leverage == 10


@pytest.mark.parametrize(("asked", "bounded"), [(0.0004, 0.001), (0.08, 0.05)])
def test_the_callback_is_bounded_to_the_venue_range(asked: float, bounded: float) -> None:
    v = evaluate(prop(leverage=1, trail_callback=asked), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules[0] == "trailing_callback"
    assert v.changes["trail_callback"] == (asked, bounded)
    assert v.plan is not None and v.plan.trail_callback == bounded


@pytest.mark.parametrize(("action", "stop", "activation"), [
    (Action.OPEN_LONG, 99_500.0, 99_900.0), (Action.OPEN_SHORT, 100_500.0, 100_100.0)])
def test_an_activation_already_passed_is_dropped_and_the_trail_armed_at_once(
        action: Action, stop: float, activation: float) -> None:
    v = evaluate(prop(action=action, stop_price=stop, take_profit=None, leverage=2,
                      trail_callback=0.01, trail_activation=activation), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["trailing_activation"]
    assert v.changes == {"trail_activation": (activation, None)}
    assert "so the trail is armed at once" in v.reason
    assert v.plan is not None and v.plan.trail_activation is None and v.plan.trail_callback == 0.01


def test_a_short_trail_is_measured_above_the_price() -> None:
    # short armed at 99,000 with 2%: first trigger 100,980, 0.98% above → floor(5 / 0.98) = 5x
    assert initial_distance(100_000.0, 0.02, 99_000.0, long=False) == pytest.approx(0.0098)
    v = evaluate(prop(action=Action.OPEN_SHORT, stop_price=100_400.0, take_profit=None,
                      leverage=10, trail_callback=0.02, trail_activation=99_000.0), ctx(), LIMITS)
    assert v.rules == ["trailing_width"] and v.plan is not None and v.plan.leverage == 5


def test_the_activation_rounds_toward_the_price() -> None:
    v = evaluate(prop(trail_callback=0.004, trail_activation=100_800.07), ctx(), LIMITS)
    assert v.plan is not None and v.plan.trail_activation == 100_800.0


def test_a_trail_too_wide_for_a_tight_margin_rule_is_refused() -> None:
    tight = type(LIMITS)(stop_loss_margin_pct=0.004)
    v = evaluate(prop(leverage=1, stop_price=99_700.0, trail_callback=0.01), ctx(), tight)
    assert v.verdict is Verdict.REJECT and v.rules[-1] == "trailing_width" and v.plan is None


@given(callback=st.floats(0.0001, 0.5), activation=st.one_of(st.none(), st.floats(90_000, 110_000)),
       leverage=st.integers(1, 20), long=st.booleans())
def test_no_approved_trail_loses_more_than_the_rule_at_its_first_trigger(
        callback: float, activation: float | None, leverage: int, long: bool) -> None:
    action = Action.OPEN_LONG if long else Action.OPEN_SHORT
    stop = 99_000.0 if long else 101_000.0
    c = ctx(risk_level=RiskLevel.HIGH, agent_max_leverage=20)
    v = evaluate(prop(action=action, stop_price=stop, take_profit=None, leverage=leverage,
                      trail_callback=callback, trail_activation=activation), c, LIMITS)
    assert v.plan is not None
    plan = v.plan
    assert plan.trail_callback is not None and 0.001 <= plan.trail_callback <= 0.05
    if plan.trail_activation is not None:
        assert (plan.trail_activation > c.price) if long else (plan.trail_activation < c.price)
    first = initial_distance(c.price, plan.trail_callback, plan.trail_activation, long=long)
    assert first * plan.leverage <= LIMITS.stop_loss_margin_pct + 1e-12
    assert plan.leverage <= leverage


def test_the_widest_callback_fits_at_1x_exactly() -> None:
    # 5% at 1x is exactly a 5% margin loss: allowed, not refused by float error
    v = evaluate(prop(leverage=3, trail_callback=0.05), ctx(), LIMITS)
    assert v.verdict is Verdict.MODIFY and v.rules == ["trailing_width"]
    assert v.plan is not None and v.plan.leverage == 1
