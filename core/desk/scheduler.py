"""Drives ``run_cycle``: a fast loop for ``--ticks N`` and backtests, an APScheduler job otherwise.

The driver finds the session to trade (the latest active one, or the one named), takes its lease,
rebuilds the desk from the store, reconciles with the venue, then ticks. Any error rolls the tick
back, is written to the session's ``last_error`` (with ``error_since_ms``, the start of the
failures) for the UI, and the desk is rebuilt from the store before the next tick; a lost lease
makes the driver stand down; a finished replay stops ticking. Each completed tick stamps
``tick_wall_ms`` (at most once a second), because the lease's heartbeat also beats while ticks
fail; the first good tick after failures clears the error and writes the recovery to the CEO log.
In background mode the alerts sender (core/alerts/sender.py) runs beside the scheduler, in its
own thread, when ALERT_URLS names targets.
In background mode a venue that pushes events (``PushesEvents``: AsterDex's user data stream)
wakes the driver, which ticks at once, so a fill made at the venue is booked within a second
instead of at the next interval; the tick is the same ``run_cycle``, one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, insert, select, update

from core.alerts import events as alerts
from core.alerts.sender import AlertSender, start_sender
from core.config import Settings
from core.desk.context import ACTIVE_SESSION, CycleReport, Desk
from core.desk.engine import run_cycle
from core.desk.lease import Lease, new_owner_id, wall_ms
from core.desk.live_runtime import release_session
from core.desk.reconcile import reconcile
from core.desk.runtime import build_desk
from core.errors import DeskError, FeedExhausted, LeaseError, NotFound
from core.exchanges.base import PushesEvents
from core.store.tables import CeoDecisionRow, SessionRow

log = logging.getLogger(__name__)

TICK_STAMP_MS = 1_000  # a completed tick is stamped at most this often (``--ticks N`` runs fast)


def latest_active_session(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(
            select(SessionRow.id).where(SessionRow.status.in_(ACTIVE_SESSION),
                                        SessionRow.mode != "backtest")
            .order_by(SessionRow.id.desc()).limit(1)
        )


class EngineDriver:
    """One engine: ticks one session at a time, holding its lease."""

    def __init__(self, settings: Settings, engine: Engine, *, session_id: int | None = None,
                 owner: str | None = None, hold_market: bool = False) -> None:
        self.settings = settings
        self.hold_market = hold_market  # one command's tick while no engine runs
        self.engine = engine
        self.fixed_session = session_id
        self.owner = owner or new_owner_id()
        self.desk: Desk | None = None
        self.lease: Lease | None = None
        self.idle_reason: str | None = None
        self.tick_failure: str | None = None  # why the last tick failed; None once one completes
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self.alerts: AlertSender | None = None  # sends the outbox beside the scheduler
        self._finished: set[int] = set()
        self._failed_ticks = 0  # since the last good tick, in this process
        self._settle_errors = True  # the next good tick clears what earlier failures recorded
        self._stamped_ms = 0
        self._wake = threading.Event()  # set by a venue with something to book
        self._waker: threading.Thread | None = None  # background mode: ticks when woken
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ desk lifecycle
    def _target(self) -> int | None:
        if self.fixed_session is not None:
            with self.engine.connect() as conn:
                status = conn.scalar(select(SessionRow.status).where(SessionRow.id == self.fixed_session))
            if status is None:
                raise NotFound(f"no session {self.fixed_session}")
            return self.fixed_session if status in ACTIVE_SESSION else None
        return latest_active_session(self.engine)

    def _ensure_desk(self) -> Desk | None:
        if self.desk is not None:
            return self.desk  # run_cycle adopts status changes; a finished session drops the desk
        target = self._target()
        if target is None or target in self._finished:
            self._drop_desk(release=True)
            self.idle_reason = "no active session" if target is None else "replay finished"
            return None
        lease = Lease(self.engine, target, self.owner, self.settings.engine_lease_stale_seconds)
        if not lease.acquire():
            self.idle_reason = f"session {target} is traded by another engine"
            return None
        self.lease = lease
        try:
            desk = build_desk(self.settings, self.engine, target, lease,
                              hold_market=self.hold_market)
        except Exception as exc:  # the lease still beats: say where the user looks why nothing trades
            self._record_error(target, f"could not start trading: {type(exc).__name__}: {exc}")
            raise
        try:
            # the venue sees the current market (and reports what it did) before anything is settled
            desk.execution.book_events(desk.exchange.sync(desk.feed.current()))
            changes = reconcile(desk.execution)
        except BaseException as exc:
            desk.db.rollback()  # no desk until the venue's truth is settled: the next tick retries
            desk.db.close()
            if isinstance(exc, Exception):
                self._record_error(target, f"could not reconcile with the venue: "
                                           f"{type(exc).__name__}: {exc}")
            raise
        if changes:
            log.warning("reconciled session %s: %s", target, "; ".join(changes))
        if self._waker is not None and isinstance(desk.exchange, PushesEvents):
            desk.exchange.wake_on_events(self._wake.set)
        self.desk = desk
        self._settle_errors = True  # a message left by an earlier desk (or process) is settled
        self.idle_reason = None
        return self.desk

    def _drop_desk(self, *, release: bool) -> None:
        if self.desk is not None:
            if isinstance(self.desk.exchange, PushesEvents):
                self.desk.exchange.wake_on_events(None)  # the venue outlives this desk
            self.desk.db.close()
            self.desk = None
        if release and self.lease is not None:
            try:
                self.lease.release()
            except Exception:  # releasing is best effort; the lease goes stale anyway
                log.exception("could not release the lease")
            self.lease = None

    def _record_error(self, session_id: int, message: str, *, failing: bool = True) -> None:
        """Best effort: the error being recorded matters more than a failure to record it.
        ``failing`` errors start (or continue) a run of failures that the next good tick ends."""
        if failing:
            self._failed_ticks += 1
            self._settle_errors = True
        try:
            with self.engine.begin() as conn:
                since = conn.scalar(select(SessionRow.error_since_ms)
                                    .where(SessionRow.id == session_id))
                if failing and since is None:  # a run of failures starts: alert it once
                    since = wall_ms()
                    alerts.engine_failing(conn, session_id=session_id, since_ms=since,
                                          error=message)
                conn.execute(update(SessionRow).where(SessionRow.id == session_id)
                             .values(last_error=message[:2000],
                                     error_since_ms=since if failing else None))
        except Exception:
            log.exception("could not record the engine error of session %s", session_id)

    def _stamp_tick(self, session_id: int) -> None:
        """A tick completed: stamp its wall time; after failures, clear them and log the recovery.
        Best effort like ``_record_error``: the tick itself is already committed."""
        now = wall_ms()
        if not self._settle_errors and now - self._stamped_ms < TICK_STAMP_MS:
            return
        values: dict[str, object] = {"tick_wall_ms": now}
        try:
            with self.engine.begin() as conn:
                if self._settle_errors:
                    row = conn.execute(select(SessionRow.error_since_ms, SessionRow.last_error,
                                              SessionRow.clock_ms)
                                       .where(SessionRow.id == session_id)).one()
                    if row.error_since_ms is not None:
                        note = recovery_note(row.error_since_ms, now, self._failed_ticks,
                                             row.last_error)
                        decision_id = conn.execute(insert(CeoDecisionRow).values(
                            session_id=session_id, ts_ms=row.clock_ms, kind="engine", rules="",
                            reason=note)).inserted_primary_key[0]
                        alerts.engine_recovered(conn, session_id=session_id,
                                                decision_id=int(decision_id), ts_ms=row.clock_ms,
                                                note=note)
                    values.update(last_error=None, error_since_ms=None)
                conn.execute(update(SessionRow).where(SessionRow.id == session_id).values(**values))
        except Exception:
            log.exception("could not stamp the tick of session %s", session_id)
            return
        self._settle_errors, self._failed_ticks, self._stamped_ms = False, 0, now

    # ------------------------------------------------------------------ ticking
    def tick(self) -> CycleReport | None:
        """Run one cycle of the target session; None when idle. Never raises DeskError."""
        with self._lock:
            try:
                desk = self._ensure_desk()
            except DeskError as exc:
                self.idle_reason = str(exc)
                log.error("engine idle: %s", exc)
                return None
            if desk is None:
                return None
            session_id = desk.ledger.session.id
            try:
                report = run_cycle(desk)
            except FeedExhausted as exc:
                desk.db.rollback()
                self._finished.add(session_id)
                self._record_error(session_id, f"replay finished: {exc}", failing=False)
                self._drop_desk(release=True)
                self.idle_reason = "replay finished"
                return None
            except LeaseError as exc:
                log.error("%s", exc)
                self._drop_desk(release=False)
                self.idle_reason = str(exc)
                return None
            except Exception as exc:
                log.exception("tick failed; rebuilding the desk from the store")
                desk.db.rollback()
                self._record_error(session_id, f"{type(exc).__name__}: {exc}")
                self._drop_desk(release=False)
                self.idle_reason = self.tick_failure = f"tick failed: {type(exc).__name__}: {exc}"
                return None
            self.tick_failure = None
            self._stamp_tick(session_id)
            if report.status not in ACTIVE_SESSION:
                self._drop_desk(release=True)
                release_session(self.engine, session_id)
            return report

    def run_ticks(self, n: int, on_tick: Callable[[CycleReport], None] | None = None) -> int:
        """Run up to ``n`` cycles as fast as the feed allows; returns how many ran."""
        done = 0
        while done < n:
            report = self.tick()
            if report is None:
                break
            done += 1
            if on_tick is not None:
                on_tick(report)
        return done

    # ------------------------------------------------------------------ background mode
    def start(self) -> None:
        """Tick every ``tick_seconds`` in a background thread (one tick at a time)."""
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self.tick, "interval", seconds=self.settings.tick_seconds,
                          id="engine-tick", max_instances=1, coalesce=True,
                          misfire_grace_time=None)
        scheduler.start()
        self._scheduler = scheduler
        self.alerts = start_sender(self.settings, self.engine)  # its own thread, never the tick's
        self._stopping.clear()
        self._waker = threading.Thread(target=self._tick_when_woken, name="engine-waker",
                                       daemon=True)
        self._waker.start()
        with self._lock:  # a desk built by earlier ticks wakes the driver too from now on
            if self.desk is not None and isinstance(self.desk.exchange, PushesEvents):
                self.desk.exchange.wake_on_events(self._wake.set)

    def _tick_when_woken(self) -> None:
        """Tick whenever the venue has pushed something to book (between interval ticks)."""
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                self.tick()
            except Exception:  # tick() names its own failures; this thread must outlive any
                log.exception("woken tick failed")

    def stop(self) -> None:
        if self._waker is not None:
            self._stopping.set()
            self._wake.set()
            self._waker.join(timeout=60)
            self._waker = None
            self._wake.clear()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self.alerts is not None:
            self.alerts.stop()
            self.alerts = None
        with self._lock:
            session_id = self.desk.ledger.session.id if self.desk is not None else None
            self._drop_desk(release=True)
            if session_id is not None:
                release_session(self.engine, session_id)


def recovery_note(since_ms: int, now_ms: int, failed_ticks: int, last_error: str | None) -> str:
    """The CEO log's line for an engine whose ticks failed and now complete again."""
    seconds = max(0, now_ms - since_ms) / 1000
    count = f"{failed_ticks} failed tick{'s' if failed_ticks != 1 else ''}" if failed_ticks else "failures"
    return (f"engine recovered: ticks completed again after {count} over {seconds:,.0f} s; "
            f"last error: {last_error or 'not recorded'}")
