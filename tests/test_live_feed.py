"""The live market feed against the fake venue's public endpoints, and a paper session on it.

The fake venue serves the bundled candles up to its market clock; the tests move that clock and
check what the feed promises: closed bars only, indicators from them as in the replay, each bar
reported once, now held short of a bar the venue has not served, REST polling said out loud.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from core import queries, service
from core.desk import live_runtime
from core.desk.scheduler import EngineDriver
from core.errors import FeedError
from core.feeds.asterdex import AsterdexFeed
from core.feeds.replay import ReplayFeed, load_replay_data
from core.models import INTERVAL_MS
from core.store.db import open_database
from core.store.tables import PositionRow, ProposalRow, SessionRow
from tests.conftest import make_settings
from tests.desk_helpers import count, venue_matches_store
from tests.fake_venue import FakeVenue
from tests.live_support import make_client

M15 = INTERVAL_MS["15m"]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    with FakeVenue(weight_limit=1_000_000) as v:
        yield v


def public_settings(venue: FakeVenue, **kw: object):  # type: ignore[no-untyped-def]
    return make_settings(asterdex_base_url=venue.url, asterdex_streams=False,
                         asterdex_history_bars=400, **kw)


@pytest.fixture
def market_clock(venue: FakeVenue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feeds built by the runtime read the fake market's clock (its server clock is wall time)."""
    original = live_runtime.build_live_feed
    monkeypatch.setattr(live_runtime, "build_live_feed",
                        functools.partial(original, clock_ms=lambda: venue.market.now_ms))


def test_feed_serves_closed_bars_and_the_same_indicators_as_the_replay(venue: FakeVenue) -> None:
    feed = AsterdexFeed(make_client(public_settings(venue)), SYMBOLS, "15m", history_bars=400,
                        clock_ms=lambda: venue.market.now_ms)
    now = feed.now_ms()
    assert now == venue.market.now_ms  # every bar up to the market clock has closed
    candles = feed.candles("BTCUSDT", "15m", 400)
    assert len(candles) == 400 and int(candles["open_time_ms"].iloc[-1]) + M15 <= now
    # the same closed bars through the replay: same closes, same indicator on the latest bar
    replay = ReplayFeed(load_replay_data(make_settings().replay_data_dir, "15m", SYMBOLS), start_ms=now)
    assert np.allclose(feed.closes("BTCUSDT", "15m", 50), replay.closes("BTCUSDT", "15m", 50))
    live_f, replay_f = feed.features("BTCUSDT", "1h"), replay.features("BTCUSDT", "1h")
    assert live_f is not None and replay_f is not None
    assert live_f.open_time_ms == replay_f.open_time_ms
    assert live_f["sma_20"] == pytest.approx(replay_f["sma_20"])
    assert feed.status.startswith("REST polling")


def test_step_reports_each_new_bar_once_and_holds_now_short_of_a_missing_bar(venue: FakeVenue) -> None:
    clock = {"now": venue.market.now_ms}
    feed = AsterdexFeed(make_client(public_settings(venue)), SYMBOLS, "15m", history_bars=200,
                        clock_ms=lambda: clock["now"])
    start = feed.now_ms()
    assert all(bars == [] for bars in feed.step().bars.values())
    venue.advance_market(2 * M15)
    clock["now"] += 2 * M15
    step = feed.step()
    assert [b.open_time_ms for b in step.bars["ETHUSDT"]] == [start, start + M15]
    assert step.now_ms == start + 2 * M15 and step.prices["ETHUSDT"] > 0
    assert all(bars == [] for bars in feed.step().bars.values())  # nothing new: nothing twice
    # the clock runs two bars ahead of the venue (which serves its forming bar, like the real
    # one): the bar that has closed arrives, now stops short of the one the venue has not served
    clock["now"] += 2 * M15
    held = feed.step()
    assert [b.open_time_ms for b in held.bars["ETHUSDT"]] == [start + 2 * M15]
    assert held.now_ms == start + 4 * M15 - 1
    venue.advance_market(M15)
    late = feed.step()
    assert [b.open_time_ms for b in late.bars["ETHUSDT"]] == [start + 3 * M15]
    assert late.now_ms == start + 4 * M15


def test_an_unknown_symbol_is_a_feed_error(venue: FakeVenue) -> None:
    feed = AsterdexFeed(make_client(public_settings(venue)), ("NOPEUSDT",), "15m",
                        clock_ms=lambda: venue.market.now_ms)
    with pytest.raises(FeedError):
        feed.now_ms()


@pytest.mark.usefixtures("market_clock")
def test_a_paper_session_runs_on_the_live_feed_against_the_public_endpoints(
        venue: FakeVenue, sqlite_url: str) -> None:
    settings = public_settings(venue, database_url=sqlite_url, market_source="asterdex")
    engine = open_database(sqlite_url)
    session_id = service.create_session(engine, settings).id
    driver = EngineDriver(settings, engine, session_id=session_id)
    try:
        for _ in range(200):  # 50 market hours, one 15m bar per tick
            venue.advance_market(M15)
            assert driver.tick() is not None, driver.idle_reason
    finally:
        driver.stop()
    with engine.connect() as conn:
        row = conn.execute(select(SessionRow.clock_ms, SessionRow.ticks, SessionRow.market_source,
                                  SessionRow.feed_status, SessionRow.last_error)).one()
    assert row.market_source == "asterdex" and row.ticks == 200 and row.last_error is None
    assert row.clock_ms == venue.market.now_ms
    assert row.feed_status.startswith("REST polling")
    assert count(engine, ProposalRow) > 0
    assert count(engine, PositionRow) > 0, "fifty hours of real candles should bring a trade"
    assert venue_matches_store(engine, session_id) == []
    signed = [r for r in venue.requests if r[1] not in
              ("time", "exchangeInfo", "klines", "premiumIndex", "ticker/price", "ticker/24hr")]
    assert signed == []  # a paper session never touches the account endpoints


def test_the_market_view_of_a_live_fed_session_loads_its_history_once_per_refresh(
        venue: FakeVenue, sqlite_url: str) -> None:
    settings = public_settings(venue, database_url=sqlite_url, market_source="asterdex")
    engine = open_database(sqlite_url)
    session_id = service.create_session(engine, settings).id

    def klines() -> int:
        return sum(1 for r in venue.requests if r[1] == "klines")

    before = klines()
    overview = queries.market_overview(settings, engine, session_id)
    candles, _ = queries.market_candles(settings, engine, session_id, "BTCUSDT", "1h", 50)
    loaded = klines() - before
    assert list(overview["symbol"]) == list(settings.symbol_list) and len(candles) == 50
    assert loaded > 0
    candles_again, _ = queries.market_candles(settings, engine, session_id, "BTCUSDT", "1h", 50)
    assert candles_again.equals(candles)
    assert klines() - before == loaded  # the page's second read reuses the feed it just built
