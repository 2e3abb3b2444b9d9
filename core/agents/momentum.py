"""Momentum Hunter: ride a breakout of the recent range when volume and rate of change confirm it.

Entry on the latest closed bar of the agent's timeframe (15m): close above the prior 20-bar high
with volume above 2× its 20-bar average and ROC10 > 0 → long; close below the prior 20-bar low
with the same volume surge and ROC10 < 0 → short. Stop 1.5×ATR14; a trailing stop ``TRAIL_ATR``×ATR14
wide rests beside it, armed ``TRAIL_ACTIVATION_ATR``×ATR14 in profit, and replaces the 3×ATR14
take-profit when ``TRAIL_REPLACES_TP`` (bench/trailing_stops.py chose these on the bundled year).

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
from core.models import PositionSide, Proposal

VOLUME_MULTIPLE = 2.0
STOP_ATR = 1.5
TP_ATR = 3.0
# the trailing stop (None: none): its width and how far in profit it arms, in ATR14 multiples.
# 3×ATR armed at once, no take-profit: over the bundled year −25.4% → −12.6%, drawdown 47.3% →
# 24.0% (bench/trailing_stops.py); its drawdown fell in both halves, its return only in the first.
TRAIL_ATR: float | None = 3.0
TRAIL_ACTIVATION_ATR: float | None = None
TRAIL_REPLACES_TP = True  # with a trailing stop, no take-profit caps the breakout
BASE_CONFIDENCE = 0.40
CONFIDENCE_PER_VOLUME = 0.10  # per multiple of average volume above the threshold
CONFIDENCE_PER_ROC = 5.0  # a 2% rate of change adds 0.10
COLUMNS = ("close", "volume", "hh_20", "ll_20", "vol_sma_20", "roc_10", "atr_14")


def breakout_side(close: float, high: float, low: float, roc: float) -> PositionSide | None:
    """Which range edge the close broke with momentum behind it, if any."""
    if close > high and roc > 0:
        return PositionSide.LONG
    if close < low and roc < 0:
        return PositionSide.SHORT
    return None


class MomentumStrategy(RuleStrategy):
    def entry(self, view: AgentView, symbol: str) -> Entry | str:
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
        if volume_ratio <= VOLUME_MULTIPLE:
            return f"{symbol}: {broke} but {volume} (needs > {VOLUME_MULTIPLE:g}×)"
        price, atr = view.market.price(symbol), f["atr_14"]
        callback, activation = trailing_stop(side, price, atr, TRAIL_ATR, TRAIL_ACTIVATION_ATR)
        tp_atr = None if callback is not None and TRAIL_REPLACES_TP else TP_ATR
        stop, tp = bracket(side, price, STOP_ATR * atr, None if tp_atr is None else tp_atr * atr)
        widths = f"{STOP_ATR:g}/{tp_atr:g}" if tp_atr is not None else f"{STOP_ATR:g}"
        reasoning = (
            f"{symbol} {side_word(side)}: {self.spec.timeframe} {broke} on {volume} with ROC10 "
            f"{pct(roc)}; {levels_text(stop, tp)} ({widths}×ATR14 {num(atr)})."
            f"{trailing_text(callback, activation, TRAIL_ATR, TRAIL_ACTIVATION_ATR)}"
        )
        conf = confidence(
            BASE_CONFIDENCE
            + CONFIDENCE_PER_VOLUME * (volume_ratio - VOLUME_MULTIPLE)
            + CONFIDENCE_PER_ROC * abs(roc)
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
