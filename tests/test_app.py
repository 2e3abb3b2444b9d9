"""The dashboard renders on an empty and on a trading database, and its buttons drive the service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import queries
from core.config import PROJECT_ROOT, get_settings
from core.store.db import open_database
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks

APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ENGINE_IN_APP", "false")
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield sqlite_url
    st.cache_resource.clear()
    get_settings.cache_clear()


def test_empty_database_offers_to_create_a_session(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert any("No session yet" in i.value for i in at.info)
    at.number_input[0].set_value(50_000.0)
    at.button[0].click().run()
    assert not at.exception
    engine = open_database(app_env)
    status = queries.session_status(engine, 1)["session"]
    assert status["initial_capital"] == 50_000.0 and status["status"] == "created"


def test_trading_session_shows_kpis_agents_and_pause_resume(app_env: str) -> None:
    engine = open_database(app_env)
    settings = make_settings(database_url=app_env, replay_start="2025-09-01")
    session_id = create(engine, settings)
    run_ticks(engine, settings, 200)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert [m.label for m in at.metric][:2] == ["Equity", "Total PnL"]
    assert len(at.dataframe[0].value) == 5
    pause = next(b for b in at.button if b.label == "Pause")
    pause.click().run()
    assert queries.session_status(engine, session_id)["session"]["status"] == "paused"
    resume = next(b for b in at.button if b.label == "Resume")
    resume.click().run()
    assert queries.session_status(engine, session_id)["session"]["status"] == "running"
    again = next(b for b in at.button if b.label == "Resume")
    again.click().run()
    assert any("cannot resume" in e.value for e in at.error)  # refused, shown, not raised
