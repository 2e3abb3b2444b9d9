"""The CEO's judgement of one tick's proposals: the hard rules (and the optional model reviewer)
applied to every decision, then the proposals, verdicts and new positions written in order.

Why it exists apart from ``run_cycle``: the tick's control flow reads on its own in
``core.desk.engine``; what happens between an agent's proposal and an order lives here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from sqlalchemy import insert

from core.ceo.rules import RiskContext, evaluate, evaluate_group
from core.desk import llm_services
from core.desk.context import Desk
from core.desk.ledger import AgentLedger, OpenPosition
from core.models import Action, AgentDecision, LLMCallRecord, Proposal, RiskVerdict, Verdict
from core.store.tables import CEO_DECISIONS, POSITIONS, PROPOSALS


@dataclass(slots=True)
class Row:
    """A row the judge will write; ``id`` is known once it is written."""

    id: int | None = None


class Judge:
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
        # id(proposal) -> (its CEO decision's id, the verdict), once ``write`` has stored them
        self.decided: dict[int, tuple[int, RiskVerdict]] = {}

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
        call = Row()
        if decision.llm_call is not None:  # stored before the proposals that cite it
            llm_services.charge(self.desk, decision.llm_call)
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

    def _propose(self, agent: AgentLedger, p: Proposal, call: Row) -> Row:
        row = Row()
        self.proposals += 1
        self._ops.append(("proposal", agent, p, call, row))
        return row

    def _judge_one(self, agent: AgentLedger, p: Proposal, call: Row) -> None:
        proposal = self._propose(agent, p, call)
        if p.action is Action.HOLD:
            return
        verdict = evaluate(p, self._context(agent, p.symbol), self.desk.limits)
        review_call = None
        if self.desk.llm is not None:  # the CEO's LLM reviewer may only tighten
            ((verdict, review_call),) = self.desk.llm.review(self.desk, agent, [p], [verdict])
        self._apply(agent, p, proposal, verdict, review_call)

    def _judge_group(self, agent: AgentLedger, proposals: list[Proposal], call: Row) -> None:
        rows = [self._propose(agent, p, call) for p in proposals]
        contexts = [self._context(agent, p.symbol) for p in proposals]
        verdicts = evaluate_group(proposals, contexts, self.desk.limits)  # legs see each other
        reviewed = (self.desk.llm.review(self.desk, agent, proposals, verdicts)
                    if self.desk.llm is not None else [(v, None) for v in verdicts])
        for p, row, (verdict, review_call) in zip(proposals, rows, reviewed, strict=True):
            self._apply(agent, p, row, verdict, review_call)

    def _apply(self, agent: AgentLedger, p: Proposal, proposal: Row, v: RiskVerdict,
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
                status="opening", trail_callback=plan.trail_callback,
                trail_activation=plan.trail_activation,
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
                row.id = llm_services.write_call(self.desk, agent_id, tick_ms, record)
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

    def _proposal_row(self, agent: AgentLedger, p: Proposal | None, kind: str, call: Row,
                      note: str | None = None, error: str | None = None,
                      raw: str | None = None) -> dict[str, object]:
        row: dict[str, object] = {
            "session_id": self.desk.ledger.session.id, "agent_id": agent.id,
            "tick_ms": self.tick_ms, "kind": kind, "reasoning": note, "error": error,
            "raw_reply": raw, "symbol": None, "action": None, "leverage": None,
            "margin_fraction": None, "stop_price": None, "take_profit": None,
            "confidence": None, "ref_price": None, "group_id": None,
            "llm_call_id": call.id, "trail_callback": None, "trail_activation": None,
        }
        if p is not None:
            row.update(symbol=p.symbol, action=p.action.value, leverage=p.leverage,
                       margin_fraction=p.margin_fraction, stop_price=p.stop_price,
                       take_profit=p.take_profit, confidence=p.confidence, ref_price=p.ref_price,
                       group_id=p.group, reasoning=p.reasoning,
                       trail_callback=p.trail_callback, trail_activation=p.trail_activation)
        return row

    def _write_verdict(self, agent: AgentLedger, p: Proposal, proposal: Row, v: RiskVerdict,
                       review_call: LLMCallRecord | None, pos: OpenPosition | None) -> None:
        db, sid, plan = self.desk.db, self.desk.ledger.session.id, v.plan
        review_id = (None if review_call is None
                     else llm_services.write_call(self.desk, None, self.tick_ms, review_call))
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
        self.decided[id(p)] = (int(decision_id), v)
        if pos is None:
            return
        pos.id = conn.execute(insert(POSITIONS), {
            "session_id": sid, "agent_id": agent.id, "decision_id": decision_id,
            "symbol": pos.symbol, "side": pos.side.value, "status": "opening", "quantity": 0.0,
            "entry_price": 0.0, "leverage": pos.leverage, "margin": 0.0,
            "stop_distance": pos.stop_distance, "stop_price": pos.stop_price,
            "take_profit": pos.take_profit, "group_id": pos.group_id, "opened_ms": self.tick_ms,
            "trail_callback": pos.trail_callback, "trail_activation": pos.trail_activation,
        }).inserted_primary_key[0]
