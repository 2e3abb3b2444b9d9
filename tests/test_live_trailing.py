"""Trailing stops on the live path: the AsterDex client sends ``TRAILING_STOP_MARKET`` reduce-only
with ``callbackRate`` (percent, 0.1 steps, rounded to a tighter trail), ``activationPrice`` (toward
the market) and ``workingType``, as the docs' New Order section lists them; the fake venue follows
the documented behaviour (a SELL arms once the highest price since placement reaches the
activation price and fires at highest × (1 − rate); an activation already passed is -2021; a rate
outside 0.1-5 is refused) and reports the order's ``activatePrice``/``priceRate``."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.errors import OrderRejected
from core.models import OrderRequest, OrderSide, OrderStatus, OrderType
from tests.live_support import AsterdexHarness

BTC = "BTCUSDT"
TRAIL = OrderType.TRAILING_STOP_MARKET


@pytest.fixture
def h(tmp_path: Path) -> Iterator[AsterdexHarness]:
    harness = AsterdexHarness(tmp_path, prices={BTC: 60_000.0})
    yield harness
    harness.close()


def long_one(h: AsterdexHarness) -> None:
    h.exchange.place_order(OrderRequest("entry-1", BTC, OrderSide.BUY, OrderType.MARKET, D("0.01")))


def trail(rate: str, activation: str | None = None, cid: str = "trail-1") -> OrderRequest:
    return OrderRequest(cid, BTC, OrderSide.SELL, TRAIL, D("0.01"), reduce_only=True,
                        callback_rate=D(rate),
                        activation_price=D(activation) if activation else None)


def test_the_client_sends_the_documented_parameters(h: AsterdexHarness) -> None:
    params = h.client.prepare_order(trail("1.27", "61000.07"))
    assert params["type"] == "TRAILING_STOP_MARKET" and params["side"] == "SELL"
    assert params["callbackRate"] == D("1.2")  # rounded down: a tighter trail
    assert params["activationPrice"] == D("61000.0")  # toward the market: arms no later
    assert params["workingType"] == "MARK_PRICE" and params["reduceOnly"] is True
    assert "stopPrice" not in params
    with pytest.raises(OrderRejected) as exc:
        h.client.prepare_order(trail("5.5"))
    assert exc.value.code == -2007


def test_the_venue_arms_on_activation_trails_the_high_and_fires(h: AsterdexHarness) -> None:
    long_one(h)
    placed = h.exchange.place_order(trail("1", "61000"))
    assert placed.status is OrderStatus.NEW and placed.stop_price is None
    assert (placed.callback_rate, placed.activation_price) == (D("1"), D("61000"))
    assert not h.move(BTC, 60_300.0).fills  # not armed: 1% under the high would be 59,697
    assert not h.move(BTC, 59_800.0).fills
    assert not h.move(BTC, 61_500.0).fills  # armed, best 61,500: trigger 60,885
    assert not h.move(BTC, 61_000.0).fills
    events = h.move(BTC, 60_880.0)
    assert [f.client_order_id for f in events.fills] == ["trail-1"]
    assert h.exchange.positions() == []
    assert h.exchange.get_order(BTC, "trail-1").status is OrderStatus.FILLED  # type: ignore[union-attr]


def test_armed_at_placement_without_an_activation_price(h: AsterdexHarness) -> None:
    long_one(h)
    h.exchange.place_order(trail("0.5"))  # best 60,000: trigger 59,700
    assert not h.move(BTC, 59_750.0).fills
    assert [f.client_order_id for f in h.move(BTC, 59_700.0).fills] == ["trail-1"]


def test_the_venue_refuses_a_passed_activation_and_a_rate_out_of_range(h: AsterdexHarness) -> None:
    long_one(h)
    with pytest.raises(OrderRejected) as passed:
        h.exchange.place_order(trail("1", "59990"))
    assert passed.value.code == -2021
    params = h.client.prepare_order(trail("1", cid="raw-1"))
    params["callbackRate"] = D("7")
    with pytest.raises(OrderRejected) as wide:
        h.client._signed("POST", "/fapi/v1/order", params, order=True)
    assert wide.value.code == -2007
    assert h.exchange.open_orders(BTC) == []
