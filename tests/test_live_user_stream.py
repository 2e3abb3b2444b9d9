"""The user data stream against the fake venue: listenKey kept alive and renewed, fills, cancels
and expiries pushed into the venue adapter's sync, REST polled only as the fallback and the
reconciliation, and every trade reported once whatever the stream does (drops, expiry,
duplicates, events out of order, an event lost)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from core.exchanges.asterdex import AsterdexExchange
from core.models import ExchangeEvents, MarketStep, OrderRequest, OrderSide, OrderStatus, OrderType
from tests.fake_venue import FakeVenue
from tests.live_support import API_KEY, API_SECRET, SIGNER, USER, live_settings, make_client
from tests.live_support import SIGNER_KEY as V3_KEY


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    """Wait on evidence; the deadline is generous so a loaded machine only makes it slower."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no evidence within {deadline_s:.0f} s of {what}")
        time.sleep(0.02)


class Rig:
    """A fake venue, the adapter on it with its user stream, and what every sync reported."""

    def __init__(self, *, auth: str = "v1", keepalive_s: float = 1800.0,
                 reconcile_s: float = 3600.0) -> None:
        self.venue = FakeVenue(api_key=API_KEY, api_secret=API_SECRET, v3_user=USER,
                               v3_signer=SIGNER, weight_limit=1_000_000).start()
        self.venue.set_price("BTCUSDT", "60000")
        creds = ({"asterdex_auth": "v3", "asterdex_user": USER, "asterdex_signer": SIGNER,
                  "asterdex_private_key": V3_KEY} if auth == "v3" else {})
        settings = live_settings(self.venue, asterdex_ws_url=self.venue.ws_url, **creds)
        self.client = make_client(settings)
        self.exchange = AsterdexExchange(self.client, ("BTCUSDT", "ETHUSDT"),
                                         since_ms=self.venue.now_ms() - 1)
        self.woken = threading.Event()
        self.exchange.start_user_stream(keepalive_s=keepalive_s, reconcile_s=reconcile_s,
                                        wake=self.woken.set)
        self.reported: list[ExchangeEvents] = []
        assert self.exchange.user_stream is not None
        self.stream = self.exchange.user_stream
        self.listening()
        self.sync()  # the poll after the connection opened

    def listening(self) -> None:
        """The stream is up at both ends: the client connected and the venue counts its listener
        (the client's handshake completes a moment before the venue registers it)."""
        streams = self.venue.streams
        assert streams is not None
        wait_for(lambda: self.stream.connected and streams.user_listeners() == 1,
                 "the user stream to connect")

    def sync(self) -> ExchangeEvents:
        events = self.exchange.sync(MarketStep(now_ms=self.venue.now_ms(), bars={}, prices={},
                                               funding_rates={}))
        self.reported.append(events)
        return events

    def trade_ids(self) -> list[str]:
        return [f.trade_id for e in self.reported for f in e.fills]

    def venue_trades(self) -> set[str]:
        with self.venue.lock:
            return {str(t["id"]) for t in self.venue.book.trades}

    def sync_until(self, condition: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            self.sync()
            return condition()
        wait_for(step, what)

    def buy_with_stop(self, cid: str, qty: str = "0.01") -> None:
        """A market entry through the adapter, then a resting reduce-only stop under it."""
        self.exchange.place_order(OrderRequest(f"{cid}-e", "BTCUSDT", OrderSide.BUY,
                                               OrderType.MARKET, Decimal(qty)))
        self.exchange.place_order(OrderRequest(f"{cid}-s", "BTCUSDT", OrderSide.SELL,
                                               OrderType.STOP_MARKET, Decimal(qty),
                                               stop_price=Decimal("59000"), reduce_only=True))

    def close(self) -> None:
        self.exchange.close()
        self.venue.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.close()


def test_a_stop_fill_arrives_on_the_stream_and_is_reported_without_polling(rig: Rig) -> None:
    rig.buy_with_stop("a1")
    entry_trades = set(rig.venue_trades())
    rig.sync()  # the entry's own stream copy: already answered by place_order, not reported
    assert not set(rig.trade_ids()) & entry_trades
    polls = rig.venue.count("userTrades")
    rig.woken.clear()
    rig.venue.set_price("BTCUSDT", "58000")  # the stop triggers at the venue
    wait_for(rig.woken.is_set, "the stream to wake the desk")
    rig.sync_until(lambda: len(rig.trade_ids()) == 1, "the stop's fill")
    (fill,) = [f for e in rig.reported for f in e.fills]
    assert (fill.client_order_id, fill.side, fill.price, fill.quantity) == (
        "a1-s", OrderSide.SELL, Decimal("58000"), Decimal("0.01"))
    assert fill.fee == Decimal("0.232") and fill.realized_pnl == Decimal("-20")
    states = [(u.order.client_order_id, u.order.status) for e in rig.reported for u in e.order_updates]
    assert ("a1-s", OrderStatus.FILLED) in states
    assert rig.venue.count("userTrades") == polls  # the stream alone: no REST poll
    assert set(rig.trade_ids()) | entry_trades == rig.venue_trades()


def test_cancels_and_expiries_come_from_the_stream(rig: Rig) -> None:
    rig.buy_with_stop("b1")
    rig.sync()
    rig.client.cancel_order("BTCUSDT", "b1-s")  # cancelled by someone else: the desk hears it
    with rig.venue.lock:
        rig.venue.book.fill_ratio = Decimal(0)  # no liquidity: the next market order expires
    rig.client.place_order(OrderRequest("b2-e", "BTCUSDT", OrderSide.BUY, OrderType.MARKET,
                                        Decimal("0.01")))

    def states() -> dict[str, OrderStatus]:
        return {u.order.client_order_id: u.order.status for e in rig.reported for u in e.order_updates}
    rig.sync_until(lambda: {"b1-s", "b2-e"} <= set(states()), "the cancel and the expiry")
    assert states()["b1-s"] is OrderStatus.CANCELED and states()["b2-e"] is OrderStatus.EXPIRED


@pytest.mark.parametrize("auth", ["v1", "v3"])
def test_the_listen_key_is_kept_alive_then_renewed_when_it_expires(auth: str) -> None:
    rig = Rig(auth=auth, keepalive_s=0.1)
    try:
        wait_for(lambda: rig.stream.keepalives >= 3, "three keepalives")
        assert rig.venue.count("PUT listenKey") >= 3 and rig.stream.keys_made == 1
        first = rig.venue.listen_key
        rig.venue.expire_listen_key()
        wait_for(lambda: rig.stream.generation == 2, "a new key")
        rig.listening()
        assert rig.venue.listen_key not in (None, first) and rig.stream.keys_made == 2
        polls = rig.venue.count("userTrades")
        rig.sync()  # the poll after the new connection covers what the gap may hold
        assert rig.venue.count("userTrades") > polls
        rig.buy_with_stop("c1")
        rig.venue.set_price("BTCUSDT", "58000")
        rig.sync_until(lambda: [f.client_order_id for e in rig.reported for f in e.fills] == ["c1-s"],
                       "the stop's fill on the new key")
    finally:
        rig.close()
    assert rig.venue.listen_key is None  # closed at stop (DELETE)


def test_a_dropped_stream_falls_back_to_polling_and_misses_nothing(rig: Rig) -> None:
    rig.buy_with_stop("d1")
    rig.sync()
    rig.venue.streams.refuse = True  # type: ignore[union-attr]
    rig.venue.drop_user_stream()
    wait_for(lambda: not rig.stream.connected, "the drop to be noticed")
    assert rig.exchange.fills_status.startswith("REST polling (user stream down")
    rig.venue.set_price("BTCUSDT", "58000")  # filled while nobody listens: never pushed
    polls = rig.venue.count("userTrades")
    rig.sync()
    assert rig.venue.count("userTrades") > polls
    assert [f.client_order_id for e in rig.reported for f in e.fills] == ["d1-s"]
    rig.venue.streams.refuse = False  # type: ignore[union-attr]
    rig.listening()
    assert rig.exchange.fills_status == "user-data stream"
    rig.sync()  # the poll after the reconnection finds the fill again: not reported twice
    assert len(rig.trade_ids()) == len(set(rig.trade_ids())) == 1


def test_duplicated_and_reordered_events_are_reported_once_in_order(rig: Rig) -> None:
    with rig.venue.lock:
        rig.venue.book.fill_parts = 3  # every market order fills in three trades
    rig.venue.user_duplicate = 10  # each of them and the account update sent twice
    rig.client.place_order(OrderRequest("e1-e", "BTCUSDT", OrderSide.BUY, OrderType.MARKET,
                                        Decimal("0.03")))  # not through the adapter: unseen
    rig.sync_until(lambda: len(rig.trade_ids()) == 3, "the entry's three fills")
    rig.venue.user_reverse = 1  # three trades and the account update, sent newest first
    rig.client.place_order(OrderRequest("e2-x", "BTCUSDT", OrderSide.SELL, OrderType.MARKET,
                                        Decimal("0.03")))
    rig.sync_until(lambda: len(rig.trade_ids()) == 6, "the exit's three fills")
    time.sleep(0.1)  # a duplicate still in flight would land now
    rig.sync()
    assert len(rig.trade_ids()) == len(set(rig.trade_ids())) == 6
    assert set(rig.trade_ids()) == rig.venue_trades()
    states = [u.order for e in rig.reported for u in e.order_updates if u.order.client_order_id == "e2-x"]
    assert states and states[-1].status is OrderStatus.FILLED
    assert states[-1].executed_qty == Decimal("0.03")
    assert all(o.status is OrderStatus.FILLED for o in states)  # the stale partial states dropped
    assert sum((f.quantity for e in rig.reported for f in e.fills if f.client_order_id == "e2-x"),
               Decimal(0)) == Decimal("0.03")


def test_a_position_change_no_trade_event_explains_is_asked_of_rest(rig: Rig) -> None:
    rig.buy_with_stop("f1")
    rig.sync()
    rig.venue.user_lose = 1  # the stop's trade event is lost; its ACCOUNT_UPDATE arrives
    rig.venue.set_price("BTCUSDT", "58000")
    polls = rig.venue.count("userTrades")
    rig.sync_until(lambda: [f.client_order_id for e in rig.reported for f in e.fills] == ["f1-s"],
                   "the lost fill, found over REST")
    assert rig.venue.count("userTrades") > polls


def test_reconciliation_polls_rest_on_its_interval_and_books_nothing_twice() -> None:
    rig = Rig(reconcile_s=0.0)  # every sync is also a REST poll
    try:
        rig.buy_with_stop("g1")
        rig.venue.set_price("BTCUSDT", "58000")
        for _ in range(5):
            rig.sync()
            time.sleep(0.05)
        rig.sync_until(lambda: "g1-s" in [f.client_order_id for e in rig.reported for f in e.fills],
                       "the stop's fill")
        assert len(rig.trade_ids()) == len(set(rig.trade_ids())) == 1
    finally:
        rig.close()
