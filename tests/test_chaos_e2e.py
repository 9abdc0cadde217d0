"""Chaos at the edges: Temporal down, a worker killed mid-write, a worker told to stop."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import Deployment, dumps, front_event, front_headers, wait_rows
from support.procs import wait_for
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from apex_platform.stack.ports import free_port
from apex_platform.stack.temporal_server import TemporalDevServer
from apex_platform.temporal.inputs import IngestResult

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(240)]


def post(dep: Deployment, body: bytes) -> httpx.Response:
    return httpx.post(f"{dep.url}/webhooks/frontapp", content=body, headers=front_headers(body), timeout=60)


async def test_temporal_down_is_503_and_the_vendor_retry_lands(
    tmp_path: Path, apex_postgres_server: Any, pg: asyncpg.Pool
) -> None:
    temporal = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    temporal.start()
    dep = Deployment(tmp_path, temporal.address, apex_postgres_server.dsn).start()
    try:
        temporal.stop()
        event = front_event()
        body = dumps(event)
        resp = post(dep, body)
        assert resp.status_code == 503, resp.text
        assert int(resp.headers["Retry-After"]) > 0
        assert "retry" in resp.json()["error"]
        temporal.start()  # same port, same database file
        # the vendor retries the same delivery, as Front does
        wait_for(lambda: post(dep, body).status_code in (200, 202), timeout=60, what="retry accepted")
        client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
        await client.get_workflow_handle(f"apex:frontapp:{event['payload']['id']}", result_type=IngestResult).result()
        n = await pg.fetchval("select count(*) from apex.records where id = $1", event["payload"]["id"])
        assert n == 1
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
        # its own queues, so the session's worker (without the gate) does not take the work
        APEX_TEMPORAL_TASK_QUEUE_PREFIX=f"chaos{free_port()}",
    ).start()
    try:
        event = front_event()
        body = dumps(event)
        assert post(dep, body).status_code == 202
        first = dep.workers[0]
        wait_for(lambda: any(gate.glob("entered-*")), timeout=60, what="worker inside the saga write")
        # PostgreSQL is written concurrently with the gate; once it holds the row, the
        # worker dies in the middle of the saga activity.
        msg_id = event["payload"]["target"]["data"]["id"]
        before = await wait_rows(pg, "select xmin::text as x, version from apex.records where id = $1", msg_id)
        first.kill()
        (gate / "release").write_text("go")
        dep.start_worker()
        client = await Client.connect(apex_temporal_server.address, data_converter=pydantic_data_converter)
        wf_id = f"apex:frontapp:{event['payload']['id']}"
        result = await client.get_workflow_handle(wf_id, result_type=IngestResult).result()
        assert result.write.written + result.write.skipped >= 3
        after = await pg.fetch("select xmin::text as x, version from apex.records where id = $1", msg_id)
        assert len(after) == 1
        # the retried saga found the same version already there and did not write it again
        assert (after[0]["x"], after[0]["version"]) == (before[0]["x"], before[0]["version"])
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
        assert post(dep, dumps(event)).status_code == 202
        worker = dep.workers[0]
        wait_for(lambda: any(gate.glob("entered-*")), timeout=60, what="worker inside the saga write")
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        (gate / "release").write_text("go")
        assert worker.stop(timeout=60) == 0, worker.output()[-2000:]
        client = await Client.connect(apex_temporal_server.address, data_converter=pydantic_data_converter)
        handle = client.get_workflow_handle(f"apex:frontapp:{event['payload']['id']}", result_type=IngestResult)
        history = await handle.fetch_history()
        # the in-flight saga activity completed and reported before the worker left
        completed = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
        assert len(completed) == 3, history.events
        failed = [e for e in history.events if e.HasField("activity_task_failed_event_attributes")]
        assert failed == []
        (gate / "release").write_text("go")
        dep.start_worker()
        result = await handle.result()
        assert result.write.written >= 3
    finally:
        dep.stop()
