"""What the trader may read about alerts: the targets as configured (masked), the recent alerts
with how each delivery stands, and the deliveries failing or waiting for a retry.

Targets are read from the settings, never from the store, and only ever shown by name and
service (``Target.label``); the errors shown were masked by the sender before they were stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from core.alerts.kinds import KINDS
from core.alerts.targets import AlertConfig
from core.config import Settings
from core.errors import ConfigError
from core.queries.common import _iso
from core.store.tables import AlertDeliveryRow, AlertRow

ALERT_STATUSES = ("pending", "routed", "sent", "failed", "muted", "expired")
_A, _D = AlertRow, AlertDeliveryRow


def alert_targets(settings: Settings) -> dict[str, Any]:
    """The configured targets (``targets``: label, least severity, kinds in words) and, when
    ALERT_URLS or ALERT_KINDS_OFF is malformed, the reason (``error``)."""
    try:
        config = AlertConfig.from_settings(settings)
    except ConfigError as exc:
        return {"targets": [], "error": str(exc), "kinds_off": []}
    rows = []
    for t in config.targets:
        if t.kinds == frozenset(KINDS):
            kinds = "every kind"
        elif len(t.kinds) > len(KINDS) / 2:
            kinds = "every kind but " + ", ".join(k for k in KINDS if k not in t.kinds)
        else:
            kinds = ", ".join(k for k in KINDS if k in t.kinds)
        rows.append({"target": t.label, "name": t.name, "min_severity": t.min_severity,
                     "kinds": kinds})
    return {"targets": rows, "error": None,
            "kinds_off": [k for k in KINDS if k in config.kinds_off]}


def recent_alerts(engine: Engine, *, session_id: int | None = None, limit: int = 50,
                  problems_only: bool = False) -> list[dict[str, Any]]:
    """The newest alerts, newest first, each with its deliveries (target, status, attempts,
    error). ``problems_only``: those with a delivery that failed or is waiting for a retry."""
    query = select(_A.id, _A.event_id, _A.session_id, _A.kind, _A.severity, _A.title,
                   _A.status, _A.note, _A.created_ms, _A.event_ms).order_by(_A.id.desc())
    if session_id is not None:
        query = query.where(_A.session_id == session_id)
    if problems_only:
        query = query.where(_A.id.in_(select(_D.alert_id).where(_D.error.is_not(None))))
    with engine.connect() as conn:
        alerts = conn.execute(query.limit(limit)).all()
        ids = [a.id for a in alerts]
        by_alert: dict[int, list[dict[str, Any]]] = {}
        if ids:
            for d in conn.execute(select(_D.alert_id, _D.target, _D.status, _D.attempts,
                                         _D.error, _D.sent_ms, _D.next_ms, _D.digest)
                                  .where(_D.alert_id.in_(ids)).order_by(_D.id)):
                by_alert.setdefault(d.alert_id, []).append({
                    "target": d.target, "status": d.status, "attempts": d.attempts,
                    "error": d.error, "sent_at": _iso(d.sent_ms),
                    "retry_at": _iso(d.next_ms) if d.status == "pending" and d.attempts else None,
                    "digest": bool(d.digest)})
    return [{"id": a.id, "event_id": a.event_id, "session_id": a.session_id, "kind": a.kind,
             "severity": a.severity, "title": a.title, "status": a.status, "note": a.note,
             "created_at": _iso(a.created_ms), "event_time": _iso(a.event_ms),
             "deliveries": by_alert.get(a.id, [])} for a in alerts]


def alert_counts(engine: Engine, *, session_id: int | None = None) -> dict[str, int]:
    """How many alerts stand in each status (every status present, zero or not)."""
    query = select(_A.status, func.count()).group_by(_A.status)
    if session_id is not None:
        query = query.where(_A.session_id == session_id)
    with engine.connect() as conn:
        found = dict(conn.execute(query).all())
    return {s: int(found.get(s, 0)) for s in ALERT_STATUSES}


def delivery_summary(alert: dict[str, Any]) -> str:
    """One line per alert for a table: each target's outcome, with the error of a failing one."""
    parts = []
    for d in alert["deliveries"]:
        text = f"{d['target']}: {d['status']}"
        if d["digest"]:
            text += " (digest)"
        if d["status"] != "sent" and d["attempts"]:
            text += f" after {d['attempts']} tr{'ies' if d['attempts'] != 1 else 'y'}"
        if d["retry_at"]:
            text += f", retry at {d['retry_at']}"
        if d["error"] and d["status"] != "sent":
            text += f" — {d['error']}"
        parts.append(text)
    return "; ".join(parts) or (alert["note"] or "")

