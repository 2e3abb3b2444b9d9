"""The one place research meets the agents' configuration (``core.agents.desk_params``).

A study samples flat keys (``trend.adx_min``) from the declared search ranges; a trial turns
them into a ``DeskParams`` (``InvalidParams`` when a point breaks a bound or a cross-field rule,
which the study prunes) and runs only the chosen agents, their capital shares renormalised so
they split the whole capital in their roster proportions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.agents.base import AgentSpec, Strategy
from core.agents.desk_params import AGENT_KEYS, DeskParams, SearchParam
from core.agents.strategies import build_strategies
from core.errors import ConfigError

__all__ = ["AGENT_KEYS", "DeskParams", "SearchParam", "agent_list", "params_for", "search_space",
           "trial_roster", "trial_strategies"]


def agent_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``trend,momentum`` → the agent keys, checked, in the order given, without repeats."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    keys = tuple(dict.fromkeys(p.strip().lower() for p in parts if p.strip()))
    if not keys:
        raise ConfigError(f"choose at least one agent: {', '.join(AGENT_KEYS)}")
    unknown = [k for k in keys if k not in AGENT_KEYS]
    if unknown:
        raise ConfigError(f"unknown agent {unknown[0]!r}; agents: {', '.join(AGENT_KEYS)}")
    return keys


def search_space(agents: Sequence[str]) -> list[SearchParam]:
    """Every searchable strategy parameter of ``agents`` (roster settings are not searched)."""
    space = DeskParams.defaults().search_space(list(agents), roster=False)
    return [p for agent in agents for p in space[agent]]


def params_for(values: dict[str, Any], base: DeskParams | None = None) -> DeskParams:
    """``base`` (the shipped defaults) with ``values`` set; InvalidParams on a bad point."""
    return (base or DeskParams.defaults()).with_values(values)


def trial_roster(agents: Sequence[str], params: DeskParams) -> tuple[AgentSpec, ...]:
    """The chosen agents' roster entries with their shares scaled to sum to 1."""
    specs = {s.key: s for s in params.specs()}
    chosen = [specs[k] for k in agents]
    total = sum(s.capital_share for s in chosen)
    return tuple(replace(s, capital_share=s.capital_share / total) for s in chosen)


def trial_strategies(roster: Sequence[AgentSpec], params: DeskParams) -> list[Strategy]:
    return build_strategies(roster, params)
