"""End to end with the user data stream: the engine trading a live session against the fake venue
with its websockets on, the driver woken by the stream between interval ticks.

The interval is an hour, so whatever is booked between the test's own ticks was booked because
the stream woke the engine. The stream's faults (dropped connection, expired key, duplicated,
reversed and lost events) are injected while the desk trades, and after every tick the desk must
agree with the venue: every venue trade booked once, the same positions, each under a stop.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from core import service
from core.desk import live_runtime
from core.desk.scheduler import EngineDriver
from core.exchanges.asterdex import AsterdexExchange
from core.exchanges.asterdex_client import AsterDexClient
from core.exchanges.asterdex_ratelimit import RateGate
from core.models import Fill
from core.store.db import open_database
from core.store.tables import FillRow, PositionRow, SessionRow
from tests.fake_venue import FakeVenue
from tests.live_support import API_KEY, API_SECRET, live_settings
from tests.test_live_engine import Live, open_positions, problems, run_until_open


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 90.0) -> None:
    """Wait on evidence; the deadline is generous so a loaded machine only makes it slower."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no evidence within {deadline_s:.0f} s of {what}")
        time.sleep(0.05)


@pytest.fixture
def streamed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
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
    settings = live_settings(venue, database_url=sqlite_url, asterdex_ws_url=venue.ws_url,
                             asterdex_history_bars=400, tick_seconds=3600,
                             asterdex_reconcile_seconds=3600)
    engine = open_database(sqlite_url)
    session_id = service.create_session(engine, settings, mode="live").id
    state = Live(venue, engine, session_id, EngineDriver(settings, engine, session_id=session_id),
                 gate_clock)
    state.driver.start()  # an hour's interval: between the test's ticks only the stream wakes it
    try:
        yield state
    finally:
        state.driver.stop()
        live_runtime.release_session(engine, session_id)
        venue.close()


def status_line(live: Live) -> str:
    with live.engine.connect() as conn:
        return conn.scalar(select(SessionRow.feed_status).where(SessionRow.id == live.session_id)) or ""


def stream_in_use(live: Live) -> None:
    """Tick until the session says fills come from the stream, then once more (that tick's
    REST poll covers anything from before the connection)."""
    def up() -> bool:
        live.tick(advance=False)
        return status_line(live).endswith("fills: user-data stream")
    wait_for(up, "the session to report the user data stream")
    streams = live.venue.streams
    assert streams is not None
    wait_for(lambda: streams.user_listeners() == 1, "the venue to register the listener")
    live.tick(advance=False)


def test_a_stop_filled_at_the_venue_is_booked_from_the_stream_between_ticks(
        streamed: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    live = streamed
    polled: list[str] = []  # the symbols whose trades a sync read over REST
    read = AsterdexExchange._new_trades

    def counted(self: AsterdexExchange, symbol: str) -> list[Fill]:
        polled.append(symbol)
        return read(self, symbol)
    monkeypatch.setattr(AsterdexExchange, "_new_trades", counted)
    pos = run_until_open(live)
    stream_in_use(live)
    assert status_line(live) == "websocket · fills: user-data stream"
    with live.venue.lock:
        stop = next(o for o in live.venue.book.open_orders(pos.symbol) if o.type == "STOP_MARKET")
    polls = len(polled)
    live.venue.set_price(pos.symbol, stop.stop_price * (
        Decimal("0.99") if pos.side == "LONG" else Decimal("1.01")))

    def closed() -> bool:
        with live.engine.connect() as conn:
            return conn.scalar(select(PositionRow.close_reason).where(PositionRow.id == pos.id)) \
                == "stop_loss"
    wait_for(closed, "the stop's fill to be booked without a tick of the test's")
    with live.venue.lock:
        trade = next(t for t in live.venue.book.trades if t["orderId"] == stop.order_id)
    with live.engine.connect() as conn:
        booked = conn.execute(select(FillRow.price, FillRow.position_id).where(
            FillRow.trade_id == str(trade["id"]))).all()
    assert len(booked) == 1 and booked[0].position_id == pos.id
    assert booked[0].price == pytest.approx(float(trade["price"]))
    assert len(polled) == polls  # the stream booked it, not a REST poll
    assert problems(live) == []


FAULTS: list[tuple[str, Callable[[FakeVenue], object]]] = [
    ("drop", lambda v: v.drop_user_stream()),
    ("expire", lambda v: v.expire_listen_key()),
    ("duplicate", lambda v: setattr(v, "user_duplicate", 6)),
    ("reverse", lambda v: setattr(v, "user_reverse", 3)),
    ("lose", lambda v: setattr(v, "user_lose", 2)),
]


def test_stream_faults_leave_every_trade_booked_once_and_every_position_covered(
        streamed: Live) -> None:
    live = streamed
    stream_in_use(live)
    faults = itertools.cycle(FAULTS)
    applied: list[str] = []
    for i in range(90):
        if i % 3 == 1:
            name, fault = next(faults)
            fault(live.venue)
            applied.append(name)
        if i % 9 == 5:  # a stop filled at the venue while the faults play
            for pos in open_positions(live):
                with live.venue.lock:
                    stops = [o for o in live.venue.book.open_orders(pos.symbol)
                             if o.type == "STOP_MARKET"]
                if stops:
                    live.venue.set_price(pos.symbol, stops[0].stop_price * (
                        Decimal("0.99") if pos.side == "LONG" else Decimal("1.01")))
        assert live.tick()[0] is not None, f"tick {i} failed"
        wait_for(lambda: problems(live) == [], f"the desk to agree with the venue after tick {i} "
                 f"(faults so far: {applied})")
    assert {"drop", "expire", "duplicate", "reverse", "lose"} <= set(applied)
    with live.engine.connect() as conn:
        fills = conn.scalar(select(FillRow.id).where(FillRow.session_id == live.session_id))
        stopped = conn.scalar(select(PositionRow.id).where(
            PositionRow.session_id == live.session_id, PositionRow.close_reason == "stop_loss"))
    assert fills is not None and stopped is not None, "the run should trade and stop out"
    assert live.venue.listen_keys_made >= 2  # the expired key was replaced
    stream_in_use(live)
    assert problems(live) == []
