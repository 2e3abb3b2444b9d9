"""SIGKILL a running engine process and restart it: no duplicated order, no lost fill, and the
desk's positions match the venue's, with every position covered by a resting stop.

Nothing here races the wall clock: a kill lands after the store shows the engine ticking, and a
dead engine's lease is expired by writing its heartbeat into the past, never by waiting for it to
go stale (the staleness is an hour, so a slow start can never look like a dead engine).
The lease and the kills run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update

from core.config import PROJECT_ROOT
from core.store.db import open_database
from core.store.tables import CeoDecisionRow, EngineLeaseRow, FillRow, OrderRow, SessionRow
from tests.desk_helpers import venue_matches_store

pytestmark = pytest.mark.slow

EVIDENCE_DEADLINE_S = 240.0  # generous: a loaded 2-core machine starts an engine in seconds


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "CRASH_"))}
    env.update(
        DATABASE_URL=url, REPLAY_START="2025-09-01", BARS_PER_TICK="1",
        TICK_SECONDS="0.01", ENGINE_LEASE_STALE_SECONDS="3600", LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str, runner: str = "core") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "core", *args] if runner == "core" else \
        [sys.executable, str(PROJECT_ROOT / "tests" / "crash_runner.py"), *args]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _figures(url: str) -> tuple[int, int, int]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            ticks = conn.scalar(select(SessionRow.ticks)) or 0
            orders = conn.scalar(select(func.count(OrderRow.id))) or 0
            fills = conn.scalar(select(func.count(FillRow.id))) or 0
    finally:
        engine.dispose()
    return ticks, orders, fills


def _expire_lease(url: str) -> None:
    """What a dead engine's lease looks like once its staleness has passed."""
    engine = open_database(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(EngineLeaseRow).values(heartbeat_ms=0))
    finally:
        engine.dispose()


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + EVIDENCE_DEADLINE_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the engine exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no evidence within {EVIDENCE_DEADLINE_S:.0f} s that {what}")
        time.sleep(0.1)


def _consistent(url: str) -> list[str]:
    engine = open_database(url)
    try:
        return venue_matches_store(engine, 1)
    finally:
        engine.dispose()


def _engine(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "core", "engine"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("point", ["before_send:3", "after_send:3", "after_send:4", "after_trigger:1"])
def test_crash_at_a_dangerous_point_then_restart(db_url: str, point: str) -> None:
    url = db_url
    env = _env(url)
    assert _cli(env, "session", "create").returncode == 0
    crashed = _cli(_env(url, CRASH_AT=point), "engine", "--ticks", "400", runner="crash")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    ticks_at_crash, orders_at_crash, _ = _figures(url)
    refused = _cli(env, "engine", "--ticks", "1")
    assert refused.returncode != 0, "the dead engine's lease is still fresh"
    _expire_lease(url)
    resumed = _cli(env, "engine", "--ticks", "40")
    assert resumed.returncode == 0, resumed.stderr
    assert _consistent(url) == []
    ticks, orders, fills = _figures(url)
    assert ticks == ticks_at_crash + 40 and orders >= orders_at_crash and fills > 0
    engine = open_database(url)
    with engine.connect() as conn:
        reconciled = conn.scalars(select(CeoDecisionRow.reason).where(CeoDecisionRow.kind == "reconcile")).all()
    engine.dispose()
    assert reconciled, "the restart must say what it settled"


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_random_sigkills_of_the_engine_lose_and_double_nothing(
        request: pytest.FixtureRequest, db: str) -> None:
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    env = _env(url)
    assert _cli(env, "session", "create").returncode == 0
    rng = random.Random(7)
    for kills in range(1, 16):  # at least five kills, more until 100 ticks ran
        before = _figures(url)[0]
        ticks_to_run = rng.randint(3, 30)
        proc = _engine(env)
        try:
            target = before + ticks_to_run
            _wait_for(lambda target=target: _figures(url)[0] >= target,
                      f"the engine ran {ticks_to_run} ticks", proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        _expire_lease(url)
        if kills >= 5 and _figures(url)[0] > 100:
            break
    resumed = _cli(env, "engine", "--ticks", "20")
    assert resumed.returncode == 0, resumed.stderr
    ticks, orders, fills = _figures(url)
    assert ticks > 100 and orders > 0 and fills > 0
    assert _consistent(url) == []


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_engine_process_is_refused_while_the_first_trades(
        request: pytest.FixtureRequest, db: str) -> None:
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    env = _env(url)
    assert _cli(env, "session", "create").returncode == 0
    first = _engine(env)
    try:
        _wait_for(lambda: _figures(url)[0] >= 5, "the first engine is trading", first)
        second = _cli(env, "engine", "--ticks", "5")
        assert second.returncode != 0
        assert "another engine" in second.stderr and "Traceback" not in second.stderr
        before = _figures(url)[0]
        _wait_for(lambda: _figures(url)[0] > before, "the first engine kept trading", first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    refused = _cli(env, "engine", "--ticks", "5")
    assert refused.returncode != 0  # its lease is not stale yet
    _expire_lease(url)
    ticks = _figures(url)[0]
    taken = _cli(env, "engine", "--ticks", "5")
    assert taken.returncode == 0, taken.stderr
    assert _figures(url)[0] == ticks + 5
    assert _consistent(url) == []
