"""HubSpot objects as Apex records (pure: no I/O, no clock).

Record ids are `contact:<id>`, `company:<id>`, `deal:<id>`: HubSpot ids are unique per
object type only, so a bare id could name a contact and a company at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from apex_connector_crm.objects import HubSpotObject, ShapeError, parse_time, to_ms
from apex_platform.models import Entity, Record, Relation

SOURCE = "crm"
KIND_CONTACT = "crm.contact"
KIND_COMPANY = "crm.company"
KIND_DEAL = "crm.deal"

_EMAIL = re.compile(r"^[^@\s]{1,128}@[^@\s]{1,255}$")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z0-9-]{1,63}$")
_MAX_TEXT_LINES = 40
_MAX_TITLE = 300


@dataclass(frozen=True)
class ObjectType:
    """What the connector knows of one HubSpot object type."""

    name: str  # "contacts": the path segment of HubSpot's API
    singular: str  # "contact": record ids and kinds
    entity: str  # "Person": the entity type of the object itself
    #: the property holding the last modification time; contacts name it differently
    modified_property: str
    default_properties: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return f"{SOURCE}.{self.singular}"

    def record_id(self, hubspot_id: str) -> str:
        return f"{self.singular}:{hubspot_id}"


CONTACTS = ObjectType(
    "contacts",
    "contact",
    "Person",
    # HubSpot documents `lastmodifieddate` as the contacts' modification property (search
    # defaults); `hs_lastmodifieddate` is the one of companies, deals and other objects.
    "lastmodifieddate",
    ("email", "firstname", "lastname", "phone", "jobtitle", "company", "lifecyclestage", "createdate"),
)
COMPANIES = ObjectType(
    "companies",
    "company",
    "Organization",
    "hs_lastmodifieddate",
    ("name", "domain", "industry", "phone", "city", "state", "country", "createdate"),
)
DEALS = ObjectType(
    "deals",
    "deal",
    "Deal",
    "hs_lastmodifieddate",
    ("dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate", "createdate"),
)
KNOWN = {t.name: t for t in (CONTACTS, COMPANIES, DEALS)}


def object_type(name: str) -> ObjectType:
    """The known type, or a generic one for other object types (tickets, custom objects)."""
    known = KNOWN.get(name)
    if known is not None:
        return known
    singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
    entity = "".join(part.capitalize() for part in singular.split("_")) or "Object"
    if not entity[0].isalpha():
        entity = f"HubSpot{entity}"
    return ObjectType(name, singular, entity, "hs_lastmodifieddate", ("name", "subject", "createdate"))


def normalize_email(value: str | None) -> str | None:
    if not value:
        return None
    email = value.strip().lower()
    return email if _EMAIL.match(email) and len(email) <= 320 else None


def normalize_domain(value: str | None) -> str | None:
    if not value:
        return None
    domain = value.strip().lower()
    for prefix in ("https://", "http://"):
        if domain.startswith(prefix):
            domain = domain[len(prefix) :]
    domain = domain.split("/", 1)[0].split("?", 1)[0].rstrip(".")
    if domain.startswith("www."):
        domain = domain[4:]
    return domain if _DOMAIN.match(domain) and len(domain) <= 253 else None


def person_ref(hubspot_id: str, email: str | None) -> str:
    """`Person:<email>` (lower-cased) when the contact has one, else `Person:hubspot:<id>`."""
    return f"Person:{normalize_email(email) or f'hubspot:{hubspot_id}'}"


def organization_ref(hubspot_id: str, domain: str | None) -> str:
    """`Organization:<domain>` when the company has one, else `Organization:hubspot:<id>`."""
    return f"Organization:{normalize_domain(domain) or f'hubspot:{hubspot_id}'}"


def deal_ref(hubspot_id: str) -> str:
    return f"Deal:hubspot:{hubspot_id}"


@dataclass(frozen=True)
class Related:
    """The objects associated with one object, with what keys their entities:
    `{company id: domain or None}` and `{contact id: email or None}`."""

    companies: dict[str, str | None] = field(default_factory=dict)
    contacts: dict[str, str | None] = field(default_factory=dict)


def modified_at(kind: ObjectType, obj: HubSpotObject) -> datetime:
    """The object's last modification: its modification property, else `updatedAt`."""
    when = parse_time(obj.properties.get(kind.modified_property)) or obj.updated_at
    if when is None:
        raise ShapeError(f"{kind.name} {obj.id} has neither {kind.modified_property} nor updatedAt")
    return when


def modified_ms(kind: ObjectType, obj: HubSpotObject) -> int:
    return to_ms(modified_at(kind, obj))


def _clean(props: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in props.items() if v is not None and v.strip() != ""}


def _text(props: dict[str, str], extra: list[str]) -> str:
    lines = [f"{name}: {value[:500]}" for name, value in sorted(props.items())][:_MAX_TEXT_LINES]
    return "\n".join(lines + extra)


def _self_entity(kind: ObjectType, obj: HubSpotObject, props: dict[str, str]) -> Entity:
    if kind is CONTACTS:
        ref = person_ref(obj.id, props.get("email"))
        name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p)
        extra = {"name": name or None, "email": normalize_email(props.get("email")), "phone": props.get("phone")}
        extra["title"] = props.get("jobtitle")
    elif kind is COMPANIES:
        ref = organization_ref(obj.id, props.get("domain"))
        extra = {"name": props.get("name"), "domain": normalize_domain(props.get("domain"))}
    elif kind is DEALS:
        ref = deal_ref(obj.id)
        extra = {
            "name": props.get("dealname"),
            "stage": props.get("dealstage"),
            "pipeline": props.get("pipeline"),
            "amount": props.get("amount"),
            "currency": props.get("deal_currency_code"),
        }
    else:
        ref = f"{kind.entity}:hubspot:{obj.id}"
        extra = {}
    etype, key = ref.split(":", 1)
    properties = {"hubspot_id": obj.id, "hubspot_type": kind.name}
    properties.update({k: v for k, v in extra.items() if v})
    return Entity(type=etype, key=key, properties=properties)


def _title(kind: ObjectType, obj: HubSpotObject, props: dict[str, str]) -> str:
    if kind is CONTACTS:
        name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p)
        email = props.get("email")
        title = f"{name} <{email}>" if name and email else (name or email or "")
    elif kind is COMPANIES:
        title = props.get("name") or props.get("domain") or ""
    elif kind is DEALS:
        title = props.get("dealname") or ""
    else:
        title = props.get("subject") or props.get("name") or ""
    return (title or f"HubSpot {kind.singular} {obj.id}")[:_MAX_TITLE]


def build_record(kind: ObjectType, obj: HubSpotObject, related: Related | None = None) -> Record:
    """The record of one live object. Its relations are the associations it owns:
    a contact WORKS_AT its companies; a deal is WITH_COMPANY and WITH_CONTACT."""
    when = modified_at(kind, obj)
    props = _clean(obj.properties)
    me = _self_entity(kind, obj, props)
    entities = [me]
    relations: list[Relation] = []
    related = related or Related()
    extra_text: list[str] = []
    pairs: list[tuple[str, str]] = []
    if kind is CONTACTS:
        pairs = [("WORKS_AT", organization_ref(cid, dom)) for cid, dom in sorted(related.companies.items())]
    elif kind is DEALS:
        pairs = [("WITH_COMPANY", organization_ref(cid, dom)) for cid, dom in sorted(related.companies.items())]
        pairs += [("WITH_CONTACT", person_ref(pid, mail)) for pid, mail in sorted(related.contacts.items())]
    seen: set[str] = {me.ref}
    for rtype, ref in pairs:
        etype, key = ref.split(":", 1)
        if ref not in seen:
            seen.add(ref)
            entities.append(Entity(type=etype, key=key))
        relations.append(Relation(src=me.ref, type=rtype, dst=ref))
        extra_text.append(f"{rtype.lower().replace('_', ' ')}: {key}")
    attributes: dict[str, object] = {
        "object_type": kind.name,
        "hubspot_id": obj.id,
        "properties": props,
        "created_at": obj.created_at.isoformat() if obj.created_at else None,
        "updated_at": obj.updated_at.isoformat() if obj.updated_at else None,
    }
    if related.companies:
        attributes["company_ids"] = sorted(related.companies)
    if related.contacts:
        attributes["contact_ids"] = sorted(related.contacts)
    if kind is CONTACTS and normalize_email(props.get("email")):
        attributes["email"] = normalize_email(props.get("email"))
    if kind is DEALS and props.get("amount"):
        # amount next to currency: the entities enricher makes an Amount of the pair
        attributes["amount"] = props["amount"]
        if props.get("deal_currency_code"):
            attributes["currency"] = props["deal_currency_code"]
    return Record(
        source=SOURCE,
        kind=kind.kind,
        id=kind.record_id(obj.id),
        version=to_ms(when) * 1000,
        occurred_at=when,
        title=_title(kind, obj, props),
        text=_text(props, extra_text),
        attributes=attributes,
        entities=tuple(entities),
        relations=tuple(relations),
    )


MERGED_PROPERTY = "hs_merged_object_ids"
_MERGED_ID = re.compile(r"^[0-9]{1,30}$")


def merged_ids(obj: HubSpotObject) -> list[str]:
    """The ids merged into `obj` (`hs_merged_object_ids`, semicolon-separated), never its own."""
    raw = obj.properties.get(MERGED_PROPERTY) or ""
    ids = [part.strip() for part in re.split(r"[;,\s]+", raw) if part.strip()]
    return [i for i in dict.fromkeys(ids) if _MERGED_ID.match(i) and i != obj.id]


def build_merged_tombstones(kind: ObjectType, obj: HubSpotObject) -> list[Record]:
    """Tombstones of the records merged into `obj`: a merged-away id never appears in HubSpot
    again (not in search, not in the archived listing), only in the survivor's
    `hs_merged_object_ids`. Their version is the survivor's modification time, which the merge
    set, so they supersede every live version of the merged-away records."""
    ids = merged_ids(obj)
    if not ids:
        return []
    when = modified_at(kind, obj)
    return [
        Record(
            source=SOURCE,
            kind=kind.kind,
            id=kind.record_id(mid),
            version=to_ms(when) * 1000,
            occurred_at=when,
            title=f"merged HubSpot {kind.singular} {mid}",
            attributes={"object_type": kind.name, "hubspot_id": mid, "merged_into": obj.id},
            deleted=True,
        )
        for mid in ids
    ]


def build_tombstone(kind: ObjectType, obj: HubSpotObject) -> Record:
    """The tombstone of an archived object. Its version is the later of the archive time
    and the last modification, so it supersedes every live version written before."""
    times = [t for t in (obj.archived_at, obj.updated_at, parse_time(obj.properties.get(kind.modified_property))) if t]
    if not times:
        raise ShapeError(f"archived {kind.name} {obj.id} has neither archivedAt nor updatedAt")
    when = max(times)
    return Record(
        source=SOURCE,
        kind=kind.kind,
        id=kind.record_id(obj.id),
        version=to_ms(when) * 1000,
        occurred_at=when,
        title=f"archived HubSpot {kind.singular} {obj.id}",
        attributes={
            "object_type": kind.name,
            "hubspot_id": obj.id,
            "archived_at": obj.archived_at.isoformat() if obj.archived_at else None,
        },
        deleted=True,
    )
