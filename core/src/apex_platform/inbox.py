"""The durable inbox at the edge: one row per (source, event id), written before 202.

Rule 1 of intake: a delivery is acknowledged only once its raw body, the headers its
connector reads and the time it arrived are committed to a store that every API
process shares (PostgreSQL). The inbox is also the dedupe horizon
(`APEX_INBOX_RETENTION`, default 30 days), independent of Temporal's retention.

Workers drain it per source (`DrainWorkflow`): a batch of pending rows, bounded by
count and bytes, is read, parsed, enriched and written through the saga inside one
activity, then marked delivered with the workflow run that wrote it. Nothing but the
source name and counts ever crosses Temporal. `NOTIFY apex_inbox` (sent in the
inserting transaction) wakes the drains at once; they also look every second, so a
lost notification only costs that second.

Deliveries of one group commit share one transaction (`InboxWriter`): concurrent
requests are answered after one `INSERT ... SELECT FROM unnest(...)`.
"""

# SQL here interpolates only the schema name, validated by InboxSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from apex_platform.errors import ApexError, SettingsError
from apex_platform.group_commit import GroupCommit
from apex_platform.partitions import sql_partition
from apex_platform.settings import ENV_FILE, Credential, core_settings, parse_duration

log = logging.getLogger(__name__)

CHANNEL = "apex_inbox"
APPLICATION_NAME = "apex-inbox"

#: headers never kept: credentials of our own API, not anything a connector reads
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "content-length", "connection"})


class InboxSettings(BaseSettings):
    """Where the inbox lives and how it is drained (`APEX_INBOX_*`)."""

    # by name in code (`InboxSettings(schema_name=...)`), by APEX_INBOX_SCHEMA in the environment
    model_config = SettingsConfigDict(
        env_prefix="APEX_INBOX_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    dsn: Credential | None = Field(
        default=None, description="postgresql:// URL; unset: APEX_POSTGRES_DSN, else the embedded stack's server"
    )
    schema_name: str = Field(
        default="apex_inbox",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias="APEX_INBOX_SCHEMA",
        description="Schema of the deliveries and lineage tables",
    )
    retention: timedelta = Field(
        default=timedelta(days=30), description="Dedupe horizon: delivered rows older than this are deleted"
    )
    body_retention: timedelta = Field(
        default=timedelta(days=3),
        description="Bodies of delivered rows are kept this long (for `inbox replay`), then only the key stays",
    )
    batch_max_count: int = Field(default=1000, ge=1, le=20000, description="Deliveries per drained batch")
    batch_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Bytes of bodies per drained batch (at least one delivery)"
    )
    idle_wait_seconds: float = Field(
        default=20.0, gt=0, le=240, description="How long an idle drain activity waits for new rows"
    )
    group_max: int = Field(default=500, ge=1, le=5000, description="Deliveries committed in one transaction")
    group_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Bytes committed in one transaction")
    group_linger_seconds: float = Field(
        default=0.002, ge=0, le=1, description="How long a delivery waits for others to share its commit"
    )
    pool_max: int = Field(default=10, ge=1, description="Connections per process")
    command_timeout: float = Field(
        default=5.0, gt=0, description="Seconds an inbox statement (or waiting for a connection) may take"
    )
    connect_timeout: float = Field(default=3.0, gt=0, description="Seconds to wait for a new connection")
    stuck_after: timedelta = Field(
        default=timedelta(minutes=5), description="A pending delivery older than this, or that failed, is stuck"
    )
    gc_interval_seconds: float = Field(default=3600.0, gt=0, description="How often a worker collects garbage")

    @field_validator("retention", "body_retention", "stuck_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)


def resolve_dsn(settings: InboxSettings) -> str:
    """APEX_INBOX_DSN, else APEX_POSTGRES_DSN (the PostgreSQL sink's), else the embedded stack."""
    if settings.dsn is not None:
        return settings.dsn.get_secret_value()
    from apex_platform.settings import PostgresSettings, load

    pg = load(PostgresSettings)
    if pg.dsn is not None:
        return pg.dsn.get_secret_value()
    from apex_platform.stack import read_stack

    path = core_settings().home / "stack.json"
    try:
        dsn = (read_stack(core_settings().home) or {})["postgres"]["dsn"]
    except (KeyError, TypeError):
        dsn = None
    if not isinstance(dsn, str) or not dsn:
        raise SettingsError(
            "the inbox has no database: set APEX_INBOX_DSN or APEX_POSTGRES_DSN "
            f"(postgresql://user:password@host:5432/apex), or start `apex-platform dev` (no stack at {path})"
        )
    return dsn


class InboxUnavailable(ApexError):
    """The inbox could not be written or read (the API answers 503 + Retry-After)."""


Outcome = Literal["accepted", "duplicate", "pending"]


@dataclass(frozen=True)
class Delivery:
    """One verified delivery, as the edge hands it to the inbox."""

    source: str
    event_id: str
    received_at: datetime
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class StoredDelivery:
    """A row being drained: what the connector needs to parse it again."""

    seq: int
    source: str
    event_id: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def pg_text(text: str) -> str:
    """`text` as PostgreSQL text can hold it: NUL characters and lone surrogates (which a
    vendor's event id, a record id or an error message may carry) become U+FFFD. The
    inbox stores every key and message through this, so one such value never stalls a
    source's deliveries; lookups (`get`, `lineage`, `replay`) map their arguments alike."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def keep_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers kept with a delivery: all but our own API's credentials (NUL, which
    PostgreSQL's jsonb refuses, never comes from a conforming HTTP client: replaced)."""
    return {
        k.lower().replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd")
        for k, v in headers.items()
        if k.lower() not in DROPPED_HEADERS
    }


def lock_key(scope: str) -> int:
    digest = hashlib.sha256(f"apex_inbox:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_statements(schema: str) -> list[str]:
    s = _q(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.deliveries (
            seq bigserial PRIMARY KEY,
            source text NOT NULL,
            event_id text NOT NULL,
            received_at timestamptz NOT NULL,
            headers jsonb NOT NULL,
            body bytea,
            size integer NOT NULL,
            status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            last_attempt_at timestamptz,
            delivered_at timestamptz,
            records integer,
            workflow_id text,
            run_id text,
            UNIQUE (source, event_id))""",
        f"CREATE INDEX IF NOT EXISTS deliveries_pending ON {s}.deliveries (source, seq) WHERE status = 'pending'",
        f"CREATE INDEX IF NOT EXISTS deliveries_delivered ON {s}.deliveries (delivered_at) WHERE status = 'delivered'",
        f"""CREATE TABLE IF NOT EXISTS {s}.lineage (
            source text NOT NULL,
            record_id text NOT NULL,
            version bigint NOT NULL,
            origin text NOT NULL,
            workflow_id text,
            run_id text,
            written_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, record_id, version, origin))""",
        f"CREATE INDEX IF NOT EXISTS lineage_written ON {s}.lineage (written_at)",
        f"CREATE INDEX IF NOT EXISTS lineage_origin ON {s}.lineage (origin)",
    ]


def connection_errors() -> tuple[type[BaseException], ...]:
    # InternalClientError: asyncpg's "cannot switch to state …" when the server went away in
    # the middle of a command (seen releasing a connection while PostgreSQL shut down)
    return (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


@dataclass
class Inbox:
    """The inbox of one process: a pool, the group commit, the listener of notifications."""

    settings: InboxSettings = field(default_factory=InboxSettings)
    _pool: asyncpg.Pool | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _writer: GroupCommit[Delivery, Outcome] | None = None
    _listener: asyncpg.Connection | None = None
    _events: dict[str, asyncio.Event] = field(default_factory=dict)
    #: drain partition counts whose index this process has built (or is building)
    _partition_indexes: set[int] = field(default_factory=set)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def schema(self) -> str:
        return _q(self.settings.schema_name)

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened (and the schema created) on first use. Raises `InboxUnavailable`."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                dsn = resolve_dsn(self.settings)
                try:
                    conn = await asyncpg.connect(
                        dsn,
                        timeout=self.settings.connect_timeout,
                        server_settings={"application_name": APPLICATION_NAME},
                    )
                    try:
                        async with conn.transaction():
                            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(self.settings.schema_name))
                            for statement in schema_statements(self.settings.schema_name):
                                await conn.execute(statement)
                    finally:
                        await conn.close()
                    self._pool = await asyncpg.create_pool(
                        dsn,
                        min_size=1,
                        max_size=self.settings.pool_max,
                        timeout=self.settings.connect_timeout,
                        command_timeout=self.settings.command_timeout,
                        server_settings={"application_name": APPLICATION_NAME},
                    )
                except connection_errors() as exc:
                    raise InboxUnavailable(
                        f"the inbox database cannot be reached: {type(exc).__name__}: {exc}"
                    ) from exc
        assert self._pool is not None
        return self._pool

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        for task in list(self._background):  # an index build in progress: the next start builds it again
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._partition_indexes.clear()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- the edge ------------------------------------------------------------------------

    async def put(self, delivery: Delivery) -> Outcome:
        """Commit the delivery (shared with concurrent ones) and say what became of it:
        `accepted` (new), `pending` (known, not yet delivered: it will be), `duplicate`
        (known and delivered). Raises `InboxUnavailable` when nothing could be committed."""
        if self._writer is None:
            self._writer = GroupCommit(
                self._insert,
                max_items=self.settings.group_max,
                max_bytes=self.settings.group_max_bytes,
                linger_seconds=self.settings.group_linger_seconds,
            )
        if pg_text(delivery.event_id) != delivery.event_id:
            delivery = replace(delivery, event_id=pg_text(delivery.event_id))
        return await self._writer.submit(delivery, len(delivery.body))

    async def _insert(self, group: Sequence[Delivery]) -> list[Outcome]:
        pool = await self.pool()
        first: dict[tuple[str, str], int] = {}
        for i, d in enumerate(group):
            first.setdefault((d.source, d.event_id), i)
        unique = [group[i] for i in first.values()]
        try:
            # one statement, so one round trip and its own transaction: it inserts the new
            # keys, notifies each source with a new row (delivered at commit), and says of each
            # key whether it was new, else its state as of the statement's start (a key that a
            # concurrent commit added after that has none: pending, which it is)
            async with pool.acquire(timeout=self.settings.command_timeout) as conn:
                rows = await conn.fetch(
                    self._insert_sql,
                    [d.source for d in unique],
                    [d.event_id for d in unique],
                    [d.received_at for d in unique],
                    [json.dumps(keep_headers(d.headers)) for d in unique],
                    [d.body for d in unique],
                    CHANNEL,
                )
        except connection_errors() as exc:
            raise InboxUnavailable(f"the inbox could not commit: {type(exc).__name__}: {exc}") from exc
        found = {(r["source"], r["event_id"]): (r["inserted"], r["status"]) for r in rows}
        out: list[Outcome] = []
        for i, d in enumerate(group):
            key = (d.source, d.event_id)
            inserted, status = found[key]
            if first[key] == i and inserted:
                out.append("accepted")
            else:
                out.append("duplicate" if status == "delivered" else "pending")
        return out

    @property
    def _insert_sql(self) -> str:
        s = self.schema
        return f"""WITH new AS (
                INSERT INTO {s}.deliveries (source, event_id, received_at, headers, body, size)
                SELECT t.source, t.event_id, t.received_at, t.headers::jsonb, t.body, octet_length(t.body)
                FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bytea[])
                     AS t(source, event_id, received_at, headers, body)
                ORDER BY t.source, t.event_id
                ON CONFLICT (source, event_id) DO NOTHING
                RETURNING source, event_id),
            woken AS (SELECT pg_notify($6, n.source) FROM (SELECT DISTINCT source FROM new) AS n)
            SELECT k.source, k.event_id, new.event_id IS NOT NULL AS inserted, d.status,
                   (SELECT count(*) FROM woken) AS woken
            FROM unnest($1::text[], $2::text[]) AS k(source, event_id)
            LEFT JOIN new ON new.source = k.source AND new.event_id = k.event_id
            LEFT JOIN {s}.deliveries d ON new.event_id IS NULL AND d.source = k.source AND d.event_id = k.event_id"""

    # -- the drain -----------------------------------------------------------------------

    async def pending(
        self, source: str, max_count: int, max_bytes: int, *, partition: int = 0, partitions: int = 1
    ) -> list[StoredDelivery]:
        """The oldest pending deliveries of `source`: at most `max_count`, at most
        `max_bytes` of bodies (but always the first one). With `partitions` > 1 only the
        rows of drain partition `partition` (`apex_platform.partitions`)."""
        pool = await self.pool()
        s = self.schema
        where = "source = $1 AND status = 'pending'"
        args: list[object] = [source, max_count, max_bytes]
        if partitions > 1:
            self._index_partitions(pool, partitions)
            where += f" AND {sql_partition('event_id', partitions)} = $4"
            args.append(partition)
        # One statement (it was two round trips: the sizes, then the rows): the oldest
        # `max_count` rows, cut where their bodies add up past `max_bytes`; only the rows
        # taken are read whole.
        rows = await pool.fetch(
            f"""WITH head AS (SELECT seq, size FROM {s}.deliveries WHERE {where} ORDER BY seq LIMIT $2),
                     upto AS (SELECT seq, sum(size) OVER w AS total, row_number() OVER w AS n
                              FROM head WINDOW w AS (ORDER BY seq))
                SELECT d.seq, d.source, d.event_id, d.received_at, d.headers::text AS headers, d.body
                FROM upto JOIN {s}.deliveries d ON d.seq = upto.seq
                WHERE upto.n = 1 OR upto.total <= $3::bigint
                ORDER BY d.seq""",
            *args,
        )
        return [
            StoredDelivery(
                seq=r["seq"],
                source=r["source"],
                event_id=r["event_id"],
                received_at=r["received_at"],
                headers=json.loads(r["headers"]),
                body=bytes(r["body"] or b""),
            )
            for r in rows
        ]

    def _index_partitions(self, pool: asyncpg.Pool, partitions: int) -> None:
        """Once per process and partition count: build, in the background and without
        blocking intake (CONCURRENTLY), the index that serves `pending` by partition. Until
        it is valid the pending-rows index serves (scanning the other partitions' rows)."""
        if partitions in self._partition_indexes:
            return
        self._partition_indexes.add(partitions)
        task = asyncio.get_running_loop().create_task(self._build_partition_index(pool, partitions))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _build_partition_index(self, pool: asyncpg.Pool, partitions: int) -> None:
        name = f"deliveries_pending_p{partitions}"
        try:
            async with pool.acquire() as conn:
                invalid = await conn.fetchval(
                    """SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid""",
                    self.settings.schema_name,
                    name,
                )
                if invalid:  # a build that was interrupted: it serves nothing, start again
                    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.schema}.{_q(name)}", timeout=None)
                await conn.execute(
                    f"""CREATE INDEX CONCURRENTLY IF NOT EXISTS {_q(name)} ON {self.schema}.deliveries
                        (source, ({sql_partition("event_id", partitions)}), seq) WHERE status = 'pending'""",
                    timeout=None,
                )
        except Exception as exc:  # noqa: BLE001 - only a faster query is lost; the next process tries again
            log.warning("inbox: the index of %d drain partitions could not be built: %s", partitions, exc)

    async def mark_delivered(
        self,
        seqs: Sequence[int],
        records: Sequence[int],
        *,
        workflow_id: str | None,
        run_id: str | None,
        lineage: Sequence[Lineage] = (),
    ) -> None:
        """The batch landed: mark its rows delivered and note which run wrote which record,
        in one statement (atomic by itself: it was BEGIN, UPDATE, INSERT, COMMIT)."""
        pool = await self.pool()
        s = self.schema
        await pool.execute(
            f"""WITH delivered AS (
                    UPDATE {s}.deliveries d SET status = 'delivered', delivered_at = now(), last_error = NULL,
                        attempts = d.attempts + 1, last_attempt_at = now(), records = t.records,
                        workflow_id = $3, run_id = $4
                    FROM unnest($1::bigint[], $2::int[]) AS t(seq, records) WHERE d.seq = t.seq)
                {_lineage_insert(s, 5, 3)}""",
            list(seqs),
            list(records),
            workflow_id,
            run_id,
            *_lineage_arrays(lineage),
        )

    async def record_lineage(self, lineage: Sequence[Lineage], *, workflow_id: str | None, run_id: str | None) -> None:
        if not lineage:
            return
        pool = await self.pool()
        await pool.execute(_lineage_insert(self.schema, 1, 5), *_lineage_arrays(lineage), workflow_id, run_id)

    async def mark_failed(self, seqs: Sequence[int], error: str) -> None:
        """A drain attempt failed (it will be retried): count it and keep the reason."""
        pool = await self.pool()
        await pool.execute(
            f"""UPDATE {self.schema}.deliveries SET attempts = attempts + 1, last_error = $2, last_attempt_at = now()
                WHERE seq = ANY($1::bigint[])""",
            list(seqs),
            pg_text(error[:2000]),
        )

    def notifications(self, source: str) -> asyncio.Event:
        """Set whenever `NOTIFY apex_inbox` names `source` (clear it before looking)."""
        return self._events.setdefault(source, asyncio.Event())

    async def listen(self) -> None:
        """Make sure this process listens for notifications (reconnects after a loss);
        without them a drain still finds new rows within a second."""
        if self._listener is not None and not self._listener.is_closed():
            return
        conn = await asyncpg.connect(
            resolve_dsn(self.settings), timeout=5, server_settings={"application_name": APPLICATION_NAME}
        )

        def notified(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
            event = self._events.get(str(payload))
            if event is not None:
                event.set()

        await conn.add_listener(CHANNEL, notified)
        self._listener = conn

    # -- operations ----------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        """Per source: backlog, oldest undelivered age, stuck, delivered in the last minute / hour."""
        pool = await self.pool()
        rows = await pool.fetch(
            f"""SELECT source,
                       count(*) FILTER (WHERE status = 'pending') AS backlog,
                       coalesce(sum(size) FILTER (WHERE status = 'pending'), 0) AS backlog_bytes,
                       extract(epoch FROM now() - min(received_at) FILTER (WHERE status = 'pending')) AS oldest_age,
                       count(*) FILTER (WHERE status = 'pending'
                                        AND (attempts > 0 OR received_at < now() - $1::interval)) AS stuck,
                       count(*) FILTER (WHERE status = 'delivered' AND delivered_at > now() - interval '1 minute')
                           AS delivered_last_minute,
                       count(*) FILTER (WHERE status = 'delivered' AND delivered_at > now() - interval '1 hour')
                           AS delivered_last_hour,
                       count(*) FILTER (WHERE status = 'delivered') AS delivered
                FROM {self.schema}.deliveries GROUP BY source ORDER BY source""",
            self.settings.stuck_after,
        )
        return [
            {
                "source": r["source"],
                "backlog": r["backlog"],
                "backlog_bytes": int(r["backlog_bytes"]),
                "oldest_pending_seconds": round(float(r["oldest_age"]), 3) if r["oldest_age"] is not None else None,
                "stuck": r["stuck"],
                "delivered": r["delivered"],
                "rate_per_minute": r["delivered_last_minute"],
                "delivered_last_hour": r["delivered_last_hour"],
            }
            for r in rows
        ]

    async def deliveries(
        self, *, source: str | None = None, stuck: bool = False, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        pool = await self.pool()
        rows = await pool.fetch(
            f"""SELECT seq, source, event_id, received_at, size, status, attempts, last_error, last_attempt_at,
                       delivered_at, records, workflow_id, run_id
                FROM {self.schema}.deliveries
                WHERE ($1::text IS NULL OR source = $1)
                  AND ($2::text IS NULL OR status = $2)
                  AND (NOT $3 OR (status = 'pending' AND (attempts > 0 OR received_at < now() - $4::interval)))
                ORDER BY seq LIMIT $5""",
            source,
            status,
            stuck,
            self.settings.stuck_after,
            limit,
        )
        return [_row_document(r) for r in rows]

    async def get(self, source: str, event_id: str) -> dict[str, Any] | None:
        pool = await self.pool()
        row = await pool.fetchrow(
            f"""SELECT seq, source, event_id, received_at, size, status, attempts, last_error, last_attempt_at,
                       delivered_at, records, workflow_id, run_id
                FROM {self.schema}.deliveries WHERE source = $1 AND event_id = $2""",
            source,
            pg_text(event_id),
        )
        return None if row is None else _row_document(row)

    async def replay(
        self, *, source: str | None = None, event_ids: Sequence[str] = (), stuck: bool = False
    ) -> dict[str, int]:
        """Re-drive deliveries: stuck ones get a fresh start (attempts and error cleared),
        delivered ones whose body is still kept go back to pending (writes are idempotent)."""
        event_ids = [pg_text(e) for e in event_ids]
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""UPDATE {self.schema}.deliveries
                    SET status = 'pending', attempts = 0, last_error = NULL, delivered_at = NULL
                    WHERE ($1::text IS NULL OR source = $1)
                      AND (cardinality($2::text[]) = 0 OR event_id = ANY($2::text[]))
                      AND (NOT $3 OR (status = 'pending' AND (attempts > 0 OR received_at < now() - $4::interval)))
                      AND body IS NOT NULL
                    RETURNING source""",
                source,
                list(event_ids),
                stuck,
                self.settings.stuck_after,
            )
            for src in sorted({r["source"] for r in rows}):
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, src)
            gone = 0
            if event_ids:
                gone = await conn.fetchval(
                    f"""SELECT count(*) FROM {self.schema}.deliveries
                        WHERE ($1::text IS NULL OR source = $1) AND event_id = ANY($2::text[]) AND body IS NULL""",
                    source,
                    list(event_ids),
                )
        return {"replayed": len(rows), "body_expired": int(gone or 0)}

    async def lineage(self, source: str, record_id: str, limit: int = 20) -> list[dict[str, Any]]:
        pool = await self.pool()
        rows = await pool.fetch(
            f"""SELECT version, origin, workflow_id, run_id, written_at FROM {self.schema}.lineage
                WHERE source = $1 AND record_id = $2 ORDER BY version DESC, written_at DESC LIMIT $3""",
            source,
            pg_text(record_id),
            limit,
        )
        return [
            {
                "version": r["version"],
                "origin": r["origin"],
                "workflow_id": r["workflow_id"],
                "run_id": r["run_id"],
                "written_at": r["written_at"].isoformat(),
            }
            for r in rows
        ]

    async def recent_lineage(self, limit: int = 20) -> list[dict[str, Any]]:
        """The record versions written last, newest first (the console's recent records)."""
        pool = await self.pool()
        rows = await pool.fetch(
            f"""SELECT source, record_id, version, origin, workflow_id, written_at FROM {self.schema}.lineage
                ORDER BY written_at DESC LIMIT $1""",
            limit,
        )
        return [
            {
                "source": r["source"],
                "id": r["record_id"],
                "version": r["version"],
                "origin": r["origin"],
                "workflow_id": r["workflow_id"],
                "written_at": r["written_at"].isoformat(),
            }
            for r in rows
        ]

    async def records_from(self, origin: str) -> list[tuple[str, str, int]]:
        """(source, record id, version) of every record a delivery / page / unit produced."""
        pool = await self.pool()
        rows = await pool.fetch(
            f"SELECT source, record_id, version FROM {self.schema}.lineage WHERE origin = $1 ORDER BY record_id",
            pg_text(origin),
        )
        return [(r["source"], r["record_id"], r["version"]) for r in rows]

    async def collect_garbage(self, now: datetime | None = None) -> dict[str, int]:
        """Drop delivered rows past the retention, bodies of delivered rows past the body
        retention, and lineage past the retention. Pending rows are never touched."""
        pool = await self.pool()
        now = now or datetime.now(UTC)
        s = self.schema
        async with pool.acquire() as conn:
            deleted = await conn.fetchval(
                f"""WITH gone AS (DELETE FROM {s}.deliveries WHERE status = 'delivered' AND delivered_at < $1
                                  RETURNING 1) SELECT count(*) FROM gone""",
                now - self.settings.retention,
            )
            emptied = await conn.fetchval(
                f"""WITH done AS (UPDATE {s}.deliveries SET body = NULL
                                  WHERE status = 'delivered' AND delivered_at < $1 AND body IS NOT NULL
                                  RETURNING 1) SELECT count(*) FROM done""",
                now - self.settings.body_retention,
            )
            lineage = await conn.fetchval(
                f"WITH gone AS (DELETE FROM {s}.lineage WHERE written_at < $1 RETURNING 1) SELECT count(*) FROM gone",
                now - self.settings.retention,
            )
        return {"deliveries_deleted": int(deleted), "bodies_dropped": int(emptied), "lineage_deleted": int(lineage)}


@dataclass(frozen=True)
class Lineage:
    """Which delivery, page or file unit produced a record version."""

    source: str
    record_id: str
    version: int
    origin: str


def _lineage_arrays(lineage: Sequence[Lineage]) -> tuple[list[str], list[str], list[int], list[str]]:
    """Lineage rows as the columns `_lineage_insert` reads, each key once (as stored:
    after `pg_text`), since one statement may not update a row twice."""
    unique = list(dict.fromkeys((x.source, pg_text(x.record_id), x.version, pg_text(x.origin)) for x in lineage))
    return [u[0] for u in unique], [u[1] for u in unique], [u[2] for u in unique], [u[3] for u in unique]


def _lineage_insert(schema: str, first: int, run: int) -> str:
    """The upsert of lineage rows: columns from parameters `first`..`first + 3`
    (`_lineage_arrays`), the workflow id and run id from `run` and `run + 1`."""
    a, b, c, d = (f"${first + i}" for i in range(4))
    return f"""INSERT INTO {schema}.lineage (source, record_id, version, origin, workflow_id, run_id)
        SELECT t.source, t.record_id, t.version, t.origin, ${run}, ${run + 1}
        FROM unnest({a}::text[], {b}::text[], {c}::bigint[], {d}::text[]) AS t(source, record_id, version, origin)
        ON CONFLICT (source, record_id, version, origin)
        DO UPDATE SET workflow_id = EXCLUDED.workflow_id, run_id = EXCLUDED.run_id, written_at = now()"""


def _row_document(r: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "seq": r["seq"],
        "source": r["source"],
        "event_id": r["event_id"],
        "received_at": iso(r["received_at"]),
        "size": r["size"],
        "status": r["status"],
        "attempts": r["attempts"],
        "last_error": r["last_error"],
        "last_attempt_at": iso(r["last_attempt_at"]),
        "delivered_at": iso(r["delivered_at"]),
        "records": r["records"],
        "workflow_id": r["workflow_id"],
        "run_id": r["run_id"],
    }


@contextlib.asynccontextmanager
async def opened(settings: InboxSettings | None = None) -> AsyncIterator[Inbox]:
    inbox = Inbox(settings or InboxSettings())
    try:
        yield inbox
    finally:
        await inbox.close()
