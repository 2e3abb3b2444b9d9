"""One function per alerted event: the figures in, the outbox row (title, body, event id) out.

Why it exists apart from the writers: the engine, the service and the backtest each record an
event where it happens, in that event's transaction; the wording and the event id of each alert
are decided here once, so a trade reads the same whoever closed it and a hook is one call.
Event ids derive from the event (a CEO log row, a position, a run), never from the clock alone,
so the same event can never become two alerts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import Connection

from core.alerts.outbox import record
from core.models import ms_to_dt

SESSION_KINDS = {"created": "session_created", "paused": "session_paused",
                 "running": "session_resumed", "stopped": "session_stopped"}
CLOSE_KINDS = {"stop_loss": "trade_stopped", "liquidation": "trade_liquidated"}
CLOSE_WORDS = {"agent": "closed by its agent", "ceo": "closed by the CEO",
               "drawdown_halt": "closed by the drawdown halt",
               "session_stop": "closed as the session stopped", "user": "closed by the user",
               "take_profit": "take-profit filled", "stop_loss": "stop filled",
               "trailing_stop": "trailing stop filled",
               "liquidation": "liquidated", "reconcile": "closed at the venue (reconciled)"}
MAX_LINES = 20
SUMMARY_LINES = 24  # of a study report or a walk-forward headline, not its every window


def _when(ms: int | None) -> str:
    return f"{ms_to_dt(ms):%Y-%m-%d %H:%M} UTC" if ms is not None else "–"


def _usd(value: float, *, signed: bool = False) -> str:
    return f"{value:+,.2f} USDT" if signed else f"{value:,.2f} USDT"


def _qty(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".")


def session_changed(conn: Connection, *, session_id: int, decision_id: int, status: str,
                    reason: str, ts_ms: int) -> None:
    """A session entered ``status`` (created, paused, running again, stopped); other statuses
    (running from created, stopping, halted) are not alerted here."""
    kind = SESSION_KINDS.get(status)
    if kind is None:
        return
    word = {"running": "resumed"}.get(status, status)
    record(conn, kind=kind, event_id=f"ceo-{decision_id}", session_id=session_id, event_ms=ts_ms,
           title=f"Session {session_id} {word}",
           body=f"{reason[:1].upper()}{reason[1:]}.\nEngine time {_when(ts_ms)}.")


def session_halted(conn: Connection, *, session_id: int, decision_id: int, ts_ms: int,
                   equity: float, peak: float, drawdown: float, limit: float,
                   at_venue: bool) -> None:
    where = ("The venue's loss guard closed every position inside the bar. " if at_venue else "")
    record(conn, kind="session_halted", event_id=f"ceo-{decision_id}", session_id=session_id,
           event_ms=ts_ms,
           title=f"DRAWDOWN HALT: session {session_id} is {drawdown:.2%} below its peak",
           body=(f"Equity {_usd(equity)} is {drawdown:.2%} below the peak {_usd(peak)} "
                 f"(limit {limit * 100:g}%); loss from the peak {_usd(equity - peak, signed=True)}.\n"
                 f"{where}Orders cancelled, every position closed, agents stopped. Nothing "
                 "trades until you acknowledge the halt.\nEngine time "
                 f"{_when(ts_ms)}."))


def agent_changed(conn: Connection, *, session_id: int, decision_id: int, ts_ms: int,
                  agent: str, paused: bool, reason: str, by: str = "the CEO") -> None:
    """An agent paused or resumed (by the CEO, or by ``by``: "you" from the dashboard, CLI or
    API); ``reason`` is the CEO log's."""
    record(conn, kind="agent_paused" if paused else "agent_resumed",
           event_id=f"ceo-{decision_id}", session_id=session_id, event_ms=ts_ms,
           title=f"{agent} {'paused' if paused else 'resumed'} by {by}",
           body=f"{reason}.\nEngine time {_when(ts_ms)}.")


def trade_opened(conn: Connection, *, session_id: int, position_id: int, ts_ms: int, agent: str,
                 symbol: str, side: str, quantity: float, price: float, leverage: int,
                 margin: float, stop: float | None) -> None:
    stop_text = f", stop {stop:,.6g}" if stop else ""
    record(conn, kind="trade_opened", event_id=f"trade-opened-{position_id}",
           session_id=session_id, event_ms=ts_ms,
           title=f"Opened {side.lower()} {_qty(quantity)} {symbol} ({agent})",
           body=(f"{agent} opened {side.lower()} {_qty(quantity)} {symbol} at {price:,.6g}, "
                 f"{leverage}x, margin {_usd(margin)}{stop_text}.\n"
                 f"Position {position_id} · engine time {_when(ts_ms)}."))


def trade_closed(conn: Connection, *, session_id: int, position_id: int, ts_ms: int, agent: str,
                 symbol: str, side: str, quantity: float, entry: float, exit_price: float | None,
                 gross: float, fees: float, funding: float, reason: str) -> None:
    """A position closed; its stop and a liquidation get their own kinds (and severities)."""
    kind = CLOSE_KINDS.get(reason, "trade_closed")
    net = gross - fees + funding
    how = CLOSE_WORDS.get(reason, reason)
    exit_text = f"{exit_price:,.6g}" if exit_price else "–"
    record(conn, kind=kind, event_id=f"trade-closed-{position_id}", session_id=session_id,
           event_ms=ts_ms,
           title=f"{how[:1].upper()}{how[1:]}: {side.lower()} {symbol} ({agent}) "
                 f"{_usd(net, signed=True)}",
           body=(f"{agent} {side.lower()} {_qty(quantity)} {symbol}: entry {entry:,.6g}, exit "
                 f"{exit_text}; {how}.\nNet PnL {_usd(net, signed=True)} (gross "
                 f"{_usd(gross, signed=True)}, fees {_usd(fees)}, funding "
                 f"{_usd(funding, signed=True)}).\nPosition {position_id} · engine time "
                 f"{_when(ts_ms)}."))


def position_naked(conn: Connection, *, session_id: int, decision_id: int, ts_ms: int,
                   note: str) -> None:
    record(conn, kind="position_naked", event_id=f"ceo-{decision_id}", session_id=session_id,
           event_ms=ts_ms, title=f"Stop coverage: {note.split(':', 1)[0]}",
           body=f"{note}.\nEngine time {_when(ts_ms)}.")


def engine_failing(conn: Connection, *, session_id: int, since_ms: int, error: str) -> None:
    record(conn, kind="engine_failing", event_id=f"engine-failing-{session_id}-{since_ms}",
           session_id=session_id, title=f"Engine failing on session {session_id}",
           body=(f"Ticks fail: {error[:1000]}\nThe engine retries every tick, rebuilding from "
                 "the store; open positions keep their stops at the venue."))


def engine_recovered(conn: Connection, *, session_id: int, decision_id: int, ts_ms: int,
                     note: str) -> None:
    record(conn, kind="engine_recovered", event_id=f"ceo-{decision_id}", session_id=session_id,
           event_ms=ts_ms, title=f"Engine recovered on session {session_id}",
           body=note[:1500])


def reconciled(conn: Connection, *, session_id: int, first_decision_id: int, ts_ms: int,
               changes: Sequence[str]) -> None:
    lines = [f"- {c}" for c in changes[:MAX_LINES]]
    if len(changes) > MAX_LINES:
        lines.append(f"… and {len(changes) - MAX_LINES} more in the CEO log (kind reconcile)")
    record(conn, kind="reconcile_changes", event_id=f"ceo-{first_decision_id}",
           session_id=session_id, event_ms=ts_ms,
           title=f"Reconciled with the venue: {len(changes)} change"
                 f"{'s' if len(changes) != 1 else ''} (session {session_id})",
           body="The venue's truth was adopted:\n" + "\n".join(lines))


def llm_budget_spent(conn: Connection, *, session_id: int, decision_id: int, ts_ms: int,
                     note: str) -> None:
    record(conn, kind="llm_budget_spent", event_id=f"ceo-{decision_id}", session_id=session_id,
           event_ms=ts_ms, title=f"LLM budget spent on session {session_id}",
           body=f"{note}.\nEngine time {_when(ts_ms)}.")


def backtest_finished(conn: Connection, *, run_id: int, name: str, status: str,
                      session_id: int | None, summary: str) -> None:
    record(conn, kind="backtest_finished", event_id=f"backtest-{run_id}", session_id=session_id,
           severity="info" if status == "done" else "warning",
           title=f"Backtest {run_id} {status}: {name}", body=summary)


def study_finished(conn: Connection, *, name: str, kind: str, status: str, finished: int,
                   total: int, summary: str) -> None:
    """An optimisation study or a walk-forward ended; ``summary`` is what the CLI printed (the
    out-of-sample headline first for a walk-forward). A later join that finishes more trials
    is a new event."""
    what = "Walk-forward" if kind == "walkforward" else "Study"
    key = hashlib.sha256(name.encode()).hexdigest()[:16]
    record(conn, kind="study_finished", event_id=f"study-{key}-{finished}-{status}",
           severity="info" if status == "done" else "warning",
           title=f"{what} {name!r} {status}: {finished}/{total} trials",
           body="\n".join(summary.splitlines()[:SUMMARY_LINES]))
