"""A trader's own orders: close one position, cancel one resting order, flatten one agent.

Each goes through the engine's execution path (order row committed before the venue sees it, fills
booked once, the close's stop cancelled only after it fills), is in the CEO log as the user's, and
works both while an engine trades the session (queued for its next tick) and while none does (the
command acts itself, at the market the session last saw).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine, select, update

from core import queries, service
from core.config import PROJECT_ROOT
from core.desk.lease import Lease, new_owner_id
from core.desk.scheduler import EngineDriver
from core.errors import InvalidTransition, NotFound
from core.store.db import open_database
from core.store.tables import (
    AgentRow,
    CeoDecisionRow,
    FillRow,
    ManualOrderRow,
    OrderRow,
    PositionRow,
    SessionRow,
)
from tests.conftest import make_settings
from tests.desk_helpers import count, create, run_ticks, venue_matches_store

START = "2025-07-01"  # 300 ticks from here end holding BTC, ETH and SOL (tests/test_desk.py)


@pytest.fixture
def holding(db_url: str) -> tuple[Engine, object, int]:
    settings = make_settings(database_url=db_url, replay_start=START)
    engine = open_database(db_url)
    session_id = create(engine, settings)
    run_ticks(engine, settings, 300)
    assert len(queries.open_positions(engine, session_id)) >= 2
    yield engine, settings, session_id
    engine.dispose()


def _open(engine: Engine, session_id: int) -> dict[int, PositionRow]:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(select(PositionRow).where(
            PositionRow.session_id == session_id, PositionRow.status == "open"))}


def _resting(engine: Engine, position_id: int) -> dict[str, list[int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(OrderRow.id, OrderRow.purpose).where(
            OrderRow.position_id == position_id, OrderRow.status == "NEW")).all()
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r.purpose, []).append(r.id)
    return out


def _clock(engine: Engine, session_id: int) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(SessionRow.clock_ms, SessionRow.decided_ms)
                           .where(SessionRow.id == session_id)).one()
    return row.clock_ms, row.decided_ms


def test_close_without_an_engine_closes_at_market_and_cancels_its_stop(holding: tuple) -> None:
    engine, settings, session_id = holding
    before = _open(engine, session_id)
    position_id = min(before)
    stops = _resting(engine, position_id)
    assert stops.get("stop_loss"), "every open position rests under a stop"
    clock = _clock(engine, session_id)

    outcome = service.close_position(engine, settings, position_id)

    assert outcome.status == "done", outcome
    assert "closed" in outcome.note and before[position_id].symbol in outcome.note
    after = _open(engine, session_id)
    assert position_id not in after and set(after) == set(before) - {position_id}
    with engine.connect() as conn:
        pos = conn.execute(select(PositionRow).where(PositionRow.id == position_id)).one()
        closes = conn.execute(select(OrderRow.purpose, OrderRow.reduce_only, OrderRow.type,
                                     OrderRow.status).where(
            OrderRow.position_id == position_id, OrderRow.purpose == "user")).all()
        log = conn.execute(select(CeoDecisionRow.kind, CeoDecisionRow.reason).where(
            CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "manual")).all()
        fills = count(engine, FillRow, FillRow.position_id == position_id)
    assert pos.close_reason == "user" and pos.closed_ms == clock[0]
    assert closes == [("user", True, "MARKET", "FILLED")]  # one reduce-only market order
    assert _resting(engine, position_id) == {}  # its stop (and take-profit) cancelled
    assert [k for k, _ in log] == ["manual"] and "user closes" in log[0][1]
    assert fills >= 2  # its entry and its close, each booked once
    assert _clock(engine, session_id) == clock  # no bar stepped, no agent decided
    assert venue_matches_store(engine, session_id) == []
    assert queries.trades(engine, session_id)["close_reason"].eq("user").sum() == 1


def test_a_closed_or_unknown_position_is_refused_and_nothing_is_queued(holding: tuple) -> None:
    engine, settings, session_id = holding
    position_id = min(_open(engine, session_id))
    service.close_position(engine, settings, position_id)
    queued = count(engine, ManualOrderRow)
    with pytest.raises(InvalidTransition, match=f"position {position_id} is closed"):
        service.close_position(engine, settings, position_id)
    with pytest.raises(NotFound, match="no position 99999"):
        service.close_position(engine, settings, 99999)
    with pytest.raises(NotFound, match="no order 99999"):
        service.cancel_order(engine, settings, 99999)
    assert count(engine, ManualOrderRow) == queued


def test_the_only_stop_of_a_position_cannot_be_cancelled(holding: tuple) -> None:
    engine, settings, session_id = holding
    position_id = min(_open(engine, session_id))
    (stop_id,) = _resting(engine, position_id)["stop_loss"]

    outcome = service.cancel_order(engine, settings, stop_id)

    assert outcome.status == "refused"
    assert "only stop" in outcome.note and "close the position instead" in outcome.note
    assert _resting(engine, position_id)["stop_loss"] == [stop_id]  # still resting
    assert venue_matches_store(engine, session_id) == []


def test_a_take_profit_is_cancelled_and_not_placed_again(db_url: str) -> None:
    settings = make_settings(database_url=db_url, replay_start=START)
    engine = open_database(db_url)
    session_id = create(engine, settings)
    with_tp = None
    for _ in range(60):  # until some position rests under a take-profit
        run_ticks(engine, settings, 20)
        with_tp = next((p for p in _open(engine, session_id)
                        if _resting(engine, p).get("take_profit")), None)
        if with_tp is not None:
            break
    if with_tp is None:
        pytest.fail("no position with a take-profit opened in 1,200 ticks")
    (tp_id,) = _resting(engine, with_tp)["take_profit"]

    outcome = service.cancel_order(engine, settings, tp_id)

    assert outcome.status == "done", outcome
    assert "take-profit order" in outcome.note
    with engine.connect() as conn:
        assert conn.scalar(select(PositionRow.take_profit).where(PositionRow.id == with_tp)) is None
    run_ticks(engine, settings, 5)  # coverage runs every tick: it must not bring it back
    if with_tp in _open(engine, session_id):
        assert "take_profit" not in _resting(engine, with_tp)
        assert _resting(engine, with_tp)["stop_loss"]
    engine.dispose()


def test_flatten_pauses_the_agent_and_closes_all_it_holds(holding: tuple) -> None:
    engine, settings, session_id = holding
    positions = _open(engine, session_id)
    agent_id = positions[min(positions)].agent_id
    with engine.connect() as conn:
        name = conn.scalar(select(AgentRow.name).where(AgentRow.id == agent_id))
    mine = {p for p, row in positions.items() if row.agent_id == agent_id}

    outcome = service.flatten_agent(engine, settings, session_id, name)

    assert outcome.status == "done", outcome
    assert f"{name} flattened" in outcome.note
    left = _open(engine, session_id)
    assert not (mine & set(left)) and set(left) == set(positions) - mine
    with engine.connect() as conn:
        agent = conn.execute(select(AgentRow.status, AgentRow.paused_by, AgentRow.pause_reason)
                             .where(AgentRow.id == agent_id)).one()
    assert tuple(agent) == ("paused", "user", "flattened by user")
    # paused agents do not trade: later ticks open nothing for it
    run_ticks(engine, settings, 40)
    assert not {p for p, r in _open(engine, session_id).items() if r.agent_id == agent_id}
    assert venue_matches_store(engine, session_id) == []


def test_while_an_engine_runs_the_order_waits_for_its_next_tick(holding: tuple) -> None:
    engine, settings, session_id = holding
    position_id = min(_open(engine, session_id))
    driver = EngineDriver(settings, engine, session_id=session_id, owner=new_owner_id())
    try:
        assert driver.tick() is not None  # this engine now holds the session's lease
        outcome = service.close_position(engine, settings, position_id)
        assert outcome.status == "pending" and "next tick" in outcome.note
        assert position_id in _open(engine, session_id)  # the command did not act itself
        driver.tick()
        done = service.manual_outcome(engine, outcome.id)
        assert done.status == "done", done
        assert position_id not in _open(engine, session_id)
    finally:
        driver.stop()
    assert venue_matches_store(engine, session_id) == []


def test_an_order_interrupted_mid_way_is_never_repeated(holding: tuple) -> None:
    """``working`` is committed before anything is sent: a restart marks it failed, once."""
    engine, settings, session_id = holding
    position_id = min(_open(engine, session_id))
    lease = Lease(engine, session_id, "someone-else", settings.engine_lease_stale_seconds)
    assert lease.acquire()
    outcome = service.close_position(engine, settings, position_id)  # queued: another engine
    assert outcome.status == "pending"
    with engine.begin() as conn:  # that engine died after committing "working"
        conn.execute(update(ManualOrderRow).where(ManualOrderRow.id == outcome.id)
                     .values(status="working"))
    lease.release()
    run_ticks(engine, settings, 1, session_id)
    final = service.manual_outcome(engine, outcome.id)
    assert final.status == "failed" and "interrupted" in final.note
    assert count(engine, OrderRow, OrderRow.position_id == position_id,
                 OrderRow.purpose == "user") == 0  # nothing was sent twice, nor once by replay


def test_cli_close_cancel_and_flatten(holding: tuple, db_url: str) -> None:
    engine, _, session_id = holding
    positions = _open(engine, session_id)
    first, *_ = sorted(positions)
    env = {"DATABASE_URL": db_url, "REPLAY_START": START, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(PROJECT_ROOT / "tests" / "network_guard")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    (stop_id,) = _resting(engine, first)["stop_loss"]
    refused = cli("cancel", str(stop_id))
    assert refused.returncode == 2 and refused.stderr.startswith("error: refused: order")
    assert "only stop" in refused.stderr

    closed = cli("close", str(first), "--json")
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["status"] == "done"
    again = cli("close", str(first))
    assert again.returncode == 2 and f"position {first} is closed" in again.stderr

    rest = _open(engine, session_id)
    agent_id = rest[min(rest)].agent_id
    with engine.connect() as conn:
        key = conn.scalar(select(AgentRow.key).where(AgentRow.id == agent_id))
    flat = cli("flatten", key, "--session", str(session_id))
    assert flat.returncode == 0, flat.stderr
    assert flat.stdout.startswith("done: ") and "flattened" in flat.stdout
    assert not {p for p, r in _open(engine, session_id).items() if r.agent_id == agent_id}
    bad = cli("close", "0")
    assert bad.returncode == 2 and "must be positive" in bad.stderr
