"""What a trial scores: daily returns of the desk's equity curve and the objective over them.

A backtest's equity curve has one point per bar; a study compares trials over days, so the
curve is sampled at the end of each UTC day (the last point at or before midnight, a bar that
closes at 00:00 ending the day before) after the initial capital, and the daily simple returns
are taken between those. Daily returns are what the Deflated Sharpe Ratio and PBO read too.

Objectives (higher is better, all from the same curve):
- ``sharpe``: mean / sample standard deviation of the daily returns × √365 (crypto trades every
  day), zero risk-free rate; a curve without variance (no trade) scores 0;
- ``sortino``: mean / downside deviation (root mean square of the negative returns, zeros
  elsewhere) × √365; 0 without a losing day;
- ``calmar``: CAGR / max drawdown of the per-bar curve; 0 without a drawdown;
- ``return``: final equity / initial capital − 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError

DAY_MS = 86_400_000
YEAR_DAYS = 365
OBJECTIVES = ("sharpe", "sortino", "calmar", "return")


@dataclass(frozen=True, slots=True)
class CurveFigures:
    total_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    days: int

    def objective(self, name: str) -> float:
        check_objective(name)
        return self.total_return if name == "return" else float(getattr(self, name))


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return name


def daily_equity(ts_ms: Sequence[int], equity: Sequence[float], initial: float) -> np.ndarray:
    """The initial capital, then the equity at the end of each UTC day the curve covers."""
    if len(ts_ms) != len(equity):
        raise ConfigError("an equity curve needs one timestamp per value")
    if not ts_ms:
        return np.array([initial], dtype=float)
    days = (np.asarray(ts_ms, dtype=np.int64) - 1) // DAY_MS
    values = np.asarray(equity, dtype=float)
    last_of_day = np.flatnonzero(np.append(days[1:] != days[:-1], True))
    return np.concatenate(([initial], values[last_of_day]))


def daily_returns(ts_ms: Sequence[int], equity: Sequence[float], initial: float) -> np.ndarray:
    """Simple returns between consecutive day-end equities (the first from the initial capital)."""
    closes = daily_equity(ts_ms, equity, initial)
    return closes[1:] / closes[:-1] - 1


def max_drawdown(values: Sequence[float] | np.ndarray) -> float:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return 0.0
    peak = np.maximum.accumulate(v)
    return float(np.max(1 - v / peak))


def sharpe(returns: np.ndarray) -> float:
    if returns.size < 2:
        return 0.0
    sd = float(returns.std(ddof=1))
    return 0.0 if sd <= 1e-15 else float(returns.mean()) / sd * math.sqrt(YEAR_DAYS)


def sortino(returns: np.ndarray) -> float:
    if returns.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return 0.0 if downside <= 1e-15 else float(returns.mean()) / downside * math.sqrt(YEAR_DAYS)


def curve_figures(ts_ms: Sequence[int], equity: Sequence[float], initial: float) -> CurveFigures:
    """Every objective of one equity curve (per-bar points after the initial capital)."""
    returns = daily_returns(ts_ms, equity, initial)
    final = float(equity[-1]) if len(equity) else initial
    total = final / initial - 1
    dd = max_drawdown([initial, *equity])
    days = int(returns.size)
    cagr = (final / initial) ** (YEAR_DAYS / days) - 1 if days and final > 0 else -1.0
    calmar = 0.0 if dd <= 1e-12 else cagr / dd
    return CurveFigures(total, sharpe(returns), sortino(returns), calmar, dd, days)
