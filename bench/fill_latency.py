"""How long a fill made at the venue waits before the desk has booked it: user stream vs polling.

    python bench/fill_latency.py              # 5 stop fills per mode
    python bench/fill_latency.py --fills 10 --tick-seconds 2

Runs a live session's engine (scheduler, feed, agents, CEO, execution) against the loopback fake
venue twice: with the user data stream (the stream wakes the engine, which books at once) and
with REST polling only (``ASTERDEX_STREAMS=false``: the fill waits for the next interval tick).
Each round opens a position, moves the venue's price through its resting stop, and measures from
the moment the venue executed the stop to the moment the desk's store holds the booked fill.
Prints the median and the worst per mode; the stream's target is under one second. The figures
are loopback, not the internet: the stream's number is the desk's own delay.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from core import service  # noqa: E402
from core.desk import live_runtime  # noqa: E402
from core.desk.scheduler import EngineDriver  # noqa: E402
from core.exchanges.asterdex_client import AsterDexClient  # noqa: E402
from core.exchanges.asterdex_ratelimit import RateGate  # noqa: E402
from core.models import INTERVAL_MS  # noqa: E402
from core.store.db import open_database  # noqa: E402
from core.store.tables import FillRow, PositionRow  # noqa: E402
from tests.fake_venue import FakeVenue  # noqa: E402
from tests.live_support import API_KEY, API_SECRET, live_settings  # noqa: E402

M15 = INTERVAL_MS["15m"]


def run(mode: str, fills: int, tick_seconds: float, folder: Path) -> list[float]:
    """Seconds from each venue stop fill to its booked row, in ``mode`` "stream" or "polling"."""
    venue = FakeVenue(api_key=API_KEY, api_secret=API_SECRET, weight_limit=10**9).start()
    gate = RateGate(sleep=lambda s: None)

    def client(settings: Any) -> AsterDexClient:
        return AsterDexClient.from_settings(settings, gate=gate)

    live_runtime.make_client = client  # type: ignore[assignment]
    live_runtime.build_live_feed = functools.partial(  # type: ignore[assignment]
        BUILD_FEED, clock_ms=lambda: venue.market.now_ms)
    url = f"sqlite:///{folder / f'{mode}.db'}"
    streams = mode == "stream"
    settings = live_settings(venue, database_url=url, asterdex_streams=streams,
                             asterdex_ws_url=venue.ws_url, asterdex_history_bars=400,
                             tick_seconds=tick_seconds)
    engine = open_database(url)
    session_id = service.create_session(engine, settings, mode="live").id
    driver = EngineDriver(settings, engine, session_id=session_id)
    driver.start()
    waits: list[float] = []
    try:
        while len(waits) < fills:
            pos = open_position(venue, driver, engine, session_id)
            with venue.lock:
                stop = next(o for o in venue.book.open_orders(pos.symbol) if o.type == "STOP_MARKET")
            if streams:
                stream_up(driver)
            beyond = stop.stop_price * (Decimal("0.99") if pos.side == "LONG" else Decimal("1.01"))
            started = time.perf_counter()
            venue.set_price(pos.symbol, beyond)
            with venue.lock:
                trade_id = str(next(t["id"] for t in venue.book.trades if t["orderId"] == stop.order_id))
            while not booked(engine, trade_id):
                if time.perf_counter() - started > 10 * tick_seconds + 30:
                    raise SystemExit(f"{mode}: the fill was never booked")
                time.sleep(0.002)
            waits.append(time.perf_counter() - started)
    finally:
        driver.stop()
        live_runtime.release_session(engine, session_id)
        engine.dispose()
        venue.close()
    return waits


def open_position(venue: FakeVenue, driver: EngineDriver, engine: Any, session_id: int) -> Any:
    """Step the market (one 15-minute bar per tick) until the agents hold a position."""
    for _ in range(400):
        with engine.connect() as conn:
            found = conn.execute(select(PositionRow.id, PositionRow.symbol, PositionRow.side).where(
                PositionRow.session_id == session_id, PositionRow.status == "open")).first()
        if found is not None:
            return found
        venue.advance_market(M15)
        driver.tick()
    raise SystemExit("no position opened in 400 bars")


def stream_up(driver: EngineDriver) -> None:
    """Wait until the session's user stream is connected, then tick once (its gap poll)."""
    deadline = time.monotonic() + 60
    while True:
        exchanges = list(live_runtime._EXCHANGES.values())
        if exchanges and exchanges[0].user_stream is not None and exchanges[0].user_stream.connected:
            break
        if time.monotonic() > deadline:
            raise SystemExit("the user stream never connected")
        time.sleep(0.05)
    driver.tick()


def booked(engine: Any, trade_id: str) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(FillRow.id).where(FillRow.trade_id == trade_id)) is not None


BUILD_FEED = live_runtime.build_live_feed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=5)
    parser.add_argument("--tick-seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("stream", "polling"):
            waits = run(mode, args.fills, args.tick_seconds, Path(folder))
            print(f"{mode:8} venue fill -> booked: median {statistics.median(waits) * 1000:7.1f} ms, "
                  f"worst {max(waits) * 1000:7.1f} ms over {len(waits)} stop fills "
                  f"(engine tick every {args.tick_seconds:g} s)")


if __name__ == "__main__":
    main()
