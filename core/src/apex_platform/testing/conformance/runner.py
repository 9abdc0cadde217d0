"""The test module `pytest --apex-conformance NAME` collects: one suite class per name,
made from what the installed plugins registered under that name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from apex_platform.contracts import Sink
from apex_platform.plugins import build_registry
from apex_platform.testing.conformance.enricher import EnricherConformance
from apex_platform.testing.conformance.samples import ConformanceSinkProvider, plugin_modules
from apex_platform.testing.conformance.sink import SinkConformance
from apex_platform.testing.conformance.source import SourceConformance
from apex_platform.testing.conformance_plugin import TARGETS


def _sink_suite(name: str) -> type:
    class Suite(SinkConformance):
        @pytest_asyncio.fixture
        async def sink(self) -> AsyncIterator[Sink]:
            registered = build_registry(extra_module_paths=plugin_modules()).sinks[name]
            if not isinstance(registered, ConformanceSinkProvider):
                pytest.fail(
                    f"the sink {name!r} has no conformance_sink(): the suite cannot reach a store of its own. "
                    "Give the sink conformance_sink(), an async context manager yielding it open on an empty "
                    "store, or subclass SinkConformance in a test module with a `sink` fixture",
                    pytrace=False,
                )
            async with registered.conformance_sink() as opened:
                yield opened

    return Suite


def _suites(names: list[str]) -> dict[str, type]:
    registry = build_registry(extra_module_paths=plugin_modules())
    out: dict[str, type] = {}
    for name in names:
        ident = "".join(c if c.isalnum() else "_" for c in name)
        attrs: dict[str, Any] = {"__module__": __name__, "__qualname__": ""}
        if name in registry.sources:
            base: type = SourceConformance
            attrs["source"] = name
            kind = "Source"
        elif name in registry.enrichers:
            base = EnricherConformance
            attrs["enricher"] = name
            kind = "Enricher"
        elif name in registry.sinks:
            base = _sink_suite(name)
            kind = "Sink"
        else:
            installed = sorted({*registry.sources, *registry.enrichers, *registry.sinks})
            problems = "; ".join(registry.problems)
            raise pytest.UsageError(
                f"--apex-conformance {name}: no installed source, sink or enricher has that name "
                f"(installed: {', '.join(installed) or 'none'})"
                + (f"; plugin problems: {problems}" if problems else "")
            )
        class_name = f"Test{kind}Conformance_{ident}"
        attrs["__qualname__"] = class_name
        out[class_name] = type(class_name, (base,), attrs)
    return out


globals().update(_suites(TARGETS))
