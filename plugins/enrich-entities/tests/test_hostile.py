"""Hostile and random input: no catastrophic backtracking, and every entity found is well formed.

Each adversarial case is large enough that a quadratic or exponential pattern would hang the
test (pytest-timeout ends it) while linear scans finish at once; nothing here measures time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_enricher_entities import EntitiesSettings, EntityEnricher, phones, vin
from apex_enricher_entities.settings import ENTITY_TYPES
from apex_platform.models import Record

RecordFactory = Callable[..., Record]
N = 100_000

ADVERSARIAL = {
    "digits": "1" * N,
    "digits and dashes": "12-" * (N // 3),
    "dashes": "-" * N,
    "spaces": " " * N,
    "ats": "@" * N,
    "at words": "a@" * (N // 2),
    "dotted local part": "a." * (N // 2) + "@",
    "domain labels": "a@" + "b." * (N // 2),
    "long label": "a@" + "b" * N + ".com",
    "plus digits": "+" + "1" * N,
    "plus groups": "+1 " * (N // 3),
    "phone-ish": "(404) 555-" * (N // 10),
    "parens": "(" * N + "1" * 20,
    "dollars": "$" * N + "1",
    "commas": "1," * (N // 2),
    "number groups": "$1,234" + ",567" * (N // 4),
    "decimal runs": "$1." + "1" * N,
    "capitalised words": "Aaa " * (N // 4) + ", GA",
    "long capital word": "A" + "a" * N + ", GA",
    "capital comma runs": "Aa, " * (N // 4),
    "org words": "Acme " * (N // 5) + "Inc",
    "org no suffix": "A.B. " * (N // 5),
    "labels": "PRO " * (N // 4),
    "label marks": "PRO # " * (N // 6),
    "load runs": "Load 1 " * (N // 7),
    "vin-ish": "1HGCM82633A00435" * (N // 16),
    "upper run": "A" * N,
    "truck runs": "Truck " * (N // 6),
    "unit after street": "St Unit 1 " * (N // 10),
    "signature": "Thanks,\n" * (N // 8),
    "signature names": "Thanks,\nAnn " * (N // 12),
    "newlines": "\n" * N,
    "mixed": "@-. 1$,(A" * (N // 9),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_input_is_scanned_linearly(
    name: str, make_enricher: Callable[..., Any], record: RecordFactory
) -> None:
    text = ADVERSARIAL[name]
    enricher = make_enricher(max_text_chars=N + 10)
    out = enricher.enrich_one(record(text, title=text[:1000], attributes={"note": text}))
    _check_well_formed(out)


def test_adversarial_fixed_expectations(enricher: EntityEnricher, record: RecordFactory) -> None:
    def keys(text: str) -> set[tuple[str, str]]:
        return {(e.type, e.key) for e in enricher.enrich_one(record(text)).entities}

    assert keys("1" * 10_000) == set()
    assert keys("@" * 10_000) == set()
    assert keys("a@" * 5_000) == set()
    assert keys("-" * 10_000 + "ann@acme.com" + "-" * 10_000) == set()  # '-' may open or close an address
    assert keys(" " * 10_000 + "ann@acme.com" + " " * 10_000) == {("Email", "ann@acme.com")}
    assert keys("$" * 10_000 + " $5.00") == {("Amount", "USD 5.00")}
    assert keys("PRO " * 5_000 + "PRO 12345") == {("Shipment", "12345")}


def _check_well_formed(out: Record) -> None:
    for entity in out.entities:
        assert entity.type in ENTITY_TYPES
        key = entity.key
        assert key == key.strip()
        assert key
        if entity.type == "Email":
            assert key == key.lower()
            assert key.count("@") == 1
        elif entity.type == "Phone":
            assert re.fullmatch(r"\+[1-9]\d{6,14}", key), key
        elif entity.type == "Amount":
            currency, amount = key.split(" ")
            assert entity.properties == {"currency": currency, "amount": amount}
            assert re.fullmatch(r"-?\d+(\.\d+)?", amount)
        elif entity.type == "Vehicle":
            assert key.startswith(("unit:", "trailer:")) or vin.is_vin(key)
        elif entity.type == "Carrier":
            assert re.fullmatch(r"(DOT|MC):\d+|SCAC:[A-Z]{2,4}", key)
        elif entity.type == "Place":
            assert re.fullmatch(r".+, [A-Z]{2}", key)
        elif entity.type in ("Shipment", "Invoice", "PurchaseOrder", "BillOfLading"):
            assert re.fullmatch(r"[A-Z0-9][A-Z0-9-]*", key)
            assert any(c.isdigit() for c in key)


_PIECES = st.sampled_from(
    [
        "PRO ", "Load #", "BOL ", "PO ", "Invoice ", "INV-", "Truck ", "Unit ", "VIN ", "USDOT ", "MC-", "SCAC ",
        "$", "€", "USD ", " EUR", "1,234.50", "0286-55431", "(404) 555-1234", "+44 20 7946 0958", "1HGCM82633A004352",
        "ann@acme.com", "@", ".", ",", "-", " ", "\n", "Thanks,\n", "Ann Shipper", "Acme Logistics", ", Inc.", " LLC",
        "Atlanta", ", GA", " 30301", "Box", "lbs", "#", ":", "<", ">", "O'Neil", "St ", "Ünïcødé", "🚚", "\u0000",
    ]
)  # fmt: skip
texts = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, title=texts)
def test_random_text(enricher: EntityEnricher, record: RecordFactory, text: str, title: str) -> None:
    original = record(text, title=title)
    out = enricher.enrich_one(original)
    _check_well_formed(out)
    assert out.model_dump(exclude={"entities", "relations"}) == original.model_dump(exclude={"entities", "relations"})
    assert len({(e.type, e.key) for e in out.entities}) == len(out.entities)
    assert enricher.enrich_one(out) == out  # idempotent
    Record.model_validate_json(out.model_dump_json())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["name", "email", "phone", "pro_number", "shipper", "driver", "city", "state", "amount", "currency", "x"]
    ), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_random_attributes(enricher: EntityEnricher, record: RecordFactory, attributes: dict[str, Any]) -> None:
    out = enricher.enrich_one(record(attributes=attributes))
    _check_well_formed(out)
    assert enricher.enrich_one(out) == out


@settings(max_examples=100, deadline=None)
@given(types=st.sets(st.sampled_from(ENTITY_TYPES), min_size=1), text=texts)
def test_enabled_types_only(types: set[str], text: str) -> None:
    from datetime import UTC, datetime

    enricher = EntityEnricher(EntitiesSettings(enabled_types=",".join(sorted(types))))
    record = Record(source="s", kind="k", id="1", version=1, occurred_at=datetime(2024, 1, 1, tzinfo=UTC), text=text)
    assert {e.type for e in enricher.enrich_one(record).entities} <= types


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=17, max_size=17))
def test_vin_check_digit_is_what_validates(candidate: str) -> None:
    fixed = candidate[:8] + (vin.check_digit(candidate) or "0") + candidate[9:]
    has_both = any(c.isalpha() for c in fixed) and any(c.isdigit() for c in fixed)
    assert vin.is_vin(fixed) == has_both


@given(st.text(max_size=40))
def test_phone_normalisation_is_e164_or_nothing(raw: str) -> None:
    for use_library in (True, False):
        number = phones.normalize(raw, "US", use_library=use_library)
        assert number is None or re.fullmatch(r"\+[1-9]\d{6,14}", number)
