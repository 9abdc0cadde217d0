"""Entities and relations of Samsara objects (vehicles, drivers, routes, stops, addresses,
documents), collected without duplicates, plus the odd values worth flagging."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from apex_platform.models import Entity, Relation

MAX_KEY = 512
# How deep the generic scan looks for vehicles, drivers and coordinates.
_SCAN_DEPTH = 12


def object_id(obj: object) -> str | None:
    """A Samsara object's id as text, or None when it has none usable as an entity key."""
    if not isinstance(obj, dict):
        return None
    value = obj.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_KEY:
        return None
    return text


def text_of(obj: object, key: str) -> str | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v not in (None, "", {}, [])}


def _external_ids(obj: dict[str, Any]) -> dict[str, str]:
    ext = obj.get("externalIds")
    if not isinstance(ext, dict):
        return {}
    return {str(k): str(v) for k, v in ext.items() if isinstance(v, str | int) and not isinstance(v, bool)}


def vehicle_properties(obj: dict[str, Any]) -> dict[str, Any]:
    gateway = obj.get("gateway") if isinstance(obj.get("gateway"), dict) else {}
    return _clean(
        {
            "name": text_of(obj, "name"),
            "vin": text_of(obj, "vin"),
            "license_plate": text_of(obj, "licensePlate"),
            "gateway_serial": text_of(gateway, "serial"),
            "gateway_model": text_of(gateway, "model"),
            "external_ids": _external_ids(obj),
        }
    )


def _named(obj: dict[str, Any]) -> dict[str, Any]:
    return _clean({"name": text_of(obj, "name"), "external_ids": _external_ids(obj)})


def address_properties(obj: dict[str, Any]) -> dict[str, Any]:
    return _clean({**_named(obj), "formatted_address": text_of(obj, "formattedAddress")})


def document_properties(obj: dict[str, Any]) -> dict[str, Any]:
    doc_type = obj.get("documentType")
    return _clean(
        {
            "name": text_of(obj, "name"),
            "document_type": text_of(doc_type, "name"),
            "document_type_id": text_of(doc_type, "id"),
            "state": text_of(obj, "state"),
        }
    )


def stop_properties(obj: dict[str, Any]) -> dict[str, Any]:
    return _clean({**_named(obj), "state": text_of(obj, "state")})


_PROPERTIES = {
    "Vehicle": vehicle_properties,
    "Driver": _named,
    "Route": _named,
    "Stop": stop_properties,
    "Address": address_properties,
    "Document": document_properties,
}


class Graph:
    """Entities (merged by `Type:key`) and relations (deduplicated) of one record."""

    def __init__(self) -> None:
        self._entities: dict[str, Entity] = {}
        self._relations: dict[tuple[str, str, str], Relation] = {}

    def add(self, type_: str, obj: object) -> str | None:
        """Add the entity of a Samsara object; its `Type:key` ref, or None when it has no id."""
        key = object_id(obj)
        if key is None or not isinstance(obj, dict):
            return None
        props = _PROPERTIES[type_](obj)
        ref = f"{type_}:{key}"
        known = self._entities.get(ref)
        if known is not None:
            props = {**props, **known.properties}  # the first (most specific) mention wins
        self._entities[ref] = Entity(type=type_, key=key, properties=props)
        return ref

    def relate(self, src: str | None, type_: str, dst: str | None, **props: Any) -> None:
        if src and dst and src != dst:
            self._relations.setdefault((src, type_, dst), Relation(src=src, type=type_, dst=dst, properties=props))

    @property
    def entities(self) -> tuple[Entity, ...]:
        return tuple(self._entities.values())

    @property
    def relations(self) -> tuple[Relation, ...]:
        return tuple(self._relations.values())


def walk(value: object, path: str = "", depth: int = 0) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every object under the keys of interest: (path, key, object); lists are entered."""
    if depth > _SCAN_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(item, dict):
                yield sub, str(key), item
            yield from walk(item, sub, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            sub = f"{path}[{i}]"
            if isinstance(item, dict):
                yield sub, "", item
            yield from walk(item, sub, depth + 1)


def coordinate_oddities(value: object, root: str) -> list[str]:
    """Latitudes / longitudes out of range, flagged (not rejected: the vendor sent them)."""
    found: list[str] = []
    objects = [(root, value)] if isinstance(value, dict) else []
    objects += [(f"{root}.{p}", o) for p, _, o in walk(value)]
    for where, obj in objects:
        for name, limit in (("latitude", 90.0), ("longitude", 180.0)):
            number = obj.get(name)
            if isinstance(number, bool) or not isinstance(number, int | float):
                continue
            if not math.isfinite(number) or abs(number) > limit:
                found.append(f"{name} {number} out of range at {where}")
    return found[:20]
