"""Public market data of the fake venue, served from the bundled real candles (data/klines).

Why: the live market feed must be testable end to end (a paper session on the "live" feed) with
no network. The venue's *market clock* (``Market.now_ms``) decides which candles exist: klines up
to it (the newest may still be open), the last price is the close of the newest base candle unless
the test sets a mark, funding happens every 8 hours at ``funding_rate``.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT

INTERVAL_MS = {"1m": 60_000, "15m": 900_000, "1h": 3_600_000}
FUNDING_MS = 8 * 3_600_000
DATA_DIR = PROJECT_ROOT / "data" / "klines"


@dataclass
class Series:
    times: list[int]
    rows: list[tuple[str, str, str, str, str]]  # open, high, low, close, volume


def load(symbol: str, interval: str, data_dir: Path = DATA_DIR) -> Series | None:
    path = data_dir / f"{symbol}-{interval}.csv"
    if not path.exists():
        return None
    times, rows = [], []
    with path.open() as fh:
        reader = csv.reader(fh)
        next(reader)
        for r in reader:
            times.append(int(r[0]))
            rows.append((r[1], r[2], r[3], r[4], r[5]))
    return Series(times, rows)


@dataclass
class Market:
    symbols: tuple[str, ...]
    now_ms: int
    base_interval: str = "1m"
    funding_rate: Decimal = Decimal("0.0001")
    data_dir: Path = DATA_DIR
    borrow: dict[str, str] = field(default_factory=dict)  # symbol -> bundled symbol whose candles it serves
    _cache: dict[tuple[str, str], Series | None] = field(default_factory=dict)

    def series(self, symbol: str, interval: str) -> Series | None:
        key = (symbol, interval)
        if key not in self._cache:
            self._cache[key] = load(self.borrow.get(symbol, symbol), interval, self.data_dir)
        return self._cache[key]

    def klines(self, symbol: str, interval: str, start: int | None, end: int | None,
               limit: int) -> list[list[Any]]:
        series = self.series(symbol, interval)
        if series is None:
            raise KeyError(interval)
        step = INTERVAL_MS[interval]
        hi = min(end if end is not None else self.now_ms, self.now_ms)
        right = bisect.bisect_right(series.times, hi)
        left = bisect.bisect_left(series.times, start) if start is not None else max(0, right - limit)
        out = []
        for i in range(left, min(right, left + limit)):
            t = series.times[i]
            o, h, lo, c, v = series.rows[i]
            out.append([t, o, h, lo, c, v, t + step - 1, str(Decimal(v) * Decimal(c)), 0, "0", "0", "0"])
        return out

    def last_close(self, symbol: str) -> Decimal | None:
        series = self.series(symbol, self.base_interval)
        if series is None:
            return None
        i = bisect.bisect_right(series.times, self.now_ms) - 1
        return Decimal(series.rows[i][3]) if i >= 0 else None

    def ticker_24h(self, symbol: str, last: Decimal) -> dict[str, Any]:
        rows = self.klines(symbol, "15m" if self.series(symbol, "15m") else self.base_interval,
                           self.now_ms - 86_400_000 + 1, self.now_ms, 1000)
        open_ = Decimal(rows[0][1]) if rows else last
        high = max((Decimal(r[2]) for r in rows), default=last)
        low = min((Decimal(r[3]) for r in rows), default=last)
        vol = sum((Decimal(r[5]) for r in rows), Decimal(0))
        change = last - open_
        return {
            "symbol": symbol, "priceChange": str(change),
            "priceChangePercent": str((change / open_ * 100).quantize(Decimal("0.001"))) if open_ else "0",
            "weightedAvgPrice": str(last), "prevClosePrice": str(open_), "lastPrice": str(last),
            "lastQty": "0", "openPrice": str(open_), "highPrice": str(high), "lowPrice": str(low),
            "volume": str(vol), "quoteVolume": str(vol * last), "openTime": self.now_ms - 86_400_000,
            "closeTime": self.now_ms, "firstId": 0, "lastId": 0, "count": len(rows),
        }

    def next_funding_ms(self) -> int:
        return (self.now_ms // FUNDING_MS + 1) * FUNDING_MS

    def funding_history(self, symbol: str, start: int | None, end: int | None,
                        limit: int) -> list[dict[str, Any]]:
        hi = min(end if end is not None else self.now_ms, self.now_ms)
        t = (hi // FUNDING_MS) * FUNDING_MS
        out = []
        while len(out) < limit and (start is None or t >= start):
            out.append({"symbol": symbol, "fundingRate": str(self.funding_rate), "fundingTime": t})
            t -= FUNDING_MS
        return list(reversed(out))
