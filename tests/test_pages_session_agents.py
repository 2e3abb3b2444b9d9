"""The Session and Agents pages, driven through AppTest (the app shell and its password gate are
in test_app.py).

Each test runs the real multipage app (app.py -> st.navigation) against its own SQLite file with
the engine out of the app (ENGINE_IN_APP=false), so the figures on screen stay put while the test
clicks. The store is then checked through core.queries, as the pages themselves read it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from streamlit import logger as st_logger
from streamlit.testing.v1 import AppTest

from core import queries, service
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks

SESSION_PAGE = "views/session.py"
AGENTS_PAGE = "views/agents.py"
NAMES = ["TrendMaster Alpha", "Momentum Hunter", "Mean Reversion Pro", "Lightning Scalper",
         "Arbitrage Scanner"]


# ---------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def seeded(app_env: str, db: Engine) -> int:
    """A running session that has traded for ~250 ticks (closed trades, snapshots, open positions)."""
    settings = make_settings(database_url=app_env, replay_start="2025-09-01")
    session_id = create(db, settings)
    run_ticks(db, settings, 250)
    return session_id


def app(page: str = SESSION_PAGE) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    if page != SESSION_PAGE:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str | None = None, *, key: str | None = None) -> Any:
    found = [b for b in at.button if (key is None or b.key == key) and (label is None or b.label == label)]
    assert found, f"no button {label or key!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def texts(at: AppTest) -> str:
    """Everything the page says in text elements, for 'no raw None / nan' checks."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header",
                 "subheader"):
        parts += [str(e.value) for e in at.get(kind)]
    parts += [f"{m.label} {m.value} {m.delta}" for m in at.metric]
    return "\n".join(parts)


def session_of(db: Engine, session_id: int) -> dict[str, Any]:
    return queries.session_status(db, session_id)["session"]


def agent_status(db: Engine, session_id: int, key: str) -> dict[str, Any]:
    return next(a for a in queries.agent_stats(db, session_id) if a["key"] == key)


def no_raw_values(at: AppTest) -> None:
    shown = texts(at)
    for raw in ("None", "nan", "NaN"):
        assert raw not in shown.replace("Nonetheless", ""), f"{raw!r} shown to the user"


# ---------------------------------------------------------------------- rendering
def test_empty_database_both_pages_say_what_to_do(app_env: str, db: Engine) -> None:
    at = app()
    assert any("No session yet" in i.value for i in at.info)
    assert "Create session" in labels(at)
    assert not at.metric and not at.dataframe  # no previous sessions, no KPIs
    assert not at.radio[0].disabled and at.radio[0].value == "paper"  # live mode
    at = app(AGENTS_PAGE)
    assert any("No session yet" in i.value for i in at.info)
    assert not at.button


def test_seeded_session_page_shows_kpis_charts_and_controls(seeded: int, db: Engine) -> None:
    at = app()
    s = session_of(db, seeded)
    assert at.title[0].value == s["name"]
    metrics = {m.label: m for m in at.metric}
    assert {"Equity (USDT)", "Total PnL (USDT)", "Drawdown from peak", "Max drawdown",
            "Open positions", "Closed trades", "CEO verdicts on proposals"} <= set(metrics)
    assert metrics["Equity (USDT)"].value == f"{s['equity']:,.2f}"
    colour = "green" if s["total_pnl"] > 0 else "red"
    assert metrics["Total PnL (USDT)"].value == f":{colour}[{s['total_pnl']:+,.2f}]"
    assert metrics["Drawdown from peak"].value == f"{s['drawdown_pct']:.2f}%"
    assert metrics["Closed trades"].value == f"{s['closed_trades']:,}"
    assert f"{s['verdicts']['approve']:,} approved" in metrics["CEO verdicts on proposals"].delta
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # equity, allocation, drawdown
    allocation = next(c for c in charts if "Allocation" in c.proto.spec)
    assert all(name in allocation.proto.spec for name in NAMES)  # names, not ids
    assert "Engine time (UTC)" in charts[0].proto.spec and "USDT" in charts[0].proto.spec
    assert labels(at)[:2] == ["Pause", "Stop"] and "Resume" not in labels(at)
    split = next(c.value for c in at.caption if c.value.startswith("Total PnL "))
    assert split.startswith(f"Total PnL {s['total_pnl']:+,.2f} = gross {s['realized_pnl']:+,.2f} "
                            f"on closed trades − fees paid {s['fees']:,.2f} + funding "
                            f"{s['funding']:+,.2f} + unrealized {s['unrealized_pnl']:+,.2f}")
    assert split.endswith(f"as of engine time {s['engine_time']} UTC")
    assert s["open_positions"] and s["unrealized_pnl"] != 0 and s["fees"] > 0
    no_raw_values(at)


def test_seeded_agents_page_shows_one_card_per_agent(seeded: int, db: Engine) -> None:
    at = app(AGENTS_PAGE)
    shown = texts(at)
    for name in NAMES:
        assert f"#### {name}" in shown
    assert "rules (no key)" in shown and "max 10x leverage" in shown and "max 20x leverage" in shown
    assert "not risk-free" in shown and "Statistical pair trading" in shown
    agents = queries.agent_stats(db, seeded)
    paused = {a["key"] for a in agents if a["status"] == "paused"}
    assert {b.key for b in at.button if b.label == "Pause"} == {
        f"pause_{a['key']}" for a in agents if a["status"] == "active"}
    assert {b.key for b in at.button if b.label == "Resume"} == {f"resume_{k}" for k in paused}
    traded = max(agents, key=lambda a: a["trades"])
    assert f"{traded['pnl']:+,.2f} USDT" in shown  # PnL in USDT, signed
    assert f"Gross {traded['realized_pnl']:+,.2f} · unrealized" in shown  # before fees, as the CLI
    assert "Realized" not in shown
    assert f"fees paid {traded['fees']:,.2f} ·" in shown and "fees -" not in shown  # one sign
    gross = next(c for c in at.caption if c.value.startswith("Gross "))
    assert "before fees and funding" in gross.help
    assert (":green[" in shown) or (":red[" in shown)  # coloured profit / loss
    no_raw_values(at)


# ---------------------------------------------------------------------- session control
def test_create_session_from_the_form(app_env: str, db: Engine) -> None:
    at = app()
    at.multiselect[0].set_value([])
    button(at, "Create session").click().run()
    assert any("Choose at least one symbol" in e.value for e in at.error)
    assert queries.list_sessions(db) == []

    for typed, said in (("abc", "capital must be a number of USDT, got 'abc'"),
                        ("50", "at least 100 USDT"), ("", "capital is empty"),
                        ("１００００", "must be a number of USDT"),
                        ("1e30", "at most")):
        at.text_input(key="session_capital").set_value(typed)
        at.multiselect[0].set_value(["BTCUSDT"])
        button(at, "Create session").click().run()
        errors = [e.value for e in at.error]
        assert any(e.startswith("Nothing created: ") and said in e for e in errors), (typed, errors)
        assert queries.list_sessions(db) == []  # refused in words, never replaced by a default

    at.text_input(key="session_capital").set_value("50,000")
    at.text_input(key="session_name").set_value("September desk")
    at.multiselect[0].set_value(["BTCUSDT", "ETHUSDT"])
    button(at, "Create session").click().run()
    assert not at.exception
    sessions = queries.list_sessions(db)
    assert len(sessions) == 1
    s = session_of(db, sessions[0]["id"])
    assert (s["name"], s["status"], s["initial_capital"], s["symbols"]) == (
        "September desk", "created", 50_000.0, ["BTCUSDT", "ETHUSDT"])
    # the page now controls that session
    assert at.title[0].value == "September desk"
    assert "Stop" in labels(at) and "Create session" not in labels(at)


def test_the_live_confirmation_shows_only_when_live_is_chosen(app_env: str, db: Engine) -> None:
    at = app()

    def mode() -> Any:
        return next(r for r in at.radio if r.label == "Mode")

    assert mode().value == "paper"
    assert not at.checkbox and not any("Live sends real orders" in c.value for c in at.caption)

    mode().set_value("live").run()  # no submit: the form reacts at once
    assert [c.label for c in at.checkbox] == [
        "Live: use the account's whole available balance",
        "I understand that a live session trades real money on AsterDex"]
    assert not at.checkbox(key="session_confirm_live").value
    assert any("Live sends real orders to AsterDex" in c.value for c in at.caption)
    button(at, "Create session").click().run()
    assert any("Tick the confirmation" in e.value for e in at.error)
    assert queries.list_sessions(db) == []

    at.checkbox(key="session_confirm_live").check().run()
    mode().set_value("paper").run()
    assert not at.checkbox
    mode().set_value("live").run()  # a tick does not outlive its checkbox
    assert not at.checkbox(key="session_confirm_live").value
    mode().set_value("paper").run()
    button(at, "Create session").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [created] = queries.list_sessions(db)
    assert created["mode"] == "paper"


def test_pause_and_resume_the_session(seeded: int, db: Engine) -> None:
    at = app()
    button(at, "Pause").click().run()
    assert session_of(db, seeded)["status"] == "paused"
    assert "Resume" in labels(at) and "Pause" not in labels(at)
    button(at, "Resume").click().run()
    assert session_of(db, seeded)["status"] == "running"
    assert "Pause" in labels(at)


def test_stop_asks_for_confirmation(seeded: int, db: Engine) -> None:
    at = app()
    button(at, "Stop").click().run()
    assert not at.exception
    assert any("at market" in m.value for m in at.markdown)
    assert session_of(db, seeded)["status"] == "running"  # nothing happens before confirming

    button(at, "Cancel").click().run()
    assert session_of(db, seeded)["status"] == "running"
    assert "Stop and close everything" not in labels(at)  # the dialog is gone
    at.run()
    assert "Stop and close everything" not in labels(at)  # and stays gone

    button(at, "Stop").click().run()
    button(at, "Stop and close everything").click().run()
    assert not at.exception
    s = session_of(db, seeded)
    assert s["status"] == "stopped" and s["open_positions"] == 0
    # back to the create form, with the stopped session listed and summarised
    assert "Create session" in labels(at)
    assert any("final equity" in i.value for i in at.info)
    assert len(at.dataframe) == 1
    previous = at.dataframe[0]
    numbers = ["Capital (USDT)", "Final equity (USDT)", "PnL (USDT)", "PnL (%)", "Closed trades"]
    assert all(pd.api.types.is_numeric_dtype(previous.value[c]) for c in numbers)
    assert set(json.loads(previous.proto.columns)) >= set(numbers)  # formatted as numbers
    assert previous.value["PnL (USDT)"].iloc[0] == pytest.approx(s["total_pnl"])
    assert previous.proto.placeholder == "–"


def test_halt_is_explained_and_acknowledged(seeded: int, db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(text("UPDATE sessions SET status='halted', status_reason='drawdown halt' "
                          "WHERE id=:id"), {"id": seeded})
        conn.execute(text("UPDATE agents SET status='stopped', pause_reason='drawdown halt' "
                          "WHERE session_id=:id"), {"id": seeded})
    at = app()
    assert any("Trading halted" in e.value and "resets the drawdown peak" in e.value for e in at.error)
    assert "Pause" not in labels(at) and "Resume" not in labels(at)
    button(at, "Acknowledge halt and resume").click().run()
    assert not at.exception
    assert session_of(db, seeded)["status"] == "running"
    assert {a["status"] for a in queries.agent_stats(db, seeded)} == {"active"}
    assert "Pause" in labels(at) and not at.error


# ---------------------------------------------------------------------- agents
def test_pause_and_resume_an_agent_from_its_card(seeded: int, db: Engine) -> None:
    at = app(AGENTS_PAGE)
    key = next(a["key"] for a in queries.agent_stats(db, seeded) if a["status"] == "active")
    button(at, key=f"pause_{key}").click().run()
    assert not at.exception
    assert agent_status(db, seeded, key)["status"] == "paused"
    assert "paused by user" in texts(at)
    button(at, key=f"resume_{key}").click().run()
    assert agent_status(db, seeded, key)["status"] == "active"
    assert f"pause_{key}" in {b.key for b in at.button}


def test_stopped_session_cards_show_why_and_offer_no_buttons(seeded: int, db: Engine) -> None:
    service.stop_session(db, make_settings(database_url=str(db.url)), seeded)
    at = app(AGENTS_PAGE)
    assert not at.button
    assert texts(at).count("Why: session stopped") == 5
    assert any("final figures" in i.value for i in at.info)


# ---------------------------------------------------------------------- refusals
def test_refused_actions_show_a_message_not_a_traceback(seeded: int, db: Engine) -> None:
    at = app()
    service.change_session(db, seeded, "pause")  # e.g. the CLI paused it meanwhile
    button(at, "Pause").click().run()
    assert not at.exception
    assert any("cannot pause" in e.value for e in at.error)
    assert "Resume" in labels(at)  # and the page shows the real status

    service.change_session(db, seeded, "resume")
    at = app(AGENTS_PAGE)
    key = next(a["key"] for a in queries.agent_stats(db, seeded) if a["status"] == "active")
    service.change_agent(db, seeded, key, "pause")  # e.g. the CEO paused it meanwhile
    button(at, key=f"pause_{key}").click().run()
    assert not at.exception
    assert any("not active" in e.value for e in at.error)


@pytest.mark.parametrize("page", [AGENTS_PAGE, SESSION_PAGE])
def test_pause_callbacks_draw_nothing_themselves(seeded: int, db: Engine, page: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A button callback may run in a fragment's rerun, where drawing is unsupported (Streamlit
    warns "a fragment rerun was triggered with a callback that displays elements" and draws it
    at the top of the app): the outcome is drawn by the page, in its place."""
    from streamlit.runtime.scriptrunner_utils import script_run_context as ctx

    # AppTest runs callbacks outside any fragment; count every callback as a fragment's here,
    # so a callback that draws meets the warning it would meet in a browser
    monkeypatch.setattr(ctx.FragmentThreadState, "in_fragment_callback",
                        property(lambda self: self.run_location is ctx.RunLocation.CALLBACK))
    warned: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: warned.append(record.getMessage())  # type: ignore[method-assign]
    streamlit_log = st_logger.get_logger("root")  # Streamlit's own, which does not propagate
    streamlit_log.addHandler(catcher)
    try:
        at = app(page)
        key = "pause_momentum" if page == AGENTS_PAGE else None
        button(at, "Pause", key=key).click().run()
    finally:
        streamlit_log.removeHandler(catcher)
    assert not at.exception
    assert not any("callback that displays" in m for m in warned), warned
    if page == AGENTS_PAGE:
        assert agent_status(db, seeded, "momentum")["status"] == "paused"
    else:
        assert session_of(db, seeded)["status"] == "paused"
    assert [t.value for t in at.toast]  # what it did, once, as a toast
    at.run()
    assert not at.toast  # not again on the next redraw
