"""Mean Reversion Pro: fade a price stretched far from its 20-bar mean, and take profit at the mean.

Entry on the latest closed bar of the agent's timeframe (1h): z-score(20) ≤ −2 with RSI14 < 30 →
long; z-score ≥ +2 with RSI14 > 70 → short. Stop 1.5 standard deviations (std20) beyond price,
take-profit at the 20-bar mean (SMA20). If price has already returned to the mean since the bar
closed, there is nothing left to fade and the agent abstains. (These are the defaults;
``MeanReversionParams`` in core/agents/params.py declares every number.)

Exit: when the bar closes back at the mean (close ≥ SMA20 for a long, ≤ for a short), whether or
not the resting take-profit caught it — the mean moves while the position is open.
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
from core.agents.params import MeanReversionParams
from core.models import PositionSide, Proposal

COLUMNS = ("close", "sma_20", "std_20", "zscore_20", "rsi_14")


def stretch_side(p: MeanReversionParams, z: float, rsi: float) -> PositionSide | None:
    """The fading side when price is stretched and RSI agrees, if it is."""
    if z <= -p.z_entry and rsi < p.rsi_oversold:
        return PositionSide.LONG
    if z >= p.z_entry and rsi > p.rsi_overbought:
        return PositionSide.SHORT
    return None


class MeanReversionStrategy(RuleStrategy[MeanReversionParams]):
    params_model = MeanReversionParams

    def entry(self, view: AgentView, symbol: str) -> Entry | str:
        p = self.params
        f = ready_features(view.market, symbol, self.spec.timeframe, COLUMNS)
        if isinstance(f, str):
            return f
        z, rsi, mean = f["zscore_20"], f["rsi_14"], f["sma_20"]
        stretch = f"z-score {z:+.2f}, RSI14 {rsi:.1f}"
        side = stretch_side(p, z, rsi)
        if side is None:
            wanted = (
                f"needs |z| ≥ {p.z_entry:g} with RSI14 < {p.rsi_oversold:.0f} or > "
                f"{p.rsi_overbought:.0f}"
            )
            return f"{symbol}: not stretched ({stretch}; {wanted})"
        price, std = view.market.price(symbol), f["std_20"]
        if side.sign * (mean - price) <= 0:
            return f"{symbol}: {stretch} but price {num(price)} is already back at the mean {num(mean)}"
        stop, _ = bracket(side, price, p.stop_std * std)
        where = "below" if side is PositionSide.LONG else "above"
        reasoning = (
            f"{symbol} {side_word(side)}: {self.spec.timeframe} close {num(f['close'])} is "
            f"{abs(z):.2f} standard deviations {where} its 20-bar mean {num(mean)} ({stretch}); "
            f"{levels_text(stop, mean)} (stop {p.stop_std:g}×std20 {num(std)}, target the mean)."
        )
        extreme = p.rsi_oversold - rsi if side is PositionSide.LONG else rsi - p.rsi_overbought
        conf = confidence(
            p.base_confidence + p.confidence_per_z * (abs(z) - p.z_entry)
            + p.confidence_per_rsi * extreme
        )
        return Entry(symbol, side, conf, price, stop, mean, reasoning)

    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str:
        symbol = position.symbol
        f = ready_features(view.market, symbol, self.spec.timeframe, ("close", "sma_20"))
        if isinstance(f, str):
            return f
        close, mean, held = f["close"], f["sma_20"], side_word(position.side)
        if position.side.sign * (close - mean) >= 0:
            return close_proposal(
                self.spec,
                view,
                position,
                f"{symbol}: close the {held}, {self.spec.timeframe} close {num(close)} is back at "
                f"the 20-bar mean {num(mean)}: the stretch has reverted.",
            )
        return f"{symbol}: holding {held}, close {num(close)} not yet back at the mean {num(mean)}"
