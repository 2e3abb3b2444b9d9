"""The Alembic chain builds exactly the schema the table classes declare, on SQLite and Postgres:
a table or column added to the models without a migration (or the reverse) fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

import core.exchanges.paper_store
import core.store.tables  # noqa: F401
from core.store.base import Base
from core.store.db import make_engine, migrate


def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_migrations_are_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)
    with create_engine(url).connect() as conn:
        head = conn.execute(text("select version_num from alembic_version")).scalar_one()
    engine.dispose()
    assert head == "0011"
