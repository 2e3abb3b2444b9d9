"""The live feed's websocket half against a loopback websocket server: marks and closed candles come
from the stream while it is up, REST covers the rest, and the feed says which one it uses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.sync.server import ServerConnection, serve

from core.feeds.asterdex import AsterdexFeed
from core.feeds.asterdex_ws import stream_groups
from core.models import INTERVAL_MS
from tests.conftest import make_settings
from tests.fake_venue import FakeVenue
from tests.live_support import make_client

M15 = INTERVAL_MS["15m"]


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    """Wait on evidence; the deadline is generous so a loaded machine only makes it slower."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no evidence within {deadline_s:.0f} s of {what}")
        time.sleep(0.02)


class StreamServer:
    """Sends whatever the test queues to every connected client; ``drop`` closes them."""

    def __init__(self) -> None:
        self.outbox: list[dict] = []
        self.connections: list[ServerConnection] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self.server = serve(self._handler, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/stream?streams=x"

    def _handler(self, conn: ServerConnection) -> None:
        with self._lock:
            self.connections.append(conn)
            self.paths.append(conn.request.path if conn.request else "")
        try:
            while True:
                with self._lock:
                    batch, self.outbox = self.outbox, []
                for message in batch:
                    conn.send(json.dumps(message))
                try:
                    conn.recv(timeout=0.01)  # raises once the connection is closed
                except TimeoutError:
                    continue
        except Exception:  # the client or the test closed the connection
            return

    def send(self, stream: str, data: dict) -> None:
        with self._lock:
            self.outbox.append({"stream": stream, "data": data})

    def drop(self) -> None:
        with self._lock:
            for conn in self.connections:
                conn.close()
            self.connections = []

    def close(self) -> None:
        self.drop()
        self.server.shutdown()


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    with FakeVenue(weight_limit=1_000_000) as v:
        yield v


@pytest.fixture
def stream() -> Iterator[StreamServer]:
    server = StreamServer()
    yield server
    server.close()


def test_stream_marks_and_candles_replace_polling_and_the_status_says_so(
        venue: FakeVenue, stream: StreamServer) -> None:
    settings = make_settings(asterdex_base_url=venue.url)
    feed = AsterdexFeed(make_client(settings), ("ETHUSDT",), "15m", history_bars=200,
                        clock_ms=lambda: venue.market.now_ms)
    start = feed.now_ms()
    assert feed.status.startswith("REST polling")
    feed.start_streams(stream.url)
    try:
        wait_for(lambda: feed.status == "websocket", "the stream to connect")
        stream.send("ethusdt@markPrice@1s", {"e": "markPriceUpdate", "s": "ETHUSDT",
                                             "p": "1234.5", "r": "0.0003", "E": 1})
        stream.send("ethusdt@kline_15m", {"e": "kline", "s": "ETHUSDT", "k": {
            "t": start, "T": start + M15 - 1, "o": "1", "h": "2", "l": "0.5", "c": "1.5",
            "v": "10", "x": True}})
        wait_for(lambda: feed.stream is not None and feed.stream.closed_klines("ETHUSDT", start) != [],
                 "the streamed candle")
        wait_for(lambda: feed.stream is not None and feed.stream.marks(10_000) != {}, "the mark")
        venue.advance_market(M15)
        polled = venue.count("klines")
        step = feed.step()
        assert [b.close for b in step.bars["ETHUSDT"]] == [1.5]  # the streamed candle, not REST's
        assert venue.count("klines") == polled
        assert step.prices["ETHUSDT"] == 1234.5 and step.funding_rates["ETHUSDT"] == 0.0003
        stream.drop()
        wait_for(lambda: feed.status.startswith("REST polling (websocket down"), "the fallback")
        venue.advance_market(M15)
        step = feed.step()  # the stream is down: the candle comes over REST
        assert [b.open_time_ms for b in step.bars["ETHUSDT"]] == [start + M15]
        assert venue.count("klines") > polled
        wait_for(lambda: feed.status == "websocket", "the reconnection")
        assert feed.stream is not None and feed.stream.reconnects >= 1
    finally:
        feed.close()


def test_stream_groups_keep_a_symbol_together_and_never_pass_the_limit() -> None:
    names = lambda s: [f"{s.lower()}@markPrice@1s", f"{s.lower()}@kline_15m"]  # noqa: E731
    symbols = [f"S{i}USDT" for i in range(101)]
    groups = stream_groups(symbols, names)
    assert [len(g[1]) for g in groups] == [200, 2]
    assert [s for g in groups for s in g[0]] == symbols
    assert groups[1] == (("S100USDT",), ["s100usdt@markPrice@1s", "s100usdt@kline_15m"])
    assert [len(g[1]) for g in stream_groups(symbols[:100], names)] == [200]
    assert [len(g[1]) for g in stream_groups(symbols[:7], names, limit=5)] == [4, 4, 4, 2]
    with pytest.raises(ValueError):
        stream_groups(["BTCUSDT"], names, limit=1)


def test_more_than_200_streams_are_split_over_connections_that_each_reconnect_on_their_own() -> None:
    symbols = tuple(f"X{i:03d}USDT" for i in range(130))  # 260 streams: mark and 15m kline each
    with FakeVenue(symbols=symbols, candles_from={s: "BTCUSDT" for s in symbols},
                   weight_limit=1_000_000) as venue:
        assert venue.streams is not None
        settings = make_settings(asterdex_base_url=venue.url, asterdex_ws_url=venue.ws_url)
        feed = AsterdexFeed(make_client(settings), symbols, "15m", history_bars=100,
                            clock_ms=lambda: venue.market.now_ms)
        feed.now_ms()  # every symbol's history over REST first
        feed.start_streams()
        try:
            wait_for(lambda: feed.status == "websocket", "every connection to open")
            # the client's handshake completes a moment before the venue registers the connection
            wait_for(lambda: len(venue.streams.stream_counts) == 2, "the venue to register both")
            assert venue.streams.too_many == 0
            assert sorted(venue.streams.stream_counts) == [60, 200]
            for i, symbol in enumerate(symbols):
                venue.set_price(symbol, f"{100 + i}.5")
            stream = feed.stream
            assert stream is not None
            want = {s: 100 + i + 0.5 for i, s in enumerate(symbols)}
            wait_for(lambda: {s: p for s, (p, _) in stream.marks(60_000).items()} == want,
                     "every symbol's streamed mark")
            venue.advance_market(M15)
            target = venue.market.now_ms
            wait_for(lambda: all(stream.closed_klines(s, target - M15) for s in symbols),
                     "every symbol's streamed candle")
            polled = venue.count("klines")
            step = feed.step()
            assert {s: [b.open_time_ms for b in bars] for s, bars in step.bars.items()} == {
                s: [target - M15] for s in symbols}
            assert venue.count("klines") == polled  # every candle came over the streams
            first, second = stream.readers
            assert venue.streams.drop_carrying(f"{symbols[-1].lower()}@markPrice@1s") == 1
            wait_for(lambda: not second.connected, "the second connection to notice its drop")
            assert first.connected and first.reconnects == 0
            assert feed.status.startswith("REST polling (1 of 2 websocket connections down")
            assert stream.carries(symbols[0]) and not stream.carries(symbols[-1])
            wait_for(lambda: feed.status == "websocket", "the second connection's reconnection")
            wait_for(lambda: len(venue.streams.stream_counts) == 3, "the venue to register it")
            assert second.reconnects >= 1 and first.reconnects == 0
            assert max(venue.streams.stream_counts) == 200 and len(venue.streams.stream_counts) == 3
        finally:
            feed.close()
