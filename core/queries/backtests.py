"""Backtest runs as the CLI and the Backtest page read them: the list (newest first, with each
run's headline figures), one run with its parameters and report, the report's tables (per agent,
buy-and-hold, runs side by side) with every figure a number and a missing one NaN, the report as
CSV rows, and the candles of the run's range with its entries and exits.

A run's trades, CEO log and equity curve are an ordinary session's (mode ``backtest``), so the
usual ``trades``/``ceo_log``/``equity_curve`` queries serve them with the run's ``session_id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from core.backtest.params import STALE_MS, day_of
from core.desk.lease import wall_ms
from core.models import INTERVAL_MS
from core.queries.common import PRICE_DIGITS
from core.queries.market import CANDLE_COLUMNS, MARKER_COLUMNS, MAX_MARKERS
from core.store.tables import AgentRow, BacktestRunRow, PositionRow

R = BacktestRunRow
COMPARE_ROWS = [
    ("total_return", "Total return"), ("cagr", "CAGR"), ("max_drawdown", "Max drawdown"),
    ("sharpe", "Sharpe"), ("sortino", "Sortino"), ("profit_factor", "Profit factor"),
    ("win_rate", "Win rate"), ("trades", "Trades"), ("fees", "Fees (USDT)"),
    ("funding_paid", "Funding paid (USDT)"), ("exposure_time", "Exposure (share of bars)"),
    ("final_equity", "Final equity (USDT)"),
]

COMPARE_SETUP = [("ceo", "CEO"), ("range", "Range"), ("symbols", "Symbols"),
                 ("interval", "Interval"), ("halt_held", "Drawdown halt held")]
AGENT_FIGURES = ("total_return", "cagr", "max_drawdown", "sharpe", "sortino", "profit_factor",
                 "win_rate", "trades", "fees", "funding_paid", "exposure_time", "net_pnl")
BUY_AND_HOLD_FIGURES = ("start_price", "end_price", "total_return", "cagr", "max_drawdown")
MAX_CANDLES = 2_000  # candles one chart draws


def _decode(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    if out.get("status") in ("running", "saving") and out.get("updated_ms") is not None \
            and wall_ms() - out["updated_ms"] > STALE_MS:
        out["status"] = "interrupted"  # its process stopped (restart, crash) before it finished
    out["params"] = json.loads(out["params"]) if out.get("params") else {}
    if "report" in out:
        out["report"] = json.loads(out["report"]) if out["report"] else None
    return out


def backtest_runs(engine: Engine, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first, each with its parameters and report (headline figures under ``report``)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(R.id, R.session_id, R.name, R.status, R.params, R.progress, R.ticks_done,
                   R.ticks_total, R.report, R.error, R.started_ms, R.updated_ms, R.finished_ms,
                   R.wall_seconds)
            .order_by(R.id.desc()).limit(limit)).all()
    return [_decode(r) for r in rows]


def backtest_run(engine: Engine, run_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(R.__table__).where(R.id == run_id)).first()
    return _decode(row) if row is not None else None


def backtest_progress(engine: Engine, run_id: int) -> dict[str, Any] | None:
    """The cheap poll while a run ticks: status, progress and error, no report."""
    with engine.connect() as conn:
        row = conn.execute(select(R.id, R.status, R.progress, R.ticks_done, R.ticks_total, R.error,
                                  R.session_id, R.updated_ms).where(R.id == run_id)).first()
    return _decode(row) if row is not None else None


def run_range(params: dict[str, Any]) -> str:
    """The run's days as the user named them: the first and the last (inclusive) day."""
    return f"{day_of(params['start_ms'])} → {day_of(params['end_ms'] - 1)}"


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` as numbers: a figure the report leaves out (None) becomes NaN, so the column
    stays numeric (right-aligned, sorted as numbers) and the table shows the gap as missing."""
    return frame.assign(**{c: pd.to_numeric(frame[c]) for c in columns})


def agent_table(report: dict[str, Any]) -> pd.DataFrame:
    """The report's per-agent figures, one row per agent, every figure a numeric column."""
    frame = pd.DataFrame(report["agents"], columns=["agent", *AGENT_FIGURES])
    return _numeric(frame, AGENT_FIGURES)


def buy_and_hold_table(report: dict[str, Any]) -> pd.DataFrame:
    """Buy-and-hold of each symbol, one row per symbol (the index), every figure numeric."""
    frame = pd.DataFrame.from_dict(report["buy_and_hold"], orient="index",
                                   columns=list(BUY_AND_HOLD_FIGURES))
    return _numeric(frame.rename_axis("symbol"), BUY_AND_HOLD_FIGURES)


def compare_runs(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run (runs without a report are skipped): its label, the headline figures of
    ``COMPARE_ROWS`` as numeric columns, then how it ran (``COMPARE_SETUP``)."""
    rows = []
    for r in runs:
        if not r.get("report"):
            continue
        s, p = r["report"]["summary"], r["params"]
        rows.append({
            "run": f"#{r['id']} {r['name']}", **{k: s.get(k) for k, _ in COMPARE_ROWS},
            "ceo": "on" if p.get("ceo", True) else "off", "range": run_range(p),
            "symbols": ",".join(p.get("symbols", [])), "interval": p.get("interval", ""),
            "halt_held": _held(r["report"]),
        })
    figures = [k for k, _ in COMPARE_ROWS]
    frame = pd.DataFrame(rows, columns=["run", *figures, *(k for k, _ in COMPARE_SETUP)])
    return _numeric(frame, figures)


def _held(report: dict[str, Any]) -> str:
    check = report.get("drawdown_halt") or {}
    if not check.get("applies"):
        return "n/a (CEO off)"
    return "yes" if check.get("held") else "NO"


def params_summary(report: dict[str, Any]) -> str:
    """The parameters a run traded on, in a line: the defaults, or the ones that differ."""
    values = report.get("agent_params")
    if values is None:
        return "not recorded (a run from before parameters were stored, on the defaults)"
    changed = report.get("agent_params_changed") or []
    if not changed:
        return "the defaults (strategies.toml as shipped)"
    return "defaults except " + ", ".join(f"{k} = {values[k]}" for k in changed)


def report_rows(report: dict[str, Any]) -> pd.DataFrame:
    """The report flattened to (section, name, figure, value) rows, for a CSV download; a float
    keeps ``PRICE_DIGITS`` significant digits (sums of fees print as 13.635259128, not
    13.635259128000001)."""
    rows: list[dict[str, Any]] = []
    for k, v in report["summary"].items():
        rows.append({"section": "portfolio", "name": "desk", "figure": k, "value": v})
    for a in report["agents"]:
        for k, v in a.items():
            if k != "agent":
                rows.append({"section": "agent", "name": a["agent"], "figure": k, "value": v})
    for k, v in report["ceo_stats"].items():
        if isinstance(v, dict):
            for rule, n in v.items():
                rows.append({"section": "ceo", "name": k, "figure": rule, "value": n})
        else:
            rows.append({"section": "ceo", "name": "ceo", "figure": k, "value": v})
    for k, v in report["drawdown_halt"].items():
        rows.append({"section": "drawdown_halt", "name": "ceo", "figure": k, "value": v})
    for sym, figures in report["buy_and_hold"].items():
        for k, v in figures.items():
            rows.append({"section": "buy_and_hold", "name": sym, "figure": k, "value": v})
    rows.append({"section": "notes", "name": "agents", "figure": "model", "value": report["agents_model"]})
    rows.append({"section": "notes", "name": "agents", "figure": "parameters",
                 "value": params_summary(report)})
    for key, value in (report.get("agent_params") or {}).items():  # what the agents ran on
        name, figure = key.rsplit(".", 1)
        rows.append({"section": "agent_params", "name": name, "figure": figure, "value": value})
    rows.append({"section": "notes", "name": "report", "figure": "conventions", "value": report["conventions"]})
    for row in rows:
        if isinstance(row["value"], float) and math.isfinite(row["value"]):
            row["value"] = float(f"{row['value']:.{PRICE_DIGITS}g}")
    return pd.DataFrame(rows, columns=["section", "name", "figure", "value"])


def backtest_candles(engine: Engine, run: dict[str, Any], symbol: str, interval: str = "1h",
                     limit: int = MAX_CANDLES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candles of ``symbol`` over the run's range (the last ``limit``) and its entries and exits."""
    from core.feeds.replay import load_replay_data  # local: loads the recorded data on demand

    p = run["params"]
    data = load_replay_data(Path(p["data_dir"]), p["interval"], tuple(p["symbols"]))
    series = data.get(symbol, interval if INTERVAL_MS[interval] >= INTERVAL_MS[p["interval"]]
                      else p["interval"])
    step = int(series.close_ms[0] - series.open_ms[0]) if len(series.open_ms) else 0
    keep = (series.open_ms >= p["start_ms"] - step) & (series.close_ms <= p["end_ms"])
    idx = keep.nonzero()[0][-limit:]
    candles = pd.DataFrame({
        "time": pd.to_datetime(series.open_ms[idx], unit="ms", utc=True),
        "open_time_ms": series.open_ms[idx],
        **{c: series.cols[c][idx].astype(float) for c in ("open", "high", "low", "close", "volume")},
    }, columns=CANDLE_COLUMNS)
    if candles.empty or run.get("session_id") is None:
        return candles, pd.DataFrame(columns=MARKER_COLUMNS)
    lo = int(candles["open_time_ms"].iloc[0])
    sid = run["session_id"]
    net = PositionRow.realized_pnl - PositionRow.fees + PositionRow.funding
    with engine.connect() as conn:
        rows = conn.execute(
            select(PositionRow.id, AgentRow.name, PositionRow.side, PositionRow.opened_ms,
                   PositionRow.entry_price, PositionRow.closed_ms, PositionRow.exit_price,
                   net.label("pnl"))
            .join(AgentRow, AgentRow.id == PositionRow.agent_id)
            .where(PositionRow.session_id == sid, PositionRow.symbol == symbol,
                   PositionRow.status == "closed", PositionRow.opened_ms >= lo)
            .order_by(PositionRow.opened_ms.desc()).limit(MAX_MARKERS)).all()
    marks = [{"ts_ms": r.opened_ms, "price": r.entry_price, "side": r.side, "agent": r.name,
              "kind": "entry", "realized_pnl": None, "trade_id": r.id} for r in rows]
    marks += [{"ts_ms": r.closed_ms, "price": r.exit_price, "side": r.side, "agent": r.name,
               "kind": "exit", "realized_pnl": round(float(r.pnl), 2), "trade_id": r.id}
              for r in rows]
    frame = pd.DataFrame(marks, columns=MARKER_COLUMNS[1:])
    frame.insert(0, "time", pd.to_datetime(frame["ts_ms"].astype("int64"), unit="ms", utc=True))
    return candles, frame.sort_values("ts_ms", kind="stable").reset_index(drop=True)


def recorded_symbols(data_dir: str | Path) -> list[str]:
    """The symbols a data folder has candles for (files named SYMBOL-INTERVAL.csv), sorted; an
    unreadable or missing folder has none."""
    try:
        names = [p.name for p in Path(data_dir).iterdir()]
    except OSError:
        return []
    found = {n.split("-", 1)[0].upper() for n in names
             if n.endswith(".csv") and "-" in n and not n.endswith("-funding.csv")}
    return sorted(found)
