"""One set of tests for the ``Exchange`` contract (core/exchanges/base.py), run against every venue.

The engine cannot tell the paper simulator from the AsterDex adapter, so both must behave the same
where the engine looks: market entries fill with fills carrying trade ids and fees, reduce-only
stops and take-profits rest and trigger (and the fills come back through ``sync`` and
``fills_since``), a client order id is never executed twice, cancels answer with the final state,
filters refuse unrounded sizes, leverage never goes above the symbol's maximum.

Each venue comes with a harness that can move the market: the paper venue is fed a bar from the
previous price to the new one; the AsterDex adapter talks to the loopback fake venue
(tests/fake_venue) whose mark price the harness sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import create_engine

import core.exchanges.paper_store  # noqa: F401  (registers the paper_* tables on Base)
from core.errors import OrderRejected
from core.exchanges.base import Exchange
from core.exchanges.paper import PaperExchange
from core.exchanges.symbols import default_filters
from core.models import (
    Bar,
    ExchangeEvents,
    MarketStep,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)
from core.store.base import Base

ETH = "ETHUSDT"
BUY, SELL = OrderSide.BUY, OrderSide.SELL
MARKET, STOP, TP = OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET
START_PRICE = 2000.0
M15 = 900_000
T0 = 1_748_736_000_000 + 3_600_000  # 2025-06-01 01:00 UTC: no funding time in the first bars


class Harness(Protocol):
    exchange: Exchange

    def move(self, symbol: str, price: float) -> ExchangeEvents:
        """Move the market to ``price`` (through every price in between) and sync the venue."""
        ...


class PaperHarness:
    """The paper venue on a stored account, or (``stored=False``) a backtest's venue in memory."""

    def __init__(self, tmp_path: Path, *, stored: bool = True) -> None:
        self.engine = create_engine(f"sqlite:///{tmp_path / 'paper.db'}")
        if stored:
            Base.metadata.create_all(self.engine)
            PaperExchange.open_account(self.engine, "contract", D("10000"))
        self.exchange = PaperExchange(
            self.engine if stored else None, "contract",
            filters=default_filters(["BTCUSDT", ETH]), taker_fee=0.0004, slippage_bps=2,
            funding_rate=0.0001, interval_ms=M15, opening_balance=None if stored else D("10000"),
        )
        self.now = T0
        self.last = {ETH: START_PRICE, "BTCUSDT": 60_000.0}
        self.exchange.sync(MarketStep(now_ms=self.now, bars={}, prices=dict(self.last),
                                      funding_rates={}))

    def move(self, symbol: str, price: float) -> ExchangeEvents:
        prev = self.last[symbol]
        bar = Bar(self.now, prev, max(prev, price), min(prev, price), price, 1.0)
        self.now += M15
        self.last[symbol] = price
        return self.exchange.sync(MarketStep(now_ms=self.now, bars={symbol: [bar]},
                                             prices=dict(self.last), funding_rates={}))

    def close(self) -> None:
        self.engine.dispose()


def _asterdex_harness(tmp_path: Path) -> Harness:
    from tests.live_support import AsterdexHarness  # needs the client and the fake venue

    return AsterdexHarness(tmp_path, prices={ETH: START_PRICE, "BTCUSDT": 60_000.0})


@pytest.fixture(params=["paper", "paper-in-memory", "asterdex"])
def venue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param.startswith("paper"):
        harness: Harness = PaperHarness(tmp_path, stored=request.param == "paper")
    else:
        harness = _asterdex_harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()  # type: ignore[attr-defined]


def req(cid: str, side: OrderSide, kind: OrderType = MARKET, qty: str = "0.5",
        stop: str | None = None, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol=ETH, side=side, type=kind, quantity=D(qty),
                        stop_price=D(stop) if stop else None, reduce_only=reduce_only)


def open_long(ex: Exchange, cid: str = "ct-entry", qty: str = "0.5") -> None:
    ex.set_leverage(ETH, 10)
    result = ex.place_order(req(cid, BUY, qty=qty))
    assert result.status is OrderStatus.FILLED


# ---------------------------------------------------------------------- orders and fills
def test_market_entry_fills_with_trade_ids_and_fees(venue: Harness) -> None:
    ex = venue.exchange
    ex.set_leverage(ETH, 10)
    result = ex.place_order(req("ct-entry", BUY))
    assert result.status is OrderStatus.FILLED
    assert result.executed_qty == D("0.5")
    assert result.fills and sum(f.quantity for f in result.fills) == D("0.5")
    assert all(f.client_order_id == "ct-entry" and f.fee > 0 for f in result.fills)
    assert len({f.trade_id for f in result.fills}) == len(result.fills)
    assert abs(float(result.avg_price) - START_PRICE) / START_PRICE < 0.01
    [pos] = ex.positions()
    assert pos.symbol == ETH and pos.amount == D("0.5")
    found = ex.get_order(ETH, "ct-entry")
    assert found is not None and found.status is OrderStatus.FILLED
    assert {f.trade_id for f in found.fills} == {f.trade_id for f in result.fills}


def test_stop_rests_and_triggers_reduce_only(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex)
    stop = ex.place_order(req("ct-stop", SELL, STOP, stop="1900", reduce_only=True))
    assert stop.status is OrderStatus.NEW and stop.stop_price == D("1900") and stop.reduce_only
    assert [o.client_order_id for o in ex.open_orders(ETH)] == ["ct-stop"]
    assert not venue.move(ETH, 1950.0).fills  # above the stop: nothing happens
    events = venue.move(ETH, 1880.0)
    fills = [f for f in events.fills if f.client_order_id == "ct-stop"]
    assert sum(f.quantity for f in fills) == D("0.5")
    assert all(f.side is SELL and f.fee > 0 and f.realized_pnl < 0 for f in fills)
    assert ex.positions() == []
    assert ex.open_orders(ETH) == []
    done = ex.get_order(ETH, "ct-stop")
    assert done is not None and done.status is OrderStatus.FILLED


def test_take_profit_rests_and_triggers(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex)
    tp = ex.place_order(req("ct-tp", SELL, TP, stop="2100", reduce_only=True))
    assert tp.status is OrderStatus.NEW
    events = venue.move(ETH, 2120.0)
    fills = [f for f in events.fills if f.client_order_id == "ct-tp"]
    assert sum(f.quantity for f in fills) == D("0.5") and all(f.realized_pnl > 0 for f in fills)
    assert ex.positions() == []


def test_short_stop_sits_above_the_entry(venue: Harness) -> None:
    ex = venue.exchange
    ex.set_leverage(ETH, 10)
    ex.place_order(req("ct-short", SELL))
    [pos] = ex.positions()
    assert pos.amount == D("-0.5")
    ex.place_order(req("ct-sstop", BUY, STOP, stop="2100", reduce_only=True))
    assert not venue.move(ETH, 1900.0).fills
    events = venue.move(ETH, 2150.0)
    assert sum(f.quantity for f in events.fills if f.client_order_id == "ct-sstop") == D("0.5")
    assert ex.positions() == []


def test_duplicate_client_order_id_is_refused_never_executed_twice(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex, "ct-dup")
    with pytest.raises(OrderRejected):
        ex.place_order(req("ct-dup", BUY))
    [pos] = ex.positions()
    assert pos.amount == D("0.5")
    found = ex.get_order(ETH, "ct-dup")
    assert found is not None and found.executed_qty == D("0.5")


def test_reduce_only_without_a_position_is_refused(venue: Harness) -> None:
    with pytest.raises(OrderRejected):
        venue.exchange.place_order(req("ct-ro", SELL, reduce_only=True))
    assert venue.exchange.positions() == []


def test_cancel_and_cancel_all(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex)
    ex.place_order(req("ct-s1", SELL, STOP, stop="1900", reduce_only=True))
    ex.place_order(req("ct-t1", SELL, TP, stop="2200", reduce_only=True))
    cancelled = ex.cancel_order(ETH, "ct-s1")
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELED
    again = ex.cancel_order(ETH, "ct-s1")  # already final: the final state, not an error
    assert again is not None and again.status is OrderStatus.CANCELED
    assert ex.cancel_order(ETH, "ct-never") is None
    assert [o.client_order_id for o in ex.open_orders()] == ["ct-t1"]
    assert ex.cancel_all(ETH) == 1
    assert ex.open_orders() == []
    assert not venue.move(ETH, 2300.0).fills  # the cancelled take-profit never fires
    assert ex.get_order(ETH, "ct-never") is None


def test_balance_and_positions_follow_the_fills(venue: Harness) -> None:
    ex = venue.exchange
    before = ex.balance()
    assert before.available_balance == before.wallet_balance > 0
    open_long(ex)
    after = ex.balance()
    assert after.wallet_balance < before.wallet_balance  # the taker fee
    assert after.available_balance < after.wallet_balance  # the isolated margin
    venue.move(ETH, 2050.0)
    [pos] = ex.positions()
    assert pos.leverage == 10 and pos.entry_price > 0
    assert pos.unrealized_pnl > 0 and float(pos.mark_price) == pytest.approx(2050.0)
    assert pos.liquidation_price < pos.entry_price


def test_fills_since_lists_the_account_trades_oldest_first(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex)
    ex.place_order(req("ct-stop", SELL, STOP, stop="1900", reduce_only=True))
    venue.move(ETH, 1850.0)
    fills = ex.fills_since(ETH, 0)
    assert fills[0].client_order_id == "ct-entry"
    assert {f.client_order_id for f in fills} == {"ct-entry", "ct-stop"}
    assert [f.ts_ms for f in fills] == sorted(f.ts_ms for f in fills)
    later = ex.fills_since(ETH, max(f.ts_ms for f in fills) + 1)
    assert later == []
    assert ex.fills_since("BTCUSDT", 0) == []


def test_sync_reports_each_venue_fill_once(venue: Harness) -> None:
    ex = venue.exchange
    open_long(ex)
    ex.place_order(req("ct-stop", SELL, STOP, stop="1900", reduce_only=True))
    first = venue.move(ETH, 1850.0)
    second = venue.move(ETH, 1840.0)
    ids = [f.trade_id for f in first.fills + second.fills if f.client_order_id == "ct-stop"]
    assert ids and len(ids) == len(set(ids))
    assert not [f for f in second.fills if f.client_order_id == "ct-stop"]


# ---------------------------------------------------------------------- filters and leverage
def test_filters_round_and_unrounded_sizes_are_refused(venue: Harness) -> None:
    ex = venue.exchange
    f = ex.filters(ETH)
    assert f.step_size > 0 and f.tick_size > 0 and f.min_notional > 0
    qty = f.round_qty(D("0.12345678"))
    assert qty <= D("0.12345678") and (qty / f.step_size) % 1 == 0
    assert (f.round_price(D("2000.123456"), up=True) / f.tick_size) % 1 == 0
    with pytest.raises(OrderRejected):
        ex.place_order(req("ct-odd", BUY, qty="0.12345678"))
    assert ex.positions() == [] and ex.get_order(ETH, "ct-odd") is None
    with pytest.raises(OrderRejected):
        ex.filters("NOPEUSDT")


def test_set_leverage_never_exceeds_the_symbol_maximum(venue: Harness) -> None:
    ex = venue.exchange
    top = ex.filters(ETH).max_leverage
    assert ex.set_leverage(ETH, 7) == 7
    assert ex.set_leverage(ETH, top) == top
    try:
        applied = ex.set_leverage(ETH, top + 50)
    except OrderRejected:
        applied = None  # refusing is fine; applying more than the maximum is not
    assert applied is None or applied <= top
