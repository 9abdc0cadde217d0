"""HubSpot through core's PollWorkflow: an in-process worker on the real Temporal dev
server, the connector talking HTTP to the fake HubSpot, a contract-keeping memory sink."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apex_connector_crm.fake_vendor import TOKEN, FakeHubSpot, seed
from apex_platform.models import RecordKey
from apex_platform.temporal.workflows import PollWorkflow

pytestmark = pytest.mark.timeout(120)


def key(record_id: str) -> RecordKey:
    return RecordKey("crm", record_id)


async def wait_for(handle: Any, done: Any, seconds: float = 30) -> Any:
    for _ in range(int(seconds / 0.05)):
        state = await handle.query(PollWorkflow.state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"poller never reached the expected state: {state}")


async def test_initial_sync_then_only_the_changes(worker: Any, fake: FakeHubSpot) -> None:
    ids = seed(fake)
    handle = await worker.start("contacts", once=False)
    state = await wait_for(handle, lambda s: s.stage == "waiting" and s.records == 3)
    assert state.last_error is None
    assert TOKEN not in (state.cursor or "")
    ann = worker.rows[key(f"contact:{ids['ann']}")]
    assert ann.relations[0].dst == "Organization:acmefreight.com"
    for account in ("companies", "deals"):
        await worker.sync(account)
    assert len(worker.rows) == 7

    fake.update("contacts", ids["ann"], {"jobtitle": "VP Logistics"})
    new = fake.add("contacts", {"email": "dee@example.com", "firstname": "Dee"})
    searches = fake.count("POST", "/contacts/search")
    await handle.signal(PollWorkflow.sync_now)  # the interval is an hour: only the signal wakes it
    state = await wait_for(handle, lambda s: s.stage == "waiting" and s.records > 3)
    # the second run read only what changed since the committed cursor
    assert state.records == 3 + 2
    assert set(state.recent_ids[-2:]) == {f"contact:{ids['ann']}", f"contact:{new}"}
    assert fake.count("POST", "/contacts/search") == searches + 1
    assert worker.rows[key(f"contact:{ids['ann']}")].attributes["properties"]["jobtitle"] == "VP Logistics"
    assert worker.rows[key(f"contact:{ids['ann']}")].version > ann.version
    assert TOKEN not in (state.cursor or "")
    await handle.signal(PollWorkflow.stop)
    assert (await asyncio.wait_for(handle.result(), 30)).stage == "stopped"


async def test_archived_objects_land_as_tombstones(worker: Any, fake: FakeHubSpot) -> None:
    ids = seed(fake)
    await worker.sync("deals")
    assert not worker.rows[key(f"deal:{ids['lane']}")].deleted
    fake.archive("deals", ids["lane"])
    await worker.sync("deals")
    tomb = worker.rows[key(f"deal:{ids['lane']}")]
    assert tomb.deleted
    assert tomb.kind == "crm.deal"
    assert not worker.rows[key(f"deal:{ids['reefer']}")].deleted


async def test_a_merged_contact_is_deleted_in_the_store(worker: Any, fake: FakeHubSpot) -> None:
    ids = seed(fake)
    await worker.sync("contacts")
    assert not worker.rows[key(f"contact:{ids['bob']}")].deleted
    fake.merge("contacts", ids["ann"], ids["bob"])
    await worker.sync("contacts")  # a once-run starts from an empty cursor: ann is read again
    bob = worker.rows[key(f"contact:{ids['bob']}")]
    assert bob.deleted
    assert not worker.rows[key(f"contact:{ids['ann']}")].deleted


async def test_bad_token_is_surfaced_and_nothing_is_written(worker: Any, fake: FakeHubSpot) -> None:
    seed(fake)
    fake.token = "pat-na1-rotated-token"  # HubSpot no longer accepts the configured token
    handle = await worker.start("companies")
    state = None
    for _ in range(200):
        state = await handle.query(PollWorkflow.state)
        if state.last_error:
            break
        await asyncio.sleep(0.05)
    assert state is not None
    assert state.last_error is not None
    assert "401" in state.last_error
    assert "APEX_CRM_ACCESS_TOKEN" in state.last_error
    assert TOKEN not in state.last_error
    assert worker.rows == {}
    assert fake.count("POST", "/search") == 1  # non-retryable: one call, no retries
    await handle.signal(PollWorkflow.stop)
    final = await asyncio.wait_for(handle.result(), 30)
    assert final.stage == "stopped"
    assert final.cursor is None


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
async def test_unreadable_answer_is_retried_and_nothing_is_lost(worker: Any, fake: FakeHubSpot, kind: str) -> None:
    seed(fake)
    fake.fail(kind=kind, path="/companies/search")
    state = await worker.sync("companies")
    assert state.records == 2
    assert len(worker.rows) == 2
    assert fake.count("POST", "/crm/v3/objects/companies/search") == 2


async def test_server_errors_are_retried_and_nothing_is_lost(worker: Any, fake: FakeHubSpot) -> None:
    seed(fake)
    # three in-call attempts fail, Temporal retries the activity, whose second attempt's first call fails too
    fake.fail(502, times=4, path="/deals/search")
    state = await worker.sync("deals")
    assert state.records == 2
    assert fake.count("POST", "/crm/v3/objects/deals/search") == 5
    lane = worker.rows[key("deal:" + next(iter(sorted(o for o in fake.objects["deals"]))))]
    assert lane.relations


async def test_rate_limit_is_retried_after_hubspots_wait(worker: Any, fake: FakeHubSpot) -> None:
    seed(fake)
    fake.fail(429, retry_after=1, path="/v4/associations")
    state = await worker.sync("contacts")
    assert state.records == 3
    assert fake.count("POST", "/crm/v4/associations/contacts/companies/batch/read") == 2
    assert {k.id for k in worker.rows} == {f"contact:{i}" for i in fake.objects["contacts"]}
