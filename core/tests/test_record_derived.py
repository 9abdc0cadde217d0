"""Record.traits() and Record.json_parts()/json_text(): what every sink reads instead of
walking and encoding the record itself (issue 15). Each must say exactly what the walk or
the encoding it replaces says."""

from __future__ import annotations

import gc
import json
import math
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from apex_platform import models
from apex_platform.models import Entity, Record, Relation
from apex_platform.testing.records import make_record


def _stdlib(record: Record) -> str:
    return json.dumps(record.json_value(), ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "attributes",
    [
        {"a": 1, "b": [1.5, "x", None, True], "c": {"z": 1, "a": {"é": "中"}}},
        {"big": 1e16, "small": 1e-7, "int": 2**70, "esc": 'q" b\\ t\t\u2028'},
        {"k\ud800": {"nested\ud801": ["v\ud802"]}},
        {"nul\x00": "v\x00"},
        {"nan": math.nan},
    ],
)
def test_json_text_is_the_stdlib_text(attributes: dict[str, Any]) -> None:
    record = make_record(
        attributes=attributes,
        embedding=(0.25, -1.0, 3e-9),
        entities=(Entity(type="Shipment", key="S1", properties={"w": 2.5}),),
        relations=(Relation(src="Shipment:S1", type="AT", dst="Place:P", properties={"b": 1, "a": 2}),),
    )
    assert record.json_text() == _stdlib(record)
    body = record.json_value()
    del body["embedding"]
    assert record.json_text(without="embedding") == json.dumps(
        body, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


def test_json_text_refuses_a_nan_embedding_like_the_stdlib() -> None:
    record = make_record(embedding=(math.nan, 1.0))
    with pytest.raises(ValueError):
        _stdlib(record)
    with pytest.raises(ValueError):
        record.json_text()
    assert record.json_parts()["embedding"] is None
    assert record.content_hash() == make_record(id=record.id, embedding=None).content_hash()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (False, False, False, False)),
        ({"title": "a\x00b"}, (True, False, False, False)),
        ({"text": "a\ud800"}, (False, True, False, False)),
        ({"attributes": {"x": [{"k\ud800": 1}]}}, (False, True, True, False)),
        ({"attributes": {"x": ["v\ud800"]}}, (False, True, False, False)),
        ({"attributes": {"x": (1.0, math.inf)}}, (False, False, False, True)),
        ({"embedding": (1.0, math.nan)}, (False, False, False, True)),
        ({"entities": (Entity(type="T", key="k", properties={"p": -math.inf}),)}, (False, False, False, True)),
        # json_value's own rule: a surrogate key inside a mapping of another type is not "kept"
        ({"attributes": {"m": MappingProxyType({"k\ud800": 1})}}, (True, True, False, True)),
        # other types than JSON's may hold anything
        ({"attributes": {"when": datetime(2024, 1, 1, tzinfo=UTC)}}, (True, True, False, True)),
    ],
)
def test_traits(fields: dict[str, Any], expected: tuple[bool, bool, bool, bool]) -> None:
    assert tuple(make_record(**fields).traits())[:4] == expected


@pytest.mark.parametrize(
    ("attributes", "plain"),
    [
        ({"a": [1, 2.5, "x", None, True, {"b": []}]}, True),
        ({"a": (1, 2)}, False),
        ({"a": {1: "int key"}}, False),
        ({"a": datetime(2024, 1, 1, tzinfo=UTC)}, False),
        ({"a": MappingProxyType({})}, False),
        ({"a": [b"bytes"]}, False),
    ],
)
def test_plain_json(attributes: dict[str, Any], plain: bool) -> None:
    record = make_record(attributes=attributes)
    assert record.traits().plain_json is plain
    if plain:  # what the flag promises
        assert Record.model_validate(json.loads(json.dumps(record.json_value()))) == record


def test_derived_values_are_forgotten_with_their_record() -> None:
    gc.collect()
    before = len(models._TRAITS), len(models._JSON_PARTS)
    records = [make_record() for _ in range(100)]
    for record in records:
        record.traits()
        record.json_parts()
    assert len(models._TRAITS) >= before[0] + 100
    assert len(models._JSON_PARTS) >= before[1] + 100
    del records, record
    gc.collect()
    assert len(models._TRAITS) <= before[0]
    assert len(models._JSON_PARTS) <= before[1]
