"""The Apex conformance suite against the QuickBooks Online connector
(samples: `apex_connector_financial.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "financial"
