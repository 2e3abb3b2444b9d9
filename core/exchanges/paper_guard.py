"""The paper venue's loss guard: the drawdown halt acts at the price where the limit is reached.

The CEO halts a session when its equity falls 15% below the peak (DESIGN.md). Live, the engine
checks that every few seconds, so the halt acts close to the limit. A replayed session ticks once
per bar, and a bar that falls through the limit would be acted on only at its close, past the
limit by whatever the rest of the bar did. So before each sync the engine tells the venue how much
more the account may lose (``arm_loss_guard``). Replaying a bar, the venue walks the adverse path
(every symbol from its open toward its adverse extreme together: the same pessimistic walk its
stops use, with their slippage and fees) and, at the first point where equity reaches the floor,
closes every position at that point's prices as market orders (slippage, fee) whose client ids
start with ``LOSS_GUARD_PREFIX``. ``ExchangeEvents.loss_guard`` tells the engine, which then halts.

A real venue has no account-level stop; there the engine's per-tick check is the halt.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.exchanges.base import LOSS_GUARD_PREFIX
from core.exchanges.paper_bars import ExitPlan, as_decimal
from core.exchanges.paper_book import ZERO, BookOrder
from core.exchanges.paper_store import Changes
from core.models import Bar, ExchangeEvents, OrderSide, OrderStatus, OrderType, OrderUpdate

# A bar whose worst case stays this far above the floor (relative to the notional at risk) cannot
# reach it even after every stop's slippage, fee and tick rounding: no need to walk it.
_WORST_CASE_MARGIN = 0.01


@dataclass(slots=True)
class _Leg:
    """One position along the adverse walk, in floats."""

    symbol: str
    plan: ExitPlan | None  # None: no bar for the symbol at this time; it stays at its mark
    amount: float  # signed, what is left open
    entry: float
    open: float
    adverse: float
    realized: float = 0.0  # net result of what its stops (or the liquidation) already closed
    done: int = 0  # adverse steps taken

    def price(self, f: float) -> float:
        return self.open + f * (self.adverse - self.open)

    def value(self, f: float) -> float:
        return self.realized + self.amount * (self.price(f) - self.entry)

    @property
    def steps(self) -> list[BookOrder | None]:
        return self.plan.adverse_steps if self.plan is not None else []

    def step_at(self, order: BookOrder | None) -> float:
        """Where on the walk (0 = open, 1 = adverse extreme) a step happens."""
        assert self.plan is not None
        if order is not None and order.client_order_id in self.plan.at_open:
            return 0.0
        if order is not None and order.client_order_id in self.plan.at_close:
            return 1.0
        level = self.plan.pos.liq_f if order is None else order.level
        span = self.adverse - self.open
        return min(1.0, max(0.0, (level - self.open) / span)) if span else 0.0


class LossGuard:
    """The guard's part of ``PaperExchange`` (which provides the account and booking helpers)."""

    _loss_floor: float | None = None
    _loss_since_ms: int = 0

    def arm_loss_guard(self, max_loss: Decimal | None) -> None:
        """Close everything once the account has lost ``max_loss`` from its equity at the current
        prices; None disarms. Armed for the next sync only (the engine re-arms every tick), and
        only over bars that open at or after now: a bar that began earlier (a closed candle of a
        live feed arriving after the tick that armed the guard) may hold prices from before the
        positions it would judge, so there the engine's per-tick check is the halt."""
        if max_loss is None:
            self._loss_floor = None
            return
        self._loss_floor = self._equity_now() - float(max(max_loss, ZERO))
        self._loss_since_ms = self._now_ms

    def _equity_now(self) -> float:
        return float(self._wallet) + sum(
            float(p.amount) * (float(self._mark(s)) - float(p.entry_price))
            for s, p in self._positions.items()
        )

    def _guard_may_fire(self, timeline: list[tuple[str, Bar]]) -> bool:
        """Cheap float test over a step's bars: could any of them reach the floor?"""
        if self._loss_floor is None or not self._positions:
            return False
        timeline = [(s, b) for s, b in timeline if b.open_time_ms >= self._loss_since_ms]
        if not timeline:
            return False
        worst = float(self._wallet)
        for symbol, pos in self._positions.items():
            bars = [b for s, b in timeline if s == symbol]
            amount, entry = float(pos.amount), float(pos.entry_price)
            adverse = min((b.low for b in bars), default=None) if amount > 0 else max(
                (b.high for b in bars), default=None)
            price = float(self._mark(symbol)) if adverse is None else adverse
            worst += amount * (price - entry) - _WORST_CASE_MARGIN * abs(amount) * price
        return worst <= self._loss_floor

    def _guard_fires(self, bars: list[tuple[str, Bar]], ch: Changes, events: ExchangeEvents) -> bool:
        """Walk one bar time's adverse path; if it reaches the floor, close everything there."""
        floor = self._loss_floor
        if floor is None or not self._positions or bars[0][1].open_time_ms < self._loss_since_ms:
            return False
        by_symbol = dict(bars)
        legs: list[_Leg] = []
        for symbol, pos in self._positions.items():
            bar = by_symbol.get(symbol)
            plan = self._exit_plan(symbol, bar) if bar is not None else None
            if plan is None or bar is None:
                mark = float(self._mark(symbol))
                legs.append(_Leg(symbol, None, float(pos.amount), float(pos.entry_price), mark, mark))
                continue
            adverse = bar.low if pos.sign > 0 else bar.high
            leg = _Leg(symbol, plan, float(pos.amount), float(pos.entry_price), bar.open, adverse)
            if plan.liquidated_at_open:
                leg.amount, leg.realized = 0.0, -float(pos.isolated_margin)
            legs.append(leg)
        wallet = float(self._wallet)
        crossing = self._crossing(legs, wallet, floor)
        if crossing is None:
            return False
        self._close_at(legs, crossing, ch, events)
        self._loss_floor = None
        events.loss_guard = True
        return True

    def _crossing(self, legs: list[_Leg], wallet: float, floor: float) -> float | None:
        """The first point of the walk where equity reaches ``floor`` (None: it never does). Each
        leg's ``done`` is left at the number of its adverse steps taken before that point."""
        steps = sorted(
            ((leg.step_at(order), i, k) for i, leg in enumerate(legs)
             for k, order in enumerate(leg.steps)),
            key=lambda s: s[0],
        )

        def equity(f: float) -> float:
            return wallet + sum(leg.value(f) for leg in legs)

        f_prev = 0.0
        if equity(0.0) <= floor:
            return 0.0
        for f, i, k in steps:
            before, at = equity(f_prev), equity(f)
            if at <= floor:
                return f_prev + (f - f_prev) * (before - floor) / (before - at)
            self._take_step(legs[i], legs[i].steps[k], f)
            if equity(f) <= floor:
                return f
            f_prev = f
        before, at = equity(f_prev), equity(1.0)
        if at <= floor:
            return f_prev + (1.0 - f_prev) * (before - floor) / (before - at)
        return None

    def _take_step(self, leg: _Leg, order: BookOrder | None, f: float) -> None:
        """A stop fill (slippage, fee) or the liquidation, in floats, on the walk."""
        leg.done += 1
        if leg.amount == 0:
            return
        if order is None:  # what is left loses its share of the margin (released pro rata)
            pos = leg.plan.pos
            left = abs(leg.amount) / abs(float(pos.amount))
            leg.amount, leg.realized = 0.0, leg.realized - float(pos.isolated_margin) * left
            return
        assert leg.plan is not None and order.stop_price is not None
        qty = min(float(order.quantity), abs(leg.amount))
        cid = order.client_order_id
        base = (as_decimal(leg.open) if cid in leg.plan.at_open
                else as_decimal(leg.plan.bar.close) if cid in leg.plan.at_close else order.stop_price)
        price = float(self._slipped(self._rules(leg.symbol), base, order.side))
        sign = 1.0 if leg.amount > 0 else -1.0
        leg.realized += qty * (price - leg.entry) * sign - qty * price * float(self._fee_rate)
        leg.amount -= sign * qty

    def _close_at(self, legs: list[_Leg], f: float, ch: Changes, events: ExchangeEvents) -> None:
        """Take each leg's steps before the crossing, then close what is left at its price there
        (rounded to the tick toward the open: the guard acts no later than the crossing)."""
        for leg in legs:
            plan = leg.plan
            ts = (plan.bar.open_time_ms + self._interval_ms) if plan is not None else self._now_ms
            if plan is not None and plan.liquidated_at_open:
                self._liquidate(leg.symbol, ts, ch, events)
                continue
            if plan is not None:
                self._run_steps(leg.symbol, plan, plan.adverse_steps[:leg.done], ts, ch, events)
            pos = self._positions.get(leg.symbol)
            if pos is not None:
                rules = self._rules(leg.symbol)
                price = rules.round_price(as_decimal(leg.price(f)), up=pos.sign > 0)
                side = OrderSide.SELL if pos.sign > 0 else OrderSide.BUY
                self._guard_close(leg.symbol, side, abs(pos.amount),
                                  self._slipped(rules, price, side), ts, ch, events)
            self._expire_stale(leg.symbol, ts, ch, events)

    def _guard_close(self, symbol: str, side: OrderSide, qty: Decimal, price: Decimal, ts: int,
                     ch: Changes, events: ExchangeEvents) -> None:
        seq = self._take_seq()
        order = BookOrder(
            seq=seq, client_order_id=f"{LOSS_GUARD_PREFIX}{self.account_id}-{seq}",
            exchange_order_id=f"{self.account_id}-O{seq}", symbol=symbol, side=side,
            type=OrderType.MARKET, quantity=qty, stop_price=None, reduce_only=True,
            status=OrderStatus.NEW, executed_qty=ZERO, avg_price=ZERO, created_ms=ts, updated_ms=ts,
        )
        ch.inserted.add(order.client_order_id)
        done, fill = self._fill(order, qty, price, ts, ch)
        events.fills.append(fill)
        events.order_updates.append(OrderUpdate(done.result((fill,)), ts))
