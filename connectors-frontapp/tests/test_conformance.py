"""The Apex conformance suite against the Front connector (samples: `apex_connector_frontapp.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "frontapp"
