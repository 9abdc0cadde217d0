"""Gap-free Front webhooks, end to end: the real API and worker (real Temporal, the
PostgreSQL inbox), signed webhooks over HTTP, and the reconciler reading the fake Front's
List Events over TCP. Front's webhooks are dropped for a while (some events are never
delivered, some are delivered during the outage and also listed); at the end the stores
hold every event exactly once, each from one inbox delivery."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, FrontSettings, samples
from apex_connector_frontapp.fake_vendor import FakeFront, FakeServer, application_webhook, send_webhook
from apex_platform.reconcile import ORIGIN_HEADER, reconciler_state
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.stack import StackHarness
from apex_platform.testing.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SECRET = "front-app-secret-for-e2e-tests"


@dataclass
class Stack:
    kit: StackHarness
    sink: MemorySink
    fake: FakeFront

    async def post(self, event: dict[str, Any], webhook_type: str) -> int:
        url = f"{self.kit.url}/webhooks/frontapp"
        response = await send_webhook(url, application_webhook(event, webhook_type), SECRET)
        return response.status_code

    async def inbox_rows(self) -> list[dict[str, Any]]:
        return await self.kit.deliveries("frontapp")

    def event_ids(self) -> set[str]:
        return {key.id for key, record in self.sink.rows.items() if record.kind == "frontapp.event"}


@pytest.fixture
def fake_front() -> Iterator[FakeFront]:
    with FakeServer(FakeFront()) as server:
        yield server.fake


@pytest.fixture
async def stack(apex_stack: Any, fake_front: FakeFront) -> AsyncIterator[Stack]:
    connector = FrontConnector(
        FrontSettings(
            signing_secret=SECRET,  # type: ignore[arg-type]
            api_url=fake_front.base_url,
            api_token=fake_front.token,  # type: ignore[arg-type]
            reconcile_accounts="default",
            reconcile_interval_seconds=1,
            reconcile_overlap_seconds=120,
            reconcile_page_size=5,
            reconcile_requests_per_minute=600,
        )
    )
    sink = MemorySink("memory")
    # Front rate-limits the reconciler's first call: it waits Front's Retry-After and goes on
    fake_front.rate_limit_next, fake_front.retry_after = 1, "1"
    async with apex_stack(connector, sink, priorities=["P0"], activity_heartbeat_seconds=5, saga=None) as kit:
        yield Stack(kit, sink, fake_front)


def make_event(n: int, emitted_at: float) -> tuple[dict[str, Any], str]:
    """Event `n` of the shipper conversation (round robin) and its application webhook type."""
    envelope = samples.events()[n % len(samples.EVENTS)]
    payload: dict[str, Any] = envelope["payload"]
    payload["id"] = f"evt_gap{n:03d}"
    payload["emitted_at"] = emitted_at
    return payload, envelope["type"]


async def test_an_outage_of_front_webhooks_heals_and_every_event_lands_once(stack: Stack) -> None:
    t0 = time.time() - 300
    events = [make_event(n, round(t0 + n * 1.5, 3)) for n in range(24)]
    outage = range(8, 16)
    delivered_in_outage = {9, 12}  # these webhooks still got through (and are listed too)
    statuses: dict[int, int] = {}
    for n, (event, webhook_type) in enumerate(events):
        stack.fake.emit(event)  # Front records the event: List Events shows it
        if n not in outage or n in delivered_in_outage:
            statuses[n] = await stack.post(event, webhook_type)
    # 202 accepted, or 200 when the reconciler had already listed that event: one delivery either way
    assert set(statuses.values()) <= {200, 202}, statuses
    never_delivered = {events[n][0]["id"] for n in outage if n not in delivered_in_outage}
    everything = {event["id"] for event, _ in events}

    async def complete() -> bool:
        return stack.event_ids() >= everything

    await wait_until(complete, within=120, what=f"missing {sorted(everything - stack.event_ids())}")

    # the dropped webhooks arrive late after all (an application webhook's retry): duplicates
    for n in sorted(outage):
        if n not in delivered_in_outage:
            assert await stack.post(*events[n]) == 200

    rows = await stack.inbox_rows()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["event_id"], []).append(row)
    assert set(by_id) == everything  # nothing but these events, and each of them
    assert all(len(v) == 1 for v in by_id.values())  # one delivery per event: dedupe held
    assert all(v[0]["status"] == "delivered" for v in by_id.values())
    reconciled = {e for e, v in by_id.items() if v[0]["headers"].get(ORIGIN_HEADER) == "reconcile:default"}
    assert never_delivered <= reconciled  # the events no webhook brought came from the listing
    assert stack.event_ids() == everything  # the stores: every event, exactly once
    for event_id in everything:  # each event record came from its one delivery
        assert {r["id"] for r in await stack.kit.produced("frontapp", event_id)} >= {event_id}

    # the listing was rate-limited once and the reconciler waited and went on
    assert stack.fake.statuses()[0] == 429
    assert 200 in stack.fake.statuses()[1:]
    newest = events[-1][0]["emitted_at"]
    prefix = stack.kit.temporal.task_queue_prefix

    async def cursor_at_newest() -> bool:  # a pass that saw the newest event has completed
        state = await reconciler_state(stack.kit.client, "frontapp", "default", prefix)
        return bool(state.get("cursor")) and json.loads(state["cursor"])["after"] >= newest - 0.001

    await wait_until(cursor_at_newest, within=60, what="the reconciler's cursor never reached the newest event")
    state = await reconciler_state(stack.kit.client, "frontapp", "default", prefix)
    assert state["running"] is True
    assert state["passes"] >= 1
    assert state["found"] >= len(everything)
    assert state["new"] >= len(never_delivered)

    # the operator's view: `apex-platform sources list --json` (a second process, as from a terminal)
    listed = await sources_list_json(stack, stack.kit.temporal.task_queue_prefix)
    front = next(item for item in listed if item["name"] == "frontapp")
    assert (front["mode"], front["priority"]) == ("webhook", "P0")  # the existing keys stay
    (rec,) = front["reconcile"]
    assert (rec["account"], rec["running"], rec["workflow_id"]) == (
        "default",
        True,
        f"{stack.kit.temporal.task_queue_prefix}:reconcile:frontapp:default",
    )
    assert rec["new"] >= len(never_delivered)
    assert json.loads(rec["cursor"])["after"] >= newest - 0.001

    # the reconciler's history (429 retry, pages, waits) replays against the workflow code
    from temporalio.worker import Replayer

    from apex_platform.temporal.worker import sandbox_runner, workflows

    history = await stack.kit.client.get_workflow_handle(rec["workflow_id"]).fetch_history()
    replayer = Replayer(
        workflows=workflows(), data_converter=stack.kit.client.data_converter, workflow_runner=sandbox_runner()
    )
    await replayer.replay_workflow(history)


async def sources_list_json(stack: Stack, prefix: str) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "APEX_PLUGINS": "frontapp",
        "APEX_TEMPORAL_ADDRESS": stack.kit.temporal.address,
        "APEX_TEMPORAL_TASK_QUEUE_PREFIX": prefix,
        "APEX_FRONTAPP_RECONCILE_ACCOUNTS": "default",
        "APEX_HOME": str(stack.kit.home),
    }
    cli = Path(sys.executable).with_name("apex-platform")
    proc = await asyncio.create_subprocess_exec(
        str(cli), "sources", "list", "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    listed: list[dict[str, Any]] = json.loads(out)
    return listed
