"""How a `Record` becomes the hash stored under its key, and which of two versions wins.

One hash per record key, fields:

- `v`: the version, in decimal (compared as an arbitrary-size integer, never as a float);
- `d`: `1` for a tombstone, `0` for a live record;
- `h`: `Record.content_hash()` of the record written (everything but the embedding);
- `f`: fingerprint, SHA-256 of `r` — the whole record, embedding included;
- `r`: the record as canonical JSON (sorted keys, UTF-8); for a tombstone the minimal
  record (source, kind, id, version, occurred_at, deleted=true), content cleared. NUL
  characters are JSON escapes (`\\u0000`) there like any control character. A record
  holding a lone surrogate (which has no UTF-8 form) is written with every non-ASCII
  character escaped instead (`\\ud800`, `\\u00e9`: pure ASCII), and read back with the
  stdlib `json` (pydantic's parser refuses lone surrogate escapes): so Redis keeps every
  record exactly, except those with NaN or infinities (see `to_entry`).

The winner rule is written once here, in Python (to fold a batch), and once in Lua
(`scripts.WRITE`, against what is stored); both must say the same thing:

- a higher `version` wins;
- at an equal version a tombstone wins and then stays (a live record of that version
  arriving later does not bring it back);
- at an equal version between live records, a different content or embedding is a
  correction and replaces the stored one (the later write wins); the identical record
  is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apex_platform.errors import SinkError
from apex_platform.models import Record, RecordKey

#: Hash fields in the order the write script receives them after the key.
FIELDS = ("v", "d", "f", "h", "r")


@dataclass(frozen=True, slots=True)
class Entry:
    """The hash of one record, encoded and ready to send."""

    key: RecordKey
    version: int
    deleted: bool
    fingerprint: str
    content_hash: str
    body: bytes

    def values(self) -> tuple[str, str, str, str, bytes]:
        """The values of `FIELDS`, in order."""
        return (str(self.version), "1" if self.deleted else "0", self.fingerprint, self.content_hash, self.body)

    def items(self) -> list[str | bytes]:
        """Field, value, field, value... as HSET takes them."""
        values: tuple[str | bytes, ...] = self.values()
        flat: list[str | bytes] = []
        for name, value in zip(FIELDS, values, strict=True):
            flat += (name, value)
        return flat


def tombstone(record: Record) -> Record:
    """The minimal record a tombstone reads back as: key, kind, version, time; no content."""
    return Record(
        source=record.source,
        kind=record.kind,
        id=record.id,
        version=record.version,
        occurred_at=record.occurred_at,
        deleted=True,
    )


def dumps(record: Record) -> bytes:
    """Canonical JSON of a record: equal records give equal bytes, whatever their dict order.
    UTF-8, or pure ASCII with `\\uXXXX` escapes when the record holds a lone surrogate."""
    text = record.json_text()  # that json.dumps of json_value(), made once per record for every sink
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        body = record.json_value()
        text = json.dumps(body, ensure_ascii=True, allow_nan=False, sort_keys=True, separators=(",", ":"))
        return text.encode("ascii")


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
            _check_finite(item, f"{path}[{_shown(str(key))!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, f"{path}[{index}]")


def _shown(text: str) -> str:
    """`text` for a message: as it is when printable, else with NUL and surrogates escaped."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return text.encode("unicode_escape").decode("ascii")


def to_entry(record: Record) -> Entry:
    """The hash for `record`; raises `SinkError` naming the record when it cannot be stored:
    a non-finite number (attributes, properties, embedding), or a record id a Redis key
    name cannot hold (a lone surrogate has no UTF-8 form; the model refuses those anyway)."""
    where = f"record {_shown(str(record.key))} (version {record.version})"
    stored = tombstone(record) if record.deleted else record
    try:
        try:
            f"{record.source}:{record.id}".encode()
        except UnicodeEncodeError:
            raise ValueError("id holds a lone surrogate, which a Redis key name (UTF-8) cannot hold") from None
        if not record.deleted and record.traits().non_finite:  # else no walk can find one
            _check_finite(record.attributes, "attributes")
            _check_finite(record.embedding, "embedding")
            for index, entity in enumerate(record.entities):
                _check_finite(entity.properties, f"entities[{index}].properties")
            for index, relation in enumerate(record.relations):
                _check_finite(relation.properties, f"relations[{index}].properties")
        body = dumps(stored)
    except (TypeError, ValueError) as exc:
        raise SinkError(f"{where} cannot be stored: {exc}") from None
    return Entry(
        key=record.key,
        version=record.version,
        deleted=record.deleted,
        fingerprint=hashlib.sha256(body).hexdigest(),
        content_hash=record.content_hash(),
        body=body,
    )


def supersedes(new: Entry, old: Entry) -> bool:
    """Whether `new` replaces `old` (same key) — the rule in the module docstring."""
    if new.version != old.version:
        return new.version > old.version
    if old.deleted:
        return False
    return new.deleted or new.fingerprint != old.fingerprint


def winners(records: Sequence[Record]) -> list[Entry]:
    """One entry per key, the one the stored state would end with if the records were
    written one by one in order; sorted by key."""
    best: dict[RecordKey, Entry] = {}
    for record in records:
        entry = to_entry(record)
        current = best.get(entry.key)
        if current is None or supersedes(entry, current):
            best[entry.key] = entry
    return [best[key] for key in sorted(best)]


def storable_winners(records: Sequence[Record]) -> tuple[list[Entry], dict[RecordKey, str]]:
    """`winners` of the records Redis can hold, and the reason for each it cannot."""
    best: dict[RecordKey, Entry] = {}
    refused: dict[RecordKey, str] = {}
    for record in records:
        try:
            entry = to_entry(record)
        except SinkError as exc:
            refused[record.key] = str(exc)
            continue
        current = best.get(entry.key)
        if current is None or supersedes(entry, current):
            best[entry.key] = entry
    return [best[key] for key in sorted(best) if key not in refused], refused


def from_json(body: bytes | str) -> Record:
    """The `Record` stored in an `r` field, parsed by the stdlib `json` (it gives lone
    surrogate escapes back; pydantic's JSON parser refuses them)."""
    return Record.model_validate(json.loads(body))
