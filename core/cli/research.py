"""``python -m core optimize`` and ``python -m core walkforward``: tune the agents from a terminal.

    python -m core optimize --study NAME --agents trend,momentum --from 2025-05-01 --to 2025-10-31
                            [--interval 1h] --trials 100 [--workers 2] [--objective sharpe]
                            [--max-drawdown 20] [--min-trades 10] [--seed 7] [--join]
    python -m core walkforward --study NAME --agents trend --from ... --to ... --train 90d
                            --test 30d [--step 30d] --trials 50 [--workers 2] ...
    python -m core optimize --list

The study lives in the desk's database (``DATABASE_URL``): ``--join`` from another terminal or
machine adds workers to it. A progress bar goes to stderr on a terminal; Ctrl-C stops after the
running trials (finished trials are kept), a second Ctrl-C abandons them. Bad input prints one
``error:`` line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from typing import Any

from core.backtest.params import INTERVALS
from core.config import Settings
from core.errors import ConfigError
from core.research.metrics import OBJECTIVES


def add_parsers(sub: Any, *, capital_type: Callable[[str], float] = float,
                count_type: Callable[[str], int] = int) -> None:
    for command, helptext in (
            ("optimize", "search the agents' parameters (Optuna TPE) over a range of history"),
            ("walkforward", "tune on each training window, judge on the unseen window after it")):
        o = sub.add_parser(command, help=helptext)
        o.add_argument("--study", metavar="NAME", help="the study's name (its key in the database)")
        o.add_argument("--agents", help="comma-separated agent keys, e.g. trend,momentum")
        o.add_argument("--from", dest="start", metavar="DATE", help="first day (UTC)")
        o.add_argument("--to", dest="end", metavar="DATE", help="last day (UTC, inclusive)")
        o.add_argument("--interval", choices=INTERVALS, help="bar interval (default: REPLAY_INTERVAL)")
        o.add_argument("--symbols", help="comma-separated (default: SYMBOLS)")
        o.add_argument("--capital", type=capital_type, help="starting capital in USDT")
        o.add_argument("--data", metavar="DIR", help="folder of SYMBOL-INTERVAL.csv files")
        o.add_argument("--trials", type=count_type,
                       help="trials in the study (per training window for walkforward)")
        o.add_argument("--workers", type=count_type, default=1, help="worker processes (default 1)")
        o.add_argument("--objective", choices=OBJECTIVES, help="what to maximise (default sharpe)")
        o.add_argument("--max-drawdown", type=float, metavar="PCT",
                       help="a trial falling this many %% below its peak is infeasible")
        o.add_argument("--min-trades", type=int, metavar="N",
                       help="a trial with fewer closed trades is infeasible")
        o.add_argument("--seed", type=int, help="sampler seed (a 1-worker study is then reproducible)")
        o.add_argument("--no-ceo", action="store_true", help="agents under the venue's limits only")
        o.add_argument("--join", action="store_true",
                       help="add workers to an existing study (or resume a walk-forward)")
        o.add_argument("--list", action="store_true", help="list the studies")
        o.add_argument("--json", action="store_true")
        if command == "walkforward":
            o.add_argument("--train", default="90d", help="training window, e.g. 90d")
            o.add_argument("--test", default="30d", help="test window, e.g. 30d")
            o.add_argument("--step", help="move the windows by this much (default: --test)")


def _spec(args: argparse.Namespace, settings: Settings) -> Any:
    from core.agents import strategy_file
    from core.cli.output import user_path
    from core.research.agents import agent_list
    from core.research.trial import StudySpec

    if not args.agents or not args.start or not args.end:
        raise ConfigError(f"{args.command} needs --agents, --from and --to (or --join to an "
                          "existing study)")
    if args.max_drawdown is not None and not 0 < args.max_drawdown < 100:
        raise ConfigError(f"--max-drawdown is a percentage between 0 and 100, got {args.max_drawdown}")
    return StudySpec(
        agents=agent_list(args.agents), start=args.start, end=args.end,
        interval=args.interval or settings.replay_interval,
        symbols=tuple(s.strip().upper() for s in (args.symbols.split(",") if args.symbols
                                                  else settings.symbol_list) if s.strip()),
        capital=settings.default_capital if args.capital is None else args.capital,
        data_dir=str(user_path(args.data) if args.data else settings.replay_data_dir),
        objective=args.objective or "sharpe",
        max_drawdown=None if args.max_drawdown is None else args.max_drawdown / 100,
        min_trades=args.min_trades, ceo=not args.no_ceo, seed=args.seed,
        base=strategy_file.load(settings.strategies_file).to_json())


def run(args: argparse.Namespace, settings: Settings) -> int:
    from core import queries

    if args.list:
        rows = queries.research_studies(settings.database_url)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        elif not rows:
            print("no studies yet")
        for r in [] if args.json else rows:
            best = "–" if r["best"] is None else f"{r['best']:.4g}"
            print(f"{r['name']} [{r['kind']}] {r['finished']}/{r['total']} trials · best {best}"
                  f" · {', '.join(r['agents'])} {r['start']} → {r['end']} {r['interval']}")
        return 0
    if not args.study:
        raise ConfigError(f"{args.command} needs --study NAME")
    if args.command == "walkforward":
        return _walkforward(args, settings)
    return _optimize(args, settings)


def _optimize(args: argparse.Namespace, settings: Settings) -> int:
    from core import queries
    from core.research import study as studies
    from core.research.trial import TrialRunner

    salt = 0
    if args.join:
        expect = {"objective": args.objective, "interval": args.interval, "seed": args.seed}
        studies.join(settings.database_url, args.study, args.trials, expect)
        salt = random.getrandbits(32)
    else:
        if args.trials is None:
            raise ConfigError("optimize needs --trials N (the study's total)")
        spec = _spec(args, settings)
        TrialRunner(settings, spec)  # the range and data are checked before anything is stored
        studies.create(settings.database_url, args.study, spec, args.trials)
    bar = _Bar() if sys.stderr.isatty() else None
    try:
        finished = studies.run_workers(settings, args.study, args.workers, on_progress=bar,
                                       salt=salt)
    finally:
        if bar is not None:
            bar.close()
    report = queries.research_study(settings.database_url, args.study)
    text = format_study(report)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(text)
    _alert_finished(settings, args.study, "study", "done" if finished else "interrupted",
                    int(report["finished"]), int(report["total"]), text)
    if not finished:
        print(f"interrupted: finished trials are kept; `python -m core optimize --study "
              f"{args.study} --join` resumes", file=sys.stderr)
        return 130
    return 0


def _walkforward(args: argparse.Namespace, settings: Settings) -> int:
    from core.research.walkforward import parse_days, run_walkforward

    if args.join:
        spec = None
    else:
        spec = _spec(args, settings)
        if args.trials is None:
            raise ConfigError("walkforward needs --trials N (per training window)")
    train = parse_days(args.train, "train")
    test = parse_days(args.test, "test")
    step = parse_days(args.step, "step") if args.step else test
    bar = _Bar() if sys.stderr.isatty() else None

    def on_event(kind: str, data: Any) -> None:
        if kind == "window":
            if bar is not None:
                bar.close()
            w = data["window"]
            print(f"window {w.index + 1}/{data['of']}: train {w.train_start} → {w.train_end}, "
                  f"test {w.test_start} → {w.test_end}", file=sys.stderr)
        elif kind == "progress" and bar is not None:
            bar(data)

    if spec is None:
        from core.research import study as studies

        spec = studies.spec_of(studies.load(settings.database_url, args.study))
    report = run_walkforward(settings, args.study, spec, train=train, test=test, step=step,
                             trials=args.trials or 0, workers=args.workers, join=args.join,
                             on_event=on_event)
    if bar is not None:
        bar.close()
    if report is None:
        print(f"interrupted: finished windows are kept; `python -m core walkforward --study "
              f"{args.study} --join` resumes", file=sys.stderr)
        _alert_finished(settings, args.study, "walkforward", "interrupted", 0, 0,
                        "Interrupted: finished windows are kept; --join resumes.")
        return 130
    text = format_walkforward(report)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(text)
    plan = report["plan"]
    trials = int(plan["trials_per_window"]) * int(plan["windows"])
    _alert_finished(settings, args.study, "walkforward", "done", trials, trials, text)
    return 0


def _alert_finished(settings: Settings, name: str, kind: str, status: str, finished: int,
                    total: int, summary: str) -> None:
    """The study's end goes to the alert outbox (a running engine or ``./desk alerts send``
    delivers it). A store that refuses the row is said on stderr; the study itself is kept."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.alerts import events
    from core.store.db import open_database

    try:
        engine = open_database(settings.database_url)
        try:
            with engine.begin() as conn:
                events.study_finished(conn, name=name, kind=kind, status=status,
                                      finished=finished, total=total, summary=summary)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        print(f"warning: the {kind} finished but its alert could not be recorded: "
              f"{type(exc).__name__}", file=sys.stderr)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2%}"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def format_study(r: dict[str, Any]) -> str:
    rep = r["report"]
    states = ", ".join(f"{n} {k}" for k, n in sorted(rep["states"].items())) or "none"
    lines = [f"study {r['name']}: {r['finished']}/{r['total']} trials ({states}; "
             f"{rep['infeasible']} infeasible, {rep['duplicates']} repeated points)",
             f"  {', '.join(r['agents'])} on {', '.join(r['symbols'])} {r['interval']} "
             f"{r['start']} → {r['end']}, objective {r['objective']}"]
    best = rep["best"]
    if best is None:
        lines.append("  no feasible trial yet")
    else:
        lines.append(f"  best trial {best['number']} (IN SAMPLE: chosen on these very days): "
                     f"{r['objective']} {_num(best['value'], '.4g')} · return "
                     f"{_pct(best['return'])} · Sharpe {_num(best['sharpe'])} · max drawdown "
                     f"{_num(best['max_drawdown'], '.2%')} · trades {best['trades']} · fees "
                     f"{_num(best['fees'], ',.2f')}")
        sel = rep["selection"] or {}
        lines.append(f"  Deflated Sharpe {_num(sel.get('dsr'), '.3f')} (N = {sel.get('n_trials')}"
                     f" trials) · PBO {_num(sel.get('pbo'), '.2f')}"
                     + (f" ({sel['why']})" if sel.get("why") else ""))
        lines.append("  parameters: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float)
                                                   else f"{k}={v}" for k, v in best["params"].items()))
    for e in rep.get("errors") or []:
        lines.append(f"  failed trial: {e}")
    return "\n".join(lines)


def format_walkforward(r: dict[str, Any]) -> str:
    p, h = r["plan"], r["headline"]
    oos = r["out_of_sample"]
    t, d, b = oos["tuned"], oos["default"], oos["buy_and_hold"]
    ins = r["in_sample"]
    lines = [
        f"walk-forward: {p['windows']} windows, train {p['train_days']} d, test "
        f"{p['test_days']} d, step {p['step_days']} d, {p['trials_per_window']} trials each",
        f"OUT OF SAMPLE (tuned): return {_pct(h['return'])} · Sharpe {_num(h['sharpe'])} · DSR "
        f"{_num(h.get('dsr'), '.3f')} · max drawdown {_num(h['max_drawdown'], '.2%')} · fees "
        f"{_num(h['fees'], ',.2f')} · trades {h['trades']} · PBO (mean of windows) "
        f"{_num(h.get('pbo_mean'), '.2f')}",
        f"  {'':<22}{'return':>10}{'Sharpe':>9}{'DSR':>8}{'max DD':>9}{'fees':>12}{'trades':>8}",
    ]
    for label, s in (("tuned, out of sample", t), ("defaults, out of sample", d),
                     ("buy and hold", b)):
        lines.append(f"  {label:<22}{_pct(s['return']):>10}{_num(s['sharpe']):>9}"
                     f"{_num(s.get('dsr'), '.3f'):>8}{_num(s['max_drawdown'], '.2%'):>9}"
                     f"{_num(s.get('fees'), ',.2f'):>12}{s.get('trades', '–')!s:>8}")
    lines.append(f"  {'in sample (mean)':<22}{_pct(ins['return_mean']):>10}"
                 f"{_num(ins['sharpe_mean']):>9}{_num(ins['dsr_mean'], '.3f'):>8}"
                 "   (each window's best, on its own training days)")
    lines.append("  per window: test days · IS return/Sharpe → OOS tuned return/Sharpe · "
                 "defaults · buy and hold · PBO")
    for w in r["windows"]:
        lines.append(f"    {w['test_days']}  IS {_pct(w['is_return'])}/{_num(w['is_sharpe'])} → "
                     f"OOS {_pct(w['oos_return'])}/{_num(w['oos_sharpe'])} · defaults "
                     f"{_pct(w['default_return'])} · B&H {_pct(w['buy_and_hold_return'])} · PBO "
                     f"{_num(w['pbo'], '.2f')}" + (f" · {w['note']}" if w.get("note") else ""))
    lines.append(f"  {r['conventions']}")
    return "\n".join(lines)


class _Bar:
    WIDTH = 30

    def __call__(self, p: Any) -> None:
        frac = min(1.0, p.finished / p.total) if p.total else 1.0
        filled = int(frac * self.WIDTH)
        best = "–" if p.best is None else f"{p.best:.4g}"
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {p.finished}/{p.total}"
                         f" trials · {p.running} running · best {best}   ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
