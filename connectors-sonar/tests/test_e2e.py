"""End to end against the real Temporal dev server: core's PollWorkflow drives the connector
through an in-process worker (vendor failures are retried, nothing is lost, revisions land),
and signed alerts go over real HTTP through the real API app into a memory sink."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from apex_connector_sonar import SonarConnector, SonarSettings, samples
from apex_connector_sonar.fake_vendor import FakeSonar
from apex_platform import hookimpl
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.models import RecordKey
from apex_platform.pollers import start_poller
from apex_platform.ratelimit import MemoryBudgets
from apex_platform.runtime import Runtime
from apex_platform.serve import serve
from apex_platform.settings import CoreSettings, TemporalSettings
from apex_platform.stack.ports import free_port
from apex_platform.temporal.client import connect
from apex_platform.temporal.inputs import PollState
from apex_platform.temporal.worker import drain_id
from apex_platform.testing.inbox import produced, wait_delivered
from apex_platform.testing.sinks import MemorySink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
TODAY = date(2026, 3, 10)
NOW = 1773151512.0


@dataclass
class Stack:
    url: str
    client: Client
    sink: MemorySink
    fake: FakeSonar
    connector: SonarConnector
    temporal: TemporalSettings
    inbox_dsn: str
    inbox_schema: str

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:  # async: the API runs on this loop
            return await http.post(f"{self.url}/webhooks/sonar", content=body, headers=headers)

    async def sync_once(self, ticker: str) -> PollState:
        handle = await start_poller(self.client, self.connector, ticker, self.temporal, once=True)
        return await asyncio.wait_for(handle.result(), timeout=90)

    def value(self, record_id: str) -> Any:
        return self.sink.rows[RecordKey("sonar", record_id)].attributes["value"]


async def inbox_rows(dsn: str, schema: str, source: str, event_id: str) -> int:
    """Rows of the inbox for this key (the table must exist: the API made it at start)."""
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".deliveries WHERE source = $1 AND event_id = $2', source, event_id
        )
    finally:
        await conn.close()
    return n


@pytest.fixture
async def stack(
    apex_temporal_server: Any, apex_postgres_server: Any, fake: FakeSonar, base_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    settings = SonarSettings(
        base_url=base_url,
        username=fake.username,
        password=fake.password,  # type: ignore[arg-type]
        webhook_secret=fake.webhook_secret,  # type: ignore[arg-type]
        tickers="OTRI.ATL",
        initial_days=9,
        page_days=3,
        lookback_days=1,
        http_retries=0,
        requests_per_minute=10_000,
        burst=100,
        rate_limit_backoff_seconds=1,  # the fake's 429 below blocks for a second, not SONAR's ten minutes
    )
    connector = SonarConnector(settings, clock=lambda: NOW, today=lambda: TODAY, budgets=MemoryBudgets())
    sink = MemorySink("memory")

    class Plugin:
        @hookimpl
        def apex_register_sources(self, register: Any) -> None:
            register(connector)

        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(sink)

    prefix = f"t{uuid.uuid4().hex[:8]}"
    temporal = TemporalSettings(
        address=apex_temporal_server.address, task_queue_prefix=prefix, activity_heartbeat_seconds=5
    )
    runtime = Runtime.build(
        [], modules=[Plugin()], use_entry_points=False, core=CoreSettings(home=tmp_path), temporal=temporal
    )
    # the inbox and the lineage: the session's PostgreSQL, in a schema of this test's own
    inbox = InboxSettings(dsn=apex_postgres_server.dsn, schema_name=f"inbox_{prefix}", idle_wait_seconds=5)
    runtime.inbox = Inbox(inbox)
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(runtime, api=True, worker=True, priorities=["P2"], port=port, stop=stop, started=ready)
    )
    await asyncio.wait_for(ready.wait(), timeout=60)
    client = await connect(TemporalSettings(address=apex_temporal_server.address))  # the platform's converter
    yield Stack(
        f"http://127.0.0.1:{port}", client, sink, fake, connector, temporal, apex_postgres_server.dsn, inbox.schema_name
    )
    stop.set()
    await asyncio.wait_for(task, 60)


async def test_poll_workflow_retries_vendor_failures_and_loses_nothing(stack: Stack) -> None:
    stack.fake.fail_next(503)  # first data page: retried by the activity's retry policy
    state = await stack.sync_once("OTRI.ATL")
    assert (state.cursor, state.pages) == ("2026-03-10", 4)  # 3-day pages, each re-reading a day
    ids = sorted(k.id for k in stack.sink.rows)
    assert ids == [f"OTRI.ATL:2026-03-{d:02d}" for d in range(2, 11)]
    assert stack.fake.statuses("/data/").count(503) == 1
    assert stack.value("OTRI.ATL:2026-03-05") == samples.series_value("OTRI", "ATL", date(2026, 3, 5))


async def test_429_with_retry_after_is_waited_out(stack: Stack) -> None:
    stack.fake.fail_next(429, retry_after=1)
    state = await stack.sync_once("OTRI.ATL")
    assert state.cursor == "2026-03-10"
    assert len(stack.sink.rows) == 9
    assert stack.fake.statuses("/data/")[0] == 429


async def test_a_revised_value_supersedes_the_stored_one(stack: Stack) -> None:
    await stack.sync_once("OTRI.ATL")
    # the second sync continues from the first one's cursor and re-reads the look-back
    # window (one day in these settings), where SONAR revised a value
    stack.fake.revise("OTRI.ATL", date(2026, 3, 10), 13.25)
    await stack.sync_once("OTRI.ATL")
    assert stack.value("OTRI.ATL:2026-03-10") == 13.25


async def test_signed_alert_lands(stack: Stack) -> None:
    body, headers = stack.fake.alert(samples.ALERTS[0], now=NOW)  # signed at the connector's time
    resp = await stack.post(body, headers)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert answer["status"] == "accepted"
    assert answer["event_id"] == "al-20260310-otri-atl"
    assert answer["workflow_id"] == drain_id("sonar", stack.temporal.task_queue_prefix)
    await wait_delivered(stack.inbox_dsn, "sonar", [answer["event_id"]], schema=stack.inbox_schema, within=60)
    made = await produced(stack.inbox_dsn, "sonar", answer["event_id"], schema=stack.inbox_schema)
    assert [m["id"] for m in made] == ["alert:al-20260310-otri-atl"]
    assert stack.sink.rows[RecordKey("sonar", "alert:al-20260310-otri-atl")].attributes["value"] == 9.84
    # the same alert again: already delivered, a duplicate
    again = await stack.post(body, headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate"), again.text


@pytest.mark.parametrize("attack", ["tampered", "wrong secret", "no signature"])
async def test_bad_signature_is_401_and_stores_nothing(stack: Stack, attack: str) -> None:
    doc = {**samples.ALERTS[0], "alertId": f"al-{attack.replace(' ', '-')}"}
    body, headers = stack.fake.alert(doc, now=NOW, **({"secret": "not-the-secret"} if attack == "wrong secret" else {}))
    if attack == "tampered":
        body = body.replace(b"9.84", b"1.11")
    if attack == "no signature":
        headers = {"Content-Type": "application/json"}
    resp = await stack.post(body, headers)
    assert resp.status_code == 401, resp.text
    assert stack.fake.webhook_secret not in resp.text
    # nothing reached the inbox, so nothing can ever be drained from it
    assert await inbox_rows(stack.inbox_dsn, stack.inbox_schema, "sonar", doc["alertId"]) == 0
    assert RecordKey("sonar", f"alert:{doc['alertId']}") not in stack.sink.rows


@pytest.mark.parametrize(
    ("doc", "says"),
    [({"alertId": "m1", "value": 3}, "no 'ticker'"), ({"alertId": "m2", "ticker": "OTRI"}, "granularity")],
)
async def test_malformed_alert_is_400_naming_the_problem(stack: Stack, doc: dict[str, Any], says: str) -> None:
    body, headers = stack.fake.alert(doc, now=NOW)
    resp = await stack.post(body, headers)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["error"]
