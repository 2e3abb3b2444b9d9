"""Engine clocks. Periodic work is due by the engine clock, never by wall time, so a replay or a
backtest reproduces exactly what paper trading would have done on the same bars."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class FeedClock:
    """Engine time of a replay: the close time of the newest bar the feed has served."""

    def __init__(self, feed: Clock) -> None:  # a feed's now is a clock
        self._feed = feed

    def now_ms(self) -> int:
        return self._feed.now_ms()
