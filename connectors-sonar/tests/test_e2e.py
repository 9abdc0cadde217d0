"""End to end against the real Temporal dev server: core's PollWorkflow drives the connector
through an in-process worker (vendor failures are retried, nothing is lost, revisions land),
and signed alerts go over real HTTP through the real API app into a memory sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from apex_connector_sonar import SonarConnector, samples
from apex_connector_sonar.fake_vendor import FakeSonar
from apex_platform.models import RecordKey
from apex_platform.ratelimit import MemoryBudgets
from apex_platform.temporal.inputs import PollState
from apex_platform.temporal.worker import drain_id
from apex_platform.testing.sinks import MemorySink
from apex_platform.testing.stack import StackHarness

from .conftest import NOW, TODAY, settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@dataclass
class Stack:
    kit: StackHarness
    sink: MemorySink
    fake: FakeSonar
    connector: SonarConnector

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.kit.webhook("sonar", body, headers)

    async def sync_once(self, ticker: str) -> PollState:
        return await self.kit.sync(self.connector, ticker, within=90)

    def value(self, record_id: str) -> Any:
        return self.sink.rows[RecordKey("sonar", record_id)].attributes["value"]


@pytest.fixture
async def stack(apex_stack: Any, fake: FakeSonar, base_url: str) -> AsyncIterator[Stack]:
    settings = settings_for(
        fake,
        base_url,
        tickers="OTRI.ATL",
        initial_days=9,
        page_days=3,
        lookback_days=1,
        requests_per_minute=10_000,
        burst=100,
        rate_limit_backoff_seconds=1,  # the fake's 429 below blocks for a second, not SONAR's ten minutes
    )
    connector = SonarConnector(settings, clock=lambda: NOW, today=lambda: TODAY, budgets=MemoryBudgets())
    sink = MemorySink("memory")
    async with apex_stack(connector, sink, priorities=["P2"], activity_heartbeat_seconds=5, saga=None) as kit:
        yield Stack(kit, sink, fake, connector)


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
    assert answer["workflow_id"] == drain_id("sonar", stack.kit.prefix)
    await stack.kit.wait_delivered("sonar", [answer["event_id"]], within=60)
    made = await stack.kit.produced("sonar", answer["event_id"])
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
    assert len(await stack.kit.deliveries("sonar", doc["alertId"])) == 0
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
