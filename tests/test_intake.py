"""Durable intake, as a vendor and an operator see it: every delivery answered 2xx lands
in the stores exactly once, whatever happens to PostgreSQL, Temporal or the processes.

Real parts: `apex-platform api` and `apex-platform worker` as child processes, a real
PostgreSQL of this module's own (so it can be paused and stopped), the session's
Temporal dev server (or one of the test's own, to stop it), signed deliveries built from
the vendors' own published examples, sent over HTTP by senders that behave like vendors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import FRONT_SECRET
from support.cluster import PUSH_KEY, Cluster, front_deliveries, llm_deliveries, samsara_deliveries
from support.procs import ApexProcess, wait_http
from support.senders import SAMSARA_SECRET, Delivery, Outcome, samsara_record_id, send_all

from apex_connector_frontapp.records import MAX_TEXT_CHARS
from apex_platform.settings import TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.stack.postgres import PostgresServer
from apex_platform.stack.temporal_server import TemporalDevServer
from apex_platform.temporal.client import connect
from apex_platform.testing.inbox import wait_delivered
from apex_platform.testing.pytest_plugin import postgres_data_dir

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL for this module only: these tests pause and stop it."""
    with postgres_data_dir(tmp_path_factory, "intake-postgres") as data_dir:
        server = PostgresServer(data_dir, port=free_port())
        server.start()
        try:
            yield server
        finally:
            resume(server)
            server.stop()


def processes(server: PostgresServer) -> list[psutil.Process]:
    assert server.pid is not None
    main = psutil.Process(server.pid)
    return [main, *main.children(recursive=True)]


def pause(server: PostgresServer) -> None:
    """SIGSTOP the postmaster and every backend: the database hangs, nothing is refused."""
    for proc in processes(server):
        proc.suspend()


def resume(server: PostgresServer) -> None:
    if server.pid is None:
        return
    for proc in processes(server):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.resume()


@pytest.fixture
def cluster(tmp_path: Path, apex_temporal_server: Any, own_postgres: PostgresServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, apex_temporal_server.address, own_postgres.dsn)
    yield c
    c.stop()


async def delivered_keys(c: Cluster, source: str) -> dict[str, int]:
    rows = await c.fetch(
        f"SELECT event_id, records FROM {c.inbox_schema}.deliveries WHERE source = $1 AND status = 'delivered'",
        source,
    )
    return {r["event_id"]: r["records"] for r in rows}


async def assert_samsara_landed_once(c: Cluster, event_ids: set[str]) -> None:
    """Every acknowledged RouteStopArrival is one row of the sink (its key), with the
    version the event gives, and its inbox row says it produced its records."""
    rows = await c.fetch(
        f"SELECT id, version FROM {c.sink_schema}.records WHERE source = 'samsara' AND id = ANY($1::text[])",
        [samsara_record_id(e) for e in event_ids],
    )
    assert len(rows) == len(event_ids), f"{len(event_ids) - len(rows)} acknowledged deliveries are not in the store"
    delivered = await delivered_keys(c, "samsara")
    assert event_ids <= set(delivered)
    assert all(delivered[e] and delivered[e] >= 1 for e in event_ids)


async def test_3000_samsara_deliveries_land_once_while_postgres_is_paused_for_45s(
    cluster: Cluster, own_postgres: PostgresServer
) -> None:
    """The issue's scenario: the vendor's own 4.7 KB example, 3,000 deliveries, PostgreSQL
    SIGSTOPped for 45 s mid-traffic. Every acknowledged delivery lands exactly once."""
    url = cluster.start_api()
    cluster.start_worker()
    deliveries = samsara_deliveries(3000)
    assert len(deliveries[0].body) > 4000
    outcome = Outcome()
    sending = asyncio.create_task(
        send_all([url], deliveries, concurrency=32, within=600, resend_acknowledged=0.05, outcome=outcome)
    )
    while len(outcome.acknowledged) < 600 and not sending.done():
        await asyncio.sleep(0.1)
    pause(own_postgres)
    try:
        await asyncio.sleep(45)
    finally:
        resume(own_postgres)
    result = await sending
    assert not result.unacknowledged, cluster.logs()
    assert len(result.acknowledged) == 3000
    assert result.statuses.get(503, 0) + result.attempts > 3000  # the pause was felt by the senders
    await wait_delivered(cluster.dsn, "samsara", result.acknowledged, within=300, schema=cluster.inbox_schema)
    await assert_samsara_landed_once(cluster, result.acknowledged)


async def test_inbox_down_answers_503_with_retry_after_and_the_retries_land(
    cluster: Cluster, own_postgres: PostgresServer
) -> None:
    url = cluster.start_api()
    cluster.start_worker()
    first = front_deliveries(20)
    ok = await send_all([url], first, within=60)
    assert ok.acknowledged == {d.key for d in first}
    # the worker is up and draining (a worker whose sinks cannot open does not start)
    await wait_delivered(cluster.dsn, "frontapp", ok.acknowledged, within=120, schema=cluster.inbox_schema)
    own_postgres.stop()
    try:
        async with httpx.AsyncClient() as http:
            d = front_deliveries(1)[0]
            resp = await http.post(url + d.path, content=d.body, headers=d.sign(d.body), timeout=30)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "5"
        assert "inbox" in resp.json()["error"]
        later = front_deliveries(100)
        outcome = Outcome()
        sending = asyncio.create_task(send_all([url], later, within=300, outcome=outcome))
        await asyncio.sleep(5)
        assert not outcome.acknowledged  # nothing is acknowledged while the inbox is down
    finally:
        own_postgres.start()
    result = await sending
    assert result.acknowledged == {d.key for d in later}
    assert result.retry_after_seen > 0
    keys = [d.key for d in first + later]
    await wait_delivered(cluster.dsn, "frontapp", keys, within=180, schema=cluster.inbox_schema)


async def test_temporal_down_for_60s_the_edge_keeps_answering_202_and_everything_lands_after(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    temporal = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    temporal.start()
    c = Cluster(tmp_path / "c", temporal.address, own_postgres.dsn)
    try:
        url = c.start_api()
        c.start_worker()
        warm = front_deliveries(10)
        assert (await send_all([url], warm, within=60)).acknowledged == {d.key for d in warm}
        await wait_delivered(c.dsn, "frontapp", [d.key for d in warm], within=60, schema=c.inbox_schema)
        temporal.stop()
        down_since = time.monotonic()
        during = front_deliveries(400) + samsara_deliveries(400) + llm_deliveries(100)
        outcome = await send_all([url], during, concurrency=16, within=120)
        assert outcome.statuses == {202: len(during)}, outcome.statuses  # not one 503: Temporal is not on the path
        await asyncio.sleep(max(0.0, 60 - (time.monotonic() - down_since)))
        temporal.start()
        for source, items in (("frontapp", during[:400]), ("samsara", during[400:800]), ("llm", during[800:])):
            keys = outcome.events(d.key for d in items)
            await wait_delivered(c.dsn, source, keys, within=240, schema=c.inbox_schema)
        await assert_samsara_landed_once(c, {d.key for d in during[400:800]})
    finally:
        c.stop()
        temporal.stop()


async def test_a_backlog_drains_in_bounded_batches_once_workers_start(
    cluster: Cluster, apex_temporal_server: Any
) -> None:
    """Deliveries pile up with no worker running; once one starts they drain, and no
    workflow history of the drain grows past 10,000 events (every run checked)."""
    n = int(os.environ.get("APEX_TEST_BACKLOG", "100000"))  # `nox -s tests` runs 10,000, `nox -s intake` 100,000
    url = cluster.start_api()
    deliveries = front_deliveries(n)
    outcome = await send_all([url], deliveries, concurrency=64, within=900)
    assert not outcome.unacknowledged
    status = cluster.cli("inbox", "status", "--json")
    front = next(s for s in status["sources"] if s["source"] == "frontapp")
    assert front["backlog"] == n, status
    assert front["oldest_pending_seconds"] > 0
    cluster.start_worker()
    await wait_delivered(cluster.dsn, "frontapp", [d.key for d in deliveries], within=900, schema=cluster.inbox_schema)
    client = await connect(TemporalSettings(address=apex_temporal_server.address))
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{cluster.tag}:drain:frontapp'")]
    assert runs
    for wf in runs:
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        assert len(history.events) < 10_000
    rows = await cluster.fetch(
        f"SELECT count(*) AS n FROM {cluster.sink_schema}.records WHERE source = 'frontapp' AND kind = 'frontapp.message'"
    )
    assert rows[0]["n"] == n  # one message record per delivery, none twice


async def test_a_worker_without_the_connector_leaves_deliveries_waiting_then_they_land_and_replay_re_drives(
    cluster: Cluster,
) -> None:
    url = cluster.start_api()
    full = cluster.start_worker()  # starts the samsara drain loop, then goes away
    deliveries = samsara_deliveries(50)
    first = await send_all([url], deliveries[:5], within=60)
    await wait_delivered(cluster.dsn, "samsara", first.acknowledged, within=60, schema=cluster.inbox_schema)
    full.stop()
    cluster.start_worker(APEX_PLUGINS="frontapp,postgres")  # polls the same queues, lacks samsara
    rest = await send_all([url], deliveries[5:], within=60)
    assert len(rest.acknowledged) == 45

    async def stuck() -> list[dict[str, Any]]:
        return list(cluster.cli("inbox", "list", "--stuck", "--source", "samsara", "--json"))

    deadline = time.monotonic() + 60
    while not (listed := await stuck()) and time.monotonic() < deadline:
        await asyncio.sleep(1)
    assert listed, cluster.logs()
    assert all(
        "not installed" in (row["last_error"] or "") or "unknown source" in (row["last_error"] or "") for row in listed
    )
    # one source's trouble never delays another: Front lands while Samsara waits
    front = await send_all([url], front_deliveries(20), within=60)
    await wait_delivered(cluster.dsn, "frontapp", front.acknowledged, within=30, schema=cluster.inbox_schema)
    assert all(row["status"] == "pending" for row in await stuck())
    cluster.start_worker()  # a worker that has samsara: the waiting deliveries land
    await wait_delivered(cluster.dsn, "samsara", rest.acknowledged, within=120, schema=cluster.inbox_schema)
    # the worker without the connector goes: a re-driven delivery then never waits out a
    # retry backoff that grew while only that worker was there
    cluster.workers[1].stop()
    await assert_samsara_landed_once(cluster, first.acknowledged | rest.acknowledged)
    assert cluster.cli("inbox", "list", "--stuck", "--json") == []

    one = sorted(rest.acknowledged)[0]
    before = await cluster.fetch(f"SELECT attempts FROM {cluster.inbox_schema}.deliveries WHERE event_id = $1", one)
    replayed = cluster.cli("inbox", "replay", "--source", "samsara", one, "--json")
    assert replayed == {"replayed": 1, "body_expired": 0}
    await wait_delivered(cluster.dsn, "samsara", [one], within=60, schema=cluster.inbox_schema)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = await cluster.fetch(
            f"SELECT attempts, status FROM {cluster.inbox_schema}.deliveries WHERE event_id = $1", one
        )
        if after[0]["status"] == "delivered" and after[0]["attempts"] == 1:
            break
        await asyncio.sleep(0.5)
    assert before[0]["attempts"] >= 1
    assert after[0]["status"] == "delivered"
    await assert_samsara_landed_once(cluster, {one})


async def test_two_apis_and_two_workers_lose_nothing_when_one_of_each_is_killed_mid_load(cluster: Cluster) -> None:
    urls = [cluster.start_api(), cluster.start_api()]
    w1 = cluster.start_worker()
    cluster.start_worker()
    deliveries = front_deliveries(1000) + samsara_deliveries(1500) + llm_deliveries(300)
    outcome = Outcome()
    sending = asyncio.create_task(send_all(urls, deliveries, concurrency=32, within=600, outcome=outcome))
    while len(outcome.acknowledged) < 800 and not sending.done():
        await asyncio.sleep(0.1)
    cluster.apis[1][0].kill()
    w1.kill()
    result = await sending
    assert not result.unacknowledged, cluster.logs()
    for source, items in (
        ("frontapp", deliveries[:1000]),
        ("samsara", deliveries[1000:2500]),
        ("llm", deliveries[2500:]),
    ):
        keys = result.events(d.key for d in items)
        await wait_delivered(cluster.dsn, source, keys, within=300, schema=cluster.inbox_schema)
    await assert_samsara_landed_once(cluster, {d.key for d in deliveries[1000:2500]})
    rows = await cluster.fetch(
        f"SELECT count(*) AS n FROM {cluster.sink_schema}.records WHERE source = 'frontapp' AND kind = 'frontapp.message'"
    )
    assert rows[0]["n"] == 1000


async def test_a_10_mb_webhook_and_a_10_mb_push_land_by_reference(cluster: Cluster) -> None:
    """Bodies far over Temporal's 2 MB limit: only references cross Temporal (the
    session's payload guard fails the run otherwise), the whole text reaches the store."""
    big = "Load 4417 delayed at the border; customs hold. " * 220_000  # ~10 MB
    limits = {"APEX_LLM_MAX_MESSAGE_CHARS": "12000000", "APEX_LLM_MAX_TOTAL_CHARS": "12000000"}
    url = cluster.start_api(APEX_MAX_BODY_BYTES=str(32 * 1024 * 1024), **limits)  # Front repeats the text as HTML
    cluster.start_worker(**limits)
    front = front_deliveries(1, text=big[: len(big) // 2])  # Front sends the text twice: as text and as HTML
    assert len(front[0].body) > 10_000_000
    llm = llm_deliveries(1)
    doc = json.loads(llm[0].body)
    doc["messages"][1]["content"] = big
    llm[0] = Delivery(llm[0].key, llm[0].path, json.dumps(doc).encode(), llm[0].sign)
    outcome = await send_all([url], front + llm, concurrency=2, within=120)
    assert outcome.acknowledged == {front[0].key, llm[0].key}, outcome.statuses
    await wait_delivered(cluster.dsn, "frontapp", [front[0].key], within=120, schema=cluster.inbox_schema)
    rows = await cluster.fetch(
        f"SELECT length(text) AS n FROM {cluster.sink_schema}.records WHERE source = 'frontapp' AND kind = 'frontapp.message'"
    )
    assert rows
    assert rows[0]["n"] == MAX_TEXT_CHARS  # the connector keeps the first million characters of a message
    await wait_delivered(cluster.dsn, "llm", outcome.events([llm[0].key]), within=120, schema=cluster.inbox_schema)
    rows = await cluster.fetch(
        f"SELECT length(text) AS n FROM {cluster.sink_schema}.records WHERE source = 'llm' AND kind = 'llm.conversation'"
    )
    assert rows
    assert rows[0]["n"] > len(big)  # the whole transcript, through the inbox and the drain


def power_cut(dev: ApexProcess) -> None:
    """SIGKILL `apex-platform dev` and every process under it at once: nothing drains,
    nothing stops cleanly (Temporal, PostgreSQL, Redis, the worker and the API alike)."""
    assert dev.proc is not None
    root = psutil.Process(dev.proc.pid)
    victims = [root, *root.children(recursive=True)]
    for proc in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(victims, timeout=30)
    dev.proc.wait(10)


async def test_a_power_cut_of_the_whole_dev_stack_mid_traffic_loses_nothing(tmp_path: Path) -> None:
    """`apex-platform dev` (Temporal, PostgreSQL, Redis, Qdrant local, worker and API) is
    SIGKILLed with every child while webhook, batched and push traffic flows; it restarts
    on the same home; the senders re-send what was not answered 2xx (and some that was).
    Every acknowledged delivery lands once, in every store."""
    home = tmp_path / "home"
    env = {
        "APEX_HOME": str(home),
        "APEX_PLUGINS": "frontapp,samsara,llm,postgres,redis,graph,qdrant,entities,embeddings",
        "APEX_FRONTAPP_SIGNING_SECRET": FRONT_SECRET,
        "APEX_SAMSARA_WEBHOOK_SECRET": SAMSARA_SECRET,
        "APEX_API_KEYS": PUSH_KEY,
        "APEX_TEMPORAL_PORT": str(free_port()),
        "APEX_TEMPORAL_UI_PORT": "0",
        "APEX_POSTGRES_PORT": str(free_port()),
        "APEX_REDIS_PORT": str(free_port()),
        "APEX_API_PORT": str(free_port()),
        "APEX_TEMPORAL_ACTIVITY_HEARTBEAT_SECONDS": "3",
        "APEX_INBOX_IDLE_WAIT_SECONDS": "5",
    }
    url = f"http://127.0.0.1:{env['APEX_API_PORT']}"

    def start() -> ApexProcess:
        dev = ApexProcess(["dev"], env, tmp_path / f"dev-{time.time_ns()}.log").start()
        wait_http(f"{url}/readyz", timeout=180, proc=dev)
        return dev

    dev = start()
    deliveries = front_deliveries(300) + samsara_deliveries(600) + llm_deliveries(100)
    outcome = Outcome()
    sending = asyncio.create_task(
        send_all([url], deliveries, concurrency=16, within=600, resend_acknowledged=0.05, outcome=outcome)
    )
    try:
        while len(outcome.acknowledged) < 300 and not sending.done():
            await asyncio.sleep(0.05)
        power_cut(dev)
        acknowledged_at_the_cut = len(outcome.acknowledged)
        await asyncio.sleep(2)
        dev = start()
        result = await sending
        assert acknowledged_at_the_cut < len(deliveries)  # the cut really happened mid-traffic
        assert not result.unacknowledged
        admin = (home / "admin_token").read_text().strip()
        auth = {"Authorization": f"Bearer {admin}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=60) as http:
            for source, items in (
                ("frontapp", deliveries[:300]),
                ("samsara", deliveries[300:900]),
                ("llm", deliveries[900:]),
            ):
                pending = set(result.events(d.key for d in items))
                deadline = time.monotonic() + 300
                while pending and time.monotonic() < deadline:
                    for event_id in sorted(pending)[:200]:
                        row = (await http.get(f"/v1/inbox/{source}/{event_id}")).json()
                        if row.get("status") == "delivered":
                            pending.discard(event_id)
                    await asyncio.sleep(0.5)
                assert not pending, f"{len(pending)} acknowledged {source} deliveries never landed"
            # every record of a sample of deliveries is in all four stores, at one version
            for d in deliveries[::25]:
                event_id = result.events([d.key])[0]
                source = {"/webhooks/frontapp": "frontapp", "/webhooks/samsara": "samsara"}.get(d.path, "llm")
                row = (await http.get(f"/v1/inbox/{source}/{event_id}")).json()
                assert row["produced"], row
                for rec in row["produced"]:
                    doc = (await http.get("/v1/trace", params={"source": source, "id": rec["id"]})).json()
                    assert set(doc["stores"]) == {"graph", "postgres", "qdrant", "redis"}
                    assert all(s["present"] for s in doc["stores"].values()), doc
                    assert doc["consistent"], doc
    finally:
        dev.stop(signal.SIGINT, timeout=90)


async def test_trace_names_the_delivery_and_the_drain_run_that_wrote_each_record(cluster: Cluster) -> None:
    url = cluster.start_api()
    cluster.start_worker()
    [delivery] = front_deliveries(1)
    outcome = await send_all([url], [delivery], within=60)
    await wait_delivered(cluster.dsn, "frontapp", outcome.acknowledged, within=60, schema=cluster.inbox_schema)
    msg_id = json.loads(delivery.body)["payload"]["target"]["data"]["id"]
    doc = cluster.cli("trace", "frontapp", msg_id, "--json")
    assert doc["stores"]["postgres"]["present"]
    [entry] = doc["lineage"]
    assert entry["origin"] == f"delivery:frontapp:{delivery.key}"
    assert entry["workflow_id"] == f"{cluster.tag}:drain:frontapp"
    assert entry["run_id"]
    assert entry["version"] == doc["stores"]["postgres"]["version"]
    assert entry["workflow_id"] in doc["workflows"]
