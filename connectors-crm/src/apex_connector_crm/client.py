"""HTTP calls to HubSpot, and HubSpot's errors as `VendorError`s.

Connection failures and 5xx answers get two quick retries inside the call; what is left,
and every 429, becomes a retryable `VendorError` for Temporal (a 429 carries HubSpot's
wait). 401/403/400/404 are non-retryable: trying again cannot fix a token or a query.
Messages name the source, the object type and the endpoint, never the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from tenacity import wait_random_exponential

from apex_platform.errors import VendorError
from apex_platform.vendor_http import TransientFailure, parse_retry_after, retry_transient

_USER_AGENT = "apex-connector-crm/0.1"
_MAX_MESSAGE = 300
_MAX_WAIT = 3600.0
_QUICK_RETRY_WAIT = wait_random_exponential(multiplier=0.2, max=2.0)


def retry_after_seconds(headers: Mapping[str, str], body: Any, default: float, now: datetime | None = None) -> float:
    """How long HubSpot wants us to wait after a 429.

    `Retry-After` when present (seconds or an HTTP date); otherwise the rolling window
    of `X-HubSpot-RateLimit-Interval-Milliseconds` when the remaining count is spent;
    otherwise a second for the per-second policy, else `default`.
    """
    wait = parse_retry_after(headers.get("retry-after"), default=None, cap=_MAX_WAIT, now=now)
    if wait is not None:
        return wait
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
    if interval and interval.strip().isdigit():
        return min(int(interval.strip()) / 1000.0, _MAX_WAIT)
    if isinstance(body, dict) and str(body.get("policyName", "")).upper() == "SECONDLY":
        return 1.0
    return default


def _describe(body: Any, text: str) -> str:
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("category", "message") if isinstance(body.get(k), str | int)]
        if isinstance(body.get("correlationId"), str):
            parts.append(f"correlationId {body['correlationId']}")
        if parts:
            return ": ".join(parts)[:_MAX_MESSAGE]
    return text.strip().replace("\n", " ")[:_MAX_MESSAGE] or "no body"


def error_for(status: int, headers: Mapping[str, str], text: str, *, where: str, default_wait: float) -> VendorError:
    """The `VendorError` for a HubSpot answer that is not a success."""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    detail = _describe(body, text)
    if status == 429:
        wait = retry_after_seconds(headers, body, default_wait)
        return VendorError(
            f"{where}: HubSpot rate limit (429, {detail}); retry in {wait:g}s", retryable=True, retry_after=wait
        )
    if status == 401:
        return VendorError(
            f"{where}: HubSpot rejected the access token (401, {detail}). Check APEX_CRM_ACCESS_TOKEN: "
            "the private app's token, not revoked or rotated",
            retryable=False,
        )
    if status == 403:
        return VendorError(
            f"{where}: HubSpot refused the call (403, {detail}). The private app needs the crm.objects.*.read "
            "scopes of the synced object types",
            retryable=False,
        )
    if status >= 500 or status == 408:
        return VendorError(f"{where}: HubSpot server error {status} ({detail})", retryable=True)
    return VendorError(f"{where}: HubSpot answered {status} ({detail})", retryable=False)


class HubSpotClient:
    """The few HubSpot endpoints the connector calls, over one `httpx.AsyncClient`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        *,
        source: str,
        account: str,
        rate_limit_backoff: float = 10.0,
        attempts: int = 3,
    ) -> None:
        self.http = http
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self.source = source
        self.account = account
        self.rate_limit_backoff = rate_limit_backoff
        self.attempts = attempts

    def where(self, method: str, path: str) -> str:
        return f"{self.source} {self.account}: {method} {path}"

    async def call(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """One call as a decoded JSON object, with quick retries of transient failures."""
        where = self.where(method, path)
        return await retry_transient(
            lambda: self._once(method, path, where, body, params), attempts=self.attempts, wait=_QUICK_RETRY_WAIT
        )

    async def _once(
        self, method: str, path: str, where: str, body: Any, params: Mapping[str, str] | None
    ) -> dict[str, Any]:
        try:
            resp = await self.http.request(method, path, json=body, params=params, headers=self._headers)
            text = resp.text
        except httpx.TimeoutException as exc:
            raise TransientFailure(
                VendorError(f"{where}: HubSpot did not answer in time ({type(exc).__name__})", retryable=True)
            ) from exc
        except httpx.TransportError as exc:
            raise TransientFailure(
                VendorError(f"{where}: cannot reach HubSpot ({type(exc).__name__}: {exc})", retryable=True)
            ) from exc
        if resp.status_code >= 400:
            error = error_for(resp.status_code, resp.headers, text, where=where, default_wait=self.rate_limit_backoff)
            if resp.status_code >= 500:
                raise TransientFailure(error)
            raise error
        try:
            doc = json.loads(text)
        except ValueError as exc:
            # Retried by Temporal: a cut connection or a proxy page is not ours to drop.
            raise VendorError(
                f"{where}: HubSpot's answer is not valid JSON ({exc}; {len(text)} characters, truncated or not JSON)",
                retryable=True,
            ) from exc
        if not isinstance(doc, dict):
            raise VendorError(
                f"{where}: HubSpot's answer is a JSON {type(doc).__name__}, not an object", retryable=True
            )
        return doc
