"""Read-only views of the studies and walk-forwards in the desk's studies database.

The CLI and the Research page read through here: the list of studies (kind, progress, best),
one study's report (its best trials, the DSR and PBO of its best), a walk-forward's stored
report, and Optuna's own Plotly charts (optimisation history, parameter importances). Nothing
here writes. Optuna is imported on first use, so the other pages never load it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from core.errors import NotFound

if TYPE_CHECKING:
    import plotly.graph_objects as go

SUMMARY_KEYS = ("agents", "symbols", "start", "end", "interval", "objective", "capital",
                "max_drawdown", "min_trades", "ceo", "seed")


def _storage(database_url: str) -> Any:
    from core.research.storage import open_storage

    return open_storage(database_url)


def research_studies(database_url: str) -> list[dict[str, Any]]:
    """Every desk study, newest first: name, kind, trials finished of total, best value, spec."""
    import optuna

    from core.research import study as studies
    from core.research.storage import studies_exist
    from core.research.trial import StudySpec

    if not studies_exist(database_url):
        return []
    storage = _storage(database_url)
    out = []
    for s in reversed(optuna.get_all_study_summaries(storage, include_best_trial=False)):
        attrs = s.user_attrs
        if studies.SPEC_ATTR not in attrs:
            continue
        spec = StudySpec.from_json(attrs[studies.SPEC_ATTR])
        row: dict[str, Any] = {"name": s.study_name, "kind": attrs.get(studies.KIND_ATTR),
                               "parent": attrs.get(studies.PARENT_ATTR),
                               "total": int(attrs.get(studies.TRIALS_ATTR, 0)),
                               "started": s.datetime_start}
        row |= {k: getattr(spec, k) for k in SUMMARY_KEYS}
        row["agents"], row["symbols"] = list(spec.agents), list(spec.symbols)
        if row["kind"] == "walkforward":
            plan = attrs.get("desk_plan") or {}
            done = len(attrs.get("desk_windows") or [])
            report = attrs.get("desk_report")
            row |= {"finished": done, "total": plan.get("windows", 0),
                    "best": (report or {}).get("headline", {}).get("sharpe"),
                    "done": report is not None}
        else:
            progress = studies.progress_of(optuna.load_study(study_name=s.study_name,
                                                             storage=storage))
            row |= {"finished": progress.finished, "running": progress.running,
                    "best": progress.best, "done": progress.finished >= progress.total}
        out.append(row)
    return out


def _load(database_url: str, name: str) -> Any:
    from core.research import study as studies
    from core.research.storage import studies_exist

    if not studies_exist(database_url):
        raise NotFound(f"no study named {name!r}")

    try:
        return studies.load(database_url, name)
    except NotFound:
        raise NotFound(f"no study named {name!r}") from None


def research_study(database_url: str, name: str, top: int = 10) -> dict[str, Any]:
    """One study: its spec, progress, report (best feasible trial, DSR, PBO) and top trials."""
    from core.research import study as studies
    from core.research.report import evaluated, feasible, study_report, trial_row

    study = _load(database_url, name)
    spec = studies.spec_of(study)
    trials = studies.real_trials(study)
    progress = studies.progress_of(study)
    ranked = sorted((t for t in evaluated(trials) if t.value is not None),
                    key=lambda t: (not feasible(t), -(t.value or 0.0), t.number))
    return {"name": name, "kind": study.user_attrs.get(studies.KIND_ATTR),
            "parent": study.user_attrs.get(studies.PARENT_ATTR),
            **{k: getattr(spec, k) for k in SUMMARY_KEYS},
            "agents": list(spec.agents), "symbols": list(spec.symbols),
            "finished": progress.finished, "running": progress.running, "total": progress.total,
            "report": study_report(trials, progress.total),
            "top": [trial_row(t) for t in ranked[:top]]}


def walkforward_report(database_url: str, name: str) -> dict[str, Any]:
    """A walk-forward's plan, the windows finished so far and, once done, its report."""
    from core.research import study as studies

    study = _load(database_url, name)
    if study.user_attrs.get(studies.KIND_ATTR) != "walkforward":
        raise NotFound(f"study {name!r} is not a walk-forward")
    windows = study.user_attrs.get("desk_windows") or []
    return {"name": name, "plan": study.user_attrs.get("desk_plan") or {},
            "windows_done": len(windows), "report": study.user_attrs.get("desk_report"),
            "windows": [{"window": w["window"], "study": w["study"], "params": w["best_params"],
                         "note": w.get("note")} for w in windows]}


def study_charts(database_url: str, name: str) -> dict[str, go.Figure]:
    """Optuna's optimisation history and (with 2+ complete trials) parameter importances."""
    import optuna
    from optuna.trial import TrialState

    study = _load(database_url, name)
    charts: dict[str, go.Figure] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        charts["history"] = optuna.visualization.plot_optimization_history(study)
    if len(complete) >= 2 and any(t.params for t in complete):
        # every trial on one point leaves nothing to attribute
        with contextlib.suppress(RuntimeError, ValueError):
            charts["importance"] = optuna.visualization.plot_param_importances(study)
    return charts
