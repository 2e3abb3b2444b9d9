"""Recorded funding-rate history: what the venue really charged, per symbol and funding time.

A replay or a backtest settles funding from ``SYMBOL-funding.csv`` files beside the candles
(header ``funding_time_ms,rate``; see data/klines/README.md) rather than from one configured
constant, so a run pays what a trader holding the same positions then would have paid. A file is
checked row by row before anything runs: a bad one is refused with its path and line, never
half-used.

A symbol's history *covers* the spans between its rows, split wherever two rows lie more than
``MAX_GAP_MS`` apart (Binance's longest funding interval, 8 h). Inside a covered span the recorded
times are the settlement times, at the recorded rates; outside (no file, before its first row, after
its last, in a gap) the venue falls back to its configured constant and the report says where.
"""

from __future__ import annotations

import csv
import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import FeedError
from core.models import ms_to_dt

HOUR_MS = 3_600_000
MAX_GAP_MS = 8 * HOUR_MS
MAX_ABS_RATE = 0.03  # 3% per interval: beyond any exchange's cap (a percent written as a fraction)
EARLIEST_MS, LATEST_MS = 1_230_768_000_000, 4_102_444_800_000  # 2009-01-01 and 2100-01-01, UTC
COLUMNS = ("funding_time_ms", "rate")
SUFFIX = "-funding.csv"


def funding_path(data_dir: Path, symbol: str) -> Path:
    return Path(data_dir) / f"{symbol}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class FundingSeries:
    """One symbol's recorded funding times (ascending, ms) and rates, and the spans they cover."""

    symbol: str
    source: str  # the file it was read from
    times: tuple[int, ...]
    rates: tuple[float, ...]
    periods: tuple[tuple[int, int], ...]  # covered [first, last] spans, split at gaps

    def covers(self, ms: int) -> bool:
        i = bisect_right(self.periods, (ms, math.inf)) - 1
        return i >= 0 and self.periods[i][0] <= ms <= self.periods[i][1]

    def rate_at(self, ms: int) -> float | None:
        """The recorded rate of the funding event at exactly ``ms``, None when there was none."""
        i = bisect_left(self.times, ms)
        return self.rates[i] if i < len(self.times) and self.times[i] == ms else None

    def latest(self, ms: int) -> float | None:
        """The rate of the last funding event at or before ``ms`` while the history still runs
        (no event for more than ``MAX_GAP_MS`` means there is no current rate on record)."""
        i = bisect_right(self.times, ms) - 1
        if i < 0 or ms - self.times[i] >= MAX_GAP_MS:
            return None
        return self.rates[i]


@dataclass(frozen=True, slots=True)
class FundingHistory:
    """The recorded funding of a set of symbols; a symbol without a file has none."""

    series: Mapping[str, FundingSeries] = field(default_factory=dict)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted(self.series))

    def covers(self, symbol: str, ms: int) -> bool:
        found = self.series.get(symbol)
        return found is not None and found.covers(ms)

    def settlement(self, symbol: str, due_ms: int) -> tuple[float | None, bool]:
        """Does funding settle for ``symbol`` at ``due_ms``, and at which rate?

        ``(rate, True)``: a recorded event; ``(None, True)``: inside the history but no event then
        (no settlement); ``(None, False)``: outside the history, where the caller's fallback
        applies."""
        found = self.series.get(symbol)
        if found is None or not found.covers(due_ms):
            return None, False
        return found.rate_at(due_ms), True

    def times_between(self, symbols: Iterable[str], after_ms: int, before_ms: int) -> list[int]:
        """Recorded funding times of ``symbols`` in (after_ms, before_ms), ascending, unique."""
        out: set[int] = set()
        for symbol in symbols:
            found = self.series.get(symbol)
            if found is not None:
                lo, hi = bisect_right(found.times, after_ms), bisect_left(found.times, before_ms)
                out.update(found.times[lo:hi])
        return sorted(out)

    def latest(self, symbol: str, ms: int) -> float | None:
        found = self.series.get(symbol)
        return None if found is None else found.latest(ms)

    def uncovered(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """The spans of [start_ms, end_ms] the history of ``symbol`` does not cover."""
        found = self.series.get(symbol)
        if found is None:
            return [(start_ms, end_ms)] if end_ms > start_ms else []
        out: list[tuple[int, int]] = []
        cursor = start_ms
        for first, last in found.periods:
            if last < cursor:
                continue
            if first > end_ms:
                break
            if first > cursor:
                out.append((cursor, first))
            cursor = max(cursor, last)
        if cursor < end_ms:
            out.append((cursor, end_ms))
        return out


def read_funding(path: Path, symbol: str) -> FundingSeries:
    """Read and validate one ``SYMBOL-funding.csv``; FeedError names the file and the line."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FeedError(f"{path}: cannot read funding CSV ({exc})") from None
    if not lines or [c.strip() for c in lines[0]] != list(COLUMNS):
        got = ",".join(lines[0]) if lines else "an empty file"
        raise FeedError(f"{path}: line 1: the header must be {','.join(COLUMNS)} (got {got[:80]!r})")
    times: list[int] = []
    rates: list[float] = []
    for number, row in enumerate(lines[1:], start=2):
        if not row or all(not c.strip() for c in row):
            raise FeedError(f"{path}: line {number}: empty line")
        if len(row) != len(COLUMNS):
            raise FeedError(f"{path}: line {number}: {len(row)} fields, expected 2 "
                            f"({','.join(COLUMNS)})")
        when = _time(path, number, row[0])
        rate = _rate(path, number, row[1])
        if times and when <= times[-1]:
            what = (f"duplicate funding time {when}" if when == times[-1] else
                    f"funding time {when} is earlier than the line before ({times[-1]})")
            raise FeedError(f"{path}: line {number}: {what} (times must be strictly increasing)")
        times.append(when)
        rates.append(rate)
    if not times:
        raise FeedError(f"{path}: no funding rows after the header")
    return FundingSeries(symbol, str(path), tuple(times), tuple(rates), _periods(times))


def _time(path: Path, number: int, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise FeedError(f"{path}: line {number}: funding_time_ms {text[:40]!r} is not whole epoch "
                        "milliseconds")
    value = int(text)
    if not EARLIEST_MS <= value <= LATEST_MS:
        raise FeedError(f"{path}: line {number}: funding_time_ms {value} is not between 2009 and "
                        "2100 (epoch milliseconds, UTC)")
    return value


def _rate(path: Path, number: int, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FeedError(f"{path}: line {number}: rate {raw.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise FeedError(f"{path}: line {number}: rate {raw.strip()!r} is not a finite number")
    if abs(value) > MAX_ABS_RATE:
        raise FeedError(f"{path}: line {number}: rate {value:g} is beyond ±{MAX_ABS_RATE:g} per "
                        "interval: rates are fractions (0.0001 = 0.01%), not percent")
    return value


def _periods(times: list[int]) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    first = prev = times[0]
    for t in times[1:]:
        if t - prev > MAX_GAP_MS:
            spans.append((first, prev))
            first = t
        prev = t
    spans.append((first, prev))
    return tuple(spans)


_CACHE: dict[tuple[str, str, int, int], FundingSeries] = {}
_CACHE_LOCK = threading.Lock()


def load_funding(data_dir: Path, symbols: Iterable[str]) -> FundingHistory:
    """The recorded funding of ``symbols`` found in ``data_dir`` (a symbol without a file has
    none); each file is read once per process while it is unchanged."""
    found: dict[str, FundingSeries] = {}
    for symbol in symbols:
        path = funding_path(data_dir, symbol)
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FeedError(f"cannot read {str(path)[:120]}: {exc.strerror or exc}") from None
        key = (str(path.resolve()), symbol, stat.st_mtime_ns, stat.st_size)
        with _CACHE_LOCK:
            series = _CACHE.get(key)
        if series is None:
            series = read_funding(path, symbol)
            with _CACHE_LOCK:
                _CACHE[key] = series
        found[symbol] = series
    return FundingHistory(found)


def coverage_note(history: FundingHistory, symbols: Iterable[str], start_ms: int, end_ms: int,
                  *, fallback_rate: float, interval_hours: int) -> str:
    """One sentence for a session's log: which symbols settle recorded funding over
    [start_ms, end_ms] and where the configured constant applies instead."""
    def when(ms: int) -> str:
        return f"{ms_to_dt(ms):%Y-%m-%d %H:%M} UTC"

    recorded, fallback = [], []
    for symbol in symbols:
        gaps = history.uncovered(symbol, start_ms, end_ms)
        if symbol in history.series and gaps != [(start_ms, end_ms)]:
            recorded.append(symbol)
        fallback += [f"{symbol} {when(lo)} → {when(hi)}" for lo, hi in gaps]
    text = (f"funding: Binance's recorded rates for {', '.join(recorded)}" if recorded
            else "funding: no recorded funding history in the data")
    if fallback:
        text += (f"; the configured {fallback_rate:.4%} every {interval_hours} h where there is "
                 f"none: {'; '.join(fallback)}")
    return text + "."
