"""Front's webhook signatures, computed and checked on raw bytes.

Application webhooks: ``base64(HMAC-SHA256(app secret, b"<timestamp>:" + raw body))`` in
``X-Front-Signature``, the timestamp (milliseconds) in ``X-Front-Request-Timestamp``.
Rule webhooks (legacy): ``base64(HMAC-SHA1(API secret, raw body))``, no timestamp.

Nothing here ever puts a secret or an expected signature into an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math

from apex_platform.errors import SignatureError

SIGNATURE_HEADER = "x-front-signature"
TIMESTAMP_HEADER = "x-front-request-timestamp"
CHALLENGE_HEADER = "x-front-challenge"

# 13 digits covers milliseconds until the year 2286; anything longer is not a Front timestamp
# and would only make us parse a huge integer.
_MAX_TIMESTAMP_DIGITS = 15


def application_signature(body: bytes, secret: str, timestamp: str) -> str:
    """The value Front puts in ``X-Front-Signature`` for an application webhook."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def rule_signature(body: bytes, api_secret: str) -> str:
    """The value Front puts in ``X-Front-Signature`` for a rule webhook."""
    digest = hmac.new(api_secret.encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_timestamp_ms(value: str) -> int:
    """The ``X-Front-Request-Timestamp`` value as integer milliseconds, or `SignatureError`."""
    text = value.strip()
    # isdigit() alone accepts non-ASCII digits such as "²"; Front sends ASCII digits only.
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError("Front webhook rejected: X-Front-Request-Timestamp is not a whole number of milliseconds")
    return int(text)


def check_fresh(timestamp_ms: int, now_ms: int, max_age_seconds: int) -> None:
    """Reject a timestamp further than `max_age_seconds` from now, in either direction."""
    window_ms = max_age_seconds * 1000
    if now_ms - timestamp_ms > window_ms:
        raise SignatureError(
            f"Front webhook rejected: request timestamp is older than {max_age_seconds} s "
            "(a replay, or this server's clock is wrong; see APEX_FRONTAPP_MAX_AGE_SECONDS)"
        )
    if timestamp_ms - now_ms > window_ms:
        raise SignatureError(
            f"Front webhook rejected: request timestamp is more than {max_age_seconds} s in the future "
            "(check this server's clock; see APEX_FRONTAPP_MAX_AGE_SECONDS)"
        )


def signatures_match(expected: str, provided: str) -> bool:
    """Constant-time comparison; bytes so that a non-ASCII header cannot raise TypeError."""
    return hmac.compare_digest(expected.encode("ascii"), provided.strip().encode("utf-8", "replace"))


def any_signature_matches(expected: list[str], provided: str) -> bool:
    """`provided` is one of the `expected` signatures (one per configured secret); every one
    is compared, so the time taken says nothing about which secret matched."""
    ok = False
    for one in expected:
        ok |= signatures_match(one, provided)
    return ok


def check_rule_fresh(body: bytes, now: float, max_age_seconds: int) -> None:
    """A rule webhook has no timestamp header, but its signed body is a Front event with
    `emitted_at` (seconds): one emitted longer ago than `max_age_seconds` is a replay."""
    try:
        emitted = json.loads(body).get("emitted_at")
    except (ValueError, AttributeError):
        emitted = None
    if isinstance(emitted, bool) or not isinstance(emitted, int | float) or not math.isfinite(emitted):
        raise SignatureError(
            "Front rule webhook rejected: its body has no emitted_at, so it has no replay protection "
            "(APEX_FRONTAPP_RULE_MAX_AGE_SECONDS=0 accepts such deliveries)"
        )
    if abs(now - float(emitted)) > max_age_seconds:
        raise SignatureError(
            f"Front rule webhook rejected: emitted_at is more than {max_age_seconds} s from now "
            "(a replay, or a clock is wrong; see APEX_FRONTAPP_RULE_MAX_AGE_SECONDS)"
        )
