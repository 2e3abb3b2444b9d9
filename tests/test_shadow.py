"""The shadow baseline: the rule-only twin's virtual book (fills with slippage and fees, exits on
bar high/low with gaps at the open) and its promise to stay out of the real ledger and the venue."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import queries
from core.desk.shadow import ShadowPosition, bar_exit, exit_pnl, slipped
from core.exchanges.symbols import default_filters
from core.models import Bar, PositionSide
from core.store.db import open_database
from core.store.tables import PROPOSALS, SHADOW_TRADES
from tests.conftest import make_settings
from tests.desk_helpers import create, fingerprint, run_ticks, venue_matches_store
from tests.test_desk import GOLDEN, GOLDEN_START

BTC = default_filters(("BTCUSDT",))["BTCUSDT"]


def pos(side: PositionSide, stop: float, tp: float | None) -> ShadowPosition:
    return ShadowPosition(1, 1, "BTCUSDT", side, 0.5, 5, 10_000.0, 100_000.0, stop, tp, 20.0)


def bar(o: float, h: float, lo: float, c: float) -> Bar:
    return Bar(0, o, h, lo, c, 1.0)


@pytest.mark.parametrize(("side", "b", "expected"), [
    (PositionSide.LONG, bar(100_000, 100_500, 99_500, 100_100), None),
    (PositionSide.LONG, bar(100_000, 100_500, 98_900, 99_000), (99_000.0, "stop_loss")),
    (PositionSide.LONG, bar(98_000, 98_500, 97_000, 98_100), (98_000.0, "stop_loss")),  # gap
    (PositionSide.LONG, bar(100_000, 102_500, 99_500, 102_000), (102_000.0, "take_profit")),
    (PositionSide.LONG, bar(103_000, 103_500, 102_500, 103_000), (103_000.0, "take_profit")),  # gap
    (PositionSide.LONG, bar(100_000, 102_500, 98_000, 100_000), (99_000.0, "stop_loss")),  # both
    (PositionSide.SHORT, bar(100_000, 101_500, 99_500, 101_000), (101_000.0, "stop_loss")),
    (PositionSide.SHORT, bar(102_000, 102_500, 101_500, 102_000), (102_000.0, "stop_loss")),  # gap
    (PositionSide.SHORT, bar(100_000, 100_500, 97_500, 98_000), (98_000.0, "take_profit")),
])
def test_exits_on_the_bar_like_the_paper_venue(side: PositionSide, b: Bar,
                                               expected: tuple[float, str] | None) -> None:
    stop, tp = (99_000.0, 102_000.0) if side is PositionSide.LONG else (101_000.0, 98_000.0)
    assert bar_exit(pos(side, stop, tp), b) == expected


def test_fills_pay_slippage_and_fees_against_the_trader() -> None:
    assert slipped(100_000.0, buy=True, slippage_bps=2.0, filters=BTC) == 100_020.0
    assert slipped(100_000.05, buy=False, slippage_bps=0.0, filters=BTC) == 100_000.0
    assert slipped(100_000.01, buy=True, slippage_bps=0.0, filters=BTC) == 100_000.1
    long = pos(PositionSide.LONG, 99_000.0, None)
    pnl, fee = exit_pnl(long, 101_000.0, 0.0004)
    assert pnl == pytest.approx(500.0) and fee == pytest.approx(101_000 * 0.5 * 0.0004)
    short = pos(PositionSide.SHORT, 101_000.0, None)
    assert exit_pnl(short, 101_000.0, 0.0)[0] == pytest.approx(-500.0)


def test_the_twin_trades_virtually_and_leaves_the_real_desk_exactly_as_it_was(sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, replay_start=GOLDEN_START,
                             agent_llm="offline", shadow_baseline=True)
    engine = open_database(sqlite_url)
    sid = create(engine, settings)
    assert run_ticks(engine, settings, 600) == 600
    assert fingerprint(engine, sid) == GOLDEN  # not in the ledger, not at the venue
    assert venue_matches_store(engine, sid) == []
    fee, slip = settings.paper_taker_fee, settings.paper_slippage_bps
    with engine.connect() as conn:
        trades = conn.execute(select(SHADOW_TRADES).where(SHADOW_TRADES.c.session_id == sid)).all()
        ref = {(r.agent_id, r.tick_ms, r.symbol): r.ref_price for r in conn.execute(
            select(PROPOSALS.c.agent_id, PROPOSALS.c.tick_ms, PROPOSALS.c.symbol,
                   PROPOSALS.c.ref_price).where(PROPOSALS.c.kind == "proposal"))}
    closed = [t for t in trades if t.status == "closed"]
    assert len(closed) >= 10 and {t.close_reason for t in closed} >= {"stop_loss"}
    filters = default_filters(("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    for t in trades:
        long = t.side == "LONG"
        # the offline twin proposes what the real agent proposed on that tick, at the same price
        entry = slipped(ref[(t.agent_id, t.opened_ms, t.symbol)], buy=long, slippage_bps=slip,
                        filters=filters[t.symbol])
        assert t.entry_price == entry
        assert (t.stop_price < t.entry_price) if long else (t.stop_price > t.entry_price)
        if t.status != "closed":
            continue
        sign = 1 if long else -1
        assert t.realized_pnl == pytest.approx((t.exit_price - t.entry_price) * t.quantity * sign)
        assert t.fees == pytest.approx((t.entry_price + t.exit_price) * t.quantity * fee)
        if t.close_reason == "stop_loss":
            assert sign * t.exit_price <= sign * t.stop_price  # slippage and gaps only hurt
    stats = queries.agent_llm_stats(engine, sid)
    for agent_id, row in stats.items():
        mine = [t for t in closed if t.agent_id == agent_id]
        assert row["shadow_trades"] == len(mine)
        if not any(t.status == "open" and t.agent_id == agent_id for t in trades):
            assert row["shadow_pnl"] == pytest.approx(sum(t.realized_pnl - t.fees for t in mine), abs=0.01)
    engine.dispose()
