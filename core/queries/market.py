"""Market views: the session's symbols and candles as its engine sees them.

The Market page and the CLI read the session's own feed positioned at the session's engine time
(replay: recorded candles up to the engine clock; a session on AsterDex's market data: the venue's
REST data, one feed per session reused for ``LIVE_FEED_TTL_S`` so a page render and its 15 s
refreshes do not reload the candle history on every call), and overlay the desk's entries and exits
on the candles. Kept apart because it builds a feed through the runtime, which the other read-model
modules never need.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from core.config import Settings
from core.models import INTERVAL_MS
from core.queries.common import _iso
from core.store.tables import AgentRow, PositionRow

# ---------------------------------------------------------------------- market
MARKET_COLUMNS = ["symbol", "price", "change_24h_pct", "high_24h", "low_24h", "volume_24h",
                  "funding_rate", "time"]
CANDLE_COLUMNS = ["time", "open_time_ms", "open", "high", "low", "close", "volume"]
MARKER_COLUMNS = ["time", "ts_ms", "price", "side", "agent", "kind", "realized_pnl", "trade_id"]
MAX_MARKERS = 1000


LIVE_FEED_TTL_S = 10.0
_live_feeds: dict[tuple[str, int], tuple[float, Any]] = {}
_live_lock = threading.Lock()


def _session_feed(settings: Settings, engine: Engine, session_id: int | None) -> tuple[int, Any]:
    """The session's id and its feed positioned at its engine time (replay), or its recent live
    feed (AsterDex market data)."""
    from core.desk.runtime import build_feed  # local: the runtime imports the whole desk
    from core.queries.session import resolve_session

    row = resolve_session(engine, session_id)
    if row.market_source != "asterdex":
        return row.id, build_feed(settings, row)
    key, now = (settings.asterdex_base_url, row.id), time.monotonic()
    with _live_lock:
        for stale in [k for k, (at, _) in _live_feeds.items() if now - at >= LIVE_FEED_TTL_S]:
            del _live_feeds[stale]
        if key in _live_feeds:
            return row.id, _live_feeds[key][1]
    feed = build_feed(settings, row)
    with _live_lock:
        _live_feeds[key] = (now, feed)
    return row.id, feed


def market_overview(settings: Settings, engine: Engine, session_id: int | None) -> pd.DataFrame:
    """Price, 24 h change/high/low/volume and funding of the session's symbols at the session's
    engine time (replay: the recorded candles up to the engine clock; funding is None there)."""
    _, feed = _session_feed(settings, engine, session_id)
    rows = []
    for symbol in feed.symbols:
        t = feed.ticker(symbol)
        rows.append({"symbol": t.symbol, "price": t.price, "change_24h_pct": t.change_24h_pct,
                     "high_24h": t.high_24h, "low_24h": t.low_24h, "volume_24h": t.volume_24h,
                     "funding_rate": t.funding_rate, "time": _iso(t.time_ms)})
    return pd.DataFrame(rows, columns=MARKET_COLUMNS)


def market_candles(settings: Settings, engine: Engine, session_id: int | None, symbol: str,
                   interval: str = "1h", limit: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``limit`` closed candles of ``symbol`` up to engine time, and the desk's entries
    and exits on it inside the candles' time range (newest ``MAX_MARKERS`` of each), for markers.
    An exit's ``realized_pnl`` is net of fees and funding; an entry's is None."""
    sid, feed = _session_feed(settings, engine, session_id)
    raw = feed.candles(symbol, interval, limit)
    candles = pd.DataFrame({
        "time": pd.to_datetime(raw["open_time_ms"].astype("int64"), unit="ms", utc=True),
        "open_time_ms": raw["open_time_ms"].astype("int64"),
        **{c: raw[c].astype(float) for c in ("open", "high", "low", "close", "volume")},
    }, columns=CANDLE_COLUMNS)
    if candles.empty:
        return candles, pd.DataFrame(columns=MARKER_COLUMNS)
    lo = int(candles["open_time_ms"].iloc[0])
    hi = int(candles["open_time_ms"].iloc[-1]) + INTERVAL_MS[interval]
    base = [PositionRow.session_id == sid, PositionRow.symbol == symbol]
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    cols = (PositionRow.id, AgentRow.name, PositionRow.side)
    with engine.connect() as conn:
        entries = conn.execute(
            select(*cols, PositionRow.opened_ms, PositionRow.entry_price)
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(*base, PositionRow.status.in_(("open", "closed")), PositionRow.entry_price > 0,
                   PositionRow.opened_ms >= lo, PositionRow.opened_ms <= hi)
            .order_by(PositionRow.opened_ms.desc()).limit(MAX_MARKERS)
        ).all()
        exits = conn.execute(
            select(*cols, PositionRow.closed_ms, PositionRow.exit_price, net.label("pnl"))
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(*base, PositionRow.status == "closed", PositionRow.exit_price.is_not(None),
                   PositionRow.closed_ms >= lo, PositionRow.closed_ms <= hi)
            .order_by(PositionRow.closed_ms.desc()).limit(MAX_MARKERS)
        ).all()
    marks = [{"ts_ms": r.opened_ms, "price": r.entry_price, "side": r.side, "agent": r.name,
              "kind": "entry", "realized_pnl": None, "trade_id": r.id} for r in entries]
    marks += [{"ts_ms": r.closed_ms, "price": r.exit_price, "side": r.side, "agent": r.name,
               "kind": "exit", "realized_pnl": round(float(r.pnl), 2), "trade_id": r.id} for r in exits]
    frame = pd.DataFrame(marks, columns=MARKER_COLUMNS[1:])
    frame.insert(0, "time", pd.to_datetime(frame["ts_ms"].astype("int64"), unit="ms", utc=True))
    return candles, frame.sort_values("ts_ms", kind="stable").reset_index(drop=True)
