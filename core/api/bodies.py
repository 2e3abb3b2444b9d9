"""The JSON bodies the API accepts, validated before anything is done.

Every body refuses a field it does not know (a typo such as ``"capitol"`` is named, not
ignored), a wrong type and an oversized value, so a malformed request changes nothing and its
answer says which field is wrong. Types are strict where a lax parse would guess: ``"confirm":
"yes"`` is not a confirmation. What the desk itself checks (a capital's range, a symbol's data,
a transition) is left to the service, whose messages are the CLI's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from core.api.state import MAX_ID

SessionId = Annotated[int, Field(ge=1, le=MAX_ID)]
Symbol = Annotated[StrictStr, Field(min_length=1, max_length=30)]
Capital = Annotated[StrictFloat | StrictInt | Annotated[StrictStr, Field(max_length=40)],
                    Field(description="USDT, a number or text such as \"100,000\"")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(Body):
    capital: Capital | None = Field(
        None, description="paper capital (default DEFAULT_CAPITAL); live: at most the balance")
    symbols: Annotated[list[Symbol], Field(max_length=20)] | Annotated[
        StrictStr, Field(max_length=400)] | None = Field(
        None, description="a list or a comma-separated text (default SYMBOLS)")
    mode: Literal["paper", "live"] = "paper"
    name: Annotated[StrictStr, Field(max_length=120)] | None = None
    confirm: StrictBool = Field(False, description="required for mode live: real money")


class SessionChange(Body):
    action: Literal["pause", "resume", "stop"]
    session: SessionId | None = Field(None, description="default: the latest session")
    confirm: StrictBool = Field(False, description="required for stop: it closes every position")


class AgentChange(Body):
    action: Literal["pause", "resume"]
    session: SessionId | None = None


Wait = Annotated[StrictFloat | StrictInt, Field(
    ge=0, le=30, description="seconds to wait for a running engine to carry the order out "
                             "(default 0: answer at once, 202 while it is queued)")]


Day = Annotated[StrictStr, Field(min_length=1, max_length=40,
                                 description="a UTC day such as 2025-10-08 (or a time in it)")]


class BacktestStart(Body):
    start: Day = Field(description="first day (UTC)")
    end: Day = Field(description="last day (UTC, inclusive)")
    interval: Literal["1m", "15m", "1h"] | None = Field(
        None, description="bar interval (default REPLAY_INTERVAL)")
    symbols: Annotated[list[Symbol], Field(max_length=20)] | Annotated[
        StrictStr, Field(max_length=400)] | None = Field(
        None, description="a list or a comma-separated text (default SYMBOLS)")
    capital: Capital | None = Field(None, description="starting capital (default "
                                                      "DEFAULT_CAPITAL)")
    ceo: StrictBool = Field(True, description="false: the agents under the venue's limits only")
    llm_cache: StrictBool = Field(False, description="agents answer from recorded model replies "
                                                     "where the prompt matches, rules otherwise")
    name: Annotated[StrictStr, Field(max_length=120)] | None = None


class CloseBody(Body):
    confirm: StrictBool = Field(False, description="required: the position is closed at market")
    wait: Wait = 0


class CancelBody(Body):
    wait: Wait = 0


class FlattenBody(Body):
    confirm: StrictBool = Field(False, description="required: every position of the agent is "
                                                   "closed at market")
    session: SessionId | None = None
    wait: Wait = 0


Price = Annotated[StrictFloat | StrictInt, Field(gt=0, le=1e12)]


class SignalBody(Body):
    """A trade idea in the shape TradingView-style alerts send (symbol, side, optional bracket)."""

    symbol: Symbol = Field(description="a symbol the session trades, e.g. BTCUSDT")
    side: Literal["long", "short", "close"] = Field(
        description="open long, open short, or close what the agent holds")
    stop_price: Price | None = Field(None, description="absolute stop (default: 2×ATR(14) away)")
    take_profit: Price | None = Field(None, description="absolute take-profit")
    confidence: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] = 0.5
    leverage: Annotated[StrictInt, Field(ge=1, le=125)] = Field(
        3, description="asked for; the CEO caps it to the agent's risk level and the stop rule")
    margin_fraction: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] = Field(
        0.10, description="share of the agent's equity as margin; the CEO caps it at 30%")
    note: Annotated[StrictStr, Field(max_length=500)] = Field(
        "", description="why, in the sender's words; quoted in the CEO log")
    source: Annotated[StrictStr, Field(max_length=60)] | None = Field(
        None, description="who sends it, e.g. tradingview")
    session: SessionId | None = Field(None, description="default: the latest session")
    wait: Wait = 0
