"""Studies: worker processes share one study in the desk's database, each trial is one backtest
run once, a seeded single-worker study is reproducible, a refused point is pruned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from core.errors import ConfigError
from core.research import study as studies
from core.research.trial import StudySpec, TrialRunner
from tests.conftest import PROJECT_ROOT, make_settings

DATA = str(PROJECT_ROOT / "data" / "klines")
SPEC = StudySpec(agents=("trend",), start="2025-10-01", end="2025-10-06", interval="1h",
                 symbols=("BTCUSDT", "ETHUSDT"), capital=100_000.0, data_dir=DATA, seed=11)


def _run(url: str, name: str, trials: int, workers: int, spec: StudySpec = SPEC) -> optuna.Study:
    settings = make_settings(database_url=url)
    studies.create(url, name, spec, trials)
    assert studies.run_workers(settings, name, workers)
    return studies.load(url, name)


def _check_each_trial_ran_once(study: optuna.Study, n: int) -> None:
    trials = study.get_trials(deepcopy=False)
    real = [t for t in trials if not t.user_attrs.get("surplus")]
    assert len(real) == n  # none lost, none run past the total
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in real)
    assert all(not t.params for t in trials if t.user_attrs.get("surplus"))  # ran nothing
    points = Counter(tuple(sorted(t.params.items())) for t in real
                     if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs)
    assert max(points.values()) == 1  # no point backtested twice


@pytest.mark.postgres
def test_two_workers_on_one_postgres_study(pg_url: str) -> None:
    study = _run(pg_url, "pg two workers", 10, 2)
    _check_each_trial_ran_once(study, 10)
    workers = {t.user_attrs["worker"] for t in study.get_trials(deepcopy=False)}
    assert len(workers) == 2  # both processes took trials
    # a join with the same total runs nothing more; a larger one adds exactly the difference
    settings = make_settings(database_url=pg_url)
    studies.join(pg_url, "pg two workers", 12, {"objective": "sharpe"})
    assert studies.run_workers(settings, "pg two workers", 2, salt=5)
    _check_each_trial_ran_once(studies.load(pg_url, "pg two workers"), 12)


def test_seeded_single_worker_study_is_reproducible(sqlite_url: str) -> None:
    a = _run(sqlite_url, "seeded a", 6, 1)
    b = _run(sqlite_url, "seeded b", 6, 1)
    _check_each_trial_ran_once(a, 6)
    assert Path(sqlite_url.removeprefix("sqlite:///")).with_name("desk.studies.db").exists()

    def trace(s: optuna.Study) -> list[tuple[int, str, dict, float | None]]:
        return [(t.number, t.state.name, t.params, t.value) for t in s.trials]

    assert trace(a) == trace(b)
    assert len({tuple(sorted(t.params.items())) for t in a.trials}) > 1  # it did search


def test_a_name_is_taken_once_and_a_join_keeps_the_spec(sqlite_url: str) -> None:
    studies.create(sqlite_url, "s", SPEC, 3)
    with pytest.raises(ConfigError, match="--join"):
        studies.create(sqlite_url, "s", SPEC, 3)
    with pytest.raises(ConfigError, match="objective"):
        studies.join(sqlite_url, "s", None, {"objective": "calmar"})


def test_a_join_after_a_surplus_number_still_runs_exactly_the_new_total(sqlite_url: str) -> None:
    """Two workers racing to the total can draw a number past it (surplus, ran nothing); raising
    the total later must still run as many real trials as it says."""
    study = _run(sqlite_url, "surplus then join", 2, 1)
    extra = study.ask()  # what the losing worker of a race leaves behind
    extra.set_user_attr("surplus", True)
    study.tell(extra, state=TrialState.PRUNED)
    studies.join(sqlite_url, "surplus then join", 4, {"objective": "sharpe"})
    assert studies.run_workers(make_settings(database_url=sqlite_url), "surplus then join", 1)
    _check_each_trial_ran_once(studies.load(sqlite_url, "surplus then join"), 4)


def test_a_refused_point_is_pruned_with_its_reason() -> None:
    runner = TrialRunner(make_settings(), SPEC)
    from core.research.agents import search_space

    objective = studies._Objective(runner, search_space(SPEC.agents))
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(studies.TRIALS_ATTR, 5)
    defaults = {p.name: p.default for p in search_space(SPEC.agents)}
    study.enqueue_trial({**defaults, "trend.fast_ema": 20, "trend.slow_ema": 13})
    study.enqueue_trial(defaults)
    study.enqueue_trial(defaults)
    study.optimize(objective, n_trials=3)
    pruned, first, again = study.trials
    assert pruned.state == TrialState.PRUNED and "slow" in pruned.user_attrs["invalid"]
    assert first.state == TrialState.COMPLETE and first.user_attrs["daily_returns"]
    assert again.user_attrs["duplicate_of"] == first.number and again.value == first.value


def test_constraints_make_a_trial_infeasible() -> None:
    spec = StudySpec(**{**_fields(SPEC), "min_trades": 10_000, "max_drawdown": 0.5})
    outcome = TrialRunner(make_settings(), spec).run({})
    short, trades = outcome.violations(spec)[1], outcome.trades
    assert short == 10_000 - trades > 0
    assert outcome.violations(spec)[0] < 0  # nowhere near a 50% drawdown in five days


def _fields(spec: StudySpec) -> dict:
    from dataclasses import asdict

    out = asdict(spec)
    out["agents"], out["symbols"] = spec.agents, spec.symbols
    return out


def test_abandoned_trials_are_marked_failed_not_left_running(sqlite_url: str) -> None:
    study = studies.create(sqlite_url, "abandon", SPEC, 3)
    mine = study.ask()
    mine.set_user_attr("worker", "host:1")
    other = study.ask()
    other.set_user_attr("worker", "host:2")
    assert studies.abandon(study, {"host:1"}) == 1
    states = {t.number: t.state for t in studies.load(sqlite_url, "abandon").trials}
    assert states == {mine.number: TrialState.FAIL, other.number: TrialState.RUNNING}
    assert studies.load(sqlite_url, "abandon").trials[0].user_attrs["error"] == "abandoned (Ctrl-C)"
