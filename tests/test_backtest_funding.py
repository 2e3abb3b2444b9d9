"""A backtest settles funding from the recorded rates, each payment recomputed by hand from the
CSV rows, the candles and the positions; where SOL has no history (before 2025-02-01) it falls back
to the configured constant and the report, the CLI, the CSV and the session's log say so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from core import queries
from core.backtest.funding import Payment, funding_section
from core.backtest.params import build_params
from core.backtest.service import BacktestResult, run_backtest
from core.cli.backtest import format_report
from core.config import PROJECT_ROOT
from core.store.db import open_database
from tests.conftest import make_settings

DATA = PROJECT_ROOT / "data" / "klines"
H = 3_600_000
SOL_FIRST = 1_738_368_000_000  # 2025-02-01 00:00 UTC, SOL's first recorded funding
SYMBOLS = ("SOLUSDT", "BTCUSDT", "ETHUSDT")
CONSTANT = 0.0001


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, BacktestResult]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('btf') / 'desk.db'}"
    engine = open_database(url)
    params, data = build_params(start="2025-01-27", end="2025-02-04", data_dir=DATA,
                                interval="1h", symbols=list(SYMBOLS), capital=100_000)
    yield engine, run_backtest(engine, make_settings(database_url=url), params, data)
    engine.dispose()


def _rows(engine: Engine, sql: str, sid: int) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(text(sql), conn, params={"s": sid})


def _funding_times(symbol: str, start_ms: int, end_ms: int) -> dict[int, float]:
    """Every funding time of the range with its rate, by hand: the CSV's rows where it has them,
    the 8 h grid at the constant before SOL's first row."""
    rows = pd.read_csv(DATA / f"{symbol}-funding.csv")
    out = {int(t): float(r) for t, r in zip(rows["funding_time_ms"], rows["rate"], strict=True)
           if start_ms <= t < end_ms}
    first = int(rows["funding_time_ms"].iloc[0])
    out |= {t: CONSTANT for t in range(start_ms - start_ms % (8 * H), min(first, end_ms), 8 * H)
            if t >= start_ms}
    return out


def test_every_payment_is_the_csv_rate_on_the_position_at_the_bars_open(
        run: tuple[Engine, BacktestResult]) -> None:
    engine, result = run
    sid = result.session_id
    positions = _rows(engine, "select id, symbol, side, exit_qty, opened_ms, closed_ms, funding "
                      "from positions where session_id = :s and status = 'closed'", sid)
    paid = _rows(engine, "select position_id, symbol, amount, rate, ts_ms from funding "
                 "where session_id = :s", sid)
    start, end = result.report["run"]["params"]["start_ms"], result.report["run"]["params"]["end_ms"]
    expected = []
    for symbol in SYMBOLS:
        opens = pd.read_csv(DATA / f"{symbol}-1h.csv").set_index("open_time_ms")["open"]
        for t, rate in _funding_times(symbol, start, end).items():
            for p in positions[positions["symbol"] == symbol].itertuples():
                if p.opened_ms <= t < p.closed_ms:  # held when the bar of the funding time opened
                    sign = 1 if p.side == "LONG" else -1
                    expected.append((p.id, symbol, round(-sign * p.exit_qty * opens[t] * rate, 8),
                                     rate, t))
    got = sorted((int(r.position_id), r.symbol, round(r.amount, 8), r.rate, int(r.ts_ms))
                 for r in paid.itertuples())
    assert got == sorted(expected)
    sol_fallback = [g for g in got if g[1] == "SOLUSDT" and g[4] < SOL_FIRST]
    assert sol_fallback and all(g[3] == CONSTANT for g in sol_fallback)
    assert any(g[3] != CONSTANT for g in got if g[1] == "SOLUSDT")  # recorded rates after it
    by_position = paid.groupby("position_id")["amount"].sum()
    for p in positions.itertuples():
        assert p.funding == pytest.approx(by_position.get(p.id, 0.0), abs=1e-9)


def test_the_report_counts_recorded_and_fallback_settlements_and_names_the_period(
        run: tuple[Engine, BacktestResult]) -> None:
    engine, result = run
    sid, report = result.session_id, result.report
    funding = report["funding"]
    paid = _rows(engine, "select a.name as agent, f.symbol, f.amount, f.ts_ms from funding f "
                 "join agents a on a.id = f.agent_id where f.session_id = :s", sid)
    fallback = paid[(paid["symbol"] == "SOLUSDT") & (paid["ts_ms"] < SOL_FIRST)]
    assert (funding["settlements"], funding["from_fallback"], funding["from_history"]) == (
        len(paid), len(fallback), len(paid) - len(fallback))
    start = report["run"]["params"]["start_ms"]
    assert [(p["symbol"], p["from_ms"], p["to_ms"], p["settlements"])
            for p in funding["fallback_periods"]] == [("SOLUSDT", start, SOL_FIRST, len(fallback))]
    for a in funding["per_agent"]:
        mine = paid[paid["agent"] == a["agent"]]["amount"]
        assert a["paid"] == pytest.approx(-mine[mine < 0].sum())
        assert a["received"] == pytest.approx(mine[mine > 0].sum())
        figures = next(x for x in report["agents"] if x["agent"] == a["agent"])
        assert figures["funding_paid"] == pytest.approx(a["paid"] - a["received"], abs=1e-9)
    assert report["summary"]["funding_paid"] == pytest.approx(-paid["amount"].sum(), abs=1e-9)
    assert funding["net"] == pytest.approx(paid["amount"].sum())
    period = "SOLUSDT 2025-01-27 00:00 UTC → 2025-02-01 00:00 UTC"
    assert f"{period} ({len(fallback)} settled)" in funding["statement"]
    assert "at the configured 0.0100% every 8 h where the data has no funding history" in \
        funding["statement"]
    # the CLI, the CSV and the session's log say it too
    shown = format_report(report)
    assert funding["statement"] in shown
    assert all(f"{a['agent']:<20} funding paid {a['paid']:,.2f}" in shown
               for a in funding["per_agent"])
    csv = queries.report_rows(report)
    rows = csv[csv["section"] == "funding_fallback"]
    assert rows[["name", "value"]].values.tolist() == [["SOLUSDT", len(fallback)]]
    assert set(csv[csv["section"] == "funding_agent"]["name"]) == {a["agent"] for a in report["agents"]}
    assert funding["statement"] in csv["value"].astype(str).tolist()
    log = _rows(engine, "select reason from ceo_decisions where session_id = :s and "
                "kind = 'session'", sid)["reason"].tolist()
    assert funding["statement"] in log


def test_the_statement_when_the_history_covers_everything_and_when_it_covers_nothing() -> None:
    payments = [Payment("A", "BTCUSDT", -1.5, 0, True), Payment("A", "BTCUSDT", 0.25, 8 * H, True),
                Payment("B", "XRPUSDT", -0.1, 8 * H, False)]
    section: dict[str, Any] = funding_section(
        payments=payments[:2], agents=["A", "B"], symbols=["BTCUSDT"],
        history={"BTCUSDT": (0, 8 * H)}, uncovered={"BTCUSDT": []}, fallback_rate=CONSTANT,
        interval_hours=8)
    assert section["statement"] == ("Funding: paid 1.50 USDT, received 0.25 (net -1.25) over 2 "
                                    "settlements, all at Binance's recorded rates (funding history "
                                    "covers the whole range).")
    assert [(a["agent"], a["paid"], a["received"], a["settlements"]) for a in section["per_agent"]] \
        == [("A", 1.5, 0.25, 2), ("B", 0, 0, 0)]
    mixed = funding_section(
        payments=payments, agents=["A", "B"], symbols=["BTCUSDT", "XRPUSDT"],
        history={"BTCUSDT": (0, 8 * H), "XRPUSDT": None},
        uncovered={"BTCUSDT": [], "XRPUSDT": [(0, 16 * H)]}, fallback_rate=CONSTANT,
        interval_hours=8)
    assert (mixed["from_history"], mixed["from_fallback"]) == (2, 1)
    assert mixed["per_symbol"][1] == {
        "symbol": "XRPUSDT", "history_from_ms": None, "history_to_ms": None, "paid": 0.1,
        "received": 0, "net": -0.1, "settlements": 1, "from_history": 0, "from_fallback": 1}
    assert mixed["statement"].endswith(
        "2 at Binance's recorded rates, 1 at the configured 0.0100% every 8 h where the data has "
        "no funding history: XRPUSDT 1970-01-01 00:00 UTC → 1970-01-01 16:00 UTC (1 settled).")
