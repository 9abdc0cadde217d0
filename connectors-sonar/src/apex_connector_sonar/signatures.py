"""HMAC-SHA256 signatures of SONAR alert webhooks, checked on the raw body.

No public SONAR push API exists, so the scheme is an assumption an integrator configures:
``HMAC-SHA256(secret, "<timestamp>." + body)`` with the send time in `X-Sonar-Timestamp`
(`APEX_SONAR_TIMESTAMP_HEADER`; by default required, so a replay older than the window is
refused) — or ``HMAC-SHA256(secret, body)`` when the timestamp is explicitly turned off
(`APEX_SONAR_REQUIRE_TIMESTAMP=false` and an empty header setting) — hex (default) or
base64, in `APEX_SONAR_SIGNATURE_HEADER`, optionally prefixed ``sha256=``. Several
secrets may be configured during a rotation: a signature by any of them is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from apex_connector_sonar.settings import SonarSettings
from apex_platform.errors import SignatureError
from apex_platform.settings import secret_values

_MAX_TIMESTAMP_DIGITS = 15


def signed_bytes(body: bytes, timestamp: str | None) -> bytes:
    return body if timestamp is None else timestamp.encode() + b"." + body


def sign(body: bytes, secret: str, encoding: str = "hex", timestamp: str | None = None) -> str:
    digest = hmac.new(secret.encode(), signed_bytes(body, timestamp), hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


def verify(headers: Mapping[str, str], body: bytes, settings: SonarSettings, now: float) -> None:
    secrets = secret_values(settings.webhook_secret)
    if not secrets:
        raise SignatureError(
            "SONAR alert rejected: no webhook secret is configured. Set APEX_SONAR_WEBHOOK_SECRET to the "
            "shared secret the alert sender signs with"
        )
    lowered = {str(k).lower(): v for k, v in headers.items()}
    provided = lowered.get(settings.signature_header.lower(), "").strip()
    if not provided:
        raise SignatureError(f"SONAR alert rejected: the {settings.signature_header} header is missing")
    if provided.lower().startswith("sha256="):
        provided = provided[7:].strip()
    timestamp: str | None = None
    if settings.timestamp_header:
        timestamp = lowered.get(settings.timestamp_header.lower(), "").strip()
        if not timestamp:
            raise SignatureError(f"SONAR alert rejected: the {settings.timestamp_header} header is missing")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
            raise SignatureError(f"SONAR alert rejected: {settings.timestamp_header} is not unix seconds")
        seconds = int(timestamp) / (1000 if len(timestamp) > 11 else 1)
        if abs(now - seconds) > settings.max_age_seconds:
            raise SignatureError(
                f"SONAR alert rejected: {settings.timestamp_header} is more than {settings.max_age_seconds} s "
                "from now (a replay, or a clock is wrong; see APEX_SONAR_MAX_AGE_SECONDS)"
            )
    if settings.signature_encoding == "hex":
        provided = provided.lower()
    given = provided.encode("utf-8", "replace")
    matched = False
    for secret in secrets:  # every configured secret (a rotation), each compared in constant time
        expected = sign(body, secret, settings.signature_encoding, timestamp)
        matched |= hmac.compare_digest(expected.encode("ascii"), given)
    if not matched:
        raise SignatureError(
            f"SONAR alert rejected: {settings.signature_header} does not match the body (wrong "
            "APEX_SONAR_WEBHOOK_SECRET or APEX_SONAR_SIGNATURE_ENCODING, or the body was altered)"
        )
