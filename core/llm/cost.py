"""What a model call costs: USD per million input and output tokens, per model, from settings.

The desk shows cost next to PnL ("is the LLM paying for itself?") and stops spending at a daily
budget, so every stored call carries an *estimated* cost: tokens × the model's list price. Prices
come from ``LLM_PRICES`` (JSON ``{model: [usd_per_1M_input, usd_per_1M_output]}``); the defaults
cover the roster's Gemini and Grok models. A model missing from the table is charged at the most
expensive price in it, so an unknown model can only make the budget run out sooner, never later.
"""

from __future__ import annotations

from collections.abc import Mapping

# USD per 1M tokens (input, output): list prices at the time of writing; override with LLM_PRICES.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "grok-4": (3.00, 15.00),
    "grok-4-fast": (0.20, 0.50),
    "grok-4-fast-reasoning": (0.20, 0.50),
    "grok-4-fast-non-reasoning": (0.20, 0.50),
    "grok-3": (3.00, 15.00),
    "grok-3-mini": (0.30, 0.50),
    "echo-rules": (0.0, 0.0),  # the offline provider costs nothing
}
PER_TOKENS = 1_000_000


def price_of(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """The model's (input, output) price per 1M tokens; the dearest known price if unlisted."""
    if model in prices:
        return prices[model]
    if not prices:
        return (0.0, 0.0)
    return max(prices.values(), key=lambda p: p[0] + p[1])


def estimate_cost(model: str, input_tokens: int, output_tokens: int,
                  prices: Mapping[str, tuple[float, float]]) -> float:
    """Estimated USD cost of one call (negative token counts count as zero)."""
    usd_in, usd_out = price_of(model, prices)
    return (max(0, input_tokens) * usd_in + max(0, output_tokens) * usd_out) / PER_TOKENS
