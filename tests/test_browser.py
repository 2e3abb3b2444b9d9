"""The main user path in a real Chromium against a running ``streamlit run app.py``.

Create a session, watch five agent cards appear and trades arrive as the in-app engine ticks, open
the CEO log, download the trade CSV and check its rows against the store, stop the session through
its confirmation dialog. Needs Debian's chromium and Playwright: skipped with the reason on a laptop
without them, required in CI.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import queries
from core.config import PROJECT_ROOT
from core.store.db import open_database
from tests.conftest import require_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("DESK_SCREENSHOTS", PROJECT_ROOT / "artifacts" / "screenshots"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        require_or_skip("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_or_skip("playwright is not installed (pip install -r requirements-dev.txt)")


def _serve(tmp_path: Path, **extra: str) -> Iterator[tuple[str, str]]:
    _require_browser()
    url_db = f"sqlite:///{tmp_path / 'desk.db'}"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(DATABASE_URL=url_db, ENGINE_IN_APP="true", TICK_SECONDS="0.3", BARS_PER_TICK="4",
               REPLAY_START="2025-09-01", LOG_LEVEL="WARNING")
    env.pop("DASHBOARD_PASSWORD", None)
    env.update(extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine imports streamlit slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("streamlit did not start")
        yield base, url_db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path)


@pytest.fixture
def locked_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, DASHBOARD_PASSWORD="correct horse")


def _launch(p):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    # a first render imports pandas and plotly: on a loaded 2-core machine that can take more
    # than Playwright's default 5 s for an assertion
    expect.set_options(timeout=30_000)
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def _wait_for(predicate, timeout: float = 180.0, every: float = 0.5,  # type: ignore[no-untyped-def]
              describe=None):
    """Wait on evidence from the store; generous, so a busy machine is only slower. On a timeout
    ``describe()`` says what the store held instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting{': ' + describe() if describe else ''}")


def test_create_watch_download_and_stop_in_a_real_browser(server: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db_url = server
    engine = open_database(db_url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(30_000)

        page.goto(base)
        expect(page.get_by_text("No session yet").first).to_be_visible()
        page.get_by_role("button", name="Create session").click()
        _wait_for(lambda: queries.list_sessions(engine))
        session_id = queries.list_sessions(engine)[0]["id"]

        page.goto(f"{base}/agents")
        for name in ("TrendMaster Alpha", "Momentum Hunter", "Mean Reversion Pro",
                     "Lightning Scalper", "Arbitrage Scanner"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()

        # trades arrive as the in-app engine ticks
        _wait_for(lambda: queries.session_status(engine, session_id)["session"]["closed_trades"] >= 3,
                  timeout=300)
        page.screenshot(path=str(SHOTS / "agents.png"), full_page=True)

        page.goto(f"{base}/ceo")
        expect(page.get_by_text("Pauses and rebalances").first).to_be_visible()
        expect(page.get_by_text("approve").first).to_be_visible()
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # tables drawn
        page.screenshot(path=str(SHOTS / "ceo.png"), full_page=True)

        page.goto(f"{base}/positions")
        button = page.get_by_role("button", name="Download all trades")
        expect(button).to_be_visible()
        with page.expect_download() as info:
            button.click()
        text = Path(info.value.path()).read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert list(rows[0].keys()) == queries.TRADE_COLUMNS
        stored = queries.trades(engine, session_id, limit=None)
        downloaded_ids = {int(r["trade_id"]) for r in rows}
        assert downloaded_ids <= set(stored["trade_id"]) and len(rows) >= 3
        page.screenshot(path=str(SHOTS / "positions.png"), full_page=True)

        # a trader's own close, asked first, carried out by the running engine on its next tick.
        # An agent may close the chosen position between the page drawing it and the click; the
        # desk then refuses the user's close with its reason, and the trader picks another.
        picker = page.get_by_role("combobox", name="Position")

        def picker_shows_a_position() -> bool:
            page.goto(f"{base}/positions")  # the picker lists the positions open when drawn
            expect(picker).to_be_visible()
            return bool(re.match(r"^#\d+ ", picker.input_value()))

        outcomes: list[tuple[int, str, str]] = []
        for _ in range(8):
            _wait_for(picker_shows_a_position, timeout=300)
            before = set(queries.manual_orders(engine, session_id)["id"])
            page.get_by_role("button", name="Close at market…").click()
            dialog = page.get_by_role("dialog")
            try:  # the last position may close as the button is clicked: the page disables it
                expect(dialog.get_by_text("reduce-only market order")).to_be_visible()
            except AssertionError:
                outcomes.append((0, "gone", "no confirmation: the position closed before the click"))
                continue
            # the picker follows the open positions as the page refreshes, so the position closed
            # is the one the confirmation names, not whatever the picker showed a moment earlier
            named = re.search(r"Close #(\d+) ", dialog.inner_text())
            assert named, dialog.inner_text()
            chosen = int(named.group(1))
            if not outcomes:
                page.screenshot(path=str(SHOTS / "manual-close.png"), full_page=True)
            dialog.get_by_role("button", name="Confirm").click()

            def new_orders(before: set[int] = before):  # type: ignore[no-untyped-def]
                orders = queries.manual_orders(engine, session_id)
                return orders[~orders["id"].isin(before)]

            def finished() -> dict | None:  # type: ignore[type-arg]
                new = new_orders()
                done = new[new["status"].isin(("done", "refused", "failed"))]
                return done.iloc[0].to_dict() if len(done) else None

            def store_says() -> str:
                status = queries.session_status(engine, session_id)["session"]
                return (f"new manual orders {new_orders().to_dict('records')}; session "
                        f"{status['status']} at {status['engine_time']}, {status['ticks']} ticks, "
                        f"last error {status['last_error']}")

            try:  # a Confirm the page lost while it redrew records nothing: say so, ask again
                _wait_for(lambda: len(new_orders()) > 0, timeout=60)
            except AssertionError:
                outcomes.append((chosen, "lost", "the Confirm click recorded no order in 60 s"))
                continue
            order = _wait_for(finished, timeout=300, describe=store_says)
            assert order["kind"] == "close" and int(order["target_id"]) == chosen
            outcomes.append((chosen, order["status"], order["note"]))
            if order["status"] == "done":
                break
            assert order["status"] == "refused" and "is not open" in order["note"], outcomes
        assert outcomes[-1][1] == "done", outcomes
        assert sum(o[1] == "lost" for o in outcomes) <= 2, outcomes  # not a page that drops them
        assert chosen not in set(queries.open_positions(engine, session_id).get("id", []))
        closed = queries.trades(engine, session_id, limit=None)
        assert "user" in set(closed[closed["trade_id"] == chosen]["close_reason"]), outcomes

        page.goto(f"{base}/market")
        expect(page.get_by_text("BTCUSDT").first).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "market.png"), full_page=True)

        page.goto(base)
        main = page.get_by_test_id("stMainBlockContainer")  # Streamlit's header has a "Stop" too
        expect(main.get_by_role("button", name="Stop", exact=True)).to_be_visible()
        expect(page.get_by_test_id("stMetric").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "session.png"), full_page=True)
        main.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_role("button", name="Stop and close everything").click()
        _wait_for(lambda: queries.session_status(engine, session_id)["session"]["status"] == "stopped",
                  timeout=180)
        assert queries.open_positions(engine, session_id).empty
        browser.close()
    engine.dispose()


def test_a_deep_link_shows_nothing_but_the_password_box(locked_server: tuple[str, str]) -> None:
    """The first request of a fresh server is a deep link: still only the gate."""
    from playwright.sync_api import expect, sync_playwright

    base, _ = locked_server
    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page()
        for path in ("/positions", "/ceo", "/agents", "/"):
            page.goto(base + path)
            expect(page.get_by_label("Password", exact=True)).to_be_visible()
            page.wait_for_timeout(1000)  # give a wrong render time to appear before counting
            main = page.get_by_test_id("stMainBlockContainer")
            assert main.get_by_role("button", name="Enter").count() == 1
            assert main.get_by_role("button").count() == 2  # Enter and the show-password eye
            assert page.get_by_test_id("stMetric").count() == 0
            assert page.get_by_test_id("stDataFrame").count() == 0
            assert page.get_by_test_id("stSidebar").count() == 0
        page.get_by_label("Password", exact=True).fill("correct horse")
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_text("No session yet").first).to_be_visible()
        browser.close()
