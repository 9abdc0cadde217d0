"""Gap-free Turvo webhooks, end to end: the real API and worker (real Temporal, the
PostgreSQL inbox), token-authenticated webhooks over HTTP, and the reconcilers of shipments
and orders reading the fake Turvo's list endpoints over TCP. Turvo's webhooks are dropped
for a while; at the end the stores hold every shipment and order, each written once (the
late webhooks of the outage, and the overlap's re-listing, change nothing)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from apex_connector_turvo import TurvoConnector, TurvoSettings, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_connector_turvo.times import iso, to_us
from apex_platform import hookimpl
from apex_platform.contracts import Previous
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.models import Record, RecordKey
from apex_platform.reconcile import ORIGIN_HEADER, reconciler_state
from apex_platform.runtime import Runtime
from apex_platform.serve import serve
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import connect
from apex_platform.testing.inbox import wait_delivered
from apex_platform.testing.sinks import MemorySink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


class ChangeCountingSink(MemorySink):
    """A MemorySink that counts, per record id, the writes that changed what it holds."""

    def __init__(self) -> None:
        super().__init__("memory")
        self.changes: Counter[str] = Counter()

    async def write(self, records: Sequence[Record], *, writer: str | None = None) -> Previous:
        changed = await super().write(records, writer=writer)
        self.changes.update(key[1] for key in changed)
        return changed


@dataclass
class Stack:
    url: str
    client: Client
    sink: ChangeCountingSink
    fake: FakeTurvo
    temporal: TemporalSettings
    dsn: str
    schema: str

    async def send(self, doc: dict[str, Any]) -> int | None:
        """Turvo sends a webhook; None while its webhooks are dropped."""
        if self.fake.drop_webhooks:
            self.fake.dropped.append(doc)
            return None
        body, headers = self.fake.webhook(doc)
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.post(f"{self.url}/webhooks/turvo", content=body, headers=headers)
        return resp.status_code

    async def inbox_rows(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                f'SELECT event_id, status, headers::text AS headers FROM "{self.schema}".deliveries '
                "WHERE source = 'turvo' ORDER BY seq"
            )
        finally:
            await conn.close()
        return [{"event_id": r["event_id"], "status": r["status"], "headers": json.loads(r["headers"])} for r in rows]


@pytest.fixture
async def stack(
    apex_temporal_server: Any, apex_postgres_server: Any, fake: FakeTurvo, base_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    connector = TurvoConnector(
        TurvoSettings(
            base_url=base_url,
            api_key=fake.api_key,  # type: ignore[arg-type]
            client_id=fake.client_id,
            client_secret=fake.client_secret,  # type: ignore[arg-type]
            username=fake.username,
            password=fake.password,  # type: ignore[arg-type]
            webhook_token=fake.webhook_token,  # type: ignore[arg-type]
            http_retries=0,
            reconcile_accounts="shipment,order",
            reconcile_interval_seconds=1,
            reconcile_overlap_seconds=120,
            reconcile_page_size=5,
        )
    )
    sink = ChangeCountingSink()

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
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(runtime, api=True, worker=True, priorities=["P0"], port=port, stop=stop, started=ready)
    )
    await asyncio.wait_for(ready.wait(), timeout=60)
    client = await connect(TemporalSettings(address=apex_temporal_server.address))
    yield Stack(f"http://127.0.0.1:{port}", client, sink, fake, temporal, apex_postgres_server.dsn, inbox.schema_name)
    stop.set()
    await asyncio.wait_for(task, 60)


def change(fake: FakeTurvo, collection: str, n: int) -> dict[str, Any]:
    """Entity `n` of `collection` changes at Turvo now; the webhook that says so."""
    updated = iso(time.time_ns() // 1000)
    if collection == "shipments":
        doc = copy.deepcopy(samples.SHIPMENT_2)
        doc.update(id=3000000000 + n, customId=f"G{n:04d}", updated=updated)
        fake.put(collection, doc)
        return {
            "tenantId": "1203",
            "eventName": "SHIPMENT_STATUS_UPDATE",
            "eventTime": updated,
            "eventPayload": {"id": doc["id"]},
        }
    doc = copy.deepcopy(samples.ORDER_2)
    doc.update(id=8000000 + n, customId=f"SO-G{n:04d}", updated=updated)
    fake.put(collection, doc)
    return {"entityType": "ORDER", "entityId": str(doc["id"]), "eventId": f"wh-{doc['id']}-1", "timestamp": updated}


async def wait_for(condition: Any, within: float, what: Any) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(what())


async def test_dropped_turvo_webhooks_heal_and_every_entity_is_written_once(stack: Stack) -> None:
    changes: list[tuple[str, dict[str, Any]]] = []
    statuses = []
    for n in range(12):
        stack.fake.drop_webhooks = 3 <= n < 9  # Turvo's webhooks are lost for a while
        collection = "orders" if n % 3 == 2 else "shipments"
        doc = change(stack.fake, collection, n)
        changes.append((f"{collection[:-1]}:{3000000000 + n if collection == 'shipments' else 8000000 + n}", doc))
        statuses.append(await stack.send(doc))
        await asyncio.sleep(0.01)
    stack.fake.drop_webhooks = False
    assert {s for s in statuses if s is not None} == {202}
    assert len(stack.fake.dropped) == 6
    everything = {record_id for record_id, _ in changes}

    def landed() -> set[str]:
        return {key.id for key in stack.sink.rows if key.id in everything}

    async def complete() -> bool:
        return landed() == everything

    await wait_for(complete, 120, lambda: f"missing {sorted(everything - landed())}")

    # the lost webhooks arrive after all (late): new deliveries, identical records
    for doc in list(stack.fake.dropped):
        assert await stack.send(doc) == 202
    rows = await stack.inbox_rows()
    await wait_delivered(stack.dsn, "turvo", [r["event_id"] for r in rows], schema=stack.schema, within=60)

    # the stores: every shipment and order, each written once
    assert landed() == everything
    assert {record_id: stack.sink.changes[record_id] for record_id in everything} == dict.fromkeys(everything, 1)
    for record_id, doc in changes:  # at the version of the change: the entity's update time
        assert stack.sink.rows[RecordKey("turvo", record_id)].version == to_us(doc.get("eventTime") or doc["timestamp"])
    # the entities no webhook brought in time came from the listing, one delivery per state
    reconciled = [r for r in rows if r["headers"].get(ORIGIN_HEADER, "").startswith("reconcile:")]
    listed = Counter(r["event_id"] for r in reconciled)
    assert all(count == 1 for count in listed.values())
    for record_id, _ in changes[3:9]:
        kind, entity_id = record_id.split(":")
        assert any(e.startswith(f"reconcile-{kind}-{entity_id}-") for e in listed), record_id
    for account in ("shipment", "order"):
        state = await reconciler_state(stack.client, "turvo", account, stack.temporal.task_queue_prefix)
        assert state["running"] is True
        assert state["passes"] >= 1
    assert stack.fake.list_queries  # the reconcilers did list
