"""The alerts outbox is written where each event is recorded, in the same transaction: one row
per event (trades, stops, halts, pauses, session changes, engine health, live reconciliation, a
finished backtest), none per trade in a backtest, and none left behind by a rolled-back write."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from core import service
from core.alerts import events, outbox
from core.backtest.params import build_params
from core.backtest.service import run_backtest
from core.config import PROJECT_ROOT
from core.desk import scheduler
from core.desk.scheduler import EngineDriver
from core.store.db import open_database
from core.store.tables import AlertRow, CeoDecisionRow, PositionRow, SessionRow
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks
from tests.test_live_engine import (  # noqa: F401  (the live fixture)
    M15,
    Live,
    cancel_stops_at_venue,
    live,
    open_positions,
    run_until_open,
    trade_behind_the_desks_back,
)

START = "2025-10-08"  # through the October 2025 crash: stops, take-profits and agent closes


@pytest.fixture
def store(db_url: str) -> Iterator[tuple[Engine, str]]:
    engine = open_database(db_url)
    yield engine, db_url
    engine.dispose()


def alerts_of(engine: Engine, session_id: int | None = None) -> list[Any]:
    query = select(AlertRow).order_by(AlertRow.id)
    if session_id is not None:
        query = query.where(AlertRow.session_id == session_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def kinds(engine: Engine, session_id: int) -> Counter[str]:
    return Counter(a.kind for a in alerts_of(engine, session_id))


def test_every_trade_opened_and_closed_is_one_alert_with_its_figures(
        store: tuple[Engine, str]) -> None:
    engine, url = store
    settings = make_settings(database_url=url, replay_start=START)
    session_id = create(engine, settings)
    assert run_ticks(engine, settings, 600) == 600
    with engine.connect() as conn:
        positions = conn.execute(select(PositionRow).where(
            PositionRow.session_id == session_id, PositionRow.status.in_(("open", "closed")))
            .order_by(PositionRow.id)).all()
    got = alerts_of(engine, session_id)
    assert len({a.event_id for a in got}) == len(got)
    opened = {a.event_id: a for a in got if a.kind == "trade_opened"}
    assert set(opened) == {f"trade-opened-{p.id}" for p in positions}
    closed = {a.event_id: a for a in got if a.kind.startswith("trade_") and a.kind != "trade_opened"}
    expected = {"stop_loss": "trade_stopped", "liquidation": "trade_liquidated"}
    done = [p for p in positions if p.status == "closed"]
    assert {k: a.kind for k, a in closed.items()} == {
        f"trade-closed-{p.id}": expected.get(p.close_reason, "trade_closed") for p in done}
    assert {p.close_reason for p in done} >= {"stop_loss", "take_profit", "agent"}
    for p in done:
        alert = closed[f"trade-closed-{p.id}"]
        net = p.realized_pnl - p.fees + p.funding
        assert f"{net:+,.2f} USDT" in alert.title
        assert p.symbol in alert.title and p.side.lower() in alert.title
        assert f"fees {p.fees:,.2f} USDT" in alert.body
        assert alert.severity == ("warning" if p.close_reason == "stop_loss" else "info")
        assert alert.status == "pending" and alert.event_ms == p.closed_ms
    first = positions[0]
    body = opened[f"trade-opened-{first.id}"].body
    assert f"{first.leverage}x" in body and first.symbol in body
    assert f"{first.quantity:,.8f}".rstrip("0").rstrip(".") in body
    assert kinds(engine, session_id)["session_created"] == 1


def test_a_drawdown_halt_is_one_critical_alert_with_its_figures(sqlite_url: str) -> None:
    # a limit the desk's 700 ticks through the crash pass (their worst drawdown is 0.93%)
    settings = make_settings(database_url=sqlite_url, replay_start=START, drawdown_halt_pct=0.005)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    run_ticks(engine, settings, 700)
    with engine.connect() as conn:
        status = conn.scalar(select(SessionRow.status).where(SessionRow.id == session_id))
        halt = conn.execute(select(CeoDecisionRow).where(
            CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "halt")).one()
    assert status == "halted"
    got = [a for a in alerts_of(engine, session_id) if a.kind == "session_halted"]
    assert len(got) == 1
    alert = got[0]
    assert alert.event_id == f"ceo-{halt.id}" and alert.severity == "critical"
    assert "DRAWDOWN HALT" in alert.title
    assert "(limit 0.5%)" in alert.body  # the limit reads as set, not rounded to 0% or 1%
    assert "below the peak" in alert.body and "acknowledge" in alert.body
    halted_closes = [a for a in alerts_of(engine, session_id)
                     if a.kind == "trade_closed" and "drawdown halt" in a.title]
    with engine.connect() as conn:
        closed_by_halt = conn.scalar(text(
            "select count(*) from positions where session_id = :s and close_reason = "
            "'drawdown_halt'"), {"s": session_id})
    assert len(halted_closes) == closed_by_halt


def test_the_ceo_pausing_and_resuming_an_agent_is_alerted_with_why(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start=START,
                             agent_pause_losing_streak=1, agent_resume_after_hours=2)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    run_ticks(engine, settings, 600)
    with engine.connect() as conn:
        logged = {r.id: r for r in conn.execute(select(CeoDecisionRow).where(
            CeoDecisionRow.session_id == session_id,
            CeoDecisionRow.kind.in_(("pause", "resume"))))}
    got = [a for a in alerts_of(engine, session_id) if a.kind.startswith("agent_")]
    assert {a.event_id for a in got} == {f"ceo-{i}" for i in logged}
    assert {a.kind for a in got} == {"agent_paused", "agent_resumed"}
    for alert in got:
        row = logged[int(alert.event_id.removeprefix("ceo-"))]
        assert alert.kind == ("agent_paused" if row.kind == "pause" else "agent_resumed")
        assert row.reason in alert.body
        assert ("paused by the CEO" if row.kind == "pause" else "resumed by the CEO") in alert.title


def test_a_user_pausing_and_resuming_an_agent_is_alerted_too(store: tuple[Engine, str]) -> None:
    engine, url = store
    session_id = create(engine, make_settings(database_url=url))
    service.change_agent(engine, session_id, "momentum", "pause")
    service.change_agent(engine, session_id, "Momentum Hunter", "resume")
    got = [a for a in alerts_of(engine, session_id) if a.kind.startswith("agent_")]
    assert [(a.kind, a.title) for a in got] == [
        ("agent_paused", "Momentum Hunter paused by you"),
        ("agent_resumed", "Momentum Hunter resumed by you")]
    with engine.connect() as conn:
        logged = conn.execute(select(CeoDecisionRow.id, CeoDecisionRow.reason).where(
            CeoDecisionRow.session_id == session_id,
            CeoDecisionRow.kind.in_(("pause", "resume"))).order_by(CeoDecisionRow.id)).all()
    assert [a.event_id for a in got] == [f"ceo-{r.id}" for r in logged]
    assert all(r.reason in a.body for r, a in zip(logged, got, strict=True))


def test_session_created_paused_resumed_and_stopped_are_alerted_once_each(
        store: tuple[Engine, str]) -> None:
    engine, url = store
    settings = make_settings(database_url=url, replay_start=START)
    session_id = create(engine, settings)
    run_ticks(engine, settings, 5)
    service.change_session(engine, session_id, "pause")
    service.change_session(engine, session_id, "resume")
    run_ticks(engine, settings, 5)
    assert service.stop_session(engine, settings, session_id).status == "stopped"
    got = [a for a in alerts_of(engine, session_id) if a.kind.startswith("session_")]
    assert [a.kind for a in got] == ["session_created", "session_paused", "session_resumed",
                                     "session_stopped"]
    assert "100,000.00 USDT paper capital" in got[0].body
    assert "pause by user" in got[1].body and "Stopping → stopped" in got[3].body
    with engine.connect() as conn:
        ids = set(conn.scalars(select(CeoDecisionRow.id).where(
            CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "session")))
    assert {a.event_id for a in got} <= {f"ceo-{i}" for i in ids}


def test_a_session_whose_account_could_not_open_leaves_no_alert(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.exchanges.paper import PaperExchange

    settings = make_settings(database_url=sqlite_url)
    engine = open_database(sqlite_url)

    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(PaperExchange, "open_account", broken)
    with pytest.raises(OSError):
        service.create_session(engine, settings)
    assert alerts_of(engine) == []


def test_engine_failures_alert_once_per_run_of_failures_and_the_recovery_once(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(database_url=sqlite_url)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    driver = EngineDriver(settings, engine, session_id=session_id)
    assert driver.tick() is not None
    real = scheduler.run_cycle

    def failing(_: object) -> object:
        raise RuntimeError("store went away")

    for _ in range(2):  # two runs of failures, each ended by a good tick
        monkeypatch.setattr(scheduler, "run_cycle", failing)
        for _ in range(3):
            assert driver.tick() is None
        monkeypatch.setattr(scheduler, "run_cycle", real)
        assert driver.tick() is not None
        assert driver.tick() is not None
    driver.stop()
    got = [a for a in alerts_of(engine, session_id) if a.kind.startswith("engine_")]
    assert [a.kind for a in got] == ["engine_failing", "engine_recovered"] * 2
    assert "RuntimeError: store went away" in got[0].body and got[0].severity == "critical"
    assert got[1].body.startswith("engine recovered: ticks completed again after 3 failed ticks")


def test_a_backtest_alerts_only_that_it_finished(sqlite_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_database(sqlite_url)
    settings = make_settings(database_url=sqlite_url)
    params, data = build_params(start="2025-10-08", end="2025-10-12",
                                data_dir=PROJECT_ROOT / "data" / "klines", interval="15m",
                                symbols=["BTCUSDT", "ETHUSDT"], capital=50_000.0, ceo=True)
    result = run_backtest(engine, settings, params, data)
    assert result.report["summary"]["trades"] > 0
    got = alerts_of(engine)
    assert [(a.kind, a.event_id, a.session_id) for a in got] == [
        ("backtest_finished", f"backtest-{result.run_id}", result.session_id)]
    total = result.report["summary"]["total_return"]
    assert f"Total return {total:+.2%}" in got[0].body
    assert f"{result.report['summary']['trades']} trades" in got[0].body

    from core.backtest import runner

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runner, "run", broken)
    with pytest.raises(RuntimeError):
        run_backtest(engine, settings, params, data)
    failed = alerts_of(engine)[-1]
    assert failed.kind == "backtest_finished" and failed.severity == "warning"
    assert "failed" in failed.title and "RuntimeError: disk on fire" in failed.body


def test_an_event_recorded_twice_is_one_alert_and_a_rollback_takes_its_alert(
        store: tuple[Engine, str]) -> None:
    engine, _ = store
    with engine.begin() as conn:
        for _ in range(2):
            outbox.record(conn, kind="engine_failing", event_id="e-1", title="t", body="b")
    with engine.connect() as conn, conn.begin() as tx:
        outbox.record(conn, kind="engine_failing", event_id="e-2", title="t", body="b")
        tx.rollback()
    assert [a.event_id for a in alerts_of(engine)] == ["e-1"]
    with pytest.raises(ValueError, match="unknown alert kind"), engine.begin() as conn:
        outbox.record(conn, kind="no_such_kind", event_id="e-3", title="t", body="b")
    with pytest.raises(ValueError, match="unknown alert severity"), engine.begin() as conn:
        outbox.record(conn, kind="engine_failing", event_id="e-4", title="t", body="b",
                      severity="loud")


def test_a_liquidation_reads_as_a_critical_alert(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    with engine.begin() as conn:
        events.trade_closed(conn, session_id=None, position_id=7, ts_ms=0,  # type: ignore[arg-type]
                            agent="Momentum Hunter", symbol="BTCUSDT", side="LONG", quantity=0.5,
                            entry=60_000.0, exit_price=54_000.0, gross=-3_000.0, fees=24.0,
                            funding=-1.5, reason="liquidation")
    alert = alerts_of(engine)[0]
    assert (alert.kind, alert.severity) == ("trade_liquidated", "critical")
    assert alert.title == "Liquidated: long BTCUSDT (Momentum Hunter) -3,025.50 USDT"


def test_a_live_restart_that_reconciles_alerts_what_changed(live: Live) -> None:  # noqa: F811
    symbol = trade_behind_the_desks_back(live)
    got = [a for a in alerts_of(live.engine, live.session_id) if a.kind == "reconcile_changes"]
    assert len(got) == 1
    assert "no agent owns" in got[0].body and symbol in got[0].body
    assert got[0].severity == "warning"



def test_a_live_position_found_naked_is_alerted_with_how_long(live: Live) -> None:  # noqa: F811
    pos = run_until_open(live)
    got = alerts_of(live.engine, live.session_id)
    assert f"trade-opened-{pos.id}" in {a.event_id for a in got}  # live entries alert too
    live.driver.stop()
    cancel_stops_at_venue(live, pos.symbol)  # someone cancels the stop while the engine is down
    live.venue.advance_market(M15)
    live.restart()
    live.tick(advance=False)
    naked = [a for a in alerts_of(live.engine, live.session_id) if a.kind == "position_naked"]
    assert len(naked) == 1 and naked[0].severity == "warning"
    assert naked[0].title == f"Stop coverage: {pos.symbol}"
    assert "stop re-placed over the whole" in naked[0].body and "naked for" in naked[0].body
