"""``/api/agentic/backtests``: start a backtest, follow its progress, read its report.

A start is ``service.start_backtest``, the Backtest page's call: the request is validated and its
data read before anything is stored (a bad range or symbol is refused at once), then the run goes
to a background thread of the API's process, one at a time, and the answer (202) carries its id.
``GET /backtests/{id}`` is the poll: ``queries.backtest_progress`` (status, progress, error) and,
once it is done, the report of ``queries.backtest_run``. The run always reads the server's own
data folder (``REPLAY_DATA_DIR``): a client may not point the server at a path of its choosing.
The run's trades and CEO log are a session's like any other: ``/trades?session=`` its
``session_id``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from core import queries, service
from core.api.bodies import BacktestStart
from core.api.encoding import plain
from core.api.state import MAX_ID, Desk
from core.errors import NotFound
from core.models import parse_capital, validate_capital

router = APIRouter(prefix="/api/agentic", tags=["backtests"])
RunId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _found(desk: Desk, run_id: int) -> dict[str, Any]:
    progress = queries.backtest_progress(desk.engine, run_id)
    if progress is None:
        raise NotFound(f"no backtest run {run_id}")
    return progress


@router.post("/backtests", status_code=202, summary="Start a backtest in the background")
def start_backtest(desk: Desk, body: BacktestStart) -> dict[str, Any]:
    settings = desk.settings
    capital = body.capital
    if capital is None:
        capital = settings.default_capital
    capital = parse_capital(capital) if isinstance(capital, str) else validate_capital(capital)
    symbols = body.symbols.split(",") if isinstance(body.symbols, str) else body.symbols
    run_id = service.start_backtest(
        desk.engine, settings, start=body.start, end=body.end, data_dir=None,
        interval=body.interval or settings.replay_interval,
        symbols=list(settings.symbol_list) if symbols is None else symbols,
        capital=capital, ceo=body.ceo, name=body.name, llm_cache=body.llm_cache)
    return {"run_id": run_id, "progress": plain(_found(desk, run_id))}


@router.get("/backtests", summary="Earlier runs, newest first, with their headline figures")
def backtest_runs(desk: Desk, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    runs = queries.backtest_runs(desk.engine, limit=limit)
    listed = [{**r, "report": {k: v for k, v in r["report"].items() if k != "curve"}}
              if r.get("report") else r for r in runs]  # a run's curve is in its own answer
    return {"runs": plain(listed)}


@router.get("/backtests/{run_id}", summary="One run's progress and, once done, its report")
def backtest_run(desk: Desk, run_id: RunId) -> dict[str, Any]:
    progress = _found(desk, run_id)
    run = queries.backtest_run(desk.engine, run_id) if progress["status"] == "done" else None
    return {"progress": plain(progress), "run": plain(run)}
