"""What every route needs from the application: the settings and the store it was built with.

Kept on ``app.state`` by ``create_app`` and handed to the routes as a FastAPI dependency, so a
test builds an application over its own database and settings and the routes never read the
environment themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy import Engine

from core.config import Settings

MAX_ID = 2**31 - 1  # ids are 32-bit in the store: a larger one can name nothing


@dataclass(frozen=True, slots=True)
class ApiState:
    settings: Settings
    engine: Engine


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.desk
    return state


Desk = Annotated[ApiState, Depends(api_state)]
SessionParam = Annotated[int | None, Query(ge=1, le=MAX_ID,
                                           description="session id (default: the latest)")]
