"""Plaid webhook verification (https://plaid.com/docs/api/webhooks/webhook-verification/).

The `Plaid-Verification` header is a JWT signed with ES256. Its header names the key
(`kid`) that `/webhook_verification_key/get` returns as a JWK; its claims carry `iat`
and `request_body_sha256`, the SHA-256 hex digest of the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from apex_platform.errors import SignatureError

HEADER = "plaid-verification"
ALGORITHM = "ES256"
_MAX_TOKEN_CHARS = 4096
_MAX_KID_CHARS = 128
#: how long a key id Plaid does not know is remembered, so forged kids cannot make
#: every request call Plaid
_UNKNOWN_KID_SECONDS = 60.0
_MAX_CACHED = 256

KeyFetcher = Callable[[str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class CachedKey:
    key: ec.EllipticCurvePublicKey | None  # None: Plaid does not know this kid
    expired_at: float | None
    fetched_at: float


def _reject(reason: str) -> SignatureError:
    return SignatureError(f"Plaid webhook rejected: {reason}")


def public_key_from_jwk(jwk: Mapping[str, Any], kid: str) -> tuple[ec.EllipticCurvePublicKey, float | None]:
    """The P-256 public key of a Plaid JWK and its `expired_at` (unix seconds or None)."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise _reject(f"verification key {kid!r} is not an EC P-256 key")
    if jwk.get("alg") not in (None, ALGORITHM):
        raise _reject(f"verification key {kid!r} is for {jwk.get('alg')!r}, not ES256")
    if jwk.get("kid") not in (None, kid):
        raise _reject(f"Plaid returned key {jwk.get('kid')!r} when asked for {kid!r}")
    try:
        key = ECAlgorithm.from_jwk(json.dumps({k: jwk[k] for k in ("kty", "crv", "x", "y")}))
    except (KeyError, ValueError, jwt.InvalidKeyError) as exc:
        raise _reject(f"verification key {kid!r} is not a usable JWK ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _reject(f"verification key {kid!r} is not a public key")
    expired = jwk.get("expired_at")
    expired_at = float(expired) if isinstance(expired, int | float) and not isinstance(expired, bool) else None
    return key, expired_at


class KeyCache:
    """Verification keys by kid. A key is fetched once and trusted for `ttl` seconds;
    a key whose `expired_at` has passed is refused. Thread-safe (the API may verify
    from several threads)."""

    def __init__(self, fetch: KeyFetcher, clock: Callable[[], float], ttl: float) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._keys: dict[str, CachedKey] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        now = self._clock()
        with self._lock:
            cached = self._keys.get(kid)
        fresh = cached is not None and now - cached.fetched_at < (
            self._ttl if cached.key is not None else _UNKNOWN_KID_SECONDS
        )
        if not fresh:
            cached = self._load(kid, now)
        assert cached is not None
        if cached.key is None:
            raise _reject(f"Plaid does not know verification key {kid!r} (kid of the Plaid-Verification JWT)")
        if cached.expired_at is not None and cached.expired_at <= now:
            raise _reject(f"verification key {kid!r} expired at {int(cached.expired_at)}")
        return cached.key

    def _load(self, kid: str, now: float) -> CachedKey:
        self.fetches += 1
        jwk = self._fetch(kid)
        if jwk is None:
            entry = CachedKey(None, None, now)
        else:
            key, expired_at = public_key_from_jwk(jwk, kid)
            entry = CachedKey(key, expired_at, now)
        with self._lock:
            if len(self._keys) >= _MAX_CACHED and kid not in self._keys:
                # Forget the oldest entries first; real Plaid has a handful of keys.
                for old in sorted(self._keys, key=lambda k: self._keys[k].fetched_at)[: _MAX_CACHED // 4]:
                    del self._keys[old]
            self._keys[kid] = entry
        return entry


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: KeyCache,
    now: float,
    max_age_seconds: int,
    clock_skew_seconds: int,
) -> dict[str, Any]:
    """Check the `Plaid-Verification` JWT against the raw body; return its claims."""
    token = next((v for k, v in headers.items() if str(k).lower() == HEADER), None)
    if token is None or not token.strip():
        raise _reject("the Plaid-Verification header is missing")
    token = token.strip()
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
        raise _reject("the Plaid-Verification header is not a JWT (header.payload.signature)")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise _reject(f"the Plaid-Verification JWT cannot be decoded ({exc})") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise _reject(f"the Plaid-Verification JWT uses alg {alg!r}; only ES256 is accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_CHARS or not kid.isprintable():
        raise _reject("the Plaid-Verification JWT has no usable kid (key id) in its header")
    key = keys.get(kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            # Time is checked below against the connector's clock, with Plaid's own rules.
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise _reject(f"the Plaid-Verification signature does not match key {kid!r}") from None
    except jwt.PyJWTError as exc:
        raise _reject(f"the Plaid-Verification JWT is invalid ({type(exc).__name__}: {exc})") from None
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise _reject("the Plaid-Verification JWT has no numeric iat (issued-at) claim")
    if iat < now - max_age_seconds:
        raise _reject(f"the Plaid-Verification JWT was issued {int(now - iat)} s ago (limit {max_age_seconds} s)")
    if iat > now + clock_skew_seconds:
        raise _reject(f"the Plaid-Verification JWT is issued {int(iat - now)} s in the future")
    claimed = claims.get("request_body_sha256")
    if not isinstance(claimed, str) or not claimed:
        raise _reject("the Plaid-Verification JWT has no request_body_sha256 claim")
    if not hmac.compare_digest(body_sha256(body).encode(), claimed.strip().lower().encode("utf-8", "replace")):
        raise _reject("the SHA-256 of the body does not match request_body_sha256 (the body was altered)")
    return claims
