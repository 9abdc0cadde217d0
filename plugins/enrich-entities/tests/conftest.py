"""Fixtures: records to enrich and an enricher with chosen settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_enricher_entities import EntitiesSettings, EntityEnricher
from apex_platform.models import Record

RecordFactory = Callable[..., Record]
EnricherFactory = Callable[..., EntityEnricher]


def _record(text: str = "", *, title: str = "", attributes: dict[str, Any] | None = None, **fields: Any) -> Record:
    return Record(
        source=fields.pop("source", "frontapp"),
        kind=fields.pop("kind", "frontapp.message"),
        id=fields.pop("id", "msg_1"),
        version=fields.pop("version", 1),
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        title=title,
        text=text,
        attributes=attributes or {},
        **fields,
    )


@pytest.fixture
def record() -> RecordFactory:
    """`record(text, title=, attributes=, **fields)`: a frontapp.message record."""
    return _record


@pytest.fixture
def make_enricher() -> EnricherFactory:
    """`make_enricher(**settings)`: an enricher with those settings (phone_region US by default)."""

    def make(**overrides: Any) -> EntityEnricher:
        return EntityEnricher(EntitiesSettings(**overrides))

    return make


@pytest.fixture
def enricher(make_enricher: EnricherFactory) -> EntityEnricher:
    return make_enricher()


@pytest.fixture
def found(enricher: EntityEnricher, record: RecordFactory) -> Callable[..., dict[tuple[str, str], dict[str, Any]]]:
    """`found(text, **record_fields)`: {(type, key): properties} the enricher adds."""

    def scan(text: str = "", **fields: Any) -> dict[tuple[str, str], dict[str, Any]]:
        out = enricher.enrich_one(record(text, **fields))
        return {(e.type, e.key): e.properties for e in out.entities}

    return scan


@pytest.fixture
def keys(found: Callable[..., dict[tuple[str, str], dict[str, Any]]]) -> Callable[..., set[tuple[str, str]]]:
    """`keys(text, type=None)`: the (type, key) pairs found, optionally of one type."""

    def pick(text: str = "", type: str | None = None, **fields: Any) -> set[tuple[str, str]]:
        return {k for k in found(text, **fields) if type is None or k[0] == type}

    return pick
