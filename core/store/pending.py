"""Rows the engine only ever appends (equity snapshots, the agents' abstention notes), held until
the engine flushes them.

Paper and live flush at the end of every tick, so the dashboard sees them as before; a backtest's
private store, which nobody reads until the run ends, flushes every few hundred ticks, so a year of
bars costs a few hundred multi-row inserts instead of one statement per bar. Nothing reads these
rows during a tick, and nothing refers to them, so holding them changes no decision. Notes held
from earlier ticks are written before a tick's proposals (``flush(conn, PROPOSALS)``), so proposal
ids stay in time order whatever the batching.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, insert


class PendingRows:
    """Rows waiting for the next flush, per table, in the order they were added."""

    def __init__(self) -> None:
        self._rows: dict[Table, list[dict[str, Any]]] = {}

    def add(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self._rows.setdefault(table, []).extend(rows)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def flush(self, conn: Connection, table: Table | None = None) -> None:
        """Insert everything held (or only ``table``'s rows), inside the caller's transaction."""
        for held in [table] if table is not None else list(self._rows):
            rows = self._rows.pop(held, None)
            if rows:
                _insert(conn, held, rows)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """One multi-row insert. On SQLite the rows go straight to the driver's ``executemany`` (a
    year's backtest holds 200,000 rows, and SQLAlchemy's per-row parameter handling made them
    half as costly again); elsewhere SQLAlchemy's own batched insert. Every row must carry the first row's keys,
    as ``insert(table)`` requires; these tables' columns need no type conversion on SQLite."""
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")
    conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])
