"""What a strategy agent sees and what it must answer.

An agent reads an ``AgentView`` (market features up to now, its own positions and equity, its
limits) and returns an ``AgentDecision``: proposals, or an abstention whose note quotes the
indicator values behind it. Agents never size orders against the venue or enforce caps: the CEO's
hard rules do that, so an aggressive agent is disciplined rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.indicators import Features
from core.models import INTERVAL_MS, AgentDecision, ExternalSignal, PositionSide, RiskLevel


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A roster entry (DESIGN.md section 4)."""

    key: str
    name: str
    strategy: str
    model: str
    capital_share: float
    risk_level: RiskLevel
    max_leverage: int
    timeframe: str

    @property
    def timeframe_ms(self) -> int:
        return INTERVAL_MS[self.timeframe]


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """One of the agent's open positions, as the desk books it."""

    symbol: str
    side: PositionSide
    quantity: float
    entry_price: float
    leverage: int
    stop_price: float
    take_profit: float | None
    opened_at_ms: int
    group: str | None = None


class MarketView(Protocol):
    """Closed-bar market data up to the engine's now; never a bar from the future."""

    symbols: tuple[str, ...]
    base_interval: str

    def features(self, symbol: str, interval: str) -> Features | None:
        """Indicators of the latest closed bar of ``interval`` (None before the first one)."""
        ...

    def closes(self, symbol: str, interval: str, n: int) -> np.ndarray:
        """The last ``n`` closes of ``interval`` up to now (fewer at the start)."""
        ...

    def price(self, symbol: str) -> float: ...

    def funding_rate(self, symbol: str) -> float | None: ...


@dataclass(slots=True)
class AgentView:
    now_ms: int
    market: MarketView
    equity: float
    positions: dict[str, HeldPosition] = field(default_factory=dict)
    owned_elsewhere: frozenset[str] = frozenset()
    signals: tuple[ExternalSignal, ...] = ()  # the External signals agent's input; empty for others


class Strategy(Protocol):
    spec: AgentSpec

    def decide(self, view: AgentView) -> AgentDecision:
        """Proposals for this tick, or an abstention whose note says why (with the numbers)."""
        ...
