"""Gap-free Samsara route stop webhooks, end to end: the real API and worker (real
Temporal, the PostgreSQL inbox), signed RouteStopArrival/Departure webhooks over HTTP, and
the reconciler reading the fake Samsara's route updates feed over TCP. The webhooks are
dropped for a while (some stops' webhooks never come, some come during the outage and are
listed too, some come late); at the end the stores hold every stop event exactly once,
each from one inbox delivery."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer, route_stop_webhook, send_webhook
from apex_platform import hookimpl
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.reconcile import ORIGIN_HEADER, reconciler_state
from apex_platform.runtime import Runtime
from apex_platform.serve import serve
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import connect
from apex_platform.testing.sinks import MemorySink

from .conftest import SECRET, TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
STOP_KINDS = {"samsara.route_stop_arrival", "samsara.route_stop_departure"}


@dataclass
class Stack:
    url: str
    client: Client
    sink: MemorySink
    fake: FakeSamsara
    temporal: TemporalSettings
    dsn: str
    schema: str

    async def post(self, doc: dict[str, Any]) -> int:
        return (await send_webhook(f"{self.url}/webhooks/samsara", doc, SECRET)).status_code

    async def inbox_rows(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                f'SELECT event_id, status, headers::text AS headers FROM "{self.schema}".deliveries '
                "WHERE source = 'samsara' ORDER BY seq"
            )
        finally:
            await conn.close()
        return [{"event_id": r["event_id"], "status": r["status"], "headers": json.loads(r["headers"])} for r in rows]

    def stop_events(self) -> list[Any]:
        return [r for r in self.sink.rows.values() if r.kind in STOP_KINDS]


@pytest.fixture
async def stack(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    server = FakeServer(FakeSamsara(token=TOKEN, vehicles=1, points=1, route_page_size=4))
    base_url = server.start()
    connector = SamsaraConnector(
        SamsaraSettings(
            webhook_secret=SECRET,  # type: ignore[arg-type]
            api_token=TOKEN,  # type: ignore[arg-type]
            base_url=base_url,
            reconcile_accounts="default",
            reconcile_interval_seconds=5,
        )
    )
    sink = MemorySink("memory")

    class Plugin:
        @hookimpl
        def apex_register_sources(self, register: Any) -> None:
            register(connector)

        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(sink)

    prefix = f"t{uuid.uuid4().hex[:8]}"
    temporal = TemporalSettings(
        address=apex_temporal_server.address, task_queue_prefix=prefix, activity_heartbeat_seconds=5
    )
    runtime = Runtime.build(
        [], modules=[Plugin()], use_entry_points=False, core=CoreSettings(home=tmp_path), temporal=temporal
    )
    inbox = InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"inbox_{prefix}", idle_wait_seconds=5)
    runtime.inbox = Inbox(inbox)
    server.fake.routes_rate_limit_next = 1  # the reconciler's first call is rate-limited: it waits and goes on
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(runtime, api=True, worker=True, priorities=["P1"], port=port, stop=stop, started=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
        client = await connect(TemporalSettings(address=apex_temporal_server.address))
        yield Stack(
            f"http://127.0.0.1:{port}", client, sink, server.fake, temporal, apex_postgres_server.dsn, inbox.schema_name
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        server.stop()


async def wait_for(condition: Any, within: float, what: Any) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(what())


async def test_an_outage_of_samsara_route_webhooks_heals_and_every_stop_lands_once(stack: Stack) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    updates = []
    for n in range(18):  # six routes, three stops each: arrived, then departed for every other stop
        route, stop = f"rt{n // 3}", f"rt{n // 3}-{n % 3}"
        updates.append(stack.fake.route_update(route, stop, "stop arrived", t0 + timedelta(minutes=2 * n), stops=3))
        if n % 2 == 0:
            updates.append(
                stack.fake.route_update(route, stop, "stop departed", t0 + timedelta(minutes=2 * n + 1), stops=3)
            )
    outage = range(8, 18)
    delivered_in_outage = {10, 14}
    keys = []
    for i, entry in enumerate(updates):
        state = "arrived" if entry["operation"] == "stop arrived" else "departed"
        keys.append(f"route-stop:{entry['route']['id']}:{entry['changes']['after']['stops'][0]['id']}:{state}")
        if i not in outage or i in delivered_in_outage:
            # 202 accepted, or 200 when the reconciler listed that stop first: one delivery either way
            assert await stack.post(route_stop_webhook(entry)) in (200, 202)
    never_delivered = {keys[i] for i in outage if i not in delivered_in_outage}

    await wait_for(
        lambda: len(stack.stop_events()) >= len(updates),
        150,
        lambda: f"{len(stack.stop_events())} of {len(updates)} stop events in the stores",
    )
    # Samsara retries some of the dropped ones late, with new eventIds: still one delivery each
    for i in sorted(outage)[:3]:
        if i not in delivered_in_outage:
            assert await stack.post(route_stop_webhook(updates[i])) == 200

    rows = await stack.inbox_rows()
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["event_id"], []).append(row)
    assert set(by_key) == set(keys)
    assert all(len(v) == 1 and v[0]["status"] == "delivered" for v in by_key.values())
    reconciled = {k for k, v in by_key.items() if v[0]["headers"].get(ORIGIN_HEADER) == "reconcile:default"}
    assert never_delivered <= reconciled
    events = stack.stop_events()
    assert len(events) == len(updates)  # every stop event exactly once in the stores
    assert {r.kind for r in events} == STOP_KINDS
    assert {f"route:rt{n}" for n in range(6)} <= {k.id for k in stack.sink.rows}
    assert next(s for _, s in stack.fake.route_calls) == 429
    prefix = stack.temporal.task_queue_prefix
    states: list[dict[str, Any]] = []

    async def one_pass_done() -> None:
        while True:
            states.append(await reconciler_state(stack.client, "samsara", "default", prefix))
            if states[-1].get("passes", 0) >= 1:
                return
            await asyncio.sleep(0.25)

    await asyncio.wait_for(one_pass_done(), 60)  # a pass ends at the feed's last page
    state = states[-1]
    assert state["running"] is True
    assert state["found"] == len(updates)  # the pass listed every stop update once
    assert state["new"] >= len(never_delivered)
