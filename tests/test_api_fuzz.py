"""A property-based fuzz of the API's own OpenAPI schema (schemathesis): whatever a client sends,
valid by the schema or not, the answer is never a 5xx, and every refusal is the API's JSON error.

Each operation the schema publishes is called with generated requests (positive: bodies and
parameters the schema allows; negative: ones it does not) against a real store (SQLite and
PostgreSQL, whose 64-bit columns and strict types refuse what SQLite lets through) holding a session
that has traded, so ids sometimes name real positions, orders and agents. Starting a backtest is
left out: each accepted start would run a year-long backtest in this process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine

from core import service
from core.api.app import create_app
from core.config import Settings
from core.store.db import open_database
from tests.conftest import make_settings
from tests.desk_helpers import run_ticks

TOKEN = "token-fuzz-0123456789"
EXAMPLES = 25  # per operation and mode


@pytest.fixture
def fuzz_settings(db_url: str) -> Settings:
    return make_settings(database_url=db_url, api_tokens=TOKEN, agent_llm="none",
                         bars_per_tick=4, external_signals_share=0.1)


@pytest.fixture
def fuzz_store(fuzz_settings: Settings) -> Iterator[Engine]:
    engine = open_database(fuzz_settings.database_url)
    session_id = service.create_session(engine, fuzz_settings).id
    run_ticks(engine, fuzz_settings, 40, session_id)  # positions, orders and decisions to name
    yield engine
    engine.dispose()


def _operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if not (op.method.upper() == "POST"
                                       and op.path == "/api/agentic/backtests")]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
def test_no_request_gets_a_server_error(fuzz_settings: Settings, fuzz_store: Engine,
                                        mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_settings, fuzz_store))
    operations = _operations(schema)
    assert len(operations) >= 18, [f"{o.method} {o.path}" for o in operations]
    seen: dict[str, set[int]] = {}
    for operation in operations:
        _fuzz(operation, mode, seen)
    assert set(seen) == {f"{o.method.upper()} {o.path}" for o in operations}


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode,
          seen: dict[str, set[int]]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
        if isinstance(case.body, dict) and "wait" in case.body:
            case.body = {**case.body, "wait": 0}  # a queued order or signal answers at once
        response = case.call(headers=headers)
        seen.setdefault(label, set()).add(response.status_code)
        assert response.status_code < 500, (label, case.path_parameters, case.query, case.body,
                                            response.text[:500])
        if response.status_code >= 400:
            assert "application/json" in str(response.headers.get("content-type")), label
            assert isinstance(response.json().get("error"), str), (label, response.text[:300])
            assert "Traceback" not in response.text

    call()
