"""One trial of a study: one backtest of one parameter set through the desk's own engine.

The run is ``core.backtest.runner.run``: the same ``run_cycle``, CEO rules, reviews and paper
venue as any backtest, in a private store that is thrown away after its figures are read (a
study runs hundreds; the report keeps the figures and the daily returns, and any trial can be
run again as a stored backtest from its parameters). Agents run on their rules: a backtest never
calls a model. Only the chosen agents trade, splitting the capital in their roster proportions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from core.backtest import runner
from core.backtest.inputs import load_curve, load_trades
from core.backtest.params import BacktestParams, build_params, ticks_in
from core.config import Settings
from core.errors import ConfigError
from core.feeds.replay import ReplayData
from core.research import agents as agent_config
from core.research.agents import DeskParams
from core.research.metrics import CurveFigures, check_objective, curve_figures, daily_returns


@dataclass(frozen=True, slots=True)
class StudySpec:
    """What a study searches: its agents, range, objective and constraints (stored with it)."""

    agents: tuple[str, ...]
    start: str
    end: str
    interval: str
    symbols: tuple[str, ...]
    capital: float
    data_dir: str
    objective: str = "sharpe"
    max_drawdown: float | None = None  # a fraction: 0.2 refuses trials that fell 20% or more
    min_trades: int | None = None
    ceo: bool = True
    seed: int | None = None
    # the parameters a trial's values are set over (DeskParams JSON: the strategy file's when the
    # study was created); None: the shipped defaults
    base: str | None = None

    def __post_init__(self) -> None:
        check_objective(self.objective)
        if self.max_drawdown is not None and not 0 < self.max_drawdown < 1:
            raise ConfigError(f"--max-drawdown must be between 0 and 100 %, got "
                              f"{self.max_drawdown * 100:g} %")
        if self.min_trades is not None and self.min_trades < 0:
            raise ConfigError(f"--min-trades cannot be negative, got {self.min_trades}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudySpec:
        data = json.loads(text)
        data["agents"] = tuple(data["agents"])
        data["symbols"] = tuple(data["symbols"])
        return cls(**data)

    def with_range(self, start: str, end: str) -> StudySpec:
        data = asdict(self) | {"start": start, "end": end}
        data["agents"], data["symbols"] = self.agents, self.symbols
        return StudySpec(**data)


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    figures: CurveFigures
    trades: int
    fees: float
    funding: float
    daily: list[float] = field(repr=False)
    final_equity: float = 0.0
    curve_ts: list[int] = field(default_factory=list, repr=False)
    curve_equity: list[float] = field(default_factory=list, repr=False)

    def value(self, objective: str) -> float:
        return self.figures.objective(objective)

    def violations(self, spec: StudySpec) -> tuple[float, float]:
        """Optuna's constraint values (≤ 0 is feasible): drawdown over the cap, trades short."""
        dd = self.figures.max_drawdown - spec.max_drawdown if spec.max_drawdown else -1.0
        short = float(spec.min_trades - self.trades) if spec.min_trades else -1.0
        return dd, short

    def attrs(self) -> dict[str, Any]:
        f = self.figures
        return {"return": f.total_return, "sharpe": f.sharpe, "sortino": f.sortino,
                "calmar": f.calmar, "max_drawdown": f.max_drawdown, "trades": self.trades,
                "fees": self.fees, "funding": self.funding, "final_equity": self.final_equity,
                "daily_returns": [round(x, 10) for x in self.daily]}


class TrialRunner:
    """Reads and checks the range's data once, then runs any number of parameter sets on it."""

    def __init__(self, settings: Settings, spec: StudySpec) -> None:
        self.settings = settings
        self.spec = spec
        self.params: BacktestParams
        self.data: ReplayData
        self.params, self.data = build_params(
            start=spec.start, end=spec.end, data_dir=spec.data_dir, interval=spec.interval,
            symbols=list(spec.symbols), capital=spec.capital, ceo=spec.ceo)
        self.total = ticks_in(self.params, self.data)
        self.base = (DeskParams.from_json(spec.base) if spec.base is not None
                     else DeskParams.defaults())

    def run(self, values: dict[str, Any], *, keep_curve: bool = False) -> TrialOutcome:
        """Backtest ``values`` (flat keys over the study's base parameters); InvalidParams on
        a bad point."""
        params = agent_config.params_for(values, self.base)
        roster = agent_config.trial_roster(self.spec.agents, params)
        finished = runner.run(self.settings, self.params, self.data, total=self.total,
                              strategies=agent_config.trial_strategies(roster, params),
                              agent_params=params, roster=roster)
        try:
            with finished.engine.connect() as conn:
                curve = load_curve(conn, finished.session_id)
                trades = load_trades(conn, finished.session_id)
        finally:
            finished.dispose()
        ts = [p.ts_ms for p in curve]
        equity = [p.equity for p in curve]
        capital = self.params.capital
        return TrialOutcome(
            curve_figures(ts, equity, capital), len(trades), sum(t.fees for t in trades),
            sum(t.funding for t in trades), daily_returns(ts, equity, capital).tolist(),
            equity[-1] if equity else capital,
            ts if keep_curve else [], equity if keep_curve else [])
