"""The Apex conformance suite against the EDI connector (samples: `apex_connector_edi.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "edi"
