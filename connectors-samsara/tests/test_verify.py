"""Signature checks on raw bytes: valid, tampered, wrong secret, replay window, malformed headers."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.signatures import compute, decode_secret
from apex_connector_samsara.signatures import sign as sign_with_connector
from apex_platform.errors import SettingsError, SignatureError

BODY = b'{"eventId":"e-1","eventMs":1773151512000,"eventType":"Alert","event":{}}'
NOW = 1773151512


def test_valid_signature_passes(connector: SamsaraConnector, sign: Callable[..., dict[str, str]]) -> None:
    connector.verify(sign(BODY), BODY)


def test_header_names_are_case_insensitive(connector: SamsaraConnector, sign: Callable[..., dict[str, str]]) -> None:
    headers = {k.lower(): v for k, v in sign(BODY).items()}
    connector.verify(headers, BODY)
    connector.verify({k.upper(): v for k, v in headers.items()}, BODY)


def test_tampered_body_is_rejected(connector: SamsaraConnector, sign: Callable[..., dict[str, str]]) -> None:
    headers = sign(BODY)
    with pytest.raises(SignatureError, match="does not match the body"):
        connector.verify(headers, BODY.replace(b"e-1", b"e-2"))


def test_wrong_secret_is_rejected(sign: Callable[..., dict[str, str]]) -> None:
    other = base64.b64encode(b"another secret entirely").decode()
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=other), clock=lambda: float(NOW))
    with pytest.raises(SignatureError, match="APEX_SAMSARA_WEBHOOK_SECRET"):
        connector.verify(sign(BODY), BODY)


def test_secret_used_as_text_instead_of_decoded_is_rejected(connector: SamsaraConnector, secret: str) -> None:
    # A sender that keyed the HMAC with the base64 text (a common mistake) must not pass.
    headers = {"X-Samsara-Timestamp": str(NOW), "X-Samsara-Signature": compute(BODY, secret.encode(), str(NOW))}
    with pytest.raises(SignatureError):
        connector.verify(headers, BODY)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**6])
def test_timestamps_outside_the_window_are_rejected(
    connector: SamsaraConnector, sign: Callable[..., dict[str, str]], offset: int
) -> None:
    with pytest.raises(SignatureError, match="older than 300 s" if offset < 0 else "in the future"):
        connector.verify(sign(BODY, NOW + offset), BODY)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_inside_the_window_pass(
    connector: SamsaraConnector, sign: Callable[..., dict[str, str]], offset: int
) -> None:
    connector.verify(sign(BODY, NOW + offset), BODY)


def test_window_is_a_setting(sign: Callable[..., dict[str, str]], secret: str) -> None:
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=secret, max_age_seconds=10), clock=lambda: float(NOW))
    with pytest.raises(SignatureError, match="older than 10 s"):
        connector.verify(sign(BODY, NOW - 11), BODY)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "X-Samsara-Signature header is missing"),
        ("", "X-Samsara-Signature header is missing"),
        ("deadbeef" * 8, "expected 'v1=<hex>'"),  # the v1= prefix is missing
        ("v2=" + "a" * 64, "expected 'v1=<hex>'"),
        ("v1=", "64 hexadecimal"),
        ("v1=" + "z" * 64, "64 hexadecimal"),
        ("v1=" + "a" * 63, "64 hexadecimal"),
        ("v1=" + "a" * 65, "64 hexadecimal"),
        ("v1=" + "é" * 64, "64 hexadecimal"),
        ("sha256=" + "a" * 64, "expected 'v1=<hex>'"),
    ],
)
def test_malformed_signature_headers(
    connector: SamsaraConnector, sign: Callable[..., dict[str, str]], signature: str | None, message: str
) -> None:
    headers = sign(BODY)
    del headers["X-Samsara-Signature"]
    if signature is not None:
        headers["X-Samsara-Signature"] = signature
    with pytest.raises(SignatureError, match=message):
        connector.verify(headers, BODY)


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (None, "X-Samsara-Timestamp header is missing"),
        ("", "X-Samsara-Timestamp header is missing"),
        ("1773151512.5", "whole number of seconds"),
        ("-1773151512", "whole number of seconds"),
        ("²", "whole number of seconds"),
        ("9" * 40, "whole number of seconds"),
        ("1773151512000", "in the future"),  # milliseconds instead of seconds
    ],
)
def test_malformed_timestamps(
    connector: SamsaraConnector, sign: Callable[..., dict[str, str]], timestamp: str | None, message: str
) -> None:
    headers = sign(BODY)
    del headers["X-Samsara-Timestamp"]
    if timestamp is not None:
        headers["X-Samsara-Timestamp"] = timestamp
    with pytest.raises(SignatureError, match=message):
        connector.verify(headers, BODY)


def test_the_signed_timestamp_is_the_header_value(
    connector: SamsaraConnector, sign: Callable[..., dict[str, str]]
) -> None:
    headers = sign(BODY)
    headers["X-Samsara-Timestamp"] = str(NOW - 1)  # fresh, but not the one that was signed
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(headers, BODY)


def test_uppercase_hex_is_accepted(connector: SamsaraConnector, sign: Callable[..., dict[str, str]]) -> None:
    headers = sign(BODY)
    headers["X-Samsara-Signature"] = "v1=" + headers["X-Samsara-Signature"][3:].upper()
    connector.verify(headers, BODY)


def test_unset_secret_rejects_with_the_setting_to_set(sign: Callable[..., dict[str, str]]) -> None:
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=None), clock=lambda: float(NOW))
    with pytest.raises(SignatureError, match=r"no webhook secret is configured\. Set APEX_SAMSARA_WEBHOOK_SECRET"):
        connector.verify(sign(BODY), BODY)


@pytest.mark.parametrize("bad", ["not base64 at all!", "%%%%%%%%%%%%%%%%", "a" * 17])
def test_non_base64_secret_is_a_clear_401(sign: Callable[..., dict[str, str]], bad: str) -> None:
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=bad), clock=lambda: float(NOW))
    with pytest.raises(SignatureError, match="APEX_SAMSARA_WEBHOOK_SECRET is not base64") as info:
        connector.verify(sign(BODY), BODY)
    assert len(bad) < 3 or bad not in str(info.value)
    with pytest.raises(SettingsError, match="not base64"):
        decode_secret(bad)


def test_several_secrets_any_one_matches(sign: Callable[..., dict[str, str]], secret: str) -> None:
    other = base64.b64encode(b"the other organisation's webhook").decode()
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=f"{other}, {secret}"), clock=lambda: float(NOW))
    connector.verify(sign(BODY), BODY)


def test_url_safe_and_unpadded_secrets_decode_to_the_same_key() -> None:
    key = bytes(range(250, 256)) * 6
    standard = base64.b64encode(key).decode()
    assert decode_secret(standard) == key
    assert decode_secret(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key


def test_connector_signer_matches_the_independent_one(secret: str, sign: Callable[..., dict[str, str]]) -> None:
    headers = sign_with_connector(BODY, secret, NOW)
    assert headers["X-Samsara-Signature"] == sign(BODY, NOW)["X-Samsara-Signature"]
    assert headers["X-Samsara-Signature"].startswith("v1=")
    assert len(headers["X-Samsara-Signature"]) == 3 + 64
