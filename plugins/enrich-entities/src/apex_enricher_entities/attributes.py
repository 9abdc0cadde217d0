"""Entities in a record's attributes: named fields first, then every string as text.

A field's name is its label: `{"pro_number": "0286-55431"}` is a PRO number even without
"PRO" in the value, `{"shipper": {"name": "Acme"}}` names an organisation. Nested
dicts and lists are walked to a bounded depth and size.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from apex_enricher_entities import amounts, names, phones, places, text, vin
from apex_enricher_entities.found import Found
from apex_enricher_entities.scan_memo import Memo, scan_strings

MAX_DEPTH = 8
MAX_NODES = 10_000
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=4096)
def field_name(name: str) -> str:
    """`Pro_Number`, `pro-number`, `proNumber` → `pronumber`.

    Cached: a source's records repeat the same few field names, and the walk asks for
    every key of every dict of every record."""
    return _NOT_ALNUM.sub("", name.lower())


class FieldNames(frozenset[str]):
    """A set of field names that iterates in the order they were declared: where two
    synonyms sit in one dict (`first_name` and `given_name`), the first declared is the one
    read, in every process. A plain frozenset iterates in hash order, which changes with
    PYTHONHASHSEED: two workers could enrich the same record differently."""

    order: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...]) -> FieldNames:
        self = super().__new__(cls, names)
        self.order = tuple(dict.fromkeys(names))
        return self

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)


def _names(*variants: str) -> FieldNames:
    return FieldNames(tuple(field_name(v) for v in variants))


#: field name → (entity type, scheme) for identifiers named by their field.
ID_FIELDS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(_names("pro", "pro_number", "pro_no", "pro_num", "pro_id"), ("Shipment", "PRO")),
    **dict.fromkeys(_names("load_number", "load_no", "load_num", "load_id"), ("Shipment", "LOAD")),
    **dict.fromkeys(
        _names("bol", "bol_number", "bol_no", "bill_of_lading", "bill_of_lading_number", "bl_number"),
        ("BillOfLading", None),
    ),
    **dict.fromkeys(
        _names("po", "po_number", "po_no", "purchase_order", "purchase_order_number", "customer_po"),
        ("PurchaseOrder", None),
    ),
    **dict.fromkeys(_names("invoice_number", "invoice_no", "invoice_num", "invoice_id"), ("Invoice", None)),
}
EMAIL_FIELDS = _names("email", "email_address", "e_mail", "contact_email", "sender_email")
PHONE_FIELDS = _names("phone", "phone_number", "telephone", "tel", "mobile", "cell", "fax", "contact_phone")
VIN_FIELDS = _names("vin", "vehicle_vin", "vin_number")
UNIT_FIELDS = _names("truck", "truck_number", "truck_no", "unit", "unit_number", "unit_no", "tractor", "tractor_number")
TRAILER_FIELDS = _names("trailer", "trailer_number", "trailer_no")
DOT_FIELDS = _names("dot", "dot_number", "usdot", "us_dot", "usdot_number")
MC_FIELDS = _names("mc", "mc_number", "mc_no")
SCAC_FIELDS = _names("scac", "scac_code", "carrier_scac")
PERSON_FIELDS = _names(
    "driver", "driver_name", "contact_name", "sender_name", "requester", "dispatcher", "full_name", "person"
)
ORG_FIELDS = _names(
    "company", "company_name", "customer", "customer_name", "shipper", "shipper_name", "consignee",
    "consignee_name", "carrier", "carrier_name", "broker", "broker_name", "vendor", "vendor_name", "payee",
    "merchant", "merchant_name", "counterparty", "organization", "organisation", "org", "bill_to", "account_name",
)  # fmt: skip
NAME_FIELDS = _names("name", "display_name")
FIRST_NAME_FIELDS = _names("first_name", "firstname", "given_name")
LAST_NAME_FIELDS = _names("last_name", "lastname", "family_name", "surname")
CITY_FIELDS = _names("city", "city_name", "town")
STATE_FIELDS = _names("state", "state_code", "province", "region", "state_province")
ZIP_FIELDS = _names("zip", "zip_code", "zipcode", "postal_code", "postcode")
CURRENCY_FIELDS = _names("currency", "currency_code", "iso_currency_code")
AMOUNT_FIELDS = _names("amount", "total", "total_amount", "amount_due", "balance", "value", "price")

#: Every name `_field` reads, with the branch that reads it (the first set that holds the
#: name, in `_field`'s order): a field with another name is passed over at one dict look-up.
_FIELD_BRANCH: dict[str, int] = {}
for _branch, _fields in enumerate(
    (
        frozenset(ID_FIELDS), EMAIL_FIELDS, PHONE_FIELDS, VIN_FIELDS, UNIT_FIELDS | TRAILER_FIELDS, DOT_FIELDS,
        MC_FIELDS, SCAC_FIELDS, PERSON_FIELDS, ORG_FIELDS, NAME_FIELDS,
    )
):  # fmt: skip
    for _name in _fields:
        _FIELD_BRANCH.setdefault(_name, _branch)
#: The names `_dict` reads together: a dict with none of them holds no combination.
_COMBINED_FIELDS = (
    FIRST_NAME_FIELDS | LAST_NAME_FIELDS | EMAIL_FIELDS | PHONE_FIELDS | CITY_FIELDS | STATE_FIELDS | CURRENCY_FIELDS
)

_ID_VALUE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,38}[A-Z0-9])?")
_DIGITS = re.compile(r"\d{4,8}")
_SCAC = re.compile(r"[A-Z]{2,4}")
_ZIP = re.compile(r"\d{5}(?:-\d{4})?")


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


class AttributeScan:
    """One walk over a record's attributes; `budget` caps the characters scanned as text.

    `memo`: the strings' scans remembered across records (`scan_memo`); without one, the
    strings are joined and scanned afresh."""

    def __init__(self, found: Found, region: str, budget: int, memo: Memo | None = None) -> None:
        self.found = found
        self.region = region
        self.budget = budget
        self.memo = memo
        self.nodes = 0
        self._texts: list[str] = []

    def run(self, attributes: dict[str, Any]) -> None:
        self._walk(attributes, None, 0, named=False)
        # One scan over all strings: a blank line between them, which no pattern crosses.
        if self.memo is not None:
            scan_strings(self._texts, self.found, self.region, self.memo)
        else:
            text.scan("\n\n".join(chunk for chunk in self._texts if chunk), self.found, self.region)

    def _walk(self, value: object, name: str | None, depth: int, *, named: bool) -> None:
        """`named`: the enclosing object's role already said what its `name` field is."""
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            return
        if isinstance(value, str):  # most nodes: tested first
            if name is not None and name in _FIELD_BRANCH and not (named and name in NAME_FIELDS):
                self._field(name, value)
            budget = self.budget
            if budget > 0:
                if len(value) <= budget:  # `text.clip` keeps it whole
                    self.budget = budget - len(value)
                    self._texts.append(value)
                else:
                    chunk = text.clip(value, budget)
                    self.budget = budget - max(len(chunk), budget)
                    self._texts.append(chunk)
        elif isinstance(value, dict):
            keys = [field_name(str(key)) for key in value]
            has_role = name is not None and self._role(value, keys, name)
            if not _COMBINED_FIELDS.isdisjoint(keys):
                self._dict(value, keys)
            for item, item_name in zip(value.values(), keys, strict=True):
                self._walk(item, item_name, depth + 1, named=has_role)
        elif isinstance(value, list | tuple):
            for item in value:
                self._walk(item, name, depth + 1, named=named)
        elif name is not None and name in _FIELD_BRANCH and not (named and name in NAME_FIELDS):
            self._field(name, value)

    def _field(self, name: str, value: object) -> None:
        found = self.found
        raw = _scalar(value)
        if raw is None:
            return
        if name in ID_FIELDS:
            type_, scheme = ID_FIELDS[name]
            ident = raw.upper()
            if _ID_VALUE.fullmatch(ident) and any(c.isdigit() for c in ident):
                found.add(type_, ident, **({"scheme": scheme} if scheme else {}))
        elif name in EMAIL_FIELDS:
            if text.EMAIL_FULL_RE.fullmatch(raw):
                found.add("Email", raw.lower())
        elif name in PHONE_FIELDS:
            number = phones.normalize(raw, self.region) if found.wants("Phone") else None
            if number is not None:
                found.add("Phone", number)
        elif name in VIN_FIELDS:
            if vin.is_vin(raw.upper()):
                found.add("Vehicle", raw.upper(), vin=raw.upper())
        elif name in UNIT_FIELDS or name in TRAILER_FIELDS:
            ident = raw.upper()
            if _ID_VALUE.fullmatch(ident) and len(ident) <= 16 and any(c.isdigit() for c in ident):
                kind = "trailer" if name in TRAILER_FIELDS else "unit"
                found.add("Vehicle", f"{kind}:{ident}", unit=ident, kind=kind)
        elif name in DOT_FIELDS:
            if _DIGITS.fullmatch(raw):
                found.add("Carrier", f"DOT:{raw}", scheme="DOT", number=raw)
        elif name in MC_FIELDS:
            digits = raw.upper().removeprefix("MC").strip(" -#")
            if _DIGITS.fullmatch(digits):
                found.add("Carrier", f"MC:{digits}", scheme="MC", number=digits)
        elif name in SCAC_FIELDS:
            if _SCAC.fullmatch(raw):
                found.add("Carrier", f"SCAC:{raw}", scheme="SCAC", scac=raw)
        elif name in PERSON_FIELDS and isinstance(value, str):
            self._person(raw)
        elif name in ORG_FIELDS and isinstance(value, str):
            self._org(raw)
        elif name in NAME_FIELDS and isinstance(value, str) and names.has_org_suffix(raw):
            # A bare "name" is an organisation only with a legal suffix; whether it is a
            # person is decided with its siblings (see `_dict`). Tags, inboxes and products
            # have names too.
            self._org(raw)

    def _role(self, obj: dict[str, Any], keys: list[str], role: str) -> bool:
        """`{"shipper": {"name": ...}}`: the object's name in the role the parent gives it."""
        add: Callable[[str], None]
        if role in ORG_FIELDS:
            add = self._org
        elif role in PERSON_FIELDS:
            add = self._person
        else:
            return False
        name = next((_scalar(item) for item, k in zip(obj.values(), keys, strict=True) if k in NAME_FIELDS), None)
        if isinstance(name, str) and not name.isdigit():
            add(name)
        return True

    def _dict(self, obj: dict[str, Any], keys: list[str]) -> None:
        """Fields that mean something together: city + state (+ zip), amount + currency.
        `keys`: `field_name` of each key, in order."""
        fields = dict(zip(keys, obj.values(), strict=True))
        found = self.found
        if found.wants("Person"):
            first = next((_scalar(fields[k]) for k in FIRST_NAME_FIELDS if k in fields), None)
            last = next((_scalar(fields[k]) for k in LAST_NAME_FIELDS if k in fields), None)
            if first and last:
                self._person(f"{first} {last}")
            elif any(k in fields for k in EMAIL_FIELDS | PHONE_FIELDS):
                # {"name": "Ann Shipper", "email": ...}: a name next to a contact handle.
                name = next((fields[k] for k in NAME_FIELDS if k in fields), None)
                if isinstance(name, str) and not names.has_org_suffix(name):
                    self._person(name)
        if found.wants("Place"):
            city = next((_scalar(fields[k]) for k in CITY_FIELDS if k in fields), None)
            state = next((_scalar(fields[k]) for k in STATE_FIELDS if k in fields), None)
            code = places.state_code(state) if state else None
            if city and code and len(city) <= 60 and any(c.isalpha() for c in city):
                city = " ".join(city.split())
                zip_ = next((_scalar(fields[k]) for k in ZIP_FIELDS if k in fields), None)
                zip_ = zip_ if zip_ and _ZIP.fullmatch(zip_) else None
                found.add("Place", f"{city}, {code}", city=city, state=code, zip=zip_)
        if found.wants("Amount"):
            currency = next((_scalar(fields[k]) for k in CURRENCY_FIELDS if k in fields), None)
            if currency and currency.upper() in amounts.CODES:
                for k in AMOUNT_FIELDS:
                    if k in fields:
                        key = amounts.from_number(fields[k], currency.upper())
                        if key is not None:
                            found.add("Amount", key, currency=currency.upper(), amount=key.split(" ", 1)[1])

    def _person(self, value: str) -> None:
        name = names.person_name(value)
        if name is not None:
            self.found.add("Person", name)

    def _org(self, value: str) -> None:
        name = names.org_name(value)
        if name is not None:
            self.found.add("Organization", name, name=name)
