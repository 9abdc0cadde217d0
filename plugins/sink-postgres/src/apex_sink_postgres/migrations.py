"""The sink's schema, created and migrated by the sink itself when it opens.

Migrations are numbered and applied in order, each recorded in
`<schema>.schema_migrations`, all inside one transaction that holds a transaction-level
advisory lock for the schema: two workers opening at once serialise, and the second
finds nothing left to do. Never edit a released migration; add the next number.
"""

# SQL here interpolates only the schema name, validated by PostgresSinkSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apex_platform.errors import SettingsError, SinkError

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

#: pgvector learnt HNSW indexes in 0.5.0, for vectors of at most 2,000 dimensions.
HNSW_SINCE = (0, 5, 0)
HNSW_MAX_DIM = 2000


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lock_key(scope: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock`."""
    digest = hashlib.sha256(f"apex_sink_postgres:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Vector:
    """Where the `vector` extension lives in this database, and its version."""

    schema: str
    version: tuple[int, ...]

    @property
    def type(self) -> str:
        return f"{quote_ident(self.schema)}.vector"

    @property
    def cosine_ops(self) -> str:
        return f"{quote_ident(self.schema)}.vector_cosine_ops"


@dataclass(frozen=True)
class Context:
    """What a migration's SQL depends on."""

    schema: str
    embedding_dim: int
    vector: Vector

    @property
    def s(self) -> str:
        return quote_ident(self.schema)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Context], Sequence[str]]
    #: When false, the migration is skipped and not recorded, so a later open retries it.
    applies: Callable[[Context], bool] = lambda ctx: True


def _records(ctx: Context) -> list[str]:
    s = ctx.s
    return [
        f"""
        CREATE TABLE {s}.records (
            source          text        NOT NULL,
            id              text        NOT NULL,
            kind            text        NOT NULL,
            version         bigint      NOT NULL,
            occurred_at     timestamptz NOT NULL,
            title           text        NOT NULL DEFAULT '',
            text            text        NOT NULL DEFAULT '',
            attributes      jsonb       NOT NULL DEFAULT '{{}}',
            entities        jsonb       NOT NULL DEFAULT '[]',
            relations       jsonb       NOT NULL DEFAULT '[]',
            deleted         boolean     NOT NULL DEFAULT false,
            embedding       {ctx.vector.type}({ctx.embedding_dim}),
            content_hash    text        NOT NULL,
            idempotency_key text        NOT NULL,
            record          jsonb,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, id),
            CONSTRAINT records_live_has_record CHECK (deleted OR record IS NOT NULL)
        )""",
        f"COMMENT ON COLUMN {s}.records.record IS 'the full Apex record as JSON; NULL for a tombstone'",
        f"CREATE INDEX records_kind_idx ON {s}.records (kind)",
        f"CREATE INDEX records_occurred_at_idx ON {s}.records (occurred_at)",
        f"CREATE INDEX records_attributes_idx ON {s}.records USING gin (attributes)",
    ]


def _dead_letters(ctx: Context) -> list[str]:
    s = ctx.s
    return [
        f"""
        CREATE TABLE {s}.dead_letters (
            id          bigserial   PRIMARY KEY,
            created_at  timestamptz NOT NULL DEFAULT now(),
            batch_id    text        NOT NULL,
            source      text        NOT NULL,
            record_keys jsonb       NOT NULL DEFAULT '[]',
            payload     jsonb       NOT NULL DEFAULT '{{}}',
            error       text        NOT NULL DEFAULT '',
            status      text        NOT NULL DEFAULT 'open'
                        CONSTRAINT dead_letters_status CHECK (status IN ('open', 'replayed', 'discarded')),
            attempts    integer     NOT NULL DEFAULT 0,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )""",
        f"CREATE INDEX dead_letters_status_idx ON {s}.dead_letters (status, id)",
        f"CREATE INDEX dead_letters_batch_idx ON {s}.dead_letters (batch_id)",
    ]


def _hnsw(ctx: Context) -> list[str]:
    return [
        f"CREATE INDEX records_embedding_hnsw_idx ON {ctx.s}.records USING hnsw (embedding {ctx.vector.cosine_ops})"
    ]


def _hnsw_supported(ctx: Context) -> bool:
    if ctx.vector.version < HNSW_SINCE:
        log.warning(
            "pgvector %s has no HNSW index; records.embedding is not indexed "
            "(upgrade the extension to >= 0.5.0 and reopen the sink)",
            ".".join(map(str, ctx.vector.version)),
        )
        return False
    if ctx.embedding_dim > HNSW_MAX_DIM:
        log.warning("HNSW indexes at most %d dimensions; records.embedding is not indexed", HNSW_MAX_DIM)
        return False
    return True


def _fencing(ctx: Context) -> list[str]:
    """Writer tokens (see `apex_platform.contracts.Sink`): the saga's restore undoes a
    key only where `changed_by` and `touched_by` are still its own; dead letters one per
    batch, resolved when a later attempt succeeds, or rolled back by an operator."""
    s = ctx.s
    return [
        f"ALTER TABLE {s}.records ADD COLUMN changed_by text, ADD COLUMN touched_by text",
        f"ALTER TABLE {s}.dead_letters DROP CONSTRAINT dead_letters_status",
        f"""ALTER TABLE {s}.dead_letters ADD CONSTRAINT dead_letters_status
            CHECK (status IN ('open', 'replayed', 'discarded', 'resolved', 'rolled_back'))""",
        f"CREATE INDEX dead_letters_open_batch_idx ON {s}.dead_letters (batch_id) WHERE status = 'open'",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records table", _records),
    Migration(2, "dead_letters table", _dead_letters),
    Migration(3, "HNSW cosine index on records.embedding", _hnsw, _hnsw_supported),
    Migration(4, "writer tokens on records; dead letters resolved and rolled back", _fencing),
)


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


_FIND_VECTOR = """
    SELECT n.nspname, e.extversion
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'vector'
"""


async def ensure_vector(conn: asyncpg.Connection) -> Vector:
    """Create the `vector` extension if missing; tolerate lacking the privilege when it exists."""
    import asyncpg

    found = await conn.fetchrow(_FIND_VECTOR)
    if found is None:
        try:
            async with conn.transaction():
                # Database-wide, so one lock for every schema: CREATE EXTENSION races otherwise.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("extension:vector"))
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except asyncpg.InsufficientPrivilegeError:
            database = await conn.fetchval("SELECT current_database()")
            raise SinkError(
                f"the pgvector extension is not installed in database {database!r} and this role may "
                "not create it: ask a superuser to run `CREATE EXTENSION vector;` there"
            ) from None
        except asyncpg.UndefinedFileError:
            raise SinkError(
                "the PostgreSQL server has no pgvector extension installed "
                "(https://github.com/pgvector/pgvector#installation)"
            ) from None
        found = await conn.fetchrow(_FIND_VECTOR)
        if found is None:  # pragma: no cover - the CREATE above succeeded
            raise SinkError("the vector extension vanished right after it was created")
    return Vector(schema=found["nspname"], version=_version(found["extversion"]))


async def _applied(conn: asyncpg.Connection, schema: str) -> set[int] | None:
    table = f"{quote_ident(schema)}.schema_migrations"
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    if not exists:
        return None
    return {row["version"] for row in await conn.fetch(f"SELECT version FROM {table}")}


async def migrate(conn: asyncpg.Connection, schema: str, embedding_dim: int) -> list[int]:
    """Bring `schema` up to date; return the migration numbers applied now (empty: nothing to do).

    Also checks that `records.embedding` has `embedding_dim` dimensions.
    """
    vector = await ensure_vector(conn)
    ctx = Context(schema=schema, embedding_dim=embedding_dim, vector=vector)
    wanted = [m for m in MIGRATIONS if m.applies(ctx)]

    applied_now: list[int] = []
    done = await _applied(conn, schema)
    if done is None or any(m.version not in done for m in wanted):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(f"migrate:{schema}"))
            exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            if not exists:  # only then: CREATE SCHEMA needs a privilege a production role may lack
                await conn.execute(f"CREATE SCHEMA {ctx.s}")
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {ctx.s}.schema_migrations (
                    version    integer     PRIMARY KEY,
                    name       text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )"""
            )
            done = await _applied(conn, schema) or set()
            for migration in wanted:
                if migration.version in done:
                    continue
                if migration.version == 1:
                    await _check_fresh(conn, schema)
                for statement in migration.statements(ctx):
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {ctx.s}.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied_now.append(migration.version)
                log.info("postgres sink: %s migration %d applied (%s)", schema, migration.version, migration.name)
    await check_embedding_dim(conn, schema, embedding_dim)
    return applied_now


async def _check_fresh(conn: asyncpg.Connection, schema: str) -> None:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(schema)}.records")
    if exists:
        raise SinkError(
            f"schema {schema!r} already has a records table that this sink did not create "
            "(no schema_migrations entry); choose another APEX_POSTGRES_SCHEMA"
        )


async def check_embedding_dim(conn: asyncpg.Connection, schema: str, embedding_dim: int) -> None:
    """Raise `SettingsError` when `records.embedding` was created with another dimension."""
    stored = await conn.fetchval(
        """SELECT a.atttypmod FROM pg_attribute a
           WHERE a.attrelid = to_regclass($1) AND a.attname = 'embedding' AND NOT a.attisdropped""",
        f"{quote_ident(schema)}.records",
    )
    if stored is not None and stored > 0 and stored != embedding_dim:
        raise SettingsError(
            f"APEX_POSTGRES_EMBEDDING_DIM is {embedding_dim} but {schema}.records.embedding holds "
            f"vector({stored}): set APEX_POSTGRES_EMBEDDING_DIM={stored}, or use another "
            f"APEX_POSTGRES_SCHEMA, or re-embed: ALTER TABLE {schema}.records ALTER COLUMN embedding "
            f"TYPE vector({embedding_dim}) USING NULL (drops every stored embedding)"
        )
