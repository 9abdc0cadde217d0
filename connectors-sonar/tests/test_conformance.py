"""The Apex conformance suite against the SONAR connector (samples: `apex_connector_sonar.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "sonar"
