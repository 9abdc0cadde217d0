"""OAuth 2 for QuickBooks Online: access tokens cached per company, refresh tokens rotated.

Intuit answers every refresh with a refresh token that may be new, and the one before may
stop working, so the latest one must be kept somewhere that survives restarts. That is a
`TokenStore`. The default is a JSON file under APEX_HOME (mode 0600, written atomically,
refreshes serialised across processes with a lock file). Production deployments with
several worker hosts should plug in a shared store (a secrets manager) through
`FinancialConnector(token_store=...)`. Refresh tokens never go into cursors, records,
logs or error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from apex_platform.errors import VendorError

try:  # POSIX only; elsewhere a single worker process is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def fingerprint(token: str) -> str:
    """A short hash naming a configured refresh token without revealing it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@runtime_checkable
class TokenStore(Protocol):
    """Where the current refresh token of each company is kept.

    `seed` is the fingerprint of the configured (initial) refresh token: a stored token
    derived from another seed is stale (the operator re-authorised) and is ignored.
    """

    def load(self, realm: str, seed: str) -> str | None: ...

    def save(self, realm: str, token: str, seed: str) -> None: ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while refreshing, so two processes do not spend the same refresh token."""
        ...


class MemoryTokenStore:
    """Keeps refresh tokens in memory (tests; a single short-lived process)."""

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, str]] = {}

    def load(self, realm: str, seed: str) -> str | None:
        entry = self.tokens.get(realm)
        return entry[0] if entry and entry[1] == seed else None

    def save(self, realm: str, token: str, seed: str) -> None:
        self.tokens[realm] = (token, seed)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        yield


class FileTokenStore:
    """`{realm: {refresh_token, seed, updated_at}}` in a JSON file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise VendorError(
                f"financial: the token store {self.path} cannot be read ({exc})", retryable=False
            ) from exc
        return doc if isinstance(doc, dict) else {}

    def load(self, realm: str, seed: str) -> str | None:
        entry = self._read().get(realm)
        if isinstance(entry, dict) and entry.get("seed") == seed and isinstance(entry.get("refresh_token"), str):
            return str(entry["refresh_token"])
        return None

    def save(self, realm: str, token: str, seed: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = self._read()
        doc[realm] = {"refresh_token": token, "seed": seed, "updated_at": datetime.now(UTC).isoformat()}
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@dataclass
class _Access:
    token: str
    expires_at: float


class TokenManager:
    """Access tokens per company: cached, refreshed before they expire and after a 401."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        initial: dict[str, str],
        store: TokenStore,
        margin_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self._client_auth = (client_id, client_secret)
        self._initial = initial
        self.store = store
        self.margin = margin_seconds
        self.clock = clock
        self._cache: dict[str, _Access] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.refreshes = 0

    def invalidate(self, realm: str, token: str | None = None) -> None:
        """Forget the cached access token (QuickBooks answered 401 with it)."""
        cached = self._cache.get(realm)
        if cached is not None and (token is None or cached.token == token):
            del self._cache[realm]

    async def access_token(self, realm: str, http: httpx.AsyncClient) -> str:
        cached = self._cache.get(realm)
        if cached is not None and cached.expires_at - self.margin > self.clock():
            return cached.token
        lock = self._locks.setdefault(realm, asyncio.Lock())
        async with lock:
            cached = self._cache.get(realm)
            if cached is not None and cached.expires_at - self.margin > self.clock():
                return cached.token
            access = await self._refresh(realm, http)
            self._cache[realm] = access
            return access.token

    async def _refresh(self, realm: str, http: httpx.AsyncClient) -> _Access:
        where = f"financial {realm}: POST {self.token_url}"
        initial = self._initial.get(realm)
        if initial is None:
            raise VendorError(
                f"financial {realm}: no refresh token is configured for this company; add it to "
                "APEX_FINANCIAL_REFRESH_TOKENS",
                retryable=False,
            )
        seed = fingerprint(initial)
        # The file lock is taken in a thread: another process may hold it while it refreshes.
        guard = self.store.lock()
        await asyncio.to_thread(guard.__enter__)
        try:
            refresh = self.store.load(realm, seed) or initial
            try:
                resp = await http.post(
                    self.token_url,
                    data={"grant_type": "refresh_token", "refresh_token": refresh},
                    auth=self._client_auth,
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise VendorError(
                    f"{where}: cannot reach Intuit's token endpoint ({type(exc).__name__})", retryable=True
                ) from exc
            doc = _token_answer(resp, where)
            new_refresh = doc.get("refresh_token")
            if isinstance(new_refresh, str) and new_refresh and new_refresh != refresh:
                self.store.save(realm, new_refresh, seed)
            self.refreshes += 1
        finally:
            guard.__exit__(None, None, None)
        return _Access(str(doc["access_token"]), self.clock() + float(doc["expires_in"]))


def _token_answer(resp: httpx.Response, where: str) -> dict[str, Any]:
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    if resp.status_code == 429 or resp.status_code >= 500:
        return _raise(VendorError(f"{where}: Intuit's token endpoint answered {resp.status_code}", retryable=True))
    if resp.status_code in (400, 401) and error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        what = (
            "the refresh token is expired or revoked: reconnect the company and set a new one in "
            "APEX_FINANCIAL_REFRESH_TOKENS"
            if error == "invalid_grant"
            else "the client credentials are wrong: check APEX_FINANCIAL_CLIENT_ID and APEX_FINANCIAL_CLIENT_SECRET"
        )
        return _raise(VendorError(f"{where}: {resp.status_code} {error}: {what}", retryable=False))
    if resp.status_code >= 400:
        return _raise(
            VendorError(
                f"{where}: Intuit's token endpoint answered {resp.status_code} {error or ''}".rstrip(), retryable=False
            )
        )
    if not isinstance(doc, dict):
        return _raise(VendorError(f"{where}: the token answer is not a JSON object", retryable=True))
    token, expires = doc.get("access_token"), doc.get("expires_in")
    if not isinstance(token, str) or not token:
        return _raise(VendorError(f"{where}: the token answer has no access_token", retryable=True))
    if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0:
        return _raise(VendorError(f"{where}: the token answer has no valid expires_in", retryable=True))
    return doc


def _raise(error: VendorError) -> dict[str, Any]:
    raise error
