"""The five agents of the product brief, with their capital shares, risk levels and leverage caps,
and the optional sixth, "External signals", which proposes the trade ideas a trader sends from
outside the desk (``EXTERNAL_SIGNALS_SHARE`` of a new session's capital; none by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.agents.base import AgentSpec
from core.models import RISK_LEVERAGE_CAP, RiskLevel

__all__ = ["BY_KEY", "EXTERNAL", "EXTERNAL_MODEL", "RISK_LEVERAGE_CAP", "ROSTER", "find_spec", "session_roster"]

ROSTER: tuple[AgentSpec, ...] = (
    AgentSpec("trend", "TrendMaster Alpha", "trend following", "gemini", 0.25, RiskLevel.MEDIUM, 10, "1h"),
    AgentSpec("momentum", "Momentum Hunter", "momentum", "grok", 0.20, RiskLevel.HIGH, 20, "1h"),
    AgentSpec("mean_reversion", "Mean Reversion Pro", "mean reversion", "gemini", 0.20, RiskLevel.MEDIUM, 10, "1h"),
    AgentSpec("scalper", "Lightning Scalper", "scalping", "grok", 0.15, RiskLevel.LOW, 5, "15m"),
    AgentSpec("arbitrage", "Arbitrage Scanner", "statistical arbitrage", "gemini", 0.20, RiskLevel.LOW, 5, "1h"),
)

# Its timeframe is the base bar: a signal is proposed on the tick after it arrives.
EXTERNAL = AgentSpec("signals", "External signals", "external signals", "external", 0.0,
                     RiskLevel.MEDIUM, 10, "15m")

EXTERNAL_MODEL = "external (API signals)"  # what the UI shows as its model

BY_KEY: dict[str, AgentSpec] = {s.key: s for s in (*ROSTER, EXTERNAL)}


def session_roster(external_share: float = 0.0,
                   five: Sequence[AgentSpec] = ROSTER) -> tuple[AgentSpec, ...]:
    """The agents of a new session: the five (``five``: as the session's parameters set them),
    and the External signals agent when it has a share (the five then share the rest in their
    roster proportions)."""
    if not 0 <= external_share <= 0.5:
        raise ValueError(f"the External signals share {external_share} is outside 0 .. 0.5")
    if external_share == 0:
        return tuple(five)
    rest = 1 - external_share
    return (*(replace(s, capital_share=s.capital_share * rest) for s in five),
            replace(EXTERNAL, capital_share=external_share))


def find_spec(name_or_key: str) -> AgentSpec | None:
    """Look an agent up by its display name or key, case-insensitively."""
    wanted = name_or_key.strip().lower()
    for spec in (*ROSTER, EXTERNAL):
        if wanted in (spec.key.lower(), spec.name.lower()):
            return spec
    return None
