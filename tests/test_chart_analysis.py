"""Chart analysis and per-agent equity: the indicator values drawn are the very numbers the agents
read at the time (and the ones they quote in their reasoning), the threshold lines are the
strategies' constants, the marks sit at the positions' fills and the protective orders' prices and
times, a trade's chart covers the trade, and the equity curves are the stored snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, or_, select

from core import indicators, queries
from core.agents import llm_prompts as prompts
from core.agents import trend
from core.agents.common import num, pct
from core.agents.params import MeanReversionParams, MomentumParams, ScalperParams, TrendParams
from core.agents.roster import ROSTER
from core.config import Settings
from core.desk import live_runtime
from core.feeds.replay import load_replay_data, resample
from core.models import INTERVAL_MS
from core.queries import chart as chart_module
from core.queries.studies import BY_STUDY, agent_reads, decision_interval, feed_columns
from core.store.db import open_database
from core.store.tables import (
    AgentRow,
    CeoDecisionRow,
    EquitySnapshotRow,
    FillRow,
    OrderRow,
    PositionRow,
    ProposalRow,
)
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks
from tests.test_live_engine import Live, live, positions_opened  # noqa: F401  (the live fixture)

START = "2025-07-01"
TICKS = 640  # 160 hours of 15m: entries by trend, momentum, scalper and arbitrage, a rebalance
# (600 until momentum rested a trailing stop: its first rebalance moved past 600 ticks)
INTERVALS = ("15m", "1h", "4h")


class Seeded:
    def __init__(self, engine: Engine, settings: Settings, session_id: int) -> None:
        self.engine, self.settings, self.id = engine, settings, session_id

    def feed(self, now_ms: int | None = None):  # type: ignore[no-untyped-def]
        """The session's feed (the one its agents trade on), moved to ``now_ms`` if given."""
        _, feed = queries._session_feed(self.settings, self.engine, self.id)
        if now_ms is not None:
            feed.seek(now_ms)
        return feed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    url = f"sqlite:///{tmp_path_factory.mktemp('chart') / 'desk.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_start=START)
    sid = create(engine, settings)
    run_ticks(engine, settings, TICKS)
    yield Seeded(engine, settings, sid)
    engine.dispose()


def _row_at(candles: pd.DataFrame, open_ms: int) -> pd.Series:
    found = candles[candles["open_time_ms"] == open_ms]
    assert len(found) == 1, f"no candle opening at {open_ms}"
    return found.iloc[0]


def _signal_bar(candles: pd.DataFrame, interval: str, at_ms: int) -> pd.Series:
    """The latest bar of ``interval`` closed at ``at_ms``: the one an agent deciding then read."""
    closed = candles[candles["open_time_ms"] + INTERVAL_MS[interval] <= at_ms]
    return closed.iloc[-1]


# ---------------------------------------------------------------------- the agents' numbers
@pytest.mark.parametrize("interval", INTERVALS)
def test_indicator_values_are_what_the_agents_read_at_each_bar(seeded: Seeded, interval: str) -> None:
    chart = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "BTCUSDT", interval, 120)
    candles = chart.candles
    assert len(candles) == 120
    step = INTERVAL_MS[interval]
    # the agents' MarketView at the close of each sampled bar serves that bar's features
    for i in [*range(0, 120, 17), 119]:
        row = candles.iloc[i]
        close_ms = int(row["open_time_ms"]) + step
        seen = seeded.feed(close_ms).features("BTCUSDT", interval)
        assert seen is not None and seen.open_time_ms == int(row["open_time_ms"])
        for col in feed_columns():
            expected = seen[col]
            if np.isnan(expected):
                assert np.isnan(row[col]), col
            else:
                assert row[col] == expected, (col, i)


@pytest.mark.parametrize("interval", INTERVALS)
def test_indicator_values_are_core_indicators_over_the_whole_history(seeded: Seeded, interval: str) -> None:
    """Computed by core.indicators over everything before the window, not over the window alone
    (an EMA or ADX restarted at the window's first bar would read differently)."""
    chart = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "ETHUSDT", interval, 80)
    data = load_replay_data(seeded.settings.replay_data_dir, seeded.settings.replay_interval,
                            ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    base = data.frames["ETHUSDT"]
    frame = base if interval == data.base_interval else resample(base, INTERVAL_MS[interval])
    cols = indicators.compute(frame)
    at = {int(t): k for k, t in enumerate(frame["open_time_ms"])}
    idx = [at[int(t)] for t in chart.candles["open_time_ms"]]
    for col in feed_columns():
        np.testing.assert_array_equal(chart.candles[col].to_numpy(), cols[col][idx], err_msg=col)
    restarted = indicators.compute(frame.iloc[idx[0]:idx[-1] + 1].reset_index(drop=True))
    assert not np.allclose(restarted["ema_50"][60:], chart.candles["ema_50"].to_numpy()[60:])


def _entries(seeded: Seeded, key: str) -> list[tuple[str, int, str]]:
    """(symbol, decision tick, reasoning) of the agent's entries."""
    with seeded.engine.connect() as conn:
        rows = conn.execute(
            select(PositionRow.symbol, ProposalRow.tick_ms, ProposalRow.reasoning)
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .join(CeoDecisionRow, CeoDecisionRow.id == PositionRow.decision_id)
            .join(ProposalRow, ProposalRow.id == CeoDecisionRow.proposal_id)
            .where(PositionRow.session_id == seeded.id, AgentRow.key == key)
            .order_by(PositionRow.id)).all()
    return [(r.symbol, int(r.tick_ms), r.reasoning) for r in rows]


def test_each_entry_quotes_the_values_its_chart_draws(seeded: Seeded) -> None:
    """At every entry, the bar the agent decided on shows on its chart the numbers its reasoning
    quotes, and the condition its rule tested holds there: what a trader reads is why it acted."""
    base = seeded.settings.replay_interval
    checked: dict[str, int] = {}
    charts: dict[tuple[str, str], pd.DataFrame] = {}

    def bars(symbol: str, interval: str) -> pd.DataFrame:
        if (symbol, interval) not in charts:
            charts[symbol, interval] = queries.chart_analysis(
                seeded.settings, seeded.engine, seeded.id, symbol, interval, 1000).candles
        return charts[symbol, interval]

    for key in ("trend", "momentum", "mean_reversion", "scalper"):
        interval = decision_interval(key, base)
        assert interval is not None
        for symbol, tick, why in _entries(seeded, key):
            row = _signal_bar(bars(symbol, interval), interval, tick)
            if key == "trend":
                prev = bars(symbol, interval).loc[row.name - 1]
                gap, before = row["ema_20"] - row["ema_50"], prev["ema_20"] - prev["ema_50"]
                assert trend.cross_side(before, gap) is not None  # the cross is on this bar
                assert f"EMA20 {num(row['ema_20'])} vs EMA50 {num(row['ema_50'])}" in why
                assert f"ATR14 {num(row['atr_14'])}" in why
                slow = _signal_bar(bars(symbol, TrendParams().filter_interval), TrendParams().filter_interval, tick)
                assert f"4h ADX {slow['adx_14']:.1f}" in why and slow["adx_14"] >= TrendParams().adx_min
            elif key == "momentum":
                edge = "high" if row["close"] > row["hh_20"] else "low"
                level = row["hh_20"] if edge == "high" else row["ll_20"]
                assert f"close {num(row['close'])} broke the 20-bar {edge} {num(level)}" in why
                assert f"ROC10 {pct(row['roc_10'])}" in why
                assert row["volume"] > row["volume_breakout"]  # the breakout volume line
            elif key == "mean_reversion":
                assert f"z-score {row['zscore_20']:+.2f}, RSI14 {row['rsi_14']:.1f}" in why
                assert not row["bb_lower"] < row["close"] < row["bb_upper"]  # beyond the band
            else:
                prev = bars(symbol, interval).loc[row.name - 1]
                assert f"RSI7 {prev['rsi_7']:.1f} → {row['rsi_7']:.1f}" in why
                assert f"EMA5 {num(row['ema_5'])} vs EMA13 {num(row['ema_13'])}" in why
            checked[key] = checked.get(key, 0) + 1
    assert {"trend", "momentum", "scalper"} <= set(checked), checked


def test_each_agent_reads_what_its_model_prompt_quotes(seeded: Seeded) -> None:
    """The chart's idea of which columns an agent reads on which timeframe is the prompt's (the
    values the strategy's rule reads), agent by agent."""
    feed = seeded.feed()
    for spec in ROSTER:
        quoted = prompts.indicators(spec, feed)
        per_symbol = quoted["legs"] if spec.key == "arbitrage" else quoted
        by_tf = per_symbol["BTCUSDT"]
        assert isinstance(by_tf, dict)
        prompt_reads = {tf: {c for c in cols if not c.endswith("_prev")} for tf, cols in by_tf.items()}
        ours = {tf: set(cols) for tf, cols in agent_reads(spec.key, feed.base_interval).items()}
        assert ours == prompt_reads, spec.key


@pytest.mark.parametrize(("interval", "on"), [
    ("15m", {"ema_5_13", "rsi_7", "atr"}),  # the scalper, on the feed's fastest bars
    ("1h", {"ema_20_50", "bollinger", "range_20", "zscore", "rsi_14", "atr", "roc"}),
    ("4h", {"ema_20_50", "adx"}),  # the trend agent's filter
])
def test_studies_start_on_where_an_agent_reads_them(seeded: Seeded, interval: str, on: set[str]) -> None:
    chart = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "SOLUSDT", interval, 50)
    assert {v.study.key for v in chart.studies if v.on_by_default} == on
    adx = next(v for v in chart.studies if v.study.key == "adx")
    if interval == "4h":
        assert adx.read_here == ["TrendMaster Alpha"]
    else:
        assert adx.read_here == [] and adx.read_elsewhere == ["TrendMaster Alpha on 4h"]
    assert chart.volume.read_here == (["Momentum Hunter"] if interval == "1h" else [])


def test_threshold_lines_are_the_strategies_constants(seeded: Seeded) -> None:
    z = MeanReversionParams().z_entry
    assert {v for v, _ in BY_STUDY["zscore"].levels} == {z, 0.0, -z}
    assert {v for v, _ in BY_STUDY["rsi_14"].levels} == {MeanReversionParams().rsi_oversold,
                                                        MeanReversionParams().rsi_overbought}
    assert {v for v, _ in BY_STUDY["rsi_7"].levels} == {ScalperParams().rsi_long_trigger,
                                                       ScalperParams().rsi_short_trigger}
    assert [v for v, _ in BY_STUDY["adx"].levels] == [TrendParams().adx_min]
    c = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "BTCUSDT", "1h", 300).candles
    np.testing.assert_allclose(c["bb_upper"], c["sma_20"] + z * c["std_20"])
    np.testing.assert_allclose(c["volume_breakout"], MomentumParams().volume_multiple * c["vol_sma_20"])
    # a close beyond the band is exactly a z-score beyond the mean-reversion entry
    clear = c[(c["zscore_20"].abs() - z).abs() > 1e-6].dropna(subset=["zscore_20"])
    assert ((clear["close"] <= clear["bb_lower"]) == (clear["zscore_20"] <= -z)).all()
    assert ((clear["close"] >= clear["bb_upper"]) == (clear["zscore_20"] >= z)).all()
    assert (clear["zscore_20"].abs() >= z).any()  # the window has stretches to compare


# ---------------------------------------------------------------------- marks
def _fills(engine: Engine, position_id: int, entry: bool) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            select(FillRow.ts_ms, FillRow.price, FillRow.quantity)
            .join(OrderRow, OrderRow.client_order_id == FillRow.client_order_id)
            .where(FillRow.position_id == position_id,
                   (OrderRow.purpose == "entry") if entry else (OrderRow.purpose != "entry"))
            .order_by(FillRow.ts_ms, FillRow.id)).all()
    return pd.DataFrame(rows, columns=["ts_ms", "price", "qty"])


def test_marks_sit_at_the_fills_and_the_resting_orders(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    chart = queries.chart_analysis(seeded.settings, e, sid, "BTCUSDT", "15m", 400)
    assert chart.span_ms is not None
    lo, hi = chart.span_ms
    with e.connect() as conn:
        touching = set(conn.scalars(select(PositionRow.id).where(
            PositionRow.session_id == sid, PositionRow.symbol == "BTCUSDT",
            PositionRow.status.in_(("open", "closed")), PositionRow.opened_ms <= hi,
            or_(PositionRow.closed_ms.is_(None), PositionRow.closed_ms >= lo))))
        orders = pd.DataFrame(conn.execute(
            select(OrderRow.position_id, OrderRow.purpose, OrderRow.stop_price, OrderRow.status,
                   OrderRow.created_ms, OrderRow.updated_ms)
            .where(OrderRow.position_id.in_(touching),
                   OrderRow.purpose.in_(("stop_loss", "take_profit")))).all(),
            columns=["trade_id", "kind", "price", "status", "created_ms", "updated_ms"])
    assert len(touching) >= 5 and set(chart.trades["trade_id"]) == touching
    by_reason: dict[str, int] = {}
    for t in chart.trades.itertuples():
        entry = _fills(e, t.trade_id, entry=True)
        assert t.opened_ms == entry["ts_ms"].iloc[0]
        assert t.entry_price == pytest.approx(np.average(entry["price"], weights=entry["qty"]))
        levels = chart.levels[chart.levels["trade_id"] == t.trade_id]
        mine = orders[orders["trade_id"] == t.trade_id]
        assert len(levels) == len(mine) > 0  # every protective order it had, as one segment each
        for o in mine.itertuples():
            seg = levels[(levels["kind"] == o.kind) & (levels["price"] == o.price)].iloc[0]
            assert seg["from_ms"] == max(lo, o.created_ms)
            rested_until = o.updated_ms if o.status in ("FILLED", "CANCELED", "EXPIRED") else hi
            assert seg["to_ms"] == min(hi, rested_until)
        if t.status != "closed":
            assert (levels["to_ms"] == hi).all()  # still resting: to the chart's right edge
            continue
        exit_ = _fills(e, t.trade_id, entry=False)
        assert t.closed_ms == exit_["ts_ms"].iloc[-1]
        assert t.exit_price == pytest.approx(np.average(exit_["price"], weights=exit_["qty"]))
        if t.close_reason in ("stop_loss", "take_profit"):
            fired = levels[(levels["kind"] == t.close_reason) & (levels["status"] == "FILLED")]
            assert len(fired) == 1 and fired["to_ms"].iloc[0] == min(hi, t.closed_ms)
            booked = t.stop_price if t.close_reason == "stop_loss" else t.take_profit
            assert fired["price"].iloc[0] == booked
        by_reason[t.close_reason] = by_reason.get(t.close_reason, 0) + 1
    assert {"stop_loss", "agent"} <= set(by_reason), by_reason


def test_marks_of_a_window_are_only_the_trades_in_it(seeded: Seeded) -> None:
    wide = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "ETHUSDT", "15m", 600)
    narrow = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "ETHUSDT", "15m", 40)
    assert narrow.span_ms is not None
    lo, hi = narrow.span_ms
    inside = wide.trades[(wide.trades["opened_ms"] <= hi)
                         & (wide.trades["closed_ms"].isna() | (wide.trades["closed_ms"] >= lo))]
    assert sorted(narrow.trades["trade_id"]) == sorted(inside["trade_id"])
    assert len(narrow.trades) < len(wide.trades)
    assert (narrow.levels["from_ms"] >= lo).all() and (narrow.levels["to_ms"] <= hi).all()
    assert set(narrow.trades["symbol"]) <= {"ETHUSDT"}


def test_entries_carry_the_agents_reasoning_and_the_ceo_verdict(seeded: Seeded) -> None:
    chart = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, "SOLUSDT", "1h", 300)
    assert not chart.trades.empty
    for t in chart.trades.itertuples():
        chain = queries.trade_chain(seeded.engine, seeded.id, int(t.trade_id))
        assert chain is not None
        assert t.reasoning == chain["proposal"]["reasoning"]
        assert t.verdict == chain["decision"]["verdict"]
        if t.status == "closed":
            p = chain["position"]
            assert t.net_pnl == pytest.approx(p["realized_pnl"] - p["fees"] + p["funding"], abs=0.006)


# ---------------------------------------------------------------------- a trade's chart
def _trade(seeded: Seeded, key: str, status: str = "closed") -> int:
    with seeded.engine.connect() as conn:
        found = conn.scalar(
            select(PositionRow.id).join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(PositionRow.session_id == seeded.id, AgentRow.key == key,
                   PositionRow.status == status).order_by(PositionRow.id).limit(1))
    assert found is not None, f"no {status} {key} trade in the seed"
    return int(found)


@pytest.mark.parametrize(("key", "interval"), [("trend", "1h"), ("scalper", "15m")])
def test_a_trade_chart_covers_the_trade_on_its_agents_timeframe(seeded: Seeded, key: str,
                                                                interval: str) -> None:
    trade_id = _trade(seeded, key)
    chart = queries.trade_chart(seeded.settings, seeded.engine, seeded.id, trade_id)
    assert chart is not None and chart.interval == interval and chart.note is None
    step = INTERVAL_MS[interval]
    t = chart.trades.iloc[0]
    assert list(chart.trades["trade_id"]) == [trade_id]
    opens = chart.candles["open_time_ms"]
    assert opens.diff().dropna().eq(step).all()
    assert int(opens.iloc[0]) == int(t["opened_ms"]) - chart_module.TRADE_PAD_BARS * step
    engine_time = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, str(t["symbol"]),
                                         interval, 1).span_ms
    assert engine_time is not None
    last_close = int(opens.iloc[-1]) + step
    until = min(engine_time[1], int(t["closed_ms"]) + chart_module.TRADE_PAD_BARS * step)
    assert last_close - step < until <= last_close  # the last bar holds the end of the context
    assert int(opens.iloc[0]) <= int(t["opened_ms"]) and int(t["closed_ms"]) <= last_close
    assert set(chart.levels["trade_id"]) == {trade_id}
    assert set(chart.levels["kind"]) >= {"stop_loss"}
    on = {v.study.key for v in chart.studies if v.on_by_default}
    reads = set(agent_reads(key, seeded.settings.replay_interval)[interval])
    assert on and all(set(BY_STUDY[k].reads) & reads for k in on)
    # the same numbers as the Market page's chart of that interval
    market = queries.chart_analysis(seeded.settings, seeded.engine, seeded.id, str(t["symbol"]),
                                    interval, 1000).candles.set_index("open_time_ms")
    mine = chart.candles.set_index("open_time_ms")
    pd.testing.assert_frame_equal(mine[list(feed_columns())], market.loc[mine.index, list(feed_columns())])


def test_an_open_trade_chart_runs_to_engine_time_with_its_stop_resting(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        trade_id = conn.scalar(select(PositionRow.id).where(PositionRow.session_id == seeded.id,
                                                            PositionRow.status == "open").limit(1))
    assert trade_id is not None, "the seed ends with an open position"
    chart = queries.trade_chart(seeded.settings, seeded.engine, seeded.id, int(trade_id))
    assert chart is not None and chart.span_ms is not None
    stop = chart.levels[chart.levels["kind"] == "stop_loss"]
    assert len(stop) >= 1 and stop["to_ms"].iloc[-1] == chart.span_ms[1]
    assert stop["status"].iloc[-1] == "NEW"


def test_a_trade_chart_of_an_unknown_trade_is_none(seeded: Seeded) -> None:
    assert queries.trade_chart(seeded.settings, seeded.engine, seeded.id, 10**9) is None
    # a trade of another session is not this one's
    assert queries.trade_chart(seeded.settings, seeded.engine, seeded.id + 1,
                               _trade(seeded, "trend")) is None


def test_a_long_trade_is_drawn_on_a_coarser_interval() -> None:
    hour = INTERVAL_MS["1h"]
    limit = chart_module.TRADE_MAX_BARS
    assert chart_module._trade_interval(0, limit * hour, "1h", "15m") == "1h"
    assert chart_module._trade_interval(0, (limit + 1) * hour, "1h", "15m") == "4h"
    assert chart_module._trade_interval(0, 10 * hour, "15m", "15m") == "15m"
    assert chart_module._trade_interval(0, 10 * hour, "15m", "1h") == "1h"  # never below the feed


# ---------------------------------------------------------------------- equity by agent
def test_agent_equity_curves_are_the_stored_snapshots(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    with e.connect() as conn:
        stored = pd.DataFrame(conn.execute(
            select(AgentRow.name, EquitySnapshotRow.ts_ms, EquitySnapshotRow.equity)
            .join(AgentRow, AgentRow.id == EquitySnapshotRow.agent_id)
            .where(EquitySnapshotRow.session_id == sid)).all(), columns=["agent", "ts_ms", "equity"])
        rebalances = list(conn.scalars(select(CeoDecisionRow.ts_ms).where(
            CeoDecisionRow.session_id == sid, CeoDecisionRow.kind == "rebalance")))
        names = list(conn.scalars(select(AgentRow.name).where(AgentRow.session_id == sid)))
    whole = queries.agent_equity_curves(e, sid)
    curves = whole["curves"]
    assert set(curves["agent"]) == set(names) and len(curves) == len(stored) > 0
    merged = curves.merge(stored, on=["agent", "ts_ms"], suffixes=("", "_stored"))
    assert len(merged) == len(stored) and (merged["equity"] == merged["equity_stored"]).all()
    assert curves["ts_ms"].is_monotonic_increasing
    assert whole["rebalances"] == sorted(rebalances) and len(rebalances) >= 1

    per_agent = stored.groupby("agent").size().max()
    thin = queries.agent_equity_curves(e, sid, max_points=20)["curves"]
    for name, part in thin.groupby("agent"):
        mine = stored[stored["agent"] == name].sort_values("ts_ms")
        assert len(part) <= 21 < per_agent
        assert part["ts_ms"].iloc[0] == mine["ts_ms"].iloc[0]
        assert part["ts_ms"].iloc[-1] == mine["ts_ms"].iloc[-1]  # the latest is always shown
    one = queries.agent_equity_curves(e, sid, agents=[names[1]])["curves"]
    assert set(one["agent"]) == {names[1]} and len(one) == int((stored["agent"] == names[1]).sum())


def test_agent_equity_curves_of_a_new_session_are_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = open_database(url)
    try:
        sid = create(engine, make_settings(database_url=url))
        got = queries.agent_equity_curves(engine, sid)
        assert got["curves"].empty and got["rebalances"] == []
        assert list(got["curves"].columns) == queries.AGENT_EQUITY_COLUMNS
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- a live session
WINDOW_COLUMNS = ("sma_20", "std_20", "zscore_20", "hh_20", "ll_20", "vol_sma_20", "roc_10")


def test_a_live_session_charts_the_venues_bars_as_its_engine_reads_them(live: Live) -> None:  # noqa: F811
    """On AsterDex's market data the page reads a feed of its own over the venue's history: the
    bars and every windowed indicator are the engine's exactly, the smoothed ones (EMA, RSI, ATR,
    ADX, which remember their start) agree closely on the recent bars, and the marks are the
    session's positions."""
    for _ in range(240):
        live.tick()
        if positions_opened(live) >= 2:
            break
    with live.engine.connect() as conn:
        symbol = conn.scalar(select(PositionRow.symbol).where(
            PositionRow.session_id == live.session_id).order_by(PositionRow.id).limit(1))
    assert symbol is not None, "the live session never traded"
    chart = queries.chart_analysis(live.driver.settings, live.engine, live.session_id, symbol, "1h", 60)
    (engine_feed,) = live_runtime._FEEDS.values()
    seen = engine_feed.features(symbol, "1h")
    assert seen is not None and int(chart.candles["open_time_ms"].iloc[-1]) == seen.open_time_ms
    recent = chart.candles.tail(20)
    for col in ("open", "high", "low", "close", "volume", *WINDOW_COLUMNS):
        np.testing.assert_array_equal(recent[col].to_numpy(), seen.window(col, 20), err_msg=col)
    for col in ("ema_20", "rsi_14", "atr_14", "adx_14"):
        np.testing.assert_allclose(recent[col].to_numpy(), seen.window(col, 20), rtol=0.02, err_msg=col)
    with live.engine.connect() as conn:
        lo, hi = chart.span_ms or (0, 0)
        ids = set(conn.scalars(select(PositionRow.id).where(
            PositionRow.session_id == live.session_id, PositionRow.symbol == symbol,
            PositionRow.status.in_(("open", "closed")), PositionRow.opened_ms <= hi,
            or_(PositionRow.closed_ms.is_(None), PositionRow.closed_ms >= lo))))
    assert ids and set(chart.trades["trade_id"]) == ids
    assert set(chart.levels["trade_id"]) == ids  # every live position drawn with its stop
    trade = queries.trade_chart(live.driver.settings, live.engine, live.session_id, min(ids))
    assert trade is not None and not trade.candles.empty


def test_an_adopted_position_draws_its_booked_levels_and_says_it_has_no_reasoning(tmp_path: Path) -> None:
    """A position the desk adopted in a reconciliation has no proposal and, before its first
    protective order, no order rows: its booked stop and take-profit are drawn over its life."""
    from dashboard import analysis_figure

    url = f"sqlite:///{tmp_path / 'adopted.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_start=START)
    sid = create(engine, settings)
    run_ticks(engine, settings, 40)
    chart = queries.chart_analysis(settings, engine, sid, "SOLUSDT", "15m", 30)
    lo, hi = chart.span_ms or (0, 0)
    with engine.begin() as conn:
        agent = conn.scalar(select(AgentRow.id).where(AgentRow.session_id == sid, AgentRow.key == "trend"))
        conn.execute(PositionRow.__table__.insert().values(
            session_id=sid, agent_id=agent, symbol="SOLUSDT", side="LONG", status="open",
            quantity=3.0, entry_price=150.0, leverage=2, margin=225.0, stop_distance=0.02,
            stop_price=147.0, take_profit=156.0, opened_ms=lo + 10 * INTERVAL_MS["15m"]))
    chart = queries.chart_analysis(settings, engine, sid, "SOLUSDT", "15m", 30)
    adopted = chart.trades[chart.trades["entry_price"] == 150.0].iloc[0]
    assert adopted["verdict"] is None and adopted["reasoning"] is None
    levels = chart.levels[chart.levels["trade_id"] == adopted["trade_id"]].set_index("kind")
    assert levels.loc["stop_loss", "price"] == 147.0 and levels.loc["take_profit", "price"] == 156.0
    assert (levels["status"] == "booked").all() and (levels["to_ms"] == hi).all()
    assert (levels["from_ms"] == adopted["opened_ms"]).all()
    fig = analysis_figure(chart, [v.study.key for v in chart.studies if v.on_by_default])
    entry = next(t for t in fig.data if getattr(t, "mode", None) == "markers" and 150.0 in list(t.y))
    hover = entry.customdata[list(entry.y).index(150.0)]
    assert hover[6] == "–" and hover[7] == "no reasoning recorded"
    engine.dispose()
