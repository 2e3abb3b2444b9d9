"""Indicators are causal and right, and the replay feed never shows an agent the future.

``core.indicators.compute`` runs once over a whole recorded history, so any look-ahead (a centred
window, a ``shift(-1)``, a resample bucket that is still open) would silently leak the future into
every backtest. The checks: recomputing on a prefix gives the same values; hand-computed values on
a small series; and the replay cursor serves only bars that have closed by its now.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import PROJECT_ROOT
from core.errors import FeedError, FeedExhausted
from core.feeds.replay import ReplayFeed, load_replay_data, read_candles
from core.indicators import COLUMNS, compute

KLINES = PROJECT_ROOT / "data" / "klines"
M15 = 15 * 60_000
H1 = 60 * 60_000
OHLCV = ["open", "high", "low", "close", "volume"]


def _close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=what)


# ---------------------------------------------------------------------- causality on real data
@pytest.fixture(scope="module")
def btc_1h() -> pd.DataFrame:
    return pd.read_csv(KLINES / "BTCUSDT-1h.csv", nrows=3000)


@pytest.fixture(scope="module")
def btc_1h_full(btc_1h: pd.DataFrame) -> dict[str, np.ndarray]:
    return compute(btc_1h)


def test_compute_returns_every_column_at_full_length(
    btc_1h: pd.DataFrame, btc_1h_full: dict[str, np.ndarray]
) -> None:
    assert set(btc_1h_full) == set(COLUMNS)
    for name, values in btc_1h_full.items():
        assert len(values) == len(btc_1h), name
        assert np.isfinite(values[100:]).all(), f"{name} still has gaps after 100 bars of warm-up"


@pytest.mark.parametrize("cut", [1, 14, 20, 21, 50, 51, 333, 1234, 2999])
def test_prefix_gives_the_same_values(
    btc_1h: pd.DataFrame, btc_1h_full: dict[str, np.ndarray], cut: int
) -> None:
    """Row i computed from bars 0..i only equals row i computed from the whole series."""
    prefix = compute(btc_1h.iloc[:cut].copy())
    for name in COLUMNS:
        _close(prefix[name][-1], btc_1h_full[name][cut - 1], f"{name}, last row at cut {cut}")
        _close(prefix[name], btc_1h_full[name][:cut], f"{name}, rows before cut {cut}")


@pytest.mark.parametrize("cut", [30, 700])
def test_rewriting_the_future_changes_nothing_before_it(
    btc_1h: pd.DataFrame, btc_1h_full: dict[str, np.ndarray], cut: int
) -> None:
    changed = btc_1h.copy()
    changed.loc[cut:, ["open", "high", "low", "close"]] *= 3.0
    changed.loc[cut:, "volume"] *= 100.0
    after = compute(changed)
    for name in COLUMNS:
        _close(after[name][:cut], btc_1h_full[name][:cut], f"{name} before bar {cut}")
        assert not np.allclose(after["close"][cut:], btc_1h_full["close"][cut:])


# ---------------------------------------------------------------------- hand-checked values
def _frame(close: list[float], high: list[float], low: list[float], volume: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": volume})


def test_rolling_values_on_one_to_twentyfive() -> None:
    close = [float(i) for i in range(1, 26)]
    out = compute(_frame(close, [c + 1 for c in close], [c - 1 for c in close], [10.0] * 25))
    assert np.isnan(out["sma_20"][:19]).all() and np.isnan(out["std_20"][:19]).all()
    assert out["sma_20"][19] == pytest.approx(10.5)  # mean of 1..20
    assert out["std_20"][19] == pytest.approx(math.sqrt(33.25))  # population: (20²-1)/12
    assert out["zscore_20"][19] == pytest.approx(9.5 / math.sqrt(33.25))
    assert out["sma_20"][24] == pytest.approx(15.5)  # mean of 6..25
    assert out["roc_10"][10] == pytest.approx(10.0)  # 11 / 1 - 1
    assert out["roc_10"][24] == pytest.approx(25 / 15 - 1)
    assert np.isnan(out["roc_10"][:10]).all()
    assert np.isnan(out["hh_20"][:20]).all()  # needs 20 *prior* bars
    assert out["hh_20"][20] == pytest.approx(21.0)  # highs of bars 0..19 are 2..21; bar 20's 22 excluded
    assert out["ll_20"][20] == pytest.approx(0.0)  # lows of bars 0..19 are 0..19
    assert out["ll_20"][24] == pytest.approx(4.0)  # lows of bars 4..23 are 4..23
    assert out["vol_sma_20"][20] == pytest.approx(10.0)


def _synthetic(n: int = 40) -> pd.DataFrame:
    close = [100 + ((i * 7) % 11) - 5 + 0.5 * i for i in range(n)]
    high = [c + 1 + (i % 3) for i, c in enumerate(close)]
    low = [c - 1 - (i % 2) for i, c in enumerate(close)]
    volume = [10.0 + (i % 5) * 3 for i in range(n)]
    high[30], low[30], volume[30] = 1_000.0, 1.0, 10_000.0  # a spike on bar 30 only
    return _frame(close, high, low, volume)


def test_rolling_values_match_a_hand_computation() -> None:
    frame = _synthetic()
    c, h, lo, v = (frame[k].tolist() for k in ("close", "high", "low", "volume"))
    out = compute(frame)
    for i in range(len(c)):
        if i >= 19:
            window = c[i - 19 : i + 1]
            mean, sd = statistics.fmean(window), statistics.pstdev(window)
            assert out["sma_20"][i] == pytest.approx(mean), i
            assert out["std_20"][i] == pytest.approx(sd), i
            assert out["zscore_20"][i] == pytest.approx((c[i] - mean) / sd), i
        else:
            assert math.isnan(out["sma_20"][i]) and math.isnan(out["zscore_20"][i]), i
        if i >= 10:
            assert out["roc_10"][i] == pytest.approx(c[i] / c[i - 10] - 1), i
        if i >= 20:  # prior bars i-20..i-1, never the current one
            assert out["hh_20"][i] == pytest.approx(max(h[i - 20 : i])), i
            assert out["ll_20"][i] == pytest.approx(min(lo[i - 20 : i])), i
            assert out["vol_sma_20"][i] == pytest.approx(statistics.fmean(v[i - 20 : i])), i
        else:
            assert math.isnan(out["hh_20"][i]) and math.isnan(out["vol_sma_20"][i]), i
    # the spike on bar 30 shows from bar 31 on, not on bar 30 itself
    assert out["hh_20"][30] < 1_000 and out["hh_20"][31] == 1_000
    assert out["ll_20"][30] > 1 and out["ll_20"][31] == 1
    assert out["vol_sma_20"][30] < 100 and out["vol_sma_20"][31] > 500


def test_rsi_of_a_strictly_rising_series_is_100() -> None:
    close = [100.0 + 1.5 * i for i in range(40)]
    out = compute(_frame(close, [c + 1 for c in close], [c - 1 for c in close], [1.0] * 40))
    for n in (7, 14):
        rsi = out[f"rsi_{n}"]
        assert np.isnan(rsi[:n]).all(), f"rsi_{n} needs {n} price changes"
        np.testing.assert_array_equal(rsi[n:], 100.0)


def test_rsi_of_a_strictly_falling_series_is_0() -> None:
    close = [200.0 - 1.5 * i for i in range(40)]
    out = compute(_frame(close, [c + 1 for c in close], [c - 1 for c in close], [1.0] * 40))
    np.testing.assert_allclose(out["rsi_14"][14:], 0.0, atol=1e-9)


def test_atr_of_constant_range_bars_is_the_range() -> None:
    # a slow drift (0.1 per bar) inside a 2.0 range: every true range is exactly the bar's range
    close = [50.0 + 0.1 * i for i in range(40)]
    out = compute(_frame(close, [c + 1.0 for c in close], [c - 1.0 for c in close], [1.0] * 40))
    atr = out["atr_14"]
    assert np.isnan(atr[:13]).all()
    np.testing.assert_allclose(atr[13:], 2.0, rtol=1e-12)


# ---------------------------------------------------------------------- replay feed
@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3,000 15m candles of two symbols (a small copy keeps the test fast)."""
    folder = tmp_path_factory.mktemp("klines")
    for symbol in ("BTCUSDT", "ETHUSDT"):
        pd.read_csv(KLINES / f"{symbol}-15m.csv", nrows=3000).to_csv(folder / f"{symbol}-15m.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def base(replay_dir: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_csv(replay_dir / f"{s}-15m.csv") for s in ("BTCUSDT", "ETHUSDT")}


def _feed(replay_dir: Path, start_ms: int, bars_per_tick: int = 1) -> ReplayFeed:
    data = load_replay_data(replay_dir, "15m", ("BTCUSDT", "ETHUSDT"))
    return ReplayFeed(data, start_ms=start_ms, bars_per_tick=bars_per_tick)


def _resample_1h(frame: pd.DataFrame) -> pd.DataFrame:
    bucket = frame["open_time_ms"] // H1 * H1
    g = frame.groupby(bucket)
    return pd.DataFrame({"open_time_ms": g["open_time_ms"].first() // H1 * H1, "open": g["open"].first(),
                         "high": g["high"].max(), "low": g["low"].min(), "close": g["close"].last(),
                         "volume": g["volume"].sum()}).reset_index(drop=True)


# engine times to seek to, as offsets from the first 15m open: on the hour, a quarter, half and
# three quarters past, and between two closes
SEEK_OFFSETS_MS = [
    200 * H1, 200 * H1 + M15, 200 * H1 + 2 * M15, 200 * H1 + 3 * M15, 200 * H1 + 7 * 60_000,
    500 * H1 + 2 * M15 + 1, 740 * H1,
]


@pytest.mark.parametrize("offset", SEEK_OFFSETS_MS)
def test_replay_serves_only_closed_bars(replay_dir: Path, base: dict[str, pd.DataFrame], offset: int) -> None:
    first_open = int(base["BTCUSDT"]["open_time_ms"].iloc[0])
    first_open -= first_open % H1  # the data starts on an hour; keep the offsets meaningful anyway
    target = first_open + offset
    feed = _feed(replay_dir, start_ms=first_open + 2 * H1)
    feed.seek(target)
    now = feed.now_ms()
    assert now <= target and now > target - M15, "now is the close of the newest bar closed by the seek time"
    for symbol, frame in base.items():
        closed = frame[frame["open_time_ms"] + M15 <= now]

        f15 = feed.features(symbol, "15m")
        assert f15 is not None
        assert f15.open_time_ms + M15 == now, "the base row is the bar that closed at now"
        expected = compute(closed.reset_index(drop=True))
        for name in COLUMNS:
            _close(np.array(f15[name]), expected[name][-1], f"{symbol} 15m {name} at {now}")

        f1h = feed.features(symbol, "1h")
        assert f1h is not None
        assert f1h.open_time_ms + H1 <= now, "a 1h bar is served before it closed"
        assert f1h.open_time_ms + 2 * H1 > now, "the newest closed 1h bar is not the one served"
        hours = _resample_1h(closed)
        hours = hours[hours["open_time_ms"] + H1 <= now].reset_index(drop=True)  # drop the open hour
        assert int(hours["open_time_ms"].iloc[-1]) == f1h.open_time_ms
        expected_1h = compute(hours)
        for name in COLUMNS:
            _close(np.array(f1h[name]), expected_1h[name][-1], f"{symbol} 1h {name} at {now}")

        candles = feed.candles(symbol, "1h", 10)
        assert int(candles["open_time_ms"].iloc[-1]) + H1 <= now
        assert feed.price(symbol) == pytest.approx(float(closed["close"].iloc[-1]))


@pytest.mark.parametrize("bars_per_tick", [1, 4, 7])
def test_step_serves_the_next_bars_exactly(
    replay_dir: Path, base: dict[str, pd.DataFrame], bars_per_tick: int
) -> None:
    first_open = int(base["BTCUSDT"]["open_time_ms"].iloc[0])
    feed = _feed(replay_dir, start_ms=first_open + 100 * M15, bars_per_tick=bars_per_tick)
    for _ in range(3):
        before = feed.now_ms()
        step = feed.step()
        assert step.now_ms == feed.now_ms() == before + bars_per_tick * M15
        for symbol, frame in base.items():
            rows = frame[(frame["open_time_ms"] >= before) & (frame["open_time_ms"] < step.now_ms)]
            assert len(rows) == bars_per_tick
            served = [(b.open_time_ms, b.open, b.high, b.low, b.close, b.volume) for b in step.bars[symbol]]
            wanted = [(int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
                      for r in rows.itertuples(index=False)]
            assert served == wanted
            assert step.bars[symbol][-1].open_time_ms + M15 == step.now_ms
            assert step.prices[symbol] == wanted[-1][4]
            assert feed.features(symbol, "15m").open_time_ms == wanted[-1][0]  # type: ignore[union-attr]


def test_step_at_the_end_serves_what_is_left_then_stops(replay_dir: Path) -> None:
    data = load_replay_data(replay_dir, "15m", ("BTCUSDT", "ETHUSDT"))
    feed = ReplayFeed(data, start_ms=int(data.open_ms[-1]) - M15, bars_per_tick=4)  # two bars left
    step = feed.step()
    assert [b.open_time_ms for b in step.bars["BTCUSDT"]] == [int(data.open_ms[-1]) - M15, int(data.open_ms[-1])]
    assert feed.now_ms() == feed.last_ms()
    with pytest.raises(FeedExhausted):
        feed.step()


def test_seek_outside_the_data_is_refused(replay_dir: Path) -> None:
    data = load_replay_data(replay_dir, "15m", ("BTCUSDT", "ETHUSDT"))
    with pytest.raises(FeedError):
        ReplayFeed(data, start_ms=int(data.open_ms[0]))  # the first bar has not closed yet
    feed = ReplayFeed(data, start_ms=int(data.open_ms[0]) + M15)
    with pytest.raises(FeedExhausted):
        feed.seek(feed.last_ms() + 1)


# ---------------------------------------------------------------------- read_candles refuses bad files
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
GOOD_ROWS = [[T0 + i * H1, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0 + i] for i in range(6)]
HEADER = ["open_time_ms", "open", "high", "low", "close", "volume"]


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _with(index: int, column: str, value: object) -> list[list[object]]:
    rows: list[list[object]] = [list(r) for r in GOOD_ROWS]
    rows[index][HEADER.index(column)] = value
    return rows


def test_read_candles_accepts_a_good_file(tmp_path: Path) -> None:
    frame = read_candles(_write(tmp_path / "BTCUSDT-1h.csv", HEADER, GOOD_ROWS), "1h")
    assert frame["open_time_ms"].tolist() == [r[0] for r in GOOD_ROWS]
    assert frame["close"].tolist() == [r[4] for r in GOOD_ROWS]


# file line numbers: line 1 is the header, so data row i sits on line i + 2
BAD_FILES = {
    "unsorted": ([*GOOD_ROWS[:2], GOOD_ROWS[3], GOOD_ROWS[2], *GOOD_ROWS[4:]], 5),  # 02:00 after 03:00
    "duplicate": (_with(2, "open_time_ms", T0 + 1 * H1), 4),
    "gap": ([r for i, r in enumerate(GOOD_ROWS) if i != 2], 4),  # 00:00, 01:00, 03:00
    "non-numeric": (_with(3, "close", "abc"), 5),
    "empty-cell": (_with(1, "volume", ""), 3),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_read_candles_names_the_file_and_the_row(tmp_path: Path, case: str) -> None:
    rows, line = BAD_FILES[case]
    path = _write(tmp_path / "BTCUSDT-1h.csv", HEADER, rows)
    with pytest.raises(FeedError) as err:
        read_candles(path, "1h")
    message = str(err.value)
    assert str(path) in message, message
    assert f"row {line}" in message, message


def test_read_candles_names_a_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "BTCUSDT-1h.csv", HEADER[:-1], [r[:-1] for r in GOOD_ROWS])
    with pytest.raises(FeedError) as err:
        read_candles(path, "1h")
    assert str(path) in str(err.value) and "volume" in str(err.value)
