"""Walk-forward: tune on a training window, judge on the unseen window after it, move on.

For each window the study machinery (``core.research.study``) searches the training days; its
best feasible parameters then run once on the next ``test`` days, which no trial has seen, and
so do the shipped defaults, beside an equal-weight buy and hold of the symbols. The test windows
are stitched into one out-of-sample curve (each window's daily returns, compounded in order). The
headline is always out of sample: the in-sample figures are shown beside it only to measure how
much of the tuning survived.

Conventions (stated in the report):
- windows are whole UTC days: train [d, d + train), test [d + train, d + train + test), then
  d += step; the last window's test must end by the range's last day;
- each test backtest starts from the study's capital with no position (nothing is carried from
  one window to the next); fees and funding are summed in USDT over the windows;
- in-sample DSR: the window's best trial among its N evaluated trials (their Sharpe variance);
  out-of-sample DSR: the stitched tuned curve against the same bar (the mean N and variance of
  the windows' searches); the defaults chose nothing, so theirs is the PSR against 0;
- PBO: CSCV over each training window's trials; the report gives each and their mean.

The run and its report are stored in the desk's studies database: a parent study (kind
``walkforward``) holds the spec, each window's result and the report as user attributes; each
training window is its own study (kind ``window``), browsable like any other. Running the same
name again with ``--join`` resumes at the first unfinished window.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from core.backtest.inputs import price_window
from core.backtest.params import parse_time
from core.config import Settings
from core.errors import ConfigError, NotFound
from core.research import study as studies
from core.research.metrics import (
    YEAR_DAYS,
    daily_equity,
    max_drawdown,
    sharpe,
    sortino,
)
from core.research.overfitting import deflated_sharpe, moments, probabilistic_sharpe
from core.research.report import best_trial, selection_stats, study_report, trial_row
from core.research.trial import StudySpec, TrialOutcome, TrialRunner

DAY = timedelta(days=1)
WINDOWS_ATTR = "desk_windows"
REPORT_ATTR = "desk_report"
PLAN_ATTR = "desk_plan"
Event = Callable[[str, Any], None]


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    train_start: str
    train_end: str  # last day, inclusive (as --to takes it)
    test_start: str
    test_end: str


def parse_days(text: str, what: str) -> int:
    m = re.fullmatch(r"\s*(\d{1,4})\s*d?\s*", text or "")
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"--{what} takes a number of days such as 30d, got {text!r}")
    return int(m.group(1))


def plan(start: str, end: str, train: int, test: int, step: int) -> list[Window]:
    """The windows over [start, end] (whole UTC days); ConfigError when not one fits."""
    first = datetime.fromtimestamp(parse_time(start, end=False) / 1000, UTC)
    last_day = datetime.fromtimestamp(parse_time(end, end=True) / 1000, UTC) - DAY
    out: list[Window] = []
    d = first
    while d + timedelta(days=train + test) - DAY <= last_day:
        t0 = d + timedelta(days=train)
        out.append(Window(len(out), _day(d), _day(t0 - DAY), _day(t0),
                          _day(t0 + timedelta(days=test) - DAY)))
        d += timedelta(days=step)
    if not out:
        raise ConfigError(f"no walk-forward window fits from {start} to {end}: it needs "
                          f"{train + test} days (train {train} + test {test})")
    return out


def _day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d")


def window_name(name: str, w: Window) -> str:
    return f"{name} · window {w.index + 1}"


def _buy_and_hold(runner: TrialRunner) -> tuple[list[int], list[float]]:
    """Equal-weight buy and hold of the symbols over the runner's range, from its capital."""
    ts, closes = price_window(runner.data, runner.params)
    rel = np.mean([np.asarray(c) / c[0] for c in closes.values()], axis=0)
    return ts[1:], (runner.params.capital * rel[1:]).tolist()


def _window_result(w: Window, window_study: Any, spec: StudySpec, settings: Settings
                   ) -> dict[str, Any]:
    trials = studies.real_trials(window_study)
    best = best_trial(trials)
    test = TrialRunner(settings, spec.with_range(w.test_start, w.test_end))
    tuned_params = dict(best.params) if best is not None else {}
    tuned = test.run(tuned_params, keep_curve=True)
    default = test.run({}, keep_curve=True)
    bh_ts, bh_eq = _buy_and_hold(test)
    capital = spec.capital
    return {
        "window": asdict(w), "study": window_study.study_name,
        "in_sample": study_report(trials, int(window_study.user_attrs[studies.TRIALS_ATTR])),
        "best_params": tuned_params,
        "note": None if best is not None else "no feasible trial: the defaults ran instead",
        "tuned": _outcome(tuned, capital), "default": _outcome(default, capital),
        "buy_and_hold": {"ts": bh_ts, "equity": bh_eq},
        "selection": selection_stats(trials, best) if best is not None else None,
        "best_trial": trial_row(best) if best is not None else None,
    }


def _outcome(o: TrialOutcome, capital: float) -> dict[str, Any]:
    return {**o.attrs(), "ts": o.curve_ts, "equity": o.curve_equity, "capital": capital}


def run_walkforward(settings: Settings, name: str, spec: StudySpec, *, train: int, test: int,
                    step: int, trials: int, workers: int, join: bool = False,
                    on_event: Event | None = None) -> dict[str, Any] | None:
    """Run (or, with ``join``, resume) the walk-forward; the report, or None when Ctrl-C
    stopped it (finished windows are kept)."""
    windows = plan(spec.start, spec.end, train, test, step)
    emit = on_event or (lambda _kind, _data: None)
    if join:
        parent = studies.load(settings.database_url, name)
        if parent.user_attrs.get(studies.KIND_ATTR) != "walkforward":
            raise ConfigError(f"study {name!r} is not a walk-forward")
        spec = studies.spec_of(parent)
        trials = max(trials, int(parent.user_attrs[studies.TRIALS_ATTR]))
        stored_plan = parent.user_attrs.get(PLAN_ATTR, {})
        train, test, step = stored_plan["train"], stored_plan["test"], stored_plan["step"]
        windows = plan(spec.start, spec.end, train, test, step)
    else:
        parent = studies.create(settings.database_url, name, spec, trials, kind="walkforward")
        parent.set_user_attr(PLAN_ATTR, {"train": train, "test": test, "step": step,
                                         "windows": len(windows)})
    done: list[dict[str, Any]] = list(parent.user_attrs.get(WINDOWS_ATTR, []))
    for w in windows[len(done):]:
        emit("window", {"window": w, "of": len(windows)})
        wname = window_name(name, w)
        try:
            ws = studies.join(settings.database_url, wname, trials, {})
        except NotFound:  # not created yet (a resumed run reaches a new window)
            ws = studies.create(settings.database_url, wname,
                                spec.with_range(w.train_start, w.train_end), trials,
                                kind="window", parent=name)
        if not studies.run_workers(settings, wname, workers,
                                   on_progress=lambda p: emit("progress", p)):
            return None
        result = _window_result(w, ws, spec, settings)
        done.append(result)
        parent.set_user_attr(WINDOWS_ATTR, done)
        emit("window_done", result)
    report = build_report(spec, done, trials, train=train, test=test, step=step)
    parent.set_user_attr(REPORT_ATTR, report)
    return report


def _stitch(parts: list[dict[str, Any]], capital: float) -> dict[str, Any]:
    """Compound the windows' curves: each window's per-bar curve scaled to where the stitched
    curve stood at the end of the window before."""
    level = capital
    ts: list[int] = []
    eq: list[float] = []
    daily: list[float] = []
    for p in parts:
        scale = level / capital
        ts += p["ts"]
        eq += [e * scale for e in p["equity"]]
        closes = daily_equity(p["ts"], p["equity"], capital)
        daily += (closes[1:] / closes[:-1] - 1).tolist()
        level = eq[-1] if eq else level
    r = np.asarray(daily)
    total = level / capital - 1
    dd = max_drawdown([capital, *eq])
    days = r.size
    cagr = (1 + total) ** (YEAR_DAYS / days) - 1 if days and total > -1 else -1.0
    return {"return": total, "sharpe": sharpe(r), "sortino": sortino(r),
            "calmar": cagr / dd if dd > 1e-12 else 0.0, "max_drawdown": dd, "days": int(days),
            "daily_returns": daily, "ts": ts, "equity": eq}


def build_report(spec: StudySpec, windows: list[dict[str, Any]], trials: int, *, train: int,
                 test: int, step: int) -> dict[str, Any]:
    capital = spec.capital
    tuned = _stitch([w["tuned"] for w in windows], capital)
    default = _stitch([w["default"] for w in windows], capital)
    bh = _stitch([w["buy_and_hold"] for w in windows], capital)
    for side, key in ((tuned, "tuned"), (default, "default")):
        side["trades"] = sum(w[key]["trades"] for w in windows)
        side["fees"] = sum(w[key]["fees"] for w in windows)
        side["funding"] = sum(w[key]["funding"] for w in windows)
    sel = [w["selection"] for w in windows if w.get("selection")]
    n_mean = round(float(np.mean([s["n_trials"] for s in sel]))) if sel else 1
    var_mean = _mean_variance(windows)
    if len(tuned["daily_returns"]) >= 3:
        d = deflated_sharpe(tuned["daily_returns"], n_trials=max(1, n_mean),
                            sharpe_variance=var_mean)
        tuned |= {"dsr": d.dsr, "psr0": probabilistic_sharpe(d.sharpe, 0.0, d.n_obs, d.skew,
                                                             d.kurtosis)}
    if len(default["daily_returns"]) >= 3:
        m = moments(default["daily_returns"])
        default["dsr"] = default["psr0"] = probabilistic_sharpe(m.sharpe, 0.0, m.n_obs, m.skew,
                                                                m.kurtosis)
    pbos = [s["pbo"] for s in sel if s.get("pbo") is not None]
    in_sample = {
        "return_mean": _mean(w["best_trial"]["return"] for w in windows if w.get("best_trial")),
        "sharpe_mean": _mean(w["best_trial"]["sharpe"] for w in windows if w.get("best_trial")),
        "dsr_mean": _mean(s["dsr"] for s in sel if s.get("dsr") is not None),
        "pbo_mean": _mean(pbos), "pbo": pbos,
    }
    curve_days, t_eq, d_eq, b_eq = _daily_curves(tuned, default, bh, capital)
    return {
        "spec": {**asdict(spec), "agents": list(spec.agents), "symbols": list(spec.symbols)},
        "plan": {"train_days": train, "test_days": test, "step_days": step,
                 "windows": len(windows), "trials_per_window": trials},
        "headline": {k: tuned.get(k) for k in ("return", "sharpe", "dsr", "max_drawdown",
                                               "fees", "trades")} | {"pbo_mean": in_sample["pbo_mean"]},
        "out_of_sample": {"tuned": _strip(tuned), "default": _strip(default),
                          "buy_and_hold": _strip(bh)},
        "in_sample": in_sample,
        "windows": [_window_row(w) for w in windows],
        "curve": {"day_ms": curve_days, "tuned": t_eq, "default": d_eq, "buy_and_hold": b_eq},
        "conventions": CONVENTIONS,
    }


CONVENTIONS = (
    "Headline = out of sample: each test window is unseen by the search that chose its "
    "parameters. Test windows start from the capital with no position; their daily returns are "
    "compounded into one curve. In-sample DSR: each window's best among its evaluated trials; "
    "out-of-sample DSR: the stitched tuned curve against the same luck bar (mean N and Sharpe "
    "variance of the searches); the defaults chose nothing, so theirs is the PSR against 0. "
    "PBO by CSCV over each training window's trials. Sharpe from daily returns × √365."
)


def _mean(values: Any) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _mean_variance(windows: list[dict[str, Any]]) -> float:
    """Mean over the windows of the variance of their evaluated trials' daily Sharpe ratios."""
    out = []
    for w in windows:
        s = w.get("selection") or {}
        if s.get("sharpe_variance") is not None:
            out.append(s["sharpe_variance"])
    return float(np.mean(out)) if out else 0.0


def _strip(side: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in side.items() if k not in ("daily_returns", "ts", "equity")}


def _daily_curves(tuned: dict[str, Any], default: dict[str, Any], bh: dict[str, Any],
                  capital: float) -> tuple[list[int], list[float], list[float], list[float]]:
    """The three stitched curves at each UTC day's end, for the report's chart."""
    days = sorted({(t - 1) // 86_400_000 for t in tuned["ts"]})
    out = []
    for side in (tuned, default, bh):
        by_day: dict[int, float] = {}
        for t, e in zip(side["ts"], side["equity"], strict=True):
            by_day[(t - 1) // 86_400_000] = e
        last = float(capital)
        row = []
        for d in days:
            last = by_day.get(d, last)
            row.append(last)
        out.append(row)
    return [(d + 1) * 86_400_000 for d in days], out[0], out[1], out[2]


def _window_row(w: dict[str, Any]) -> dict[str, Any]:
    b = w.get("best_trial") or {}
    s = w.get("selection") or {}
    return {**w["window"], "study": w["study"], "note": w.get("note"),
            "params": w["best_params"],
            "is_return": b.get("return"), "is_sharpe": b.get("sharpe"), "is_dsr": s.get("dsr"),
            "pbo": s.get("pbo"), "trials": s.get("n_trials"),
            **{f"oos_{k}": w["tuned"][k] for k in ("return", "sharpe", "max_drawdown", "trades",
                                                  "fees")},
            **{f"default_{k}": w["default"][k] for k in ("return", "sharpe", "max_drawdown",
                                                        "trades", "fees")},
            "buy_and_hold_return": (w["buy_and_hold"]["equity"][-1] / w["tuned"]["capital"] - 1)
            if w["buy_and_hold"]["equity"] else None,
            "test_days": f"{w['window']['test_start']} → {w['window']['test_end']}"}

