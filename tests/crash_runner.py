"""Runs ``python -m core`` but SIGKILLs itself at a chosen point, to test crash recovery.

CRASH_AT=before_send:N   the Nth order intent is committed, the process dies before sending it
CRASH_AT=after_send:N    the venue executed the Nth order, the process dies before booking it
CRASH_AT=after_trigger:N the venue filled a resting stop/take-profit (Nth time), the desk never
                         booked it
"""

from __future__ import annotations

import os
import signal
import sys

from core.exchanges.paper import PaperExchange

point, _, nth = os.environ["CRASH_AT"].partition(":")
target = int(nth or 1)
seen = {"orders": 0, "triggers": 0}
place_order, sync = PaperExchange.place_order, PaperExchange.sync


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crashing_place_order(self, request):  # type: ignore[no-untyped-def]
    seen["orders"] += 1
    if point == "before_send" and seen["orders"] == target:
        _die()
    result = place_order(self, request)
    if point == "after_send" and seen["orders"] == target:
        _die()
    return result


def crashing_sync(self, step):  # type: ignore[no-untyped-def]
    events = sync(self, step)
    if events.fills:
        seen["triggers"] += 1
        if point == "after_trigger" and seen["triggers"] == target:
            _die()
    return events


PaperExchange.place_order = crashing_place_order  # type: ignore[method-assign]
PaperExchange.sync = crashing_sync  # type: ignore[method-assign]

from core.cli import main  # noqa: E402  (after the patches)

sys.exit(main(sys.argv[1:]))
