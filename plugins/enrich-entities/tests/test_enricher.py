"""The enricher as the pipeline sees it: merge rules, idempotency, settings, registration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apex_enricher_entities import EntitiesSettings, EntityEnricher
from apex_enricher_entities import plugin as entities_plugin
from apex_platform.contracts import Enricher
from apex_platform.errors import SettingsError
from apex_platform.models import Entity, Record, Relation
from apex_platform.plugins import build_registry
from apex_platform.settings import load

RecordFactory = Callable[..., Record]
TEXT = "PRO 0286-55431: call ann@acme.com or (404) 555-1234, $1,234.50, Atlanta, GA."


async def test_keeps_connector_entities_and_adds_new_ones(enricher: EntityEnricher, record: RecordFactory) -> None:
    given = (
        Entity(type="Shipment", key="0286-55431", properties={"status": "late"}),
        Entity(type="Contact", key="ann@acme.com"),
    )
    relations = (Relation(src="Message:m1", type="ABOUT", dst="Shipment:0286-55431"),)
    original = record(TEXT, entities=given, relations=relations)
    (out,) = await enricher.enrich([original])
    assert out.entities[:2] == given  # unchanged, first, the connector's properties kept
    assert out.relations == relations
    added = [(e.type, e.key) for e in out.entities[2:]]
    assert added == [
        ("Email", "ann@acme.com"),
        ("Phone", "+14045551234"),
        ("Amount", "USD 1234.50"),
        ("Place", "Atlanta, GA"),
    ]
    assert len(set(added)) == len(added)
    assert out.model_dump(exclude={"entities"}) == original.model_dump(exclude={"entities"})


async def test_idempotent_and_order_preserving(enricher: EntityEnricher, record: RecordFactory) -> None:
    batch = [record(TEXT, id="a"), record("nothing to see", id="b"), record(TEXT.upper(), id="c"), record(TEXT, id="d")]
    once = await enricher.enrich(batch)
    assert [r.id for r in once] == ["a", "b", "c", "d"]
    assert once[1] is batch[1]  # nothing found: the very same record
    assert await enricher.enrich(once) == once
    assert await enricher.enrich(batch) == once
    assert once[0].content_hash() == (await EntityEnricher(EntitiesSettings()).enrich([batch[0]]))[0].content_hash()


async def test_deleted_records_pass_through(enricher: EntityEnricher, record: RecordFactory) -> None:
    tomb = record(TEXT, deleted=True)
    assert await enricher.enrich([tomb]) == [tomb]


async def test_enabled_types(make_enricher: Callable[..., EntityEnricher], record: RecordFactory) -> None:
    enricher = make_enricher(enabled_types=" email , shipment")
    assert enricher.settings.enabled_types == "Email,Shipment"
    (out,) = await enricher.enrich([record(TEXT)])
    assert {e.type for e in out.entities} == {"Email", "Shipment"}


def test_unknown_type_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_ENTITIES_ENABLED_TYPES", "Email,Widget")
    with pytest.raises(SettingsError, match=r"APEX_ENTITIES_ENABLED_TYPES.*Widget"):
        load(EntitiesSettings)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_ENTITIES_MAX_TEXT_CHARS", "1000")
    monkeypatch.setenv("APEX_ENTITIES_PHONE_REGION", "GB")
    enricher = EntityEnricher()
    assert enricher.settings.max_text_chars == 1000
    assert enricher.settings.phone_region == "GB"
    assert enricher.types == frozenset(EntitiesSettings().types)


async def test_max_text_chars(make_enricher: Callable[..., EntityEnricher], record: RecordFactory) -> None:
    text = "first@acme.com " + "x " * 600 + "late@acme.com"
    (out,) = await make_enricher(max_text_chars=1000).enrich([record(text)])
    assert [e.key for e in out.entities] == ["first@acme.com"]
    # The cut falls on a space: no half address is taken for a whole one.
    text = "y" * 990 + " ann.shipper@acme.com"
    (out,) = await make_enricher(max_text_chars=1000).enrich([record(text)])
    assert out.entities == ()


async def test_max_text_chars_bounds_attribute_strings(
    make_enricher: Callable[..., EntityEnricher], record: RecordFactory
) -> None:
    attributes = {"a": "x" * 900, "b": "ann@acme.com", "c": "x" * 90, "d": "bob@acme.com"}
    (out,) = await make_enricher(max_text_chars=1000).enrich([record(attributes=attributes)])
    assert [e.key for e in out.entities] == ["ann@acme.com"]  # "bob@a…" is past the budget, not half-taken
    attributes = {"a": "x" * 900, "email": "ann@acme.com"}  # named fields do not count against the budget
    (out,) = await make_enricher(max_text_chars=1000).enrich([record(attributes=attributes)])
    assert [e.key for e in out.entities] == ["ann@acme.com"]


def test_registered_through_the_plugin_hook() -> None:
    registry = build_registry("all", modules=[entities_plugin], use_entry_points=False)
    assert registry.problems == []
    enricher = registry.enrichers["entities"]
    assert isinstance(enricher, EntityEnricher)
    assert isinstance(enricher, Enricher)


def test_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="apex.plugins") if ep.name == "entities"]
    assert ep.value == "apex_enricher_entities.plugin"


async def test_record_json_round_trip(enricher: EntityEnricher, record: RecordFactory) -> None:
    """Records cross Temporal as JSON: what the enricher adds must survive it."""
    (out,) = await enricher.enrich([record(TEXT + " From: Ann Shipper <ann@acme.com>")])
    assert Record.model_validate_json(out.model_dump_json()) == out
    assert isinstance(out.entities[0].properties, dict)
