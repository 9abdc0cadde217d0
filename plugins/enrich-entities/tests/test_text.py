"""What the enricher finds in free text, type by type: what it must find and what it must not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Keys = Callable[..., set[tuple[str, str]]]
Found = Callable[..., dict[tuple[str, str], dict[str, Any]]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to Ann.Shipper@Example.COM today", {"ann.shipper@example.com"}),
        ("<ops+loads@acme-freight.co.uk>, billing@acme.com.", {"ops+loads@acme-freight.co.uk", "billing@acme.com"}),
        ("mailto:dispatch@carrier.io?subject=x", {"dispatch@carrier.io"}),
    ],
)
def test_emails_lower_cased(keys: Keys, text: str, expected: set[str]) -> None:
    assert keys(text, "Email") == {("Email", e) for e in expected}


@pytest.mark.parametrize(
    "text", ["@ann", "ann@", "ann@localhost", "a@b.c", "twitter @acme.com", "x@@y.com", "ann@-x.com"]
)
def test_not_emails(keys: Keys, text: str) -> None:
    assert keys(text, "Email") == set()


def test_named_address_gives_person_with_relation(enricher: Any, record: Callable[..., Any]) -> None:
    out = enricher.enrich_one(record('From: "Ann Shipper" <ann@acme.com>'))
    entities = {(e.type, e.key): e.properties for e in out.entities}
    assert entities[("Person", "Ann Shipper")] == {"email": "ann@acme.com"}
    assert ("Email", "ann@acme.com") in entities
    assert [(r.src, r.type, r.dst) for r in out.relations] == [
        ("Person:Ann Shipper", "HAS_EMAIL", "Email:ann@acme.com")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call (404) 555-1234", "+14045551234"),
        ("call 404-555-1234.", "+14045551234"),
        ("call 404.555.1234", "+14045551234"),
        ("call +1 404 555 1234", "+14045551234"),
        ("call 1-800-555-1234", "+18005551234"),
        ("Phone: 4045551234", "+14045551234"),
        ("Tel. +44 20 7946 0958", "+442079460958"),
        ("London office +44 20 7946 0958", "+442079460958"),
    ],
)
def test_phones_e164(keys: Keys, text: str, expected: str) -> None:
    assert keys(text, "Phone") == {("Phone", expected)}


@pytest.mark.parametrize(
    "text",
    [
        "load 4045551234",  # a bare 10-digit run is an identifier until labelled
        "on 2024-05-01 12:30",
        "PRO 0286-55431",
        "ZIP 30301-1234",
        "call 123-456-7890",  # area code cannot start with 1
        "version 1.2.3.4",
        "ref 404-555-12345",
    ],
)
def test_not_phones(keys: Keys, text: str) -> None:
    assert keys(text, "Phone") == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("total $1,234.50 due", {"USD 1234.50"}),
        ("total USD 1,234.5", {"USD 1234.50"}),
        ("rate 1234 USD", {"USD 1234.00"}),
        ("fuel $3.459/gal", {"USD 3.459"}),
        ("paid €1.234,56 and 20 €", {"EUR 1234.56", "EUR 20.00"}),
        ("CA$ 250 and C$99.99", {"CAD 250.00", "CAD 99.99"}),
        ("€12,50 or £12.50", {"EUR 12.50", "GBP 12.50"}),
        ("¥ 500 and JPY 1500", {"JPY 1500"}),
        ("$100 USD", {"USD 100.00"}),
    ],
)
def test_amounts(found: Found, text: str, expected: set[str]) -> None:
    amounts = {k: v for (t, k), v in found(text).items() if t == "Amount"}
    assert set(amounts) == expected
    for key, props in amounts.items():
        assert key == f"{props['currency']} {props['amount']}"


@pytest.mark.parametrize(
    "text", ["$5k budget", "R$ 100", "$1,23", "$12,50", "$1.234,50", "€1.234", "1234", "$ abc", "USD"]
)
def test_not_amounts(keys: Keys, text: str) -> None:
    assert keys(text, "Amount") == set()


@pytest.mark.parametrize(
    ("text", "type_", "key", "props"),
    [
        ("PRO 0286-55431 is late", "Shipment", "0286-55431", {"scheme": "PRO"}),
        ("PRO#0286-55431", "Shipment", "0286-55431", {"scheme": "PRO"}),
        ("pro # 12345", "Shipment", "12345", {"scheme": "PRO"}),
        ("Load 4471823 delivered", "Shipment", "4471823", {"scheme": "LOAD"}),
        ("load number: L-99812", "Shipment", "L-99812", {"scheme": "LOAD"}),
        ("Shipment #SH-1001", "Shipment", "SH-1001", {"scheme": "SHIPMENT"}),
        ("BOL# 998877", "BillOfLading", "998877", {}),
        ("Bill of Lading 55-1234", "BillOfLading", "55-1234", {}),
        ("B/L: MAEU123456", "BillOfLading", "MAEU123456", {}),
        ("PO 4500012345", "PurchaseOrder", "4500012345", {}),
        ("P.O. #A-7781", "PurchaseOrder", "A-7781", {}),
        ("Purchase Order 7781", "PurchaseOrder", "7781", {}),
        ("Invoice INV-123", "Invoice", "INV-123", {}),
        ("invoice #10042", "Invoice", "10042", {}),
        ("see inv-778 and INV-2024-0042", "Invoice", "INV-2024-0042", {}),
    ],
)
def test_labelled_numbers(found: Found, text: str, type_: str, key: str, props: dict[str, str]) -> None:
    assert found(text).get((type_, key)) == props


@pytest.mark.parametrize(
    "text",
    [
        "load 1200 lbs",
        "Load 12 pallets",
        "Load 10 am",
        "PO Box 1234",
        "P.O. Box 77",
        "a pro tip 2024",
        "Invoice dated yesterday",
        "PROBLEM 123",
        "download 12345",
        "the shipment 4471823 left",
        "PO 12",
    ],
)
def test_not_labelled_numbers(keys: Keys, text: str) -> None:
    assert {k for k in keys(text) if k[0] in ("Shipment", "BillOfLading", "PurchaseOrder", "Invoice")} == set()


def test_vehicles(keys: Keys) -> None:
    text = "VIN 1HGCM82633A004352, Truck 12, Tractor #T-88, unit # 7, TRAILER 5301"
    assert keys(text, "Vehicle") == {
        ("Vehicle", "1HGCM82633A004352"),
        ("Vehicle", "unit:12"),
        ("Vehicle", "unit:T-88"),
        ("Vehicle", "unit:7"),
        ("Vehicle", "trailer:5301"),
    }


@pytest.mark.parametrize(
    "text",
    [
        "VIN 1HGCM82633A004353",  # check digit wrong
        "VIN 11111111111111111",  # no letter
        "vin 1hgcm82633a004352",  # lower case: more likely a hash than a VIN
        "123 Main St Unit 4",
        "Suite 200, Unit 4",
        "the truck 12 is late",  # lower-case label without a mark
        "Truck driver",
        "Unit price 12 units",
    ],
)
def test_not_vehicles(keys: Keys, text: str) -> None:
    assert keys(text, "Vehicle") == set()


def test_carriers(found: Found) -> None:
    got = found("USDOT 1234567, US DOT# 765432, MC-654321, MC # 112233, SCAC: ABCD, SCAC code XYZ")
    assert {k for k in got if k[0] == "Carrier"} == {
        ("Carrier", "DOT:1234567"),
        ("Carrier", "DOT:765432"),
        ("Carrier", "MC:654321"),
        ("Carrier", "MC:112233"),
        ("Carrier", "SCAC:ABCD"),
        ("Carrier", "SCAC:XYZ"),
    }
    assert got[("Carrier", "DOT:1234567")] == {"scheme": "DOT", "number": "1234567"}


@pytest.mark.parametrize("text", ["DOT 2024 inspection", "MC 1234 card", "ABCD is a code", "dot 1234567", "SCAC abcd"])
def test_not_carriers(keys: Keys, text: str) -> None:
    assert keys(text, "Carrier") == set()


def test_places(found: Found) -> None:
    got = found(
        "Picked up in Atlanta, GA 30301, via St. Louis, MO and Salt Lake City, UT; "
        "delivered to Winston-Salem, NC. Origin: Dallas TX 75201."
    )
    places = {k: v for k, v in got.items() if k[0] == "Place"}
    assert set(places) == {
        ("Place", "Atlanta, GA"),
        ("Place", "St. Louis, MO"),
        ("Place", "Salt Lake City, UT"),
        ("Place", "Winston-Salem, NC"),
        ("Place", "Dallas, TX"),
    }
    assert places[("Place", "Atlanta, GA")] == {"city": "Atlanta", "state": "GA", "zip": "30301"}
    assert places[("Place", "Dallas, TX")]["zip"] == "75201"


@pytest.mark.parametrize("text", ["Hello, OK", "Thanks, ME", "Yes, OR no", "Smith, JR", "Dallas TX", "Paris, FR"])
def test_not_places(keys: Keys, text: str) -> None:
    assert keys(text, "Place") == set()


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Load is ready.\n\nThanks,\nAnn Shipper\n", "Ann Shipper"),
        ("Best regards,\r\n  Mary-Jane O'Neil\r\n", "Mary-Jane O'Neil"),
        ("Thanks, Ann Shipper", "Ann Shipper"),
        ("Regards -\nJohn Q. Public", "John Q. Public"),
    ],
)
def test_signature_names(keys: Keys, text: str, name: str) -> None:
    assert keys(text, "Person") == {("Person", name)}


@pytest.mark.parametrize(
    "text",
    [
        "Thanks,\nDispatch Team\n",
        "Thanks,\nAnn\n",  # one word: not enough to tell a person
        "Best Western Plaza\n",
        "Thanks, Ann Shipper | Dispatcher",
        "Thanks for the update Ann Shipper",
        "Thanks,\nann shipper\n",
    ],
)
def test_not_signature_names(keys: Keys, text: str) -> None:
    assert keys(text, "Person") == set()


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("billed by Acme Logistics, Inc. today", "Acme Logistics Inc"),
        ("J.B. Hunt Transport Services, Inc.", "J.B. Hunt Transport Services Inc"),
        ("The Smith & Sons LLC office", "Smith & Sons LLC"),
        ("Bank of America Corp.", "Bank of America Corp"),
        ("ACME FREIGHT INC", "ACME FREIGHT Inc"),
        ("Globex Ltd", "Globex Ltd"),
    ],
)
def test_organisations(keys: Keys, text: str, name: str) -> None:
    assert keys(text, "Organization") == {("Organization", name)}


@pytest.mark.parametrize("text", ["the company inc", "Inc.", "we incorporated", "Denver, CO", "Thanks LLC"])
def test_not_organisations(keys: Keys, text: str) -> None:
    assert keys(text, "Organization") == set()
