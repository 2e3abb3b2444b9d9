"""The fake venue's account and matching engine: what a Binance-style perps venue does with orders.

Why: the live client and the live execution path must be tested against a venue that behaves like
the real one (fills with fees, one-way netting, isolated margin, reduce-only, resting stops that
trigger when the price moves, the real error codes), not against canned replies. One account,
one-way mode semantics (``positionSide`` BOTH), prices set by the test (``set_mark``).

Not modelled: order book depth and slippage (market orders fill at the mark price), liquidation,
cross-margin sharing, hedge mode trading (the mode flag is stored and reported only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from core.models import SymbolFilters

ZERO = Decimal(0)
STOPS = ("STOP_MARKET", "STOP")
TPS = ("TAKE_PROFIT_MARKET", "TAKE_PROFIT")
TRAILING = "TRAILING_STOP_MARKET"
ORDER_TYPES = ("MARKET", "LIMIT", *STOPS, *TPS, TRAILING)
CALLBACK_STEP = Decimal("0.1")  # callbackRate is in percent, 0.1 .. 5
CLIENT_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


class VenueError(Exception):
    """A refusal the venue answers with ``{"code", "msg"}`` and an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def s(d: Decimal) -> str:
    return format(d.normalize(), "f") if d != 0 else "0"


@dataclass
class VOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    working_type: str
    time_in_force: str
    time_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_ms: int = 0
    # TRAILING_STOP_MARKET: callbackRate (percent), activationPrice (0: armed when placed) and the
    # best price since placement once armed (0: not armed yet)
    callback_rate: Decimal = ZERO
    activation: Decimal = ZERO
    extreme: Decimal = ZERO

    def trail_trigger(self) -> Decimal:
        """Where an armed trailing order fires: best × (1 ∓ rate %)."""
        sign = -1 if self.side == "SELL" else 1
        return self.extreme * (1 + sign * self.callback_rate / 100)

    def to_json(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed if self.executed else ZERO
        return {
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status,
            "clientOrderId": self.client_id, "price": s(self.price), "avgPrice": s(avg),
            "origQty": s(self.qty), "executedQty": s(self.executed), "cumQty": s(self.executed),
            "cumQuote": s(self.cum_quote), "timeInForce": self.time_in_force, "type": self.type,
            "origType": self.type, "reduceOnly": self.reduce_only,
            "closePosition": self.close_position, "side": self.side, "positionSide": "BOTH",
            "stopPrice": s(self.stop_price), "workingType": self.working_type,
            "priceProtect": False, "time": self.time_ms, "updateTime": self.update_ms or self.time_ms,
            **({"activatePrice": s(self.activation or self.extreme),
                "priceRate": s(self.callback_rate)} if self.type == TRAILING else {}),
        }


@dataclass
class VPosition:
    amount: Decimal = ZERO  # signed
    entry: Decimal = ZERO
    margin: Decimal = ZERO  # isolated margin


@dataclass
class Book:
    """All state of the one fake account. Callers hold the venue lock."""

    filters: dict[str, SymbolFilters]
    wallet: Decimal = Decimal(10_000)
    taker_fee: Decimal = Decimal("0.0004")
    maker_fee: Decimal = Decimal("0.0002")
    marks: dict[str, Decimal] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    dual_side: bool = False
    positions: dict[str, VPosition] = field(default_factory=dict)
    orders: dict[int, VOrder] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    income: list[dict[str, Any]] = field(default_factory=list)
    fill_parts: int = 1  # market orders fill in this many trades
    fill_ratio: Decimal = Decimal(1)  # share of a market order that finds liquidity; rest expires
    rejected_orders: int = 0
    outbox: list[dict[str, Any]] = field(default_factory=list)  # user-data-stream events
    _next_id: int = 1000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def rules(self, symbol: str) -> SymbolFilters:
        if symbol not in self.filters:
            raise VenueError(-1121, "Invalid symbol.")
        return self.filters[symbol]

    def mark(self, symbol: str) -> Decimal:
        if symbol not in self.marks:
            raise VenueError(-1121, f"No price for {symbol}.")
        return self.marks[symbol]

    def lev(self, symbol: str) -> int:
        return self.leverage.get(symbol, 20)

    def pos(self, symbol: str) -> VPosition:
        return self.positions.setdefault(symbol, VPosition())

    def available(self) -> Decimal:
        return self.wallet - sum((p.margin for p in self.positions.values()), ZERO)

    def unrealized(self, symbol: str) -> Decimal:
        p = self.pos(symbol)
        return (self.marks.get(symbol, p.entry) - p.entry) * p.amount if p.amount else ZERO

    # ------------------------------------------------------------------ orders
    def by_client(self, symbol: str, client_id: str) -> VOrder | None:
        for o in self.orders.values():
            if o.client_id == client_id and o.symbol == symbol:
                return o
        return None

    def find(self, q: dict[str, str]) -> VOrder:
        symbol = q.get("symbol", "")
        if "orderId" in q:
            o = self.orders.get(int(q["orderId"]))
            o = o if o and o.symbol == symbol else None
        elif "origClientOrderId" in q:
            o = self.by_client(symbol, q["origClientOrderId"])
        else:
            raise VenueError(-1102, "Param 'orderId' or 'origClientOrderId' must be sent.")
        if o is None:
            raise VenueError(-2013, "Order does not exist.")
        return o

    def place(self, q: dict[str, str], now_ms: int) -> VOrder:
        symbol = q.get("symbol", "")
        f = self.rules(symbol)
        side, kind = q.get("side", ""), q.get("type", "")
        if side not in ("BUY", "SELL"):
            raise VenueError(-1117, "Invalid side.")
        if kind not in ORDER_TYPES:
            raise VenueError(-1116, "Invalid orderType.")
        if q.get("positionSide", "BOTH") != "BOTH" and not self.dual_side:
            raise VenueError(-4061, "Order's position side does not match user's setting.")
        client_id = q.get("newClientOrderId") or f"auto-{self._next_id + 1}"
        if len(client_id) > 36 or not set(client_id) <= CLIENT_ID_CHARS:
            raise VenueError(-4015, "Client order id is not valid.")
        if any(o.client_id == client_id for o in self.orders.values()):
            raise VenueError(-4116, "ClientOrderId is duplicated.")
        close_pos = q.get("closePosition", "false").lower() == "true"
        reduce_only = q.get("reduceOnly", "false").lower() == "true"
        if close_pos and "quantity" in q:
            raise VenueError(-4137, "Quantity must be zero with closePosition equals true.")
        if close_pos and kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise VenueError(-4138, "closePosition is only for STOP_MARKET / TAKE_PROFIT_MARKET.")
        qty = ZERO if close_pos else self._decimal(q, "quantity", f.step_size, -1111)
        if not close_pos:
            if qty <= 0:
                raise VenueError(-4003, "Quantity less than or equal to zero.")
            if qty < f.min_qty:
                raise VenueError(-4004, "Quantity less than min quantity.")
            if qty > f.max_qty:
                raise VenueError(-4005, "Quantity greater than max quantity.")
        price = self._decimal(q, "price", f.tick_size, -1111) if kind in ("LIMIT", "STOP", "TAKE_PROFIT") else ZERO
        stop = self._decimal(q, "stopPrice", f.tick_size, -1111) if kind in STOPS + TPS else ZERO
        mark = self.mark(symbol)
        if kind in STOPS + TPS and _triggered(kind, side, stop, mark):
            raise VenueError(-2021, "Order would immediately trigger.")
        rate, activation = (self._trailing(q, f, side, mark) if kind == TRAILING
                            else (ZERO, ZERO))
        ref = price if kind == "LIMIT" else mark
        if not (reduce_only or close_pos) and qty * ref < f.min_notional:
            raise VenueError(-4164, f"Order's notional must be no smaller than {s(f.min_notional)}")
        if reduce_only and kind in ("MARKET", "LIMIT"):
            self._reduce_qty(symbol, side, qty)  # raises -2022 when it cannot reduce
        order = VOrder(self._id(), client_id, symbol, side, kind, qty, price, stop, reduce_only,
                       close_pos, q.get("workingType", "CONTRACT_PRICE"), q.get("timeInForce", "GTC"),
                       now_ms, callback_rate=rate, activation=activation,
                       extreme=mark if kind == TRAILING and activation == 0 else ZERO)
        if kind == "MARKET" or (kind == "LIMIT" and _limit_crosses(side, price, mark)):
            self._margin_check(symbol, side, qty, mark, reduce_only)
            self.orders[order.order_id] = order
            self._execute(order, mark, now_ms, taker=True)
        else:
            self.orders[order.order_id] = order
            self._order_event(order, "NEW", now_ms)
        return order

    def _trailing(self, q: dict[str, str], f: SymbolFilters, side: str,
                  mark: Decimal) -> tuple[Decimal, Decimal]:
        """callbackRate (mandatory, 0.1-5, one decimal) and activationPrice (optional: beyond
        the last price on the profit side, else -2021), as the docs' New Order section says."""
        rate = self._decimal(q, "callbackRate", CALLBACK_STEP, -1102)
        if not Decimal("0.1") <= rate <= Decimal("5"):
            raise VenueError(-2007, "Invalid callBack rate.")
        if "activationPrice" not in q:
            return rate, ZERO
        activation = self._decimal(q, "activationPrice", f.tick_size, -1111)
        if (activation <= mark) if side == "SELL" else (activation >= mark):
            raise VenueError(-2021, "Order would immediately trigger.")
        return rate, activation

    def _decimal(self, q: dict[str, str], name: str, step: Decimal, code: int) -> Decimal:
        if name not in q:
            raise VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        try:
            value = Decimal(q[name])
        except ArithmeticError:
            raise VenueError(-1102, f"Parameter '{name}' malformed.") from None
        if value % step != 0:
            raise VenueError(code, f"Precision is over the maximum defined for this asset ({name}).")
        return value

    def _reduce_qty(self, symbol: str, side: str, qty: Decimal) -> Decimal:
        amount = self.pos(symbol).amount
        if amount == 0 or (amount > 0) == (side == "BUY"):
            raise VenueError(-2022, "ReduceOnly Order is rejected.")
        return min(qty, abs(amount))

    def _margin_check(self, symbol: str, side: str, qty: Decimal, price: Decimal, reduce: bool) -> None:
        amount = self.pos(symbol).amount
        signed = qty if side == "BUY" else -qty
        opening = max(ZERO, abs(amount + signed) - abs(amount)) if not reduce else ZERO
        need = opening * price / self.lev(symbol) + qty * price * self.taker_fee
        if opening > 0 and need > self.available():
            raise VenueError(-2019, "Margin is insufficient.")

    def cancel(self, order: VOrder, now_ms: int) -> VOrder:
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise VenueError(-2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", now_ms
        self._order_event(order, "CANCELED", now_ms)
        return order

    def open_orders(self, symbol: str | None) -> list[VOrder]:
        return [o for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o.symbol == symbol)]

    # ------------------------------------------------------------------ execution
    def _execute(self, order: VOrder, price: Decimal, now_ms: int, *, taker: bool) -> None:
        f = self.filters[order.symbol]
        qty = order.qty
        if order.close_position:
            qty = abs(self.pos(order.symbol).amount)
        if order.reduce_only or order.close_position:
            try:
                qty = self._reduce_qty(order.symbol, order.side, qty)
            except VenueError:
                order.status, order.update_ms = "EXPIRED", now_ms
                self._order_event(order, "EXPIRED", now_ms)
                return
        target = qty
        if order.type == "MARKET" and self.fill_ratio < 1:
            qty = (qty * self.fill_ratio / f.step_size).to_integral_value(ROUND_DOWN) * f.step_size
        parts = max(1, min(self.fill_parts, int(qty / f.step_size))) if order.type == "MARKET" else 1
        base = (qty / parts / f.step_size).to_integral_value(ROUND_DOWN) * f.step_size
        chunks = [base] * (parts - 1) + [qty - base * (parts - 1)]
        done = []
        for chunk in chunks:
            if chunk > 0:
                done.append(self._trade(order, chunk, price, now_ms, taker=taker))
        order.update_ms = now_ms
        if order.executed == 0:
            order.status = "EXPIRED"
        elif order.executed >= target:
            order.status = "FILLED"
        else:  # a market order's unfilled rest does not rest on the book
            order.status = "EXPIRED" if order.type == "MARKET" else "PARTIALLY_FILLED"
        for i, trade in enumerate(done):
            last = i == len(done) - 1
            self._order_event(order, "TRADE", now_ms, trade,
                              status=order.status if last else "PARTIALLY_FILLED")
        if order.executed == 0:
            self._order_event(order, "EXPIRED", now_ms)
        elif done:
            self._account_event(order.symbol, now_ms)

    def _trade(self, order: VOrder, qty: Decimal, price: Decimal, now_ms: int, *,
               taker: bool) -> dict[str, Any]:
        p = self.pos(order.symbol)
        signed = qty if order.side == "BUY" else -qty
        realized = ZERO
        if p.amount == 0 or (p.amount > 0) == (signed > 0):
            new = p.amount + signed
            p.entry = (p.entry * abs(p.amount) + price * qty) / abs(new)
            p.margin += qty * price / self.lev(order.symbol)
            p.amount = new
        else:
            closed = min(qty, abs(p.amount))
            realized = (price - p.entry) * closed * (1 if p.amount > 0 else -1)
            released = p.margin * closed / abs(p.amount)
            p.margin -= released
            p.amount += closed if p.amount < 0 else -closed
            self.wallet += realized
            rest = qty - closed
            if p.amount == 0:
                p.entry, p.margin = ZERO, ZERO
            if rest > 0:
                p.amount = rest if signed > 0 else -rest
                p.entry = price
                p.margin = rest * price / self.lev(order.symbol)
        fee = (qty * price * (self.taker_fee if taker else self.maker_fee)).quantize(Decimal("0.00000001"))
        self.wallet -= fee
        trade_id = self._id()
        order.executed += qty
        order.cum_quote += qty * price
        trade = {
            "id": trade_id, "orderId": order.order_id, "symbol": order.symbol, "side": order.side,
            "positionSide": "BOTH", "price": s(price), "qty": s(qty), "quoteQty": s(qty * price),
            "realizedPnl": s(realized), "commission": s(fee), "commissionAsset": "USDT",
            "buyer": order.side == "BUY", "maker": not taker, "time": now_ms,
        }
        self.trades.append(trade)
        if realized:
            self._income(order.symbol, "REALIZED_PNL", realized, now_ms, str(trade_id))
        self._income(order.symbol, "COMMISSION", -fee, now_ms, str(trade_id))
        return trade

    def _order_event(self, order: VOrder, execution: str, now_ms: int,
                     trade: dict[str, Any] | None = None, status: str | None = None) -> None:
        """``ORDER_TRADE_UPDATE`` as the user data stream sends it (reference §10)."""
        avg = order.cum_quote / order.executed if order.executed else ZERO
        o = {
            "s": order.symbol, "c": order.client_id, "S": order.side, "o": order.type,
            "f": order.time_in_force, "q": s(order.qty), "p": s(order.price), "ap": s(avg),
            "sp": s(order.stop_price), "x": execution, "X": status or order.status,
            "i": order.order_id, "l": "0", "z": s(order.executed), "L": "0", "T": now_ms,
            "t": 0, "b": "0", "a": "0", "m": False, "R": order.reduce_only,
            "wt": order.working_type, "ot": order.type, "ps": "BOTH", "cp": order.close_position,
            "rp": "0",
        }
        if trade is not None:
            o.update({"l": trade["qty"], "L": trade["price"], "N": "USDT", "n": trade["commission"],
                      "t": trade["id"], "m": trade["maker"], "rp": trade["realizedPnl"]})
        self.outbox.append({"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": o})

    def _account_event(self, symbol: str, now_ms: int) -> None:
        p = self.pos(symbol)
        self.outbox.append({"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": s(self.wallet), "cw": s(self.wallet), "bc": "0"}],
            "P": [{"s": symbol, "pa": s(p.amount), "ep": s(p.entry), "cr": "0",
                   "up": s(self.unrealized(symbol)), "mt": "isolated", "iw": s(p.margin), "ps": "BOTH"}],
        }})

    def _income(self, symbol: str, kind: str, amount: Decimal, now_ms: int, trade_id: str = "") -> None:
        self.income.append({"symbol": symbol, "incomeType": kind, "income": s(amount), "asset": "USDT",
                            "info": kind, "time": now_ms, "tranId": str(self._id()), "tradeId": trade_id})

    def set_mark(self, symbol: str, price: Decimal, now_ms: int) -> list[VOrder]:
        """Move the price and trigger resting orders; returns the orders that triggered."""
        self.marks[symbol] = price
        fired = []
        for o in sorted(self.open_orders(symbol), key=lambda o: o.order_id):
            if o.type == "LIMIT" and _limit_crosses(o.side, o.price, price):
                self._execute(o, o.price, now_ms, taker=False)
                fired.append(o)
            elif ((o.type in STOPS + TPS and _triggered(o.type, o.side, o.stop_price, price))
                  or (o.type == TRAILING and _trail(o, price))):
                self._execute(o, price, now_ms, taker=True)
                fired.append(o)
        return fired

    def pay_funding(self, symbol: str, rate: Decimal, now_ms: int) -> Decimal:
        p = self.pos(symbol)
        amount = -(p.amount * self.mark(symbol) * rate)
        if p.amount:
            self.wallet += amount
            self._income(symbol, "FUNDING_FEE", amount, now_ms)
        return amount

    # ------------------------------------------------------------------ views
    def position_json(self, symbol: str) -> dict[str, Any]:
        p = self.pos(symbol)
        lev = self.lev(symbol)
        mmr = self.filters[symbol].maint_margin_rate
        liq = ZERO
        if p.amount > 0:
            liq = p.entry * (1 - Decimal(1) / lev + mmr)
        elif p.amount < 0:
            liq = p.entry * (1 + Decimal(1) / lev - mmr)
        return {
            "symbol": symbol, "positionAmt": s(p.amount), "entryPrice": s(p.entry),
            "markPrice": s(self.marks.get(symbol, ZERO)), "unRealizedProfit": s(self.unrealized(symbol)),
            "liquidationPrice": s(liq.quantize(self.filters[symbol].tick_size)), "leverage": str(lev),
            "maxNotionalValue": "1000000", "marginType": self.margin_type.get(symbol, "cross").lower(),
            "isolatedMargin": s(p.margin), "isAutoAddMargin": "false", "positionSide": "BOTH",
            "updateTime": 0,
        }

    def account_json(self) -> dict[str, Any]:
        unreal = sum((self.unrealized(sym) for sym in self.positions), ZERO)
        avail = self.available()
        return {
            "feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
            "totalWalletBalance": s(self.wallet), "totalUnrealizedProfit": s(unreal),
            "totalMarginBalance": s(self.wallet + unreal), "availableBalance": s(avail),
            "maxWithdrawAmount": s(avail),
            "assets": [{"asset": "USDT", "walletBalance": s(self.wallet), "unrealizedProfit": s(unreal),
                        "marginBalance": s(self.wallet + unreal), "availableBalance": s(avail),
                        "crossUnPnl": "0", "maxWithdrawAmount": s(avail), "marginAvailable": True}],
            "positions": [self.position_json(sym) for sym in sorted(self.filters)],
        }

    def balance_json(self) -> list[dict[str, Any]]:
        return [{"accountAlias": "fake", "asset": "USDT", "balance": s(self.wallet),
                 "crossWalletBalance": s(self.wallet), "crossUnPnl": "0",
                 "availableBalance": s(self.available()), "maxWithdrawAmount": s(self.available()),
                 "marginAvailable": True, "updateTime": 0}]


def _triggered(kind: str, side: str, stop: Decimal, price: Decimal) -> bool:
    if kind in STOPS:
        return price >= stop if side == "BUY" else price <= stop
    return price <= stop if side == "BUY" else price >= stop


def _trail(order: VOrder, price: Decimal) -> bool:
    """Move a trailing order's best price with ``price`` and say whether it fires: a SELL arms
    once the highest price since placement reaches the activation price and fires when the price
    is at or below highest × (1 − rate); a BUY mirrors it on the lowest price."""
    sell = order.side == "SELL"
    if order.extreme == 0:
        if order.activation and ((price >= order.activation) if sell
                                 else (price <= order.activation)):
            order.extreme = price
        return False
    if (price > order.extreme) if sell else (price < order.extreme):
        order.extreme = price
    trigger = order.trail_trigger()
    return price <= trigger if sell else price >= trigger


def _limit_crosses(side: str, limit: Decimal, price: Decimal) -> bool:
    return price <= limit if side == "BUY" else price >= limit
