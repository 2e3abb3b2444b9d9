"""The outbox writer: an alert row added inside the transaction of the event it tells.

Why it exists: an alert must exist exactly when its event does. Written through the caller's
connection before its commit, the row is committed with the trade, the halt or the pause, and a
rolled-back tick takes its alerts with it; a crash after the commit leaves the row for the sender
to deliver after the restart. The insert ignores an event id already recorded, so recording an
event twice never raises inside a tick and never alerts twice.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from core.alerts.kinds import KINDS, SEVERITIES
from core.store.tables import ALERTS

TITLE_MAX = 300


def wall_ms() -> int:
    return int(time.time() * 1000)


def record(conn: Connection, *, kind: str, event_id: str, title: str, body: str,
           session_id: int | None = None, event_ms: int | None = None,
           severity: str | None = None) -> None:
    """Add one alert to the outbox on ``conn`` (committed with the caller's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"unknown alert severity {severity!r}")
    now = wall_ms()
    values = {
        "event_id": event_id[:96], "session_id": session_id, "kind": kind,
        "severity": severity or KINDS[kind][0], "title": title[:TITLE_MAX], "body": body,
        "event_ms": event_ms, "created_ms": now, "status": "pending", "note": None,
        "updated_ms": now,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(ALERTS).values(values)
                 .on_conflict_do_nothing(index_elements=["event_id"]))
