"""Agent parameters as configuration: the models' bounds and cross-field rules, ``with_values``,
the stored JSON, the search space, the strategy file (good, bad, missing and unknown keys, each
refusal naming its line), the CLI's ``strategies check`` exit codes, the migration, and the
promise that a session or backtest runs on exactly the parameters it stored."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, inspect, select, text

from core import queries, service
from core.agents import strategy_file
from core.agents.desk_params import DeskParams, SearchParam, search_space
from core.agents.params import STRATEGY_MODELS, TrendParams
from core.agents.roster import ROSTER
from core.agents.strategies import build_strategies, build_strategy
from core.agents.trend import TrendStrategy
from core.backtest.params import build_params
from core.backtest.service import run_backtest
from core.config import PROJECT_ROOT
from core.desk.runtime import build_desk
from core.errors import ConfigError, InvalidParams
from core.store.db import MIGRATIONS_DIR, open_database
from core.store.tables import BacktestRunRow, PositionRow, SessionRow
from tests.conftest import make_settings
from tests.desk_helpers import create
from tests.test_cli import cli_env, ok, refused, run_cli
from tests.test_strategies import START, trend_stub, view

DATA = PROJECT_ROOT / "data" / "klines"
SHIPPED = PROJECT_ROOT / "strategies.toml"


# ------------------------------------------------------------------------------- the models


def test_the_defaults_are_the_shipped_roster_and_constants() -> None:
    params = DeskParams.defaults()
    assert params.specs() == ROSTER
    assert params.trend == TrendParams() and params.trend.adx_min == 20.0
    assert params.scalper.time_stop_bars == 8 and params.arbitrage.lookback == 100
    assert len(params.flat()) == sum(len(m.model_fields) for m in STRATEGY_MODELS.values()) + 5 * 3


def test_with_values_changes_only_what_it_names_and_returns_a_new_value() -> None:
    base = DeskParams.defaults()
    changed = base.with_values({"trend.adx_min": 25.0, "roster.trend.share": 0.30,
                                "roster.momentum.share": 0.15, "roster.scalper.risk_level": "high",
                                "scalper.time_stop_bars": 12})
    assert changed.trend.adx_min == 25.0 and base.trend.adx_min == 20.0
    assert changed.differences(base) == {
        "trend.adx_min": (25.0, 20.0), "scalper.time_stop_bars": (12, 8),
        "roster.trend.share": (0.30, 0.25), "roster.momentum.share": (0.15, 0.20),
        "roster.scalper.risk_level": ("high", "low")}
    scalper = next(s for s in changed.specs() if s.key == "scalper")
    assert scalper.max_leverage == 20  # a risk level brings its leverage cap
    with pytest.raises(Exception):  # frozen  # noqa: B017
        base.trend.adx_min = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("key", "value", "bound"), [
    ("trend.adx_min", 60.5, "between 0 and 60"),
    ("trend.adx_min", -1.0, "between 0 and 60"),
    ("trend.adx_min", "25", "between 0 and 60"),  # strict: a string is not a number
    ("trend.fast_ema", 8, "one of 5, 13, 20"),
    ("trend.filter_interval", "2h", "one of 4h, 1d"),
    ("scalper.time_stop_bars", 2.5, "an integer between 1 and 500"),
    ("scalper.time_stop_bars", True, "an integer between 1 and 500"),
    ("arbitrage.leg_margin", 0.9, "between 0.01 and 0.5"),
    ("roster.trend.risk_level", "reckless", "one of low, medium, high"),
    ("roster.trend.model", "gpt", "one of gemini, grok"),
])
def test_a_value_outside_its_bound_is_refused_naming_parameter_value_and_bound(
        key: str, value: Any, bound: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        DeskParams.defaults().with_values({key: value})
    err = caught.value
    assert isinstance(err, ConfigError)
    assert err.parameter == key and err.value == value and bound in err.bound
    assert key in str(err) and repr(value) in str(err) and bound in str(err)


@pytest.mark.parametrize(("values", "named", "words"), [
    ({"trend.fast_ema": 20, "trend.slow_ema": 20}, "trend.fast_ema", "must be below slow_ema"),
    ({"mean_reversion.rsi_oversold": 50.0, "mean_reversion.rsi_overbought": 50.0},
     "mean_reversion.rsi_oversold", "below rsi_overbought"),
    ({"arbitrage.z_exit": 2.0}, "arbitrage.z_exit", "must be below z_entry"),
    ({"roster.trend.share": 0.30}, "roster.trend.share", "sum to 1 (they sum to 1.05)"),
])
def test_cross_field_rules_are_refused(values: dict[str, Any], named: str, words: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        DeskParams.defaults().with_values(values)
    assert caught.value.parameter == named and words in str(caught.value)


def test_an_unknown_parameter_is_refused_and_nothing_changes() -> None:
    for key in ("trend.adx_minimum", "trendy.adx_min", "roster.trend.leverage", "roster.bob.share",
                "adx_min"):
        with pytest.raises(InvalidParams, match="unknown parameter"):
            DeskParams.defaults().with_values({key: 1.0})
    with pytest.raises(InvalidParams):
        DeskParams.defaults().strategy("signals")


def test_the_stored_json_is_stable_and_reads_back_exactly() -> None:
    params = DeskParams.defaults().with_values({"momentum.volume_multiple": 2.7,
                                                "trend.filter_interval": "1d"})
    text_ = params.to_json()
    assert DeskParams.from_json(text_) == params
    assert DeskParams.from_json(text_).to_json() == text_
    assert json.loads(text_)["momentum"]["volume_multiple"] == 2.7
    assert DeskParams.defaults().with_values(params.flat()) == params
    with pytest.raises(InvalidParams, match=r"unknown parameter 'trend\.bogus'"):
        DeskParams.from_json(json.dumps({"trend": {"bogus": 1}}))
    with pytest.raises(InvalidParams, match="not JSON"):
        DeskParams.from_json("{nope")


def test_the_search_space_lies_inside_the_bounds_and_holds_the_defaults() -> None:
    space = search_space(list(STRATEGY_MODELS), roster=True)
    assert set(space) == set(STRATEGY_MODELS)
    for agent, rows in space.items():
        assert rows and all(r.agent == agent for r in rows)
        for r in rows:
            assert isinstance(r, SearchParam) and r.description
            with pytest.raises(dataclasses.FrozenInstanceError):
                r.low = 0  # type: ignore[misc]
            if r.kind == "choice":
                assert r.choices is not None and r.default in r.choices
                for choice in r.choices:  # every choice is a value the model accepts alone
                    if r.name not in ("trend.fast_ema", "trend.slow_ema"):
                        DeskParams.defaults().with_values({r.name: choice})
            else:
                assert r.low is not None and r.high is not None
                assert r.low <= r.default <= r.high, r.name
                for edge in (r.low, r.high):  # both ends are accepted values
                    value = int(edge) if r.kind == "int" else float(edge)
                    if not r.name.startswith("roster."):
                        DeskParams.defaults().with_values({r.name: value})
    names = {r.name for r in space["trend"]}
    assert "roster.trend.share" in names and "roster.trend.risk_level" in names
    assert "roster.trend.model" not in names  # a trial never calls a model
    assert not any(r.name.startswith("roster.") for r in search_space(["trend"])["trend"])
    moved = DeskParams.defaults().with_values({"trend.adx_min": 30.0})
    adx = next(r for r in moved.search_space(["trend"])["trend"] if r.param == "adx_min")
    assert adx.default == 30.0 and adx.kind == "float" and adx.step == 1.0


# ------------------------------------------------------------------------------ strategies


def test_strategies_are_built_on_their_parameters() -> None:
    params = DeskParams.defaults().with_values({"trend.adx_min": 31.0,
                                                "roster.trend.risk_level": "high"})
    built = {s.spec.key: s for s in build_strategies(params=params)}
    trend = built["trend"]
    assert isinstance(trend, TrendStrategy) and trend.params.adx_min == 31.0
    assert trend.spec.max_leverage == 20 and trend.spec.risk_level.value == "high"
    assert build_strategy(ROSTER[0]).params == TrendParams()  # type: ignore[attr-defined]
    with pytest.raises(InvalidParams, match="TrendParams expected"):
        build_strategy(ROSTER[0], params.momentum)


def test_a_non_default_threshold_changes_the_decision() -> None:
    market = view(trend_stub(25.0, 95.0), START)
    (p,) = TrendStrategy(ROSTER[0]).decide(market).proposals  # ADX 25 ≥ 20: enters
    assert p.stop_price == pytest.approx(102.0 - 2.0 * 2.0)
    strict = TrendStrategy(ROSTER[0], TrendParams(adx_min=30.0))
    decision = strict.decide(market)
    assert not decision.proposals and "4h ADX 25.0 < 30" in decision.note
    wide = TrendStrategy(ROSTER[0], TrendParams(stop_atr=3.0, tp_atr=6.0))
    (q,) = wide.decide(market).proposals
    assert q.stop_price == pytest.approx(102.0 - 3.0 * 2.0)
    assert q.take_profit == pytest.approx(102.0 + 6.0 * 2.0)
    assert "(3/6×ATR14" in q.reasoning


# ---------------------------------------------------------------------------- the file


def _line(text_: str, starts: str) -> int:
    return next(i for i, line in enumerate(text_.splitlines(), start=1) if line.startswith(starts))


def test_the_shipped_file_is_the_defaults_in_full_with_comments() -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert strategy_file.parse(shipped) == DeskParams.defaults()
    assert shipped == strategy_file.render(DeskParams.defaults())  # regenerate it if models move
    assert "# least ADX14 on the filter timeframe" in shipped
    assert strategy_file.load(make_settings().strategies_file) == DeskParams.defaults()


def test_a_bad_value_names_the_file_line_parameter_and_bound(tmp_path: Path) -> None:
    text_ = SHIPPED.read_text(encoding="utf-8").replace("adx_min = 20.0", "adx_min = 75.0")
    path = tmp_path / "mine.toml"
    path.write_text(text_, encoding="utf-8")
    with pytest.raises(InvalidParams) as caught:
        strategy_file.load(path)
    line = _line(text_, "adx_min = 75.0")
    assert caught.value.line == line and caught.value.parameter == "trend.adx_min"
    assert f"{path}, line {line}: trend.adx_min = 75.0" in str(caught.value)
    assert "between 0 and 60" in str(caught.value)


def test_an_unknown_key_names_its_line(tmp_path: Path) -> None:
    text_ = "[trend]\nadx_min = 22.0\n\n[mean_reversion]\nz_entry = 2.5\nz_entyr = 3.0\n"
    with pytest.raises(InvalidParams) as caught:
        strategy_file.parse(text_, "s.toml")
    assert str(caught.value).startswith("s.toml, line 6: unknown parameter 'mean_reversion.z_entyr'")
    with pytest.raises(InvalidParams, match=r"s.toml, line 1: unknown parameter 'trendy'"):
        strategy_file.parse("[trendy]\nadx_min = 1.0\n", "s.toml")
    with pytest.raises(InvalidParams, match=r"line 2: unknown parameter 'roster.trend.leverage'"):
        strategy_file.parse("[roster.trend]\nleverage = 10\n", "s.toml")


def test_missing_keys_take_their_defaults_and_a_cross_field_rule_points_at_its_line() -> None:
    params = strategy_file.parse("[trend]\nadx_min = 22\n\n[roster.trend]\nmodel = \"grok\"\n")
    assert params.differences(DeskParams.defaults()) == {"trend.adx_min": (22.0, 20.0),
                                                         "roster.trend.model": ("grok", "gemini")}
    assert strategy_file.parse("") == DeskParams.defaults()
    text_ = "# mine\n[trend]\nslow_ema = 13\nfast_ema = 20\n"
    with pytest.raises(InvalidParams, match=r"line 4: trend.fast_ema: fast_ema \(20\) must be "
                                            r"below slow_ema \(13\)"):
        strategy_file.parse(text_, "s.toml")
    with pytest.raises(InvalidParams, match=r"line 1: trend.fast_ema"):  # not in the file:
        strategy_file.parse("[trend]\nslow_ema = 13\n", "s.toml")  # its table's line


def test_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        strategy_file.load(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 2"):
        strategy_file.parse("[trend]\nadx_min = = 3\n", "s.toml")
    with pytest.raises(InvalidParams, match=r"line 1: trend must be a table"):
        strategy_file.parse("trend = 3\n", "s.toml")


def test_write_renders_a_file_that_reads_back_the_same(tmp_path: Path) -> None:
    params = DeskParams.defaults().with_values({"arbitrage.lookback": 150,
                                                "roster.arbitrage.model": "grok"})
    path = tmp_path / "strategies.toml"
    strategy_file.write(path, params)
    assert strategy_file.load(path) == params
    assert "lookback = 150\n" in path.read_text(encoding="utf-8")
    assert "# bars of the log-price spread its mean and std cover; an integer between 20 and " \
           "2000; default 100" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["strategies.toml"]  # no temporary left


# ------------------------------------------------------------------------------------- CLI


def test_strategies_check_exit_codes(tmp_path: Path) -> None:
    env = {**cli_env(f"sqlite:///{tmp_path / 'desk.db'}"), "DESK_CALLER_DIR": str(tmp_path)}
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[momentum]\nvolume_multiple = 2.5\n", encoding="utf-8")
    bad.write_text("[momentum]\n\nvolume_multiple = 0.5\n", encoding="utf-8")
    out = ok(run_cli(env, "strategies", "check", "good.toml"))
    assert "OK" in out and "1 differ from the defaults: momentum.volume_multiple" in out
    result = run_cli(env, "strategies", "check", "bad.toml")
    assert result.returncode == 1
    line = refused(result, "bad.toml, line 3: momentum.volume_multiple = 0.5", "between 1 and 10")
    assert str(bad) in line
    missing = run_cli(env, "strategies", "check", "missing.toml")
    assert missing.returncode == 1 and "not found" in refused(missing)
    assert "all at their defaults" in ok(run_cli(env, "strategies", "check"))  # the shipped file
    assert run_cli(env, "strategies", "verify").returncode == 2  # a usage error
    shown = json.loads(ok(run_cli(env, "strategies", "show", "--json")))
    assert len(shown["parameters"]) == len(DeskParams.defaults().flat())
    assert "adx_min" in ok(run_cli(env, "strategies", "show", "--agent", "trend"))


def test_a_cli_backtest_runs_on_the_file_it_is_given_and_refuses_a_bad_one(tmp_path: Path) -> None:
    env = {**cli_env(f"sqlite:///{tmp_path / 'desk.db'}"), "DESK_CALLER_DIR": str(tmp_path)}
    (tmp_path / "tuned.toml").write_text("[scalper]\ntime_stop_bars = 5\n", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("[scalper]\ntime_stop_bars = 0\n", encoding="utf-8")
    span = ("backtest", "--from", "2025-10-08", "--to", "2025-10-08", "--symbols", "BTCUSDT,ETHUSDT")
    out = ok(run_cli(env, *span, "--strategies", "tuned.toml"))
    assert "agent parameters: defaults except scalper.time_stop_bars = 5" in out
    refused(run_cli(env, *span, "--strategies", "bad.toml"), "line 2: scalper.time_stop_bars = 0",
            "between 1 and 500")
    listed = ok(run_cli(env, "backtest", "--list"))
    assert listed.count("[done]") == 1 and "[failed]" not in listed  # refused before any run
    session = json.loads(ok(run_cli(env, "backtest", "--list", "--json")))[0]["session_id"]
    shown = json.loads(ok(run_cli(env, "strategies", "show", "--session", str(session), "--json")))
    stop = next(r for r in shown["parameters"] if r["name"] == "scalper.time_stop_bars")
    assert shown["source"] == f"session {session}" and stop["value"] == 5 and stop["changed"]


# ----------------------------------------------------------------------------- the store


def test_the_migration_adds_agent_params_and_old_sessions_read_as_the_defaults(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
        assert "agent_params" not in {c["name"] for c in inspect(conn).get_columns("sessions")}
        conn.execute(text(
            "insert into sessions (name, status, mode, market_source, symbols, initial_capital, "
            "peak_equity, max_drawdown_pct, start_ms, clock_ms, decided_ms, last_review_ms, "
            "last_rebalance_ms, last_snapshot_ms, ticks, intent_version, created_ms) values "
            "('old', 'stopped', 'paper', 'replay', 'BTCUSDT', 1000, 1000, 0, 0, 0, 0, 0, 0, 0, 0, "
            "0, 0)"))
        command.upgrade(cfg, "head")
        assert conn.execute(text("select agent_params from sessions")).scalar_one() is None
    assert queries.session_params(engine, 1) == DeskParams.defaults()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
        assert "agent_params" not in {c["name"] for c in inspect(conn).get_columns("sessions")}
    engine.dispose()


def test_a_session_runs_on_the_parameters_it_stored_not_on_a_later_file(tmp_path: Path) -> None:
    path = tmp_path / "strategies.toml"
    first = DeskParams.defaults().with_values({"mean_reversion.z_entry": 2.4,
                                               "roster.momentum.risk_level": "medium"})
    strategy_file.write(path, first)
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, strategies_file=path)
    sid = create(engine, settings)
    with engine.connect() as conn:
        stored = conn.scalar(select(SessionRow.agent_params).where(SessionRow.id == sid))
        leverage = conn.execute(text("select max_leverage from agents where session_id = :s and "
                                     "key = 'momentum'"), {"s": sid}).scalar_one()
    assert stored == first.to_json() and leverage == 10
    strategy_file.write(path, DeskParams.defaults())  # an edit after the session started
    desk = build_desk(settings, engine, sid, None)
    try:
        assert desk.strategies["mean_reversion"].params.z_entry == 2.4  # type: ignore[attr-defined]
        assert desk.strategies["momentum"].spec.max_leverage == 10
        ledger_spec = next(a.spec for a in desk.ledger.agents.values() if a.spec.key == "momentum")
        assert ledger_spec.max_leverage == 10 and ledger_spec.risk_level.value == "medium"
    finally:
        desk.db.close()
    assert queries.session_params(engine, sid) == first
    engine.dispose()


# ------------------------------------------------------------------------------- backtests


def _trades(engine: Any, session_id: int) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(PositionRow.symbol, PositionRow.side, PositionRow.leverage, PositionRow.quantity,
                   PositionRow.entry_price, PositionRow.exit_price, PositionRow.realized_pnl,
                   PositionRow.fees, PositionRow.opened_ms, PositionRow.closed_ms,
                   PositionRow.close_reason)
            .join(SessionRow, SessionRow.id == PositionRow.session_id)
            .where(PositionRow.session_id == session_id).order_by(PositionRow.id))]


def test_stored_parameters_reproduce_a_backtest_and_a_change_changes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bt.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url)
    bt, data = build_params(start="2025-10-08", end="2025-10-10", data_dir=DATA, interval="15m",
                            symbols=["BTCUSDT", "ETHUSDT"], capital=50_000.0)
    tuned = DeskParams.defaults().with_values({
        "scalper.rsi_long_trigger": 45.0, "scalper.rsi_short_trigger": 55.0,
        "scalper.time_stop_bars": 4, "momentum.volume_multiple": 1.5})
    one = run_backtest(engine, settings, bt, data, agent_params=tuned)
    stored = queries.session_params(engine, one.session_id)
    assert stored == tuned
    again = run_backtest(engine, settings, bt, data, agent_params=stored)
    assert _trades(engine, one.session_id) == _trades(engine, again.session_id)
    assert _trades(engine, one.session_id)  # it traded
    default = run_backtest(engine, settings, bt, data)  # the shipped file: the defaults
    assert queries.session_params(engine, default.session_id) == DeskParams.defaults()
    assert _trades(engine, default.session_id) != _trades(engine, one.session_id)

    report = one.report
    assert report["agent_params"] == tuned.flat()
    assert report["agent_params_changed"] == sorted(tuned.differences(DeskParams.defaults()))
    assert default.report["agent_params_changed"] == []
    rows = queries.report_rows(report)
    params_rows = rows[rows["section"] == "agent_params"]
    assert len(params_rows) == len(tuned.flat())
    got = params_rows[(params_rows["name"] == "scalper") & (params_rows["figure"] == "time_stop_bars")]
    assert got["value"].tolist() == [4]
    note = rows[(rows["section"] == "notes") & (rows["figure"] == "parameters")]["value"].item()
    assert note.startswith("defaults except ") and "scalper.time_stop_bars = 4" in note
    engine.dispose()


def test_a_broken_strategy_file_refuses_new_sessions_and_backtests_and_records_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "strategies.toml"
    path.write_text("[arbitrage]\nz_exit = 2.5\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, strategies_file=path)
    with pytest.raises(InvalidParams, match=r"line 2: arbitrage\.z_exit: z_exit \(2\.5\) must be "
                                            r"below z_entry \(2\)"):
        create(engine, settings)
    with pytest.raises(InvalidParams, match=r"line 2: arbitrage\.z_exit"):
        service.start_backtest(engine, settings, start="2025-10-08", end="2025-10-08",
                               data_dir=None, interval="15m", symbols=["BTCUSDT", "ETHUSDT"],
                               capital=10_000.0, ceo=True)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SessionRow)) == 0
        assert conn.scalar(select(func.count()).select_from(BacktestRunRow)) == 0
    engine.dispose()


def test_a_sessions_chart_draws_the_thresholds_its_agents_run_on(tmp_path: Path) -> None:
    path = tmp_path / "strategies.toml"
    strategy_file.write(path, DeskParams.defaults().with_values({
        "mean_reversion.z_entry": 2.5, "trend.adx_min": 27.0, "momentum.volume_multiple": 3.0}))
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, strategies_file=path)
    sid = create(engine, settings)
    chart = queries.chart_analysis(settings, engine, sid, "BTCUSDT", "1h", 100)
    by_key = {v.study.key: v.study for v in chart.studies}
    assert by_key["bollinger"].label == "Bollinger 20 ±2.5σ"
    assert [level for level, _ in by_key["adx"].levels] == [27.0]
    assert {level for level, _ in by_key["zscore"].levels} == {2.5, 0.0, -2.5}
    assert chart.volume.study.lines[1] == ("volume_breakout", "3× 20-bar average")
    c = chart.candles.dropna(subset=["sma_20", "std_20", "vol_sma_20"])
    assert len(c) > 50
    assert (c["bb_upper"] == c["sma_20"] + 2.5 * c["std_20"]).all()
    assert (c["volume_breakout"] == 3.0 * c["vol_sma_20"]).all()
    engine.dispose()


@hyp_settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_point_of_the_search_space_is_accepted_or_refused_in_words(data: st.DataObject) -> None:
    """An optimiser samples inside the declared ranges: each point either builds the five
    strategies on exactly those values or is refused as ``InvalidParams`` by a cross-field rule
    (never a bare pydantic error, never a silent change)."""
    values: dict[str, Any] = {}
    for rows in search_space(list(STRATEGY_MODELS)).values():
        for r in rows:
            if r.kind == "choice":
                assert r.choices is not None
                values[r.name] = data.draw(st.sampled_from(r.choices))
            elif r.kind == "int":
                values[r.name] = data.draw(st.integers(int(r.low or 0), int(r.high or 0)))
            else:
                assert r.low is not None and r.high is not None
                values[r.name] = data.draw(st.floats(r.low, r.high, allow_nan=False))
    try:
        params = DeskParams.defaults().with_values(values)
    except InvalidParams as exc:
        assert exc.parameter in ("trend.fast_ema", "arbitrage.z_exit"), exc
        return
    flat = params.flat()
    assert all(flat[k] == v for k, v in values.items())
    built = {s.spec.key: s for s in build_strategies(params=params)}
    assert all(built[k].params == params.strategy(k) for k in STRATEGY_MODELS)  # type: ignore[attr-defined]


def test_an_unwritable_strategy_file_is_refused_in_words(tmp_path: Path) -> None:
    missing_dir = tmp_path / "nowhere" / "strategies.toml"
    with pytest.raises(ConfigError, match="cannot be written"):
        strategy_file.write(missing_dir, DeskParams.defaults())
