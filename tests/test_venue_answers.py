"""How execution settles each answer of the venue on the paper path: a refusal, an expiry, a
refused leverage, an unreachable venue, a lost answer. Nothing is lost or sent twice, every order's
fate is on record with the venue's words, and a position is never left without its stop.

The venue is the paper one with its ``place_order`` (or ``set_leverage``) routed through a function
that answers as a live venue may; the engine runs its own ticks (``run_cycle``) on the replay."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from core.errors import ExchangeUnavailable, OrderRejected, UnknownOrderStatus
from core.models import OrderRequest, OrderResult, OrderStatus, OrderType
from core.store.tables import ALERTS, CEO_DECISIONS, ORDERS, POSITIONS
from tests.test_hard_rule_boundaries import _desk, _trade_until


def _venue_answers(desk, answer):  # type: ignore[no-untyped-def]
    """Route every order through ``answer(request, place)``, which may place it, raise, or both;
    returns the requests in the order they were sent, with ``last_refused`` as it stood then."""
    place = desk.exchange.place_order
    sent: list[tuple[OrderRequest, bool]] = []

    def routed(request: OrderRequest) -> OrderResult:
        sent.append((request, desk.execution.last_refused))
        return answer(request, place)

    desk.exchange.place_order = routed  # type: ignore[method-assign]
    desk.execution.exchange = desk.exchange
    return sent


def _orders(engine, sid: int) -> list[Any]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.execute(select(ORDERS).where(ORDERS.c.session_id == sid)
                                 .order_by(ORDERS.c.id)))


def test_a_refused_entry_is_recorded_with_the_venues_code_and_its_position_fails(
        sqlite_url: str) -> None:
    engine, sid, desk = _desk(sqlite_url)

    def refuse(request: OrderRequest, place):  # type: ignore[no-untyped-def]
        raise OrderRejected("Margin is insufficient.", code=-2019)

    sent = _venue_answers(desk, refuse)
    _trade_until(desk, lambda: len(sent) >= 2)
    assert [last for _, last in sent] == [False, False]  # each send starts with a clean slate
    assert desk.execution.last_refused is True
    (first, second) = _orders(engine, sid)[:2]
    assert (first.status, first.error) == ("REJECTED", "Margin is insufficient. (code -2019)")
    assert first.purpose == "entry" and first.agent_id is not None and not first.reduce_only
    assert desk.execution.open_orders == {} and not desk.ledger.open_positions()
    with engine.connect() as conn:
        failed = conn.execute(select(POSITIONS.c.status, POSITIONS.c.close_reason).where(
            POSITIONS.c.id == first.position_id)).one()
        notes = conn.scalars(select(CEO_DECISIONS.c.reason).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "execution")).all()
    assert failed == ("failed", "not_filled")
    assert any(n.endswith("entry not filled (Margin is insufficient. (code -2019))") for n in notes)
    assert second.status == "REJECTED"


def test_a_stop_the_venue_refuses_closes_the_position_at_once(sqlite_url: str) -> None:
    engine, sid, desk = _desk(sqlite_url)

    def refuse_stops(request: OrderRequest, place):  # type: ignore[no-untyped-def]
        if request.type is OrderType.STOP_MARKET:
            raise OrderRejected("Order would immediately trigger.", code=-2021)
        return place(request)

    sent = _venue_answers(desk, refuse_stops)
    _trade_until(desk, lambda: any(r.type is OrderType.STOP_MARKET for r, _ in sent))
    kinds = [(r.type, r.reduce_only) for r, _ in sent]
    assert kinds == [(OrderType.MARKET, False), (OrderType.STOP_MARKET, True),
                     (OrderType.MARKET, True)]  # entry, its stop (refused), the close
    assert not desk.ledger.open_positions()
    with engine.connect() as conn:
        closed = conn.execute(select(POSITIONS.c.status, POSITIONS.c.close_reason).where(
            POSITIONS.c.session_id == sid)).all()
    assert closed == [("closed", "ceo")]
    stop = next(o for o in _orders(engine, sid) if o.purpose == "stop_loss")
    assert (stop.status, stop.error) == ("REJECTED", "Order would immediately trigger. (code -2021)")


def test_a_stop_whose_answer_is_lost_is_asked_about_and_never_sent_again(sqlite_url: str) -> None:
    """The venue took the stop but the answer was lost (a 503): execution asks by its client
    order id, books it as resting and sends nothing more: one stop over the whole position."""
    engine, sid, desk = _desk(sqlite_url)

    def lose_stop_answers(request: OrderRequest, place):  # type: ignore[no-untyped-def]
        result = place(request)
        if request.type is OrderType.STOP_MARKET:
            raise UnknownOrderStatus("HTTP 503: execution status unknown")
        return result

    sent = _venue_answers(desk, lose_stop_answers)
    _trade_until(desk, lambda: any(r.type is OrderType.STOP_MARKET for r, _ in sent))
    (pos,) = desk.ledger.open_positions()
    stops = [r for r, _ in sent if r.type is OrderType.STOP_MARKET]
    assert len(stops) == 1 and desk.execution.naked == {}
    rows = [o for o in _orders(engine, sid) if o.purpose == "stop_loss"]
    assert len(rows) == 1
    row = rows[0]
    assert (row.status, row.client_order_id, row.position_id) == (
        "NEW", stops[0].client_order_id, pos.id)
    assert row.error == "HTTP 503: execution status unknown"  # why it was asked, kept on record
    assert row.reduce_only and row.agent_id == pos.agent_id
    assert row.stop_price == pytest.approx(float(stops[0].stop_price))
    assert float(stops[0].quantity) == pytest.approx(pos.quantity)
    assert stops[0].client_order_id in desk.execution.open_orders
    (entry,) = [r for r, _ in sent if r.type is OrderType.MARKET]
    assert entry.client_order_id not in desk.execution.open_orders  # filled: final
    entry_row = next(o for o in _orders(engine, sid) if o.purpose == "entry")
    assert entry_row.status == "FILLED" and entry_row.executed_qty == pytest.approx(pos.quantity)
    assert entry_row.avg_price == pytest.approx(pos.entry_price)
    assert (entry_row.agent_id, entry_row.position_id) == (pos.agent_id, pos.id)
    assert row.executed_qty == 0 and row.avg_price is None  # the stop rests: nothing executed
    with engine.connect() as conn:  # the entry's fill was told to the trader, once
        assert conn.scalars(select(ALERTS.c.event_id).where(
            ALERTS.c.kind == "trade_opened")).all() == [f"trade-opened-{pos.id}"]


def test_an_order_the_venue_could_not_take_stays_unknown_and_the_tick_fails_loudly(
        sqlite_url: str) -> None:
    """The venue said nothing was done (unreachable, rate limited): the order stays UNKNOWN with
    the reason, so a restart's reconcile asks about it before anything else, and the tick fails."""
    engine, sid, desk = _desk(sqlite_url)

    def unreachable(request: OrderRequest, place):  # type: ignore[no-untyped-def]
        raise ExchangeUnavailable("HTTP 429: too many requests")

    sent = _venue_answers(desk, unreachable)
    with pytest.raises(ExchangeUnavailable, match="429"):
        _trade_until(desk, lambda: bool(sent))
    (order,) = _orders(engine, sid)
    assert (order.status, order.error) == ("UNKNOWN", "HTTP 429: too many requests")
    assert order.client_order_id == sent[0][0].client_order_id


def test_an_entry_the_venue_expires_unfilled_fails_its_position(sqlite_url: str) -> None:
    engine, sid, desk = _desk(sqlite_url)

    def expire(request: OrderRequest, place):  # type: ignore[no-untyped-def]
        return OrderResult(
            client_order_id=request.client_order_id, exchange_order_id="x1", symbol=request.symbol,
            side=request.side, type=request.type, status=OrderStatus.EXPIRED,
            quantity=request.quantity, executed_qty=Decimal(0), avg_price=Decimal(0))

    sent = _venue_answers(desk, expire)
    _trade_until(desk, lambda: bool(sent))
    assert desk.execution.open_orders == {} and not desk.ledger.open_positions()
    (order,) = _orders(engine, sid)
    assert (order.status, order.executed_qty, order.avg_price) == ("EXPIRED", 0, None)
    _assert_failed(engine, sid, order.position_id, "entry not filled (entry expired)")


def test_an_entry_whose_leverage_the_venue_refuses_is_never_sent(sqlite_url: str) -> None:
    engine, sid, desk = _desk(sqlite_url)
    asked: list[tuple[str, int]] = []

    def refuse(symbol: str, leverage: int) -> None:
        asked.append((symbol, leverage))
        raise OrderRejected("Leverage is too high.", code=-4028)

    desk.exchange.set_leverage = refuse  # type: ignore[method-assign]
    desk.execution.exchange = desk.exchange
    sent = _venue_answers(desk, lambda request, place: place(request))
    _trade_until(desk, lambda: bool(asked))
    assert sent == [] and _orders(engine, sid) == [] and not desk.ledger.open_positions()
    with engine.connect() as conn:
        (pid,) = conn.scalars(select(POSITIONS.c.id).where(POSITIONS.c.session_id == sid)).all()
    _assert_failed(engine, sid, pid,
                   "entry not filled (leverage refused: Leverage is too high.)")


def _assert_failed(engine, sid: int, position_id: int, note: str) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        failed = conn.execute(select(POSITIONS.c.status, POSITIONS.c.close_reason).where(
            POSITIONS.c.id == position_id)).one()
        notes = conn.scalars(select(CEO_DECISIONS.c.reason).where(
            CEO_DECISIONS.c.session_id == sid, CEO_DECISIONS.c.kind == "execution")).all()
    assert failed == ("failed", "not_filled")
    assert any(n.endswith(note) for n in notes), notes


