"""Plaid webhook verification (https://plaid.com/docs/api/webhooks/webhook-verification/).

The `Plaid-Verification` header is a JWT signed with ES256. Its header names the key
(`kid`) that `/webhook_verification_key/get` returns as a JWK; its claims carry `iat`
and `request_body_sha256`, the SHA-256 hex digest of the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from apex_platform.errors import SignatureError, VerificationUnavailable

HEADER = "plaid-verification"
ALGORITHM = "ES256"
_MAX_TOKEN_CHARS = 4096
_MAX_KID_CHARS = 128
#: how long a key id Plaid does not know is remembered, so forged kids cannot make
#: every request call Plaid
_UNKNOWN_KID_SECONDS = 60.0
_MAX_CACHED = 256
#: the window of the budget of fetches for key ids not known to be valid
_BUDGET_WINDOW_SECONDS = 60.0
DEFAULT_UNKNOWN_KIDS_PER_MINUTE = 10
#: how long past its cache time a cached key keeps verifying while Plaid cannot be asked
DEFAULT_MAX_STALE_SECONDS = 3600.0

KeyFetcher = Callable[[str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class CachedKey:
    key: ec.EllipticCurvePublicKey | None  # None: Plaid does not know this kid
    expired_at: float | None
    fetched_at: float

    @property
    def usable(self) -> bool:
        return self.key is not None and self.expired_at is None


class _Flight:
    """One fetch of one kid under way; other verifications of that kid wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.entry: CachedKey | None = None
        self.error: SignatureError | VerificationUnavailable | None = None


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
    if expired is None:
        return key, None
    if isinstance(expired, bool) or not isinstance(expired, int | float) or not math.isfinite(expired):
        # set, but unreadable: Plaid sets it only on a key that has expired
        return key, 0.0
    return key, float(expired)


class KeyCache:
    """Verification keys by kid, fetched from Plaid at most as often as this allows.

    - A key is fetched once and trusted for `ttl` seconds, then fetched again (so an
      expiry Plaid reports is seen); a kid Plaid does not know is remembered for a minute.
    - A key whose `expired_at` is set is refused: Plaid sets it once the key has expired
      (null while it is active), at every use, cached or not.
    - Single flight: one fetch per kid at a time; concurrent verifications of that kid wait
      for it (at most `wait_seconds`), or, while a known key is being fetched again, go on
      with the cached one.
    - Stale while error: a usable key whose refetch fails because Plaid cannot be asked
      (`VerificationUnavailable`) keeps verifying for at most `max_stale` seconds past its
      `ttl`. Past that, nothing vouches that Plaid has not expired it meanwhile, so
      verifications are unavailable (503, Plaid retries) until Plaid answers again.
    - Budget: at most `unknown_per_minute` fetches a minute for kids not known to be
      valid. Past it a fresh kid is refused at once (401) without calling Plaid, so forged
      JWTs with random kids can neither drain Plaid's rate limit nor hold threads.
    - Bounded memory: `_MAX_CACHED` entries, unknown kids evicted first.

    Thread-safe (the API verifies in worker threads).
    """

    def __init__(
        self,
        fetch: KeyFetcher,
        clock: Callable[[], float],
        ttl: float,
        *,
        unknown_per_minute: int = DEFAULT_UNKNOWN_KIDS_PER_MINUTE,
        wait_seconds: float = 10.0,
        max_stale: float = DEFAULT_MAX_STALE_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._max_stale = max_stale
        self._budget = unknown_per_minute
        self._wait = wait_seconds
        self._keys: dict[str, CachedKey] = {}
        self._flights: dict[str, _Flight] = {}
        self._unknown_fetch_times: deque[float] = deque()
        self._lock = threading.Lock()
        self.fetches = 0
        #: fresh kids refused because the budget was spent
        self.refused = 0

    def _fresh(self, entry: CachedKey, now: float) -> bool:
        return now - entry.fetched_at < (self._ttl if entry.key is not None else _UNKNOWN_KID_SECONDS)

    def _may_serve_stale(self, entry: CachedKey | None, now: float) -> bool:
        """A usable key Plaid confirmed at most `ttl + max_stale` seconds ago."""
        return entry is not None and entry.usable and now - entry.fetched_at < self._ttl + self._max_stale

    def _take_budget(self, now: float) -> bool:
        times = self._unknown_fetch_times
        while times and now - times[0] >= _BUDGET_WINDOW_SECONDS:
            times.popleft()
        if len(times) >= self._budget:
            return False
        times.append(now)
        return True

    def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        now = self._clock()
        leader = False
        with self._lock:
            cached = self._keys.get(kid)
            flight = None
            if cached is None or not self._fresh(cached, now):
                flight = self._flights.get(kid)
                if flight is not None and self._may_serve_stale(cached, now):
                    flight = None  # being fetched again: the cached key serves meanwhile
                elif flight is None:
                    if not (cached is not None and cached.usable) and not self._take_budget(now):
                        self.refused += 1
                        raise _reject(
                            f"verification key {kid!r} is unknown and {self._budget} unknown key ids were "
                            "already looked up at Plaid this minute (APEX_PLAID_KEY_FETCHES_PER_MINUTE); "
                            "Plaid was not asked"
                        )
                    flight = self._flights[kid] = _Flight()
                    leader = True
        if flight is not None:
            stale = cached
            try:
                cached = self._lead(kid, now, flight) if leader else self._follow(kid, flight)
            except VerificationUnavailable as exc:
                if not self._may_serve_stale(stale, now):
                    if stale is not None and stale.usable:
                        raise VerificationUnavailable(
                            f"{str(exc).removesuffix('; send it again')}; the cached key was last confirmed by "
                            f"Plaid {int(now - stale.fetched_at)} s ago, longer than APEX_PLAID_KEY_CACHE_SECONDS "
                            "+ APEX_PLAID_KEY_MAX_STALE_SECONDS allow; send it again",
                            retry_after=exc.retry_after,
                        ) from None
                    raise
                cached = stale  # Plaid's key service is failing: the key it gave before still serves
        assert cached is not None
        if cached.key is None:
            raise _reject(f"Plaid does not know verification key {kid!r} (kid of the Plaid-Verification JWT)")
        if cached.expired_at is not None:
            raise _reject(f"verification key {kid!r} expired at {int(cached.expired_at)}")
        return cached.key

    def _lead(self, kid: str, now: float, flight: _Flight) -> CachedKey:
        try:
            flight.entry = self._load(kid, now)
            return flight.entry
        except (SignatureError, VerificationUnavailable) as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(kid, None)
            flight.done.set()

    def _follow(self, kid: str, flight: _Flight) -> CachedKey:
        if not flight.done.wait(self._wait):
            raise VerificationUnavailable(
                f"Plaid webhook not verified yet: verification key {kid!r} is still being fetched from Plaid; "
                "send it again"
            )
        if isinstance(flight.error, VerificationUnavailable):
            raise VerificationUnavailable(str(flight.error), retry_after=flight.error.retry_after)
        if flight.error is not None:
            raise SignatureError(str(flight.error))
        assert flight.entry is not None
        return flight.entry

    def _load(self, kid: str, now: float) -> CachedKey:
        with self._lock:
            self.fetches += 1
        jwk = self._fetch(kid)
        if jwk is None:
            entry = CachedKey(None, None, now)
        else:
            key, expired_at = public_key_from_jwk(jwk, kid)
            entry = CachedKey(key, expired_at, now)
        with self._lock:
            if len(self._keys) >= _MAX_CACHED and kid not in self._keys:
                # unknown kids first (a flood of forged kids must not evict Plaid's real key),
                # then the oldest
                order = sorted(self._keys, key=lambda k: (self._keys[k].key is not None, self._keys[k].fetched_at))
                for old in order[: _MAX_CACHED // 4]:
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
