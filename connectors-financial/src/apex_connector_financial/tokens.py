"""OAuth 2 for QuickBooks Online: access tokens cached per company, refresh tokens rotated.

Intuit answers every refresh with a refresh token that may be new, and the one before may
stop working, so the latest one must be kept where every worker host sees it and that
survives restarts. The default is a `SharedTokenStore` in the platform's PostgreSQL
(`PostgresTokenStore`): it keeps the access token too and refreshes under a lock every host
respects, so one refresh per expiry serves all hosts. A `TokenStore` keeps refresh tokens
for one host only: `FileTokenStore`, a JSON file under APEX_HOME (mode 0600, written
atomically, refreshes serialised across the processes of that host with a lock file), or
`MemoryTokenStore`. Tokens never go into cursors, records, logs or error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from apex_connector_financial.intuit_tid import intuit_tid, tid_note
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


@dataclass(frozen=True)
class Grant:
    """An access token and when it expires (epoch seconds); `refresh_token` is the one
    Intuit answered with (None when the grant was read from a shared store)."""

    access_token: str
    expires_at: float
    refresh_token: str | None = None


#: spends one refresh token at Intuit's token endpoint and returns what it answered
Exchange = Callable[[str], Awaitable[Grant]]


@runtime_checkable
class SharedTokenStore(Protocol):
    """A store several worker hosts share. It keeps each company's refresh token *and* its
    current access token, and runs a refresh under a lock every host respects, so one
    refresh serves them all (`PostgresTokenStore`).

    `rotate` takes the lock, then returns the stored access token if it is still good after
    `fresh_until` (epoch seconds) and is not `stale` (the one QuickBooks just refused);
    otherwise it spends the stored refresh token (the configured `initial` one when none is
    stored for `seed`) with `exchange`, keeps what Intuit answered and returns it.
    """

    async def rotate(
        self, realm: str, seed: str, initial: str, *, fresh_until: float, stale: str | None, exchange: Exchange
    ) -> Grant: ...


class _HostLocked:
    """A `TokenStore` (refresh tokens only, a lock of one host) behind `rotate`."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def rotate(
        self, realm: str, seed: str, initial: str, *, fresh_until: float, stale: str | None, exchange: Exchange
    ) -> Grant:
        # The file lock is taken in a thread: another process may hold it while it refreshes.
        guard = self.store.lock()
        await asyncio.to_thread(guard.__enter__)
        try:
            refresh = self.store.load(realm, seed) or initial
            grant = await exchange(refresh)
            if grant.refresh_token and grant.refresh_token != refresh:
                self.store.save(realm, grant.refresh_token, seed)
            return grant
        finally:
            guard.__exit__(None, None, None)


class TokenManager:
    """Access tokens per company: cached, refreshed before they expire and after a 401."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        initial: dict[str, str],
        store: TokenStore | SharedTokenStore,
        margin_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self._client_auth = (client_id, client_secret)
        self._initial = initial
        self.store = store
        self._vault: SharedTokenStore = store if isinstance(store, SharedTokenStore) else _HostLocked(store)
        self.margin = margin_seconds
        self.clock = clock
        self._cache: dict[str, Grant] = {}
        self._stale: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: refresh tokens this process spent at Intuit's token endpoint
        self.refreshes = 0

    def invalidate(self, realm: str, token: str | None = None) -> None:
        """Forget the cached access token (QuickBooks answered 401 with it)."""
        cached = self._cache.get(realm)
        if cached is not None and (token is None or cached.access_token == token):
            del self._cache[realm]
            self._stale[realm] = cached.access_token

    def _fresh(self, grant: Grant | None) -> bool:
        return grant is not None and grant.expires_at - self.margin > self.clock()

    async def access_token(self, realm: str, http: httpx.AsyncClient) -> str:
        cached = self._cache.get(realm)
        if cached is not None and self._fresh(cached):
            return cached.access_token
        lock = self._locks.setdefault(realm, asyncio.Lock())
        async with lock:
            cached = self._cache.get(realm)
            if cached is not None and self._fresh(cached):
                return cached.access_token
            initial = self._initial.get(realm)
            if initial is None:
                raise VendorError(
                    f"financial {realm}: no refresh token is configured for this company; add it to "
                    "APEX_FINANCIAL_REFRESH_TOKENS",
                    retryable=False,
                )

            async def exchange(refresh: str) -> Grant:
                return await self._exchange(realm, refresh, http)

            grant = await self._vault.rotate(
                realm,
                fingerprint(initial),
                initial,
                fresh_until=self.clock() + self.margin,
                stale=self._stale.get(realm) or (cached.access_token if cached is not None else None),
                exchange=exchange,
            )
            self._cache[realm] = grant
            self._stale.pop(realm, None)
            return grant.access_token

    async def _exchange(self, realm: str, refresh: str, http: httpx.AsyncClient) -> Grant:
        """`POST` the refresh grant: Intuit answers a new access token and maybe a new refresh token."""
        where = f"financial {realm}: POST {self.token_url}"
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
        self.refreshes += 1
        new_refresh = doc.get("refresh_token")
        return Grant(
            str(doc["access_token"]),
            self.clock() + float(doc["expires_in"]),
            new_refresh if isinstance(new_refresh, str) and new_refresh else None,
        )


def _token_answer(resp: httpx.Response, where: str) -> dict[str, Any]:
    tid = tid_note(intuit_tid(resp))
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    if resp.status_code == 429 or resp.status_code >= 500:
        raise VendorError(f"{where}: Intuit's token endpoint answered {resp.status_code}{tid}", retryable=True)
    if resp.status_code in (400, 401) and error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        what = (
            "the refresh token is expired or revoked: reconnect the company and set a new one in "
            "APEX_FINANCIAL_REFRESH_TOKENS"
            if error == "invalid_grant"
            else "the client credentials are wrong: check APEX_FINANCIAL_CLIENT_ID and APEX_FINANCIAL_CLIENT_SECRET"
        )
        raise VendorError(f"{where}: {resp.status_code} {error}: {what}{tid}", retryable=False)
    if resp.status_code >= 400:
        shown = error if isinstance(error, str) and error.isidentifier() else ""
        raise VendorError(
            f"{where}: Intuit's token endpoint answered {resp.status_code} {shown}".rstrip() + tid, retryable=False
        )
    if not isinstance(doc, dict):
        raise VendorError(f"{where}: the token answer is not a JSON object{tid}", retryable=True)
    token, expires = doc.get("access_token"), doc.get("expires_in")
    if not isinstance(token, str) or not token:
        raise VendorError(f"{where}: the token answer has no access_token{tid}", retryable=True)
    if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0:
        raise VendorError(f"{where}: the token answer has no valid expires_in{tid}", retryable=True)
    return doc
