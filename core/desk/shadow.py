"""The shadow baseline: each LLM agent's rule-only twin, traded in a virtual paper book.

With ``SHADOW_BASELINE`` on, an LLM agent hands up what its rules alone said on the same market
(``AgentDecision.shadow``). The twin's proposals are judged by the same hard rules (``core.ceo.rules``)
against the twin's own virtual book, and what they open is booked here, never sent to the venue and
never part of the real ledger: entry at the tick price plus the paper slippage (against the trader)
and the taker fee; exit at the stop or take-profit on each later bar's low/high (a gap fills at the
bar's open, a stop before a take-profit in the same bar, like the paper venue), or at the tick price
when the twin's rules say close. So the UI can show, per agent, LLM PnL next to rules PnL: the
LLM's marginal value measured, not assumed.

Model limits, stated: the twin sizes against the real agent's equity at each tick (same capital
base, so PnL compares size for size); the one-owner-per-symbol rule and the desk's account margin
do not apply to a virtual book (the gross-exposure cap applies to the twin's own positions); no
funding and no liquidation (the 5%-of-margin stop sits far inside the liquidation price).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from core.ceo.rules import RiskContext, RiskLimits, evaluate, evaluate_group
from core.models import (
    Action,
    AgentDecision,
    Bar,
    MarketStep,
    OrderPlan,
    PositionSide,
    Proposal,
    SymbolFilters,
)
from core.store.tables import SHADOW_TRADES

if TYPE_CHECKING:
    from core.desk.ledger import AgentLedger
    from core.desk.parts import DeskParts as Desk


@dataclass(slots=True)
class ShadowPosition:
    id: int
    agent_id: int
    symbol: str
    side: PositionSide
    quantity: float
    leverage: int
    margin: float
    entry_price: float
    stop_price: float
    take_profit: float | None
    fees: float  # entry fee so far

    def unrealized(self, price: float) -> float:
        return (price - self.entry_price) * self.quantity * self.side.sign


# ---------------------------------------------------------------------- pure maths
def slipped(price: float, *, buy: bool, slippage_bps: float, filters: SymbolFilters) -> float:
    """A market fill: slippage against the trader, rounded to the tick against the trader."""
    raw = price * (1 + slippage_bps / 10_000) if buy else price * (1 - slippage_bps / 10_000)
    return float(filters.round_price(Decimal(repr(raw)), up=buy))


def bar_exit(pos: ShadowPosition, bar: Bar) -> tuple[float, str] | None:
    """Where a bar takes the position out, before slippage: (trigger or open price, reason)."""
    d = pos.side.sign
    tp = pos.take_profit
    if d * bar.open <= d * pos.stop_price:
        return bar.open, "stop_loss"
    if tp is not None and d * bar.open >= d * tp:
        return bar.open, "take_profit"
    adverse = bar.low if d > 0 else bar.high
    if d * adverse <= d * pos.stop_price:
        return pos.stop_price, "stop_loss"
    favourable = bar.high if d > 0 else bar.low
    if tp is not None and d * favourable >= d * tp:
        return tp, "take_profit"
    return None


def exit_pnl(pos: ShadowPosition, exit_price: float, fee_rate: float) -> tuple[float, float]:
    """(price PnL, exit fee) of closing the whole position at ``exit_price``."""
    return ((exit_price - pos.entry_price) * pos.quantity * pos.side.sign,
            exit_price * pos.quantity * fee_rate)


# ---------------------------------------------------------------------- the book
class ShadowBook:
    """Open twin positions per agent id, mirrored in ``shadow_trades`` (loaded on first use)."""

    def __init__(self, fee_rate: float, slippage_bps: float, limits: RiskLimits) -> None:
        self.fee_rate = fee_rate
        self.slippage_bps = slippage_bps
        self.limits = limits
        self.open: dict[int, dict[str, ShadowPosition]] | None = None

    def _load(self, desk: Desk) -> dict[int, dict[str, ShadowPosition]]:
        if self.open is None:
            c = SHADOW_TRADES.c
            self.open = {}
            for r in desk.db.connection().execute(select(SHADOW_TRADES).where(
                    c.session_id == desk.ledger.session.id, c.status == "open")):
                self.open.setdefault(r.agent_id, {})[r.symbol] = ShadowPosition(
                    r.id, r.agent_id, r.symbol, PositionSide(r.side), r.quantity, r.leverage,
                    r.margin, r.entry_price, r.stop_price, r.take_profit, r.fees)
        return self.open

    def on_market(self, desk: Desk, step: MarketStep) -> None:
        """Stops and take-profits of the twins on the bars that closed this tick."""
        book = self._load(desk)
        for positions in book.values():
            for symbol, pos in list(positions.items()):
                for bar in step.bars.get(symbol, ()):
                    hit = bar_exit(pos, bar)
                    if hit is not None:
                        self._close(desk, pos, hit[0], hit[1], bar.open_time_ms + _interval(step, symbol))
                        break

    def decide(self, desk: Desk, agent: AgentLedger, decision: AgentDecision,
               prices: dict[str, float], tick_ms: int) -> None:
        """Book what the twin's rules proposed this tick (closes first, then opens)."""
        book = self._load(desk).setdefault(agent.id, {})
        for p in decision.proposals:
            if p.action is Action.CLOSE and p.symbol in book:
                pos = book[p.symbol]
                self._close(desk, pos, prices[p.symbol], "agent", tick_ms)
        groups: dict[str | None, list[Proposal]] = {}
        for p in decision.proposals:
            if p.opens:
                groups.setdefault(p.group, []).append(p)
        for group, proposals in groups.items():
            if group is None:
                verdicts = [evaluate(p, self._context(desk, agent, book, p.symbol, prices), self.limits)
                            for p in proposals]
            else:
                contexts = [self._context(desk, agent, book, p.symbol, prices) for p in proposals]
                verdicts = evaluate_group(proposals, contexts, self.limits)
            for p, v in zip(proposals, verdicts, strict=True):
                if v.plan is not None and p.symbol not in book:
                    self._open(desk, agent, book, p, v.plan, tick_ms)

    def _context(self, desk: Desk, agent: AgentLedger, book: dict[str, ShadowPosition],
                 symbol: str, prices: dict[str, float]) -> RiskContext:
        equity = agent.equity(prices)
        free = equity - sum(p.margin for p in book.values())
        return RiskContext(
            session_status="running", agent_status="active", agent_equity=equity,
            agent_free_margin=free, agent_open_symbols=frozenset(book),
            risk_level=agent.spec.risk_level, agent_max_leverage=agent.spec.max_leverage,
            symbol_owner=agent.name if symbol in book else None,
            filters=desk.exchange.filters(symbol), price=prices[symbol],
            account_available=free, session_equity=equity,
            gross_notional=sum(p.quantity * prices.get(p.symbol, p.entry_price) for p in book.values()),
        )

    def _open(self, desk: Desk, agent: AgentLedger, book: dict[str, ShadowPosition], p: Proposal,
              plan: OrderPlan, tick_ms: int) -> None:
        filters = desk.exchange.filters(plan.symbol)
        entry = slipped(plan.ref_price, buy=plan.side is PositionSide.LONG,
                        slippage_bps=self.slippage_bps, filters=filters)
        qty = float(plan.quantity)
        fee = entry * qty * self.fee_rate
        row = {"session_id": desk.ledger.session.id, "agent_id": agent.id, "symbol": plan.symbol,
               "side": plan.side.value, "status": "open", "quantity": qty,
               "leverage": plan.leverage, "margin": plan.margin, "entry_price": entry,
               "stop_price": plan.stop_price, "take_profit": plan.take_profit,
               "opened_ms": tick_ms, "fees": fee, "realized_pnl": 0.0,
               "reasoning": p.reasoning[:2000]}
        new_id = desk.db.execute(insert(SHADOW_TRADES).values(**row)).inserted_primary_key[0]
        book[plan.symbol] = ShadowPosition(new_id, agent.id, plan.symbol, plan.side, qty,
                                           plan.leverage, plan.margin, entry, plan.stop_price,
                                           plan.take_profit, fee)

    def _close(self, desk: Desk, pos: ShadowPosition, price: float, reason: str, ts_ms: int) -> None:
        """Exit at market (stop, take-profit or the rules' close): slippage and fee apply."""
        exit_price = slipped(price, buy=pos.side is PositionSide.SHORT,
                             slippage_bps=self.slippage_bps, filters=desk.exchange.filters(pos.symbol))
        pnl, fee = exit_pnl(pos, exit_price, self.fee_rate)
        desk.db.execute(update(SHADOW_TRADES).where(SHADOW_TRADES.c.id == pos.id).values(
            status="closed", closed_ms=ts_ms, exit_price=exit_price, fees=pos.fees + fee,
            realized_pnl=pnl, close_reason=reason))
        assert self.open is not None
        self.open.get(pos.agent_id, {}).pop(pos.symbol, None)


def _interval(step: MarketStep, symbol: str) -> int:
    bars: Iterable[Bar] = step.bars.get(symbol, ())
    times = [b.open_time_ms for b in bars]
    if not times:
        return 0
    return max(0, step.now_ms - max(times))
