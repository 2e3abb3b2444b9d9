"""The Market page's chart analysis and the Positions page's equity by agent and trade chart, as a
trader meets them: volume under the candles, the indicators the agents read (on at first where an
agent reads them, toggled per chart, with the strategies' thresholds), each agent's marks and
reasoning, per-agent equity, and a trade opened from the history drawn with its levels and its
tables under plain headers."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core import queries
from core.agents.params import MeanReversionParams, TrendParams
from core.store.db import open_database
from core.store.tables import PositionRow
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks

RAW_NAMES = {"venue_trade_id", "client_order_id", "qty", "price", "fee", "realized_pnl",
             "liquidation", "executed_qty", "avg_price", "stop_price", "purpose", "field", "before",
             "after", "at", "entry_price", "exit_price", "net_pnl", "take_profit", "reasoning"}


def seed(url: str, ticks: int = 400) -> tuple[Engine, int]:
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_start="2025-07-01")
    sid = create(engine, settings)
    run_ticks(engine, settings, ticks)
    return engine, sid


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(name)
    return at.run()


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in spec["data"] if t.get("name") == name)


def names(spec: dict[str, Any]) -> set[str]:
    return {t.get("name") for t in spec["data"]}


def values(drawn: Any) -> list[Any]:
    """A trace's data as a list: plotly writes numeric arrays as base64 (``bdata``), lists as JSON
    (NaN as null)."""
    if isinstance(drawn, dict) and "bdata" in drawn:
        found = np.frombuffer(base64.b64decode(drawn["bdata"]), dtype=np.dtype(drawn["dtype"]))
        return [None if isinstance(v, float) and math.isnan(v) else v for v in found.tolist()]
    return list(drawn)


def same(drawn: Any, expected: Any) -> bool:
    got = values(drawn)
    want = [None if isinstance(v, float) and math.isnan(v) else v for v in np.asarray(expected).tolist()]
    return len(got) == len(want) and all(
        (g is None and w is None) or (g is not None and w is not None and g == pytest.approx(w))
        for g, w in zip(got, want, strict=True))


def hlines(spec: dict[str, Any]) -> set[float]:
    return {round(s["y0"], 6) for s in spec["layout"].get("shapes", []) if s.get("y0") == s.get("y1")}


def axis_titles(spec: dict[str, Any]) -> list[str]:
    layout = spec["layout"]
    return [layout[k]["title"]["text"] for k in sorted(layout) if k.startswith("yaxis")
            and "title" in layout[k]]


def headers(shown: Any) -> dict[str, str]:
    config = json.loads(shown.proto.columns or "{}")
    return {column: c.get("label", column) for column, c in config.items()}


def marker_points(spec: dict[str, Any]) -> int:
    return sum(len(values(t["x"])) for t in spec["data"] if t.get("mode") == "markers")


# ---------------------------------------------------------------------- Market page
def test_market_chart_shows_volume_and_the_indicators_the_agents_read(app_env: str) -> None:
    engine, sid = seed(app_env)
    settings = make_settings(database_url=app_env)
    at = page("views/market.py")
    ok(at)
    chart = queries.chart_analysis(settings, engine, sid, "BTCUSDT", "1h", 300)
    (spec,) = figures(at)
    volume = trace(spec, "Volume")
    assert volume["type"] == "bar" and same(volume["y"], chart.candles["volume"])
    assert same(trace(spec, "2× 20-bar average")["y"], chart.candles["volume_breakout"])
    studies = at.button_group(key="mkt_studies_1h")
    default = [v.study.key for v in chart.studies if v.on_by_default]
    assert studies.value == default and "adx" not in default  # ADX is read on 4h, not here
    assert same(trace(spec, "EMA 20")["y"], chart.candles["ema_20"])
    assert same(trace(spec, "SMA20 − 2σ")["y"], chart.candles["bb_lower"])
    assert same(trace(spec, "ROC 10")["y"], chart.candles["roc_10"] * 100)
    assert axis_titles(spec) == ["USDT", "Volume", "z-score 20", "RSI 14", "ATR 14", "ROC 10 (%)"]
    z = MeanReversionParams().z_entry
    assert {z, -z, MeanReversionParams().rsi_oversold, MeanReversionParams().rsi_overbought} <= hlines(spec)
    assert TrendParams().adx_min not in hlines(spec)

    studies.set_value(["adx"]).run()  # one toggle: the candles, volume and ADX with its filter line
    ok(at)
    (spec,) = figures(at)
    assert "EMA 20" not in names(spec) and "RSI 14" not in names(spec)
    assert axis_titles(spec) == ["USDT", "Volume", "ADX 14"]
    assert same(trace(spec, "ADX 14")["y"], chart.candles["adx_14"])
    assert hlines(spec) == {TrendParams().adx_min}

    at.radio(key="mkt_interval").set_value("4h").run()  # each interval keeps its own choice
    ok(at)
    assert at.button_group(key="mkt_studies_4h").value == ["ema_20_50", "adx"]
    at.radio(key="mkt_interval").set_value("1h").run()
    assert at.button_group(key="mkt_studies_1h").value == ["adx"]
    guide = " ".join(m.value for m in at.main.markdown)
    assert "**ADX 14** — read by no agent on this interval · also TrendMaster Alpha on 4h" in guide
    assert "**z-score 20** — read by Mean Reversion Pro" in guide
    engine.dispose()


def test_market_chart_marks_each_agents_trades_with_its_reasoning(app_env: str) -> None:
    engine, sid = seed(app_env)
    settings = make_settings(database_url=app_env)
    at = page("views/market.py")
    ok(at)
    chart = queries.chart_analysis(settings, engine, sid, "BTCUSDT", "1h", 300)
    lo, hi = chart.span_ms
    trades = chart.trades
    (spec,) = figures(at)
    traded = list(dict.fromkeys(trades["agent"]))
    assert len(traded) >= 2
    assert {t["name"] for t in spec["data"] if t.get("legendgroup") in traded} == set(traded)
    assert sum(1 for t in spec["data"] if t.get("showlegend") and t.get("name") in traded) == len(traded)
    entries = trades[trades["opened_ms"].between(lo, hi)]
    exits = trades[(trades["status"] == "closed") & trades["closed_ms"].between(lo, hi)]
    assert marker_points(spec) == len(entries) + len(exits)
    first = entries.iloc[0]
    entry_trace = next(t for t in spec["data"] if t.get("mode") == "markers"
                       and t["name"] == first["agent"] and first["entry_price"] in values(t["y"]))
    hover = entry_trace["customdata"][values(entry_trace["y"]).index(first["entry_price"])]
    words = str(first["reasoning"]).split()[:6]
    assert all(w.replace("<", "&lt;").replace(">", "&gt;") in hover[7] for w in words)
    stops = [t for t in spec["data"] if t.get("mode") == "lines" and t.get("line", {}).get("dash") == "dash"
             and t.get("name") in traded]
    assert {round(y, 6) for t in stops for y in values(t["y"]) if y is not None} == \
        {round(p, 6) for p in chart.levels["price"]}

    table = next(d for d in at.dataframe if d.value.columns[0] == "Trade #")
    assert sorted(table.value["Trade #"]) == sorted(trades["trade_id"])
    assert not set(table.value.columns) & RAW_NAMES
    by_id = table.value.set_index("Trade #")
    for t in trades.itertuples():
        assert by_id.loc[t.trade_id, "Why (the agent's reasoning)"] == t.reasoning
    assert headers(table)["Net PnL"] == "Net PnL (USDT)"

    one = traded[0]
    at.multiselect(key="mkt_agents").set_value([one]).run()
    ok(at)
    (spec,) = figures(at)
    mine = trades[trades["agent"] == one]
    assert {t["name"] for t in spec["data"] if t.get("legendgroup") in traded} == {one}
    assert marker_points(spec) == int(mine["opened_ms"].between(lo, hi).sum()) + int(
        ((mine["status"] == "closed") & mine["closed_ms"].between(lo, hi)).sum())
    assert set(next(d for d in at.dataframe if d.value.columns[0] == "Trade #").value["Agent"]) == {one}

    at.multiselect(key="mkt_agents").set_value([]).run()
    ok(at)
    (spec,) = figures(at)
    assert marker_points(spec) == 0
    assert any("no trade of the chosen agents" in c.value for c in at.main.caption)

    held = queries.open_positions(engine, sid)
    assert not held.empty, "the seed ends with an open position"
    symbol = held["symbol"].iloc[0]
    on_it = queries.chart_analysis(settings, engine, sid, symbol, "1h", 300).trades
    open_id = int(on_it.loc[on_it["status"] == "open", "trade_id"].iloc[0])
    at.multiselect(key="mkt_agents").set_value(queries.agent_names(engine, sid))
    at.radio(key="mkt_symbol").set_value(symbol).run()
    ok(at)
    table = next(d for d in at.dataframe if d.value.columns[0] == "Trade #")
    still_open = table.value[table.value["Trade #"] == open_id].iloc[0]
    assert still_open["Closed (UTC)"] == "open" and still_open["Close reason"] == "–"
    assert math.isnan(still_open["Net PnL"]) and math.isnan(still_open["Exit"])
    text = table.value.select_dtypes(exclude="number").astype(object).to_numpy().ravel()
    assert not {str(v) for v in text} & {"None", "nan", "NaT", "<NA>"}
    assert table.proto.placeholder == "–"
    engine.dispose()


# ---------------------------------------------------------------------- Positions page
def test_positions_page_shows_equity_by_agent(app_env: str) -> None:
    engine, sid = seed(app_env)
    at = page("views/positions.py")
    ok(at)
    curves = queries.agent_equity_curves(engine, sid)["curves"]
    spec = next(f for f in figures(at) if any(t.get("name") == "TrendMaster Alpha" for t in f["data"]))
    agents = queries.agent_names(engine, sid)
    for name in agents:
        assert same(trace(spec, name)["y"], curves.loc[curves["agent"] == name, "equity"])
    at.selectbox(key="tr_agent").set_value(agents[1]).run()
    ok(at)
    spec = next(f for f in figures(at) if f["layout"].get("yaxis", {}).get("title", {}).get("text")
                == "equity (USDT)")
    assert names(spec) - {"Rebalance"} == {agents[1]}
    assert any(m.value == f"**Equity by agent** · {agents[1]}" for m in at.main.markdown)
    engine.dispose()


def test_a_trade_opened_from_the_history_draws_its_candles_and_levels(app_env: str) -> None:
    engine, sid = seed(app_env)
    settings = make_settings(database_url=app_env)
    # a stopped trade that also rested a take-profit (trend and momentum rest a trailing stop
    # instead, whose moving trigger is not drawn as a level)
    with engine.connect() as conn:
        trade_id = int(conn.scalar(select(PositionRow.id).where(
            PositionRow.session_id == sid, PositionRow.close_reason == "stop_loss",
            PositionRow.take_profit.is_not(None)).order_by(PositionRow.closed_ms.desc()).limit(1)))
    chart = queries.trade_chart(settings, engine, sid, trade_id)
    assert chart is not None
    at = page("views/positions.py")
    at.number_input(key="chain_trade").set_value(trade_id).run()
    ok(at)
    spec = next(f for f in figures(at) if f["data"][0]["type"] == "candlestick")
    t = chart.trades.iloc[0]
    assert spec["data"][0]["name"] == f"{t['symbol']} {chart.interval}"
    assert len(values(spec["data"][0]["x"])) == len(chart.candles)
    points = [tr for tr in spec["data"] if tr.get("mode") == "markers"]
    assert [y for tr in points for y in values(tr["y"])] == [t["entry_price"], t["exit_price"]]
    # the levels (dashed, with their hover text); a band study's dashed lines carry none
    dashed = {tr["line"]["color"]: tr for tr in spec["data"]
              if tr.get("line", {}).get("dash") == "dash" and "text" in tr}
    stop = dashed[next(c for c in dashed if dashed[c]["text"][0].startswith(f"{t['agent']} stop"))]
    assert t["stop_price"] in values(stop["y"]) and t["take_profit"] in [
        y for tr in dashed.values() for y in values(tr["y"])]
    assert any(s.get("type") == "rect" for s in spec["layout"]["shapes"])  # the span it was open
    assert at.button_group(key=f"pick_studies_{trade_id}").value == [v.study.key for v in chart.studies if v.on_by_default]

    tables = {tuple(d.value.columns): d for d in at.dataframe}
    fills = next(d for c, d in tables.items() if c[0] == "Time (UTC)")
    orders = next(d for c, d in tables.items() if c[0] == "Placed (UTC)")
    for shown in (fills, orders):
        assert not set(shown.value.columns) & RAW_NAMES, list(shown.value.columns)
    assert headers(fills)["Fee"] == "Fee (USDT)" and headers(fills)["Gross PnL"] == "Gross PnL (USDT)"
    assert headers(orders)["Average fill"] == "Average fill price"
    assert "stop-loss" in set(orders.value["Purpose"]) and "entry" in set(orders.value["Purpose"])
    assert fills.value["Price"].tolist() == pytest.approx(
        queries.trade_chain(engine, sid, trade_id)["fills"]["price"].tolist())
    changes = [d for d in at.dataframe if list(d.value.columns) == ["Field", "Proposed", "Decided"]]
    for d in changes:
        assert not set(d.value["Field"]) & RAW_NAMES
    engine.dispose()
