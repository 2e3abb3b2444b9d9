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
from collections.abc import Sequence
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
            shift = _Shift(table, fks, offsets, new_session)
            for part in result.partitions(CHUNK):
                dst.execute(table.insert(), [shift(r) for r in part])
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


class _Shift:
    """One table's row → the row to insert: ids and foreign keys moved by their table's offset,
    references to tables that are not copied cleared, client order ids renamed."""

    def __init__(self, table: Table, fks: dict[str, str | None], offsets: dict[str, int],
                 new_session: int) -> None:
        self.names = [c.name for c in table.columns]
        self.id_at = self.names.index("id")
        self.id_offset = offsets[table.name]
        self.fks = [(self.names.index(column), None if ref is None else offsets[ref])
                    for column, ref in fks.items()]
        self.cid_at = (self.names.index("client_order_id") if "client_order_id" in self.names
                       else None)
        self.new_session, self.position_offset = new_session, offsets["positions"]

    def __call__(self, row: Sequence[Any]) -> dict[str, Any]:
        values = list(row)
        values[self.id_at] += self.id_offset
        for at, offset in self.fks:
            if values[at] is not None:
                values[at] = None if offset is None else values[at] + offset
        if self.cid_at is not None and values[self.cid_at]:
            values[self.cid_at] = _CID.sub(
                lambda m: f"{m.group(1)}s{self.new_session}p"
                          f"{int(m.group(3)) + self.position_offset}-",
                values[self.cid_at], count=1)
        return dict(zip(self.names, values, strict=True))
