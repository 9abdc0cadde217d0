"""`Record.content_hash` is computed once per instance (the saga and every sink ask for it):
the cached value must be exactly the hash of the content, a changed copy must get its own,
and the cache must neither change equality nor outlive its records."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from apex_platform import models
from apex_platform.models import Entity, Record


def _record(**update: object) -> Record:
    base = Record(
        source="bench",
        kind="bench.thing",
        id="r-1",
        version=7,
        occurred_at=datetime(2026, 3, 10, tzinfo=UTC),
        title="PRO 4417",
        attributes={"nested": {"a": [1, 2, {"b": "c"}]}},
        entities=(Entity(type="Shipment", key="PRO:4417"),),
    )
    return base.model_copy(update=update) if update else base


def test_the_cached_hash_is_the_hash_of_the_content() -> None:
    record = _record()
    first = record.content_hash()
    assert record.content_hash() == first
    assert first == record._content_hash()  # what an uncached computation gives
    assert Record.model_validate(record.model_dump()).content_hash() == first


def test_a_changed_copy_gets_the_hash_of_its_own_content() -> None:
    record = _record()
    before = record.content_hash()
    changed = record.model_copy(update={"title": "PRO 4418"})
    assert changed.content_hash() != before
    assert changed.content_hash() == changed._content_hash()
    assert record.idempotency_key != changed.idempotency_key
    embedded = record.model_copy(update={"embedding": (0.5, 0.25)})
    assert embedded.content_hash() == before  # the embedding is not content


def test_the_cache_changes_neither_equality_nor_serialisation() -> None:
    hashed, fresh = _record(), _record()
    hashed.content_hash()
    assert hashed == fresh
    assert hashed.model_dump() == fresh.model_dump()
    assert hashed.model_dump_json() == fresh.model_dump_json()


def test_the_cache_forgets_records_that_are_gone() -> None:
    gc.collect()
    before = len(models._CONTENT_HASHES)
    records = [_record(id=f"r-{i}") for i in range(200)]
    for record in records:
        record.content_hash()
    assert len(models._CONTENT_HASHES) >= before + 200
    del records, record
    gc.collect()
    assert len(models._CONTENT_HASHES) <= before
