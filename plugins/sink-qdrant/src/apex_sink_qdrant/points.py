"""How a `Record` becomes a Qdrant point, how a point reads back, and which version of a key wins.

One point per record key. Its id is a UUIDv5 of `"{source}:{id}"` in a fixed Apex
namespace, so every process finds the same point for a key without a lookup.

The vector is a *named* dense vector, `text`. Named vectors may be absent from a point
(Qdrant's `has_vector` filter and its delete-vectors endpoint exist for exactly that),
so a record without an embedding, and every tombstone, is a point with `vector={}`:
it holds its payload and never shows up in a vector search. A zero vector would not
do: cosine similarity is undefined for it.

The payload holds filterable fields (`source`, `kind`, `id`, `version`, `deleted`,
`occurred_at`, `occurred_ts`, `title`, `text_preview`, `entities`, `content_hash`,
`embedding_hash`, `idempotency_key`) and the full record as JSON text in `record`.
Text rather than a nested object because Qdrant stores vectors as float32 and payload
numbers as i64/f64: the text gives `read` back an equal `Record`, embedding floats,
integers beyond 64 bits and all. It is JSON in UTF-8; a record holding a lone surrogate
(no UTF-8 form, and Qdrant's JSON refuses its escape in a string) gets a text with every
non-ASCII character escaped instead (`\\ud800`: the payload string is pure ASCII), read
back with the stdlib `json` (pydantic's parser refuses lone surrogate escapes). NUL
characters are held as they are, in `record` and every other field. The copies kept for
display and filtering (`title`, `text_preview`) have each lone surrogate replaced by
U+FFFD; the identity fields (`source`, `id`, `kind`, `entities`) cannot hold one (the
record model refuses them there). NaN and infinities are refused (`to_point`).

The winner rule (the same in every Apex sink):

- a higher `version` wins;
- at an equal version a tombstone wins and then stays (a live record of that version
  arriving later does not bring it back);
- at an equal version between live records, a different content or embedding is a
  correction and replaces the stored one (the later write wins); the identical record
  changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey

#: Namespace of the point ids, `uuid5(NAMESPACE_URL, "apex:records")`. Fixed forever: changing
#: it would orphan every stored point.
APEX_NAMESPACE = uuid.UUID("36bb64a4-f61f-514f-b6f0-7d5c44acd993")
#: Name of the dense vector that holds `Record.embedding`.
VECTOR_NAME = "text"
#: Characters of `Record.text` kept in the payload for display and filtering.
TEXT_PREVIEW_CHARS = 512
#: Qdrant payload integers are signed 64-bit.
MAX_VERSION = 2**63 - 1
#: Qdrant stores vectors as float32.
MAX_VECTOR_VALUE = 3.4028234663852886e38

#: Payload fields the winner rule needs, fetched before a write.
STATE_FIELDS = ["source", "id", "version", "deleted", "content_hash", "embedding_hash"]
#: Payload fields of the fenced contract (`apex_platform.contracts.Sink`): the writer
#: tokens, and `etag`, new on every change of the point, which a write compares and sets
#: (Qdrant's conditional update, `update_filter`) so read-decide-write cannot be raced.
CHANGED_BY, TOUCHED_BY, ETAG = "changed_by", "touched_by", "etag"


class DimensionMismatch(SinkError):
    """An embedding of another size than the collection's vector: the settings disagree
    with the enricher (APEX_QDRANT_EMBEDDING_DIM), not one bad record. The batch fails
    (retried) rather than quarantining every record until the settings are fixed."""


def point_id(key: RecordKey | tuple[str, str]) -> str:
    """The point id of a record key: deterministic across processes and versions."""
    source, id_ = key
    return str(uuid.uuid5(APEX_NAMESPACE, f"{source}:{id_}"))


def embedding_hash(embedding: Sequence[float] | None) -> str | None:
    """SHA-256 of the exact floats (repr round-trips), or None without an embedding."""
    if embedding is None:
        return None
    return hashlib.sha256(json.dumps(list(embedding)).encode()).hexdigest()


def _embedding_hash(record: Record) -> str | None:
    """`embedding_hash(record.embedding)` from the record's compact embedding JSON (made once
    per record for every sink): a list of floats differs from `json.dumps`' default only by
    the space after each comma."""
    text = record.json_parts()["embedding"] if record.embedding is not None else None
    if text is None:
        return embedding_hash(record.embedding)
    return hashlib.sha256(text.replace(",", ", ").encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class State:
    """What the winner rule looks at, for a stored point or a candidate one."""

    version: int
    deleted: bool
    content_hash: str | None
    embedding_hash: str | None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> State:
        return cls(
            version=int(payload["version"]),
            deleted=bool(payload.get("deleted", False)),
            content_hash=payload.get("content_hash"),
            embedding_hash=payload.get("embedding_hash"),
        )


def supersedes(new: State, old: State) -> bool:
    """Whether `new` replaces `old` (same key): the rule in the module docstring."""
    if new.version != old.version:
        return new.version > old.version
    if old.deleted:
        return False
    return new.deleted or new.content_hash != old.content_hash or new.embedding_hash != old.embedding_hash


@dataclass(frozen=True, slots=True)
class Point:
    """One point as it is sent to Qdrant."""

    key: RecordKey
    id: str
    vector: dict[str, list[float]]
    payload: dict[str, Any]
    state: State


def _timestamps(occurred_at: datetime) -> dict[str, Any]:
    return {"occurred_at": occurred_at.isoformat(), "occurred_ts": occurred_at.timestamp()}


def to_point(record: Record, embedding_dim: int) -> Point:
    """The point for `record` (a tombstone point when `deleted`); `SinkError` naming the
    record when it cannot be stored exactly."""
    where = f"record {shown(str(record.key))} (version {record.version})"
    if record.version > MAX_VERSION:
        raise SinkError(f"{where}: version exceeds Qdrant's 64-bit integer payload ({MAX_VERSION})")
    identity = [("source", record.source), ("id", record.id), ("kind", record.kind)]
    identity += [(f"entities[{i}].key", e.key) for i, e in enumerate(record.entities)]
    for field, value in identity:
        if not _utf8(value):
            raise SinkError(
                f"{where} cannot be stored: {field} holds a lone surrogate, which a Qdrant payload keyword "
                "cannot hold, and a replacement character would change the record's identity"
            )
    content_hash = record.content_hash()
    base = {
        "source": record.source,
        "kind": record.kind,
        "id": record.id,
        "version": record.version,
        **_timestamps(record.occurred_at),
        "content_hash": content_hash,
        "idempotency_key": record.idempotency_key,
    }
    if record.deleted:
        # A tombstone keeps key, kind, version and time; content and vector are cleared.
        payload = {**base, "deleted": True, "embedding_hash": None, "record": None}
        return Point(record.key, point_id(record.key), {}, payload, State(record.version, True, content_hash, None))

    vector: dict[str, list[float]] = {}
    if record.embedding is not None:
        if len(record.embedding) != embedding_dim:
            raise DimensionMismatch(
                f"{where}: embedding has {len(record.embedding)} dimensions, the collection's `{VECTOR_NAME}` "
                f"vector has {embedding_dim} (APEX_QDRANT_EMBEDDING_DIM)"
            )
        if (
            not all(map(math.isfinite, record.embedding))
            or max(map(abs, record.embedding), default=0.0) > MAX_VECTOR_VALUE
        ):
            raise SinkError(f"{where}: embedding values must be finite float32 numbers")
        vector[VECTOR_NAME] = list(record.embedding)
    if record.traits().non_finite:  # else no walk can find one: skip them (they name where)
        try:
            _check_finite(record.attributes, "attributes")
            for index, entity in enumerate(record.entities):
                _check_finite(entity.properties, f"entities[{index}].properties")
            for index, relation in enumerate(record.relations):
                _check_finite(relation.properties, f"relations[{index}].properties")
        except ValueError as exc:
            raise SinkError(f"{where} cannot be stored: {exc}") from None
    text = record_text(record)
    traits = record.traits()
    if traits.plain_json and not (traits.lone_surrogate or traits.non_finite):
        exact = True  # only JSON's own values, all finite: JSON gives the record back equal
    else:
        try:
            exact = from_text(text) == record
        except ValidationError:
            exact = False
    if not exact:
        raise SinkError(
            f"{where} cannot be stored exactly: it holds a value JSON does not give back equal (a date, bytes, a set…)"
        )
    emb_hash = _embedding_hash(record)
    payload = {
        **base,
        "deleted": False,
        "title": clean(record.title),
        "text_preview": clean(record.text[:TEXT_PREVIEW_CHARS]),
        "entities": [entity.ref for entity in record.entities],
        "embedding_hash": emb_hash,
        "record": text,
    }
    return Point(
        record.key, point_id(record.key), vector, payload, State(record.version, False, content_hash, emb_hash)
    )


def winners(records: Sequence[Record], embedding_dim: int) -> list[Point]:
    """One point per key: the one the store would end with if the records were written
    one by one in order. Sorted by key, so requests are deterministic."""
    best: dict[RecordKey, Point] = {}
    for record in records:
        point = to_point(record, embedding_dim)
        current = best.get(point.key)
        if current is None or supersedes(point.state, current.state):
            best[point.key] = point
    return [best[key] for key in sorted(best)]


def storable_winners(records: Sequence[Record], embedding_dim: int) -> tuple[list[Point], dict[RecordKey, str]]:
    """`winners` of the records Qdrant can hold exactly, and the reason for each it cannot."""
    best: dict[RecordKey, Point] = {}
    refused: dict[RecordKey, str] = {}
    for record in records:
        try:
            point = to_point(record, embedding_dim)
        except DimensionMismatch:
            raise
        except SinkError as exc:
            refused[record.key] = str(exc)
            continue
        current = best.get(point.key)
        if current is None or supersedes(point.state, current.state):
            best[point.key] = point
    return [best[key] for key in sorted(best) if key not in refused], refused


def from_payload(payload: Mapping[str, Any]) -> Record:
    """The record a stored point holds: the exact live record, or a minimal tombstone."""
    if payload.get("deleted"):
        return Record(
            source=payload["source"],
            kind=payload["kind"],
            id=payload["id"],
            version=int(payload["version"]),
            occurred_at=datetime.fromisoformat(payload["occurred_at"]),
            deleted=True,
        )
    return from_text(payload["record"])


def record_text(record: Record) -> str:
    """The `record` payload text: JSON of `Record.json_value()`, UTF-8, or pure ASCII with
    escapes when the record holds a lone surrogate. Equal records give equal texts."""
    body = record.json_value()
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if _utf8(text):
        return text
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def from_text(text: str) -> Record:
    """The record a `record` payload text holds (stdlib `json`: it gives lone surrogates back)."""
    return Record.model_validate(json.loads(text))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (NUL characters are kept: Qdrant holds them)."""
    if _utf8(text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def shown(text: str) -> str:
    """`text` for a message: as it is when clean, else with NUL and surrogates escaped."""
    return text if "\x00" not in text and _utf8(text) else text.encode("unicode_escape").decode("ascii")


def _check_finite(value: Any, path: str) -> None:
    """Refuse NaN and infinities, naming where: pydantic's JSON (and so the content hash
    and the idempotency key) writes them as null, and NaN never equals itself, so no
    encoding would give back an equal record."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value}, a non-finite number (NaN or infinity: JSON writes it as null and the "
                "content hash cannot tell it from null)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{path}[{shown(str(key))!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")
