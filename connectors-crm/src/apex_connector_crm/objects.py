"""HubSpot's JSON read defensively: search pages, archived listings, batch reads and
v4 association reads, each into plain typed values. Shapes that are not HubSpot's raise
a `ShapeError` naming the field (the connector turns it into a retryable `VendorError`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_ID = re.compile(r"^[0-9]{1,30}$")
#: longest property value kept; HubSpot's own limit for a text property is 65,536 characters
MAX_VALUE_CHARS = 65_536


class ShapeError(ValueError):
    """A HubSpot answer does not have the documented shape."""


@dataclass(frozen=True)
class HubSpotObject:
    id: str
    properties: dict[str, str | None]
    created_at: datetime | None
    updated_at: datetime | None
    archived: bool = False
    archived_at: datetime | None = None


@dataclass(frozen=True)
class ObjectPage:
    objects: list[HubSpotObject]
    after: str | None
    total: int | None = None


@dataclass(frozen=True)
class Associations:
    """Ids of the associated objects of each `from` id (HubSpot ids as strings)."""

    to: dict[str, list[str]] = field(default_factory=dict)
    #: ids whose association list continues on another page: {from id: after token}
    more: dict[str, str] = field(default_factory=dict)


def parse_time(value: Any) -> datetime | None:
    """HubSpot times: ISO 8601 (`2026-03-10T14:05:12.345Z`) or milliseconds since the epoch."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            ms = int(value)
            return datetime.fromtimestamp(ms / 1000, UTC) if 0 <= ms < 253_402_300_800_000 else None
        except (ValueError, OverflowError, OSError):
            return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _properties(raw: Any, where: str) -> dict[str, str | None]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ShapeError(f"{where}.properties is a {type(raw).__name__}, not an object")
    props: dict[str, str | None] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > 256:
            continue
        if value is None:
            props[name] = None
        elif isinstance(value, bool):
            props[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            props[name] = str(value)[:MAX_VALUE_CHARS]
        # nested values are not HubSpot property values: left out
    return props


def parse_object(raw: Any, where: str) -> HubSpotObject:
    if not isinstance(raw, dict):
        raise ShapeError(f"{where} is a {type(raw).__name__}, not an object")
    oid = raw.get("id")
    if isinstance(oid, int) and not isinstance(oid, bool):
        oid = str(oid)
    if not isinstance(oid, str) or not _ID.match(oid):
        raise ShapeError(f"{where}.id is missing or not a HubSpot object id: {str(oid)[:40]!r}")
    archived = raw.get("archived", False)
    return HubSpotObject(
        id=oid,
        properties=_properties(raw.get("properties"), where),
        created_at=parse_time(raw.get("createdAt")),
        updated_at=parse_time(raw.get("updatedAt")),
        archived=archived is True,
        archived_at=parse_time(raw.get("archivedAt")),
    )


def _after(doc: dict[str, Any], where: str) -> str | None:
    paging = doc.get("paging")
    if paging is None:
        return None
    if not isinstance(paging, dict):
        raise ShapeError(f"{where}: paging is not an object")
    nxt = paging.get("next")
    if nxt is None:
        return None
    if not isinstance(nxt, dict):
        raise ShapeError(f"{where}: paging.next is not an object")
    after = nxt.get("after")
    if isinstance(after, int) and not isinstance(after, bool):
        after = str(after)
    if not isinstance(after, str) or not after or len(after) > 512:
        raise ShapeError(f"{where}: paging.next.after is missing or not a string")
    return after


def parse_page(doc: dict[str, Any], where: str) -> ObjectPage:
    """A search answer (`{total, results, paging}`) or a list answer (`{results, paging}`)."""
    results = doc.get("results")
    if not isinstance(results, list):
        raise ShapeError(f"{where}: results is {'missing' if results is None else 'not a list'}")
    objects = [parse_object(item, f"{where}: results[{i}]") for i, item in enumerate(results)]
    total = doc.get("total")
    return ObjectPage(
        objects=objects,
        after=_after(doc, where),
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def parse_associations(doc: dict[str, Any], where: str) -> Associations:
    """A v4 batch association read: `{results: [{from: {id}, to: [{toObjectId, …}], paging?}]}`.

    HubSpot answers 207 with `errors` for ids that have no association; those are simply absent.
    """
    results = doc.get("results")
    if not isinstance(results, list):
        raise ShapeError(f"{where}: results is {'missing' if results is None else 'not a list'}")
    out = Associations()
    for i, item in enumerate(results):
        if not isinstance(item, dict) or not isinstance(item.get("from"), dict):
            raise ShapeError(f"{where}: results[{i}].from is missing")
        src = item["from"].get("id")
        if isinstance(src, int) and not isinstance(src, bool):
            src = str(src)
        if not isinstance(src, str) or not _ID.match(src):
            raise ShapeError(f"{where}: results[{i}].from.id is not a HubSpot object id")
        targets = item.get("to")
        if not isinstance(targets, list):
            raise ShapeError(f"{where}: results[{i}].to is not a list")
        ids = out.to.setdefault(src, [])
        for target in targets:
            dst = target.get("toObjectId") if isinstance(target, dict) else None
            if isinstance(dst, int) and not isinstance(dst, bool):
                dst = str(dst)
            if isinstance(dst, str) and _ID.match(dst) and dst not in ids:
                ids.append(dst)
        after = _after(item, f"{where}: results[{i}]")
        if after is not None:
            out.more[src] = after
    return out
