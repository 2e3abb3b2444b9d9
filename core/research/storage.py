"""Where Optuna keeps the desk's studies: in the desk's own database.

On PostgreSQL a study lives in the database ``DATABASE_URL`` names, in a schema of its own
(``desk_research``): Optuna versions its tables with an ``alembic_version`` table just like the
desk's migrations, and the two must never read each other's. Every process on every machine with
the same ``DATABASE_URL`` therefore sees, and can join, the same studies.

On SQLite the studies go to a file beside the desk's (``desk.db`` → ``desk.studies.db``), for the
same reason; SQLite serves the worker processes of one machine (WAL, a busy timeout). An
in-memory desk database has nowhere to put a study that several processes share, so it is refused.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from core.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

SCHEMA = "desk_research"
SQLITE_SUFFIX = ".studies.db"
SQLITE_TIMEOUT_S = 60
# A worker beats every HEARTBEAT_S while it runs a trial; a trial whose worker has not beaten for
# GRACE_S (killed, its machine gone) is marked failed by the next worker, never left running.
HEARTBEAT_S = 10
GRACE_S = 60
_PG_SCHEMA_LOCK_KEY = 7_315_004_212
_LOCK = threading.Lock()


def studies_url(database_url: str) -> tuple[str, dict[str, Any]]:
    """The URL Optuna opens for the desk at ``database_url`` and the engine options it needs."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_studies_path(url)
        return (f"sqlite:///{path}",
                {"connect_args": {"timeout": SQLITE_TIMEOUT_S, "check_same_thread": False}})
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        return (url.render_as_string(hide_password=False),
                {"pool_pre_ping": True, "connect_args": {"options": f"-csearch_path={SCHEMA}"}})
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_studies_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:":
        raise ConfigError("studies need a database file or PostgreSQL: an in-memory desk "
                          "database cannot be shared by worker processes")
    desk = Path(database).expanduser()
    if not desk.parent.is_dir():
        raise ConfigError(f"the desk's database folder {desk.parent} does not exist")
    return desk.with_name(f"{desk.stem}{SQLITE_SUFFIX}")


def _prepare(url: str) -> None:
    """The PostgreSQL schema exists (created once, under a lock, whoever comes first); a SQLite
    file is in WAL mode so workers read while another writes."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=SQLITE_TIMEOUT_S)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    finally:
        engine.dispose()


def studies_exist(database_url: str) -> bool:
    """Has any study been stored yet? (Reading asks first, so a page never creates the studies'
    file or schema.)"""
    url, _ = studies_url(database_url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).exists()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT to_regclass(:t)"),
                                {"t": f"{SCHEMA}.studies"}).scalar() is not None
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(f"cannot open the studies' database: {reason}") from None
    finally:
        engine.dispose()


def open_storage(database_url: str, *, heartbeat: bool = False) -> RDBStorage:
    """Optuna's storage for the desk's studies (tables created on first use); ``heartbeat`` for
    a worker that runs trials. StoreError with one line when the database cannot be reached."""
    url, engine_kwargs = studies_url(database_url)
    beat: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S} \
        if heartbeat else {}
    try:
        with _LOCK:
            _prepare(url)
            if url.startswith("postgresql"):  # two processes creating the tables: one waits
                return _locked_pg_storage(url, engine_kwargs, beat)
            return _storage(url, engine_kwargs, beat)
    except (OperationalError, sqlite3.OperationalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StoreError(f"cannot open the studies' database: {reason}") from None


def _storage(url: str, engine_kwargs: dict[str, Any], beat: dict[str, Any]) -> RDBStorage:
    import warnings

    import optuna

    with warnings.catch_warnings():  # the heartbeat is flagged experimental; it is what we need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beat)


def _locked_pg_storage(url: str, engine_kwargs: dict[str, Any],
                       beat: dict[str, Any]) -> RDBStorage:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
            try:
                return _storage(url, engine_kwargs, beat)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()
