"""The AsterDex futures REST client: every endpoint a desk needs, typed, rounded and safe to retry.

Why: live trading must be correct to the byte and honest when the network lies. The wire hazards
(signing, clock offset, rate limits, error codes) live in ``asterdex_http``; this module is the
endpoint list plus the trading rules that protect money:

- results are typed (``core.models`` domain types, or the venue types of ``asterdex_types``) with
  ``Decimal`` for every price, quantity and fee;
- quantities are rounded *down* to the step and prices to the tick before sending (stop and limit
  prices in the direction that never makes the order worse for the account: a protective stop
  triggers no later, a limit never pays more); leverage is clamped to the symbol's bracket;
- order placement, resolution of unknown outcomes and cancels live in ``asterdex_orders``
  (mixed in): ``place_order`` sends once, ``place_order_safely`` resolves an unknown outcome by
  asking, and re-sends only on request;
- ``exchange_info`` and leverage brackets are cached (``info_ttl_s``);
- ``AsterDexClient.from_settings`` picks the auth scheme from ``ASTERDEX_AUTH`` or from which keys
  are set; secrets never appear in ``repr``, messages or logs.

Thread safety: calls may come from several threads; caches are replaced atomically and the
order-id map is locked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

import httpx

from core.config import Settings
from core.errors import ConfigError, ExchangeError, ExchangeRequestError
from core.exchanges.asterdex_http import AsterHttp, Credentials, Security, chain_id_for_host
from core.exchanges.asterdex_orders import OrderEndpoints
from core.exchanges.asterdex_ratelimit import GateState, RateGate
from core.exchanges.asterdex_signing import ParamValue, V1Credentials, V3Credentials
from core.exchanges.asterdex_types import (
    AccountInfo,
    AssetBalance,
    ExchangeInfo,
    FundingRateRecord,
    IncomeRecord,
    Kline,
    LeverageBracket,
    PositionRisk,
    PremiumIndex,
    PriceTick,
    Ticker24h,
    UserTrade,
    parse_account,
    parse_asset,
    parse_brackets,
    parse_funding,
    parse_income,
    parse_info,
    parse_kline,
    parse_order,
    parse_position,
    parse_premium,
    parse_price,
    parse_ticker,
    parse_trade,
)
from core.models import (
    ExchangePosition,
    Fill,
    SymbolFilters,
)

NO_NEED_MARGIN_TYPE = -4046
NO_NEED_POSITION_SIDE = -4059


log = logging.getLogger(__name__)

def credentials_from_settings(settings: Settings) -> Credentials | None:
    """V1 or V3 credentials per ``ASTERDEX_AUTH`` (auto: V1 if its keys are set, else V3, else
    none). Raises ``ConfigError`` naming the missing settings, never their values."""
    v1 = settings.asterdex_api_key is not None and settings.asterdex_secret_key is not None
    v3 = bool(settings.asterdex_user and settings.asterdex_signer and settings.asterdex_private_key)
    scheme = settings.asterdex_auth
    if scheme == "auto":
        scheme = "v1" if v1 else "v3" if v3 else "auto"
    try:
        if scheme == "v1":
            if not v1:
                raise ConfigError("ASTERDEX_AUTH=v1 needs ASTERDEX_API_KEY and ASTERDEX_SECRET_KEY")
            assert settings.asterdex_api_key and settings.asterdex_secret_key
            return V1Credentials(settings.asterdex_api_key, settings.asterdex_secret_key)
        if scheme == "v3":
            if not v3:
                raise ConfigError(
                    "ASTERDEX_AUTH=v3 needs ASTERDEX_USER, ASTERDEX_SIGNER and ASTERDEX_PRIVATE_KEY"
                )
            assert settings.asterdex_user and settings.asterdex_signer and settings.asterdex_private_key
            return V3Credentials(settings.asterdex_user, settings.asterdex_signer,
                                 settings.asterdex_private_key)
    except ValueError as exc:  # the credential classes never quote secrets
        raise ConfigError(f"AsterDex credentials: {exc}") from None
    return None


def chain_id_from_settings(settings: Settings) -> int:
    """The V3 signing chain id for the configured host (``ConfigError`` on a mismatch)."""
    try:
        return chain_id_for_host(settings.asterdex_base_url, settings.asterdex_chain_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class AsterDexClient(OrderEndpoints):
    """Typed AsterDex futures endpoints over ``AsterHttp``. Use ``from_settings`` in the desk."""

    def __init__(
        self,
        http: AsterHttp,
        *,
        ws_url: str = "wss://fstream.asterdex.com",
        info_ttl_s: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.ws_url = ws_url.rstrip("/")
        self._info_ttl_s = info_ttl_s
        self._sleep = sleep
        self._info: tuple[float, ExchangeInfo] | None = None
        self._brackets: dict[str, list[LeverageBracket]] = {}
        self._order_ids: OrderedDict[str, str] = OrderedDict()  # venue order id -> client id
        self._account_fallback = False  # the venue 404'd accountWithJoinMargin once
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        gate: RateGate | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> AsterDexClient:
        chain_id = chain_id_from_settings(settings)
        http = AsterHttp(
            settings.asterdex_base_url, credentials=credentials_from_settings(settings),
            chain_id=chain_id, recv_window_ms=settings.asterdex_recv_window_ms,
            timeout_s=settings.asterdex_timeout_s, max_wait_s=settings.asterdex_max_wait_s,
            gate=gate, transport=transport,
        )
        return cls(http, ws_url=settings.asterdex_ws_url)

    def __repr__(self) -> str:
        return f"AsterDexClient(base_url={self.http.base_url!r}, auth={self.auth_scheme!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AsterDexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def auth_scheme(self) -> str | None:
        """``"v1"``, ``"v3"`` or None (public endpoints only)."""
        return self.http.auth_scheme

    @property
    def has_credentials(self) -> bool:
        return self.http.credentials is not None

    @property
    def clock_offset_ms(self) -> int:
        return self.http.clock_offset_ms

    def rate_state(self) -> GateState:
        """Used weight, order count and any back-off in force (process-wide)."""
        return self.http.gate.state()

    def _get(self, path: str, params: Mapping[str, ParamValue | None] | None = None,
             security: Security = Security.NONE) -> Any:
        return self.http.request("GET", path, _clean(params), security=security)

    def _signed(self, method: str, path: str, params: Mapping[str, ParamValue | None] | None = None,
                *, order: bool = False, exact_path: bool = False) -> Any:
        return self.http.request(method, path, _clean(params), security=Security.SIGNED, order=order,
                                 exact_path=exact_path)

    # ================================================================== public market data
    def server_time(self) -> int:
        """The venue's clock in ms."""
        return int(self._get("/fapi/v1/time")["serverTime"])

    def sync_clock(self) -> int:
        """Re-measure the offset to the server clock (ms, server minus local) and return it."""
        return self.http.sync_clock()

    def exchange_info(self, *, refresh: bool = False) -> ExchangeInfo:
        """Symbol filters, trading status and rate limits; cached for ``info_ttl_s``. Also sets
        the rate gate's weight limit from the venue's ``REQUEST_WEIGHT`` rule."""
        cached = self._info
        if cached and not refresh and time.monotonic() - cached[0] < self._info_ttl_s:
            return cached[1]
        info = parse_info(self._get("/fapi/v1/exchangeInfo"))
        limit = info.weight_limit()
        if limit:
            self.http.gate.weight_limit = limit
        self._info = (time.monotonic(), info)
        return info

    def filters(self, symbol: str) -> SymbolFilters:
        """The symbol's filters from exchangeInfo, with ``max_leverage`` from its leverage bracket
        when one was loaded (``leverage_brackets``). Unknown symbols raise ``ExchangeRequestError``."""
        symbol = symbol.upper()
        info = self.exchange_info()
        if symbol not in info.filters:
            raise ExchangeRequestError(f"AsterDex does not list {symbol}", code=-1121)
        base = info.filters[symbol]
        brackets = self._brackets.get(symbol)
        if brackets:
            top = max(b.initial_leverage for b in brackets)
            first = min(brackets, key=lambda b: b.bracket)
            return replace(base, max_leverage=top, maint_margin_rate=first.maint_margin_ratio)
        return base

    def prices(self, symbol: str | None = None) -> dict[str, PriceTick]:
        """Last prices, one symbol or all."""
        data = self._get("/fapi/v1/ticker/price", {"symbol": symbol.upper()} if symbol else None)
        rows = data if isinstance(data, list) else [data]
        return {r["symbol"]: parse_price(r) for r in rows}

    def price(self, symbol: str) -> Decimal:
        return self.prices(symbol)[symbol.upper()].price

    def tickers_24h(self, symbol: str | None = None) -> list[Ticker24h]:
        data = self._get("/fapi/v1/ticker/24hr", {"symbol": symbol.upper()} if symbol else None)
        return [parse_ticker(r) for r in (data if isinstance(data, list) else [data])]

    def premium_index(self, symbol: str | None = None) -> list[PremiumIndex]:
        """Mark price, index price and the current funding rate, one symbol or all."""
        data = self._get("/fapi/v1/premiumIndex", {"symbol": symbol.upper()} if symbol else None)
        return [parse_premium(r) for r in (data if isinstance(data, list) else [data])]

    def funding_rates(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
                      limit: int = 100) -> list[FundingRateRecord]:
        """Funding rate history, oldest first."""
        data = self._get("/fapi/v1/fundingRate", {"symbol": symbol.upper(), "startTime": start_ms,
                                                  "endTime": end_ms, "limit": limit})
        return [parse_funding(r) for r in data]

    def klines(self, symbol: str, interval: str, *, start_ms: int | None = None,
               end_ms: int | None = None, limit: int = 500) -> list[Kline]:
        """Candles, oldest first. The last one may still be open (close time in the future)."""
        data = self._get("/fapi/v1/klines", {"symbol": symbol.upper(), "interval": interval,
                                             "startTime": start_ms, "endTime": end_ms, "limit": limit})
        return [parse_kline(r) for r in data]

    # ================================================================== account (signed)
    def account(self) -> AccountInfo:
        """Account totals: ``/fapi/v4/account`` with V1 keys; under V3 the documented
        ``/fapi/v3/accountWithJoinMargin`` (``/fapi/v3/account`` was renamed so), falling back to
        ``/fapi/v4/account`` with the V3 signature (what ccxt reads) if the venue answers 404."""
        if self.auth_scheme != "v3":
            return parse_account(self._signed("GET", "/fapi/v4/account"))
        if not self._account_fallback:
            try:
                return parse_account(self._signed("GET", "/fapi/v3/accountWithJoinMargin",
                                                  exact_path=True))
            except ExchangeRequestError as exc:
                if exc.http_status != 404:
                    raise
                log.warning("AsterDex answered 404 to GET /fapi/v3/accountWithJoinMargin; reading "
                            "the account from /fapi/v4/account (V3 signature) from now on")
                self._account_fallback = True
        return parse_account(self._signed("GET", "/fapi/v4/account", exact_path=True))

    def balances(self) -> list[AssetBalance]:
        return [parse_asset(r) for r in self._signed("GET", "/fapi/v2/balance")]

    def position_risk(self, symbol: str | None = None) -> list[PositionRisk]:
        """Every positionRisk row (flat ones included), with margin type and position side."""
        data = self._signed("GET", "/fapi/v2/positionRisk", {"symbol": symbol.upper() if symbol else None})
        return [parse_position(r) for r in data]

    def positions(self, symbol: str | None = None) -> list[ExchangePosition]:
        """Non-zero positions only."""
        return [p.to_position() for p in self.position_risk(symbol) if p.amount != 0]

    def get_position_mode(self) -> bool:
        """True when the account is in hedge (dual-side) mode; the desk needs one-way (False)."""
        raw = self._signed("GET", "/fapi/v1/positionSide/dual").get("dualSidePosition")
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ExchangeError(f"AsterDex positionSide/dual answered dualSidePosition={raw!r}; "
                            "expected true or false")

    def set_position_mode(self, dual_side: bool) -> bool:
        """Switch hedge/one-way mode for all symbols; returns False if it already was so."""
        return self._no_need(NO_NEED_POSITION_SIDE, "POST", "/fapi/v1/positionSide/dual",
                             {"dualSidePosition": dual_side})

    def set_margin_type(self, symbol: str, margin_type: Literal["ISOLATED", "CROSSED"]) -> bool:
        """Set the symbol's margin type; returns False if it already was so."""
        return self._no_need(NO_NEED_MARGIN_TYPE, "POST", "/fapi/v1/marginType",
                             {"symbol": symbol.upper(), "marginType": margin_type})

    def _no_need(self, code: int, method: str, path: str, params: dict[str, ParamValue]) -> bool:
        try:
            self._signed(method, path, params)
        except ExchangeRequestError as exc:
            if exc.code == code:
                return False
            raise
        return True

    def leverage_brackets(self, symbol: str, *, refresh: bool = False) -> list[LeverageBracket]:
        """The symbol's notional brackets (max leverage per notional); cached."""
        symbol = symbol.upper()
        if refresh or symbol not in self._brackets:
            data = self._signed("GET", "/fapi/v1/leverageBracket", {"symbol": symbol})
            self._brackets[symbol] = parse_brackets(data, symbol)
        return self._brackets[symbol]

    def max_leverage(self, symbol: str) -> int:
        """The highest leverage the venue allows on ``symbol`` (from its leverage brackets; the
        offline default of ``filters`` without keys, as brackets are private)."""
        if not self.has_credentials:
            return self.filters(symbol).max_leverage
        brackets = self.leverage_brackets(symbol)
        return max((b.initial_leverage for b in brackets), default=self.filters(symbol).max_leverage)

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set leverage, clamped to 1..the symbol's bracket maximum; returns what the venue set."""
        applied = max(1, min(int(leverage), self.max_leverage(symbol)))
        data = self._signed("POST", "/fapi/v1/leverage", {"symbol": symbol.upper(), "leverage": applied})
        return int(data["leverage"])

    def user_trades(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
                    from_id: int | None = None, limit: int = 500) -> list[UserTrade]:
        """The account's trades on ``symbol``, oldest first (fees and realized PnL included).

        The documented parameters only: there is no ``orderId`` filter (match trades to an order
        by each trade's own ``orderId``), ``fromId`` goes without times, and a time window spans
        at most seven days."""
        if from_id is not None and (start_ms is not None or end_ms is not None):
            raise ValueError("userTrades takes fromId or a time window, not both")
        data = self._signed("GET", "/fapi/v1/userTrades", {
            "symbol": symbol.upper(), "startTime": start_ms, "endTime": end_ms,
            "fromId": from_id, "limit": limit})
        return [parse_trade(r) for r in data]

    def fills_since(self, symbol: str, since_ms: int) -> list[Fill]:
        """User trades at or after ``since_ms`` as domain fills. The client order id comes from
        orders this client placed or queried; otherwise it is looked up (one query per order)."""
        fills = []
        for t in self.user_trades(symbol, start_ms=since_ms, limit=1000):
            cid = self._order_ids.get(t.order_id) or self._client_id_of(symbol, t.order_id)
            fills.append(t.to_fill(cid, liquidation=cid.startswith(("autoclose-", "adl_autoclose"))))
        return fills

    def _client_id_of(self, symbol: str, order_id: str) -> str:
        try:
            data = self._signed("GET", "/fapi/v1/order", {"symbol": symbol.upper(), "orderId": order_id})
        except ExchangeRequestError:
            return ""
        return self._remember(parse_order(data)).client_order_id

    def income(self, symbol: str | None = None, *, income_type: str | None = None,
               start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 100) -> list[IncomeRecord]:
        """Income history (REALIZED_PNL, FUNDING_FEE, COMMISSION, ...); default: last 7 days."""
        data = self._signed("GET", "/fapi/v1/income", {
            "symbol": symbol.upper() if symbol else None, "incomeType": income_type,
            "startTime": start_ms, "endTime": end_ms, "limit": limit})
        return [parse_income(r) for r in data]

    # ================================================================== user data stream
    def new_listen_key(self) -> str:
        """Start (or extend) the user data stream; valid 60 min unless kept alive."""
        return str(self.http.request("POST", "/fapi/v1/listenKey", security=Security.API_KEY)["listenKey"])

    def keepalive_listen_key(self) -> None:
        """Extend the listen key another 60 minutes (call every 30-50 min)."""
        self.http.request("PUT", "/fapi/v1/listenKey", security=Security.API_KEY)

    def close_listen_key(self) -> None:
        self.http.request("DELETE", "/fapi/v1/listenKey", security=Security.API_KEY)

    def user_stream_url(self, listen_key: str) -> str:
        return f"{self.ws_url}/ws/{listen_key}"

    def market_stream_url(self, streams: list[str]) -> str:
        """Combined market stream URL, e.g. ``["btcusdt@markPrice@1s", "btcusdt@kline_1m"]``."""
        return f"{self.ws_url}/stream?streams={'/'.join(streams)}"

    # ================================================================== helpers

def _clean(params: Mapping[str, ParamValue | None] | None) -> dict[str, ParamValue] | None:
    """Drop the optional parameters that were not given."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


__all__ = ["AsterDexClient", "credentials_from_settings"]
