"""The LLM connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): the demo's pushes (a conversation with a tool
call, then the same conversation grown). Authentication is the platform's: `receive`
reads no header."""

from __future__ import annotations

from apex_connector_llm import samples
from apex_platform.testing.conformance.samples import ConformanceSamples


class LlmSamples(ConformanceSamples):
    def deliveries(self) -> list[bytes]:
        return samples.bodies()
