"""External signals: a trade idea sent from outside becomes the sixth agent's proposal on the
engine's next tick, judged by the CEO under the same hard rules, and answered with the verdict.

Runs the real engine (``EngineDriver``) on a real store (SQLite and PostgreSQL) on the bundled
replay; the API's route is tested over a real uvicorn server in ``tests/test_api.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from core import queries, service
from core.agents.base import AgentView
from core.agents.external import STOP_ATR, ExternalSignalsStrategy
from core.agents.roster import EXTERNAL, ROSTER, session_roster
from core.config import Settings
from core.desk.scheduler import EngineDriver
from core.desk.signals import MAX_AGE_MS
from core.errors import ConfigError, InvalidTransition, NotFound
from core.models import Action, ExternalSignal
from core.store.db import open_database
from core.store.tables import EXTERNAL_SIGNALS, AgentRow, ProposalRow
from tests.conftest import make_settings


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(database_url=db_url, agent_llm="none", external_signals_share=0.1)


@pytest.fixture
def store(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def driver(settings: Settings, store: Engine) -> Iterator[EngineDriver]:
    session_id = service.create_session(store, settings).id
    d = EngineDriver(settings, store, session_id=session_id)
    d.tick()  # the engine runs the session and holds its lease
    yield d
    d.stop()


def _sid(store: Engine) -> int:
    return service.resolve_session(store, None).id


def test_the_sixth_agent_gets_its_share_and_the_five_share_the_rest() -> None:
    assert session_roster(0.0) == ROSTER
    six = session_roster(0.1)
    assert [s.key for s in six] == [*(s.key for s in ROSTER), EXTERNAL.key]
    assert six[-1].capital_share == 0.1
    assert sum(s.capital_share for s in six) == pytest.approx(1.0)
    assert six[0].capital_share == pytest.approx(ROSTER[0].capital_share * 0.9)
    with pytest.raises(ValueError):
        session_roster(0.6)


def test_a_session_without_a_share_has_no_signals_agent_and_refuses_a_signal(db_url: str) -> None:
    settings = make_settings(database_url=db_url, agent_llm="none")
    engine = open_database(db_url)
    try:
        sid = service.create_session(engine, settings).id
        assert EXTERNAL.name not in {a["name"] for a in queries.agent_stats(engine, sid)}
        with pytest.raises(ConfigError, match="EXTERNAL_SIGNALS_SHARE"):
            service.submit_signal(engine, settings, symbol="BTCUSDT", side="long")
    finally:
        engine.dispose()


def test_a_signal_is_proposed_on_the_next_tick_and_judged_by_the_ceo(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    sid = _sid(store)
    assert queries.session_status(store, sid)["session"]["status"] == "running"
    sent = service.submit_signal(store, settings, symbol="btcusdt", side="long", leverage=3,
                                 margin_fraction=0.1, confidence=0.7,
                                 note="breakout on the 4h", source="tradingview")
    assert (sent.status, sent.symbol, sent.verdict) == ("pending", "BTCUSDT", None)
    driver.tick()
    judged = service.signal_outcome(store, sent.id)
    assert judged.status == "judged" and judged.verdict in ("approve", "modify")
    log = queries.ceo_log(store, sid, limit=None)
    decision = log[log["id"] == judged.decision_id].iloc[0]
    assert decision["agent"] == EXTERNAL.name and decision["symbol"] == "BTCUSDT"
    assert decision["reason"] == judged.outcome
    positions = queries.open_positions(store, sid)
    mine = positions[positions["agent"] == EXTERNAL.name]
    assert list(mine["symbol"]) == ["BTCUSDT"] and list(mine["side"]) == ["LONG"]
    # the proposal quotes the sender and the stop the agent added (none was sent)
    with store.connect() as conn:
        reasons = conn.execute(select(ProposalRow.reasoning).where(
            ProposalRow.session_id == sid, ProposalRow.kind == "proposal",
            ProposalRow.symbol == "BTCUSDT", ProposalRow.agent_id.in_(
                select(AgentRow.id).where(AgentRow.key == EXTERNAL.key)))).scalars().all()
    assert len(reasons) == 1
    assert f"external signal #{sent.id} from tradingview" in reasons[0]
    assert "breakout on the 4h" in reasons[0] and "no stop was sent" in reasons[0]
    # and a close signal closes it through the same path
    closing = service.submit_signal(store, settings, symbol="BTCUSDT", side="close")
    driver.tick()
    assert service.signal_outcome(store, closing.id).verdict == "approve"
    assert EXTERNAL.name not in set(queries.open_positions(store, sid).get("agent", []))


def test_the_hard_rules_apply_to_a_signal_as_to_any_agent(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    greedy = service.submit_signal(store, settings, symbol="ETHUSDT", side="short",
                                   leverage=125, margin_fraction=1.0)
    driver.tick()
    out = service.signal_outcome(store, greedy.id)
    assert out.status == "judged" and out.verdict == "modify", out
    sid = _sid(store)
    log = queries.ceo_log(store, sid, limit=None)
    rules = log[log["id"] == out.decision_id].iloc[0]["rules"]
    assert "margin_cap" in rules or "leverage" in rules, rules
    pos = queries.open_positions(store, sid)
    held = pos[pos["agent"] == EXTERNAL.name].iloc[0]
    assert held["leverage"] < 125


def test_a_stop_on_the_wrong_side_is_rejected_with_the_rule(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    sid = _sid(store)
    bad = service.submit_signal(store, settings, symbol="BTCUSDT", side="long",
                                stop_price=1e11)  # above the price: not a long's stop
    driver.tick()
    out = service.signal_outcome(store, bad.id)
    assert out.status == "judged" and out.verdict == "reject"
    assert "invalid_proposal" in (out.outcome or "")
    assert EXTERNAL.name not in set(queries.open_positions(store, sid).get("agent", []))


def test_a_signal_is_refused_before_queueing_when_it_cannot_be_proposed(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    with pytest.raises(ConfigError, match="does not trade"):
        service.submit_signal(store, settings, symbol="DOGEUSDT", side="long")
    with pytest.raises(ConfigError, match="side"):
        service.submit_signal(store, settings, symbol="BTCUSDT", side="buy")
    with pytest.raises(ConfigError, match="stop_price"):
        service.submit_signal(store, settings, symbol="BTCUSDT", side="long",
                              stop_price=float("nan"))
    with pytest.raises(NotFound):
        service.submit_signal(store, settings, symbol="BTCUSDT", side="long", session_id=999)
    service.change_agent(store, None, "signals", "pause")
    with pytest.raises(InvalidTransition, match="paused"):
        service.submit_signal(store, settings, symbol="BTCUSDT", side="long")
    assert queries.external_signals(store, _sid(store)).empty  # nothing was queued


def test_without_an_engine_a_signal_is_refused(settings: Settings, store: Engine) -> None:
    service.create_session(store, settings)
    with pytest.raises(InvalidTransition, match="no engine"):
        service.submit_signal(store, settings, symbol="BTCUSDT", side="long")


def test_a_stale_or_interrupted_signal_is_never_proposed(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    stale = service.submit_signal(store, settings, symbol="BTCUSDT", side="long")
    crashed = service.submit_signal(store, settings, symbol="ETHUSDT", side="long")
    with store.begin() as conn:  # one arrived long ago; one was mid-way when an engine died
        conn.execute(update(EXTERNAL_SIGNALS).where(EXTERNAL_SIGNALS.c.id == stale.id)
                     .values(received_ms=EXTERNAL_SIGNALS.c.received_ms - MAX_AGE_MS - 1))
        conn.execute(update(EXTERNAL_SIGNALS).where(EXTERNAL_SIGNALS.c.id == crashed.id)
                     .values(status="working"))
    driver.tick()
    assert service.signal_outcome(store, stale.id).status == "expired"
    failed = service.signal_outcome(store, crashed.id)
    assert failed.status == "failed" and "restart" in (failed.outcome or "")
    sid = _sid(store)
    log = queries.ceo_log(store, sid, limit=None)
    assert EXTERNAL.name not in set(log[log["kind"] == "trade"]["agent"])


def test_a_signal_paused_after_it_was_sent_is_refused_on_the_tick(
        settings: Settings, store: Engine, driver: EngineDriver) -> None:
    sent = service.submit_signal(store, settings, symbol="BTCUSDT", side="long")
    service.change_agent(store, None, "External signals", "pause")
    driver.tick()
    out = service.signal_outcome(store, sent.id)
    assert out.status == "refused" and "paused" in (out.outcome or "")


class _Market:
    symbols = ("BTCUSDT",)
    base_interval = "15m"

    def __init__(self, atr: float | None) -> None:
        self.atr = atr

    def features(self, symbol: str, interval: str):  # type: ignore[no-untyped-def]
        if self.atr is None:
            return None
        return {"atr_14": self.atr}

    def closes(self, symbol: str, interval: str, n: int):  # type: ignore[no-untyped-def]
        raise AssertionError("not read")

    def price(self, symbol: str) -> float:
        return 100.0

    def funding_rate(self, symbol: str) -> float | None:
        return None


def _signal(**kw: object) -> ExternalSignal:
    base: dict[str, object] = dict(id=7, symbol="BTCUSDT", side="long", leverage=3,
                                   margin_fraction=0.1, stop_price=None, take_profit=None,
                                   confidence=0.6, note="n", source=None)
    base.update(kw)
    return ExternalSignal(**base)  # type: ignore[arg-type]


def test_the_agent_adds_an_atr_stop_only_when_none_was_sent() -> None:
    agent = ExternalSignalsStrategy(EXTERNAL)
    view = AgentView(now_ms=0, market=_Market(atr=1.5), equity=1000.0,  # type: ignore[arg-type]
                     signals=(_signal(), _signal(id=8, side="short", stop_price=104.0),
                              _signal(id=9, side="close")))
    long, short, close = agent.decide(view).proposals
    assert long.action is Action.OPEN_LONG and long.stop_price == pytest.approx(100 - STOP_ATR * 1.5)
    assert "no stop was sent" in long.reasoning and "external signal #7" in long.reasoning
    assert short.action is Action.OPEN_SHORT and short.stop_price == 104.0
    assert "no stop was sent" not in short.reasoning
    assert close.action is Action.CLOSE
    # without an ATR the proposal goes without a stop, and the CEO rejects it (invalid_proposal)
    bare = agent.decide(AgentView(now_ms=0, market=_Market(atr=None), equity=1000.0,  # type: ignore[arg-type]
                                  signals=(_signal(),))).proposals[0]
    assert bare.stop_price is None
    assert agent.decide(AgentView(now_ms=0, market=_Market(atr=1.0), equity=1.0)).proposals == []  # type: ignore[arg-type]
