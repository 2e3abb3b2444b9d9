"""``/api/agentic/ceo-decisions`` and ``/api/agentic/trades``: the CEO log and closed trades.

``./desk ceo-log`` and ``./desk trades`` over HTTP, with the CLI's filters (an agent by name or
key in any case, a verdict, a rule id, a kind; a symbol of the session), newest first, paged with
``limit`` and ``offset`` and with the ``total`` the filters match, so a client can page through
everything. ``trades.csv`` is ``--csv``: every matching trade, times in UTC saying so. The
queries filter, count and page in SQL (``queries.ceo_log``/``ceo_log_count``, ``queries.trades``/
``trades_count``/``trades_csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from core import queries, service
from core.api.encoding import records
from core.api.state import Desk, SessionParam
from core.errors import ConfigError

router = APIRouter(prefix="/api/agentic", tags=["history"])
DEFAULT_LIMIT = 50  # as the CLI's tables
MAX_LIMIT = 1000
MAX_OFFSET = 10**9

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page, newest first")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
Text = Annotated[str | None, Query(max_length=120)]
AgentFilter = Annotated[str | None, Query(max_length=60,
                                          description="agent name or key, e.g. momentum")]


def one_of(value: str | None, choices: Sequence[str], field: str) -> str | None:
    """``value`` (any case) when it is one of ``choices``; a ConfigError naming them otherwise."""
    if value is None or not value.strip():
        return None
    wanted = value.strip().lower()
    for choice in choices:
        if choice.lower() == wanted:
            return choice
    raise ConfigError(f"{field} must be one of {', '.join(choices)}; got {value!r}")


@router.get("/ceo-decisions", summary="The CEO's decisions, filtered and paged")
def ceo_decisions(desk: Desk, session: SessionParam = None, agent: AgentFilter = None,
                  verdict: Text = None, rule: Text = None, kind: Text = None,
                  limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> dict[str, Any]:
    row = service.resolve_session(desk.engine, session)
    filters = queries.ceo_filters(agent=service.agent_name(agent),
                                  verdict=one_of(verdict, queries.VERDICTS, "verdict"),
                                  rule=rule.strip() if rule else None,
                                  kind=one_of(kind, queries.CEO_KINDS, "kind"))
    frame = queries.ceo_log(desk.engine, row.id, limit=limit, offset=offset, **filters)
    decisions = records(frame)
    for decision in decisions:  # {field: [before, after]}, not the stored JSON text
        decision["changes"] = {k: list(v) for k, v in
                               queries.change_pairs(decision["changes"]).items()}
    return {"session": row.id, "filters": filters,
            "total": queries.ceo_log_count(desk.engine, row.id, **filters),
            "limit": limit, "offset": offset, "decisions": decisions}


def _trade_filters(desk: Desk, session: int | None, agent: str | None,
                   symbol: str | None) -> tuple[int, dict[str, Any]]:
    row = service.resolve_session(desk.engine, session)
    wanted = symbol.strip().upper() if symbol and symbol.strip() else None
    if wanted is not None and wanted not in row.symbols.split(","):
        raise ConfigError(f"session {row.id} trades {row.symbols.replace(',', ', ')}, not "
                          f"{symbol}")
    return row.id, queries.trade_filters(agent=service.agent_name(agent), symbol=wanted)


@router.get("/trades", summary="Closed trades, filtered and paged")
def trades(desk: Desk, session: SessionParam = None, agent: AgentFilter = None,
           symbol: Text = None, limit: Limit = DEFAULT_LIMIT,
           offset: Offset = 0) -> dict[str, Any]:
    session_id, filters = _trade_filters(desk, session, agent, symbol)
    frame = queries.trades(desk.engine, session_id, limit=limit, offset=offset, **filters)
    return {"session": session_id,
            "filters": {k: v for k, v in filters.items() if k in ("agent", "symbol")},
            "total": queries.trades_count(desk.engine, session_id, **filters),
            "limit": limit, "offset": offset, "trades": records(frame)}


@router.get("/trades.csv", summary="Every matching closed trade as CSV",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "the trades"}})
def trades_csv(desk: Desk, session: SessionParam = None, agent: AgentFilter = None,
               symbol: Text = None) -> Response:
    session_id, filters = _trade_filters(desk, session, agent, symbol)
    return Response(queries.trades_csv(desk.engine, session_id, **filters),
                    media_type="text/csv; charset=utf-8", headers={
                        "Content-Disposition":
                            f'attachment; filename="session-{session_id}-trades.csv"'})
