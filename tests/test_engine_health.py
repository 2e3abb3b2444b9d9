"""The engine's health as users see it: a failing engine must not look like a trading one.

The lease's heartbeat beats on while ticks fail (the desk is rebuilt under the same lease), so the
sidebar, the Session page and ``session status`` go by the last *completed* tick and by when the
failures began; the first good tick clears the error and logs the recovery in the CEO log."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select

from core import queries
from core.config import Settings
from core.desk import scheduler
from core.desk.scheduler import EngineDriver
from core.store.db import open_database
from core.store.tables import CeoDecisionRow
from tests.conftest import make_settings
from tests.desk_helpers import create


def summary(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"status": "running", "heartbeat_age_s": 1.0, "tick_age_s": 2.0,
                               "failing_for_s": None, "last_error": None,
                               "engine_time": "2025-10-08 01:00"}
    return base | changes


def failing_with(error: Exception) -> Callable[[object], object]:
    def cycle(desk: object) -> object:
        raise error
    return cycle


@pytest.mark.parametrize(("changes", "level", "words"), [
    ({}, "ok", "last tick 2 s ago"),
    ({"failing_for_s": 31.0, "last_error": "OperationalError: disk I/O error"}, "failing",
     "failing (for 31 s; last completed tick 2 s ago): OperationalError: disk I/O error"),
    ({"failing_for_s": 5.0, "tick_age_s": None, "last_error": "X"}, "failing", "for 5 s): X"),
    ({"heartbeat_age_s": None, "tick_age_s": None}, "down", "Engine not running"),
    ({"heartbeat_age_s": 75.0}, "down", "Engine not running"),
    ({"status": "created", "heartbeat_age_s": None, "tick_age_s": None}, "starting",
     "Waiting for the engine"),
    ({"tick_age_s": None}, "starting", "no tick has completed yet"),
    ({"tick_age_s": 90.0}, "stalled", "no tick has completed for 90 s"),
    ({"status": "stopped", "heartbeat_age_s": None}, "stopped", "Session stopped"),
])
def test_engine_health_names_what_the_user_must_know(changes: dict, level: str, words: str) -> None:
    got_level, text = queries.engine_health(summary(**changes))
    assert got_level == level
    assert words in text, text


@pytest.fixture
def paper(sqlite_url: str) -> Iterator[tuple[Settings, Engine, int]]:
    """A paper session on its own SQLite store, not yet ticked."""
    settings = make_settings(database_url=sqlite_url, replay_start="2025-09-01")
    engine = open_database(sqlite_url)
    yield settings, engine, create(engine, settings)
    engine.dispose()


def test_failing_ticks_show_as_failing_despite_a_fresh_heartbeat_and_recovery_is_logged(
        paper: tuple[Settings, Engine, int], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, engine, session_id = paper
    driver = EngineDriver(settings, engine, session_id=session_id)
    assert driver.tick() is not None
    healthy = queries.session_summary(engine, session_id)
    assert queries.engine_health(healthy)[0] == "ok"
    assert healthy["tick_age_s"] is not None and healthy["last_error"] is None

    real_cycle = scheduler.run_cycle
    monkeypatch.setattr(scheduler, "run_cycle", failing_with(RuntimeError("store went away")))
    for _ in range(3):
        assert driver.tick() is None
    failing = queries.session_summary(engine, session_id)
    assert failing["heartbeat_age_s"] is not None and failing["heartbeat_age_s"] < 60  # still beats
    level, text = queries.engine_health(failing)
    assert level == "failing", text
    assert "RuntimeError: store went away" in text

    monkeypatch.setattr(scheduler, "run_cycle", real_cycle)
    assert driver.tick() is not None
    recovered = queries.session_summary(engine, session_id)
    assert recovered["last_error"] is None and recovered["failing_for_s"] is None
    assert queries.engine_health(recovered)[0] == "ok"
    with engine.connect() as conn:
        notes = list(conn.scalars(select(CeoDecisionRow.reason).where(
            CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "engine")))
    assert len(notes) == 1
    assert notes[0].startswith("engine recovered: ticks completed again after 3 failed ticks over")
    assert notes[0].endswith("last error: RuntimeError: store went away")
    assert driver.tick() is not None  # a second good tick logs nothing more
    assert queries.ceo_kind_counts(engine, session_id)["engine"] == 1


def test_a_new_engine_settles_the_error_an_earlier_one_left(
        paper: tuple[Settings, Engine, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The process that failed is gone (a restart): the next engine's first good tick clears it."""
    settings, engine, session_id = paper
    first = EngineDriver(settings, engine, session_id=session_id)
    monkeypatch.setattr(scheduler, "run_cycle", failing_with(OSError("boom")))
    assert first.tick() is None
    first.stop()
    monkeypatch.undo()
    assert queries.engine_health(queries.session_summary(engine, session_id))[0] != "ok"
    assert EngineDriver(settings, engine, session_id=session_id).tick() is not None
    after = queries.session_summary(engine, session_id)
    assert after["last_error"] is None and queries.engine_health(after)[0] == "ok"
    assert queries.ceo_kind_counts(engine, session_id)["engine"] == 1


def test_the_dashboard_says_loudly_when_ticks_fail(app_env: str) -> None:
    from sqlalchemy import insert, update
    from streamlit.testing.v1 import AppTest

    from core.desk.lease import wall_ms
    from core.store.tables import EngineLeaseRow, SessionRow
    from tests.conftest import APP

    settings = make_settings(database_url=app_env, replay_start="2025-09-01")
    engine = open_database(app_env)
    session_id = create(engine, settings)
    now = wall_ms()
    with engine.begin() as conn:  # an engine holds the lease and beats, but its ticks fail
        conn.execute(insert(EngineLeaseRow).values(session_id=session_id, owner="other",
                                                   acquired_ms=now, heartbeat_ms=now))
        conn.execute(update(SessionRow).values(
            status="running", tick_wall_ms=now - 40_000, error_since_ms=now - 38_000,
            last_error="OperationalError: database is locked"))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors and all("Engine ticks are failing" in e for e in errors), errors
    assert "OperationalError: database is locked" in errors[0]
    assert not any("last tick" in c.value for c in at.caption)  # nothing calm about it
    with engine.begin() as conn:  # the next good tick clears it
        conn.execute(update(SessionRow).values(tick_wall_ms=wall_ms(), error_since_ms=None,
                                               last_error=None))
    at.run()
    assert not at.error
    assert any("last tick" in c.value for c in at.caption)
    engine.dispose()
