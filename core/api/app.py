"""The FastAPI application: routers, authentication, error handlers, the store's lifetime.

``create_app()`` with no arguments is what ``./desk api`` serves (uvicorn calls it as a factory):
settings from the environment and ``.env``, the store at ``DATABASE_URL`` opened (and migrated)
once and closed at shutdown. Tests pass their own settings and engine. An application without a
token is refused at once (``ConfigError``): it could only answer 401.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Security
from sqlalchemy import Engine

from core.api import agents, auth, backtests, failures, history, market, orders, sessions, signals
from core.api.state import ApiState
from core.config import Settings, load_settings
from core.errors import ConfigError
from core.store.db import open_database

NO_TOKENS = ("API_TOKENS is empty: set one or more comma-separated tokens in .env or the "
             "environment (see .env.example)")
PREFIX = "/api/"
ROUTERS = (sessions.router, agents.router, market.router, history.router,
           orders.router, backtests.router, signals.router)


def create_app(settings: Settings | None = None, engine: Engine | None = None, *,
               clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """The API over ``engine`` (default: a new engine on ``settings.database_url``, disposed at
    shutdown); ``clock`` times the failed-authentication window."""
    settings = settings if settings is not None else load_settings()
    tokens = settings.api_token_list
    if not tokens:
        raise ConfigError(NO_TOKENS)
    owned = engine is None
    store = engine if engine is not None else open_database(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                store.dispose()

    app = FastAPI(
        title="Agentic trading desk API",
        summary="Sessions, agents, the CEO's decisions, trades, a trader's orders and backtests",
        description="Every route needs `Authorization: Bearer <token>` with a token from "
                    "`API_TOKENS`. Errors are JSON: `{\"error\": message}`.",
        version="1",
        lifespan=lifespan,
    )
    app.state.desk = ApiState(settings=settings, engine=store)
    failures.install(app)
    auth.install(app, auth.TokenGuard(tokens, auth.FailureLimiter(clock=clock)), PREFIX)
    for router in ROUTERS:
        app.include_router(router, dependencies=[Security(auth.bearer)])
    return app
