"""Assembling Temporal workers from whatever is installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from apex_platform.runtime import Runtime
from apex_platform.temporal.activities import IngestActivities
from apex_platform.temporal.client import ensure_search_attributes, task_queue
from apex_platform.temporal.workflows import (
    AccumulatorWorkflow,
    BatchFileWorkflow,
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
    pydantic passed through, so models are the same classes inside and outside."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules("apex_platform", "pydantic", "pydantic_core")
    return SandboxedWorkflowRunner(restrictions=restrictions)


def workflows() -> list[type]:
    return [IngestWorkflow, PollWorkflow, StreamWorkflow, AccumulatorWorkflow, BatchFileWorkflow]


def activities(runtime: Runtime) -> list[Any]:
    ingest = IngestActivities(runtime.registry, runtime.saga, runtime.codec)
    return [
        ingest.parse,
        ingest.parse_many,
        ingest.poll_page,
        ingest.split_file,
        ingest.ingest_chunk,
        ingest.enrich,
        ingest.saga_write,
    ]


async def run_worker(runtime: Runtime, priorities: Sequence[str], stop: asyncio.Event) -> None:
    """Poll the given priority queues until `stop` is set, then drain in-flight work."""
    client = await runtime.connect()
    await ensure_search_attributes(client)
    await runtime.open_sinks()
    acts = activities(runtime)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for priority in priorities:
                queue = task_queue(priority, runtime.temporal)  # type: ignore[arg-type]
                worker = Worker(
                    client,
                    task_queue=queue,
                    workflows=workflows(),
                    activities=acts,
                    workflow_runner=sandbox_runner(),
                    graceful_shutdown_timeout=timedelta(seconds=runtime.temporal.graceful_shutdown_seconds),
                )
                await stack.enter_async_context(worker)
                log.info("worker polling %s", queue)
            await stop.wait()
            log.info("stopping workers: draining in-flight work")
    finally:
        await runtime.close_sinks()
