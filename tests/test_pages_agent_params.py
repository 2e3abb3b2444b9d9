"""The Agents page's parameters: what the session on screen runs with beside what the strategy
file sets for new sessions, and the editor that saves to the file (validated by the same models,
never reaching the running session). Driven through AppTest against a strategy file of the test's
own (STRATEGIES_FILE), so the shipped file is never written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import queries
from core.agents import strategy_file
from core.agents.desk_params import DeskParams
from core.config import PROJECT_ROOT, get_settings
from tests.conftest import APP, make_settings
from tests.desk_helpers import create

AGENTS_PAGE = "views/agents.py"


@pytest.fixture
def file(app_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "strategies.toml"
    shutil.copy(PROJECT_ROOT / "strategies.toml", path)
    monkeypatch.setenv("STRATEGIES_FILE", str(path))
    get_settings.cache_clear()
    return path


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page(AGENTS_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest, index: int) -> Any:
    return at.dataframe[index].value


def test_without_a_session_the_page_shows_what_new_sessions_get(file: Path) -> None:
    at = page()
    assert [s.value for s in at.subheader] == ["Parameters"]
    trend = table(at, 0)
    assert "This session" not in trend.columns and "session" not in trend.columns
    adx = trend[trend["param"] == "adx_min"].iloc[0]
    assert (adx["value"], adx["default"], adx["bounds"]) == ("20", "20", "a number between 0 and 60")
    assert "least ADX14" in adx["description"]
    assert not at.button  # nothing to click until an edit is asked for


def test_an_edit_is_saved_for_new_sessions_and_the_running_one_keeps_its_own(
        file: Path, app_env: str, db: Engine) -> None:
    sid = create(db, make_settings(database_url=app_env, strategies_file=file))
    at = page()
    assert "session" in table(at, 0).columns
    assert any("never changed while it runs" in c.value for c in at.caption)
    at.toggle(key="edit_params_trend").set_value(True).run()
    at.number_input(key="param_trend.adx_min").set_value(26.0)
    at.selectbox(key="param_trend.filter_interval").set_value("1d")
    next(b for b in at.button if b.label.startswith("Save to strategies.toml")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("trend.adx_min 20.0 → 26.0" in s.value for s in at.success)
    assert strategy_file.load(file).differences(DeskParams.defaults()) == {
        "trend.adx_min": (26.0, 20.0), "trend.filter_interval": ("1d", "4h")}
    assert queries.session_params(db, sid) == DeskParams.defaults()  # the running session
    adx = table(at, 0)[table(at, 0)["param"] == "adx_min"].iloc[0]
    assert (adx["session"], adx["value"]) == ("20", "26")


def test_a_refused_edit_says_why_and_leaves_the_file_alone(file: Path) -> None:
    before = file.read_text(encoding="utf-8")
    at = page()
    at.toggle(key="edit_params_roster").set_value(True).run()
    at.number_input(key="param_roster.trend.share").set_value(0.35)
    next(b for b in at.button if b.label.startswith("Save to")).click().run()
    (error,) = at.error
    assert "Not saved" in error.value and "sum to 1 (they sum to 1.1)" in error.value
    assert file.read_text(encoding="utf-8") == before


def test_a_broken_file_is_shown_as_an_error(file: Path) -> None:
    file.write_text("[trend]\nadx_min = 99.0\n", encoding="utf-8")
    at = page()
    (error,) = at.error
    assert "line 2: trend.adx_min = 99.0" in error.value and "between 0 and 60" in error.value
