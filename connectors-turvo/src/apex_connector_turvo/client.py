"""Calls to the Turvo public API: OAuth password / refresh grants and entity reads.

Every call carries ``x-api-key``; API calls carry ``Authorization: Bearer <access token>``.
The access token is cached per process and renewed before it expires, or at once when the
API answers 401 (refresh grant when Turvo gave a refresh token, else the password grant).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from apex_connector_turvo.settings import TurvoSettings
from apex_platform.errors import VendorError
from apex_platform.vendor_http import TransientFailure, retry_transient, status_error

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
_USER_AGENT = "apex-connector-turvo/0.1"


class _Unauthorized(Exception):
    """The API refused the access token: renew it and try once more."""


@dataclass
class _Token:
    access: str
    refresh: str | None
    expires_at: float  # connector clock, seconds


class TurvoClient:
    """One per connector (per process): holds the cached token, opens an httpx client per call."""

    def __init__(
        self,
        settings: TurvoSettings,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._transport = transport
        self._token: _Token | None = None
        self._lock = threading.Lock()  # the cache is shared by activities of any event loop
        # one token request at a time per event loop: concurrent fetches wait for it
        self._renewing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    # -- secrets and errors ---------------------------------------------------------------

    def _secrets(self) -> list[str]:
        s = self.settings
        values = [v.get_secret_value() for v in (s.api_key, s.client_secret, s.password) if v is not None]
        if self._token is not None:
            values += [self._token.access] + ([self._token.refresh] if self._token.refresh else [])
        return [v for v in values if v]

    def _missing(self) -> list[str]:
        s = self.settings
        needed = {
            "APEX_TURVO_API_KEY": s.api_key,
            "APEX_TURVO_CLIENT_ID": s.client_id,
            "APEX_TURVO_CLIENT_SECRET": s.client_secret,
            "APEX_TURVO_USERNAME": s.username,
            "APEX_TURVO_PASSWORD": s.password,
        }
        return [name for name, value in needed.items() if not value]

    def _auth_error(self, message: str) -> VendorError:
        # Retryable on purpose: an event waits (Temporal retries) while an operator fixes the
        # credentials, instead of failing and being lost.
        return VendorError(message, retryable=True, retry_after=self.settings.auth_backoff_seconds)

    def _status_error(self, resp: httpx.Response, where: str) -> VendorError:
        return status_error(
            resp,
            where=f"turvo: {where}",
            rate_limit_backoff=self.settings.rate_limit_backoff_seconds,
            secrets=self._secrets(),
        )

    # -- tokens ---------------------------------------------------------------------------

    def _cached(self) -> str | None:
        with self._lock:
            token = self._token
        if token is None:
            return None
        if self._clock() >= token.expires_at - self.settings.token_refresh_margin_seconds:
            return None
        return token.access

    def invalidate(self) -> None:
        """Forget the access token (keep the refresh token): the next call renews it."""
        with self._lock:
            if self._token is not None:
                self._token = _Token("", self._token.refresh, 0.0)

    async def access_token(self, http: httpx.AsyncClient) -> str:
        cached = self._cached()
        if cached:
            return cached
        loop = asyncio.get_running_loop()
        with self._lock:
            renewing = self._renewing.setdefault(loop, asyncio.Lock())
        async with renewing:
            return self._cached() or await self._renew(http)

    async def _renew(self, http: httpx.AsyncClient) -> str:
        missing = self._missing()
        if missing:
            raise self._auth_error(f"turvo: cannot call the API: {', '.join(missing)} not set")
        with self._lock:
            refresh = self._token.refresh if self._token else None
        doc: dict[str, Any] | None = None
        if refresh:
            doc = await self._grant(http, {"grant_type": "refresh_token", "refresh_token": refresh}, soft=True)
        if doc is None:
            s = self.settings
            assert s.password is not None  # checked by _missing
            doc = await self._grant(
                http,
                {
                    "grant_type": "password",
                    "username": s.username,
                    "password": s.password.get_secret_value(),
                    "scope": s.scope,
                    "type": s.user_type,
                },
                soft=False,
            )
        assert doc is not None
        access = doc.get("access_token")
        if not isinstance(access, str) or not access:
            raise VendorError(f"turvo: {TOKEN_PATH} answered without an access_token", retryable=True)
        expires_in = doc.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 3600.0
        new_refresh = doc.get("refresh_token") if isinstance(doc.get("refresh_token"), str) else refresh
        with self._lock:
            self._token = _Token(access, new_refresh or None, self._clock() + lifetime)
        return access

    async def _grant(self, http: httpx.AsyncClient, body: dict[str, Any], *, soft: bool) -> dict[str, Any] | None:
        """POST the token request. `soft`: a refused refresh token returns None (fall back to
        the password grant) instead of raising."""
        s = self.settings
        assert s.api_key is not None
        assert s.client_secret is not None
        grant = body["grant_type"]
        where = f"POST {TOKEN_PATH} ({grant} grant) at {s.base_url}"
        # The client credentials travel in the JSON body with the grant, as Turvo's token
        # request is documented; never in the URL, which proxies and httpx's INFO log keep.
        body = {**body, "client_id": s.client_id, "client_secret": s.client_secret.get_secret_value()}
        try:
            resp = await http.post(
                s.base_url + TOKEN_PATH,
                json=body,
                headers={"x-api-key": s.api_key.get_secret_value()},
            )
        except httpx.HTTPError as exc:
            raise VendorError(f"turvo: {where} failed: {type(exc).__name__}", retryable=True) from None
        if resp.status_code == 200:
            try:
                doc = resp.json()
            except ValueError:
                raise VendorError(f"turvo: {where} answered 200 with a body that is not JSON", retryable=True) from None
            if not isinstance(doc, dict):
                raise VendorError(f"turvo: {where} answered 200 with a non-object body", retryable=True)
            return doc
        if resp.status_code == 404 and not soft:
            # no token endpoint there: the base URL is wrong. Retryable like refused credentials:
            # the deliveries wait for an operator, and nothing is taken for a deleted entity
            raise self._auth_error(f"turvo: {where} answered 404: check APEX_TURVO_BASE_URL (it ends in /v1)")
        if resp.status_code in (400, 401, 403, 404):
            if soft:
                return None
            raise self._auth_error(
                f"turvo: {where} refused the credentials (HTTP {resp.status_code}); check APEX_TURVO_USERNAME, "
                "APEX_TURVO_PASSWORD, APEX_TURVO_CLIENT_ID, APEX_TURVO_CLIENT_SECRET and APEX_TURVO_API_KEY"
            )
        raise self._status_error(resp, where)

    # -- entities -------------------------------------------------------------------------

    async def get(
        self, path: str, *, params: dict[str, str] | None = None, missing: tuple[int, ...] = (404,)
    ) -> dict[str, Any] | None:
        """GET an API path as the decoded JSON object; None when it answers a status in `missing`."""
        s = self.settings
        where = f"GET {path} at {s.base_url}"
        async with httpx.AsyncClient(
            timeout=s.timeout_seconds, transport=self._transport, headers={"User-Agent": _USER_AGENT}
        ) as http:

            async def once() -> dict[str, Any] | None:
                token = await self.access_token(http)
                assert s.api_key is not None
                try:
                    resp = await http.get(
                        s.base_url + path,
                        params=params,
                        headers={"Authorization": f"Bearer {token}", "x-api-key": s.api_key.get_secret_value()},
                    )
                except httpx.HTTPError as exc:
                    raise TransientFailure(
                        VendorError(f"turvo: {where} failed: {type(exc).__name__}", retryable=True)
                    ) from None
                if resp.status_code == 401:
                    raise _Unauthorized
                if resp.status_code in missing:
                    return None
                if resp.status_code == 200:
                    try:
                        doc = resp.json()
                    except ValueError:
                        raise VendorError(
                            f"turvo: {where} answered 200 with a body that is not JSON", retryable=True
                        ) from None
                    if not isinstance(doc, dict):
                        raise VendorError(f"turvo: {where} answered 200 with a non-object body", retryable=True)
                    return doc
                error = self._status_error(resp, where)
                if resp.status_code >= 500:
                    raise TransientFailure(error)
                raise error

            async def with_renewal() -> dict[str, Any] | None:
                try:
                    return await once()
                except _Unauthorized:
                    # The token expired early or was revoked: renew it once and try again.
                    self.invalidate()
                try:
                    return await once()
                except _Unauthorized:
                    raise self._auth_error(
                        f"turvo: {where} answered 401 with a freshly issued token; check APEX_TURVO_API_KEY "
                        "and the API user's permissions"
                    ) from None

            return await retry_transient(with_renewal, attempts=s.http_retries + 1)
