"""Paper exchange money math against hand-computed numbers.

Setup for every test unless stated: ETHUSDT (tick 0.01, step 0.001, min notional 5, mmr 0.005),
wallet 10,000 USDT, taker fee 0.05 %, slippage 10 bps (BUY fills at price × 1.001 rounded up to the
tick, SELL at price × 0.999 rounded down), default leverage 20, funding rate 0.01 % every 8 h.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text

import core.exchanges.paper_store  # noqa: F401  (registers the paper_* tables on Base)
from core.errors import (
    BelowMinNotional,
    ExchangeUnavailable,
    InsufficientMargin,
    OrderRejected,
    ReduceOnlyRejected,
)
from core.exchanges.base import LOSS_GUARD_PREFIX
from core.exchanges.paper import PaperExchange
from core.exchanges.symbols import default_filters, parse_exchange_info
from core.models import (
    Bar,
    ExchangeEvents,
    MarketStep,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
)
from core.store.base import Base

ETH = "ETHUSDT"
T0 = 1_748_736_000_000  # 2025-06-01 00:00 UTC, a funding time
M15 = 900_000
H8 = 8 * 3_600_000
BUY, SELL = OrderSide.BUY, OrderSide.SELL
STOP, TP, MARKET = OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET, OrderType.MARKET


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'paper.db'}")
    Base.metadata.create_all(eng)
    PaperExchange.open_account(eng, "acct", D("10000"))
    yield eng
    eng.dispose()


def make(engine: Engine, interval_ms: int = M15) -> PaperExchange:
    return PaperExchange(
        engine,
        "acct",
        filters=default_filters(["BTCUSDT", ETH, "SOLUSDT"]),
        taker_fee=0.0005,
        slippage_bps=10,
        funding_rate=0.0001,
        interval_ms=interval_ms,
    )


@pytest.fixture
def ex(engine: Engine) -> PaperExchange:
    exchange = make(engine)
    price(exchange, 2000.0, now=T0 - M15)
    return exchange


def price(ex: PaperExchange, last: float, now: int = T0) -> None:
    ex.sync(MarketStep(now_ms=now, bars={}, prices={ETH: last}, funding_rates={}))


def bar(open_ms: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar(open_ms, o, h, lo, c, 1.0)


def run(ex: PaperExchange, *bars: Bar, rate: float | None = None) -> ExchangeEvents:
    last = bars[-1]
    return ex.sync(
        MarketStep(
            now_ms=last.open_time_ms + M15,
            bars={ETH: list(bars)},
            prices={ETH: last.close},
            funding_rates={ETH: rate},
        )
    )


def market(
    ex: PaperExchange, cid: str, side: OrderSide, qty: str, *, reduce: bool = False
) -> OrderResult:
    return ex.place_order(OrderRequest(cid, ETH, side, MARKET, D(qty), reduce_only=reduce))


def resting(
    ex: PaperExchange, cid: str, kind: OrderType, side: OrderSide, qty: str, stop: str
) -> OrderResult:
    return ex.place_order(OrderRequest(cid, ETH, side, kind, D(qty), D(stop), reduce_only=True))


def rejected_code(exc: pytest.ExceptionInfo[OrderRejected]) -> int:
    return exc.value.code


# ----------------------------------------------------------------------------------------- market


def test_open_long_pays_slippage_fee_and_locks_margin(ex: PaperExchange) -> None:
    res = market(ex, "o1", BUY, "1")
    # fill 2000 × 1.001 = 2002.00; fee 2002 × 0.0005 = 1.001; margin 2002 / 20 = 100.1
    assert res.status is OrderStatus.FILLED and res.executed_qty == D("1")
    (fill,) = res.fills
    assert (fill.price, fill.fee, fill.realized_pnl) == (D("2002.00"), D("1.001"), 0)
    (pos,) = ex.positions()
    assert (pos.amount, pos.entry_price, pos.leverage) == (D("1"), D("2002"), 20)
    assert pos.isolated_margin == D("100.1")
    bal = ex.balance()
    assert bal.wallet_balance == D("9998.999")
    assert bal.available_balance == D("9898.899")  # 9998.999 − 100.1
    # marked at 2000: unrealized 1 × (2000 − 2002) = −2
    assert pos.unrealized_pnl == D("-2") and bal.unrealized_pnl == D("-2")


def test_slippage_rounds_against_the_trader(ex: PaperExchange) -> None:
    price(ex, 2000.005)
    # 2000.005 × 1.001 = 2002.005005 → up to 2002.01
    assert market(ex, "b", BUY, "1").avg_price == D("2002.01")
    price(ex, 1999.99)
    # 1999.99 × 0.999 = 1997.99001 → down to 1997.99
    assert market(ex, "s", SELL, "1").avg_price == D("1997.99")


def test_close_long_with_profit(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # 2002.00, fee 1.001
    price(ex, 2100.0)
    (fill,) = market(ex, "c1", SELL, "1", reduce=True).fills
    # 2100 × 0.999 = 2097.90; pnl 95.9; fee 2097.9 × 0.0005 = 1.04895
    assert (fill.price, fill.realized_pnl, fill.fee) == (D("2097.90"), D("95.9"), D("1.04895"))
    assert ex.positions() == []
    bal = ex.balance()
    assert bal.wallet_balance == D("10093.85005")  # 10000 − 1.001 + 95.9 − 1.04895
    assert bal.available_balance == bal.wallet_balance


def test_short_with_profit(ex: PaperExchange) -> None:
    (f1,) = market(ex, "o1", SELL, "2").fills
    # 2000 × 0.999 = 1998.00; fee 3996 × 0.0005 = 1.998; margin 3996 / 20 = 199.8
    assert (f1.price, f1.fee) == (D("1998.00"), D("1.998"))
    assert ex.positions()[0].amount == D("-2")
    assert ex.balance().available_balance == D("9798.202")  # 10000 − 1.998 − 199.8
    price(ex, 1900.0)
    (f2,) = market(ex, "c1", BUY, "2").fills
    # 1900 × 1.001 = 1901.90; pnl 2 × (1901.9 − 1998) × −1 = +192.2; fee 3803.8 × 0.0005
    assert (f2.price, f2.realized_pnl, f2.fee) == (D("1901.90"), D("192.2"), D("1.9019"))
    assert ex.balance().wallet_balance == D("10188.3001")  # 10000 − 1.998 + 192.2 − 1.9019


def test_short_with_loss(ex: PaperExchange) -> None:
    market(ex, "o1", SELL, "1")  # 1998.00, fee 0.999
    price(ex, 2100.0)
    (fill,) = market(ex, "c1", BUY, "1", reduce=True).fills
    # 2100 × 1.001 = 2102.10; pnl (2102.1 − 1998) × −1 = −104.1; fee 1.05105
    assert (fill.price, fill.realized_pnl, fill.fee) == (D("2102.10"), D("-104.1"), D("1.05105"))
    assert ex.balance().wallet_balance == D("9893.84995")  # 10000 − 0.999 − 104.1 − 1.05105


def test_increase_averages_entry_and_partial_close_releases_margin_pro_rata(
    ex: PaperExchange,
) -> None:
    market(ex, "o1", BUY, "1")  # 2002.00, margin 100.1
    price(ex, 2200.0)
    market(ex, "o2", BUY, "1")  # 2202.20, margin 110.11
    (pos,) = ex.positions()
    assert pos.entry_price == D("2102.1") and pos.isolated_margin == D("210.21")
    (fill,) = market(ex, "c1", SELL, "0.5", reduce=True).fills
    # 2200 × 0.999 = 2197.80; pnl 0.5 × (2197.8 − 2102.1) = 47.85; margin left 210.21 × 1.5 / 2
    assert fill.realized_pnl == D("47.85")
    (pos,) = ex.positions()
    assert (pos.amount, pos.entry_price, pos.isolated_margin) == (
        D("1.5"),
        D("2102.1"),
        D("157.6575"),
    )


def test_leverage_sets_margin_and_unrealized_does_not_add_to_available(ex: PaperExchange) -> None:
    assert ex.set_leverage(ETH, 10) == 10
    market(ex, "o1", BUY, "1")  # 2002.00, fee 1.001, margin 200.2
    price(ex, 2100.0)
    bal = ex.balance()
    assert bal.available_balance == D("9798.799")  # 10000 − 1.001 − 200.2
    assert bal.unrealized_pnl == D("98")  # 1 × (2100 − 2002)
    assert ex.positions()[0].leverage == 10


def test_leverage_bounds(ex: PaperExchange) -> None:
    for bad in (0, 101):
        with pytest.raises(OrderRejected) as exc:
            ex.set_leverage(ETH, bad)
        assert rejected_code(exc) == -4028
    assert ex.set_leverage(ETH, 100) == 100


# ------------------------------------------------------------------------------------- rejections


def test_insufficient_margin_changes_nothing(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 1)
    # 5 × 2002 = 10010 margin at 1x > 10000
    with pytest.raises(InsufficientMargin) as exc:
        market(ex, "big", BUY, "5")
    assert rejected_code(exc) == -2019
    assert ex.get_order(ETH, "big") is None
    assert ex.balance().wallet_balance == D("10000") and ex.positions() == []
    # 4.99 × 2002 = 9989.98 margin + 4.99499 fee = 9994.97499 ≤ 10000: accepted
    assert market(ex, "fits", BUY, "4.99").status is OrderStatus.FILLED


def test_below_min_notional(ex: PaperExchange) -> None:
    with pytest.raises(BelowMinNotional) as exc:
        market(ex, "tiny", BUY, "0.002")  # 0.002 × 2000 = 4 < 5
    assert rejected_code(exc) == -4164
    assert market(ex, "ok", BUY, "0.003").status is OrderStatus.FILLED  # 6 ≥ 5


def test_quantity_filters_and_symbol(ex: PaperExchange) -> None:
    cases = {"0": -4003, "-1": -4003, "0.0015": -4023, "10001": -4005}
    for qty, code in cases.items():
        with pytest.raises(OrderRejected) as exc:
            market(ex, "q", BUY, qty)
        assert rejected_code(exc) == code, qty
    with pytest.raises(OrderRejected) as exc:
        ex.place_order(OrderRequest("q", "SOLUSDT", BUY, MARKET, D("0.001")))
    assert rejected_code(exc) == -4004  # SOL min qty 0.01
    with pytest.raises(OrderRejected) as exc:
        ex.place_order(OrderRequest("q", "DOGEUSDT", BUY, MARKET, D("1")))
    assert rejected_code(exc) == -1121
    with pytest.raises(OrderRejected) as exc:
        market(ex, "x" * 37, BUY, "1")
    assert rejected_code(exc) == -4015
    assert ex.balance().wallet_balance == D("10000")


def test_no_price_yet_is_unavailable(engine: Engine) -> None:
    with pytest.raises(ExchangeUnavailable):
        market(make(engine), "o1", BUY, "1")


def test_duplicate_client_order_id_is_refused_and_never_executed_twice(ex: PaperExchange) -> None:
    market(ex, "dup", BUY, "1")
    with pytest.raises(OrderRejected) as exc:
        market(ex, "dup", BUY, "1")
    assert rejected_code(exc) == -4116
    assert ex.positions()[0].amount == D("1")
    assert ex.balance().wallet_balance == D("9998.999")


def test_reduce_only_rules(ex: PaperExchange) -> None:
    with pytest.raises(ReduceOnlyRejected) as exc:
        market(ex, "r0", SELL, "1", reduce=True)  # no position
    assert rejected_code(exc) == -2022
    market(ex, "o1", BUY, "0.003")  # 0.003 × 2002 = 6.006 notional
    with pytest.raises(ReduceOnlyRejected):
        market(ex, "r1", BUY, "0.001", reduce=True)  # would increase
    with pytest.raises(ReduceOnlyRejected):
        resting(ex, "r2", STOP, BUY, "0.003", "2100")  # a BUY stop cannot reduce a long
    price(ex, 1500.0)
    # capped to the position; 0.003 × 1500 = 4.5 < 5 is fine for reduce-only
    res = market(ex, "r3", SELL, "5", reduce=True)
    assert res.quantity == res.executed_qty == D("0.003")
    assert ex.positions() == []


def test_stop_price_rules(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    with pytest.raises(OrderRejected) as exc:
        resting(ex, "s1", STOP, SELL, "1", "1950.005")
    assert rejected_code(exc) == -4014
    for kind, stop in ((STOP, "2000"), (STOP, "2010"), (TP, "1990")):
        with pytest.raises(OrderRejected) as exc:
            resting(ex, "s2", kind, SELL, "1", stop)  # would trigger at 2000
        assert rejected_code(exc) == -2021
    with pytest.raises(OrderRejected):
        ex.place_order(OrderRequest("s3", ETH, SELL, STOP, D("1"), D("1950")))  # not reduce-only
    assert ex.open_orders() == []


# ------------------------------------------------------------------------- liquidation, triggers


def test_liquidation_prices(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    # 2002 × (1 − 1/20 + 0.005) = 1911.91
    assert ex.positions()[0].liquidation_price == D("1911.91")
    market(ex, "c1", SELL, "1", reduce=True)
    market(ex, "o2", SELL, "1")
    # 1998 × (1 + 1/20 − 0.005) = 2087.91
    assert ex.positions()[0].liquidation_price == D("2087.91")


def test_liquidation_loses_exactly_the_margin(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # entry 2002, margin 100.1, wallet 9998.999
    resting(ex, "tp", TP, SELL, "1", "2300")
    events = run(ex, bar(T0 + M15, 2000, 2001, 1900, 1950))  # low 1900 < liq 1911.91
    (fill,) = events.fills
    assert fill.liquidation and fill.client_order_id.startswith("autoclose-")
    # pnl 1911.91 − 2002 = −90.09; fee = the maintenance rest 100.1 − 90.09 = 10.01
    assert (fill.price, fill.realized_pnl, fill.fee) == (D("1911.91"), D("-90.09"), D("10.01"))
    assert fill.ts_ms == T0 + 2 * M15
    assert ex.balance().wallet_balance == D("9898.899")  # 9998.999 − 100.1
    assert ex.positions() == []
    statuses = {u.order.client_order_id: u.order.status for u in events.order_updates}
    assert statuses["tp"] is OrderStatus.EXPIRED
    assert statuses[fill.client_order_id] is OrderStatus.FILLED


def test_stop_loss_long_triggers_on_low_not_high(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # 2002.00, wallet 9998.999
    resting(ex, "sl", STOP, SELL, "1", "1950")
    assert not run(ex, bar(T0 + M15, 2000, 2060, 1951, 2040))  # a high never fires a long's stop
    events = run(ex, bar(T0 + 2 * M15, 2000, 2010, 1940, 1960))
    (fill,) = events.fills
    # 1950 × 0.999 = 1948.05; pnl −53.95; fee 0.974025
    assert (fill.price, fill.realized_pnl, fill.fee) == (D("1948.05"), D("-53.95"), D("0.974025"))
    assert fill.ts_ms == T0 + 3 * M15
    (update,) = events.order_updates
    assert update.order.status is OrderStatus.FILLED and update.order.fills == (fill,)
    assert ex.balance().wallet_balance == D("9944.074975")
    assert ex.get_order(ETH, "sl").status is OrderStatus.FILLED  # type: ignore[union-attr]


def test_stop_loss_short_triggers_on_high_not_low(ex: PaperExchange) -> None:
    market(ex, "o1", SELL, "1")  # 1998.00
    resting(ex, "sl", STOP, BUY, "1", "2050")
    assert not run(ex, bar(T0 + M15, 2000, 2049, 1900, 1950))  # a low never fires a short's stop
    (fill,) = run(ex, bar(T0 + 2 * M15, 2000, 2060, 1990, 2055)).fills
    # 2050 × 1.001 = 2052.05; pnl (2052.05 − 1998) × −1 = −54.05
    assert (fill.side, fill.price, fill.realized_pnl) == (BUY, D("2052.05"), D("-54.05"))


def test_take_profit_and_sibling_stop_expires(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    resting(ex, "tp", TP, SELL, "1", "2100")
    assert [o.client_order_id for o in ex.open_orders(ETH)] == ["sl", "tp"]
    events = run(ex, bar(T0 + M15, 2050, 2110, 2040, 2105))
    (fill,) = events.fills
    # 2100 × 0.999 = 2097.90; pnl 95.9
    assert (fill.client_order_id, fill.price, fill.realized_pnl) == ("tp", D("2097.90"), D("95.9"))
    assert [(u.order.client_order_id, u.order.status) for u in events.order_updates] == [
        ("tp", OrderStatus.FILLED),
        ("sl", OrderStatus.EXPIRED),
    ]
    assert ex.open_orders() == []


def test_gap_through_stop_fills_at_the_open(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)  # liq 2002 × 0.905 = 1811.81, below the gap
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    (fill,) = run(ex, bar(T0 + M15, 1900, 1920, 1890, 1910)).fills
    # open 1900 × 0.999 = 1898.10; pnl −103.9
    assert (fill.price, fill.realized_pnl) == (D("1898.10"), D("-103.9"))


def test_stop_and_take_profit_in_one_bar_stop_first(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    resting(ex, "tp", TP, SELL, "1", "2100")
    events = run(ex, bar(T0 + M15, 2000, 2110, 1940, 2105))
    assert [(f.client_order_id, f.price) for f in events.fills] == [("sl", D("1948.05"))]
    assert ex.get_order(ETH, "tp").status is OrderStatus.EXPIRED  # type: ignore[union-attr]


def test_bar_opening_beyond_take_profit_fills_it_at_the_open(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    resting(ex, "tp", TP, SELL, "1", "2100")
    events = run(ex, bar(T0 + M15, 2105, 2110, 1940, 1960))
    # 2105 × 0.999 = 2102.895 → down to 2102.89
    assert [(f.client_order_id, f.price) for f in events.fills] == [("tp", D("2102.89"))]
    assert ex.get_order(ETH, "sl").status is OrderStatus.EXPIRED  # type: ignore[union-attr]


def test_closing_by_hand_expires_the_stop_and_reports_it_on_next_sync(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    market(ex, "c1", SELL, "1", reduce=True)
    assert ex.open_orders() == []
    events = run(ex, bar(T0 + M15, 2000, 2001, 1999, 2000))
    assert [(u.order.client_order_id, u.order.status) for u in events.order_updates] == [
        ("sl", OrderStatus.EXPIRED)
    ]
    assert not run(ex, bar(T0 + 2 * M15, 2000, 2001, 1999, 2000))


def test_cancel(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    resting(ex, "tp", TP, SELL, "1", "2100")
    assert ex.cancel_order(ETH, "sl").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert ex.cancel_order(ETH, "sl").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert ex.cancel_order(ETH, "nope") is None
    assert ex.cancel_order(ETH, "o1").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert ex.cancel_all(ETH) == 1 and ex.open_orders() == []
    assert not run(ex, bar(T0 + M15, 2000, 2200, 1920, 2000))  # above liq 1911.91


# --------------------------------------------------------------------------------------- funding


def test_funding_long_pays_short_receives_once_per_funding_time(engine: Engine) -> None:
    ex = make(engine)
    price(ex, 2000.0, now=T0 - M15)
    market(ex, "o1", BUY, "1")  # wallet 9998.999
    quiet = [bar(T0 + i * M15, 2000, 2001, 1999, 2000) for i in range(1, 4)]
    # 00:00 funding at the bar's open 2000: −1 × 2000 × 0.0001 = −0.2
    (pay,) = run(ex, bar(T0, 2000, 2001, 1999, 2000), *quiet).funding
    assert (pay.amount, pay.ts_ms, pay.payment_id) == (D("-0.2"), T0, f"acct-fund-{ETH}-{T0}")
    assert not run(ex, bar(T0, 2000, 2001, 1999, 2000))  # the same bar again: not twice
    # 08:00 with the feed's rate 0.0002 at open 2100: −1 × 2100 × 0.0002 = −0.42
    (pay,) = run(ex, bar(T0 + H8, 2100, 2101, 2099, 2100), rate=0.0002).funding
    assert (pay.amount, pay.rate) == (D("-0.42"), 0.0002)
    assert ex.balance().wallet_balance == D("9998.379")  # 9998.999 − 0.2 − 0.42
    # a restarted venue does not pay 08:00 again, but pays 16:00
    again = make(engine)
    assert not run(again, bar(T0 + H8, 2100, 2101, 2099, 2100))
    market(again, "c1", SELL, "1", reduce=True)  # flat: nothing more to pay
    market(again, "s1", SELL, "1")  # short 1 at 2100 × 0.999 = 2097.90
    (pay,) = run(again, bar(T0 + 2 * H8, 2000, 2001, 1999, 2000)).funding
    assert pay.amount == D("0.2")  # the short receives 1 × 2000 × 0.0001


def test_funding_is_not_paid_between_funding_times(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")
    bars = [bar(T0 + i * M15, 2000, 2001, 1999, 2000) for i in range(1, 32)]  # 00:15 … 07:45
    assert not run(ex, *bars)


def test_funding_times_during_a_long_bar_are_all_paid(engine: Engine) -> None:
    ex = make(engine, interval_ms=24 * 3_600_000)
    price(ex, 2000.0, now=T0)
    market(ex, "s1", SELL, "1")  # short 1 at 1998.00, opened when the day bar opens
    day = ex.sync(
        MarketStep(T0 + 3 * H8, {ETH: [bar(T0, 2000, 2050, 1950, 2000)]}, {ETH: 2000.0}, {})
    )
    # 00:00, 08:00 and 16:00 at the day's open: each +1 × 2000 × 0.0001 = 0.2 to the short
    assert [(p.ts_ms, p.amount) for p in day.funding] == [
        (T0, D("0.2")),
        (T0 + H8, D("0.2")),
        (T0 + 2 * H8, D("0.2")),
    ]


# ------------------------------------------------------------------------ durability, hot path


def test_restart_sees_exactly_what_was_committed(engine: Engine, ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 7)
    market(ex, "o1", BUY, "1.5")  # 3003.00 notional, margin 429 (3003 / 7)
    resting(ex, "sl", STOP, SELL, "1.5", "1950.5")
    resting(ex, "tp", TP, SELL, "1.5", "2100.25")
    again = make(engine)
    # no price yet after a restart: marked at entry
    assert again.positions() == [
        replace(p, mark_price=D("2002"), unrealized_pnl=D("0")) for p in ex.positions()
    ]
    assert again.balance().wallet_balance == ex.balance().wallet_balance == D("9998.4985")
    assert again.balance().available_balance == D("9569.4985")
    assert again.open_orders() == ex.open_orders()
    with pytest.raises(OrderRejected) as exc:
        market(again, "o1", BUY, "1")
    assert rejected_code(exc) == -4116
    price(again, 2000.0)
    with pytest.raises(OrderRejected) as exc:
        market(again, "o1", BUY, "1")
    assert rejected_code(exc) == -4116


def test_ids_continue_after_restart(engine: Engine, ex: PaperExchange) -> None:
    first = market(ex, "o1", BUY, "1")
    again = make(engine)
    price(again, 2000.0)
    second = market(again, "o2", BUY, "1")
    assert first.exchange_order_id != second.exchange_order_id
    assert first.fills[0].trade_id != second.fills[0].trade_id


def test_failed_write_changes_nothing(engine: Engine, ex: PaperExchange) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE paper_trades"))  # the fill cannot be written
    with pytest.raises(ExchangeUnavailable):
        market(ex, "o1", BUY, "1")
    for venue in (ex, make(engine)):  # neither memory nor the database kept anything
        assert venue.get_order(ETH, "o1") is None and venue.positions() == []
        assert venue.balance().wallet_balance == D("10000")


def test_a_venue_in_memory_opens_with_its_balance_and_serves_its_own_fills(engine: Engine) -> None:
    terms = {"filters": default_filters([ETH]), "taker_fee": 0.0005, "slippage_bps": 10,
             "funding_rate": 0.0001, "interval_ms": M15}
    for bad in (None, D("-1")):
        with pytest.raises(ValueError, match="opening balance"):
            PaperExchange(None, "mem", opening_balance=bad, **terms)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="open_account"):  # a stored account has its own balance
        PaperExchange(engine, "acct", opening_balance=D("5"), **terms)  # type: ignore[arg-type]
    venue = PaperExchange(None, "mem", opening_balance=D("10000"), **terms)  # type: ignore[arg-type]
    price(venue, 2000.0)
    fill = market(venue, "o1", BUY, "1").fills[0]
    assert venue.get_order(ETH, "o1").fills == (fill,)  # type: ignore[union-attr]
    assert venue.fills_since(ETH, 0) == [fill] and venue.fills_since(ETH, fill.ts_ms + 1) == []
    assert venue.balance().wallet_balance == D("10000") - fill.fee


def test_quiet_sync_does_no_database_work(engine: Engine, ex: PaperExchange) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for i in range(200):  # no position: nothing to do
        run(ex, bar(T0 + i * M15, 2000, 2100, 1900, 2000))
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    statements.clear()
    for i in range(1, 32):  # a position, but no trigger and no funding time
        run(ex, bar(T0 + H8 * 3 + i * M15, 2000, 2010, 1990, 2000))
    assert statements == []


# ------------------------------------------------------------------ a live feed's late candles


def test_a_candle_closing_after_an_entry_inside_it_judges_only_its_close(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    price(ex, 2000.0, now=T0 + 40_000)  # a live feed's tick inside the 00:00 bar (a funding time)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    resting(ex, "tp", TP, SELL, "1", "2050")
    # its low (before the entry) is past the stop, its high past the take-profit; it closes between
    events = run(ex, bar(T0, 2000, 2100, 1900, 2010), rate=0.001)
    assert not events.fills and not events.funding  # nothing fires, no funding for 00:00
    assert len(ex.positions()) == 1
    (fill,) = run(ex, bar(T0 + M15, 2010, 2020, 1940, 1945)).fills  # a whole bar: the stop fires
    assert (fill.client_order_id, fill.price) == ("sl", D("1948.05"))


def test_an_order_placed_inside_a_candle_fills_at_its_close_if_beyond(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # held before the bar
    price(ex, 2000.0, now=T0 + 40_000)
    resting(ex, "sl", STOP, SELL, "1", "1970")  # placed inside the bar, which closes below it
    (fill,) = run(ex, bar(T0, 2000, 2010, 1960, 1965)).fills
    assert (fill.client_order_id, fill.price) == ("sl", D("1963.03"))  # 1965 × 0.999, not 1970


# ------------------------------------------------------------------------------------ loss guard


def test_loss_guard_closes_where_the_walk_reaches_the_floor(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "1")  # 2002.00, wallet 9998.999; marked 2000: equity 9996.999
    ex.arm_loss_guard(D("50"))  # floor 9946.999: the walk 2000 → 1900 reaches it at 1950
    events = run(ex, bar(T0 + M15, 2000, 2010, 1900, 1990))  # closes at 1990, above the floor
    assert events.loss_guard
    (fill,) = events.fills
    # 1950 × 0.999 = 1948.05; pnl −53.95; fee 0.974025: only slippage and fee below the floor
    assert fill.client_order_id.startswith(LOSS_GUARD_PREFIX)
    assert (fill.side, fill.price, fill.realized_pnl, fill.fee) == (
        SELL, D("1948.05"), D("-53.95"), D("0.974025"))
    assert ex.positions() == [] and ex.balance().wallet_balance == D("9944.074975")


def test_loss_guard_stays_quiet_above_the_floor_and_is_armed_for_one_sync(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)  # liq 1811.81
    market(ex, "o1", BUY, "1")
    ex.arm_loss_guard(D("150"))  # floor 9846.999: the bar's low 1900 leaves 9896.999
    assert not run(ex, bar(T0 + M15, 2000, 2010, 1900, 1990))
    assert not run(ex, bar(T0 + 2 * M15, 1990, 1995, 1830, 1850))  # not re-armed: no guard
    ex.arm_loss_guard(None)
    assert len(ex.positions()) == 1


def test_loss_guard_takes_the_stops_met_first_then_closes_the_rest(ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "2")  # 2 @ 2002.00, fee 2.002: wallet 9997.998, equity at 2000 9993.998
    resting(ex, "sl", STOP, SELL, "1", "1980")  # covers half the position
    ex.arm_loss_guard(D("100"))  # floor 9893.998
    events = run(ex, bar(T0 + M15, 2000, 2005, 1900, 1990))
    # the stop at 1980 first: 1980 × 0.999 = 1978.02, pnl −23.98, fee 0.98901 → wallet 9973.02899;
    # then equity 9971.02899 − 100 f meets the floor at f = 0.7703099: price 1922.96901, rounded
    # toward the open to 1922.97; × 0.999 = 1921.04703 → 1921.04, pnl −80.96, fee 0.96052
    stop, guard = events.fills
    assert (stop.client_order_id, stop.price, stop.realized_pnl) == ("sl", D("1978.02"), D("-23.98"))
    assert guard.client_order_id.startswith(LOSS_GUARD_PREFIX)
    assert (guard.quantity, guard.price, guard.realized_pnl, guard.fee) == (
        D("1"), D("1921.04"), D("-80.96"), D("0.96052"))
    assert ex.balance().wallet_balance == D("9891.10847") and ex.open_orders() == []


def test_loss_guard_never_judges_a_bar_that_began_before_it_was_armed(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)  # liq 1811.81
    market(ex, "o1", BUY, "1")
    price(ex, 2000.0, now=T0 + 40_000)  # a live feed's tick inside the bar that opened at T0
    ex.arm_loss_guard(D("50"))
    events = run(ex, bar(T0, 2000, 2010, 1900, 1990))  # its low may predate the position
    assert not events.loss_guard and not events.fills and len(ex.positions()) == 1


def test_loss_guard_counts_a_liquidation_after_a_partial_stop_at_what_is_left(
        ex: PaperExchange) -> None:
    market(ex, "o1", BUY, "2")  # 2 @ 2002.00 at 20x: margin 200.2, liq 1911.91
    resting(ex, "sl", STOP, SELL, "1", "1960")  # half the position
    ex.arm_loss_guard(D("180"))  # floor 9813.998; the real path bottoms near 9853
    events = run(ex, bar(T0 + M15, 2000, 2005, 1900, 1905))  # the stop, then the liquidation
    assert not events.loss_guard
    assert events.fills[0].client_order_id == "sl" and events.fills[-1].liquidation


def test_loss_guard_at_a_gap_closes_at_the_open(ex: PaperExchange) -> None:
    ex.set_leverage(ETH, 10)
    market(ex, "o1", BUY, "1")
    resting(ex, "sl", STOP, SELL, "1", "1950")
    ex.arm_loss_guard(D("50"))  # floor reached at 1950; the bar opens at 1900
    events = run(ex, bar(T0 + M15, 1900, 1920, 1890, 1910))
    (fill,) = events.fills  # one close at the open (1900 × 0.999 = 1898.10), not two
    assert events.loss_guard and fill.price == D("1898.10")
    assert ex.get_order(ETH, "sl").status is OrderStatus.EXPIRED  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------- symbols


def test_parse_exchange_info_reads_filters_as_decimals() -> None:
    payload = {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.1", "tickSize": "0.10"},
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.001",
                        "maxQty": "500",
                        "stepSize": "0.001",
                    },
                    {"filterType": "MIN_NOTIONAL", "notional": "1"},
                ],
            },
            {"symbol": "ASTERUSDT", "filters": []},
        ]
    }
    got = parse_exchange_info(payload)
    btc = got["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.max_qty, btc.min_notional) == (
        D("0.10"),
        D("0.001"),
        D("500"),
        D("1"),
    )
    assert btc.max_leverage == 125 and btc.maint_margin_rate == D("0.004")
    aster = got["ASTERUSDT"]
    assert (aster.tick_size, aster.max_leverage, aster.maint_margin_rate) == (
        D("0.0001"),
        20,
        D("0.01"),
    )
