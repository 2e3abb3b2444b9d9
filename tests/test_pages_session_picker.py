"""The sidebar's session picker, driven through AppTest: with a stopped and a running paper
session (and a backtest, which the picker leaves to the Backtest page) every page shows the
running one by default, and choosing the stopped one shows its CEO log and trades, read only.

The store holds two real sessions that traded, so "its rows and not the other's" compares the
tables on screen with what ``core.queries`` holds for each session.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from core import queries, service
from core.store.tables import SessionRow
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks

SESSION_PAGE = "views/session.py"
AGENTS_PAGE = "views/agents.py"
CEO_PAGE = "views/ceo.py"
POSITIONS_PAGE = "views/positions.py"
CONTROLS = {"Pause", "Resume", "Stop", "Acknowledge halt and resume"}


@dataclass(frozen=True)
class Desk:
    stopped: int
    running: int
    backtest: int


@pytest.fixture
def desk(app_env: str, db: Engine) -> Desk:
    """September's desk traded and was stopped; October's desk is running; a backtest run."""
    first = make_settings(database_url=app_env, replay_start="2025-09-01")
    stopped = create(db, first, name="September desk")
    run_ticks(db, first, 250)
    service.stop_session(db, first, stopped)
    second = make_settings(database_url=app_env, replay_start="2025-10-01")
    running = create(db, second, name="October desk")
    run_ticks(db, second, 250)
    with db.begin() as conn:
        backtest = service.insert_session(
            conn, name="Backtest run", mode="backtest", source="replay", symbols=["BTCUSDT"],
            capital=10_000.0, interval="15m", start_ms=second.replay_start_ms,
            model_of=lambda spec: "rules")
        conn.execute(update(SessionRow).where(SessionRow.id == backtest).values(status="stopped"))
    assert queries.trades_count(db, stopped) > 0 and queries.trades_count(db, running) > 0
    return Desk(stopped, running, backtest)


def app(*, link: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if link is not None:
        at.query_params["session"] = link
    return ok(at.run())


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def picker(at: AppTest) -> Any:
    found = [s for s in at.sidebar.selectbox if s.label == "Session"]
    return found[0] if found else None


def choose(at: AppTest, session_id: int) -> AppTest:
    return ok(picker(at).select(session_id).run())


def open_page(at: AppTest, page: str) -> AppTest:
    return ok(at.switch_page(page).run())


def table(at: AppTest, first_column: str) -> pd.DataFrame:
    return next(d.value for d in at.main.dataframe if d.value.columns[0] == first_column)


def said(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "title")
                     for e in at.main.get(kind))


def sidebar_said(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption") for e in at.sidebar.get(kind))


def link_of(at: AppTest) -> str | None:
    value = at.query_params.get("session")
    return value[0] if isinstance(value, list) else value


# ---------------------------------------------------------------------- the picker
def test_picker_lists_the_desk_sessions_newest_first_and_defaults_to_the_running_one(
        desk: Desk) -> None:
    at = app()
    shown = picker(at)
    assert shown is not None, "no session picker in the sidebar"
    # the name leads (desk sessions are numbered apart from backtests), the store's id last
    assert shown.options == [f"October desk · running · 2025-10-01 · id {desk.running}",
                             f"September desk · stopped · 2025-09-01 · id {desk.stopped}"]
    assert shown.value == desk.running
    assert at.title[0].value == "October desk"
    assert {"Pause", "Stop"} <= {b.label for b in at.button}
    assert "**October desk**" in sidebar_said(at)
    assert link_of(at) is None  # following the latest session needs no link


def test_one_desk_session_beside_a_backtest_needs_no_picker(app_env: str, db: Engine) -> None:
    settings = make_settings(database_url=app_env, replay_start="2025-09-01")
    create(db, settings, name="Only desk")
    with db.begin() as conn:
        service.insert_session(conn, name="Backtest run", mode="backtest", source="replay",
                               symbols=["BTCUSDT"], capital=10_000.0, interval="15m",
                               start_ms=settings.replay_start_ms, model_of=lambda spec: "rules")
    at = app()
    assert picker(at) is None
    assert at.title[0].value == "Only desk"


# ---------------------------------------------------------------------- a stopped session, chosen
def test_choosing_the_stopped_session_shows_its_ceo_log_and_trades_only(desk: Desk,
                                                                         db: Engine) -> None:
    at = choose(app(), desk.stopped)
    assert link_of(at) == str(desk.stopped)  # the URL reopens the choice
    assert "**September desk**" in sidebar_said(at) and "Session stopped." in sidebar_said(at)

    at = open_page(at, CEO_PAGE)
    assert picker(at).value == desk.stopped  # the choice holds across pages
    assert "September desk" in said(at)
    shown = list(table(at, "Time (UTC)")["Time (UTC)"])
    assert shown == list(queries.ceo_log(db, desk.stopped, limit=50)["ts"])
    assert not set(shown) & set(queries.ceo_log(db, desk.running, limit=None)["ts"])
    verdicts = queries.ceo_verdict_counts(db, desk.stopped)
    assert [m.value for m in at.main.metric][:3] == [f"{verdicts[v]:,}" for v in queries.VERDICTS]

    at = open_page(at, POSITIONS_PAGE)
    trades = list(table(at, "Closed (UTC)")["Trade #"])
    assert trades == list(queries.trades(db, desk.stopped, limit=50)["trade_id"])
    assert not set(trades) & set(queries.trades(db, desk.running, limit=None)["trade_id"])
    assert link_of(at) == str(desk.stopped)


def test_a_stopped_session_offers_no_controls_but_create_stays(desk: Desk, db: Engine) -> None:
    at = choose(app(), desk.stopped)
    labels = {b.label for b in at.main.button}
    assert not labels & CONTROLS
    assert "Create session" in labels
    assert any("has ended" in c.value for c in at.main.caption)
    assert any("September desk" in i.value and "final equity" in i.value
               and "trading **October desk**" in i.value for i in at.main.info)

    at = open_page(at, AGENTS_PAGE)
    assert not at.main.button  # no agent pause / resume
    assert any("final figures" in i.value for i in at.main.info)
    assert said(at).count("Why: session stopped") == 5

    at = open_page(choose(at, desk.running), AGENTS_PAGE)  # back to the running desk
    assert any(b.key and b.key.startswith("pause_") for b in at.main.button)
    assert link_of(at) is None
    assert service.resolve_session(db, desk.running).status == "running"


# ---------------------------------------------------------------------- links and vanished sessions
def test_a_link_reopens_a_session_and_a_link_to_none_falls_back(desk: Desk) -> None:
    at = app(link=str(desk.stopped))
    assert picker(at).value == desk.stopped
    assert any("September desk" in i.value for i in at.main.info)

    for bad in (str(desk.backtest), "999", "x", "9" * 30, "１２"):  # huge and full-width too
        at = app(link=bad)
        assert picker(at).value == desk.running, bad
        assert at.title[0].value == "October desk"
        assert link_of(at) is None
        said = [w.value for w in at.sidebar.warning]
        if bad.isascii() and bad.isdigit() and len(bad) < 19:  # not silently: the user learns the link named nothing here
            assert any(f"no paper or live session #{bad}" in w and "October desk" in w
                       for w in said), said


def test_a_chosen_session_that_is_deleted_falls_back_to_the_default(desk: Desk,
                                                                    app_env: str) -> None:
    at = choose(app(), desk.stopped)
    with sqlite3.connect(make_url(app_env).database) as raw:  # foreign keys off: just the row
        raw.execute("DELETE FROM sessions WHERE id = ?", (desk.stopped,))
    at = ok(at.run())
    assert picker(at) is None  # one desk session left
    assert at.title[0].value == "October desk"
    assert link_of(at) is None
    assert any(f"no paper or live session #{desk.stopped}" in w.value for w in at.sidebar.warning)
