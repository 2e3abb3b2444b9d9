"""Runs one backtest through the desk's own engine in a private store.

The session lives in a private SQLite file in a temporary folder, written without syncing to disk
and committed only when the engine flushes (every few hundred ticks), and the paper venue keeps its
account in memory (nothing of a run must survive a crash: an interrupted run is simply run again),
so ticks wait on no disk, nothing waits on the dashboard or a live engine, and the finished run can
be attached to a SQLite main store and copied in SQL (core/backtest/transfer.py). Everything else
is the code that trades paper: ``run_cycle``, the rule agents, the CEO's hard rules (core/ceo/rules.py)
and periodic reviews, the paper exchange with its fees, slippage, stops and funding, on the feed's
step clock (one base bar per tick). At the end of the range the session is stopped like a user
would stop it, so every position is closed at the last prices and every trade is complete.

With the CEO off (``ceo=False``) the agents trade under the venue's own limits only: leverage up to
the symbol's maximum (and the agent's own cap, which is part of its roster entry), the margin the
agent and the account have, the symbol filters, one owner per symbol and a stop on every position
(the venue nets positions per symbol and the stop rests on it). Per-trade margin and position caps,
the stop-width rule, gross exposure, pauses, rebalances and the drawdown halt are all switched off.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from core.agents.base import AgentSpec, Strategy
from core.agents.desk_params import AGENT_KEYS, DeskParams
from core.agents.strategies import build_strategies
from core.backtest.params import BacktestParams
from core.ceo.rules import RiskLimits
from core.clock import FeedClock
from core.config import Settings
from core.desk.context import Desk
from core.desk.engine import flush, run_cycle
from core.desk.ledger import insert_session, load_ledger
from core.desk.runtime import paper_exchange
from core.errors import ConfigError, FeedExhausted
from core.feeds.replay import ReplayData, ReplayFeed
from core.models import INTERVAL_MS
from core.store.base import Base
from core.store.tables import CEO_DECISIONS, SESSIONS

Progress = Callable[[int, int], None]
ACCOUNT = "backtest"
AGENT_MODEL = "rules (backtest)"
NO_LIMIT = 1_000_000_000
FOLDER_PREFIX = "desk-backtest-"
OWNER_FILE = "owner"  # "<pid> <start time>" of the process running the backtest
ABANDONED_AFTER_S = 3_600  # a folder with no owner file, untouched this long, belongs to no run


@dataclass(slots=True)
class PrivateStore:
    """The run's SQLite file (the desk's session) in a temporary folder of its own."""

    folder: Path
    engine: Engine

    @classmethod
    def create(cls) -> PrivateStore:
        _sweep_abandoned()
        folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        try:
            _write_owner(folder)
            return cls(folder, _private_store(folder / "desk.db"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def dispose(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(slots=True)
class FinishedRun:
    store: PrivateStore  # the private store holding the session
    session_id: int
    ticks: int
    settings: Settings

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def dispose(self) -> None:
        self.store.dispose()


class BoundedFeed(ReplayFeed):
    """The replay feed, ending at the backtest's last bar (FeedExhausted after it)."""

    def __init__(self, data: ReplayData, *, start_ms: int, end_ms: int) -> None:
        super().__init__(data, start_ms=start_ms, bars_per_tick=1)
        self._end_ms = end_ms
        self._step_ms = INTERVAL_MS[data.base_interval]

    def step(self):  # type: ignore[no-untyped-def]
        if self.now_ms() + self._step_ms > self._end_ms:
            raise FeedExhausted("the backtest's range ends here")
        return super().step()


def _sweep_abandoned() -> None:
    """Remove the folders of runs whose process is gone (killed, crashed, the machine rebooted).
    A folder without a readable owner (an older desk's, or one being created this instant) is
    removed once nothing in it has changed for an hour."""
    cutoff = time.time() - ABANDONED_AFTER_S
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            running = _owner_running(folder / OWNER_FILE)
            if running is None:
                running = max((f.stat().st_mtime for f in folder.iterdir()),
                              default=folder.stat().st_mtime) >= cutoff
        except OSError:
            continue
        if not running:
            shutil.rmtree(folder, ignore_errors=True)


def _write_owner(folder: Path) -> None:
    part = folder / f"{OWNER_FILE}.part"
    part.write_text(_process_mark(os.getpid()))
    os.replace(part, folder / OWNER_FILE)  # a sweeper sees the whole mark or none


def _process_mark(pid: int) -> str:
    """``pid`` and, where /proc tells it, the process's start time (a reused pid differs in it)."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid} {start}"


def _owner_running(path: Path) -> bool | None:
    """Is the process an owner file names still the one that wrote it? None when that cannot be
    told: no file holding a whole mark, or a live pid whose start time is unknown (no /proc)."""
    try:
        pid_text, start = path.read_text().split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if start == "?":
        return None
    return _process_mark(pid) == f"{pid} {start}"


def _unsynced(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=MEMORY")  # rollbacks still work; no journal file
    cur.execute("PRAGMA synchronous=OFF")
    cur.close()


def _private_store(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", poolclass=StaticPool,
                           connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _unsynced)
    Base.metadata.create_all(engine)
    return engine


def run_settings(settings: Settings, params: BacktestParams) -> Settings:
    """The desk's settings for this run: the user's risk limits and venue costs, an equity
    snapshot every bar (the report's equity curve), and with the CEO off its rules disabled."""
    update_: dict[str, object] = {
        "replay_interval": params.interval, "bars_per_tick": 1,
        "snapshot_interval_minutes": INTERVAL_MS[params.interval] // 60_000,
        "symbols": ",".join(params.symbols), "agent_llm": "none",
    }
    if not params.ceo:  # model_copy skips validation on purpose: these limits are "never"
        update_ |= {
            "drawdown_halt_pct": math.inf, "agent_pause_drawdown_pct": math.inf,
            "agent_pause_losing_streak": NO_LIMIT, "agent_pause_win_rate_window": NO_LIMIT,
            "rebalance_interval_hours": NO_LIMIT,
        }
    return settings.model_copy(update=update_)


def run_limits(settings: Settings, ceo: bool) -> RiskLimits:
    if ceo:
        return RiskLimits.from_settings(settings)
    return RiskLimits(max_margin_fraction=1.0, max_open_positions=NO_LIMIT,
                      stop_loss_margin_pct=math.inf, gross_exposure_cap=math.inf)


def _create_session(engine: Engine, params: BacktestParams, agent_params: DeskParams,
                    roster: Sequence[AgentSpec] | None = None) -> int:
    capital = params.capital
    with engine.begin() as conn:
        sid = insert_session(conn, name=params.label, mode="backtest", source="replay",
                             symbols=params.symbols, capital=capital, interval=params.interval,
                             start_ms=params.start_ms, model_of=lambda _spec: AGENT_MODEL,
                             params=agent_params, roster=roster)
        ceo = "CEO on" if params.ceo else "CEO off (venue limits only)"
        conn.execute(insert(CEO_DECISIONS).values(
            session_id=sid, ts_ms=params.start_ms, kind="session", rules="",
            reason=f"backtest created: {capital:,.2f} USDT on {', '.join(params.symbols)}, "
                   f"{params.interval} bars, {ceo}, agents on rules"))
    return int(sid)


def run(settings: Settings, params: BacktestParams, data: ReplayData, *, total: int,
        progress: Progress | None = None, strategies: list[Strategy] | None = None,
        agent_params: DeskParams | None = None,
        roster: Sequence[AgentSpec] | None = None) -> FinishedRun:
    """Tick the desk over the range, stop the session at its end; the caller disposes the run.
    ``agent_params`` (the defaults when None) are stored with the run's session and are what its
    agents run on. ``strategies`` replaces the roster's rule agents (matched by ``spec.key``;
    agents without one stay idle), e.g. for a benchmark's single strategy; each must run on
    ``agent_params``, or the stored parameters would not be the ones that traded. ``roster``
    replaces the session's agents and their capital shares (a study's chosen agents, their
    shares summing to 1)."""
    agent_params = DeskParams.defaults() if agent_params is None else agent_params
    if strategies is None:
        strategies = build_strategies(roster, params=agent_params)
    else:
        check_strategies_run_on(strategies, agent_params)
    desk_settings = run_settings(settings, params)
    store = PrivateStore.create()
    try:
        session_id = _create_session(store.engine, params, agent_params, roster)
        desk = _desk(desk_settings, params, data, store.engine, session_id, strategies)
        every = max(1, total // 200)
        ticks = 0
        try:
            while True:
                run_cycle(desk)
                ticks += 1
                if progress is not None and ticks % every == 0:
                    progress(ticks, total)
        except FeedExhausted:
            flush(desk)  # the last bar raised before writing anything; earlier ticks' rows wait
        _stop(desk)
        if progress is not None:
            progress(ticks, total)
        desk.db.close()
    except BaseException:
        store.dispose()
        raise
    return FinishedRun(store, session_id, ticks, desk_settings)


def _desk(settings: Settings, params: BacktestParams, data: ReplayData, engine: Engine,
          session_id: int, strategies: list[Strategy]) -> Desk:
    feed = BoundedFeed(data, start_ms=params.start_ms, end_ms=params.end_ms)
    venue = paper_exchange(settings, None, ACCOUNT, tuple(params.symbols), params.interval,
                           balance=Decimal(repr(params.capital)), funding=data.funding)
    db = Session(engine, expire_on_commit=False)
    ledger = load_ledger(db, session_id)
    db.commit()
    return Desk(
        db=db, ledger=ledger, feed=feed, exchange=venue, clock=FeedClock(feed),
        strategies={s.spec.key: s for s in strategies}, settings=settings,
        limits=run_limits(settings, params.ceo), commit=_held, concurrent_agents=False,
        private_store=True,
    )


def check_strategies_run_on(strategies: list[Strategy], agent_params: DeskParams) -> None:
    """Refuse a strategy (or a model wrapper around one) whose parameters are not the run's."""
    for s in strategies:
        inner = getattr(s, "strategy", s)  # LLMAgent / CachedAgent wrap the rule strategy
        own = getattr(inner, "params", None)
        if own is not None and s.spec.key in AGENT_KEYS and own != agent_params.strategy(s.spec.key):
            raise ConfigError(f"the {s.spec.key} strategy runs on other parameters than the "
                              "backtest's agent_params; build it from them")


def _held() -> None:
    """The engine's commits before each venue call make paper and live orders durable before
    they leave; a private store's writes wait for the engine's next flush instead (one commit
    every PRIVATE_FLUSH_TICKS ticks), since a killed run is run again, never resumed."""


def _stop(desk: Desk) -> None:
    """Stop the session as a user would at the end of the range: close everything at the last
    prices (the engine's own stopping path), final snapshot."""
    session = desk.ledger.session
    if session.status == "stopped":
        return
    desk.db.execute(update(SESSIONS).where(SESSIONS.c.id == session.id).values(
        status="stopping", status_reason="end of the backtest range",
        intent_version=SESSIONS.c.intent_version + 1))
    session.status = "stopping"  # a private store's intents are not read back each tick
    session.intent_version += 1
    desk.db.commit()
    for _ in range(5):
        run_cycle(desk)
        if desk.ledger.session.status == "stopped":
            return
    raise RuntimeError("the backtest could not close every position at the end of its range")
