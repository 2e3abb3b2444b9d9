"""The CEO's periodic portfolio review and the equity snapshots, due by the engine clock.

The rules themselves are pure functions in core/ceo/portfolio.py; this module gathers the numbers from
the ledger, applies the outcome (pause, rebalance) to the store and writes the CEO log with the
reason and the old and new values.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, case, insert, select, update

from core.alerts import events as alerts
from core.ceo.portfolio import (
    AgentAllocation,
    AgentPerformance,
    plan_rebalance,
    review_agents,
    score_from_returns,
)
from core.store.tables import (
    AGENTS,
    CEO_DECISIONS,
    EQUITY_SNAPSHOTS,
    SESSIONS,
)

if TYPE_CHECKING:
    from core.desk.context import Desk


_INTENT_NOW = (select(SESSIONS.c.intent_version).where(SESSIONS.c.id == AGENTS.c.session_id)
               .scalar_subquery())
_SAVE_PEAKS = update(AGENTS).where(AGENTS.c.id == bindparam("aid")).values(
    # a user command since the tick read intents (e.g. resuming the agent resets its peak) wins
    peak_equity=case((and_(bindparam("v_intent") == _INTENT_NOW,
                           AGENTS.c.peak_equity < bindparam("v_peak")), bindparam("v_peak")),
                     else_=AGENTS.c.peak_equity),
    llm_failures=bindparam("v_failures"),
)


def periodic(desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
    """Pause underperformers and rebalance free capital when their intervals are due."""
    session, settings = desk.ledger.session, desk.settings
    if tick_ms - session.last_review_ms >= settings.review_interval_minutes * 60_000:
        session.last_review_ms = tick_ms
        _review_agents(desk, prices, tick_ms)
    if tick_ms - session.last_rebalance_ms >= settings.rebalance_interval_hours * 3_600_000:
        closed = sum(len(a.recent_returns) for a in desk.ledger.agents.values())
        if closed >= settings.rebalance_min_trades:
            session.last_rebalance_ms = tick_ms
            _rebalance(desk, prices, tick_ms)


def _review_agents(desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
    s = desk.settings  # agent peaks: raised every tick by run_cycle, saved here
    perfs = [
        AgentPerformance(a.name, a.status, a.equity(prices), a.peak_equity, tuple(a.recent_results))
        for a in desk.ledger.agents.values()
    ]
    by_name = {a.name: a for a in desk.ledger.agents.values()}
    for pause in review_agents(
        perfs,
        pause_drawdown_pct=s.agent_pause_drawdown_pct,
        losing_streak=s.agent_pause_losing_streak,
        min_win_rate=s.agent_pause_min_win_rate,
        win_rate_window=s.agent_pause_win_rate_window,
    ):
        agent = by_name[pause.name]
        changed = desk.db.execute(
            update(AGENTS).where(AGENTS.c.id == agent.id, AGENTS.c.status == "active")
            .values(status="paused", pause_reason=pause.reason, paused_ms=tick_ms, paused_by="ceo",
                    ceo_pauses=AGENTS.c.ceo_pauses + 1)
        ).rowcount
        if not changed:
            continue
        agent.status, agent.pause_reason = "paused", pause.reason
        agent.paused_ms, agent.paused_by = tick_ms, "ceo"
        agent.ceo_pauses += 1
        reason = (f"{agent.name} paused: {pause.reason}; its open positions keep their stops"
                  f"{_cooldown_note(desk, agent.ceo_pauses)}")
        decision_id = desk.db.execute(
            insert(CEO_DECISIONS).values(
                session_id=desk.ledger.session.id, agent_id=agent.id, ts_ms=tick_ms, kind="pause",
                rules=pause.rule, reason=reason,
                changes=json.dumps({"status": ["active", "paused"]}),
            )
        ).inserted_primary_key[0]
        _alert_agent(desk, int(decision_id), tick_ms, agent.name, paused=True, reason=reason)
    _resume_rested(desk, prices, tick_ms)
    changed = [a for a in desk.ledger.agents.values()
               if a.saved_peak != (a.peak_equity, a.llm_failures)]
    if changed:
        desk.db.connection().execute(_SAVE_PEAKS, [
            {"aid": a.id, "v_peak": a.peak_equity, "v_failures": a.llm_failures,
             "v_intent": desk.ledger.session.intent_version} for a in changed])
        for a in changed:
            a.saved_peak = (a.peak_equity, a.llm_failures)


MAX_COOLDOWN_HOURS = 168.0


def cooldown_hours(base_hours: float, ceo_pauses: int) -> float:
    """The rest before the CEO resumes an agent: doubles with every pause, capped at a week."""
    return min(MAX_COOLDOWN_HOURS, base_hours * 2 ** max(0, ceo_pauses - 1))


def _cooldown_note(desk: Desk, ceo_pauses: int) -> str:
    base = desk.settings.agent_resume_after_hours
    if base <= 0:
        return "; it stays paused until a user resumes it"
    return f"; the CEO resumes it after {cooldown_hours(base, ceo_pauses):g} h (pause #{ceo_pauses})"


def _resume_rested(desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
    """Give agents the CEO paused a fresh start once their (escalating) cooldown has passed."""
    base = desk.settings.agent_resume_after_hours
    if base <= 0:
        return
    for agent in desk.ledger.agents.values():
        hours = cooldown_hours(base, agent.ceo_pauses)
        if (agent.status != "paused" or agent.paused_by != "ceo" or agent.paused_ms is None
                or tick_ms - agent.paused_ms < hours * 3_600_000):
            continue
        equity = agent.equity(prices)
        changed = desk.db.execute(
            update(AGENTS).where(AGENTS.c.id == agent.id, AGENTS.c.status == "paused")
            .values(status="active", pause_reason=None, paused_ms=None, paused_by=None,
                    review_from_ms=tick_ms, peak_equity=equity)
        ).rowcount
        if not changed:
            continue
        reason = (f"{agent.name} resumed after a {hours:g} h cooldown (was paused: "
                  f"{agent.pause_reason}); its record starts afresh")
        decision_id = desk.db.execute(
            insert(CEO_DECISIONS).values(
                session_id=desk.ledger.session.id, agent_id=agent.id, ts_ms=tick_ms, kind="resume",
                rules="cooldown", reason=reason,
                changes=json.dumps({"status": ["paused", "active"]}),
            )
        ).inserted_primary_key[0]
        _alert_agent(desk, int(decision_id), tick_ms, agent.name, paused=False, reason=reason)
        agent.status, agent.pause_reason, agent.paused_ms, agent.paused_by = "active", None, None, None
        agent.review_from_ms, agent.peak_equity = tick_ms, equity
        agent.recent_results.clear()


def _alert_agent(desk: Desk, decision_id: int, tick_ms: int, name: str, *, paused: bool,
                 reason: str) -> None:
    """The outbox row of a CEO pause or resume, committed with the tick (none in a backtest)."""
    if not desk.private_store:
        alerts.agent_changed(desk.db.connection(), session_id=desk.ledger.session.id,
                             decision_id=decision_id, ts_ms=tick_ms, agent=name, paused=paused,
                             reason=reason)


def _rebalance(desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
    agents = list(desk.ledger.agents.values())
    equity = desk.ledger.equity(prices)
    allocs = [
        AgentAllocation(a.name, a.status, a.equity(prices), a.locked_margin,
                        score_from_returns(list(a.recent_returns)), a.spec.capital_share)
        for a in agents
    ]
    s = desk.settings
    plan = plan_rebalance(allocs, session_equity=equity, min_share=s.allocation_min,
                          max_share=s.allocation_max)
    if plan is None:
        return
    changes: dict[str, list[float]] = {}
    for agent in agents:
        delta = plan.transfers.get(agent.name, 0.0)
        if abs(delta) < 1e-9:
            continue
        before = agent.equity(prices)
        agent.transfer(delta, before)
        agent.peak_equity += delta  # a transfer is not a gain or a drawdown
        changes[agent.name] = [round(before / equity, 4), round(agent.equity(prices) / equity, 4)]
        desk.db.execute(update(AGENTS).where(AGENTS.c.id == agent.id).values(
            capital=agent.capital, peak_equity=AGENTS.c.peak_equity + delta,
            return_index=agent.return_index, return_base=agent.return_base))
    if changes:
        desk.db.execute(
            insert(CEO_DECISIONS).values(
                session_id=desk.ledger.session.id, ts_ms=tick_ms, kind="rebalance",
                rules="rebalance", reason=plan.reason, changes=json.dumps(changes),
            )
        )


def snapshot(desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
    """Record portfolio and per-agent equity at engine time ``tick_ms`` (each figure computed
    once per agent; the session's are the same sums, in the same order, as the ledger's)."""
    ledger = desk.ledger
    ledger.session.last_snapshot_ms = tick_ms
    sid = ledger.session.id
    agent_rows, equities, unrealized, notionals = [], [], [], []
    for a in ledger.agents.values():
        a_unrealized = a.unrealized(prices)
        a_equity = a.cash + a_unrealized  # what a.equity(prices) computes
        a_notionals = [p.notional(prices[p.symbol]) for p in a.positions.values()]
        equities.append(a_equity)
        unrealized.append(a_unrealized)
        notionals.extend(a_notionals)
        agent_rows.append({
            "session_id": sid, "agent_id": a.id, "ts_ms": tick_ms, "equity": a_equity,
            "unrealized": a_unrealized, "margin_used": a.locked_margin,
            "gross_notional": sum(a_notionals),
            "drawdown_pct": max(0.0, 1 - a_equity / a.peak_equity) if a.peak_equity > 0 else 0.0,
        })
    equity = sum(equities)
    desk.pending.add(EQUITY_SNAPSHOTS, [{
        "session_id": sid, "agent_id": None, "ts_ms": tick_ms, "equity": equity,
        "unrealized": sum(unrealized),
        "margin_used": sum(r["margin_used"] for r in agent_rows),
        "gross_notional": sum(notionals),
        "drawdown_pct": ledger.drawdown_pct(equity),
    }, *agent_rows])
