"""``python -m core strategies``: the agents' parameters from a terminal.

    python -m core strategies show [--agent KEY] [--session ID] [--json]
    python -m core strategies check [FILE]

``show`` lists what the strategy file (setting ``STRATEGIES_FILE``) sets for new sessions, or with
``--session`` what that session runs with, each parameter with its default, what it accepts and
its meaning (``*`` marks a value that differs from its default). ``check`` validates a file (the
configured one by default) without touching anything: exit 0 when every parameter is accepted, 1
with the file, line, parameter and bound of the first one refused (or a missing, unreadable or
malformed file).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core import queries
from core.agents import strategy_file
from core.cli.output import print_json, table, user_path
from core.config import Settings
from core.errors import ConfigError

EXIT_INVALID = 1


def add_parser(sub: Any, *, id_type: Callable[[str], int]) -> None:
    s = sub.add_parser("strategies", help="show or check the agents' parameters (strategies.toml)")
    s.add_argument("action", choices=["show", "check"])
    s.add_argument("file", nargs="?", help="check: the strategy file (default: STRATEGIES_FILE)")
    s.add_argument("--agent", help="show: only this agent's parameters (trend, momentum, ...)")
    s.add_argument("--session", type=id_type, help="show: the parameters this session runs with")
    s.add_argument("--json", action="store_true")


def needs_database(args: argparse.Namespace) -> bool:
    return args.action == "show" and args.session is not None


def run(args: argparse.Namespace, settings: Settings, engine: Any = None) -> int:
    if args.action == "check":
        return _check(args, settings)
    if args.file is not None:
        raise ConfigError("show reads the configured file (STRATEGIES_FILE) or --session; "
                          "to validate another file: strategies check FILE")
    if args.session is not None:
        params, source = queries.session_params(engine, args.session), f"session {args.session}"
    else:
        params, source = queries.strategy_file_params(settings), str(settings.strategies_file)
    rows = queries.parameter_rows(params, args.agent)
    if args.agent is not None and not rows:
        raise ConfigError(f"no agent {args.agent!r} (agents: trend, momentum, mean_reversion, "
                          "scalper, arbitrage)")
    if args.json:
        print_json({"source": source, "parameters": rows})
        return 0
    print(f"agent parameters from {source} (* differs from the default):")
    shown = [{**r, "name": ("* " if r["changed"] else "  ") + r["name"], "value": _text(r["value"]),
              "default": _text(r["default"])} for r in rows]
    print(table(shown, queries.PARAMETER_COLUMNS))
    return 0


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path = user_path(args.file) if args.file else settings.strategies_file
    try:
        params = strategy_file.load(path)  # exactly as a new session reads it
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    rows = queries.parameter_rows(params)
    changed = [r["name"] for r in rows if r["changed"]]
    note = (f"{len(changed)} differ from the defaults: {', '.join(changed)}" if changed
            else "all at their defaults")
    print(f"{path}: OK, {len(rows)} parameters ({note})")
    return 0
