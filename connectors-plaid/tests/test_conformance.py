"""The Apex conformance suite against the Plaid connector (samples: `apex_connector_plaid.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "plaid"
