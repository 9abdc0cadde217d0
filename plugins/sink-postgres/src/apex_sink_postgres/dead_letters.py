"""The dead-letter table: batches whose compensation failed and quarantined records,
kept with what a replay (forward) and a rollback (back) need.

`payload` holds the records as JSON, which sinks succeeded and which failed, the
errors, the writer token of each sink's write and, per sink whose undo failed, the state before the
write. One open letter per batch id: a later failure of the same batch updates it and
counts the attempt. `status` moves from 'open' to 'resolved' (a later attempt of the
batch succeeded), 'replayed', 'rolled_back' or 'discarded' (`apex-platform dlq`).
"""

# SQL here interpolates only the schema name, validated by PostgresSinkSettings and quoted.
# ruff: noqa: S608

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres.database import Database
from apex_sink_postgres.encoding import clean, decode_payload, encode_payload
from apex_sink_postgres.migrations import quote_ident
from apex_sink_postgres.rows import dumps
from apex_sink_postgres.settings import PostgresSinkSettings

if TYPE_CHECKING:
    import asyncpg

    from apex_platform.contracts import DeadLetter

DeadLetterStatus = Literal["open", "replayed", "discarded", "resolved", "rolled_back"]
STATUSES: tuple[str, ...] = get_args(DeadLetterStatus)


def _listable(text: str) -> str:
    """Record keys, sources and errors are for people: a NUL or a lone surrogate there is
    shown as U+FFFD (the payload keeps the records exactly)."""
    return clean(text)


_COLUMNS = "id, created_at, updated_at, batch_id, source, record_keys::text, payload::text, error, status, attempts"


@dataclass(frozen=True)
class StoredDeadLetter:
    """One row of `dead_letters`."""

    id: int
    created_at: datetime
    updated_at: datetime
    batch_id: str
    source: str
    record_keys: list[RecordKey]
    payload: dict[str, Any]
    error: str
    status: DeadLetterStatus
    attempts: int

    @property
    def records(self) -> list[Record]:
        """The records of the batch, from `payload["records"]`."""
        return [Record.model_validate(item) for item in self.payload.get("records", [])]

    @property
    def previous(self) -> dict[str, dict[RecordKey, Record | None]]:
        """Per sink whose undo failed: the state before the write, from `payload["previous"]`."""
        found: dict[str, dict[RecordKey, Record | None]] = {}
        for sink, items in dict(self.payload.get("previous") or {}).items():
            found[sink] = {
                RecordKey(source, id_): None if record is None else Record.model_validate(record)
                for source, id_, record in items
            }
        return found

    def to_letter(self) -> DeadLetter:
        """As the saga's `apex_platform.contracts.DeadLetter`."""
        from apex_platform.contracts import DeadLetter

        return DeadLetter(
            id=self.id,
            batch_id=self.batch_id,
            records=self.records,
            succeeded=list(self.payload.get("succeeded", [])),
            failed=list(self.payload.get("failed", [])),
            error=self.error,
            status=self.status,
            attempts=self.attempts,
            created_at=self.created_at,
            writers=dict(self.payload.get("writers") or {}),
            previous=self.previous,
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredDeadLetter:
        return cls(
            id=row["id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            batch_id=row["batch_id"],
            source=row["source"],
            record_keys=[RecordKey(source, id_) for source, id_ in json.loads(row["record_keys"])],
            payload=decode_payload(json.loads(row["payload"])),
            error=row["error"],
            status=cast(DeadLetterStatus, row["status"]),
            attempts=row["attempts"],
        )


@dataclass
class DeadLetterStore:
    """Reads and writes `<schema>.dead_letters`.

    Give it `settings` to use a pool of its own (call `open`/`close`, or `async with`),
    or the `database` of a `PostgresSink` (`sink.dead_letters`) to share that pool.
    """

    settings: PostgresSinkSettings | None = None
    database: Database | None = None
    _owned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.database is None:
            self.database = Database(self.settings)
            self._owned = True

    @property
    def _db(self) -> Database:
        assert self.database is not None
        return self.database

    def _table(self) -> str:
        return f"{quote_ident(self._db.schema)}.dead_letters"

    async def open(self) -> None:
        """Open the pool (and create or migrate the schema) if not open yet."""
        await self._db.open()

    async def close(self) -> None:
        """Close the pool if this store owns it; a shared pool is the sink's to close."""
        if self._owned:
            await self._db.close()

    async def __aenter__(self) -> DeadLetterStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add(
        self,
        *,
        batch_id: str,
        source: str,
        record_keys: Sequence[RecordKey],
        payload: Mapping[str, Any],
        error: str,
        attempts: int = 0,
    ) -> StoredDeadLetter:
        """Store the open dead letter of `batch_id`, or update it (and count the attempt) if
        one is open already. `payload` must be JSON (records via `Record.json_value()`).
        A payload jsonb cannot hold (NUL characters, lone surrogates) is kept in the
        `json+base64` envelope of `encoding.py`; `error` and `source` are sanitised."""
        try:
            payload_json = dumps(dict(payload))
        except ValueError:
            # jsonb cannot hold NUL (or lone surrogates): keep the payload faithfully, as the
            # base64 of its JSON (`from_row` decodes it); quarantined records are often that
            payload_json = dumps(encode_payload(payload))
        except TypeError as exc:
            raise SinkError(f"dead letter of batch {batch_id}: payload is not JSON ({exc})") from None
        error = _listable(error)
        keys_json = json.dumps([[_listable(k[0]), _listable(k[1])] for k in record_keys], ensure_ascii=False)
        async with self._db.acquire() as conn, conn.transaction():
            # one open letter per batch: two workers failing the same batch take turns here
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{self._table()}:{batch_id}")
            row = await conn.fetchrow(
                f"""UPDATE {self._table()}
                    SET source = $2, record_keys = $3::jsonb, payload = $4::jsonb, error = $5,
                        attempts = attempts + 1, updated_at = now()
                    WHERE id = (SELECT max(id) FROM {self._table()} WHERE batch_id = $1 AND status = 'open')
                    RETURNING {_COLUMNS}""",
                batch_id,
                _listable(source),
                keys_json,
                payload_json,
                error,
            )
            if row is None:
                row = await conn.fetchrow(
                    f"""INSERT INTO {self._table()} (batch_id, source, record_keys, payload, error, attempts)
                        VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)
                        RETURNING {_COLUMNS}""",
                    batch_id,
                    _listable(source),
                    keys_json,
                    payload_json,
                    error,
                    attempts,
                )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return StoredDeadLetter.from_row(row)

    async def add_letter(self, letter: DeadLetter) -> StoredDeadLetter:
        """Store the saga's `DeadLetter` (records, succeeded and failed sinks, error)."""
        sources = sorted({r.source for r in letter.records})
        payload = {
            "records": [r.json_value() for r in letter.records],
            "succeeded": list(letter.succeeded),
            "failed": list(letter.failed),
            "error": letter.error,
            "writers": dict(letter.writers),
            "previous": {
                sink: [[k[0], k[1], None if r is None else r.json_value()] for k, r in changed.items()]
                for sink, changed in letter.previous.items()
            },
        }
        return await self.add(
            batch_id=letter.batch_id,
            source=",".join(sources),
            record_keys=[r.key for r in letter.records],
            payload=payload,
            error=letter.error,
            attempts=letter.attempts,
        )

    async def resolve(self, batch_id: str) -> int:
        """Mark the open letters of `batch_id` resolved (a later attempt succeeded); how many."""
        done = await self._db.pool().execute(
            f"""UPDATE {self._table()} SET status = 'resolved', updated_at = now()
                WHERE batch_id = $1 AND status = 'open'""",
            batch_id,
        )
        return int(done.rsplit(" ", 1)[-1])

    async def list(self, status: str | None = None, limit: int = 100) -> builtins.list[StoredDeadLetter]:
        """Dead letters, oldest first, optionally only those with `status`."""
        if status is not None:
            _check_status(status)
        rows = await self._db.pool().fetch(
            f"""SELECT {_COLUMNS} FROM {self._table()}
                WHERE $1::text IS NULL OR status = $1 ORDER BY id LIMIT $2""",
            status,
            limit,
        )
        return [StoredDeadLetter.from_row(row) for row in rows]

    async def get(self, id: int) -> StoredDeadLetter | None:
        row = await self._db.pool().fetchrow(f"SELECT {_COLUMNS} FROM {self._table()} WHERE id = $1", id)
        return None if row is None else StoredDeadLetter.from_row(row)

    async def mark(self, id: int, status: str, *, error: str | None = None) -> StoredDeadLetter:
        """Set the status. With `error` (a replay attempt that failed), also record it and
        count the attempt. Raises `SinkError` when there is no dead letter `id`."""
        _check_status(status)
        row = await self._db.pool().fetchrow(
            f"""UPDATE {self._table()}
                SET status = $2, updated_at = now(),
                    error = coalesce($3, error),
                    attempts = attempts + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END
                WHERE id = $1 RETURNING {_COLUMNS}""",
            id,
            status,
            error,
        )
        if row is None:
            raise SinkError(f"no dead letter with id {id} in {self._table()}")
        return StoredDeadLetter.from_row(row)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise SinkError(f"unknown dead-letter status {status!r}; expected one of {', '.join(STATUSES)}")
