"""Chart analysis: a symbol's candles with the indicator values the agents read on them and each
agent's entries, exits, stops and take-profits, so a trader can see why an agent acted.

Promises:

- **The agents' own numbers.** Indicator values are read from the session's feed at its engine
  time: the same ``Features`` arrays the agents are served, not a second computation that could
  drift from theirs. On replay that is ``core.indicators`` over the whole recorded history, so a
  bar's value is the one the agent read at that bar. A session on AsterDex's market data reads a
  feed of its own built by the same code over the venue's trailing history (``history_bars``
  base candles); its smoothed indicators (EMA, RSI, ATR, ADX) equal the engine's once both
  windows reach back further than the smoothing remembers. Threshold lines come from the
  strategies' constants (``core.queries.studies``).
- **Only the window shown.** The feed hands over the last bars of the window (array slices, the
  history is not recomputed) and the store is asked only for the trades that touch it.
- **Marks from the books.** Entries and exits are the positions' fills (opened/closed time, average
  price); stops and take-profits are the protective orders as they rested at the venue (from
  placement until filled, cancelled or expired), so a stop that moved draws as steps.

``chart_analysis`` serves the Market page (the last ``limit`` bars), ``trade_chart`` a trade
opened from the history (its bars with some context either side, on the timeframe its agent
decided on, coarser when the trade is long).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, or_, select

from core.agents.desk_params import DeskParams
from core.config import Settings
from core.errors import FeedError
from core.models import INTERVAL_MS
from core.queries.agent_params import session_params
from core.queries.common import _records
from core.queries.market import CANDLE_COLUMNS, MAX_MARKERS, _session_feed
from core.queries.studies import (
    DERIVED,
    Study,
    decision_interval,
    derived_columns,
    feed_columns,
    studies,
    study_readers,
    volume_study,
)
from core.store.tables import AgentRow, CeoDecisionRow, OrderRow, PositionRow, ProposalRow

TRADE_MARK_COLUMNS = [
    "trade_id", "agent", "agent_key", "symbol", "side", "status", "leverage", "opened_ms", "entry_time",
    "entry_price", "closed_ms", "exit_time", "exit_price", "close_reason", "net_pnl",
    "stop_price", "take_profit", "verdict", "reasoning",
]
LEVEL_COLUMNS = ["trade_id", "agent", "agent_key", "kind", "price", "from_ms", "to_ms",
                 "from_time", "to_time", "status"]
PROTECTIVE = ("stop_loss", "take_profit")
ENDED = ("FILLED", "CANCELED", "EXPIRED")  # a protective order rested until its last update
TRADE_PAD_BARS = 30  # bars of context either side of a trade
TRADE_MAX_BARS = 200  # the trade itself in at most this many bars (else a coarser interval)
CHART_INTERVALS = ("15m", "1h", "4h", "1d")


@dataclass(frozen=True, slots=True)
class StudyView:
    """A study as one chart shows it: who reads it here and elsewhere, and whether it starts on."""

    study: Study
    read_here: list[str]
    read_elsewhere: list[str]

    @property
    def on_by_default(self) -> bool:
        return bool(self.read_here)


@dataclass(slots=True)
class Chart:
    symbol: str
    interval: str
    candles: pd.DataFrame  # CANDLE_COLUMNS, every study column, the derived lines
    studies: list[StudyView]
    volume: StudyView
    trades: pd.DataFrame  # TRADE_MARK_COLUMNS: positions that touch the window
    levels: pd.DataFrame  # LEVEL_COLUMNS: stop and take-profit segments inside the window
    agents: list[str] = field(default_factory=list)  # the session's agents, roster order
    note: str | None = None

    @property
    def span_ms(self) -> tuple[int, int] | None:
        """First candle's open and last candle's close, or None without candles."""
        if self.candles.empty:
            return None
        return (int(self.candles["open_time_ms"].iloc[0]),
                int(self.candles["open_time_ms"].iloc[-1]) + INTERVAL_MS[self.interval])


def _time(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms.astype("Int64"), unit="ms", utc=True)


def _candles(feed: Any, symbol: str, interval: str, limit: int, params: DeskParams,
             before_ms: int | None = None) -> pd.DataFrame:
    """The last ``limit`` closed bars (those opening before ``before_ms`` when given) with every
    study column, sliced straight from the feed's arrays; threshold lines at ``params``'."""
    found = feed.features(symbol, interval)
    if found is None or limit <= 0:
        return pd.DataFrame(columns=[*CANDLE_COLUMNS, *feed_columns(), *DERIVED])
    raw = feed.candles(symbol, interval, limit)
    n = len(raw)
    opens = raw["open_time_ms"].to_numpy(dtype=np.int64)
    cut = n if before_ms is None else int(np.searchsorted(opens, before_ms, side="left"))
    cols = {c: np.asarray(found.window(c, n), dtype=float)[:cut] for c in feed_columns()}
    if any(len(v) != cut for v in cols.values()):  # the feed's candles and features disagree
        raise FeedError(f"{symbol} {interval}: the feed's candles and indicators are not aligned")
    cols.update(derived_columns(cols, params))
    frame = pd.DataFrame({
        "time": pd.to_datetime(opens[:cut], unit="ms", utc=True), "open_time_ms": opens[:cut],
        **{c: raw[c].to_numpy(dtype=float)[:cut] for c in ("open", "high", "low", "close", "volume")},
    })
    for name, values in cols.items():
        if name not in frame:
            frame[name] = values
    return frame


def _agents(engine: Engine, session_id: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.key, r.name) for r in conn.execute(
            select(AgentRow.key, AgentRow.name).where(AgentRow.session_id == session_id)
            .order_by(AgentRow.id))]


def _studies(agents: list[tuple[str, str]], base_interval: str, interval: str,
             params: DeskParams) -> tuple[list[StudyView], StudyView]:
    readers = study_readers(agents, base_interval, interval, params)
    views = [StudyView(s, *readers[s.key]) for s in studies(params)]
    volume = volume_study(params)
    return views, StudyView(volume, *readers[volume.key])


def _trades(engine: Engine, cond: list[Any]) -> pd.DataFrame:
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    stmt = (
        select(PositionRow.id, AgentRow.name, AgentRow.key, PositionRow.symbol, PositionRow.side,
               PositionRow.status,
               PositionRow.leverage, PositionRow.opened_ms, PositionRow.entry_price,
               PositionRow.closed_ms, PositionRow.exit_price, PositionRow.close_reason,
               net.label("net"), PositionRow.stop_price, PositionRow.take_profit,
               CeoDecisionRow.verdict, ProposalRow.reasoning)
        .join(AgentRow, AgentRow.id == PositionRow.agent_id)
        .outerjoin(CeoDecisionRow, CeoDecisionRow.id == PositionRow.decision_id)
        .outerjoin(ProposalRow, ProposalRow.id == CeoDecisionRow.proposal_id)
        .where(PositionRow.status.in_(("open", "closed")), PositionRow.entry_price > 0, *cond)
        .order_by(PositionRow.opened_ms.desc(), PositionRow.id.desc()).limit(MAX_MARKERS)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    raw = ["trade_id", "agent", "agent_key", "symbol", "side", "status", "leverage", "opened_ms",
           "entry_price", "closed_ms", "exit_price", "close_reason", "net_pnl", "stop_price",
           "take_profit", "verdict", "reasoning"]
    frame = _records(rows, raw)
    frame["net_pnl"] = [None if s != "closed" else round(float(v), 2)
                        for s, v in zip(frame["status"], frame["net_pnl"], strict=True)]
    frame["entry_time"] = _time(frame["opened_ms"])
    frame["exit_time"] = _time(frame["closed_ms"])
    return frame[TRADE_MARK_COLUMNS].sort_values("opened_ms", kind="stable").reset_index(drop=True)


def _levels(engine: Engine, trades: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """Each protective order as the segment it rested over, clipped to [lo, hi]; a position
    without order rows of a kind (an adopted one) draws its booked level over its life."""
    if trades.empty:
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    ids = [int(i) for i in trades["trade_id"]]
    with engine.connect() as conn:
        orders = conn.execute(
            select(OrderRow.position_id, OrderRow.purpose, OrderRow.stop_price, OrderRow.status,
                   OrderRow.created_ms, OrderRow.updated_ms)
            .where(OrderRow.position_id.in_(ids), OrderRow.purpose.in_(PROTECTIVE),
                   OrderRow.stop_price.is_not(None), OrderRow.status != "REJECTED")
            .order_by(OrderRow.position_id, OrderRow.id)).all()
    by_trade = trades.set_index("trade_id")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for o in orders:
        seen.add((o.position_id, o.purpose))
        end = o.updated_ms if o.status in ENDED else hi
        rows.append({"trade_id": o.position_id, "kind": o.purpose, "price": float(o.stop_price),
                     "from_ms": o.created_ms, "to_ms": end, "status": o.status})
    for t in trades.itertuples():
        for kind, level in (("stop_loss", t.stop_price), ("take_profit", t.take_profit)):
            if (t.trade_id, kind) in seen or level is None or pd.isna(level) or not level > 0:
                continue
            end = int(t.closed_ms) if t.status == "closed" and pd.notna(t.closed_ms) else hi
            rows.append({"trade_id": t.trade_id, "kind": kind, "price": float(level),
                         "from_ms": int(t.opened_ms), "to_ms": end, "status": "booked"})
    frame = pd.DataFrame(rows, columns=["trade_id", "kind", "price", "from_ms", "to_ms", "status"])
    frame["from_ms"] = frame["from_ms"].clip(lower=lo).astype("int64")
    frame["to_ms"] = frame["to_ms"].clip(upper=hi).astype("int64")
    frame = frame[frame["from_ms"] <= frame["to_ms"]]
    frame.insert(1, "agent", frame["trade_id"].map(by_trade["agent"]))
    frame.insert(2, "agent_key", frame["trade_id"].map(by_trade["agent_key"]))
    frame["from_time"] = _time(frame["from_ms"])
    frame["to_time"] = _time(frame["to_ms"])
    return frame[LEVEL_COLUMNS].reset_index(drop=True)


def chart_analysis(settings: Settings, engine: Engine, session_id: int | None, symbol: str,
                   interval: str = "1h", limit: int = 300) -> Chart:
    """The last ``limit`` closed ``interval`` bars of ``symbol`` at the session's engine time,
    with the studies (on by default where an agent of the session reads them on this interval),
    the positions that touch the window and their stop and take-profit segments."""
    sid, feed = _session_feed(settings, engine, session_id)
    agents = _agents(engine, sid)
    params = session_params(engine, sid)  # the thresholds this session's agents compare with
    shown, volume = _studies(agents, feed.base_interval, interval, params)
    candles = _candles(feed, symbol, interval, limit, params)
    chart = Chart(symbol, interval, candles, shown, volume,
                  pd.DataFrame(columns=TRADE_MARK_COLUMNS), pd.DataFrame(columns=LEVEL_COLUMNS),
                  [name for _, name in agents])
    span = chart.span_ms
    if span is None:
        return chart
    lo, hi = span
    chart.trades = _trades(engine, [
        PositionRow.session_id == sid, PositionRow.symbol == symbol, PositionRow.opened_ms <= hi,
        or_(PositionRow.closed_ms.is_(None), PositionRow.closed_ms >= lo)])
    chart.levels = _levels(engine, chart.trades, lo, hi)
    return chart


def _trade_interval(start_ms: int, end_ms: int, decided: str, base: str) -> str:
    """The agent's decision timeframe, or the first coarser one that holds the trade in
    ``TRADE_MAX_BARS`` bars."""
    floor = max(INTERVAL_MS[decided], INTERVAL_MS[base])
    choices = [i for i in CHART_INTERVALS if INTERVAL_MS[i] >= floor] or [decided]
    for interval in choices:
        if (end_ms - start_ms) / INTERVAL_MS[interval] <= TRADE_MAX_BARS:
            return interval
    return choices[-1]


def trade_chart(settings: Settings, engine: Engine, session_id: int, trade_id: int) -> Chart | None:
    """One trade's candles from ``TRADE_PAD_BARS`` before its entry to as many after its exit
    (or to engine time while it is open), with its entry, exit, stop and take-profit and the
    studies its agent reads; None if the session has no such trade."""
    trades = _trades(engine, [PositionRow.session_id == session_id, PositionRow.id == trade_id])
    if trades.empty:
        return None
    t = trades.iloc[0]
    symbol, agent = str(t["symbol"]), str(t["agent"])
    sid, feed = _session_feed(settings, engine, session_id)
    agents = _agents(engine, sid)
    params = session_params(engine, sid)
    base = feed.base_interval
    decided = decision_interval(str(t["agent_key"]), base) or base
    opened = int(t["opened_ms"])
    latest = feed.features(symbol, base)
    now = latest.open_time_ms + INTERVAL_MS[base] if latest is not None else opened
    closed = int(t["closed_ms"]) if pd.notna(t["closed_ms"]) else now
    interval = _trade_interval(opened, closed, decided, base)
    step = INTERVAL_MS[interval]
    lo, hi = opened - TRADE_PAD_BARS * step, min(now, closed + TRADE_PAD_BARS * step)
    shown, volume = _studies([a for a in agents if a[1] == agent], base, interval, params)
    chart = Chart(symbol, interval, pd.DataFrame(columns=[*CANDLE_COLUMNS, *feed_columns(), *DERIVED]),
                  shown, volume, trades, pd.DataFrame(columns=LEVEL_COLUMNS),
                  [name for _, name in agents])
    last = feed.features(symbol, interval)
    if last is not None and last.open_time_ms >= lo:
        chart.candles = _candles(feed, symbol, interval, (last.open_time_ms - lo) // step + 1,
                                 params, hi)
    span = chart.span_ms
    if span is None:
        chart.note = f"The market data holds no {interval} candle of {symbol} around this trade."
        return chart
    if span[0] > opened:
        chart.note = (f"The market data starts after this trade opened: its {interval} candles "
                      f"begin {pd.Timestamp(span[0], unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC.")
    chart.levels = _levels(engine, trades, span[0], span[1])
    return chart
