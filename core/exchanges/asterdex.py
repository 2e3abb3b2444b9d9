"""``AsterdexExchange``: the ``Exchange`` contract over the signed AsterDex client.

Why it exists: the engine speaks one venue contract (core/exchanges/base.py) and must not tell the
paper simulator from the real venue. This adapter maps that contract onto ``AsterDexClient`` and
adds what the contract promises beyond single calls:

- **Filters** come from exchangeInfo, the leverage maximum and maintenance rate from the symbol's
  leverage bracket (loaded once per symbol); ``set_leverage`` is clamped to the bracket.
- **Orders** are refused, like the paper venue does, when their quantity is not a multiple of the
  step (``-4023``): the desk rounds with the same filters, so an unrounded size is a bug and is
  never silently changed. A timeout or 503 on placement (``UnknownOrderStatus``) is resolved by
  querying the client order id (a few times: it may surface late); the order is *never* re-sent
  here (a filled market order is no longer "open", and the venue only refuses duplicate ids among
  open orders). What stays unknown is raised to the execution layer, which records it and
  reconciles. A client order id the venue already knows is refused (-4116), as the contract says.
- **sync()** collects what the venue did since the last sync: the account's user trades on the
  session's symbols (each trade once, with the client order id of its order, so a stop fill is
  booked against the position that owns the stop), the status of the orders those trades filled,
  and funding income (``FUNDING_FEE``, one payment per ``tranId``).
- **The user data stream** (``start_user_stream``, core/exchanges/asterdex_userstream.py) pushes
  fills, cancels and expiries as they happen; sync() reports them first. REST polling stays as
  the fallback and the reconciliation: every sync while the stream is down, once after every
  connection the stream opens (the venue does not replay what it sent while nobody listened),
  for a symbol whose position changed without a trade event, and otherwise every
  ``reconcile_seconds``. A trade seen by both is reported once (the trade id), and the desk books
  by trade id besides.
- **Dead-man switch** (``deadman_seconds`` > 0): ``countdownCancelAll`` cancels *every* open order
  of a symbol when the countdown lapses, reduce-only stops included (as on Binance). The desk's only
  resting orders are the stops and take-profits that protect open positions, and a dead engine is
  exactly when they matter, so the switch is armed only on symbols where the desk holds no
  position (there it clears anything a crashed run left behind) and switched off on a symbol
  before an entry is sent there. The countdown is refreshed at most every third of its length.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal

from core.errors import (
    ConfigError,
    ExchangeError,
    ExchangeRequestError,
    OrderRejected,
    UnknownOrderStatus,
)
from core.exchanges.asterdex_client import AsterDexClient
from core.exchanges.asterdex_userstream import KEEPALIVE_S, StreamEvents, UserStream
from core.models import (
    AccountBalance,
    ExchangeEvents,
    ExchangePosition,
    Fill,
    FundingPayment,
    MarketStep,
    OrderRequest,
    OrderResult,
    OrderUpdate,
    SymbolFilters,
)

log = logging.getLogger(__name__)

MISSING_KEYS = (
    "live trading needs AsterDex keys: set ASTERDEX_API_KEY and ASTERDEX_SECRET_KEY (V1) or "
    "ASTERDEX_USER, ASTERDEX_SIGNER and ASTERDEX_PRIVATE_KEY (V3 API wallet) in .env, then run "
    "`python -m core check-exchange`")
SYNC_OVERLAP_MS = 5_000
USER_TRADES_WINDOW_MS = 7 * 86_400_000 - 60_000
USER_TRADES_PAGE = 1000  # userTrades answers at most this many trades per request
RESOLVE_ATTEMPTS = 4
RESOLVE_DELAY_S = 0.5  # re-read this much before the cursor: trades can land slightly late


class AsterdexExchange:
    """The ``Exchange`` protocol on AsterDex (or any Binance-compatible futures venue)."""

    name = "asterdex"

    def __init__(
        self,
        client: AsterDexClient,
        symbols: Iterable[str],
        *,
        since_ms: int | None = None,
        deadman_seconds: float = 0.0,
        funding_every_s: float = 300.0,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.symbols = tuple(s.upper() for s in symbols)
        self.deadman_ms = int(deadman_seconds * 1000)
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        start = since_ms if since_ms is not None else client.http.now_ms()
        self._cursor: dict[str, int] = {s: start for s in self.symbols}
        self._funding_cursor = start
        self._seen: dict[str, int] = {}  # trade id -> time, pruned past the overlap window
        self._seen_funding: dict[str, int] = {}
        self._brackets_loaded: set[str] = set()
        self._armed: dict[str, int] = {}  # symbol -> wall ms of the last countdown refresh
        self._funding_every_ms = int(funding_every_s * 1000)
        self._funding_polled: int | None = None
        self.user_stream: UserStream | None = None
        self._reconcile_ms = 60_000
        self._polled_generation = -1  # the stream's generation at the last full REST poll
        self._polled_wall: int | None = None  # wall ms of the last full REST poll
        self._backlog = StreamEvents()  # drained by a sync that failed: reported by the next

    # ------------------------------------------------------------------ the user data stream
    def start_user_stream(self, *, keepalive_s: float = KEEPALIVE_S, reconcile_s: float = 60.0,
                          wake: Callable[[], None] | None = None) -> None:
        """Read fills and order changes from the user data stream; REST polls every
        ``reconcile_s`` while it is up (every sync while it is down)."""
        if self.user_stream is not None:
            return
        self._reconcile_ms = int(reconcile_s * 1000)
        self.user_stream = UserStream(self.client, keepalive_s=keepalive_s, wake=wake)
        self.user_stream.start()

    def wake_on_events(self, wake: Callable[[], None] | None) -> None:
        """Have ``wake`` called whenever the venue pushes something to book (or the stream drops)."""
        if self.user_stream is not None:
            self.user_stream.wake = wake

    @property
    def fills_status(self) -> str:
        """How fills reach the desk: the user data stream, or REST polling and why."""
        if self.user_stream is None:
            return "REST polling (user stream off)"
        return self.user_stream.status

    # ------------------------------------------------------------------ readiness
    def check_ready(self) -> None:
        """Refuse to trade an account the desk cannot run safely: keys must be set and the
        account in one-way position mode (stops map to exactly one net position)."""
        if not self.client.has_credentials:
            raise ConfigError(MISSING_KEYS)
        if self.client.get_position_mode():
            raise ConfigError(
                "the AsterDex account is in hedge (dual-side) position mode; the desk needs "
                "one-way mode: switch it in the AsterDex futures settings (Position Mode → "
                "One-way) with no open positions or orders, then start again")

    # ------------------------------------------------------------------ the Exchange protocol
    def filters(self, symbol: str) -> SymbolFilters:
        symbol = symbol.upper()
        if symbol not in self._brackets_loaded and self.client.has_credentials:
            with contextlib.suppress(ExchangeRequestError):  # unknown: the lookup below says so
                self.client.leverage_brackets(symbol)
            self._brackets_loaded.add(symbol)
        try:
            return self.client.filters(symbol)
        except ExchangeRequestError as exc:
            raise OrderRejected(str(exc), code=exc.code or -1121) from None

    def set_leverage(self, symbol: str, leverage: int) -> int:
        self.filters(symbol)
        return self.client.set_leverage(symbol, leverage)

    def place_order(self, request: OrderRequest) -> OrderResult:
        rules = self.filters(request.symbol)
        if rules.round_qty(request.quantity) != request.quantity:
            raise OrderRejected(f"Quantity not increased by step size {rules.step_size}.", code=-4023)
        if not request.reduce_only:
            self._disarm(request.symbol)  # an entry: its stop must outlive a dead engine
        try:
            return self._answered(self.client.place_order(request))
        except UnknownOrderStatus as exc:
            log.warning("order %s: outcome unknown, asking the venue", request.client_order_id)
            found = self._resolve(request.symbol, request.client_order_id)
            if found is None:
                raise UnknownOrderStatus(f"{exc}; the venue does not know it (not re-sent)") from None
            return self._answered(found)

    def _resolve(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """Query an order whose placement answer was lost, a few times (it may surface late);
        None when the venue says twice that it does not know it."""
        absent, wait = 0, RESOLVE_DELAY_S
        for attempt in range(RESOLVE_ATTEMPTS):
            if attempt:
                self.client._sleep(wait)
                wait *= 2
            try:
                found = self.get_order(symbol, client_order_id)
            except ExchangeRequestError:
                raise
            except ExchangeError:
                absent = 0
                continue
            if found is not None:
                return found
            absent += 1
            if absent >= 2:
                return None
        raise UnknownOrderStatus(f"order {client_order_id} on {symbol}: still unknown after "
                                 f"{RESOLVE_ATTEMPTS} queries; reconciliation will ask again")

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        found = self.client.get_order(symbol, client_order_id)
        if found is None:
            return None
        return self._answered(replace(found, fills=self.client.order_fills(found)))

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        result = self.client.cancel_order(symbol, client_order_id)
        if result is not None and result.executed_qty > 0:
            result = replace(result, fills=self.client.order_fills(result))
        return self._answered(result) if result is not None else None

    def _answered(self, result: OrderResult) -> OrderResult:
        """Fills handed to the caller with an order are not reported again by ``sync``."""
        for fill in result.fills:
            self._seen[fill.trade_id] = fill.ts_ms
        return result

    def cancel_all(self, symbol: str) -> int:
        return self.client.cancel_all(symbol)

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        return self.client.open_orders(symbol)

    def positions(self) -> list[ExchangePosition]:
        return self.client.positions()

    def balance(self) -> AccountBalance:
        return self.client.account().summary

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        # the venue answers at most 7 days from startTime: never ask from further back
        since_ms = max(since_ms, self.client.http.now_ms() - USER_TRADES_WINDOW_MS)
        return sorted(self.client.fills_since(symbol, since_ms), key=lambda f: (f.ts_ms, f.trade_id))

    def arm_loss_guard(self, max_loss: Decimal | None) -> None:
        """AsterDex has no account-level stop: the engine's per-tick drawdown check is the halt."""

    def sync(self, step: MarketStep) -> ExchangeEvents:
        """What the venue did since the last sync: new user trades (oldest first), the orders they
        filled, and funding payments. Every trade and payment is reported once: the cursors move
        only when the whole sync succeeded (a failure part way reports everything again next
        time; the desk books by trade and payment id)."""
        saved = (dict(self._seen), dict(self._cursor), dict(self._seen_funding),
                 self._funding_cursor, self._funding_polled, self._polled_generation,
                 self._polled_wall)
        pushed = self._pushed()
        try:
            events = self._collect(step, pushed)
        except BaseException:
            (self._seen, self._cursor, self._seen_funding, self._funding_cursor,
             self._funding_polled, self._polled_generation, self._polled_wall) = saved
            self._backlog = pushed
            self._polled_generation = -1  # poll REST next time whatever the stream says
            raise
        self._prune()
        try:
            self._deadman()
        except ExchangeError as exc:  # the countdown only guards symbols without a position
            log.warning("dead-man countdown not refreshed: %s", exc)
        return events

    def _pushed(self) -> StreamEvents:
        """What the stream pushed since the last sync, after what a failed sync left."""
        backlog, self._backlog = self._backlog, StreamEvents()
        if self.user_stream is None:
            return backlog
        fresh = self.user_stream.drain()
        return StreamEvents(fills=backlog.fills + fresh.fills, orders=backlog.orders + fresh.orders,
                            unexplained=backlog.unexplained | fresh.unexplained,
                            funding=backlog.funding or fresh.funding)

    def _poll_all(self) -> bool:
        """Whether this sync polls every symbol's trades over REST (see the module docstring);
        notes the stream's generation first, so a connection opened during the poll gets its own."""
        stream = self.user_stream
        now = self._wall_ms()
        due = (stream is None or not stream.connected
               or stream.generation != self._polled_generation
               or self._polled_wall is None or now - self._polled_wall >= self._reconcile_ms)
        if due:
            self._polled_generation = stream.generation if stream is not None else -1
            self._polled_wall = now
        return due

    def _collect(self, step: MarketStep, pushed: StreamEvents | None = None) -> ExchangeEvents:
        pushed = pushed or StreamEvents()
        events = ExchangeEvents()
        for fill in pushed.fills:
            if fill.trade_id not in self._seen:
                self._seen[fill.trade_id] = fill.ts_ms
                events.fills.append(fill)
        # orders whose final state the stream gave: a REST fill of theirs needs no order query
        stated = {order.client_order_id for order in pushed.orders if order.status.final}
        events.order_updates.extend(OrderUpdate(order=order, ts_ms=step.now_ms)
                                    for order in pushed.orders)
        if pushed.funding:
            self._funding_polled = None  # a payment happened: read the income now
        polled = self.symbols if self._poll_all() else tuple(
            s for s in self.symbols if s in pushed.unexplained)
        touched: dict[str, str] = {}
        for symbol in polled:
            for fill in self._new_trades(symbol):
                events.fills.append(fill)
                if fill.client_order_id and fill.client_order_id not in stated:
                    touched[fill.client_order_id] = symbol
        for cid, symbol in touched.items():
            try:
                order = self.client.get_order(symbol, cid)
            except ExchangeError as exc:
                log.warning("order %s after a fill: %s", cid, exc)
                continue
            if order is not None:
                events.order_updates.append(OrderUpdate(order=order, ts_ms=step.now_ms))
        events.funding.extend(self._funding())
        events.fills.sort(key=lambda f: (f.ts_ms, f.trade_id))
        return events

    def _new_trades(self, symbol: str) -> list[Fill]:
        """Trades not reported yet, paging while the venue answers full pages. The cursor follows
        every trade returned, the desk's own included, so it never falls a page behind."""
        out: list[Fill] = []
        since = max(0, self._cursor[symbol] - SYNC_OVERLAP_MS)
        while True:
            page = self.fills_since(symbol, since)
            for fill in page:
                self._cursor[symbol] = max(self._cursor[symbol], fill.ts_ms)
                if fill.trade_id not in self._seen:
                    self._seen[fill.trade_id] = fill.ts_ms
                    out.append(fill)
            if len(page) < USER_TRADES_PAGE:
                return out
            last = max(f.ts_ms for f in page)
            since = last if last > since else last + 1  # a full page of one millisecond: step on

    def _prune(self) -> None:
        oldest = min(self._cursor.values(), default=0) - 2 * SYNC_OVERLAP_MS
        self._seen = {k: t for k, t in self._seen.items() if t >= oldest}
        floor = self._funding_cursor - 2 * SYNC_OVERLAP_MS
        self._seen_funding = {k: t for k, t in self._seen_funding.items() if t >= floor}

    def _funding(self) -> list[FundingPayment]:
        """Funding income, polled at most every ``funding_every_s`` (the income endpoint weighs
        30; funding happens every few hours)."""
        now = self._wall_ms()
        if self._funding_polled is not None and now - self._funding_polled < self._funding_every_ms:
            return []
        self._funding_polled = now
        since = max(0, self._funding_cursor - SYNC_OVERLAP_MS)
        out: list[FundingPayment] = []
        for rec in self.client.income(income_type="FUNDING_FEE", start_ms=since, limit=1000):
            key = rec.tran_id or f"{rec.symbol}:{rec.time_ms}"
            if rec.symbol not in self.symbols or key in self._seen_funding:
                continue
            self._seen_funding[key] = rec.time_ms
            self._funding_cursor = max(self._funding_cursor, rec.time_ms)
            out.append(FundingPayment(payment_id=f"asterdex:{key}", symbol=rec.symbol,
                                      amount=rec.income, rate=0.0, ts_ms=rec.time_ms))
        return sorted(out, key=lambda p: p.ts_ms)

    # ------------------------------------------------------------------ dead-man switch
    def _deadman(self) -> None:
        if self.deadman_ms <= 0:
            return
        held = {p.symbol for p in self.positions()}
        now = self._wall_ms()
        for symbol in self.symbols:
            if symbol in held:
                self._disarm(symbol)
            elif now - self._armed.get(symbol, -self.deadman_ms) >= self.deadman_ms // 3:
                self.client.countdown_cancel_all(symbol, self.deadman_ms)
                self._armed[symbol] = now

    def _disarm(self, symbol: str) -> None:
        if self._armed.pop(symbol, None) is not None:
            self.client.countdown_cancel_all(symbol, 0)

    def close(self) -> None:
        if self.user_stream is not None:
            self.user_stream.stop()
            self.user_stream = None
        for symbol in list(self._armed):
            try:
                self._disarm(symbol)
            except ExchangeError:
                log.warning("could not switch the dead-man countdown off on %s", symbol)
        self.client.close()

