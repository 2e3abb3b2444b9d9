"""The fake venue's endpoints: path, security type, request weight and what each one does.

Weights follow the reference digest (§8). Every route is served under any ``/fapi/vN/`` prefix, so
the V1 paths (``/fapi/v1``, ``/fapi/v2``, ``/fapi/v4``) and the V3 ones (``/fapi/v3``) reach the
same handler; the prefix only decides which authentication is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fake_venue.book import VenueError, s

if TYPE_CHECKING:
    from tests.fake_venue.server import FakeVenue

PUBLIC, API_KEY, SIGNED = "NONE", "API_KEY", "SIGNED"
Handler = Callable[["FakeVenue", dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    security: str
    handler: Handler
    base_weight: int = 1
    weight_all: int | None = None  # weight without a symbol
    order: bool = False
    kline_weight: bool = False

    def weight(self, params: dict[str, str]) -> int:
        if self.kline_weight:
            limit = int(params.get("limit", 500))
            return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
        if self.weight_all is not None and "symbol" not in params:
            return self.weight_all
        return self.base_weight


def _symbol(v: FakeVenue, q: dict[str, str]) -> str:
    sym = q.get("symbol", "")
    if not sym:
        raise VenueError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    v.book.rules(sym)
    return sym


def _symbols(v: FakeVenue, q: dict[str, str]) -> list[str]:
    return [_symbol(v, q)] if "symbol" in q else sorted(v.book.filters)


def exchange_info(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    symbols = []
    for sym, f in sorted(v.book.filters.items()):
        symbols.append({
            "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "status": "TRADING",
            "baseAsset": sym[:-4], "quoteAsset": "USDT", "marginAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": s(f.tick_size), "maxPrice": "1000000",
                 "tickSize": s(f.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": s(f.min_qty), "maxQty": s(f.max_qty),
                 "stepSize": s(f.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": s(f.min_qty), "maxQty": s(f.max_qty),
                 "stepSize": s(f.step_size)},
                {"filterType": "MIN_NOTIONAL", "notional": s(f.min_notional)},
            ],
            "OrderType": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "HIDDEN"],
        })
    return {
        "timezone": "UTC", "serverTime": v.now_ms(), "exchangeFilters": [],
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": v.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": 0}],
        "symbols": symbols,
    }


def klines(v: FakeVenue, q: dict[str, str]) -> list[list[Any]]:
    sym = _symbol(v, q)
    try:
        return v.market.klines(sym, q.get("interval", ""), _int(q, "startTime"), _int(q, "endTime"),
                               min(int(q.get("limit", 500)), 1500))
    except KeyError:
        raise VenueError(-1120, "Invalid interval.") from None


def _int(q: dict[str, str], name: str) -> int | None:
    return int(q[name]) if name in q else None


def _one_or_all(v: FakeVenue, q: dict[str, str], make: Callable[[str], dict[str, Any]]) -> Any:
    rows = [make(sym) for sym in _symbols(v, q)]
    return rows[0] if "symbol" in q else rows


def ticker_price(v: FakeVenue, q: dict[str, str]) -> Any:
    return _one_or_all(v, q, lambda sym: {"symbol": sym, "price": s(v.book.mark(sym)),
                                          "time": v.now_ms()})


def ticker_24h(v: FakeVenue, q: dict[str, str]) -> Any:
    return _one_or_all(v, q, lambda sym: v.market.ticker_24h(sym, v.book.mark(sym)))


def premium_index(v: FakeVenue, q: dict[str, str]) -> Any:
    return _one_or_all(v, q, lambda sym: {
        "symbol": sym, "markPrice": s(v.book.mark(sym)), "indexPrice": s(v.book.mark(sym)),
        "estimatedSettlePrice": s(v.book.mark(sym)), "lastFundingRate": str(v.market.funding_rate),
        "nextFundingTime": v.market.next_funding_ms(), "interestRate": "0.0001", "time": v.now_ms()})


def funding_rate(v: FakeVenue, q: dict[str, str]) -> list[dict[str, Any]]:
    return v.market.funding_history(_symbol(v, q), _int(q, "startTime"), _int(q, "endTime"),
                                    min(int(q.get("limit", 100)), 1000))


def place(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    return v.book.place(q, v.now_ms()).to_json()


def query_order(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    _symbol(v, q)
    return v.book.find(q).to_json()


def cancel_order(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    _symbol(v, q)
    return v.book.cancel(v.book.find(q), v.now_ms()).to_json()


def cancel_all(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    sym = _symbol(v, q)
    for o in v.book.open_orders(sym):
        v.book.cancel(o, v.now_ms())
    return {"code": "200", "msg": "The operation of cancel all open order is done."}


def open_orders(v: FakeVenue, q: dict[str, str]) -> list[dict[str, Any]]:
    sym = _symbol(v, q) if "symbol" in q else None
    return [o.to_json() for o in v.book.open_orders(sym)]


def countdown(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    sym = _symbol(v, q)
    ms = int(q.get("countdownTime", "0"))
    if ms:
        v.countdowns[sym] = v.now_ms() + ms
    else:
        v.countdowns.pop(sym, None)
    return {"symbol": sym, "countdownTime": str(ms)}


def leverage(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    sym = _symbol(v, q)
    lev = int(q.get("leverage", "0"))
    if not 1 <= lev <= v.book.filters[sym].max_leverage:
        raise VenueError(-4028, f"Leverage {lev} is not valid")
    v.book.leverage[sym] = lev
    return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": sym}


def margin_type(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    sym = _symbol(v, q)
    kind = q.get("marginType", "")
    if kind not in ("ISOLATED", "CROSSED"):
        raise VenueError(-1102, "Parameter 'marginType' malformed.")
    new = "isolated" if kind == "ISOLATED" else "cross"
    if v.book.margin_type.get(sym, "cross") == new:
        raise VenueError(-4046, "No need to change margin type.")
    if v.book.pos(sym).amount != 0:
        raise VenueError(-4048, "Margin type cannot be changed if there exists position.")
    v.book.margin_type[sym] = new
    return {"code": 200, "msg": "success"}


def get_dual(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    return {"dualSidePosition": v.book.dual_side}


def set_dual(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    want = q.get("dualSidePosition", "").lower() == "true"
    if want == v.book.dual_side:
        raise VenueError(-4059, "No need to change position side.")
    if any(p.amount for p in v.book.positions.values()):
        raise VenueError(-4068, "Position side cannot be changed if there exists position.")
    v.book.dual_side = want
    return {"code": 200, "msg": "success"}


def user_trades(v: FakeVenue, q: dict[str, str]) -> list[dict[str, Any]]:
    sym = _symbol(v, q)
    # The documented parameters only (symbol, startTime, endTime, fromId, limit): like the real
    # venue, anything else (an ``orderId``, say) is ignored, not applied.
    rows = [t for t in v.book.trades if t["symbol"] == sym]
    if "fromId" in q:
        rows = [t for t in rows if t["id"] >= int(q["fromId"])]
    if "startTime" in q:
        rows = [t for t in rows if t["time"] >= int(q["startTime"])]
    if "endTime" in q:
        rows = [t for t in rows if t["time"] <= int(q["endTime"])]
    return rows[: min(int(q.get("limit", 500)), 1000)]


def income(v: FakeVenue, q: dict[str, str]) -> list[dict[str, Any]]:
    rows = list(v.book.income)
    for key, field in (("symbol", "symbol"), ("incomeType", "incomeType")):
        if key in q:
            rows = [r for r in rows if r[field] == q[key]]
    if "startTime" in q:
        rows = [r for r in rows if r["time"] >= int(q["startTime"])]
    if "endTime" in q:
        rows = [r for r in rows if r["time"] <= int(q["endTime"])]
    return rows[: min(int(q.get("limit", 100)), 1000)]


def brackets(v: FakeVenue, q: dict[str, str]) -> Any:
    def one(sym: str) -> dict[str, Any]:
        f = v.book.filters[sym]
        return {"symbol": sym, "brackets": [{"bracket": 1, "initialLeverage": f.max_leverage,
                                             "notionalCap": 50000, "notionalFloor": 0,
                                             "maintMarginRatio": float(f.maint_margin_rate), "cum": 0}]}
    return _one_or_all(v, q, one)


def listen_key_new(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    """POST: the account's active key with 60 more minutes, or a new one (V3 doc 4744-4746)."""
    return {"listenKey": v.listen_key_start()}


def listen_key_keep(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    """PUT: 60 more minutes for the active key; -1125 when there is none (it expired)."""
    if not v.listen_key_extend():
        raise VenueError(-1125, "This listenKey does not exist.")
    return {}


def listen_key_close(v: FakeVenue, q: dict[str, str]) -> dict[str, Any]:
    v.listen_key_drop()
    return {}


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "ping"): Route(PUBLIC, lambda v, q: {}),
    ("GET", "time"): Route(PUBLIC, lambda v, q: {"serverTime": v.now_ms()}),
    ("GET", "exchangeInfo"): Route(PUBLIC, exchange_info),
    ("GET", "klines"): Route(PUBLIC, klines, kline_weight=True),
    ("GET", "ticker/price"): Route(PUBLIC, ticker_price, 1, 2),
    ("GET", "ticker/24hr"): Route(PUBLIC, ticker_24h, 1, 40),
    ("GET", "premiumIndex"): Route(PUBLIC, premium_index),
    ("GET", "fundingRate"): Route(PUBLIC, funding_rate),
    ("GET", "account"): Route(SIGNED, lambda v, q: v.book.account_json(), 5),
    ("GET", "accountWithJoinMargin"): Route(SIGNED, lambda v, q: v.book.account_json(), 5),
    ("GET", "balance"): Route(SIGNED, lambda v, q: v.book.balance_json(), 5),
    ("GET", "positionRisk"): Route(SIGNED, lambda v, q: [v.book.position_json(x) for x in _symbols(v, q)], 5),
    ("GET", "openOrders"): Route(SIGNED, open_orders, 1, 40),
    ("GET", "order"): Route(SIGNED, query_order),
    ("POST", "order"): Route(SIGNED, place, order=True),
    ("DELETE", "order"): Route(SIGNED, cancel_order),
    ("DELETE", "allOpenOrders"): Route(SIGNED, cancel_all),
    ("POST", "countdownCancelAll"): Route(SIGNED, countdown, 10),
    ("POST", "leverage"): Route(SIGNED, leverage),
    ("POST", "marginType"): Route(SIGNED, margin_type),
    ("GET", "positionSide/dual"): Route(SIGNED, get_dual, 30),
    ("POST", "positionSide/dual"): Route(SIGNED, set_dual),
    ("GET", "userTrades"): Route(SIGNED, user_trades, 5),
    ("GET", "income"): Route(SIGNED, income, 30),
    ("GET", "leverageBracket"): Route(SIGNED, brackets),
    ("POST", "listenKey"): Route(API_KEY, listen_key_new),
    ("PUT", "listenKey"): Route(API_KEY, listen_key_keep),
    ("DELETE", "listenKey"): Route(API_KEY, listen_key_close),
}

# What the documents removed or never had, per path prefix: the venue answers 404 there.
# ``/fapi/v3/account`` was renamed ``/fapi/v3/accountWithJoinMargin``; that name is V3's only.
REMOVED: frozenset[tuple[str, str, str]] = frozenset({
    ("v3", "GET", "account"),
    ("v1", "GET", "accountWithJoinMargin"), ("v2", "GET", "accountWithJoinMargin"),
    ("v4", "GET", "accountWithJoinMargin"),
})

__all__ = ["API_KEY", "PUBLIC", "REMOVED", "ROUTES", "SIGNED", "Route"]
