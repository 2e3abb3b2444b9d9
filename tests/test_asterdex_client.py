"""The AsterDex client against the loopback fake venue: every endpoint, both auth schemes, faults.

Outcomes that matter for money: no duplicate orders whatever the network does (venue orders are
counted), an unknown outcome is resolved by asking, a 429 never becomes a storm (the venue's
request count proves nothing went out), clock skew is healed once, and no secret ever shows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest

from core.errors import (
    BelowMinNotional,
    ClockSkew,
    ConfigError,
    DuplicateClientOrderId,
    ExchangeAuthError,
    ExchangeRequestError,
    ExchangeUnavailable,
    InsufficientMargin,
    OrderRejected,
    RateLimited,
    ReduceOnlyRejected,
    UnknownOrderStatus,
)
from core.exchanges.asterdex_client import AsterDexClient, credentials_from_settings
from core.exchanges.asterdex_http import AsterHttp
from core.exchanges.asterdex_ratelimit import RateGate, shared_gate
from core.exchanges.asterdex_signing import V1Credentials, V3Credentials
from core.exchanges.asterdex_types import ExchangeInfo
from core.exchanges.symbols import default_filters
from core.models import OrderRequest, OrderSide, OrderStatus, OrderType
from tests.conftest import make_settings
from tests.fake_venue import FakeVenue
from tests.live_support import KEY, SECRET, SIGNER, SIGNER_KEY, USER


@dataclass
class FakeTime:
    """A monotonic clock whose sleep advances it (so back-off waits cost no wall time)."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def venue(venue: FakeVenue) -> FakeVenue:
    venue.set_price("ETHUSDT", "3000")
    return venue


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(venue: FakeVenue, scheme: str = "v1", *, timeout_s: float = 5.0,
                gate: RateGate | None = None, max_wait_s: float = 0.0) -> AsterDexClient:
    creds = V1Credentials(KEY, SECRET) if scheme == "v1" else V3Credentials(USER, SIGNER, SIGNER_KEY)
    http = AsterHttp(venue.url, credentials=creds, timeout_s=timeout_s, gate=gate or RateGate(),
                     max_wait_s=max_wait_s)
    return AsterDexClient(http, sleep=lambda s: None)


@pytest.fixture(params=["v1", "v3"])
def client(request: pytest.FixtureRequest, venue: FakeVenue) -> Iterator[AsterDexClient]:
    c = make_client(venue, request.param)
    yield c
    c.close()


def market(cid: str, side: OrderSide, qty: str, symbol: str = "BTCUSDT", **kw: object) -> OrderRequest:
    return OrderRequest(cid, symbol, side, OrderType.MARKET, Decimal(qty), **kw)  # type: ignore[arg-type]


def stop(cid: str, side: OrderSide, qty: str, price: str, kind: OrderType = OrderType.STOP_MARKET) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", side, kind, Decimal(qty), stop_price=Decimal(price),
                        reduce_only=True)


# ------------------------------------------------------------------------------ endpoints


def test_public_endpoints(client: AsterDexClient, venue: FakeVenue) -> None:
    assert abs(client.server_time() - venue.now_ms()) < 5_000
    assert abs(client.sync_clock()) < 5_000
    info = client.exchange_info()
    assert set(info.filters) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert info.filters["BTCUSDT"].tick_size == Decimal("0.1") and info.weight_limit() == 2400
    assert client.exchange_info() is info  # cached
    assert client.price("BTCUSDT") == Decimal("60000")
    assert set(client.prices()) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    (t,) = client.tickers_24h("BTCUSDT")
    assert t.last_price == Decimal("60000") and t.high >= t.low > 0
    (p,) = client.premium_index("BTCUSDT")
    assert p.mark_price == Decimal("60000") and p.last_funding_rate == Decimal("0.0001")
    assert len(client.premium_index()) == 3
    rates = client.funding_rates("BTCUSDT", limit=3)
    assert len(rates) == 3 and rates[1].funding_time_ms - rates[0].funding_time_ms == 8 * 3_600_000
    bars = client.klines("ETHUSDT", "15m", limit=4)
    assert len(bars) == 4 and bars[1].open_time_ms - bars[0].open_time_ms == 900_000
    assert bars[-1].to_bar().close == float(bars[-1].close)
    start = (venue.market.now_ms // 3_600_000 - 3) * 3_600_000
    ranged = client.klines("ETHUSDT", "1h", start_ms=start, limit=2)
    assert [k.open_time_ms for k in ranged] == [start, start + 3_600_000]


def test_account_endpoints(client: AsterDexClient) -> None:
    acct = client.account()
    assert acct.total_wallet_balance == Decimal(10_000) and acct.can_trade
    assert acct.summary.available_balance == Decimal(10_000)
    (usdt,) = client.balances()
    assert usdt.asset == "USDT" and usdt.wallet_balance == Decimal(10_000)
    assert len(client.position_risk()) == 3 and client.positions() == []
    assert client.get_position_mode() is False
    assert client.set_position_mode(False) is False  # -4059 "no need" is success
    assert client.set_position_mode(True) is True and client.get_position_mode() is True
    assert client.set_position_mode(False) is True
    assert client.set_margin_type("BTCUSDT", "ISOLATED") is True
    assert client.set_margin_type("BTCUSDT", "ISOLATED") is False  # -4046
    assert client.position_risk("BTCUSDT")[0].margin_type == "isolated"
    assert client.max_leverage("BTCUSDT") == 125
    assert client.set_leverage("BTCUSDT", 500) == 125  # clamped to the bracket, not refused
    assert client.set_leverage("BTCUSDT", 0) == 1
    assert client.set_leverage("ETHUSDT", 7) == 7
    assert client.filters("BTCUSDT").max_leverage == 125
    key = client.new_listen_key()
    assert key and client.new_listen_key() == key
    client.keepalive_listen_key()
    client.close_listen_key()
    assert client.user_stream_url(key).endswith(f"/ws/{key}")
    assert client.countdown_cancel_all("BTCUSDT", 120_000) == 120_000


def test_order_lifecycle_fills_trades_and_income(client: AsterDexClient, venue: FakeVenue) -> None:
    client.set_leverage("BTCUSDT", 10)
    venue.book.fill_parts = 2
    entry = client.place_order(market("e-1", OrderSide.BUY, "0.0209"))  # rounded down to 0.020
    assert entry.status is OrderStatus.FILLED and entry.executed_qty == Decimal("0.020")
    assert len(entry.fills) == 2 and sum(f.quantity for f in entry.fills) == Decimal("0.020")
    assert all(f.client_order_id == "e-1" and f.fee == Decimal("0.24") for f in entry.fills)
    (pos,) = client.positions()
    assert pos.amount == Decimal("0.02") and pos.entry_price == Decimal("60000") and pos.leverage == 10
    sl = client.place_order(stop("sl-1", OrderSide.SELL, "0.02", "58000.06"))
    assert sl.status is OrderStatus.NEW and sl.stop_price == Decimal("58000.1")  # rounds up: tighter
    tp = client.place_order(stop("tp-1", OrderSide.SELL, "0.02", "65000.04", OrderType.TAKE_PROFIT_MARKET))
    assert tp.stop_price == Decimal("65000.0")  # rounds down: triggers no later
    lim = client.place_order(OrderRequest("l-1", "ETHUSDT", OrderSide.BUY, OrderType.LIMIT,
                                          Decimal("0.01")), price=Decimal("2900.005"))
    assert lim.status is OrderStatus.NEW
    assert {o.client_order_id for o in client.open_orders()} == {"sl-1", "tp-1", "l-1"}
    assert [o.client_order_id for o in client.open_orders("ETHUSDT")] == ["l-1"]
    assert client.get_order("ETHUSDT", "l-1").type is OrderType.LIMIT  # type: ignore[union-attr]
    assert client.get_order("BTCUSDT", "never-sent") is None
    canceled = client.cancel_order("ETHUSDT", "l-1")
    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert client.cancel_order("ETHUSDT", "l-1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert client.cancel_order("ETHUSDT", "never-sent") is None
    since = venue.now_ms()
    venue.set_price("BTCUSDT", "57900")  # the venue fills the stop while we are not looking
    filled = client.get_order("BTCUSDT", "sl-1")
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert filled.avg_price == Decimal("57900")
    fills = client.fills_since("BTCUSDT", since)
    assert [(f.client_order_id, f.price, f.quantity) for f in fills] == [("sl-1", Decimal("57900"), Decimal("0.02"))]
    assert fills[0].realized_pnl == Decimal("-42") and fills[0].fee == Decimal("0.4632")
    assert client.positions() == []
    assert len(client.user_trades("BTCUSDT")) == 3
    income = client.income("BTCUSDT")
    assert {r.income_type for r in income} == {"COMMISSION", "REALIZED_PNL"}
    assert client.income(income_type="REALIZED_PNL")[0].income == Decimal("-42")
    assert client.cancel_all("BTCUSDT") == 1  # the take-profit
    assert client.open_orders() == []


def test_fills_since_finds_client_ids_of_orders_it_never_saw(venue: FakeVenue) -> None:
    placer, reader = make_client(venue), make_client(venue, "v3")
    placer.place_order(market("seen-elsewhere", OrderSide.SELL, "0.01"))
    (fill,) = reader.fills_since("BTCUSDT", 0)
    assert fill.client_order_id == "seen-elsewhere" and fill.side is OrderSide.SELL


def test_close_position_stop_and_rejections_are_typed(client: AsterDexClient, venue: FakeVenue) -> None:
    client.place_order(market("o-1", OrderSide.SELL, "0.01"))
    cp = client.place_order(OrderRequest("cp-1", "BTCUSDT", OrderSide.BUY, OrderType.STOP_MARKET,
                                         Decimal(0), stop_price=Decimal("61000")), close_position=True)
    assert cp.status is OrderStatus.NEW and cp.reduce_only
    with pytest.raises(DuplicateClientOrderId):
        client.place_order(market("o-1", OrderSide.SELL, "0.01"))
    with pytest.raises(InsufficientMargin):
        client.place_order(market("big", OrderSide.BUY, "50"))
    with pytest.raises(ReduceOnlyRejected):
        client.place_order(market("ro", OrderSide.SELL, "0.01", reduce_only=True))
    with pytest.raises(OrderRejected) as exc:
        client.place_order(stop("bad-stop", OrderSide.BUY, "0.01", "59000"))
    assert exc.value.code == -2021
    with pytest.raises(OrderRejected) as exc:  # refused before sending: below the step
        client.place_order(market("dust", OrderSide.BUY, "0.0004"))
    assert exc.value.code == -4004
    with pytest.raises(ExchangeRequestError) as req:
        client.filters("DOGEUSDT")
    assert req.value.code == -1121
    assert venue.placed_orders() == 2


# ------------------------------------------------------------------------------ faults


@pytest.mark.parametrize("executed", [True, False])
@pytest.mark.parametrize("kind", ["503", "timeout"])
def test_unknown_outcome_is_resolved_without_duplicates(venue: FakeVenue, kind: str, executed: bool) -> None:
    client = make_client(venue, timeout_s=1.0)
    venue.inject("POST order", kind, delay_s=2.5 if kind == "timeout" else 0.0, execute=executed)
    result = client.place_order_safely(market("u-1", OrderSide.BUY, "0.01"), resend_if_absent=True)
    assert result.status is OrderStatus.FILLED and result.client_order_id == "u-1"
    assert len(result.fills) == 1
    assert venue.placed_orders() == 1
    # executed: found by the query, never re-sent; not executed: confirmed absent, sent once more
    assert venue.count("POST order") == (1 if executed else 2)
    assert venue.count("GET order") >= 1


@pytest.mark.parametrize("kind", ["503", "500", "timeout"])
def test_plain_place_order_reports_unknown_and_never_retries(venue: FakeVenue, kind: str) -> None:
    client = make_client(venue, timeout_s=1.0)
    venue.inject("POST order", kind, delay_s=2.5 if kind == "timeout" else 0.0, execute=True)
    with pytest.raises(UnknownOrderStatus):
        client.place_order(market("u-2", OrderSide.BUY, "0.01"))
    assert venue.count("POST order") == 1 and venue.placed_orders() == 1
    found = client.get_order("BTCUSDT", "u-2")
    assert found is not None and found.status is OrderStatus.FILLED


def test_unresolvable_outcome_raises_unknown(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("POST order", "503", execute=True)
    venue.inject("GET order", "503", count=10)
    with pytest.raises(UnknownOrderStatus, match="reconcile"):
        client.place_order_safely(market("u-3", OrderSide.BUY, "0.01"), resolve_attempts=2)
    assert venue.placed_orders() == 1 and venue.count("POST order") == 1


def test_an_absent_order_is_not_resent_unless_the_caller_opts_in(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("POST order", "503", execute=False)
    with pytest.raises(UnknownOrderStatus, match="not resent"):
        client.place_order_safely(market("u-4", OrderSide.BUY, "0.01"))
    assert venue.placed_orders() == 0


def test_5xx_and_outage_on_reads_are_unavailable(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("GET positionRisk", "500")
    with pytest.raises(ExchangeUnavailable):
        client.positions()
    assert client.positions() == []
    url = venue.url
    venue.close()
    down = AsterDexClient(AsterHttp(url, gate=RateGate(), timeout_s=1.0))
    with pytest.raises(ExchangeUnavailable, match="cannot connect"):
        down.server_time()
    with pytest.raises(ExchangeUnavailable):  # nothing was sent: not "unknown"
        make_client_for_url(url).place_order(market("x", OrderSide.BUY, "0.01"))


def make_client_for_url(url: str) -> AsterDexClient:
    c = AsterDexClient(AsterHttp(url, credentials=V1Credentials(KEY, SECRET), gate=RateGate(), timeout_s=1.0))
    c._info = (1e18, _static_info())  # filters known: the failure must come from the network
    return c


def _static_info() -> ExchangeInfo:
    return ExchangeInfo(0, default_filters(["BTCUSDT"]), (), {"BTCUSDT": "TRADING"})


def test_429_closes_the_shared_gate_and_nothing_goes_out(venue: FakeVenue, fake_time: FakeTime) -> None:
    gate = RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
    a, b = make_client(venue, gate=gate), make_client(venue, "v3", gate=gate)
    a.server_time()
    venue.inject("GET ticker/price", "429", retry_after=30)
    with pytest.raises(RateLimited) as exc:
        a.price("BTCUSDT")
    assert exc.value.retry_after_s == pytest.approx(30)
    sent = len(venue.requests)
    for c in (a, b):  # every client in the process fails fast while the gate is closed
        with pytest.raises(RateLimited):
            c.server_time()
        with pytest.raises(RateLimited):
            c.place_order(market("rl", OrderSide.BUY, "0.01"))
    assert len(venue.requests) == sent
    assert gate.state().reason == "rate limit (429)"
    fake_time.now += 31
    assert a.price("BTCUSDT") == Decimal("60000")


def test_short_backoff_waits_instead_of_failing(venue: FakeVenue, fake_time: FakeTime) -> None:
    gate = RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
    client = make_client(venue, gate=gate, max_wait_s=5)
    venue.inject("GET time", "429", retry_after=2)
    with pytest.raises(RateLimited):
        client.server_time()
    assert client.server_time() > 0
    assert fake_time.slept == [pytest.approx(2)]


def test_429_without_retry_after_backs_off_exponentially(venue: FakeVenue, fake_time: FakeTime) -> None:
    gate = RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
    client = make_client(venue, gate=gate)
    waits = []
    for _ in range(3):
        venue.inject("GET time", "429", retry_after=None)
        with pytest.raises(RateLimited) as exc:
            client.server_time()
        waits.append(exc.value.retry_after_s)
        fake_time.now += exc.value.retry_after_s
    assert waits == [pytest.approx(1), pytest.approx(2), pytest.approx(4)]


def test_418_ban_is_honoured(venue: FakeVenue, fake_time: FakeTime) -> None:
    gate = RateGate(clock=fake_time.clock, sleep=fake_time.sleep)
    client = make_client(venue, gate=gate, max_wait_s=5)
    venue.inject("GET time", "418", retry_after=600)
    with pytest.raises(RateLimited):
        client.server_time()
    sent = len(venue.requests)
    with pytest.raises(RateLimited, match="IP ban"):
        client.server_time()
    assert len(venue.requests) == sent and fake_time.slept == []


def test_client_respects_venue_weight_limit_and_is_never_banned() -> None:
    with FakeVenue(api_key=KEY, api_secret=SECRET, weight_limit=20, meter_clock=lambda: 6000.5) as venue:
        client = make_client(venue)
        statuses: list[int] = []
        with pytest.raises(RateLimited):
            for _ in range(100):
                client.server_time()
        statuses = [s for _, _, s in venue.requests]
        assert 418 not in statuses and statuses.count(429) <= 1
        assert client.rate_state().used_weight is not None


def test_gate_slows_down_before_the_limit(fake_time: FakeTime) -> None:
    gate = RateGate(weight_limit=100, clock=fake_time.clock, sleep=fake_time.sleep,
                    wall_clock=lambda: 120.0 + 45.0)
    gate.observe(200, {"X-MBX-USED-WEIGHT-1M": "50"})
    gate.acquire(0)
    gate.observe(200, {"x-mbx-used-weight-1m": "96"})
    with pytest.raises(RateLimited) as exc:
        gate.acquire(0)
    assert 14 < exc.value.retry_after_s <= 15.1  # until the next minute starts
    gate.acquire(20)
    assert fake_time.slept and gate.state().used_weight == 96


def test_shared_gate_is_process_wide() -> None:
    assert shared_gate() is shared_gate()
    http = AsterHttp("http://127.0.0.1:9")
    assert http.gate is shared_gate()
    http.close()


def test_clock_skew_is_resynced_and_retried_once(venue: FakeVenue) -> None:
    client = make_client(venue)
    client.account()
    venue.clock_skew_ms = 20_000  # the venue's clock jumps: our offset is now stale
    assert client.account().total_wallet_balance == Decimal(10_000)
    assert client.clock_offset_ms > 15_000
    assert [s for m, r, s in venue.requests if r == "account"][-2:] == [400, 200]
    venue.inject("GET balance", "code", code=-1021, count=2)
    with pytest.raises(ClockSkew):
        client.balances()
    venue.inject("POST order", "code", code=-1021)
    assert client.place_order(market("skew", OrderSide.BUY, "0.01")).status is OrderStatus.FILLED
    assert venue.placed_orders() == 1


def test_v3_clock_skew_also_heals(venue: FakeVenue) -> None:
    client = make_client(venue, "v3")
    client.balances()
    venue.clock_skew_ms = -30_000
    assert client.balances()[0].asset == "USDT"


def test_injected_insufficient_margin(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("POST order", "code", code=-2019, msg="Margin is insufficient.")
    with pytest.raises(InsufficientMargin, match="-2019"):
        client.place_order(market("m", OrderSide.BUY, "0.01"))
    assert venue.placed_orders() == 0


def test_partial_fill_reports_what_executed(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.book.fill_ratio = Decimal("0.5")
    venue.book.fill_parts = 2
    r = client.place_order(market("pf", OrderSide.BUY, "0.04"))
    assert r.status is OrderStatus.EXPIRED and r.executed_qty == Decimal("0.02")
    assert len(r.fills) == 2 and client.positions()[0].amount == Decimal("0.02")


# ------------------------------------------------------------------------------ auth & secrets


def test_wrong_credentials_are_auth_errors(venue: FakeVenue) -> None:
    bad = AsterDexClient(AsterHttp(venue.url, credentials=V1Credentials(KEY, "f" * 64), gate=RateGate()))
    with pytest.raises(ExchangeAuthError) as exc:
        bad.account()
    assert exc.value.code == -1022
    other = AsterDexClient(AsterHttp(venue.url, credentials=V1Credentials("nobody", SECRET), gate=RateGate()))
    with pytest.raises(ExchangeAuthError):
        other.new_listen_key()
    keyless = AsterDexClient(AsterHttp(venue.url, gate=RateGate()))
    with pytest.raises(ExchangeAuthError, match="ASTERDEX_API_KEY"):
        keyless.account()
    assert keyless.price("BTCUSDT") == Decimal("60000")


def test_secrets_never_in_repr_errors_or_logs(venue: FakeVenue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for scheme in ("v1", "v3"):
        client = make_client(venue, scheme, timeout_s=1.0)
        texts += [repr(client), str(client), repr(client.http), repr(client.http.credentials)]
        client.account()
        venue.inject("POST order", "timeout", delay_s=2.5)
        with pytest.raises(UnknownOrderStatus) as exc:
            client.place_order(market(f"s-{scheme}", OrderSide.BUY, "0.01"))
        texts += [str(exc.value), repr(exc.value)]
        venue.inject("GET balance", "code", code=-2015, count=2)
        with pytest.raises(ExchangeAuthError) as auth:
            client.balances()
        texts += [str(auth.value), str(auth.value.__cause__), str(auth.value.__context__)]
    texts.append(caplog.text)
    assert "signature=" not in caplog.text and "AsterDex GET /fapi/v4/account" in caplog.text
    blob = "\n".join(texts)
    for secret in (SECRET, KEY, SIGNER_KEY[2:]):
        assert secret not in blob


def test_credentials_from_settings_picks_the_scheme() -> None:
    assert credentials_from_settings(make_settings()) is None
    v1 = credentials_from_settings(make_settings(asterdex_api_key=KEY, asterdex_secret_key=SECRET))
    assert isinstance(v1, V1Credentials)
    v3 = make_settings(asterdex_user=USER, asterdex_signer=SIGNER, asterdex_private_key=SIGNER_KEY)
    assert isinstance(credentials_from_settings(v3), V3Credentials)
    both = make_settings(asterdex_api_key=KEY, asterdex_secret_key=SECRET, asterdex_user=USER,
                         asterdex_signer=SIGNER, asterdex_private_key=SIGNER_KEY, asterdex_auth="v3")
    assert isinstance(credentials_from_settings(both), V3Credentials)
    with pytest.raises(ConfigError, match="ASTERDEX_SECRET_KEY"):
        credentials_from_settings(make_settings(asterdex_auth="v1", asterdex_api_key=KEY))
    wrong = make_settings(asterdex_user=USER, asterdex_signer=USER, asterdex_private_key=SIGNER_KEY)
    with pytest.raises(ConfigError) as exc:
        credentials_from_settings(wrong)
    assert SIGNER_KEY[2:] not in str(exc.value)


def test_from_settings_talks_to_the_configured_venue(venue: FakeVenue) -> None:
    settings = make_settings(asterdex_base_url=venue.url, asterdex_api_key=KEY, asterdex_secret_key=SECRET,
                             asterdex_ws_url="ws://127.0.0.1:1")
    with AsterDexClient.from_settings(settings, gate=RateGate()) as client:
        assert client.auth_scheme == "v1" and client.account().can_trade
        assert client.market_stream_url(["btcusdt@markPrice@1s", "btcusdt@kline_1m"]) == (
            "ws://127.0.0.1:1/stream?streams=btcusdt@markPrice@1s/btcusdt@kline_1m")


def test_an_executed_order_is_returned_even_when_its_trades_cannot_be_read(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("GET userTrades", "503")
    result = client.place_order(market("nf", OrderSide.BUY, "0.01"))
    assert result.status is OrderStatus.FILLED and result.fills == ()
    assert [f.client_order_id for f in client.fills_since("BTCUSDT", 0)] == ["nf"]
    assert venue.placed_orders() == 1


def test_safe_placement_of_an_id_the_venue_already_has_returns_that_order(venue: FakeVenue) -> None:
    client = make_client(venue)
    first = client.place_order(market("again", OrderSide.BUY, "0.01"))
    again = client.place_order_safely(market("again", OrderSide.BUY, "0.01"))
    assert again.exchange_order_id == first.exchange_order_id and len(again.fills) == 1
    assert venue.placed_orders() == 1


def test_second_unknown_outcome_is_not_sent_a_third_time(venue: FakeVenue) -> None:
    client = make_client(venue)
    venue.inject("POST order", "503", count=2)  # neither send executes
    with pytest.raises(UnknownOrderStatus):
        client.place_order_safely(market("twice", OrderSide.BUY, "0.01"), resend_if_absent=True)
    assert venue.count("POST order") == 2 and venue.placed_orders() == 0


# ------------------------------------------------------------------------------ error mapping


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> AsterHttp:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))
    return AsterHttp("http://127.0.0.1:9", transport=transport, gate=RateGate())


@pytest.mark.parametrize(("status", "body", "order", "error"), [
    (400, b'{"code":-1021,"msg":"ts"}', False, ClockSkew),
    (400, b'{"code":-1022,"msg":"sig"}', False, ExchangeAuthError),
    (401, b'{"code":-2015,"msg":"key"}', True, ExchangeAuthError),
    (400, b'{"code":-2014,"msg":"key fmt"}', False, ExchangeAuthError),
    (400, b'{"code":-1003,"msg":"weight"}', False, RateLimited),
    (400, b'{"code":-1015,"msg":"orders"}', True, RateLimited),
    (429, b'{"code":-1003,"msg":"slow down"}', False, RateLimited),
    (418, b"", True, RateLimited),
    (403, b"<html>WAF</html>", False, ExchangeUnavailable),
    (502, b"<html>bad gateway</html>", False, ExchangeUnavailable),
    (502, b"<html>bad gateway</html>", True, UnknownOrderStatus),
    (503, b'{"code":-1007,"msg":"timeout"}', True, UnknownOrderStatus),
    (400, b'{"code":-1006,"msg":"unexpected"}', True, UnknownOrderStatus),
    (400, b'{"code":-1016,"msg":"shutting down"}', False, ExchangeUnavailable),
    (400, b'{"code":-2019,"msg":"margin"}', True, InsufficientMargin),
    (400, b'{"code":-2018,"msg":"balance"}', True, InsufficientMargin),
    (400, b'{"code":-4164,"msg":"notional"}', True, OrderRejected),
    (400, b'{"code":-2022,"msg":"reduce"}', True, ReduceOnlyRejected),
    (400, b'{"code":-4116,"msg":"dup"}', True, DuplicateClientOrderId),
    (400, b'{"code":-1121,"msg":"Invalid symbol."}', False, ExchangeRequestError),
    (200, b'{"code":-1121,"msg":"error inside a 200"}', False, ExchangeRequestError),
])
def test_error_mapping(status: int, body: bytes, order: bool, error: type[Exception]) -> None:
    http = _answer(status, body)
    with pytest.raises(error) as exc:
        http.request("GET", "/fapi/v1/ticker/price", order=order)
    assert type(exc.value) is error or error is OrderRejected
    if error is OrderRejected:
        assert isinstance(exc.value, BelowMinNotional) and exc.value.code == -4164


@pytest.mark.parametrize("body", [b'{"code":200,"msg":"success"}', b'{"code":"200","msg":"done"}', b""])
def test_success_bodies_with_a_code_are_not_errors(body: bytes) -> None:
    assert _answer(200, body).request("POST", "/fapi/v1/marginType") in (
        {"code": 200, "msg": "success"}, {"code": "200", "msg": "done"}, {})


def test_waf_block_and_ban_close_the_gate() -> None:
    http = _answer(403, b"blocked")
    with pytest.raises(ExchangeUnavailable):
        http.request("GET", "/fapi/v1/time")
    assert http.gate.state().closed_for_s > 50
    banned = _answer(418, b"{}", {"Retry-After": "7200"})
    with pytest.raises(RateLimited) as exc:
        banned.request("GET", "/fapi/v1/time")
    assert exc.value.retry_after_s > 7000
