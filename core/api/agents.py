"""``/api/agentic/agents``: each agent's figures, and pausing or resuming one.

``./desk agents [list | pause NAME | resume NAME]`` over HTTP: the stats are
``queries.agent_stats`` (raw fractions and seconds, as ``--json`` prints them), a change is
``service.change_agent``, which takes a roster name or key in any case.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from core import queries, service
from core.api.bodies import AgentChange
from core.api.encoding import plain
from core.api.state import Desk, SessionParam

router = APIRouter(prefix="/api/agentic", tags=["agents"])
AgentName = Annotated[str, Path(min_length=1, max_length=60,
                                description="roster name or key, e.g. Momentum Hunter or momentum")]


@router.get("/agents", summary="Every agent of a session with its figures")
def agent_stats(desk: Desk, session: SessionParam = None) -> dict[str, Any]:
    row = service.resolve_session(desk.engine, session)
    return {"session": row.id, "agents": plain(queries.agent_stats(desk.engine, row.id))}


@router.put("/agents/{name}", summary="Pause or resume one agent")
def change_agent(desk: Desk, name: AgentName, body: AgentChange) -> dict[str, Any]:
    row = service.resolve_session(desk.engine, body.session)
    return {"session": row.id,
            "result": service.change_agent(desk.engine, row.id, name, body.action)}
