"""Chaos at the edges: Temporal down, a worker killed mid-write, a worker told to stop
(deliveries go through the inbox and the source's drain workflow)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import Deployment, dumps, front_event, front_headers, wait_rows
from support.procs import wait_for

from apex_platform.settings import TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.stack.temporal_server import TemporalDevServer
from apex_platform.temporal.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(240)]


def post(dep: Deployment, body: bytes) -> httpx.Response:
    return httpx.post(f"{dep.url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=60)


async def test_temporal_down_the_edge_answers_202_and_the_delivery_lands_once_it_is_back(
    tmp_path: Path, apex_postgres_server: Any, pg: asyncpg.Pool
) -> None:
    """Temporal is not on the intake path: with it down the delivery is committed to the
    inbox and acknowledged; a vendor retry is known, not a second delivery; the drain lands
    it exactly once when Temporal is back."""
    temporal = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    temporal.start()
    dep = Deployment(tmp_path, temporal.address, apex_postgres_server.dsn).start()
    try:
        temporal.stop()
        event = front_event()
        eid = event["payload"]["id"]
        body = dumps(event)
        started = time.monotonic()
        resp = post(dep, body)
        assert resp.status_code == 202, resp.text
        assert time.monotonic() - started < 10  # no wait on the workflow service
        assert resp.json() == {"status": "accepted", "event_id": eid, "workflow_id": dep.drain_id()}
        # the vendor retries the same delivery, as Front does: known, so not accepted twice
        retry = post(dep, body)
        assert (retry.status_code, retry.json()["status"]) in {(202, "accepted"), (200, "duplicate")}, retry.text
        assert retry.status_code == 200 or retry.json()["inbox"] == "pending", retry.text
        temporal.start()  # same port, same database file
        doc = await dep.landed(eid, within=120)
        assert doc["records"] >= 3
        n = await pg.fetchval("select count(*) from apex.records where id = $1", eid)
        assert n == 1
        assert post(dep, body).json()["status"] == "duplicate"
    finally:
        dep.stop()
        temporal.stop()


async def test_a_worker_started_before_temporal_waits_for_it_and_drains(
    tmp_path: Path, apex_postgres_server: Any, pg: asyncpg.Pool
) -> None:
    """Processes start in any order: a worker whose Temporal cannot be reached yet keeps
    retrying (it used to exit at once), the API accepts meanwhile, and once Temporal is up
    the delivery lands exactly once."""
    temporal = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    dep = Deployment(tmp_path, temporal.address, apex_postgres_server.dsn).start()
    try:
        event = front_event()
        eid = event["payload"]["id"]
        resp = post(dep, dumps(event))
        assert resp.status_code == 202, resp.text
        worker = dep.workers[0]
        wait_for(
            lambda: worker.output().count("cannot be reached") >= 2 or not worker.running,
            timeout=60,
            what="two failed attempts",
        )
        assert worker.running, worker.output()[-3000:]
        temporal.start()
        doc = await dep.landed(eid, within=120)
        assert doc["records"] >= 3
        assert await pg.fetchval("select count(*) from apex.records where id = $1", eid) == 1
        assert "connected to Temporal" in worker.output()
    finally:
        dep.stop()
        temporal.stop()


async def test_worker_killed_mid_write_lands_exactly_once(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, pg: asyncpg.Pool
) -> None:
    gate = tmp_path / "gate"
    dep = Deployment(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGIN_MODULES="support.gate_plugin",
        APEX_TEST_GATE_DIR=str(gate),
        # its own queues and inbox, so the session's worker (without the gate) does not take the work
        APEX_TEMPORAL_TASK_QUEUE_PREFIX=f"chaos{free_port()}",
    ).start()
    try:
        event = front_event()
        eid = event["payload"]["id"]
        body = dumps(event)
        assert post(dep, body).status_code == 202
        first = dep.workers[0]
        wait_for(lambda: any(gate.glob("entered-*")), timeout=60, what="worker inside the saga write")
        # PostgreSQL is written concurrently with the gate; once it holds the row, the
        # worker dies in the middle of the drain activity's saga write.
        msg_id = event["payload"]["target"]["data"]["id"]
        row = "select changed_by, record::text as record, version from apex.records where id = $1"
        before = await wait_rows(pg, row, msg_id)
        first.kill()
        # the batch was not marked: the delivery waits in the inbox for the retry
        pending = dep.delivery(eid).json()
        assert pending["status"] == "pending", pending
        (gate / "release").write_text("go")
        dep.start_worker()
        doc = await dep.landed(eid, within=120)
        assert doc["records"] >= 3
        assert msg_id in {p["id"] for p in doc["produced"]}
        after = await pg.fetch(row, msg_id)
        assert len(after) == 1
        # the retried saga found the same version already there and changed nothing: the row
        # is still the first attempt's write (only its touched_by stamp is the retry's)
        assert dict(after[0]) == dict(before[0])
    finally:
        dep.stop()


async def test_sigterm_drains_in_flight_work_and_exits_zero(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, pg: asyncpg.Pool
) -> None:
    gate = tmp_path / "gate"
    dep = Deployment(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGIN_MODULES="support.gate_plugin",
        APEX_TEST_GATE_DIR=str(gate),
        APEX_TEMPORAL_TASK_QUEUE_PREFIX=f"drain{free_port()}",
    ).start()
    try:
        event = front_event()
        eid = event["payload"]["id"]
        assert post(dep, dumps(event)).status_code == 202
        worker = dep.workers[0]
        wait_for(lambda: any(gate.glob("entered-*")), timeout=60, what="worker inside the saga write")
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        (gate / "release").write_text("go")
        assert worker.stop(timeout=60) == 0, worker.output()[-2000:]
        # the in-flight batch finished before the worker left: delivered, in one attempt,
        # by the run of the drain loop, with no worker running now
        doc = dep.delivery(eid).json()
        assert (doc["status"], doc["attempts"]) == ("delivered", 1), doc
        assert doc["records"] >= 3
        assert doc["workflow_id"] == dep.drain_id()
        client = await connect(TemporalSettings(address=apex_temporal_server.address))
        handle = client.get_workflow_handle(doc["workflow_id"], run_id=doc["run_id"])
        history = await handle.fetch_history()
        # ... and the activity reported its completion (the batch holding it) before the worker left
        completed = [
            (await client.data_converter.decode_wrapper(e.activity_task_completed_event_attributes.result))[0]
            for e in history.events
            if e.HasField("activity_task_completed_event_attributes")
        ]
        assert any(c["deliveries"] and c["first_seq"] <= doc["seq"] <= c["last_seq"] for c in completed), completed
        failed = [e for e in history.events if e.HasField("activity_task_failed_event_attributes")]
        assert failed == []
        # a new worker goes on with the same drain loop
        dep.start_worker()
        second = front_event()
        resp = post(dep, dumps(second))
        assert resp.status_code == 202, resp.text
        assert resp.json()["workflow_id"] == dep.drain_id()
        landed = await dep.landed(second["payload"]["id"], within=120)
        assert landed["records"] >= 3
        assert landed["workflow_id"] == dep.drain_id()
    finally:
        dep.stop()
