"""Copies a finished backtest from its private in-memory store into the main store, in one
transaction, so the run can be browsed with the desk's usual queries (trades, CEO log, equity).

Row ids are shifted past the main store's current maximum per table, foreign keys with them, and
the ``s<session>p<position>`` part of client order ids is rewritten to the new ids (client order
ids are unique across the store). On SQLite the transaction's first statement is a write, so it
holds the write lock before it reads the maxima; on PostgreSQL the tables are locked against other
writers (readers go on) for the few seconds the copy takes, and the id sequences are moved past
the copied rows. Foreign keys to tables that are not copied (e.g. an LLM audit row) are cleared.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, Table, func, select, text, update

from core.store.base import Base
from core.store.tables import (
    AGENTS,
    CEO_DECISIONS,
    EQUITY_SNAPSHOTS,
    FILLS,
    FUNDING,
    ORDERS,
    POSITIONS,
    PROPOSALS,
    SESSIONS,
    BacktestRunRow,
)

# parents before children (model calls, when the schema has them, before the proposals citing them)
_CALLS = Base.metadata.tables.get("llm_calls")
TABLES: tuple[Table, ...] = (SESSIONS, AGENTS, *((_CALLS,) if _CALLS is not None else ()), PROPOSALS,
                             CEO_DECISIONS, POSITIONS, ORDERS, FILLS, FUNDING, EQUITY_SNAPSHOTS)
CHUNK = 10_000
_CID = re.compile(r"(^|-)s(\d+)p(\d+)-")
RUNS = BacktestRunRow.__table__


def copy_session(source: Engine, session_id: int, target: Engine, run_id: int) -> int:
    """Copy session ``session_id`` of ``source`` into ``target``; mark run ``run_id`` as saving
    in the same transaction. Returns the session's id in ``target``."""
    names = {t.name for t in TABLES}
    with source.connect() as src, target.begin() as dst:
        # a write first: on SQLite this takes the write lock before the maxima are read
        dst.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="saving"))
        if dst.dialect.name == "postgresql":
            dst.execute(text("LOCK TABLE " + ", ".join(t.name for t in TABLES) + " IN EXCLUSIVE MODE"))
        offsets = {t.name: int(dst.scalar(select(func.coalesce(func.max(t.c.id), 0))) or 0)
                   for t in TABLES}
        new_session = session_id + offsets["sessions"]
        for table in TABLES:
            fks = _foreign_keys(table, names)
            key = table.c.id if table is SESSIONS else table.c.session_id
            result = src.execution_options(yield_per=CHUNK).execute(
                select(table).where(key == session_id).order_by(table.c.id))
            for part in result.mappings().partitions(CHUNK):
                rows = [_shift(dict(r), table, fks, offsets, new_session) for r in part]
                dst.execute(table.insert(), rows)
        if dst.dialect.name == "postgresql":
            for table in TABLES:
                dst.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT max(id) FROM {table.name}))"))
    return new_session


def _foreign_keys(table: Table, copied: set[str]) -> dict[str, str | None]:
    """Column → referenced table when it is copied too, else None (the column is cleared)."""
    out: dict[str, str | None] = {}
    for fk in table.foreign_keys:
        ref = fk.column.table.name
        out[fk.parent.name] = ref if ref in copied else None
    return out


def _shift(row: dict[str, Any], table: Table, fks: dict[str, str | None],
           offsets: dict[str, int], new_session: int) -> dict[str, Any]:
    row["id"] += offsets[table.name]
    for column, ref in fks.items():
        if row.get(column) is not None:
            row[column] = None if ref is None else row[column] + offsets[ref]
    if row.get("client_order_id"):
        row["client_order_id"] = _CID.sub(
            lambda m: f"{m.group(1)}s{new_session}p{int(m.group(3)) + offsets['positions']}-",
            row["client_order_id"], count=1)
    return row
