"""Studies and walk-forwards started from the dashboard run as their own command.

A search keeps every core busy for minutes and its workers are processes, so the page never
runs one in the server: the request is validated here first (agents, range and data, the name
free), then ``python -m core optimize|walkforward ...`` starts detached with the same
``DATABASE_URL``, writing its output to a log file beside the studies. The page follows it by
reading the study from the database, like a study started from a terminal or another machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.config import PROJECT_ROOT, Settings
from core.errors import ConfigError, NotFound
from core.research import study as studies
from core.research.trial import StudySpec, TrialRunner
from core.research.walkforward import plan

MAX_WORKERS = 16


@dataclass(frozen=True, slots=True)
class Started:
    name: str
    pid: int
    log: str
    command: list[str]


def _check_new(settings: Settings, name: str, workers: int, trials: int) -> None:
    if not name.strip():
        raise ConfigError("give the study a name")
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be between 1 and {MAX_WORKERS}, got {workers}")
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, got {trials}")
    try:
        studies.load(settings.database_url, name)
    except NotFound:
        return
    raise ConfigError(f"a study named {name!r} exists; choose another name")


def _args(spec: StudySpec) -> list[str]:
    out = ["--agents", ",".join(spec.agents), "--from", spec.start, "--to", spec.end,
           "--interval", spec.interval, "--symbols", ",".join(spec.symbols),
           "--capital", repr(spec.capital), "--data", spec.data_dir,
           "--objective", spec.objective]
    if spec.max_drawdown is not None:
        out += ["--max-drawdown", repr(spec.max_drawdown * 100)]
    if spec.min_trades is not None:
        out += ["--min-trades", str(spec.min_trades)]
    if spec.seed is not None:
        out += ["--seed", str(spec.seed)]
    if not spec.ceo:
        out.append("--no-ceo")
    return out


def _launch(settings: Settings, name: str, argv: list[str]) -> Started:
    folder = Path(tempfile.gettempdir()) / "desk-research"
    folder.mkdir(exist_ok=True)
    safe = "".join(c if c.isalnum() else "-" for c in name)[:60]
    log = folder / f"{safe}-{os.getpid()}-{len(list(folder.iterdir()))}.log"
    command = [sys.executable, "-m", "core", *argv]
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return Started(name, proc.pid, str(log), command)


def start_study(settings: Settings, name: str, spec: StudySpec, *, trials: int,
                workers: int) -> Started:
    """Validate, then run ``optimize`` in its own process."""
    _check_new(settings, name, workers, trials)
    TrialRunner(settings, spec)  # the range and the data are checked before anything starts
    return _launch(settings, name, ["optimize", "--study", name, *_args(spec),
                                    "--trials", str(trials), "--workers", str(workers)])


def start_walkforward(settings: Settings, name: str, spec: StudySpec, *, train: int, test: int,
                      step: int, trials: int, workers: int) -> Started:
    """Validate (every window fits the data), then run ``walkforward`` in its own process."""
    _check_new(settings, name, workers, trials)
    TrialRunner(settings, spec)
    plan(spec.start, spec.end, train, test, step)
    return _launch(settings, name, ["walkforward", "--study", name, *_args(spec),
                                    "--train", f"{train}d", "--test", f"{test}d",
                                    "--step", f"{step}d", "--trials", str(trials),
                                    "--workers", str(workers)])
