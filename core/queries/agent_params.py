"""The agents' parameters as rows: what the strategy file sets, what a session ran with.

Why it exists: the CLI (``strategies show``), the Agents page and the backtest report all list
parameters with their meaning, default and bounds; one function builds those rows so each view
says the same thing. A session's stored parameters are read here too (a session created before
parameters were stored ran on the defaults of its time, which are today's defaults).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from core.agents import strategy_file
from core.agents.desk_params import DeskParams, field_info, stored_params
from core.agents.params import bound_text, limits, search_range
from core.agents.roster import BY_KEY
from core.config import Settings
from core.errors import NotFound
from core.store.tables import SessionRow

PARAMETER_COLUMNS = [("name", "parameter"), ("value", "value"), ("default", "default"),
                     ("bounds", "accepts"), ("description", "meaning")]


def parameter_rows(params: DeskParams, agent: str | None = None,
                   running: DeskParams | None = None) -> list[dict[str, Any]]:
    """One row per flat key (``agent``: only that agent's strategy and roster keys): value,
    default, what it accepts (in words, and as ``kind``/``min``/``max``/``choices`` for an
    editor), the optimiser's range, the meaning; with ``running`` (a session's parameters) also
    ``session``, the value that session runs with."""
    defaults = DeskParams.defaults().flat()
    ran = running.flat() if running is not None else None
    rows: list[dict[str, Any]] = []
    for name, value in params.flat().items():
        parts = name.split(".")
        key = parts[1] if parts[0] == "roster" else parts[0]
        if agent is not None and key != agent:
            continue
        field = field_info(name)
        rows.append({
            "agent": key, "agent_name": BY_KEY[key].name, "name": name, "param": parts[-1],
            "group": "roster" if parts[0] == "roster" else "strategy", "value": value,
            "default": defaults[name], "changed": value != defaults[name],
            "bounds": bound_text(field), "search": search_range(field),
            "description": field.description or "", **limits(field),
            **({"session": ran[name]} if ran is not None else {}),
        })
    return rows


def strategy_file_params(settings: Settings) -> DeskParams:
    """What the strategy file sets now (new sessions and backtests start on it)."""
    return strategy_file.load(settings.strategies_file)


def session_params(engine: Engine, session_id: int) -> DeskParams:
    """The parameters session ``session_id`` runs (or ran) with."""
    with engine.connect() as conn:
        row = conn.execute(select(SessionRow.id, SessionRow.agent_params)
                           .where(SessionRow.id == session_id)).first()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return stored_params(row.agent_params)
