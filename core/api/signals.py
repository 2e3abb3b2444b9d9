"""Inbound trade ideas over HTTP: ``POST /api/agentic/signals`` (TradingView-style alerts).

A signal becomes a proposal of the session's "External signals" agent on the running engine's
next tick and the CEO judges it under the same hard rules as any agent's; the answer is how it
stands, as ``service.submit_signal`` and ``service.signal_outcome`` say. The route waits up to
``wait`` seconds for the verdict: 200 judged (``verdict`` approve, modify or reject, the CEO's
reason in ``outcome``), 202 still queued (poll ``GET /api/agentic/signals/{id}``), 409 refused or
expired. A signal the desk cannot take (no such agent, a paused agent or session, no engine, a
symbol the session does not trade) is refused before anything is queued.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from core import queries, service
from core.api.bodies import SignalBody
from core.api.encoding import records
from core.api.state import MAX_ID, Desk, SessionParam

router = APIRouter(prefix="/api/agentic", tags=["signals"])
POLL_S = 0.25
STATUS = {"judged": 200, "pending": 202, "working": 202, "refused": 409, "expired": 409,
          "failed": 502}

Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _shown(outcome: service.SignalOutcome) -> dict[str, Any]:
    body = asdict(outcome)
    body["session"] = body.pop("session_id")
    if outcome.status in ("refused", "expired", "failed"):
        body["error"] = f"{outcome.status}: {outcome.outcome}"
    return body


@router.post("/signals", summary="Send a trade idea to the External signals agent")
def send_signal(desk: Desk, body: SignalBody) -> JSONResponse:
    outcome = service.submit_signal(
        desk.engine, desk.settings, symbol=body.symbol, side=body.side, session_id=body.session,
        stop_price=body.stop_price, take_profit=body.take_profit,
        confidence=float(body.confidence), leverage=body.leverage,
        margin_fraction=float(body.margin_fraction), note=body.note, source=body.source)
    deadline = time.monotonic() + body.wait
    while outcome.status in ("pending", "working") and time.monotonic() < deadline:
        time.sleep(POLL_S)
        outcome = service.signal_outcome(desk.engine, outcome.id)
    return JSONResponse(_shown(outcome), status_code=STATUS.get(outcome.status, 200))


@router.get("/signals/{signal_id}", summary="How a signal stands: queued, or the CEO's verdict")
def signal(desk: Desk, signal_id: Id) -> dict[str, Any]:
    return _shown(service.signal_outcome(desk.engine, signal_id))


@router.get("/signals", summary="The session's newest signals and their verdicts")
def signals(desk: Desk, session: SessionParam = None) -> list[dict[str, Any]]:
    row = service.resolve_session(desk.engine, session)
    return records(queries.external_signals(desk.engine, row.id))
