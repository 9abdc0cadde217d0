"""The records that travel from sources, through enrichers, into sinks.

Everything here is a frozen pydantic model that serialises to plain JSON, because
records cross Temporal (workflow inputs, activity results).
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_jsonable_python

SourceMode = Literal["webhook", "poll", "stream", "batch", "push"]
Priority = Literal["P0", "P1", "P2"]


class RecordKey(NamedTuple):
    """What identifies a record in every store: its source and its id in that source."""

    source: str
    id: str

    def __str__(self) -> str:
        return f"{self.source}:{self.id}"


class Entity(BaseModel):
    """A thing a record speaks of: a shipment, a truck, a person, an invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    key: str = Field(min_length=1, max_length=512)
    properties: dict[str, Any] = Field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.type}:{self.key}"


class Relation(BaseModel):
    """A typed edge between two entities, each named by `type:key`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    src: str = Field(min_length=3)
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z][A-Z0-9_]*$")
    dst: str = Field(min_length=3)
    properties: dict[str, Any] = Field(default_factory=dict)


class Record(BaseModel):
    """One normalized business event or object version.

    `version` is monotonic within (source, id): an event time in microseconds or a
    vendor sequence number. Sinks never let a lower version overwrite a higher one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    kind: str = Field(min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=512)
    version: int = Field(ge=0)
    occurred_at: datetime
    title: str = ""
    text: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    deleted: bool = False
    embedding: tuple[float, ...] | None = None

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.source, self.id)

    def json_value(self) -> dict[str, Any]:
        """The record as JSON values: `model_dump(mode="json")`, except that dictionary keys
        holding a lone surrogate are kept as they are (pydantic's JSON mode replaces or
        refuses them). What sinks encode, and what `content_hash` hashes."""
        if not self.traits().surrogate_key:
            return self.model_dump(mode="json")
        body = self.model_dump(mode="json", exclude={"attributes", "entities", "relations"})
        body["attributes"] = _json_like(self.attributes)
        body["entities"] = [
            {"type": e.type, "key": e.key, "properties": _json_like(e.properties)} for e in self.entities
        ]
        body["relations"] = [
            {"src": r.src, "type": r.type, "dst": r.dst, "properties": _json_like(r.properties)} for r in self.relations
        ]
        return {name: body[name] for name in type(self).model_fields}

    def traits(self) -> Traits:
        """What the record may hold that a store cannot hold as it is, found in one walk
        and kept with the instance (like `content_hash`): every sink asks, so a record
        that holds none of it skips each sink's own walk. False means "certainly not"."""
        key = id(self)
        known = _TRAITS.get(key)
        if known is not None:
            return known
        value = _traits(self)
        _TRAITS[key] = value
        weakref.finalize(self, _TRAITS.pop, key, None)
        return value

    def json_parts(self) -> Mapping[str, str | None]:
        """Each field of `json_value()` as canonical JSON text — the stdlib's, keys sorted,
        compact, characters as they are (`ensure_ascii=False`) — or None for a field that
        has none (NaN in the embedding). Made once per instance and kept with it (like
        `content_hash`): the content hash, the PostgreSQL and Redis sinks all write them."""
        key = id(self)
        known = _JSON_PARTS.get(key)
        if known is not None:
            return known
        parts: dict[str, str | None] = {}
        for name, value in self.json_value().items():
            try:
                parts[name] = json.dumps(
                    value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
                )
            except ValueError:
                parts[name] = None
        value = MappingProxyType(parts)
        _JSON_PARTS[key] = value
        weakref.finalize(self, _JSON_PARTS.pop, key, None)
        return value

    def json_text(self, *, without: str | None = None) -> str:
        """`json.dumps(json_value(), ensure_ascii=False, allow_nan=False, sort_keys=True,
        separators=(",", ":"))`, from `json_parts` (and so without the field `without`);
        ValueError where that raises (NaN in the embedding)."""
        parts = self.json_parts()
        texts = []
        for name in sorted(parts):
            if name == without:
                continue
            text = parts[name]
            if text is None:
                raise ValueError(f"{name} holds a value JSON cannot spell (NaN or an infinity)")
            texts.append(f'"{name}":{text}')
        return "{" + ",".join(texts) + "}"

    def content_hash(self) -> str:
        """SHA-256 of the record's content (everything but the embedding).

        Computed once per instance: the saga's ledger and every sink ask for it (about ten
        times per record and batch), and a record is frozen — `model_copy(update=...)`, the
        only way to change one, makes a new instance. Kept beside the instance, not in it,
        so that equality and serialisation are those of the fields alone."""
        key = id(self)
        known = _CONTENT_HASHES.get(key)
        if known is not None:
            return known
        value = self._content_hash()
        _CONTENT_HASHES[key] = value
        # dropped when the record is: its id may then name another object
        weakref.finalize(self, _CONTENT_HASHES.pop, key, None)
        return value

    def _content_hash(self) -> str:
        try:
            blob = self.json_text(without="embedding")
        except ValueError:  # NaN elsewhere than the embedding: written as the stdlib writes it
            body = self.json_value()
            del body["embedding"]
            blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # surrogatepass: a lone surrogate (valid JSON, no valid UTF-8) still hashes, so the
        # record reaches the sinks, which store it encoded or refuse it by name
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def idempotency_key(self) -> str:
        """Hash of (source, id, version, content): equal keys mean the same write."""
        h = hashlib.sha256()
        for part in (self.source, self.id, str(self.version), self.content_hash()):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return h.hexdigest()


#: `Record.content_hash` of each live record, by `id()`
_CONTENT_HASHES: dict[int, str] = {}


class Traits(NamedTuple):
    """What `Record.traits` found. Each flag False means the record certainly holds no such
    value; True that it may (values of other types than JSON's are counted as holding
    NUL characters and lone surrogates: pydantic's JSON may turn them into such strings)."""

    #: a NUL character in a string, dictionary keys included, anywhere in the record
    nul: bool
    #: a string with no UTF-8 form (a lone surrogate), dictionary keys included, anywhere
    lone_surrogate: bool
    #: exactly: a dictionary key with a lone surrogate where `json_value` keeps it as it is
    surrogate_key: bool
    #: a NaN or an infinity in the attributes, the properties or the embedding
    non_finite: bool
    #: exactly: every value in the attributes and properties is a dict with str keys, a list,
    #: a str, an int, a float, a bool or None (those very types), so JSON gives it back equal
    plain_json: bool


#: `Record.json_parts` of each live record, by `id()`
_JSON_PARTS: dict[int, Mapping[str, str | None]] = {}

#: `Record.traits` of each live record, by `id()`
_TRAITS: dict[int, Traits] = {}

_PLAIN = (int, bool, type(None))
_JSON_TYPES = frozenset({str, int, float, bool, type(None), dict, list})


def _traits(record: Record) -> Traits:
    found = [False, False, False, False]  # nul, lone surrogate, non-finite, not plain JSON
    texts = [record.source, record.kind, record.id, record.title, record.text]
    for entity in record.entities:
        texts += (entity.type, entity.key)
    for relation in record.relations:
        texts += (relation.src, relation.type, relation.dst)
    for text in texts:
        _scan_text(text, found)
    dicts = (record.attributes, *(e.properties for e in record.entities), *(r.properties for r in record.relations))
    for value in dicts:
        _scan(value, found)
    if record.embedding is not None and not all(map(math.isfinite, record.embedding)):
        found[2] = True
    # the exact rule of json_value, walked only when a lone surrogate may be there at all
    surrogate_key = found[1] and _surrogate_keys(*dicts)
    return Traits(
        nul=found[0],
        lone_surrogate=found[1],
        surrogate_key=surrogate_key,
        non_finite=found[2],
        plain_json=not found[3],
    )


def _scan_text(text: str, found: list[bool]) -> None:
    if "\x00" in text:
        found[0] = True
    if not text.isascii() and not is_utf8(text):
        found[1] = True


def _scan(value: Any, found: list[bool]) -> None:
    if type(value) not in _JSON_TYPES:
        found[3] = True
    if isinstance(value, str):
        _scan_text(value, found)
    elif isinstance(value, float):
        if not math.isfinite(value):
            found[2] = True
    elif isinstance(value, _PLAIN):
        pass
    elif isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                found[3] = True
            _scan(key, found)
            _scan(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _scan(item, found)
    else:
        # a date, bytes, a set, a mapping of another type...: what pydantic's JSON or a
        # sink makes of it is not looked at here, so it may hold anything
        found[0] = found[1] = found[2] = True


def _surrogate_keys(*values: Any) -> bool:
    """Whether a dictionary anywhere in `values` has a key that is not valid UTF-8."""
    for value in values:
        if isinstance(value, dict):
            for key, item in value.items():
                if (isinstance(key, str) and not is_utf8(key)) or _surrogate_keys(item):
                    return True
        elif isinstance(value, list | tuple) and _surrogate_keys(*value):
            return True
    return False


def is_utf8(text: str) -> bool:
    """Whether `text` can be stored as UTF-8 (False for a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_like(value: Any) -> Any:
    """`value` as JSON values the way pydantic's JSON mode makes them, string keys kept as they are."""
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else next(iter(to_jsonable_python({key: None}))): _json_like(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_like(item) for item in value]
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # pydantic's JSON mode: null
    return to_jsonable_python(value)


class InboundEvent(BaseModel):
    """An event accepted at the edge (webhook, push API), before the connector parses it.

    Either `payload` holds the decoded body, or `payload_ref` names a blob that holds it
    (bodies too large for Temporal's payload limit are stored once and passed by reference).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    event_id: str = Field(min_length=1, max_length=256)
    received_at: datetime
    payload: Any = None
    payload_ref: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class Page(BaseModel):
    """One page read by a poll or stream source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: tuple[Record, ...] = ()
    next_cursor: str | None = None
    has_more: bool = False
    #: seconds the vendor asked us to wait before the next call (429 Retry-After etc.)
    retry_after: float | None = None


class WriteResult(BaseModel):
    """What the saga did with one batch."""

    model_config = ConfigDict(frozen=True)

    written: int = 0
    skipped: int = 0
    sinks: tuple[str, ...] = ()
    #: records a sink refused for good: kept in the dead-letter queue, the rest committed
    quarantined: int = 0
