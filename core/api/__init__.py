"""The desk over HTTP: a FastAPI application for scripts, bots and other programs.

What it owns: the ``/api/agentic/...`` routes, bearer-token authentication against
``API_TOKENS`` (with a lock-out after repeated failures), the mapping of the desk's errors to
JSON answers, and the OpenAPI schema at ``/docs``. What it does not own: every route is a thin
call into ``core.service`` (what a user may do) or ``core.queries`` (what a user may read),
exactly as the CLI and the dashboard call them, so the API can do nothing they cannot. It imports
only those two, ``core.config``, ``core.errors``, ``core.models`` and ``core.store.db``'s
``open_database`` (contracts in pyproject.toml). ``./desk api`` serves
``core.api.app:create_app`` with uvicorn.
"""
