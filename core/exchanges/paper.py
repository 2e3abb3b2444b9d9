"""The paper venue: an honest simulator of a USDT-margined perpetuals exchange.

Paper results drift from live when paper fills are instant, free and forgiving, so this venue is
not: market orders pay slippage (rounded against the trader to the tick) and the taker fee; margin is
isolated with a liquidation price from leverage and the maintenance margin rate; resting stop-market
and take-profit-market orders trigger on each bar's high/low (a gap fills at the bar's open, and when
a stop and a take-profit both fit in one bar the stop is assumed first), and trailing stops trail the
bar's extremes the same pessimistic way (core/exchanges/paper_trailing.py); funding is booked at every
funding time (the recorded times and rates of a funding history where it has one); and orders are
refused with the real venue's error codes (filters, margin, min notional, reduce-only, duplicate
client order id).

It plays a *remote* exchange: its state lives in the ``paper_*`` tables and every change commits in
its own short transaction before a call returns, so a restarted process sees exactly what the venue
had. Memory mirrors the database; a failed write restores memory and raises
``ExchangeUnavailable``. ``sync`` touches the database only when something happened. A backtest's
venue (no engine, an opening balance) keeps the same state in memory only and writes nothing:
nothing resumes a backtest after a crash, and every call behaves exactly as on a stored account.

Model limits: one-way netting per symbol; resting orders must be reduce-only (stop entries are not
simulated); funding is paid from the wallet (not the isolated margin) for the funding times during a
bar, at that bar's open price; a liquidation closes at the liquidation price and loses exactly the
isolated margin. Venue-made status changes after ``place_order`` (e.g. a closing order expiring the
position's stop) are reported by the next ``sync``.
A candle can close after the desk traded inside it (a live feed): a position opened inside a bar
meets only that bar's close (no stop, take-profit or liquidation on its earlier prices, no funding
for a time before it opened), and an order placed inside a bar is judged and filled at its close.
When each position opened is kept in memory only: after a restart it counts as held before any
bar it meets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from core.errors import (
    BelowMinNotional,
    ExchangeUnavailable,
    InsufficientMargin,
    OrderRejected,
)
from core.exchanges.paper_bars import HOUR_MS, BarProcessing, as_decimal
from core.exchanges.paper_book import (
    ZERO,
    BookOrder,
    BookPosition,
    check_client_id,
    check_quantity,
    increases,
    make_position,
    next_position,
    order_from_row,
    reduce_only_qty,
    would_trigger,
)
from core.exchanges.paper_guard import LossGuard
from core.exchanges.paper_store import (
    AccountState,
    Changes,
    StoredAccount,
    create_account,
    load_account,
    load_fills,
    select_fills,
    write_changes,
)
from core.exchanges.paper_store import quantize as _q
from core.exchanges.paper_trailing import trailing_at
from core.exchanges.symbols import generic_filters
from core.funding import FundingHistory
from core.models import (
    AccountBalance,
    ExchangeEvents,
    ExchangePosition,
    Fill,
    MarketStep,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    OrderUpdate,
    SymbolFilters,
)

DEFAULT_LEVERAGE = 20
MIN_CALLBACK_RATE = Decimal("0.1")  # TRAILING_STOP_MARKET callbackRate bounds, in percent
MAX_CALLBACK_RATE = Decimal("5")



class PaperExchange(BarProcessing, LossGuard):
    """The ``Exchange`` protocol over a simulated account, durable in the ``paper_*`` tables (or,
    without an engine, in memory only)."""

    name = "paper"

    def __init__(
        self,
        engine: Engine | None,
        account_id: str,
        *,
        filters: dict[str, SymbolFilters],
        taker_fee: float,
        slippage_bps: float,
        funding_rate: float,
        funding_interval_hours: int = 8,
        interval_ms: int = 900_000,
        opening_balance: Decimal | None = None,
        funding_history: FundingHistory | None = None,
    ) -> None:
        """``engine`` None: the account lives in memory only and opens with ``opening_balance``
        USDT (a backtest's venue). ``funding_history``: the recorded funding (replay and
        backtests) that settles instead of ``funding_rate`` wherever it covers a symbol."""
        if not 1 <= funding_interval_hours <= 24:
            raise ValueError("funding_interval_hours must be 1..24")
        self._engine = engine
        self.account_id = account_id
        self._filters = dict(filters)
        self._fee_rate = as_decimal(taker_fee)
        self._slip = as_decimal(slippage_bps) / 10_000
        self._funding_rate = funding_rate
        self._funding_ms = funding_interval_hours * HOUR_MS
        self._funding_history = funding_history
        self._interval_ms = interval_ms
        self._prices: dict[str, float] = {}
        self._now_ms = 0
        self._pending = ExchangeEvents()
        self._fills: list[Fill] = []  # without an engine, the venue's trade records live here
        self._load(opening_balance)

    # ------------------------------------------------------------------ accounts and persistence

    @staticmethod
    def open_account(engine: Engine, account_id: str, balance: Decimal) -> None:
        """Create the account row with ``balance`` USDT; refuse (ValueError) if it exists."""
        if balance < 0:
            raise ValueError("a paper account cannot start with a negative balance")
        create_account(engine, account_id, balance)

    def _load(self, opening_balance: Decimal | None) -> None:
        if self._engine is not None:
            if opening_balance is not None:
                raise ValueError("a stored paper account opens with PaperExchange.open_account")
            stored = load_account(self._engine, self.account_id)
        elif opening_balance is None or opening_balance < 0:
            raise ValueError("a paper venue in memory needs an opening balance of 0 or more")
        else:
            stored = StoredAccount(AccountState(_q(opening_balance), 1, None), [], [], {})
        self._wallet: Decimal = stored.account.wallet_balance
        self._seq: int = stored.account.next_seq
        self._last_funding_ms: int | None = stored.account.last_funding_ms
        self._orders: dict[str, BookOrder] = {}
        self._resting: dict[str, list[BookOrder]] = {}
        for row in stored.orders:
            self._remember(order_from_row(row))
        self._positions: dict[str, BookPosition] = {
            r["symbol"]: make_position(
                r["amount"],
                r["entry_price"],
                r["leverage"],
                r["isolated_margin"],
                self._mmr(r["symbol"]),
            )
            for r in stored.positions
        }
        self._leverage: dict[str, int] = stored.leverage
        # when each position opened, for the bars a live feed closes after it (memory only: a
        # position loaded from the store counts as held before any bar it will meet)
        self._opened_ms: dict[str, int] = {}

    @contextmanager
    def _transaction(self) -> Iterator[Changes]:
        """Run a mutation on memory, then write it through; on any failure restore memory."""
        saved = (
            self._wallet,
            self._seq,
            self._last_funding_ms,
            dict(self._orders),
            dict(self._resting),
            dict(self._positions),
            dict(self._leverage),
            dict(self._opened_ms),
        )
        changes = Changes()
        try:
            yield changes
            if self._engine is None:
                self._fills.extend(changes.trades)  # type: ignore[arg-type]
            else:
                account = AccountState(self._wallet, self._seq, self._last_funding_ms)
                write_changes(self._engine, self.account_id, account, changes)
        except BaseException as exc:
            (
                self._wallet,
                self._seq,
                self._last_funding_ms,
                self._orders,
                self._resting,
                self._positions,
                self._leverage,
                self._opened_ms,
            ) = saved
            if isinstance(exc, SQLAlchemyError):
                raise ExchangeUnavailable(f"paper venue could not persist: {exc}") from exc
            raise

    # ------------------------------------------------------------------ the Exchange protocol

    def filters(self, symbol: str) -> SymbolFilters:
        found = self._filters.get(symbol)
        if found is None:
            raise OrderRejected(f"Invalid symbol {symbol!r}.", code=-1121)
        return found

    def set_leverage(self, symbol: str, leverage: int) -> int:
        rules = self.filters(symbol)
        if not 1 <= leverage <= rules.max_leverage:
            raise OrderRejected(
                f"Leverage {leverage} is not valid for {symbol} (1..{rules.max_leverage}).",
                code=-4028,
            )
        if self._leverage.get(symbol) != leverage:
            with self._transaction() as ch:
                self._leverage[symbol] = leverage
                ch.leverage[symbol] = leverage
        return leverage

    def place_order(self, request: OrderRequest) -> OrderResult:
        rules = self.filters(request.symbol)
        check_client_id(request.client_order_id)
        check_quantity(rules, request.quantity)
        if request.client_order_id in self._orders:
            raise OrderRejected("duplicate clientOrderId", code=-4116)
        last = self._prices.get(request.symbol)
        if last is None:
            raise ExchangeUnavailable(f"no price for {request.symbol} yet")
        if request.type is OrderType.MARKET:
            return self._market(request, rules, as_decimal(last))
        return self._conditional(request, rules, as_decimal(last))

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The order's current state with its fills (read from the venue's trade records)."""
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            return None
        return order.result(tuple(self._trades(client_order_id=client_order_id)))

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        return self._trades(symbol=symbol, since_ms=since_ms)

    def _trades(self, **where: str | int) -> list[Fill]:
        if self._engine is None:
            return select_fills(self._fills, **where)  # type: ignore[arg-type]
        return load_fills(self._engine, self.account_id, **where)  # type: ignore[arg-type]

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            return None
        if order.status.final:
            return order.result()
        with self._transaction() as ch:
            order = self._store(replace(order, status=OrderStatus.CANCELED), ch)
        return order.result()

    def cancel_all(self, symbol: str) -> int:
        resting = self._resting.get(symbol, [])
        if resting:
            with self._transaction() as ch:
                for order in resting:
                    self._store(replace(order, status=OrderStatus.CANCELED), ch)
        return len(resting)

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        if symbol is not None:
            return [o.result() for o in self._resting.get(symbol, [])]
        every = (o for orders in self._resting.values() for o in orders)
        return [o.result() for o in sorted(every, key=lambda o: o.seq)]

    def positions(self) -> list[ExchangePosition]:
        out = []
        for symbol, p in self._positions.items():
            mark = self._mark(symbol)
            out.append(
                ExchangePosition(
                    symbol=symbol,
                    amount=p.amount,
                    entry_price=p.entry_price,
                    leverage=p.leverage,
                    isolated_margin=p.isolated_margin,
                    liquidation_price=p.liq,
                    mark_price=mark,
                    unrealized_pnl=_q(p.amount * (mark - p.entry_price)),
                )
            )
        return out

    def balance(self) -> AccountBalance:
        used = sum((p.isolated_margin for p in self._positions.values()), ZERO)
        unrealized = sum(
            (p.amount * (self._mark(s) - p.entry_price) for s, p in self._positions.items()), ZERO
        )
        return AccountBalance(
            wallet_balance=self._wallet,
            available_balance=self._wallet - used,
            unrealized_pnl=_q(unrealized),
        )

    def sync(self, step: MarketStep) -> ExchangeEvents:
        """Take the step's prices, then replay its bars in time order: funding, liquidations and
        resting orders. Returns early, without database work, when no bar can matter."""
        self._prices.update(step.prices)
        self._now_ms = step.now_ms
        events = ExchangeEvents()
        if self._positions or self._resting:
            timeline = [
                (symbol, bar)
                for symbol, bars in step.bars.items()
                if symbol in self._positions or symbol in self._resting
                for bar in bars
            ]
            if any(self._due(symbol, bar) for symbol, bar in timeline) or self._guard_may_fire(
                    timeline):
                timeline.sort(key=lambda item: item[1].open_time_ms)
                with self._transaction() as ch:
                    self._replay(timeline, step.funding_rates, ch, events)
        self._loss_floor = None  # armed for one sync
        if self._pending:
            events = self._take_pending(events)
        return events

    # ------------------------------------------------------------------ orders

    def _market(self, request: OrderRequest, rules: SymbolFilters, mark: Decimal) -> OrderResult:
        symbol, qty = request.symbol, request.quantity
        pos = self._positions.get(symbol)
        if request.reduce_only:
            qty = reduce_only_qty(pos, request.side, qty)
        elif qty * mark < rules.min_notional:
            raise BelowMinNotional(
                f"Order's notional {qty * mark} must be no smaller than {rules.min_notional}."
            )
        price = self._slipped(rules, mark, request.side)
        delta = qty if request.side is OrderSide.BUY else -qty
        after, realized = next_position(
            pos, delta, price, self._symbol_leverage(symbol), rules.maint_margin_rate
        )
        fee = _q(qty * price * self._fee_rate)
        if increases(pos, after):
            self._check_margin(pos, after, realized, fee)
        expired = ExchangeEvents()
        with self._transaction() as ch:
            order = self._new_order(request, qty, ch)
            order, fill = self._fill(order, qty, price, self._now_ms, ch)
            self._expire_stale(symbol, self._now_ms, ch, expired)
        self._pending.order_updates.extend(expired.order_updates)
        return order.result((fill,))

    def _conditional(
        self, request: OrderRequest, rules: SymbolFilters, mark: Decimal
    ) -> OrderResult:
        stop = request.stop_price
        if not request.reduce_only:
            raise OrderRejected("the paper venue rests only reduce-only STOP_MARKET, "
                                "TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET orders")
        if request.type is OrderType.TRAILING_STOP_MARKET:
            return self._trailing(request, rules, mark)
        if stop is None:
            raise OrderRejected("stopPrice is mandatory for this order type.", code=-1102)
        if stop <= 0:
            raise OrderRejected("Price less than min price.", code=-4013)
        if rules.round_price(stop, up=False) != stop:
            raise OrderRejected(f"Price not increased by tick size {rules.tick_size}.", code=-4014)
        reduce_only_qty(self._positions.get(request.symbol), request.side, request.quantity)
        if would_trigger(request.type, request.side, stop, mark):
            raise OrderRejected("Order would immediately trigger.", code=-2021)
        with self._transaction() as ch:
            order = self._new_order(request, request.quantity, ch)
        return order.result()

    def _trailing(self, request: OrderRequest, rules: SymbolFilters, mark: Decimal) -> OrderResult:
        """A reduce-only trailing stop, checked as the venue does: callbackRate 0.1-5 (percent)
        and an activation price beyond the last price on the profit side (-2021 otherwise);
        without one it is armed at the last price."""
        rate, activation = request.callback_rate, request.activation_price
        if rate is None:
            raise OrderRejected("callbackRate is mandatory for TRAILING_STOP_MARKET.", code=-1102)
        if not MIN_CALLBACK_RATE <= rate <= MAX_CALLBACK_RATE:
            raise OrderRejected(f"callbackRate {rate} is outside {MIN_CALLBACK_RATE}-"
                                f"{MAX_CALLBACK_RATE}.", code=-1102)
        if activation is not None:
            if activation <= 0:
                raise OrderRejected("Price less than min price.", code=-4013)
            if rules.round_price(activation, up=False) != activation:
                raise OrderRejected(f"Price not increased by tick size {rules.tick_size}.",
                                    code=-4014)
            sell = request.side is OrderSide.SELL
            if (activation <= mark) if sell else (activation >= mark):
                raise OrderRejected("Order would immediately trigger.", code=-2021)
        reduce_only_qty(self._positions.get(request.symbol), request.side, request.quantity)
        with self._transaction() as ch:
            order = self._new_order(request, request.quantity, ch)
            if activation is None:
                order = self._store(trailing_at(order, mark), ch)
        return order.result()

    def _check_margin(
        self, pos: BookPosition | None, after: BookPosition, realized: Decimal, fee: Decimal
    ) -> None:
        released = pos.isolated_margin if pos else ZERO
        available = self._wallet - sum((p.isolated_margin for p in self._positions.values()), ZERO)
        left = available + released + realized - fee - after.isolated_margin
        if left < 0:
            raise InsufficientMargin(
                f"Margin is insufficient: available {available} USDT, short by {-left} USDT."
            )

    def _new_order(self, request: OrderRequest, qty: Decimal, ch: Changes) -> BookOrder:
        seq = self._take_seq()
        stop = request.stop_price if request.type not in (
            OrderType.MARKET, OrderType.TRAILING_STOP_MARKET) else None
        order = BookOrder(
            seq=seq,
            client_order_id=request.client_order_id,
            exchange_order_id=f"{self.account_id}-O{seq}",
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            quantity=qty,
            stop_price=stop,
            reduce_only=request.reduce_only,
            status=OrderStatus.NEW,
            executed_qty=ZERO,
            avg_price=ZERO,
            created_ms=self._now_ms,
            updated_ms=self._now_ms,
            level=float(stop) if stop is not None else 0.0,
            callback_rate=request.callback_rate,
            activation_price=request.activation_price,
        )
        ch.inserted.add(order.client_order_id)
        return self._store(order, ch)

    def _store(self, order: BookOrder, ch: Changes) -> BookOrder:
        ch.orders[order.client_order_id] = order
        self._remember(order)
        return order

    def _remember(self, order: BookOrder) -> None:
        """Index an order (new or changed); resting lists are replaced, never edited in place."""
        self._orders[order.client_order_id] = order
        cid = order.client_order_id
        resting = [o for o in self._resting.get(order.symbol, []) if o.client_order_id != cid]
        if order.status is OrderStatus.NEW:
            resting.append(order)
        if resting:
            self._resting[order.symbol] = resting
        else:
            self._resting.pop(order.symbol, None)

    def _fill(
        self, order: BookOrder, qty: Decimal, price: Decimal, ts: int, ch: Changes
    ) -> tuple[BookOrder, Fill]:
        pos = self._positions.get(order.symbol)
        delta = qty if order.side is OrderSide.BUY else -qty
        after, realized = next_position(
            pos, delta, price, self._symbol_leverage(order.symbol), self._mmr(order.symbol)
        )
        fee = _q(qty * price * self._fee_rate)
        return self._book(order, qty, price, fee, realized, after, ts, ch)

    def _book(
        self,
        order: BookOrder,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        realized: Decimal,
        after: BookPosition | None,
        ts: int,
        ch: Changes,
        *,
        liquidation: bool = False,
    ) -> tuple[BookOrder, Fill]:
        """Book one execution: wallet, position, trade, and the order FILLED."""
        self._wallet = _q(self._wallet + realized - fee)
        before = self._positions.get(order.symbol)
        if after is None:
            self._positions.pop(order.symbol, None)
            self._opened_ms.pop(order.symbol, None)
        else:
            self._positions[order.symbol] = after
            if before is None or before.sign != after.sign:
                self._opened_ms[order.symbol] = ts
        ch.positions[order.symbol] = after
        fill = Fill(
            trade_id=f"{self.account_id}-T{self._take_seq()}",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            price=price,
            fee=fee,
            realized_pnl=realized,
            ts_ms=ts,
            liquidation=liquidation,
        )
        ch.trades.append(fill)
        done = replace(
            order,
            quantity=qty,
            status=OrderStatus.FILLED,
            executed_qty=qty,
            avg_price=price,
            updated_ms=ts,
        )
        return self._store(done, ch), fill

    def _expire_stale(self, symbol: str, ts: int, ch: Changes, events: ExchangeEvents) -> None:
        """Expire reduce-only orders that can no longer reduce (position flat or flipped)."""
        pos = self._positions.get(symbol)
        for order in self._resting.get(symbol, []):
            stale = pos is None or (order.side is OrderSide.BUY) == (pos.sign > 0)
            if order.reduce_only and stale:
                done = self._store(replace(order, status=OrderStatus.EXPIRED, updated_ms=ts), ch)
                events.order_updates.append(OrderUpdate(done.result(), ts))


    # ------------------------------------------------------------------ small helpers

    def _take_pending(self, events: ExchangeEvents) -> ExchangeEvents:
        pending, self._pending = self._pending, ExchangeEvents()
        pending.fills.extend(events.fills)
        pending.order_updates.extend(events.order_updates)
        pending.funding.extend(events.funding)
        pending.loss_guard = events.loss_guard
        return pending

    def _take_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def _rules(self, symbol: str) -> SymbolFilters:
        """Filters for bookkeeping, even for a symbol dropped from the configuration."""
        return self._filters.get(symbol) or generic_filters(symbol)

    def _mmr(self, symbol: str) -> Decimal:
        return self._rules(symbol).maint_margin_rate

    def _symbol_leverage(self, symbol: str) -> int:
        return self._leverage.get(symbol) or min(DEFAULT_LEVERAGE, self._rules(symbol).max_leverage)

    def _mark(self, symbol: str) -> Decimal:
        last = self._prices.get(symbol)
        return as_decimal(last) if last is not None else self._positions[symbol].entry_price

    def _slipped(self, rules: SymbolFilters, price: Decimal, side: OrderSide) -> Decimal:
        """Market execution price: slippage against the trader, rounded against the trader."""
        if side is OrderSide.BUY:
            return rules.round_price(price * (1 + self._slip), up=True)
        return rules.round_price(price * (1 - self._slip), up=False)


