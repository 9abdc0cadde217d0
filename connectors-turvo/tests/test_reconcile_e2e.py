"""Gap-free Turvo webhooks, end to end: the real API and worker (real Temporal, the
PostgreSQL inbox), token-authenticated webhooks over HTTP, and the reconcilers of shipments
and orders reading the fake Turvo's list endpoints over TCP. Turvo's webhooks are dropped
for a while; at the end the stores hold every shipment and order, each written once (the
late webhooks of the outage, and the overlap's re-listing, change nothing)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_connector_turvo.times import iso, to_us
from apex_platform.models import RecordKey
from apex_platform.reconcile import ORIGIN_HEADER, reconciler_state
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.stack import StackHarness
from apex_platform.testing.waiting import wait_until

from .conftest import settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@dataclass
class Stack:
    kit: StackHarness
    sink: CountingSink
    fake: FakeTurvo

    async def send(self, doc: dict[str, Any]) -> int | None:
        """Turvo sends a webhook; None while its webhooks are dropped."""
        if self.fake.drop_webhooks:
            self.fake.dropped.append(doc)
            return None
        body, headers = self.fake.webhook(doc)
        return (await self.kit.webhook("turvo", body, headers)).status_code

    async def inbox_rows(self) -> list[dict[str, Any]]:
        return await self.kit.deliveries("turvo")


@pytest.fixture
async def stack(apex_stack: Any, fake: FakeTurvo, base_url: str) -> AsyncIterator[Stack]:
    connector = TurvoConnector(
        settings_for(
            fake,
            base_url,
            reconcile_accounts="shipment,order",
            reconcile_interval_seconds=1,
            reconcile_overlap_seconds=120,
            reconcile_page_size=5,
        )
    )
    sink = CountingSink()
    async with apex_stack(connector, sink, priorities=["P0"], activity_heartbeat_seconds=5, saga=None) as kit:
        yield Stack(kit, sink, fake)


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

    await wait_until(complete, within=120, what=lambda: f"missing {sorted(everything - landed())}")

    # the lost webhooks arrive after all (late): new deliveries, identical records
    for doc in list(stack.fake.dropped):
        assert await stack.send(doc) == 202
    rows = await stack.inbox_rows()
    await stack.kit.wait_delivered("turvo", [r["event_id"] for r in rows], within=60)

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
        state = await reconciler_state(stack.kit.client, "turvo", account, stack.kit.temporal.task_queue_prefix)
        assert state["running"] is True
        assert state["passes"] >= 1
    assert stack.fake.list_queries  # the reconcilers did list
