"""End to end: Turvo webhooks over real HTTP into the real API app, through the real Temporal
dev server and an in-process worker (which fetches each entity from the fake Turvo API over
TCP), into a contract-keeping memory sink."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from apex_connector_turvo import TurvoConnector, TurvoSettings, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_platform import hookimpl
from apex_platform.models import RecordKey
from apex_platform.runtime import Runtime
from apex_platform.serve import serve
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.inputs import IngestResult
from apex_platform.testing.sinks import MemorySink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@dataclass
class Stack:
    url: str
    client: Client
    sink: MemorySink
    fake: FakeTurvo
    connector: TurvoConnector

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        # async: the API server runs on this test's event loop
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(f"{self.url}/webhooks/turvo", content=body, headers=headers)

    async def result(self, wf_id: str) -> IngestResult:
        handle = self.client.get_workflow_handle(wf_id, result_type=IngestResult)
        return await asyncio.wait_for(handle.result(), timeout=60)

    async def started(self, wf_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(wf_id).describe()
        except RPCError:
            return False
        return True


@pytest.fixture
async def stack(apex_temporal_server: Any, fake: FakeTurvo, base_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = TurvoSettings(
        base_url=base_url,
        api_key=fake.api_key,  # type: ignore[arg-type]
        client_id=fake.client_id,
        client_secret=fake.client_secret,  # type: ignore[arg-type]
        username=fake.username,
        password=fake.password,  # type: ignore[arg-type]
        webhook_token=fake.webhook_token,  # type: ignore[arg-type]
        http_retries=0,
    )
    connector = TurvoConnector(settings)
    sink = MemorySink("memory")

    class Plugin:
        @hookimpl
        def apex_register_sources(self, register: Any) -> None:
            register(connector)

        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(sink)

    temporal = TemporalSettings(
        address=apex_temporal_server.address, task_queue_prefix=f"t{uuid.uuid4().hex[:8]}", activity_heartbeat_seconds=5
    )
    runtime = Runtime.build(
        [], modules=[Plugin()], use_entry_points=False, core=CoreSettings(home=tmp_path), temporal=temporal
    )
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(runtime, api=True, worker=True, priorities=["P0"], port=port, stop=stop, started=ready)
    )
    await asyncio.wait_for(ready.wait(), timeout=60)
    client = await Client.connect(apex_temporal_server.address, data_converter=pydantic_data_converter)
    yield Stack(f"http://127.0.0.1:{port}", client, sink, fake, connector)
    stop.set()
    await asyncio.wait_for(task, 60)


async def test_sample_webhooks_land_fetched_and_parsed(stack: Stack) -> None:
    wf_ids = []
    for doc in samples.WEBHOOKS:
        body, headers = stack.fake.webhook(doc)
        resp = await stack.post(body, headers)
        assert resp.status_code == 202, resp.text
        wf_ids.append(resp.json()["workflow_id"])
    assert wf_ids[1] == "apex:turvo:wh-7730012-0001"
    results = [await stack.result(w) for w in wf_ids]
    assert results[0].records == 1 + 2 + 4  # shipment, two stops, four status changes
    rows = stack.sink.rows
    ship = rows[RecordKey("turvo", "shipment:1000304706")]
    assert ship.attributes["custom_id"] == "M290969"
    assert ship.attributes["webhook"]["event_name"] == "SHIPMENT_STATUS_UPDATE"
    assert RecordKey("turvo", "shipment:1000304706:stop:gr-82") in rows
    assert rows[RecordKey("turvo", "carrier:44120")].entities[0].properties["mc_number"] == "804215"
    assert rows[RecordKey("turvo", "order:7730012")].attributes["shipment_ids"] == ["1000304706"]
    assert RecordKey("turvo", "customer:973069") in rows
    assert stack.fake.grants == ["password"]  # one token for the whole run

    # the same delivery again: a duplicate, nothing new starts
    body, headers = stack.fake.webhook(samples.WEBHOOKS[0])
    again = await stack.post(body, headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


async def test_bad_token_is_401_and_starts_nothing(stack: Stack) -> None:
    doc = {**samples.WEBHOOKS[0], "eventTime": "2026-03-11T08:00:00Z"}
    body, headers = stack.fake.webhook(doc, token="not-the-token")
    wf_id = "apex:turvo:" + stack.connector.receive({}, body).event_id
    resp = await stack.post(body, headers)
    assert resp.status_code == 401, resp.text
    assert "APEX_TURVO_WEBHOOK_TOKEN" in resp.json()["error"]
    assert stack.fake.webhook_token not in resp.text
    no_header = await stack.post(body, {"Content-Type": "application/json"})
    assert no_header.status_code == 401
    assert not await stack.started(wf_id)
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
    await stack.result((await stack.post(body, headers)).json()["workflow_id"])
    key = RecordKey("turvo", "shipment:1000304706")
    assert not stack.sink.rows[key].deleted
    stack.fake.delete("shipments", samples.SHIPMENT_ID)
    deleted = {
        "eventName": "SHIPMENT_DELETE",
        "eventTime": "2026-03-12T10:00:00Z",
        "eventPayload": {"id": samples.SHIPMENT_ID},
    }
    body, headers = stack.fake.webhook(deleted)
    result = await stack.result((await stack.post(body, headers)).json()["workflow_id"])
    assert result.records == 1
    assert stack.sink.rows[key].deleted
    assert json.loads(body)["eventName"] == "SHIPMENT_DELETE"
