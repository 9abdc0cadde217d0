"""The assembled platform of one process: plugins, settings, opened sinks, the saga."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from temporalio.client import Client

from apex_platform.blobs import open_blob_store
from apex_platform.capabilities import EmbeddingProducer, EmbeddingStore, single_process
from apex_platform.errors import SettingsError, SinkError
from apex_platform.inbox import Inbox, InboxSettings
from apex_platform.plugins import Registry, build_registry
from apex_platform.saga import Saga, SagaSettings
from apex_platform.settings import CoreSettings, TemporalSettings, load
from apex_platform.temporal.activities import BatchCodec
from apex_platform.temporal.client import connect

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    registry: Registry
    core: CoreSettings
    temporal: TemporalSettings
    saga: Saga
    codec: BatchCodec
    inbox: Inbox = field(default_factory=Inbox)
    client: Client | None = None
    #: state of the HTTP edge that lives as long as the process (group commits)
    edge: dict[str, Any] = field(default_factory=dict)
    _opened: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        plugins: str | Iterable[str] | None = None,
        *,
        modules: Iterable[ModuleType | object] = (),
        use_entry_points: bool = True,
        core: CoreSettings | None = None,
        temporal: TemporalSettings | None = None,
    ) -> Runtime:
        core = core or load(CoreSettings)
        registry = build_registry(
            core.plugins if plugins is None else plugins,
            modules=modules,
            extra_module_paths=core.plugin_modules,
            use_entry_points=use_entry_points,
        )
        for problem in registry.problems:
            log.error("%s", problem)
        return cls(
            registry=registry,
            core=core,
            temporal=temporal or load(TemporalSettings),
            saga=Saga.from_sinks(registry.sinks, load(SagaSettings)),
            codec=BatchCodec(open_blob_store(core), core.inline_payload_bytes),
            inbox=Inbox(load(InboxSettings)),
        )

    async def connect(self, *, lazy: bool = False) -> Client:
        if self.client is None:
            self.client = await connect(self.temporal, lazy=lazy)
        return self.client

    def check_embedding_dimensions(self) -> None:
        """Every enricher that makes embeddings and every sink that stores them must agree
        on the dimension; a mismatch found at start beats a batch failing in every store."""
        dims: dict[str, int] = {}
        for name, enricher in self.registry.enrichers.items():
            if isinstance(enricher, EmbeddingProducer) and isinstance(enricher.dimension, int):
                dims[f"enricher {name} (APEX_EMBEDDINGS_DIM)"] = enricher.dimension
        for name, sink in self.registry.sinks.items():
            if isinstance(sink, EmbeddingStore) and isinstance(sink.embedding_dim, int):
                dims[f"sink {name} (APEX_{name.upper()}_EMBEDDING_DIM)"] = sink.embedding_dim
        if len(set(dims.values())) > 1:
            listed = ", ".join(f"{who} = {dim}" for who, dim in dims.items())
            raise SettingsError(f"embedding dimensions disagree: {listed}; set them to one value")

    @property
    def opened(self) -> list[str]:
        return list(self._opened)

    async def open_sinks(self, *, skip_single_process: bool = False) -> None:
        """Open every sink (creating schemas). A sink that cannot open stops the start:
        a worker that silently skipped a store would break the all-or-nothing promise.

        `skip_single_process` (the standalone API) leaves closed the sinks that only one
        process may open (`SingleProcessSink`, e.g. Qdrant local mode): the worker owns them.
        """
        self.check_embedding_dimensions()
        for name, sink in self.registry.sinks.items():
            if name in self._opened:
                continue
            if skip_single_process and single_process(sink):
                log.info("sink %s is left to the worker (one process only)", name)
                continue
            try:
                await sink.open()
            except Exception as exc:
                raise SinkError(f"sink {name!r} could not open: {type(exc).__name__}: {exc}") from exc
            self._opened.append(name)

    async def close_sinks(self) -> None:
        for name in reversed(self._opened):
            try:
                await self.registry.sinks[name].close()
            except Exception as exc:  # noqa: BLE001 - closing must go on for the others
                log.warning("sink %s did not close cleanly: %s", name, exc)
        self._opened.clear()
