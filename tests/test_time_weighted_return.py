"""An agent's PnL % is its time-weighted return: the CEO's rebalances move capital, never the %.

The case a trader found: Momentum Hunter lost 1,581 on a 20,000 start (−7.9%) and then gave
capital away in a rebalance; against the capital allocated now the page read −9.17%.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from core import queries
from core.agents.roster import BY_KEY
from core.desk.ledger import AgentLedger
from core.store.tables import AgentRow, CeoDecisionRow
from tests.conftest import make_settings
from tests.desk_helpers import create, run_ticks


def agent(capital: float = 20_000.0) -> AgentLedger:
    return AgentLedger(id=1, spec=BY_KEY["momentum"], status="active", pause_reason=None,
                       capital=capital, initial_capital=capital, realized_pnl=0.0, fees=0.0,
                       funding=0.0, peak_equity=capital)


def twr(a: AgentLedger) -> float:
    equity = a.equity({})
    base = a.return_base if a.return_base is not None else a.initial_capital
    return a.return_index * equity / base - 1


def test_a_transfer_moves_capital_but_not_the_return() -> None:
    a = agent()
    a.realized_pnl = -1_581.0
    assert twr(a) == pytest.approx(-0.07905)
    a.transfer(-2_759.0, a.equity({}))
    assert a.capital == pytest.approx(17_241.0)
    assert twr(a) == pytest.approx(-0.07905)  # the transfer is neither a gain nor a loss
    a.realized_pnl += 0.10 * a.equity({})  # then 10% on what it holds now
    assert twr(a) == pytest.approx((1 - 0.07905) * 1.10 - 1)
    a.transfer(5_000.0, a.equity({}))  # and in again
    assert twr(a) == pytest.approx((1 - 0.07905) * 1.10 - 1)


def test_the_agents_page_figure_is_the_time_weighted_return(db: Engine) -> None:
    settings = make_settings(database_url=str(db.url), replay_start="2025-09-01")
    session_id = create(db, settings)
    with db.begin() as conn:  # Momentum Hunter: −1,581 on 20,000, then 2,759 moved out
        conn.execute(update(AgentRow).where(AgentRow.session_id == session_id,
                                            AgentRow.key == "momentum").values(
            capital=17_241.0, realized_pnl=-1_581.0, return_index=18_419.0 / 20_000.0,
            return_base=18_419.0 - 2_759.0))
    stats = {s["key"]: s for s in queries.agent_stats(db, session_id)}
    assert stats["momentum"]["pnl"] == pytest.approx(-1_581.0)
    assert stats["momentum"]["pnl_pct"] == pytest.approx(-7.905, abs=1e-3)  # not −9.17
    assert stats["trend"]["pnl_pct"] == 0.0  # no trade, no transfer


def test_rebalances_in_a_run_record_where_each_period_ended(db: Engine) -> None:
    settings = make_settings(database_url=str(db.url), replay_start="2025-10-08")
    session_id = create(db, settings)
    run_ticks(db, settings, 400)  # through the October crash: daily rebalances move capital
    with db.connect() as conn:
        moved = conn.scalar(select(CeoDecisionRow.changes).where(
            CeoDecisionRow.session_id == session_id, CeoDecisionRow.kind == "rebalance"))
        rows = conn.execute(select(AgentRow).where(AgentRow.session_id == session_id)).all()
    if moved is None:
        pytest.fail("no rebalance in 400 ticks: the test needs one")
    transferred = [r for r in rows if abs(r.capital - r.initial_capital) > 1e-6]
    assert transferred and all(r.return_base is not None for r in transferred)
    assert all(r.return_base is None and r.return_index == 1.0 for r in rows
               if r not in transferred)
    for s in queries.agent_stats(db, session_id):  # a run's % reads off its own records
        r = next(r for r in rows if r.id == s["id"])
        base = r.return_base if r.return_base is not None else r.initial_capital
        assert s["pnl_pct"] == pytest.approx((r.return_index * s["equity"] / base - 1) * 100,
                                             abs=2e-3)
