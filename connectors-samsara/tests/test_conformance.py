"""The Apex conformance suite against the Samsara connector (samples: `apex_connector_samsara.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "samsara"
