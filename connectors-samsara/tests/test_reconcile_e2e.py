"""Gap-free Samsara route stop webhooks, end to end: the real API and worker (real
Temporal, the PostgreSQL inbox), signed RouteStopArrival/Departure webhooks over HTTP, and
the reconciler reading the fake Samsara's route updates feed over TCP. The webhooks are
dropped for a while (some stops' webhooks never come, some come during the outage and are
listed too, some come late); at the end the stores hold every stop event exactly once:
a webhook (keyed by its eventId) and its feed twin (keyed by the feed entry) are two inbox
deliveries that give identical records, written once (a change-counting sink). Two distinct
arrivals at one stop are two deliveries, never a duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import FakeSamsara, FakeServer, route_stop_webhook, send_webhook
from apex_platform.models import RecordKey
from apex_platform.reconcile import ORIGIN_HEADER, reconciler_state
from apex_platform.testing.sinks import CountingSink
from apex_platform.testing.stack import StackHarness
from apex_platform.testing.waiting import wait_until

from .conftest import SECRET, TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
STOP_KINDS = {"samsara.route_stop_arrival", "samsara.route_stop_departure"}


@dataclass
class Stack:
    kit: StackHarness
    sink: CountingSink
    fake: FakeSamsara

    async def post(self, doc: dict[str, Any]) -> int:
        return (await send_webhook(f"{self.kit.url}/webhooks/samsara", doc, SECRET)).status_code

    async def inbox_rows(self) -> list[dict[str, Any]]:
        return await self.kit.deliveries("samsara")

    def stop_events(self) -> list[Any]:
        return [r for r in self.sink.rows.values() if r.kind in STOP_KINDS]


@pytest.fixture
async def stack(apex_stack: Any) -> AsyncIterator[Stack]:
    with FakeServer(FakeSamsara(token=TOKEN, vehicles=1, points=1, route_page_size=4)) as server:
        connector = SamsaraConnector(
            SamsaraSettings(
                webhook_secret=SECRET,
                api_token=TOKEN,
                base_url=server.base_url,
                reconcile_accounts="default",
                reconcile_interval_seconds=5,
            )
        )
        sink = CountingSink()
        server.fake.routes_rate_limit_next = 1  # the reconciler's first call is rate-limited: it waits and goes on
        async with apex_stack(connector, sink, priorities=["P1"], activity_heartbeat_seconds=5, saga=None) as kit:
            yield Stack(kit, sink, server.fake)


def at(entry: dict[str, Any]) -> datetime:
    """A route update's time."""
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def stop_key(entry: dict[str, Any]) -> str:
    """The stop-event record id of a route update: the stop and what happened there."""
    state = "arrived" if entry["operation"] == "stop arrived" else "departed"
    return f"route-stop:{entry['route']['id']}:{entry['changes']['after']['stops'][0]['id']}:{state}"


async def test_an_outage_of_samsara_route_webhooks_heals_and_every_stop_lands_once(stack: Stack) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    updates = []
    for n in range(18):  # six routes, three stops each: arrived, then departed for every other stop
        route, stop = f"rt{n // 3}", f"rt{n // 3}-{n % 3}"
        updates.append(stack.fake.route_update(route, stop, "stop arrived", t0 + timedelta(minutes=2 * n), stops=3))
        if n % 2 == 0:
            updates.append(
                stack.fake.route_update(route, stop, "stop departed", t0 + timedelta(minutes=2 * n + 1), stops=3)
            )
    webhooks = [route_stop_webhook(entry) for entry in updates]  # one eventId per event, kept by retries
    outage = range(8, 18)
    delivered_in_outage = {10, 14}
    sent = [i for i in range(len(updates)) if i not in outage or i in delivered_in_outage]
    for i in sent:
        assert await stack.post(webhooks[i]) == 202  # its own eventId: a delivery of its own
    stop_ids = {stop_key(entry) for entry in updates}
    assert len(stop_ids) == len(updates) == 27

    await wait_until(
        lambda: {r.id for r in stack.stop_events()} >= stop_ids,
        within=150,
        what=lambda: f"{len(stack.stop_events())} of {len(updates)} stop events in the stores",
    )
    await stack.kit.wait_delivered("samsara", [webhooks[i]["eventId"] for i in sent])
    # Samsara retries a delivered webhook (same eventId): a duplicate. It retries some of the
    # dropped ones late (their own eventId, first seen now): accepted, and identical to what
    # their feed twins wrote already
    assert await stack.post(webhooks[0]) == 200
    late = [i for i in sorted(outage)[:3] if i not in delivered_in_outage]
    for i in late:
        assert await stack.post(webhooks[i]) == 202
    await stack.kit.wait_delivered("samsara", [webhooks[i]["eventId"] for i in late])

    prefix = stack.kit.temporal.task_queue_prefix
    states: list[dict[str, Any]] = []

    async def one_pass_done() -> None:
        while True:
            states.append(await reconciler_state(stack.kit.client, "samsara", "default", prefix))
            if states[-1].get("passes", 0) >= 1:
                return
            await asyncio.sleep(0.25)

    await asyncio.wait_for(one_pass_done(), 60)  # a pass ends at the feed's last page
    state = states[-1]
    assert state["running"] is True
    assert state["found"] == len(updates)  # the pass listed every stop update once
    assert state["new"] == len(updates)  # no webhook shares a key with a feed entry
    # every feed entry is one reconciled delivery, under a key of its own (stop and time)
    feed_keys = [
        f"{stop_key(e)}:{(at(e) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)}" for e in updates
    ]
    await stack.kit.wait_delivered("samsara", feed_keys)

    rows = await stack.inbox_rows()
    assert all(row["status"] == "delivered" for row in rows)
    reconciled = [r["event_id"] for r in rows if r["headers"].get(ORIGIN_HEADER) == "reconcile:default"]
    from_webhooks = [r["event_id"] for r in rows if ORIGIN_HEADER not in r["headers"]]
    assert sorted(from_webhooks) == sorted(webhooks[i]["eventId"] for i in [*sent, *late])
    assert sorted(reconciled) == sorted(feed_keys)
    events = stack.stop_events()
    assert {r.id for r in events} == stop_ids
    assert {r.kind for r in events} == STOP_KINDS
    # every stop event written exactly once: its webhook, its feed twin and a late webhook
    # give identical records (the saga skips the identical ones)
    assert {k: stack.sink.changes[k] for k in stop_ids} == dict.fromkeys(stop_ids, 1)
    for entry in updates:  # versioned by the route update's time, nothing of a delivery inside
        event = stack.sink.rows[RecordKey("samsara", stop_key(entry))]
        assert event.occurred_at == at(entry)
        assert not {"event_id", "webhook_id", "org_id"} & set(event.attributes)
    assert {f"route:rt{n}" for n in range(6)} <= {k.id for k in stack.sink.rows}
    assert next(s for _, s in stack.fake.route_calls) == 429


async def test_distinct_arrivals_at_one_stop_are_both_accepted_and_the_later_one_is_stored(stack: Stack) -> None:
    """A driver arrives at a stop, leaves and arrives again (or Samsara corrects the
    arrival): two RouteStopArrival webhooks for one stop, two eventIds. Both are new
    deliveries (202, never "duplicate"), and the stop's arrival record is the later one;
    a retry of one of them (its eventId again) is the duplicate."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    scratch = FakeSamsara()  # not listed by the reconciler's feed: only the webhooks tell
    first = route_stop_webhook(scratch.route_update("rx", "rx-1", "stop arrived", t0))
    again = route_stop_webhook(scratch.route_update("rx", "rx-1", "stop arrived", t0 + timedelta(minutes=12)))
    assert first["eventId"] != again["eventId"]
    assert await stack.post(first) == 202
    await wait_until(lambda: stack.stop_events(), within=60, what=lambda: "the first arrival is not in the stores")
    assert await stack.post(again) == 202  # a new event at the same stop: never "duplicate"
    await stack.kit.wait_delivered("samsara", [first["eventId"], again["eventId"]])
    assert await stack.post(again) == 200  # Samsara's retry of the second delivery
    assert await stack.post(first) == 200

    event = stack.sink.rows[RecordKey("samsara", "route-stop:rx:rx-1:arrived")]
    assert event.occurred_at == t0 + timedelta(minutes=12)
    assert event.attributes["data"]["routeStopDetails"]["actualArrivalTime"] == again["data"]["time"]
    assert stack.sink.changes["route-stop:rx:rx-1:arrived"] == 2  # each arrival stored, newest wins
    rows = await stack.inbox_rows()
    assert sorted(r["event_id"] for r in rows) == sorted([first["eventId"], again["eventId"]])
