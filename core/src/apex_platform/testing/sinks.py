"""Test sinks: an in-memory store that keeps the Sink contract, and a wrapper that
injects failures into any real sink (for saga and chaos tests)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from apex_platform.contracts import DeadLetter, Previous, Sink
from apex_platform.errors import RecordsRefused, SinkError
from apex_platform.models import Record, RecordKey
from apex_platform.saga import latest_per_key, supersedes


def _tombstone(record: Record) -> Record:
    """What sinks keep of a deleted record: key, kind, version and time."""
    return Record(
        source=record.source,
        kind=record.kind,
        id=record.id,
        version=record.version,
        occurred_at=record.occurred_at,
        deleted=True,
    )


class MemorySink:
    """Keeps the `Sink` contract in a dict; tombstones are remembered with their version
    so an older version cannot resurrect a deleted record. Fencing tokens are kept per
    key in `tokens` as `(changed_by, touched_by)`."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.rows: dict[RecordKey, Record] = {}
        self.tokens: dict[RecordKey, tuple[str | None, str | None]] = {}
        self.writes = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> None:
        return None

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        self.writes += 1
        changed: Previous = {}
        for record in latest_per_key(records):
            stored = _tombstone(record) if record.deleted else record
            current = self.rows.get(record.key)
            if current is None or (supersedes(record, current) and current != stored):
                changed[record.key] = current
                self.rows[record.key] = stored
                self.tokens[record.key] = (writer, writer)
            elif writer is not None:
                # identical or older: nothing changes but the stamp (see contracts.Sink)
                self.tokens[record.key] = (self.tokens.get(record.key, (None, None))[0], writer)
        return changed

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return {k: r for k in keys if (r := self.rows.get(k)) is not None}

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        for key, record in previous.items():
            key = RecordKey(*key)
            if writer is not None and self.tokens.get(key) != (writer, writer):
                continue
            self.tokens.pop(key, None)
            if record is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = record


class CountingSink(MemorySink):
    """A MemorySink that also counts, to prove that a page, a file or a delivery is written
    exactly once and not only that it ended right: per record id, how often it was handed
    to the sink (`received`) and how often the stored state changed (`changes`); and the
    records handed over in all (`records_written`)."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self.received: Counter[str] = Counter()
        self.changes: Counter[str] = Counter()
        self.records_written = 0

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        self.received.update(r.id for r in records)
        self.records_written += len(records)
        changed = await super().write(records, writer=writer)
        self.changes.update(key.id for key in changed)
        return changed


@dataclass
class Faults:
    """How a `FaultySink` misbehaves; change the fields between calls."""

    fail_writes: int = 0  # the next N writes fail
    fail_writes_forever: bool = False
    fail_restores: int = 0
    fail_restores_forever: bool = False
    fail_reads: int = 0
    write_after_failure: bool = False  # fail *after* the inner write happened (partial)
    delay: float = 0.0
    #: record ids this sink can never hold: the rest is written, these raise RecordsRefused
    refuse_ids: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)


class FaultySink:
    """Wraps a real sink and fails on demand, keeping the inner sink's name."""

    def __init__(self, inner: Sink, faults: Faults | None = None, *, on_write: Callable[[], None] | None = None):
        self.inner = inner
        self.name = inner.name
        self.faults = faults or Faults()
        self.on_write = on_write

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def health(self) -> None:
        await self.inner.health()

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        f = self.faults
        f.calls.append("write")
        if f.delay:
            await asyncio.sleep(f.delay)
        if self.on_write:
            self.on_write()
        if f.fail_writes_forever or f.fail_writes > 0:
            f.fail_writes = max(0, f.fail_writes - 1)
            if f.write_after_failure:
                await self.inner.write(records, writer=writer)
            raise SinkError(f"injected write failure in {self.name}")
        refused = {r.key: f"injected refusal of {r.id}" for r in records if r.id in f.refuse_ids}
        changed = await self.inner.write([r for r in records if r.key not in refused], writer=writer)
        if refused:
            raise RecordsRefused(self.name, refused, previous=changed)
        return changed

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        f = self.faults
        f.calls.append("read")
        if f.fail_reads > 0:
            f.fail_reads -= 1
            raise SinkError(f"injected read failure in {self.name}")
        return await self.inner.read(keys)

    async def restore(self, previous: Mapping[RecordKey, Record | None], *, writer: str | None = None) -> None:
        f = self.faults
        f.calls.append("restore")
        if f.fail_restores_forever or f.fail_restores > 0:
            f.fail_restores = max(0, f.fail_restores - 1)
            raise SinkError(f"injected restore failure in {self.name}")
        await self.inner.restore(previous, writer=writer)


class MemoryDeadLetters:
    """The saga's `DeadLetterQueue` in memory, with the semantics of the PostgreSQL one:
    one open letter per batch id (a later failure updates it and counts the attempt),
    resolved when a later attempt of the batch succeeds. `fail` makes every call raise."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise SinkError("injected dead-letter queue failure")

    async def add_dead_letter(self, letter: DeadLetter) -> int:
        self._check()
        for index, kept in enumerate(self.letters):
            if kept.batch_id == letter.batch_id and kept.status == "open":
                self.letters[index] = replace(letter, id=kept.id, attempts=kept.attempts + 1)
                return index + 1
        self.letters.append(replace(letter, id=len(self.letters) + 1))
        return len(self.letters)

    async def resolve_dead_letters(self, batch_id: str) -> int:
        self._check()
        resolved = 0
        for index, kept in enumerate(self.letters):
            if kept.batch_id == batch_id and kept.status == "open":
                self.letters[index] = replace(kept, status="resolved")
                resolved += 1
        return resolved

    async def list_dead_letters(self, status: str | None = None, limit: int = 100) -> list[DeadLetter]:
        self._check()
        return [d for d in self.letters if status is None or d.status == status][:limit]

    async def get_dead_letter(self, letter_id: int) -> DeadLetter | None:
        self._check()
        return self.letters[letter_id - 1] if 0 < letter_id <= len(self.letters) else None

    async def mark_dead_letter(self, letter_id: int, status: str) -> None:
        self._check()
        self.letters[letter_id - 1] = replace(self.letters[letter_id - 1], status=status)
