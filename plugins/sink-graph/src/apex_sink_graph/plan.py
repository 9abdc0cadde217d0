"""What one record becomes in the graph: its node's fields, its mentions and the
relations it asserts; and which of two versions of a key wins.

The winner rule (the same in `cypher.CLAIM`, where it is enforced):

- a higher `version` wins;
- at an equal version a tombstone wins and then stays;
- at an equal version between live records, different content or embedding is a
  correction and the later write wins; the identical record changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_graph.properties import (
    INT64_MAX,
    MENTIONS,
    check_finite,
    check_name,
    check_text,
    entity_label,
    flatten,
    parse_ref,
)

#: Property names the sink sets itself on entity nodes and relationships.
ENTITY_RESERVED = frozenset({"key"})
RELATION_RESERVED = frozenset({"source_uid"})


def uid(key: RecordKey | Record) -> str:
    """`source:id`, the record node's identity (a source name has no colon)."""
    if isinstance(key, Record):
        key = key.key
    return f"{key[0]}:{key[1]}"


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and `Z`: one width, so strings sort as times."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Mention:
    label: str
    key: str
    props: dict[str, Any]
    #: True when the record names the entity only as a relation end, not in `entities`.
    implicit: bool


@dataclass(frozen=True)
class Assertion:
    src_label: str
    src_key: str
    type: str
    dst_label: str
    dst_key: str
    props: dict[str, Any]


@dataclass(frozen=True)
class RecordPlan:
    """One record as graph rows. A tombstone has no mentions and no assertions."""

    key: RecordKey
    uid: str
    node: dict[str, Any]
    mentions: tuple[Mention, ...] = ()
    assertions: tuple[Assertion, ...] = field(default=())

    @property
    def version(self) -> int:
        return int(self.node["version"])

    @property
    def deleted(self) -> bool:
        return bool(self.node["deleted"])

    def claim_row(self) -> dict[str, Any]:
        return {"uid": self.uid, **self.node}

    def labels(self) -> set[str]:
        found = {m.label for m in self.mentions}
        for a in self.assertions:
            found.update((a.src_label, a.dst_label))
        return found


def plan(record: Record) -> RecordPlan:
    """The rows for `record`; `SinkError` naming the record when it cannot be stored."""
    where = f"graph sink: record {record.key} (version {record.version})"
    if record.version > INT64_MAX:
        raise SinkError(f"{where}: version exceeds the graph's 64-bit integers")
    node: dict[str, Any] = {
        "source": record.source,
        "id": record.id,
        "kind": record.kind,
        "version": record.version,
        "deleted": record.deleted,
        "title": "",
        "occurred_at": iso(record.occurred_at),
        "content_hash": record.content_hash(),
        "record_json": None,
    }
    if record.deleted:
        # A tombstone keeps key, kind, version and time; its content is cleared, and its
        # hash is the one of the minimal record it reads back as (so restore is exact).
        node["content_hash"] = minimal(record).content_hash()
        check_text(node, where)
        return RecordPlan(record.key, uid(record), node)

    check_finite(record.attributes, where)
    check_finite(list(record.embedding or ()), where)
    mentions: dict[tuple[str, str], Mention] = {}
    try:
        for entity in record.entities:
            label = entity_label(entity.type)
            check_finite(entity.properties, where)
            props = flatten(entity.properties, ENTITY_RESERVED)
            seen = mentions.get((label, entity.key))
            if seen is not None:
                props = {**seen.props, **props}
            mentions[(label, entity.key)] = Mention(label, entity.key, props, implicit=False)
        assertions: dict[tuple[str, str, str, str, str, str], Assertion] = {}
        for relation in record.relations:
            src_label, src_key = parse_ref(relation.src)
            dst_label, dst_key = parse_ref(relation.dst)
            rel_type = check_name(relation.type, "relation type")
            if rel_type == MENTIONS:
                raise SinkError(f"relation type {MENTIONS!r} is reserved for record-to-entity edges")
            check_finite(relation.properties, where)
            props = flatten(relation.properties, RELATION_RESERVED)
            for label, key in ((src_label, src_key), (dst_label, dst_key)):
                if (label, key) not in mentions:
                    mentions[(label, key)] = Mention(label, key, {}, implicit=True)
            assertion = Assertion(src_label, src_key, rel_type, dst_label, dst_key, props)
            # The same relation stated twice with the same properties is one assertion.
            identity = (src_label, src_key, rel_type, dst_label, dst_key, repr(sorted(props.items())))
            assertions.setdefault(identity, assertion)
    except SinkError as exc:
        raise SinkError(f"{where}: {exc}") from None

    node["title"] = record.title
    node["record_json"] = record.model_dump_json()
    result = RecordPlan(record.key, uid(record), node, tuple(mentions.values()), tuple(assertions.values()))
    check_text(result.node, where)
    for m in result.mentions:
        check_text([m.key, m.props], where)
    for a in result.assertions:
        check_text([a.src_key, a.dst_key, a.props], where)
    return result


def supersedes(new: RecordPlan, old: RecordPlan) -> bool:
    """Whether `new` replaces `old` (same key): the rule in the module docstring."""
    if new.version != old.version:
        return new.version > old.version
    if old.deleted:
        return False
    return (
        new.deleted
        or new.node["content_hash"] != old.node["content_hash"]
        or new.node["record_json"] != old.node["record_json"]
    )


def winners(records: Sequence[Record]) -> list[RecordPlan]:
    """One plan per key: the one the graph would hold after writing `records` one by one."""
    best: dict[RecordKey, RecordPlan] = {}
    for record in records:
        candidate = plan(record)
        current = best.get(candidate.key)
        if current is None or supersedes(candidate, current):
            best[candidate.key] = candidate
    return [best[key] for key in sorted(best)]


def minimal(record: Record) -> Record:
    """`record` as a tombstone: key, kind, version, time and deleted=True, nothing else."""
    return Record(
        source=record.source,
        id=record.id,
        kind=record.kind,
        version=record.version,
        occurred_at=record.occurred_at,
        deleted=True,
    )


def tombstone(row: dict[str, Any]) -> Record:
    """The minimal record a tombstone node reads back as."""
    return Record(
        source=row["source"],
        id=row["id"],
        kind=row["kind"],
        version=row["version"],
        occurred_at=from_iso(row["occurred_at"]),
        deleted=True,
    )
