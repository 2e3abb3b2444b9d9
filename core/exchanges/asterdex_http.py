"""The wire layer of the AsterDex client: sign, send verbatim, read the answer, name the failure.

Why it exists: every endpoint shares the same hazards (clock skew, rate limits, signatures that
must cover the exact bytes sent, responses that lie about success, timeouts that hide whether an
order executed), so they are handled once here and the endpoint layer (``asterdex_client``) stays a
list of typed calls. Promises:

- **Auth.** ``NONE`` requests carry nothing; ``API_KEY`` requests carry the V1 key header;
  ``SIGNED`` requests are signed with V1 HMAC (``timestamp``/``recvWindow``, all parameters in the
  query string) or V3 EIP-712 (microsecond ``nonce``; query for GET, form body otherwise; paths
  moved to ``/fapi/v3``). The signed string is sent byte for byte (see ``asterdex_signing``).
- **Clock.** Timestamps and nonces are local time plus the offset to the server clock, measured with
  ``GET /fapi/v1/time`` (offset = server - midpoint of the round trip) before the first signed
  request and every ``resync_every_s``; a -1021 (or V3 -4225 "nonce expired") re-syncs and retries
  once, then raises ``ClockSkew``.
- **Rate limits.** Every request passes the shared ``RateGate`` first and reports its response
  headers to it; 429/418/-1003/-1015 raise ``RateLimited`` and close the gate for everyone.
- **Errors.** HTTP >= 400 or a body with a negative ``code`` is an error, mapped to the tree in
  ``core.errors``; ``{"code": 200}`` is success. For an order placement (``order=True``) a 5xx,
  -1006/-1007 or a timeout after the request may have left raises ``UnknownOrderStatus``: the caller
  must query the client order id, never resend blindly. A connection that was never established is
  ``ExchangeUnavailable`` (nothing was sent).
- **Secrets.** Messages quote the method, path, venue code and venue message only: never the
  payload, the headers or the library exception (which could carry the URL); ``repr`` shows no key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import httpx

from core.errors import (
    BelowMinNotional,
    ClockSkew,
    DuplicateClientOrderId,
    ExchangeAuthError,
    ExchangeError,
    ExchangeRequestError,
    ExchangeUnavailable,
    InsufficientMargin,
    OrderRejected,
    RateLimited,
    ReduceOnlyRejected,
    UnknownOrderStatus,
)
from core.exchanges.asterdex_ratelimit import RateGate, shared_gate
from core.exchanges.asterdex_signing import (
    MAINNET_CHAIN_ID,
    TESTNET_CHAIN_ID,
    NonceSource,
    Params,
    V1Credentials,
    V3Credentials,
    api_key_headers,
    chain_id_for,
    encode_params,
    format_value,
    sign_v1,
    sign_v3,
)

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO; signed URLs carry signatures (and V3 wallet addresses)
logging.getLogger("httpx").setLevel(logging.WARNING)

Credentials = V1Credentials | V3Credentials

AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
CLOCK_CODES = frozenset({-1021, -4225})
RATE_CODES = frozenset({-1003, -1015})
UNKNOWN_CODES = frozenset({-1006, -1007})
UNAVAILABLE_CODES = frozenset({-1000, -1001, -1016})
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Security(StrEnum):
    NONE = "NONE"  # public market data
    API_KEY = "API_KEY"  # V1 header only (listenKey); signed under V3
    SIGNED = "SIGNED"  # USER_DATA / TRADE


class AsterHttp:
    """Synchronous signed transport over one ``httpx.Client`` (thread-safe for concurrent calls)."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        chain_id: int = 1666,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        max_wait_s: float = 5.0,
        gate: RateGate | None = None,
        transport: httpx.BaseTransport | None = None,
        clock_ms: Callable[[], int] | None = None,
        resync_every_s: float = 300.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.chain_id = chain_id
        # V3 documents every endpoint, public and clock ones too, under /fapi/v3 only (the testnet
        # serves no /fapi/v1 at all): a V3 client, or any client of the testnet, routes them there.
        self.v3_paths = isinstance(credentials, V3Credentials) or is_testnet_host(self.base_url)
        self.recv_window_ms = recv_window_ms
        self.max_wait_s = max_wait_s
        self.gate = gate or shared_gate()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._resync_every_ms = int(resync_every_s * 1000)
        self._offset_ms = 0
        self._synced_at_ms: int | None = None
        self._nonce = self._new_nonce_source()
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, transport=transport,
            headers={"User-Agent": "agentic-desk/asterdex-client"},
        )

    def __repr__(self) -> str:
        return f"AsterHttp(base_url={self.base_url!r}, auth={self.auth_scheme!r})"

    @property
    def auth_scheme(self) -> str | None:
        if isinstance(self.credentials, V1Credentials):
            return "v1"
        if isinstance(self.credentials, V3Credentials):
            return "v3"
        return None

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ clock
    @property
    def clock_offset_ms(self) -> int:
        """Server time minus local time, as last measured (0 before the first sync)."""
        return self._offset_ms

    def now_ms(self) -> int:
        """Best estimate of the server's clock."""
        return self._clock_ms() + self._offset_ms

    def sync_clock(self) -> int:
        """Measure the offset to the server clock; returns it in ms."""
        sent = self._clock_ms()
        data = self._send("GET", "/fapi/v1/time", None, Security.NONE, order=False)
        received = self._clock_ms()
        offset = int(data["serverTime"]) - (sent + received) // 2
        if offset < self._offset_ms:
            # server time moved back: V3 nonces must follow it (the venue only refuses repeats)
            self._nonce = self._new_nonce_source()
        self._offset_ms = offset
        self._synced_at_ms = received
        return self._offset_ms

    def _new_nonce_source(self) -> NonceSource:
        return NonceSource(lambda: self.now_ms() * 1000 + time.time_ns() // 1000 % 1000)

    def _clock_stale(self) -> bool:
        return self._synced_at_ms is None or self._clock_ms() - self._synced_at_ms > self._resync_every_ms

    # ------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        security: Security = Security.NONE,
        order: bool = False,
        exact_path: bool = False,
    ) -> Any:
        """Send one request and return the decoded JSON; raise a typed ``ExchangeError``.

        ``path`` is the V1 path (``/fapi/v1/order``); under V3 every path moves to ``/fapi/v3``
        (``exact_path=True`` sends it as given, for an endpoint outside that scheme).
        ``order=True`` marks an order placement: an unknown outcome raises
        ``UnknownOrderStatus`` instead of ``ExchangeUnavailable``.
        """
        if security is not Security.NONE and self.credentials is None:
            raise ExchangeAuthError(
                f"{path} needs keys: set ASTERDEX_API_KEY/ASTERDEX_SECRET_KEY or the V3 wallet "
                "settings (ASTERDEX_USER, ASTERDEX_SIGNER, ASTERDEX_PRIVATE_KEY)"
            )
        if security is not Security.NONE and self._clock_stale():
            self.sync_clock()
        try:
            return self._send(method, path, params, security, order=order, exact_path=exact_path)
        except ClockSkew:
            if security is Security.NONE:
                raise
            self.sync_clock()
            return self._send(method, path, params, security, order=order, exact_path=exact_path)

    def _build(
        self, method: str, path: str, params: Params | None, security: Security,
        exact_path: bool = False,
    ) -> tuple[str, bytes | None, dict[str, str]]:
        if security is Security.NONE or (
            security is Security.API_KEY and isinstance(self.credentials, V1Credentials)
        ):
            if self.v3_paths and not exact_path:
                path = v3_path_for(path)
            query = encode_params(_plain_pairs(params))
            headers = (
                api_key_headers(self.credentials)
                if security is Security.API_KEY and isinstance(self.credentials, V1Credentials)
                else {}
            )
            return (f"{path}?{query}" if query else path), None, headers
        if isinstance(self.credentials, V1Credentials):
            signed = sign_v1(
                self.credentials, params, timestamp_ms=self.now_ms(), recv_window_ms=self.recv_window_ms
            )
            return f"{path}?{signed.payload}", None, dict(signed.headers)
        assert isinstance(self.credentials, V3Credentials)
        signed = sign_v3(self.credentials, params, chain_id=self.chain_id, nonce=self._nonce())
        v3_path = path if exact_path else v3_path_for(path)
        if method == "GET":
            return f"{v3_path}?{signed.payload}", None, {}
        return v3_path, signed.payload.encode(), dict(FORM)

    def _send(
        self, method: str, path: str, params: Params | None, security: Security, *, order: bool,
        exact_path: bool = False,
    ) -> Any:
        self.gate.acquire(self.max_wait_s)
        url, body, headers = self._build(method, path, params, security, exact_path)
        try:
            response = self._client.request(method, url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            raise ExchangeUnavailable(f"AsterDex {method} {path}: cannot connect") from None
        except httpx.TimeoutException:
            if order:
                raise UnknownOrderStatus(
                    f"AsterDex {method} {path}: no answer in time; the order may or may not exist"
                ) from None
            raise ExchangeUnavailable(f"AsterDex {method} {path}: timed out") from None
        except httpx.HTTPError as exc:
            if order:
                raise UnknownOrderStatus(
                    f"AsterDex {method} {path}: connection lost ({type(exc).__name__}); "
                    "the order may or may not exist"
                ) from None
            raise ExchangeUnavailable(
                f"AsterDex {method} {path}: connection failed ({type(exc).__name__})"
            ) from None
        self.gate.observe(response.status_code, response.headers)
        log.debug("AsterDex %s %s -> %s (weight %s)", method, path, response.status_code,
                  self.gate.used_weight)
        data = _decode(response)
        code = _error_code(data)
        if response.status_code < 400 and code is None:
            return data
        raise self._error(method, path, response, data, code, order=order)

    def _error(
        self, method: str, path: str, response: httpx.Response, data: Any, code: int | None,
        *, order: bool,
    ) -> ExchangeError:
        status = response.status_code
        msg = str(data.get("msg", "")) if isinstance(data, dict) else ""
        msg = msg[:200] or response.reason_phrase or "error"
        where = f"AsterDex {method} {path}: {msg} (HTTP {status}" + (
            f", code {code})" if code is not None else ")"
        )
        if status in (429, 418) or code in RATE_CODES:
            if status not in (429, 418):
                self.gate.trip(None, f"venue code {code}")
            return RateLimited(where, retry_after_s=self.gate.state().closed_for_s)
        if code in CLOCK_CODES:
            return ClockSkew(where)
        if status == 401 or code in AUTH_CODES:
            return ExchangeAuthError(where, code)
        if status == 403:
            self.gate.trip(60.0, "WAF block (403)")
            return ExchangeUnavailable(where)
        if status == 404 and not order:  # no such endpoint here, whatever code the body has
            return ExchangeRequestError(where, code, http_status=404)
        if status >= 500 or code in UNKNOWN_CODES or code in UNAVAILABLE_CODES:
            return UnknownOrderStatus(where) if order else ExchangeUnavailable(where)
        if order:
            if code in (-2018, -2019):
                return InsufficientMargin(where)
            if code == -4164:
                return BelowMinNotional(where)
            if code == -2022:
                return ReduceOnlyRejected(where)
            if code == -4116:
                return DuplicateClientOrderId(where)
            return OrderRejected(where, code if code is not None else -2010)
        return ExchangeRequestError(where, code, http_status=status)


TESTNET_HOST_MARK = "asterdex-testnet."


def is_testnet_host(url: str) -> bool:
    """Whether ``url`` points at the AsterDex testnet (``fapi.asterdex-testnet.com``)."""
    return TESTNET_HOST_MARK in httpx.URL(url).host + "."


def chain_id_for_host(base_url: str, configured: int | None) -> int:
    """The V3 signing chain id: the host's own unless configured, and never the other network's.

    A mainnet chain id on the testnet (or the reverse) makes every signature invalid, so such a
    mismatch is refused with a message instead of failing every call later.
    """
    expected = chain_id_for(is_testnet_host(base_url))
    if configured is None:
        return expected
    other = MAINNET_CHAIN_ID if expected == TESTNET_CHAIN_ID else TESTNET_CHAIN_ID
    if configured == other and "asterdex" in httpx.URL(base_url).host:
        network = "testnet" if expected == TESTNET_CHAIN_ID else "mainnet"
        raise ValueError(
            f"ASTERDEX_CHAIN_ID={configured} signs for the other network, but {base_url} is the "
            f"{network}: use {expected} (or leave ASTERDEX_CHAIN_ID unset to follow the host)")
    return configured


def v3_path_for(path: str) -> str:
    """``/fapi/v1/order`` -> ``/fapi/v3/order`` (V3 serves every endpoint under ``/fapi/v3``)."""
    parts = path.split("/", 3)  # ['', 'fapi', 'v1', 'order']
    if len(parts) == 4 and parts[1] == "fapi":
        return f"/fapi/v3/{parts[3]}"
    return path


def _plain_pairs(params: Params | None) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, dict) else (params or ())
    return [(k, format_value(v)) for k, v in items]


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"msg": f"non-JSON reply ({len(response.content)} bytes)"}


def _error_code(data: Any) -> int | None:
    """The venue's negative error code in a body, or None (``"code": 200`` means success)."""
    if not isinstance(data, dict) or "code" not in data:
        return None
    try:
        code = int(data["code"])
    except (TypeError, ValueError):
        return None
    return code if code < 0 else None
