"""User intents on sessions and agents, shared by the CLI and the dashboard.

Every command validates first and changes nothing when it refuses (``InvalidTransition``,
``NotFound``, ``ConfigError`` with a readable message). Status changes are written to the store; the
engine adopts them on its next tick. Stopping needs a market to close into: when no engine holds
the session's lease, ``stop_session`` runs the closing cycle itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from core.agents import strategy_file
from core.agents.base import AgentSpec
from core.agents.desk_params import DeskParams
from core.agents.roster import EXTERNAL, ROSTER, find_spec, session_roster
from core.alerts import events as alerts
from core.alerts.sender import AlertSender, TestResult, send_test
from core.alerts.targets import AlertConfig
from core.config import Settings
from core.desk.context import ACTIVE_SESSION
from core.desk.lease import holder, new_owner_id, wall_ms
from core.desk.ledger import insert_session
from core.desk.live_runtime import live_session_start
from core.desk.runtime import agent_model_label, paper_account_id
from core.errors import ConfigError, FeedError, InvalidTransition, NotFound
from core.exchanges.paper import PaperExchange
from core.feeds.replay import ReplayFeed, load_replay_data
from core.funding import coverage_note
from core.models import ms_to_dt, parse_capital, symbol_list, validate_capital
from core.queries.session import external_signal, manual_order, resolve_session
from core.store.tables import (
    AgentRow,
    AlertDeliveryRow,
    AlertRow,
    CeoDecisionRow,
    ExternalSignalRow,
    ManualOrderRow,
    OrderRow,
    PositionRow,
    SessionRow,
)

TRANSITIONS: dict[str, dict[str, str]] = {
    "pause": {"running": "paused"},
    "resume": {"paused": "running", "halted": "running"},
    "stop": {"created": "stopped", "running": "stopping", "paused": "stopping", "halted": "stopping"},
}


@dataclass(frozen=True, slots=True)
class SessionRef:
    id: int
    name: str
    status: str


def _log(conn: Connection, session_id: int, ts_ms: int, kind: str, reason: str, *,
         agent_id: int | None = None, changes: dict | None = None) -> int:
    """Write one CEO log row; returns its id (the event id of an alert that tells it)."""
    return int(conn.execute(insert(CeoDecisionRow).values(
        session_id=session_id, agent_id=agent_id, ts_ms=ts_ms, kind=kind, rules="",
        reason=reason, changes=json.dumps(changes) if changes else None)).inserted_primary_key[0])


def create_session(
    engine: Engine,
    settings: Settings,
    *,
    capital: float | None = None,
    mode: str = "paper",
    symbols: list[str] | None = None,
    name: str | None = None,
    agent_params: DeskParams | None = None,
) -> SessionRef:
    # --- live: a live session trades the account's balance on the live feed
    if mode not in ("paper", "live"):
        raise ConfigError(f"unknown mode {mode!r}: use paper or live")
    source = "asterdex" if mode == "live" else settings.market_source
    if mode == "paper":
        capital = validate_capital(settings.default_capital if capital is None else capital)
    chosen = symbol_list(settings.symbol_list if symbols is None else symbols)
    # stored with the session: its engine runs on that copy
    params = strategy_file.load(settings.strategies_file) if agent_params is None else agent_params
    funding_note: str | None = None
    if source == "asterdex":  # the venue's symbols and clock (and, live, its balance)
        live_capital, start_ms = live_session_start(settings, mode, capital, chosen)
        capital = validate_capital(live_capital if live_capital is not None
                                   else settings.default_capital)
    else:
        try:
            data = load_replay_data(settings.replay_data_dir, settings.replay_interval, chosen)
        except FeedError as exc:
            raise ConfigError(f"no market data for {', '.join(chosen)}: {exc}") from None
        start_ms = settings.replay_start_ms
        feed = ReplayFeed(data, start_ms=start_ms)  # validates the start lies inside the data
        start_ms = feed.now_ms()
        # where the replay settles recorded funding, and where it cannot
        funding_note = coverage_note(data.funding, chosen, start_ms, feed.last_ms(),
                                     fallback_rate=settings.paper_funding_rate,
                                     interval_hours=settings.paper_funding_interval_hours)
    assert capital is not None
    with engine.begin() as conn:
        active = conn.execute(
            select(SessionRow.id, SessionRow.name, SessionRow.status)
            .where(SessionRow.status.in_(ACTIVE_SESSION))
        ).first()
        if active is not None:
            raise InvalidTransition(
                f"session {active.id} ({active.name}) is still {active.status}; stop it first "
                f"(python -m core session stop --session {active.id})")
        count = conn.scalar(select(func.count()).select_from(SessionRow)
                            .where(SessionRow.mode != "backtest")) or 0
        session_name = (name or f"{mode.capitalize()} desk #{count + 1}").strip()[:120]
        session_id = insert_session(
            conn, name=session_name, mode=mode, source=source, symbols=chosen, capital=capital,
            interval=settings.replay_interval, start_ms=start_ms,
            model_of=lambda spec: agent_model_label(settings, spec),
            roster=session_roster(settings.external_signals_share, params.specs()),
            params=params)
        reason = (f"session created: {capital:,.2f} USDT {mode} capital on {', '.join(chosen)}, "
                  f"{'replay' if source == 'replay' else 'AsterDex feed'} from "
                  f"{ms_to_dt(start_ms):%Y-%m-%d %H:%M} UTC")
        alerts.session_changed(conn, session_id=session_id, status="created", reason=reason,
                               decision_id=_log(conn, session_id, start_ms, "session", reason),
                               ts_ms=start_ms)
        if funding_note is not None:
            _log(conn, session_id, start_ms, "session", funding_note)
    if mode == "paper":  # live: a live session's money is the venue account
        try:
            PaperExchange.open_account(engine, paper_account_id(session_id), Decimal(repr(capital)))
        except BaseException:  # no session is left behind without its account
            with engine.begin() as conn:
                conn.execute(delete(AlertDeliveryRow).where(AlertDeliveryRow.alert_id.in_(
                    select(AlertRow.id).where(AlertRow.session_id == session_id))))
                for table, key in ((AlertRow, AlertRow.session_id),
                                   (CeoDecisionRow, CeoDecisionRow.session_id),
                                   (AgentRow, AgentRow.session_id), (SessionRow, SessionRow.id)):
                    conn.execute(delete(table).where(key == session_id))
            raise
    return SessionRef(session_id, session_name, "created")


def change_session(engine: Engine, session_id: int | None, action: str) -> SessionRef:
    """pause | resume | stop: validate the transition, then record it (nothing changes if refused)."""
    row = resolve_session(engine, session_id)
    allowed = TRANSITIONS[action]
    if row.status not in allowed:
        raise InvalidTransition(
            f"cannot {action} session {row.id}: it is {row.status}"
            + (" (stopping already requested)" if row.status == "stopping" else ""))
    new = allowed[row.status]
    with engine.begin() as conn:
        changed = conn.execute(
            update(SessionRow).where(SessionRow.id == row.id, SessionRow.status == row.status)
            .values(status=new, status_reason=f"{action} by user",
                    intent_version=SessionRow.intent_version + 1)
        ).rowcount
        if not changed:
            raise InvalidTransition(f"session {row.id} changed while you asked; try again")
        reason = f"{row.status} → {new}: {action} by user"
        if action == "resume" and row.status == "halted":
            # acknowledging a halt: a fresh peak, and the agents the halt stopped trade again
            conn.execute(update(SessionRow).where(SessionRow.id == row.id).values(peak_equity=0.0))
            conn.execute(update(AgentRow).where(AgentRow.session_id == row.id,
                                                AgentRow.status == "stopped")
                         .values(status="active", pause_reason=None, peak_equity=0.0,
                                 review_from_ms=row.clock_ms))
            reason = "halted → running: drawdown halt acknowledged by user; peak reset"
        if new == "stopped":
            conn.execute(update(SessionRow).where(SessionRow.id == row.id)
                         .values(stopped_ms=row.clock_ms))
            conn.execute(update(AgentRow).where(AgentRow.session_id == row.id)
                         .values(status="stopped", pause_reason="session stopped"))
        alerts.session_changed(conn, session_id=row.id, status=new, reason=reason,
                               decision_id=_log(conn, row.id, row.clock_ms, "session", reason),
                               ts_ms=row.clock_ms)  # stopping: the engine alerts "stopped"
    return SessionRef(row.id, row.name, new)


def stop_session(engine: Engine, settings: Settings, session_id: int | None) -> SessionRef:
    """Request a stop and, when no engine is trading the session, carry it out now (also for a
    session left in ``stopping`` by an engine that is gone)."""
    row = resolve_session(engine, session_id)
    if row.status == "stopping":
        ref = SessionRef(row.id, row.name, row.status)
    else:
        ref = change_session(engine, session_id, "stop")
    if ref.status == "stopped":
        return ref
    if holder(engine, ref.id, settings.engine_lease_stale_seconds) is not None:
        return ref  # the running engine closes everything on its next tick
    from core.desk.scheduler import EngineDriver  # local: the driver imports the runtime

    driver = EngineDriver(settings, engine, session_id=ref.id, owner=new_owner_id())
    try:
        for _ in range(3):
            report = driver.tick()
            if report is None or report.status == "stopped":
                break
    finally:
        driver.stop()
    final = resolve_session(engine, ref.id)
    return SessionRef(final.id, final.name, final.status)


def _spec(agent_name: str) -> AgentSpec:
    spec = find_spec(agent_name)
    if spec is None:
        names = ", ".join(s.name for s in ROSTER)
        raise NotFound(f"no agent {agent_name!r}; agents are: {names}")
    return spec


def agent_name(given: str | None) -> str | None:
    """The roster name of an agent named by its name or key in any case (a filter's value);
    None stays None, an unknown one is refused (ConfigError) with the roster."""
    if given is None or not given.strip():
        return None
    spec = find_spec(given.strip())
    if spec is None:
        raise ConfigError(f"no agent {given!r}; agents: " + ", ".join(
            f"{s.name} ({s.key})" for s in ROSTER))
    return spec.name


def change_agent(engine: Engine, session_id: int | None, agent_name: str, action: str) -> str:
    """Pause or resume one agent by name or key; returns the readable outcome."""
    spec = _spec(agent_name)
    row = resolve_session(engine, session_id)
    if row.status in ("stopped", "stopping"):
        raise InvalidTransition(f"session {row.id} is {row.status}; its agents cannot change")
    with engine.begin() as conn:
        agent = conn.execute(
            select(AgentRow.id, AgentRow.status, AgentRow.pause_reason, AgentRow.paused_by)
            .where(AgentRow.session_id == row.id, AgentRow.key == spec.key)
        ).one()
        if action == "pause":
            if agent.status != "active":
                raise InvalidTransition(f"{spec.name} is {agent.status}, not active")
            return _pause(conn, row, agent, spec.name, "paused by user")
        if action != "resume":
            raise ValueError(action)
        if agent.status != "paused":
            raise InvalidTransition(f"{spec.name} is {agent.status}, not paused")
        _set_agent(conn, row, agent, spec.name, {
            "status": "active", "pause_reason": None, "peak_equity": 0.0,
            "review_from_ms": row.clock_ms, "paused_ms": None, "paused_by": None})
        # a user's own pause needs no recalling ("was paused: paused by user")
        detail = "" if agent.paused_by == "user" else f" (was paused: {agent.pause_reason})"
        reason = f"{spec.name} resumed by user{detail}"
        decision_id = _log(conn, row.id, row.clock_ms, "resume", reason, agent_id=agent.id,
                           changes={"status": [agent.status, "active"]})
        alerts.agent_changed(conn, session_id=row.id, decision_id=decision_id, ts_ms=row.clock_ms,
                             agent=spec.name, paused=False, reason=reason, by="you")
    return f"{spec.name}: {agent.status} → active"


def _pause(conn: Connection, row: SessionRow, agent: Any, name: str, reason: str) -> str:
    _set_agent(conn, row, agent, name, {"status": "paused", "pause_reason": reason,
                                        "paused_ms": row.clock_ms, "paused_by": "user"})
    decision_id = _log(conn, row.id, row.clock_ms, "pause", f"{name} {reason}", agent_id=agent.id,
                       changes={"status": [agent.status, "paused"]})
    alerts.agent_changed(conn, session_id=row.id, decision_id=decision_id, ts_ms=row.clock_ms,
                         agent=name, paused=True, reason=f"{name} {reason}", by="you")
    return f"{name}: {agent.status} → paused"


def _set_agent(conn: Connection, row: SessionRow, agent: Any, name: str,
               values: dict[str, Any]) -> None:
    """Change one agent's status if nobody changed it meanwhile; the engine adopts it next tick."""
    changed = conn.execute(update(AgentRow).where(AgentRow.id == agent.id,
                                                  AgentRow.status == agent.status)
                           .values(**values)).rowcount
    if not changed:
        raise InvalidTransition(f"{name} changed while you asked; try again")
    conn.execute(update(SessionRow).where(SessionRow.id == row.id)
                 .values(intent_version=SessionRow.intent_version + 1))


# --- a trader's own orders -------------------------------------------------------------
RESTING = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class ManualOutcome:
    """How a trader's close, cancel or flatten stands: ``pending`` (the running engine carries it
    out on its next tick), ``done``, ``refused`` or ``failed``, with what happened in ``note``."""

    id: int
    session_id: int
    kind: str
    status: str
    note: str


def close_position(engine: Engine, settings: Settings, position_id: int) -> ManualOutcome:
    """Close one open position at market (reduce-only); its stop and take-profit are cancelled
    once the close fills."""
    with Session(engine) as db:
        pos = db.get(PositionRow, position_id)
        if pos is None:
            raise NotFound(f"no position {position_id}")
        if pos.status != "open":
            raise InvalidTransition(f"position {position_id} is {pos.status}, not open")
        session_id = pos.session_id
    return _order(engine, settings, session_id, "close", position_id)


def cancel_order(engine: Engine, settings: Settings, order_id: int) -> ManualOutcome:
    """Cancel one resting order; a position's only stop is refused (close the position instead)."""
    with Session(engine) as db:
        order = db.get(OrderRow, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        if order.status not in RESTING:
            raise InvalidTransition(f"order {order_id} is {order.status}, not resting")
        session_id = order.session_id
    return _order(engine, settings, session_id, "cancel", order_id)


def flatten_agent(engine: Engine, settings: Settings, session_id: int | None,
                  agent_name: str) -> ManualOutcome:
    """Pause one agent (if it is active) and close every position it holds at market."""
    spec = _spec(agent_name)
    row = resolve_session(engine, session_id)
    if row.status not in ("running", "paused", "halted", "created"):
        raise InvalidTransition(f"session {row.id} is {row.status}; its agents cannot change")
    with engine.begin() as conn:
        agent = conn.execute(select(AgentRow.id, AgentRow.status, AgentRow.pause_reason,
                                    AgentRow.paused_by)
                             .where(AgentRow.session_id == row.id, AgentRow.key == spec.key)).one()
        if agent.status == "active":
            _pause(conn, row, agent, spec.name, "flattened by user")
    return _order(engine, settings, row.id, "flatten", agent.id)


def _order(engine: Engine, settings: Settings, session_id: int, kind: str,
           target_id: int) -> ManualOutcome:
    """Queue the order; when no engine trades the session, carry it out now (as a stop does)."""
    with engine.begin() as conn:
        order_id = conn.execute(insert(ManualOrderRow).values(
            session_id=session_id, kind=kind, target_id=target_id, status="pending",
            created_ms=wall_ms())).inserted_primary_key[0]
    if holder(engine, session_id, settings.engine_lease_stale_seconds) is None:
        from core.desk.scheduler import EngineDriver  # local: the driver imports the runtime

        driver = EngineDriver(settings, engine, session_id=session_id, owner=new_owner_id(),
                              hold_market=True)
        try:
            driver.tick()
        finally:
            driver.stop()
    return manual_outcome(engine, int(order_id))


def manual_outcome(engine: Engine, order_id: int) -> ManualOutcome:
    found = manual_order(engine, order_id)
    return ManualOutcome(found["id"], found["session_id"], found["kind"], found["status"],
                         found["note"] or "queued: the running engine carries it out on its next "
                                          "tick")


# --- external signals ------------------------------------------------------------------
SIGNAL_SIDES = ("long", "short", "close")


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    """How an external signal stands: ``pending`` / ``working`` (the running engine proposes it on
    its next tick), ``judged`` with the CEO's ``verdict`` (approve, modify or reject) and reason
    in ``outcome``, or ``refused`` / ``expired`` / ``failed`` with the reason."""

    id: int
    session_id: int
    symbol: str
    side: str
    status: str
    verdict: str | None
    decision_id: int | None
    outcome: str | None


def submit_signal(engine: Engine, settings: Settings, *, symbol: str, side: str,
                  session_id: int | None = None, stop_price: float | None = None,
                  take_profit: float | None = None, confidence: float = 0.5, leverage: int = 3,
                  margin_fraction: float = 0.10, note: str = "",
                  source: str | None = None) -> SignalOutcome:
    """Queue a trade idea for the External signals agent of a running session; the engine
    proposes it on its next tick and the CEO judges it under the hard rules. Refused in words
    (ConfigError, InvalidTransition, NotFound) when it could not be proposed."""
    (symbol,) = symbol_list([symbol])
    if side not in SIGNAL_SIDES:
        raise ConfigError(f"side must be one of {', '.join(SIGNAL_SIDES)}, got {side!r}")
    for name, value in (("stop_price", stop_price), ("take_profit", take_profit)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive price, got {value!r}")
    if not (math.isfinite(confidence) and 0 <= confidence <= 1):
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence!r}")
    if not (math.isfinite(margin_fraction) and 0 < margin_fraction <= 1):
        raise ConfigError(f"margin_fraction must be above 0 and at most 1, got {margin_fraction!r}")
    if not 1 <= leverage <= 125:
        raise ConfigError(f"leverage must be 1 to 125, got {leverage!r}")
    row = resolve_session(engine, session_id)
    if row.status not in ("running", "created"):
        raise InvalidTransition(f"session {row.id} is {row.status}; a signal is proposed only "
                                "while it runs")
    if symbol not in row.symbols.split(","):
        raise ConfigError(f"session {row.id} does not trade {symbol} (it trades {row.symbols})")
    with engine.connect() as conn:
        agent = conn.execute(select(AgentRow.status, AgentRow.pause_reason).where(
            AgentRow.session_id == row.id, AgentRow.key == EXTERNAL.key)).first()
    if agent is None:
        raise ConfigError(f"session {row.id} has no {EXTERNAL.name} agent: set "
                          "EXTERNAL_SIGNALS_SHARE (e.g. 0.1) and create a new session")
    if agent.status != "active":
        raise InvalidTransition(f"{EXTERNAL.name} is {agent.status}"
                                + (f" ({agent.pause_reason})" if agent.pause_reason else "")
                                + "; resume it first")
    if holder(engine, row.id, settings.engine_lease_stale_seconds) is None:
        raise InvalidTransition(f"no engine trades session {row.id}: start it (./desk start "
                                "or ./desk engine); a signal is proposed on its next tick")
    with engine.begin() as conn:
        signal_id = conn.execute(insert(ExternalSignalRow).values(
            session_id=row.id, symbol=symbol, side=side, leverage=leverage,
            margin_fraction=margin_fraction, stop_price=stop_price, take_profit=take_profit,
            confidence=confidence, note=note.strip()[:500] or None,
            source=(source or "").strip()[:60] or None, status="pending",
            received_ms=wall_ms())).inserted_primary_key[0]
    return signal_outcome(engine, int(signal_id))


def signal_outcome(engine: Engine, signal_id: int) -> SignalOutcome:
    found = external_signal(engine, signal_id)
    outcome = found["outcome"]
    if found["status"] in ("pending", "working"):
        outcome = "queued: the running engine proposes it on its next tick"
    return SignalOutcome(found["id"], found["session_id"], found["symbol"], found["side"],
                         found["status"], found["verdict"], found["decision_id"], outcome)


# --- backtests ------------------------------------------------------------------------
def save_strategy_params(settings: Settings, values: dict[str, float | int | str]) -> str:
    """Change parameters in the strategy file (new sessions and backtests start on it; a running
    session keeps the copy it stored). Every value is validated through the same models as the
    file; a refused one raises ``InvalidParams`` and the file stays as it was. Returns what
    changed, in words."""
    path = settings.strategies_file
    current = strategy_file.load(path)
    wanted = current.with_values(values)
    changed = wanted.differences(current)
    if not changed:
        return f"nothing to save: {path.name} already has these values"
    strategy_file.write(path, wanted)
    said = ", ".join(f"{k} {old} → {new}" for k, (new, old) in changed.items())
    return f"saved to {path.name} for new sessions and backtests: {said}"


def read_capital(text: str) -> float:
    """Capital as typed in a form ("100,000"), refused in words (ConfigError) unless it is a
    valid amount: the dashboard says why and creates nothing, never substitutes a default."""
    return parse_capital(text)


def start_backtest(engine: Engine, settings: Settings, **request: object) -> int:
    """Validate a backtest request and run it in the background (see core/backtest/jobs.py)."""
    from core.backtest.jobs import start_backtest as start  # local: the backtest imports the desk

    return start(engine, settings, **request)  # type: ignore[arg-type]


def record_dead_backtests(engine: Engine) -> list[int]:
    """Mark as interrupted the runs whose process died mid-run or mid-save (see
    ``core.backtest.service.record_dead_runs``); the run this process is running is alive."""
    from core.backtest.jobs import running_run
    from core.backtest.service import record_dead_runs

    return record_dead_runs(engine, running_run())


def running_backtest() -> int | None:
    """The run id of the backtest this process is running, if any."""
    from core.backtest.jobs import running_run

    return running_run()


# --- research -------------------------------------------------------------------------
def research_spec(settings: Settings, *, agents: list[str], start: str, end: str, interval: str,
                  symbols: list[str], capital: float, data_dir: str | None = None,
                  objective: str = "sharpe", max_drawdown_pct: float | None = None,
                  min_trades: int | None = None, seed: int | None = None,
                  ceo: bool = True) -> Any:
    """What a study searches, validated (agents, objective, bounds); ConfigError in words."""
    from core.research.agents import agent_list
    from core.research.trial import StudySpec

    if max_drawdown_pct is not None and not 0 < max_drawdown_pct < 100:
        raise ConfigError(f"the drawdown cap is a percentage between 0 and 100, got "
                          f"{max_drawdown_pct}")
    return StudySpec(agents=agent_list(agents), start=start, end=end, interval=interval,
                     symbols=symbol_list(symbols), capital=validate_capital(capital),
                     data_dir=str(data_dir or settings.replay_data_dir), objective=objective,
                     max_drawdown=None if max_drawdown_pct is None else max_drawdown_pct / 100,
                     min_trades=min_trades, ceo=ceo, seed=seed,
                     base=strategy_file.load(settings.strategies_file).to_json())


def start_study(settings: Settings, *, name: str, trials: int, workers: int,
                **request: Any) -> Any:
    """Validate a study and start ``optimize`` in its own process (core/research/jobs.py)."""
    from core.research.jobs import start_study as start

    return start(settings, name.strip(), research_spec(settings, **request), trials=trials,
                 workers=workers)


def start_walkforward(settings: Settings, *, name: str, train_days: int, test_days: int,
                      step_days: int, trials: int, workers: int, **request: Any) -> Any:
    """Validate a walk-forward and start it in its own process (core/research/jobs.py)."""
    from core.research.jobs import start_walkforward as start

    return start(settings, name.strip(), research_spec(settings, **request), train=train_days,
                 test=test_days, step=step_days, trials=trials, workers=workers)


def start_paper_with_params(engine: Engine, settings: Settings, *, values: dict[str, Any],
                            capital: float | None = None) -> SessionRef:
    """A new paper session whose agents run on the strategy file's parameters with ``values``
    (flat keys, e.g. a study's best trial) set; InvalidParams names a refused value."""
    params = strategy_file.load(settings.strategies_file).with_values(values)
    return create_session(engine, settings, capital=capital, mode="paper", agent_params=params)


# --- alerts ---------------------------------------------------------------------------
def _alert_config(settings: Settings) -> AlertConfig:
    config = AlertConfig.from_settings(settings)
    if not config.targets:
        raise ConfigError("no alert target: set ALERT_URLS (see .env.example)")
    return config


def send_test_alerts(settings: Settings) -> list[TestResult]:
    """Send a test message to every ALERT_URLS target; each result says whether it went out
    (or why not, secrets masked)."""
    return send_test(_alert_config(settings))


def send_pending_alerts(engine: Engine, settings: Settings, *, timeout_s: float = 60.0) -> int:
    """Deliver what the outbox holds now, as a running engine's sender would (for a desk run
    from the terminal without one); returns how many are still due when the time ran out
    (a delivery that failed and waits for its retry is not due until then)."""
    sender = AlertSender(engine, _alert_config(settings))
    try:
        return sender.drain(timeout_s)
    finally:
        sender.stop()
