"""``./desk alerts`` as a user runs it (a real subprocess): the targets shown masked, a test
message to each target with its result, what is pending sent, and the failures listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alert_receivers import Webhook
from tests.test_cli import cli_env, ok, refused, run_cli


@pytest.fixture
def hooks() -> Iterator[tuple[Webhook, Webhook]]:
    good, down = Webhook(), Webhook(mode="error")
    yield good, down
    good.close()
    down.close()


def test_alerts_without_targets_list_the_outbox_and_refuse_a_test(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'desk.db'}")
    ok(run_cli(env, "session", "create"))
    shown = ok(run_cli(env, "alerts"))
    assert "alert targets: none (set ALERT_URLS" in shown
    assert "session_created" in shown and "pending" in shown and "Session 1 created" in shown
    refused(run_cli(env, "alerts", "test"), "no alert target: set ALERT_URLS")
    env["ALERT_URLS"] = "x::nosuch_kind=json://127.0.0.1:9/SECRETPATH"
    shown = ok(run_cli(env, "alerts"))
    assert "ALERT_URLS is not usable" in shown and "no alert kind 'nosuch_kind'" in shown
    assert "SECRETPATH" not in shown


def test_alerts_test_send_and_list_report_each_target_with_secrets_masked(
        tmp_path: Path, hooks: tuple[Webhook, Webhook]) -> None:
    good, down = hooks
    env = cli_env(f"sqlite:///{tmp_path / 'desk.db'}")
    env["ALERT_URLS"] = (f"good:info:session_*={good.url('/hook/GOODTOKEN')} "
                         f"down={down.url('/hook/DOWNTOKEN', userinfo='bob:s3cret@')}")
    env["ALERT_RETRY_SECONDS"] = "600"
    tested = run_cli(env, "alerts", "test")
    assert tested.returncode == 1, tested.stdout + tested.stderr
    lines = tested.stdout.splitlines()
    assert lines[0].startswith("good (json://…) [JSON]: sent in ")
    assert lines[1].startswith("down (json://…) [JSON]: FAILED: ") and "500" in lines[1]
    assert good.titles() == ["[AsterDesk] Test alert"] and len(down.received) == 1

    ok(run_cli(env, "session", "create"))
    sent = ok(run_cli(env, "alerts", "send", "--wait", "30"))
    assert "1 waiting for a target" in sent
    assert good.titles()[1:] == ["[AsterDesk · PAPER Paper desk #1] Session 1 created"]
    ok(run_cli(env, "alerts", "send", "--wait", "5"))  # another process: nothing goes twice
    assert len(good.received) == 2 and len(down.received) == 2
    problems = ok(run_cli(env, "alerts", "--problems"))
    assert "good (json://…) info and worse, session_created" in problems
    assert "good: sent; down: pending after 1 try, retry at " in problems
    assert "error=500" in problems
    listed = json.loads(ok(run_cli(env, "alerts", "--json")))
    assert listed["counts"]["routed"] == 1
    (alert,) = listed["alerts"]
    assert [(d["target"], d["status"]) for d in alert["deliveries"]] == [
        ("good", "sent"), ("down", "pending")]
    everything = tested.stdout + sent + problems + json.dumps(listed)
    for secret in ("GOODTOKEN", "DOWNTOKEN", "s3cret"):
        assert secret not in everything


def test_engine_ticks_sends_the_alerts_of_its_run(tmp_path: Path,
                                                  hooks: tuple[Webhook, Webhook]) -> None:
    good, _down = hooks
    env = cli_env(f"sqlite:///{tmp_path / 'desk.db'}")
    env["ALERT_URLS"] = f"good:info:session_*,trade_*={good.url('/hook/GOODTOKEN')}"
    ok(run_cli(env, "session", "create"))
    ran = run_cli(env, "engine", "--ticks", "40")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    listed = json.loads(ok(run_cli(env, "alerts", "--json")))
    trades = [a for a in listed["alerts"] if a["kind"].startswith("trade_")]
    assert trades, "the run opened no trade to alert"
    # every alert of the run went out before the command returned (a burst goes as a digest)
    assert {d["status"] for a in listed["alerts"] for d in a["deliveries"]} == {"sent"}
    said = " ".join(good.titles() + good.messages())
    assert "Session 1 created" in said and "Opened" in said, said[:500]
