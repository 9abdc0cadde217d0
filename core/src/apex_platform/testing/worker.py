"""An in-process worker for tests: exactly the given plugins, on task queues of its own on a
real Temporal server, stopped (drained) when the block ends.

`build_runtime` is the set-up every harness of the kit shares (the worker here, the API and
worker of `testing.stack`): plugins registered explicitly, a random task-queue prefix, the
inbox and the lineage in a PostgreSQL schema of the harness's own, fast saga retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from temporalio.client import Client, WorkflowHandle

from apex_platform.hookspecs import hookimpl
from apex_platform.inbox import Inbox, InboxSettings, resolve_dsn
from apex_platform.models import Record, RecordKey
from apex_platform.runtime import Runtime
from apex_platform.saga import SagaSettings
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.temporal.client import connect
from apex_platform.temporal.inputs import PollState
from apex_platform.temporal.worker import run_worker
from apex_platform.testing import inbox as inbox_views
from apex_platform.testing.sinks import MemorySink

#: saga settings for tests: one attempt, short waits, a breaker that never opens by accident
FAST_SAGA = SagaSettings(retry_attempts=1, retry_initial_seconds=0.01, breaker_failures=1000)

_HOOK_NAMES = ("apex_register_sources", "apex_register_enrichers", "apex_register_sinks")


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

    @property
    def inbox_dsn(self) -> str:
        return resolve_dsn(self.runtime.inbox.settings)

    @property
    def inbox_schema(self) -> str:
        return self.runtime.inbox.settings.schema_name

    def plugin_names(self) -> dict[str, list[str]]:
        """What the worker runs: `{"sources": [...], "enrichers": [...], "sinks": [...]}`."""
        registry = self.runtime.registry
        return {
            "sources": sorted(registry.sources),
            "enrichers": sorted(registry.enrichers),
            "sinks": sorted(registry.sinks),
        }

    async def start_poller(self, source: Any, account: str, *, once: bool = True) -> WorkflowHandle[Any, PollState]:
        """Start the source's PollWorkflow for `account` on this worker's queues."""
        from apex_platform.pollers import start_poller

        return await start_poller(self.client, source, account, self.temporal, once=once)

    async def sync(self, source: Any, account: str, *, within: float = 60) -> PollState:
        """One complete poll run (`once=True`) of `account`, to its result."""
        handle = await self.start_poller(source, account)
        return await asyncio.wait_for(handle.result(), within)

    async def wait_delivered(self, source: str, event_ids: Iterable[str], *, within: float = 120) -> None:
        await inbox_views.wait_delivered(self.inbox_dsn, source, event_ids, schema=self.inbox_schema, within=within)

    async def produced(self, source: str, event_id: str) -> list[dict[str, Any]]:
        return await inbox_views.produced(self.inbox_dsn, source, event_id, schema=self.inbox_schema)

    async def deliveries(self, source: str, event_id: str | None = None) -> list[dict[str, Any]]:
        """This harness's inbox rows of `source` (of one event id when given), oldest first."""
        return await inbox_views.deliveries(self.inbox_dsn, source, event_id, schema=self.inbox_schema)


class ExplicitPlugins:
    """One pluggy plugin that registers the given sources, enrichers and sinks, as a
    distribution's plugin module would."""

    def __init__(self, sources: Iterable[Any] = (), enrichers: Iterable[Any] = (), sinks: Iterable[Any] = ()) -> None:
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


def sort_plugins(plugins: Iterable[Any]) -> tuple[list[str], list[object], dict[str, list[Any]]]:
    """Split `plugins` into entry-point names, plugin modules/objects with hook
    implementations, and bare sources / enrichers / sinks (told apart by what they do:
    a sink writes, an enricher enriches, a source has a mode)."""
    names: list[str] = []
    modules: list[object] = []
    bare: dict[str, list[Any]] = {"sources": [], "enrichers": [], "sinks": []}
    for plugin in plugins:
        if isinstance(plugin, str):
            names += [part.strip() for part in plugin.split(",") if part.strip()]
        elif isinstance(plugin, ModuleType) or any(callable(getattr(plugin, h, None)) for h in _HOOK_NAMES):
            modules.append(plugin)
        elif callable(getattr(plugin, "write", None)):
            bare["sinks"].append(plugin)
        elif callable(getattr(plugin, "enrich", None)):
            bare["enrichers"].append(plugin)
        elif getattr(plugin, "mode", None) is not None:
            bare["sources"].append(plugin)
        else:
            raise TypeError(
                f"{plugin!r} is not a plugin: give an entry-point name, a module or object with apex hooks, "
                "or a source (has `mode`), an enricher (`enrich`) or a sink (`write`)"
            )
    return names, modules, bare


def build_runtime(
    temporal_address: str,
    home: Path,
    plugins: Iterable[Any] = (),
    *,
    sources: Iterable[Any] = (),
    sinks: Iterable[Any] = (),
    enrichers: Iterable[Any] = (),
    prefix: str | None = None,
    saga: SagaSettings | None = FAST_SAGA,
    core: CoreSettings | None = None,
    inbox_dsn: str | None = None,
    inbox: InboxSettings | None = None,
    **temporal: Any,
) -> Runtime:
    """A runtime with exactly these plugins: `plugins` are entry-point names (loaded as
    `APEX_PLUGINS=a,b` would, and nothing else installed), plugin modules or objects, or
    bare sources / enrichers / sinks; `sources`, `sinks`, `enrichers` say it explicitly.

    Task queues are named after `prefix` (random by default, so tests never take each
    other's work). The inbox and the lineage live in PostgreSQL (`inbox_dsn`, e.g. the
    session's `apex_postgres_server.dsn`), in a schema of this runtime's own unless `inbox`
    says otherwise, so tests never see each other's deliveries."""
    names, modules, bare = sort_plugins(plugins)
    explicit = ExplicitPlugins([*bare["sources"], *sources], [*bare["enrichers"], *enrichers], [*bare["sinks"], *sinks])
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    settings = TemporalSettings(address=temporal_address, task_queue_prefix=prefix, **temporal)
    if inbox is None:
        if inbox_dsn is None:
            raise ValueError("the test runtime needs inbox_dsn (a PostgreSQL for the inbox and the lineage)")
        inbox = InboxSettings(dsn=inbox_dsn, schema_name=f"inbox_{prefix.lower()}"[:63], idle_wait_seconds=5)
    runtime = Runtime.build(
        names,
        modules=[*modules, explicit],
        use_entry_points=bool(names),
        core=core or CoreSettings(home=home),
        temporal=settings,
    )
    runtime.inbox = Inbox(inbox)
    if saga is not None:
        runtime.saga.settings = saga
    return runtime


class WorkerTask:
    """The worker of `runtime` as a task of this event loop that a test starts, kills hard
    (cancelled: no drain, the activities in flight are abandoned, as when a process dies)
    or stops (drained), and starts again on the same runtime."""

    def __init__(self, runtime: Runtime, priorities: Sequence[str] = ("P0", "P1", "P2")) -> None:
        self.runtime = runtime
        self.priorities = list(priorities)
        self.task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the worker is running already")
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(run_worker(self.runtime, self.priorities, self._stop))

    async def kill(self) -> None:
        """Cancel the worker task hard."""
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.task = None

    async def stop(self, within: float = 60) -> None:
        """Let the worker drain and end (at most `within` seconds)."""
        if self.task is None:
            return
        self._stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, within)
        self.task = None


@asynccontextmanager
async def running_worker(
    temporal_address: str,
    home: Path,
    *plugins: Any,
    priorities: Sequence[str] = ("P0", "P1", "P2"),
    **options: Any,
) -> AsyncIterator[WorkerHarness]:
    """A worker of `build_runtime(temporal_address, home, plugins, **options)` polling the
    given priorities' queues until the block ends (then drained)."""
    runtime = build_runtime(temporal_address, home, plugins, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(runtime, list(priorities), stop))
    client = await connect(runtime.temporal)  # the worker's converter: guard and payload encryption
    try:
        yield WorkerHarness(runtime, client)
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)


@dataclass
class SourceHarness:
    """A running worker with one source under test and the sink its records land in: what a
    connector's workflow tests talk to. `account` is the account `start`/`sync` use when
    none is given."""

    harness: WorkerHarness
    source: Any
    sink: MemorySink
    account: str | None = None

    @property
    def client(self) -> Client:
        return self.harness.client

    @property
    def temporal(self) -> TemporalSettings:
        return self.harness.temporal

    @property
    def connector(self) -> Any:
        return self.source

    @property
    def rows(self) -> dict[RecordKey, Record]:
        return self.sink.rows

    def _account(self, account: str | None) -> str:
        chosen = account or self.account
        if chosen is None:
            raise ValueError(f"which account of {self.source.name}? none given and no default account")
        return chosen

    async def start(self, account: str | None = None, *, once: bool = True) -> WorkflowHandle[Any, PollState]:
        return await self.harness.start_poller(self.source, self._account(account), once=once)

    async def sync(self, account: str | None = None, *, within: float = 60) -> PollState:
        return await self.harness.sync(self.source, self._account(account), within=within)
