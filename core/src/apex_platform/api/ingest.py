"""Starting the ingest workflow for an accepted event: the edge's durability contract.

202 only after Temporal persisted the start; 200 "duplicate" when the workflow id
(`apex:{source}:{event id}`) exists already; 503 + Retry-After when Temporal cannot
be reached, so the vendor retries instead of losing the event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from typing import Any

from litestar import Response
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from apex_platform import metrics
from apex_platform.api.errors import problem
from apex_platform.api.group_commit import GroupCommit
from apex_platform.contracts import PollTrigger, SourceConnector
from apex_platform.models import InboundEvent
from apex_platform.runtime import Runtime
from apex_platform.temporal.client import SOURCE_ATTR, STATUS_ATTR, task_queue
from apex_platform.temporal.inputs import AccumulateInput, ActivityTimeouts, IngestInput
from apex_platform.temporal.workflows import AccumulatorWorkflow, IngestWorkflow

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
}


def workflow_id(source: str, event_id: str) -> str:
    return f"apex:{source}:{event_id}"


def spill_large_payload(runtime: Runtime, event: InboundEvent, raw: bytes) -> InboundEvent:
    """Bodies over the inline limit go to the blob store once; the workflow gets the ref."""
    if len(raw) <= runtime.core.inline_payload_bytes:
        return event
    import json

    ref = runtime.codec.blobs.put(json.dumps(event.payload, separators=(",", ":")).encode())
    return event.model_copy(update={"payload": None, "payload_ref": ref})


def accumulator_id(source: str, event_id: str, shards: int) -> str:
    shard = int(hashlib.sha256(event_id.encode()).hexdigest(), 16) % max(1, shards)
    return f"apex:acc:{source}:{shard}"


async def start_ingest(
    runtime: Runtime, connector: SourceConnector, event: InboundEvent, raw: bytes
) -> Response[dict[str, Any]]:
    source = connector.name
    wf_id = workflow_id(source, event.event_id)
    event = spill_large_payload(runtime, event, raw)
    timeouts = ActivityTimeouts(
        start_to_close_seconds=runtime.temporal.activity_timeout_seconds,
        heartbeat_seconds=runtime.temporal.activity_heartbeat_seconds,
    )
    if getattr(connector, "batch_webhooks", False):
        return await _accumulate(runtime, connector, event, timeouts, len(raw))
    try:
        client: Client = await asyncio.wait_for(runtime.connect(lazy=True), timeout=10)
        await client.start_workflow(
            IngestWorkflow.run,
            IngestInput(event=event, timeouts=timeouts),
            id=wf_id,
            task_queue=task_queue(connector.priority, runtime.temporal),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SOURCE_ATTR, source), SearchAttributePair(STATUS_ATTR, "accepted")]
            ),
            rpc_timeout=timedelta(seconds=10),
        )
    except WorkflowAlreadyStartedError:
        metrics.WEBHOOKS.labels(source, "duplicate").inc()
        return Response({"status": "duplicate", "workflow_id": wf_id}, status_code=200)
    except RPCError as exc:
        if exc.status not in _UNAVAILABLE:
            raise
        return _unavailable(source, wf_id, exc)
    except (RuntimeError, OSError, TimeoutError) as exc:
        # The lazy client raises RuntimeError when it cannot connect at all.
        return _unavailable(source, wf_id, exc)
    metrics.WEBHOOKS.labels(source, "accepted").inc()
    return Response({"status": "accepted", "workflow_id": wf_id}, status_code=202)


def _group_commit(runtime: Runtime, connector: SourceConnector, acc_id: str, timeouts: ActivityTimeouts) -> GroupCommit:
    commits: dict[str, GroupCommit] = runtime.edge.setdefault("group_commits", {})
    if acc_id not in commits:
        inp = AccumulateInput(
            source=connector.name,
            max_batch=runtime.core.accumulator_max_batch,
            max_wait_seconds=runtime.core.accumulator_max_wait_seconds,
            timeouts=timeouts,
        )

        async def send(events: list[InboundEvent]) -> None:
            client: Client = await asyncio.wait_for(runtime.connect(lazy=True), timeout=10)
            await client.start_workflow(
                AccumulatorWorkflow.run,
                inp,
                id=acc_id,
                task_queue=task_queue(connector.priority, runtime.temporal),
                start_signal="add_many",
                start_signal_args=[events],
                search_attributes=TypedSearchAttributes([SearchAttributePair(SOURCE_ATTR, connector.name)]),
                rpc_timeout=timedelta(seconds=10),
            )

        commits[acc_id] = GroupCommit(
            send,
            max_events=runtime.core.accumulator_group_events,
            linger_seconds=runtime.core.accumulator_linger_seconds,
        )
    return commits[acc_id]


async def _accumulate(
    runtime: Runtime, connector: SourceConnector, event: InboundEvent, timeouts: ActivityTimeouts, size: int
) -> Response[dict[str, Any]]:
    """High-rate sources: the event joins a group commit into the source's accumulator
    workflow; 202 once Temporal persisted the signal that carries it."""
    source = connector.name
    acc_id = accumulator_id(source, event.event_id, runtime.core.accumulator_shards)
    try:
        await _group_commit(runtime, connector, acc_id, timeouts).submit(event, size)
    except RPCError as exc:
        if exc.status not in _UNAVAILABLE:
            raise
        return _unavailable(source, acc_id, exc)
    except (RuntimeError, OSError, TimeoutError) as exc:
        return _unavailable(source, acc_id, exc)
    metrics.WEBHOOKS.labels(source, "accepted").inc()
    return Response(
        {"status": "accepted", "workflow_id": acc_id, "event_id": event.event_id, "batched": True}, status_code=202
    )


async def trigger_poll(runtime: Runtime, connector: SourceConnector, trigger: PollTrigger) -> Response[dict[str, Any]]:
    """A webhook that says "new data": wake (or start) the account's poller."""
    from apex_platform.pollers import start_poller

    source = connector.name
    try:
        client: Client = await asyncio.wait_for(runtime.connect(lazy=True), timeout=10)
        handle = await start_poller(client, connector, trigger.account, runtime.temporal, sync_now=True)
    except RPCError as exc:
        if exc.status not in _UNAVAILABLE:
            raise
        return _unavailable(source, f"poll:{trigger.account}", exc)
    except (RuntimeError, OSError, TimeoutError) as exc:
        return _unavailable(source, f"poll:{trigger.account}", exc)
    metrics.WEBHOOKS.labels(source, "sync_requested").inc()
    return Response({"status": "sync requested", "workflow_id": handle.id, "account": trigger.account}, status_code=202)


def _unavailable(source: str, wf_id: str, exc: BaseException) -> Response[dict[str, Any]]:
    log.warning("Temporal unavailable, asking %s to retry %s: %s", source, wf_id, exc)
    metrics.WEBHOOKS.labels(source, "unavailable").inc()
    return problem(
        503,
        "the workflow service is unavailable; nothing was accepted, retry later",
        workflow_id=wf_id,
        retry_after=RETRY_AFTER_SECONDS,
    )
