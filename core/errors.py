"""The desk's exception tree: every failure the desk can name has a type here.

Callers catch the narrowest type they can handle; the CLI and the UI catch ``DeskError`` and show
its message as one readable line. Nothing outside this tree should escape an engine tick.

    DeskError
    ├── ConfigError                 bad settings (malformed DATABASE_URL, unknown mode, ...)
    │   └── InvalidParams           an agent parameter refused (names parameter, value, bound)
    ├── StoreError                  database unreachable or inconsistent
    │   └── LeaseError              another engine holds (or took) this session's lease
    ├── SessionError                invalid user intent on sessions and agents
    │   ├── NotFound                unknown session or agent
    │   ├── InvalidTransition       e.g. pausing a stopped session
    │   └── ConfirmationRequired    a destructive intent (stop, close, flatten, live) not confirmed
    ├── FeedError                   market data unavailable
    │   └── FeedExhausted           a replay reached the end of its recorded data
    ├── ExchangeError               anything the venue (paper or live) says no to
    │   ├── OrderRejected           the venue refused the order (carries the venue code)
    │   │   ├── InsufficientMargin  -2019
    │   │   ├── BelowMinNotional    -4164
    │   │   └── ReduceOnlyRejected  -2022
    │   │   └── DuplicateClientOrderId  -4116: the venue already knows this client order id
    │   ├── UnknownOrderStatus      a timeout/503 on an order: ask the venue, never resend
    │   ├── ExchangeUnavailable     the venue cannot be reached or is rate limiting us
    │   │   └── RateLimited         429/418/-1003: the process-wide back-off is on (retry_after_s)
    │   ├── ExchangeAuthError       bad key, signature or permissions (-1022, -2014, -2015, 401)
    │   ├── ClockSkew               -1021 even after re-syncing with the server clock
    │   └── ExchangeRequestError    the venue refused a non-order request (bad symbol, param...)
    └── LLMError                    a model call failed or its reply was invalid
"""

from __future__ import annotations


class DeskError(Exception):
    """Base of every error the desk raises on purpose."""


class ConfigError(DeskError):
    """Settings are missing or malformed."""


class InvalidParams(ConfigError):
    """An agent parameter (strategy file, editor, optimiser, stored run) was refused.

    ``parameter`` is the flat key (``trend.adx_min``), ``value`` what was given (None: missing or
    unknown), ``bound`` what is accepted, in words; ``line`` the strategy file's line, if any."""

    def __init__(self, message: str, *, parameter: str, value: object, bound: str,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.parameter, self.value, self.bound, self.line = parameter, value, bound, line


class StoreError(DeskError):
    """The database cannot be reached or holds something unexpected."""


class LeaseError(StoreError):
    """This process does not (or no longer) hold the engine lease of a session."""


class SessionError(DeskError):
    """A user intent on a session or agent cannot be carried out."""


class NotFound(SessionError):
    """The named session or agent does not exist."""


class InvalidTransition(SessionError):
    """The requested status change is not allowed from the current status."""


class ConfirmationRequired(SessionError):
    """A destructive intent came without its explicit confirmation; nothing was done."""


class FeedError(DeskError):
    """Market data could not be obtained."""


class FeedExhausted(FeedError):
    """A replay feed has no more recorded bars."""


class ExchangeError(DeskError):
    """The exchange (paper or live) failed or refused."""


class OrderRejected(ExchangeError):
    """The venue refused an order; ``code`` is the venue's (Binance-style) error code."""

    def __init__(self, message: str, code: int = -2010) -> None:
        super().__init__(message)
        self.code = code


class InsufficientMargin(OrderRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=-2019)


class BelowMinNotional(OrderRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=-4164)


class ReduceOnlyRejected(OrderRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=-2022)


# --- AsterDex client errors (core/exchanges/asterdex_*.py) -----------------------------
class DuplicateClientOrderId(OrderRejected):
    """The venue already has an order with this client order id (-4116); nothing new was placed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=-4116)


class ExchangeAuthError(ExchangeError):
    """The venue refused our credentials or signature; retrying will not help."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClockSkew(ExchangeError):
    """The venue rejected our timestamp (-1021) even after re-syncing the clock offset."""


class ExchangeRequestError(ExchangeError):
    """The venue refused a request that is not an order (bad symbol, bad parameter...)."""

    def __init__(self, message: str, code: int | None = None, *,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status  # 404: the venue does not serve this endpoint


class UnknownOrderStatus(ExchangeError):
    """The order may or may not exist at the venue; resolve by querying its client order id."""


class ExchangeUnavailable(ExchangeError):
    """The venue is unreachable, failing or rate limiting; nothing was done."""


class RateLimited(ExchangeUnavailable):
    """Rate limited or IP-banned (429/418/-1003); no request goes out for ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMError(DeskError):
    """A model call failed, timed out or returned something unusable."""
