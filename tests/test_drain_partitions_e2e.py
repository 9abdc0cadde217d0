"""Drain partitions end to end (issue 15, scale-out): with APEX_TEMPORAL_DRAIN_PARTITIONS=2
one Samsara backlog, accepted by the API while no worker runs, is drained by two worker
processes through two drain loops on the session's Temporal, PostgreSQL and Redis. Every
delivery is delivered once, by the loop of its partition; both loops did work; every
record is in PostgreSQL and Redis once. All deliveries share one route record, so the two
loops write the same record concurrently (the saga's record locks: one waits or retries)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cluster import Cluster, samsara_deliveries
from support.senders import SAMSARA_ROUTE, samsara_record_id, send_all
from temporalio.client import Client

from apex_platform.models import RecordKey
from apex_platform.partitions import partition_of
from apex_platform.temporal.workflows import DrainWorkflow
from apex_platform.testing.inbox import wait_delivered
from apex_sink_redis import RedisSink, RedisSinkSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DELIVERIES = 80


@pytest.fixture
def cluster(
    tmp_path: Path, apex_temporal_server: Any, apex_postgres_server: Any, apex_redis_server: Any
) -> Iterator[Cluster]:
    tag = f"dp{uuid.uuid4().hex[:8]}"
    c = Cluster(
        tmp_path,
        apex_temporal_server.address,
        apex_postgres_server.dsn,
        APEX_PLUGINS="samsara,postgres,redis",
        APEX_REDIS_URL=apex_redis_server.url,
        APEX_REDIS_PREFIX=tag,
        APEX_TEMPORAL_DRAIN_PARTITIONS="2",
        APEX_INBOX_BATCH_MAX_COUNT="10",  # many batches per loop, so the two overlap
    )
    c.env["APEX_TEST_REDIS_PREFIX"] = tag
    yield c
    c.stop()


async def test_two_workers_drain_one_backlog_through_two_partitions_once_each(
    cluster: Cluster, temporal_client: Client
) -> None:
    url = cluster.start_api()
    deliveries = samsara_deliveries(DELIVERIES)
    keys = [d.key for d in deliveries]
    outcome = await send_all([url], deliveries, concurrency=16)
    assert set(outcome.acknowledged) == set(keys)
    assert {partition_of(k, 2) for k in keys} == {0, 1}

    cluster.start_worker()
    cluster.start_worker()
    try:
        await wait_delivered(cluster.dsn, "samsara", keys, schema=cluster.inbox_schema, within=180)
    except TimeoutError:
        pytest.fail(cluster.logs())

    prefix = cluster.env["APEX_TEMPORAL_TASK_QUEUE_PREFIX"]
    ids = [f"{prefix}:drain:samsara:0of2", f"{prefix}:drain:samsara:1of2"]
    rows = await cluster.fetch(
        f"SELECT event_id, status, workflow_id FROM {cluster.inbox_schema}.deliveries WHERE source = 'samsara'"
    )
    assert len(rows) == DELIVERIES
    # each delivery landed through the loop of its own partition
    assert {r["event_id"]: r["workflow_id"] for r in rows} == {k: ids[partition_of(k, 2)] for k in keys}

    # the loops' own counts: both worked, and together they drained each delivery once
    states = [await temporal_client.get_workflow_handle(i).query(DrainWorkflow.state) for i in ids]
    assert [(s.partition, s.partitions) for s in states] == [(0, 2), (1, 2)]
    assert all(s.deliveries > 0 for s in states), states
    assert sum(s.deliveries for s in states) == DELIVERIES, states
    assert [s.deliveries for s in states] == [sum(1 for k in keys if partition_of(k, 2) == p) for p in (0, 1)]
    # `sources list --json` shows both loops (beside the keys it always had)
    listed = {item["name"]: item for item in cluster.cli("sources", "list", "--json")}
    drains = listed["samsara"]["drains"]
    assert [(d["workflow_id"], d["partition"], d["partitions"], d["running"]) for d in drains] == [
        (ids[0], 0, 2, True),
        (ids[1], 1, 2, True),
    ]
    assert [d["deliveries"] for d in drains] == [s.deliveries for s in states]
    assert {"name", "mode", "priority"} <= set(listed["samsara"])
    # no drain of the one-loop layout was started
    single = [wf async for wf in temporal_client.list_workflows(f"WorkflowId = '{prefix}:drain:samsara'")]
    assert single == []

    # every record once in PostgreSQL, and in Redis
    expected = {samsara_record_id(k) for k in keys} | {f"route:{SAMSARA_ROUTE}"}
    stored = await cluster.fetch(
        f"SELECT id, count(*) AS n FROM {cluster.sink_schema}.records WHERE source = 'samsara' GROUP BY id"
    )
    assert {r["id"]: r["n"] for r in stored} == dict.fromkeys(expected, 1)
    redis = RedisSink(
        RedisSinkSettings(url=cluster.env["APEX_REDIS_URL"], prefix=cluster.env["APEX_TEST_REDIS_PREFIX"])
    )
    await redis.open()
    try:
        found = await redis.read([RecordKey("samsara", i) for i in expected])
    finally:
        await redis.close()
    assert {k.id for k in found} == expected

    # the API names the loop that drains each delivery (here: a redelivery, answered duplicate)
    again = deliveries[0]
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(f"{url}{again.path}", content=again.body, headers=again.sign(again.body))
    assert resp.status_code == 200, resp.text
    assert resp.json()["workflow_id"] == ids[partition_of(again.key, 2)]
