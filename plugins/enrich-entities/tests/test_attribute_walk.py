"""The attribute walk against the walk it replaced (kept here): the same entities, in the
same order, with the same properties, and the same text handed to the text scan.

The reference is the previous `AttributeScan._walk` verbatim, with `_role` and `_dict`
given every dict (the new walk skips `_dict` for a dict without a combined field, and
`_field` for a name no branch reads) and each key normalised again where it was.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from apex_enricher_entities import text
from apex_enricher_entities.attributes import MAX_DEPTH, MAX_NODES, NAME_FIELDS, AttributeScan, field_name
from apex_enricher_entities.found import Found
from apex_enricher_entities.settings import ENTITY_TYPES


class ReferenceScan(AttributeScan):
    def _walk(self, value: object, name: str | None, depth: int, *, named: bool) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            has_role = name is not None and self._role_old(value, name)
            self._dict(value, [field_name(str(k)) for k in value])
            for key, item in value.items():
                self._walk(item, field_name(str(key)), depth + 1, named=has_role)
        elif isinstance(value, list | tuple):
            for item in value:
                self._walk(item, name, depth + 1, named=named)
        else:
            if name is not None and not (named and name in NAME_FIELDS):
                self._field(name, value)
            if isinstance(value, str) and self.budget > 0:
                chunk = text.clip(value, self.budget)
                self.budget -= max(len(chunk), min(len(value), self.budget))
                self._texts.append(chunk)

    def _role_old(self, obj: dict[str, Any], role: str) -> bool:
        return self._role(obj, [field_name(str(k)) for k in obj], role)


KEYS = [
    "Pro_Number", "load_id", "bol", "po", "invoice_no", "email", "Contact-Email", "phone", "fax", "vin", "truck",
    "trailer_no", "dot", "mc", "scac", "driver", "driverName", "shipper", "Carrier", "customer", "name",
    "displayName", "first_name", "lastName", "given_name", "surname", "city", "State", "province", "zip",
    "postal_code", "currency", "iso_currency_code", "amount", "total", "notes", "id", "stops", "x",
]  # fmt: skip
VALUES = [
    "0286-55431", "4471823", "ann@acme.example", "not an email", "(404) 555-1234", "+44 20 7946 0958",
    "1FUJGLDR5CLBP8835", "53-118", "1234567", "MC-765432", "ABCD", "Ann Shipper", "Mary-Jane O'Neil",
    "Acme Freight, Inc.", "Blue Road Logistics LLC", "Atlanta", "GA", "Georgia", "30301", "USD", "eur", "12.5",
    "Call PRO# 0286-55431 in Dallas, TX 75201 for $1,250.00", "Thanks,\nAnn Shipper", " ", "", "x" * 300,
    "word " * 80,
]  # fmt: skip
scalars = st.one_of(
    st.sampled_from(VALUES), st.text(max_size=20), st.integers(-10, 10**9), st.floats(), st.booleans(), st.none()
)
attributes = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=40,
)


def _scan(cls: type[AttributeScan], attrs: dict[str, Any], budget: int) -> tuple[Any, ...]:
    found = Found(frozenset(ENTITY_TYPES))
    scan = cls(found, "US", budget=budget)
    scan.run(attrs)
    return list(found.entities.items()), list(found.relations), scan._texts, scan.budget, scan.nodes


@settings(max_examples=150, deadline=None)
@example(attrs={"order": {"currency": "USD", "total": 1250, "x": "y"}}, budget=100)
@example(
    attrs={"a": [{"first_name": "Ann", "lastName": "Shipper"}, {"name": "Ann Shipper", "fax": "4045551234"}]}, budget=9
)
@example(attrs={"stop": {"city": "Atlanta", "State": "Georgia", "zip": "30301"}}, budget=2_000)
@example(attrs={"shipper": {"name": "Acme Freight, Inc."}, "driver": [{"displayName": "Ann Shipper"}]}, budget=5)
@given(attrs=st.dictionaries(st.sampled_from(KEYS), attributes, max_size=8), budget=st.integers(1, 2_000))
def test_the_walk_finds_what_the_previous_walk_found(attrs: dict[str, Any], budget: int) -> None:
    assert _scan(AttributeScan, attrs, budget) == _scan(ReferenceScan, attrs, budget)
