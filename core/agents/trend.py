"""TrendMaster Alpha: follow a new trend when a moving-average cross is confirmed by a slower clock.

Entry: EMA20 crosses EMA50 on the latest closed bar of the agent's timeframe (1h), and the 4h
timeframe agrees — ADX14(4h) ≥ 20 (there is a trend at all) and price is on the cross's side of the
4h EMA20 (it points the same way). Stop 2×ATR14 from price, take-profit 4×ATR14; with
``TRAIL_ATR`` set, a trailing stop that wide rests beside the stop, armed ``TRAIL_ACTIVATION_ATR``
×ATR14 in profit, and replaces the take-profit when ``TRAIL_REPLACES_TP`` (off by default: it did
not improve the agent on the bundled year, bench/trailing_stops.py).
At most one new position per decision: a trend agent that buys everything at once is a
market-beta agent.

Exit: when the EMAs have crossed back against the position (EMA20 below EMA50 for a long). The check
reads the current order of the EMAs rather than the crossing bar itself, so a tick the engine skipped
cannot leave a position running against its own trend.
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
    ready_features,
    side_word,
    trailing_stop,
    trailing_text,
)
from core.models import PositionSide, Proposal

FILTER_INTERVAL = "4h"
ADX_MIN = 20.0
STOP_ATR = 2.0
TP_ATR = 4.0
# the trailing stop (None: none): its width and how far in profit it arms, in ATR14 multiples.
# Off: over the bundled year a 3×ATR trail (armed at once, no take-profit) cut the drawdown
# (23.8% → 20.6%) but lost more (−10.9% → −16.8%, and −1.2% → −9.5% in the second half).
TRAIL_ATR: float | None = None
TRAIL_ACTIVATION_ATR: float | None = None
TRAIL_REPLACES_TP = True  # with a trailing stop, no take-profit caps the trend
BASE_CONFIDENCE = 0.35
CONFIDENCE_PER_ADX = 1 / 40  # ADX 20 -> 0.35, ADX 40 -> 0.85
SIGNAL_COLUMNS = ("ema_20", "ema_50", "atr_14")
FILTER_COLUMNS = ("adx_14", "ema_20")


def cross_side(prev_gap: float, gap: float) -> PositionSide | None:
    """The direction of an EMA cross between two bars (gap = fast − slow), if there was one."""
    if prev_gap <= 0 < gap:
        return PositionSide.LONG
    if prev_gap >= 0 > gap:
        return PositionSide.SHORT
    return None


def _above(side: PositionSide) -> str:
    return "above" if side is PositionSide.LONG else "below"


class TrendStrategy(RuleStrategy):
    max_new_per_decision = 1

    def entry(self, view: AgentView, symbol: str) -> Entry | str:
        f = ready_features(view.market, symbol, self.spec.timeframe, SIGNAL_COLUMNS)
        if isinstance(f, str):
            return f
        slow = ready_features(view.market, symbol, FILTER_INTERVAL, FILTER_COLUMNS)
        if isinstance(slow, str):
            return slow
        fast_ema, slow_ema, adx = f["ema_20"], f["ema_50"], slow["adx_14"]
        side = cross_side(f.prev("ema_20") - f.prev("ema_50"), fast_ema - slow_ema)
        emas = f"EMA20 {num(fast_ema)} vs EMA50 {num(slow_ema)}"
        if side is None:
            return f"{symbol}: no cross ({emas}), 4h ADX {adx:.1f}"
        crossed = f"EMA20 crossed {_above(side)} EMA50 ({emas})"
        if adx < ADX_MIN:
            return f"{symbol}: {crossed} but 4h ADX {adx:.1f} < {ADX_MIN:.0f}"
        price, trend_ema = view.market.price(symbol), slow["ema_20"]
        if side.sign * (price - trend_ema) <= 0:
            return (
                f"{symbol}: {crossed} but price {num(price)} is not {_above(side)} "
                f"the 4h EMA20 {num(trend_ema)}"
            )
        atr = f["atr_14"]
        callback, activation = trailing_stop(side, price, atr, TRAIL_ATR, TRAIL_ACTIVATION_ATR)
        tp_atr = None if callback is not None and TRAIL_REPLACES_TP else TP_ATR
        stop, tp = bracket(side, price, STOP_ATR * atr, None if tp_atr is None else tp_atr * atr)
        widths = f"{STOP_ATR:g}/{tp_atr:g}" if tp_atr is not None else f"{STOP_ATR:g}"
        reasoning = (
            f"{symbol} {side_word(side)}: {self.spec.timeframe} {crossed}, confirmed by 4h ADX "
            f"{adx:.1f} ≥ {ADX_MIN:.0f} and price {num(price)} {_above(side)} the 4h EMA20 "
            f"{num(trend_ema)}; {levels_text(stop, tp)} ({widths}×ATR14 {num(atr)})."
            f"{trailing_text(callback, activation, TRAIL_ATR, TRAIL_ACTIVATION_ATR)}"
        )
        conf = confidence(BASE_CONFIDENCE + (adx - ADX_MIN) * CONFIDENCE_PER_ADX)
        return Entry(symbol, side, conf, price, stop, tp, reasoning, callback, activation)

    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str:
        symbol = position.symbol
        f = ready_features(view.market, symbol, self.spec.timeframe, SIGNAL_COLUMNS)
        if isinstance(f, str):
            return f
        fast_ema, slow_ema = f["ema_20"], f["ema_50"]
        emas = f"EMA20 {num(fast_ema)} vs EMA50 {num(slow_ema)}"
        held = side_word(position.side)
        if position.side.sign * (fast_ema - slow_ema) < 0:
            against = "below" if position.side is PositionSide.LONG else "above"
            return close_proposal(
                self.spec,
                view,
                position,
                f"{symbol}: close the {held}, EMA20 crossed back {against} EMA50 ({emas}) on "
                f"{self.spec.timeframe}: the trend it followed has turned.",
            )
        return f"{symbol}: holding {held}, trend intact ({emas})"
