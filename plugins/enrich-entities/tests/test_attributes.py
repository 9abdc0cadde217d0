"""Entities from attributes: a field's name is its label; objects in a role name their entity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Found = Callable[..., dict[tuple[str, str], dict[str, Any]]]


def test_named_fields(found: Found) -> None:
    got = found(
        attributes={
            "pro_number": "0286-55431",
            "loadId": 4471823,
            "BOL": "bol-77",
            "customer_po": "4500012345",
            "invoice-number": "inv-123",
            "email": "Ann@Acme.com",
            "phone": "404 555 1234",
            "vin": "1hgcm82633a004352",
            "truck_number": "12",
            "trailer": "5301",
            "usdot": "1234567",
            "mc_number": "MC-654321",
            "scac": "ABCD",
        }
    )
    assert got == {
        ("Shipment", "0286-55431"): {"scheme": "PRO"},
        ("Shipment", "4471823"): {"scheme": "LOAD"},
        ("BillOfLading", "BOL-77"): {},
        ("PurchaseOrder", "4500012345"): {},
        ("Invoice", "INV-123"): {},
        ("Email", "ann@acme.com"): {},
        ("Phone", "+14045551234"): {},
        ("Vehicle", "1HGCM82633A004352"): {"vin": "1HGCM82633A004352"},
        ("Vehicle", "unit:12"): {"unit": "12", "kind": "unit"},
        ("Vehicle", "trailer:5301"): {"unit": "5301", "kind": "trailer"},
        ("Carrier", "DOT:1234567"): {"scheme": "DOT", "number": "1234567"},
        ("Carrier", "MC:654321"): {"scheme": "MC", "number": "654321"},
        ("Carrier", "SCAC:ABCD"): {"scheme": "SCAC", "scac": "ABCD"},
    }


def test_invalid_named_values_are_left_out(found: Found) -> None:
    got = found(
        attributes={
            "pro_number": "n/a",
            "email": "not an email",
            "phone": "12",
            "vin": "1HGCM82633A004353",
            "truck": "none",
            "usdot": "12",
            "scac": "abcd1",
            "invoice_id": True,
            "po": None,
        }
    )
    assert got == {}


def test_roles_name_people_and_organisations(found: Found) -> None:
    got = found(
        attributes={
            "shipper": {"name": "Acme Logistics, L.L.C.", "city": "Atlanta", "state": "Georgia", "zip": "30301"},
            "consignee": {"name": "Ann Smith"},  # a consignee is an organisation, whatever its name looks like
            "driver": {"name": "Bob Smith", "phone": "(404) 555-0000"},
            "carrier_name": "Swift Transportation",
            "merchant_name": "Pilot Flying J",
            "contacts": [{"first_name": "Carla", "last_name": "Diaz"}, {"name": "Dan Wu", "email": "dan@x.com"}],
        }
    )
    assert ("Organization", "Acme Logistics LLC") in got
    assert ("Organization", "Ann Smith") in got
    assert ("Person", "Ann Smith") not in got
    assert ("Person", "Bob Smith") in got
    assert ("Organization", "Swift Transportation") in got
    assert ("Organization", "Pilot Flying J") in got
    assert ("Person", "Carla Diaz") in got
    assert ("Person", "Dan Wu") in got
    assert got[("Place", "Atlanta, GA")] == {"city": "Atlanta", "state": "GA", "zip": "30301"}
    assert ("Phone", "+14045550000") in got


def test_bare_names_are_not_people(found: Found) -> None:
    """A tag, an inbox or a vehicle has a `name` too: alone, it names nobody."""
    got = found(
        attributes={"name": "Urgent Loads", "tags": [{"name": "Late Delivery"}], "vehicle": {"name": "Truck 12"}}
    )
    assert {k for k in got if k[0] in ("Person", "Organization")} == set()
    assert ("Vehicle", "unit:12") in got  # the string is still scanned as text


def test_amount_with_currency(found: Found) -> None:
    got = found(attributes={"amount": 12.5, "iso_currency_code": "USD", "fee": {"value": "7", "currency": "cad"}})
    assert got == {
        ("Amount", "USD 12.50"): {"currency": "USD", "amount": "12.50"},
        ("Amount", "CAD 7.00"): {"currency": "CAD", "amount": "7.00"},
    }


def test_amount_without_currency_is_not_guessed(found: Found) -> None:
    assert found(attributes={"amount": 12.5, "currency": "XXX", "total": float("nan")}) == {}


def test_strings_in_attributes_are_scanned_as_text(found: Found) -> None:
    got = found(attributes={"notes": ["Call ann@acme.com about PRO 123456"], "deep": {"a": {"b": {"c": "MC 123456"}}}})
    assert set(got) == {("Email", "ann@acme.com"), ("Shipment", "123456"), ("Carrier", "MC:123456")}


def test_depth_and_size_are_bounded(found: Found) -> None:
    nested: dict[str, Any] = {"email": "deep@acme.com"}
    for _ in range(50):
        nested = {"x": nested}
    wide = {f"k{i}": "nothing here" for i in range(20_000)}
    assert found(attributes={"nested": nested, "wide": wide}) == {}
