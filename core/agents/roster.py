"""The five agents of the product brief, with their capital shares, risk levels and leverage caps."""

from __future__ import annotations

from core.agents.base import AgentSpec
from core.models import RISK_LEVERAGE_CAP, RiskLevel

__all__ = ["BY_KEY", "RISK_LEVERAGE_CAP", "ROSTER", "find_spec"]

ROSTER: tuple[AgentSpec, ...] = (
    AgentSpec("trend", "TrendMaster Alpha", "trend following", "gemini", 0.25, RiskLevel.MEDIUM, 10, "1h"),
    AgentSpec("momentum", "Momentum Hunter", "momentum", "grok", 0.20, RiskLevel.HIGH, 20, "1h"),
    AgentSpec("mean_reversion", "Mean Reversion Pro", "mean reversion", "gemini", 0.20, RiskLevel.MEDIUM, 10, "1h"),
    AgentSpec("scalper", "Lightning Scalper", "scalping", "grok", 0.15, RiskLevel.LOW, 5, "15m"),
    AgentSpec("arbitrage", "Arbitrage Scanner", "statistical arbitrage", "gemini", 0.20, RiskLevel.LOW, 5, "1h"),
)

BY_KEY: dict[str, AgentSpec] = {s.key: s for s in ROSTER}


def find_spec(name_or_key: str) -> AgentSpec | None:
    """Look an agent up by its display name or key, case-insensitively."""
    wanted = name_or_key.strip().lower()
    for spec in ROSTER:
        if wanted in (spec.key.lower(), spec.name.lower()):
            return spec
    return None
