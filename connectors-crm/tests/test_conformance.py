"""The Apex conformance suite against the HubSpot CRM connector (samples: `apex_connector_crm.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "crm"
