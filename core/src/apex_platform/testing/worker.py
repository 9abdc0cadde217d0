"""An in-process worker for tests: the given plugins only, on its own task queues of a real
Temporal server, stopped (drained) when the block ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from apex_platform.hookspecs import hookimpl
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.runtime import Runtime
from apex_platform.saga import SagaSettings
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.temporal.client import connect
from apex_platform.temporal.worker import run_worker

#: saga settings for tests: one attempt, short waits, a breaker that never opens by accident
FAST_SAGA = SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, breaker_failures=1000)


@dataclass
class WorkerHarness:
    runtime: Runtime
    client: Client

    @property
    def temporal(self) -> TemporalSettings:
        return self.runtime.temporal

    @property
    def prefix(self) -> str:
        return self.runtime.temporal.task_queue_prefix


class _Plugin:
    def __init__(self, sources: Iterable[Any], enrichers: Iterable[Any], sinks: Iterable[Any]) -> None:
        self.sources, self.enrichers, self.sinks = list(sources), list(enrichers), list(sinks)

    @hookimpl
    def apex_register_sources(self, register: Any) -> None:
        for source in self.sources:
            register(source)

    @hookimpl
    def apex_register_enrichers(self, register: Any) -> None:
        for enricher in self.enrichers:
            register(enricher)

    @hookimpl
    def apex_register_sinks(self, register: Any) -> None:
        for sink in self.sinks:
            register(sink)


@asynccontextmanager
async def running_worker(
    temporal_address: str,
    home: Path,
    *,
    sources: Iterable[Any] = (),
    sinks: Iterable[Any] = (),
    enrichers: Iterable[Any] = (),
    priorities: Sequence[str] = ("P0", "P1", "P2"),
    prefix: str | None = None,
    saga: SagaSettings | None = FAST_SAGA,
    core: CoreSettings | None = None,
    inbox_dsn: str | None = None,
    inbox: InboxSettings | None = None,
    **temporal: Any,
) -> AsyncIterator[WorkerHarness]:
    """Register exactly these plugins (no entry points), poll fresh task queues named after
    `prefix` (random by default, so tests never take each other's work) and yield.

    The inbox and the lineage live in PostgreSQL (`inbox_dsn`, e.g. the session's
    `apex_postgres_server.dsn`), in a schema of this harness's own unless `inbox` says
    otherwise, so tests never see each other's deliveries."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    settings = TemporalSettings(address=temporal_address, task_queue_prefix=prefix, **temporal)
    if inbox is None:
        if inbox_dsn is None:
            raise ValueError("running_worker needs inbox_dsn (a PostgreSQL for the inbox and the lineage)")
        inbox = InboxSettings(dsn=inbox_dsn, schema_name=f"inbox_{prefix.lower()}"[:63], idle_wait_seconds=5)
    runtime = Runtime.build(
        [],
        modules=[_Plugin(sources, enrichers, sinks)],
        use_entry_points=False,
        core=core or CoreSettings(home=home),
        temporal=settings,
    )
    runtime.inbox = Inbox(inbox)
    if saga is not None:
        runtime.saga.settings = saga
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(runtime, list(priorities), stop))
    client = await connect(settings)  # the worker's converter: guard and payload encryption
    try:
        yield WorkerHarness(runtime, client)
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)
