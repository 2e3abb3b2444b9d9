"""The loopback fake venue checks what the real one checks and trades like it.

Signatures are verified over the raw bytes (client-signed requests pass, tampered ones fail), stale
timestamps get -1021, request weight is metered and a client that ignores 429 is banned with 418;
the matching engine nets positions, charges fees, honours reduce-only/closePosition, triggers resting
stops when the price moves and refuses duplicates and unfunded orders with the venue's codes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from eth_account import Account
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from core.exchanges.asterdex_signing import (
    API_KEY_HEADER,
    V1Credentials,
    V3Credentials,
    sign_v1,
    sign_v3,
)
from tests.fake_venue import FakeVenue
from tests.live_support import KEY, SECRET, SIGNER, SIGNER_KEY, USER

V1 = V1Credentials(KEY, SECRET)
V3 = V3Credentials(USER, SIGNER, SIGNER_KEY)


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    with FakeVenue(api_key=KEY, api_secret=SECRET, v3_user=USER, v3_signer=SIGNER,
                   meter_clock=lambda: 6000.5) as v:  # one weight window for the whole test
        v.set_price("BTCUSDT", "60000")
        yield v


def v1_get(venue: FakeVenue, path: str, params: dict[str, object] | None = None,
           *, skew_ms: int = 0, creds: V1Credentials = V1) -> httpx.Response:
    signed = sign_v1(creds, params, timestamp_ms=venue.now_ms() + skew_ms, recv_window_ms=5000)
    return httpx.get(f"{venue.url}{path}?{signed.payload}", headers=signed.headers)


def v1_post(venue: FakeVenue, path: str, params: dict[str, object], *, body: bool = False) -> httpx.Response:
    signed = sign_v1(V1, params, timestamp_ms=venue.now_ms())
    if body:
        return httpx.post(f"{venue.url}{path}", content=signed.payload, headers={
            **signed.headers, "Content-Type": "application/x-www-form-urlencoded"})
    return httpx.post(f"{venue.url}{path}?{signed.payload}", headers=signed.headers)


# ------------------------------------------------------------------------------------ auth


def test_v1_signatures_accepted_in_query_and_body(venue: FakeVenue) -> None:
    assert v1_get(venue, "/fapi/v2/balance").status_code == 200
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": Decimal("0.01")}
    r = v1_post(venue, "/fapi/v1/order", {**order, "newClientOrderId": "q1"})
    assert r.status_code == 200, r.text
    r = v1_post(venue, "/fapi/v1/order", {**order, "newClientOrderId": "b1"}, body=True)
    assert r.status_code == 200, r.text
    assert venue.placed_orders() == 2


def test_v1_tampered_or_wrong_secret_or_key_rejected(venue: FakeVenue) -> None:
    signed = sign_v1(V1, {"symbol": "BTCUSDT"}, timestamp_ms=venue.now_ms())
    tampered = signed.payload.replace("BTCUSDT", "ETHUSDT")
    r = httpx.get(f"{venue.url}/fapi/v2/positionRisk?{tampered}", headers=signed.headers)
    assert (r.status_code, r.json()["code"]) == (400, -1022)
    r = v1_get(venue, "/fapi/v2/balance", creds=V1Credentials(KEY, "0" * 64))
    assert r.json()["code"] == -1022
    signed = sign_v1(V1, None, timestamp_ms=venue.now_ms())
    r = httpx.get(f"{venue.url}/fapi/v2/balance?{signed.payload}", headers={API_KEY_HEADER: "other"})
    assert (r.status_code, r.json()["code"]) == (401, -2015)
    r = httpx.get(f"{venue.url}/fapi/v2/balance?{signed.payload}")  # no key header at all
    assert r.json()["code"] == -2015


def test_v1_timestamps_outside_recv_window_get_1021(venue: FakeVenue) -> None:
    assert v1_get(venue, "/fapi/v2/balance", skew_ms=-6000).json()["code"] == -1021
    assert v1_get(venue, "/fapi/v2/balance", skew_ms=+1500).json()["code"] == -1021
    assert v1_get(venue, "/fapi/v2/balance", skew_ms=-3000).status_code == 200


def test_v3_signatures_verified_by_recovering_the_signer(venue: FakeVenue) -> None:
    nonce = venue.now_ms() * 1000
    signed = sign_v3(V3, {"symbol": "BTCUSDT"}, chain_id=1666, nonce=nonce)
    assert httpx.get(f"{venue.url}/fapi/v3/positionRisk?{signed.payload}").status_code == 200
    # the same nonce again is refused, a tampered message recovers someone else
    assert httpx.get(f"{venue.url}/fapi/v3/positionRisk?{signed.payload}").json()["code"] == -4225
    signed = sign_v3(V3, {"symbol": "BTCUSDT"}, chain_id=1666, nonce=nonce + 1)
    r = httpx.get(f"{venue.url}/fapi/v3/positionRisk?{signed.payload.replace('BTCUSDT', 'ETHUSDT')}")
    assert r.json()["code"] == -1022
    # wrong chain id, an unknown signer and an old nonce
    signed = sign_v3(V3, None, chain_id=714, nonce=nonce + 2)
    assert httpx.get(f"{venue.url}/fapi/v3/balance?{signed.payload}").json()["code"] == -1022
    stranger = V3Credentials(USER, Account.from_key("0x" + "33" * 32).address, "0x" + "33" * 32)
    signed = sign_v3(stranger, None, chain_id=1666, nonce=nonce + 3)
    assert httpx.get(f"{venue.url}/fapi/v3/balance?{signed.payload}").json()["code"] == -2015
    signed = sign_v3(V3, None, chain_id=1666, nonce=(venue.now_ms() - 60_000) * 1000)
    assert httpx.get(f"{venue.url}/fapi/v3/balance?{signed.payload}").json()["code"] == -1021


def test_v3_post_in_form_body(venue: FakeVenue) -> None:
    signed = sign_v3(V3, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                          "quantity": Decimal("0.01"), "newClientOrderId": "v3a"},
                     chain_id=1666, nonce=venue.now_ms() * 1000)
    r = httpx.post(f"{venue.url}/fapi/v3/order", content=signed.payload,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "FILLED"


def test_public_routes_need_no_auth_and_unknown_routes_404(venue: FakeVenue) -> None:
    assert httpx.get(f"{venue.url}/fapi/v1/time").json()["serverTime"] > 0
    assert httpx.get(f"{venue.url}/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5").status_code == 200
    assert httpx.get(f"{venue.url}/fapi/v1/klines?symbol=BTCUSDT&interval=7m").json()["code"] == -1120
    assert httpx.get(f"{venue.url}/fapi/v1/nothing").status_code == 404


# ------------------------------------------------------------------------------------ weight


def test_weight_is_metered_then_429_then_418_when_ignored() -> None:
    with FakeVenue(weight_limit=10, ban_s=300, meter_clock=lambda: 6000.5) as v:
        statuses = []
        for _ in range(13):
            r = httpx.get(f"{v.url}/fapi/v1/time")
            statuses.append(r.status_code)
            if r.status_code == 200:
                last_weight = int(r.headers["X-MBX-USED-WEIGHT-1M"])
        assert statuses[:10] == [200] * 10 and last_weight == 10
        assert statuses[10] == 429 and statuses[11:] == [418, 418]
        r = httpx.get(f"{v.url}/fapi/v1/time")
        assert r.status_code == 418 and 0 < int(r.headers["Retry-After"]) <= 300
        assert r.json()["code"] == -1003


def test_weights_follow_the_documented_table(venue: FakeVenue) -> None:
    def used(path: str) -> int:
        return int(httpx.get(f"{venue.url}{path}").headers["X-MBX-USED-WEIGHT-1M"])

    first = used("/fapi/v1/ticker/24hr?symbol=BTCUSDT")
    assert used("/fapi/v1/ticker/24hr") - first == 40
    base = used("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=10")
    assert used("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1000") - base == 5


# ------------------------------------------------------------------------------------ matching


def post(venue: FakeVenue, **params: object) -> dict[str, object]:
    return v1_post(venue, "/fapi/v1/order", params).json()


def test_market_fills_net_positions_with_fees_and_realized_pnl(venue: FakeVenue) -> None:
    venue.book.fill_parts = 3
    o = post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.03", newClientOrderId="a")
    assert o["status"] == "FILLED" and o["executedQty"] == "0.03"
    trades = [t for t in venue.book.trades if t["orderId"] == o["orderId"]]
    assert [t["qty"] for t in trades] == ["0.01", "0.01", "0.01"]
    assert all(Decimal(t["commission"]) == Decimal("0.24") for t in trades)  # 600 * 0.0004
    venue.set_price("BTCUSDT", "61000")
    venue.book.fill_parts = 1
    post(venue, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.05", newClientOrderId="b")
    last = venue.book.trades[-1]
    assert Decimal(last["realizedPnl"]) == Decimal("30")  # 0.03 * 1000, then flips short 0.02
    pos = venue.book.pos("BTCUSDT")
    assert pos.amount == Decimal("-0.02") and pos.entry == Decimal("61000")
    wallet = Decimal(10_000) + Decimal(30) - Decimal("0.72") - Decimal("0.05") * 61000 * Decimal("0.0004")
    assert venue.book.wallet == wallet


def test_partial_liquidity_expires_the_rest_of_a_market_order(venue: FakeVenue) -> None:
    venue.book.fill_ratio = Decimal("0.5")
    o = post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.04", newClientOrderId="p")
    assert (o["status"], o["executedQty"]) == ("EXPIRED", "0.02")


def test_refusals_use_the_venue_codes(venue: FakeVenue) -> None:
    ok = post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="d")
    assert ok["status"] == "FILLED"
    cases = [
        ({"quantity": "0.01", "newClientOrderId": "d"}, -4116),  # duplicate client id
        ({"quantity": "5", "newClientOrderId": "big"}, -2019),  # 300k notional on 10k at 20x
        ({"quantity": "0", "newClientOrderId": "zero"}, -4003),
        ({"quantity": "0.0015", "newClientOrderId": "step"}, -1111),
        ({"quantity": "0.01", "newClientOrderId": "x" * 37}, -4015),
    ]
    for extra, code in cases:
        assert post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", **extra)["code"] == code
    venue.set_price("ETHUSDT", "3000")
    assert post(venue, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.001",
                newClientOrderId="n")["code"] == -4164
    assert post(venue, symbol="ETHUSDT", side="SELL", type="MARKET", quantity="0.01", reduceOnly="true",
                newClientOrderId="r")["code"] == -2022
    assert post(venue, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", stopPrice="61000",
                quantity="0.01", newClientOrderId="i")["code"] == -2021
    assert venue.placed_orders() == 1


def test_resting_stop_triggers_on_price_move_with_real_fees(venue: FakeVenue) -> None:
    post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.02", newClientOrderId="e")
    stop = post(venue, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", stopPrice="59000",
                closePosition="true", workingType="MARK_PRICE", newClientOrderId="s")
    tp = post(venue, symbol="BTCUSDT", side="SELL", type="TAKE_PROFIT_MARKET", stopPrice="65000",
              quantity="0.02", reduceOnly="true", newClientOrderId="t")
    assert stop["status"] == tp["status"] == "NEW"
    assert venue.set_price("BTCUSDT", "59500") == []
    fired = venue.set_price("BTCUSDT", "58800")
    assert [o["clientOrderId"] for o in fired] == ["s"] and fired[0]["status"] == "FILLED"
    trade = venue.book.trades[-1]
    assert (trade["price"], trade["qty"]) == ("58800", "0.02")
    assert Decimal(trade["commission"]) == Decimal("0.4704")
    assert Decimal(trade["realizedPnl"]) == Decimal("-24")
    # the take-profit has nothing left to reduce: it expires when it triggers
    fired = venue.set_price("BTCUSDT", "66000")
    assert fired[0]["clientOrderId"] == "t" and fired[0]["status"] == "EXPIRED"
    kinds = [r["incomeType"] for r in venue.book.income]
    assert kinds.count("COMMISSION") == 2 and kinds.count("REALIZED_PNL") == 1


def test_limit_orders_rest_and_fill_as_maker(venue: FakeVenue) -> None:
    o = post(venue, symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01", price="59000",
             timeInForce="GTC", newClientOrderId="l")
    assert o["status"] == "NEW"
    venue.set_price("BTCUSDT", "58900")
    trade = venue.book.trades[-1]
    assert trade["maker"] is True and trade["price"] == "59000"
    assert Decimal(trade["commission"]) == Decimal("0.118")


def test_countdown_cancels_open_orders_when_due(venue: FakeVenue) -> None:
    post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="c0")
    post(venue, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", stopPrice="50000", quantity="0.01",
         reduceOnly="true", newClientOrderId="c1")
    assert v1_post(venue, "/fapi/v1/countdownCancelAll",
                   {"symbol": "BTCUSDT", "countdownTime": 60_000}).status_code == 200
    assert venue.run_countdowns() == []
    assert venue.run_countdowns(venue.now_ms() + 61_000) == ["BTCUSDT"]
    assert venue.book.open_orders("BTCUSDT") == []


def test_market_clock_serves_bundled_candles(venue: FakeVenue) -> None:
    rows = httpx.get(f"{venue.url}/fapi/v1/klines?symbol=ETHUSDT&interval=15m&limit=3").json()
    assert len(rows) == 3 and rows[-1][0] <= venue.market.now_ms
    venue.advance_market(900_000)
    later = httpx.get(f"{venue.url}/fapi/v1/klines?symbol=ETHUSDT&interval=15m&limit=3").json()
    assert later[-1][0] == rows[-1][0] + 900_000
    price = httpx.get(f"{venue.url}/fapi/v1/ticker/price?symbol=ETHUSDT").json()["price"]
    assert Decimal(price) == Decimal(str(venue.market.last_close("ETHUSDT")))


# ------------------------------------------------------------------------------------ streams


# a generous deadline: a message that is coming arrives, only later on a loaded machine
def _recv(ws: object, n: int) -> list[dict[str, object]]:
    return [json.loads(ws.recv(timeout=60)) for _ in range(n)]  # type: ignore[attr-defined]


def test_market_streams_greet_then_push_prices_and_closed_klines(venue: FakeVenue) -> None:
    url = f"{venue.ws_url}/stream?streams=btcusdt@markPrice@1s/ethusdt@kline_15m"
    with connect(url) as ws:
        greeting = {m["stream"]: m["data"] for m in _recv(ws, 2)}
        assert greeting["btcusdt@markPrice@1s"]["p"] == "60000"
        kline = greeting["ethusdt@kline_15m"]["k"]
        assert kline["x"] is True and kline["T"] < venue.market.now_ms
        venue.set_price("BTCUSDT", "61000")
        (msg,) = _recv(ws, 1)
        assert msg["stream"] == "btcusdt@markPrice@1s" and msg["data"]["p"] == "61000"
        venue.advance_market(900_000)
        got = _recv(ws, 2)
        closed = next(m["data"]["k"] for m in got if m["stream"] == "ethusdt@kline_15m")
        assert closed["t"] == kline["t"] + 900_000 and closed["x"] is True
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
        assert _recv(ws, 1)[0] == {"result": ["btcusdt@markPrice@1s", "ethusdt@kline_15m"], "id": 7}


def test_user_stream_pushes_order_and_account_events(venue: FakeVenue) -> None:
    key = httpx.post(f"{venue.url}/fapi/v1/listenKey", headers={API_KEY_HEADER: KEY}).json()["listenKey"]
    with connect(f"{venue.ws_url}/ws/{key}") as ws:
        _listening(venue)
        post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="w1")
        trade, account = _recv(ws, 2)
        assert trade["e"] == "ORDER_TRADE_UPDATE" and trade["o"]["x"] == "TRADE"
        assert (trade["o"]["c"], trade["o"]["X"], trade["o"]["L"]) == ("w1", "FILLED", "60000")
        assert trade["o"]["n"] == "0.24"
        assert account["e"] == "ACCOUNT_UPDATE" and account["a"]["P"][0]["pa"] == "0.01"
        post(venue, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", stopPrice="59000",
             closePosition="true", newClientOrderId="w2")
        assert _recv(ws, 1)[0]["o"]["x"] == "NEW"
        venue.set_price("BTCUSDT", "58000")
        fill = _recv(ws, 1)[0]["o"]
        assert (fill["c"], fill["x"], fill["X"], fill["rp"]) == ("w2", "TRADE", "FILLED", "-20")


def test_streams_can_be_dropped_and_refused(venue: FakeVenue) -> None:
    with connect(f"{venue.ws_url}/ws/btcusdt@markPrice") as ws:
        assert _recv(ws, 1)[0]["e"] == "markPriceUpdate"
        venue.streams.drop_all()  # type: ignore[union-attr]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
    venue.streams.refuse = True  # type: ignore[union-attr]
    with connect(f"{venue.ws_url}/ws/btcusdt@markPrice") as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=60)


def test_a_market_connection_carries_at_most_200_streams(venue: FakeVenue) -> None:
    names = [f"s{i}usdt@aggTrade" for i in range(201)]  # unlisted symbols: no greeting
    with connect(f"{venue.ws_url}/stream?streams={'/'.join(names)}") as ws, \
            pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert venue.streams is not None and venue.streams.too_many == 1
    with connect(f"{venue.ws_url}/stream?streams={'/'.join(names[:200])}") as ws:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}))
        assert _recv(ws, 1)[0]["code"] == 2  # refused: the connection already has 200
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert len(_recv(ws, 1)[0]["result"]) == 200
    assert venue.streams.stream_counts == [200]


def _listening(venue: FakeVenue, n: int = 1) -> None:
    """Wait (generously) until the venue has registered ``n`` user-data connections: a client's
    handshake completes a moment before the venue counts it as a listener."""
    deadline = time.monotonic() + 60
    while venue.streams is None or venue.streams.user_listeners() < n:
        assert time.monotonic() < deadline, "the venue never registered the listener"
        time.sleep(0.01)


def _listen_key(venue: FakeVenue, method: str = "POST") -> httpx.Response:
    return httpx.request(method, f"{venue.url}/fapi/v1/listenKey", headers={API_KEY_HEADER: KEY})


def test_a_listen_key_lives_until_it_lapses_then_says_so_and_goes_quiet(venue: FakeVenue) -> None:
    key = _listen_key(venue).json()["listenKey"]
    assert _listen_key(venue).json()["listenKey"] == key  # POST again: the same key, extended
    assert _listen_key(venue, "PUT").json() == {}
    with connect(f"{venue.ws_url}/ws/{key}") as ws:
        _listening(venue)
        venue.expire_listen_key()
        assert _recv(ws, 1)[0]["e"] == "listenKeyExpired"
        post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="q1")
        with pytest.raises(TimeoutError):  # nothing more on an expired key
            ws.recv(timeout=0.3)
    assert _listen_key(venue, "PUT").json()["code"] == -1125
    with connect(f"{venue.ws_url}/ws/{key}") as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=60)  # the old key is refused
    fresh = _listen_key(venue).json()["listenKey"]
    assert fresh != key
    with connect(f"{venue.ws_url}/ws/{fresh}") as ws:
        _listening(venue)
        post(venue, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01", newClientOrderId="q2")
        assert _recv(ws, 1)[0]["o"]["c"] == "q2"
    venue.listen_key_ttl_ms = 0  # a key nobody keeps alive lapses by itself
    assert _listen_key(venue).json()["listenKey"] == fresh
    assert _listen_key(venue, "PUT").json()["code"] == -1125


def test_user_events_can_come_twice_or_out_of_order_and_the_stream_can_drop(venue: FakeVenue) -> None:
    key = _listen_key(venue).json()["listenKey"]
    with connect(f"{venue.ws_url}/ws/{key}") as ws:
        _listening(venue)
        venue.user_duplicate = 1
        post(venue, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="d1")
        first, again, account = _recv(ws, 3)
        assert first == again and first["e"] == "ORDER_TRADE_UPDATE" and account["e"] == "ACCOUNT_UPDATE"
        venue.user_reverse = 1
        post(venue, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01", newClientOrderId="d2")
        late, early = _recv(ws, 2)
        assert (late["e"], early["e"]) == ("ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE")
        assert venue.drop_user_stream() == 1
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
