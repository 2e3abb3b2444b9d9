"""The Session page's alerts section, through AppTest: the targets shown masked, the deliveries
that failed listed, and the button that sends a test alert to every target and says how each
went (against real loopback webhooks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import service
from core.config import get_settings
from tests.alert_receivers import Webhook
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, app_env: str) -> Iterator[tuple[Webhook, Webhook]]:
    good, down = Webhook(), Webhook(mode="error")
    monkeypatch.setenv("ALERT_URLS", f"phone:warning={good.url('/hook/GOODTOKEN')} "
                                     f"mail={down.url('/hook/DOWNTOKEN')}")
    monkeypatch.setenv("ALERT_RETRY_SECONDS", "600")
    get_settings.cache_clear()
    yield good, down
    good.close()
    down.close()


def shown(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("caption", "error", "warning", "success", "markdown")
             for e in at.get(kind)]
    parts += [e.label for e in at.get("expander")]
    for frame in at.dataframe:
        parts.append(frame.value.to_string())
    return "\n".join(parts)


def test_without_targets_the_section_says_how_to_set_them(app_env: str, db: Engine) -> None:
    create(db, make_settings(database_url=app_env))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No alert targets: set ALERT_URLS" in shown(at)
    assert "Send test alert" not in [b.label for b in at.button]


def test_failures_show_masked_and_the_button_tests_every_target(
        app_env: str, db: Engine, hooks: tuple[Webhook, Webhook]) -> None:
    good, down = hooks
    settings = get_settings()
    session_id = create(db, make_settings(database_url=app_env))
    run_ticks(db, make_settings(database_url=app_env), 3)
    service.change_session(db, session_id, "pause")
    service.send_pending_alerts(db, settings, timeout_s=30)
    assert len(down.received) >= 2 and good.received == []  # info alerts: below the phone's

    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    page = shown(at)
    assert "Alerts — 2 with a failed delivery" in page
    assert "**phone (json://…)** (warning and worse, every kind)" in page
    assert "mail: pending after 1 try, retry at" in page and "error=500" in page
    assert "Session 1 paused" in page

    next(b for b in at.button if b.label == "Send test alert").click().run()
    assert not at.exception, [e.value for e in at.exception]
    page = shown(at)
    assert "Test alert sent to phone (json://…) (JSON) in" in page
    assert "Test alert to mail (json://…) (JSON) failed:" in page
    assert good.titles() == ["[AsterDesk] Test alert"]
    for secret in ("GOODTOKEN", "DOWNTOKEN"):
        assert secret not in page
