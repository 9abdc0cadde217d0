"""A signed Front webhook over real HTTP → the inbox (real PostgreSQL) → the source's drain
workflow (real Temporal) → real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from conftest import FRONT_SECRET, Deployment, dumps, front_event, front_headers, wait_rows
from temporalio.client import Client, WorkflowExecutionStatus

from apex_platform.temporal.inputs import DrainState
from apex_platform.temporal.workflows import DrainWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROWS = "select id, kind, version from apex.records where source = 'frontapp' and id = any($1::text[]) order by id"


def post(dep: Deployment, body: bytes, headers: dict[str, str], source: str = "frontapp") -> httpx.Response:
    return httpx.post(f"{dep.url}/webhooks/{source}", content=body, headers=headers, timeout=30)


async def drain_state(client: Client, dep: Deployment, seq: int) -> DrainState:
    """The drain workflow's state once it has taken the delivery numbered `seq` (the state
    follows the activity that marked it delivered)."""
    handle = client.get_workflow_handle(dep.drain_id())
    state = await handle.query(DrainWorkflow.state)
    for _ in range(100):
        if state.last_seq is not None and state.last_seq >= seq:
            break
        await asyncio.sleep(0.1)
        state = await client.get_workflow_handle(dep.drain_id()).query(DrainWorkflow.state)
    return state


async def test_signed_event_lands_once(deployment: Deployment, temporal_client: Client, pg: asyncpg.Pool) -> None:
    event = front_event()
    body = dumps(event)
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 202, resp.text
    eid = event["payload"]["id"]
    assert resp.json() == {"status": "accepted", "event_id": eid, "workflow_id": deployment.drain_id()}
    doc = await deployment.landed(eid)
    assert doc["status"] == "delivered"
    assert doc["records"] >= 3
    ids = [eid, event["payload"]["conversation"]["id"], event["payload"]["target"]["data"]["id"]]
    assert sorted(p["id"] for p in doc["produced"]) == sorted(ids)
    rows = await pg.fetch(ROWS, ids)
    assert sorted(r["kind"] for r in rows) == ["frontapp.conversation", "frontapp.event", "frontapp.message"]
    assert {(r["id"], r["version"]) for r in rows} == {(p["id"], p["version"]) for p in doc["produced"]}
    # the drain loop that wrote it keeps running, and its run is the one the inbox names
    assert doc["workflow_id"] == deployment.drain_id()
    desc = await temporal_client.get_workflow_handle(doc["workflow_id"], run_id=doc["run_id"]).describe()
    assert desc.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
    state = await drain_state(temporal_client, deployment, doc["seq"])
    assert (state.source, state.stage) == ("frontapp", "draining")
    assert state.deliveries >= 1
    assert state.last_seq is not None
    assert state.last_seq >= doc["seq"]


async def test_same_delivery_three_times_lands_once(
    deployment: Deployment, temporal_client: Client, pg: asyncpg.Pool
) -> None:
    event = front_event()
    body = dumps(event)
    eid = event["payload"]["id"]
    codes = [post(deployment, body, front_headers(body)) for _ in range(3)]
    assert codes[0].status_code == 202
    assert codes[0].json()["status"] == "accepted"
    assert "inbox" not in codes[0].json()
    for again in codes[1:]:  # known: pending until it lands (it will), a duplicate after
        assert (again.status_code, again.json()["status"]) in {(202, "accepted"), (200, "duplicate")}, again.text
        assert again.status_code == 200 or again.json()["inbox"] == "pending", again.text
    assert {r.json()["workflow_id"] for r in codes} == {deployment.drain_id()}
    assert {r.json()["event_id"] for r in codes} == {eid}
    doc = await deployment.landed(eid)
    # a fourth delivery after it landed is a duplicate
    again = post(deployment, body, front_headers(body))
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": eid, "workflow_id": deployment.drain_id()}
    rows = await pg.fetch("select count(*) from apex.records where id = $1", event["payload"]["id"])
    assert rows[0][0] == 1
    # one row in the inbox, drained once
    n = await pg.fetchval(
        f'select count(*) from "{deployment.inbox_schema}".deliveries where source = $1 and event_id = $2',
        "frontapp",
        eid,
    )
    assert n == 1
    assert doc["attempts"] == 1


@pytest.mark.parametrize(
    "attack",
    ["tampered body", "wrong secret", "stale timestamp", "future timestamp", "no signature"],
)
async def test_bad_signatures_are_401_and_store_nothing(deployment: Deployment, attack: str) -> None:
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
    # nothing was committed to the inbox: nothing can be drained
    missing = deployment.delivery(event["payload"]["id"])
    assert missing.status_code == 404, missing.text


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


def test_after_a_413_the_next_request_on_the_connection_is_answered_on_its_own(deployment: Deployment) -> None:
    """The 413 is sent before the body is read; the connection is then closed, so the
    unread rest of the body is never parsed as the next request (it was answered 431)."""
    big = b"x" * (1024 * 1024 + 10)
    with httpx.Client(base_url=deployment.url, timeout=30) as http:
        for _ in range(3):
            resp = http.post("/webhooks/frontapp", content=big, headers={"Content-Type": "application/json"})
            assert resp.status_code == 413, resp.text
            assert resp.headers["connection"] == "close"
            assert resp.json()["detail"] == "Request Entity Too Large"
            assert http.get("/healthz").status_code == 200


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
    """A body of ~440 KB stays in the inbox: the drain run that wrote it carried only
    counts and sequence numbers through Temporal."""
    event = front_event(text="Pallet manifest line. " * 20000)  # ~440 KB
    body = dumps(event)
    assert len(body) > 400_000
    resp = post(deployment, body, front_headers(body))
    assert resp.status_code == 202, resp.text
    eid = event["payload"]["id"]
    doc = await deployment.landed(eid)
    await drain_state(temporal_client, deployment, doc["seq"])  # the run has recorded the batch
    history = await temporal_client.get_workflow_handle(doc["workflow_id"], run_id=doc["run_id"]).fetch_history()
    completed = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    assert completed, "the drain run completed no batch"
    largest = max(e.ByteSize() for e in history.events)
    assert largest < 10_000, f"a history event of {largest} bytes"
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
    from temporalio.worker import Replayer

    from apex_platform.temporal.worker import sandbox_runner, workflows

    event = front_event()
    body = dumps(event)
    wf_id = post(deployment, body, front_headers(body)).json()["workflow_id"]
    doc = await deployment.landed(event["payload"]["id"])
    await drain_state(temporal_client, deployment, doc["seq"])
    assert doc["workflow_id"] == wf_id
    fresh = await temporal_client.get_workflow_handle(wf_id, run_id=doc["run_id"]).fetch_history()
    assert any(e.HasField("activity_task_completed_event_attributes") for e in fresh.events)
    # the platform's converter: the fresh history is encrypted, the kept ones are not (they pass through)
    converter = temporal_client.data_converter
    replayer = Replayer(workflows=workflows(), data_converter=converter, workflow_runner=sandbox_runner())
    await replayer.replay_workflow(fresh)
    kept = sorted((Path(__file__).parent / "histories").glob("*.json"))
    assert kept, "no recorded histories"
    for path in kept:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await replayer.replay_workflow(history)
