"""Alembic environment: runs on the connection ``core.store.db.migrate`` hands over."""

from __future__ import annotations

from alembic import context

import core.exchanges.paper_store
import core.store.tables  # noqa: F401  (registers the desk's tables)
from core.store.base import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:
    raise RuntimeError("run migrations through core.store.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
