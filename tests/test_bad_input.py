"""Bad input and faults a trader meets first: each is refused with one precise line (exit 2 on
the CLI, a message on the dashboard), and a refused command creates and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import load_settings
from core.errors import ConfigError
from core.store.db import make_engine
from tests.conftest import APP
from tests.test_cli import cli_env, refused, run_cli


# ---------------------------------------------------------------------- the store's path
@pytest.mark.parametrize(("url", "said"), [
    ("sqlite:///{missing}/desk.db", "a folder that does not exist"),
    ("sqlite:///", "names no file"),
])
def test_a_sqlite_store_that_would_be_created_empty_is_refused(tmp_path: Path, url: str,
                                                               said: str) -> None:
    missing = tmp_path / "no-such-folder"
    given = url.format(missing=missing)
    line = refused(run_cli(cli_env(given), "session", "list"), said)
    assert line.startswith("error: invalid setting DATABASE_URL: ") and "Value error" not in line
    assert not missing.exists()  # nothing was created on the way
    with pytest.raises(ConfigError, match=said):
        load_settings(database_url=given)
    with pytest.raises(ConfigError, match=said):
        make_engine(given)


def test_in_memory_and_existing_folders_still_open(tmp_path: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:", f"sqlite:///{tmp_path / 'desk.db'}"):
        make_engine(url).dispose()


def test_the_dashboard_says_why_it_cannot_start(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'gone' / 'desk.db'}")
    get_settings.cache_clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=30).run()
    finally:
        get_settings.cache_clear()
        st.cache_resource.clear()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] and "The desk cannot start: invalid setting DATABASE_URL" \
        in at.error[0].value and "does not exist" in at.error[0].value
    assert not at.sidebar.markdown  # nothing else is drawn
