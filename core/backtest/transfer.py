"""Copies a finished backtest from its private store into the main store, in one transaction, so
the run can be browsed with the desk's usual queries (trades, CEO log, equity).

Row ids are shifted past the main store's current maximum per table, foreign keys with them, and
the ``s<session>p<position>`` part of client order ids is rewritten to the new ids (client order
ids are unique across the store). On SQLite the transaction's first statement is a write, so it
holds the write lock before it reads the maxima (the copy in SQL takes well under a second for a
year). On PostgreSQL a first short transaction locks the tables against other writers for a
moment, reserves the id ranges by moving the id sequences past them and marks the run as saving;
the rows are then copied in a second transaction that blocks nobody (a live engine keeps trading).
Foreign keys to tables that are not copied (e.g. an LLM audit row) are cleared.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, func, select, text, update

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


ATTACHED = "backtest_run"  # the schema name of the run's own file during a SQLite copy
_SHIFT_CID = "desk_backtest_shift_cid"


def copy_session(source: Engine, session_id: int, target: Engine, run_id: int, *,
                 attach: bool = True) -> int:
    """Copy session ``session_id`` of ``source`` into ``target`` and mark run ``run_id`` as
    saving (in the copy's transaction on SQLite, in the id reservation's on PostgreSQL). Returns
    the session's id in ``target``.

    When both are SQLite and the source is a file, the target attaches it and copies each table
    with one ``INSERT … SELECT`` (a year's run in a fraction of a second, so the main store's write
    lock is held that long); otherwise rows travel through Python in chunks, into PostgreSQL with
    ``COPY`` (``attach=False`` forces that path)."""
    names = {t.name for t in TABLES}
    postgres = target.dialect.name == "postgresql"
    source_file = _sqlite_file(source) if attach and target.dialect.name == "sqlite" else None
    with source.connect() as src, target.connect() as dst:
        if postgres:
            offsets = _reserve_ids(src, dst, session_id, run_id)
        if source_file is not None:  # ATTACH is refused inside a transaction
            dst.exec_driver_sql(f"ATTACH DATABASE ? AS {ATTACHED}", (source_file,))
            dst.commit()
        try:
            with dst.begin():
                if not postgres:
                    # a write first: this takes SQLite's write lock before the maxima are read
                    dst.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="saving"))
                    offsets = {t.name: int(dst.scalar(select(func.coalesce(func.max(t.c.id), 0)))
                                           or 0) for t in TABLES}
                new_session = session_id + offsets["sessions"]
                for table in TABLES:
                    shift = _Shift(table, _foreign_keys(table, names), offsets, new_session)
                    if source_file is not None:
                        _copy_attached(dst, table, shift, session_id)
                    else:
                        _copy_rows(src, dst, table, shift, session_id)
        finally:
            if source_file is not None:
                dst.exec_driver_sql(f"DETACH DATABASE {ATTACHED}")
                dst.commit()
                dst.connection.driver_connection.create_function(  # type: ignore[union-attr]
                    _SHIFT_CID, 1, None)  # the pooled connection keeps no reference to the run
    return new_session


def _reserve_ids(src: Connection, dst: Connection, session_id: int, run_id: int) -> dict[str, int]:
    """PostgreSQL: per table, the offset past every id in use or handed out, with the sequence
    moved past the run's rows, so writers that go on meanwhile never take one of them."""
    with dst.begin():
        dst.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="saving"))
        dst.execute(text("LOCK TABLE " + ", ".join(t.name for t in TABLES) + " IN EXCLUSIVE MODE"))
        offsets: dict[str, int] = {}
        for table in TABLES:
            sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
            offsets[table.name] = int(dst.scalar(text(
                f"SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table.name}), "
                f"COALESCE(pg_sequence_last_value({sequence}), 0))")))
            needed = src.scalar(select(func.max(table.c.id)).where(_key(table) == session_id))
            if needed:
                dst.execute(text(f"SELECT setval({sequence}, :last)"),
                            {"last": offsets[table.name] + int(needed)})
    return offsets


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (None for other databases and in-memory ones)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return database if database and database != ":memory:" else None


def _key(table: Table) -> Column[Any]:
    return table.c.id if table is SESSIONS else table.c.session_id


def _copy_rows(src: Connection, dst: Connection, table: Table, shift: _Shift,
               session_id: int) -> None:
    result = src.execution_options(yield_per=CHUNK).execute(
        select(table).where(_key(table) == session_id).order_by(table.c.id))
    copy_in = _copy_in(dst, table, shift.names) if dst.dialect.name == "postgresql" else None
    for part in result.partitions(CHUNK):
        columns = shift.columns(part)
        if copy_in is not None:
            copy_in(columns)
        else:
            dst.execute(table.insert(), [dict(zip(shift.names, row, strict=True))
                                         for row in zip(*columns, strict=True)])


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return _COPY_NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly; inf, -inf and nan are understood
    if isinstance(value, int):
        return str(value)
    return str(value).translate(_COPY_ESCAPES)


def _copy_column(python_type: type | None) -> Callable[[Sequence[Any]], list[str]]:
    """A whole column's values in COPY text, by the column's type (one comprehension per column
    instead of a call per value: a year's run is 2.6 million values)."""
    if python_type is bool:
        return lambda col: [_COPY_NULL if v is None else ("t" if v else "f") for v in col]
    if python_type in (int, float):  # repr: floats round-trip exactly (inf and nan too)
        return lambda col: [_COPY_NULL if v is None else repr(v) for v in col]
    if python_type is str:
        return lambda col: [_COPY_NULL if v is None else str(v).translate(_COPY_ESCAPES)
                            for v in col]
    return lambda col: [_copy_text(v) for v in col]


def _copy_in(dst: Connection, table: Table,
             names: list[str]) -> Callable[[list[Sequence[Any]]], None] | None:
    """PostgreSQL's COPY … FROM STDIN for ``table`` in the open transaction (several times faster
    than multi-row INSERTs), fed column by column; None when the driver cannot do it (then rows
    are inserted)."""
    driver = dst.connection.driver_connection
    with driver.cursor() as probe:  # type: ignore[union-attr]
        if not hasattr(probe, "copy_expert"):  # psycopg2 has it; another driver may not
            return None
    quote = dst.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    formats = [_copy_column(_python_type(table.c[n])) for n in names]

    def copy_in(columns: list[Sequence[Any]]) -> None:
        texts = [fmt(col) for fmt, col in zip(formats, columns, strict=True)]
        rows = map("\t".join, zip(*texts, strict=True))
        lines = io.StringIO("".join(row + "\n" for row in rows))
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            cursor.copy_expert(statement, lines)

    return copy_in


def _python_type(column: Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _copy_attached(dst: Connection, table: Table, shift: _Shift, session_id: int) -> None:
    """The same rows as ``_copy_rows``, shifted by SQLite itself from the attached run."""
    quote = dst.dialect.identifier_preparer.quote
    dst.connection.driver_connection.create_function(  # type: ignore[union-attr]
        _SHIFT_CID, 1, shift.client_id, deterministic=True)
    exprs = []
    for at, name in enumerate(shift.names):
        offset = shift.offset_at.get(at, 0)
        if at == shift.cid_at:
            exprs.append(f"{_SHIFT_CID}({quote(name)})")
        elif offset is None:
            exprs.append("NULL")
        elif offset:
            exprs.append(f"{quote(name)} + {int(offset)}")
        else:
            exprs.append(quote(name))
    dst.exec_driver_sql(
        f"INSERT INTO main.{quote(table.name)} ({', '.join(quote(n) for n in shift.names)}) "
        f"SELECT {', '.join(exprs)} FROM {ATTACHED}.{quote(table.name)} "
        f"WHERE {quote(_key(table).name)} = ? ORDER BY {quote('id')}", (session_id,))


def _foreign_keys(table: Table, copied: set[str]) -> dict[str, str | None]:
    """Column → referenced table when it is copied too, else None (the column is cleared)."""
    out: dict[str, str | None] = {}
    for fk in table.foreign_keys:
        ref = fk.column.table.name
        out[fk.parent.name] = ref if ref in copied else None
    return out


class _Shift:
    """One table's rows → the rows to insert: ids and foreign keys moved by their table's offset,
    references to tables that are not copied cleared, client order ids renamed."""

    def __init__(self, table: Table, fks: dict[str, str | None], offsets: dict[str, int],
                 new_session: int) -> None:
        self.names = [c.name for c in table.columns]
        # column position → offset to add (None: clear it); the id first, then foreign keys
        self.offset_at: dict[int, int | None] = {self.names.index("id"): offsets[table.name]}
        for column, ref in fks.items():
            self.offset_at[self.names.index(column)] = None if ref is None else offsets[ref]
        self.cid_at = (self.names.index("client_order_id") if "client_order_id" in self.names
                       else None)
        self.new_session, self.position_offset = new_session, offsets["positions"]

    def client_id(self, cid: str | None) -> str | None:
        if not cid:
            return cid
        return _CID.sub(lambda m: f"{m.group(1)}s{self.new_session}p"
                                  f"{int(m.group(3)) + self.position_offset}-", cid, count=1)

    def columns(self, rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        """The rows as columns, ids and foreign keys moved, client order ids renamed."""
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) or [() for _ in self.names]
        for at, offset in self.offset_at.items():
            columns[at] = ([None] * len(columns[at]) if offset is None
                           else [None if v is None else v + offset for v in columns[at]])
        if self.cid_at is not None:
            columns[self.cid_at] = [self.client_id(v) for v in columns[self.cid_at]]
        return columns
