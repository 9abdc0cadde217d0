"""Apex entities enricher: entities and relations found in a record's title, text and attributes."""

from __future__ import annotations

from apex_enricher_entities.enricher import EntityEnricher
from apex_enricher_entities.settings import ENTITY_TYPES, EntitiesSettings

__all__ = ["ENTITY_TYPES", "EntitiesSettings", "EntityEnricher"]
