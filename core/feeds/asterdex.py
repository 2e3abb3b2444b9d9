"""The live market feed: AsterDex candles, mark prices and funding behind the ``MarketFeed`` contract.

Why it exists: live and paper-on-live sessions need the same closed-bar view of the market the
replay gives, built from the venue instead of files. Promises:

- **Closed bars only.** A candle is served once its close time has passed on the feed's clock
  (the venue's clock by default); indicators are computed from those bars with the same code and
  the same resampling as the replay (``core.indicators``, ``core.feeds.replay.resample``), so an
  agent cannot tell live from replay.
- **now never passes a bar the feed does not hold.** ``step`` moves now to the clock, except that
  it stops one millisecond short of a base bar close whose candle has not arrived yet; agents are
  therefore never due on a bar they cannot see.
- **Prices** are mark prices (premiumIndex over REST, or the ``markPrice@1s`` stream), funding
  the current rate of the premium index.
- **Streams when available, REST otherwise, and it says which.** ``start_streams`` runs websocket
  readers (core/feeds/asterdex_ws.py) for mark prices and closed klines, as many connections as
  the venue's 200 streams per connection require, each reconnecting with back-off on its own;
  whatever a stream has not delivered is fetched over REST. ``status`` is one readable line
  ("websocket" or "REST polling (...why...)") that the engine stores for the dashboard.
- History is loaded lazily per symbol (``history_bars`` base candles over REST), so a page that
  only wants a ticker does not pull every candle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pandas as pd

from core import indicators
from core.errors import ExchangeError, FeedError
from core.exchanges.asterdex_client import AsterDexClient
from core.feeds.asterdex_ws import MarketStreams, stream_groups
from core.feeds.base import Ticker
from core.feeds.replay import CSV_COLUMNS, resample
from core.indicators import Features
from core.models import INTERVAL_MS, Bar, MarketStep

STREAM_FRESH_MS = 10_000


class AsterdexFeed:
    """``MarketFeed`` over the AsterDex REST API, with websocket streams when started."""

    source = "asterdex"

    def __init__(
        self,
        client: AsterDexClient,
        symbols: tuple[str, ...],
        base_interval: str = "15m",
        *,
        history_bars: int = 1500,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if base_interval not in INTERVAL_MS:
            raise FeedError(f"unknown interval {base_interval}")
        self.client = client
        self.symbols = tuple(s.upper() for s in symbols)
        self.base_interval = base_interval
        self._base_ms = INTERVAL_MS[base_interval]
        self._history = history_bars
        self._clock = clock_ms or client.http.now_ms
        self._frames: dict[str, pd.DataFrame] = {}
        self._features: dict[tuple[str, str], tuple[dict[str, np.ndarray], np.ndarray] | None] = {}
        self._marks: dict[str, float] = {}
        self._funding: dict[str, float | None] = {}
        self._now = 0  # set on first use: the venue's now, held short of a missing bar
        self._lock = threading.RLock()
        self.stream: MarketStreams | None = None
        self._rest_reason = "websocket not started"

    # ------------------------------------------------------------------ status and streams
    @property
    def status(self) -> str:
        if self.stream is not None and self.stream.connected:
            return "websocket"
        reason = self.stream.problem if self.stream is not None else self._rest_reason
        return f"REST polling ({reason})"

    def start_streams(self, url: str | None = None) -> None:
        """Stream mark prices and closed base candles, over as many connections as the venue's
        stream limit needs; REST keeps covering what they miss. ``url`` (tests) carries every
        symbol on one given connection."""
        if self.stream is not None:
            return
        if url is not None:
            connections = [(self.symbols, url)]
        else:
            connections = [(symbols, self.client.market_stream_url(names))
                           for symbols, names in stream_groups(self.symbols, self._stream_names)]
        self.stream = MarketStreams(connections)
        self.stream.start()

    def _stream_names(self, symbol: str) -> list[str]:
        return [f"{symbol.lower()}@markPrice@1s", f"{symbol.lower()}@kline_{self.base_interval}"]

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream = None

    # ------------------------------------------------------------------ clock
    def _aligned(self, t: int) -> int:
        return t - t % self._base_ms

    def now_ms(self) -> int:
        with self._lock:
            if not self._now:
                self._now = self._held(self._clock())
            return self._now

    def seek(self, now_ms: int) -> None:
        """A live feed cannot travel in time: after a restart it is simply at the venue's now."""

    def _held(self, target: int) -> int:
        """``target``, or one millisecond short of the first base bar close it has not got."""
        held = target
        due = self._aligned(target)
        for symbol in self.symbols:
            frame = self._frame(symbol)
            last_close = int(frame["open_time_ms"].iloc[-1]) + self._base_ms if len(frame) else 0
            if last_close < due:
                held = min(held, last_close + self._base_ms - 1)
        return held

    # ------------------------------------------------------------------ stepping
    def step(self) -> MarketStep:
        with self._lock:
            target = self._clock()
            self.now_ms()  # history first, so the first step reports only what is new
            new_bars = {symbol: self._advance(symbol, target) for symbol in self.symbols}
            self._now = max(self._now, self._held(target))
            self._refresh_marks()
            return MarketStep(self._now, new_bars, dict(self._marks), dict(self._funding))

    def current(self) -> MarketStep:
        with self._lock:
            if not self._marks:
                self._refresh_marks()
            return MarketStep(self.now_ms(), {s: [] for s in self.symbols}, dict(self._marks),
                              dict(self._funding))

    def _advance(self, symbol: str, target: int) -> list[Bar]:
        """Append the base candles that closed by ``target``; return the new ones."""
        frame = self._frame(symbol)
        start = int(frame["open_time_ms"].iloc[-1]) + self._base_ms if len(frame) else 0
        if start + self._base_ms > target:
            return []
        rows = self._streamed(symbol, start, target)
        if not rows or rows[0][0] != start or rows[-1][0] + 2 * self._base_ms <= target:
            rows = self._rest_bars(symbol, start, target)
        if not rows:
            return []
        added = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
        self._frames[symbol] = pd.concat([frame, added], ignore_index=True).tail(self._history * 2)
        self._drop_features(symbol)
        return [Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
                for r in rows]

    def _streamed(self, symbol: str, start: int, target: int) -> list[tuple[int, float, float, float, float, float]]:
        if self.stream is None or not self.stream.carries(symbol):
            return []
        rows = self.stream.closed_klines(symbol, start)
        return [r for r in rows if r[0] + self._base_ms <= target]

    def _rest_bars(self, symbol: str, start: int, target: int) -> list[tuple[int, float, float, float, float, float]]:
        try:
            klines = self.client.klines(symbol, self.base_interval, start_ms=start, limit=1000)
        except ExchangeError as exc:
            raise FeedError(f"AsterDex klines for {symbol}: {exc}") from None
        return [(k.open_time_ms, float(k.open), float(k.high), float(k.low), float(k.close),
                 float(k.volume)) for k in klines if k.open_time_ms + self._base_ms <= target]

    def _refresh_marks(self) -> None:
        fresh = self.stream.marks(STREAM_FRESH_MS) if self.stream else {}
        missing = [s for s in self.symbols if s not in fresh]
        if missing:
            try:
                rows = self.client.premium_index() if len(missing) > 1 else self.client.premium_index(missing[0])
            except ExchangeError as exc:
                if not self._marks:
                    raise FeedError(f"AsterDex mark prices: {exc}") from None
                rows = []
            for r in rows:
                if r.symbol in self.symbols and r.symbol in missing:
                    self._marks[r.symbol] = float(r.mark_price)
                    self._funding[r.symbol] = float(r.last_funding_rate)
        for symbol, (price, rate) in fresh.items():
            if symbol in self.symbols:
                self._marks[symbol] = price
                self._funding[symbol] = rate
        for symbol in self.symbols:
            if symbol not in self._marks:  # a symbol without a premium index: its last close
                frame = self._frame(symbol)
                if not len(frame):
                    raise FeedError(f"AsterDex has no price for {symbol}")
                self._marks[symbol] = float(frame["close"].iloc[-1])
                self._funding.setdefault(symbol, None)

    # ------------------------------------------------------------------ history
    def _frame(self, symbol: str) -> pd.DataFrame:
        if symbol not in self.symbols:
            raise FeedError(f"{symbol} is not in this feed ({', '.join(self.symbols)})")
        frame = self._frames.get(symbol)
        if frame is None:
            rows: list[tuple[int, float, float, float, float, float]] = []
            clock = self._clock()
            end = clock
            try:
                while len(rows) < self._history:
                    limit = min(1000, self._history - len(rows))
                    got = self.client.klines(symbol, self.base_interval, end_ms=end - 1, limit=limit)
                    page = [(k.open_time_ms, float(k.open), float(k.high), float(k.low),
                             float(k.close), float(k.volume))
                            for k in got if k.open_time_ms + self._base_ms <= clock]
                    rows = page + rows
                    if len(got) < limit or not page:
                        break
                    end = page[0][0]
            except ExchangeError as exc:
                raise FeedError(f"AsterDex klines for {symbol}: {exc}") from None
            frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
            self._frames[symbol] = frame
        return frame

    def _drop_features(self, symbol: str) -> None:
        for key in [k for k in self._features if k[0] == symbol]:
            del self._features[key]

    def _series(self, symbol: str, interval: str) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        key = (symbol, interval)
        if key not in self._features:
            frame = self._frame(symbol)
            if interval not in INTERVAL_MS or INTERVAL_MS[interval] < self._base_ms:
                raise FeedError(f"cannot serve {interval} from {self.base_interval} candles")
            if interval == self.base_interval:
                frame = frame[frame["open_time_ms"] + self._base_ms <= self.now_ms()].reset_index(drop=True)
            elif len(frame):
                step = INTERVAL_MS[interval]
                full = resample(frame, step)
                per = step // self._base_ms
                counts = (frame["open_time_ms"] // step).value_counts()
                full = full[full["open_time_ms"].map(lambda t: counts.get(t // step, 0) == per)]
                frame = full[full["open_time_ms"] + step <= self.now_ms()].reset_index(drop=True)
            self._features[key] = (
                (indicators.compute(frame), frame["open_time_ms"].to_numpy(dtype=np.int64))
                if len(frame) else None
            )
        return self._features[key]

    # ------------------------------------------------------------------ MarketView
    def features(self, symbol: str, interval: str) -> Features | None:
        with self._lock:
            found = self._series(symbol, interval)
            if found is None:
                return None
            cols, opens = found
            return Features(cols, len(opens) - 1, int(opens[-1]))

    def closes(self, symbol: str, interval: str, n: int) -> np.ndarray:
        found = self.features(symbol, interval)
        return found.window("close", n) if found is not None else np.empty(0)

    def price(self, symbol: str) -> float:
        if symbol not in self._marks:
            self.current()
        if symbol not in self._marks:
            raise FeedError(f"no price for {symbol}")
        return self._marks[symbol]

    def funding_rate(self, symbol: str) -> float | None:
        return self._funding.get(symbol)

    def candles(self, symbol: str, interval: str, limit: int) -> pd.DataFrame:
        found = self._series(symbol, interval)
        if found is None:
            return pd.DataFrame(columns=list(CSV_COLUMNS))
        cols, opens = found
        lo = max(0, len(opens) - limit)
        out = {"open_time_ms": opens[lo:]}
        for col in ("open", "high", "low", "close", "volume"):
            out[col] = np.asarray(cols[col])[lo:]
        return pd.DataFrame(out)

    def ticker(self, symbol: str) -> Ticker:
        try:
            [t] = self.client.tickers_24h(symbol)
        except (ExchangeError, ValueError) as exc:
            raise FeedError(f"AsterDex 24h ticker for {symbol}: {exc}") from None
        price = self.price(symbol)
        return Ticker(
            symbol=symbol, price=price, change_24h_pct=float(t.price_change_pct),
            high_24h=float(t.high), low_24h=float(t.low), volume_24h=float(t.volume),
            funding_rate=self.funding_rate(symbol), time_ms=self.now_ms(),
        )
