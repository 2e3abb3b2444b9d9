"""A study's report: the best feasible trial, its DSR over the evaluated trials only (repeated
points and surplus numbers are not trials), and PBO over their daily returns."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from core.research.overfitting import deflated_sharpe, moments, probability_of_backtest_overfitting
from core.research.report import best_trial, study_report


def _trial(number: int, value: float, daily: list[float], *, feasible: bool = True,
           **extra: object) -> optuna.trial.FrozenTrial:
    t = create_trial(state=TrialState.COMPLETE, value=value, params={"x": float(number)},
                     distributions={"x": FloatDistribution(0, 100)},
                     user_attrs={"daily_returns": daily, "return": value, "sharpe": value,
                                 "constraint": [-1.0, -1.0] if feasible else [0.5, -1.0],
                                 **extra})
    t.number = number
    return t


def test_best_is_feasible_and_dsr_counts_evaluated_trials_only() -> None:
    rng = np.random.default_rng(5)
    series = [rng.normal(0.001 * i, 0.01, 40).tolist() for i in range(5)]
    trials = [_trial(i, float(i), s) for i, s in enumerate(series)]
    trials.append(_trial(5, 99.0, series[0], feasible=False))  # best value, but over the cap
    trials.append(_trial(6, 4.0, series[4], duplicate_of=4))  # a repeated point: no new trial
    surplus = create_trial(state=TrialState.PRUNED, user_attrs={"surplus": True})
    surplus.number = 7
    trials.append(surplus)
    assert best_trial(trials).number == 4
    rep = study_report(trials, 7)
    assert rep["best"]["number"] == 4 and rep["infeasible"] == 1 and rep["duplicates"] == 1
    assert "pruned" not in rep["states"]  # the surplus number ran nothing
    sel = rep["selection"]
    pool = [*series, series[0]]  # five evaluated trials and the infeasible one
    variance = float(np.var([moments(s).sharpe for s in pool], ddof=1))
    assert sel["n_trials"] == 6
    assert sel["dsr"] == pytest.approx(deflated_sharpe(series[4], n_trials=6,
                                                       sharpe_variance=variance).dsr)
    assert sel["pbo"] == pytest.approx(
        probability_of_backtest_overfitting(np.column_stack(pool)).pbo)
