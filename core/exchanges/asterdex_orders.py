"""Order endpoints of the AsterDex client: place, resolve, query and cancel, never twice.

Why a module of its own: this is where money is at stake, so the rules live together and apart from
the data endpoints. ``OrderEndpoints`` is mixed into ``AsterDexClient`` (which provides the signed
transport, the filters and the user trades); it promises:

- parameters are rounded before sending: quantity *down* to the step; limit prices so a buy never
  pays more and a sell never gets less; stop prices so a protective stop (and a take-profit)
  triggers no later than asked; a trailing stop's callbackRate down to 0.1 % steps and its
  activation price toward the market; anything the venue would refuse anyway (below the minimum
  quantity, a stop without a price) is refused here with the venue's code, unsent;
- ``place_order`` sends once; ``place_order_safely`` resolves an *unknown* outcome by querying the
  client order id; it re-sends (same id) only when the caller opts in and the venue confirmed
  twice that it never saw the order;
- an executed order is always returned as executed, even when its trades cannot be read yet.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Literal

from core.errors import (
    DuplicateClientOrderId,
    ExchangeError,
    ExchangeRequestError,
    OrderRejected,
    UnknownOrderStatus,
)
from core.exchanges.asterdex_signing import ParamValue
from core.exchanges.asterdex_types import UserTrade, parse_order
from core.models import Fill, OrderRequest, OrderResult, OrderSide, OrderType, SymbolFilters

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from core.exchanges.asterdex_http import AsterHttp

NO_SUCH_ORDER = -2013
CANCEL_REJECTED = -2011
STOP_TYPES = (OrderType.STOP_MARKET, OrderType.STOP)
TP_TYPES = (OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT)
# MARKET_LOT_SIZE bounds MARKET orders; resting stops keep LOT_SIZE so a cover is never refused
MARKET_TYPES = (OrderType.MARKET,)
CALLBACK_STEP = Decimal("0.1")  # TRAILING_STOP_MARKET callbackRate, percent: 0.1 .. 5
MIN_CALLBACK_RATE = Decimal("0.1")
MAX_CALLBACK_RATE = Decimal("5")
TRADES_WINDOW_MS = 7 * 24 * 3_600_000  # a userTrades time window spans at most seven days
TRADES_PAGE = 1000  # userTrades' largest page
MAX_TRADE_PAGES = 20  # one order's trades never need more; bounds a venue that misbehaves
WorkingType = Literal["MARK_PRICE", "CONTRACT_PRICE"]


class OrderEndpoints:
    """The order half of ``AsterDexClient``."""

    if TYPE_CHECKING:  # provided by AsterDexClient
        http: AsterHttp
        _sleep: Callable[[float], None]
        _lock: threading.Lock
        _order_ids: OrderedDict[str, str]

        def _signed(self, method: str, path: str,
                    params: Mapping[str, ParamValue | None] | None = None,
                    *, order: bool = False, exact_path: bool = False) -> Any: ...

        def filters(self, symbol: str) -> SymbolFilters: ...

        def user_trades(self, symbol: str, *, start_ms: int | None = None,
                        end_ms: int | None = None, from_id: int | None = None,
                        limit: int = 500) -> list[UserTrade]: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        data = self._signed("GET", "/fapi/v1/openOrders", {"symbol": symbol.upper() if symbol else None})
        return [self._remember(parse_order(r)) for r in data]

    def get_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The venue's view of an order by client id, or None if the venue does not know it."""
        try:
            data = self._signed("GET", "/fapi/v1/order",
                                {"symbol": symbol.upper(), "origClientOrderId": client_order_id})
        except ExchangeRequestError as exc:
            if exc.code == NO_SUCH_ORDER:
                return None
            raise
        return self._remember(parse_order(data))

    def order_fills(self, order: OrderResult) -> tuple[Fill, ...]:
        """The trades that filled ``order`` (empty when nothing executed).

        ``userTrades`` has no order filter, so the account's trades are read from the order's
        time on, window by window (at most seven days each) and page by page, and only a trade
        that names this order is credited to it. Reading stops once the executed quantity is
        covered or the present is reached.
        """
        if order.executed_qty <= 0:
            return ()
        now = self.http.now_ms()
        start = order.created_ms if order.created_ms is not None else now - TRADES_WINDOW_MS
        start = max(start - 1_000, now - 30 * 24 * 3_600_000)  # the venue's clock may lag ours
        found: dict[str, UserTrade] = {}
        pages = 0
        while start <= now and pages < MAX_TRADE_PAGES:
            end = min(start + TRADES_WINDOW_MS - 1, now + 60_000)
            page = self.user_trades(order.symbol, start_ms=start, end_ms=end, limit=TRADES_PAGE)
            pages += 1
            for t in page:
                if t.order_id == order.exchange_order_id:
                    found[t.trade_id] = t
            if sum((t.qty for t in found.values()), Decimal(0)) >= order.executed_qty:
                break
            if len(page) >= TRADES_PAGE:  # a full page: go on from its last trade's time
                start = max(start + 1, page[-1].time_ms) if page[-1].time_ms > start else start + 1
            else:
                start = end + 1
        trades = sorted(found.values(), key=lambda t: (t.time_ms, t.trade_id))
        return tuple(t.to_fill(order.client_order_id) for t in trades)

    def prepare_order(self, request: OrderRequest, *, price: Decimal | None = None,
                      time_in_force: str = "GTC", close_position: bool = False,
                      working_type: WorkingType = "MARK_PRICE") -> dict[str, ParamValue]:
        """The exact parameters ``place_order`` sends: rounded to the filters and checked
        (``OrderRejected`` with the venue's code for what the venue would refuse anyway)."""
        f = self.filters(request.symbol)
        sell = request.side is OrderSide.SELL
        params: dict[str, ParamValue] = {
            "symbol": request.symbol.upper(), "side": request.side.value, "type": request.type.value,
        }
        if not close_position:
            market = request.type in MARKET_TYPES
            qty = f.round_qty(request.quantity, market=market)
            low, high = f.qty_bounds(market=market)
            if qty <= 0 or qty < low:
                raise OrderRejected(f"quantity {request.quantity} is below the minimum {low} "
                                    f"for {request.symbol}", code=-4004)
            if qty > high:
                kind = "a market order's" if market else "the"
                raise OrderRejected(f"quantity {qty} is above {kind} maximum {high}", code=-4005)
            params["quantity"] = qty
        if request.type in (OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT):
            if price is None:
                raise OrderRejected(f"{request.type.value} needs a price", code=-1102)
            params["price"] = f.round_price(price, up=sell)  # never pay more / sell for less
            params["timeInForce"] = time_in_force
        if request.type in STOP_TYPES + TP_TYPES:
            if request.stop_price is None:
                raise OrderRejected(f"{request.type.value} needs a stop price", code=-1102)
            # a protective stop triggers no later, a take-profit no later, after rounding
            up = sell if request.type in STOP_TYPES else not sell
            params["stopPrice"] = f.round_price(request.stop_price, up=up)
            params["workingType"] = working_type
        if request.type is OrderType.TRAILING_STOP_MARKET:
            params.update(self._trailing_params(request, f, sell))
            params["workingType"] = working_type
        if close_position:
            params["closePosition"] = True
        elif request.reduce_only:
            params["reduceOnly"] = True
        params["newClientOrderId"] = request.client_order_id
        params["newOrderRespType"] = "RESULT"
        return params

    @staticmethod
    def _trailing_params(request: OrderRequest, f: SymbolFilters,
                         sell: bool) -> dict[str, ParamValue]:
        """``callbackRate`` (percent, 0.1-5 in steps of 0.1, rounded down: a tighter trail, never
        a wider one) and the optional ``activationPrice`` (rounded toward the market so it arms no
        later than asked: down for a SELL, up for a BUY)."""
        rate = request.callback_rate
        if rate is None:
            raise OrderRejected("TRAILING_STOP_MARKET needs a callbackRate", code=-1102)
        rate = rate.quantize(CALLBACK_STEP, rounding=ROUND_DOWN)
        if not MIN_CALLBACK_RATE <= rate <= MAX_CALLBACK_RATE:
            raise OrderRejected(f"callbackRate {request.callback_rate} is outside "
                                f"{MIN_CALLBACK_RATE}-{MAX_CALLBACK_RATE} %", code=-2007)
        params: dict[str, ParamValue] = {"callbackRate": rate}
        if request.activation_price is not None:
            params["activationPrice"] = f.round_price(request.activation_price, up=not sell)
        return params

    def place_order(self, request: OrderRequest, *, price: Decimal | None = None,
                    time_in_force: str = "GTC", close_position: bool = False,
                    working_type: WorkingType = "MARK_PRICE", fetch_fills: bool = True) -> OrderResult:
        """Send one order (rounded by ``prepare_order``), once. A market order comes back with its
        fills when ``fetch_fills`` (none if the trade query failed: an executed order is never
        reported as failed; its trades then come through ``fills_since``). Raises
        ``OrderRejected`` (and subclasses), ``RateLimited``, ``ExchangeUnavailable`` (nothing
        was sent) or ``UnknownOrderStatus`` (it may exist: query it, or use
        ``place_order_safely``)."""
        params = self.prepare_order(request, price=price, time_in_force=time_in_force,
                                    close_position=close_position, working_type=working_type)
        result = self._remember(parse_order(self._signed("POST", "/fapi/v1/order", params, order=True)))
        return self._with_fills(result) if fetch_fills else result

    def _with_fills(self, order: OrderResult) -> OrderResult:
        """The order with its fills; when the trade query fails the order is still returned (it
        exists!) with no fills, and its trades surface later through ``fills_since``."""
        try:
            return replace(order, fills=self.order_fills(order))
        except ExchangeError as exc:
            log.warning("order %s executed %s but its trades could not be read yet: %s",
                        order.client_order_id, order.executed_qty, exc)
            return order

    def place_order_safely(self, request: OrderRequest, *, resolve_attempts: int = 3,
                           resolve_delay_s: float = 0.5, resend_if_absent: bool = False,
                           **order_options: Any) -> OrderResult:
        """``place_order`` that makes sure the order exists once, and says so, instead of guessing.

        On ``UnknownOrderStatus`` the client order id is queried (up to ``resolve_attempts`` more
        times, ``resolve_delay_s`` apart, doubling). Found: the venue's state is returned (with
        fills). Absent on two queries in a row: the order never arrived; it is sent once more under
        the same id only when the caller opts in with ``resend_if_absent`` (off by default: the
        venue refuses a duplicate client id only among *open* orders, so a market order that
        surfaces late could execute twice; the desk's engine never opts in and lets
        reconciliation decide). A -4116 duplicate (the venue already has this
        id, e.g. after a restart or because the first send surfaced) returns the venue's order.
        Still unresolved: ``UnknownOrderStatus``; reconcile before trading the symbol again.
        """
        for attempt in (1, 2):
            try:
                return self.place_order(request, **order_options)
            except DuplicateClientOrderId:
                found = self._resolve(request, resolve_attempts, resolve_delay_s)
                if found is None:
                    raise
                return found
            except UnknownOrderStatus as exc:
                log.warning("order %s: outcome unknown, querying the venue", request.client_order_id)
                if attempt == 2:
                    raise
                found = self._resolve(request, resolve_attempts, resolve_delay_s)
                if found is not None:
                    return found
                if not resend_if_absent:
                    raise UnknownOrderStatus(f"{exc}; the venue does not know it (not resent)") from None
        raise AssertionError("unreachable")

    def _resolve(self, request: OrderRequest, attempts: int, delay_s: float) -> OrderResult | None:
        absent = 0
        wait = delay_s
        for attempt in range(attempts + 1):
            if attempt:
                self._sleep(wait)
                wait *= 2
            try:
                found = self.get_order(request.symbol, request.client_order_id)
            except ExchangeError as exc:
                if isinstance(exc, ExchangeRequestError):
                    raise
                absent = 0
                continue
            if found is not None:
                return self._with_fills(found)
            absent += 1
            if absent >= 2:
                return None
        raise UnknownOrderStatus(
            f"order {request.client_order_id} on {request.symbol}: status still unknown after "
            f"{attempts + 1} queries; reconcile before trading this symbol"
        )

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """Cancel by client id. None if the venue never knew the order; the final state if it had
        already finished (a cancel that raced a fill returns FILLED)."""
        try:
            data = self._signed("DELETE", "/fapi/v1/order",
                                {"symbol": symbol.upper(), "origClientOrderId": client_order_id})
        except ExchangeRequestError as exc:
            if exc.code not in (NO_SUCH_ORDER, CANCEL_REJECTED):
                raise
            return self.get_order(symbol, client_order_id)
        return self._remember(parse_order(data))

    def cancel_all(self, symbol: str) -> int:
        """Cancel every open order on ``symbol``; returns how many were open just before."""
        count = len(self.open_orders(symbol))
        if count:
            self._signed("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol.upper()})
        return count

    def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> int:
        """Dead-man switch: the venue cancels ``symbol``'s open orders unless this is called again
        within ``countdown_ms`` (0 switches it off). Returns the countdown the venue set."""
        data = self._signed("POST", "/fapi/v1/countdownCancelAll",
                            {"symbol": symbol.upper(), "countdownTime": int(countdown_ms)})
        return int(data.get("countdownTime", countdown_ms))


    def _remember(self, order: OrderResult) -> OrderResult:
        if order.exchange_order_id and order.client_order_id:
            with self._lock:
                self._order_ids[order.exchange_order_id] = order.client_order_id
                while len(self._order_ids) > 10_000:
                    self._order_ids.popitem(last=False)
        return order

