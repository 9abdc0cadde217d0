"""Running the worker and/or the API in this process until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from apex_platform import metrics
from apex_platform.api import create_app
from apex_platform.api.server import uvicorn_config
from apex_platform.runtime import Runtime
from apex_platform.settings import ApiSettings, load
from apex_platform.temporal.client import data_converter
from apex_platform.temporal.worker import run_worker

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process-wide stop event rules."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def start_inbox_watchers(runtime: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """A drop-folder watcher for every batch source with a configured inbox (`DropFolderSource`) (dev only:
    one watcher per folder; in production run `apex-platform ingest SOURCE --watch DIR`)."""
    from apex_platform.batches import watch_inbox
    from apex_platform.capabilities import DropFolderSource
    from apex_platform.contracts import BatchSource

    tasks = []
    for name, source in runtime.registry.sources.items():
        if not isinstance(source, BatchSource) or not isinstance(source, DropFolderSource):
            continue
        folder = source.inbox()
        if folder is None:
            continue

        async def watch(source: BatchSource = source, folder: Path = folder) -> None:
            client = await runtime.connect()
            await watch_inbox(runtime, client, source, folder, stop)

        log.warning("watching %s for %s files", folder, name)
        tasks.append(asyncio.create_task(watch(), name=f"inbox:{name}"))
    return tasks


def announce_metrics(runtime: Runtime, *, api: bool, worker: bool, priorities: Sequence[str]) -> None:
    """The process's role, and for a worker the sources it serves (their expected silence,
    poll interval, and a start time the silence alerts count from)."""
    from apex_platform.contracts import PollSource

    role = "+".join(name for name, on in (("api", api), ("worker", worker)) if on)
    wanted = {p.upper() for p in priorities}
    served = [s for s in runtime.registry.sources.values() if s.priority.upper() in wanted] if worker else []
    metrics.announce_sources(
        role, [(s.name, s.poll_interval_seconds if isinstance(s, PollSource) else None) for s in served]
    )


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve(
    runtime: Runtime,
    *,
    api: bool,
    worker: bool,
    priorities: Sequence[str] = ("P0", "P1", "P2"),
    host: str = "127.0.0.1",
    port: int = 8080,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    inboxes: bool = False,
) -> None:
    """Serve until `stop` is set (by a signal when none is given), then drain and return."""
    data_converter(runtime.temporal)  # no start without payload keys (or encryption explicitly off)
    # before the first Temporal client: the SDK's own metrics on their port, if asked for
    metrics.install_temporal_runtime_metrics()
    announce_metrics(runtime, api=api, worker=worker, priorities=priorities)
    if stop is None:
        stop = asyncio.Event()
        install_stop_signals(stop)
    jobs: list[asyncio.Task[None]] = []
    server: _Server | None = None
    if worker:
        jobs.append(asyncio.create_task(run_worker(runtime, priorities, stop), name="worker"))
        if not api and metrics.serve_worker_metrics() is not None:
            # a worker alone serves its metrics from a thread: the inbox is read beside it
            jobs.append(asyncio.create_task(metrics.keep_inbox_read(runtime.inbox, stop), name="metrics"))
    if worker and inboxes:
        jobs += start_inbox_watchers(runtime, stop)
    if api:
        app = create_app(runtime, open_sinks=not worker)
        server = _Server(uvicorn_config(app, load(ApiSettings), host=host, port=port))
        jobs.append(asyncio.create_task(server.serve(), name="api"))

    async def announce() -> None:
        while server is not None and not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.05)
        # what start-up allocated (modules, plugins, pools) lives as long as the process:
        # out of the collector's sight, full collections stop stalling every request in flight
        gc.freeze()
        if started is not None:
            started.set()

    announcer = asyncio.create_task(announce())
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*jobs, stopper], return_when=asyncio.FIRST_COMPLETED)
        for job in done:
            if job is not stopper and job.exception() is not None:
                stop.set()
                raise job.exception()  # type: ignore[misc]
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        results = await asyncio.gather(*jobs, return_exceptions=True)
        announcer.cancel()
        stopper.cancel()
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s stopped with %s: %s", job.get_name(), type(result).__name__, result)
