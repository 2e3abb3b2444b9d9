"""The paper venue's own tables (``paper_*``) and the few queries that load and save an account:
the simulator plays a *remote* exchange, so its accounts, orders, trades, positions, leverage
settings and funding survive a restart on their own, independent of the desk's tables.

Money columns use ``ExactDecimal``: ``NUMERIC(38, 18)`` on PostgreSQL, text on SQLite, because
SQLite stores NUMERIC as a binary float (0.1 comes back as 0.100000000000000006) and the venue must
read back exactly what it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal
from enum import Enum
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from core.models import Fill, OrderSide
from core.store.base import Base

SCALE = Decimal("1e-18")
_WIDE = Context(prec=40)
_ONE = Decimal(1)


def quantize(x: Decimal) -> Decimal:
    """Round to the store's 18 decimal places, so memory equals what the database holds, and drop
    trailing zeros (2.002, not 2.002000000000000000) without switching to exponent notation."""
    rounded = x.quantize(SCALE, context=_WIDE)
    short = rounded.normalize(_WIDE)
    return short if short.as_tuple().exponent <= 0 else rounded.quantize(_ONE, context=_WIDE)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored without loss: NUMERIC(38, 18) where the database has it, text on SQLite.

    Values must already be quantized to 18 decimal places (see ``SCALE``) so what is read back
    equals what was written on every backend.
    """

    impl = Numeric(38, 18, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return str(quantize(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else quantize(Decimal(str(value)))


class PaperAccount(Base):
    __tablename__ = "paper_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    wallet_balance: Mapped[Decimal] = mapped_column(ExactDecimal())
    next_seq: Mapped[int] = mapped_column(Integer)
    last_funding_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaperOrder(Base):
    """Every accepted order; (account_id, client_order_id) is the key, so an id is never reused."""

    __tablename__ = "paper_orders"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)  # placement order within the account
    exchange_order_id: Mapped[str] = mapped_column(String(96))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    stop_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    reduce_only: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    executed_qty: Mapped[Decimal] = mapped_column(ExactDecimal())
    avg_price: Mapped[Decimal] = mapped_column(ExactDecimal())
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # trailing stops: callback (percent), activation price, best price since armed
    callback_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    activation_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    trail_extreme: Mapped[Decimal | None] = mapped_column(ExactDecimal())


class PaperTrade(Base):
    __tablename__ = "paper_trades"

    trade_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    client_order_id: Mapped[str] = mapped_column(String(96))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    fee: Mapped[Decimal] = mapped_column(ExactDecimal())
    realized_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    liquidation: Mapped[bool] = mapped_column(Boolean, default=False)


class PaperPosition(Base):
    __tablename__ = "paper_positions"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal())  # signed: negative is short
    entry_price: Mapped[Decimal] = mapped_column(ExactDecimal())
    leverage: Mapped[int] = mapped_column(Integer)
    isolated_margin: Mapped[Decimal] = mapped_column(ExactDecimal())


class PaperLeverage(Base):
    __tablename__ = "paper_leverage"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    leverage: Mapped[int] = mapped_column(Integer)


class PaperFunding(Base):
    __tablename__ = "paper_funding"

    payment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal())
    rate: Mapped[float] = mapped_column(Float)
    ts_ms: Mapped[int] = mapped_column(BigInteger)


# --------------------------------------------------------------------------------------------------
# Reading and writing an account's state

ACCOUNTS = cast(Table, PaperAccount.__table__)
ORDERS = cast(Table, PaperOrder.__table__)
TRADES = cast(Table, PaperTrade.__table__)
POSITIONS = cast(Table, PaperPosition.__table__)
LEVERAGE = cast(Table, PaperLeverage.__table__)
FUNDING = cast(Table, PaperFunding.__table__)


@dataclass(frozen=True, slots=True)
class AccountState:
    wallet_balance: Decimal
    next_seq: int
    last_funding_ms: int | None


@dataclass(slots=True)
class Changes:
    """What one venue call changed, written in one transaction by ``write_changes``. Records are
    objects whose attributes are named like the table's columns (orders, fills, funding payments,
    positions); a position mapped to None was closed."""

    orders: dict[str, object] = field(default_factory=dict)
    inserted: set[str] = field(default_factory=set)
    trades: list[object] = field(default_factory=list)
    funding: list[object] = field(default_factory=list)
    positions: dict[str, object | None] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredAccount:
    account: AccountState
    orders: list[RowMapping]  # in placement order
    positions: list[RowMapping]
    leverage: dict[str, int]


def create_account(engine: Engine, account_id: str, balance: Decimal) -> None:
    """Insert the account row; ValueError if it already exists."""
    try:
        with engine.begin() as conn:
            found = conn.execute(
                select(ACCOUNTS.c.account_id).where(ACCOUNTS.c.account_id == account_id)
            ).first()
            if found is not None:
                raise ValueError(f"paper account {account_id!r} already exists")
            conn.execute(
                insert(ACCOUNTS).values(
                    account_id=account_id,
                    wallet_balance=quantize(balance),
                    next_seq=1,
                    last_funding_ms=None,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError as exc:
        raise ValueError(f"paper account {account_id!r} already exists") from exc


def load_account(engine: Engine, account_id: str) -> StoredAccount:
    """Everything the venue keeps in memory for one account; ValueError if it does not exist."""
    with engine.connect() as conn:
        row = conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.account_id == account_id)).first()
        if row is None:
            raise ValueError(f"paper account {account_id!r} does not exist; open it first")
        orders = conn.execute(
            select(ORDERS).where(ORDERS.c.account_id == account_id).order_by(ORDERS.c.seq)
        )
        positions = conn.execute(select(POSITIONS).where(POSITIONS.c.account_id == account_id))
        leverage = conn.execute(select(LEVERAGE).where(LEVERAGE.c.account_id == account_id))
        return StoredAccount(
            account=AccountState(row.wallet_balance, row.next_seq, row.last_funding_ms),
            orders=list(orders.mappings()),
            positions=list(positions.mappings()),
            leverage={r.symbol: r.leverage for r in leverage},
        )


# built once: the venue writes through on every call that changes it
_SAVE_ACCOUNT = update(ACCOUNTS).where(ACCOUNTS.c.account_id == bindparam("w_account")).values(
    wallet_balance=bindparam("v_wallet"), next_seq=bindparam("v_seq"),
    last_funding_ms=bindparam("v_funding_ms"))
_SAVE_ORDER = update(ORDERS).where(
    ORDERS.c.account_id == bindparam("w_account"), ORDERS.c.client_order_id == bindparam("w_cid"),
).values({c.name: bindparam(f"v_{c.name}") for c in ORDERS.columns})


def write_changes(engine: Engine, account_id: str, account: AccountState, ch: Changes) -> None:
    """Commit one call's changes (and the account row) in a single short transaction."""
    mine = {"account_id": account_id}
    with engine.begin() as conn:
        conn.execute(_SAVE_ACCOUNT, {
            "w_account": account_id, "v_wallet": account.wallet_balance,
            "v_seq": account.next_seq, "v_funding_ms": account.last_funding_ms})
        _insert(
            conn, ORDERS, [_row(o, ORDERS, mine) for c, o in ch.orders.items() if c in ch.inserted]
        )
        updated = [{"w_account": account_id, "w_cid": cid,
                    **{f"v_{k}": v for k, v in _row(order, ORDERS, mine).items()}}
                   for cid, order in ch.orders.items() if cid not in ch.inserted]
        if updated:
            conn.execute(_SAVE_ORDER, updated)
        _insert(conn, TRADES, [_row(t, TRADES, mine) for t in ch.trades])
        _insert(conn, FUNDING, [_row(f, FUNDING, mine) for f in ch.funding])
        _replace(conn, POSITIONS, account_id, ch.positions.keys())
        _insert(
            conn,
            POSITIONS,
            [_row(p, POSITIONS, {**mine, "symbol": s}) for s, p in ch.positions.items() if p],
        )
        _replace(conn, LEVERAGE, account_id, ch.leverage.keys())
        _insert(
            conn,
            LEVERAGE,
            [{**mine, "symbol": s, "leverage": lev} for s, lev in ch.leverage.items()],
        )


def _row(record: object, table: Table, fixed: dict[str, Any]) -> dict[str, Any]:
    """A table row from a record whose attributes are named like the columns."""
    out = {}
    for column in table.columns:
        value = fixed[column.name] if column.name in fixed else getattr(record, column.name)
        out[column.name] = value.value if isinstance(value, Enum) else value
    return out


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), rows)


def _replace(conn: Connection, table: Table, account_id: str, symbols: Iterable[str]) -> None:
    """Delete the account's rows for ``symbols`` (before inserting their new state)."""
    keys = list(symbols)
    if keys:
        conn.execute(
            delete(table).where(table.c.account_id == account_id, table.c.symbol.in_(keys))
        )


def load_fills(
    engine: Engine,
    account_id: str,
    *,
    client_order_id: str | None = None,
    symbol: str | None = None,
    since_ms: int | None = None,
) -> list[Fill]:
    """The account's recorded executions (the venue's "user trades"), oldest first."""
    t = PaperTrade.__table__
    stmt = select(t).where(t.c.account_id == account_id)
    if client_order_id is not None:
        stmt = stmt.where(t.c.client_order_id == client_order_id)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if since_ms is not None:
        stmt = stmt.where(t.c.ts_ms >= since_ms)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    fills = [
        Fill(
            trade_id=r["trade_id"], client_order_id=r["client_order_id"], symbol=r["symbol"],
            side=OrderSide(r["side"]), quantity=r["quantity"], price=r["price"], fee=r["fee"],
            realized_pnl=r["realized_pnl"], ts_ms=r["ts_ms"], liquidation=r["liquidation"],
        )
        for r in rows
    ]
    return sorted(fills, key=fill_order)


def select_fills(
    fills: Iterable[Fill],
    *,
    client_order_id: str | None = None,
    symbol: str | None = None,
    since_ms: int | None = None,
) -> list[Fill]:
    """``load_fills`` over fills held in memory (a venue that writes nothing): same filters, same
    order."""
    found = [
        f for f in fills
        if (client_order_id is None or f.client_order_id == client_order_id)
        and (symbol is None or f.symbol == symbol)
        and (since_ms is None or f.ts_ms >= since_ms)
    ]
    return sorted(found, key=fill_order)


def fill_order(fill: Fill) -> tuple[int, int]:
    """Oldest first; within a millisecond, in the order the venue made them (its trade sequence)."""
    return fill.ts_ms, int(fill.trade_id.rsplit("-T", 1)[1])
