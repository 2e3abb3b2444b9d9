"""A study: Optuna's TPE search over the chosen agents' parameters, run by worker processes.

Promises:
- the study, its spec (agents, range, objective, constraints) and every trial live in the desk's
  database (``core.research.storage``), so ``--join`` from any process with the same
  ``DATABASE_URL`` adds workers to it;
- ``trials`` is the study's total: trial numbers are handed out by the storage, a worker runs a
  trial only while its number is below the total, so N trials are run once each whatever the
  number of workers (a number drawn in a race past the total is closed at once, marked
  ``surplus``, and runs nothing);
- each worker samples with TPE under ``constant_liar`` (a running trial counts as a bad result,
  so a parallel worker does not propose a point beside it) and its own seed (derived from the
  study's seed and the worker's index, so a seeded single-worker study is reproducible); a point
  already evaluated is not run again (the earlier value is reused, ``duplicate_of``);
- a point the parameter model refuses (``InvalidParams``) is pruned with the reason; a trial
  over ``max_drawdown`` or under ``min_trades`` is infeasible for the sampler and never best;
- Ctrl-C stops cleanly: the workers finish their running trial and stop; a second Ctrl-C
  abandons the running trials (marked failed). Finished trials are always kept.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import socket
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.config import Settings
from core.errors import ConfigError, DeskError, InvalidParams, NotFound, StoreError
from core.research import agents as agent_config
from core.research.storage import open_storage
from core.research.trial import StudySpec, TrialRunner

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, Trial

    from core.agents.desk_params import SearchParam

log = logging.getLogger(__name__)
SPEC_ATTR = "desk_spec"
TRIALS_ATTR = "desk_trials"
# trial numbers below it run: the total plus the surplus numbers drawn before a join raised it
NUMBERS_ATTR = "desk_trial_numbers"
KIND_ATTR = "desk_kind"  # "study", "walkforward" (the report) or "window" (one training window)
PARENT_ATTR = "desk_parent"
POLL_S = 0.5
INFEASIBLE = (1.0, 1.0)


@dataclass(frozen=True, slots=True)
class Progress:
    finished: int  # complete, pruned or failed (surplus trials excluded)
    running: int
    total: int
    best: float | None


def worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def create(database_url: str, name: str, spec: StudySpec, trials: int, *, kind: str = "study",
           parent: str | None = None) -> optuna.Study:
    """A new study (refused when the name is taken: ``--join`` adds workers to one)."""
    import optuna

    _quiet_optuna()
    _check_name(name)
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    storage = open_storage(database_url)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(f"a study named {name!r} exists: add --join to run more workers on it, "
                          "or choose another name") from None
    study.set_user_attr(SPEC_ATTR, spec.to_json())
    study.set_user_attr(TRIALS_ATTR, trials)
    study.set_user_attr(NUMBERS_ATTR, trials)
    study.set_user_attr(KIND_ATTR, kind)
    if parent:
        study.set_user_attr(PARENT_ATTR, parent)
    return study


def load(database_url: str, name: str) -> optuna.Study:
    import optuna

    _quiet_optuna()
    try:
        return optuna.load_study(study_name=name, storage=open_storage(database_url))
    except KeyError:
        raise NotFound(f"no study named {name!r}") from None


def spec_of(study: optuna.Study) -> StudySpec:
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise StoreError(f"study {study.study_name!r} was not made by the desk (no spec)")
    return StudySpec.from_json(raw)


def join(database_url: str, name: str, trials: int | None, expect: dict[str, Any]) -> optuna.Study:
    """An existing study to run more workers on. ``expect``: options given on the command line,
    each must match the study's spec (a join never changes what is searched); a larger
    ``trials`` raises the study's total."""
    study = load(database_url, name)
    spec = spec_of(study)
    for key, value in expect.items():
        if value is not None and getattr(spec, key) != value:
            raise ConfigError(f"study {name!r} searches {key} = {getattr(spec, key)!r}, not "
                              f"{value!r}: a join runs the study as it was created")
    if trials is not None and trials > int(study.user_attrs[TRIALS_ATTR]):
        surplus = claimed(study) - len(real_trials(study))  # numbers that ran nothing
        study.set_user_attr(NUMBERS_ATTR, trials + surplus)
        study.set_user_attr(TRIALS_ATTR, trials)
    return study


def number_limit(study: optuna.Study) -> int:
    """Trial numbers below this run; a number drawn at or past it is surplus (read afresh, so a
    join that raises the total reaches workers already running)."""
    attrs = study.user_attrs
    return int(attrs.get(NUMBERS_ATTR, attrs[TRIALS_ATTR]))


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > 200:
        raise ConfigError("a study needs a name of 1 to 200 characters")


def worker_seed(seed: int | None, index: int, salt: int) -> int | None:
    """Each worker's own sampler seed: distinct across the workers of one command (index) and
    across commands joining one study (salt, random per join)."""
    if seed is None:
        return None
    return zlib.crc32(f"{seed}:{index}:{salt}".encode())


CONSTRAINTS = ("max_drawdown", "min_trades")


def _constraints(trial: FrozenTrial) -> tuple[float, ...]:
    return tuple(trial.user_attrs.get("constraint", INFEASIBLE))


def _set_constraints(trial: Trial, values: tuple[float, ...] | list[float]) -> None:
    """For the sampler (``Trial.set_constraint``: ≤ 0 is feasible) and for the report."""
    trial.set_user_attr("constraint", list(values))
    for key, value in zip(CONSTRAINTS, values, strict=True):
        trial.set_constraint(key, value)


def sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    import optuna

    _quiet_optuna()
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def suggest(trial: Trial, p: SearchParam) -> Any:
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices or ()))
    if p.low is None or p.high is None:
        raise ConfigError(f"parameter {p.name} has no search range")
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high),
                                 step=1 if p.log else int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, float(p.low), float(p.high),
                               step=None if p.log else p.step, log=p.log)


def claimed(study: optuna.Study) -> int:
    """Trials handed out so far (every state)."""
    return len(study.get_trials(deepcopy=False))


def real_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial but the surplus ones (numbers drawn past the total, which ran nothing)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]


class _Objective:
    def __init__(self, runner: TrialRunner, space: list[SearchParam]) -> None:
        self.runner = runner
        self.space = space
        self.me = worker_id()

    def __call__(self, trial: Trial) -> float:
        import optuna
        from optuna.trial import TrialState

        trial.set_user_attr("worker", self.me)
        if trial.number >= number_limit(trial.study):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study already has its trials")
        values = {p.name: suggest(trial, p) for p in self.space}
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.params == values and not done.user_attrs.get("surplus"):
                for key, value in done.user_attrs.items():
                    if key not in ("worker", "duplicate_of", "constraint"):
                        trial.set_user_attr(key, value)
                _set_constraints(trial, _constraints(done))
                trial.set_user_attr("duplicate_of", done.number)
                return float(done.value)  # type: ignore[arg-type]
        try:
            outcome = self.runner.run(values)
        except InvalidParams as exc:
            trial.set_user_attr("invalid", str(exc))
            _set_constraints(trial, INFEASIBLE)
            raise optuna.TrialPruned(str(exc)) from None
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
            raise
        for key, value in outcome.attrs().items():
            trial.set_user_attr(key, value)
        _set_constraints(trial, outcome.violations(self.runner.spec))
        return outcome.value(self.runner.spec.objective)


def worker_main(settings: Settings, name: str, index: int, salt: int, stop: Any) -> None:
    """One worker process: run trials until the study has its total or ``stop`` is set."""
    import optuna

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how Ctrl-C stops us
    _quiet_optuna()
    try:
        storage = open_storage(settings.database_url, heartbeat=True)
        seed = spec_of(load(settings.database_url, name)).seed
        study = optuna.load_study(study_name=name, storage=storage,
                                  sampler=sampler(worker_seed(seed, index, salt)))
        spec = spec_of(study)
        runner = TrialRunner(settings, spec)
        space = agent_config.search_space(spec.agents)
        objective = _Objective(runner, space)

        def enough(study: optuna.Study, _trial: FrozenTrial) -> None:
            if stop.is_set() or claimed(study) >= number_limit(study):
                study.stop()

        if claimed(study) < number_limit(study) and not stop.is_set():
            study.optimize(objective, callbacks=[enough], catch=(Exception,),
                           gc_after_trial=False)
    except DeskError as exc:
        print(f"error: study worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)


def progress_of(study: optuna.Study) -> Progress:
    from optuna.trial import TrialState

    finished = running = 0
    best: float | None = None
    for t in real_trials(study):
        if t.state == TrialState.RUNNING:
            running += 1
        elif t.state.is_finished():
            finished += 1
            if (t.state == TrialState.COMPLETE and t.value is not None
                    and max(_constraints(t)) <= 0 and (best is None or t.value > best)):
                best = t.value
    return Progress(finished, running, int(study.user_attrs.get(TRIALS_ATTR, 0)), best)


def run_workers(settings: Settings, name: str, workers: int, *,
                on_progress: Callable[[Progress], None] | None = None,
                salt: int = 0) -> bool:
    """Run ``workers`` processes on study ``name`` until it has its trials; False when
    interrupted by Ctrl-C (finished trials kept). A worker that fails to start raises."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=worker_main, args=(settings, name, i, salt, stop),
                         name=f"desk-study-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    study = load(settings.database_url, name)
    finished = True
    try:
        while alive := [p for p in procs if p.is_alive()]:
            mp_connection.wait([p.sentinel for p in alive], timeout=POLL_S)
            if on_progress is not None:
                on_progress(progress_of(study))
    except KeyboardInterrupt:
        finished = False
        stop.set()
        print("\nstopping: the workers finish their running trial (Ctrl-C again abandons it)",
              file=sys.stderr)
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            for p in procs:
                p.join()
            abandon(study, {worker_id(p.pid) for p in procs})
    if on_progress is not None:
        on_progress(progress_of(study))
    failed = [p for p in procs if p.exitcode not in (0, None) and p.exitcode != -signal.SIGTERM]
    if failed and finished:
        raise DeskError(f"{len(failed)} of {workers} study workers stopped with an error (see "
                        "above); finished trials are kept: --join resumes")
    return finished


def abandon(study: optuna.Study, workers: set[str]) -> int:
    """Mark failed the running trials of ``workers`` (killed on a second Ctrl-C)."""
    from optuna.trial import TrialState

    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") in workers:
            with contextlib.suppress(Exception):  # another process may have closed it meanwhile
                study._storage.set_trial_user_attr(t._trial_id, "error", "abandoned (Ctrl-C)")
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                count += 1
    return count


def wait_until_done(study: optuna.Study, timeout_s: float) -> Progress:
    """Poll until the study's trials are all finished (tests and scripts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        p = progress_of(study)
        if (p.finished >= p.total and p.running == 0) or time.monotonic() > deadline:
            return p
        time.sleep(POLL_S)
