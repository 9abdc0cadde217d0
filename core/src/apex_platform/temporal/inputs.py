"""Workflow and activity inputs and results: one model each, so fields can be added
without breaking running workflows.  Pure data, safe to import from workflow code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from apex_platform.models import InboundEvent, Record, WriteResult


class _Partitioned(BaseModel):
    """A drain's partition fields, written only when the source has several drain loops:
    with one (the default) the payloads in Temporal's history are byte for byte those of
    the versions before partitions existed."""

    partition: int = 0
    partitions: int = 1

    @model_serializer(mode="wrap")
    def _without_one_partition(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.partitions == 1 and self.partition == 0 and isinstance(data, dict):
            data.pop("partition", None)
            data.pop("partitions", None)
        return data


class RecordBatch(BaseModel):
    """Records passed between activities, inline or (when large) by blob reference."""

    model_config = ConfigDict(frozen=True)

    source: str
    records: tuple[Record, ...] = ()
    ref: str | None = None
    count: int = 0
    record_ids: tuple[str, ...] = ()


class ActivityTimeouts(BaseModel):
    """Chosen by whoever starts the workflow (from settings): workflow code reads no env."""

    model_config = ConfigDict(frozen=True)

    start_to_close_seconds: float = 300.0
    heartbeat_seconds: float = 30.0


class IngestInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: InboundEvent
    timeouts: ActivityTimeouts = ActivityTimeouts()


class ParseInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: InboundEvent


class EnrichInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch: RecordBatch


class SagaWriteInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch: RecordBatch
    batch_id: str


class IngestResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    event_id: str
    records: int
    record_ids: tuple[str, ...]
    write: WriteResult


class IngestStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    records: int = 0
    error: str | None = None


#: page references per segment blob of a staged loop (the workflow keeps at most this many
#: page references itself, the rest by segment: ~7 KB of references per 100 pages)
STAGED_SEGMENT_PAGES = 100
#: the most pages one loop stages (1,000 segment references, ~71 KB across continue-as-new,
#: under the payload guard's 128 KiB): a longer loop is written up to here and goes on
#: staging from there (past this point it is no longer all-or-nothing)
MAX_STAGED_PAGES = 100_000


class StagedLoop(BaseModel):
    """A pagination loop of an all-or-nothing source (see `PollSource`): its pages are
    held in the blob store until the loop completes, then written page by page. Only
    references and counts: a loop of 10,000 pages is 100 segment references."""

    model_config = ConfigDict(frozen=True)

    #: unique per attempt of a loop (a restarted loop gets a new one): staged blobs of two
    #: attempts never share content, so deleting one attempt's blobs touches nothing else
    loop_id: str
    #: where reading goes on: the cursor after the last page staged
    cursor: str | None = None
    #: page blobs staged, in order: `segments` (each lists `STAGED_SEGMENT_PAGES` page
    #: references) and then `tail` (references of pages not yet folded into a segment)
    segments: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    pages: int = 0
    records: int = 0
    #: `has_more` was false (or `MAX_STAGED_PAGES` reached): the pages are being committed
    complete: bool = False
    #: `has_more` of the last page staged (true only for a loop cut at `MAX_STAGED_PAGES`)
    more: bool = False
    #: pages of a complete loop already written through the saga (in order)
    committed: int = 0
    #: when the last page was staged (workflow time, ISO) and how long a mid-loop cursor
    #: may wait before it is read from (older: the loop restarts from its first cursor)
    read_at: str | None = None
    max_age_seconds: float = 3600.0
    #: the vendor's Retry-After on the loop's last page (waited after the commit)
    retry_after: float | None = None


class PollInput(BaseModel):
    """Start (or continue-as-new) of a poller or stream reader for one source account."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    #: the cursor committed so far (every page before it is in every store)
    cursor: str | None = None
    #: the cursor the current pagination loop began with (restart point)
    loop_cursor: str | None = None
    interval_seconds: float = 300.0
    #: stop after one complete run (`apex-platform sources sync`)
    once: bool = False
    pages_before_continue: int = 200
    timeouts: ActivityTimeouts = ActivityTimeouts()
    # carried across continue-as-new for `sources list`
    pages: int = 0
    records: int = 0
    last_success: str | None = None
    #: a `sync_now` that arrived while the previous run continued-as-new
    sync_pending: bool = False
    #: the pagination loop being staged (a source with `atomic_pagination`), carried
    #: across continue-as-new: references and counts only, never the pages
    staged: StagedLoop | None = None


class StageRequest(BaseModel):
    """Sent with a page read by a workflow that can stage: stage the page (do not write
    it) if the source's pagination is all-or-nothing."""

    model_config = ConfigDict(frozen=True)

    loop_id: str
    #: the page's index in the loop (0: the loop's first page, read at its first cursor)
    index: int = 0
    #: an attempt that starts after this (ISO, UTC) must not read from the mid-loop cursor
    resume_by: str | None = None


class PollPageInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    cursor: str | None = None
    stage: StageRequest | None = None


class StagedPage(BaseModel):
    """One staged page, as stored in the blob store (never in Temporal)."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    loop_id: str
    index: int
    #: the cursor the page was read at (lineage origin and saga batch id, as unstaged pages)
    cursor: str | None = None
    records: tuple[Record, ...] = ()


class PollCommitInput(BaseModel):
    """Write one staged page through the saga: page `index` of the segment `segment_ref`,
    or the page `page_ref` (a page not folded into a segment)."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    segment_ref: str | None = None
    index: int = 0
    page_ref: str | None = None


class PollFoldInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    page_refs: tuple[str, ...]


class PollDiscardInput(BaseModel):
    """Delete staged blobs: every page of each segment and the segment, then `page_refs`."""

    model_config = ConfigDict(frozen=True)

    segment_refs: tuple[str, ...] = ()
    page_refs: tuple[str, ...] = ()


class PollPageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch: RecordBatch
    next_cursor: str | None = None
    has_more: bool = False
    retry_after: float | None = None


class PollState(BaseModel):
    """What `sources list` shows of a running poller or stream."""

    model_config = ConfigDict(frozen=True)

    source: str
    account: str
    cursor: str | None = None
    loop_cursor: str | None = None
    stage: str = "starting"
    pages: int = 0
    records: int = 0
    restarts: int = 0
    last_success: str | None = None
    last_error: str | None = None
    #: ids of the most recently committed records (at most 20), for operators and the demo
    recent_ids: tuple[str, ...] = ()
    #: pages of the loop being staged not yet written, and records of that loop
    #: (all-or-nothing sources: see `PollSource`)
    staged_pages: int = 0
    staged_records: int = 0
    #: staged pages thrown away in this run (restarts, stale mid-loop cursors), as `restarts`
    discarded_pages: int = 0


class AccumulateInput(BaseModel):
    """A per-source accumulator: webhook events arrive by signal and are ingested in batches."""

    model_config = ConfigDict(frozen=True)

    source: str
    max_batch: int = 500
    max_wait_seconds: float = 1.0
    batches_before_continue: int = 100
    pending: tuple[InboundEvent, ...] = ()
    recent_ids: tuple[str, ...] = ()
    timeouts: ActivityTimeouts = ActivityTimeouts()


class ParseManyInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    events: tuple[InboundEvent, ...]


class BatchFileInput(BaseModel):
    """One file of a batch source, stored once in the blob store."""

    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    file_ref: str
    chunk_size: int = 500
    parallel_chunks: int = 4
    timeouts: ActivityTimeouts = ActivityTimeouts()
    #: chunks one run ingests before it continues as new (fewer when Temporal suggests it
    #: sooner; at most 1,000): a run's history stays a few thousand events, whatever the
    #: file's size
    chunks_per_run: int = 500
    #: set by continue-as-new: where the previous run stopped (None: the first run)
    progress: BatchFileProgress | None = None


class SplitFileInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    file_ref: str
    chunk_size: int


class SplitFileResult(BaseModel):
    """Where the chunks are: one manifest blob listing them (never the units themselves)."""

    model_config = ConfigDict(frozen=True)

    chunk_refs: tuple[str, ...] = ()  # kept for histories written before manifests; empty now
    manifest_ref: str | None = None
    chunks: int = 0
    units: int = 0
    warnings: tuple[str, ...] = ()
    warnings_dropped: int = 0


class IngestChunkInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    chunk_ref: str | None = None
    batch_id: str
    manifest_ref: str | None = None
    index: int = 0


class RecordRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    deleted: bool = False


#: the most items of a list (warnings, failed units, record samples) a result carries inline
MAX_LISTED = 100


class IngestChunkResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    units: int = 0
    failed_units: tuple[str, ...] = ()
    failed_count: int = 0
    records: tuple[RecordRef, ...] = ()
    record_count: int = 0
    records_ref: str | None = None
    warnings: tuple[str, ...] = ()
    write: WriteResult = WriteResult()


class FinishFileInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    manifest_ref: str
    records_refs: tuple[str, ...] = ()
    #: listing parts of a file ingested in several runs, dropped with the chunks
    parts_ref: str | None = None


class BatchFileProgress(BaseModel):
    """What one run of a batch file hands the next (continue-as-new): the split's outcome,
    the next chunk to ingest and what the chunks before it made, bounded as the result is
    (counts, samples of at most `MAX_LISTED`, one reference to the record listings so far)."""

    model_config = ConfigDict(frozen=True)

    manifest_ref: str
    chunks: int
    units: int
    next_chunk: int = 0
    #: this run's number (the first run is 1)
    run: int = 1
    failed_units: tuple[str, ...] = ()
    failed_count: int = 0
    records: tuple[RecordRef, ...] = ()
    record_count: int = 0
    #: the split's warnings, then the chunks'
    warnings: tuple[str, ...] = ()
    written: int = 0
    skipped: int = 0
    #: a blob listing the listing parts written by earlier runs (`apex.checkpoint_file`)
    parts_ref: str | None = None


BatchFileInput.model_rebuild()  # its `progress` is defined after it


class CheckpointFileInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    #: the listing parts so far (None: none yet)
    parts_ref: str | None = None
    #: this run's chunk listings, in chunk order
    records_refs: tuple[str, ...] = ()
    first_chunk: int = 0
    #: also join every part into the file's listing (the last run)
    final: bool = False


class CheckpointFileResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    parts_ref: str | None = None
    #: `final` only: every record of the file, in chunk order (what one run would list)
    records_ref: str | None = None


class BatchFileResult(BaseModel):
    """What became of one file. `records` is a sample (at most `MAX_LISTED`); every record
    made is listed in the blob `records_ref` (one JSON `RecordRef` per line)."""

    model_config = ConfigDict(frozen=True)

    source: str
    file_name: str
    units: int = 0
    failed_units: tuple[str, ...] = ()
    failed_count: int = 0
    records: tuple[RecordRef, ...] = ()
    record_count: int = 0
    records_ref: str | None = None
    warnings: tuple[str, ...] = ()
    written: int = 0
    skipped: int = 0


class DrainInput(_Partitioned):
    """A source's drain loop over the inbox (started by every worker that has the source)."""

    model_config = ConfigDict(frozen=True)

    source: str
    max_count: int = 1000
    max_bytes: int = 8 * 1024 * 1024
    idle_wait_seconds: float = 20.0
    batches_before_continue: int = 500
    timeouts: ActivityTimeouts = ActivityTimeouts()
    # carried across continue-as-new, for operators
    deliveries: int = 0
    records: int = 0
    # and, from `_Partitioned`: this loop takes the rows of partition `partition` of
    # `partitions` (apex_platform.partitions)


class DrainBatchInput(_Partitioned):
    model_config = ConfigDict(frozen=True)

    source: str
    max_count: int
    max_bytes: int
    idle_wait_seconds: float


class DrainBatchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    deliveries: int = 0
    records: int = 0
    unparsed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    write: WriteResult = WriteResult()


class DrainState(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    stage: str = "starting"
    partition: int = 0
    partitions: int = 1
    batches: int = 0
    deliveries: int = 0
    records: int = 0
    last_seq: int | None = None
    last_batch_at: str | None = None


class PollIngestResult(BaseModel):
    """One page read, enriched and written in one activity: only the cursor and counts
    come back to the workflow (the page itself never enters Temporal)."""

    model_config = ConfigDict(frozen=True)

    next_cursor: str | None = None
    has_more: bool = False
    retry_after: float | None = None
    count: int = 0
    record_ids: tuple[str, ...] = ()
    write: WriteResult = WriteResult()
    #: the page was staged, not written (an all-or-nothing source asked to stage)
    staged_ref: str | None = None
    #: the source's limit on the age of a mid-loop cursor (with `staged_ref`)
    max_age_seconds: float | None = None


class PollCommitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    count: int = 0
    record_ids: tuple[str, ...] = ()
    write: WriteResult = WriteResult()
