"""The AsterDex user data stream: the account's fills and order changes the moment they happen.

Why it exists: polling ``userTrades`` books a venue-side stop fill only at the next tick and costs
weight 5 per symbol per tick; the venue pushes the same facts on the user data stream (V3 doc
lines 4722-4732, V1 3660-3670). This reader keeps that stream up and buffers what it says; the
venue adapter (``core.exchanges.asterdex``) drains it on every sync and keeps REST polling as the
fallback and the reconciliation. Promises:

- **The listenKey lives.** ``POST listenKey`` before each connection (the venue answers the
  account's active key, extended, or a new one), ``PUT`` every ``keepalive_s`` (30 minutes by
  default: a key lives 60 minutes from its last POST or PUT), ``DELETE`` at ``stop``. A PUT
  answered -1125 (the key is gone), a ``listenKeyExpired`` event, a refused or dropped connection:
  each ends the connection, and the next one starts with a new POST, after a back-off (1 s
  doubling to 60 s, reset by a connection that delivered an event or lived a minute).
- **Gaps are announced.** The venue does not replay what it sent while nobody listened, so every
  connection that opens bumps ``generation``: the adapter polls REST once after each, which
  covers the gap (and everything up to that poll) while the stream covers what follows.
- **Events, in the venue's order, once.** ``ORDER_TRADE_UPDATE`` with execution type ``TRADE``
  is a fill (trade id ``t``, client order id ``c``, last quantity ``l`` and price ``L``,
  commission ``n``, realized profit ``rp``, trade time ``T``); every ``ORDER_TRADE_UPDATE`` is the
  order's state (``X``, ``z``, ``ap``), NEW, CANCELED and EXPIRED included (V3 4932-5026).
  Payloads may arrive out of order (V3 4731): a drain returns them sorted by event time ``E``,
  each trade once, and an order's state only when it is further along (final, or more filled)
  than the last one returned. ``ACCOUNT_UPDATE`` (V3 4840-4931) names the symbols whose position
  changed: a change whose transaction time ``T`` no trade event on that symbol shares (within
  ``GRACE_S`` of its arrival) is reported, so the adapter asks REST about that symbol (should the
  venue stamp the two differently, this costs one REST read per fill, never a missed fill); a
  ``FUNDING_FEE`` reason asks for the funding income now.
- ``wake`` (if set) is called from the reader thread after every event the desk should act on,
  when a position change has waited ``GRACE_S`` for its trade, and whenever a connection opens
  or ends (the adapter polls REST then): the engine ticks at once instead of at its next
  interval.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from core.errors import ExchangeError, ExchangeRequestError
from core.exchanges.asterdex_client import AsterDexClient
from core.models import Fill, OrderResult, OrderSide, OrderStatus, OrderType

log = logging.getLogger(__name__)

KEEPALIVE_S = 30 * 60.0
MAX_BACKOFF_S = 60.0
STABLE_S = 60.0  # a connection that lived this long resets the back-off
GRACE_S = 2.0  # an ACCOUNT_UPDATE waits this long for the trade event that explains it
NO_SUCH_KEY = -1125
REMEMBER = 10_000  # trade ids and order states remembered against duplicates
LIQUIDATION_IDS = ("autoclose-", "adl_autoclose")


@dataclass
class StreamEvents:
    """What one drain found, oldest event first."""

    fills: list[Fill] = field(default_factory=list)
    orders: list[OrderResult] = field(default_factory=list)
    unexplained: set[str] = field(default_factory=set)  # symbols to ask REST about
    funding: bool = False  # a funding payment happened: read the income now


class UserStream:
    """A reconnecting reader of the account's user data stream (one daemon thread)."""

    def __init__(self, client: AsterDexClient, *, keepalive_s: float = KEEPALIVE_S,
                 open_timeout_s: float = 5.0, wake: Callable[[], None] | None = None) -> None:
        self.client = client
        self.keepalive_s = keepalive_s
        self.open_timeout_s = open_timeout_s
        self.wake = wake
        self.connected = False
        self.problem = "user stream connecting"
        self.generation = 0  # connections opened so far: each one follows a gap
        self.keys_made = 0  # successful listenKey POSTs
        self.keepalives = 0  # successful listenKey PUTs
        self._key: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: Any = None
        self._buffer: list[tuple[int, int, dict[str, Any]]] = []  # (E, arrival, event)
        self._arrivals = 0
        self._trades: OrderedDict[str, None] = OrderedDict()
        self._states: OrderedDict[str, tuple[bool, Decimal]] = OrderedDict()
        # transaction times of recent trades per symbol, and position changes waiting for theirs
        self._trade_times: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._pending: dict[tuple[str, int], float] = {}  # (symbol, T) -> monotonic arrival
        self._overdue_woken: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asterdex-user-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the reader, then close the listenKey (best effort: it lapses by itself anyway)."""
        self._stop.set()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(Exception):  # a broken socket may fail to close; fine
                sock.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._key is not None:
            try:
                self.client.close_listen_key()
            except ExchangeError as exc:
                log.warning("user stream: listenKey not closed: %s", exc)
            self._key = None

    @property
    def status(self) -> str:
        return "user-data stream" if self.connected else f"REST polling ({self.problem})"

    # ------------------------------------------------------------------ draining
    def drain(self) -> StreamEvents:
        """Everything buffered since the last drain, sorted by event time, duplicates dropped."""
        with self._lock:
            batch, self._buffer = self._buffer, []
            out = StreamEvents()
            for _, _, event in sorted(batch, key=lambda b: (b[0], b[1])):
                self._take(event, out)
            now = time.monotonic()
            for key, seen in list(self._pending.items()):
                if now - seen >= GRACE_S:
                    out.unexplained.add(key[0])
                    del self._pending[key]
                    self._overdue_woken.discard(key)
            return out

    def _wake_if_overdue(self) -> None:
        """Wake the desk once for each position change that waited its grace in vain."""
        now = time.monotonic()
        with self._lock:
            overdue = {k for k, seen in self._pending.items() if now - seen >= GRACE_S}
            fresh = overdue - self._overdue_woken
            self._overdue_woken = overdue
        if fresh and self.wake is not None:
            self.wake()

    def _take(self, event: dict[str, Any], out: StreamEvents) -> None:
        kind = event.get("e")
        try:
            if kind == "ORDER_TRADE_UPDATE":
                o = event["o"]
                if o.get("x") == "TRADE" and str(o.get("t", "0")) not in self._trades:
                    fill = _fill(o)
                    _remember(self._trades, fill.trade_id, None)
                    out.fills.append(fill)
                order = _order(o)
                if order is not None and self._advances(order):
                    out.orders.append(order)
            elif kind == "ACCOUNT_UPDATE" and event.get("a", {}).get("m") == "FUNDING_FEE":
                out.funding = True
        except (KeyError, TypeError, ValueError, InvalidOperation):
            log.warning("user stream: unreadable %s event", kind)

    def _advances(self, order: OrderResult) -> bool:
        """True (and remembered) when ``order`` is further along than its last state returned."""
        rank = (order.status.final, order.executed_qty)
        known = self._states.get(order.client_order_id)
        if known is not None and rank <= known:
            return False
        _remember(self._states, order.client_order_id, rank)
        return True

    # ------------------------------------------------------------------ receiving
    def _receive(self, message: str | bytes) -> bool:
        """Buffer one message; False when the key expired (the connection must end)."""
        try:
            event = json.loads(message)
        except ValueError:
            return True
        if not isinstance(event, dict):
            return True
        kind = event.get("e")
        if kind == "listenKeyExpired":
            self.problem = "listenKey expired; making a new one"
            log.warning("user stream: %s", self.problem)
            return False
        if kind not in ("ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"):
            return True
        try:
            when = int(event.get("E") or 0)
        except (TypeError, ValueError):
            when = 0
        with self._lock:
            self._arrivals += 1
            self._buffer.append((when, self._arrivals, event))
            self._explain(kind, event)
        if self.wake is not None:
            self.wake()
        return True

    def _explain(self, kind: str, event: dict[str, Any]) -> None:
        """Match position changes with trades by transaction time, whichever arrives first
        (the caller holds the lock)."""
        try:
            if kind == "ORDER_TRADE_UPDATE" and event["o"].get("x") == "TRADE":
                key = (str(event["o"]["s"]).upper(), int(event.get("T") or event["o"]["T"]))
                _remember(self._trade_times, key, None)
                self._pending.pop(key, None)
                self._overdue_woken.discard(key)
            elif kind == "ACCOUNT_UPDATE" and event["a"].get("m") != "FUNDING_FEE":
                when = int(event["T"])
                for row in event["a"].get("P") or []:
                    key = (str(row["s"]).upper(), when)
                    if key not in self._trade_times:
                        self._pending.setdefault(key, time.monotonic())
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("user stream: unreadable %s event", kind)

    # ------------------------------------------------------------------ the reader thread
    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            opened = time.monotonic()
            try:
                self._key = self.client.new_listen_key()
                self.keys_made += 1
                with connect(self.client.user_stream_url(self._key),
                             open_timeout=self.open_timeout_s) as sock:
                    self._socket = sock
                    with self._lock:
                        self.generation += 1
                    self.connected, self.problem = True, ""
                    if self.wake is not None:
                        self.wake()  # the adapter polls REST once for what the gap held
                    reason = self._listen(sock)
            except ExchangeError as exc:
                reason = f"listenKey: {exc}"[:200]
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:160]
            self.connected = False
            self._socket = None
            if self._stop.is_set():
                break
            if time.monotonic() - opened >= STABLE_S:
                backoff = 1.0
            self.problem = f"user stream down ({reason}); reconnecting in {backoff:.0f} s"
            log.warning("user stream: %s", self.problem)
            if self.wake is not None:
                self.wake()  # the adapter falls back to REST polling now
            self._stop.wait(backoff)
            backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _listen(self, sock: Any) -> str:
        """Read until the connection or the key ends; keep the key alive meanwhile."""
        due = time.monotonic() + self.keepalive_s
        while not self._stop.is_set():
            try:
                message = sock.recv(timeout=max(0.0, min(1.0, due - time.monotonic())))
            except TimeoutError:
                message = None
            if message is not None and not self._receive(message):
                return "listenKey expired"
            self._wake_if_overdue()
            if time.monotonic() >= due:
                try:
                    self.client.keepalive_listen_key()
                    self.keepalives += 1
                except ExchangeRequestError as exc:
                    if exc.code == NO_SUCH_KEY:
                        return "the listenKey no longer exists"
                    log.warning("user stream: keepalive refused: %s", exc)
                except ExchangeError as exc:  # the network: try again soon, the key lives an hour
                    log.warning("user stream: keepalive failed: %s", exc)
                    due = time.monotonic() + min(self.keepalive_s, MAX_BACKOFF_S)
                    continue
                due = time.monotonic() + self.keepalive_s
        return "stopped"


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > REMEMBER:
        store.popitem(last=False)


def _dec(raw: Any) -> Decimal:
    return Decimal(str(raw)) if raw not in (None, "") else Decimal(0)


def _fill(o: dict[str, Any]) -> Fill:
    cid = str(o.get("c", ""))
    return Fill(
        trade_id=str(o["t"]), client_order_id=cid, symbol=str(o["s"]).upper(),
        side=OrderSide(str(o["S"])), quantity=_dec(o["l"]), price=_dec(o["L"]),
        fee=abs(_dec(o.get("n"))), realized_pnl=_dec(o.get("rp")), ts_ms=int(o["T"]),
        liquidation=cid.startswith(LIQUIDATION_IDS) or o.get("o") == "LIQUIDATION",
    )


def _order(o: dict[str, Any]) -> OrderResult | None:
    """The order's state, or None for states the desk does not model (liquidation orders, the
    insurance fund's and ADL states): the fills of those are booked all the same."""
    try:
        kind = OrderType(str(o.get("ot") or o.get("o")))
        status = OrderStatus(str(o["X"]))
    except ValueError:
        return None
    stop = _dec(o.get("sp"))
    return OrderResult(
        client_order_id=str(o.get("c", "")), exchange_order_id=str(o.get("i", "")),
        symbol=str(o["s"]).upper(), side=OrderSide(str(o["S"])), type=kind, status=status,
        quantity=_dec(o.get("q")), executed_qty=_dec(o.get("z")), avg_price=_dec(o.get("ap")),
        stop_price=stop if stop > 0 else None,
        reduce_only=bool(o.get("R")) or bool(o.get("cp")),
    )
