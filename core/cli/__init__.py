"""``python -m core``: the desk from a terminal (DESIGN.md section 8).

Every command goes through the service and query modules, like the dashboard. Errors print one
line on stderr and exit non-zero, and a refused command changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from core import queries, service
from core.cli.output import print_json, table, write_frame
from core.config import Settings, load_settings
from core.desk.context import ACTIVE_SESSION
from core.errors import ConfigError, DeskError, InvalidTransition
from core.models import parse_capital
from core.store.db import open_database

EXIT_ERROR = 2


def _shorten(text: str) -> str:
    """An error line that quotes what was typed stays one readable line: a word longer than 400
    characters (no real path or name is) shows its start and its length."""
    return re.sub(r"\S{401,}", lambda m: f"{m.group()[:30]}…({len(m.group()):,} characters)", text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"error: {_shorten(message)} (see `python -m core --help`)\n")


MAX_ID = 2**63 - 1  # ids and counts live in signed 64-bit columns


def _positive_int(text: str) -> int:
    """An id or a count: ASCII digits only (Python's int() would read "１２" or "1_000"), from 1
    to 2**63 − 1; anything else is refused in words, quoted short."""
    shown = text if len(text) <= 40 else f"{text[:20]}…({len(text):,} characters)"
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number (digits 0-9 only)")
    value = int(digits) if len(digits) <= 20 else MAX_ID + 1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"{shown!r} is too large (at most {MAX_ID:,})")
    return value


def _capital(text: str) -> float:
    try:
        return parse_capital(text)
    except DeskError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core", description="Agentic trading desk for AsterDex perpetuals")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("session", help="create, inspect, pause, resume or stop a session")
    s.add_argument("action", choices=["create", "status", "pause", "resume", "stop", "list"])
    s.add_argument("--session", type=_positive_int, help="session id (default: the latest)")
    s.add_argument("--capital", type=_capital, help="paper capital in USDT (default 100,000)")
    s.add_argument("--mode", choices=["paper", "live"], default="paper")
    s.add_argument("--confirm-live", action="store_true",
                   help="confirm that a live session trades real money on AsterDex")
    s.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    s.add_argument("--name")
    s.add_argument("--json", action="store_true")

    a = sub.add_parser("agents", help="list agents or pause/resume one")
    a.add_argument("action", nargs="?", choices=["list", "pause", "resume"], default="list")
    a.add_argument("name", nargs="?", help="agent name or key, e.g. 'Momentum Hunter' or momentum")
    a.add_argument("--session", type=_positive_int)
    a.add_argument("--json", action="store_true")

    for name, helptext in (("ceo-log", "the CEO's decisions"), ("trades", "closed trades")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--session", type=_positive_int)
        c.add_argument("--csv", metavar="PATH|-", help="write CSV to PATH, or - for stdout")
        c.add_argument("--agent")
        c.add_argument("--limit", type=_positive_int, default=None)
        if name == "ceo-log":
            c.add_argument("--verdict", choices=["approve", "modify", "reject"])
            c.add_argument("--kind", choices=queries.CEO_KINDS)
            c.add_argument("--rule")
        else:
            c.add_argument("--symbol")

    m = sub.add_parser("market", help="prices, 24h change and funding of the session's symbols")
    m.add_argument("--session", type=_positive_int)
    m.add_argument("--json", action="store_true")

    e = sub.add_parser("engine", help="run the engine (scheduler, or N ticks as fast as possible)")
    e.add_argument("--ticks", type=_positive_int, help="run N ticks as fast as the feed allows, then exit")
    e.add_argument("--session", type=_positive_int)

    from core.cli.backtest import add_parser as add_backtest
    add_backtest(sub, capital_type=_capital, id_type=_positive_int)

    from core.cli.manual import add_parsers as add_manual
    add_manual(sub, id_type=_positive_int)

    from core.cli.alerts import add_parser as add_alerts
    add_alerts(sub, id_type=_positive_int)

    from core.cli.api import add_parser as add_api
    add_api(sub)

    from core.cli.research import add_parsers as add_research
    add_research(sub, capital_type=_capital, count_type=_positive_int)

    from core.cli.strategies import add_parser as add_strategies
    add_strategies(sub, id_type=_positive_int)

    # AsterDex connectivity checks (core/exchanges/check.py)
    x = sub.add_parser("check-exchange", help="check the AsterDex connection, keys and account")
    x.add_argument("--symbol", default="BTCUSDT", help="symbol for the price check")
    x.add_argument("--json", action="store_true")
    return p


# ---------------------------------------------------------------------- commands
AGENT_COLUMNS = [("name", "agent"), ("strategy", "strategy"), ("model", "model"),
                 ("risk_level", "risk"), ("max_leverage", "max lev"), ("status", "status"),
                 ("capital", "capital"), ("pnl", "PnL $"), ("pnl_pct", "PnL %"),
                 ("win_rate_pct", "win rate"), ("trades", "trades"), ("open_positions", "open"),
                 ("avg_duration_h", "avg held"), ("utilization_pct", "util"),
                 ("fees", "fees paid")]


def _agent_row(a: dict[str, Any]) -> dict[str, Any]:
    """An agent as the table shows it: percentages as "44.0%", durations in hours, as the
    dashboard does (``--json`` keeps the raw fractions and seconds)."""
    def percent(v: float | None) -> str | None:
        return None if v is None else f"{v * 100:.1f}%"
    held = a["avg_duration_s"]
    return {**a, "pnl_pct": f"{a['pnl_pct']:+.2f}%", "win_rate_pct": percent(a["win_rate"]),
            "utilization_pct": percent(a["utilization"]),
            "avg_duration_h": None if held is None else f"{held / 3600:.1f} h"}


def _print_status(status: dict[str, Any]) -> None:
    s = status["session"]
    v = s["verdicts"]
    print(f"Session {s['id']} — {s['name']} [{s['status']}] {s['mode']} on {', '.join(s['symbols'])}")
    level, health = queries.engine_health(s)
    beat = f" · last tick {s['tick_age_s']:.0f} s ago" if level == "ok" else ""
    print(f"  engine time {s['engine_time']} UTC · {s['ticks']} ticks{beat}")
    if level != "ok":
        print(f"  engine {level}: {health}")
    print(f"  equity {s['equity']:,.2f} USDT · PnL {s['total_pnl']:+,.2f} ({s['total_pnl_pct']:+.2f}%) · "
          f"drawdown {s['drawdown_pct']:.2f}% (max {s['max_drawdown_pct']:.2f}%)")
    print(f"  PnL = gross {s['realized_pnl']:+,.2f} on closed trades − fees paid {s['fees']:,.2f} "
          f"+ funding {s['funding']:+,.2f} + unrealized {s['unrealized_pnl']:+,.2f} on open positions")
    print(f"  open positions {s['open_positions']} · closed trades {s['closed_trades']} · "
          f"orders {s['orders']} · fills {s['fills']}")
    print(f"  CEO verdicts: {v['approve']} approved, {v['modify']} modified, {v['reject']} rejected")
    if s["last_error"] and level != "failing":
        print(f"  last engine message: {s['last_error']}")
    print()
    print(table([_agent_row(a) for a in status["agents"]], AGENT_COLUMNS))
    paused = [a for a in status["agents"] if a["pause_reason"]]
    for a in paused:
        print(f"  {a['name']}: {a['status']} — {a['pause_reason']}")


def _confirmed_live(args: argparse.Namespace) -> bool:
    """A live session needs --confirm-live, or an explicit "yes" typed in an interactive terminal."""
    if args.confirm_live:
        return True
    if not sys.stdin.isatty():
        return False
    answer = input("A live session places real orders with real money on AsterDex. Type yes: ")
    return answer.strip().lower() == "yes"


def _cmd_session(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    if args.action == "create":
        if args.mode == "live" and not _confirmed_live(args):
            print("error: a live session trades real money on AsterDex; add --confirm-live "
                  "(or answer yes when asked in a terminal)", file=sys.stderr)
            return EXIT_ERROR
        symbols = args.symbols.split(",") if args.symbols else None
        ref = service.create_session(engine, settings, capital=args.capital, mode=args.mode,
                                     symbols=symbols, name=args.name)
        if args.json:
            print_json(queries.session_status(engine, ref.id))
        else:
            print(f"created session {ref.id} ({ref.name}); start trading with "
                  "`python -m core engine` or the dashboard")
        return 0
    if args.action == "list":
        rows = queries.list_sessions(engine)
        if args.json:
            print_json(rows)
        else:
            print(table(rows, [("id", "id"), ("name", "name"), ("status", "status"),
                                ("mode", "mode"), ("initial_capital", "capital")]) if rows else "no sessions yet")
        return 0
    if args.action == "status":
        row = service.resolve_session(engine, args.session)
        status = queries.session_status(engine, row.id)
        print_json(status) if args.json else _print_status(status)
        return 0
    if args.action == "stop":
        ref = service.stop_session(engine, settings, args.session)
    else:
        ref = service.change_session(engine, args.session, args.action)
    if args.json:
        print_json({"id": ref.id, "status": ref.status})
    else:
        print(f"session {ref.id}: {ref.status}")
    return 0


def _cmd_agents(args: argparse.Namespace, engine: Engine) -> int:
    row = service.resolve_session(engine, args.session)
    if args.action in ("pause", "resume"):
        if not args.name:
            raise DeskError(f"name the agent to {args.action}, e.g. `python -m core agents {args.action} momentum`")
        outcome = service.change_agent(engine, row.id, args.name, args.action)
        print_json({"result": outcome}) if args.json else print(outcome)
        return 0
    agents = queries.agent_stats(engine, row.id)
    print_json(agents) if args.json else print(table([_agent_row(a) for a in agents], AGENT_COLUMNS))
    return 0


def _cmd_log(args: argparse.Namespace, engine: Engine) -> int:
    row = service.resolve_session(engine, args.session)
    limit = args.limit if args.limit else (None if args.csv else 50)
    agent = _agent_name(args.agent)
    if args.command == "ceo-log":
        if args.rule is not None and not re.fullmatch(r"[a-z_]{1,40}", args.rule):
            raise ConfigError(f"{_shorten(repr(args.rule))} is not a rule id (e.g. margin_cap, "
                              "stop_width; see the CEO log's rules column)")
        filters = {"agent": agent, "verdict": args.verdict, "kind": args.kind, "rule": args.rule}
        frame = queries.ceo_log(engine, row.id, limit=limit, **filters)
        count = queries.ceo_log_count
        cols = [("ts", "time"), ("agent", "agent"), ("symbol", "symbol"), ("kind", "kind"),
                ("verdict", "verdict"), ("rules", "rules"), ("reason", "reason")]
    else:
        symbol = args.symbol.strip().upper() if args.symbol else None
        if symbol is not None and symbol not in row.symbols.split(","):
            raise ConfigError(f"session {row.id} trades {row.symbols.replace(',', ', ')}, not "
                              f"{args.symbol}")
        filters = {"agent": agent, "symbol": symbol}
        frame = queries.trades(engine, row.id, limit=limit, **filters)
        count = queries.trades_count
        cols = [("closed_at", "closed"), ("agent", "agent"), ("symbol", "symbol"), ("side", "side"),
                ("leverage", "lev"), ("entry_price", "entry"), ("exit_price", "exit"),
                ("realized_pnl", "gross PnL"), ("fees", "fees"), ("funding", "funding"),
                ("net_pnl", "net PnL"), ("close_reason", "reason")]
    if frame.empty and not args.csv and any(v is not None for v in filters.values()):
        print("nothing matches " + " ".join(f"--{k} {v}" for k, v in filters.items() if v))
        return 0
    write_frame(frame, args.csv, cols)
    if not args.csv and limit is not None and len(frame) == limit:
        total = count(engine, row.id, **filters)
        if total > limit:
            print(f"showing the newest {limit} of {total:,}; --limit N shows more, --csv PATH "
                  "writes them all")
    return 0


def _agent_name(given: str | None) -> str | None:
    """The roster name of ``--agent`` (a name or key, any case); an unknown one is refused."""
    if given is None:
        return None
    from core.agents.roster import ROSTER, find_spec

    spec = find_spec(given)
    if spec is None:
        raise ConfigError(f"no agent {given!r}; agents: " + ", ".join(
            f"{s.name} ({s.key})" for s in ROSTER))
    return spec.name


def _cmd_market(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from core.desk.runtime import build_feed

    row = service.resolve_session(engine, args.session)
    feed = build_feed(settings, row)
    tickers = [feed.ticker(s) for s in feed.symbols]
    rows = [{"symbol": t.symbol, "price": t.price, "change_24h_pct": t.change_24h_pct,
             "high_24h": t.high_24h, "low_24h": t.low_24h, "volume_24h": t.volume_24h,
             "funding_rate": t.funding_rate, "time": queries._iso(t.time_ms)} for t in tickers]
    if args.json:
        print_json(rows)
    else:
        print(f"market at {rows[0]['time']} UTC ({row.market_source})")
        print(table(rows, [("symbol", "symbol"), ("price", "price"), ("change_24h_pct", "24h %"),
                            ("high_24h", "24h high"), ("low_24h", "24h low"),
                            ("funding_rate", "funding")]))
    return 0


TICKS_ALERT_DRAIN_S = 30.0  # after ``engine --ticks``, how long its alerts may take to go out


def _cmd_engine(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from core.alerts.sender import start_sender
    from core.desk.scheduler import EngineDriver

    if args.session is not None:  # a session that cannot trade is refused, never idled on
        row = service.resolve_session(engine, args.session)
        if row.status not in ACTIVE_SESSION:
            raise InvalidTransition(f"session {row.id} is {row.status}: there is nothing to trade; "
                                    "create a new session (python -m core session create)")
    driver = EngineDriver(settings, engine, session_id=args.session)
    if args.ticks:
        verdicts = {"approve": 0, "modify": 0, "reject": 0}
        last = None

        def on_tick(report: Any) -> None:
            nonlocal last
            last = report
            for k, n in report.verdicts.items():
                verdicts[k] += n

        sender = start_sender(settings, engine)  # the run's alerts go out beside it, as live
        try:
            done = driver.run_ticks(args.ticks, on_tick)
        finally:
            driver.stop()
            left = sender.drain(TICKS_ALERT_DRAIN_S) if sender is not None else 0
            if sender is not None:
                sender.stop()
        if left:
            print(f"{left} alert deliveries still due after {TICKS_ALERT_DRAIN_S:g} s: "
                  "./desk alerts send (or a running engine) sends them", file=sys.stderr)
        if done == 0:
            raise DeskError(f"engine did not tick: {driver.idle_reason or 'no active session'}")
        failure = driver.tick_failure if done < args.ticks else None
        print(f"ran {done} ticks; engine time {queries._iso(last.tick_ms)} UTC; status {last.status}; "
              f"equity {last.equity:,.2f} USDT; verdicts {verdicts['approve']} approved, "
              f"{verdicts['modify']} modified, {verdicts['reject']} rejected"
              + (f"; stopped early: {driver.idle_reason or 'the session ended'}"
                 if done < args.ticks and failure is None else ""))
        if failure is not None:
            print(f"error: stopped after {done} of {args.ticks} ticks: {failure}", file=sys.stderr)
            return 1
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    driver.start()
    print(f"engine running (tick every {settings.tick_seconds:g} s, {settings.bars_per_tick} bars per tick); "
          "Ctrl-C to stop", file=sys.stderr)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        driver.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level if args.command == "engine" else "WARNING",
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        if args.command == "check-exchange":  # needs no database
            from core.exchanges.check import check_exchange

            return check_exchange(settings, as_json=args.json, symbol=args.symbol)
        if args.command == "strategies":  # the file needs no database; a session's params do
            from core.cli import strategies

            if not strategies.needs_database(args):
                return strategies.run(args, settings)
        if args.command == "api":  # the server opens its own store
            from core.cli.api import run as run_api

            return run_api(args, settings)
        engine = open_database(settings.database_url)
        try:
            if args.command in ("optimize", "walkforward"):
                from core.cli.research import run as run_research
                return run_research(args, settings)
            if args.command == "session":
                return _cmd_session(args, settings, engine)
            if args.command == "agents":
                return _cmd_agents(args, engine)
            if args.command in ("ceo-log", "trades"):
                return _cmd_log(args, engine)
            if args.command == "market":
                return _cmd_market(args, settings, engine)
            if args.command == "backtest":
                from core.cli.backtest import run as run_backtest
                return run_backtest(args, settings, engine)
            if args.command in ("close", "cancel", "flatten"):
                from core.cli.manual import run as run_manual
                return run_manual(args, settings, engine)
            if args.command == "strategies":
                from core.cli.strategies import run as run_strategies
                return run_strategies(args, settings, engine)
            if args.command == "alerts":
                from core.cli.alerts import run as run_alerts
                return run_alerts(args, settings, engine)
            return _cmd_engine(args, settings, engine)
        finally:
            engine.dispose()
    except DeskError as exc:
        print(f"error: {_shorten(str(exc))}", file=sys.stderr)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"error: database: {_shorten(first)}", file=sys.stderr)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one line, the traceback only on request
        if os.environ.get("DESK_DEBUG"):
            raise
        print(f"error: internal {type(exc).__name__}: {_shorten(str(exc))} (set DESK_DEBUG=1 "
              "for details)", file=sys.stderr)
    return EXIT_ERROR
