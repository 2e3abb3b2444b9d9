"""Gathers a backtest's report inputs from a store (the run's private store or the main one, the
figures are the same) and the recorded closes, then calls the pure ``report.build_report``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from core.backtest.funding import Payment, funding_section
from core.backtest.params import BacktestParams
from core.backtest.report import CurvePoint, Decision, Trade, build_report
from core.config import Settings
from core.exchanges.symbols import default_filters
from core.feeds.replay import ReplayData
from core.funding import FundingHistory
from core.models import INTERVAL_MS
from core.store.tables import AGENTS, CEO_DECISIONS, EQUITY_SNAPSHOTS, FUNDING, POSITIONS, SESSIONS

AGENTS_ON_RULES = ("agents ran on rules (this run did not replay recorded model replies: "
                   "--llm-cache, or 'Recorded model replies' on the Backtest page, does)")


def load_trades(conn: Any, session_id: int) -> list[Trade]:
    p, a = POSITIONS, AGENTS
    rows = conn.execute(
        select(a.c.name, p.c.symbol, p.c.side, p.c.opened_ms, p.c.closed_ms, p.c.realized_pnl,
               p.c.fees, p.c.funding, p.c.exit_qty, p.c.exit_price, p.c.close_reason)
        .join(a, a.c.id == p.c.agent_id)
        .where(p.c.session_id == session_id, p.c.status == "closed").order_by(p.c.id))
    return [Trade(r[0], r[1], r[2], int(r[3]), int(r[4]), float(r[5]), float(r[6]), float(r[7]),
                  float(r[8]), float(r[9] or 0.0), r[10] or "") for r in rows]


def load_curve(conn: Any, session_id: int) -> list[CurvePoint]:
    e = EQUITY_SNAPSHOTS
    rows = conn.execute(select(e.c.ts_ms, e.c.equity, e.c.gross_notional)
                        .where(e.c.session_id == session_id, e.c.agent_id.is_(None))
                        .order_by(e.c.ts_ms, e.c.id))
    return [CurvePoint(int(r[0]), float(r[1]), float(r[2])) for r in rows]


def load_decisions(conn: Any, session_id: int) -> list[Decision]:
    c = CEO_DECISIONS
    rows = conn.execute(select(c.c.kind, c.c.verdict, c.c.rules, c.c.changes, c.c.ts_ms)
                        .where(c.c.session_id == session_id).order_by(c.c.id))
    return [Decision(r[0], r[1], r[2] or "", json.loads(r[3]) if r[3] else None, int(r[4]))
            for r in rows]


def load_payments(conn: Any, session_id: int, history: FundingHistory) -> list[Payment]:
    """The run's funding settlements, each marked recorded or fallback: the venue settles from
    the history exactly where it covers the symbol (core/funding.py), the constant elsewhere."""
    f, a = FUNDING, AGENTS
    rows = conn.execute(select(a.c.name, f.c.symbol, f.c.amount, f.c.ts_ms)
                        .outerjoin(a, a.c.id == f.c.agent_id)
                        .where(f.c.session_id == session_id).order_by(f.c.ts_ms, f.c.id))
    return [Payment(r[0], r[1], float(r[2]), int(r[3]), history.covers(r[1], int(r[3])))
            for r in rows]


def funding_report(conn: Any, session_id: int, params: BacktestParams, history: FundingHistory,
                   settings: Settings, agents: list[str], end_ms: int) -> dict[str, Any]:
    spans = {s: ((found.times[0], found.times[-1]) if (found := history.series.get(s)) else None)
             for s in params.symbols}
    return funding_section(
        payments=load_payments(conn, session_id, history), agents=agents, symbols=params.symbols,
        history=spans,
        uncovered={s: history.uncovered(s, params.start_ms, end_ms) for s in params.symbols},
        fallback_rate=settings.paper_funding_rate,
        interval_hours=settings.paper_funding_interval_hours)


def price_window(data: ReplayData, params: BacktestParams) -> tuple[list[int], dict[str, list[float]]]:
    """Close times and closes of each symbol from the range's start (the price at the start)
    through its end."""
    step = INTERVAL_MS[params.interval]
    closes_ms = data.open_ms + step
    lo = max(0, int(np.searchsorted(closes_ms, params.start_ms, side="right")) - 1)
    hi = int(np.searchsorted(closes_ms, params.end_ms, side="right"))
    ts = [int(x) for x in closes_ms[lo:hi]]
    closes = {s: [float(x) for x in data.get(s, params.interval).cols["close"][lo:hi]]
              for s in params.symbols}
    return ts, closes


def compute_report(engine: Engine, session_id: int, params: BacktestParams, data: ReplayData,
                   settings: Settings) -> dict[str, Any]:
    with engine.connect() as conn:
        session = conn.execute(select(SESSIONS.c.start_ms, SESSIONS.c.clock_ms)
                               .where(SESSIONS.c.id == session_id)).one()
        agents = [(r[0], float(r[1])) for r in conn.execute(
            select(AGENTS.c.name, AGENTS.c.initial_capital)
            .where(AGENTS.c.session_id == session_id).order_by(AGENTS.c.id))]
        trades = load_trades(conn, session_id)
        curve = load_curve(conn, session_id)
        decisions = load_decisions(conn, session_id)
        funding = funding_report(conn, session_id, params, data.funding, settings,
                                 [name for name, _ in agents], int(session.clock_ms))
    price_ts, closes = price_window(data, params)
    report = build_report(
        initial=params.capital, start_ms=int(session.start_ms), end_ms=int(session.clock_ms),
        interval_ms=INTERVAL_MS[params.interval], ceo=params.ceo,
        halt_limit=settings.drawdown_halt_pct,
        closing_cost_rate=settings.paper_slippage_bps / 10_000 + settings.paper_taker_fee,
        tick_sizes={s: float(f.tick_size) for s, f in default_filters(params.symbols).items()},
        curve=curve, trades=trades, agents=agents, decisions=decisions, price_ts=price_ts,
        closes=closes, agents_note=AGENTS_ON_RULES,
    )
    report["funding"] = funding
    return report
