from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from apex_platform.models import Entity, Record, Relation

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(**kw: object) -> Record:
    base: dict[str, object] = {"source": "demo", "kind": "demo.thing", "id": "1", "version": 1, "occurred_at": T0}
    base.update(kw)
    return Record.model_validate(base)


def test_record_round_trips_as_json() -> None:
    r = rec(
        text="naïve ✓",
        attributes={"nested": {"a": [1, 2.5, None]}},
        entities=[Entity(type="Shipment", key="PRO123", properties={"w": 1})],
        relations=[Relation(src="Shipment:PRO123", type="PICKED_UP_AT", dst="Place:ATL")],
        embedding=[0.1, 0.2],
    )
    again = Record.model_validate_json(r.model_dump_json())
    assert again == r
    assert again.idempotency_key == r.idempotency_key


def test_idempotency_key_depends_on_version_and_content_not_embedding() -> None:
    r = rec()
    assert rec(version=2).idempotency_key != r.idempotency_key
    assert rec(text="x").idempotency_key != r.idempotency_key
    assert rec(embedding=[1.0]).idempotency_key == r.idempotency_key


def test_naive_datetimes_become_utc() -> None:
    assert rec(occurred_at=datetime(2026, 1, 1)).occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", "Bad Source"), ("version", -1), ("id", ""), ("unknown_field", 1)],
)
def test_invalid_records_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        rec(**{field: value})


def test_relation_type_is_upper_snake() -> None:
    with pytest.raises(ValidationError):
        Relation(src="A:1", type="part of", dst="B:2")
