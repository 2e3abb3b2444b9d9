"""The alert sender against real receivers on 127.0.0.1: apprise's ``json://`` webhook and email
over SMTP (aiosmtpd). The right alerts arrive once; a burst past the rate limit comes as one
digest; a failing target is retried with back-off and then marked failed, its secrets masked;
what a crash left pending or half-sent is sent after the restart, once; and a target that hangs
or answers 500 never stops the engine's ticks."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, update

from core.alerts import outbox
from core.alerts.kinds import KINDS
from core.alerts.sender import AlertSender, send_test
from core.alerts.targets import CLAIM_STALE_MS, AlertConfig, parse_targets
from core.config import PROJECT_ROOT, Settings
from core.desk.scheduler import EngineDriver
from core.errors import ConfigError
from core.store.db import open_database
from core.store.tables import AlertDeliveryRow, AlertRow, SessionRow
from tests.alert_receivers import Mailbox, Webhook
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks

EVENT = re.compile(r"event (\S+)$")


@pytest.fixture
def hooks() -> Iterator[Callable[..., Webhook]]:
    made: list[Webhook] = []

    def make(mode: str = "ok", **kw: Any) -> Webhook:
        made.append(Webhook(mode=mode, **kw))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


class Clock:
    """A wall clock the test moves: back-off and the rate limit's window without waiting."""

    def __init__(self) -> None:
        self.ms = outbox.wall_ms()

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def config(urls: str, **kw: Any) -> AlertConfig:
    base: dict[str, Any] = {"timeout_s": 5.0, "retry_s": 1.0, "retry_max_s": 60.0,
                            "max_attempts": 3, "rate_per_minute": 1000, "poll_s": 0.05}
    base.update(kw)
    return AlertConfig(targets=parse_targets(urls), **base)


def add_alerts(engine: Engine, n: int, *, kind: str = "trade_opened", start: int = 0) -> list[str]:
    ids = [f"test-{kind}-{start + i}" for i in range(n)]
    with engine.begin() as conn:
        for i, event_id in enumerate(ids):
            outbox.record(conn, kind=kind, event_id=event_id, title=f"alert {start + i}",
                          body=f"body {start + i}")
    return ids


def event_ids(messages: list[str]) -> list[str]:
    found = []
    for text in messages:
        match = EVENT.search(text.strip())
        if match:
            found.append(match.group(1))
    return found


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(AlertDeliveryRow).order_by(AlertDeliveryRow.id)))


def alert_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(AlertRow).order_by(AlertRow.id)))


# ---------------------------------------------------------------------- ALERT_URLS
def test_alert_urls_name_targets_their_severity_and_kinds() -> None:
    targets = parse_targets(
        "phone:warning=tgram://123456:SECRETBOT/98765\n"
        "  mail::session_*,backtest_finished=mailtos://me:pw123@smtp.example.com "
        "json://127.0.0.1:9/x all:critical:*,-trade_*=ntfys://topic")
    phone, mail, plain, every = targets
    assert (phone.name, phone.scheme, phone.min_severity, phone.kinds) == (
        "phone", "tgram", "warning", frozenset(KINDS))
    assert mail.kinds == {"session_created", "session_paused", "session_resumed",
                          "session_stopped", "session_halted", "backtest_finished"}
    assert plain.name == "json-3" and plain.min_severity == "info"
    assert not any(k.startswith("trade_") for k in every.kinds) and "session_halted" in every.kinds
    assert phone.wants("trade_stopped", "warning") and not phone.wants("trade_opened", "info")
    assert mail.wants("session_created", "info") and not mail.wants("trade_closed", "critical")
    assert every.wants("session_halted", "critical") and not every.wants("agent_paused", "warning")
    for target in targets:  # the URL never shows
        assert "SECRETBOT" not in repr(target) and "pw123" not in repr(target)
        assert "SECRETBOT" not in target.label and "pw123" not in target.label
    assert phone.label == "phone (tgram://…)"


@pytest.mark.parametrize(("value", "words"), [
    ("tgram//123:SECRET/1", "is not a URL"),
    ("bad name=json://127.0.0.1:9/SECRET", "is not a URL"),
    ("b@d=json://127.0.0.1:9/SECRET", "must be letters"),
    ("x:loud=json://127.0.0.1:9/SECRET", "severity 'loud'"),
    ("x::trades=json://127.0.0.1:9/SECRET", "no alert kind 'trades'"),
    ("x::-trade_opened=json://127.0.0.1:9/SECRET", "subscribes to no kind"),
    ("a=json://127.0.0.1:9/SECRET A=json://127.0.0.1:9/SECRET", "used twice"),
])
def test_a_malformed_alert_url_is_refused_without_quoting_it(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_targets(value)
    assert words in str(info.value) and "SECRET" not in str(info.value)


def test_settings_read_alert_urls_as_a_secret_and_check_the_kinds_switched_off() -> None:
    settings = make_settings(alert_urls="json://127.0.0.1:9/TOKEN", alert_kinds_off="trade_*")
    assert "TOKEN" not in repr(settings) and "TOKEN" not in str(settings.model_dump())
    cfg = AlertConfig.from_settings(settings)
    assert cfg.subscribers("trade_opened", "info") == []
    assert [t.name for t in cfg.subscribers("session_created", "info")] == ["json-1"]
    with pytest.raises(ConfigError, match="ALERT_KINDS_OFF: no alert kind 'trade'"):
        AlertConfig.from_settings(make_settings(alert_urls="json://127.0.0.1:9/x",
                                                alert_kinds_off="trade"))
    assert cfg.backoff_ms(1) == 10_000 and cfg.backoff_ms(3) == 40_000
    assert cfg.backoff_ms(20) == 900_000


def test_every_alert_setting_and_kind_is_documented_and_the_example_parses() -> None:
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in (n.upper() for n in Settings.model_fields if n.startswith("alert_")):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name
    for kind in KINDS:
        assert kind in example, kind
    found = re.search(r'^# ALERT_URLS="(.+)"$', example, re.MULTILINE)
    assert found is not None
    phone, mail = parse_targets(found.group(1))
    assert (phone.name, phone.scheme, phone.min_severity) == ("phone", "tgram", "warning")
    assert mail.kinds >= {"session_halted", "trade_stopped", "backtest_finished"}
    assert not mail.wants("trade_opened", "critical")


def test_a_url_apprise_cannot_use_is_a_config_error_naming_the_target(store: Engine) -> None:
    with pytest.raises(ConfigError, match="apprise cannot use this nosuch:// URL") as info:
        AlertSender(store, config("x=nosuch://SECRETHOST/SECRETPATH"))
    assert "SECRET" not in str(info.value)


# ---------------------------------------------------------------------- delivery
def test_every_alert_of_a_paper_run_reaches_the_webhook_once(
        db_url: str, store: Engine, hooks: Callable[..., Webhook]) -> None:
    hook = hooks()
    settings = make_settings(database_url=db_url, replay_start="2025-10-08")
    session_id = create(store, settings)
    run_ticks(store, settings, 150)
    sender = AlertSender(store, config(f"desk::session_*,trade_*={hook.url()}"))
    try:
        assert sender.drain(60) == 0
        with store.connect() as conn:
            written = dict(conn.execute(select(AlertRow.event_id, AlertRow.title)
                                        .where(AlertRow.session_id == session_id)).all())
        assert len(written) > 5 and any(e.startswith("trade-closed-") for e in written)
        assert sorted(event_ids(hook.messages())) == sorted(written)  # each once
        name = "[AsterDesk · PAPER Paper desk #1] "
        assert sorted(hook.titles()) == sorted(name + t for t in written.values())
        assert {r.status for r in alert_rows(store)} == {"sent"}
        assert {(d.status, d.attempts, d.digest) for d in deliveries(store)} == {("sent", 1, False)}
        assert sender.drain(5) == 0 and len(hook.received) == len(written)  # nothing twice
    finally:
        sender.stop()
    restarted = AlertSender(store, config(f"desk::session_*,trade_*={hook.url()}"))
    try:  # a new process sends nothing again
        assert restarted.drain(5) == 0 and len(hook.received) == len(written)
    finally:
        restarted.stop()


def test_an_alert_reaches_an_smtp_mailbox_as_an_email(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    mailbox = Mailbox()
    try:
        (event_id,) = add_alerts(engine, 1, kind="session_halted")
        sender = AlertSender(engine, config(f"mail:warning={mailbox.url()}"))
        try:
            assert sender.drain(60) == 0
        finally:
            sender.stop()
        assert len(mailbox.mails) == 1
        mail = mailbox.mails[0]
        assert mail["Subject"] == "[AsterDesk] alert 0"
        assert mailbox.envelopes == [("desk@example.com", ["trader@example.com"])]
        assert f"critical · session_halted · event {event_id}" in mailbox.text_of(mail)
        assert [d.status for d in deliveries(engine)] == ["sent"]
    finally:
        mailbox.close()
        engine.dispose()


def test_a_burst_past_the_rate_limit_comes_as_one_digest(
        store: Engine, hooks: Callable[..., Webhook]) -> None:
    hook = hooks()
    clock = Clock()
    sender = AlertSender(store, config(hook.url(), rate_per_minute=3), clock=clock)
    try:
        burst = add_alerts(store, 12)
        assert sender.drain(30) == 0
        assert len(hook.received) == 1
        assert hook.titles() == ["[AsterDesk] 12 alerts at once (digest)"]
        text = hook.messages()[0]
        assert all(f"(event {e})" in text for e in burst) and "12 trade_opened" in text
        assert {(d.status, d.digest) for d in deliveries(store)} == {("sent", True)}

        add_alerts(store, 2, start=100)  # two more fit in what is left of the minute
        assert sender.drain(30) == 0
        assert hook.titles()[1:] == ["[AsterDesk] alert 100", "[AsterDesk] alert 101"]

        add_alerts(store, 1, start=200)  # the minute's budget is spent: it waits
        sender.pump()
        assert len(hook.received) == 3 and sender.due_count() == 1
        clock.advance(61)
        assert sender.drain(30) == 0
        assert hook.titles()[3:] == ["[AsterDesk] alert 200"]
    finally:
        sender.stop()


def test_a_failing_target_is_retried_with_back_off_then_failed_and_the_others_get_it_once(
        store: Engine, hooks: Callable[..., Webhook], caplog: pytest.LogCaptureFixture) -> None:
    good, down = hooks(), hooks("error")
    clock = Clock()
    secret_url = down.url("/hook/TOKEN123", userinfo="bob:s3cretpw@")
    sender = AlertSender(store, config(f"good={good.url()} down={secret_url}", max_attempts=3,
                                       retry_s=10), clock=clock)
    caplog.set_level(logging.DEBUG)
    try:
        add_alerts(store, 1, kind="session_halted")
        sender.drain(10)
        assert len(good.received) == 1 and len(down.received) == 1
        failing = next(d for d in deliveries(store) if d.target == "down")
        assert (failing.status, failing.attempts) == ("pending", 1)
        assert failing.next_ms == clock() + 10_000  # the first back-off
        assert "500" in failing.error
        sender.drain(1)
        assert len(down.received) == 1  # not before its back-off
        clock.advance(10)
        sender.drain(10)
        failing = next(d for d in deliveries(store) if d.target == "down")
        assert (len(down.received), failing.attempts, failing.next_ms) == (2, 2, clock() + 20_000)
        clock.advance(20)
        sender.drain(10)
        failing = next(d for d in deliveries(store) if d.target == "down")
        assert (len(down.received), failing.status, failing.attempts) == (3, "failed", 3)
        clock.advance(3600)
        sender.drain(2)
        assert len(down.received) == 3 and len(good.received) == 1
        alert = alert_rows(store)[0]
        assert alert.status == "failed" and alert.note.startswith("down: ")
        assert all(p == "/hook/TOKEN123" for p in down.paths)
    finally:
        sender.stop()
    stored = " ".join(f"{d.error} {d.target}" for d in deliveries(store)) + alert.note
    # apprise's own lines go to no handler of the desk (pytest alone listens to them)
    assert logging.getLogger("apprise").propagate is False
    ours = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith("apprise"))
    assert "alert to down failed" in ours
    for secret in ("s3cretpw", "TOKEN123"):
        assert secret not in stored and secret not in ours


def test_what_a_crash_left_unsent_or_half_sent_goes_out_after_the_restart_once(
        store: Engine, hooks: Callable[..., Webhook]) -> None:
    hook = hooks()
    urls = f"desk={hook.url()}"
    unsent, half_sent = add_alerts(store, 2, kind="session_created")
    first = AlertSender(store, config(urls), owner="dead")
    first._route(outbox.wall_ms())  # routed, then the process died before any send
    with store.begin() as conn:  # ... and the second one was claimed when it died mid-send
        conn.execute(update(AlertDeliveryRow).where(AlertDeliveryRow.alert_id == select(
            AlertRow.id).where(AlertRow.event_id == half_sent).scalar_subquery()).values(
            status="sending", claimed_by="dead", claimed_ms=outbox.wall_ms() - CLAIM_STALE_MS - 1))
    first.stop()
    restarted = AlertSender(store, config(urls))
    try:
        assert restarted.drain(30) == 0
        assert restarted.drain(2) == 0
    finally:
        restarted.stop()
    assert sorted(event_ids(hook.messages())) == sorted([unsent, half_sent])


def test_a_target_taken_out_of_alert_urls_fails_what_it_had_left(
        store: Engine, hooks: Callable[..., Webhook]) -> None:
    hook = hooks()
    add_alerts(store, 1, kind="session_created")
    AlertSender(store, config(f"old={hook.url()} new={hook.url()}"))._route(outbox.wall_ms())
    sender = AlertSender(store, config(f"new={hook.url()}"))
    try:
        assert sender.drain(10) == 0
    finally:
        sender.stop()
    assert [(d.target, d.status, d.error) for d in deliveries(store)] == [
        ("old", "failed", "this target is no longer in ALERT_URLS"), ("new", "sent", None)]
    assert alert_rows(store)[0].status == "failed" and len(hook.received) == 1


def test_alerts_nobody_wants_are_muted_and_old_ones_expire(
        store: Engine, hooks: Callable[..., Webhook]) -> None:
    hook = hooks()
    clock = Clock()
    add_alerts(store, 1, kind="trade_opened")  # below the target's severity
    add_alerts(store, 1, kind="agent_paused")  # switched off
    sender = AlertSender(store, config(f"x:warning={hook.url()}",
                                       kinds_off=frozenset({"agent_paused"}),
                                       max_age_ms=3_600_000), clock=clock)
    try:
        clock.advance(10)
        sender.drain(5)
        clock.advance(7200)
        add_alerts(store, 1, kind="session_halted", start=50)
        with store.begin() as conn:  # written two hours ago: too old to be worth sending
            conn.execute(update(AlertRow).where(AlertRow.event_id.like("%-50"))
                         .values(created_ms=clock() - 7_200_000))
        sender.drain(5)
    finally:
        sender.stop()
    assert [(a.status, a.note) for a in alert_rows(store)] == [
        ("muted", "no target subscribes to trade_opened at info"),
        ("muted", "kind switched off (ALERT_KINDS_OFF)"),
        ("expired", "waited longer than ALERT_MAX_AGE_HOURS; not sent")]
    assert hook.received == [] and deliveries(store) == []


def test_a_test_message_reports_each_target(hooks: Callable[..., Webhook]) -> None:
    good, down = hooks(), hooks("error")
    results = send_test(config(f"good={good.url()} down={down.url('/SECRETPATH')} "
                               "odd=nosuch://SECRETHOST"))
    assert [r.target for r in results] == ["good (json://…)", "down (json://…)", "odd (nosuch://…)"]
    assert results[0].error is None and good.titles() == ["[AsterDesk] Test alert"]
    assert "500" in str(results[1].error) and "SECRETPATH" not in str(results[1].error)
    assert "apprise cannot use" in str(results[2].error)
    assert all("SECRET" not in str(r) for r in results)


# ---------------------------------------------------------------------- harmless to the tick
def _ticks(engine: Engine, session_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(SessionRow.ticks).where(SessionRow.id == session_id)) or 0)


def _wait(what: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_a_target_that_hangs_or_fails_never_stops_the_ticks(
        sqlite_url: str, hooks: Callable[..., Webhook]) -> None:
    hang, down, good = hooks("hang"), hooks("error"), hooks()
    settings = make_settings(
        database_url=sqlite_url, replay_start="2025-10-08", tick_seconds=0.05,
        alert_urls=SecretStr(f"hang={hang.url()} down={down.url()} good={good.url()}"),
        alert_timeout_seconds=120, alert_retry_seconds=0.05, alert_retry_max_seconds=0.2,
        alert_max_attempts=100, alert_poll_seconds=0.05)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    driver = EngineDriver(settings, engine, session_id=session_id)
    driver.start()
    try:
        _wait(hang.hanging.is_set)  # the first alert's send hangs at one target...
        before = _ticks(engine, session_id)
        _wait(lambda: _ticks(engine, session_id) >= before + 20)  # ... while ticks go on,
        _wait(lambda: len(down.received) >= 3)  # the failing one is retried,
        _wait(lambda: len(good.received) >= 2)  # and the good one keeps receiving
        assert not hang.released.is_set() and len(hang.received) == 1  # still hanging
        assert "session_created" in good.messages()[0]
    finally:
        hang.release()
        driver.stop()
        engine.dispose()
    assert len(set(event_ids(good.messages()))) == len(good.messages())
