"""The External signals agent: trade ideas sent from outside the desk, proposed as its own.

Why it exists: a trader with an edge elsewhere (a TradingView alert, a script, a colleague) should
be able to hand the desk a trade without bypassing the CEO. So a signal is not an order: this agent
turns each one into a ``Proposal`` and the CEO judges it under the same hard rules as any agent's
(margin cap, the 5%-of-margin stop, exposure, one owner per symbol, the drawdown headroom), and the
proposal, verdict and outcome land in the CEO log like any other.

What it adds to the sender's idea, each said in the reasoning: a stop when none was sent (``STOP_ATR``
× ATR(14) of the base bars from the price, so every position has one; the CEO may tighten it). A
close of a symbol it does not hold is the CEO's to reject (rule no_position). It never invents a
trade: with no signal it abstains.
"""

from __future__ import annotations

import math

from core.agents.base import AgentSpec, AgentView
from core.agents.common import levels_text, num
from core.models import Action, AgentDecision, ExternalSignal, Proposal

STOP_ATR = 2.0  # the stop of a signal sent without one, in ATR(14) of the base bars


class ExternalSignalsStrategy:
    """Proposes the signals handed to it in ``AgentView.signals``, one proposal per signal."""

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec

    def decide(self, view: AgentView) -> AgentDecision:
        if not view.signals:
            return AgentDecision(agent=self.spec.name, note="no external signal")
        return AgentDecision(agent=self.spec.name,
                             proposals=[self.proposal(view, s) for s in view.signals])

    def proposal(self, view: AgentView, signal: ExternalSignal) -> Proposal:
        price = view.market.price(signal.symbol)
        said = f"external signal #{signal.id}" + (f" from {signal.source}" if signal.source else "")
        note = f": {signal.note}" if signal.note else ""
        if signal.side == "close":
            return Proposal(agent=self.spec.name, symbol=signal.symbol, action=Action.CLOSE,
                            confidence=signal.confidence, ref_price=price,
                            reasoning=f"{said} asks to close {signal.symbol}{note}"[:2000])
        long = signal.side == "long"
        stop, added = signal.stop_price, ""
        if stop is None:
            features = view.market.features(signal.symbol, view.market.base_interval)
            atr = features["atr_14"] if features is not None else math.nan
            if math.isfinite(atr) and atr > 0:
                stop = price - STOP_ATR * atr if long else price + STOP_ATR * atr
                added = f"; no stop was sent: {STOP_ATR:g}×ATR(14) {num(atr)} from {num(price)}"
        reasoning = (f"{said}: {signal.side} {signal.symbol} at {num(price)}, "
                     f"{levels_text(stop, signal.take_profit) if stop is not None else 'no stop'}"
                     f"{added}{note}")
        return Proposal(
            agent=self.spec.name, symbol=signal.symbol,
            action=Action.OPEN_LONG if long else Action.OPEN_SHORT,
            leverage=signal.leverage, margin_fraction=signal.margin_fraction,
            stop_price=stop if stop is not None and stop > 0 else None,
            take_profit=signal.take_profit, confidence=signal.confidence,
            ref_price=price, reasoning=reasoning[:2000])
