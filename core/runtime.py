"""Composition root: settings and a session row in, a ready ``Desk`` (feed, exchange, clock,
agents, ledger, lease-guarded commit) out. The only module that knows which adapter serves which
mode; the engine itself never branches on the mode."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.agents.base import Strategy
from core.agents.llm_agent import LLMAgent
from core.agents.strategies import build_strategies
from core.clock import FeedClock
from core.config import Settings
from core.engine import Desk
from core.errors import ConfigError, NotFound
from core.exchanges.paper import PaperExchange
from core.exchanges.symbols import default_filters
from core.feeds.replay import ReplayFeed, load_replay_data
from core.lease import Lease
from core.ledger import load_ledger
from core.llm.base import EchoProvider
from core.models import INTERVAL_MS
from core.risk import RiskLimits
from core.store.tables import SessionRow


def paper_account_id(session_id: int) -> str:
    return f"session-{session_id}"


def build_feed(settings: Settings, row: SessionRow) -> ReplayFeed:
    if row.market_source != "replay":
        raise ConfigError(f"market source {row.market_source!r} is not available in this build")
    data = load_replay_data(settings.replay_data_dir, row.replay_interval or settings.replay_interval,
                            tuple(row.symbols.split(",")))
    return ReplayFeed(data, start_ms=row.clock_ms, bars_per_tick=settings.bars_per_tick)


def build_exchange(settings: Settings, engine: Engine, row: SessionRow) -> PaperExchange:
    if row.mode != "paper":
        raise ConfigError("live trading on AsterDex is not available in this build; use --mode paper")
    return PaperExchange(
        engine,
        paper_account_id(row.id),
        filters=default_filters(tuple(row.symbols.split(","))),
        taker_fee=settings.paper_taker_fee,
        slippage_bps=settings.paper_slippage_bps,
        funding_rate=settings.paper_funding_rate,
        funding_interval_hours=settings.paper_funding_interval_hours,
        interval_ms=INTERVAL_MS[row.replay_interval or settings.replay_interval],
    )


def build_desk(settings: Settings, engine: Engine, session_id: int, lease: Lease | None) -> Desk:
    """Everything one session's engine needs. With a lease, every commit renews it (and fails if
    another engine took over)."""
    db = Session(engine, expire_on_commit=False)
    row = db.get(SessionRow, session_id)
    if row is None:
        db.close()
        raise NotFound(f"no session {session_id}")
    feed = build_feed(settings, row)
    exchange = build_exchange(settings, engine, row)
    ledger = load_ledger(db, session_id)
    db.commit()

    def commit() -> None:
        if lease is not None:
            lease.renew(db)
        db.commit()

    strategies = build_agents(settings)
    return Desk(
        db=db,
        ledger=ledger,
        feed=feed,
        exchange=exchange,
        clock=FeedClock(feed),
        strategies={s.spec.key: s for s in strategies},
        settings=settings,
        limits=RiskLimits.from_settings(settings),
        commit=commit,
        concurrent_agents=settings.agent_llm != "none",  # model calls overlap; rules run inline
    )


def build_agents(settings: Settings) -> list[Strategy]:
    """The roster's strategies, each behind the model path when AGENT_LLM asks for it."""
    rules = build_strategies()
    if settings.agent_llm == "offline":
        return [LLMAgent(s, EchoProvider()) for s in rules]
    return rules


def agent_model_label(settings: Settings) -> str:
    return "offline (echo-rules)" if settings.agent_llm == "offline" else "rules (no key)"
