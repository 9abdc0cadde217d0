"""The reconciler survives its worker: killed hard in the middle of a pass (an activity
listing and committing a page in flight), a new worker goes on from the committed cursor;
every listed event is in the inbox and the stores exactly once (real Temporal, the
PostgreSQL inbox, the fake Front over TCP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_connector_frontapp.fake_vendor import FakeFront, FakeServer
from apex_platform.inbox import Inbox
from apex_platform.reconcile import reconciler_state
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import connect
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import WorkerTask, build_runtime

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
EVENTS = 40


@pytest.fixture
def fake() -> Iterator[FakeFront]:
    with FakeServer(FakeFront(delay=0.3)) as server:
        yield server.fake


@pytest.fixture
async def platform(
    apex_temporal_server: Any, apex_postgres_server: Any, fake: FakeFront, tmp_path: Path
) -> AsyncIterator[tuple[WorkerTask, MemorySink, Inbox, TemporalSettings]]:
    connector = FrontConnector(
        FrontSettings(
            api_url=fake.base_url,
            api_token=fake.token,  # type: ignore[arg-type]
            reconcile_accounts="default",
            reconcile_interval_seconds=3600,  # one pass in this test
            reconcile_page_size=4,
            reconcile_requests_per_minute=600,
        )
    )
    sink = MemorySink("memory")

    prefix = f"t{uuid.uuid4().hex[:8]}"
    runtime = build_runtime(
        apex_temporal_server.address,
        tmp_path,
        [connector, sink],
        prefix=prefix,
        inbox_dsn=apex_postgres_server.dsn,
        saga=None,
        activity_heartbeat_seconds=2,  # a dead worker's activity is retried elsewhere after 2 s
        graceful_shutdown_seconds=0,
    )
    temporal = runtime.temporal
    worker = WorkerTask(runtime, ["P0"])
    yield worker, sink, runtime.inbox, temporal
    if worker.task is not None:
        await worker.kill()
    client = await connect(temporal)
    with contextlib.suppress(Exception):
        await client.get_workflow_handle(f"{prefix}:reconcile:frontapp:default").terminate("test over")
    await runtime.inbox.close()


async def test_a_worker_killed_mid_pass_loses_and_doubles_nothing(
    platform: tuple[WorkerTask, MemorySink, Inbox, TemporalSettings], fake: FakeFront
) -> None:
    worker, sink, inbox, temporal = platform
    t0 = time.time() - 600
    ids = []
    for n in range(EVENTS):
        envelope = samples.events()[n % len(samples.EVENTS)]
        event = envelope["payload"]
        event["id"], event["emitted_at"] = f"evt_crash{n:03d}", round(t0 + n, 3)
        fake.emit(event)
        ids.append(event["id"])

    async def rows() -> list[dict[str, Any]]:
        try:
            return await inbox.deliveries(source="frontapp", limit=1000)
        except Exception:
            return []

    worker.start()
    deadline = time.monotonic() + 90
    while len(await rows()) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await worker.kill()  # 10 pages of 4, 0.3 s each: killed in the middle of the pass
    landed = len(await rows())
    assert 8 <= landed < EVENTS, "the pass ended before the worker was killed"
    calls = len(fake.calls)

    worker.start()
    deadline = time.monotonic() + 120
    while len({k.id for k in sink.rows if k.id.startswith("evt_crash")}) < EVENTS and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    final = await rows()
    assert sorted(r["event_id"] for r in final) == sorted(ids)  # every event, one delivery each
    assert {r["status"] for r in final} == {"delivered"}
    assert {k.id for k in sink.rows if k.id.startswith("evt_crash")} == set(ids)
    # the new worker went on from the committed cursor: the pass was not begun again
    client = await connect(temporal)
    state = await reconciler_state(client, "frontapp", "default", temporal.task_queue_prefix)
    assert state["passes"] == 1
    # each page counted once: the page in flight when the worker died was listed again and
    # its events, committed or not, are in the inbox once
    assert (state["found"], state["new"]) == (EVENTS, EVENTS)
    first_pages = [q for q, status in fake.calls[calls:] if "page_token" not in q]
    assert first_pages == [], "after the restart the pass began again from its first page"
