"""The paper venue's market clock: what happens to an account as each bar goes by.

Funding at every funding time (the recorded ones at their recorded rates where the venue has a
funding history, core/funding.py; elsewhere its configured grid and rate), liquidation when a bar
opens beyond the liquidation price, the resting stop-market / take-profit-market orders
triggered on the bar's high and low (a gap fills at the open; when a stop and a take-profit both
fit in one bar the stop is assumed first), and the trailing stops walked through the same
pessimistic path (core/exchanges/paper_trailing.py). Kept apart
from core/exchanges/paper.py, which holds the account, its orders and its persistence; this mixin
works on that state through the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from typing import cast

from core.exchanges.paper_book import LIQUIDATION_PREFIX, ZERO, BookOrder, BookPosition
from core.exchanges.paper_store import Changes
from core.exchanges.paper_store import quantize as _q
from core.exchanges.paper_trailing import may_change, walk
from core.models import (
    Bar,
    ExchangeEvents,
    FundingPayment,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def as_decimal(x: float) -> Decimal:
    return Decimal(repr(x))


@dataclass(slots=True)
class ExitPlan:
    """One bar's exits for one position, in the order the pessimistic walk meets them."""

    pos: BookPosition
    bar: Bar
    liquidated_at_open: bool = False
    adverse_steps: list[BookOrder | None] = field(default_factory=list)  # None: liquidation
    targets: list[BookOrder] = field(default_factory=list)
    at_open: set[str] = field(default_factory=set)  # the orders the open gapped through
    at_close: set[str] = field(default_factory=set)  # placed inside the bar: filled at its close
    trail_states: list[BookOrder] = field(default_factory=list)  # trailing orders that did not fire


class BarProcessing:
    """Per-bar behaviour of ``PaperExchange`` (which provides the state and the booking helpers)."""

    def _due(self, symbol: str, bar: Bar) -> bool:
        """Cheap float test: can this bar change anything (funding, liquidation, a trigger)?"""
        pos = self._positions.get(symbol)
        if pos is None or self._funding_times(bar.open_time_ms, (symbol,)):
            return True
        if (bar.low <= pos.liq_f) if pos.amount > 0 else (bar.high >= pos.liq_f):
            return True
        return any(may_change(o, bar) if o.type is OrderType.TRAILING_STOP_MARKET
                   else o.touches(bar) for o in self._resting.get(symbol, []))

    def _funding_times(self, open_ms: int, symbols: tuple[str, ...]) -> list[int]:
        """Unpaid funding times during the bar, [open, open + interval), oldest first: a position
        held when the bar opened was held then. Funding times are every ``funding_interval_hours``
        counted from 00:00 UTC each day (so a 15m bar pays when it opens at one), and the times
        recorded in the funding history for ``symbols``."""
        floor = max(open_ms - 1, self._last_funding_ms or 0)
        times: list[int] = []
        t = open_ms + self._interval_ms - 1
        while True:
            day = t - t % DAY_MS
            due = day + (t - day) // self._funding_ms * self._funding_ms
            if due <= floor:
                break
            times.append(due)
            t = due - 1
        if self._funding_history is None:
            return times[::-1]
        recorded = self._funding_history.times_between(symbols, floor, open_ms + self._interval_ms)
        return sorted({*times, *recorded})

    def _funding_rate_at(self, symbol: str, due: int, given: float | None) -> float | None:
        """The rate funding settles at for ``symbol`` at ``due``, None when it does not settle
        then. With a history: its recorded rate inside the spans it covers (and nothing at other
        times there); outside them, the configured rate on the configured grid. Without one: the
        feed's rate (``given``), else the configured one."""
        on_grid = due % DAY_MS % self._funding_ms == 0
        if self._funding_history is not None:
            recorded, covered = self._funding_history.settlement(symbol, due)
            if covered:
                return recorded
            return self._funding_rate if on_grid else None
        if not on_grid:
            return None
        return self._funding_rate if given is None else given

    def _replay(
        self,
        timeline: list[tuple[str, Bar]],
        rates: dict[str, float | None],
        ch: Changes,
        events: ExchangeEvents,
    ) -> None:
        for open_ms, group in groupby(timeline, key=lambda item: item[1].open_time_ms):
            bars = list(group)
            for due in self._funding_times(open_ms, tuple(symbol for symbol, _ in bars)):
                self._pay_funding(due, bars, rates, ch, events)
            if self._guard_fires(bars, ch, events):
                continue
            for symbol, bar in bars:
                self._process_bar(symbol, bar, ch, events)

    def _pay_funding(
        self,
        due: int,
        bars: list[tuple[str, Bar]],
        rates: dict[str, float | None],
        ch: Changes,
        events: ExchangeEvents,
    ) -> None:
        """Positive rate: longs pay shorts, amount = −position × mark × rate at the bar's open."""
        for symbol, bar in bars:
            pos = self._positions.get(symbol)
            if pos is None or self._opened_ms.get(symbol, 0) > due:
                continue  # not held at the funding time
            rate = self._funding_rate_at(symbol, due, rates.get(symbol))
            if rate is None:
                continue
            amount = _q(-pos.amount * as_decimal(bar.open) * as_decimal(rate))
            self._wallet = _q(self._wallet + amount)
            payment = FundingPayment(
                f"{self.account_id}-fund-{symbol}-{due}", symbol, amount, rate, due
            )
            ch.funding.append(payment)
            events.funding.append(payment)
            self._last_funding_ms = due

    def _exit_plan(self, symbol: str, bar: Bar) -> ExitPlan | None:
        """What the bar does to the symbol's position, walked pessimistically: its open (gaps),
        then the adverse extreme (stops, then liquidation), then the favourable extreme
        (take-profits). None when there is no position.

        A bar can be older than what it judges: a live feed's candle closes after the desk
        traded inside it. A position opened inside the bar saw only its close, so the bar counts
        as its close alone; an order placed inside it is judged on the close and fills there."""
        pos = self._positions.get(symbol)
        if pos is None:
            return None
        if self._opened_ms.get(symbol, 0) > bar.open_time_ms:
            bar = Bar(bar.open_time_ms, bar.close, bar.close, bar.close, bar.close, bar.volume)
        d = pos.sign
        exit_side = OrderSide.SELL if d > 0 else OrderSide.BUY
        mine = [o for o in self._resting.get(symbol, []) if o.side is exit_side]
        trailing = [o for o in mine if o.type is OrderType.TRAILING_STOP_MARKET]
        mine = [o for o in mine if o.type is not OrderType.TRAILING_STOP_MARKET]
        late = [o for o in mine if o.created_ms > bar.open_time_ms]
        mine = [o for o in mine if o.created_ms <= bar.open_time_ms]
        stops = [o for o in mine if o.type is OrderType.STOP_MARKET]
        tps = [o for o in mine if o.type is OrderType.TAKE_PROFIT_MARKET]
        if d * bar.open <= d * pos.liq_f:
            return ExitPlan(pos, bar, liquidated_at_open=True)
        trail_gaps, trail_near, trail_after, trail_late, states = self._trail(trailing, bar)
        gapped = [o for o in stops if d * bar.open <= d * o.level]
        gapped += [o for o in tps if d * bar.open >= d * o.level]
        gapped += trail_gaps
        at_open = {o.client_order_id for o in gapped}
        adverse = bar.low if d > 0 else bar.high
        favourable = bar.high if d > 0 else bar.low
        # stops beyond the liquidation price are never reached: the liquidation comes first
        near = [
            o
            for o in [*stops, *trail_near]
            if o.client_order_id not in at_open and d * adverse <= d * o.level >= d * pos.liq_f
        ]
        near.sort(key=lambda o: -d * o.level)
        liquidated = d * adverse <= d * pos.liq_f
        targets = sorted(
            (o for o in tps if o.client_order_id not in at_open and d * favourable >= d * o.level),
            key=lambda o: d * o.level,
        )
        at_close = [
            o for o in late
            if (d * bar.close <= d * o.level) == (o.type is OrderType.STOP_MARKET)
        ] + trail_late
        return ExitPlan(pos, bar, adverse_steps=[*gapped, *near, *([None] if liquidated else [])],
                        targets=[*targets, *trail_after, *at_close], at_open=at_open,
                        at_close={o.client_order_id for o in at_close}, trail_states=states)

    def _trail(self, orders: list[BookOrder], bar: Bar) -> tuple[
            list[BookOrder], list[BookOrder], list[BookOrder], list[BookOrder], list[BookOrder]]:
        """The bar's walk of each trailing order (core/exchanges/paper_trailing.py), sorted into
        those the open gaps through, those the adverse extreme reaches, those the retreat to the
        close reaches, those placed inside the bar that fire at its close, and the rest's states.
        An order placed inside the bar meets only the bar's close."""
        gaps: list[BookOrder] = []
        near: list[BookOrder] = []
        after: list[BookOrder] = []
        late: list[BookOrder] = []
        states: list[BookOrder] = []
        closing = Bar(bar.open_time_ms, bar.close, bar.close, bar.close, bar.close, bar.volume)
        for order in orders:
            inside = order.created_ms > bar.open_time_ms
            step = walk(order, closing if inside else bar)
            fired = step.at_open or step.adverse or step.after_peak
            if fired is not None and inside:
                late.append(fired)
            elif step.at_open is not None:
                gaps.append(step.at_open)
            elif step.adverse is not None:
                near.append(step.adverse)
            elif step.after_peak is not None:
                after.append(step.after_peak)
            elif step.state is not None and step.state != order:
                states.append(step.state)
        return gaps, near, after, late, states

    def _process_bar(self, symbol: str, bar: Bar, ch: Changes, events: ExchangeEvents) -> None:
        ts = bar.open_time_ms + self._interval_ms
        plan = self._exit_plan(symbol, bar)
        if plan is not None and plan.liquidated_at_open:
            self._liquidate(symbol, ts, ch, events)
            return
        if plan is not None:
            self._run_steps(symbol, plan, [*plan.adverse_steps, *plan.targets], ts, ch, events)
            for state in plan.trail_states:  # trailed on without firing: the venue remembers
                if self._orders[state.client_order_id].status is OrderStatus.NEW:
                    self._store(state, ch)
        self._expire_stale(symbol, ts, ch, events)

    def _run_steps(self, symbol: str, plan: ExitPlan, steps: list[BookOrder | None], ts: int,
                   ch: Changes, events: ExchangeEvents) -> None:
        """Trigger the plan's orders in turn (None: the liquidation) while the position lasts."""
        for order in steps:
            if symbol not in self._positions:
                break
            if order is None:
                self._liquidate(symbol, ts, ch, events)
            else:
                cid = order.client_order_id
                base = (as_decimal(plan.bar.open) if cid in plan.at_open
                        else as_decimal(plan.bar.close) if cid in plan.at_close
                        else cast(Decimal, order.stop_price))
                self._trigger(order, base, ts, ch, events)

    def _trigger(
        self, order: BookOrder, base: Decimal, ts: int, ch: Changes, events: ExchangeEvents
    ) -> None:
        """A resting order becomes a market order: adverse slippage, capped to the position."""
        qty = min(order.quantity, abs(self._positions[order.symbol].amount))
        price = self._slipped(self._rules(order.symbol), base, order.side)
        done, fill = self._fill(order, qty, price, ts, ch)
        events.fills.append(fill)
        events.order_updates.append(OrderUpdate(done.result((fill,)), ts))

    def _liquidate(self, symbol: str, ts: int, ch: Changes, events: ExchangeEvents) -> None:
        """Close at the liquidation price; the maintenance part of the margin is the fee, so the
        account loses exactly the isolated margin."""
        pos = self._positions[symbol]
        qty = abs(pos.amount)
        realized = _q(qty * (pos.liq - pos.entry_price) * pos.sign)
        seq = self._take_seq()
        order = BookOrder(
            seq=seq,
            client_order_id=f"{LIQUIDATION_PREFIX}{self.account_id}-{seq}",
            exchange_order_id=f"{self.account_id}-O{seq}",
            symbol=symbol,
            side=OrderSide.SELL if pos.sign > 0 else OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=qty,
            stop_price=None,
            reduce_only=True,
            status=OrderStatus.NEW,
            executed_qty=ZERO,
            avg_price=ZERO,
            created_ms=ts,
            updated_ms=ts,
        )
        ch.inserted.add(order.client_order_id)
        fee = pos.isolated_margin + realized
        done, fill = self._book(order, qty, pos.liq, fee, realized, None, ts, ch, liquidation=True)
        events.fills.append(fill)
        events.order_updates.append(OrderUpdate(done.result((fill,)), ts))

