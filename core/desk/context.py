"""The shapes every part of a session's engine shares: the ``Desk`` it runs on and what a tick
reports.

Why it exists apart from the engine: the CEO's periodic review, the model services and the shadow
book all act on a ``Desk`` and are called by ``run_cycle``; with the type here they import it
without importing the engine back. Built by ``core.desk.runtime`` (the composition root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.agents.base import Strategy
from core.ceo.rules import RiskLimits
from core.clock import Clock
from core.config import Settings
from core.desk.execution import Execution
from core.desk.ledger import Ledger
from core.exchanges.base import Exchange
from core.feeds.base import MarketFeed
from core.models import Verdict
from core.store.pending import PendingRows

if TYPE_CHECKING:
    from core.desk.llm_services import LLMServices

ACTIVE_SESSION = ("created", "running", "paused", "halted", "stopping")
PRIVATE_FLUSH_TICKS = 500  # a private store (backtest) writes its appended rows this often


@dataclass(slots=True)
class CycleReport:
    tick_ms: int
    status: str
    equity: float = 0.0
    drawdown_pct: float = 0.0
    proposals: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {v.value: 0 for v in Verdict})
    events: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Desk:
    """Everything one session's engine needs; built by core/desk/runtime.py."""

    db: Session
    ledger: Ledger
    feed: MarketFeed
    exchange: Exchange
    clock: Clock
    strategies: dict[str, Strategy]
    settings: Settings
    limits: RiskLimits
    commit: Callable[[], None]
    concurrent_agents: bool = False
    marks: dict[str, float] = field(default_factory=dict)
    llm: LLMServices | None = None  # budget, CEO reviewer, shadow book (None: rules only)
    # Nobody else writes or reads this store while the engine runs (a backtest), and nothing of a
    # run must survive a crash (an interrupted run is run again): no user intents to read each
    # tick, appended rows are flushed every PRIVATE_FLUSH_TICKS ticks (held notes also before a
    # tick's proposals, so proposal ids stay in time order), and ``commit`` may hold everything
    # for ``flush`` to commit (see core/backtest/runner.py).
    private_store: bool = False
    pending: PendingRows = field(default_factory=PendingRows)
    # Built to carry out a trader's command while no engine trades the session: the tick acts on
    # the market the session last saw (no bar is stepped) and no agent decides, no review runs.
    hold_market: bool = False
    execution: Execution = field(init=False)
    # Stopped while no engine traded it (or its engine died mid-stop): nothing moved its market
    # since, so the stop closes at the market the session last saw instead of stepping on.
    stopped_while_idle: bool = field(init=False)

    def __post_init__(self) -> None:
        self.execution = Execution(
            self.db, self.ledger, self.exchange, commit=self.commit, now_ms=self.clock.now_ms,
            alerts=not self.private_store,  # a backtest alerts once, when it finishes
        )
        self.stopped_while_idle = self.ledger.session.status == "stopping"


