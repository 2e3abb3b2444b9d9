"""``python -m core close | cancel | flatten``: a trader's own orders from a terminal.

    python -m core close POSITION [--wait S] [--json]     close one position at market
    python -m core cancel ORDER [--wait S] [--json]       cancel one resting order
    python -m core flatten AGENT [--session N] [--wait S] [--json]
                                                          pause an agent, close what it holds

They go through the same execution path as the engine's own orders. When an engine trades the
session, the order is queued for its next tick and the command waits up to ``--wait`` seconds for
the outcome; when none does, the command carries it out itself. Exit status: 0 done (or still
queued when the wait ran out, which it says), 1 failed at the venue, 2 refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from core import service
from core.config import Settings

WAIT_S = 30.0
EXIT_FAILED = 1
EXIT_REFUSED = 2
COMMANDS = ("close", "cancel", "flatten")


def add_parsers(sub: Any, *, id_type: Callable[[str], int]) -> None:
    """``id_type``: the CLI's own parser of ids (positive whole numbers, readable errors)."""
    for name, target, helptext in (
        ("close", "position", "close one position at market (reduce-only)"),
        ("cancel", "order", "cancel one resting order (never a position's only stop)"),
        ("flatten", "agent", "pause an agent and close every position it holds"),
    ):
        c = sub.add_parser(name, help=helptext)
        if name == "flatten":
            c.add_argument(target, help="agent name or key, e.g. 'Momentum Hunter' or momentum")
            c.add_argument("--session", type=id_type, help="session id (default: the latest)")
        else:
            c.add_argument(target, type=id_type, help=f"{target} id (see ./desk session status "
                                                      "or the Positions page)")
        c.add_argument("--wait", type=float, default=WAIT_S, metavar="S",
                       help=f"seconds to wait for a running engine to carry it out (default {WAIT_S:g})")
        c.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    if args.command == "close":
        outcome = service.close_position(engine, settings, args.position)
    elif args.command == "cancel":
        outcome = service.cancel_order(engine, settings, args.order)
    else:
        outcome = service.flatten_agent(engine, settings, args.session, args.agent)
    deadline = time.monotonic() + max(0.0, args.wait)
    while outcome.status in ("pending", "working") and time.monotonic() < deadline:
        time.sleep(0.25)
        outcome = service.manual_outcome(engine, outcome.id)
    if args.json:
        print(json.dumps({"id": outcome.id, "session": outcome.session_id, "kind": outcome.kind,
                          "status": outcome.status, "note": outcome.note}))
    elif outcome.status in ("refused", "failed"):
        print(f"error: {outcome.status}: {outcome.note}", file=sys.stderr)
    else:
        print(f"{outcome.status}: {outcome.note}")
    return {"refused": EXIT_REFUSED, "failed": EXIT_FAILED}.get(outcome.status, 0)
