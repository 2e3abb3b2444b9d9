"""The fake venue's websocket streams on 127.0.0.1: combined market streams and the user data stream.

Why: the live feed and live execution read streams first and fall back to REST; both paths need a
real websocket server to be tested, including its failures. Served:

- ``/stream?streams=btcusdt@markPrice@1s/btcusdt@kline_15m`` (and ``/ws/<one stream>``): on
  connect, the current mark and the newest *closed* kline of each subscription; then a
  ``markPriceUpdate`` whenever the test moves the price and a closed ``kline`` (``x`` true) for
  every bar the market clock passes. Messages are wrapped ``{"stream", "data"}`` on ``/stream``.
- ``/ws/<listenKey>``: ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE`` events as the book makes them
  (only while connected: like the real venue, events while nobody listens are not replayed);
  a key that is not the active one is refused (closed with 1008).

A connection listens to at most ``MAX_STREAMS`` (200, V3 document line 1650): one that asks
for more in its URL is closed at once (policy violation), a ``SUBSCRIBE`` past it is answered
with an error and subscribes nothing. ``stream_counts`` records the most streams each
connection ever carried.

Controls: ``drop_all()`` closes every connection (clients must reconnect), ``drop_carrying(name)``
only those carrying one stream, ``refuse = True``
rejects new connections (clients must fall back to REST). ``SUBSCRIBE`` frames are answered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

MAX_STREAMS = 200


@dataclass
class Subscriber:
    conn: ServerConnection
    streams: set[str]
    combined: bool
    listen_key: str | None = None
    index: int | None = None  # in StreamServer.stream_counts
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, stream: str, data: dict[str, Any]) -> None:
        payload = {"stream": stream, "data": data} if self.combined else data
        try:
            with self.lock:
                self.conn.send(json.dumps(payload))
        except (ConnectionClosed, OSError, RuntimeError):
            pass


class StreamServer:
    """Runs in its own thread; ``snapshot(stream)`` gives the greeting messages of one stream."""

    def __init__(self, snapshot: Callable[[str], list[dict[str, Any]]],
                 listen_key: Callable[[], str | None]) -> None:
        self._snapshot = snapshot
        self._listen_key = listen_key
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        # A new connection's greeting (computed from the venue's state, then sent) and a market
        # publish never interleave: otherwise a greeting computed before a price move could reach
        # the client after the move's event and leave it on the old price.
        self._market_order = threading.Lock()
        self.refuse = False
        self.connections = 0
        self.stream_counts: list[int] = []  # per accepted market connection, its most streams
        self.too_many = 0  # connections closed for asking more than MAX_STREAMS
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def close(self) -> None:
        self.drop_all()
        self._server.shutdown()

    def drop_all(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.conn.close()

    def drop_carrying(self, stream: str) -> int:
        """Close only the connections that carry ``stream``; returns how many."""
        with self._lock:
            hit = [sub for sub in self._subs if stream in sub.streams]
            self._subs = [sub for sub in self._subs if sub not in hit]
        for sub in hit:
            sub.conn.close()
        return len(hit)

    def _handle(self, conn: ServerConnection) -> None:
        if self.refuse:
            conn.close(1013, "try again later")
            return
        assert conn.request is not None
        split = urlsplit(conn.request.path)
        if split.path == "/stream":
            streams = set("/".join(parse_qs(split.query).get("streams", [""])).split("/")) - {""}
            sub = Subscriber(conn, streams, combined=True)
        elif split.path.startswith("/ws/"):
            name = split.path[len("/ws/"):]
            if "@" in name:  # a raw market stream
                sub = Subscriber(conn, {name}, combined=False)
            elif name and name == self._listen_key():
                sub = Subscriber(conn, set(), combined=False, listen_key=name)
            else:
                conn.close(1008, "invalid listenKey")
                return
        else:
            conn.close(1008, "unknown path")
            return
        if len(sub.streams) > MAX_STREAMS:
            self.too_many += 1
            conn.close(1008, f"at most {MAX_STREAMS} streams per connection")
            return
        self.connections += 1
        with self._lock:
            self._subs.append(sub)
            if sub.listen_key is None:
                sub.index = len(self.stream_counts)
                self.stream_counts.append(len(sub.streams))
        with self._market_order:
            for stream in sorted(sub.streams):
                for data in self._snapshot(stream):
                    sub.send(stream, data)
        try:
            for message in conn:
                self._control(sub, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if sub in self._subs:
                    self._subs.remove(sub)

    def _control(self, sub: Subscriber, message: str | bytes) -> None:
        try:
            req = json.loads(message)
        except ValueError:
            return
        method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
        if method == "SUBSCRIBE":
            if len(sub.streams | set(params)) > MAX_STREAMS:
                with sub.lock:
                    sub.conn.send(json.dumps({"code": 2, "msg": f"at most {MAX_STREAMS} streams",
                                              "id": rid}))
                return
            sub.streams |= set(params)
            with self._lock:
                if sub.index is not None:
                    self.stream_counts[sub.index] = max(self.stream_counts[sub.index], len(sub.streams))
            reply: Any = None
        elif method == "UNSUBSCRIBE":
            sub.streams -= set(params)
            reply = None
        elif method == "LIST_SUBSCRIPTIONS":
            reply = sorted(sub.streams)
        else:
            sub.send("", {"code": 2, "msg": "Invalid request", "id": rid})
            return
        with sub.lock:
            sub.conn.send(json.dumps({"result": reply, "id": rid}))

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Send ``data`` to every subscriber of ``stream`` (also ``@markPrice@1s`` for ``@markPrice``)."""
        with self._market_order:
            with self._lock:
                subs = list(self._subs)
            for sub in subs:
                for name in (stream, f"{stream}@1s") if stream.endswith("@markPrice") else (stream,):
                    if name in sub.streams:
                        sub.send(name, data)

    def user_listeners(self) -> int:
        """User-data connections registered (a client's handshake completes a moment before)."""
        with self._lock:
            return sum(1 for sub in self._subs if sub.listen_key is not None)

    def drop_user(self) -> int:
        """Close the user-data connections only; returns how many."""
        with self._lock:
            hit = [sub for sub in self._subs if sub.listen_key is not None]
            self._subs = [sub for sub in self._subs if sub not in hit]
        for sub in hit:
            sub.conn.close()
        return len(hit)

    def publish_user(self, event: dict[str, Any], *, key: str | None = None) -> None:
        """Send ``event`` to the listeners of ``key`` (default: the active key)."""
        key = key if key is not None else self._listen_key()
        if key is None:
            return
        with self._lock:
            subs = [s for s in self._subs if s.listen_key is not None and s.listen_key == key]
        for sub in subs:
            sub.send("", event)
