"""Rate budgets every process of a deployment shares, and the pauses vendors impose.

A vendor's limit belongs to an account, not to a process: three HubSpot pollers share one
search budget, two SONAR workers one 100-requests-a-minute budget. A budget here is a
GCRA (generic cell rate algorithm) kept in one row of the platform's PostgreSQL (the
inbox's database unless `APEX_RATELIMIT_DSN`): its theoretical arrival time `tat` and a
`blocked_until` that a caller sets when the vendor says "not before" (a Retry-After, a
DAILY limit, a block of several minutes). Every acquire is one `UPDATE … RETURNING`
that computes, from the row as it is,

    base = greatest(tat, now, blocked_until)
    go   = greatest(base - τ, now, blocked_until)          τ = (burst - 1) / rate

and, when `go` is at most `max_wait` seconds away, reserves the slot (`tat = base + 1/rate`)
in the same statement. Row locks serialise concurrent acquirers, so `burst` requests may
go at once and then one every `1/rate` seconds, across every process: in any interval of
`W` seconds at most `burst + ⌊W·rate⌋` requests are scheduled. The caller sleeps until
`go`. A slot further away than `max_wait` (a long block, a long queue) reserves nothing and
raises `RateBudgetExceeded`, a retryable `VendorError` whose `retry_after` says when to
come back: Temporal waits that long, and no request reaches the vendor before then.

With no database configured (`APEX_RATELIMIT_BACKEND=memory`, or `auto` without a DSN),
budgets fall back to the same algorithm in process memory, and a warning says that each
process then has its own budget.
"""

# SQL here interpolates only the schema name, validated by RateLimitSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings

from apex_platform.errors import SettingsError, VendorError
from apex_platform.settings import Credential, apex_config, load

log = logging.getLogger(__name__)

APPLICATION_NAME = "apex-ratelimit"
_MAX_REASON = 500

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimitSettings(BaseSettings):
    """Where shared rate budgets live (`APEX_RATELIMIT_*`)."""

    model_config = apex_config("APEX_RATELIMIT_")

    backend: Literal["auto", "postgres", "memory"] = Field(
        default="auto",
        description="auto: PostgreSQL when a database is configured, else per-process memory (with a warning)",
    )
    dsn: Credential | None = Field(
        default=None, description="postgresql:// URL; unset: the inbox's database (APEX_INBOX_DSN, APEX_POSTGRES_DSN)"
    )
    schema_name: str = Field(default="apex_ratelimit", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    max_wait_seconds: float = Field(
        default=30.0, ge=0, le=600, description="Longest an acquire sleeps for its slot; beyond, RateBudgetExceeded"
    )
    command_timeout: float = Field(default=5.0, gt=0, description="Seconds one budget statement may take")
    connect_timeout: float = Field(default=3.0, gt=0, description="Seconds to wait for a new connection")


class RateBudgetExceeded(VendorError):
    """The next slot of a budget is further away than the caller may wait (a block set by a
    vendor's answer, or a long queue): retryable, `retry_after` seconds from now."""

    def __init__(self, message: str, *, retry_after: float, blocked_until: float | None, reason: str | None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)
        self.blocked_until = blocked_until
        self.reason = reason


class RateBudgetUnavailable(VendorError):
    """The budget's database cannot be reached: retryable (nothing was sent to the vendor)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, retry_after=5.0)


@dataclass(frozen=True)
class Grant:
    """The outcome of one reservation, in seconds since the epoch of the budget's clock."""

    name: str
    granted: bool
    go: float  # when the request may be sent
    now: float  # the clock the statement read
    blocked_until: float | None = None
    reason: str | None = None

    @property
    def wait(self) -> float:
        return max(0.0, self.go - self.now)


@dataclass(frozen=True)
class BudgetState:
    name: str
    tat: float
    blocked_until: float | None
    reason: str | None


class RateBudgets(Protocol):
    """What a connector needs of a shared budget (PostgreSQL or per-process memory)."""

    shared: bool  # True when every process sees the same budgets

    async def reserve(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> Grant: ...

    async def acquire(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> float: ...

    async def block(
        self, name: str, *, seconds: float | None = None, until: float | None = None, reason: str
    ) -> float: ...

    async def state(self, name: str) -> BudgetState | None: ...

    async def close(self) -> None: ...


def budget_key(*parts: str) -> str:
    """A budget name for an account without naming its credential: `prefix:<sha256 …>`
    (a token or a user name identifies the account, and must never be stored)."""
    head, *rest = parts
    if not rest:
        return head
    digest = hashlib.sha256("\x00".join(rest).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{head}:{digest}"


def _check(name: str, rate: float, burst: int) -> tuple[float, float]:
    if not name or len(name) > 200:
        raise ValueError("a budget name is 1 to 200 characters")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"budget {name}: rate must be a positive number of requests per second, not {rate!r}")
    if burst < 1:
        raise ValueError(f"budget {name}: burst must be at least 1, not {burst!r}")
    interval = 1.0 / rate
    return interval, (burst - 1) * interval


def _exceeded(grant: Grant) -> RateBudgetExceeded:
    blocked = grant.blocked_until is not None and grant.blocked_until > grant.now
    if blocked:
        why = f"paused until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(grant.go))}"
        if grant.reason:
            why += f" ({grant.reason})"
    else:
        why = "its queue is full"
    return RateBudgetExceeded(
        f"rate budget {grant.name}: {why}; next slot in {grant.wait:.1f}s",
        retry_after=max(grant.wait, 0.1),
        blocked_until=grant.blocked_until if blocked else None,
        reason=grant.reason if blocked else None,
    )


class _Acquire:
    """`acquire` on top of `reserve`: sleep until the slot, or raise when it is too far."""

    _sleep: Sleep

    async def reserve(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> Grant:
        raise NotImplementedError

    async def acquire(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> float:
        """Wait (at most `max_wait`) for a slot of `name`; returns the seconds waited."""
        grant = await self.reserve(name, rate, burst, max_wait=max_wait)
        if not grant.granted:
            raise _exceeded(grant)
        if grant.wait > 0:
            await self._sleep(grant.wait)
        return grant.wait


class MemoryBudgets(_Acquire):
    """The same budgets in this process only: the fallback without a database."""

    shared = False

    def __init__(self, *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep, max_wait: float = 30.0) -> None:
        self._clock = clock
        self._sleep = sleep
        self.max_wait = max_wait
        self._rows: dict[str, list[float | str | None]] = {}  # name -> [tat, blocked_until, reason]
        self._lock = threading.Lock()

    async def reserve(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> Grant:
        interval, tau = _check(name, rate, burst)
        limit = self.max_wait if max_wait is None else max_wait
        with self._lock:
            now = self._clock()
            row = self._rows.setdefault(name, [0.0, 0.0, None])
            tat, blocked = float(row[0] or 0.0), float(row[1] or 0.0)
            base = max(tat, now, blocked)
            go = max(base - tau, now, blocked)
            granted = go - now <= limit
            if granted:
                row[0] = base + interval
            reason = row[2] if isinstance(row[2], str) else None
            return Grant(name, granted, go, now, blocked or None, reason)

    async def block(self, name: str, *, seconds: float | None = None, until: float | None = None, reason: str) -> float:
        with self._lock:
            end = _block_end(self._clock(), seconds, until)
            row = self._rows.setdefault(name, [0.0, 0.0, None])
            if end >= float(row[1] or 0.0):
                row[1], row[2] = end, reason[:_MAX_REASON]
            return float(row[1] or 0.0)

    async def state(self, name: str) -> BudgetState | None:
        with self._lock:
            row = self._rows.get(name)
            if row is None:
                return None
            blocked = float(row[1] or 0.0)
            return BudgetState(name, float(row[0] or 0.0), blocked or None, row[2] if isinstance(row[2], str) else None)

    async def close(self) -> None:
        return None


def _block_end(now: float, seconds: float | None, until: float | None) -> float:
    if (seconds is None) == (until is None):
        raise ValueError("give either seconds or until")
    end = now + seconds if seconds is not None else until
    assert end is not None
    if not math.isfinite(end):
        raise ValueError("a block ends at a finite time")
    return end


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connection_errors() -> tuple[type[BaseException], ...]:
    return (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class PostgresBudgets(_Acquire):
    """Budgets in PostgreSQL, shared by every process that uses the same database.

    `clock=None` uses the database's clock (one clock for every host); a clock passed in
    (seconds since the epoch) is sent with each statement instead, which tests use to
    count grants per simulated second."""

    shared = True

    def __init__(
        self,
        dsn: str,
        settings: RateLimitSettings | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings or RateLimitSettings()
        self.max_wait = self.settings.max_wait_seconds
        self._dsn = dsn
        self._clock = clock
        self._sleep = sleep
        self._schema_ready = False
        self._known: set[str] = set()
        # asyncpg pools belong to one event loop; a process may run several (tests do)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncpg.Pool] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    @property
    def table(self) -> str:
        return f"{_q(self.settings.schema_name)}.budgets"

    def _now(self) -> float | None:
        return self._clock() if self._clock is not None else None

    async def _pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            pool = self._pools.get(loop)
            if pool is None:
                try:
                    if not self._schema_ready:
                        await self._create_schema()
                    pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=4,
                        timeout=self.settings.connect_timeout,
                        command_timeout=self.settings.command_timeout,
                        server_settings={"application_name": APPLICATION_NAME},
                    )
                except _connection_errors() as exc:
                    raise RateBudgetUnavailable(
                        f"the rate budget database cannot be reached: {type(exc).__name__}: {exc}"
                    ) from exc
                self._pools[loop] = pool
        return pool

    async def _create_schema(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, timeout=self.settings.connect_timeout, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            lock = int.from_bytes(hashlib.sha256(f"apex_ratelimit:{self.settings.schema_name}".encode()).digest()[:8])
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", lock - (1 << 63))
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(self.settings.schema_name)}")
                await conn.execute(
                    f"""CREATE TABLE IF NOT EXISTS {self.table} (
                        name text PRIMARY KEY,
                        tat double precision NOT NULL DEFAULT 0,
                        go double precision NOT NULL DEFAULT 0,
                        granted boolean NOT NULL DEFAULT false,
                        blocked_until double precision NOT NULL DEFAULT 0,
                        block_reason text,
                        updated_at timestamptz NOT NULL DEFAULT now())"""
                )
        finally:
            await conn.close()
        self._schema_ready = True

    async def _ensure_row(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, name: str) -> None:
        if name not in self._known:
            await conn.execute(f"INSERT INTO {self.table} (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name)
            self._known.add(name)

    async def reserve(self, name: str, rate: float, burst: int = 1, *, max_wait: float | None = None) -> Grant:
        interval, tau = _check(name, rate, burst)
        limit = self.max_wait if max_wait is None else max_wait
        pool = await self._pool()
        # one statement: the SET expressions all read the row as it was, and a concurrent
        # acquirer waits for the row lock, then computes from the row this one left
        sql = f"""
            UPDATE {self.table} AS b SET
                go = greatest(greatest(b.tat, c.now, b.blocked_until) - $3, c.now, b.blocked_until),
                granted = greatest(greatest(b.tat, c.now, b.blocked_until) - $3, c.now, b.blocked_until) - c.now <= $5,
                tat = CASE
                    WHEN greatest(greatest(b.tat, c.now, b.blocked_until) - $3, c.now, b.blocked_until) - c.now <= $5
                    THEN greatest(b.tat, c.now, b.blocked_until) + $4
                    ELSE b.tat END,
                updated_at = now()
            FROM (SELECT coalesce($2::float8, extract(epoch FROM clock_timestamp())::float8) AS now) AS c
            WHERE b.name = $1
            RETURNING b.granted, b.go, c.now, b.blocked_until, b.block_reason"""
        try:
            async with pool.acquire(timeout=self.settings.command_timeout) as conn:
                row = await conn.fetchrow(sql, name, self._now(), tau, interval, limit)
                if row is None:  # first use of the name (or its row was deleted)
                    self._known.discard(name)
                    await self._ensure_row(conn, name)
                    row = await conn.fetchrow(sql, name, self._now(), tau, interval, limit)
        except _connection_errors() as exc:
            raise RateBudgetUnavailable(
                f"rate budget {name}: the database cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        assert row is not None
        blocked = float(row["blocked_until"])
        return Grant(
            name, bool(row["granted"]), float(row["go"]), float(row["now"]), blocked or None, row["block_reason"]
        )

    async def block(self, name: str, *, seconds: float | None = None, until: float | None = None, reason: str) -> float:
        """Pause `name` until `until` (seconds since the epoch) or for `seconds` from the
        budget's clock, for every process; a later block wins, an earlier one changes nothing.
        Returns when the block ends."""
        if (seconds is None) == (until is None):
            raise ValueError("give either seconds or until")
        for value in (seconds, until):
            if value is not None and not math.isfinite(value):
                raise ValueError("a block ends at a finite time")
        pool = await self._pool()
        sql = f"""
            UPDATE {self.table} AS b SET
                block_reason = CASE WHEN e.until >= b.blocked_until THEN $4 ELSE b.block_reason END,
                blocked_until = greatest(b.blocked_until, e.until),
                updated_at = now()
            FROM (SELECT coalesce($3::float8,
                                  coalesce($2::float8, extract(epoch FROM clock_timestamp())::float8) + $5::float8)
                         AS until) AS e
            WHERE b.name = $1
            RETURNING b.blocked_until"""
        args = (name, self._now(), until, reason[:_MAX_REASON], seconds if seconds is not None else 0.0)
        try:
            async with pool.acquire(timeout=self.settings.command_timeout) as conn:
                await self._ensure_row(conn, name)
                end = await conn.fetchval(sql, *args)
                if end is None:
                    self._known.discard(name)
                    await self._ensure_row(conn, name)
                    end = await conn.fetchval(sql, *args)
        except _connection_errors() as exc:
            raise RateBudgetUnavailable(
                f"rate budget {name}: the database cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        return float(end)

    async def state(self, name: str) -> BudgetState | None:
        pool = await self._pool()
        try:
            row = await pool.fetchrow(
                f"SELECT tat, blocked_until, block_reason FROM {self.table} WHERE name = $1",
                name,
                timeout=self.settings.command_timeout,
            )
        except _connection_errors() as exc:
            raise RateBudgetUnavailable(f"rate budget {name}: the database cannot be reached: {exc}") from exc
        if row is None:
            return None
        blocked = float(row["blocked_until"])
        return BudgetState(name, float(row["tat"]), blocked or None, row["block_reason"])

    async def close(self) -> None:
        """Close the pool of the running loop (others close with their loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()


def open_budgets(settings: RateLimitSettings | None = None) -> RateBudgets:
    """The budgets `settings` name: PostgreSQL (APEX_RATELIMIT_DSN, else the inbox's
    database) or, without one, per-process memory with a warning."""
    settings = settings or load(RateLimitSettings)
    if settings.backend == "memory":
        return MemoryBudgets(max_wait=settings.max_wait_seconds)
    dsn = settings.dsn.get_secret_value() if settings.dsn is not None else None
    if dsn is None:
        from apex_platform.inbox import InboxSettings, resolve_dsn

        try:
            dsn = resolve_dsn(load(InboxSettings))
        except SettingsError as exc:
            if settings.backend == "postgres":
                raise SettingsError(f"APEX_RATELIMIT_BACKEND=postgres, but there is no database: {exc}") from None
            log.warning(
                "no database for shared rate budgets (%s): every process keeps its own budget, so several "
                "workers add up against a vendor's limit; set APEX_RATELIMIT_DSN or APEX_INBOX_DSN",
                exc,
            )
            return MemoryBudgets(max_wait=settings.max_wait_seconds)
    return PostgresBudgets(dsn, settings)


_shared: RateBudgets | None = None
_shared_lock = threading.Lock()


def shared_budgets() -> RateBudgets:
    """The process-wide budgets (opened on first use from `APEX_RATELIMIT_*`)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = open_budgets()
        return _shared
