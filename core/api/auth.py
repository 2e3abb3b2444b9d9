"""Who may call the API: a bearer token from ``API_TOKENS``, and a lock-out for guessers.

Every ``/api/agentic`` route needs ``Authorization: Bearer <token>`` naming one of the tokens in
the settings. The token is compared with each configured one in constant time
(``hmac.compare_digest``, every token checked whatever matched), so timing tells a guesser nothing.
A missing or wrong token is answered 401; a client (by its address) that has failed
``MAX_FAILURES`` times within ``WINDOW_S`` seconds is answered 429 with ``Retry-After`` until the
oldest of those failures is a minute old, even if it now sends a good token, so tokens cannot be
guessed at speed. Behind a reverse proxy every client shares the proxy's address, and the lock-out
is shared too: the API is meant for loopback or a private network.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

MAX_FAILURES = 5
WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000  # a flood of addresses cannot grow the table without bound

# declared on the routers so /docs shows the scheme and an Authorize button; the check itself is
# the middleware below, which runs before FastAPI reads a request's body
bearer = HTTPBearer(auto_error=False, description="one of the tokens in API_TOKENS")


class FailureLimiter:
    """Failed authentications per client over a sliding window of ``window_s`` seconds."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and now - times[0] >= self._window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it is not locked out."""
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if not times:
                self._failures.pop(client, None)
            if len(times) < self._max:
                return None
            return max(1, math.ceil(times[-self._max] + self._window - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            if client not in self._failures and len(self._failures) >= MAX_TRACKED_CLIENTS:
                for other in [c for c in self._failures if not self._recent(c, now)]:
                    del self._failures[other]
                if len(self._failures) >= MAX_TRACKED_CLIENTS:  # still full: drop the oldest
                    del self._failures[next(iter(self._failures))]
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not let in: its status, message and headers."""

    status: int
    message: str
    headers: dict[str, str]


class TokenGuard:
    """The configured tokens and the failure limiter of one application."""

    def __init__(self, tokens: Sequence[str], limiter: FailureLimiter) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        self.limiter = limiter

    def matches(self, given: str) -> bool:
        offered = given.encode()
        found = False
        for token in self._tokens:  # no early exit: every token is compared
            found |= hmac.compare_digest(offered, token)
        return found

    def check(self, client: str, authorization: str | None) -> Refusal | None:
        """None when the ``Authorization`` header names a configured token; the 401 or 429
        otherwise (a failure counts against ``client``)."""
        wait = self.limiter.retry_after(client)
        if wait is not None:
            return Refusal(429, f"too many failed authentications; retry in {wait} s",
                           {"Retry-After": str(wait)})
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip() and self.matches(token.strip()):
            return None
        self.limiter.failed(client)
        message = ("missing bearer token: send Authorization: Bearer <token>"
                   if not authorization else "invalid token")
        return Refusal(401, message, {"WWW-Authenticate": "Bearer"})


def install(app: FastAPI, guard: TokenGuard, prefix: str) -> None:
    """Check every request under ``prefix`` before anything else reads it (its body, its
    parameters, even whether its route exists), so nothing is answered to a caller without a
    token but 401 or 429."""

    @app.middleware("http")
    async def authenticate(request: Request,
                           call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith(prefix):
            client = request.client.host if request.client is not None else "unknown"
            refusal = guard.check(client, request.headers.get("authorization"))
            if refusal is not None:
                return JSONResponse({"error": refusal.message}, status_code=refusal.status,
                                    headers=refusal.headers)
        return await call_next(request)
