"""The entities enricher: adds what a record's title, text and attributes mention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic_settings import BaseSettings

from apex_enricher_entities import text
from apex_enricher_entities.attributes import AttributeScan
from apex_enricher_entities.found import Found
from apex_enricher_entities.scan_memo import Memo, scan_strings
from apex_enricher_entities.settings import EntitiesSettings
from apex_platform.models import Entity, Record, Relation
from apex_platform.settings import load


class EntityEnricher:
    """Adds entities (and a few explicit relations) found in each record.

    The connector's entities and relations are kept unchanged and first; found ones
    are appended when their (type, key) is new. Deleted records pass through untouched.
    Pure and deterministic: the same record always gives the same result, and running
    the enricher on its own output changes nothing.
    """

    name = "entities"
    #: read by `apex-platform plugins settings` (`Configurable`)
    settings_model: ClassVar[type[BaseSettings] | None] = EntitiesSettings

    def __init__(self, settings: EntitiesSettings | None = None) -> None:
        self.settings = settings if settings is not None else load(EntitiesSettings)
        self.types = self.settings.types
        # what the scan found in each short string seen, for these settings (`scan_memo`)
        self._memo = Memo()

    async def enrich(self, records: Sequence[Record]) -> list[Record]:
        return [self.enrich_one(record) for record in records]

    def find(self, record: Record) -> Found:
        """Everything the record mentions, before merging with what it already has."""
        found = Found(self.types)
        limit = self.settings.max_text_chars
        region = self.settings.phone_region
        scan_strings([text.clip(record.title, limit)], found, region, self._memo)
        scan_strings([text.clip(record.text, limit)], found, region, self._memo)
        if record.attributes:
            AttributeScan(found, region, budget=limit, memo=self._memo).run(record.attributes)
        return found

    def enrich_one(self, record: Record) -> Record:
        if record.deleted:
            return record
        found = self.find(record)
        if not found.entities:
            return record
        have = {(e.type, e.key) for e in record.entities}
        new_entities = [
            Entity(type=type_, key=key, properties=props)
            for (type_, key), props in found.entities.items()
            if (type_, key) not in have
        ]
        have_rel = {(r.src, r.type, r.dst) for r in record.relations}
        new_relations = [
            Relation(src=src, type=type_, dst=dst)
            for (src, type_, dst) in found.relations
            if (src, type_, dst) not in have_rel
        ]
        if not new_entities and not new_relations:
            return record
        return record.model_copy(
            update={
                "entities": (*record.entities, *new_entities),
                "relations": (*record.relations, *new_relations),
            }
        )
