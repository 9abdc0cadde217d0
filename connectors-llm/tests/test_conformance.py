"""The Apex conformance suite against the LLM connector (samples: `apex_connector_llm.conformance`)."""

from __future__ import annotations

from apex_platform.testing.conformance import SourceConformance


class TestConformance(SourceConformance):
    source = "llm"
