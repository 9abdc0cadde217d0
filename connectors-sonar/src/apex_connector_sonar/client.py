"""Calls to the SONAR API: ``POST /Credential/authenticate`` and ticker data, every request
through the account's rate budget, which every worker process shares (`apex_platform.ratelimit`).

A 429 pauses that budget, for every process, for at least `APEX_SONAR_RATE_LIMIT_BACKOFF_SECONDS`
(SONAR blocks an account for about ten minutes) or longer when `Retry-After` says so: no
request reaches SONAR before the pause ends."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx

from apex_connector_sonar.settings import SonarSettings
from apex_connector_sonar.tickers import Ticker
from apex_platform.errors import VendorError
from apex_platform.ratelimit import RateBudgets
from apex_platform.vendor_http import (
    DEFAULT_RETRY_AFTER_CAP,
    TransientFailure,
    parse_retry_after,
    retry_transient,
    status_error,
)

AUTH_PATH = "/Credential/authenticate"
_USER_AGENT = "apex-connector-sonar/0.1"


class _Unauthorized(Exception):
    pass


class SonarClient:
    """One per connector: the cached bearer token and the account's shared rate budget.

    The budget schedules at most `REQUESTS_PER_MINUTE - SLACK` requests in any `window`
    seconds (60: SONAR's minute): `BURST` at once, then `(REQUESTS_PER_MINUTE - BURST -
    SLACK) / window` a second. SLACK is a tenth of the budget (at least one request): a
    request is admitted here and counted by SONAR when it arrives, and a loaded host's
    delay between the two must not push an admitted request into a full minute (a 429
    pauses every worker for ten minutes). At 100/min that is 10 requests, ~6 s of delay."""

    def __init__(
        self,
        settings: SonarSettings,
        budgets: RateBudgets,
        budget: str,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        window: float = 60.0,
    ) -> None:
        self.settings = settings
        self.budgets = budgets
        self.budget = budget
        slack = max(1, settings.requests_per_minute // 10)
        self.burst = max(1, min(settings.burst, settings.requests_per_minute - slack))
        self.rate = max(settings.requests_per_minute - self.burst - slack, 1) / window
        self._clock = clock
        self._transport = transport
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        # one authentication at a time per event loop: concurrent pollers wait for it
        self._renewing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _status_error(self, resp: httpx.Response, where: str) -> VendorError:
        s = self.settings
        with self._lock:
            token = self._token[0] if self._token is not None else ""
        password = s.password.get_secret_value() if s.password is not None else ""
        return status_error(
            resp, where=where, rate_limit_backoff=s.rate_limit_backoff_seconds, secrets=(password, token)
        )

    async def take(self) -> None:
        """A slot of the account's budget (raises `RateBudgetExceeded` while SONAR's block lasts)."""
        await self.budgets.acquire(self.budget, self.rate, self.burst)

    async def rate_limited(self, resp: httpx.Response, where: str) -> VendorError:
        """SONAR answered 429: pause every process's budget for the block, then say so."""
        told = parse_retry_after(resp.headers.get("retry-after"), default=None, cap=DEFAULT_RETRY_AFTER_CAP)
        wait = max(told or 0.0, self.settings.rate_limit_backoff_seconds)
        await self.budgets.block(
            self.budget, seconds=wait, reason=f"SONAR answered 429 (Retry-After {told if told is not None else 'none'})"
        )
        return VendorError(
            f"{where} answered 429 Too Many Requests; every worker pauses SONAR calls for {wait:g}s "
            "(APEX_SONAR_RATE_LIMIT_BACKOFF_SECONDS, or Retry-After when longer)",
            retryable=True,
            retry_after=wait,
        )

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _cached(self) -> str | None:
        with self._lock:
            cached = self._token
        return cached[0] if cached is not None and self._clock() < cached[1] else None

    async def token(self, http: httpx.AsyncClient, where: str) -> str:
        cached = self._cached()
        if cached:
            return cached
        loop = asyncio.get_running_loop()
        with self._lock:
            renewing = self._renewing.setdefault(loop, asyncio.Lock())
        async with renewing:
            return self._cached() or await self._authenticate(http, where)

    async def _authenticate(self, http: httpx.AsyncClient, where: str) -> str:
        s = self.settings
        if not s.username or s.password is None:
            raise VendorError(
                f"{where}: APEX_SONAR_USERNAME and APEX_SONAR_PASSWORD must be set to call SONAR", retryable=False
            )
        await self.take()
        auth_where = f"sonar: POST {AUTH_PATH} at {s.base_url}"
        try:
            resp = await http.post(
                s.base_url + AUTH_PATH, json={"username": s.username, "password": s.password.get_secret_value()}
            )
        except httpx.HTTPError as exc:
            error = VendorError(f"{auth_where} failed: {type(exc).__name__}", retryable=True)
            raise TransientFailure(error) from None
        if resp.status_code in (400, 401, 403):
            raise VendorError(
                f"{auth_where} refused the credentials (HTTP {resp.status_code}); check APEX_SONAR_USERNAME "
                "and APEX_SONAR_PASSWORD",
                retryable=False,
            )
        if resp.status_code == 429:
            raise await self.rate_limited(resp, auth_where)
        if resp.status_code != 200:
            error = self._status_error(resp, auth_where)
            raise TransientFailure(error) if resp.status_code >= 500 else error
        try:
            doc: Any = resp.json()
        except ValueError:
            doc = resp.text.strip().strip('"')
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else doc
        if not isinstance(token, str) or not token:
            raise VendorError(f"{auth_where} answered without a token", retryable=True)
        with self._lock:
            self._token = (token, self._clock() + s.token_ttl_seconds)
        return token

    async def data(self, ticker: Ticker, start: date, end: date) -> list[dict[str, Any]]:
        """The data points of `ticker` from `start` to `end` (inclusive)."""
        s = self.settings
        dates = start.isoformat() if start == end else f"{start.isoformat()}/{end.isoformat()}"
        path = f"/data/{ticker.index}/{ticker.granularity}/{dates}"
        where = f"sonar {ticker.symbol}: GET {path} at {s.base_url}"
        async with httpx.AsyncClient(
            timeout=s.timeout_seconds, transport=self._transport, headers={"User-Agent": _USER_AGENT}
        ) as http:

            async def once() -> list[dict[str, Any]]:
                token = await self.token(http, where)
                await self.take()
                try:
                    resp = await http.get(s.base_url + path, headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    raise TransientFailure(
                        VendorError(f"{where} failed: {type(exc).__name__}", retryable=True)
                    ) from None
                if resp.status_code == 401:
                    raise _Unauthorized
                if resp.status_code in (204, 404):
                    return []  # no data published for these dates
                if resp.status_code == 429:
                    raise await self.rate_limited(resp, where)
                if resp.status_code != 200:
                    error = self._status_error(resp, where)
                    raise TransientFailure(error) if resp.status_code >= 500 else error
                try:
                    doc = resp.json()
                except ValueError:
                    raise VendorError(f"{where} answered 200 with a body that is not JSON", retryable=True) from None
                if isinstance(doc, dict):
                    doc = doc.get("data", doc.get("Data", []))
                if not isinstance(doc, list):
                    raise VendorError(f"{where} answered 200 without a list of data points", retryable=True)
                return [p for p in doc if isinstance(p, dict)]

            async def with_renewal() -> list[dict[str, Any]]:
                try:
                    return await once()
                except _Unauthorized:
                    self.invalidate()
                try:
                    return await once()
                except _Unauthorized:
                    raise VendorError(
                        f"{where} answered 401 with a fresh token; check the SONAR subscription of APEX_SONAR_USERNAME",
                        retryable=False,
                    ) from None

            return await retry_transient(with_renewal, attempts=s.http_retries + 1)
