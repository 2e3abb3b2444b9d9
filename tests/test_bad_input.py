"""Bad input and faults a trader meets first: each is refused with one precise line (exit 2 on
the CLI, a message on the dashboard), and a refused command creates and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
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


# ---------------------------------------------------------------------- the engine command
@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A store with one paper session, for CLI runs in this process and in subprocesses."""
    from core.config import get_settings

    env = cli_env(f"sqlite:///{tmp_path / 'desk.db'}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from core.cli import main

    assert main(["session", "create"]) == 0
    yield env
    get_settings.cache_clear()  # the next test reads its own environment


def test_engine_ticks_that_fail_exit_non_zero_with_the_cause(
        cli_store: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main
    from core.desk import scheduler

    real = scheduler.run_cycle
    calls = {"n": 0}

    def fails_after_three(desk):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return real(desk)

    monkeypatch.setattr(scheduler, "run_cycle", fails_after_three)
    capsys.readouterr()
    assert main(["engine", "--ticks", "10"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("ran 3 ticks") and "stopped early: None" not in out
    assert err.strip() == ("error: stopped after 3 of 10 ticks: tick failed: OSError: [Errno 28] "
                           "No space left on device")


def test_engine_refuses_a_session_that_is_missing_or_ended(cli_store: dict[str, str]) -> None:
    refused(run_cli(cli_store, "engine", "--session", "100"), "no session 100")
    refused(run_cli(cli_store, "engine", "--session", "100", "--ticks", "5"), "no session 100")
    assert run_cli(cli_store, "session", "stop").returncode == 0
    line = refused(run_cli(cli_store, "engine", "--session", "1"), "session 1 is stopped")
    assert "nothing to trade" in line


# ---------------------------------------------------------------------- ids, long and odd input
HUGE = "9223372036854775808"  # 2**63: one past what a signed 64-bit id column holds
LONG = "x" * 100_000


@pytest.mark.parametrize("args", [
    ("session", "status", "--session", HUGE), ("engine", "--session", HUGE),
    ("trades", "--session", HUGE), ("ceo-log", "--limit", HUGE), ("close", HUGE),
    ("cancel", HUGE), ("flatten", "momentum", "--session", HUGE), ("backtest", "--show", HUGE),
    ("engine", "--ticks", HUGE),
])
def test_an_id_past_64_bits_is_refused_in_words(tmp_path: Path, args: tuple[str, ...]) -> None:
    line = refused(run_cli(cli_env(f"sqlite:///{tmp_path / 'd.db'}"), *args), "too large")
    assert "9,223,372,036,854,775,807" in line and "internal" not in line


@pytest.mark.parametrize("given", ["１２", "1_000", "-3", "12abc", " "])
def test_only_ascii_digits_are_an_id(tmp_path: Path, given: str) -> None:
    refused(run_cli(cli_env(f"sqlite:///{tmp_path / 'd.db'}"), "session", "status", "--session",
                    given), "is not a whole number")


@pytest.mark.parametrize("args", [
    ("session", "status", "--session", LONG), ("trades", "--csv", LONG), ("trades", "--agent", LONG),
    ("ceo-log", "--rule", LONG), ("session", "create", "--symbols", LONG),
    ("backtest", "--from", "2025-10-01", "--to", "2025-10-02", "--data", LONG),
    ("backtest", "--from", "2025-10-01", "--to", "2025-10-02", "--symbols", LONG),
    ("backtest", "--from", LONG, "--to", "2025-10-02"),
])
def test_a_100000_character_argument_gets_one_short_line(cli_store: dict[str, str],
                                                         args: tuple[str, ...]) -> None:
    line = refused(run_cli(cli_store, *args))
    assert "internal" not in line and "OSError" not in line and "LIKE" not in line
    assert len(line) < 400 and "(100,0" in line  # what was typed, by its start and its length


def test_a_candle_time_that_is_no_time_is_refused_as_such(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[1] / "data" / "klines" / "BTCUSDT-15m.csv"
    lines = source.read_text(encoding="utf-8").splitlines()[:200]
    cells = lines[50].split(",")
    lines[50] = ",".join(["1e23", *cells[1:]])
    (tmp_path / "BTCUSDT-15m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = refused(run_cli(cli_env(f"sqlite:///{tmp_path / 'd.db'}"), "backtest", "--from",
                           "2020-01-01", "--to", "2030-01-01", "--data", str(tmp_path),
                           "--symbols", "BTCUSDT"))
    assert "row 51: open_time_ms 1e+23 is not a candle time" in line, line
    assert "earlier than the row before" not in line
