"""Samsara webhook signatures, computed and checked on raw bytes.

``X-Samsara-Signature: v1=<hex>`` where hex = HMAC-SHA256(key = base64-decoded webhook secret,
msg = ``b"v1:" + X-Samsara-Timestamp + b":" + raw body``); the timestamp is in unix seconds.
Headers and format are in Samsara's webhook guide; the exact computation comes from several
independent implementations (see the README): re-check it against Samsara's page.

Nothing here ever puts a secret or an expected signature into an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

from apex_platform.errors import SettingsError, SignatureError

SIGNATURE_HEADER = "x-samsara-signature"
TIMESTAMP_HEADER = "x-samsara-timestamp"
EVENT_TYPE_HEADER = "x-samsara-event-type"
REQUEST_HEADER = "x-samsara-request"

_SCHEME = "v1"
# 15 digits let a milliseconds value through to be reported as "in the future"; longer is not a timestamp.
_MAX_TIMESTAMP_DIGITS = 15
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def decode_secret(secret: str, *, index: int = 0) -> bytes:
    """The HMAC key: the webhook secret as Samsara shows it, base64-decoded.

    `SettingsError` naming APEX_SAMSARA_WEBHOOK_SECRET when it is not base64 (never the value)."""
    text = "".join(secret.split())
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (None, b"-_"):
        try:
            key = base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
        if key:
            return key
    which = f" (secret #{index + 1})" if index else ""
    raise SettingsError(
        f"APEX_SAMSARA_WEBHOOK_SECRET{which} is not base64: paste the webhook's Secret Key exactly as Samsara "
        "shows it (Settings > Webhooks)"
    )


def compute(body: bytes, key: bytes, timestamp: str) -> str:
    """The value Samsara puts in ``X-Samsara-Signature`` (``v1=<lowercase hex>``)."""
    digest = hmac.new(key, b"v1:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256).hexdigest()
    return f"{_SCHEME}={digest}"


def sign(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """The signature headers Samsara would send with `body` (for the fake vendor and tests)."""
    ts = str(timestamp)
    return {"X-Samsara-Timestamp": ts, "X-Samsara-Signature": compute(body, decode_secret(secret), ts)}


def parse_timestamp(value: str | None) -> int:
    """``X-Samsara-Timestamp`` as unix seconds, or `SignatureError`."""
    if value is None or not value.strip():
        raise SignatureError("Samsara webhook rejected: the X-Samsara-Timestamp header is missing")
    text = value.strip()
    # isdigit() alone accepts non-ASCII digits such as "²"; Samsara sends ASCII digits only.
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError("Samsara webhook rejected: X-Samsara-Timestamp is not a whole number of seconds")
    return int(text)


def parse_signatures(value: str | None) -> list[str]:
    """The hex digests of every ``v1=<hex>`` entry in the header, or `SignatureError` saying what is wrong."""
    if value is None or not value.strip():
        raise SignatureError("Samsara webhook rejected: the X-Samsara-Signature header is missing")
    digests = []
    for part in re.split(r"[,\s]+", value.strip()):
        if not part:
            continue
        scheme, sep, digest = part.partition("=")
        if not sep or scheme.strip() != _SCHEME:
            raise SignatureError("Samsara webhook rejected: X-Samsara-Signature is malformed (expected 'v1=<hex>')")
        if not _HEX_SHA256.fullmatch(digest):
            raise SignatureError(
                "Samsara webhook rejected: X-Samsara-Signature is malformed (v1 must be 64 hexadecimal characters)"
            )
        digests.append(digest.lower())
    if not digests:
        raise SignatureError("Samsara webhook rejected: X-Samsara-Signature is malformed (expected 'v1=<hex>')")
    return digests


def check_fresh(timestamp: int, now: float, max_age_seconds: int) -> None:
    """Reject a timestamp further than `max_age_seconds` from now, in either direction."""
    if now - timestamp > max_age_seconds:
        raise SignatureError(
            f"Samsara webhook rejected: X-Samsara-Timestamp is older than {max_age_seconds} s "
            "(a replay, or this server's clock is wrong; see APEX_SAMSARA_MAX_AGE_SECONDS)"
        )
    if timestamp - now > max_age_seconds:
        raise SignatureError(
            f"Samsara webhook rejected: X-Samsara-Timestamp is more than {max_age_seconds} s in the future "
            "(check this server's clock; see APEX_SAMSARA_MAX_AGE_SECONDS)"
        )


def matches(body: bytes, timestamp: str, provided: Sequence[str], keys: Sequence[bytes]) -> bool:
    """Whether any provided digest equals the one computed with any key, compared in constant time."""
    found = False
    for key in keys:
        expected = compute(body, key, timestamp).partition("=")[2].encode("ascii")
        for digest in provided:
            # No early exit: every pair is compared, so timing says nothing about which key matched.
            found |= hmac.compare_digest(expected, digest.encode("ascii"))
    return found
