"""The EDI connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): the demo's two X12 files (214 statuses and 210
invoices of two loads)."""

from __future__ import annotations

from pathlib import Path

from apex_connector_edi.samples import demo_files
from apex_platform.testing.conformance.samples import ConformanceSamples


class EdiSamples(ConformanceSamples):
    def files(self, folder: Path) -> list[Path]:
        return demo_files(folder)
