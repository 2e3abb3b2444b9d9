"""The registry that turns roster entries into strategy objects.

The roster (``core/agents/roster.py``) says who the agents are; this module says which rule each
one runs. ``build_strategies`` returns one object per roster entry, matched by ``spec.key``, so the
engine never imports a strategy module by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.agents.arbitrage import ArbitrageStrategy
from core.agents.base import AgentSpec, Strategy
from core.agents.external import ExternalSignalsStrategy
from core.agents.mean_reversion import MeanReversionStrategy
from core.agents.momentum import MomentumStrategy
from core.agents.roster import ROSTER
from core.agents.scalper import ScalperStrategy
from core.agents.trend import TrendStrategy

STRATEGIES: dict[str, Callable[[AgentSpec], Strategy]] = {
    "trend": TrendStrategy,
    "momentum": MomentumStrategy,
    "mean_reversion": MeanReversionStrategy,
    "scalper": ScalperStrategy,
    "arbitrage": ArbitrageStrategy,
    "signals": ExternalSignalsStrategy,
}


def build_strategy(spec: AgentSpec) -> Strategy:
    """The strategy object for one roster entry; KeyError names an unknown key."""
    try:
        factory = STRATEGIES[spec.key]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise KeyError(f"no strategy for agent key {spec.key!r} (known: {known})") from None
    return factory(spec)


def build_strategies(roster: Iterable[AgentSpec] = ROSTER) -> list[Strategy]:
    """One strategy object per roster entry, in roster order."""
    return [build_strategy(spec) for spec in roster]
