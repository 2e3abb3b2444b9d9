"""``python -m core alerts``: the alert targets and the outbox from a terminal.

    python -m core alerts [list] [--session N] [--problems] [--limit N] [--json]
    python -m core alerts test [--json]       a test message to each target, with its result
    python -m core alerts send [--wait S]     deliver what is pending now (no engine running)

``list`` shows the targets (by name and service; their URLs are secrets and never shown) and
the newest alerts with how each delivery stands: sent, waiting for a retry (and why), failed.
``test`` exits 1 when a target did not take the message; with no target configured, 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from core import queries, service
from core.cli.output import print_json, table
from core.config import Settings

EXIT_FAILED = 1
LIST_LIMIT = 30


def add_parser(sub: Any, *, id_type: Callable[[str], int]) -> None:
    a = sub.add_parser("alerts", help="alert targets and recent alerts; send a test alert")
    a.add_argument("action", nargs="?", choices=["list", "test", "send"], default="list")
    a.add_argument("--session", type=id_type, help="only this session's alerts")
    a.add_argument("--problems", action="store_true",
                   help="only alerts a target failed to take (or has yet to, after a failure)")
    a.add_argument("--limit", type=id_type, default=LIST_LIMIT)
    a.add_argument("--wait", type=float, default=60.0, metavar="S",
                   help="send: seconds to keep sending (default 60)")
    a.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    if args.action == "test":
        return _test(args, settings)
    if args.action == "send":
        left = service.send_pending_alerts(engine, settings, timeout_s=max(0.0, args.wait))
        counts = queries.alert_counts(engine)
        print(f"alerts: {counts['sent']} sent, {counts['failed']} failed, {counts['routed']} "
              f"waiting for a target (a retry or the rate limit), {counts['muted']} muted"
              + (f"; {left} still due when the time ran out" if left else ""))
        return 0
    targets = queries.alert_targets(settings)
    alerts = queries.recent_alerts(engine, session_id=args.session, limit=args.limit,
                                   problems_only=args.problems)
    if args.json:
        print_json({"targets": targets, "alerts": alerts,
                    "counts": queries.alert_counts(engine, session_id=args.session)})
        return 0
    _print_targets(targets)
    if not alerts:
        print("no alerts yet" if not args.problems else "no alert has failed")
        return 0
    print(table([{**a, "deliveries": queries.delivery_summary(a)} for a in alerts],
                [("created_at", "written"), ("session_id", "session"), ("kind", "kind"),
                 ("severity", "severity"), ("status", "status"), ("title", "title"),
                 ("deliveries", "deliveries")]))
    return 0


def _print_targets(targets: dict[str, Any]) -> None:
    if targets["error"]:
        print(f"alert targets: ALERT_URLS is not usable: {targets['error']}")
    elif not targets["targets"]:
        print("alert targets: none (set ALERT_URLS; see .env.example)")
    else:
        print("alert targets: " + "; ".join(
            f"{t['target']} {t['min_severity']} and worse, {t['kinds']}"
            for t in targets["targets"]))
    if targets["kinds_off"]:
        print(f"switched off: {', '.join(targets['kinds_off'])}")
    print()


def _test(args: argparse.Namespace, settings: Settings) -> int:
    results = service.send_test_alerts(settings)
    if args.json:
        print_json([{"target": r.target, "service": r.service, "ok": r.error is None,
                     "error": r.error, "seconds": round(r.seconds, 3)} for r in results])
    else:
        for r in results:
            outcome = (f"sent in {r.seconds:.1f} s" if r.error is None else f"FAILED: {r.error}")
            print(f"{r.target} [{r.service}]: {outcome}")
    return 0 if all(r.error is None for r in results) else EXIT_FAILED
