"""The Apex enricher conformance suite against the embeddings enricher (its default,
offline `hash` backend: no I/O)."""

from __future__ import annotations

from apex_platform.testing.conformance import EnricherConformance


class TestConformance(EnricherConformance):
    enricher = "embeddings"
