"""Live mode at the edges: the CLI and the dashboard ask for an explicit confirmation, refuse a
live session without keys or in hedge mode with a message that says how to fix it, and show the
AsterDex account's real balance and positions. The venue is the loopback fake."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from core import queries, service
from core.errors import ConfigError
from core.queries import live as live_queries
from core.store.db import open_database
from core.store.tables import SessionRow
from tests.conftest import APP
from tests.fake_venue import FakeVenue
from tests.live_support import API_KEY, API_SECRET, live_settings
from tests.test_cli import cli_env, refused, run_cli


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    with FakeVenue(api_key=API_KEY, api_secret=API_SECRET, weight_limit=1_000_000) as v:
        yield v


def sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(SessionRow)) or 0)


# ---------------------------------------------------------------------- service
def test_a_live_session_without_keys_is_refused_with_the_fix(venue: FakeVenue, sqlite_url: str) -> None:
    settings = live_settings(venue, database_url=sqlite_url, asterdex_api_key=None,
                             asterdex_secret_key=None)
    engine = open_database(sqlite_url)
    with pytest.raises(ConfigError, match="ASTERDEX_API_KEY and ASTERDEX_SECRET_KEY"):
        service.create_session(engine, settings, mode="live")
    assert sessions(engine) == 0
    assert venue.requests == []  # refused before anything went out


def test_a_live_session_in_hedge_mode_is_refused_with_the_fix(venue: FakeVenue, sqlite_url: str) -> None:
    venue.book.dual_side = True
    engine = open_database(sqlite_url)
    with pytest.raises(ConfigError, match="One-way"):
        service.create_session(engine, live_settings(venue, database_url=sqlite_url,
                                                     asterdex_history_bars=200), mode="live")
    assert sessions(engine) == 0


def test_live_capital_is_the_available_balance_or_less(venue: FakeVenue, sqlite_url: str) -> None:
    settings = live_settings(venue, database_url=sqlite_url, asterdex_history_bars=200)
    engine = open_database(sqlite_url)
    with pytest.raises(ConfigError, match="more than the account's available balance"):
        service.create_session(engine, settings, mode="live", capital=50_000)
    ref = service.create_session(engine, settings, mode="live", capital=2_500)
    status = queries.session_status(engine, ref.id)["session"]
    assert (status["mode"], status["initial_capital"]) == ("live", 2_500.0)
    with venue.lock:
        assert venue.book.margin_type == {s: "isolated" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}


def test_the_venue_account_is_asked_once_per_refresh_window(
        venue: FakeVenue, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = live_settings(venue, database_url=sqlite_url, asterdex_history_bars=200)
    engine = open_database(sqlite_url)
    ref = service.create_session(engine, settings, mode="live", capital=2_500)
    first = queries.venue_account(settings, engine, ref.id)
    asked = len(venue.requests)
    again = queries.venue_account(settings, engine, ref.id)  # the other page, same refresh
    assert len(venue.requests) == asked and again["wallet_balance"] == first["wallet_balance"]
    monkeypatch.setattr(live_queries, "ACCOUNT_MAX_AGE_S", 0.0)  # the window has passed
    queries.venue_account(settings, engine, ref.id)
    assert len(venue.requests) > asked


# ---------------------------------------------------------------------- CLI
def test_cli_live_needs_confirmation(sqlite_url: str) -> None:
    env = {**cli_env(sqlite_url), "ASTERDEX_BASE_URL": "http://127.0.0.1:9"}  # never the real venue
    result = run_cli(env, "session", "create", "--mode", "live")
    assert "--confirm-live" in refused(result)
    keys = run_cli(env, "session", "create", "--mode", "live", "--confirm-live")
    assert "ASTERDEX_API_KEY" in refused(keys)
    assert sessions(open_database(sqlite_url)) == 0


# ---------------------------------------------------------------------- dashboard
@pytest.fixture
def live_env(app_env: str, venue: FakeVenue, monkeypatch: pytest.MonkeyPatch) -> str:
    from core.config import get_settings

    for name, value in {"ASTERDEX_BASE_URL": venue.url, "ASTERDEX_API_KEY": API_KEY,
                        "ASTERDEX_SECRET_KEY": API_SECRET, "ASTERDEX_HISTORY_BARS": "200",
                        "ASTERDEX_STREAMS": "false"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return app_env


def test_dashboard_live_needs_the_confirmation_then_shows_the_account(
        live_env: str, venue: FakeVenue) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    mode = next(r for r in at.radio if r.label == "Mode")
    mode.set_value("live")
    next(b for b in at.button if b.label == "Create session").click().run()
    assert any("Tick the confirmation" in e.value for e in at.error)
    engine = open_database(live_env)
    assert sessions(engine) == 0
    at.checkbox(key="session_confirm_live").check()
    next(b for b in at.button if b.label == "Create session").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert sessions(engine) == 1
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "AsterDex account" for s in at.subheader)
    wallet = next(m for m in at.metric if m.label == "Wallet balance")
    assert "10,000" in wallet.value
    assert Decimal(str(queries.session_status(engine, 1)["session"]["initial_capital"])) == 10_000
