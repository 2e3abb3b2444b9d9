"""The CEO log, Positions & trades and Market pages render on an empty and on a trading database,
their filters change what they show, and their CSV downloads hold exactly the filtered rows.

Downloads pass a callable as ``data`` (built only on click). AppTest does not click downloads, so a
spy on Streamlit's media file manager keeps each registered callable; the tests call it as the
click would and compare the CSV with the query the filters map to."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, insert
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core import queries
from core.store.db import open_database
from core.store.tables import CeoDecisionRow
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks

PAGES = ["views/ceo.py", "views/positions.py", "views/market.py"]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]




@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], Any]]:
    """file id → the callable a download button registered for its data."""
    captured: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def spy(self: MediaFileManager, data_callable: Callable[[], Any], *args: Any, **kwargs: Any) -> str:
        file_id = original(self, data_callable, *args, **kwargs)
        captured[file_id] = data_callable
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return captured


# From 2025-07-01 the first rebalance comes after 500-600 ticks: before it too few agents have the
# 3 closed trades a score needs.
REBALANCED_TICKS = 640  # 600 until momentum rested a trailing stop: its first rebalance moved past 600


def seed(url: str, start: str, ticks: int = 300) -> tuple[Engine, int]:
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_start=start)
    session_id = create(engine, settings)
    run_ticks(engine, settings, ticks)
    return engine, session_id


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(name)
    return at.run()


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def button(at: AppTest, prefix: str) -> Any:
    return next(b for b in at.get("download_button") if b.label.startswith(prefix))


def download(at: AppTest, downloads: dict[str, Callable[[], Any]], prefix: str) -> str:
    data = downloads[button(at, prefix).proto.deferred_file_id]()
    return data.decode() if isinstance(data, bytes) else data


def table(at: AppTest, first_column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if d.value.columns[0] == first_column)


def shown_to_users(frame: pd.DataFrame) -> set[str]:
    return {str(v) for v in frame.astype(object).to_numpy().ravel()}


def element(at: AppTest, first_column: str) -> Any:
    return next(d for d in at.dataframe if d.value.columns[0] == first_column)


def no_raw_missing(shown: Any) -> None:
    """Text cells never read "None" or "nan"; a missing number shows the table's placeholder."""
    text = shown.value.select_dtypes(exclude="number")
    assert not shown_to_users(text) & {"None", "nan", "<NA>", "NaN"}
    assert shown.proto.placeholder == "–"


def numeric(frame: pd.DataFrame, columns: list[str]) -> None:
    """Number columns hold numbers (so they right-align and sort as numbers), not text."""
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    assert not text, {c: frame[c].head(3).tolist() for c in text}


def headers(shown: Any) -> dict[str, str]:
    """Column → the header its column_config shows (units included)."""
    config = json.loads(shown.proto.columns or "{}")
    return {column: c.get("label", column) for column, c in config.items()}


TRADE_NUMBERS = ["Leverage", "Entry", "Exit", "Net PnL", "Held", "Qty", "Margin", "Gross PnL",
                 "Fees", "Funding", "Trade #"]
LOG_NUMBERS = ["Leverage", "Proposed leverage", "Margin", "Proposed margin"]


def csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


# ---------------------------------------------------------------------- render
@pytest.mark.parametrize("name", PAGES)
def test_page_on_an_empty_database_says_what_to_do(app_env: str, name: str) -> None:
    at = page(name)
    ok(at)
    assert any("No session yet" in i.value and "Session page" in i.value for i in at.main.info)
    assert at.get("page_link")


@pytest.mark.parametrize("name", PAGES)
def test_page_on_a_trading_session(app_env: str, name: str) -> None:
    engine, sid = seed(app_env, "2025-09-01")
    at = page(name)
    ok(at)
    if name == "views/ceo.py":
        labels = [m.label for m in at.main.metric]
        assert labels == ["Approved", "Modified", "Rejected", "Pauses", "Rebalances", "Halts"]
        verdicts = queries.ceo_verdict_counts(engine, sid)
        assert [m.value for m in at.main.metric][:3] == [f"{verdicts[v]:,}" for v in queries.VERDICTS]
        shown = element(at, "Time (UTC)")
        log = shown.value
        assert len(log) == min(50, queries.ceo_log_count(engine, sid))
        no_raw_missing(shown)
        numeric(log, LOG_NUMBERS)
    elif name == "views/positions.py":
        shown = element(at, "Closed (UTC)")
        history = shown.value
        assert len(history) == min(50, queries.trades_count(engine, sid)) > 0
        assert set(history["Agent"]) <= set(queries.agent_names(engine, sid))
        numeric(history, TRADE_NUMBERS)
        trades = queries.trades(engine, sid, limit=50)
        assert history["Held"].tolist() == pytest.approx((trades["duration_s"] / 3600).tolist())
        assert history["Fees"].tolist() == pytest.approx(trades["fees"].tolist())
        assert history["Entry"].tolist() == pytest.approx(trades["entry_price"].tolist())
        assert headers(shown)["Held"] == "Held (h)" and headers(shown)["Fees"] == "Fees (USDT)"
        assert history["Net PnL"].tolist() == pytest.approx(trades["net_pnl"].tolist())
        gross = json.loads(shown.proto.columns)["Gross PnL"]
        assert gross["label"] == "Gross PnL (USDT)" and "before fees and funding" in gross["help"]
        summary = queries.trade_summary(engine, sid)
        labels = {c.value: c for c in at.main.caption}
        assert "Gross PnL" in labels and "Realized PnL" not in labels  # as the CLI says
        assert "before fees and funding" in labels["Gross PnL"].help
        assert any(m.value == f"**:{'green' if summary['realized_pnl'] > 0 else 'red'}["
                   f"{summary['realized_pnl']:+,.2f} USDT]**" for m in at.main.markdown)
        no_raw_missing(shown)
        assert button(at, "Download filtered").label == f"Download filtered ({queries.trades_count(engine, sid)} trades)"
    else:
        assert [m.label for m in at.main.metric] == SYMBOLS
        assert len(at.get("plotly_chart")) == 1
    engine.dispose()


# ---------------------------------------------------------------------- CEO log
def test_ceo_filters_change_the_table_and_the_downloads(app_env: str, downloads: dict) -> None:
    engine, sid = seed(app_env, "2025-07-01", REBALANCED_TICKS)  # rejects, modifies, a rebalance
    at = page("views/ceo.py")
    ok(at)
    total = queries.ceo_log_count(engine, sid)
    assert len(table(at, "Time (UTC)")) == min(50, total)
    everything = download(at, downloads, "Download whole log")
    assert everything == queries.ceo_log_csv(engine, sid)
    assert len(csv(everything)) == total

    at.selectbox(key="ceo_verdict").set_value("reject").run()
    ok(at)
    rejects = queries.ceo_log_count(engine, sid, verdict="reject")
    log = table(at, "Time (UTC)")
    assert len(log) == rejects > 0
    assert all("reject" in v for v in log["Verdict"])
    assert button(at, "Download filtered").label == f"Download filtered ({rejects} decisions)"
    filtered = download(at, downloads, "Download filtered")
    assert filtered == queries.ceo_log_csv(engine, sid, **queries.ceo_filters(verdict="reject"))
    assert set(csv(filtered)["verdict"]) == {"reject"} and len(csv(filtered)) == rejects
    assert download(at, downloads, "Download whole log") == everything  # unfiltered stays whole

    at.selectbox(key="ceo_verdict").set_value("approve").run()
    log = table(at, "Time (UTC)")
    assert all("approve" in v for v in log["Verdict"])
    assert log["Proposed leverage"].isna().all() and log["Proposed margin"].isna().all()  # as proposed

    at.selectbox(key="ceo_verdict").set_value("All")
    at.selectbox(key="ceo_rule").set_value("stop_width").run()
    ok(at)
    log = table(at, "Time (UTC)")
    assert len(log) == queries.ceo_log_count(engine, sid, rule="stop_width") > 0
    assert all("stop_width" in v for v in log["Rules fired"])
    assert (log["Proposed leverage"] > log["Leverage"]).all()  # stop_width lowers leverage: 14 → 3

    agent = log["Agent"].iloc[0]
    at.selectbox(key="ceo_rule").set_value("All")
    at.selectbox(key="ceo_agent").set_value(agent).run()
    ok(at)
    assert set(table(at, "Time (UTC)")["Agent"]) == {agent}
    filters = queries.ceo_filters(agent=agent, verdict="All", rule="All", kind="All")
    assert download(at, downloads, "Download filtered") == queries.ceo_log_csv(engine, sid, **filters)

    at.selectbox(key="ceo_agent").set_value("All")
    at.selectbox(key="ceo_kind").set_value("rebalance").run()
    ok(at)
    log = table(at, "Time (UTC)")
    assert len(log) == queries.ceo_kind_counts(engine, sid)["rebalance"] > 0
    assert set(log["Agent"]) == {"Desk"}  # a rebalance concerns the whole desk, never "None"

    at.selectbox(key="ceo_kind").set_value("halt").run()  # nothing matches
    ok(at)
    assert any("No decisions match" in i.value for i in at.main.info)
    assert button(at, "Download filtered").disabled
    engine.dispose()


def test_ceo_log_is_paged_with_a_total(app_env: str) -> None:
    engine, sid = seed(app_env, "2025-09-01", ticks=50)
    with engine.begin() as conn:
        conn.execute(insert(CeoDecisionRow), [
            {"session_id": sid, "ts_ms": 1_756_684_800_000 + i, "kind": "trade", "symbol": "BTCUSDT",
             "verdict": "modify", "rules": "margin_cap", "reason": f"bulk {i}",
             "proposed_leverage": 10, "final_leverage": 10, "proposed_margin": 6000.0,
             "final_margin": 4500.0, "changes": '{"margin": [6000.0, 4500.0]}'} for i in range(120)])
    total = queries.ceo_log_count(engine, sid)
    at = page("views/ceo.py")
    ok(at)
    assert len(table(at, "Time (UTC)")) == 50
    assert any(f"of {total}" in c.value for c in at.main.caption)
    at.number_input(key="ceo_page").set_value(3).run()
    ok(at)
    log = table(at, "Time (UTC)")
    expected = queries.ceo_log(engine, sid, limit=50, offset=100)
    assert len(log) == len(expected) == total - 100
    assert log["Reason"].tolist() == expected["reason"].tolist()
    assert at.number_input(key="ceo_page").value == 3
    bulk = table(at, "Time (UTC)")
    at.number_input(key="ceo_page").set_value(1).run()
    first = table(at, "Time (UTC)")
    numeric(first, LOG_NUMBERS)
    assert (first["Margin"].iloc[0], first["Proposed margin"].iloc[0]) == (4500.0, 6000.0)
    assert first["Leverage"].iloc[0] == 10 and pd.isna(first["Proposed leverage"].iloc[0])
    assert not bulk.equals(first)
    at.selectbox(key="ceo_verdict").set_value("modify").run()  # a new filter starts at page 1
    assert at.number_input(key="ceo_page").value == 1
    engine.dispose()


def test_ceo_pauses_and_rebalances_show_old_and_new_shares(app_env: str) -> None:
    engine, sid = seed(app_env, "2025-07-01", REBALANCED_TICKS)
    at = page("views/ceo.py")
    ok(at)
    shares = next(d.value for d in at.dataframe
                  if list(d.value.columns)[:3] == ["Time (UTC)", "Agent", "Before"])
    names = set(queries.agent_names(engine, sid))
    assert len(shares) > 0 and set(shares["Agent"]) <= names
    numeric(shares, ["Before", "After", "Change"])
    event = next(e for e in queries.allocation_changes(engine, sid) if e["kind"] == "rebalance")
    agent, (old, new) = next(iter(event["changes"].items()))
    row = shares[(shares["Agent"] == agent) & (shares["Time (UTC)"] == event["ts"])].iloc[0]
    assert (row["Before"], row["After"]) == pytest.approx((old * 100, new * 100))
    engine.dispose()


# ---------------------------------------------------------------------- positions
def test_positions_page_names_a_resting_trailing_stop(app_env: str) -> None:
    engine, sid = seed(app_env, "2025-10-08", ticks=80)  # a trend or momentum position holds one
    at = page("views/positions.py")
    ok(at)
    resting = next(d for d in at.dataframe if "Trigger price" in d.value.columns)
    orders = resting.value
    trails = orders[orders["Purpose"] == "trailing stop"]
    assert len(trails) == (queries.open_orders(engine, sid)["purpose"] == "trailing_stop").sum() > 0
    assert (trails["Type"] == "trailing stop market").all()
    assert trails["Trail (%)"].between(0.1, 5).all()
    assert orders[orders["Purpose"] == "stop-loss"]["Trail (%)"].isna().all()
    no_raw_missing(resting)


def test_positions_page_shows_holdings_orders_and_filtered_history(app_env: str, downloads: dict) -> None:
    engine, sid = seed(app_env, "2025-07-01")  # ends with open positions and resting stops
    at = page("views/positions.py")
    ok(at)
    names = set(queries.agent_names(engine, sid))
    shown = element(at, "Agent")
    held = shown.value
    positions = queries.open_positions(engine, sid)
    assert len(held) == len(positions) > 0 and set(held["Agent"]) <= names
    numeric(held, ["Qty", "Entry", "Mark", "Unrealized PnL", "Leverage", "Margin", "Stop",
                   "Take-profit", "Liquidation"])
    assert held["Leverage"].tolist() == positions["leverage"].tolist()
    assert held["Unrealized PnL"].tolist() == pytest.approx(positions["unrealized_pnl"].tolist())
    no_raw_missing(shown)
    resting = next(d for d in at.dataframe if "Trigger price" in d.value.columns)
    orders = resting.value
    assert len(orders) == len(queries.open_orders(engine, sid)) > 0 and set(orders["Agent"]) <= names
    numeric(orders, ["Qty", "Trigger price", "Age", "Trail (%)", "Activation"])
    assert headers(resting)["Age"] == "Age (h)"
    no_raw_missing(resting)

    everything = download(at, downloads, "Download all trades")
    assert everything == queries.trades_csv(engine, sid)
    assert list(csv(everything).columns) == queries.TRADE_COLUMNS
    assert len(csv(everything)) == queries.trades_count(engine, sid)

    at.selectbox(key="tr_side").set_value("LONG").run()
    ok(at)
    longs = queries.trades_count(engine, sid, side="LONG")
    history = table(at, "Closed (UTC)")
    assert len(history) == longs > 0 and all("LONG" in v for v in history["Side"])
    assert button(at, "Download filtered").label == f"Download filtered ({longs} trades)"
    filtered = download(at, downloads, "Download filtered")
    assert filtered == queries.trades_csv(engine, sid, **queries.trade_filters(side="LONG"))
    assert set(csv(filtered)["side"]) == {"LONG"}
    summary = queries.trade_summary(engine, sid, side="LONG")
    assert any(m.value == f"**{summary['trades']}**" for m in at.main.markdown)

    last_day = pd.Timestamp(queries.trades(engine, sid, limit=1)["closed_at"].iloc[0]).date()
    at.selectbox(key="tr_side").set_value("All")
    at.date_input(key="tr_from").set_value(last_day)
    at.date_input(key="tr_to").set_value(last_day).run()
    ok(at)
    filters = queries.trade_filters(agent="All", symbol="All", side="All", close_reason="All",
                                    date_from=last_day, date_to=last_day)
    assert len(table(at, "Closed (UTC)")) == queries.trades_count(engine, sid, **filters) > 0
    assert download(at, downloads, "Download filtered") == queries.trades_csv(engine, sid, **filters)

    at.selectbox(key="tr_reason").set_value("liquidation").run()
    ok(at)
    assert any("No trades match" in i.value for i in at.main.info)
    engine.dispose()


# ---------------------------------------------------------------------- market
def test_market_page_shows_the_symbols_and_a_candlestick_with_trades(app_env: str) -> None:
    engine, sid = seed(app_env, "2025-07-01")
    at = page("views/market.py")
    ok(at)
    overview = queries.market_overview(make_settings(database_url=app_env), engine, sid)
    assert [m.label for m in at.main.metric] == SYMBOLS
    assert next(m.value for m in at.main.metric) == f"{overview['price'].iloc[0]:,.1f} USDT"  # BTCUSDT ticks by 0.1
    shown = element(at, "Symbol")
    prices = shown.value
    assert prices["Symbol"].tolist() == SYMBOLS
    # the replay's recorded funding rates (SOL's history covers 2025-07), in percent
    assert prices["Funding rate"].tolist() == pytest.approx((overview["funding_rate"] * 100).tolist())
    assert prices["Funding rate"].notna().all()
    assert not any("no recorded rate" in c.value for c in at.main.caption)
    numeric(prices, ["Price (USDT)", "24h change", "24h high", "24h low", "24h volume",
                     "Funding rate"])
    assert prices["Price (USDT)"].tolist() == pytest.approx(overview["price"].tolist())
    no_raw_missing(shown)
    assert any("engine time" in c.value for c in at.main.caption)

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "candlestick" and spec["data"][0]["name"] == "BTCUSDT 1h"
    _, marks = queries.market_candles(make_settings(database_url=app_env), engine, sid, "BTCUSDT", "1h", 300)
    assert len(marks) > 0
    points = [t for t in spec["data"] if t.get("mode") == "markers"]  # the agents' entries and exits
    assert sum(len(t["x"]) for t in points) == len(marks)
    symbols = [s for t in points for s in (t["marker"]["symbol"] if isinstance(t["marker"]["symbol"], list)
                                           else [t["marker"]["symbol"]] * len(t["x"]))]
    entries = marks[marks["kind"] == "entry"]
    assert symbols.count("triangle-up") == int((entries["side"] == "LONG").sum())
    assert symbols.count("triangle-down") == int((entries["side"] == "SHORT").sum())
    assert symbols.count("x") == int((marks["kind"] == "exit").sum()) > 0
    exits = next(t for t in points if t["marker"]["symbol"] == "x")
    assert "PnL" in exits["hovertemplate"]

    at.radio(key="mkt_interval").set_value("4h").run()
    ok(at)
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["name"] == "BTCUSDT 4h"
    at.radio(key="mkt_symbol").set_value("SOLUSDT").run()
    ok(at)
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["name"] == "SOLUSDT 4h"
    engine.dispose()


def test_ceo_log_reason_comes_first_and_a_selected_row_reads_in_full(app_env: str) -> None:
    engine, sid = seed(app_env, "2025-07-01", REBALANCED_TICKS)
    at = page("views/ceo.py")
    ok(at)
    shown = element(at, "Time (UTC)")
    assert list(shown.value.columns[:5]) == ["Time (UTC)", "Agent", "Verdict", "Reason", "Rules fired"]
    assert json.loads(shown.proto.columns)["Reason"]["width"] == "large"
    assert any("Select a row" in c.value for c in at.main.caption)

    log = queries.ceo_log(engine, sid, limit=50)
    modified = next(i for i, v in enumerate(log["verdict"]) if v == "modify")
    at.session_state["ceo_log_table"] = {"selection": {"rows": [modified], "columns": []}}
    at.run()
    ok(at)
    row = log.iloc[modified]
    assert any(m.value == row["reason"] for m in at.main.markdown)  # the whole reason, unclipped
    captions = [c.value for c in at.main.caption]
    assert f"Rules fired: {', '.join(r for r in row['rules'].split(',') if r)}" in captions
    changed = next(c for c in captions if c.startswith("Changed by the CEO: "))
    def shown(v: object) -> str:
        return f"{v:,.6g}" if isinstance(v, float) else str(v)

    for field, (before, after) in queries.change_pairs(row["changes"]).items():
        assert f"{field.replace('_', ' ')} {shown(before)} → {shown(after)}" in changed
    engine.dispose()
