"""End to end: the engine trading a live session against the fake venue, through the real client.

Every test runs the whole desk (feed, agents, CEO, execution, reconciliation) with the fake
venue's market clock moved one 15-minute bar per tick, injects the venue faults the issue lists,
and asserts the outcomes that matter with money at stake: no order sent twice, every venue fill
booked once, venue and store agree on positions, every open position rests under a reduce-only
stop for its whole quantity within one tick, and the engine keeps ticking.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from core import service
from core.desk import live_runtime
from core.desk.scheduler import EngineDriver
from core.exchanges.asterdex_client import AsterDexClient
from core.exchanges.asterdex_ratelimit import RateGate
from core.models import INTERVAL_MS, OrderRequest, OrderSide, OrderType
from core.store.db import open_database
from core.store.tables import AgentRow, CeoDecisionRow, FillRow, OrderRow, PositionRow, SessionRow
from tests.fake_venue import FakeVenue
from tests.live_support import API_KEY, API_SECRET, live_settings

M15 = INTERVAL_MS["15m"]


@dataclass
class Live:
    venue: FakeVenue
    engine: Engine
    session_id: int
    driver: EngineDriver
    gate_clock: list[float]

    def tick(self, n: int = 1, *, advance: bool = True) -> list[object]:
        reports = []
        for _ in range(n):
            if advance:
                self.venue.advance_market(M15)
            reports.append(self.driver.tick())
            self.gate_clock[0] += 5.0  # five seconds of back-off time pass per tick
        return reports

    def restart(self) -> None:
        """A new engine process: nothing kept in memory, not even the venue adapter's cursors."""
        self.driver.stop()
        live_runtime._EXCHANGES.clear()
        live_runtime._FEEDS.clear()
        self.driver = EngineDriver(self.driver.settings, self.engine, session_id=self.session_id)


@pytest.fixture
def live(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    venue = FakeVenue(api_key=API_KEY, api_secret=API_SECRET, weight_limit=1_000_000).start()
    gate_clock = [1_000.0]
    gate = RateGate(clock=lambda: gate_clock[0], sleep=lambda s: None)

    def client(settings):  # type: ignore[no-untyped-def]
        made = AsterDexClient.from_settings(settings, gate=gate)
        made._sleep = lambda s: None
        return made

    monkeypatch.setattr(live_runtime, "make_client", client)
    monkeypatch.setattr(live_runtime, "build_live_feed", functools.partial(
        live_runtime.build_live_feed, clock_ms=lambda: venue.market.now_ms))
    settings = live_settings(venue, database_url=sqlite_url, asterdex_streams=False,
                             asterdex_history_bars=400)
    engine = open_database(sqlite_url)
    session_id = service.create_session(engine, settings, mode="live").id
    state = Live(venue, engine, session_id, EngineDriver(settings, engine, session_id=session_id),
                 gate_clock)
    try:
        yield state
    finally:
        state.driver.stop()
        venue.close()


# ---------------------------------------------------------------------- the invariants
def problems(live: Live) -> list[str]:
    """Differences between the venue and the desk's books (empty when all is well)."""
    venue, out = live.venue, []
    with live.engine.connect() as conn:
        orders = dict(conn.execute(select(OrderRow.client_order_id, OrderRow.status)
                                   .where(OrderRow.session_id == live.session_id)).all())
        fills = list(conn.scalars(select(FillRow.trade_id).where(FillRow.session_id == live.session_id)))
        open_pos = conn.execute(select(PositionRow.symbol, PositionRow.side, PositionRow.quantity)
                                .where(PositionRow.session_id == live.session_id,
                                       PositionRow.status == "open")).all()
    with venue.lock:
        venue_cids = [o.client_id for o in venue.book.orders.values()]
        trades = {str(t["id"]) for t in venue.book.trades}
        held = {s: p.amount for s, p in venue.book.positions.items() if p.amount}
        stops = {}
        for o in venue.book.open_orders(None):
            if o.type == "STOP_MARKET" and o.reduce_only:
                stops[o.symbol] = max(stops.get(o.symbol, Decimal(0)), o.qty - o.executed)
    if len(venue_cids) != len(set(venue_cids)):
        out.append("the venue holds one client order id twice")
    strangers = [c for c in venue_cids if c not in orders and not c.startswith("manual")]
    if strangers:
        out.append(f"venue orders the desk never wrote: {strangers}")
    entries: dict[str, int] = {}
    for cid in venue_cids:
        if cid.endswith("-e"):
            entries[cid] = entries.get(cid, 0) + 1
    if len(fills) != len(set(fills)):
        out.append("a fill was booked twice")
    if set(fills) != trades:
        out.append(f"fills differ: venue-only {sorted(trades - set(fills))[:5]}, "
                   f"desk-only {sorted(set(fills) - trades)[:5]}")
    desk = {p.symbol: Decimal(repr(p.quantity)) * (1 if p.side == "LONG" else -1) for p in open_pos}
    if {s: round(float(a), 9) for s, a in desk.items()} != {s: round(float(a), 9) for s, a in held.items()}:
        out.append(f"positions differ: venue {held} desk {desk}")
    for symbol, amount in held.items():
        if stops.get(symbol, Decimal(0)) < abs(amount):
            out.append(f"{symbol}: {amount} held without a stop over the whole quantity")
    stuck = [c for c, s in orders.items() if s in ("PENDING", "UNKNOWN")]
    if stuck:
        out.append(f"orders left unresolved: {' '.join(stuck)}")
    return out


def run_checked(live: Live, ticks: int) -> int:
    """Tick, checking the invariants after every tick; returns how many ticks ran. A position
    may be without its whole stop at the end of one tick (an unknown placement), never two; an
    order whose answer was lost may stay unknown for one tick (it is asked again on the next,
    15 minutes later, past the 5-minute give-up), never two."""
    ran, naked, unknown = 0, set(), set()
    for _ in range(ticks):
        report = live.tick()[0]
        if report is None:
            continue
        ran += 1
        found = problems(live)
        now_naked = {p.split(":")[0] for p in found if "without a stop" in p}
        assert now_naked.isdisjoint(naked), f"naked for two ticks after tick {ran}: {found}"
        now_unknown = {c for p in found if p.startswith("orders left unresolved")
                       for c in p.split(": ")[1].split()}
        assert now_unknown.isdisjoint(unknown), f"unknown for two ticks after tick {ran}: {found}"
        assert [p for p in found if "without a stop" not in p
                and not p.startswith("orders left unresolved")] == [], f"after tick {ran}"
        naked, unknown = now_naked, now_unknown
    return ran


def positions_opened(live: Live) -> int:
    with live.engine.connect() as conn:
        return len(conn.scalars(select(PositionRow.id).where(
            PositionRow.session_id == live.session_id, PositionRow.status.in_(("open", "closed")))).all())


def last_error(live: Live) -> str | None:
    with live.engine.connect() as conn:
        return conn.scalar(select(SessionRow.last_error).where(SessionRow.id == live.session_id))


def log_reasons(live: Live, kind: str) -> list[str]:
    with live.engine.connect() as conn:
        return list(conn.scalars(select(CeoDecisionRow.reason).where(
            CeoDecisionRow.session_id == live.session_id, CeoDecisionRow.kind == kind)))


# ---------------------------------------------------------------------- tests
def test_a_live_session_trades_with_every_position_under_its_stop(live: Live) -> None:
    assert run_checked(live, 160) == 160
    assert positions_opened(live) > 0
    assert last_error(live) is None
    with live.engine.connect() as conn:
        row = conn.execute(select(SessionRow.mode, SessionRow.market_source, SessionRow.initial_capital)
                           .where(SessionRow.id == live.session_id)).one()
    assert tuple(row) == ("live", "asterdex", 10_000.0)  # the account's available balance


def open_positions(live: Live) -> list[PositionRow]:
    with live.engine.connect() as conn:
        return list(conn.execute(select(PositionRow).where(
            PositionRow.session_id == live.session_id, PositionRow.status == "open")).all())


def run_until_open(live: Live, limit: int = 200) -> PositionRow:
    for _ in range(limit):
        live.tick()
        found = open_positions(live)
        if found:
            return found[0]
    raise AssertionError("no position opened")


def test_order_faults_never_double_an_order_and_leave_nothing_naked(live: Live) -> None:
    """503 after executing, timeouts with and without execution, a 500 and -2019 on the next
    order placements, whatever orders they are (entries, stops, closes)."""
    faults = [
        live.venue.inject("POST order", "503", execute=True),
        live.venue.inject("POST order", "timeout", delay_s=3.0, execute=False),
        live.venue.inject("POST order", "timeout", delay_s=3.0, execute=True),
        live.venue.inject("POST order", "500", execute=False),
        live.venue.inject("POST order", "code", code=-2019, msg="Margin is insufficient."),
        live.venue.inject("POST order", "503", execute=False),
    ]
    ran = run_checked(live, 200)
    assert all(f.count == 0 for f in faults), "every fault should have hit an order"
    assert ran >= 190  # a tick may fail while state is unknown; the engine goes on
    assert live.tick()[0] is not None
    with live.engine.connect() as conn:
        statuses = list(conn.scalars(select(OrderRow.status)))
    assert "REJECTED" in statuses  # the -2019


def test_partial_fills_are_covered_for_the_whole_position(live: Live) -> None:
    with live.venue.lock:
        live.venue.book.fill_parts = 3  # every market order fills in three trades
        live.venue.book.fill_ratio = Decimal("0.6")  # and finds liquidity for 60% only
    assert run_checked(live, 160) == 160
    assert positions_opened(live) > 0
    with live.engine.connect() as conn:
        partial = conn.scalar(select(OrderRow.id).where(
            OrderRow.purpose == "entry", OrderRow.status == "EXPIRED", OrderRow.executed_qty > 0))
    assert partial is not None, "an entry should have been partly filled"


def test_rate_limits_back_off_for_the_whole_process_and_the_engine_resumes(live: Live) -> None:
    """A 429 with Retry-After, then a 418 ban: the shared gate stops every request (feed,
    account, orders) until the venue's Retry-After has passed, and the engine resumes after."""
    run_until_open(live)
    before = len(live.venue.requests)
    live.venue.inject("*", "429", retry_after=7)
    assert live.tick(advance=False) == [None]  # the 429 fails this tick...
    assert len(live.venue.requests) - before == 1  # ...after one request, not a storm
    live.gate_clock[0] += 5  # Retry-After has passed; the next request meets a 418 ban
    live.venue.inject("*", "418", retry_after=30)
    live.tick(advance=False)
    banned_at = len(live.venue.requests)
    for _ in range(5):  # 25 s of gate time inside the 30 s ban: idle, nothing sent
        assert live.tick(advance=False) == [None]
    assert len(live.venue.requests) == banned_at, "no request may go out during a ban"
    assert "AsterDex" in (last_error(live) or "") + (live.driver.idle_reason or "")
    live.venue._banned_until = 0.0  # the venue's 30 s have passed too (its clock is real time)
    assert run_checked(live, 20) == 20  # reconcile, then trade on
    assert problems(live) == []


def test_clock_skew_is_resynced_without_losing_a_tick(live: Live) -> None:
    run_until_open(live)
    live.venue.clock_skew_ms = 30_000  # the venue's clock jumps ahead of ours
    assert run_checked(live, 10) == 10
    assert any(status == 400 for _, _, status in live.venue.requests)  # the -1021 answers
    assert live.driver.desk is not None
    assert abs(live.driver.desk.exchange.client.clock_offset_ms - 30_000) < 5_000


def test_a_stop_filled_while_the_engine_was_down_is_booked_once(live: Live) -> None:
    pos = run_until_open(live)
    live.driver.stop()
    with live.venue.lock:
        stop = next(o for o in live.venue.book.open_orders(pos.symbol) if o.type == "STOP_MARKET")
    beyond = stop.stop_price * (Decimal("0.99") if pos.side == "LONG" else Decimal("1.01"))
    live.venue.set_price(pos.symbol, beyond)
    with live.venue.lock:
        trade = next(t for t in live.venue.book.trades if t["orderId"] == stop.order_id)
    live.restart()
    live.tick(advance=False)
    assert problems(live) == []
    with live.engine.connect() as conn:
        closed = conn.execute(select(PositionRow.status, PositionRow.close_reason,
                                     PositionRow.exit_price, PositionRow.fees)
                              .where(PositionRow.id == pos.id)).one()
        booked = conn.execute(select(FillRow.price, FillRow.fee, FillRow.position_id)
                              .where(FillRow.trade_id == str(trade["id"]))).all()
    assert closed.status == "closed" and closed.close_reason == "stop_loss"
    assert len(booked) == 1 and booked[0].position_id == pos.id
    assert booked[0].price == pytest.approx(float(trade["price"]))
    assert booked[0].fee == pytest.approx(abs(float(trade["commission"])))
    live.restart()
    live.tick(advance=False)  # a second restart books nothing again
    assert problems(live) == []


def trade_behind_the_desks_back(live: Live) -> str:
    """Stop the engine, open a position on the venue that no agent holds (someone trading the
    account by hand), restart and tick once; returns the position's symbol."""
    live.tick(2)
    live.driver.stop()
    held = {p.symbol for p in open_positions(live)}
    symbol = next(s for s in ("SOLUSDT", "BTCUSDT", "ETHUSDT") if s not in held)
    client = live_runtime.make_client(live.driver.settings)
    client.set_leverage(symbol, 5)
    qty = client.filters(symbol).round_qty(Decimal(200) / client.price(symbol))
    client.place_order(OrderRequest("manual-1", symbol, OrderSide.BUY, OrderType.MARKET, qty))
    client.close()
    live.restart()
    live.tick(advance=False)
    return symbol


def test_a_restart_with_a_position_the_store_does_not_know(live: Live) -> None:
    symbol = trade_behind_the_desks_back(live)
    with live.venue.lock:
        assert live.venue.book.positions[symbol].amount == 0  # closed by reconciliation
    notes = [r for r in log_reasons(live, "reconcile") if "no agent owns" in r]
    assert notes and symbol in notes[0]
    # the foreign trades are on the venue's books, and now on the desk's, owned by no agent
    assert problems(live) == []


def cancel_stops_at_venue(live: Live, symbol: str) -> None:
    """Cancel the symbol's resting stops directly on the fake venue's book."""
    with live.venue.lock:
        for order in live.venue.book.open_orders(symbol):
            if order.type == "STOP_MARKET":
                live.venue.book.cancel(order, live.venue.now_ms())


def test_a_stop_missing_after_a_restart_is_replaced_and_the_naked_time_logged(live: Live) -> None:
    pos = run_until_open(live)
    live.driver.stop()
    cancel_stops_at_venue(live, pos.symbol)  # someone cancels the stop while the engine is down
    live.venue.advance_market(M15)  # time passes
    live.restart()
    live.tick(advance=False)
    assert problems(live) == []
    notes = [r for r in log_reasons(live, "coverage") if r.startswith(pos.symbol)]
    assert notes and "stop re-placed over the whole" in notes[-1] and "naked for" in notes[-1]
    with live.engine.connect() as conn:
        naked = conn.execute(select(PositionRow.naked_ms, PositionRow.naked_since_ms)
                             .where(PositionRow.id == pos.id)).one()
    assert naked.naked_since_ms is None and naked.naked_ms >= M15


def test_the_dead_man_switch_spares_the_stops_of_open_positions(live: Live) -> None:
    live.driver.settings = live.driver.settings.model_copy(update={"asterdex_deadman_seconds": 60})
    live.restart()
    pos = run_until_open(live)
    live.tick(advance=False)
    armed = dict(live.venue.countdowns)
    assert pos.symbol not in armed, "a symbol holding a position must not be armed"
    assert armed, "symbols without a position are armed"
    live.driver.stop()  # the engine dies: the countdown lapses
    fired = live.venue.run_countdowns(live.venue.now_ms() + 61_000)
    assert pos.symbol not in fired
    with live.venue.lock:
        assert any(o.type == "STOP_MARKET" for o in live.venue.book.open_orders(pos.symbol))


def test_a_position_grown_at_the_venue_is_adopted_and_covered_whole(live: Live) -> None:
    pos = run_until_open(live)
    live.driver.stop()
    client = live_runtime.make_client(live.driver.settings)
    from core.models import OrderRequest, OrderSide, OrderType

    side = OrderSide.BUY if pos.side == "LONG" else OrderSide.SELL
    extra = client.filters(pos.symbol).round_qty(Decimal(repr(pos.quantity)))
    client.place_order(OrderRequest("manual-2", pos.symbol, side, OrderType.MARKET, extra))
    client.close()
    live.restart()
    live.tick(advance=False)
    assert problems(live) == []  # the venue's size is the desk's, under one stop for all of it
    [now] = [p for p in open_positions(live) if p.id == pos.id]
    assert now.quantity == pytest.approx(pos.quantity * 2)


def test_a_stopped_session_releases_its_feed_and_venue_client(live: Live) -> None:
    run_until_open(live)
    scope = live.engine.url.render_as_string(hide_password=True)
    held = [k for k in live_runtime._EXCHANGES if k[:2] == (scope, live.session_id)]
    assert held and [k for k in live_runtime._FEEDS if k[:2] == (scope, live.session_id)]
    exchange = live_runtime._EXCHANGES[held[0]]
    service.stop_session(live.engine, live.driver.settings, live.session_id)
    for _ in range(5):
        live.tick()
        with live.engine.connect() as conn:
            if conn.scalar(select(SessionRow.status).where(SessionRow.id == live.session_id)) == "stopped":
                break
    assert not [k for k in live_runtime._EXCHANGES if k[:2] == (scope, live.session_id)]
    assert not [k for k in live_runtime._FEEDS if k[:2] == (scope, live.session_id)]
    assert exchange.client.http._client.is_closed  # the HTTP connections are closed
    assert problems(live) == []


def test_a_halt_whose_close_is_refused_leaves_the_position_under_its_stop(live: Live) -> None:
    run_until_open(live)
    settings = live.driver.settings.model_copy(update={"drawdown_halt_pct": 1e-9})  # halts now
    live.driver.stop()
    live.driver = EngineDriver(settings, live.engine, session_id=live.session_id)
    refusals = live.venue.inject("POST order", "code", code=-1008, msg="Server is currently overloaded",
                                 count=len(open_positions(live)))
    live.tick(advance=False)
    with live.engine.connect() as conn:
        assert conn.scalar(select(SessionRow.status).where(SessionRow.id == live.session_id)) == "halted"
    assert refusals.count == 0 and open_positions(live)
    assert problems(live) == []  # every position still held rests under its stop
    for _ in range(3):  # the halt retries the closes; once they go through nothing is left
        live.tick(advance=False)
    assert open_positions(live) == [] and problems(live) == []
    with live.venue.lock:
        assert live.venue.book.open_orders(None) == []


def test_a_venue_error_during_the_restart_reconcile_is_retried_before_trading(live: Live) -> None:
    pos = run_until_open(live)
    live.driver.stop()
    cancel_stops_at_venue(live, pos.symbol)  # while the engine is down
    live.restart()
    live.venue.inject("GET positionRisk", "503")  # one transient error while reconciling
    assert live.tick(advance=False) == [None]  # no tick before the venue's truth is settled
    live.tick()
    assert problems(live) == []  # reconciled on the retry: the stop is back
    assert log_reasons(live, "coverage")


def test_an_entry_whose_answer_was_lost_and_that_executes_late_is_booked_and_covered(
        live: Live) -> None:
    live.venue.inject("POST order", "503", execute=False)  # the answer is lost, nothing executed yet
    entry = None
    for _ in range(200):
        live.tick()
        with live.engine.connect() as conn:
            entry = conn.execute(select(OrderRow).where(OrderRow.purpose == "entry")).first()
        if entry is not None:
            break
    assert entry is not None and entry.status == "UNKNOWN"  # not expired, not re-sent
    client = live_runtime.make_client(live.driver.settings)  # the venue records it late
    client.place_order(OrderRequest(entry.client_order_id, entry.symbol, OrderSide(entry.side),
                                    OrderType.MARKET, Decimal(repr(entry.quantity))))
    client.close()
    live.tick()
    assert problems(live) == []  # booked against its position, which rests under its stop
    with live.engine.connect() as conn:
        position = conn.execute(select(PositionRow.status, PositionRow.quantity)
                                .where(PositionRow.id == entry.position_id)).one()
        owners = conn.execute(select(FillRow.position_id).where(
            FillRow.client_order_id == entry.client_order_id)).all()
    assert position.status == "open" and position.quantity == entry.quantity
    assert owners == [(entry.position_id,)]


def test_a_traders_close_and_flatten_go_through_the_live_order_path(live: Live) -> None:
    """While the engine runs, a close waits for its next tick; once it is gone, a flatten is
    carried out by the command itself. Both are reduce-only market orders the desk wrote before
    sending, booked once, with the venue and the books agreeing after each."""
    pos = run_until_open(live)
    settings = live.driver.settings
    queued = service.close_position(live.engine, settings, pos.id)
    assert queued.status == "pending"
    live.tick(advance=False)
    done = service.manual_outcome(live.engine, queued.id)
    assert done.status == "done", done
    assert pos.id not in {p.id for p in open_positions(live)}
    assert problems(live) == []
    with live.engine.connect() as conn:
        close = conn.execute(select(OrderRow.type, OrderRow.reduce_only, OrderRow.status)
                             .where(OrderRow.position_id == pos.id,
                                    OrderRow.purpose == "user")).all()
    assert close == [("MARKET", True, "FILLED")]

    held = run_until_open(live)
    live.driver.stop()  # no engine trades the session now: the command acts itself
    with live.engine.connect() as conn:
        agent = conn.scalar(select(AgentRow.name).where(AgentRow.id == held.agent_id))
    flat = service.flatten_agent(live.engine, settings, live.session_id, agent)
    assert flat.status == "done", flat
    assert held.agent_id not in {p.agent_id for p in open_positions(live)}
    assert problems(live) == []
    assert any("user closes" in r for r in log_reasons(live, "manual"))
