"""The app shell (app.py): the Session page is the default page, the sidebar shows the session on
every page, and the password gate shows nothing else until the right password is entered.

The pages themselves are driven in test_pages_session_agents.py and the other page tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import queries
from core.config import get_settings
from core.store.db import open_database
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks


@pytest.fixture
def seeded(app_env: str) -> Iterator[tuple[Engine, int]]:
    engine = open_database(app_env)
    settings = make_settings(database_url=app_env, replay_start="2025-09-01")
    session_id = create(engine, settings)
    run_ticks(engine, settings, 200)
    yield engine, session_id
    engine.dispose()


def everything_said(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "caption", "info", "warning", "error",
                                       "success", "title") for e in at.get(kind)]
    return "\n".join(parts + [f"{m.label} {m.value}" for m in at.metric])


def test_empty_database_opens_on_the_session_page(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Session"
    assert "Create session" in [b.label for b in at.button]
    assert any("No session yet" in i.value for i in at.sidebar.info)


def test_sidebar_shows_mode_equity_and_engine_heartbeat(seeded: tuple[Engine, int]) -> None:
    engine, session_id = seeded
    s = queries.session_status(engine, session_id)["session"]
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == s["name"]  # the Session page of the running session
    side = at.sidebar
    assert any("PAPER" in e.value for e in side.success)
    assert any(f"Equity **{s['equity']:,.2f}** USDT" in m.value for m in side.markdown)
    # ENGINE_IN_APP=false and no engine process: the missing heartbeat is said, not hidden
    assert any("Engine not running" in w.value for w in side.warning)


def test_password_gate_shows_nothing_else_until_the_right_password(
        seeded: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", "s3cret")
    get_settings.cache_clear()
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception

    def only_the_gate() -> None:
        assert [b.label for b in at.button] == ["Enter"]  # the form's button, nothing else
        assert not at.metric and not at.dataframe and not at.get("plotly_chart")
        assert not at.toggle and len(at.sidebar.children) == 0
        said = everything_said(at)
        assert "Paper desk" not in said and "USDT" not in said  # not even the session's name

    only_the_gate()
    at.text_input[0].set_value("wrong")
    at.button[0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong password."]
    only_the_gate()

    at.text_input[0].set_value("s3cret")
    at.button[0].click().run()
    assert not at.exception
    assert not at.text_input and not at.error  # the gate is gone
    assert at.title[0].value.startswith("Paper desk")  # the Session page
    assert "Equity (USDT)" in [m.label for m in at.metric]
    assert any("Equity **" in m.value for m in at.sidebar.markdown)
    at.run()  # and it stays open for this browser session
    assert "Equity (USDT)" in [m.label for m in at.metric]


def test_wrong_passwords_are_slowed_down_and_logged_without_the_guess(
        seeded: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import dashboard.login

    now = [1_000.0]
    monkeypatch.setattr(dashboard.login, "_now", lambda: now[0])
    monkeypatch.setenv("DASHBOARD_PASSWORD", "s3cret")
    get_settings.cache_clear()
    at = AppTest.from_file(APP, default_timeout=30).run()

    def guess(text: str) -> list[str]:
        at.text_input[0].set_value(text)
        at.button[0].click().run()
        assert not at.exception
        return [e.value for e in at.error]

    assert guess("guess-1") == ["Wrong password."]
    assert guess("guess-2") == ["Wrong password."]
    assert guess("guess-3") == ["Wrong password. Wait 1 s before the next try."]
    # locked: even the right password is not checked until the wait is over
    assert guess("s3cret") == ["Too many wrong passwords: try again in 1 s."]
    now[0] += 1.0
    assert guess("guess-4") == ["Wrong password. Wait 2 s before the next try."]
    now[0] += 1.0
    assert guess("guess-5") == ["Too many wrong passwords: try again in 1 s."]
    now[0] += 1.0
    logged = [r.getMessage() for r in caplog.records if "wrong password" in r.getMessage()]
    assert len(logged) == 4 and "(4 in the last 15 min)" in logged[-1]
    assert not any("guess-" in line or "s3cret" in line for line in caplog.messages)
    assert guess("s3cret") == []  # the wait is over: in
    assert "Equity (USDT)" in [m.label for m in at.metric]


def test_no_password_configured_means_no_gate(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "Enter" not in [b.label for b in at.button]
    assert "Password" not in [t.label for t in at.text_input]


def test_the_sidebar_refreshes_on_the_pages_clock_and_pauses_with_them(
        seeded: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Sidebar and page body refresh together, so their equity never differs by a refresh;
    pausing Live refresh freezes the sidebar too."""
    import streamlit as st

    asked: list[tuple[str, object]] = []
    real = st.fragment

    def spy(func=None, *, run_every=None, **kwargs):  # type: ignore[no-untyped-def]
        if func is not None:
            asked.append((getattr(func, "__name__", "?"), run_every))
            return real(func, run_every=run_every, **kwargs)
        return lambda f: spy(f, run_every=run_every, **kwargs)

    monkeypatch.setattr(st, "fragment", spy)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    every = dict(asked)
    assert every["_sidebar_status"] == 15 and every.get("header_line") == 15
    asked.clear()
    at.toggle(key="live_refresh").set_value(False).run()
    assert not at.exception
    every = dict(asked)
    assert every["_sidebar_status"] is None and every.get("header_line") is None
