"""The Apex enricher conformance suite against the entities enricher."""

from __future__ import annotations

from apex_platform.testing.conformance import EnricherConformance


class TestConformance(EnricherConformance):
    enricher = "entities"
