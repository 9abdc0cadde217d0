"""Assembling Temporal workers from whatever is installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from apex_platform import memory, metrics
from apex_platform.capabilities import DeliverySource
from apex_platform.contracts import SourceConnector
from apex_platform.errors import ApexError, SettingsError
from apex_platform.reconcile import keep_reconcilers
from apex_platform.runtime import Runtime
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.activities import IngestActivities
from apex_platform.temporal.client import (
    SOURCE_ATTR,
    STATUS_ATTR,
    ensure_search_attributes,
    task_queue,
    temporal_unreachable,
)
from apex_platform.temporal.inputs import ActivityTimeouts, DrainInput
from apex_platform.temporal.reconcile_activities import ReconcileActivities
from apex_platform.temporal.reconcile_workflow import ReconcileWorkflow
from apex_platform.temporal.versioning import deployment_config
from apex_platform.temporal.workflows import (
    AccumulatorWorkflow,
    BatchFileWorkflow,
    DrainWorkflow,
    IngestWorkflow,
    PollWorkflow,
    StreamWorkflow,
)

log = logging.getLogger(__name__)

ALL_QUEUES = ("p0", "p1", "p2")


def parse_queues(value: str) -> list[str]:
    """`p0,p1` → ['P0', 'P1'] (validated)."""
    names = [q.strip().lower() for q in value.split(",") if q.strip()]
    bad = [q for q in names if q not in ALL_QUEUES]
    if bad or not names:
        raise ValueError(f"unknown queue(s) {', '.join(bad) or '(none)'}; choose among p0, p1, p2")
    return [q.upper() for q in dict.fromkeys(names)]


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with Apex's own (deterministic, I/O-free at import) modules and
    pydantic passed through, so models are the same classes inside and outside; and
    OpenTelemetry's (the tracing interceptor's workflow side needs the process's own)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        "apex_platform", "pydantic", "pydantic_core", "opentelemetry"
    )
    return SandboxedWorkflowRunner(restrictions=restrictions)


def workflows() -> list[type]:
    # IngestWorkflow and AccumulatorWorkflow take no new work (intake goes through the
    # inbox); they stay registered so runs started by earlier versions can finish.
    return [
        DrainWorkflow,
        PollWorkflow,
        StreamWorkflow,
        BatchFileWorkflow,
        ReconcileWorkflow,
        IngestWorkflow,
        AccumulatorWorkflow,
    ]


def activities(runtime: Runtime) -> list[Any]:
    ingest = IngestActivities(runtime.registry, runtime.saga, runtime.codec, runtime.inbox)
    return [
        ingest.drain_inbox,
        ingest.poll_ingest,
        ingest.poll_commit,
        ingest.poll_fold,
        ingest.poll_discard,
        ingest.finish_file,
        ingest.checkpoint_file,
        ingest.parse,
        ingest.parse_many,
        ingest.poll_page,
        ingest.split_file,
        ingest.ingest_chunk,
        ingest.enrich,
        ingest.saga_write,
        ReconcileActivities(runtime.registry, runtime.inbox).reconcile_page,
    ]


#: seconds past the graceful shutdown time after which a worker whose in-flight work
#: ignores cancellation exits anyway, with `EXIT_FORCED` (EX_TEMPFAIL)
SHUTDOWN_MARGIN_SECONDS = 10.0
EXIT_FORCED = 75


#: the longest wait between two attempts to reach Temporal at a worker's start
CONNECT_MAX_WAIT_SECONDS = 30.0


async def connect_when_up(runtime: Runtime, stop: asyncio.Event) -> Client | None:
    """The worker's Temporal client. A worker may start before Temporal can be reached (a
    deployment's pods start in any order; a power cut brings everything back at once; a
    restart of Temporal is under way): it then waits, retrying with jittered backoff up
    to `CONNECT_MAX_WAIT_SECONDS`, each failure logged, rather than exit, and the
    deliveries wait in the inbox meanwhile. A refusal that waiting cannot mend (TLS
    against a plaintext port, a certificate, a key the server rejects) ends the start at
    once with `SettingsError`, naming it. None when `stop` is set first."""

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    def waiting(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "Temporal at %s cannot be reached (attempt %d, retrying in %.1fs): %s",
            runtime.temporal.address,
            state.attempt_number,
            wait,
            exc,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(temporal_unreachable),
        wait=wait_random_exponential(multiplier=0.5, max=CONNECT_MAX_WAIT_SECONDS),
        stop=lambda _state: stop.is_set(),
        sleep=sleep,
        before_sleep=waiting,
        retry_error_callback=lambda _state: None,
    )
    try:
        client: Client | None = await retrying(runtime.connect)
    except (RuntimeError, RPCError) as exc:
        raise SettingsError(
            f"Temporal at {runtime.temporal.address} refused the worker, and retrying will not help: {exc}; "
            "check APEX_TEMPORAL_ADDRESS, APEX_TEMPORAL_TLS* and APEX_TEMPORAL_API_KEY"
        ) from exc
    if client is not None and retrying.statistics.get("attempt_number", 1) > 1:
        log.info("connected to Temporal at %s", runtime.temporal.address)
    return client


async def run_worker(runtime: Runtime, priorities: Sequence[str], stop: asyncio.Event) -> None:
    """Poll the given priority queues until `stop` is set, then drain in-flight work."""
    client = await connect_when_up(runtime, stop)
    if client is None:
        return  # stopped before Temporal could be reached: nothing was started
    await ensure_search_attributes(client)
    try:
        await runtime.inbox.pool()
    except SettingsError:
        raise  # no inbox configured: nothing could be drained, say so at once
    except ApexError as exc:  # down for now: the drains wait and retry
        log.warning("%s; the drains will retry", exc)
    await runtime.open_sinks()
    acts = activities(runtime)
    interceptor = metrics.temporal_interceptor()  # workflow and activity counts by type and source
    deployment = deployment_config(runtime.registry)  # the build id of the installed plugins (versioning.py)
    try:
        async with contextlib.AsyncExitStack() as stack:
            started: list[Worker] = []
            for priority in priorities:
                queue = task_queue(priority, runtime.temporal)  # type: ignore[arg-type]
                worker = Worker(
                    client,
                    task_queue=queue,
                    workflows=workflows(),
                    activities=acts,
                    workflow_runner=sandbox_runner(),
                    interceptors=[interceptor],
                    deployment_config=deployment,
                    graceful_shutdown_timeout=timedelta(seconds=runtime.temporal.graceful_shutdown_seconds),
                )
                await stack.enter_async_context(worker)
                started.append(worker)
                log.info("worker polling %s", queue)
            keeper = asyncio.create_task(keep_drains(runtime, client, priorities, stop), name="drains")
            trimmer = asyncio.create_task(
                memory.keep_trimmed(stop, runtime.temporal.memory_trim_seconds), name="memory-trim"
            )
            await stop.wait()
            log.info("stopping workers: draining in-flight work")
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await trimmer
            # every queue drains at once, within one grace period (not one after another)
            grace = runtime.temporal.graceful_shutdown_seconds
            try:
                shutdowns = asyncio.gather(*(w.shutdown() for w in started))
                await asyncio.wait_for(shutdowns, grace + SHUTDOWN_MARGIN_SECONDS)
            except TimeoutError:
                # an activity ignores its cancellation: leave anyway (its work is not lost:
                # Temporal gives it to another worker once its heartbeats stop)
                log.critical(
                    "in-flight work did not stop %ss after the graceful shutdown time of %ss (an activity "
                    "ignores cancellation): exiting now; Temporal retries that work elsewhere",
                    SHUTDOWN_MARGIN_SECONDS,
                    grace,
                )
                logging.shutdown()
                os._exit(EXIT_FORCED)
    finally:
        await runtime.close_sinks()
        await runtime.inbox.close()


def intake_sources(runtime: Runtime, priorities: Sequence[str]) -> list[SourceConnector]:
    """The sources that take deliveries (webhook and push) on these priorities."""
    wanted = {p.upper() for p in priorities}
    return [
        source
        for _, source in sorted(runtime.registry.sources.items())
        if source.priority in wanted and isinstance(source, DeliverySource)
    ]


async def keep_drains(runtime: Runtime, client: Client, priorities: Sequence[str], stop: asyncio.Event) -> None:
    """Start the drain loop of every intake source this worker serves (fixed ids: a
    running one is kept), and the reconcilers of their enabled accounts
    (`apex_platform.reconcile`), again every minute (a terminated loop comes back by
    itself), and collect the inbox's garbage every `APEX_INBOX_GC_INTERVAL_SECONDS`."""
    last_gc = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        for source in intake_sources(runtime, priorities):
            try:
                await start_drain(client, runtime, source)
            except Exception as exc:  # noqa: BLE001 - Temporal down: try again next round
                log.warning("could not start the drain of %s (retrying in a minute): %s", source.name, exc)
        await keep_reconcilers(client, intake_sources(runtime, priorities), runtime.temporal)
        if loop.time() - last_gc >= runtime.inbox.settings.gc_interval_seconds:
            try:
                done = await runtime.inbox.collect_garbage()
                blobs = await asyncio.to_thread(runtime.codec.blobs.collect_garbage, runtime.core.blob_retention)
                last_gc = loop.time()
                log.info("inbox garbage collected: %s; blobs: %s", done, blobs)
            except Exception as exc:  # noqa: BLE001 - the inbox may be down; next round
                log.warning("inbox garbage collection failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=60)


def drain_id(source: str, prefix: str = "apex", partition: int = 0, partitions: int = 1) -> str:
    """The drain loop's workflow id: `{prefix}:drain:{source}` when the source has one
    loop (the id every earlier version used), `{prefix}:drain:{source}:{k}of{P}` for
    partition k of P (`apex_platform.partitions`)."""
    if partitions <= 1:
        return f"{prefix}:drain:{source}"
    return f"{prefix}:drain:{source}:{partition}of{partitions}"


def drain_ids(source: str, temporal: TemporalSettings) -> list[str]:
    """Every drain loop of `source` under this process's `APEX_TEMPORAL_DRAIN_PARTITIONS`."""
    p = temporal.drain_partitions
    return [drain_id(source, temporal.task_queue_prefix, k, p) for k in range(p)]


async def start_drain(client: Client, runtime: Runtime, source: SourceConnector) -> None:
    """Start every drain loop of `source` (a running one is kept). Loops of another
    partition count (the setting changed) are cancelled first, and ours start once they
    have ended, so no two loops ever take the same row."""
    if await _stop_other_layouts(client, runtime, source):
        return  # next round
    partitions = runtime.temporal.drain_partitions
    for k in range(partitions):
        await _start_one_drain(client, runtime, source, k, partitions)


async def _stop_other_layouts(client: Client, runtime: Runtime, source: SourceConnector) -> bool:
    """Cancel the running drains of `source` that are not ours; True while any still runs."""
    ours = set(drain_ids(source.name, runtime.temporal))
    base = drain_id(source.name, runtime.temporal.task_queue_prefix)
    query = f"WorkflowType = 'DrainWorkflow' AND ExecutionStatus = 'Running' AND {SOURCE_ATTR.name} = '{source.name}'"
    try:
        others = [
            wf.id
            async for wf in client.list_workflows(query)
            if wf.id not in ours and (wf.id == base or wf.id.startswith(f"{base}:"))
        ]
    except Exception as exc:  # noqa: BLE001 - visibility unavailable: start ours (writes are idempotent)
        log.warning("could not list the drains of %s: %s", source.name, exc)
        return False
    for wf_id in others:
        log.warning(
            "cancelling drain %s: this worker runs %d drain partition(s) of %s (APEX_TEMPORAL_DRAIN_PARTITIONS); "
            "every worker must agree",
            wf_id,
            runtime.temporal.drain_partitions,
            source.name,
        )
        handle = client.get_workflow_handle(wf_id)
        with contextlib.suppress(Exception):
            await handle.cancel()
    still = 0
    for wf_id in others:
        try:
            await asyncio.wait_for(client.get_workflow_handle(wf_id).result(), timeout=30)
        except TimeoutError:
            still += 1
        except Exception:  # noqa: BLE001, S110 - cancelled (or already gone): ended
            pass
    return still > 0


async def _start_one_drain(
    client: Client, runtime: Runtime, source: SourceConnector, partition: int, partitions: int
) -> None:
    settings = runtime.inbox.settings
    await client.start_workflow(
        DrainWorkflow.run,
        DrainInput(
            source=source.name,
            max_count=settings.batch_max_count,
            max_bytes=settings.batch_max_bytes,
            idle_wait_seconds=settings.idle_wait_seconds,
            timeouts=ActivityTimeouts(
                start_to_close_seconds=max(runtime.temporal.activity_timeout_seconds, settings.idle_wait_seconds + 60),
                heartbeat_seconds=runtime.temporal.activity_heartbeat_seconds,
            ),
            partition=partition,
            partitions=partitions,
        ),
        id=drain_id(source.name, runtime.temporal.task_queue_prefix, partition, partitions),
        task_queue=task_queue(source.priority, runtime.temporal),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(SOURCE_ATTR, source.name), SearchAttributePair(STATUS_ATTR, "draining")]
        ),
    )


async def drain_states(client: Client, source: str, temporal: TemporalSettings) -> list[dict[str, Any]]:
    """Each drain loop of `source` under this process's setting: running or not, its
    partition, and (running) what it drained so far (`sources list --json`: `drains`)."""
    out: list[dict[str, Any]] = []
    partitions = temporal.drain_partitions
    for k, wf_id in enumerate(drain_ids(source, temporal)):
        item: dict[str, Any] = {"workflow_id": wf_id, "partition": k, "partitions": partitions, "running": False}
        handle = client.get_workflow_handle(wf_id)
        try:
            desc = await handle.describe()
        except RPCError:
            out.append(item)
            continue
        item["running"] = desc.status == WorkflowExecutionStatus.RUNNING
        item["status"] = desc.status.name if desc.status else None
        if item["running"]:
            try:
                state = await handle.query(DrainWorkflow.state)
                item.update(state.model_dump(include={"stage", "batches", "deliveries", "records", "last_batch_at"}))
            except RPCError as exc:
                item["query_error"] = str(exc)
        out.append(item)
    return out
