"""One process-wide rate-limit gate for every AsterDex request, so a 429 can never become a storm.

Why: the venue's limits are per IP (2,400 weight per minute by default), ignoring a 429 earns a 418
ban that scales from two minutes to three days, and a bot that keeps retrying feeds its own ban.
Every client in the process therefore shares one ``RateGate`` (``shared_gate()``; tests pass
their own). It promises:

- after a 429 / 418 / -1003 the gate is *closed* until ``Retry-After`` (seconds) has passed, or an
  exponential back-off (1 s, 2 s, 4 s ... 60 s for 429; at least 120 s for 418) when the venue
  sends none; every request checks the gate *before* touching the network;
- a closed gate makes a request wait when the remaining back-off is at most ``max_wait_s``, and
  fail fast with ``RateLimited(retry_after_s=...)`` otherwise; nothing is sent meanwhile;
- the used weight reported by each response (``X-MBX-USED-WEIGHT-1M``, compared case-insensitively)
  is tracked; when it reaches ``slow_down_at`` of the limit, the gate closes until the next minute
  starts, before the venue has to say 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.errors import RateLimited

WEIGHT_HEADER = "x-mbx-used-weight-1m"
ORDER_COUNT_HEADER = "x-mbx-order-count-1m"
DEFAULT_WEIGHT_LIMIT = 2400
BAN_MIN_S = 120.0
BACKOFF_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class GateState:
    """A snapshot for status pages and tests."""

    used_weight: int | None
    order_count: int | None
    weight_limit: int
    closed_for_s: float
    reason: str | None
    strikes: int


class RateGate:
    """Shared back-off state. ``clock`` (seconds, monotonic) and ``sleep`` are injectable."""

    def __init__(
        self,
        *,
        weight_limit: int = DEFAULT_WEIGHT_LIMIT,
        slow_down_at: float = 0.95,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.weight_limit = weight_limit
        self.slow_down_at = slow_down_at
        self._clock = clock
        self._sleep = sleep
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._closed_until = 0.0
        self._reason: str | None = None
        self._strikes = 0
        self.used_weight: int | None = None
        self.order_count: int | None = None

    # ------------------------------------------------------------------ before a request
    def acquire(self, max_wait_s: float) -> None:
        """Return when a request may go out; raise ``RateLimited`` if that is too far away."""
        while True:
            with self._lock:
                remaining = self._closed_until - self._clock()
                reason = self._reason
            if remaining <= 0:
                return
            if remaining > max_wait_s:
                raise RateLimited(
                    f"AsterDex {reason or 'rate limit'}: no requests for another {remaining:.1f} s",
                    retry_after_s=remaining,
                )
            self._sleep(remaining)

    # ------------------------------------------------------------------ after a response
    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Record the response's weight headers; close the gate on 429/418 or near the limit."""
        lower = {k.lower(): v for k, v in headers.items()}
        weight = _int(lower.get(WEIGHT_HEADER))
        orders = _int(lower.get(ORDER_COUNT_HEADER))
        retry_after = _float(lower.get("retry-after"))
        with self._lock:
            if weight is not None:
                self.used_weight = weight
            if orders is not None:
                self.order_count = orders
            if status in (429, 418):
                self._strikes += 1
                if status == 418:
                    wait = retry_after if retry_after is not None else BAN_MIN_S
                    self._close(wait, "IP ban (418)")
                else:
                    wait = retry_after if retry_after is not None else min(
                        BACKOFF_MAX_S, 2.0 ** (self._strikes - 1)
                    )
                    self._close(wait, "rate limit (429)")
                return
            if 200 <= status < 300:
                self._strikes = 0
            if weight is not None and weight >= self.weight_limit * self.slow_down_at:
                until_next_minute = 60.0 - (self._wall() % 60.0) + 0.05
                self._close(until_next_minute, f"request weight {weight}/{self.weight_limit}")

    def trip(self, retry_after_s: float | None, reason: str) -> None:
        """Close the gate for a limit reported in a body (-1003 / -1015) rather than a status."""
        with self._lock:
            self._strikes += 1
            wait = retry_after_s if retry_after_s is not None else min(
                BACKOFF_MAX_S, 2.0 ** (self._strikes - 1)
            )
            self._close(wait, reason)

    def _close(self, seconds: float, reason: str) -> None:
        until = self._clock() + max(0.0, seconds)
        if until > self._closed_until:
            self._closed_until = until
            self._reason = reason

    def state(self) -> GateState:
        with self._lock:
            return GateState(
                used_weight=self.used_weight,
                order_count=self.order_count,
                weight_limit=self.weight_limit,
                closed_for_s=max(0.0, self._closed_until - self._clock()),
                reason=self._reason if self._closed_until > self._clock() else None,
                strikes=self._strikes,
            )


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP-date Retry-After: fall back to our own back-off


_SHARED: RateGate | None = None
_SHARED_LOCK = threading.Lock()


def shared_gate() -> RateGate:
    """The process-wide gate every production client uses (limits are per IP)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = RateGate()
        return _SHARED
