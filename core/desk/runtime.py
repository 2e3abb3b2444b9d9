"""Composition root: settings and a session row in, a ready ``Desk`` (feed, exchange, clock,
agents, ledger, lease-guarded commit) out. The only module that knows which adapter serves which
mode; the engine itself never branches on the mode."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.agents.base import AgentSpec, Strategy
from core.agents.desk_params import DeskParams, stored_params
from core.agents.llm_agent import LLMAgent
from core.agents.roster import EXTERNAL, EXTERNAL_MODEL
from core.agents.strategies import build_strategies, build_strategy
from core.ceo.rules import RiskLimits
from core.clock import FeedClock
from core.config import Settings
from core.desk.context import Desk
from core.desk.lease import Lease
from core.desk.ledger import load_ledger
from core.desk.live_runtime import live_exchange_for, live_feed_for, report_feed_status
from core.desk.llm_services import build_llm_services  # audit, budget, reviewer, shadow
from core.errors import ConfigError, NotFound
from core.exchanges.base import Exchange
from core.exchanges.paper import PaperExchange
from core.exchanges.symbols import default_filters
from core.feeds.base import MarketFeed
from core.feeds.replay import ReplayFeed, load_replay_data
from core.llm.providers import build_providers, model_label  # provider per agent
from core.models import INTERVAL_MS
from core.store.tables import SessionRow


def paper_account_id(session_id: int) -> str:
    return f"session-{session_id}"


def build_feed(settings: Settings, row: SessionRow, *, streams: bool = False) -> MarketFeed:
    if row.market_source == "asterdex":  # live: AsterDex REST (+ websocket for the engine)
        return live_feed_for(settings, row, streams=streams)
    if row.market_source != "replay":
        raise ConfigError(f"market source {row.market_source!r} is not available in this build")
    data = load_replay_data(settings.replay_data_dir, row.replay_interval or settings.replay_interval,
                            tuple(row.symbols.split(",")))
    return ReplayFeed(data, start_ms=row.clock_ms, bars_per_tick=settings.bars_per_tick)


def build_exchange(settings: Settings, engine: Engine, row: SessionRow) -> Exchange:
    if row.mode == "live":  # live: the AsterDex adapter, account checked before use
        return live_exchange_for(settings, engine, row)
    if row.mode != "paper":
        raise ConfigError(f"session {row.id} is a {row.mode} run: the engine trades only paper and "
                          "live sessions")
    return paper_exchange(settings, engine, paper_account_id(row.id), tuple(row.symbols.split(",")),
                          row.replay_interval or settings.replay_interval)


def paper_exchange(settings: Settings, engine: Engine | None, account_id: str,
                   symbols: tuple[str, ...], interval: str, *,
                   balance: Decimal | None = None) -> PaperExchange:
    """The paper venue with the configured fees, slippage and funding: on its stored account for a
    session, or (no engine) opened with ``balance`` in memory only for a backtest."""
    return PaperExchange(
        engine,
        account_id,
        filters=default_filters(symbols),
        taker_fee=settings.paper_taker_fee,
        slippage_bps=settings.paper_slippage_bps,
        funding_rate=settings.paper_funding_rate,
        funding_interval_hours=settings.paper_funding_interval_hours,
        interval_ms=INTERVAL_MS[interval],
        opening_balance=balance,
    )


def build_desk(settings: Settings, engine: Engine, session_id: int, lease: Lease | None, *,
               hold_market: bool = False) -> Desk:
    """Everything one session's engine needs. With a lease, every commit renews it (and fails if
    another engine took over). ``hold_market``: built to carry out a trader's command while no
    engine runs (see ``Desk.hold_market``)."""
    db = Session(engine, expire_on_commit=False)
    row = db.get(SessionRow, session_id)
    if row is None:
        db.close()
        raise NotFound(f"no session {session_id}")
    feed = build_feed(settings, row, streams=True)
    exchange = build_exchange(settings, engine, row)
    ledger = load_ledger(db, session_id)
    db.commit()
    feed_status: list[str] = []  # live: last feed status written for the UI

    def commit() -> None:
        if lease is not None:
            lease.renew(db)
        report_feed_status(db, session_id, feed, feed_status, exchange)
        db.commit()

    strategies = build_agents(settings, stored_params(row.agent_params))  # never the file's
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
        concurrent_agents=any(isinstance(s, LLMAgent) for s in strategies),  # model calls overlap
        llm=build_llm_services(settings, strategies),  # budget, CEO reviewer, shadow
        hold_market=hold_market,
    )


def build_agents(settings: Settings, params: DeskParams | None = None) -> list[Strategy]:
    """The roster's strategies on ``params`` (the session's stored parameters; the defaults when
    None), each behind the model path when AGENT_LLM gives it a provider (core/llm/providers.py;
    an agent whose model has no key runs on its rules)."""
    rules = build_strategies(params=params)
    providers = build_providers(settings, (s.spec for s in rules))
    limits = RiskLimits.from_settings(settings)
    return [*(s if (p := providers[s.spec.key]) is None else LLMAgent(s, p, limits=limits)
              for s in rules), build_strategy(EXTERNAL)]  # a session without it never asks it


def agent_model_label(settings: Settings, spec: AgentSpec) -> str:
    if spec.key == EXTERNAL.key:
        return EXTERNAL_MODEL
    return model_label(settings, spec)  # per agent, e.g. "Gemini (...)", "rules (no key)"
