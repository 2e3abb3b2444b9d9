"""What a model call costs: USD per million input and output tokens, per model, from settings.

The desk shows cost next to PnL ("is the LLM paying for itself?") and stops spending at a daily
budget, so every stored call carries an *estimated* cost: tokens × the model's list price. Prices
come from ``LLM_PRICES`` (JSON ``{model: [usd_per_1M_input, usd_per_1M_output]}``); the defaults
(``core.config.DEFAULT_PRICES``) cover the roster's Gemini and Grok models. A model missing from the table is charged at the most
expensive price in it, so an unknown model can only make the budget run out sooner, never later.
"""

from __future__ import annotations

from collections.abc import Mapping

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
