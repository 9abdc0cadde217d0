"""Activities: the I/O side of the workflows. Methods of classes built at worker start
with their clients (registry, saga, blob store)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from apex_platform import metrics, tracing
from apex_platform.blobs import BlobNotFound, BlobStore
from apex_platform.capabilities import DeliverySource, atomic_pagination, loop_cursor_max_age
from apex_platform.contracts import BatchSource, BatchUnit, BatchWarning, FetchingSource, PollSource
from apex_platform.errors import (
    MALFORMED_INPUT,
    ApexError,
    PayloadError,
    PluginError,
    RestartPagination,
    SettingsError,
    VendorError,
    input_problem,
)
from apex_platform.inbox import Inbox, Lineage, StoredDelivery
from apex_platform.logs import log_context
from apex_platform.models import InboundEvent, Page, Record, WriteResult
from apex_platform.plugins import Registry
from apex_platform.saga import Saga, SagaWriteError, latest_positions
from apex_platform.temporal.inputs import (
    MAX_LISTED,
    CheckpointFileInput,
    CheckpointFileResult,
    DrainBatchInput,
    DrainBatchResult,
    EnrichInput,
    FinishFileInput,
    IngestChunkInput,
    IngestChunkResult,
    ParseInput,
    ParseManyInput,
    PollCommitInput,
    PollCommitResult,
    PollDiscardInput,
    PollFoldInput,
    PollIngestResult,
    PollPageInput,
    PollPageResult,
    RecordBatch,
    RecordRef,
    SagaWriteInput,
    SplitFileInput,
    SplitFileResult,
    StagedPage,
)


def _non_retryable(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def _vendor_failure(exc: VendorError) -> ApplicationError:
    """Retryable vendor errors keep the vendor's Retry-After as Temporal's next delay."""
    if not exc.retryable:
        return _non_retryable(exc)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type="VendorError", next_retry_delay=delay)


def unparsed_record(event: InboundEvent, error: str, body: bytes | None = None) -> Record:
    """What a batch keeps of an event its connector could not parse: nothing is dropped,
    the raw payload is stored as an `apex.unparsed` record to fix and replay (the body
    itself stays in the inbox for `apex-platform inbox replay`)."""
    attributes: dict[str, object] = {"error": error[:2000], "event_id": event.event_id}
    if body is not None:
        attributes["body_excerpt"] = body[:4096].decode("utf-8", "replace").replace("\x00", "\ufffd")
    else:
        attributes["payload"] = event.payload
    return Record(
        source=event.source,
        kind="apex.unparsed",
        id=f"unparsed:{event.event_id}",
        version=int(event.received_at.timestamp() * 1_000_000),
        occurred_at=event.received_at,
        title=f"unparsed {event.source} event {event.event_id}",
        text=error[:2000],
        attributes=attributes,
    )


def _identity(record: Record) -> tuple[str, str, str, int, bool]:
    """What an enricher must keep of a record (and what the saga's choice of the latest
    record per key depends on)."""
    return record.source, record.id, record.kind, record.version, record.deleted


#: records per saga call when a page, a drained batch or a file chunk holds more
SAGA_CHUNK_RECORDS = 1000
#: records enriched between two yields to the event loop (other sources' activities run between)
ENRICH_SLICE = 50


@contextlib.asynccontextmanager
async def heartbeating(every: float | None = None) -> AsyncIterator[None]:
    """Heartbeat in the background while a long call runs, so a dead worker is noticed
    within the heartbeat timeout and a live one is never timed out (a third of the
    timeout between beats, at most 5 s)."""
    if every is None:
        timeout = activity.info().heartbeat_timeout
        every = min(5.0, timeout.total_seconds() / 3) if timeout else 5.0

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


#: a retried drain batch is halved this many times at most (1/64 of the configured batch)
MAX_BATCH_HALVINGS = 6
#: … and never below this many bytes (one big delivery is still taken: `pending` returns
#: at least one row)
MIN_BATCH_BYTES = 256 * 1024


def batch_limits(max_count: int, max_bytes: int, attempt: int) -> tuple[int, int]:
    """The batch an attempt of `apex.drain_inbox` takes: the configured one first, then
    half as much at each retry. A batch that cannot finish in time — a heartbeat or
    start-to-close timeout on a starved machine, a store that times out on its size — is
    retried smaller instead of failing the same way forever, so a deep backlog always
    makes progress (the chaos soak saw 1,000-delivery Samsara batches time out again and
    again on a loaded machine). A transient failure of another kind costs a smaller next
    attempt only; the next batch is a new activity and starts full size again."""
    halvings = min(max(attempt - 1, 0), MAX_BATCH_HALVINGS)
    return max(1, max_count >> halvings), max(min(max_bytes, MIN_BATCH_BYTES), max_bytes >> halvings)


def _utc(iso: str) -> datetime:
    when = datetime.fromisoformat(iso)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def _read_page(connector: PollSource, inp: PollPageInput) -> Page:
    """`connector.poll`, its errors sorted: restarts and settings problems are not retried,
    vendor errors keep the vendor's Retry-After, an unreadable answer is retried."""
    try:
        return await connector.poll(inp.account, inp.cursor)
    except (RestartPagination, SettingsError) as exc:
        raise _non_retryable(exc) from exc
    except VendorError as exc:
        raise _vendor_failure(exc) from exc
    except PayloadError as exc:  # a vendor answer we cannot read: retry, it is not ours to drop
        raise ApplicationError(
            f"{inp.source}: unreadable vendor response: {exc}", type="UnreadableVendorResponse"
        ) from exc


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


#: a chunk of a batch file is cut at this many bytes of unit payloads, whatever its count
CHUNK_MAX_BYTES = 4 * 1024 * 1024
#: longest event id (InboundEvent's limit); longer unit ids are shortened with a hash
MAX_EVENT_ID = 256


def unit_event_id(file_name: str, unit_id: str) -> str:
    """`<file>:<unit>`, shortened with a hash when an odd file name or control number would
    make it longer than an event id may be (it must stay stable across retries)."""
    event_id = f"{file_name}:{unit_id}"
    if len(event_id) <= MAX_EVENT_ID:
        return event_id
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return f"{event_id[: MAX_EVENT_ID - 18]}~{digest}"


class ChunkFile(BaseModel):
    """A chunk of a batch file's units, as stored in the blob store."""

    events: tuple[InboundEvent, ...]


#: how a blob a file's workflow writes and later drops (a chunk, the manifest, a chunk's
#: listing) begins: a first line naming the workflow. The store is content-addressed, so
#: without it two files can write the very same blob (a chunk's listing that is another
#: file's whole listing, the same chunk in a file and its fixed version) and dropping one
#: file's would take the other's; with it no other workflow's blob is ever the same, and
#: `finish_file` drops only blobs that name its workflow.
_OWNER_LINE = b'{"apex_owner":'


def _owned(owner: str, kind: str, body: bytes) -> bytes:
    """`body` as a blob of workflow `owner` (`kind` says what it is, for people reading it)."""
    return json.dumps({"apex_owner": owner, "kind": kind}).encode() + b"\n" + body


def _owner() -> str:
    """The workflow of the running activity: the owner of the working blobs it writes."""
    workflow_id = activity.info().workflow_id
    if not workflow_id:  # batch-file activities are only ever scheduled by their workflow
        raise _non_retryable(PayloadError("a batch-file activity runs outside a workflow"))
    return workflow_id


def _unwrap(data: bytes) -> tuple[str | None, bytes]:
    """A working blob's owner and body; owner None: written before blobs named one (never
    dropped: it may be another file's too)."""
    if not data.startswith(_OWNER_LINE):
        return None, data
    head, _, body = data.partition(b"\n")
    return str(json.loads(head)["apex_owner"]), body


def _listing(blobs: BlobStore, ref: str) -> bytes:
    """A chunk's record lines (or a file's whole listing): what joined listings are made of."""
    try:
        return _unwrap(blobs.get(ref))[1]
    except BlobNotFound as exc:
        raise _non_retryable(exc) from exc


def _drop_if_owned(blobs: BlobStore, ref: str, owner: str) -> None:
    """Drop a blob if it names `owner` (missing is fine: dropped by an earlier attempt)."""
    try:
        data = blobs.get(ref)
    except BlobNotFound:
        return
    if _unwrap(data)[0] == owner:
        blobs.delete(ref)


def _put_joined(blobs: BlobStore, pieces: Iterable[bytes]) -> str:
    """One blob of `pieces` end to end, through a temporary file: a listing of millions of
    records is never whole in memory."""
    with tempfile.TemporaryDirectory(prefix="apex-join-") as tmp:
        path = Path(tmp) / "joined"
        with path.open("wb") as fh:
            for piece in pieces:
                fh.write(piece)
        return blobs.put_file(path)


def _listing_parts(blobs: BlobStore, parts_ref: str | None) -> list[str]:
    """The listing parts a file's earlier runs wrote (`apex.checkpoint_file`)."""
    if parts_ref is None:
        return []
    try:
        return [str(ref) for ref in json.loads(blobs.get(parts_ref))["parts"]]
    except BlobNotFound as exc:
        raise _non_retryable(exc) from exc


def _part(blobs: BlobStore, ref: str) -> tuple[dict[str, object], bytes]:
    """A listing part: its header (the chunk listings it joins) and its record lines."""
    try:
        head, _, body = blobs.get(ref).partition(b"\n")
    except BlobNotFound as exc:
        raise _non_retryable(exc) from exc
    header: dict[str, object] = json.loads(head)
    return header, body


def _forget_parts(blobs: BlobStore, parts_ref: str, *, keep: str | None, owner: str) -> None:
    """Drop a file's listing parts and the chunk listings they join (those of workflow
    `owner`), then the lists of parts, the oldest first (in that order: a retry after a
    crash finds what is left)."""
    lists: list[str] = []
    parts: list[str] = []
    ref: str | None = parts_ref
    while ref is not None:
        try:
            listed = json.loads(blobs.get(ref))
        except BlobNotFound:  # dropped by an earlier attempt, and so are the older ones
            break
        lists.append(ref)
        parts = parts or [str(p) for p in listed["parts"]]  # the latest list names them all
        ref = listed.get("previous")
    for part in parts:
        try:
            header, _ = _part(blobs, part)
        except ApplicationError:  # dropped by an earlier attempt
            continue
        listings = header.get("listings")
        for listing in listings if isinstance(listings, list) else []:
            if listing != keep:
                _drop_if_owned(blobs, str(listing), owner)
        blobs.delete(part)
    for ref in reversed(lists):
        blobs.delete(ref)


class IngestActivities:
    def __init__(self, registry: Registry, saga: Saga, codec: BatchCodec, inbox: Inbox | None = None) -> None:
        self.registry = registry
        self.saga = saga
        self.codec = codec
        self.inbox = inbox or Inbox()

    async def _enrich(self, records: list[Record]) -> list[Record]:
        """Every enricher over the batch, `ENRICH_SLICE` records at a time with a yield
        between slices: enrichers are CPU-bound, and a P1 batch being enriched must not
        hold a P0 delivery's activity (same worker process, same event loop) for seconds."""
        out: list[Record] = []
        for start in range(0, len(records), ENRICH_SLICE):
            part = records[start : start + ENRICH_SLICE]
            for enricher in self.registry.enrichers.values():
                part = await enricher.enrich(part)
            out.extend(part)
            await asyncio.sleep(0)
        return out

    async def _enrich_written(self, records: list[Record]) -> list[Record]:
        """`records` as `_write` will hand them to the saga, enriched where it matters: each
        saga chunk keeps one record per key, the latest (`latest_per_key`), so only those
        are enriched and the others go as parsed, to be dropped there. A webhook source
        that sends every update of one object (Samsara's route in each RouteStopArrival)
        repeats it in every delivery of a batch: enriching each copy was wasted work.

        Which record is kept depends on key, version and `deleted` alone, which enrichers
        keep (the enricher contract, `EnricherConformance`), so the saga writes exactly
        what enriching everything gives; an enricher that changes them anyway gets every
        record, as before."""
        if not self.registry.enrichers:
            return records
        kept = [
            start + position
            for start in range(0, len(records), SAGA_CHUNK_RECORDS)
            for position in latest_positions(records[start : start + SAGA_CHUNK_RECORDS])
        ]
        if len(kept) == len(records):
            return await self._enrich(records)
        kept.sort()
        enriched = await self._enrich([records[i] for i in kept])
        if len(enriched) != len(kept) or any(
            _identity(record) != _identity(records[i]) for i, record in zip(kept, enriched, strict=True)
        ):
            return await self._enrich(records)  # an enricher outside its contract: as before
        out = list(records)
        for i, record in zip(kept, enriched, strict=True):
            out[i] = record
        return out

    async def _write(self, records: Sequence[Record], batch_id: str) -> WriteResult:
        """Through the saga in chunks of `SAGA_CHUNK_RECORDS` (each all-or-nothing; a retry
        of the activity skips what is already committed)."""
        written = skipped = 0
        sinks: tuple[str, ...] = ()
        for start in range(0, len(records), SAGA_CHUNK_RECORDS):
            chunk = records[start : start + SAGA_CHUNK_RECORDS]
            try:
                result = await self.saga.write(chunk, batch_id=f"{batch_id}#{start // SAGA_CHUNK_RECORDS}")
            except SagaWriteError as exc:
                # Retryable: every store was restored, Temporal tries the batch again later.
                raise ApplicationError(str(exc), type="SagaWriteError") from exc
            written += result.written
            skipped += result.skipped
            sinks = result.sinks
        return WriteResult(written=written, skipped=skipped, sinks=sinks)

    @activity.defn(name="apex.drain_inbox")
    async def drain_inbox(self, inp: DrainBatchInput) -> DrainBatchResult:
        """One batch of a source's inbox: wait (at most `idle_wait_seconds`) for pending
        deliveries, parse, enrich and write them, then mark them delivered with this run.
        Only counts go back to the workflow. Any failure leaves the rows pending (with the
        reason) and is retried by Temporal: a missing connector, a settings error or a
        store that is down heals once the environment does."""
        info = activity.info()
        inbox = self.inbox
        wake = inbox.notifications(inp.source)
        deadline = time.monotonic() + inp.idle_wait_seconds
        async with heartbeating():
            with contextlib.suppress(Exception):  # notifications only make it faster
                await inbox.listen()
            while True:
                wake.clear()
                try:
                    rows = await inbox.pending(
                        inp.source,
                        *batch_limits(inp.max_count, inp.max_bytes, info.attempt),
                        partition=inp.partition,
                        partitions=inp.partitions,
                    )
                except ApexError as exc:
                    raise ApplicationError(f"{inp.source}: inbox: {exc}", type="InboxUnavailable") from exc
                if rows or time.monotonic() >= deadline or activity.is_worker_shutdown():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
            if not rows:
                return DrainBatchResult()
            # one span per batch, linked to each delivery's request (apex_platform.tracing);
            # every log line of the batch names its source and workflow
            links = tracing.links(r.headers.get(tracing.TRACEPARENT_HEADER) for r in rows)
            attributes = {"apex.source": inp.source, "apex.deliveries": len(rows)}
            with (
                log_context(
                    source=inp.source,
                    workflow_id=info.workflow_id,
                    event_id=rows[0].event_id if len(rows) == 1 else None,
                ),
                tracing.span("apex.drain.batch", attributes, links),
            ):
                started = time.perf_counter()
                seqs = [r.seq for r in rows]
                try:
                    records, counts, unparsed, origins = await self._parse_deliveries(inp.source, rows)
                    records = await self._enrich_written(records)
                    result = await self._write(records, batch_id=f"{info.workflow_id}@{seqs[0]}")
                except (ApplicationError, ApexError) as exc:
                    with contextlib.suppress(Exception):
                        await inbox.mark_failed(seqs, f"{type(exc).__name__}: {exc}")
                    if isinstance(exc, ApplicationError):
                        raise
                    raise ApplicationError(f"{inp.source}: {exc}", type=type(exc).__name__) from exc
                lineage = [
                    Lineage(r.source, r.id, r.version, origins.get((r.id, r.version), f"inbox:{inp.source}"))
                    for r in records
                ]
                await inbox.mark_delivered(
                    seqs, counts, workflow_id=info.workflow_id, run_id=info.workflow_run_id, lineage=lineage
                )
        metrics.ACTIVITY_SECONDS.labels("drain_inbox", inp.source).observe(time.perf_counter() - started)
        return DrainBatchResult(
            deliveries=len(rows),
            records=len(records),
            unparsed=unparsed,
            first_seq=seqs[0],
            last_seq=seqs[-1],
            write=result,
        )

    async def _parse_deliveries(
        self, source: str, rows: Sequence[StoredDelivery]
    ) -> tuple[list[Record], list[int], int, dict[tuple[str, int], str]]:
        """Records of every delivery, in order; a delivery its connector cannot read becomes
        an `apex.unparsed` record (permanent: retrying cannot fix a body)."""
        try:
            connector = self.registry.source(source)
        except PluginError as exc:
            # not installed on this worker: retryable, another worker (or a fixed one) takes it
            raise ApplicationError(
                f"{exc} on this worker; the deliveries wait in the inbox", type="SourceNotInstalled"
            ) from exc
        if not isinstance(connector, DeliverySource):
            raise ApplicationError(f"source {source!r} takes no deliveries", type="SourceNotInstalled")
        records: list[Record] = []
        counts: list[int] = []
        origins: dict[tuple[str, int], str] = {}
        unparsed = 0
        for index, row in enumerate(rows):
            if index % ENRICH_SLICE == ENRICH_SLICE - 1:
                await asyncio.sleep(0)  # parsing is CPU-bound too: let other sources' activities run
            with log_context(event_id=row.event_id):  # what a line logged while parsing is about
                origin = f"delivery:{source}:{row.event_id}"
                fallback = InboundEvent(source=source, event_id=row.event_id, received_at=row.received_at)
                try:
                    received = connector.receive(row.headers, row.body)
                    if not isinstance(received, InboundEvent):
                        counts.append(0)  # a reply or a trigger: nothing to store
                        continue
                    event = received.model_copy(update={"received_at": row.received_at, "event_id": row.event_id})
                    if isinstance(connector, FetchingSource):
                        try:
                            event = await connector.fetch(event)
                        except VendorError as exc:
                            if exc.retryable:
                                raise _vendor_failure(exc) from exc
                            raise PayloadError(f"vendor refused the fetch: {exc}") from exc
                        except (ApexError, ValueError, TypeError):
                            raise
                        except Exception as exc:  # a network failure the connector did not classify: transient
                            raise ApplicationError(
                                f"{source}: fetching delivery {row.event_id} failed: {type(exc).__name__}: {exc}",
                                type="FetchFailed",
                            ) from exc
                    parsed = connector.parse(event)
                except ApplicationError:
                    raise
                except SettingsError as exc:
                    raise ApplicationError(f"{source}: {exc}", type="SettingsError") from exc
                except Exception as exc:  # noqa: BLE001 - one body never blocks its neighbours
                    activity.logger.warning("delivery %s of %s not parsed: %s", row.event_id, source, exc)
                    metrics.record_unparsed(source)
                    bad = unparsed_record(fallback, f"{type(exc).__name__}: {exc}", row.body)
                    records.append(bad)
                    origins[(bad.id, bad.version)] = origin
                    counts.append(1)
                    unparsed += 1
                    continue
                metrics.record_quality(parsed)
                for record in parsed:
                    origins[(record.id, record.version)] = origin
                records.extend(parsed)
                counts.append(len(parsed))
        return records, counts, unparsed, origins

    @activity.defn(name="apex.poll_ingest")
    async def poll_ingest(self, inp: PollPageInput) -> PollIngestResult:
        """Read one page, enrich it and write it through the saga; return the next cursor.
        The page itself never enters Temporal; a retry reads the same page again.

        With `inp.stage` (a workflow that can stage) and a source whose loops are
        all-or-nothing, a page of a loop of several pages is staged instead: stored in the
        blob store, not written; only its reference comes back (see `PollSource`)."""
        started = time.perf_counter()
        try:
            connector = self.registry.source(inp.source)
        except PluginError as exc:
            raise ApplicationError(f"{exc} on this worker", type="SourceNotInstalled") from exc
        if not isinstance(connector, PollSource):
            raise _non_retryable(PluginError(f"source {inp.source!r} cannot be polled"))
        stage = inp.stage if inp.stage is not None and atomic_pagination(connector) else None
        async with heartbeating():
            if stage is not None and stage.resume_by is not None and datetime.now(UTC) > _utc(stage.resume_by):
                # an attempt retried long after the loop's last page: its cursor may be gone
                raise ApplicationError(
                    f"{inp.source} {inp.account}: the mid-loop cursor waited past {stage.resume_by}; "
                    "the loop restarts from its first cursor",
                    type="StaleLoopCursor",
                    non_retryable=True,
                )
            page = await _read_page(connector, inp)
            records = list(page.records)
            metrics.record_quality(records)
            ids = tuple(dict.fromkeys(r.id for r in records[-20:]))
            if stage is not None and (page.has_more or stage.index > 0):
                staged = StagedPage(
                    source=inp.source,
                    account=inp.account,
                    loop_id=stage.loop_id,
                    index=stage.index,
                    cursor=inp.cursor,
                    records=tuple(records),
                )
                ref = await asyncio.to_thread(self.codec.blobs.put, staged.model_dump_json().encode())
                metrics.ACTIVITY_SECONDS.labels("poll_stage", inp.source).observe(time.perf_counter() - started)
                return PollIngestResult(
                    next_cursor=page.next_cursor,
                    has_more=page.has_more,
                    retry_after=page.retry_after,
                    count=len(records),
                    record_ids=ids,
                    staged_ref=ref,
                    max_age_seconds=loop_cursor_max_age(connector),
                )
            # a loop of one page (nothing to void) or a source that is not all-or-nothing
            records, result = await self._ingest_page(inp.account, inp.cursor, records)
        metrics.record_poll_success(inp.source, records)
        metrics.ACTIVITY_SECONDS.labels("poll_ingest", inp.source).observe(time.perf_counter() - started)
        return PollIngestResult(
            next_cursor=page.next_cursor,
            has_more=page.has_more,
            retry_after=page.retry_after,
            count=len(records),
            record_ids=ids,
            write=result,
        )

    async def _ingest_page(
        self, account: str, cursor: str | None, records: list[Record]
    ) -> tuple[list[Record], WriteResult]:
        """Enrich a page read at `cursor`, write it through the saga and record its lineage."""
        if not records:
            return records, WriteResult()
        info = activity.info()
        records = await self._enrich_written(records)
        result = await self._write(records, batch_id=f"{info.workflow_id}@{cursor}")
        origin = f"page:{account}@{cursor or ''}"[:1000]
        await self.inbox.record_lineage(
            [Lineage(r.source, r.id, r.version, origin) for r in records],
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
        )
        return records, result

    def _staged_page(self, inp: PollCommitInput) -> StagedPage:
        blobs = self.codec.blobs
        ref = inp.page_ref
        if ref is None:
            if inp.segment_ref is None:
                raise PayloadError("commit input names neither a segment nor a page")
            refs = json.loads(blobs.get(inp.segment_ref))
            if not 0 <= inp.index < len(refs):
                raise BlobNotFound(f"segment {inp.segment_ref} has no page {inp.index}")
            ref = str(refs[inp.index])
        return StagedPage.model_validate_json(blobs.get(ref))

    @activity.defn(name="apex.poll_commit")
    async def poll_commit(self, inp: PollCommitInput) -> PollCommitResult:
        """Write one staged page of a complete loop through the saga, as an unstaged page is
        (enrich, saga, lineage). Its blob stays until the whole loop is written: a retry
        writes the same page again (the saga skips what it committed). The source's
        connector is not needed: nothing is read from the vendor."""
        started = time.perf_counter()
        async with heartbeating():
            try:
                page = await asyncio.to_thread(self._staged_page, inp)
            except (BlobNotFound, PayloadError) as exc:
                raise _non_retryable(exc) from exc
            except ValueError as exc:  # a blob this version cannot read: the loop is read again
                raise _non_retryable(PayloadError(f"staged page unreadable: {exc}")) from exc
            records, result = await self._ingest_page(page.account, page.cursor, list(page.records))
        metrics.record_poll_success(inp.source, records)
        metrics.ACTIVITY_SECONDS.labels("poll_commit", inp.source).observe(time.perf_counter() - started)
        return PollCommitResult(
            count=len(records), record_ids=tuple(dict.fromkeys(r.id for r in records[-20:])), write=result
        )

    @activity.defn(name="apex.poll_fold")
    async def poll_fold(self, inp: PollFoldInput) -> str:
        """List staged page references in one segment blob (the workflow then keeps one
        reference for them all)."""
        body = json.dumps(list(inp.page_refs)).encode()
        async with heartbeating():
            return await asyncio.to_thread(self.codec.blobs.put, body)

    @activity.defn(name="apex.poll_discard")
    async def poll_discard(self, inp: PollDiscardInput) -> int:
        """Delete the blobs of a staged loop (committed or void): every page of each segment,
        the segment, then the loose pages. Missing blobs are fine; returns pages deleted."""

        def discard() -> int:
            blobs = self.codec.blobs
            pages = 0
            for segment in inp.segment_refs:
                try:
                    refs = [str(ref) for ref in json.loads(blobs.get(segment))]
                except BlobNotFound:
                    refs = []
                for ref in refs:
                    blobs.delete(ref)
                    pages += 1
                blobs.delete(segment)
            for ref in inp.page_refs:
                blobs.delete(ref)
                pages += 1
            return pages

        async with heartbeating():
            return await asyncio.to_thread(discard)

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
        metrics.record_quality(records)
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
                metrics.record_unparsed(inp.source)
                records.append(unparsed_record(raw, str(exc)))
                continue
            except VendorError as exc:
                raise _vendor_failure(exc) from exc
            metrics.record_quality(parsed)
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
        async with heartbeating():
            page = await _read_page(connector, inp)
        metrics.record_quality(page.records)
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
        """Stream the file's units into chunk blobs (only one chunk is ever in memory) and
        list them in one manifest blob: the workflow gets the manifest's reference only."""
        connector = self._batch_source(inp.source)
        received = datetime.now(UTC)
        owner = _owner()

        def split() -> SplitFileResult:
            # runs in a thread: fetching (a shared store downloads it), reading and tokenizing
            # a large file must not stall the worker
            try:
                path = self.codec.blobs.path(inp.file_ref)
            except BlobNotFound as exc:
                raise _non_retryable(exc) from exc
            refs: list[str] = []
            warnings: list[str] = []
            dropped = 0
            chunk: list[InboundEvent] = []
            chunk_bytes = 0
            units = 0

            def flush() -> None:
                nonlocal chunk_bytes
                if chunk:
                    body = ChunkFile(events=tuple(chunk)).model_dump_json().encode()
                    refs.append(self.codec.blobs.put(_owned(owner, "chunk", body)))
                    chunk.clear()
                    chunk_bytes = 0

            for item in connector.split(path):
                if isinstance(item, BatchWarning):
                    metrics.PARSE_WARNINGS.labels(inp.source).inc()
                    if len(warnings) < MAX_LISTED:
                        warnings.append(item.message[:1000])
                    else:
                        dropped += 1
                    continue
                unit: BatchUnit = item
                units += 1
                event = InboundEvent(
                    source=inp.source,
                    event_id=unit_event_id(inp.file_name, unit.id),
                    received_at=received,
                    payload=unit.payload,
                )
                chunk.append(event)
                chunk_bytes += len(str(unit.payload))
                if len(chunk) >= inp.chunk_size or chunk_bytes >= CHUNK_MAX_BYTES:
                    flush()
            flush()
            manifest = self.codec.blobs.put(_owned(owner, "manifest", json.dumps(refs).encode()))
            return SplitFileResult(
                manifest_ref=manifest, chunks=len(refs), units=units, warnings=tuple(warnings), warnings_dropped=dropped
            )

        try:
            async with heartbeating():
                return await asyncio.to_thread(split)
        except MALFORMED_INPUT as exc:
            # The same file splits the same way: retrying would fail forever. The chain is
            # cut so the file's reason is this one line; a connector's own bug (not a
            # PayloadError) keeps its traceback in the worker's log.
            if not isinstance(exc, PayloadError):
                activity.logger.warning("%s: split failed: %s", inp.file_name, input_problem(exc), exc_info=exc)
            raise ApplicationError(input_problem(exc), type=type(exc).__name__, non_retryable=True) from None

    def _chunk_ref(self, inp: IngestChunkInput) -> str:
        if inp.manifest_ref is None:
            if inp.chunk_ref is None:
                raise _non_retryable(PayloadError("chunk input names neither a manifest nor a chunk"))
            return inp.chunk_ref
        try:
            refs = json.loads(_unwrap(self.codec.blobs.get(inp.manifest_ref))[1])
        except BlobNotFound as exc:
            raise _non_retryable(exc) from exc
        return str(refs[inp.index])

    @activity.defn(name="apex.ingest_chunk")
    async def ingest_chunk(self, inp: IngestChunkInput) -> IngestChunkResult:
        """Parse → enrich → saga for one chunk of units, as one batch; the records made are
        listed in a blob, the result carries counts and short samples."""
        connector = self._batch_source(inp.source)
        info = activity.info()
        owner = _owner()
        records: list[Record] = []
        failed: list[str] = []
        warnings: list[str] = []
        origins: dict[tuple[str, int], str] = {}

        def read() -> Sequence[InboundEvent]:
            # in a thread: fetching the chunk (a shared store downloads it) and parsing 500
            # units must neither stall the worker nor keep the heartbeats from going out
            ref = self._chunk_ref(inp)
            try:
                events = ChunkFile.model_validate_json(_unwrap(self.codec.blobs.get(ref))[1]).events
            except BlobNotFound as exc:
                raise _non_retryable(exc) from exc
            for event in events:
                try:
                    parsed = connector.parse(event)
                except MALFORMED_INPUT as exc:  # parse is pure: the unit's fault, never retried
                    failed.append(event.event_id)
                    metrics.UNPARSED.labels(inp.source).inc()
                    if len(warnings) < MAX_LISTED:
                        warnings.append(f"{event.event_id}: not ingested: {input_problem(exc)}"[:1000])
                    continue
                for record in parsed:
                    origins[(record.id, record.version)] = f"file:{event.event_id}"[:1000]
                records.extend(parsed)
            return events

        async with heartbeating():
            events = await asyncio.to_thread(read)
            records = await self._enrich(records)
            written = await self._write(records, batch_id=inp.batch_id)
            await self.inbox.record_lineage(
                [
                    Lineage(r.source, r.id, r.version, origins.get((r.id, r.version), f"file:{inp.file_name}"))
                    for r in records
                ],
                workflow_id=info.workflow_id,
                run_id=info.workflow_run_id,
            )
            refs = [RecordRef(id=r.id, kind=r.kind, deleted=r.deleted) for r in records]
            listing = _owned(owner, "listing", "".join(r.model_dump_json() + "\n" for r in refs).encode())
            listing_ref = await asyncio.to_thread(self.codec.blobs.put, listing) if refs else None
        metrics.record_quality(records)
        return IngestChunkResult(
            units=len(events),
            failed_units=tuple(failed[:MAX_LISTED]),
            failed_count=len(failed),
            records=tuple(refs[:MAX_LISTED]),
            record_count=len(refs),
            records_ref=listing_ref,
            warnings=tuple(warnings),
            write=written,
        )

    @activity.defn(name="apex.finish_file")
    async def finish_file(self, inp: FinishFileInput) -> str | None:
        """Join the record listings into the file's listing (written first), then drop the
        listing parts, the chunks' listings, the chunks and the manifest: no workflow needs
        them once every chunk is written. Only blobs naming this workflow are dropped
        (another file may hold the very same bytes as an older blob), and never the
        listings joined (`records_refs`: the workflow passes the file's listing, which
        `apex.checkpoint_file` joined): a retry after a crash part-way joins the same
        listing again, to the same reference, and drops what is left."""
        owner = _owner()

        def join() -> str | None:
            blobs = self.codec.blobs
            joined = None
            if inp.records_refs:
                joined = _put_joined(blobs, (_listing(blobs, ref) for ref in inp.records_refs))
            if inp.parts_ref is not None:
                _forget_parts(blobs, inp.parts_ref, keep=joined, owner=owner)
            try:
                manifest_owner, manifest = _unwrap(blobs.get(inp.manifest_ref))
            except BlobNotFound:  # dropped by an earlier attempt, after its chunks
                return joined
            if manifest_owner == owner:  # its chunks were written with it, naming this workflow
                for ref in json.loads(manifest):
                    if ref != joined:
                        blobs.delete(str(ref))
                blobs.delete(inp.manifest_ref)
            return joined

        async with heartbeating():
            return await asyncio.to_thread(join)

    @activity.defn(name="apex.checkpoint_file")
    async def checkpoint_file(self, inp: CheckpointFileInput) -> CheckpointFileResult:
        """Between two runs of a file ingested in several: this run's chunk listings become
        one listing part, appended to the list of parts. The last run (`final`) also joins
        every part, in order, into the file's listing: byte for byte the listing a single
        run writes. Deletes nothing, so a retry finds its inputs: `finish_file` drops the
        parts and the chunks' listings with the chunks."""
        workflow_id = activity.info().workflow_id

        def checkpoint() -> CheckpointFileResult:
            blobs = self.codec.blobs
            parts = _listing_parts(blobs, inp.parts_ref)
            parts_ref = inp.parts_ref
            if inp.records_refs:
                # the first line names the workflow and the listings: no other file's blob
                # is ever the same, so dropping it later touches nothing else
                header = {"apex_listing_part": workflow_id, "first_chunk": inp.first_chunk}
                header["listings"] = list(inp.records_refs)  # type: ignore[assignment]
                pieces = (_listing(blobs, ref) for ref in inp.records_refs)
                parts.append(_put_joined(blobs, itertools.chain([json.dumps(header).encode() + b"\n"], pieces)))
                # the list it replaces stays (a retry reads it); `finish_file` drops them all
                listed = {"apex_listing_parts": workflow_id, "parts": parts, "previous": inp.parts_ref}
                parts_ref = blobs.put(json.dumps(listed).encode())
            records_ref = None
            if inp.final and parts:
                records_ref = _put_joined(blobs, (_part(blobs, ref)[1] for ref in parts))
            return CheckpointFileResult(parts_ref=parts_ref, records_ref=records_ref)

        async with heartbeating():
            return await asyncio.to_thread(checkpoint)

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
