"""Shared fixtures: settings isolated from the developer's .env, SQLite and PostgreSQL databases.

PostgreSQL tests use a fresh database per test on the server at TEST_POSTGRES_URL (default: the
local server). On a laptop without it they skip with the reason; in CI (CI=true or
DESK_REQUIRE_SERVICES=1) an unreachable server fails them instead, so they can never be skipped
silently there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

# No test may reach an outside address or a developer's account: the suite reads no .env (the
# settings file is an empty one, for this process and every subprocess it starts) and no key or
# credential from the environment (alert targets included). Set before core.config is imported.
os.environ["DESK_ENV_FILE"] = os.devnull
for _name in list(os.environ):
    if _name.upper().startswith(("GEMINI_", "XAI_", "ASTERDEX_", "OPENAI_", "GOOGLE_", "ALERT_")):
        del os.environ[_name]

# ...and nothing may connect anywhere but loopback, here or in a Python subprocess.
_GUARD_DIR = str(Path(__file__).resolve().parent / "network_guard")
os.environ["TEST_NETWORK_GUARD"] = "loopback"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_GUARD_DIR, os.environ.get("PYTHONPATH", "")) if p)
import sys  # noqa: E402

sys.path.insert(0, _GUARD_DIR)
import loopback_only  # noqa: E402

loopback_only.install()

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from core.config import PROJECT_ROOT, Settings  # noqa: E402

# CI runs the properties reproducibly: the same examples on every run, so a failure seen in CI
# replays on a laptop with HYPOTHESIS_PROFILE=ci. Elsewhere hypothesis explores new examples.
hypothesis_settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# Mutation testing (docs/mutation.md) runs the properties once per mutant: the same examples
# every time, fewer of them.
hypothesis_settings.register_profile(
    "mutation", derandomize=True, max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") == "true" else "dev"))

if TYPE_CHECKING:
    from tests.fake_venue import FakeVenue

REQUIRE_SERVICES = os.environ.get("CI") == "true" or os.environ.get("DESK_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: defaults plus overrides, ignoring .env and DESK_* variables."""
    base: dict[str, object] = {
        "replay_data_dir": PROJECT_ROOT / "data" / "klines",
        "replay_interval": "15m",
        "bars_per_tick": 1,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


def require_or_skip(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'desk.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"desk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        require_or_skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc.orig).strip().splitlines()[0]}")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[str]:
    """Environment for AppTest runs of the dashboard: a fresh SQLite store, no in-app engine, no
    password, and Streamlit's caches (the runtime) rebuilt for it."""
    import streamlit as st

    from core.config import get_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ENGINE_IN_APP", "false")
    monkeypatch.delenv("DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("DISPLAY_TIMEZONE", raising=False)
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield sqlite_url
    st.cache_resource.clear()
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _no_outside_connections() -> Iterator[None]:
    """Fail a test that tried to reach an outside address, even if its code hid the error."""
    before = len(loopback_only.attempts)
    yield
    tried = loopback_only.attempts[before:]
    if tried:
        pytest.fail(f"the test tried to connect outside loopback: {tried[:5]}")


# --------------------------------------------------------------------------------------------------
# Fixtures shared across test modules


@pytest.fixture
def db(app_env: str) -> Iterator[Engine]:
    """The dashboard's store for a page test (see ``app_env``), opened and migrated."""
    from core.store.db import open_database

    engine = open_database(app_env)
    yield engine
    engine.dispose()


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    """The loopback fake AsterDex venue, knowing the test V1 keys and V3 wallet, BTC at 60,000."""
    from tests.fake_venue import FakeVenue
    from tests.live_support import KEY, SECRET, SIGNER, USER

    with FakeVenue(api_key=KEY, api_secret=SECRET, v3_user=USER, v3_signer=SIGNER) as v:
        v.set_price("BTCUSDT", "60000")
        yield v
