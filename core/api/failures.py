"""Every failure as a JSON answer ``{"error": message}``, never a traceback.

The desk's own errors carry messages written for a user (the CLI prints them as its one
``error:`` line); here each type gets its HTTP status: unknown id 404, a change the current state
does not allow 409, bad settings or input 422, a missing confirmation 400, a venue, feed or store
that cannot answer now 503. A malformed request names the field that is wrong. Anything else is a
bug: it is logged with its traceback on the server and answered 500 with no detail.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ConfigError,
    ConfirmationRequired,
    DeskError,
    ExchangeUnavailable,
    FeedError,
    InvalidTransition,
    LeaseError,
    NotFound,
    RateLimited,
    StoreError,
)

log = logging.getLogger(__name__)

# most specific first: the first type an error is an instance of gives its status
STATUS: tuple[tuple[type[DeskError], int], ...] = (
    (NotFound, 404),
    (InvalidTransition, 409),
    (LeaseError, 409),
    (ConfirmationRequired, 400),
    (ConfigError, 422),
    (RateLimited, 503),
    (ExchangeUnavailable, 503),
    (FeedError, 503),
    (StoreError, 503),
)


def status_of(exc: DeskError) -> int:
    """The HTTP status of a desk error; 400 for any the table does not name."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _desk_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DeskError)
    headers = None
    if isinstance(exc, RateLimited) and exc.retry_after_s > 0:
        headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    return _error(status_of(exc), str(exc), headers)


def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append({"field": where, "message": str(err.get("msg", "invalid"))})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return JSONResponse({"error": f"{first['field']}: {first['message']}", "fields": problems},
                        status_code=422)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)


def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database error answering a request: %s", exc)
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return _error(503, f"database: {first[0] if first else type(exc).__name__}")


def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error answering a request", exc_info=exc)
    return _error(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(DeskError, _desk_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _internal_error)
