"""SIGKILL a running engine process and restart it: no duplicated order, no lost fill, and the
desk's positions match the venue's, with every position covered by a resting stop."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.config import PROJECT_ROOT
from core.store.db import open_database
from core.store.tables import CeoDecisionRow, FillRow, OrderRow, SessionRow
from tests.desk_helpers import venue_matches_store

pytestmark = pytest.mark.slow


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "CRASH_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{db}", REPLAY_START="2025-09-01", BARS_PER_TICK="1",
        TICK_SECONDS="0.01", ENGINE_LEASE_STALE_SECONDS="1", LOG_LEVEL="WARNING",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str, runner: str = "core") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "core", *args] if runner == "core" else \
        [sys.executable, str(PROJECT_ROOT / "tests" / "crash_runner.py"), *args]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _figures(db: Path) -> tuple[int, int, int]:
    engine = open_database(f"sqlite:///{db}")
    with engine.connect() as conn:
        ticks = conn.scalar(select(SessionRow.ticks)) or 0
        orders = conn.scalar(select(func.count(OrderRow.id))) or 0
        fills = conn.scalar(select(func.count(FillRow.id))) or 0
    engine.dispose()
    return ticks, orders, fills


def _consistent(db: Path) -> list[str]:
    engine = open_database(f"sqlite:///{db}")
    try:
        return venue_matches_store(engine, 1)
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", ["before_send:3", "after_send:3", "after_send:4", "after_trigger:1"])
def test_crash_at_a_dangerous_point_then_restart(tmp_path: Path, point: str) -> None:
    db = tmp_path / "desk.db"
    env = _env(db)
    assert _cli(env, "session", "create").returncode == 0
    crashed = _cli(_env(db, CRASH_AT=point), "engine", "--ticks", "400", runner="crash")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    ticks_at_crash, orders_at_crash, _ = _figures(db)
    time.sleep(1.2)  # the dead engine's lease goes stale
    resumed = _cli(env, "engine", "--ticks", "40")
    assert resumed.returncode == 0, resumed.stderr
    assert _consistent(db) == []
    ticks, orders, fills = _figures(db)
    assert ticks == ticks_at_crash + 40 and orders >= orders_at_crash and fills > 0
    engine = open_database(f"sqlite:///{db}")
    with engine.connect() as conn:
        reconciled = conn.scalars(select(CeoDecisionRow.reason).where(CeoDecisionRow.kind == "reconcile")).all()
    engine.dispose()
    assert reconciled, "the restart must say what it settled"


def test_random_sigkills_of_the_engine_lose_and_double_nothing(tmp_path: Path) -> None:
    db = tmp_path / "desk.db"
    env = _env(db)
    assert _cli(env, "session", "create").returncode == 0
    rng = random.Random(7)
    for kills in range(1, 16):  # at least five kills, more on a slow machine until 100 ticks ran
        proc = subprocess.Popen([sys.executable, "-m", "core", "engine"], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(1.2)
        if kills >= 5 and _figures(db)[0] > 100:
            break
    resumed = _cli(env, "engine", "--ticks", "20")
    assert resumed.returncode == 0, resumed.stderr
    ticks, orders, fills = _figures(db)
    assert ticks > 100 and orders > 0 and fills > 0
    assert _consistent(db) == []


def test_a_second_engine_process_is_refused_while_the_first_trades(tmp_path: Path) -> None:
    db = tmp_path / "desk.db"
    env = _env(db, ENGINE_LEASE_STALE_SECONDS="3")
    assert _cli(env, "session", "create").returncode == 0
    first = subprocess.Popen([sys.executable, "-m", "core", "engine"], cwd=PROJECT_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while _figures(db)[0] < 5 and time.time() < deadline:
            time.sleep(0.2)
        second = _cli(env, "engine", "--ticks", "5")
        assert second.returncode != 0
        assert "another engine" in second.stderr and "Traceback" not in second.stderr
        before = _figures(db)[0]
        time.sleep(0.5)
        assert _figures(db)[0] > before  # the first engine kept trading
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    refused = _cli(env, "engine", "--ticks", "5")
    assert refused.returncode != 0  # its lease is not stale yet
    time.sleep(3.2)
    ticks = _figures(db)[0]
    taken = _cli(env, "engine", "--ticks", "5")
    assert taken.returncode == 0, taken.stderr
    assert _figures(db)[0] == ticks + 5
    assert _consistent(db) == []
