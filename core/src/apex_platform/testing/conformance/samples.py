"""What only a connector's author knows, handed to the conformance suite.

A connector ships a `ConformanceSamples` subclass and returns it from an optional
method `conformance_samples()` (the `ConformanceProvider` capability); then both
`class TestConformance(SourceConformance): source = "mysource"` and
`pytest --apex-conformance mysource` find it. Every method has a default that supplies
nothing: the checks that need it are skipped and the skip names the method to write.
This module imports nothing heavy, so a connector may import it at run time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from apex_platform.contracts import Sink
    from apex_platform.models import Record


def plugin_modules() -> str:
    """`APEX_PLUGIN_MODULES`: plugin modules loaded by import path, as the platform loads
    them, so a plugin in development runs its suite before it is installed."""
    return os.environ.get("APEX_PLUGIN_MODULES", "")


class ConformanceSamples:
    """Configuration and sample traffic of one connector, for the conformance suite.

    - every mode: `environment()`, the settings the suite runs the connector under;
    - webhook: `deliveries()` (bodies as the vendor sends them) and `sign(body, at=…)`;
    - push: `deliveries()` and, if the connector reads any, `headers(body)`;
    - poll and stream: `environment()` starts a fake vendor holding more than one page
      (with a deletion, unless `vendor_deletes = False`) and points the connector at it;
    - batch: `files(folder)`;
    - any mode: `deletions()`, bodies whose records must include a tombstone.
    """

    #: the replay window the connector enforces under `environment()`, in seconds: a
    #: delivery signed further than this from now must be refused
    replay_window_seconds: ClassVar[float] = 300.0
    #: webhook: whether the vendor signs the body (an HMAC, a JWT of its digest). False for
    #: a static token in a header (Turvo): the altered-body checks are then skipped
    signs_body: ClassVar[bool] = True
    #: webhook: whether the vendor signs a time (a timestamp header, a JWT's iat). False:
    #: the stale and replay-window checks are skipped (the inbox's event id still dedupes)
    timestamped: ClassVar[bool] = True
    #: poll and stream: whether the fake vendor's data deletes something (a tombstone
    #: is then expected among the records read)
    vendor_deletes: ClassVar[bool] = True
    #: poll and stream: the most pages one pass may take before the suite gives up
    max_pages: ClassVar[int] = 500

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """Environment variables configuring the connector (`APEX_<NAME>_…`: test secrets,
        a fake vendor's address). The suite sets them while it runs; a fake vendor started
        here is stopped when the block exits. Default: nothing."""
        yield {}

    def deliveries(self) -> list[bytes]:
        """Valid request bodies (webhook: as the vendor sends them; push: as a client
        does), each accepted under `environment()`. JSON bodies are also the seeds of
        the malformed-input checks. Default: none."""
        return []

    def sign(self, body: bytes, *, at: float) -> dict[str, str]:
        """webhook: the request headers the vendor sends with `body`, signed at Unix
        time `at` with the secret of `environment()`. Default: not supplied."""
        raise NotImplementedError

    def headers(self, body: bytes) -> dict[str, str]:
        """push: the request headers `receive` gets with `body` (authentication is the
        platform's: no key needed)."""
        return {"Content-Type": "application/json"}

    def deletions(self) -> list[bytes]:
        """Bodies (as `deliveries`) that delete an object at the vendor: their records must
        include a tombstone (`deleted=True`). Default: none."""
        return []

    def files(self, folder: Path) -> list[Path]:
        """batch: valid files written into `folder`. Default: none."""
        return []


@runtime_checkable
class ConformanceProvider(Protocol):
    """Optional capability of a source: the samples its conformance suite runs with."""

    def conformance_samples(self) -> ConformanceSamples: ...


@runtime_checkable
class ConformanceRecordsProvider(Protocol):
    """Optional capability of an enricher: records of its own for its conformance suite
    (what it enriches: text with the entities it finds, records of its kinds)."""

    def conformance_records(self) -> list[Record]: ...


@runtime_checkable
class ConformanceSinkProvider(Protocol):
    """Optional capability of a sink, for `pytest --apex-conformance NAME`: the sink open
    on an empty store of its own (a temporary folder, a throw-away schema), closed and
    removed on exit."""

    def conformance_sink(self) -> AbstractAsyncContextManager[Sink]: ...


class DemoSamples(ConformanceSamples):
    """What a connector that ships no `conformance_samples()` still offers the suite: the
    capabilities `apex-platform demo` uses. `start_fake_vendor()` and `demo_environment()`
    configure it, `demo_deliveries()` are its deliveries (with the headers they came
    with, signed once: `sign` stays unsupplied), `demo_files(folder)` its files."""

    def __init__(self, connector: object) -> None:
        self._connector = connector
        self._headers: dict[bytes, dict[str, str]] = {}

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        from apex_platform.capabilities import DemoEnvironmentSource, FakeVendorSource

        env: dict[str, str] = {}
        vendor = self._connector.start_fake_vendor() if isinstance(self._connector, FakeVendorSource) else None
        try:
            if isinstance(self._connector, DemoEnvironmentSource):
                env.update(self._connector.demo_environment())
            if vendor is not None:
                env.update(vendor.environment)
            yield env
        finally:
            if vendor is not None:
                vendor.stop()

    def deliveries(self) -> list[bytes]:
        from apex_platform.contracts import DemoSource

        if not isinstance(self._connector, DemoSource):
            return []
        out = []
        for delivery in self._connector.demo_deliveries():
            self._headers[delivery.body] = dict(delivery.headers)
            out.append(delivery.body)
        return out

    def headers(self, body: bytes) -> dict[str, str]:
        return self._headers.get(body) or super().headers(body)

    def files(self, folder: Path) -> list[Path]:
        from apex_platform.capabilities import DemoFilesSource

        if isinstance(self._connector, DemoFilesSource):
            return self._connector.demo_files(folder)
        return []
