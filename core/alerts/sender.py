"""The sender: delivers the outbox to every subscribed target, outside the engine's tick.

Why it exists: an alert must reach the trader without ever costing a tick. The engine only
writes outbox rows in its own transactions; this worker, a thread of its own started beside the
engine's scheduler, does everything that touches a network, on its own database connections,
never holding a write transaction across a send. Each target sends from its own single thread,
so a target that hangs or refuses holds up only itself.

One pass (``pump``), every ALERT_POLL_SECONDS:

1. route: each pending alert gets one delivery per subscribed target (``alert_deliveries``, one
   row per alert and target, so an event reaches a target once whatever the number of senders);
   an alert no target wants, or of a kind switched off, is muted; one older than
   ALERT_MAX_AGE_HOURS is expired instead of sent late;
2. take back deliveries claimed by a sender that died mid-send (``CLAIM_STALE_MS``), and fail
   those to a target no longer in ALERT_URLS;
3. per target whose thread is free: claim its due deliveries and send them. Within the target's
   rate limit (ALERT_RATE_PER_MINUTE messages a minute) each goes as its own message; a burst
   beyond it goes as one digest. A failure is retried after a back-off that doubles
   (ALERT_RETRY_SECONDS up to ALERT_RETRY_MAX_SECONDS), at most ALERT_MAX_ATTEMPTS times; the
   reason, with the target's secrets masked, stays on the delivery for ``./desk alerts`` and the
   Session page.

Delivery is at least once: a sender killed after a message left but before it recorded the send
sends it again after the restart; the event id in every message lets a receiver drop the repeat.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.alerts import compose
from core.alerts.channel import Channel
from core.alerts.compose import Outgoing
from core.alerts.outbox import wall_ms
from core.alerts.targets import CLAIM_STALE_MS, AlertConfig, Target
from core.config import Settings
from core.errors import ConfigError
from core.store.tables import ALERT_DELIVERIES, ALERTS, SESSIONS

log = logging.getLogger(__name__)

ROUTE_BATCH = 500  # alerts routed per pass
DUE_BATCH = 200  # deliveries one target sends (or digests) per pass
WINDOW_MS = 60_000  # the rate limit's window

_A, _D, _S = ALERTS, ALERT_DELIVERIES, SESSIONS


class AlertSender:
    """Sends one store's outbox to the configured targets (see the module docstring)."""

    def __init__(self, engine: Engine, config: AlertConfig, *,
                 clock: Callable[[], int] = wall_ms, owner: str | None = None) -> None:
        if not config.targets:
            raise ConfigError("no alert target: set ALERT_URLS")
        self.engine = engine
        self.config = config
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.channels = {t.name: Channel(t, config.timeout_s) for t in config.targets}
        self._pools = {t.name: ThreadPoolExecutor(1, thread_name_prefix=f"alert-{t.name}")
                       for t in config.targets}
        self._busy: dict[str, Future[None]] = {}
        self._sent: dict[str, deque[int]] = {t.name: deque() for t in config.targets}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="alert-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop passing; a send in flight finishes on its own thread (bounded by its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            try:
                self.pump()
            except Exception:  # a database hiccup: the next pass tries again
                log.exception("alert sender pass failed")

    def drain(self, timeout_s: float) -> int:
        """Pass and wait until nothing is due or in flight, for at most ``timeout_s``; returns
        how many deliveries are still due (a one-shot sender: ``./desk alerts send``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            self._wait_idle(max(0.0, deadline - time.monotonic()))
            left = self.due_count()
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(min(self.config.poll_s, max(0.0, deadline - time.monotonic())))

    def _wait_idle(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        for future in list(self._busy.values()):
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            try:
                future.result(timeout=remaining)
            except Exception:  # recorded by the job; a timeout means it is still in flight
                return

    def due_count(self) -> int:
        now = self.clock()
        with self.engine.connect() as conn:
            pending = conn.scalar(select(func.count()).select_from(_A)
                                  .where(_A.c.status == "pending")) or 0
            due = conn.scalar(select(func.count()).select_from(_D).where(
                _D.c.status.in_(("pending", "sending")), _D.c.next_ms <= now)) or 0
        return int(pending + due)

    # ------------------------------------------------------------------ one pass
    def pump(self) -> None:
        now = self.clock()
        self._route(now)
        self._take_back(now)
        for target in self.config.targets:
            busy = self._busy.get(target.name)
            if busy is not None and not busy.done():
                continue  # this target is still sending (or hanging): others go on
            self._dispatch(target, now)

    def _route(self, now: int) -> None:
        with self.engine.begin() as conn:
            rows = conn.execute(select(_A.c.id, _A.c.kind, _A.c.severity, _A.c.created_ms)
                                .where(_A.c.status == "pending").order_by(_A.c.id)
                                .limit(ROUTE_BATCH)).all()
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            for r in rows:
                status, note = "routed", None
                subscribers = self.config.subscribers(r.kind, r.severity)
                if now - r.created_ms > self.config.max_age_ms:
                    status, note = "expired", "waited longer than ALERT_MAX_AGE_HOURS; not sent"
                elif r.kind in self.config.kinds_off:
                    status, note = "muted", "kind switched off (ALERT_KINDS_OFF)"
                elif not subscribers:
                    status, note = "muted", f"no target subscribes to {r.kind} at {r.severity}"
                else:
                    conn.execute(dialect.insert(_D).values([{
                        "alert_id": r.id, "target": t.name, "status": "pending", "attempts": 0,
                        "next_ms": now, "digest": False} for t in subscribers])
                        .on_conflict_do_nothing(index_elements=["alert_id", "target"]))
                conn.execute(update(_A).where(_A.c.id == r.id, _A.c.status == "pending")
                             .values(status=status, note=note, updated_ms=now))

    def _take_back(self, now: int) -> None:
        """Claims of a sender that died mid-send go back to pending; deliveries to a target no
        longer in ALERT_URLS end as failed. Written only when there is something to write, so
        an idle sender never takes SQLite's write lock."""
        stale = (_D.c.status == "sending") & (_D.c.claimed_ms < now - CLAIM_STALE_MS)
        gone = _D.c.status.in_(("pending", "sending")) & _D.c.target.not_in(
            [t.name for t in self.config.targets])
        with self.engine.connect() as conn:
            if conn.scalar(select(func.count()).select_from(_D).where(stale | gone)) == 0:
                return
        with self.engine.begin() as conn:
            conn.execute(update(_D).where(stale).values(status="pending", claimed_by=None,
                                                        claimed_ms=None))
            orphans = list(conn.scalars(select(_D.c.alert_id).where(gone).distinct()))
            conn.execute(update(_D).where(gone).values(
                status="failed", claimed_by=None, claimed_ms=None,
                error="this target is no longer in ALERT_URLS"))
            for alert_id in orphans:
                _refresh_alert(conn, alert_id, now)

    def _budget(self, name: str, now: int) -> int:
        with self._guard:
            sent = self._sent[name]
            while sent and sent[0] <= now - WINDOW_MS:
                sent.popleft()
            return self.config.rate_per_minute - len(sent)

    def _count_message(self, name: str) -> None:
        with self._guard:
            self._sent[name].append(self.clock())

    def _dispatch(self, target: Target, now: int) -> None:
        budget = self._budget(target.name, now)
        if budget <= 0:
            return
        with self.engine.begin() as conn:
            due = list(conn.scalars(select(_D.c.id).where(
                _D.c.target == target.name, _D.c.status == "pending", _D.c.next_ms <= now)
                .order_by(_D.c.id).limit(DUE_BATCH)))
            if not due:
                return
            conn.execute(update(_D).where(_D.c.id.in_(due), _D.c.status == "pending")
                         .values(status="sending", claimed_by=self.owner, claimed_ms=now))
        claimed = self._claimed(due)
        if claimed:
            as_digest = len(claimed) > budget
            self._busy[target.name] = self._pools[target.name].submit(
                self._deliver, target, claimed, as_digest)

    def _claimed(self, ids: list[int]) -> list[Outgoing]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_D.c.id, _A.c.id.label("alert_id"), _A.c.event_id, _A.c.kind,
                       _A.c.severity, _A.c.title, _A.c.body, _A.c.session_id,
                       _S.c.name.label("session_name"), _S.c.mode.label("session_mode"))
                .select_from(_D.join(_A, _A.c.id == _D.c.alert_id)
                             .outerjoin(_S, _S.c.id == _A.c.session_id))
                .where(_D.c.id.in_(ids), _D.c.claimed_by == self.owner,
                       _D.c.status == "sending")
                .order_by(_D.c.id)).all()
        return [Outgoing(*r) for r in rows]

    # ------------------------------------------------------------------ sending (target thread)
    def _deliver(self, target: Target, alerts: list[Outgoing], as_digest: bool) -> None:
        channel = self.channels[target.name]
        try:
            if as_digest:
                title, body, severity = compose.digest(alerts)
                self._count_message(target.name)
                self._settle(target.name, alerts, channel.send(title, body, severity),
                             digest=True)
                return
            for alert in alerts:
                title, body = compose.single(alert)
                self._count_message(target.name)
                self._settle(target.name, [alert], channel.send(title, body, alert.severity),
                             digest=False)
        except Exception:
            log.exception("alert target %s: could not record a send", target.name)

    def _settle(self, name: str, alerts: list[Outgoing], error: str | None, *,
                digest: bool) -> None:
        """Record how a send ended for its deliveries, then their alerts' overall status."""
        now = self.clock()
        with self.engine.begin() as conn:
            for alert in alerts:
                attempts = 1 + (conn.scalar(select(_D.c.attempts)
                                            .where(_D.c.id == alert.delivery_id)) or 0)
                values: dict[str, object] = {"attempts": attempts, "claimed_by": None,
                                             "claimed_ms": None}
                if error is None:
                    values.update(status="sent", sent_ms=now, digest=digest, error=None)
                elif attempts >= self.config.max_attempts:
                    values.update(status="failed", error=error)
                else:
                    values.update(status="pending", error=error,
                                  next_ms=now + self.config.backoff_ms(attempts))
                conn.execute(update(_D).where(_D.c.id == alert.delivery_id,
                                              _D.c.claimed_by == self.owner).values(values))
            for alert_id in {a.alert_id for a in alerts}:
                _refresh_alert(conn, alert_id, now)
        if error is not None:  # masked: the channel scrubbed the target's secrets
            log.warning("alert to %s failed: %s", name, error)


def _refresh_alert(conn: Connection, alert_id: int, now: int) -> None:
    """An alert is sent when every delivery is, failed when none is left to try and one failed."""
    rows = conn.execute(select(_D.c.status, _D.c.error, _D.c.target)
                        .where(_D.c.alert_id == alert_id)).all()
    statuses = {r.status for r in rows}
    if statuses == {"sent"}:
        status, note = "sent", None
    elif statuses <= {"sent", "failed"}:
        status = "failed"
        note = "; ".join(f"{r.target}: {r.error}" for r in rows if r.status == "failed")
    else:
        status = "routed"
        note = "; ".join(f"{r.target}: {r.error}" for r in rows if r.error) or None
    conn.execute(update(_A).where(_A.c.id == alert_id).values(
        status=status, note=note, updated_ms=now))


# ---------------------------------------------------------------------- entry points
def start_sender(settings: Settings, engine: Engine) -> AlertSender | None:
    """The running sender of this process's engine, or None when ALERT_URLS names no target
    (or names them wrongly: said once in the log, and the outbox waits for a fixed setting)."""
    if settings.alert_urls is None or not settings.alert_urls.get_secret_value().strip():
        return None
    try:
        sender = AlertSender(engine, AlertConfig.from_settings(settings))
    except ConfigError as exc:
        log.error("alerts are not sent: %s", exc)
        return None
    sender.start()
    return sender


@dataclass(frozen=True, slots=True)
class TestResult:
    """How a test message to one target ended; ``error`` is None when it went out."""

    target: str
    service: str
    error: str | None
    seconds: float


def send_test(config: AlertConfig) -> list[TestResult]:
    """Send a test message to every target at once and wait for each (at most its timeout and a
    little more); a target apprise cannot use reports why instead."""
    results: dict[str, TestResult] = {}
    threads = []

    def one(target: Target) -> None:
        started = time.monotonic()
        try:
            channel = Channel(target, config.timeout_s)
        except ConfigError as exc:
            results[target.name] = TestResult(target.label, target.scheme, str(exc), 0.0)
            return
        title, body = compose.test_message(target.label)
        error = channel.send(title, body, "info")
        results[target.name] = TestResult(target.label, channel.service, error,
                                          time.monotonic() - started)

    for target in config.targets:
        thread = threading.Thread(target=one, args=(target,), daemon=True,
                                  name=f"alert-test-{target.name}")
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + 2 * config.timeout_s + 5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [results.get(t.name) or TestResult(
        t.label, t.scheme, f"no answer within {2 * config.timeout_s + 5:g} s", 0.0)
        for t in config.targets]
