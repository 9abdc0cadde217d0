"""Test sinks: an in-memory store that keeps the Sink contract, and a wrapper that
injects failures into any real sink (for saga and chaos tests)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from apex_platform.contracts import Sink
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
    so an older version cannot resurrect a deleted record."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.rows: dict[RecordKey, Record] = {}
        self.writes = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> None:
        return None

    async def write(self, records: Sequence[Record]) -> None:
        self.writes += 1
        for record in latest_per_key(records):
            current = self.rows.get(record.key)
            if current is None or (supersedes(record, current) and current != record):
                self.rows[record.key] = _tombstone(record) if record.deleted else record

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        return {k: r for k in keys if (r := self.rows.get(k)) is not None}

    async def restore(self, previous: Mapping[RecordKey, Record | None]) -> None:
        for key, record in previous.items():
            if record is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = record


class CountingSink(MemorySink):
    """A MemorySink that also counts how often each record id was handed to it (to prove
    that a large page or file is written exactly once, not only that it ended right)."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self.received: Counter[str] = Counter()

    async def write(self, records: Sequence[Record]) -> None:
        self.received.update(r.id for r in records)
        await super().write(records)


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

    async def write(self, records: Sequence[Record]) -> None:
        f = self.faults
        f.calls.append("write")
        if f.delay:
            await asyncio.sleep(f.delay)
        if self.on_write:
            self.on_write()
        if f.fail_writes_forever or f.fail_writes > 0:
            f.fail_writes = max(0, f.fail_writes - 1)
            if f.write_after_failure:
                await self.inner.write(records)
            raise SinkError(f"injected write failure in {self.name}")
        refused = {r.key: f"injected refusal of {r.id}" for r in records if r.id in f.refuse_ids}
        await self.inner.write([r for r in records if r.key not in refused])
        if refused:
            raise RecordsRefused(self.name, refused)

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        f = self.faults
        f.calls.append("read")
        if f.fail_reads > 0:
            f.fail_reads -= 1
            raise SinkError(f"injected read failure in {self.name}")
        return await self.inner.read(keys)

    async def restore(self, previous: Mapping[RecordKey, Record | None]) -> None:
        f = self.faults
        f.calls.append("restore")
        if f.fail_restores_forever or f.fail_restores > 0:
            f.fail_restores = max(0, f.fail_restores - 1)
            raise SinkError(f"injected restore failure in {self.name}")
        await self.inner.restore(previous)
