"""Deletion needs positive evidence: through the real client against the fake Turvo over TCP.

A 404 alone (a wrong base URL or entity path, a permission the API user lacks on one
entity) never makes a tombstone by default; a webhook that announces the deletion, or an
entity that says it is deleted, does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from apex_connector_turvo import KIND_UNRESOLVED, TurvoConnector, TurvoSettings, samples
from apex_connector_turvo.fake_vendor import FakeTurvo
from apex_platform.errors import VendorError

STATUS_UPDATE = samples.WEBHOOKS[0]
SHIPMENT_PATH = f"/v1/shipments/{samples.SHIPMENT_ID}"


def webhook(event_name: str, **extra: Any) -> bytes:
    doc = {**copy.deepcopy(STATUS_UPDATE), "eventName": event_name, **extra}
    return samples.encode(doc)


@pytest.fixture
def quick(make_connector: Callable[..., TurvoConnector]) -> Callable[..., TurvoConnector]:
    """Connectors that re-read a 404 at once (the wait is a setting)."""

    def make(**overrides: Any) -> TurvoConnector:
        return make_connector(**{"not_found_retry_seconds": 0, **overrides})

    return make


async def test_a_404_from_a_missing_permission_is_unresolved_and_deletes_nothing(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)  # the API user no longer sees this one shipment
    c = quick()
    (record,) = c.parse(await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE))))
    assert (record.kind, record.deleted) == (KIND_UNRESOLVED, False)
    assert record.id.startswith("unresolved:")
    assert record.id != f"shipment:{samples.SHIPMENT_ID}"
    assert record.attributes["entity_record_id"] == f"shipment:{samples.SHIPMENT_ID}"
    reason = record.attributes["reason"]
    assert "answered 404 on 3 reads" in reason
    assert f"GET /shipments/{samples.SHIPMENT_2_ID}, another shipment, answered 200" in reason
    assert "kept in every store" in reason
    assert record.attributes["webhook"] == STATUS_UPDATE
    # three reads of it, the listing, one read of another shipment
    gets = [(path, status) for method, path, status in fake.log if method == "GET"]
    assert gets == [
        (SHIPMENT_PATH, 404),
        (SHIPMENT_PATH, 404),
        (SHIPMENT_PATH, 404),
        ("/v1/shipments/list", 200),
        (f"/v1/shipments/{samples.SHIPMENT_2_ID}", 200),
    ]


async def test_a_404_read_too_early_is_read_again(quick: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.fail_next(404, path_contains="/shipments/")
    c = quick()
    event = await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert event.payload["entity"]["customId"] == samples.LOAD_NUMBER
    assert not c.parse(event)[0].deleted
    assert fake.statuses("/shipments/") == [404, 200]


async def test_the_re_reads_are_a_setting(quick: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)
    c = quick(not_found_retries=0)
    (record,) = c.parse(await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE))))
    assert record.kind == KIND_UNRESOLVED
    assert fake.statuses(SHIPMENT_PATH) == [404]


async def test_a_wrong_entity_path_waits_then_is_recorded_unresolved(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo, clock: Any
) -> None:
    c = quick(entity_paths="shipment=/shipment/{id}")  # a typo: every shipment is 404
    event = c.receive({}, samples.encode(STATUS_UPDATE))
    with pytest.raises(VendorError) as err:
        await c.fetch(event)
    assert err.value.retryable  # the delivery waits in the inbox, nothing is written
    assert err.value.retry_after == c.settings.auth_backoff_seconds
    message = str(err.value)
    assert "APEX_TURVO_ENTITY_PATHS" in message
    assert "nothing is deleted" in message
    assert f"GET /shipment/{samples.SHIPMENT_2_ID}, a shipment that /shipments/list lists, answered 404" in message
    # an hour after its receipt it stops blocking the drain: recorded, never deleted
    clock.advance(c.settings.not_found_park_seconds + 1)
    (record,) = c.parse(await c.fetch(event))
    assert (record.kind, record.deleted) == (KIND_UNRESOLVED, False)
    assert "replay the delivery once fixed" in record.attributes["reason"]


async def test_a_wrong_base_url_waits_for_an_operator(
    make_connector: Callable[..., TurvoConnector], fake: FakeTurvo, base_url: str
) -> None:
    wrong = base_url.removesuffix("/v1") + "/api/v1"
    c = TurvoConnector(make_connector().settings.model_copy(update={"base_url": wrong}))
    with pytest.raises(VendorError) as err:
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))
    assert err.value.retryable
    assert "APEX_TURVO_BASE_URL" in str(err.value)


async def test_a_list_refused_leaves_the_path_unproven(quick: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)
    c = quick(list_paths="shipment=/shipment-list")
    with pytest.raises(VendorError, match="GET /shipment-list was refused or is not a list"):
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))


async def test_an_empty_collection_leaves_the_path_unproven(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)
    fake.delete("shipments", samples.SHIPMENT_2_ID)
    c = quick()
    with pytest.raises(VendorError, match="lists no other shipment"):
        await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE)))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("SHIPMENT_DELETE", {}),
        ("SHIPMENT_DELETED", {}),
        ("shipment.removed", {}),
        ("SHIPMENT_UPDATE", {"action": "DELETE"}),
    ],
)
async def test_a_webhook_that_announces_the_deletion_tombstones(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo, name: str, extra: dict[str, Any]
) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    c = quick()
    (record,) = c.parse(await c.fetch(c.receive({}, webhook(name, **extra))))
    assert record.deleted
    assert record.id == f"shipment:{samples.SHIPMENT_ID}"
    assert "the webhook's" in record.attributes["reason"]
    assert fake.statuses("/shipments/") == [404]  # the evidence is the webhook: no re-reads, no probes


async def test_a_sub_object_deletion_is_no_evidence(quick: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)
    c = quick()
    (record,) = c.parse(await c.fetch(c.receive({}, webhook("SHIPMENT_STOP_DELETED"))))
    assert (record.kind, record.deleted) == (KIND_UNRESOLVED, False)


async def test_a_deletion_announced_for_an_entity_that_is_still_there_keeps_it(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    c = quick()
    (record, *_) = c.parse(await c.fetch(c.receive({}, webhook("SHIPMENT_DELETE"))))
    assert (record.id, record.deleted) == (f"shipment:{samples.SHIPMENT_ID}", False)


async def test_a_soft_deleted_entity_tombstones_at_its_own_update_time(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    fake.put("shipments", {**samples.SHIPMENT, "deleted": True, "updated": "2026-03-10T15:50:00Z"})
    c = quick()
    records = c.parse(await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE))))
    assert [(r.id, r.deleted) for r in records] == [(f"shipment:{samples.SHIPMENT_ID}", True)]
    assert records[0].version == 1773157800000000
    assert records[0].attributes["reason"] == "deleted: the entity's deleted is true"


async def test_deleted_statuses_are_a_setting(quick: Callable[..., TurvoConnector], fake: FakeTurvo) -> None:
    fake.put("shipments", {**samples.SHIPMENT, "status": {"code": {"key": "2111", "value": "Canceled"}}})
    kept = quick()
    (record, *_) = kept.parse(await kept.fetch(kept.receive({}, samples.encode(STATUS_UPDATE))))
    assert not record.deleted  # by default a cancelled shipment is kept, with its status
    dropping = quick(deleted_statuses="canceled,cancelled")
    (record,) = dropping.parse(await dropping.fetch(dropping.receive({}, samples.encode(STATUS_UPDATE))))
    assert record.deleted
    assert "Canceled" in record.attributes["reason"]


async def test_tombstone_confirmed_deletes_once_the_path_is_proven(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo
) -> None:
    fake.delete("shipments", samples.SHIPMENT_ID)
    c = quick(not_found="tombstone_confirmed")
    (record,) = c.parse(await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE))))
    assert record.deleted
    assert "another shipment, answered 200" in record.attributes["reason"]
    # with the path unproven it still waits instead of deleting
    wrong = quick(not_found="tombstone_confirmed", entity_paths="shipment=/shipment/{id}")
    with pytest.raises(VendorError, match="nothing is deleted"):
        await wrong.fetch(wrong.receive({}, samples.encode(STATUS_UPDATE)))


def test_unresolved_is_the_default_and_a_bad_pattern_is_named() -> None:
    assert TurvoSettings().not_found == "unresolved"
    with pytest.raises(ValueError, match="delete_event_pattern"):
        TurvoSettings(delete_event_pattern="(")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch, clock: Any) -> list[float]:
    """The waits the connector asks for; each moves the connector's clock instead of sleeping."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr("apex_connector_turvo.connector._sleep", sleep)
    return asked


async def test_re_reads_wait_from_the_receipt_so_a_backlog_is_not_held_up(
    make_connector: Callable[..., TurvoConnector], fake: FakeTurvo, clock: Any, sleeps: list[float]
) -> None:
    fake.hide("shipments", samples.SHIPMENT_ID)
    c = make_connector()  # the default waits: 2 re-reads, 2 s apart
    fresh = c.receive({}, samples.encode(STATUS_UPDATE))
    (record,) = c.parse(await c.fetch(fresh))
    assert record.kind == KIND_UNRESOLVED
    assert sleeps == [2.0, 2.0]  # at receipt + 2 s and + 4 s
    sleeps.clear()
    late = c.receive({}, webhook("SHIPMENT_STATUS_UPDATE", eventTime="2026-03-10T16:00:00Z"))
    clock.advance(600)  # drained ten minutes after its receipt
    (record,) = c.parse(await c.fetch(late))
    assert record.kind == KIND_UNRESOLVED
    assert sleeps == [0.0, 0.0]  # it has waited long enough: re-read at once
    assert fake.statuses(SHIPMENT_PATH).count(404) == 6


async def test_one_proof_serves_the_404s_of_a_minute(
    quick: Callable[..., TurvoConnector], fake: FakeTurvo, clock: Any
) -> None:
    c = quick()
    fake.hide("shipments", samples.SHIPMENT_ID)
    for n in range(3):
        doc = {**copy.deepcopy(STATUS_UPDATE), "eventTime": f"2026-03-10T15:4{n}:00Z"}
        doc["eventPayload"]["id"] = 1000309000 + n  # never existed for this user either
        (record,) = c.parse(await c.fetch(c.receive({}, samples.encode(doc))))
        assert record.kind == KIND_UNRESOLVED
    assert fake.statuses("/shipments/list") == [200]  # proven once
    clock.advance(61)
    c.parse(await c.fetch(c.receive({}, samples.encode(STATUS_UPDATE))))
    assert fake.statuses("/shipments/list") == [200, 200]
