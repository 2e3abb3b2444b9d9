"""Backtests started from the dashboard run in a background thread of the server process, so the
page that started one (and every other page) stays responsive; the page polls the run's row.

One backtest at a time per process: a backtest keeps a CPU core busy, and the dashboard process
also serves pages (and may run the in-app engine). The request is validated (data read, range
checked, the strategy file read) before the thread starts, so a bad request is refused at once
with a readable message, and the run trades on the parameters the file held when it was asked for.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import Engine

from core.agents import strategy_file
from core.backtest.params import build_params, ticks_in
from core.backtest.service import create_run, record_dead_runs, run_backtest
from core.config import Settings
from core.errors import InvalidTransition

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_RUNNING: dict[int, threading.Thread] = {}


def running_run() -> int | None:
    with _LOCK:
        for run_id, thread in list(_RUNNING.items()):
            if not thread.is_alive():
                del _RUNNING[run_id]
        return next(iter(_RUNNING), None)


def start_backtest(engine: Engine, settings: Settings, *, start: str, end: str,
                   data_dir: str | Path | None, interval: str, symbols: list[str],
                   capital: float, ceo: bool, name: str | None = None,
                   llm_cache: bool = False) -> int:
    """Validate, record the run and start it in the background; returns the run id."""
    busy = running_run()
    if busy is not None:
        raise InvalidTransition(f"backtest run {busy} is still running; wait for it to finish")
    record_dead_runs(engine)
    params, data = build_params(start=start, end=end, data_dir=data_dir or settings.replay_data_dir,
                                interval=interval, symbols=symbols, capital=capital, ceo=ceo,
                                name=name, llm_cache=llm_cache)
    agent_params = strategy_file.load(settings.strategies_file)  # as of the request, or refused
    run_id = create_run(engine, params, ticks_in(params, data))

    def work() -> None:
        try:
            run_backtest(engine, settings, params, data, run_id=run_id, agent_params=agent_params)
        except Exception:  # recorded on the run's row by run_backtest
            log.exception("backtest run %s failed", run_id)

    thread = threading.Thread(target=work, name=f"backtest-{run_id}", daemon=True)
    with _LOCK:
        _RUNNING[run_id] = thread
    thread.start()
    return run_id


def wait(run_id: int, timeout: float | None = None) -> None:
    """Block until run ``run_id`` (started here) has finished (tests, scripts)."""
    with _LOCK:
        thread = _RUNNING.get(run_id)
    if thread is not None:
        thread.join(timeout)
