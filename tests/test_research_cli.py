"""``python -m core optimize`` / ``walkforward`` as a user runs them (real subprocesses): a study
runs, reports in-sample with DSR and PBO, lists, joins; bad requests are one error line and
store nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import cli_env, ok, refused, run_cli

RANGE = ("--agents", "trend", "--from", "2025-10-01", "--to", "2025-10-05", "--interval", "1h",
         "--symbols", "BTCUSDT,ETHUSDT")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"sqlite:///{tmp_path / 'desk.db'}")


def test_optimize_runs_reports_lists_and_joins(env: dict[str, str], tmp_path: Path) -> None:
    out = ok(run_cli(env, "optimize", "--study", "t", *RANGE, "--trials", "3", "--seed", "4",
                     "--max-drawdown", "30"))
    assert "study t: 3/3 trials" in out
    assert "IN SAMPLE" in out and "Deflated Sharpe" in out and "PBO" in out
    assert (tmp_path / "desk.studies.db").exists()
    listed = json.loads(ok(run_cli(env, "optimize", "--list", "--json")))
    assert [(r["name"], r["finished"], r["total"]) for r in listed] == [("t", 3, 3)]
    joined = json.loads(ok(run_cli(env, "optimize", "--study", "t", "--join", "--trials", "4",
                                   "--json")))
    assert joined["finished"] == 4 and joined["report"]["states"]["complete"] + \
        joined["report"]["states"].get("pruned", 0) == 4
    refused(run_cli(env, "optimize", "--study", "t", *RANGE, "--trials", "3"), "exists", "--join")
    finished = _alerts(env)  # each run that ended (first 3, then the join's 4) is one alert
    assert [(a.kind, a.severity, a.title) for a in finished] == [
        ("study_finished", "info", "Study 't' done: 3/3 trials"),
        ("study_finished", "info", "Study 't' done: 4/4 trials")]
    assert "IN SAMPLE" in finished[0].body and "Deflated Sharpe" in finished[0].body
    refused(run_cli(env, "optimize", "--study", "t", "--join", "--objective", "calmar"),
            "objective")


def _alerts(env: dict[str, str]) -> list[Any]:
    from sqlalchemy import select

    from core.store.db import open_database
    from core.store.tables import AlertRow

    engine = open_database(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(AlertRow).order_by(AlertRow.id)))
    finally:
        engine.dispose()


def test_bad_requests_are_refused_in_one_line(env: dict[str, str]) -> None:
    refused(run_cli(env, "optimize", "--study", "x", "--trials", "3"), "--agents")
    refused(run_cli(env, "optimize", "--study", "x", *RANGE[:2], "--from", "2025-10-01", "--to",
                    "2030-01-01", "--trials", "3"), "after the end of the data")
    refused(run_cli(env, "optimize", "--study", "x", "--agents", "nobody", "--from",
                    "2025-10-01", "--to", "2025-10-05", "--trials", "3"), "unknown agent")
    refused(run_cli(env, "optimize", "--study", "nope", "--join"), "no study")
    refused(run_cli(env, "walkforward", "--study", "w", *RANGE, "--train", "90d", "--test",
                    "30d", "--trials", "2"), "no walk-forward window fits")
    refused(run_cli(env, "walkforward", "--study", "w", *RANGE, "--train", "ninety",
                    "--trials", "2"), "--train")
    assert json.loads(ok(run_cli(env, "optimize", "--list", "--json"))) == []


def test_walkforward_reports_out_of_sample_first(env: dict[str, str]) -> None:
    out = ok(run_cli(env, "walkforward", "--study", "wf", *RANGE, "--train", "2d", "--test",
                     "1d", "--trials", "2", "--seed", "1"))
    lines = out.splitlines()
    assert lines[0].startswith("walk-forward: 3 windows")
    assert lines[1].startswith("OUT OF SAMPLE (tuned)")
    assert any(line.strip().startswith("defaults, out of sample") for line in lines)
    assert any(line.strip().startswith("buy and hold") for line in lines)
    [alert] = _alerts(env)
    assert (alert.kind, alert.title) == ("study_finished", "Walk-forward 'wf' done: 6/6 trials")
    assert alert.body.splitlines()[1].startswith("OUT OF SAMPLE (tuned)")


def test_ctrl_c_stops_cleanly_and_keeps_finished_trials(env: dict[str, str]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.config import PROJECT_ROOT
    from core.research import study as studies

    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "optimize", "--study", "long", *RANGE, "--trials", "500",
         "--workers", "2"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = env["DATABASE_URL"]
    deadline = time.monotonic() + 120
    finished = 0
    while time.monotonic() < deadline and finished < 2:
        time.sleep(1)
        try:
            finished = studies.progress_of(studies.load(url, "long")).finished
        except Exception:  # the study is not created yet
            finished = 0
    assert finished >= 2
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished trials are kept" in err and "Traceback" not in err
    trials = studies.load(url, "long").get_trials(deepcopy=False)
    assert 2 <= len(trials) < 500
    assert all(t.state.is_finished() for t in trials)  # nothing left running
    assert "study long:" in out
