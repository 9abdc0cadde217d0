"""verify(): Front's application webhook signature, the replay window, rule webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_platform.errors import SignatureError

SECRET = "front-app-secret-for-tests"
RULE_SECRET = "front-api-secret-for-tests"
NOW = 1773151512.5  # 2026-03-10 14:05:12.500 UTC
NOW_MS = int(NOW * 1000)
BODY = samples.encode(samples.INBOUND_RECEIVED)


@pytest.fixture
def connector() -> FrontConnector:
    return FrontConnector(FrontSettings(signing_secret=SECRET), clock=lambda: NOW)


def test_valid_signature_passes(connector: FrontConnector) -> None:
    connector.verify(samples.sign(BODY, SECRET, NOW_MS), BODY)


def test_signature_matches_front_documented_algorithm() -> None:
    # Computed independently of the connector: base64(HMAC-SHA256(secret, "<ts>:" + body)).
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{NOW_MS}:".encode() + BODY, hashlib.sha256).digest()
    ).decode()
    assert samples.sign(BODY, SECRET, NOW_MS)["X-Front-Signature"] == expected


def test_sign_returns_the_headers_front_sends() -> None:
    headers = samples.sign(b"{}", SECRET, 1234)
    assert set(headers) == {"X-Front-Signature", "X-Front-Request-Timestamp", "Content-Type"}
    assert headers["X-Front-Request-Timestamp"] == "1234"
    assert headers["Content-Type"] == "application/json"


def test_header_names_are_case_insensitive(connector: FrontConnector) -> None:
    headers = {k.lower(): v for k, v in samples.sign(BODY, SECRET, NOW_MS).items()}
    connector.verify(headers, BODY)
    headers = {k.upper(): v for k, v in samples.sign(BODY, SECRET, NOW_MS).items()}
    connector.verify(headers, BODY)


def test_tampered_body_is_rejected(connector: FrontConnector) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    tampered = BODY.replace(b"4471823", b"4471824")
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(headers, tampered)


def test_reserialized_body_is_rejected(connector: FrontConnector) -> None:
    # Same JSON, different bytes: the check is on raw bytes, as Front requires.
    headers = samples.sign(BODY, SECRET, NOW_MS)
    with pytest.raises(SignatureError):
        connector.verify(headers, BODY + b" ")


def test_wrong_secret_is_rejected_without_leaking_anything(connector: FrontConnector) -> None:
    headers = samples.sign(BODY, "another-secret", NOW_MS)
    with pytest.raises(SignatureError) as info:
        connector.verify(headers, BODY)
    message = str(info.value)
    assert "APEX_FRONTAPP_SIGNING_SECRET" in message
    assert SECRET not in message
    assert samples.sign(BODY, SECRET, NOW_MS)["X-Front-Signature"] not in message
    assert headers["X-Front-Signature"] not in message


def test_timestamp_is_part_of_the_signature(connector: FrontConnector) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    headers["X-Front-Request-Timestamp"] = str(NOW_MS - 1)
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(headers, BODY)


@pytest.mark.parametrize("offset_s", [-301, -3600, -(10**6)])
def test_stale_timestamp_is_rejected(connector: FrontConnector, offset_s: int) -> None:
    ts = NOW_MS + offset_s * 1000
    with pytest.raises(SignatureError, match="older than 300 s"):
        connector.verify(samples.sign(BODY, SECRET, ts), BODY)


@pytest.mark.parametrize("offset_s", [301, 3600])
def test_future_timestamp_is_rejected(connector: FrontConnector, offset_s: int) -> None:
    ts = NOW_MS + offset_s * 1000
    with pytest.raises(SignatureError, match="in the future"):
        connector.verify(samples.sign(BODY, SECRET, ts), BODY)


@pytest.mark.parametrize("offset_s", [-299, -1, 0, 1, 299])
def test_timestamps_inside_the_window_pass(connector: FrontConnector, offset_s: int) -> None:
    connector.verify(samples.sign(BODY, SECRET, NOW_MS + offset_s * 1000), BODY)


def test_replay_window_is_configurable() -> None:
    narrow = FrontConnector(FrontSettings(signing_secret=SECRET, max_age_seconds=10), clock=lambda: NOW)
    narrow.verify(samples.sign(BODY, SECRET, NOW_MS - 9_000), BODY)
    with pytest.raises(SignatureError, match="older than 10 s"):
        narrow.verify(samples.sign(BODY, SECRET, NOW_MS - 11_000), BODY)


@pytest.mark.parametrize("missing", ["X-Front-Signature", "X-Front-Request-Timestamp"])
def test_missing_header_is_rejected(connector: FrontConnector, missing: str) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    del headers[missing]
    with pytest.raises(SignatureError, match=f"{missing} header is missing"):
        connector.verify(headers, BODY)


def test_empty_signature_is_rejected(connector: FrontConnector) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    headers["X-Front-Signature"] = "  "
    with pytest.raises(SignatureError, match="missing"):
        connector.verify(headers, BODY)


@pytest.mark.parametrize(
    "timestamp", ["abc", "1773151512.5", "-1773151512500", "1e12", "\uff11\uff12\uff13", "²", "9" * 40, "0x10", ""]
)
def test_non_numeric_timestamp_is_rejected(connector: FrontConnector, timestamp: str) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    headers["X-Front-Request-Timestamp"] = timestamp
    with pytest.raises(SignatureError):
        connector.verify(headers, BODY)


def test_non_ascii_signature_header_is_rejected_not_crashing(connector: FrontConnector) -> None:
    headers = samples.sign(BODY, SECRET, NOW_MS)
    headers["X-Front-Signature"] = "é" * 44
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(headers, BODY)


def test_unset_secret_rejects_every_delivery_and_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_FRONTAPP_SIGNING_SECRET", raising=False)
    connector = FrontConnector(FrontSettings(), clock=lambda: NOW)
    with pytest.raises(SignatureError, match="Set APEX_FRONTAPP_SIGNING_SECRET"):
        connector.verify(samples.sign(BODY, SECRET, NOW_MS), BODY)
    with pytest.raises(SignatureError, match="APEX_FRONTAPP_SIGNING_SECRET"):
        connector.verify({}, BODY)


def test_settings_are_read_from_the_environment_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_FRONTAPP_SIGNING_SECRET", raising=False)
    connector = FrontConnector(clock=lambda: NOW)  # no settings read yet, nothing fails
    monkeypatch.setenv("APEX_FRONTAPP_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("APEX_FRONTAPP_MAX_AGE_SECONDS", "60")
    connector.verify(samples.sign(BODY, SECRET, NOW_MS), BODY)
    assert connector.settings.max_age_seconds == 60
    assert connector.settings.signing_secret is not None
    assert SECRET not in repr(connector.settings)


def _rule_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def test_rule_webhooks_are_refused_by_default(connector: FrontConnector) -> None:
    body = samples.encode(samples.INBOUND_RECEIVED["payload"])
    with pytest.raises(SignatureError, match="X-Front-Request-Timestamp header is missing"):
        connector.verify({"X-Front-Signature": _rule_signature(body, RULE_SECRET)}, body)


def test_rule_webhooks_when_enabled() -> None:
    settings = FrontSettings(accept_rule_webhooks=True, api_secret=RULE_SECRET)
    connector = FrontConnector(settings, clock=lambda: NOW)
    body = samples.encode(samples.INBOUND_RECEIVED["payload"])
    connector.verify({"x-front-signature": _rule_signature(body, RULE_SECRET)}, body)
    with pytest.raises(SignatureError, match="APEX_FRONTAPP_API_SECRET"):
        connector.verify({"x-front-signature": _rule_signature(body, "wrong")}, body)
    with pytest.raises(SignatureError, match="missing"):
        connector.verify({}, body)
    # Application webhooks keep working next to rule webhooks when both secrets are set.
    both = FrontConnector(
        FrontSettings(signing_secret=SECRET, accept_rule_webhooks=True, api_secret=RULE_SECRET),
        clock=lambda: NOW,
    )
    both.verify(samples.sign(BODY, SECRET, NOW_MS), BODY)


def test_rule_webhooks_without_api_secret_are_refused() -> None:
    connector = FrontConnector(FrontSettings(accept_rule_webhooks=True), clock=lambda: NOW)
    body = b"{}"
    with pytest.raises(SignatureError, match="APEX_FRONTAPP_API_SECRET is not set"):
        connector.verify({"X-Front-Signature": _rule_signature(body, "x")}, body)


def test_rotation_accepts_every_configured_signing_secret() -> None:
    """The app secret rotates without downtime: old and new both configured, either signs."""
    new = "front-app-secret-new-0002"
    connector = FrontConnector(FrontSettings(signing_secret=f'["{new}", "{SECRET}"]'), clock=lambda: NOW)
    for secret in (SECRET, new):
        connector.verify(samples.sign(BODY, secret, NOW_MS), BODY)
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(samples.sign(BODY, "front-app-secret-gone-03", NOW_MS), BODY)
    assert connector.demo_deliveries()  # the demo signs with the first


def test_rule_webhooks_have_a_replay_window_from_the_signed_emitted_at() -> None:
    """Rule webhooks have no timestamp header: a captured one used to pass for ever. Their
    signed body's emitted_at now bounds it (APEX_FRONTAPP_RULE_MAX_AGE_SECONDS)."""
    settings = FrontSettings(accept_rule_webhooks=True, api_secret=RULE_SECRET, rule_max_age_seconds=600)
    event = dict(samples.INBOUND_RECEIVED["payload"])
    fresh = samples.encode(event)
    FrontConnector(settings, clock=lambda: NOW).verify(
        {"X-Front-Signature": _rule_signature(fresh, RULE_SECRET)}, fresh
    )
    later = FrontConnector(settings, clock=lambda: NOW + 601)
    with pytest.raises(SignatureError, match="emitted_at is more than 600 s"):
        later.verify({"X-Front-Signature": _rule_signature(fresh, RULE_SECRET)}, fresh)
    undated = samples.encode({k: v for k, v in event.items() if k != "emitted_at"})
    with pytest.raises(SignatureError, match="no emitted_at"):
        FrontConnector(settings, clock=lambda: NOW).verify(
            {"X-Front-Signature": _rule_signature(undated, RULE_SECRET)}, undated
        )
    # explicitly without a window: any age passes (the old behaviour, now a choice)
    anyage = FrontSettings(accept_rule_webhooks=True, api_secret=RULE_SECRET, rule_max_age_seconds=0)
    FrontConnector(anyage, clock=lambda: NOW + 10**6).verify(
        {"X-Front-Signature": _rule_signature(undated, RULE_SECRET)}, undated
    )


def test_without_rule_webhooks_a_missing_timestamp_is_never_the_sha1_scheme() -> None:
    """A delivery stripped of its timestamp is refused, however it is signed."""
    connector = FrontConnector(FrontSettings(signing_secret=SECRET, api_secret=RULE_SECRET), clock=lambda: NOW)
    body = samples.encode(samples.INBOUND_RECEIVED["payload"])
    with pytest.raises(SignatureError, match="X-Front-Request-Timestamp header is missing"):
        connector.verify({"X-Front-Signature": _rule_signature(body, RULE_SECRET)}, body)
