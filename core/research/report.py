"""What a finished study says, with its own verdict on overfitting.

From the study's trials (their figures and daily returns are stored as user attributes): the
counts by state, the best feasible trial (the constraints hold, highest objective), its Deflated
Sharpe Ratio (N = the trials evaluated, the variance of their daily Sharpe ratios) and the PBO by
CSCV over the matrix of every evaluated trial's daily returns. These are in-sample figures: the
study chose its best on the very days it reports, which is why ``walkforward`` exists.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ConfigError
from core.research.overfitting import (
    deflated_sharpe,
    moments,
    probability_of_backtest_overfitting,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

FIGURES = ("return", "sharpe", "sortino", "calmar", "max_drawdown", "trades", "fees", "funding")


def feasible(t: FrozenTrial) -> bool:
    return max(t.user_attrs.get("constraint", (1.0,))) <= 0


def evaluated(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Complete trials with their own backtest (duplicates reuse another's and are left out)."""
    return [t for t in trials if t.state.name == "COMPLETE" and "daily_returns" in t.user_attrs
            and "duplicate_of" not in t.user_attrs]


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    pool = [t for t in evaluated(trials) if feasible(t) and t.value is not None]
    return max(pool, key=lambda t: (t.value, -t.number)) if pool else None


def trial_row(t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value,
            **{k: a.get(k) for k in FIGURES}, "feasible": feasible(t),
            "params": dict(t.params), "note": a.get("invalid") or a.get("error")
            or (f"same point as trial {a['duplicate_of']}" if "duplicate_of" in a else None)}


def selection_stats(trials: Sequence[FrozenTrial], chosen: FrozenTrial) -> dict[str, Any]:
    """DSR of ``chosen`` among the evaluated ``trials`` and their PBO (None when too few)."""
    pool = evaluated(trials)
    series = [np.asarray(t.user_attrs["daily_returns"], dtype=float) for t in pool]
    out: dict[str, Any] = {"n_trials": len(pool), "dsr": None, "sr0_daily": None, "pbo": None,
                           "pbo_splits": None, "why": None}
    mine = np.asarray(chosen.user_attrs["daily_returns"], dtype=float)
    if mine.size < 3:
        out["why"] = "fewer than 3 days of returns"
        return out
    sharpes = [moments(s).sharpe for s in series if s.size >= 2]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else 0.0
    d = deflated_sharpe(mine, n_trials=max(1, len(pool)), sharpe_variance=variance)
    out |= {"dsr": d.dsr, "sr0_daily": d.sr0, "sharpe_daily": d.sharpe, "skew": d.skew,
            "sharpe_variance": variance,
            "kurtosis": d.kurtosis, "days": d.n_obs}
    lengths = {s.size for s in series}
    if len(pool) >= 2 and len(lengths) == 1:
        try:
            pbo = probability_of_backtest_overfitting(np.column_stack(series))
            out |= {"pbo": pbo.pbo, "pbo_splits": pbo.n_splits, "pbo_blocks": pbo.n_blocks}
        except ConfigError as exc:
            out["why"] = f"no PBO: {exc}"
    elif len(pool) < 2:
        out["why"] = "no PBO: it needs at least 2 evaluated trials"
    return out


def study_report(trials: Sequence[FrozenTrial], total: int) -> dict[str, Any]:
    real = [t for t in trials if not t.user_attrs.get("surplus")]
    states = Counter(t.state.name.lower() for t in real)
    best = best_trial(real)
    report: dict[str, Any] = {
        "total": total, "states": dict(states),
        "infeasible": sum(1 for t in evaluated(real) if not feasible(t)),
        "duplicates": sum(1 for t in real if "duplicate_of" in t.user_attrs),
        "best": trial_row(best) if best is not None else None, "selection": None,
    }
    if best is not None:
        report["selection"] = selection_stats(real, best)
    errors = [t.user_attrs["error"] for t in real if t.user_attrs.get("error")]
    report["errors"] = errors[:5]
    return report
