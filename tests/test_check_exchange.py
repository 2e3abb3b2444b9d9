"""``python -m core check-exchange`` against the fake venue: with keys, without, with bad ones, down."""

from __future__ import annotations

import json

import pytest

from core import cli
from core.exchanges.asterdex_ratelimit import RateGate
from core.exchanges.check import check_exchange
from tests.conftest import make_settings
from tests.fake_venue import FakeVenue
from tests.live_support import KEY, SECRET, SIGNER, SIGNER_KEY, USER


def run(venue_url: str, **settings: object) -> tuple[int, str]:
    lines: list[str] = []
    code = check_exchange(make_settings(asterdex_base_url=venue_url, **settings), out=lines.append,
                          gate=RateGate())
    return code, "\n".join(lines)


def run_json(venue_url: str, **settings: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    lines: list[str] = []
    code = check_exchange(make_settings(asterdex_base_url=venue_url, **settings), as_json=True,
                          out=lines.append, gate=RateGate())
    return code, json.loads("\n".join(lines))


def test_all_six_pass_with_v1_keys(venue: FakeVenue) -> None:
    code, text = run(venue.url, asterdex_api_key=KEY, asterdex_secret_key=SECRET)
    assert code == 0
    for name in ("server time", "exchange info", "BTCUSDT price", "account", "positions", "open orders"):
        assert f"PASS  {name}" in text
    assert "clock offset" in text and "BTCUSDT last price 60000" in text and "one-way mode" in text
    assert "6 passed, 0 failed, 0 skipped" in text
    assert SECRET not in text and KEY not in text


def test_v3_wallet_keys_and_json_report(venue: FakeVenue) -> None:
    venue.clock_skew_ms = 2_500  # outside tolerance without sync; the report shows the offset
    code, data = run_json(venue.url, asterdex_user=USER, asterdex_signer=SIGNER,
                          asterdex_private_key=SIGNER_KEY)
    assert code == 0 and data["ok"] is True and data["auth"] == "v3"
    assert [c["status"] for c in data["checks"]] == ["pass"] * 6
    assert 1_500 < data["clock_offset_ms"] < 3_500
    assert SIGNER_KEY[2:] not in json.dumps(data)


def test_public_checks_run_without_keys(venue: FakeVenue) -> None:
    code, text = run(venue.url)
    assert code == 0
    assert text.count("PASS") == 3 and text.count("SKIP") == 3
    assert "skipped: no keys — set ASTERDEX_API_KEY/ASTERDEX_SECRET_KEY or the V3 wallet" in text


def test_reports_failures_and_exits_non_zero(venue: FakeVenue) -> None:
    venue.book.dual_side = True
    code, text = run(venue.url, asterdex_api_key=KEY, asterdex_secret_key="0" * 64)
    assert code == 1
    assert "FAIL  account" in text and "code -1022" in text and "3 passed, 3 failed" in text
    code, text = run(venue.url, asterdex_api_key=KEY, asterdex_secret_key=SECRET)
    assert code == 0 and "hedge mode (the desk needs one-way" in text


def test_unusable_key_settings_fail_private_checks_with_the_reason(venue: FakeVenue) -> None:
    code, text = run(venue.url, asterdex_auth="v3", asterdex_user=USER)
    assert code == 1 and "ASTERDEX_AUTH=v3 needs" in text and text.count("PASS") == 3


def test_venue_down_fails_every_check() -> None:
    with FakeVenue() as v:
        url = v.url
    code, data = run_json(url)
    assert code == 1 and data["ok"] is False
    assert [c["status"] for c in data["checks"][:3]] == ["fail"] * 3
    assert "cannot connect" in data["checks"][0]["detail"]


def test_cli_command(venue: FakeVenue, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ASTERDEX_BASE_URL", venue.url)
    monkeypatch.setenv("ASTERDEX_API_KEY", KEY)
    monkeypatch.setenv("ASTERDEX_SECRET_KEY", SECRET)
    assert cli.main(["check-exchange", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["auth"] == "v1" and len(data["checks"]) == 6
    venue.inject("GET ticker/price", "500")
    assert cli.main(["check-exchange", "--symbol", "btcusdt"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  BTCUSDT price" in out and "PASS  account" in out
