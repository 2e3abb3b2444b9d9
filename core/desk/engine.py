"""``run_cycle``: one engine tick, the same code for paper, live and backtest.

Order of a tick (DESIGN.md section 7): read the user's intents → step the market → let the venue
process triggers and book what it did → stop / halt checks → run the due agents → the CEO judges
every proposal under the hard rules → execute approvals (exits first) → periodic CEO review and
snapshots → advance the session clock and commit. The clock, feed, exchange and agents are passed
in; nothing here knows which mode it runs in.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal

from sqlalchemy import and_, bindparam, case, insert, select, update

from core.agents.roster import EXTERNAL
from core.alerts import events as alerts
from core.desk import manual, review, signals
from core.desk.agent_runner import build_view, is_due, run_agents
from core.desk.context import PRIVATE_FLUSH_TICKS, CycleReport, Desk
from core.desk.judge import Judge
from core.errors import FeedExhausted
from core.models import ExternalSignal, MarketStep
from core.store.tables import AGENTS, CEO_DECISIONS, SESSIONS

log = logging.getLogger(__name__)


def run_cycle(desk: Desk) -> CycleReport:
    ledger, session = desk.ledger, desk.ledger.session
    _refresh_intents(desk)
    if session.status == "created":
        _set_status(desk, "running", "created", "engine started the session")
    step = _market_step(desk)
    tick_ms = step.now_ms
    report = CycleReport(tick_ms=tick_ms, status=session.status)
    _arm_loss_guard(desk)
    events = desk.exchange.sync(step)
    if events:
        desk.execution.book_events(events)
        desk.commit()
    if desk.llm is not None:  # the shadow twins' stops and take-profits
        desk.llm.on_market(desk, step)
    if desk.execution.unknown:  # live: orders whose answer was lost, asked again (never re-sent)
        desk.execution.settle_unknown()
    if desk.execution.naked:  # live: a position without its stop is re-covered first
        desk.execution.cover_naked()
    if not desk.private_store:  # the trader's own closes, cancels and flattens
        manual.carry_out(desk)
    prices = step.prices

    if session.status == "stopping":
        _close_everything(desk, "session_stop")
        if not ledger.open_positions():
            desk.execution.cancel_orders_of_closed()  # every order: nothing is held any more
            _set_status(desk, "stopped", "stopping", "session stopped: every position closed")
            desk.db.execute(update(SESSIONS).where(SESSIONS.c.id == session.id).values(stopped_ms=tick_ms))
            _stop_agents(desk, "session stopped")
            review.snapshot(desk, prices, tick_ms)
    else:
        equity = 0.0
        for agent in ledger.agents.values():  # the CEO's review judges drawdowns from true peaks
            agent_equity = agent.equity(prices)
            agent.peak_equity = max(agent.peak_equity, agent_equity)
            equity += agent_equity
        session.peak_equity = max(session.peak_equity, equity)
        drawdown = ledger.drawdown_pct(equity)
        session.max_drawdown_pct = max(session.max_drawdown_pct, drawdown)
        report.equity, report.drawdown_pct = equity, drawdown
        if session.status in ("running", "paused") and (
                drawdown >= desk.settings.drawdown_halt_pct or events.loss_guard):
            _halt(desk, equity, drawdown, tick_ms, at_venue=events.loss_guard)
            report.events.append("drawdown halt")
        elif session.status == "halted" and ledger.open_positions():
            _close_everything(desk, "drawdown_halt")
        if session.status == "running" and tick_ms > session.decided_ms and not desk.hold_market:
            _decide_and_execute(desk, prices, tick_ms, report)
        if session.status in ("running", "paused") and not desk.hold_market:
            review.periodic(desk, prices, tick_ms)
        if tick_ms - session.last_snapshot_ms >= desk.settings.snapshot_interval_minutes * 60_000:
            review.snapshot(desk, prices, tick_ms)

    session.clock_ms = tick_ms
    session.ticks += 1
    desk.marks = prices
    if (not desk.private_store or session.ticks % PRIVATE_FLUSH_TICKS == 0
            or session.status == "stopped"):
        flush(desk)
    report.status = session.status
    return report


def _market_step(desk: Desk) -> MarketStep:
    """The market this tick acts on: the next one, or the current one where stepping would move a
    market nobody traded (an idle stop, a trader's command while no engine runs) or there is
    nothing left to step to."""
    stopping = desk.ledger.session.status == "stopping"
    if (stopping and desk.stopped_while_idle) or desk.hold_market:
        return desk.feed.current()
    try:
        return desk.feed.step()
    except FeedExhausted:
        if not stopping:
            raise
        return desk.feed.current()  # a finished replay can still be closed at its last prices


def flush(desk: Desk) -> None:
    """Write what the ticks held back (appended rows, the session's clock and peaks) and commit
    (a private store's ``commit`` may hold its writes for this one)."""
    desk.pending.flush(desk.db.connection())
    _save_session(desk)
    (desk.db.commit if desk.private_store else desk.commit)()


# ---------------------------------------------------------------------- intents and status
_S = SESSIONS
_A = AGENTS
_READ_SESSION = select(_S.c.status, _S.c.peak_equity, _S.c.intent_version).where(
    _S.c.id == bindparam("sid"))
_READ_AGENTS = select(
    _A.c.id, _A.c.status, _A.c.pause_reason, _A.c.peak_equity, _A.c.review_from_ms,
    _A.c.paused_ms, _A.c.paused_by,
).where(_A.c.session_id == bindparam("sid"))
# Built once: constructing statements per tick costs more than running them.
_SAVE_SESSION = update(_S).where(_S.c.id == bindparam("sid")).values(
    clock_ms=bindparam("v_clock"), ticks=bindparam("v_ticks"), decided_ms=bindparam("v_decided"),
    last_review_ms=bindparam("v_review"), last_rebalance_ms=bindparam("v_rebalance"),
    last_snapshot_ms=bindparam("v_snapshot"), marks=bindparam("v_marks"),
    max_drawdown_pct=case((_S.c.max_drawdown_pct < bindparam("v_mdd"), bindparam("v_mdd")),
                          else_=_S.c.max_drawdown_pct),
    # a user command during the tick (e.g. acknowledging a halt resets the peak) wins
    peak_equity=case((and_(_S.c.intent_version == bindparam("v_intent"),
                           _S.c.peak_equity < bindparam("v_peak")), bindparam("v_peak")),
                     else_=_S.c.peak_equity),
)


def _refresh_intents(desk: Desk) -> None:
    """Adopt what the user changed since the last tick: session status and resets always, agent
    statuses when a user command bumped the intent version."""
    if desk.private_store:
        return
    session = desk.ledger.session
    conn = desk.db.connection()
    row = conn.execute(_READ_SESSION, {"sid": session.id}).one()
    session.status, session.peak_equity = row.status, row.peak_equity
    if row.intent_version == session.intent_version:
        return
    session.intent_version = row.intent_version
    for r in conn.execute(_READ_AGENTS, {"sid": session.id}):
        agent = desk.ledger.agents[r.id]
        if r.review_from_ms != agent.review_from_ms:
            agent.recent_results.clear()
            agent.review_from_ms = r.review_from_ms
        agent.status, agent.pause_reason, agent.peak_equity = r.status, r.pause_reason, r.peak_equity
        agent.saved_peak = None  # the store's peak may now differ from what this desk last wrote
        agent.paused_ms, agent.paused_by = r.paused_ms, r.paused_by


def _set_status(desk: Desk, new: str, expected: str, reason: str) -> None:
    session = desk.ledger.session
    desk.db.execute(
        update(SESSIONS).where(SESSIONS.c.id == session.id, SESSIONS.c.status == expected)
        .values(status=new, status_reason=reason)
    )
    session.status = new
    text = f"{expected} → {new}: {reason}"
    decision_id = desk.execution.log_event("session", text)
    if new == "stopped" and not desk.private_store:  # paused, resumed: the user's, in the service
        alerts.session_changed(desk.db.connection(), session_id=session.id,
                               decision_id=decision_id, status=new, reason=text,
                               ts_ms=desk.clock.now_ms())


def _save_session(desk: Desk) -> None:
    s = desk.ledger.session
    desk.db.connection().execute(_SAVE_SESSION, {
        "sid": s.id, "v_clock": s.clock_ms, "v_ticks": s.ticks, "v_decided": s.decided_ms,
        "v_review": s.last_review_ms, "v_rebalance": s.last_rebalance_ms,
        "v_snapshot": s.last_snapshot_ms, "v_marks": json.dumps(desk.marks),
        "v_mdd": s.max_drawdown_pct, "v_peak": s.peak_equity, "v_intent": s.intent_version,
    })


def _close_everything(desk: Desk, reason: str) -> None:
    for pos in desk.ledger.open_positions():
        if pos.quantity > 0:
            desk.execution.close_position(pos, reason)
        else:
            desk.execution.fail_opening(pos.id, reason)


def _stop_agents(desk: Desk, reason: str) -> None:
    for agent in desk.ledger.agents.values():
        if agent.status != "stopped":
            agent.status, agent.pause_reason = "stopped", reason
    desk.db.execute(
        update(AGENTS).where(AGENTS.c.session_id == desk.ledger.session.id)
        .values(status="stopped", pause_reason=reason)
    )


def _arm_loss_guard(desk: Desk) -> None:
    """Tell the venue how much more the session may lose before the drawdown halt, so a venue
    that can (the paper one) closes everything where the limit is reached inside a bar."""
    session, ledger = desk.ledger.session, desk.ledger
    limit = desk.settings.drawdown_halt_pct
    positions = ledger.open_positions()
    if (session.status not in ("running", "paused") or not positions or not math.isfinite(limit)
            or session.peak_equity <= 0 or any(p.symbol not in desk.marks for p in positions)):
        desk.exchange.arm_loss_guard(None)
        return
    floor = session.peak_equity * (1 - limit)
    desk.exchange.arm_loss_guard(Decimal(repr(max(0.0, ledger.equity(desk.marks) - floor))))


def _halt(desk: Desk, equity: float, drawdown: float, tick_ms: int, *, at_venue: bool = False) -> None:
    session = desk.ledger.session
    where = ("the limit was reached inside the bar and the venue's loss guard closed every "
             "position there; " if at_venue else "")
    reason = (f"equity {equity:,.2f} USDT is {drawdown:.2%} below the peak "
              f"{session.peak_equity:,.2f} (limit {desk.settings.drawdown_halt_pct:.0%}): {where}"
              "orders cancelled, every position closed, agents stopped")
    decision_id = desk.db.execute(
        insert(CEO_DECISIONS).values(
            session_id=session.id, ts_ms=tick_ms, kind="halt", rules="drawdown_halt",
            reason=reason, changes=json.dumps({"equity": [session.peak_equity, round(equity, 2)]}),
        )
    ).inserted_primary_key[0]
    if not desk.private_store:  # committed below with the halt itself
        alerts.session_halted(desk.db.connection(), session_id=session.id,
                              decision_id=int(decision_id), ts_ms=tick_ms, equity=equity,
                              peak=session.peak_equity, drawdown=drawdown,
                              limit=desk.settings.drawdown_halt_pct, at_venue=at_venue)
    expected = session.status
    _set_status(desk, "halted", expected, "drawdown halt")
    desk.commit()
    _close_everything(desk, "drawdown_halt")
    desk.execution.cancel_orders_of_closed()  # a position whose close failed keeps its stop
    _stop_agents(desk, "drawdown halt")


# ---------------------------------------------------------------------- agents and the CEO
def _decide_and_execute(desk: Desk, prices: dict[str, float], tick_ms: int, report: CycleReport) -> None:
    ledger = desk.ledger
    prev_ms = ledger.session.clock_ms
    base = desk.feed.base_interval
    jobs = []
    taken: list[ExternalSignal] = []
    for agent in ledger.agents.values():
        strategy = desk.strategies.get(agent.spec.key)
        if strategy is None:
            continue
        if agent.spec.key == EXTERNAL.key:  # due when a signal came in, on no bar schedule
            if desk.private_store or not (taken := signals.claim(desk, agent)):
                continue
        elif agent.status != "active" or not is_due(strategy, base, prev_ms, tick_ms):
            continue
        view = build_view(agent, ledger, desk.feed, prices, tick_ms)
        if agent.spec.key == EXTERNAL.key:
            view.signals = tuple(taken)
        jobs.append((strategy, view))
    if desk.llm is not None and jobs:  # the day's LLM budget, from the store
        desk.llm.before_agents(desk, tick_ms)
        desk.commit()  # no write lock is held while the models think
    decisions = run_agents(jobs, concurrent=desk.concurrent_agents) if jobs else []
    judge = Judge(desk, prices, tick_ms)
    for decision in decisions:
        judge.record(decision)
    judge.write()
    if taken:
        said = next(d for d in decisions if d.agent == EXTERNAL.name)
        signals.settle(desk, taken, said.proposals if said.failure is None else [], judge)
    report.proposals = judge.proposals
    for verdict, n in judge.counts.items():
        report.verdicts[verdict] += n
    if desk.llm is not None:  # budget log, shadow baseline
        desk.llm.after_agents(desk, decisions, prices, tick_ms)
    ledger.session.decided_ms = tick_ms
    if not (judge.exits or judge.entries):
        return  # nothing to send: the end-of-tick commit makes the decisions durable
    if not desk.private_store:  # the tick's notes too: a failed send must not lose them
        desk.pending.flush(desk.db.connection())
        _save_session(desk)
    desk.commit()  # decisions and their positions are durable before any order leaves
    for pos in judge.exits:
        desk.execution.close_position(pos, "agent")
    for pos, quantity in judge.entries:
        desk.execution.open_position(pos, quantity)


