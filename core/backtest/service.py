"""One backtest from request to stored report: record the run, tick it privately, copy it into
the main store, compute and save the report. Used by the CLI, the dashboard's background jobs,
the tests and the benchmarks.

A run's row (``backtest_runs``) shows ``running`` with its progress while it ticks (a short write
every 0.5% of the range), ``saving`` while it is copied, then ``done`` with the report and the
session id, ``failed`` with the error, or ``interrupted`` when the user stopped it (Ctrl-C). Its
session (mode ``backtest``) is never the dashboard's or the CLI's default session.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from core.agents import strategy_file
from core.agents.base import Strategy
from core.agents.desk_params import DeskParams, stored_params
from core.agents.strategies import build_strategies
from core.alerts import events as alerts
from core.backtest import runner
from core.backtest.inputs import compute_report
from core.backtest.llm_cache import CachedAgent, ReplyCache
from core.backtest.params import STALE_MS, BacktestParams, ticks_in
from core.backtest.transfer import copy_session
from core.ceo.rules import RiskLimits
from core.config import Settings
from core.desk.lease import wall_ms
from core.errors import ConfigError
from core.feeds.replay import ReplayData
from core.store.tables import SESSIONS, BacktestRunRow

log = logging.getLogger(__name__)
RUNS = BacktestRunRow.__table__
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    run_id: int
    session_id: int
    ticks: int
    seconds: float
    report: dict[str, Any]


def create_run(engine: Engine, params: BacktestParams, total: int) -> int:
    """Record a new run. Names tell runs apart: a name the user chose that another run already
    has is refused; a generated one gets " (2)", " (3)", ... appended."""
    with engine.begin() as conn:
        taken = {str(n) for n in conn.execute(select(RUNS.c.name).where(
            RUNS.c.name.like(f"{params.label[:100]}%"))).scalars()}
        name = params.label
        if name in taken and params.name:
            raise ConfigError(f"a backtest run is already named {name!r}; choose another name")
        copy = 2
        while name in taken:
            name = f"{params.label[:110]} ({copy})"
            copy += 1
        return int(conn.execute(insert(RUNS).values(
            name=name, status="running", params=json.dumps(params.as_json()),
            progress=0.0, ticks_done=0, ticks_total=total, started_ms=wall_ms(),
            updated_ms=wall_ms(),
        )).inserted_primary_key[0])


def run_backtest(engine: Engine, settings: Settings, params: BacktestParams, data: ReplayData,
                 *, progress: Progress | None = None, run_id: int | None = None,
                 strategies: list[Strategy] | None = None,
                 agents_note: str | None = None,
                 agent_params: DeskParams | None = None) -> BacktestResult:
    """Run, store and report one backtest; a failure is recorded on the run and re-raised.
    ``agent_params``: the agents' parameters (None: what the strategy file sets now); the run's
    session stores them and its report states them."""
    if agent_params is None:
        agent_params = strategy_file.load(settings.strategies_file)
    total = ticks_in(params, data)
    if run_id is None:
        run_id = create_run(engine, params, total)
    started = time.perf_counter()
    cache = None

    def on_progress(done: int, of: int) -> None:
        with engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id)
                         .values(progress=min(1.0, done / of) if of else 1.0, ticks_done=done,
                                 updated_ms=wall_ms()))
        if progress is not None:
            progress(done, of)

    try:
        if params.llm_cache and strategies is None:
            cache = ReplyCache(engine)
            limits = RiskLimits.from_settings(settings)
            strategies = [CachedAgent(s, cache, limits)  # type: ignore[misc]
                          for s in build_strategies(params=agent_params)]
        finished = runner.run(settings, params, data, total=total, progress=on_progress,
                              strategies=strategies, agent_params=agent_params)
        ticked = time.perf_counter()
        try:
            report = compute_report(finished.engine, finished.session_id, params, data, settings)
            ran_with = _stored_params(finished.engine, finished.session_id)
            report["agent_params"] = ran_with.flat()
            report["agent_params_changed"] = sorted(ran_with.differences(DeskParams.defaults()))
            if agents_note or cache is not None:
                report["agents_model"] = agents_note or cache.note()  # type: ignore[union-attr]
            reported = time.perf_counter()
            session_id = copy_session(finished.engine, finished.session_id, engine, run_id)
            seconds = time.perf_counter() - started
            report["run"] = {"ticks": finished.ticks, "seconds": seconds,
                             "bars_per_second": finished.ticks * len(params.symbols) / seconds
                             if seconds > 0 else None, "params": params.as_json(),
                             # where the time went: ticking the desk, the report, saving the run
                             "phases": {"ticks": ticked - started, "report": reported - ticked,
                                        "save": time.perf_counter() - reported}}
        finally:
            finished.dispose()
        with engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(
                status="done", session_id=session_id, progress=1.0, ticks_done=finished.ticks,
                report=json.dumps(report, default=_json_default), finished_ms=wall_ms(),
                wall_seconds=time.perf_counter() - started))
            alerts.backtest_finished(conn, run_id=run_id, name=params.label, status="done",
                                     session_id=session_id, summary=_summary(report))
    except KeyboardInterrupt:
        _fail(engine, run_id, "stopped by the user (Ctrl-C) before the end of the range; nothing "
              "of it was kept", time.perf_counter() - started, status="interrupted")
        raise
    except BaseException as exc:
        _fail(engine, run_id, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        raise
    return BacktestResult(run_id, session_id, finished.ticks, time.perf_counter() - started, report)


def _stored_params(engine: Engine, session_id: int) -> DeskParams:
    """The parameters as the run's session stored them (what the report states)."""
    with engine.connect() as conn:
        text = conn.scalar(select(SESSIONS.c.agent_params).where(SESSIONS.c.id == session_id))
    return stored_params(text)


def record_dead_runs(engine: Engine, alive: int | None = None) -> list[int]:
    """Write down as interrupted every run still marked running or saving whose process has
    written nothing for ``STALE_MS`` (killed, crashed or restarted mid-run or mid-save), with
    the stage it died in; ``alive`` (the run this process is running) is left alone. Returns
    the ids written."""
    cutoff = wall_ms() - STALE_MS
    with engine.begin() as conn:
        dead = conn.execute(select(RUNS.c.id, RUNS.c.status).where(
            RUNS.c.status.in_(("running", "saving")), RUNS.c.updated_ms < cutoff)).all()
        for run_id, stage in dead:
            if run_id == alive:
                continue
            what = "while saving its results" if stage == "saving" else "before the end of its range"
            conn.execute(update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == stage).values(
                status="interrupted", finished_ms=wall_ms(),
                error=f"its process stopped {what} (nothing written for over "
                      f"{STALE_MS // 60_000} min); nothing of it was kept: run it again"))
    return [r for r, _ in dead if r != alive]


def _fail(engine: Engine, run_id: int, message: str, seconds: float, *,
          status: str = "failed") -> None:
    try:
        with engine.begin() as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(
                status=status, error=message[:2000], finished_ms=wall_ms(), wall_seconds=seconds))
            name = conn.scalar(select(RUNS.c.name).where(RUNS.c.id == run_id)) or f"run {run_id}"
            alerts.backtest_finished(conn, run_id=run_id, name=name, status=status,
                                     session_id=None, summary=f"{message[:1500]}\nAfter "
                                     f"{seconds:,.1f} s; nothing of the run was kept.")
    except Exception:  # the original error matters more than recording it
        log.exception("could not record the failure of backtest run %s", run_id)


def _summary(report: dict[str, Any]) -> str:
    """The alert's lines for a finished run: its return, drawdown, trades and the halt."""
    s = report.get("summary", {})

    def pct(key: str) -> str:
        value = s.get(key)
        return f"{value:+.2%}" if isinstance(value, (int, float)) else "–"

    lines = [f"Total return {pct('total_return')} · max drawdown "
             f"{pct('max_drawdown').lstrip('+')} · final equity "
             f"{s.get('final_equity', 0.0):,.2f} USDT",
             f"{s.get('trades', 0)} trades · win rate {pct('win_rate').lstrip('+')} · CEO "
             f"{'on' if report.get('ceo') else 'off'}"]
    halt = report.get("drawdown_halt") or {}
    if halt.get("halted"):
        lines.append(f"Drawdown halt fired: {halt.get('statement', '')}".rstrip(": "))
    run = report.get("run") or {}
    if run.get("seconds") is not None:
        lines.append(f"{run.get('ticks', 0):,} ticks in {run['seconds']:,.1f} s")
    return "\n".join(lines)


def _json_default(value: object) -> object:
    if isinstance(value, float):
        return None
    return str(value)
