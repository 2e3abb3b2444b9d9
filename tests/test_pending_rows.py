"""Held rows (equity snapshots, abstention notes) reach SQLite through the driver's executemany:
they must be stored exactly as SQLAlchemy's own ``insert(table)`` stores them."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select

from core.store.base import Base
from core.store.pending import PendingRows
from core.store.tables import EQUITY_SNAPSHOTS, PROPOSALS

FLOATS = st.floats(allow_nan=False, width=64)
TEXT = st.none() | st.text(max_size=40)


def _proposal(tick_ms: int, reasoning: str | None, ref_price: float | None) -> dict[str, Any]:
    return {"session_id": 1, "agent_id": 2, "tick_ms": tick_ms, "kind": "abstain",
            "reasoning": reasoning, "error": None, "raw_reply": reasoning, "symbol": None,
            "action": None, "leverage": None, "margin_fraction": None, "stop_price": None,
            "take_profit": None, "confidence": None, "ref_price": ref_price, "group_id": None,
            "llm_call_id": None}


def _snapshot(agent_id: int | None, ts_ms: int, equity: float) -> dict[str, Any]:
    return {"session_id": 1, "agent_id": agent_id, "ts_ms": ts_ms, "equity": equity,
            "unrealized": -equity, "margin_used": 0.0, "gross_notional": equity * 3,
            "drawdown_pct": 0.0}


def _stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
                for t in (PROPOSALS, EQUITY_SNAPSHOTS)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=6), numbers=st.lists(FLOATS, min_size=1,
                                                                      max_size=6))
def test_held_rows_are_stored_as_sqlalchemys_insert_stores_them(
        texts: list[str | None], numbers: list[float]) -> None:
    tricky = ["it's \"quoted\"", "line\nbreak\ttab\\", "€ ünïcode", "?", ":name", "%s"]
    notes = [_proposal(1_700_000_000_000 + i, text, numbers[i % len(numbers)])
             for i, text in enumerate([*texts, *tricky])]
    snapshots = [_snapshot(None if i % 2 else 2, 2**40 + i, x) for i, x in enumerate(numbers)]
    stores = [create_engine("sqlite://"), create_engine("sqlite://")]
    try:
        for engine in stores:
            Base.metadata.create_all(engine)
        pending = PendingRows()
        pending.add(PROPOSALS, notes[:3])
        pending.add(EQUITY_SNAPSHOTS, snapshots)
        pending.add(PROPOSALS, notes[3:])
        with stores[0].begin() as conn:
            pending.flush(conn, PROPOSALS)  # one table first, then the rest
            pending.flush(conn)
        assert len(pending) == 0
        with stores[1].begin() as conn:
            conn.execute(insert(PROPOSALS), notes)
            conn.execute(insert(EQUITY_SNAPSHOTS), snapshots)
        held, direct = (_stored(engine) for engine in stores)
        assert held == direct
        assert len(held["proposals"]) == len(notes) and len(held["equity_snapshots"]) == len(numbers)
    finally:
        for engine in stores:
            engine.dispose()
