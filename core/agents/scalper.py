"""Lightning Scalper: buy the end of a short pullback in a short-term trend, out fast either way.

It runs on the feed's fastest timeframe (``market.base_interval``: 15m on the default replay, 1m
when the feed's base is 1m), not on its roster timeframe. Entry on the latest closed base bar:
EMA5 above EMA13 (short-term uptrend) and RSI7 crossing back up through 40 (the pullback is
over) → long; EMA5 below EMA13 and RSI7 crossing back down through 60 → short. On the real 15m
year this fires a few times a week per symbol. Tight bracket: stop 0.8×ATR14, take-profit
1.2×ATR14.

Exit: a time stop — a scalp that has not hit its target within 8 base bars is closed, because the
short-horizon edge it was opened for has expired. (These are the defaults; ``ScalperParams`` in
core/agents/params.py declares every number.)
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
)
from core.agents.params import ScalperParams
from core.models import INTERVAL_MS, PositionSide, Proposal

COLUMNS = ("ema_5", "ema_13", "rsi_7", "atr_14")


def pullback_side(p: ScalperParams, fast: float, slow: float, prev_rsi: float,
                  rsi: float) -> PositionSide | None:
    """The trend side when RSI7 just turned back out of a pullback against it, if it did."""
    if fast > slow and prev_rsi < p.rsi_long_trigger <= rsi:
        return PositionSide.LONG
    if fast < slow and prev_rsi > p.rsi_short_trigger >= rsi:
        return PositionSide.SHORT
    return None


class ScalperStrategy(RuleStrategy[ScalperParams]):
    params_model = ScalperParams

    def entry(self, view: AgentView, symbol: str) -> Entry | str:
        p = self.params
        interval = view.market.base_interval
        f = ready_features(view.market, symbol, interval, COLUMNS)
        if isinstance(f, str):
            return f
        fast, slow, rsi, prev_rsi = f["ema_5"], f["ema_13"], f["rsi_7"], f.prev("rsi_7")
        trend = "up" if fast > slow else "down"
        state = f"EMA5 {num(fast)} vs EMA13 {num(slow)} ({trend}), RSI7 {prev_rsi:.1f} → {rsi:.1f}"
        side = pullback_side(p, fast, slow, prev_rsi, rsi)
        if side is None:
            return f"{symbol}: no pullback turn ({state})"
        price, atr = view.market.price(symbol), f["atr_14"]
        stop, tp = bracket(side, price, p.stop_atr * atr, p.tp_atr * atr)
        trigger = p.rsi_long_trigger if side is PositionSide.LONG else p.rsi_short_trigger
        reasoning = (
            f"{symbol} {side_word(side)} scalp: {interval} {state}, RSI7 crossed {trigger:.0f} "
            f"with the short-term trend; {levels_text(stop, tp)} ({p.stop_atr:g}/{p.tp_atr:g}×ATR14 "
            f"{num(atr)}), out after {p.time_stop_bars} bars at the latest."
        )
        trend_in_atr = abs(fast - slow) / atr if atr > 0 else 0.0
        conf = confidence(p.base_confidence + p.confidence_per_trend * trend_in_atr)
        return Entry(symbol, side, conf, price, stop, tp, reasoning)

    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str:
        interval = view.market.base_interval
        bars_held = (view.now_ms - position.opened_at_ms) // INTERVAL_MS[interval]
        held, limit = side_word(position.side), self.params.time_stop_bars
        if bars_held >= limit:
            return close_proposal(
                self.spec,
                view,
                position,
                f"{position.symbol}: time stop, the {held} scalp has been open {bars_held} "
                f"{interval} bars (limit {limit}) without reaching its target.",
            )
        return f"{position.symbol}: holding {held} scalp, {bars_held} of {limit} {interval} bars"
