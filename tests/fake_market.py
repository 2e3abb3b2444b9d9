"""A ``MarketView`` over pandas frames, frozen at one instant, for strategy tests.

It promises what the real feeds promise and no more: only bars whose close time (open + interval)
is at or before ``now_ms`` are visible, slower timeframes are resampled from the base candles
(buckets labelled and closed on the left, OHLCV aggregation, incomplete buckets dropped), and the
indicators come from ``core.indicators.compute``. Indicators are computed once on the full frames
and shared by every ``at(now_ms)`` copy, so a test can walk a year of bars cheaply; because the
indicators are causal, that is the same as recomputing on the truncated data (a test checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from core import indicators
from core.indicators import Features
from core.models import INTERVAL_MS

KLINES = Path(__file__).resolve().parent.parent / "data" / "klines"
SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
OHLCV: dict[str, str] = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
}


def resample(frame: pd.DataFrame, base_interval: str, interval: str) -> pd.DataFrame:
    """Aggregate base candles into ``interval`` candles; drop buckets missing a base bar."""
    times = pd.to_datetime(frame["open_time_ms"], unit="ms", utc=True)
    indexed = frame.set_index(times)[list(OHLCV)]
    rule = pd.Timedelta(milliseconds=INTERVAL_MS[interval])
    grouped = indexed.resample(rule, label="left", closed="left")
    out = grouped.agg(OHLCV)
    complete = grouped["close"].count() == INTERVAL_MS[interval] // INTERVAL_MS[base_interval]
    out = out[complete]
    opens = out.index.as_unit("ms").asi8.astype(np.int64)
    return out.reset_index(drop=True).assign(open_time_ms=opens)


@dataclass(slots=True)
class _Series:
    open_ms: np.ndarray
    close_ms: np.ndarray
    cols: dict[str, np.ndarray]


@dataclass(slots=True)
class _Data:
    """The frames of every symbol at the base interval and the indicator series built from them."""

    frames: dict[str, pd.DataFrame]
    base_interval: str
    series: dict[tuple[str, str], _Series] = field(default_factory=dict)

    def get(self, symbol: str, interval: str) -> _Series:
        key = (symbol, interval)
        if key not in self.series:
            self.series[key] = self._build(symbol, interval)
        return self.series[key]

    def _build(self, symbol: str, interval: str) -> _Series:
        step, base_step = INTERVAL_MS[interval], INTERVAL_MS[self.base_interval]
        if step < base_step or step % base_step:
            raise ValueError(f"cannot serve {interval} from {self.base_interval} candles")
        frame = self.frames[symbol]
        if interval != self.base_interval:
            frame = resample(frame, self.base_interval, interval)
        open_ms = frame["open_time_ms"].to_numpy(dtype=np.int64)
        return _Series(open_ms, open_ms + step, indicators.compute(frame))


class FakeMarket:
    """Closed bars up to ``now_ms`` from full frames (``open_time_ms`` + OHLCV, base interval)."""

    def __init__(
        self,
        frames: Mapping[str, pd.DataFrame],
        now_ms: int,
        *,
        base_interval: str = "15m",
        funding: Mapping[str, float | None] | None = None,
    ) -> None:
        self._data = _Data({s: f.reset_index(drop=True) for s, f in frames.items()}, base_interval)
        self.symbols: tuple[str, ...] = tuple(frames)
        self.base_interval = base_interval
        self.now_ms = now_ms
        self._funding: dict[str, float | None] = dict(funding or {})

    def at(self, now_ms: int) -> FakeMarket:
        """The same data seen at another instant (indicator arrays are shared, not recomputed)."""
        other = copy.copy(self)
        other.now_ms = now_ms
        return other

    def close_times(self, interval: str | None = None) -> np.ndarray:
        """Close times of every bar of ``interval`` (default: base) of the first symbol."""
        return self._data.get(self.symbols[0], interval or self.base_interval).close_ms

    # ------------------------------------------------------------------------------- MarketView
    def _index(self, series: _Series) -> int:
        return int(np.searchsorted(series.close_ms, self.now_ms, side="right")) - 1

    def features(self, symbol: str, interval: str) -> Features | None:
        series = self._data.get(symbol, interval)
        i = self._index(series)
        return Features(series.cols, i, int(series.open_ms[i])) if i >= 0 else None

    def closes(self, symbol: str, interval: str, n: int) -> np.ndarray:
        series = self._data.get(symbol, interval)
        i = self._index(series)
        return series.cols["close"][max(0, i - n + 1) : i + 1]

    def price(self, symbol: str) -> float:
        series = self._data.get(symbol, self.base_interval)
        i = self._index(series)
        if i < 0:
            raise LookupError(f"{symbol}: no closed {self.base_interval} bar by {self.now_ms}")
        return float(series.cols["close"][i])

    def funding_rate(self, symbol: str) -> float | None:
        return self._funding.get(symbol)


@cache
def _read_csv(symbol: str, interval: str) -> pd.DataFrame:
    return pd.read_csv(KLINES / f"{symbol}-{interval}.csv")


def real_frames(interval: str = "15m", symbols: Iterable[str] = SYMBOLS) -> dict[str, pd.DataFrame]:
    """The bundled real candles (read once per process; callers must not mutate them)."""
    return {s: _read_csv(s, interval) for s in symbols}


def truncated(
    frames: Mapping[str, pd.DataFrame], now_ms: int, base_interval: str
) -> dict[str, pd.DataFrame]:
    """Only the base bars that have closed by ``now_ms``: what a live feed would hold at that time."""
    step = INTERVAL_MS[base_interval]
    return {s: f[f["open_time_ms"] + step <= now_ms] for s, f in frames.items()}
