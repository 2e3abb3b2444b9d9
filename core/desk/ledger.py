"""The engine's in-memory mirror of one session's books: agent ledgers and open positions.

The store is the truth (the ledger is rebuilt from it on every start); the mirror exists so a tick
costs dictionary lookups rather than queries. Every change goes to the store in the same call that
changes the mirror (see core/booking.py), so the two never drift.

Agent ledger (DESIGN.md section 4): cash = capital + realized PnL − fees + funding;
equity = cash + unrealized PnL; free margin = equity − margin locked in open positions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from core.agents.base import AgentSpec, HeldPosition
from core.agents.desk_params import DeskParams
from core.agents.roster import BY_KEY
from core.errors import NotFound
from core.models import PositionSide, RiskLevel
from core.store.tables import AgentRow, PositionRow, SessionRow

RECENT_RESULTS = 50


@dataclass(slots=True)
class OpenPosition:
    id: int
    agent_id: int
    symbol: str
    side: PositionSide
    quantity: float
    entry_price: float
    leverage: int
    margin: float
    stop_distance: float
    stop_price: float | None
    take_profit: float | None
    group_id: str | None
    opened_ms: int
    status: str = "open"
    realized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    exit_qty: float = 0.0
    exit_value: float = 0.0
    trail_callback: float | None = None  # the trailing stop beside the hard stop, if any
    trail_activation: float | None = None

    def unrealized(self, price: float) -> float:
        return (price - self.entry_price) * self.quantity * self.side.sign

    def notional(self, price: float) -> float:
        return abs(self.quantity) * price

    def held(self) -> HeldPosition:
        return HeldPosition(
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            entry_price=self.entry_price,
            leverage=self.leverage,
            stop_price=self.stop_price or 0.0,
            take_profit=self.take_profit,
            opened_at_ms=self.opened_ms,
            group=self.group_id,
        )


@dataclass(slots=True)
class AgentLedger:
    id: int
    spec: AgentSpec
    status: str
    pause_reason: str | None
    capital: float
    initial_capital: float
    realized_pnl: float
    fees: float
    funding: float
    peak_equity: float
    llm_failures: int = 0
    review_from_ms: int = 0
    paused_ms: int | None = None
    paused_by: str | None = None
    ceo_pauses: int = 0
    return_index: float = 1.0  # time-weighted growth up to the last transfer (see AgentRow)
    return_base: float | None = None  # equity right after the last transfer
    saved_peak: tuple[float, int] | None = None  # (peak, llm_failures) as the review last wrote them
    positions: dict[str, OpenPosition] = field(default_factory=dict)
    # net PnL of closed trades since the last resume (pause rules) / returns on margin of every
    # closed trade (rebalancing scores)
    recent_results: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_RESULTS))
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_RESULTS))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cash(self) -> float:
        return self.capital + self.realized_pnl - self.fees + self.funding

    def unrealized(self, prices: dict[str, float]) -> float:
        return sum(p.unrealized(prices[p.symbol]) for p in self.positions.values() if p.quantity)

    def equity(self, prices: dict[str, float]) -> float:
        return self.cash + self.unrealized(prices)

    def transfer(self, amount: float, equity_before: float) -> None:
        """Move ``amount`` of capital in (or out, negative); the time-weighted return closes its
        period at ``equity_before`` so the transfer itself is neither a gain nor a loss."""
        base = self.return_base if self.return_base is not None else self.initial_capital
        if base > 0:
            self.return_index *= equity_before / base
        self.capital += amount
        self.return_base = equity_before + amount

    @property
    def locked_margin(self) -> float:
        return sum(p.margin for p in self.positions.values())

    def free_margin(self, prices: dict[str, float]) -> float:
        return self.equity(prices) - self.locked_margin


@dataclass(slots=True)
class SessionState:
    id: int
    status: str
    mode: str
    symbols: tuple[str, ...]
    initial_capital: float
    peak_equity: float
    max_drawdown_pct: float
    clock_ms: int
    decided_ms: int
    last_review_ms: int
    last_rebalance_ms: int
    last_snapshot_ms: int
    ticks: int
    intent_version: int = 0


@dataclass(slots=True)
class Ledger:
    session: SessionState
    agents: dict[int, AgentLedger]

    def by_key(self, key: str) -> AgentLedger:
        for agent in self.agents.values():
            if agent.spec.key == key:
                return agent
        raise NotFound(f"no agent {key!r} in session {self.session.id}")

    def owner_of(self, symbol: str) -> AgentLedger | None:
        for agent in self.agents.values():
            if symbol in agent.positions:
                return agent
        return None

    def open_positions(self) -> list[OpenPosition]:
        return [p for a in self.agents.values() for p in a.positions.values()]

    def equity(self, prices: dict[str, float]) -> float:
        return sum(a.equity(prices) for a in self.agents.values())

    def unrealized(self, prices: dict[str, float]) -> float:
        return sum(a.unrealized(prices) for a in self.agents.values())

    def gross_notional(self, prices: dict[str, float]) -> float:
        return sum(p.notional(prices[p.symbol]) for p in self.open_positions())

    def drawdown_pct(self, equity: float) -> float:
        peak = self.session.peak_equity
        return max(0.0, (peak - equity) / peak) if peak > 0 else 0.0


def load_ledger(db: Session, session_id: int) -> Ledger:
    """Rebuild the mirror of one session from the store."""
    row = db.get(SessionRow, session_id)
    if row is None:
        raise NotFound(f"no session {session_id}")
    state = SessionState(
        id=row.id,
        status=row.status,
        mode=row.mode,
        symbols=tuple(row.symbols.split(",")),
        initial_capital=row.initial_capital,
        peak_equity=row.peak_equity,
        max_drawdown_pct=row.max_drawdown_pct,
        clock_ms=row.clock_ms,
        decided_ms=row.decided_ms,
        last_review_ms=row.last_review_ms,
        last_rebalance_ms=row.last_rebalance_ms,
        last_snapshot_ms=row.last_snapshot_ms,
        ticks=row.ticks,
        intent_version=row.intent_version,
    )
    agents: dict[int, AgentLedger] = {}
    for a in db.scalars(select(AgentRow).where(AgentRow.session_id == session_id).order_by(AgentRow.id)):
        agents[a.id] = AgentLedger(
            id=a.id,
            spec=replace(BY_KEY[a.key], capital_share=a.base_share,  # this session's roster
                         risk_level=RiskLevel(a.risk_level), max_leverage=a.max_leverage),
            status=a.status,
            pause_reason=a.pause_reason,
            capital=a.capital,
            initial_capital=a.initial_capital,
            realized_pnl=a.realized_pnl,
            fees=a.fees,
            funding=a.funding,
            peak_equity=a.peak_equity,
            llm_failures=a.llm_failures,
            review_from_ms=a.review_from_ms,
            paused_ms=a.paused_ms,
            return_index=a.return_index,
            return_base=a.return_base,
            paused_by=a.paused_by,
            ceo_pauses=a.ceo_pauses,
        )
    open_rows = db.scalars(
        select(PositionRow).where(
            PositionRow.session_id == session_id, PositionRow.status.in_(("open", "opening"))
        )
    )
    for p in open_rows:
        agents[p.agent_id].positions[p.symbol] = position_from_row(p)
    closed = db.execute(
        select(PositionRow.agent_id, PositionRow.realized_pnl, PositionRow.fees,
               PositionRow.funding, PositionRow.margin, PositionRow.closed_ms)
        .where(PositionRow.session_id == session_id, PositionRow.status == "closed")
        .order_by(PositionRow.closed_ms, PositionRow.id)
    )
    for agent_id, realized, fees, funding, margin, closed_ms in closed:
        net = realized - fees + funding
        agents[agent_id].recent_returns.append(net / margin if margin else 0.0)
        if closed_ms >= agents[agent_id].review_from_ms:  # pause rules judge the fresh record only
            agents[agent_id].recent_results.append(net)
    return Ledger(state, agents)


def position_from_row(p: PositionRow) -> OpenPosition:
    return OpenPosition(
        id=p.id,
        agent_id=p.agent_id,
        symbol=p.symbol,
        side=PositionSide(p.side),
        quantity=p.quantity,
        entry_price=p.entry_price,
        leverage=p.leverage,
        margin=p.margin,
        stop_distance=p.stop_distance,
        stop_price=p.stop_price,
        take_profit=p.take_profit,
        group_id=p.group_id,
        opened_ms=p.opened_ms,
        status=p.status,
        realized_pnl=p.realized_pnl,
        fees=p.fees,
        funding=p.funding,
        exit_qty=p.exit_qty,
        exit_value=(p.exit_price or 0.0) * p.exit_qty,
        trail_callback=p.trail_callback,
        trail_activation=p.trail_activation,
    )


def insert_session(conn: Connection, *, name: str, mode: str, source: str,
                   symbols: Sequence[str], capital: float, interval: str, start_ms: int,
                   model_of: Callable[[AgentSpec], str],
                   roster: Sequence[AgentSpec] | None = None,
                   params: DeskParams | None = None) -> int:
    """Write a new session row and its roster (each agent with its share of ``capital``); returns
    the session id. Used by ``create_session`` and by backtests. ``params`` (the defaults when
    None) is stored with the session, and its engine runs on that copy; the roster defaults to
    its five agents with its shares, risk levels and models."""
    params = DeskParams.defaults() if params is None else params
    roster = params.specs() if roster is None else roster
    session_id = conn.execute(insert(SessionRow).values(
        name=name, status="created", mode=mode, market_source=source, symbols=",".join(symbols),
        initial_capital=capital, peak_equity=capital, max_drawdown_pct=0.0,
        replay_interval=interval, start_ms=start_ms, clock_ms=start_ms, decided_ms=0,
        intent_version=0, last_review_ms=start_ms, last_rebalance_ms=start_ms, last_snapshot_ms=0,
        ticks=0, created_ms=start_ms, agent_params=params.to_json(),
    )).inserted_primary_key[0]
    conn.execute(insert(AgentRow), [{
        "session_id": session_id, "key": s.key, "name": s.name, "strategy": s.strategy,
        "model": model_of(s), "risk_level": s.risk_level.value,
        "max_leverage": s.max_leverage, "base_share": s.capital_share,
        "capital": capital * s.capital_share, "initial_capital": capital * s.capital_share,
        "realized_pnl": 0.0, "fees": 0.0, "funding": 0.0,
        "peak_equity": capital * s.capital_share, "status": "active", "pause_reason": None,
        "llm_failures": 0, "review_from_ms": 0, "ceo_pauses": 0, "return_index": 1.0,
    } for s in roster])
    return int(session_id)
