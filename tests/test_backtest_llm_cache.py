"""Model agents in a backtest answer from recorded replies (``llm_calls``, by prompt hash), never
from a live model; a prompt with no recorded reply is decided on the rules, and the report says
which agents ran on what."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from core.backtest.params import build_params
from core.backtest.service import BacktestResult, run_backtest
from core.config import PROJECT_ROOT
from core.store.db import open_database
from core.store.tables import LLMCallRow, PositionRow, ProposalRow
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks

DATA = PROJECT_ROOT / "data" / "klines"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def _run(engine: Engine, url: str, day: str, *, cache: bool) -> BacktestResult:
    params, data = build_params(start=day, end=day, data_dir=DATA, interval="15m", symbols=SYMBOLS,
                                capital=100_000, llm_cache=cache)
    return run_backtest(engine, make_settings(database_url=url), params, data)


def _trades(engine: Engine, session_id: int) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(PositionRow.symbol, PositionRow.side, PositionRow.leverage, PositionRow.quantity,
                   PositionRow.entry_price, PositionRow.exit_price, PositionRow.closed_ms)
            .where(PositionRow.session_id == session_id).order_by(PositionRow.id))]


def test_recorded_replies_drive_the_agents_and_misses_fall_back_to_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_database(url)
    # a paper session whose agents went through the model path (offline provider) records replies
    recorded = make_settings(database_url=url, replay_start="2025-10-08", agent_llm="offline")
    paper = create(engine, recorded)
    assert run_ticks(engine, recorded, 110) == 110

    cached = _run(engine, url, "2025-10-08", cache=True)
    note = cached.report["agents_model"]
    assert note.startswith("agents ran on cached model replies")
    assert "0 on rules" in note and "Lightning Scalper: 96 cached replies" in note
    with engine.connect() as conn:
        calls = conn.execute(select(LLMCallRow.provider, func.count()).where(
            LLMCallRow.session_id == cached.session_id).group_by(LLMCallRow.provider)).all()
        cited = conn.scalar(select(func.count()).select_from(ProposalRow).where(
            ProposalRow.session_id == cached.session_id, ProposalRow.llm_call_id.is_not(None),
            ProposalRow.llm_call_id.in_(select(LLMCallRow.id).where(
                LLMCallRow.session_id == cached.session_id))))
        costs = conn.scalar(select(func.sum(LLMCallRow.cost_usd)).where(
            LLMCallRow.session_id == cached.session_id))
    assert [p for p, _ in calls] == ["cache:offline"] and calls[0][1] == 96 + 4 * 24
    assert cited > 0 and costs == 0  # the copied proposals still cite their (copied) calls

    # the offline provider answered with the rule signal, so replaying its replies trades like rules
    rules = _run(engine, url, "2025-10-08", cache=False)
    assert rules.report["agents_model"].startswith("agents ran on rules")
    assert _trades(engine, cached.session_id) == _trades(engine, rules.session_id)

    unseen = _run(engine, url, "2025-11-08", cache=True)  # nothing was recorded for this day
    assert unseen.report["agents_model"] == \
        "agents ran on rules (no cached model reply matched a prompt)"
    assert paper != cached.session_id
    engine.dispose()
