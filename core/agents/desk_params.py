"""The whole desk's agent configuration as one immutable value: what a session or backtest ran with.

Why it exists: the strategy file, the Agents page editor and an optimiser all produce a
``DeskParams``; a session stores it (``to_json``) and its engine rebuilds the strategies from the
stored copy, so a run is reproducible and a file edit never reaches a session already running.

It holds, per agent key, the strategy's parameters (``core/agents/params.py``) and the roster
settings (capital share, risk level, model). Values are addressed by flat keys: ``trend.adx_min``
for a strategy parameter, ``roster.trend.share`` for a roster setting. ``with_values`` is the one
way to change them, and refuses a bad value with an ``InvalidParams`` naming the parameter, the
value and the bound. ``search_space`` turns the declared ranges into plain ``SearchParam`` rows an
optimiser can sample from without knowing pydantic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from core.agents.base import AgentSpec
from core.agents.params import (
    STRATEGY_MODELS,
    ArbitrageParams,
    MeanReversionParams,
    MomentumParams,
    ScalperParams,
    StrategyParams,
    TrendParams,
    bound_text,
    search_range,
)
from core.agents.roster import ROSTER
from core.errors import InvalidParams
from core.models import RISK_LEVERAGE_CAP, RiskLevel

__all__ = ["AGENT_KEYS", "DeskParams", "InvalidParams", "RosterParams", "RosterSetting",
           "SearchParam", "search_space"]

AGENT_KEYS: tuple[str, ...] = tuple(s.key for s in ROSTER)
_DEFAULT_SPECS = {s.key: s for s in ROSTER}
SHARE_TOLERANCE = 1e-9
FlatValue = float | int | str


class RosterSetting(BaseModel):
    """One agent's place on the desk: its share of a new session's capital, its risk level (which
    caps its leverage: low 5x, medium 10x, high 20x) and the model it runs on when keys are set."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    share: float = Field(
        description="share of a new session's capital (the five shares sum to 1)", ge=0.05,
        le=0.40, json_schema_extra={"search": {"low": 0.05, "high": 0.40, "step": 0.05,
                                               "log": False}})
    risk_level: Literal["low", "medium", "high"] = Field(
        description="caps the agent's leverage: low 5x, medium 10x, high 20x",
        json_schema_extra={"search": {"choices": ["low", "medium", "high"]}})
    model: Literal["gemini", "grok"] = Field(
        description="the model the agent runs on when its key is set (rules otherwise)")


def _roster_default(key: str) -> Any:
    spec = _DEFAULT_SPECS[key]
    return Field(default_factory=lambda: RosterSetting(
        share=spec.capital_share, risk_level=spec.risk_level.value, model=spec.model))


class RosterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    trend: RosterSetting = _roster_default("trend")
    momentum: RosterSetting = _roster_default("momentum")
    mean_reversion: RosterSetting = _roster_default("mean_reversion")
    scalper: RosterSetting = _roster_default("scalper")
    arbitrage: RosterSetting = _roster_default("arbitrage")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> RosterParams:
        total = math.fsum(getattr(self, k).share for k in AGENT_KEYS)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise PydanticCustomError(
                "cross_field", "the five capital shares must sum to 1 (they sum to {total})",
                {"field": "trend.share", "total": round(total, 6)})
        return self


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One dimension of an optimiser's search space, as plain data."""

    agent: str
    param: str  # the field name ("adx_min", or "share" for a roster setting)
    name: str  # the flat key ``with_values`` takes
    kind: Literal["float", "int", "choice"]
    low: float | None
    high: float | None
    step: float | None
    log: bool
    choices: tuple[FlatValue, ...] | None
    default: FlatValue
    description: str


class DeskParams(BaseModel):
    """Every agent's strategy parameters and roster settings; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    trend: TrendParams = Field(default_factory=TrendParams)
    momentum: MomentumParams = Field(default_factory=MomentumParams)
    mean_reversion: MeanReversionParams = Field(default_factory=MeanReversionParams)
    scalper: ScalperParams = Field(default_factory=ScalperParams)
    arbitrage: ArbitrageParams = Field(default_factory=ArbitrageParams)
    roster: RosterParams = Field(default_factory=RosterParams)

    # ------------------------------------------------------------------------------ building
    @classmethod
    def defaults(cls) -> DeskParams:
        """Today's shipped values (what every golden replay runs on)."""
        return cls()

    @classmethod
    def from_nested(cls, data: dict[str, Any]) -> DeskParams:
        """Validate a nested mapping (as in the strategy file); ``InvalidParams`` on the first
        problem, naming the flat key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_params(exc, data) from None

    def with_values(self, values: dict[str, FlatValue]) -> DeskParams:
        """A copy with the given flat keys changed (``{"trend.adx_min": 25.0}``)."""
        data = self.model_dump(mode="json")
        for key, value in values.items():
            node, leaf = _locate(data, key)
            node[leaf] = value
        return DeskParams.from_nested(data)

    # ------------------------------------------------------------------------------ reading
    def strategy(self, key: str) -> StrategyParams:
        """The strategy parameters of agent ``key``."""
        if key not in STRATEGY_MODELS:
            raise InvalidParams(f"no strategy parameters for agent {key!r} (agents: "
                                f"{', '.join(AGENT_KEYS)})", parameter=key, value=None,
                                bound=", ".join(AGENT_KEYS))
        found: StrategyParams = getattr(self, key)
        return found

    def setting(self, key: str) -> RosterSetting:
        found: RosterSetting = getattr(self.roster, key)
        return found

    def specs(self) -> tuple[AgentSpec, ...]:
        """The five roster entries with these shares, risk levels (and their leverage caps) and
        models; equal to ``ROSTER`` for the defaults."""
        out = []
        for spec in ROSTER:
            s = self.setting(spec.key)
            risk = RiskLevel(s.risk_level)
            out.append(replace(spec, capital_share=s.share, risk_level=risk,
                               max_leverage=RISK_LEVERAGE_CAP[risk], model=s.model))
        return tuple(out)

    def flat(self) -> dict[str, FlatValue]:
        """Every value by its flat key, strategies first then roster, in declaration order."""
        data = self.model_dump(mode="json")
        out: dict[str, FlatValue] = {}
        for key in AGENT_KEYS:
            out.update({f"{key}.{k}": v for k, v in data[key].items()})
        for key in AGENT_KEYS:
            out.update({f"roster.{key}.{k}": v for k, v in data["roster"][key].items()})
        return out

    def to_json(self) -> str:
        """Stable text for storage: sorted keys, no whitespace; equal params give equal text."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeskParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidParams(f"stored agent parameters are not JSON: {exc}", parameter="",
                                value=text[:80], bound="JSON") from None
        if not isinstance(data, dict):
            raise InvalidParams("stored agent parameters are not a JSON object", parameter="",
                                value=text[:80], bound="a JSON object")
        return cls.from_nested(data)

    def differences(self, other: DeskParams) -> dict[str, tuple[FlatValue, FlatValue]]:
        """flat key → (this value, other value) where they differ."""
        mine, theirs = self.flat(), other.flat()
        return {k: (v, theirs[k]) for k, v in mine.items() if theirs[k] != v}

    # ----------------------------------------------------------------------------- searching
    def search_space(self, agents: list[str], roster: bool = False) -> dict[str, list[SearchParam]]:
        """The declared search ranges of ``agents`` (flat keys as names, these values as
        defaults); with ``roster`` also their capital share and risk level (never the model: a
        trial never calls one). Roster shares must still sum to 1 in a sampled point."""
        out: dict[str, list[SearchParam]] = {}
        for agent in agents:
            params = self.strategy(agent)
            rows = [_search_param(agent, name, f"{agent}.{name}", field, getattr(params, name))
                    for name, field in type(params).model_fields.items()]
            if roster:
                setting = self.setting(agent)
                rows += [_search_param(agent, name, f"roster.{agent}.{name}", field,
                                       getattr(setting, name))
                         for name, field in RosterSetting.model_fields.items()]
            out[agent] = [r for r in rows if r is not None]
        return out


def search_space(agents: list[str], roster: bool = False) -> dict[str, list[SearchParam]]:
    """``DeskParams.defaults().search_space(...)``: the ranges around today's defaults."""
    return DeskParams.defaults().search_space(agents, roster)


def stored_params(text: str | None) -> DeskParams:
    """A session row's ``agent_params`` (None: a session from before they were stored, which ran
    on the defaults of its time, today's defaults)."""
    return DeskParams.defaults() if text is None else DeskParams.from_json(text)


def field_info(flat_key: str) -> FieldInfo:
    """The pydantic field behind a flat key (its description, bounds, search range)."""
    parts = flat_key.split(".")
    if len(parts) == 3 and parts[0] == "roster" and parts[1] in AGENT_KEYS:
        fields = RosterSetting.model_fields
    elif len(parts) == 2 and parts[0] in STRATEGY_MODELS:
        fields = STRATEGY_MODELS[parts[0]].model_fields
    else:
        raise _unknown(flat_key)
    if parts[-1] not in fields:
        raise _unknown(flat_key)
    return fields[parts[-1]]


# ---------------------------------------------------------------------------------- internals


def _search_param(agent: str, param: str, name: str, field: FieldInfo,
                  value: Any) -> SearchParam | None:
    found = search_range(field)
    if found is None:
        return None
    description = field.description or ""
    if "choices" in found:
        return SearchParam(agent, param, name, "choice", None, None, None, False,
                           tuple(found["choices"]), value, description)
    kind: Literal["float", "int"] = "int" if field.annotation is int else "float"
    return SearchParam(agent, param, name, kind, found["low"], found["high"], found.get("step"),
                       bool(found.get("log", False)), None, value, description)


def _unknown(flat_key: str) -> InvalidParams:
    known = ", ".join(f"{k}.*" for k in AGENT_KEYS) + ", " + ", ".join(
        f"roster.{k}.*" for k in AGENT_KEYS)
    return InvalidParams(f"unknown parameter {flat_key!r} (known: {known})",
                         parameter=flat_key, value=None, bound="a known parameter")


def _locate(data: dict[str, Any], flat_key: str) -> tuple[dict[str, Any], str]:
    field_info(flat_key)  # refuses an unknown key before anything changes
    parts = flat_key.split(".")
    node = data
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def _dig(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def invalid_params(exc: ValidationError, data: dict[str, Any]) -> InvalidParams:
    """The first validation error as an ``InvalidParams`` naming flat key, value and bound."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(str(p) for p in err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == "cross_field":  # a model-level rule: point at the field it names
        loc = (*loc, *str(ctx["field"]).split("."))
    if err["type"] == "extra_forbidden" or (len(loc) >= 1 and loc[0] not in
                                            (*STRATEGY_MODELS, "roster")):
        return _unknown(".".join(loc))
    if len(loc) >= 2 and loc[0] == "roster" and loc[1] not in AGENT_KEYS:
        return _unknown(".".join(loc))
    flat_key = ".".join(loc)
    value = _dig(data, loc)
    try:
        field = field_info(flat_key)
    except InvalidParams:  # a whole section of the wrong type
        return InvalidParams(f"{flat_key}: {err['msg']}", parameter=flat_key, value=value,
                             bound="a table of parameters")
    if err["type"] == "missing":
        bound = bound_text(field)
        return InvalidParams(f"{flat_key} is missing (it must be {bound})", parameter=flat_key,
                             value=None, bound=bound)
    if err["type"] == "cross_field":
        return InvalidParams(f"{flat_key}: {err['msg']}", parameter=flat_key, value=value,
                             bound=err["msg"])
    bound = bound_text(field)
    return InvalidParams(f"{flat_key} = {value!r} is refused: it must be {bound} — "
                         f"{field.description}", parameter=flat_key, value=value, bound=bound)
