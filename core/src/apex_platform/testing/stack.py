"""The real Apex app for tests: the Litestar API (and the worker) of a test runtime, in this
test's event loop.

- `running_stack(...)`: API and worker of `serve()` (the code `apex-platform dev` runs) on
  a free port, exactly the given plugins: webhooks go over real HTTP into the inbox, the
  drain loops land them in the sinks. Yields a `StackHarness`.
- `serving_app(runtime)`: the API alone under uvicorn on a free port (beside a worker the
  test already runs); yields its base URL.
- `app_client(runtime)`: litestar's `AsyncTestClient` on the app, no socket at all, where
  HTTP itself is not what the test is about.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from apex_platform.runtime import Runtime
from apex_platform.temporal.client import connect
from apex_platform.testing.worker import WorkerHarness, build_runtime

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient


@dataclass
class StackHarness(WorkerHarness):
    """A running API and worker: `url` is the API's base URL (no trailing slash)."""

    url: str = ""
    home: Path | None = None

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """POST raw bytes to the API (async: the API runs on this test's event loop)."""
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(f"{self.url}{path}", content=body, headers=dict(headers or {}))

    async def webhook(self, source: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST a webhook delivery to `/webhooks/{source}`."""
        return await self.post(f"/webhooks/{source}", body, headers)


async def _wait_started(started: asyncio.Event, task: asyncio.Task[None], within: float, what: str) -> None:
    """Until `started` is set; the task's own error when it ends first (a start that failed)."""
    waiter = asyncio.create_task(started.wait())
    try:
        done, _ = await asyncio.wait([waiter, task], timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task in done:
        task.result()  # raises what stopped it
        raise RuntimeError(f"{what} stopped before it started")
    if not started.is_set():
        raise TimeoutError(f"{what} did not start within {within:g}s")


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@asynccontextmanager
async def running_stack(
    temporal_address: str,
    home: Path,
    *plugins: Any,
    priorities: Sequence[str] = ("P0", "P1", "P2"),
    start_timeout: float = 60,
    **options: Any,
) -> AsyncIterator[StackHarness]:
    """API and worker of `build_runtime(temporal_address, home, plugins, **options)`, served
    by `apex_platform.serve.serve` on a free local port until the block ends."""
    from apex_platform.serve import serve
    from apex_platform.stack.ports import free_port

    runtime = build_runtime(temporal_address, home, plugins, **options)
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(runtime, api=True, worker=True, priorities=priorities, port=port, stop=stop, started=ready)
    )
    try:
        await _wait_started(ready, task, start_timeout, "the API and worker")
        client = await connect(runtime.temporal)  # the platform's converter
        yield StackHarness(runtime, client, url=f"http://127.0.0.1:{port}", home=home)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@asynccontextmanager
async def serving_app(
    runtime: Runtime, *, open_sinks: bool = False, host: str = "127.0.0.1", start_timeout: float = 30
) -> AsyncIterator[str]:
    """The API of `runtime` (`create_app`) under uvicorn on a free port in this event loop;
    yields its base URL. `open_sinks=False`: a worker of the test owns the sinks."""
    import uvicorn

    from apex_platform.api import create_app

    sock = _free_socket(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(runtime, open_sinks=open_sinks), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    started = asyncio.Event()
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.02)
        started.set()

    announcer = asyncio.create_task(announce())
    try:
        await _wait_started(started, task, start_timeout, "the API")
        yield f"http://{host}:{port}"
    finally:
        announcer.cancel()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def app(runtime: Runtime, *, open_sinks: bool = False) -> Litestar:
    """The Litestar app of `runtime`, as `apex-platform api` builds it."""
    from apex_platform.api import create_app

    return create_app(runtime, open_sinks=open_sinks)


def app_client(runtime: Runtime, *, open_sinks: bool = False, **client: Any) -> AsyncTestClient[Litestar]:
    """litestar's `AsyncTestClient` on the real app (its lifespan runs on `async with`)."""
    from litestar.testing import AsyncTestClient

    return AsyncTestClient(app(runtime, open_sinks=open_sinks), **client)
