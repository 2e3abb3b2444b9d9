"""Runs the agents that are due on a tick and turns their answers into ``AgentDecision``s.

An agent is due when a new bar of its timeframe has closed since the previous tick (the scalper
uses the feed's fastest bars). A strategy that raises becomes a recorded failure, so one broken
agent never stops the others. Agents backed by a model run concurrently (a tick then takes about as
long as the slowest call); pure rule agents run inline, which is faster than a thread hop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from core.agents.base import AgentView, MarketView, Strategy
from core.desk.ledger import AgentLedger, Ledger
from core.models import INTERVAL_MS, AgentDecision

log = logging.getLogger(__name__)


def timeframe_ms(strategy: Strategy, base_interval: str) -> int:
    base = INTERVAL_MS[base_interval]
    if strategy.spec.key == "scalper":
        return base
    return max(base, strategy.spec.timeframe_ms)


def is_due(strategy: Strategy, base_interval: str, prev_ms: int, now_ms: int) -> bool:
    tf = timeframe_ms(strategy, base_interval)
    return now_ms // tf > prev_ms // tf


def build_view(agent: AgentLedger, ledger: Ledger, market: MarketView, prices: dict[str, float],
               now_ms: int) -> AgentView:
    others = frozenset(
        s for a in ledger.agents.values() if a.id != agent.id for s in a.positions
    )
    return AgentView(
        now_ms=now_ms,
        market=market,
        equity=agent.equity(prices),
        positions={s: p.held() for s, p in agent.positions.items() if p.quantity > 0},
        owned_elsewhere=others,
    )


def _decide(strategy: Strategy, view: AgentView) -> AgentDecision:
    try:
        return strategy.decide(view)
    except Exception as exc:  # one agent's bug must not stop the desk; it is recorded
        log.exception("agent %s failed", strategy.spec.name)
        return AgentDecision(agent=strategy.spec.name, failure=f"{type(exc).__name__}: {exc}")


def run_agents(
    jobs: Sequence[tuple[Strategy, AgentView]], *, concurrent: bool
) -> list[AgentDecision]:
    if not concurrent or len(jobs) < 2:
        return [_decide(s, v) for s, v in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="agent") as pool:
        return list(pool.map(lambda job: _decide(*job), jobs))
