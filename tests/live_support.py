"""Shared pieces for the live tests: a fake venue plus the AsterDex adapter wired to it.

Each harness gets its own ``RateGate`` (the process-wide one would carry an injected 429 into
other tests) and a client with no real sleeping, so fault tests stay fast. The 2 s timeout is
short for a test yet far above a loopback answer on a loaded two-core CI machine (0.5 s was not).
Nothing here reaches an outside address: the fake venue binds 127.0.0.1.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account

from core.config import Settings
from core.exchanges.asterdex import AsterdexExchange
from core.exchanges.asterdex_client import AsterDexClient
from core.exchanges.asterdex_ratelimit import RateGate
from core.models import ExchangeEvents, MarketStep
from tests.conftest import make_settings
from tests.fake_venue import FakeVenue

API_KEY = "k" * 64
API_SECRET = "s" * 64

# The reference's official V1 key pair, and a fixed V3 API wallet (signer) for its user.
KEY = "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"
SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
SIGNER_KEY = "0x" + "11" * 32
SIGNER = Account.from_key(SIGNER_KEY).address
USER = Account.from_key("0x" + "22" * 32).address


def live_settings(venue: FakeVenue, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "asterdex_base_url": venue.url, "asterdex_ws_url": "ws://127.0.0.1:9",
        "asterdex_api_key": API_KEY, "asterdex_secret_key": API_SECRET,
        "asterdex_timeout_s": 2.0, "asterdex_max_wait_s": 0.0,
    }
    base.update(overrides)
    return make_settings(**base)


def make_client(settings: Settings) -> AsterDexClient:
    client = AsterDexClient.from_settings(settings, gate=RateGate(sleep=lambda s: None))
    client._sleep = lambda s: None  # resolve an unknown order without real waiting
    return client


class AsterdexHarness:
    """The contract-test harness: ``move`` sets the fake venue's mark and syncs the adapter."""

    def __init__(self, tmp_path: Path, *, prices: dict[str, float]) -> None:
        self.venue = FakeVenue(api_key=API_KEY, api_secret=API_SECRET).start()
        for symbol, price in prices.items():
            self.venue.set_price(symbol, Decimal(repr(price)))
        self.client = make_client(live_settings(self.venue))
        self.exchange = AsterdexExchange(self.client, tuple(prices), since_ms=self.venue.now_ms() - 1)

    def move(self, symbol: str, price: float) -> ExchangeEvents:
        self.venue.set_price(symbol, Decimal(repr(price)))
        return self.exchange.sync(MarketStep(now_ms=self.venue.now_ms(), bars={}, prices={},
                                             funding_rates={}))

    def close(self) -> None:
        self.client.close()
        self.venue.close()
