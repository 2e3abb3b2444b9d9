"""Arbitrage Scanner: statistical pair trading between two correlated perps on one venue.

On a single venue there is no risk-free arbitrage, and this agent never claims one: it bets that a
stretched spread between two correlated perps (ETH vs BTC, SOL vs BTC, SOL vs ETH) narrows again.
For each pair of session symbols the spread is ``log(price_a) − log(price_b)`` over the last 100
bars of the agent's timeframe (1h) and ``z = (spread_now − mean) / std``.

Entry: |z| ≥ 2 and neither symbol is held by anyone → two legs in one decision, tied by one
``group`` id so the CEO approves both or neither: short the rich leg, long the cheap leg, equal
margin, each with its own stop 3×ATR14 away. Where the feed reports funding rates that differ
between the legs, the reasoning says which way the pair's funding carry points.

Exit: when |z| ≤ 0.5 for the held pair, close both legs. A leg left alone (its partner stopped out)
is closed too: one leg on its own is a naked directional bet, not a pair trade.

(These are the defaults; ``ArbitrageParams`` in core/agents/params.py declares every number.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from core.agents.base import AgentSpec, AgentView, HeldPosition, MarketView
from core.agents.common import (
    MAX_OPEN_POSITIONS,
    Entry,
    bracket,
    checked_params,
    close_proposal,
    confidence,
    decision,
    free_slots,
    levels_text,
    may_open,
    num,
    on_correct_side,
    open_proposal,
    pct,
    ready_features,
    side_word,
)
from core.agents.params import ArbitrageParams
from core.models import AgentDecision, PositionSide, Proposal

DISCLAIMER = "Statistical pair trade, not risk-free"


@dataclass(frozen=True, slots=True)
class Spread:
    """The log-price spread of ``a`` over ``b`` and how stretched it is now."""

    a: str
    b: str
    z: float
    mean: float
    std: float
    lookback: int

    @property
    def label(self) -> str:
        return f"{self.a}/{self.b}"

    def text(self, interval: str) -> str:
        return (
            f"log spread {self.label} z {self.z:+.2f} over {self.lookback} {interval} bars "
            f"(mean {self.mean:+.4f}, std {self.std:.4f})"
        )


class _LogCloses:
    """Per-decision cache of log closes, so each symbol's series is read and logged once."""

    def __init__(self, market: MarketView, interval: str, lookback: int) -> None:
        self._market, self._interval, self.lookback = market, interval, lookback
        self._logs: dict[str, np.ndarray] = {}

    def __call__(self, symbol: str) -> np.ndarray:
        found = self._logs.get(symbol)
        if found is None:
            found = np.log(self._market.closes(symbol, self._interval, self.lookback))
            self._logs[symbol] = found
        return found


def spread_z(logs: _LogCloses, a: str, b: str) -> Spread | None:
    """The pair's z-score, or None while either symbol has fewer than the lookback's bars."""
    la, lb = logs(a), logs(b)
    if len(la) < logs.lookback or len(lb) < logs.lookback:
        return None
    spread = la - lb
    mean = float(spread.mean())
    dev = spread - mean
    std = math.sqrt(float(dev @ dev) / len(dev))
    if not std > 0:
        return None
    return Spread(a, b, (float(spread[-1]) - mean) / std, mean, std, logs.lookback)


def pair_spreads(market: MarketView, interval: str, lookback: int) -> dict[str, Spread | None]:
    """Every pair's spread now, as the entry rule sees it (quoted in the model's prompt)."""
    logs = _LogCloses(market, interval, lookback)
    return {f"{a}/{b}": spread_z(logs, a, b) for a, b in combinations(market.symbols, 2)}


def funding_text(market: MarketView, short_leg: str, long_leg: str) -> str:
    """A sentence on the pair's funding carry where the feed has rates that differ, else ''."""
    short_rate, long_rate = market.funding_rate(short_leg), market.funding_rate(long_leg)
    if short_rate is None or long_rate is None or short_rate == long_rate:
        return ""
    carry = short_rate - long_rate  # the short leg receives its rate, the long leg pays its own
    way = "collects" if carry > 0 else "pays"
    return (
        f" Funding {short_leg} {pct(short_rate, 4)} vs {long_leg} {pct(long_rate, 4)}: "
        f"the pair {way} about {abs(carry) * 100:.4f}% per funding interval."
    )


def _ordered(market: MarketView, legs: list[HeldPosition]) -> tuple[str, str]:
    """The two legs' symbols in the market's symbol order (the order entries use)."""
    order = {s: i for i, s in enumerate(market.symbols)}
    a, b = sorted((p.symbol for p in legs), key=lambda s: (order.get(s, len(order)), s))
    return a, b


def _groups(positions: dict[str, HeldPosition]) -> list[list[HeldPosition]]:
    groups: dict[str, list[HeldPosition]] = {}
    for position in positions.values():
        groups.setdefault(position.group or "ungrouped", []).append(position)
    return list(groups.values())


class ArbitrageStrategy:
    params_model = ArbitrageParams

    def __init__(self, spec: AgentSpec, params: ArbitrageParams | None = None) -> None:
        self.spec = spec
        self.params = checked_params(ArbitrageParams, params)

    def decide(self, view: AgentView) -> AgentDecision:
        proposals: list[Proposal] = []
        notes: list[str] = []
        logs = _LogCloses(view.market, self.spec.timeframe, self.params.lookback)
        for legs in _groups(view.positions):
            self._exit(view, logs, legs, proposals, notes)
        if free_slots(view) < 2:
            notes.append(
                f"a new pair needs two free slots ({len(view.positions)} of "
                f"{MAX_OPEN_POSITIONS} positions open)"
            )
        else:
            proposals.extend(self._entry(view, logs, notes))
        return decision(self.spec, proposals, notes)

    # ------------------------------------------------------------------------------ exits
    def _exit(
        self,
        view: AgentView,
        logs: _LogCloses,
        legs: list[HeldPosition],
        proposals: list[Proposal],
        notes: list[str],
    ) -> None:
        if len(legs) != 2:
            for leg in legs:
                reason = (
                    f"{leg.symbol}: close the lone {side_word(leg.side)} leg, its pair partner is "
                    "gone and a single leg is a directional bet, not a pair trade."
                )
                proposals.append(close_proposal(self.spec, view, leg, reason))
            return
        spread = spread_z(logs, *_ordered(view.market, legs))
        if spread is None:
            notes.append(f"{legs[0].symbol}/{legs[1].symbol}: holding pair, spread warming up")
            return
        z_exit = self.params.z_exit
        if abs(spread.z) > z_exit:
            notes.append(
                f"{spread.label}: holding pair, z {spread.z:+.2f} (exit at |z| ≤ {z_exit:g})"
            )
            return
        reason = (
            f"{DISCLAIMER}: {spread.text(self.spec.timeframe)} has reverted to within ±{z_exit:g}, "
            "close both legs."
        )
        proposals.extend(close_proposal(self.spec, view, leg, reason) for leg in legs)

    # ---------------------------------------------------------------------------- entries
    def _entry(self, view: AgentView, logs: _LogCloses, notes: list[str]) -> list[Proposal]:
        p = self.params
        best: Spread | None = None
        for a, b in combinations(view.market.symbols, 2):
            if not (may_open(view, a) and may_open(view, b)):
                notes.append(f"{a}/{b}: a leg is already held")
                continue
            spread = spread_z(logs, a, b)
            if spread is None:
                notes.append(
                    f"{a}/{b}: warming up (fewer than {p.lookback} {self.spec.timeframe} bars)"
                )
            elif abs(spread.z) < p.z_entry:
                notes.append(f"{spread.label}: log-spread z {spread.z:+.2f}, inside ±{p.z_entry:g}")
            elif best is None or abs(spread.z) > abs(best.z):
                best = spread
        if best is None:
            return []
        legs = self._legs(view, best, notes)
        group = f"pair-{best.a}-{best.b}-{view.now_ms}"
        return [open_proposal(self.spec, leg, margin=p.leg_margin, group=group) for leg in legs]

    def _legs(self, view: AgentView, spread: Spread, notes: list[str]) -> list[Entry]:
        """Short the rich leg, long the cheap one; both or neither."""
        p = self.params
        rich, cheap = (spread.a, spread.b) if spread.z > 0 else (spread.b, spread.a)
        conf = confidence(p.base_confidence + p.confidence_per_z * (abs(spread.z) - p.z_entry))
        pair = (
            f"{DISCLAIMER}: {spread.text(self.spec.timeframe)}; short {rich} (rich), long {cheap} "
            f"(cheap), exit both when |z| ≤ {p.z_exit:g}."
            f"{funding_text(view.market, rich, cheap)}"
        )
        legs: list[Entry] = []
        for symbol, side in ((rich, PositionSide.SHORT), (cheap, PositionSide.LONG)):
            f = ready_features(view.market, symbol, self.spec.timeframe, ("atr_14",))
            if isinstance(f, str):
                notes.append(f)
                return []
            price, atr = view.market.price(symbol), f["atr_14"]
            stop, _ = bracket(side, price, p.stop_atr * atr)
            if not on_correct_side(side, price, stop, None):
                notes.append(
                    f"{spread.label}: {symbol} stop {num(stop)} invalid at price {num(price)}"
                )
                return []
            reasoning = (
                f"{pair} This leg: {side_word(side)} {symbol} at {num(price)}, "
                f"{levels_text(stop, None)} ({p.stop_atr:g}×ATR14 {num(atr)})."
            )
            legs.append(Entry(symbol, side, conf, price, stop, None, reasoning))
        return legs
