"""Request signing for AsterDex: the exact bytes the live client sends, for both auth schemes.

Why this module exists: a signed request is only accepted when the signature covers *exactly* the
string on the wire, so encoding, ordering and signing live in one place and return the final
query/body string; the HTTP client must send ``SignedRequest.payload`` verbatim (no re-encoding,
no re-ordering by the HTTP library). Both schemes of the reference digest
(``shared/reference/asterdex-futures-api.md`` §3) are covered:

- **V1** (API key + HMAC-SHA256, §3.1-3.2): ``k=v&...&recvWindow=..&timestamp=..`` signed with the
  secret, ``&signature=<lowercase hex>`` appended last, header ``X-MBX-APIKEY``.
- **V3** (API wallet, EIP-712, §3.5 "current scheme"): ``msg`` = business params, then ``nonce``
  (microseconds), ``user``, ``signer``, url-encoded; signed as EIP-712 typed data
  ``Message{msg: string}`` in domain ``AsterSignTransaction`` v1 (chain 1666 mainnet / 714 testnet)
  by the agent (signer) key; ``&signature=0x<65-byte hex>`` appended last; no header.

Values are formatted as plain strings: ``Decimal("1E-3")`` -> ``0.001``, bools -> ``true``/``false``;
floats are refused (use ``Decimal``) so a price can never go out as ``1e-05``.

Secrets never print: credentials keep keys in ``pydantic.SecretStr`` and mask them in ``repr``/``str``;
``SignedRequest`` hides its headers (they carry the API key); no exception raised here quotes a
secret or chains the library error that might.

V3 field order (``nonce``, ``user``, ``signer`` after the business params) and the value encoding
(``urllib.parse.urlencode`` semantics: ``quote_plus``, nothing safe) copy the official Python sample
of ``POST /fapi/v3/order`` as summarised in the doc digest; the server may rebuild ``msg`` itself, so
**check this against the live testnet** before trusting it with money.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

ParamValue = str | int | Decimal | bool
Params = Mapping[str, ParamValue] | Sequence[tuple[str, ParamValue]]

API_KEY_HEADER = "X-MBX-APIKEY"
MAX_RECV_WINDOW_MS = 60_000
MAINNET_CHAIN_ID = 1666
TESTNET_CHAIN_ID = 714
EIP712_DOMAIN_NAME = "AsterSignTransaction"
EIP712_DOMAIN_VERSION = "1"
EIP712_VERIFYING_CONTRACT = "0x0000000000000000000000000000000000000000"
V1_RESERVED = frozenset({"recvWindow", "timestamp", "signature"})
V3_RESERVED = frozenset({"nonce", "user", "signer", "signature"})
V1_SAFE_CHARS = ""  # quote() keeps RFC 3986 unreserved chars (A-Za-z0-9-_.~); all else is %XX


def _reveal(secret: SecretStr | str) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def format_value(value: ParamValue) -> str:
    """One parameter value as the plain string the venue expects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("parameter value must be a finite Decimal")
        return format(value, "f")
    if isinstance(value, str):
        return value
    raise TypeError(f"unsupported parameter type {type(value).__name__} (use str, int, Decimal, bool)")


def _pairs(params: Params | None, reserved: frozenset[str]) -> list[tuple[str, str]]:
    items = list(params.items()) if isinstance(params, Mapping) else list(params or ())
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for key, value in items:
        if key in reserved:
            raise ValueError(f"parameter {key!r} is set by the signer, not the caller")
        if key in seen:
            raise ValueError(f"duplicate parameter {key!r}")
        seen.add(key)
        out.append((key, format_value(value)))
    return out


def encode_params(
    pairs: Sequence[tuple[str, str]], quote_via: Callable[..., str] = quote
) -> str:
    """``k=v&k=v`` in the given order; each key and value percent-encoded once."""
    return "&".join(
        f"{quote_via(k, safe=V1_SAFE_CHARS)}={quote_via(v, safe=V1_SAFE_CHARS)}" for k, v in pairs
    )


@dataclass(frozen=True)
class SignedRequest:
    """What the client sends: ``payload`` as the query string *or* the form body, byte for byte."""

    payload: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------------------------- V1


@dataclass(frozen=True, repr=False)
class V1Credentials:
    """API key + secret (legacy V1). Plain strings are wrapped in ``SecretStr``."""

    api_key: SecretStr
    api_secret: SecretStr

    def __post_init__(self) -> None:
        for name in ("api_key", "api_secret"):
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                object.__setattr__(self, name, SecretStr(str(value)))
            if not getattr(self, name).get_secret_value():
                raise ValueError(f"V1 {name} is empty")

    def __repr__(self) -> str:
        return "V1Credentials(api_key='**********', api_secret='**********')"

    __str__ = __repr__


def hmac_sign(secret: SecretStr | str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret`` (§3.1 step 3)."""
    return hmac.new(_reveal(secret).encode(), payload.encode(), hashlib.sha256).hexdigest()


def api_key_headers(creds: V1Credentials) -> dict[str, str]:
    """The header for MARKET_DATA / USER_STREAM / SIGNED endpoints."""
    return {API_KEY_HEADER: creds.api_key.get_secret_value()}


def build_v1_payload(
    params: Params | None, *, timestamp_ms: int, recv_window_ms: int | None = None
) -> str:
    """The unsigned string: business params in order, then ``recvWindow`` (if given), ``timestamp``."""
    pairs = _pairs(params, V1_RESERVED)
    if recv_window_ms is not None:
        if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
            raise ValueError(f"recvWindow must be in 1..{MAX_RECV_WINDOW_MS} ms")
        pairs.append(("recvWindow", str(recv_window_ms)))
    pairs.append(("timestamp", str(timestamp_ms)))
    return encode_params(pairs)


def sign_v1(
    creds: V1Credentials,
    params: Params | None,
    *,
    timestamp_ms: int | None = None,
    recv_window_ms: int | None = None,
) -> SignedRequest:
    """SIGNED (TRADE / USER_DATA) request: payload ending in ``&signature=<hex>``, plus the header.

    ``timestamp_ms`` defaults to the local clock; the client passes server-synced time (§3.4).
    """
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    payload = build_v1_payload(params, timestamp_ms=ts, recv_window_ms=recv_window_ms)
    signature = hmac_sign(creds.api_secret, payload)
    return SignedRequest(f"{payload}&signature={signature}", api_key_headers(creds))


# ---------------------------------------------------------------------------------------------- V3


def chain_id_for(testnet: bool) -> int:
    return TESTNET_CHAIN_ID if testnet else MAINNET_CHAIN_ID


@dataclass(frozen=True, repr=False)
class V3Credentials:
    """Main wallet ``user``, API-wallet ``signer`` and the signer's private key (checked to match)."""

    user: str
    signer: str
    private_key: SecretStr

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, SecretStr):
            object.__setattr__(self, "private_key", SecretStr(str(self.private_key)))
        from eth_account import Account  # loaded by the V3 signer only, never by paper or backtests
        from eth_utils import is_address

        for name in ("user", "signer"):
            if not is_address(getattr(self, name)):
                raise ValueError(f"V3 {name} is not a valid 0x address")
        try:
            derived = Account.from_key(self.private_key.get_secret_value()).address
        except Exception:
            raise ValueError("V3 private key is malformed") from None
        if derived.lower() != self.signer.lower():
            raise ValueError("V3 private key does not belong to the signer address")

    def __repr__(self) -> str:
        return f"V3Credentials(user={self.user!r}, signer={self.signer!r}, private_key='**********')"

    __str__ = __repr__


class NonceSource:
    """Microsecond nonces from an injectable clock, strictly increasing (thread-safe)."""

    def __init__(self, clock_us: Callable[[], int] | None = None) -> None:
        self._clock = clock_us or (lambda: time.time_ns() // 1_000)
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(int(self._clock()), self._last + 1)
            return self._last


_V3_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~-]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def check_v3_signable(pairs: list[tuple[str, str]]) -> None:
    """Refuse a key or value the official samples would sign differently.

    The venue checks the string as sent, and the official Python sample signs the url-encoded
    string while the JS demo signs the raw one: the two agree only on ``[A-Za-z0-9._~-]`` (and
    0x addresses). Anything else is refused before signing rather than risking a rejected order.
    """
    for key, value in pairs:
        if not _V3_SAFE_VALUE.fullmatch(key):
            raise ValueError(f"V3 parameter name {key!r} has characters outside [A-Za-z0-9._~-]")
        if not (_V3_SAFE_VALUE.fullmatch(value) or _ADDRESS.fullmatch(value)):
            raise ValueError(f"V3 parameter {key} has characters outside [A-Za-z0-9._~-]; "
                             "the venue's samples disagree on how such a value is signed")


def build_v3_msg(params: Params | None, *, nonce: int, user: str, signer: str) -> str:
    """The signed ``msg``: business params in order, then ``nonce``, ``user``, ``signer``."""
    pairs = _pairs(params, V3_RESERVED)
    pairs += [("nonce", str(nonce)), ("user", user), ("signer", signer)]
    return encode_params(pairs, quote_via=quote_plus)


def v3_typed_data(msg: str, chain_id: int) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Message": [{"name": "msg", "type": "string"}],
        },
        "primaryType": "Message",
        "domain": {
            "name": EIP712_DOMAIN_NAME,
            "version": EIP712_DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": EIP712_VERIFYING_CONTRACT,
        },
        "message": {"msg": msg},
    }


def sign_v3_msg(private_key: SecretStr | str, msg: str, chain_id: int) -> str:
    """``0x``-prefixed 65-byte (r, s, v) EIP-712 signature of ``msg``."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=v3_typed_data(msg, chain_id))
    try:
        signed = Account.sign_message(signable, private_key=_reveal(private_key))
    except Exception:
        raise ValueError("V3 signing failed (malformed private key?)") from None
    return "0x" + bytes(signed.signature).hex()


def recover_v3_signer(msg: str, signature: str, chain_id: int) -> str:
    """Checksummed address that produced ``signature`` over ``msg`` on ``chain_id``."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=v3_typed_data(msg, chain_id))
    return str(Account.recover_message(signable, signature=signature))


def sign_v3(
    creds: V3Credentials, params: Params | None, *, chain_id: int, nonce: int
) -> SignedRequest:
    """Signed V3 query/body: ``msg`` + ``&signature=0x...``; no API-key header. Only values the
    official samples sign alike are accepted (``check_v3_signable``)."""
    check_v3_signable([*_pairs(params, V3_RESERVED), ("user", creds.user), ("signer", creds.signer)])
    msg = build_v3_msg(params, nonce=nonce, user=creds.user, signer=creds.signer)
    signature = sign_v3_msg(creds.private_key, msg, chain_id)
    return SignedRequest(f"{msg}&signature={signature}", {})
