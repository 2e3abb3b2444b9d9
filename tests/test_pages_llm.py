"""The LLM views through AppTest: a trade opened on the Positions page shows its whole chain back to
the model call; agent cards show calls, failure rate, cost and the rules-only twin; the Session page
shows cost next to PnL and the daily budget. A rule-only session shows no model figures."""

from __future__ import annotations

from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core import queries
from core.store.tables import CEO_DECISIONS, POSITIONS
from tests.conftest import APP, make_settings
from tests.desk_helpers import create, run_ticks
from tests.test_desk import GOLDEN_START


def seed(db: Engine, url: str, **llm: object) -> int:
    settings = make_settings(database_url=url, replay_start=GOLDEN_START, **llm)
    sid = create(db, settings)
    run_ticks(db, settings, 300)
    return sid


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(name)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text(at: AppTest) -> str:
    parts = [str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "subheader")
             for e in at.get(kind)]
    parts += [f"{m.label} {m.value} {m.delta}" for m in at.metric]
    parts += [str(c.value) for c in at.code]
    return "\n".join(parts)


def test_a_trade_opens_to_its_chain_back_to_the_prompt_and_raw_reply(app_env: str, db: Engine) -> None:
    sid = seed(db, app_env, agent_llm="offline", ceo_llm_review=True, ceo_llm_provider="offline")
    with db.connect() as conn:
        trade_id = conn.scalar(select(POSITIONS.c.id).join(
            CEO_DECISIONS, CEO_DECISIONS.c.id == POSITIONS.c.decision_id).where(
            POSITIONS.c.status == "closed", CEO_DECISIONS.c.llm_call_id.is_not(None))
            .order_by(POSITIONS.c.id))
    assert trade_id is not None
    chain = queries.trade_chain(db, sid, trade_id)
    at = page("views/positions.py")
    at.number_input(key="chain_trade").set_value(trade_id).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = text(at)
    assert f"Trade #{trade_id}" in shown
    assert "CEO verdict" in shown and chain["decision"]["reason"] in shown
    assert "CEO LLM review" in shown and "LLM call" in shown
    assert "model `echo-rules`" in shown and f"prompt `{chain['llm_call']['prompt_version']}`" in shown
    assert chain["llm_call"]["raw_reply"] in shown  # the raw reply, verbatim
    assert chain["llm_call"]["prompt"] in shown
    assert chain["proposal"]["reasoning"] in shown
    assert len(at.dataframe) >= 4  # trades, fills, orders (+ positions / verdict changes)
    at.number_input(key="chain_trade").set_value(10**7).run()
    assert "No trade #10000000 in this session." in text(at)


def test_agent_cards_and_session_page_show_llm_cost_failures_and_the_shadow(
        app_env: str, db: Engine) -> None:
    sid = seed(db, app_env, agent_llm="offline", shadow_baseline=True)
    stats = queries.agent_llm_stats(db, sid)
    at = page("views/agents.py")
    shown = text(at)
    assert shown.count("**LLM:**") == 5 and "failure rate 0.00%" in shown
    assert shown.count("Rules-only twin (shadow)") == len([s for s in stats.values() if "shadow_pnl" in s])
    assert "LLM edge" in shown
    at = page("views/session.py")
    shown = text(at)
    llm = queries.session_llm(db, sid, 10.0)
    assert "LLM cost (USD)" in shown and f"{llm['calls']:,} calls" in shown
    assert "PnL after LLM cost" in shown and f"LLM budget today ({llm['engine_day']})" in shown


def test_a_rule_only_session_shows_no_llm_figures(app_env: str, db: Engine) -> None:
    seed(db, app_env)
    agents = text(page("views/agents.py"))
    assert "**LLM:**" not in agents and "Rules-only twin" not in agents
    assert "no LLM cost" in text(page("views/session.py"))
    at = page("views/positions.py")
    trade_id = int(queries.trades(db, queries.list_sessions(db)[0]["id"], limit=1)["trade_id"][0])
    at.number_input(key="chain_trade").set_value(trade_id).run()
    assert "Rule-based proposal: no model call behind this trade." in text(at)
