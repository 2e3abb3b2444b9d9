"""The Backtest page through AppTest: the empty state, a run started from the form (background
thread, progress, then the report), a refused request, runs compared side by side and the CSV
downloads holding the run's trades and report."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import queries
from core.backtest import jobs
from core.backtest.params import build_params
from core.backtest.service import run_backtest
from core.config import PROJECT_ROOT
from tests.conftest import APP, make_settings
from tests.test_pages_ceo_positions_market import download, downloads  # noqa: F401 (fixture)

PAGE = "views/backtest.py"
DATA = PROJECT_ROOT / "data" / "klines"


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE)
    return at.run()


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def seed(db: Engine, app_env: str, *, ceo: bool, data_dir: Path = DATA) -> int:
    settings = make_settings(database_url=app_env)
    params, data = build_params(start="2025-10-08", end="2025-10-10", data_dir=data_dir, interval="15m",
                                symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], capital=100_000, ceo=ceo)
    return run_backtest(db, settings, params, data).run_id


def form(at: AppTest, **values: Any) -> None:
    fields = {"from": at.date_input[0], "to": at.date_input[1]}
    for key, value in values.items():
        if key in fields:
            fields[key].set_value(value)
        elif key == "symbols":
            at.multiselect(key="bt_symbols").set_value(value)
        elif key == "capital":
            at.text_input(key="bt_capital").set_value(value)
        elif key == "name":
            at.text_input(key="bt_name").set_value(value)
        elif key == "interval":
            at.selectbox[0].set_value(value)
        elif key == "ceo":
            at.toggle[0].set_value(value) if at.toggle[0].label == "CEO on" else \
                next(t for t in at.toggle if t.label == "CEO on").set_value(value)
    next(b for b in at.button if b.label == "Run backtest").click()


def test_the_empty_page_says_what_to_do(db: Engine) -> None:
    at = page()
    clean(at)
    assert at.title[0].value == "Backtest"
    assert any("No backtest yet" in i.value for i in at.info)
    assert any(b.label == "Run backtest" for b in at.button)


def test_a_run_from_the_form_shows_progress_then_its_report(db: Engine, app_env: str,
                                                           downloads) -> None:  # noqa: F811
    earlier = seed(db, app_env, ceo=True)
    at = page()
    assert any(s.value.startswith(f"Run {earlier}") for s in at.subheader)
    form(at, **{"from": date(2025, 10, 9), "to": date(2025, 10, 10), "symbols": ["BTCUSDT", "ETHUSDT"]})
    at.run()
    clean(at)
    runs = queries.backtest_runs(db)
    assert len(runs) == 2
    run_id = runs[0]["id"]
    jobs.wait(run_id, timeout=120)
    at.run()  # the fragment's poll (AppTest does not run timers): the run is done
    at.run()  # ... and the page shows the new run, not the one shown before
    clean(at)
    assert not at.error, [e.value for e in at.error]
    run = queries.backtest_run(db, run_id)
    assert run["status"] == "done" and run["params"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert any(s.value.startswith(f"Run {run_id}") for s in at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trades"] == f"{run['report']['summary']['trades']:,}"
    assert any("drawdown halt held" in s.value for s in at.success)
    trades = list(csv.DictReader(io.StringIO(download(at, downloads, "Trades"))))
    assert len(trades) == run["report"]["summary"]["trades"]
    assert {t["session_id"] for t in trades} == {str(run["session_id"])}
    report = list(csv.DictReader(io.StringIO(download(at, downloads, "Report"))))
    figures = {(r["section"], r["name"], r["figure"]): r["value"] for r in report}
    assert float(figures[("portfolio", "desk", "total_return")]) == pytest.approx(
        run["report"]["summary"]["total_return"])
    assert figures[("notes", "agents", "model")].startswith("agents ran on rules")
    statement = run["report"]["funding"]["statement"]  # BTC and ETH: recorded all along
    assert statement.endswith("all at Binance's recorded rates (funding history covers the whole "
                              "range).")
    assert figures[("notes", "funding", "statement")] == statement
    assert any(c.value == statement for c in at.caption)


def test_a_bad_request_is_refused_on_the_page(db: Engine) -> None:
    at = page()
    form(at, **{"from": date(2025, 10, 10), "to": date(2025, 10, 8)})
    at.run()
    clean(at)
    assert any("must be after" in e.value for e in at.error)
    assert queries.backtest_runs(db) == []


def test_the_form_refuses_bad_capital_in_words_and_starts_only_from_its_button(db: Engine) -> None:
    at = page()
    form_proto = at.get("form")[0].proto
    assert form_proto.form.enter_to_submit is False  # Enter in a field never starts a run
    symbols = at.multiselect(key="bt_symbols")
    assert symbols.options[:3] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]  # the bundled data's symbols
    for typed, said in (("abc", "capital must be a number of USDT, got 'abc'"),
                        ("99", "at least 100 USDT")):
        form(at, capital=typed)
        at.run()
        assert any(said in e.value for e in at.error), [e.value for e in at.error]
        assert queries.backtest_runs(db) == []  # refused, never replaced by a default


def test_two_runs_cannot_share_a_name(db: Engine, app_env: str) -> None:
    first = seed(db, app_env, ceo=True)
    again = seed(db, app_env, ceo=True)  # a generated name is numbered
    names = {r["id"]: r["name"] for r in queries.backtest_runs(db)}
    assert names[again] == f"{names[first]} (2)"
    at = page()
    form(at, **{"from": date(2025, 10, 9), "to": date(2025, 10, 10), "name": names[first]})
    at.run()
    assert any(f"already named {names[first]!r}" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert len(queries.backtest_runs(db)) == 2


def test_runs_are_listed_and_compared_side_by_side(db: Engine, app_env: str) -> None:
    with_ceo, without = seed(db, app_env, ceo=True), seed(db, app_env, ceo=False)
    at = page()
    clean(at)
    assert not at.error, [e.value for e in at.error]
    listed = at.dataframe[0].value
    assert list(listed["run"]) == [without, with_ceo]
    compare = at.dataframe[-1].value  # one row per run, one column per figure
    assert list(compare["run"]) == [f"#{r['id']} {r['name']}" for r in queries.backtest_runs(db)]
    assert sorted(compare["ceo"]) == ["off", "on"]
    assert pd.api.types.is_float_dtype(compare["total_return"])  # a number, shown as a percentage
    assert set(compare["range"]) == {"2025-10-08 → 2025-10-10"}
    assert len(at.get("plotly_chart")) >= 5  # equity, drawdown, agents, candles, comparison
    at.selectbox(key="bt_show").set_value(with_ceo).run()
    clean(at)
    assert any(s.value.startswith(f"Run {with_ceo}") for s in at.subheader)


def _table(at: AppTest, column: str) -> Any:
    """The page's one dataframe element with ``column``."""
    found = [d for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def test_report_tables_hold_numbers_and_leave_a_missing_figure_missing(db: Engine,
                                                                       app_env: str) -> None:
    """Sharpe, Sortino, profit factor and CAGR are number columns (right-aligned, sorted as
    numbers, not '10.2' before '9.1'); a figure the report leaves out (the CAGR of a three-day
    run) is a missing value the table shows as '–', never the text 'None' or '–' in the data."""
    run_id = seed(db, app_env, ceo=True)
    report = queries.backtest_run(db, run_id)["report"]
    at = page()
    clean(at)
    ratios = ["total_return", "cagr", "max_drawdown", "sharpe", "sortino", "profit_factor"]
    for marker, figures in (("agent", [*ratios, "win_rate", "trades", "fees", "net_pnl"]),
                            ("start_price", ["start_price", "end_price", "total_return", "cagr"]),
                            ("halt_held", [k for k, _ in queries.COMPARE_ROWS])):
        element = _table(at, marker)
        frame = element.value
        assert all(pd.api.types.is_numeric_dtype(frame[f]) for f in figures), frame.dtypes
        assert frame["cagr"].isna().all()  # three days: no annual figure, and no text for it
        config = json.loads(element.proto.columns)
        assert all(config[f]["type_config"]["type"] == "number" for f in figures), config
        assert element.proto.placeholder == "–"
    shown = _table(at, "agent").value.set_index("agent")
    for a in report["agents"]:
        for figure in ("sharpe", "sortino", "profit_factor", "cagr"):
            value = shown.loc[a["agent"], figure]
            assert pd.isna(value) if a[figure] is None else value == pytest.approx(a[figure])
    sharpe = shown["sharpe"].dropna()
    assert list(sharpe.sort_values()) == sorted(sharpe)  # numbers sort as numbers
    assert _table(at, "start_price").value.loc["BTCUSDT", "start_price"] == pytest.approx(
        report["buy_and_hold"]["BTCUSDT"]["start_price"])


def test_a_run_whose_data_folder_is_gone_still_shows_its_report(
        db: Engine, app_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.feeds import replay

    folder = tmp_path / "copied"
    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("*-1h.csv", "*-1m.csv"))
    run_id = seed(db, app_env, ceo=True, data_dir=folder)
    shutil.rmtree(folder)
    monkeypatch.setattr(replay, "_CACHE", {})  # as in a server started after the folder went
    at = page()
    clean(at)
    assert any(s.value.startswith(f"Run {run_id}") for s in at.subheader)
    assert any("The candles cannot be drawn" in w.value for w in at.warning)
    assert any(b.label == "Trades (CSV)" for b in at.get("download_button"))
    assert any(s.value == "Compare runs" for s in at.subheader)
