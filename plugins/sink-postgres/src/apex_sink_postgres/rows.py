"""How a `Record` becomes a row of `records`, and which of two versions of a key wins.

The winner rule is written once here, in Python, and once in SQL (`sink.UPSERT`);
both must say the same thing:

- a higher `version` wins;
- at an equal version a tombstone wins and then stays (a live record of that version
  arriving later does not bring it back);
- at an equal version between live records, a different content or embedding is a
  correction and replaces the stored one (the later write wins); the identical record
  is a no-op.

What a row holds of a record with NUL characters or lone surrogates (which PostgreSQL
text and jsonb cannot hold) is described in `encoding.py`: `record` keeps it exactly
(plain jsonb, or the `json+base64` envelope), the search and display columns hold a
sanitised copy, and such characters in the record's identity (source, id, kind, entity
keys, relation ends) are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey
from apex_sink_postgres.encoding import clean, clean_value, decode_payload, encode_payload, problem, shown

#: PostgreSQL bigint bound: `records.version` is a bigint.
MAX_VERSION = 2**63 - 1
#: float32 bound: pgvector stores single precision.
MAX_VECTOR_VALUE = 3.4028234663852886e38


@dataclass(frozen=True, slots=True)
class Row:
    """One `records` row as it is sent to PostgreSQL (JSON columns already encoded)."""

    source: str
    id: str
    kind: str
    version: int
    occurred_at: datetime
    title: str
    text: str
    attributes: str
    entities: str
    relations: str
    deleted: bool
    embedding: str | None
    content_hash: str
    idempotency_key: str
    record: str | None

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.source, self.id)


def dumps(value: Any) -> str:
    """JSON text that PostgreSQL `jsonb` gives back unchanged in meaning (keys sorted).

    `jsonb` keeps numbers as `numeric`, so `1e+16` would come back as the integer
    `10000000000000000`. Large floats are therefore written out with a `.0`, which
    `numeric` keeps, so a record read back is equal to the one written.
    """
    return _finish(json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")), value)


def _finish(text: str, value: Any) -> str:
    """`dumps` of `value`, whose stdlib JSON text (as `dumps` makes it) is `text`."""
    if "e+" in text:
        text = _TOKEN.sub(_plain_float, text)
    if "\\u0000" in text and _has_nul(value):
        raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
    _storable(text)
    return text


#: A JSON string (left alone) or a float with a positive exponent (rewritten).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _plain_float(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return match.group(0)
    # Every float written with e+ is >= 1e16 > 2**53, hence an integer: int() is exact.
    return f"{int(float(match.group(1)))}.0"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


def _storable(text: str) -> str:
    # PostgreSQL text and jsonb refuse NUL characters, and UTF-8 refuses lone surrogates.
    if "\x00" in text:
        raise ValueError("text contains a NUL character, which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return text


def _check_finite(value: Any, path: str) -> None:
    """Refuse NaN and infinities, naming where: pydantic's JSON (and so the content hash
    and the idempotency key) writes them as null, and NaN never equals itself, so no
    encoding would give back an equal record."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{path} is {value}, a non-finite number (JSON writes it as null and the content hash cannot "
                "tell it from null)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}[{shown(str(key))!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")


def _identity(record: Record) -> str | None:
    """Why the record's identity cannot be stored, if it cannot: NUL or lone surrogates in
    what names it or what it links (a replacement character would name another record or
    entity)."""
    named = [("source", record.source), ("id", record.id), ("kind", record.kind)]
    for index, entity in enumerate(record.entities):
        named.append((f"entities[{index}].key", entity.key))
    for index, relation in enumerate(record.relations):
        named += [(f"relations[{index}].src", relation.src), (f"relations[{index}].dst", relation.dst)]
    for field, value in named:
        found = problem(value)
        if found:
            return (
                f"{field} holds {found}, which PostgreSQL text and jsonb cannot hold, and a replacement "
                "character would change the record's identity"
            )
    return None


def record_json(record: Record) -> str:
    """The `records.record` value: the record as plain jsonb, or, when it holds NUL
    characters or lone surrogates, its `json+base64` envelope (see `encoding.py`).
    Deterministic: an identical record gives the identical value."""
    return _record_json(record, record.json_value())


def _record_json(record: Record, body: dict[str, Any]) -> str:
    try:
        return _finish(record.json_text(), body)  # the text `dumps(body)` makes, made once per record
    except ValueError:
        return dumps(encode_payload(body))


def to_row(record: Record, embedding_dim: int) -> Row:
    """The row for `record`; raises `SinkError` naming the record when it cannot be stored."""
    where = f"record {shown(str(record.key))} (version {record.version})"
    if record.version > MAX_VERSION:
        raise SinkError(f"{where}: version exceeds PostgreSQL bigint ({MAX_VERSION})")
    refusal = _identity(record) if not record.deleted else _identity(tombstone_of(record))
    if refusal:
        raise SinkError(f"{where} cannot be stored: {refusal}")
    try:
        if record.deleted:
            # A tombstone keeps the key, kind, version and time; its content is cleared.
            return Row(
                source=record.source,
                id=record.id,
                kind=record.kind,
                version=record.version,
                occurred_at=record.occurred_at,
                title="",
                text="",
                attributes="{}",
                entities="[]",
                relations="[]",
                deleted=True,
                embedding=None,
                content_hash=record.content_hash(),
                idempotency_key=record.idempotency_key,
                record=None,
            )
        traits = record.traits()
        if traits.non_finite:  # else no walk can find one: skip them (they name where)
            _check_finite(record.attributes, "attributes")
            for index, entity in enumerate(record.entities):
                _check_finite(entity.properties, f"entities[{index}].properties")
            for index, relation in enumerate(record.relations):
                _check_finite(relation.properties, f"relations[{index}].properties")
        body = record.json_value()
        embedding: str | None = None
        if record.embedding is not None:
            if len(record.embedding) != embedding_dim:
                raise SinkError(
                    f"{where}: embedding has {len(record.embedding)} dimensions, the records table "
                    f"holds {embedding_dim} (APEX_POSTGRES_EMBEDDING_DIM)"
                )
            if (
                not all(map(math.isfinite, record.embedding))
                or max(map(abs, record.embedding), default=0.0) > MAX_VECTOR_VALUE
            ):
                raise SinkError(f"{where}: embedding values must be finite float32 numbers")
            embedding = record.json_parts()["embedding"]  # `_vector`'s text, made once per record
        if traits.nul or traits.lone_surrogate:
            attributes = dumps(clean_value(body["attributes"]))
            entities = dumps(clean_value(body["entities"]))
            relations = dumps(clean_value(body["relations"]))
        else:  # clean_value would change nothing: the texts are json_value's own
            parts = record.json_parts()
            attributes = _finish(_part(parts, "attributes"), body["attributes"])
            entities = _finish(_part(parts, "entities"), body["entities"])
            relations = _finish(_part(parts, "relations"), body["relations"])
        row = Row(
            source=record.source,
            id=record.id,
            kind=record.kind,
            version=record.version,
            occurred_at=record.occurred_at,
            # search and display copies: NUL and lone surrogates become U+FFFD
            title=clean(record.title),
            text=clean(record.text),
            attributes=attributes,
            entities=entities,
            relations=relations,
            deleted=False,
            embedding=embedding,
            content_hash=record.content_hash(),
            idempotency_key=record.idempotency_key,
            record=_record_json(record, body),
        )
    except (TypeError, ValueError) as exc:
        raise SinkError(f"{where} cannot be stored: {exc}") from None
    return row


def _part(parts: Mapping[str, str | None], name: str) -> str:
    text = parts[name]
    if text is None:
        raise ValueError(f"{name} holds a non-finite number")
    return text


def tombstone_of(record: Record) -> Record:
    """The minimal record a tombstone row reads back as: key, kind, version, time."""
    return Record(
        source=record.source,
        kind=record.kind,
        id=record.id,
        version=record.version,
        occurred_at=record.occurred_at,
        deleted=True,
    )


def supersedes(new: Row, old: Row) -> bool:
    """Whether `new` replaces `old` (same key) — the rule in the module docstring."""
    if new.version != old.version:
        return new.version > old.version
    if old.deleted:
        return False
    return new.deleted or new.content_hash != old.content_hash or new.record != old.record


def winners(records: Sequence[Record], embedding_dim: int) -> list[Row]:
    """One row per key, the one the stored state would end with if the records were
    written one by one in order; sorted by key so concurrent batches lock rows in the
    same order (no deadlocks). Raises `SinkError` for the first record that cannot be stored."""
    rows, refused = storable_winners(records, embedding_dim)
    if refused:
        raise SinkError(next(iter(refused.values())))
    return rows


def storable_winners(records: Sequence[Record], embedding_dim: int) -> tuple[list[Row], dict[RecordKey, str]]:
    """`winners` of the records PostgreSQL can hold, and why each other key cannot be
    stored (a permanent, record-level refusal: a NUL character or a lone surrogate in the
    record's identity, a version out of range, a non-finite number, a wrong embedding).
    A key refused in any of its versions is refused whole, so no older version of it is
    written in its place."""
    best: dict[RecordKey, Row] = {}
    refused: dict[RecordKey, str] = {}
    for record in records:
        try:
            row = to_row(record, embedding_dim)
        except SinkError as exc:
            refused[record.key] = str(exc)
            continue
        current = best.get(row.key)
        if current is None or supersedes(row, current):
            best[row.key] = row
    return [best[key] for key in sorted(best) if key not in refused], refused


def from_json(text: str) -> Record:
    """The `Record` stored in a `records.record` value (plain or the `json+base64`
    envelope), parsed by the stdlib `json`: pydantic's JSON parser refuses lone surrogates."""
    return Record.model_validate(decode_payload(json.loads(text)))
