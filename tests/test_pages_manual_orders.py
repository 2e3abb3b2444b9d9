"""The Positions page's own orders: close a position, cancel an order, flatten an agent, each
asked first in a dialog that says what will happen, driven through AppTest on a paper session
(no engine in the app, so the page's own command carries the order out)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import queries
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks, venue_matches_store

POSITIONS_PAGE = "views/positions.py"


@pytest.fixture
def holding(app_env: str, db: Engine) -> int:
    settings = make_settings(database_url=app_env, replay_start="2025-07-01")
    session_id = create(db, settings)
    run_ticks(db, settings, 300)  # ends holding BTC, ETH and SOL
    return session_id


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(POSITIONS_PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str) -> Any:
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def said(at: AppTest) -> str:
    return " ".join(m.value for m in [*at.markdown, *at.success, *at.error, *at.info, *at.caption])


def test_close_asks_first_then_closes_the_position(holding: int, db: Engine) -> None:
    before = queries.open_positions(db, holding)
    first = int(before["id"].min())
    at = page()
    assert at.selectbox(key="manual_position").value == first
    button(at, "Close at market…").click().run()
    assert "reduce-only market order" in said(at) and "stop and take-profit are cancelled" in said(at)
    assert first in set(queries.open_positions(db, holding)["id"])  # nothing before confirming

    button(at, "Cancel").click().run()
    assert "Confirm" not in [b.label for b in at.button]
    assert first in set(queries.open_positions(db, holding)["id"])

    button(at, "Close at market…").click().run()
    button(at, "Confirm").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Done: closed" in s.value for s in at.success), said(at)
    assert first not in set(queries.open_positions(db, holding).get("id", []))
    assert venue_matches_store(db, holding) == []
    log = queries.ceo_log(db, holding, kind="manual")
    assert len(log) == 1 and "user closes" in log["reason"].iloc[0]


def test_cancelling_a_positions_only_stop_is_refused_in_words(holding: int, db: Engine) -> None:
    at = page()
    orders = queries.open_orders(db, holding)
    stop = int(orders[orders["purpose"] == "stop_loss"]["id"].min())
    at.selectbox(key="manual_order").set_value(stop).run()
    button(at, "Cancel order…").click().run()
    button(at, "Confirm").click().run()
    assert any("Refused" in e.value and "only stop" in e.value for e in at.error), said(at)
    assert stop in set(queries.open_orders(db, holding)["id"])


def test_flatten_pauses_the_agent_and_closes_its_positions(holding: int, db: Engine) -> None:
    positions = queries.open_positions(db, holding)
    agent = str(positions["agent"].iloc[0])
    at = page()
    at.selectbox(key="manual_agent").set_value(agent).run()
    button(at, "Flatten agent…").click().run()
    assert "pauses the agent" in said(at)
    button(at, "Confirm").click().run()
    assert any(f"{agent} flattened" in s.value for s in at.success), said(at)
    left = queries.open_positions(db, holding)
    assert left.empty or agent not in set(left["agent"])
    stats = {a["name"]: a for a in queries.agent_stats(db, holding)}
    assert stats[agent]["status"] == "paused"
    (table,) = [d.value for d in at.dataframe if "What happened" in d.value.columns]
    assert list(table["Status"]) == ["Done"] and "flattened" in table["What happened"].iloc[0]


def test_the_pickers_follow_positions_that_open_and_close_after_the_page_was_drawn(
        app_env: str, db: Engine) -> None:
    settings = make_settings(database_url=app_env, replay_start="2025-07-01")
    session_id = create(db, settings)
    run_ticks(db, settings, 1)  # running, nothing open yet
    at = page()
    assert queries.open_positions(db, session_id).empty
    assert at.selectbox(key="manual_position").value is None
    run_ticks(db, settings, 299)
    at.run()
    opened = queries.open_positions(db, session_id)
    assert at.selectbox(key="manual_position").value == int(opened["id"].iloc[0])
    resting = queries.open_orders(db, session_id)
    assert at.selectbox(key="manual_order").value in set(resting["id"])

    button(at, "Close at market…").click().run()
    button(at, "Confirm").click().run()
    still = queries.open_positions(db, session_id)
    assert len(still) == len(opened) - 1
    assert at.selectbox(key="manual_position").value == int(still["id"].iloc[0])  # the next one
