"""Momentum Hunter: ride a breakout of the recent range when volume and rate of change confirm it.

Entry on the latest closed bar of the agent's timeframe (15m): close above the prior 20-bar high
with volume above 2× its 20-bar average and ROC10 > 0 → long; close below the prior 20-bar low
with the same volume surge and ROC10 < 0 → short. Stop 1.5×ATR14; a trailing stop 3×ATR14 wide
rests beside it, armed at once, in place of the 3×ATR14 take-profit (bench/trailing_stops.py
chose it on the bundled year). (These are the defaults; ``MomentumParams`` in
core/agents/params.py declares every number.)

Exit: when ROC10 turns against the position (negative for a long, positive for a short) — the
momentum that justified the trade is gone.
"""

from __future__ import annotations

from core.agents.base import AgentView, HeldPosition
from core.agents.common import (
    Entry,
    RuleStrategy,
    bracket,
    close_proposal,
    confidence,
    levels_text,
    num,
    pct,
    ready_features,
    side_word,
    trailing_stop,
    trailing_text,
)
from core.agents.params import MomentumParams
from core.models import PositionSide, Proposal

COLUMNS = ("close", "volume", "hh_20", "ll_20", "vol_sma_20", "roc_10", "atr_14")


def breakout_side(close: float, high: float, low: float, roc: float) -> PositionSide | None:
    """Which range edge the close broke with momentum behind it, if any."""
    if close > high and roc > 0:
        return PositionSide.LONG
    if close < low and roc < 0:
        return PositionSide.SHORT
    return None


class MomentumStrategy(RuleStrategy[MomentumParams]):
    params_model = MomentumParams

    def entry(self, view: AgentView, symbol: str) -> Entry | str:
        p = self.params
        f = ready_features(view.market, symbol, self.spec.timeframe, COLUMNS)
        if isinstance(f, str):
            return f
        close, high, low, roc = f["close"], f["hh_20"], f["ll_20"], f["roc_10"]
        avg_volume = f["vol_sma_20"]
        volume_ratio = f["volume"] / avg_volume if avg_volume > 0 else 0.0
        volume = f"volume {volume_ratio:.1f}× average"
        side = breakout_side(close, high, low, roc)
        if side is None:
            return (
                f"{symbol}: no breakout (close {num(close)}, 20-bar range {num(low)}–{num(high)}, "
                f"ROC10 {pct(roc)}), {volume}"
            )
        edge, level = ("high", high) if side is PositionSide.LONG else ("low", low)
        broke = f"close {num(close)} broke the 20-bar {edge} {num(level)}"
        if volume_ratio <= p.volume_multiple:
            return f"{symbol}: {broke} but {volume} (needs > {p.volume_multiple:g}×)"
        price, atr = view.market.price(symbol), f["atr_14"]
        callback, activation = trailing_stop(side, price, atr, p.trail_atr or None,
                                             p.trail_activation_atr or None)
        tp_atr = None if callback is not None and p.trail_replaces_tp else p.tp_atr
        stop, tp = bracket(side, price, p.stop_atr * atr, None if tp_atr is None else tp_atr * atr)
        widths = f"{p.stop_atr:g}/{tp_atr:g}" if tp_atr is not None else f"{p.stop_atr:g}"
        reasoning = (
            f"{symbol} {side_word(side)}: {self.spec.timeframe} {broke} on {volume} with ROC10 "
            f"{pct(roc)}; {levels_text(stop, tp)} ({widths}×ATR14 {num(atr)})."
            f"{trailing_text(callback, activation, p.trail_atr or None, p.trail_activation_atr or None)}"
        )
        conf = confidence(
            p.base_confidence
            + p.confidence_per_volume * (volume_ratio - p.volume_multiple)
            + p.confidence_per_roc * abs(roc)
        )
        return Entry(symbol, side, conf, price, stop, tp, reasoning, callback, activation)

    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str:
        symbol = position.symbol
        f = ready_features(view.market, symbol, self.spec.timeframe, ("roc_10",))
        if isinstance(f, str):
            return f
        roc, held = f["roc_10"], side_word(position.side)
        if position.side.sign * roc < 0:
            return close_proposal(
                self.spec,
                view,
                position,
                f"{symbol}: close the {held}, ROC10 turned to {pct(roc)} on {self.spec.timeframe}: "
                "the momentum behind the breakout is gone.",
            )
        return f"{symbol}: holding {held}, ROC10 {pct(roc)} still with it"
