"""Walk-forward: windows never test on a day they trained on, the stitched out-of-sample curve
compounds the test windows as worked by hand, the best parameters of a window are what its test
window runs, and a chosen parameter set starts a paper session that stores exactly it."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Engine

from core import queries, service
from core.errors import ConfigError, InvalidParams
from core.research import walkforward as wf
from core.research.trial import StudySpec
from core.store.db import open_database
from tests.conftest import PROJECT_ROOT, make_settings

DAY = 86_400_000
T0 = 1_759_276_800_000  # 2025-10-01 00:00 UTC


def test_windows_never_test_on_training_days() -> None:
    windows = wf.plan("2025-01-01", "2025-12-31", 90, 30, 30)
    assert len(windows) == 9
    first = windows[0]
    assert (first.train_start, first.train_end, first.test_start, first.test_end) == (
        "2025-01-01", "2025-03-31", "2025-04-01", "2025-04-30")
    for w in windows:
        assert w.test_start > w.train_end  # ISO dates compare as days
    assert windows[-1].test_end <= "2025-12-31"
    assert [w.test_start for w in windows[:2]] == ["2025-04-01", "2025-05-01"]
    with pytest.raises(ConfigError, match="no walk-forward window fits"):
        wf.plan("2025-01-01", "2025-03-01", 90, 30, 30)
    with pytest.raises(ConfigError):
        wf.parse_days("ninety", "train")
    assert wf.parse_days("45d", "test") == 45


def _side(days: list[float], capital: float = 100.0, start: int = T0) -> dict:
    ts = [start + DAY * (i + 1) for i in range(len(days))]
    return {"ts": ts, "equity": days, "capital": capital, "trades": 1, "fees": 2.0,
            "funding": 0.5, "return": days[-1] / capital - 1, "sharpe": 0.0,
            "max_drawdown": 0.0, "daily_returns": []}


def test_stitched_curve_compounds_the_test_windows_by_hand() -> None:
    a = _side([110.0, 99.0])  # +10 %, −10 %
    b = _side([120.0], start=T0 + 2 * DAY)  # +20 % on a fresh 100
    out = wf._stitch([a, b], 100.0)
    assert out["daily_returns"] == pytest.approx([0.1, -0.1, 0.2])
    assert out["return"] == pytest.approx(1.1 * 0.9 * 1.2 - 1)
    assert out["equity"] == pytest.approx([110.0, 99.0, 118.8])
    assert out["max_drawdown"] == pytest.approx(0.1)
    r = [0.1, -0.1, 0.2]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert out["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))


def test_a_window_runs_its_best_trial_out_of_sample(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    open_database(url).dispose()
    settings = make_settings(database_url=url)
    spec = StudySpec(agents=("trend",), start="2025-10-01", end="2025-10-06", interval="1h",
                     symbols=("BTCUSDT", "ETHUSDT"), capital=100_000.0,
                     data_dir=str(PROJECT_ROOT / "data" / "klines"), seed=2)
    report = wf.run_walkforward(settings, "wf", spec, train=3, test=2, step=3, trials=3, workers=1)
    assert report is not None
    stored = queries.walkforward_report(url, "wf")
    assert stored["report"]["headline"] == report["headline"]
    study = queries.research_study(url, "wf · window 1")
    best = study["report"]["best"]
    window = report["windows"][0]
    assert (window["test_start"], window["test_end"]) == ("2025-10-04", "2025-10-05")
    if best is not None:
        assert window["params"] == best["params"]
    # the headline is the tuned out-of-sample curve, not the in-sample best
    assert report["headline"]["return"] == report["out_of_sample"]["tuned"]["return"]
    assert report["out_of_sample"]["default"]["trades"] >= 0


def test_a_paper_session_starts_on_the_chosen_parameters(db: Engine) -> None:
    settings = make_settings(database_url=db.url.render_as_string(hide_password=False))
    ref = service.start_paper_with_params(db, settings, values={"trend.adx_min": 27.0},
                                          capital=50_000.0)
    stored = queries.session_params(db, ref.id)
    assert stored.flat()["trend.adx_min"] == 27.0
    assert stored.flat()["trend.stop_atr"] == queries.strategy_file_params(settings).flat()[
        "trend.stop_atr"]
    with pytest.raises(InvalidParams):
        service.start_paper_with_params(db, settings, values={"trend.adx_min": -5.0})
