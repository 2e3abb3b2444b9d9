"""Is the best backtest of a search real? Two tests that answer with a probability.

- The **Deflated Sharpe Ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", 2014): the probability that the
  true Sharpe ratio exceeds the best one a search of ``n_trials`` unskilled trials would show by
  luck, given the track record's length, skewness and kurtosis. Per-period (not annualised)
  Sharpe ratios throughout, as in the paper:

      SR0 = sqrt(V[SR_n]) · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))      (γ: Euler–Mascheroni)
      DSR = Φ((SR − SR0) · sqrt(T − 1) / sqrt(1 − γ3 SR + (γ4 − 1)/4 · SR²))

  with γ3 the skewness and γ4 the (non-excess) kurtosis of the T returns.
- The **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2015): split
  the T × N matrix of the trials' returns into S blocks of rows, and for every choice of S/2
  blocks as the training set pick the trial that is best on it, then see where that trial ranks
  on the other half. PBO is the share of splits where it ranks in the bottom half (logit ≤ 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations, pairwise
from statistics import NormalDist

import numpy as np

from core.errors import ConfigError

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Moments:
    """Per-period Sharpe ratio, skewness and non-excess kurtosis of a return series."""

    sharpe: float
    skew: float
    kurtosis: float
    n_obs: int


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    dsr: float  # probability that the true Sharpe exceeds the luck benchmark sr0
    sharpe: float  # per period
    sr0: float  # per period: the best Sharpe expected from n_trials unskilled trials
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float


@dataclass(frozen=True, slots=True)
class BacktestOverfitting:
    pbo: float
    logits: tuple[float, ...]  # one per split; ≤ 0 means the in-sample best ranked in the bottom half
    n_splits: int
    n_blocks: int
    n_trials: int


def moments(returns: np.ndarray | list[float]) -> Moments:
    """Sharpe (mean / sample standard deviation), skewness and kurtosis (population moments, as
    the paper uses them). A series without variance has Sharpe 0, skewness 0, kurtosis 3."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        raise ConfigError(f"a Sharpe ratio needs at least 2 returns, got {r.size}")
    mean = float(r.mean())
    centred = r - mean
    m2 = float(np.mean(centred**2))
    sd = float(r.std(ddof=1))
    if m2 <= 0 or sd <= 0:
        return Moments(0.0, 0.0, 3.0, int(r.size))
    return Moments(mean / sd, float(np.mean(centred**3)) / m2**1.5,
                   float(np.mean(centred**4)) / m2**2, int(r.size))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """The Sharpe ratio the best of ``n_trials`` unskilled trials shows by luck (per period), from
    the variance of the trials' Sharpe ratios; 0 for a single trial (nothing was selected)."""
    if n_trials < 1:
        raise ConfigError(f"the number of trials must be at least 1, got {n_trials}")
    if sharpe_variance < 0:
        raise ConfigError(f"a variance cannot be negative, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    z1 = _NORMAL.inv_cdf(1 - 1 / n_trials)
    z2 = _NORMAL.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float,
                         kurtosis: float) -> float:
    """P(true Sharpe > ``benchmark``) given an observed per-period ``sharpe`` over ``n_obs``
    returns with that skewness and (non-excess) kurtosis."""
    if n_obs < 2:
        raise ConfigError(f"a probabilistic Sharpe ratio needs at least 2 returns, got {n_obs}")
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:  # only a degenerate series (kurtosis = 1 + skew², one value) gets here
        return 1.0 if sharpe > benchmark else 0.0
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread))


def deflated_sharpe(returns: np.ndarray | list[float], *, n_trials: int,
                    sharpe_variance: float) -> DeflatedSharpe:
    """The DSR of a track record chosen as the best of ``n_trials``, whose per-period Sharpe
    ratios had ``sharpe_variance`` across the trials."""
    m = moments(returns)
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    dsr = probabilistic_sharpe(m.sharpe, sr0, m.n_obs, m.skew, m.kurtosis)
    return DeflatedSharpe(dsr, m.sharpe, sr0, n_trials, m.n_obs, m.skew, m.kurtosis)


def _block_sharpes(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sharpe (mean / sample sd) of each trial over the rows whose block sums are given; a trial
    without variance there scores 0."""
    n = counts.sum()
    mean = sums.sum(axis=0) / n
    var = (squares.sum(axis=0) - n * mean**2) / (n - 1)
    sd = np.sqrt(np.clip(var, 0.0, None))
    out = np.zeros_like(mean)
    ok = sd > 1e-15
    out[ok] = mean[ok] / sd[ok]
    return out


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16
                                        ) -> BacktestOverfitting:
    """PBO by CSCV over ``returns`` (T rows of periods × N columns of trials), performance
    measured by the Sharpe ratio. ``n_blocks`` (S, even) is lowered to the largest even number
    that leaves each block at least 2 rows."""
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2:
        raise ConfigError("PBO needs a matrix of returns: periods × trials")
    t, n = m.shape
    if n < 2:
        raise ConfigError(f"PBO compares trials: it needs at least 2, got {n}")
    if not np.all(np.isfinite(m)):
        raise ConfigError("PBO: the returns hold a missing or infinite value")
    s = min(n_blocks, t // 2)
    s -= s % 2
    if s < 2:
        raise ConfigError(f"PBO needs at least 4 periods to split in halves, got {t}")
    bounds = np.linspace(0, t, s + 1).astype(int)
    sums = np.array([m[a:b].sum(axis=0) for a, b in pairwise(bounds)])
    squares = np.array([(m[a:b] ** 2).sum(axis=0)
                        for a, b in pairwise(bounds)])
    counts = np.diff(bounds)
    logits: list[float] = []
    every = set(range(s))
    for train in combinations(range(s), s // 2):
        test = sorted(every - set(train))
        tr = list(train)
        is_perf = _block_sharpes(sums[tr], squares[tr], counts[tr])
        oos_perf = _block_sharpes(sums[test], squares[test], counts[test])
        best = int(np.argmax(is_perf))
        mine = oos_perf[best]
        # rank 1 (worst) .. N (best) of the in-sample winner out of sample, ties shared
        rank = 1 + np.sum(oos_perf < mine) + 0.5 * (np.sum(oos_perf == mine) - 1)
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    pbo = sum(1 for lam in logits if lam <= 0) / len(logits)
    return BacktestOverfitting(pbo, tuple(logits), len(logits), s, n)
