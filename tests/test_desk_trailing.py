"""Trailing stops through the whole desk on paper: the trend and momentum agents ask for one, the
CEO judges it, execution rests it beside the hard stop once the entry fills, the paper venue trails
and fires it, the fill closes the position as ``trailing_stop`` and cancels the hard stop, and the
desk's books equal the venue's throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from core.agents import strategy_file
from core.agents.desk_params import DeskParams
from core.store.db import open_database
from core.store.tables import FillRow, OrderRow, PositionRow
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks, venue_matches_store


@pytest.fixture
def trailing_on(tmp_path: Path) -> Path:
    """A strategy file in which trend and momentum both trail 2×ATR14, armed 1×ATR14 in profit."""
    params = DeskParams.defaults().with_values({
        f"{key}.{name}": value for key in ("trend", "momentum")
        for name, value in (("trail_atr", 2.0), ("trail_activation_atr", 1.0),
                            ("trail_replaces_tp", True))})
    path = tmp_path / "strategies.toml"
    path.write_text(strategy_file.render(params))
    return path


def _orders(engine: Engine, session_id: int) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(OrderRow).where(OrderRow.session_id == session_id)
                                 .order_by(OrderRow.id)))


def test_trailing_stops_rest_beside_the_hard_stop_and_close_positions(sqlite_url: str,
                                                                     trailing_on: Path) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start="2025-10-08",
                             strategies_file=trailing_on)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    fired = False
    for _ in range(8):
        assert run_ticks(engine, settings, 100) == 100
        assert venue_matches_store(engine, session_id) == []
        orders = _orders(engine, session_id)
        with engine.connect() as conn:
            positions = list(conn.execute(select(PositionRow).where(
                PositionRow.session_id == session_id)))
        for pos in positions:
            mine = [o for o in orders if o.position_id == pos.id]
            trails = [o for o in mine if o.purpose == "trailing_stop"]
            if pos.trail_callback is None:
                assert not trails
                continue
            assert pos.take_profit is None  # the trail replaces the take-profit
            stops = [o for o in mine if o.purpose == "stop_loss"]
            assert trails and stops and stops[0].id < trails[0].id  # the hard stop first
            t = trails[0]
            assert (t.type, t.reduce_only) == ("TRAILING_STOP_MARKET", True)
            assert 0.1 <= t.callback_rate <= 5 and t.callback_rate == round(t.callback_rate, 1)
            assert t.callback_rate <= pos.trail_callback * 100 + 1e-9  # rounded tighter
            if pos.status == "open":
                assert [o.status for o in trails].count("NEW") == 1
                assert [o.status for o in stops].count("NEW") == 1
            if pos.close_reason == "trailing_stop":
                fired = True
                assert [o.status for o in mine if o.purpose == "stop_loss"][-1] in (
                    "CANCELED", "EXPIRED")
                with engine.connect() as conn:
                    (fill,) = conn.execute(select(FillRow).where(
                        FillRow.position_id == pos.id,
                        FillRow.client_order_id == trails[-1].client_order_id)).all()
                assert fill.quantity == pytest.approx(pos.exit_qty)
        if fired:
            break
    assert fired, "no trailing stop fired in 800 ticks"
    engine.dispose()


def test_a_trailing_stop_cancelled_by_the_user_is_not_placed_again(sqlite_url: str,
                                                                  trailing_on: Path) -> None:
    from core import service
    from tests.test_manual_orders import _open, _resting

    settings = make_settings(database_url=sqlite_url, replay_start="2025-10-08",
                             strategies_file=trailing_on)
    engine = open_database(sqlite_url)
    session_id = create(engine, settings)
    held = None
    for _ in range(40):
        run_ticks(engine, settings, 20)
        held = next((p for p in _open(engine, session_id)
                     if _resting(engine, p).get("trailing_stop")), None)
        if held is not None:
            break
    assert held is not None, "no position rested under a trailing stop in 800 ticks"
    (trail_id,) = _resting(engine, held)["trailing_stop"]
    outcome = service.cancel_order(engine, settings, trail_id)
    assert outcome.status == "done" and "trailing-stop order" in outcome.note
    run_ticks(engine, settings, 5)  # coverage runs every tick: it must not bring it back
    if held in _open(engine, session_id):
        assert "trailing_stop" not in _resting(engine, held)
        assert _resting(engine, held)["stop_loss"]
    assert venue_matches_store(engine, session_id) == []
    engine.dispose()
