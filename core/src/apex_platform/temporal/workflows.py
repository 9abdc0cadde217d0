"""Workflow definitions. Deterministic code only: no I/O, no clocks, no randomness;
everything that touches the world happens in activities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from apex_platform.models import WriteResult
    from apex_platform.temporal.client import RECORD_ID_ATTR, STATUS_ATTR
    from apex_platform.temporal.inputs import (
        ActivityTimeouts,
        EnrichInput,
        IngestInput,
        IngestResult,
        IngestStatus,
        ParseInput,
        RecordBatch,
        SagaWriteInput,
    )

# Errors that retrying cannot fix: the activity raises them as non-retryable.
NON_RETRYABLE = ["PayloadError", "PluginError", "BlobNotFound"]

#: the most record ids kept in the ApexRecordId search attribute of one workflow
MAX_RECORD_IDS_INDEXED = 50


def activity_retry() -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        non_retryable_error_types=NON_RETRYABLE,
    )


def activity_options(timeouts: ActivityTimeouts) -> dict[str, Any]:
    return {
        "start_to_close_timeout": timedelta(seconds=timeouts.start_to_close_seconds),
        "heartbeat_timeout": timedelta(seconds=timeouts.heartbeat_seconds),
        "retry_policy": activity_retry(),
    }


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
        batch: RecordBatch = await workflow.execute_activity(
            "apex.parse", ParseInput(event=inp.event), result_type=RecordBatch, **options
        )
        if batch.record_ids:
            workflow.upsert_search_attributes(
                [RECORD_ID_ATTR.value_set(list(batch.record_ids[:MAX_RECORD_IDS_INDEXED]))]
            )
        self._stage("enriching", batch.count)
        batch = await workflow.execute_activity(
            "apex.enrich", EnrichInput(batch=batch), result_type=RecordBatch, **options
        )
        self._stage("writing", batch.count)
        written: WriteResult = await workflow.execute_activity(
            "apex.saga_write",
            SagaWriteInput(batch=batch, batch_id=workflow.info().workflow_id),
            result_type=WriteResult,
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
