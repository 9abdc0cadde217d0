"""HTTP calls to HubSpot, and HubSpot's errors as `VendorError`s.

Every call first takes a slot of the account's rate budgets (`apex_platform.ratelimit`,
shared by every worker process): the account's general budget, and for the search
endpoints the search budget that HubSpot limits to 5 requests a second per account, shared
by the contacts, companies and deals pollers. A 429 pauses the account's general budget for
every poller and process: for HubSpot's wait (`Retry-After`, the rolling window), and for a
DAILY policy until the daily limit resets, at midnight in the account's time zone.

Connection failures and 5xx answers get two quick retries inside the call; what is left,
and every 429, becomes a retryable `VendorError` for Temporal (a 429 carries HubSpot's
wait). 401/403/400/404 are non-retryable: trying again cannot fix a token or a query.
Messages name the source, the object type and the endpoint, never the token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from tenacity import wait_random_exponential

from apex_platform.errors import VendorError
from apex_platform.ratelimit import MemoryBudgets, RateBudgets
from apex_platform.vendor_http import TransientFailure, parse_retry_after, retry_transient

log = logging.getLogger(__name__)

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


def policy_of(body: Any) -> str:
    """The `policyName` of a 429 body (DAILY, SECONDLY, TEN_SECONDLY_ROLLING …), upper-cased."""
    return str(body.get("policyName") or "").upper() if isinstance(body, dict) else ""


def next_daily_reset(now: float, zone: ZoneInfo) -> float:
    """The next midnight in `zone` after `now` (seconds since the epoch): when HubSpot's daily
    limit resets ("at midnight based on the time zone setting of the HubSpot account")."""
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return midnight.timestamp()


def time_zone(name: Any) -> ZoneInfo | None:
    """The IANA zone HubSpot names (`US/Eastern`, `America/New_York`), or None."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass
class Limits:
    """The account's rate budgets and what a 429 pauses, shared by every poller of a process
    (and, through the budgets' database, by every process)."""

    budgets: RateBudgets = field(default_factory=MemoryBudgets)
    general: str = "crm:hubspot"  # every call: the account's 10-second limit, the daily pause
    search: str = "crm:hubspot:search"  # the search endpoints: 5 a second per account
    rate: float = 8.0
    burst: int = 10
    search_rate: float = 4.0
    search_burst: int = 1
    #: the account's zone (APEX_CRM_ACCOUNT_TIME_ZONE); None: asked of HubSpot when needed
    zone: ZoneInfo | None = None
    #: the pause after a DAILY 429 while the account's zone is unknown
    daily_retry_seconds: float = 3600.0
    clock: Callable[[], float] = time.time

    async def before(self, path: str) -> None:
        await self.budgets.acquire(self.general, self.rate, self.burst)
        if path.endswith("/search"):
            await self.budgets.acquire(self.search, self.search_rate, self.search_burst)


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
        limits: Limits | None = None,
        account_zone: Callable[[], Awaitable[ZoneInfo | None]] | None = None,
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
        self.limits = limits or Limits()
        self._account_zone = account_zone

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

    async def account_time_zone(self) -> ZoneInfo | None:
        """The account's time zone from `GET /account-info/v3/details` (`timeZone`), or None
        when HubSpot does not say (the call fails, or names no zone Python knows)."""
        path = "/account-info/v3/details"
        try:
            resp = await self.http.get(path, headers=self._headers)
            doc = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("%s: the account's time zone could not be read: %s", self.where("GET", path), exc)
            return None
        zone = time_zone(doc.get("timeZone")) if isinstance(doc, dict) else None
        if zone is None:
            log.warning(
                "%s: HubSpot answered %s without a time zone Python knows; set APEX_CRM_ACCOUNT_TIME_ZONE",
                self.where("GET", path),
                resp.status_code,
            )
        return zone

    async def _rate_limited(self, error: VendorError, headers: Mapping[str, str], text: str, where: str) -> VendorError:
        """Pause the account's budget for every poller and process, as long as HubSpot says."""
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = None
        limits = self.limits
        if policy_of(body) != "DAILY":
            wait = error.retry_after or self.rate_limit_backoff
            await limits.budgets.block(limits.general, seconds=wait, reason=f"HubSpot 429 ({policy_of(body) or '?'})")
            return error
        zone = limits.zone
        if zone is None and self._account_zone is not None:
            zone = await self._account_zone()
        now = limits.clock()
        if zone is not None:
            until = next_daily_reset(now, zone)
            when = datetime.fromtimestamp(until, zone).isoformat()
            why = (
                f"HubSpot's daily limit is spent; it resets at midnight in the account's time zone ({zone.key}): {when}"
            )
        else:
            until = now + limits.daily_retry_seconds
            when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
            why = (
                "HubSpot's daily limit is spent and the account's time zone is unknown "
                f"(set APEX_CRM_ACCOUNT_TIME_ZONE): trying again at {when} (APEX_CRM_DAILY_RETRY_SECONDS)"
            )
        await limits.budgets.block(limits.general, until=until, reason=why)
        return VendorError(
            f"{where}: {why}; every poller of the account waits until then", retryable=True, retry_after=until - now
        )

    async def _once(
        self, method: str, path: str, where: str, body: Any, params: Mapping[str, str] | None
    ) -> dict[str, Any]:
        await self.limits.before(path)
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
            if resp.status_code == 429:
                raise await self._rate_limited(error, resp.headers, text, where)
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
