"""The texts that leave the desk: one alert as a message, a burst as one digest, a test message.

Why it exists apart from the sender: what a message says (the session it is about, its severity,
the event id a receiver can deduplicate on) is decided once here and tested without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.alerts.kinds import rank

APP = "AsterDesk"
DIGEST_LINES = 40


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An alert as the sender read it: the outbox row and the session it belongs to."""

    delivery_id: int
    alert_id: int
    event_id: str
    kind: str
    severity: str
    title: str
    body: str
    session_id: int | None
    session_name: str | None
    session_mode: str | None

    @property
    def where(self) -> str:
        if self.session_name is None:
            return APP
        mode = f"{self.session_mode.upper()} " if self.session_mode else ""
        return f"{APP} · {mode}{self.session_name}"


def single(alert: Outgoing) -> tuple[str, str]:
    """(title, body) of one alert; the footer names the event id, for a receiver's dedup."""
    return (f"[{alert.where}] {alert.title}",
            f"{alert.body}\n\n{alert.severity} · {alert.kind} · event {alert.event_id}")


def digest(alerts: Sequence[Outgoing]) -> tuple[str, str, str]:
    """(title, body, severity) of one message standing for a burst of alerts: a line each (the
    first ``DIGEST_LINES``), at the severity of the worst."""
    worst = max((a.severity for a in alerts), key=rank)
    places = {a.where for a in alerts}
    where = places.pop() if len(places) == 1 else APP
    lines = [f"- [{a.severity}] {a.title} (event {a.event_id})" for a in alerts[:DIGEST_LINES]]
    if len(alerts) > DIGEST_LINES:
        lines.append(f"… and {len(alerts) - DIGEST_LINES} more: `./desk alerts` lists them all")
    counts: dict[str, int] = {}
    for a in alerts:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"[{where}] {len(alerts)} alerts at once (digest)",
            f"A burst of alerts came faster than this target's rate limit, so they come as one "
            f"message: {summary}.\n" + "\n".join(lines), worst)


def test_message(target_label: str) -> tuple[str, str]:
    return (f"[{APP}] Test alert",
            f"This is a test alert for target {target_label}: if you read it, the desk's alerts "
            "reach you here.")
