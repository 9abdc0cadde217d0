"""Safe rollouts (issue 13, item 6): build ids from the installed plugins, and a new
connector version rolled out next to the old one and back with Temporal's worker
versioning, on the session's real Temporal dev server: two in-process workers of the
same deployment and task queues, one per connector version; the deployment's current
version decides which one runs a new poller (its records land in that worker's store)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from apex_platform.models import InboundEvent, Page, Record
from apex_platform.plugins import PluginInfo
from apex_platform.pollers import start_poller
from apex_platform.temporal.versioning import VersioningSettings, build_id, installed
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import WorkerHarness, running_worker

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

        await ramp(new.client, deployment, "rollout-v2", 100.0)  # 10, 50, then 100: new runs go to v2
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == (["v1", "v1"], ["v2"])

        await make_current(new.client, deployment, "rollout-v2")  # promoted
        await poll_once(old, VersionedPoller("v1"))
        assert parsed_by(new_sink) == ["v2", "v2"]

        await make_current(new.client, deployment, "rollout-v1")  # and back: the old workers still run
        await poll_once(old, VersionedPoller("v1"))
        assert (parsed_by(old_sink), parsed_by(new_sink)) == (["v1", "v1", "v1"], ["v2", "v2"])
