"""Alert webhooks: HMAC-SHA256 of the raw body (hex or base64), optional timestamp + replay window."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from apex_connector_sonar import SonarConnector, SonarSettings
from apex_platform.errors import SignatureError

SECRET = "sonar-shared-secret"
BODY = b'{"alertId":"a1","ticker":"OTRI.ATL","value":9.8}'
NOW = 1773151512.0


def mac(data: bytes, secret: str = SECRET) -> bytes:
    # written independently of the connector: the test checks the scheme, not itself
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def conn(**kw: object) -> SonarConnector:
    """The body-only scheme unless a test names a timestamp header (it must be turned off explicitly)."""
    kw = {"webhook_secret": SECRET, "require_timestamp": False, "timestamp_header": None, **kw}
    return SonarConnector(SonarSettings(**kw), clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [mac(BODY).hex(), mac(BODY).hex().upper(), "sha256=" + mac(BODY).hex(), f"  {mac(BODY).hex()} "]
)
def test_hex_signatures(value: str) -> None:
    conn().verify({"X-Sonar-Signature": value}, BODY)


def test_base64_and_a_custom_header() -> None:
    c = conn(signature_encoding="base64", signature_header="X-Alert-Sig")
    c.verify({"x-alert-sig": base64.b64encode(mac(BODY)).decode()}, BODY)
    with pytest.raises(SignatureError, match="does not match"):
        c.verify({"X-Alert-Sig": mac(BODY).hex()}, BODY)


@pytest.mark.parametrize(
    ("headers", "body", "says"),
    [
        ({"X-Sonar-Signature": mac(BODY).hex()}, BODY.replace(b"9.8", b"1.2"), "does not match"),
        ({"X-Sonar-Signature": mac(BODY, "other-secret").hex()}, BODY, "does not match"),
        ({"X-Sonar-Signature": "zz-not-hex-é"}, BODY, "does not match"),
        ({}, BODY, "X-Sonar-Signature header is missing"),
    ],
)
def test_bad_signatures(headers: dict[str, str], body: bytes, says: str) -> None:
    with pytest.raises(SignatureError, match=says) as err:
        conn().verify(headers, body)
    assert SECRET not in str(err.value)


def test_unset_secret_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APEX_SONAR_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SignatureError, match="APEX_SONAR_WEBHOOK_SECRET"):
        SonarConnector(SonarSettings()).verify({"X-Sonar-Signature": mac(BODY).hex()}, BODY)


def test_timestamp_header_adds_a_replay_window() -> None:
    c = conn(timestamp_header="X-Sonar-Timestamp", max_age_seconds=300)
    ts = str(int(NOW) - 10)
    good = {"X-Sonar-Timestamp": ts, "X-Sonar-Signature": mac(ts.encode() + b"." + BODY).hex()}
    c.verify(good, BODY)
    # a signature of the body alone is not enough once a timestamp header is configured
    with pytest.raises(SignatureError, match="does not match"):
        c.verify({"X-Sonar-Timestamp": ts, "X-Sonar-Signature": mac(BODY).hex()}, BODY)
    for stale in (str(int(NOW) - 301), str(int(NOW) + 301)):
        headers = {"X-Sonar-Timestamp": stale, "X-Sonar-Signature": mac(stale.encode() + b"." + BODY).hex()}
        with pytest.raises(SignatureError, match="more than 300 s"):
            c.verify(headers, BODY)
    with pytest.raises(SignatureError, match="X-Sonar-Timestamp header is missing"):
        c.verify({"X-Sonar-Signature": mac(BODY).hex()}, BODY)
    with pytest.raises(SignatureError, match="not unix seconds"):
        c.verify({"X-Sonar-Timestamp": "yesterday", "X-Sonar-Signature": "00"}, BODY)


def test_a_timestamp_is_required_by_default() -> None:
    """Without a configured timestamp an alert could be replayed for ever: by default the
    connector asks for X-Sonar-Timestamp, and turning it off takes an explicit setting."""
    c = SonarConnector(SonarSettings(webhook_secret=SECRET), clock=lambda: NOW)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="X-Sonar-Timestamp header is missing"):
        c.verify({"X-Sonar-Signature": mac(BODY).hex()}, BODY)
    ts = str(int(NOW))
    c.verify({"X-Sonar-Timestamp": ts, "X-Sonar-Signature": mac(ts.encode() + b"." + BODY).hex()}, BODY)
    with pytest.raises(ValueError, match="no replay protection"):
        SonarSettings(webhook_secret=SECRET, timestamp_header="")  # type: ignore[arg-type]


def test_the_demo_and_the_fake_vendor_sign_with_a_timestamp() -> None:
    from apex_connector_sonar.fake_vendor import FakeSonar

    fake = FakeSonar()
    c = SonarConnector(SonarSettings(webhook_secret=fake.webhook_secret), clock=lambda: NOW)  # type: ignore[arg-type]
    for delivery in c.demo_deliveries():
        assert "X-Sonar-Timestamp" in delivery.headers
        c.verify(delivery.headers, delivery.body)
    body, headers = fake.alert({"alertId": "a2", "ticker": "OTRI.USA", "value": 1.0}, now=NOW)
    c.verify(headers, body)


def test_rotation_accepts_every_configured_secret() -> None:
    old, new = "sonar-secret-old-0001", "sonar-secret-new-0002"
    for configured in (f"{old},{new}", f'["{new}", "{old}"]'):
        c = conn(webhook_secret=configured)
        for secret in (old, new):
            c.verify({"X-Sonar-Signature": mac(BODY, secret).hex()}, BODY)
        with pytest.raises(SignatureError, match="does not match"):
            c.verify({"X-Sonar-Signature": mac(BODY, "sonar-secret-gone-0003").hex()}, BODY)
