"""``python -m core backtest`` as a user runs it (real subprocesses), and bad ``--data`` folders
refused with the file and the row named, before anything is stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from core.config import PROJECT_ROOT
from core.errors import FeedError
from core.feeds.replay import read_candles
from tests.test_cli import cli_env, ok, refused, run_cli

DATA = PROJECT_ROOT / "data" / "klines"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"sqlite:///{tmp_path / 'desk.db'}")


def _rows(env: dict[str, str], table: str) -> int:
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    if not Path(path).exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute(f"select count(*) from {table}").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_a_backtest_runs_stores_and_lists(env: dict[str, str]) -> None:
    out = ok(run_cli(env, "backtest", "--from", "2025-10-08", "--to", "2025-10-09",
                     "--symbols", "BTCUSDT,ETHUSDT", "--capital", "20,000", "--json"))
    result = json.loads(out)
    report = result["report"]
    assert report["summary"]["initial_capital"] == 20000
    assert report["run"]["params"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert report["run"]["ticks"] == 2 * 96
    assert report["drawdown_halt"]["held"] is True
    assert set(report["buy_and_hold"]) == {"BTCUSDT", "ETHUSDT"}

    text_out = ok(run_cli(env, "backtest", "--from", "2025-10-08", "--to", "2025-10-09",
                          "--symbols", "BTCUSDT,ETHUSDT", "--capital", "20000", "--no-ceo"))
    assert "CEO off: no drawdown halt" in text_out and "agents ran on rules" in text_out
    assert "\r[" not in text_out  # no progress bar when stderr is not a terminal

    listed = ok(run_cli(env, "backtest", "--list"))
    assert listed.count("[done]") == 2 and "CEO off" in listed
    as_json = json.loads(ok(run_cli(env, "backtest", "--list", "--json")))
    assert [r["report"]["summary"]["trades"] for r in as_json][-1] == report["summary"]["trades"]
    assert all("curve" not in r["report"] for r in as_json)  # the list carries headlines only
    shown = json.loads(ok(run_cli(env, "backtest", "--show", str(result["run_id"]), "--json")))
    assert shown["report"]["summary"] == report["summary"]
    trades = ok(run_cli(env, "trades", "--session", str(result["session_id"]), "--csv", "-"))
    assert len(trades.strip().splitlines()) == report["summary"]["trades"] + 1
    # the backtest is not the desk's session
    refused(run_cli(env, "session", "status"), "no session yet")
    assert "no sessions yet" in ok(run_cli(env, "session", "list"))


def test_ctrl_c_stops_a_run_says_so_and_marks_it_interrupted(env: dict[str, str],
                                                             tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    env = {**env, "TMPDIR": str(tmp_path)}  # the run's private folder lands where we can see it
    proc = subprocess.Popen([sys.executable, "-m", "core", "backtest", "--from", "2025-05-02",
                             "--to", "2026-04-28", "--interval", "15m"], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    deadline = time.monotonic() + 300  # generous: a loaded machine starts a run slowly

    def ticking() -> bool:
        try:
            with sqlite3.connect(path) as conn:
                row = conn.execute("select ticks_done from backtest_runs").fetchone()
        except sqlite3.OperationalError:
            return False
        return bool(row and row[0])

    try:
        while not ticking():
            if proc.poll() is not None:
                pytest.fail(f"the run ended ({proc.returncode}) before it was seen ticking: "
                            f"{proc.stderr.read() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail("no evidence within 300 s that the backtest is ticking")
            time.sleep(0.2)
        assert any(tmp_path.glob("desk-backtest-*")), "no private store while it runs"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: backtest run 1 is recorded as interrupted" in err, err
    with sqlite3.connect(path) as conn:
        status, error = conn.execute("select status, error from backtest_runs").fetchone()
    assert status == "interrupted" and "stopped by the user (Ctrl-C)" in error
    assert not list(tmp_path.glob("desk-backtest-*"))  # its private store is removed
    assert "interrupted" in ok(run_cli(env, "backtest", "--list"))


def test_ctrl_c_says_interrupted_only_when_the_store_recorded_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    from core.backtest.params import build_params, ticks_in
    from core.backtest.service import create_run
    from core.cli.backtest import _interrupted
    from core.store.db import open_database
    from core.store.tables import BacktestRunRow as Run

    engine = open_database(f"sqlite:///{tmp_path / 'desk.db'}")
    params, data = build_params(start="2025-10-08", end="2025-10-08", data_dir=DATA, interval="1h",
                                symbols=["BTCUSDT"], capital=1000.0)
    run_id = create_run(engine, params, ticks_in(params, data))
    # the service could not write its status: the run still reads "running"
    assert "could not be marked interrupted in the store" in _interrupted(engine, run_id)
    assert "once it has written nothing for 2 minutes" in _interrupted(engine, run_id)
    with engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(status="interrupted"))
    assert _interrupted(engine, run_id) == (f"interrupted: backtest run {run_id} is recorded as "
                                            "interrupted; nothing else was kept")
    assert "could not be marked" in _interrupted(engine, run_id + 1)  # no such row

    def store_down(*_: object) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr("core.queries.backtest_progress", store_down)
    assert "could not be marked" in _interrupted(engine, run_id)  # nothing is claimed
    engine.dispose()


@pytest.mark.parametrize(("args", "expected"), [
    (["--from", "2025-10-08"], "--from DATE and --to DATE"),
    (["--from", "2025-13-01", "--to", "2025-12-02"], "is not a date"),
    (["--from", "2025-10-09", "--to", "2025-10-08"], "must be after"),
    (["--from", "2020-01-01", "--to", "2020-02-01"],
     "the range from 2020-01-01 to 2020-02-01 is outside the data (recorded 2025-05-01 to "),
    (["--from", "2020-01-01", "--to", "2025-10-09"],
     "'from' 2020-01-01 is before the start of the data"),
    (["--from", "2026-04-01", "--to", "2026-09-01"], "after the end of the data"),
    (["--from", "2025-10-08", "--to", "2025-10-09", "--symbols", "DOGEUSDT"], "DOGEUSDT-15m.csv"),
    (["--from", "2025-10-08", "--to", "2025-10-09", "--capital", "5"], "at least 100"),
    (["--from", "2025-10-08", "--to", "2025-10-09", "--interval", "4h"], "invalid choice"),
    (["--from", "2025-10-08", "--to", "2025-10-09", "--data", "/nonexistent/dir"], "not a folder"),
    (["--show", "99"], "no backtest run 99"),
])
def test_bad_requests_are_refused_with_one_line(env: dict[str, str], args: list[str],
                                                expected: str) -> None:
    line = refused(run_cli(env, "backtest", *args))
    assert expected in line, line
    assert _rows(env, "backtest_runs") == 0 and _rows(env, "sessions") == 0


def _good(tmp_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(DATA / "BTCUSDT-1h.csv").iloc[:200].copy()
    return frame


def _write(tmp_path: Path, frame: pd.DataFrame | str, symbol: str = "BTCUSDT") -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    path = folder / f"{symbol}-1h.csv"
    if isinstance(frame, str):
        path.write_text(frame)
    else:
        frame.to_csv(path, index=False)
    return path


def _corrupt(kind: str, frame: pd.DataFrame) -> tuple[pd.DataFrame | str, str]:
    """A broken copy of ``frame`` and the message fragment naming the row (1-based, header = 1)."""
    f = frame.copy()
    if kind == "missing column":
        return f.drop(columns=["volume"]), "missing column(s) volume"
    if kind == "non-numeric":
        f["close"] = f["close"].astype(object)
        f.loc[41, "close"] = "abc"
        return f, "row 43: close is not a number ('abc')"
    if kind == "empty value":
        f["high"] = f["high"].astype(object)
        f.loc[9, "high"] = None
        return f, "row 11: high is empty"
    if kind == "infinite":
        f.loc[30, "close"] = float("inf")
        return f, "row 32: close is not a finite number ('inf')"
    if kind == "zero price":
        f.loc[20, "low"] = 0.0
        return f, "row 22: a price is zero or negative"
    if kind == "negative volume":
        f.loc[25, "volume"] = -1.0
        return f, "row 27: volume is negative"
    if kind == "high below close":
        f.loc[50, "high"] = f.loc[50, "close"] * 0.9
        return f, "row 52: high is below open, low or close"
    if kind == "low above open":
        f.loc[55, "low"] = max(f.loc[55, "open"], f.loc[55, "close"]) * 1.001
        f.loc[55, "high"] = f.loc[55, "low"] * 1.001
        return f, "row 57: low is above open, high or close"
    if kind == "duplicate":
        f.loc[60, "open_time_ms"] = f.loc[59, "open_time_ms"]
        return f, "row 62: duplicate timestamp"
    if kind == "unsorted":
        f.loc[[70, 71]] = f.loc[[71, 70]].to_numpy()
        return f, "row 73: timestamp earlier than the row before"
    if kind == "gap":
        return f.drop(index=100), "row 102: gap in the 1h candles"  # the row after the gap
    raise ValueError(kind)


KINDS = ["missing column", "non-numeric", "empty value", "infinite", "zero price",
         "negative volume", "high below close", "low above open", "duplicate", "unsorted", "gap"]


@pytest.mark.parametrize("kind", KINDS)
def test_read_candles_names_the_file_and_the_row(tmp_path: Path, kind: str) -> None:
    broken, fragment = _corrupt(kind, _good(tmp_path))
    path = _write(tmp_path, broken)
    with pytest.raises(FeedError) as err:
        read_candles(path, "1h")
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)


def test_the_cli_refuses_a_bad_data_folder_naming_file_and_row(env: dict[str, str],
                                                               tmp_path: Path) -> None:
    good = _good(tmp_path)
    _write(tmp_path, good)  # BTC is fine
    broken, fragment = _corrupt("gap", good)
    path = _write(tmp_path, broken, symbol="ETHUSDT")
    line = refused(run_cli(env, "backtest", "--from", "2024-01-02", "--to", "2024-01-05",
                           "--interval", "1h", "--symbols", "BTCUSDT,ETHUSDT",
                           "--data", str(path.parent)))
    assert str(path) in line and fragment in line, line
    assert _rows(env, "backtest_runs") == 0


def test_any_folder_of_good_csvs_backtests(env: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, _good(tmp_path))
    out = json.loads(ok(run_cli(env, "backtest", "--from", "2024-01-03", "--to", "2024-01-08",
                                "--interval", "1h", "--symbols", "BTCUSDT", "--data",
                                str(path.parent), "--json")))
    assert out["report"]["run"]["params"]["data_dir"] == str(path.parent.resolve())
    assert out["report"]["run"]["ticks"] == 6 * 24  # 2024-01-03 00:00 → 2024-01-09 00:00


def test_the_datas_first_and_last_days_may_be_named_whole_and_no_more(tmp_path: Path) -> None:
    """Data from 2024-01-01 23:00 (its day's last hour) to 2024-01-09 07:00: both days run from the
    first bar or to the last; a range reaching past them, even by an hour, is refused."""
    from core.backtest.params import build_params
    from core.errors import ConfigError

    _write(tmp_path, pd.read_csv(DATA / "BTCUSDT-1h.csv").iloc[23:200])

    def build(start: str, end: str) -> tuple[str, str]:
        params, _ = build_params(start=start, end=end, data_dir=tmp_path / "data", interval="1h",
                                 symbols=["BTCUSDT"], capital=1_000)
        return (f"{pd.Timestamp(params.start_ms, unit='ms'):%m-%d %H:%M}",
                f"{pd.Timestamp(params.end_ms, unit='ms'):%m-%d %H:%M}")

    assert build("2024-01-01", "2024-01-09") == ("01-02 00:00", "01-09 08:00")
    for start, end, refused_part in (("2023-12-31T23:00", "2024-01-09", "'from' 2023-12-31T23:00"),
                                     ("2024-01-01", "2024-01-10T00:30", "'to' 2024-01-10T00:30")):
        with pytest.raises(ConfigError) as err:
            build(start, end)
        assert refused_part in str(err.value) and "recorded 2024-01-01 to 2024-01-09" in str(err.value)
