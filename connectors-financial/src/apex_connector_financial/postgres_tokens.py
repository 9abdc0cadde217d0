"""`PostgresTokenStore`: QuickBooks tokens in the platform's PostgreSQL, shared by every host.

Intuit rotates the refresh token on a refresh and the one spent may stop working, so two
hosts that each keep their own copy race: the second to refresh spends a revoked token and
the company has to be reconnected. Here a refresh happens inside one transaction holding a
transaction-level advisory lock per company: the first host takes it, refreshes and
commits the new refresh token *and* the new access token; a host that waited then finds a
fresh access token and uses it. One refresh per expiry, whatever the number of hosts.

One row per company in `<schema>.oauth_tokens` (schema `apex_financial` by default, in
the inbox's database unless `APEX_FINANCIAL_TOKEN_STORE_DSN` names another). The tokens are
stored as Intuit issued them: grant the schema to the workers' role only.
"""

# SQL here interpolates only the schema name, validated by FinancialSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import asyncpg

from apex_connector_financial.tokens import Exchange, Grant
from apex_platform.errors import VendorError

APPLICATION_NAME = "apex-financial-tokens"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lock_key(scope: str) -> int:
    """A 64-bit advisory lock key of this store's own namespace."""
    digest = hashlib.sha256(f"apex_financial:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresTokenStore:
    """A `SharedTokenStore` in PostgreSQL. `dsn` is a URL or a function giving one (read on
    first use, so settings errors surface when a token is first needed)."""

    def __init__(
        self,
        dsn: str | Callable[[], str],
        *,
        schema: str = "apex_financial",
        connect_timeout: float = 5.0,
        command_timeout: float = 90.0,
    ) -> None:
        self._dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()

    @property
    def table(self) -> str:
        return f"{_q(self.schema)}.oauth_tokens"

    def _unavailable(self, exc: BaseException) -> VendorError:
        return VendorError(
            f"financial: the token store (PostgreSQL schema {self.schema}; APEX_FINANCIAL_TOKEN_STORE_DSN, else "
            f"APEX_INBOX_DSN / APEX_POSTGRES_DSN) cannot be used: {type(exc).__name__}: {exc}",
            retryable=True,
        )

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened (and the table created) on first use in this event loop."""
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._loop is not loop:
            self._pool, self._loop, self._opening = None, loop, asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                dsn = self._dsn() if callable(self._dsn) else self._dsn
                try:
                    conn = await asyncpg.connect(
                        dsn, timeout=self.connect_timeout, server_settings={"application_name": APPLICATION_NAME}
                    )
                    try:
                        async with conn.transaction():
                            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(f"schema:{self.schema}"))
                            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self.schema)}")
                            await conn.execute(
                                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                                    realm text PRIMARY KEY,
                                    seed text NOT NULL,
                                    refresh_token text NOT NULL,
                                    access_token text,
                                    access_expires_at double precision,
                                    updated_at timestamptz NOT NULL DEFAULT now())"""
                            )
                    finally:
                        await conn.close()
                    self._pool = await asyncpg.create_pool(
                        dsn,
                        min_size=0,
                        max_size=4,
                        timeout=self.connect_timeout,
                        command_timeout=self.command_timeout,
                        server_settings={"application_name": APPLICATION_NAME},
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise self._unavailable(exc) from exc
        assert self._pool is not None
        return self._pool

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None

    async def rotate(
        self, realm: str, seed: str, initial: str, *, fresh_until: float, stale: str | None, exchange: Exchange
    ) -> Grant:
        pool = await self.pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                # held until commit: every other host's refresh of this company waits here
                await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(f"realm:{realm}"))
                row = await conn.fetchrow(
                    f"SELECT seed, refresh_token, access_token, access_expires_at FROM {self.table} WHERE realm = $1",
                    realm,
                )
                stored = row if row is not None and row["seed"] == seed else None
                if (
                    stored is not None
                    and stored["access_token"]
                    and stored["access_token"] != stale
                    and (stored["access_expires_at"] or 0.0) > fresh_until
                ):
                    return Grant(str(stored["access_token"]), float(stored["access_expires_at"]))
                spent = str(stored["refresh_token"]) if stored is not None else initial
                grant = await exchange(spent)
                # written in the same transaction, so the lock is released only once it is kept
                await conn.execute(
                    f"""INSERT INTO {self.table} AS t
                            (realm, seed, refresh_token, access_token, access_expires_at, updated_at)
                        VALUES ($1, $2, $3, $4, $5, now())
                        ON CONFLICT (realm) DO UPDATE SET seed = excluded.seed,
                            refresh_token = excluded.refresh_token, access_token = excluded.access_token,
                            access_expires_at = excluded.access_expires_at, updated_at = now()""",
                    realm,
                    seed,
                    grant.refresh_token or spent,
                    grant.access_token,
                    grant.expires_at,
                )
                return grant
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
