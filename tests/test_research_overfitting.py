"""The Deflated Sharpe Ratio and PBO against the papers' worked values, values worked by hand,
and an independent implementation written here (loops over rows, pandas ranks)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from core.research import metrics
from core.research.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    probabilistic_sharpe,
    probability_of_backtest_overfitting,
)


def test_dsr_matches_the_papers_example() -> None:
    # Bailey & López de Prado 2014, section 6: annualised SR 2.5 over 5 years of daily returns
    # (T = 1250), 100 trials whose annualised Sharpe ratios have variance 0.5, skew −3, kurtosis
    # 10: SR0 ≈ 0.1132 per day and DSR ≈ 0.9004.
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=2e-4)


def test_expected_max_sharpe_by_hand() -> None:
    # N = 10: Φ⁻¹(0.9) = 1.281552, Φ⁻¹(1 − 1/(10e)) = Φ⁻¹(0.963212) = 1.789, times sd 0.1
    by_hand = 0.1 * ((1 - 0.5772156649) * 1.2815516 + 0.5772156649 * 1.7894)
    assert expected_max_sharpe(10, 0.01) == pytest.approx(by_hand, abs=2e-4)
    assert expected_max_sharpe(1, 0.01) == 0.0  # one trial: nothing was selected
    with pytest.raises(ConfigError):
        expected_max_sharpe(0, 0.01)


def test_deflated_sharpe_reads_the_series_moments() -> None:
    rng = np.random.default_rng(7)
    r = rng.standard_t(4, 500) * 0.01 + 0.002
    mean, sd = r.mean(), r.std(ddof=1)
    c = r - mean
    skew = np.mean(c**3) / np.mean(c**2) ** 1.5
    kurt = np.mean(c**4) / np.mean(c**2) ** 2
    m = moments(r)
    assert (m.sharpe, m.skew, m.kurtosis) == pytest.approx((mean / sd, skew, kurt))
    out = deflated_sharpe(r, n_trials=50, sharpe_variance=0.002)
    sr = mean / sd
    z = (sr - out.sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert out.dsr == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))))
    # more trials can only raise the luck benchmark and lower the DSR
    assert deflated_sharpe(r, n_trials=500, sharpe_variance=0.002).dsr < out.dsr


def _pbo_reference(m: np.ndarray, s: int) -> float:
    """CSCV written plainly: rows of each half gathered, Sharpe per column, pandas ranks."""
    t, n = m.shape
    blocks = np.array_split(np.arange(t), s) if t % s == 0 else None
    assert blocks is not None
    below = 0
    total = 0
    for train in combinations(range(s), s // 2):
        rows_in = np.concatenate([blocks[i] for i in train])
        rows_out = np.concatenate([blocks[i] for i in range(s) if i not in train])

        def perf(rows: np.ndarray) -> np.ndarray:
            sub = m[rows]
            sd = sub.std(axis=0, ddof=1)
            return np.where(sd > 0, sub.mean(axis=0) / np.where(sd > 0, sd, 1), 0.0)

        best = int(np.argmax(perf(rows_in)))
        ranks = pd.Series(perf(rows_out)).rank(method="average")
        omega = ranks[best] / (n + 1)
        below += math.log(omega / (1 - omega)) <= 0
        total += 1
    return below / total


def test_pbo_by_hand_two_trials_two_blocks() -> None:
    # trial A shines in the first half, B in the second: whichever half trains, its winner is
    # the worst on the other half, so every split overfits
    a = [0.02, 0.03, -0.01, -0.02]
    b = [-0.01, -0.02, 0.03, 0.02]
    out = probability_of_backtest_overfitting(np.array([a, b]).T, n_blocks=2)
    assert out.n_splits == 2 and out.pbo == 1.0
    # A better than B in both halves: its in-sample win carries over, no split overfits
    a2 = [0.02, 0.01, 0.03, 0.02]
    b2 = [0.00, 0.01, -0.01, 0.00]
    assert probability_of_backtest_overfitting(np.array([a2, b2]).T, n_blocks=2).pbo == 0.0


def test_pbo_matches_an_independent_implementation() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, (160, 12))  # unskilled trials: PBO should sit near one half
    out = probability_of_backtest_overfitting(noise, n_blocks=8)
    assert out.n_splits == math.comb(8, 4)
    assert out.pbo == pytest.approx(_pbo_reference(noise, 8))
    skilled = noise.copy()
    skilled[:, 4] += 0.004  # one trial with a real edge
    out2 = probability_of_backtest_overfitting(skilled, n_blocks=8)
    assert out2.pbo == pytest.approx(_pbo_reference(skilled, 8))
    assert out2.pbo < 0.1 < out.pbo


def test_pbo_refuses_what_it_cannot_split() -> None:
    with pytest.raises(ConfigError):
        probability_of_backtest_overfitting(np.zeros((10, 1)))
    with pytest.raises(ConfigError):
        probability_of_backtest_overfitting(np.zeros((3, 4)))
    with pytest.raises(ConfigError):
        probability_of_backtest_overfitting(np.array([[0.1, np.nan]] * 8))


DAY = metrics.DAY_MS
HOUR = 3_600_000


def test_daily_returns_sample_each_utc_day_end() -> None:
    # hourly points from 00:00 on day 0; the bar closing at 24:00 ends day 0
    ts = [HOUR * (i + 1) for i in range(48)]
    equity = [100.0 + i for i in range(48)]
    closes = metrics.daily_equity(ts, equity, 100.0)
    assert closes.tolist() == [100.0, 123.0, 147.0]
    assert metrics.daily_returns(ts, equity, 100.0) == pytest.approx([0.23, 147 / 123 - 1])


def test_objectives_by_hand() -> None:
    ts = [DAY * (i + 1) for i in range(4)]
    equity = [110.0, 99.0, 108.9, 119.79]
    f = metrics.curve_figures(ts, equity, 100.0)
    r = np.array([0.1, -0.1, 0.1, 0.1])
    assert f.total_return == pytest.approx(0.1979)
    assert f.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert f.sortino == pytest.approx(r.mean() / math.sqrt(0.01 / 4) * math.sqrt(365))
    assert f.max_drawdown == pytest.approx(0.1)
    assert f.calmar == pytest.approx((1.1979 ** (365 / 4) - 1) / 0.1)
    assert f.objective("return") == f.total_return
    flat = metrics.curve_figures(ts, [100.0] * 4, 100.0)
    assert (flat.sharpe, flat.sortino, flat.calmar, flat.total_return) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ConfigError):
        f.objective("profit")
