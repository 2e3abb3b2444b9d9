"""A user's command that lands while a tick is running wins over what that tick wrote back.

The engine reads the user's intents at the start of a tick and writes the session and agent
peaks at its end; a live tick spends seconds on the venue and the models in between. Acknowledging
a halt resets the session's peak and resuming an agent resets its own: the tick in flight must not
put the old peak back, or the desk halts (or the CEO pauses the agent) again at once.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select, update

from core import service
from core.agents.llm_agent import LLMAgent
from core.desk.engine import run_cycle
from core.desk.llm_services import build_llm_services
from core.desk.runtime import build_desk
from core.llm.base import EchoProvider, LLMReply
from core.store.db import open_database
from core.store.tables import AGENTS, CEO_DECISIONS, SESSIONS
from tests.conftest import make_settings
from tests.desk_helpers import create

AGENT = "Mean Reversion Pro"


def _desk(sqlite_url: str):  # type: ignore[no-untyped-def]
    settings = make_settings(database_url=sqlite_url, replay_start="2025-09-01")
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    desk = build_desk(settings, engine, sid, lease=None)
    for _ in range(3):
        run_cycle(desk)
    return settings, engine, sid, desk


def _halts(engine: Engine, sid: int) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(CEO_DECISIONS).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "halt")) or 0)


def test_acknowledging_a_halt_during_a_tick_is_not_undone(sqlite_url: str) -> None:
    _, engine, sid, desk = _desk(sqlite_url)
    with engine.begin() as conn:  # equity is now far below this peak: the next tick halts
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid).values(peak_equity=200_000.0))
    assert run_cycle(desk).status == "halted"
    real_step, acked = desk.feed.step, []

    def step():  # type: ignore[no-untyped-def]
        if not acked:  # the user acknowledges while the tick fetches the market
            acked.append(service.change_session(engine, sid, "resume"))
        return real_step()

    desk.feed.step = step  # type: ignore[method-assign]
    run_cycle(desk)
    with engine.connect() as conn:
        assert conn.scalar(select(SESSIONS.c.peak_equity).where(SESSIONS.c.id == sid)) == 0.0
    assert run_cycle(desk).status == "running"
    assert _halts(engine, sid) == 1


def test_resuming_an_agent_while_a_model_thinks_is_not_undone(sqlite_url: str) -> None:
    settings, engine, sid, desk = _desk(sqlite_url)
    where = (AGENTS.c.session_id == sid, AGENTS.c.name == AGENT)
    with engine.begin() as conn:  # the agent sits 50% below an old peak, as after a pause
        conn.execute(update(AGENTS).where(*where).values(peak_equity=40_000.0))
    service.change_agent(engine, sid, AGENT, "pause")
    run_cycle(desk)
    resumed: list[object] = []

    class ResumeWhileThinking(EchoProvider):
        def complete(self, system: str, prompt: str, schema: dict[str, object]) -> LLMReply:
            if not resumed:
                resumed.append(service.change_agent(engine, sid, AGENT, "resume"))
            return super().complete(system, prompt, schema)

    desk.strategies["trend"] = LLMAgent(desk.strategies["trend"], ResumeWhileThinking())
    desk.llm = build_llm_services(settings, list(desk.strategies.values()))
    for _ in range(200):  # the trend agent is asked within a few ticks; bounded all the same
        if resumed:
            break
        desk.ledger.session.last_review_ms = -10**15  # the CEO's review is due in this tick
        run_cycle(desk)
    assert resumed, "the model was never asked within 200 ticks"
    with engine.connect() as conn:
        assert conn.scalar(select(AGENTS.c.peak_equity).where(*where)) == 0.0
    for _ in range(2):
        desk.ledger.session.last_review_ms = -10**15
        run_cycle(desk)
    with engine.connect() as conn:
        assert conn.scalar(select(AGENTS.c.status).where(*where)) == "active"


def test_a_resumed_agent_at_its_old_high_gets_its_peak_stored_again(sqlite_url: str) -> None:
    """Resuming resets the stored peak; the engine raises it back to the agent's equity. When that
    equity equals the peak the engine last wrote (an agent that has not traded), the store must
    still get it back, or a rebuilt desk would start the agent's drawdown from 0."""
    settings = make_settings(database_url=sqlite_url, replay_start="2025-09-01",
                             review_interval_minutes=15)
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    desk = build_desk(settings, engine, sid, lease=None)
    for _ in range(3):
        run_cycle(desk)
    agent = next(a for a in desk.ledger.agents.values()
                 if not a.positions and a.peak_equity == a.equity(desk.marks))

    def stored_peak() -> float:
        with engine.connect() as conn:
            return float(conn.scalar(select(AGENTS.c.peak_equity).where(AGENTS.c.id == agent.id)))

    assert stored_peak() == agent.peak_equity
    service.change_agent(engine, sid, agent.name, "pause")
    run_cycle(desk)
    service.change_agent(engine, sid, agent.name, "resume")
    for _ in range(4):
        run_cycle(desk)
    assert agent.status == "active"
    assert stored_peak() == agent.peak_equity > 0
    desk.db.close()
    rebuilt = build_desk(settings, engine, sid, lease=None)
    assert rebuilt.ledger.agents[agent.id].peak_equity == agent.peak_equity
    rebuilt.db.close()
    engine.dispose()
