"""The market feed contract. The replay feed implements it over recorded candles; the live AsterDex
feed will implement it over REST and websockets. The engine only ever sees this protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from core.agents.base import MarketView
from core.models import MarketStep


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    price: float
    change_24h_pct: float | None
    high_24h: float
    low_24h: float
    volume_24h: float
    funding_rate: float | None
    time_ms: int


class MarketFeed(MarketView, Protocol):
    """Closed bars only, up to the feed's now; ``step`` moves now forward."""

    source: str

    def now_ms(self) -> int: ...

    def step(self) -> MarketStep:
        """Advance to the next tick and return the bars that closed since the previous one.
        Raises FeedExhausted when a replay has no more data, FeedError when data is unavailable."""
        ...

    def current(self) -> MarketStep:
        """The market as it is now, with no new bars (used to close positions when a replay has
        ended)."""
        ...

    def seek(self, now_ms: int) -> None:
        """Position the feed so its now is ``now_ms`` (resume after a restart)."""
        ...

    def candles(self, symbol: str, interval: str, limit: int) -> pd.DataFrame:
        """The last ``limit`` closed candles (open_time, open, high, low, close, volume)."""
        ...

    def ticker(self, symbol: str) -> Ticker: ...
