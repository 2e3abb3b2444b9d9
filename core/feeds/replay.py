"""Replay of the bundled real candles: the default market for paper trading, tests and backtests.

The whole recorded history is loaded once per (folder, interval, symbols) and its indicators are
computed vectorised once (they are causal, see core/indicators.py). A ``ReplayFeed`` is then just a
cursor over that shared data: it serves only bars that have closed by its now, resamples slower
timeframes from the base candles, and advances a configurable number of bars per tick.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import indicators
from core.errors import FeedError, FeedExhausted
from core.feeds.base import Ticker
from core.funding import FundingHistory, load_funding
from core.indicators import Features
from core.models import INTERVAL_MS, Bar, MarketStep

CSV_COLUMNS = ("open_time_ms", "open", "high", "low", "close", "volume")
EARLIEST_MS, LATEST_MS = 1_230_768_000_000, 4_102_444_800_000  # 2009-01-01 and 2100-01-01, UTC
DAY_MS = 86_400_000


def read_candles(path: Path, interval: str) -> pd.DataFrame:
    """Read and validate one ``SYMBOL-INTERVAL.csv``; FeedError names the file and the row."""
    try:
        found = path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise FeedError(f"cannot read {str(path)[:120]}: {exc.strerror or exc}") from None
    if not found:
        raise FeedError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise FeedError(f"{path}: cannot read CSV ({exc})") from None
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise FeedError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in CSV_COLUMNS:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = ~np.isfinite(numeric.to_numpy(dtype=float))
        if bad.any():
            at = int(bad.argmax())
            raw = frame[col].iloc[at]
            if pd.isna(raw):
                what = "is empty (or NaN)"
            elif pd.isna(numeric.iloc[at]):
                what = f"is not a number ({str(raw)!r})"
            else:
                what = f"is not a finite number ({str(raw)!r})"
            raise FeedError(f"{path}: row {at + 2}: {col} {what}")  # 1-based plus the header
        frame[col] = numeric
    _check_candles(path, frame)
    raw_times = frame["open_time_ms"].to_numpy(dtype=float)
    odd = (raw_times < EARLIEST_MS) | (raw_times > LATEST_MS) | (raw_times != np.floor(raw_times))
    if odd.any():
        at = int(odd.argmax())
        raise FeedError(f"{path}: row {at + 2}: open_time_ms {raw_times[at]:.15g} is "
                        "not a candle time (whole epoch milliseconds between 2009 and 2100)")
    times = frame["open_time_ms"].astype("int64")
    steps = times.diff().iloc[1:]
    if (steps <= 0).any():
        first = int(steps.index[(steps <= 0).to_numpy()][0])
        row = first + 2
        what = "duplicate timestamp" if steps[first] == 0 else "timestamp earlier than the row before"
        # say which kind of disorder, with the value
        raise FeedError(f"{path}: row {row}: {what} {int(times[first])} (timestamps must be "
                        "strictly increasing)")
    interval_ms = INTERVAL_MS[interval]
    if (steps != interval_ms).any():
        row = int(steps.index[(steps != interval_ms).to_numpy()][0]) + 2
        raise FeedError(f"{path}: row {row}: gap in the {interval} candles")
    frame["open_time_ms"] = times
    return frame.reset_index(drop=True)


def _check_candles(path: Path, frame: pd.DataFrame) -> None:
    """Prices above zero, volume not negative, and each bar's high and low around its open and
    close: a bad price would otherwise trade, and show on the equity curve, as if it were real."""
    prices = frame[["open", "high", "low", "close"]]
    checks = (
        ((prices <= 0).any(axis=1), "a price is zero or negative"),
        (frame["volume"] < 0, "volume is negative"),
        (frame["high"] < prices.drop(columns="high").max(axis=1), "high is below open, low or close"),
        (frame["low"] > prices.drop(columns="low").min(axis=1), "low is above open, high or close"),
    )
    first = [(int(bad.to_numpy().argmax()), what) for bad, what in checks if bad.any()]
    if first:
        at, what = min(first, key=lambda found: found[0])  # the first row; in it, the first check
        values = ", ".join(f"{c} {float(frame[c].iloc[at]):.12g}" for c in CSV_COLUMNS[1:])
        raise FeedError(f"{path}: row {at + 2}: {what} ({values})")


def resample(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Aggregate base candles into slower ones (buckets aligned to the epoch)."""
    bucket = frame["open_time_ms"] // interval_ms * interval_ms
    grouped = frame.groupby(bucket, sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    out.index.name = "open_time_ms"
    return out.reset_index()


@dataclass(slots=True)
class _Series:
    """One symbol at one interval: open times, close times and indicator columns."""

    open_ms: np.ndarray
    close_ms: np.ndarray
    cols: dict[str, np.ndarray]


@dataclass(slots=True)
class ReplayData:
    """Recorded candles of several symbols on a shared base timeline, with cached resamples, and
    the funding rates recorded beside them (``SYMBOL-funding.csv``, where the folder has one)."""

    base_interval: str
    symbols: tuple[str, ...]
    frames: dict[str, pd.DataFrame]
    funding: FundingHistory = field(default_factory=FundingHistory)
    series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def open_ms(self) -> np.ndarray:
        return self.get(self.symbols[0], self.base_interval).open_ms

    def get(self, symbol: str, interval: str) -> _Series:
        key = (symbol, interval)
        found = self.series.get(key)
        if found is not None:
            return found
        with self.lock:
            if key not in self.series:
                self.series[key] = self._build(symbol, interval)
            return self.series[key]

    def _build(self, symbol: str, interval: str) -> _Series:
        if symbol not in self.frames:
            raise FeedError(f"no recorded data for {symbol}")
        if interval not in INTERVAL_MS:
            raise FeedError(f"unknown interval {interval}")
        step = INTERVAL_MS[interval]
        base = self.frames[symbol]
        if step < INTERVAL_MS[self.base_interval]:
            raise FeedError(f"cannot serve {interval} from {self.base_interval} candles")
        frame = base if interval == self.base_interval else resample(base, step)
        open_ms = frame["open_time_ms"].to_numpy(dtype=np.int64)
        return _Series(open_ms, open_ms + step, indicators.compute(frame))


_CACHE: dict[tuple[str, str, tuple[str, ...]], ReplayData] = {}
_CACHE_LOCK = threading.Lock()


def load_replay_data(data_dir: Path, interval: str, symbols: tuple[str, ...]) -> ReplayData:
    """Load (once per process) and align the recorded candles of ``symbols``, with their
    recorded funding rates (core/funding.py)."""
    key = (str(Path(data_dir).resolve()), interval, symbols)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        frames = {s: read_candles(Path(data_dir) / f"{s}-{interval}.csv", interval) for s in symbols}
        common = None
        for frame in frames.values():
            times = frame["open_time_ms"]
            common = times if common is None else common[common.isin(times)]
        if common is None or len(common) == 0:
            raise FeedError(f"no common timestamps for {', '.join(symbols)} at {interval}")
        frames = {
            s: f[f["open_time_ms"].isin(common)].reset_index(drop=True) for s, f in frames.items()
        }
        data = ReplayData(interval, symbols, frames, load_funding(Path(data_dir), symbols))
        _CACHE[key] = data
        return data


class ReplayFeed:
    """A cursor over ``ReplayData``: now is the close time of the newest served base bar."""

    source = "replay"

    def __init__(
        self,
        data: ReplayData,
        *,
        start_ms: int,
        bars_per_tick: int = 1,
        funding_rate: float | None = None,
    ) -> None:
        self._data = data
        self.symbols = data.symbols
        self.base_interval = data.base_interval
        self._base_ms = INTERVAL_MS[data.base_interval]
        self._bars_per_tick = bars_per_tick
        self._funding_rate = funding_rate
        self._base = {s: data.get(s, data.base_interval) for s in data.symbols}
        self._index = -1
        self._feature_cache: dict[tuple[str, str], Features | None] = {}
        self.seek(start_ms)

    # ---------------------------------------------------------------- cursor
    def now_ms(self) -> int:
        return int(self._data.open_ms[self._index]) + self._base_ms if self._index >= 0 else 0

    def last_ms(self) -> int:
        return int(self._data.open_ms[-1]) + self._base_ms

    def seek(self, now_ms: int) -> None:
        opens = self._data.open_ms
        if now_ms < int(opens[0]) + self._base_ms:
            raise FeedError(
                f"replay starts at {_fmt(int(opens[0]) + self._base_ms)}; cannot start at {_fmt(now_ms)}"
            )
        if now_ms > self.last_ms():
            raise FeedExhausted(f"the recorded data ends at {_fmt(self.last_ms())}")
        self._index = int(np.searchsorted(opens + self._base_ms, now_ms, side="right")) - 1
        self._feature_cache.clear()

    def step(self) -> MarketStep:
        opens = self._data.open_ms
        if self._index >= len(opens) - 1:
            raise FeedExhausted(f"the recorded data ends at {_fmt(self.last_ms())}")
        first = self._index + 1
        last = min(self._index + self._bars_per_tick, len(opens) - 1)
        self._index = last
        self._feature_cache.clear()
        bars: dict[str, list[Bar]] = {}
        prices: dict[str, float] = {}
        for symbol, series in self._base.items():
            c = series.cols
            bars[symbol] = [
                Bar(int(series.open_ms[i]), float(c["open"][i]), float(c["high"][i]),
                    float(c["low"][i]), float(c["close"][i]), float(c["volume"][i]))
                for i in range(first, last + 1)
            ]
            prices[symbol] = float(c["close"][last])
        return MarketStep(self.now_ms(), bars, prices, self._funding_rates())

    def current(self) -> MarketStep:
        prices = {s: self.price(s) for s in self.symbols}
        return MarketStep(self.now_ms(), {s: [] for s in self.symbols}, prices,
                          self._funding_rates())

    def _funding_rates(self) -> dict[str, float | None]:
        return {s: self.funding_rate(s) for s in self.symbols}

    # ---------------------------------------------------------------- MarketView
    def _closed_index(self, series: _Series) -> int:
        if series.close_ms is self._base[self.symbols[0]].close_ms:
            return self._index
        return int(np.searchsorted(series.close_ms, self.now_ms(), side="right")) - 1

    def features(self, symbol: str, interval: str) -> Features | None:
        key = (symbol, interval)
        if key in self._feature_cache:
            return self._feature_cache[key]
        series = self._base[symbol] if interval == self.base_interval else self._data.get(symbol, interval)
        i = self._index if interval == self.base_interval else self._closed_index(series)
        found = Features(series.cols, i, int(series.open_ms[i])) if i >= 0 else None
        self._feature_cache[key] = found
        return found

    def closes(self, symbol: str, interval: str, n: int) -> np.ndarray:
        found = self.features(symbol, interval)
        return found.window("close", n) if found is not None else np.empty(0)

    def price(self, symbol: str) -> float:
        if symbol not in self._base:
            raise FeedError(f"{symbol} is not in this replay ({', '.join(self.symbols)})")
        return float(self._base[symbol].cols["close"][self._index])

    def funding_rate(self, symbol: str) -> float | None:
        """The rate of the symbol's last recorded funding event at or before now; where it has
        no history then, the rate this feed was given (None by default: nothing on record)."""
        recorded = self._data.funding.latest(symbol, self.now_ms())
        return self._funding_rate if recorded is None else recorded

    def candles(self, symbol: str, interval: str, limit: int) -> pd.DataFrame:
        found = self.features(symbol, interval)
        if found is None:
            return pd.DataFrame(columns=list(CSV_COLUMNS))
        series = self._base[symbol] if interval == self.base_interval else self._data.get(symbol, interval)
        lo = max(0, found.index - limit + 1)
        hi = found.index + 1
        out = {"open_time_ms": series.open_ms[lo:hi]}
        for col in ("open", "high", "low", "close", "volume"):
            out[col] = series.cols[col][lo:hi]
        return pd.DataFrame(out)

    def ticker(self, symbol: str) -> Ticker:
        price = self.price(symbol)
        window = max(1, DAY_MS // self._base_ms)
        series = self._base[symbol].cols
        lo = max(0, self._index - window + 1)
        before = self._index - window
        change = (price / float(series["close"][before]) - 1) * 100 if before >= 0 else None
        return Ticker(
            symbol=symbol,
            price=price,
            change_24h_pct=change,
            high_24h=float(series["high"][lo : self._index + 1].max()),
            low_24h=float(series["low"][lo : self._index + 1].min()),
            volume_24h=float(series["volume"][lo : self._index + 1].sum()),
            funding_rate=self.funding_rate(symbol),
            time_ms=self.now_ms(),
        )


def _fmt(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
