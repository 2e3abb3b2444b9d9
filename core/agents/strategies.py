"""The registry that turns roster entries and their parameters into strategy objects.

The roster (``core/agents/roster.py``) says who the agents are and ``DeskParams``
(``core/agents/desk_params.py``) what each one's thresholds and roster settings are; this module
says which rule each one runs. ``build_strategies`` returns one object per roster entry, matched
by ``spec.key``, so the engine never imports a strategy module by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.agents.arbitrage import ArbitrageStrategy
from core.agents.base import AgentSpec, Strategy
from core.agents.desk_params import DeskParams
from core.agents.external import ExternalSignalsStrategy
from core.agents.mean_reversion import MeanReversionStrategy
from core.agents.momentum import MomentumStrategy
from core.agents.params import STRATEGY_MODELS, StrategyParams
from core.agents.scalper import ScalperStrategy
from core.agents.trend import TrendStrategy

# each factory takes (spec, params of its own model or None for the defaults)
STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "trend": TrendStrategy,
    "momentum": MomentumStrategy,
    "mean_reversion": MeanReversionStrategy,
    "scalper": ScalperStrategy,
    "arbitrage": ArbitrageStrategy,
    "signals": lambda spec, _params: ExternalSignalsStrategy(spec),
}


def build_strategy(spec: AgentSpec, params: StrategyParams | None = None) -> Strategy:
    """The strategy object for one roster entry, on ``params`` (its defaults when None); KeyError
    names an unknown key, ``InvalidParams`` parameters of another strategy."""
    try:
        factory = STRATEGIES[spec.key]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise KeyError(f"no strategy for agent key {spec.key!r} (known: {known})") from None
    return factory(spec, params)


def build_strategies(roster: Iterable[AgentSpec] | None = None,
                     params: DeskParams | None = None) -> list[Strategy]:
    """One strategy object per roster entry, in roster order, each on its parameters in
    ``params`` (the defaults when None). Without a roster, the five agents with ``params``'
    roster settings (capital share, risk level and its leverage cap, model)."""
    desk = DeskParams.defaults() if params is None else params
    specs = desk.specs() if roster is None else roster
    return [build_strategy(spec, desk.strategy(spec.key) if spec.key in STRATEGY_MODELS else None)
            for spec in specs]
