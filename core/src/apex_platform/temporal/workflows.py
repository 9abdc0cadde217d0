"""Workflow definitions. Deterministic code only: no I/O, no clocks, no randomness;
everything that touches the world happens in activities."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from apex_platform.models import InboundEvent, WriteResult
    from apex_platform.temporal.activities import IngestActivities
    from apex_platform.temporal.client import RECORD_ID_ATTR, STATUS_ATTR
    from apex_platform.temporal.inputs import (
        MAX_LISTED,
        MAX_STAGED_PAGES,
        STAGED_SEGMENT_PAGES,
        AccumulateInput,
        ActivityTimeouts,
        BatchFileInput,
        BatchFileProgress,
        BatchFileResult,
        CheckpointFileInput,
        CheckpointFileResult,
        DrainBatchInput,
        DrainBatchResult,
        DrainInput,
        DrainState,
        EnrichInput,
        FinishFileInput,
        IngestChunkInput,
        IngestChunkResult,
        IngestInput,
        IngestResult,
        IngestStatus,
        ParseInput,
        ParseManyInput,
        PollCommitInput,
        PollCommitResult,
        PollDiscardInput,
        PollFoldInput,
        PollIngestResult,
        PollInput,
        PollPageInput,
        PollPageResult,
        PollState,
        RecordBatch,
        SagaWriteInput,
        SplitFileInput,
        SplitFileResult,
        StagedLoop,
        StageRequest,
    )

# Errors that retrying cannot fix: the activity raises them as non-retryable.
NON_RETRYABLE = ["PayloadError", "PluginError", "BlobNotFound", "SettingsError", "RestartPagination"]

#: the most record ids kept in the ApexRecordId search attribute of one workflow
MAX_RECORD_IDS_INDEXED = 50


def activity_retry() -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        non_retryable_error_types=NON_RETRYABLE,
    )


def activity_options(timeouts: ActivityTimeouts, *, maximum_attempts: int = 0) -> dict[str, Any]:
    policy = activity_retry()
    if maximum_attempts:
        policy = RetryPolicy(
            initial_interval=policy.initial_interval,
            backoff_coefficient=policy.backoff_coefficient,
            maximum_interval=policy.maximum_interval,
            non_retryable_error_types=policy.non_retryable_error_types,
            maximum_attempts=maximum_attempts,
        )
    return {
        "start_to_close_timeout": timedelta(seconds=timeouts.start_to_close_seconds),
        "heartbeat_timeout": timedelta(seconds=timeouts.heartbeat_seconds),
        "retry_policy": policy,
    }


#: a workflow's history is cut (continue-as-new) well before Temporal's limits
MAX_HISTORY_EVENTS = 10_000

#: runs started before it never stage pages (`PollSource.atomic_pagination`)
ATOMIC_LOOP_PATCH = "apex-atomic-poll-loop"
#: segment references per `apex.poll_discard` call (~14 KB of references)
DISCARD_SEGMENTS = 200


def _history_is_long() -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY_EVENTS


def _cause_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


@workflow.defn(name="IngestWorkflow")
class IngestWorkflow:
    """One accepted event: parse (connector) → enrich (enrichers) → saga write (sinks)."""

    def __init__(self) -> None:
        self._status = IngestStatus(stage="accepted")

    @workflow.query
    def status(self) -> IngestStatus:
        return self._status

    def _stage(self, stage: str, records: int = 0) -> None:
        self._status = IngestStatus(stage=stage, records=records)
        workflow.upsert_search_attributes([STATUS_ATTR.value_set(stage)])

    @workflow.run
    async def run(self, inp: IngestInput) -> IngestResult:
        options = activity_options(inp.timeouts)
        self._stage("parsing")
        batch: RecordBatch = await workflow.execute_activity_method(
            IngestActivities.parse, ParseInput(event=inp.event), **options
        )
        if batch.record_ids:
            workflow.upsert_search_attributes(
                [RECORD_ID_ATTR.value_set(list(batch.record_ids[:MAX_RECORD_IDS_INDEXED]))]
            )
        self._stage("enriching", batch.count)
        batch = await workflow.execute_activity_method(IngestActivities.enrich, EnrichInput(batch=batch), **options)
        self._stage("writing", batch.count)
        written: WriteResult = await workflow.execute_activity_method(
            IngestActivities.saga_write,
            SagaWriteInput(batch=batch, batch_id=workflow.info().workflow_id),
            **options,
        )
        self._stage("completed", batch.count)
        return IngestResult(
            source=inp.event.source,
            event_id=inp.event.event_id,
            records=batch.count,
            record_ids=batch.record_ids,
            write=written,
        )


class _CursorLoop:
    """Shared by `PollWorkflow` and `StreamWorkflow`: read a page, write it through the
    saga as one batch, and only then advance the cursor (kept in workflow state).

    A source whose pagination loops are all-or-nothing (`PollSource.atomic_pagination`)
    has the pages of a loop of several pages staged in the blob store instead; once the
    loop completes (`has_more` false) they are written page by page (`apex.poll_commit`),
    and only then does the cursor move. A restart (or a mid-loop cursor that waited
    longer than the source allows) discards the staged pages and reads the loop again
    from its first cursor. The workflow holds references and counts only (`StagedLoop`)."""

    def __init__(self) -> None:
        self._state = PollState(source="", account="")
        self._sync = False
        self._stop = False
        self._staged: StagedLoop | None = None
        self._timeouts = ActivityTimeouts()

    @workflow.signal
    def sync_now(self) -> None:
        """Read now instead of waiting for the interval (e.g. Plaid's SYNC_UPDATES_AVAILABLE)."""
        self._sync = True

    @workflow.signal
    def stop(self) -> None:
        """Finish the page in hand, then end the workflow (a staged loop not yet written
        is discarded: the cursor stays where every store has every page before it)."""
        self._stop = True

    @workflow.query
    def state(self) -> PollState:
        return self._state

    def _set(self, **changes: Any) -> None:
        self._state = self._state.model_copy(update=changes)

    async def _loop(self, inp: PollInput) -> PollState:
        self._state = PollState(
            source=inp.source,
            account=inp.account,
            cursor=inp.cursor,
            loop_cursor=inp.loop_cursor if inp.loop_cursor is not None else inp.cursor,
            pages=inp.pages,
            records=inp.records,
            last_success=inp.last_success,
        )
        self._sync = self._sync or inp.sync_pending
        self._staged = inp.staged
        self._timeouts = inp.timeouts
        if inp.staged is not None:
            self._set(
                staged_pages=inp.staged.pages - inp.staged.committed,
                staged_records=inp.staged.records,
            )
        write_opts = activity_options(inp.timeouts)
        poll_opts = activity_options(inp.timeouts, maximum_attempts=8)
        pages_this_run = 0  # activities of pages: read, staged or committed
        while not self._stop:
            staged = self._staged
            if staged is not None and staged.complete:
                if staged.committed < staged.pages:
                    await self._commit_next(inp, staged, write_opts)
                    pages_this_run += 1
                elif await self._loop_committed(staged):
                    if inp.once:
                        break
                    await self._wait(max(inp.interval_seconds, staged.retry_after or 0.0))
                if not self._stop and (pages_this_run >= inp.pages_before_continue or _history_is_long()):
                    self._continue(inp)
                continue
            if staged is not None and self._stale(staged):
                await self._void_staged(
                    f"the loop's mid-loop cursor waited longer than {staged.max_age_seconds:g} s: "
                    "the loop restarts from its first cursor"
                )
                continue
            s = self._state
            self._set(stage="reading")
            request: StageRequest | None = None
            try:
                if workflow.patched("apex-page-in-one-activity"):
                    # read, enrich and write in one activity: the page never enters Temporal
                    if workflow.patched(ATOMIC_LOOP_PATCH):
                        request = self._stage_request()
                    page = await workflow.execute_activity_method(
                        IngestActivities.poll_ingest,
                        PollPageInput(
                            source=inp.source,
                            account=inp.account,
                            cursor=staged.cursor if staged is not None else s.cursor,
                            stage=request,
                        ),
                        **poll_opts,
                    )
                else:
                    page = await self._page_then_write(inp, s.cursor, poll_opts, write_opts)
            except ActivityError as err:
                if _cause_type(err) in ("RestartPagination", "StaleLoopCursor"):
                    # the pages since the loop began are void: start again from its first cursor
                    await self._void_staged()
                    continue
                self._set(last_error=str(err.cause or err), stage="waiting after error")
                await self._wait(inp.interval_seconds)
                if _history_is_long():
                    self._continue(inp)
                continue
            if page.staged_ref is not None or self._staged is not None:
                await self._add_staged(page, request, s.cursor, write_opts)
                pages_this_run += 1
                if page.has_more and page.retry_after:
                    await workflow.sleep(timedelta(seconds=page.retry_after))
                if not self._stop and (pages_this_run >= inp.pages_before_continue or _history_is_long()):
                    self._continue(inp)
                continue
            # the saga acknowledged the page: only now does the cursor move
            cursor = page.next_cursor if page.next_cursor is not None else s.cursor
            self._set(
                cursor=cursor,
                pages=s.pages + 1,
                records=s.records + page.count,
                recent_ids=(s.recent_ids + page.record_ids)[-20:],
                last_success=workflow.now().isoformat(timespec="seconds"),
                last_error=None,
            )
            pages_this_run += 1
            if not page.has_more:
                self._set(loop_cursor=cursor)  # a complete run: a stable restart point
                if inp.once:
                    break
                await self._wait(max(inp.interval_seconds, page.retry_after or 0.0))
            elif page.retry_after:
                await workflow.sleep(timedelta(seconds=page.retry_after))
            if not self._stop and (pages_this_run >= inp.pages_before_continue or _history_is_long()):
                self._continue(inp)
        if self._staged is not None:  # stopped with a loop staged: nothing of it is written
            await self._discard(self._staged)
            self._staged = None
            self._set(staged_pages=0, staged_records=0)
        self._set(stage="stopped" if self._stop else "done")
        return self._state

    # -- all-or-nothing loops ---------------------------------------------------------------

    def _stage_request(self) -> StageRequest:
        staged = self._staged
        if staged is None:  # a loop begins: its id keeps its blobs apart from every other's
            return StageRequest(loop_id=str(workflow.uuid4()))
        return StageRequest(loop_id=staged.loop_id, index=staged.pages, resume_by=self._resume_by(staged))

    @staticmethod
    def _resume_by(staged: StagedLoop) -> str | None:
        if staged.read_at is None:
            return None
        deadline = datetime.fromisoformat(staged.read_at) + timedelta(seconds=staged.max_age_seconds)
        return deadline.isoformat()

    def _stale(self, staged: StagedLoop) -> bool:
        resume_by = self._resume_by(staged)
        return resume_by is not None and workflow.now() > datetime.fromisoformat(resume_by)

    async def _add_staged(
        self,
        page: PollIngestResult,
        request: StageRequest | None,
        committed: str | None,
        write_opts: dict[str, Any],
    ) -> None:
        """Keep the reference of a page just staged (folding every `STAGED_SEGMENT_PAGES`
        references into one segment blob); the loop is complete when `has_more` is false."""
        staged = self._staged
        if staged is None:  # the loop's first page (staged only when a request was sent)
            loop_id = request.loop_id if request is not None else str(workflow.uuid4())
            staged = StagedLoop(loop_id=loop_id, cursor=committed)
        tail, segments = staged.tail, staged.segments
        pages, records = staged.pages, staged.records
        if page.staged_ref is not None:
            tail, pages, records = (*tail, page.staged_ref), pages + 1, records + page.count
        else:  # written at once by a worker that cannot stage (a rolling upgrade)
            s = self._state
            self._set(pages=s.pages + 1, records=s.records + page.count)
        if len(tail) >= STAGED_SEGMENT_PAGES:
            self._set(stage="staging")
            segment: str = await workflow.execute_activity_method(
                IngestActivities.poll_fold, PollFoldInput(page_refs=tail), **write_opts
            )
            segments, tail = (*segments, segment), ()
        self._staged = staged.model_copy(
            update={
                "cursor": page.next_cursor if page.next_cursor is not None else staged.cursor,
                "segments": segments,
                "tail": tail,
                "pages": pages,
                "records": records,
                "complete": not page.has_more or pages >= MAX_STAGED_PAGES,
                "more": page.has_more,
                "read_at": workflow.now().isoformat(),
                "max_age_seconds": page.max_age_seconds or staged.max_age_seconds,
                "retry_after": page.retry_after,
            }
        )
        self._set(staged_pages=pages, staged_records=records, last_error=None)

    async def _commit_next(self, inp: PollInput, staged: StagedLoop, write_opts: dict[str, Any]) -> None:
        """Write the next staged page of a complete loop through the saga."""
        index = staged.committed
        folded = len(staged.segments) * STAGED_SEGMENT_PAGES
        if index < folded:
            where = PollCommitInput(
                source=inp.source,
                account=inp.account,
                segment_ref=staged.segments[index // STAGED_SEGMENT_PAGES],
                index=index % STAGED_SEGMENT_PAGES,
            )
        else:
            where = PollCommitInput(source=inp.source, account=inp.account, page_ref=staged.tail[index - folded])
        self._set(stage="committing")
        try:
            done: PollCommitResult = await workflow.execute_activity_method(
                IngestActivities.poll_commit, where, **write_opts
            )
        except ActivityError as err:
            if _cause_type(err) in ("BlobNotFound", "PayloadError"):
                # a staged page is gone: the loop is read again from its first cursor
                await self._void_staged(f"a staged page is missing ({err.cause}): the loop restarts")
                return
            self._set(last_error=str(err.cause or err), stage="waiting after error")
            await self._wait(inp.interval_seconds)
            return
        self._staged = staged.model_copy(update={"committed": index + 1})
        s = self._state
        self._set(
            pages=s.pages + 1,
            records=s.records + done.count,
            recent_ids=(s.recent_ids + done.record_ids)[-20:],
            last_success=workflow.now().isoformat(timespec="seconds"),
            last_error=None,
            staged_pages=staged.pages - index - 1,
        )

    async def _loop_committed(self, staged: StagedLoop) -> bool:
        """Every page of the loop is in every store: only now does the cursor move. False:
        the loop was cut at `MAX_STAGED_PAGES` and goes on (its first cursor stays the
        restart point)."""
        self._staged = None
        if staged.more:
            self._set(
                cursor=staged.cursor,
                staged_pages=0,
                staged_records=0,
                last_error=f"a loop of more than {MAX_STAGED_PAGES} pages: written up to there, not all-or-nothing",
            )
        else:
            self._set(cursor=staged.cursor, loop_cursor=staged.cursor, staged_pages=0, staged_records=0)
        await self._discard(staged)
        return not staged.more

    async def _void_staged(self, reason: str | None = None) -> None:
        """The loop is void: its staged pages are deleted, reading starts again at its first cursor."""
        s = self._state
        staged, self._staged = self._staged, None
        changes: dict[str, Any] = {"cursor": s.loop_cursor, "restarts": s.restarts + 1, "stage": "restarting"}
        if staged is not None:
            changes.update(staged_pages=0, staged_records=0, discarded_pages=s.discarded_pages + staged.pages)
        if reason is not None:
            changes["last_error"] = reason
        self._set(**changes)
        if staged is not None:
            await self._discard(staged)

    async def _discard(self, staged: StagedLoop) -> None:
        """Delete a staged loop's blobs (best effort: what is left is garbage-collected)."""
        opts = activity_options(self._timeouts, maximum_attempts=3)
        segments = staged.segments
        for start in range(0, max(1, len(segments)), DISCARD_SEGMENTS):
            part = segments[start : start + DISCARD_SEGMENTS]
            loose = staged.tail if start == 0 else ()
            if not part and not loose:
                continue
            with contextlib.suppress(ActivityError):
                await workflow.execute_activity_method(
                    IngestActivities.poll_discard,
                    PollDiscardInput(segment_refs=part, page_refs=loose),
                    **opts,
                )

    def _continue(self, inp: PollInput) -> None:
        s = self._state
        workflow.continue_as_new(
            inp.model_copy(
                update={
                    "cursor": s.cursor,
                    "loop_cursor": s.loop_cursor,
                    "pages": s.pages,
                    "records": s.records,
                    "last_success": s.last_success,
                    # a sync asked for while this run ended is not lost
                    "sync_pending": self._sync,
                    # the loop being staged goes on in the next run (references only)
                    "staged": self._staged,
                }
            )
        )

    async def _page_then_write(
        self, inp: PollInput, cursor: str | None, poll_opts: dict[str, Any], write_opts: dict[str, Any]
    ) -> PollIngestResult:
        """The path of runs started before `apex-page-in-one-activity` (kept for replay)."""
        page: PollPageResult = await workflow.execute_activity_method(
            IngestActivities.poll_page,
            PollPageInput(source=inp.source, account=inp.account, cursor=cursor),
            **poll_opts,
        )
        batch = page.batch
        written = WriteResult()
        if batch.count:
            self._set(stage="writing")
            batch = await workflow.execute_activity_method(
                IngestActivities.enrich, EnrichInput(batch=batch), **write_opts
            )
            written = await workflow.execute_activity_method(
                IngestActivities.saga_write,
                SagaWriteInput(batch=batch, batch_id=f"{workflow.info().workflow_id}@{cursor}"),
                **write_opts,
            )
        return PollIngestResult(
            next_cursor=page.next_cursor,
            has_more=page.has_more,
            retry_after=page.retry_after,
            count=batch.count,
            record_ids=batch.record_ids,
            write=written,
        )

    async def _wait(self, seconds: float) -> None:
        self._set(stage="waiting")
        self._sync = False
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: self._sync or self._stop, timeout=timedelta(seconds=seconds))


@workflow.defn(name="PollWorkflow")
class PollWorkflow(_CursorLoop):
    """One poller per source account (Plaid item, HubSpot portal, QuickBooks realm…)."""

    @workflow.run
    async def run(self, inp: PollInput) -> PollState:
        return await self._loop(inp)


@workflow.defn(name="StreamWorkflow")
class StreamWorkflow(_CursorLoop):
    """A long-running feed reader (Samsara's vehicle stats feed): pages as batches, a
    short wait when the feed is drained, continue-as-new before history grows."""

    @workflow.run
    async def run(self, inp: PollInput) -> PollState:
        return await self._loop(inp)


@workflow.defn(name="AccumulatorWorkflow")
class AccumulatorWorkflow:
    """Collects a high-rate source's webhook events (sent by signal-with-start) and
    ingests them in batches: one parse, one enrich, one saga write per batch instead of
    one workflow per event. Event ids seen recently are dropped as duplicates."""

    def __init__(self) -> None:
        self._pending: list[InboundEvent] = []
        self._seen: dict[str, None] = {}
        self._batches = 0

    @workflow.signal
    def add(self, event: InboundEvent) -> None:
        if event.event_id in self._seen:
            return
        self._seen[event.event_id] = None
        self._pending.append(event)

    @workflow.signal
    def add_many(self, events: list[InboundEvent]) -> None:
        """A group commit from the API: several deliveries in one signal."""
        for event in events:
            self.add(event)

    @workflow.query
    def pending(self) -> int:
        return len(self._pending)

    @workflow.run
    async def run(self, inp: AccumulateInput) -> None:
        for event_id in inp.recent_ids:
            self._seen.setdefault(event_id, None)
        self._pending = list(inp.pending) + self._pending
        opts = activity_options(inp.timeouts)
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: len(self._pending) >= inp.max_batch, timeout=timedelta(seconds=inp.max_wait_seconds)
                )
            take, self._pending = self._pending[: inp.max_batch], self._pending[inp.max_batch :]
            batch: RecordBatch = await workflow.execute_activity_method(
                IngestActivities.parse_many,
                ParseManyInput(source=inp.source, events=tuple(take)),
                **opts,
            )
            if batch.count:
                batch = await workflow.execute_activity_method(
                    IngestActivities.enrich, EnrichInput(batch=batch), **opts
                )
                await workflow.execute_activity_method(
                    IngestActivities.saga_write,
                    SagaWriteInput(batch=batch, batch_id=f"{workflow.info().workflow_id}@{take[0].event_id}"),
                    **opts,
                )
            self._batches += 1
            if self._batches >= inp.batches_before_continue or _history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                recent = list(self._seen)[-5000:]
                workflow.continue_as_new(
                    inp.model_copy(update={"pending": tuple(self._pending), "recent_ids": tuple(recent)})
                )


#: runs started before it ingest every chunk in one run; with it, in runs of at most
#: `chunks_per_run` chunks joined by continue-as-new
BATCH_RUNS_PATCH = "apex-batch-file-runs"
#: the most chunks a run ingests, whatever `chunks_per_run` asks: the references a run's
#: last activity carries (one per chunk, ~75 bytes) stay far below the payload guard's limit
MAX_CHUNKS_PER_RUN = 1000
#: runs started before it finish a file ingested in one run by `apex.finish_file` alone,
#: which joined the chunks' listings and dropped them (a retry after a crash part-way
#: could not join them again); with it, the run joins them by `apex.checkpoint_file`
#: first, as the last of several runs does, and `apex.finish_file` drops what is joined
FINISH_AFTER_CHECKPOINT_PATCH = "apex-batch-file-finish-after-checkpoint"


def _fold(s: BatchFileProgress, results: Sequence[IngestChunkResult]) -> BatchFileProgress:
    """`s` after `results` (the next chunks, in order): what one run would have summed."""

    def first(items: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(itertools.islice(items, MAX_LISTED))

    return s.model_copy(
        update={
            "next_chunk": s.next_chunk + len(results),
            "failed_units": first(itertools.chain(s.failed_units, *(r.failed_units for r in results))),
            "failed_count": s.failed_count + sum(r.failed_count for r in results),
            "records": first(itertools.chain(s.records, *(r.records for r in results))),
            "record_count": s.record_count + sum(r.record_count for r in results),
            "warnings": first(itertools.chain(s.warnings, *(r.warnings for r in results))),
            "written": s.written + sum(r.write.written for r in results),
            "skipped": s.skipped + sum(r.write.skipped for r in results),
        }
    )


@workflow.defn(name="BatchFileWorkflow")
class BatchFileWorkflow:
    """One workflow per file (id from the file's content hash, so the same file twice is
    one ingest). The file is split into units (X12 transaction sets) in chunks; chunks
    are ingested by parallel activities, each parse → enrich → saga as one batch. A unit
    that does not parse is reported, and the others go on.

    A run ingests at most `chunks_per_run` chunks, and starts none once its history is
    long, then continues as new carrying its progress only (`BatchFileProgress`: counts,
    bounded samples, the next chunk, references): every run's history stays short
    whatever the file's size, and the last run returns what a single run would have."""

    def __init__(self) -> None:
        self._done_chunks = 0
        self._chunks = 0

    @workflow.query
    def progress(self) -> tuple[int, int]:
        """(chunks done, chunks in all), over every run so far."""
        return (self._done_chunks, self._chunks)

    @workflow.run
    async def run(self, inp: BatchFileInput) -> BatchFileResult:
        opts = activity_options(inp.timeouts)
        if inp.progress is not None:  # a continuation: the file is split already
            return await self._in_runs(inp, inp.progress, opts)
        in_runs = workflow.patched(BATCH_RUNS_PATCH)
        split: SplitFileResult = await workflow.execute_activity_method(
            IngestActivities.split_file,
            SplitFileInput(
                source=inp.source, file_name=inp.file_name, file_ref=inp.file_ref, chunk_size=inp.chunk_size
            ),
            **opts,
        )
        if not in_runs or split.manifest_ref is None:
            return await self._in_one_run(inp, split, opts)
        progress = BatchFileProgress(
            manifest_ref=split.manifest_ref, chunks=split.chunks, units=split.units, warnings=split.warnings
        )
        return await self._in_runs(inp, progress, opts)

    async def _in_runs(self, inp: BatchFileInput, s: BatchFileProgress, opts: dict[str, Any]) -> BatchFileResult:
        self._chunks, self._done_chunks = s.chunks, s.next_chunk
        first = s.next_chunk
        results = await self._window(inp, s, opts)
        s = _fold(s, results)
        refs = tuple(r.records_ref for r in results if r.records_ref)
        if s.next_chunk < s.chunks:
            parts_ref = s.parts_ref
            if refs:  # this run's listings become one part (the chunks' listings stay until the end)
                checkpoint: CheckpointFileResult = await workflow.execute_activity_method(
                    IngestActivities.checkpoint_file,
                    CheckpointFileInput(
                        source=inp.source,
                        file_name=inp.file_name,
                        parts_ref=s.parts_ref,
                        records_refs=refs,
                        first_chunk=first,
                    ),
                    **opts,
                )
                parts_ref = checkpoint.parts_ref
            workflow.continue_as_new(
                inp.model_copy(update={"progress": s.model_copy(update={"parts_ref": parts_ref, "run": s.run + 1})})
            )
        parts_ref = None
        # earlier runs listed records (or this one did): join every part, in order
        if s.parts_ref is not None or (bool(refs) and workflow.patched(FINISH_AFTER_CHECKPOINT_PATCH)):
            final: CheckpointFileResult = await workflow.execute_activity_method(
                IngestActivities.checkpoint_file,
                CheckpointFileInput(
                    source=inp.source,
                    file_name=inp.file_name,
                    parts_ref=s.parts_ref,
                    records_refs=refs,
                    first_chunk=first,
                    final=True,
                ),
                **opts,
            )
            refs = (final.records_ref,) if final.records_ref else ()
            parts_ref = final.parts_ref
        records_ref = await workflow.execute_activity_method(
            IngestActivities.finish_file,
            FinishFileInput(
                source=inp.source,
                file_name=inp.file_name,
                manifest_ref=s.manifest_ref,
                records_refs=refs,
                parts_ref=parts_ref,
            ),
            **opts,
        )
        return BatchFileResult(
            source=inp.source,
            file_name=inp.file_name,
            units=s.units,
            failed_units=s.failed_units,
            failed_count=s.failed_count,
            records=s.records,
            record_count=s.record_count,
            records_ref=records_ref,
            warnings=s.warnings,
            written=s.written,
            skipped=s.skipped,
        )

    async def _window(self, inp: BatchFileInput, s: BatchFileProgress, opts: dict[str, Any]) -> list[IngestChunkResult]:
        """Ingest the chunks from `s.next_chunk` on: at most `chunks_per_run`, and none
        started once the history is long (at least one, so every run advances). The
        results of the chunks ingested, in order (a run's chunks are always contiguous:
        they take the semaphore in index order)."""
        start = s.next_chunk
        cut = min(s.chunks, start + max(1, min(inp.chunks_per_run, MAX_CHUNKS_PER_RUN)))
        semaphore = asyncio.Semaphore(max(1, inp.parallel_chunks))
        wf_id = workflow.info().workflow_id

        async def one(index: int) -> IngestChunkResult | None:
            nonlocal cut
            async with semaphore:
                if index >= cut:
                    return None
                if index > start and _history_is_long():
                    cut = index
                    return None
                result: IngestChunkResult = await workflow.execute_activity_method(
                    IngestActivities.ingest_chunk,
                    IngestChunkInput(
                        source=inp.source,
                        file_name=inp.file_name,
                        manifest_ref=s.manifest_ref,
                        index=index,
                        batch_id=f"{wf_id}#{index}",
                    ),
                    **opts,
                )
                self._done_chunks += 1
                return result

        results = await asyncio.gather(*(one(i) for i in range(start, cut)))
        return [r for r in results if r is not None]

    async def _in_one_run(self, inp: BatchFileInput, split: SplitFileResult, opts: dict[str, Any]) -> BatchFileResult:
        """Every chunk in this run: runs started before `BATCH_RUNS_PATCH` (kept for replay)."""
        # runs started before manifests got the chunk references themselves: same commands
        legacy = split.chunk_refs if split.manifest_ref is None else ()
        self._chunks = len(legacy) if legacy else split.chunks
        semaphore = asyncio.Semaphore(max(1, inp.parallel_chunks))
        wf_id = workflow.info().workflow_id

        async def one(index: int) -> IngestChunkResult:
            async with semaphore:
                result: IngestChunkResult = await workflow.execute_activity_method(
                    IngestActivities.ingest_chunk,
                    IngestChunkInput(
                        source=inp.source,
                        file_name=inp.file_name,
                        manifest_ref=split.manifest_ref,
                        chunk_ref=legacy[index] if legacy else None,
                        index=index,
                        batch_id=f"{wf_id}#{index}",
                    ),
                    **opts,
                )
                self._done_chunks += 1
                return result

        results = await asyncio.gather(*(one(i) for i in range(self._chunks)))
        records_ref = None
        if split.manifest_ref is not None:
            records_ref = await workflow.execute_activity_method(
                IngestActivities.finish_file,
                FinishFileInput(
                    source=inp.source,
                    file_name=inp.file_name,
                    manifest_ref=split.manifest_ref,
                    records_refs=tuple(r.records_ref for r in results if r.records_ref),
                ),
                **opts,
            )
        warnings = split.warnings + tuple(w for r in results for w in r.warnings)
        return BatchFileResult(
            source=inp.source,
            file_name=inp.file_name,
            units=split.units,
            failed_units=tuple(u for r in results for u in r.failed_units)[:MAX_LISTED],
            failed_count=sum(r.failed_count for r in results),
            records=tuple(rec for r in results for rec in r.records)[:MAX_LISTED],
            record_count=sum(r.record_count for r in results),
            records_ref=records_ref,
            warnings=warnings[:MAX_LISTED],
            written=sum(r.write.written for r in results),
            skipped=sum(r.write.skipped for r in results),
        )


@workflow.defn(name="DrainWorkflow")
class DrainWorkflow:
    """A source's drain loop over the inbox (or over one partition of it, when a source
    has several loops: `apex_platform.partitions`): one activity per batch of pending
    deliveries (bounded by count and bytes). The activity waits for new rows itself
    (woken by PostgreSQL notifications), so an idle loop adds a few history events per
    `idle_wait_seconds`, a busy one a few per batch, and a batch waiting on a slow store
    adds none: it is one activity being retried. Continue-as-new keeps history short."""

    def __init__(self) -> None:
        self._state = DrainState(source="")

    @workflow.query
    def state(self) -> DrainState:
        return self._state

    @workflow.run
    async def run(self, inp: DrainInput) -> None:
        self._state = DrainState(
            source=inp.source,
            partition=inp.partition,
            partitions=inp.partitions,
            deliveries=inp.deliveries,
            records=inp.records,
        )
        opts = activity_options(inp.timeouts)
        opts["retry_policy"] = RetryPolicy(
            initial_interval=timedelta(seconds=0.5),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
        )
        batches = 0
        while True:
            self._state = self._state.model_copy(update={"stage": "draining"})
            result: DrainBatchResult = await workflow.execute_activity_method(
                IngestActivities.drain_inbox,
                DrainBatchInput(
                    source=inp.source,
                    max_count=inp.max_count,
                    max_bytes=inp.max_bytes,
                    idle_wait_seconds=inp.idle_wait_seconds,
                    partition=inp.partition,
                    partitions=inp.partitions,
                ),
                **opts,
            )
            batches += 1
            s = self._state
            self._state = s.model_copy(
                update={
                    "batches": s.batches + 1,
                    "deliveries": s.deliveries + result.deliveries,
                    "records": s.records + result.records,
                    "last_seq": result.last_seq if result.last_seq is not None else s.last_seq,
                    "last_batch_at": workflow.now().isoformat(timespec="seconds")
                    if result.deliveries
                    else s.last_batch_at,
                }
            )
            if batches >= inp.batches_before_continue or _history_is_long():
                s = self._state
                workflow.continue_as_new(inp.model_copy(update={"deliveries": s.deliveries, "records": s.records}))
