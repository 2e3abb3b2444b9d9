"""Typed results of the AsterDex client and the parsers that build them from the venue's JSON.

Why: the venue answers with strings for numbers, optional keys and Binance-isms; the desk wants
``Decimal`` at the boundary and the domain types of ``core.models`` (``OrderResult``, ``Fill``,
``ExchangePosition``, ``AccountBalance``, ``SymbolFilters``). Everything venue-specific that has no
domain type yet lives here as a frozen dataclass. Parsers accept what the reference digest
documents (e.g. ``OrderType`` or ``orderTypes``) and never invent values: a field the venue did not
send is ``None`` or the documented default.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.exchanges.symbols import parse_exchange_info
from core.models import (
    AccountBalance,
    Bar,
    ExchangePosition,
    Fill,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    SymbolFilters,
)

ZERO = Decimal(0)


def dec(raw: Any, default: Decimal = ZERO) -> Decimal:
    """A venue number (usually a string) as Decimal; ``None``/empty gives ``default``."""
    if raw is None or raw == "":
        return default
    return Decimal(str(raw))


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    rate_limit_type: str  # REQUEST_WEIGHT, ORDERS, RAW_REQUESTS
    interval: str
    interval_num: int
    limit: int


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    server_time_ms: int
    filters: dict[str, SymbolFilters]
    rate_limits: tuple[RateLimitRule, ...]
    status: dict[str, str]  # symbol -> TRADING / SETTLING / ...

    def weight_limit(self) -> int | None:
        for r in self.rate_limits:
            if r.rate_limit_type == "REQUEST_WEIGHT" and r.interval == "MINUTE" and r.interval_num == 1:
                return r.limit
        return None


def parse_info(data: dict[str, Any]) -> ExchangeInfo:
    return ExchangeInfo(
        server_time_ms=int(data.get("serverTime", 0)),
        filters=parse_exchange_info(data),
        rate_limits=tuple(
            RateLimitRule(str(r.get("rateLimitType")), str(r.get("interval")),
                          int(r.get("intervalNum", 1)), int(r.get("limit", 0)))
            for r in data.get("rateLimits", [])
        ),
        status={str(s["symbol"]).upper(): str(s.get("status", "")) for s in data.get("symbols", [])},
    )


@dataclass(frozen=True, slots=True)
class PriceTick:
    symbol: str
    price: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class Ticker24h:
    symbol: str
    last_price: Decimal
    price_change_pct: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    quote_volume: Decimal
    open_time_ms: int
    close_time_ms: int


@dataclass(frozen=True, slots=True)
class PremiumIndex:
    symbol: str
    mark_price: Decimal
    index_price: Decimal
    last_funding_rate: Decimal
    next_funding_time_ms: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class FundingRateRecord:
    symbol: str
    funding_rate: Decimal
    funding_time_ms: int


@dataclass(frozen=True, slots=True)
class Kline:
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time_ms: int

    def to_bar(self) -> Bar:
        return Bar(self.open_time_ms, float(self.open), float(self.high), float(self.low),
                   float(self.close), float(self.volume))


def parse_price(d: dict[str, Any]) -> PriceTick:
    return PriceTick(str(d["symbol"]), dec(d["price"]), int(d.get("time", 0)))


def parse_ticker(d: dict[str, Any]) -> Ticker24h:
    return Ticker24h(
        symbol=str(d["symbol"]), last_price=dec(d.get("lastPrice")),
        price_change_pct=dec(d.get("priceChangePercent")), high=dec(d.get("highPrice")),
        low=dec(d.get("lowPrice")), volume=dec(d.get("volume")),
        quote_volume=dec(d.get("quoteVolume")), open_time_ms=int(d.get("openTime", 0)),
        close_time_ms=int(d.get("closeTime", 0)),
    )


def parse_premium(d: dict[str, Any]) -> PremiumIndex:
    return PremiumIndex(
        symbol=str(d["symbol"]), mark_price=dec(d.get("markPrice")), index_price=dec(d.get("indexPrice")),
        last_funding_rate=dec(d.get("lastFundingRate")),
        next_funding_time_ms=int(d.get("nextFundingTime", 0)), time_ms=int(d.get("time", 0)),
    )


def parse_funding(d: dict[str, Any]) -> FundingRateRecord:
    return FundingRateRecord(str(d["symbol"]), dec(d["fundingRate"]), int(d["fundingTime"]))


def parse_kline(row: list[Any]) -> Kline:
    return Kline(int(row[0]), dec(row[1]), dec(row[2]), dec(row[3]), dec(row[4]), dec(row[5]),
                 int(row[6]))


# ------------------------------------------------------------------------------------ account


@dataclass(frozen=True, slots=True)
class AssetBalance:
    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
    cross_unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountInfo:
    can_trade: bool
    total_wallet_balance: Decimal
    total_unrealized_pnl: Decimal
    total_margin_balance: Decimal
    available_balance: Decimal
    assets: tuple[AssetBalance, ...]

    @property
    def summary(self) -> AccountBalance:
        return AccountBalance(self.total_wallet_balance, self.available_balance,
                              self.total_unrealized_pnl)


def parse_asset(d: dict[str, Any]) -> AssetBalance:
    return AssetBalance(
        asset=str(d["asset"]), wallet_balance=dec(d.get("walletBalance", d.get("balance"))),
        available_balance=dec(d.get("availableBalance")),
        cross_unrealized_pnl=dec(d.get("crossUnPnl", d.get("unrealizedProfit"))),
    )


def parse_account(d: dict[str, Any]) -> AccountInfo:
    return AccountInfo(
        can_trade=bool(d.get("canTrade", True)),
        total_wallet_balance=dec(d.get("totalWalletBalance")),
        total_unrealized_pnl=dec(d.get("totalUnrealizedProfit")),
        total_margin_balance=dec(d.get("totalMarginBalance")),
        available_balance=dec(d.get("availableBalance")),
        assets=tuple(parse_asset(a) for a in d.get("assets", [])),
    )


@dataclass(frozen=True, slots=True)
class PositionRisk:
    """One ``positionRisk`` row, including flat ones and the margin type / position side."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    liquidation_price: Decimal
    leverage: int
    margin_type: str  # isolated / cross
    isolated_margin: Decimal
    position_side: str  # BOTH in one-way mode

    def to_position(self) -> ExchangePosition:
        return ExchangePosition(
            symbol=self.symbol, amount=self.amount, entry_price=self.entry_price,
            leverage=self.leverage, isolated_margin=self.isolated_margin,
            liquidation_price=self.liquidation_price, mark_price=self.mark_price,
            unrealized_pnl=self.unrealized_pnl,
        )


def parse_position(d: dict[str, Any]) -> PositionRisk:
    return PositionRisk(
        symbol=str(d["symbol"]), amount=dec(d.get("positionAmt")), entry_price=dec(d.get("entryPrice")),
        mark_price=dec(d.get("markPrice")), unrealized_pnl=dec(d.get("unRealizedProfit")),
        liquidation_price=dec(d.get("liquidationPrice")), leverage=int(dec(d.get("leverage"), Decimal(1))),
        margin_type=str(d.get("marginType", "")).lower(), isolated_margin=dec(d.get("isolatedMargin")),
        position_side=str(d.get("positionSide", "BOTH")),
    )


# ------------------------------------------------------------------------------------ orders


def parse_order(d: dict[str, Any]) -> OrderResult:
    """An order object (place / query / cancel / openOrders) as ``OrderResult`` (no fills)."""
    stop = dec(d.get("stopPrice"))
    kind = str(d.get("origType") or d.get("type"))
    return OrderResult(
        client_order_id=str(d.get("clientOrderId", "")),
        exchange_order_id=str(d.get("orderId", "")),
        symbol=str(d["symbol"]),
        side=OrderSide(str(d["side"])),
        type=OrderType(kind),
        status=OrderStatus(str(d["status"])),
        quantity=dec(d.get("origQty")),
        executed_qty=dec(d.get("executedQty")),
        avg_price=dec(d.get("avgPrice")),
        # the docs: ignore stopPrice for trailing orders (their trigger moves with the market)
        stop_price=stop if stop > 0 and kind != OrderType.TRAILING_STOP_MARKET.value else None,
        reduce_only=_flag(d.get("reduceOnly")) or _flag(d.get("closePosition")),
        created_ms=_ms(d.get("time") or d.get("updateTime")),
        # trailing orders only: the docs' order object names them activatePrice and priceRate
        callback_rate=_positive(d.get("priceRate")),
        activation_price=_positive(d.get("activatePrice")),
    )


def _positive(raw: Any) -> Decimal | None:
    if raw in (None, ""):
        return None
    value = dec(raw)
    return value if value > 0 else None


def _ms(raw: Any) -> int | None:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _flag(raw: Any) -> bool:
    return raw is True or str(raw).lower() == "true"


@dataclass(frozen=True, slots=True)
class UserTrade:
    """One ``userTrades`` row. ``commission`` is the fee paid (positive = paid by the account)."""

    trade_id: str
    order_id: str
    symbol: str
    side: OrderSide
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time_ms: int

    def to_fill(self, client_order_id: str, *, liquidation: bool = False) -> Fill:
        return Fill(
            trade_id=self.trade_id, client_order_id=client_order_id, symbol=self.symbol,
            side=self.side, quantity=self.qty, price=self.price, fee=self.commission,
            realized_pnl=self.realized_pnl, ts_ms=self.time_ms, liquidation=liquidation,
        )


def parse_trade(d: dict[str, Any]) -> UserTrade:
    # The venue reports commission as a negative number in some replies and positive in others;
    # the fee an account pays is its absolute value (rebates are not modelled).
    return UserTrade(
        trade_id=str(d["id"]), order_id=str(d["orderId"]), symbol=str(d["symbol"]),
        side=OrderSide(str(d["side"])), price=dec(d["price"]), qty=dec(d["qty"]),
        quote_qty=dec(d.get("quoteQty")), realized_pnl=dec(d.get("realizedPnl")),
        commission=abs(dec(d.get("commission"))), commission_asset=str(d.get("commissionAsset", "")),
        maker=bool(d.get("maker", False)), time_ms=int(d["time"]),
    )


@dataclass(frozen=True, slots=True)
class IncomeRecord:
    symbol: str
    income_type: str  # REALIZED_PNL, FUNDING_FEE, COMMISSION, TRANSFER, ...
    income: Decimal
    asset: str
    info: str
    time_ms: int
    tran_id: str
    trade_id: str


def parse_income(d: dict[str, Any]) -> IncomeRecord:
    return IncomeRecord(
        symbol=str(d.get("symbol", "")), income_type=str(d["incomeType"]), income=dec(d["income"]),
        asset=str(d.get("asset", "")), info=str(d.get("info", "")), time_ms=int(d["time"]),
        tran_id=str(d.get("tranId", "")), trade_id=str(d.get("tradeId", "")),
    )


@dataclass(frozen=True, slots=True)
class LeverageBracket:
    bracket: int
    initial_leverage: int
    notional_cap: Decimal
    notional_floor: Decimal
    maint_margin_ratio: Decimal


def parse_brackets(data: Any, symbol: str) -> list[LeverageBracket]:
    """``leverageBracket`` answers an object for one symbol, a list of them otherwise."""
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        if str(entry.get("symbol", "")).upper() == symbol:
            return [
                LeverageBracket(int(b["bracket"]), int(b["initialLeverage"]), dec(b.get("notionalCap")),
                                dec(b.get("notionalFloor")), dec(b.get("maintMarginRatio")))
                for b in entry.get("brackets", [])
            ]
    return []
