"""The connection pool the sink and the dead-letter store share.

Opening migrates the schema first on a single connection (the pool's connections
register the pgvector codec, which needs the extension to exist), then starts the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from apex_platform.errors import SettingsError, SinkError
from apex_platform.settings import load
from apex_sink_postgres.migrations import Vector, ensure_vector, migrate
from apex_sink_postgres.settings import PostgresSinkSettings, redact, resolve_dsn, stack_file

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

APPLICATION_NAME = "apex-sink-postgres"

#: What a broken or unreachable server raises through asyncpg.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)


def connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (*CONNECTION_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError)


class Database:
    """Settings, DSN and pool of one PostgreSQL schema. `open` is idempotent."""

    def __init__(self, settings: PostgresSinkSettings | None = None) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._dsn: str | None = None
        self._vector: Vector | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> PostgresSinkSettings:
        """The settings given, or read from the environment on first use (never at construction)."""
        if self._settings is None:
            self._settings = load(PostgresSinkSettings)
        return self._settings

    @property
    def schema(self) -> str:
        return self.settings.schema

    @property
    def vector(self) -> Vector:
        """Where the pgvector extension lives (known once open)."""
        if self._vector is None:
            raise SinkError(f"postgres sink ({self.settings.schema}) is not open: call open() first")
        return self._vector

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def where(self) -> str:
        """Which server and schema, for messages (no password)."""
        dsn = redact(self._dsn) if self._dsn else "<no DSN>"
        where = f"{dsn} schema {self.settings.schema}"
        if self._dsn is not None and self.settings.dsn is None:
            where += f" (DSN from {stack_file()}: is `apex-platform dev` running?)"
        return where

    def dsn(self) -> str:
        if self._dsn is None:
            self._dsn = resolve_dsn(self.settings)
        return self._dsn

    async def connect(self, seconds: float | None = None) -> asyncpg.Connection:
        """One connection outside the pool (migrations, health checks before open)."""
        import asyncpg

        return await asyncpg.connect(
            self.dsn(),
            timeout=seconds or self.settings.connect_timeout,
            command_timeout=self.settings.command_timeout,
            server_settings={"application_name": APPLICATION_NAME},
        )

    async def open(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            import asyncpg

            settings = self.settings
            dsn = self.dsn()
            try:
                conn = await self.connect()
                try:
                    applied = await migrate(conn, settings.schema, settings.embedding_dim)
                    self._vector = await ensure_vector(conn)
                finally:
                    await conn.close()
                vector_schema = self._vector.schema

                async def init(connection: asyncpg.Connection) -> None:
                    from pgvector.asyncpg import register_vector

                    await register_vector(connection, schema=vector_schema)

                self._pool = await asyncpg.create_pool(
                    dsn,
                    min_size=settings.pool_min,
                    max_size=settings.pool_max,
                    timeout=settings.connect_timeout,
                    command_timeout=settings.command_timeout,
                    server_settings={"application_name": APPLICATION_NAME},
                    init=init,
                )
            except (SettingsError, SinkError):
                raise
            except connection_errors() as exc:
                raise SinkError(f"postgres sink cannot open {self.where()}: {type(exc).__name__}: {exc}") from exc
            if applied:
                log.info("postgres sink: %s migrated to %s", self.where(), applied)

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise SinkError(f"postgres sink ({self.settings.schema}) is not open: call open() first")
        return self._pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy]:
        """A pooled connection for several statements (a transaction)."""
        async with self.pool().acquire(timeout=self.settings.connect_timeout) as conn:
            yield conn

    async def ping(self) -> None:
        """`SELECT 1` within the health timeout; raise `SinkError` saying what failed.

        A pooled connection the server dropped (restart, idle kill) is replaced and the
        check tried once more: the question is whether the server answers now.
        """
        import asyncpg

        timeout = self.settings.health_timeout
        try:
            async with asyncio.timeout(timeout):
                if self._pool is None:
                    conn = await self.connect(seconds=timeout)
                    try:
                        await conn.fetchval("SELECT 1")
                    finally:
                        await conn.close(timeout=timeout)
                    return
                for attempt in (1, 2, 3):
                    try:
                        async with self._pool.acquire() as pooled:
                            await pooled.fetchval("SELECT 1")
                        return
                    except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError):
                        if attempt == 3:
                            raise
        except SettingsError as exc:
            raise SinkError(f"postgres sink is not configured: {exc}") from exc
        except connection_errors() as exc:
            reason = f"no answer within {timeout:.1f}s" if isinstance(exc, TimeoutError) else str(exc)
            raise SinkError(f"postgres sink: {self.where()} is unhealthy ({type(exc).__name__}: {reason})") from exc
