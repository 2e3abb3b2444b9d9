"""Request authentication as the real venue checks it: V1 HMAC + timestamp, V3 EIP-712 + nonce.

Why: a client that signs the wrong bytes must fail in tests exactly as it would fail in production,
so the fake venue recomputes signatures over the *raw* bytes received (query string immediately
followed by the body, the trailing ``signature`` removed), never over re-parsed parameters.
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from core.exchanges.asterdex_signing import hmac_sign, recover_v3_signer
from tests.fake_venue.book import VenueError

V3_NONCE_WINDOW_MS = 10_000


@dataclass
class Keys:
    api_key: str | None = None
    api_secret: str | None = None
    v3_user: str | None = None
    v3_signer: str | None = None
    chain_id: int = 1666
    recent_nonces: deque[int] = field(default_factory=lambda: deque(maxlen=100))


def split_signature(raw: str) -> tuple[str, str | None]:
    """``payload&signature=x`` -> (payload, x); the signature must be the last parameter."""
    marker = "&signature="
    if marker in raw:
        head, sig = raw.rsplit(marker, 1)
        if "&" not in sig:
            return head, sig
    if raw.startswith("signature="):
        return "", raw[len("signature="):]
    return raw, None


def check_v1(keys: Keys, header_key: str | None, query: str, body: str, now_ms: int,
             *, signed: bool) -> None:
    if keys.api_key is None or header_key != keys.api_key:
        raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    if not signed:
        return
    q_head, q_sig = split_signature(query)
    b_head, b_sig = split_signature(body)
    sig = b_sig or q_sig
    total = (q_head if q_sig else query) + (b_head if b_sig else body)
    if sig is None:
        raise VenueError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    assert keys.api_secret is not None
    if not hmac.compare_digest(hmac_sign(keys.api_secret, total), sig.lower()):
        raise VenueError(-1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(total, keep_blank_values=True))
    try:
        ts = int(params["timestamp"])
    except (KeyError, ValueError):
        raise VenueError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
    window = int(params.get("recvWindow", 5000))
    if window > 60_000:
        raise VenueError(-1131, "recvWindow must be less than 60000")
    if ts >= now_ms + 1000:
        raise VenueError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - ts > window:
        raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")


def check_v3(keys: Keys, raw: str, now_ms: int) -> None:
    msg, sig = split_signature(raw)
    if sig is None:
        raise VenueError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    params = dict(parse_qsl(msg, keep_blank_values=True))
    user, signer = params.get("user", ""), params.get("signer", "")
    if keys.v3_user is None or user.lower() != keys.v3_user.lower() or \
            signer.lower() != (keys.v3_signer or "").lower():
        raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    try:
        recovered = recover_v3_signer(msg, sig, keys.chain_id)
    except Exception:
        raise VenueError(-1022, "Signature for this request is not valid.") from None
    if recovered.lower() != signer.lower():
        raise VenueError(-1022, "Signature for this request is not valid.")
    try:
        nonce = int(params["nonce"])
    except (KeyError, ValueError):
        raise VenueError(-1102, "Mandatory parameter 'nonce' was not sent.") from None
    if abs(nonce // 1000 - now_ms) > V3_NONCE_WINDOW_MS:
        raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")
    if nonce in keys.recent_nonces:
        raise VenueError(-4225, "Nonce Expired")
    keys.recent_nonces.append(nonce)
