"""A signed Front webhook over real HTTP → real Temporal → real PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import FRONT_SECRET, Deployment, dumps, front_event, front_headers, wait_rows
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from apex_platform.temporal.inputs import IngestResult
from apex_platform.temporal.workflows import IngestWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROWS = "select id, kind, version from apex.records where source = 'frontapp' and id = any($1::text[]) order by id"


def post(dep: Deployment, body: bytes, headers: dict[str, str], source: str = "frontapp") -> httpx.Response:
    return httpx.post(f"{dep.url}/webhooks/{source}", content=body, headers=headers, timeout=30)


async def finished(client: Client, wf_id: str) -> Any:
    return await client.get_workflow_handle(wf_id, result_type=IngestResult).result()


async def not_started(client: Client, wf_id: str) -> bool:
    try:
        await client.get_workflow_handle(wf_id).describe()
    except RPCError:
        return True
    return False


async def test_signed_event_lands_once(deployment: Deployment, temporal_client: Client, pg: asyncpg.Pool) -> None:
    event = front_event()
    body = dumps(event)
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 202, resp.text
    wf_id = resp.json()["workflow_id"]
    eid = event["payload"]["id"]
    assert wf_id == f"apex:frontapp:{eid}"
    result = await finished(temporal_client, wf_id)
    assert result.write.written >= 3
    ids = [eid, event["payload"]["conversation"]["id"], event["payload"]["target"]["data"]["id"]]
    rows = await pg.fetch(ROWS, ids)
    assert sorted(r["kind"] for r in rows) == ["frontapp.conversation", "frontapp.event", "frontapp.message"]
    desc = await temporal_client.get_workflow_handle(wf_id).describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    status = await temporal_client.get_workflow_handle(wf_id).query(IngestWorkflow.status)
    assert status.stage == "completed"


async def test_same_delivery_three_times_lands_once(
    deployment: Deployment, temporal_client: Client, pg: asyncpg.Pool
) -> None:
    event = front_event()
    body = dumps(event)
    codes = [post(deployment, body, front_headers(body)) for _ in range(3)]
    assert [r.status_code for r in codes] == [202, 200, 200]
    assert codes[1].json()["status"] == "duplicate"
    wf_id = codes[0].json()["workflow_id"]
    assert {r.json()["workflow_id"] for r in codes} == {wf_id}
    await finished(temporal_client, wf_id)
    # a fourth delivery after completion is still a duplicate
    again = post(deployment, body, front_headers(body))
    assert again.status_code == 200
    rows = await pg.fetch("select count(*) from apex.records where id = $1", event["payload"]["id"])
    assert rows[0][0] == 1
    listed = [w async for w in temporal_client.list_workflows(f"WorkflowId = '{wf_id}'")]
    assert len(listed) == 1


@pytest.mark.parametrize(
    "attack",
    ["tampered body", "wrong secret", "stale timestamp", "future timestamp", "no signature"],
)
async def test_bad_signatures_are_401_and_start_nothing(
    deployment: Deployment, temporal_client: Client, attack: str
) -> None:
    event = front_event()
    body = dumps(event)
    if attack == "tampered body":
        headers = front_headers(body)
        body = body.replace(b"PRO 4417", b"PRO 9999")
    elif attack == "wrong secret":
        headers = front_headers(body, secret="not-the-secret")
    elif attack == "stale timestamp":
        headers = front_headers(body, ts_ms=int((time.time() - 6 * 60) * 1000))
    elif attack == "future timestamp":
        headers = front_headers(body, ts_ms=int((time.time() + 6 * 60) * 1000))
    else:
        headers = {"Content-Type": "application/json"}
    resp = post(deployment, body, headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]
    assert FRONT_SECRET not in resp.text
    assert await not_started(temporal_client, f"apex:frontapp:{event['payload']['id']}")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"type": "inbound_received", "payload": {"id": "evt_1"', "JSON"),
        (b"[1, 2, 3]", "object"),
        (b'{"type": "inbound_received", "payload": {"type": "x"}}', "id"),
        (b"\xff\xfe not utf-8", "UTF-8"),
    ],
)
def test_malformed_bodies_with_valid_signature_are_400(deployment: Deployment, body: bytes, says: str) -> None:
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 400, resp.text
    assert says.lower() in resp.json()["error"].lower()


def test_oversized_body_is_413(deployment: Deployment) -> None:
    event = front_event(text="x" * (1024 * 1024 + 10))
    body = dumps(event)
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 413


def test_unknown_source_is_404(deployment: Deployment) -> None:
    resp = post(deployment, b"{}", {"Content-Type": "application/json"}, source="nosuchvendor")
    assert resp.status_code == 404
    assert "nosuchvendor" in resp.json()["error"]


def test_front_challenge_handshake(deployment: Deployment) -> None:
    body = dumps({"type": "sync", "authorization": {"id": "cmp_123"}})
    headers = {**front_headers(body), "X-Front-Challenge": "abc123"}
    resp = post(deployment, body, headers)
    assert resp.status_code == 200
    assert resp.json() == {"challenge": "abc123"}


async def test_large_payload_travels_by_reference(
    deployment: Deployment, temporal_client: Client, pg: asyncpg.Pool
) -> None:
    """Bodies over APEX_INLINE_PAYLOAD_BYTES (64 KiB here) go through the blob store; the
    workflow history holds only the reference."""
    event = front_event(text="Pallet manifest line. " * 20000)  # ~440 KB
    body = dumps(event)
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 202, resp.text
    wf_id = resp.json()["workflow_id"]
    await finished(temporal_client, wf_id)
    history = await temporal_client.get_workflow_handle(wf_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert sum(len(p.data) for p in started.input.payloads) < 10_000
    rows = await wait_rows(pg, "select text from apex.records where id = $1", event["payload"]["target"]["data"]["id"])
    assert "Pallet manifest line." in rows[0]["text"]
    assert len(rows[0]["text"]) > 400_000


def test_plugins_health_openapi_and_metrics(deployment: Deployment) -> None:
    plugins = httpx.get(f"{deployment.url}/v1/plugins").json()
    assert {s["name"] for s in plugins["sources"]} >= {"frontapp"}
    assert {s["name"] for s in plugins["sinks"]} >= {"postgres"}
    front = next(s for s in plugins["sources"] if s["name"] == "frontapp")
    assert front["distribution"] == "apex-connector-frontapp"
    assert front["version"]
    ready = httpx.get(f"{deployment.url}/readyz", timeout=20)
    assert ready.status_code == 200, ready.text
    schema = httpx.get(f"{deployment.url}/schema/openapi.json").json()
    assert "/webhooks/{source}" in schema["paths"]
    metrics = httpx.get(f"{deployment.url}/metrics").text
    assert "apex_webhook_deliveries_total" in metrics


async def test_recorded_histories_replay_against_the_current_workflow_code(
    deployment: Deployment, temporal_client: Client
) -> None:
    """Workflow changes must stay deterministic: a fresh history and the histories kept in
    tests/histories/ (recorded from earlier versions) replay without a nondeterminism error."""
    from pathlib import Path

    from temporalio.client import WorkflowHistory
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from apex_platform.temporal.worker import sandbox_runner, workflows

    event = front_event()
    body = dumps(event)
    wf_id = post(deployment, body, front_headers(body)).json()["workflow_id"]
    await finished(temporal_client, wf_id)
    fresh = await temporal_client.get_workflow_handle(wf_id).fetch_history()
    replayer = Replayer(workflows=workflows(), data_converter=pydantic_data_converter, workflow_runner=sandbox_runner())
    await replayer.replay_workflow(fresh)
    kept = sorted((Path(__file__).parent / "histories").glob("*.json"))
    assert kept, "no recorded histories"
    for path in kept:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await replayer.replay_workflow(history)
