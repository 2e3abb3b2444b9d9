"""The five rule-based agents: they trade on real candles, every rule fires exactly where it should,
and they never peek at the future, open what another agent owns or break the two-position limit.

Real-data tests sample the bundled 15m year through ``tests/fake_market.py``; rule tests use small
hand-built candle series (a V for an EMA cross, a volume spike for a breakout, a sharp drop for a
stretch) and, for exact threshold arithmetic, a stub market with hand-set indicator rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.agents.arbitrage import ArbitrageStrategy
from core.agents.base import AgentView, HeldPosition, Strategy
from core.agents.common import MAX_OPEN_POSITIONS, num, pct
from core.agents.mean_reversion import MeanReversionStrategy
from core.agents.momentum import MomentumStrategy
from core.agents.params import (
    ArbitrageParams,
    MeanReversionParams,
    MomentumParams,
    ScalperParams,
    TrendParams,
)
from core.agents.roster import BY_KEY, ROSTER
from core.agents.scalper import ScalperStrategy
from core.agents.strategies import build_strategies
from core.agents.trend import TrendStrategy
from core.indicators import Features
from core.models import INTERVAL_MS, Action, AgentDecision, PositionSide, Proposal
from tests.fake_market import FakeMarket, real_frames, truncated

H = INTERVAL_MS["1h"]
Q = INTERVAL_MS["15m"]
START = 1_700_006_400_000  # a UTC day boundary, so resampled 1h/4h buckets are whole
DIGIT = re.compile(r"\d")
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT

# The roster trades momentum on 1h bars; the rule itself is tested on 15m synthetic candles.
MOMENTUM_15M = replace(BY_KEY["momentum"], timeframe="15m")


# ------------------------------------------------------------------------------------- helpers


def candles(
    closes: Iterable[float], *, step: int = H, volumes: Iterable[float] | None = None
) -> pd.DataFrame:
    """OHLCV bars from closes: each opens at the previous close, with a 0.2% wick either side."""
    c = np.asarray(list(closes), dtype=float)
    o = np.r_[c[0], c[:-1]]
    v = np.full(len(c), 100.0) if volumes is None else np.asarray(list(volumes), dtype=float)
    return pd.DataFrame(
        {
            "open_time_ms": START + np.arange(len(c), dtype=np.int64) * step,
            "open": o,
            "high": np.maximum(o, c) * 1.002,
            "low": np.minimum(o, c) * 0.998,
            "close": c,
            "volume": v,
        }
    )


def mirror(closes: np.ndarray) -> np.ndarray:
    """The same path upside down (a rally becomes a sell-off), still positive."""
    return closes.max() + closes.min() - closes


def close_of(bar: int, step: int = H) -> int:
    """The close time of bar number ``bar`` of a ``candles`` frame."""
    return START + (bar + 1) * step


def view(
    market: FakeMarket | StubMarket,
    now_ms: int,
    positions: Iterable[HeldPosition] = (),
    owned_elsewhere: Iterable[str] = (),
) -> AgentView:
    return AgentView(
        now_ms=now_ms,
        market=market,
        equity=10_000.0,
        positions={p.symbol: p for p in positions},
        owned_elsewhere=frozenset(owned_elsewhere),
    )


def held(
    symbol: str, side: PositionSide, price: float, opened_at_ms: int, group: str | None = None
) -> HeldPosition:
    stop = price * (0.9 if side is LONG else 1.1)
    return HeldPosition(symbol, side, 1.0, price, 5, stop, None, opened_at_ms, group)


def opens(decision: AgentDecision) -> list[Proposal]:
    return [p for p in decision.proposals if p.opens]


def stop_distance(p: Proposal) -> float:
    assert p.stop_price is not None
    return abs(p.stop_price - p.ref_price)


def tp_distance(p: Proposal) -> float:
    assert p.take_profit is not None
    return abs(p.take_profit - p.ref_price)


def closes(decision: AgentDecision) -> list[Proposal]:
    return [p for p in decision.proposals if p.action is Action.CLOSE]


def signal_bars(strategy: Strategy, market: FakeMarket, step: int, bars: range) -> list[int]:
    """The bar numbers at whose close the strategy proposes an entry (flat, nothing owned)."""
    return [
        b
        for b in bars
        if opens(strategy.decide(view(market.at(close_of(b, step)), close_of(b, step))))
    ]


class StubMarket:
    """A MarketView with hand-set indicator rows (previous, latest) for exact threshold tests."""

    def __init__(
        self,
        rows: Mapping[tuple[str, str], Mapping[str, tuple[float, float]]],
        prices: Mapping[str, float],
        base_interval: str = "15m",
    ) -> None:
        self._rows, self._prices = rows, prices
        self.symbols = tuple(prices)
        self.base_interval = base_interval

    def features(self, symbol: str, interval: str) -> Features | None:
        row = self._rows.get((symbol, interval))
        if row is None:
            return None
        return Features({k: np.array(v, dtype=float) for k, v in row.items()}, 1, START)

    def closes(self, symbol: str, interval: str, n: int) -> np.ndarray:
        return np.empty(0)

    def price(self, symbol: str) -> float:
        return self._prices[symbol]

    def funding_rate(self, symbol: str) -> float | None:
        return None


def assert_well_formed(p: Proposal, market: FakeMarket | StubMarket) -> None:
    """The invariants of DESIGN.md section 12: stop always set and on the correct side, etc."""
    spec = next(s for s in ROSTER if s.name == p.agent)
    assert p.ref_price == market.price(p.symbol)
    assert 0.0 <= p.confidence <= 1.0
    assert DIGIT.search(p.reasoning), p.reasoning
    if p.action is Action.CLOSE:
        return
    assert p.stop_price is not None
    sign = 1 if p.action is Action.OPEN_LONG else -1
    assert sign * (p.ref_price - p.stop_price) > 0, p
    if p.take_profit is not None:
        assert sign * (p.take_profit - p.ref_price) > 0, p
    assert 1 <= p.leverage <= spec.max_leverage
    assert 0.1 <= p.margin_fraction <= 0.35


# ------------------------------------------------------------------------------ registry, basics


def test_registry_builds_one_strategy_per_roster_entry() -> None:
    strategies = build_strategies()
    assert [s.spec.key for s in strategies] == [s.key for s in ROSTER]
    assert [type(s) for s in strategies] == [
        TrendStrategy,
        MomentumStrategy,
        MeanReversionStrategy,
        ScalperStrategy,
        ArbitrageStrategy,
    ]


def test_registry_names_an_unknown_key() -> None:
    from dataclasses import replace

    with pytest.raises(KeyError, match="no strategy for agent key 'oracle'"):
        build_strategies([replace(ROSTER[0], key="oracle")])


def test_numbers_read_well() -> None:
    assert num(63120.54) == "63,120.5"
    assert num(147.471) == "147.47"
    assert num(2.3456) == "2.346"
    assert num(0.012345) == "0.01235"
    assert num(float("nan")) == "n/a"
    assert pct(0.0123) == "+1.23%"


def test_fake_market_shows_no_bar_from_the_future() -> None:
    frame = candles(np.arange(100.0, 140.0), step=Q)  # 40 quarter-hours from 00:00
    now = START + 5 * H + 2 * Q  # 05:30: the 05:00 hour is still open
    market = FakeMarket({"BTCUSDT": frame}, now)
    hour, quarter, four = (market.features("BTCUSDT", i) for i in ("1h", "15m", "4h"))
    assert hour is not None and quarter is not None and four is not None
    assert hour.open_time_ms == START + 4 * H
    assert hour["close"] == frame["close"][19] and hour["high"] == frame["high"][16:20].max()
    assert quarter.open_time_ms == START + 5 * H + Q
    assert market.price("BTCUSDT") == frame["close"][21]
    assert four.open_time_ms == START
    assert list(market.closes("BTCUSDT", "1h", 3)) == list(frame["close"][[11, 15, 19]])
    assert market.at(START + Q - 1).features("BTCUSDT", "15m") is None


def test_every_strategy_says_warming_up_before_its_indicators_exist() -> None:
    market = FakeMarket(real_frames(), 0)
    for strategy in build_strategies():
        now = int(market.close_times()[12])
        decision = strategy.decide(view(market.at(now), now))
        assert not decision.proposals
        assert "warming up" in decision.note, (strategy.spec.key, decision.note)


# ----------------------------------------------------------------------------- the real 15m year


@pytest.fixture(scope="module")
def year() -> FakeMarket:
    return FakeMarket(real_frames(), 0)


@pytest.fixture(scope="module")
def year_decisions(year: FakeMarket) -> dict[str, list[tuple[int, AgentDecision]]]:
    """Every strategy, flat, at ~1,500 evenly spaced 15m closes over the year."""
    samples = [int(t) for t in year.close_times()[400::23]]
    return {
        s.spec.key: [(t, s.decide(view(year.at(t), t))) for t in samples]
        for s in build_strategies()
    }


@pytest.mark.parametrize("key", [s.key for s in ROSTER])
def test_each_strategy_opens_trades_on_the_real_year(
    key: str, year: FakeMarket, year_decisions: dict[str, list[tuple[int, AgentDecision]]]
) -> None:
    proposals = [(t, p) for t, d in year_decisions[key] for p in opens(d)]
    assert len(proposals) > 0
    for t, p in proposals:
        assert p.agent == BY_KEY[key].name
        assert_well_formed(p, year.at(t))
    assert {p.action for _, p in proposals} == {Action.OPEN_LONG, Action.OPEN_SHORT}


@pytest.mark.parametrize("key", [s.key for s in ROSTER])
def test_abstentions_quote_the_numbers(
    key: str, year_decisions: dict[str, list[tuple[int, AgentDecision]]]
) -> None:
    abstentions = [d for _, d in year_decisions[key] if not d.proposals]
    assert abstentions
    for d in abstentions:
        assert d.failure is None
        assert DIGIT.search(d.note), d.note
        assert d.note.count("; ") >= 2  # one part per symbol (or per pair)


def test_no_look_ahead(
    year: FakeMarket, year_decisions: dict[str, list[tuple[int, AgentDecision]]]
) -> None:
    """A decision at t is the same whether the market holds data up to t or the whole year."""
    times = {t for d in year_decisions.values() for t, dec in d if dec.proposals}
    chosen = sorted(times)[:: max(1, len(times) // 4)][:4]
    chosen.append(year_decisions["trend"][-1][0])
    frames = real_frames()
    for t in chosen:
        cut = FakeMarket(truncated(frames, t, "15m"), t)
        for strategy in build_strategies():
            assert strategy.decide(view(cut, t)) == strategy.decide(view(year.at(t), t))


@pytest.mark.parametrize("key", [s.key for s in ROSTER])
def test_walk_respects_ownership_and_the_position_limit(key: str, year: FakeMarket) -> None:
    """Book every proposal for a month of real bars: the agent never opens a symbol someone else
    owns or one it holds, never holds more than two, closes only what it holds, and exits by its
    own rule at least once."""
    strategy = build_strategies([BY_KEY[key]])[0]
    step = Q if key == "scalper" else BY_KEY[key].timeframe_ms
    start = int(year.close_times()[600])
    owned = {"SOLUSDT"}
    positions: dict[str, HeldPosition] = {}
    exits = 0
    for now in range(start, start + 30 * 96 * Q, step):
        decision = strategy.decide(view(year.at(now), now, positions.values(), owned))
        for p in decision.proposals:
            if p.action is Action.CLOSE:
                assert p.symbol in positions
                del positions[p.symbol]
                exits += 1
            else:
                assert p.side is not None
                assert p.symbol not in positions and p.symbol not in owned
                positions[p.symbol] = held(p.symbol, p.side, p.ref_price, now, p.group)
        assert len(positions) <= MAX_OPEN_POSITIONS
    assert exits > 0


def test_symbols_owned_elsewhere_are_never_opened(
    year: FakeMarket, year_decisions: dict[str, list[tuple[int, AgentDecision]]]
) -> None:
    strategies = {s.spec.key: s for s in build_strategies()}
    for key, decisions in year_decisions.items():
        for t, d in [(t, d) for t, d in decisions if d.proposals][:20]:
            taken = {p.symbol for p in d.proposals}
            again = strategies[key].decide(view(year.at(t), t, owned_elsewhere=taken))
            assert not taken & {p.symbol for p in opens(again)}
            assert "held by another agent" in again.note or "a leg is already held" in again.note


# ------------------------------------------------------------------------------------------ trend


def trend_path() -> np.ndarray:
    """300 hours of steady decline, then a steep rally: one EMA20/EMA50 cross, in a strong trend."""
    return np.r_[200 - 0.3 * np.arange(300), 110.3 + 0.8 * np.arange(60)]


@pytest.mark.parametrize(("path", "side"), [(trend_path(), LONG), (mirror(trend_path()), SHORT)])
def test_trend_enters_on_the_cross_bar_exactly(path: np.ndarray, side: PositionSide) -> None:
    market = FakeMarket({"BTCUSDT": candles(path)}, 0, base_interval="1h")
    strategy = TrendStrategy(BY_KEY["trend"])
    bars = signal_bars(strategy, market, H, range(60, len(path)))
    assert bars == [317]
    decision = strategy.decide(view(market.at(close_of(317)), close_of(317)))
    (p,) = decision.proposals
    assert p.side is side
    assert_well_formed(p, market.at(close_of(317)))
    assert "crossed" in p.reasoning and "4h ADX" in p.reasoning
    before = strategy.decide(view(market.at(close_of(316)), close_of(316)))
    assert "no cross" in before.note


def test_trend_opens_one_position_per_decision() -> None:
    frame = candles(trend_path())
    market = FakeMarket({"BTCUSDT": frame, "ETHUSDT": frame}, 0, base_interval="1h")
    decision = TrendStrategy(BY_KEY["trend"]).decide(view(market.at(close_of(317)), close_of(317)))
    assert len(decision.proposals) == 1
    assert "skipped" in decision.note


def test_trend_closes_on_the_opposite_cross() -> None:
    path = np.r_[trend_path(), 157.5 - 1.0 * np.arange(40)]
    market = FakeMarket({"BTCUSDT": candles(path)}, 0, base_interval="1h")
    strategy = TrendStrategy(BY_KEY["trend"])
    position = held("BTCUSDT", LONG, 123.9, close_of(317))
    outcomes = [
        bool(closes(strategy.decide(view(market.at(close_of(b)), close_of(b), [position]))))
        for b in range(318, len(path))
    ]
    first = outcomes.index(True) + 318
    f = market.at(close_of(first)).features("BTCUSDT", "1h")
    g = market.at(close_of(first - 1)).features("BTCUSDT", "1h")
    assert f is not None and g is not None
    assert f["ema_20"] < f["ema_50"] and g["ema_20"] >= g["ema_50"]
    held_note = strategy.decide(
        view(market.at(close_of(first - 1)), close_of(first - 1), [position])
    )
    assert "holding long" in held_note.note


def trend_stub(adx: float, trend_ema: float) -> StubMarket:
    rows = {
        ("BTCUSDT", "1h"): {
            "ema_20": (99.0, 101.0),
            "ema_50": (100.0, 100.0),
            "atr_14": (2.0, 2.0),
        },
        ("BTCUSDT", "4h"): {"adx_14": (adx, adx), "ema_20": (trend_ema, trend_ema)},
    }
    return StubMarket(rows, {"BTCUSDT": 102.0})


def test_trend_filter_thresholds_and_bracket() -> None:
    strategy = TrendStrategy(BY_KEY["trend"])
    weak = strategy.decide(view(trend_stub(19.9, 95.0), START))
    assert not weak.proposals and "4h ADX 19.9 < 20" in weak.note
    against = strategy.decide(view(trend_stub(30.0, 103.0), START))
    assert not against.proposals and "not above the 4h EMA20 103.00" in against.note
    (p,) = strategy.decide(view(trend_stub(20.0, 95.0), START)).proposals
    assert p.action is Action.OPEN_LONG
    assert p.stop_price == pytest.approx(102.0 - TrendParams().stop_atr * 2.0)
    assert p.take_profit == pytest.approx(102.0 + TrendParams().tp_atr * 2.0)
    assert p.trail_callback is None  # off by default for trend (bench/trailing_stops.py)


def test_trend_with_a_trailing_stop_drops_its_take_profit() -> None:
    params = TrendParams(trail_atr=3.0)
    (p,) = TrendStrategy(BY_KEY["trend"], params).decide(
        view(trend_stub(20.0, 95.0), START)).proposals
    # 3 × ATR 2.0 at 102 = 5.9%: kept inside the venue's 5% maximum; armed at once
    assert p.take_profit is None and p.trail_activation is None
    assert p.trail_callback == pytest.approx(0.05)
    assert "Trailing stop 5.00% (3×ATR14), armed at once" in p.reasoning


def test_a_trail_armed_in_profit_and_kept_beside_the_take_profit() -> None:
    params = TrendParams(trail_atr=1.0, trail_activation_atr=1.5, trail_replaces_tp=False)
    (p,) = TrendStrategy(BY_KEY["trend"], params).decide(
        view(trend_stub(20.0, 95.0), START)).proposals
    assert p.trail_activation == pytest.approx(102.0 + 1.5 * 2.0)
    assert p.take_profit == pytest.approx(102.0 + TrendParams().tp_atr * 2.0)


# --------------------------------------------------------------------------------------- momentum


def momentum_path() -> tuple[np.ndarray, list[float]]:
    """A quiet range for 60 bars, a breakout bar at 3x volume (bar 60), then a fade."""
    closes_ = np.r_[100 + 0.3 * np.sin(np.arange(60) / 2), 101.5, 101.0, 100.5, 100.0, 99.6, 99.3]
    volumes = [100.0] * 60 + [300.0] + [100.0] * 5
    return closes_, volumes


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_momentum_breakout_enters_exactly_on_the_breakout_bar(side: PositionSide) -> None:
    path, volumes = momentum_path()
    path = path if side is LONG else mirror(path)
    market = FakeMarket({"ETHUSDT": candles(path, step=Q, volumes=volumes)}, 0)
    strategy = MomentumStrategy(MOMENTUM_15M)
    assert signal_bars(strategy, market, Q, range(20, len(path))) == [60]
    (p,) = strategy.decide(view(market.at(close_of(60, Q)), close_of(60, Q))).proposals
    assert p.side is side
    assert "volume 3.0× average" in p.reasoning
    f = market.at(close_of(60, Q)).features("ETHUSDT", "15m")
    assert f is not None
    assert stop_distance(p) == pytest.approx(MomentumParams().stop_atr * f["atr_14"])
    trail_atr = MomentumParams().trail_atr
    assert trail_atr > 0 and p.take_profit is None  # the trail replaces it
    assert p.trail_callback == pytest.approx(min(0.05, max(
        0.001, trail_atr * f["atr_14"] / p.ref_price)))


def test_momentum_needs_the_volume_surge() -> None:
    path, volumes = momentum_path()
    volumes[60] = 200.0  # exactly 2x the average: not more than it
    market = FakeMarket({"ETHUSDT": candles(path, step=Q, volumes=volumes)}, 0)
    decision = MomentumStrategy(MOMENTUM_15M).decide(
        view(market.at(close_of(60, Q)), close_of(60, Q))
    )
    assert not decision.proposals
    assert "volume 2.0× average (needs > 2×)" in decision.note


def test_momentum_exits_when_roc_turns_against_the_position() -> None:
    path, volumes = momentum_path()
    market = FakeMarket({"ETHUSDT": candles(path, step=Q, volumes=volumes)}, 0)
    strategy = MomentumStrategy(MOMENTUM_15M)
    position = held("ETHUSDT", LONG, 101.5, close_of(60, Q))
    exits = [
        b
        for b in range(61, len(path))
        if closes(strategy.decide(view(market.at(close_of(b, Q)), close_of(b, Q), [position])))
    ]
    assert exits[0] == 63  # ROC10 +0.3% at bar 62, -0.3% at bar 63


# --------------------------------------------------------------------------------- mean reversion


def reversion_path() -> np.ndarray:
    """A quiet range, three sharp drops (bars 60-62), then a rally back through the mean."""
    base = 100 + 0.3 * np.sin(np.arange(60) / 2)
    last = base[-1]
    return np.r_[base, last - 1.5, last - 3.0, last - 4.5, last - 3.0, last - 1.5, last, last + 1.0]


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_mean_reversion_enters_when_stretched_and_targets_the_mean(side: PositionSide) -> None:
    path = reversion_path() if side is LONG else mirror(reversion_path())
    market = FakeMarket({"SOLUSDT": candles(path)}, 0, base_interval="1h")
    strategy = MeanReversionStrategy(BY_KEY["mean_reversion"])
    assert signal_bars(strategy, market, H, range(20, len(path))) == [60, 61, 62]
    at = market.at(close_of(60))
    (p,) = strategy.decide(view(at, close_of(60))).proposals
    f = at.features("SOLUSDT", "1h")
    assert f is not None
    assert p.side is side
    assert p.take_profit == pytest.approx(f["sma_20"])
    assert stop_distance(p) == pytest.approx(MeanReversionParams().stop_std * f["std_20"])
    assert "standard deviations" in p.reasoning


def test_mean_reversion_exits_back_at_the_mean() -> None:
    market = FakeMarket({"SOLUSDT": candles(reversion_path())}, 0, base_interval="1h")
    strategy = MeanReversionStrategy(BY_KEY["mean_reversion"])
    position = held("SOLUSDT", LONG, 98.2, close_of(60))
    exits = [
        b
        for b in range(61, 67)
        if closes(strategy.decide(view(market.at(close_of(b)), close_of(b), [position])))
    ]
    assert exits == [65, 66]  # close 99.72 vs mean 99.22 at bar 65; 98.22 < 99.23 at bar 64


def test_mean_reversion_needs_rsi_to_agree() -> None:
    rows = {("SOLUSDT", "1h"): {
        "close": (90.0, 90.0), "sma_20": (100.0, 100.0), "std_20": (4.0, 4.0),
        "zscore_20": (-2.5, -2.5), "rsi_14": (31.0, 31.0),
    }}  # fmt: skip
    decision = MeanReversionStrategy(BY_KEY["mean_reversion"]).decide(
        view(StubMarket(rows, {"SOLUSDT": 90.0}), START)
    )
    assert not decision.proposals and "z-score -2.50, RSI14 31.0" in decision.note


# ---------------------------------------------------------------------------------------- scalper


def scalp_path() -> np.ndarray:
    """A choppy uptrend, one sharp down bar (RSI7 < 40, bar 41), then the rebound (bar 42)."""
    steps = [1.0, -0.5] * 20 + [-2.8, 1.5] + [1.0] * 10
    return 100 + np.cumsum(np.r_[0.0, steps])


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_scalper_enters_on_the_pullback_turn(side: PositionSide) -> None:
    path = scalp_path() if side is LONG else mirror(scalp_path())
    market = FakeMarket({"BTCUSDT": candles(path, step=Q)}, 0)
    strategy = ScalperStrategy(BY_KEY["scalper"])
    assert signal_bars(strategy, market, Q, range(14, len(path))) == [42]
    (p,) = strategy.decide(view(market.at(close_of(42, Q)), close_of(42, Q))).proposals
    f = market.at(close_of(42, Q)).features("BTCUSDT", "15m")
    assert f is not None
    assert p.side is side
    assert stop_distance(p) == pytest.approx(ScalperParams().stop_atr * f["atr_14"])
    assert tp_distance(p) == pytest.approx(ScalperParams().tp_atr * f["atr_14"])


def test_scalper_runs_on_the_fastest_timeframe() -> None:
    market = FakeMarket(real_frames("1m"), 0, base_interval="1m")
    strategy = ScalperStrategy(BY_KEY["scalper"])
    reasons = [
        p.reasoning
        for t in market.close_times()[100::7]
        for p in strategy.decide(view(market.at(int(t)), int(t))).proposals
    ]
    assert reasons and all(" 1m EMA5" in r for r in reasons)


def test_scalper_time_stop_after_eight_bars() -> None:
    market = FakeMarket({"BTCUSDT": candles(scalp_path(), step=Q)}, 0)
    strategy = ScalperStrategy(BY_KEY["scalper"])
    opened = close_of(42, Q)
    seven, eight = opened + 7 * Q, opened + ScalperParams().time_stop_bars * Q
    position = held("BTCUSDT", LONG, 108.7, opened)
    waiting = strategy.decide(view(market.at(seven), seven, [position]))
    assert not waiting.proposals and "7 of 8 15m bars" in waiting.note
    (p,) = strategy.decide(view(market.at(eight), eight, [position])).proposals
    assert p.action is Action.CLOSE and p.symbol == "BTCUSDT" and "time stop" in p.reasoning


# -------------------------------------------------------------------------------------- arbitrage


def pair_market(jump: float, funding: Mapping[str, float | None] | None = None) -> FakeMarket:
    """ETH tracks BTC with a tiny wobble for 120 hours; at bar 120 ETH jumps by ``jump`` (log)."""
    n = 130
    btc = 60_000 * np.exp(0.02 * np.sin(np.arange(n) / 7))
    wobble = 0.001 * np.sin(np.arange(n) / 3)
    wobble[120:122] += jump
    eth = btc / 20 * np.exp(wobble)
    frames = {"BTCUSDT": candles(btc), "ETHUSDT": candles(eth)}
    return FakeMarket(frames, 0, base_interval="1h", funding=funding)


def test_arbitrage_opens_two_opposite_legs_in_one_group() -> None:
    market = pair_market(0.02).at(close_of(120))
    decision = ArbitrageStrategy(BY_KEY["arbitrage"]).decide(view(market, close_of(120)))
    legs = {p.symbol: p for p in decision.proposals}
    assert set(legs) == {"BTCUSDT", "ETHUSDT"}
    assert legs["ETHUSDT"].action is Action.OPEN_SHORT  # ETH jumped: the rich leg
    assert legs["BTCUSDT"].action is Action.OPEN_LONG
    assert legs["ETHUSDT"].group == legs["BTCUSDT"].group == f"pair-BTCUSDT-ETHUSDT-{close_of(120)}"
    for p in legs.values():
        assert_well_formed(p, market)
        assert p.margin_fraction == ArbitrageParams().leg_margin
        assert "not risk-free" in p.reasoning
        assert "Funding" not in p.reasoning


def test_arbitrage_abstains_inside_the_band_and_when_a_leg_is_held() -> None:
    strategy = ArbitrageStrategy(BY_KEY["arbitrage"])
    quiet = pair_market(0.0).at(close_of(120))
    decision = strategy.decide(view(quiet, close_of(120)))
    assert not decision.proposals and re.search(
        r"BTCUSDT/ETHUSDT: log-spread z [+-]\d\.\d\d", decision.note
    )
    busy = pair_market(0.02).at(close_of(120))
    taken = strategy.decide(view(busy, close_of(120), owned_elsewhere={"ETHUSDT"}))
    assert not taken.proposals and "a leg is already held" in taken.note


def test_arbitrage_mentions_funding_when_rates_differ() -> None:
    market = pair_market(0.02, {"BTCUSDT": 0.0001, "ETHUSDT": 0.0004}).at(close_of(120))
    decision = ArbitrageStrategy(BY_KEY["arbitrage"]).decide(view(market, close_of(120)))
    assert decision.proposals
    assert (
        "Funding ETHUSDT +0.0400% vs BTCUSDT +0.0100%: the pair collects"
        in decision.proposals[0].reasoning
    )


def test_arbitrage_closes_both_legs_when_the_spread_reverts() -> None:
    market = pair_market(0.02)
    strategy = ArbitrageStrategy(BY_KEY["arbitrage"])
    group = f"pair-BTCUSDT-ETHUSDT-{close_of(120)}"
    legs = [
        held("ETHUSDT", SHORT, 3000.0, close_of(120), group),
        held("BTCUSDT", LONG, 60_000.0, close_of(120), group),
    ]
    still = strategy.decide(view(market.at(close_of(121)), close_of(121), legs))
    assert not still.proposals and "holding pair, z -" in still.note
    reverted = [
        b
        for b in range(121, 130)
        if closes(strategy.decide(view(market.at(close_of(b)), close_of(b), legs)))
    ]
    assert reverted[0] == 122  # the jump lasts bars 120-121
    decision = strategy.decide(view(market.at(close_of(reverted[0])), close_of(reverted[0]), legs))
    assert {p.symbol for p in closes(decision)} == {"BTCUSDT", "ETHUSDT"}
    assert all(p.group == group for p in decision.proposals)


def test_arbitrage_closes_a_leg_left_alone() -> None:
    market = pair_market(0.02).at(close_of(121))
    leg = held("ETHUSDT", SHORT, 3000.0, close_of(120), "pair-x")
    (p,) = (
        ArbitrageStrategy(BY_KEY["arbitrage"]).decide(view(market, close_of(121), [leg])).proposals
    )
    assert p.action is Action.CLOSE and p.symbol == "ETHUSDT" and "partner is gone" in p.reasoning
