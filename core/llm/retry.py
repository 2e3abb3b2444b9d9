"""The failure policy of a model call: bounded retries with back-off, and one readable ``LLMError``.

Both SDKs' own retries are switched off so the desk decides, the same way for every provider, what
is worth another attempt (HTTP 408/409/429, any 5xx, timeouts, connection failures) and what is not
(any other 4xx: a bad key or a bad request will not improve by asking again). Each attempt is
bounded by the SDK's timeout; the delay before attempt ``n + 1`` is ``backoff × 2^(n-1)`` (with
jitter), or the server's ``Retry-After`` when longer, never above ``max_backoff_s``; so the worst
case of one call is ``attempts × timeout + back-off``.

Whatever goes wrong, the caller gets an ``LLMError`` whose message names the provider, the model,
the cause and the number of attempts, with the API key masked even when a server echoes it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from core.errors import LLMError

try:  # the SDKs moved to the httpx2 fork; catch its transport errors as well
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed SDK versions
    httpx2 = None

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 429})
MAX_MESSAGE = 300
_MODULES = tuple(m for m in (httpx, httpx2) if m is not None)
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TimeoutException for m in _MODULES)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _MODULES)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    timeout_s: float = 30.0
    max_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 8.0

    @property
    def attempts(self) -> int:
        return 1 + self.max_retries

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


class CallFailed(Exception):
    """One attempt failed; ``retryable`` says whether another attempt may help, ``retry_after``
    how long the server asked us to wait (seconds), if it did."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def http_failure(status: int, message: str, headers: Mapping[str, str] | None = None) -> CallFailed:
    retryable = status in RETRY_STATUS or status >= 500
    return CallFailed(f"HTTP {status}: {message}", retryable=retryable,
                      retry_after=retry_after_seconds(headers))


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The ``Retry-After`` header in seconds (its delay-seconds form), or None."""
    value = (headers or {}).get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None


def transport_failure(exc: BaseException, timeout_s: float) -> CallFailed | None:
    """A timeout or connection failure from httpx / httpx2, or None for anything else."""
    if isinstance(exc, TIMEOUT_ERRORS):
        return CallFailed(f"timed out after {timeout_s:g} s", retryable=True)
    if isinstance(exc, TRANSPORT_ERRORS):
        return CallFailed(f"connection failed ({type(exc).__name__})", retryable=True)
    return None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def mask(text: str, secret: str) -> str:
    """``text`` without ``secret``, shortened to one readable line."""
    if secret:
        text = text.replace(secret, "***")
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def call_with_retries(
    attempt: Callable[[], T],
    classify: Callable[[Exception], CallFailed],
    policy: RetryPolicy,
    *,
    label: str,
    secret: str,
) -> tuple[T, int]:
    """Run ``attempt`` until it succeeds, fails for good, or the attempts are spent.

    Returns the result and the number of attempts used; raises ``LLMError`` otherwise."""
    for n in range(1, policy.attempts + 1):
        try:
            return attempt(), n
        except Exception as exc:  # every SDK failure is mapped; nothing but LLMError leaves here
            failure = exc if isinstance(exc, CallFailed) else classify(exc)
        message = mask(str(failure), secret)
        if not failure.retryable or n == policy.attempts:
            tries = f"{n} attempt{'s' if n > 1 else ''}"
            raise LLMError(f"{label}: {message} ({tries})") from None
        wait = policy.delay(n)
        if failure.retry_after is not None:  # the server's wish, within our own ceiling
            wait = min(max(wait, failure.retry_after), policy.max_backoff_s)
        log.info("%s: attempt %d failed (%s); retrying in %.2f s", label, n, message, wait)
        _sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
