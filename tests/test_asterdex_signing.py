"""AsterDex request signing: official HMAC vectors, value formatting, EIP-712 round trips, secrecy."""

from __future__ import annotations

import threading
import urllib.parse
from decimal import Decimal

import pytest
from eth_account import Account
from pydantic import SecretStr

from core.exchanges.asterdex_signing import (
    API_KEY_HEADER,
    MAINNET_CHAIN_ID,
    TESTNET_CHAIN_ID,
    NonceSource,
    SignedRequest,
    V1Credentials,
    V3Credentials,
    build_v1_payload,
    build_v3_msg,
    chain_id_for,
    format_value,
    hmac_sign,
    recover_v3_signer,
    sign_v1,
    sign_v3,
    sign_v3_msg,
)

# Official vector 1: futures doc, POST /fapi/v1/order (digest §3.2).
FUT_KEY = "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"
FUT_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
FUT_PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)
FUT_SIG = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
FUT_PARAMS = [
    ("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"),
    ("quantity", 1), ("price", Decimal("9000")), ("timeInForce", "GTC"),
]
# Official vector 2: AsterDex spot doc.
SPOT_SECRET = "fdde510a2b71fa43a43bff3e3cf7819c8c66df34633d338050f4f59664b3b313"
SPOT_PAYLOAD = (
    "symbol=BNBUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=5&price=1.1"
    "&recvWindow=5000&timestamp=1756187806000"
)
SPOT_SIG = "e09169bf6c02ec4b29fa1bdc3a967f92c8c6cfcde0551ba1d477b2d3cf4c51b0"
SPOT_PARAMS = {
    "symbol": "BNBUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
    "quantity": 5, "price": Decimal("1.1"),
}

SIGNER_KEY = "0x" + "11" * 32
SIGNER = Account.from_key(SIGNER_KEY).address
USER = Account.from_key("0x" + "22" * 32).address


def v3_creds() -> V3Credentials:
    return V3Credentials(user=USER, signer=SIGNER, private_key=SecretStr(SIGNER_KEY))


# ------------------------------------------------------------------------------------- V1 / HMAC


@pytest.mark.parametrize(
    ("secret", "payload", "sig"), [(FUT_SECRET, FUT_PAYLOAD, FUT_SIG), (SPOT_SECRET, SPOT_PAYLOAD, SPOT_SIG)]
)
def test_raw_hmac_reproduces_official_vectors(secret: str, payload: str, sig: str) -> None:
    assert hmac_sign(secret, payload) == sig
    assert hmac_sign(SecretStr(secret), payload) == sig


@pytest.mark.parametrize(
    ("secret", "params", "ts", "payload", "sig"),
    [
        (FUT_SECRET, FUT_PARAMS, 1591702613943, FUT_PAYLOAD, FUT_SIG),
        (SPOT_SECRET, SPOT_PARAMS, 1756187806000, SPOT_PAYLOAD, SPOT_SIG),
    ],
)
def test_builder_reproduces_official_vectors(
    secret: str, params: object, ts: int, payload: str, sig: str
) -> None:
    assert build_v1_payload(params, timestamp_ms=ts, recv_window_ms=5000) == payload  # type: ignore[arg-type]
    creds = V1Credentials(api_key=SecretStr(FUT_KEY), api_secret=SecretStr(secret))
    req = sign_v1(creds, params, timestamp_ms=ts, recv_window_ms=5000)  # type: ignore[arg-type]
    assert req.payload == f"{payload}&signature={sig}"
    assert req.payload.endswith(f"&signature={sig}")
    assert req.headers == {API_KEY_HEADER: FUT_KEY}


def test_v1_without_params_or_recv_window() -> None:
    creds = V1Credentials(api_key="k" * 16, api_secret="s" * 16)
    req = sign_v1(creds, None, timestamp_ms=123)
    assert req.payload == f"timestamp=123&signature={hmac_sign('s' * 16, 'timestamp=123')}"
    assert sign_v1(creds, {}).payload.startswith("timestamp=")


def test_value_formatting() -> None:
    assert format_value(Decimal("1E-3")) == "0.001"
    assert format_value(Decimal("1E+3")) == "1000"
    assert format_value(Decimal("0.00000100")) == "0.00000100"
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(5) == "5"
    assert format_value("GTC") == "GTC"
    payload = build_v1_payload(
        {"quantity": Decimal("1e-3"), "reduceOnly": True, "closePosition": False, "limit": 10},
        timestamp_ms=1,
    )
    assert payload == "quantity=0.001&reduceOnly=true&closePosition=false&limit=10&timestamp=1"
    assert "e-" not in payload.lower() and "True" not in payload


@pytest.mark.parametrize("bad", [0.001, Decimal("NaN"), Decimal("Infinity"), None, b"x"])
def test_bad_values_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        format_value(bad)  # type: ignore[arg-type]


def test_values_are_percent_encoded_once() -> None:
    orders = '[{"symbol":"BTCUSDT","quantity":"1"}]'
    payload = build_v1_payload([("batchOrders", orders), ("id", "a b/c:d")], timestamp_ms=1)
    assert payload.startswith("batchOrders=" + urllib.parse.quote(orders, safe="") + "&")
    assert "id=a%20b%2Fc%3Ad&" in payload
    assert "%25" not in payload  # nothing double-encoded
    assert build_v1_payload({"price": Decimal("1.1"), "id": "x-_.~9"}, timestamp_ms=1) == (
        "price=1.1&id=x-_.~9&timestamp=1"
    )


def test_v1_reserved_duplicate_and_recv_window_guards() -> None:
    for key in ("timestamp", "recvWindow", "signature"):
        with pytest.raises(ValueError):
            build_v1_payload({key: 1}, timestamp_ms=1)
    with pytest.raises(ValueError):
        build_v1_payload([("symbol", "A"), ("symbol", "B")], timestamp_ms=1)
    for rw in (0, 60_001):
        with pytest.raises(ValueError):
            build_v1_payload({}, timestamp_ms=1, recv_window_ms=rw)


# ------------------------------------------------------------------------------------- V3 / EIP-712


def test_v3_msg_layout_matches_official_sample_encoding() -> None:
    params = {"symbol": "ASTERUSDT", "type": "LIMIT", "side": "BUY", "timeInForce": "GTC",
              "quantity": "20", "price": Decimal("0.5"),
              "batchOrders": "[{'symbol':'ASTERUSDT','price':'0.5'}]"}
    msg = build_v3_msg(params, nonce=1748310859508867, user=USER, signer=SIGNER)
    as_official = {k: format_value(v) for k, v in params.items()}
    as_official |= {"nonce": "1748310859508867", "user": USER, "signer": SIGNER}
    assert msg == urllib.parse.urlencode(as_official)
    assert msg.endswith(f"&nonce=1748310859508867&user={USER}&signer={SIGNER}")
    assert build_v3_msg(None, nonce=7, user=USER, signer=SIGNER) == (
        f"nonce=7&user={USER}&signer={SIGNER}"
    )
    for key in ("nonce", "user", "signer", "signature"):
        with pytest.raises(ValueError):
            build_v3_msg({key: "x"}, nonce=1, user=USER, signer=SIGNER)


def test_v3_signature_recovers_signer() -> None:
    req = sign_v3(v3_creds(), {"symbol": "BTCUSDT", "quantity": Decimal("0.001")},
                  chain_id=TESTNET_CHAIN_ID, nonce=1_700_000_000_000_000)
    msg, _, sig = req.payload.rpartition("&signature=")
    assert msg == f"symbol=BTCUSDT&quantity=0.001&nonce=1700000000000000&user={USER}&signer={SIGNER}"
    assert sig.startswith("0x") and len(sig) == 2 + 65 * 2
    assert recover_v3_signer(msg, sig, TESTNET_CHAIN_ID) == SIGNER
    assert req.headers == {}
    assert API_KEY_HEADER not in req.headers


def test_v3_tampering_or_wrong_chain_recovers_someone_else() -> None:
    msg = f"symbol=BTCUSDT&side=BUY&quantity=1&nonce=1&user={USER}&signer={SIGNER}"
    sig = sign_v3_msg(SecretStr(SIGNER_KEY), msg, MAINNET_CHAIN_ID)
    assert recover_v3_signer(msg, sig, MAINNET_CHAIN_ID) == SIGNER
    assert recover_v3_signer(msg.replace("quantity=1", "quantity=9"), sig, MAINNET_CHAIN_ID) != SIGNER
    assert recover_v3_signer(msg, sig, TESTNET_CHAIN_ID) != SIGNER


def test_chain_ids_differ_and_signatures_differ() -> None:
    assert chain_id_for(testnet=False) == MAINNET_CHAIN_ID == 1666
    assert chain_id_for(testnet=True) == TESTNET_CHAIN_ID == 714
    main = sign_v3(v3_creds(), {"symbol": "BTCUSDT"}, chain_id=MAINNET_CHAIN_ID, nonce=5)
    test = sign_v3(v3_creds(), {"symbol": "BTCUSDT"}, chain_id=TESTNET_CHAIN_ID, nonce=5)
    assert main.payload != test.payload
    assert main.payload.rpartition("&signature=")[0] == test.payload.rpartition("&signature=")[0]


def test_nonces_strictly_increase_even_within_one_microsecond() -> None:
    frozen = NonceSource(lambda: 1_000_000)
    assert [frozen() for _ in range(4)] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    ticks = iter([50, 40, 40, 100])  # clock steps back: still increasing
    backwards = NonceSource(lambda: next(ticks))
    assert [backwards() for _ in range(4)] == [50, 51, 52, 100]
    real = NonceSource()
    seen: list[int] = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(200):
            n = real()
            with lock:
                seen.append(n)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == len(seen) == 800


# ------------------------------------------------------------------------------------- secrecy


def test_secrets_never_in_repr_or_str() -> None:
    v1 = V1Credentials(api_key=FUT_KEY, api_secret=FUT_SECRET)  # plain str accepted
    v1s = V1Credentials(api_key=SecretStr(FUT_KEY), api_secret=SecretStr(FUT_SECRET))
    v3 = V3Credentials(user=USER, signer=SIGNER, private_key=SIGNER_KEY)  # type: ignore[arg-type]
    req = sign_v1(v1, FUT_PARAMS, timestamp_ms=1)
    for obj in (v1, v1s, v3, v3_creds(), req):
        text = repr(obj) + str(obj) + f"{obj}" + repr([obj])
        for secret in (FUT_KEY, FUT_SECRET, SIGNER_KEY, SIGNER_KEY[2:]):
            assert secret not in text
    assert isinstance(v1.api_secret, SecretStr) and isinstance(v3.private_key, SecretStr)
    assert SIGNER in repr(v3) and USER in repr(v3)  # addresses are public and useful in logs
    assert repr(SignedRequest("a=1", {API_KEY_HEADER: FUT_KEY})).count(FUT_KEY) == 0


def _assert_clean(exc: BaseException, *secrets: str) -> None:
    chain: BaseException | None = exc
    while chain is not None:
        for secret in secrets:
            assert secret not in str(chain) and secret not in repr(chain)
        chain = chain.__cause__ or (None if chain.__suppress_context__ else chain.__context__)


def test_secrets_never_in_exception_messages() -> None:
    bad_key = "0x" + "zz" * 32
    with pytest.raises(ValueError) as err:
        V3Credentials(user=USER, signer=SIGNER, private_key=SecretStr(bad_key))
    _assert_clean(err.value, bad_key, bad_key[2:])
    other_key = "0x" + "33" * 32
    with pytest.raises(ValueError) as err:
        V3Credentials(user=USER, signer=SIGNER, private_key=SecretStr(other_key))
    _assert_clean(err.value, other_key, other_key[2:])
    with pytest.raises(ValueError) as err:
        sign_v3_msg(SecretStr(bad_key), "nonce=1", MAINNET_CHAIN_ID)
    _assert_clean(err.value, bad_key, bad_key[2:])
    with pytest.raises(ValueError) as err:
        V3Credentials(user="not-an-address", signer=SIGNER, private_key=SecretStr(SIGNER_KEY))
    _assert_clean(err.value, SIGNER_KEY, SIGNER_KEY[2:])
    with pytest.raises(ValueError) as err:
        V1Credentials(api_key=FUT_KEY, api_secret="")
    _assert_clean(err.value, FUT_KEY)
    creds = V1Credentials(api_key=FUT_KEY, api_secret=FUT_SECRET)
    for bad_params in ({"timestamp": 1}, {"price": 0.1}):
        with pytest.raises((TypeError, ValueError)) as err:
            sign_v1(creds, bad_params, timestamp_ms=1)  # type: ignore[arg-type]
        _assert_clean(err.value, FUT_KEY, FUT_SECRET)
