"""The read model behind the CEO, Positions and Market pages: filters, counts, paging, summaries
and CSV downloads agree with each other, aggregates match the rows, and page queries stay paged
however many rows the store holds."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select

from core import queries
from core.config import Settings
from core.models import INTERVAL_MS
from core.store.db import open_database
from core.store.tables import AgentRow, CeoDecisionRow, OrderRow, PositionRow, SessionRow
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks

# 2025-07-01 + 300 ticks of 15m: rejects, modifies, a rebalance, closed trades on every symbol
# and positions still open at the end (so resting stops), in about half a second.
SEED_START = "2025-07-01"
SEED_TICKS = 640  # the first rebalance (agents need 3 closed trades for a score) is past 600


class Seeded:
    def __init__(self, engine: Engine, settings: Settings, session_id: int) -> None:
        self.engine, self.settings, self.id = engine, settings, session_id


def _seed(url: str, ticks: int = SEED_TICKS, start: str = SEED_START) -> Seeded:
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_start=start)
    session_id = create(engine, settings)
    run_ticks(engine, settings, ticks)
    return Seeded(engine, settings, session_id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    s = _seed(f"sqlite:///{tmp_path_factory.mktemp('queries') / 'desk.db'}")
    yield s
    s.engine.dispose()


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])


def _ms(stamps: pd.Series) -> pd.Series:
    """UTC timestamp strings → epoch milliseconds."""
    return pd.Series([int(t.timestamp() * 1000) for t in pd.to_datetime(stamps, utc=True)],
                     index=stamps.index, dtype="int64")


def _header(text: str) -> list[str]:
    return text.splitlines()[0].split(",")


def test_the_seed_exercises_what_the_pages_show(seeded: Seeded) -> None:
    verdicts = queries.ceo_verdict_counts(seeded.engine, seeded.id)
    assert all(verdicts[v] > 0 for v in queries.VERDICTS), verdicts
    assert queries.ceo_kind_counts(seeded.engine, seeded.id)["rebalance"] >= 1
    assert queries.trades_count(seeded.engine, seeded.id) >= 5
    assert not queries.open_positions(seeded.engine, seeded.id).empty


# ---------------------------------------------------------------------- CEO log
CEO_FILTERS = [
    {}, {"verdict": "approve"}, {"verdict": "modify"}, {"verdict": "reject"},
    {"kind": "trade"}, {"kind": "rebalance"}, {"kind": "session"},
    {"rule": "stop_width"}, {"rule": "symbol_owner"}, {"agent": "TrendMaster Alpha"},
    {"agent": "Momentum Hunter", "verdict": "modify"}, {"verdict": "reject", "rule": "nothing_fired"},
]


@pytest.mark.parametrize("filters", CEO_FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all")
def test_ceo_rows_count_and_csv_mean_the_same_decisions(seeded: Seeded, filters: dict[str, str]) -> None:
    e, sid = seeded.engine, seeded.id
    rows = queries.ceo_log(e, sid, **filters, limit=None)
    count = queries.ceo_log_count(e, sid, **filters)
    text = queries.ceo_log_csv(e, sid, **filters)
    assert _header(text) == queries.CEO_COLUMNS
    csv = _csv(text)
    assert len(rows) == count == len(csv)
    assert csv["id"].tolist() == rows["id"].tolist()
    assert rows["id"].is_monotonic_decreasing  # newest first
    if "verdict" in filters:
        assert set(rows["verdict"]) <= {filters["verdict"]}
    if "kind" in filters:
        assert set(rows["kind"]) <= {filters["kind"]}
    if "agent" in filters:
        assert set(rows["agent"]) <= {filters["agent"]}
    if "rule" in filters:
        assert all(filters["rule"] in r.split(",") for r in rows["rules"])


def test_ceo_filters_narrow_to_the_matching_decisions(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    everything = queries.ceo_log(e, sid, limit=None)
    for verdict in queries.VERDICTS:
        assert queries.ceo_log_count(e, sid, verdict=verdict) == int((everything["verdict"] == verdict).sum())
    for rule in queries.ceo_rules(e, sid):
        expected = sum(rule in r.split(",") for r in everything["rules"])
        assert queries.ceo_log_count(e, sid, rule=rule) == expected > 0


def test_ceo_pages_tile_the_log(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    everything = queries.ceo_log(e, sid, limit=None)
    pages = [queries.ceo_log(e, sid, limit=7, offset=o) for o in range(0, len(everything) + 7, 7)]
    assert all(len(p) <= 7 for p in pages)
    assert pd.concat(pages)["id"].tolist() == everything["id"].tolist()


def test_ceo_csv_values_match_the_rows(seeded: Seeded) -> None:
    rows = queries.ceo_log(seeded.engine, seeded.id, verdict="modify", limit=None)
    csv = _csv(queries.ceo_log_csv(seeded.engine, seeded.id, verdict="modify"))
    for col in ("agent", "symbol", "kind", "verdict", "reason"):
        assert csv[col].tolist() == rows[col].tolist(), col
    assert csv["ts"].tolist() == [f"{t}+00:00" for t in rows["ts"]]  # a CSV's times say UTC
    assert all(datetime.fromisoformat(t).utcoffset() == timedelta(0) for t in csv["ts"])
    assert csv["final_leverage"].tolist() == rows["final_leverage"].astype(int).tolist()
    assert (csv["final_leverage"] <= csv["proposed_leverage"]).all()  # the CEO only tightens
    assert csv["final_margin"].round(6).tolist() == rows["final_margin"].round(6).tolist()


def test_changed_fields_tell_a_modification_from_rounding(seeded: Seeded) -> None:
    rows = queries.ceo_log(seeded.engine, seeded.id, kind="trade", limit=None)
    for r in rows.itertuples():
        fields = queries.changed_fields(r.changes)
        if r.verdict == "approve":
            assert fields == set()
        if r.verdict == "modify":
            assert fields  # a modification always says what it changed
        if "leverage" in fields:
            assert r.final_leverage < r.proposed_leverage
    assert queries.changed_fields('{"leverage": [14, 3]}') == {"leverage"}
    assert queries.changed_fields(None) == set() and queries.changed_fields(float("nan")) == set()
    assert queries.changed_fields("not json") == set()


def test_ceo_rules_are_the_distinct_rule_ids(seeded: Seeded) -> None:
    everything = queries.ceo_log(seeded.engine, seeded.id, limit=None)
    expected = sorted({r for rules in everything["rules"] for r in rules.split(",") if r})
    found = queries.ceo_rules(seeded.engine, seeded.id)
    assert found == expected and "stop_width" in found
    assert all("," not in r for r in found)


def test_rule_filter_matches_whole_rule_ids_only(tmp_path: Path) -> None:
    """``margin_cap`` must not match ``margin_cap_total``, and ``_`` is not a wildcard."""
    engine = open_database(f"sqlite:///{tmp_path / 'rules.db'}")
    sid = create(engine, make_settings(database_url=str(engine.url)))
    rows = [("margin_cap", "a"), ("stop_width,margin_cap", "b"), ("margin_cap_total", "c"),
            ("marginXcap", "d"), ("", "e")]
    with engine.begin() as conn:
        conn.execute(insert(CeoDecisionRow), [
            {"session_id": sid, "ts_ms": 1, "kind": "trade", "verdict": "modify", "rules": r, "reason": why}
            for r, why in rows])
    found = queries.ceo_log(engine, sid, rule="margin_cap", limit=None)
    assert sorted(found["reason"]) == ["a", "b"]
    assert queries.ceo_log_count(engine, sid, rule="margin_cap") == 2
    assert queries.ceo_rules(engine, sid) == sorted(["margin_cap", "margin_cap_total", "marginXcap", "stop_width"])
    engine.dispose()


def test_ceo_header_counts_match_the_log(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    everything = queries.ceo_log(e, sid, limit=None)
    kinds = queries.ceo_kind_counts(e, sid)
    assert {k: n for k, n in kinds.items() if n} == everything["kind"].value_counts().to_dict()
    assert set(queries.CEO_KINDS) <= set(kinds)
    verdicts = queries.ceo_verdict_counts(e, sid)
    assert verdicts == {v: int((everything["verdict"] == v).sum()) for v in queries.VERDICTS}
    assert verdicts == queries.session_status(e, sid)["session"]["verdicts"]


def test_allocation_changes_carry_old_and_new_shares(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    events = queries.allocation_changes(e, sid)
    assert events and {ev["kind"] for ev in events} <= set(queries.ALLOCATION_KINDS)
    assert [ev["id"] for ev in events] == sorted((ev["id"] for ev in events), reverse=True)
    names = set(queries.agent_names(e, sid))
    rebalances = [ev for ev in events if ev["kind"] == "rebalance"]
    assert rebalances
    for ev in rebalances:
        assert ev["changes"] and set(ev["changes"]) <= names  # agent names, not ids
        for old, new in ev["changes"].values():
            assert 0.0 < old < 1.0 and 0.05 - 1e-9 <= new <= 0.40 + 1e-9
    for ev in events:
        if ev["kind"] in ("pause", "resume"):
            assert ev["agent"] in names and len(ev["changes"]["status"]) == 2
    assert len(queries.allocation_changes(e, sid, limit=1)) == 1


def test_ceo_filters_map_the_page_selections() -> None:
    assert queries.ceo_filters(agent="All", verdict="All", rule="All", kind="All") == {
        "agent": None, "verdict": None, "rule": None, "kind": None}
    assert queries.ceo_filters(agent="Momentum Hunter", verdict="reject", rule="stop_width", kind="trade") == {
        "agent": "Momentum Hunter", "verdict": "reject", "rule": "stop_width", "kind": "trade"}


# ---------------------------------------------------------------------- trades
def _trade_filter_cases(seeded: Seeded) -> list[dict[str, object]]:
    closed = queries.trades(seeded.engine, seeded.id, limit=None)
    mid = int(pd.Timestamp(closed["closed_at"].iloc[len(closed) // 2], tz="UTC").value // 1_000_000)
    return [
        {}, {"side": "LONG"}, {"side": "SHORT"}, {"close_reason": "stop_loss"},
        {"close_reason": "agent"}, {"symbol": "BTCUSDT"}, {"agent": closed["agent"].iloc[0]},
        {"since_ms": mid}, {"until_ms": mid}, {"since_ms": mid, "until_ms": mid + 1},
        {"symbol": "ETHUSDT", "side": "LONG", "close_reason": "liquidation"},
    ]


def test_trade_rows_count_csv_and_summary_agree(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    for filters in _trade_filter_cases(seeded):
        rows = queries.trades(e, sid, **filters, limit=None)  # type: ignore[arg-type]
        count = queries.trades_count(e, sid, **filters)  # type: ignore[arg-type]
        text = queries.trades_csv(e, sid, **filters)  # type: ignore[arg-type]
        assert _header(text) == queries.TRADE_COLUMNS, filters
        csv = _csv(text)
        assert len(rows) == count == len(csv), filters
        assert csv["trade_id"].tolist() == rows["trade_id"].tolist(), filters
        net = rows["realized_pnl"] - rows["fees"] + rows["funding"]
        s = queries.trade_summary(e, sid, **filters)  # type: ignore[arg-type]
        assert s["trades"] == count and s["wins"] == int((net > 0).sum()), filters
        assert s["realized_pnl"] == pytest.approx(rows["realized_pnl"].sum(), abs=0.01)
        assert s["fees"] == pytest.approx(rows["fees"].sum(), abs=0.01)
        assert s["funding"] == pytest.approx(rows["funding"].sum(), abs=0.01)
        assert s["net_pnl"] == pytest.approx(net.sum(), abs=0.02)
        assert s["win_rate"] == (pytest.approx(s["wins"] / count, abs=1e-4) if count else None)
        for key in ("side", "close_reason", "symbol", "agent"):
            if key in filters:
                assert set(rows[key]) <= {filters[key]}, filters
        closed_ms = _ms(rows["closed_at"])
        assert (closed_ms >= filters.get("since_ms", 0)).all()  # type: ignore[operator]
        assert (closed_ms < filters.get("until_ms", 2**62)).all()  # type: ignore[operator]


def test_trades_csv_ends_with_net_pnl_after_fees_and_funding(seeded: Seeded) -> None:
    """realized_pnl stays the gross figure DESIGN.md promises; net_pnl, added last, is what the
    trade made after costs."""
    csv = _csv(queries.trades_csv(seeded.engine, seeded.id))
    assert list(csv.columns)[-2:] == ["close_reason", "net_pnl"] and "realized_pnl" in csv.columns
    assert len(csv) > 0 and (csv["fees"] > 0).all()  # so net and gross differ
    net = csv["realized_pnl"] - csv["fees"] + csv["funding"]
    assert csv["net_pnl"].tolist() == pytest.approx(net.tolist(), abs=1e-6)
    assert (csv["net_pnl"] < csv["realized_pnl"] + csv["funding"]).all()
    summary = queries.trade_summary(seeded.engine, seeded.id)
    assert summary["net_pnl"] == pytest.approx(csv["net_pnl"].sum(), abs=0.01)


def test_trades_are_newest_first_and_pages_tile_them(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    everything = queries.trades(e, sid, limit=None)
    assert everything["closed_at"].tolist() == sorted(everything["closed_at"], reverse=True)
    pages = [queries.trades(e, sid, limit=4, offset=o) for o in range(0, len(everything), 4)]
    assert pd.concat(pages)["trade_id"].tolist() == everything["trade_id"].tolist()
    csv = _csv(queries.trades_csv(e, sid))
    assert csv["agent"].tolist() == everything["agent"].tolist()
    assert csv["realized_pnl"].tolist() == pytest.approx(everything["realized_pnl"].tolist())


def test_trade_filters_map_the_page_selections() -> None:
    assert queries.trade_filters(agent="All", symbol="All", side="All", close_reason="All") == {
        "agent": None, "symbol": None, "side": None, "close_reason": None,
        "since_ms": None, "until_ms": None}
    f = queries.trade_filters(side="SHORT", date_from=date(2025, 7, 2), date_to=date(2025, 7, 2))
    assert f["side"] == "SHORT"
    assert f["since_ms"] == 1_751_414_400_000  # 2025-07-02 00:00 UTC
    assert f["until_ms"] == f["since_ms"] + 86_400_000  # the whole last day is included


def test_date_range_filter_keeps_the_days_it_names(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    everything = queries.trades(e, sid, limit=None)
    day = pd.Timestamp(everything["closed_at"].iloc[0]).date()
    rows = queries.trades(e, sid, **queries.trade_filters(date_from=day, date_to=day), limit=None)
    assert len(rows) == int((pd.to_datetime(everything["closed_at"]).dt.date == day).sum()) > 0


def test_trade_time_range_and_names(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    first, last = queries.trade_time_range(e, sid)  # type: ignore[misc]
    everything = queries.trades(e, sid, limit=None)
    assert last.strftime("%Y-%m-%d %H:%M:%S") == everything["closed_at"].max()
    assert first.strftime("%Y-%m-%d %H:%M:%S") <= everything["closed_at"].min()
    assert queries.agent_names(e, sid)[0] == "TrendMaster Alpha" and len(queries.agent_names(e, sid)) == 5
    assert queries.session_symbols(e, sid) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


# ---------------------------------------------------------------------- now: positions, orders
def test_open_orders_cover_every_open_position_with_a_named_stop(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    positions = queries.open_positions(e, sid)
    orders = queries.open_orders(e, sid)
    assert list(orders.columns) == ["id", "agent", "symbol", "side", "type", "purpose", "qty",
                                    "stop_price", "reduce_only", "status", "created_at", "age_s",
                                    "callback_pct", "activation_price"]
    stops = orders[orders["purpose"] == "stop_loss"]
    assert set(stops["symbol"]) == set(positions["symbol"])
    assert set(orders["agent"]) <= set(queries.agent_names(e, sid))
    assert set(orders["status"]) <= {"NEW", "PENDING", "UNKNOWN"}
    assert orders["reduce_only"].all() and (orders["age_s"] >= 0).all()
    with e.connect() as conn:
        resting = conn.scalar(select(OrderRow.id).where(OrderRow.session_id == sid,
                                                        OrderRow.status == "FILLED").limit(1))
    assert resting not in set(orders["id"])


# ---------------------------------------------------------------------- market
def test_market_overview_at_engine_time(seeded: Seeded) -> None:
    e, sid = seeded.engine, seeded.id
    frame = queries.market_overview(seeded.settings, e, sid)
    assert frame["symbol"].tolist() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert list(frame.columns) == queries.MARKET_COLUMNS
    assert (frame["price"] > 0).all() and (frame["low_24h"] <= frame["price"]).all()
    assert (frame["price"] <= frame["high_24h"]).all() and frame["change_24h_pct"].notna().all()
    status = queries.session_status(e, sid)["session"]
    assert set(frame["time"]) == {status["engine_time"]}
    with e.connect() as conn:
        marks = json.loads(conn.scalar(select(SessionRow.marks).where(SessionRow.id == sid)))
        now_ms = conn.scalar(select(SessionRow.clock_ms).where(SessionRow.id == sid))
    recorded = {}  # the rate of each symbol's last funding event recorded beside the candles
    for symbol in frame["symbol"]:
        rows = pd.read_csv(seeded.settings.replay_data_dir / f"{symbol}-funding.csv")
        recorded[symbol] = float(rows[rows["funding_time_ms"] <= now_ms]["rate"].iloc[-1])
    assert dict(zip(frame["symbol"], frame["funding_rate"], strict=True)) == recorded
    assert dict(zip(frame["symbol"], frame["price"], strict=True)) == pytest.approx(marks)


@pytest.mark.parametrize("interval", ["15m", "1h", "4h"])
def test_market_candles_and_the_desks_markers(seeded: Seeded, interval: str) -> None:
    e, sid = seeded.engine, seeded.id
    candles, marks = queries.market_candles(seeded.settings, e, sid, "BTCUSDT", interval, limit=120)
    assert 0 < len(candles) <= 120
    steps = candles["open_time_ms"].diff().dropna().unique().tolist()
    assert steps == [INTERVAL_MS[interval]]
    clock = int(pd.Timestamp(queries.session_status(e, sid)["session"]["engine_time"], tz="UTC").value // 1_000_000)
    assert int(candles["open_time_ms"].iloc[-1]) + INTERVAL_MS[interval] <= clock  # closed bars only
    lo = int(candles["open_time_ms"].iloc[0])
    hi = int(candles["open_time_ms"].iloc[-1]) + INTERVAL_MS[interval]
    assert set(marks["kind"]) <= {"entry", "exit"} and set(marks["side"]) <= {"LONG", "SHORT"}
    assert marks["ts_ms"].between(lo, hi).all() and marks["ts_ms"].is_monotonic_increasing
    assert set(marks["agent"]) <= set(queries.agent_names(e, sid))
    assert marks.loc[marks["kind"] == "entry", "realized_pnl"].isna().all()
    closed = queries.trades(e, sid, symbol="BTCUSDT", limit=None)
    closed_ms = _ms(closed["closed_at"])
    in_window = closed[closed_ms.between(lo, hi)]
    exits = marks[marks["kind"] == "exit"].set_index("trade_id")
    assert sorted(exits.index) == sorted(in_window["trade_id"])
    for t in in_window.itertuples():
        assert exits.loc[t.trade_id, "price"] == pytest.approx(t.exit_price)
        assert exits.loc[t.trade_id, "realized_pnl"] == pytest.approx(t.realized_pnl - t.fees + t.funding, abs=0.01)


def test_market_candles_with_a_wide_window_mark_every_btc_trade(seeded: Seeded) -> None:
    _, marks = queries.market_candles(seeded.settings, seeded.engine, seeded.id, "BTCUSDT", "15m", 1000)
    closed = queries.trades(seeded.engine, seeded.id, symbol="BTCUSDT", limit=None)
    assert len(closed) > 0
    assert int((marks["kind"] == "exit").sum()) == len(closed)
    assert int((marks["kind"] == "entry").sum()) >= len(closed)


# ---------------------------------------------------------------------- empty session
def test_queries_on_a_session_without_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = open_database(url)
    sid = create(engine, make_settings(database_url=url))
    assert queries.trades_count(engine, sid) == 0 and queries.trades(engine, sid).empty
    assert _header(queries.trades_csv(engine, sid)) == queries.TRADE_COLUMNS
    assert len(queries.trades_csv(engine, sid).splitlines()) == 1
    assert queries.trade_summary(engine, sid) == {"trades": 0, "wins": 0, "win_rate": None,
                                                  "realized_pnl": 0.0, "fees": 0.0, "funding": 0.0,
                                                  "net_pnl": 0.0}
    assert queries.trade_time_range(engine, sid) is None
    assert queries.open_orders(engine, sid).empty
    assert queries.ceo_verdict_counts(engine, sid) == {"approve": 0, "modify": 0, "reject": 0}
    assert queries.ceo_log_count(engine, sid, verdict="reject") == 0
    assert _header(queries.ceo_log_csv(engine, sid, verdict="reject")) == queries.CEO_COLUMNS
    assert queries.ceo_rules(engine, sid) == [] and queries.allocation_changes(engine, sid) == []
    assert len(queries.market_overview(make_settings(database_url=url), engine, sid)) == 3
    engine.dispose()


# ---------------------------------------------------------------------- a big store
BIG_POSITIONS = 20_000
BIG_DECISIONS = 50_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A session with 20,000 closed trades and 50,000 CEO decisions, bulk-inserted directly."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url)
    sid = create(engine, settings)
    rnd = random.Random(7)
    with engine.connect() as conn:
        agents = list(conn.scalars(select(AgentRow.id).where(AgentRow.session_id == sid)))
    t0 = 1_748_736_000_000
    positions = [{
        "session_id": sid, "agent_id": agents[i % 5], "symbol": ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3],
        "side": ("LONG", "SHORT")[i % 2], "status": "closed", "quantity": 0.0, "entry_price": 100.0,
        "leverage": 1 + i % 20, "margin": 1000.0, "stop_distance": 0.01, "opened_ms": t0 + i * 60_000,
        "closed_ms": t0 + i * 60_000 + 3_600_000, "exit_price": 100.0 + rnd.uniform(-2, 2),
        "exit_qty": 1.0, "realized_pnl": rnd.uniform(-50, 50), "fees": 1.0, "funding": 0.0,
        "close_reason": queries.CLOSE_REASONS[i % 4],
    } for i in range(BIG_POSITIONS)]
    rules = ("", "stop_width", "margin_cap", "stop_width,margin_cap", "symbol_owner")
    decisions = [{
        "session_id": sid, "agent_id": agents[i % 5], "ts_ms": t0 + i * 10_000,
        "kind": "rebalance" if i % 1000 == 0 else "trade", "symbol": "BTCUSDT",
        "verdict": None if i % 1000 == 0 else queries.VERDICTS[i % 3], "rules": rules[i % 5],
        "reason": f"decision {i}", "proposed_leverage": 10, "final_leverage": 5,
        "proposed_margin": 1000.0, "final_margin": 900.0,
        "changes": '{"TrendMaster Alpha": [0.25, 0.27]}' if i % 1000 == 0 else None,
    } for i in range(BIG_DECISIONS)]
    with engine.begin() as conn:  # executemany
        conn.execute(insert(PositionRow), positions)
        conn.execute(insert(CeoDecisionRow), decisions)
    yield Seeded(engine, settings, sid)
    engine.dispose()


def test_page_queries_on_a_big_store_return_only_a_page(big: Seeded) -> None:
    e, sid = big.engine, big.id
    # + "session created" and the replay's funding coverage
    assert queries.ceo_log_count(e, sid) == BIG_DECISIONS + 2
    assert len(queries.ceo_log(e, sid, limit=50)) == 50
    assert len(queries.ceo_log(e, sid, limit=50, offset=BIG_DECISIONS - 20)) == 22
    assert len(queries.ceo_log(e, sid, verdict="reject", rule="margin_cap", limit=50)) == 50
    assert queries.ceo_log(e, sid, limit=50)["reason"].iloc[0] == f"decision {BIG_DECISIONS - 1}"
    assert queries.ceo_kind_counts(e, sid)["rebalance"] == BIG_DECISIONS // 1000
    assert sum(queries.ceo_verdict_counts(e, sid).values()) == BIG_DECISIONS - BIG_DECISIONS // 1000
    assert queries.ceo_rules(e, sid) == ["margin_cap", "stop_width", "symbol_owner"]
    assert len(queries.allocation_changes(e, sid, limit=50)) == 50
    assert queries.trades_count(e, sid) == BIG_POSITIONS
    assert len(queries.trades(e, sid, limit=50)) == 50
    assert len(queries.trades(e, sid, limit=50, offset=BIG_POSITIONS - 10)) == 10
    assert len(queries.trades(e, sid, agent="Momentum Hunter", side="LONG", limit=50)) == 50
    assert queries.trade_summary(e, sid)["trades"] == BIG_POSITIONS
    assert queries.trades_count(e, sid, close_reason="ceo") == BIG_POSITIONS // 4


def test_csv_downloads_of_a_big_store_hold_every_matching_row(big: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    e, sid = big.engine, big.id
    # the CSV is built from several chunks; patched where _stream_csv reads it (core.queries
    # re-exports a copy)
    monkeypatch.setattr(queries.common, "CSV_CHUNK", 3_000)
    trades_csv = queries.trades_csv(e, sid)
    assert len(trades_csv.splitlines()) == BIG_POSITIONS + 1
    assert trades_csv.count("trade_id,") == 1  # one header however many chunks
    csv = _csv(trades_csv)
    assert csv["trade_id"].is_unique and csv["closed_at"].is_monotonic_decreasing
    filtered = queries.trades_csv(e, sid, side="SHORT", symbol="ETHUSDT")
    assert len(filtered.splitlines()) - 1 == queries.trades_count(e, sid, side="SHORT", symbol="ETHUSDT")
    ceo = queries.ceo_log_csv(e, sid, verdict="approve")
    assert len(ceo.splitlines()) - 1 == queries.ceo_log_count(e, sid, verdict="approve")


# ---------------------------------------------------------------------- SQLite and PostgreSQL
def test_filters_counts_and_csv_agree_on_both_databases(db_url: str) -> None:
    s = _seed(db_url, ticks=200)
    e, sid = s.engine, s.id
    for filters in ({}, {"verdict": "modify"}, {"rule": "stop_width"}, {"agent": "Momentum Hunter"},
                    {"kind": "rebalance"}):
        rows = queries.ceo_log(e, sid, **filters, limit=None)
        assert len(rows) == queries.ceo_log_count(e, sid, **filters)
        assert len(_csv(queries.ceo_log_csv(e, sid, **filters))) == len(rows)
    assert queries.ceo_rules(e, sid)
    for filters in ({}, {"side": "LONG"}, {"close_reason": "stop_loss"}, {"symbol": "ETHUSDT"}):
        rows = queries.trades(e, sid, **filters, limit=None)
        assert len(rows) == queries.trades_count(e, sid, **filters) == queries.trade_summary(e, sid, **filters)["trades"]
        assert len(_csv(queries.trades_csv(e, sid, **filters))) == len(rows)
    assert len(queries.trades(e, sid, limit=3)) == min(3, queries.trades_count(e, sid))
    assert not queries.market_candles(s.settings, e, sid, "ETHUSDT", "1h", 50)[0].empty
    e.dispose()


# ---------------------------------------------------------------------- float noise in CSVs
def _significant_digits(cell: str) -> int:
    """How many significant digits a CSV number is written with ("0.30000000000000004": 17)."""
    mantissa = cell.lstrip("+-").split("e")[0].split("E")[0].replace(".", "")
    return len(mantissa.lstrip("0").rstrip("0") or "0")


def test_csv_prices_and_money_carry_no_float_noise(tmp_path: Path) -> None:
    """Prices, quantities and money computed in binary floats (an average of fills, a sum of
    partial fills, a margin fraction of equity) are written with the digits they really have:
    64123.1, not 64123.100000000006; 0.3, not 0.30000000000000004."""
    url = f"sqlite:///{tmp_path / 'noise.db'}"
    engine = open_database(url)
    sid = create(engine, make_settings(database_url=url))
    with engine.connect() as conn:
        agent = conn.scalar(select(AgentRow.id).where(AgentRow.session_id == sid))
    t0 = 1_748_736_000_000
    with engine.begin() as conn:
        conn.execute(insert(PositionRow), [{
            "session_id": sid, "agent_id": agent, "symbol": "BTCUSDT", "side": "LONG",
            "status": "closed", "quantity": 0.0, "entry_price": 64123.1 + 1e-11,  # 64123.100000000006
            "leverage": 5, "margin": 1234.5 * 0.3, "stop_distance": 0.01, "opened_ms": t0,
            "closed_ms": t0 + 3_600_500, "exit_price": 0.1 + 0.2, "exit_qty": 1.1 * 3,
            "realized_pnl": 0.1 + 0.2, "fees": 0.7 * 0.1, "funding": -(0.1 + 0.2),
            "close_reason": "agent"}])
        conn.execute(insert(CeoDecisionRow), [{
            "session_id": sid, "agent_id": agent, "ts_ms": t0, "kind": "trade", "symbol": "BTCUSDT",
            "verdict": "modify", "rules": "margin_cap", "reason": "noise", "proposed_leverage": 5,
            "final_leverage": 5, "proposed_margin": 1234.5 * 0.3, "final_margin": 0.1 + 0.2}])
    trades_text = queries.trades_csv(engine, sid)
    ceo_text = queries.ceo_log_csv(engine, sid, kind="trade")
    for text, columns in ((trades_text, ["leverage", "qty", "entry_price", "exit_price", "margin",
                                         "duration_s", "fees", "funding", "realized_pnl",
                                         "net_pnl"]),
                          (ceo_text, ["proposed_leverage", "final_leverage", "proposed_margin",
                                      "final_margin"])):
        written = pd.read_csv(io.StringIO(text), dtype=str).iloc[0]
        noisy = {c: written[c] for c in columns if _significant_digits(written[c]) > 12}
        assert not noisy, noisy
    trade = pd.read_csv(io.StringIO(trades_text), dtype=str).iloc[0]
    assert (trade["entry_price"], trade["exit_price"], trade["qty"]) == ("64123.1", "0.3", "3.3")
    assert (trade["margin"], trade["realized_pnl"], trade["funding"]) == ("370.35", "0.3", "-0.3")
    assert trade["duration_s"] == "3600.5"
    assert trade["net_pnl"] == "-0.07"  # 0.3 gross − 0.07 fees − 0.3 funding
    decision = pd.read_csv(io.StringIO(ceo_text), dtype=str).iloc[0]
    assert (decision["proposed_margin"], decision["final_margin"]) == ("370.35", "0.3")
    # the CLI's `trades --csv` writes the frame ``trades`` returns: the same values
    frame = queries.trades(engine, sid, limit=None)
    assert frame.loc[0, "entry_price"] == 64123.1 and frame.loc[0, "qty"] == 3.3
    engine.dispose()


def test_the_backtest_report_csv_carries_no_float_noise() -> None:
    report = {"summary": {"fees": 13.635259128000001, "trades": 3, "cagr": None,
                          "sharpe": -11.030261405182863},
              "agents": [{"agent": "Momentum Hunter", "funding_paid": -1.2217341190000002}],
              "ceo_stats": {"halts": 0}, "drawdown_halt": {"held": True},
              "buy_and_hold": {"BTCUSDT": {"start_price": 64123.1 + 1e-11}},
              "agents_model": "agents ran on rules", "conventions": "Simple returns."}
    text = queries.report_rows(report).to_csv(index=False)
    values = {line.rsplit(",", 1)[0]: line.rsplit(",", 1)[1] for line in text.splitlines()[1:]}
    assert values["portfolio,desk,fees"] == "13.635259128"
    assert values["agent,Momentum Hunter,funding_paid"] == "-1.221734119"
    assert values["buy_and_hold,BTCUSDT,start_price"] == "64123.1"
    assert values["portfolio,desk,sharpe"] == "-11.0302614052"  # 12 significant digits
    assert values["portfolio,desk,trades"] == "3" and values["portfolio,desk,cagr"] == ""
    assert values["drawdown_halt,ceo,held"] == "True"
