"""The daily LLM budget of a session, counted on the engine clock.

``LLM_DAILY_BUDGET_USD`` caps what one session's model calls may cost per engine-clock day (UTC
midnight to midnight of the session's engine time, so a replay or a backtest spends the way paper
trading would). When it is spent, agents fall back to their rules (``LLM_BUDGET_EXHAUSTED=rules``)
or stop proposing (``stop``) until the next day; positions and their stops are never touched. The
engine ``sync``s the budget from the store at the start of a tick (so a restart remembers what the
day already cost) and ``charge``s each call as it stores it; the agents only read ``exhausted``.
Agents of one tick decide together, so a day can overshoot its budget by at most one tick's calls.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Connection, func, select

from core.store.tables import CEO_DECISIONS, LLM_CALLS

DAY_MS = 86_400_000
BUDGET_KIND = "llm_budget"


def day_of(ms: int) -> int:
    """The engine-clock day number (days since the epoch, UTC) of a timestamp."""
    return ms // DAY_MS


class LLMBudget:
    def __init__(self, daily_usd: float, mode: Literal["rules", "stop"] = "rules") -> None:
        self.daily_usd = daily_usd
        self.mode = mode
        self.day: int | None = None
        self.spent = 0.0
        self.logged = False  # the CEO log already says the day's budget is spent

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.daily_usd

    @property
    def remaining(self) -> float:
        return max(0.0, self.daily_usd - self.spent)

    def sync(self, conn: Connection, session_id: int, now_ms: int) -> None:
        """Adopt the store's figures for ``now_ms``'s day when the day changes (or on the first
        tick after a start): what the day's calls cost, and whether the exhaustion was logged."""
        day = day_of(now_ms)
        if day == self.day:
            return
        start, end = day * DAY_MS, (day + 1) * DAY_MS
        c = LLM_CALLS.c
        self.spent = float(conn.scalar(
            select(func.coalesce(func.sum(c.cost_usd), 0.0))
            .where(c.session_id == session_id, c.tick_ms >= start, c.tick_ms < end)) or 0.0)
        d = CEO_DECISIONS.c
        self.logged = conn.scalar(
            select(func.count()).select_from(CEO_DECISIONS)
            .where(d.session_id == session_id, d.kind == BUDGET_KIND, d.ts_ms >= start,
                   d.ts_ms < end)) != 0
        self.day = day

    def charge(self, usd: float) -> None:
        self.spent += max(0.0, usd)

    def exhaustion_note(self) -> str:
        then = ("agents trade on their rules" if self.mode == "rules"
                else "agents stop proposing")
        return (f"daily LLM budget spent: {self.spent:,.4f} of {self.daily_usd:,.2f} USD today "
                f"(engine clock); {then} until the next day, open positions keep their stops")
