"""Live-mode composition: the AsterDex client, exchange and feed a session needs, and their checks.

Why it exists: the runtime (core/desk/runtime.py) and the service (core/service.py) must stay small and
mode-agnostic, so everything that knows how a live or live-fed session is wired lives here:
building the signed client from the settings, the ``AsterdexExchange`` with its readiness checks
(keys present, one-way position mode, isolated margin on the session's symbols), the live market
feed (with websocket streams when the engine asks for them), the capital a live session may use,
and writing the feed's status (websocket or REST polling, and why) and how fills arrive (the
user data stream, or REST polling and why) to the session row for the UI.
Every error here is a ``DeskError`` whose message says how to fix it; none quotes a secret.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, object_session

from core.config import Settings
from core.errors import ConfigError, DeskError, ExchangeError, ExchangeRequestError
from core.exchanges.asterdex import MISSING_KEYS, AsterdexExchange
from core.exchanges.asterdex_client import AsterDexClient
from core.feeds.asterdex import AsterdexFeed
from core.store.tables import SESSIONS, SessionRow

NO_NEED_MARGIN_CHANGE = -4048  # a position exists: the margin type cannot change now

# One feed and one exchange per (database, session, venue) in a process: a desk rebuilt after an
# error keeps its websocket, its candle history and its sync cursors instead of starting over.
_FEEDS: dict[tuple[str, int, str], AsterdexFeed] = {}
_EXCHANGES: dict[tuple[str, int, str], AsterdexExchange] = {}
_CACHE_LOCK = threading.Lock()


def make_client(settings: Settings) -> AsterDexClient:
    return AsterDexClient.from_settings(settings)


def build_live_feed(settings: Settings, symbols: tuple[str, ...], interval: str, *,
                    streams: bool = False, client: AsterDexClient | None = None,
                    clock_ms: Callable[[], int] | None = None) -> AsterdexFeed:
    """``clock_ms`` defaults to the venue's clock (tests pass a simulated market's)."""
    feed = AsterdexFeed(client or make_client(settings), symbols, interval,
                        history_bars=settings.asterdex_history_bars, clock_ms=clock_ms)
    if streams and settings.asterdex_streams:
        feed.start_streams()
    return feed


def build_live_exchange(settings: Settings, symbols: tuple[str, ...], since_ms: int | None, *,
                        client: AsterDexClient | None = None) -> AsterdexExchange:
    """The checked live venue, reading fills from the user data stream when streams are on."""
    exchange = AsterdexExchange(client or make_client(settings), symbols, since_ms=since_ms,
                                deadman_seconds=settings.asterdex_deadman_seconds)
    check_live_account(exchange)
    if settings.asterdex_streams and settings.asterdex_user_stream:
        exchange.start_user_stream(keepalive_s=settings.asterdex_listen_key_keepalive_s,
                                   reconcile_s=settings.asterdex_reconcile_seconds)
    return exchange


def live_feed_for(settings: Settings, row: SessionRow, *, streams: bool) -> AsterdexFeed:
    """The session's live feed; the engine's (``streams``) is kept for the process."""
    symbols = tuple(row.symbols.split(","))
    interval = row.replay_interval or settings.replay_interval
    if not streams:
        return build_live_feed(settings, symbols, interval)
    db = object_session(row)  # the engine's session: one feed per database and session
    scope = db.get_bind().url.render_as_string(hide_password=True) if db else str(id(row))
    key = (scope, row.id, settings.asterdex_base_url)
    with _CACHE_LOCK:
        feed = _FEEDS.get(key)
        if feed is None:
            feed = _FEEDS[key] = build_live_feed(settings, symbols, interval, streams=True)
        return feed


def live_exchange_for(settings: Settings, engine: Engine, row: SessionRow) -> AsterdexExchange:
    """The session's AsterDex exchange, checked once, kept for the process."""
    key = (engine.url.render_as_string(hide_password=True), row.id, settings.asterdex_base_url)
    with _CACHE_LOCK:
        exchange = _EXCHANGES.get(key)
        if exchange is None:
            exchange = build_live_exchange(settings, tuple(row.symbols.split(",")), row.clock_ms)
            _EXCHANGES[key] = exchange
        return exchange


def release_session(engine: Engine, session_id: int) -> None:
    """A session the engine no longer trades (stopped, or the engine shutting down): close what
    its cached feed and exchange hold (the websocket reader, the dead-man countdown, the HTTP
    client) so a long-running dashboard does not keep them for finished sessions."""
    scope = engine.url.render_as_string(hide_password=True)
    with _CACHE_LOCK:
        feeds = [_FEEDS.pop(k) for k in [k for k in _FEEDS if k[:2] == (scope, session_id)]]
        exchanges = [_EXCHANGES.pop(k) for k in [k for k in _EXCHANGES if k[:2] == (scope, session_id)]]
    for feed in feeds:
        feed.close()
    for exchange in exchanges:
        exchange.close()


def check_live_account(exchange: AsterdexExchange) -> None:
    """Keys and one-way mode (``check_ready``), then isolated margin on every session symbol so
    a position's loss is capped by its own margin as the desk's books assume."""
    try:
        exchange.check_ready()
        for symbol in exchange.symbols:
            exchange.filters(symbol)
            try:
                exchange.client.set_margin_type(symbol, "ISOLATED")
            except ExchangeRequestError as exc:
                if exc.code != NO_NEED_MARGIN_CHANGE:
                    raise
    except ConfigError:
        raise
    except ExchangeError as exc:
        raise ConfigError(f"AsterDex account check failed: {exc}; run `python -m core "
                          "check-exchange` to see which part fails") from None


def live_capital(exchange: AsterdexExchange, requested: float | None) -> float:
    """The account's available balance, or the smaller amount the user asked for."""
    available = float(exchange.balance().available_balance)
    if available <= 0:
        raise ConfigError("the AsterDex futures account has no available USDT balance; "
                          "transfer funds to the futures wallet first")
    if requested is None:
        return available
    if requested > available:
        raise ConfigError(f"capital {requested:,.2f} USDT is more than the account's available "
                          f"balance {available:,.2f} USDT; enter at most that")
    return requested


def live_session_start(settings: Settings, mode: str, capital: float | None,
                       symbols: tuple[str, ...]) -> tuple[float | None, int]:
    """For a session on the live feed: check the venue lists the symbols and (live) that the
    account can trade; returns the capital (live: the available balance or less) and the feed's
    now, where the session's clock starts."""
    client = make_client(settings)
    try:
        if mode == "live" and not client.has_credentials:
            raise ConfigError(MISSING_KEYS)
        try:
            for symbol in symbols:
                client.filters(symbol)
        except ExchangeRequestError as exc:
            raise ConfigError(f"AsterDex does not list one of {', '.join(symbols)}: {exc}") from None
        except ExchangeError as exc:
            raise ConfigError(f"AsterDex market data unavailable at {settings.asterdex_base_url}: "
                              f"{exc}") from None
        if mode == "live":
            exchange = AsterdexExchange(client, symbols)
            check_live_account(exchange)
            capital = live_capital(exchange, capital)
        try:
            start_ms = build_live_feed(settings, symbols, settings.replay_interval,
                                       client=client).now_ms()
        except DeskError as exc:
            raise ConfigError(f"AsterDex market data: {exc}") from None
        return capital, start_ms
    finally:
        client.close()


def report_feed_status(db: Session, session_id: int, feed: object, last: list[str],
                       exchange: object = None) -> None:
    """Store the feed's status line on the session when it changed (``last`` remembers it),
    followed by how fills reach the desk when the venue says (live: user stream or polling)."""
    status = getattr(feed, "status", None)
    fills = getattr(exchange, "fills_status", None)
    if status is not None and fills is not None:
        status = f"{status} · fills: {fills}"
    if status is None or (last and last[0] == status):
        return
    db.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(feed_status=status))
    last[:] = [status]
