"""Engine clocks. Periodic work is due by the engine clock, never by wall time, so a replay or a
backtest reproduces exactly what paper trading would have done on the same bars."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time in UTC milliseconds (live trading)."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class StepClock:
    """A clock the driver moves: replay and backtests set it to each bar's close time."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError(f"clock cannot move backwards ({now_ms} < {self._now})")
        self._now = now_ms
