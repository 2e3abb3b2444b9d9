"""The websocket half of the live feed: mark prices and closed klines from AsterDex streams.

Why it exists: the venue asks bots to stream rather than poll (weight is per IP), and a stream
reader must survive the network: each connection runs in its own daemon thread, reconnects with
exponential back-off (1 s doubling to 60 s, reset after a good connection), and always says what
state it is in (``connected``, ``problem``) so the feed can fall back to REST and the UI can show
it. It only buffers; the feed decides what to use. Messages are the combined-stream form
``{"stream": name, "data": {...}}`` (reference §9): ``markPriceUpdate`` gives mark and funding
rate, ``kline`` events with ``x`` true give closed candles.

One connection listens to at most 200 streams (V3 document line 1650, V1 line 1477), and a
symbol takes two (mark price and base kline), so ``MarketStreams`` splits the subscriptions over
as many connections as needed (``stream_groups``), keeping a symbol's streams on one connection
so that "is this symbol's stream up" has one answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

log = logging.getLogger(__name__)

KlineRow = tuple[int, float, float, float, float, float]
MAX_BACKOFF_S = 60.0
KEEP_KLINES = 200
MAX_STREAMS_PER_CONNECTION = 200


class MarketStream:
    """A reconnecting reader of one combined market stream URL."""

    def __init__(self, url: str, *, open_timeout_s: float = 5.0, name: str = "asterdex-stream") -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.name = name
        self.connected = False
        self.problem = "websocket connecting"
        self.reconnects = 0
        self._marks: dict[str, tuple[float, float | None, int]] = {}
        self._klines: dict[str, dict[int, KlineRow]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(Exception):  # a broken socket may fail to close; fine
                sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ reads
    def marks(self, max_age_ms: int) -> dict[str, tuple[float, float | None]]:
        """Marks (and funding rates) received within ``max_age_ms`` of local time."""
        floor = time.monotonic() * 1000 - max_age_ms
        with self._lock:
            return {s: (p, r) for s, (p, r, t) in self._marks.items() if t >= floor}

    def closed_klines(self, symbol: str, from_open_ms: int) -> list[KlineRow]:
        with self._lock:
            rows = self._klines.get(symbol, {})
            return [rows[t] for t in sorted(rows) if t >= from_open_ms]

    # ------------------------------------------------------------------ the reader thread
    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=self.open_timeout_s) as sock:
                    self._socket = sock
                    self.connected, self.problem = True, ""
                    backoff = 1.0
                    for message in sock:
                        if self._stop.is_set():
                            break
                        self._handle(message)
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:160]
            else:
                reason = "the venue closed the stream"
            self.connected = False
            self._socket = None
            if self._stop.is_set():
                break
            self.reconnects += 1
            self.problem = f"websocket down ({reason}); reconnecting in {backoff:.0f} s"
            log.warning("market stream: %s", self.problem)
            self._stop.wait(backoff)
            backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _handle(self, message: str | bytes) -> None:
        try:
            payload = json.loads(message)
        except ValueError:
            return
        data = payload.get("data", payload) if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return
        kind = data.get("e")
        try:
            if kind == "markPriceUpdate":
                rate = data.get("r")
                with self._lock:
                    self._marks[str(data["s"]).upper()] = (
                        float(data["p"]), float(rate) if rate not in (None, "") else None,
                        int(time.monotonic() * 1000))
            elif kind == "kline" and data.get("k", {}).get("x"):
                k = data["k"]
                row: KlineRow = (int(k["t"]), float(k["o"]), float(k["h"]), float(k["l"]),
                                 float(k["c"]), float(k["v"]))
                with self._lock:
                    rows = self._klines.setdefault(str(data["s"]).upper(), {})
                    rows[row[0]] = row
                    for t in sorted(rows)[:-KEEP_KLINES]:
                        del rows[t]
        except (KeyError, TypeError, ValueError):
            log.warning("market stream: unreadable %s event", kind)


def stream_groups(symbols: Sequence[str], names_of: Callable[[str], list[str]],
                  limit: int = MAX_STREAMS_PER_CONNECTION) -> list[tuple[tuple[str, ...], list[str]]]:
    """Split the symbols' stream names into connections of at most ``limit`` streams, a symbol's
    streams always together: ``[(symbols, stream names), ...]`` in the symbols' order."""
    groups: list[tuple[tuple[str, ...], list[str]]] = []
    held: list[str] = []
    names: list[str] = []
    for symbol in symbols:
        own = names_of(symbol)
        if len(own) > limit:
            raise ValueError(f"{symbol} alone needs {len(own)} streams; a connection takes {limit}")
        if len(names) + len(own) > limit:
            groups.append((tuple(held), names))
            held, names = [], []
        held.append(symbol)
        names.extend(own)
    if held:
        groups.append((tuple(held), names))
    return groups


class MarketStreams:
    """Several ``MarketStream`` connections read as one: each reconnects on its own, and a
    symbol's data comes from the connection that carries it."""

    def __init__(self, connections: Sequence[tuple[tuple[str, ...], str]], *,
                 open_timeout_s: float = 5.0) -> None:
        """``connections``: ``[(symbols carried, combined stream URL), ...]``."""
        n = len(connections)
        self.readers = [
            MarketStream(url, open_timeout_s=open_timeout_s,
                         name=f"asterdex-stream-{i + 1}" if n > 1 else "asterdex-stream")
            for i, (_, url) in enumerate(connections)]
        self._by_symbol = {s: reader for reader, (symbols, _) in zip(self.readers, connections, strict=True)
                           for s in symbols}

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader._stop.set()  # every thread stops at once, then each is joined
        for reader in self.readers:
            reader.stop()

    @property
    def connected(self) -> bool:
        """Every connection is up."""
        return all(r.connected for r in self.readers)

    @property
    def problem(self) -> str:
        down = [(i, r) for i, r in enumerate(self.readers) if not r.connected]
        if not down:
            return ""
        if len(self.readers) == 1:
            return down[0][1].problem
        i, first = down[0]
        return (f"{len(down)} of {len(self.readers)} websocket connections down; "
                f"#{i + 1}: {first.problem}")

    @property
    def reconnects(self) -> int:
        return sum(r.reconnects for r in self.readers)

    def carries(self, symbol: str) -> bool:
        """The connection that carries ``symbol`` is up."""
        reader = self._by_symbol.get(symbol)
        return reader is not None and reader.connected

    def marks(self, max_age_ms: int) -> dict[str, tuple[float, float | None]]:
        out: dict[str, tuple[float, float | None]] = {}
        for reader in self.readers:
            out.update(reader.marks(max_age_ms))
        return out

    def closed_klines(self, symbol: str, from_open_ms: int) -> list[KlineRow]:
        reader = self._by_symbol.get(symbol)
        return reader.closed_klines(symbol, from_open_ms) if reader is not None else []
