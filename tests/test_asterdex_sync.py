"""The AsterDex adapter's ``sync``: every venue trade and funding payment reaches the desk once,
even when a request fails part way through a sync or the desk's own trades fill whole pages.
The venue is the loopback fake (tests/fake_venue)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from core.errors import ExchangeError
from core.exchanges.asterdex import USER_TRADES_PAGE, AsterdexExchange
from core.models import MarketStep, OrderRequest, OrderSide, OrderType
from tests.fake_venue import FakeVenue
from tests.live_support import API_KEY, API_SECRET, live_settings, make_client

BTC = "BTCUSDT"


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    with FakeVenue(api_key=API_KEY, api_secret=API_SECRET, weight_limit=10**9) as v:
        v.set_price(BTC, Decimal("60000"))
        yield v


def adapter(venue: FakeVenue, **kwargs: object) -> AsterdexExchange:
    return AsterdexExchange(make_client(live_settings(venue)), (BTC,),
                            since_ms=venue.now_ms() - 1, **kwargs)  # type: ignore[arg-type]


def step(venue: FakeVenue) -> MarketStep:
    return MarketStep(now_ms=venue.now_ms(), bars={}, prices={}, funding_rates={})


def market(ex: AsterdexExchange, cid: str, side: OrderSide, qty: str) -> None:
    ex.place_order(OrderRequest(cid, BTC, side, OrderType.MARKET, Decimal(qty)))


def test_a_sync_that_fails_part_way_reports_everything_next_time(venue: FakeVenue) -> None:
    ex = adapter(venue, deadman_seconds=60)
    market(ex, "entry", OrderSide.BUY, "0.010")
    ex.place_order(OrderRequest("stop", BTC, OrderSide.SELL, OrderType.STOP_MARKET, Decimal("0.005"),
                                stop_price=Decimal("59000"), reduce_only=True))
    ex.sync(step(venue))
    venue.pay_funding(BTC, "0.001")
    venue.set_price(BTC, Decimal("58000"))  # the venue fills the stop
    ex._funding_polled = None  # funding is due this sync
    venue.inject("GET income", "503")  # the funding request fails after the trades were read
    with pytest.raises(ExchangeError):
        ex.sync(step(venue))
    venue.inject("GET positionRisk", "503")  # the dead-man refresh failing never loses events
    events = ex.sync(step(venue))
    assert [f.client_order_id for f in events.fills] == ["stop"]
    assert [p.amount for p in events.funding] == [Decimal("-0.6")]  # 0.010 × 60,000 × 0.001
    assert not ex.sync(step(venue))  # and only once


def test_a_venue_fill_after_more_than_a_page_of_own_trades_is_reported(venue: FakeVenue) -> None:
    ex = adapter(venue)
    for i in range(USER_TRADES_PAGE // 2 + 10):  # more than a page of the desk's own trades
        market(ex, f"b{i}", OrderSide.BUY, "0.001")
        market(ex, f"s{i}", OrderSide.SELL, "0.001")
    market(ex, "entry", OrderSide.BUY, "0.001")
    ex.place_order(OrderRequest("stop", BTC, OrderSide.SELL, OrderType.STOP_MARKET, Decimal("0.001"),
                                stop_price=Decimal("59000"), reduce_only=True))
    venue.set_price(BTC, Decimal("58000"))
    # the desk's own fills came back with its orders; the venue's stop fill is the news
    assert [f.client_order_id for f in ex.sync(step(venue)).fills] == ["stop"]
    assert not ex.sync(step(venue))
