"""Activities: the I/O side of the workflows. Methods of classes built at worker start
with their clients (registry, saga, blob store)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from apex_platform import metrics
from apex_platform.blobs import BlobNotFound, BlobStore
from apex_platform.contracts import BatchSource, BatchUnit, BatchWarning, FetchingSource, PollSource
from apex_platform.errors import PayloadError, PluginError, RestartPagination, SettingsError, VendorError
from apex_platform.models import InboundEvent, Record, WriteResult
from apex_platform.plugins import Registry
from apex_platform.saga import Saga, SagaWriteError
from apex_platform.temporal.inputs import (
    EnrichInput,
    IngestChunkInput,
    IngestChunkResult,
    ParseInput,
    ParseManyInput,
    PollPageInput,
    PollPageResult,
    RecordBatch,
    RecordRef,
    SagaWriteInput,
    SplitFileInput,
    SplitFileResult,
)


def _non_retryable(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def _vendor_failure(exc: VendorError) -> ApplicationError:
    """Retryable vendor errors keep the vendor's Retry-After as Temporal's next delay."""
    if not exc.retryable:
        return _non_retryable(exc)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type="VendorError", next_retry_delay=delay)


def unparsed_record(event: InboundEvent, error: str) -> Record:
    """What a batch keeps of an event its connector could not parse: nothing is dropped,
    the raw payload is stored as an `apex.unparsed` record to fix and replay."""
    return Record(
        source=event.source,
        kind="apex.unparsed",
        id=f"unparsed:{event.event_id}",
        version=int(event.received_at.timestamp() * 1_000_000),
        occurred_at=event.received_at,
        title=f"unparsed {event.source} event {event.event_id}",
        text=error[:2000],
        attributes={"payload": event.payload, "error": error[:2000], "event_id": event.event_id},
    )


@contextlib.asynccontextmanager
async def heartbeating(every: float = 5.0) -> AsyncIterator[None]:
    """Heartbeat in the background while a long call runs, so a dead worker is noticed
    within the heartbeat timeout and a live one is never timed out."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class BatchCodec:
    """Packs records into a `RecordBatch`, by blob reference once they are too large."""

    def __init__(self, blobs: BlobStore, inline_bytes: int) -> None:
        self.blobs = blobs
        self.inline_bytes = inline_bytes

    def pack(self, source: str, records: Sequence[Record]) -> RecordBatch:
        ids = tuple(dict.fromkeys(r.id for r in records))
        inline = RecordBatch(source=source, records=tuple(records), count=len(records), record_ids=ids)
        blob = inline.model_dump_json().encode()
        if len(blob) <= self.inline_bytes:
            return inline
        ref = self.blobs.put(blob)
        return RecordBatch(source=source, ref=ref, count=len(records), record_ids=ids[:50])

    def unpack(self, batch: RecordBatch) -> list[Record]:
        if batch.ref is None:
            return list(batch.records)
        return list(RecordBatch.model_validate_json(self.blobs.get(batch.ref)).records)

    def event_payload(self, event: InboundEvent) -> InboundEvent:
        if event.payload_ref is None:
            return event
        payload = json.loads(self.blobs.get(event.payload_ref))
        return event.model_copy(update={"payload": payload, "payload_ref": None})


MAX_WARNINGS = 1000


class ChunkFile(BaseModel):
    """A chunk of a batch file's units, as stored in the blob store."""

    events: tuple[InboundEvent, ...]


class IngestActivities:
    def __init__(self, registry: Registry, saga: Saga, codec: BatchCodec) -> None:
        self.registry = registry
        self.saga = saga
        self.codec = codec

    @activity.defn(name="apex.parse")
    async def parse(self, inp: ParseInput) -> RecordBatch:
        started = time.perf_counter()
        try:
            connector = self.registry.source(inp.event.source)
            event = self.codec.event_payload(inp.event)
            if isinstance(connector, FetchingSource):
                event = await connector.fetch(event)
            records = connector.parse(event)
        except (PayloadError, PluginError, BlobNotFound, SettingsError) as exc:
            raise _non_retryable(exc) from exc
        except VendorError as exc:
            raise _vendor_failure(exc) from exc
        for record in records:
            metrics.RECORDS_PARSED.labels(record.source, record.kind).inc()
            if not record.entities:
                metrics.RECORDS_WITHOUT_ENTITIES.labels(record.source).inc()
        metrics.ACTIVITY_SECONDS.labels("parse", inp.event.source).observe(time.perf_counter() - started)
        return self.codec.pack(inp.event.source, records)

    @activity.defn(name="apex.parse_many")
    async def parse_many(self, inp: ParseManyInput) -> RecordBatch:
        """Parse a batch of accumulated events; an event that cannot be parsed becomes an
        `apex.unparsed` record instead of failing (or losing) the whole batch."""
        try:
            connector = self.registry.source(inp.source)
        except PluginError as exc:
            raise _non_retryable(exc) from exc
        records: list[Record] = []
        for raw in inp.events:
            try:
                event = self.codec.event_payload(raw)
                if isinstance(connector, FetchingSource):
                    event = await connector.fetch(event)
                parsed = connector.parse(event)
            except (PayloadError, BlobNotFound) as exc:
                activity.logger.warning("event %s of %s not parsed: %s", raw.event_id, inp.source, exc)
                metrics.RECORDS_PARSED.labels(inp.source, "apex.unparsed").inc()
                records.append(unparsed_record(raw, str(exc)))
                continue
            except VendorError as exc:
                raise _vendor_failure(exc) from exc
            for record in parsed:
                metrics.RECORDS_PARSED.labels(record.source, record.kind).inc()
            records.extend(parsed)
        return self.codec.pack(inp.source, records)

    @activity.defn(name="apex.poll_page")
    async def poll_page(self, inp: PollPageInput) -> PollPageResult:
        started = time.perf_counter()
        try:
            connector = self.registry.source(inp.source)
        except PluginError as exc:
            raise _non_retryable(exc) from exc
        if not isinstance(connector, PollSource):
            raise _non_retryable(PluginError(f"source {inp.source!r} cannot be polled"))
        try:
            async with heartbeating():
                page = await connector.poll(inp.account, inp.cursor)
        except (RestartPagination, SettingsError) as exc:
            raise _non_retryable(exc) from exc
        except VendorError as exc:
            raise _vendor_failure(exc) from exc
        except PayloadError as exc:  # a vendor answer we cannot read: retry, it is not ours to drop
            raise ApplicationError(
                f"{inp.source}: unreadable vendor response: {exc}", type="UnreadableVendorResponse"
            ) from exc
        for record in page.records:
            metrics.RECORDS_PARSED.labels(record.source, record.kind).inc()
        metrics.ACTIVITY_SECONDS.labels("poll_page", inp.source).observe(time.perf_counter() - started)
        return PollPageResult(
            batch=self.codec.pack(inp.source, page.records),
            next_cursor=page.next_cursor,
            has_more=page.has_more,
            retry_after=page.retry_after,
        )

    def _batch_source(self, name: str) -> BatchSource:
        try:
            connector = self.registry.source(name)
        except PluginError as exc:
            raise _non_retryable(exc) from exc
        if not isinstance(connector, BatchSource):
            raise _non_retryable(PluginError(f"source {name!r} does not read files"))
        return connector

    @activity.defn(name="apex.split_file")
    async def split_file(self, inp: SplitFileInput) -> SplitFileResult:
        """Stream the file's units into chunk blobs: only one chunk is ever in memory."""
        connector = self._batch_source(inp.source)
        try:
            path = self.codec.blobs.path(inp.file_ref)
        except BlobNotFound as exc:
            raise _non_retryable(exc) from exc
        received = datetime.now(UTC)

        def split() -> SplitFileResult:
            # runs in a thread: reading and tokenizing a large file must not stall the worker
            refs: list[str] = []
            warnings: list[str] = []
            chunk: list[InboundEvent] = []
            units = 0

            def flush() -> None:
                if chunk:
                    body = ChunkFile(events=tuple(chunk)).model_dump_json().encode()
                    refs.append(self.codec.blobs.put(body))
                    chunk.clear()

            for item in connector.split(path):
                if isinstance(item, BatchWarning):
                    if len(warnings) < MAX_WARNINGS:
                        warnings.append(item.message)
                    continue
                unit: BatchUnit = item
                units += 1
                chunk.append(
                    InboundEvent(
                        source=inp.source,
                        event_id=f"{inp.file_name}:{unit.id}",
                        received_at=received,
                        payload=unit.payload,
                    )
                )
                if len(chunk) >= inp.chunk_size:
                    flush()
            flush()
            return SplitFileResult(chunk_refs=tuple(refs), units=units, warnings=tuple(warnings))

        try:
            async with heartbeating():
                return await asyncio.to_thread(split)
        except PayloadError as exc:
            raise _non_retryable(exc) from exc

    @activity.defn(name="apex.ingest_chunk")
    async def ingest_chunk(self, inp: IngestChunkInput) -> IngestChunkResult:
        """Parse → enrich → saga for one chunk of units, as one batch."""
        connector = self._batch_source(inp.source)
        try:
            events = ChunkFile.model_validate_json(self.codec.blobs.get(inp.chunk_ref)).events
        except BlobNotFound as exc:
            raise _non_retryable(exc) from exc
        records: list[Record] = []
        failed: list[str] = []
        warnings: list[str] = []
        for event in events:
            try:
                parsed = connector.parse(event)
            except PayloadError as exc:
                failed.append(event.event_id)
                warnings.append(f"{event.event_id}: not ingested: {exc}")
                continue
            records.extend(parsed)
        for enricher in self.registry.enrichers.values():
            records = await enricher.enrich(records)
        try:
            async with heartbeating():
                written = await self.saga.write(records, batch_id=inp.batch_id)
        except SagaWriteError as exc:
            raise ApplicationError(str(exc), type="SagaWriteError") from exc
        for record in records:
            metrics.RECORDS_PARSED.labels(record.source, record.kind).inc()
        return IngestChunkResult(
            units=len(events),
            failed_units=tuple(failed),
            records=tuple(RecordRef(id=r.id, kind=r.kind, deleted=r.deleted) for r in records),
            warnings=tuple(warnings),
            write=written,
        )

    @activity.defn(name="apex.enrich")
    async def enrich(self, inp: EnrichInput) -> RecordBatch:
        if not self.registry.enrichers or inp.batch.count == 0:
            return inp.batch
        records = self.codec.unpack(inp.batch)
        async with heartbeating():
            for enricher in self.registry.enrichers.values():
                records = await enricher.enrich(records)
        return self.codec.pack(inp.batch.source, records)

    @activity.defn(name="apex.saga_write")
    async def saga_write(self, inp: SagaWriteInput) -> WriteResult:
        started = time.perf_counter()
        records = self.codec.unpack(inp.batch)
        try:
            async with heartbeating():
                result = await self.saga.write(records, batch_id=inp.batch_id)
        except SagaWriteError as exc:
            # Retryable: every store was restored, Temporal tries the batch again later.
            raise ApplicationError(str(exc), type="SagaWriteError") from exc
        metrics.ACTIVITY_SECONDS.labels("saga_write", inp.batch.source).observe(time.perf_counter() - started)
        return result
