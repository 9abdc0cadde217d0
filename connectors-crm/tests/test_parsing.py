"""Pure parsing: HubSpot's JSON read defensively, records, keys, errors and waits."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_connector_crm import CrmConnector, CrmSettings
from apex_connector_crm.client import error_for, retry_after_seconds
from apex_connector_crm.cursor import CrmCursor, decode
from apex_connector_crm.objects import ShapeError, parse_associations, parse_object, parse_page, parse_time
from apex_connector_crm.records import (
    COMPANIES,
    CONTACTS,
    DEALS,
    Related,
    build_record,
    build_tombstone,
    normalize_domain,
    normalize_email,
    object_type,
)
from apex_platform.errors import PayloadError, SettingsError, VendorError
from apex_platform.models import InboundEvent
from apex_platform.settings import load

T = datetime(2026, 3, 10, 14, 5, 12, 345000, tzinfo=UTC)
T_MS = 1773151512345


def contact(**props: Any) -> dict[str, Any]:
    return {
        "id": "501",
        "properties": {
            "email": "Jane.Doe@Example.COM",
            "firstname": "Jane",
            "lastname": "Doe",
            "lastmodifieddate": "2026-03-10T14:05:12.345Z",
            **props,
        },
        "createdAt": "2026-01-02T03:04:05Z",
        "updatedAt": "2026-03-10T14:05:12.345Z",
        "archived": False,
    }


def test_times_in_iso_and_milliseconds() -> None:
    assert parse_time("2026-03-10T14:05:12.345Z") == T
    assert parse_time(str(T_MS)) == T
    assert parse_time(T_MS) == T
    assert parse_time("2026-03-10T09:05:12.345-05:00") == T
    for bad in (None, True, "", "yesterday", "9" * 40, [], {}, -5, "2026-13-40T00:00:00Z"):
        assert parse_time(bad) is None


def test_contact_record() -> None:
    obj = parse_object(contact(), "results[0]")
    record = build_record(CONTACTS, obj, Related(companies={"77": "https://www.Acme.com/about", "78": None}))
    assert (record.source, record.kind, record.id) == ("crm", "crm.contact", "contact:501")
    assert record.version == T_MS * 1000
    assert record.occurred_at == T
    assert record.title == "Jane Doe <Jane.Doe@Example.COM>"
    assert record.attributes["email"] == "jane.doe@example.com"
    assert record.attributes["company_ids"] == ["77", "78"]
    assert [e.ref for e in record.entities] == [
        "Person:jane.doe@example.com",
        "Organization:acme.com",
        "Organization:hubspot:78",
    ]
    assert [(r.type, r.dst) for r in record.relations] == [
        ("WORKS_AT", "Organization:acme.com"),
        ("WORKS_AT", "Organization:hubspot:78"),
    ]
    assert "email: Jane.Doe@Example.COM" in record.text


def test_the_modification_property_wins_over_updated_at() -> None:
    raw = contact(lastmodifieddate=str(T_MS + 5))
    assert build_record(CONTACTS, parse_object(raw, "r")).version == (T_MS + 5) * 1000
    raw["properties"].pop("lastmodifieddate")
    raw["updatedAt"] = "2026-03-10T14:05:13Z"
    assert build_record(CONTACTS, parse_object(raw, "r")).version == 1773151513000 * 1000


def test_object_without_any_time_is_a_shape_error() -> None:
    raw = contact()
    raw["properties"].pop("lastmodifieddate")
    raw.pop("updatedAt")
    with pytest.raises(ShapeError, match="neither lastmodifieddate nor updatedAt"):
        build_record(CONTACTS, parse_object(raw, "r"))


def test_deal_record_owns_company_and_contact_relations() -> None:
    raw = {
        "id": "9",
        "properties": {
            "dealname": "Lane",
            "amount": "10.5",
            "deal_currency_code": "EUR",
            "hs_lastmodifieddate": str(T_MS),
        },
    }
    record = build_record(DEALS, parse_object(raw, "r"), Related(companies={"1": "acme.com"}, contacts={"2": "A@B.co"}))
    assert record.entities[0].ref == "Deal:hubspot:9"
    assert record.entities[0].properties["currency"] == "EUR"
    assert [(r.src, r.type, r.dst) for r in record.relations] == [
        ("Deal:hubspot:9", "WITH_COMPANY", "Organization:acme.com"),
        ("Deal:hubspot:9", "WITH_CONTACT", "Person:a@b.co"),
    ]
    assert (record.attributes["amount"], record.attributes["currency"]) == ("10.5", "EUR")


def test_company_without_domain_is_keyed_by_id() -> None:
    raw = {"id": "3", "properties": {"name": "No Web Co", "domain": "not a domain", "hs_lastmodifieddate": str(T_MS)}}
    record = build_record(COMPANIES, parse_object(raw, "r"))
    assert record.entities[0].ref == "Organization:hubspot:3"
    assert record.title == "No Web Co"


def test_tombstone_version_is_the_later_of_archive_and_modification() -> None:
    raw = {
        "id": "4",
        "properties": {"hs_lastmodifieddate": str(T_MS)},
        "updatedAt": "2026-03-10T14:05:12.345Z",
        "archived": True,
        "archivedAt": "2026-03-11T00:00:00Z",
    }
    tomb = build_tombstone(DEALS, parse_object(raw, "r"))
    assert tomb.deleted
    assert (tomb.kind, tomb.id) == ("crm.deal", "deal:4")
    assert tomb.version == 1773187200000 * 1000
    raw["archivedAt"] = "2020-01-01T00:00:00Z"  # a clock that went backwards never un-deletes
    assert build_tombstone(DEALS, parse_object(raw, "r")).version == T_MS * 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane@Example.com", "jane@example.com"),
        (" a@b.c ", "a@b.c"),
        ("no-at-sign", None),
        ("a@@b", None),
        ("two words@x.com", None),
        ("", None),
        (None, None),
        ("a@" + "x" * 400, None),
    ],
)
def test_emails(value: str | None, expected: str | None) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://www.Acme.com/path?q=1", "acme.com"),
        ("acme.co.uk.", "acme.co.uk"),
        ("localhost", None),
        ("bad domain.com", None),
        ("", None),
        ("http://", None),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_domains(value: str, expected: str | None) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "not an object"),
        ({"properties": {}}, "id is missing"),
        ({"id": "12; DROP"}, "not a HubSpot object id"),
        ({"id": True}, "not a HubSpot object id"),
        ({"id": "1", "properties": ["a"]}, "properties is a list"),
    ],
)
def test_hostile_objects(raw: Any, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_object(raw, "results[0]")


def test_property_values_are_strings_and_nested_values_are_dropped() -> None:
    obj = parse_object(
        {"id": 5, "properties": {"a": 1, "b": True, "c": None, "d": {"x": 1}, "e": "x" * 70000, "": "y"}}, "r"
    )
    assert obj.id == "5"
    assert obj.properties == {"a": "1", "b": "true", "c": None, "e": "x" * 65536}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "results is missing"),
        ({"results": {}}, "results is not a list"),
        ({"results": [], "paging": []}, "paging is not an object"),
        ({"results": [], "paging": {"next": {"after": ""}}}, "paging.next.after"),
        ({"results": [{"id": "x"}]}, r"results\[0\].id"),
    ],
)
def test_hostile_pages(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_page(doc, "POST /search")


def test_associations_keep_ids_and_paging() -> None:
    doc = {
        "results": [
            {
                "from": {"id": "1"},
                "to": [
                    {"toObjectId": 7, "associationTypes": []},
                    {"toObjectId": "8"},
                    {"toObjectId": 7},
                    {"toObjectId": "x"},
                    "junk",
                ],
                "paging": {"next": {"after": "500"}},
            },
            {"from": {"id": 2}, "to": []},
        ],
        "errors": [{"category": "OBJECT_NOT_FOUND"}],
    }
    found = parse_associations(doc, "assoc")
    assert found.to == {"1": ["7", "8"], "2": []}
    assert found.more == {"1": "500"}
    with pytest.raises(ShapeError, match="from is missing"):
        parse_associations({"results": [{"to": []}]}, "assoc")


def test_retry_after() -> None:
    assert retry_after_seconds({"retry-after": "3"}, None, 10) == 3
    assert retry_after_seconds({"retry-after": "99999"}, None, 10) == 3600
    now = datetime(2026, 3, 10, 14, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "Tue, 10 Mar 2026 14:00:30 GMT"}, None, 10, now) == 30
    assert retry_after_seconds({"x-hubspot-ratelimit-interval-milliseconds": "10000"}, None, 99) == 10
    assert retry_after_seconds({}, {"policyName": "SECONDLY"}, 99) == 1
    assert retry_after_seconds({"retry-after": "soon"}, None, 42) == 42


def test_error_translation() -> None:
    e = error_for(
        429, {}, '{"status":"error","category":"RATE_LIMITS","message":"slow down"}', where="crm x", default_wait=5
    )
    assert (e.retryable, e.retry_after) == (True, 5)
    assert "RATE_LIMITS: slow down" in str(e)
    assert not error_for(401, {}, "", where="crm x", default_wait=5).retryable
    assert "scopes" in str(error_for(403, {}, "{}", where="crm x", default_wait=5))
    assert error_for(503, {}, "<html>down</html>", where="crm x", default_wait=5).retryable
    assert not error_for(400, {}, "{}", where="crm x", default_wait=5).retryable
    long = error_for(500, {}, "x" * 5000, where="crm x", default_wait=5)
    assert len(str(long)) < 400


def test_cursor_round_trip_and_garbage() -> None:
    cur = CrmCursor(since=T_MS, ids_at_since=("1", "2"))
    assert decode(cur.encode(), where="crm x") == cur
    assert decode(None, where="crm x") == CrmCursor()
    for bad in (
        "not json",
        "[]",
        '{"since": -1}',
        '{"v": 2}',
        '{"extra": 1}',
        '{"ids_at_since": ' + str(list(range(300))) + "}",
    ):
        with pytest.raises(VendorError) as info:
            decode(bad, where="crm x")
        assert not info.value.retryable


def test_parse_of_a_delivered_object() -> None:
    connector = CrmConnector(CrmSettings(access_token="t"))
    event = InboundEvent(
        source="crm", event_id="e1", received_at=T, payload={"object_type": "contacts", "object": contact()}
    )
    assert [r.id for r in connector.parse(event)] == ["contact:501"]
    archived = contact()
    archived.update(archived=True, archivedAt="2026-03-12T00:00:00Z")
    event = event.model_copy(update={"payload": {"object_type": "contacts", "object": archived}})
    assert connector.parse(event)[0].deleted
    for payload in (None, [], {"object": {}}, {"object_type": "contacts", "object": {"id": "x"}}):
        with pytest.raises(PayloadError):
            connector.parse(event.model_copy(update={"payload": payload}))


def test_merged_ids_of_a_delivered_object_are_tombstones() -> None:
    connector = CrmConnector(CrmSettings(access_token="t"))
    merged = contact()
    merged["properties"]["hs_merged_object_ids"] = "12;34; 34;501;not-an-id;"
    event = InboundEvent(
        source="crm", event_id="e1", received_at=T, payload={"object_type": "contacts", "object": merged}
    )
    records = connector.parse(event)
    assert [(r.id, r.deleted) for r in records] == [
        ("contact:501", False),
        ("contact:12", True),
        ("contact:34", True),
    ]  # never its own id, never twice, nothing that is not an id
    assert records[1].version == records[0].version


def test_generic_object_types() -> None:
    assert object_type("tickets").kind == "crm.ticket"
    assert object_type("p_shipment_loads").entity == "PShipmentLoad"
    assert object_type("2_things").entity == "HubSpot2Thing"


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_CRM_OBJECTS", "Contacts, deals,contacts")
    monkeypatch.setenv("APEX_CRM_DEAL_PROPERTIES", "hs_priority, freight_mode")
    s = load(CrmSettings)
    assert s.objects == ["contacts", "deals"]
    assert s.deal_properties == ["hs_priority", "freight_mode"]
    monkeypatch.setenv("APEX_CRM_OBJECTS", "contacts,../admin")
    with pytest.raises(SettingsError, match="APEX_CRM_OBJECTS"):
        load(CrmSettings)
    monkeypatch.setenv("APEX_CRM_OBJECTS", "contacts")
    monkeypatch.setenv("APEX_CRM_PAGE_SIZE", "500")
    with pytest.raises(SettingsError, match="APEX_CRM_PAGE_SIZE"):
        load(CrmSettings)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_is_read_or_refused_with_a_shape_error(doc: Any) -> None:
    for parse in (lambda d: parse_page(d, "w"), lambda d: parse_associations(d, "w")):
        with contextlib.suppress(ShapeError):
            parse(doc if isinstance(doc, dict) else {"results": doc})
    try:
        obj = parse_object(doc, "w")
        build_record(CONTACTS, obj)
    except ShapeError:
        pass
