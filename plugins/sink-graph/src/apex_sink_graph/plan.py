"""What one record becomes in the graph: its node's fields, its mentions and the
relations it asserts; which of two versions of a key wins; and the stamp that orders
the records asserting one entity's properties.

The winner rule (the same in `cypher.CLAIM`, where it is enforced):

- a higher `version` wins;
- at an equal version a tombstone wins and then stays;
- at an equal version between live records, different content or embedding is a
  correction and the later write wins; the identical record changes nothing.

The assertion stamp (`assertion_stamp`) is `occurred_at | version | uid`, fixed width up
to the uid (`STAMP_UID_OFFSET`), so comparing two stamps as strings compares the
records by event time, then version, then uid: the newest record that asserts an
entity property owns it (see `cypher.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_core import PydanticSerializationError

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_graph.properties import (
    INT64_MAX,
    MENTIONS,
    check_finite,
    check_identity,
    check_name,
    check_text,
    clean,
    clean_value,
    entity_label,
    flatten,
    parse_ref,
    shown,
)

#: Property names the sink sets itself on entity nodes (`key`) and on MENTIONS edges,
#: which carry the record's assertions next to `implicit`; and on relationships.
ENTITY_RESERVED = frozenset({"key", "implicit"})
RELATION_RESERVED = frozenset({"source_uid"})
#: Entity property names starting with this are the sink's: each property `p` an entity
#: node holds has a hidden companion `_at_p` (the assertion stamp of the record that set
#: it), and each MENTIONS edge has `_at` (the stamp of its record).
HIDDEN_PREFIX = "_at"
COMPANION_PREFIX = "_at_"
EDGE_STAMP = "_at"

#: Width of `iso()` for years 1-9999 ("2024-05-01T12:00:05.000000Z") and of a version.
ISO_WIDTH = 27
VERSION_WIDTH = 20
#: Where the uid starts in an assertion stamp.
STAMP_UID_OFFSET = ISO_WIDTH + 1 + VERSION_WIDTH + 1


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


def assertion_stamp(record: Record) -> str:
    """`occurred_at|version|uid`, e.g. `2024-05-01T10:05:00.000000Z|00000000000000000003|turvo:SH-1`:
    as strings, stamps sort by event time, then version (0..2**63-1, zero-padded to 20
    digits), then uid."""
    return f"{iso(record.occurred_at)}|{record.version:0{VERSION_WIDTH}d}|{uid(record)}"


class Unstorable(SinkError):
    """A record the graph can never hold as it is; `reason` says what is wrong (no record
    text in it: it goes into logs and the dead-letter queue)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


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
    #: `assertion_stamp` of the record: orders its entity properties against other records'.
    at: str
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

    def mention(self, label: str, key: str) -> Mention | None:
        """This record's mention of entity `label:key`, if any."""
        for m in self.mentions:
            if m.label == label and m.key == key:
                return m
        return None


def plan(record: Record) -> RecordPlan:
    """The rows for `record`; `Unstorable` naming the record and the problem when it cannot be stored."""
    where = f"graph sink: record {shown(str(record.key))} (version {record.version})"
    if record.version > INT64_MAX:
        raise Unstorable(where, f"version {record.version} exceeds the graph's 64-bit integers")
    try:
        return _plan(record, where)
    except Unstorable:
        raise
    except SinkError as exc:
        reason = str(exc).removeprefix(f"{where}: ")
        raise Unstorable(where, reason) from None
    except (UnicodeError, PydanticSerializationError):
        # Lone surrogates elsewhere (text, attributes): the record has no UTF-8 JSON form.
        raise Unstorable(where, "text is not valid Unicode (lone surrogate)") from None


def _plan(record: Record, where: str) -> RecordPlan:
    # What names the record or an entity must be held as it is (properties.check_identity);
    # everything else is kept exactly in record_json, and sanitised in the properties.
    for name in ("source", "id", "kind"):
        check_identity(getattr(record, name), where, name)
    if not record.deleted:
        for index, entity in enumerate(record.entities):
            check_identity(entity.key, where, f"entities[{index}].key")
        for index, relation in enumerate(record.relations):
            check_identity(relation.src, where, f"relations[{index}].src")
            check_identity(relation.dst, where, f"relations[{index}].dst")
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
    at = assertion_stamp(record)
    if record.deleted:
        # A tombstone keeps key, kind, version and time; its content is cleared, and its
        # hash is the one of the minimal record it reads back as (so restore is exact).
        node["content_hash"] = minimal(record).content_hash()
        for name, value in node.items():
            check_text(value, where, name)
        return RecordPlan(record.key, uid(record), node, at)

    traits = record.traits()
    # each walk below finds nothing where the record's traits say so (one walk for every sink)
    finite = not traits.non_finite
    sanitise = clean_value if traits.nul or traits.lone_surrogate else _same
    if not finite:
        check_finite(record.attributes, where, "attributes")
        check_finite(list(record.embedding or ()), where, "embedding")
    mentions: dict[tuple[str, str], Mention] = {}
    for entity in record.entities:
        try:
            label = entity_label(entity.type)
        except SinkError as exc:
            raise Unstorable(where, str(exc)) from None
        if not finite:
            check_finite(entity.properties, where, f"entity {label} properties")
        props = flatten(sanitise(entity.properties), ENTITY_RESERVED, HIDDEN_PREFIX)
        seen = mentions.get((label, entity.key))
        if seen is not None:
            props = {**seen.props, **props}
        mentions[(label, entity.key)] = Mention(label, entity.key, props, implicit=False)
    assertions: dict[tuple[str, str, str, str, str, str], Assertion] = {}
    for relation in record.relations:
        try:
            src_label, src_key = parse_ref(relation.src)
            dst_label, dst_key = parse_ref(relation.dst)
            rel_type = check_name(relation.type, "relation type")
        except SinkError as exc:
            raise Unstorable(where, str(exc)) from None
        if rel_type == MENTIONS:
            raise Unstorable(where, f"relation type {MENTIONS!r} is reserved for record-to-entity edges")
        if not finite:
            check_finite(relation.properties, where, f"relation {rel_type} properties")
        props = flatten(sanitise(relation.properties), RELATION_RESERVED)
        for label, key in ((src_label, src_key), (dst_label, dst_key)):
            if (label, key) not in mentions:
                mentions[(label, key)] = Mention(label, key, {}, implicit=True)
        assertion = Assertion(src_label, src_key, rel_type, dst_label, dst_key, props)
        # The same relation stated twice with the same properties is one assertion.
        identity = (src_label, src_key, rel_type, dst_label, dst_key, repr(sorted(props.items())))
        assertions.setdefault(identity, assertion)

    node["title"] = clean(record.title)
    node["record_json"] = record_json(record)
    result = RecordPlan(record.key, uid(record), node, at, tuple(mentions.values()), tuple(assertions.values()))
    if sanitise is _same:
        # no NUL, no lone surrogate anywhere in the record (keys and identities checked above),
        # so none in what was made of it: the checks below would find nothing
        return result
    for name, value in result.node.items():
        check_text(value, where, name)
    for m in result.mentions:
        check_text(m.key, where, f"entity {m.label} key")
        check_text(m.props, where, f"entity {m.label} properties")
    for a in result.assertions:
        check_text(a.src_key, where, f"relation {a.type} source key")
        check_text(a.dst_key, where, f"relation {a.type} target key")
        check_text(a.props, where, f"relation {a.type} properties")
    return result


def record_json(record: Record) -> str:
    """The record's exact copy, `record_json`: pydantic's JSON (NUL characters are `\\u0000`
    escapes there), or, when the record holds a lone surrogate anywhere (no UTF-8 form;
    pydantic's JSON refuses it, or silently replaces it in a dictionary key), the stdlib's
    JSON of `Record.json_value()` with every non-ASCII character escaped (`\\ud800`) and keys
    sorted. Deterministic: the same record gives the same text, which CLAIM compares
    (pydantic's JSON keeps the order of the record's dictionaries, as it always did)."""
    if not record.traits().lone_surrogate:
        return record.model_dump_json()
    body = record.json_value()
    if _utf8(body):
        return record.model_dump_json()
    return json.dumps(body, ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":"))


def _same(value: Any) -> Any:
    return value


def from_record_json(text: str) -> Record:
    """The record a `record_json` holds, parsed by the stdlib `json` (pydantic's JSON parser
    refuses lone surrogate escapes)."""
    return Record.model_validate(json.loads(text))


def _utf8(value: Any) -> bool:
    """Whether every string in a JSON value (keys included) has a UTF-8 form."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_utf8(key) and _utf8(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_utf8(item) for item in value)
    return True


def supersedes(new: Record, old: Record) -> bool:
    """Whether `new` replaces `old` (same key) in a batch: the rule in the module docstring
    (an identical later record "replaces" its twin, which changes nothing)."""
    if new.version != old.version:
        return new.version > old.version
    return not old.deleted


def latest(records: Sequence[Record]) -> list[Record]:
    """One record per key, sorted by key: what the graph would hold after writing `records` one by one."""
    best: dict[RecordKey, Record] = {}
    for record in records:
        current = best.get(record.key)
        if current is None or supersedes(record, current):
            best[record.key] = record
    return [best[key] for key in sorted(best)]


def winners(records: Sequence[Record]) -> tuple[list[RecordPlan], dict[RecordKey, str]]:
    """The plans of the batch reduced per key, and the keys whose winning record the graph
    cannot hold, each with the reason."""
    plans: list[RecordPlan] = []
    refused: dict[RecordKey, str] = {}
    for record in latest(records):
        try:
            plans.append(plan(record))
        except Unstorable as exc:
            refused[record.key] = exc.reason
    return plans, refused


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
