"""The Apex conformance suite against the Turvo connector (samples: `apex_connector_turvo.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "turvo"
