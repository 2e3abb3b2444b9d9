"""What a backtest is asked to do, validated before anything runs.

Dates are UTC. ``--from DATE`` starts at that day's midnight and ``--to DATE`` runs through the end
of that day (a timestamp such as ``2025-10-10T12:00`` is taken exactly). The range must lie inside
the recorded data of every chosen symbol (its first and last day may be named whole: the run then
starts at its first bar or ends at its last; a range reaching past those days is refused, never
quietly shortened); the data is read (and refused file by file, row by row,
see ``core.feeds.replay.read_candles``) here, so a bad request fails before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, FeedError
from core.feeds.replay import ReplayData, load_replay_data
from core.models import INTERVAL_MS, ms_to_dt, symbol_list, validate_capital

INTERVALS = ("1m", "15m", "1h")
DAY = timedelta(days=1)
DAY_MS = 86_400_000


# A run marked running or saving that has written nothing for this long has lost its process
# (progress is written every 0.5% of the range, and the save is one transaction).
STALE_MS = 120_000


@dataclass(frozen=True, slots=True)
class BacktestParams:
    start_ms: int
    end_ms: int
    data_dir: str
    interval: str
    symbols: tuple[str, ...]
    capital: float
    ceo: bool = True
    name: str | None = None
    llm_cache: bool = False  # agents answer from recorded model replies where a prompt matches

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["symbols"] = list(self.symbols)
        out["from"] = _fmt(self.start_ms)
        out["to"] = _fmt(self.end_ms)
        return out

    @property
    def label(self) -> str:
        ceo = ("CEO on" if self.ceo else "CEO off") + (" LLM cache" if self.llm_cache else "")
        last_day = _fmt(self.end_ms - 1)[:10]  # the end is exclusive
        return (self.name or f"{','.join(s.removesuffix('USDT') for s in self.symbols)} "
                f"{self.interval} {_fmt(self.start_ms)[:10]} → {last_day} {ceo}")[:120]


def _short(text: str) -> str:
    return text if len(text) <= 120 else f"{text[:60]}…({len(text):,} characters)"


def parse_time(text: str, *, end: bool) -> int:
    """``YYYY-MM-DD`` (a whole day; the end of it when ``end``) or an ISO timestamp, in UTC ms."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"'{'to' if end else 'from'}' {text!r} is not a date (YYYY-MM-DD)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(raw) == 10:
        when += DAY
    return int(when.timestamp() * 1000)


def build_params(
    *,
    start: str,
    end: str,
    data_dir: str | Path,
    interval: str,
    symbols: list[str] | tuple[str, ...],
    capital: float,
    ceo: bool = True,
    name: str | None = None,
    llm_cache: bool = False,
) -> tuple[BacktestParams, ReplayData]:
    """Validate a request and load its data; ConfigError (one readable line) when it cannot run."""
    if interval not in INTERVALS:
        raise ConfigError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    validate_capital(capital)
    chosen = symbol_list(symbols)
    folder = Path(data_dir).expanduser()
    try:
        is_folder = folder.is_dir()
    except OSError as exc:  # a name too long for the file system, a folder we may not read
        raise ConfigError(f"data folder {_short(str(folder))}: {exc.strerror or exc}") from None
    if not is_folder:
        raise ConfigError(f"data folder {_short(str(folder))}: not a folder")
    start_ms, end_ms = parse_time(start, end=False), parse_time(end, end=True)
    asked = f"from {start.strip()} to {end.strip()}"
    if end_ms <= start_ms:
        raise ConfigError(f"the range {asked} ends before it starts: 'to' must be after 'from'")
    try:
        data = load_replay_data(folder.resolve(), interval, chosen)
    except FeedError as exc:
        raise ConfigError(str(exc)) from None
    step = INTERVAL_MS[interval]
    first_close, last_close = int(data.open_ms[0]) + step, int(data.open_ms[-1]) + step
    recorded = f"{day_of(first_close - step)} to {day_of(last_close - 1)}"
    if start_ms >= last_close or end_ms <= first_close:
        raise ConfigError(f"the range {asked} is outside the data (recorded {recorded})")
    # within the data's first and last (partial) days a range runs from its first bar or to its
    # last one; a range reaching past those days is refused rather than quietly shortened
    first_day = (first_close - step) // DAY_MS * DAY_MS
    if start_ms < first_day:
        raise ConfigError(f"'from' {start.strip()} is before the start of the data (recorded "
                          f"{recorded}); choose {day_of(first_day)} or later")
    after_last_day = (last_close - 1) // DAY_MS * DAY_MS + DAY_MS
    if end_ms > after_last_day:
        raise ConfigError(f"'to' {end.strip()} is after the end of the data (recorded "
                          f"{recorded}); choose {day_of(last_close - 1)} or earlier")
    start_ms, end_ms = max(start_ms, first_close), min(end_ms, last_close)
    params = BacktestParams(start_ms, end_ms, str(folder.resolve()), interval, chosen,
                            float(capital), ceo, name.strip()[:120] if name else None,
                            bool(llm_cache))
    if ticks_in(params, data) < 1:
        raise ConfigError("the range holds no complete bar")
    return params, data


def ticks_in(params: BacktestParams, data: ReplayData) -> int:
    """Base bars that close after the start and no later than the end: one engine tick each."""
    closes = data.open_ms + INTERVAL_MS[params.interval]
    first = int(np.searchsorted(closes, params.start_ms, side="right"))
    last = int(np.searchsorted(closes, params.end_ms, side="right"))
    return max(0, last - first)


def _fmt(ms: int) -> str:
    return f"{ms_to_dt(ms):%Y-%m-%d %H:%M} UTC"


def day_of(ms: int) -> str:
    """The UTC day of ``ms`` as YYYY-MM-DD."""
    return f"{ms_to_dt(ms):%Y-%m-%d}"
