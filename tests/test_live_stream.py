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
