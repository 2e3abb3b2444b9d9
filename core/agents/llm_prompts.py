"""What a model-backed agent is told: one versioned prompt per strategy.

A prompt carries everything the rule agent based its signal on, so the model refines a decision
with the same facts rather than guessing: the strategy's rule in words (with its thresholds, read
from the strategy module so they cannot drift), the indicator values the rule reads on its
timeframes, the agent's equity, open positions (mark, unrealized PnL, stop) and hard limits, the
rule-based proposals as JSON on one ``RULE_SIGNAL_JSON:`` line (the offline ``EchoProvider`` answers
with that line, which keeps ``AGENT_LLM=offline`` trading exactly like the rules), and the fixed
JSON schema of the answer (``core.llm.base.LLMAnswers``).

Versions: ``PROMPT_VERSION`` names the frame (system text, sections, schema) and
``STRATEGY_VERSIONS`` each strategy's brief; ``prompt_version(spec)`` joins them, and is what the
audit trail stores with every call. Change a text, bump its version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from core.agents import arbitrage, mean_reversion, momentum, scalper, trend
from core.agents.base import AgentSpec, AgentView, MarketView
from core.agents.params import (
    STRATEGY_MODELS,
    ArbitrageParams,
    MeanReversionParams,
    MomentumParams,
    ScalperParams,
    StrategyParams,
    TrendParams,
)
from core.ceo.rules import RiskLimits
from core.llm.base import LLMAnswer, LLMAnswers
from core.models import AgentDecision, Proposal

PROMPT_VERSION = "agent-v2"
STRATEGY_VERSIONS: dict[str, str] = {
    "trend": "trend-1", "momentum": "momentum-1", "mean_reversion": "mean_reversion-1",
    "scalper": "scalper-1", "arbitrage": "arbitrage-1",
}
SYSTEM = (
    "You are a perpetual-futures trading agent on a supervised desk. Refine the rule-based signal "
    "you are given; you may keep it, change its numbers, or hold. A CEO enforces hard risk limits "
    "on whatever you answer. Answer with JSON only, matching the schema."
)


def _inline(node: object, defs: dict[str, object]) -> object:
    """The schema with every ``$ref`` replaced by its definition (some servers reject refs)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_RAW_SCHEMA = LLMAnswers.model_json_schema()
SCHEMA: dict[str, object] = _inline(_RAW_SCHEMA, _RAW_SCHEMA.get("$defs", {}))  # type: ignore[assignment]


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def brief(key: str, params: StrategyParams | None, tf: str) -> str:
    """The strategy's rule in a sentence, with the thresholds the agent runs on."""
    p = default_params(key) if params is None else params
    if isinstance(p, TrendParams):
        return (
            f"Trend following on {tf} bars: enter when EMA{p.fast_ema} crosses EMA{p.slow_ema} "
            f"and the {p.filter_interval} timeframe agrees (ADX14 ≥ {p.adx_min:g} and price on the "
            f"cross's side of the {p.filter_interval} EMA20); stop {p.stop_atr:g}×ATR14, "
            f"take-profit {p.tp_atr:g}×ATR14; exit when the EMAs cross back."
        )
    if isinstance(p, MomentumParams):
        return (
            f"Momentum breakouts on {tf} bars: a close beyond the prior 20-bar high (low) with "
            f"volume above {p.volume_multiple:g}× its 20-bar average and ROC10 in the same "
            f"direction; stop {p.stop_atr:g}×ATR14, take-profit {p.tp_atr:g}×ATR14; exit when "
            "ROC10 turns against the position."
        )
    if isinstance(p, MeanReversionParams):
        return (
            f"Mean reversion on {tf} bars: fade a close stretched |z| ≥ {p.z_entry:g} from its "
            f"20-bar mean when RSI14 agrees (< {p.rsi_oversold:g} to buy, > {p.rsi_overbought:g} "
            f"to sell); stop {p.stop_std:g} standard deviations beyond price, target the mean."
        )
    if isinstance(p, ScalperParams):
        return (
            f"Scalping on the fastest bars ({tf}): with the EMA5/EMA13 trend, enter when RSI7 "
            f"turns back through {p.rsi_long_trigger:g} (longs) or {p.rsi_short_trigger:g} "
            f"(shorts); stop {p.stop_atr:g}×ATR14, take-profit {p.tp_atr:g}×ATR14, time stop "
            f"after {p.time_stop_bars} bars."
        )
    if isinstance(p, ArbitrageParams):
        return (
            f"Statistical pair trading (not risk-free) on {tf} bars: when the log-price spread of "
            f"two correlated perps is stretched |z| ≥ {p.z_entry:g} over {p.lookback} bars, short "
            "the rich leg and long the cheap one, equal margin, both or neither; stop "
            f"{p.stop_atr:g}×ATR14 per leg; close both when |z| ≤ {p.z_exit:g}."
        )
    return f"A rule-based strategy on {tf} bars."


def default_params(key: str) -> StrategyParams | None:
    model = STRATEGY_MODELS.get(key)
    return None if model is None else model()


def prompt_version(spec: AgentSpec) -> str:
    return f"{PROMPT_VERSION}/{STRATEGY_VERSIONS.get(spec.key, 'generic-1')}"


@dataclass(frozen=True, slots=True)
class Prompt:
    version: str
    system: str
    user: str
    schema: dict[str, object]


def render(spec: AgentSpec, view: AgentView, rules: AgentDecision,
           limits: RiskLimits | None = None, params: StrategyParams | None = None) -> Prompt:
    return Prompt(prompt_version(spec), SYSTEM,
                  build_prompt(spec, view, rules, limits, params), SCHEMA)


def build_prompt(spec: AgentSpec, view: AgentView, rules: AgentDecision,
                 limits: RiskLimits | None = None, params: StrategyParams | None = None) -> str:
    """The model's prompt; ``params``: the thresholds the agent's rules run on (its defaults
    when None), quoted in the strategy's brief and deciding which indicators it is shown."""
    limits = limits or RiskLimits()
    signal = {"decisions": [rule_answer(p).model_dump() for p in rules.proposals]}
    prices = {s: view.market.price(s) for s in view.market.symbols}
    return "\n".join([
        f"Agent: {spec.name} ({spec.strategy}), risk {spec.risk_level.value}, "
        f"max leverage {spec.max_leverage}x.",
        f"Strategy: {brief(spec.key, params, _timeframe(spec, view.market))}",
        f"Equity: {view.equity:.2f} USDT. Prices: {json.dumps(prices)}.",
        f"Open positions: {json.dumps(_positions(view))}. Symbols held by other agents: "
        f"{sorted(view.owned_elsewhere)}.",
        _limits_text(spec, limits),
        f"Indicators (latest closed bars): {json.dumps(indicators(spec, view.market, params))}",
        f"Rule-based view: {rules.note or 'see the proposals'}",
        f"RULE_SIGNAL_JSON: {json.dumps(signal)}",
        f"Answer schema (JSON Schema): {json.dumps(SCHEMA)}",
        "Answer {\"decisions\": [...]} with one entry per trade you want (none to hold). Actions: "
        "open_long, open_short, close (only a symbol you hold), hold. Prices in USDT; "
        "margin_fraction is the share of your equity used as margin; confidence in [0, 1].",
    ])


def rule_answer(p: Proposal) -> LLMAnswer:
    """A rule proposal in the answer schema (the signal the model refines)."""
    return LLMAnswer(
        action=p.action.value, symbol=p.symbol, leverage=p.leverage,
        margin_fraction=p.margin_fraction, stop_price=p.stop_price, take_profit=p.take_profit,
        confidence=p.confidence, reasoning=p.reasoning,
    )


def _limits_text(spec: AgentSpec, limits: RiskLimits) -> str:
    loss = limits.stop_loss_margin_pct
    return (
        "Hard limits (the CEO enforces them on whatever you answer): leverage at most "
        f"{spec.max_leverage}x and the symbol's own maximum; margin at most "
        f"{_pct(limits.max_margin_fraction)} of equity per trade; at most "
        f"{limits.max_open_positions} open positions; no symbol held by another agent; every "
        f"open needs a stop on the losing side of price, and a stop may lose at most {_pct(loss)} "
        f"of margin (stop distance × leverage ≤ {_pct(loss)}: at {spec.max_leverage}x the stop "
        f"sits within {loss / spec.max_leverage * 100:.2f}% of price), otherwise the CEO lowers "
        f"the leverage; gross exposure at most {limits.gross_exposure_cap:g}× session equity."
    )


def _positions(view: AgentView) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for p in view.positions.values():
        mark = view.market.price(p.symbol)
        margin = p.quantity * p.entry_price / p.leverage if p.leverage else 0.0
        pnl = p.side.sign * (mark - p.entry_price) * p.quantity
        out.append({
            "symbol": p.symbol, "side": p.side.value, "entry": p.entry_price, "mark": mark,
            "quantity": p.quantity, "leverage": p.leverage, "stop": p.stop_price,
            "take_profit": p.take_profit, "unrealized_pnl": _round(pnl),
            "pnl_pct_of_margin": _round(pnl / margin * 100) if margin > 0 else None,
            "opened_at_ms": p.opened_at_ms,
        })
    return out


# --------------------------------------------------------------------------------- indicators


def _round(x: float) -> float | None:
    """JSON-safe and short: six significant digits, None for a value still warming up."""
    return float(f"{x:.6g}") if math.isfinite(x) else None


def _timeframe(spec: AgentSpec, market: MarketView) -> str:
    return market.base_interval if spec.key == "scalper" else spec.timeframe


def _columns(market: MarketView, symbol: str, interval: str, names: tuple[str, ...],
             previous: tuple[str, ...] = ()) -> dict[str, float | None] | str:
    f = market.features(symbol, interval)
    if f is None:
        return f"no closed {interval} bar yet"
    values = {n: _round(f[n]) for n in names}
    values.update({f"{n}_prev": _round(f.prev(n)) for n in previous})
    return values


def _per_symbol(market: MarketView, columns: Callable[[str], dict[str, object]]) -> dict[str, object]:
    return {symbol: columns(symbol) for symbol in market.symbols}


def indicators(spec: AgentSpec, market: MarketView,
               params: StrategyParams | None = None) -> dict[str, object]:
    """The values the strategy's rule reads, per symbol and timeframe (None while warming up)."""
    tf = _timeframe(spec, market)
    p = default_params(spec.key) if params is None else params
    if isinstance(p, TrendParams):
        cols, filt = trend.signal_columns(p), p.filter_interval
        return _per_symbol(market, lambda s: {
            tf: _columns(market, s, tf, cols, cols[:2]),
            filt: _columns(market, s, filt, trend.FILTER_COLUMNS),
        })
    if spec.key == "momentum":
        return _per_symbol(market, lambda s: {tf: _columns(market, s, tf, momentum.COLUMNS)})
    if spec.key == "mean_reversion":
        return _per_symbol(market,
                           lambda s: {tf: _columns(market, s, tf, mean_reversion.COLUMNS)})
    if spec.key == "scalper":
        return _per_symbol(market,
                           lambda s: {tf: _columns(market, s, tf, scalper.COLUMNS, ("rsi_7",))})
    if isinstance(p, ArbitrageParams):
        spreads = {
            label: None if sp is None else {"z": _round(sp.z), "mean": _round(sp.mean), "std": _round(sp.std)}
            for label, sp in arbitrage.pair_spreads(market, tf, p.lookback).items()
        }
        atr = _per_symbol(market, lambda s: {tf: _columns(market, s, tf, ("close", "atr_14"))})
        return {"log_spreads": spreads, "legs": atr}
    return _per_symbol(market, lambda s: {tf: _columns(market, s, tf, ("close", "atr_14"))})
