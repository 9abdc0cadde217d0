"""N1 loops (N1 name, N2 more name, N3 address, N4 place, G61/PER contacts), and the
entity graph the records carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apex_connector_edi.codes import PARTY_ROLES
from apex_connector_edi.payload import Seg
from apex_platform.models import Entity, Relation

PARTY_SEGMENTS = frozenset({"N2", "N3", "N4", "G61", "PER"})
#: Entity keys allow 512 characters; longer values are cut (they are never sane names)
_MAX_KEY = 200


def _clean(value: str) -> str:
    return " ".join(value.split())


def place_key(city: str, state: str, country: str = "") -> str | None:
    """`DECORAH, IA`: the key the entity enricher gives a city and state too."""
    city = _clean(city)
    if not city:
        return None
    region = _clean(state) or _clean(country)
    return (f"{city}, {region}" if region else city)[:_MAX_KEY]


@dataclass
class Party:
    role: str
    name: str = ""
    id_qualifier: str = ""
    id: str = ""
    address: list[str] = field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    contacts: list[dict[str, str]] = field(default_factory=list)

    @property
    def org_key(self) -> str | None:
        """The organisation's name; without one, its code as `qualifier:id` (N1-03:N1-04)."""
        if self.name:
            return self.name[:_MAX_KEY]
        if self.id:
            return f"{self.id_qualifier}:{self.id}"[:_MAX_KEY] if self.id_qualifier else self.id[:_MAX_KEY]
        return None

    @property
    def place_key(self) -> str | None:
        return place_key(self.city, self.state, self.country)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        if self.role in PARTY_ROLES:
            out["role_name"] = PARTY_ROLES[self.role]
        for name in ("name", "id_qualifier", "id", "city", "state", "postal_code", "country"):
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.address:
            out["address"] = list(self.address)
        if self.contacts:
            out["contacts"] = [dict(c) for c in self.contacts]
        return out

    def describe(self) -> str:
        where = ", ".join(p for p in (self.city, self.state, self.country) if p)
        who = self.name or (f"{self.id_qualifier} {self.id}".strip())
        return f"{who} ({where})" if where and who else who or where


def read_party(segments: list[Seg], at: int) -> tuple[Party, int]:
    """The N1 loop starting at `segments[at]`; returns it and the index after it."""
    n1 = segments[at]
    party = Party(role=n1.el(1), name=_clean(n1.el(2)), id_qualifier=n1.el(3), id=n1.el(4))
    i = at + 1
    while i < len(segments) and segments[i].id in PARTY_SEGMENTS:
        seg = segments[i]
        if seg.id == "N2":
            party.name = _clean(" ".join(p for p in (party.name, seg.el(1), seg.el(2)) if p))
        elif seg.id == "N3":
            party.address += [line for line in (_clean(seg.el(1)), _clean(seg.el(2))) if line]
        elif seg.id == "N4":
            party.city, party.state = _clean(seg.el(1)), seg.el(2)
            party.postal_code, party.country = seg.el(3), seg.el(4)
        elif seg.id == "G61" or seg.id == "PER":
            contact = {"function": seg.el(1), "name": _clean(seg.el(2)), "qualifier": seg.el(3), "number": seg.el(4)}
            party.contacts.append({k: v for k, v in contact.items() if v})
        i += 1
    return party, i


class Graph:
    """Entities (merged by type and key) and relations (deduplicated) of one record."""

    def __init__(self) -> None:
        self._entities: dict[tuple[str, str], dict[str, Any]] = {}
        self._relations: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, type_: str, key: str | None, **properties: Any) -> str | None:
        if not key:
            return None
        key = key[:_MAX_KEY]
        props = self._entities.setdefault((type_, key), {})
        for name, value in properties.items():
            if value not in (None, ""):
                props.setdefault(name, value)
        return f"{type_}:{key}"

    def relate(self, src: str | None, type_: str, dst: str | None, **properties: Any) -> None:
        if src and dst and src != dst:
            props = self._relations.setdefault((src, type_, dst), {})
            props.update({k: v for k, v in properties.items() if v not in (None, "")})

    def party(self, party: Party) -> str | None:
        """The party as an Organization, LOCATED_IN its place."""
        org = self.add("Organization", party.org_key, name=party.name, id_qualifier=party.id_qualifier, id=party.id)
        place = self.add(
            "Place", party.place_key, city=party.city, state=party.state, country=party.country, zip=party.postal_code
        )
        self.relate(org, "LOCATED_IN", place)
        return org

    def entities(self) -> tuple[Entity, ...]:
        return tuple(Entity(type=t, key=k, properties=p) for (t, k), p in self._entities.items())

    def relations(self) -> tuple[Relation, ...]:
        return tuple(Relation(src=s, type=t, dst=d, properties=p) for (s, t, d), p in self._relations.items())
