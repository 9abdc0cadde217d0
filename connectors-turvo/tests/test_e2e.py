"""End to end: Turvo webhooks over real HTTP into the real API app, through the real Temporal
dev server and an in-process worker (which fetches each entity from the fake Turvo API over
TCP), into a contract-keeping memory sink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from apex_connector_turvo import TurvoConnector, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_platform.models import RecordKey
from apex_platform.temporal.worker import drain_id
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.stack import StackHarness

from .conftest import settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@dataclass
class Stack:
    kit: StackHarness
    sink: MemorySink
    fake: FakeTurvo
    connector: TurvoConnector

    @property
    def prefix(self) -> str:
        return self.kit.prefix

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.kit.webhook("turvo", body, headers)

    async def landed(self, event_id: str) -> list[dict[str, Any]]:
        """Once the delivery is drained: the records (id, version) it produced."""
        await self.kit.wait_delivered("turvo", [event_id], within=60)
        return await self.kit.produced("turvo", event_id)

    async def delivery(self, event_id: str) -> dict[str, Any]:
        """The inbox row of one delivery: status, attempts, last_error."""
        rows = await self.kit.deliveries("turvo", event_id)
        return rows[0] if rows else {}

    def reconfigure(self, **changes: Any) -> None:
        """Change the connector's settings as an operator would (the next fetch uses them)."""
        self.connector._settings = self.connector.settings.model_copy(update=changes)
        self.connector._client = None

    async def in_inbox(self, event_id: str) -> bool:
        """Whether the inbox holds this key."""
        return bool(await self.kit.deliveries("turvo", event_id))


@pytest.fixture
async def stack(apex_stack: Any, fake: FakeTurvo, base_url: str) -> AsyncIterator[Stack]:
    settings = settings_for(
        fake,
        base_url,
        not_found_retry_seconds=0,
        auth_backoff_seconds=1,  # a delivery waiting for a fixed setting is tried again each second
    )
    connector = TurvoConnector(settings)
    sink = MemorySink("memory")
    async with apex_stack(connector, sink, priorities=["P0"], activity_heartbeat_seconds=5, saga=None) as kit:
        yield Stack(kit, sink, fake, connector)


async def test_sample_webhooks_land_fetched_and_parsed(stack: Stack) -> None:
    event_ids = []
    for doc in samples.WEBHOOKS:
        body, headers = stack.fake.webhook(doc)
        resp = await stack.post(body, headers)
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "accepted"
        assert resp.json()["workflow_id"] == drain_id("turvo", stack.prefix)
        event_ids.append(resp.json()["event_id"])
    assert event_ids[1] == "wh-7730012-0001"
    results = [await stack.landed(e) for e in event_ids]
    assert len(results[0]) == 1 + 2 + 4  # shipment, two stops, four status changes
    assert {"shipment:1000304706", "shipment:1000304706:stop:gr-82"} <= {r["id"] for r in results[0]}
    rows = stack.sink.rows
    ship = rows[RecordKey("turvo", "shipment:1000304706")]
    assert ship.attributes["custom_id"] == "M290969"
    assert ship.attributes["webhook"] == {"version_source": "entity.updated"}
    assert RecordKey("turvo", "shipment:1000304706:stop:gr-82") in rows
    assert rows[RecordKey("turvo", "carrier:44120")].entities[0].properties["mc_number"] == "804215"
    assert rows[RecordKey("turvo", "order:7730012")].attributes["shipment_ids"] == ["1000304706"]
    assert RecordKey("turvo", "customer:973069") in rows
    assert stack.fake.grants == ["password"]  # one token for the whole run

    # the same delivery again: a duplicate, nothing new starts
    body, headers = stack.fake.webhook(samples.WEBHOOKS[0])
    again = await stack.post(body, headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


async def test_bad_token_is_401_and_stores_nothing(stack: Stack) -> None:
    doc = {**samples.WEBHOOKS[0], "eventTime": "2026-03-11T08:00:00Z"}
    body, headers = stack.fake.webhook(doc, token="not-the-token")
    event_id = stack.connector.receive({}, body).event_id
    resp = await stack.post(body, headers)
    assert resp.status_code == 401, resp.text
    assert "APEX_TURVO_WEBHOOK_TOKEN" in resp.json()["error"]
    assert stack.fake.webhook_token not in resp.text
    no_header = await stack.post(body, {"Content-Type": "application/json"})
    assert no_header.status_code == 401
    assert not await stack.in_inbox(event_id)
    assert stack.fake.log == []  # nothing was fetched either


@pytest.mark.parametrize(
    ("body", "says"),
    [(b'{"eventName": "SHIPMENT_UPDATE", "eventPayload": {"id": 10', "not valid JSON"), (b'{"id": 3}', "entity type")],
)
async def test_malformed_body_with_a_good_token_is_400(stack: Stack, body: bytes, says: str) -> None:
    _, headers = stack.fake.webhook({})
    resp = await stack.post(body, headers)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["error"]


async def test_a_deleted_shipment_becomes_a_tombstone(stack: Stack) -> None:
    first = {**samples.WEBHOOKS[0], "eventTime": "2026-03-12T09:00:00Z"}
    body, headers = stack.fake.webhook(first)
    await stack.landed((await stack.post(body, headers)).json()["event_id"])
    key = RecordKey("turvo", "shipment:1000304706")
    assert not stack.sink.rows[key].deleted
    stack.fake.delete("shipments", samples.SHIPMENT_ID)
    deleted = {
        "eventName": "SHIPMENT_DELETE",
        "eventTime": "2026-03-12T10:00:00Z",
        "eventPayload": {"id": samples.SHIPMENT_ID},
    }
    body, headers = stack.fake.webhook(deleted)
    result = await stack.landed((await stack.post(body, headers)).json()["event_id"])
    assert [r["id"] for r in result] == ["shipment:1000304706"]
    assert stack.sink.rows[key].deleted
    assert json.loads(body)["eventName"] == "SHIPMENT_DELETE"


async def _land_the_shipment(stack: Stack) -> RecordKey:
    first = {**samples.WEBHOOKS[0], "eventTime": "2026-03-12T09:00:00Z"}
    body, headers = stack.fake.webhook(first)
    await stack.landed((await stack.post(body, headers)).json()["event_id"])
    key = RecordKey("turvo", "shipment:1000304706")
    assert not stack.sink.rows[key].deleted
    return key


async def test_a_404_from_a_missing_permission_leaves_the_shipment_in_every_store(stack: Stack) -> None:
    key = await _land_the_shipment(stack)
    before = stack.sink.rows[key]
    stack.fake.hide("shipments", samples.SHIPMENT_ID)  # the API user lost its permission on it
    update = {**samples.WEBHOOKS[0], "eventTime": "2026-03-12T10:00:00Z"}
    body, headers = stack.fake.webhook(update)
    event_id = (await stack.post(body, headers)).json()["event_id"]
    (produced_record,) = await stack.landed(event_id)
    assert produced_record["id"] == f"unresolved:{event_id}"
    assert stack.sink.rows[key] == before  # untouched: not deleted, not rewritten
    report = stack.sink.rows[RecordKey("turvo", f"unresolved:{event_id}")]
    assert (report.kind, report.deleted) == ("turvo.unresolved", False)
    assert "kept in every store" in report.text


async def test_a_wrong_base_url_leaves_the_shipment_and_the_delivery_waits_until_fixed(stack: Stack) -> None:
    key = await _land_the_shipment(stack)
    good = stack.connector.settings.base_url
    stack.reconfigure(base_url=good.removesuffix("/v1") + "/api/v1")
    update = {**samples.WEBHOOKS[0], "eventTime": "2026-03-12T10:00:00Z"}
    body, headers = stack.fake.webhook(update)
    resp = await stack.post(body, headers)
    assert resp.status_code == 202
    event_id = resp.json()["event_id"]
    for _ in range(300):  # the drain tries it, fails, keeps the reason
        row = await stack.delivery(event_id)
        if row.get("attempts", 0) >= 2:
            break
        await asyncio.sleep(0.1)
    assert row["status"] == "pending"
    assert "APEX_TURVO_BASE_URL" in row["last_error"]
    assert not stack.sink.rows[key].deleted
    stack.reconfigure(base_url=good)  # the operator fixes it: the delivery lands, nothing was lost
    result = await stack.landed(event_id)
    assert "shipment:1000304706" in {r["id"] for r in result}
    assert not stack.sink.rows[key].deleted
