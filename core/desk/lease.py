"""The engine lease: only one engine trades a session, however many processes try.

A row per session holds the owner and a wall-clock heartbeat. An engine acquires the lease when it
is free, already its own, or stale (no heartbeat for ``stale_seconds``), and renews it inside every
transaction it commits, so a process that lost the lease cannot commit an order intent, let alone
send it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from sqlalchemy import Engine, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import LeaseError
from core.store.tables import EngineLeaseRow


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def wall_ms() -> int:
    return int(time.time() * 1000)


_T = EngineLeaseRow.__table__
_RENEW = (
    update(_T)
    .where(_T.c.session_id == bindparam("sid"), _T.c.owner == bindparam("b_owner"))
    .values(heartbeat_ms=bindparam("v_beat"))
)


class Lease:
    def __init__(self, engine: Engine, session_id: int, owner: str, stale_seconds: float) -> None:
        self.engine = engine
        self.session_id = session_id
        self.owner = owner
        self.stale_ms = int(stale_seconds * 1000)

    def acquire(self) -> bool:
        """Take the lease if it is free, ours or stale; False if another live engine holds it."""
        now = wall_ms()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(EngineLeaseRow.owner, EngineLeaseRow.heartbeat_ms)
                .where(EngineLeaseRow.session_id == self.session_id)
            ).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(EngineLeaseRow).values(
                            session_id=self.session_id, owner=self.owner, acquired_ms=now,
                            heartbeat_ms=now))
                    return True
                except IntegrityError:
                    return False
            taken = conn.execute(
                update(EngineLeaseRow)
                .where(EngineLeaseRow.session_id == self.session_id,
                       or_(EngineLeaseRow.owner == self.owner,
                           EngineLeaseRow.heartbeat_ms < now - self.stale_ms),
                       EngineLeaseRow.owner == row.owner,
                       EngineLeaseRow.heartbeat_ms == row.heartbeat_ms)
                .values(owner=self.owner, acquired_ms=now, heartbeat_ms=now)
            ).rowcount
            return taken == 1

    def renew(self, db: Session) -> None:
        """Renew inside the caller's transaction; LeaseError (and rollback) if we lost it."""
        renewed = db.connection().execute(
            _RENEW, {"sid": self.session_id, "b_owner": self.owner, "v_beat": wall_ms()}
        ).rowcount
        if renewed != 1:
            db.rollback()
            raise LeaseError(f"session {self.session_id}: another engine took over the lease")

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(EngineLeaseRow).where(
                EngineLeaseRow.session_id == self.session_id, EngineLeaseRow.owner == self.owner))


def holder(engine: Engine, session_id: int, stale_seconds: float) -> tuple[str, int] | None:
    """(owner, heartbeat age in ms) of a live lease on the session, or None if free or stale."""
    with engine.connect() as conn:
        row = conn.execute(
            select(EngineLeaseRow.owner, EngineLeaseRow.heartbeat_ms)
            .where(EngineLeaseRow.session_id == session_id)
        ).first()
    if row is None:
        return None
    age = wall_ms() - row.heartbeat_ms
    return (row.owner, age) if age < stale_seconds * 1000 else None
