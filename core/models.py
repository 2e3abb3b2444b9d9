"""Domain types shared by every part of the desk: market data, proposals, verdicts, orders, fills.

No SQLAlchemy, no httpx here: these are the words the engine, the risk rules, the agents and the
exchanges speak to each other. Money that crosses the exchange boundary (prices, quantities, fees) is
``Decimal``; analytics and indicators use floats. Timestamps are integer milliseconds since the epoch
(UTC) in hot paths and timezone-aware ``datetime`` at the edges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import ConfigError

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


# The most capital a session or a backtest may hold: far above any real account, and well inside
# what the venue's 8-decimal balances and 28-digit decimal arithmetic hold exactly.
MAX_CAPITAL = 1e12


def validate_capital(capital: float) -> float:
    """The capital of a session or a backtest, refused (ConfigError, one line) unless it is a
    number of USDT from 100 (every agent must meet the venue's minimum order) to MAX_CAPITAL."""
    if not isinstance(capital, (int, float)) or not math.isfinite(capital) or capital <= 0:
        raise ConfigError(f"capital must be a positive number of USDT, got {capital!r}")
    if capital < 100:
        raise ConfigError("capital must be at least 100 USDT so every agent can meet the venue's "
                          "minimum order size")
    if capital > MAX_CAPITAL:
        shown = f"{capital:,.0f}" if capital < 1e15 else f"{capital:.3g}"  # not 300 digits of 1e308
        raise ConfigError(f"capital must be at most {MAX_CAPITAL:,.0f} USDT, got {shown}")
    return float(capital)


SYMBOL = re.compile(r"[A-Z0-9]{2,30}")  # a perpetual's name as the venues spell it: BTCUSDT


def symbol_list(given: Iterable[str]) -> tuple[str, ...]:
    """Symbols as asked ("btcusdt, ETHUSDT"), upper-cased; refused in words (ConfigError) when
    none is left, one is listed twice or one is not a symbol's name."""
    chosen = tuple(s.strip().upper() for s in given if s.strip())
    if not chosen:
        raise ConfigError("choose at least one symbol")
    for symbol in chosen:
        if not SYMBOL.fullmatch(symbol):
            shown = symbol if len(symbol) <= 40 else f"{symbol[:20]}…({len(symbol):,} characters)"
            raise ConfigError(f"{shown!r} is not a symbol (2 to 30 letters and digits, e.g. BTCUSDT)")
    if len(set(chosen)) != len(chosen):
        raise ConfigError("a symbol is listed twice")
    return chosen


def parse_capital(text: str) -> float:
    """Capital as a person types it ("100000", "100,000", "250_000.50"), validated as
    ``validate_capital``; anything else is refused in words (ConfigError), never replaced."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    if not cleaned or not cleaned.isascii():
        raise ConfigError(f"capital must be a number of USDT, got {text.strip()!r}"
                          if cleaned else "capital is empty: type a number of USDT, e.g. 100000")
    try:
        value = float(cleaned)
    except ValueError:
        raise ConfigError(f"capital must be a number of USDT, got {text.strip()[:40]!r}") from None
    return validate_capital(value)


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# --------------------------------------------------------------------------------------------------
# Market data


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed candle. ``open_time_ms`` is the candle's open; it closes at open + interval."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class MarketStep:
    """What one engine tick learned from the feed: the new closed base bars per symbol (oldest
    first) and the engine time, which is the close time of the newest bar."""

    now_ms: int
    bars: dict[str, list[Bar]]
    prices: dict[str, float]
    funding_rates: dict[str, float | None]


# --------------------------------------------------------------------------------------------------
# Agents and proposals


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


RISK_LEVERAGE_CAP: dict[RiskLevel, int] = {
    RiskLevel.LOW: 5,
    RiskLevel.MEDIUM: 10,
    RiskLevel.HIGH: 20,
}


class Action(StrEnum):
    OPEN_LONG = "open_long"
    OPEN_SHORT = "open_short"
    CLOSE = "close"
    HOLD = "hold"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def sign(self) -> int:
        return 1 if self is PositionSide.LONG else -1

    @property
    def entry_order_side(self) -> OrderSide:
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY


@dataclass(frozen=True, slots=True)
class ExternalSignal:
    """A trade idea sent from outside the desk, as the External signals agent reads it: ``side``
    is long, short or close; the stop, take-profit, leverage and margin are the sender's wishes,
    which the CEO's hard rules judge like any agent's."""

    id: int
    symbol: str
    side: str
    leverage: int
    margin_fraction: float
    stop_price: float | None
    take_profit: float | None
    confidence: float
    note: str
    source: str | None = None


# The venue's TRAILING_STOP_MARKET callbackRate bounds (0.1 % .. 5 %), as fractions of price.
TRAILING_CALLBACK_MIN = 0.001
TRAILING_CALLBACK_MAX = 0.05


class Proposal(BaseModel):
    """A trade an agent wants. Validated, but not yet judged: the CEO's rules decide what happens.

    ``margin_fraction`` is the share of the agent's equity to commit as margin. ``stop_price`` is an
    absolute price (below entry for longs, above for shorts). ``group`` ties the legs of a two-leg
    trade together: the CEO approves both legs or neither.

    ``trail_callback`` asks for a trailing stop beside the hard stop: the fraction of price (0.01 =
    1%) it trails the best price by, once the price has reached ``trail_activation`` (None: from
    the moment it rests). The hard stop stays either way.
    """

    model_config = ConfigDict(frozen=True)

    agent: str
    symbol: str
    action: Action
    leverage: int = Field(default=1, ge=1, le=125)
    margin_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    stop_price: float | None = Field(default=None, gt=0)
    take_profit: float | None = Field(default=None, gt=0)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    reasoning: str = Field(min_length=1, max_length=2000)
    ref_price: float = Field(gt=0, description="price the agent saw when proposing")
    group: str | None = None
    trail_callback: float | None = Field(default=None, gt=0, lt=1)
    trail_activation: float | None = Field(default=None, gt=0)

    @field_validator("symbol")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def opens(self) -> bool:
        return self.action in (Action.OPEN_LONG, Action.OPEN_SHORT)

    @property
    def side(self) -> PositionSide | None:
        if self.action is Action.OPEN_LONG:
            return PositionSide.LONG
        if self.action is Action.OPEN_SHORT:
            return PositionSide.SHORT
        return None


# --- LLM audit trail ---------------------------------------------------------------------
@dataclass(slots=True)
class LLMCallRecord:
    """One model call as the audit trail stores it (core/desk/llm_services.py writes it to ``llm_calls``).

    ``role`` is ``agent`` for a strategy agent's call and ``ceo_review`` for the CEO's reviewer.
    ``error`` says why the call failed or its reply was unusable; ``validation_errors`` holds the
    parser's complaints about a reply that arrived. ``cost_usd`` is filled in when it is stored.
    """

    role: str
    provider: str
    model: str
    prompt_version: str
    system: str
    prompt: str
    raw_reply: str | None = None
    parsed: str | None = None  # JSON of the validated answer
    error: str | None = None
    validation_errors: str | None = None
    latency_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 1
    cost_usd: float = 0.0


@dataclass(slots=True)
class AgentDecision:
    """What one agent said on one tick: proposals, or an abstention with the reason, or a failure.

    An agent backed by a model also hands up its ``llm_call`` (stored before the proposals that
    cite it) and, with the shadow baseline on, ``shadow``: what its rule-only twin said.
    """

    agent: str
    proposals: list[Proposal] = field(default_factory=list)
    note: str = ""
    failure: str | None = None
    raw_reply: str | None = None
    llm_call: LLMCallRecord | None = None
    shadow: AgentDecision | None = None


# --------------------------------------------------------------------------------------------------
# CEO verdicts


class Verdict(StrEnum):
    APPROVE = "approve"
    MODIFY = "modify"
    REJECT = "reject"


@dataclass(slots=True)
class OrderPlan:
    """An approved opening trade, sized: what the execution layer will send."""

    agent: str
    symbol: str
    side: PositionSide
    leverage: int
    quantity: Decimal
    margin: float
    ref_price: float
    stop_distance: float  # fraction of entry price, so stop = entry * (1 -/+ distance)
    stop_price: float
    take_profit: float | None
    # a stop-out's cost: the move to the stop plus both fills' estimated fees and slippage
    loss_at_stop: float = 0.0
    # the trailing stop resting beside the hard stop: callback as a fraction of price (within the
    # venue's 0.1-5 %) and the price that arms it (None: armed from the start)
    trail_callback: float | None = None
    trail_activation: float | None = None

    @property
    def notional(self) -> float:
        return float(self.quantity) * self.ref_price


@dataclass(slots=True)
class RiskVerdict:
    """The CEO's hard-rule judgement of one proposal."""

    verdict: Verdict
    rules: list[str]
    changes: dict[str, tuple[Any, Any]]
    reason: str
    plan: OrderPlan | None = None


# --------------------------------------------------------------------------------------------------
# Exchange boundary


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    # the live client places LIMIT orders and may find the others on a real account
    LIMIT = "LIMIT"
    STOP = "STOP"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def final(self) -> bool:
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        )


def _finer(a: Decimal, b: Decimal) -> Decimal:
    """The quantum with more decimals of two filter values (0.5 and 0.25 -> 0.01)."""
    exponent = min(int(a.normalize().as_tuple().exponent), int(b.normalize().as_tuple().exponent), 0)
    return Decimal(1).scaleb(exponent)


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """The venue's rules for one symbol (exchangeInfo filters plus the leverage bracket)."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_leverage: int
    maint_margin_rate: Decimal
    min_price: Decimal = Decimal(0)  # PRICE_FILTER: valid prices are min_price + k × tick_size
    # MARKET_LOT_SIZE: what a MARKET order may carry (None: the venue sent none, LOT_SIZE applies)
    market_step_size: Decimal | None = None
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None

    def round_qty(self, qty: Decimal, *, market: bool = False) -> Decimal:
        """Round a quantity down to a whole number of steps above the minimum (never buy more
        than asked); a MARKET order counts its steps by MARKET_LOT_SIZE."""
        step = (self.market_step_size or self.step_size) if market else self.step_size
        base = (self.market_min_qty if market and self.market_min_qty is not None
                else self.min_qty)
        if qty < base:  # below the minimum: plain step rounding, refused by the caller
            steps = (qty / step).to_integral_value(rounding=ROUND_DOWN)
            return (steps * step).quantize(step)
        steps = ((qty - base) / step).to_integral_value(rounding=ROUND_DOWN)
        return (base + steps * step).quantize(_finer(step, base))

    def round_price(self, price: Decimal, *, up: bool) -> Decimal:
        """Round a price to the tick size counted from ``min_price``, up or down as the
        caller's safety requires."""
        steps = ((price - self.min_price) / self.tick_size).to_integral_value(
            rounding=ROUND_CEILING if up else ROUND_FLOOR
        )
        return (self.min_price + steps * self.tick_size).quantize(
            _finer(self.tick_size, self.min_price))

    def qty_bounds(self, *, market: bool) -> tuple[Decimal, Decimal]:
        """(minimum, maximum) quantity of one order: MARKET_LOT_SIZE for MARKET orders."""
        if market:
            return (self.market_min_qty if self.market_min_qty is not None else self.min_qty,
                    self.market_max_qty if self.market_max_qty is not None else self.max_qty)
        return self.min_qty, self.max_qty


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    stop_price: Decimal | None = None
    reduce_only: bool = False
    # TRAILING_STOP_MARKET only: the callback in the venue's percent units (1.5 = 1.5 %) and the
    # price that arms it (None: armed at the last price when placed)
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``trade_id`` is unique per venue and makes booking idempotent."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    ts_ms: int
    liquidation: bool = False


@dataclass(frozen=True, slots=True)
class OrderResult:
    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    executed_qty: Decimal
    avg_price: Decimal
    stop_price: Decimal | None = None
    reduce_only: bool = False
    fills: tuple[Fill, ...] = ()
    created_ms: int | None = None  # when the venue took the order, where it says
    callback_rate: Decimal | None = None  # trailing orders: percent units, as the venue says
    activation_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding booked on a position; negative ``amount`` is paid by the account."""

    payment_id: str
    symbol: str
    amount: Decimal
    rate: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A status change the venue made on its own (a resting order triggered, expired, cancelled)."""

    order: OrderResult
    ts_ms: int


@dataclass(slots=True)
class ExchangeEvents:
    """What happened at the venue since the last sync, in time order within each list."""

    fills: list[Fill] = field(default_factory=list)
    order_updates: list[OrderUpdate] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    loss_guard: bool = False  # the venue's loss guard closed every position (the drawdown halt)

    def __bool__(self) -> bool:
        return bool(self.fills or self.order_updates or self.funding or self.loss_guard)


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    symbol: str
    amount: Decimal  # signed: negative is short (one-way mode)
    entry_price: Decimal
    leverage: int
    isolated_margin: Decimal
    liquidation_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountBalance:
    wallet_balance: Decimal
    available_balance: Decimal
    unrealized_pnl: Decimal
