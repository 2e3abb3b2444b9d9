"""The client against the official documents, not against its own reading of them.

Each test here failed on the client as it was before it was checked against ``asterdex/api-docs``
(V3 futures and testnet docs, V1 doc) and ccxt's ``aster`` class: the renamed V3 account endpoint,
``userTrades`` without an order filter, public endpoints under ``/fapi/v3``, a string position-mode
flag, the chain id tied to the host, and only unambiguous values signed. The fake venue's own
document-following behaviour (undocumented parameters ignored, removed paths 404, a testnet
without ``/fapi/v1``) is tested here too.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest

from core.errors import ConfigError, ExchangeError
from core.exchanges import asterdex_orders
from core.exchanges.asterdex_client import AsterDexClient, chain_id_from_settings
from core.exchanges.asterdex_http import AsterHttp, is_testnet_host
from core.exchanges.asterdex_ratelimit import RateGate
from core.exchanges.asterdex_signing import V1Credentials, V3Credentials, sign_v3
from core.models import OrderRequest, OrderSide, OrderType
from tests.conftest import make_settings
from tests.fake_venue import FakeVenue
from tests.live_support import KEY, SECRET, SIGNER, SIGNER_KEY, USER

V3 = V3Credentials(USER, SIGNER, SIGNER_KEY)


def _client(url: str, creds: V1Credentials | V3Credentials | None,
            transport: httpx.BaseTransport | None = None) -> AsterDexClient:
    http = AsterHttp(url, credentials=creds, gate=RateGate(), max_wait_s=0.0, transport=transport)
    return AsterDexClient(http, sleep=lambda s: None)


def _market(cid: str, side: OrderSide, qty: str) -> OrderRequest:
    return OrderRequest(cid, "BTCUSDT", side, OrderType.MARKET, Decimal(qty))


# --------------------------------------------------------------------------- the fake venue


def test_the_fake_venue_ignores_an_order_filter_the_docs_do_not_list(venue: FakeVenue) -> None:
    client = _client(venue.url, V1Credentials(KEY, SECRET))
    first = client.place_order(_market("a1", OrderSide.BUY, "0.01"))
    second = client.place_order(_market("a2", OrderSide.BUY, "0.02"))
    rows = client._signed("GET", "/fapi/v1/userTrades",
                          {"symbol": "BTCUSDT", "orderId": first.exchange_order_id})
    assert {str(r["orderId"]) for r in rows} == {first.exchange_order_id, second.exchange_order_id}


def test_the_fake_venue_404s_the_renamed_v3_account_and_serves_the_new_name(venue: FakeVenue) -> None:
    assert httpx.get(f"{venue.url}/fapi/v3/account").status_code == 404
    assert httpx.get(f"{venue.url}/fapi/v1/accountWithJoinMargin").status_code == 404
    client = _client(venue.url, V3)
    assert client._signed("GET", "/fapi/v3/accountWithJoinMargin", exact_path=True)


def test_the_fake_testnet_serves_no_v1_paths() -> None:
    with FakeVenue(testnet=True) as testnet:
        assert httpx.get(f"{testnet.url}/fapi/v1/time").status_code == 404
        assert httpx.get(f"{testnet.url}/fapi/v3/time").status_code == 200


# --------------------------------------------------------------------------- the client


def test_a_v3_account_is_read_from_account_with_join_margin(venue: FakeVenue) -> None:
    client = _client(venue.url, V3)
    account = client.account()
    assert account.available_balance > 0
    assert ("GET", "accountWithJoinMargin", 200) in venue.requests
    assert ("GET", "account", 404) not in venue.requests


def test_a_404_on_account_with_join_margin_falls_back_once_and_says_so(
        venue: FakeVenue, caplog: pytest.LogCaptureFixture) -> None:
    venue.removed.add(("v3", "GET", "accountWithJoinMargin"))
    client = _client(venue.url, V3)
    with caplog.at_level(logging.WARNING):
        first = client.account()
        second = client.account()
    assert first.available_balance == second.available_balance > 0
    assert venue.requests.count(("GET", "accountWithJoinMargin", 404)) == 1  # asked once only
    assert venue.requests.count(("GET", "account", 200)) == 2  # /fapi/v4/account, V3-signed
    assert any("/fapi/v4/account" in r.getMessage() for r in caplog.records)


def test_an_orders_fills_are_only_the_trades_that_name_it(
        venue: FakeVenue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asterdex_orders, "TRADES_PAGE", 2)  # page through small pages
    client = _client(venue.url, V1Credentials(KEY, SECRET))
    for i in range(5):  # unrelated trades before and after
        client.place_order(_market(f"x{i}", OrderSide.BUY, "0.01"))
    mine = client.place_order(_market("mine", OrderSide.BUY, "0.03"))
    client.place_order(_market("after", OrderSide.SELL, "0.02"))
    fills = client.order_fills(mine)
    assert [f.client_order_id for f in fills] == ["mine"]
    assert sum(f.quantity for f in fills) == Decimal("0.03")
    sent = [q for q in venue.requests if q[1] == "userTrades"]
    assert sent, "the trades were read"


def test_fills_are_never_asked_of_the_venue_by_order_id(venue: FakeVenue) -> None:
    seen: list[str] = []
    real = httpx.HTTPTransport()

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return real.handle_request(request)

    client = _client(venue.url, V1Credentials(KEY, SECRET), httpx.MockTransport(spy))
    order = client.place_order(_market("o1", OrderSide.BUY, "0.01"))
    client.order_fills(order)
    trades = [u for u in seen if "/userTrades" in u]
    assert trades and all("orderId" not in u and "startTime=" in u for u in trades)


@pytest.mark.parametrize("creds", [V3, None], ids=["v3-keys", "testnet-public"])
def test_public_and_clock_calls_go_to_v3_where_v3_is_the_documented_path(
        creds: V3Credentials | None) -> None:
    with FakeVenue(v3_user=USER, v3_signer=SIGNER, testnet=True) as testnet:
        testnet.set_price("BTCUSDT", "60000")
        url = testnet.url
        if creds is None:  # no keys: the testnet host alone decides; point its name at the fake
            real = httpx.HTTPTransport()
            port = httpx.URL(testnet.url).port

            def to_fake(request: httpx.Request) -> httpx.Response:
                moved = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
                return real.handle_request(httpx.Request(
                    request.method, moved, headers=request.headers, content=request.content))

            client = _client("https://fapi.asterdex-testnet.com", None, httpx.MockTransport(to_fake))
        else:
            client = _client(url, creds)
        assert client.server_time() > 0
        assert client.exchange_info().filters
        assert client.price("BTCUSDT") == Decimal("60000")
        if creds is not None:
            client.sync_clock()
            assert client.account().available_balance > 0
        assert all(status == 200 for _, _, status in testnet.requests), testnet.requests


def test_the_testnet_is_known_by_its_host() -> None:
    assert is_testnet_host("https://fapi.asterdex-testnet.com")
    assert not is_testnet_host("https://fapi.asterdex.com")
    assert not is_testnet_host("http://127.0.0.1:8080")


@pytest.mark.parametrize(("raw", "dual"), [(False, False), (True, True), ("false", False),
                                           ("true", True), ("FALSE", False)])
def test_the_position_mode_flag_is_parsed_not_truth_tested(raw: object, dual: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/time"):
            return httpx.Response(200, json={"serverTime": 1_700_000_000_000})
        return httpx.Response(200, json={"dualSidePosition": raw})

    client = _client("https://fapi.asterdex.com", V1Credentials(KEY, SECRET),
                     httpx.MockTransport(answer))
    assert client.get_position_mode() is dual


def test_a_position_mode_the_client_cannot_read_is_an_error_not_hedge_mode() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/time"):
            return httpx.Response(200, json={"serverTime": 1_700_000_000_000})
        return httpx.Response(200, json={"dualSidePosition": "maybe"})

    client = _client("https://fapi.asterdex.com", V1Credentials(KEY, SECRET),
                     httpx.MockTransport(answer))
    with pytest.raises(ExchangeError, match="dualSidePosition"):
        client.get_position_mode()


def test_the_chain_id_follows_the_host_and_a_mismatch_is_refused() -> None:
    wallet = {"asterdex_user": USER, "asterdex_signer": SIGNER, "asterdex_private_key": SIGNER_KEY}
    testnet = "https://fapi.asterdex-testnet.com"
    assert chain_id_from_settings(make_settings(**wallet)) == 1666
    assert chain_id_from_settings(make_settings(asterdex_base_url=testnet, **wallet)) == 714
    with pytest.raises(ConfigError, match="use 714"):
        chain_id_from_settings(make_settings(asterdex_base_url=testnet, asterdex_chain_id=1666, **wallet))
    with pytest.raises(ConfigError, match="use 1666"):
        chain_id_from_settings(make_settings(asterdex_chain_id=714, **wallet))
    # another Binance-compatible venue keeps whatever chain id it is given
    other = make_settings(asterdex_base_url="https://futures.example.org", asterdex_chain_id=56, **wallet)
    assert chain_id_from_settings(other) == 56


@pytest.mark.parametrize("value", ["a b", '{"x":1}', "1,2", "é", "a&b=c", "x+y"])
def test_only_values_the_official_samples_sign_alike_are_signed(value: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        sign_v3(V3, {"symbol": "BTCUSDT", "newClientOrderId": value}, chain_id=1666, nonce=1)


def test_plain_values_decimals_and_addresses_are_signed() -> None:
    signed = sign_v3(V3, {"symbol": "BTCUSDT", "quantity": Decimal("0.001"), "price": "60000.5",
                          "newClientOrderId": "desk-abc_1.x~y", "reduceOnly": True},
                     chain_id=1666, nonce=1)
    assert signed.payload.endswith(signed.payload.rsplit("&signature=", 1)[1])
    assert f"user={USER}" in signed.payload


def test_prices_and_quantities_round_from_the_filters_minimums() -> None:
    from core.exchanges.symbols import parse_exchange_info

    info = parse_exchange_info({"symbols": [{"symbol": "XYZUSDT", "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.25", "maxPrice": "100000", "tickSize": "0.5"},
        {"filterType": "LOT_SIZE", "minQty": "0.015", "maxQty": "100", "stepSize": "0.01"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.015", "maxQty": "10", "stepSize": "0.01"},
    ]}]})["XYZUSDT"]
    assert info.round_price(Decimal("100.1"), up=False) == Decimal("99.75")  # 0.25 + 199 × 0.5
    assert info.round_price(Decimal("100.1"), up=True) == Decimal("100.25")
    assert info.round_qty(Decimal("0.037")) == Decimal("0.035")  # 0.015 + 2 × 0.01
    assert info.qty_bounds(market=True) == (Decimal("0.015"), Decimal("10"))
    assert info.qty_bounds(market=False) == (Decimal("0.015"), Decimal("100"))


def test_a_market_order_is_checked_against_market_lot_size(venue: FakeVenue) -> None:
    from dataclasses import replace

    from core.errors import OrderRejected

    client = _client(venue.url, V1Credentials(KEY, SECRET))
    small_market = replace(client.filters("BTCUSDT"), market_max_qty=Decimal("1"))
    client.filters = lambda symbol: small_market  # type: ignore[method-assign]
    with pytest.raises(OrderRejected, match="market order's maximum 1") as refused:
        client.prepare_order(_market("big", OrderSide.BUY, "2"))
    assert refused.value.code == -4005
    stop = OrderRequest("cover", "BTCUSDT", OrderSide.SELL, OrderType.STOP_MARKET, Decimal("2"),
                        stop_price=Decimal("59000"), reduce_only=True)
    assert client.prepare_order(stop)["quantity"] == Decimal("2.000")  # LOT_SIZE bounds a stop
