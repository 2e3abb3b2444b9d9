"""``/api/agentic/session``: create a session, read its status, pause, resume or stop it.

The same calls as ``./desk session create | status | pause | resume | stop``: the service
validates and refuses with the CLI's messages, the status is ``queries.session_status`` (what
``session status --json`` prints) with the engine's health beside it. The CLI's
``--confirm-live`` is ``"confirm": true`` here, and a stop, which closes every position, needs it
too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core import queries, service
from core.api.bodies import SessionChange, SessionCreate
from core.api.encoding import plain
from core.api.state import Desk, SessionParam
from core.errors import ConfirmationRequired
from core.models import parse_capital, validate_capital

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


@router.post("/session", status_code=201, summary="Create a paper or live session")
def create_session(desk: Desk, body: SessionCreate) -> dict[str, Any]:
    if body.mode == "live" and not body.confirm:
        raise ConfirmationRequired('a live session trades real money on AsterDex; send '
                                   '"confirm": true')
    capital = body.capital
    if isinstance(capital, str):
        capital = parse_capital(capital)
    elif capital is not None:
        capital = validate_capital(capital)
    symbols = body.symbols.split(",") if isinstance(body.symbols, str) else body.symbols
    ref = service.create_session(desk.engine, desk.settings, capital=capital, mode=body.mode,
                                 symbols=symbols, name=body.name)
    return status_answer(desk, ref.id)


@router.put("/session", summary="Pause, resume or stop a session (stop needs confirm)")
def change_session(desk: Desk, body: SessionChange) -> dict[str, Any]:
    if body.action == "stop":
        if not body.confirm:
            row = service.resolve_session(desk.engine, body.session)
            raise ConfirmationRequired(f'stopping session {row.id} closes every position; send '
                                       '"confirm": true')
        ref = service.stop_session(desk.engine, desk.settings, body.session)
    else:
        ref = service.change_session(desk.engine, body.session, body.action)
    return {"id": ref.id, "name": ref.name, "status": ref.status}
