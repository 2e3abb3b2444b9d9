"""Database engine, connection pragmas and schema migration on start.

SQLite runs in WAL mode with a busy timeout so the dashboard reads while the engine writes;
PostgreSQL is used as is. ``open_database`` applies Alembic migrations to head before returning, so
every entry point (CLI, engine, dashboard, tests) sees the current schema.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.config import check_sqlite_path
from core.errors import ConfigError, StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATE_LOCK = threading.Lock()
_PG_MIGRATION_LOCK_KEY = 7_315_004_211


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` with the desk's pragmas; ConfigError on a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        try:
            check_sqlite_path(parsed.database)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def migrate(engine: Engine) -> None:
    """Upgrade the schema to Alembic head (serialised across threads and, on Postgres, processes)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with _MIGRATE_LOCK, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_database(url: str) -> Engine:
    """Connect, migrate to head and return the engine; StoreError with one line if unreachable."""
    engine = make_engine(url)
    try:
        migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(f"cannot open database {engine.url.render_as_string()}: {reason}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"database error while migrating: {exc}") from None
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
