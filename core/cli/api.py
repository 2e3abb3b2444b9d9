"""``python -m core api``: serve the HTTP API (core/api/) with uvicorn.

    python -m core api [--host 127.0.0.1] [--port 8000]

Loopback by default: the API trades with the desk's money, so exposing it is a decision to make
(``--host 0.0.0.0``), behind TLS. Without a token in ``API_TOKENS`` it refuses to start (exit 2,
one line): an API nobody can call is a mistake, not a service. The CLI and the API are
independent interfaces (pyproject.toml's layers), so uvicorn is given the application factory by
its import path and builds it in the server, where the store is opened once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core.config import Settings

APP_FACTORY = "core.api.app:create_app"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_REFUSED = 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, got {value}")
    return value


def add_parser(sub: Any) -> None:
    a = sub.add_parser("api", help="serve the HTTP API (bearer tokens from API_TOKENS)")
    a.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    a.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")


def run(args: argparse.Namespace, settings: Settings,
        serve: Callable[..., None] | None = None) -> int:
    """Serve until interrupted; ``serve`` is ``uvicorn.run`` unless a caller passes another."""
    if not settings.api_token_list:
        print("error: API_TOKENS is empty: set one or more comma-separated tokens in .env or the "
              "environment (see .env.example)", file=sys.stderr)
        return EXIT_REFUSED
    if serve is None:
        import uvicorn

        serve = uvicorn.run
    print(f"API on http://{args.host}:{args.port}/api/agentic (OpenAPI at /docs); Ctrl-C to stop",
          file=sys.stderr)
    serve(APP_FACTORY, factory=True, host=args.host, port=args.port,
          log_level=settings.log_level.lower())
    return 0
