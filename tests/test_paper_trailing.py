# ruff: noqa: F811  (the paper venue fixtures are imported from tests/test_paper_exchange.py)
"""The paper venue's trailing stops, bar by bar with hand-computed numbers (fee 0.05%, slippage
10 bps against the trader, ETH ticks of 0.01): armed at once or on activation, the adverse extreme
tested before the favourable one can raise the trigger, the retreat to the close after it, gaps at
the open, the venue's placement rules, and the trail's state surviving a restart."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from sqlalchemy import Engine

from core.errors import OrderRejected
from core.exchanges.paper import PaperExchange
from core.models import OrderRequest, OrderSide, OrderStatus, OrderType
from tests.test_paper_exchange import (  # noqa: F401  (fixtures)
    ETH,
    M15,
    STOP,
    T0,
    bar,
    engine,
    ex,
    make,
    market,
    price,
    resting,
    run,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL
TRAIL = OrderType.TRAILING_STOP_MARKET


def trailing(exchange: PaperExchange, cid: str, side: OrderSide, qty: str, rate: str,
             activation: str | None = None) -> None:
    exchange.place_order(OrderRequest(
        cid, ETH, side, TRAIL, D(qty), reduce_only=True, callback_rate=D(rate),
        activation_price=D(activation) if activation is not None else None))


def trigger_of(exchange: PaperExchange, cid: str) -> D | None:
    found = exchange.get_order(ETH, cid)
    assert found is not None
    return found.stop_price


def test_armed_at_once_it_trails_the_highs_and_fires_at_its_trigger(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # 2000 + 10 bps = 2002.00
    trailing(ex, "tr", SELL, "1", "1")  # armed at the last price 2000: trigger 1980
    assert trigger_of(ex, "tr") == D("1980")
    # open 2010 raises the best price (trigger 1989.9), the low 1995 stays above it, the high
    # 2050 raises it to 2029.5, the close 2040 stays above: nothing fires
    assert not run(ex, bar(T0 + M15, 2010, 2050, 1995, 2040)).fills
    assert trigger_of(ex, "tr") == D("2029.5")
    (fill,) = run(ex, bar(T0 + 2 * M15, 2045, 2048, 2020, 2030)).fills
    # 2029.5 × 0.999 = 2027.4705 → 2027.47; pnl 25.47; fee 1.013735
    assert (fill.client_order_id, fill.price, fill.realized_pnl, fill.fee) == (
        "tr", D("2027.47"), D("25.47"), D("1.013735"))
    assert ex.get_order(ETH, "tr").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert ex.positions() == []


def test_inside_a_bar_the_low_comes_before_the_high_raises_the_trigger(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1")  # trigger 1980
    # the low 1985 meets the old trigger 1980 first (not reached), then the high 2100 raises it to
    # 2079 and the close 2090 stays above: no fill, though a high-first path would have fired
    assert not run(ex, bar(T0 + M15, 2000, 2100, 1985, 2090)).fills
    assert trigger_of(ex, "tr") == D("2079")
    (fill,) = run(ex, bar(T0 + 2 * M15, 2085, 2086, 2070, 2075)).fills
    assert fill.price == D("2076.92")  # 2079 × 0.999 = 2076.921


def test_a_low_under_the_old_trigger_fires_there_even_if_the_bar_then_rallies(
        ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1")  # trigger 1980
    (fill,) = run(ex, bar(T0 + M15, 2000, 2100, 1975, 2090)).fills
    # pessimistic: the old trigger 1980, not the 2079 the high would have set; 1978.02
    assert (fill.price, fill.realized_pnl) == (D("1978.02"), D("-23.98"))


def test_activation_first_then_the_trail_down_to_the_close(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1", activation="2050")
    assert trigger_of(ex, "tr") is None  # not armed
    assert not run(ex, bar(T0 + M15, 2000, 2040, 1960, 2030)).fills  # never armed: low harmless
    assert trigger_of(ex, "tr") is None
    # the high 2060 arms it (trigger 2039.4); the retreat to the close 2035 passes the trigger
    (fill,) = run(ex, bar(T0 + 2 * M15, 2030, 2060, 2000, 2035)).fills
    assert fill.price == D("2037.36")  # 2039.4 × 0.999 = 2037.3606


def test_a_gap_through_the_trigger_fills_at_the_open(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)  # liquidation 1821.82, below the gap
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1")
    run(ex, bar(T0 + M15, 2010, 2050, 1995, 2040))  # trigger 2029.5
    (fill,) = run(ex, bar(T0 + 2 * M15, 2000, 2005, 1990, 2001)).fills
    assert fill.price == D("1998.00")  # the open 2000 × 0.999


def test_a_short_trails_the_lows(ex: PaperExchange) -> None:
    market(ex, "o1", SELL, "1")  # 2000 − 10 bps = 1998.00
    trailing(ex, "tr", BUY, "1", "2")  # armed at 2000: trigger 2040
    # open 1990 → 2029.8; the high 2000 stays under it; the low 1950 → 1989; the close 1960 under
    assert not run(ex, bar(T0 + M15, 1990, 2000, 1950, 1960)).fills
    assert trigger_of(ex, "tr") == D("1989")
    (fill,) = run(ex, bar(T0 + 2 * M15, 1965, 1995, 1960, 1990)).fills
    # 1989 × 1.001 = 1990.989 → up to 1990.99; pnl (1998 − 1990.99) = 7.01
    assert (fill.side, fill.price, fill.realized_pnl) == (BUY, D("1990.99"), D("7.01"))


def test_the_higher_of_the_hard_stop_and_the_trail_fires_first_and_the_other_expires(
        ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    trailing(ex, "tr", SELL, "1", "1")
    run(ex, bar(T0 + M15, 2010, 2050, 1995, 2040))  # trail trigger 2029.5
    events = run(ex, bar(T0 + 2 * M15, 2040, 2045, 1900, 1910))
    assert [(f.client_order_id, f.price) for f in events.fills] == [("tr", D("2027.47"))]
    assert ex.get_order(ETH, "sl").status is OrderStatus.EXPIRED  # type: ignore[union-attr]


def test_the_hard_stop_fires_before_a_trail_below_it(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1990")
    trailing(ex, "tr", SELL, "1", "2")  # trigger 1960
    events = run(ex, bar(T0 + M15, 2000, 2001, 1950, 1955))
    assert [(f.client_order_id, f.price) for f in events.fills] == [("sl", D("1988.01"))]
    assert ex.get_order(ETH, "tr").status is OrderStatus.EXPIRED  # type: ignore[union-attr]


@pytest.mark.parametrize(("side", "rate", "activation", "code"), [
    (SELL, None, None, -1102), (SELL, "0.05", None, -1102), (SELL, "5.1", None, -1102),
    (SELL, "1", "2000", -2021), (SELL, "1", "1990", -2021), (SELL, "1", "2050.005", -4014)])
def test_placement_follows_the_venue_rules(ex: PaperExchange, side: OrderSide, rate: str | None,
                                           activation: str | None, code: int) -> None:
    market(ex, "o1", BUY, "1")
    with pytest.raises(OrderRejected) as exc:
        ex.place_order(OrderRequest(
            "tr", ETH, side, TRAIL, D("1"), reduce_only=True,
            callback_rate=D(rate) if rate else None,
            activation_price=D(activation) if activation else None))
    assert exc.value.code == code
    assert ex.get_order(ETH, "tr") is None


def test_a_short_activation_must_be_below_the_price(ex: PaperExchange) -> None:
    market(ex, "o1", SELL, "1")
    with pytest.raises(OrderRejected) as exc:
        trailing(ex, "tr", BUY, "1", "1", activation="2010")
    assert exc.value.code == -2021
    trailing(ex, "tr", BUY, "1", "1", activation="1990")
    assert ex.open_orders(ETH)[0].activation_price == D("1990")


def test_only_reduce_only_trails_rest(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    with pytest.raises(OrderRejected):
        ex.place_order(OrderRequest("tr", ETH, SELL, TRAIL, D("1"), callback_rate=D("1")))


def test_a_restart_trails_on_from_the_stored_best_price(engine: Engine, ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1")
    run(ex, bar(T0 + M15, 2010, 2050, 1995, 2040))  # best 2050, trigger 2029.5
    again = make(engine)
    price(again, 2040.0, now=T0 + 2 * M15)
    assert trigger_of(again, "tr") == D("2029.5")
    (fill,) = run(again, bar(T0 + 2 * M15, 2045, 2048, 2020, 2030)).fills
    assert fill.price == D("2027.47")


def test_a_quiet_bar_changes_nothing(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    trailing(ex, "tr", SELL, "1", "1")
    run(ex, bar(T0 + M15, 2010, 2050, 1995, 2040))
    before = ex.get_order(ETH, "tr")
    assert not run(ex, bar(T0 + 2 * M15, 2040, 2049, 2031, 2045))
    assert ex.get_order(ETH, "tr") == before
