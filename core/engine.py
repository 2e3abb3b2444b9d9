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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from core import review
from core.agents.base import Strategy
from core.agents.runner import build_view, is_due, run_agents
from core.clock import Clock
from core.config import Settings
from core.coverage import cover_naked
from core.errors import FeedExhausted
from core.exchanges.base import Exchange
from core.execution import Execution
from core.feeds.base import MarketFeed
from core.ledger import AgentLedger, Ledger, OpenPosition
from core.llm import audit  # the LLM audit trail
from core.models import (
    Action,
    AgentDecision,
    LLMCallRecord,
    MarketStep,
    Proposal,
    RiskVerdict,
    Verdict,
)
from core.risk import RiskContext, RiskLimits, evaluate, evaluate_group
from core.store.pending import PendingRows
from core.store.tables import (
    AGENTS,
    CEO_DECISIONS,
    POSITIONS,
    PROPOSALS,
    SESSIONS,
)

if TYPE_CHECKING:
    from core.llm.audit import LLMServices

log = logging.getLogger(__name__)

ACTIVE_SESSION = ("created", "running", "paused", "halted", "stopping")
PRIVATE_FLUSH_TICKS = 500  # a private store (backtest) writes its appended rows this often


@dataclass(slots=True)
class CycleReport:
    tick_ms: int
    status: str
    equity: float = 0.0
    drawdown_pct: float = 0.0
    proposals: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    events: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Desk:
    """Everything one session's engine needs; built by core/runtime.py."""

    db: Session
    ledger: Ledger
    feed: MarketFeed
    exchange: Exchange
    clock: Clock
    strategies: dict[str, Strategy]
    settings: Settings
    limits: RiskLimits
    commit: Callable[[], None]
    concurrent_agents: bool = False
    marks: dict[str, float] = field(default_factory=dict)
    llm: LLMServices | None = None  # budget, CEO reviewer, shadow book (None: rules only)
    # Nobody else writes or reads this store while the engine runs (a backtest), and nothing of a
    # run must survive a crash (an interrupted run is run again): no user intents to read each
    # tick, appended rows are flushed every PRIVATE_FLUSH_TICKS ticks (held notes also before a
    # tick's proposals, so proposal ids stay in time order), and ``commit`` may hold everything
    # for ``flush`` to commit (see core/backtest/runner.py).
    private_store: bool = False
    pending: PendingRows = field(default_factory=PendingRows)
    execution: Execution = field(init=False)
    # Stopped while no engine traded it (or its engine died mid-stop): nothing moved its market
    # since, so the stop closes at the market the session last saw instead of stepping on.
    stopped_while_idle: bool = field(init=False)

    def __post_init__(self) -> None:
        self.execution = Execution(
            self.db, self.ledger, self.exchange, commit=self.commit, now_ms=self.clock.now_ms
        )
        self.stopped_while_idle = self.ledger.session.status == "stopping"


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
        cover_naked(desk.execution)
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
        if session.status == "running" and tick_ms > session.decided_ms:
            _decide_and_execute(desk, prices, tick_ms, report)
        if session.status in ("running", "paused"):
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
    """The market this tick acts on: the next one, or for a stop the current one where stepping
    would move a market nobody traded (an idle stop) or there is nothing left to step to."""
    stopping = desk.ledger.session.status == "stopping"
    if stopping and desk.stopped_while_idle:
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
    desk.execution.log_event("session", f"{expected} → {new}: {reason}")


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
    desk.db.execute(
        insert(CEO_DECISIONS).values(
            session_id=session.id, ts_ms=tick_ms, kind="halt", rules="drawdown_halt",
            reason=reason, changes=json.dumps({"equity": [session.peak_equity, round(equity, 2)]}),
        )
    )
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
    for agent in ledger.agents.values():
        strategy = desk.strategies.get(agent.spec.key)
        if strategy is None or agent.status != "active" or not is_due(strategy, base, prev_ms, tick_ms):
            continue
        jobs.append((strategy, build_view(agent, ledger, desk.feed, prices, tick_ms)))
    if desk.llm is not None and jobs:  # the day's LLM budget, from the store
        desk.llm.before_agents(desk, tick_ms)
        desk.commit()  # no write lock is held while the models think
    decisions = run_agents(jobs, concurrent=desk.concurrent_agents) if jobs else []
    judge = _Judge(desk, prices, tick_ms)
    for decision in decisions:
        judge.record(decision)
    judge.write()
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


@dataclass(slots=True)
class _Row:
    """A row the judge will write; ``id`` is known once it is written."""

    id: int | None = None


class _Judge:
    """Applies the CEO's hard rules to one tick's proposals, then writes the log.

    Two passes: ``record`` judges every decision in memory (reserving margin and exposure as plans
    are approved, so later proposals in the tick see them, and asking the optional LLM reviewer),
    and ``write`` stores the calls, proposals, verdicts and positions in order. No database write
    happens while a model is being asked.
    """

    def __init__(self, desk: Desk, prices: dict[str, float], tick_ms: int) -> None:
        self.desk = desk
        self.prices = prices
        self.tick_ms = tick_ms
        self.exits: list[OpenPosition] = []
        self.entries: list[tuple[OpenPosition, Decimal]] = []
        self.proposals = 0
        self.counts = {v.value: 0 for v in Verdict}
        self._ops: list[tuple] = []  # what ``write`` stores, in order

    # The account's figures, read when the first proposal of the tick is judged (most ticks have
    # none); approved plans then reserve from them.
    @cached_property
    def available(self) -> float:
        return float(self.desk.exchange.balance().available_balance)

    @cached_property
    def gross(self) -> float:
        return self.desk.ledger.gross_notional(self.prices)

    @cached_property
    def equity(self) -> float:
        return self.desk.ledger.equity(self.prices)

    @cached_property
    def headroom(self) -> float:
        """How much the session may still lose before its drawdown halt fires."""
        limit = self.desk.settings.drawdown_halt_pct
        if not math.isfinite(limit):
            return math.inf
        return self.equity - self.desk.ledger.session.peak_equity * (1 - limit)

    # ------------------------------------------------------------------ pass 1: judge in memory
    def record(self, decision: AgentDecision) -> None:
        agent = next(a for a in self.desk.ledger.agents.values() if a.name == decision.agent)
        call = _Row()
        if decision.llm_call is not None:  # stored before the proposals that cite it
            audit.charge(self.desk, decision.llm_call)
            self._ops.append(("call", agent.id, decision.llm_call, call))
        if decision.failure is not None:
            agent.llm_failures += 1
            self._ops.append(("note", agent, "failure", None, decision.failure, decision.raw_reply, call))
            return
        if not decision.proposals:
            self._ops.append(("note", agent, "abstain", decision.note or "no signal", None, None, call))
            return
        groups: dict[str | None, list[Proposal]] = {}
        for p in decision.proposals:
            groups.setdefault(p.group if p.opens else None, []).append(p)
        for group, proposals in groups.items():
            if group is None:
                for p in proposals:
                    self._judge_one(agent, p, call)
            else:
                self._judge_group(agent, proposals, call)

    def _context(self, agent: AgentLedger, symbol: str) -> RiskContext:
        owner = self.desk.ledger.owner_of(symbol)
        return RiskContext(
            session_status=self.desk.ledger.session.status,
            agent_status=agent.status,
            agent_equity=agent.equity(self.prices),
            agent_free_margin=agent.free_margin(self.prices),
            agent_open_symbols=frozenset(agent.positions),
            risk_level=agent.spec.risk_level,
            agent_max_leverage=agent.spec.max_leverage,
            symbol_owner=owner.name if owner else None,
            filters=self.desk.exchange.filters(symbol),
            price=self.prices[symbol],
            account_available=self.available,
            session_equity=self.equity,
            gross_notional=self.gross,
            halt_headroom=self.headroom,
        )

    def _propose(self, agent: AgentLedger, p: Proposal, call: _Row) -> _Row:
        row = _Row()
        self.proposals += 1
        self._ops.append(("proposal", agent, p, call, row))
        return row

    def _judge_one(self, agent: AgentLedger, p: Proposal, call: _Row) -> None:
        proposal = self._propose(agent, p, call)
        if p.action is Action.HOLD:
            return
        verdict = evaluate(p, self._context(agent, p.symbol), self.desk.limits)
        review_call = None
        if self.desk.llm is not None:  # the CEO's LLM reviewer may only tighten
            ((verdict, review_call),) = self.desk.llm.review(self.desk, agent, [p], [verdict])
        self._apply(agent, p, proposal, verdict, review_call)

    def _judge_group(self, agent: AgentLedger, proposals: list[Proposal], call: _Row) -> None:
        rows = [self._propose(agent, p, call) for p in proposals]
        contexts = [self._context(agent, p.symbol) for p in proposals]
        verdicts = evaluate_group(proposals, contexts, self.desk.limits)  # legs see each other
        reviewed = (self.desk.llm.review(self.desk, agent, proposals, verdicts)
                    if self.desk.llm is not None else [(v, None) for v in verdicts])
        for p, row, (verdict, review_call) in zip(proposals, rows, reviewed, strict=True):
            self._apply(agent, p, row, verdict, review_call)

    def _apply(self, agent: AgentLedger, p: Proposal, proposal: _Row, v: RiskVerdict,
               review_call: LLMCallRecord | None) -> None:
        self.counts[v.verdict.value] += 1
        plan = v.plan
        pos = None
        if v.verdict is not Verdict.REJECT and p.action is Action.CLOSE:
            held = agent.positions.get(p.symbol)
            if held is not None and held.quantity > 0:
                self.exits.append(held)
        elif v.verdict is not Verdict.REJECT and plan is not None:
            pos = OpenPosition(
                id=0, agent_id=agent.id, symbol=plan.symbol, side=plan.side, quantity=0.0,
                entry_price=0.0, leverage=plan.leverage, margin=plan.margin,
                stop_distance=plan.stop_distance, stop_price=plan.stop_price,
                take_profit=plan.take_profit, group_id=p.group, opened_ms=self.tick_ms,
                status="opening",
            )  # its id is set when ``write`` stores it
            agent.positions[plan.symbol] = pos
            # reserve what the plan will use so later proposals in this tick see it
            self.available -= plan.margin
            self.gross += plan.notional
            self.headroom -= plan.loss_at_stop
            self.entries.append((pos, plan.quantity))
        self._ops.append(("verdict", agent, p, proposal, v, review_call, pos))

    # ------------------------------------------------------------------ pass 2: write
    def write(self) -> None:
        db, tick_ms = self.desk.db, self.tick_ms
        notes: list[dict[str, object]] = []
        for op in self._ops:
            kind = op[0]
            if kind == "call":
                _, agent_id, record, row = op
                row.id = audit.write_call(self.desk, agent_id, tick_ms, record)
            elif kind == "note":
                _, agent, note_kind, note, error, raw, call = op
                notes.append(self._proposal_row(agent, None, note_kind, call, note, error, raw))
            elif kind == "proposal":
                _, agent, p, call, row = op
                self.desk.pending.flush(db.connection(), PROPOSALS)  # ids in time order
                row.id = db.connection().execute(insert(PROPOSALS), self._proposal_row(
                    agent, p, "proposal", call)).inserted_primary_key[0]
            else:
                self._write_verdict(*op[1:])
        if notes:
            self.desk.pending.add(PROPOSALS, notes)
        self._ops = []

    def _proposal_row(self, agent: AgentLedger, p: Proposal | None, kind: str, call: _Row,
                      note: str | None = None, error: str | None = None,
                      raw: str | None = None) -> dict[str, object]:
        row: dict[str, object] = {
            "session_id": self.desk.ledger.session.id, "agent_id": agent.id,
            "tick_ms": self.tick_ms, "kind": kind, "reasoning": note, "error": error,
            "raw_reply": raw, "symbol": None, "action": None, "leverage": None,
            "margin_fraction": None, "stop_price": None, "take_profit": None,
            "confidence": None, "ref_price": None, "group_id": None,
            "llm_call_id": call.id,
        }
        if p is not None:
            row.update(symbol=p.symbol, action=p.action.value, leverage=p.leverage,
                       margin_fraction=p.margin_fraction, stop_price=p.stop_price,
                       take_profit=p.take_profit, confidence=p.confidence, ref_price=p.ref_price,
                       group_id=p.group, reasoning=p.reasoning)
        return row

    def _write_verdict(self, agent: AgentLedger, p: Proposal, proposal: _Row, v: RiskVerdict,
                       review_call: LLMCallRecord | None, pos: OpenPosition | None) -> None:
        db, sid, plan = self.desk.db, self.desk.ledger.session.id, v.plan
        review_id = (None if review_call is None
                     else audit.write_call(self.desk, None, self.tick_ms, review_call))
        conn = db.connection()
        decision_id = conn.execute(insert(CEO_DECISIONS), {
            "session_id": sid, "agent_id": agent.id, "proposal_id": proposal.id,
            "ts_ms": self.tick_ms, "kind": "trade", "symbol": p.symbol,
            "verdict": v.verdict.value, "rules": ",".join(v.rules),
            "changes": json.dumps(v.changes, default=str) if v.changes else None,
            "reason": v.reason, "proposed_leverage": p.leverage if p.opens else None,
            "final_leverage": plan.leverage if plan else None,
            "proposed_margin": round(p.margin_fraction * agent.equity(self.prices), 2)
            if p.opens else None,
            "final_margin": round(plan.margin, 2) if plan else None,
            "llm_call_id": review_id,  # the CEO reviewer's call
        }).inserted_primary_key[0]
        if pos is None:
            return
        pos.id = conn.execute(insert(POSITIONS), {
            "session_id": sid, "agent_id": agent.id, "decision_id": decision_id,
            "symbol": pos.symbol, "side": pos.side.value, "status": "opening", "quantity": 0.0,
            "entry_price": 0.0, "leverage": pos.leverage, "margin": 0.0,
            "stop_distance": pos.stop_distance, "stop_price": pos.stop_price,
            "take_profit": pos.take_profit, "group_id": pos.group_id, "opened_ms": self.tick_ms,
        }).inserted_primary_key[0]
