"""External signals on the engine's tick: claimed before the agents run, settled with the CEO's
verdict after the judge has written it.

Why it exists: a signal sent over the API must be proposed once, judged like any proposal and
answered with what the CEO decided. ``claim`` takes the session's pending signals (oldest first),
marks them ``working`` and commits before anything is judged, so a crash never proposes a signal
twice (the next engine finds it ``working`` and marks it failed). A signal is not proposed when the
moment has passed: older than ``MAX_AGE_MS`` of wall time (an engine that was down), or when the
External signals agent is not active — each is closed with the reason in ``outcome``. Signals
are claimed only on a running session's decision ticks; one sent before a pause waits, and expires
if the pause outlasts ``MAX_AGE_MS``. ``settle`` records the verdict, the CEO decision and its reason.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from core.desk.context import Desk
from core.desk.judge import Judge
from core.desk.lease import wall_ms
from core.desk.ledger import AgentLedger
from core.models import ExternalSignal, Proposal
from core.store.tables import EXTERNAL_SIGNALS

MAX_AGE_MS = 5 * 60_000  # a signal the engine could not propose within 5 minutes is stale
DONE = ("judged", "refused", "expired", "failed")

x = EXTERNAL_SIGNALS.c
# Built once: the engine asks every tick of a session that has the agent.
_QUEUED = (select(EXTERNAL_SIGNALS)
           .where(x.session_id == bindparam("sid"), x.status.in_(("pending", "working")))
           .order_by(x.id))


def signals_agent(desk: Desk) -> AgentLedger | None:
    return next((a for a in desk.ledger.agents.values() if a.spec.key == "signals"), None)


def claim(desk: Desk, agent: AgentLedger) -> list[ExternalSignal]:
    """The signals to propose on this tick, each marked ``working`` and committed."""
    rows = desk.db.connection().execute(_QUEUED, {"sid": desk.ledger.session.id}).all()
    if not rows:
        return []
    now = wall_ms()
    taken: list[ExternalSignal] = []
    for row in rows:
        if row.status == "working":
            _close(desk, row.id, "failed", "interrupted by an engine restart before the CEO "
                                           "judged it; send it again if it still holds")
        elif now - row.received_ms > MAX_AGE_MS:
            _close(desk, row.id, "expired", f"not proposed within {MAX_AGE_MS // 60_000} minutes "
                                            "of arriving (was the engine running?)")
        elif agent.status != "active":
            _close(desk, row.id, "refused", f"{agent.name} is {agent.status}"
                   + (f" ({agent.pause_reason})" if agent.pause_reason else ""))
        elif row.symbol not in desk.feed.symbols:
            _close(desk, row.id, "refused", f"{row.symbol} is not traded in this session")
        else:
            desk.db.execute(update(EXTERNAL_SIGNALS).where(x.id == row.id, x.status == "pending")
                            .values(status="working"))
            taken.append(ExternalSignal(
                id=row.id, symbol=row.symbol, side=row.side, leverage=row.leverage,
                margin_fraction=row.margin_fraction, stop_price=row.stop_price,
                take_profit=row.take_profit, confidence=row.confidence, note=row.note or "",
                source=row.source))
    desk.commit()  # working before the CEO judges: a crash never proposes one twice
    return taken


def settle(desk: Desk, taken: list[ExternalSignal], proposals: list[Proposal], judge: Judge) -> None:
    """Record each claimed signal's verdict (``proposals[i]`` is what ``taken[i]`` became; none
    when the agent failed)."""
    if len(proposals) != len(taken):
        for signal in taken:
            _close(desk, signal.id, "failed", "the External signals agent could not propose it "
                                              "(see the CEO log)")
        return
    for signal, proposal in zip(taken, proposals, strict=True):
        decided = judge.decided.get(id(proposal))
        if decided is None:
            _close(desk, signal.id, "failed", "the CEO gave no verdict (see the CEO log)")
            continue
        decision_id, verdict = decided
        desk.db.execute(update(EXTERNAL_SIGNALS).where(x.id == signal.id).values(
            status="judged", verdict=verdict.verdict.value, decision_id=decision_id,
            outcome=verdict.reason, done_ms=wall_ms()))


def _close(desk: Desk, signal_id: int, status: str, outcome: str) -> None:
    desk.db.execute(update(EXTERNAL_SIGNALS).where(x.id == signal_id)
                    .values(status=status, outcome=outcome, done_ms=wall_ms()))
