"""The HTTP API (core/api/) as a client sees it: every route, its authentication and its errors.

Most tests drive the application in process with FastAPI's TestClient over a real store (SQLite
and PostgreSQL through ``db_url``); one serves it with uvicorn on a free loopback port and calls it
with httpx, and one starts ``python -m core api`` itself. A refusal is JSON ``{"error": ...}``
with the status the desk's error maps to, and never shows a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from core import queries, service
from core.api.app import create_app
from core.api.auth import MAX_FAILURES, WINDOW_S, FailureLimiter
from core.cli import main as cli_main
from core.config import PROJECT_ROOT, Settings
from core.desk.scheduler import EngineDriver
from core.errors import ConfigError
from core.store.db import open_database
from tests.conftest import make_settings
from tests.desk_helpers import run_ticks

TOKENS = ("token-alpha-0123456789", "token-beta-9876543210")
GOOD = {"Authorization": f"Bearer {TOKENS[0]}"}
OTHER = {"Authorization": f"Bearer {TOKENS[1]}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def api_settings(url: str, **overrides: object) -> Settings:
    return make_settings(**{"database_url": url, "api_tokens": ",".join(TOKENS),
                            "agent_llm": "none", "bars_per_tick": 4, **overrides})


@pytest.fixture
def settings(db_url: str) -> Settings:
    return api_settings(db_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(settings: Settings, store: Engine, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store, clock=clock)) as c:
        yield c


@pytest.fixture
def session_id(settings: Settings, store: Engine) -> int:
    return service.create_session(store, settings).id


def refused(response: httpx.Response, status: int, *expected: str) -> str:
    """The API's error contract: the status, a JSON ``error`` line, no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str) and message
    assert "Traceback" not in response.text
    for text in expected:
        assert text.lower() in message.lower(), message
    return message


# ---------------------------------------------------------------------- authentication
def test_a_request_without_a_token_is_refused(client: TestClient, session_id: int) -> None:
    response = client.get("/api/agentic/session")
    refused(response, 401, "missing bearer token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [
    "Bearer wrong-token", f"Bearer {TOKENS[0]}x", f"Basic {TOKENS[0]}", TOKENS[0],
    f"Bearer {TOKENS[0][:-1]}", "Bearer ", f"Bearer {TOKENS[0]},{TOKENS[1]}",
])
def test_a_wrong_token_is_refused(client: TestClient, session_id: int, header: str) -> None:
    refused(client.get("/api/agentic/session", headers={"Authorization": header}), 401,
            "invalid token")


def test_each_configured_token_is_accepted(client: TestClient, session_id: int) -> None:
    for headers in (GOOD, OTHER, {"Authorization": f"bearer {TOKENS[1]}"}):
        response = client.get("/api/agentic/session", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["session"]["id"] == session_id


def test_repeated_failures_lock_the_client_out_for_a_minute(
        client: TestClient, clock: FakeClock, session_id: int) -> None:
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(MAX_FAILURES):
        refused(client.get("/api/agentic/session", headers=wrong), 401)
        clock.now += 1.0
    # locked out: even the right token waits, and the answer says how long
    locked = client.get("/api/agentic/session", headers=GOOD)
    refused(locked, 429, "too many failed")
    assert int(locked.headers["retry-after"]) == WINDOW_S - MAX_FAILURES
    # another client is not locked out by this one's failures
    with TestClient(client.app, client=("10.1.2.3", 4000)) as elsewhere:
        assert elsewhere.get("/api/agentic/session", headers=GOOD).status_code == 200
    # once the first failure is a minute old, one more try is allowed
    clock.now += WINDOW_S - MAX_FAILURES
    assert client.get("/api/agentic/session", headers=GOOD).status_code == 200
    refused(client.get("/api/agentic/session", headers=wrong), 401)
    refused(client.get("/api/agentic/session", headers=GOOD), 429)


def test_the_limiter_counts_failures_inside_its_window_only() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(max_failures=3, window_s=10.0, clock=clock)
    for _ in range(2):
        limiter.failed("a")
    assert limiter.retry_after("a") is None
    clock.now += 10.0  # both failures have left the window
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") is None
    clock.now += 4.0
    limiter.failed("a")
    assert limiter.retry_after("a") == 6  # the oldest of the three leaves in 6 s
    assert limiter.retry_after("b") is None


def test_nothing_under_the_api_is_answered_without_a_token(client: TestClient) -> None:
    """Not even whether a route exists or a body parses."""
    refused(client.get("/api/agentic/no-such-route"), 401)
    refused(client.post("/api/agentic/session", content=b"{not json",
                        headers={"content-type": "application/json"}), 401)
    refused(client.get("/api/agentic/no-such-route", headers=GOOD), 404)


def test_an_application_without_tokens_is_refused(sqlite_url: str) -> None:
    for tokens in (None, "", " , ,"):
        settings = make_settings(database_url=sqlite_url, api_tokens=tokens)
        assert settings.api_token_list == ()
        with pytest.raises(ConfigError, match="API_TOKENS is empty"):
            create_app(settings)


def test_the_tokens_are_a_secret(settings: Settings) -> None:
    assert settings.api_token_list == TOKENS
    assert TOKENS[0] not in repr(settings) and TOKENS[0] not in str(settings.model_dump())
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    assert "\n# API_TOKENS=\n" in example  # documented, and no token shipped in the example


def test_the_openapi_schema_is_published(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/agentic/session" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/agentic/session"]["get"]["security"] == [{"HTTPBearer": []}]


# ---------------------------------------------------------------------- errors
def test_an_unknown_session_is_404(client: TestClient, session_id: int) -> None:
    refused(client.get("/api/agentic/session", params={"session": session_id + 1}, headers=GOOD),
            404, f"no session {session_id + 1}")


def test_no_session_yet_says_how_to_start(client: TestClient) -> None:
    refused(client.get("/api/agentic/session", headers=GOOD), 404, "no session yet")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", str(2**31), "9" * 400])
def test_a_bad_session_parameter_names_the_field(client: TestClient, value: str) -> None:
    response = client.get("/api/agentic/session", params={"session": value}, headers=GOOD)
    message = refused(response, 422, "session")
    assert message.startswith("query.session:")
    assert response.json()["fields"][0]["field"] == "query.session"


def test_an_unexpected_error_is_500_without_its_detail(
        settings: Settings, store: Engine, session_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(queries, "session_status", broken)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        response = c.get("/api/agentic/session", headers=GOOD)
    refused(response, 500, "internal error")
    assert "secret internal detail" not in response.text


def test_a_database_that_cannot_answer_is_503(sqlite_url: str, tmp_path: Any) -> None:
    settings = api_settings(sqlite_url)
    store = open_database(sqlite_url)
    with TestClient(create_app(settings, store)) as c:
        store.dispose()
        os.remove(sqlite_url.removeprefix("sqlite:///"))
        os.mkdir(sqlite_url.removeprefix("sqlite:///"))  # a folder where the file was
        refused(c.get("/api/agentic/session", headers=GOOD), 503, "database")


# ---------------------------------------------------------------------- session
def test_create_a_session(client: TestClient, store: Engine) -> None:
    response = client.post("/api/agentic/session", headers=GOOD, json={
        "capital": "50,000", "symbols": ["btcusdt", "ETHUSDT"], "name": "api desk"})
    assert response.status_code == 201, response.text
    s = response.json()["session"]
    assert (s["name"], s["status"], s["mode"], s["initial_capital"]) == (
        "api desk", "created", "paper", 50_000.0)
    assert s["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert len(response.json()["agents"]) == 5
    assert response.json()["engine"]["level"] == "starting"
    assert [r["id"] for r in queries.list_sessions(store)] == [s["id"]]
    # one active session at a time, as from the CLI (symbols as a comma-separated text here)
    refused(client.post("/api/agentic/session", headers=GOOD, json={"symbols": "SOLUSDT"}),
            409, f"session {s['id']} (api desk) is still created")


def test_create_takes_the_defaults(client: TestClient, settings: Settings) -> None:
    response = client.post("/api/agentic/session", headers=GOOD, json={})
    assert response.status_code == 201, response.text
    s = response.json()["session"]
    assert s["initial_capital"] == settings.default_capital
    assert s["symbols"] == list(settings.symbol_list)


@pytest.mark.parametrize(("body", "status", "expected"), [
    ({"capital": "abc"}, 422, "capital must be a number"),
    ({"capital": 10}, 422, "at least 100"),
    ({"capital": 1e13}, 422, "at most"),
    ({"capital": "1e400"}, 422, "capital"),
    ({"capital": True}, 422, "capital"),
    ({"capital": [1]}, 422, "capital"),
    ({"capitol": 5000}, 422, "capitol"),
    ({"symbols": ["FOOUSDT"]}, 422, "no market data"),
    ({"symbols": ["BTCUSDT", "btcusdt"]}, 422, "listed twice"),
    ({"symbols": []}, 422, "at least one symbol"),
    ({"symbols": ["X"] * 21}, 422, "symbols"),
    ({"name": "n" * 121}, 422, "name"),
    ({"mode": "demo"}, 422, "mode"),
    ({"mode": "live"}, 400, "real money"),
    ({"mode": "live", "confirm": "yes"}, 422, "confirm"),
    # confirmed, but the settings do not allow live: no keys, as `session create --mode live`
    ({"mode": "live", "confirm": True}, 422, "asterdex"),
])
def test_a_refused_create_creates_nothing(client: TestClient, store: Engine,
                                          body: dict[str, Any], status: int, expected: str) -> None:
    refused(client.post("/api/agentic/session", headers=GOOD, json=body), status, expected)
    assert queries.list_sessions(store) == []


def test_pause_resume_and_stop(client: TestClient, settings: Settings, store: Engine,
                               session_id: int) -> None:
    def put(**body: Any) -> httpx.Response:
        return client.put("/api/agentic/session", headers=GOOD, json=body)

    refused(put(action="pause"), 409, f"cannot pause session {session_id}: it is created")
    assert run_ticks(store, settings, 2) == 2
    assert put(action="pause").json() == {"id": session_id, "name": "Paper desk #1",
                                          "status": "paused"}
    refused(put(action="pause", session=session_id), 409, "it is paused")
    assert put(action="resume", session=session_id).json()["status"] == "running"
    # a stop closes every position: refused without the confirmation, and nothing changes
    refused(put(action="stop"), 400, '"confirm": true')
    refused(put(action="stop", confirm=1), 422, "confirm")
    assert service.resolve_session(store, session_id).status == "running"
    assert put(action="stop", confirm=True).json()["status"] == "stopped"
    assert queries.open_positions(store, session_id).empty
    refused(put(action="resume"), 409, "it is stopped")


@pytest.mark.parametrize(("body", "expected"), [
    ({"action": "halt"}, "action"), ({}, "action"), ({"action": "pause", "session": 0}, "session"),
    ({"action": "pause", "extra": 1}, "extra"),
])
def test_a_malformed_change_names_the_field(client: TestClient, session_id: int,
                                            body: dict[str, Any], expected: str) -> None:
    refused(client.put("/api/agentic/session", headers=GOOD, json=body), 422, expected)


def test_a_change_of_an_unknown_session_is_404(client: TestClient, session_id: int) -> None:
    refused(client.put("/api/agentic/session", headers=GOOD,
                       json={"action": "stop", "session": session_id + 5, "confirm": True}),
            404, f"no session {session_id + 5}")


# ---------------------------------------------------------------------- agents
def test_agents_list_their_figures(client: TestClient, session_id: int) -> None:
    response = client.get("/api/agentic/agents", headers=GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["session"] == session_id
    assert {a["key"] for a in body["agents"]} == {
        "trend", "momentum", "mean_reversion", "scalper", "arbitrage"}
    assert all(a["status"] == "active" and a["trades"] == 0 for a in body["agents"])
    refused(client.get("/api/agentic/agents", params={"session": session_id + 1}, headers=GOOD),
            404)


def test_pause_and_resume_an_agent(client: TestClient, store: Engine, session_id: int) -> None:
    def put(name: str, **body: Any) -> httpx.Response:
        return client.put(f"/api/agentic/agents/{name}", headers=GOOD, json=body)

    def status(key: str) -> str:
        return next(a["status"] for a in queries.agent_stats(store, session_id) if a["key"] == key)

    assert put("momentum", action="pause").json() == {
        "session": session_id, "result": "Momentum Hunter: active → paused"}
    assert status("momentum") == "paused"
    refused(put("Momentum Hunter", action="pause"), 409, "is paused, not active")
    assert put("MOMENTUM HUNTER", action="resume", session=session_id).json()["result"] == (
        "Momentum Hunter: paused → active")
    refused(put("nobody", action="pause"), 404, "no agent 'nobody'")
    refused(put("momentum", action="flatten"), 422, "action")
    refused(put("m" * 61, action="pause"), 422, "name")
    assert status("momentum") == "active"


# ---------------------------------------------------------------------- market, CEO log, trades
class Traded:
    """A session that traded for a while, shared by the read-only tests below."""

    def __init__(self, settings: Settings, engine: Engine, session_id: int) -> None:
        self.settings, self.engine, self.session_id = settings, engine, session_id


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traded]:
    url = f"sqlite:///{tmp_path_factory.mktemp('api_traded') / 'desk.db'}"
    settings = api_settings(url)
    engine = open_database(url)
    session_id = service.create_session(engine, settings).id
    assert run_ticks(engine, settings, 80) == 80
    assert queries.trades_count(engine, session_id) >= 5, "the fixture needs closed trades"
    assert not queries.open_positions(engine, session_id).empty
    yield Traded(settings, engine, session_id)
    engine.dispose()


@pytest.fixture
def reader(traded: Traded) -> Iterator[TestClient]:
    with TestClient(create_app(traded.settings, traded.engine), headers=GOOD) as c:
        yield c


def test_market_shows_prices_account_and_positions(reader: TestClient, traded: Traded) -> None:
    response = reader.get("/api/agentic/market")
    assert response.status_code == 200, response.text
    body = response.json()
    status = queries.session_status(traded.engine, traded.session_id)["session"]
    assert (body["session"], body["mode"], body["market_source"]) == (
        traded.session_id, "paper", "replay")
    assert [p["symbol"] for p in body["prices"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(p["price"] > 0 and p["time"] == body["engine_time"] for p in body["prices"])
    assert body["account"]["equity"] == status["equity"]
    assert body["account"]["open_positions"] == len(body["positions"]) > 0
    assert [p["id"] for p in body["positions"]] == list(
        queries.open_positions(traded.engine, traded.session_id)["id"])
    assert {"mark_price", "unrealized_pnl", "stop_price", "liquidation_price"} <= set(
        body["positions"][0])
    assert {o["id"] for o in body["orders"]} == set(
        queries.open_orders(traded.engine, traded.session_id)["id"])
    assert body["venue"] is None  # a paper session asks no venue
    refused(reader.get("/api/agentic/market", params={"session": traded.session_id + 1}), 404)


def test_ceo_decisions_page_through_everything(reader: TestClient, traded: Traded) -> None:
    def page(**params: Any) -> dict[str, Any]:
        response = reader.get("/api/agentic/ceo-decisions", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    total = queries.ceo_log_count(traded.engine, traded.session_id)
    first = page()
    assert (first["total"], first["limit"], first["offset"]) == (total, 50, 0)
    assert len(first["decisions"]) == min(total, 50)
    ids = [d["id"] for d in first["decisions"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    both = page(limit=10)["decisions"]
    assert page(limit=5)["decisions"] + page(limit=5, offset=5)["decisions"] == both
    assert page(offset=total)["decisions"] == []
    trade = next(d for d in first["decisions"] if d["verdict"] == "modify")
    assert isinstance(trade["changes"], dict) and all(
        isinstance(v, list) and len(v) == 2 for v in trade["changes"].values())
    assert set(trade) == set(queries.CEO_COLUMNS)


@pytest.mark.parametrize(("params", "check"), [
    ({"verdict": "modify"}, lambda d: d["verdict"] == "modify"),
    ({"verdict": "REJECT"}, lambda d: d["verdict"] == "reject"),
    ({"agent": "momentum"}, lambda d: d["agent"] == "Momentum Hunter"),
    ({"agent": "mean reversion pro"}, lambda d: d["agent"] == "Mean Reversion Pro"),
    ({"kind": "session"}, lambda d: d["kind"] == "session"),
    ({"rule": "stop_width"}, lambda d: "stop_width" in d["rules"].split(",")),
])
def test_ceo_decisions_filter_as_the_cli(reader: TestClient, traded: Traded,
                                         params: dict[str, str], check: Any) -> None:
    body = reader.get("/api/agentic/ceo-decisions", params={**params, "limit": 1000}).json()
    wanted = queries.ceo_filters(
        agent=service.agent_name(params.get("agent")),
        verdict=params.get("verdict", "").lower() or None, rule=params.get("rule"),
        kind=params.get("kind"))
    assert body["total"] == queries.ceo_log_count(traded.engine, traded.session_id, **wanted) > 0
    assert len(body["decisions"]) == body["total"]
    assert all(check(d) for d in body["decisions"])


@pytest.mark.parametrize(("params", "expected"), [
    ({"verdict": "maybe"}, "verdict must be one of approve, modify, reject"),
    ({"kind": "gossip"}, "kind must be one of"),
    ({"agent": "nobody"}, "no agent 'nobody'"),
    ({"limit": 0}, "query.limit"), ({"limit": 1001}, "query.limit"),
    ({"offset": -1}, "query.offset"), ({"rule": "r" * 121}, "query.rule"),
])
def test_bad_ceo_filters_are_refused(reader: TestClient, params: dict[str, Any],
                                     expected: str) -> None:
    refused(reader.get("/api/agentic/ceo-decisions", params=params), 422, expected)


def test_trades_as_json(reader: TestClient, traded: Traded) -> None:
    body = reader.get("/api/agentic/trades", params={"limit": 1000}).json()
    rows = queries.trades(traded.engine, traded.session_id, limit=None)
    assert body["total"] == len(rows) == len(body["trades"])
    assert [t["trade_id"] for t in body["trades"]] == list(rows["trade_id"])
    assert list(body["trades"][0]) == queries.TRADE_COLUMNS
    first = body["trades"][0]
    assert first["net_pnl"] == pytest.approx(first["realized_pnl"] - first["fees"]
                                             + first["funding"], abs=1e-6)
    agent, symbol = first["agent"], first["symbol"]
    mine = reader.get("/api/agentic/trades", params={"agent": agent, "symbol": symbol.lower()})
    assert mine.json()["total"] == queries.trades_count(
        traded.engine, traded.session_id, agent=agent, symbol=symbol)
    assert all(t["agent"] == agent and t["symbol"] == symbol for t in mine.json()["trades"])
    paged = reader.get("/api/agentic/trades", params={"limit": 2, "offset": 1}).json()
    assert [t["trade_id"] for t in paged["trades"]] == list(rows["trade_id"][1:3])
    refused(reader.get("/api/agentic/trades", params={"symbol": "DOGEUSDT"}), 422,
            "trades BTCUSDT, ETHUSDT, SOLUSDT, not DOGEUSDT")
    refused(reader.get("/api/agentic/trades", params={"agent": "x"}), 422, "no agent")


def test_trades_as_csv(reader: TestClient, traded: Traded) -> None:
    response = reader.get("/api/agentic/trades.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f"session-{traded.session_id}-trades.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == queries.TRADE_COLUMNS
    assert len(rows) == queries.trades_count(traded.engine, traded.session_id)
    assert all(r["closed_at"].endswith("+00:00") for r in rows)
    assert response.text == queries.trades_csv(traded.engine, traded.session_id)
    agent = rows[0]["agent"]
    only = list(csv.DictReader(io.StringIO(
        reader.get("/api/agentic/trades.csv", params={"agent": agent}).text)))
    assert 0 < len(only) < len(rows) and {r["agent"] for r in only} == {agent}
    refused(reader.get("/api/agentic/trades.csv", headers={"Authorization": "Bearer no"}), 401)
    refused(reader.get("/api/agentic/trades.csv", params={"symbol": "XRPUSDT"}), 422, "not XRPUSDT")


# ---------------------------------------------------------------------- a trader's orders
@pytest.fixture
def trading(settings: Settings, store: Engine, session_id: int) -> int:
    """``session_id`` after 80 ticks: open positions, their stops and a trailing stop or a
    take-profit (momentum rests a trailing stop instead of a take-profit)."""
    assert run_ticks(store, settings, 80) == 80
    assert not queries.open_positions(store, session_id).empty
    return session_id


def trailing_stop(store: Engine, session_id: int) -> int:
    """A resting order a trader may cancel without leaving a position unprotected: the trailing
    stop (momentum's) or the take-profit (the other agents') beside a hard stop."""
    orders = queries.open_orders(store, session_id)
    return int(orders[orders["purpose"].isin(("trailing_stop", "take_profit"))]["id"].iloc[0])


def test_close_a_position(client: TestClient, store: Engine, trading: int) -> None:
    position = int(queries.open_positions(store, trading)["id"].iloc[0])
    url = f"/api/agentic/positions/{position}/close"
    refused(client.post(url, headers=GOOD, json={}), 400, '"confirm": true')
    refused(client.post(url, headers=GOOD, json={"confirm": "true"}), 422, "confirm")
    assert position in set(queries.open_positions(store, trading)["id"])
    response = client.post(url, headers=GOOD, json={"confirm": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["session"], body["kind"], body["status"]) == (trading, "close", "done")
    assert f"(position {position}) at market" in body["note"] and "error" not in body
    assert position not in set(queries.open_positions(store, trading)["id"])
    closed = queries.trades(store, trading, limit=None)
    assert closed[closed["trade_id"] == position]["close_reason"].tolist() == ["user"]
    refused(client.post(url, headers=GOOD, json={"confirm": True}), 409, "is closed, not open")
    refused(client.post("/api/agentic/positions/999999/close", headers=GOOD,
                        json={"confirm": True}), 404, "no position 999999")
    refused(client.post("/api/agentic/positions/0/close", headers=GOOD,
                        json={"confirm": True}), 422, "position_id")
    assert client.get(f"/api/agentic/manual-orders/{body['id']}", headers=GOOD).json() == body


def test_cancel_an_order(client: TestClient, store: Engine, trading: int) -> None:
    order = trailing_stop(store, trading)
    response = client.post(f"/api/agentic/orders/{order}/cancel", headers=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert order not in set(queries.open_orders(store, trading)["id"])
    # a position's only stop is refused: the outcome says why, as `./desk cancel` does
    orders = queries.open_orders(store, trading)
    stop = int(orders[orders["purpose"] == "stop_loss"]["id"].iloc[0])
    response = client.post(f"/api/agentic/orders/{stop}/cancel", headers=GOOD, json={"wait": 0})
    message = refused(response, 409, "only stop", "close the position instead")
    assert response.json()["status"] == "refused" and message.startswith("refused: ")
    assert stop in set(queries.open_orders(store, trading)["id"])
    refused(client.post(f"/api/agentic/orders/{order}/cancel", headers=GOOD), 409, "not resting")
    refused(client.post("/api/agentic/orders/424242/cancel", headers=GOOD), 404, "no order 424242")
    refused(client.post(f"/api/agentic/orders/{stop}/cancel", headers=GOOD, json={"wait": 31}),
            422, "wait")


def test_flatten_an_agent(client: TestClient, store: Engine, trading: int) -> None:
    agent = queries.open_positions(store, trading)["agent"].iloc[0]
    url = f"/api/agentic/agents/{agent}/flatten"
    refused(client.post(url, headers=GOOD, json={"session": trading}), 400, '"confirm": true')
    assert agent in set(queries.open_positions(store, trading)["agent"])
    response = client.post(url, headers=GOOD, json={"session": trading, "confirm": True})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert f"{agent} flattened" in response.json()["note"]
    assert agent not in set(queries.open_positions(store, trading)["agent"])
    stats = {a["name"]: a for a in queries.agent_stats(store, trading)}
    assert (stats[agent]["status"], stats[agent]["pause_reason"]) == ("paused",
                                                                      "flattened by user")
    refused(client.post("/api/agentic/agents/nobody/flatten", headers=GOOD,
                        json={"confirm": True}), 404, "no agent 'nobody'")
    refused(client.get("/api/agentic/manual-orders/999", headers=GOOD), 404, "no manual order 999")


def test_a_running_engine_carries_the_order_out(client: TestClient, settings: Settings,
                                                store: Engine, trading: int) -> None:
    """With an engine holding the session, the order is queued (202) until its next tick; with
    ``wait`` the route answers once the engine has carried it out."""
    driver = EngineDriver(settings, store, session_id=trading)
    try:
        assert driver.tick() is not None  # the driver now holds the session's lease

        def tick_once_queued() -> None:  # the engine's next tick comes after the order is queued
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if (queries.manual_orders(store, trading)["status"] == "pending").any():
                    driver.tick()
                    return
                time.sleep(0.05)

        later = threading.Thread(target=tick_once_queued)
        later.start()
        try:
            waited = client.post(f"/api/agentic/orders/{trailing_stop(store, trading)}/cancel",
                                 headers=GOOD, json={"wait": 30})
        finally:
            later.join()
        assert waited.status_code == 200, waited.text
        assert waited.json()["status"] == "done"

        position = int(queries.open_positions(store, trading)["id"].iloc[0])
        queued = client.post(f"/api/agentic/positions/{position}/close", headers=GOOD,
                             json={"confirm": True})
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] == "pending"
        poll = f"/api/agentic/manual-orders/{queued.json()['id']}"
        assert client.get(poll, headers=GOOD).json()["status"] == "pending"
        driver.tick()
        assert client.get(poll, headers=GOOD).json()["status"] == "done"
        assert position not in set(queries.open_positions(store, trading)["id"])
    finally:
        driver.stop()


# ---------------------------------------------------------------------- backtests
def poll_run(client: TestClient, run_id: int, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/api/agentic/backtests/{run_id}", headers=GOOD)
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["progress"]["status"] not in ("running", "saving"):
            return body
        assert body["run"] is None  # no report before the run is done
        assert time.monotonic() < deadline, f"backtest run {run_id} did not finish"
        time.sleep(0.2)


def test_start_a_backtest_and_read_its_report(client: TestClient, store: Engine) -> None:
    response = client.post("/api/agentic/backtests", headers=GOOD, json={
        "start": "2025-10-08", "end": "2025-10-09", "symbols": "BTCUSDT,ETHUSDT",
        "capital": "20,000", "name": "api run"})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.json()["progress"]["id"] == run_id
    body = poll_run(client, run_id)
    assert body["progress"]["status"] == "done", body["progress"]
    assert body["progress"]["progress"] == 1.0
    run = body["run"]
    assert run["name"] == "api run" and run["params"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    summary = run["report"]["summary"]
    assert summary["initial_capital"] == 20_000.0
    assert summary["trades"] == queries.trades_count(store, run["session_id"])
    assert len(run["report"]["curve"]) > 0
    listed = client.get("/api/agentic/backtests", headers=GOOD).json()["runs"]
    assert [r["id"] for r in listed] == [run_id]
    assert "curve" not in listed[0]["report"] and listed[0]["report"]["summary"] == summary
    # the run's trades are a session's like any other
    trades = client.get("/api/agentic/trades", params={"session": run["session_id"]},
                        headers=GOOD).json()
    assert trades["total"] == summary["trades"]
    refused(client.get(f"/api/agentic/backtests/{run_id + 1}", headers=GOOD), 404,
            f"no backtest run {run_id + 1}")


@pytest.mark.parametrize(("body", "expected"), [
    ({"start": "2025-10-09", "end": "2025-10-08"}, "ends before it starts"),
    ({"start": "1999-01-01", "end": "1999-01-02"}, "outside the data"),
    ({"start": "someday", "end": "2025-10-08"}, "someday"),
    ({"start": "2025-10-08", "end": "2025-10-09", "symbols": ["DOGEUSDT"]}, "DOGEUSDT"),
    ({"start": "2025-10-08", "end": "2025-10-09", "capital": 5}, "at least 100"),
    ({"start": "2025-10-08", "end": "2025-10-09", "interval": "5m"}, "interval"),
    ({"start": "2025-10-08", "end": "2025-10-09", "data_dir": "/etc"}, "data_dir"),
    ({"end": "2025-10-09"}, "start"),
])
def test_a_bad_backtest_request_stores_nothing(client: TestClient, store: Engine,
                                              body: dict[str, Any], expected: str) -> None:
    refused(client.post("/api/agentic/backtests", headers=GOOD, json=body), 422, expected)
    assert queries.backtest_runs(store) == []


def test_one_backtest_at_a_time(client: TestClient, store: Engine,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import core.backtest.jobs as jobs

    monkeypatch.setattr(jobs, "running_run", lambda: 7)
    refused(client.post("/api/agentic/backtests", headers=GOOD,
                        json={"start": "2025-10-08", "end": "2025-10-09"}),
            409, "backtest run 7 is still running")
    assert queries.backtest_runs(store) == []


# ---------------------------------------------------------------------- serving
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(settings: Settings, store: Engine) -> Iterator[str]:
    with serving(settings, store) as url:
        yield url


@contextlib.contextmanager
def serving(settings: Settings, store: Engine) -> Iterator[str]:
    """The application served by uvicorn on a free loopback port, in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_uvicorn_serves_the_api_over_loopback(served: str, session_id: int) -> None:
    with httpx.Client(base_url=served, timeout=30) as http:
        refused(http.get("/api/agentic/session"), 401)
        response = http.get("/api/agentic/session", headers=GOOD)
        assert response.status_code == 200, response.text
        assert response.json()["session"]["id"] == session_id


def test_end_to_end_over_http(served: str, settings: Settings, store: Engine) -> None:
    """Create a session over HTTP, let the engine trade, read its trades and the CEO's decisions
    over HTTP, close one of its positions over HTTP."""
    with httpx.Client(base_url=served, headers=GOOD, timeout=60) as http:
        created = http.post("/api/agentic/session", json={"capital": 100_000})
        assert created.status_code == 201, created.text
        session_id = created.json()["session"]["id"]
        assert run_ticks(store, settings, 80, session_id) == 80

        status = http.get("/api/agentic/session").json()["session"]
        assert (status["id"], status["status"], status["ticks"]) == (session_id, "running", 80)
        trades = http.get("/api/agentic/trades", params={"limit": 1000}).json()
        assert trades["total"] == len(trades["trades"]) == status["closed_trades"] > 0
        decisions = http.get("/api/agentic/ceo-decisions", params={"kind": "trade"}).json()
        assert decisions["total"] == sum(status["verdicts"].values()) > 0
        assert {d["verdict"] for d in decisions["decisions"]} <= {"approve", "modify", "reject"}

        positions = http.get("/api/agentic/market").json()["positions"]
        assert positions, "the engine left no open position to close"
        target = positions[0]
        closed = http.post(f"/api/agentic/positions/{target['id']}/close",
                           json={"confirm": True})
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "done"
        after = http.get("/api/agentic/market").json()["positions"]
        assert target["id"] not in {p["id"] for p in after}
        mine = http.get("/api/agentic/trades", params={"symbol": target["symbol"],
                                                      "agent": target["agent"]}).json()
        assert mine["trades"][0]["trade_id"] == target["id"]
        assert mine["trades"][0]["close_reason"] == "user"
        manual = http.get("/api/agentic/ceo-decisions", params={"kind": "manual"}).json()
        assert manual["total"] >= 1
        assert str(target["id"]) in manual["decisions"][0]["reason"]


def test_a_signal_over_http_ends_as_a_ceo_verdict(db_url: str) -> None:
    """A TradingView-style alert posted to the API is proposed by the External signals agent on
    the running engine's next tick and answered with the CEO's verdict; refusals name the field."""
    settings = api_settings(db_url, external_signals_share=0.1)
    store = open_database(db_url)
    session_id = service.create_session(store, settings).id
    driver = EngineDriver(settings, store, session_id=session_id)
    driver.tick()  # an engine runs the session
    stop = threading.Event()

    def engine_loop() -> None:
        while not stop.is_set():
            driver.tick()
            stop.wait(0.2)

    try:
        with serving(settings, store) as url, httpx.Client(base_url=url, headers=GOOD,
                                                            timeout=60) as http:
            queued = http.post("/api/agentic/signals", json={"symbol": "BTCUSDT", "side": "long",
                                                             "note": "4h breakout",
                                                             "source": "tradingview"})
            assert queued.status_code == 202, queued.text
            assert queued.json()["status"] == "pending"
            driver.tick()
            judged = http.get(f"/api/agentic/signals/{queued.json()['id']}")
            assert judged.status_code == 200 and judged.json()["status"] == "judged", judged.text
            verdict = judged.json()
            assert verdict["verdict"] in ("approve", "modify") and verdict["decision_id"]
            log = http.get("/api/agentic/ceo-decisions",
                           params={"agent": "External signals", "kind": "trade"}).json()
            assert [d["id"] for d in log["decisions"]] == [verdict["decision_id"]]
            assert log["decisions"][0]["reason"] == verdict["outcome"]

            thread = threading.Thread(target=engine_loop, daemon=True)
            thread.start()
            waited = http.post("/api/agentic/signals", json={"symbol": "ETHUSDT",
                                                             "side": "short", "wait": 30,
                                                             "stop_price": 1e11})
            assert waited.status_code == 200, waited.text
            assert (waited.json()["status"], waited.json()["verdict"]) == ("judged", "reject")
            assert "stop_width" in waited.json()["outcome"]  # a short stop far above: too wide
            listed = http.get("/api/agentic/signals").json()
            assert [s["id"] for s in listed] == [waited.json()["id"], verdict["id"]]

            for body, field in (({"symbol": "BTCUSDT", "side": "buy"}, "side"),
                                ({"symbol": "BTCUSDT", "side": "long", "leverage": 1000},
                                 "leverage"),
                                ({"symbol": "BTCUSDT", "side": "long", "stop_price": -1},
                                 "stop_price"),
                                ({"symbol": "BTCUSDT", "side": "long", "confidence": "high"},
                                 "confidence"),
                                ({"side": "long"}, "symbol"),
                                ({"symbol": "BTCUSDT", "side": "long", "size": 1}, "size")):
                refused(http.post("/api/agentic/signals", json=body), 422, field)
            refused(http.post("/api/agentic/signals", json={"symbol": "DOGEUSDT",
                                                            "side": "long"}), 422,
                    "does not trade")
            refused(http.get("/api/agentic/signals/99999"), 404, "no signal")
            assert len(http.get("/api/agentic/signals").json()) == 2  # nothing more queued
    finally:
        stop.set()
        driver.stop()
        store.dispose()


def test_the_api_imports_only_the_service_queries_and_their_types() -> None:
    """What the contracts in pyproject.toml do not spell out: from the project the API imports
    only core.service, core.queries, core.config, core.errors, core.models and open_database."""
    from tests.test_architecture import _imports_of

    allowed = ("core.api", "core.service", "core.queries", "core.config", "core.errors",
               "core.models")
    for path in sorted((PROJECT_ROOT / "core" / "api").glob("*.py")):
        project = {m for m in _imports_of(path) if m.startswith("core.") or m == "core"} - {"core"}
        outside = {m for m in project
                   if not any(m == a or m.startswith(a + ".") for a in allowed)}
        assert outside <= {"core.store.db", "core.store.db.open_database"}, (path.name, outside)


def test_desk_api_refuses_to_start_without_tokens(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sqlite_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("API_TOKENS", " ")
    assert cli_main(["api", "--port", str(free_port())]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("error: API_TOKENS is empty")


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_desk_api_refuses_a_bad_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["api", "--port", port])
    assert exited.value.code == 2
    assert "port" in capsys.readouterr().err


def test_desk_api_serves_until_stopped(sqlite_url: str) -> None:
    """``python -m core api`` as a user starts it: settings from the environment, loopback."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("DESK_", "API_"))}
    env.update(DATABASE_URL=sqlite_url, API_TOKENS=",".join(TOKENS), DESK_ENV_FILE=os.devnull,
               PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "core", "api", "--port", str(port)],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while True:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the API did not start"
                try:
                    response = http.get("/api/agentic/session", headers=GOOD)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            refused(response, 404, "no session yet")
            refused(http.get("/api/agentic/session"), 401)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err[-2000:]
    assert f"http://127.0.0.1:{port}/api/agentic" in err
