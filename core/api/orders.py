"""A trader's own orders over HTTP: close a position, cancel an order, flatten an agent.

``./desk close | cancel | flatten`` as routes: ``service.close_position``, ``cancel_order`` and
``flatten_agent`` queue the order for the engine that trades the session (or carry it out at once
when none does), and the route waits up to ``wait`` seconds for the outcome, as the CLI's
``--wait``. Closing and flattening sell at market, so they need ``"confirm": true``. The answer is
the order's outcome; its status says how it stands: 200 done, 202 still queued (poll
``GET /api/agentic/manual-orders/{id}``), 409 refused by the desk (an agent's only stop, a closed
position), 502 failed at the venue, with the reason in ``error`` beside the outcome. The poll
answers 200 with the same fields whatever the status.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse

from core import service
from core.api.bodies import CancelBody, CloseBody, FlattenBody
from core.api.state import MAX_ID, Desk
from core.errors import ConfirmationRequired

router = APIRouter(prefix="/api/agentic", tags=["orders"])
POLL_S = 0.25
STATUS = {"done": 200, "pending": 202, "working": 202, "refused": 409, "failed": 502}

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
AgentName = Annotated[str, Path(min_length=1, max_length=60,
                                description="roster name or key, e.g. momentum")]


def _shown(outcome: service.ManualOutcome) -> dict[str, Any]:
    """An outcome as ``./desk close --json`` prints it, with ``error`` when it did not happen."""
    body: dict[str, Any] = {"id": outcome.id, "session": outcome.session_id,
                            "kind": outcome.kind, "status": outcome.status,
                            "note": outcome.note}
    if outcome.status in ("refused", "failed"):
        body["error"] = f"{outcome.status}: {outcome.note}"
    return body


def _answer(desk: Desk, outcome: service.ManualOutcome, wait: float) -> JSONResponse:
    deadline = time.monotonic() + wait
    while outcome.status in ("pending", "working") and time.monotonic() < deadline:
        time.sleep(POLL_S)
        outcome = service.manual_outcome(desk.engine, outcome.id)
    return JSONResponse(_shown(outcome), status_code=STATUS.get(outcome.status, 200))


@router.post("/positions/{position_id}/close", summary="Close one position at market (confirm)")
def close_position(desk: Desk, position_id: Id, body: CloseBody) -> JSONResponse:
    if not body.confirm:
        raise ConfirmationRequired(f'closing position {position_id} sells at market; send '
                                   '"confirm": true')
    return _answer(desk, service.close_position(desk.engine, desk.settings, position_id),
                   body.wait)


@router.post("/orders/{order_id}/cancel", summary="Cancel one resting order")
def cancel_order(desk: Desk, order_id: Id,
                 body: Annotated[CancelBody | None, Body()] = None) -> JSONResponse:
    wait = body.wait if body is not None else 0
    return _answer(desk, service.cancel_order(desk.engine, desk.settings, order_id), wait)


@router.post("/agents/{name}/flatten", summary="Pause an agent and close all it holds (confirm)")
def flatten_agent(desk: Desk, name: AgentName, body: FlattenBody) -> JSONResponse:
    if not body.confirm:
        raise ConfirmationRequired(f'flattening {name} closes every position it holds at '
                                   'market; send "confirm": true')
    return _answer(desk, service.flatten_agent(desk.engine, desk.settings, body.session, name),
                   body.wait)


@router.get("/manual-orders/{order_id}", summary="How a close, cancel or flatten stands")
def manual_order(desk: Desk, order_id: Id) -> dict[str, Any]:
    return _shown(service.manual_outcome(desk.engine, order_id))
