"""Conformance suites: the checks a source connector, a sink or an enricher passes to be
part of Apex, whoever wrote it. Subclass one in a test module::

    from apex_platform.testing.conformance import SourceConformance

    class TestConformance(SourceConformance):
        source = "mysource"

or run it against any installed plugin: `pytest --apex-conformance NAME`. See
docs/plugins.md, "Conformance suites".
"""

from __future__ import annotations

from apex_platform.testing.conformance.enricher import EnricherConformance
from apex_platform.testing.conformance.guard import IOAttempted, no_io
from apex_platform.testing.conformance.samples import (
    ConformanceProvider,
    ConformanceRecordsProvider,
    ConformanceSamples,
    ConformanceSinkProvider,
    DemoSamples,
)
from apex_platform.testing.conformance.sink import SinkConformance
from apex_platform.testing.conformance.source import ConformanceRun, SourceConformance

__all__ = [
    "ConformanceProvider",
    "ConformanceRecordsProvider",
    "ConformanceRun",
    "ConformanceSamples",
    "ConformanceSinkProvider",
    "DemoSamples",
    "EnricherConformance",
    "IOAttempted",
    "SinkConformance",
    "SourceConformance",
    "no_io",
]
