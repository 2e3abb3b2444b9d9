"""The desk's tables: sessions, agents, proposals, CEO decisions, orders, fills, positions, funding,
equity snapshots, the engine lease and the alerts outbox.

The paper venue keeps its own ``paper_*`` tables (core/exchanges/paper_store.py) because it plays a
remote exchange. Desk money columns are floats (analytics); exact Decimals live at the exchange
boundary. Times are integer UTC milliseconds (``*_ms``) so replays and backtests carry engine time,
not wall time.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.store.base import Base


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(8))
    market_source: Mapped[str] = mapped_column(String(16))
    symbols: Mapped[str] = mapped_column(String(400))
    initial_capital: Mapped[float] = mapped_column(Float)
    peak_equity: Mapped[float] = mapped_column(Float)
    max_drawdown_pct: Mapped[float] = mapped_column(Float, default=0.0)
    replay_interval: Mapped[str | None] = mapped_column(String(8))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    clock_ms: Mapped[int] = mapped_column(BigInteger)
    decided_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_review_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_rebalance_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    last_snapshot_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    ticks: Mapped[int] = mapped_column(BigInteger, default=0)
    marks: Mapped[str | None] = mapped_column(Text)  # JSON {symbol: last price} at clock_ms
    intent_version: Mapped[int] = mapped_column(Integer, default=0)  # bumped by every user command
    created_ms: Mapped[int] = mapped_column(BigInteger)
    stopped_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    # wall time of the last completed tick, and of the first failure of the failures since then
    tick_wall_ms: Mapped[int | None] = mapped_column(BigInteger)
    error_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    # --- live: the market feed's state for the UI ("websocket" / "REST polling (...)"), then
    # on a live venue how fills arrive (" · fills: user-data stream" / "... REST polling (...)")
    feed_status: Mapped[str | None] = mapped_column(Text)
    # the exact agent parameters the session runs with (DeskParams.to_json); its engine builds
    # the strategies from this copy, never from the strategy file (NULL: before 0010, defaults)
    agent_params: Mapped[str | None] = mapped_column(Text)


class AgentRow(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("session_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    risk_level: Mapped[str] = mapped_column(String(8))
    max_leverage: Mapped[int] = mapped_column(Integer)
    base_share: Mapped[float] = mapped_column(Float)
    capital: Mapped[float] = mapped_column(Float)  # net capital allocated (initial ± transfers)
    initial_capital: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    funding: Mapped[float] = mapped_column(Float, default=0.0)
    peak_equity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    llm_failures: Mapped[int] = mapped_column(Integer, default=0)
    review_from_ms: Mapped[int] = mapped_column(BigInteger, default=0)  # reviews judge trades after
    paused_ms: Mapped[int | None] = mapped_column(BigInteger)
    paused_by: Mapped[str | None] = mapped_column(String(8))  # ceo | user
    ceo_pauses: Mapped[int] = mapped_column(Integer, default=0)  # lengthens each CEO cooldown
    # The time-weighted return, so a rebalance moves no percentage: what 1 USDT at the start had
    # grown to at the last transfer, and the equity right after it (NULL: no transfer yet, the
    # base is initial_capital). The return now is return_index × equity / base − 1.
    return_index: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    return_base: Mapped[float | None] = mapped_column(Float)


class ProposalRow(Base):
    """Every agent answer: a proposal, an abstention (with its reason) or a failure (raw reply)."""

    __tablename__ = "proposals"
    __table_args__ = (Index("ix_proposals_session_tick", "session_id", "tick_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    tick_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12))  # proposal | abstain | failure
    symbol: Mapped[str | None] = mapped_column(String(24))
    action: Mapped[str | None] = mapped_column(String(16))
    leverage: Mapped[int | None] = mapped_column(Integer)
    margin_fraction: Mapped[float | None] = mapped_column(Float)
    stop_price: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    ref_price: Mapped[float | None] = mapped_column(Float)
    group_id: Mapped[str | None] = mapped_column(String(64))
    reasoning: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    raw_reply: Mapped[str | None] = mapped_column(Text)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))
    trail_callback: Mapped[float | None] = mapped_column(Float)  # fraction of price
    trail_activation: Mapped[float | None] = mapped_column(Float)


class CeoDecisionRow(Base):
    """The CEO's log: trade verdicts, pauses, resumes, rebalances, halts and reconciliations."""

    __tablename__ = "ceo_decisions"
    __table_args__ = (
        Index("ix_ceo_session_id", "session_id", "id"),
        Index("ix_ceo_session_verdict", "session_id", "verdict"),
        Index("ix_ceo_session_agent", "session_id", "agent_id"),
        Index("ix_ceo_session_kind", "session_id", "kind"),
        Index("ix_ceo_session_rules", "session_id", "rules"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # trade | pause | resume | rebalance | halt | ...
    symbol: Mapped[str | None] = mapped_column(String(24))
    verdict: Mapped[str | None] = mapped_column(String(8))
    rules: Mapped[str] = mapped_column(String(400), default="")
    changes: Mapped[str | None] = mapped_column(Text)  # JSON {field: [before, after]}
    reason: Mapped[str] = mapped_column(Text)
    proposed_leverage: Mapped[int | None] = mapped_column(Integer)
    final_leverage: Mapped[int | None] = mapped_column(Integer)
    proposed_margin: Mapped[float | None] = mapped_column(Float)
    final_margin: Mapped[float | None] = mapped_column(Float)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))  # reviewer


class PositionRow(Base):
    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_session_status", "session_id", "status"),
        Index("ix_positions_session_closed", "session_id", "closed_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("ceo_decisions.id"))
    symbol: Mapped[str] = mapped_column(String(24))
    side: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))  # opening | open | closed | failed
    quantity: Mapped[float] = mapped_column(Float, default=0.0)
    entry_price: Mapped[float] = mapped_column(Float, default=0.0)
    leverage: Mapped[int] = mapped_column(Integer)
    margin: Mapped[float] = mapped_column(Float, default=0.0)
    stop_distance: Mapped[float] = mapped_column(Float)
    stop_price: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    liquidation_price: Mapped[float | None] = mapped_column(Float)
    group_id: Mapped[str | None] = mapped_column(String(64))
    opened_ms: Mapped[int] = mapped_column(BigInteger)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    exit_price: Mapped[float | None] = mapped_column(Float)
    exit_qty: Mapped[float] = mapped_column(Float, default=0.0)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    funding: Mapped[float] = mapped_column(Float, default=0.0)
    close_reason: Mapped[str | None] = mapped_column(String(24))
    # --- live: stop coverage. naked_since_ms is set while the position is known to lack
    # a resting stop over its whole quantity; naked_ms adds up every such stretch (engine time).
    naked_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    naked_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # the trailing stop resting beside the hard stop (callback a fraction of price), if any
    trail_callback: Mapped[float | None] = mapped_column(Float)
    trail_activation: Mapped[float | None] = mapped_column(Float)


class OrderRow(Base):
    """Written (and committed) before the order is sent; the client order id makes it idempotent."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(24))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(24))
    purpose: Mapped[str] = mapped_column(String(16))  # entry | stop_loss | trailing_stop | ...
    quantity: Mapped[float] = mapped_column(Float)
    stop_price: Mapped[float | None] = mapped_column(Float)
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # PENDING until the venue answers
    executed_qty: Mapped[float] = mapped_column(Float, default=0.0)
    avg_price: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # trailing stops: the venue's callbackRate (percent) and activationPrice as sent
    callback_rate: Mapped[float | None] = mapped_column(Float)
    activation_price: Mapped[float | None] = mapped_column(Float)


class FillRow(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("session_id", "trade_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"), index=True)
    trade_id: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(24))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    liquidation: Mapped[bool] = mapped_column(Boolean, default=False)
    ts_ms: Mapped[int] = mapped_column(BigInteger)


class FundingRow(Base):
    __tablename__ = "funding"
    __table_args__ = (UniqueConstraint("session_id", "payment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"))
    payment_id: Mapped[str] = mapped_column(String(96))
    symbol: Mapped[str] = mapped_column(String(24))
    amount: Mapped[float] = mapped_column(Float)
    rate: Mapped[float] = mapped_column(Float)
    ts_ms: Mapped[int] = mapped_column(BigInteger)


class EquitySnapshotRow(Base):
    """Portfolio (agent_id NULL) and per-agent equity over engine time."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_equity_session_agent_ts", "session_id", "agent_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    equity: Mapped[float] = mapped_column(Float)
    unrealized: Mapped[float] = mapped_column(Float)
    margin_used: Mapped[float] = mapped_column(Float)
    gross_notional: Mapped[float] = mapped_column(Float)
    drawdown_pct: Mapped[float] = mapped_column(Float)


class EngineLeaseRow(Base):
    """One engine per session, across processes: owner + wall-clock heartbeat, taken over only
    when stale."""

    __tablename__ = "engine_lease"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    acquired_ms: Mapped[int] = mapped_column(BigInteger)
    heartbeat_ms: Mapped[int] = mapped_column(BigInteger)


class ManualOrderRow(Base):
    """A trader's own order on a session: close one position, cancel one resting order, flatten
    one agent. Queued here; the engine carries it out on its tick (or the command does, when no
    engine trades the session) and records how it ended. ``status``: pending → working (committed
    before anything is sent, so a crash never repeats it) → done, refused or failed."""

    __tablename__ = "manual_orders"
    __table_args__ = (Index("ix_manual_orders_session_status", "session_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    kind: Mapped[str] = mapped_column(String(16))  # close | cancel | flatten
    target_id: Mapped[int] = mapped_column(Integer)  # positions.id, orders.id or agents.id
    status: Mapped[str] = mapped_column(String(16), default="pending")
    note: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)  # wall time
    done_ms: Mapped[int | None] = mapped_column(BigInteger)


class ExternalSignalRow(Base):
    """A trade idea sent from outside the desk (``POST /api/agentic/signals``, e.g. a TradingView
    alert), proposed by the "External signals" agent on the engine's next tick and judged by the
    CEO like any proposal. ``status``: pending → working (committed before the proposal is
    judged, so a crash never proposes it twice) → judged (``verdict``, ``decision_id``), or
    refused / expired / failed with the reason in ``note``."""

    __tablename__ = "external_signals"
    __table_args__ = (Index("ix_external_signals_session_status", "session_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    symbol: Mapped[str] = mapped_column(String(30))
    side: Mapped[str] = mapped_column(String(8))  # long | short | close
    leverage: Mapped[int] = mapped_column(Integer)
    margin_fraction: Mapped[float] = mapped_column(Float)
    stop_price: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)  # the sender's own words
    source: Mapped[str | None] = mapped_column(String(60))  # e.g. "tradingview"
    status: Mapped[str] = mapped_column(String(12), default="pending")
    verdict: Mapped[str | None] = mapped_column(String(12))  # approve | modify | reject
    decision_id: Mapped[int | None] = mapped_column(Integer)  # ceo_decisions.id
    outcome: Mapped[str | None] = mapped_column(Text)  # the CEO's reason, or why it was not judged
    received_ms: Mapped[int] = mapped_column(BigInteger)  # wall time
    done_ms: Mapped[int | None] = mapped_column(BigInteger)


# --- LLM audit -------------------------------------------------------------------------
class LLMCallRow(Base):
    """Every model call: who asked (agent, or NULL for the CEO's reviewer), what was sent, what came
    back, what it cost. ``prompt_sha256`` (of system + prompt) lets a backtest find a cached reply."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_session_agent", "session_id", "agent_id"),
        Index("ix_llm_calls_session_tick", "session_id", "tick_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    tick_ms: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))  # agent | ceo_review
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(96))
    prompt_version: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    prompt_sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw_reply: Mapped[str | None] = mapped_column(Text)
    parsed: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)
    validation_errors: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class ShadowTradeRow(Base):
    """A hypothetical trade of an LLM agent's rule-only twin (SHADOW_BASELINE): sized by the hard
    rules, filled in a virtual book at the tick price with the paper slippage and fee, never sent."""

    __tablename__ = "shadow_trades"
    __table_args__ = (Index("ix_shadow_session_agent_status", "session_id", "agent_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    symbol: Mapped[str] = mapped_column(String(24))
    side: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))  # open | closed
    quantity: Mapped[float] = mapped_column(Float)
    leverage: Mapped[int] = mapped_column(Integer)
    margin: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float] = mapped_column(Float)
    stop_price: Mapped[float] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    opened_ms: Mapped[int] = mapped_column(BigInteger)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    exit_price: Mapped[float | None] = mapped_column(Float)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)  # price PnL, before fees
    close_reason: Mapped[str | None] = mapped_column(String(24))
    reasoning: Mapped[str | None] = mapped_column(Text)


LLM_CALLS = LLMCallRow.__table__
SHADOW_TRADES = ShadowTradeRow.__table__


# --- backtests ----------------------------------------------------------------------
class BacktestRunRow(Base):
    """One backtest: its parameters, progress while it runs, and its report once done. The run's
    trades, CEO decisions and equity curve live in the usual tables under ``session_id`` (a session
    with mode ``backtest``, written in one go when the run finishes)."""

    __tablename__ = "backtest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(12), index=True)  # running | saving | done | failed | interrupted
    params: Mapped[str] = mapped_column(Text)  # JSON
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    ticks_done: Mapped[int] = mapped_column(BigInteger, default=0)
    ticks_total: Mapped[int] = mapped_column(BigInteger, default=0)
    report: Mapped[str | None] = mapped_column(Text)  # JSON, see core/backtest/report.py
    error: Mapped[str | None] = mapped_column(Text)
    started_ms: Mapped[int] = mapped_column(BigInteger)  # wall clock
    updated_ms: Mapped[int] = mapped_column(BigInteger)  # wall clock of the last progress write
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    wall_seconds: Mapped[float | None] = mapped_column(Float)


# --- live trading
class InstallRow(Base):
    """Facts about this installation, written once: ``client_prefix`` makes every client order id
    unique per install, so two desks (or a restored database) on one account never collide."""

    __tablename__ = "desk_install"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# --- alerts
class AlertRow(Base):
    """The alerts outbox: one row per event worth telling the trader (core/alerts/kinds.py),
    written in the transaction of the event itself, so an alert exists exactly when its event
    does. ``event_id`` is derived from the event (unique: an event is alerted once). The sender
    (core/alerts/sender.py) routes it to the subscribed targets: ``status`` pending → routed (one
    ``alert_deliveries`` row per target) → sent or failed; muted when no target wants it or its
    kind is switched off, expired when it waited too long to be worth sending. No target URL is
    ever stored here: targets are secrets that live in the environment."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status_id", "status", "id"),
        Index("ix_alerts_session_id", "session_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(96), unique=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))  # info | warning | critical
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    event_ms: Mapped[int | None] = mapped_column(BigInteger)  # engine time of the event
    created_ms: Mapped[int] = mapped_column(BigInteger)  # wall time
    status: Mapped[str] = mapped_column(String(12), default="pending")
    note: Mapped[str | None] = mapped_column(Text)  # why muted or expired, or the last failure
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class AlertDeliveryRow(Base):
    """One alert to one target (named in ALERT_URLS, never its URL): sent once, retried with
    back-off while it fails. ``claimed_by`` marks the sender process that is sending it, so two
    senders never send the same delivery; a claim older than the sender's stale limit (a
    process that died mid-send) is taken back."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "target"),
        Index("ix_alert_deliveries_due", "status", "target", "next_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    target: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_ms: Mapped[int] = mapped_column(BigInteger)  # wall time it may be tried (again)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_ms: Mapped[int | None] = mapped_column(BigInteger)
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)  # went out inside a digest
    error: Mapped[str | None] = mapped_column(Text)  # the last failure, secrets masked


# Core tables for the engine's hot paths: statements on these skip the ORM's bulk-persistence
# machinery, which costs several times more than the SQL itself.
SESSIONS = SessionRow.__table__
AGENTS = AgentRow.__table__
PROPOSALS = ProposalRow.__table__
CEO_DECISIONS = CeoDecisionRow.__table__
POSITIONS = PositionRow.__table__
ORDERS = OrderRow.__table__
FILLS = FillRow.__table__
FUNDING = FundingRow.__table__
EQUITY_SNAPSHOTS = EquitySnapshotRow.__table__
ENGINE_LEASE = EngineLeaseRow.__table__
INSTALL = InstallRow.__table__
MANUAL_ORDERS = ManualOrderRow.__table__
EXTERNAL_SIGNALS = ExternalSignalRow.__table__
ALERTS = AlertRow.__table__
ALERT_DELIVERIES = AlertDeliveryRow.__table__
