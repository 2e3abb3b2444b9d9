"""Each rule strategy's parameters, declared once: type, bounds, default, meaning, search range.

Why it exists: a trader tunes the agents through a file and the Agents page, an optimiser searches
them, and every session records the values it ran with. All three read the models here, so a value
is checked the same way wherever it comes from and a bound is written in one place only.

Every field's default is the value the desk has always shipped (the golden replays run on them),
its ``description`` is the one-line meaning the UI shows, and its ``json_schema_extra`` holds the
optimiser's range: ``{"search": {"low", "high", "step", "log"}}`` for numbers or
``{"search": {"choices": [...]}}``. The bounds (``ge``/``le``/choices) are what the desk accepts; the
search range is the narrower band worth exploring. Cross-field rules (a fast average below the slow
one, an exit inside the entry) are checked on the whole model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

__all__ = [
    "ArbitrageParams",
    "MeanReversionParams",
    "MomentumParams",
    "ScalperParams",
    "StrategyParams",
    "TrendParams",
    "bound_text",
    "limits",
    "search_range",
]


def _range(low: float, high: float, step: float | None = None, log: bool = False) -> dict[str, Any]:
    return {"search": {"low": low, "high": high, "step": step, "log": log}}


def _choices(*choices: object) -> dict[str, Any]:
    return {"search": {"choices": list(choices)}}


def _cross(field: str, message: str) -> PydanticCustomError:
    """A cross-field violation, attributed to ``field`` (the one a file line should point at)."""
    return PydanticCustomError("cross_field", message, {"field": field})


class StrategyParams(BaseModel):
    """Base of the per-strategy models: strict, closed (an unknown key is refused), immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    strategy_key: ClassVar[str]


class TrendParams(StrategyParams):
    strategy_key: ClassVar[str] = "trend"

    fast_ema: Literal[5, 13, 20] = Field(
        20, description="period of the fast EMA whose cross starts a trend",
        json_schema_extra=_choices(5, 13, 20))
    slow_ema: Literal[13, 20, 50] = Field(
        50, description="period of the slow EMA the fast one crosses",
        json_schema_extra=_choices(13, 20, 50))
    filter_interval: Literal["4h", "1d"] = Field(
        "4h", description="slower timeframe whose ADX and EMA20 must confirm the cross",
        json_schema_extra=_choices("4h", "1d"))
    adx_min: float = Field(
        20.0, ge=0.0, le=60.0, description="least ADX14 on the filter timeframe (is there a trend)",
        json_schema_extra=_range(10.0, 40.0, 1.0))
    stop_atr: float = Field(
        2.0, ge=0.1, le=10.0, description="stop distance from price, in ATR14",
        json_schema_extra=_range(0.5, 5.0, 0.25))
    tp_atr: float = Field(
        4.0, ge=0.1, le=20.0, description="take-profit distance from price, in ATR14",
        json_schema_extra=_range(1.0, 10.0, 0.5))
    base_confidence: float = Field(
        0.35, ge=0.0, le=1.0, description="confidence of an entry at exactly the ADX minimum",
        json_schema_extra=_range(0.25, 0.6, 0.05))
    confidence_per_adx: float = Field(
        0.025, ge=0.0, le=0.2, description="confidence added per ADX point above the minimum",
        json_schema_extra=_range(0.0, 0.05, 0.005))
    trail_atr: float = Field(
        0.0, ge=0.0, le=20.0, description="trailing stop width in ATR14, sent as the "
        "venue's callback rate and kept inside its 0.1-5 % (0: no trailing stop)",
        json_schema_extra=_range(0.0, 5.0, 0.5))
    trail_activation_atr: float = Field(
        0.0, ge=0.0, le=20.0, description="profit in ATR14 at which the trailing stop arms "
        "(0: armed at once)", json_schema_extra=_range(0.0, 4.0, 0.5))
    trail_replaces_tp: Literal[True, False] = Field(
        True, description="with a trailing stop, no take-profit caps the move",
        json_schema_extra=_choices(True, False))

    @model_validator(mode="after")
    def _fast_below_slow(self) -> TrendParams:
        if self.fast_ema >= self.slow_ema:
            raise _cross("fast_ema", f"fast_ema ({self.fast_ema}) must be below slow_ema "
                                     f"({self.slow_ema})")
        return self


class MomentumParams(StrategyParams):
    strategy_key: ClassVar[str] = "momentum"

    volume_multiple: float = Field(
        2.0, ge=1.0, le=10.0, description="a breakout needs volume above this multiple of its "
        "20-bar average", json_schema_extra=_range(1.0, 4.0, 0.1))
    stop_atr: float = Field(
        1.5, ge=0.1, le=10.0, description="stop distance from price, in ATR14",
        json_schema_extra=_range(0.5, 5.0, 0.25))
    tp_atr: float = Field(
        3.0, ge=0.1, le=20.0, description="take-profit distance from price, in ATR14",
        json_schema_extra=_range(1.0, 10.0, 0.5))
    base_confidence: float = Field(
        0.40, ge=0.0, le=1.0, description="confidence of a breakout at exactly the volume "
        "threshold", json_schema_extra=_range(0.25, 0.6, 0.05))
    confidence_per_volume: float = Field(
        0.10, ge=0.0, le=1.0, description="confidence added per multiple of average volume above "
        "the threshold", json_schema_extra=_range(0.0, 0.3, 0.02))
    confidence_per_roc: float = Field(
        5.0, ge=0.0, le=50.0, description="confidence added per unit of |ROC10| (5: a 2% move "
        "adds 0.10)", json_schema_extra=_range(0.0, 15.0, 0.5))
    trail_atr: float = Field(
        3.0, ge=0.0, le=20.0, description="trailing stop width in ATR14, sent as the "
        "venue's callback rate and kept inside its 0.1-5 % (0: no trailing stop)",
        json_schema_extra=_range(0.0, 5.0, 0.5))
    trail_activation_atr: float = Field(
        0.0, ge=0.0, le=20.0, description="profit in ATR14 at which the trailing stop arms "
        "(0: armed at once)", json_schema_extra=_range(0.0, 4.0, 0.5))
    trail_replaces_tp: Literal[True, False] = Field(
        True, description="with a trailing stop, no take-profit caps the move",
        json_schema_extra=_choices(True, False))


class MeanReversionParams(StrategyParams):
    strategy_key: ClassVar[str] = "mean_reversion"

    z_entry: float = Field(
        2.0, ge=0.5, le=5.0, description="least |z-score(20)| of the close to fade it",
        json_schema_extra=_range(1.0, 3.5, 0.1))
    rsi_oversold: float = Field(
        30.0, ge=0.0, le=50.0, description="RSI14 below this confirms a long (oversold)",
        json_schema_extra=_range(15.0, 45.0, 1.0))
    rsi_overbought: float = Field(
        70.0, ge=50.0, le=100.0, description="RSI14 above this confirms a short (overbought)",
        json_schema_extra=_range(55.0, 85.0, 1.0))
    stop_std: float = Field(
        1.5, ge=0.1, le=10.0, description="stop distance beyond price, in std20",
        json_schema_extra=_range(0.5, 4.0, 0.25))
    base_confidence: float = Field(
        0.40, ge=0.0, le=1.0, description="confidence of an entry at exactly the z threshold",
        json_schema_extra=_range(0.25, 0.6, 0.05))
    confidence_per_z: float = Field(
        0.20, ge=0.0, le=1.0, description="confidence added per standard deviation beyond the "
        "threshold", json_schema_extra=_range(0.0, 0.5, 0.05))
    confidence_per_rsi: float = Field(
        0.01, ge=0.0, le=0.1, description="confidence added per RSI point beyond the RSI "
        "threshold", json_schema_extra=_range(0.0, 0.03, 0.0025))

    @model_validator(mode="after")
    def _oversold_below_overbought(self) -> MeanReversionParams:
        if self.rsi_oversold >= self.rsi_overbought:
            raise _cross("rsi_oversold", f"rsi_oversold ({self.rsi_oversold:g}) must be below "
                                         f"rsi_overbought ({self.rsi_overbought:g})")
        return self


class ScalperParams(StrategyParams):
    strategy_key: ClassVar[str] = "scalper"

    rsi_long_trigger: float = Field(
        40.0, ge=1.0, le=99.0, description="in an EMA5 > EMA13 uptrend, RSI7 crossing up "
        "through this ends the pullback (long)", json_schema_extra=_range(20.0, 50.0, 1.0))
    rsi_short_trigger: float = Field(
        60.0, ge=1.0, le=99.0, description="in an EMA5 < EMA13 downtrend, RSI7 crossing down "
        "through this ends the rally (short)", json_schema_extra=_range(50.0, 80.0, 1.0))
    stop_atr: float = Field(
        0.8, ge=0.1, le=10.0, description="stop distance from price, in ATR14 of the base bars",
        json_schema_extra=_range(0.3, 3.0, 0.1))
    tp_atr: float = Field(
        1.2, ge=0.1, le=20.0, description="take-profit distance from price, in ATR14 of the base "
        "bars", json_schema_extra=_range(0.5, 4.0, 0.1))
    time_stop_bars: int = Field(
        8, ge=1, le=500, description="close a scalp still open after this many base bars",
        json_schema_extra=_range(2, 48, 1))
    base_confidence: float = Field(
        0.45, ge=0.0, le=1.0, description="confidence of an entry with the EMAs level",
        json_schema_extra=_range(0.25, 0.6, 0.05))
    confidence_per_trend: float = Field(
        0.5, ge=0.0, le=5.0, description="confidence added per ATR of distance between EMA5 and "
        "EMA13", json_schema_extra=_range(0.0, 1.5, 0.1))


class ArbitrageParams(StrategyParams):
    strategy_key: ClassVar[str] = "arbitrage"

    lookback: int = Field(
        100, ge=20, le=2000, description="bars of the log-price spread its mean and std cover",
        json_schema_extra=_range(40, 400, 10))
    z_entry: float = Field(
        2.0, ge=0.5, le=6.0, description="open the pair when the spread's |z| reaches this",
        json_schema_extra=_range(1.0, 3.5, 0.1))
    z_exit: float = Field(
        0.5, ge=0.0, le=5.0, description="close both legs when |z| is back within this",
        json_schema_extra=_range(0.0, 1.5, 0.1))
    stop_atr: float = Field(
        3.0, ge=0.1, le=20.0, description="each leg's stop distance from price, in ATR14",
        json_schema_extra=_range(1.0, 6.0, 0.25))
    leg_margin: float = Field(
        0.12, ge=0.01, le=0.5, description="margin fraction of the agent's equity per leg",
        json_schema_extra=_range(0.04, 0.2, 0.01))
    base_confidence: float = Field(
        0.40, ge=0.0, le=1.0, description="confidence of a pair at exactly the z threshold",
        json_schema_extra=_range(0.25, 0.6, 0.05))
    confidence_per_z: float = Field(
        0.15, ge=0.0, le=1.0, description="confidence added per standard deviation beyond the "
        "threshold", json_schema_extra=_range(0.0, 0.4, 0.05))

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> ArbitrageParams:
        if self.z_exit >= self.z_entry:
            raise _cross("z_exit", f"z_exit ({self.z_exit:g}) must be below z_entry "
                                   f"({self.z_entry:g})")
        return self


STRATEGY_MODELS: dict[str, type[StrategyParams]] = {
    m.strategy_key: m
    for m in (TrendParams, MomentumParams, MeanReversionParams, ScalperParams, ArbitrageParams)
}


def search_range(field: FieldInfo) -> dict[str, Any] | None:
    """The optimiser's range of a field (``{"low", "high", "step", "log"}`` or ``{"choices"}``)."""
    extra = field.json_schema_extra
    found = extra.get("search") if isinstance(extra, dict) else None
    return found if isinstance(found, dict) else None


def limits(field: FieldInfo) -> dict[str, Any]:
    """What a field accepts, as data: ``kind`` ("float" | "int" | "choice"), ``min``/``max``
    (inclusive, None when open) or ``choices``."""
    choices = get_args(field.annotation)
    if choices and all(not isinstance(c, type) for c in choices):
        return {"kind": "choice", "min": None, "max": None, "choices": list(choices)}
    low = high = None
    for m in field.metadata:
        if isinstance(m, at.Ge | at.Gt):
            low = m.ge if isinstance(m, at.Ge) else m.gt
        if isinstance(m, at.Le | at.Lt):
            high = m.le if isinstance(m, at.Le) else m.lt
    kind = "int" if field.annotation is int else "float"
    return {"kind": kind, "min": low, "max": high, "choices": None}


def bound_text(field: FieldInfo) -> str:
    """What a field accepts, in words: 'between 0 and 60', 'one of 5, 13, 20', 'at least 1'."""
    found = limits(field)
    if found["kind"] == "choice":
        return "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c)
                                     for c in found["choices"])
    low, high = found["min"], found["max"]
    kind = "an integer" if found["kind"] == "int" else "a number"
    if low is not None and high is not None:
        return f"{kind} between {low:g} and {high:g}"
    if low is not None:
        return f"{kind} of at least {low:g}"
    if high is not None:
        return f"{kind} of at most {high:g}"
    return kind
