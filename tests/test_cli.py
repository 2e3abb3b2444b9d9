"""The CLI contract of DESIGN.md section 8, exercised as a user would: ``python -m core ...``.

Every call is a real subprocess (about a second each), so the checks share databases: one prepared
once (a session that has traded for 60 ticks) for everything that must not change it, and a second
one holding a stopped session for the refusals that would otherwise create or change something.
A refusal must print one ``error:`` line on stderr, exit non-zero, show no traceback and leave
every table exactly as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.agents.roster import ROSTER
from core.config import PROJECT_ROOT, Settings
from core.queries import TRADE_COLUMNS

TIMEOUT_S = 120
ROSTER_NAMES = {s.name for s in ROSTER}
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]

# DESIGN.md section 8, verbatim
DESIGN_TRADE_COLUMNS = [
    "trade_id", "session_id", "agent", "strategy", "symbol", "side", "leverage", "qty",
    "entry_price", "exit_price", "margin", "opened_at", "closed_at", "duration_s", "fees",
    "funding", "realized_pnl", "close_reason",
]
DESIGN_CEO_COLUMNS = [
    "id", "ts", "agent", "symbol", "kind", "verdict", "rules", "reason", "proposed_leverage",
    "final_leverage", "proposed_margin", "final_margin",
]
DESIGN_SESSION_KEYS = {
    "id", "status", "mode", "initial_capital", "equity", "total_pnl", "drawdown_pct",
    "max_drawdown_pct",
}
DESIGN_AGENT_KEYS = {
    "name", "strategy", "model", "risk_level", "max_leverage", "status", "capital", "pnl",
    "pnl_pct", "win_rate", "trades", "open_positions", "avg_duration_s", "utilization",
}

# Settings read from the environment, plus anything that could reach a real venue or model
_SETTING_VARS = {(f.alias or name).upper() for name, f in Settings.model_fields.items()}
_SECRET_MARKERS = ("API_KEY", "SECRET", "GEMINI", "GROK", "XAI", "OPENAI", "ASTER")


def cli_env(database_url: str) -> dict[str, str]:
    """The caller's environment without desk overrides, pinned to an offline paper desk."""
    env = {
        k: v for k, v in os.environ.items()
        if k.upper() not in _SETTING_VARS
        and not k.upper().startswith("DESK_")
        and not any(m in k.upper() for m in _SECRET_MARKERS)
    }
    env.update({
        "DATABASE_URL": database_url,
        "DESK_MODE": "paper",
        "MARKET_SOURCE": "replay",
        "REPLAY_DATA_DIR": str(PROJECT_ROOT / "data" / "klines"),
        "REPLAY_INTERVAL": "15m",
        "REPLAY_START": "2025-06-01",
        "BARS_PER_TICK": "4",
        "SYMBOLS": ",".join(SYMBOLS),
        "DEFAULT_CAPITAL": "100000",
        "PYTHONIOENCODING": "utf-8",
    })
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )


def _shown(result: subprocess.CompletedProcess[str]) -> str:
    tail = "\n".join(result.stderr.splitlines()[-8:])  # a traceback's last lines say enough
    return (f"$ python -m core {' '.join(result.args[3:])}\nexit {result.returncode}\n"
            f"stdout:\n{result.stdout[-2000:]}\nstderr (last lines):\n{tail}")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must succeed (with its output in the failure message)."""
    shown = _shown(result)
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Assert the DESIGN error contract; returns the one error line."""
    shown = _shown(result)
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert result.returncode != 0, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("error:"), shown
    assert "error: internal" not in line, f"an anticipated mistake reported as an internal error\n{shown}"
    assert result.stdout.strip() == "", shown
    for text in expected:
        assert text.lower() in line.lower(), f"expected {text!r} in the message\n{shown}"
    return line


def db_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused command changed nothing."""
    path = db_path(url)
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def count_rows(url: str, table: str) -> int:
    return len(snapshot(url).get(table, []))


class Desk:
    """A database prepared once, and the outputs of the read-only commands run against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"sqlite:///{root / 'desk.db'}"
        self.env = cli_env(self.url)
        self.outputs: dict[str, subprocess.CompletedProcess[str]] = {}
        self.reads_changed: list[str] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args)

    def unchanged_by(self, *args: str) -> subprocess.CompletedProcess[str]:
        before = snapshot(self.url)
        result = self.run(*args)
        after = snapshot(self.url)
        changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
        assert not changed, f"`python -m core {' '.join(args)}` changed table(s) {changed}"
        return result


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    """A session that traded for 60 ticks, and the read-only commands run once against it."""
    d = Desk(tmp_path_factory.mktemp("cli_desk"))
    d.outputs["create"] = d.run("session", "create", "--json")
    ok(d.outputs["create"])
    d.outputs["engine"] = d.run("engine", "--ticks", "60")
    ok(d.outputs["engine"])
    reads = {
        "status": ("session", "status", "--json"),
        "status_text": ("session", "status"),
        "trades": ("trades", "--csv", "-"),
        "ceo_log": ("ceo-log", "--csv", str(d.root / "ceo.csv")),
        "agents": ("agents", "--json"),
        "market": ("market", "--json"),
        "list": ("session", "list"),
    }
    before = snapshot(d.url)
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        futures = {k: pool.submit(d.run, *args) for k, args in reads.items()}
        d.outputs.update({k: f.result() for k, f in futures.items()})
    after = snapshot(d.url)
    d.reads_changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    return d


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    """A database whose only session has been stopped: nothing is active, so a command that
    should refuse but does not would visibly create or change something."""
    d = Desk(tmp_path_factory.mktemp("cli_stopped"))
    ok(d.run("session", "create"))
    out = ok(d.run("session", "stop"))
    assert "stopped" in out
    return d


# ---------------------------------------------------------------------- happy path
def test_session_create_json(desk: Desk) -> None:
    data = json.loads(ok(desk.outputs["create"]))
    assert isinstance(data["session"]["id"], int)
    assert data["session"]["status"] == "created"
    assert data["session"]["initial_capital"] == 100_000
    assert {a["name"] for a in data["agents"]} == ROSTER_NAMES
    assert len(data["agents"]) == 5


def test_engine_ticks_reports_what_it_did(desk: Desk) -> None:
    out = ok(desk.outputs["engine"])
    assert out.startswith("ran 60 ticks"), out


def test_read_commands_change_nothing(desk: Desk) -> None:
    assert desk.reads_changed == []


def test_session_status_json_has_design_keys(desk: Desk) -> None:
    status = json.loads(ok(desk.outputs["status"]))
    created = json.loads(desk.outputs["create"].stdout)
    session = status["session"]
    assert set(session) >= DESIGN_SESSION_KEYS, DESIGN_SESSION_KEYS - set(session)
    assert session["id"] == created["session"]["id"]
    assert session["status"] == "running"
    assert session["mode"] == "paper"
    assert session["ticks"] == 60
    for key in ("equity", "total_pnl", "drawdown_pct", "max_drawdown_pct"):
        assert isinstance(session[key], (int, float)) and math.isfinite(session[key]), key
    assert math.isclose(session["total_pnl"], session["equity"] - session["initial_capital"], abs_tol=0.02)
    assert len(status["agents"]) == 5
    for agent in status["agents"]:
        assert set(agent) >= DESIGN_AGENT_KEYS, (agent.get("name"), DESIGN_AGENT_KEYS - set(agent))
    assert {a["name"] for a in status["agents"]} == ROSTER_NAMES


def test_session_status_reads_as_the_dashboard_does(desk: Desk) -> None:
    """Win rate and utilization in %, the average hold in hours, fees as the amount paid, and a
    line that splits the PnL into the parts the trade history reconciles with."""
    out = ok(desk.outputs["status_text"])
    status = json.loads(desk.outputs["status"].stdout)
    s = status["session"]
    assert (f"PnL = gross {s['realized_pnl']:+,.2f} on closed trades − fees paid {s['fees']:,.2f} "
            f"+ funding {s['funding']:+,.2f} + unrealized {s['unrealized_pnl']:+,.2f}") in out
    assert math.isclose(s["realized_pnl"] - s["fees"] + s["funding"] + s["unrealized_pnl"],
                        s["total_pnl"], abs_tol=0.05)
    header = next(line for line in out.splitlines() if line.startswith("agent "))
    assert "win rate" in header and "avg held" in header and "fees paid" in header
    assert "avg dur s" not in header
    traded = [a for a in status["agents"] if a["trades"]]
    assert traded, "nobody traded in 60 ticks"
    for a in traded:
        line = next(x for x in out.splitlines() if x.startswith(a["name"]))
        assert f"{a['win_rate'] * 100:.1f}%" in line
        assert f"{a['avg_duration_s'] / 3600:.1f} h" in line


def test_trades_csv_to_stdout_has_the_design_columns(desk: Desk) -> None:
    assert TRADE_COLUMNS[: len(DESIGN_TRADE_COLUMNS)] == DESIGN_TRADE_COLUMNS
    rows = list(csv.reader(io.StringIO(ok(desk.outputs["trades"]))))
    assert rows, "no CSV printed"
    assert rows[0] == TRADE_COLUMNS
    records = rows[1:]
    assert records, "60 ticks of replay closed no trade: the CSV contract is untested"
    session_id = str(json.loads(desk.outputs["create"].stdout)["session"]["id"])
    for record in records:
        assert len(record) == len(TRADE_COLUMNS), record
        row = dict(zip(TRADE_COLUMNS, record, strict=True))
        assert row["session_id"] == session_id
        assert row["agent"] in ROSTER_NAMES
        assert row["symbol"] in SYMBOLS
        assert row["side"] in ("LONG", "SHORT")
        assert float(row["entry_price"]) > 0 and float(row["exit_price"]) > 0
        assert float(row["duration_s"]) >= 0
        opened, closed = (datetime.fromisoformat(row[c]) for c in ("opened_at", "closed_at"))
        assert opened.utcoffset() == closed.utcoffset() == timedelta(0)  # the CSV says UTC
        assert (closed - opened).total_seconds() == pytest.approx(float(row["duration_s"]), abs=1)
        net = float(row["realized_pnl"]) - float(row["fees"]) + float(row["funding"])
        assert float(row["net_pnl"]) == pytest.approx(net, abs=1e-6)  # realized_pnl is gross


def test_ceo_log_csv_to_a_file(desk: Desk) -> None:
    out = ok(desk.outputs["ceo_log"])
    path = desk.root / "ceo.csv"
    assert path.exists(), out
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    header = rows[0]
    assert set(DESIGN_CEO_COLUMNS) <= set(header), set(DESIGN_CEO_COLUMNS) - set(header)
    positions = [header.index(c) for c in DESIGN_CEO_COLUMNS]
    assert positions == sorted(positions), f"columns out of the DESIGN order: {header}"
    assert len(rows) > 1, "no CEO decisions after 60 ticks"
    assert f"wrote {len(rows) - 1} rows" in out, out
    assert all(len(r) == len(header) for r in rows[1:])


def test_trade_and_log_tables_say_when_they_are_cut_and_paths_are_the_callers(desk: Desk) -> None:
    trades = len(list(csv.reader(io.StringIO(ok(desk.outputs["trades"]))))) - 1
    assert trades >= 2
    table = ok(desk.run("trades", "--limit", "1"))
    assert "gross PnL" in table and "net PnL" in table
    assert f"showing the newest 1 of {trades}; --limit N shows more" in table
    assert "showing the newest" not in ok(desk.run("trades", "--limit", str(trades)))
    assert "showing the newest 1 of " in ok(desk.run("ceo-log", "--limit", "1"))
    # a relative --csv lands in the caller's folder (./desk says where that is)
    caller = desk.root / "caller"
    caller.mkdir()
    out = ok(run_cli({**desk.env, "DESK_CALLER_DIR": str(caller)}, "trades", "--csv", "t.csv"))
    assert (caller / "t.csv").exists() and f"wrote {trades} rows to {caller / 't.csv'}" in out
    refused(desk.run("trades", "--csv", str(desk.root / "missing" / "t.csv")),
            "the folder " + str(desk.root / "missing") + " does not exist")


def test_filters_take_any_case_and_refuse_what_cannot_match(desk: Desk) -> None:
    rows = list(csv.DictReader(io.StringIO(ok(desk.outputs["trades"]))))
    agent, symbol = rows[0]["agent"], rows[0]["symbol"]
    exact = ok(desk.run("trades", "--agent", agent, "--symbol", symbol))
    assert ok(desk.run("trades", "--agent", agent.upper(), "--symbol", symbol.lower())) == exact
    assert agent in exact
    refused(desk.run("trades", "--agent", "Nobody"), "no agent 'Nobody'; agents: TrendMaster Alpha")
    refused(desk.run("trades", "--symbol", "dogeusdt"), "not dogeusdt")
    refused(desk.run("ceo-log", "--kind", "bogus"), "invalid choice: 'bogus'")
    assert ok(desk.run("ceo-log", "--rule", "bogus")).strip() == "nothing matches --rule bogus"


def test_agents_json_lists_the_roster(desk: Desk) -> None:
    agents = json.loads(ok(desk.outputs["agents"]))
    assert len(agents) == 5
    assert {a["name"] for a in agents} == ROSTER_NAMES


def test_market_json_lists_the_symbols(desk: Desk) -> None:
    rows = json.loads(ok(desk.outputs["market"]))
    assert sorted(r["symbol"] for r in rows) == SYMBOLS
    for r in rows:
        assert isinstance(r["price"], (int, float)) and math.isfinite(r["price"]) and r["price"] > 0, r


def test_session_list(desk: Desk) -> None:
    out = ok(desk.outputs["list"])
    created = json.loads(desk.outputs["create"].stdout)["session"]
    assert created["name"] in out
    assert out.splitlines()[0].split()[:2] == ["id", "name"]


# ---------------------------------------------------------------------- refusals, nothing changed
def test_unknown_agent_is_refused(desk: Desk) -> None:
    line = refused(desk.unchanged_by("agents", "pause", "Nobody"), "Nobody")
    assert "Momentum Hunter" in line  # says which agents exist


def test_unknown_session_is_refused(desk: Desk) -> None:
    refused(desk.unchanged_by("session", "status", "--session", "999"), "999")


def test_resume_of_a_running_session_is_refused(desk: Desk) -> None:
    refused(desk.unchanged_by("session", "resume"), "running")


def test_second_active_session_is_refused(desk: Desk) -> None:
    refused(desk.unchanged_by("session", "create"), "stop")


def test_unknown_subcommand_is_refused(desk: Desk) -> None:
    refused(desk.unchanged_by("frobnicate"), "frobnicate")


@pytest.mark.parametrize("capital", ["-5", "abc", "0", "nan", "inf", "1e30"])
def test_bad_capital_is_refused(stopped: Desk, capital: str) -> None:
    sessions = count_rows(stopped.url, "sessions")
    refused(stopped.unchanged_by("session", "create", "--capital", capital), "capital")
    assert count_rows(stopped.url, "sessions") == sessions


def test_pause_of_a_stopped_session_is_refused(stopped: Desk) -> None:
    decisions = count_rows(stopped.url, "ceo_decisions")
    refused(stopped.unchanged_by("session", "pause"), "stopped")
    assert count_rows(stopped.url, "ceo_decisions") == decisions


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notadb://x", "DATABASE_URL"),
        ("postgresql://nouser:s3cret@127.0.0.1:1/none", "127.0.0.1"),
    ],
    ids=["unknown-backend", "unreachable-postgres"],
)
def test_bad_database_url_is_one_line(url: str, expected: str) -> None:
    line = refused(run_cli(cli_env(url), "session", "list"), expected)
    assert "s3cret" not in line, "the error printed the database password"


def test_status_on_an_empty_database_says_how_to_start(sqlite_url: str) -> None:
    line = refused(run_cli(cli_env(sqlite_url), "session", "status"))
    assert "session create" in line, line
    assert count_rows(sqlite_url, "sessions") == 0


# ---------------------------------------------------------------------- the helpers themselves
def test_snapshot_sees_a_change(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    conn = sqlite3.connect(db_path(url))
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    before = snapshot(url)
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    assert snapshot(url) != before


def test_a_huge_capital_is_refused_in_a_readable_line() -> None:
    from core.errors import ConfigError
    from core.models import validate_capital

    with pytest.raises(ConfigError) as refused_huge:
        validate_capital(1e308)
    assert str(refused_huge.value) == "capital must be at most 1,000,000,000,000 USDT, got 1e+308"
    with pytest.raises(ConfigError, match=r"got 2,000,000,000,000$"):
        validate_capital(2e12)
