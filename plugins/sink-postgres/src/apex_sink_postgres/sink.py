"""`PostgresSink`: records (with their embeddings) in PostgreSQL, one row per key.

A batch is one statement: `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`
whose `WHERE` is the winner rule of `rows.py` — an older version never overwrites a
newer one, re-applying a batch changes nothing, a tombstone cannot be resurrected by
an older (or equal) version. The same statement reads (`FOR UPDATE`) what it replaces
and stamps the writer tokens of the fenced contract (`changed_by`, `touched_by`), so a
compensation (`restore(..., writer=)`) is one conditional statement per kind of undo.
"""

# SQL here interpolates only the schema name, validated by PostgresSinkSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_settings import BaseSettings

from apex_platform.contracts import Previous
from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres.database import Database, connection_errors
from apex_sink_postgres.dead_letters import DeadLetterStore
from apex_sink_postgres.encoding import is_clean
from apex_sink_postgres.migrations import quote_ident
from apex_sink_postgres.rows import Row, from_json, storable_winners, to_row
from apex_sink_postgres.settings import PostgresSinkSettings

if TYPE_CHECKING:
    from apex_platform.contracts import DeadLetter

_COLUMNS = (
    "source",
    "id",
    "kind",
    "version",
    "occurred_at",
    "title",
    "text",
    "attributes",
    "entities",
    "relations",
    "deleted",
    "embedding",
    "content_hash",
    "idempotency_key",
    "record",
)
_ARRAY_TYPES = (
    "text",
    "text",
    "text",
    "bigint",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "boolean",
    "text",
    "text",
    "text",
    "text",
)


_WINS = """(r.version < EXCLUDED.version
           OR (r.version = EXCLUDED.version AND NOT r.deleted
               AND (EXCLUDED.deleted
                    OR r.content_hash IS DISTINCT FROM EXCLUDED.content_hash
                    OR r.record IS DISTINCT FROM EXCLUDED.record)))"""
_WRITER = f"${len(_COLUMNS) + 1}::text"


def _casts(vector_type: str) -> dict[str, str]:
    return {
        "attributes": "::jsonb",
        "entities": "::jsonb",
        "relations": "::jsonb",
        "record": "::jsonb",
        "embedding": f"::{vector_type}",
    }


def _unnest() -> str:
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_ARRAY_TYPES, start=1))
    return f"unnest({arrays}) AS t({', '.join(_COLUMNS)})"


def _upsert_sql(schema: str, vector_type: str) -> str:
    """The fenced upsert: returns, for every key whose content it changed, the row it replaced."""
    s = quote_ident(schema)
    casts = _casts(vector_type)
    columns = ", ".join(_COLUMNS)
    select = ", ".join(f"t.{c}{casts.get(c, '')}" for c in _COLUMNS)
    # A loser (an identical or older record) keeps every column but its stamp: the write
    # still counts as a writer of the key (see apex_platform.contracts.Sink).
    updates = ", ".join(f"{c} = CASE WHEN {_WINS} THEN EXCLUDED.{c} ELSE r.{c} END" for c in _COLUMNS[2:])
    return f"""
        WITH t AS (SELECT * FROM {_unnest()}),
        old AS (
            SELECT r.source, r.id, r.kind, r.version, r.deleted, r.occurred_at, r.content_hash,
                   r.record AS record
            FROM {s}.records r JOIN t USING (source, id)
            FOR UPDATE OF r
        ),
        up AS (
            INSERT INTO {s}.records AS r ({columns}, changed_by, touched_by)
            SELECT {select}, {_WRITER}, {_WRITER}
            -- `old` is read (and its rows locked) before the first insert: read after, the
            -- rows this statement changes would be invisible to it
            FROM t CROSS JOIN (SELECT count(*) FROM old) AS locked
            ON CONFLICT (source, id) DO UPDATE SET {updates},
                changed_by = CASE WHEN {_WINS} THEN EXCLUDED.changed_by ELSE r.changed_by END,
                touched_by = CASE WHEN {_WINS} THEN EXCLUDED.touched_by
                                  ELSE coalesce(EXCLUDED.touched_by, r.touched_by) END,
                updated_at = now()
            WHERE {_WINS} OR r.touched_by IS DISTINCT FROM coalesce({_WRITER}, r.touched_by)
            RETURNING r.source, r.id, r.version, r.deleted, r.content_hash, r.record
        )
        SELECT up.source, up.id, old.source IS NOT NULL AS existed, old.kind, old.version, old.deleted,
               old.occurred_at, old.record::text AS record
        FROM up LEFT JOIN old USING (source, id)
        WHERE old.source IS NULL
           OR old.version <> up.version OR old.deleted <> up.deleted
           OR old.content_hash IS DISTINCT FROM up.content_hash OR old.record IS DISTINCT FROM up.record"""


def _replace_sql(schema: str, vector_type: str) -> str:
    """Put rows back as given, ignoring versions; without tokens."""
    s = quote_ident(schema)
    casts = _casts(vector_type)
    columns = ", ".join(_COLUMNS)
    select = ", ".join(f"t.{c}{casts.get(c, '')}" for c in _COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:])
    return f"""
        INSERT INTO {s}.records AS r ({columns})
        SELECT {select} FROM {_unnest()}
        ON CONFLICT (source, id) DO UPDATE SET {updates}, changed_by = NULL, touched_by = NULL, updated_at = now()"""


def _undo_sql(schema: str, vector_type: str) -> str:
    """Put rows back only where the store still holds the writer's change."""
    s = quote_ident(schema)
    casts = _casts(vector_type)
    sets = ", ".join(f"{c} = t.{c}{casts.get(c, '')}" for c in _COLUMNS[2:])
    return f"""
        UPDATE {s}.records AS r SET {sets}, changed_by = NULL, touched_by = NULL, updated_at = now()
        FROM {_unnest()}
        WHERE r.source = t.source AND r.id = t.id AND r.changed_by = {_WRITER} AND r.touched_by = {_WRITER}"""


def _arrays(rows: Sequence[Row]) -> list[list[Any]]:
    return [[getattr(row, c) for row in rows] for c in _COLUMNS]


def _key_arrays(keys: Sequence[RecordKey]) -> tuple[list[str], list[str]]:
    return [k.source for k in keys], [k.id for k in keys]


def _holdable(key: RecordKey) -> bool:
    """Whether PostgreSQL text can hold the key (no NUL, valid UTF-8): a key that it cannot
    is never stored (`rows.to_row` refuses its records)."""
    return is_clean(key.source) and is_clean(key.id)


def _previous(row: Any) -> Record:
    """The record a `records` row held (a tombstone as the minimal deleted record)."""
    if row["deleted"]:
        return Record(
            source=row["source"],
            kind=row["kind"],
            id=row["id"],
            version=row["version"],
            occurred_at=row["occurred_at"],
            deleted=True,
        )
    return from_json(row["record"])


class PostgresSink:
    """The PostgreSQL (+pgvector) sink. Implements `apex_platform.contracts.Sink` and the
    saga's optional `DeadLetterQueue` capability.

    Construction does no I/O and reads no settings; `open()` resolves the DSN, creates
    or migrates the schema and starts the connection pool.
    """

    name = "postgres"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = PostgresSinkSettings

    def __init__(self, settings: PostgresSinkSettings | None = None) -> None:
        self._db = Database(settings)
        self._sql: dict[str, str] = {}
        self._dead_letters = DeadLetterStore(database=self._db)

    @property
    def settings(self) -> PostgresSinkSettings:
        return self._db.settings

    @property
    def embedding_dim(self) -> int:
        """`EmbeddingStore`: the size of records.embedding (APEX_POSTGRES_EMBEDDING_DIM)."""
        return self.settings.embedding_dim

    @property
    def database(self) -> Database:
        return self._db

    @property
    def dead_letters(self) -> DeadLetterStore:
        """The dead-letter table of this sink's schema, on the same pool."""
        return self._dead_letters

    def __repr__(self) -> str:
        return f"PostgresSink(schema={self._db.settings.schema!r}, open={self._db.is_open})"

    async def __aenter__(self) -> PostgresSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, create or migrate the schema, start the pool. Idempotent."""
        await self._db.open()
        vector = self._db.vector
        schema = self._db.schema
        self._sql = {
            "upsert": _upsert_sql(schema, vector.type),
            "replace": _replace_sql(schema, vector.type),
            "undo": _undo_sql(schema, vector.type),
        }

    async def close(self) -> None:
        await self._db.close()

    async def health(self) -> None:
        """`SELECT 1` within `health_timeout`; `SinkError` if the server does not answer."""
        await self._db.ping()

    def _table(self) -> str:
        return f"{quote_ident(self._db.schema)}.records"

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        """Upsert a batch in one statement; see the module docstring for what wins. Returns
        what it replaced for every key whose content changed (the fenced contract of
        `apex_platform.contracts.Sink`).

        Records with NUL characters or lone surrogates are stored exactly, in the encoding
        of `encoding.py`. Records PostgreSQL can never hold (NUL in the record's identity,
        non-finite numbers, versions beyond bigint…) are refused one by one: the others
        are written, then `RecordsRefused` names each refused key with the reason (the
        saga quarantines them). A data error the checks did not foresee is narrowed down
        by halving the batch."""
        if not records:
            return {}
        rows, refused = storable_winners(records, self.settings.embedding_dim)
        changed: Previous = {}
        refused.update(await self._upsert(rows, writer, changed))
        if refused:
            raise RecordsRefused(self.name, refused, previous=changed)
        return changed

    async def _upsert(self, rows: Sequence[Row], writer: str | None, changed: Previous) -> dict[RecordKey, str]:
        import asyncpg

        if not rows:
            return {}
        try:
            found = await self._db.pool().fetch(self._sql["upsert"], *_arrays(rows), writer)
        except asyncpg.DataError as exc:  # class 22: the data, not the server
            if len(rows) == 1:
                return {rows[0].key: f"PostgreSQL refused the record: {type(exc).__name__}: {exc}"}
            half = len(rows) // 2
            return {
                **await self._upsert(rows[:half], writer, changed),
                **await self._upsert(rows[half:], writer, changed),
            }
        except connection_errors() as exc:
            raise self._error("write", rows, exc) from exc
        for row in found:
            changed[RecordKey(row["source"], row["id"])] = _previous(row) if row["existed"] else None
        return {}

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        """What is stored under `keys`: live records as written, tombstones as minimal
        records with `deleted=True` (so a compensation can put a tombstone back);
        unknown keys are absent."""
        # a key PostgreSQL text cannot hold (a NUL character) is never stored: absent
        wanted = [key for key in dict.fromkeys(RecordKey(*k) for k in keys) if _holdable(key)]
        if not wanted:
            return {}
        sources, ids = _key_arrays(wanted)
        try:
            rows = await self._db.pool().fetch(
                f"""SELECT r.record::text AS record, r.deleted, r.source, r.id, r.kind, r.version, r.occurred_at
                    FROM {self._table()} r
                    JOIN unnest($1::text[], $2::text[]) AS k(source, id) USING (source, id)""",
                sources,
                ids,
            )
        except connection_errors() as exc:
            raise SinkError(f"postgres sink: read of {len(keys)} keys from {self._db.where()} failed: {exc}") from exc
        found: dict[RecordKey, Record] = {}
        for row in rows:
            record = _previous(row)
            found[record.key] = record
        return found

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        """Put back `previous` in one transaction (a key mapped to None is deleted
        completely, tombstone included). With `writer`, only the keys whose row still holds
        that writer's change (`changed_by` and `touched_by`); without, exactly, ignoring
        versions."""
        if not previous:
            return
        put: list[Row] = []
        gone: list[RecordKey] = []
        for key, record in previous.items():
            key = RecordKey(*key)
            if record is None:
                if _holdable(key):  # else never stored: nothing to delete
                    gone.append(key)
                continue
            if record.key != key:
                raise SinkError(f"postgres sink: restore of {key} was given record {record.key}")
            put.append(to_row(record, self.settings.embedding_dim))
        put.sort(key=lambda row: row.key)
        gone.sort()
        fence = "" if writer is None else " AND r.changed_by = $3 AND r.touched_by = $3"
        try:
            async with self._db.acquire() as conn, conn.transaction():
                if gone:
                    await conn.execute(
                        f"""DELETE FROM {self._table()} r USING unnest($1::text[], $2::text[]) AS k(source, id)
                            WHERE r.source = k.source AND r.id = k.id{fence}""",
                        *_key_arrays(gone),
                        *([] if writer is None else [writer]),
                    )
                if put and writer is None:
                    await conn.execute(self._sql["replace"], *_arrays(put))
                elif put:
                    await conn.execute(self._sql["undo"], *_arrays(put), writer)
        except connection_errors() as exc:
            raise self._error("restore", put, exc, extra=len(gone)) from exc

    async def get_version(self, source: str, id: str) -> tuple[int, bool] | None:
        """`(version, deleted)` stored for the key, tombstones included; None if no row."""
        if not _holdable(RecordKey(source, id)):
            return None
        row = await self._db.pool().fetchrow(
            f"SELECT version, deleted FROM {self._table()} WHERE source = $1 AND id = $2", source, id
        )
        return None if row is None else (row["version"], row["deleted"])

    async def count(self, *, source: str | None = None, include_deleted: bool = False) -> int:
        """How many records are stored (live only unless `include_deleted`)."""
        value = await self._db.pool().fetchval(
            f"""SELECT count(*) FROM {self._table()}
                WHERE ($1::text IS NULL OR source = $1) AND ($2 OR NOT deleted)""",
            source,
            include_deleted,
        )
        return int(value)

    def _error(self, op: str, rows: Sequence[Row], exc: BaseException, extra: int = 0) -> SinkError:
        keys = ", ".join(str(row.key) for row in rows[:5])
        more = len(rows) + extra - min(len(rows), 5)
        if more > 0:
            keys += f" and {more} more"
        return SinkError(
            f"postgres sink: {op} of {keys or 'no records'} into {self._db.where()} failed: {type(exc).__name__}: {exc}"
        )

    # The saga's DeadLetterQueue capability (apex_platform.contracts), backed by DeadLetterStore.

    async def add_dead_letter(self, letter: DeadLetter) -> int:
        stored = await self._dead_letters.add_letter(letter)
        return stored.id

    async def resolve_dead_letters(self, batch_id: str) -> int:
        return await self._dead_letters.resolve(batch_id)

    async def list_dead_letters(self, status: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return [d.to_letter() for d in await self._dead_letters.list(status=status, limit=limit)]

    async def get_dead_letter(self, letter_id: int) -> DeadLetter | None:
        stored = await self._dead_letters.get(letter_id)
        return None if stored is None else stored.to_letter()

    async def mark_dead_letter(self, letter_id: int, status: str) -> None:
        await self._dead_letters.mark(letter_id, status)
