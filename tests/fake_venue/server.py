"""The loopback fake AsterDex venue: a real HTTP server on 127.0.0.1 speaking /fapi/v1..v4 and v3.

Why: the client and the live execution path are only trustworthy if tested over real sockets against
a venue that checks what the real one checks: V1 HMAC signatures and V3 EIP-712 signatures over the
raw bytes, timestamps within recvWindow (-1021), request weight per minute
(``X-MBX-USED-WEIGHT-1M``; 429 with Retry-After past the limit, then 418 bans when ignored), and a
small matching engine (``book.Book``). Tests drive it through Python:

    with FakeVenue(api_key=K, api_secret=S) as venue:
        venue.set_price("BTCUSDT", Decimal("60000"))
        venue.inject("POST order", "timeout", delay_s=1.0, execute=True)
        ...
        assert len(venue.book.orders) == 1

Faults (``inject``; each hits the next ``count`` matching requests): ``429``/``418`` (with
Retry-After), ``500``/``503`` and ``timeout`` (answer after ``delay_s``; ``execute`` says whether
the request was carried out first), and any venue ``code`` (e.g. -1021, -2019) answered with 400
without executing. ``ws_url`` serves the market and user-data websocket streams
(``streams.StreamServer``, at most 200 streams per connection): price moves, closed candles and
the book's order/account events are pushed as they happen. The user data stream follows the
documents: a listenKey lives 60 minutes (``listen_key_ttl_ms``) from its POST or last PUT, then
its listeners get ``listenKeyExpired`` and nothing more; ``expire_listen_key()`` lapses it now,
``drop_user_stream()`` closes the user connections, ``user_duplicate`` sends the next events
twice, ``user_reverse`` sends the next batches newest first, ``user_lose`` loses the next order
events. ``candles_from`` lets symbols without bundled files serve another symbol's candles. No
request ever leaves the machine.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from core.exchanges.symbols import default_filters
from tests.fake_venue.auth import Keys, check_v1, check_v3
from tests.fake_venue.book import Book, VenueError
from tests.fake_venue.market import INTERVAL_MS, Market
from tests.fake_venue.routes import PUBLIC, REMOVED, ROUTES, Route
from tests.fake_venue.streams import StreamServer

DEFAULT_MARKET_MS = 1_746_835_200_000  # 2025-05-10 00:00 UTC, inside the bundled 1m data


@dataclass
class Fault:
    route: str  # "POST order", "order" (any method) or "*"
    kind: str  # "429", "418", "500", "503", "timeout", "code"
    count: int = 1
    retry_after: int | None = 1
    delay_s: float = 0.0
    execute: bool = False
    code: int = 0
    msg: str = ""

    def matches(self, method: str, name: str) -> bool:
        return self.route in ("*", name, f"{method} {name}")


class FakeVenue:
    """Start with ``with FakeVenue(...) as venue`` (or ``start()``/``close()``); ``url`` is the base."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        v3_user: str | None = None,
        v3_signer: str | None = None,
        chain_id: int = 1666,
        symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        wallet: Decimal = Decimal(10_000),
        weight_limit: int = 2400,
        ban_s: int = 120,
        market_ms: int = DEFAULT_MARKET_MS,
        meter_clock: Callable[[], float] = time.time,
        testnet: bool = False,
        candles_from: dict[str, str] | None = None,
        listen_key_ttl_ms: int = 3_600_000,
    ) -> None:
        # the testnet documents /fapi/v3 only; ``removed`` takes more paths away in a test
        self.testnet = testnet
        self.removed: set[tuple[str, str, str]] = set()
        self.keys = Keys(api_key, api_secret, v3_user, v3_signer, chain_id)
        self.book = Book(default_filters(symbols), wallet=wallet)
        self.market = Market(tuple(symbols), market_ms, borrow=dict(candles_from or {}))
        self.weight_limit = weight_limit
        self.ban_s = ban_s
        self.meter_clock = meter_clock  # seconds; weight windows and bans (frozen in tests)
        self.clock_skew_ms = 0
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, route, status)
        # the user data stream (V3 doc 4723-4733): one key per account, valid ``listen_key_ttl_ms``
        # (60 minutes) after its creation or its last keepalive
        self.listen_key: str | None = None
        self.listen_key_ttl_ms = listen_key_ttl_ms
        self.listen_key_expires_ms = 0
        self.listen_keys_made = 0
        self.user_duplicate = 0  # the next N user events are sent twice
        self.user_reverse = 0  # the next N batches of user events are each sent newest first
        self.user_lose = 0  # the next N ORDER_TRADE_UPDATE events are never sent
        self.countdowns: dict[str, int] = {}  # symbol -> deadline (server ms)
        self.user_events: list[dict[str, Any]] = []  # every user-data event the book made
        self._window = -1
        self._weight = 0
        self._orders_in_window = 0
        self._warned_until = 0.0
        self._banned_until = 0.0
        self._server: ThreadingHTTPServer | None = None
        self.streams: StreamServer | None = None
        self._thread: threading.Thread | None = None
        for sym in symbols:
            price = self.market.last_close(sym)
            if price is not None:
                self.book.marks[sym] = price

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeVenue:
        venue = self

        class Handler(_Handler):
            pass

        Handler.venue = venue
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.streams = StreamServer(self._stream_snapshot, self._live_listen_key)
        return self

    def close(self) -> None:
        if self.streams:
            self.streams.close()
            self.streams = None
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeVenue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server, "venue not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ws_url(self) -> str:
        """Base of the websocket streams (``ASTERDEX_WS_URL``)."""
        assert self.streams, "venue not started"
        return self.streams.url

    # ------------------------------------------------------------------ test controls
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.clock_skew_ms

    def inject(self, route: str, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(route, kind, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def set_price(self, symbol: str, price: Decimal | str) -> list[dict[str, Any]]:
        """Move the mark/last price; resting stops and limits trigger. Returns triggered orders."""
        with self.lock:
            fired = [o.to_json() for o in self.book.set_mark(symbol, Decimal(str(price)), self.now_ms())]
            mark = self._mark_event(symbol)
        self._flush()
        self._publish(f"{symbol.lower()}@markPrice", mark)
        return fired

    def advance_market(self, ms: int) -> None:
        """Move the market clock (new candles appear); marks follow the candles' closes."""
        events: list[tuple[str, dict[str, Any]]] = []
        with self.lock:
            before = self.market.now_ms
            self.market.now_ms += ms
            for sym in self.market.symbols:
                price = self.market.last_close(sym)
                if price is not None:
                    self.book.set_mark(sym, price, self.now_ms())
                    events.append((f"{sym.lower()}@markPrice", self._mark_event(sym)))
                for interval in INTERVAL_MS:
                    for row in self._closed_between(sym, interval, before, self.market.now_ms):
                        events.append((f"{sym.lower()}@kline_{interval}",
                                       self._kline_event(sym, interval, row)))
        self._flush()
        for stream, data in events:
            self._publish(stream, data)

    def pay_funding(self, symbol: str, rate: Decimal | str) -> Decimal:
        with self.lock:
            paid = self.book.pay_funding(symbol, Decimal(str(rate)), self.now_ms())
        self._flush()
        return paid

    def run_countdowns(self, at_ms: int | None = None) -> list[str]:
        """Fire every dead-man switch due at ``at_ms`` (default now); returns the symbols."""
        with self.lock:
            fired = self._run_countdowns(self.now_ms() if at_ms is None else at_ms)
        self._flush()
        return fired

    # ------------------------------------------------------------------ the user data stream
    def listen_key_start(self) -> str:
        """POST listenKey: extend the active key, or make a new one."""
        with self.lock:
            self._lapse_listen_key()
            if self.listen_key is None:
                self.listen_keys_made += 1
                self.listen_key = f"fakeListenKey{self.listen_keys_made}x{self.now_ms()}"
            self.listen_key_expires_ms = self.now_ms() + self.listen_key_ttl_ms
            return self.listen_key

    def listen_key_extend(self) -> bool:
        """PUT listenKey: False when there is no active key."""
        with self.lock:
            self._lapse_listen_key()
            if self.listen_key is None:
                return False
            self.listen_key_expires_ms = self.now_ms() + self.listen_key_ttl_ms
            return True

    def listen_key_drop(self) -> None:
        with self.lock:
            self.listen_key = None

    def expire_listen_key(self) -> None:
        """The key lapses now: its listeners get ``listenKeyExpired`` and nothing after it."""
        with self.lock:
            self.listen_key_expires_ms = 0
            self._lapse_listen_key()

    def _lapse_listen_key(self) -> None:
        if self.listen_key is not None and self.now_ms() >= self.listen_key_expires_ms:
            key, self.listen_key = self.listen_key, None
            if self.streams:
                self.streams.publish_user({"e": "listenKeyExpired", "E": self.now_ms()}, key=key)

    def _live_listen_key(self) -> str | None:
        with self.lock:
            self._lapse_listen_key()
            return self.listen_key

    def drop_user_stream(self) -> int:
        """Close every user-data connection (market streams stay); returns how many."""
        return self.streams.drop_user() if self.streams else 0

    def count(self, route: str) -> int:
        """How many requests reached ``route`` ("POST order" or "order")."""
        return sum(1 for m, r, _ in self.requests if route in (r, f"{m} {r}"))

    def placed_orders(self) -> int:
        """Orders the venue accepted (duplicates and rejections excluded)."""
        return len(self.book.orders)

    # ------------------------------------------------------------------ streams
    def _flush(self) -> None:
        """Send the book's user-data events (outside the lock); dropped when nobody listens."""
        with self.lock:
            self._lapse_listen_key()
            events, self.book.outbox = self.book.outbox, []
            self.user_events.extend(events)
            sent: list[dict[str, Any]] = []
            for event in events:
                if self.user_lose > 0 and event["e"] == "ORDER_TRADE_UPDATE":
                    self.user_lose -= 1
                    continue
                sent.append(event)
                if self.user_duplicate > 0:
                    self.user_duplicate -= 1
                    sent.append(event)
            if sent and self.user_reverse > 0:
                self.user_reverse -= 1
                sent.reverse()
        if self.streams:
            for event in sent:
                self.streams.publish_user(event)

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        if self.streams:
            self.streams.publish(stream, data)

    def _mark_event(self, symbol: str) -> dict[str, Any]:
        return {"e": "markPriceUpdate", "E": self.now_ms(), "s": symbol,
                "p": str(self.book.marks.get(symbol, "0")), "i": str(self.book.marks.get(symbol, "0")),
                "P": str(self.book.marks.get(symbol, "0")), "r": str(self.market.funding_rate),
                "T": self.market.next_funding_ms()}

    def _closed_between(self, symbol: str, interval: str, after: int, upto: int) -> list[list[Any]]:
        """Klines whose close falls in (after, upto]."""
        step = INTERVAL_MS[interval]
        try:
            rows = self.market.klines(symbol, interval, after - step + 1, upto - step, 1500)
        except KeyError:
            return []
        return [r for r in rows if after < r[0] + step <= upto]

    def _kline_event(self, symbol: str, interval: str, row: list[Any]) -> dict[str, Any]:
        return {"e": "kline", "E": self.now_ms(), "s": symbol, "k": {
            "t": row[0], "T": row[6], "s": symbol, "i": interval, "f": 0, "L": 0, "o": row[1],
            "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": 0, "x": True, "q": row[7],
            "V": "0", "Q": "0", "B": "0"}}

    def _stream_snapshot(self, stream: str) -> list[dict[str, Any]]:
        name, _, kind = stream.partition("@")
        symbol = name.upper()
        with self.lock:
            if symbol not in self.book.filters:
                return []
            if kind.startswith("markPrice"):
                return [self._mark_event(symbol)]
            if kind.startswith("kline_") and kind[6:] in INTERVAL_MS:
                interval = kind[6:]
                now = self.market.now_ms
                rows = self._closed_between(symbol, interval, now - INTERVAL_MS[interval], now)
                return [self._kline_event(symbol, interval, r) for r in rows]
        return []

    # ------------------------------------------------------------------ request handling
    def _run_countdowns(self, now: int) -> list[str]:
        fired = [s for s, deadline in self.countdowns.items() if deadline <= now]
        for sym in fired:
            del self.countdowns[sym]
            for o in self.book.open_orders(sym):
                self.book.cancel(o, now)
        return fired

    def _take_fault(self, method: str, name: str) -> Fault | None:
        for fault in self.faults:
            if fault.count > 0 and fault.matches(method, name):
                fault.count -= 1
                return fault
        return None

    def _meter(self, weight: int, is_order: bool) -> tuple[int, dict[str, Any]] | None:
        """Count weight; answer 429/418 like the venue when limits are broken."""
        now_s = self.meter_clock()
        window = int(now_s // 60)
        if window != self._window:
            self._window, self._weight, self._orders_in_window = window, 0, 0
        if now_s < self._banned_until:
            return 418, {"code": -1003, "msg": "IP banned.", "_retry": math.ceil(self._banned_until - now_s)}
        if now_s < self._warned_until:
            self._banned_until = now_s + self.ban_s
            return 418, {"code": -1003, "msg": "IP banned after ignoring 429.", "_retry": self.ban_s}
        self._weight += weight
        if is_order:
            self._orders_in_window += 1
        if self._weight > self.weight_limit:
            retry = math.ceil((window + 1) * 60 - now_s)
            self._warned_until = now_s + retry
            return 429, {"code": -1003, "msg": "Too many requests; please use the websocket.", "_retry": retry}
        return None

    def handle(self, method: str, path: str, query: str, body: str,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str], float]:
        """One request -> (status, JSON payload, extra headers, delay before answering)."""
        parts = path.split("/", 3)
        version, name = (parts[2], parts[3]) if len(parts) == 4 and parts[1] == "fapi" else ("", "")
        route = ROUTES.get((method, name))
        if (version, method, name) in REMOVED or (self.testnet and version != "v3") or (
                (version, method, name) in self.removed):
            route = None  # the documents list no such path here
        with self.lock:
            self._run_countdowns(self.now_ms())
            self._lapse_listen_key()
            if route is None:
                self.requests.append((method, name or path, 404))
                return 404, {"code": -1000, "msg": f"Unknown route {method} {path}"}, {}, 0.0
            params = dict(parse_qsl(query, keep_blank_values=True))
            params.update(dict(parse_qsl(body, keep_blank_values=True)))
            status, payload, delay = self._dispatch(method, name, version, route, params, query, body, headers)
            self.requests.append((method, name, status))
            extra = {"X-MBX-USED-WEIGHT-1M": str(self._weight)}
            if route.order:
                extra["X-MBX-ORDER-COUNT-1M"] = str(self._orders_in_window)
            if isinstance(payload, dict) and "_retry" in payload:
                extra["Retry-After"] = str(payload.pop("_retry"))
        self._flush()
        return status, payload, extra, delay

    def _dispatch(self, method: str, name: str, version: str, route: Route, params: dict[str, str],
                  query: str, body: str, headers: dict[str, str]) -> tuple[int, Any, float]:
        limited = self._meter(route.weight(params), route.order)
        if limited:
            return limited[0], limited[1], 0.0
        fault = self._take_fault(method, name)
        if fault and fault.kind in ("429", "418"):
            if fault.kind == "418":
                self._banned_until = self.meter_clock() + (fault.retry_after or self.ban_s)
            payload: dict[str, Any] = {"code": -1003, "msg": f"Injected {fault.kind}."}
            if fault.retry_after is not None:
                payload["_retry"] = fault.retry_after
            return int(fault.kind), payload, 0.0
        if fault and fault.kind == "code":
            return 400, {"code": fault.code, "msg": fault.msg or f"Injected error {fault.code}."}, 0.0
        if fault and not fault.execute and fault.kind in ("500", "503", "timeout"):
            status = 500 if fault.kind == "500" else 503
            return status, {"code": -1007, "msg": "Timeout waiting for response from backend server."}, fault.delay_s
        try:
            self._authenticate(route, version, method, query, body, headers, params)
            result = route.handler(self, params)
            status, payload = 200, result
        except VenueError as exc:
            if route.order:
                self.book.rejected_orders += 1
            status, payload = exc.status, {"code": exc.code, "msg": exc.msg}
        if fault:  # executed, but the answer is lost or delayed
            code = 500 if fault.kind == "500" else 503
            return code, {"code": -1007, "msg": "Timeout waiting for response from backend server."}, fault.delay_s
        return status, payload, 0.0

    def _authenticate(self, route: Route, version: str, method: str, query: str, body: str,
                      headers: dict[str, str], params: dict[str, str]) -> None:
        if route.security == PUBLIC:
            return
        # ccxt reads /fapi/v4/account with the V3 signature: a V3-signed request is checked as one
        if version == "v3" or ("signer" in params and "x-mbx-apikey" not in headers):
            check_v3(self.keys, body if method != "GET" and body else query, self.now_ms())
            return
        check_v1(self.keys, headers.get("x-mbx-apikey"), query, body, self.now_ms(),
                 signed=route.security == "SIGNED")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms delayed ACK
    venue: FakeVenue

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra, delay = self.venue.handle(method, split.path, split.query, body, headers)
        if delay:
            time.sleep(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


@contextmanager
def running_venue(**kwargs: Any) -> Iterator[FakeVenue]:
    venue = FakeVenue(**kwargs).start()
    try:
        yield venue
    finally:
        venue.close()
