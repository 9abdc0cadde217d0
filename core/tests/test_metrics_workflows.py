"""The Temporal interceptor's and the pollers' metrics move with real workflow runs: an
in-process worker of the testing kit (the worker's own `run_worker`, so the interceptor
the platform installs) on the session's Temporal dev server polls a fake source; the
process registry is read before and after. Deltas and values only, never times."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client

from apex_platform.errors import PayloadError, VendorError
from apex_platform.inbox import Delivery
from apex_platform.models import InboundEvent, Page, Record
from apex_platform.pollers import poller_id, start_poller
from apex_platform.settings import TemporalSettings
from apex_platform.temporal.client import task_queue
from apex_platform.temporal.inputs import PollInput, PollState
from apex_platform.temporal.workflows import PollWorkflow
from apex_platform.testing.inbox import wait_delivered
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.worker import running_worker

pytestmark = pytest.mark.timeout(180)
SOURCE = "metricpoll"
LAG = 600.0


class MeteredPollSource:
    """Pages keyed by cursor ("" → c1 → …), records `LAG` seconds old; a cursor listed in
    `throttle_at` answers 429 once."""

    name = SOURCE
    mode = "poll"
    priority = "P1"
    settings_model: ClassVar[Any] = None
    poll_interval_seconds = 3600.0

    def __init__(self) -> None:
        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        self.pages: dict[str | None, Page] = {}
        self.throttle_at: set[str | None] = set()

    def accounts(self) -> list[str]:
        return [self.account]

    def parse(self, event: InboundEvent) -> list[Record]:
        return []

    async def poll(self, account: str, cursor: str | None) -> Page:
        if cursor in self.throttle_at:
            self.throttle_at.discard(cursor)
            raise VendorError("429 Too Many Requests", retryable=True, retry_after=0.2)
        return self.pages[cursor]

    def paginate(self, sizes: list[int]) -> None:
        cursors: list[str | None] = [None] + [f"c{i}" for i in range(1, len(sizes) + 1)]
        old = datetime.fromtimestamp(time.time() - LAG, UTC)
        for i, size in enumerate(sizes):
            records = tuple(
                Record(source=SOURCE, kind="metric.txn", id=f"{self.account}-{i}-{j}", version=1, occurred_at=old)
                for j in range(size)
            )
            self.pages[cursors[i]] = Page(records=records, next_cursor=cursors[i + 1], has_more=i < len(sizes) - 1)


@dataclass
class Env:
    client: Client
    temporal: TemporalSettings
    poll: MeteredPollSource


@pytest.fixture
async def env(apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Any) -> AsyncIterator[Env]:
    poll = MeteredPollSource()
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[poll],
        sinks=[MemorySink("memory")],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        yield Env(harness.client, TemporalSettings(task_queue_prefix=harness.prefix), poll)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    def __init__(self, **keys: tuple[str, dict[str, str]]) -> None:
        self.keys = keys
        self.before = {k: sample(n, **lab) for k, (n, lab) in keys.items()}

    def __call__(self) -> dict[str, float]:
        return {k: sample(n, **lab) - self.before[k] for k, (n, lab) in self.keys.items()}


def workflow(name: str, metric: str = "apex_workflows_started_total", **extra: str) -> tuple[str, dict[str, str]]:
    return metric, {"workflow": name, "source": SOURCE, **extra}


def act(metric: str, **extra: str) -> tuple[str, dict[str, str]]:
    return metric, {"activity": "apex.poll_ingest", "source": SOURCE, **extra}


async def run_once(env: Env) -> PollState:
    handle = await start_poller(env.client, env.poll, env.poll.account, env.temporal, once=True)  # type: ignore[arg-type]
    state: PollState = await handle.result()
    return state


async def test_a_poll_run_counts_its_workflow_its_activities_and_the_poller_state(env: Env) -> None:
    env.poll.paginate([3, 2])
    d = Delta(
        started=workflow("PollWorkflow"),
        completed=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="completed"),
        runs=workflow("PollWorkflow", "apex_workflow_run_duration_seconds_count"),
        attempts=act("apex_activities_started_total"),
        done=act("apex_activities_finished_total", outcome="completed"),
        failed=act("apex_activities_finished_total", outcome="failed"),
        retries=act("apex_activity_retries_total"),
        timed=act("apex_activity_attempt_duration_seconds_count"),
        parsed=("apex_records_parsed_total", {"source": SOURCE, "kind": "metric.txn"}),
        written=("apex_records_written_total", {"source": SOURCE}),
    )
    started = time.time()
    state = await run_once(env)
    assert (state.pages, state.records) == (2, 5)
    assert d() == {
        "started": 1,
        "completed": 1,
        "runs": 1,
        "attempts": 2,  # one per page
        "done": 2,
        "failed": 0,
        "retries": 0,
        "timed": 2,
        "parsed": 5,
        "written": 5,
    }
    assert sample("apex_poller_last_success_timestamp_seconds", source=SOURCE) >= started
    assert LAG <= sample("apex_poller_cursor_lag_seconds", source=SOURCE) < LAG + 120


async def test_a_throttled_page_counts_a_failed_attempt_and_a_retry(env: Env) -> None:
    env.poll.paginate([1, 1])
    env.poll.throttle_at = {"c1"}
    d = Delta(
        attempts=act("apex_activities_started_total"),
        failed=act("apex_activities_finished_total", outcome="failed"),
        done=act("apex_activities_finished_total", outcome="completed"),
        retries=act("apex_activity_retries_total"),
        completed=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="completed"),
    )
    await run_once(env)
    assert d() == {"attempts": 3, "failed": 1, "done": 2, "retries": 1, "completed": 1}


async def test_continue_as_new_is_counted_as_such_and_each_run_as_started(env: Env) -> None:
    env.poll.paginate([1] * 5)
    d = Delta(
        started=workflow("PollWorkflow"),
        continued=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="continued_as_new"),
        completed=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="completed"),
        failed=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="failed"),
    )
    wf_id = f"{poller_id(env.poll, env.poll.account)}:{uuid.uuid4().hex[:6]}"  # type: ignore[arg-type]
    await env.client.start_workflow(
        PollWorkflow.run,
        PollInput(source=SOURCE, account=env.poll.account, once=True, pages_before_continue=2),
        id=wf_id,
        task_queue=task_queue("P1", env.temporal),
    )
    state = await env.client.get_workflow_handle(wf_id, result_type=PollState).result()
    assert state.pages == 5
    runs = 3  # two pages per run: 2 + 2 + 1
    assert d() == {"started": runs, "continued": runs - 1, "completed": 1, "failed": 0}


async def test_a_replayed_history_counts_nothing_again(env: Env) -> None:
    """A worker that replays a run (after evicting it from its cache, or a Replayer) runs
    the interceptor again over the whole history: nothing is counted twice."""
    from temporalio.worker import Replayer

    from apex_platform import metrics
    from apex_platform.temporal.worker import sandbox_runner, workflows

    env.poll.paginate([2])
    handle = await start_poller(env.client, env.poll, env.poll.account, env.temporal, once=True)  # type: ignore[arg-type]
    await handle.result()
    history = await handle.fetch_history()
    d = Delta(
        started=workflow("PollWorkflow"),
        completed=workflow("PollWorkflow", "apex_workflows_finished_total", outcome="completed"),
        runs=workflow("PollWorkflow", "apex_workflow_run_duration_seconds_count"),
    )
    replayer = Replayer(
        workflows=workflows(),
        data_converter=env.client.data_converter,
        workflow_runner=sandbox_runner(),
        interceptors=[metrics.temporal_interceptor()],
    )
    await replayer.replay_workflow(history)
    assert d() == {"started": 0, "completed": 0, "runs": 0}


class MeteredWebhookSource:
    """A webhook source whose records carry no entity and no text; a body with "bad" cannot
    be parsed."""

    name = "metricdrain"
    mode = "webhook"
    priority = "P1"
    settings_model: ClassVar[Any] = None

    def verify(self, headers: Any, body: bytes) -> None:
        return None

    def receive(self, headers: Any, body: bytes) -> InboundEvent:
        doc = json.loads(body)
        return InboundEvent(source=self.name, event_id=doc["id"], received_at=datetime.now(UTC), payload=doc)

    def parse(self, event: InboundEvent) -> list[Record]:
        if event.payload.get("bad"):
            raise PayloadError("bad event")
        return [
            Record(source=self.name, kind="metric.ping", id=event.event_id, version=1, occurred_at=datetime.now(UTC))
        ]


async def test_the_drain_counts_records_their_quality_and_an_unparsable_delivery(
    apex_temporal_server: Any, apex_postgres_server: Any, tmp_path: Any
) -> None:
    source = MeteredWebhookSource()
    sink = MemorySink("memory")
    async with running_worker(
        apex_temporal_server.address,
        tmp_path,
        sources=[source],
        sinks=[sink],
        priorities=["P1"],
        inbox_dsn=apex_postgres_server.dsn,
    ) as harness:
        d = Delta(
            parsed=("apex_records_parsed_total", {"source": source.name, "kind": "metric.ping"}),
            unparsed_kind=("apex_records_parsed_total", {"source": source.name, "kind": "apex.unparsed"}),
            unparsed=("apex_unparsed_deliveries_total", {"source": source.name}),
            no_entities=("apex_records_without_entities_total", {"source": source.name}),
            no_text=("apex_records_without_text_total", {"source": source.name}),
            written=("apex_records_written_total", {"source": source.name}),
        )
        now = datetime.now(UTC)
        bodies = [b'{"id": "p1"}', b'{"id": "p2"}', b'{"id": "bad", "bad": true}']
        for body in bodies:
            delivery = Delivery(source.name, json.loads(body)["id"], now, {}, body)
            assert await harness.runtime.inbox.put(delivery) == "accepted"
        await wait_delivered(
            apex_postgres_server.dsn,
            source.name,
            ["p1", "p2", "bad"],
            schema=harness.runtime.inbox.settings.schema_name,
        )
        assert d() == {"parsed": 2, "unparsed_kind": 1, "unparsed": 1, "no_entities": 2, "no_text": 2, "written": 3}
        drain = ("DrainWorkflow", source.name)
        assert sample("apex_workflows_started_total", workflow=drain[0], source=drain[1]) >= 1
        assert (
            sample(
                "apex_activities_finished_total", activity="apex.drain_inbox", source=source.name, outcome="completed"
            )
            >= 1
        )
