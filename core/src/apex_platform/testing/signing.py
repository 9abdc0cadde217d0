"""Signed webhook requests for tests, and their hostile variants.

A *signer* is what a test signs a body with: `(body) -> headers`. Either the connector's
own (Front's `samples.sign`, Samsara's `signatures.sign`, a fake vendor's `sign` or
`webhook`), bound to a secret and a time with `functools.partial` or a lambda; or an
`HmacScheme`, a generic HMAC signer written independently of any connector, so a test checks
the vendor's contract and not the connector against itself.

`SignedRequest` holds one request (body and headers) and makes the variants a `verify` must
refuse: `tampered()`, `unsigned()`, `resigned(other_signer)` (e.g. the wrong secret, a stale
time). `check_verify(verify, request)` says whether a verifier accepts a request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Signer = Callable[[bytes], Mapping[str, str]]
"""Signs a body: the headers the vendor sends with it (signature, timestamp, content type)."""


def hmac_digest(
    secret: str | bytes, message: bytes, *, algorithm: str = "sha256", encoding: Literal["hex", "base64"] = "hex"
) -> str:
    """HMAC of `message` under `secret` (text is UTF-8), as lowercase hex or standard base64."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, message, getattr(hashlib, algorithm)).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")


@dataclass(frozen=True)
class HmacScheme:
    """How a vendor signs with a shared secret: the signed message is `message` with
    `{timestamp}` and `{body}` filled in (e.g. `"{timestamp}:{body}"`, `"v1:{timestamp}:{body}"`),
    the digest goes in `signature_header` after `prefix` (e.g. `"v1="`, `"sha256="`), the
    time in `timestamp_header` (seconds or milliseconds) when the scheme has one."""

    signature_header: str
    timestamp_header: str | None = None
    message: str = "{body}"
    algorithm: str = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_unit: Literal["s", "ms"] = "s"
    extra_headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    def signed_message(self, body: bytes, timestamp: str) -> bytes:
        head, _, tail = self.message.partition("{body}")  # the body itself is never searched
        if not _:
            raise ValueError(f"the message template {self.message!r} does not contain {{body}}")
        return head.replace("{timestamp}", timestamp).encode() + body + tail.replace("{timestamp}", timestamp).encode()

    def sign(
        self, body: bytes, secret: str | bytes, *, at: float | None = None, timestamp: str | None = None
    ) -> dict[str, str]:
        """The headers for `body` signed with `secret` at unix time `at` (now by default);
        `timestamp` puts that text as it is in the message and the header instead."""
        if timestamp is None:
            now = time.time() if at is None else at
            timestamp = str(int(now * 1000) if self.timestamp_unit == "ms" else int(now))
        digest = hmac_digest(
            secret, self.signed_message(body, timestamp), algorithm=self.algorithm, encoding=self.encoding
        )
        headers = {**self.extra_headers, self.signature_header: self.prefix + digest}
        if self.timestamp_header is not None:
            headers[self.timestamp_header] = timestamp
        return headers

    def signer(self, secret: str | bytes, *, at: float | None = None) -> Signer:
        """This scheme bound to a secret (and a fixed time, when given)."""
        return lambda body: self.sign(body, secret, at=at)


@dataclass(frozen=True)
class SignedRequest:
    """A body and the headers a signer gave it."""

    body: bytes
    headers: dict[str, str]

    def tampered(self) -> SignedRequest:
        """The same headers on a body changed after signing (one byte flipped in the middle)."""
        if not self.body:
            return replace(self, body=b" ")
        middle = len(self.body) // 2
        flipped = bytes([self.body[middle] ^ 0x01])
        return replace(self, body=self.body[:middle] + flipped + self.body[middle + 1 :])

    def unsigned(self, *signature_headers: str) -> SignedRequest:
        """Without the given headers (every header but Content-Type when none are named)."""
        drop = {h.lower() for h in signature_headers}
        if drop:
            kept = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        else:
            kept = {k: v for k, v in self.headers.items() if k.lower() == "content-type"}
        return replace(self, headers=kept)

    def resigned(self, signer: Signer) -> SignedRequest:
        """The same body signed by another signer (a wrong secret, a stale timestamp)."""
        return replace(self, headers=dict(signer(self.body)))


def signed(doc: Any, signer: Signer) -> SignedRequest:
    """`doc` (bytes as they are, anything else as compact JSON) signed by `signer`."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
    return SignedRequest(body, dict(signer(body)))


def check_verify(verify: Callable[[Mapping[str, str], bytes], object], request: SignedRequest) -> Exception | None:
    """None when `verify(headers, body)` accepts the request, else the exception it raised."""
    try:
        verify(request.headers, request.body)
    except Exception as exc:  # noqa: BLE001 - the refusal is the result
        return exc
    return None
