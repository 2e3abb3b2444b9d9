"""TrendMaster Alpha: follow a new trend when a moving-average cross is confirmed by a slower clock.

Entry: EMA20 crosses EMA50 on the latest closed bar of the agent's timeframe (1h), and the 4h
timeframe agrees — ADX14(4h) ≥ 20 (there is a trend at all) and price is on the cross's side of the
4h EMA20 (it points the same way). Stop 2×ATR14 from price, take-profit 4×ATR14; a trailing
stop may rest beside the stop (off by default: it did not improve the agent on the bundled
year, bench/trailing_stops.py). At most one new position per decision: a trend agent that
buys everything at once is a market-beta agent.
(These are the defaults; ``TrendParams`` in core/agents/params.py declares every number.)

Exit: when the EMAs have crossed back against the position (EMA20 below EMA50 for a long). The check
reads the current order of the EMAs rather than the crossing bar itself, so a tick the engine skipped
cannot leave a position running against its own trend.
"""

from __future__ import annotations

from core.agents.base import AgentSpec, AgentView, HeldPosition
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
from core.agents.params import TrendParams
from core.models import PositionSide, Proposal

FILTER_COLUMNS = ("adx_14", "ema_20")


def signal_columns(params: TrendParams) -> tuple[str, ...]:
    """The columns the cross reads on the agent's timeframe."""
    return (f"ema_{params.fast_ema}", f"ema_{params.slow_ema}", "atr_14")


def cross_side(prev_gap: float, gap: float) -> PositionSide | None:
    """The direction of an EMA cross between two bars (gap = fast − slow), if there was one."""
    if prev_gap <= 0 < gap:
        return PositionSide.LONG
    if prev_gap >= 0 > gap:
        return PositionSide.SHORT
    return None


def _above(side: PositionSide) -> str:
    return "above" if side is PositionSide.LONG else "below"


class TrendStrategy(RuleStrategy[TrendParams]):
    max_new_per_decision = 1
    params_model = TrendParams

    def __init__(self, spec: AgentSpec, params: TrendParams | None = None) -> None:
        super().__init__(spec, params)
        p = self.params
        self._columns = signal_columns(p)
        self._fast, self._slow = f"ema_{p.fast_ema}", f"ema_{p.slow_ema}"
        self._fast_name, self._slow_name = f"EMA{p.fast_ema}", f"EMA{p.slow_ema}"

    def _emas(self, fast_ema: float, slow_ema: float) -> str:
        return f"{self._fast_name} {num(fast_ema)} vs {self._slow_name} {num(slow_ema)}"

    def entry(self, view: AgentView, symbol: str) -> Entry | str:
        p = self.params
        f = ready_features(view.market, symbol, self.spec.timeframe, self._columns)
        if isinstance(f, str):
            return f
        filt = p.filter_interval
        slow = ready_features(view.market, symbol, filt, FILTER_COLUMNS)
        if isinstance(slow, str):
            return slow
        fast_ema, slow_ema, adx = f[self._fast], f[self._slow], slow["adx_14"]
        side = cross_side(f.prev(self._fast) - f.prev(self._slow), fast_ema - slow_ema)
        emas = self._emas(fast_ema, slow_ema)
        if side is None:
            return f"{symbol}: no cross ({emas}), {filt} ADX {adx:.1f}"
        crossed = f"{self._fast_name} crossed {_above(side)} {self._slow_name} ({emas})"
        if adx < p.adx_min:
            return f"{symbol}: {crossed} but {filt} ADX {adx:.1f} < {p.adx_min:.0f}"
        price, trend_ema = view.market.price(symbol), slow["ema_20"]
        if side.sign * (price - trend_ema) <= 0:
            return (
                f"{symbol}: {crossed} but price {num(price)} is not {_above(side)} "
                f"the {filt} EMA20 {num(trend_ema)}"
            )
        atr = f["atr_14"]
        callback, activation = trailing_stop(side, price, atr, p.trail_atr or None,
                                             p.trail_activation_atr or None)
        tp_atr = None if callback is not None and p.trail_replaces_tp else p.tp_atr
        stop, tp = bracket(side, price, p.stop_atr * atr, None if tp_atr is None else tp_atr * atr)
        widths = f"{p.stop_atr:g}/{tp_atr:g}" if tp_atr is not None else f"{p.stop_atr:g}"
        reasoning = (
            f"{symbol} {side_word(side)}: {self.spec.timeframe} {crossed}, confirmed by {filt} ADX "
            f"{adx:.1f} ≥ {p.adx_min:.0f} and price {num(price)} {_above(side)} the {filt} EMA20 "
            f"{num(trend_ema)}; {levels_text(stop, tp)} ({widths}×ATR14 {num(atr)})."
            f"{trailing_text(callback, activation, p.trail_atr or None, p.trail_activation_atr or None)}"
        )
        conf = confidence(p.base_confidence + (adx - p.adx_min) * p.confidence_per_adx)
        return Entry(symbol, side, conf, price, stop, tp, reasoning, callback, activation)

    def exit(self, view: AgentView, position: HeldPosition) -> Proposal | str:
        symbol = position.symbol
        f = ready_features(view.market, symbol, self.spec.timeframe, self._columns)
        if isinstance(f, str):
            return f
        fast_ema, slow_ema = f[self._fast], f[self._slow]
        emas = self._emas(fast_ema, slow_ema)
        held = side_word(position.side)
        if position.side.sign * (fast_ema - slow_ema) < 0:
            against = "below" if position.side is PositionSide.LONG else "above"
            return close_proposal(
                self.spec,
                view,
                position,
                f"{symbol}: close the {held}, {self._fast_name} crossed back {against} "
                f"{self._slow_name} ({emas}) on {self.spec.timeframe}: the trend it followed has "
                "turned.",
            )
        return f"{symbol}: holding {held}, trend intact ({emas})"
