"""``python -m core backtest``: run a backtest from a terminal, list earlier runs, show one.

    python -m core backtest --from 2025-10-01 --to 2025-10-31 [--data DIR] [--interval 15m]
                            [--symbols BTCUSDT,ETHUSDT] [--capital 100000] [--no-ceo] [--json]
    python -m core backtest --list [--json]
    python -m core backtest --show RUN [--json]

A progress bar goes to stderr when it is a terminal. Bad input prints one ``error:`` line and
exits 2 (the CLI's contract), before anything is stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from core import queries
from core.agents import strategy_file
from core.backtest.params import INTERVALS, build_params, ticks_in
from core.backtest.service import create_run, run_backtest
from core.config import Settings
from core.errors import ConfigError, NotFound


def add_parser(sub: Any, *, capital_type: Callable[[str], float] = float,
               id_type: Callable[[str], int] = int) -> None:
    """``capital_type`` and ``id_type``: the CLI's own parsers of amounts (``100,000`` as well as
    ``100000``) and of ids (ASCII digits, 64-bit)."""
    b = sub.add_parser("backtest", help="run the desk over recorded history; list or show runs")
    b.add_argument("--from", dest="start", metavar="DATE", help="first day (UTC), e.g. 2025-10-01")
    b.add_argument("--to", dest="end", metavar="DATE", help="last day (UTC, inclusive)")
    b.add_argument("--data", metavar="DIR", help="folder of SYMBOL-INTERVAL.csv files "
                   "(default: the bundled data)")
    b.add_argument("--interval", choices=INTERVALS, help="bar interval (default: REPLAY_INTERVAL)")
    b.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (default: SYMBOLS)")
    b.add_argument("--capital", type=capital_type, help="starting capital in USDT (default 100,000)")
    b.add_argument("--no-ceo", action="store_true",
                   help="agents under the venue's limits only (no CEO rules, pauses or halt)")
    b.add_argument("--llm-cache", action="store_true",
                   help="agents answer from recorded model replies (llm_calls) where the prompt "
                        "matches, rules otherwise; never a live model call")
    b.add_argument("--strategies", metavar="FILE", help="the agents' parameters (default: "
                   "STRATEGIES_FILE, strategies.toml); the run stores and reports them")
    b.add_argument("--name", help="a name for the run")
    b.add_argument("--list", action="store_true", help="list earlier runs")
    b.add_argument("--show", type=id_type, metavar="RUN", help="print the report of run RUN")
    b.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from core import queries
    from core.cli.output import user_path

    if args.list:
        from core import service

        service.record_dead_backtests(engine)
        runs = queries.backtest_runs(engine)
        if args.json:  # headline figures; a run's equity curve is in --show RUN --json
            listed = [{**r, "report": {k: v for k, v in r["report"].items() if k != "curve"}}
                      if r.get("report") else r for r in runs]
            print(json.dumps(listed, indent=2, default=str))
        elif not runs:
            print("no backtests yet")
        else:
            for r in runs:
                print(_run_line(r))
        return 0
    if args.show is not None:
        found = queries.backtest_run(engine, args.show)
        if found is None:
            raise NotFound(f"no backtest run {args.show}")
        if args.json:
            print(json.dumps(found, indent=2, default=str))
        else:
            print(_run_line(found))
            if found["report"]:
                print(format_report(found["report"]))
        return 0
    if not args.start or not args.end:
        raise ConfigError("backtest needs --from DATE and --to DATE (or --list / --show RUN)")
    params, data = build_params(
        start=args.start, end=args.end,
        data_dir=user_path(args.data) if args.data else settings.replay_data_dir,
        interval=args.interval or settings.replay_interval,
        symbols=args.symbols.split(",") if args.symbols else list(settings.symbol_list),
        capital=settings.default_capital if args.capital is None else args.capital,
        ceo=not args.no_ceo, name=args.name, llm_cache=args.llm_cache)
    agent_params = strategy_file.load(user_path(args.strategies) if args.strategies
                                      else settings.strategies_file)  # refused before any run
    bar = _Bar() if sys.stderr.isatty() else None
    run_id = create_run(engine, params, ticks_in(params, data))
    try:
        result = run_backtest(engine, settings, params, data, progress=bar, run_id=run_id,
                              agent_params=agent_params)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(_interrupted(engine, run_id), file=sys.stderr)
        raise
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps({"run_id": result.run_id, "session_id": result.session_id,
                          "report": result.report}, indent=2, default=str))
    else:
        print(f"backtest run {result.run_id} (session {result.session_id}): {result.ticks:,} ticks "
              f"in {result.seconds:.1f} s")
        print(format_report(result.report))
        print(f"browse it: python -m core trades --session {result.session_id} · "
              f"python -m core ceo-log --session {result.session_id}")
    return 0


def _interrupted(engine: Engine, run_id: int) -> str:
    """What Ctrl-C left in the store, read back rather than assumed (recording it can fail)."""
    from core import queries
    from core.backtest.params import STALE_MS

    try:
        found = queries.backtest_progress(engine, run_id)
    except Exception:  # the store is what failed; the service has logged its own error
        found = None
    if found is not None and found["status"] == "interrupted":
        return f"interrupted: backtest run {run_id} is recorded as interrupted; nothing else was kept"
    return (f"interrupted: backtest run {run_id} could not be marked interrupted in the store (see "
            f"the log above); it is listed as interrupted once it has written nothing for "
            f"{STALE_MS // 60_000} minutes; nothing else was kept")


def _run_line(r: dict[str, Any]) -> str:
    summary = (r.get("report") or {}).get("summary") or {}
    figures = (f" · return {summary['total_return']:+.2%} · max DD {summary['max_drawdown']:.2%}"
               f" · {summary['trades']} trades") if summary else ""
    err = f" · {r['error']}" if r.get("error") else ""
    return (f"run {r['id']} [{r['status']}] {r['name']} (session {r['session_id'] or '-'})"
            f"{figures}{err}")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2%}"


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def format_report(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        f"  equity {s['initial_capital']:,.2f} → {s['final_equity']:,.2f} USDT · return "
        f"{_pct(s['total_return'])} · CAGR {_pct(s['cagr'])} · max drawdown {s['max_drawdown']:.2%}",
        f"  Sharpe {_num(s['sharpe'])} · Sortino {_num(s['sortino'])} · profit factor "
        f"{_num(s['profit_factor'])} · win rate {_pct(s['win_rate']).lstrip('+')} · trades "
        f"{s['trades']} · fees {s['fees']:,.2f} · funding paid {s['funding_paid']:,.2f} · "
        f"exposure {s['exposure_time']:.0%} of bars (avg {s['avg_gross_exposure']:.2f}x)",
        f"  {report['drawdown_halt']['statement']}",
    ]
    why = (report.get("annualised") or {}).get("why")
    if why:
        lines.insert(2, f"  no annualised figures: {why}")
    c = report["ceo_stats"]
    rules = ", ".join(f"{k} {v}" for k, v in c["rejections_by_rule"].items()) or "none"
    lines.append(f"  CEO: {c['approvals']} approved, {c['modifications']} modified, "
                 f"{c['rejections']} rejected ({rules}); {c['pauses']} pauses, "
                 f"{c['rebalances']} rebalances, {c['halts']} halts"
                 + ("" if report["ceo"] else " (CEO off)"))
    lines.append("  per agent:")
    for a in report["agents"]:
        lines.append(f"    {a['agent']:<20} return {_pct(a['total_return']):>8} · max DD "
                     f"{a['max_drawdown']:.2%} · Sharpe {_num(a['sharpe'])} · trades {a['trades']}"
                     f" · win rate {_pct(a['win_rate']).lstrip('+')} · PF {_num(a['profit_factor'])}")
    bh = " · ".join(f"{sym} {_pct(v['total_return'])} (max DD {v['max_drawdown']:.2%})"
                    for sym, v in report["buy_and_hold"].items())
    lines.append(f"  buy and hold: {bh}")
    lines.append(f"  {report['agents_model']}; {report['conventions']}")
    lines.append(f"  agent parameters: {queries.params_summary(report)}")
    return "\n".join(lines)



class _Bar:
    """A one-line progress bar on stderr."""

    WIDTH = 30

    def __call__(self, done: int, total: int) -> None:
        frac = min(1.0, done / total) if total else 1.0
        filled = int(frac * self.WIDTH)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {frac:6.1%} "
                         f"{done:,}/{total:,} bars")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
