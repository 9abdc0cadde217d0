"""Safe rollouts (issue 13, item 6): build ids from the installed plugins, and a new
connector version rolled out next to the old one and back with Temporal's worker
versioning, on the session's real Temporal dev server: two in-process workers of the
same deployment and task queues, one per connector version; the deployment's current
version decides which one runs a new poller (its records land in that worker's store)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from apex_platform import rollout
from apex_platform.api import create_app
from apex_platform.api import push as push_api
from apex_platform.inbox import Inbox
from apex_platform.models import InboundEvent, Page, Record, RecordKey
from apex_platform.plugins import PluginInfo
from apex_platform.pollers import start_poller
from apex_platform.temporal.versioning import VersioningSettings, build_id, installed
from apex_platform.testing.inbox import wait_delivered
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import WorkerHarness, running_worker
from apex_sink_postgres.settings import PostgresSinkSettings
from apex_sink_postgres.sink import PostgresSink
from apex_sink_redis.settings import RedisSinkSettings
from apex_sink_redis.sink import RedisSink

pytestmark = pytest.mark.timeout(240)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_build_id_follows_the_installed_plugin_versions() -> None:
    front_1 = [
        PluginInfo("frontapp", "apex-connector-frontapp", "1.0.0", "m"),
        PluginInfo("pg", "apex-sink-postgres", "0.1", "m"),
    ]
    front_2 = [
        PluginInfo("frontapp", "apex-connector-frontapp", "1.1.0", "m"),
        PluginInfo("pg", "apex-sink-postgres", "0.1", "m"),
    ]
    off = VersioningSettings(build_id=None)
    assert build_id(front_1, off) == build_id(list(reversed(front_1)), off)  # order does not matter
    assert build_id(front_1, off) != build_id(front_2, off)  # a new connector version is a new build
    assert build_id(front_1, off).startswith("apex-")
    broken = [*front_1, PluginInfo("x", "apex-connector-x", "9", "m", error="ImportError")]
    assert build_id(broken, off) == build_id(front_1, off)  # a plugin that failed to load is not running
    assert "apex-connector-frontapp==1.0.0" in installed(front_1)
    assert any(line.startswith("apex-platform==") for line in installed([]))
    assert build_id(front_1, VersioningSettings(build_id="release-42")) == "release-42"


class VersionedPoller:
    """One account's poller; its records say which connector version parsed them."""

    name = "rollout"
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self, version: str) -> None:
        self.version = version

    def accounts(self) -> list[str]:
        return ["acct"]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Page:
        record = Record(
            source=self.name,
            kind="rollout.row",
            id=f"{account}-{uuid.uuid4().hex[:6]}",
            version=1,
            occurred_at=T0,
            attributes={"parsed_by": self.version},
        )
        return Page(records=(record,), next_cursor="done", has_more=False)


@pytest.fixture
def versioned(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("APEX_WORKER_VERSIONING", "on")
    monkeypatch.setenv("APEX_WORKER_DEPLOYMENT_NAME", f"rollout-{uuid.uuid4().hex[:8]}")
    return monkeypatch


async def versions(client: Client, deployment: str) -> set[str]:
    try:
        info = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError:  # not known yet: no worker has polled
        return set()
    return {v.deployment_version.build_id for v in info.worker_deployment_info.version_summaries}


async def wait_version(client: Client, deployment: str, build: str, within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while build not in await versions(client, deployment):
        assert loop.time() < deadline, f"worker of build {build} never registered in {deployment}"
        await asyncio.sleep(0.3)


async def make_current(client: Client, deployment: str, build: str) -> None:
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id=build, ignore_missing_task_queues=True
        )
    )


async def ramp(client: Client, deployment: str, build: str, percentage: float) -> None:
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment,
            build_id=build,
            percentage=percentage,
            ignore_missing_task_queues=True,
        )
    )


async def poll_once(harness: WorkerHarness, source: VersionedPoller) -> None:
    """A fresh one-off poller (a new workflow: routed by the deployment's versions)."""
    handle = await start_poller(harness.client, source, f"a{uuid.uuid4().hex[:6]}", harness.temporal, once=True)  # type: ignore[arg-type]
    await asyncio.wait_for(handle.result(), 60)


def parsed_by(sink: MemorySink) -> list[str]:
    return sorted(str(r.attributes["parsed_by"]) for r in sink.rows.values())


async def test_a_new_connector_version_rolls_out_next_to_the_old_one_and_back(
    versioned: pytest.MonkeyPatch, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    deployment = VersioningSettings().deployment_name
    prefix = f"r{uuid.uuid4().hex[:10]}"
    old_sink, new_sink = MemorySink("memory"), MemorySink("memory")
    async with AsyncExitStack() as stack:

        async def start(version: str, sink: MemorySink) -> WorkerHarness:
            versioned.setenv("APEX_WORKER_BUILD_ID", f"rollout-{version}")  # read as the worker starts
            harness = await stack.enter_async_context(
                running_worker(
                    apex_temporal_server.address,
                    tmp_path / version,
                    sources=[VersionedPoller(version)],
                    sinks=[sink],
                    priorities=["P1"],
                    prefix=prefix,  # the same task queues
                    inbox_dsn=apex_postgres_server.dsn,
                )
            )
            await wait_version(harness.client, deployment, f"rollout-{version}")
            return harness

        old = await start("v1", old_sink)
        await make_current(old.client, deployment, "rollout-v1")
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == (["v1"], [])

        # the new version starts beside the old one: it gets nothing until it is ramped or made current
        new = await start("v2", new_sink)
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == (["v1", "v1"], [])

        # a ramp of 50%: Temporal sends each new workflow to one version by a hash of its id
        await ramp(new.client, deployment, "rollout-v2", 50.0)
        await asyncio.gather(*(poll_once(old, VersionedPoller("v1")) for _ in range(20)))
        on_old, on_new = len(old_sink.rows) - 2, len(new_sink.rows)
        assert on_old + on_new == 20
        assert min(on_old, on_new) > 0, (on_old, on_new)  # both, but for a chance of 2 in a million
        old_sink.rows.clear()
        new_sink.rows.clear()

        await ramp(new.client, deployment, "rollout-v2", 100.0)  # 100%: every new run goes to v2
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == ([], ["v2"])

        await make_current(new.client, deployment, "rollout-v2")  # promoted
        await poll_once(old, VersionedPoller("v1"))
        assert parsed_by(new_sink) == ["v2", "v2"]

        await make_current(new.client, deployment, "rollout-v1")  # and back: the old workers still run
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == (["v1"], ["v2", "v2"])


def test_the_durable_share_is_a_deterministic_hash_of_the_record_id() -> None:
    ids = [f"conv-{n}" for n in range(2000)]
    assert all(rollout.durable("llm", i, 100) for i in ids)
    assert not any(rollout.durable("llm", i, 0) for i in ids)
    ten = {i for i in ids if rollout.durable("llm", i, 10)}
    fifty = {i for i in ids if rollout.durable("llm", i, 50)}
    assert ten < fifty  # raising the share only moves more records to the durable path
    assert 0.07 < len(ten) / len(ids) < 0.13
    assert 0.45 < len(fifty) / len(ids) < 0.55
    assert [rollout.bucket("llm", i) for i in ids[:50]] == [rollout.bucket("llm", i) for i in ids[:50]]


PUSH_KEY = "rollout-push-key-" + uuid.uuid4().hex


class NotesSource:
    """A push source: `{"id", "v", "title", "text", "attrs"}` is one record."""

    name = "pushnotes"
    mode = "push"
    priority = "P0"
    settings_model: ClassVar[Any] = None

    def receive(self, headers: Any, body: bytes) -> InboundEvent:
        doc = json.loads(body)
        return InboundEvent(source=self.name, event_id=f"{doc['id']}@{doc['v']}", received_at=T0, payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        doc = event.payload
        return [
            Record(
                source=self.name,
                kind="push.note",
                id=doc["id"],
                version=doc["v"],
                occurred_at=T0,
                title=doc["title"],
                text=doc["text"],
                attributes=doc["attrs"],
            )
        ]


def note(n: int, v: int = 1) -> dict[str, Any]:
    return {
        "id": f"note-{n}",
        "v": v,
        "title": f"Load {4400 + n} — ETA",
        "text": f"Driver says ETA 14:{n:02d}, PRO {900000 + n}; naïve café ✓",
        "attrs": {"n": n, "tags": ["eta", "driver"], "nested": {"ok": True, "ratio": n / 7}},
    }


ROW_COLUMNS = (
    "source, id, kind, version, occurred_at, title, text, attributes, entities, relations, deleted, "
    "embedding::text AS embedding, content_hash, idempotency_key, record"
)


class StoreSet:
    """The real PostgreSQL and Redis sinks, in a schema and key prefix of their own."""

    def __init__(self, dsn: str, redis_url: str) -> None:
        self.tag = f"ro{uuid.uuid4().hex[:10]}"
        self.postgres = PostgresSink(PostgresSinkSettings(dsn=dsn, schema=self.tag))
        self.redis = RedisSink(RedisSinkSettings(url=redis_url, prefix=self.tag))
        self.dsn = dsn

    @property
    def sinks(self) -> list[Any]:
        return [self.postgres, self.redis]

    async def rows(self) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.dsn)
        try:
            found = await conn.fetch(f'SELECT {ROW_COLUMNS} FROM "{self.tag}".records ORDER BY source, id')
        finally:
            await conn.close()
        return [dict(r) for r in found]

    async def cached(self, ids: list[str]) -> dict[RecordKey, Record]:
        return await self.redis.read([RecordKey(NotesSource.name, i) for i in ids])


@contextlib.asynccontextmanager
async def edge(runtime: Any) -> AsyncIterator[Any]:
    """The real app over a worker's runtime (its open sinks: the direct path writes them)."""
    api_runtime = copy.copy(runtime)
    api_runtime.inbox = Inbox(runtime.inbox.settings)
    app = create_app(api_runtime, open_sinks=False)
    # in this event loop (the sinks' pools belong to it), not in a test client's thread
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://apex.test") as client:
        yield client


async def push_all(client: Any, bodies: list[dict[str, Any]], expect: int = 202) -> list[Any]:
    out = []
    for body in bodies:
        answer = await client.post(
            f"/v1/records/{NotesSource.name}",
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/json"},
        )
        assert answer.status_code == expect, answer.text
        out.append(answer.json())
    return out


def set_rollout(monkeypatch: pytest.MonkeyPatch, percent: int) -> None:
    monkeypatch.setenv("APEX_DURABLE_ROLLOUT", str(percent))
    rollout.settings.cache_clear()


async def test_the_durable_and_the_direct_path_leave_identical_rows_in_the_real_stores(
    monkeypatch: pytest.MonkeyPatch,
    apex_temporal_server: Any,
    apex_postgres_server: Any,
    apex_redis_server: Any,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("APEX_API_KEYS", PUSH_KEY)
    push_api._key_scopes.cache_clear()
    # versions 1 then 2 of some notes, and one late version 1 after its version 2
    bodies = [note(n) for n in range(12)] + [note(n, 2) for n in range(4)] + [note(0, 1)]
    ids = sorted({b["id"] for b in bodies})
    durable_stores = StoreSet(apex_postgres_server.dsn, apex_redis_server.url)
    direct_stores = StoreSet(apex_postgres_server.dsn, apex_redis_server.url)
    try:
        async with running_worker(
            apex_temporal_server.address,
            tmp_path / "durable",
            sources=[NotesSource()],
            sinks=durable_stores.sinks,
            priorities=["P0"],
            inbox_dsn=apex_postgres_server.dsn,
        ) as harness:
            set_rollout(monkeypatch, 100)
            async with edge(harness.runtime) as client:
                answers = await push_all(client, bodies[:-1])
                assert {a["status"] for a in answers} == {"accepted"}
                schema = harness.runtime.inbox.settings.schema_name
                events = [f"{b['id']}@{b['v']}" for b in bodies[:-1]]
                await wait_delivered(apex_postgres_server.dsn, NotesSource.name, events, schema=schema)
                # the late version 1 (its event id was delivered already: the inbox's duplicate)
                await push_all(client, bodies[-1:], expect=200)

        async with running_worker(
            apex_temporal_server.address,
            tmp_path / "direct",
            sources=[NotesSource()],
            sinks=direct_stores.sinks,
            priorities=["P0"],
            inbox_dsn=apex_postgres_server.dsn,
        ) as harness:
            set_rollout(monkeypatch, 0)
            while len(harness.runtime.opened) < 2:  # the worker opens its sinks as it starts
                await asyncio.sleep(0.05)
            async with edge(harness.runtime) as client:
                for body in bodies:
                    (answer,) = await push_all(client, [body])
                    assert (answer["status"], answer["path"]) == ("written", "direct")
                    # durable before the answer: the version is in the store when the 202 arrives
                    stored = await direct_stores.cached([body["id"]])
                    assert stored[RecordKey(NotesSource.name, body["id"])].version >= body["v"]
                inbox_rows = await harness.runtime.inbox.deliveries(source=NotesSource.name)
                assert inbox_rows == []  # nothing went through the inbox

                # a share: exactly the records whose hash says so take the durable path
                set_rollout(monkeypatch, 50)
                mixed = [note(n) for n in range(100, 120)]
                statuses = [a["status"] for a in await push_all(client, mixed)]
                expected = ["accepted" if rollout.durable(NotesSource.name, b["id"], 50) else "written" for b in mixed]
                assert statuses == expected
                assert 0 < statuses.count("written") < len(mixed)

        durable_rows, direct_rows = await durable_stores.rows(), await direct_stores.rows()
        assert len(durable_rows) == len(ids)
        assert [r for r in direct_rows if r["id"] in ids] == durable_rows
        for stores in (durable_stores, direct_stores):  # their workers have stopped (and closed them)
            await stores.redis.open()
        try:
            cached = await durable_stores.cached(ids)
            assert await direct_stores.cached(ids) == cached
            assert {r.version for r in cached.values()} == {1, 2}
            assert len(cached) == len(ids)
        finally:
            for stores in (durable_stores, direct_stores):
                await stores.redis.close()
    finally:
        set_rollout(monkeypatch, 100)
        monkeypatch.delenv("APEX_API_KEYS")
        push_api._key_scopes.cache_clear()


class DownSink(MemorySink):
    """A store that is down: every write fails (transient)."""

    async def write(self, records: Any, *, writer: str | None = None) -> Any:
        raise ConnectionError("store down")


async def test_a_direct_write_that_fails_is_committed_to_the_inbox_instead(
    monkeypatch: pytest.MonkeyPatch, apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Path
) -> None:
    """2xx still means durable: the saga could not write, so the delivery is in the inbox
    (answered as the inbox answers), and the store that did take it was restored."""
    monkeypatch.setenv("APEX_API_KEYS", PUSH_KEY)
    push_api._key_scopes.cache_clear()
    up = MemorySink("memory")
    try:
        async with running_worker(
            apex_temporal_server.address,
            tmp_path,
            sources=[NotesSource()],
            sinks=[up, DownSink("down")],
            priorities=["P1"],  # no drain of the P0 source: the delivery stays pending, to be seen
            inbox_dsn=apex_postgres_server.dsn,
        ) as harness:
            set_rollout(monkeypatch, 0)
            while len(harness.runtime.opened) < 2:
                await asyncio.sleep(0.05)
            async with edge(harness.runtime) as client:
                (answer,) = await push_all(client, [note(7)])
            assert answer["status"] == "accepted"  # the inbox's answer, not "written"
            rows = await harness.runtime.inbox.deliveries(source=NotesSource.name)
            assert [(r["event_id"], r["status"]) for r in rows] == [("note-7@1", "pending")]
            assert up.rows == {}  # what the saga wrote before the other store failed was undone
    finally:
        set_rollout(monkeypatch, 100)
        push_api._key_scopes.cache_clear()
