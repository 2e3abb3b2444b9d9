"""The CEO's portfolio review: the drawdown halt, pausing underperformers and rebalancing capital.

The per-trade rules live in ``core.ceo.rules``; this module judges the desk as a whole (DESIGN.md
section 4). Everything here is a pure function of numbers the engine gathers on the *engine clock*,
so a backtest makes exactly the decisions paper trading would. Each decision carries its rule id and
a readable one-line reason with the numbers, for the CEO log.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STOPPED = "stopped"
ACTIVE = "active"


def drawdown_breached(equity: float, peak: float, halt_pct: float) -> bool:
    """True when ``equity`` has fallen ``halt_pct`` (or more) below ``peak``."""
    return equity <= peak * (1 - halt_pct)


# --------------------------------------------------------------------------------------------------
# Pausing underperformers


@dataclass(frozen=True, slots=True)
class AgentPerformance:
    name: str
    status: str  # 'active' | 'paused' | 'stopped'
    equity: float
    peak_equity: float
    recent_results: tuple[float, ...]  # realized PnL of closed trades, oldest first


@dataclass(frozen=True, slots=True)
class PauseDecision:
    name: str
    rule: str  # agent_drawdown | losing_streak | low_win_rate
    reason: str  # what fired, without the agent's name: the card and the log entry supply it


def review_agents(
    perfs: Iterable[AgentPerformance],
    *,
    pause_drawdown_pct: float = 0.10,
    losing_streak: int = 4,
    min_win_rate: float = 0.30,
    win_rate_window: int = 10,
) -> list[PauseDecision]:
    """Which active agents to pause, one decision each.

    Rules in order: ``agent_drawdown`` (equity at or below peak × (1 − pct)), ``losing_streak``
    (the last ``losing_streak`` closed trades all lost), ``low_win_rate`` (win rate of the last
    ``win_rate_window`` trades under ``min_win_rate``; only once that many trades exist). A trade
    wins when its realized PnL is above zero and loses when it is below. When several rules fire
    the decision names the first and its reason lists them all.
    """
    decisions = []
    for perf in perfs:
        if perf.status != ACTIVE:
            continue
        fired = [
            found
            for found in (
                _drawdown(perf, pause_drawdown_pct),
                _streak(perf, losing_streak),
                _win_rate(perf, min_win_rate, win_rate_window),
            )
            if found is not None
        ]
        if fired:
            reason = "; ".join(note for _, note in fired)
            decisions.append(PauseDecision(perf.name, fired[0][0], reason))
    return decisions


def _drawdown(perf: AgentPerformance, pct: float) -> tuple[str, str] | None:
    if perf.peak_equity <= 0 or not drawdown_breached(perf.equity, perf.peak_equity, pct):
        return None
    fall = 1 - perf.equity / perf.peak_equity
    return "agent_drawdown", (
        f"equity {perf.equity:,.2f} is {fall:.1%} below its peak {perf.peak_equity:,.2f} "
        f"(pause at {_percent(pct)})"
    )


def _streak(perf: AgentPerformance, n: int) -> tuple[str, str] | None:
    last = perf.recent_results[-n:]
    if len(last) < n or any(pnl >= 0 for pnl in last):
        return None
    pnls = ", ".join(f"{pnl:+,.2f}" for pnl in last)
    trades = "closed trade lost" if n == 1 else f"{n} closed trades all lost"
    return "losing_streak", f"last {trades} ({pnls})"


def _win_rate(perf: AgentPerformance, minimum: float, window: int) -> tuple[str, str] | None:
    last = perf.recent_results[-window:]
    if len(last) < window:
        return None
    wins = sum(1 for pnl in last if pnl > 0)
    rate = wins / window
    if rate >= minimum:
        return None
    return "low_win_rate", (
        f"won {wins} of its last {window} closed trades ({rate:.0%}, minimum {_percent(minimum)})"
    )


# --------------------------------------------------------------------------------------------------
# Rebalancing


@dataclass(frozen=True, slots=True)
class AgentAllocation:
    name: str
    status: str
    equity: float  # current agent equity
    locked_margin: float  # margin in open positions (cannot move)
    score: float | None  # risk-adjusted result (see score_from_returns); None: too few trades
    base_share: float  # roster share


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    """Capital to move between agents: ``transfers`` sum to zero; shares are of session equity."""

    transfers: dict[str, float]  # every participating agent, USD (+ receives, − gives)
    old_shares: dict[str, float]  # every agent, stopped ones included
    new_shares: dict[str, float]
    reason: str


MIN_SCORED_TRADES = 3  # closed trades before an agent's results count for or against it


def score_from_returns(returns: Sequence[float]) -> float | None:
    """A Sharpe-like score of closed-trade returns: mean / sample std, clipped to [−1, 1].

    None with fewer than ``MIN_SCORED_TRADES`` trades (no evidence either way: such an agent
    neither receives nor gives capital on its results); 0 when the returns have no spread.
    """
    if len(returns) < MIN_SCORED_TRADES:
        return None
    spread = statistics.stdev(returns)
    if spread == 0 or not math.isfinite(spread):
        return 0.0
    return max(-1.0, min(1.0, statistics.fmean(returns) / spread))


def plan_rebalance(
    allocs: Sequence[AgentAllocation],
    *,
    session_equity: float,
    min_share: float = 0.05,
    max_share: float = 0.40,
    max_shift_share: float = 0.05,
    min_transfer_share: float = 0.001,
) -> RebalancePlan | None:
    """Shift free capital toward agents with better scores, or None if nothing worth moving.

    Active and paused agents take part, but a paused agent (by the user or the CEO) only ever
    gives: it receives nothing, however good its score; stopped agents keep their capital. Each participant's
    target share is ``base_share × (1 + clip(score, −0.5, 0.5))``, scaled so the targets add up to
    the participants' current total and clamped to ``[min_share, max_share]`` (one common scale,
    found by bisection, so the bounds hold after normalising). Each agent then moves toward its
    target by at most ``max_shift_share`` of session equity and never gives away margin locked in
    positions; givers and receivers are scaled down together so transfers sum to zero. So every
    agent ends between where it was and its target: an agent already within bounds stays within.
    Capital only flows from below-average to above-average scores (bounds aside), so a losing agent
    is never topped up just because its share fell below its tilted target; an agent without a
    score yet (too few trades) neither gives nor receives on results, and does not count in the
    average (two lost trades must not read as "better than the desk's average of −0.2").
    None when no transfer exceeds ``min_transfer_share`` of session equity.
    """
    movers = [a for a in allocs if a.status != STOPPED]
    if len(movers) < 2 or not session_equity > 0:
        return None
    pool_share = sum(a.equity for a in movers) / session_equity
    # A tiny floor keeps every weight positive, so the bisection below always finds its scale.
    weights = {a.name: max(a.base_share, 1e-9) * (1 + _tilt(a.score)) for a in movers}
    targets = _clamped_shares(weights, pool_share, min_share, max_share)
    transfers = _bounded_transfers(
        movers, targets, session_equity, max_shift_share, min_share, max_share
    )
    if max(abs(t) for t in transfers.values()) <= min_transfer_share * session_equity:
        return None
    old = {a.name: a.equity / session_equity for a in allocs}
    new = {**old, **{a.name: (a.equity + transfers[a.name]) / session_equity for a in movers}}
    return RebalancePlan(transfers, old, new, _rebalance_reason(movers, transfers, old, new))


def _tilt(score: float | None) -> float:
    """The score clipped to ±0.5; an unknown (None or non-finite) score counts as 0."""
    return max(-0.5, min(0.5, score)) if score is not None and math.isfinite(score) else 0.0


def _clamped_shares(
    weights: dict[str, float], total: float, lo: float, hi: float
) -> dict[str, float]:
    """Shares proportional to ``weights``, each within [lo, hi], adding up to ``total``.

    share_i = clip(t × w_i, lo, hi) grows with t, so the common scale t is found by bisection.
    Weights must be positive. When the bounds cannot all hold (total outside [n·lo, n·hi]) the
    total is split equally.
    """
    n = len(weights)
    if not n * lo < total < n * hi:
        return dict.fromkeys(weights, total / n)

    def filled(t: float) -> float:
        return sum(min(hi, max(lo, t * w)) for w in weights.values())

    low, high = 0.0, 1.0
    while filled(high) < total:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        low, high = (mid, high) if filled(mid) < total else (low, mid)
    return {name: min(hi, max(lo, high * w)) for name, w in weights.items()}


def _bounded_transfers(
    movers: Sequence[AgentAllocation],
    targets: dict[str, float],
    session_equity: float,
    max_shift_share: float,
    min_share: float,
    max_share: float,
) -> dict[str, float]:
    cap = max_shift_share * session_equity
    scored = [_tilt(a.score) for a in movers if a.score is not None]
    mean_score = sum(scored) / len(scored) if scored else 0.0
    wants: dict[str, float] = {}
    for a in movers:
        want = targets[a.name] * session_equity - a.equity
        free = max(0.0, a.equity - a.locked_margin)
        share = a.equity / session_equity
        tilt, unproven = _tilt(a.score), a.score is None
        # Capital flows from worse to better results: a below-average (or unscored) agent never
        # receives unless it sits under the minimum share, an above-average (or unscored) one
        # never gives unless it sits over the maximum.
        receives_unearned = want > 0 and (unproven or tilt <= mean_score) and share >= min_share
        gives_unearned = want < 0 and (unproven or tilt >= mean_score) and share <= max_share
        if receives_unearned or gives_unearned:
            want = 0.0
        if want > 0 and a.status != ACTIVE:  # paused (by the user or the CEO): receives nothing
            want = 0.0
        wants[a.name] = min(want, cap) if want > 0 else -min(-want, cap, free)
    given = -sum(w for w in wants.values() if w < 0)
    taken = sum(w for w in wants.values() if w > 0)
    moved = min(given, taken)
    if moved <= 0:
        return dict.fromkeys(wants, 0.0)
    give_scale, take_scale = moved / given, moved / taken
    return {name: w * (take_scale if w > 0 else give_scale) for name, w in wants.items()}


def _rebalance_reason(
    movers: Sequence[AgentAllocation],
    transfers: dict[str, float],
    old: dict[str, float],
    new: dict[str, float],
) -> str:
    scores = {a.name: "no score yet" if a.score is None else f"score {a.score:+.2f}" for a in movers}
    moves = ", ".join(
        f"{name} {delta:+,.2f} ({scores[name]}, {old[name]:.1%} → {new[name]:.1%})"
        for name, delta in sorted(transfers.items(), key=lambda kv: -kv[1])
        if delta != 0
    )
    return f"rebalance free capital toward better risk-adjusted results: {moves}"


def _percent(fraction: float) -> str:
    """A configured threshold as the user set it: 10%, 0.5%, 12.5% (never rounded to 0%)."""
    return f"{fraction * 100:.4g}%"
