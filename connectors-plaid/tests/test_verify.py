"""verify(): the Plaid-Verification JWT (ES256, kid → JWK from the fake's key endpoint,
iat window, request_body_sha256) and the key cache."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apex_connector_plaid import PlaidConnector, samples
from apex_platform.errors import SignatureError, VerificationUnavailable

BODY = samples.sync_updates_available_body()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def connector(plaid: Any, clock: Clock) -> PlaidConnector:
    return plaid.connector(clock=clock)


def b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def rejected(connector: PlaidConnector, headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(SignatureError) as info:
        connector.verify(headers, body)
    message = str(info.value)
    assert message.startswith("Plaid webhook rejected: ")
    assert SECRET_MARK not in message
    return message


SECRET_MARK = "test-secret"


def test_valid_webhook_passes(plaid: Any, connector: PlaidConnector) -> None:
    connector.verify(plaid.fake.sign(BODY), BODY)


def test_header_name_is_case_insensitive(plaid: Any, connector: PlaidConnector) -> None:
    headers = plaid.fake.sign(BODY)
    connector.verify({"plaid-verification": headers["Plaid-Verification"]}, BODY)
    connector.verify({"PLAID-VERIFICATION": headers["Plaid-Verification"]}, BODY)


def test_signature_by_another_key_with_plaids_kid_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    message = rejected(connector, plaid.fake.sign(BODY, private_key=forger))
    assert "signature does not match" in message


def test_alg_none_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    header = {"alg": "none", "kid": plaid.fake.current_kid, "typ": "JWT"}
    claims = {"iat": int(time.time()), "request_body_sha256": __import__("hashlib").sha256(BODY).hexdigest()}
    token = f"{b64(header)}.{b64(claims)}."
    assert "alg 'none'" in rejected(connector, {"Plaid-Verification": token})


def test_hs256_signed_with_a_public_value_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    # The classic confusion attack: HMAC keyed with something the attacker knows.
    token = jwt.encode(
        {"iat": int(time.time()), "request_body_sha256": "x"},
        "known-to-attacker-32-bytes-long!!",
        algorithm="HS256",
        headers={"kid": plaid.fake.current_kid},
    )
    assert "alg 'HS256'" in rejected(connector, {"Plaid-Verification": token})


def test_rs256_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = plaid.fake.sign(BODY, private_key=key, algorithm="RS256")
    assert "alg 'RS256'" in rejected(connector, headers)


def test_unknown_kid_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    message = rejected(connector, plaid.fake.sign(BODY, kid="no-such-key", private_key=forger))
    assert "does not know verification key 'no-such-key'" in message


def test_missing_kid_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({"iat": int(time.time())}, key, algorithm="ES256")
    assert "no usable kid" in rejected(connector, {"Plaid-Verification": token})


def test_expired_key_is_rejected(plaid: Any, connector: PlaidConnector, clock: Clock) -> None:
    plaid.fake.expire_key(plaid.fake.current_kid, at=clock.now - 10)
    assert "expired at" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now))


def test_stale_iat_is_rejected_and_the_window_edge_passes(plaid: Any, connector: PlaidConnector, clock: Clock) -> None:
    connector.verify(plaid.fake.sign(BODY, iat=clock.now - 299), BODY)
    assert "issued 301 s ago (limit 300 s)" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now - 301))


def test_iat_in_the_future_beyond_the_skew_is_rejected(plaid: Any, connector: PlaidConnector, clock: Clock) -> None:
    connector.verify(plaid.fake.sign(BODY, iat=clock.now + 30), BODY)
    assert "in the future" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now + 120))


def test_non_numeric_iat_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    assert "numeric iat" in rejected(connector, plaid.fake.sign(BODY, claims={"iat": "yesterday"}))


def test_tampered_body_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    headers = plaid.fake.sign(BODY)
    tampered = BODY.replace(b"MqpWMopm", b"AttackEr")
    assert "does not match request_body_sha256" in rejected(connector, headers, tampered)


def test_reserialized_body_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    # Plaid hashes the bytes it sent (pretty-printed); the same JSON compacted is another body.
    headers = plaid.fake.sign(BODY)
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert "does not match" in rejected(connector, headers, compact)


def test_missing_body_hash_claim_is_rejected(plaid: Any, connector: PlaidConnector) -> None:
    assert "no request_body_sha256" in rejected(connector, plaid.fake.sign(BODY, claims={"request_body_sha256": ""}))


def test_missing_header_is_rejected(connector: PlaidConnector) -> None:
    assert "header is missing" in rejected(connector, {"Content-Type": "application/json"})
    assert "header is missing" in rejected(connector, {"Plaid-Verification": "  "})


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b", "a.b.c.d", "!!!.???.###", "eyJhbGciOiJFUzI1NiJ9.e30", "x" * 5000],
)
def test_malformed_jwt_is_rejected(connector: PlaidConnector, token: str) -> None:
    message = rejected(connector, {"Plaid-Verification": token})
    assert "not a JWT" in message or "cannot be decoded" in message


def test_one_key_fetch_serves_many_verifications(plaid: Any, connector: PlaidConnector) -> None:
    for _ in range(25):
        connector.verify(plaid.fake.sign(BODY), BODY)
    assert plaid.fake.key_fetches == 1
    assert connector.key_cache.fetches == 1


def test_key_is_fetched_again_after_the_cache_time(plaid: Any, clock: Clock) -> None:
    connector = plaid.connector(clock=clock, key_cache_seconds=60)
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    clock.now += 61
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    assert plaid.fake.key_fetches == 2


def test_a_key_expired_at_plaid_is_refused_once_refetched(plaid: Any, clock: Clock) -> None:
    connector = plaid.connector(clock=clock, key_cache_seconds=60)
    old = plaid.fake.current_kid
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    plaid.fake.rotate_key()
    plaid.fake.expire_key(old, at=clock.now)
    clock.now += 61
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)  # the new key
    assert "expired" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))


def test_unknown_kids_are_remembered_briefly(plaid: Any, connector: PlaidConnector) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    for _ in range(5):
        rejected(connector, plaid.fake.sign(BODY, kid="forged-kid", private_key=forger))
    assert plaid.fake.key_fetches == 1


def test_without_credentials_every_webhook_is_rejected(plaid: Any) -> None:
    connector = plaid.connector(secret=None)
    message = rejected(connector, plaid.fake.sign(BODY))
    assert "APEX_PLAID_CLIENT_ID and APEX_PLAID_SECRET" in message


def test_wrong_credentials_name_the_settings(plaid: Any) -> None:
    connector = plaid.connector(secret="wrong-secret")
    assert "INVALID_API_KEYS" in rejected(connector, plaid.fake.sign(BODY))


def unverified(connector: PlaidConnector, headers: dict[str, str], body: bytes = BODY) -> VerificationUnavailable:
    with pytest.raises(VerificationUnavailable) as info:
        connector.verify(headers, body)
    assert str(info.value).startswith("Plaid webhook not verified yet: ")
    assert SECRET_MARK not in str(info.value)
    return info.value


def test_unreachable_key_endpoint_is_unavailable_not_a_forgery(plaid: Any) -> None:
    """Nothing is known about the request when Plaid cannot be asked: 503 (Plaid sends it
    again), never 401 (which would call a genuine webhook forged)."""
    connector = plaid.connector(base_url="http://127.0.0.1:9", key_fetch_timeout_seconds=1)
    assert "could not fetch verification key" in str(unverified(connector, plaid.fake.sign(BODY)))


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_key_endpoint_is_unavailable_then_verifies_once_it_answers(plaid: Any, status: int) -> None:
    connector = plaid.connector()
    plaid.fake.key_outage = status
    try:
        error = unverified(connector, plaid.fake.sign(BODY))
        assert f"HTTP {status}" in str(error)
        assert error.retry_after > 0
        error = unverified(connector, plaid.fake.sign(BODY))  # not remembered as an unknown kid
    finally:
        plaid.fake.key_outage = None
    connector.verify(plaid.fake.sign(BODY), BODY)


def test_a_known_key_still_verifies_while_plaid_cannot_be_asked_again(plaid: Any, clock: Clock) -> None:
    connector = plaid.connector(clock=clock, key_cache_seconds=60)
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    clock.now += 3600  # the cached key is due for a fresh fetch
    plaid.fake.key_outage = 500
    try:
        connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
        forger = ec.generate_private_key(ec.SECP256R1())
        assert "signature does not match" in rejected(
            connector, plaid.fake.sign(BODY, iat=clock.now, private_key=forger)
        )
    finally:
        plaid.fake.key_outage = None


def test_a_cached_key_plaid_expires_on_rotation_is_refused_after_the_cache_time(plaid: Any, clock: Clock) -> None:
    """Cached while valid; Plaid rotates and sets the old key's expired_at: once the cache
    time is up the key is fetched again, its expiry learnt, and it is refused (cached or not)."""
    connector = plaid.connector(clock=clock, key_cache_seconds=60)
    old = plaid.fake.current_kid
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    plaid.fake.rotate_key(expire_previous=True, at=clock.now)
    clock.now += 30  # within the cache time the cached answer stands
    connector.verify(plaid.fake.sign(BODY, iat=clock.now, kid=old), BODY)
    clock.now += 31
    assert f"verification key {old!r} expired at" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))
    assert "expired at" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)  # the new key


def test_stale_while_error_keeps_a_cached_key_only_up_to_the_max_stale_age(plaid: Any, clock: Clock) -> None:
    """While Plaid's key endpoint fails, a cached key verifies for at most
    KEY_MAX_STALE_SECONDS past its cache time; past that the webhook is unavailable (503,
    Plaid sends it again), and once Plaid answers, an expiry set meanwhile is learnt."""
    connector = plaid.connector(clock=clock, key_cache_seconds=60, key_max_stale_seconds=120)
    old = plaid.fake.current_kid
    connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
    plaid.fake.key_outage = 500
    try:
        clock.now += 179  # past the cache time, within the stale bound: still verifies
        connector.verify(plaid.fake.sign(BODY, iat=clock.now), BODY)
        plaid.fake.rotate_key(expire_previous=True, at=clock.now)  # Plaid expires it meanwhile
        clock.now += 2  # 181 s since Plaid last confirmed it: 60 + 120 are up
        error = unverified(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))
        assert "APEX_PLAID_KEY_MAX_STALE_SECONDS" in str(error)
        assert "HTTP 500" in str(error)
        clock.now += 3600
        unverified(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))
    finally:
        plaid.fake.key_outage = None
    assert "expired at" in rejected(connector, plaid.fake.sign(BODY, iat=clock.now, kid=old))
