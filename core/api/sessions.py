"""``/api/agentic/session``: create a session, read its status, pause, resume or stop it.

The same calls as ``./desk session create | status | pause | resume | stop``: the service
validates and refuses with the CLI's messages, the status is ``queries.session_status`` (what
``session status --json`` prints) with the engine's health beside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core import queries, service
from core.api.encoding import plain
from core.api.state import Desk, SessionParam

router = APIRouter(prefix="/api/agentic", tags=["session"])


def status_answer(desk: Desk, session_id: int) -> dict[str, Any]:
    """A session's status, its agents and its engine's health, as JSON."""
    status = queries.session_status(desk.engine, session_id)
    level, message = queries.engine_health(status["session"])
    return plain({**status, "engine": {"level": level, "message": message}})


@router.get("/session", summary="A session's status, PnL, verdicts and agents")
def session_status(desk: Desk, session: SessionParam = None) -> dict[str, Any]:
    row = service.resolve_session(desk.engine, session)
    return status_answer(desk, row.id)
