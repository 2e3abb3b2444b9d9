"""Each hard rule of the CEO and each durability promise at its exact boundary: just inside is
approved as proposed, just outside is modified or refused. The limits come from the shipped
settings (``make_settings()``), so loosening a default anywhere is caught here, not only by the
hypothesis properties in ``tests/test_risk.py``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, update

from core import service
from core.ceo.rules import RiskLimits, evaluate
from core.config import Settings
from core.desk.engine import run_cycle
from core.desk.judge import Judge
from core.desk.runtime import build_desk
from core.models import (
    RISK_LEVERAGE_CAP,
    Action,
    AgentDecision,
    OrderRequest,
    OrderResult,
    Proposal,
    RiskLevel,
    Verdict,
)
from core.store.db import open_database
from core.store.tables import AGENTS, ALERTS, CEO_DECISIONS, POSITIONS, SESSIONS, OrderRow
from tests.conftest import make_settings
from tests.desk_helpers import create
from tests.test_risk import BTC, ETH, ctx, prop

SHIPPED = make_settings()
LIMITS = RiskLimits.from_settings(SHIPPED)


def test_the_shipped_limits_are_the_documented_ones() -> None:
    assert (LIMITS.max_margin_fraction, LIMITS.stop_loss_margin_pct, LIMITS.max_open_positions,
            LIMITS.gross_exposure_cap) == (0.30, 0.05, 2, 3.0)
    assert SHIPPED.drawdown_halt_pct == 0.15
    assert RiskLimits() == RiskLimits(0.30, 2, 0.05, 3.0, RiskLimits().fill_cost_rate)
    assert RISK_LEVERAGE_CAP == {RiskLevel.LOW: 5, RiskLevel.MEDIUM: 10, RiskLevel.HIGH: 20}


def _judge(p: dict[str, Any] | None = None, c: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    return evaluate(prop(**(p or {})), ctx(**(c or {})), LIMITS)


def test_margin_at_30_percent_passes_and_a_hair_more_is_cut_to_30() -> None:
    inside = _judge({"margin_fraction": 0.30})
    assert inside.verdict is Verdict.APPROVE and inside.rules == []
    assert inside.plan is not None and inside.plan.margin == pytest.approx(3_000.0)
    outside = _judge({"margin_fraction": 0.3001})
    assert outside.verdict is Verdict.MODIFY and outside.rules == ["margin_cap"]
    assert outside.plan is not None and outside.plan.margin == pytest.approx(3_000.0)


def test_a_stop_at_5_percent_of_margin_passes_and_beyond_it_leverage_comes_down() -> None:
    # 5x with the stop 1% away loses exactly 5% of margin at the stop
    inside = _judge({"leverage": 5, "stop_price": 99_000.0})
    assert inside.verdict is Verdict.APPROVE and inside.plan is not None
    assert inside.plan.leverage == 5
    # 1.01% away at 5x would lose 5.05%: leverage 4x (4.04%), the stop is never widened
    outside = _judge({"leverage": 5, "stop_price": 98_990.0})
    assert outside.verdict is Verdict.MODIFY and outside.rules == ["stop_width"]
    assert outside.plan is not None and outside.plan.leverage == 4
    assert outside.plan.stop_price == 98_990.0
    # a stop 5.01% away is too wide even at 1x
    assert _judge({"leverage": 1, "stop_price": 94_990.0}).verdict is Verdict.REJECT


def test_leverage_at_the_risk_level_cap_passes_and_one_more_is_cut() -> None:
    for level, cap in RISK_LEVERAGE_CAP.items():
        stop = 100_000.0 * (1 - 0.05 / (cap + 1)) + 1  # tight enough for cap + 1
        c = {"risk_level": level, "agent_max_leverage": 125}
        inside = _judge({"leverage": cap, "stop_price": stop}, c)
        assert inside.verdict is Verdict.APPROVE and inside.plan is not None, level
        assert inside.plan.leverage == cap
        outside = _judge({"leverage": cap + 1, "stop_price": stop}, c)
        assert outside.rules == ["leverage_cap"] and outside.plan is not None
        assert outside.plan.leverage == cap


def test_the_symbols_own_maximum_caps_leverage() -> None:
    tight = replace(BTC, max_leverage=3)
    v = _judge({"leverage": 4}, {"filters": tight})
    assert v.rules == ["leverage_cap"] and v.plan is not None and v.plan.leverage == 3
    assert _judge({"leverage": 3}, {"filters": tight}).verdict is Verdict.APPROVE


def test_gross_exposure_exactly_at_the_cap_passes_and_one_usdt_more_shrinks() -> None:
    # cap 3 × 100,000 = 300,000; the plan's notional is 2,000 × 5 = 10,000
    inside = _judge(c={"gross_notional": 290_000.0})
    assert inside.verdict is Verdict.APPROVE and inside.plan is not None
    assert inside.plan.notional == pytest.approx(10_000.0)
    outside = _judge(c={"gross_notional": 290_001.0})
    assert outside.verdict is Verdict.MODIFY and outside.rules == ["gross_exposure"]
    assert outside.plan is not None and outside.plan.notional <= 9_999.0


def test_a_stop_out_that_just_fits_above_the_halt_passes_and_one_that_does_not_shrinks() -> None:
    rate = 0.005 + LIMITS.fill_cost_rate * 2.005  # 5x, stop 0.5% away, both fills' costs
    loss = 10_000.0 * rate
    inside = _judge(c={"halt_headroom": loss * 1.0001})
    assert inside.verdict is Verdict.APPROVE and inside.plan is not None
    assert inside.plan.loss_at_stop == pytest.approx(loss)
    outside = _judge(c={"halt_headroom": loss * 0.999})
    assert outside.verdict is Verdict.MODIFY and outside.rules == ["halt_headroom"]
    assert outside.plan is not None and outside.plan.loss_at_stop <= loss * 0.999


def test_positions_per_agent_two_pass_a_third_is_refused() -> None:
    one = _judge(c={"agent_open_symbols": frozenset({"ETHUSDT"})})
    assert one.verdict is Verdict.APPROVE
    two = _judge(c={"agent_open_symbols": frozenset({"ETHUSDT", "SOLUSDT"})})
    assert two.verdict is Verdict.REJECT and two.rules == ["max_positions"]


def test_a_symbol_another_agent_holds_is_refused_a_free_one_is_not() -> None:
    assert _judge(c={"symbol_owner": None}).verdict is Verdict.APPROVE
    held = _judge(c={"symbol_owner": "Momentum Hunter"})
    assert held.verdict is Verdict.REJECT and held.rules == ["symbol_owner"]


def test_a_short_is_judged_with_the_mirror_boundaries() -> None:
    inside = _judge({"action": Action.OPEN_SHORT, "stop_price": 101_000.0, "take_profit": 97_000.0})
    assert inside.verdict is Verdict.APPROVE and inside.plan is not None and inside.plan.leverage == 5
    outside = _judge({"action": Action.OPEN_SHORT, "stop_price": 101_010.0, "take_profit": 97_000.0})
    assert outside.rules == ["stop_width"] and outside.plan is not None and outside.plan.leverage == 4


# --------------------------------------------------------------------------------------------------
# The engine's own halt, with the paper venue's loss guard switched off


def _desk(sqlite_url: str, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    settings = settings or make_settings(database_url=sqlite_url, replay_start="2025-09-01")
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    desk = build_desk(settings, engine, sid, lease=None)
    desk.exchange.arm_loss_guard = lambda max_loss: None  # the venue never closes anything itself
    return engine, sid, desk


def _set_peak(engine, sid: int, peak: float) -> None:  # type: ignore[no-untyped-def]
    """The session's stored peak, which the engine reads at the start of every tick."""
    with engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid).values(peak_equity=peak))


def _halts(engine, sid: int) -> list[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.scalars(select(CEO_DECISIONS.c.reason).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "halt")))


@pytest.mark.parametrize(("drawdown", "halts"), [(0.1499, False), (0.1501, True)])
def test_the_engine_halts_at_15_percent_on_its_own(sqlite_url: str, drawdown: float,
                                                   halts: bool) -> None:
    engine, sid, desk = _desk(sqlite_url)
    first = run_cycle(desk)  # the session starts; nobody trades on its first bar
    assert not desk.ledger.open_positions()
    _set_peak(engine, sid, first.equity / (1 - drawdown))
    report = run_cycle(desk)
    assert report.equity == first.equity
    assert report.drawdown_pct == pytest.approx(drawdown, abs=1e-9)
    assert (desk.ledger.session.status == "halted") is halts
    assert bool(_halts(engine, sid)) is halts


def test_a_paused_session_still_halts_at_15_percent(sqlite_url: str) -> None:
    """Pausing stops new trades, not the portfolio stop: positions and their risk stay."""
    engine, sid, desk = _desk(sqlite_url)
    first = run_cycle(desk)
    service.change_session(engine, sid, "pause")
    run_cycle(desk)
    assert desk.ledger.session.status == "paused"
    _set_peak(engine, sid, first.equity / (1 - 0.1501))
    run_cycle(desk)
    assert desk.ledger.session.status == "halted" and len(_halts(engine, sid)) == 1


def test_the_engine_halts_a_desk_with_open_positions_without_the_venue_guard(sqlite_url: str) -> None:
    engine, sid, desk = _desk(sqlite_url)
    report = None
    for _ in range(400):
        report = run_cycle(desk)
        if desk.ledger.open_positions():
            break
    assert desk.ledger.open_positions(), "no position opened in 400 ticks"
    assert report is not None
    # 13% below the peak: no halt, whatever the next bar does to a 1% margin-weighted book
    _set_peak(engine, sid, report.equity / (1 - 0.13))
    after = run_cycle(desk)
    assert desk.ledger.session.status == "running" and 0.11 < after.drawdown_pct < 0.15
    peak = after.equity / (1 - 0.17)
    _set_peak(engine, sid, peak)
    halted = run_cycle(desk)
    assert 0.15 < halted.drawdown_pct < 0.19
    assert desk.ledger.session.status == "halted"
    reasons = _halts(engine, sid)
    assert reasons == [
        f"equity {halted.equity:,.2f} USDT is {halted.drawdown_pct:.2%} below the peak {peak:,.2f} "
        "(limit 15%): orders cancelled, every position closed, agents stopped"]
    run_cycle(desk)
    assert not desk.ledger.open_positions()
    _assert_halt_is_on_record(sqlite_url, sid, halted.tick_ms, peak, halted.equity)


def test_a_halt_the_venues_loss_guard_made_inside_the_bar_says_so(sqlite_url: str) -> None:
    """The paper venue closes everything where the limit is crossed inside a bar and reports it;
    the engine then halts the session whatever the drawdown at the bar's close, and tells how."""
    engine, sid, desk = _desk(sqlite_url)
    first = run_cycle(desk)
    sync = desk.exchange.sync

    def guarded(step):  # type: ignore[no-untyped-def]
        events = sync(step)
        events.loss_guard = True
        return events

    desk.exchange.sync = guarded  # type: ignore[method-assign]
    halted = run_cycle(desk)
    assert desk.ledger.session.status == "halted" and halted.drawdown_pct < 0.15
    assert _halts(engine, sid) == [
        f"equity {halted.equity:,.2f} USDT is {halted.drawdown_pct:.2%} below the peak "
        f"{first.equity:,.2f} (limit 15%): the limit was reached inside the bar and the venue's "
        "loss guard closed every position there; orders cancelled, every position closed, agents "
        "stopped"]
    with engine.connect() as conn:
        body = conn.scalar(select(ALERTS.c.body).where(ALERTS.c.kind == "session_halted"))
    assert body is not None and "The venue's loss guard closed every position inside the bar." in body


def _assert_halt_is_on_record(url: str, sid: int, tick_ms: int, peak: float, equity: float) -> None:
    """What a trader and a restarted engine read after a halt, from another connection: the
    halted session, its CEO log rows, the alert, stopped agents, positions closed by the halt."""
    reader = open_database(url)
    with reader.connect() as conn:
        assert conn.execute(select(SESSIONS.c.status, SESSIONS.c.status_reason).where(
            SESSIONS.c.id == sid)).one() == ("halted", "drawdown halt")
        halt = conn.execute(select(CEO_DECISIONS).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "halt")).one()
        assert (halt.rules, halt.ts_ms) == ("drawdown_halt", tick_ms)
        assert json.loads(halt.changes) == {"equity": [pytest.approx(peak), round(equity, 2)]}
        assert conn.scalars(select(CEO_DECISIONS.c.reason).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "session",
            CEO_DECISIONS.c.reason.like("%halted%"))).all() == ["running → halted: drawdown halt"]
        alert = conn.execute(select(ALERTS).where(ALERTS.c.kind == "session_halted")).one()
        assert (alert.event_id, alert.session_id, alert.event_ms) == (f"ceo-{halt.id}", sid, tick_ms)
        assert conn.execute(select(AGENTS.c.status, AGENTS.c.pause_reason).where(
            AGENTS.c.session_id == sid)).all() == [("stopped", "drawdown halt")] * 5
        closed = conn.scalars(select(POSITIONS.c.close_reason).where(
            POSITIONS.c.session_id == sid, POSITIONS.c.closed_ms >= tick_ms)).all()
        assert closed and set(closed) == {"drawdown_halt"}
    reader.dispose()


# --------------------------------------------------------------------------------------------------
# Durability: an order is written and committed before it leaves


def test_every_order_is_committed_before_the_venue_sees_it(sqlite_url: str) -> None:
    _engine, _sid, desk = _desk(sqlite_url)
    reader = open_database(sqlite_url)  # another connection sees only what was committed
    place = desk.exchange.place_order
    seen: list[tuple[str, str | None]] = []

    def checked(request: OrderRequest) -> OrderResult:
        with reader.connect() as conn:
            status = conn.scalar(select(OrderRow.status).where(
                OrderRow.client_order_id == request.client_order_id))
        seen.append((request.client_order_id, status))
        return place(request)

    desk.exchange.place_order = checked  # type: ignore[method-assign]
    desk.execution.exchange = desk.exchange
    for _ in range(600):
        run_cycle(desk)
        if len(seen) >= 6:
            break
    reader.dispose()
    assert len(seen) >= 6, f"only {len(seen)} orders in 600 ticks"
    missing = [cid for cid, status in seen if status is None]
    assert missing == [], f"sent before committed: {missing}"
    assert {status for _, status in seen} == {"PENDING"}


def test_the_engine_sizes_new_trades_by_the_room_left_above_its_halt(sqlite_url: str) -> None:
    """0.01% (about 10 USDT) above the halt line, every opening the CEO judges is shrunk or
    refused by halt_headroom: its stop-out with both fills' costs must fit in that room."""
    engine, sid, desk = _desk(sqlite_url)
    report = run_cycle(desk)
    judged: list[tuple[str, str]] = []
    for _ in range(800):
        _set_peak(engine, sid, report.equity / (1 - 0.1499))
        report = run_cycle(desk)
        with engine.connect() as conn:
            judged = [(r.verdict, r.rules) for r in conn.execute(
                select(CEO_DECISIONS.c.verdict, CEO_DECISIONS.c.rules).where(
                    CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "trade"))]
        if len(judged) >= 3:
            break
    assert len(judged) >= 3, "fewer than three openings were judged in 800 ticks"
    assert all(v in ("modify", "reject") and "halt_headroom" in rules.split(",")
               for v, rules in judged), judged


# --------------------------------------------------------------------------------------------------
# Edges found by mutation testing of core/ceo/rules.py (see docs/mutation.md)


def test_a_symbol_whose_maximum_is_1x_still_trades_at_1x() -> None:
    v = _judge({"leverage": 3, "stop_price": 96_000.0}, {"filters": replace(BTC, max_leverage=1)})
    assert v.verdict is Verdict.MODIFY and v.plan is not None and v.plan.leverage == 1
    assert v.rules == ["leverage_cap"]


def test_a_stop_that_only_1x_allows_is_traded_at_1x() -> None:
    # 4% away: 5% / 4% = 1.25 → 1x (a 4% margin loss at the stop)
    v = _judge({"leverage": 5, "stop_price": 96_000.0})
    assert v.verdict is Verdict.MODIFY and v.rules == ["stop_width"]
    assert v.plan is not None and v.plan.leverage == 1


def test_margin_exactly_equal_to_what_is_free_fires_no_rule() -> None:
    for over in ({"agent_free_margin": 2_000.0}, {"account_available": 2_000.0}):
        v = _judge(c=over)
        assert v.verdict is Verdict.APPROVE and v.rules == [], over
        assert v.plan is not None and v.plan.margin == pytest.approx(2_000.0)


@pytest.mark.parametrize(("over", "rule", "reason"), [
    ({"agent_open_symbols": frozenset({"BTCUSDT"})}, "already_open",
     "TrendMaster Alpha already holds BTCUSDT; no adding"),
    ({"agent_max_leverage": 0}, "leverage_cap",
     "no leverage allowed (medium risk 10x, agent 0x, BTCUSDT max 125x)"),
    # no equity, whatever the free margin reads: refused for the equity, not sized at zero
    ({"agent_equity": 0.0, "agent_free_margin": 10_000.0}, "agent_free_margin",
     "agent equity 0.00 leaves no margin"),
    ({"agent_free_margin": 0.0}, "agent_free_margin",
     "agent free margin is 0.00 USDT; nothing left for margin"),
    ({"halt_headroom": 0.0}, "halt_headroom",
     "nothing is left above the session's drawdown halt (0.00 USDT with this tick's earlier "
     "trades); no new risk"),
])
def test_each_refusal_names_its_rule_and_says_why(over: dict[str, Any], rule: str,
                                                  reason: str) -> None:
    v = _judge(c=over)
    assert v.verdict is Verdict.REJECT and v.plan is None
    assert (v.rules, v.reason) == ([rule], f"rejected: {reason} [{rule}]")


def test_a_stop_out_exactly_equal_to_the_room_left_fires_nothing() -> None:
    distance = abs(100_000.0 - 99_500.0) / 100_000.0
    loss = 2_000.0 * 5 * (distance + LIMITS.fill_cost_rate * (2 + distance))
    v = _judge(c={"halt_headroom": loss})
    assert v.verdict is Verdict.APPROVE and v.rules == []


def test_under_one_usdt_of_free_margin_still_trades_what_the_venue_accepts() -> None:
    """0.90 USDT at 10x is a 9 USDT notional: above ETH's 5 USDT minimum, so it opens."""
    v = _judge({"symbol": "ETHUSDT", "leverage": 10, "stop_price": 99.6, "take_profit": 103.0,
                "ref_price": 100.0}, {"filters": ETH, "price": 100.0, "agent_free_margin": 0.9})
    assert v.verdict is Verdict.MODIFY and v.rules == ["agent_free_margin"]
    assert v.plan is not None and v.plan.margin == pytest.approx(0.9)


def test_a_refusal_after_a_cut_records_the_cut_margin() -> None:
    v = _judge({"margin_fraction": 0.5}, {"halt_headroom": 0.0})
    assert v.verdict is Verdict.REJECT and v.rules == ["margin_cap", "halt_headroom"]
    assert v.changes == {"margin_fraction": (0.5, 0.3), "margin": pytest.approx((5_000.0, 3_000.0))}


def test_the_reasons_say_the_figures_a_trader_needs() -> None:
    cut = _judge({"margin_fraction": 0.5})
    assert "margin 50.0% → 30.0% of agent equity: per-trade cap is 30% [margin_cap]" in cut.reason
    assert cut.changes["margin"] == pytest.approx((5_000.0, 3_000.0))
    wide = _judge({"leverage": 5, "stop_price": 98_990.0})
    assert ("leverage 5x → 4x: stop 1.01% away allows at most 4x for a 5% margin loss "
            "[stop_width]") in wide.reason
    capped = _judge({"leverage": 15, "stop_price": 99_700.0})
    assert "leverage 15x → 10x: cap is 10x (medium risk 10x, agent 10x, BTCUSDT max 125x)" in capped.reason
    free = _judge(c={"agent_free_margin": 1_000.0})
    assert "margin 2,000.00 → 1,000.00 USDT: agent free margin is 1,000.00" in free.reason
    full = _judge(c={"gross_notional": 300_000.0})
    assert "no room: gross exposure 300,000.00 of a 3x cap on 100,000.00" in full.reason
    account = _judge(c={"account_available": 1_000.0})
    assert account.reason == ("margin 2,000.00 → 1,000.00 USDT: account available is 1,000.00 "
                              "[account_margin]")
    shrunk = _judge(c={"gross_notional": 295_000.0})
    assert shrunk.reason == ("margin 2,000.00 → 1,000.00 USDT: notional 10,000.00 exceeds the "
                             "5,000.00 left (gross exposure 295,000.00 of a 3x cap on 100,000.00) "
                             "[gross_exposure]")


# --------------------------------------------------------------------------------------------------
# The engine's sizing room above its halt, at its exact boundary (the judge's own arithmetic)


def _judge_with_room(desk, room_in_losses: float, n: int = 1):  # type: ignore[no-untyped-def]
    """Judge ``n`` identical 5x longs (one per agent, one symbol each) with the session's peak set
    so the room left above the halt is ``room_in_losses`` × one trade's stop-out loss; returns the
    verdicts in order."""
    prices = dict(desk.marks)
    agents = list(desk.ledger.agents.values())[:n]
    symbols = list(prices)[:n]
    proposals = [Proposal(agent=a.name, symbol=s, action=Action.OPEN_LONG, leverage=5,
                          margin_fraction=0.2, stop_price=prices[s] * 0.995, reasoning="test",
                          ref_price=prices[s]) for a, s in zip(agents, symbols, strict=True)]
    probe = Judge(desk, prices, desk.ledger.session.clock_ms + 1)
    plan = evaluate(proposals[0], replace(probe._context(agents[0], symbols[0]),
                                           halt_headroom=float("inf")), desk.limits).plan
    assert plan is not None
    # the stop-out of the notional asked for (the rule checks it before rounding to the step)
    loss = plan.loss_at_stop / float(plan.quantity) / plan.ref_price * (
        0.2 * agents[0].equity(prices) * 5)
    equity = desk.ledger.equity(prices)
    room = room_in_losses * loss
    desk.ledger.session.peak_equity = (equity - room) / (1 - SHIPPED.drawdown_halt_pct)
    judge = Judge(desk, prices, desk.ledger.session.clock_ms + 1)
    assert judge.headroom == pytest.approx(room, rel=1e-9)
    for a, p in zip(agents, proposals, strict=True):
        judge.record(AgentDecision(agent=a.name, proposals=[p]))
    judge.write()
    return loss, [judge.decided[id(p)][1] for p in proposals]


@pytest.mark.parametrize(("room", "verdict"), [(1.001, Verdict.APPROVE), (0.999, Verdict.MODIFY)])
def test_the_judge_gives_a_trade_the_room_left_above_the_halt_and_no_more(
        sqlite_url: str, room: float, verdict: Verdict) -> None:
    """The room is session equity less the equity at which the 15% halt fires: a stop-out that
    fits in it opens as proposed, one that does not is shrunk to fit (never past the line)."""
    _engine, _sid, desk = _desk(sqlite_url)
    run_cycle(desk)
    loss, (v,) = _judge_with_room(desk, room)
    assert v.verdict is verdict
    assert v.rules == ([] if verdict is Verdict.APPROVE else ["halt_headroom"])
    assert v.plan is not None and v.plan.loss_at_stop <= loss * room


def test_a_trade_approved_earlier_in_the_tick_uses_up_the_room_for_the_next(sqlite_url: str) -> None:
    _engine, _sid, desk = _desk(sqlite_url)
    run_cycle(desk)
    loss, (first, second) = _judge_with_room(desk, 1.5, n=2)
    assert first.verdict is Verdict.APPROVE and first.plan is not None
    assert second.verdict is Verdict.MODIFY and second.rules == ["halt_headroom"]
    assert second.plan is not None
    assert first.plan.loss_at_stop + second.plan.loss_at_stop <= loss * 1.5


def _trade_until(desk, done, ticks: int = 600) -> None:  # type: ignore[no-untyped-def]
    for _ in range(ticks):
        run_cycle(desk)
        if done():
            return
    raise AssertionError(f"not reached in {ticks} ticks")


# --------------------------------------------------------------------------------------------------
# One owner per symbol, as the engine's judge sees the book


def _long(agent: str, symbol: str, price: float) -> Proposal:
    return Proposal(agent=agent, symbol=symbol, action=Action.OPEN_LONG, leverage=5,
                    margin_fraction=0.2, stop_price=price * 0.995, reasoning="test",
                    ref_price=price)


def test_the_judge_refuses_a_symbol_another_agent_holds_and_sizes_the_holder_at_market(
        sqlite_url: str) -> None:
    _engine, _sid, desk = _desk(sqlite_url)
    _trade_until(desk, lambda: bool(desk.ledger.open_positions()))
    (held,) = desk.ledger.open_positions()
    holder = desk.ledger.agents[held.agent_id]
    other = next(a for a in desk.ledger.agents.values()
                 if a.id != holder.id and a.status == "active")
    prices = dict(desk.marks)
    free = next(s for s in prices if s != held.symbol)
    taken, own = _long(other.name, held.symbol, prices[held.symbol]), _long(holder.name, free,
                                                                             prices[free])
    judge = Judge(desk, prices, desk.ledger.session.clock_ms + 1)
    judge.record(AgentDecision(agent=other.name, proposals=[taken]))
    judge.record(AgentDecision(agent=holder.name, proposals=[own]))
    judge.write()
    refused, sized = judge.decided[id(taken)][1], judge.decided[id(own)][1]
    assert refused.verdict is Verdict.REJECT and refused.rules == ["symbol_owner"]
    assert holder.name in refused.reason
    assert sized.verdict is Verdict.APPROVE and sized.plan is not None
    # 20% of the holder's equity at market (its open position marked to the tick's price),
    # rounded down to the symbol's quantity step
    asked, step = 0.2 * holder.equity(prices), float(desk.exchange.filters(free).step_size)
    assert asked - step * prices[free] / 5 <= sized.plan.margin <= asked + 1e-6
