"""Reconciliation from Samsara's route updates feed: the real connector and HTTP client
against the fake Samsara over TCP (no Temporal; test_reconcile_e2e.py runs the workflow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from apex_connector_samsara import SamsaraConnector, SamsaraSettings
from apex_connector_samsara.fake_vendor import START, FakeSamsara, FakeServer, route_stop_webhook
from apex_connector_samsara.routes_feed import found_deliveries
from apex_platform.errors import VendorError
from apex_platform.models import InboundEvent, Record
from apex_platform.reconcile import ReconcileSource

from .conftest import NOW, SECRET, TOKEN, sign_as_samsara

FIXTURE = Path(__file__).parent / "data" / "third_party" / "route_stop_arrival.json"
VENDOR = Path(__file__).parent / "data" / "vendor"


def connector_for(server: FakeServer, **overrides: Any) -> SamsaraConnector:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "api_token": TOKEN,
        "base_url": server.base_url,
        "reconcile_accounts": "default",
        "http_attempts": 1,
    }
    values.update(overrides)
    return SamsaraConnector(SamsaraSettings(**values), clock=lambda: float(NOW))


def received(connector: SamsaraConnector, body: bytes) -> InboundEvent:
    event = connector.receive({}, body)
    assert isinstance(event, InboundEvent)
    return event


def test_the_connector_is_a_reconcile_source_off_by_default() -> None:
    assert isinstance(SamsaraConnector(), ReconcileSource)
    assert SamsaraConnector(SamsaraSettings(webhook_secret=SECRET)).reconcile_accounts() == []


START_MS = 1773144000000  # START, 2026-03-10T12:00:00Z, in unix milliseconds


def same_records(a: list[Record], b: list[Record]) -> None:
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]
    assert [r.idempotency_key for r in a] == [r.idempotency_key for r in b]


async def test_stop_arrivals_and_departures_become_deliveries_with_the_webhooks_records(
    fake_server: Callable[..., FakeServer],
) -> None:
    server = fake_server()
    fake = server.fake
    arrived = fake.route_update("r1", "r1-0", "stop arrived", START)
    fake.route_update("r1", "r1-1", "stop ETA updated", START + timedelta(minutes=1))  # no webhook of ours
    departed = fake.route_update("r1", "r1-0", "stop departed", START + timedelta(minutes=9))
    connector = connector_for(server)
    page = await connector.reconcile("default", None)
    # a key of the feed entry's own: the stop, what happened, the update's time (ms)
    assert [d.event_id for d in page.deliveries] == [
        f"route-stop:r1:r1-0:arrived:{START_MS}",
        f"route-stop:r1:r1-0:departed:{START_MS + 9 * 60_000}",
    ]
    assert page.has_more is False
    assert fake.route_calls == [(None, 200)]
    for found, entry in zip(page.deliveries, (arrived, departed), strict=True):
        assert received(connector, found.body).event_id == found.event_id
        # the webhook Samsara sends for the same update is another delivery (its eventId)...
        webhook = route_stop_webhook(entry)
        hook = received(connector, json.dumps(webhook).encode())
        assert hook.event_id == webhook["eventId"] != found.event_id
        # ...that gives identical records: the saga writes them once
        twin = connector.parse(received(connector, found.body))
        same_records(twin, connector.parse(hook))
        assert {r.kind for r in twin} >= {"samsara.route"}
        assert {r.kind for r in twin} & {"samsara.route_stop_arrival", "samsara.route_stop_departure"}
    # the next pass lists the same entries under the same keys and bodies: nothing new
    assert (await connector.reconcile("default", None)).deliveries == page.deliveries
    # the cursor follows Samsara's endCursor; a new update is found after it
    later = fake.route_update("r2", "r2-2", "stop arrived", START + timedelta(hours=1))
    again = await connector.reconcile("default", page.next_cursor)
    assert [d.event_id for d in again.deliveries] == [f"route-stop:r2:r2-2:arrived:{START_MS + 3_600_000}"]
    assert later["route"]["name"] == "Route r2"
    assert fake.route_calls[-1][0] == page.next_cursor


def test_a_second_arrival_at_a_stop_is_a_newer_version_of_the_stop_s_record() -> None:
    """Two RouteStopArrival webhooks for one stop (a driver back at the stop, or a corrected
    arrival): two eventIds (two inbox deliveries), one stop record, the later one newer."""
    scratch = FakeSamsara()
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=SECRET), clock=lambda: float(NOW))
    first = route_stop_webhook(scratch.route_update("r1", "r1-0", "stop arrived", START))
    later = route_stop_webhook(scratch.route_update("r1", "r1-0", "stop arrived", START + timedelta(minutes=20)))
    a, b = (received(connector, json.dumps(doc).encode()) for doc in (first, later))
    assert (a.event_id, b.event_id) == (first["eventId"], later["eventId"])
    ra = {r.kind: r for r in connector.parse(a)}["samsara.route_stop_arrival"]
    rb = {r.kind: r for r in connector.parse(b)}["samsara.route_stop_arrival"]
    assert ra.id == rb.id == "route-stop:r1:r1-0:arrived"
    assert rb.version - ra.version == 20 * 60 * 1_000_000
    # a retry of one delivery: same eventId, same records
    same_records(connector.parse(received(connector, json.dumps(first).encode())), connector.parse(a))


def test_samsara_documented_route_stop_arrival_and_its_feed_entry_give_identical_records() -> None:
    """Samsara's own RouteStopArrival example (the shared fixture, verbatim) and the route
    update it reports, as the feed lists it (`changes.after.stops` = its routeStopDetails,
    the driver and vehicle inside the route): two inbox deliveries, identical records."""
    raw = FIXTURE.read_bytes()
    doc = json.loads(raw)
    data = doc["data"]
    entry = {
        "time": data["time"],
        "type": data["type"],
        "operation": data["operation"],
        "source": "automatic",
        "route": {**data["route"], "driver": data["driver"], "vehicle": data["vehicle"]},
        "changes": {"after": {"stops": [data["routeStopDetails"]]}},
    }
    found, _, _ = found_deliveries({"data": [entry], "pagination": {"endCursor": "c", "hasNextPage": False}}, "test")
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=SECRET), clock=lambda: float(NOW))
    headers = sign_as_samsara(raw)
    connector.verify(headers, raw)
    webhook = connector.receive(headers, raw)
    assert isinstance(webhook, InboundEvent)
    assert webhook.event_id == "017db07f-6e95-470e-8cc0-a371f9deed2b"
    # data.time 2020-01-27T07:06:25Z in unix ms
    assert [f.event_id for f in found] == ["route-stop:342341:141414:arrived:1580108785000"]
    twin = connector.parse(received(connector, found[0].body))
    original = connector.parse(webhook)
    same_records(twin, original)
    assert [r.id for r in original] == ["route-stop:342341:141414:arrived", "route:342341"]


async def test_samsara_openapi_example_answer_through_the_client(fake_server: Callable[..., FakeServer]) -> None:
    """The route feed answer made of Samsara's own OpenAPI examples, served as is: its
    update is a `stop skipped` (no webhook of ours stands for it: nothing to commit). The
    same update as a `stop arrived` is the arrival of Samsara's RouteStopArrival example
    (route 342341, stop 141414), under the key that webhook gets."""
    raw = (VENDOR / "routes_feed_openapi_example.json").read_bytes()
    server = fake_server()
    connector = connector_for(server)
    server.fake.routes_raw_body = raw
    page = await connector.reconcile("default", None)
    assert page.deliveries == ()
    assert page.has_more is True  # the example says hasNextPage: true
    doc = json.loads(raw)
    doc["data"][0]["operation"] = "stop arrived"
    server.fake.routes_raw_body = json.dumps(doc).encode()
    (arrival,) = (await connector.reconcile("default", None)).deliveries
    assert arrival.event_id == "route-stop:342341:141414:arrived:1580108785000"
    records = {r.kind: r for r in connector.parse(received(connector, arrival.body))}
    assert records["samsara.route"].id == "route:342341"
    assert records["samsara.route_stop_arrival"].occurred_at.isoformat() == "2020-01-27T07:06:25+00:00"


async def test_pages_follow_has_next_page_with_spacing(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    server.fake.route_page_size = 2
    for n in range(5):
        server.fake.route_update("r9", f"r9-{n}", "stop arrived", START + timedelta(minutes=n), stops=5)
    connector = connector_for(server)
    cursor, keys, pages = None, [], 0
    while True:
        page = await connector.reconcile("default", cursor)
        pages += 1
        keys += [d.event_id for d in page.deliveries]
        cursor = page.next_cursor
        if not page.has_more:
            break
        assert page.retry_after == pytest.approx(0.2)  # Samsara's routes limit: 5 requests/s
    assert pages == 3
    assert keys == [f"route-stop:r9:r9-{n}:arrived:{START_MS + n * 60_000}" for n in range(5)]


async def test_429_keeps_samsara_s_retry_after(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(retry_after="0.40235")
    server.fake.routes_rate_limit_next = 1
    with pytest.raises(VendorError) as caught:
        await connector_for(server).reconcile("default", None)
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(0.40235)


async def test_a_rejected_cursor_reads_on_from_now(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    server.fake.route_update("r1", "r1-0", "stop arrived", START)
    connector = connector_for(server)
    first = await connector.reconcile("default", None)
    server.fake.expire_cursors()
    page = await connector.reconcile("default", first.next_cursor)
    assert [status for _, status in server.fake.route_calls] == [200, 400, 200]
    assert page.next_cursor != first.next_cursor


async def test_a_bad_token_names_the_settings_never_the_token(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    with pytest.raises(VendorError) as caught:
        await connector_for(server, api_token="not-the-token-value").reconcile("default", None)
    assert not caught.value.retryable
    assert "APEX_SAMSARA_API_TOKEN" in str(caught.value)
    assert "not-the-token-value" not in str(caught.value)


def test_an_entry_without_ids_is_kept_under_a_digest() -> None:
    entry = {"time": "2026-03-10T12:00:00Z", "type": "route tracking", "operation": "stop arrived", "route": {}}
    (found,), _, _ = found_deliveries({"data": [entry], "pagination": {"hasNextPage": False}}, "test")
    assert found.event_id.startswith("routes-feed:")
    connector = SamsaraConnector(SamsaraSettings(webhook_secret=SECRET))
    assert received(connector, found.body).event_id == found.event_id


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "JSON object"),
        ({"data": {}, "pagination": {"hasNextPage": False}}, "'data' must be an array"),
        ({"data": []}, "'pagination' must be an object"),
        ({"data": [], "pagination": {"hasNextPage": "no"}}, "must be a boolean"),
        ({"data": [], "pagination": {"endCursor": 5, "hasNextPage": False}}, "must be a string"),
    ],
)
def test_unreadable_answers_name_the_problem(doc: Any, problem: str) -> None:
    with pytest.raises(Exception, match=problem):
        found_deliveries(doc, "samsara account 'default': GET /fleet/routes/audit-logs/feed")
