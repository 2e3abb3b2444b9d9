"""DISPLAY_TIMEZONE: the pages show times in the trader's zone, say which, and keep every
stored value, CSV and CLI line in UTC."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core import queries
from core.config import Settings, get_settings
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks

TOKYO = "Asia/Tokyo"  # UTC+9 all year: no daylight-saving hour to reason about


@pytest.fixture
def tokyo(app_env: str, db: Engine, monkeypatch: pytest.MonkeyPatch) -> int:
    settings = make_settings(database_url=app_env, replay_start="2025-07-01")
    session_id = create(db, settings)
    run_ticks(db, settings, 300)
    monkeypatch.setenv("DISPLAY_TIMEZONE", TOKYO)
    get_settings.cache_clear()
    return session_id


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plus_nine(utc: pd.Series) -> list[str]:
    return (pd.to_datetime(utc, utc=True) + pd.Timedelta(hours=9)).dt.strftime(
        "%Y-%m-%d %H:%M:%S").tolist()


def _axis_titles(at: AppTest) -> set[str]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {axis.get("title", {}).get("text", "") for spec in specs
            for key, axis in spec["layout"].items() if key.startswith("xaxis")}


def test_an_unknown_zone_is_refused_in_words() -> None:
    with pytest.raises(ValidationError, match="is not a time zone; use an IANA name"):
        Settings(display_timezone="Mars/Olympus")
    assert Settings(display_timezone=" ").display_timezone == "UTC"


def test_the_ceo_log_shows_the_zone_and_its_downloads_stay_utc(
        tokyo: int, db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def spy(self: MediaFileManager, data: Callable[[], Any], *args: Any, **kwargs: Any) -> str:
        file_id = original(self, data, *args, **kwargs)
        captured[file_id] = data
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    at = _page("views/ceo.py")
    table = next(d.value for d in at.dataframe if d.value.columns[0] == f"Time ({TOKYO})")
    stored = queries.ceo_log(db, tokyo, limit=50)
    assert table[f"Time ({TOKYO})"].tolist() == _plus_nine(stored["ts"])
    assert any(f"in {TOKYO}" in c.value for c in at.caption)
    button = next(b for b in at.get("download_button") if b.label.startswith("Download whole"))
    data = captured[button.proto.deferred_file_id]()
    rows = list(csv.DictReader(io.StringIO(data.decode() if isinstance(data, bytes) else data)))
    assert rows[0]["ts"] == f"{queries.ceo_log(db, tokyo, limit=1)['ts'].iloc[0]}+00:00"


def test_trades_and_charts_are_drawn_in_the_zone(tokyo: int, db: Engine) -> None:
    at = _page("views/positions.py")
    history = next(d.value for d in at.dataframe if d.value.columns[0] == f"Closed ({TOKYO})")
    trades = queries.trades(db, tokyo, limit=50)
    assert history[f"Closed ({TOKYO})"].tolist() == _plus_nine(trades["closed_at"])
    assert history[f"Opened ({TOKYO})"].tolist() == _plus_nine(trades["opened_at"])
    assert f"engine time ({TOKYO})" in _axis_titles(at)
    at = _page("views/session.py")
    assert f"Engine time ({TOKYO})" in _axis_titles(at)
    split = next(c.value for c in at.caption if c.value.startswith("Total PnL "))
    engine_time = queries.session_summary(db, tokyo)["engine_time"]
    assert split.endswith(f"as of engine time {_plus_nine(pd.Series([engine_time]))[0]} {TOKYO}")


def test_the_market_chart_and_its_trades_are_in_the_zone(tokyo: int, db: Engine) -> None:
    at = _page("views/market.py")
    assert f"engine time ({TOKYO})" in _axis_titles(at)
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    candles = next(t for t in chart["data"] if t["type"] == "candlestick")
    assert isinstance(candles["x"], list)
    engine_time = pd.Timestamp(queries.session_summary(db, tokyo)["engine_time"])
    # the window ends at the engine's clock (UTC), drawn as Tokyo's wall clock, nine hours later
    assert engine_time < pd.Timestamp(candles["x"][-1]) <= engine_time + pd.Timedelta(hours=9)
    marks = next((d.value for d in at.dataframe if f"Opened ({TOKYO})" in d.value.columns), None)
    assert marks is not None and not marks.empty
